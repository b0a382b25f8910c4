//! The ops every path shares, in f32, written to follow ggml's CPU kernels operation for
//! operation (accumulation widths, RoPE angle recurrence), so the reference path differs from
//! llama.cpp only where the quantized matmuls make it.

use crate::arch::RopeStyle;

/// RMSNorm of each row of `x` (rows of `width`) times `weight`: ggml_rms_norm sums squares in
/// f64 (`ggml_float`), scales in f32, then ggml_mul applies the weight.
pub fn rms_norm(x: &[f32], width: usize, weight: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / width as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = (v * scale) * w;
        }
    }
    out
}

/// Add `bias` to every row.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

pub fn add_into(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Rotary position embedding in place on `x` = rows (tokens) × `n_heads` × `head_dim`, as
/// ggml_rope_ext with no YaRN: the angle of pair `i` is `p · freq_scale · base^(−2i/d)`, built
/// by ggml's running product `theta *= theta_scale` in f32.
pub fn rope(x: &mut [f32], positions: &[u32], n_heads: usize, head_dim: usize, base: f32, freq_scale: f32, style: RopeStyle) {
    let theta_scale = base.powf(-2.0 / head_dim as f32);
    let half = head_dim / 2;
    let mut cos = vec![0f32; half];
    let mut sin = vec![0f32; half];
    for (t, &p) in positions.iter().enumerate() {
        let mut theta = p as f32;
        for i in 0..half {
            let angle = freq_scale * theta;
            cos[i] = angle.cos();
            sin[i] = angle.sin();
            theta *= theta_scale;
        }
        let row = &mut x[t * n_heads * head_dim..(t + 1) * n_heads * head_dim];
        for head in row.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Causal multi-head attention with grouped KV heads over one sequence. `q` is tokens ×
/// (n_head·d), `k`/`v` tokens × (n_head_kv·d); returns tokens × (n_head·d) (heads concatenated).
/// Softmax as ggml_soft_max_ext: scaled scores, max subtracted, exp summed in f64.
///
/// With `f16_operands`, the two attention matmuls see what llama.cpp's CPU backend gives them
/// with its default F16 KV cache (no flash attention): K and V stored as f16, and each matmul's
/// other input (q, then the softmax probabilities) converted to f16, products summed in f32.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    scale: f32,
    window: Option<usize>,
    f16_operands: bool,
) -> Vec<f32> {
    let round = |x: &[f32]| -> Vec<f32> {
        if f16_operands {
            x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
        } else {
            x.to_vec()
        }
    };
    let (q, k, v) = (&round(q)[..], &round(k)[..], &round(v)[..]);
    let group = n_head / n_head_kv;
    let (qw, kw) = (n_head * head_dim, n_head_kv * head_dim);
    let mut out = vec![0f32; n_tokens * qw];
    let mut scores = vec![0f32; n_tokens];
    for h in 0..n_head {
        let kvh = h / group;
        for i in 0..n_tokens {
            let qi = &q[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
            // Keys visible from position i: causal, and within the window on sliding layers.
            let first = match window {
                Some(w) if w > 0 => (i + 1).saturating_sub(w),
                _ => 0,
            };
            let mut max = f32::NEG_INFINITY;
            for j in first..=i {
                let kj = &k[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
                let s = dot(qi, kj) * scale;
                scores[j] = s;
                max = max.max(s);
            }
            let mut sum = 0f64;
            for s in &mut scores[first..=i] {
                *s = (*s - max).exp();
                sum += *s as f64;
            }
            let inv = (1.0 / sum) as f32;
            let o = &mut out[i * qw + h * head_dim..i * qw + (h + 1) * head_dim];
            for j in first..=i {
                let p = scores[j] * inv;
                let p = if f16_operands { half::f16::from_f32(p).to_f32() } else { p };
                let vj = &v[j * kw + kvh * head_dim..j * kw + (kvh + 1) * head_dim];
                for (o, &x) in o.iter_mut().zip(vj) {
                    *o += p * x;
                }
            }
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// ggml_silu_f32.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation, computed in f32 (ggml_gelu_f32).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4;
    const GELU_COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// GELU as llama.cpp's CPU backend evaluates it (GGML_GELU_FP16): the input rounded to f16 and
/// looked up in a table of f16 results; 0 below −10 and the identity above 10.
pub fn gelu_tanh_f16_table(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let xh = half::f16::from_f32(x).to_f32();
        half::f16::from_f32(gelu_tanh(xh)).to_f32()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_rows() {
        let x = [3.0f32, 4.0, 0.0, 0.0];
        let out = rms_norm(&x, 2, &[1.0, 2.0], 1e-6);
        let s = 1.0 / (12.5f32 + 1e-6).sqrt();
        assert_eq!(out, vec![3.0 * s, 8.0 * s, 0.0, 0.0]);
    }

    #[test]
    fn rope_position_zero_is_identity_and_preserves_norm() {
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.7).collect();
        let orig = x.clone();
        rope(&mut x, &[0, 5], 2, 4, 10000.0, 1.0, RopeStyle::Neox);
        assert_eq!(&x[..8], &orig[..8]);
        let n0: f32 = orig[8..].iter().map(|v| v * v).sum();
        let n1: f32 = x[8..].iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-5);
        assert_ne!(&x[8..], &orig[8..]);
    }

    #[test]
    fn attention_first_token_sees_only_itself_and_window_limits() {
        // One head, d = 2, three tokens; v rows are distinct so the output tells which keys won.
        let q = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let k = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let v = [1.0, 0.0, 0.0, 1.0, 5.0, 5.0];
        let out = attention(&q, &k, &v, 3, 1, 1, 2, 1.0, None, false);
        assert_eq!(&out[..2], &[1.0, 0.0]);
        assert!((out[2] - 0.5).abs() < 1e-6 && (out[3] - 0.5).abs() < 1e-6);
        let windowed = attention(&q, &k, &v, 3, 1, 1, 2, 1.0, Some(1), false);
        assert_eq!(&windowed[4..], &[5.0, 5.0]);
    }

    #[test]
    fn activations() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(2.0) - 1.761_594_2).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
    }
}
