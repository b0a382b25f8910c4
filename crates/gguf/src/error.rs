//! Reader errors: what is wrong, at which byte, in which metadata key or tensor.

use std::fmt;

use parallax_quant::GgmlType;
use parallax_source::SourceError;

use crate::value::ValueType;

/// A GGUF file (or a read from it) was rejected.
///
/// Every error carries the byte offset where the offending field starts and, where there is one,
/// the metadata key or tensor name it belongs to. [`fmt::Display`] gives one sentence a user can
/// act on, followed by that location.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufError {
    kind: GgufErrorKind,
    offset: u64,
    key: Option<String>,
    tensor: Option<String>,
}

/// What was wrong. Variants carry the facts needed to explain it; the location (offset, key,
/// tensor) lives on [`GgufError`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GgufErrorKind {
    /// The first four bytes are not `GGUF`.
    BadMagic { found: [u8; 4] },
    /// The file is a big-endian GGUF (magic or version byte-swapped).
    BigEndian,
    /// A version other than 2 or 3.
    UnsupportedVersion { version: u32 },
    /// The byte source failed; `OutOfBounds` means the file ends early (truncated).
    Source { what: &'static str, error: SourceError },
    /// A count or length declares more items than the remaining bytes could hold even at each
    /// item's smallest encoding. Checked before anything is allocated.
    CountTooLarge { what: &'static str, count: u64, min_bytes_each: u64, remaining: u64 },
    /// A count that fits in the file but not in this machine's memory (32-bit targets).
    TooLargeForMemory { what: &'static str, count: u64 },
    /// A metadata value type id outside 0..=12.
    UnknownValueType { id: u32 },
    /// A tensor type id that ggml does not define (or has retired).
    UnknownTensorType { id: u32 },
    /// Arrays nested deeper than the reader allows.
    NestingTooDeep { max: usize },
    /// A key, tensor name or (in strict mode) string value that is not UTF-8.
    InvalidUtf8 { what: &'static str, valid_up_to: usize },
    /// A bool stored as a byte other than 0 or 1.
    InvalidBool { byte: u8 },
    /// The same metadata key appears twice.
    DuplicateKey,
    /// The same tensor name appears twice.
    DuplicateTensor,
    /// `general.alignment` is not a nonzero power of two that fits in u32.
    BadAlignment { value: String },
    /// A metadata value has a type other than the one the format (or the caller) requires.
    WrongType { expected: &'static str, found: ValueType },
    /// A required metadata key is absent.
    MissingKey,
    /// A tensor declares more than 4 dimensions.
    TooManyDims { n_dims: u32 },
    /// A tensor dimension is 0.
    ZeroDim { dims: Vec<u64> },
    /// The element count (product of dims) or the byte size overflows a signed 64-bit integer.
    ElementCountOverflow { dims: Vec<u64> },
    /// The row length `ne[0]` is not a whole number of the type's blocks.
    RowNotWholeBlocks { ty: GgmlType, ne0: u64 },
    /// A tensor's relative offset is not a multiple of the alignment.
    MisalignedTensor { rel_offset: u64, alignment: u64 },
    /// A tensor's bytes lie (partly) past the end of the file.
    TensorOutOfBounds { start: u64, end: u64, file_len: u64 },
    /// Two tensors share bytes.
    OverlappingTensors { other: String, other_start: u64, other_end: u64, start: u64 },
    /// A row range asked of [`crate::GgufFile::tensor_rows`] is outside the tensor.
    RowsOutOfRange { start: u64, end: u64, n_rows: u64 },
    /// The source handed to a data read is not the file the header was read from.
    SourceMismatch { header_len: u64, source_len: u64 },
}

impl GgufError {
    pub(crate) fn new(kind: GgufErrorKind, offset: u64) -> Self {
        GgufError { kind, offset, key: None, tensor: None }
    }
    pub(crate) fn with_key(mut self, key: &str) -> Self {
        if self.key.is_none() {
            self.key = Some(key.to_string());
        }
        self
    }
    pub(crate) fn with_tensor(mut self, name: &str) -> Self {
        if self.tensor.is_none() {
            self.tensor = Some(name.to_string());
        }
        self
    }
    pub(crate) fn source(what: &'static str, error: SourceError, offset: u64) -> Self {
        // The source error knows the exact offset it failed at; prefer it.
        let offset = match &error {
            SourceError::OutOfBounds { offset, .. } | SourceError::Io { offset, .. } => *offset,
            _ => offset,
        };
        GgufError::new(GgufErrorKind::Source { what, error }, offset)
    }

    pub fn kind(&self) -> &GgufErrorKind {
        &self.kind
    }
    /// Byte offset in the file where the offending field starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The metadata key being read or checked, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    /// The tensor being read or checked, if any.
    pub fn tensor(&self) -> Option<&str> {
        self.tensor.as_deref()
    }
    /// Whether the file simply ends too early (an incomplete download, a cut file).
    pub fn is_truncated(&self) -> bool {
        matches!(self.kind, GgufErrorKind::Source { error: SourceError::OutOfBounds { .. }, .. })
    }
}

fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect()
}

impl fmt::Display for GgufErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufErrorKind::*;
        match self {
            BadMagic { found } => {
                let hex = found.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
                write!(f, "not a GGUF file: it starts with bytes {hex} (\"{}\") instead of \"GGUF\"", printable(found))?;
                if found.starts_with(b"APR") {
                    write!(f, "; this looks like an APR file, open it with the APR reader")
                } else if found == &[0, 0, 0, 0] {
                    write!(f, "; the file starts with zeros (an empty or unfinished download?)")
                } else if found.starts_with(b"<") || found.starts_with(b"{") {
                    write!(f, "; this looks like a text (HTML/JSON) page, not a model: check the download URL")
                } else {
                    Ok(())
                }
            }
            BigEndian => write!(
                f,
                "this is a big-endian GGUF file, which is not supported; use the little-endian version of the \
                 model (the default output of llama.cpp's converters)"
            ),
            UnsupportedVersion { version: 1 } => write!(
                f,
                "GGUF version 1 (the 2023 format with 32-bit counts) is not supported; re-convert the model \
                 with a current llama.cpp to get version 3"
            ),
            UnsupportedVersion { version } => {
                write!(f, "GGUF version {version} is not supported (this reader knows versions 2 and 3)")
            }
            Source { what, error: SourceError::OutOfBounds { offset, len, source_len } } => write!(
                f,
                "the file is truncated: reading {what} needs {len} bytes at byte {offset}, but the file ends at \
                 byte {source_len} (incomplete download?)"
            ),
            Source { what, error } => write!(f, "reading {what} failed: {error}"),
            CountTooLarge { what, count, min_bytes_each, remaining } => write!(
                f,
                "{what} is {count}, but even at {min_bytes_each} byte(s) each that needs more than the {remaining} \
                 bytes left in the file; the file is truncated or its header is corrupt"
            ),
            TooLargeForMemory { what, count } => {
                write!(f, "{what} of {count} elements does not fit in this machine's memory")
            }
            UnknownValueType { id } => write!(
                f,
                "unknown metadata value type {id} (GGUF defines 0..=12); the file is corrupt or from a newer GGUF \
                 version"
            ),
            UnknownTensorType { id } => write!(
                f,
                "unknown tensor type id {id} (not a ggml type this reader knows, or a retired one); the file is \
                 corrupt or needs a newer reader"
            ),
            NestingTooDeep { max } => write!(f, "metadata arrays are nested more than {max} levels deep"),
            InvalidUtf8 { what, valid_up_to } => {
                write!(f, "{what} is not valid UTF-8 (invalid byte after the first {valid_up_to} bytes)")
            }
            InvalidBool { byte } => write!(f, "a bool is stored as byte {byte}, but must be 0 or 1"),
            DuplicateKey => write!(f, "the metadata key appears more than once; the file is ambiguous"),
            DuplicateTensor => write!(f, "the tensor name appears more than once; the file is ambiguous"),
            BadAlignment { value } => {
                write!(f, "general.alignment is {value}, but must be a nonzero power of two that fits in 32 bits")
            }
            WrongType { expected, found } => write!(f, "the value has type {found}, but {expected} is required"),
            MissingKey => write!(f, "the metadata key is missing"),
            TooManyDims { n_dims } => write!(f, "the tensor has {n_dims} dimensions, but GGUF allows at most 4"),
            ZeroDim { dims } => write!(f, "the tensor has a zero dimension (shape {dims:?}); empty tensors are not accepted"),
            ElementCountOverflow { dims } => {
                write!(f, "the tensor shape {dims:?} has more elements or bytes than a 64-bit size can hold")
            }
            RowNotWholeBlocks { ty, ne0 } => write!(
                f,
                "a row of {ne0} values is not a whole number of {ty} blocks ({} values each)",
                ty.block_size()
            ),
            MisalignedTensor { rel_offset, alignment } => write!(
                f,
                "the tensor data offset {rel_offset} is not a multiple of the file's alignment {alignment}"
            ),
            TensorOutOfBounds { start, end, file_len } => write!(
                f,
                "the tensor data spans bytes {start}..{end}, past the end of the file ({file_len} bytes); the file \
                 is truncated or its header is corrupt"
            ),
            OverlappingTensors { other, other_start, other_end, start } => write!(
                f,
                "the tensor data starting at byte {start} overlaps tensor \"{other}\" (bytes {other_start}..{other_end})"
            ),
            RowsOutOfRange { start, end, n_rows } => {
                write!(f, "rows {start}..{end} were asked for, but the tensor has {n_rows} rows")
            }
            SourceMismatch { header_len, source_len } => write!(
                f,
                "the header was read from a file of {header_len} bytes, but the data read used a source of \
                 {source_len} bytes; pass the same file"
            ),
        }
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {}", self.kind, self.offset)?;
        if let Some(key) = &self.key {
            write!(f, ", metadata key \"{key}\"")?;
        }
        if let Some(tensor) = &self.tensor {
            write!(f, ", tensor \"{tensor}\"")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            GgufErrorKind::Source { error, .. } => Some(error),
            _ => None,
        }
    }
}
