//! Hostile and damaged input: every problem ends in an error naming it, never a panic, and
//! never an allocation the file cannot back.

mod common;

use common::*;
use parallax_apr::*;
use parallax_quant::GgmlType;
use parallax_source::{CountingSource, MemorySource};

/// Offsets inside the f32 fixture's first index entry ("lm_head.weight", F32, [320, 256]).
const ENTRY: usize = 3776;
const DTYPE: usize = ENTRY + 2 + 14;
const NDIM: usize = DTYPE + 1;
const DIM0: usize = NDIM + 1;
const OFFSET: usize = DIM0 + 16;

fn f32_fixture() -> Vec<u8> {
    fixture("tiny-qwen2.f32.apr")
}

fn kind_of(bytes: Vec<u8>) -> AprErrorKind {
    open(bytes).err().expect("must be rejected").kind().clone()
}

/// A small file with one tensor of each APR-specific kind, values chosen to be exact.
fn synthetic() -> (Vec<u8>, Vec<(String, Vec<f32>)>) {
    let mut w = AprWriter::new(FLAG_QUANTIZED);
    w.set_metadata_json(br#"{"architecture":"test","num_hidden_layers":1}"#.to_vec()).unwrap();
    let mut expect = Vec::new();

    // APR-Q4, 3 rows of 40 values: blocks of 32 cross row ends; last block partial.
    let n = 120;
    let mut q4 = Vec::new();
    let mut q4_values = Vec::new();
    for b in 0..(n as usize).div_ceil(32) {
        let scale = 0.25 * (b + 1) as f32;
        q4.extend(half::f16::from_f32(scale).to_bits().to_le_bytes());
        for i in 0..16u8 {
            let (lo, hi) = ((i + b as u8) % 16, (15 - i) % 16);
            q4.push(lo | hi << 4);
            q4_values.push((lo as f32 - 8.0) * scale);
            q4_values.push((hi as f32 - 8.0) * scale);
        }
    }
    q4_values.truncate(n as usize);
    w.add_tensor("a.q4", TensorType::AprQ4, vec![3, 40], q4.clone()).unwrap();
    expect.push(("a.q4".to_string(), q4_values.clone()));
    // The same bytes under the legacy id 8 (told apart from Q8_0 by size).
    w.add_tensor_with_id("b.q4_legacy", 8, vec![3, 40], q4).unwrap();
    expect.push(("b.q4_legacy".to_string(), q4_values));

    // APR-Q8, 2 x 5.
    let mut q8 = 0.5f32.to_le_bytes().to_vec();
    let qs: [i8; 10] = [-127, -3, 0, 1, 2, 3, 4, 5, 100, 127];
    q8.extend(qs.iter().map(|&q| q as u8));
    w.add_tensor("c.q8", TensorType::AprQ8, vec![2, 5], q8).unwrap();
    expect.push(("c.q8".to_string(), qs.iter().map(|&q| q as f32 * 0.5).collect()));

    // GGML Q8_0, 2 rows of 32: d = 1.0, q = i - 16.
    let mut q8_0 = Vec::new();
    let mut q8_0_values = Vec::new();
    for _ in 0..2 {
        q8_0.extend(half::f16::from_f32(1.0).to_bits().to_le_bytes());
        for i in 0..32i8 {
            q8_0.push((i - 16) as u8);
            q8_0_values.push((i - 16) as f32);
        }
    }
    w.add_tensor("d.q8_0", TensorType::Ggml(GgmlType::Q8_0), vec![2, 32], q8_0).unwrap();
    expect.push(("d.q8_0".to_string(), q8_0_values));

    // F16 and an empty APR-Q8.
    let f16: Vec<f32> = vec![1.5, -2.0, 0.25, 65504.0];
    w.add_tensor(
        "e.f16",
        TensorType::Ggml(GgmlType::F16),
        vec![4],
        f16.iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    expect.push(("e.f16".to_string(), f16));
    w.add_tensor("f.empty", TensorType::AprQ8, vec![0, 8], Vec::new()).unwrap();
    expect.push(("f.empty".to_string(), Vec::new()));
    (w.write().unwrap(), expect)
}

#[test]
fn synthetic_file_round_trips_and_dequantizes() {
    let (bytes, expect) = synthetic();
    let file = open(bytes.clone()).unwrap();
    assert_eq!(file.hyperparameters().unwrap().num_layers, Some(1));
    assert_eq!(file.tensor("b.q4_legacy").unwrap().dtype, TensorType::AprQ4);
    assert_eq!(file.tensor("b.q4_legacy").unwrap().dtype_id, 8);
    assert_eq!(file.tensor("d.q8_0").unwrap().dtype, TensorType::Ggml(GgmlType::Q8_0));
    assert_eq!(file.tensor("a.q4").unwrap().ne(), vec![40, 3]);
    assert_eq!(file.verify_footer().unwrap(), file.footer_crc());
    for (name, values) in &expect {
        assert_eq!(&file.tensor_f32(name).unwrap(), values, "{name}");
        let t = file.tensor(name).unwrap();
        for start in 0..=t.n_rows() {
            for end in start..=t.n_rows() {
                let rows = file.tensor_rows_f32(name, start..end).unwrap();
                let (a, b) = ((start * t.row_len()) as usize, (end * t.row_len()) as usize);
                assert_eq!(&rows[..], &values[a..b], "{name} rows {start}..{end}");
            }
        }
        assert!(matches!(
            file.tensor_rows_f32(name, 0..t.n_rows() + 1).unwrap_err().kind(),
            AprErrorKind::BadRowRange { .. }
        ));
    }
    // Raw rows: whole blocks only; APR-Q8 rows need the scale, so they are refused.
    assert!(file.tensor_rows("c.q8", 0..1).is_err());
    assert!(file.tensor_rows("a.q4", 0..1).is_err(), "40-value rows are not whole APR-Q4 blocks");
    assert_eq!(file.tensor_rows("d.q8_0", 1..2).unwrap().len(), 34);
    assert!(matches!(
        file.tensor_f32("nope").unwrap_err().kind(),
        AprErrorKind::TensorNotFound { .. }
    ));

    // Re-writing what was read gives the same bytes.
    assert_eq!(rewrite(&file), bytes);
}

#[test]
fn row_reads_pull_only_their_bytes() {
    let bytes = f32_fixture();
    let src = CountingSource::new(MemorySource::new(bytes));
    let file = AprFile::open(&src).unwrap();
    let before = src.bytes_read();
    let rows = file.tensor_rows_f32("lm_head.weight", 10..12).unwrap();
    assert_eq!(rows.len(), 512);
    assert_eq!(src.bytes_read() - before, 2 * 256 * 4);
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = AprWriter::new(0);
    assert!(w.add_tensor("x", TensorType::Ggml(GgmlType::Q8_0), vec![2, 32], vec![0; 67]).is_err());
    assert!(w.add_tensor("x", TensorType::Ggml(GgmlType::Q4_K), vec![100], vec![0; 144]).is_err());
    assert!(w.add_tensor("x", TensorType::AprQ8, vec![u64::MAX, 2], vec![]).is_err());
    assert!(w.add_tensor("", TensorType::U8, vec![1], vec![0]).is_err());
    assert!(w.add_tensor_with_id("x", 200, vec![1], vec![0]).is_err());
    w.add_tensor("x", TensorType::U8, vec![1], vec![0]).unwrap();
    assert!(w.add_tensor("x", TensorType::U8, vec![1], vec![0]).is_err(), "duplicate");
    assert!(w.set_metadata_json(b"[1]".to_vec()).is_err());
    assert!(w.set_metadata_json(b"{".to_vec()).is_err());
}

#[test]
fn header_crc_mismatch_names_both_values() {
    let mut b = f32_fixture();
    b[8] ^= 1; // tensor_count
    let err = open(b).err().unwrap();
    match err.kind() {
        AprErrorKind::HeaderChecksum { stored, computed } => {
            assert_eq!(*stored, 0x20086dd7);
            assert_ne!(stored, computed);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.offset(), Some(40));
    assert!(err.to_string().contains("0x20086dd7"), "{err}");
    let mut b = f32_fixture();
    b[50] = 1; // reserved bytes are covered too
    assert!(matches!(kind_of(b), AprErrorKind::HeaderChecksum { .. }));
}

#[test]
fn footer_crc_mismatch_is_found_on_verify() {
    let mut b = f32_fixture();
    let at = b.len() - 100;
    b[at] ^= 0x40;
    let file = open(b).unwrap();
    let err = file.verify_footer().unwrap_err();
    assert!(matches!(err.kind(), AprErrorKind::FooterChecksum { stored: 0x0913bf72, .. }), "{err}");
}

#[test]
fn truncation_anywhere_is_an_error() {
    let full = f32_fixture();
    let data_offset = 5632;
    let mut cuts: Vec<usize> = (0..data_offset + 200).collect();
    cuts.extend((data_offset + 200..full.len()).step_by(997));
    cuts.extend(full.len() - 70..full.len());
    for cut in cuts {
        let result = open(full[..cut].to_vec());
        if cut == full.len() - 4 {
            // Dropping exactly the footer leaves a valid footer-less file.
            let file = result.unwrap();
            assert_eq!(file.footer_crc(), None);
            continue;
        }
        let err = result.err().unwrap_or_else(|| panic!("cut at {cut} was accepted"));
        assert!(
            matches!(
                err.kind(),
                AprErrorKind::Truncated { .. }
                    | AprErrorKind::TensorOutOfBounds { .. }
                    | AprErrorKind::TrailingBytes { .. }
            ),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn mutated_counts_offsets_dtypes_and_dims_are_named() {
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = f32_fixture();
        f(&mut b);
        fix_header_crc(&mut b);
        kind_of(b)
    };
    let k = mutate(&|b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::CountTooLarge { what: "tensor_count", .. }), "{k:?}");
    let k = mutate(&|b| b[8..12].copy_from_slice(&28u32.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::BadTensorName { index: 27 }), "{k:?}");
    let k = mutate(&|b| b[20..24].copy_from_slice(&u32::MAX.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::BadLayout { .. }), "{k:?}");
    let k = mutate(&|b| b[12..20].copy_from_slice(&u64::MAX.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::BadLayout { .. }), "{k:?}");
    let k = mutate(&|b| b[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes()));
    assert!(matches!(k, AprErrorKind::Truncated { .. }), "{k:?}");
    let k = mutate(&|b| b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes()));
    assert!(matches!(k, AprErrorKind::BadLayout { .. }), "{k:?}");

    let k = mutate(&|b| b[DTYPE] = 200);
    assert!(matches!(k, AprErrorKind::UnknownDtype { id: 200, .. }), "{k:?}");
    let k = mutate(&|b| b[DTYPE] = 1);
    assert!(matches!(&k, AprErrorKind::PayloadSize { found: 327680, .. }), "{k:?}");
    let k = mutate(&|b| b[DTYPE] = 8);
    match &k {
        AprErrorKind::PayloadSize { expected, .. } => {
            assert_eq!(expected, "87040 as Q8_0 or 46080 as APR-Q4")
        }
        other => panic!("{other:?}"),
    }
    let k = mutate(&|b| b[DIM0..DIM0 + 8].copy_from_slice(&321u64.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::PayloadSize { .. }), "{k:?}");
    let k = mutate(&|b| b[DIM0..DIM0 + 8].copy_from_slice(&(1u64 << 60).to_le_bytes()));
    assert!(matches!(k, AprErrorKind::DimsOverflow { .. }), "{k:?}");
    let k = mutate(&|b| b[NDIM] = 9);
    assert!(matches!(k, AprErrorKind::TooManyDims { ndim: 9, .. }), "{k:?}");
    let k = mutate(&|b| b[OFFSET..OFFSET + 8].copy_from_slice(&(6_000_000u64).to_le_bytes()));
    assert!(matches!(k, AprErrorKind::TensorOutOfBounds { .. }), "{k:?}");
    let k = mutate(&|b| b[OFFSET..OFFSET + 8].copy_from_slice(&u64::MAX.to_le_bytes()));
    assert!(matches!(k, AprErrorKind::TensorOutOfBounds { .. }), "{k:?}");
    // "lm_head.weight" -> "zm_head.weight" sorts after the next entry.
    let k = mutate(&|b| b[ENTRY + 2] = b'z');
    assert!(matches!(k, AprErrorKind::UnsortedIndex { .. }), "{k:?}");
    let k = mutate(&|b| b[ENTRY + 2] = 0xff);
    assert!(matches!(k, AprErrorKind::BadTensorName { index: 0 }), "{k:?}");
    let k = mutate(&|b| b[64] = b'[');
    assert!(matches!(k, AprErrorKind::MetadataJson { .. }), "{k:?}");
}

#[test]
fn duplicate_names_are_rejected() {
    let mut w = AprWriter::new(0);
    w.add_tensor("t1", TensorType::U8, vec![1], vec![1]).unwrap();
    w.add_tensor("t2", TensorType::U8, vec![1], vec![2]).unwrap();
    let mut b = w.write().unwrap();
    let second_name = 64 + 64 + (2 + 2 + 1 + 1 + 8 + 16) + 2;
    assert_eq!(&b[second_name..second_name + 2], b"t2");
    b[second_name + 1] = b'1';
    fix_header_crc(&mut b);
    assert!(matches!(kind_of(b), AprErrorKind::DuplicateTensor { .. }));
}

#[test]
fn flags_and_magic_are_checked() {
    let with_flags = |flags: u16| {
        let mut b = f32_fixture();
        b[6..8].copy_from_slice(&flags.to_le_bytes());
        fix_header_crc(&mut b);
        b
    };
    assert!(matches!(
        kind_of(with_flags(FLAG_ROW_MAJOR | FLAG_COLUMN_MAJOR)),
        AprErrorKind::ColumnMajor { .. }
    ));
    assert!(matches!(kind_of(with_flags(FLAG_ENCRYPTED)), AprErrorKind::Encrypted { .. }));
    // Upstream's writer sets the LZ4 flag without compressing: such a file reads plainly.
    let file = open(with_flags(FLAG_ROW_MAJOR | FLAG_LZ4)).unwrap();
    assert_eq!(file.tensors().len(), 27);
    // A really compressed payload is refused with a clear message.
    let mut b = with_flags(FLAG_ZSTD);
    b[64] = 0x28;
    b[65] = 0xb5;
    let err = open(b).err().unwrap();
    assert!(matches!(err.kind(), AprErrorKind::Compressed { .. }));
    assert!(err.to_string().contains("ZSTD"), "{err}");

    let mut b = f32_fixture();
    b[4] = 3;
    fix_header_crc(&mut b);
    assert!(matches!(kind_of(b), AprErrorKind::UnsupportedVersion { major: 3, minor: 0 }));

    let gguf = fixture("tiny-qwen2.gguf");
    let err = open(gguf).err().unwrap();
    assert!(err.to_string().contains("GGUF"), "{err}");
    assert!(matches!(
        kind_of(b"GGUF\x03\0\0".to_vec()),
        AprErrorKind::BadMagic { hint: Some(_), .. }
    ));
    assert!(matches!(kind_of(b"APR\0\x02\0".to_vec()), AprErrorKind::Truncated { .. }));
    assert!(matches!(kind_of(Vec::new()), AprErrorKind::Truncated { .. }));
    assert!(matches!(kind_of(b"AP".to_vec()), AprErrorKind::Truncated { .. }));
}

/// Deterministic byte flips (a fixed LCG): the reader may accept or reject, never panic.
#[test]
fn random_byte_flips_never_panic() {
    let (synthetic, _) = synthetic();
    let fixture = f32_fixture();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    for round in 0..1000 {
        let (mut b, region) = if round % 2 == 0 {
            let len = synthetic.len();
            (synthetic.clone(), len)
        } else {
            // Header, metadata and index of the fixture: where parsing happens.
            (fixture.clone(), 5632 + 64)
        };
        for _ in 0..1 + next() % 4 {
            let at = next() % region;
            b[at] ^= 1 << (next() % 8);
        }
        if round % 3 == 0 {
            fix_header_crc(&mut b);
        }
        if let Ok(file) = open(b) {
            let _ = file.verify_footer();
            let _ = file.hyperparameters();
            for t in file.tensors().iter().take(4) {
                let _ = file.tensor_f32(&t.name);
                let _ = file.tensor_rows_f32(&t.name, 0..t.n_rows().min(2));
            }
        }
    }
}
