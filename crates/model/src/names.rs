//! Tensor roles: one name for each tensor whatever the writer called it.
//!
//! The canonical name is llama.cpp's GGUF name (`blk.3.ffn_gate.weight`). Hugging Face style
//! names, as written by upstream's `apr import` (`model.layers.3.mlp.gate_proj.weight`), map onto
//! it. The mapping of the HF layer norms depends on the architecture: Gemma 3 has four norms per
//! layer where Llama/Qwen have two.

use serde::Serialize;

/// What a tensor is for, independent of its name in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    TokenEmbd,
    Output,
    OutputNorm,
    /// Rotary-embedding frequency factors (llama3-style rope scaling), when present.
    RopeFreqs,
    Layer {
        layer: u32,
        kind: LayerTensor,
        param: Param,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    Weight,
    Bias,
}

/// The per-layer tensors Parallax knows, named after their GGUF suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerTensor {
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    PostAttentionNorm,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    PostFfwNorm,
}

impl LayerTensor {
    const ALL: [(LayerTensor, &'static str); 13] = [
        (LayerTensor::AttnNorm, "attn_norm"),
        (LayerTensor::AttnQ, "attn_q"),
        (LayerTensor::AttnK, "attn_k"),
        (LayerTensor::AttnV, "attn_v"),
        (LayerTensor::AttnOutput, "attn_output"),
        (LayerTensor::AttnQNorm, "attn_q_norm"),
        (LayerTensor::AttnKNorm, "attn_k_norm"),
        (LayerTensor::PostAttentionNorm, "post_attention_norm"),
        (LayerTensor::FfnNorm, "ffn_norm"),
        (LayerTensor::FfnGate, "ffn_gate"),
        (LayerTensor::FfnUp, "ffn_up"),
        (LayerTensor::FfnDown, "ffn_down"),
        (LayerTensor::PostFfwNorm, "post_ffw_norm"),
    ];

    /// The GGUF suffix (`ffn_gate`).
    pub fn gguf_name(self) -> &'static str {
        Self::ALL.iter().find(|(k, _)| *k == self).map(|(_, n)| *n).unwrap_or("?")
    }

    fn from_gguf_name(s: &str) -> Option<LayerTensor> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(k, _)| *k)
    }
}

impl Role {
    /// The canonical (GGUF) tensor name of this role.
    pub fn canonical_name(self) -> String {
        match self {
            Role::TokenEmbd => "token_embd.weight".into(),
            Role::Output => "output.weight".into(),
            Role::OutputNorm => "output_norm.weight".into(),
            Role::RopeFreqs => "rope_freqs.weight".into(),
            Role::Layer { layer, kind, param } => {
                let p = match param {
                    Param::Weight => "weight",
                    Param::Bias => "bias",
                };
                format!("blk.{layer}.{}.{p}", kind.gguf_name())
            }
        }
    }

    /// The role of a tensor named `name`, GGUF-style or HF-style; `arch` disambiguates the HF
    /// layer-norm names. `None` for tensors Parallax has no role for (they are still listed).
    pub fn from_name(name: &str, arch: &str) -> Option<Role> {
        Self::from_gguf_name(name).or_else(|| Self::from_hf_name(name, arch))
    }

    fn from_gguf_name(name: &str) -> Option<Role> {
        match name {
            "token_embd.weight" => return Some(Role::TokenEmbd),
            "output.weight" => return Some(Role::Output),
            "output_norm.weight" => return Some(Role::OutputNorm),
            "rope_freqs.weight" => return Some(Role::RopeFreqs),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, rest) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        let (kind, param) = rest.rsplit_once('.')?;
        Some(Role::Layer {
            layer,
            kind: LayerTensor::from_gguf_name(kind)?,
            param: parse_param(param)?,
        })
    }

    fn from_hf_name(name: &str, arch: &str) -> Option<Role> {
        match name {
            "model.embed_tokens.weight" => return Some(Role::TokenEmbd),
            "lm_head.weight" => return Some(Role::Output),
            "model.norm.weight" => return Some(Role::OutputNorm),
            _ => {}
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (layer, rest) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        let (module, param) = rest.rsplit_once('.')?;
        let gemma = arch.starts_with("gemma");
        use LayerTensor::*;
        let kind = match module {
            "input_layernorm" => AttnNorm,
            "self_attn.q_proj" => AttnQ,
            "self_attn.k_proj" => AttnK,
            "self_attn.v_proj" => AttnV,
            "self_attn.o_proj" => AttnOutput,
            "self_attn.q_norm" => AttnQNorm,
            "self_attn.k_norm" => AttnKNorm,
            // In Llama/Qwen the norm after attention is the FFN's input norm; Gemma has a
            // separate pre-FFN norm and normalizes the attention output itself.
            "post_attention_layernorm" if gemma => PostAttentionNorm,
            "post_attention_layernorm" => FfnNorm,
            "pre_feedforward_layernorm" => FfnNorm,
            "post_feedforward_layernorm" => PostFfwNorm,
            "mlp.gate_proj" => FfnGate,
            "mlp.up_proj" => FfnUp,
            "mlp.down_proj" => FfnDown,
            _ => return None,
        };
        Some(Role::Layer { layer, kind, param: parse_param(param)? })
    }
}

fn parse_layer(s: &str) -> Option<u32> {
    // Reject "+1", "01" and the like: a layer index is written plainly.
    if s.is_empty()
        || s.len() > 6
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn parse_param(s: &str) -> Option<Param> {
    match s {
        "weight" => Some(Param::Weight),
        "bias" => Some(Param::Bias),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, arch: &str, canonical: Option<&str>) {
        let got = Role::from_name(name, arch).map(|r| r.canonical_name());
        assert_eq!(got.as_deref(), canonical, "{name} ({arch})");
    }

    #[test]
    fn gguf_and_hf_names_share_roles() {
        check("blk.0.ffn_gate.weight", "qwen2", Some("blk.0.ffn_gate.weight"));
        check("model.layers.0.mlp.gate_proj.weight", "qwen2", Some("blk.0.ffn_gate.weight"));
        check("model.layers.27.self_attn.q_proj.bias", "qwen2", Some("blk.27.attn_q.bias"));
        check(
            "model.layers.3.post_attention_layernorm.weight",
            "qwen2",
            Some("blk.3.ffn_norm.weight"),
        );
        check(
            "model.layers.3.post_attention_layernorm.weight",
            "gemma3",
            Some("blk.3.post_attention_norm.weight"),
        );
        check(
            "model.layers.3.pre_feedforward_layernorm.weight",
            "gemma3",
            Some("blk.3.ffn_norm.weight"),
        );
        check(
            "model.layers.3.post_feedforward_layernorm.weight",
            "gemma3",
            Some("blk.3.post_ffw_norm.weight"),
        );
        check("model.layers.1.self_attn.k_norm.weight", "qwen3", Some("blk.1.attn_k_norm.weight"));
        check("model.embed_tokens.weight", "qwen2", Some("token_embd.weight"));
        check("lm_head.weight", "qwen2", Some("output.weight"));
        check("model.norm.weight", "llama", Some("output_norm.weight"));
        check("blk.12.post_ffw_norm.weight", "gemma3", Some("blk.12.post_ffw_norm.weight"));
    }

    #[test]
    fn odd_names_have_no_role() {
        check("blk.01.ffn_gate.weight", "qwen2", None);
        check("blk.x.ffn_gate.weight", "qwen2", None);
        check("blk.0.ffn_gate.scale", "qwen2", None);
        check("blk.0.something.weight", "qwen2", None);
        check("model.layers.0.mlp.gate_proj", "qwen2", None);
        check("", "qwen2", None);
        check("blk.99999999999.attn_q.weight", "qwen2", None);
    }
}
