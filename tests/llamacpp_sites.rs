//! The q8 path against llama.cpp's own intermediate tensors, site by site and layer by layer.
//!
//! Golden: tests/golden/reference/llamacpp-sites-<model>.json, written by
//! tools/reference/llamacpp_site_stats.py (llama-cpp-python 0.3.36, CPU backend, AVX-512 build,
//! `use_extra_bufts = false`, F16 KV cache, no flash attention). It holds, per site, the sample
//! std (and mean, min, max) of llama.cpp's tensor over all tokens and over the last token.
//! `ffn_silu` has no llama.cpp tensor (the activation is fused into SWIGLU/GEGLU) and is skipped.
//!
//! Final logits are the wrong yardstick for the q8 path: a 1e-7 difference in one layer flips
//! a few Q8 activation roundings in the next, and Gemma's huge activations amplify the flips
//! chaotically. So the tight check is on the first layers, where the q8 path reproduces
//! llama.cpp's arithmetic (measured on this machine with the kernels of this commit; most
//! sites are bit-identical, the rest differ by about one f32 ulp from the summation order of
//! the Q8_0/Q4_K/Q6_K dots):
//!
//! | model | layer 0 worst std rel (all / last token) | layer 1 |
//! |---|---|---|
//! | qwen2.5-0.5b | 7.2e-9 / 3.3e-8 | 2.3e-8 / 1.5e-7 |
//! | gemma-3-270m | 1.4e-7 / 2.6e-7 | 1.3e-7 / 6.0e-8 |
//!
//! The llama/qwen3 rewrites of the 0.5B (tools/golden/make_arch_rewrites.py) have goldens from
//! another llama.cpp build (the same 0.3.36 built for AVX2, `system_info` in their
//! llamacpp-<model>.json; the shared models' are from an AVX-512 build): layers 0–1 worst
//! (both scopes) 4.0e-8 / 6.3e-8 for llama without biases, 7.2e-8 / 5.2e-8 for qwen3, so their
//! small attention scores hide the build's attention order; llama with biases, see
//! [`ATTENTION_ORDER_STD_REL`].
//!
//! Before llama.cpp's attention (tinyBLAS f16 order, ggml_v_expf softmax) and SiLU were
//! reproduced, Qwen's layer 0 was at 5.0e-6 (last token) and layer 1 at 3.8e-5: the 2e-6 bound
//! sits 8× above today's worst and below those. Deeper layers drift chaotically (see above); the
//! loose all-layer bound only catches a gross error (a wrong site definition moves the std by
//! far more than 1e-1).

use parallax_engine::{PathKind, Run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_report::Report;
use parallax_source::FileSource;
use parallax_tests::{
    model_path, repo_root, GEMMA_270M, QWEN_0_5B, QWEN_AS_LLAMA, QWEN_AS_LLAMA_NOBIAS,
    QWEN_AS_QWEN3,
};
use serde_json::Value;

/// Layers 0 and 1: every site's std, all tokens and last token, relative to llama.cpp's.
const FIRST_LAYERS_STD_REL: f64 = 2e-6;
/// Every layer: a gross-error bound only. Drift is chaotic from layer 2 on and depends on the
/// float order of every dot: with `parallax_quant::order` (the one order shared by the scalar,
/// AVX2 and simd128 kernels, which llama.cpp's AVX2 kernels do not follow) Gemma's worst is
/// 6.6e-2 on a last-token std (layer 9 `ffn_post_norm`, one 640-value row); with the previous
/// order it was 1.5e-2. A wrong site definition moves a std by far more.
const ALL_LAYERS_STD_REL: f64 = 1.5e-1;

fn golden(golden_file: &str) -> Value {
    let stem = golden_file.trim_end_matches(".gguf");
    let path =
        repo_root().join("tests/golden/reference").join(format!("llamacpp-sites-{stem}.json"));
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_q8(file: &str, tokens: &[u32]) -> Option<Report> {
    let path = model_path(file)?;
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput { tokens: tokens.to_vec(), ..Default::default() };
    let opts = RunOptions { paths: vec![PathKind::Q8], ..Default::default() };
    Some(Run::new(&model, &input, &opts).run().unwrap())
}

fn rel(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE)
}

/// Worst (relative difference, layer, site, scope) per layer.
fn check(file: &str) {
    check_against(file, file, FIRST_LAYERS_STD_REL);
}

/// `file`'s q8 sites against llama.cpp's sites of `golden_file` (the same file, or one computing
/// the same function), layers 0 and 1 held to `first_layers_bound`.
fn check_against(file: &str, golden_file: &str, first_layers_bound: f64) {
    let gold = golden(golden_file);
    let tokens: Vec<u32> =
        gold["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let Some(report) = run_q8(file, &tokens) else { return };
    let layers = gold["layers"].as_array().unwrap();
    assert_eq!(layers.len(), report.layers.len(), "{file}: layer count");
    let mut failures = Vec::new();
    for (il, (g_layer, r_layer)) in layers.iter().zip(&report.layers).enumerate() {
        let tok = &report.per_token.layers[il];
        let bound = if il < 2 { first_layers_bound } else { ALL_LAYERS_STD_REL };
        let mut worst = (0f64, "");
        for (site, g) in g_layer["sites"].as_object().unwrap() {
            let ours_all =
                r_layer.sites.get(site).unwrap_or_else(|| panic!("{file}: no site {site}")).paths
                    ["q8"]
                    .std
                    .unwrap();
            let ours_last = tok[site].paths["q8"].last().unwrap().std.unwrap();
            assert_eq!(
                r_layer.sites[site].paths["q8"].count,
                g["all"]["count"].as_u64().unwrap(),
                "{file} L{il} {site}: element count"
            );
            for (scope, ours, theirs) in [
                ("all", ours_all, g["all"]["std"].as_f64().unwrap()),
                ("last", ours_last, g["last"]["std"].as_f64().unwrap()),
            ] {
                let d = rel(ours, theirs);
                if d > worst.0 {
                    worst = (d, site);
                }
                if d > bound {
                    failures.push(format!("L{il} {site} ({scope} tokens): std {ours} vs llama.cpp {theirs}, rel {d:.2e} > {bound:.0e}"));
                }
            }
        }
        eprintln!("{file} L{il}: worst std rel {:.2e} at {}", worst.0, worst.1);
    }
    assert!(
        failures.is_empty(),
        "{file}: q8 path departs from llama.cpp:\n{}",
        failures.join("\n")
    );
}

#[test]
fn qwen_q8_sites_match_llamacpp() {
    check(QWEN_0_5B);
}

#[test]
fn gemma_q8_sites_match_llamacpp() {
    check(GEMMA_270M);
}

/// The llama rewrite with biases (tools/golden/make_arch_rewrites.py): Qwen's q/k biases make
/// q·k reach 1.0e4 at layer 0 (67 on the bias-free qwen3 rewrite), where the order of the q·k
/// sum shows: the rewrite's
/// adjacent-pair layout puts other products in each of tinyBLAS's lanes than qwen2's halves
/// layout (Parallax reproduces the AVX-512 build's 16 lanes; this machine's llama.cpp, which made
/// the rewrite's golden, is an AVX2 build with 8). attn_out moves by ~1e-5, the Q8 roundings
/// that follow by ~1e-3. Measured: layer 0/1 worst 3.8e-4 / 2.5e-3 against the rewrite's own
/// golden, 3.8e-4 / 3.0e-3 against llama.cpp's qwen2 golden of the original file (same
/// function); with q and k put back in halves order after RoPE (an experiment, not kept) the
/// rewrite matched the qwen2 golden to 8.7e-8 / 3.3e-7, Parallax's qwen2 figures, so the order
/// is the whole difference. llama.cpp itself moves by 1.1e-3 at layer 1 between those two builds
/// on the original file. Pairing the dimensions as NEOX on this file (the wrong RoPE) gives
/// 1.7e-1 at layer 0, so the bound below still catches a wrong pairing by 16×.
const ATTENTION_ORDER_STD_REL: f64 = 1e-2;

#[test]
fn qwen_as_llama_q8_sites_match_llamacpp() {
    check_against(QWEN_AS_LLAMA, QWEN_AS_LLAMA, ATTENTION_ORDER_STD_REL);
    check_against(QWEN_AS_LLAMA, QWEN_0_5B, ATTENTION_ORDER_STD_REL);
}

#[test]
fn qwen_as_llama_without_biases_q8_sites_match_llamacpp() {
    check(QWEN_AS_LLAMA_NOBIAS);
}

#[test]
fn qwen_as_qwen3_q8_sites_match_llamacpp() {
    check(QWEN_AS_QWEN3);
}
