//! Allocation bounds, measured with a counting global allocator: a header that declares 2^62
//! elements must be refused without allocating more than about the file's size, and even
//! counts that pass the size check cost at most a small multiple of the file.
//!
//! One #[test] only: the allocator is process-wide, so concurrent tests would blur the numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgufErrorKind, GgufFile, MetaArray, MetaValue};
use parallax_source::MemorySource;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated (above what was live before) while reading `bytes`.
fn peak_while_reading(bytes: &[u8]) -> (usize, Result<GgufFile, parallax_gguf::GgufError>) {
    let src = MemorySource::new(bytes.to_vec());
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let result = GgufFile::read(&src);
    (PEAK.load(Relaxed) - base, result)
}

/// A file with one metadata key `k` whose value starts with `value` and is padded with `pad`
/// zero bytes.
fn file_with_value(type_id: u32, value: &[u8], pad: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'k');
    b.extend_from_slice(&type_id.to_le_bytes());
    b.extend_from_slice(value);
    b.resize(b.len() + pad, 0);
    b
}

fn array_header(elem: u32, count: u64) -> Vec<u8> {
    let mut v = elem.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    v
}

#[test]
fn allocations_stay_bounded_by_the_file_size() {
    let slack = 4096;
    // Hostile declared counts: refused before any allocation proportional to the count.
    let mut string_count = 8u64.to_le_bytes().to_vec();
    string_count[7] = 0x40; // 2^62
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "2^62 strings",
            file_with_value(9, &array_header(8, 1 << 62), 4000),
        ),
        (
            "2^62 u8",
            file_with_value(9, &array_header(0, 1 << 62), 4000),
        ),
        (
            "2^62 arrays",
            file_with_value(9, &array_header(9, 1 << 62), 4000),
        ),
        (
            "2^62 i64",
            file_with_value(9, &array_header(11, 1 << 62), 4000),
        ),
        (
            "string of 2^62 bytes",
            file_with_value(8, &string_count, 4000),
        ),
        (
            "2^62 strings, nested",
            file_with_value(
                9,
                &[array_header(9, 1), array_header(8, 1 << 62)].concat(),
                4000,
            ),
        ),
    ];
    for (what, bytes) in &hostile {
        let (peak, result) = peak_while_reading(bytes);
        let err = result.expect_err(what);
        assert!(
            matches!(err.kind(), GgufErrorKind::CountTooLarge { .. }),
            "{what}: {err}"
        );
        eprintln!(
            "{what}: file {} bytes, peak allocation {peak} bytes",
            bytes.len()
        );
        assert!(
            peak <= bytes.len() + slack,
            "{what}: peak {peak} for a file of {}",
            bytes.len()
        );
    }
    let mut counts = GgufWriter::new().to_bytes();
    counts.truncate(24);
    counts[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    counts.resize(4096, 0);
    let (peak, result) = peak_while_reading(&counts);
    assert!(result.is_err());
    assert!(
        peak <= counts.len() + slack,
        "tensor count 2^62: peak {peak}"
    );

    // A count that passes the size check but lies (the strings are not there): at most 3x the
    // file (24-byte String per 8-byte minimum element), then an error.
    let n = 100_000u64;
    let first_len = (1u64 << 40).to_le_bytes();
    let lying = file_with_value(
        9,
        &[array_header(8, n), first_len.to_vec()].concat(),
        n as usize * 8,
    );
    let (peak, result) = peak_while_reading(&lying);
    assert!(
        matches!(result.unwrap_err().kind(), GgufErrorKind::CountTooLarge { what, .. } if what.contains("string"))
    );
    eprintln!(
        "lying string count: file {} bytes, peak {peak}",
        lying.len()
    );
    assert!(
        peak <= 3 * lying.len() + slack + (1 << 20).min(lying.len()),
        "peak {peak}"
    );

    // Honest files: a big string array and a big nested array cost a small multiple of the file.
    let mut w = GgufWriter::new();
    w.add(
        "tokens",
        MetaValue::Array(MetaArray::String(vec![String::new(); 100_000])),
    )
    .unwrap();
    w.add(
        "nested",
        MetaValue::Array(MetaArray::Array(vec![MetaArray::U8(vec![]); 50_000])),
    )
    .unwrap();
    let honest = w.to_bytes();
    let (peak, result) = peak_while_reading(&honest);
    result.unwrap();
    eprintln!("honest: file {} bytes, peak {peak}", honest.len());
    assert!(peak <= 4 * honest.len() + slack, "peak {peak}");
}
