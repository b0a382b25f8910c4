//! Writing GGUF v3 files: metadata of every type, tensors of any ggml type from raw bytes.
//!
//! The byte layout follows gguf-py's `GGUFWriter` (header, key/values, tensor infos, zero padding
//! to the alignment, then each tensor's bytes padded to the alignment), so for the same inputs
//! the two produce identical files. [`GgufWriter::to_bytes_with_layout`] also returns where every
//! field landed, which is how tests build malformed files: write a valid one, then patch a field.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};

use parallax_quant::GgmlType;

use crate::reader::{align_up, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::value::{MetaArray, MetaValue};

/// A writer refused an input (before writing anything).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    DuplicateKey {
        key: String,
    },
    DuplicateTensor {
        name: String,
    },
    /// Alignment not a nonzero power of two, or `general.alignment` given as a non-u32.
    BadAlignment {
        message: String,
    },
    /// More than 4 dims, a zero dim, a row that is not whole blocks, or an overflowing size.
    BadShape {
        name: String,
        dims: Vec<u64>,
        message: String,
    },
    /// The data does not hold exactly the bytes the shape and type need.
    DataLength {
        name: String,
        expected: u64,
        got: u64,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::DuplicateKey { key } => write!(f, "metadata key \"{key}\" was added twice"),
            WriteError::DuplicateTensor { name } => write!(f, "tensor \"{name}\" was added twice"),
            WriteError::BadAlignment { message } => write!(f, "bad alignment: {message}"),
            WriteError::BadShape { name, dims, message } => {
                write!(f, "tensor \"{name}\" with shape {dims:?}: {message}")
            }
            WriteError::DataLength { name, expected, got } => {
                write!(f, "tensor \"{name}\" needs {expected} bytes of data, got {got}")
            }
        }
    }
}

impl std::error::Error for WriteError {}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory.
///
/// ```
/// use parallax_gguf::writer::GgufWriter;
/// use parallax_gguf::{GgufFile, GgmlType};
/// use parallax_source::MemorySource;
///
/// let mut w = GgufWriter::new();
/// w.add("general.architecture", "qwen2").unwrap();
/// w.add_f32_tensor("norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
/// let file = GgufFile::read(&MemorySource::new(w.to_bytes())).unwrap();
/// assert_eq!(file.get_str("general.architecture"), Some("qwen2"));
/// assert_eq!(file.tensor("norm.weight").unwrap().ty, GgmlType::F32);
/// ```
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

/// Where each field of a written file starts (absolute byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub version_at: u64,
    pub tensor_count_at: u64,
    pub kv_count_at: u64,
    pub kvs: Vec<KvLayout>,
    pub tensors: Vec<TensorLayout>,
    /// End of the tensor infos (before padding).
    pub header_len: u64,
    pub data_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLayout {
    pub key: String,
    /// The key's u64 length (start of the pair).
    pub at: u64,
    /// The u32 value type.
    pub type_at: u64,
    /// The value; for an array: its u32 element type, then the u64 count at `value_at + 4`.
    pub value_at: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLayout {
    pub name: String,
    /// The name's u64 length (start of the record).
    pub at: u64,
    pub n_dims_at: u64,
    pub dims_at: u64,
    pub type_at: u64,
    pub offset_at: u64,
    /// Absolute offset of the tensor's bytes.
    pub data_at: u64,
    pub n_bytes: u64,
}

impl GgufWriter {
    /// An empty version-3 file with the default alignment (32).
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// Write `version` in the header. 2 and 3 give valid files (same layout); any other number
    /// gives a file readers reject, which is what tests of version handling want.
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Add a metadata pair. Adding `general.alignment` (as a u32 power of two) also sets the
    /// alignment the file is laid out with.
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: impl Into<MetaValue>,
    ) -> Result<&mut Self, WriteError> {
        let key = key.into();
        let value = value.into();
        if self.keys.contains(&key) {
            return Err(WriteError::DuplicateKey { key });
        }
        if key == ALIGNMENT_KEY {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => self.alignment = a.into(),
                ref v => {
                    return Err(WriteError::BadAlignment {
                        message: format!("general.alignment must be a u32 power of two, got {v:?}"),
                    })
                }
            }
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(self)
    }

    /// Lay the file out with `alignment` (adds `general.alignment`).
    pub fn set_alignment(&mut self, alignment: u32) -> Result<&mut Self, WriteError> {
        self.add(ALIGNMENT_KEY, alignment)
    }

    /// Add a tensor of type `ty` with ggml shape `dims` (`ne[0]` first) and its raw bytes.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, WriteError> {
        let name = name.into();
        let data = data.into();
        let bad = |message: String| WriteError::BadShape {
            name: name.clone(),
            dims: dims.to_vec(),
            message,
        };
        if self.names.contains(&name) {
            return Err(WriteError::DuplicateTensor { name });
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(bad(format!("more than {MAX_DIMS} dimensions")));
        }
        if dims.contains(&0) {
            return Err(bad("a dimension is 0".into()));
        }
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % ty.block_size() as u64 != 0 {
            return Err(bad(format!(
                "ne[0] is not a multiple of the {ty} block size {}",
                ty.block_size()
            )));
        }
        let expected = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| ty.bytes_for(n))
            .ok_or_else(|| bad("the size overflows".into()))?;
        if data.len() as u64 != expected {
            return Err(WriteError::DataLength { name, expected, got: data.len() as u64 });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor { name, dims: dims.to_vec(), ty, data });
        Ok(self)
    }

    /// Add an F32 tensor from values.
    pub fn add_f32_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        values: &[f32],
    ) -> Result<&mut Self, WriteError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor(name, dims, GgmlType::F32, bytes)
    }

    /// The complete file.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_layout().0
    }

    /// Write the complete file to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.to_bytes())
    }

    /// The complete file and where each field landed.
    pub fn to_bytes_with_layout(&self) -> (Vec<u8>, Layout) {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        let version_at = out.len() as u64;
        out.extend_from_slice(&self.version.to_le_bytes());
        let tensor_count_at = out.len() as u64;
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        let kv_count_at = out.len() as u64;
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());

        let mut kvs = Vec::with_capacity(self.metadata.len());
        for (key, value) in &self.metadata {
            let at = out.len() as u64;
            put_str(&mut out, key);
            let type_at = out.len() as u64;
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            let value_at = out.len() as u64;
            put_value(&mut out, value);
            kvs.push(KvLayout { key: key.clone(), at, type_at, value_at, end: out.len() as u64 });
        }

        let mut tensors = Vec::with_capacity(self.tensors.len());
        let mut rel = 0u64;
        for t in &self.tensors {
            let at = out.len() as u64;
            put_str(&mut out, &t.name);
            let n_dims_at = out.len() as u64;
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            let dims_at = out.len() as u64;
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            let type_at = out.len() as u64;
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            let offset_at = out.len() as u64;
            out.extend_from_slice(&rel.to_le_bytes());
            let n_bytes = t.data.len() as u64;
            tensors.push(TensorLayout {
                name: t.name.clone(),
                at,
                n_dims_at,
                dims_at,
                type_at,
                offset_at,
                data_at: rel,
                n_bytes,
            });
            rel = align_up(rel + n_bytes, self.alignment);
        }

        let header_len = out.len() as u64;
        let data_offset = align_up(header_len, self.alignment);
        out.resize(data_offset as usize, 0);
        for (t, l) in self.tensors.iter().zip(&mut tensors) {
            l.data_at += data_offset;
            out.extend_from_slice(&t.data);
            out.resize(align_up(out.len() as u64, self.alignment) as usize, 0);
        }
        let layout = Layout {
            version_at,
            tensor_count_at,
            kv_count_at,
            kvs,
            tensors,
            header_len,
            data_offset,
        };
        (out, layout)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(a) => put_array(out, a),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Element type, count, elements. Elements of an array of arrays are written the same way, with
/// no per-element type tag (the outer element type already says "array").
fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    out.extend_from_slice(&a.elem_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        MetaArray::U8(v) => out.extend_from_slice(v),
        MetaArray::I8(v) => each!(v),
        MetaArray::U16(v) => each!(v),
        MetaArray::I16(v) => each!(v),
        MetaArray::U32(v) => each!(v),
        MetaArray::I32(v) => each!(v),
        MetaArray::F32(v) => each!(v),
        MetaArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        MetaArray::String(v) => v.iter().for_each(|s| put_str(out, s)),
        MetaArray::Array(v) => v.iter().for_each(|inner| put_array(out, inner)),
        MetaArray::U64(v) => each!(v),
        MetaArray::I64(v) => each!(v),
        MetaArray::F64(v) => each!(v),
    }
}
