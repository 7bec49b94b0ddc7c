//! The proxy ledger (work in progress).
