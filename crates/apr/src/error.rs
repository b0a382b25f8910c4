//! Errors of the APR reader and writer: one struct, a kind naming the problem, and the byte
//! offset where it was found, so a user can look at the file with `xxd -s OFFSET`.

use std::fmt;

use parallax_source::SourceError;

/// An APR file could not be read (or written).
#[derive(Debug, Clone, PartialEq)]
pub struct AprError {
    kind: AprErrorKind,
    offset: Option<u64>,
}

impl AprError {
    pub(crate) fn new(kind: AprErrorKind, offset: Option<u64>) -> Self {
        AprError { kind, offset }
    }
    pub(crate) fn at(kind: AprErrorKind, offset: u64) -> Self {
        AprError { kind, offset: Some(offset) }
    }
    pub(crate) fn nowhere(kind: AprErrorKind) -> Self {
        AprError { kind, offset: None }
    }

    pub fn kind(&self) -> &AprErrorKind {
        &self.kind
    }
    /// The byte offset in the file where the problem was found, when it has one.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AprErrorKind {
    /// The file does not start with `APR\0`. `hint` says what it looks like instead
    /// (a GGUF file, an APR v1 file, a text hex dump), when that can be told.
    BadMagic {
        found: [u8; 4],
        hint: Option<&'static str>,
    },
    UnsupportedVersion {
        major: u8,
        minor: u8,
    },
    /// The header CRC32 (over bytes `[0,40)` and `[44,64)`) does not match the stored one.
    HeaderChecksum {
        stored: u32,
        computed: u32,
    },
    /// The 4-byte CRC32 footer does not match the bytes before it.
    FooterChecksum {
        stored: u32,
        computed: u32,
    },
    /// The file ends before a structure it declares: `what` needed bytes up to `needed_end`.
    Truncated {
        what: &'static str,
        needed_end: u64,
        file_len: u64,
    },
    /// The header marks the tensors column-major (flag 0x0800); upstream rejects these too.
    ColumnMajor {
        flags: u16,
    },
    /// The payload is compressed (flag 0x0001 LZ4 / 0x0002 ZSTD) and the bytes after the header
    /// are not a plain layout.
    Compressed {
        flags: u16,
    },
    /// The payload is encrypted (flag 0x0004).
    Encrypted {
        flags: u16,
    },
    /// Section offsets that contradict each other (metadata inside the header, index before
    /// the metadata end, data before the index end, ...).
    BadLayout {
        message: String,
    },
    /// A count or length read from the file cannot fit in the bytes that hold it.
    CountTooLarge {
        what: &'static str,
        count: u64,
        max: u64,
    },
    MetadataJson {
        message: String,
    },
    /// A hyperparameter has the wrong JSON type, or two aliases of it disagree.
    BadHyperparameter {
        key: String,
        message: String,
    },
    BadTensorName {
        index: u32,
    },
    TooManyDims {
        name: String,
        ndim: u8,
    },
    /// The element count of the dims overflows u64.
    DimsOverflow {
        name: String,
    },
    UnknownDtype {
        name: String,
        id: u8,
    },
    /// The payload size disagrees with what the dtype and dims require.
    PayloadSize {
        name: String,
        dtype: String,
        dims: Vec<u64>,
        expected: String,
        found: u64,
    },
    /// A tensor's payload lies (partly) outside the file.
    TensorOutOfBounds {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    UnsortedIndex {
        previous: String,
        name: String,
    },
    DuplicateTensor {
        name: String,
    },
    /// Bytes after the last tensor that are neither padding nor a 4-byte CRC footer.
    TrailingBytes {
        data_end: u64,
        file_len: u64,
    },
    TensorNotFound {
        name: String,
    },
    /// `tensor_rows` asked for rows the tensor does not have, or rows that are not whole blocks.
    BadRowRange {
        name: String,
        start: u64,
        end: u64,
        rows: u64,
    },
    /// The tensor's dtype cannot be turned into f32 (or into rows) by this crate.
    Unsupported {
        name: String,
        message: String,
    },
    /// The byte source failed for a reason other than reading past the end.
    Source(SourceError),
    /// Invalid input to the writer (duplicate name, size inconsistent with dims, too large).
    Writer {
        message: String,
    },
}

impl fmt::Display for AprErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AprErrorKind::*;
        match self {
            BadMagic { found, hint } => {
                write!(f, "not an APR file: magic is {:02x?}, expected \"APR\\0\"", found)?;
                if let Some(h) = hint {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            UnsupportedVersion { major, minor } => {
                write!(f, "APR version {major}.{minor} is not supported (only 2.x)")
            }
            HeaderChecksum { stored, computed } => write!(
                f,
                "header CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x} (the header is corrupt)"
            ),
            FooterChecksum { stored, computed } => write!(
                f,
                "file CRC32 footer mismatch: stored {stored:#010x}, computed {computed:#010x} (the file is corrupt)"
            ),
            Truncated { what, needed_end, file_len } => write!(
                f,
                "{what} needs bytes up to offset {needed_end}, but the file has only {file_len} bytes (is it truncated?)"
            ),
            ColumnMajor { flags } => write!(
                f,
                "flags {flags:#06x} mark the tensors column-major (0x0800); only row-major APR files are valid"
            ),
            Compressed { flags } => write!(
                f,
                "flags {flags:#06x} mark the payload compressed ({}) and it is not laid out plainly; \
                 compressed APR files are not supported — re-export it uncompressed",
                if flags & crate::FLAG_LZ4 != 0 { "LZ4" } else { "ZSTD" }
            ),
            Encrypted { flags } => {
                write!(f, "flags {flags:#06x} mark the payload encrypted (0x0004); encrypted APR files are not supported")
            }
            BadLayout { message } => write!(f, "inconsistent layout: {message}"),
            CountTooLarge { what, count, max } => {
                write!(f, "{what} is {count}, but the bytes that hold it fit at most {max}")
            }
            MetadataJson { message } => write!(f, "metadata is not a JSON object: {message}"),
            BadHyperparameter { key, message } => write!(f, "metadata key \"{key}\": {message}"),
            BadTensorName { index } => write!(f, "tensor #{index} has an empty or non-UTF-8 name"),
            TooManyDims { name, ndim } => write!(f, "tensor \"{name}\" has {ndim} dims (at most 8)"),
            DimsOverflow { name } => write!(f, "tensor \"{name}\": the product of its dims overflows"),
            UnknownDtype { name, id } => write!(f, "tensor \"{name}\" has unknown dtype id {id}"),
            PayloadSize { name, dtype, dims, expected, found } => write!(
                f,
                "tensor \"{name}\" ({dtype}, dims {dims:?}) has {found} payload bytes, expected {expected}"
            ),
            TensorOutOfBounds { name, start, end, file_len } => write!(
                f,
                "tensor \"{name}\" lies at bytes [{start}, {end}) but the file has only {file_len} bytes (is it truncated?)"
            ),
            UnsortedIndex { previous, name } => {
                write!(f, "tensor index is not sorted by name: \"{name}\" follows \"{previous}\"")
            }
            DuplicateTensor { name } => write!(f, "tensor \"{name}\" appears twice in the index"),
            TrailingBytes { data_end, file_len } => write!(
                f,
                "the last tensor ends at {data_end} but the file has {file_len} bytes: neither padding nor a 4-byte CRC footer"
            ),
            TensorNotFound { name } => write!(f, "no tensor named \"{name}\""),
            BadRowRange { name, start, end, rows } => {
                write!(f, "tensor \"{name}\" has {rows} rows; rows {start}..{end} cannot be read")
            }
            Unsupported { name, message } => write!(f, "tensor \"{name}\": {message}"),
            Source(e) => write!(f, "{e}"),
            Writer { message } => write!(f, "cannot write APR file: {message}"),
        }
    }
}

impl fmt::Display for AprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} (at byte {o})", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for AprError {}

/// Turn a source error into an APR error: reading past the end is a truncation of `what`.
pub(crate) fn source_error(e: SourceError, what: &'static str) -> AprError {
    match e {
        SourceError::OutOfBounds { offset, len, source_len } => AprError::at(
            AprErrorKind::Truncated {
                what,
                needed_end: offset.saturating_add(len),
                file_len: source_len,
            },
            offset,
        ),
        other => {
            let offset = match &other {
                SourceError::Io { offset, .. } => Some(*offset),
                _ => None,
            };
            AprError::new(AprErrorKind::Source(other), offset)
        }
    }
}
