//! The engine on the real shared models, against independent implementations:
//! llama.cpp's logits (tools/reference/llamacpp_logits.py) and a numpy F32 forward pass
//! (tools/reference/numpy_forward.py). Goldens live in tests/golden/reference/.

use parallax_engine::{PathKind, Run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_report::{Mode, Report, Scope};
use parallax_source::FileSource;
use parallax_tests::{
    model_path, repo_root, GEMMA_270M, QWEN_0_5B, QWEN_AS_LLAMA, QWEN_AS_LLAMA_NOBIAS,
    QWEN_AS_QWEN3, QWEN_DEEP44,
};
use serde_json::Value;

fn golden_json(name: &str) -> Value {
    let path = repo_root().join("tests/golden/reference").join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn golden_logits(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(repo_root().join("tests/golden/reference").join(name)).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn run_model(file: &str, tokens: &[u32], opts: &RunOptions) -> Option<(Report, Vec<Vec<f32>>)> {
    let path = model_path(file)?;
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput { tokens: tokens.to_vec(), ..Default::default() };
    Some(Run::new(&model, &input, opts).with_logits().run().unwrap())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn top(v: &[f32], k: usize) -> Vec<u32> {
    parallax_metrics::top_k(v, k).into_iter().map(|(i, _)| i).collect()
}

/// Both paths' last-token logits against llama.cpp's: cosine, top-1, top-5 set.
fn check_against_llamacpp(file: &str, golden: &str, min_cosine: f64) {
    let meta = golden_json(&format!("{golden}.json"));
    let tokens: Vec<u32> =
        meta["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let reference = golden_logits(&format!("{golden}.last-logits.f32"));
    let Some((_, logits)) = run_model(file, &tokens, &RunOptions::default()) else { return };
    for (path, l) in ["f32", "q8"].iter().zip(&logits) {
        eprintln!("{file} {path}: cosine vs llama.cpp {:.7}", cosine(l, &reference));
    }
    for (path, l) in ["f32", "q8"].iter().zip(&logits) {
        assert_eq!(l.len(), reference.len(), "{path}: vocabulary");
        let cos = cosine(l, &reference);
        assert!(
            cos >= min_cosine,
            "{file} {path}: cosine {cos} vs llama.cpp is below {min_cosine}"
        );
        assert_eq!(top(l, 1), top(&reference, 1), "{file} {path}: top-1 differs from llama.cpp");
        let (mut a, mut b) = (top(l, 5), top(&reference, 5));
        a.sort();
        b.sort();
        assert_eq!(a, b, "{file} {path}: top-5 set differs from llama.cpp");
    }
}

#[test]
fn qwen_logits_match_llamacpp() {
    check_against_llamacpp(QWEN_0_5B, "llamacpp-qwen2.5-coder-0.5b-instruct-q4_k_m", 0.9999);
}

/// Gemma-3: top-1 and the top-5 set equal llama.cpp's on both paths; the cosine is held to
/// llama.cpp's own spread below, not to Qwen's 0.9999. This floor guards against gross errors.
#[test]
fn gemma_logits_match_llamacpp() {
    check_against_llamacpp(GEMMA_270M, "llamacpp-gemma-3-270m-q4_k_m", 0.98);
}

/// The contract tokens and llama.cpp's last-token logits under each of its settings
/// (`tools/reference/llamacpp_variants.py`), the default first.
fn llamacpp_settings(stem: &str) -> (Vec<u32>, Vec<(String, Vec<f32>)>) {
    let meta = golden_json(&format!("llamacpp-variants-{stem}.json"));
    let tokens: Vec<u32> =
        meta["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let mut settings: Vec<(String, Vec<f32>)> = Vec::new();
    for (name, s) in meta["settings"].as_object().unwrap() {
        let f = s["logits_file"].as_str().unwrap();
        let logits = if f.ends_with(".f16") {
            let bytes = std::fs::read(repo_root().join("tests/golden/reference").join(f)).unwrap();
            let mut v = vec![0f32; bytes.len() / 2];
            parallax_quant::dequantize(parallax_quant::GgmlType::F16, &bytes, &mut v).unwrap();
            v
        } else {
            golden_logits(f)
        };
        settings.push((name.clone(), logits));
    }
    settings.sort_by_key(|(name, _)| name != "default");
    assert_eq!(settings[0].0, "default", "{stem}: no default llama.cpp setting");
    assert!(settings.len() >= 4, "{stem}: only {} llama.cpp settings", settings.len());
    (tokens, settings)
}

/// llama.cpp evaluated under its own everyday settings (one token per batch, f32 K/V cache,
/// flash attention; tools/reference/llamacpp_variants.py) disagrees with its default evaluation
/// by up to 1 − 0.99686 on Gemma-3 (1 − 0.99991 on Qwen2.5): Gemma's activations reach ~1500,
/// so a last-ulp change flips Q8 roundings and grows with depth. No implementation can be held
/// closer to the golden than llama.cpp is to itself; each path is held to the next best thing —
/// it must sit at least as close to one of llama.cpp's settings as those settings sit to each
/// other, i.e. inside llama.cpp's own spread. (Measured: Gemma f32 0.99849 to the default,
/// q8 0.99770 to one-token batches; llama.cpp's widest pair 0.99686.)
fn check_within_llamacpp_spread(file: &str, stem: &str) {
    let (tokens, settings) = llamacpp_settings(stem);
    let mut spread: f64 = 0.0;
    for (i, (_, a)) in settings.iter().enumerate() {
        for (_, b) in &settings[i + 1..] {
            spread = spread.max(1.0 - cosine(a, b));
        }
    }
    let Some((_, logits)) = run_model(file, &tokens, &RunOptions::default()) else { return };
    for (path, l) in ["f32", "q8"].iter().zip(&logits) {
        let (nearest, distance) = settings
            .iter()
            .map(|(name, v)| (name.as_str(), 1.0 - cosine(l, v)))
            .fold(("", f64::INFINITY), |best, d| if d.1 < best.1 { d } else { best });
        eprintln!("{file} {path}: nearest llama.cpp setting {nearest} at 1 − cos = {distance:.2e}; llama.cpp's own spread {spread:.2e}");
        assert!(
            distance <= spread,
            "{file} {path}: 1 − cosine {distance:.3e} to the nearest llama.cpp setting ({nearest}) is outside llama.cpp's own spread {spread:.3e}"
        );
    }
}

#[test]
fn gemma_logits_lie_within_llamacpps_own_spread() {
    check_within_llamacpp_spread(GEMMA_270M, "gemma-3-270m-q4_k_m");
}

#[test]
fn qwen_logits_lie_within_llamacpps_own_spread() {
    check_within_llamacpp_spread(QWEN_0_5B, "qwen2.5-coder-0.5b-instruct-q4_k_m");
}

/// Largest |a − b| over `tokens`.
fn max_abs_diff_on(a: &[f32], b: &[f32], tokens: &[u32]) -> f64 {
    tokens
        .iter()
        .map(|&t| (f64::from(a[t as usize]) - f64::from(b[t as usize])).abs())
        .fold(0.0, f64::max)
}

/// Qwen2.5-0.5B's real weights run as another architecture (`llama`, `qwen3`;
/// tools/golden/make_arch_rewrites.py), each path against llama.cpp on the same file, by three
/// criteria, each measured against how far llama.cpp's own settings lie from each other:
/// - 1 − cosine to the nearest setting ≤ the widest pair's 1 − cosine (as above);
/// - max |Δlogit| over llama.cpp's (default setting's) top-10 tokens, to the nearest setting, ≤
///   the largest such difference between two settings: the logits a user reads, where a
///   cosine over 151 936 values can hide a shift of the few that matter;
/// - top-1 equal to llama.cpp's wherever its top-1 leads the runner-up by more than that
///   top-10 spread (a smaller lead is llama.cpp's own coin toss).
///
/// Without Qwen's q/k biases the model is chaotic (llama.cpp's own settings part to cos 0.94),
/// so on the bias-free files this catches gross errors only: a q/k norm moved after RoPE passes
/// it. tests/llamacpp_sites.rs holds their first layers to llama.cpp's tensors, which does not
/// (tools/reference/README.md has the figures).
fn check_rewrite_within_llamacpp_spread(file: &str, stem: &str) {
    let (tokens, settings) = llamacpp_settings(stem);
    let reference = &settings[0].1;
    let top10 = top(reference, 10);
    let (mut spread_cos, mut spread_top10): (f64, f64) = (0.0, 0.0);
    for (i, (_, a)) in settings.iter().enumerate() {
        for (_, b) in &settings[i + 1..] {
            spread_cos = spread_cos.max(1.0 - cosine(a, b));
            spread_top10 = spread_top10.max(max_abs_diff_on(a, b, &top10));
        }
    }
    let margin = f64::from(reference[top10[0] as usize]) - f64::from(reference[top10[1] as usize]);
    eprintln!(
        "{file}: llama.cpp's own spread 1 − cos {spread_cos:.2e}, top-10 max |Δlogit| \
         {spread_top10:.3}; its top-1 {} leads by {margin:.3}",
        top10[0]
    );
    let Some((_, logits)) = run_model(file, &tokens, &RunOptions::default()) else { return };
    for (path, l) in ["f32", "q8"].iter().zip(&logits) {
        assert_eq!(l.len(), reference.len(), "{file} {path}: vocabulary");
        let nearest = |d: &dyn Fn(&[f32]) -> f64| {
            settings
                .iter()
                .map(|(name, v)| (name.as_str(), d(v)))
                .fold(("", f64::INFINITY), |best, d| if d.1 < best.1 { d } else { best })
        };
        let (cos_at, cos_distance) = nearest(&|v| 1.0 - cosine(l, v));
        let (top10_at, top10_distance) = nearest(&|v| max_abs_diff_on(l, v, &top10));
        eprintln!(
            "{file} {path}: to llama.cpp's default 1 − cos {:.2e}, top-10 max |Δlogit| {:.3}; \
             nearest setting 1 − cos {cos_distance:.2e} ({cos_at}), top-10 {top10_distance:.3} \
             ({top10_at}); top-1 {}",
            1.0 - cosine(l, reference),
            max_abs_diff_on(l, reference, &top10),
            top(l, 1)[0]
        );
        assert!(
            cos_distance <= spread_cos,
            "{file} {path}: 1 − cosine {cos_distance:.3e} to the nearest llama.cpp setting \
             ({cos_at}) is outside llama.cpp's own spread {spread_cos:.3e}"
        );
        assert!(
            top10_distance <= spread_top10,
            "{file} {path}: max |Δlogit| {top10_distance:.3} on llama.cpp's top-10 to the nearest \
             setting ({top10_at}) is outside llama.cpp's own spread {spread_top10:.3}"
        );
        if margin > spread_top10 {
            assert_eq!(top(l, 1)[0], top10[0], "{file} {path}: top-1 differs from llama.cpp's");
        }
    }
}

/// The llama rewrite keeps the biases and reorders q/k rows for adjacent-pair RoPE: the same
/// function as the qwen2 original, through Parallax's llama code (RoPE style, optional biases).
#[test]
fn qwen_as_llama_lies_within_llamacpps_own_spread() {
    check_rewrite_within_llamacpp_spread(QWEN_AS_LLAMA, "qwen2.5-0.5b-as-llama");
}

#[test]
fn qwen_as_llama_without_biases_lies_within_llamacpps_own_spread() {
    check_rewrite_within_llamacpp_spread(QWEN_AS_LLAMA_NOBIAS, "qwen2.5-0.5b-as-llama-nobias");
}

/// The 44-layer self-merge of the 0.5B (its layers 0–23, then 4–23 again): a real-weight model
/// deeper than 7B-class models, where rounding differences have 44 layers to grow through.
#[test]
fn qwen_deep44_lies_within_llamacpps_own_spread() {
    check_rewrite_within_llamacpp_spread(QWEN_DEEP44, "qwen2.5-0.5b-deep44");
}

/// The qwen3 rewrite: per-head q/k RMSNorm before NEOX RoPE, no biases.
#[test]
fn qwen_as_qwen3_lies_within_llamacpps_own_spread() {
    check_rewrite_within_llamacpp_spread(QWEN_AS_QWEN3, "qwen2.5-0.5b-as-qwen3");
}

/// The F32 path's per-site sample std against the numpy reference's (an independent F32
/// forward pass, `tools/reference/numpy_forward.py`), at every site of every layer, for the
/// all-token and the last-token scope; and the element counts.
///
/// Measured on this commit (the F32 path is deterministic on every target, so this is one fixed
/// number per model and scope): Qwen worst 1.48e-6 (all tokens, layer 5 ffn_down) and 1.19e-6
/// (last token); Gemma 7.15e-7 (all) and 2.25e-6 (last token, layer 4 ffn_post_norm). The
/// bounds sit just above (2e-6, 3e-6); the numpy reference itself reproduces its golden only to
/// 1.43e-6 on another BLAS (review-tests.md, finding 2), so this is at the floor of what the
/// reference can tell. It separates "f32 arithmetic" from quantized activations (numpy F32 vs
/// llama.cpp: 9e-4 to 9e-3 at layer 0). The worst value is printed so a move shows. Only std is
/// compared: mean, min, max and absmax are single sums or single elements whose reproducible
/// distance has not been measured.
fn check_against_numpy(file: &str, golden: &str, bound: f64) {
    let g = golden_json(golden);
    let tokens: Vec<u32> =
        g["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(g["std_kind"], "sample");
    for scope in [Scope::All, Scope::Last] {
        let opts = RunOptions { paths: vec![PathKind::F32], scope, ..Default::default() };
        let Some((report, _)) = run_model(file, &tokens, &opts) else { return };
        let key = scope.as_str();
        let (mut checked, mut worst, mut failures) = (0, (0f64, String::new()), Vec::new());
        for layer in g["layers"].as_array().unwrap() {
            let i = layer["index"].as_u64().unwrap() as usize;
            for (site, want) in layer["sites"].as_object().unwrap() {
                let ours = &report.layers[i]
                    .sites
                    .get(site)
                    .unwrap_or_else(|| panic!("site {site} missing"))
                    .paths["f32"];
                let (a, b) = (ours.std.unwrap(), want[key]["std"].as_f64().unwrap());
                let rel = (a - b).abs() / b.abs();
                if rel > worst.0 {
                    worst = (rel, format!("layer {i} {site}"));
                }
                if rel > bound {
                    failures.push(format!(
                        "layer {i} {site} ({key}): std {a} vs numpy {b}, relative {rel:.2e}"
                    ));
                }
                assert_eq!(
                    ours.count,
                    want[key]["count"].as_u64().unwrap(),
                    "{file} layer {i} {site}: count"
                );
                checked += 1;
            }
        }
        eprintln!("{file} ({key}): worst std relative difference {:.2e} at {}", worst.0, worst.1);
        assert!(failures.is_empty(), "{file}: beyond {bound:.1e}:\n{}", failures.join("\n"));
        assert!(checked > 100, "{file}: only {checked} sites compared");
    }
}

#[test]
fn qwen_f32_path_matches_numpy_reference() {
    check_against_numpy(QWEN_0_5B, "numpy-f32-qwen2.5-coder-0.5b-instruct-q4_k_m.json", 2e-6);
}

#[test]
fn gemma_f32_path_matches_numpy_reference() {
    check_against_numpy(GEMMA_270M, "numpy-f32-gemma-3-270m-q4_k_m.json", 3e-6);
}

/// The rewrites (tools/golden/make_arch_rewrites.py) through Parallax's llama and qwen3 code
/// against numpy_forward.py's llama (adjacent-pair RoPE) and qwen3 (q/k norm before RoPE). Two
/// f32 computations stay together even where the bias-free models are chaotic for llama.cpp (no
/// Q8 rounding to flip): measured worst 7.7e-7 / 8.3e-7 (all / last token) for llama, 6.9e-7 /
/// 1.1e-6 without biases, 2.3e-6 / 1.9e-6 for qwen3. Experiments (not kept) with qwen3's q/k
/// norm after RoPE, or its epsilon at 1e-5, fail at 1.6e-2 and 1.8e-5.
#[test]
fn qwen_as_llama_f32_path_matches_numpy_reference() {
    check_against_numpy(QWEN_AS_LLAMA, "numpy-f32-qwen2.5-0.5b-as-llama.json", 2e-6);
}

#[test]
fn qwen_as_llama_without_biases_f32_path_matches_numpy_reference() {
    check_against_numpy(QWEN_AS_LLAMA_NOBIAS, "numpy-f32-qwen2.5-0.5b-as-llama-nobias.json", 2e-6);
}

#[test]
fn qwen_as_qwen3_f32_path_matches_numpy_reference() {
    check_against_numpy(QWEN_AS_QWEN3, "numpy-f32-qwen2.5-0.5b-as-qwen3.json", 3e-6);
}

#[test]
fn report_is_byte_identical_across_thread_counts_and_runs() {
    let tokens = [3838, 374, 220, 17, 10, 17, 30];
    let opts = RunOptions { mode: Mode::Replay, ..Default::default() };
    let run_in = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run_model(QWEN_0_5B, &tokens, &opts)).map(|(r, _)| r.to_json())
    };
    let Some(one) = run_in(1) else { return };
    let two = run_in(2).unwrap();
    let three = run_in(3).unwrap();
    assert!(one == two && two == three, "report JSON differs between thread counts");
    assert_eq!(run_in(2).unwrap(), two, "report JSON differs between runs");
}

/// With a read-ahead source (the browser's), each layer of the 0.5B is one read instead of a
/// dozen, and the report is the same byte for byte.
#[test]
fn layers_read_through_a_read_ahead_window_in_one_read_each_and_change_nothing() {
    use parallax_source::{CountingSource, ReadAhead};
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let tokens = [3838, 374, 220, 17, 10, 17, 30];
    fn run_on<S: parallax_source::ByteSource>(model: &Model<S>, tokens: &[u32]) -> String {
        let input = RunInput { tokens: tokens.to_vec(), ..Default::default() };
        Run::new(model, &input, &RunOptions::default()).with_logits().run().unwrap().0.to_json()
    }
    let plain = CountingSource::new(FileSource::open(&path).unwrap());
    let plain_json = run_on(&Model::open(&plain).unwrap(), &tokens);
    let ahead = ReadAhead::new(CountingSource::new(FileSource::open(&path).unwrap()), 32 << 20);
    let ahead_json = run_on(&Model::open(&ahead).unwrap(), &tokens);
    assert!(plain_json == ahead_json, "the report changed when read through a read-ahead window");
    let (before, after) = (plain.reads(), ahead.inner().reads());
    eprintln!("reads: {before} one by one, {after} with read-ahead");
    // 24 layers × 12 tensors become 24 layer reads; the header, embedding rows and head stay.
    assert!(before >= after + 24 * 10, "read-ahead saved too few reads: {before} → {after}");
    assert!(
        ahead.inner().bytes_read() <= plain.bytes_read() + (1 << 20),
        "read-ahead fetched bytes the run did not need"
    );
}

/// The memory budget is checked from the tensor table before a layer is read: a run refused at
/// layer 0 has pulled the header, the prompt's embedding rows and the output norm, and not one
/// byte of layer 0's ~15 MB of weights. The error names the layer and the sizes.
#[test]
fn a_layer_over_the_memory_budget_is_refused_before_any_of_it_is_read() {
    use parallax_source::CountingSource;
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let source = CountingSource::new(FileSource::open(&path).unwrap());
    let model = Model::open(&source).unwrap();
    let layer0: u64 = model
        .tensors()
        .iter()
        .filter(|t| matches!(t.role, Some(parallax_model::Role::Layer { layer: 0, .. })))
        .map(|t| t.n_bytes)
        .sum();
    let header = model.gguf().unwrap().data_offset();
    let input = RunInput { tokens: vec![3838, 374, 220, 17, 10, 17, 30], ..Default::default() };
    let opts = RunOptions { memory_budget_bytes: Some(8 << 20), ..Default::default() };
    let before = source.bytes_read();
    let err = Run::new(&model, &input, &opts).run().unwrap_err();
    let pulled = source.bytes_read() - before;
    let message = err.to_string();
    assert!(
        matches!(err, parallax_engine::EngineError::OverMemoryBudget { layer: 0, .. }),
        "{message}"
    );
    assert!(
        message.contains("layer 0 would need about") && message.contains("8.00 MiB"),
        "{message}"
    );
    eprintln!("refused: {message}; pulled {pulled} bytes during the run (layer 0 holds {layer0}, header {header})");
    assert!(pulled < layer0 / 4, "the run pulled {pulled} bytes; layer 0 has {layer0}");
    // The same run with room for a layer goes through.
    let opts = RunOptions {
        memory_budget_bytes: Some(64 << 20),
        paths: vec![PathKind::F32],
        ..Default::default()
    };
    Run::new(&model, &input, &opts).run().unwrap();
}

/// The built-in evaluation text tokenizes to llama.cpp's ids for it, all 304 (the KLD golden's
/// `sequences.text.tokens`, llama.cpp's `tokenize(text, add_bos=True, special=False)`): a
/// `--builtin-text` run measures the same positions llama.cpp's KLD does.
#[test]
fn the_builtin_text_tokenizes_as_llamacpp_tokenizes_it() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input =
        RunInput::from_prompt(&model, Some(parallax_engine::BUILTIN_TEXT.to_string()), None)
            .unwrap();
    let golden = golden_json("ladder_kld.json");
    let text = &golden["sequences"]["text"];
    assert_eq!(
        text["text_sha256"],
        parallax_tests::sha256_hex(parallax_engine::BUILTIN_TEXT.as_bytes())
    );
    let ids: Vec<u32> =
        text["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(ids.len(), 304);
    assert_eq!(input.tokens, ids);
}
