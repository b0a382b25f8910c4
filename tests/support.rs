//! Shared helpers for the cross-crate tests: the repository's folders, plus the test kit's model
//! lookup and hashing (re-exported, so the tests here and in `crates/cli` name one place).

use std::path::PathBuf;

pub use parallax_testkit::{
    f32s_le, model_path, sha256_hex, unhex, GEMMA_270M, QWEN_0_5B, QWEN_0_5B_SPLIT, QWEN_AS_LLAMA,
    QWEN_AS_LLAMA_NOBIAS, QWEN_AS_QWEN3, QWEN_DEEP44, QWEN_LADDER_F32, SYNTHETIC_7B,
};

/// The repository root (for golden files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The shared folder beside the repository (`../shared`).
pub fn shared_dir() -> PathBuf {
    repo_root().parent().expect("repo has a parent").join("shared")
}
