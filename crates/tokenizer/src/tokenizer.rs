//! The [`Tokenizer`]: vocabulary, special-token handling, and the encode/decode entry points.

use crate::bpe::{self, BpeScratch, BpeTables, Merge};
use crate::config::TokenizerConfig;
use crate::error::{TokenizerError, TokenizerErrorKind as K};
use crate::hashing::{map_with_capacity, Map, VocabIndex};
use crate::pretok::{PreTokenizer, SUPPORTED_PRE};
use crate::spm::{self, SpmTables};
use crate::unicode::{byte_to_char_table, char_to_byte, Class};

/// Limits on the data a tokenizer accepts (vocabularies in use are ≤ 300k tokens).
pub const MAX_TOKENS: usize = 1 << 24;
pub const MAX_MERGES: usize = 1 << 24;
pub const MAX_TOKEN_BYTES: usize = 1 << 16;

const SUPPORTED_MODELS: &[&str] = &["gpt2", "llama"];

/// What a token is, from `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(t: i32) -> TokenType {
        match t {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

// llama.cpp's token attributes; a token may carry several after its load-time fix-ups.
const ATTR_UNKNOWN: u8 = 1 << 0;
const ATTR_UNUSED: u8 = 1 << 1;
const ATTR_NORMAL: u8 = 1 << 2;
const ATTR_CONTROL: u8 = 1 << 3;
const ATTR_USER_DEFINED: u8 = 1 << 4;
const ATTR_BYTE: u8 = 1 << 5;

fn attr_of(t: TokenType) -> u8 {
    match t {
        TokenType::Undefined => 0,
        TokenType::Normal => ATTR_NORMAL,
        TokenType::Unknown => ATTR_UNKNOWN,
        TokenType::Control => ATTR_CONTROL,
        TokenType::UserDefined => ATTR_USER_DEFINED,
        TokenType::Unused => ATTR_UNUSED,
        TokenType::Byte => ATTR_BYTE,
    }
}

/// Texts llama.cpp forces to "control" whatever the file says (end-of-generation and
/// fill-in-the-middle markers). Control tokens are never split out of text when special
/// tokens are not parsed, so this decides whether e.g. a user-defined `<|fim_pad|>` is matched.
const FORCED_CONTROL: &[&str] = &[
    // end of generation
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
    // fill in the middle
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// Texts llama.cpp forces to plain "user-defined" (gpt-oss channel markers).
const FORCED_USER_DEFINED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// Which algorithm a tokenizer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// GPT-2 byte-level BPE with the given pre-tokenizer.
    Bpe(PreTokenizer),
    /// SentencePiece (llama.cpp's "llama"/SPM vocabulary).
    SentencePiece,
}

/// A tokenizer equivalent to llama.cpp's `llama_tokenize(…, parse_special = false)`.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: TokenizerKind,
    /// LLaMA-3 style: a word that is itself a token skips merging.
    ignore_merges: bool,
    add_space_prefix: bool,
    tokens: Vec<String>,
    types: Vec<TokenType>,
    attrs: Vec<u8>,
    scores: Vec<f32>,
    /// Token text → id, over `tokens`.
    vocab: VocabIndex,
    merges: Map<(u32, u32), Merge>,
    byte_char: [char; 256],
    byte_token: [Option<u32>; 256],
    /// Tokens matched literally in raw text before tokenizing: user-defined (not control)
    /// tokens, longest text first.
    literal_tokens: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

enum Fragment {
    Text(usize, usize),
    Token(u32),
}

impl Tokenizer {
    /// Builds a tokenizer, checking every field; never panics on bad data.
    pub fn new(cfg: TokenizerConfig) -> Result<Tokenizer, TokenizerError> {
        let err = |k| Err(TokenizerError::new(k));
        let is_bpe = match cfg.model.as_str() {
            "gpt2" => true,
            "llama" => false,
            other => {
                return err(K::UnsupportedModel {
                    model: other.to_string(),
                    supported: SUPPORTED_MODELS,
                });
            }
        };
        let kind = if is_bpe {
            match PreTokenizer::from_name(cfg.pre.as_deref()) {
                Some(p) => TokenizerKind::Bpe(p),
                None => {
                    let pre = cfg.pre.clone().unwrap_or_default();
                    return err(K::UnsupportedPreTokenizer { pre, supported: SUPPORTED_PRE });
                }
            }
        } else {
            TokenizerKind::SentencePiece
        };
        let n = cfg.tokens.len();
        if n == 0 {
            return err(K::EmptyVocabulary);
        }
        if n > MAX_TOKENS {
            return err(K::TooMany { field: "tokenizer.ggml.tokens", count: n, max: MAX_TOKENS });
        }
        let check_len = |field: &'static str, found: usize| {
            if found == n {
                Ok(())
            } else {
                Err(TokenizerError::new(K::LengthMismatch { field, expected: n, found }))
            }
        };
        if let Some(t) = &cfg.token_types {
            check_len("tokenizer.ggml.token_type", t.len())?;
        }
        if let Some(s) = &cfg.scores {
            check_len("tokenizer.ggml.scores", s.len())?;
            if let Some((id, &value)) = s.iter().enumerate().find(|(_, v)| v.is_nan()) {
                return err(K::InvalidScore { id, value });
            }
        }

        let mut tokens = cfg.tokens;
        let mut vocab = VocabIndex::with_capacity(n);
        for i in 0..n {
            let text = &mut tokens[i];
            if text.len() > MAX_TOKEN_BYTES {
                return err(K::TokenTooLong { id: i, len: text.len(), max: MAX_TOKEN_BYTES });
            }
            if text.is_empty() {
                // llama.cpp renames empty tokens so that they stay distinct.
                *text = format!("[EMPTY_{i}]");
            }
            if let Err(first) = vocab.insert(&tokens, i as u32) {
                return err(K::DuplicateToken {
                    text: tokens[i].clone(),
                    first: first as usize,
                    second: i,
                });
            }
        }
        let token_id = |text: &str| vocab.get(&tokens, text);
        let types: Vec<TokenType> = match &cfg.token_types {
            Some(t) => t.iter().map(|&t| TokenType::from_gguf(t)).collect(),
            None => vec![TokenType::Normal; n],
        };
        let mut attrs: Vec<u8> = types.iter().map(|&t| attr_of(t)).collect();
        for text in FORCED_CONTROL {
            if let Some(id) = token_id(text) {
                attrs[id as usize] |= ATTR_CONTROL;
            }
        }
        for text in FORCED_USER_DEFINED {
            if let Some(id) = token_id(text) {
                attrs[id as usize] = ATTR_USER_DEFINED;
            }
        }
        let scores = cfg.scores.unwrap_or_else(|| vec![0.0; n]);

        // BPE merges: "left right", split at the first space after the first byte (a piece
        // may itself be a space in non-byte-level vocabularies). The first rule for a pair wins.
        let mut merges = map_with_capacity(0);
        if is_bpe {
            let Some(rules) = &cfg.merges else {
                return err(K::MissingField { field: "tokenizer.ggml.merges", model: cfg.model });
            };
            if rules.len() > MAX_MERGES {
                return err(K::TooMany {
                    field: "tokenizer.ggml.merges",
                    count: rules.len(),
                    max: MAX_MERGES,
                });
            }
            merges.reserve(rules.len());
            for (index, rule) in rules.iter().enumerate() {
                let split = rule.char_indices().skip(1).find(|&(_, c)| c == ' ').map(|(i, _)| i);
                let Some(sp) = split else {
                    return err(K::MalformedMerge { index, merge: rule.clone() });
                };
                let (left, right) = (&rule[..sp], &rule[sp + 1..]);
                let lookup = |piece: &str| {
                    token_id(piece).ok_or_else(|| {
                        TokenizerError::new(K::MergeUnknownToken {
                            index,
                            merge: rule.clone(),
                            piece: piece.to_string(),
                        })
                    })
                };
                let (l, r) = (lookup(left)?, lookup(right)?);
                let result = token_id(&format!("{left}{right}"));
                merges.entry((l, r)).or_insert(Merge { rank: index as u32, result });
            }
        }

        let byte_char = byte_to_char_table();
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            *slot = if is_bpe {
                token_id(byte_char[b].to_string().as_str())
            } else {
                token_id(format!("<0x{b:02X}>").as_str()).or_else(|| {
                    if b < 0x80 {
                        token_id((b as u8 as char).to_string().as_str())
                    } else {
                        None
                    }
                })
            };
        }

        // Special ids: llama.cpp's per-model defaults, dropped when outside the vocabulary;
        // ids given explicitly must be in range.
        let (def_bos, def_eos, def_unk) =
            if is_bpe { (Some(11), Some(11), None) } else { (Some(1), Some(2), Some(0)) };
        let special = |field: &'static str, given: Option<u32>, default: Option<u32>| match given {
            Some(id) if (id as usize) < n => Ok(Some(id)),
            Some(id) => {
                Err(TokenizerError::new(K::SpecialTokenOutOfRange { field, id, n_tokens: n }))
            }
            None => Ok(default.filter(|&d| (d as usize) < n)),
        };
        let bos = special("tokenizer.ggml.bos_token_id", cfg.bos_token_id, def_bos)?;
        let eos = special("tokenizer.ggml.eos_token_id", cfg.eos_token_id, def_eos)?;
        let unk = special("tokenizer.ggml.unknown_token_id", cfg.unk_token_id, def_unk)?;
        let pad = special("tokenizer.ggml.padding_token_id", cfg.pad_token_id, None)?;
        let default_add_bos = !is_bpe || kind == TokenizerKind::Bpe(PreTokenizer::Llama3);
        let add_bos = cfg.add_bos_token.unwrap_or(default_add_bos);
        let add_eos = cfg.add_eos_token.unwrap_or(false);
        if add_bos && bos.is_none() {
            return err(K::MissingSpecialToken {
                field: "tokenizer.ggml.bos_token_id",
                because: "add_bos_token is true",
            });
        }
        if add_eos && eos.is_none() {
            return err(K::MissingSpecialToken {
                field: "tokenizer.ggml.eos_token_id",
                because: "add_eos_token is true",
            });
        }
        let add_space_prefix = !is_bpe && cfg.add_space_prefix.unwrap_or(true);

        // Only user-defined tokens are matched in raw text when special tokens are not parsed.
        // Sorted longest first like llama.cpp (ties by id, where llama.cpp's order is unspecified).
        let mut literal_tokens: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                let a = attrs[id as usize];
                a & ATTR_USER_DEFINED != 0 && a & (ATTR_CONTROL | ATTR_UNKNOWN) == 0
            })
            .collect();
        literal_tokens.sort_by(|&a, &b| {
            tokens[b as usize].len().cmp(&tokens[a as usize].len()).then(a.cmp(&b))
        });

        Ok(Tokenizer {
            kind,
            ignore_merges: kind == TokenizerKind::Bpe(PreTokenizer::Llama3),
            add_space_prefix,
            tokens,
            types,
            attrs,
            scores,
            vocab,
            merges,
            byte_char,
            byte_token,
            literal_tokens,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            add_eos,
        })
    }

    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(…, add_special = true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(…, add_special = true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// The token's text as stored in the vocabulary (byte-level chars for BPE, `▁` for SPM).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }
    /// The id of a token by its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(&self.tokens, text)
    }

    /// Tokenizes `text` as llama.cpp's `llama_tokenize(vocab, text, add_special, parse_special = false)`:
    /// control tokens written in the text are plain text, user-defined tokens are matched
    /// literally, and `add_special` adds BOS/EOS as the metadata asks.
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.partition(text);
        match self.kind {
            TokenizerKind::Bpe(pre) => {
                let mut scratch = BpeScratch::default();
                for f in &fragments {
                    match *f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(a, b) => {
                            self.encode_bpe(pre, &text[a..b], &mut scratch, &mut out)
                        }
                    }
                }
            }
            TokenizerKind::SentencePiece => {
                // A space is prefixed to text that starts the input or follows a literal token.
                let mut prev_special = true;
                for f in &fragments {
                    match *f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(a, b) => {
                            let mut escaped = String::with_capacity((b - a) + 3);
                            if self.add_space_prefix && prev_special {
                                escaped.push('\u{2581}');
                            }
                            escaped.extend(text[a..b].chars().map(|c| {
                                if c == ' ' {
                                    '\u{2581}'
                                } else {
                                    c
                                }
                            }));
                            let tables = SpmTables {
                                vocab: &self.vocab,
                                tokens: &self.tokens,
                                scores: &self.scores,
                                byte_token: &self.byte_token,
                                unk: self.unk,
                            };
                            spm::tokenize(&tables, &escaped, &mut out);
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Splits raw text around literal (user-defined) tokens, longest token first.
    fn partition(&self, text: &str) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0, text.len()));
        for &id in &self.literal_tokens {
            let needle = self.tokens[id as usize].as_str();
            if !text.contains(needle) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Text(a, b) => {
                        let mut last = a;
                        for (i, _) in text[a..b].match_indices(needle) {
                            let m = a + i;
                            if m > last {
                                next.push(Fragment::Text(last, m));
                            }
                            next.push(Fragment::Token(id));
                            last = m + needle.len();
                        }
                        if last < b {
                            next.push(Fragment::Text(last, b));
                        }
                    }
                    tok => next.push(tok),
                }
            }
            frags = next;
        }
        frags
    }

    fn encode_bpe(
        &self,
        pre: PreTokenizer,
        text: &str,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) {
        let mut cps = Vec::with_capacity(text.len());
        let mut offsets = Vec::with_capacity(text.len() + 1);
        for (i, c) in text.char_indices() {
            cps.push(c);
            offsets.push(i);
        }
        offsets.push(text.len());
        let cls: Vec<Class> = cps.iter().map(|&c| Class::of(c)).collect();
        let mut lens = Vec::new();
        pre.split(&cps, &cls, &mut lens);
        let tables = BpeTables { merges: &self.merges, byte_token: &self.byte_token };
        let bytes = text.as_bytes();
        let mut at = 0;
        let mut encoded = String::new();
        for len in lens {
            let word = &bytes[offsets[at]..offsets[at + len]];
            at += len;
            if self.ignore_merges {
                encoded.clear();
                encoded.extend(word.iter().map(|&b| self.byte_char[b as usize]));
                if let Some(id) = self.token_id(encoded.as_str()) {
                    out.push(id);
                    continue;
                }
            }
            bpe::merge_word(&tables, word, scratch, out);
        }
    }

    /// The bytes token `id` stands for, as llama.cpp's `llama_token_to_piece(…, special)`:
    /// control and unknown tokens give their text only when `render_special`; unused and
    /// undefined tokens give nothing. Pieces of byte tokens may be partial UTF-8.
    pub fn token_piece_bytes(
        &self,
        id: u32,
        render_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Err(TokenizerError::new(K::UnknownTokenId { id, n_tokens: self.tokens.len() }));
        };
        let attr = self.attrs[id as usize];
        if attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 && !render_special {
            return Ok(Vec::new());
        }
        if attr & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER_DEFINED) != 0 {
            return Ok(text.as_bytes().to_vec());
        }
        if attr & ATTR_NORMAL != 0 {
            return Ok(normal_piece_bytes(matches!(self.kind, TokenizerKind::SentencePiece), text));
        }
        if attr & ATTR_BYTE != 0 {
            return Ok(byte_token_bytes(text));
        }
        Ok(Vec::new())
    }

    /// [`Self::token_piece_bytes`] with special tokens rendered, as (lossy) text.
    pub fn token_piece(&self, id: u32) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.token_piece_bytes(id, true)?).into_owned())
    }

    /// Concatenated pieces of `ids` as llama.cpp's `llama_detokenize(remove_special = false,
    /// unparse_special = false)`: control tokens (BOS, EOS, …) vanish, and the space a
    /// SentencePiece tokenizer prefixed is removed from the first piece. llama.cpp's optional
    /// `clean_spaces` pass (off for Qwen2 and SentencePiece) is not applied.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_piece_bytes(id, false)?;
            let skip = usize::from(i == 0 && self.add_space_prefix && piece.first() == Some(&b' '));
            bytes.extend_from_slice(&piece[skip..]);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The bytes a normal token's vocabulary string stands for: SentencePiece writes a space as
/// U+2581, byte-level BPE maps every byte to a printable char (a space is `Ġ`).
fn normal_piece_bytes(sentencepiece: bool, text: &str) -> Vec<u8> {
    if sentencepiece {
        return text.replace('\u{2581}', " ").into_bytes();
    }
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => bytes.push(b),
            None => {
                // llama.cpp's llama_decode_text marks chars outside the byte map so.
                bytes.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    bytes.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                bytes.extend_from_slice(text.as_bytes());
                bytes.push(b']');
            }
        }
    }
    bytes
}

/// A byte token's one byte (`<0x0A>`); a malformed one renders as its text rather than failing.
fn byte_token_bytes(text: &str) -> Vec<u8> {
    let hex = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok());
    match hex {
        Some(b) if text.len() == 6 && text.starts_with("<0x") && text.ends_with('>') => vec![b],
        _ => text.as_bytes().to_vec(),
    }
}

/// The text a vocabulary entry stands for, as [`Tokenizer::token_piece`] renders it (special
/// tokens as their text), from the entry alone: `model` is `tokenizer.ggml.model` ("gpt2":
/// byte-level BPE, "llama": SentencePiece) and `token_type` GGUF's type of the entry (`None`:
/// normal). For showing tokens to people without building a tokenizer (a BPE merge table of
/// 150k entries costs more than some runs); the bytes of a token that splits a UTF-8 character
/// are shown lossily.
pub fn vocab_entry_text(model: &str, text: &str, token_type: Option<i32>) -> String {
    let attr = attr_of(token_type.map_or(TokenType::Normal, TokenType::from_gguf));
    let bytes = if attr & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER_DEFINED) != 0 {
        text.as_bytes().to_vec()
    } else if attr & ATTR_NORMAL != 0 {
        normal_piece_bytes(model == "llama", text)
    } else if attr & ATTR_BYTE != 0 {
        byte_token_bytes(text)
    } else {
        Vec::new()
    };
    String::from_utf8_lossy(&bytes).into_owned()
}
