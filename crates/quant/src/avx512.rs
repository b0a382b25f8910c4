//! AVX-512 twins of the kernels where register blocking pays: with 32 vector registers a
//! block of weight rows × tokens keeps every partial sum in registers, so each loaded weight
//! vector serves several tokens and each loaded token vector several rows — the tiled matrix ×
//! matrix product llama.cpp's llamafile sgemm runs on this CPU, in [`crate::order`]'s float
//! order. Results equal the scalar reference bit for bit (`tests/simd_parity.rs`).
//!
//! Runtime-detected ([`available`]); the dispatchers in [`crate::dot`] prefer these where they
//! exist and fall back to [`crate::avx2`].

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Whether this CPU runs the kernels of this module (AVX-512 Foundation) as well as the AVX2
/// ones they fall back to. Detected once.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f") && crate::avx2::available())
}

/// Weight rows in one register block of [`vec_dot_f32_rows_tokens`].
const ROWS: usize = 3;
/// Tokens in one register block: `ROWS × TOKENS` dots of two accumulators each (24 registers),
/// plus the rows' and a token's loads, fit AVX-512's 32.
const TOKENS: usize = 4;

/// `R` weight rows · `T` token rows, `out[r][t]` = `vec_dot_f32(rows[r], xs[t])` bit for bit:
/// each dot's 32 lanes (element `i` into lane `i mod 32`, product rounded then added) are two
/// 16-lane registers, the tail is added lane by lane, then [`crate::order::reduce32`].
#[inline(always)]
unsafe fn dot_block<const R: usize, const T: usize>(
    rows: [&[f32]; R],
    xs: [&[f32]; T],
    n: usize,
) -> [[f32; T]; R] {
    let mut acc = [[[_mm512_setzero_ps(); 2]; T]; R];
    let mut i = 0;
    while i + 32 <= n {
        let w: [[__m512; 2]; R] = std::array::from_fn(|r| {
            let p = rows[r].as_ptr().add(i);
            [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))]
        });
        for t in 0..T {
            let p = xs[t].as_ptr().add(i);
            let x = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
            for r in 0..R {
                for h in 0..2 {
                    acc[r][t][h] = _mm512_add_ps(acc[r][t][h], _mm512_mul_ps(w[r][h], x[h]));
                }
            }
        }
        i += 32;
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let mut lanes = [0f32; 32];
            _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r][t][0]);
            _mm512_storeu_ps(lanes.as_mut_ptr().add(16), acc[r][t][1]);
            for (lane, k) in lanes.iter_mut().zip(i..n) {
                *lane += rows[r][k] * xs[t][k];
            }
            out[r][t] = crate::order::reduce32(&lanes);
        }
    }
    out
}

/// The rows of `w` (row-major, `cols` a row) against the tokens `xs[t0..t0 + T]`, in blocks of
/// [`ROWS`] rows (the last rows one at a time).
#[inline(always)]
unsafe fn rows_against<const T: usize>(
    w: &[f32],
    cols: usize,
    xs: &[&[f32]],
    t0: usize,
    out: &mut [f32],
) {
    let nt = xs.len();
    let tokens: [&[f32]; T] = std::array::from_fn(|t| xs[t0 + t]);
    let n_rows = w.len() / cols;
    let row = |r: usize| &w[r * cols..(r + 1) * cols];
    let mut r = 0;
    while r + ROWS <= n_rows {
        let sums = dot_block::<ROWS, T>(std::array::from_fn(|k| row(r + k)), tokens, cols);
        for (k, sums) in sums.iter().enumerate() {
            out[(r + k) * nt + t0..][..T].copy_from_slice(sums);
        }
        r += ROWS;
    }
    while r < n_rows {
        let [sums] = dot_block::<1, T>([row(r)], tokens, cols);
        out[r * nt + t0..][..T].copy_from_slice(&sums);
        r += 1;
    }
}

/// Rows of `cols` f32 weights against several f32 rows: `out[r * xs.len() + t]` equals
/// `vec_dot_f32(row r, xs[t])` bit for bit. Tokens go in groups of [`TOKENS`] (the last group
/// smaller), the group being the outer loop so its rows stay in L1 while the weight rows stream
/// past, and each group meets the weights [`ROWS`] rows at a time.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); `cols > 0`, `w.len()` is a multiple of
/// `cols`, every `xs[t]` has `cols` values and `out.len() == w.len() / cols * xs.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn vec_dot_f32_rows_tokens(w: &[f32], cols: usize, xs: &[&[f32]], out: &mut [f32]) {
    let mut t = 0;
    while t < xs.len() {
        let group = (xs.len() - t).min(TOKENS);
        match group {
            4 => rows_against::<4>(w, cols, xs, t, out),
            3 => rows_against::<3>(w, cols, xs, t, out),
            2 => rows_against::<2>(w, cols, xs, t, out),
            _ => rows_against::<1>(w, cols, xs, t, out),
        }
        t += group;
    }
}

// ---------------------------------------------------------------------------------------------
// 32-value formats × Q8_0 with VNNI: weight rows × tokens in register blocks
// ---------------------------------------------------------------------------------------------

/// Whether this CPU has AVX-512 VNNI (with the 256-bit forms, AVX-512VL) for the rows × tokens
/// kernels below, as well as the AVX2 kernels they share helpers with. Detected once.
pub fn vnni_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        available()
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl")
    })
}

use crate::avx2::{bits_le, fp16x2, fp16x4, hsum_i32, load32, totals4};
use crate::blocks::{BlockQ8_0, IQ4_NL_BYTES, Q4_0_BYTES, Q5_0_BYTES, Q8_0_BYTES};

/// Weight rows one VNNI register block takes.
const Q_ROWS: usize = 2;
/// Tokens one VNNI register block takes.
const Q_TOKENS: usize = 4;

/// A 32-value block format that pairs with Q8_0, in blocks of `B` bytes: its values as 32 i8.
trait Legacy<const B: usize> {
    /// # Safety
    /// AVX2 (the decoders are [`crate::avx2`]'s).
    unsafe fn decode(x: &[u8; B]) -> __m256i;
}

macro_rules! legacy_formats {
    ($($(#[$doc:meta])* $name:ident: $bytes:ident, |$x:ident| $decode:expr;)*) => {$(
        $(#[$doc])*
        struct $name;
        impl Legacy<$bytes> for $name {
            #[inline(always)]
            unsafe fn decode($x: &[u8; $bytes]) -> __m256i {
                $decode
            }
        }
    )*};
}

legacy_formats! {
    Q4_0: Q4_0_BYTES, |x| crate::avx2::decode_q4_0(x);
    Q5_0: Q5_0_BYTES, |x| crate::avx2::decode_q5_0(x);
    Iq4Nl: IQ4_NL_BYTES, |x| crate::avx2::decode_iq4_nl(x);
    /// Q8_0 weights are their bytes, −128 included (`vpdpbusd` takes them as they are).
    Q8_0: Q8_0_BYTES, |x| load32(x.as_ptr().add(2));
}

/// `R` weight rows (whole rows of format `F`) · `T` Q8_0 token rows, `out[r][t]` equal to the
/// scalar dot bit for bit: each block's exact integer sum, then [`crate::order`]'s float order
/// (block `b`'s `(d_w·d_a)·isum` into accumulator `b mod 4`), four blocks at a time as the AVX2
/// multi-token kernel does.
///
/// The integer sum comes from `vpdpbusd` (unsigned × signed bytes, four products per i32 lane,
/// no saturation), where AVX2 needs a sign trick and two multiplies (and, for Q8_0's −128
/// weights, a widening to i16): the activation is made unsigned by flipping its sign bit
/// (`a + 128`), and the lanes start at `−128·Σw` (per four weights), so they add up to exactly
/// `Σ a·w`.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn legacy_block<const B: usize, F: Legacy<B>, const R: usize, const T: usize>(
    rows: [&[[u8; B]]; R],
    acts: [&[BlockQ8_0]; T],
) -> [[f32; T]; R] {
    let n = acts.iter().fold(rows[0].len(), |n, a| n.min(a.len()));
    let flip = _mm256_set1_epi8(-128);
    let zero = _mm256_setzero_si256();
    let start = |w: __m256i| _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, flip, w));
    let flipped = |y: &BlockQ8_0| _mm256_xor_si256(load32(y.qs.as_ptr() as *const u8), flip);
    let mut acc = [[_mm_setzero_ps(); T]; R];
    let mut b = 0;
    while b + 4 <= n {
        let a: [[__m256i; T]; 4] =
            std::array::from_fn(|k| std::array::from_fn(|t| flipped(&acts[t][b + k])));
        let da: [__m128; T] = std::array::from_fn(|t| {
            let y = &acts[t][b..b + 4];
            fp16x4(y[0].d.to_bits(), y[1].d.to_bits(), y[2].d.to_bits(), y[3].d.to_bits())
        });
        for r in 0..R {
            let x = &rows[r][b..b + 4];
            let s: [[__m256i; T]; 4] = std::array::from_fn(|k| {
                let w = F::decode(&x[k]);
                let c = start(w);
                std::array::from_fn(|t| _mm256_dpbusd_epi32(c, a[k][t], w))
            });
            let dw =
                fp16x4(bits_le(&x[0], 0), bits_le(&x[1], 0), bits_le(&x[2], 0), bits_le(&x[3], 0));
            for t in 0..T {
                let tot = totals4(s[0][t], s[1][t], s[2][t], s[3][t]);
                acc[r][t] =
                    _mm_add_ps(acc[r][t], _mm_mul_ps(_mm_mul_ps(dw, da[t]), _mm_cvtepi32_ps(tot)));
            }
        }
        b += 4;
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let mut lanes = [0f32; 4];
            _mm_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
            let mut sums = crate::order::BlockAcc4(lanes);
            for k in b..n {
                let (x, y) = (&rows[r][k], &acts[t][k]);
                let w = F::decode(x);
                let isum = hsum_i32(_mm256_dpbusd_epi32(start(w), flipped(y), w));
                let (dx, dy) = fp16x2(bits_le(x, 0), y.d.to_bits());
                sums.add(k, (dx * dy) * isum as f32);
            }
            out[r][t] = sums.total();
        }
    }
    out
}

/// Every row of `w` (whole rows of `row_bytes`) against every token, `out[r * acts.len() + t]`,
/// in register blocks of [`Q_ROWS`] × [`Q_TOKENS`], then the rows and tokens left over one at a
/// time.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn legacy_rows_tokens<const B: usize, F: Legacy<B>>(
    w: &[u8],
    row_bytes: usize,
    acts: &[&[BlockQ8_0]],
    out: &mut [f32],
) {
    let nt = acts.len();
    let rows: Vec<&[[u8; B]]> = w.chunks_exact(row_bytes).map(|r| r.as_chunks::<B>().0).collect();
    macro_rules! block {
        ($r:expr, $t:expr, $R:expr, $T:expr) => {{
            let sums = legacy_block::<B, F, { $R }, { $T }>(
                std::array::from_fn(|k| rows[$r + k]),
                std::array::from_fn(|k| acts[$t + k]),
            );
            for (k, sums) in sums.iter().enumerate() {
                out[($r + k) * nt + $t..][..$T].copy_from_slice(sums);
            }
        }};
    }
    let (whole_rows, whole_tokens) = (rows.len() / Q_ROWS * Q_ROWS, nt / Q_TOKENS * Q_TOKENS);
    for r in (0..whole_rows).step_by(Q_ROWS) {
        for t in (0..whole_tokens).step_by(Q_TOKENS) {
            block!(r, t, Q_ROWS, Q_TOKENS);
        }
        for t in whole_tokens..nt {
            block!(r, t, Q_ROWS, 1);
        }
    }
    for r in whole_rows..rows.len() {
        for t in (0..whole_tokens).step_by(Q_TOKENS) {
            block!(r, t, 1, Q_TOKENS);
        }
        for t in whole_tokens..nt {
            block!(r, t, 1, 1);
        }
    }
}

macro_rules! legacy_rows_tokens_kernels {
    ($($name:ident: $format:ident, $bytes:ident;)*) => {$(
        /// Rows of this format (`w`: whole rows of `row_bytes`) × Q8_0 token rows:
        /// `out[r * acts.len() + t]` equals the scalar dot of row `r` and token `t` bit for bit
        /// (see [`legacy_block`]).
        ///
        /// # Safety
        /// The CPU must have AVX-512 VNNI and VL ([`vnni_available`]); `row_bytes > 0`,
        /// `w.len()` a multiple of it, every token as many blocks as a row and
        /// `out.len() == w.len() / row_bytes * acts.len()`.
        #[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
        pub unsafe fn $name(w: &[u8], row_bytes: usize, acts: &[&[BlockQ8_0]], out: &mut [f32]) {
            legacy_rows_tokens::<$bytes, $format>(w, row_bytes, acts, out)
        }
    )*};
}

legacy_rows_tokens_kernels! {
    vec_dot_q4_0_q8_0_rows_tokens: Q4_0, Q4_0_BYTES;
    vec_dot_q5_0_q8_0_rows_tokens: Q5_0, Q5_0_BYTES;
    vec_dot_q8_0_q8_0_rows_tokens: Q8_0, Q8_0_BYTES;
    vec_dot_iq4_nl_q8_0_rows_tokens: Iq4Nl, IQ4_NL_BYTES;
}
