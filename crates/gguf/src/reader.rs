//! Parsing and validating a GGUF header, and reading tensor bytes by range.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use parallax_quant::GgmlType;
use parallax_source::{ByteSource, Cursor, SourceBytes, SourceError};

use crate::error::{GgufError, GgufErrorKind};
use crate::value::{MetaArray, MetaValue, StringArray, ValueType};

/// `GGUF` as it appears in the first four bytes of a little-endian file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides [`DEFAULT_ALIGNMENT`] (must be a u32).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// Byte offset of the metadata section (after magic, version and the two counts).
const METADATA_START: u64 = 24;
/// Smallest encoding of one key/value pair: key length, value type, a 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoding of one tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Preallocation cap for the key/value and tensor-info lists: real files have tens to hundreds
/// of each, so beyond this they grow only as records are actually parsed.
const MAX_PREALLOC: u64 = 1 << 10;

/// Choices a caller can make about what the reader tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Reject string *values* that are not UTF-8 instead of repairing them. Keys and tensor names
    /// are always strict: they are identifiers, and a repaired one would silently not match.
    pub strict_utf8: bool,
    /// Deepest nesting of arrays accepted (an array of arrays is depth 2).
    pub max_array_depth: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { strict_utf8: false, max_array_depth: 8 }
    }
}

impl ReadOptions {
    pub fn strict_utf8(mut self, strict: bool) -> Self {
        self.strict_utf8 = strict;
        self
    }
    pub fn max_array_depth(mut self, depth: usize) -> Self {
        self.max_array_depth = depth;
        self
    }
}

/// A string value that was not valid UTF-8 and was decoded with U+FFFD replacements.
///
/// Real tokenizers are valid UTF-8, but some converters have written stray bytes into a token
/// piece; refusing the whole model over one piece helps nobody, silently changing it would hide
/// the fact. So the reader repairs and records, and the caller decides whether to warn.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RepairedString {
    pub key: String,
    /// Offset of the string's bytes in the file.
    pub offset: u64,
}

/// One tensor as described by the header. Offsets are checked: the bytes lie inside the file,
/// aligned, and overlap no other tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TensorInfo {
    pub name: String,
    /// ggml shape `ne[0..n_dims]`; `ne[0]` is the contiguous row length. Empty for a scalar.
    pub dims: Vec<u64>,
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser_type"))]
    pub ty: GgmlType,
    /// Offset of the data relative to the data section, as written in the file.
    pub rel_offset: u64,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
    /// Where this tensor's info record starts in the header (for messages).
    pub info_offset: u64,
}

#[cfg(feature = "serde")]
fn ser_type<S: serde::Serializer>(ty: &GgmlType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(ty.name())
}

impl TensorInfo {
    /// `ne[i]`, with ggml's convention that missing dimensions are 1.
    pub fn ne(&self, i: usize) -> u64 {
        self.dims.get(i).copied().unwrap_or(1)
    }
    /// Values per row (`ne[0]`).
    pub fn row_len(&self) -> u64 {
        self.ne(0)
    }
    /// Rows: every dimension above `ne[0]` flattened (`ne[1]` for a matrix).
    pub fn n_rows(&self) -> u64 {
        // Exact for infos from the reader (no zero dims); checked so a hand-made info cannot panic.
        self.n_elements.checked_div(self.row_len()).unwrap_or(0)
    }
    /// Bytes per row.
    pub fn row_bytes(&self) -> u64 {
        self.n_bytes.checked_div(self.n_rows()).unwrap_or(0)
    }
    /// The tensor's bytes in the file.
    pub fn byte_range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(self.n_bytes)
    }
}

/// A parsed, validated GGUF header. Holds no tensor data: read that with
/// [`GgufFile::tensor_bytes`] / [`GgufFile::tensor_rows`] from the same source.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    meta_offsets: Vec<u64>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    header_len: u64,
    data_offset: u64,
    file_len: u64,
    repaired: Vec<RepairedString>,
}

impl GgufFile {
    /// Read and validate the header of `source` with default [`ReadOptions`]. Pulls only the
    /// header bytes (plus at most one read-ahead chunk); never reads tensor data.
    pub fn read<S: ByteSource + ?Sized>(source: &S) -> Result<GgufFile, GgufError> {
        GgufFile::read_with(source, ReadOptions::default())
    }

    pub fn read_with<S: ByteSource + ?Sized>(
        source: &S,
        options: ReadOptions,
    ) -> Result<GgufFile, GgufError> {
        Parser { cur: Cursor::new(source, 0), options, repaired: Vec::new() }.parse()
    }

    /// 2 or 3 (they differ only in big-endian support, which this reader refuses).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Every key/value pair, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }
    /// Byte offset where the key/value pair for `key` starts.
    pub fn metadata_offset(&self, key: &str) -> Option<u64> {
        self.meta_index.get(key).map(|&i| self.meta_offsets[i])
    }
    /// Every tensor, in header order (which is not always data order).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
    /// The alignment in force (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Where the header (magic, metadata, tensor infos) ends, before padding.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }
    /// Start of the data section: [`GgufFile::header_len`] rounded up to the alignment.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// Length of the source the header was read from.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// String values that were not UTF-8 and were repaired (empty for well-formed files).
    pub fn repaired_strings(&self) -> &[RepairedString] {
        &self.repaired
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }
    /// Any non-negative integer value, whatever width it was written with.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.get(key)?.as_u32()
    }
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }
    /// An f32, an f64 (narrowed) or an integer.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }
    pub fn get_arr(&self, key: &str) -> Option<&MetaArray> {
        self.get(key)?.as_array()
    }
    pub fn get_str_arr(&self, key: &str) -> Option<&StringArray> {
        self.get_arr(key)?.as_strs()
    }

    /// The value for `key`, or a [`GgufErrorKind::MissingKey`] error naming it.
    pub fn require(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::new(GgufErrorKind::MissingKey, METADATA_START).with_key(key))
    }
    fn require_as<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        f: impl FnOnce(&'a MetaValue) -> Option<T>,
    ) -> Result<T, GgufError> {
        let v = self.require(key)?;
        f(v).ok_or_else(|| {
            let at = self.metadata_offset(key).unwrap_or(METADATA_START);
            GgufError::new(GgufErrorKind::WrongType { expected, found: v.value_type() }, at)
                .with_key(key)
        })
    }
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.require_as(key, "a string", MetaValue::as_str)
    }
    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.require_as(key, "a non-negative integer", MetaValue::as_u64)
    }
    pub fn require_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.require_as(key, "a non-negative integer below 2^32", MetaValue::as_u32)
    }
    pub fn require_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.require_as(key, "a number", MetaValue::as_f32)
    }
    pub fn require_arr(&self, key: &str) -> Result<&MetaArray, GgufError> {
        self.require_as(key, "an array", MetaValue::as_array)
    }

    fn check_source<S: ByteSource + ?Sized>(
        &self,
        source: &S,
        info: &TensorInfo,
    ) -> Result<(), GgufError> {
        if source.len() != self.file_len {
            return Err(GgufError::new(
                GgufErrorKind::SourceMismatch {
                    header_len: self.file_len,
                    source_len: source.len(),
                },
                info.offset,
            )
            .with_tensor(&info.name));
        }
        Ok(())
    }

    /// All bytes of `info`'s tensor, read with one range request.
    pub fn tensor_bytes<S: ByteSource + ?Sized>(
        &self,
        source: &S,
        info: &TensorInfo,
    ) -> Result<SourceBytes, GgufError> {
        self.check_source(source, info)?;
        source
            .read_range(info.byte_range())
            .map_err(|e| GgufError::source("tensor data", e, info.offset).with_tensor(&info.name))
    }

    /// Read `info`'s bytes into `out`, which must be exactly [`TensorInfo::n_bytes`] long (lets a
    /// loader reuse one buffer).
    pub fn read_tensor_into<S: ByteSource + ?Sized>(
        &self,
        source: &S,
        info: &TensorInfo,
        out: &mut [u8],
    ) -> Result<(), GgufError> {
        self.check_source(source, info)?;
        if out.len() as u64 != info.n_bytes {
            let error = SourceError::Io {
                offset: info.offset,
                len: info.n_bytes,
                message: format!(
                    "the destination buffer holds {} bytes, not {}",
                    out.len(),
                    info.n_bytes
                ),
            };
            return Err(
                GgufError::source("tensor data", error, info.offset).with_tensor(&info.name)
            );
        }
        source
            .read_exact_at(info.offset, out)
            .map_err(|e| GgufError::source("tensor data", e, info.offset).with_tensor(&info.name))
    }

    /// The bytes of rows `rows` (indices along `ne[1]`, higher dimensions flattened) of `info`'s
    /// tensor: one range request for exactly those rows.
    pub fn tensor_rows<S: ByteSource + ?Sized>(
        &self,
        source: &S,
        info: &TensorInfo,
        rows: Range<u64>,
    ) -> Result<SourceBytes, GgufError> {
        self.check_source(source, info)?;
        let n_rows = info.n_rows();
        if rows.start > rows.end || rows.end > n_rows {
            return Err(GgufError::new(
                GgufErrorKind::RowsOutOfRange { start: rows.start, end: rows.end, n_rows },
                info.offset,
            )
            .with_tensor(&info.name));
        }
        // For infos from the reader these cannot overflow (rows.end * row_bytes <= n_bytes, and
        // the tensor lies inside the file); saturating keeps hand-made infos from panicking, and
        // the source then refuses the range.
        let row_bytes = info.row_bytes();
        let start = info.offset.saturating_add(rows.start.saturating_mul(row_bytes));
        let end = info.offset.saturating_add(rows.end.saturating_mul(row_bytes));
        source
            .read_range(start..end)
            .map_err(|e| GgufError::source("tensor rows", e, start).with_tensor(&info.name))
    }
}

struct Parser<'a, S: ByteSource + ?Sized> {
    cur: Cursor<'a, S>,
    options: ReadOptions,
    repaired: Vec<RepairedString>,
}

/// What a string is, for messages and for the UTF-8 policy.
#[derive(Clone, Copy)]
enum StrRole<'k> {
    Key,
    TensorName,
    Value(&'k str),
}

impl StrRole<'_> {
    /// What its length and its text are called in errors.
    fn what(self) -> (&'static str, &'static str) {
        match self {
            StrRole::Key => ("the length of a metadata key", "a metadata key"),
            StrRole::TensorName => ("the length of a tensor name", "a tensor name"),
            StrRole::Value(_) => ("the length of a string value", "a string value"),
        }
    }
}

impl<S: ByteSource + ?Sized> Parser<'_, S> {
    fn pos(&self) -> u64 {
        self.cur.position()
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        let at = self.pos();
        self.cur.u32().map_err(|e| GgufError::source(what, e, at))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        let at = self.pos();
        self.cur.u64().map_err(|e| GgufError::source(what, e, at))
    }

    fn bytes(&mut self, what: &'static str, len: u64) -> Result<Vec<u8>, GgufError> {
        let at = self.pos();
        self.cur.read_vec(len).map_err(|e| GgufError::source(what, e, at))
    }

    /// Fail unless `count` items of at least `min_each` bytes fit in what is left of the file.
    fn check_count(
        &self,
        what: &'static str,
        count: u64,
        min_each: u64,
        at: u64,
    ) -> Result<(), GgufError> {
        let remaining = self.cur.remaining();
        match count.checked_mul(min_each) {
            Some(need) if need <= remaining => Ok(()),
            _ => Err(GgufError::new(
                GgufErrorKind::CountTooLarge { what, count, min_bytes_each: min_each, remaining },
                at,
            )),
        }
    }

    fn string(&mut self, role: StrRole<'_>) -> Result<String, GgufError> {
        let mut bytes = Vec::new();
        let at = self.append_str_bytes(role, &mut bytes)?;
        if let Cow::Owned(repaired) = self.text(role, &bytes, at)? {
            return Ok(repaired);
        }
        // Valid UTF-8 as read: the buffer becomes the string, without a copy.
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
    }

    /// Appends the bytes of the string at the cursor (an 8-byte length, then them) to `out`;
    /// returns where they began in the file.
    fn append_str_bytes(&mut self, role: StrRole<'_>, out: &mut Vec<u8>) -> Result<u64, GgufError> {
        let (len_what, what) = role.what();
        let len_at = self.pos();
        let len = self.u64(len_what)?;
        self.check_count(len_what, len, 1, len_at)?;
        let at = self.pos();
        let Ok(n) = usize::try_from(len) else {
            return Err(GgufError::new(GgufErrorKind::TooLargeForMemory { what, count: len }, at));
        };
        let start = out.len();
        out.resize(start + n, 0);
        self.cur.read_into(&mut out[start..]).map_err(|e| GgufError::source(what, e, at))?;
        Ok(at)
    }

    /// A string's `bytes` (read at `at`) as text: invalid UTF-8 in a value is repaired (and
    /// recorded) unless the options are strict; in a key or a tensor name it is refused.
    fn text<'b>(
        &mut self,
        role: StrRole<'_>,
        bytes: &'b [u8],
        at: u64,
    ) -> Result<Cow<'b, str>, GgufError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(e) => match role {
                StrRole::Value(key) if !self.options.strict_utf8 => {
                    self.repaired.push(RepairedString { key: key.to_string(), offset: at });
                    Ok(String::from_utf8_lossy(bytes))
                }
                _ => Err(GgufError::new(
                    GgufErrorKind::InvalidUtf8 {
                        what: role.what().1,
                        valid_up_to: e.valid_up_to(),
                    },
                    at,
                )),
            },
        }
    }

    /// A string array's strings, read end to end into `text` (string `i` ends at `ends[i]`; the
    /// array's data began at `data_at`), as [`StringArray`]. One validation of the whole text
    /// where every string is UTF-8 (each boundary then a character's): one `from_utf8` a
    /// string was most of a vocabulary's parse. Otherwise each string is validated on its own
    /// and repaired or refused, as a string value is ([`Self::text`]).
    fn string_array(
        &mut self,
        key: &str,
        data_at: u64,
        text: Vec<u8>,
        ends: Vec<usize>,
    ) -> Result<StringArray, GgufError> {
        let text = match String::from_utf8(text) {
            Ok(t) if ends.iter().all(|&e| t.is_char_boundary(e)) => {
                return Ok(StringArray::from_parts(t, ends));
            }
            Ok(t) => t.into_bytes(),
            Err(e) => e.into_bytes(),
        };
        let mut out = StringArray::try_with_capacity(ends.len())
            .ok_or_else(|| too_large(ends.len() as u64, data_at))?;
        let mut begin = 0;
        for (i, &end) in ends.iter().enumerate() {
            // Each string follows its 8-byte length.
            let at = data_at + 8 * (i as u64 + 1) + begin as u64;
            out.push(&self.text(StrRole::Value(key), &text[begin..end], at)?);
            begin = end;
        }
        Ok(out)
    }

    fn value_type(&mut self, what: &'static str) -> Result<ValueType, GgufError> {
        let at = self.pos();
        let id = self.u32(what)?;
        ValueType::from_id(id)
            .ok_or_else(|| GgufError::new(GgufErrorKind::UnknownValueType { id }, at))
    }

    fn value(&mut self, ty: ValueType, key: &str) -> Result<MetaValue, GgufError> {
        macro_rules! scalar {
            ($variant:ident, $t:ty, $what:expr) => {{
                let at = self.pos();
                let a = self
                    .cur
                    .read_array::<{ std::mem::size_of::<$t>() }>()
                    .map_err(|e| GgufError::source($what, e, at))?;
                MetaValue::$variant(<$t>::from_le_bytes(a))
            }};
        }
        Ok(match ty {
            ValueType::U8 => scalar!(U8, u8, "a u8 value"),
            ValueType::I8 => scalar!(I8, i8, "an i8 value"),
            ValueType::U16 => scalar!(U16, u16, "a u16 value"),
            ValueType::I16 => scalar!(I16, i16, "an i16 value"),
            ValueType::U32 => scalar!(U32, u32, "a u32 value"),
            ValueType::I32 => scalar!(I32, i32, "an i32 value"),
            ValueType::F32 => scalar!(F32, f32, "an f32 value"),
            ValueType::U64 => scalar!(U64, u64, "a u64 value"),
            ValueType::I64 => scalar!(I64, i64, "an i64 value"),
            ValueType::F64 => scalar!(F64, f64, "an f64 value"),
            ValueType::Bool => {
                let at = self.pos();
                let b = self.cur.u8().map_err(|e| GgufError::source("a bool value", e, at))?;
                MetaValue::Bool(to_bool(b, at)?)
            }
            ValueType::String => MetaValue::String(self.string(StrRole::Value(key))?),
            ValueType::Array => MetaValue::Array(self.array(key, 1)?),
        })
    }

    fn array(&mut self, key: &str, depth: usize) -> Result<MetaArray, GgufError> {
        let type_at = self.pos();
        if depth > self.options.max_array_depth {
            return Err(GgufError::new(
                GgufErrorKind::NestingTooDeep { max: self.options.max_array_depth },
                type_at,
            ));
        }
        let elem = self.value_type("the element type of an array")?;
        let count_at = self.pos();
        let count = self.u64("the length of an array")?;
        self.check_count("the length of an array", count, elem.min_encoded_size(), count_at)?;

        if let Some(size) = elem.fixed_size() {
            // Checked above: count * size <= remaining bytes.
            let data_at = self.pos();
            let bytes = self.bytes("array elements", count * size)?;
            return fixed_array(elem, &bytes, data_at);
        }
        let mut n = 0;
        match elem {
            ValueType::String => {
                let data_at = self.pos();
                let mut ends: Vec<usize> = alloc_vec(count, count_at)?;
                let mut text = Vec::new();
                while n < count {
                    self.append_str_bytes(StrRole::Value(key), &mut text)?;
                    ends.push(text.len());
                    n += 1;
                }
                Ok(MetaArray::String(self.string_array(key, data_at, text, ends)?))
            }
            _ => {
                let mut v = alloc_vec(count, count_at)?;
                while n < count {
                    v.push(self.array(key, depth + 1)?);
                    n += 1;
                }
                Ok(MetaArray::Array(v))
            }
        }
    }

    fn parse(mut self) -> Result<GgufFile, GgufError> {
        let file_len = self.cur.source_len();
        let magic: [u8; 4] =
            self.cur.read_array().map_err(|e| GgufError::source("the magic bytes", e, 0))?;
        if magic == *b"FUGG" {
            return Err(GgufError::new(GgufErrorKind::BigEndian, 0));
        }
        if magic != GGUF_MAGIC {
            return Err(GgufError::new(GgufErrorKind::BadMagic { found: magic }, 0));
        }
        let version = self.u32("the version")?;
        if version & 0xffff == 0 && version != 0 {
            // A small version number written big-endian (gguf-py detects endianness the same way).
            return Err(GgufError::new(GgufErrorKind::BigEndian, 4));
        }
        if version != 2 && version != 3 {
            return Err(GgufError::new(GgufErrorKind::UnsupportedVersion { version }, 4));
        }
        let n_tensors = self.u64("the tensor count")?;
        let n_kv = self.u64("the metadata count")?;
        // Each count alone, then both together, must fit in the rest of the file.
        self.check_count("the tensor count", n_tensors, MIN_TENSOR_INFO_BYTES, 8)?;
        self.check_count("the metadata count", n_kv, MIN_KV_BYTES, 16)?;
        let need = (n_tensors * MIN_TENSOR_INFO_BYTES).saturating_add(n_kv * MIN_KV_BYTES);
        if need > self.cur.remaining() {
            return Err(GgufError::new(
                GgufErrorKind::CountTooLarge {
                    what: "the metadata count (with the tensor count)",
                    count: n_kv,
                    min_bytes_each: MIN_KV_BYTES,
                    remaining: self
                        .cur
                        .remaining()
                        .saturating_sub(n_tensors * MIN_TENSOR_INFO_BYTES),
                },
                16,
            ));
        }

        let mut metadata = Vec::with_capacity(n_kv.min(MAX_PREALLOC) as usize);
        let mut meta_offsets = Vec::with_capacity(n_kv.min(MAX_PREALLOC) as usize);
        let mut meta_index = HashMap::new();
        let mut alignment = DEFAULT_ALIGNMENT;
        for _ in 0..n_kv {
            let kv_at = self.pos();
            let key = self.string(StrRole::Key)?;
            if meta_index.contains_key(&key) {
                return Err(GgufError::new(GgufErrorKind::DuplicateKey, kv_at).with_key(&key));
            }
            let ty = self.value_type("the value type").map_err(|e| e.with_key(&key))?;
            let value_at = self.pos();
            let value = self.value(ty, &key).map_err(|e| e.with_key(&key))?;
            if key == ALIGNMENT_KEY {
                alignment = check_alignment(&value, value_at)?;
            }
            meta_index.insert(key.clone(), metadata.len());
            metadata.push((key, value));
            meta_offsets.push(kv_at);
        }

        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors.min(MAX_PREALLOC) as usize);
        let mut tensor_index = HashMap::new();
        for _ in 0..n_tensors {
            let info = self.tensor_info(alignment)?;
            if tensor_index.contains_key(&info.name) {
                return Err(GgufError::new(GgufErrorKind::DuplicateTensor, info.info_offset)
                    .with_tensor(&info.name));
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        let header_len = self.pos();
        let data_offset = align_up(header_len, alignment);
        for t in &mut tensors {
            // The offset field is the last 8 bytes of the info record; point errors there.
            let field_at =
                t.info_offset + 8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 4;
            let start = data_offset.checked_add(t.rel_offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(start), Some(end)) if end <= file_len => t.offset = start,
                _ => {
                    return Err(GgufError::new(
                        GgufErrorKind::TensorOutOfBounds {
                            start: data_offset.saturating_add(t.rel_offset),
                            end: data_offset.saturating_add(t.rel_offset).saturating_add(t.n_bytes),
                            file_len,
                        },
                        field_at,
                    )
                    .with_tensor(&t.name))
                }
            }
        }
        check_overlaps(&tensors)?;

        Ok(GgufFile {
            version,
            metadata,
            meta_offsets,
            meta_index,
            tensors,
            tensor_index,
            alignment,
            header_len,
            data_offset,
            file_len,
            repaired: self.repaired,
        })
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo, GgufError> {
        let info_offset = self.pos();
        let name = self.string(StrRole::TensorName)?;
        let named = |e: GgufError| e.with_tensor(&name);
        let n_dims_at = self.pos();
        let n_dims = self.u32("the dimension count").map_err(named)?;
        if n_dims > MAX_DIMS {
            return Err(
                GgufError::new(GgufErrorKind::TooManyDims { n_dims }, n_dims_at).with_tensor(&name)
            );
        }
        let dims_at = self.pos();
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64("a dimension").map_err(named)?);
        }
        if dims.contains(&0) {
            return Err(GgufError::new(GgufErrorKind::ZeroDim { dims }, dims_at).with_tensor(&name));
        }
        // ggml stores ne as int64_t: every dim, the element count and the byte size must fit.
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64);
        let Some(n_elements) = n_elements else {
            return Err(GgufError::new(GgufErrorKind::ElementCountOverflow { dims }, dims_at)
                .with_tensor(&name));
        };
        let type_at = self.pos();
        let id = self.u32("the tensor type").map_err(named)?;
        let Some(ty) = GgmlType::from_id(id) else {
            return Err(
                GgufError::new(GgufErrorKind::UnknownTensorType { id }, type_at).with_tensor(&name)
            );
        };
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % ty.block_size() as u64 != 0 {
            return Err(GgufError::new(GgufErrorKind::RowNotWholeBlocks { ty, ne0 }, dims_at)
                .with_tensor(&name));
        }
        let Some(n_bytes) = ty.bytes_for(n_elements).filter(|&n| n <= i64::MAX as u64) else {
            return Err(GgufError::new(GgufErrorKind::ElementCountOverflow { dims }, dims_at)
                .with_tensor(&name));
        };
        let offset_at = self.pos();
        let rel_offset = self.u64("the tensor data offset").map_err(named)?;
        if rel_offset % alignment != 0 {
            return Err(GgufError::new(
                GgufErrorKind::MisalignedTensor { rel_offset, alignment },
                offset_at,
            )
            .with_tensor(&name));
        }
        Ok(TensorInfo { name, dims, ty, rel_offset, offset: 0, n_elements, n_bytes, info_offset })
    }
}

/// A vector with room for exactly `count` elements of an array whose count was already checked
/// against the bytes left (so the allocation is at most `size_of::<T>() / min_encoded_size` times
/// the file: 3x for strings). Exact, so a 151936-token vocabulary is one allocation, no regrowth.
/// `try_reserve` because on wasm32 a count that fits the file may still not fit the address space.
fn alloc_vec<T>(count: u64, at: u64) -> Result<Vec<T>, GgufError> {
    let mut v = Vec::new();
    match usize::try_from(count).ok().map(|n| v.try_reserve_exact(n)) {
        Some(Ok(())) => Ok(v),
        _ => Err(too_large(count, at)),
    }
}

fn too_large(count: u64, at: u64) -> GgufError {
    GgufError::new(GgufErrorKind::TooLargeForMemory { what: "an array", count }, at)
}

fn to_bool(b: u8, at: u64) -> Result<bool, GgufError> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(GgufError::new(GgufErrorKind::InvalidBool { byte }, at)),
    }
}

/// Decode `bytes` (a whole number of `elem`-sized values, read from `at`) into a typed array.
fn fixed_array(elem: ValueType, bytes: &[u8], at: u64) -> Result<MetaArray, GgufError> {
    macro_rules! le {
        ($variant:ident, $t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            MetaArray::$variant(
                bytes
                    .chunks_exact(N)
                    .map(|c| {
                        let mut a = [0u8; N];
                        a.copy_from_slice(c);
                        <$t>::from_le_bytes(a)
                    })
                    .collect(),
            )
        }};
    }
    Ok(match elem {
        ValueType::U8 => MetaArray::U8(bytes.to_vec()),
        ValueType::I8 => le!(I8, i8),
        ValueType::U16 => le!(U16, u16),
        ValueType::I16 => le!(I16, i16),
        ValueType::U32 => le!(U32, u32),
        ValueType::I32 => le!(I32, i32),
        ValueType::F32 => le!(F32, f32),
        ValueType::U64 => le!(U64, u64),
        ValueType::I64 => le!(I64, i64),
        ValueType::F64 => le!(F64, f64),
        ValueType::Bool => MetaArray::Bool(
            bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| to_bool(b, at + i as u64))
                .collect::<Result<_, _>>()?,
        ),
        // Only fixed-size types reach here.
        ValueType::String | ValueType::Array => unreachable!("fixed_array called with {elem}"),
    })
}

/// `general.alignment` must be a u32 (as llama.cpp and gguf-py require) holding a nonzero power of
/// two.
fn check_alignment(value: &MetaValue, at: u64) -> Result<u64, GgufError> {
    let err = |kind| Err(GgufError::new(kind, at).with_key(ALIGNMENT_KEY));
    match *value {
        MetaValue::U32(a) if a.is_power_of_two() => Ok(a.into()),
        MetaValue::U32(a) => err(GgufErrorKind::BadAlignment { value: a.to_string() }),
        _ => err(GgufErrorKind::WrongType { expected: "a u32", found: value.value_type() }),
    }
}

/// Round `x` up to a multiple of `align` (a power of two ≤ 2^31), saturating at the top of u64
/// (such an offset is then past any file and reported as out of bounds).
pub(crate) fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => u64::MAX,
    }
}

fn check_overlaps(tensors: &[TensorInfo]) -> Result<(), GgufError> {
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| (t.offset, t.n_bytes));
    // Track the tensor that reaches furthest so far: any later start before its end overlaps it.
    let mut reach: Option<&TensorInfo> = None;
    for t in order {
        if let Some(r) = reach {
            let r_end = r.offset + r.n_bytes;
            if t.offset < r_end {
                return Err(GgufError::new(
                    GgufErrorKind::OverlappingTensors {
                        other: r.name.clone(),
                        other_start: r.offset,
                        other_end: r_end,
                        start: t.offset,
                    },
                    t.info_offset,
                )
                .with_tensor(&t.name));
            }
        }
        if reach.is_none_or(|r| t.offset + t.n_bytes > r.offset + r.n_bytes) {
            reach = Some(t);
        }
    }
    Ok(())
}
