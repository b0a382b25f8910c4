//! The rows × tokens products a prompt's matmuls run: the f32 one, Q8_0 weights (IQ4_NL,
//! Q5_0 and Q4_0 rewritten as Q8_0) × Q8_0 tokens and Q4_K, Q5_K, Q6_K × Q8_K tokens by
//! `TokenActivations::dot_rows`, against the
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
//! # the page's own engine: two builds (say simd128, and +relaxed-simd) in Chromium, 304 tokens
//! ARGS=304 node bench/kernels_in_chromium.mjs A.wasm B.wasm
//! ```
//!
//! In Chromium leave the browser on every core: pinned to one (`taskset`), its background
//! compiler and the measured code share it, and runs of one build spread 7.9–15.1 G products/s
//! where unpinned they held within 4 % (session 25, the f32 product).
//!
//! Natively it measures the AVX-512 VNNI register blocks (or, without them, the same loop);
//! `KERNELS=avx2` (or `scalar`) caps the kernels as `parallax run --kernels` does.
//! `bench/products_vs_native.mjs` runs it natively and both wasm builds in Chromium, and prints
//! each product's native / browser ratio.

use std::time::Instant;

use parallax_quant::dot::{Activation, TokenActivations};
use parallax_quant::{quantize_activation, GgmlType};
use parallax_testkit::SplitMix64 as Rng;

const ROWS: usize = 512;
const COLS: usize = 896;
/// The k-quants' columns: whole super-blocks of 256 values.
const K_COLS: usize = 1024;
/// Tokens by default; the first argument sets another count (304: the built-in text's, whose
/// prepared tokens no longer fit L2 beside the rows).
const TOKENS: usize = 64;
/// Rows of the f32 product's calls: the engine's tiles (`parallax_engine`'s `TILE_ROWS`), each
/// dequantized, then multiplied while in cache.
const F32_TILE_ROWS: usize = 32;
/// Calls per timed sample: one call is ~1.5 ms, and a browser's clock is coarse (Chromium's
/// `performance.now()` in steps of 0.1 ms, 5 µs where cross-origin isolated).
const REPS: usize = 16;
/// Seconds each pairing runs untimed before it is timed.
const WARM_UP_S: f64 = 0.5;

fn main() {
    let n_tokens = std::env::args().nth(1).map_or(TOKENS, |n| n.parse().expect("a token count"));
    if let Ok(name) = std::env::var("KERNELS") {
        use parallax_cpu::Level;
        // The names `--kernels` takes, from the levels themselves.
        let level = [Level::Scalar, Level::Avx2, Level::Avx512]
            .into_iter()
            .find(|level| level.name() == name)
            .expect("KERNELS is avx512, avx2 or scalar");
        parallax_cpu::cap(level).expect("kernels this CPU runs");
    }
    let mut rng = Rng(0x5EED);
    // The f32 path's product: dequantized rows × f32 tokens.
    let w: Vec<f32> = (0..ROWS * COLS).map(|_| rng.signed_unit_f32()).collect();
    let xs: Vec<Vec<f32>> =
        (0..n_tokens).map(|_| (0..COLS).map(|_| rng.signed_unit_f32()).collect()).collect();
    let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
    let mut out = vec![0f32; ROWS * n_tokens];
    // In tiles of rows, as the engine calls it (each dequantized tile while in cache).
    let f32_once = |out: &mut [f32]| {
        for (w, out) in w.chunks(F32_TILE_ROWS * COLS).zip(out.chunks_mut(F32_TILE_ROWS * n_tokens))
        {
            parallax_quant::dot::vec_dot_f32_rows_tokens(w, COLS, &refs, out).expect("shapes");
        }
    };
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < WARM_UP_S {
        f32_once(&mut out);
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..REPS {
            f32_once(&mut out);
        }
        best = best.min(t.elapsed().as_secs_f64() / REPS as f64);
    }
    println!(
        "F32: rows × tokens {:.2} G products/s (best of 5 × {REPS} calls, {ROWS} rows in tiles of {F32_TILE_ROWS} × {COLS} columns × {n_tokens} tokens)",
        (ROWS * COLS * n_tokens) as f64 / best / 1e9
    );
    // Each type with its block's bytes and where its f16 scales lie.
    let types: [(GgmlType, usize, &[usize]); 7] = [
        (GgmlType::Q8_0, 34, &[0]),
        (GgmlType::IQ4_NL, 18, &[0]),
        (GgmlType::Q5_0, 22, &[0]),
        (GgmlType::Q4_0, 18, &[0]),
        (GgmlType::Q4_K, 144, &[0, 2]),
        (GgmlType::Q5_K, 176, &[0, 2]),
        (GgmlType::Q6_K, 210, &[208]),
    ];
    for (ty, block_bytes, scales) in types {
        // The k-quants' rows are whole super-blocks of 256.
        let (cols, values) = if block_bytes >= 144 { (K_COLS, 256) } else { (COLS, 32) };
        // Random blocks with finite scales (0x2000 as f16, 2⁻¹⁵·…: small and normal).
        let mut w: Vec<u8> =
            (0..ROWS * cols / values * block_bytes).map(|_| rng.next_u64() as u8).collect();
        for b in w.chunks_exact_mut(block_bytes) {
            for &at in scales {
                b[at..at + 2].copy_from_slice(&[0x00, 0x20]);
            }
        }
        let acts: Vec<Activation> = (0..n_tokens)
            .map(|_| {
                let x: Vec<f32> = (0..cols).map(|_| rng.signed_unit_f32()).collect();
                quantize_activation(ty, &x).expect("the type's tokens")
            })
            .collect();
        let row_bytes = w.len() / ROWS;
        let mut out = vec![0f32; ROWS * n_tokens];
        let all_rows_once = |out: &mut [f32]| {
            let tokens = TokenActivations::new(ty, &acts).expect("same lengths");
            tokens.dot_rows(&w, out).expect("whole rows");
        };
        let row_by_row_once = |out: &mut [f32]| {
            let tokens = TokenActivations::new(ty, &acts).expect("same lengths");
            for (row, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n_tokens)) {
                tokens.dot_row(row, out).expect("one row");
            }
        };
        // Warmed up first: a browser compiles a hot function's optimized code in the
        // background, and a few milliseconds of calls can all run before it is ready.
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < WARM_UP_S {
            all_rows_once(&mut out);
            row_by_row_once(&mut out);
        }
        let (mut all_rows, mut row_by_row) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..REPS {
                all_rows_once(&mut out);
            }
            all_rows = all_rows.min(t.elapsed().as_secs_f64() / REPS as f64);
            let t = Instant::now();
            for _ in 0..REPS {
                row_by_row_once(&mut out);
            }
            row_by_row = row_by_row.min(t.elapsed().as_secs_f64() / REPS as f64);
        }
        let products = (ROWS * cols * n_tokens) as f64;
        println!(
            "{ty}: dot_rows {:.2} G products/s, row by row {:.2}: ×{:.2} (best of 5 × {REPS} calls, {ROWS} rows × {cols} columns × {n_tokens} tokens)",
            products / all_rows / 1e9,
            products / row_by_row / 1e9,
            row_by_row / all_rows
        );
    }
}
