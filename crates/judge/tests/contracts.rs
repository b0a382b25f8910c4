//! Contracts judged on real runs of the shared models, on hand-corrupted copies of those
//! reports, and on imported upstream traces.

use std::path::PathBuf;
use std::sync::OnceLock;

use parallax_engine::{tokenizer_for, PathKind, Run, RunInput, RunOptions};
use parallax_judge::contract::{Check, Contract, ContractError};
use parallax_judge::trace::{parse_trace, TraceFormat};
use parallax_judge::{default_contracts, evaluate, evaluate_with_traces, PathMapping};
use parallax_model::Model;
use parallax_report::text::verdict_lines;
use parallax_report::verdict::{Cause, Outcome, TestVerdict, Verdicts};
use parallax_report::{Mode, Report, Scope};
use parallax_source::FileSource;
use parallax_testkit::model_path;

const QWEN: &str = parallax_testkit::QWEN_0_5B;
const GEMMA: &str = parallax_testkit::GEMMA_270M;
const PROMPT: &str = "What is 2+2?";

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn run_at(path: PathBuf, tokens: Option<Vec<u32>>, mode: Mode, scope: Scope) -> Report {
    let model = Model::open(FileSource::open(&path).unwrap()).unwrap();
    let tokens = tokens.unwrap_or_else(|| tokenizer_for(&model).unwrap().encode(PROMPT, true));
    let input = RunInput { tokens, text: None, ..Default::default() };
    let opts =
        RunOptions { paths: vec![PathKind::F32, PathKind::Q8], mode, scope, ..Default::default() };
    Run::new(&model, &input, &opts).run().unwrap()
}

/// Runs are shared between tests: each model once per (mode, scope) used.
fn report(file: &'static str, mode: Mode, scope: Scope) -> Option<&'static Report> {
    type Cell = OnceLock<Option<Report>>;
    static CELLS: [Cell; 5] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match (file, mode, scope) {
        (QWEN, Mode::Free, Scope::All) => 0,
        (GEMMA, Mode::Free, Scope::All) => 1,
        (QWEN, Mode::Replay, Scope::All) => 2,
        (QWEN, Mode::Free, Scope::Last) => 3,
        (GEMMA, Mode::Free, Scope::Last) => 4,
        _ => unreachable!(),
    };
    CELLS[i].get_or_init(|| model_path(file).map(|p| run_at(p, None, mode, scope))).as_ref()
}

fn upstream_text() -> String {
    let p = shared().join("contracts/apr-vs-gguf-forward-parity-v1.yaml");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn upstream() -> Contract {
    Contract::from_yaml_str(&upstream_text()).unwrap()
}

fn test<'a>(v: &'a Verdicts, id: &str) -> &'a TestVerdict {
    v.contracts
        .iter()
        .flat_map(|c| &c.tests)
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no verdict for {id}"))
}

fn all_contracts() -> Vec<Contract> {
    let mut c = default_contracts();
    c.push(upstream());
    c
}

#[test]
fn upstream_contract_loads_unchanged_and_matches_the_restatement() {
    let up = upstream();
    assert_eq!(up.version.as_deref(), Some("1.2.0"));
    assert_eq!(up.name, "FALSIFY-APR-GGUF-PARITY");
    let ids: Vec<&str> = up.tests.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 7);
    for t in &up.tests {
        let measurable = !matches!(t.check, Check::NotMeasurable { .. });
        let expect = ["001", "002", "003", "007"].iter().any(|n| t.id.ends_with(n));
        assert_eq!(measurable, expect, "{}: {:?}", t.id, t.check);
    }
    // The embedded restatement carries the same facts: same ids, same checks.
    let restated = default_contracts()
        .into_iter()
        .find(|c| c.name == "apr-vs-gguf-forward-parity-v1")
        .unwrap();
    assert_eq!(restated.version, up.version);
    assert!(restated.source.as_deref().unwrap().contains("aprender"));
    assert_eq!(restated.tests.len(), up.tests.len());
    for (a, b) in restated.tests.iter().zip(&up.tests) {
        assert_eq!(a.id, b.id);
        match (&a.check, &b.check) {
            (Check::NotMeasurable { .. }, Check::NotMeasurable { .. }) => {}
            (x, y) => assert_eq!(x, y, "{}", a.id),
        }
    }
    // And it is not the upstream text.
    assert_ne!(parallax_judge::contract::UPSTREAM_RESTATED_YAML, upstream_text());
}

#[test]
fn honest_runs_pass_every_contract_on_both_models() {
    for (file, n_layers) in [(QWEN, 24), (GEMMA, 18)] {
        for scope in [Scope::All, Scope::Last] {
            let Some(r) = report(file, Mode::Free, scope) else {
                return;
            };
            let v = evaluate(r, &all_contracts(), &PathMapping::default());
            let text = verdict_lines(&v).join("\n");
            eprintln!("{file} {scope:?}\n{text}");
            assert!(v.passed(), "{file} {scope:?} should pass:\n{text}");
            // Every test of Parallax's own contract is measured and passes.
            let own = v.contracts.iter().find(|c| c.name == "parallax-default-v1").unwrap();
            assert!(own.tests.iter().all(|t| t.outcome == Outcome::Pass), "{text}");
            assert!(v.first_divergence.is_none());
            // The engine measures this run's logit noise, so the top-1 and top-10 tests can
            // tell a tie from a flip.
            let lc = &r.logits.compare["q8"];
            let noise = lc.logit_noise.expect("the engine measures the logit noise");
            eprintln!("{file} {scope:?}: logit noise {noise:.4}, tie margin {:?}, top-1 flip {:?}, top-10 ties {}", lc.tie_margin, lc.top1_flip, lc.top10_ties);
            assert!(noise > 0.0 && lc.tie_margin == Some(parallax_metrics::tie_margin(noise)));
            assert_eq!(lc.top1_flip.is_some(), !lc.top1_agree);
            for id in ["001", "002", "003", "007"] {
                let t = test(&v, &format!("FALSIFY-APR-GGUF-PARITY-{id}"));
                assert_eq!(t.outcome, Outcome::Pass, "{id}");
                assert!(t.evaluated > 0);
                let w = t.worst.as_ref().unwrap();
                assert!(w.counts.iter().all(|c| c.count.is_some_and(|n| n > 0)), "{w:?}");
            }
            for id in ["004", "005", "006"] {
                let t = test(&v, &format!("FALSIFY-APR-GGUF-PARITY-{id}"));
                assert_eq!(t.outcome, Outcome::NotMeasurable, "{id}");
                assert!(!t.notes.is_empty() && !t.rule.is_empty());
            }
            // The 28-layer contract is judged on the model's own layers, and says so.
            let t = test(&v, "FALSIFY-APR-GGUF-PARITY-001");
            assert_eq!(t.evaluated, n_layers);
            assert!(
                t.notes.iter().any(|n| n.contains(&format!("this model has {n_layers}"))),
                "{:?}",
                t.notes
            );
            // The upstream mapping is shown.
            let up = v.contracts.iter().find(|c| c.name == "FALSIFY-APR-GGUF-PARITY").unwrap();
            assert!(
                up.mapping.contains(&("apr".into(), "f32".into()))
                    && up.mapping.contains(&("gguf".into(), "q8".into()))
            );
            assert!(text.contains("NOT MEASURABLE"));
        }
    }
}

#[test]
fn saved_report_is_rejudged_alike_and_carries_its_verdicts() {
    let Some(r) = report(QWEN, Mode::Free, Scope::All) else {
        return;
    };
    let v = evaluate(r, &all_contracts(), &PathMapping::default());
    let mut with = r.clone();
    with.verdicts = Some(v.clone());
    let back = Report::from_json(&with.to_json()).unwrap();
    // JSON keeps f64 to within a unit in the last place: compare what a reader sees.
    assert_eq!(verdict_lines(back.verdicts.as_ref().unwrap()), verdict_lines(&v));
    assert_eq!(
        verdict_lines(&evaluate(&back, &all_contracts(), &PathMapping::default())),
        verdict_lines(&v)
    );
    // A report without verdicts serializes without the key (older readers see nothing new).
    assert!(!r.to_json().contains("\"verdicts\""));
}

#[test]
fn scaled_swigl_std_at_layer_3_fails_with_the_first_divergence_there() {
    for file in [QWEN, GEMMA] {
        let Some(r) = report(file, Mode::Free, Scope::All) else {
            return;
        };
        let mut bad = r.clone();
        let st = bad.layers[3].sites.get_mut("ffn_swigl").unwrap().paths.get_mut("q8").unwrap();
        st.std = st.std.map(|s| s * 18.0);
        // A real bug shows in the op that differs between the paths: here the activation
        // feeding ffn_swigl, fed the reference's own gate, leaves its predicted noise.
        let silu = bad.layers[3].sites.get_mut("ffn_silu").unwrap();
        silu.noise.get_mut("q8").unwrap().ratio = 40.0;
        let v = evaluate(&bad, &all_contracts(), &PathMapping::default());
        eprintln!("{}", verdict_lines(&v).join("\n"));
        assert!(!v.passed());
        for id in
            ["FALSIFY-APR-GGUF-PARITY-001", "FALSIFY-APR-GGUF-PARITY-002", "PARALLAX-PARITY-012"]
        {
            let t = test(&v, id);
            assert_eq!(t.outcome, Outcome::Fail, "{id}");
            assert_eq!(t.failed, 1, "{id}");
            let f = t.first_failure.as_ref().unwrap();
            assert_eq!((f.layer, f.site.as_str()), (Some(3), "ffn_swigl"), "{id}");
        }
        // apr / gguf = f32 / q8 ≈ 1/18.
        let f = test(&v, "FALSIFY-APR-GGUF-PARITY-002").first_failure.clone().unwrap();
        assert!((f.value.unwrap() - 1.0 / 18.0).abs() < 0.01, "{f:?}");
        assert_eq!(test(&v, "FALSIFY-APR-GGUF-PARITY-003").outcome, Outcome::Pass);
        // The op that broke is named first, as the root.
        let d = v.first_divergence.as_ref().unwrap();
        assert_eq!(
            (d.at.layer, d.at.site.as_str(), d.test.as_str()),
            (Some(3), "ffn_silu", "PARALLAX-PARITY-017")
        );
        assert_eq!(d.cause, Cause::Root);
        // Without that local evidence the report says every differing op added only its noise:
        // Parallax's own std band calls the spread explained (and says so); upstream's contract,
        // which explains nothing, still fails.
        let silu = bad.layers[3].sites.get_mut("ffn_silu").unwrap();
        silu.noise.get_mut("q8").unwrap().ratio = 1.0;
        let v = evaluate(&bad, &all_contracts(), &PathMapping::default());
        assert!(!v.passed());
        assert_eq!(test(&v, "PARALLAX-PARITY-012").outcome, Outcome::Explained);
        assert_eq!(test(&v, "FALSIFY-APR-GGUF-PARITY-002").outcome, Outcome::Fail);
        let d = v.first_divergence.as_ref().unwrap();
        assert_eq!(d.test, "FALSIFY-APR-GGUF-PARITY-001", "{d:?}");
    }
}

/// The false alarm of issue #16: on Qwen2.5-Coder-1.5B (28 layers) an honest run left the
/// accumulated bands at layers 26–27 (resid_ffn cosine 0.773, final_norm rel-L2 0.36), carried
/// by position 0's massive activations, while every op added only its rounding noise. Here the
/// 0.5B's honest report is given that divergence at its last layers, position 0 carrying it.
#[test]
fn accumulated_noise_beyond_the_bands_is_explained_when_every_op_is_within_its_noise() {
    let Some(r) = report(QWEN, Mode::Free, Scope::All) else {
        return;
    };
    let mut deep = r.clone();
    let last = deep.layers.len() - 1;
    for l in [last - 1, last] {
        let c = deep.layers[l].sites.get_mut("resid_ffn").unwrap().compare.get_mut("q8").unwrap();
        (c.cosine, c.rel_l2) = (Some(0.773), Some(0.67));
        let per = &mut deep.per_token.layers[l].get_mut("resid_ffn").unwrap().compare;
        for (t, c) in per.get_mut("q8").unwrap().iter_mut().enumerate() {
            c.rel_l2 = Some(if t == 0 { 0.9 } else { 0.01 });
        }
    }
    deep.final_norm.compare.get_mut("q8").unwrap().rel_l2 = Some(0.36);
    let v = evaluate(&deep, &default_contracts(), &PathMapping::default());
    let lines = verdict_lines(&v).join("\n");
    assert!(v.passed(), "{lines}");
    for id in ["PARALLAX-PARITY-006", "PARALLAX-PARITY-007", "PARALLAX-PARITY-013"] {
        let t = test(&v, id);
        assert_eq!(t.outcome, Outcome::Explained, "{id}\n{lines}");
        assert!(t.notes[0].contains("explained by the arithmetic"), "{:?}", t.notes);
    }
    let t = test(&v, "PARALLAX-PARITY-007");
    assert!(
        t.notes.iter().any(|n| n.contains("position 0") && n.contains("carries")),
        "the position that carries it is named: {:?}",
        t.notes
    );
    assert_eq!(test(&v, "PARALLAX-PARITY-017").outcome, Outcome::Pass);
    assert!(v.first_divergence.is_none(), "an explained divergence is not a divergence");

    // The same divergence after an op that left its noise is not explained.
    let mut faulty = deep.clone();
    faulty.layers[4].sites.get_mut("ffn_down").unwrap().noise.get_mut("q8").unwrap().ratio = 46.0;
    let v = evaluate(&faulty, &default_contracts(), &PathMapping::default());
    assert!(!v.passed());
    assert_eq!(test(&v, "PARALLAX-PARITY-007").outcome, Outcome::Fail);
    let d = v.first_divergence.unwrap();
    assert_eq!((d.at.layer, d.at.site.as_str()), (Some(4), "ffn_down"), "{d:?}");
    assert_eq!(d.cause, Cause::Root);
}

#[test]
fn unequal_counts_fail_sample_parity_and_refuse_the_ratio() {
    let Some(r) = report(QWEN, Mode::Free, Scope::All) else {
        return;
    };
    let mut bad = r.clone();
    // The upstream artefact: one side over the last token only.
    let width = bad.layers[3].sites["ffn_swigl"].width;
    bad.layers[3].sites.get_mut("ffn_swigl").unwrap().paths.get_mut("f32").unwrap().count = width;
    let v = evaluate(&bad, &all_contracts(), &PathMapping::default());
    assert!(!v.passed());
    let t = test(&v, "FALSIFY-APR-GGUF-PARITY-007");
    assert_eq!(t.outcome, Outcome::Fail);
    let f = t.first_failure.as_ref().unwrap();
    assert_eq!((f.layer, f.site.as_str()), (Some(3), "ffn_swiglu_inner"));
    assert_eq!(f.counts[0].count, Some(width));
    assert_eq!(f.counts[1].count, Some(width * 7));
    // The ratio at that point is refused, never computed.
    for id in ["FALSIFY-APR-GGUF-PARITY-002", "PARALLAX-PARITY-012"] {
        let t = test(&v, id);
        assert_eq!(t.outcome, Outcome::Refused, "{id}: {t:?}");
        assert!(
            t.notes.iter().any(|n| n.contains("FALSIFY-007") && n.contains("layer 3")),
            "{id}: {:?}",
            t.notes
        );
    }
    let d = v.first_divergence.as_ref().unwrap();
    assert_eq!((d.at.layer, d.at.site.as_str()), (Some(3), "ffn_swigl"), "{d:?}");
}

#[test]
fn the_op_alone_tells_root_from_propagated() {
    let Some(r) = report(QWEN, Mode::Free, Scope::All) else {
        return;
    };
    let v = evaluate(r, &all_contracts(), &PathMapping::default());
    assert!(v.passed(), "{}", verdict_lines(&v).join("\n"));
    // The default contract without its explanations: every band judged strictly.
    let strict = vec![Contract::from_yaml_str(
        &parallax_judge::contract::PARALLAX_DEFAULT_YAML
            .replace("  explained_by: PARALLAX-PARITY-017\n", ""),
    )
    .unwrap()];
    // Accumulated error at layer 2's gate leaves the band, the op alone does not: propagated.
    let mut bad = r.clone();
    let site = bad.layers[2].sites.get_mut("ffn_gate").unwrap();
    site.compare.get_mut("q8").unwrap().cosine = Some(0.9);
    let v = evaluate(&bad, &strict, &PathMapping::default());
    let d = v.first_divergence.clone().unwrap();
    assert_eq!(
        (d.test.as_str(), d.at.layer, d.at.site.as_str()),
        ("PARALLAX-PARITY-011", Some(2), "ffn_gate")
    );
    assert_eq!(d.cause, Cause::Propagated, "{d:?}");
    assert!(d.local_value.unwrap() > 0.999);
    // With the explanation, the same report passes: the op added only its noise.
    let v = evaluate(&bad, &default_contracts(), &PathMapping::default());
    assert_eq!(test(&v, "PARALLAX-PARITY-011").outcome, Outcome::Explained);
    assert!(v.first_divergence.is_none());
    // The op alone leaves it too: root.
    bad.layers[2].sites.get_mut("ffn_gate").unwrap().local.get_mut("q8").unwrap().cosine =
        Some(0.9);
    let d = evaluate(&bad, &strict, &PathMapping::default()).first_divergence.unwrap();
    assert_eq!(d.cause, Cause::Root, "{d:?}");
    // An earlier site's failure becomes the first divergence.
    bad.layers[1].sites.get_mut("k").unwrap().compare.get_mut("q8").unwrap().rel_l2 = Some(0.5);
    let d = evaluate(&bad, &strict, &PathMapping::default()).first_divergence.unwrap();
    assert_eq!(
        (d.at.layer, d.at.site.as_str(), d.test.as_str()),
        (Some(1), "k", "PARALLAX-PARITY-010")
    );
}

/// Replay mode starts every layer of every path from the reference's residual stream: each
/// layer shows its own divergence, nothing carried from the layers before.
#[test]
fn replay_shows_each_layer_alone() {
    let (Some(free), Some(replay)) =
        (report(QWEN, Mode::Free, Scope::All), report(QWEN, Mode::Replay, Scope::All))
    else {
        return;
    };
    let rel = |r: &Report, l: usize, s: &str| r.layers[l].sites[s].compare["q8"].rel_l2.unwrap();
    let last = free.layers.len() - 1;
    // Layer 0 starts from the same embedding either way.
    assert_eq!(rel(free, 0, "resid_ffn"), rel(replay, 0, "resid_ffn"));
    // Later, the free run carries every earlier layer's noise; replay only the layer's own.
    assert!(
        rel(replay, last, "attn_norm") < 0.5 * rel(free, last, "attn_norm"),
        "replay {} free {}",
        rel(replay, last, "attn_norm"),
        rel(free, last, "attn_norm")
    );
    // The op-alone comparison does not depend on the mode.
    let local = |r: &Report| r.layers[0].sites["ffn_down"].local["q8"].rel_l2.unwrap();
    assert_eq!(local(free), local(replay));
    let v = evaluate(replay, &all_contracts(), &PathMapping::default());
    assert!(v.passed(), "{}", verdict_lines(&v).join("\n"));
}

#[test]
fn malformed_contracts_name_the_test_and_the_problem() {
    let base = upstream_text();
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace(
                "ffn_gate_stats.std / gguf_layer[3].ffn_gate_stats.std",
                "ffn_gate_stats.std / gguf_layer[3].ffn_gait_stats.std",
            ),
            "FALSIFY-APR-GGUF-PARITY-003",
        ),
        (
            base.replace(
                "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ∈ [0.5, 2.0]",
                "apr_layer[3].ffn_swigl_stats.std / gguf_layer[3].ffn_swigl_stats.std ≈ 1",
            ),
            "FALSIFY-APR-GGUF-PARITY-002",
        ),
        (
            base.replace("ffn_silu_gate, ffn_swiglu_inner", "ffn_silu_gate, ffn_swiggle"),
            "FALSIFY-APR-GGUF-PARITY-007",
        ),
    ];
    for (text, id) in &cases {
        assert_ne!(text, &base, "the corruption for {id} must apply");
        let e = Contract::from_yaml_str(text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(id), "{msg}");
    }
    let e = Contract::from_yaml_str(
        &base.replace("ffn_silu_gate, ffn_swiglu_inner", "ffn_silu_gate, ffn_swiggle"),
    )
    .unwrap_err();
    assert!(matches!(&e, ContractError::UnknownSite { site, .. } if site == "ffn_swiggle"), "{e}");
    assert!(e.to_string().contains("ffn_swigl"), "lists the known sites: {e}");
    let e = Contract::from_yaml_str("falsification_tests:\n- id: X-1\n  rule: r\n").unwrap_err();
    assert_eq!(e.to_string(), "X-1: the test has no `prediction`");
    assert!(matches!(Contract::from_yaml_str("metadata: [unclosed"), Err(ContractError::Yaml(_))));
    assert!(matches!(
        Contract::from_yaml_str("metadata: {version: 1}"),
        Err(ContractError::NoTests)
    ));
    let dup = "falsification_tests:\n- {id: A, rule: r, prediction: x}\n- {id: A, rule: r, prediction: x}\n";
    assert_eq!(Contract::from_yaml_str(dup).unwrap_err(), ContractError::DuplicateId("A".into()));
}

#[test]
fn upstream_traces_import_and_are_refused_without_counts() {
    let dir = shared().join("fixtures/apr");
    let read = |f: &str| parse_trace(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap();
    let apr = read("apr-trace-payload.tiny-qwen2.f32.apr.txt");
    let gguf = read("apr-trace-payload.tiny-qwen2.gguf.txt");
    let raw = read("apr-trace-payload.tiny-qwen2.raw.apr.txt");
    for t in [&apr, &gguf, &raw] {
        assert_eq!(t.format, TraceFormat::AprPayload);
        assert_eq!(t.layers.len(), 2);
        assert_eq!(t.layers[0].sites.len(), 10);
        assert_eq!(t.tokens.as_deref(), Some(&[87u32, 104, 97, 116, 105, 115, 50, 43, 50, 63][..]));
        assert!(t.layers.iter().flat_map(|l| &l.sites).all(|s| s.count.is_none()));
    }
    assert_eq!(apr.stat(Some(1), "ffn_swigl").unwrap().std, Some(0.0008));
    assert_eq!(gguf.stat(Some(0), "qkv").unwrap().std, Some(0.0381));
    assert_eq!(gguf.embed.as_ref().unwrap().std, Some(0.0484));
    assert_eq!(apr.final_norm.as_ref().unwrap().min, Some(-0.272256));

    // Judge upstream's own pair of traces with the contract, beside a Parallax run of the same
    // tiny model on the same tokens: every ratio is refused (no counts), not passed.
    let Some(path) = Some(dir.join("tiny-qwen2.gguf")) else {
        return;
    };
    let r = run_at(path, apr.tokens.clone(), Mode::Free, Scope::All);
    let mapping = PathMapping::parse("apr=apr-trace,gguf=gguf-trace").unwrap();
    let v = evaluate_with_traces(
        &r,
        &[("apr-trace", &apr), ("gguf-trace", &gguf)],
        &[upstream()],
        &mapping,
    );
    eprintln!("{}", verdict_lines(&v).join("\n"));
    for id in ["001", "007"] {
        let t = test(&v, &format!("FALSIFY-APR-GGUF-PARITY-{id}"));
        assert_eq!(t.outcome, Outcome::Refused, "{id}: {t:?}");
        assert!(t.notes.iter().any(|n| n.contains("no element count")), "{id}: {:?}", t.notes);
    }
    // 002 and 003 name layer 3; the tiny model has 2.
    for id in ["002", "003"] {
        let t = test(&v, &format!("FALSIFY-APR-GGUF-PARITY-{id}"));
        assert_eq!(t.outcome, Outcome::NotMeasurable, "{id}");
        assert!(t.notes[0].contains("has 2 layers"), "{:?}", t.notes);
    }
    assert!(!v.passed());
    // A trace of another prompt is refused as a different sample.
    let mut other = apr.clone();
    other.tokens = Some(vec![1, 2, 3]);
    let v = evaluate_with_traces(
        &r,
        &[("apr-trace", &other)],
        &[upstream()],
        &PathMapping::parse("apr=apr-trace").unwrap(),
    );
    assert!(test(&v, "FALSIFY-APR-GGUF-PARITY-001")
        .notes
        .iter()
        .any(|n| n.contains("different prompts")));
}

#[test]
fn llama_eval_callback_trace_with_unequal_counts_is_refused() {
    // A llama.cpp trace covers every prompt token; a report in last-token scope covers one.
    let Some(r) = report(QWEN, Mode::Free, Scope::Last) else {
        return;
    };
    let n = r.prompt.tokens.len() as u64;
    let mut text = String::new();
    for l in 0..r.layers.len() {
        for (name, site) in [("ffn_gate", "ffn_gate"), ("ffn_gate_par", "ffn_swigl")] {
            let w = r.layers[l].sites[site].width;
            text.push_str(&format!(
                "ggml_debug: {name}-{l} = (f32) MUL_MAT(a{{1, 1, 1, 1}}, b{{1, 1, 1, 1}}}}) = {{{w}, {n}, 1, 1}}\n    [ ... ]\n    sum = 1.5\n"
            ));
        }
    }
    let trace = parse_trace(&text).unwrap();
    assert_eq!(trace.format, TraceFormat::LlamaEvalCallback);
    let w = r.layers[0].sites["ffn_gate"].width;
    assert_eq!(trace.stat(Some(0), "ffn_gate").unwrap().count, Some(w * n));
    let mapping = PathMapping::default().with("gguf", "llama");
    let v = evaluate_with_traces(r, &[("llama", &trace)], &[upstream()], &mapping);
    let t = test(&v, "FALSIFY-APR-GGUF-PARITY-003");
    assert_eq!(t.outcome, Outcome::Refused, "{t:?}");
    assert!(
        t.notes
            .iter()
            .any(|x| x.contains("unequal samples") && x.contains(&format!("n={}", w * n))),
        "{:?}",
        t.notes
    );
    let t = test(&v, "FALSIFY-APR-GGUF-PARITY-007");
    assert_eq!(t.outcome, Outcome::Fail);
    // Sites the trace lacks are listed, not judged.
    assert!(t.notes.iter().any(|x| x.contains("has no")), "{:?}", t.notes);
}
