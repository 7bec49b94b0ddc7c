//! COCOON v2 wire protocol without I/O: the TL codec and messages, packet framing, the
//! proof-of-work gate and a sans-io session state machine. Time is always passed in.

pub mod codes;
pub mod estimate;
pub mod frame;
pub mod pow;
pub mod schema;
pub mod session;
pub mod tl;
pub mod usage;

pub use schema::*;
pub use tl::{peek_constructor, TlBoxed, TlError, TlObject, TlReader};
pub use usage::Multipliers;
