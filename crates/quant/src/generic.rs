//! Scalar reference fused dot products — llama.cpp's `ggml_vec_dot_*_generic` semantics.
//!
//! Each function multiplies one row of packed weights (`w`: raw bytes of whole blocks, straight
//! from the file) with a quantized activation row: the integer sums inside a block are ggml's
//! (`ggml_vec_dot_*_generic` in llama.cpp's `ggml/src/ggml-cpu/quants.c`, commit `01c20eae`),
//! and the float combination of those sums follows [`crate::order`] — the one order the AVX2
//! and simd128 twins follow too, so all three give bit-identical results.
//!
//! These are internal kernels: `dot.rs` checks lengths first. Here a length mismatch only
//! shortens the dot to the blocks both sides have (zip), it never panics.
//! The AVX2 and simd128 twins in `avx2.rs` / `simd128.rs` have exactly these signatures.

// Index loops on purpose: they mirror ggml's C loops line by line, which is what reviewers
// compare against.
#![allow(clippy::needless_range_loop)]

use crate::blocks::*;
use crate::order::BlockAcc4;
use half::{bf16, f16};

#[inline(always)]
fn fp16(h: f16) -> f32 {
    crate::blocks::f16_to_f32(h.to_bits())
}

/// Q4_0 weights × Q8_0 activations: `Σ_b (Σ q·q8)·d_w·d_a`.
pub fn vec_dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q4_0_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<Q4_0_BYTES>().0.iter().zip(a).enumerate() {
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let q = x[2 + j];
            let v0 = (q & 0x0F) as i32 - 8;
            let v1 = (q >> 4) as i32 - 8;
            sumi0 += v0 * y.qs[j] as i32;
            sumi1 += v1 * y.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        acc.add(b, (f16_at(x, 0) * fp16(y.d)) * sumi as f32);
    }
    acc.total()
}

/// Q4_1 weights × Q8_1 activations: `Σ_b (d_w·d_a)·Σ q·q8 + m_w·s_a`.
pub fn vec_dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q4_1_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<Q4_1_BYTES>().0.iter().zip(a).enumerate() {
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let q = x[4 + j];
            sumi0 += (q & 0x0F) as i32 * y.qs[j] as i32;
            sumi1 += (q >> 4) as i32 * y.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        acc.add(b, (f16_at(x, 0) * fp16(y.d)) * sumi as f32 + f16_at(x, 2) * fp16(y.s));
    }
    acc.total()
}

/// Q5_0 weights × Q8_0 activations.
pub fn vec_dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q5_0_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<Q5_0_BYTES>().0.iter().zip(a).enumerate() {
        let qh = u32_at(x, 2);
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let q = x[6 + j];
            let xh0 = (((qh >> j) & 1) << 4) as u8;
            let xh1 = (((qh >> (j + 16)) & 1) << 4) as u8;
            let x0 = ((q & 0x0F) | xh0) as i32 - 16;
            let x1 = ((q >> 4) | xh1) as i32 - 16;
            sumi0 += x0 * y.qs[j] as i32;
            sumi1 += x1 * y.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        acc.add(b, (f16_at(x, 0) * fp16(y.d)) * sumi as f32);
    }
    acc.total()
}

/// Q5_1 weights × Q8_1 activations.
pub fn vec_dot_q5_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q5_1_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<Q5_1_BYTES>().0.iter().zip(a).enumerate() {
        let qh = u32_at(x, 4);
        let mut sumi0 = 0i32;
        let mut sumi1 = 0i32;
        for j in 0..QK / 2 {
            let q = x[8 + j];
            let xh0 = (((qh >> j) & 1) << 4) as u8;
            let xh1 = (((qh >> (j + 16)) & 1) << 4) as u8;
            let x0 = ((q & 0x0F) | xh0) as i32;
            let x1 = ((q >> 4) | xh1) as i32;
            sumi0 += x0 * y.qs[j] as i32;
            sumi1 += x1 * y.qs[j + QK / 2] as i32;
        }
        let sumi = sumi0 + sumi1;
        acc.add(b, (f16_at(x, 0) * fp16(y.d)) * sumi as f32 + f16_at(x, 2) * fp16(y.s));
    }
    acc.total()
}

/// Q8_0 weights × Q8_0 activations.
pub fn vec_dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q8_0_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<Q8_0_BYTES>().0.iter().zip(a).enumerate() {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += (x[2 + j] as i8) as i32 * y.qs[j] as i32;
        }
        acc.add(b, (f16_at(x, 0) * fp16(y.d)) * sumi as f32);
    }
    acc.total()
}

/// IQ4_NL weights × Q8_0 activations.
pub fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * IQ4_NL_BYTES);
    let mut acc = BlockAcc4::default();
    for (b, (x, y)) in w.as_chunks::<IQ4_NL_BYTES>().0.iter().zip(a).enumerate() {
        let d = f16_at(x, 0) * fp16(y.d);
        let mut sumi1 = 0i32;
        let mut sumi2 = 0i32;
        for j in 0..QK / 2 {
            let q = x[2 + j];
            sumi1 += y.qs[j] as i32 * KVALUES_IQ4NL[(q & 0xF) as usize] as i32;
            sumi2 += y.qs[j + QK / 2] as i32 * KVALUES_IQ4NL[(q >> 4) as usize] as i32;
        }
        acc.add(b, d * (sumi1 + sumi2) as f32);
    }
    acc.total()
}

/// Q2_K weights × Q8_K activations: `Σ_b d_a·d·Σ sc·q·q8 − d_a·dmin·Σ min·bsum`.
pub fn vec_dot_q2_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q2_K_BYTES);
    let mut sumf = 0.0f32;
    for (x, y) in w.as_chunks::<Q2_K_BYTES>().0.iter().zip(a) {
        let sc = &x[0..16];
        let mut summs = 0i32;
        for j in 0..16 {
            summs += y.bsums[j] as i32 * (sc[j] >> 4) as i32;
        }
        let dall = y.d * f16_at(x, 80);
        let dmin = y.d * f16_at(x, 82);

        let mut isum = 0i32;
        let mut is = 0;
        let mut q8 = 0usize;
        for k in 0..QK_K / 128 {
            let q2 = &x[16 + 32 * k..16 + 32 * k + 32];
            let mut shift = 0;
            for _ in 0..4 {
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                let mut isuml = 0i32;
                for l in 0..16 {
                    isuml += y.qs[q8 + l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                let mut isuml = 0i32;
                for l in 16..32 {
                    isuml += y.qs[q8 + l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
                shift += 2;
                q8 += 32;
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Adds `scale · a[l] · q8[l]` for 16 values into ggml's 8 integer lanes (`aux32`).
#[inline(always)]
fn lanes_16(aux32: &mut [i32; 8], scale: i32, a: &[i8], q8: &[i8]) {
    for half in 0..2 {
        for l in 0..8 {
            // ggml stores the product in an int16 (`aux16`); |q8·a| ≤ 128·32 fits.
            let p = (q8[half * 8 + l] as i16 * a[half * 8 + l] as i16) as i32;
            aux32[l] += scale * p;
        }
    }
}

/// Q3_K weights × Q8_K activations.
pub fn vec_dot_q3_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q3_K_BYTES);
    let mut sumf = 0.0f32;
    let mut aux8 = [0i8; QK_K];
    for (x, y) in w.as_chunks::<Q3_K_BYTES>().0.iter().zip(a) {
        let hm = &x[0..32];
        // Unpack 2 low bits + inverted high bit into signed values in [-4, 3].
        let mut m = 1u8;
        let mut ai = 0;
        for chunk in 0..QK_K / 128 {
            let q3 = &x[32 + 32 * chunk..32 + 32 * chunk + 32];
            for shift in [0, 2, 4, 6] {
                for l in 0..32 {
                    let lo = ((q3[l] >> shift) & 3) as i8;
                    aux8[ai + l] = lo - if hm[l] & m != 0 { 0 } else { 4 };
                }
                ai += 32;
                m <<= 1;
            }
        }
        let scales = scales_q3_k(arr12(x, 96));
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 16 {
            let s = scales[j] as i32 - 32;
            lanes_16(&mut aux32, s, &aux8[16 * j..16 * j + 16], &y.qs[16 * j..16 * j + 16]);
        }
        let d = f16_at(x, 108) * y.d;
        sumf += d * isum8(&aux32) as f32;
    }
    sumf
}

/// Q4_K weights × Q8_K activations (mins via bsums).
pub fn vec_dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q4_K_BYTES);
    let mut sumf = 0.0f32;
    let mut aux8 = [0i8; QK_K];
    for (x, y) in w.as_chunks::<Q4_K_BYTES>().0.iter().zip(a) {
        for j in 0..QK_K / 64 {
            let q4 = &x[16 + 32 * j..16 + 32 * j + 32];
            for l in 0..32 {
                aux8[64 * j + l] = (q4[l] & 0xF) as i8;
                aux8[64 * j + 32 + l] = (q4[l] >> 4) as i8;
            }
        }
        let (scales, mins) = scale_min_k4(arr12(x, 4));
        let mut sumi = 0i32;
        for j in 0..QK_K / 16 {
            sumi += y.bsums[j] as i32 * mins[j / 2] as i32;
        }
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 32 {
            let s = scales[j] as i32;
            for k in 0..2 {
                let o = 32 * j + 16 * k;
                lanes_16(&mut aux32, s, &aux8[o..o + 16], &y.qs[o..o + 16]);
            }
        }
        let d = f16_at(x, 0) * y.d;
        let dmin = f16_at(x, 2) * y.d;
        sumf += d * isum8(&aux32) as f32 - dmin * sumi as f32;
    }
    sumf
}

/// Q5_K weights × Q8_K activations (as Q4_K plus a 5th bit from `qh`).
pub fn vec_dot_q5_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q5_K_BYTES);
    let mut sumf = 0.0f32;
    let mut aux8 = [0i8; QK_K];
    for (x, y) in w.as_chunks::<Q5_K_BYTES>().0.iter().zip(a) {
        let hm = &x[16..48];
        let mut m = 1u8;
        for j in 0..QK_K / 64 {
            let q4 = &x[48 + 32 * j..48 + 32 * j + 32];
            for l in 0..32 {
                aux8[64 * j + l] = (q4[l] & 0xF) as i8 + if hm[l] & m != 0 { 16 } else { 0 };
            }
            m <<= 1;
            for l in 0..32 {
                aux8[64 * j + 32 + l] = (q4[l] >> 4) as i8 + if hm[l] & m != 0 { 16 } else { 0 };
            }
            m <<= 1;
        }
        let (scales, mins) = scale_min_k4(arr12(x, 4));
        let mut sumi = 0i32;
        for j in 0..QK_K / 16 {
            sumi += y.bsums[j] as i32 * mins[j / 2] as i32;
        }
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 32 {
            let s = scales[j] as i32;
            for k in 0..2 {
                let o = 32 * j + 16 * k;
                lanes_16(&mut aux32, s, &aux8[o..o + 16], &y.qs[o..o + 16]);
            }
        }
        let d = f16_at(x, 0) * y.d;
        let dmin = f16_at(x, 2) * y.d;
        sumf += d * isum8(&aux32) as f32 - dmin * sumi as f32;
    }
    sumf
}

/// Q6_K weights × Q8_K activations.
pub fn vec_dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * Q6_K_BYTES);
    let mut sumf = 0.0f32;
    let mut aux8 = [0i8; QK_K];
    for (x, y) in w.as_chunks::<Q6_K_BYTES>().0.iter().zip(a) {
        for chunk in 0..QK_K / 128 {
            let ql = &x[64 * chunk..64 * chunk + 64];
            let qh = &x[128 + 32 * chunk..128 + 32 * chunk + 32];
            let out = &mut aux8[128 * chunk..128 * chunk + 128];
            for l in 0..32 {
                out[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                out[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                out[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                out[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 16 {
            let s = x[192 + j] as i8 as i32;
            lanes_16(&mut aux32, s, &aux8[16 * j..16 * j + 16], &y.qs[16 * j..16 * j + 16]);
        }
        let d = f16_at(x, 208) * y.d;
        sumf += d * isum8(&aux32) as f32;
    }
    sumf
}

/// IQ4_XS weights × Q8_K activations.
pub fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * IQ4_XS_BYTES);
    let mut sumf = 0.0f32;
    for (x, y) in w.as_chunks::<IQ4_XS_BYTES>().0.iter().zip(a) {
        let d4d8 = f16_at(x, 0) * y.d;
        let mut h = u16_at(x, 2);
        let mut isum = 0i32;
        for ib in (0..QK_K / 32).step_by(2) {
            let sl = x[4 + ib / 2];
            let ls1 = ((sl & 0xF) as u16 | ((h << 4) & 0x30)) as i32;
            let ls2 = ((sl >> 4) as u16 | ((h << 2) & 0x30)) as i32;
            h >>= 4;
            for (k, ls) in [(0, ls1 - 32), (1, ls2 - 32)] {
                let sub = ib + k;
                let qs = &x[8 + 16 * sub..8 + 16 * sub + 16];
                let q8 = &y.qs[32 * sub..32 * sub + 32];
                let mut sumi1 = 0i32;
                let mut sumi2 = 0i32;
                for j in 0..16 {
                    sumi1 += q8[j] as i32 * KVALUES_IQ4NL[(qs[j] & 0xF) as usize] as i32;
                    sumi2 += q8[j + 16] as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
                }
                isum += ls * (sumi1 + sumi2);
            }
        }
        sumf += d4d8 * isum as f32;
    }
    sumf
}

/// F32 × F32 in [`crate::order`]'s 32 lanes (products rounded, then added).
pub fn vec_dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    lanes32(a.len().min(b.len()), |i| a[i] * b[i])
}

/// F16 weights (raw LE bytes) × F16 activations: products of the widened values (exact in f32:
/// 11 × 11 significant bits) in [`crate::order`]'s 32 lanes.
pub fn vec_dot_f16(w: &[u8], a: &[f16]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * 2);
    lanes32(a.len().min(w.len() / 2), |i| {
        f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32() * a[i].to_f32()
    })
}

/// BF16 weights (raw LE bytes) × BF16 activations (products exact: 8 × 8 significant bits).
pub fn vec_dot_bf16(w: &[u8], a: &[bf16]) -> f32 {
    debug_assert_eq!(w.len(), a.len() * 2);
    lanes32(a.len().min(w.len() / 2), |i| {
        bf16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32() * a[i].to_f32()
    })
}

/// Product `i` (of `n`) into lane `i mod 32`, then the halving tree.
#[inline(always)]
fn lanes32(n: usize, product: impl Fn(usize) -> f32) -> f32 {
    let mut lanes = [0f32; 32];
    let whole = n - n % 32;
    for base in (0..whole).step_by(32) {
        for (j, lane) in lanes.iter_mut().enumerate() {
            *lane += product(base + j);
        }
    }
    for (j, lane) in lanes.iter_mut().enumerate().take(n - whole) {
        *lane += product(whole + j);
    }
    crate::order::reduce32(&lanes)
}

/// The exact sum of ggml's 8 integer lanes.
#[inline(always)]
fn isum8(aux32: &[i32; 8]) -> i32 {
    aux32.iter().sum()
}
