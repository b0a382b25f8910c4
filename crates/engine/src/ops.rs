//! The ops every path shares, in f32, written to follow ggml's CPU kernels operation for
//! operation (accumulation widths, RoPE angle recurrence), so the reference path differs from
//! llama.cpp only where the quantized matmuls make it.

use crate::arch::RopeStyle;

/// Transcendental functions from the `libm` crate, never the platform's: glibc natively and
/// Rust's own port in wasm round differently in the last place, and a report must be
/// byte-identical wherever it was computed. Evaluated in f64 and rounded once, as glibc's
/// f32 functions do internally, so they also track llama.cpp's results closely.
mod math {
    #[inline]
    pub fn exp(x: f32) -> f32 {
        libm::exp(x as f64) as f32
    }
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        libm::tanh(x as f64) as f32
    }
    #[inline]
    pub fn sin(x: f32) -> f32 {
        libm::sin(x as f64) as f32
    }
    #[inline]
    pub fn cos(x: f32) -> f32 {
        libm::cos(x as f64) as f32
    }
    #[inline]
    pub fn pow(x: f32, y: f32) -> f32 {
        libm::pow(x as f64, y as f64) as f32
    }
}

/// RMSNorm of each row of `x` (rows of `width`) times `weight`: ggml_rms_norm sums squares in
/// f64 (`ggml_float`), scales in f32, then ggml_mul applies the weight.
pub fn rms_norm(x: &[f32], width: usize, weight: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / width as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = (v * scale) * w;
        }
    }
    out
}

/// Add `bias` to every row.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

pub fn add_into(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Rotary position embedding in place on `x` = rows (tokens) × `n_heads` × `head_dim`, as
/// ggml_rope_ext with no YaRN: the angle of pair `i` is `p · freq_scale · base^(−2i/d)`, built
/// by ggml's running product `theta *= theta_scale` in f32.
pub fn rope(
    x: &mut [f32],
    positions: &[u32],
    n_heads: usize,
    head_dim: usize,
    base: f32,
    freq_scale: f32,
    style: RopeStyle,
) {
    let theta_scale = math::pow(base, -2.0 / head_dim as f32);
    let half = head_dim / 2;
    let mut cos = vec![0f32; half];
    let mut sin = vec![0f32; half];
    for (t, &p) in positions.iter().enumerate() {
        let mut theta = p as f32;
        for i in 0..half {
            let angle = freq_scale * theta;
            cos[i] = math::cos(angle);
            sin[i] = math::sin(angle);
            theta *= theta_scale;
        }
        let row = &mut x[t * n_heads * head_dim..(t + 1) * n_heads * head_dim];
        for head in row.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Causal multi-head attention with grouped KV heads over one sequence. `q` is tokens ×
/// (n_head·d), `k`/`v` tokens × (n_head_kv·d); returns tokens × (n_head·d) (heads concatenated).
/// Softmax as ggml_soft_max_ext: scaled scores, max subtracted, exp summed in f64.
///
/// With `f16_operands`, the attention is llama.cpp's CPU graph with its default F16 KV cache (no
/// flash attention), as built for x86 with AVX-512, bit for bit (see [`attention_ggml_f16`]).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    scale: f32,
    window: Option<usize>,
    f16_operands: bool,
) -> Vec<f32> {
    if f16_operands {
        return attention_ggml_f16(q, k, v, n_tokens, n_head, n_head_kv, head_dim, scale, window);
    }
    // K per KV head and dimension, over the tokens: a query's scores against all keys are then
    // lanes of one vector, each summed over the dimensions in order — the sum one dot at a time
    // makes, so the bits are the same.
    let k_by_dim = transpose(k, n_tokens, n_head_kv * head_dim);
    let shape = HeadShape { n_tokens, n_head, n_head_kv, head_dim, scale, window };
    // With AVX2 the lanes are wider; the code has no FMA to contract.
    let head = |h| parallax_quant::with_avx2!(attention_head_f32(q, &k_by_dim, v, h, &shape));
    by_head(n_tokens, n_head, head_dim, head)
}

/// Runs `head(h)` for every head (in parallel with the `parallel` feature: each task owns its
/// head's columns, so the bits do not depend on the threads) and lays the heads side by side:
/// tokens × (n_head·head_dim).
fn by_head(
    n_tokens: usize,
    n_head: usize,
    head_dim: usize,
    head: impl Fn(usize) -> Vec<f32> + Sync + Send,
) -> Vec<f32> {
    let heads: Vec<Vec<f32>> = crate::map_indices(n_head, head);
    let qw = n_head * head_dim;
    let mut out = vec![0f32; n_tokens * qw];
    for (h, by_token) in heads.iter().enumerate() {
        for (i, o) in by_token.chunks_exact(head_dim).enumerate() {
            out[i * qw + h * head_dim..i * qw + (h + 1) * head_dim].copy_from_slice(o);
        }
    }
    out
}

/// One head of [`attention`]'s f32 form: tokens × `head_dim`. `k_by_dim` is K by KV head and
/// dimension over the tokens.
#[inline(always)]
fn attention_head_f32(
    q: &[f32],
    k_by_dim: &[f32],
    v: &[f32],
    h: usize,
    shape: &HeadShape,
) -> Vec<f32> {
    let HeadShape { n_tokens, head_dim, scale, window, .. } = *shape;
    let (kvh, qw, kw) = shape.layout(h);
    let mut out = vec![0f32; n_tokens * head_dim];
    let mut scores = vec![0f32; n_tokens];
    let mut shifted = vec![0f64; n_tokens];
    for i in 0..n_tokens {
        let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
        let first = first_visible(i, window);
        let visible = &mut scores[first..=i];
        // `Iterator::sum` of f32 starts from −0.0; so does each lane.
        visible.fill(-0.0);
        for (d, &x) in qi.iter().enumerate() {
            let keys = &k_by_dim[(kvh * head_dim + d) * n_tokens..][first..=i];
            for (s, &y) in visible.iter_mut().zip(keys) {
                *s += x * y;
            }
        }
        let mut max = f32::NEG_INFINITY;
        for s in visible.iter_mut() {
            *s *= scale;
            max = larger(max, *s);
        }
        // `math::exp(s − max)` of every score, the exponentials a block of lanes at a time.
        let shifted = &mut shifted[..visible.len()];
        for (e, &s) in shifted.iter_mut().zip(visible.iter()) {
            *e = f64::from(s - max);
        }
        parallax_metrics::exp_each(shifted);
        let mut sum = 0f64;
        for (s, &e) in visible.iter_mut().zip(shifted.iter()) {
            *s = e as f32;
            sum += *s as f64;
        }
        let inv = (1.0 / sum) as f32;
        let o = &mut out[i * head_dim..(i + 1) * head_dim];
        for j in first..=i {
            let p = scores[j] * inv;
            let vj = &v[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
            for (o, &x) in o.iter_mut().zip(vj) {
                *o += p * x;
            }
        }
    }
    out
}

/// `rows` rows of `n_tokens` values to `n_tokens` rows of `rows` (the matmul tiles' rows ×
/// tokens to tokens × rows; K by token to K by dimension).
pub(crate) fn transpose(by_row: &[f32], rows: usize, n_tokens: usize) -> Vec<f32> {
    // In square tiles, so both sides' cache lines are used whole (the output head's 151936 rows
    // by hundreds of tokens otherwise miss the cache on every write).
    // Blocks of TILE tokens go to the threads: moving values, so nothing depends on them.
    const TILE: usize = 32;
    let mut out = vec![0f32; n_tokens * rows];
    if rows == 0 {
        return out;
    }
    let block = |(b, out): (usize, &mut [f32])| {
        let t0 = b * TILE;
        let tokens = out.len() / rows;
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for t in 0..tokens {
                let column = &by_row[r0 * n_tokens + t0 + t..];
                for (k, o) in out[t * rows + r0..t * rows + r1].iter_mut().enumerate() {
                    *o = column[k * n_tokens];
                }
            }
        }
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(TILE * rows).enumerate().for_each(block);
    }
    #[cfg(not(feature = "parallel"))]
    out.chunks_mut(TILE * rows).enumerate().for_each(block);
    out
}

/// `f32::max(m, s)` for a running maximum `m` that is not NaN: a NaN `s` is passed over, as
/// `max` does. Written as a comparison because wasm's `f32.max` propagates NaN, so `f32::max`
/// becomes a call to libm's `fmaxf` there — a call per score.
#[inline(always)]
pub(crate) fn larger(m: f32, s: f32) -> f32 {
    if s > m {
        s
    } else {
        m
    }
}

/// First key position visible from query position `i`: causal, and within the window on
/// sliding layers.
fn first_visible(i: usize, window: Option<usize>) -> usize {
    match window {
        Some(w) if w > 0 => (i + 1).saturating_sub(w),
        _ => 0,
    }
}

/// Lanes of llama.cpp's AVX-512 kernels (tinyBLAS `__m512`, `ggml_vec_soft_max_f32`).
const LANES: usize = 16;

/// `_mm512_reduce_add_ps` as GCC expands it: halves added 256 → 128 bits, then the two 64-bit
/// halves, then the last pair.
fn reduce_add_16(l: &[f32; LANES]) -> f32 {
    let t3: [f32; 8] = std::array::from_fn(|i| l[i + 8] + l[i]);
    let t6: [f32; 4] = std::array::from_fn(|i| t3[i + 4] + t3[i]);
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// Σ a·b in llama.cpp's F16 tinyBLAS order (llamafile sgemm, AVX-512) with `b`'s elements
/// outside `lo..hi` taken as 0 (the masked KV cells: the product is then `0 · 0`, as ggml's
/// zeroed probabilities against a zeroed cell give): lane `l` accumulates elements `l, l+16, …`
/// with FMAs, then [`reduce_add_16`]. `a` and `b` hold f16 values, so every product is exact in
/// f32 (11 + 11 significant bits, no overflow or underflow) and the FMA is an add of the exact
/// product: written as a multiply and an add, which is the same result and vectorizes, where
/// `mul_add` without hardware FMA is a libm call per element.
#[inline(always)]
fn dot_tinyblas_f16_within(a: &[f32], b: &[f32], lo: usize, hi: usize) -> f32 {
    let mut acc = [0f32; LANES];
    for (c, (ca, cb)) in a.chunks(LANES).zip(b.chunks(LANES)).enumerate() {
        let base = c * LANES;
        if base >= lo && base + cb.len() <= hi {
            for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
                *s += x * y;
            }
        } else {
            for (l, ((s, &x), &y)) in acc.iter_mut().zip(ca).zip(cb).enumerate() {
                let y = if (lo..hi).contains(&(base + l)) { y } else { 0.0 };
                *s += x * y;
            }
        }
    }
    reduce_add_16(&acc)
}

/// Attention exactly as llama.cpp's CPU backend computes it with an F16 KV cache and no flash
/// attention, as built for x86 with AVX-512 (checked bit for bit against llama.cpp's `kq`,
/// `kq_soft_max` and `kqv_out` tensors, tools/reference/llamacpp_site_stats.py):
///
/// * `kq = K·q`: K stored as f16, q converted to f16 (`vec_dot_type` of F16), dotted in
///   tinyBLAS order ([`attention_head_f16_tiny`]; needs `head_dim % 16 == 0`, as tinyBLAS
///   does — otherwise plain sequential f32 sums, an approximation of ggml's fallback,
///   [`attention_head_f16`]);
/// * softmax (`ggml_soft_max_ext`): `kq · scale` (masked cells −∞), max subtracted,
///   `exp` = ggml's AVX-512 `ggml_v_expf` ([`expf_ggml`]), summed per 16 KV cells from cell 0
///   with [`reduce_add_16`] into an f64 total, then multiplied by `(f32)(1/total)`;
/// * `kqv = V·p`: V stored as f16, probabilities converted to f16, summed over the KV cells
///   in tinyBLAS order.
///
/// KV cell `j` is token position `j` (a fresh cache holding one sequence).
#[allow(clippy::too_many_arguments)]
pub fn attention_ggml_f16(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    scale: f32,
    window: Option<usize>,
) -> Vec<f32> {
    let round =
        |x: &[f32]| -> Vec<f32> { x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect() };
    let q = round(q);
    let kw = n_head_kv * head_dim;
    let shape = HeadShape { n_tokens, n_head, n_head_kv, head_dim, scale, window };
    // By KV head and dimension, a row over the KV cells padded to whole 16-lane chunks: K for
    // the scores of 16 keys at once (tinyBLAS shapes), V for the other shapes' kqv product.
    let padded = n_tokens.div_ceil(LANES) * LANES;
    let by_dim = |x: &[f32]| {
        let mut t = vec![0f32; kw * padded];
        for (j, row) in x.chunks_exact(kw).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                t[c * padded + j] = half::f16::from_f32(x).to_f32();
            }
        }
        t
    };
    if head_dim.is_multiple_of(LANES) {
        let (k_by_dim, v) = (by_dim(k), round(v));
        // With FMA, ggml's exp is one instruction a step instead of a libm `fmaf` call.
        let head =
            |h| parallax_quant::with_avx2!(attention_head_f16_tiny(&q, &k_by_dim, &v, h, &shape));
        return by_head(n_tokens, n_head, head_dim, head);
    }
    let (k, v_by_dim) = (round(k), by_dim(v));
    let head = |h| parallax_quant::with_avx2!(attention_head_f16(&q, &k, &v_by_dim, h, &shape));
    by_head(n_tokens, n_head, head_dim, head)
}

/// `reduce_add_16` of 16 lane vectors at once, element by element: element `e` of the result
/// is `reduce_add_16([lane(0)[e], …, lane(15)[e]])` — the same adds in the same order, as
/// vector adds. (`lane` is called from one place, so it is inlined and each lane's sum stays in
/// registers while it runs.)
#[inline(always)]
fn reduce_add_16_across(mut lane: impl FnMut(usize) -> [f32; LANES]) -> [f32; LANES] {
    let mut l = [[0f32; LANES]; LANES];
    for (k, l) in l.iter_mut().enumerate() {
        *l = lane(k);
    }
    let add =
        |a: [f32; LANES], b: [f32; LANES]| -> [f32; LANES] { std::array::from_fn(|e| a[e] + b[e]) };
    let t3: [[f32; LANES]; 8] = std::array::from_fn(|i| add(l[i + 8], l[i]));
    let t6: [[f32; LANES]; 4] = std::array::from_fn(|i| add(t3[i + 4], t3[i]));
    add(add(t6[0], t6[2]), add(t6[1], t6[3]))
}

/// [`attention_head_f16`] where `head_dim` is whole 16-lane chunks (tinyBLAS runs the dots):
/// the scores of 16 keys and the outputs of 16 dimensions at a time, each lane's sum
/// vectorized across them and [`reduce_add_16_across`] in place of one reduction per dot.
/// `k_by_dim` is K by KV head and dimension over the padded KV cells, `v` V by cell
/// (f16-rounded).
#[inline(always)]
fn attention_head_f16_tiny(
    q: &[f32],
    k_by_dim: &[f32],
    v: &[f32],
    h: usize,
    shape: &HeadShape,
) -> Vec<f32> {
    let HeadShape { n_tokens, head_dim, scale, window, .. } = *shape;
    let (kvh, qw, kw) = shape.layout(h);
    let padded = n_tokens.div_ceil(LANES) * LANES;
    let kt = &k_by_dim[kvh * head_dim * padded..(kvh + 1) * head_dim * padded];
    let mut out = vec![0f32; n_tokens * head_dim];
    let mut p = vec![0f32; padded];
    for i in 0..n_tokens {
        let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
        let first = first_visible(i, window);
        let cells = (i + 1).div_ceil(LANES) * LANES;
        let from = first / LANES * LANES;
        p[..cells].fill(0.0);
        // kq: lane l of key j sums q[d]·k_j[d] over d ≡ l (mod 16) in order, from 0.
        for j0 in (from..cells).step_by(LANES) {
            let scores = reduce_add_16_across(
                #[inline(always)]
                |l| {
                    let mut a = [0f32; LANES];
                    for d in (l..head_dim).step_by(LANES) {
                        let (x, keys) = (qi[d], &kt[d * padded + j0..][..LANES]);
                        for (a, &k) in a.iter_mut().zip(keys) {
                            *a += x * k;
                        }
                    }
                    a
                },
            );
            for (j, s) in (j0..).zip(scores) {
                if (first..=i).contains(&j) {
                    p[j] = s * scale;
                }
            }
        }
        let max = p[first..=i].iter().fold(f32::NEG_INFINITY, |m, &s| larger(m, s));
        for s in &mut p[first..=i] {
            *s = expf_ggml(*s - max);
        }
        let sum: f64 =
            p[..cells].as_chunks::<LANES>().0.iter().map(|c| reduce_add_16(c) as f64).sum();
        let inv = (1.0 / sum) as f32;
        for s in &mut p[first..=i] {
            *s = half::f16::from_f32(*s * inv).to_f32();
        }
        // kqv: lane l of dimension d sums p[c]·v[c][d] over the cells c ≡ l (mod 16) from
        // cell 0. The cells outside first..=i add 0·0 = +0 to a lane that is never −0 (it
        // starts at +0, and a sum is −0 only of two −0s), which changes nothing: skipped.
        let o = &mut out[i * head_dim..(i + 1) * head_dim];
        for d0 in (0..head_dim).step_by(LANES) {
            let col = kvh * head_dim + d0;
            let sums = reduce_add_16_across(
                #[inline(always)]
                |l| {
                    let mut a = [0f32; LANES];
                    let start = first + (l + LANES - first % LANES) % LANES;
                    for c in (start..=i).step_by(LANES) {
                        let (w, values) = (p[c], &v[c * kw + col..][..LANES]);
                        for (a, &x) in a.iter_mut().zip(values) {
                            *a += w * x;
                        }
                    }
                    a
                },
            );
            o[d0..d0 + LANES].copy_from_slice(&sums);
        }
    }
    out
}

struct HeadShape {
    n_tokens: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    scale: f32,
    window: Option<usize>,
}

impl HeadShape {
    /// Head `h`'s KV head, and the widths of a row of q and of a row of k or v.
    fn layout(&self, h: usize) -> (usize, usize, usize) {
        let kvh = h / (self.n_head / self.n_head_kv);
        (kvh, self.n_head * self.head_dim, self.n_head_kv * self.head_dim)
    }
}

/// One head of [`attention_ggml_f16`] where `head_dim` is not whole 16-lane chunks (tinyBLAS
/// does not run; the scores are plain sequential sums): tokens × `head_dim`. `q` and `k` are
/// f16-rounded, `v_by_dim` is V by KV head and dimension over the padded KV cells.
#[inline(always)]
fn attention_head_f16(
    q: &[f32],
    k: &[f32],
    v_by_dim: &[f32],
    h: usize,
    shape: &HeadShape,
) -> Vec<f32> {
    let HeadShape { n_tokens, head_dim, scale, window, .. } = *shape;
    let (kvh, qw, kw) = shape.layout(h);
    let padded = n_tokens.div_ceil(LANES) * LANES;
    let mut out = vec![0f32; n_tokens * head_dim];
    let mut p = vec![0f32; padded];
    for i in 0..n_tokens {
        let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
        let first = first_visible(i, window);
        let cells = (i + 1).div_ceil(LANES) * LANES;
        p[..cells].fill(0.0);
        let mut max = f32::NEG_INFINITY;
        for j in first..=i {
            let kj = &k[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
            let s = dot(qi, kj) * scale;
            p[j] = s;
            max = larger(max, s);
        }
        for s in &mut p[first..=i] {
            *s = expf_ggml(*s - max);
        }
        let sum: f64 =
            p[..cells].as_chunks::<LANES>().0.iter().map(|c| reduce_add_16(c) as f64).sum();
        let inv = (1.0 / sum) as f32;
        for s in &mut p[first..=i] {
            *s = half::f16::from_f32(*s * inv).to_f32();
        }
        // ggml sums from cell 0, but the chunks wholly before `first` add `0 · 0` to lanes
        // that are still +0, which leaves them +0: starting at the chunk holding `first` gives
        // the same bits.
        let from = first / LANES * LANES;
        let o = &mut out[i * head_dim..(i + 1) * head_dim];
        for (d, o) in o.iter_mut().enumerate() {
            let col = &v_by_dim[(kvh * head_dim + d) * padded..][from..cells];
            *o = dot_tinyblas_f16_within(&p[from..cells], col, first - from, i + 1 - from);
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `chunks` on each row's (rows of `width`) whole 16-lane chunks and `tail` on the rest, as
/// ggml's AVX-512 activations split a row; with FMA where the CPU has it (ggml's exp).
pub fn map_rows<A: Fn(f32) -> f32 + Sync + Send, B: Fn(f32) -> f32 + Sync + Send>(
    x: &[f32],
    width: usize,
    chunks: A,
    tail: B,
) -> Vec<f32> {
    // Blocks of rows on the pool's threads: each row's values depend on that row alone.
    const BLOCK_VALUES: usize = 64 * 1024;
    let width = width.max(1);
    let rows_per_block = (BLOCK_VALUES / width).max(1);
    let n_rows = x.len() / width;
    let block = |b: usize| {
        let rows = &x[b * rows_per_block * width..((b + 1) * rows_per_block).min(n_rows) * width];
        parallax_quant::with_avx2!(map_rows_body(rows, width, &chunks, &tail))
    };
    crate::map_indices(n_rows.div_ceil(rows_per_block), block).concat()
}

#[inline(always)]
fn map_rows_body<A: Fn(f32) -> f32, B: Fn(f32) -> f32>(
    x: &[f32],
    width: usize,
    chunks: A,
    tail: B,
) -> Vec<f32> {
    let simd = width - width % LANES;
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        for i in 0..simd {
            o[i] = chunks(row[i]);
        }
        for i in simd..width {
            o[i] = tail(row[i]);
        }
    }
    out
}

/// ggml_silu_f32.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + math::exp(-x))
}

/// [`silu`] of every value, bit for bit: the exponentials in blocks through
/// [`parallax_metrics::exp_each`] (libm's `exp` several lanes at a time), the blocks on the pool's
/// threads (each owns its outputs, so the threads change no bit).
pub fn silu_all(x: &[f32]) -> Vec<f32> {
    const BLOCK: usize = 16 * 1024;
    let block = |b: usize| {
        let x = &x[b * BLOCK..((b + 1) * BLOCK).min(x.len())];
        let mut e: Vec<f64> = x.iter().map(|&v| f64::from(-v)).collect();
        parallax_metrics::exp_each(&mut e);
        x.iter().zip(e).map(|(&v, e)| v / (1.0 + e as f32)).collect::<Vec<f32>>()
    };
    crate::map_indices(x.len().div_ceil(BLOCK), block).concat()
}

/// GELU, tanh approximation, computed in f32 (ggml_gelu_f32).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)))
}

/// GELU as llama.cpp's CPU backend evaluates it (GGML_GELU_FP16): the input rounded to f16 and
/// looked up in a table of f16 results; 0 below −10 and the identity above 10. The table is
/// `ggml_gelu_f32` as GCC compiles it for x86 with FMA: `1 + GELU_COEF_A·x·x` is contracted to
/// `fma(GELU_COEF_A·x, x, 1)` (checked against llama.cpp's `ffn_geglu` tensors: without the FMA,
/// one table entry in a few thousand differs by one f16 step).
#[inline]
pub fn gelu_tanh_f16_table(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044715;
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let x = half::f16::from_f32(x).to_f32();
        let inner = fused_mul_add(GELU_COEF_A * x, x, 1.0);
        let g = 0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * x * inner));
        half::f16::from_f32(g).to_f32()
    }
}

/// `a·b + c` rounded once, as `f32::mul_add`. Without hardware FMA (wasm) `mul_add` is a call
/// to libm's `fmaf`, 2 % of the page's run over the built-in text (the exponentials of the q8
/// path's softmax and SiLU take nine each); [`mul_add_via_f64`] gives the same bits inline.
#[inline(always)]
fn fused_mul_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_family = "wasm")]
    {
        mul_add_via_f64(a, b, c)
    }
    #[cfg(not(target_family = "wasm"))]
    {
        a.mul_add(b, c)
    }
}

/// `a·b + c` correctly rounded to f32, through f64: the product is exact in f64 (24 + 24
/// significant bits), the sum is rounded once to f64, then to f32. Rounding twice gives the
/// correctly rounded result unless the f64 sum lands exactly halfway between two f32 (rounding to
/// f64 never crosses such a point, which f64 represents; it can only land on it): within the
/// normal f32 range, the 29 bits f32 drops reading `1000…0`. Those sums, and any outside the
/// normal range (zero, subnormal, overflow, NaN), are left to `mul_add` — so the result is
/// `mul_add`'s, bit for bit, for every input.
#[cfg(any(target_family = "wasm", test))]
#[inline(always)]
fn mul_add_via_f64(a: f32, b: f32, c: f32) -> f32 {
    let sum = f64::from(a) * f64::from(b) + f64::from(c);
    let bits = sum.to_bits();
    // The f64 biased exponents of normal f32 values: 1023 − 126 ..= 1023 + 127.
    let exponent = (bits >> 52) & 0x7ff;
    if (897..=1150).contains(&exponent) && bits & 0x1fff_ffff != 0x1000_0000 {
        sum as f32
    } else {
        a.mul_add(b, c)
    }
}

/// `ggml_v_expf`, the AVX-512 exp of llama.cpp's CPU backend (softmax, SiLU), one lane at a
/// time: `n = round(x·log2 e)`, `b = x − n·ln 2` (two-part ln 2), a degree-5 polynomial `j` in `b`,
/// result `j·2^n` (`_mm512_scalef_ps`: one rounding); 0 or +∞ when |n| > 192.
#[inline(always)]
pub fn expf_ggml(x: f32) -> f32 {
    const R: f32 = 12_582_912.0; // 0x1.8p23: adding it rounds to an integer
    let z = fused_mul_add(x, f32::from_bits(0x3fb8_aa3b), R); // 0x1.715476p+0
    let n = z - R;
    let b = fused_mul_add(-n, f32::from_bits(0x3f31_7200), x); // 0x1.62e4p-1
    let b = fused_mul_add(-n, f32::from_bits(0x35bf_be8e), b); // 0x1.7f7d1cp-20
    if n.is_nan() {
        return f32::NAN;
    }
    if n.abs() > 192.0 {
        return if n < 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let c4 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
    let c3 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
    let c2 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
    let c1 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
    let c0 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1
    let fma = fused_mul_add;
    let j = fma(fma(fma(c4, b, c3), u, fma(c2, b, c1)), u, fma(c0, b, 1.0));
    // j·2^n is exact in f64 for |n| ≤ 192; the cast is the one rounding scalef makes. 2^n is
    // built from its exponent bits (`powi` is a libgcc call, a measurable share of SiLU).
    (j as f64 * pow2(n as i32)) as f32
}

/// 2^n for |n| ≤ 1022, exactly, from the exponent bits.
#[inline(always)]
fn pow2(n: i32) -> f64 {
    f64::from_bits(((n as i64 + 1023) as u64) << 52)
}

/// `ggml_v_silu` (AVX-512): `x / (1 + ggml_v_expf(−x))`.
#[inline(always)]
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + expf_ggml(0.0 - x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_in_tiles_moves_every_value_once() {
        for (rows, tokens) in [(1, 1), (33, 7), (70, 65), (5, 100)] {
            let by_row: Vec<f32> = (0..rows * tokens).map(|i| i as f32).collect();
            let out = transpose(&by_row, rows, tokens);
            for r in 0..rows {
                for t in 0..tokens {
                    assert_eq!(out[t * rows + r], by_row[r * tokens + t], "{rows}×{tokens}");
                }
            }
        }
    }

    /// The f64 form of the FMA against `f32::mul_add` (hardware FMA or libm: correctly
    /// rounded) on operands drawn over the whole f32 range, around 1 (where exp's steps live),
    /// with cancellation, and on sums that land halfway between two f32 — the case it hands
    /// back to `mul_add`, and the one a plain `(a·b + c) as f32` gets wrong.
    #[test]
    fn mul_add_via_f64_is_mul_add_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let check = |a: f32, b: f32, c: f32| {
            let (got, want) = (mul_add_via_f64(a, b, c), a.mul_add(b, c));
            assert!(
                got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(),
                "fma({a:e}, {b:e}, {c:e}) = {want:e}, got {got:e}"
            );
        };
        for _ in 0..2_000_000 {
            let r = next();
            // Any bits; then values near 1 and small terms; then c cancelling a·b.
            check(
                f32::from_bits(r as u32),
                f32::from_bits((r >> 32) as u32),
                f32::from_bits(next() as u32),
            );
            let near = |bits: u64| f32::from_bits(0x3f00_0000 | (bits as u32 & 0x00ff_ffff));
            let (a, b) = (near(r), near(r >> 24));
            check(a, b, f32::from_bits(0x3000_0000 + (next() as u32 & 0x0fff_ffff)));
            check(a, b, -(a * b));
            check(-a, b, a * b * (1.0 + f32::EPSILON));
        }
        // Halfway sums: with a = 1 + 2⁻¹², a·a = 1 + 2⁻¹¹ + 2⁻²⁴ exactly, halfway between the f32
        // values 1 + 2⁻¹¹ and 1 + 2⁻¹¹ + 2⁻²³. A c far below f64's step there (±2⁻⁶⁰, 2⁻⁸⁰) is
        // lost in the f64 sum, which stays on the halfway point, while the FMA must round by c's
        // sign; with c = 0 it is a true tie.
        let a = 1.0 + 2f32.powi(-12);
        for c in [2f32.powi(-60), -(2f32.powi(-60)), 0.0, 2f32.powi(-80)] {
            check(a, a, c);
            check(a, -a, c);
        }
        // A subnormal sum on an f32 halfway point: a·b = 2⁻¹⁵⁰ − 2⁻¹⁹⁶, c = 2⁻¹²⁷ + 2⁻¹⁴⁹ (an odd
        // multiple of the subnormal step). The exact sum is just below the halfway point above c,
        // so the FMA gives c; f64 drops the 2⁻¹⁹⁶ and lands on the point, which rounds to the
        // even neighbour above — and the low 29 bits are zero there, so only the range check
        // sends it to `mul_add`.
        let (a, b) = (2f32.powi(-75) * (1.0 + f32::EPSILON), 2f32.powi(-75) * (1.0 - f32::EPSILON));
        check(a, b, f32::from_bits((1 << 22) | 1));
        check(f32::MAX, 2.0, -f32::MAX);
        check(f32::MIN_POSITIVE, 0.5, 0.0);
        check(f32::INFINITY, 0.0, 1.0);
    }

    #[test]
    fn pow2_is_exact_over_expf_ggml_range() {
        for n in -192..=192 {
            assert_eq!(pow2(n), 2f64.powi(n), "2^{n}");
        }
    }

    #[test]
    fn rms_norm_unit_rows() {
        let x = [3.0f32, 4.0, 0.0, 0.0];
        let out = rms_norm(&x, 2, &[1.0, 2.0], 1e-6);
        let s = 1.0 / (12.5f32 + 1e-6).sqrt();
        assert_eq!(out, vec![3.0 * s, 8.0 * s, 0.0, 0.0]);
    }

    #[test]
    fn rope_position_zero_is_identity_and_preserves_norm() {
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.7).collect();
        let orig = x.clone();
        rope(&mut x, &[0, 5], 2, 4, 10000.0, 1.0, RopeStyle::Neox);
        assert_eq!(&x[..8], &orig[..8]);
        let n0: f32 = orig[8..].iter().map(|v| v * v).sum();
        let n1: f32 = x[8..].iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-5);
        assert_ne!(&x[8..], &orig[8..]);
    }

    #[test]
    fn attention_first_token_sees_only_itself_and_window_limits() {
        // One head, d = 2, three tokens; v rows are distinct so the output tells which keys won.
        let q = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let k = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let v = [1.0, 0.0, 0.0, 1.0, 5.0, 5.0];
        let out = attention(&q, &k, &v, 3, 1, 1, 2, 1.0, None, false);
        assert_eq!(&out[..2], &[1.0, 0.0]);
        assert!((out[2] - 0.5).abs() < 1e-6 && (out[3] - 0.5).abs() < 1e-6);
        let windowed = attention(&q, &k, &v, 3, 1, 1, 2, 1.0, Some(1), false);
        assert_eq!(&windowed[4..], &[5.0, 5.0]);
    }

    #[test]
    fn ggml_exp_is_close_to_exp_and_exact_at_the_ends() {
        assert_eq!(expf_ggml(0.0), 1.0);
        assert_eq!(expf_ggml(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf_ggml(-200.0), 0.0);
        assert_eq!(expf_ggml(200.0), f32::INFINITY);
        assert!(expf_ggml(f32::NAN).is_nan());
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            let (got, want) = (expf_ggml(x) as f64, (x as f64).exp());
            // ggml documents ≤ 1.45 + 0.5 ulp; 3e-7 relative is about 2.5 ulp.
            assert!((got - want).abs() <= 3e-7 * want, "x {x}: {got} vs {want}");
        }
        assert!((silu_ggml(2.0) - silu(2.0)).abs() < 1e-6);
    }

    #[test]
    fn gelu_table_uses_the_contracted_inner_term() {
        // An input where fma(a·x, x, 1) and (a·x)·x + 1 round to different f16 table entries
        // (found in gemma-3-270m's layer 0; llama.cpp's table holds the FMA value).
        let x = -1.999_039_2f32;
        assert_eq!(gelu_tanh_f16_table(x), half::f16::from_f32(-0.045_486_46).to_f32());
        assert!((gelu_tanh_f16_table(0.5) - gelu_tanh(0.5)).abs() < 1e-3);
        assert_eq!(gelu_tanh_f16_table(-10.0), 0.0);
        assert_eq!(gelu_tanh_f16_table(12.0), 12.0);
    }

    #[test]
    fn f16_attention_is_close_to_f32_attention() {
        // Two heads sharing one KV head, d = 32 (two 16-lane chunks), 20 tokens (two cell chunks).
        let (t, d) = (20usize, 32usize);
        let val = |i: usize, s: usize| ((i * s % 97) as f32 - 48.0) / 40.0;
        let q: Vec<f32> = (0..t * 2 * d).map(|i| val(i, 31)).collect();
        let k: Vec<f32> = (0..t * d).map(|i| val(i, 17)).collect();
        let v: Vec<f32> = (0..t * d).map(|i| val(i, 13)).collect();
        for window in [None, Some(5)] {
            let a = attention(&q, &k, &v, t, 2, 1, d, 0.25, window, false);
            let b = attention(&q, &k, &v, t, 2, 1, d, 0.25, window, true);
            let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(err > 0.0 && err < 5e-3, "window {window:?}: {err}");
            // Token 0 sees only itself: its output is V's first row (rounded to f16).
            assert_eq!(
                b[..d],
                v[..d].iter().map(|&x| half::f16::from_f32(x).to_f32()).collect::<Vec<_>>()[..]
            );
        }
    }

    /// llama.cpp's f16 attention as written before it was split by head and read V by column:
    /// every KV cell from 0, one FMA per product, V gathered per dimension.
    #[allow(clippy::too_many_arguments)]
    fn attention_ggml_f16_as_written(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        n_tokens: usize,
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        scale: f32,
        window: Option<usize>,
    ) -> Vec<f32> {
        let fma_dot = |a: &[f32], b: &[f32]| {
            let mut acc = [0f32; LANES];
            for (ca, cb) in a.chunks(LANES).zip(b.chunks(LANES)) {
                for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
                    *s = x.mul_add(y, *s);
                }
            }
            reduce_add_16(&acc)
        };
        let round = |x: &[f32]| -> Vec<f32> {
            x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
        };
        let (q, k, v) = (round(q), round(k), round(v));
        let tiny = head_dim.is_multiple_of(LANES);
        let (qw, kw) = (n_head * head_dim, n_head_kv * head_dim);
        let padded = n_tokens.div_ceil(LANES) * LANES;
        let mut out = vec![0f32; n_tokens * qw];
        let (mut p, mut vcol) = (vec![0f32; padded], vec![0f32; padded]);
        for h in 0..n_head {
            let kvh = h / (n_head / n_head_kv);
            for i in 0..n_tokens {
                let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
                let first = first_visible(i, window);
                let cells = (i + 1).div_ceil(LANES) * LANES;
                p[..cells].fill(0.0);
                let mut max = f32::NEG_INFINITY;
                for j in first..=i {
                    let kj = &k[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
                    let s = if tiny { fma_dot(qi, kj) } else { dot(qi, kj) } * scale;
                    p[j] = s;
                    max = max.max(s);
                }
                for s in &mut p[first..=i] {
                    *s = expf_ggml(*s - max);
                }
                let sum: f64 =
                    p[..cells].as_chunks::<LANES>().0.iter().map(|c| reduce_add_16(c) as f64).sum();
                let inv = (1.0 / sum) as f32;
                for s in &mut p[first..=i] {
                    *s = half::f16::from_f32(*s * inv).to_f32();
                }
                for d in 0..head_dim {
                    vcol[..cells].fill(0.0);
                    for j in first..=i {
                        vcol[j] = v[j * kw + kvh * head_dim + d];
                    }
                    out[i * qw + h * head_dim + d] = fma_dot(&p[..cells], &vcol[..cells]);
                }
            }
        }
        out
    }

    /// The f32 attention as written before it was split by head and read K by column: one
    /// `Iterator::sum` dot per (query, key).
    #[allow(clippy::too_many_arguments)]
    fn attention_f32_as_written(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        n_tokens: usize,
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        scale: f32,
        window: Option<usize>,
    ) -> Vec<f32> {
        let group = n_head / n_head_kv;
        let (qw, kw) = (n_head * head_dim, n_head_kv * head_dim);
        let mut out = vec![0f32; n_tokens * qw];
        let mut scores = vec![0f32; n_tokens];
        for h in 0..n_head {
            let kvh = h / group;
            for i in 0..n_tokens {
                let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
                let first = first_visible(i, window);
                let mut max = f32::NEG_INFINITY;
                for j in first..=i {
                    let kj = &k[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
                    let s = dot(qi, kj) * scale;
                    scores[j] = s;
                    max = max.max(s);
                }
                let mut sum = 0f64;
                for s in &mut scores[first..=i] {
                    *s = math::exp(*s - max);
                    sum += *s as f64;
                }
                let inv = (1.0 / sum) as f32;
                let o = &mut out[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
                for j in first..=i {
                    let p = scores[j] * inv;
                    let vj = &v[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
                    for (o, &x) in o.iter_mut().zip(vj) {
                        *o += p * x;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn attention_matches_the_one_key_at_a_time_form_bit_for_bit() {
        // Values over f16's whole range, subnormals and overflow to ∞ included, so the
        // mul-then-add and the skipped and masked cells are held to the FMA form exactly; and
        // values of one scale, where every sum's order shows in its last bits.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut wide_range = true;
        let mut next = move |wide: bool| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let e = if wide { (state % 40) as i32 - 24 } else { (state % 3) as i32 - 1 };
            let m = ((state >> 8) % 1000) as f32 / 500.0 - 1.0;
            m * 2f32.powi(e)
        };
        for (t, n_head, n_head_kv, d, window) in [
            (1, 1, 1, 16, None),
            (37, 4, 2, 32, None),
            (37, 4, 2, 32, Some(5)),
            (40, 2, 1, 64, Some(17)),
            (19, 3, 3, 12, None),
            (70, 2, 1, 64, None),
            (70, 2, 1, 64, Some(33)),
            (19, 3, 3, 12, None),
        ] {
            wide_range = !wide_range;
            let mut next = || next(wide_range);
            let q: Vec<f32> = (0..t * n_head * d).map(|_| next()).collect();
            let k: Vec<f32> = (0..t * n_head_kv * d).map(|_| next()).collect();
            let mut v: Vec<f32> = (0..t * n_head_kv * d).map(|_| next()).collect();
            if wide_range {
                v[3] = 1e6; // rounds to +∞ in f16
            }
            let scale = 1.0 / (d as f32).sqrt() / if wide_range { 64.0 } else { 1.0 };
            let want =
                attention_ggml_f16_as_written(&q, &k, &v, t, n_head, n_head_kv, d, scale, window);
            let got = attention_ggml_f16(&q, &k, &v, t, n_head, n_head_kv, d, scale, window);
            let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            let (want_f32, got_f32) = (
                attention_f32_as_written(&q, &k, &v, t, n_head, n_head_kv, d, scale, window),
                attention(&q, &k, &v, t, n_head, n_head_kv, d, scale, window, false),
            );
            assert_eq!(
                bits(&got_f32),
                bits(&want_f32),
                "f32: {t} tokens, {n_head}/{n_head_kv} heads, d {d}, window {window:?}"
            );
            let (want, got): (Vec<u32>, Vec<u32>) = (
                want.iter().map(|x| x.to_bits()).collect(),
                got.iter().map(|x| x.to_bits()).collect(),
            );
            assert_eq!(
                got, want,
                "{t} tokens, {n_head}/{n_head_kv} heads, d {d}, window {window:?}"
            );
        }
    }

    #[test]
    fn silu_of_a_slice_is_silu_of_each_value_bit_for_bit() {
        // Across blocks (three and a bit), every range libm's exp tells apart and the
        // overflowing and special values.
        let mut rng = parallax_testkit::SplitMix64(0x5117);
        let mut x: Vec<f32> = (0..50_000)
            .map(|i| rng.signed_unit_f32() * [1e-9f32, 0.3, 3.0, 80.0, 800.0][i % 5])
            .collect();
        x.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -f32::MAX]);
        let want: Vec<u32> = x.iter().map(|&v| silu(v).to_bits()).collect();
        let got: Vec<u32> = silu_all(&x).iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn activations() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 1.761_594_2).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
    }
}
