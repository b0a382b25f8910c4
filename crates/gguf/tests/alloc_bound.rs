//! Allocation bounds, measured with a counting global allocator: a header that declares 2^62
//! elements must be refused without allocating more than about the file's size, and even
//! counts that pass the size check cost at most a small multiple of the file.
//!
//! Declared counts of 2^40, 2^48, 2^62, 2^63 and u64::MAX in every place a GGUF header declares a
//! size (metadata and tensor counts, string and array lengths — `tokenizer.ggml.tokens` is such
//! an array — nested arrays, tensor name lengths, dimensions whose product is the tensor size) are
//! each refused with an error naming the count, and no single allocation made while reading
//! exceeds twice the file plus a small constant.
//!
//! One #[test] only: the allocator is process-wide, so concurrent tests would blur the numbers.

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgufErrorKind, GgufFile, MetaArray, MetaValue};
use parallax_source::MemorySource;
use parallax_testkit::alloc::{measure, Allocated, Counting, HOSTILE_COUNTS};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What reading `bytes` allocated, and the outcome.
fn read_measured(bytes: &[u8]) -> (Allocated, Result<GgufFile, parallax_gguf::GgufError>) {
    let src = MemorySource::new(bytes.to_vec());
    measure(|| GgufFile::read(&src))
}

/// A header with `n_tensors` tensor infos and no metadata, then `body`, padded to 4 KiB.
fn file_with_tensors(n_tensors: u64, n_kv: u64, body: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(b.len().max(4096), 0);
    b
}

/// One tensor info: name, dims, type id, offset 0.
fn tensor_info(name_len: u64, name: &[u8], dims: &[u64], ty: u32) -> Vec<u8> {
    let mut v = name_len.to_le_bytes().to_vec();
    v.extend_from_slice(name);
    v.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        v.extend_from_slice(&d.to_le_bytes());
    }
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

/// Read `bytes`, expect an error `ok(kind)` accepts, and check the allocations it cost.
fn assert_refused_cheaply(what: &str, bytes: &[u8], ok: impl Fn(&GgufErrorKind) -> bool) {
    let (Allocated { peak, largest }, result) = read_measured(bytes);
    let err = match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e,
    };
    assert!(ok(err.kind()), "{what}: unexpected error {err}");
    // The message names the problem for a person (not a Debug dump).
    assert!(!err.to_string().is_empty() && !err.to_string().contains("{"), "{what}: {err}");
    let bound = 2 * bytes.len() + 1024;
    assert!(
        largest <= bound,
        "{what}: one allocation of {largest} bytes for a file of {}",
        bytes.len()
    );
    assert!(peak <= bound + 4096, "{what}: peak {peak} bytes for a file of {}", bytes.len());
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
    every_declared_count_from_2_40_to_u64_max_is_refused_without_allocating();
    counts_that_fit_cost_a_small_multiple_of_the_file();
}

/// What a case is called, its bytes, and which error kinds are the right answer.
type Case = (String, Vec<u8>, fn(&GgufErrorKind) -> bool);

fn every_declared_count_from_2_40_to_u64_max_is_refused_without_allocating() {
    use GgufErrorKind as K;
    for (label, n) in HOSTILE_COUNTS {
        let cases: Vec<Case> = vec![
            (format!("{label} tensors"), file_with_tensors(n, 0, &[]), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (format!("{label} metadata pairs"), file_with_tensors(0, n, &[]), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (format!("a key of {label} bytes"), file_with_tensors(0, 1, &n.to_le_bytes()), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (
                format!("tokenizer.ggml.tokens with {label} strings"),
                file_with_value(9, &array_header(8, n), 4000),
                |k| matches!(k, K::CountTooLarge { .. }),
            ),
            (format!("{label} u8"), file_with_value(9, &array_header(0, n), 4000), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (format!("{label} f32 scores"), file_with_value(9, &array_header(6, n), 4000), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (format!("{label} i64"), file_with_value(9, &array_header(11, n), 4000), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (format!("{label} arrays"), file_with_value(9, &array_header(9, n), 4000), |k| {
                matches!(k, K::CountTooLarge { .. })
            }),
            (
                format!("{label} strings inside an array"),
                file_with_value(9, &[array_header(9, 1), array_header(8, n)].concat(), 4000),
                |k| matches!(k, K::CountTooLarge { .. }),
            ),
            (
                format!("a string value of {label} bytes"),
                file_with_value(8, &n.to_le_bytes(), 4000),
                |k| matches!(k, K::CountTooLarge { .. }),
            ),
            (
                format!("a tensor name of {label} bytes"),
                file_with_tensors(1, 0, &tensor_info(n, b"", &[], 0)),
                |k| matches!(k, K::CountTooLarge { .. }),
            ),
            (
                format!("a tensor of {label} f32 values"),
                file_with_tensors(1, 0, &tensor_info(1, b"t", &[n], 0)),
                |k| matches!(k, K::TensorOutOfBounds { .. } | K::ElementCountOverflow { .. }),
            ),
            (
                format!("a tensor of {label} x {label} values"),
                file_with_tensors(1, 0, &tensor_info(1, b"t", &[n, n], 0)),
                |k| matches!(k, K::ElementCountOverflow { .. }),
            ),
            (
                format!("a Q4_K tensor of 256 x {label} rows"),
                file_with_tensors(1, 0, &tensor_info(1, b"t", &[256, n], 12)),
                |k| matches!(k, K::TensorOutOfBounds { .. } | K::ElementCountOverflow { .. }),
            ),
        ];
        for (what, bytes, ok) in &cases {
            assert_refused_cheaply(what, bytes, ok);
        }
    }
}

fn counts_that_fit_cost_a_small_multiple_of_the_file() {
    let slack = 4096;
    // Hostile declared counts: refused before any allocation proportional to the count.
    let mut string_count = 8u64.to_le_bytes().to_vec();
    string_count[7] = 0x40; // 2^62
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("2^62 strings", file_with_value(9, &array_header(8, 1 << 62), 4000)),
        ("2^62 u8", file_with_value(9, &array_header(0, 1 << 62), 4000)),
        ("2^62 arrays", file_with_value(9, &array_header(9, 1 << 62), 4000)),
        ("2^62 i64", file_with_value(9, &array_header(11, 1 << 62), 4000)),
        ("string of 2^62 bytes", file_with_value(8, &string_count, 4000)),
        (
            "2^62 strings, nested",
            file_with_value(9, &[array_header(9, 1), array_header(8, 1 << 62)].concat(), 4000),
        ),
    ];
    for (what, bytes) in &hostile {
        let (Allocated { peak, .. }, result) = read_measured(bytes);
        let err = result.expect_err(what);
        assert!(matches!(err.kind(), GgufErrorKind::CountTooLarge { .. }), "{what}: {err}");
        eprintln!("{what}: file {} bytes, peak allocation {peak} bytes", bytes.len());
        assert!(peak <= bytes.len() + slack, "{what}: peak {peak} for a file of {}", bytes.len());
    }
    let mut counts = GgufWriter::new().to_bytes();
    counts.truncate(24);
    counts[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    counts.resize(4096, 0);
    let (Allocated { peak, .. }, result) = read_measured(&counts);
    assert!(result.is_err());
    assert!(peak <= counts.len() + slack, "tensor count 2^62: peak {peak}");

    // A count that passes the size check but lies (the strings are not there): at most 3x the
    // file (24-byte String per 8-byte minimum element), then an error.
    let n = 100_000u64;
    let first_len = (1u64 << 40).to_le_bytes();
    let lying =
        file_with_value(9, &[array_header(8, n), first_len.to_vec()].concat(), n as usize * 8);
    let (Allocated { peak, .. }, result) = read_measured(&lying);
    assert!(
        matches!(result.unwrap_err().kind(), GgufErrorKind::CountTooLarge { what, .. } if what.contains("string"))
    );
    eprintln!("lying string count: file {} bytes, peak {peak}", lying.len());
    assert!(peak <= 3 * lying.len() + slack + (1 << 20).min(lying.len()), "peak {peak}");

    // Honest files: a big string array and a big nested array cost a small multiple of the file.
    let mut w = GgufWriter::new();
    w.add("tokens", MetaValue::Array(MetaArray::String((0..100_000).map(|_| "").collect())))
        .unwrap();
    w.add("nested", MetaValue::Array(MetaArray::Array(vec![MetaArray::U8(vec![]); 50_000])))
        .unwrap();
    let honest = w.to_bytes();
    let (Allocated { peak, .. }, result) = read_measured(&honest);
    result.unwrap();
    eprintln!("honest: file {} bytes, peak {peak}", honest.len());
    assert!(peak <= 4 * honest.len() + slack, "peak {peak}");
}
