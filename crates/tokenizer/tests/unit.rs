//! Behaviour on tiny hand-made vocabularies, where the expected ids follow from the rules.

use parallax_tokenizer::{Tokenizer, TokenizerConfig, TokenizerErrorKind as K};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bpe(pre: &str, tokens: &[&str], merges: &[&str]) -> TokenizerConfig {
    TokenizerConfig {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens: strings(tokens),
        merges: Some(strings(merges)),
        ..Default::default()
    }
}

fn spm(tokens: &[(&str, f32, i32)]) -> TokenizerConfig {
    TokenizerConfig {
        model: "llama".into(),
        tokens: tokens.iter().map(|t| t.0.to_string()).collect(),
        scores: Some(tokens.iter().map(|t| t.1).collect()),
        token_types: Some(tokens.iter().map(|t| t.2).collect()),
        ..Default::default()
    }
}

fn kind(cfg: TokenizerConfig) -> K {
    Tokenizer::new(cfg).expect_err("must be rejected").kind().clone()
}

// ---- BPE ----

const ABC: &[&str] = &["a", "b", "c", "ab", "bc", "abc"];

#[test]
fn bpe_merges_apply_by_rank_not_position() {
    let t = Tokenizer::new(bpe("qwen2", ABC, &["b c", "a b"])).unwrap();
    assert_eq!(t.encode("abc", false), [0, 4]); // "bc" ranks first, then nothing joins a+bc
    let t = Tokenizer::new(bpe("qwen2", ABC, &["a b", "b c"])).unwrap();
    assert_eq!(t.encode("abc", false), [3, 2]);
    let t = Tokenizer::new(bpe("qwen2", ABC, &["b c", "a b", "a bc"])).unwrap();
    assert_eq!(t.encode("abc", false), [5]);
}

#[test]
fn bpe_equal_ranks_merge_leftmost_first() {
    let t = Tokenizer::new(bpe("qwen2", &["a", "aa"], &["a a"])).unwrap();
    assert_eq!(t.encode("aaa", false), [1, 0]);
    assert_eq!(t.encode("aaaa", false), [1, 1]);
}

#[test]
fn bpe_is_byte_level() {
    // ' ' is byte-mapped to 'Ġ', '\n' to 'Ċ'; "é" is the two bytes C3 A9 -> "Ã" "©".
    let t = Tokenizer::new(bpe("qwen2", &["Ġ", "a", "Ġa", "Ċ", "Ã", "©", "Ã©"], &["Ġ a", "Ã ©"]))
        .unwrap();
    assert_eq!(t.encode(" a", false), [2]);
    assert_eq!(t.encode("\n", false), [3]);
    assert_eq!(t.encode("é", false), [6]);
    assert_eq!(t.decode(&[2, 3, 6]).unwrap(), " a\né");
    assert_eq!(t.token_piece(2).unwrap(), " a");
}

#[test]
fn bpe_drops_bytes_missing_from_the_vocabulary() {
    // llama.cpp emits nothing for a byte whose char is not a token.
    let t = Tokenizer::new(bpe("qwen2", &["a", "b"], &["a b"])).unwrap();
    assert_eq!(t.encode("azb", false), [0, 1]);
}

#[test]
fn llama3_takes_whole_word_tokens_without_merging() {
    // No merge path leads to "abc", but LLaMA-3 (ignore_merges) looks the word up first.
    let cfg = TokenizerConfig { bos_token_id: Some(0), ..bpe("llama-bpe", ABC, &["a b"]) };
    let t = Tokenizer::new(cfg.clone()).unwrap();
    assert_eq!(t.encode("abc", false), [5]);
    assert!(t.add_bos(), "llama-bpe adds BOS unless the metadata says otherwise");
    assert_eq!(t.encode("abc", true), [0, 5]);
    let t = Tokenizer::new(TokenizerConfig { pre: Some("qwen2".into()), ..cfg }).unwrap();
    assert_eq!(t.encode("abc", false), [3, 2]);
}

#[test]
fn bpe_user_defined_tokens_are_matched_literally_control_tokens_are_not() {
    let mut cfg = bpe("qwen2", &["<", "x", ">", "<x>", "<y>", "y"], &[]);
    cfg.token_types = Some(vec![1, 1, 1, 4, 3, 1]);
    let t = Tokenizer::new(cfg).unwrap();
    assert_eq!(t.encode("<x>", false), [3]);
    assert_eq!(t.encode("<y>", false), [0, 5, 2]);
    // Rendered when asked (piece), hidden in plain decode.
    assert_eq!(t.token_piece(4).unwrap(), "<y>");
    assert_eq!(t.decode(&[4, 3]).unwrap(), "<x>");
}

#[test]
fn forced_control_texts_are_not_matched_even_if_user_defined() {
    // llama.cpp promotes "<|im_end|>" (an end-of-generation marker) to control at load time.
    let mut cfg = bpe(
        "qwen2",
        &["<|im_end|>", "<", "|", "im", "_", "end", ">", "i", "m", "e", "n", "d"],
        &[],
    );
    cfg.token_types = Some(vec![4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    let t = Tokenizer::new(cfg).unwrap();
    assert_ne!(t.encode("<|im_end|>", false), [0]);
}

// ---- SentencePiece ----

fn small_spm() -> Vec<(&'static str, f32, i32)> {
    let mut v = vec![("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)];
    v.extend([("▁", -1.0, 1), ("a", -2.0, 1), ("b", -2.0, 1), ("c", -2.0, 1), ("▁a", -0.5, 1)]);
    v.extend([("ab", -3.0, 1), ("bc", -1.5, 1), ("<X>", 0.0, 4)]);
    v
}

fn byte_tokens() -> Vec<(String, f32, i32)> {
    (0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0, 6)).collect()
}

fn spm_with_bytes() -> TokenizerConfig {
    let mut cfg = spm(&small_spm());
    for (text, score, ty) in byte_tokens() {
        cfg.tokens.push(text);
        cfg.scores.as_mut().unwrap().push(score);
        cfg.token_types.as_mut().unwrap().push(ty);
    }
    cfg
}

#[test]
fn spm_merges_by_score_and_prefixes_a_space() {
    let t = Tokenizer::new(spm(&small_spm())).unwrap();
    // "abc": "bc" (-1.5) beats "ab" (-3.0). Default add_space_prefix: "▁abc" -> "▁a" first.
    assert_eq!(t.encode("abc", false), [7, 9]);
    assert_eq!(t.encode("abc", true), [1, 7, 9]);
    // llama_detokenize strips the prefixed space from the first token only; a leading BOS
    // (rendered as nothing) is that first token, so the space then stays.
    assert_eq!(t.decode(&t.encode("abc", false)).unwrap(), "abc");
    assert_eq!(t.decode(&t.encode("abc", true)).unwrap(), " abc");
    let t = Tokenizer::new(TokenizerConfig { add_space_prefix: Some(false), ..spm(&small_spm()) })
        .unwrap();
    assert_eq!(t.encode("abc", false), [4, 9]);
    assert_eq!(t.encode("a b", false), [4, 3, 5]);
}

#[test]
fn spm_falls_back_to_bytes() {
    let t = Tokenizer::new(TokenizerConfig { add_space_prefix: Some(false), ..spm_with_bytes() })
        .unwrap();
    let base = small_spm().len() as u32;
    // 'é' = C3 A9, neither a token.
    assert_eq!(t.encode("aé", false), [4, base + 0xC3, base + 0xA9]);
    assert_eq!(t.decode(&t.encode("aé", false)).unwrap(), "aé");
    assert_eq!(t.token_piece_bytes(base + 0xC3, true).unwrap(), [0xC3]);
    // Without byte tokens a missing byte becomes <unk>.
    let t = Tokenizer::new(TokenizerConfig { add_space_prefix: Some(false), ..spm(&small_spm()) })
        .unwrap();
    assert_eq!(t.encode("é", false), [0, 0]);
}

#[test]
fn spm_space_prefix_follows_literal_tokens() {
    let t = Tokenizer::new(spm(&small_spm())).unwrap();
    // "<X>" is user-defined: matched in text; the text after it gets a space prefix again.
    assert_eq!(t.encode("a<X>a", false), [7, 10, 7]);
}

// ---- errors ----

#[test]
fn rejects_unsupported_model_and_pre_tokenizer_naming_what_is_supported() {
    let e = Tokenizer::new(TokenizerConfig {
        model: "bert".into(),
        tokens: strings(&["a"]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e.kind(), K::UnsupportedModel { model, .. } if model == "bert"));
    assert!(e.to_string().contains("gpt2") && e.to_string().contains("llama"), "{e}");
    let e = Tokenizer::new(bpe("starcoder", &["a"], &[])).unwrap_err();
    assert!(matches!(e.kind(), K::UnsupportedPreTokenizer { pre, .. } if pre == "starcoder"));
    assert!(e.to_string().contains("qwen2") && e.to_string().contains("llama-bpe"), "{e}");
}

#[test]
fn rejects_inconsistent_data() {
    assert_eq!(kind(bpe("qwen2", &[], &[])), K::EmptyVocabulary);
    let mut c = bpe("qwen2", ABC, &[]);
    c.token_types = Some(vec![1; 5]);
    assert_eq!(
        kind(c),
        K::LengthMismatch { field: "tokenizer.ggml.token_type", expected: 6, found: 5 }
    );
    let mut c = spm(&small_spm());
    c.scores.as_mut().unwrap().push(0.0);
    assert!(matches!(kind(c), K::LengthMismatch { field: "tokenizer.ggml.scores", .. }));
    let mut c = spm(&small_spm());
    c.scores.as_mut().unwrap()[4] = f32::NAN;
    assert!(matches!(kind(c), K::InvalidScore { id: 4, .. }));
    assert!(matches!(
        kind(bpe("qwen2", &["a", "b", "a"], &[])),
        K::DuplicateToken { first: 0, second: 2, .. }
    ));
    assert!(matches!(kind(bpe("qwen2", ABC, &["a b", "abc"])), K::MalformedMerge { index: 1, .. }));
    assert!(
        matches!(kind(bpe("qwen2", ABC, &["a z"])), K::MergeUnknownToken { index: 0, piece, .. } if piece == "z")
    );
    let c = TokenizerConfig { merges: None, ..bpe("qwen2", ABC, &[]) };
    assert!(matches!(kind(c), K::MissingField { field: "tokenizer.ggml.merges", .. }));
}

#[test]
fn rejects_bad_special_tokens() {
    let c = TokenizerConfig { bos_token_id: Some(6), ..bpe("qwen2", ABC, &[]) };
    assert_eq!(
        kind(c),
        K::SpecialTokenOutOfRange { field: "tokenizer.ggml.bos_token_id", id: 6, n_tokens: 6 }
    );
    // gpt2's default BOS (11) is outside this vocabulary, so adding BOS is impossible.
    let c = TokenizerConfig { add_bos_token: Some(true), ..bpe("qwen2", ABC, &[]) };
    assert!(matches!(kind(c), K::MissingSpecialToken { field: "tokenizer.ggml.bos_token_id", .. }));
}

#[test]
fn lookups_of_unknown_ids_are_errors() {
    let t = Tokenizer::new(bpe("qwen2", ABC, &[])).unwrap();
    assert_eq!(t.decode(&[0, 99]).unwrap_err().kind(), &K::UnknownTokenId { id: 99, n_tokens: 6 });
    assert!(t.token_piece(6).is_err());
    assert_eq!(t.token_text(6), None);
}

#[test]
fn empty_tokens_are_renamed_like_llama_cpp() {
    let t = Tokenizer::new(bpe("qwen2", &["a", "", ""], &[])).unwrap();
    assert_eq!(t.token_text(1), Some("[EMPTY_1]"));
    assert_eq!(t.token_id("[EMPTY_2]"), Some(2));
}
