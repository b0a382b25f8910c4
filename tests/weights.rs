//! The weights diff on real files: the shared 0.5B Q4_K_M against gguf-py's F32 dequantization
//! of it, and the upstream `apr import` fixtures against the GGUF they were made from. Both pairs
//! must be identical bit for bit, tensor by tensor: Parallax's dequantization equals gguf-py's on
//! every tensor of a real file, and its APR reader returns what upstream's import wrote.

use std::sync::atomic::AtomicBool;

use parallax_model::{check_compatible, Model};
use parallax_report::TensorDiff;
use parallax_source::FileSource;
use parallax_testkit::alloc::{measure, Counting};
use parallax_tests::{model_path, shared_dir, QWEN_0_5B, QWEN_LADDER_F32};

// Bounds what the diff of a 2 GB pair may hold. The counters are process-wide: the other tests
// of this binary read kilobyte fixtures, which the bound below leaves room for.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn open(path: &std::path::Path) -> Model<FileSource> {
    Model::open(FileSource::open(path).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn not_identical(entries: &[TensorDiff]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.compares.iter().any(|c| !c.identical))
        .map(|e| format!("{} ({:?})", e.name, e.compares))
        .collect()
}

#[test]
fn the_05b_dequantizes_to_gguf_py_s_f32_file_bit_for_bit_in_bounded_memory() {
    let (Some(quantized), Some(f32)) = (model_path(QWEN_0_5B), model_path(QWEN_LADDER_F32)) else {
        return;
    };
    let (a, b) = (open(&quantized), open(&f32));
    assert_eq!(check_compatible(&a, &b), Ok(()));
    let mut calls = 0;
    let started = std::time::Instant::now();
    let (allocated, entries) = measure(|| {
        parallax_engine::weights_diff(&[&a, &b], |_, _| calls += 1, &AtomicBool::new(false))
            .unwrap()
    });
    eprintln!(
        "0.5B Q4_K_M against F32: {} tensors in {:.1} s, peak {} MiB allocated",
        entries.len(),
        started.elapsed().as_secs_f64(),
        allocated.peak >> 20
    );
    assert_eq!(entries.len(), 291);
    assert_eq!(calls, 292, "once before the first tensor and once after each");
    assert_eq!(not_identical(&entries), Vec::<String>::new());
    let head = entries.iter().find(|e| e.name == "output.weight").unwrap();
    assert_eq!((head.files[0].ty.as_str(), head.files[1].ty.as_str()), ("Q8_0", "F32"));
    // Every mixed type of a llama.cpp Q4_K_M was compared, not only Q4_K.
    let mut types: Vec<&str> = entries.iter().map(|e| e.files[0].ty.as_str()).collect();
    types.sort();
    types.dedup();
    assert_eq!(types, ["F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"]);
    // The F32 file is 2.4 GiB and its embedding alone 519 MiB: the diff holds a chunk of each
    // file (16 MiB of f32 each, plus the F32 chunk's 16 MiB of raw bytes: 48 MiB measured),
    // never a tensor.
    assert!(allocated.peak < 80 << 20, "peak {} MiB", allocated.peak >> 20);
}

#[test]
fn the_apr_imports_hold_the_gguf_fixture_s_values() {
    let dir = shared_dir().join("fixtures/apr");
    let gguf = open(&dir.join("tiny-qwen2.gguf"));
    let f32 = open(&dir.join("tiny-qwen2.f32.apr"));
    let raw = open(&dir.join("tiny-qwen2.raw.apr"));
    for (x, y) in [(&gguf, &f32), (&gguf, &raw), (&f32, &raw)] {
        assert_eq!(check_compatible(x, y), Ok(()));
        assert_eq!(check_compatible(y, x), Ok(()));
    }
    let entries =
        parallax_engine::weights_diff(&[&gguf, &f32, &raw], |_, _| {}, &AtomicBool::new(false))
            .unwrap();
    assert_eq!(entries.len(), gguf.tensors().len());
    assert_eq!(not_identical(&entries), Vec::<String>::new());
    // Paired by role across the three namings.
    let up = entries.iter().find(|e| e.name == "blk.1.ffn_up.weight").unwrap();
    let names: Vec<&str> = up.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight"]
    );
    let types: Vec<&str> = up.files.iter().map(|f| f.ty.as_str()).collect();
    assert_eq!(types, ["Q8_0", "F32", "Q8_0"]);
    assert!(up.compares.iter().all(|c| c.rel_l2 == Some(0.0) && c.sqnr_db.is_none()));

    // The same pairs from the APR side: its lm_head and the GGUF's output head.
    let entries =
        parallax_engine::weights_diff(&[&f32, &gguf], |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(not_identical(&entries), Vec::<String>::new());
    let head = entries.iter().find(|e| e.name == "lm_head.weight").unwrap();
    assert_eq!(head.files[1].name, "output.weight");
}

#[test]
fn a_cancelled_diff_stops_with_cancelled() {
    let dir = shared_dir().join("fixtures/apr");
    let gguf = open(&dir.join("tiny-qwen2.gguf"));
    let e = parallax_engine::weights_diff(&[&gguf, &gguf], |_, _| {}, &AtomicBool::new(true))
        .unwrap_err();
    assert_eq!(e, parallax_engine::EngineError::Cancelled);
}
