//! Every layer site of the one site table (`parallax_metrics::sites`) is drawn: it has a legend
//! toggle of its own class (not the neutral `s-other`) and the stylesheet colours it.

use parallax_metrics::sites::{layer_sites, LAYER_SITES};
use parallax_report::{html, site_css, Report};

const SEED: &str = include_str!("../../../fuzz/corpus/report_json/tiny-report.json");

#[test]
fn every_layer_site_gets_its_legend_toggle_and_colours() {
    let mut r = Report::from_json(SEED).unwrap();
    // The seed is a Qwen2 run; name Gemma 3's post-norms too, so every site of the table is drawn.
    r.site_order = LAYER_SITES.iter().map(|s| s.to_string()).collect();
    let page = html::render_fragment(&r);
    let css = site_css();
    for s in layer_sites(true) {
        let n = s.name;
        let toggle = format!(
            "<label class=\"s-{n}\"><input type=\"checkbox\" class=\"px-toggle\" data-site=\"{n}\""
        );
        assert!(page.contains(&toggle), "no legend toggle for {n}");
        assert!(css.charts.contains(&format!("--px-{n}: ")), "no colour for {n}");
        assert!(html::REPORT_CSS.contains(&format!(".s-{n} .px-swatch ")), "{n} not in report.css");
    }
}
