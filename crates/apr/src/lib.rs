//! APR v2 model files (upstream `aprender`'s format): reader, writer and APR's own quantized
//! formats.
//!
//! Owns the byte layout of `.apr` files — header, JSON metadata, tensor index, payloads, CRC
//! footer — as upstream's tools really write them, and the dequantization of APR-Q4 / APR-Q8.
//! [`AprFile`] reads through a [`parallax_source::ByteSource`] and pulls only the header,
//! metadata and index when opened; payloads are read when asked for, row ranges alone.
//! GGML block bytes inside APR files are handed to `parallax-quant`.
//! Knows nothing about GGUF, model architectures or forward passes: conversion lives in
//! `parallax-model`.

mod aprquant;
mod dtype;
mod error;
mod header;
mod metadata;
mod reader;
mod writer;

pub use aprquant::{dequantize_apr_q4, dequantize_apr_q8, dequantize_apr_q8_values};
pub use dtype::{Resolve, TensorType, APR_Q4_BLOCK, APR_Q4_BLOCK_BYTES};
pub use error::{AprError, AprErrorKind};
pub use header::{
    header_crc, Header, FLAG_COLUMN_MAJOR, FLAG_ENCRYPTED, FLAG_LZ4, FLAG_QUANTIZED,
    FLAG_ROW_MAJOR, FLAG_SHARDED, FLAG_ZSTD, HEADER_SIZE, MAGIC,
};
pub use metadata::Hyperparameters;
pub use reader::{AprFile, TensorInfo};
pub use writer::AprWriter;
