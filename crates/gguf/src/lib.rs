//! GGUF: reading (v2 and v3, little-endian) and writing (v3) the file format llama.cpp uses.
//!
//! Owns the header: magic, version, metadata key/values of all 13 value types, tensor infos, and
//! the validation that makes every later read safe (counts bounded by the bytes left *before*
//! allocating, tensors inside the file, aligned and not overlapping). [`GgufFile`] is the centre:
//! it is read from any [`parallax_source::ByteSource`] by pulling only the header's bytes, and
//! then hands out tensor bytes (whole or by rows) as single range reads.
//!
//! Knows nothing about model architectures, tokenizers or what tensor names mean, and nothing
//! about block formats beyond their sizes ([`GgmlType`] from parallax-quant). It does no I/O of
//! its own: files, memory, HTTP ranges and browser `File`s all come in as byte sources.

mod error;
mod reader;
mod value;
pub mod writer;

pub use error::{GgufError, GgufErrorKind};
pub use parallax_quant::GgmlType;
pub use reader::{
    GgufFile, ReadOptions, RepairedString, TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT,
    GGUF_MAGIC, MAX_DIMS,
};
pub use value::{MetaArray, MetaValue, StringArray, ValueType};
