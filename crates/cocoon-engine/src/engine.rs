//! A GGUF model on candle: loading, the chat template, and generation with sampling, stop
//! sequences, streaming and cancellation. Generation is synchronous and CPU-bound: callers run it
//! on a blocking thread ([`crate::server`] does).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;

use crate::tokenizer::{Tokenizer, TokenizerError, Utf8Stream, Vocabulary};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The GGUF file or the model in it.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// The tokenizer metadata.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// An unsupported architecture.
    #[error(
        "unsupported architecture {0:?}: the built-in engine runs llama-architecture GGUF files"
    )]
    Architecture(String),
    /// A request the model cannot take.
    #[error("{0}")]
    Request(String),
}

/// One chat message.
#[derive(Clone, Debug)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ….
    pub role: String,
    /// The text.
    pub content: String,
}

/// How to sample.
#[derive(Clone, Debug)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f64,
    /// Nucleus sampling; 1 = off.
    pub top_p: f64,
    /// For reproducible sampling.
    pub seed: u64,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop when the text ends with one of these (not included in the answer).
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            seed: 299_792_458,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End of sequence or a stop sequence.
    Stop,
    /// `max_tokens` or the context was full.
    Length,
    /// The caller stopped it (client gone).
    Cancelled,
}

impl FinishReason {
    /// The OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// What a generation produced.
#[derive(Clone, Debug)]
pub struct Generation {
    /// The answer text (without a stop sequence).
    pub text: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens, not counting the end-of-sequence token (as llama.cpp counts).
    pub completion_tokens: usize,
    /// The generated token ids (the end-of-sequence token included if it came).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Seconds until the first generated token.
    pub time_to_first_token: f64,
    /// Seconds generating after the first token.
    pub decode_seconds: f64,
}

/// A loaded model. Cheap to share: the weights are reference-counted, and every generation
/// works on its own copy of the per-request state (the KV cache).
pub struct Engine {
    weights: ModelWeights,
    tokenizer: Arc<Tokenizer>,
    device: Device,
    context_length: usize,
    chat_template: Option<String>,
    /// The model id (from the file name).
    pub id: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn meta_str(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn meta_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn meta_strings(content: &gguf_file::Content, key: &str) -> Result<Vec<String>, TokenizerError> {
    let value = content
        .metadata
        .get(key)
        .ok_or_else(|| TokenizerError::Metadata(format!("{key} is missing")))?;
    let array = value
        .to_vec()
        .map_err(|_| TokenizerError::Metadata(format!("{key} is not an array")))?;
    array
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|_| TokenizerError::Metadata(format!("{key} holds a non-string")))
        })
        .collect()
}

impl Engine {
    /// Loads a GGUF file on the CPU.
    pub fn load(path: &Path) -> Result<Engine, EngineError> {
        let io = |source| EngineError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| EngineError::Model(e.with_path(path)))?;
        let architecture = meta_str(&content, "general.architecture").unwrap_or_default();
        if architecture != "llama" {
            return Err(EngineError::Architecture(architecture));
        }
        let token_types = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| TokenizerError::Metadata("token_type is not an array".into()))?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => Vec::new(),
        };
        let mut eos: Vec<u32> = meta_u32(&content, "tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect();
        eos.extend(meta_u32(&content, "tokenizer.ggml.eot_token_id"));
        let tokenizer = Tokenizer::new(Vocabulary {
            model: meta_str(&content, "tokenizer.ggml.model").unwrap_or_default(),
            pre: meta_str(&content, "tokenizer.ggml.pre").unwrap_or_default(),
            tokens: meta_strings(&content, "tokenizer.ggml.tokens")?,
            token_types,
            merges: meta_strings(&content, "tokenizer.ggml.merges")?,
            bos: meta_u32(&content, "tokenizer.ggml.bos_token_id"),
            eos,
            add_bos: content
                .metadata
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
        })?;
        let mut tokenizer = tokenizer;
        // Chat models end a turn with <|im_end|> (ChatML) or <|eot_id|>; treat them as EOS.
        for end in ["<|im_end|>", "<|eot_id|>", "<|end|>"] {
            let ids = tokenizer.encode(end, true);
            if let [id] = ids.as_slice() {
                if tokenizer.is_control(*id) && !tokenizer.eos.contains(id) {
                    tokenizer.eos.push(*id);
                }
            }
        }
        let context_length = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(2048) as usize;
        let chat_template = meta_str(&content, "tokenizer.chat_template");
        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(content, &mut file, &device)?;
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .split('.')
            .next()
            .unwrap_or("model")
            .to_string();
        Ok(Engine {
            weights,
            tokenizer: Arc::new(tokenizer),
            device,
            // candle's llama precomputes rotary tables for 4096 positions.
            context_length: context_length.min(4096),
            chat_template,
            id,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Most tokens (prompt + answer) one request can hold.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The prompt for `messages` in the model's chat format (ChatML for SmolLM2 and Qwen;
    /// Llama 3's header format when the template uses it), ending with the assistant's turn.
    /// A template's default system prompt is not added.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> String {
        let template = self.chat_template.as_deref().unwrap_or("");
        let mut prompt = String::new();
        if template.contains("<|start_header_id|>") {
            prompt.push_str("<|begin_of_text|>");
            for m in messages {
                prompt.push_str(&format!(
                    "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                    m.role,
                    m.content.trim()
                ));
            }
            prompt.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            return prompt;
        }
        // ChatML. SmolLM2's GGUF template also inserts a default system prompt ("You are a
        // helpful AI assistant named SmolLM…") when there is none; it is left out here: with it
        // the 135M model answers "What is the capital of France?" with French word salad
        // (llama.cpp too), without it "The capital of France is Paris."
        for m in messages {
            prompt.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role, m.content
            ));
        }
        prompt.push_str("<|im_start|>assistant\n");
        prompt
    }

    /// Generates from `prompt` (control tokens in it are parsed), calling `on_text` with each
    /// new piece of text; `on_text` returns `false` to cancel.
    pub fn generate(
        &self,
        prompt: &str,
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, EngineError> {
        let started = Instant::now();
        let prompt_ids = self.tokenizer.encode(prompt, true);
        if prompt_ids.is_empty() {
            return Err(EngineError::Request("the prompt is empty".into()));
        }
        if prompt_ids.len() >= self.context_length {
            return Err(EngineError::Request(format!(
                "the prompt is {} tokens; this model holds {}",
                prompt_ids.len(),
                self.context_length
            )));
        }
        let budget = params
            .max_tokens
            .min(self.context_length - prompt_ids.len());
        let mut model = self.weights.clone();
        let sampling = if params.temperature <= 0.0 {
            Sampling::ArgMax
        } else if params.top_p < 1.0 {
            Sampling::TopP {
                p: params.top_p,
                temperature: params.temperature,
            }
        } else {
            Sampling::All {
                temperature: params.temperature,
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);
        let mut text = String::new();
        let mut sent = 0usize;
        let mut utf8 = Utf8Stream::default();
        let mut generated = 0usize;
        let mut tokens = Vec::new();
        let mut first_token_at = None;
        let mut finish = FinishReason::Length;
        let mut input = Tensor::new(prompt_ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let mut position = 0;
        let longest_stop = params.stop.iter().map(String::len).max().unwrap_or(0);
        while generated < budget {
            let logits = model.forward(&input, position)?.squeeze(0)?;
            position += input.dim(1)?;
            let token = sampler.sample(&logits)?;
            generated += 1;
            tokens.push(token);
            if first_token_at.is_none() {
                first_token_at = Some(started.elapsed().as_secs_f64());
            }
            if self.tokenizer.eos.contains(&token) {
                generated -= 1;
                finish = FinishReason::Stop;
                break;
            }
            if !self.tokenizer.is_control(token) {
                text.push_str(&utf8.push(&self.tokenizer.token_bytes(token)));
            }
            if let Some(at) = params
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                finish = FinishReason::Stop;
                break;
            }
            // Text that can no longer become part of a stop sequence is released.
            let safe = safe_end(&text, longest_stop.saturating_sub(1));
            if safe > sent {
                if !on_text(&text[sent..safe]) {
                    finish = FinishReason::Cancelled;
                    break;
                }
                sent = safe;
            }
            input = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        }
        if finish != FinishReason::Cancelled {
            text.push_str(&utf8.finish());
            if sent < text.len() && !on_text(&text[sent..]) {
                finish = FinishReason::Cancelled;
            }
        }
        let ttft = first_token_at.unwrap_or_else(|| started.elapsed().as_secs_f64());
        Ok(Generation {
            text,
            prompt_tokens: prompt_ids.len(),
            completion_tokens: generated,
            tokens,
            finish,
            time_to_first_token: ttft,
            decode_seconds: started.elapsed().as_secs_f64() - ttft,
        })
    }
}

/// The largest char boundary of `text` at most `hold` bytes before its end.
fn safe_end(text: &str, hold: usize) -> usize {
    let mut end = text.len().saturating_sub(hold);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}
