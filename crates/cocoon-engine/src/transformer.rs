//! The forward pass of llama-family decoder models (Llama, SmolLM, Qwen2, Qwen3) on the CPU,
//! over a batch of tokens that may belong to different sequences: prompt tokens of one request
//! and the next token of others go through the same matrix products, so the weights are read
//! once per step for all of them (continuous batching).

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use candle_core::quantized::gguf_file;

use crate::kernels::{dot_f32, Matrix, MatrixError, Prepared};
use crate::pool::{share, Pool};

/// How the rotary embedding pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rope {
    /// Adjacent pairs (llama's GGUF layout).
    Interleaved,
    /// First half with second half (Qwen, "NeoX").
    Halves,
}

/// The model's shape.
#[derive(Clone, Debug)]
pub struct Config {
    layers: usize,
    /// Width of the hidden state (and of an embedding).
    pub dim: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Dimensions that rotate (the first `rope_dim` of each head).
    rope_dim: usize,
    rope: Rope,
    eps: f32,
    /// `1 / base^(2i / rope_dim)`.
    inv_freq: Vec<f32>,
    /// Vocabulary size.
    pub vocab: usize,
    /// The longest sequence the model was trained for.
    pub context_length: usize,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The weights.
pub struct Model {
    /// The shape.
    pub config: Config,
    embeddings: Matrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `None`: tied to the embeddings.
    output: Option<Matrix>,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the file.
    #[error("reading the weights: {0}")]
    Io(#[from] std::io::Error),
    /// An architecture the engine does not run.
    #[error("unsupported architecture {0:?}: the built-in engine runs llama, qwen2 and qwen3 GGUF files")]
    Architecture(String),
    /// A tensor in a form the engine cannot use.
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    /// Missing or inconsistent metadata or tensors.
    #[error("{0}")]
    Format(String),
}

/// The architectures the engine runs.
pub const ARCHITECTURES: [&str; 3] = ["llama", "qwen2", "qwen3"];

fn meta_usize(content: &gguf_file::Content, key: &str) -> Option<usize> {
    let v = content.metadata.get(key)?;
    v.to_u32()
        .map(|x| x as usize)
        .or_else(|_| v.to_u64().map(|x| x as usize))
        .or_else(|_| v.to_i32().map(|x| x as usize))
        .ok()
}

fn meta_f32(content: &gguf_file::Content, key: &str) -> Option<f32> {
    let v = content.metadata.get(key)?;
    v.to_f32().or_else(|_| v.to_f64().map(|x| x as f32)).ok()
}

struct Reader<'a, R> {
    content: &'a gguf_file::Content,
    file: &'a mut R,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn bytes(
        &mut self,
        name: &str,
    ) -> Result<(candle_core::quantized::GgmlDType, Vec<usize>, Vec<u8>), LoadError> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| LoadError::Format(format!("tensor {name} is missing")))?;
        let dims = info.shape.dims().to_vec();
        let elements: usize = dims.iter().product();
        let dtype = info.ggml_dtype;
        if !elements.is_multiple_of(dtype.block_size()) {
            return Err(LoadError::Format(format!(
                "tensor {name}: {elements} elements are not whole blocks"
            )));
        }
        let size = elements / dtype.block_size() * dtype.type_size();
        let mut bytes = vec![0u8; size];
        self.file.seek(SeekFrom::Start(
            self.content.tensor_data_offset + info.offset,
        ))?;
        self.file.read_exact(&mut bytes)?;
        Ok((dtype, dims, bytes))
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix, LoadError> {
        let (dtype, dims, bytes) = self.bytes(name)?;
        if dims != [rows, cols] {
            return Err(LoadError::Format(format!(
                "tensor {name} is {dims:?}, the model's shape needs [{rows}, {cols}]"
            )));
        }
        Ok(Matrix::from_gguf(name, dtype, rows, cols, bytes)?)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, LoadError> {
        let (dtype, dims, bytes) = self.bytes(name)?;
        let elements: usize = dims.iter().product();
        if elements != len {
            return Err(LoadError::Format(format!(
                "tensor {name} has {elements} values, the model's shape needs {len}"
            )));
        }
        let m = Matrix::from_gguf(name, dtype, 1, len, bytes)?;
        let mut out = vec![0f32; len];
        m.row_f32(0, &mut out);
        Ok(out)
    }

    fn optional_vector(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>, LoadError> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Model {
    /// Loads the weights named in `content` from `file`.
    pub fn load<R: Read + Seek>(
        content: &gguf_file::Content,
        file: &mut R,
    ) -> Result<Model, LoadError> {
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if !ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(LoadError::Architecture(architecture));
        }
        let a = architecture.as_str();
        let need = |key: &str| {
            meta_usize(content, &format!("{a}.{key}"))
                .ok_or_else(|| LoadError::Format(format!("metadata {a}.{key} is missing")))
        };
        let layers = need("block_count")?;
        let dim = need("embedding_length")?;
        let hidden = need("feed_forward_length")?;
        let heads = need("attention.head_count")?;
        let kv_heads =
            meta_usize(content, &format!("{a}.attention.head_count_kv")).unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(LoadError::Format(format!(
                "{heads} heads cannot share {kv_heads} key/value heads"
            )));
        }
        let head_dim =
            meta_usize(content, &format!("{a}.attention.key_length")).unwrap_or(dim / heads);
        let rope_dim = meta_usize(content, &format!("{a}.rope.dimension_count"))
            .unwrap_or(head_dim)
            .min(head_dim);
        if head_dim == 0 || !rope_dim.is_multiple_of(2) {
            return Err(LoadError::Format(format!(
                "head size {head_dim}, rotary size {rope_dim}"
            )));
        }
        let base = meta_f32(content, &format!("{a}.rope.freq_base")).unwrap_or(10_000.0);
        let eps =
            meta_f32(content, &format!("{a}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-6);
        let inv_freq = (0..rope_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / rope_dim as f32))
            .collect();
        let mut reader = Reader { content, file };
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| LoadError::Format("tensor token_embd.weight is missing".into()))?
            .shape
            .dims()
            .first()
            .copied()
            .unwrap_or(0);
        let config = Config {
            layers,
            dim,
            heads,
            kv_heads,
            head_dim,
            rope_dim,
            rope: if a == "llama" {
                Rope::Interleaved
            } else {
                Rope::Halves
            },
            eps,
            inv_freq,
            vocab,
            context_length: meta_usize(content, &format!("{a}.context_length")).unwrap_or(2048),
        };
        let (q_dim, kv_dim) = (config.q_dim(), config.kv_dim());
        let embeddings = reader.matrix("token_embd.weight", vocab, dim)?;
        let mut blocks = Vec::with_capacity(layers);
        for l in 0..layers {
            let n = |s: &str| format!("blk.{l}.{s}");
            blocks.push(Layer {
                attn_norm: reader.vector(&n("attn_norm.weight"), dim)?,
                wq: reader.matrix(&n("attn_q.weight"), q_dim, dim)?,
                wk: reader.matrix(&n("attn_k.weight"), kv_dim, dim)?,
                wv: reader.matrix(&n("attn_v.weight"), kv_dim, dim)?,
                bq: reader.optional_vector(&n("attn_q.bias"), q_dim)?,
                bk: reader.optional_vector(&n("attn_k.bias"), kv_dim)?,
                bv: reader.optional_vector(&n("attn_v.bias"), kv_dim)?,
                q_norm: reader.optional_vector(&n("attn_q_norm.weight"), head_dim)?,
                k_norm: reader.optional_vector(&n("attn_k_norm.weight"), head_dim)?,
                wo: reader.matrix(&n("attn_output.weight"), dim, q_dim)?,
                ffn_norm: reader.vector(&n("ffn_norm.weight"), dim)?,
                gate: reader.matrix(&n("ffn_gate.weight"), hidden, dim)?,
                up: reader.matrix(&n("ffn_up.weight"), hidden, dim)?,
                down: reader.matrix(&n("ffn_down.weight"), dim, hidden)?,
            });
        }
        let norm = reader.vector("output_norm.weight", dim)?;
        let output = if reader.has("output.weight") {
            Some(reader.matrix("output.weight", vocab, dim)?)
        } else {
            None
        };
        Ok(Model {
            config,
            embeddings,
            layers: blocks,
            norm,
            output,
        })
    }

    fn output(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.embeddings)
    }

    /// A key/value cache for one sequence of up to `capacity` tokens.
    pub fn cache(&self, capacity: usize) -> KvCache {
        // The cache grows as tokens come: most answers stop long before their budget.
        KvCache {
            keys: vec![Vec::new(); self.config.layers],
            values: vec![Vec::new(); self.config.layers],
            capacity,
        }
    }

    /// Runs `batch` through the model. Each token is appended to its sequence's cache at its
    /// position (positions of a sequence must be consecutive from what the cache holds); the
    /// logits of the tokens with `logits: true` are returned in batch order, one row of
    /// `config.vocab` values each.
    pub fn forward(
        &self,
        pool: &Pool,
        batch: &[BatchToken],
        caches: &mut [&mut KvCache],
    ) -> Vec<f32> {
        let c = &self.config;
        let dim = c.dim;
        let x = self.layers_forward(pool, batch, caches);
        let wanted: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].logits).collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut last = Vec::with_capacity(wanted.len() * dim);
        for &i in &wanted {
            last.extend_from_slice(&x[i * dim..(i + 1) * dim]);
        }
        let mut normed = vec![0f32; last.len()];
        rms_norm(&last, &self.norm, c.eps, &mut normed);
        let mut logits = vec![0f32; wanted.len() * c.vocab];
        matmul(pool, &[self.output()], &normed, wanted.len(), &mut logits);
        logits
    }

    /// Runs `batch` through the model like [`Model::forward`] and returns the final normalised
    /// hidden state of every token (`batch.len()` rows of `config.dim` values): what
    /// llama.cpp's embeddings are pooled from.
    pub fn hidden_states(
        &self,
        pool: &Pool,
        batch: &[BatchToken],
        caches: &mut [&mut KvCache],
    ) -> Vec<f32> {
        let x = self.layers_forward(pool, batch, caches);
        let mut normed = vec![0f32; x.len()];
        rms_norm(&x, &self.norm, self.config.eps, &mut normed);
        normed
    }

    /// The residual stream after the last layer, one row of `config.dim` per batch token.
    fn layers_forward(
        &self,
        pool: &Pool,
        batch: &[BatchToken],
        caches: &mut [&mut KvCache],
    ) -> Vec<f32> {
        let c = &self.config;
        let t = batch.len();
        let (dim, q_dim, kv_dim, head_dim) = (c.dim, c.q_dim(), c.kv_dim(), c.head_dim);
        let mut x = vec![0f32; t * dim];
        for (i, tok) in batch.iter().enumerate() {
            self.embeddings.row_f32(
                (tok.token as usize).min(c.vocab - 1),
                &mut x[i * dim..(i + 1) * dim],
            );
        }
        // Rotation angles per token, shared by every layer.
        let half = c.rope_dim / 2;
        let mut cos = vec![0f32; t * half];
        let mut sin = vec![0f32; t * half];
        for (i, tok) in batch.iter().enumerate() {
            for (j, f) in c.inv_freq.iter().enumerate() {
                let angle = tok.position as f32 * f;
                cos[i * half + j] = angle.cos();
                sin[i * half + j] = angle.sin();
            }
        }
        let hidden = self.layers.first().map_or(0, |l| l.gate.rows);
        let mut xn = vec![0f32; t * dim];
        let mut qkv = vec![0f32; t * (q_dim + 2 * kv_dim)];
        let mut attn = vec![0f32; t * q_dim];
        let mut proj = vec![0f32; t * dim];
        let mut gate_up = vec![0f32; t * 2 * hidden];
        let mut act = vec![0f32; t * hidden];
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut xn);
            matmul(pool, &[&layer.wq, &layer.wk, &layer.wv], &xn, t, &mut qkv);
            let width = q_dim + 2 * kv_dim;
            for i in 0..t {
                let row = &mut qkv[i * width..(i + 1) * width];
                let (q, rest) = row.split_at_mut(q_dim);
                let (k, v) = rest.split_at_mut(kv_dim);
                add(q, layer.bq.as_deref());
                add(k, layer.bk.as_deref());
                add(v, layer.bv.as_deref());
                let (cos, sin) = (
                    &cos[i * half..(i + 1) * half],
                    &sin[i * half..(i + 1) * half],
                );
                for (x, norm) in [(q, &layer.q_norm), (k, &layer.k_norm)] {
                    for head in x.chunks_exact_mut(head_dim) {
                        if let Some(w) = norm {
                            rms_norm_in_place(head, w, c.eps);
                        }
                        rope(c.rope, head, cos, sin);
                    }
                }
                let tok = &batch[i];
                let cache = &mut caches[tok.sequence];
                debug_assert!(tok.position < cache.capacity);
                let at = tok.position * kv_dim;
                for store in [&mut cache.keys[l], &mut cache.values[l]] {
                    if store.len() < at + kv_dim {
                        store.resize(at + kv_dim, 0.0);
                    }
                }
                cache.keys[l][at..at + kv_dim].copy_from_slice(k);
                cache.values[l][at..at + kv_dim].copy_from_slice(v);
            }
            attention(pool, c, l, batch, caches, &qkv, &mut attn);
            matmul(pool, &[&layer.wo], &attn, t, &mut proj);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut xn);
            matmul(pool, &[&layer.gate, &layer.up], &xn, t, &mut gate_up);
            for i in 0..t {
                let row = &gate_up[i * 2 * hidden..(i + 1) * 2 * hidden];
                let (g, u) = row.split_at(hidden);
                for ((o, g), u) in act[i * hidden..(i + 1) * hidden].iter_mut().zip(g).zip(u) {
                    *o = g / (1.0 + (-g).exp()) * u;
                }
            }
            matmul(pool, &[&layer.down], &act, t, &mut proj);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
        }
        x
    }
}

/// One token of a forward batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchToken {
    /// Index into the caches passed to [`Model::forward`].
    pub sequence: usize,
    /// The token id.
    pub token: u32,
    /// Its position in its sequence.
    pub position: usize,
    /// Whether its logits are wanted.
    pub logits: bool,
}

/// Keys and values of one sequence, per layer: `capacity` × `kv_dim` each.
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    /// Tokens it holds at most.
    pub capacity: usize,
}

fn add(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for (a, b) in x.iter_mut().zip(b) {
            *a += b;
        }
    }
}

/// Row-wise RMS norm of `x` (rows of `w.len()`) into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / n as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(row).zip(w) {
            *o = v * scale * w;
        }
    }
}

fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, w) in x.iter_mut().zip(w) {
        *v *= scale * w;
    }
}

fn rope(kind: Rope, head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for j in 0..half {
        let (a, b) = match kind {
            Rope::Interleaved => (2 * j, 2 * j + 1),
            Rope::Halves => (j, j + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[j] - x1 * sin[j];
        head[b] = x0 * sin[j] + x1 * cos[j];
    }
}

/// A raw pointer that threads write disjoint parts of.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every user writes elements no other thread touches during the run.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// # Safety
    /// As `pointer::add`.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// `out[i] = [m_0 · x_i, m_1 · x_i, …]` for the `t` rows of `x`: the matrices' outputs side by
/// side (q, k and v in one run; gate and up in one run).
fn matmul(pool: &Pool, matrices: &[&Matrix], x: &[f32], t: usize, out: &mut [f32]) {
    let width: usize = matrices.iter().map(|m| m.rows).sum();
    debug_assert_eq!(out.len(), t * width);
    // One preparation per distinct activation format.
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut which = Vec::with_capacity(matrices.len());
    for (i, m) in matrices.iter().enumerate() {
        match (0..i).find(|&j| matrices[j].same_preparation(m)) {
            Some(j) => which.push(which[j]),
            None => {
                which.push(prepared.len());
                prepared.push(m.prepare(x));
            }
        }
    }
    let out_ptr = Out(out.as_mut_ptr());
    let threads = pool.threads();
    pool.run(&|thread| {
        // Rows of all matrices as one range, split evenly.
        let mine = share(width, thread, threads, 16);
        let mut offset = 0;
        for (m, &p) in matrices.iter().zip(&which) {
            let range: Range<usize> = mine.start.max(offset)..mine.end.min(offset + m.rows);
            if range.start < range.end {
                // SAFETY: rows `range` of matrix `m` land in columns offset+range of `out`,
                // which only this thread writes in this run.
                unsafe {
                    m.rows(
                        &prepared[p],
                        t,
                        range.start - offset..range.end - offset,
                        out_ptr.at(offset),
                        width,
                    )
                };
            }
            offset += m.rows;
        }
    });
}

/// Causal attention of every batch token over its sequence's cache, heads split across threads.
fn attention(
    pool: &Pool,
    c: &Config,
    layer: usize,
    batch: &[BatchToken],
    caches: &[&mut KvCache],
    qkv: &[f32],
    out: &mut [f32],
) {
    let (q_dim, kv_dim, head_dim) = (c.q_dim(), c.kv_dim(), c.head_dim);
    let width = q_dim + 2 * kv_dim;
    let group = c.heads / c.kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let jobs = batch.len() * c.heads;
    let out_ptr = Out(out.as_mut_ptr());
    let threads = pool.threads();
    pool.run(&|thread| {
        let mut scores = Vec::new();
        for job in share(jobs, thread, threads, 1) {
            let (i, h) = (job / c.heads, job % c.heads);
            let tok = &batch[i];
            let cache = &caches[tok.sequence];
            let (keys, values) = (&cache.keys[layer], &cache.values[layer]);
            let q = &qkv[i * width + h * head_dim..i * width + (h + 1) * head_dim];
            let kv = (h / group) * head_dim;
            let n = tok.position + 1;
            scores.clear();
            let mut max = f32::NEG_INFINITY;
            for p in 0..n {
                let k = &keys[p * kv_dim + kv..p * kv_dim + kv + head_dim];
                let s = dot_f32(q, k) * scale;
                max = max.max(s);
                scores.push(s);
            }
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            // SAFETY: head h of token i is written by this job only.
            let o = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.at(i * q_dim + h * head_dim), head_dim)
            };
            o.fill(0.0);
            for (p, s) in scores.iter().enumerate() {
                let w = s / sum;
                let v = &values[p * kv_dim + kv..p * kv_dim + kv + head_dim];
                for (o, v) in o.iter_mut().zip(v) {
                    *o += w * v;
                }
            }
        }
    });
}
