//! APR's own quantized formats, APR-Q4 and APR-Q8, turned into f32.
//!
//! They live here rather than in `parallax-quant` because they are not GGML formats: no
//! llama.cpp kernel reads them, and only APR files carry them. Layouts follow upstream's writer
//! (`add_q4_tensor`, `add_q8_tensor`): see [`crate::TensorType`].

use half::f16;

use crate::dtype::{APR_Q4_BLOCK, APR_Q4_BLOCK_BYTES};

/// Dequantize `n` APR-Q4 values from whole blocks. `bytes` must hold exactly `ceil(n/32)` blocks
/// of 18 bytes; otherwise `None`.
pub fn dequantize_apr_q4(bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    let blocks = (n as u64).div_ceil(APR_Q4_BLOCK);
    if bytes.len() as u64 != blocks.checked_mul(APR_Q4_BLOCK_BYTES)? {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for block in bytes.chunks_exact(APR_Q4_BLOCK_BYTES as usize) {
        let scale = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        for &byte in &block[2..] {
            // Even value index in the low nibble, odd in the high one.
            out.push(((byte & 0x0f) as i32 - 8) as f32 * scale);
            out.push(((byte >> 4) as i32 - 8) as f32 * scale);
        }
    }
    // The last block may be partial: its unused nibbles are padding.
    out.truncate(n);
    Some(out)
}

/// Dequantize a whole APR-Q8 payload: an f32 scale, then `n` i8 values. An empty tensor has an
/// empty payload. `None` when the length is not `4 + n` (or 0 for `n == 0`).
pub fn dequantize_apr_q8(bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    if n == 0 {
        return bytes.is_empty().then(Vec::new);
    }
    if bytes.len() != n.checked_add(4)? {
        return None;
    }
    let scale = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Some(dequantize_apr_q8_values(scale, &bytes[4..]))
}

/// Dequantize APR-Q8 values given the tensor's scale (for reading a few rows).
pub fn dequantize_apr_q8_values(scale: f32, qs: &[u8]) -> Vec<f32> {
    qs.iter().map(|&q| q as i8 as f32 * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_nibble_order_and_partial_block() {
        // Scale 0.5 (f16 0x3800); byte 0 = 0x9_7: value 0 from low nibble 7 -> -0.5,
        // value 1 from high nibble 9 -> +0.5.
        let mut block = vec![0x00, 0x38, 0x97];
        block.extend(std::iter::repeat_n(0x8f, 15)); // low 15 -> 3.5, high 8 -> 0
        let v = dequantize_apr_q4(&block, 32).unwrap();
        assert_eq!(&v[..4], &[-0.5, 0.5, 3.5, 0.0]);
        // 3 values still take one whole block.
        assert_eq!(dequantize_apr_q4(&block, 3).unwrap(), vec![-0.5, 0.5, 3.5]);
        assert!(dequantize_apr_q4(&block, 33).is_none());
        assert!(dequantize_apr_q4(&block[..17], 32).is_none());
    }

    #[test]
    fn q8_scale_prefix() {
        let mut b = 0.25f32.to_le_bytes().to_vec();
        b.extend([0x7f, 0x81, 0x00]);
        assert_eq!(dequantize_apr_q8(&b, 3).unwrap(), vec![31.75, -31.75, 0.0]);
        assert!(dequantize_apr_q8(&b, 4).is_none());
        assert_eq!(dequantize_apr_q8(&[], 0).unwrap(), Vec::<f32>::new());
        assert!(dequantize_apr_q8(&b, 0).is_none());
    }
}
