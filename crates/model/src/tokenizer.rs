//! The tokenizer's data as each format stores it: GGUF `tokenizer.ggml.*`, APR `tokenizer.*`
//! (as upstream's import writes it), mapped to one [`TokenizerConfig`].

use parallax_source::ByteSource;
use parallax_tokenizer::TokenizerConfig;

use crate::Model;

impl<S: ByteSource> Model<S> {
    /// The tokenizer the file describes. Its `tokens` are empty when the file carries no
    /// vocabulary.
    pub fn tokenizer_config(&self) -> TokenizerConfig {
        if let Some(g) = self.gguf() {
            let strs = |k: &str| g.get_str_arr(k).map(|v| v.to_vec());
            return TokenizerConfig {
                model: self.tokenizer_model(),
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
            };
        }
        let Some(a) = self.apr() else { return TokenizerConfig::default() };
        let m = a.metadata();
        let strs = |k: &str| {
            m.get(k)
                .and_then(|v| v.as_array())
                .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        let id = |k: &str| m.get(k).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok());
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
        TokenizerConfig {
            model: self.tokenizer_model(),
            pre: text("tokenizer.pre_type").or_else(|| self.architecture().map(str::to_string)),
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
    }

    /// The vocabulary's strings for `ids` (GGUF `tokenizer.ggml.tokens`, APR
    /// `tokenizer.vocabulary`), `None` for an id it lacks; `None` when the file carries no
    /// vocabulary. Reads no more than those entries: token ids need no tokenizer.
    pub fn token_texts(&self, ids: &[u32]) -> Option<Vec<Option<&str>>> {
        if let Some(g) = self.gguf() {
            let vocab = g.get_str_arr("tokenizer.ggml.tokens")?;
            return Some(ids.iter().map(|&id| vocab.get(id as usize)).collect());
        }
        let vocab = self.apr()?.metadata().get("tokenizer.vocabulary")?.as_array()?;
        Some(ids.iter().map(|&id| vocab.get(id as usize).and_then(|v| v.as_str())).collect())
    }

    /// What each of `ids` stands for as text, for people: llama.cpp's token piece with special
    /// tokens rendered (Qwen's `Ġis` and Gemma's `▁is` are " is", `<0x0A>` is a newline),
    /// `None` for an id the vocabulary lacks; `None` when the file carries no vocabulary. Reads
    /// only those entries and their types; builds no tokenizer.
    pub fn token_display_texts(&self, ids: &[u32]) -> Option<Vec<Option<String>>> {
        let raw = self.token_texts(ids)?;
        let model = self.tokenizer_model();
        let types: Option<Vec<i64>> = match self.gguf() {
            Some(g) => g.get_arr("tokenizer.ggml.token_type").map(|a| {
                ids.iter()
                    .map(|&id| a.get(id as usize).and_then(|v| v.as_i64()).unwrap_or(1))
                    .collect()
            }),
            None => {
                self.apr()?.metadata().get("tokenizer.token_type").and_then(|v| v.as_array()).map(
                    |a| {
                        ids.iter()
                            .map(|&id| a.get(id as usize).and_then(|v| v.as_i64()).unwrap_or(1))
                            .collect()
                    },
                )
            }
        };
        Some(
            raw.into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let ty =
                        types.as_ref().map(|t| t[i].clamp(i32::MIN as i64, i32::MAX as i64) as i32);
                    text.map(|t| parallax_tokenizer::vocab_entry_text(&model, t, ty))
                })
                .collect(),
        )
    }

    /// The tokenizer's kind as the file names it: GGUF `tokenizer.ggml.model`, APR
    /// `tokenizer.model` or `tokenizer.model_type` ("gpt2", "llama"); empty when it names none.
    fn tokenizer_model(&self) -> String {
        let name = match self.gguf() {
            Some(g) => g.get_str("tokenizer.ggml.model"),
            None => self.apr().and_then(|a| {
                let m = a.metadata();
                let text = |k: &str| m.get(k).and_then(|v| v.as_str());
                text("tokenizer.model").or_else(|| text("tokenizer.model_type"))
            }),
        };
        name.unwrap_or_default().to_string()
    }

    /// The model's own name: GGUF `general.name`, APR `name`.
    pub fn display_name(&self) -> Option<&str> {
        match self.gguf() {
            Some(g) => g.get_str("general.name"),
            None => self.apr()?.metadata().get("name")?.as_str(),
        }
    }
}
