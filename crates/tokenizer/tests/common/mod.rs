//! Shared helpers: locating the real models and turning GGUF metadata into a TokenizerConfig.

use std::path::PathBuf;

use parallax_gguf::{GgufFile, MetaArray};
use parallax_source::FileSource;
use parallax_tokenizer::TokenizerConfig;

pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// The model's path, or `None` when it is missing and PARALLAX_ALLOW_MISSING_MODELS=1.
/// Missing models otherwise fail the test: they are part of the test fixture.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("PARALLAX_MODELS") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            home.join(".cache/parallax/models")
        }
    };
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("PARALLAX_ALLOW_MISSING_MODELS").as_deref() == Ok("1") {
        eprintln!("skipping: {} missing (PARALLAX_ALLOW_MISSING_MODELS=1)", path.display());
        return None;
    }
    panic!(
        "model {} is missing: run ../shared/models/fetch.sh (or set PARALLAX_MODELS, or \
         PARALLAX_ALLOW_MISSING_MODELS=1 to skip)",
        path.display()
    );
}

/// Reads the `tokenizer.ggml.*` metadata; the tokenizer crate itself never sees the file.
pub fn config_from_gguf(path: &std::path::Path) -> TokenizerConfig {
    let src = FileSource::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let g = GgufFile::read(&src).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let key = |k: &str| format!("tokenizer.ggml.{k}");
    TokenizerConfig {
        model: g.get_str(&key("model")).expect("tokenizer.ggml.model").to_string(),
        pre: g.get_str(&key("pre")).map(str::to_string),
        tokens: g.get_str_arr(&key("tokens")).expect("tokenizer.ggml.tokens").to_vec(),
        token_types: match g.get_arr(&key("token_type")) {
            Some(MetaArray::I32(v)) => Some(v.clone()),
            None => None,
            Some(other) => panic!("token_type has element type {:?}", other.elem_type()),
        },
        scores: match g.get_arr(&key("scores")) {
            Some(MetaArray::F32(v)) => Some(v.clone()),
            None => None,
            Some(other) => panic!("scores has element type {:?}", other.elem_type()),
        },
        merges: g.get_str_arr(&key("merges")).map(<[String]>::to_vec),
        bos_token_id: g.get_u32(&key("bos_token_id")),
        eos_token_id: g.get_u32(&key("eos_token_id")),
        unk_token_id: g.get_u32(&key("unknown_token_id")),
        pad_token_id: g.get_u32(&key("padding_token_id")),
        add_bos_token: g.get_bool(&key("add_bos_token")),
        add_eos_token: g.get_bool(&key("add_eos_token")),
        add_space_prefix: g.get_bool(&key("add_space_prefix")),
    }
}
