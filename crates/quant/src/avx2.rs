//! AVX2 + FMA (+ F16C) twins of the scalar fused dot products in [`crate::generic`].
//!
//! Every kernel has exactly the signature of its scalar twin, computes the same exact integer
//! sums per block, and combines them in floats in [`crate::order`]'s order, so its result is
//! bit-identical to the scalar reference's (and to the simd128 twin's): `tests/simd_parity.rs`
//! holds them to `==` on exact, random and extreme inputs.
//!
//! Weight bytes come straight from files (alignment 1), so every vector load is unaligned and
//! stays inside the block slice it was cut from; a length mismatch shortens the dot to the
//! blocks both sides have, as in the scalar code.
//!
//! Byte products go through `maddubs` (unsigned × signed → saturating i16 pairs). Each use below
//! states why its pairs cannot saturate: the unsigned side is a weight nibble/crumb (≤ 63), or,
//! for signed weights, `|activation|` (≤ 128, `vpabsb` maps −128 to unsigned 128) against a
//! weight that is never −128 (`sign` then negates it safely). Q8_0 weights may hold −128, so
//! that kernel widens to i16 instead.
//!
//! Callers must check [`available`] before calling any `unsafe fn` here.

use core::arch::x86_64::*;

use crate::blocks::*;
use half::{bf16, f16};

/// Whether the kernels of this module run: the CPU has AVX2 and FMA, plus F16C for the f16
/// scale conversions, and the process's cap allows them ([`parallax_cpu::avx2`]).
pub fn available() -> bool {
    parallax_cpu::avx2()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Four f16 (as bits) → four f32 with one F16C conversion (exact, subnormals included).
///
/// The halves travel through a 64-bit GPR → xmm move, which writes the whole register. A
/// single-value `_mm_cvtsi32_si128` + `vcvtph2ps` was compiled to `vpinsrw` into whatever
/// register held the accumulator, chaining every block's scale conversion to the previous
/// block's FMA (Q4_0 ran at half the speed of Q5_0).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn fp16x4(a: u16, b: u16, c: u16, d: u16) -> __m128 {
    let packed = a as u64 | (b as u64) << 16 | (c as u64) << 32 | (d as u64) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(packed as i64))
}

/// Lane `i` of `v` (const-folded after inlining).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lane(v: __m128, i: usize) -> f32 {
    let mut out = [0.0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), v);
    out[i & 3]
}

/// The 12 bytes of a block's scale field at `off`, as the unpacking helpers of `blocks` take
/// them (the callers' offsets lie inside the block, so the slice always has 12 bytes).
#[inline(always)]
pub(crate) fn arr12_at(x: &[u8], off: usize) -> &[u8; 12] {
    x[off..off + 12].as_chunks::<12>().0.first().unwrap_or(&[0; 12])
}

/// The little-endian u16 at `b[off..off + 2]`.
#[inline(always)]
pub(crate) fn bits_le(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Two f16 → f32 (see [`fp16x4`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn fp16x2(a: u16, b: u16) -> (f32, f32) {
    let v = fp16x4(a, b, a, b);
    (lane(v, 0), lane(v, 1))
}

/// One f16 → f32 (see [`fp16x4`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn fp16(a: u16) -> f32 {
    lane(fp16x4(a, a, a, a), 0)
}

/// 32 bytes at `p`, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn load32(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// 16 bytes at `p`, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn load16(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Pairwise i16 sums of `x · y` for signed `x` that is never −128 and any signed `y`.
/// `|y| ≤ 128` is a valid unsigned byte and `sign(x, y)` cannot overflow, so each i16 pair is
/// at most 2·128·127 = 32512: no saturation.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_i8_pairs(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_abs_epi8(y), _mm256_sign_epi8(x, y))
}

/// Σ x·y in eight i32 lanes, for `x` as in [`mul_i8_pairs`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(mul_i8_pairs(x, y), _mm256_set1_epi16(1))
}

/// Σ u·y in eight i32 lanes, for unsigned `u ≤ 127` (pairs ≤ 2·127·128 < 2^15).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_u8(u: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1))
}

/// 32 bytes, 0xFF where bit `i` of `bits` is set, 0 elsewhere (byte `i` ↔ bit `i`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    let v = _mm256_set1_epi32(bits as i32);
    // Byte i takes byte i/8 of `bits`; every 128-bit lane holds all four bytes of `bits`.
    let spread =
        _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303);
    let b = _mm256_shuffle_epi8(v, spread);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit)
}

/// The 16 bytes of block nibbles as 32 bytes: low nibbles (values 0..16) then high (16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let q = load16(p);
    let x = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    _mm256_and_si256(x, _mm256_set1_epi8(0x0F))
}

/// i16 scale vector for a 32-value group made of two 16-value sub-blocks `2c` and `2c + 1`:
/// `scales[2c]` in the low 8 lanes, `scales[2c + 1]` in the high 8 (matching the i16 pair lanes
/// that `maddubs` produces from 32 bytes). `scales` holds 16 signed bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn scale_pair(scales: __m128i, c: usize) -> __m256i {
    let lo = (2 * c) as i64 * 0x0101_0101_0101_0101;
    let hi = (2 * c + 1) as i64 * 0x0101_0101_0101_0101;
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, _mm_set_epi64x(hi, lo)))
}

// ---------------------------------------------------------------------------------------------
// 32-value formats × Q8_0 / Q8_1
// ---------------------------------------------------------------------------------------------

/// The exact totals of four blocks' 8-lane integer sums, `[t0, t1, t2, t3]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn totals4(p0: __m256i, p1: __m256i, p2: __m256i, p3: __m256i) -> __m128i {
    // Per 128-bit half: [p0 pairs, p1 pairs] → [p0 half-sum, p1, p2, p3]; then add the halves.
    let t = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1))
}

/// The driver shared by the 32-value block formats, in [`crate::order`]'s block order: four
/// blocks at a time, their exact integer totals converted together and added to the four
/// accumulators as `(d_w·d_a)·isum` (+ `m_w·s_a` for the `_1` formats); leftover blocks one by
/// one into the same accumulators.
///
/// `$block(x, y) -> __m256i` gives one block's integer sum in 8 lanes; `$scale(x, y) -> f32`
/// its `d_w·d_a`; `$min(x, y) -> f32`, when given, its `m_w·s_a`.
macro_rules! legacy_dot {
    ($w:expr, $a:expr, $bytes:expr, $block:ident, $scale:ident $(, $min:ident)?) => {{
        let wb = $w.as_chunks::<{ $bytes }>().0;
        let a = $a;
        let n = wb.len().min(a.len());
        let mut acc = _mm_setzero_ps();
        let mut b = 0;
        while b + 4 <= n {
            let (x, y) = (&wb[b..b + 4], &a[b..b + 4]);
            let t = totals4($block(&x[0], &y[0]), $block(&x[1], &y[1]), $block(&x[2], &y[2]), $block(&x[3], &y[3]));
            let d = _mm_setr_ps($scale(&x[0], &y[0]), $scale(&x[1], &y[1]), $scale(&x[2], &y[2]), $scale(&x[3], &y[3]));
            #[allow(unused_mut)]
            let mut term = _mm_mul_ps(d, _mm_cvtepi32_ps(t));
            $(
                let m = _mm_setr_ps($min(&x[0], &y[0]), $min(&x[1], &y[1]), $min(&x[2], &y[2]), $min(&x[3], &y[3]));
                term = _mm_add_ps(term, m);
            )?
            acc = _mm_add_ps(acc, term);
            b += 4;
        }
        let mut lanes = [0f32; 4];
        _mm_storeu_ps(lanes.as_mut_ptr(), acc);
        let mut acc = crate::order::BlockAcc4(lanes);
        while b < n {
            #[allow(unused_mut)]
            let mut term = $scale(&wb[b], &a[b]) * hsum_i32($block(&wb[b], &a[b])) as f32;
            $( term += $min(&wb[b], &a[b]); )?
            acc.add(b, term);
            b += 1;
        }
        acc.total()
    }};
}

/// `d_w·d_a` of a block whose weight scale is the f16 at byte 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn d_x0<const B: usize>(x: &[u8; B], d_a: f16) -> f32 {
    let (dx, dy) = fp16x2(bits_le(x, 0), d_a.to_bits());
    dx * dy
}

/// `m_w·s_a` of a `_1`-format block (weight min: the f16 at byte 2).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn ms_x2<const B: usize>(x: &[u8; B], y: &BlockQ8_1) -> f32 {
    let (m, s) = fp16x2(bits_le(x, 2), y.s.to_bits());
    m * s
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_q8_0<const B: usize>(x: &[u8; B], y: &BlockQ8_0) -> f32 {
    d_x0(x, y.d)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_q8_1<const B: usize>(x: &[u8; B], y: &BlockQ8_1) -> f32 {
    d_x0(x, y.d)
}

/// Q4_0 block: weights `q − 8 ∈ [−8, 7]`, never −128.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_q4_0(x: &[u8; Q4_0_BYTES], y: &BlockQ8_0) -> __m256i {
    dot_decoded_i8(&decode_q4_0(x), y)
}

/// Q4_0 × Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    legacy_dot!(w, a, Q4_0_BYTES, block_q4_0, scale_q8_0)
}

/// Q4_1 block: unsigned nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_q4_1(x: &[u8; Q4_1_BYTES], y: &BlockQ8_1) -> __m256i {
    dot_u8(nibbles_32(x.as_ptr().add(4)), load32(y.qs.as_ptr() as *const u8))
}

/// Q4_1 × Q8_1.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    legacy_dot!(w, a, Q4_1_BYTES, block_q4_1, scale_q8_1, ms_x2)
}

/// Q5_0 block: weights `(nibble | bit·16) − 16 ∈ [−16, 15]`, never −128.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_q5_0(x: &[u8; Q5_0_BYTES], y: &BlockQ8_0) -> __m256i {
    dot_decoded_i8(&decode_q5_0(x), y)
}

/// Q5_0 × Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    legacy_dot!(w, a, Q5_0_BYTES, block_q5_0, scale_q8_0)
}

/// Q5_1 block: weights `nibble | bit·16 ∈ [0, 31]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_q5_1(x: &[u8; Q5_1_BYTES], y: &BlockQ8_1) -> __m256i {
    let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
    let hi = _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10));
    let q = _mm256_or_si256(nibbles_32(x.as_ptr().add(8)), hi);
    dot_u8(q, load32(y.qs.as_ptr() as *const u8))
}

/// Q5_1 × Q8_1.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    legacy_dot!(w, a, Q5_1_BYTES, block_q5_1, scale_q8_1, ms_x2)
}

/// Q8_0 block. File weights may hold −128, which the `maddubs` sign trick cannot take, so
/// this one widens both sides to i16 (`madd` pairs ≤ 2·128² < 2^31).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_q8_0(x: &[u8; Q8_0_BYTES], y: &BlockQ8_0) -> __m256i {
    dot_decoded_i16(&decode_q8_0(x), y)
}

/// Q8_0 × Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    legacy_dot!(w, a, Q8_0_BYTES, block_q8_0, scale_q8_0)
}

/// The IQ4_NL levels as a byte-shuffle table (levels are in [−127, 113], never −128).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4nl_table() -> __m128i {
    load16(KVALUES_IQ4NL.as_ptr() as *const u8)
}

/// IQ4_NL block: nibbles mapped through the level table.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_iq4_nl(x: &[u8; IQ4_NL_BYTES], y: &BlockQ8_0) -> __m256i {
    dot_decoded_i8(&decode_iq4_nl(x), y)
}

/// IQ4_NL × Q8_0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    legacy_dot!(w, a, IQ4_NL_BYTES, block_iq4_nl, scale_q8_0)
}

// ---------------------------------------------------------------------------------------------
// 32-value formats × Q8_0, several activation rows (tokens) at once
// ---------------------------------------------------------------------------------------------

/// Activation rows one multi-token call takes; more are done in groups of this many.
pub const TOKENS_PER_PASS: usize = 8;

/// One weight row against several Q8_0 activation rows: `out[t]` equals the single-row kernel's
/// result for `acts[t]` bit for bit (the same exact integer sums, the same [`crate::order`]
/// block order per token), but each group of four weight blocks is decoded once for all the
/// tokens instead of once per token — for Q5_0 the decode is most of the work.
///
/// `$decode(x) -> W` turns one weight block into its integer form, `$dot(&W, y) -> __m256i`
/// gives that block's integer sum with activation block `y` in 8 lanes.
macro_rules! legacy_dot_tokens {
    ($w:expr, $acts:expr, $out:expr, $bytes:expr, $decode:ident, $dot:ident) => {{
        let wb = $w.as_chunks::<{ $bytes }>().0;
        for (acts, out) in $acts.chunks(TOKENS_PER_PASS).zip($out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut acc = [_mm_setzero_ps(); TOKENS_PER_PASS];
            let mut b = 0;
            while b + 4 <= n {
                let x = &wb[b..b + 4];
                let q = [$decode(&x[0]), $decode(&x[1]), $decode(&x[2]), $decode(&x[3])];
                let dw = fp16x4(
                    bits_le(&x[0], 0),
                    bits_le(&x[1], 0),
                    bits_le(&x[2], 0),
                    bits_le(&x[3], 0),
                );
                for (acc, a) in acc.iter_mut().zip(acts) {
                    let y = &a[b..b + 4];
                    let t = totals4(
                        $dot(&q[0], &y[0]),
                        $dot(&q[1], &y[1]),
                        $dot(&q[2], &y[2]),
                        $dot(&q[3], &y[3]),
                    );
                    let da = fp16x4(
                        y[0].d.to_bits(),
                        y[1].d.to_bits(),
                        y[2].d.to_bits(),
                        y[3].d.to_bits(),
                    );
                    *acc = _mm_add_ps(*acc, _mm_mul_ps(_mm_mul_ps(dw, da), _mm_cvtepi32_ps(t)));
                }
                b += 4;
            }
            for ((acc, a), o) in acc.iter().zip(acts).zip(out.iter_mut()) {
                let mut lanes = [0f32; 4];
                _mm_storeu_ps(lanes.as_mut_ptr(), *acc);
                let mut acc = crate::order::BlockAcc4(lanes);
                for (k, (x, y)) in wb[b..n].iter().zip(&a[b..n]).enumerate() {
                    let (dx, dy) = fp16x2(bits_le(x, 0), y.d.to_bits());
                    acc.add(b + k, (dx * dy) * hsum_i32($dot(&$decode(x), y)) as f32);
                }
                *o = acc.total();
            }
        }
    }};
}

/// A Q4_0 block's weights as i8.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn decode_q4_0(x: &[u8; Q4_0_BYTES]) -> __m256i {
    _mm256_sub_epi8(nibbles_32(x.as_ptr().add(2)), _mm256_set1_epi8(8))
}

/// A Q5_0 block's weights as i8.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn decode_q5_0(x: &[u8; Q5_0_BYTES]) -> __m256i {
    let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
    // Where the 5th bit is clear, setting the high nibble to 0xF makes the i8 `nibble − 16`;
    // where it is set, the byte stays `nibble` = `(nibble + 16) − 16`.
    let hi = _mm256_andnot_si256(bytes_from_bits(qh), _mm256_set1_epi8(0xF0u8 as i8));
    _mm256_or_si256(nibbles_32(x.as_ptr().add(6)), hi)
}

/// An IQ4_NL block's weights (the levels its nibbles index) as i8.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn decode_iq4_nl(x: &[u8; IQ4_NL_BYTES]) -> __m256i {
    _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(iq4nl_table()), nibbles_32(x.as_ptr().add(2)))
}

/// Signed weights that are never −128 (Q4_0, Q5_0, IQ4_NL) × a Q8_0 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_decoded_i8(q: &__m256i, y: &BlockQ8_0) -> __m256i {
    dot_i8(*q, load32(y.qs.as_ptr() as *const u8))
}

/// A Q8_0 weight block widened to i16 halves (it may hold −128: see [`block_q8_0`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_q8_0(x: &[u8; Q8_0_BYTES]) -> [__m256i; 2] {
    let xp = x.as_ptr().add(2);
    [_mm256_cvtepi8_epi16(load16(xp)), _mm256_cvtepi8_epi16(load16(xp.add(16)))]
}

/// Q8_0 weights widened by [`decode_q8_0`] × a Q8_0 block, in i16 (`madd` pairs ≤ 2·128²).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_decoded_i16(q: &[__m256i; 2], y: &BlockQ8_0) -> __m256i {
    let yp = y.qs.as_ptr() as *const u8;
    let y0 = _mm256_cvtepi8_epi16(load16(yp));
    let y1 = _mm256_cvtepi8_epi16(load16(yp.add(16)));
    _mm256_add_epi32(_mm256_madd_epi16(q[0], y0), _mm256_madd_epi16(q[1], y1))
}

/// Q4_0 × several Q8_0 rows (see [`legacy_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
    legacy_dot_tokens!(w, acts, out, Q4_0_BYTES, decode_q4_0, dot_decoded_i8)
}

/// Q5_0 × several Q8_0 rows (see [`legacy_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
    legacy_dot_tokens!(w, acts, out, Q5_0_BYTES, decode_q5_0, dot_decoded_i8)
}

/// Q8_0 × several Q8_0 rows (see [`legacy_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q8_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
    legacy_dot_tokens!(w, acts, out, Q8_0_BYTES, decode_q8_0, dot_decoded_i16)
}

/// IQ4_NL × several Q8_0 rows (see [`legacy_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_iq4_nl_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
    legacy_dot_tokens!(w, acts, out, IQ4_NL_BYTES, decode_iq4_nl, dot_decoded_i8)
}

// ---------------------------------------------------------------------------------------------
// k-quants and IQ4_XS × Q8_K. Each block's integer sum is reduced to one i32 (exact: the
// largest, Q6_K, is below 2^29) and converted once, so the float error per block is one
// rounding of the exact integer.
// ---------------------------------------------------------------------------------------------

/// Q2_K × Q8_K: `d_a·d·Σ sc·q·q8 − d_a·dmin·Σ min·bsum` with 2-bit `q` (unsigned).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q2_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0F);
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(Q2_K_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let sc = load16(xp);
        let scales = _mm_and_si128(sc, m4);
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        let bsums = load32(y.bsums.as_ptr() as *const u8);
        let summs = hsum_i32(_mm256_madd_epi16(mins, bsums));

        let mut sumi = _mm256_setzero_si256();
        for k in 0..2 {
            let q2 = load32(xp.add(16 + 32 * k));
            for j in 0..4 {
                let g = 4 * k + j;
                let q = _mm256_and_si256(_mm256_srl_epi16(q2, _mm_cvtsi32_si128(2 * j as i32)), m3);
                // q ≤ 3: pairs ≤ 2·3·128.
                let p = _mm256_maddubs_epi16(q, load32(yp.add(32 * g)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales, g)));
            }
        }
        let (xd, xmin) = fp16x2(bits_le(x, 80), bits_le(x, 82));
        let dall = y.d * xd;
        let dmin = y.d * xmin;
        sumf += dall * hsum_i32(sumi) as f32 - dmin * summs as f32;
    }
    sumf
}

/// Q3_K × Q8_K: values `(q2bits) − 4·(hmask bit clear) ∈ [−4, 3]`, scales `s − 32`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q3_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(Q3_K_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let s = scales_q3_k(arr12_at(x, 96));
        let scales = _mm_sub_epi8(load16(s.as_ptr() as *const u8), _mm_set1_epi8(32));
        let hm = load32(xp);

        let mut sumi = _mm256_setzero_si256();
        for k in 0..2 {
            let q3 = load32(xp.add(32 + 32 * k));
            for j in 0..4 {
                let g = 4 * k + j;
                let lo =
                    _mm256_and_si256(_mm256_srl_epi16(q3, _mm_cvtsi32_si128(2 * j as i32)), m3);
                let bit = _mm256_set1_epi8((1u8 << g) as i8);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
                let sub4 = _mm256_andnot_si256(set, four);
                let y8 = load32(yp.add(32 * g));
                // Both products have unsigned sides ≤ 4; their difference is Σ (lo − sub4)·q8
                // per pair, within ±1024.
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(lo, y8), _mm256_maddubs_epi16(sub4, y8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales, g)));
            }
        }
        let d = fp16(bits_le(x, 108)) * y.d;
        sumf += d * hsum_i32(sumi) as f32;
    }
    sumf
}

/// The 12-byte Q4_K/Q5_K scale field at `p` as 16 i16: the 8 scales, then the 8 mins (ggml's
/// `get_scale_min_k4` for j = 0..8, done on three little-endian words).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn k4_scales_mins(q: &[u8; 12]) -> __m256i {
    let [s0, s1, m0, m1] = scale_min_k4_words(q);
    _mm256_cvtepu8_epi16(_mm_setr_epi32(s0 as i32, s1 as i32, m0 as i32, m1 as i32))
}

/// A Q4_K/Q5_K block's 8 scales as i16 in both 128-bit halves (for [`broadcast_i16`]), and its
/// min term `Σ_j mins[j]·(bsums[2j] + bsums[2j+1])` in four i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k4_scales_and_mins(x: &[u8], y: &BlockQ8K) -> (__m256i, __m128i) {
    let sm = k4_scales_mins(arr12_at(x, 4));
    // bsums: 16 sums of 16 activations (|·| ≤ 2032), paired per 32-value sub-block.
    let bsums = load32(y.bsums.as_ptr() as *const u8);
    let pair_sums =
        _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    let mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pair_sums);
    (_mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm)), mins)
}

/// i16 lane `k` of each 128-bit half of `v`, broadcast over that half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn broadcast_i16(v: __m256i, k: i16) -> __m256i {
    _mm256_shuffle_epi8(v, _mm256_set1_epi16((2 * k) | ((2 * k + 1) << 8)))
}

/// `(Σ sumi, Σ mins)`: the exact totals of an 8-lane and a 4-lane i32 vector, reduced together.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum2_i32(sumi: __m256i, mins: __m128i) -> (i32, i32) {
    let s4 = _mm_add_epi32(_mm256_castsi256_si128(sumi), _mm256_extracti128_si256(sumi, 1));
    let t = _mm_hadd_epi32(s4, mins);
    let t = _mm_hadd_epi32(t, t);
    (_mm_cvtsi128_si32(t), _mm_extract_epi32(t, 1))
}

/// Q4_K × Q8_K: 8 sub-blocks of 32 with 6-bit scale and min. Scales and mins unpacked with word
/// operations and kept in registers; the min term is `mins · (pairwise sums of bsums)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(Q4_K_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let (scales, mins) = k4_scales_and_mins(x, y);

        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q4 = load32(xp.add(16 + 32 * j));
            // Nibbles ≤ 15: pairs ≤ 2·15·128; times scale ≤ 63 in i32.
            let p0 = _mm256_maddubs_epi16(_mm256_and_si256(q4, m4), load32(yp.add(64 * j)));
            let p1 = _mm256_maddubs_epi16(
                _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                load32(yp.add(64 * j + 32)),
            );
            let s0 = _mm256_madd_epi16(p0, broadcast_i16(scales, 2 * j as i16));
            let s1 = _mm256_madd_epi16(p1, broadcast_i16(scales, 2 * j as i16 + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(s0, s1));
        }
        let (isum, summ) = hsum2_i32(sumi, mins);
        let (xd, xmin) = fp16x2(bits_le(x, 0), bits_le(x, 2));
        let d = xd * y.d;
        let dmin = xmin * y.d;
        sumf += d * isum as f32 - dmin * summ as f32;
    }
    sumf
}

/// Q5_K × Q8_K: Q4_K plus a 5th bit per value from `qh`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let b16 = _mm256_set1_epi8(0x10);
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(Q5_K_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let (scales, mins) = k4_scales_and_mins(x, y);
        let qh = load32(xp.add(16));

        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let q4 = load32(xp.add(48 + 32 * j));
            let bit0 = _mm256_set1_epi8((1u8 << (2 * j)) as i8);
            let bit1 = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
            let h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit0), bit0), b16);
            let h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit1), bit1), b16);
            let q0 = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
            let q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
            // Values ≤ 31: pairs ≤ 2·31·128.
            let p0 = _mm256_maddubs_epi16(q0, load32(yp.add(64 * j)));
            let p1 = _mm256_maddubs_epi16(q1, load32(yp.add(64 * j + 32)));
            let s0 = _mm256_madd_epi16(p0, broadcast_i16(scales, 2 * j as i16));
            let s1 = _mm256_madd_epi16(p1, broadcast_i16(scales, 2 * j as i16 + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(s0, s1));
        }
        let (isum, summ) = hsum2_i32(sumi, mins);
        let (xd, xmin) = fp16x2(bits_le(x, 0), bits_le(x, 2));
        let d = xd * y.d;
        let dmin = xmin * y.d;
        sumf += d * isum as f32 - dmin * summ as f32;
    }
    sumf
}

/// Half `h` of a Q6_K block's unsigned 6-bit values as four 32-byte vectors: values
/// `128h + 32g .. 128h + 32g + 32` in vector `g`. Masking before shifting keeps every bit inside
/// its own byte.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q6k_half(xp: *const u8, h: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0F);
    let ql0 = load32(xp.add(64 * h));
    let ql1 = load32(xp.add(64 * h + 32));
    let qh = load32(xp.add(128 + 32 * h));
    [
        _mm256_or_si256(
            _mm256_and_si256(ql0, m4),
            _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4),
        ),
        _mm256_or_si256(
            _mm256_and_si256(ql1, m4),
            _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
            _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
            _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0xC0u8 as i8)), 2),
        ),
    ]
}

/// Q6_K × Q8_K: values `q − 32` with 6-bit `q`, signed 8-bit scales per 16 values.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(Q6_K_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let scales = load16(xp.add(192));
        // Σ (q − 32)·q8 per sub-block = Σ q·q8 − 32·bsum: the offset for all 16 sub-blocks at
        // once from the activation's block sums (|scale·bsum| ≤ 127·2032, pairs fit in i32).
        let offsets =
            _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), load32(y.bsums.as_ptr() as *const u8));
        let offsets =
            _mm_add_epi32(_mm256_castsi256_si128(offsets), _mm256_extracti128_si256(offsets, 1));

        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            for (g, qg) in q6k_half(xp, h).iter().enumerate() {
                let c = 4 * h + g;
                // q ≤ 63 unsigned: pairs ≤ 2·63·128 = 16128, no saturation.
                let p = _mm256_maddubs_epi16(*qg, load32(yp.add(32 * c)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales, c)));
            }
        }
        let (isum, offset) = hsum2_i32(sumi, offsets);
        let d = fp16(bits_le(x, 208)) * y.d;
        sumf += d * (isum - 32 * offset) as f32;
    }
    sumf
}

/// `acc + madd(p, s)`: one sub-block's i16 pair products times its scale, added to the i32
/// lanes (the step the multi-token k-quant drivers take per sub-block; AVX-512 VNNI fuses it
/// into one `vpdpwssd`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
}

/// The multi-token driver of the Q4_K and Q5_K dots: `out[t]` equals the one-token kernel's
/// result for `acts[t]` bit for bit (the same exact integer sums, each token's super-blocks
/// added in order), with each super-block's values and scales unpacked once for all tokens.
/// `$values(x) -> [__m256i; 8]` gives sub-block `k`'s 32 unsigned values (≤ 31) in vector `k`;
/// `$madd_add(acc, p, s)` is [`madd_add`] or its VNNI twin.
macro_rules! k4_dot_tokens {
    ($w:expr, $acts:expr, $out:expr, $bytes:expr, $values:path, $madd_add:path) => {{
        use $crate::avx2::{
            bits_le, broadcast_i16, fp16x2, hsum2_i32, k4_scales_mins, load32, TOKENS_PER_PASS,
        };
        let wb = $w.as_chunks::<{ $bytes }>().0;
        for (acts, out) in $acts.chunks(TOKENS_PER_PASS).zip($out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut sumf = [0f32; TOKENS_PER_PASS];
            for (b, x) in wb[..n].iter().enumerate() {
                let sm = k4_scales_mins($crate::avx2::arr12_at(x, 4));
                let scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
                let mins16 = _mm256_extracti128_si256(sm, 1);
                let q = $values(x);
                let mut sc = [_mm256_setzero_si256(); 8];
                for (k, s) in sc.iter_mut().enumerate() {
                    *s = broadcast_i16(scales, k as i16);
                }
                let (xd, xmin) = fp16x2(bits_le(x, 0), bits_le(x, 2));
                for (sumf, a) in sumf.iter_mut().zip(acts) {
                    let y = &a[b];
                    let yp = y.qs.as_ptr() as *const u8;
                    let bsums = load32(y.bsums.as_ptr() as *const u8);
                    let pair_sums = _mm_hadd_epi16(
                        _mm256_castsi256_si128(bsums),
                        _mm256_extracti128_si256(bsums, 1),
                    );
                    let mins = _mm_madd_epi16(mins16, pair_sums);
                    let mut sumi = _mm256_setzero_si256();
                    for k in 0..8 {
                        // Values ≤ 31: pairs ≤ 2·31·128; times scale ≤ 63 in i32.
                        let p = _mm256_maddubs_epi16(q[k], load32(yp.add(32 * k)));
                        sumi = $madd_add(sumi, p, sc[k]);
                    }
                    let (isum, summ) = hsum2_i32(sumi, mins);
                    let d = xd * y.d;
                    let dmin = xmin * y.d;
                    *sumf += d * isum as f32 - dmin * summ as f32;
                }
            }
            out.copy_from_slice(&sumf[..out.len()]);
        }
    }};
}
pub(crate) use k4_dot_tokens;

/// The multi-token driver of the Q6_K dot: `out[t]` equals [`vec_dot_q6_k_q8_k`]`(w, acts[t])`
/// bit for bit, with each super-block's 6-bit values and scales unpacked once for all the
/// tokens; `$madd_add` as in [`k4_dot_tokens`].
macro_rules! q6k_dot_tokens {
    ($w:expr, $acts:expr, $out:expr, $madd_add:path) => {{
        use $crate::avx2::{
            bits_le, fp16, hsum2_i32, load16, load32, q6k_half, scale_pair, TOKENS_PER_PASS,
        };
        let wb = $w.as_chunks::<{ $crate::blocks::Q6_K_BYTES }>().0;
        for (acts, out) in $acts.chunks(TOKENS_PER_PASS).zip($out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut sumf = [0f32; TOKENS_PER_PASS];
            for (b, x) in wb[..n].iter().enumerate() {
                let xp = x.as_ptr();
                let scales = load16(xp.add(192));
                let scales16 = _mm256_cvtepi8_epi16(scales);
                let mut q = [_mm256_setzero_si256(); 8];
                let mut sc = [_mm256_setzero_si256(); 8];
                for h in 0..2 {
                    q[4 * h..4 * h + 4].copy_from_slice(&q6k_half(xp, h));
                }
                for (c, s) in sc.iter_mut().enumerate() {
                    *s = scale_pair(scales, c);
                }
                let xd = fp16(bits_le(x, 208));
                for (sumf, a) in sumf.iter_mut().zip(acts) {
                    let y = &a[b];
                    let yp = y.qs.as_ptr() as *const u8;
                    let offsets =
                        _mm256_madd_epi16(scales16, load32(y.bsums.as_ptr() as *const u8));
                    let offsets = _mm_add_epi32(
                        _mm256_castsi256_si128(offsets),
                        _mm256_extracti128_si256(offsets, 1),
                    );
                    let mut sumi = _mm256_setzero_si256();
                    for c in 0..8 {
                        let p = _mm256_maddubs_epi16(q[c], load32(yp.add(32 * c)));
                        sumi = $madd_add(sumi, p, sc[c]);
                    }
                    let (isum, offset) = hsum2_i32(sumi, offsets);
                    let d = xd * y.d;
                    *sumf += d * (isum - 32 * offset) as f32;
                }
            }
            out.copy_from_slice(&sumf[..out.len()]);
        }
    }};
}
pub(crate) use q6k_dot_tokens;

/// A Q4_K block's values, sub-block `k` in vector `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q4k_values(x: &[u8; Q4_K_BYTES]) -> [__m256i; 8] {
    let m4 = _mm256_set1_epi8(0x0F);
    let mut v = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        let q4 = load32(x.as_ptr().add(16 + 32 * j));
        v[2 * j] = _mm256_and_si256(q4, m4);
        v[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
    }
    v
}

/// A Q5_K block's values (nibble | fifth bit · 16), sub-block `k` in vector `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q5k_values(x: &[u8; Q5_K_BYTES]) -> [__m256i; 8] {
    let (m4, b16) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x10));
    let qh = load32(x.as_ptr().add(16));
    let mut v = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        let q4 = load32(x.as_ptr().add(48 + 32 * j));
        let bit0 = _mm256_set1_epi8((1u8 << (2 * j)) as i8);
        let bit1 = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
        let h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit0), bit0), b16);
        let h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit1), bit1), b16);
        v[2 * j] = _mm256_or_si256(_mm256_and_si256(q4, m4), h0);
        v[2 * j + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), m4), h1);
    }
    v
}

/// Q4_K × several Q8_K rows: `out[t]` equals [`vec_dot_q4_k_q8_k`]`(w, acts[t])` bit for bit
/// (see [`k4_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    k4_dot_tokens!(w, acts, out, Q4_K_BYTES, q4k_values, madd_add)
}

/// Q5_K × several Q8_K rows: `out[t]` equals [`vec_dot_q5_k_q8_k`]`(w, acts[t])` bit for bit
/// (see [`k4_dot_tokens`]).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    k4_dot_tokens!(w, acts, out, Q5_K_BYTES, q5k_values, madd_add)
}

/// Q6_K × several Q8_K rows: `out[t]` equals [`vec_dot_q6_k_q8_k`]`(w, acts[t])` bit for bit,
/// with each super-block's 6-bit values and scales unpacked once for all the tokens.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_q6_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    q6k_dot_tokens!(w, acts, out, madd_add)
}

/// IQ4_XS × Q8_K: IQ4_NL levels with 6-bit sub-block scales biased by 32.
///
/// The scalar code applies each sub-block scale in float; here `(ls − 32)·Σ level·q8` is summed
/// in integers per super-block (exact) and scaled once.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let table = _mm256_broadcastsi128_si256(iq4nl_table());
    let m4 = _mm256_set1_epi8(0x0F);
    let mut sumf = 0.0f32;
    for (x, y) in w.chunks_exact(IQ4_XS_BYTES).zip(a) {
        let xp = x.as_ptr();
        let yp = y.qs.as_ptr() as *const u8;
        let h = u16::from_le_bytes([x[2], x[3]]) as i32;
        let ls = |ib: usize| -> i16 {
            let l = ((x[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) as i32 | (((h >> (2 * ib)) & 3) << 4);
            (l - 32) as i16
        };
        let mut sumi = _mm256_setzero_si256();
        for ib in (0..8).step_by(2) {
            // Sub-block `ib` in the low 128-bit lane, `ib + 1` in the high one.
            let q = load32(xp.add(8 + 16 * ib));
            let vlo = _mm256_shuffle_epi8(table, _mm256_and_si256(q, m4));
            let vhi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
            let ylo = _mm256_set_m128i(load16(yp.add(32 * ib + 32)), load16(yp.add(32 * ib)));
            let yhi = _mm256_set_m128i(load16(yp.add(32 * ib + 48)), load16(yp.add(32 * ib + 16)));
            let sc = _mm256_set_m128i(_mm_set1_epi16(ls(ib + 1)), _mm_set1_epi16(ls(ib)));
            // Pairs ≤ 32512 (see `mul_i8_pairs`); times |scale| ≤ 32 in i32.
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(mul_i8_pairs(vlo, ylo), sc));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(mul_i8_pairs(vhi, yhi), sc));
        }
        let d4d8 = fp16(bits_le(x, 0)) * y.d;
        sumf += d4d8 * hsum_i32(sumi) as f32;
    }
    sumf
}

// ---------------------------------------------------------------------------------------------
// Float dots, in [`crate::order`]'s 32 lanes: four 8-wide accumulators hold lanes 0..32, the
// tail goes lane by lane, and the lanes are summed by the shared halving tree.
// ---------------------------------------------------------------------------------------------

/// [`crate::order::reduce32`] of the lanes `acc` holds (lane `8k + j` in `acc[k]`) after `tail`'s
/// values are added to lanes 0, 1, … (the elements past the last whole 32). Without a tail each
/// halving step is one vector add of the same lane pairs in the same operand order — the
/// scalar tree's bits in six instructions instead of 31 dependent adds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn total32(acc: &[__m256; 4], tail: impl ExactSizeIterator<Item = f32>) -> f32 {
    if tail.len() > 0 {
        let mut lanes = store_lanes(acc);
        for (lane, x) in lanes.iter_mut().zip(tail) {
            *lane += x;
        }
        return crate::order::reduce32(&lanes);
    }
    // Width 16: lane j += lane j + 16, for lanes 0..8 and 8..16.
    let lo = _mm256_add_ps(acc[0], acc[2]);
    let hi = _mm256_add_ps(acc[1], acc[3]);
    total16(lo, hi)
}

/// The rest of [`crate::order::reduce32`]'s tree once lanes 0..16 are `lo` (0..8) and `hi`
/// (8..16): widths 8, 4, 2 and 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn total16(lo: __m256, hi: __m256) -> f32 {
    let v8 = _mm256_add_ps(lo, hi);
    let v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps::<1>(v8));
    let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    _mm_cvtss_f32(_mm_add_ss(v2, _mm_shuffle_ps::<1>(v2, v2)))
}

/// The four accumulators as lanes 0..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_lanes(acc: &[__m256; 4]) -> [f32; 32] {
    let mut lanes = [0f32; 32];
    for (k, v) in acc.iter().enumerate() {
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * k), *v);
    }
    lanes
}

/// F32 × F32 (products rounded, then added: no fused multiply-add, as in the other twins).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            *s = _mm256_add_ps(
                *s,
                _mm256_mul_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o))),
            );
        }
        i += 32;
    }
    total32(&acc, (i..n).map(|k| a[k] * b[k]))
}

/// `(vec_dot_f32(w, a), vec_dot_f32(w, b))` bit for bit, for `a` and `b` as long as `w`: each
/// loaded weight vector serves two dots, and eight independent add chains hide the add latency
/// that four leave exposed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_pair(w: &[f32], a: &[f32], b: &[f32]) -> (f32, f32) {
    let n = w.len();
    let (pw, pa, pb) = (w.as_ptr(), a.as_ptr(), b.as_ptr());
    let mut acc_a = [_mm256_setzero_ps(); 4];
    let mut acc_b = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for k in 0..4 {
            let o = i + 8 * k;
            let x = _mm256_loadu_ps(pw.add(o));
            acc_a[k] = _mm256_add_ps(acc_a[k], _mm256_mul_ps(x, _mm256_loadu_ps(pa.add(o))));
            acc_b[k] = _mm256_add_ps(acc_b[k], _mm256_mul_ps(x, _mm256_loadu_ps(pb.add(o))));
        }
        i += 32;
    }
    (total32(&acc_a, (i..n).map(|k| w[k] * a[k])), total32(&acc_b, (i..n).map(|k| w[k] * b[k])))
}

/// [`dot_f32_pair`] for three rows at once (twelve add chains in registers): an odd number of
/// tokens ends in one of these instead of a lone single-token dot.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_triple(w: &[f32], a: &[f32], b: &[f32], c: &[f32]) -> [f32; 3] {
    let n = w.len();
    let (pw, p) = (w.as_ptr(), [a.as_ptr(), b.as_ptr(), c.as_ptr()]);
    let mut acc = [[_mm256_setzero_ps(); 4]; 3];
    let mut i = 0;
    while i + 32 <= n {
        for k in 0..4 {
            let o = i + 8 * k;
            let x = _mm256_loadu_ps(pw.add(o));
            for (acc, p) in acc.iter_mut().zip(p) {
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(x, _mm256_loadu_ps(p.add(o))));
            }
        }
        i += 32;
    }
    let mut out = [0f32; 3];
    for ((acc, x), o) in acc.iter().zip([a, b, c]).zip(out.iter_mut()) {
        *o = total32(acc, (i..n).map(|k| w[k] * x[k]));
    }
    out
}

/// Rows of `cols` f32 weights against several f32 rows: `out[r * xs.len() + t]` equals
/// [`vec_dot_f32`]`(row r, xs[t])` bit for bit. Tokens go in pairs (see [`dot_f32_pair`]; an
/// odd count ends in a triple) and the pair is the outer loop, so its activation rows stay in L1
/// while the weight rows stream past — half the cache traffic of taking the rows one by one.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]); `w.len()` is a multiple of `cols`,
/// every `xs[t]` has `cols` values and `out.len() == w.len() / cols * xs.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_f32_rows_tokens(w: &[f32], cols: usize, xs: &[&[f32]], out: &mut [f32]) {
    let nt = xs.len();
    let rows = w.chunks_exact(cols.max(1));
    let mut t = 0;
    while t < nt {
        match nt - t {
            1 => {
                for (r, row) in rows.clone().enumerate() {
                    out[r * nt + t] = vec_dot_f32(row, xs[t]);
                }
                t += 1;
            }
            3 => {
                for (r, row) in rows.clone().enumerate() {
                    out[r * nt + t..r * nt + t + 3].copy_from_slice(&dot_f32_triple(
                        row,
                        xs[t],
                        xs[t + 1],
                        xs[t + 2],
                    ));
                }
                t += 3;
            }
            _ => {
                for (r, row) in rows.clone().enumerate() {
                    let (da, db) = dot_f32_pair(row, xs[t], xs[t + 1]);
                    out[r * nt + t] = da;
                    out[r * nt + t + 1] = db;
                }
                t += 2;
            }
        }
    }
}

/// F16 weights (raw LE bytes) × F16 activations. The products are exact in f32, so the fused
/// multiply-add rounds exactly as a multiply then an add would.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_f16(w: &[u8], a: &[f16]) -> f32 {
    let n = a.len().min(w.len() / 2);
    let (pw, pa) = (w.as_ptr(), a.as_ptr() as *const u8);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let o = 2 * (i + 8 * k);
            let x = _mm256_cvtph_ps(load16(pw.add(o)));
            let y = _mm256_cvtph_ps(load16(pa.add(o)));
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    total32(
        &acc,
        (i..n).map(|k| f16::from_le_bytes([w[2 * k], w[2 * k + 1]]).to_f32() * a[k].to_f32()),
    )
}

/// Eight bf16 (16 bytes at `p`) widened to f32: a bf16 is the top half of an f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_bf16x8(p: *const u8) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load16(p)), 16))
}

/// BF16 weights (raw LE bytes) × BF16 activations. Multiply then add: bf16 spans f32's exponent
/// range, so a product can fall into subnormals and round.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn vec_dot_bf16(w: &[u8], a: &[bf16]) -> f32 {
    let n = a.len().min(w.len() / 2);
    let (pw, pa) = (w.as_ptr(), a.as_ptr() as *const u8);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let o = 2 * (i + 8 * k);
            *s = _mm256_add_ps(*s, _mm256_mul_ps(load_bf16x8(pw.add(o)), load_bf16x8(pa.add(o))));
        }
        i += 32;
    }
    total32(
        &acc,
        (i..n).map(|k| bf16::from_le_bytes([w[2 * k], w[2 * k + 1]]).to_f32() * a[k].to_f32()),
    )
}

// ---------------------------------------------------------------------------------------------
// Dequantization (the f32 path's weight rows). Each value is the scalar twin's expression in the
// same float steps — an exact integer converted, times the f32 scale, minus the f32 min where
// the format has one (a product then a difference, never fused) — so the rows are bit-identical
// to `crate::dequant`'s; `tests/real_models.rs` holds every tensor of the shared models to
// gguf-py's bits through these.
// ---------------------------------------------------------------------------------------------

/// `i8` lanes `[8k, 8k + 8)` of `q` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8_group_ps(q: __m256i, k: usize) -> __m256 {
    let half = if k < 2 { _mm256_castsi256_si128(q) } else { _mm256_extracti128_si256(q, 1) };
    let bytes = if k.is_multiple_of(2) { half } else { _mm_srli_si128(half, 8) };
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes))
}

/// 32 signed values `q` times `d`, stored to `y`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_scaled32(q: __m256i, d: __m256, y: &mut [f32; 32]) {
    for k in 0..4 {
        _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), _mm256_mul_ps(i8_group_ps(q, k), d));
    }
}

/// Q5_0 rows to f32: `(q − 16)·d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_row_q5_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q5_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        store_scaled32(decode_q5_0(x), _mm256_set1_ps(fp16(bits_le(x, 0))), y);
    }
}

/// Q8_0 rows to f32: `q·d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_row_q8_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q8_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        store_scaled32(load32(x.as_ptr().add(2)), _mm256_set1_ps(fp16(bits_le(x, 0))), y);
    }
}

/// Q4_K rows to f32: per 32-value group `(d·sc)·q − (dmin·m)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_row_q4_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q4_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let (d, dmin) = fp16x2(bits_le(x, 0), bits_le(x, 2));
        let (sc, mn) = scale_min_k4(arr12_at(x, 4));
        for j in 0..QK_K / 64 {
            let q = load32(x.as_ptr().add(16 + 32 * j));
            let halves = [
                _mm256_and_si256(q, _mm256_set1_epi8(0x0F)),
                _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F)),
            ];
            for (h, nib) in halves.into_iter().enumerate() {
                let g = 2 * j + h;
                let d1 = _mm256_set1_ps(d * sc[g] as f32);
                let m1 = _mm256_set1_ps(dmin * mn[g] as f32);
                let dst = y.as_mut_ptr().add(32 * g);
                for k in 0..4 {
                    _mm256_storeu_ps(
                        dst.add(8 * k),
                        _mm256_sub_ps(_mm256_mul_ps(d1, i8_group_ps(nib, k)), m1),
                    );
                }
            }
        }
    }
}

/// Q6_K rows to f32: `(d·sc)·(q − 32)`, a scale per 16 values.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_row_q6_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q6_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = fp16(bits_le(x, 208));
        for n in 0..QK_K / 128 {
            for (part, v) in q6k_half(x.as_ptr(), n).into_iter().enumerate() {
                let q = _mm256_sub_epi8(v, _mm256_set1_epi8(32));
                let dst = y.as_mut_ptr().add(128 * n + 32 * part);
                for k in 0..4 {
                    // Values l and l + 16 of the part take scales `2·part` and `2·part + 1`.
                    let sc = x[192 + 8 * n + 2 * part + k / 2] as i8;
                    let ds = _mm256_set1_ps(d * sc as f32);
                    _mm256_storeu_ps(dst.add(8 * k), _mm256_mul_ps(ds, i8_group_ps(q, k)));
                }
            }
        }
    }
}
