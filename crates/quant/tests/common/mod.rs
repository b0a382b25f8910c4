//! Helpers shared by the quant integration tests: hex decoding, a seeded RNG, random weight
//! blocks with sane scales, and the f64 reference dot product.
#![allow(dead_code)]

use half::f16;
use parallax_quant::{dequantize, Activation, GgmlType};

#[allow(unused_imports)] // each test binary uses its own part
pub use parallax_testkit::{f32s_le as f32s, unhex, SplitMix64 as Rng};

/// The draws these tests make beyond the kit's.
pub trait Draws {
    fn byte(&mut self) -> u8;
    /// Roughly normal (sum of 4 uniforms, centred), scaled.
    fn normalish(&mut self, scale: f64) -> f32;
}

impl Draws for Rng {
    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
    fn normalish(&mut self, scale: f64) -> f32 {
        let s: f64 = (0..4).map(|_| self.unit_f64()).sum::<f64>() - 2.0;
        (s * scale * 1.7) as f32
    }
}

/// Offsets of the f16 scale fields in each weight block, and which of them is a "min" that the
/// dequantized value subtracts or adds (for the magnitude bound, see `ref_dot`).
pub fn scale_fields(ty: GgmlType) -> (&'static [usize], Option<usize>) {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => (&[0], None),
        Q4_1 | Q5_1 => (&[0, 2], Some(2)),
        Q4_K | Q5_K => (&[0, 2], Some(2)),
        Q2_K => (&[80, 82], Some(82)),
        Q3_K => (&[108], None),
        Q6_K => (&[208], None),
        _ => (&[], None),
    }
}

/// `n_values` of random weights of type `ty`: random bytes, with every f16 scale replaced by a
/// finite value of magnitude 2^-10..2^-2 (random sign), like real model scales.
pub fn random_weights(rng: &mut Rng, ty: GgmlType, n_values: usize) -> Vec<u8> {
    let nbytes = ty.bytes_for(n_values as u64).expect("whole blocks") as usize;
    let mut w: Vec<u8> = (0..nbytes).map(|_| rng.byte()).collect();
    match ty {
        GgmlType::F32 => {
            for c in w.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.normalish(0.5).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in w.chunks_exact_mut(2) {
                c.copy_from_slice(&f16::from_f32(rng.normalish(0.5)).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in w.chunks_exact_mut(2) {
                c.copy_from_slice(&half::bf16::from_f32(rng.normalish(0.5)).to_le_bytes());
            }
        }
        _ => {
            let (offs, _) = scale_fields(ty);
            for blk in w.chunks_exact_mut(ty.type_size()) {
                for &o in offs {
                    let mag = 2f64.powf(-10.0 + 8.0 * rng.unit_f64());
                    let sign = if rng.unit_f64() < 0.3 { -1.0 } else { 1.0 };
                    blk[o..o + 2].copy_from_slice(&f16::from_f64(sign * mag).to_le_bytes());
                }
            }
        }
    }
    w
}

pub fn random_row(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normalish(1.0)).collect()
}

/// The activation's values as ggml would dequantize them, exactly (in f64).
pub fn activation_values(a: &Activation) -> Vec<f64> {
    match a {
        Activation::F32(v) => v.iter().map(|&x| x as f64).collect(),
        Activation::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        Activation::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
        Activation::Q8_0(b) => {
            b.iter().flat_map(|b| b.qs.map(|q| q as f64 * b.d.to_f64())).collect()
        }
        Activation::Q8_1(b) => {
            b.iter().flat_map(|b| b.qs.map(|q| q as f64 * b.d.to_f64())).collect()
        }
        Activation::Q8K(b) => b.iter().flat_map(|b| b.qs.map(|q| q as f64 * b.d as f64)).collect(),
    }
}

/// Reference for a fused dot: `Σ dequant(w)_i · dequant(a)_i` in f64, plus the magnitude
/// `Σ (|scale part_i| + |min part_i|)·|a_i|` the float error is relative to.
///
/// For types with a per-block min (`y = d·q ∓ m`), `|d·q| + |m| = max(|d·q − m|, |d·q + m|)`, so
/// the magnitude comes from a second dequantization with the min's sign bit flipped.
/// For Q8_1 activations ggml applies the weight min through the block's stored `s` (an f16, by
/// design), so the reference does too: it swaps `m·d_a·Σq` for `m·s`.
pub fn ref_dot(ty: GgmlType, w: &[u8], a: &Activation) -> (f64, f64) {
    let n = a.n_values();
    let mut wf = vec![0f32; n];
    dequantize(ty, w, &mut wf).expect("dequantize");
    let (_, min_off) = scale_fields(ty);
    let mut wflip = wf.clone();
    if let Some(off) = min_off {
        let mut w2 = w.to_vec();
        for blk in w2.chunks_exact_mut(ty.type_size()) {
            blk[off + 1] ^= 0x80;
        }
        dequantize(ty, &w2, &mut wflip).expect("dequantize flipped");
    }
    let av = activation_values(a);
    let mut sum = 0f64;
    let mut mag = 0f64;
    for i in 0..n {
        sum += wf[i] as f64 * av[i];
        mag += (wf[i].abs().max(wflip[i].abs()) as f64) * av[i].abs();
    }
    if let Activation::Q8_1(blocks) = a {
        for (blk, b) in w.chunks_exact(ty.type_size()).zip(blocks) {
            let m = f16::from_le_bytes([blk[2], blk[3]]).to_f64();
            let exact: f64 = b.qs.iter().map(|&q| q as f64).sum::<f64>() * b.d.to_f64();
            sum += m * (b.s.to_f64() - exact);
        }
    }
    (sum, mag)
}
