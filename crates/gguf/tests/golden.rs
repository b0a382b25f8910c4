//! Agreement with gguf-py, an independent implementation: `data/golden.gguf` was written by
//! gguf-py 0.19 (`data/make_golden.py`). The reader must see exactly what gguf-py wrote, and the
//! writer must produce the same bytes from the same inputs.

mod common;

use common::pattern;
use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile, MetaArray, MetaValue};
use parallax_source::MemorySource;

const GOLDEN: &[u8] = include_bytes!("data/golden.gguf");

fn golden_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "golden").unwrap();
    w.set_alignment(64).unwrap();
    let values: Vec<(&str, MetaValue)> = vec![
        ("t.u8", 200u8.into()),
        ("t.i8", (-100i8).into()),
        ("t.u16", 60000u16.into()),
        ("t.i16", (-30000i16).into()),
        ("t.u32", 4_000_000_000u32.into()),
        ("t.i32", (-2_000_000_000i32).into()),
        ("t.f32", 1.5f32.into()),
        ("t.bool", true.into()),
        ("t.string", "héllo ✓".into()),
        ("t.u64", ((1u64 << 63) + 5).into()),
        ("t.i64", (-(1i64 << 62)).into()),
        ("t.f64", (-0.125f64).into()),
        ("t.arr.u8", vec![1u8, 2, 255].into()),
        ("t.arr.i16", vec![-1i16, 2, -3].into()),
        ("t.arr.i32", vec![7i32, -8].into()),
        ("t.arr.f32", vec![0.5f32, -1.25, 3.0].into()),
        ("t.arr.bool", vec![true, false, true].into()),
        ("t.arr.str", vec!["a", "", "日本"].into()),
        ("t.arr.u64", vec![0u64, u64::MAX].into()),
        ("t.arr.f64", vec![1e300f64, -2.5].into()),
        (
            "t.arr.nested",
            MetaArray::Array(vec![MetaArray::I32(vec![1, 2]), MetaArray::I32(vec![3])]).into(),
        ),
        (
            "t.arr.nested_str",
            MetaArray::Array(vec![
                MetaArray::String(["x"].into_iter().collect()),
                MetaArray::String(["y", "z"].into_iter().collect()),
            ])
            .into(),
        ),
    ];
    for (k, v) in values {
        w.add(k, v).unwrap();
    }
    common::add_tensors(&mut w, "f16.mat", &[3, 2]);
    w
}

#[test]
fn reader_sees_what_gguf_py_wrote() {
    let src = MemorySource::new(GOLDEN);
    let file = GgufFile::read(&src).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.metadata().len(), 24);
    assert_eq!(file.get("t.u64"), Some(&MetaValue::U64((1 << 63) + 5)));
    assert_eq!(file.get("t.i64"), Some(&MetaValue::I64(-(1 << 62))));
    assert_eq!(file.get_str("t.string"), Some("héllo ✓"));
    assert_eq!(
        file.get_str_arr("t.arr.str").unwrap().iter().collect::<Vec<_>>(),
        ["a", "", "日本"]
    );
    assert_eq!(file.get_arr("t.arr.bool"), Some(&MetaArray::Bool(vec![true, false, true])));
    assert_eq!(
        file.get_arr("t.arr.nested"),
        Some(&MetaArray::Array(vec![MetaArray::I32(vec![1, 2]), MetaArray::I32(vec![3])]))
    );
    // Offsets and sizes as gguf-py's own reader reports them (data_offset, n_bytes).
    let got: Vec<_> = file
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.ty, t.dims.clone(), t.offset, t.n_bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("f32.vec", GgmlType::F32, vec![8], 1088, 32),
            ("q8_0.mat", GgmlType::Q8_0, vec![32, 3], 1152, 102),
            ("q4_k.mat", GgmlType::Q4_K, vec![256, 2], 1280, 288),
            ("f16.mat", GgmlType::F16, vec![3, 2], 1600, 12),
        ]
    );
    let q4 = file.tensor("q4_k.mat").unwrap();
    assert_eq!(file.tensor_bytes(&src, q4).unwrap(), pattern(288, 2));
}

#[test]
fn writer_matches_gguf_py_byte_for_byte() {
    let ours = golden_writer().to_bytes();
    assert_eq!(ours.len(), GOLDEN.len());
    if let Some(i) = ours.iter().zip(GOLDEN).position(|(a, b)| a != b) {
        panic!("first difference at byte {i}: ours {:#04x}, gguf-py {:#04x}", ours[i], GOLDEN[i]);
    }
}
