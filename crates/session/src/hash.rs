//! The model file's sha256, read front to back in slices through the same [`ByteSource`] the run
//! reads, with progress after each slice.

use parallax_source::ByteSource;
use sha2::{Digest, Sha256};

/// Bytes hashed per read: large enough that a range request's round trip costs little, small
/// enough that progress moves.
const CHUNK: u64 = 8 << 20;

/// The lowercase hex sha256 of all of `source`; `on_progress(bytes_done, bytes_total)` after
/// each slice.
pub fn sha256<S: ByteSource + ?Sized>(
    source: &S,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<String, String> {
    let total = source.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK.min(total) as usize];
    let mut at = 0u64;
    while at < total {
        let n = CHUNK.min(total - at) as usize;
        source
            .read_exact_at(at, &mut buf[..n])
            .map_err(|e| format!("hashing {}: {e}", source.name()))?;
        hasher.update(&buf[..n]);
        at += n as u64;
        on_progress(at, total);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use parallax_source::MemorySource;

    #[test]
    fn sha256_of_known_inputs_with_progress() {
        // FIPS 180-2 test vector "abc".
        let mut seen = Vec::new();
        let digest =
            super::sha256(&MemorySource::new(b"abc".to_vec()), |a, b| seen.push((a, b))).unwrap();
        assert_eq!(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(seen, vec![(3, 3)]);
        // The empty file: no read, no progress, the empty digest.
        let digest = super::sha256(&MemorySource::new(Vec::new()), |_, _| panic!()).unwrap();
        assert_eq!(digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn sha256_spans_several_slices() {
        let bytes: Vec<u8> = (0..(super::CHUNK as usize * 2 + 5)).map(|i| i as u8).collect();
        let mut calls = 0;
        let digest = super::sha256(&MemorySource::new(bytes.clone()), |_, _| calls += 1).unwrap();
        use sha2::Digest;
        assert_eq!(digest, hex::encode(sha2::Sha256::digest(&bytes)));
        assert_eq!(calls, 3);
    }
}
