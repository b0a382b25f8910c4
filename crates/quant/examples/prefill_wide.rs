//! The rows × tokens products a prompt's matmuls run: the f32 one, and Q8_0 weights (IQ4_NL,
//! Q5_0 and Q4_0 rewritten as Q8_0) × Q8_0 tokens by `TokenActivations::dot_rows`, against the
//! same rows dotted one at a time (`dot_row`, which widens every token's blocks again for each
//! row), in one process: products per second and their ratio. Meant for the wasm simd128 build, where `dot_rows`
//! widens the tokens to i16 once per matrix (`simd128::PreparedWide`), and its relaxed SIMD
//! build, where Q4_0 and Q5_0 take `simd128::unsigned_rows` (run that one under wasmtime,
//! `python3 tools/wasi-run.py`, or in Chromium: node 20's relaxed SIMD is wrong):
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p parallax-quant \
//!     --target wasm32-wasip1 --example prefill_wide
//! node --no-warnings tools/wasi-run.mjs target/wasm32-wasip1/release/examples/prefill_wide.wasm
//! ```
//!
//! Natively it measures the AVX-512 VNNI register blocks (or, without them, the same loop).

use std::time::Instant;

use parallax_quant::dot::{Activation, TokenActivations};
use parallax_quant::{quantize_activation, GgmlType};
use parallax_testkit::SplitMix64 as Rng;

const ROWS: usize = 512;
const COLS: usize = 896;
/// Tokens by default; the first argument sets another count (304: the built-in text's, whose
/// prepared tokens no longer fit L2 beside the rows).
const TOKENS: usize = 64;
/// Calls per timed sample: one call is ~1.5 ms, and a browser's clock is coarse (Chromium's
/// `performance.now()` in steps of 0.1 ms, 5 µs where cross-origin isolated).
const REPS: usize = 16;

fn main() {
    let n_tokens = std::env::args().nth(1).map_or(TOKENS, |n| n.parse().expect("a token count"));
    let mut rng = Rng(0x5EED);
    // The f32 path's product: dequantized rows × f32 tokens.
    let w: Vec<f32> = (0..ROWS * COLS).map(|_| rng.signed_unit_f32()).collect();
    let xs: Vec<Vec<f32>> =
        (0..n_tokens).map(|_| (0..COLS).map(|_| rng.signed_unit_f32()).collect()).collect();
    let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
    let mut out = vec![0f32; ROWS * n_tokens];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..REPS {
            parallax_quant::dot::vec_dot_f32_rows_tokens(&w, COLS, &refs, &mut out)
                .expect("shapes");
        }
        best = best.min(t.elapsed().as_secs_f64() / REPS as f64);
    }
    println!(
        "F32: rows × tokens {:.2} G products/s (best of 5 × {REPS} calls, {ROWS} rows × {COLS} columns × {n_tokens} tokens)",
        (ROWS * COLS * n_tokens) as f64 / best / 1e9
    );
    for (ty, block_bytes) in
        [(GgmlType::Q8_0, 34), (GgmlType::IQ4_NL, 18), (GgmlType::Q5_0, 22), (GgmlType::Q4_0, 18)]
    {
        // Random blocks with a finite scale (0x2000 as f16, 2⁻¹⁵·…: small and normal).
        let mut w: Vec<u8> =
            (0..ROWS * COLS / 32 * block_bytes).map(|_| rng.next_u64() as u8).collect();
        for b in w.chunks_exact_mut(block_bytes) {
            b[..2].copy_from_slice(&[0x00, 0x20]);
        }
        let acts: Vec<Activation> = (0..n_tokens)
            .map(|_| {
                let x: Vec<f32> = (0..COLS).map(|_| rng.signed_unit_f32()).collect();
                quantize_activation(ty, &x).expect("Q8_0 tokens")
            })
            .collect();
        let row_bytes = w.len() / ROWS;
        let mut out = vec![0f32; ROWS * n_tokens];
        let (mut all_rows, mut row_by_row) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..REPS {
                let tokens = TokenActivations::new(ty, &acts).expect("same lengths");
                tokens.dot_rows(&w, &mut out).expect("whole rows");
            }
            all_rows = all_rows.min(t.elapsed().as_secs_f64() / REPS as f64);
            let t = Instant::now();
            for _ in 0..REPS {
                let tokens = TokenActivations::new(ty, &acts).expect("same lengths");
                for (row, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n_tokens)) {
                    tokens.dot_row(row, out).expect("one row");
                }
            }
            row_by_row = row_by_row.min(t.elapsed().as_secs_f64() / REPS as f64);
        }
        let products = (ROWS * COLS * n_tokens) as f64;
        println!(
            "{ty}: dot_rows {:.2} G products/s, row by row {:.2}: ×{:.2} (best of 5 × {REPS} calls, {ROWS} rows × {COLS} columns × {n_tokens} tokens)",
            products / all_rows / 1e9,
            products / row_by_row / 1e9,
            row_by_row / all_rows
        );
    }
}
