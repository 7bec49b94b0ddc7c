//! The devnet as a product: what `cocoon devnet` runs. A proxy, workers and a client on
//! loopback (`devnet`), the local chain with the deployed COCOON contracts set up for them
//! (`devchain`), the deterministic mock OpenAI backend it answers with when no model or backend
//! is given (`mock_backend`), and the small HTTP client it reads `/stats` with (`http`).
//! `cocoon-testkit` re-exports all of it for tests.

pub mod devchain;
pub mod devnet;
pub mod http;
pub mod mock_backend;

pub use devnet::{Devnet, DevnetBuilder};
pub use mock_backend::{MockBackend, MockBackendConfig};
