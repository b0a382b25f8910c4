//! The lane sums of [`Stats`](crate::Stats) and [`Compare`](crate::Compare) — value `i` into
//! lane `i mod LANES`, f64 lanes — written as explicit vectors where that pays: AVX-512 (one
//! register a lane set) and AVX2 (two) for the sums, wasm simd128 (four) for the comparison's.
//! [`Moments`] are a sample's Σx, min and max, [`squared_deviations`] its Σ(x − mean)²,
//! [`CompareSums`] a comparison's Σr², Σp², Σrp, Σ(p − r)² and max |p − r|, and
//! [`count_special`] its NaN, infinity and zero counts (AVX-512 masks; elsewhere the portable
//! loop, which `Stats::of` compiles for AVX2 where it can).
//!
//! The compiler's own vectorization of the lane loops came out as scalar and two-lane pieces
//! with spills: a comparison took ~1 ns a pair natively (0.3 ns with AVX-512, 0.4 with AVX2 as
//! written here; in node 2.0 → 1.0 ns), and a long prompt takes statistics and comparisons of
//! every site twice (all tokens and token by token) and of every matmul once more (the op
//! alone). In wasm the statistics' own loops stay: V8 ran them faster than explicit `f64x2`.
//! Every lane gets the same IEEE operations in the same order as the portable loops — the f32
//! widened exactly, a product rounded and then added (no fused multiply-add), a strict
//! comparison for the extremes — so the sums are the same bits on every target. Only samples
//! whose values are all finite take the vectors; the others keep the portable loops, which
//! pass the non-finite over.

use crate::LANES;

/// Lane sums of one comparison, continued by each [`CompareSums::add`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CompareSums {
    pub rr: [f64; LANES],
    pub pp: [f64; LANES],
    pub rp: [f64; LANES],
    pub dd: [f64; LANES],
    pub max_abs: [f64; LANES],
}

impl CompareSums {
    pub fn zero() -> Self {
        let z = [0f64; LANES];
        CompareSums { rr: z, pp: z, rp: z, dd: z, max_abs: z }
    }

    /// Adds the pairs `(reference[i], path[i])` (equal lengths; finite values), pair `i` into
    /// lane `i mod LANES`, after what the lanes hold.
    pub fn add(&mut self, reference: &[f32], path: &[f32]) {
        debug_assert_eq!(reference.len(), path.len());
        let n = reference.len().min(path.len());
        // The vectors take the whole groups of lanes, the portable loop the rest.
        #[cfg(target_arch = "x86_64")]
        {
            let whole = n / LANES * LANES;
            if parallax_cpu::avx512() {
                // SAFETY: AVX-512F was detected at run time (`parallax_cpu`); `whole` ≤ both lengths.
                unsafe { x86::add_avx512(self, reference, path, whole) };
                return self.add_portable(&reference[whole..n], &path[whole..n]);
            }
            if parallax_cpu::avx2() {
                // SAFETY: AVX2 was detected at run time (`parallax_cpu`); `whole` ≤ both lengths.
                unsafe { x86::add_avx2(self, reference, path, whole) };
                return self.add_portable(&reference[whole..n], &path[whole..n]);
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            let whole = n / LANES * LANES;
            simd128::add(self, &reference[..whole], &path[..whole]);
            return self.add_portable(&reference[whole..n], &path[whole..n]);
        }
        #[allow(unreachable_code)]
        self.add_portable(&reference[..n], &path[..n])
    }

    /// The reference loop: pair `i` into lane `i mod LANES`, one pair at a time.
    pub(crate) fn add_portable(&mut self, reference: &[f32], path: &[f32]) {
        let mut add = |j: usize, r: f32, p: f32| {
            let (r, p) = (r as f64, p as f64);
            self.rr[j] += r * r;
            self.pp[j] += p * p;
            self.rp[j] += r * p;
            let d = p - r;
            self.dd[j] += d * d;
            // A comparison, not `f64::max` (a libm call per value in wasm); no NaN here.
            self.max_abs[j] = if d.abs() > self.max_abs[j] { d.abs() } else { self.max_abs[j] };
        };
        // Chunks of the lanes, the shape the compiler vectorizes where nothing above does.
        let (rc, pc) = (reference.chunks_exact(LANES), path.chunks_exact(LANES));
        let (rt, pt) = (rc.remainder(), pc.remainder());
        for (r, p) in rc.zip(pc) {
            for j in 0..LANES {
                add(j, r[j], p[j]);
            }
        }
        for (j, (&r, &p)) in rt.iter().zip(pt).enumerate() {
            add(j, r, p);
        }
    }
}

/// Σx, min and max of a sample's finite values, lane by lane, continued by each add.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    pub sum: [f64; LANES],
    pub min: [f64; LANES],
    pub max: [f64; LANES],
}

impl Moments {
    pub fn new() -> Self {
        Moments { sum: [0.0; LANES], min: [f64::INFINITY; LANES], max: [f64::NEG_INFINITY; LANES] }
    }

    /// Adds `values` (all finite), value `i` into lane `i mod LANES`, after what the lanes hold.
    pub fn add_finite(&mut self, values: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            let whole = values.len() / LANES * LANES;
            if parallax_cpu::avx512() {
                // SAFETY: AVX-512F was detected at run time (`parallax_cpu`); `whole` ≤ the length.
                unsafe { x86::moments_avx512(self, values, whole) };
                return self.add_portable(&values[whole..], true);
            }
            if parallax_cpu::avx2() {
                // SAFETY: AVX2 was detected at run time (`parallax_cpu`); `whole` ≤ the length.
                unsafe { x86::moments_avx2(self, values, whole) };
                return self.add_portable(&values[whole..], true);
            }
        }
        self.add_portable(values, true)
    }

    /// The reference loop; with `all_finite` false, NaN and ±Inf are passed over.
    pub(crate) fn add_portable(&mut self, values: &[f32], all_finite: bool) {
        // Local copies: lanes the compiler keeps in registers (in wasm, where this loop is the
        // one taken, fields behind a reference came out a quarter slower).
        let Moments { mut sum, mut min, mut max } = *self;
        crate::for_lanes(values, |j, v| {
            let ok = all_finite || v.is_finite();
            let x = v as f64;
            sum[j] = if ok { sum[j] + x } else { sum[j] };
            min[j] = if ok && x < min[j] { x } else { min[j] };
            max[j] = if ok && x > max[j] { x } else { max[j] };
        });
        *self = Moments { sum, min, max };
    }
}

/// Σ(x − mean)² over `values` (all finite), value `i` into lane `i mod LANES`.
pub(crate) fn squared_deviations(values: &[f32], mean: f64) -> [f64; LANES] {
    let mut ss = [0f64; LANES];
    #[cfg(target_arch = "x86_64")]
    {
        let whole = values.len() / LANES * LANES;
        if parallax_cpu::avx512() {
            // SAFETY: AVX-512F was detected at run time (`parallax_cpu`); `whole` ≤ the length.
            unsafe { x86::deviations_avx512(&mut ss, values, mean, whole) };
            squared_deviations_portable(&mut ss, &values[whole..], mean, true);
            return ss;
        }
        if parallax_cpu::avx2() {
            // SAFETY: AVX2 was detected at run time (`parallax_cpu`); `whole` ≤ the length.
            unsafe { x86::deviations_avx2(&mut ss, values, mean, whole) };
            squared_deviations_portable(&mut ss, &values[whole..], mean, true);
            return ss;
        }
    }
    squared_deviations_portable(&mut ss, values, mean, true);
    ss
}

/// The reference loop of [`squared_deviations`]; with `all_finite` false, NaN and ±Inf are
/// passed over.
pub(crate) fn squared_deviations_portable(
    ss: &mut [f64; LANES],
    values: &[f32],
    mean: f64,
    all_finite: bool,
) {
    let mut lanes = *ss;
    crate::for_lanes(values, |j, v| {
        let d = v as f64 - mean;
        lanes[j] = if all_finite || v.is_finite() { lanes[j] + d * d } else { lanes[j] };
    });
    *ss = lanes;
}

/// How many of `values` are not finite, how many of those are NaN, and how many are ±0: counts,
/// so any order gives the same totals. Inlined, so that `Stats::of`'s AVX2 instance counts
/// with AVX2 where AVX-512 is missing.
#[inline(always)]
pub(crate) fn count_special(values: &[f32]) -> (u64, u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        if parallax_cpu::avx512() {
            let whole = values.len() / 16 * 16;
            // SAFETY: AVX-512F was detected at run time (`parallax_cpu`); `whole` ≤ the length.
            let (a, b, c) = unsafe { x86::count_avx512(values, whole) };
            let (d, e, f) = count_special_portable(&values[whole..]);
            return (a + d, b + e, c + f);
        }
    }
    count_special_portable(values)
}

/// The reference loop of [`count_special`], on the bits: |x| ≥ ∞'s bits is not finite, above
/// them NaN, zero bits ±0.
#[inline(always)]
pub(crate) fn count_special_portable(values: &[f32]) -> (u64, u64, u64) {
    let (mut non_finite, mut nan, mut zeros) = ([0u32; LANES], [0u32; LANES], [0u32; LANES]);
    crate::for_lanes(values, |j, v| {
        let bits = v.to_bits() & 0x7fff_ffff;
        non_finite[j] += (bits >= 0x7f80_0000) as u32;
        nan[j] += (bits > 0x7f80_0000) as u32;
        zeros[j] += (bits == 0) as u32;
    });
    let total = |c: [u32; LANES]| c.iter().map(|&v| v as u64).sum::<u64>();
    (total(non_finite), total(nan), total(zeros))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CompareSums, Moments};
    use crate::LANES;
    use std::arch::x86_64::*;

    /// [`super::count_special`] of the first `whole` values (a multiple of 16), sixteen
    /// values a register, counted in i32 lanes through the comparisons' masks.
    ///
    /// # Safety
    /// AVX-512F; `whole` ≤ the length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn count_avx512(v: &[f32], whole: usize) -> (u64, u64, u64) {
        let (abs, inf, zero, one) = (
            _mm512_set1_epi32(0x7fff_ffff),
            _mm512_set1_epi32(0x7f80_0000),
            _mm512_setzero_si512(),
            _mm512_set1_epi32(1),
        );
        let (mut non_finite, mut nan, mut zeros) = (zero, zero, zero);
        let mut i = 0;
        while i < whole {
            let bits = _mm512_and_si512(_mm512_loadu_si512(v.as_ptr().add(i).cast()), abs);
            let (nf, na, z) = (
                _mm512_cmpge_epu32_mask(bits, inf),
                _mm512_cmpgt_epu32_mask(bits, inf),
                _mm512_cmpeq_epi32_mask(bits, zero),
            );
            non_finite = _mm512_mask_add_epi32(non_finite, nf, non_finite, one);
            nan = _mm512_mask_add_epi32(nan, na, nan, one);
            zeros = _mm512_mask_add_epi32(zeros, z, zeros, one);
            i += 16;
        }
        let total = |c: __m512i| {
            let mut lanes = [0u32; 16];
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), c);
            lanes.iter().map(|&n| u64::from(n)).sum::<u64>()
        };
        (total(non_finite), total(nan), total(zeros))
    }

    /// The first `whole` values (a multiple of [`LANES`]), eight lanes a register.
    ///
    /// # Safety
    /// AVX-512F; `whole` ≤ the length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn moments_avx512(m: &mut Moments, v: &[f32], whole: usize) {
        let (mut sum, mut min, mut max) = (
            _mm512_loadu_pd(m.sum.as_ptr()),
            _mm512_loadu_pd(m.min.as_ptr()),
            _mm512_loadu_pd(m.max.as_ptr()),
        );
        let mut i = 0;
        while i < whole {
            let x = _mm512_cvtps_pd(_mm256_loadu_ps(v.as_ptr().add(i)));
            sum = _mm512_add_pd(sum, x);
            // `vminpd x, min` is `x < min ? x : min` (the second operand on equals, ±0 too):
            // the portable loop's choice, one instruction on the lane's dependency chain.
            min = _mm512_min_pd(x, min);
            max = _mm512_max_pd(x, max);
            i += LANES;
        }
        _mm512_storeu_pd(m.sum.as_mut_ptr(), sum);
        _mm512_storeu_pd(m.min.as_mut_ptr(), min);
        _mm512_storeu_pd(m.max.as_mut_ptr(), max);
    }

    /// The first `whole` values (a multiple of [`LANES`]), four lanes a register.
    ///
    /// # Safety
    /// AVX2; `whole` ≤ the length.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn moments_avx2(m: &mut Moments, v: &[f32], whole: usize) {
        let load =
            |a: &[f64; LANES]| [_mm256_loadu_pd(a.as_ptr()), _mm256_loadu_pd(a.as_ptr().add(4))];
        let (mut sum, mut min, mut max) = (load(&m.sum), load(&m.min), load(&m.max));
        let mut i = 0;
        while i < whole {
            for h in 0..2 {
                let x = _mm256_cvtps_pd(_mm_loadu_ps(v.as_ptr().add(i + 4 * h)));
                sum[h] = _mm256_add_pd(sum[h], x);
                // `x < min ? x : min`, as in the AVX-512 kernel.
                min[h] = _mm256_min_pd(x, min[h]);
                max[h] = _mm256_max_pd(x, max[h]);
            }
            i += LANES;
        }
        store2(&mut m.sum, sum);
        store2(&mut m.min, min);
        store2(&mut m.max, max);
    }

    /// Σ(x − mean)² of the first `whole` values (a multiple of [`LANES`]) into `ss`.
    ///
    /// # Safety
    /// AVX-512F; `whole` ≤ the length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn deviations_avx512(
        ss: &mut [f64; LANES],
        v: &[f32],
        mean: f64,
        whole: usize,
    ) {
        let (mut acc, mean) = (_mm512_loadu_pd(ss.as_ptr()), _mm512_set1_pd(mean));
        let mut i = 0;
        while i < whole {
            let d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(v.as_ptr().add(i))), mean);
            acc = _mm512_add_pd(acc, _mm512_mul_pd(d, d));
            i += LANES;
        }
        _mm512_storeu_pd(ss.as_mut_ptr(), acc);
    }

    /// Σ(x − mean)² of the first `whole` values (a multiple of [`LANES`]) into `ss`.
    ///
    /// # Safety
    /// AVX2; `whole` ≤ the length.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn deviations_avx2(
        ss: &mut [f64; LANES],
        v: &[f32],
        mean: f64,
        whole: usize,
    ) {
        let mut acc = [_mm256_loadu_pd(ss.as_ptr()), _mm256_loadu_pd(ss.as_ptr().add(4))];
        let mean = _mm256_set1_pd(mean);
        let mut i = 0;
        while i < whole {
            for (h, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_cvtps_pd(_mm_loadu_ps(v.as_ptr().add(i + 4 * h)));
                let d = _mm256_sub_pd(x, mean);
                *acc = _mm256_add_pd(*acc, _mm256_mul_pd(d, d));
            }
            i += LANES;
        }
        store2(ss, acc);
    }

    #[inline(always)]
    unsafe fn store2(a: &mut [f64; LANES], v: [__m256d; 2]) {
        _mm256_storeu_pd(a.as_mut_ptr(), v[0]);
        _mm256_storeu_pd(a.as_mut_ptr().add(4), v[1]);
    }

    /// The first `whole` pairs (a multiple of [`LANES`]), eight lanes a register.
    ///
    /// # Safety
    /// AVX-512F; `whole` ≤ both lengths.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_avx512(s: &mut CompareSums, r: &[f32], p: &[f32], whole: usize) {
        let load = |a: &[f64; LANES]| _mm512_loadu_pd(a.as_ptr());
        let (mut rr, mut pp, mut rp, mut dd, mut mx) =
            (load(&s.rr), load(&s.pp), load(&s.rp), load(&s.dd), load(&s.max_abs));
        let mut i = 0;
        while i < whole {
            let x = _mm512_cvtps_pd(_mm256_loadu_ps(r.as_ptr().add(i)));
            let y = _mm512_cvtps_pd(_mm256_loadu_ps(p.as_ptr().add(i)));
            rr = _mm512_add_pd(rr, _mm512_mul_pd(x, x));
            pp = _mm512_add_pd(pp, _mm512_mul_pd(y, y));
            rp = _mm512_add_pd(rp, _mm512_mul_pd(x, y));
            let d = _mm512_sub_pd(y, x);
            dd = _mm512_add_pd(dd, _mm512_mul_pd(d, d));
            // `|d| > mx ? |d| : mx` (see `moments_avx512`).
            mx = _mm512_max_pd(_mm512_abs_pd(d), mx);
            i += LANES;
        }
        let store = |a: &mut [f64; LANES], v: __m512d| _mm512_storeu_pd(a.as_mut_ptr(), v);
        store(&mut s.rr, rr);
        store(&mut s.pp, pp);
        store(&mut s.rp, rp);
        store(&mut s.dd, dd);
        store(&mut s.max_abs, mx);
    }

    /// The first `whole` pairs (a multiple of [`LANES`]), four lanes a register.
    ///
    /// # Safety
    /// AVX2; `whole` ≤ both lengths.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn add_avx2(s: &mut CompareSums, r: &[f32], p: &[f32], whole: usize) {
        let load =
            |a: &[f64; LANES]| [_mm256_loadu_pd(a.as_ptr()), _mm256_loadu_pd(a.as_ptr().add(4))];
        let (mut rr, mut pp, mut rp, mut dd, mut mx) =
            (load(&s.rr), load(&s.pp), load(&s.rp), load(&s.dd), load(&s.max_abs));
        let sign = _mm256_set1_pd(-0.0);
        let mut i = 0;
        while i < whole {
            for h in 0..2 {
                let x = _mm256_cvtps_pd(_mm_loadu_ps(r.as_ptr().add(i + 4 * h)));
                let y = _mm256_cvtps_pd(_mm_loadu_ps(p.as_ptr().add(i + 4 * h)));
                rr[h] = _mm256_add_pd(rr[h], _mm256_mul_pd(x, x));
                pp[h] = _mm256_add_pd(pp[h], _mm256_mul_pd(y, y));
                rp[h] = _mm256_add_pd(rp[h], _mm256_mul_pd(x, y));
                let d = _mm256_sub_pd(y, x);
                dd[h] = _mm256_add_pd(dd[h], _mm256_mul_pd(d, d));
                mx[h] = _mm256_max_pd(_mm256_andnot_pd(sign, d), mx[h]);
            }
            i += LANES;
        }
        store2(&mut s.rr, rr);
        store2(&mut s.pp, pp);
        store2(&mut s.rp, rp);
        store2(&mut s.dd, dd);
        store2(&mut s.max_abs, mx);
    }
}

/// The browser's twin: two lanes an `f64x2`, four registers a sum.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::CompareSums;
    use crate::LANES;
    use core::arch::wasm32::*;

    /// Eight f32 from `c` widened to four `f64x2` (lanes 0–1, 2–3, 4–5, 6–7), exactly.
    #[inline(always)]
    fn widen(c: &[f32]) -> [v128; 4] {
        assert!(c.len() >= LANES);
        // SAFETY: eight f32 are in bounds (asserted); `v128_load` takes unaligned addresses.
        let (lo, hi) = unsafe {
            (v128_load(c.as_ptr() as *const v128), v128_load(c.as_ptr().add(4) as *const v128))
        };
        let upper = |v: v128| i64x2_shuffle::<1, 1>(v, v);
        [
            f64x2_promote_low_f32x4(lo),
            f64x2_promote_low_f32x4(upper(lo)),
            f64x2_promote_low_f32x4(hi),
            f64x2_promote_low_f32x4(upper(hi)),
        ]
    }

    fn load(a: &[f64; LANES]) -> [v128; 4] {
        std::array::from_fn(|h| f64x2(a[2 * h], a[2 * h + 1]))
    }

    fn store(a: &mut [f64; LANES], v: [v128; 4]) {
        for (h, v) in v.into_iter().enumerate() {
            a[2 * h] = f64x2_extract_lane::<0>(v);
            a[2 * h + 1] = f64x2_extract_lane::<1>(v);
        }
    }

    /// Every pair (`r.len()` a multiple of [`LANES`], equal to `p.len()`).
    pub(super) fn add(s: &mut CompareSums, r: &[f32], p: &[f32]) {
        let (mut rr, mut pp, mut rp, mut dd, mut mx) =
            (load(&s.rr), load(&s.pp), load(&s.rp), load(&s.dd), load(&s.max_abs));
        for (r, p) in r.chunks_exact(LANES).zip(p.chunks_exact(LANES)) {
            let (r, p) = (widen(r), widen(p));
            for h in 0..4 {
                let (x, y) = (r[h], p[h]);
                rr[h] = f64x2_add(rr[h], f64x2_mul(x, x));
                pp[h] = f64x2_add(pp[h], f64x2_mul(y, y));
                rp[h] = f64x2_add(rp[h], f64x2_mul(x, y));
                let d = f64x2_sub(y, x);
                dd[h] = f64x2_add(dd[h], f64x2_mul(d, d));
                let a = f64x2_abs(d);
                mx[h] = v128_bitselect(a, mx[h], f64x2_gt(a, mx[h]));
            }
        }
        store(&mut s.rr, rr);
        store(&mut s.pp, pp);
        store(&mut s.rp, rp);
        store(&mut s.dd, dd);
        store(&mut s.max_abs, mx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite values of every magnitude and sign, subnormals, zeros of both signs and ties.
    fn sample(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|i| {
                let v = match i % 6 {
                    0 => f32::from_bits(next() as u32 & 0x7f7f_ffff), // any finite magnitude
                    1 => 1e-40 * (i as f32),                          // subnormal
                    2 => (next() % 1000) as f32 / 8.0,                // ties on a coarse grid
                    3 => 0.0,
                    _ => ((next() % 1_000_000) as f32 - 5e5) * 1e-3,
                };
                if next() % 2 == 0 {
                    v
                } else {
                    -v
                }
            })
            .collect()
    }

    fn moment_bits(m: &Moments) -> Vec<u64> {
        [m.sum, m.min, m.max].iter().flatten().map(|v| v.to_bits()).collect()
    }

    /// Σx, min, max and Σ(x − mean)² as vectors against the portable loops, bit for bit, and
    /// the AVX2 kernels on a CPU where the AVX-512 ones would be taken.
    #[test]
    fn vector_moments_are_the_portable_moments() {
        // Besides the mixed sample, zeros of both signs only: which zero an extreme keeps is
        // the strictness of its comparison.
        let zeros = |n: usize| -> Vec<f32> {
            (0..n).map(|i| if (i / LANES) % 2 == 1 { -0.0 } else { 0.0 }).collect()
        };
        let samples = [0usize, 1, 7, 8, 9, 16, 17, 1000, 4867]
            .into_iter()
            .flat_map(|n| [sample(n, 0x2545_f491_4f6c_dd1d ^ n as u64), zeros(n)]);
        for v in samples {
            let n = v.len();
            let mut want = Moments::new();
            want.add_portable(&v, true);
            let mut got = Moments::new();
            got.add_finite(&v);
            assert_eq!(moment_bits(&got), moment_bits(&want), "{n} values");
            let mean =
                if n > 0 { v.iter().map(|&x| x as f64).sum::<f64>() / n as f64 } else { 0.0 };
            let mut ss_want = [0f64; LANES];
            squared_deviations_portable(&mut ss_want, &v, mean, true);
            let ss = squared_deviations(&v, mean);
            assert_eq!(ss.map(f64::to_bits), ss_want.map(f64::to_bits), "{n} values");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let whole = n / LANES * LANES;
                let mut avx2 = Moments::new();
                // SAFETY: AVX2 was detected; `whole` ≤ the length.
                unsafe { x86::moments_avx2(&mut avx2, &v, whole) };
                avx2.add_portable(&v[whole..], true);
                assert_eq!(moment_bits(&avx2), moment_bits(&want), "{n} values, AVX2");
                let mut ss2 = [0f64; LANES];
                // SAFETY: as above.
                unsafe { x86::deviations_avx2(&mut ss2, &v, mean, whole) };
                squared_deviations_portable(&mut ss2, &v[whole..], mean, true);
                assert_eq!(ss2.map(f64::to_bits), ss_want.map(f64::to_bits), "{n} values, AVX2");
            }
        }
    }

    /// The counts of NaN, infinities and zeros as vectors against the portable loop.
    #[test]
    fn vector_counts_are_the_portable_counts() {
        for n in [0usize, 1, 15, 16, 17, 100, 4867] {
            let mut v = sample(n, 0x51_7cc1_b727_220a ^ n as u64);
            for (i, x) in v.iter_mut().enumerate() {
                *x = match i % 11 {
                    1 => f32::NAN,
                    4 => f32::INFINITY,
                    6 => f32::NEG_INFINITY,
                    8 => -f32::NAN,
                    9 => -0.0,
                    _ => *x,
                };
            }
            let want = count_special_portable(&v);
            assert_eq!(count_special(&v), want, "{n} values");
            let nan = v.iter().filter(|x| x.is_nan()).count() as u64;
            let non_finite = v.iter().filter(|x| !x.is_finite()).count() as u64;
            let zeros = v.iter().filter(|x| **x == 0.0).count() as u64;
            assert_eq!(want, (non_finite, nan, zeros), "{n} values");
        }
    }

    fn bits(s: &CompareSums) -> Vec<u64> {
        [s.rr, s.pp, s.rp, s.dd, s.max_abs].iter().flatten().map(|v| v.to_bits()).collect()
    }

    /// The vector sums against the portable loop, bit for bit: lengths around the lane count,
    /// values of every magnitude and sign, subnormals and exact ties, and sums continued over
    /// several calls (each but the last a multiple of the lanes).
    #[test]
    fn vector_sums_are_the_portable_sums() {
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 64, 1000, 4867] {
            let r = sample(n, 0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let p: Vec<f32> = r
                .iter()
                .enumerate()
                .map(|(i, &v)| if i % 3 == 0 { v } else { v * 1.001 - 0.5 })
                .map(|v| if v.is_finite() { v } else { 0.0 })
                .collect();
            let mut want = CompareSums::zero();
            want.add_portable(&r, &p);
            let mut got = CompareSums::zero();
            got.add(&r, &p);
            assert_eq!(bits(&got), bits(&want), "{n} pairs");
            // Continued: the first part a multiple of the lanes.
            let cut = n / 2 / LANES * LANES;
            let mut continued = CompareSums::zero();
            continued.add(&r[..cut], &p[..cut]);
            continued.add(&r[cut..], &p[cut..]);
            assert_eq!(bits(&continued), bits(&want), "{n} pairs, continued at {cut}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // The AVX2 kernel where AVX-512 would be taken.
                let whole = n / LANES * LANES;
                let mut avx2 = CompareSums::zero();
                // SAFETY: AVX2 was detected; `whole` ≤ both lengths.
                unsafe { x86::add_avx2(&mut avx2, &r, &p, whole) };
                avx2.add_portable(&r[whole..], &p[whole..]);
                assert_eq!(bits(&avx2), bits(&want), "{n} pairs, AVX2");
            }
        }
    }
}
