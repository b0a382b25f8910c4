//! Shared helpers: where the upstream-made fixtures live, the gguf-py golden, sha256.
#![allow(dead_code)]

use std::path::PathBuf;

use parallax_apr::{AprError, AprFile};
use parallax_source::MemorySource;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `../shared/fixtures/apr` beside the repository (upstream-made APR files; see its README).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/apr")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}): the repository expects ../shared beside it",
            path.display()
        )
    })
}

/// The gguf-py golden of tiny-qwen2.gguf (tools/golden/apr_golden.py).
pub fn golden() -> Value {
    let text = include_str!("../data/tiny-qwen2.golden.json");
    serde_json::from_str(text).expect("golden JSON parses")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn open(bytes: Vec<u8>) -> Result<AprFile<MemorySource>, AprError> {
    AprFile::open(MemorySource::new(bytes))
}

/// Recompute the header CRC after a deliberate header mutation, so the reader gets past it
/// and meets the mutated field.
pub fn fix_header_crc(bytes: &mut [u8]) {
    let mut h = [0u8; 64];
    h.copy_from_slice(&bytes[..64]);
    let crc = parallax_apr::header_crc(&h);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
}
