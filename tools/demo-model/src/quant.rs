//! Plain weight quantizers for the demo model: Q4_K, Q6_K and Q8_0 in ggml's block layouts.
//!
//! These are demo tooling, not the product: they pick scales from each block's range (no
//! error-minimising search like ggml's `make_qkx2_quants`), which is enough for synthetic
//! weights. Only `+ − × ÷`, `round` and f16 rounding are used, all exactly specified by IEEE 754,
//! so the bytes are the same on every platform (the committed file is compared byte for byte).
//!
//! Each quantizer also returns the values its bytes decode to, computed with ggml's own order
//! of operations; the unit tests require the product's dequantizer to give exactly those, which
//! is what proves the byte layout.

use half::f16;

use crate::DemoError;

/// Values per k-quant super-block.
pub const QK_K: usize = 256;
/// Values per Q8_0 block.
pub const QK8_0: usize = 32;
pub const Q4_K_BYTES: usize = 144;
pub const Q6_K_BYTES: usize = 210;
pub const Q8_0_BYTES: usize = 34;

/// Quantized bytes and the f32 values they decode to.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub bytes: Vec<u8>,
    pub decoded: Vec<f32>,
}

fn whole_blocks(what: &str, values: &[f32], block: usize) -> Result<usize, DemoError> {
    if !values.len().is_multiple_of(block) || values.is_empty() {
        return Err(DemoError::new(format!(
            "{what} needs a non-empty multiple of {block} values, got {}",
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(DemoError::new(format!("{what}: value {i} is not finite")));
    }
    Ok(values.len() / block)
}

/// Rounds a block scale to f16 (as the file stores it) and back; refuses one f16 cannot hold.
fn to_f16(what: &str, x: f32) -> Result<(f16, f32), DemoError> {
    let h = f16::from_f32(x);
    if !h.is_finite() {
        return Err(DemoError::new(format!("{what}: block scale {x} does not fit in an f16")));
    }
    Ok((h, h.to_f32()))
}

/// `round(x / step)` clamped to `lo..=hi`; 0 when the step is 0 (an all-zero group).
fn level(x: f32, step: f32, lo: i32, hi: i32) -> i32 {
    if step > 0.0 {
        ((x / step).round() as i32).clamp(lo, hi)
    } else {
        0
    }
}

/// Q4_K: per 256 values `d: f16`, `dmin: f16`, 12 bytes packing eight 6-bit sub-block scales
/// and eight 6-bit mins, then 128 bytes of 4-bit levels where each 64-value chunk keeps its
/// first 32 values in the low nibbles and the next 32 in the high nibbles.
/// Value = `d·scale_j · q − dmin·min_j`.
pub fn quantize_q4_k(values: &[f32]) -> Result<Quantized, DemoError> {
    let n_blocks = whole_blocks("Q4_K", values, QK_K)?;
    let mut bytes = Vec::with_capacity(n_blocks * Q4_K_BYTES);
    let mut decoded = Vec::with_capacity(values.len());
    for x in values.chunks_exact(QK_K) {
        // Per 32-value sub-block: the step that spans [min(0, lo), hi] in 15 steps, and the
        // offset that lifts the lowest value to level 0 (never negative, as ggml's format needs).
        let mut steps = [0f32; 8];
        let mut offsets = [0f32; 8];
        for (j, sub) in x.chunks_exact(32).enumerate() {
            let lo = sub.iter().copied().fold(0f32, f32::min);
            let hi = sub.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            steps[j] = (hi - lo) / 15.0;
            offsets[j] = -lo;
        }
        let (d16, d) = to_f16("Q4_K", steps.iter().copied().fold(0f32, f32::max) / 63.0)?;
        let (dmin16, dmin) = to_f16("Q4_K", offsets.iter().copied().fold(0f32, f32::max) / 63.0)?;
        let mut sc = [0u8; 8];
        let mut mn = [0u8; 8];
        for j in 0..8 {
            sc[j] = level(steps[j], d, 0, 63) as u8;
            mn[j] = level(offsets[j], dmin, 0, 63) as u8;
        }
        bytes.extend_from_slice(&d16.to_le_bytes());
        bytes.extend_from_slice(&dmin16.to_le_bytes());
        bytes.extend_from_slice(&pack_scales_k4(&sc, &mn));
        let mut q = [0u8; QK_K];
        let mut y = [0f32; QK_K];
        for j in 0..8 {
            // ggml rounds d·scale and dmin·min to f32 first, then computes d1·q − m1.
            let d1 = d * sc[j] as f32;
            let m1 = dmin * mn[j] as f32;
            for i in 32 * j..32 * (j + 1) {
                let l = level(x[i] + m1, d1, 0, 15);
                q[i] = l as u8;
                y[i] = d1 * l as f32 - m1;
            }
        }
        for chunk in 0..4 {
            let base = 64 * chunk;
            for l in 0..32 {
                bytes.push(q[base + l] | (q[base + 32 + l] << 4));
            }
        }
        decoded.extend_from_slice(&y);
    }
    Ok(Quantized { bytes, decoded })
}

/// ggml's 12-byte packing of eight 6-bit scales and mins (`get_scale_min_k4` reads it):
/// sub-blocks 0..4 keep their low 6 bits in bytes 0..4 (scales) and 4..8 (mins); sub-blocks
/// 4..8 keep their low 4 bits in the nibbles of bytes 8..12 and their top 2 bits in the top
/// bits of bytes 0..8.
fn pack_scales_k4(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..4 {
        out[j] = sc[j] & 63;
        out[j + 4] = mn[j] & 63;
    }
    for j in 4..8 {
        out[j + 4] = (sc[j] & 0x0F) | ((mn[j] & 0x0F) << 4);
        out[j - 4] |= (sc[j] >> 4) << 6;
        out[j] |= (mn[j] >> 4) << 6;
    }
    out
}

/// Q6_K: per 256 values `ql[128]` (low 4 bits), `qh[64]` (high 2 bits), sixteen `i8` scales
/// (one per 16 values), `d: f16`. Value = `d·scale · (q − 32)`, q in 0..64.
pub fn quantize_q6_k(values: &[f32]) -> Result<Quantized, DemoError> {
    let n_blocks = whole_blocks("Q6_K", values, QK_K)?;
    let mut bytes = Vec::with_capacity(n_blocks * Q6_K_BYTES);
    let mut decoded = Vec::with_capacity(values.len());
    for x in values.chunks_exact(QK_K) {
        let mut steps = [0f32; 16];
        for (g, group) in x.chunks_exact(16).enumerate() {
            steps[g] = group.iter().fold(0f32, |a, v| a.max(v.abs())) / 31.0;
        }
        let (d16, d) = to_f16("Q6_K", steps.iter().copied().fold(0f32, f32::max) / 127.0)?;
        let mut sc = [0i8; 16];
        for g in 0..16 {
            sc[g] = level(steps[g], d, 0, 127) as i8;
        }
        // Levels biased by 32 (0..64), and what they decode to: (d·scale)·(q − 32) as ggml.
        let mut q = [0u8; QK_K];
        let mut y = [0f32; QK_K];
        for i in 0..QK_K {
            let ds = d * sc[i / 16] as f32;
            let l = level(x[i], ds, -32, 31);
            q[i] = (l + 32) as u8;
            y[i] = ds * l as f32;
        }
        // Each 128-value half: ql bytes 0..32 hold values 0..32 (low nibble) and 64..96 (high),
        // bytes 32..64 hold 32..64 and 96..128; qh byte l holds bits 4..6 of values l, l+32,
        // l+64, l+96 in its bit pairs 0, 2, 4, 6.
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for half in 0..2 {
            let v = &q[128 * half..128 * (half + 1)];
            let (ql, qh) =
                (&mut ql[64 * half..64 * (half + 1)], &mut qh[32 * half..32 * (half + 1)]);
            for l in 0..32 {
                ql[l] = (v[l] & 0x0F) | ((v[l + 64] & 0x0F) << 4);
                ql[l + 32] = (v[l + 32] & 0x0F) | ((v[l + 96] & 0x0F) << 4);
                qh[l] = (v[l] >> 4)
                    | ((v[l + 32] >> 4) << 2)
                    | ((v[l + 64] >> 4) << 4)
                    | ((v[l + 96] >> 4) << 6);
            }
        }
        bytes.extend_from_slice(&ql);
        bytes.extend_from_slice(&qh);
        bytes.extend(sc.iter().map(|&s| s as u8));
        bytes.extend_from_slice(&d16.to_le_bytes());
        decoded.extend_from_slice(&y);
    }
    Ok(Quantized { bytes, decoded })
}

/// Q8_0: per 32 values `d: f16` and 32 `i8` levels. Value = `d · q`.
pub fn quantize_q8_0(values: &[f32]) -> Result<Quantized, DemoError> {
    let n_blocks = whole_blocks("Q8_0", values, QK8_0)?;
    let mut bytes = Vec::with_capacity(n_blocks * Q8_0_BYTES);
    let mut decoded = Vec::with_capacity(values.len());
    for x in values.chunks_exact(QK8_0) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let (d16, d) = to_f16("Q8_0", amax / 127.0)?;
        bytes.extend_from_slice(&d16.to_le_bytes());
        for &v in x {
            let l = level(v, d, -127, 127);
            bytes.push(l as i8 as u8);
            decoded.push(l as f32 * d);
        }
    }
    Ok(Quantized { bytes, decoded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use parallax_quant::{dequantize, GgmlType};

    /// Trained-net-like test data: Gaussian with per-block scale changes, an all-zero block,
    /// a one-signed block and a few outliers (what stresses scale and min choices).
    fn sample(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut v: Vec<f32> = (0..n)
            .map(|i| {
                let scale = 0.01 + 0.2 * ((i / 256) % 7) as f64;
                let mut x = rng.normal() * scale;
                if rng.uniform() < 0.01 {
                    x *= 6.0;
                }
                x as f32
            })
            .collect();
        v[256..512].fill(0.0);
        for x in &mut v[512..768] {
            *x = x.abs() + 0.3;
        }
        v
    }

    fn check(ty: GgmlType, q: &Quantized, src: &[f32], block: usize, max_rel_rms: f64) {
        assert_eq!(q.bytes.len() as u64, ty.bytes_for(src.len() as u64).unwrap());
        let mut out = vec![0f32; src.len()];
        dequantize(ty, &q.bytes, &mut out).unwrap();
        // Layout: the product's bit-exact dequantizer reads back exactly what was meant.
        for (i, (a, b)) in out.iter().zip(&q.decoded).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{ty}: value {i} decodes to {a}, meant {b}");
        }
        // Error: per block, the RMS error is a small fraction of the block's spread, and no
        // value is off by more than a few steps of its block.
        for (b, (s, y)) in src.chunks(block).zip(out.chunks(block)).enumerate() {
            let amax = s.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
            let err2: f64 = s.iter().zip(y).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum();
            let rms = (err2 / block as f64).sqrt();
            assert!(
                rms <= max_rel_rms * amax + 1e-12,
                "{ty} block {b}: rms error {rms} vs absmax {amax}"
            );
            for (&a, &b) in s.iter().zip(y) {
                assert!(
                    ((a - b) as f64).abs() <= 0.25 * amax + 1e-12,
                    "{ty} block {b}: {a} decoded as {b}"
                );
            }
            if amax == 0.0 {
                assert!(y.iter().all(|&v| v == 0.0), "{ty}: an all-zero block must stay zero");
            }
        }
    }

    #[test]
    fn q4_k_round_trips_through_the_product_dequantizer() {
        let src = sample(256 * 16, 1);
        let q = quantize_q4_k(&src).unwrap();
        // 15 levels over the sub-block range: RMS ≈ range/15/√12 ≈ 4% of absmax at worst.
        check(GgmlType::Q4_K, &q, &src, 256, 0.06);
    }

    #[test]
    fn q6_k_round_trips_through_the_product_dequantizer() {
        let src = sample(256 * 16, 2);
        let q = quantize_q6_k(&src).unwrap();
        check(GgmlType::Q6_K, &q, &src, 256, 0.015);
    }

    #[test]
    fn q8_0_round_trips_through_the_product_dequantizer() {
        let src = sample(256 * 16, 3);
        let q = quantize_q8_0(&src).unwrap();
        check(GgmlType::Q8_0, &q, &src, 32, 0.004);
    }

    #[test]
    fn packed_scales_read_back_as_ggml_reads_them() {
        // get_scale_min_k4 from ggml, restated: the inverse of pack_scales_k4 for all 6-bit values.
        fn get(j: usize, q: &[u8; 12]) -> (u8, u8) {
            if j < 4 {
                (q[j] & 63, q[j + 4] & 63)
            } else {
                ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
            }
        }
        let mut rng = Rng::new(9);
        for _ in 0..1000 {
            let mut sc = [0u8; 8];
            let mut mn = [0u8; 8];
            for j in 0..8 {
                sc[j] = (rng.next_u64() % 64) as u8;
                mn[j] = (rng.next_u64() % 64) as u8;
            }
            let packed = pack_scales_k4(&sc, &mn);
            for j in 0..8 {
                assert_eq!(get(j, &packed), (sc[j], mn[j]));
            }
        }
    }

    #[test]
    fn refuses_partial_blocks_and_non_finite_values() {
        assert!(quantize_q4_k(&[0.0; 255]).is_err());
        assert!(quantize_q6_k(&[]).is_err());
        assert!(quantize_q8_0(&[0.0; 33]).is_err());
        let mut v = vec![0.0; 32];
        v[5] = f32::NAN;
        assert!(quantize_q8_0(&v).unwrap_err().to_string().contains("value 5"));
    }
}
