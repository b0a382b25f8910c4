//! Every kernel against the CPU on random data of each type: the shader's dequantization equals
//! the CPU's (`parallax_quant::dequantize`, bit-exact with ggml) bit for bit, and each matmul
//! output is within 1e-5 of the CPU's dequantize-then-f32-dot, relative to Σ|w·x| (the scale
//! of an f32 dot's rounding error: a plain relative error is unbounded where terms cancel).
//!
//! Runs on whatever adapter wgpu finds (Mesa lavapipe in `./dev test`). With no adapter the
//! tests say so on stderr and pass, unless `PARALLAX_REQUIRE_GPU=1` or `CI` is set, where they fail.

use std::sync::OnceLock;

use parallax_gpu::{GpuError, GpuMatmul, GpuOptions};
use parallax_quant::GgmlType;
use parallax_testkit::SplitMix64 as Rng;

const TOLERANCE: f64 = 1e-5;

fn gpu() -> Option<&'static GpuMatmul> {
    static GPU: OnceLock<Option<GpuMatmul>> = OnceLock::new();
    GPU.get_or_init(|| open(GpuOptions::default())).as_ref()
}

fn open(opts: GpuOptions) -> Option<GpuMatmul> {
    match pollster::block_on(GpuMatmul::with_options(opts)) {
        Ok(g) => {
            eprintln!(
                "adapter: {} ({}, {})",
                g.facts().name,
                g.facts().backend,
                g.facts().device_type
            );
            Some(g)
        }
        Err(e) => {
            parallax_testkit::skip_unless_required("PARALLAX_REQUIRE_GPU", &e.to_string());
            None
        }
    }
}

/// Byte offsets of the f16 scale fields in one block, per type: they get finite, moderate values
/// (random bits would give NaN/Inf scales, which make every comparison meaningless).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match ty {
        T::Q4_0 | T::Q5_0 | T::Q8_0 | T::IQ4_NL | T::IQ4_XS => &[0],
        T::Q4_1 | T::Q5_1 | T::Q8_1 | T::Q4_K | T::Q5_K => &[0, 2],
        T::Q2_K => &[80, 82],
        T::Q3_K => &[108],
        T::Q6_K => &[208],
        _ => &[],
    }
}

/// `rows` × `cols` of random blocks of `ty`, with sane scales; some scales are f16 subnormals.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.signed_unit_f32().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| half::f16::from_f32(rng.signed_unit_f32() * 2.0).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.signed_unit_f32() * 2.0).to_le_bytes())
            .collect(),
        _ => {
            let size = ty.type_size();
            let blocks = n / ty.block_size();
            let mut bytes: Vec<u8> = (0..blocks * size).map(|_| rng.next_u64() as u8).collect();
            for block in bytes.chunks_exact_mut(size) {
                for &o in f16_fields(ty) {
                    let scale = if rng.next_u64().is_multiple_of(16) {
                        // A subnormal half: the shader's f16 decode must keep it.
                        half::f16::from_bits((rng.next_u64() % 0x3ff) as u16 + 1).to_f32()
                    } else {
                        rng.signed_unit_f32() * 0.05
                    };
                    block[o..o + 2].copy_from_slice(&half::f16::from_f32(scale).to_le_bytes());
                }
                if ty == GgmlType::Q8_K {
                    block[0..4].copy_from_slice(&(rng.signed_unit_f32() * 0.01).to_le_bytes());
                }
            }
            bytes
        }
    }
}

fn cpu_dequantize(ty: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let mut w = vec![0f32; rows * cols];
    parallax_quant::dequantize(ty, bytes, &mut w).unwrap();
    w
}

/// Worst |gpu − cpu| / Σ|w·x| over all outputs; the CPU side is the engine's f32 path arithmetic.
fn worst_error(
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    gpu: &[f32],
) -> f64 {
    assert_eq!(gpu.len(), rows * n_tokens);
    let mut worst = 0f64;
    for t in 0..n_tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let cpu = parallax_quant::dot::vec_dot_f32(wr, xt) as f64;
            let scale: f64 = wr.iter().zip(xt).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
            let g = gpu[t * rows + r] as f64;
            assert!(g.is_finite(), "token {t} row {r}: the GPU gave {g}");
            let err = if scale == 0.0 { (g - cpu).abs() } else { (g - cpu).abs() / scale };
            worst = worst.max(err);
        }
    }
    worst
}

fn check_type(ty: GgmlType, shapes: &[(usize, usize)], tokens: &[usize]) {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(ty.id() as u64 * 7919 + 1);
    for &(rows, cols) in shapes {
        let bytes = random_matrix(ty, rows, cols, &mut rng);
        let w = cpu_dequantize(ty, &bytes, rows, cols);
        if parallax_gpu::dequantized_in_shader(ty) {
            let g = pollster::block_on(gpu.dequantize(ty, &bytes, rows, cols)).unwrap();
            let mismatches: Vec<usize> =
                (0..w.len()).filter(|&i| g[i].to_bits() != w[i].to_bits()).collect();
            assert!(
                mismatches.is_empty(),
                "{ty} {rows}×{cols}: shader dequantization differs at {} values, first at {} (gpu {} cpu {})",
                mismatches.len(),
                mismatches[0],
                g[mismatches[0]],
                w[mismatches[0]]
            );
        }
        for &n in tokens {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.signed_unit_f32() * 3.0).collect();
            let y = pollster::block_on(gpu.matmul(ty, &bytes, rows, cols, &x, n)).unwrap();
            let err = worst_error(&w, rows, cols, &x, n, &y);
            eprintln!("{ty} {rows}×{cols} × {n} tokens: worst error {err:.2e} of Σ|w·x|");
            assert!(
                err <= TOLERANCE,
                "{ty} {rows}×{cols} × {n} tokens: error {err:.3e} > {TOLERANCE:e}"
            );
        }
    }
}

// Shapes: odd row counts; a row shorter than one workgroup's lanes × 32 and one longer (lanes
// take several chunks); 1, 7, 9 (two token tiles) and 17 tokens.
#[test]
fn q4_k_matches_cpu() {
    check_type(GgmlType::Q4_K, &[(37, 512), (5, 4864)], &[1, 7, 9]);
}

#[test]
fn q6_k_matches_cpu() {
    check_type(GgmlType::Q6_K, &[(37, 512), (5, 4864)], &[1, 7, 9]);
}

#[test]
fn q5_0_matches_cpu() {
    check_type(GgmlType::Q5_0, &[(41, 96), (7, 4096)], &[1, 7, 17]);
}

#[test]
fn q8_0_matches_cpu() {
    check_type(GgmlType::Q8_0, &[(41, 96), (7, 4096)], &[1, 7, 17]);
}

#[test]
fn f16_matches_cpu() {
    check_type(GgmlType::F16, &[(41, 96), (7, 4000), (3, 45)], &[1, 9]);
}

#[test]
fn f32_matches_cpu() {
    check_type(GgmlType::F32, &[(41, 96), (7, 4000), (3, 45)], &[1, 9]);
}

/// Types without a shader of their own are dequantized on the CPU and uploaded as f32.
#[test]
fn cpu_dequantized_types_match_cpu() {
    use GgmlType as T;
    for ty in [T::Q4_0, T::Q4_1, T::Q5_1, T::Q2_K, T::Q3_K, T::Q5_K, T::BF16, T::IQ4_NL, T::IQ4_XS]
    {
        assert!(!parallax_gpu::dequantized_in_shader(ty));
        check_type(ty, &[(13, 512)], &[1, 7]);
    }
}

/// With a tiny binding limit every matrix is split into many row tiles; the result is the same
/// as one tile's, bit for bit (each output row is computed the same way in either case).
#[test]
fn tiling_gives_the_same_bits() {
    let Some(whole) = gpu() else { return };
    let Some(tiled) = open(GpuOptions { max_binding_bytes: Some(8192), ..Default::default() })
    else {
        return;
    };
    let mut rng = Rng(99);
    for (ty, rows, cols) in
        [(GgmlType::Q6_K, 97, 512), (GgmlType::Q8_0, 300, 256), (GgmlType::Q2_K, 50, 512)]
    {
        let bytes = random_matrix(ty, rows, cols, &mut rng);
        let n = 3;
        let x: Vec<f32> = (0..n * cols).map(|_| rng.signed_unit_f32()).collect();
        let a = pollster::block_on(whole.matmul(ty, &bytes, rows, cols, &x, n)).unwrap();
        let b = pollster::block_on(tiled.matmul(ty, &bytes, rows, cols, &x, n)).unwrap();
        // What is uploaded per row: the packed bytes, or f32 for types dequantized on the CPU.
        let row_bytes =
            if parallax_gpu::dequantized_in_shader(ty) { bytes.len() / rows } else { cols * 4 };
        assert!(
            row_bytes * 2 < 8192 && rows * row_bytes > 8192 * 2,
            "{ty}: the test must need several tiles"
        );
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{ty}: tiled result differs"
        );
    }
    // One row wider than the binding cannot be tiled: an error, not a panic.
    let bytes = random_matrix(GgmlType::F32, 1, 4096, &mut rng);
    let x = vec![1f32; 4096];
    match pollster::block_on(tiled.matmul(GgmlType::F32, &bytes, 1, 4096, &x, 1)) {
        Err(GpuError::TooLarge { message }) => assert!(message.contains("exceeds"), "{message}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Qwen2.5's output head shape (151936 × 896, Q8_0) in one call, tiled against the adapter's
/// binding limit (128 MiB on lavapipe: 144 MB of Q8_0 does not fit one binding).
#[test]
fn output_head_sized_matrix() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols, n) = (151936, 896, 2);
    let mut rng = Rng(5);
    let bytes = random_matrix(GgmlType::Q8_0, rows, cols, &mut rng);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.signed_unit_f32()).collect();
    let y = pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, rows, cols, &x, n)).unwrap();
    // Check a sample of rows across the whole head, including the last.
    let picks: Vec<usize> = (0..rows).step_by(997).chain([rows - 1]).collect();
    let mut sub_bytes = Vec::new();
    let row_bytes = bytes.len() / rows;
    for &r in &picks {
        sub_bytes.extend_from_slice(&bytes[r * row_bytes..(r + 1) * row_bytes]);
    }
    let w = cpu_dequantize(GgmlType::Q8_0, &sub_bytes, picks.len(), cols);
    let sub_y: Vec<f32> = (0..n)
        .flat_map(|t| picks.iter().map(move |&r| (t, r)))
        .map(|(t, r)| y[t * rows + r])
        .collect();
    let err = worst_error(&w, picks.len(), cols, &x, n, &sub_y);
    assert!(err <= TOLERANCE, "head: error {err:.3e}");
    eprintln!(
        "head 151936×896 Q8_0 in {} byte bindings: worst error {err:.2e}",
        gpu.max_binding_bytes()
    );
}

#[test]
fn bad_shapes_are_errors() {
    let Some(gpu) = gpu() else { return };
    let bytes = vec![0u8; 34 * 3];
    let r = pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, 2, 32, &[0.0; 32], 1));
    assert!(matches!(r, Err(GpuError::BadInput { .. })), "{r:?}");
    let r = pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, 3, 32, &[0.0; 31], 1));
    assert!(matches!(r, Err(GpuError::BadInput { .. })), "{r:?}");
    let r = pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, 3, 33, &[0.0; 33], 1));
    assert!(matches!(r, Err(GpuError::BadInput { .. })), "{r:?}");
}

/// No backend: a sentence saying so, never a panic (the engine then runs without `gpu`).
#[test]
fn no_adapter_is_an_error() {
    let r = pollster::block_on(GpuMatmul::with_options(GpuOptions {
        backends: Some(parallax_gpu::wgpu::Backends::empty()),
        ..Default::default()
    }));
    match r {
        Err(e @ GpuError::NoAdapter { .. }) => {
            assert!(e.is_unavailable() && e.to_string().contains("no GPU"))
        }
        Err(e) => panic!("expected NoAdapter, got {e}"),
        Ok(_) => panic!("expected NoAdapter, got an adapter"),
    }
}

/// A lost device: every later call is a `DeviceLost` sentence, never a panic.
#[test]
fn lost_device_is_an_error() {
    let Some(gpu) = open(GpuOptions::default()) else { return };
    let bytes = vec![0u8; 34];
    pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, 1, 32, &[1.0; 32], 1)).unwrap();
    gpu.destroy();
    match pollster::block_on(gpu.matmul(GgmlType::Q8_0, &bytes, 1, 32, &[1.0; 32], 1)) {
        Err(e @ GpuError::DeviceLost { .. }) => assert!(e.is_unavailable(), "{e}"),
        other => panic!("expected DeviceLost, got {other:?}"),
    }
}
