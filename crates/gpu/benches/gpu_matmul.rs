//! GPU matmul throughput beside the CPU f32 path, same matrices, same run:
//! `cargo bench -p parallax-gpu --bench gpu_matmul` (or `./dev bench-gpu`).
//!
//! For each weight type a `ROWS × COLS` matrix of random blocks is multiplied with 1 and 7 tokens
//! (the contract prompt's length). GPU: one `GpuMatmul::matmul` call, as the engine makes it —
//! weights uploaded, kernel run, result read back. CPU: the engine's f32 path (32-row tiles
//! dequantized, then `vec_dot_f32` per token), on one thread and on all of them (rayon).
//! Figures: median of `REPEATS` after a warm-up; GFLOP/s = 2·rows·cols·tokens / time, weight
//! GB/s = packed weight bytes / time.

use std::time::{Duration, Instant};

use parallax_gpu::GpuMatmul;
use parallax_quant::GgmlType;
use rayon::prelude::*;

const ROWS: usize = 4096;
const COLS: usize = 4096;
const REPEATS: usize = 5;

fn median(mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[REPEATS / 2]
}

fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let n = rows * cols;
    let mut bytes: Vec<u8> = match ty {
        GgmlType::F32 => {
            (0..n).flat_map(|_| ((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes()).collect()
        }
        GgmlType::F16 => (0..n)
            .flat_map(|_| half::f16::from_f32((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes())
            .collect(),
        _ => (0..n / ty.block_size() * ty.type_size()).map(|_| next() as u8).collect(),
    };
    // Finite scales: the d (and dmin) fields of each block.
    let fields: &[usize] = match ty {
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        _ => &[],
    };
    if !fields.is_empty() {
        for block in bytes.chunks_exact_mut(ty.type_size()) {
            for &o in fields {
                block[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
        }
    }
    bytes
}

/// The engine's f32 path: 32-row tiles dequantized, dotted with each token.
fn cpu_f32_path(
    ty: GgmlType,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
    parallel: bool,
) -> Vec<f32> {
    const TILE: usize = 32;
    let row_bytes = bytes.len() / rows;
    let mut by_row = vec![0f32; rows * n];
    let tile = |(i, out): (usize, &mut [f32])| {
        let r0 = i * TILE;
        let n_rows = out.len() / n;
        let mut w = vec![0f32; n_rows * cols];
        parallax_quant::dequantize(ty, &bytes[r0 * row_bytes..(r0 + n_rows) * row_bytes], &mut w)
            .unwrap();
        for (r, o) in out.chunks_exact_mut(n).enumerate() {
            for (t, o) in o.iter_mut().enumerate() {
                *o = parallax_quant::dot::vec_dot_f32(
                    &w[r * cols..(r + 1) * cols],
                    &x[t * cols..(t + 1) * cols],
                );
            }
        }
    };
    if parallel {
        by_row.par_chunks_mut(TILE * n).enumerate().for_each(tile);
    } else {
        by_row.chunks_mut(TILE * n).enumerate().for_each(tile);
    }
    by_row
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let gpu = match pollster::block_on(GpuMatmul::new()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU to benchmark: {e}");
            return;
        }
    };
    let f = gpu.facts();
    println!(
        "adapter: {} ({}, {}) · largest binding {} MiB",
        f.name,
        f.backend,
        f.device_type,
        gpu.max_binding_bytes() >> 20
    );
    println!("CPU: {} threads for the parallel f32 path", rayon::current_num_threads());
    let (rows, cols) = if quick { (256, 1024) } else { (ROWS, COLS) };
    println!("matrix {rows} × {cols}; GPU time includes upload and read-back (one engine call)\n");
    println!(
        "{:<5} {:>3} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8}",
        "type",
        "tok",
        "gpu ms",
        "GFLOP/s",
        "w GB/s",
        "cpu1 ms",
        "GFLOP/s",
        "w GB/s",
        "cpuN ms",
        "GFLOP/s",
        "w GB/s"
    );
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::F16,
        GgmlType::F32,
    ] {
        let bytes = random_matrix(ty, rows, cols, ty.id() as u64 + 11);
        for n in [1usize, 7] {
            let x: Vec<f32> = (0..n * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 48.0).collect();
            let gpu_y =
                pollster::block_on(gpu.matmul(ty, &bytes, rows, cols, &x, n)).expect("gpu matmul");
            let cpu_y = cpu_f32_path(ty, &bytes, rows, cols, &x, n, true);
            // Same numbers, or the timing means nothing (cpu_y is rows × tokens).
            let max = cpu_y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
            for r in 0..rows {
                for t in 0..n {
                    let d = (gpu_y[t * rows + r] - cpu_y[r * n + t]).abs();
                    assert!(d <= 1e-4 * max, "{ty}: gpu and cpu disagree at row {r} token {t}");
                }
            }
            let tg = median(|| {
                pollster::block_on(gpu.matmul(ty, &bytes, rows, cols, &x, n)).unwrap();
            });
            let t1 = median(|| {
                cpu_f32_path(ty, &bytes, rows, cols, &x, n, false);
            });
            let tn = median(|| {
                cpu_f32_path(ty, &bytes, rows, cols, &x, n, true);
            });
            let flops = 2.0 * (rows * cols * n) as f64;
            let cell = |t: Duration| {
                let s = t.as_secs_f64();
                format!(
                    "{:>10.2} {:>8.2} {:>8.2}",
                    s * 1e3,
                    flops / s / 1e9,
                    bytes.len() as f64 / s / 1e9
                )
            };
            println!("{:<5} {:>3} | {} | {} | {}", ty.to_string(), n, cell(tg), cell(t1), cell(tn));
        }
    }
}
