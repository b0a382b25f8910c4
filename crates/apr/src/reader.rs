//! Reading an APR v2 file from a [`ByteSource`]: `open` pulls the header (one read) and the
//! metadata plus tensor index (one more read); payloads are read only when asked for.

use std::ops::Range;

use parallax_source::{ByteSource, SourceBytes};
use serde_json::{Map, Value};

use crate::aprquant::{dequantize_apr_q4, dequantize_apr_q8, dequantize_apr_q8_values};
use crate::dtype::{Resolve, TensorType, APR_Q4_BLOCK, APR_Q4_BLOCK_BYTES};
use crate::error::{source_error, AprError, AprErrorKind};
use crate::header::*;
use crate::metadata::Hyperparameters;

/// Smallest index entry: u16 name length, a 1-byte name, dtype, ndim, offset, size.
const MIN_ENTRY_BYTES: u64 = 2 + 1 + 1 + 1 + 16;
/// Upstream's writer stores at most 8 dims.
const MAX_DIMS: u8 = 8;
/// Pages of this size are hashed when verifying the footer: the file is never held whole.
const CRC_CHUNK: u64 = 1 << 20;

/// One entry of the tensor index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// What the payload bytes mean (the dtype id, with collisions resolved by payload size).
    pub dtype: TensorType,
    /// The dtype id as stored in the file.
    pub dtype_id: u8,
    /// Dims as stored: row-major, outermost first (`[out, in]` for a matrix).
    pub dims: Vec<u64>,
    /// Payload offset relative to the data section, as stored.
    pub offset: u64,
    /// Payload size in bytes.
    pub size: u64,
    file_offset: u64,
    n_values: u64,
}

impl TensorInfo {
    /// Dims in GGML order, innermost first (`ne0 = in`), as GGUF tensors have them.
    pub fn ne(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
    pub fn n_values(&self) -> u64 {
        self.n_values
    }
    /// Absolute offset of the payload in the file.
    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }
    /// Values per row: the innermost dim (1 for a scalar).
    pub fn row_len(&self) -> u64 {
        self.dims.last().copied().unwrap_or(1)
    }
    pub fn n_rows(&self) -> u64 {
        match self.row_len() {
            0 => 0,
            r => self.n_values / r,
        }
    }
}

/// An opened APR v2 file.
pub struct AprFile<S> {
    source: S,
    header: Header,
    metadata_json: Vec<u8>,
    metadata: Map<String, Value>,
    tensors: Vec<TensorInfo>,
    data_end: u64,
    footer: Option<u32>,
}

impl<S: ByteSource> AprFile<S> {
    /// Parse header, metadata and tensor index, checking everything that can be checked without
    /// reading payloads (the CRC footer, when present, is checked by [`AprFile::verify_footer`]).
    pub fn open(source: S) -> Result<Self, AprError> {
        let len = source.len();
        let mut head = [0u8; 64];
        let got = len.min(HEADER_SIZE) as usize;
        source.read_exact_at(0, &mut head[..got]).map_err(|e| source_error(e, "header"))?;
        if got < 64 {
            if got >= 4 && head[0..4] != MAGIC {
                // Report what the short file is rather than that it is short.
                return Err(Header::parse(&head).unwrap_err());
            }
            return Err(AprError::at(
                AprErrorKind::Truncated {
                    what: "the 64-byte header",
                    needed_end: HEADER_SIZE,
                    file_len: len,
                },
                0,
            ));
        }
        let header = Header::parse(&head)?;
        if header.flags & FLAG_COLUMN_MAJOR != 0 {
            return Err(AprError::at(AprErrorKind::ColumnMajor { flags: header.flags }, 6));
        }
        if header.flags & FLAG_ENCRYPTED != 0 {
            return Err(AprError::at(AprErrorKind::Encrypted { flags: header.flags }, 6));
        }

        let layout =
            |message: String, at: u64| Err(AprError::at(AprErrorKind::BadLayout { message }, at));
        let meta_off = header.metadata_offset;
        if meta_off < HEADER_SIZE || meta_off > len {
            return layout(
                format!(
                    "metadata offset {meta_off} is inside the header or past the end ({len} bytes)"
                ),
                12,
            );
        }
        let meta_end = meta_off + header.metadata_size as u64; // meta_off <= len: no overflow
        if header.tensor_index_offset < meta_end {
            return layout(
                format!(
                    "tensor index offset {} is before the metadata end {meta_end}",
                    header.tensor_index_offset
                ),
                24,
            );
        }
        if header.data_offset < header.tensor_index_offset {
            return layout(
                format!(
                    "data offset {} is before the tensor index offset {}",
                    header.data_offset, header.tensor_index_offset
                ),
                32,
            );
        }
        // Metadata and index in one read (one round trip over HTTP); bounded by the file length.
        let region = source
            .read_range(meta_off..header.data_offset)
            .map_err(|e| source_error(e, "the metadata and tensor index"))?;

        let metadata_json = region[..header.metadata_size as usize].to_vec();
        let metadata = match serde_json::from_slice::<Value>(&metadata_json) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(AprError::at(
                    AprErrorKind::MetadataJson {
                        message: format!("found a JSON {}", json_kind(&other)),
                    },
                    meta_off,
                ))
            }
            // Upstream's writer sets the compression flags without compressing, so a flagged
            // file is read plainly when it parses; one that does not is really compressed.
            Err(_) if header.flags & (FLAG_LZ4 | FLAG_ZSTD) != 0 => {
                return Err(AprError::at(AprErrorKind::Compressed { flags: header.flags }, 6))
            }
            Err(e) => {
                return Err(AprError::at(
                    AprErrorKind::MetadataJson { message: e.to_string() },
                    meta_off + json_error_offset(&metadata_json, &e),
                ))
            }
        };

        let index_start = header.tensor_index_offset - meta_off;
        let (tensors, data_end) = parse_index(&header, &region[index_start as usize..], len)?;

        // The payloads of the last tensor are padded to 64 bytes by upstream's writers; a 4-byte
        // CRC32 of everything before it may follow.
        let padded_end = header.data_offset.saturating_add(align64(data_end - header.data_offset));
        let footer = if len == padded_end + 4 || (len == data_end + 4 && len != padded_end) {
            let mut b = [0u8; 4];
            source.read_exact_at(len - 4, &mut b).map_err(|e| source_error(e, "the CRC footer"))?;
            Some(u32::from_le_bytes(b))
        } else if len == padded_end || len == data_end {
            None
        } else {
            return Err(AprError::at(
                AprErrorKind::TrailingBytes { data_end, file_len: len },
                data_end,
            ));
        };

        Ok(AprFile { source, header, metadata_json, metadata, tensors, data_end, footer })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn flags(&self) -> u16 {
        self.header.flags
    }
    /// The metadata object. Numbers went through `serde_json`; for the exact text use
    /// [`AprFile::metadata_json`].
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }
    /// The metadata JSON exactly as stored (without its padding).
    pub fn metadata_json(&self) -> &[u8] {
        &self.metadata_json
    }
    pub fn hyperparameters(&self) -> Result<Hyperparameters, AprError> {
        Hyperparameters::from_metadata(&self.metadata)
    }
    /// The tensor index, sorted by name.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.binary_search_by(|t| t.name.as_str().cmp(name)).ok().map(|i| &self.tensors[i])
    }
    /// The stored CRC32 footer, when the file has one.
    pub fn footer_crc(&self) -> Option<u32> {
        self.footer
    }
    /// Where the last payload ends (unpadded).
    pub fn data_end(&self) -> u64 {
        self.data_end
    }
    pub fn source(&self) -> &S {
        &self.source
    }
    pub fn into_source(self) -> S {
        self.source
    }

    /// Check the CRC32 footer against every byte before it, reading the file in 1 MiB pages.
    /// Returns the CRC, or `None` when the file has no footer.
    pub fn verify_footer(&self) -> Result<Option<u32>, AprError> {
        let Some(stored) = self.footer else {
            return Ok(None);
        };
        let end = self.source.len() - 4;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CRC_CHUNK.min(end) as usize];
        let mut pos = 0;
        while pos < end {
            let n = CRC_CHUNK.min(end - pos) as usize;
            self.source
                .read_exact_at(pos, &mut buf[..n])
                .map_err(|e| source_error(e, "the file body"))?;
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        let computed = hasher.finalize();
        if computed != stored {
            return Err(AprError::at(AprErrorKind::FooterChecksum { stored, computed }, end));
        }
        Ok(Some(stored))
    }

    fn find(&self, name: &str) -> Result<&TensorInfo, AprError> {
        self.tensor(name).ok_or_else(|| {
            AprError::nowhere(AprErrorKind::TensorNotFound { name: name.to_string() })
        })
    }

    fn read(&self, t: &TensorInfo, range: Range<u64>) -> Result<SourceBytes, AprError> {
        let start = t.file_offset + range.start;
        self.source
            .read_range(start..t.file_offset + range.end)
            .map_err(|e| source_error(e, "a tensor payload"))
    }

    /// The payload bytes of a tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<SourceBytes, AprError> {
        let t = self.find(name)?;
        self.read(t, 0..t.size)
    }

    /// The payload bytes of rows `rows` (rows of [`TensorInfo::row_len`] values), reading only
    /// them. Needs rows that are whole blocks of the dtype; APR-Q8 rows cannot be read alone
    /// (the scale lives elsewhere): use [`AprFile::tensor_rows_f32`].
    pub fn tensor_rows(&self, name: &str, rows: Range<u64>) -> Result<SourceBytes, AprError> {
        let t = self.find(name)?;
        check_rows(t, &rows)?;
        let row_bytes = match t.dtype {
            TensorType::AprQ8 => None,
            TensorType::AprQ4 if t.row_len() % APR_Q4_BLOCK != 0 => None,
            dtype => dtype.bytes_for(t.row_len()),
        }
        .ok_or_else(|| {
            unsupported(
                t,
                format!("rows of {} values are not whole {} blocks", t.row_len(), t.dtype),
            )
        })?;
        self.read(t, rows.start * row_bytes..rows.end * row_bytes)
    }

    /// A whole tensor as f32.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, AprError> {
        let t = self.find(name)?;
        let bytes = self.read(t, 0..t.size)?;
        to_f32(t, t.dtype, &bytes, t.n_values)
    }

    /// Rows `rows` of a tensor as f32, reading only the bytes they need.
    pub fn tensor_rows_f32(&self, name: &str, rows: Range<u64>) -> Result<Vec<f32>, AprError> {
        let t = self.find(name)?;
        check_rows(t, &rows)?;
        let (v0, v1) = (rows.start * t.row_len(), rows.end * t.row_len());
        match t.dtype {
            TensorType::AprQ8 => {
                if v0 == v1 {
                    return Ok(Vec::new());
                }
                let scale = self.read(t, 0..4)?;
                let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
                Ok(dequantize_apr_q8_values(scale, &self.read(t, 4 + v0..4 + v1)?))
            }
            TensorType::AprQ4 => {
                // Blocks run across row ends: read the blocks covering the values, then cut.
                let (b0, b1) = (v0 / APR_Q4_BLOCK, v1.div_ceil(APR_Q4_BLOCK));
                let bytes = self.read(t, b0 * APR_Q4_BLOCK_BYTES..b1 * APR_Q4_BLOCK_BYTES)?;
                let covered = (b1 * APR_Q4_BLOCK).min(t.n_values) - b0 * APR_Q4_BLOCK;
                let values = to_f32(t, t.dtype, &bytes, covered)?;
                let skip = (v0 - b0 * APR_Q4_BLOCK) as usize;
                Ok(values[skip..skip + (v1 - v0) as usize].to_vec())
            }
            dtype => {
                let bytes = self.tensor_rows(name, rows)?;
                to_f32(t, dtype, &bytes, v1 - v0)
            }
        }
    }
}

fn check_rows(t: &TensorInfo, rows: &Range<u64>) -> Result<(), AprError> {
    if rows.start > rows.end || rows.end > t.n_rows() {
        return Err(AprError::nowhere(AprErrorKind::BadRowRange {
            name: t.name.clone(),
            start: rows.start,
            end: rows.end,
            rows: t.n_rows(),
        }));
    }
    Ok(())
}

fn unsupported(t: &TensorInfo, message: String) -> AprError {
    AprError::at(AprErrorKind::Unsupported { name: t.name.clone(), message }, t.file_offset)
}

/// Turn `n` values of `dtype` held in `bytes` into f32.
fn to_f32(t: &TensorInfo, dtype: TensorType, bytes: &[u8], n: u64) -> Result<Vec<f32>, AprError> {
    let n = usize::try_from(n)
        .map_err(|_| unsupported(t, "too many values for this platform".into()))?;
    let bad_len =
        || unsupported(t, format!("{} bytes do not hold {n} values of {dtype}", bytes.len()));
    match dtype {
        TensorType::AprQ4 => dequantize_apr_q4(bytes, n).ok_or_else(bad_len),
        TensorType::AprQ8 => dequantize_apr_q8(bytes, n).ok_or_else(bad_len),
        TensorType::U8 => Err(unsupported(t, "U8 tensors hold integers, not weights".into())),
        TensorType::Ggml(g) if !g.is_dequantizable() => {
            Err(unsupported(t, format!("{g} cannot be turned into f32 by parallax-quant")))
        }
        TensorType::Ggml(g) => {
            // The payload was checked against dims and dtype, so the output is no larger than
            // the file allows.
            let mut out = vec![0f32; n];
            parallax_quant::dequantize(g, bytes, &mut out)
                .map_err(|e| unsupported(t, e.to_string()))?;
            Ok(out)
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Byte offset of a serde_json error (it reports line and column).
fn json_error_offset(text: &[u8], e: &serde_json::Error) -> u64 {
    let mut line = 1;
    for (i, &c) in text.iter().enumerate() {
        if line == e.line() {
            return (i + e.column().saturating_sub(1)) as u64;
        }
        if c == b'\n' {
            line += 1;
        }
    }
    text.len() as u64
}

pub(crate) fn align64(x: u64) -> u64 {
    x.div_ceil(64).saturating_mul(64)
}

/// Parse the tensor index from `buf` (the bytes from the index offset to the data offset).
/// Returns the entries and where the last payload ends.
fn parse_index(
    header: &Header,
    buf: &[u8],
    file_len: u64,
) -> Result<(Vec<TensorInfo>, u64), AprError> {
    let base = header.tensor_index_offset;
    let count = header.tensor_count as u64;
    let max = buf.len() as u64 / MIN_ENTRY_BYTES;
    if count > max {
        return Err(AprError::at(
            AprErrorKind::CountTooLarge { what: "tensor_count", count, max },
            8,
        ));
    }
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(count as usize);
    let mut pos = 0usize;
    let mut data_end = header.data_offset;
    for i in 0..header.tensor_count {
        let entry_at = base + pos as u64;
        let truncated = |pos: usize, need: usize| {
            AprError::at(
                AprErrorKind::Truncated {
                    what: "the tensor index (it runs into the data section)",
                    needed_end: base + (pos + need) as u64,
                    file_len: header.data_offset,
                },
                entry_at,
            )
        };
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], AprError> {
            let s = buf.get(*pos..*pos + n).ok_or_else(|| truncated(*pos, n))?;
            *pos += n;
            Ok(s)
        };
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));

        let name_len = u16::from_le_bytes(take(&mut pos, 2)?.try_into().unwrap_or([0; 2])) as usize;
        let name = std::str::from_utf8(take(&mut pos, name_len)?)
            .ok()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| AprError::at(AprErrorKind::BadTensorName { index: i }, entry_at + 2))?
            .to_string();
        let dtype_at = base + pos as u64;
        let (dtype_id, ndim) = {
            let b = take(&mut pos, 2)?;
            (b[0], b[1])
        };
        if ndim > MAX_DIMS {
            return Err(AprError::at(AprErrorKind::TooManyDims { name, ndim }, dtype_at + 1));
        }
        let mut dims = Vec::with_capacity(ndim as usize);
        for _ in 0..ndim {
            dims.push(u64_of(take(&mut pos, 8)?));
        }
        let offset = u64_of(take(&mut pos, 8)?);
        let size = u64_of(take(&mut pos, 8)?);

        let n_values =
            dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
                AprError::at(AprErrorKind::DimsOverflow { name: name.clone() }, dtype_at + 2)
            })?;
        let dtype = TensorType::resolve(dtype_id, n_values, size).map_err(|r| match r {
            Resolve::Unknown => AprError::at(
                AprErrorKind::UnknownDtype { name: name.clone(), id: dtype_id },
                dtype_at,
            ),
            Resolve::SizeMismatch { dtype, expected } => AprError::at(
                AprErrorKind::PayloadSize {
                    name: name.clone(),
                    dtype,
                    dims: dims.clone(),
                    expected,
                    found: size,
                },
                dtype_at,
            ),
        })?;
        let start = header.data_offset.checked_add(offset);
        let end = start.and_then(|s| s.checked_add(size));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= file_len => (s, e),
            _ => {
                return Err(AprError::at(
                    AprErrorKind::TensorOutOfBounds {
                        name,
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        file_len,
                    },
                    entry_at,
                ))
            }
        };
        if let Some(prev) = tensors.last() {
            if prev.name == name {
                return Err(AprError::at(AprErrorKind::DuplicateTensor { name }, entry_at));
            }
            if prev.name > name {
                return Err(AprError::at(
                    AprErrorKind::UnsortedIndex { previous: prev.name.clone(), name },
                    entry_at,
                ));
            }
        }
        data_end = data_end.max(end);
        tensors.push(TensorInfo {
            name,
            dtype,
            dtype_id,
            dims,
            offset,
            size,
            file_offset: start,
            n_values,
        });
    }
    // Upstream's writers pad the index with zeros up to the data section.
    Ok((tensors, data_end))
}
