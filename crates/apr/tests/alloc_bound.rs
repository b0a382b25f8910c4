//! Allocation bounds, measured with a counting global allocator: an APR header or index entry
//! declaring 2^40, 2^48, 2^62, 2^63 or u64::MAX (offsets, payload sizes, dims whose product is
//! the tensor size) — or u32::MAX where the field is a u32 (tensor count, metadata size) — is
//! refused with an error, and no single allocation made while opening exceeds twice the file
//! plus a small constant.
//!
//! One #[test] only: the allocator is process-wide, so concurrent tests would blur the numbers.

use parallax_apr::{AprFile, AprWriter, TensorType, FLAG_ROW_MAJOR};
use parallax_source::MemorySource;
use parallax_testkit::alloc::{measure, Counting, HOSTILE_COUNTS};

mod common;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A valid file: one F32 tensor "w" of dims [2, 32], no footer. Returns the bytes and where the
/// index entry starts.
fn valid() -> (Vec<u8>, usize) {
    let mut w = AprWriter::new(FLAG_ROW_MAJOR).with_footer(false);
    let meta = serde_json::json!({"architecture": "qwen2", "vocab_size": 2});
    w.set_metadata(meta.as_object().unwrap());
    w.add_tensor("w", TensorType::Ggml(parallax_quant::GgmlType::F32), vec![2, 32], vec![0u8; 256])
        .unwrap();
    let bytes = w.write().unwrap();
    let index = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    (bytes, index)
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Open `bytes`, expect an error, and check the largest allocation it cost.
fn assert_refused_cheaply(what: &str, bytes: Vec<u8>) {
    let len = bytes.len();
    let source = MemorySource::new(bytes);
    let (allocated, result) = measure(|| AprFile::open(&source));
    let largest = allocated.largest;
    let err = match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e,
    };
    eprintln!("{what}: {err} (largest allocation {largest} bytes, file {len})");
    assert!(!err.to_string().is_empty());
    assert!(
        largest <= 2 * len + 1024,
        "{what}: one allocation of {largest} bytes for a file of {len}"
    );
}

#[test]
fn declared_sizes_from_2_40_to_u64_max_are_refused_without_allocating() {
    let (good, index) = valid();
    // The control: the valid file opens, and reading it allocates something (the counter works).
    let (allocated, file) = measure(|| AprFile::open(MemorySource::new(good.clone())).unwrap());
    assert!(allocated.largest > 0);
    assert_eq!(file.tensor_f32("w").unwrap().len(), 64);

    // Index entry of "w": u16 name length, name, dtype, ndim, dims[0], dims[1], offset, size.
    let (dim0, dim1, offset, size) = (index + 5, index + 13, index + 21, index + 29);
    for (label, n) in HOSTILE_COUNTS {
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for (field, at) in
            [("metadata offset", 12), ("tensor index offset", 24), ("data offset", 32)]
        {
            let mut b = good.clone();
            put_u64(&mut b, at, n);
            common::fix_header_crc(&mut b);
            cases.push((format!("{field} {label}"), b));
        }
        for (field, at) in [
            ("dims[0]", dim0),
            ("dims[1]", dim1),
            ("payload offset", offset),
            ("payload size", size),
        ] {
            let mut b = good.clone();
            put_u64(&mut b, at, n);
            cases.push((format!("{field} {label}"), b));
        }
        // Dims whose product wraps or matches a declared size far past the file.
        let mut b = good.clone();
        put_u64(&mut b, dim0, n);
        put_u64(&mut b, dim1, n);
        cases.push((format!("dims {label} x {label}"), b));
        let mut b = good.clone();
        put_u64(&mut b, dim0, n / 128);
        put_u64(&mut b, size, (n / 128).wrapping_mul(32 * 4));
        cases.push((format!("dims [{label}/128, 32] with a matching size"), b));
        for (what, bytes) in cases {
            assert_refused_cheaply(&what, bytes);
        }
    }
    for (field, at) in [("tensor count", 8), ("metadata size", 20)] {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        common::fix_header_crc(&mut b);
        assert_refused_cheaply(&format!("{field} u32::MAX"), b);
    }
}
