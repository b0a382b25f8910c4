//! APR dtype ids and what their bytes mean.
//!
//! APR ids below 128 are GGML ids (`F32 = 0`, `Q4_K = 12`, ...) holding GGML bytes, except where
//! upstream once gave them APR-only meanings: 3 F64, 4 I32, 5 I64, 6 I8, 7 U8 (element arrays),
//! and the legacy ids 8 / 9 of APR-Q4 / APR-Q8 (before upstream moved them to 128 / 129). Files
//! made with `apr import --preserve-q4k` write GGML ids, so 3, 6, 7, 8 and 9 are ambiguous; the
//! payload size tells them apart (Q8_0 takes 34 bytes per 32 values, legacy APR-Q4 18), and when
//! both readings fit (only possible for tiny tensors) the GGML one wins.

use std::fmt;

use parallax_quant::GgmlType;

/// The meaning of a tensor's payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    /// GGML bytes: a plain little-endian element array (F32, F16, BF16, F64, I8, I32, I64) or
    /// GGML blocks (Q8_0, Q4_K, Q6_K, ...).
    Ggml(GgmlType),
    /// APR's 4-bit format: per 32 values (the last block may be partial), an f16 scale and 16
    /// bytes of nibbles, value `i` in the low nibble of byte `i/2` when `i` is even, the high
    /// nibble when odd; value = (nibble − 8) · scale.
    AprQ4,
    /// APR's 8-bit format: one f32 scale for the whole tensor, then one i8 per value;
    /// value = q · scale. An empty tensor has no scale either.
    AprQ8,
    /// Unsigned bytes (APR id 7), no GGML twin.
    U8,
}

/// APR-Q4 values per block and bytes per block.
pub const APR_Q4_BLOCK: u64 = 32;
pub const APR_Q4_BLOCK_BYTES: u64 = 18;

impl TensorType {
    /// The id this crate's writer stores for the type: the id upstream's reader understands.
    pub fn apr_id(self) -> u8 {
        match self {
            TensorType::AprQ4 => 128,
            TensorType::AprQ8 => 129,
            TensorType::U8 => 7,
            TensorType::Ggml(GgmlType::F64) => 3,
            TensorType::Ggml(GgmlType::I32) => 4,
            TensorType::Ggml(GgmlType::I64) => 5,
            TensorType::Ggml(GgmlType::I8) => 6,
            // Every GGML id fits in a byte (the largest is 39).
            TensorType::Ggml(t) => t.id() as u8,
        }
    }

    /// The GGML type, for payloads that are GGML bytes (kernels in `parallax-quant` take them).
    pub fn as_ggml(self) -> Option<GgmlType> {
        match self {
            TensorType::Ggml(g) => Some(g),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorType::Ggml(t) => t.name(),
            TensorType::AprQ4 => "APR-Q4",
            TensorType::AprQ8 => "APR-Q8",
            TensorType::U8 => "U8",
        }
    }

    /// Payload bytes of `n_values` values, or `None` when the count is not whole GGML blocks or
    /// the size overflows.
    pub fn bytes_for(self, n_values: u64) -> Option<u64> {
        match self {
            TensorType::Ggml(t) => t.bytes_for(n_values),
            TensorType::AprQ4 => n_values.div_ceil(APR_Q4_BLOCK).checked_mul(APR_Q4_BLOCK_BYTES),
            TensorType::AprQ8 if n_values == 0 => Some(0),
            TensorType::AprQ8 => n_values.checked_add(4),
            TensorType::U8 => Some(n_values),
        }
    }

    /// The readings an APR dtype id can have, preferred first.
    fn candidates(id: u8) -> Vec<TensorType> {
        let ggml = |id: u32| GgmlType::from_id(id).map(TensorType::Ggml);
        let mut out = Vec::with_capacity(2);
        match id {
            128 => out.push(TensorType::AprQ4),
            129 => out.push(TensorType::AprQ8),
            3 => out.extend([ggml(3), Some(TensorType::Ggml(GgmlType::F64))].into_iter().flatten()),
            4 => out.push(TensorType::Ggml(GgmlType::I32)),
            5 => out.push(TensorType::Ggml(GgmlType::I64)),
            6 => out.extend([ggml(6), Some(TensorType::Ggml(GgmlType::I8))].into_iter().flatten()),
            7 => out.extend([ggml(7), Some(TensorType::U8)].into_iter().flatten()),
            8 => out.extend([ggml(8), Some(TensorType::AprQ4)].into_iter().flatten()),
            9 => out.extend([ggml(9), Some(TensorType::AprQ8)].into_iter().flatten()),
            other => out.extend(ggml(other as u32)),
        }
        out
    }

    /// Decide what dtype id `id` means for a tensor of `n_values` values stored in `size` bytes.
    pub fn resolve(id: u8, n_values: u64, size: u64) -> Result<TensorType, Resolve> {
        let candidates = Self::candidates(id);
        if candidates.is_empty() {
            return Err(Resolve::Unknown);
        }
        if let Some(t) = candidates.iter().find(|t| t.bytes_for(n_values) == Some(size)) {
            return Ok(*t);
        }
        let expected = candidates
            .iter()
            .map(|t| match t.bytes_for(n_values) {
                Some(b) => format!("{b} as {}", t.name()),
                None => format!("whole blocks as {} ({} values per block)", t.name(), block_of(*t)),
            })
            .collect::<Vec<_>>()
            .join(" or ");
        Err(Resolve::SizeMismatch { dtype: candidates[0].name().to_string(), expected })
    }
}

fn block_of(t: TensorType) -> u64 {
    match t {
        TensorType::Ggml(g) => g.block_size() as u64,
        TensorType::AprQ4 => APR_Q4_BLOCK,
        TensorType::AprQ8 | TensorType::U8 => 1,
    }
}

/// Why [`TensorType::resolve`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    Unknown,
    SizeMismatch { dtype: String, expected: String },
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_ids_are_told_apart_by_size() {
        // 8: Q8_0 (34 bytes / 32) vs legacy APR-Q4 (18 bytes / 32).
        assert_eq!(TensorType::resolve(8, 64, 68), Ok(TensorType::Ggml(GgmlType::Q8_0)));
        assert_eq!(TensorType::resolve(8, 64, 36), Ok(TensorType::AprQ4));
        // 9: Q8_1 (36 / 32) vs legacy APR-Q8 (4 + n).
        assert_eq!(TensorType::resolve(9, 64, 72), Ok(TensorType::Ggml(GgmlType::Q8_1)));
        assert_eq!(TensorType::resolve(9, 64, 68), Ok(TensorType::AprQ8));
        // 32 values: both readings of id 9 take 36 bytes; the GGML one wins.
        assert_eq!(TensorType::resolve(9, 32, 36), Ok(TensorType::Ggml(GgmlType::Q8_1)));
        // 6: Q5_0 vs APR I8; 7: Q5_1 vs U8; 3: Q4_1 vs F64.
        assert_eq!(TensorType::resolve(6, 32, 22), Ok(TensorType::Ggml(GgmlType::Q5_0)));
        assert_eq!(TensorType::resolve(6, 32, 32), Ok(TensorType::Ggml(GgmlType::I8)));
        assert_eq!(TensorType::resolve(7, 32, 32), Ok(TensorType::U8));
        assert_eq!(TensorType::resolve(3, 32, 256), Ok(TensorType::Ggml(GgmlType::F64)));
        assert_eq!(TensorType::resolve(128, 33, 36), Ok(TensorType::AprQ4));
        assert_eq!(TensorType::resolve(129, 0, 0), Ok(TensorType::AprQ8));
    }

    #[test]
    fn unknown_ids_and_sizes_are_reported() {
        assert_eq!(TensorType::resolve(31, 1, 1), Err(Resolve::Unknown));
        assert_eq!(TensorType::resolve(200, 1, 1), Err(Resolve::Unknown));
        match TensorType::resolve(8, 64, 50) {
            Err(Resolve::SizeMismatch { expected, .. }) => {
                assert_eq!(expected, "68 as Q8_0 or 36 as APR-Q4")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(TensorType::resolve(12, 100, 144), Err(Resolve::SizeMismatch { .. })));
    }

    #[test]
    fn writer_ids_resolve_back() {
        let types = GgmlType::all().map(TensorType::Ggml).chain([
            TensorType::AprQ4,
            TensorType::AprQ8,
            TensorType::U8,
        ]);
        for t in types {
            let n = 256 * 3;
            let size = t.bytes_for(n).unwrap();
            assert_eq!(TensorType::resolve(t.apr_id(), n, size), Ok(t), "{t}");
        }
    }
}
