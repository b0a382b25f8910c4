//! The shared HTML renderer on a real report: charts for every layer and site, no script, and
//! hostile strings from a model file rendered as text.

use std::sync::atomic::AtomicBool;

use parallax_engine::{run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_report::html::{render_fragment, render_standalone};
use parallax_source::FileSource;
use parallax_tests::{model_path, QWEN_0_5B};

#[test]
fn standalone_report_has_charts_no_script_and_escapes_hostile_strings() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let model = Model::open(FileSource::open(path).unwrap()).unwrap();
    let input = RunInput { tokens: vec![3838, 374, 220], pieces: vec!["What".into(), "Ġis".into(), "Ġ".into()], ..Default::default() };
    let mut report = run(&model, &input, &RunOptions::default(), &mut |_| {}, &AtomicBool::new(false)).unwrap();

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
    let report = run(&model, &input, &RunOptions::default(), &mut |_| {}, &AtomicBool::new(false)).unwrap();
    let link = parallax_report::permalink::encode(&report);
    assert!(link.len() < 150_000, "permalink payload is {} bytes", link.len());
    let back = parallax_report::permalink::decode(&format!("#r={link}")).unwrap();
    assert!(back == parallax_report::permalink::slim(&report), "the permalink does not restore the slim report exactly");
    // The view drawn from the link is the view drawn from the full report.
    assert_eq!(render_fragment(&back), render_fragment(&report));
    eprintln!("permalink payload: {} bytes for a 24-layer, 7-token report", link.len());
}
