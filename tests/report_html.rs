//! The shared HTML renderer on a real report: charts for every layer and site, no script, and
//! hostile strings from a model file rendered as text.

use parallax_engine::{Run, RunInput, RunOptions};
use parallax_model::Model;
use parallax_report::html::{render_fragment, render_standalone};
use parallax_source::FileSource;
use parallax_tests::{model_path, GEMMA_270M, QWEN_0_5B};

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
    // One ratio point per (layer, site) with a value, each with its hover title (the points
    // take four shapes, so their titles are what is counted).
    let points = html.matches(" · ratio ").count();
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
    report.token_text.insert(3838, evil.into());
    for html in [render_standalone(&report), render_fragment(&report)] {
        assert!(!html.to_ascii_lowercase().contains("<script"), "hostile text became markup");
        assert!(!html.contains("<img"), "hostile text became markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}

/// A report as both front ends make it with the page's default settings: the prompt the
/// contracts are written for, paths f32 and q8, judged by the default contracts, stamped.
fn default_report(model: &std::path::Path, faults: &[&str]) -> parallax_report::Report {
    use parallax_session::{RunRequest, RunSpec};
    let spec = RunSpec::from_request(&RunRequest {
        prompt: Some("What is 2+2?".into()),
        paths: vec!["f32".into(), "q8".into()],
        faults: faults.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    })
    .unwrap();
    let model = Model::open(FileSource::open(model).unwrap()).unwrap();
    let input = spec.input(&model).unwrap();
    let mut report = Run::new(&model, &input, &spec.options()).run().unwrap();
    spec.stamp(&mut report, 1_748_781_296, 1);
    spec.judge(&mut report);
    report
}

/// The permalink of `report` redraws exactly the view of the full report, and carries its
/// verdicts as judged, not judged again. Returns the link's length in characters.
fn assert_permalink_redraws(report: &parallax_report::Report, what: &str) -> usize {
    use parallax_report::permalink;
    let link = permalink::encode(report);
    let back = permalink::decode(&format!("#r={link}")).unwrap();
    assert!(back == permalink::slim(report), "{what}: the link does not restore the slim report");
    assert_eq!(back.verdicts, report.verdicts, "{what}: the verdicts travel as judged");
    let (view, linked) = (render_fragment(report), render_fragment(&back));
    if view != linked {
        let at = view.bytes().zip(linked.bytes()).take_while(|(a, b)| a == b).count();
        let context = |s: &str| {
            s.get(at.saturating_sub(80)..(at + 80).min(s.len())).unwrap_or("").to_string()
        };
        panic!(
            "{what}: the link draws another view, from byte {at}:\n  report: {}\n  link:   {}",
            context(&view),
            context(&linked)
        );
    }
    assert!(linked.contains("computed <time datetime=\"2025-06-01T12:34:56Z\">"), "{what}: dated");
    link.len()
}

/// The demo model's reports, healthy and faulty: the link redraws their views (no model needed).
#[test]
fn a_permalink_of_the_demo_reports_redraws_their_views() {
    let demo = parallax_tests::repo_root().join("www/demo/parallax-demo-qwen2.gguf");
    for (what, faults) in [("demo", &[][..]), ("faulty demo", &["q4k-scales@1:ffn_gate"][..])] {
        let report = default_report(&demo, faults);
        assert!(report.verdicts.is_some());
        let chars = assert_permalink_redraws(&report, what);
        eprintln!("{what}: permalink of {chars} characters");
    }
}

/// The 0.5B's report with the page's default settings — 24 layers of 14 sites, 2 paths, the
/// contracts' prompt — fits a link under 32 KiB (GitHub's issue comments take 65,536
/// characters; chat and mail clients cut long links), and the link redraws the same view.
#[test]
fn the_05b_permalink_is_under_32_kib_and_redraws_the_same_view() {
    let Some(path) = model_path(QWEN_0_5B) else { return };
    let report = default_report(&path, &[]);
    let chars = assert_permalink_redraws(&report, "0.5B");
    let full = report.to_json().len();
    eprintln!("0.5B: permalink of {chars} characters for a report of {full} bytes of JSON");
    assert!(chars < 32 * 1024, "the 0.5B's permalink is {chars} characters (limit 32768)");
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

/// Tokens read as words: the report carries the text of every token it names, as llama.cpp's
/// `token_to_piece` renders it (Tokenizer::token_piece, held to llama.cpp elsewhere) for every
/// id of both vocabularies, and the HTML shows that text — whitespace visible — instead of ids
/// or vocabulary strings (`Ġis`, `▁is`); predictions carry their probabilities.
#[test]
fn tokens_are_shown_as_the_words_they_stand_for() {
    for (file, prompt, marker) in
        [(QWEN_0_5B, "What is 2+2?", 'Ġ'), (GEMMA_270M, "What is 2+2?", '▁')]
    {
        let Some(path) = model_path(file) else { continue };
        let model = Model::open(FileSource::open(path).unwrap()).unwrap();
        let tokenizer = parallax_engine::tokenizer_for(&model).unwrap();
        let all: Vec<u32> = (0..tokenizer.n_tokens() as u32).collect();
        let texts = model.token_display_texts(&all).unwrap();
        let differ: Vec<u32> = all
            .iter()
            .zip(&texts)
            .filter(|(&id, text)| text.as_deref() != Some(&tokenizer.token_piece(id).unwrap()))
            .map(|(&id, _)| id)
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "{file}: ids {differ:?} read otherwise than the tokenizer's pieces"
        );

        let input = RunInput::from_prompt(&model, Some(prompt.into()), None).unwrap();
        let opts = RunOptions { paths: vec![parallax_engine::PathKind::F32], ..Default::default() };
        let report = Run::new(&model, &input, &opts).run().unwrap();
        for id in &input.tokens {
            assert!(report.token_text.contains_key(id), "{file}: prompt token {id} has no text");
        }
        let top = &report.logits.paths["f32"];
        assert_eq!(top.top_p.len(), top.top.len());
        assert!(
            top.top_p.windows(2).all(|w| w[0] >= w[1])
                && top.top_p.iter().sum::<f64>() <= 1.0 + 1e-9
        );
        let html = render_fragment(&report);
        assert!(!html.contains(marker), "{file}: a vocabulary marker {marker} is shown");
        assert!(html.contains("“⎵is”"), "{file}: the token \" is\" is not shown as “⎵is”");
        // Sites are named by the model's activation: Gemma's GELU is not called SiLU.
        let gelu = report.model.ffn_activation.as_deref() == Some("gelu_tanh");
        assert_eq!(gelu, file == GEMMA_270M);
        assert_eq!(html.contains(">ffn_geglu<"), gelu, "{file}: the GeGLU site's label");
        assert_eq!(html.contains(">ffn_swigl<"), !gelu, "{file}: the SwiGLU site's label");
        let top1 = top.top[0].0;
        let shown = format!("title=\"id {top1} · logit ");
        assert!(html.contains(&shown), "{file}: the top-1's id is not on its hover");
        eprintln!("{file}: top-1 {:?} at {:.1} %", report.token_text[&top1], 100.0 * top.top_p[0]);
    }
}

/// A heatmap cell opens that site up close: the faulty demo's layer-1 `ffn_gate` cell links to
/// a panel with the band it leaves, the matrix behind it, both paths' histograms and the
/// elements furthest apart, at prompt positions the run has. The standalone report holds the
/// panels (script-free); the view, and so a permalink, holds only the links.
#[test]
fn a_heat_cell_opens_its_site_up_close() {
    let demo = parallax_tests::repo_root().join("www/demo/parallax-demo-qwen2.gguf");
    let report = default_report(&demo, &["q4k-scales@1:ffn_gate"]);
    let site = &report.layers[1].sites["ffn_gate"];
    let detail = site.detail.as_ref().expect("the run records each site's detail");
    let tensor = detail.tensor.as_ref().expect("a matmul site names its matrix");
    assert_eq!((tensor.name.as_str(), tensor.ty.as_str()), ("blk.1.ffn_gate.weight", "Q4_K"));
    let n_tokens = report.prompt.tokens.len() as u32;
    for path in ["f32", "q8"] {
        let drawn: u64 = detail.histogram[path].iter().map(|&c| u64::from(c)).sum();
        let [below, above] = detail.beyond[path];
        assert_eq!(
            drawn + below + above,
            site.paths[path].count,
            "{path}: every value counted once"
        );
    }
    let worst = &detail.worst["q8"];
    assert_eq!(worst.len(), parallax_report::WORST_ELEMENTS);
    assert!(worst
        .windows(2)
        .all(|w| (w[0].path - w[0].reference).abs() >= (w[1].path - w[1].reference).abs()));
    assert!(worst.iter().all(|e| e.token < n_tokens && u64::from(e.index) < site.width));
    let largest = (worst[0].path - worst[0].reference).abs() as f64;
    let max_abs = site.compare["q8"].max_abs.unwrap();
    assert!((largest - max_abs).abs() <= 1e-6 * max_abs, "the worst element is max |Δ| {max_abs}");

    let html = render_standalone(&report);
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(html.contains("<a href=\"#px-why-q8-1-ffn_gate\" tabindex=\"-1\""), "the cell links");
    let at = html.find("id=\"px-why-q8-1-ffn_gate\"").expect("the panel");
    let panel = &html[at..at + html[at..].find("</section>").unwrap()];
    for part in [
        "Layer 1 · ffn_gate: q8 against f32",
        "<code>blk.1.ffn_gate.weight</code>, Q4_K",
        "<td class=\"fail\">outside the band</td>",
        "class=\"px-why-ref\" d=\"M0 ",
        "class=\"px-why-path\" d=\"M0 ",
        "The elements furthest from f32",
    ] {
        assert!(panel.contains(part), "the panel lacks {part:?}:\n{panel}");
    }
    assert_eq!(panel.matches("<tr><td>“").count(), parallax_report::WORST_ELEMENTS);
    // A panel per (layer, site) with a detail, and the view itself none.
    let sites: usize = report.layers.iter().map(|l| l.sites.len()).sum();
    assert_eq!(html.matches("class=\"px-why\" id=").count(), sites);
    assert!(!render_fragment(&report).contains("class=\"px-why\" id="));
    let linked = parallax_report::permalink::slim(&report);
    assert!(linked.layers.iter().all(|l| l.sites.values().all(|s| s.detail.is_none())));
    assert_eq!(parallax_report::html::render_cell_details(&linked), "");
}

/// The page's three renderings, each drawn once (`render_for_page`), are the bytes the render
/// functions give one by one, panels included.
#[test]
fn the_page_gets_the_same_renderings_drawn_once() {
    use parallax_report::html::{render_cell_details, render_for_page};
    let demo = parallax_tests::repo_root().join("www/demo/parallax-demo-qwen2.gguf");
    let report = default_report(&demo, &["q4k-scales@1:ffn_gate"]);
    let drawn = render_for_page(&report);
    assert!(!drawn.details.is_empty(), "a run's report carries its sites' panels");
    assert_eq!(drawn.fragment, render_fragment(&report));
    assert_eq!(drawn.details, render_cell_details(&report));
    assert_eq!(drawn.standalone, render_standalone(&report));
}
