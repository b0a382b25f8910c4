//! Shared helpers for the cross-crate tests: where the real models are, and hashing.

use std::path::PathBuf;

/// The shared models, as fetched by `../shared/models/fetch.sh`.
pub const QWEN_0_5B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const GEMMA_270M: &str = "gemma-3-270m-q4_k_m.gguf";

/// Path of a shared model. Panics with the command to run when it is missing, unless
/// `PARALLAX_ALLOW_MISSING_MODELS=1`, in which case it returns `None` and the test is skipped
/// with a message (never silently).
pub fn model_path(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("PARALLAX_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/parallax/models")
    });
    let path = dir.join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("PARALLAX_ALLOW_MISSING_MODELS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {} is missing (PARALLAX_ALLOW_MISSING_MODELS=1)", path.display());
        return None;
    }
    panic!(
        "{} is missing: run `../shared/models/fetch.sh` (or `./dev test`, which does) or set PARALLAX_MODELS",
        path.display()
    );
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository root (for golden files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The shared folder beside the repository (`../shared`).
pub fn shared_dir() -> PathBuf {
    repo_root().parent().expect("repo has a parent").join("shared")
}
