//! Shared helpers: where the upstream-made fixtures live, the gguf-py golden, sha256.
#![allow(dead_code)]

use std::path::PathBuf;

use parallax_apr::{AprError, AprFile, AprWriter};
use parallax_source::MemorySource;
use serde_json::Value;

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

#[allow(unused_imports)] // not every test binary that includes this module hashes
pub use parallax_testkit::sha256_hex;

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

/// Re-write a file from what the reader exposes; byte equality with the input proves the layout.
pub fn rewrite(file: &AprFile<MemorySource>) -> Vec<u8> {
    let mut w = AprWriter::new(file.flags()).with_footer(file.footer_crc().is_some());
    w.set_metadata_json(file.metadata_json().to_vec()).unwrap();
    for t in file.tensors() {
        w.add_tensor_with_id(
            &t.name,
            t.dtype_id,
            t.dims.clone(),
            file.tensor_bytes(&t.name).unwrap(),
        )
        .unwrap();
    }
    w.write().unwrap()
}
