//! Block layouts.
//!
//! Two kinds of blocks live here:
//!
//! * **Activation blocks** ([`BlockQ8_0`], [`BlockQ8_1`], [`BlockQ8K`]) are produced by this
//!   crate's quantizers, so they are ordinary `#[repr(C)]` structs with ggml's field names.
//! * **Weight blocks** come straight from file bytes (alignment 1, possibly a memory-mapped or
//!   fetched buffer), so kernels never cast them to structs: they read fields at the byte offsets
//!   documented below, little-endian, with the `*_at` helpers of this module. No `unsafe`.
//!
//! Weight block layouts (offsets in bytes; `f16` = IEEE half, little-endian):
//!
//! | type   | bytes | values | bits/weight | layout |
//! |--------|------:|-------:|------------:|--------|
//! | Q4_0   | 18  | 32  | 4.5    | `d: f16 @0`, `qs[16] @2` (low nibbles = values 0..16, high = 16..32); `x = (q - 8)·d` |
//! | Q4_1   | 20  | 32  | 5.0    | `d: f16 @0`, `m: f16 @2`, `qs[16] @4`; `x = q·d + m` |
//! | Q5_0   | 22  | 32  | 5.5    | `d: f16 @0`, `qh[4] @2` (u32 LE, bit j = 5th bit of value j), `qs[16] @6`; `x = (q - 16)·d` |
//! | Q5_1   | 24  | 32  | 6.0    | `d: f16 @0`, `m: f16 @2`, `qh[4] @4`, `qs[16] @8`; `x = q·d + m` |
//! | Q8_0   | 34  | 32  | 8.5    | `d: f16 @0`, `qs: i8[32] @2`; `x = q·d` |
//! | Q2_K   | 84  | 256 | 2.625  | `scales[16] @0` (low nibble scale, high nibble min, per 16 values), `qs[64] @16` (2-bit), `d: f16 @80`, `dmin: f16 @82` |
//! | Q3_K   | 110 | 256 | 3.4375 | `hmask[32] @0` (3rd bit), `qs[64] @32` (low 2 bits), `scales[12] @96` (16 × 6-bit, biased by 32), `d: f16 @108` |
//! | Q4_K   | 144 | 256 | 4.5    | `d: f16 @0`, `dmin: f16 @2`, `scales[12] @4` (8 × 6-bit scale + 8 × 6-bit min), `qs[128] @16` |
//! | Q5_K   | 176 | 256 | 5.5    | `d: f16 @0`, `dmin: f16 @2`, `scales[12] @4`, `qh[32] @16` (5th bit), `qs[128] @48` |
//! | Q6_K   | 210 | 256 | 6.5625 | `ql[128] @0` (low 4 bits), `qh[64] @128` (high 2 bits), `scales: i8[16] @192`, `d: f16 @208`; `x = d·scale·(q - 32)` |
//! | IQ4_NL | 18  | 32  | 4.5    | `d: f16 @0`, `qs[16] @2`; `x = d·KVALUES_IQ4NL[q]` |
//! | IQ4_XS | 136 | 256 | 4.25   | `d: f16 @0`, `scales_h: u16 @2`, `scales_l[4] @4`, `qs[128] @8`; 6-bit sub-block scales biased by 32 |
//!
//! In all the 4-bit-nibble k-quants (Q4_K, Q5_K) each 64-value chunk stores its first 32 values
//! in the low nibbles of 32 bytes and the next 32 in the high nibbles of the same bytes.

use half::f16;

/// Values per block of the "legacy" formats (Q4_0 … Q8_1, IQ4_NL).
pub const QK: usize = 32;
/// Values per super-block of the k-quants and IQ4_XS.
pub const QK_K: usize = 256;

/// Bytes per weight block, by format (see the table above).
pub const Q4_0_BYTES: usize = 18;
pub const Q4_1_BYTES: usize = 20;
pub const Q5_0_BYTES: usize = 22;
pub const Q5_1_BYTES: usize = 24;
pub const Q8_0_BYTES: usize = 34;
pub const Q8_1_BYTES: usize = 36;
pub const Q2_K_BYTES: usize = 84;
pub const Q3_K_BYTES: usize = 110;
pub const Q4_K_BYTES: usize = 144;
pub const Q5_K_BYTES: usize = 176;
pub const Q6_K_BYTES: usize = 210;
pub const Q8_K_BYTES: usize = 292;
pub const IQ4_NL_BYTES: usize = 18;
pub const IQ4_XS_BYTES: usize = 136;

/// The 16 non-linear levels of IQ4_NL / IQ4_XS (`kvalues_iq4nl` in ggml).
pub const KVALUES_IQ4NL: [i8; 16] =
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Activation block for Q4_0/Q5_0/Q8_0/IQ4_NL weights: 32 values, 8.5 bits/value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_0 {
    /// Scale: value = `qs[i] · d`.
    pub d: f16,
    pub qs: [i8; QK],
}

/// Activation block for Q4_1/Q5_1 weights: 32 values, 9 bits/value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_1 {
    /// Scale: value = `qs[i] · d`.
    pub d: f16,
    /// `d · Σ qs` rounded to f16 — lets the dot product apply the weight block's min once.
    pub s: f16,
    pub qs: [i8; QK],
}

/// Activation block for k-quant and IQ4_XS weights: 256 values, ~9.1 bits/value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8K {
    /// Scale (f32, unlike the 32-value formats): value = `qs[i] · d`.
    pub d: f32,
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 `qs`, for the k-quants' min terms.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == Q8_0_BYTES);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == Q8_1_BYTES);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == Q8_K_BYTES);

impl BlockQ8_0 {
    pub const ZERO: BlockQ8_0 = BlockQ8_0 { d: f16::ZERO, qs: [0; QK] };

    /// The block as ggml stores it (34 bytes), e.g. for a GGUF writer or golden comparison.
    pub fn to_bytes(&self) -> [u8; Q8_0_BYTES] {
        let mut b = [0u8; Q8_0_BYTES];
        b[0..2].copy_from_slice(&self.d.to_le_bytes());
        for (dst, &q) in b[2..].iter_mut().zip(&self.qs) {
            *dst = q as u8;
        }
        b
    }
}

impl BlockQ8_1 {
    pub const ZERO: BlockQ8_1 = BlockQ8_1 { d: f16::ZERO, s: f16::ZERO, qs: [0; QK] };

    /// The block as ggml stores it (36 bytes).
    pub fn to_bytes(&self) -> [u8; Q8_1_BYTES] {
        let mut b = [0u8; Q8_1_BYTES];
        b[0..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..4].copy_from_slice(&self.s.to_le_bytes());
        for (dst, &q) in b[4..].iter_mut().zip(&self.qs) {
            *dst = q as u8;
        }
        b
    }
}

impl BlockQ8K {
    pub const ZERO: BlockQ8K = BlockQ8K { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] };

    /// The block as ggml stores it (292 bytes: d, qs, bsums).
    pub fn to_bytes(&self) -> [u8; Q8_K_BYTES] {
        let mut b = [0u8; Q8_K_BYTES];
        b[0..4].copy_from_slice(&self.d.to_le_bytes());
        for (dst, &q) in b[4..4 + QK_K].iter_mut().zip(&self.qs) {
            *dst = q as u8;
        }
        for (dst, s) in b[4 + QK_K..].chunks_exact_mut(2).zip(&self.bsums) {
            dst.copy_from_slice(&s.to_le_bytes());
        }
        b
    }
}

/// The f16 at `b[off..off + 2]` widened to f32 (exact).
#[inline(always)]
pub(crate) fn f16_at<const N: usize>(b: &[u8; N], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// An f16 (as bits) widened to f32, exactly, with integer work and no subnormal operand: a
/// normal f16's exponent is rebiased (15 → 127) in the bits; zero and the subnormals are their
/// mantissa × 2^−24, converted from an integer; infinities and NaNs keep their payload, as a
/// conversion instruction does. Where there is no F16C (wasm, the scalar reference) this is
/// several times faster than a bit-by-bit conversion, and a block's scales are converted on
/// every dot. (Rescaling the shifted bits by 2^112 in one multiply is also exact, but for a
/// subnormal f16 it multiplies a subnormal f32, which x86 does ~100× slower: Q6_K's super-block
/// scales are often subnormal, and that one multiply had halved the wasm Q6_K dot.)
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let mantissa = (h & 0x03ff) as u32;
    let magnitude = match h & 0x7c00 {
        0x7c00 => 0x7f80_0000 | (mantissa << 13),
        // 2^−24 is f32 bits 0x3380_0000; the product is exact (mantissa < 2^10).
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        _ => (((h & 0x7fff) as u32) << 13) + (112 << 23),
    };
    f32::from_bits(magnitude | sign)
}

/// The little-endian u16 at `b[off..off + 2]`.
#[inline(always)]
pub(crate) fn u16_at<const N: usize>(b: &[u8; N], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// The little-endian u32 at `b[off..off + 4]`.
#[inline(always)]
pub(crate) fn u32_at<const N: usize>(b: &[u8; N], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Unpacks the 12-byte Q4_K/Q5_K scale field into 8 six-bit scales and 8 six-bit mins
/// (ggml's `get_scale_min_k4` for j = 0..8).
#[inline(always)]
pub(crate) fn scale_min_k4(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let [s0, s1, m0, m1] = scale_min_k4_words(q).map(u32::to_le_bytes);
    let join = |a: [u8; 4], b: [u8; 4]| [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
    (join(s0, s1), join(m0, m1))
}

/// [`scale_min_k4`] on little-endian words, as SIMD kernels load it: `[scales 0..4, scales 4..8,
/// mins 0..4, mins 4..8]`, one six-bit value per byte.
#[inline(always)]
pub(crate) fn scale_min_k4_words(q: &[u8; 12]) -> [u32; 4] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let u = |o: usize| u32::from_le_bytes([q[o], q[o + 1], q[o + 2], q[o + 3]]);
    let (u0, u1, u2) = (u(0), u(4), u(8));
    [
        u0 & LOW6,
        (u2 & LOW4) | (((u0 >> 6) & LOW2) << 4),
        u1 & LOW6,
        ((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4),
    ]
}

/// Unpacks the 12-byte Q3_K scale field into 16 six-bit scales, still biased by 32 (ggml's
/// `kmask1/kmask2` shuffle on four little-endian u32 words).
#[inline(always)]
pub(crate) fn scales_q3_k(q: &[u8; 12]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    let a1 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
    let tmp = u32::from_le_bytes([q[8], q[9], q[10], q[11]]);
    let words = [
        (a0 & KMASK2) | (((tmp) & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, w) in words.iter().enumerate() {
        for (k, byte) in w.to_le_bytes().iter().enumerate() {
            out[i * 4 + k] = *byte as i8;
        }
    }
    out
}

/// The 12-byte sub-array of a block at `off` (for the scale fields).
#[inline(always)]
pub(crate) fn arr12<const N: usize>(b: &[u8; N], off: usize) -> &[u8; 12] {
    let mut it = b[off..off + 12].as_chunks::<12>().0.iter();
    // `b[off..off + 12]` has exactly 12 bytes, so exactly one chunk exists.
    it.next().unwrap_or(&[0u8; 12])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of the 65536 f16 bit patterns widens exactly as the `half` crate does.
    #[test]
    fn f16_to_f32_is_exact_for_every_f16() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f16_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "f16 {h:#06x}: {got:e} ({:#010x}) != {want:e} ({:#010x})",
                got.to_bits(),
                want.to_bits()
            );
        }
    }
}
