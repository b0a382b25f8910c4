//! Activation quantizers: llama.cpp's reference (`_ref`) rounding, bit for bit.
//!
//! Followed: llama.cpp `ggml/src/ggml-quants.c` (`quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`,
//! `quantize_row_q8_K_ref`, `nearest_int`), read at ggml-org/llama.cpp commit `01243c58` (2026;
//! the file already has Q1_0/NVFP4). These three functions have been unchanged since the
//! `iscale = -127/max` change of early 2024, so any llama.cpp since then agrees.
//!
//! Note: ggml's *optimized* CPU quantizers are not all bit-identical to these references —
//! the x86 AVX2 `quantize_row_q8_0/q8_1` compute `id = 127/amax` and round half to even —
//! while `quantize_row_q8_K` on x86 is the reference itself. We implement the references, which
//! are what every platform's llama.cpp agrees on in spirit and what gguf-py reproduces for Q8_0.

use crate::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};
use crate::dot::Activation;
use crate::{GgmlType, QuantError};
use half::{bf16, f16};

/// C `MAX(a, b)` = `a > b ? a : b` (so a NaN `b` wins, a NaN `a` loses — kept for parity).
#[inline(always)]
fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// C `roundf`: round half away from zero. `as i8` saturates like the x86 conversion does not,
/// but values here are within ±127.5 by construction (|x·id| ≤ 127 up to one rounding).
#[inline(always)]
fn roundf_i8(v: f32) -> i8 {
    v.round() as i8
}

/// ggml's `nearest_int`: adds 1.5·2^23 so the FPU's round-to-nearest-even does the rounding,
/// then reads the integer out of the mantissa. Valid for |v| ≤ 2^22 − 1 (ggml asserts that).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes `x` (a whole number of 32-value blocks; extra values are ignored) into `out`,
/// as `quantize_row_q8_0_ref`: `d = amax/127`, `q = roundf(x/d)`.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, y) in x.as_chunks::<QK>().0.iter().zip(out.iter_mut()) {
        let mut amax = 0.0f32;
        for &v in xb {
            amax = c_max(amax, v.abs());
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        y.d = f16::from_f32(d);
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = roundf_i8(v * id);
        }
    }
}

/// As `quantize_row_q8_1_ref`: Q8_0's rounding plus `s = f16(Σq · d)` (integer sum converted to
/// f32, times the f32 `d` before it is rounded to f16).
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, y) in x.as_chunks::<QK>().0.iter().zip(out.iter_mut()) {
        let mut amax = 0.0f32;
        for &v in xb {
            amax = c_max(amax, v.abs());
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        y.d = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = roundf_i8(v * id);
            sum += *q as i32;
        }
        y.s = f16::from_f32(sum as f32 * d);
    }
}

/// How Q8_0/Q8_1 activations are rounded. llama.cpp's builds do not all agree: the portable
/// reference divides by `d` and rounds half away from zero; the x86 builds (AVX, AVX2, AVX-512,
/// `ggml-cpu/arch/x86/quants.c`) multiply by `127/amax` and round half to even. The two differ
/// by one step on a few values per block, enough to make a forward pass drift measurably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Q8Rounding {
    /// `quantize_row_q8_{0,1}_ref`.
    #[default]
    Reference,
    /// `quantize_row_q8_{0,1}` of llama.cpp's x86 SIMD builds.
    X86,
}

/// As llama.cpp's x86 `quantize_row_q8_0`: `d = amax/127` stored as f16,
/// `q = round_half_even(x · (127/amax))`.
pub fn quantize_row_q8_0_x86(x: &[f32], out: &mut [BlockQ8_0]) {
    // With AVX2, `round_ties_even` is one `roundps`, not a libm `rintf` call per value.
    crate::with_avx2!(quantize_row_q8_0_x86_body(x, out))
}

#[inline(always)]
fn quantize_row_q8_0_x86_body(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, y) in x.as_chunks::<QK>().0.iter().zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| c_max(m, v.abs()));
        y.d = f16::from_f32(amax / 127.0);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

/// As llama.cpp's x86 `quantize_row_q8_1`: Q8_0's x86 rounding plus `s = f16(d · Σq)`.
pub fn quantize_row_q8_1_x86(x: &[f32], out: &mut [BlockQ8_1]) {
    crate::with_avx2!(quantize_row_q8_1_x86_body(x, out))
}

#[inline(always)]
fn quantize_row_q8_1_x86_body(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, y) in x.as_chunks::<QK>().0.iter().zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| c_max(m, v.abs()));
        let d = amax / 127.0;
        y.d = f16::from_f32(d);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        y.s = f16::from_f32(d * sum as f32);
    }
}

/// As `quantize_row_q8_K_ref`: the value of largest magnitude `max` (first one on ties) sets
/// `iscale = -127/max`; `q = min(127, nearest_int(iscale·x))`; `d = 1/iscale`; `bsums` are the
/// sums of 16 consecutive `q`. An all-zero block gets `d = 0`, `q = 0` (and, unlike ggml, which
/// leaves them unwritten, `bsums = 0`).
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, y) in x.as_chunks::<QK_K>().0.iter().zip(out.iter_mut()) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax == 0.0 {
            *y = BlockQ8K::ZERO;
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, chunk) in y.bsums.iter_mut().zip(y.qs.as_chunks::<16>().0) {
            *s = chunk.iter().map(|&q| q as i16).sum();
        }
        y.d = 1.0 / iscale;
    }
}

/// `GGML_FP32_TO_BF16` (`ggml_compute_fp32_to_bf16`): round to nearest even; NaN stays NaN with
/// the quiet bit forced.
pub fn f32_to_bf16(v: f32) -> bf16 {
    let u = v.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    bf16::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16)
}

/// Quantizes (or converts) an f32 activation row to the type llama.cpp's CPU backend pairs with
/// `weight_ty` ([`GgmlType::vec_dot_type`]), with the reference rounding.
pub fn quantize_activation(weight_ty: GgmlType, x: &[f32]) -> Result<Activation, QuantError> {
    quantize_activation_with(weight_ty, x, Q8Rounding::Reference)
}

/// [`quantize_activation`] with a chosen Q8_0/Q8_1 rounding (Q8_K is the reference on every
/// llama.cpp build).
pub fn quantize_activation_with(
    weight_ty: GgmlType,
    x: &[f32],
    rounding: Q8Rounding,
) -> Result<Activation, QuantError> {
    let act_ty = weight_ty
        .vec_dot_type()
        .ok_or(QuantError::Unsupported { ty: weight_ty, what: "activation quantization" })?;
    let bs = act_ty.block_size();
    if !x.len().is_multiple_of(bs) || !x.len().is_multiple_of(weight_ty.block_size()) {
        return Err(QuantError::NotWholeBlocks { ty: weight_ty, values: x.len() });
    }
    Ok(match act_ty {
        GgmlType::F32 => Activation::F32(x.to_vec()),
        // `GGML_FP32_TO_FP16` rounds to nearest even, as `half` does.
        GgmlType::F16 => Activation::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
        GgmlType::BF16 => Activation::BF16(x.iter().map(|&v| f32_to_bf16(v)).collect()),
        GgmlType::Q8_0 => {
            let mut out = vec![BlockQ8_0::ZERO; x.len() / QK];
            match rounding {
                Q8Rounding::Reference => quantize_row_q8_0(x, &mut out),
                Q8Rounding::X86 => quantize_row_q8_0_x86(x, &mut out),
            }
            Activation::Q8_0(out)
        }
        GgmlType::Q8_1 => {
            let mut out = vec![BlockQ8_1::ZERO; x.len() / QK];
            match rounding {
                Q8Rounding::Reference => quantize_row_q8_1(x, &mut out),
                Q8Rounding::X86 => quantize_row_q8_1_x86(x, &mut out),
            }
            Activation::Q8_1(out)
        }
        GgmlType::Q8_K => {
            let mut out = vec![BlockQ8K::ZERO; x.len() / QK_K];
            quantize_row_q8_k(x, &mut out);
            Activation::Q8K(out)
        }
        other => {
            return Err(QuantError::Unsupported { ty: other, what: "activation quantization" })
        }
    })
}
