//! The report's first chart is the distance from the reference per layer: on the demo model's
//! reports (written by the CLI with the default contract, `crates/judge/tests/fixtures`), the
//! injected fault's layer is drawn outside its band, a healthy run has no failing point, and the
//! chart comes before the σ-ratio chart and the verdict tables, after the verdict line.

use parallax_report::{html, Report};

const HEALTHY: &str = include_str!("../../judge/tests/fixtures/healthy.json");
const FAULT: &str = include_str!("../../judge/tests/fixtures/inject-q4k-scales-1-ffn_gate.json");

/// One drawn point of the distance chart: its hover text and whether it carries the failing mark.
#[derive(Debug)]
struct Point {
    title: String,
    failing: bool,
    explained: bool,
}

fn render(json: &str) -> String {
    html::render_standalone(&Report::from_json(json).unwrap())
}

/// The points of the distance chart of `page`, in drawing order.
fn points(page: &str) -> Vec<Point> {
    let start = page.find("<section class=\"px-chart px-distance\">").expect("a distance chart");
    let section = &page[start..start + page[start..].find("</section>").unwrap()];
    section
        .split("<g class=\"px-dist-point\">")
        .skip(1)
        .map(|rest| {
            let point = &rest[..rest.find("</g>").unwrap()];
            let title = point.split_once("<title>").unwrap().1.split_once("</title>").unwrap().0;
            Point {
                title: title.into(),
                failing: point.contains("class=\"px-dist-out\""),
                explained: point.contains("class=\"px-dist-expl\""),
            }
        })
        .collect()
}

#[test]
fn the_fault_layer_is_drawn_outside_its_band() {
    let points = points(&render(FAULT));
    // Two series over the fixture's 3 layers.
    assert_eq!(points.len(), 2 * 3);
    let layer = |l: u32| points.iter().filter(move |p| p.title.starts_with(&format!("layer {l} ")));
    assert!(layer(1).all(|p| p.failing), "{points:#?}");
    for p in layer(1) {
        assert!(p.title.contains(" · outside the band · "), "{}", p.title);
        assert!(p.title.contains("FAIL)"), "{}", p.title);
        assert!(p.title.ends_with(" values"), "the element count: {}", p.title);
    }
    // Upstream of the fault, nothing leaves its band.
    assert!(layer(0).all(|p| !p.failing && !p.explained), "{points:#?}");
    // The residual stream series names its site; the worst site is named in its hover.
    assert!(points.iter().any(|p| p.title.starts_with("layer 1 · resid_ffn (residual stream)")));
    assert!(points.iter().any(|p| p.title.contains("(worst op of the layer)")));
}

#[test]
fn a_healthy_run_has_no_failing_point() {
    let page = render(HEALTHY);
    let points = points(&page);
    assert_eq!(points.len(), 2 * 3);
    assert!(points.iter().all(|p| !p.failing && !p.explained), "{points:#?}");
    assert!(points.iter().all(|p| p.title.contains(" · band ")), "every point has its band");
    assert!(page.contains("every point lies inside its band"));
}

#[test]
fn the_distance_chart_comes_first() {
    for page in [render(FAULT), render(HEALTHY)] {
        let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("no {needle}"));
        let verdict = at("<h3>Verdict: ");
        let distance = at("<section class=\"px-chart px-distance\">");
        let tables = at("<section class=\"px-verdicts px-verdict-tables\">");
        let ratio = at("<h3>σ ratio q8 / f32 per layer</h3>");
        assert!(verdict < distance, "the verdict line stays on top");
        assert!(distance < tables, "the chart before the verdict tables");
        assert!(distance < ratio, "the chart before the σ-ratio chart");
    }
    // The first-divergence callout stays above the chart too.
    let page = render(FAULT);
    assert!(page.find("px-callout").unwrap() < page.find("px-distance").unwrap());
}

/// The chart's values are there as text too: a folded table under the chart with a row per
/// drawn point, which says the same as the point's hover (layer, site, value, standing).
#[test]
fn the_distance_chart_has_its_values_as_a_table() {
    let page = render(FAULT);
    let start = page.find("<section class=\"px-chart px-distance\">").unwrap();
    let section = &page[start..start + page[start..].find("</section>").unwrap()];
    let table = section.split_once("<details class=\"px-table-view\">").expect("a table view").1;
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), points(&page).len(), "a row per point");
    let failing: Vec<&&str> =
        rows.iter().filter(|r| r.contains("<td>outside the band</td>")).collect();
    // As the chart draws it: layer 1 (the fault) and what follows fail, layer 0 does not.
    assert!(failing.iter().any(|r| r.starts_with("<td>1</td>")), "{failing:?}");
    assert!(!failing.iter().any(|r| r.starts_with("<td>0</td>")), "{failing:?}");
    assert!(rows
        .iter()
        .any(|r| r.starts_with("<td>1</td><td>residual stream</td><td>resid_ffn</td>")));
}

/// The answer the page shows before the whole report is drawn is the fragment's opening, byte
/// for byte (so nothing moves when the report replaces it), holds the verdict, the first
/// divergence and the distance chart, and none of what comes after them.
#[test]
fn the_answer_is_the_fragments_opening() {
    for json in [HEALTHY, FAULT] {
        let r = Report::from_json(json).unwrap();
        let answer = html::render_answer(&r);
        let fragment = html::render_fragment(&r);
        let opening = answer.strip_suffix("</div>\n").expect("the answer is one closed div");
        assert!(fragment.starts_with(opening), "the fragment does not open with the answer");
        assert!(fragment.len() > 4 * answer.len(), "the answer is not the short part");
        for part in ["px-summary-card px-verdicts", "px-first-divergence", "px-chart px-distance"] {
            assert!(answer.contains(part), "the answer lacks {part}");
        }
        for later in ["px-ratio", "px-hm"] {
            assert!(!answer.contains(later), "the answer holds {later}");
            assert!(fragment.contains(later), "the fragment lacks {later}");
        }
    }
}
