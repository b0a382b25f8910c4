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
