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

/// The σ-ratio chart's "Show" choice: every site can be shown alone (an option and its rule),
/// and by default the chart shows the key series: the residual streams and the sites that leave
/// a band where the paths first part (the faulty demo's ffn_gate, whose σ ratio stays inside its
/// band but whose cosine does not, is tested in tests/browser/first_screen.test.mjs); the others
/// wait for "all sites".
#[test]
fn the_ratio_chart_shows_key_sites_first_and_offers_each_site_alone() {
    let r = Report::from_json(SEED).unwrap();
    let page = html::render_fragment(&r);
    let css = site_css();
    assert!(
        page.contains("<option value=\"key\" selected>key sites</option>"),
        "key sites are the default"
    );
    for site in &r.site_order {
        assert!(page.contains(&format!("<option value=\"only-{site}\">only ")), "no 'only {site}'");
        assert!(
            css.charts.contains(&format!(
                "option[value=\"only-{site}\"]:checked) .px-series:not(.s-{site})"
            )),
            "no rule shows {site} alone"
        );
    }
    let other = r.paths.iter().find(|p| **p != r.reference).unwrap();
    let chart = parallax_report::html::RatioChart::new(&r, other).unwrap();
    assert!(
        chart.key.iter().any(|s| s == "resid_attn") && chart.key.iter().any(|s| s == "resid_ffn")
    );
    for (site, _) in &chart.series {
        let key = chart.key.contains(site);
        let g = format!("<g class=\"px-series s-{site}{}\">", if key { " px-key" } else { "" });
        assert!(page.contains(&g), "{site}: expected {g}");
    }
    assert!(chart.key.len() < chart.series.len(), "{:?} of {}", chart.key, chart.series.len());
    // Its values as text: a folded table, a column per site and a row per layer.
    let start = page.find("<section class=\"px-chart\"><h3>σ ratio").unwrap();
    let section = &page[start..start + page[start..].find("</section>").unwrap()];
    let table = section.split_once("<details class=\"px-table-view\">").expect("a table view").1;
    assert_eq!(table.matches("<th>").count(), 1 + chart.series.len());
    assert_eq!(table.matches("<tr>").count(), 1 + r.layers.len());
}
