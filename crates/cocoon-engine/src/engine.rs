//! A GGUF model: loading, the chat template, and generation with sampling, stop sequences,
//! streaming and cancellation.
//!
//! One scheduler thread per engine owns the forward pass ([`crate::transformer`]) and a thread
//! pool. Requests queue to it; every step it runs the next token of each running request and a
//! chunk of the prompts of new ones as one batch (continuous batching), samples, and sends text
//! back. [`Engine::generate`] blocks its caller until its request is done: async callers run it
//! on a blocking thread ([`crate::server`] does), so the runtime never waits on inference.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use candle_core::quantized::gguf_file;

use crate::pool::Pool;
use crate::tokenizer::{Tokenizer, TokenizerError, Utf8Stream, Vocabulary};
use crate::transformer::{BatchToken, KvCache, LoadError, Model};

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
    /// The GGUF file.
    #[error("model: {0}")]
    Gguf(#[from] candle_core::Error),
    /// The weights in it.
    #[error("model: {0}")]
    Model(#[from] LoadError),
    /// The tokenizer metadata.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// An unsupported architecture.
    #[error(
        "unsupported architecture {0:?}: the built-in engine runs llama, qwen2 and qwen3 GGUF files"
    )]
    Architecture(String),
    /// A request the model cannot take.
    #[error("{0}")]
    Request(String),
    /// The engine's scheduler thread is gone (it panicked).
    #[error("the engine stopped")]
    Stopped,
}

/// The request's chat-template variables the engine understands (`chat_template_kwargs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// Qwen3's switch: `Some(false)` asks for an answer without a thinking block.
    pub enable_thinking: Option<bool>,
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

/// A loaded model. Share it behind an `Arc`: generations from many threads are batched together
/// by its scheduler thread.
pub struct Engine {
    tokenizer: Arc<Tokenizer>,
    context_length: usize,
    chat_template: Option<String>,
    requests: Mutex<mpsc::Sender<Job>>,
    threads: usize,
    embedding_size: usize,
    /// The model id (from the file name).
    pub id: String,
    /// The GGUF architecture (`llama`, `qwen2`, `qwen3`).
    pub architecture: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.id)
            .field("threads", &self.threads)
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

/// Threads the engine uses when not told: `COCOON_ENGINE_THREADS`, else every core.
pub fn default_threads() -> usize {
    std::env::var("COCOON_ENGINE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Engine {
    /// Loads a GGUF file on the CPU, with [`default_threads`] threads.
    pub fn load(path: &Path) -> Result<Engine, EngineError> {
        Engine::load_with_threads(path, default_threads())
    }

    /// Loads a GGUF file on the CPU; inference uses `threads` threads.
    pub fn load_with_threads(path: &Path, threads: usize) -> Result<Engine, EngineError> {
        let io = |source| EngineError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| EngineError::Gguf(e.with_path(path)))?;
        let model = Model::load(&content, &mut file).map_err(|e| match e {
            LoadError::Io(source) => io(source),
            LoadError::Architecture(architecture) => EngineError::Architecture(architecture),
            e => EngineError::Model(e),
        })?;
        let architecture = meta_str(&content, "general.architecture").unwrap_or_default();
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
        let mut tokenizer = Tokenizer::new(Vocabulary {
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
        // Chat models end a turn with <|im_end|> (ChatML) or <|eot_id|>; treat them as EOS.
        for end in ["<|im_end|>", "<|eot_id|>", "<|end|>"] {
            let ids = tokenizer.encode(end, true);
            if let [id] = ids.as_slice() {
                if tokenizer.is_control(*id) && !tokenizer.eos.contains(id) {
                    tokenizer.eos.push(*id);
                }
            }
        }
        let chat_template = meta_str(&content, "tokenizer.chat_template");
        if model.config.vocab < tokenizer.vocab_size() {
            return Err(EngineError::Request(format!(
                "the model has {} embeddings for a vocabulary of {}",
                model.config.vocab,
                tokenizer.vocab_size()
            )));
        }
        let context_length = model.config.context_length;
        let embedding_size = model.config.dim;
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .split('.')
            .next()
            .unwrap_or("model")
            .to_string();
        let tokenizer = Arc::new(tokenizer);
        let (requests, queue) = mpsc::channel();
        let threads = threads.max(1);
        let scheduler = Scheduler {
            model,
            tokenizer: tokenizer.clone(),
            threads,
        };
        std::thread::Builder::new()
            .name("cocoon-engine".into())
            .spawn(move || scheduler.run(queue))
            .map_err(io)?;
        tracing::info!(
            model = %id,
            %architecture,
            threads,
            kernels = crate::kernels::kernel_name(),
            context_length,
            "engine loaded"
        );
        Ok(Engine {
            tokenizer,
            context_length,
            chat_template,
            requests: Mutex::new(requests),
            threads,
            embedding_size,
            id,
            architecture,
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

    /// Threads inference runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The prompt for `messages` in the model's chat format (ChatML for SmolLM2 and Qwen;
    /// Llama 3's header format when the template uses it), ending with the assistant's turn.
    /// A template's default system prompt is not added.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> String {
        self.chat_prompt_with(messages, &TemplateOptions::default())
    }

    /// [`Engine::chat_prompt`] with the request's `chat_template_kwargs` that the model's
    /// template reads. Only `enable_thinking` changes anything, and only for a template that
    /// reads it (Qwen3's): `false` closes an empty thinking block at the start of the answer,
    /// as that template does, so the model answers at once. Other variables are ignored, as a
    /// template ignores variables it does not use.
    pub fn chat_prompt_with(&self, messages: &[ChatMessage], options: &TemplateOptions) -> String {
        render_chat(
            self.chat_template.as_deref().unwrap_or(""),
            messages,
            options,
        )
    }

    /// Generates from `prompt` (control tokens in it are parsed), calling `on_text` with each
    /// new piece of text; `on_text` returns `false` to cancel. Blocks until done; other
    /// requests are batched with this one meanwhile.
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
        let cancel = Arc::new(AtomicBool::new(false));
        let (events, received) = mpsc::channel();
        let request = Request {
            budget: params
                .max_tokens
                .min(self.context_length - prompt_ids.len()),
            prompt: prompt_ids,
            params: params.clone(),
            started,
            events,
            cancel: cancel.clone(),
        };
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Job::Generate(request))
            .map_err(|_| EngineError::Stopped)?;
        let mut cancelled = false;
        loop {
            match received.recv() {
                Ok(Event::Text(text)) => {
                    if !cancelled && !on_text(&text) {
                        cancelled = true;
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
                Ok(Event::Done(generation)) => return Ok(generation),
                Err(_) => return Err(EngineError::Stopped),
            }
        }
    }

    /// Tokenizes `text` for [`Engine::embed`] as llama.cpp's server does (special tokens
    /// parsed, BOS added when the model asks for it).
    pub fn embedding_tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true)
    }

    /// The embedding of each input (token ids, see [`Engine::embedding_tokens`]): the final
    /// normalised hidden states mean-pooled over the input's tokens, then scaled to unit
    /// length, as llama.cpp's server computes them with `--pooling mean`. Each input runs on
    /// its own, so inputs never see each other. Blocks until done; generations keep running
    /// between inputs.
    pub fn embed(&self, inputs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, EngineError> {
        let vocab = self.tokenizer.vocab_size();
        for (index, input) in inputs.iter().enumerate() {
            if input.is_empty() {
                return Err(EngineError::Request(format!("input {index} is empty")));
            }
            if input.len() > self.context_length {
                return Err(EngineError::Request(format!(
                    "input {index} is {} tokens; this model holds {}",
                    input.len(),
                    self.context_length
                )));
            }
            if let Some(bad) = input.iter().find(|&&t| t as usize >= vocab) {
                return Err(EngineError::Request(format!(
                    "input {index} holds token {bad}, outside the vocabulary of {vocab}"
                )));
            }
        }
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Job::Embed(EmbedJob {
                inputs,
                done: Vec::new(),
                reply,
            }))
            .map_err(|_| EngineError::Stopped)?;
        answer.recv().map_err(|_| EngineError::Stopped)
    }

    /// Length of the vectors [`Engine::embed`] returns.
    pub fn embedding_size(&self) -> usize {
        self.embedding_size
    }
}

/// Work for the scheduler thread.
enum Job {
    Generate(Request),
    Embed(EmbedJob),
}

/// Inputs to embed, one per scheduler turn.
struct EmbedJob {
    inputs: Vec<Vec<u32>>,
    done: Vec<Vec<f32>>,
    reply: mpsc::Sender<Vec<Vec<f32>>>,
}

/// A request on its way to the scheduler.
struct Request {
    prompt: Vec<u32>,
    budget: usize,
    params: SamplingParams,
    started: Instant,
    events: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
}

enum Event {
    Text(String),
    Done(Generation),
}

/// Requests running at once; more wait their turn.
pub const MAX_RUNNING: usize = 16;
/// Prompt tokens fed per step (on top of one token per running request): long prompts are
/// processed in chunks so that running requests keep streaming meanwhile.
const PROMPT_CHUNK: usize = 128;

struct Scheduler {
    model: Model,
    tokenizer: Arc<Tokenizer>,
    threads: usize,
}

/// A request being generated.
struct Running {
    request: Request,
    cache: KvCache,
    /// Prompt tokens already fed.
    fed: usize,
    /// The sampled token to feed next.
    next: Option<u32>,
    sampler: Sampler,
    text: String,
    sent: usize,
    utf8: Utf8Stream,
    generated: usize,
    tokens: Vec<u32>,
    first_token_at: Option<f64>,
    longest_stop: usize,
    finish: Option<FinishReason>,
}

impl Scheduler {
    fn run(self, queue: mpsc::Receiver<Job>) {
        let pool = Pool::new(self.threads);
        let mut running: Vec<Running> = Vec::new();
        let mut waiting = std::collections::VecDeque::new();
        let mut embeds = std::collections::VecDeque::new();
        let take = |job: Job,
                    waiting: &mut std::collections::VecDeque<Request>,
                    embeds: &mut std::collections::VecDeque<EmbedJob>| match job
        {
            Job::Generate(r) => waiting.push_back(r),
            Job::Embed(e) => embeds.push_back(e),
        };
        loop {
            if running.is_empty() && waiting.is_empty() && embeds.is_empty() {
                match queue.recv() {
                    Ok(job) => take(job, &mut waiting, &mut embeds),
                    Err(_) => return,
                }
            }
            while let Ok(job) = queue.try_recv() {
                take(job, &mut waiting, &mut embeds);
            }
            // One input of the oldest embedding job per turn, between generation steps.
            if let Some(job) = embeds.front_mut() {
                let next = job.done.len();
                let vector = self.embed_one(&pool, &job.inputs[next]);
                job.done.push(vector);
                if job.done.len() == job.inputs.len() {
                    if let Some(job) = embeds.pop_front() {
                        // A caller that went away needs no answer.
                        let _ = job.reply.send(job.done);
                    }
                }
            }
            while running.len() < MAX_RUNNING {
                let Some(request) = waiting.pop_front() else {
                    break;
                };
                running.push(self.start(request));
            }
            for r in &mut running {
                if r.request.cancel.load(Ordering::Relaxed) {
                    r.finish = Some(FinishReason::Cancelled);
                }
            }
            self.retire(&mut running);
            if running.is_empty() {
                continue;
            }
            let mut batch = Vec::new();
            let mut prompt_room = PROMPT_CHUNK;
            for (i, r) in running.iter_mut().enumerate() {
                if let Some(token) = r.next.take() {
                    batch.push(BatchToken {
                        sequence: i,
                        token,
                        position: r.request.prompt.len() + r.generated_fed(),
                        logits: true,
                    });
                } else if r.fed < r.request.prompt.len() && prompt_room > 0 {
                    let take = (r.request.prompt.len() - r.fed).min(prompt_room);
                    prompt_room -= take;
                    for k in r.fed..r.fed + take {
                        batch.push(BatchToken {
                            sequence: i,
                            token: r.request.prompt[k],
                            position: k,
                            logits: k + 1 == r.request.prompt.len(),
                        });
                    }
                    r.fed += take;
                }
            }
            let mut caches: Vec<&mut KvCache> = running.iter_mut().map(|r| &mut r.cache).collect();
            let logits = self.model.forward(&pool, &batch, &mut caches);
            let rows = logits.chunks_exact(self.model.config.vocab);
            for (token, row) in batch.iter().filter(|t| t.logits).zip(rows) {
                let r = &mut running[token.sequence];
                let sampled = r.sampler.sample(row);
                self.accept(r, sampled);
            }
            self.retire(&mut running);
        }
    }

    /// Mean of the final hidden states of `tokens`, scaled to unit length.
    fn embed_one(&self, pool: &Pool, tokens: &[u32]) -> Vec<f32> {
        let dim = self.model.config.dim;
        let mut cache = self.model.cache(tokens.len());
        let mut sum = vec![0f64; dim];
        for (chunk_index, chunk) in tokens.chunks(PROMPT_CHUNK).enumerate() {
            let batch: Vec<BatchToken> = chunk
                .iter()
                .enumerate()
                .map(|(i, &token)| BatchToken {
                    sequence: 0,
                    token,
                    position: chunk_index * PROMPT_CHUNK + i,
                    logits: false,
                })
                .collect();
            let hidden = self.model.hidden_states(pool, &batch, &mut [&mut cache]);
            for row in hidden.chunks_exact(dim) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += f64::from(*v);
                }
            }
        }
        let n = tokens.len().max(1) as f64;
        let norm = sum.iter().map(|s| (s / n) * (s / n)).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { 1.0 / (n * norm) } else { 0.0 };
        sum.iter().map(|s| (s * scale) as f32).collect()
    }

    fn start(&self, request: Request) -> Running {
        let capacity = request.prompt.len() + request.budget;
        let longest_stop = request
            .params
            .stop
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        Running {
            cache: self.model.cache(capacity),
            sampler: Sampler::new(&request.params),
            fed: 0,
            next: None,
            text: String::new(),
            sent: 0,
            utf8: Utf8Stream::default(),
            generated: 0,
            tokens: Vec::new(),
            first_token_at: None,
            longest_stop,
            finish: if request.budget == 0 {
                Some(FinishReason::Length)
            } else {
                None
            },
            request,
        }
    }

    /// Takes a sampled token: text out, and whether the request is finished.
    fn accept(&self, r: &mut Running, token: u32) {
        r.tokens.push(token);
        if r.first_token_at.is_none() {
            r.first_token_at = Some(r.request.started.elapsed().as_secs_f64());
        }
        if self.tokenizer.eos.contains(&token) {
            r.finish = Some(FinishReason::Stop);
            return;
        }
        r.generated += 1;
        if !self.tokenizer.is_control(token) {
            r.text
                .push_str(&r.utf8.push(&self.tokenizer.token_bytes(token)));
        }
        if let Some(at) = r
            .request
            .params
            .stop
            .iter()
            .filter_map(|s| r.text.find(s.as_str()))
            .min()
        {
            r.text.truncate(at);
            r.finish = Some(FinishReason::Stop);
            return;
        }
        // Text that can no longer become part of a stop sequence is released.
        let safe = safe_end(&r.text, r.longest_stop.saturating_sub(1));
        if safe > r.sent {
            let piece = r.text[r.sent..safe].to_string();
            r.sent = safe;
            if r.request.events.send(Event::Text(piece)).is_err() {
                r.finish = Some(FinishReason::Cancelled);
                return;
            }
        }
        if r.generated >= r.request.budget {
            r.finish = Some(FinishReason::Length);
        } else {
            r.next = Some(token);
        }
    }

    /// Sends the results of finished requests and drops them.
    fn retire(&self, running: &mut Vec<Running>) {
        let mut i = 0;
        while i < running.len() {
            let Some(mut finish) = running[i].finish else {
                i += 1;
                continue;
            };
            let mut r = running.swap_remove(i);
            if finish != FinishReason::Cancelled {
                r.text.push_str(&r.utf8.finish());
                if r.sent < r.text.len() {
                    let piece = r.text[r.sent..].to_string();
                    if r.request.events.send(Event::Text(piece)).is_err()
                        || r.request.cancel.load(Ordering::Relaxed)
                    {
                        finish = FinishReason::Cancelled;
                    }
                }
            }
            let elapsed = r.request.started.elapsed().as_secs_f64();
            let ttft = r.first_token_at.unwrap_or(elapsed);
            let _ = r.request.events.send(Event::Done(Generation {
                text: r.text,
                prompt_tokens: r.request.prompt.len(),
                completion_tokens: r.generated,
                tokens: r.tokens,
                finish,
                time_to_first_token: ttft,
                decode_seconds: elapsed - ttft,
            }));
        }
    }
}

impl Running {
    /// Generated tokens already in the cache (the one in `next` is not yet).
    fn generated_fed(&self) -> usize {
        self.tokens.len() - 1
    }
}

/// Greedy, temperature and nucleus sampling with a seeded generator (splitmix64).
struct Sampler {
    temperature: f32,
    top_p: f32,
    state: u64,
    probs: Vec<(f32, u32)>,
}

impl Sampler {
    fn new(params: &SamplingParams) -> Sampler {
        Sampler {
            temperature: params.temperature as f32,
            top_p: params.top_p as f32,
            state: params.seed,
            probs: Vec::new(),
        }
    }

    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    fn sample(&mut self, logits: &[f32]) -> u32 {
        let argmax = logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32;
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return argmax;
        }
        let max = logits[argmax as usize];
        self.probs.clear();
        let mut sum = 0f32;
        for (i, &l) in logits.iter().enumerate() {
            let p = ((l - max) / self.temperature).exp();
            if p > 0.0 {
                self.probs.push((p, i as u32));
                sum += p;
            }
        }
        let mut mass = sum;
        if self.top_p < 1.0 {
            self.probs
                .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut kept = 0f32;
            let mut keep = self.probs.len();
            for (n, (p, _)) in self.probs.iter().enumerate() {
                kept += p;
                if kept >= self.top_p * sum {
                    keep = n + 1;
                    break;
                }
            }
            self.probs.truncate(keep);
            mass = kept;
        }
        let mut target = self.uniform() * mass;
        for &(p, i) in &self.probs {
            if target < p {
                return i;
            }
            target -= p;
        }
        self.probs.last().map_or(argmax, |&(_, i)| i)
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

/// The prompt for `messages` in the format `template` (the GGUF's `tokenizer.chat_template`)
/// names: Llama 3's headers, else ChatML. See [`Engine::chat_prompt_with`] for `options`.
pub fn render_chat(template: &str, messages: &[ChatMessage], options: &TemplateOptions) -> String {
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
    if options.enable_thinking == Some(false) && template.contains("enable_thinking") {
        prompt.push_str("<think>\n\n</think>\n\n");
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_thinking_false_closes_an_empty_thinking_block_only_where_the_template_reads_it() {
        let messages = [ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        let off = TemplateOptions {
            enable_thinking: Some(false),
        };
        let qwen3 = "{%- if enable_thinking is defined and enable_thinking is false %}<think>…";
        assert_eq!(
            render_chat(qwen3, &messages, &off),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
        // Thinking on (or not said): the template's own start.
        assert!(render_chat(qwen3, &messages, &TemplateOptions::default())
            .ends_with("<|im_start|>assistant\n"));
        // A template that does not read it is unchanged by it.
        let smollm = "{% for message in messages %}<|im_start|>…";
        assert_eq!(
            render_chat(smollm, &messages, &off),
            render_chat(smollm, &messages, &TemplateOptions::default())
        );
    }

    #[test]
    fn sampler_is_greedy_at_zero_and_seeded_otherwise() {
        let logits = [0.1, 2.0, 1.9, -3.0];
        let mut greedy = Sampler::new(&SamplingParams::default());
        assert_eq!(greedy.sample(&logits), 1);
        let params = SamplingParams {
            temperature: 1.0,
            seed: 42,
            ..Default::default()
        };
        let draws = |params: &SamplingParams| {
            let mut s = Sampler::new(params);
            (0..200).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        let a = draws(&params);
        assert_eq!(a, draws(&params), "the same seed draws the same tokens");
        // Both likely tokens come up; the unlikely one (p ≈ 0.3%) rarely or never.
        assert!(a.iter().filter(|&&t| t == 1).count() > 50);
        assert!(a.iter().filter(|&&t| t == 2).count() > 50);
        let other_seed = SamplingParams {
            seed: 43,
            ..params.clone()
        };
        assert_ne!(a, draws(&other_seed), "another seed draws other tokens");
        // Over many draws each token comes up as often as its softmax probability says, to
        // within five standard deviations (the seed is fixed, so this never flakes).
        let mut sampler = Sampler::new(&params);
        let n = 20_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[sampler.sample(&logits) as usize] += 1;
        }
        let weights: Vec<f64> = logits.iter().map(|&l| f64::from(l - 2.0).exp()).collect();
        let sum: f64 = weights.iter().sum();
        for (token, weight) in weights.iter().enumerate() {
            let p = weight / sum;
            let expected = p * n as f64;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (counts[token] as f64 - expected).abs() < 5.0 * sigma,
                "token {token}: {} draws, expected {expected:.0} ± {sigma:.0}",
                counts[token]
            );
        }
        // Temperature sharpens: at 0.25 the second token (logit 0.1 lower) is drawn less
        // often than at 1.0.
        let cold = SamplingParams {
            temperature: 0.25,
            ..params.clone()
        };
        let mut cold_sampler = Sampler::new(&cold);
        let cold_second = (0..n).filter(|_| cold_sampler.sample(&logits) == 2).count();
        assert!(
            cold_second < counts[2],
            "{cold_second} at 0.25 vs {} at 1.0",
            counts[2]
        );
        // top_p 0.4 keeps only the most likely token (p ≈ 0.49).
        let nucleus = SamplingParams {
            top_p: 0.4,
            ..params
        };
        assert!(draws(&nucleus).iter().all(|&t| t == 1));
    }
}
