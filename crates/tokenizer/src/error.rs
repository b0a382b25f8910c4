//! Construction and decoding errors.

use std::fmt;

/// A tokenizer could not be built from its data, or a request named a token that does not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerError {
    kind: TokenizerErrorKind,
}

/// What went wrong; each variant carries the facts needed to find the bad datum.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TokenizerErrorKind {
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    UnsupportedModel { model: String, supported: &'static [&'static str] },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    UnsupportedPreTokenizer { pre: String, supported: &'static [&'static str] },
    /// A field the model kind needs is absent (e.g. merges for "gpt2").
    MissingField { field: &'static str, model: String },
    /// The vocabulary has no tokens.
    EmptyVocabulary,
    /// More entries than this crate accepts (ids are 32-bit signed in llama.cpp).
    TooMany { field: &'static str, count: usize, max: usize },
    /// A per-token array does not have one entry per token.
    LengthMismatch { field: &'static str, expected: usize, found: usize },
    /// A token's text is longer than this crate accepts.
    TokenTooLong { id: usize, len: usize, max: usize },
    /// Two tokens have the same text (llama.cpp refuses such a vocabulary too).
    DuplicateToken { text: String, first: usize, second: usize },
    /// A score is NaN; scores order SentencePiece merges and must be comparable.
    InvalidScore { id: usize, value: f32 },
    /// A merge rule is not "left right".
    MalformedMerge { index: usize, merge: String },
    /// A merge rule names a piece that is not in the vocabulary.
    MergeUnknownToken { index: usize, merge: String, piece: String },
    /// A special-token id (bos, eos, unk, pad) is not a token of the vocabulary.
    SpecialTokenOutOfRange { field: &'static str, id: u32, n_tokens: usize },
    /// The metadata asks to add a special token the vocabulary does not define.
    MissingSpecialToken { field: &'static str, because: &'static str },
    /// A token id passed to a lookup or to `decode` is not in the vocabulary.
    UnknownTokenId { id: u32, n_tokens: usize },
}

impl TokenizerError {
    pub(crate) fn new(kind: TokenizerErrorKind) -> Self {
        TokenizerError { kind }
    }

    pub fn kind(&self) -> &TokenizerErrorKind {
        &self.kind
    }
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TokenizerErrorKind::*;
        match &self.kind {
            UnsupportedModel { model, supported } => write!(
                f,
                "unsupported tokenizer model {model:?} (tokenizer.ggml.model); supported: {}",
                supported.join(", ")
            ),
            UnsupportedPreTokenizer { pre, supported } => write!(
                f,
                "unsupported pre-tokenizer {pre:?} (tokenizer.ggml.pre); supported: {}",
                supported.join(", ")
            ),
            MissingField { field, model } => {
                write!(f, "tokenizer model {model:?} needs {field}, which is missing")
            }
            EmptyVocabulary => write!(f, "tokenizer.ggml.tokens is empty"),
            TooMany { field, count, max } => {
                write!(f, "{field} has {count} entries; at most {max} are accepted")
            }
            LengthMismatch { field, expected, found } => {
                write!(f, "{field} has {found} entries but the vocabulary has {expected} tokens")
            }
            TokenTooLong { id, len, max } => {
                write!(f, "token {id} is {len} bytes long; at most {max} are accepted")
            }
            DuplicateToken { text, first, second } => {
                write!(f, "tokens {first} and {second} have the same text {text:?}")
            }
            InvalidScore { id, value } => write!(f, "token {id} has score {value}"),
            MalformedMerge { index, merge } => {
                write!(f, "merge {index} ({merge:?}) is not two pieces separated by a space")
            }
            MergeUnknownToken { index, merge, piece } => write!(
                f,
                "merge {index} ({merge:?}) names {piece:?}, which is not in the vocabulary"
            ),
            SpecialTokenOutOfRange { field, id, n_tokens } => {
                write!(f, "{field} = {id} is not a token id (the vocabulary has {n_tokens} tokens)")
            }
            MissingSpecialToken { field, because } => {
                write!(f, "{because}, but {field} is not set")
            }
            UnknownTokenId { id, n_tokens } => {
                write!(f, "token id {id} is out of range (the vocabulary has {n_tokens} tokens)")
            }
        }
    }
}

impl std::error::Error for TokenizerError {}
