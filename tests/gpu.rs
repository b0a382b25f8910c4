//! The `gpu` path (WGSL kernels through wgpu, Mesa lavapipe in `./dev test`) on the real shared
//! models: every kernel on real tensors of both models against the CPU's dequantize-then-f32-dot;
//! Qwen2.5 run along `f32` and `gpu` with per-site cosine ≥ 0.99999 and the same top-1; and the
//! fallback (no adapter, device lost mid-run) leaving the other paths' report unchanged.
//!
//! With no adapter these tests say so on stderr and pass, unless `PARALLAX_REQUIRE_GPU=1` (set by
//! `./dev test`) or `CI` is set, where they fail.

use std::sync::OnceLock;

use parallax_engine::{GpuSettings, PathKind, Run, RunInput, RunOptions};
use parallax_gpu::GpuMatmul;
use parallax_model::{Model, TensorType};
use parallax_report::Report;
use parallax_source::FileSource;
use parallax_tests::{model_path, repo_root, GEMMA_270M, QWEN_0_5B};

/// The contract prompt "What is 2+2?" in Qwen2.5's vocabulary.
const TOKENS: [u32; 7] = [3838, 374, 220, 17, 10, 17, 30];

fn gpu() -> Option<&'static GpuMatmul> {
    static GPU: OnceLock<Option<GpuMatmul>> = OnceLock::new();
    GPU.get_or_init(|| match pollster::block_on(GpuMatmul::new()) {
        Ok(g) => Some(g),
        Err(e) => {
            parallax_testkit::skip_unless_required("PARALLAX_REQUIRE_GPU", &e.to_string());
            None
        }
    })
    .as_ref()
}

/// Every layer-0, last-layer and output-head matrix of a model (the head's first 4096 rows):
/// the shader's dequantization equals the CPU's bit for bit, and the GPU matmul of 3 tokens is
/// within 1e-5 of the CPU's f32 dot relative to Σ|w·x|. Returns the types seen.
/// The GGML types of the matrices checked, or `None` when there was nothing to check on (no
/// adapter, or the model is missing where that is allowed).
fn check_real_tensors(file: &str) -> Option<Vec<String>> {
    let gpu = gpu()?;
    let path = model_path(file)?;
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let n_layers = model.hyperparameters().n_layers.expect("layer count");
    let last = format!("blk.{}.", n_layers - 1);
    let mut types = Vec::new();
    let mut worst_all = 0f64;
    for t in model.tensors() {
        let TensorType::Ggml(ty) = t.ty else { continue };
        let is_matrix = t.ne.len() >= 2 && t.ne[1] > 1;
        let wanted = t.name.starts_with("blk.0.")
            || t.name.starts_with(&last)
            || t.name == "output.weight"
            || t.name == "token_embd.weight";
        if !is_matrix || !wanted {
            continue;
        }
        let rows = t.n_rows().min(4096);
        let cols = t.row_values();
        let bytes = model.read_raw_rows(t, 0..rows).unwrap();
        let rows = rows as usize;
        let mut w = vec![0f32; rows * cols];
        parallax_quant::dequantize(ty, &bytes, &mut w).unwrap();
        if parallax_gpu::dequantized_in_shader(ty) {
            let g = pollster::block_on(gpu.dequantize(ty, &bytes, rows, cols)).unwrap();
            let bad = g.iter().zip(&w).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(
                bad, 0,
                "{file} {}: {bad} values dequantized differently by the shader",
                t.name
            );
        }
        let n = 3;
        let x: Vec<f32> =
            (0..n * cols).map(|i| ((i * 7919 % 2003) as f32 / 1001.0 - 1.0) * 2.0).collect();
        let y = pollster::block_on(gpu.matmul(ty, &bytes, rows, cols, &x, n)).unwrap();
        let mut worst = 0f64;
        for tk in 0..n {
            let xt = &x[tk * cols..(tk + 1) * cols];
            for r in 0..rows {
                let wr = &w[r * cols..(r + 1) * cols];
                let cpu = parallax_quant::dot::vec_dot_f32(wr, xt) as f64;
                let scale: f64 =
                    wr.iter().zip(xt).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                let err = (y[tk * rows + r] as f64 - cpu).abs() / scale.max(f64::MIN_POSITIVE);
                worst = worst.max(err);
            }
        }
        eprintln!("{file} {} ({ty}, {rows}×{cols}): worst error {worst:.2e} of Σ|w·x|", t.name);
        assert!(worst <= 1e-5, "{file} {}: GPU vs CPU error {worst:.3e} > 1e-5", t.name);
        worst_all = worst_all.max(worst);
        let name = ty.to_string();
        if !types.contains(&name) {
            types.push(name);
        }
    }
    eprintln!("{file}: types {types:?}, worst error {worst_all:.2e}");
    Some(types)
}

#[test]
fn qwen_real_tensors_match_cpu() {
    if let Some(types) = check_real_tensors(QWEN_0_5B) {
        for ty in ["Q4_K", "Q6_K", "Q5_0", "Q8_0"] {
            assert!(
                types.iter().any(|t| t == ty),
                "Qwen2.5 0.5B should have {ty} matrices; saw {types:?}"
            );
        }
    }
}

#[test]
fn gemma_real_tensors_match_cpu() {
    if let Some(types) = check_real_tensors(GEMMA_270M) {
        assert!(!types.is_empty());
    }
}

fn run_paths(
    file: &std::path::Path,
    paths: Vec<PathKind>,
    gpu: GpuSettings,
) -> Result<Report, parallax_engine::EngineError> {
    let model = Model::open(FileSource::open(file).unwrap()).unwrap();
    let input = RunInput { tokens: TOKENS.to_vec(), ..Default::default() };
    let opts = RunOptions { paths, gpu, ..Default::default() };
    Run::new(&model, &input, &opts).run()
}

/// The acceptance bar of the `gpu` path: on Qwen2.5-Coder-0.5B every site of every layer has
/// cosine ≥ 0.99999 against `f32`, and the top-1 token is the same.
#[test]
fn qwen_gpu_path_matches_f32() {
    if gpu().is_none() {
        return;
    }
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let report =
        run_paths(&path, vec![PathKind::F32, PathKind::Gpu], GpuSettings::default()).unwrap();
    assert_eq!(report.paths, ["f32", "gpu"], "{:?}", report.execution.gpu_unavailable);
    let g = report.execution.gpu.as_ref().expect("the report names the adapter");
    assert!(
        !g.adapter.is_empty()
            && !g.backend.is_empty()
            && g.limits.contains_key("maxStorageBufferBindingSize")
    );
    assert!(
        g.placement.contains("matmuls") && g.placement.contains("attention"),
        "{}",
        g.placement
    );
    let labels = &report.execution.matmuls["gpu"];
    assert!(labels.iter().any(|l| l.contains("Q4_K dequantized in WGSL")), "{labels:?}");
    let mut worst = (1.0f64, String::new());
    let mut sites = 0;
    let all =
        std::iter::once(("embed".to_string(), &report.embed))
            .chain(report.layers.iter().flat_map(|l| {
                l.sites.iter().map(move |(s, r)| (format!("layer {} {s}", l.index), r))
            }))
            .chain(std::iter::once(("final_norm".to_string(), &report.final_norm)));
    for (name, rec) in all {
        let c = rec.compare.get("gpu").unwrap_or_else(|| panic!("{name}: no gpu comparison"));
        let cos = c.cosine.expect("cosine");
        sites += 1;
        if cos < worst.0 {
            worst = (cos, name);
        }
    }
    eprintln!(
        "qwen gpu vs f32: {sites} sites, worst cosine 1 − {:.2e} at {}",
        1.0 - worst.0,
        worst.1
    );
    assert!(sites > 24 * 14, "{sites} sites compared");
    assert!(
        worst.0 >= 0.99999,
        "worst per-site cosine {:.9} at {} is below 0.99999",
        worst.0,
        worst.1
    );
    let lc = &report.logits.compare["gpu"];
    eprintln!("qwen gpu vs f32 logits: {lc:?}");
    assert_eq!(
        report.logits.paths["f32"].top[0].0, report.logits.paths["gpu"].top[0].0,
        "top-1 differs"
    );
}

fn demo_model() -> std::path::PathBuf {
    repo_root().join("www/demo/parallax-demo-qwen2.gguf")
}

/// The report of a run without `gpu` (execution's gpu facts cleared), as JSON.
fn without_gpu_record(mut r: Report) -> String {
    r.execution.gpu = None;
    r.execution.gpu_unavailable = None;
    r.to_json()
}

/// No adapter: the run goes on with the other paths, says why, and its report is the report of
/// a run that never asked for `gpu`.
#[test]
fn without_an_adapter_the_run_goes_on() {
    let demo = demo_model();
    let plain =
        run_paths(&demo, vec![PathKind::F32, PathKind::Q8], GpuSettings::default()).unwrap();
    let asked = run_paths(
        &demo,
        vec![PathKind::F32, PathKind::Gpu, PathKind::Q8],
        GpuSettings { disabled: true, ..Default::default() },
    )
    .unwrap();
    assert_eq!(asked.paths, ["f32", "q8"]);
    let why = asked.execution.gpu_unavailable.clone().expect("the report says why gpu is missing");
    assert!(why.contains("gpu path was dropped") && why.contains("switched off"), "{why}");
    assert!(asked.execution.gpu.is_none());
    assert_eq!(without_gpu_record(asked), plain.to_json());
    // A CPU-only report has no gpu keys at all (schema parallax.report/1 unchanged for it).
    assert!(!plain.to_json().contains("\"gpu"), "a CPU-only report mentions gpu");
    // Only `gpu` asked and none available: an error that says why.
    let err =
        run_paths(&demo, vec![PathKind::Gpu], GpuSettings { disabled: true, ..Default::default() })
            .unwrap_err();
    assert!(err.to_string().contains("gpu path cannot run"), "{err}");
}

/// The device is lost after a few matmuls: the run starts again without `gpu` and its report
/// equals the CPU-only one, with the reason recorded.
#[test]
fn a_lost_device_drops_the_path_mid_run() {
    if gpu().is_none() {
        return;
    }
    let demo = demo_model();
    let plain =
        run_paths(&demo, vec![PathKind::F32, PathKind::Q8], GpuSettings::default()).unwrap();
    let lost = run_paths(
        &demo,
        vec![PathKind::F32, PathKind::Q8, PathKind::Gpu],
        GpuSettings { lose_device_after: Some(5), ..Default::default() },
    )
    .unwrap();
    assert_eq!(lost.paths, ["f32", "q8"]);
    let why = lost.execution.gpu_unavailable.clone().expect("the report says why gpu is missing");
    assert!(why.contains("lost"), "{why}");
    assert_eq!(without_gpu_record(lost), plain.to_json());
}
