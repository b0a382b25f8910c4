//! Kernel throughput per weight type, in bytes of weights per second.
//!
//! For each type, one 4096-column × 1024-row matrix of random blocks (scales kept finite) is
//! (a) dequantized row by row to f32, (b) multiplied with a quantized activation row by the
//! scalar reference and (c) by the AVX2 twin where the CPU has it, and (d) read as plain u64s
//! (the memory baseline: what a kernel that only touched its input would reach on these same
//! bytes, in this same run). The matrices (1–17 MB) are read back to back, so on big-cache
//! machines the baseline measures cache, not DRAM, bandwidth; compare within a run.
//!
//! The `prefill` groups time [`TokenActivations::dot_rows`], the rows × tokens product a prompt's
//! matmuls run (whichever kernel the CPU gets: AVX-512 VNNI register blocks, else row by row
//! over every token), in weight-activation products per second.
//!
//! Kept short on purpose (10 samples, ~1 s each): `cargo bench -p parallax-quant --bench kernels`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
use parallax_quant::dot::{Activation, TokenActivations};
use parallax_quant::{dequantize, generic, quantize_activation, GgmlType};
use parallax_testkit::SplitMix64 as Rng;

const COLS: usize = 4096;
const ROWS: usize = 1024;

/// Byte offsets of the f16 scale fields of a block, so random bytes never hold NaN/Inf scales
/// (which would be unrealistic and, as subnormal/NaN floats, could slow the float parts).
fn float_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// Random weights for a whole matrix of `ty`.
fn weights(ty: GgmlType, rng: &mut Rng) -> Vec<u8> {
    let n = ROWS * COLS;
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.signed_unit_f32().to_le_bytes()).collect(),
        GgmlType::F16 => {
            (0..n).flat_map(|_| f16::from_f32(rng.signed_unit_f32()).to_le_bytes()).collect()
        }
        GgmlType::BF16 => {
            (0..n).flat_map(|_| bf16::from_f32(rng.signed_unit_f32()).to_le_bytes()).collect()
        }
        _ => {
            let bytes = ty.bytes_for(n as u64).expect("whole blocks") as usize;
            let mut w: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
            for blk in w.chunks_exact_mut(ty.type_size()) {
                for &off in float_fields(ty) {
                    let s = f16::from_f32(0.01 + 0.01 * rng.signed_unit_f32());
                    blk[off..off + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            w
        }
    }
}

/// A fused row kernel as a plain closure over (row bytes, activation).
type RowDot = Box<dyn Fn(&[u8], &Activation) -> f32>;

/// The scalar and (where available) AVX2 kernels for `ty`.
fn kernels(ty: GgmlType) -> (RowDot, Option<RowDot>) {
    macro_rules! pair {
        ($f:ident, $variant:ident) => {{
            let scalar: RowDot = Box::new(|w, a| match a {
                Activation::$variant(a) => generic::$f(w, a),
                _ => unreachable!("activation built for this type"),
            });
            #[cfg(target_arch = "x86_64")]
            let fast: Option<RowDot> = if parallax_quant::avx2::available() {
                Some(Box::new(|w, a| match a {
                    // SAFETY: runtime-detected features.
                    Activation::$variant(a) => unsafe { parallax_quant::avx2::$f(w, a) },
                    _ => unreachable!("activation built for this type"),
                }))
            } else {
                None
            };
            #[cfg(not(target_arch = "x86_64"))]
            let fast: Option<RowDot> = None;
            (scalar, fast)
        }};
    }
    use GgmlType::*;
    match ty {
        Q4_0 => pair!(vec_dot_q4_0_q8_0, Q8_0),
        Q4_1 => pair!(vec_dot_q4_1_q8_1, Q8_1),
        Q5_0 => pair!(vec_dot_q5_0_q8_0, Q8_0),
        Q5_1 => pair!(vec_dot_q5_1_q8_1, Q8_1),
        Q8_0 => pair!(vec_dot_q8_0_q8_0, Q8_0),
        IQ4_NL => pair!(vec_dot_iq4_nl_q8_0, Q8_0),
        Q2_K => pair!(vec_dot_q2_k_q8_k, Q8K),
        Q3_K => pair!(vec_dot_q3_k_q8_k, Q8K),
        Q4_K => pair!(vec_dot_q4_k_q8_k, Q8K),
        Q5_K => pair!(vec_dot_q5_k_q8_k, Q8K),
        Q6_K => pair!(vec_dot_q6_k_q8_k, Q8K),
        IQ4_XS => pair!(vec_dot_iq4_xs_q8_k, Q8K),
        F16 => pair!(vec_dot_f16, F16),
        BF16 => pair!(vec_dot_bf16, BF16),
        _ => unreachable!("no fused kernel listed for {ty}"),
    }
}

fn bench_type(c: &mut Criterion, ty: GgmlType, rng: &mut Rng) {
    let w = weights(ty, rng);
    let row_bytes = w.len() / ROWS;
    let x: Vec<f32> = (0..COLS).map(|_| rng.signed_unit_f32()).collect();
    let act = quantize_activation(ty, &x).expect("activation type exists");

    let mut g = c.benchmark_group(ty.name());
    g.throughput(Throughput::Bytes(w.len() as u64));

    g.bench_function("mem_u64", |b| {
        b.iter(|| {
            let mut s = 0u64;
            for chunk in black_box(&w).as_chunks::<8>().0 {
                s = s.wrapping_add(u64::from_le_bytes(*chunk));
            }
            s
        })
    });

    let mut out = vec![0.0f32; COLS];
    g.bench_function("dequant", |b| {
        b.iter(|| {
            let mut s = 0.0f32;
            for row in black_box(&w).chunks_exact(row_bytes) {
                dequantize(ty, row, &mut out).expect("whole row");
                s += out[0];
            }
            s
        })
    });

    if ty == GgmlType::F32 {
        // F32 weights: the kernels take f32 slices, so widen once outside the timing.
        let wf: Vec<f32> = w.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect();
        let mut run = |name: &str, f: &dyn Fn(&[f32], &[f32]) -> f32| {
            g.bench_function(BenchmarkId::new("dot", name), |b| {
                b.iter(|| wf.chunks_exact(COLS).map(|r| f(black_box(r), &x)).sum::<f32>())
            });
        };
        run("scalar", &generic::vec_dot_f32);
        #[cfg(target_arch = "x86_64")]
        if parallax_quant::avx2::available() {
            // SAFETY: runtime-detected features.
            run("avx2", &|a, b| unsafe { parallax_quant::avx2::vec_dot_f32(a, b) });
        }
    } else {
        let (scalar, fast) = kernels(ty);
        let mut run = |name: &str, f: &RowDot| {
            g.bench_function(BenchmarkId::new("dot", name), |b| {
                b.iter(|| black_box(&w).chunks_exact(row_bytes).map(|r| f(r, &act)).sum::<f32>())
            });
        };
        run("scalar", &scalar);
        if let Some(fast) = &fast {
            run("avx2", fast);
        }
    }
    g.finish();
}

/// Tokens in the `prefill` groups: several register blocks and a leftover.
const PREFILL_TOKENS: usize = 66;
/// Rows in the `prefill` groups (a fraction of the matrix keeps each run near a second).
const PREFILL_ROWS: usize = 256;

fn bench_prefill(c: &mut Criterion, ty: GgmlType, rng: &mut Rng) {
    let w = weights(ty, rng);
    let row_bytes = w.len() / ROWS;
    let w = &w[..PREFILL_ROWS * row_bytes];
    let acts: Vec<Activation> = (0..PREFILL_TOKENS)
        .map(|_| {
            let x: Vec<f32> = (0..COLS).map(|_| rng.signed_unit_f32()).collect();
            quantize_activation(ty, &x).expect("activation type exists")
        })
        .collect();
    let mut out = vec![0.0f32; PREFILL_ROWS * PREFILL_TOKENS];
    let mut g = c.benchmark_group(format!("prefill/{}", ty.name()));
    g.throughput(Throughput::Elements((PREFILL_ROWS * COLS * PREFILL_TOKENS) as u64));
    g.bench_function("dot_rows", |b| {
        b.iter(|| {
            let tokens = TokenActivations::new(ty, &acts).expect("same lengths");
            tokens.dot_rows(black_box(w), &mut out).expect("whole rows");
            out[0]
        })
    });
    g.finish();
}

fn kernels_bench(c: &mut Criterion) {
    {
        use GgmlType::*;
        let mut rng = Rng(0x9EED);
        for ty in [Q4_0, Q5_0, Q8_0, IQ4_NL, Q4_K, Q6_K] {
            bench_prefill(c, ty, &mut rng);
        }
    }
    use GgmlType::*;
    let mut rng = Rng(0x5EED);
    for ty in
        [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, F16, BF16, F32]
    {
        bench_type(c, ty, &mut rng);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = kernels_bench
}
criterion_main!(benches);
