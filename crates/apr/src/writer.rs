//! Writing APR v2 files laid out the way upstream's `AprV2Writer` lays them out: header with
//! CRC, JSON metadata padded with zeros to a multiple of 64, the index sorted by name padded to
//! 64, payloads in name order each padded to 64, then (optionally) a CRC32 of all of it.

use std::io::Write;

use serde_json::{Map, Value};

use crate::dtype::{Resolve, TensorType};
use crate::error::{AprError, AprErrorKind};
use crate::header::{Header, HEADER_SIZE};
use crate::reader::align64;

struct PendingTensor {
    name: String,
    dtype_id: u8,
    dims: Vec<u64>,
    data: Vec<u8>,
}

/// Builds an APR v2 file. Tensor payloads are held in memory until [`AprWriter::write_to`].
pub struct AprWriter {
    flags: u16,
    metadata_json: Vec<u8>,
    footer: bool,
    tensors: Vec<PendingTensor>,
}

fn writer_error(message: String) -> AprError {
    AprError::nowhere(AprErrorKind::Writer { message })
}

impl AprWriter {
    /// A writer with the given header flags (upstream's plain import writes
    /// [`crate::FLAG_ROW_MAJOR`] with a footer; `--preserve-q4k` writes [`crate::FLAG_QUANTIZED`]
    /// without one), empty metadata `{}` and a CRC footer.
    pub fn new(flags: u16) -> Self {
        AprWriter { flags, metadata_json: b"{}".to_vec(), footer: true, tensors: Vec::new() }
    }

    /// Whether to append the 4-byte CRC32 footer (default: yes).
    pub fn with_footer(mut self, footer: bool) -> Self {
        self.footer = footer;
        self
    }

    /// Metadata from a JSON object (keys in `serde_json`'s order).
    pub fn set_metadata(&mut self, meta: &Map<String, Value>) {
        // Serializing a Map of Values cannot fail.
        self.metadata_json = serde_json::to_vec(meta).unwrap_or_else(|_| b"{}".to_vec());
    }

    /// Metadata as exact JSON text (to control key order and number formatting). It must be a
    /// JSON object no longer than `u32::MAX` bytes.
    pub fn set_metadata_json(&mut self, json: Vec<u8>) -> Result<(), AprError> {
        match serde_json::from_slice::<Value>(&json) {
            Ok(Value::Object(_)) if u32::try_from(json.len()).is_ok() => {
                self.metadata_json = json;
                Ok(())
            }
            Ok(Value::Object(_)) => {
                Err(writer_error(format!("metadata of {} bytes is too large", json.len())))
            }
            Ok(_) => Err(writer_error("metadata must be a JSON object".into())),
            Err(e) => Err(writer_error(format!("metadata is not valid JSON: {e}"))),
        }
    }

    /// Add a tensor. `dims` are row-major, outermost first (`[out, in]`), as APR stores them.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: TensorType,
        dims: Vec<u64>,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), AprError> {
        self.add_tensor_with_id(name, dtype.apr_id(), dims, data)
    }

    /// Add a tensor under an explicit dtype id (e.g. a legacy one, to reproduce a file).
    pub fn add_tensor_with_id(
        &mut self,
        name: impl Into<String>,
        dtype_id: u8,
        dims: Vec<u64>,
        data: impl Into<Vec<u8>>,
    ) -> Result<(), AprError> {
        let (name, data) = (name.into(), data.into());
        if name.is_empty() || name.len() > u16::MAX as usize {
            return Err(writer_error(format!(
                "tensor name of {} bytes (1..=65535 allowed)",
                name.len()
            )));
        }
        if dims.len() > 8 {
            return Err(writer_error(format!(
                "tensor \"{name}\" has {} dims (at most 8)",
                dims.len()
            )));
        }
        let n = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| writer_error(format!("tensor \"{name}\": dims {dims:?} overflow")))?;
        match TensorType::resolve(dtype_id, n, data.len() as u64) {
            Ok(_) => {}
            Err(Resolve::Unknown) => {
                return Err(writer_error(format!("tensor \"{name}\": unknown dtype id {dtype_id}")))
            }
            Err(Resolve::SizeMismatch { expected, .. }) => {
                return Err(writer_error(format!(
                    "tensor \"{name}\" (dims {dims:?}) has {} bytes, expected {expected}",
                    data.len()
                )))
            }
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(writer_error(format!("tensor \"{name}\" added twice")));
        }
        self.tensors.push(PendingTensor { name, dtype_id, dims, data });
        Ok(())
    }

    /// Write the file into a vector.
    pub fn write(self) -> Result<Vec<u8>, AprError> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Write the file to `w`.
    pub fn write_to<W: Write>(mut self, w: &mut W) -> Result<(), AprError> {
        self.tensors.sort_by(|a, b| a.name.cmp(&b.name));

        let mut index = Vec::new();
        let mut data_len = 0u64;
        for t in &self.tensors {
            index.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
            index.extend_from_slice(t.name.as_bytes());
            index.push(t.dtype_id);
            index.push(t.dims.len() as u8);
            for d in &t.dims {
                index.extend_from_slice(&d.to_le_bytes());
            }
            index.extend_from_slice(&data_len.to_le_bytes());
            index.extend_from_slice(&(t.data.len() as u64).to_le_bytes());
            data_len += align64(t.data.len() as u64);
        }
        let metadata_offset = HEADER_SIZE;
        let tensor_index_offset = metadata_offset + align64(self.metadata_json.len() as u64);
        let data_offset = tensor_index_offset + align64(index.len() as u64);
        let tensor_count = u32::try_from(self.tensors.len())
            .map_err(|_| writer_error("too many tensors".into()))?;
        let mut header = Header {
            version: (2, 0),
            flags: self.flags,
            tensor_count,
            metadata_offset,
            metadata_size: self.metadata_json.len() as u32,
            tensor_index_offset,
            data_offset,
            checksum: 0,
            reserved: [0; 20],
        };
        header.checksum = header.compute_checksum();

        let mut w = HashingWriter { inner: w, hasher: crc32fast::Hasher::new() };
        let io = |e: std::io::Error| writer_error(e.to_string());
        w.write_all(&header.to_bytes()).map_err(io)?;
        write_padded(&mut w, &self.metadata_json).map_err(io)?;
        write_padded(&mut w, &index).map_err(io)?;
        for t in &self.tensors {
            write_padded(&mut w, &t.data).map_err(io)?;
        }
        if self.footer {
            let crc = w.hasher.clone().finalize();
            w.inner.write_all(&crc.to_le_bytes()).map_err(io)?;
        }
        w.inner.flush().map_err(io)
    }
}

fn write_padded<W: Write>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes)?;
    let pad = align64(bytes.len() as u64) - bytes.len() as u64;
    w.write_all(&[0u8; 64][..pad as usize])
}

/// Hashes what goes through it, for the footer, so the file is never held whole.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
