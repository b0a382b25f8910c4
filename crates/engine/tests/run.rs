//! The one entry point, [`Run`], on the committed demo model: its hooks (progress, cancel,
//! logits) and the refusals that name a fault, as a front end sees them.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use parallax_engine::{EngineError, Fault, PathKind, Phase, Run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_source::FileSource;

fn demo() -> Model<FileSource> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../www/demo/parallax-demo-qwen2.gguf");
    Model::open(FileSource::open(&path).unwrap()).unwrap()
}

fn input() -> RunInput {
    RunInput { tokens: vec![3838, 374, 220, 17, 10, 17, 30], ..Default::default() }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

fn with_faults(specs: &[&str]) -> RunOptions {
    let faults = specs.iter().map(|s| Fault::parse(s, PathKind::Q8).unwrap()).collect();
    RunOptions { faults, ..Default::default() }
}

#[test]
fn progress_walks_the_phases_in_order_and_logits_match_the_report() {
    let model = demo();
    let mut phases = Vec::new();
    let (report, logits) = Run::new(&model, &input(), &RunOptions::default())
        .progress(|p| phases.push((p.phase, p.layers_done)))
        .with_logits()
        .run()
        .unwrap();
    let n_layers = report.layers.len() as u32;
    assert_eq!(phases.first(), Some(&(Phase::Embedding, 0)));
    assert_eq!(phases.last(), Some(&(Phase::Done, n_layers)));
    let layers: Vec<u32> =
        phases.iter().filter(|(p, _)| *p == Phase::Layer).map(|(_, l)| *l).collect();
    assert_eq!(layers, (1..=n_layers).collect::<Vec<_>>());
    // The logits are the last position's, per path, and their best token is the report's.
    assert_eq!(logits.len(), 2);
    for (path, l) in report.paths.iter().zip(&logits) {
        assert_eq!(l.len() as u64, report.model.n_vocab);
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (id, value) = report.logits.paths[path].top[0];
        assert_eq!((l[id as usize], value), (max, max), "path {path}");
    }
    // Without hooks the run gives the same report.
    let plain = Run::new(&model, &input(), &RunOptions::default()).run().unwrap();
    assert_eq!(json(&plain), json(&report));
}

#[test]
fn a_set_cancel_flag_stops_the_run() {
    let model = demo();
    let flag = AtomicBool::new(true);
    let err = Run::new(&model, &input(), &RunOptions::default()).cancel(&flag).run().unwrap_err();
    assert_eq!(err, EngineError::Cancelled);
}

#[test]
fn swap_gate_up_swaps_the_pair_whichever_site_it_names() {
    let model = demo();
    let run = |spec: &str| Run::new(&model, &input(), &with_faults(&[spec])).run().unwrap();
    let (plain, gate, up) =
        (run("swap-gate-up@1"), run("swap-gate-up@1:ffn_gate"), run("swap-gate-up@1:ffn_up"));
    assert_eq!(json(&gate.layers), json(&plain.layers));
    assert_eq!(json(&up.layers), json(&plain.layers));
    let clean = Run::new(&model, &input(), &RunOptions::default()).run().unwrap();
    assert_ne!(json(&plain.layers[1]), json(&clean.layers[1]), "the fault changes layer 1");
    assert_eq!(json(&plain.layers[0]), json(&clean.layers[0]), "and nothing before it");
}

#[test]
fn refusals_name_the_fault() {
    let model = demo();
    let err = |opts: &RunOptions| Run::new(&model, &input(), opts).run().unwrap_err();
    let e = err(&with_faults(&["drop-bias@99"]));
    assert!(matches!(e, EngineError::FaultLayerOutOfRange { .. }), "{e:?}");
    assert_eq!(e.to_string(), "cannot inject drop-bias@99 on path q8: the model has layers 0–2");
    let reference_q8 =
        RunOptions { paths: vec![PathKind::Q8, PathKind::F32], ..with_faults(&["drop-bias@1"]) };
    assert_eq!(
        err(&reference_q8).to_string(),
        "cannot inject drop-bias@1 on path q8: that is the reference path"
    );
    let e = err(&RunOptions { paths: vec![], ..Default::default() });
    assert_eq!(e, EngineError::NoPaths);
}

/// What a run tells its source: hints (each a group of ranges) and groups hinted later; and
/// the reads it makes, in order.
#[derive(Default)]
struct Told {
    hints: Vec<Vec<std::ops::Range<u64>>>,
    later: Vec<Vec<Vec<std::ops::Range<u64>>>>,
    reads: Vec<std::ops::Range<u64>>,
}

struct Noting {
    inner: FileSource,
    told: std::sync::Mutex<Told>,
}

impl parallax_source::ByteSource for Noting {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(
        &self,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), parallax_source::SourceError> {
        self.told.lock().unwrap().reads.push(offset..offset + buf.len() as u64);
        self.inner.read_exact_at(offset, buf)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn prefetch(
        &self,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<(), parallax_source::SourceError> {
        self.told.lock().unwrap().hints.push(ranges.to_vec());
        Ok(())
    }
    fn prefetch_later(
        &self,
        groups: &[Vec<std::ops::Range<u64>>],
    ) -> Result<(), parallax_source::SourceError> {
        self.told.lock().unwrap().later.push(groups.to_vec());
        Ok(())
    }
}

/// The demo model read through a [`Noting`] source.
fn noted_demo() -> Model<Noting> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../www/demo/parallax-demo-qwen2.gguf");
    Model::open(Noting { inner: FileSource::open(&path).unwrap(), told: Default::default() })
        .unwrap()
}

/// A stream fetches ahead along the groups a run hints later and takes each later hint that
/// names one as already asked for (`StreamedReads`): that holds only if the run names, once at
/// its first layer, every group it then hints — each later layer and the head's chunks — in
/// the order and with the ranges it hints them.
#[test]
fn a_run_hints_later_exactly_the_groups_it_then_hints_in_turn() {
    let model = noted_demo();
    let report = Run::new(&model, &input(), &RunOptions::default()).run().unwrap();
    let told = model.source().told.lock().unwrap();
    assert_eq!(told.later.len(), 1, "one plan, at the first layer");
    let plan = &told.later[0];
    let vocab = report.model.n_vocab as usize;
    assert!(plan.len() > report.layers.len() - 1, "the later layers and at least a head chunk");
    assert!(plan.len() < report.layers.len() + vocab, "the head in chunks, not rows");
    // The hints: layer 0, then each planned group in its turn, then an empty one (released).
    assert_eq!(told.hints.len(), plan.len() + 2);
    assert_eq!(&told.hints[1..=plan.len()], &plan[..]);
    assert_eq!(told.hints.last(), Some(&vec![]));
}

/// The prompt's embedding rows are read once each, rows near each other in one read (by URL a
/// read is a request, a round trip each), and come out in the prompt's order with the values of
/// each row read on its own.
#[test]
fn the_prompts_embedding_rows_are_read_together_in_few_reads() {
    let model = noted_demo();
    let embd = model.tensor("token_embd.weight").unwrap().clone();
    let within =
        |r: &std::ops::Range<u64>| r.start >= embd.offset && r.end <= embd.offset + embd.n_bytes;
    // Rows 10–374 lie within a few KB of each other; 3838 is ~1 MB further on; 17 comes twice.
    let tokens = vec![3838, 374, 220, 17, 10, 17, 30];
    let row_bytes = embd.n_bytes / embd.ne[1];
    assert!((3838 - 374) * row_bytes > 256 * 1024 && (374 - 10) * row_bytes < 256 * 1024);
    model.source().told.lock().unwrap().reads.clear();
    let mut embedded = Vec::new();
    let input = RunInput { tokens: tokens.clone(), ..Default::default() };
    Run::new(&model, &input, &RunOptions::default())
        .tap(|rows| {
            if rows.site == "embed" {
                embedded = rows.rows[0].clone();
            }
        })
        .run()
        .unwrap();
    let reads = model.source().told.lock().unwrap().reads.clone();
    // The first run of reads inside the table (the head, tied to it, reads it again at the end).
    let first = reads.iter().position(within).expect("the table is read");
    let rows_read = reads[first..].iter().take_while(|r| within(r)).count();
    assert_eq!(rows_read, 2, "the embedding's reads: {:?}", &reads[first..first + rows_read + 1]);
    let each: Vec<f32> = tokens
        .iter()
        .flat_map(|&id| model.read_f32_rows(&embd, u64::from(id)..u64::from(id) + 1).unwrap())
        .collect();
    assert_eq!(
        embedded.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        each.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
