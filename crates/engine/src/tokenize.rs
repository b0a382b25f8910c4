//! Building the tokenizer from what the model file carries.

use parallax_model::Model;
use parallax_source::ByteSource;
use parallax_tokenizer::Tokenizer;

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
            return Ok(RunInput {
                tokens,
                text: None,
                pieces,
                sha256: None,
                other_sha256: Vec::new(),
            });
        }
        let Some(text) = text else {
            return Err(EngineError::NoPrompt);
        };
        let tokenizer = tokenizer_for(model)?;
        let tokens = tokenizer.encode(&text, true);
        let pieces =
            tokens.iter().map(|&id| tokenizer.token_text(id).unwrap_or("?").to_string()).collect();
        Ok(RunInput { tokens, text: Some(text), pieces, sha256: None, other_sha256: Vec::new() })
    }
}

/// The strings of `tokens` in the vocabulary the model carries: "?" for an id it lacks, nothing
/// when it carries none.
fn token_pieces<S: ByteSource>(model: &Model<S>, tokens: &[u32]) -> Vec<String> {
    let Some(texts) = model.token_texts(tokens) else { return Vec::new() };
    texts.into_iter().map(|s| s.unwrap_or("?").to_string()).collect()
}

/// The tokenizer described by the model's metadata ([`Model::tokenizer_config`]).
pub fn tokenizer_for<S: ByteSource>(model: &Model<S>) -> Result<Tokenizer, EngineError> {
    let cfg = model.tokenizer_config();
    if cfg.tokens.is_empty() {
        return Err(EngineError::Tokenizer {
            message: "the model carries no tokenizer vocabulary; pass token ids with --tokens"
                .into(),
        });
    }
    Tokenizer::new(cfg).map_err(|e| EngineError::Tokenizer { message: e.to_string() })
}
