//! Architectures: what the metadata says about the shape of the forward pass.

use parallax_model::Model;
use parallax_source::ByteSource;

use crate::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchKind {
    /// Qwen2 / Qwen2.5: biases on q/k/v, NEOX RoPE, SwiGLU.
    Qwen2,
    /// Llama 2/3 and Mistral-style files: adjacent-pair RoPE, SwiGLU, no biases (used if present).
    Llama,
    /// Qwen3: per-head RMSNorm on q and k, NEOX RoPE.
    Qwen3,
    /// Gemma 3: scaled embeddings, q/k norms, post-attention and post-FFN norms, GELU-gated FFN,
    /// sliding-window layers with their own RoPE base.
    Gemma3,
}

pub const SUPPORTED: &[&str] = &["qwen2", "llama", "qwen3", "gemma3"];

/// How RoPE pairs dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Dimensions (2i, 2i+1) rotate together (ggml mode 0, Llama).
    Adjacent,
    /// Dimensions (i, i + d/2) rotate together (ggml mode NEOX: Qwen, Gemma).
    Neox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (ggml_gelu).
    GeluTanh,
}

#[derive(Debug, Clone)]
pub struct ArchConfig {
    pub kind: ArchKind,
    pub name: String,
    pub n_layers: u32,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    pub rope_theta: f32,
    /// Multiplies positions before rotation on global layers (1 / linear scaling factor).
    pub rope_freq_scale: f32,
    /// RoPE base of sliding-window layers (Gemma 3: 10 000), when they differ.
    pub rope_theta_swa: Option<f32>,
    /// Attention window of sliding-window layers, and which layers slide.
    pub sliding_window: Option<usize>,
    /// Gemma 3: every `n`-th layer (1-based) is global, the others slide.
    pub swa_pattern: Option<usize>,
    pub embed_scale: Option<f32>,
    /// Multiplies q·k before the softmax.
    pub attn_scale: f32,
    pub activation: Activation,
}

impl ArchConfig {
    pub fn from_model<S: ByteSource>(model: &Model<S>) -> Result<ArchConfig, EngineError> {
        let arch = model.architecture().unwrap_or("").to_string();
        let kind = match arch.as_str() {
            "qwen2" => ArchKind::Qwen2,
            "llama" | "mistral" => ArchKind::Llama,
            "qwen3" => ArchKind::Qwen3,
            "gemma3" => ArchKind::Gemma3,
            _ => {
                return Err(EngineError::UnsupportedArch { arch, supported: SUPPORTED.join(", ") })
            }
        };
        let h = model.hyperparameters();
        let need = |v: Option<u64>, what: &'static str| -> Result<usize, EngineError> {
            match v {
                Some(v) if v > 0 && v < (1 << 31) => Ok(v as usize),
                _ => Err(EngineError::MissingHyperparameter { what, arch: arch.clone() }),
            }
        };
        let n_layers = need(h.n_layers, "block count (number of layers)")? as u32;
        let n_embd = need(h.n_embd, "embedding length")?;
        let n_head = need(h.n_head, "attention head count")?;
        let n_head_kv = need(h.n_head_kv, "attention KV head count")?;
        let head_dim = need(h.head_dim, "attention head dimension")?;
        let n_ff = need(h.n_ff, "feed-forward length")?;
        let n_vocab = need(h.n_vocab, "vocabulary size")?;
        // Each layer has at least its norms and seven matrices: a block count the tensors cannot
        // back is refused here, before anything is sized by it.
        let n_tensors = model.tensors().len();
        if n_layers as usize > n_tensors / 9 {
            return Err(EngineError::TooFewTensors { n_layers, n_tensors });
        }
        if n_head % n_head_kv != 0 {
            return Err(EngineError::HeadsNotGrouped { n_head, n_head_kv });
        }
        let rms_eps = h.rms_eps.unwrap_or(1e-6);
        let rope_theta = h.rope_theta.unwrap_or(10_000.0);
        let scaling_factor = h.rope_scaling_factor.filter(|f| *f > 0.0);
        let rope_freq_scale = match h.rope_scaling_type.as_deref() {
            Some("linear") | None => scaling_factor.map(|f| 1.0 / f).unwrap_or(1.0),
            Some(other) => {
                return Err(EngineError::UnsupportedRopeScaling { kind: other.to_string() })
            }
        };
        let mut cfg = ArchConfig {
            kind,
            name: arch.clone(),
            n_layers,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_vocab,
            rms_eps,
            rope_style: RopeStyle::Neox,
            rope_theta,
            rope_freq_scale,
            rope_theta_swa: None,
            sliding_window: None,
            swa_pattern: None,
            embed_scale: None,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            activation: Activation::Silu,
        };
        match kind {
            ArchKind::Llama => cfg.rope_style = RopeStyle::Adjacent,
            ArchKind::Qwen2 | ArchKind::Qwen3 => {}
            ArchKind::Gemma3 => {
                // llama.cpp (llama-model.cpp, LLM_ARCH_GEMMA3): swa pattern 6, local RoPE base
                // 10 000 without scaling, embeddings scaled by sqrt(n_embd), q scaled by
                // 1/sqrt(head_dim), GELU-gated FFN.
                cfg.rope_theta_swa = Some(10_000.0);
                cfg.sliding_window = h.sliding_window.map(|w| w as usize);
                cfg.swa_pattern = Some(6);
                cfg.embed_scale = Some((n_embd as f32).sqrt());
                cfg.activation = Activation::GeluTanh;
            }
        }
        Ok(cfg)
    }

    /// Whether layer `il` attends within a sliding window.
    pub fn is_swa(&self, il: u32) -> bool {
        match (self.swa_pattern, self.sliding_window) {
            (Some(n), Some(_)) if n > 0 => (il as usize) % n < n - 1,
            _ => false,
        }
    }

    /// RoPE base and position scale of layer `il`.
    pub fn rope_for(&self, il: u32) -> (f32, f32) {
        match self.rope_theta_swa {
            Some(theta) if self.is_swa(il) => (theta, 1.0),
            _ => (self.rope_theta, self.rope_freq_scale),
        }
    }
}
