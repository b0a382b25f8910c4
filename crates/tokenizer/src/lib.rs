//! Text tokenizers that give the same token ids as llama.cpp.
//!
//! Owns [`Tokenizer`], built from the plain data of [`TokenizerConfig`] (the `tokenizer.ggml.*`
//! metadata of a GGUF or APR file): GPT-2 byte-level BPE with llama.cpp's pre-tokenizers
//! ("qwen2", "llama-bpe", "default", "gpt-2") and SentencePiece ("llama" vocabularies, e.g.
//! Gemma). `encode` equals `llama_tokenize(…, add_special, parse_special = false)`.
//!
//! **Knows nothing about file formats**: callers read the metadata and hand over vectors.
//! No I/O, no regex engine; code-point classes come from a generated Unicode 15.1 table (the
//! version llama.cpp's tables use), so the crate builds unchanged for wasm32. Its maps are keyed
//! by file contents and hashed with a secret ([`set_hash_seed`]: where std has no random source,
//! the host gives it), so a crafted vocabulary cannot make building them quadratic.

mod bpe;
mod config;
mod error;
mod hashing;
mod pretok;
mod spm;
mod tokenizer;
mod unicode;
mod unicode_tables;

pub use config::TokenizerConfig;
pub use error::{TokenizerError, TokenizerErrorKind};
pub use hashing::set_hash_seed;
pub use pretok::PreTokenizer;
pub use tokenizer::{
    vocab_entry_text, TokenType, Tokenizer, TokenizerKind, MAX_MERGES, MAX_TOKENS, MAX_TOKEN_BYTES,
};

/// Unicode version of the code-point class table.
pub const UNICODE_VERSION: &str = unicode_tables::UNICODE_VERSION;
