//! Fault injection on the real Qwen2.5-0.5B and Gemma-3-270M, and on the 28-layer 7B-shaped
//! model: each classic porting bug, injected into one op of the q8 path at several depths, makes
//! an embedded contract FAIL, and the first divergence names the injected layer and site. An
//! honest run passes every embedded contract — on the deep model too, where the accumulated
//! rounding noise leaves the fixed bands and is explained by the arithmetic instead.

use parallax_engine::{Fault, PathKind, Run, RunInput, RunOptions};
use parallax_judge::{default_contracts, evaluate, PathMapping};
use parallax_model::Model;
use parallax_report::verdict::{Cause, Outcome, Verdicts};
use parallax_report::Mode;
use parallax_source::FileSource;
use parallax_tests::{
    model_path, GEMMA_270M, QWEN_0_5B, QWEN_AS_LLAMA, QWEN_AS_LLAMA_NOBIAS, QWEN_AS_QWEN3,
    QWEN_DEEP44, SYNTHETIC_7B,
};

const TOKENS: [u32; 7] = [3838, 374, 220, 17, 10, 17, 30];

fn judge(faults: &[&str], mode: Mode) -> Option<Verdicts> {
    judge_on(QWEN_0_5B, faults, mode)
}

/// `TOKENS` through `file` (any model's vocabulary holds these ids), judged by the embedded
/// contracts.
fn judge_on(file: &str, faults: &[&str], mode: Mode) -> Option<Verdicts> {
    let path = model_path(file)?;
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let opts = RunOptions {
        mode,
        faults: faults.iter().map(|f| Fault::parse(f, PathKind::Q8).unwrap()).collect(),
        ..Default::default()
    };
    let input = RunInput { tokens: TOKENS.to_vec(), ..Default::default() };
    let report = Run::new(&model, &input, &opts).run().unwrap();
    assert_eq!(report.execution.injected.len(), faults.len());
    Some(evaluate(&report, &default_contracts(), &PathMapping::default()))
}

/// The lines the terminal shows for `v`, for assertion messages.
fn verdict_text(v: &Verdicts) -> String {
    parallax_report::text::verdict_lines(v).join("\n")
}

/// The honest run of `file` passes every embedded contract: nothing fails, nothing is refused.
fn assert_honest_run_passes(file: &str) -> Option<Verdicts> {
    let v = judge_on(file, &[], Mode::Free)?;
    assert!(v.passed(), "{file}\n{}", verdict_text(&v));
    let t = v.tally();
    assert_eq!((t.fail, t.refused), (0, 0), "{file}\n{}", verdict_text(&v));
    Some(v)
}

fn assert_localized(fault: &str, layer: u32, site: &str) -> Option<Verdicts> {
    assert_localized_on(QWEN_0_5B, fault, layer, site)
}

fn assert_localized_on(file: &str, fault: &str, layer: u32, site: &str) -> Option<Verdicts> {
    let v = judge_on(file, &[fault], Mode::Free)?;
    assert!(!v.passed(), "{fault}: the contracts must catch it");
    // A broken path's noise is no excuse: its flips are never explained as ties. (A probe
    // fault, scope-mismatch, leaves the arithmetic and so the logits honest.)
    let lines = verdict_text(&v);
    let arithmetic = !fault.starts_with("scope-mismatch");
    for t in v.contracts.iter().flat_map(|c| &c.tests).filter(|_| arithmetic) {
        if ["PARALLAX-PARITY-015", "PARALLAX-PARITY-016"].contains(&t.id.as_str()) {
            assert_ne!(t.outcome, Outcome::Explained, "{fault}: explained as a tie:\n{lines}");
        }
    }
    let first =
        v.first_divergence.clone().unwrap_or_else(|| panic!("{fault}: no first divergence"));
    assert_eq!(first.at.layer, Some(layer), "{fault}: first divergence at {}", first.at.place());
    assert!(
        first.at.site == site || (site == "ffn_swigl" && first.at.site == "ffn_swiglu_inner"),
        "{fault}: first divergence at {}, expected layer {layer} {site}",
        first.at.place()
    );
    Some(v)
}

#[test]
fn honest_run_passes_every_embedded_contract() {
    let Some(v) = assert_honest_run_passes(QWEN_0_5B) else { return };
    let t = v.tally();
    assert!(t.pass >= 19 && t.not_measurable == 3, "{t}");
}

#[test]
fn wrong_q4k_scale_min_unpacking_is_caught_at_its_matmul() {
    // blk.4.ffn_down is Q4_K in this Q4_K_M file.
    assert_localized("q4k-scales@4:ffn_down", 4, "ffn_down");
}

#[test]
fn dropped_qkv_bias_is_caught_at_q() {
    assert_localized("drop-bias@5", 5, "q");
}

#[test]
fn swapped_gate_and_up_are_caught_at_the_gate() {
    assert_localized("swap-gate-up@7", 7, "ffn_gate");
}

#[test]
fn probe_scope_mismatch_is_caught_as_unequal_samples() {
    let Some(v) = assert_localized("scope-mismatch@9:ffn_swigl", 9, "ffn_swigl") else { return };
    let lines = verdict_text(&v);
    assert!(lines.contains("FALSIFY-APR-GGUF-PARITY-007"), "{lines}");
    assert!(
        lines.contains("n=34048") && lines.contains("n=4864"),
        "both counts are shown: {lines}"
    );
}

#[test]
fn replay_mode_tells_root_from_propagated() {
    let Some(v) = judge(&["q4k-scales@4:ffn_down"], Mode::Replay) else { return };
    let first = v.first_divergence.unwrap();
    assert_eq!((first.at.layer, first.at.site.as_str()), (Some(4), "ffn_down"));
    assert_eq!(
        first.cause,
        Cause::Root,
        "the broken matmul itself leaves the band: {}",
        first.explanation
    );
}

#[test]
fn faults_are_caught_at_their_layer_and_site_at_every_depth() {
    // Early, middle and late layers of the 24, at each kind's sites.
    for (fault, layer, site) in [
        ("drop-bias@22", 22, "q"),
        ("drop-bias@0:v", 0, "v"),
        ("swap-gate-up@1", 1, "ffn_gate"),
        ("swap-gate-up@21", 21, "ffn_gate"),
        ("q4k-scales@4:ffn_down", 4, "ffn_down"),
    ] {
        assert_localized(fault, layer, site);
    }
}

#[test]
fn every_fault_kind_is_caught_on_gemma_3() {
    // Gemma 3: GELU, per-head q/k norms, post-norms, sliding-window layers; Q4_K attn_output and
    // ffn_down, Q5_0 projections.
    for (fault, layer, site) in [
        ("q4k-scales@2:ffn_down", 2, "ffn_down"),
        ("q4k-scales@14:attn_proj", 14, "attn_proj"),
        ("swap-gate-up@9", 9, "ffn_gate"),
        ("swap-gate-up@17", 17, "ffn_gate"),
        ("scope-mismatch@5:ffn_swigl", 5, "ffn_swigl"),
    ] {
        assert_localized_on(GEMMA_270M, fault, layer, site);
    }
    // Gemma 3 has no q/k/v biases: dropping one is refused, never a silent no-op.
    let Some(path) = model_path(GEMMA_270M) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let opts = RunOptions {
        faults: vec![Fault::parse("drop-bias@3", PathKind::Q8).unwrap()],
        ..Default::default()
    };
    let input = RunInput { tokens: TOKENS.to_vec(), ..Default::default() };
    let e = Run::new(&model, &input, &opts).run().unwrap_err().to_string();
    assert!(e.contains("blk.3.attn_q.weight") && e.contains("no bias to drop"), "{e}");
}

/// The deep-model false alarm of issue #16: over 28 layers of Qwen2.5-7B's shape, the q8 path's
/// rounding noise accumulates beyond the bands fitted on the two small models (cosine 0.89 at
/// the last layers). Every op adds only its predicted noise, so the run passes, the accumulated
/// bands EXPLAINED; a fault deep in the stack still fails at its own layer and site.
#[test]
fn a_deep_honest_run_passes_and_a_deep_fault_is_found_where_it_is() {
    let Some(v) = assert_honest_run_passes(SYNTHETIC_7B) else { return };
    let t = v.tally();
    assert!(
        t.explained >= 1,
        "the accumulated noise leaves the fixed bands here: {t}\n{}",
        verdict_text(&v)
    );
    // (Its synthetic Q4_K blocks hold equal scales and mins, and its biases are 0.01, so
    // q4k-scales and drop-bias change next to nothing there; swapped projections do.)
    assert_localized_on(SYNTHETIC_7B, "swap-gate-up@20", 20, "ffn_gate");
}

/// The deepest real-weight model here: the 0.5B's 24 trained layers, then its layers 4–23 again
/// (44 layers; tools/golden/make_arch_rewrites.py). Qwen's massive activations at position 0
/// pass through 40 layers after they form, so every Q8 block that holds them is coarse, as on
/// the 28-layer Qwen2.5-Coder-1.5B. The honest run passes; faults in the first and
/// the repeated layers fail at their own layer and site — `q4k-scales@4:ffn_down` is the fault
/// the fixed bands once placed a layer late on that model.
#[test]
fn a_deep_real_model_passes_honestly_and_its_faults_are_found_where_they_are() {
    if assert_honest_run_passes(QWEN_DEEP44).is_none() {
        return;
    }
    for (fault, layer, site) in [
        ("q4k-scales@4:ffn_down", 4, "ffn_down"),
        ("q4k-scales@24:ffn_down", 24, "ffn_down"),
        ("drop-bias@33", 33, "q"),
        ("swap-gate-up@40", 40, "ffn_gate"),
        ("scope-mismatch@43:ffn_swigl", 43, "ffn_swigl"),
    ] {
        assert_localized_on(QWEN_DEEP44, fault, layer, site);
    }
}

/// The 0.5B's weights rewritten as `llama` (with and without q/k/v biases) and `qwen3`
/// (tools/golden/make_arch_rewrites.py): every honest run passes. Without Qwen's biases the
/// model amplifies rounding noise — llama.cpp's own settings disagree by cosine 0.94 — and
/// its logits differ beyond the fixed bands (KL 0.22–0.35): EXPLAINED, since every op, the head
/// included, adds only its predicted noise.
#[test]
fn honest_runs_of_the_llama_and_qwen3_rewrites_pass() {
    for file in [QWEN_AS_LLAMA, QWEN_AS_LLAMA_NOBIAS, QWEN_AS_QWEN3] {
        if assert_honest_run_passes(file).is_none() {
            return;
        }
    }
}

#[test]
fn every_fault_kind_is_caught_on_a_llama_file() {
    for (fault, layer, site) in [
        ("drop-bias@5", 5, "q"),
        ("drop-bias@19:k", 19, "k"),
        ("swap-gate-up@2", 2, "ffn_gate"),
        ("swap-gate-up@18", 18, "ffn_gate"),
        ("q4k-scales@4:ffn_down", 4, "ffn_down"),
        ("scope-mismatch@11:ffn_swigl", 11, "ffn_swigl"),
    ] {
        assert_localized_on(QWEN_AS_LLAMA, fault, layer, site);
    }
}

/// The op-alone prediction is the distance between two arithmetics' roundings, not one path's
/// against exact values: with `q8` as the reference (`--paths q8,f32`), the f32 path's
/// op-alone error is the q8 reference's own rounding, and an honest run passes just the same.
#[test]
fn the_noise_prediction_holds_whichever_path_is_the_reference() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let opts = RunOptions { paths: vec![PathKind::Q8, PathKind::F32], ..Default::default() };
    let input = RunInput { tokens: TOKENS.to_vec(), ..Default::default() };
    let report = Run::new(&model, &input, &opts).run().unwrap();
    let v = evaluate(&report, &default_contracts(), &PathMapping::default());
    let lines = verdict_text(&v);
    for id in ["PARALLAX-PARITY-017", "PARALLAX-PARITY-018"] {
        let t = v.contracts.iter().flat_map(|c| &c.tests).find(|t| t.id == id).unwrap();
        assert_eq!(t.outcome, Outcome::Pass, "{id}\n{lines}");
    }
    assert!(v.passed(), "{lines}");
}
