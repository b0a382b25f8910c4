//! Fault injection on the real Qwen2.5-0.5B: each classic porting bug, injected into one op of the
//! q8 path, makes an embedded contract FAIL, and the first divergence names the injected layer
//! and site. An honest run passes every embedded contract.

use parallax_engine::{Fault, PathKind, Run, RunInput, RunOptions};
use parallax_judge::{default_contracts, evaluate, PathMapping};
use parallax_model::Model;
use parallax_report::verdict::{Cause, Verdicts};
use parallax_report::Mode;
use parallax_source::FileSource;
use parallax_tests::{model_path, QWEN_0_5B};

const TOKENS: [u32; 7] = [3838, 374, 220, 17, 10, 17, 30];

fn judge(faults: &[&str], mode: Mode) -> Option<Verdicts> {
    let path = model_path(QWEN_0_5B)?;
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

fn assert_localized(fault: &str, layer: u32, site: &str) -> Option<Verdicts> {
    let v = judge(&[fault], Mode::Free)?;
    assert!(!v.passed(), "{fault}: the contracts must catch it");
    // A broken path's noise is no excuse: its flips are never explained as ties.
    let lines = parallax_report::text::verdict_lines(&v).join("\n");
    assert_eq!(v.tally().explained, 0, "{fault}: a fault explained as a tie:\n{lines}");
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
    let Some(v) = judge(&[], Mode::Free) else { return };
    assert!(v.passed(), "{}", parallax_report::text::verdict_lines(&v).join("\n"));
    let t = v.tally();
    assert_eq!((t.fail, t.refused), (0, 0));
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
    let lines = parallax_report::text::verdict_lines(&v).join("\n");
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
