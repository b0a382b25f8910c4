//! Token ids of both shared models against goldens made by llama.cpp (see
//! tools/golden/gen_token_ids.py and the "reference" field of tests/golden/token_ids.json).

mod common;

use common::{config_from_gguf, real_model, GEMMA, QWEN};
use parallax_tokenizer::{PreTokenizer, Tokenizer, TokenizerKind};

struct Case {
    text: String,
    add_special: bool,
    ids: Vec<u32>,
}

fn golden_cases(model: &str) -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/token_ids.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read goldens"))
            .expect("parse goldens");
    json["models"][model]
        .as_array()
        .unwrap_or_else(|| panic!("no goldens for {model}"))
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").to_string(),
            add_special: c["add_special"].as_bool().expect("add_special"),
            ids: c["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_u64().expect("id") as u32)
                .collect(),
        })
        .collect()
}

fn load(model: &str) -> Option<Tokenizer> {
    let path = real_model(model)?;
    Some(Tokenizer::new(config_from_gguf(&path)).unwrap_or_else(|e| panic!("{model}: {e}")))
}

/// Every golden case must match exactly; the failure message lists each mismatch with the
/// pieces on both sides so the diverging word is visible.
fn check_goldens(model: &str) {
    let Some(tok) = load(model) else { return };
    let cases = golden_cases(model);
    assert!(cases.len() >= 100, "{model}: only {} golden cases", cases.len());
    let pieces = |ids: &[u32]| -> Vec<String> {
        ids.iter().map(|&i| tok.token_piece(i).unwrap_or_default()).collect()
    };
    let mut failures = Vec::new();
    for c in &cases {
        let got = tok.encode(&c.text, c.add_special);
        if got != c.ids {
            failures.push(format!(
                "text {:?} add_special={}\n  expected {:?} {:?}\n  got      {:?} {:?}",
                c.text,
                c.add_special,
                c.ids,
                pieces(&c.ids),
                got,
                pieces(&got)
            ));
        }
    }
    eprintln!("{model}: {}/{} golden cases match", cases.len() - failures.len(), cases.len());
    assert!(
        failures.is_empty(),
        "{model}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn qwen_matches_llama_cpp_goldens() {
    check_goldens(QWEN);
}

#[test]
fn gemma_matches_llama_cpp_goldens() {
    check_goldens(GEMMA);
}

#[test]
fn qwen_contract_prompt() {
    let Some(tok) = load(QWEN) else { return };
    assert_eq!(tok.kind(), TokenizerKind::Bpe(PreTokenizer::Qwen2));
    assert!(!tok.add_bos(), "Qwen2.5 metadata says add_bos_token = false");
    // The parity contract's prompt; BOS is not added even with add_special.
    assert_eq!(tok.encode("What is 2+2?", true), [3838, 374, 220, 17, 10, 17, 30]);
    assert_eq!(tok.encode("What is 2+2?", false), [3838, 374, 220, 17, 10, 17, 30]);
}

#[test]
fn gemma_metadata_is_honoured() {
    let Some(tok) = load(GEMMA) else { return };
    assert_eq!(tok.kind(), TokenizerKind::SentencePiece);
    assert_eq!((tok.bos(), tok.eos(), tok.unk(), tok.pad()), (Some(2), Some(1), Some(3), Some(0)));
    assert!(tok.add_bos() && !tok.add_eos());
    assert_eq!(tok.encode("", true), [2]);
    assert_eq!(tok.encode("", false), Vec::<u32>::new());
}

/// decode(encode(x, add_special = false)) == x on every golden text: byte-level BPE loses nothing, and Gemma's
/// SentencePiece (no space prefix, byte fallback) loses only one thing: a literal U+2581 in
/// the input is indistinguishable from an escaped space, so it decodes as a space (llama.cpp
/// does the same). Such texts are checked for exactly that.
fn check_roundtrip(model: &str) {
    let Some(tok) = load(model) else { return };
    let spm = tok.kind() == TokenizerKind::SentencePiece;
    let mut bad = Vec::new();
    let mut n = 0;
    let mut seen = std::collections::HashSet::new();
    for c in golden_cases(model).iter().filter(|c| seen.insert(c.text.clone())) {
        n += 1;
        let back = tok.decode(&tok.encode(&c.text, false)).expect("decode");
        let expected = if spm { c.text.replace('\u{2581}', " ") } else { c.text.clone() };
        if back != expected {
            bad.push(format!("{:?} -> {:?}", c.text, back));
        }
    }
    eprintln!("{model}: {}/{n} texts round-trip", n - bad.len());
    assert!(n >= 250, "{model}: only {n} texts");
    assert!(bad.is_empty(), "{model}: round trip differs:\n{}", bad.join("\n"));
}

#[test]
fn qwen_decode_inverts_encode() {
    check_roundtrip(QWEN);
}

#[test]
fn gemma_decode_inverts_encode() {
    check_roundtrip(GEMMA);
}

/// Rough encode throughput on a long text (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore]
fn encode_speed_report() {
    for model in [QWEN, GEMMA] {
        let Some(tok) = load(model) else { return };
        let base: String =
            golden_cases(model).iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join(" ");
        let text = base.repeat((1 << 20) / base.len().max(1) + 1);
        let t = std::time::Instant::now();
        let ids = tok.encode(&text, false);
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "{model}: {} bytes -> {} tokens in {:.3} s ({:.1} MB/s, {:.0} tokens/s)",
            text.len(),
            ids.len(),
            s,
            text.len() as f64 / s / 1e6,
            ids.len() as f64 / s
        );
    }
}
