//! Dequantization to f32, bit-exact with ggml's `dequantize_row_*` (ggml-quants.c) and
//! gguf-py's `gguf.quants.dequantize`: the same float operations in the same order (for the
//! k-quants `d·sc` and `dmin·m` are rounded to f32 first, then `y = d1·q − m1`).
//!
//! The per-type `dequantize_row_*` functions take whole blocks and fill `out` up to the shorter
//! of the two (they never panic); [`dequantize`] checks lengths and types first.

use crate::blocks::*;
use crate::{GgmlType, QuantError};
use half::{bf16, f16};

/// Dequantizes `bytes` (whole blocks of `ty`) into `out`, whose length is the number of values.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    use GgmlType as T;
    if !ty.is_dequantizable() {
        return Err(QuantError::Unsupported { ty, what: "dequantization" });
    }
    let values = out.len();
    let expected = ty
        .bytes_for(values as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(QuantError::NotWholeBlocks { ty, values })?;
    if bytes.len() != expected {
        return Err(QuantError::WrongByteLength { ty, values, expected, got: bytes.len() });
    }
    #[cfg(target_arch = "x86_64")]
    {
        type Rows = unsafe fn(&[u8], &mut [f32]);
        // The widest rows this CPU runs: AVX-512 for the 32-value formats, else AVX2.
        let avx512: Option<Rows> = match ty {
            T::Q4_0 => Some(crate::avx512::dequantize_row_q4_0),
            T::Q5_0 => Some(crate::avx512::dequantize_row_q5_0),
            T::IQ4_NL => Some(crate::avx512::dequantize_row_iq4_nl),
            T::Q8_0 => Some(crate::avx512::dequantize_row_q8_0),
            _ => None,
        };
        let avx2: Option<Rows> = match ty {
            T::Q5_0 => Some(crate::avx2::dequantize_row_q5_0),
            T::Q8_0 => Some(crate::avx2::dequantize_row_q8_0),
            T::Q4_K => Some(crate::avx2::dequantize_row_q4_k),
            T::Q6_K => Some(crate::avx2::dequantize_row_q6_k),
            _ => None,
        };
        let kernel = avx512
            .filter(|_| crate::avx512::available())
            .or(avx2.filter(|_| crate::avx2::available()));
        if let Some(kernel) = kernel {
            // SAFETY: the CPU features the kernel needs were detected at runtime.
            unsafe { kernel(bytes, out) };
            return Ok(());
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        type Rows = fn(&[u8], &mut [f32]);
        let kernel: Option<Rows> = match ty {
            T::Q5_0 => Some(crate::simd128::dequantize_row_q5_0),
            T::Q8_0 => Some(crate::simd128::dequantize_row_q8_0),
            T::Q4_K => Some(crate::simd128::dequantize_row_q4_k),
            T::Q6_K => Some(crate::simd128::dequantize_row_q6_k),
            _ => None,
        };
        if let Some(kernel) = kernel {
            kernel(bytes, out);
            return Ok(());
        }
    }
    match ty {
        T::F32 => dequantize_row_f32(bytes, out),
        T::F16 => dequantize_row_f16(bytes, out),
        T::BF16 => dequantize_row_bf16(bytes, out),
        T::Q4_0 => dequantize_row_q4_0(bytes, out),
        T::Q4_1 => dequantize_row_q4_1(bytes, out),
        T::Q5_0 => dequantize_row_q5_0(bytes, out),
        T::Q5_1 => dequantize_row_q5_1(bytes, out),
        T::Q8_0 => dequantize_row_q8_0(bytes, out),
        T::Q8_1 => dequantize_row_q8_1(bytes, out),
        T::Q2_K => dequantize_row_q2_k(bytes, out),
        T::Q3_K => dequantize_row_q3_k(bytes, out),
        T::Q4_K => dequantize_row_q4_k(bytes, out),
        T::Q5_K => dequantize_row_q5_k(bytes, out),
        T::Q6_K => dequantize_row_q6_k(bytes, out),
        T::Q8_K => dequantize_row_q8_k(bytes, out),
        T::IQ4_NL => dequantize_row_iq4_nl(bytes, out),
        T::IQ4_XS => dequantize_row_iq4_xs(bytes, out),
        _ => return Err(QuantError::Unsupported { ty, what: "dequantization" }),
    }
    Ok(())
}

pub fn dequantize_row_f32(bytes: &[u8], out: &mut [f32]) {
    for (y, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
        *y = f32::from_le_bytes(*b);
    }
}

pub fn dequantize_row_f16(bytes: &[u8], out: &mut [f32]) {
    for (y, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *y = f16::from_le_bytes(*b).to_f32();
    }
}

pub fn dequantize_row_bf16(bytes: &[u8], out: &mut [f32]) {
    for (y, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
        *y = bf16::from_le_bytes(*b).to_f32();
    }
}

pub fn dequantize_row_q4_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q4_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        for j in 0..QK / 2 {
            let q = x[2 + j];
            y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub fn dequantize_row_q4_1(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q4_1_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        let m = f16_at(x, 2);
        for j in 0..QK / 2 {
            let q = x[4 + j];
            y[j] = (q & 0x0F) as f32 * d + m;
            y[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

pub fn dequantize_row_q5_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q5_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        let qh = u32_at(x, 2);
        for j in 0..QK / 2 {
            let q = x[6 + j];
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            y[j] = (((q & 0x0F) as u32 | xh0) as i32 - 16) as f32 * d;
            y[j + QK / 2] = (((q >> 4) as u32 | xh1) as i32 - 16) as f32 * d;
        }
    }
}

pub fn dequantize_row_q5_1(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q5_1_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        let m = f16_at(x, 2);
        let qh = u32_at(x, 4);
        for j in 0..QK / 2 {
            let q = x[8 + j];
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            y[j] = ((q & 0x0F) as u32 | xh0) as f32 * d + m;
            y[j + QK / 2] = ((q >> 4) as u32 | xh1) as f32 * d + m;
        }
    }
}

pub fn dequantize_row_q8_0(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q8_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        for j in 0..QK {
            y[j] = (x[2 + j] as i8) as f32 * d;
        }
    }
}

/// Q8_1 (an activation format; ggml has no `dequantize_row_q8_1`): `qs·d`, the stored sum `s`
/// is redundant and ignored — the same as gguf-py.
pub fn dequantize_row_q8_1(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q8_1_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        for j in 0..QK {
            y[j] = (x[4 + j] as i8) as f32 * d;
        }
    }
}

pub fn dequantize_row_q2_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q2_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f16_at(x, 80);
        let min = f16_at(x, 82);
        let mut is = 0;
        let mut yi = 0;
        for n in 0..QK_K / 128 {
            let q = &x[16 + 32 * n..16 + 32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = x[is];
                    is += 1;
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        y[yi + l] = dl * ((q[16 * half + l] >> shift) & 3) as f32 - ml;
                    }
                    yi += 16;
                }
            }
        }
    }
}

pub fn dequantize_row_q3_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q3_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d_all = f16_at(x, 108);
        let hm = &x[0..32];
        let scales = scales_q3_k(arr12(x, 96));
        let mut m = 1u8;
        let mut is = 0;
        let mut yi = 0;
        for n in 0..QK_K / 128 {
            let q = &x[32 + 32 * n..32 + 32 * n + 32];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * (scales[is] as i32 - 32) as f32;
                    is += 1;
                    for l in 0..16 {
                        let k = 16 * half + l;
                        let v = ((q[k] >> shift) & 3) as i32 - if hm[k] & m != 0 { 0 } else { 4 };
                        y[yi + l] = dl * v as f32;
                    }
                    yi += 16;
                }
                m <<= 1;
            }
        }
    }
}

pub fn dequantize_row_q4_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q4_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f16_at(x, 0);
        let min = f16_at(x, 2);
        let (sc, mn) = scale_min_k4(arr12(x, 4));
        for j in 0..QK_K / 64 {
            let q = &x[16 + 32 * j..16 + 32 * j + 32];
            let d1 = d * sc[2 * j] as f32;
            let m1 = min * mn[2 * j] as f32;
            let d2 = d * sc[2 * j + 1] as f32;
            let m2 = min * mn[2 * j + 1] as f32;
            for l in 0..32 {
                y[64 * j + l] = d1 * (q[l] & 0xF) as f32 - m1;
                y[64 * j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

pub fn dequantize_row_q5_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q5_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f16_at(x, 0);
        let min = f16_at(x, 2);
        let (sc, mn) = scale_min_k4(arr12(x, 4));
        let qh = &x[16..48];
        let mut u1 = 1u8;
        let mut u2 = 2u8;
        for j in 0..QK_K / 64 {
            let ql = &x[48 + 32 * j..48 + 32 * j + 32];
            let d1 = d * sc[2 * j] as f32;
            let m1 = min * mn[2 * j] as f32;
            let d2 = d * sc[2 * j + 1] as f32;
            let m2 = min * mn[2 * j + 1] as f32;
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[64 * j + l] = d1 * ((ql[l] & 0xF) + h1) as f32 - m1;
                y[64 * j + 32 + l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
            u1 = u1.wrapping_shl(2);
            u2 = u2.wrapping_shl(2);
        }
    }
}

pub fn dequantize_row_q6_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q6_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f16_at(x, 208);
        for n in 0..QK_K / 128 {
            let ql = &x[64 * n..64 * n + 64];
            let qh = &x[128 + 32 * n..128 + 32 * n + 32];
            let sc = &x[192 + 8 * n..192 + 8 * n + 8];
            let yo = &mut y[128 * n..128 * n + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                // ggml: `d * sc[is] * q` evaluates left to right.
                yo[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                yo[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                yo[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                yo[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }
}

/// Q8_K: f32 scale `d @0`, `qs: i8[256] @4`, `bsums: i16[16] @260` (ignored here).
pub fn dequantize_row_q8_k(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<Q8_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        for j in 0..QK_K {
            y[j] = d * (x[4 + j] as i8) as f32;
        }
    }
}

pub fn dequantize_row_iq4_nl(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<IQ4_NL_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
        let d = f16_at(x, 0);
        for j in 0..QK / 2 {
            let q = x[2 + j];
            y[j] = d * KVALUES_IQ4NL[(q & 0xF) as usize] as f32;
            y[j + QK / 2] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
        }
    }
}

pub fn dequantize_row_iq4_xs(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<IQ4_XS_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
        let d = f16_at(x, 0);
        let scales_h = u16_at(x, 2) as i32;
        for ib in 0..QK_K / 32 {
            let ls = ((x[4 + ib / 2] as i32 >> (4 * (ib % 2))) & 0xF)
                | (((scales_h >> (2 * ib)) & 3) << 4);
            let dl = d * (ls - 32) as f32;
            let qs = &x[8 + 16 * ib..8 + 16 * ib + 16];
            for j in 0..16 {
                y[32 * ib + j] = dl * KVALUES_IQ4NL[(qs[j] & 0xF) as usize] as f32;
                y[32 * ib + 16 + j] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}
