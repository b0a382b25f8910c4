//! The malformed corpus: a small valid file from the writer, then (a) cut at every length,
//! (b) one field at a time set to a specific bad value, each expecting a specific error kind at
//! the field's offset, (c) thousands of seeded random corruptions. Nothing may panic.

mod common;

use common::*;
use parallax_gguf::writer::{GgufWriter, KvLayout, Layout, TensorLayout};
use parallax_gguf::{
    GgmlType, GgufError, GgufErrorKind as K, GgufFile, MetaArray, MetaValue, ReadOptions,
};
use parallax_source::MemorySource;

fn read(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::read(&MemorySource::new(bytes.to_vec()))
}

fn kv<'a>(l: &'a Layout, key: &str) -> &'a KvLayout {
    l.kvs.iter().find(|k| k.key == key).unwrap()
}

fn ti<'a>(l: &'a Layout, name: &str) -> &'a TensorLayout {
    l.tensors.iter().find(|t| t.name == name).unwrap()
}

/// Apply `patch` to a fresh sample file and return the error the reader gives.
fn corrupt(patch: impl FnOnce(&mut Vec<u8>, &Layout)) -> GgufError {
    let (mut bytes, layout) = sample();
    patch(&mut bytes, &layout);
    let err = read(&bytes).expect_err("the corrupted file was accepted");
    // Every message is a sentence with the location.
    let msg = err.to_string();
    assert!(msg.contains(&format!("at byte {}", err.offset())), "{msg}");
    err
}

#[test]
fn truncation_at_every_length_is_an_error() {
    let (bytes, layout) = sample();
    let data_end = layout.tensors.iter().map(|t| t.data_at + t.n_bytes).max().unwrap();
    for len in 0..bytes.len() {
        match read(&bytes[..len]) {
            // Only the trailing padding after the last tensor may be cut.
            Ok(_) => assert!(len as u64 >= data_end, "accepted a file cut at {len}"),
            Err(e) => {
                assert!(
                    e.is_truncated()
                        || matches!(
                            e.kind(),
                            K::CountTooLarge { .. } | K::TensorOutOfBounds { .. }
                        ),
                    "cut at {len}: {e}"
                );
                assert!(e.offset() <= bytes.len() as u64);
            }
        }
    }
    let e = read(&bytes[..layout.tensors[3].at as usize + 2]).unwrap_err();
    assert!(e.is_truncated());
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = read(&bytes[..data_end as usize - 1]).unwrap_err();
    assert!(matches!(e.kind(), K::TensorOutOfBounds { .. }), "{e}");
    assert_eq!(e.tensor(), Some(layout.tensors.last().unwrap().name.as_str()));
}

#[test]
fn magic_and_version() {
    let e = corrupt(|b, _| b[..4].copy_from_slice(b"FUGG"));
    assert_eq!((e.kind(), e.offset()), (&K::BigEndian, 0));
    assert!(e.to_string().contains("big-endian"), "{e}");
    let e = corrupt(|b, _| b[..4].copy_from_slice(b"APR\0"));
    assert_eq!(e.kind(), &K::BadMagic { found: *b"APR\0" });
    assert!(e.to_string().contains("APR file"), "{e}");
    let e = corrupt(|b, _| b[..4].copy_from_slice(b"<!DO"));
    assert!(e.to_string().contains("HTML"), "{e}");
    let e = corrupt(|b, l| put_u32(b, l.version_at, 1));
    assert_eq!((e.kind(), e.offset()), (&K::UnsupportedVersion { version: 1 }, 4));
    assert!(e.to_string().contains("version 1"), "{e}");
    let e = corrupt(|b, l| put_u32(b, l.version_at, 3u32.swap_bytes()));
    assert_eq!(e.kind(), &K::BigEndian);
    let e = corrupt(|b, l| put_u32(b, l.version_at, 4));
    assert_eq!(e.kind(), &K::UnsupportedVersion { version: 4 });
    assert!(read(b"").unwrap_err().is_truncated());
    assert!(read(b"GGUF\x03\0\0\0").unwrap_err().is_truncated());
}

#[test]
fn huge_header_counts_fail_fast() {
    for count in [1u64 << 40, 1 << 50, 1 << 62, 1 << 63, u64::MAX] {
        let e = corrupt(|b, l| put_u64(b, l.tensor_count_at, count));
        assert!(matches!(e.kind(), K::CountTooLarge { count: c, .. } if *c == count), "{e}");
        assert_eq!(e.offset(), 8);
        let e = corrupt(|b, l| put_u64(b, l.kv_count_at, count));
        assert!(matches!(e.kind(), K::CountTooLarge { count: c, .. } if *c == count), "{e}");
        assert_eq!(e.offset(), 16);
    }
    // Plausible alone, impossible together.
    let e = corrupt(|b, l| {
        let n = b.len() as u64 / 24;
        put_u64(b, l.tensor_count_at, n);
        put_u64(b, l.kv_count_at, n);
    });
    assert!(matches!(e.kind(), K::CountTooLarge { .. }), "{e}");
}

#[test]
fn huge_lengths_inside_metadata_fail_fast_at_their_field() {
    for count in [1u64 << 40, 1 << 62, 1 << 63, u64::MAX] {
        // Key length.
        let e = corrupt(|b, l| put_u64(b, kv(l, "v.u32").at, count));
        assert!(matches!(e.kind(), K::CountTooLarge { .. }), "{e}");
        assert_eq!(e.offset(), sample().1.kvs.iter().find(|k| k.key == "v.u32").unwrap().at);
        // String value length.
        let e = corrupt(|b, l| put_u64(b, kv(l, "v.string").value_at, count));
        assert!(matches!(e.kind(), K::CountTooLarge { .. }), "{e}");
        assert_eq!(e.key(), Some("v.string"));
        // Array counts of every element type, and of the inner array of a nested one.
        for key in ["a.u8", "a.i16", "a.u32", "a.f64", "a.bool", "a.string", "a.nested", "a.empty"]
        {
            let e = corrupt(|b, l| put_u64(b, kv(l, key).value_at + 4, count));
            assert!(
                matches!(e.kind(), K::CountTooLarge { count: c, .. } if *c == count),
                "{key}: {e}"
            );
            assert_eq!((e.key(), e.offset()), (Some(key), kv(&sample().1, key).value_at + 4));
        }
        let e = corrupt(|b, l| put_u64(b, kv(l, "a.nested").value_at + 12 + 4, count));
        assert!(matches!(e.kind(), K::CountTooLarge { .. }), "{e}");
        // Strings inside an array: first element's length.
        let e = corrupt(|b, l| put_u64(b, kv(l, "a.string").value_at + 12, count));
        assert!(matches!(e.kind(), K::CountTooLarge { .. }), "{e}");
        assert_eq!(e.key(), Some("a.string"));
    }
}

#[test]
fn bad_type_ids_and_values() {
    for id in [13u32, 99, u32::MAX] {
        let e = corrupt(|b, l| put_u32(b, kv(l, "v.u16").type_at, id));
        assert_eq!((e.kind(), e.key()), (&K::UnknownValueType { id }, Some("v.u16")));
        assert_eq!(e.offset(), kv(&sample().1, "v.u16").type_at);
        let e = corrupt(|b, l| put_u32(b, kv(l, "a.i32").value_at, id));
        assert_eq!(
            (e.kind(), e.offset()),
            (&K::UnknownValueType { id }, kv(&sample().1, "a.i32").value_at)
        );
    }
    let e = corrupt(|b, l| b[kv(l, "v.bool").value_at as usize] = 2);
    assert_eq!(e.kind(), &K::InvalidBool { byte: 2 });
    let e = corrupt(|b, l| b[kv(l, "a.bool").value_at as usize + 12 + 1] = 7);
    assert_eq!(
        (e.kind(), e.offset()),
        (&K::InvalidBool { byte: 7 }, kv(&sample().1, "a.bool").value_at + 13)
    );
    // A key that is not UTF-8 is refused even in the lenient mode.
    let e = corrupt(|b, l| b[kv(l, "v.f32").at as usize + 8] = 0xc3);
    assert!(matches!(e.kind(), K::InvalidUtf8 { what: "a metadata key", .. }), "{e}");
}

#[test]
fn duplicate_keys_and_tensors() {
    // "v.i8" becomes a second "v.u8".
    let e = corrupt(|b, l| b[kv(l, "v.i8").at as usize + 8 + 2] = b'u');
    assert_eq!(
        (e.kind(), e.key(), e.offset()),
        (&K::DuplicateKey, Some("v.u8"), kv(&sample().1, "v.i8").at)
    );
    // "q4_k.mat" becomes a second "q8_0.mat" (same length).
    let e = corrupt(|b, l| b[ti(l, "q4_k.mat").at as usize + 8..][..4].copy_from_slice(b"q8_0"));
    assert_eq!((e.kind(), e.tensor()), (&K::DuplicateTensor, Some("q8_0.mat")));
}

#[test]
fn nesting_depth_is_limited() {
    let mut a = MetaArray::I32(vec![1]);
    for _ in 0..20 {
        a = MetaArray::Array(vec![a]);
    }
    let mut w = GgufWriter::new();
    w.add("deep", a).unwrap();
    let e = read(&w.to_bytes()).unwrap_err();
    assert_eq!((e.kind(), e.key()), (&K::NestingTooDeep { max: 8 }, Some("deep")));
    let opts = ReadOptions::default().max_array_depth(21);
    assert!(GgufFile::read_with(&MemorySource::new(w.to_bytes()), opts).is_ok());
    // Deep nesting declared in a hand-made header (each level 12 bytes) cannot blow the stack.
    let mut b = GgufWriter::new().to_bytes();
    b.truncate(24);
    put_u64(&mut b, 16, 1);
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(b"deep");
    b.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..100_000 {
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
    }
    assert!(matches!(read(&b).unwrap_err().kind(), K::NestingTooDeep { .. }));
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    let mut w = sample_writer();
    w.set_alignment(64).unwrap();
    let (bytes, layout) = w.to_bytes_with_layout();
    assert_eq!(read(&bytes).unwrap().alignment(), 64);
    let at = kv(&layout, "general.alignment");
    for bad in [0u32, 48, 3] {
        let mut b = bytes.clone();
        put_u32(&mut b, at.value_at, bad);
        let e = read(&b).unwrap_err();
        assert_eq!(e.kind(), &K::BadAlignment { value: bad.to_string() });
        assert_eq!((e.offset(), e.key()), (at.value_at, Some("general.alignment")));
    }
    let mut b = bytes.clone();
    put_u32(&mut b, at.type_at, 5); // i32 instead of u32
    assert!(matches!(read(&b).unwrap_err().kind(), K::WrongType { expected: "a u32", .. }));
    // Alignment 128 makes the (64-aligned) offsets misaligned.
    let mut b = bytes.clone();
    put_u32(&mut b, at.value_at, 128);
    assert!(matches!(read(&b).unwrap_err().kind(), K::MisalignedTensor { alignment: 128, .. }));
}

#[test]
fn bad_tensor_infos() {
    let l = sample().1;
    let q4 = ti(&l, "q4_k.mat");
    let check = |e: GgufError, at: u64| {
        assert_eq!((e.tensor(), e.offset()), (Some("q4_k.mat"), at), "{e}");
        assert!(e.to_string().contains("tensor \"q4_k.mat\""), "{e}");
        e
    };
    let e = check(corrupt(|b, l| put_u32(b, ti(l, "q4_k.mat").n_dims_at, 5)), q4.n_dims_at);
    assert_eq!(e.kind(), &K::TooManyDims { n_dims: 5 });
    let e = check(corrupt(|b, l| put_u32(b, ti(l, "q4_k.mat").n_dims_at, u32::MAX)), q4.n_dims_at);
    assert_eq!(e.kind(), &K::TooManyDims { n_dims: u32::MAX });
    let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").dims_at + 8, 0)), q4.dims_at);
    assert_eq!(e.kind(), &K::ZeroDim { dims: vec![256, 0] });
    let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").dims_at + 8, 1 << 60)), q4.dims_at);
    assert_eq!(e.kind(), &K::ElementCountOverflow { dims: vec![256, 1 << 60] });
    let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").dims_at, 1 << 63)), q4.dims_at);
    assert!(matches!(e.kind(), K::ElementCountOverflow { .. }));
    let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").dims_at, 100)), q4.dims_at);
    assert_eq!(e.kind(), &K::RowNotWholeBlocks { ty: GgmlType::Q4_K, ne0: 100 });
    for id in [4u32, 5, 31, 40, u32::MAX] {
        let e = check(corrupt(|b, l| put_u32(b, ti(l, "q4_k.mat").type_at, id)), q4.type_at);
        assert_eq!(e.kind(), &K::UnknownTensorType { id });
    }
    let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").offset_at, 1)), q4.offset_at);
    assert_eq!(e.kind(), &K::MisalignedTensor { rel_offset: 1, alignment: 32 });
    for off in [1u64 << 40, 1 << 62, u64::MAX - 31] {
        let e = check(corrupt(|b, l| put_u64(b, ti(l, "q4_k.mat").offset_at, off)), q4.offset_at);
        assert!(matches!(e.kind(), K::TensorOutOfBounds { .. }), "{e}");
    }
    // Pointing q4_k.mat at q8_0.mat's data: an overlap naming both.
    let e = corrupt(|b, l| {
        let rel = ti(l, "q8_0.mat").data_at - l.data_offset;
        put_u64(b, ti(l, "q4_k.mat").offset_at, rel)
    });
    assert!(
        matches!(e.kind(), K::OverlappingTensors { other, .. } if other == "q8_0.mat" || other == "q4_k.mat"),
        "{e}"
    );
    // A type with bigger blocks makes the tensor run into the next one.
    let e = corrupt(|b, l| put_u32(b, ti(l, "q8_0.mat").type_at, GgmlType::F32.id()));
    assert!(matches!(e.kind(), K::OverlappingTensors { .. }), "{e}");
    // Type changes that keep sizes plausible but break the row (Q8_0 rows of 32 as Q4_K).
    let e = corrupt(|b, l| put_u32(b, ti(l, "q8_0.mat").type_at, GgmlType::Q4_K.id()));
    assert!(matches!(e.kind(), K::RowNotWholeBlocks { .. }), "{e}");
    // Tensor name not UTF-8.
    let e = corrupt(|b, l| b[ti(l, "f16.cube").at as usize + 8] = 0xff);
    assert!(matches!(e.kind(), K::InvalidUtf8 { what: "a tensor name", .. }), "{e}");
}

#[test]
fn random_corruption_never_panics() {
    let (bytes, layout) = sample();
    let header = layout.header_len;
    let mut rng = parallax_testkit::SplitMix64(0x05EE_D0F6_A11A);
    let (mut ok, mut errs) = (0, std::collections::BTreeMap::new());
    for i in 0..5000 {
        let mut b = bytes.clone();
        match i % 4 {
            // Flip a few bits anywhere in the header.
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(header) as usize;
                    b[at] ^= 1 << rng.below(8);
                }
            }
            // Overwrite an 8-byte window with a huge or random value.
            2 => {
                let at = rng.below(header - 8) as usize;
                let v = match rng.below(3) {
                    0 => 1u64 << (40 + rng.below(24)),
                    1 => rng.next_u64(),
                    _ => rng.below(64),
                };
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            // Random bytes and a random cut.
            _ => {
                let at = rng.below(header) as usize;
                b[at] = rng.next_u64() as u8;
                b.truncate(rng.below(bytes.len() as u64 + 1) as usize);
            }
        }
        let src = MemorySource::new(b);
        match GgufFile::read(&src) {
            Ok(file) => {
                ok += 1;
                // Whatever was accepted is safe to use.
                for t in file.tensors() {
                    assert_eq!(file.tensor_bytes(&src, t).unwrap().len() as u64, t.n_bytes);
                    assert_eq!(
                        file.tensor_rows(&src, t, 0..t.n_rows()).unwrap().len() as u64,
                        t.n_bytes
                    );
                }
                for (k, v) in file.metadata() {
                    let _ = (file.get(k), v.as_u64(), v.as_f32(), v.as_str());
                }
            }
            Err(e) => {
                let _ = e.to_string();
                *errs
                    .entry(
                        format!("{:?}", e.kind())
                            .split([' ', '{', '('])
                            .next()
                            .unwrap()
                            .to_string(),
                    )
                    .or_insert(0) += 1;
            }
        }
    }
    eprintln!("accepted {ok}, rejected by kind: {errs:?}");
    // The corpus reaches many different checks, not one early exit.
    assert!(errs.len() >= 10, "{errs:?}");
}

#[test]
fn empty_metadata_arrays_are_accepted() {
    // Empty arrays occur in real files (gguf-py cannot write them, llama.cpp can).
    let (bytes, _) = sample();
    assert_eq!(read(&bytes).unwrap().get_arr("a.empty"), Some(&MetaArray::U32(vec![])));
    assert_eq!(read(&bytes).unwrap().get("v.u8"), Some(&MetaValue::U8(200)));
}
