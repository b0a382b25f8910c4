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
//! The rewrites of the 0.5B (tools/golden/make_arch_rewrites.py: llama, llama without biases,
//! qwen3, and the 44-layer self-merge) have goldens from the same AVX-512 build: layers 0–1
//! worst (both scopes) 7.2e-8 / 5.2e-8 for qwen3, the 0.5B's own figures for the self-merge;
//! llama with biases, see [`ONE_F16_FLIP_STD_REL`].
//!
//! The golden also holds the last token's row at every site of layers 0–1, and those are
//! compared element by element ([`FIRST_LAYERS_ROW_REL`], [`F16_ROUNDED_ROW_REL`]): the
//! stds above could hide a permutation or a compensating error; the rows cannot.
//!
//! Before llama.cpp's attention (tinyBLAS f16 order, ggml_v_expf softmax) and SiLU were
//! reproduced, Qwen's layer 0 was at 5.0e-6 (last token) and layer 1 at 3.8e-5: the 2e-6 bound
//! sits 8× above today's worst and below those. Deeper layers drift chaotically (see above); the
//! loose all-layer bound only catches a gross error (a wrong site definition moves the std by
//! far more than 1e-1).

use std::collections::BTreeMap;

use parallax_engine::{PathKind, Run, RunInput, RunOptions, SiteRows};
use parallax_model::Model;
use parallax_report::Report;
use parallax_source::FileSource;
use parallax_tests::{
    f32s_le, model_path, repo_root, unhex, GEMMA_270M, QWEN_0_5B, QWEN_AS_LLAMA,
    QWEN_AS_LLAMA_NOBIAS, QWEN_AS_QWEN3, QWEN_DEEP44,
};
use serde_json::Value;

/// Layers 0 and 1: every site's std, all tokens and last token, relative to llama.cpp's.
const FIRST_LAYERS_STD_REL: f64 = 2e-6;
/// Layers 0 and 1: every site's last-token row, element by element — the largest difference
/// relative to the row's largest value. Measured worst on every file here: 4.1e-7, a few f32
/// ulps of the row's largest value (most elements are bit-equal or one ulp apart).
const FIRST_LAYERS_ROW_REL: f64 = 1e-6;
/// The same at the sites where llama.cpp rounds to f16 on the way: attention (q and k, the
/// softmax's probabilities and V; `attn_out`) and Gemma's GELU (a table over f16 inputs). A last
/// ulp of difference upstream can move one f16 rounding by a step of 2^-11, and an element by
/// that share of one product. Measured worst: 8.1e-5 (the llama rewrite's layer 1 `attn_out`,
/// 133 of 896 elements not bit-equal), 2.5e-5 (Qwen2.5-0.5B, 7 of 896), 6.6e-6 (Gemma). A wrong
/// op moves a row by ~1 of its largest value.
const F16_ROUNDED_ROW_REL: f64 = 2e-4;

/// The row bound at `site` of an `arch` model.
fn row_bound(arch: &str, site: &str) -> f64 {
    let gelu = arch == "gemma3" && ["ffn_silu", "ffn_swigl"].contains(&site);
    if site == "attn_out" || gelu {
        F16_ROUNDED_ROW_REL
    } else {
        FIRST_LAYERS_ROW_REL
    }
}
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

/// A site's last-token row, by layer and site.
type Rows = BTreeMap<(u32, String), Vec<f32>>;

/// The q8 path's report, and its last-token row at every site of the layers in `row_layers`,
/// taken as the run computes them.
fn run_q8(file: &str, tokens: &[u32], row_layers: &[u32]) -> Option<(Report, Rows)> {
    let path = model_path(file)?;
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput { tokens: tokens.to_vec(), ..Default::default() };
    let opts = RunOptions { paths: vec![PathKind::Q8], ..Default::default() };
    let mut rows = BTreeMap::new();
    let report = Run::new(&model, &input, &opts)
        .tap(|site: &SiteRows| {
            if let Some(layer) = site.layer.filter(|l| row_layers.contains(l)) {
                let q8 = &site.rows[0];
                rows.insert((layer, site.site.to_string()), q8[q8.len() - site.width..].to_vec());
            }
        })
        .run()
        .unwrap();
    Some((report, rows))
}

/// A golden row: little-endian f32 bytes as hex.
fn golden_row(hex: &str) -> Vec<f32> {
    f32s_le(&unhex(hex))
}

/// Element by element: the largest |ours − llama.cpp's| over the row, relative to the row's
/// largest |value|, and how many elements are bit-equal.
fn row_difference(ours: &[f32], theirs: &[f32]) -> (f64, usize) {
    let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let worst = ours.iter().zip(theirs).fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    let equal = ours.iter().zip(theirs).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
    (worst / scale.max(f64::MIN_POSITIVE), equal)
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
    let row_layers: Vec<u32> =
        gold["row_layers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let Some((report, rows)) = run_q8(file, &tokens, &row_layers) else { return };
    let layers = gold["layers"].as_array().unwrap();
    assert_eq!(layers.len(), report.layers.len(), "{file}: layer count");
    let mut failures = Vec::new();
    // Layers 0–1: every site's last-token row, element by element (against the file's own
    // golden: another file's rows may lie in another order).
    let row_layers = if file == golden_file { row_layers } else { Vec::new() };
    for &il in &row_layers {
        let mut worst = (0f64, "");
        let (mut equal, mut total) = (0, 0);
        for (site, g) in layers[il as usize]["sites"].as_object().unwrap() {
            let theirs = golden_row(g["last_row_f32le_hex"].as_str().unwrap());
            let ours = rows
                .get(&(il, site.clone()))
                .unwrap_or_else(|| panic!("{file}: the tap saw no L{il} {site}"));
            assert_eq!(ours.len(), theirs.len(), "{file} L{il} {site}: row width");
            let (d, eq) = row_difference(ours, &theirs);
            (equal, total) = (equal + eq, total + ours.len());
            if d > worst.0 {
                worst = (d, site);
            }
            let bound = row_bound(gold["architecture"].as_str().unwrap(), site);
            if d > bound {
                failures.push(format!(
                    "L{il} {site} (last token's row): max |Δ| / max |x| {d:.2e} > {bound:.0e}, \
                     {eq}/{} elements bit-equal",
                    ours.len()
                ));
            }
        }
        eprintln!(
            "{file} L{il}: worst row element {:.2e} of the row's max at {}; {equal}/{total} bit-equal",
            worst.0, worst.1
        );
    }
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

/// The llama rewrite with biases (tools/golden/make_arch_rewrites.py) against llama.cpp on the
/// same file: layer 0 as tight as qwen2 (std 1.3e-7, rows 2.3e-7, `attn_out` bit-equal). At
/// layer 1 one f16 rounding in attention lands on the other side at an early position, and
/// the Q8 roundings after it carry that into the all-token std of `ffn_down` (1.2e-4); the
/// last token's rows stay within their bounds (`attn_out` 8.1e-5, the rest ≤ 2.3e-7).
const ONE_F16_FLIP_STD_REL: f64 = 1e-3;

/// The same rewrite against llama.cpp's golden of the original qwen2 file, which computes the
/// same function in another memory order: Qwen's q/k biases make q·k reach 1.0e4 at layer 0
/// (67 on the bias-free qwen3 rewrite), and the rewrite's adjacent-pair layout puts other
/// products in each of tinyBLAS's lanes than qwen2's halves layout, so the q·k sums round
/// differently. attn_out moves by ~1e-4, the Q8 roundings that follow by ~1e-3. Measured: layer
/// 0/1 worst std 3.8e-4 / 3.0e-3; with q and k put back in halves order after RoPE (an
/// experiment, not kept) the rewrite matched the qwen2 golden to 8.7e-8 / 3.3e-7, so the order
/// is the whole difference. Pairing the dimensions as NEOX on this file (the wrong RoPE) gives
/// 1.7e-1 at layer 0, so the bound still catches a wrong pairing by 16×. (Rows are compared
/// against the rewrite's own golden only: the q and k rows lie in another order in the two
/// files, and the rows after attention differ by up to 1.1e-2 of their largest value.)
const ATTENTION_ORDER_STD_REL: f64 = 1e-2;

#[test]
fn qwen_as_llama_q8_sites_match_llamacpp() {
    check_against(QWEN_AS_LLAMA, QWEN_AS_LLAMA, ONE_F16_FLIP_STD_REL);
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

/// The 44-layer self-merge: its layers 0–1 are the 0.5B's, so they are held as tightly; the
/// other 42 to the gross-error bound.
#[test]
fn qwen_deep44_q8_sites_match_llamacpp() {
    check(QWEN_DEEP44);
}
