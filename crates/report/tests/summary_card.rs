//! A report opens with the answer: a summary card (verdict, first divergence, next-token
//! agreement, a sparkline per path) before the first chart, and verdict tables that show what
//! failed first and fold the passes and the not-measurable tests away under their count. On
//! the demo model's reports written by the CLI with the default contract
//! (`crates/judge/tests/fixtures`).

use parallax_report::verdict::Outcome;
use parallax_report::{html, Report};

const HEALTHY: &str = include_str!("../../judge/tests/fixtures/healthy.json");
const FAULT: &str = include_str!("../../judge/tests/fixtures/inject-q4k-scales-1-ffn_gate.json");

fn render(json: &str) -> (Report, String) {
    let r = Report::from_json(json).unwrap();
    let page = html::render_standalone(&r);
    (r, page)
}

/// The markup from `start` to the first `end` after it.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let a = page.find(start).unwrap_or_else(|| panic!("no {start}"));
    let b = a + page[a..].find(end).unwrap_or_else(|| panic!("no {end} after {start}"));
    &page[a..b]
}

/// The sparkline's cells, one per layer, as (class, hover).
fn spark_cells(card: &str) -> Vec<(String, String)> {
    let svg = between(card, "<svg class=\"px-spark\"", "</svg>");
    svg.split("<rect class=\"")
        .skip(1)
        .map(|rest| {
            let class = rest.split_once('"').unwrap().0;
            let title = rest.split_once("<title>").unwrap().1.split_once("</title>").unwrap().0;
            (class.to_string(), title.to_string())
        })
        .collect()
}

#[test]
fn the_card_comes_first_and_names_the_fault() {
    let (r, page) = render(FAULT);
    let card = between(&page, "<section class=\"px-summary-card px-verdicts\">", "</section>");
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    assert!(at("<header class=\"px-head\">") < at("<section class=\"px-summary-card"));
    assert!(
        at("<section class=\"px-summary-card") < at("<section class=\"px-chart px-distance\">")
    );
    assert!(card.contains("<h3>Verdict: <span class=\"fail\">FAIL</span></h3>"), "{card}");
    let d = r.verdicts.as_ref().unwrap().first_divergence.as_ref().unwrap();
    let divergence = between(card, "<div class=\"px-callout px-first-divergence\">", "</div>");
    assert!(divergence.contains("First divergence: layer 1 ffn_gate"), "{divergence}");
    assert!(divergence.contains(&format!("{:.6}", d.at.value.unwrap())), "the value: {divergence}");
    assert!(divergence.contains(&format!("band {}", html_text(&d.band))), "the band: {divergence}");
    // The next token, from the report's logits comparison.
    let c = &r.logits.compare["q8"];
    let next = between(card, "<p class=\"px-next-token\">", "</p>");
    let word = if c.top1_agree { "same" } else { "different" };
    assert!(next.contains(&format!(">{word}</span>")), "{next}");
    assert!(next.contains(&format!("top-10 overlap {}/10", c.top10_overlap)), "{next}");
    // One cell per layer; the fault's layer is crossed out, the one before it is not.
    let cells = spark_cells(card);
    assert_eq!(cells.len(), r.layers.len(), "{cells:?}");
    assert!(cells[1].0.contains("px-spark-out") && cells[1].1.starts_with("layer 1 · worst: "));
    assert!(cells[1].1.ends_with("outside the band"), "{}", cells[1].1);
    assert!(!cells[0].0.contains("px-spark-out"), "{:?}", cells[0]);
    assert!(card.contains("layers leave their band"));
}

#[test]
fn a_healthy_card_has_no_divergence_and_no_failing_cell() {
    let (r, page) = render(HEALTHY);
    let card = between(&page, "<section class=\"px-summary-card px-verdicts\">", "</section>");
    assert!(card.contains("<h3>Verdict: <span class=\"pass\">PASS</span></h3>"));
    assert!(card.contains("<b>No divergence:</b>"), "{card}");
    assert!(!card.contains("px-callout"));
    let cells = spark_cells(card);
    assert_eq!(cells.len(), r.layers.len());
    assert!(cells.iter().all(|(class, _)| class == "px-spark-cell"), "{cells:?}");
    assert!(card.contains("Every point lies inside its band."));
}

/// `&`, `<`, `>` and quotes as the renderer writes them in text.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[test]
fn failures_come_first_and_the_passes_fold_away_under_their_count() {
    for json in [FAULT, HEALTHY] {
        let (r, page) = render(json);
        let v = r.verdicts.as_ref().unwrap();
        let tables =
            between(&page, "<section class=\"px-verdicts px-verdict-tables\">", "</section>");
        for c in &v.contracts {
            let count = |o: Outcome| c.tests.iter().filter(|t| t.outcome == o).count();
            let start = tables.find(&format!("<h4>{}", c.name)).unwrap();
            let rest = &tables[start + 4..];
            let contract = &rest[..rest.find("<h4>").unwrap_or(rest.len())];
            // Every test appears once, open or folded.
            for t in &c.tests {
                assert_eq!(
                    contract.matches(&format!("<code>{}</code>", t.id)).count(),
                    1,
                    "{}",
                    t.id
                );
            }
            let (open, folded) = contract.split_once("<details").unwrap_or((contract, ""));
            let folds = count(Outcome::Pass) + count(Outcome::NotMeasurable);
            if folds > 0 {
                let summary = between(folded, "<summary>", "</summary>");
                assert!(
                    summary.contains(&format!("{} passed", count(Outcome::Pass)))
                        || count(Outcome::Pass) == 0,
                    "{summary}"
                );
                assert!(summary.ends_with(" — show"), "{summary}");
                assert!(!folded.contains(">FAIL</td>") && !folded.contains(">REFUSED</td>"));
            } else {
                assert!(folded.is_empty());
            }
            assert!(!open.contains(">PASS</td>") && !open.contains(">NOT MEASURABLE</td>"));
            assert_eq!(open.matches(">FAIL</td>").count(), count(Outcome::Fail), "{open}");
            // What failed comes before what was refused.
            if let (Some(f), Some(re)) = (open.rfind(">FAIL</td>"), open.find(">REFUSED</td>")) {
                assert!(f < re);
            }
        }
        if json == FAULT {
            assert!(v.contracts.iter().any(|c| c.tests.iter().any(|t| t.outcome == Outcome::Fail)));
        }
    }
}
