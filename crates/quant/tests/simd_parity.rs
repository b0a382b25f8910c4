//! Parity of every fast fused-dot kernel with the scalar reference (`parallax_quant::generic`).
//!
//! One harness, [`check_pair`], runs each (weight, activation) kernel on three kinds of input:
//!
//! * **exact** — every float scale is a power of two and the integers stay small enough that
//!   each float operation is exact: a difference can only come from the integer part.
//! * **random** — random bytes, random f16/f32 scales of both signs and wide range.
//! * **extreme** — all nibbles max / zero / sign patterns, activations all −128 / 127, scales
//!   0, negative, and the f16 maximum.
//!
//! On every kind the results must be **bit-identical**: all implementations share
//! `parallax_quant::order`'s float order, which is what makes a report computed in a browser
//! (simd128) byte-identical to one computed natively (AVX2). Float dots (F32/F16/BF16) likewise.
//!
//! Fast implementations checked: AVX2 (when the CPU has it), simd128 (when built for wasm with
//! `+simd128`), and the `dot` dispatchers (whatever they pick). Failures name the kernel, the
//! implementation, the input kind and the seed.

use half::{bf16, f16};
use parallax_quant::{dot, generic, BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType};
use parallax_testkit::SplitMix64;

#[cfg(target_arch = "x86_64")]
use parallax_quant::avx2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use parallax_quant::simd128;

// ---------------------------------------------------------------------------------------------
// Random numbers (SplitMix64: tiny, seedable, good enough for test data)
// ---------------------------------------------------------------------------------------------

/// The kit's SplitMix64 with the seed mixed first, so neighbouring seeds start far apart.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn sign(&mut self) -> f32 {
        if self.next() & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    }
    /// A float spread over many binades, either sign, sometimes zero.
    fn wide(&mut self, max_exp: i32) -> f32 {
        if self.below(16) == 0 {
            return 0.0;
        }
        let m = 1.0 + (self.below(1 << 20) as f32) / (1u32 << 20) as f32;
        self.sign() * m * 2f32.powi(self.range(-14, max_exp as i64) as i32)
    }
}

// ---------------------------------------------------------------------------------------------
// Input kinds
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Power-of-two scales, small integers: both sides must be bit-equal.
    Exact,
    Random,
    /// Index into the extreme patterns.
    Extreme(usize),
}

const WEIGHT_PATTERNS: [Option<u8>; 7] =
    [None, Some(0xFF), Some(0x00), Some(0x80), Some(0x7F), Some(0x55), Some(0xAA)];
const ACT_PATTERNS: [Option<i8>; 5] = [None, Some(-128), Some(127), Some(0), Some(-1)];
const EXTREME_SCALES: [f32; 6] = [0.0, 1.0, -1.0, 65504.0, -0.5, 6.1035156e-5];

fn extreme_count() -> usize {
    WEIGHT_PATTERNS.len() * ACT_PATTERNS.len() * EXTREME_SCALES.len()
}

fn extreme_parts(i: usize) -> (Option<u8>, Option<i8>, f32) {
    let w = WEIGHT_PATTERNS[i % WEIGHT_PATTERNS.len()];
    let a = ACT_PATTERNS[(i / WEIGHT_PATTERNS.len()) % ACT_PATTERNS.len()];
    let s = EXTREME_SCALES[i / (WEIGHT_PATTERNS.len() * ACT_PATTERNS.len())];
    (w, a, s)
}

/// A scale for a weight block's f16 field.
fn weight_scale(rng: &mut Rng, kind: Kind, exact_exp: i32) -> f32 {
    match kind {
        Kind::Exact => rng.sign() * 2f32.powi(exact_exp + rng.range(0, 1) as i32),
        Kind::Random => rng.wide(8),
        Kind::Extreme(i) => extreme_parts(i).2 * if rng.below(4) == 0 { -1.0 } else { 1.0 },
    }
}

/// An activation byte.
fn act_byte(rng: &mut Rng, kind: Kind, exact_max: i64) -> i8 {
    match kind {
        Kind::Exact => rng.range(-exact_max, exact_max - 1) as i8,
        Kind::Random => rng.next() as i8,
        Kind::Extreme(i) => match extreme_parts(i).1 {
            Some(v) => v,
            None => rng.next() as i8,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Weight formats: block geometry and where the float fields are
// ---------------------------------------------------------------------------------------------

struct Format {
    ty: GgmlType,
    bytes: usize,
    values: usize,
    /// Byte offsets of the f16 fields; the first is the main scale, any second is a min.
    floats: &'static [usize],
}

const Q4_0: Format = Format { ty: GgmlType::Q4_0, bytes: 18, values: 32, floats: &[0] };
const Q4_1: Format = Format { ty: GgmlType::Q4_1, bytes: 20, values: 32, floats: &[0, 2] };
const Q5_0: Format = Format { ty: GgmlType::Q5_0, bytes: 22, values: 32, floats: &[0] };
const Q5_1: Format = Format { ty: GgmlType::Q5_1, bytes: 24, values: 32, floats: &[0, 2] };
const Q8_0: Format = Format { ty: GgmlType::Q8_0, bytes: 34, values: 32, floats: &[0] };
const IQ4_NL: Format = Format { ty: GgmlType::IQ4_NL, bytes: 18, values: 32, floats: &[0] };
const Q2_K: Format = Format { ty: GgmlType::Q2_K, bytes: 84, values: 256, floats: &[80, 82] };
const Q3_K: Format = Format { ty: GgmlType::Q3_K, bytes: 110, values: 256, floats: &[108] };
const Q4_K: Format = Format { ty: GgmlType::Q4_K, bytes: 144, values: 256, floats: &[0, 2] };
const Q5_K: Format = Format { ty: GgmlType::Q5_K, bytes: 176, values: 256, floats: &[0, 2] };
const Q6_K: Format = Format { ty: GgmlType::Q6_K, bytes: 210, values: 256, floats: &[208] };
const IQ4_XS: Format = Format { ty: GgmlType::IQ4_XS, bytes: 136, values: 256, floats: &[0] };

fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

fn gen_weights(fmt: &Format, nb: usize, rng: &mut Rng, kind: Kind, exact_exp: i32) -> Vec<u8> {
    let fill = match kind {
        Kind::Extreme(i) => extreme_parts(i).0,
        _ => None,
    };
    let mut w: Vec<u8> = (0..nb * fmt.bytes).map(|_| fill.unwrap_or(rng.next() as u8)).collect();
    for blk in w.chunks_exact_mut(fmt.bytes) {
        for &off in fmt.floats {
            let s = weight_scale(rng, kind, exact_exp);
            put_f16(blk, off, s);
        }
    }
    w
}

// ---------------------------------------------------------------------------------------------
// Activation blocks
// ---------------------------------------------------------------------------------------------

trait Act: Copy + std::fmt::Debug {
    const VALUES: usize;
    fn gen(rng: &mut Rng, kind: Kind, exact_exp: i32) -> Self;
}

fn act_scale(rng: &mut Rng, kind: Kind, exact_exp: i32) -> f32 {
    match kind {
        Kind::Exact => 2f32.powi(exact_exp),
        Kind::Random => rng.wide(4),
        Kind::Extreme(i) => {
            let s = extreme_parts(i).2;
            if rng.below(3) == 0 {
                -s
            } else {
                s
            }
        }
    }
}

impl Act for BlockQ8_0 {
    const VALUES: usize = 32;
    fn gen(rng: &mut Rng, kind: Kind, exact_exp: i32) -> Self {
        let mut b = BlockQ8_0::ZERO;
        b.d = f16::from_f32(act_scale(rng, kind, exact_exp));
        for q in b.qs.iter_mut() {
            *q = act_byte(rng, kind, 128);
        }
        b
    }
}

impl Act for BlockQ8_1 {
    const VALUES: usize = 32;
    fn gen(rng: &mut Rng, kind: Kind, exact_exp: i32) -> Self {
        let mut b = BlockQ8_1::ZERO;
        b.d = f16::from_f32(act_scale(rng, kind, exact_exp));
        for q in b.qs.iter_mut() {
            *q = act_byte(rng, kind, 128);
        }
        // `s` is d·Σqs in real data; the kernels only carry it through, so any value tests
        // that. In exact mode keep it a power of two so the min term is exact.
        let s = match kind {
            Kind::Exact => 2f32.powi(exact_exp + 3),
            _ => b.d.to_f32() * b.qs.iter().map(|&q| q as f32).sum::<f32>(),
        };
        // Clamped so that extreme scales give a large finite `s`, not infinity (0·∞ = NaN).
        b.s = f16::from_f32(s.clamp(-65504.0, 65504.0));
        b
    }
}

impl Act for BlockQ8K {
    const VALUES: usize = 256;
    fn gen(rng: &mut Rng, kind: Kind, exact_exp: i32) -> Self {
        let mut b = BlockQ8K::ZERO;
        b.d = match kind {
            Kind::Random => rng.wide(10),
            _ => act_scale(rng, kind, exact_exp),
        };
        // Small integers in exact mode keep every k-quant partial sum below 2^24 units.
        for q in b.qs.iter_mut() {
            *q = act_byte(rng, kind, 32);
        }
        // bsums are an invariant of the block type (sums of 16 qs); keep them consistent.
        for (s, chunk) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = chunk.iter().map(|&q| q as i16).sum();
        }
        b
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

type Kernel<'a, A> = &'a dyn Fn(&[u8], &[A]) -> f32;

/// Compares `fast` with `scalar` on many inputs of every kind; panics naming the kernel,
/// implementation, kind and seed on the first disagreement.
fn check_pair<A: Act>(name: &str, fmt: &Format, scalar: Kernel<A>, fast: Kernel<A>) {
    assert_eq!(fmt.values, A::VALUES, "{name}: format/activation block sizes differ");
    let max_blocks = if fmt.values == 256 { 8 } else { 40 };
    let mut cases: Vec<(Kind, u64)> = Vec::new();
    for seed in 0..200 {
        cases.push((Kind::Exact, seed));
        cases.push((Kind::Random, seed));
    }
    for i in 0..extreme_count() {
        cases.push((Kind::Extreme(i), i as u64));
    }
    for (kind, seed) in cases {
        let mut rng = Rng::new(seed ^ (fmt.bytes as u64) << 32);
        let nb = 1 + rng.below(max_blocks) as usize;
        // Exact mode: one exponent per case keeps every value on a common grid.
        let exact_exp = rng.range(-6, 2) as i32;
        let w = gen_weights(fmt, nb, &mut rng, kind, exact_exp);
        let a: Vec<A> = (0..nb).map(|_| A::gen(&mut rng, kind, exact_exp)).collect();
        let want = scalar(&w, &a);
        let got = fast(&w, &a);
        assert!(
            want.is_finite(),
            "{name} [{}]: scalar result {want} not finite ({kind:?}, seed {seed})",
            fmt.ty
        );
        assert!(
            got.to_bits() == want.to_bits(),
            "{name} [{}]: fast {got} ({:#010x}) != scalar {want} ({:#010x}) — the twins must \
             agree bit for bit ({kind:?}, seed {seed}, {nb} blocks)",
            fmt.ty,
            got.to_bits(),
            want.to_bits()
        );
    }
}

/// The fast implementations of one kernel available in this build and on this CPU.
macro_rules! fast_impls {
    ($f:ident, $act:ty, [$($target:ident),*]) => {{
        #[allow(unused_mut)]
        let mut v: Vec<(&'static str, Box<dyn Fn(&[u8], &[$act]) -> f32>)> =
            vec![("dispatch", Box::new(dot::$f))];
        $(fast_impls!(@push v, $target, $f);)*
        v
    }};
    (@push $v:ident, avx2, $f:ident) => {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: guarded by runtime detection of the features the kernel needs.
            $v.push(("avx2", Box::new(|w: &[u8], a| unsafe { avx2::$f(w, a) })));
        } else {
            parallax_testkit::skip_unless_required(
                "PARALLAX_REQUIRE_AVX2",
                &format!("this CPU lacks AVX2/FMA/F16C: {} not checked", stringify!($f)),
            );
        }
    };
    (@push $v:ident, simd128, $f:ident) => {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        $v.push(("simd128", Box::new(simd128::$f)));
    };
}

macro_rules! quant_test {
    ($test:ident, $f:ident, $act:ty, $fmt:expr, [$($target:ident),*]) => {
        #[test]
        fn $test() {
            for (target, fast) in fast_impls!($f, $act, [$($target),*]) {
                let name = format!("{}/{}", stringify!($f), target);
                check_pair::<$act>(&name, &$fmt, &generic::$f, &*fast);
            }
        }
    };
}

quant_test!(q4_0_q8_0, vec_dot_q4_0_q8_0, BlockQ8_0, Q4_0, [avx2, simd128]);
quant_test!(q4_1_q8_1, vec_dot_q4_1_q8_1, BlockQ8_1, Q4_1, [avx2, simd128]);
quant_test!(q5_0_q8_0, vec_dot_q5_0_q8_0, BlockQ8_0, Q5_0, [avx2, simd128]);
quant_test!(q5_1_q8_1, vec_dot_q5_1_q8_1, BlockQ8_1, Q5_1, [avx2, simd128]);
quant_test!(q8_0_q8_0, vec_dot_q8_0_q8_0, BlockQ8_0, Q8_0, [avx2, simd128]);
quant_test!(iq4_nl_q8_0, vec_dot_iq4_nl_q8_0, BlockQ8_0, IQ4_NL, [avx2, simd128]);
quant_test!(q2_k_q8_k, vec_dot_q2_k_q8_k, BlockQ8K, Q2_K, [avx2, simd128]);
quant_test!(q3_k_q8_k, vec_dot_q3_k_q8_k, BlockQ8K, Q3_K, [avx2, simd128]);
quant_test!(q4_k_q8_k, vec_dot_q4_k_q8_k, BlockQ8K, Q4_K, [avx2, simd128]);
quant_test!(q5_k_q8_k, vec_dot_q5_k_q8_k, BlockQ8K, Q5_K, [avx2, simd128]);
quant_test!(q6_k_q8_k, vec_dot_q6_k_q8_k, BlockQ8K, Q6_K, [avx2, simd128]);
quant_test!(iq4_xs_q8_k, vec_dot_iq4_xs_q8_k, BlockQ8K, IQ4_XS, [avx2, simd128]);

// ---------------------------------------------------------------------------------------------
// Float dots
// ---------------------------------------------------------------------------------------------

/// Compares float dots bit for bit, on small-integer inputs (every step exact) and on
/// spread-out floats (where only a shared summation order can make them equal). `gen(rng, n, exact)` yields the two operands as f32 plus the
/// kernel-ready form.
fn check_float<T>(
    name: &str,
    gen: impl Fn(&mut Rng, usize, bool) -> (Vec<f32>, Vec<f32>, T),
    scalar: impl Fn(&T) -> f32,
    fast: impl Fn(&T) -> f32,
) {
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        // Every third length a whole number of 32-lane chunks: the twins reduce those with
        // vector adds, the rest with the tail added lane by lane first.
        let n = if seed % 3 == 0 { 32 * rng.below(19) } else { rng.below(600) } as usize;
        let exact = seed % 2 == 0;
        let (x, y, input) = gen(&mut rng, n, exact);
        let want = scalar(&input);
        let got = fast(&input);
        let _ = (&x, &y, exact);
        assert!(
            got.to_bits() == want.to_bits(),
            "{name}: fast {got} != scalar {want} — the twins must agree bit for bit (seed {seed}, n {n})"
        );
    }
}

/// A value for a float dot: small integers (exact products and sums) or spread-out floats.
fn float_val(rng: &mut Rng, exact: bool) -> f32 {
    if exact {
        rng.range(-100, 100) as f32 * 0.25
    } else {
        rng.wide(6)
    }
}

#[test]
fn f32_dot() {
    let gen = |rng: &mut Rng, n: usize, exact: bool| {
        let x: Vec<f32> = (0..n).map(|_| float_val(rng, exact)).collect();
        let y: Vec<f32> = (0..n).map(|_| float_val(rng, exact)).collect();
        (x.clone(), y.clone(), (x, y))
    };
    let scalar = |p: &(Vec<f32>, Vec<f32>)| generic::vec_dot_f32(&p.0, &p.1);
    check_float("vec_dot_f32/dispatch", gen, scalar, |p| dot::vec_dot_f32(&p.0, &p.1));
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: features detected at runtime.
        check_float("vec_dot_f32/avx2", gen, scalar, |p| unsafe { avx2::vec_dot_f32(&p.0, &p.1) });
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    check_float("vec_dot_f32/simd128", gen, scalar, |p| simd128::vec_dot_f32(&p.0, &p.1));
}

#[test]
fn f16_dot() {
    let gen = |rng: &mut Rng, n: usize, exact: bool| {
        let w: Vec<f16> = (0..n).map(|_| f16::from_f32(float_val(rng, exact))).collect();
        let a: Vec<f16> = (0..n).map(|_| f16::from_f32(float_val(rng, exact))).collect();
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x = w.iter().map(|v| v.to_f32()).collect();
        let y = a.iter().map(|v| v.to_f32()).collect();
        (x, y, (bytes, a))
    };
    let scalar = |p: &(Vec<u8>, Vec<f16>)| generic::vec_dot_f16(&p.0, &p.1);
    check_float("vec_dot_f16/dispatch", gen, scalar, |p| dot::vec_dot_f16(&p.0, &p.1));
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: features detected at runtime.
        check_float("vec_dot_f16/avx2", gen, scalar, |p| unsafe { avx2::vec_dot_f16(&p.0, &p.1) });
    }
}

#[test]
fn bf16_dot() {
    let gen = |rng: &mut Rng, n: usize, exact: bool| {
        let w: Vec<bf16> = (0..n).map(|_| bf16::from_f32(float_val(rng, exact))).collect();
        let a: Vec<bf16> = (0..n).map(|_| bf16::from_f32(float_val(rng, exact))).collect();
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x = w.iter().map(|v| v.to_f32()).collect();
        let y = a.iter().map(|v| v.to_f32()).collect();
        (x, y, (bytes, a))
    };
    let scalar = |p: &(Vec<u8>, Vec<bf16>)| generic::vec_dot_bf16(&p.0, &p.1);
    check_float("vec_dot_bf16/dispatch", gen, scalar, |p| dot::vec_dot_bf16(&p.0, &p.1));
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: features detected at runtime.
        check_float("vec_dot_bf16/avx2", gen, scalar, |p| unsafe {
            avx2::vec_dot_bf16(&p.0, &p.1)
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The harness itself must be able to fail
// ---------------------------------------------------------------------------------------------

/// A kernel that is off by one integer in one value must be caught by the exact inputs.
#[test]
#[should_panic(expected = "must agree bit for bit (Exact")]
fn harness_catches_an_off_by_one_integer() {
    let broken = |w: &[u8], a: &[BlockQ8_0]| {
        let mut w = w.to_vec();
        // Perturb the first quant of the first block by one step.
        w[2] = w[2].wrapping_add(1);
        generic::vec_dot_q8_0_q8_0(&w, a)
    };
    check_pair::<BlockQ8_0>("broken_q8_0", &Q8_0, &generic::vec_dot_q8_0_q8_0, &broken);
}

/// A kernel with the right integers but another float order (one running sum, as a naive port
/// would write) must be caught: that is exactly what would make native and browser reports differ.
#[test]
#[should_panic(expected = "must agree bit for bit (Random")]
fn harness_catches_a_reassociated_float_sum() {
    let reordered = |w: &[u8], a: &[BlockQ8_0]| {
        let mut sum = 0.0f32;
        for (blk, act) in w.chunks_exact(34).zip(a) {
            sum += generic::vec_dot_q8_0_q8_0(blk, std::slice::from_ref(act));
        }
        sum
    };
    check_pair::<BlockQ8_0>("reordered_q8_0", &Q8_0, &generic::vec_dot_q8_0_q8_0, &reordered);
}

/// Whether the kernel lists every one of `wanted` in /proc/cpuinfo's flags.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn cpuinfo_lists(wanted: &[&str]) -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo is readable");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|rest| rest.split_once(':')))
        .map(|(_, flags)| flags.split_whitespace().collect::<Vec<_>>())
        .expect("/proc/cpuinfo has a flags line");
    wanted.iter().all(|f| flags.contains(f))
}

/// The AVX2 kernels run exactly where the kernel lists AVX2, FMA and F16C in /proc/cpuinfo, and
/// the AVX-512 ones where it lists AVX-512F (and VNNI and VL for the integer ones) as well: a
/// detection that wrongly said no would leave every twin above unchecked (and the product on
/// slower code), one that wrongly said yes would crash. The source is the kernel's, not the
/// `is_x86_feature_detected!` calls the `available()` functions make.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn simd_twins_are_used_where_proc_cpuinfo_lists_their_features() {
    let avx2 = cpuinfo_lists(&["avx2", "fma", "f16c"]);
    assert_eq!(avx2::available(), avx2, "avx2::available() against /proc/cpuinfo");
    let avx512 = avx2 && cpuinfo_lists(&["avx512f"]);
    assert_eq!(parallax_quant::avx512::available(), avx512, "avx512::available()");
    let vnni = avx512 && cpuinfo_lists(&["avx512_vnni", "avx512vl"]);
    assert_eq!(parallax_quant::avx512::vnni_available(), vnni, "avx512::vnni_available()");
}

/// Without AVX2/FMA/F16C the parity tests above check no AVX2 kernel. That is a failure where
/// the AVX2 half is required (`PARALLAX_REQUIRE_AVX2=1`, or `CI` set), and a notice on stderr
/// otherwise.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_kernels_are_checked_where_required() {
    if !avx2::available() {
        parallax_testkit::skip_unless_required(
            "PARALLAX_REQUIRE_AVX2",
            "this CPU lacks AVX2/FMA/F16C: no AVX2 kernel is checked",
        );
    }
}

/// Mismatched lengths shorten the fast dots to the blocks both sides have (no reads past
/// either slice), as the scalar code's zip does.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_mismatched_lengths_use_common_blocks() {
    if !avx2::available() {
        // `avx2_kernels_are_checked_where_required` fails where this may not be skipped.
        return;
    }
    let mut rng = Rng::new(7);
    let w = gen_weights(&Q4_K, 3, &mut rng, Kind::Random, 0);
    let a: Vec<BlockQ8K> = (0..3).map(|_| BlockQ8K::gen(&mut rng, Kind::Random, 0)).collect();
    // SAFETY: features detected at runtime.
    unsafe {
        let two = avx2::vec_dot_q4_k_q8_k(&w[..2 * 144], &a[..2]);
        assert_eq!(avx2::vec_dot_q4_k_q8_k(&w, &a[..2]), two);
        assert_eq!(avx2::vec_dot_q4_k_q8_k(&w[..2 * 144 + 100], &a), two);
        assert_eq!(avx2::vec_dot_q4_k_q8_k(&[], &a), 0.0);
        let f = [1.0f32; 13];
        assert_eq!(avx2::vec_dot_f32(&f, &f[..9]), 9.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Several tokens per weight row, and dequantization: the fast forms against the scalar ones
// ---------------------------------------------------------------------------------------------

/// Random and extreme input kinds (the multi-token checks need no exact kind: they compare
/// against the single-token kernels, which the harness above already holds to the scalar bits).
fn token_cases() -> Vec<(Kind, u64)> {
    let mut cases: Vec<(Kind, u64)> = (0..60).map(|s| (Kind::Random, s)).collect();
    cases.extend((0..extreme_count()).map(|i| (Kind::Extreme(i), i as u64)));
    cases
}

/// `dot::vec_dot_tokens` (one row) and `TokenActivations::dot_rows` (1 to 5 rows) against
/// `generic`'s single-token kernel, row by row and token by token, for every pairing: 1 to 11
/// tokens (more than one multi-token pass or register block), block counts with and without a
/// tail of fewer than four blocks.
#[test]
fn multi_token_dots_equal_the_scalar_dots_bit_for_bit() {
    use parallax_quant::Activation;
    type One<'a> = &'a dyn Fn(&[u8], &Activation) -> f32;
    let q8_0: One = &|w, a| match a {
        Activation::Q8_0(a) => match w.len() / a.len() {
            18 => generic::vec_dot_q4_0_q8_0(w, a),
            22 => generic::vec_dot_q5_0_q8_0(w, a),
            34 => generic::vec_dot_q8_0_q8_0(w, a),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    let iq4: One = &|w, a| match a {
        Activation::Q8_0(a) => generic::vec_dot_iq4_nl_q8_0(w, a),
        _ => unreachable!(),
    };
    let q8_1: One = &|w, a| match a {
        Activation::Q8_1(a) => match w.len() / a.len() {
            20 => generic::vec_dot_q4_1_q8_1(w, a),
            _ => generic::vec_dot_q5_1_q8_1(w, a),
        },
        _ => unreachable!(),
    };
    let q8_k: One = &|w, a| match a {
        Activation::Q8K(a) => match w.len() / a.len() {
            144 => generic::vec_dot_q4_k_q8_k(w, a),
            176 => generic::vec_dot_q5_k_q8_k(w, a),
            210 => generic::vec_dot_q6_k_q8_k(w, a),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    let formats: [(&Format, One); 9] = [
        (&Q4_0, q8_0),
        (&Q5_0, q8_0),
        (&Q8_0, q8_0),
        (&IQ4_NL, iq4),
        (&Q4_1, q8_1),
        (&Q5_1, q8_1),
        (&Q4_K, q8_k),
        (&Q5_K, q8_k),
        (&Q6_K, q8_k),
    ];
    for (fmt, scalar) in formats {
        for (kind, seed) in token_cases() {
            let mut rng = Rng::new(seed ^ 0x70_6b);
            let nb = 1 + rng.below(if fmt.values == 256 { 3 } else { 11 }) as usize;
            let n_tokens = 1 + rng.below(11) as usize;
            let n_rows = 1 + rng.below(5) as usize;
            let w = gen_weights(fmt, nb * n_rows, &mut rng, kind, -4);
            let acts: Vec<Activation> = (0..n_tokens)
                .map(|_| match fmt.ty.vec_dot_type() {
                    Some(GgmlType::Q8_0) => Activation::Q8_0(
                        (0..nb).map(|_| BlockQ8_0::gen(&mut rng, kind, -3)).collect(),
                    ),
                    Some(GgmlType::Q8_1) => Activation::Q8_1(
                        (0..nb).map(|_| BlockQ8_1::gen(&mut rng, kind, -3)).collect(),
                    ),
                    _ => Activation::Q8K(
                        (0..nb).map(|_| BlockQ8K::gen(&mut rng, kind, -3)).collect(),
                    ),
                })
                .collect();
            // Row by row (`vec_dot_tokens`), and all rows at once (`dot_rows`: AVX-512 VNNI
            // register blocks where the CPU has them).
            let row_bytes = w.len() / n_rows;
            let mut by_row = vec![f32::NAN; n_rows * n_tokens];
            for (row, out) in w.chunks_exact(row_bytes).zip(by_row.chunks_exact_mut(n_tokens)) {
                dot::vec_dot_tokens(fmt.ty, row, &acts, out).unwrap();
            }
            let mut all_rows = vec![f32::NAN; n_rows * n_tokens];
            let tokens = dot::TokenActivations::new(fmt.ty, &acts).unwrap();
            tokens.dot_rows(&w, &mut all_rows).unwrap();
            for (how, out) in [("vec_dot_tokens", &by_row), ("dot_rows", &all_rows)] {
                for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                    for (t, a) in acts.iter().enumerate() {
                        let (got, want) = (out[r * n_tokens + t], scalar(row, a));
                        assert!(
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                            "{} {how}: row {r} of {n_rows}, token {t} of {n_tokens}, {nb} blocks, {kind:?} seed {seed}: {got} vs scalar {want}",
                            fmt.ty
                        );
                    }
                }
            }
        }
    }
    // Mismatched activation types and lengths are errors, not wrong numbers.
    let w = gen_weights(&Q5_0, 2, &mut Rng::new(1), Kind::Random, 0);
    let short = Activation::Q8_0(vec![BlockQ8_0::ZERO]);
    assert!(
        dot::vec_dot_tokens(GgmlType::Q5_0, &w, &[short.clone(), short], &mut [0.0; 2]).is_err()
    );
    let wrong = Activation::Q8_1(vec![BlockQ8_1::ZERO; 2]);
    assert!(dot::vec_dot_tokens(GgmlType::Q5_0, &w, &[wrong], &mut [0.0]).is_err());
    // Rows that are not whole, or no room for every (row, token), are errors too.
    let two = [Activation::Q8_0(vec![BlockQ8_0::ZERO; 2])];
    let tokens = dot::TokenActivations::new(GgmlType::Q5_0, &two).unwrap();
    assert!(tokens.dot_rows(&w[..w.len() - 1], &mut [0.0]).is_err());
    assert!(tokens.dot_rows(&w, &mut [0.0; 2]).is_err());
    assert!(tokens.dot_rows(&w, &mut [0.0]).is_ok());
}

/// Long rows against many tokens: `dot_rows` takes the tokens in chunks that stay in cache and
/// each chunk in register blocks of 8, 4, 2 and 1 tokens; 602 blocks (a tail of two after the
/// last group of four) and 37 tokens cross every one of those boundaries. Short rows, many of
/// them: a pass of tokens goes over a group of rows (12 KiB) before the next pass (wasm's
/// prepared Q8_0 product: 12 rows of 896 columns; the multi-token kernels everywhere, e.g. 4
/// Q4_K rows of 4864 columns), so 45 rows and 13 rows of 19 super-blocks end in partial groups.
/// Bit for bit against the scalar dots.
#[test]
fn dot_rows_over_long_rows_and_many_tokens_equals_the_scalar_dots() {
    for (nb, n_tokens, n_rows) in [(602, 37, 6), (28, 37, 45)] {
        for (fmt, scalar) in [
            (&Q4_0, generic::vec_dot_q4_0_q8_0 as fn(&[u8], &[BlockQ8_0]) -> f32),
            (&Q5_0, generic::vec_dot_q5_0_q8_0),
            (&Q8_0, generic::vec_dot_q8_0_q8_0),
            (&IQ4_NL, generic::vec_dot_iq4_nl_q8_0),
        ] {
            let q8_0 = parallax_quant::Activation::Q8_0;
            dot_rows_equal_the_scalar_dots(fmt, nb, n_tokens, n_rows, q8_0, scalar);
        }
    }
    for (nb, n_tokens, n_rows) in [(19, 37, 13), (3, 20, 40), (1, 1, 3)] {
        for (fmt, scalar) in [
            (&Q4_K, generic::vec_dot_q4_k_q8_k as fn(&[u8], &[BlockQ8K]) -> f32),
            (&Q5_K, generic::vec_dot_q5_k_q8_k),
            (&Q6_K, generic::vec_dot_q6_k_q8_k),
        ] {
            let q8_k = parallax_quant::Activation::Q8K;
            dot_rows_equal_the_scalar_dots(fmt, nb, n_tokens, n_rows, q8_k, scalar);
        }
    }
}

fn dot_rows_equal_the_scalar_dots<A: Act + Clone>(
    fmt: &Format,
    nb: usize,
    n_tokens: usize,
    n_rows: usize,
    activation: fn(Vec<A>) -> parallax_quant::Activation,
    scalar: fn(&[u8], &[A]) -> f32,
) {
    let mut rng = Rng::new(0x10_6e);
    let w = gen_weights(fmt, nb * n_rows, &mut rng, Kind::Random, -4);
    let blocks: Vec<Vec<A>> = (0..n_tokens)
        .map(|_| (0..nb).map(|_| A::gen(&mut rng, Kind::Random, -3)).collect())
        .collect();
    let acts: Vec<parallax_quant::Activation> = blocks.iter().cloned().map(activation).collect();
    let mut out = vec![f32::NAN; n_rows * n_tokens];
    dot::TokenActivations::new(fmt.ty, &acts).unwrap().dot_rows(&w, &mut out).unwrap();
    let row_bytes = w.len() / n_rows;
    for (r, row) in w.chunks_exact(row_bytes).enumerate() {
        for (t, a) in blocks.iter().enumerate() {
            let want = scalar(row, a);
            let got = out[r * n_tokens + t];
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{} row {r} of {n_rows} ({nb} blocks), token {t} of {n_tokens}: {got} vs {want}",
                fmt.ty
            );
        }
    }
}

/// The rows × tokens f32 products: the dispatcher and each twin this CPU has (AVX-512's
/// 3 × 4 register blocks with their leftover rows and tokens, AVX2's token pairs and triple),
/// against the scalar dot of every (row, token).
type RowsTokens = fn(&[f32], usize, &[&[f32]], &mut [f32]);

fn f32_rows_tokens_twins() -> Vec<(&'static str, RowsTokens)> {
    // (Mutable for the x86 twins below; elsewhere only the dispatcher.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut twins: Vec<(&'static str, RowsTokens)> = vec![("dispatch", |w, cols, xs, out| {
        dot::vec_dot_f32_rows_tokens(w, cols, xs, out).unwrap()
    })];
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2, FMA and F16C were detected; the shapes below are whole.
        twins.push(("avx2", |w, cols, xs, out| unsafe {
            avx2::vec_dot_f32_rows_tokens(w, cols, xs, out)
        }));
    }
    #[cfg(target_arch = "x86_64")]
    if parallax_quant::avx512::available() {
        // SAFETY: AVX-512F was detected; the shapes below are whole.
        twins.push(("avx512", |w, cols, xs, out| unsafe {
            parallax_quant::avx512::vec_dot_f32_rows_tokens(w, cols, xs, out)
        }));
    }
    twins
}

#[test]
fn multi_token_f32_dots_equal_the_scalar_dots_bit_for_bit() {
    let twins = f32_rows_tokens_twins();
    for seed in 0..200u64 {
        let mut rng = Rng::new(seed);
        // Every third row length whole 32-lane chunks (the vector reduction), the rest with a tail.
        let cols =
            if seed % 3 == 0 { 32 * (1 + rng.below(9)) } else { 1 + rng.below(300) } as usize;
        let rows = 1 + rng.below(8) as usize;
        let exact = seed % 2 == 0;
        let w: Vec<f32> = (0..rows * cols).map(|_| float_val(&mut rng, exact)).collect();
        // Every fifth call with 40 tokens or more: the simd128 twin packs its rows from there.
        let tokens = if seed % 5 == 0 { 40 + rng.below(24) } else { 1 + rng.below(10) };
        let xs: Vec<Vec<f32>> =
            (0..tokens).map(|_| (0..cols).map(|_| float_val(&mut rng, exact)).collect()).collect();
        let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        for (name, twin) in &twins {
            let mut out = vec![f32::NAN; rows * xs.len()];
            twin(&w, cols, &refs, &mut out);
            for (r, row) in w.chunks_exact(cols).enumerate() {
                for (t, x) in xs.iter().enumerate() {
                    let (got, want) = (out[r * xs.len() + t], generic::vec_dot_f32(row, x));
                    assert_eq!(got.to_bits(), want.to_bits(), "{name}, seed {seed}, row {r} of {rows}, {cols} values, token {t} of {}: {got} vs scalar {want}", xs.len());
                }
            }
        }
    }
    // Shapes that do not fit are errors.
    let w = vec![0f32; 10];
    assert!(dot::vec_dot_f32_rows_tokens(&w, 3, &[&[0.0; 3]], &mut [0.0; 3]).is_err());
    assert!(dot::vec_dot_f32_rows_tokens(&w, 5, &[&[0.0; 4]], &mut [0.0; 2]).is_err());
    assert!(dot::vec_dot_f32_rows_tokens(&w, 5, &[&[0.0; 5]], &mut [0.0; 3]).is_err());
    assert!(dot::vec_dot_f32_rows_tokens(&w, 0, &[], &mut []).is_err());
}

/// A dequantization row under test, by name.
type Twin = Box<dyn Fn(&[u8], &mut [f32])>;
/// A safe dequantization row.
type Row = fn(&[u8], &mut [f32]);

/// The SIMD dequantization rows of `ty` this CPU runs, by name: AVX2 and AVX-512.
#[cfg(target_arch = "x86_64")]
fn simd_dequantizers(ty: GgmlType) -> Vec<(&'static str, Twin)> {
    use parallax_quant::avx512;
    type Unsafe = unsafe fn(&[u8], &mut [f32]);
    let avx2_row: Option<Unsafe> = match ty {
        GgmlType::Q5_0 => Some(avx2::dequantize_row_q5_0),
        GgmlType::Q8_0 => Some(avx2::dequantize_row_q8_0),
        GgmlType::Q4_K => Some(avx2::dequantize_row_q4_k),
        GgmlType::Q6_K => Some(avx2::dequantize_row_q6_k),
        _ => None,
    };
    let avx512_row: Option<Unsafe> = match ty {
        GgmlType::Q4_0 => Some(avx512::dequantize_row_q4_0),
        GgmlType::Q5_0 => Some(avx512::dequantize_row_q5_0),
        GgmlType::IQ4_NL => Some(avx512::dequantize_row_iq4_nl),
        GgmlType::Q8_0 => Some(avx512::dequantize_row_q8_0),
        _ => None,
    };
    // SAFETY (each call): a row is kept only where its features were detected.
    let twin =
        |f: Unsafe| -> Twin { Box::new(move |w: &[u8], out: &mut [f32]| unsafe { f(w, out) }) };
    [
        avx2_row.filter(|_| avx2::available()).map(|f| ("avx2", twin(f))),
        avx512_row.filter(|_| avx512::available()).map(|f| ("avx512", twin(f))),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The SIMD dequantization rows of `ty` this build runs, by name: simd128.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn simd_dequantizers(ty: GgmlType) -> Vec<(&'static str, Twin)> {
    let row: Option<Row> = match ty {
        GgmlType::Q5_0 => Some(simd128::dequantize_row_q5_0),
        GgmlType::Q8_0 => Some(simd128::dequantize_row_q8_0),
        GgmlType::Q4_K => Some(simd128::dequantize_row_q4_k),
        GgmlType::Q6_K => Some(simd128::dequantize_row_q6_k),
        _ => None,
    };
    row.map(|f| ("simd128", Box::new(f) as Twin)).into_iter().collect()
}

/// No SIMD rows in this build.
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn simd_dequantizers(_: GgmlType) -> Vec<(&'static str, Twin)> {
    Vec::new()
}

/// Every dequantization twin against the scalar `dequantize_row_*`, on random blocks with
/// random and extreme scales: the dispatching `dequantize` (whatever this CPU picks), and each
/// SIMD row this CPU runs — AVX2 (Q5_0, Q8_0, Q4_K, Q6_K) and AVX-512 (Q4_0, Q5_0, IQ4_NL, Q8_0)
/// natively, simd128 in wasm — by name, so a CPU that dispatches to one still tests the other.
#[test]
fn dequantization_twins_equal_the_scalar_rows_bit_for_bit() {
    use parallax_quant::dequant;
    let scalar: [(&Format, Row); 6] = [
        (&Q4_0, dequant::dequantize_row_q4_0),
        (&Q5_0, dequant::dequantize_row_q5_0),
        (&IQ4_NL, dequant::dequantize_row_iq4_nl),
        (&Q8_0, dequant::dequantize_row_q8_0),
        (&Q4_K, dequant::dequantize_row_q4_k),
        (&Q6_K, dequant::dequantize_row_q6_k),
    ];
    let mut tested = 0;
    for (fmt, reference) in scalar {
        let ty = fmt.ty;
        let dispatch: (&str, Twin) = (
            "dispatch",
            Box::new(move |w: &[u8], out: &mut [f32]| {
                parallax_quant::dequantize(ty, w, out).unwrap()
            }),
        );
        let twins: Vec<(&str, Twin)> =
            std::iter::once(dispatch).chain(simd_dequantizers(ty)).collect();
        for (kind, seed) in token_cases() {
            let mut rng = Rng::new(seed ^ 0xdec0);
            let nb = 1 + rng.below(5) as usize;
            let w = gen_weights(fmt, nb, &mut rng, kind, -4);
            let mut want = vec![0f32; nb * fmt.values];
            reference(&w, &mut want);
            for (name, twin) in &twins {
                let mut got = vec![f32::NAN; nb * fmt.values];
                twin(&w, &mut got);
                tested += 1;
                for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == r.to_bits() || (g.is_nan() && r.is_nan()),
                        "{ty} {name}: value {i} of {nb} blocks, {kind:?} seed {seed}: {g} vs scalar {r}"
                    );
                }
            }
        }
    }
    assert!(tested > 0);
}
