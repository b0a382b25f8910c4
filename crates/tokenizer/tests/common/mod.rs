//! Shared helpers: locating the real models and turning GGUF metadata into a TokenizerConfig.

use parallax_gguf::{GgufFile, MetaArray};
use parallax_source::FileSource;
use parallax_tokenizer::TokenizerConfig;

pub use parallax_testkit::{GEMMA_270M as GEMMA, QWEN_0_5B as QWEN};

pub use parallax_testkit::model_path as real_model;

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
        merges: g.get_str_arr(&key("merges")).map(parallax_gguf::StringArray::to_vec),
        bos_token_id: g.get_u32(&key("bos_token_id")),
        eos_token_id: g.get_u32(&key("eos_token_id")),
        unk_token_id: g.get_u32(&key("unknown_token_id")),
        pad_token_id: g.get_u32(&key("padding_token_id")),
        add_bos_token: g.get_bool(&key("add_bos_token")),
        add_eos_token: g.get_bool(&key("add_eos_token")),
        add_space_prefix: g.get_bool(&key("add_space_prefix")),
    }
}
