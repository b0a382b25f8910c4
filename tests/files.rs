//! Two files of one model in one run, on real files made by tools other than Parallax: the
//! shared 0.5B Q4_K_M against gguf-py's F32 dequantization of it, and upstream `apr import`'s
//! fixtures against the GGUF they came from. Identical weights must give bit-identical sites on
//! the same path and a KL divergence of exactly 0 at every position, the files contract must
//! pass, and memory must stay one layer per file.

use parallax_engine::{EngineError, PathKind, Run, RunInput, RunOptions};
use parallax_model::convert::{gguf_to_apr, AprVariant, ConvertOptions};
use parallax_model::Model;
use parallax_report::verdict::Outcome;
use parallax_report::Report;
use parallax_session::Judging;
use parallax_source::{FileSource, MemorySource};
use parallax_testkit::alloc::{measure, Counting};
use parallax_tests::{model_path, shared_dir, GEMMA_270M, QWEN_0_5B, QWEN_LADDER_F32};

// Peak memory of a run, one file against two. The counters are process-wide, so the tests of
// this binary take turns ([`one_at_a_time`]).
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by each test of this binary while it runs: the allocation counters see one test only.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// "What is 2+2?" with the 0.5B's tokenizer, plus two tokens: a prompt of 9 positions.
const TOKENS: [u32; 9] = [3838, 374, 220, 17, 10, 17, 30, 576, 4226];

fn open(path: &std::path::Path) -> Model<FileSource> {
    Model::open(FileSource::open(path).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

/// The shared 0.5B Q4_K_M and gguf-py's F32 rewrite of it (the same weights), opened; `None`
/// where either is missing.
fn q4_and_f32() -> Option<(Model<FileSource>, Model<FileSource>)> {
    Some((open(&model_path(QWEN_0_5B)?), open(&model_path(QWEN_LADDER_F32)?)))
}

fn input(tokens: &[u32]) -> RunInput {
    RunInput { tokens: tokens.to_vec(), ..Default::default() }
}

/// Every site's comparison of `lane` with the reference: the largest |Δ| anywhere (the first
/// differing site is named on stderr).
fn max_abs_everywhere(r: &Report, lane: &str) -> f64 {
    let mut worst = 0f64;
    let mut sites = 0;
    let named = r
        .layers
        .iter()
        .flat_map(|l| l.sites.iter().map(move |(s, rec)| (l.index, s.as_str(), rec)));
    let global = [(0, "embed", &r.embed), (u32::MAX, "final_norm", &r.final_norm)];
    for (layer, name, site) in
        global[..1].iter().copied().chain(named).chain(global[1..].iter().copied())
    {
        let c = site.compare.get(lane).unwrap_or_else(|| panic!("{lane} compared at every site"));
        let d = c.max_abs.expect("finite");
        if d > 0.0 && worst == 0.0 {
            eprintln!("{lane} first differs at layer {layer} {name}: max |Δ| {d}");
        }
        worst = worst.max(d);
        sites += 1;
    }
    assert!(sites > 2 * r.layers.len(), "{sites} sites");
    worst
}

fn outcome(r: &Report, id: &str) -> Outcome {
    let v = r.verdicts.as_ref().expect("judged");
    v.contracts.iter().flat_map(|c| &c.tests).find(|t| t.id == id).expect(id).outcome
}

#[test]
fn identical_weights_give_bit_identical_sites_zero_kld_and_a_pass_in_one_layer_per_file() {
    let _turn = one_at_a_time();
    let Some((a, b)) = q4_and_f32() else { return };
    let opts = RunOptions::default();
    let (one_file, _) = measure(|| Run::new(&b, &input(&TOKENS), &opts).run().unwrap());
    let (two_files, mut report) =
        measure(|| Run::new(&a, &input(&TOKENS), &opts).against([&b]).run().unwrap());
    eprintln!(
        "peak allocated: F32 file alone {} MiB, Q4_K_M against F32 {} MiB ({:.2}×)",
        one_file.peak >> 20,
        two_files.peak >> 20,
        two_files.peak as f64 / one_file.peak as f64
    );
    assert_eq!(report.paths, ["f32", "q8", "f32@2", "q8@2"]);
    assert_eq!(report.files.len(), 2);
    assert_eq!(report.files[1].paths, ["f32@2", "q8@2"]);
    assert_eq!(report.files[1].types.get("F32"), Some(&291));
    assert_eq!(report.weights.len(), 291);
    assert_eq!(report.weights_identical(), Some(true));
    // The same values through the same ops in the same order: equal bits at every site.
    assert_eq!(max_abs_everywhere(&report, "f32@2"), 0.0);
    let c = &report.logits.compare["f32@2"];
    let positions = c.positions.as_ref().expect("every position's logits");
    assert_eq!(positions.n, TOKENS.len() as u32);
    assert_eq!((positions.kld.mean, positions.kld.max, positions.same_top1), (0.0, 0.0, 1.0));
    assert_eq!(report.per_token.logits["f32@2"].len(), TOKENS.len());
    assert_eq!(c.kl, Some(0.0));
    // The q8 path on an F32 file multiplies in f32 (llama.cpp pairs F32 weights with F32
    // activations): not the Q4_K_M's fused dots, so it differs, but only by that arithmetic.
    let q8_2 = &report.logits.compare["q8@2"];
    assert!(q8_2.positions.as_ref().unwrap().kld.mean < 0.01, "{q8_2:?}");

    let judging = Judging::from_texts(&[], None, &[]).unwrap();
    assert!(judging.judge(&mut report), "{}", report.to_json());
    for id in
        ["PARALLAX-FILES-004", "PARALLAX-FILES-005", "PARALLAX-FILES-006", "PARALLAX-FILES-007"]
    {
        assert_eq!(outcome(&report, id), Outcome::Pass, "{id}");
    }
    assert_eq!(outcome(&report, "PARALLAX-FILES-008"), Outcome::Measured);

    // One layer per file: the F32 file's 24 layers are 1.7 GiB, its embedding 519 MiB; the run
    // holds a layer of each file, the prompt's activations and a head chunk of each.
    assert!(two_files.peak < 400 << 20, "two files held {} MiB", two_files.peak >> 20);
    assert!(
        two_files.peak as f64 <= 2.2 * one_file.peak as f64,
        "two files {} MiB against the larger file alone {} MiB",
        two_files.peak >> 20,
        one_file.peak >> 20
    );
}

#[test]
fn the_reference_can_be_any_lane_and_llama_cpp_s_kld_pair_is_q8_against_q8() {
    let _turn = one_at_a_time();
    let Some((a, b)) = q4_and_f32() else { return };
    let opts = RunOptions {
        paths: vec![PathKind::Q8],
        reference: Some("q8@2".into()),
        ..RunOptions::default()
    };
    let report = Run::new(&a, &input(&TOKENS[..5]), &opts).against([&b]).run().unwrap();
    assert_eq!(
        (report.paths.as_slice(), report.reference.as_str()),
        (&["q8@2".to_string(), "q8".to_string()][..], "q8@2")
    );
    let kld = &report.logits.compare["q8"].positions.as_ref().unwrap().kld;
    assert!(kld.mean > 0.0 && kld.mean < 0.05, "{kld:?}");
    // Across files, the op-alone comparison is the tensor's own effect: on every matmul site,
    // and without a rounding-noise prediction (the weights differ by more than rounding).
    let q = &report.layers[0].sites["q"];
    assert!(q.local.contains_key("q8") && !q.noise.contains_key("q8"));
}

#[test]
fn files_that_are_not_one_network_are_refused_before_a_layer_is_read() {
    let _turn = one_at_a_time();
    let (Some(qwen), Some(gemma)) = (model_path(QWEN_0_5B), model_path(GEMMA_270M)) else {
        return;
    };
    let (a, b) = (open(&qwen), open(&gemma));
    let err = Run::new(&a, &input(&TOKENS), &RunOptions::default()).against([&b]).run();
    let Err(e @ EngineError::Incompatible { file: 2, .. }) = err else {
        panic!("{:?}", err.map(|r| r.paths));
    };
    let sentence = e.to_string();
    assert!(sentence.contains("architecture"), "{sentence}");
}

/// Upstream's own case: an APR made by `apr import` from a GGUF (F32 with HF names, and
/// `--preserve-q4k`'s GGML bytes), run against that GGUF, with the upstream contract judged
/// across the files (`apr=f32,gguf=q8@2`).
#[test]
fn upstream_apr_imports_run_identically_to_their_gguf() {
    let _turn = one_at_a_time();
    let dir = shared_dir().join("fixtures/apr");
    let gguf = open(&dir.join("tiny-qwen2.gguf"));
    for name in ["tiny-qwen2.f32.apr", "tiny-qwen2.raw.apr"] {
        let apr = open(&dir.join(name));
        let report = Run::new(&gguf, &input(&[1, 2, 3, 4, 5, 6, 7]), &RunOptions::default())
            .against([&apr])
            .run()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.weights_identical(), Some(true), "{name}");
        assert_eq!(max_abs_everywhere(&report, "f32@2"), 0.0, "{name}");
        if name == "tiny-qwen2.raw.apr" {
            // The same GGML bytes: the fused path's dots too. (The F32 import holds dequantized
            // values, which llama.cpp's CPU backend multiplies in f32.)
            let q8 = RunOptions { paths: vec![PathKind::Q8], ..RunOptions::default() };
            let tokens = input(&[1, 2, 3, 4, 5, 6, 7]);
            let fused = Run::new(&gguf, &tokens, &q8).against([&apr]).run().unwrap();
            assert_eq!(max_abs_everywhere(&fused, "q8@2"), 0.0, "{name}: q8 on the same bytes");
        }
        let mut judged = report.clone();
        let upstream = parallax_judge::contract::UPSTREAM_RESTATED_YAML;
        let judging = Judging::from_texts(
            &[("upstream".into(), upstream.into())],
            Some("apr=f32,gguf=q8@2"),
            &[],
        )
        .unwrap();
        assert!(judging.judge(&mut judged), "{name}");
        let v = judged.verdicts.unwrap();
        assert_eq!(
            v.contracts[0].mapping,
            [("apr".into(), "f32".into()), ("gguf".into(), "q8@2".into())]
        );
        // 001 and 007; 002 and 003 name layer 3 of a 2-layer model.
        assert_eq!((v.tally().pass, v.tally().fail), (2, 0), "{name}: {v:?}");
    }
}

/// An APR written by Parallax's converter from the shared 0.5B (GGML bytes kept, as upstream's
/// `--preserve-q4k`) against the GGUF: the same forward pass on both paths.
#[test]
fn an_apr_converted_from_the_05b_runs_identically_to_it() {
    let _turn = one_at_a_time();
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let source = FileSource::open(&path).unwrap();
    let gguf = parallax_gguf::GgufFile::read(&source).unwrap();
    let options = ConvertOptions::new(AprVariant::Quantized, "qwen2.5-0.5b");
    let bytes = gguf_to_apr(&gguf, &source, &options).unwrap().write().unwrap();
    let apr = Model::open(MemorySource::new(bytes)).unwrap();
    // The engine steps files of one source type: the GGUF read into memory too.
    let a = Model::open(MemorySource::new(std::fs::read(&path).unwrap())).unwrap();
    let report =
        Run::new(&a, &input(&TOKENS[..5]), &RunOptions::default()).against([&apr]).run().unwrap();
    assert_eq!(report.weights_identical(), Some(true));
    assert_eq!(report.execution.matmuls["q8"], report.execution.matmuls["q8@2"]);
    assert_eq!(max_abs_everywhere(&report, "f32@2"), 0.0);
    // The fused path against itself on the other file: the same bytes, the same dots.
    let q8 = RunOptions { paths: vec![PathKind::Q8], ..RunOptions::default() };
    let fused = Run::new(&a, &input(&TOKENS[..5]), &q8).against([&apr]).run().unwrap();
    assert_eq!(max_abs_everywhere(&fused, "q8@2"), 0.0);
    assert_eq!(fused.logits.compare["q8@2"].positions.as_ref().unwrap().kld.max, 0.0);
}
