//! Building the tokenizer from what the model file carries.

use parallax_model::Model;
use parallax_source::ByteSource;
use parallax_tokenizer::{Tokenizer, TokenizerConfig};

use crate::{EngineError, RunInput};

impl RunInput {
    /// The run's input from token ids (used as given when there are any) or else prompt text,
    /// tokenized with the model's own tokenizer (BOS/EOS as the model asks). Token pieces come
    /// from the tokenizer when the model carries one. The sha256 is left for the caller.
    pub fn from_prompt<S: ByteSource>(
        model: &Model<S>,
        text: Option<String>,
        tokens: Option<Vec<u32>>,
    ) -> Result<RunInput, EngineError> {
        if let Some(tokens) = tokens.filter(|t| !t.is_empty()) {
            // Token ids need no tokenizer, only the vocabulary for their pieces: building the
            // BPE merge table of a 150k vocabulary would cost more than some runs.
            let pieces = token_pieces(model, &tokens);
            return Ok(RunInput { tokens, text: None, pieces, sha256: None });
        }
        let Some(text) = text else {
            return Err(EngineError::BadOptions { message: "give a prompt or token ids".into() });
        };
        let tokenizer = tokenizer_for(model)?;
        let tokens = tokenizer.encode(&text, true);
        let pieces =
            tokens.iter().map(|&id| tokenizer.token_text(id).unwrap_or("?").to_string()).collect();
        Ok(RunInput { tokens, text: Some(text), pieces, sha256: None })
    }
}

/// The strings of `tokens` in the vocabulary the model carries (GGUF `tokenizer.ggml.tokens`,
/// APR `tokenizer.vocabulary`): "?" for an id it lacks, nothing when it carries none.
fn token_pieces<S: ByteSource>(model: &Model<S>, tokens: &[u32]) -> Vec<String> {
    let piece = |s: Option<&str>| s.unwrap_or("?").to_string();
    if let Some(g) = model.gguf() {
        let Some(vocab) = g.get_str_arr("tokenizer.ggml.tokens") else { return Vec::new() };
        return tokens
            .iter()
            .map(|&id| piece(vocab.get(id as usize).map(String::as_str)))
            .collect();
    }
    let Some(vocab) =
        model.apr().and_then(|a| a.metadata().get("tokenizer.vocabulary")?.as_array())
    else {
        return Vec::new();
    };
    tokens.iter().map(|&id| piece(vocab.get(id as usize).and_then(|v| v.as_str()))).collect()
}

/// The tokenizer described by the model's metadata (GGUF `tokenizer.ggml.*`, or APR
/// `tokenizer.*` as upstream's import writes it).
pub fn tokenizer_for<S: ByteSource>(model: &Model<S>) -> Result<Tokenizer, EngineError> {
    let cfg = if let Some(g) = model.gguf() {
        let strs = |k: &str| g.get_str_arr(k).map(|v| v.to_vec());
        TokenizerConfig {
            model: g.get_str("tokenizer.ggml.model").unwrap_or_default().to_string(),
            pre: g.get_str("tokenizer.ggml.pre").map(str::to_string),
            tokens: strs("tokenizer.ggml.tokens").unwrap_or_default(),
            token_types: g.get_arr("tokenizer.ggml.token_type").and_then(|a| a.to_i64s()).map(
                |v| {
                    v.into_iter()
                        .map(|x| x.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
                        .collect()
                },
            ),
            scores: g.get_arr("tokenizer.ggml.scores").and_then(|a| a.to_f32s()),
            merges: strs("tokenizer.ggml.merges"),
            bos_token_id: g.get_u32("tokenizer.ggml.bos_token_id"),
            eos_token_id: g.get_u32("tokenizer.ggml.eos_token_id"),
            unk_token_id: g.get_u32("tokenizer.ggml.unknown_token_id"),
            pad_token_id: g.get_u32("tokenizer.ggml.padding_token_id"),
            add_bos_token: g.get_bool("tokenizer.ggml.add_bos_token"),
            add_eos_token: g.get_bool("tokenizer.ggml.add_eos_token"),
            add_space_prefix: g.get_bool("tokenizer.ggml.add_space_prefix"),
        }
    } else if let Some(a) = model.apr() {
        let m = a.metadata();
        let strs = |k: &str| {
            m.get(k)
                .and_then(|v| v.as_array())
                .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        let id = |k: &str| m.get(k).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok());
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
        TokenizerConfig {
            model: text("tokenizer.model")
                .or_else(|| text("tokenizer.model_type"))
                .unwrap_or_default(),
            pre: text("tokenizer.pre_type").or_else(|| model.architecture().map(str::to_string)),
            tokens: strs("tokenizer.vocabulary").unwrap_or_default(),
            token_types: m
                .get("tokenizer.token_type")
                .and_then(|v| v.as_array())
                .map(|v| v.iter().map(|x| x.as_i64().unwrap_or(1) as i32).collect()),
            scores: m
                .get("tokenizer.scores")
                .and_then(|v| v.as_array())
                .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect()),
            merges: strs("tokenizer.merges"),
            bos_token_id: id("tokenizer.bos_token_id"),
            eos_token_id: id("tokenizer.eos_token_id"),
            ..Default::default()
        }
    } else {
        return Err(EngineError::Tokenizer { message: "the model carries no tokenizer".into() });
    };
    if cfg.tokens.is_empty() {
        return Err(EngineError::Tokenizer {
            message: "the model carries no tokenizer vocabulary; pass token ids with --tokens"
                .into(),
        });
    }
    Tokenizer::new(cfg).map_err(|e| EngineError::Tokenizer { message: e.to_string() })
}
