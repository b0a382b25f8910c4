//! `libm::exp` over a slice, bit for bit: the softmax and KL divergence of every prompt
//! position take the exponential of every logit (152k a position on Qwen2.5) in libm's f64 `exp`
//! — never the platform's, so that a report is the same bytes on every target — and one call at
//! a time that is most of their cost.
//!
//! With AVX2 four values (with simd128 two) go through libm's own algorithm at once (FreeBSD's `e_exp.c`: `k`
//! from `x/ln 2`, `r = x − k·ln2hi − k·ln2lo`, the degree-5 rational approximation, `·2^k`), the
//! same IEEE operations in the same order — no fused multiply-add, as libm's Rust has none — so
//! each lane is rounded exactly as the scalar code rounds it. A group of four holding a value
//! outside the common range (|x| ≤ 2⁻²⁸, |x| ≥ 708.39, not a number) goes to `libm::exp` itself.

/// `values[i] = libm::exp(values[i])` for every value.
pub fn exp_each(values: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if parallax_cpu::avx2() {
        // SAFETY: AVX2 was detected at run time (`parallax_cpu`).
        unsafe { avx2::exp_each(values) };
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::exp_each(values);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    values.iter_mut().for_each(|v| *v = libm::exp(*v));
}

// libm's constants (`exp.rs`, from FreeBSD's e_exp.c), by their bits as it gives them; only the
// vector forms use them (elsewhere `libm::exp` runs as it is).
#[cfg(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")))]
mod libm_constants {
    pub(super) const LN2HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    pub(super) const LN2LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    pub(super) const INVLN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
    pub(super) const P1: f64 = f64::from_bits(0x3fc5_5555_5555_553e);
    pub(super) const P2: f64 = f64::from_bits(0xbf66_c16c_16be_bd93);
    pub(super) const P3: f64 = f64::from_bits(0x3f11_566a_af25_de2c);
    pub(super) const P4: f64 = f64::from_bits(0xbebb_bd41_c5d2_6bf1);
    pub(super) const P5: f64 = f64::from_bits(0x3e66_3769_72be_a4d0);

    /// High words of |x| between which libm takes its common path with the formula for `k`:
    /// above 2⁻²⁸ (below it, `1 + x`), below 708.39 (above it, overflow and underflow care).
    pub(super) const SMALL: i64 = 0x3e30_0000;
    pub(super) const LARGE: i64 = 0x4086_232b;
    /// Up to this high word (|x| ≤ 0.5·ln 2) libm takes `k = 0`.
    pub(super) const HALF_LN2: i64 = 0x3fd6_2e42;
}
#[cfg(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")))]
use libm_constants::*;

/// The browser's twin of the AVX2 code below: two lanes of libm's common path per `f64x2`, the
/// same IEEE operations in the same order (a tab spends seconds of a long prompt's run in
/// these exponentials otherwise).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::*;
    use core::arch::wasm32::*;

    pub(super) fn exp_each(values: &mut [f64]) {
        let mut chunks = values.chunks_exact_mut(2);
        for c in &mut chunks {
            let x = f64x2(c[0], c[1]);
            let hx = v128_and(u64x2_shr(x, 32), i64x2_splat(0x7fff_ffff));
            let common =
                v128_and(i64x2_gt(hx, i64x2_splat(SMALL)), i64x2_gt(i64x2_splat(LARGE), hx));
            if !i64x2_all_true(common) {
                c.iter_mut().for_each(|v| *v = libm::exp(*v));
                continue;
            }
            let y = exp2(x, hx);
            c[0] = f64x2_extract_lane::<0>(y);
            c[1] = f64x2_extract_lane::<1>(y);
        }
        for v in chunks.into_remainder() {
            *v = libm::exp(*v);
        }
    }

    /// Two lanes of libm's common path; `hx` holds each lane's high word of |x|.
    #[inline(always)]
    fn exp2(x: v128, hx: v128) -> v128 {
        // k = (int)(x/ln 2 ± 0.5), the half taking x's sign (truncated, as a C cast); 0 where
        // |x| ≤ 0.5·ln 2.
        let sign = v128_and(x, f64x2_splat(-0.0));
        let half = v128_or(sign, f64x2_splat(0.5));
        let k32 = i32x4_trunc_sat_f64x2_zero(f64x2_add(f64x2_mul(f64x2_splat(INVLN2), x), half));
        let big = i64x2_gt(hx, i64x2_splat(HALF_LN2));
        let k64 = v128_and(i64x2_extend_low_i32x4(k32), big);
        let k = v128_and(f64x2_convert_low_i32x4(k32), big);
        // hi = x − k·ln2hi (exact), lo = k·ln2lo, r = hi − lo (with k = 0: x, +0, x).
        let hi = f64x2_sub(x, f64x2_mul(k, f64x2_splat(LN2HI)));
        let lo = f64x2_mul(k, f64x2_splat(LN2LO));
        let r = f64x2_sub(hi, lo);
        // c = r − rr·(P1 + rr·(P2 + rr·(P3 + rr·(P4 + rr·P5))))
        let rr = f64x2_mul(r, r);
        let mut p = f64x2_mul(rr, f64x2_splat(P5));
        for coefficient in [P4, P3, P2] {
            p = f64x2_mul(rr, f64x2_add(f64x2_splat(coefficient), p));
        }
        let p = f64x2_add(f64x2_splat(P1), p);
        let c = f64x2_sub(r, f64x2_mul(rr, p));
        // y = 1 + (r·c/(2 − c) − lo + hi)
        let q = f64x2_div(f64x2_mul(r, c), f64x2_sub(f64x2_splat(2.0), c));
        let y = f64x2_add(f64x2_splat(1.0), f64x2_add(f64x2_sub(q, lo), hi));
        // scalbn(y, k): one multiply by 2^k for −1022 ≤ k ≤ 1023, the range here; ·1 for k = 0.
        let two_k = i64x2_shl(i64x2_add(k64, i64x2_splat(1023)), 52);
        f64x2_mul(y, two_k)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn exp_each(values: &mut [f64]) {
        let mut chunks = values.chunks_exact_mut(4);
        for c in &mut chunks {
            let x = _mm256_loadu_pd(c.as_ptr());
            let bits = _mm256_castpd_si256(x);
            let hx = _mm256_and_si256(_mm256_srli_epi64(bits, 32), _mm256_set1_epi64x(0x7fff_ffff));
            let common = _mm256_and_si256(
                _mm256_cmpgt_epi64(hx, _mm256_set1_epi64x(SMALL)),
                _mm256_cmpgt_epi64(_mm256_set1_epi64x(LARGE), hx),
            );
            if _mm256_movemask_pd(_mm256_castsi256_pd(common)) != 0b1111 {
                c.iter_mut().for_each(|v| *v = libm::exp(*v));
                continue;
            }
            _mm256_storeu_pd(c.as_mut_ptr(), exp4(x, hx));
        }
        for v in chunks.into_remainder() {
            *v = libm::exp(*v);
        }
    }

    /// Four lanes of libm's common path; `hx` holds each lane's high word of |x|.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn exp4(x: __m256d, hx: __m256i) -> __m256d {
        // k = (int)(x/ln 2 ± 0.5), the half taking x's sign; 0 where |x| ≤ 0.5·ln 2.
        let sign = _mm256_and_pd(x, _mm256_set1_pd(-0.0));
        let half = _mm256_or_pd(sign, _mm256_set1_pd(0.5));
        let k32 =
            _mm256_cvttpd_epi32(_mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(INVLN2), x), half));
        let big = _mm256_cmpgt_epi64(hx, _mm256_set1_epi64x(HALF_LN2));
        let k64 = _mm256_and_si256(_mm256_cvtepi32_epi64(k32), big);
        let k = _mm256_and_pd(_mm256_cvtepi32_pd(k32), _mm256_castsi256_pd(big));
        // hi = x − k·ln2hi (exact), lo = k·ln2lo, r = hi − lo (with k = 0: x, +0, x).
        let hi = _mm256_sub_pd(x, _mm256_mul_pd(k, _mm256_set1_pd(LN2HI)));
        let lo = _mm256_mul_pd(k, _mm256_set1_pd(LN2LO));
        let r = _mm256_sub_pd(hi, lo);
        // c = r − rr·(P1 + rr·(P2 + rr·(P3 + rr·(P4 + rr·P5))))
        let rr = _mm256_mul_pd(r, r);
        let mut p = _mm256_mul_pd(rr, _mm256_set1_pd(P5));
        for coefficient in [P4, P3, P2] {
            p = _mm256_mul_pd(rr, _mm256_add_pd(_mm256_set1_pd(coefficient), p));
        }
        let p = _mm256_add_pd(_mm256_set1_pd(P1), p);
        let c = _mm256_sub_pd(r, _mm256_mul_pd(rr, p));
        // y = 1 + (r·c/(2 − c) − lo + hi)
        let q = _mm256_div_pd(_mm256_mul_pd(r, c), _mm256_sub_pd(_mm256_set1_pd(2.0), c));
        let y = _mm256_add_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_sub_pd(q, lo), hi));
        // scalbn(y, k): one multiply by 2^k for −1022 ≤ k ≤ 1023, the range here; ·1 for k = 0.
        let two_k = _mm256_slli_epi64(_mm256_add_epi64(k64, _mm256_set1_epi64x(1023)), 52);
        _mm256_mul_pd(y, _mm256_castsi256_pd(two_k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held to `libm::exp` bit for bit over every range its code tells apart, their edges, the
    /// special values, and a sweep of random bit patterns.
    #[test]
    fn exp_each_is_libm_exp_bit_for_bit() {
        let mut values: Vec<f64> = Vec::new();
        let edges: [f64; 11] = [
            0.0,
            3.725290298461914e-9,
            0.34657359027997264,
            1.0397207708399179,
            1.5,
            20.0,
            708.3964185322641,
            709.782712893384,
            745.1332191019411,
            746.0,
            1e300,
        ];
        for e in edges {
            for d in -64i64..=64 {
                for s in [1.0, -1.0] {
                    let v = f64::from_bits(e.to_bits().wrapping_add_signed(d)) * s;
                    values.push(v);
                }
            }
        }
        values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, f64::MIN_POSITIVE]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..400_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Uniform over [−800, 800] and over all bit patterns, in turn.
            values.push((state >> 11) as f64 / (1u64 << 53) as f64 * 1600.0 - 800.0);
            values.push(f64::from_bits(state));
        }
        // Each value at every lane position, and groups mixing common and uncommon values.
        for offset in 0..4 {
            let mut got = values[offset..].to_vec();
            exp_each(&mut got);
            for (x, g) in values[offset..].iter().zip(&got) {
                let want = libm::exp(*x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "exp({x:e} = {:#x}): {g:e} against libm's {want:e}",
                    x.to_bits()
                );
            }
        }
    }
}
