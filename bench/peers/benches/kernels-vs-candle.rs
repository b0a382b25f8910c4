//! Parallax's kernels beside candle-core's on the same bytes, in one process.
//!
//! For each pairing (Q4_K·Q8_K, Q6_K·Q8_K, Q5_0·Q8_0, Q8_0·Q8_0, F32·F32): one 4096 × 4096
//! matrix of random f32 quantized by candle's own quantizer, handed to both libraries as the
//! same bytes (candle's blocks are `repr(C)` ggml layouts), times one activation row quantized
//! once, outside the timing. Timed, interleaved round by round, single thread:
//!
//! - `parallax`: `parallax_quant::matvec` (F32: `dot::vec_dot_f32` row by row, as the engine
//!   multiplies f32 rows);
//! - `candle vec_dot`: candle's `k_quants::GgmlType::vec_dot` row by row, its SIMD kernel
//!   (AVX2+FMA natively, simd128 in wasm; scalar where candle has none, e.g. Q5_0);
//! - `candle QMatMul`: `QMatMul::forward` on a 1 × 4096 tensor, what a candle model runs: it
//!   quantizes the row itself and, on x86, may pick repacked tiles (AVX-512 VNNI where the CPU
//!   has it; `MISTRALRS_FORCE_AVX2=1` limits them to AVX2). F32 goes through candle's gemm;
//! - `memory read`: the same weight bytes summed as u64 lanes — what a kernel that only had to
//!   touch its input would reach on this buffer, in this run.
//!
//! Every candle result is checked against parallax's (relative L2 of the difference, printed
//! with its tolerance) so the table never compares different work. Exit status 1 if any check
//! fails. Figures are medians of `PEERS_REPEATS` rounds (default 9); each sample repeats the
//! matvec for ≥ `PEERS_SAMPLE_MS` ms (default 25), timed by this thread's CPU time (so time spent
//! waiting for a shared core does not count; the share this thread got is printed).
//!
//! `PEERS_MIN_MB=128` gives each variant as many copies of the matrix, used in turn, as make
//! 128 MB: the weights then stream from DRAM (as a model's do) instead of staying in the L3.
//! `PEERS_ONLY=Q4_K,F32` limits the pairings. The last stderr line is `finished: status N`
//! (bench/peers/wasi-run.mjs relies on it; see there).
//!
//! Native: `cargo bench --bench kernels-vs-candle` in bench/peers (use `taskset -c 1`).
//! wasm simd128: `cargo bench --target wasm32-wasip1 --bench kernels-vs-candle` (the
//! `.cargo/config.toml` here adds `+simd128` and runs it under node's WASI).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use candle_core::quantized::{GgmlDType, GgmlType as CandleType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use parallax_quant::{Activation, GgmlType, Q8Rounding};
use parallax_testkit::SplitMix64;

const ROWS: usize = 4096;
const COLS: usize = 4096;

/// The test kit's SplitMix64: the data only has to be the same for both libraries and from run
/// to run.
struct Rng(SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Roughly normal (sum of four uniforms), so blocks have realistic spreads and outliers.
    fn normalish(&mut self) -> f32 {
        let u = |r: &mut Rng| (r.next() >> 40) as f32 / (1u64 << 24) as f32;
        (u(self) + u(self) + u(self) + u(self) - 2.0) * 1.7
    }
}

/// The bytes of a slice of candle blocks. Sound: the block types are `repr(C)` with sizes
/// asserted by candle to be their ggml sizes (no padding), and u8 has no alignment.
fn block_bytes<T>(blocks: &[T]) -> &[u8] {
    // SAFETY: see above; the lifetime is tied to `blocks`.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

/// f32 weights seen as f32 again (they were stored as candle's `f32` blocks).
fn as_f32(bytes: &[u8]) -> &[f32] {
    assert!(bytes.as_ptr().cast::<f32>().is_aligned() && bytes.len().is_multiple_of(4));
    // SAFETY: aligned, whole f32s, every bit pattern valid, lifetime tied to `bytes`.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
}

/// Candle blocks holding exactly `bytes` (the activation parallax quantized).
fn blocks_from_bytes<T: CandleType>(bytes: &[u8]) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    assert_eq!(bytes.len() % size, 0, "whole blocks");
    let mut out: Vec<T> = (0..bytes.len() / size).map(|_| T::zeros()).collect();
    // SAFETY: `out` owns exactly bytes.len() bytes of repr(C) blocks made of plain integers and
    // f16/f32 fields, for which every bit pattern is a valid value.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len())
    };
    out
}

/// The activation's raw block bytes (parallax's blocks are `repr(C)` ggml layouts too).
fn activation_bytes(a: &Activation) -> Vec<u8> {
    fn raw<T>(v: &[T]) -> Vec<u8> {
        // SAFETY: repr(C) blocks without padding (BlockQ8_0: 34 bytes, BlockQ8K: 292 bytes).
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
            .to_vec()
    }
    match a {
        Activation::Q8_0(v) => raw(v),
        Activation::Q8K(v) => raw(v),
        Activation::F32(v) => raw(v),
        other => panic!("no candle pairing benchmarked for {:?} activations", other.ty()),
    }
}

/// The memory baseline: every weight byte read once as u64 lanes. Natively compiled for AVX2
/// when the CPU has it, so the baseline is not held back by SSE2-only code generation.
fn memory_read(bytes: &[u8]) -> u64 {
    #[inline(always)]
    fn sum(bytes: &[u8]) -> u64 {
        let mut acc = [0u64; 8];
        let (chunks, _) = bytes.as_chunks::<64>();
        for c in chunks {
            for (a, lane) in acc.iter_mut().zip(c.as_chunks::<8>().0) {
                *a = a.wrapping_add(u64::from_le_bytes(*lane));
            }
        }
        acc.iter().fold(0u64, |s, &a| s.wrapping_add(a))
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn sum_avx2(bytes: &[u8]) -> u64 {
            sum(bytes)
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected at runtime.
            return unsafe { sum_avx2(bytes) };
        }
    }
    sum(bytes)
}

struct Variant<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> f32 + 'a>,
    /// Seconds per call, one entry per round.
    samples: Vec<f64>,
    iters: u32,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Relative L2 norm of `got − want`.
fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut d, mut n) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        d += (g as f64 - w as f64).powi(2);
        n += (w as f64).powi(2);
    }
    (d / n.max(f64::MIN_POSITIVE)).sqrt()
}

/// This thread's CPU time in seconds (`CLOCK_THREAD_CPUTIME_ID`; under node's WASI the same
/// clock through `clock_time_get`), or None where it cannot be read. Timing with it rather
/// than wall time keeps time spent waiting for the core (other load on a shared machine) out
/// of the figures; what such load still costs (evicted caches) is not removed.
fn thread_cpu_time() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            tv_sec: i64,
            tv_nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid out-pointer to a C timespec (64-bit Linux layout).
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
    {
        #[link(wasm_import_module = "wasi_snapshot_preview1")]
        extern "C" {
            fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
        }
        const THREAD_CPUTIME_ID: u32 = 3;
        let mut t = 0u64;
        // SAFETY: a valid out-pointer; the import is part of WASI preview 1.
        let errno = unsafe { clock_time_get(THREAD_CPUTIME_ID, 1, &mut t) };
        (errno == 0).then_some(t as f64 * 1e-9)
    }
    #[cfg(not(any(target_os = "linux", all(target_arch = "wasm32", target_os = "wasi"))))]
    {
        None
    }
}

/// Times the variants in interleaved rounds (the starting variant rotates each round), by this
/// thread's CPU time where it can be read, else by wall time. Returns which clock was used.
/// `warm_calls`: untimed calls of each variant first (one per weight copy, so candle repacks
/// every copy before the timing).
fn measure(
    variants: &mut [Variant],
    repeats: usize,
    sample: Duration,
    warm_calls: usize,
) -> &'static str {
    let cpu = thread_cpu_time().is_some();
    let now = || {
        if cpu {
            thread_cpu_time().unwrap_or(0.0)
        } else {
            wall_seconds()
        }
    };
    for v in variants.iter_mut() {
        // Warm-up (and candle's one-time repacking), then enough calls per sample to be timed well.
        for _ in 0..warm_calls.max(1) {
            black_box((v.run)());
        }
        let t = now();
        black_box((v.run)());
        let once = (now() - t).max(1e-7);
        v.iters = ((sample.as_secs_f64() / once).ceil() as u32).clamp(1, 100_000);
    }
    let n = variants.len();
    for round in 0..repeats {
        for k in 0..n {
            let v = &mut variants[(round + k) % n];
            let t = now();
            for _ in 0..v.iters {
                black_box((v.run)());
            }
            v.samples.push((now() - t) / v.iters as f64);
        }
    }
    if cpu {
        "this thread's CPU time"
    } else {
        "wall time"
    }
}

fn wall_seconds() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

struct Config {
    repeats: usize,
    sample: Duration,
    /// Use as many copies of each matrix, in turn, as make at least this many MB (0: one copy).
    min_mb: f64,
}

struct Row {
    ty: &'static str,
    mb: f64,
    copies: usize,
    gbs: Vec<(&'static str, f64)>,
    checks: Vec<(&'static str, f64, f64)>,
    clock: &'static str,
}

/// One pairing: weights quantized by candle, activation by parallax (reference rounding, which
/// candle's quantizer shares), both given the same bytes.
fn bench_pairing<W>(ty: GgmlType, dtype: GgmlDType, cfg: &Config, rng: &mut Rng) -> Row
where
    W: CandleType + 'static,
{
    let (repeats, sample) = (cfg.repeats, cfg.sample);
    let matrix_bytes = ty.bytes_for((ROWS * COLS) as u64).expect("whole blocks") as f64;
    let copies = ((cfg.min_mb * 1e6) / matrix_bytes).ceil().max(1.0) as usize;
    let k = COLS;
    let x: Vec<f32> = (0..COLS).map(|_| rng.normalish()).collect();
    let wf: Vec<f32> = (0..ROWS * COLS).map(|_| rng.normalish() * 0.05).collect();

    // Weights: candle's quantizer, row by row (the same bytes either way).
    let blocks_per_row = COLS / W::BLCK_SIZE;
    let mut wq: Vec<W> = (0..ROWS * blocks_per_row).map(|_| W::zeros()).collect();
    for (src, dst) in wf.chunks_exact(COLS).zip(wq.chunks_exact_mut(blocks_per_row)) {
        W::from_float(src, dst);
    }
    drop(wf);
    let wbytes: &[u8] = block_bytes(&wq);
    let row_bytes = wbytes.len() / ROWS;
    assert_eq!(
        Some(row_bytes as u64),
        ty.bytes_for(COLS as u64),
        "candle and parallax agree on the row size of {ty}"
    );
    // `copies` distinct buffers holding the same matrix, used in turn: with enough of them the
    // weights cannot stay in the caches and stream from DRAM, as a model's layers do.
    let copies: Vec<Vec<W>> = (0..copies).map(|_| wq.clone()).collect();
    drop(wq);

    // Activation: quantized once, by parallax; candle gets the same bytes.
    let act = parallax_quant::quantize_activation_with(ty, &x, Q8Rounding::Reference)
        .expect("pairing exists");
    let act_bytes = activation_bytes(&act);
    let cact: Vec<W::VecDotType> = blocks_from_bytes(&act_bytes);
    let mut cand_own: Vec<W::VecDotType> =
        (0..cact.len()).map(|_| <W::VecDotType as CandleType>::zeros()).collect();
    <W::VecDotType as CandleType>::from_float(&x, &mut cand_own);
    let same_activation = block_bytes(&cand_own) == act_bytes.as_slice();

    let qmms: Vec<QMatMul> = copies
        .iter()
        .map(|c| {
            let storage = QStorage::from_data(Cow::Borrowed(block_bytes(c)), &Device::Cpu, dtype)
                .expect("candle storage");
            QMatMul::from_qtensor(QTensor::new(storage, (ROWS, COLS)).expect("candle qtensor"))
                .expect("candle qmatmul")
        })
        .collect();
    let xt = Tensor::from_slice(&x, (1, COLS), &Device::Cpu).expect("candle tensor");
    let n_copies = copies.len();
    // Each variant walks the copies in the same order.
    let next = |i: &mut usize| {
        let c = *i % n_copies;
        *i += 1;
        c
    };

    let mut out_p = vec![0f32; ROWS];
    let mut out_v = vec![0f32; ROWS];
    let mut out_m = vec![0f32; ROWS];
    {
        let (copies, act, cact, qmms, xt) = (&copies, &act, &cact, &qmms, &xt);
        let (op, ov, om) = (&mut out_p, &mut out_v, &mut out_m);
        let (mut ip, mut iv, mut im, mut ir) = (0usize, 0usize, 0usize, 0usize);
        let parallax: Box<dyn FnMut() -> f32 + '_> = if ty == GgmlType::F32 {
            let xs = match act {
                Activation::F32(v) => v,
                _ => unreachable!("F32 weights pair with F32 activations"),
            };
            Box::new(move || {
                let w = as_f32(block_bytes(&copies[next(&mut ip)]));
                for (o, row) in op.iter_mut().zip(w.chunks_exact(COLS)) {
                    *o = parallax_quant::dot::vec_dot_f32(black_box(row), xs);
                }
                op[0]
            })
        } else {
            Box::new(move || {
                let w = block_bytes(&copies[next(&mut ip)]);
                parallax_quant::matvec(ty, black_box(w), COLS, act, op).expect("matvec");
                op[0]
            })
        };
        let candle_vec_dot: Box<dyn FnMut() -> f32 + '_> = Box::new(move || {
            let w = &copies[next(&mut iv)];
            for (o, row) in ov.iter_mut().zip(black_box(w).chunks_exact(blocks_per_row)) {
                *o = W::vec_dot(k, row, cact);
            }
            ov[0]
        });
        let candle_qmatmul: Box<dyn FnMut() -> f32 + '_> = Box::new(move || {
            let y = qmms[next(&mut im)].forward(black_box(xt)).expect("candle forward");
            let y = y.flatten_all().expect("flatten").to_vec1::<f32>().expect("to_vec1");
            om.copy_from_slice(&y);
            om[0]
        });
        let memory: Box<dyn FnMut() -> f32 + '_> =
            Box::new(move || memory_read(black_box(block_bytes(&copies[next(&mut ir)]))) as f32);
        let mut variants = vec![
            Variant { name: "parallax", run: parallax, samples: vec![], iters: 1 },
            Variant { name: "candle vec_dot", run: candle_vec_dot, samples: vec![], iters: 1 },
            Variant { name: "candle QMatMul", run: candle_qmatmul, samples: vec![], iters: 1 },
            Variant { name: "memory read", run: memory, samples: vec![], iters: 1 },
        ];
        let clock = measure(&mut variants, repeats, sample, n_copies);
        let gb = (row_bytes * ROWS) as f64 / 1e9;
        let gbs = variants.iter().map(|v| (v.name, gb / median(&v.samples))).collect();
        drop(variants);
        let tol_same = 1e-5;
        // QMatMul quantizes the activation itself (candle's repacked x86 tiles use Q8_K for every
        // weight type), so it agrees to within quantization noise, not rounding noise.
        let tol_qmm = if ty == GgmlType::F32 { 1e-5 } else { 2e-2 };
        let checks = vec![
            ("candle vec_dot vs parallax", rel_l2(&out_v, &out_p), tol_same),
            ("candle QMatMul vs parallax", rel_l2(&out_m, &out_p), tol_qmm),
        ];
        let name = ty.name();
        if !same_activation {
            println!("  note: {name}: candle's own activation quantizer gives different bytes than parallax's reference one; both kernels were given parallax's");
        }
        Row {
            ty: name,
            mb: row_bytes as f64 * ROWS as f64 / 1e6,
            copies: n_copies,
            gbs,
            checks,
            clock,
        }
    }
}

/// (seconds on a CPU, seconds waiting for one) of this thread so far, from Linux's schedstat
/// (also readable from wasm under node's WASI, which preopens `/`); None elsewhere.
fn sched_times() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .or_else(|_| std::fs::read_to_string("/proc/self/schedstat"))
        .ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()?? / 1e9, it.next()?? / 1e9))
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    // Single thread for both libraries, whatever the caller's environment says: candle's pools
    // read these once, on first use (below).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    let repeats: usize = env_or("PEERS_REPEATS", 9).max(1);
    let sample = Duration::from_millis(env_or("PEERS_SAMPLE_MS", 25));
    let only: Option<String> = std::env::var("PEERS_ONLY").ok();
    let min_mb: f64 = env_or("PEERS_MIN_MB", 0.0);

    // Instant must be a working monotonic clock here (under node's WASI it is clock_time_get).
    let t0 = Instant::now();
    let mut spin = 0u64;
    while t0.elapsed() < Duration::from_millis(2) {
        spin = black_box(spin + 1);
    }
    assert!(
        spin > 0 && t0.elapsed() < Duration::from_secs(1),
        "std::time::Instant does not advance sensibly"
    );

    let target = if cfg!(target_arch = "wasm32") {
        if cfg!(target_feature = "simd128") {
            "wasm32 simd128 (both libraries)".to_string()
        } else {
            "wasm32 WITHOUT simd128 (scalar; build with -C target-feature=+simd128)".to_string()
        }
    } else {
        native_description()
    };
    println!(
        "kernels vs candle-core 0.11.1: {ROWS}×{COLS} matvec, one activation row, single thread"
    );
    println!("target: {target}");
    println!(
        "median of {repeats} interleaved rounds, each sample ≥ {} ms; GB/s of weight bytes",
        sample.as_millis()
    );
    if min_mb > 0.0 {
        println!("weights streamed: each call uses the next of `copies` identical matrices (≥ {min_mb} MB in all), so they come from DRAM, not the caches");
    } else {
        println!("one matrix, reused by every call (9–67 MB: the quantized ones fit a 32 MiB L3; PEERS_MIN_MB=128 streams them from DRAM)");
    }

    let sched0 = sched_times();
    let wall0 = Instant::now();
    let mut rng = Rng(SplitMix64(0x5EED_0000_0007));
    let mut rows = Vec::new();
    let cfg = Config { repeats, sample, min_mb };
    type Pairing = fn(&mut Rng, &Config) -> Row;
    let pairings: [(&str, Pairing); 5] = [
        ("Q4_K", |r, c| bench_pairing::<BlockQ4K>(GgmlType::Q4_K, GgmlDType::Q4K, c, r)),
        ("Q6_K", |r, c| bench_pairing::<BlockQ6K>(GgmlType::Q6_K, GgmlDType::Q6K, c, r)),
        ("Q5_0", |r, c| bench_pairing::<BlockQ5_0>(GgmlType::Q5_0, GgmlDType::Q5_0, c, r)),
        ("Q8_0", |r, c| bench_pairing::<BlockQ8_0>(GgmlType::Q8_0, GgmlDType::Q8_0, c, r)),
        ("F32", |r, c| bench_pairing::<f32>(GgmlType::F32, GgmlDType::F32, c, r)),
    ];
    for (name, f) in pairings {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|t| t.eq_ignore_ascii_case(name))) {
            continue;
        }
        let row = f(&mut rng, &cfg);
        eprintln!("  {name} done");
        rows.push(row);
    }

    println!();
    println!("| type | MB × copies | parallax GB/s | candle vec_dot GB/s | candle QMatMul GB/s | × vec_dot | × QMatMul | memory read GB/s | parallax / memory |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let g = |n: &str| r.gbs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).unwrap_or(f64::NAN);
        let (p, v, m, mem) =
            (g("parallax"), g("candle vec_dot"), g("candle QMatMul"), g("memory read"));
        println!(
            "| {} | {:.1} × {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} % |",
            r.ty,
            r.mb,
            r.copies,
            p,
            v,
            m,
            p / v,
            p / m,
            mem,
            100.0 * p / mem
        );
    }
    println!("(× = parallax throughput / candle's; above 1 means parallax is faster)");
    if let Some(r) = rows.first() {
        println!("timed by {}", r.clock);
    }
    if let (Some((run0, wait0)), Some((run1, wait1))) = (sched0, sched_times()) {
        let wall = wall0.elapsed().as_secs_f64();
        let share = (run1 - run0) / wall;
        println!(
            "this thread ran {:.1} s of {:.1} s wall ({:.0} %), waited {:.1} s for a CPU{}",
            run1 - run0,
            wall,
            100.0 * share,
            wait1 - wait0,
            if share < 0.9 {
                " -- other load shared this core: its caches were shared too, so figures are noisier; rerun on a quiet machine"
            } else {
                ""
            }
        );
    }
    println!();
    let mut failed = false;
    for r in &rows {
        for (what, got, tol) in &r.checks {
            let ok = got <= tol;
            failed |= !ok;
            println!(
                "check {}: {what}: relative L2 {:.2e} (tolerance {:.0e}) {}",
                r.ty,
                got,
                tol,
                if ok { "ok" } else { "FAILED" }
            );
        }
    }
    if failed {
        eprintln!("error: the libraries disagree beyond tolerance; the figures above do not compare the same work");
    }
    // Read by bench/peers/wasi-run.mjs: node 20 can crash on its way out after a program that
    // grew its memory this much has returned; this line says the run itself completed.
    let status = i32::from(failed);
    eprintln!("finished: status {status}");
    std::process::exit(status);
}

#[cfg(target_arch = "x86_64")]
fn native_description() -> String {
    let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    let vnni =
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni");
    let forced = std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1");
    format!(
        "x86_64; parallax AVX2 {}, candle vec_dot AVX2+FMA {}; candle QMatMul repacked tiles: {}",
        if parallax_quant::avx2::available() { "yes" } else { "no" },
        if avx2 { "yes" } else { "no" },
        if forced {
            "AVX2 (MISTRALRS_FORCE_AVX2=1)"
        } else if vnni {
            "AVX-512 VNNI (this CPU has it)"
        } else if avx2 {
            "AVX2"
        } else {
            "none"
        }
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn native_description() -> String {
    std::env::consts::ARCH.to_string()
}
