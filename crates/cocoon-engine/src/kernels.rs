//! Weight matrices in their GGUF formats and the dot products of the matrix–vector products.
//!
//! Q4_0, Q4_1 and Q8_0 (the formats of SmolLM2's GGUF and of most small models), and Q4_K and
//! Q6_K (the pair in the common Q4_K_M files), have AVX2 kernels chosen at run time, so a
//! portable build is as fast as a `target-cpu` one. Activations are quantized to 8 bits first,
//! as llama.cpp does (Q8_0 for Q4_0/Q8_0 weights, Q8_1 for Q4_1, Q8_K for k-quants). The other
//! quantized formats (Q2_K, Q3_K, Q5_K, Q5_x) go through candle's block types and dot products,
//! which use AVX2 only when the build enables it (`RUSTFLAGS="-C target-cpu=native"`).
//! F16/BF16 matrices are widened to f32 when loaded.

use std::any::Any;
use std::ops::Range;
use std::sync::OnceLock;

use candle_core::quantized::k_quants::{self, GgmlType};
use candle_core::quantized::GgmlDType;

/// Values per quantization block of Q4_0/Q4_1/Q8_0.
const QK: usize = 32;

/// f16 → f32 for every bit pattern (ggml keeps the same table): one load per conversion, in any
/// build.
fn f16_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| half::f16::from_bits(bits).to_f32())
            .collect()
    })
}

#[inline(always)]
fn f16_at(table: &[f32], bytes: &[u8], at: usize) -> f32 {
    table[u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize]
}

/// An activation row block: 32 values quantized to i8 with scale `d` (rounded to f16 as
/// llama.cpp stores it) and, for Q8_1, `s = d · Σ qs`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Q8Block {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

/// Quantizes `x` (a multiple of 32 long) into Q8 blocks.
fn quantize_q8(x: &[f32], out: &mut Vec<Q8Block>) {
    for chunk in x.chunks_exact(QK) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(chunk) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        let d16 = half::f16::from_f32(d).to_f32();
        out.push(Q8Block {
            d: d16,
            s: half::f16::from_f32(sum as f32 * d).to_f32(),
            qs,
        });
    }
}

/// A weight matrix: `rows` × `cols`, each row a dot product away from an output.
pub struct Matrix {
    kind: Kind,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
}

enum Kind {
    F32(Vec<f32>),
    /// Raw GGUF blocks of Q4_0 / Q4_1 / Q8_0 (own kernels).
    Q4_0(Vec<u8>),
    Q4_1(Vec<u8>),
    Q8_0(Vec<u8>),
    /// Any other candle-supported block format.
    Candle(Box<dyn CandleRows>),
}

/// Activations prepared for one matrix format: `t` rows of `cols` values.
pub enum Prepared {
    /// Plain f32.
    F32(Vec<f32>),
    /// Q8_0 or Q8_1 blocks.
    Q8(Vec<Q8Block>),
    /// A candle dot-product type.
    Candle(Box<dyn Any + Send + Sync>),
}

/// Why a tensor could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("tensor {name}: {why}")]
pub struct MatrixError {
    name: String,
    why: String,
}

impl Matrix {
    /// A matrix from a GGUF tensor's raw bytes (`rows` × `cols`, row-major blocks).
    pub fn from_gguf(
        name: &str,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Matrix, MatrixError> {
        let error = |why: String| MatrixError {
            name: name.to_string(),
            why,
        };
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(error(format!(
                "{cols} columns are not whole {dtype:?} blocks"
            )));
        }
        let expected = rows * cols / dtype.block_size() * dtype.type_size();
        if bytes.len() != expected {
            return Err(error(format!(
                "{} bytes, a {rows}×{cols} {dtype:?} matrix takes {expected}",
                bytes.len()
            )));
        }
        let kind = match dtype {
            GgmlDType::F32 => Kind::F32(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            GgmlDType::F16 => {
                let table = f16_table();
                Kind::F32(
                    (0..bytes.len() / 2)
                        .map(|i| f16_at(table, &bytes, i * 2))
                        .collect(),
                )
            }
            GgmlDType::BF16 => Kind::F32(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            GgmlDType::Q4_0 => Kind::Q4_0(bytes),
            GgmlDType::Q4_1 => Kind::Q4_1(bytes),
            GgmlDType::Q8_0 => Kind::Q8_0(bytes),
            GgmlDType::Q5_0 => Kind::Candle(candle_rows::<k_quants::BlockQ5_0>(&bytes)),
            GgmlDType::Q5_1 => Kind::Candle(candle_rows::<k_quants::BlockQ5_1>(&bytes)),
            GgmlDType::Q2K => Kind::Candle(candle_rows::<k_quants::BlockQ2K>(&bytes)),
            GgmlDType::Q3K => Kind::Candle(candle_rows::<k_quants::BlockQ3K>(&bytes)),
            GgmlDType::Q4K => Kind::Candle(candle_rows::<k_quants::BlockQ4K>(&bytes)),
            GgmlDType::Q5K => Kind::Candle(candle_rows::<k_quants::BlockQ5K>(&bytes)),
            GgmlDType::Q6K => Kind::Candle(candle_rows::<k_quants::BlockQ6K>(&bytes)),
            GgmlDType::Q8K => Kind::Candle(candle_rows::<k_quants::BlockQ8K>(&bytes)),
            other => return Err(error(format!("the {other:?} format is not supported"))),
        };
        Ok(Matrix { kind, rows, cols })
    }

    /// Prepares `t` activation rows (`x` is `t` × `cols`) for this matrix's dot products.
    pub fn prepare(&self, x: &[f32]) -> Prepared {
        debug_assert_eq!(x.len() % self.cols, 0);
        match &self.kind {
            Kind::F32(_) => Prepared::F32(x.to_vec()),
            Kind::Q4_0(_) | Kind::Q4_1(_) | Kind::Q8_0(_) => {
                let mut blocks = Vec::with_capacity(x.len() / QK);
                quantize_q8(x, &mut blocks);
                Prepared::Q8(blocks)
            }
            Kind::Candle(c) => Prepared::Candle(c.prepare(x, self.cols)),
        }
    }

    /// Whether `self` and `other` take the same prepared activations (so one preparation serves
    /// both).
    pub fn same_preparation(&self, other: &Matrix) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::F32(_), Kind::F32(_)) => true,
            (
                Kind::Q4_0(_) | Kind::Q4_1(_) | Kind::Q8_0(_),
                Kind::Q4_0(_) | Kind::Q4_1(_) | Kind::Q8_0(_),
            ) => true,
            (Kind::Candle(a), Kind::Candle(b)) => a.dot_type() == b.dot_type(),
            _ => false,
        }
    }

    /// `out[i · stride + r] = row r · x_i` for `r` in `rows` and every prepared row `i`.
    ///
    /// # Safety
    /// `out` must be valid for those writes, and no other thread may touch those elements.
    pub unsafe fn rows(
        &self,
        x: &Prepared,
        t: usize,
        rows: Range<usize>,
        out: *mut f32,
        stride: usize,
    ) {
        let cols = self.cols;
        let blocks = cols / QK;
        match (&self.kind, x) {
            (Kind::F32(w), Prepared::F32(x)) => {
                for r in rows {
                    let row = &w[r * cols..(r + 1) * cols];
                    for i in 0..t {
                        *out.add(i * stride + r) = dot_f32(row, &x[i * cols..(i + 1) * cols]);
                    }
                }
            }
            (Kind::Q4_0(w), Prepared::Q8(x)) => {
                q8_rows(w, 18, x, blocks, t, rows, out, stride, dot_q4_0, dot4_q4_0)
            }
            (Kind::Q4_1(w), Prepared::Q8(x)) => {
                q8_rows(w, 20, x, blocks, t, rows, out, stride, dot_q4_1, dot4_q4_1)
            }
            (Kind::Q8_0(w), Prepared::Q8(x)) => {
                q8_rows(w, 34, x, blocks, t, rows, out, stride, dot_q8_0, dot4_q8_0)
            }
            (Kind::Candle(c), Prepared::Candle(x)) => {
                c.rows(x.as_ref(), cols, t, rows, out, stride)
            }
            _ => unreachable!("activations prepared for another format"),
        }
    }

    /// Row `r` as f32 (an embedding lookup).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) {
        let cols = self.cols;
        let table = f16_table();
        match &self.kind {
            Kind::F32(w) => out.copy_from_slice(&w[r * cols..(r + 1) * cols]),
            Kind::Q4_0(w) => {
                let row_bytes = cols / QK * 18;
                for (b, o) in w[r * row_bytes..(r + 1) * row_bytes]
                    .chunks_exact(18)
                    .zip(out.chunks_exact_mut(QK))
                {
                    let d = f16_at(table, b, 0);
                    for j in 0..16 {
                        o[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                        o[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
                    }
                }
            }
            Kind::Q4_1(w) => {
                let row_bytes = cols / QK * 20;
                for (b, o) in w[r * row_bytes..(r + 1) * row_bytes]
                    .chunks_exact(20)
                    .zip(out.chunks_exact_mut(QK))
                {
                    let (d, m) = (f16_at(table, b, 0), f16_at(table, b, 2));
                    for j in 0..16 {
                        o[j] = (b[4 + j] & 0xF) as f32 * d + m;
                        o[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
                    }
                }
            }
            Kind::Q8_0(w) => {
                let row_bytes = cols / QK * 34;
                for (b, o) in w[r * row_bytes..(r + 1) * row_bytes]
                    .chunks_exact(34)
                    .zip(out.chunks_exact_mut(QK))
                {
                    let d = f16_at(table, b, 0);
                    for j in 0..QK {
                        o[j] = b[2 + j] as i8 as f32 * d;
                    }
                }
            }
            Kind::Candle(c) => c.row_f32(r, cols, out),
        }
    }
}

type Dot = fn(&[u8], &[Q8Block]) -> f32;
type Dot4 = fn(&[u8], [&[Q8Block]; 4]) -> [f32; 4];

/// Rows of a block-quantized matrix against `t` activation rows: four activation rows at a
/// time share each unpacked weight block (prompt processing, batches), the rest one by one.
///
/// # Safety
/// As [`Matrix::rows`].
#[allow(clippy::too_many_arguments)]
unsafe fn q8_rows(
    w: &[u8],
    block_bytes: usize,
    x: &[Q8Block],
    blocks: usize,
    t: usize,
    rows: Range<usize>,
    out: *mut f32,
    stride: usize,
    dot: Dot,
    dot4: Dot4,
) {
    let row_bytes = blocks * block_bytes;
    let xrow = |i: usize| &x[i * blocks..(i + 1) * blocks];
    for r in rows {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        let mut i = 0;
        while i + 4 <= t {
            let sums = dot4(row, [xrow(i), xrow(i + 1), xrow(i + 2), xrow(i + 3)]);
            for (k, v) in sums.into_iter().enumerate() {
                *out.add((i + k) * stride + r) = v;
            }
            i += 4;
        }
        while i < t {
            *out.add(i * stride + r) = dot(row, xrow(i));
            i += 1;
        }
    }
}

/// f32 dot product in 8 independent lanes (the compiler vectorizes it).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Which kernels this CPU runs (for logs and the benchmark).
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return "avx2";
    }
    "scalar"
}

fn scalar_dot_q4_0(w: &[u8], x: &[Q8Block]) -> f32 {
    let table = f16_table();
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(18).zip(x) {
        let mut s = 0i32;
        for j in 0..16 {
            s += ((b[2 + j] & 0xF) as i32 - 8) * y.qs[j] as i32;
            s += ((b[2 + j] >> 4) as i32 - 8) * y.qs[j + 16] as i32;
        }
        sum += f16_at(table, b, 0) * y.d * s as f32;
    }
    sum
}

fn scalar_dot_q4_1(w: &[u8], x: &[Q8Block]) -> f32 {
    let table = f16_table();
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(20).zip(x) {
        let mut s = 0i32;
        for j in 0..16 {
            s += (b[4 + j] & 0xF) as i32 * y.qs[j] as i32;
            s += (b[4 + j] >> 4) as i32 * y.qs[j + 16] as i32;
        }
        sum += f16_at(table, b, 0) * y.d * s as f32 + f16_at(table, b, 2) * y.s;
    }
    sum
}

fn scalar_dot_q8_0(w: &[u8], x: &[Q8Block]) -> f32 {
    let table = f16_table();
    let mut sum = 0f32;
    for (b, y) in w.chunks_exact(34).zip(x) {
        let mut s = 0i32;
        for j in 0..QK {
            s += b[2 + j] as i8 as i32 * y.qs[j] as i32;
        }
        sum += f16_at(table, b, 0) * y.d * s as f32;
    }
    sum
}

/// The dot products of one format, one and four activation rows at a time: AVX2 when the CPU
/// has it, else the scalar reference.
macro_rules! dispatch {
    ($one:ident, $four:ident, $scalar:ident) => {
        fn $one(w: &[u8], x: &[Q8Block]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA.
                return unsafe { avx2::$one(w, x) };
            }
            $scalar(w, x)
        }

        fn $four(w: &[u8], x: [&[Q8Block]; 4]) -> [f32; 4] {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA.
                return unsafe { avx2::$four(w, x) };
            }
            x.map(|x| $scalar(w, x))
        }
    };
}
dispatch!(dot_q4_0, dot4_q4_0, scalar_dot_q4_0);
dispatch!(dot_q4_1, dot4_q4_1, scalar_dot_q4_1);
dispatch!(dot_q8_0, dot4_q8_0, scalar_dot_q8_0);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 kernels (ggml's, in Rust): 32 nibbles or bytes against 32 i8 activations per
    //! block, summed in i16 pairs and accumulated in f32 with FMA.
    use std::arch::x86_64::*;

    use super::{f16_at, f16_table, Q8Block};

    #[inline(always)]
    unsafe fn hsum(x: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(x, 1);
        let lo = _mm256_castps256_ps128(x);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Unsigned bytes × signed bytes, summed to 8 f32 lanes.
    #[inline(always)]
    unsafe fn mul_sum_us8(ax: __m256i, sy: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
    }

    /// Signed bytes × signed bytes, summed to 8 f32 lanes.
    #[inline(always)]
    unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        mul_sum_us8(ax, sy)
    }

    /// 16 bytes of nibbles → 32 bytes: the low nibbles, then the high ones.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> __m256i {
        let tmp = _mm_loadu_si128(p as *const __m128i);
        let both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
        _mm256_and_si256(both, _mm256_set1_epi8(0xF))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4_0(w: &[u8], x: &[Q8Block]) -> f32 {
        let table = f16_table();
        let mut acc = _mm256_setzero_ps();
        for (i, y) in x.iter().enumerate() {
            let b = &w[i * 18..i * 18 + 18];
            let d = _mm256_set1_ps(f16_at(table, b, 0) * y.d);
            let qx = _mm256_sub_epi8(nibbles(b.as_ptr().add(2)), _mm256_set1_epi8(8));
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4_1(w: &[u8], x: &[Q8Block]) -> f32 {
        let table = f16_table();
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for (i, y) in x.iter().enumerate() {
            let b = &w[i * 20..i * 20 + 20];
            let d = _mm256_set1_ps(f16_at(table, b, 0) * y.d);
            mins += f16_at(table, b, 2) * y.s;
            let qx = nibbles(b.as_ptr().add(4));
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc);
        }
        hsum(acc) + mins
    }

    #[inline(always)]
    unsafe fn load(y: &Q8Block) -> __m256i {
        _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_q4_0(w: &[u8], x: [&[Q8Block]; 4]) -> [f32; 4] {
        let table = f16_table();
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in 0..x[0].len() {
            let b = &w[i * 18..i * 18 + 18];
            let dw = f16_at(table, b, 0);
            let qx = _mm256_sub_epi8(nibbles(b.as_ptr().add(2)), _mm256_set1_epi8(8));
            let ax = _mm256_sign_epi8(qx, qx);
            for k in 0..4 {
                let y = &x[k][i];
                let sy = _mm256_sign_epi8(load(y), qx);
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), mul_sum_us8(ax, sy), acc[k]);
            }
        }
        acc.map(|a| hsum(a))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_q4_1(w: &[u8], x: [&[Q8Block]; 4]) -> [f32; 4] {
        let table = f16_table();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        for i in 0..x[0].len() {
            let b = &w[i * 20..i * 20 + 20];
            let (dw, mw) = (f16_at(table, b, 0), f16_at(table, b, 2));
            let qx = nibbles(b.as_ptr().add(4));
            for k in 0..4 {
                let y = &x[k][i];
                mins[k] += mw * y.s;
                acc[k] =
                    _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), mul_sum_us8(qx, load(y)), acc[k]);
            }
        }
        [0, 1, 2, 3].map(|k| hsum(acc[k]) + mins[k])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_q8_0(w: &[u8], x: [&[Q8Block]; 4]) -> [f32; 4] {
        let table = f16_table();
        let mut acc = [_mm256_setzero_ps(); 4];
        for i in 0..x[0].len() {
            let b = &w[i * 34..i * 34 + 34];
            let dw = f16_at(table, b, 0);
            let qx = _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i);
            let ax = _mm256_sign_epi8(qx, qx);
            for k in 0..4 {
                let y = &x[k][i];
                let sy = _mm256_sign_epi8(load(y), qx);
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), mul_sum_us8(ax, sy), acc[k]);
            }
        }
        acc.map(|a| hsum(a))
    }

    // The k-quant kernels are ggml's (through candle's Rust port, `candle-core/src/quantized/
    // avx.rs`, MIT/Apache-2.0), reading candle's `repr(C)` blocks by offset:
    // Q4_K (144 B): d f16 @0, dmin f16 @2, scales [12] @4, qs [128] @16;
    // Q6_K (210 B): ql [128] @0, qh [64] @128, scales i8 [16] @192, d f16 @208;
    // Q8_K (292 B): d f32 @0, qs i8 [256] @4, bsums i16 [16] @260.
    const Q4K: usize = 144;
    const Q6K: usize = 210;
    const Q8K: usize = 292;

    #[inline(always)]
    unsafe fn f16_ptr(p: *const u8) -> f32 {
        f16_table()[u16::from_le_bytes([*p, *p.add(1)]) as usize]
    }

    #[inline(always)]
    unsafe fn q8k_d(y: *const u8) -> f32 {
        f32::from_le_bytes([*y, *y.add(1), *y.add(2), *y.add(3)])
    }

    /// Bytes `2i, 2i+1` repeated: picks the i-th 16-bit scale into every lane pair.
    #[inline(always)]
    unsafe fn scale_pair(i: usize) -> __m256i {
        _mm256_set1_epi16((((2 * i + 1) << 8) | (2 * i)) as i16)
    }

    /// Byte `i` repeated eight times, then `i + 1` eight times.
    #[inline(always)]
    unsafe fn scale_bytes(i: usize) -> __m128i {
        _mm_set_epi64x(
            i64::from_le_bytes([(2 * i + 1) as u8; 8]),
            i64::from_le_bytes([(2 * i) as u8; 8]),
        )
    }

    /// # Safety
    /// `x` holds `n` Q4_K blocks, `y` `n` Q8_K blocks; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4k_q8k(x: *const u8, y: *const u8, n: usize) -> f32 {
        const KMASK1: u32 = 0x3f3f_3f3f;
        const KMASK2: u32 = 0x0f0f_0f0f;
        const KMASK3: u32 = 0x0303_0303;
        let m4 = _mm256_set1_epi8(0xF);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for b in 0..n {
            let (x, y) = (x.add(b * Q4K), y.add(b * Q8K));
            let yd = q8k_d(y);
            let d = yd * f16_ptr(x);
            let dmin = -yd * f16_ptr(x.add(2));
            let sc = std::slice::from_raw_parts(x.add(4), 12);
            let mut utmp = [0u32; 4];
            for (k, u) in utmp.iter_mut().take(3).enumerate() {
                *u = u32::from_le_bytes([sc[4 * k], sc[4 * k + 1], sc[4 * k + 2], sc[4 * k + 3]]);
            }
            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;
            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));
            let q8sums = _mm256_loadu_si256(y.add(260) as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);
            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = _mm256_insertf128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
            let mut sumi = _mm256_setzero_si256();
            let (mut q4, mut q8) = (x.add(16), y.add(4));
            for j in 0..4 {
                let scale_l = _mm256_shuffle_epi8(scales, scale_pair(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, scale_pair(2 * j + 1));
                let q4bits = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
                sumi = _mm256_add_epi32(sumi, p16l);
                let q8h = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
                sumi = _mm256_add_epi32(sumi, p16h);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        let acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
        hsum(acc) + _mm_cvtss_f32(acc_m)
    }

    /// # Safety
    /// `x` holds `n` Q6_K blocks, `y` `n` Q8_K blocks; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q6k_q8k(x: *const u8, y: *const u8, n: usize) -> f32 {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let m32s = _mm256_set1_epi8(32);
        let mut acc = _mm256_setzero_ps();
        for b in 0..n {
            let (x, y) = (x.add(b * Q6K), y.add(b * Q8K));
            let d = q8k_d(y) * f16_ptr(x.add(208));
            let (mut q4, mut qh, mut q8) = (x, x.add(128), y.add(4));
            let scales = _mm_loadu_si128(x.add(192) as *const __m128i);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..2 {
                let is = j * 4;
                let scale =
                    |k: usize| _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scale_bytes(is + k)));
                let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                let q4bits2 = _mm256_loadu_si256(q4.add(32) as *const __m256i);
                q4 = q4.add(64);
                let q4bits_h = _mm256_loadu_si256(qh as *const __m256i);
                qh = qh.add(32);
                let high = |shift: i32| match shift {
                    0 => _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4),
                    2 => _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4),
                    4 => _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4),
                    _ => _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4),
                };
                let q = [
                    _mm256_or_si256(_mm256_and_si256(q4bits1, m4), high(0)),
                    _mm256_or_si256(_mm256_and_si256(q4bits2, m4), high(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), high(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), high(6)),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    let q8k = _mm256_loadu_si256(q8 as *const __m256i);
                    q8 = q8.add(32);
                    let p16 = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q, q8k),
                        _mm256_maddubs_epi16(m32s, q8k),
                    );
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale(k), p16));
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0(w: &[u8], x: &[Q8Block]) -> f32 {
        let table = f16_table();
        let mut acc = _mm256_setzero_ps();
        for (i, y) in x.iter().enumerate() {
            let b = &w[i * 34..i * 34 + 34];
            let d = _mm256_set1_ps(f16_at(table, b, 0) * y.d);
            let qx = _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i);
            let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
        }
        hsum(acc)
    }
}

/// A matrix in a candle block format.
trait CandleRows: Send + Sync {
    fn dot_type(&self) -> GgmlDType;
    fn prepare(&self, x: &[f32], cols: usize) -> Box<dyn Any + Send + Sync>;
    /// # Safety
    /// As [`Matrix::rows`].
    unsafe fn rows(
        &self,
        x: &(dyn Any + Send + Sync),
        cols: usize,
        t: usize,
        rows: Range<usize>,
        out: *mut f32,
        stride: usize,
    );
    fn row_f32(&self, r: usize, cols: usize, out: &mut [f32]);
}

struct Blocks<T> {
    blocks: Vec<T>,
    /// A run-time-selected SIMD dot product for this format, when there is one.
    fast: Option<KDot>,
}

/// A k-quant row (`n` blocks of the weight format) · Q8_K activations, on raw blocks.
type KDot = unsafe fn(*const u8, *const u8, usize) -> f32;

/// The SIMD k-quant dot product for `dtype` on this CPU, if any. Candle's own AVX2 paths
/// exist only in builds with `target-cpu` features; these are chosen at run time.
fn fast_kdot(dtype: GgmlDType) -> Option<KDot> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return match dtype {
            GgmlDType::Q4K => Some(avx2::dot_q4k_q8k),
            GgmlDType::Q6K => Some(avx2::dot_q6k_q8k),
            _ => None,
        };
    }
    let _ = dtype;
    None
}

fn candle_rows<T: GgmlType + Send + Sync + 'static>(bytes: &[u8]) -> Box<dyn CandleRows>
where
    T::VecDotType: Send + Sync + 'static,
{
    let size = std::mem::size_of::<T>();
    let mut blocks: Vec<T> = (0..bytes.len() / size).map(|_| T::zeros()).collect();
    // SAFETY: candle's block types are `repr(C)` plain data (integers and f16s), every bit
    // pattern valid; the destination holds exactly `bytes.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), blocks.as_mut_ptr() as *mut u8, bytes.len());
    }
    Box::new(Blocks {
        blocks,
        fast: fast_kdot(T::DTYPE),
    })
}

impl<T: GgmlType + Send + Sync + 'static> CandleRows for Blocks<T>
where
    T::VecDotType: Send + Sync + 'static,
{
    fn dot_type(&self) -> GgmlDType {
        <T::VecDotType as GgmlType>::DTYPE
    }

    fn prepare(&self, x: &[f32], cols: usize) -> Box<dyn Any + Send + Sync> {
        let per_row = cols / T::VecDotType::BLCK_SIZE;
        let mut out: Vec<T::VecDotType> = (0..x.len() / cols * per_row)
            .map(|_| T::VecDotType::zeros())
            .collect();
        for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(per_row)) {
            T::VecDotType::from_float(xr, or);
        }
        Box::new(out)
    }

    unsafe fn rows(
        &self,
        x: &(dyn Any + Send + Sync),
        cols: usize,
        t: usize,
        rows: Range<usize>,
        out: *mut f32,
        stride: usize,
    ) {
        let x = x
            .downcast_ref::<Vec<T::VecDotType>>()
            .expect("activations prepared for this format");
        let per_row = cols / T::BLCK_SIZE;
        let x_per_row = cols / T::VecDotType::BLCK_SIZE;
        for r in rows {
            let row = &self.blocks[r * per_row..(r + 1) * per_row];
            for i in 0..t {
                let xs = &x[i * x_per_row..(i + 1) * x_per_row];
                *out.add(i * stride + r) = match self.fast {
                    // SAFETY: `row` and `xs` are `per_row` whole blocks of the formats the
                    // kernel reads (candle's `repr(C)` layouts).
                    Some(dot) => dot(row.as_ptr() as *const u8, xs.as_ptr() as *const u8, per_row),
                    None => T::vec_dot(cols, row, xs),
                };
            }
        }
    }

    fn row_f32(&self, r: usize, cols: usize, out: &mut [f32]) {
        let per_row = cols / T::BLCK_SIZE;
        T::to_float(&self.blocks[r * per_row..(r + 1) * per_row], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The AVX2 kernels give the scalar ones' sums (up to float rounding order).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_match_scalar_ones() {
        if !has_avx2() {
            return;
        }
        let mut seed = 11;
        let blocks = 24;
        let x: Vec<Vec<Q8Block>> = (0..4)
            .map(|_| {
                let v: Vec<f32> = (0..blocks * QK).map(|_| lcg(&mut seed) * 3.0).collect();
                let mut q = Vec::new();
                quantize_q8(&v, &mut q);
                q
            })
            .collect();
        type Pair = (
            usize,
            Dot,
            Dot,
            unsafe fn(&[u8], [&[Q8Block]; 4]) -> [f32; 4],
        );
        let kernels: [Pair; 3] = [
            (
                18,
                scalar_dot_q4_0,
                |w, x| unsafe { avx2::dot_q4_0(w, x) },
                avx2::dot4_q4_0,
            ),
            (
                20,
                scalar_dot_q4_1,
                |w, x| unsafe { avx2::dot_q4_1(w, x) },
                avx2::dot4_q4_1,
            ),
            (
                34,
                scalar_dot_q8_0,
                |w, x| unsafe { avx2::dot_q8_0(w, x) },
                avx2::dot4_q8_0,
            ),
        ];
        for (block_bytes, scalar, simd, simd4) in kernels {
            let w: Vec<u8> = (0..blocks * block_bytes)
                .map(|i| match i % block_bytes {
                    0 | 2 => 0x00,
                    1 | 3 => 0x24,
                    _ => (lcg(&mut seed).to_bits() >> 5) as u8,
                })
                .collect();
            let four = unsafe { simd4(&w, [&x[0], &x[1], &x[2], &x[3]]) };
            for k in 0..4 {
                let expected = scalar(&w, &x[k]);
                let tolerance = expected.abs() * 1e-5 + 1e-4;
                assert!(
                    (simd(&w, &x[k]) - expected).abs() <= tolerance,
                    "{block_bytes}"
                );
                assert!((four[k] - expected).abs() <= tolerance, "{block_bytes} ×4");
            }
        }
    }

    /// The run-time AVX2 k-quant kernels give candle's scalar sums.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kquant_kernels_match_candles_scalar_ones() {
        if !has_avx2() {
            return;
        }
        fn check<T: GgmlType<VecDotType = k_quants::BlockQ8K>>(dot: KDot, seed: &mut u64) {
            let n = 4;
            let w: Vec<f32> = (0..256 * n).map(|_| lcg(seed)).collect();
            let x: Vec<f32> = (0..256 * n).map(|_| lcg(seed) * 2.0).collect();
            let mut wq: Vec<T> = (0..n).map(|_| T::zeros()).collect();
            let mut xq: Vec<k_quants::BlockQ8K> = (0..n).map(|_| GgmlType::zeros()).collect();
            T::from_float(&w, &mut wq);
            k_quants::BlockQ8K::from_float(&x, &mut xq);
            let expected = T::vec_dot_unopt(256 * n, &wq, &xq);
            let got = unsafe { dot(wq.as_ptr() as *const u8, xq.as_ptr() as *const u8, n) };
            assert!(
                (got - expected).abs() <= expected.abs() * 1e-5 + 1e-3,
                "{:?}: {got} vs {expected}",
                T::DTYPE
            );
        }
        let mut seed = 5;
        for _ in 0..20 {
            check::<k_quants::BlockQ4K>(avx2::dot_q4k_q8k, &mut seed);
            check::<k_quants::BlockQ6K>(avx2::dot_q6k_q8k, &mut seed);
        }
    }

    /// Each format's kernel agrees with the dot product of the dequantized row.
    #[test]
    fn kernels_match_dequantized_rows() {
        let mut seed = 7;
        let (rows, cols) = (5, 256);
        for (dtype, block_bytes) in [
            (GgmlDType::Q4_0, 18),
            (GgmlDType::Q4_1, 20),
            (GgmlDType::Q8_0, 34),
        ] {
            let bytes: Vec<u8> = (0..rows * cols / 32 * block_bytes)
                .map(|i| {
                    // Keep the f16 scales small and finite.
                    let in_block = i % block_bytes;
                    let scale_bytes = if dtype == GgmlDType::Q4_1 { 4 } else { 2 };
                    if in_block < scale_bytes {
                        if in_block % 2 == 0 {
                            0x00
                        } else {
                            0x20
                        }
                    } else {
                        (lcg(&mut seed).to_bits() >> 7) as u8
                    }
                })
                .collect();
            let m = Matrix::from_gguf("w", dtype, rows, cols, bytes).unwrap();
            // Six rows: one group of four and two single ones.
            let t = 6;
            let x: Vec<f32> = (0..t * cols).map(|_| lcg(&mut seed)).collect();
            let prepared = m.prepare(&x);
            let mut out = vec![0f32; t * rows];
            unsafe { m.rows(&prepared, t, 0..rows, out.as_mut_ptr(), rows) };
            let mut row = vec![0f32; cols];
            for r in 0..rows {
                m.row_f32(r, &mut row);
                for i in 0..t {
                    let exact = dot_f32(&row, &x[i * cols..(i + 1) * cols]);
                    let got = out[i * rows + r];
                    let scale = row.iter().map(|v| v.abs()).sum::<f32>() / 64.0;
                    assert!(
                        (exact - got).abs() <= scale.max(1e-3),
                        "{dtype:?} row {r}: {exact} vs {got}"
                    );
                }
            }
        }
    }
}
