//! The 64-byte APR v2 header.
//!
//! ```text
//! 0  magic "APR\0"        4   version major, minor (2, 0)   6  flags u16
//! 8  tensor_count u32     12  metadata_offset u64          20 metadata_size u32 (unpadded)
//! 24 tensor_index_offset u64                               32 data_offset u64
//! 40 CRC32 (IEEE) of bytes [0,40) ++ [44,64)               44 20 reserved bytes
//! ```

use crate::error::{AprError, AprErrorKind};

pub const MAGIC: [u8; 4] = *b"APR\0";
pub const HEADER_SIZE: u64 = 64;

/// Payload compressed with LZ4.
pub const FLAG_LZ4: u16 = 0x0001;
/// Payload compressed with Zstandard.
pub const FLAG_ZSTD: u16 = 0x0002;
/// Payload encrypted.
pub const FLAG_ENCRYPTED: u16 = 0x0004;
/// One shard of a multi-file model.
pub const FLAG_SHARDED: u16 = 0x0010;
/// Tensors are quantized (set by `apr import --preserve-q4k`).
pub const FLAG_QUANTIZED: u16 = 0x0020;
/// Tensors are row-major (set by upstream's plain `apr import`).
pub const FLAG_ROW_MAJOR: u16 = 0x0400;
/// Tensors are column-major: rejected, as upstream does.
pub const FLAG_COLUMN_MAJOR: u16 = 0x0800;

/// A parsed header. `write` produces the exact 64 bytes it was parsed from when the reserved
/// bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: (u8, u8),
    pub flags: u16,
    pub tensor_count: u32,
    pub metadata_offset: u64,
    pub metadata_size: u32,
    pub tensor_index_offset: u64,
    pub data_offset: u64,
    pub checksum: u32,
    pub reserved: [u8; 20],
}

impl Header {
    /// Serialize with the stored checksum field as it is.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version.0;
        b[5] = self.version.1;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.tensor_count.to_le_bytes());
        b[12..20].copy_from_slice(&self.metadata_offset.to_le_bytes());
        b[20..24].copy_from_slice(&self.metadata_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.tensor_index_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_offset.to_le_bytes());
        b[40..44].copy_from_slice(&self.checksum.to_le_bytes());
        b[44..64].copy_from_slice(&self.reserved);
        b
    }

    /// The CRC32 the checksum field should hold.
    pub fn compute_checksum(&self) -> u32 {
        header_crc(&self.to_bytes())
    }

    /// Parse 64 bytes, checking magic, version and the header CRC, in that order (a GGUF file
    /// must be reported as GGUF, not as a CRC mismatch).
    pub fn parse(b: &[u8; 64]) -> Result<Header, AprError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(AprError::at(
                AprErrorKind::BadMagic { found: magic, hint: magic_hint(b) },
                0,
            ));
        }
        let version = (b[4], b[5]);
        if version.0 != 2 {
            return Err(AprError::at(
                AprErrorKind::UnsupportedVersion { major: b[4], minor: b[5] },
                4,
            ));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let mut reserved = [0u8; 20];
        reserved.copy_from_slice(&b[44..64]);
        let h = Header {
            version,
            flags: u16::from_le_bytes([b[6], b[7]]),
            tensor_count: u32_at(8),
            metadata_offset: u64_at(12),
            metadata_size: u32_at(20),
            tensor_index_offset: u64_at(24),
            data_offset: u64_at(32),
            checksum: u32_at(40),
            reserved,
        };
        let computed = header_crc(b);
        if computed != h.checksum {
            return Err(AprError::at(
                AprErrorKind::HeaderChecksum { stored: h.checksum, computed },
                40,
            ));
        }
        Ok(h)
    }
}

/// CRC32 (IEEE) over header bytes `[0,40)` and `[44,64)`: everything but the checksum field.
pub fn header_crc(b: &[u8; 64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..40]);
    h.update(&b[44..64]);
    h.finalize()
}

/// What a file that is not APR v2 looks like, to say so in the error.
fn magic_hint(b: &[u8; 64]) -> Option<&'static str> {
    if &b[0..4] == b"GGUF" {
        Some("this is a GGUF file; open it with the GGUF reader")
    } else if &b[0..4] == b"APRN" || &b[0..4] == b"APR1" || &b[0..4] == b"APR2" {
        Some("this looks like an older APR format; only APR v2 (magic \"APR\\0\") is supported")
    } else if b[0..8].iter().all(u8::is_ascii_hexdigit) && b[8] == b':' {
        Some("this is text, apparently a hex dump (xxd output) of a file, not the binary file itself")
    } else if b[0] == b'{' {
        Some("this looks like JSON text, not a binary APR file")
    } else {
        None
    }
}
