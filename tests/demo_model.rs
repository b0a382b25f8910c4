//! The committed demo model (www/demo/parallax-demo-qwen2.gguf, made by tools/demo-model):
//! its shape and type mix, its tokenizer, a clean run along both paths, and that the committed
//! generator still reproduces it byte for byte.

use std::path::PathBuf;

use parallax_engine::{layer_sites, tokenizer_for, ArchConfig, Run, RunInput, RunOptions};
use parallax_metrics::Stats;
use parallax_model::{Model, TensorType};
use parallax_quant::GgmlType;
use parallax_source::FileSource;
use parallax_tests::{model_path, repo_root, sha256_hex, QWEN_0_5B};

const PROMPT: &str = "What is 2+2?";
const PROMPT_IDS: [u32; 7] = [3838, 374, 220, 17, 10, 17, 30];

fn demo_dir() -> PathBuf {
    repo_root().join("www/demo")
}

fn demo() -> Model<FileSource> {
    let path = demo_dir().join("parallax-demo-qwen2.gguf");
    Model::open(FileSource::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

#[test]
fn demo_has_the_documented_shape_and_type_mix() {
    let model = demo();
    assert_eq!(model.architecture(), Some("qwen2"));
    let g = model.gguf().expect("a GGUF file");
    assert_eq!(g.get_str("general.name"), Some("Parallax demo (synthetic qwen2)"));
    assert_eq!(g.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    assert_eq!(
        g.get_u32("tokenizer.ggml.eos_token_id"),
        None,
        "Qwen's special ids lie outside the cut"
    );
    let h = model.hyperparameters();
    assert_eq!(
        (h.n_layers, h.n_embd, h.n_head, h.n_head_kv, h.head_dim, h.n_ff, h.n_vocab, h.n_ctx),
        (Some(3), Some(256), Some(4), Some(2), Some(64), Some(512), Some(4096), Some(2048))
    );
    assert_eq!((h.rope_theta, h.rms_eps), (Some(1e6), Some(1e-6)));

    let ty = |name: &str| match model.tensor(name).unwrap_or_else(|| panic!("no tensor {name}")).ty
    {
        TensorType::Ggml(t) => t,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
    assert_eq!(model.tensor("token_embd.weight").unwrap().ne, vec![256, 4096]);
    assert!(model.tensor("output.weight").is_none(), "the head is tied to token_embd");
    assert_eq!(ty("output_norm.weight"), GgmlType::F32);
    for il in 0..3 {
        for (role, want, ne) in [
            ("attn_norm.weight", GgmlType::F32, vec![256]),
            ("attn_q.weight", GgmlType::Q4_K, vec![256, 256]),
            ("attn_q.bias", GgmlType::F32, vec![256]),
            ("attn_k.weight", GgmlType::Q4_K, vec![256, 128]),
            ("attn_k.bias", GgmlType::F32, vec![128]),
            ("attn_v.weight", GgmlType::Q6_K, vec![256, 128]),
            ("attn_v.bias", GgmlType::F32, vec![128]),
            ("attn_output.weight", GgmlType::Q4_K, vec![256, 256]),
            ("ffn_norm.weight", GgmlType::F32, vec![256]),
            ("ffn_gate.weight", GgmlType::Q4_K, vec![256, 512]),
            ("ffn_up.weight", GgmlType::Q4_K, vec![256, 512]),
            ("ffn_down.weight", GgmlType::Q6_K, vec![512, 256]),
        ] {
            let name = format!("blk.{il}.{role}");
            assert_eq!(ty(&name), want, "{name}");
            assert_eq!(model.tensor(&name).unwrap().ne, ne, "{name}");
        }
    }
    assert_eq!(model.tensors().len(), 3 * 12 + 2);

    // The README states the committed file's size and hash.
    let bytes = std::fs::read(demo_dir().join("parallax-demo-qwen2.gguf")).unwrap();
    assert!(bytes.len() <= 2_500_000, "the demo is {} bytes, over the 2.5 MB budget", bytes.len());
    let readme = std::fs::read_to_string(demo_dir().join("README.md")).unwrap();
    assert!(
        readme.contains(&sha256_hex(&bytes)),
        "www/demo/README.md does not state the file's sha256"
    );
    assert!(
        readme.contains(&format!("{} bytes", bytes.len())),
        "www/demo/README.md does not state the size"
    );
}

#[test]
fn demo_tokenizes_the_contract_prompt_as_qwen_does() {
    let model = demo();
    let tok = tokenizer_for(&model).unwrap();
    assert_eq!(tok.encode(PROMPT, true), PROMPT_IDS);
    assert_eq!(tok.encode(PROMPT, false), PROMPT_IDS);

    // Any text whose Qwen2.5 tokens all lie inside the cut tokenizes the same: the kept merges
    // are the ones those tokens were built from, in their original order.
    let Some(path) = model_path(QWEN_0_5B) else {
        return;
    };
    let qwen = Model::open(FileSource::open(path).unwrap()).unwrap();
    let qtok = tokenizer_for(&qwen).unwrap();
    let mut compared = 0;
    for text in [
        PROMPT,
        "Hello world",
        "def main():\n    return 0\n",
        "if x == 1:\n    print(x)\n",
        "int main() { return 0; }",
        "return self.name",
        "The quick brown fox jumps over the lazy dog.",
        "for (int i = 0; i < n; i++) { sum += a[i]; }",
        "  indented\ttabs and 123 numbers, punctuation!?",
    ] {
        let want = qtok.encode(text, false);
        if want.iter().all(|&id| id < 4096) {
            assert_eq!(tok.encode(text, false), want, "{text:?}");
            compared += 1;
        }
    }
    assert!(compared >= 5, "only {compared} texts lie inside the demo vocabulary");
}

fn finite(what: &str, s: &Stats) {
    assert!(s.nan == 0 && s.inf == 0, "{what}: {} NaN, {} Inf", s.nan, s.inf);
    assert!(s.count > 0, "{what}: no values");
}

#[test]
fn demo_runs_cleanly_on_both_paths() {
    let model = demo();
    let input =
        RunInput { tokens: PROMPT_IDS.to_vec(), text: Some(PROMPT.into()), ..Default::default() };
    let (report, logits) =
        Run::new(&model, &input, &RunOptions::default()).with_logits().run().unwrap();
    assert_eq!(report.paths, ["f32", "q8"]);
    assert_eq!(report.layers.len(), 3);

    let mut worst = (f64::INFINITY, String::new());
    let mut check_site = |where_: String, site: &parallax_report::SiteRecord| {
        for (path, stats) in &site.paths {
            finite(&format!("{where_} {path}"), stats);
        }
        let c = site.compare.get("q8").unwrap_or_else(|| panic!("{where_}: no q8 comparison"));
        let cos = c.cosine.unwrap_or_else(|| panic!("{where_}: no cosine"));
        if cos < worst.0 {
            worst = (cos, where_.clone());
        }
        assert!(cos >= 0.99, "{where_}: q8 vs f32 cosine {cos} is below 0.99");
    };
    check_site("embed".into(), &report.embed);
    let sites = layer_sites(&ArchConfig::from_model(&model).unwrap());
    for layer in &report.layers {
        assert!(
            layer.sites.keys().eq(sites.iter()),
            "layer {}: sites {:?}",
            layer.index,
            layer.sites.keys()
        );
        for (name, site) in &layer.sites {
            check_site(format!("layer {} {name}", layer.index), site);
        }
    }
    check_site("final_norm".into(), &report.final_norm);

    for (path, l) in report.paths.iter().zip(&logits) {
        assert_eq!(l.len(), 4096, "{path}: logits");
        assert!(l.iter().all(|v| v.is_finite()), "{path}: non-finite logits");
        finite(&format!("logits {path}"), &report.logits.paths[path].stats);
    }
    let resid: Vec<String> = report
        .layers
        .iter()
        .map(|l| format!("{:.3}", l.sites["resid_ffn"].paths["f32"].std.unwrap()))
        .collect();
    eprintln!(
        "demo: resid_ffn std by layer (f32) {resid:?}, logits std {:.3}",
        report.logits.paths["f32"].stats.std.unwrap()
    );
    let lc = &report.logits.compare["q8"];
    let (top_f32, top_q8) = (&report.logits.paths["f32"].top, &report.logits.paths["q8"].top);
    eprintln!(
        "demo: worst per-site cosine {:.6} at {}; logits cosine {:.6}, KL {:.3e}, top-1 f32 {:?} q8 {:?} \
         (f32 margin to #2 {:.4}), top-10 overlap {}",
        worst.0,
        worst.1,
        lc.cosine.unwrap_or(f64::NAN),
        lc.kl.unwrap_or(f64::NAN),
        top_f32[0],
        top_q8[0],
        top_f32[0].1 - top_f32[1].1,
        lc.top10_overlap
    );
    assert!(lc.top1_agree, "logits top-1 differ: f32 {:?}, q8 {:?}", top_f32[0], top_q8[0]);
    assert!(lc.cosine.unwrap() >= 0.99, "logits cosine {:?}", lc.cosine);
    // llama.cpp (llama-cpp-python 0.3.36, CPU, use_extra_bufts off as in
    // tools/reference/llamacpp_logits.py) on the same tokens: top-5 ids 304, 3967, 688, 387,
    // 3032, top-1 logit 4.3613214. The q8 path follows llama.cpp's CPU arithmetic, so it lands
    // within float noise; the f32 path differs by the activation quantization only.
    const LLAMACPP_TOP5: [u32; 5] = [304, 3967, 688, 387, 3032];
    for (path, top) in [("f32", top_f32), ("q8", top_q8)] {
        let ids: Vec<u32> = top[..5].iter().map(|&(id, _)| id).collect();
        eprintln!("demo: {path} top-5 {:?}", &top[..5]);
        assert_eq!(ids, LLAMACPP_TOP5, "{path}: top-5 differs from llama.cpp's");
    }
    let q8_top = top_q8[0].1;
    assert!(
        (q8_top - 4.361_321_4).abs() < 1e-3,
        "q8 top-1 logit {q8_top} vs llama.cpp's 4.3613214"
    );
    // A synthetic net should still look like a net: logits neither flat nor one-hot.
    let std = report.logits.paths["f32"].stats.std.unwrap();
    assert!((0.2..20.0).contains(&std), "f32 logits std {std}");
}

/// Regenerates the demo with the committed generator (tools/demo-model) and compares both files
/// byte for byte with the committed ones.
#[test]
fn committed_generator_reproduces_the_demo() {
    let Some(qwen) = model_path(QWEN_0_5B) else {
        return;
    };
    let source = parallax_source::FileSource::open(&qwen).unwrap();
    let header = parallax_gguf::GgufFile::read(&source).unwrap();
    let fresh = parallax_demo_model::generate(&header).unwrap();
    let fresh_readme = parallax_demo_model::readme(&fresh);
    for (file, fresh) in
        [("parallax-demo-qwen2.gguf", fresh.clone()), ("README.md", fresh_readme.into_bytes())]
    {
        let committed = std::fs::read(demo_dir().join(file)).unwrap();
        assert!(
            fresh == committed,
            "www/demo/{file} differs from what tools/demo-model makes now ({} vs {} bytes); \
             rerun `cargo run --release -p parallax-demo-model -- --out www/demo`",
            fresh.len(),
            committed.len()
        );
    }
}

/// The engine probes exactly the site table's rows (`parallax_metrics::sites`): every layer row
/// the architecture has is recorded in every layer, in the table's order, and nothing else is.
/// Adding a site is a table row plus its probe line in `engine/src/block.rs`; without the probe
/// line this test fails, and so does a probe without a row.
#[test]
fn the_engine_probes_every_site_of_the_table_and_no_other() {
    use parallax_metrics::sites::{Scope, SITES};
    let model = demo();
    let input = RunInput { tokens: PROMPT_IDS.to_vec(), ..Default::default() };
    let report = Run::new(&model, &input, &RunOptions::default()).run().unwrap();
    let table: Vec<&str> = SITES
        .iter()
        .filter(|s| s.scope == Scope::Layer && !s.post_norm_only)
        .map(|s| s.name)
        .collect();
    assert_eq!(report.site_order, table);
    for layer in &report.layers {
        let probed: Vec<&str> = layer.sites.keys().map(String::as_str).collect();
        assert_eq!(probed, table, "layer {}", layer.index);
    }
    for global in SITES.iter().filter(|s| s.scope == Scope::Global) {
        match global.name {
            "embed" => assert!(report.embed.paths.contains_key("f32")),
            "final_norm" => assert!(report.final_norm.paths.contains_key("f32")),
            "logits" => assert!(!report.logits.paths.is_empty()),
            other => panic!("the engine does not probe the global site `{other}`"),
        }
    }
}
