//! A whole run (both paths, every probe and comparison) on one thread from a model file, as the
//! page's engine runs it, for profiling the wasm build outside the browser:
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+simd128" cargo build --release -p parallax-session \
//!     --target wasm32-wasip1 --example run_wasi
//! node tools/wasi-run.mjs target/wasm32-wasip1/release/examples/run_wasi.wasm MODEL [text|TOKENS]
//! ```
//!
//! `text` (the built-in 304 tokens) needs more wasm memory than node 20 copes with; 96 token ids
//! or fewer run. (`node --prof` and `node --prof-process` instead of `--cpu-prof` for a profile: node 20 can
//! crash writing a CPU profile, or at exit, with a wasm memory this large — after the line above
//! is printed.) Natively it is the same run without the CLI's threads (`parallax run --threads
//! 1`).
//!
//! It prints where the time went: to the first layer, the layers (their median), the output head
//! and the run's end. `PATHS=f32` or `PATHS=q8` runs one path alone.

use parallax_session::{RunRequest, RunSpec};
use parallax_source::MemorySource;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (model, input) = match args.as_slice() {
        [_, model, input] => (model.clone(), input.clone()),
        [_, model] => (model.clone(), "text".to_string()),
        _ => panic!("usage: run_wasi MODEL [text|TOKENS]"),
    };
    let (prompt, tokens) = if input == "text" {
        (Some(parallax_engine::BUILTIN_TEXT.to_string()), None)
    } else {
        (None, Some(input.split(',').map(|t| t.trim().parse().expect("token ids")).collect()))
    };
    let request = RunRequest {
        prompt,
        tokens,
        paths: std::env::var("PATHS")
            .unwrap_or_else(|_| "f32,q8".into())
            .split(',')
            .map(String::from)
            .collect(),
        against: vec![],
        reference: None,
        logits: String::new(),
        scope: String::new(),
        mode: String::new(),
        faults: vec![],
        sha256: false,
        contracts: vec![],
        map: None,
        traces: vec![],
        max_tokens: None,
        memory_budget_bytes: None,
        threads: None,
    };
    let spec = RunSpec::from_request(&request).expect("a valid request");
    // Read whole: WASI has no positioned reads in every runtime (profiling only).
    let bytes = std::fs::read(&model).expect("the model file");
    let model = parallax_model::Model::open(MemorySource::new(bytes)).expect("a model");
    let input = spec.input(&model).expect("the prompt");
    let started = std::time::Instant::now();
    // Seconds since the start at each layer's end (the engine tells a layer's progress then).
    let mut layer_ends: Vec<f64> = Vec::new();
    let report = parallax_engine::Run::new(&model, &input, &spec.options())
        .progress(|p| {
            if p.phase == parallax_engine::Phase::Layer {
                layer_ends.push(started.elapsed().as_secs_f64());
            }
        })
        .run()
        .expect("a run");
    let total = started.elapsed().as_secs_f64();
    let first_layer = layer_ends.first().copied().unwrap_or(0.0);
    let head = layer_ends.last().copied().unwrap_or(0.0);
    let mut each: Vec<f64> = layer_ends.windows(2).map(|w| w[1] - w[0]).collect();
    each.sort_by(f64::total_cmp);
    let median = each.get(each.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{} layers in {total:.2} s: first layer done at {:.0} ms, each further layer {:.1} ms \
         (median), the last at {:.0} ms, output head and end {:.0} ms",
        report.layers.len(),
        first_layer * 1e3,
        median * 1e3,
        head * 1e3,
        (total - head) * 1e3
    );
}
