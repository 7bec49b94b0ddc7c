//! Test support: mock backends, fake TEE and builders that start daemons on loopback.

pub mod devchain;
pub mod devnet;
pub mod http;
pub mod mock_backend;

pub use devnet::{Devnet, DevnetBuilder};
pub use mock_backend::{MockBackend, MockBackendConfig};
