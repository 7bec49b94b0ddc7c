//! TON for COCOON (work in progress).
