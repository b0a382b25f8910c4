//! Shared test inputs: a small valid file with every value type and a few tensors.
#![allow(dead_code)]

use parallax_gguf::writer::{GgufWriter, Layout};
use parallax_gguf::{GgmlType, MetaArray, MetaValue};

/// Deterministic filler bytes (no RNG needed).
pub fn pattern(n: usize, k: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + k * 7) % 251) as u8).collect()
}

/// Every value type once, arrays of every element type, an array of arrays.
pub fn all_values() -> Vec<(&'static str, MetaValue)> {
    vec![
        ("general.architecture", "test".into()),
        ("v.u8", 200u8.into()),
        ("v.i8", (-100i8).into()),
        ("v.u16", 60000u16.into()),
        ("v.i16", (-30000i16).into()),
        ("v.u32", 4_000_000_000u32.into()),
        ("v.i32", (-2_000_000_000i32).into()),
        ("v.f32", 1.5f32.into()),
        ("v.bool", true.into()),
        ("v.string", "héllo ✓".into()),
        ("v.u64", (u64::MAX - 3).into()),
        ("v.i64", i64::MIN.into()),
        ("v.f64", (-0.125f64).into()),
        ("a.u8", vec![1u8, 2, 255].into()),
        ("a.i8", vec![-1i8, 2].into()),
        ("a.u16", vec![1u16, 65535].into()),
        ("a.i16", vec![-1i16, 2, -3].into()),
        ("a.u32", vec![7u32].into()),
        ("a.i32", vec![7i32, -8].into()),
        ("a.f32", vec![0.5f32, -1.25].into()),
        ("a.bool", vec![true, false, true].into()),
        ("a.string", vec!["a", "", "日本"].into()),
        ("a.u64", vec![0u64, u64::MAX].into()),
        ("a.i64", vec![i64::MIN, 5].into()),
        ("a.f64", vec![1e300f64, -2.5].into()),
        ("a.empty", MetaValue::Array(MetaArray::U32(vec![]))),
        (
            "a.nested",
            MetaValue::Array(MetaArray::Array(vec![
                MetaArray::I32(vec![1, 2]),
                MetaArray::String(["x"].into_iter().collect()),
                MetaArray::Array(vec![MetaArray::F64(vec![0.25]), MetaArray::Bool(vec![])]),
            ])),
        ),
    ]
}

/// A small valid file: all value types plus four tensors of different types and shapes.
pub fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    for (k, v) in all_values() {
        w.add(k, v).unwrap();
    }
    add_tensors(&mut w, "f16.cube", &[3, 2, 2]);
    w
}

/// The four tensors both the sample and gguf-py's golden hold: an F32 vector, Q8_0 and Q4_K
/// matrices of patterned bytes, and an F16 tensor named `f16_name` of `f16_dims`.
pub fn add_tensors(w: &mut GgufWriter, f16_name: &str, f16_dims: &[u64]) {
    w.add_f32_tensor("f32.vec", &[8], &(0..8).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<_>>())
        .unwrap();
    w.add_tensor("q8_0.mat", &[32, 3], GgmlType::Q8_0, pattern(3 * 34, 1)).unwrap();
    w.add_tensor("q4_k.mat", &[256, 2], GgmlType::Q4_K, pattern(2 * 144, 2)).unwrap();
    let f16_bytes = 2 * f16_dims.iter().product::<u64>() as usize;
    w.add_tensor(f16_name, f16_dims, GgmlType::F16, pattern(f16_bytes, 3)).unwrap();
}

pub fn sample() -> (Vec<u8>, Layout) {
    sample_writer().to_bytes_with_layout()
}

pub fn put_u32(bytes: &mut [u8], at: u64, v: u32) {
    bytes[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: u64, v: u64) {
    bytes[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
}

#[allow(unused_imports)] // only the real-model tests use it
pub use parallax_testkit::model_path as real_model;
