//! Writer → reader round trips: every value type, nested arrays, tensors, lookups, row reads.

mod common;

use common::*;
use parallax_gguf::writer::{GgufWriter, WriteError};
use parallax_gguf::{GgmlType, GgufErrorKind, GgufFile, MetaArray, MetaValue, ValueType};
use parallax_source::{ByteSource, CountingSource, MemorySource};

#[test]
fn every_value_type_round_trips_in_order() {
    let (bytes, layout) = sample();
    let file = GgufFile::read(&MemorySource::new(bytes.clone())).unwrap();
    assert_eq!(file.version(), 3);
    let expected = all_values();
    assert_eq!(file.metadata().len(), expected.len());
    for ((k, v), (ek, ev)) in file.metadata().iter().zip(&expected) {
        assert_eq!(k, ek);
        assert_eq!(v, ev, "value of {k}");
        assert_eq!(file.metadata_offset(k), layout.kvs.iter().find(|l| l.key == *k).map(|l| l.at));
    }
    // All 13 value types occur as scalars and as array elements.
    let scalar_types: std::collections::HashSet<_> =
        file.metadata().iter().map(|(_, v)| v.value_type()).collect();
    assert_eq!(scalar_types.len(), 13);
    assert_eq!(file.header_len(), layout.header_len);
    assert_eq!(file.data_offset(), layout.data_offset);
    assert_eq!(file.data_offset() % 32, 0);
    assert!(file.repaired_strings().is_empty());
}

#[test]
fn lookups_coerce_integer_widths() {
    let (bytes, _) = sample();
    let file = GgufFile::read(&MemorySource::new(bytes)).unwrap();
    assert_eq!(file.get_str("general.architecture"), Some("test"));
    assert_eq!(file.get_u64("v.u8"), Some(200));
    assert_eq!(file.get_u64("v.u32"), Some(4_000_000_000));
    assert_eq!(file.get_u32("v.u32"), Some(4_000_000_000));
    assert_eq!(file.get_u32("v.u64"), None, "does not fit");
    assert_eq!(file.get_u64("v.i8"), None, "negative");
    assert_eq!(file.get_i64("v.i8"), Some(-100));
    assert_eq!(file.get_i64("v.u64"), None, "above i64::MAX");
    assert_eq!(file.get_f32("v.f32"), Some(1.5));
    assert_eq!(file.get_f32("v.f64"), Some(-0.125));
    assert_eq!(file.get_f32("v.u16"), Some(60000.0));
    assert_eq!(file.get_f32("v.string"), None);
    assert_eq!(file.get_bool("v.bool"), Some(true));
    assert_eq!(file.get_str_arr("a.string").unwrap().iter().collect::<Vec<_>>(), ["a", "", "日本"]);
    assert_eq!(file.get_arr("a.i16").unwrap().to_i64s(), Some(vec![-1, 2, -3]));
    assert_eq!(file.get_arr("a.u64").unwrap().to_i64s(), None, "u64::MAX does not fit i64");
    assert_eq!(file.get_arr("a.f64").unwrap().to_f32s(), Some(vec![1e300f64 as f32, -2.5]));
    let nested = file.get_arr("a.nested").unwrap();
    assert_eq!(nested.elem_type(), ValueType::Array);
    assert_eq!(nested.as_arrays().unwrap()[2].as_arrays().unwrap()[0], MetaArray::F64(vec![0.25]));
    assert_eq!(
        nested.get(1),
        Some(MetaValue::Array(MetaArray::String(["x"].into_iter().collect())))
    );
    assert_eq!(file.get("missing"), None);

    let err = file.require_u64("missing").unwrap_err();
    assert_eq!(err.kind(), &GgufErrorKind::MissingKey);
    assert!(err.to_string().contains("\"missing\""), "{err}");
    let err = file.require_u64("v.string").unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::WrongType { found: ValueType::String, .. }));
    assert_eq!(err.offset(), file.metadata_offset("v.string").unwrap());
    assert_eq!(file.require_str("general.architecture").unwrap(), "test");
}

#[test]
fn tensor_infos_and_bytes_round_trip() {
    let w = sample_writer();
    let (bytes, layout) = w.to_bytes_with_layout();
    let src = MemorySource::new(bytes.clone());
    let file = GgufFile::read(&src).unwrap();
    let names: Vec<_> = file.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["f32.vec", "q8_0.mat", "q4_k.mat", "f16.cube"]);

    let q4 = file.tensor("q4_k.mat").unwrap();
    assert_eq!(q4.dims, [256, 2]);
    assert_eq!(q4.ty, GgmlType::Q4_K);
    assert_eq!((q4.n_elements, q4.n_bytes, q4.n_rows(), q4.row_bytes()), (512, 288, 2, 144));
    assert_eq!(q4.offset % 32, 0);
    assert_eq!(q4.offset, file.data_offset() + q4.rel_offset);
    assert_eq!(file.tensor_bytes(&src, q4).unwrap(), pattern(288, 2));

    let cube = file.tensor("f16.cube").unwrap();
    assert_eq!((cube.n_rows(), cube.row_bytes()), (4, 6), "rows flatten ne1..ne3");
    for (t, l) in file.tensors().iter().zip(&layout.tensors) {
        assert_eq!(t.offset, l.data_at);
        assert_eq!(t.info_offset, l.at);
        assert!(t.offset + t.n_bytes <= bytes.len() as u64);
    }

    let f32s = file.tensor_bytes(&src, file.tensor("f32.vec").unwrap()).unwrap();
    let vals: Vec<f32> =
        f32s.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(vals, (0..8).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<_>>());

    let mut buf = vec![0u8; 102];
    file.read_tensor_into(&src, file.tensor("q8_0.mat").unwrap(), &mut buf).unwrap();
    assert_eq!(buf, pattern(102, 1));
    assert!(file.read_tensor_into(&src, file.tensor("q8_0.mat").unwrap(), &mut buf[..50]).is_err());
}

#[test]
fn tensor_rows_reads_only_those_rows() {
    let (bytes, _) = sample();
    let src = CountingSource::new(MemorySource::new(bytes));
    let file = GgufFile::read(&src).unwrap();
    let q8 = file.tensor("q8_0.mat").unwrap().clone();
    let all = pattern(102, 1);
    let before = src.bytes_read();
    assert_eq!(file.tensor_rows(&src, &q8, 1..3).unwrap(), all[34..102]);
    assert_eq!(src.bytes_read() - before, 68, "exactly two rows of 34 bytes");
    assert_eq!(file.tensor_rows(&src, &q8, 2..2).unwrap(), Vec::<u8>::new());
    let err = file.tensor_rows(&src, &q8, 2..4).unwrap_err();
    assert_eq!(err.kind(), &GgufErrorKind::RowsOutOfRange { start: 2, end: 4, n_rows: 3 });
    assert_eq!(err.tensor(), Some("q8_0.mat"));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 2..1;
    assert!(file.tensor_rows(&src, &q8, reversed).is_err());

    // A different source than the header's is refused, not read at a wrong place.
    let other = MemorySource::new(vec![0u8; 10]);
    let err = file.tensor_bytes(&other, &q8).unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::SourceMismatch { .. }), "{err}");
}

#[test]
fn header_read_touches_no_tensor_data() {
    // Tensor data far larger than the read-ahead chunk: the reader must not pull it.
    let mut w = GgufWriter::new();
    w.add("general.architecture", "big").unwrap();
    w.add_tensor("big", &[4 << 20], GgmlType::I8, vec![7u8; 4 << 20]).unwrap();
    let bytes = w.to_bytes();
    let src = CountingSource::new(MemorySource::new(bytes.clone()));
    let file = GgufFile::read(&src).unwrap();
    assert!(src.bytes_read() <= (1 << 20) + 64, "read {} bytes", src.bytes_read());
    assert_eq!(file.tensors()[0].n_bytes, 4 << 20);
}

#[test]
fn custom_alignment_and_version_2() {
    let mut w = GgufWriter::new();
    w.set_version(2);
    w.set_alignment(256).unwrap();
    w.add_f32_tensor("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
    w.add_f32_tensor("b", &[1], &[4.0]).unwrap();
    let src = MemorySource::new(w.to_bytes());
    let file = GgufFile::read(&src).unwrap();
    assert_eq!(file.version(), 2);
    assert_eq!(file.alignment(), 256);
    assert_eq!(file.data_offset() % 256, 0);
    assert_eq!(file.tensor("b").unwrap().rel_offset, 256);
    assert_eq!(file.tensor_bytes(&src, file.tensor("b").unwrap()).unwrap(), 4.0f32.to_le_bytes());
    assert_eq!(src.len() % 256, 0, "each tensor is padded, as gguf-py does");
}

#[test]
fn empty_file_and_scalar_tensor() {
    let file = GgufFile::read(&MemorySource::new(GgufWriter::new().to_bytes())).unwrap();
    assert!(file.metadata().is_empty() && file.tensors().is_empty());

    let mut w = GgufWriter::new();
    w.add_f32_tensor("scalar", &[], &[9.0]).unwrap();
    let file = GgufFile::read(&MemorySource::new(w.to_bytes())).unwrap();
    let t = &file.tensors()[0];
    assert_eq!((t.dims.len(), t.n_elements, t.n_bytes, t.n_rows()), (0, 1, 4, 1));
}

#[test]
fn writer_refuses_bad_inputs() {
    let mut w = GgufWriter::new();
    w.add("k", 1u32).unwrap();
    assert_eq!(w.add("k", 2u32).err(), Some(WriteError::DuplicateKey { key: "k".into() }));
    assert!(matches!(w.set_alignment(48), Err(WriteError::BadAlignment { .. })));
    assert!(matches!(w.add("general.alignment", 64u64), Err(WriteError::BadAlignment { .. })));
    assert!(matches!(
        w.add_tensor("t", &[100], GgmlType::Q4_K, vec![]),
        Err(WriteError::BadShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", &[256, 0], GgmlType::Q4_K, vec![]),
        Err(WriteError::BadShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("t", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]),
        Err(WriteError::BadShape { .. })
    ));
    assert_eq!(
        w.add_tensor("t", &[256], GgmlType::Q4_K, vec![0; 10]).err(),
        Some(WriteError::DataLength { name: "t".into(), expected: 144, got: 10 })
    );
    w.add_tensor("t", &[256], GgmlType::Q4_K, vec![0; 144]).unwrap();
    assert!(matches!(
        w.add_tensor("t", &[256], GgmlType::Q4_K, vec![0; 144]),
        Err(WriteError::DuplicateTensor { .. })
    ));
}

#[test]
fn invalid_utf8_values_are_repaired_and_recorded_or_refused_in_strict_mode() {
    let mut w = GgufWriter::new();
    w.add("tok", vec!["ok", "b@d"]).unwrap();
    let (mut bytes, layout) = w.to_bytes_with_layout();
    // Array: type(4) count(8) then "ok" (8 + 2), then "b@d" length (8): '@' is at +1.
    let at = layout.kvs[0].value_at + 12 + 10 + 8 + 1;
    bytes[at as usize] = 0xff;
    let file = GgufFile::read(&MemorySource::new(bytes.clone())).unwrap();
    assert_eq!(&file.get_str_arr("tok").unwrap()[1], "b\u{fffd}d");
    assert_eq!(file.repaired_strings().len(), 1);
    assert_eq!(file.repaired_strings()[0].key, "tok");
    assert_eq!(file.repaired_strings()[0].offset, at - 1);

    let strict = parallax_gguf::ReadOptions::default().strict_utf8(true);
    let err = GgufFile::read_with(&MemorySource::new(bytes), strict).unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::InvalidUtf8 { valid_up_to: 1, .. }), "{err}");
    assert_eq!((err.offset(), err.key()), (at - 1, Some("tok")));
}

/// Two strings that are not UTF-8 each but are together ("a\xC3" + "\xA9d" = "aéd"): each is
/// still repaired, or refused, on its own, as a string array's strings were read one by one.
#[test]
fn strings_that_are_utf8_only_together_are_each_repaired_or_refused() {
    let mut w = GgufWriter::new();
    w.add("tok", vec!["ab", "cd", "ok"]).unwrap();
    let (mut bytes, layout) = w.to_bytes_with_layout();
    // Array: type(4) count(8), then "ab" at +20, "cd" at +30 (each after its 8-byte length).
    let first = layout.kvs[0].value_at + 12 + 8;
    let second = first + 2 + 8;
    bytes[first as usize + 1] = 0xc3;
    bytes[second as usize] = 0xa9;
    let file = GgufFile::read(&MemorySource::new(bytes.clone())).unwrap();
    let strings: Vec<&str> = file.get_str_arr("tok").unwrap().iter().collect();
    assert_eq!(strings, ["a\u{fffd}", "\u{fffd}d", "ok"]);
    let offsets: Vec<u64> = file.repaired_strings().iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [first, second]);

    let strict = parallax_gguf::ReadOptions::default().strict_utf8(true);
    let err = GgufFile::read_with(&MemorySource::new(bytes), strict).unwrap_err();
    assert!(matches!(err.kind(), GgufErrorKind::InvalidUtf8 { valid_up_to: 1, .. }), "{err}");
    assert_eq!((err.offset(), err.key()), (first, Some("tok")));
}

#[cfg(feature = "serde")]
#[test]
fn metadata_serializes_to_json() {
    let (bytes, _) = sample();
    let file = GgufFile::read(&MemorySource::new(bytes)).unwrap();
    let json = serde_json::to_string(file.get("a.nested").unwrap()).unwrap();
    assert_eq!(json, r#"[[1,2],["x"],[[0.25],[]]]"#);
    let t = serde_json::to_value(file.tensor("q4_k.mat").unwrap()).unwrap();
    assert_eq!(t["ty"], "Q4_K");
}

#[test]
fn hand_made_tensor_infos_cannot_panic_data_reads() {
    let (bytes, _) = sample();
    let src = MemorySource::new(bytes);
    let file = GgufFile::read(&src).unwrap();
    let mut t = file.tensor("q8_0.mat").unwrap().clone();
    t.offset = u64::MAX - 10;
    assert!(file.tensor_bytes(&src, &t).unwrap_err().is_truncated());
    assert!(file.tensor_rows(&src, &t, 0..3).is_err());
    t.dims = vec![0, 3];
    t.n_elements = 0;
    assert_eq!((t.n_rows(), t.row_bytes()), (0, 0));
    assert!(file.tensor_rows(&src, &t, 0..1).is_err());
}
