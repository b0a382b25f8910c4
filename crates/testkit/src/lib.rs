//! Test helpers shared by the crates' tests, the top-level `tests/` crate, the benches and the
//! demo-model generator: where the real models are and when their absence is a failure
//! ([`models`]), one seeded generator ([`SplitMix64`]), a counting global allocator
//! ([`alloc`]), and hashing and hex ([`sha256_hex`], [`unhex`], [`f32s_le`]).
//!
//! It must not know any Parallax crate: every workspace crate dev-depends on it, so a
//! dependency the other way would be a cycle (`parallax-gguf` could not use a kit that uses
//! `parallax-gguf`). It is plain Rust plus `sha2`, and builds for wasm32-wasip1, where the quant
//! tests also run.

pub mod alloc;
pub mod models;
mod rng;

pub use models::{
    model_path, models_dir, required, skip_unless_required, GEMMA_270M, QWEN_0_5B, QWEN_0_5B_SPLIT,
    QWEN_AS_LLAMA, QWEN_AS_LLAMA_NOBIAS, QWEN_AS_QWEN3, QWEN_DEEP44, QWEN_LADDER_F32, SYNTHETIC_7B,
};
pub use rng::SplitMix64;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string (two digits a byte, either case). Panics on odd length or a non-digit:
/// the hex comes from committed goldens, so a bad digit is a broken fixture.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length {}", s.len());
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit"))
        .collect()
}

/// Little-endian f32s of `bytes` (a trailing partial value is ignored).
pub fn f32s_le(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_fips_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trips_to_little_endian_floats() {
        assert_eq!(unhex("00ff10Ab"), [0x00, 0xff, 0x10, 0xab]);
        assert_eq!(f32s_le(&unhex("0000803f000000c0")), [1.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "odd hex length")]
    fn odd_hex_is_refused() {
        unhex("abc");
    }
}
