//! The plain data a tokenizer is built from (what GGUF/APR metadata carry under `tokenizer.*`).

/// Tokenizer data, field by field as GGUF names them. Optional fields take llama.cpp's
/// defaults for the model kind when `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: pre-tokenizer name for BPE ("qwen2", "llama-bpe", "default", …).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: token texts, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte (anything else: undefined). `None`: every token is normal.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores`: SentencePiece piece scores. `None`: all 0.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges`: BPE merge rules "left right", highest priority first.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece only).
    pub add_space_prefix: Option<bool>,
}
