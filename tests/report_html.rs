//! The shared HTML renderer on a real report: charts for every layer and site, no script, and
//! hostile strings from a model file rendered as text.

use parallax_engine::{Run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_report::html::{render_fragment, render_standalone};
use parallax_source::FileSource;
use parallax_tests::{model_path, QWEN_0_5B};

#[test]
fn standalone_report_has_charts_no_script_and_escapes_hostile_strings() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput {
        tokens: vec![3838, 374, 220],
        pieces: vec!["What".into(), "Ġis".into(), "Ġ".into()],
        ..Default::default()
    };
    let mut report = Run::new(&model, &input, &RunOptions::default()).run().unwrap();

    let html = render_standalone(&report);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    assert!(!html.to_ascii_lowercase().contains("<script"), "the report carries no script");
    // One ratio point per (layer, site) with a value, hover titles included.
    let points = html.matches("<circle").count();
    assert_eq!(points, 24 * report.site_order.len(), "one point per layer and site");
    assert!(html.contains("<title>layer 3 · ffn_swigl · ratio"));
    assert!(html.contains("all 3 tokens"), "the token scope is stated");
    for metric in ["cosine", "sqnr", "rel_l2", "ratio"] {
        assert!(html.contains(&format!("px-hm-{metric}")), "{metric} heatmap");
    }
    // The logits table shows the run's logit noise and the tie margin beside KL and top-1.
    let lc = &report.logits.compare["q8"];
    let (noise, margin) = (lc.logit_noise.unwrap(), lc.tie_margin.unwrap());
    assert!(html.contains("<th>logit noise σ</th><th>tie margin 3·√2·σ</th>"));
    assert!(
        html.contains(&format!("<td>{noise:.4}</td><td>{margin:.4}</td></tr>")),
        "noise {noise}"
    );

    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    report.model.name = Some(evil.into());
    report.model.file_name = evil.into();
    report.prompt.text = Some(evil.into());
    report.prompt.pieces[0] = evil.into();
    for html in [render_standalone(&report), render_fragment(&report)] {
        assert!(!html.to_ascii_lowercase().contains("<script"), "hostile text became markup");
        assert!(!html.contains("<img"), "hostile text became markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}

#[test]
fn permalink_round_trips_what_the_page_draws() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput { tokens: vec![3838, 374, 220, 17, 10, 17, 30], ..Default::default() };
    let report = Run::new(&model, &input, &RunOptions::default()).run().unwrap();
    let link = parallax_report::permalink::encode(&report);
    assert!(link.len() < 150_000, "permalink payload is {} bytes", link.len());
    let back = parallax_report::permalink::decode(&format!("#r={link}")).unwrap();
    assert!(
        back == parallax_report::permalink::slim(&report),
        "the permalink does not restore the slim report exactly"
    );
    // The view drawn from the link is the view drawn from the full report.
    assert_eq!(render_fragment(&back), render_fragment(&report));
    eprintln!("permalink payload: {} bytes for a 24-layer, 7-token report", link.len());
}

/// The σ-ratio chart shades the bands of the contracts the report was judged by — not a fixed
/// range — marks the points outside them, and says so when no contract bounds the ratio.
#[test]
fn ratio_chart_draws_the_judging_contracts_bands() {
    let demo = parallax_tests::repo_root().join("www/demo/parallax-demo-qwen2.gguf");
    let model = Model::open(FileSource::open(&demo).unwrap()).unwrap();
    let input = RunInput { tokens: vec![3838, 374, 220, 17, 10, 17, 30], ..Default::default() };
    let mut report = Run::new(&model, &input, &RunOptions::default()).run().unwrap();

    let unjudged = render_fragment(&report);
    assert!(unjudged.contains("No contract this report was judged by bounds this ratio"));
    assert!(!unjudged.contains("class=\"px-band\""));

    // Push one point of the default contract's all-site band [0.8, 1.25] out, and bring the
    // band into view.
    let gate = report.layers[1].sites.get_mut("ffn_gate").unwrap();
    gate.compare.get_mut("q8").unwrap().std_ratio = Some(1.5);
    let contracts = parallax_judge::default_contracts();
    report.verdicts = Some(parallax_judge::evaluate(
        &report,
        &contracts,
        &parallax_judge::PathMapping::default(),
    ));
    let html = render_fragment(&report);
    assert!(
        html.contains("<title>PARALLAX-PARITY-012 band [0.8, 1.25] at every site</title>"),
        "the default contract's band"
    );
    assert!(
        html.contains("FALSIFY-APR-GGUF-PARITY-001 band [0.5, 2] at ffn_swigl"),
        "upstream's band, oriented q8 / f32"
    );
    assert!(
        html.contains(
            "layer 1 · ffn_gate · ratio 1.500000 — outside [0.8, 1.25] (PARALLAX-PARITY-012)"
        ),
        "the out-of-band point names its band and test"
    );
    assert_eq!(html.matches("class=\"px-out\"").count(), 1, "only that point is out of band");
}
