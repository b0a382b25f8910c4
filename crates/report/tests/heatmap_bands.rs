//! The site × layer heatmaps class each cell against the contract band that judges it, on a
//! scale that is the same in every report: on the demo model's reports (written by the CLI with
//! the default contract, `crates/judge/tests/fixtures`), the injected fault's cells are drawn
//! outside their band, a healthy run has none, and a cell both runs share is drawn alike.

use parallax_report::verdict::Outcome;
use parallax_report::{html, Report};

const HEALTHY: &str = include_str!("../../judge/tests/fixtures/healthy.json");
const FAULT: &str = include_str!("../../judge/tests/fixtures/inject-q4k-scales-1-ffn_gate.json");

/// One drawn cell of a heatmap: its class and hover text.
#[derive(Debug, PartialEq)]
struct Cell {
    class: String,
    title: String,
}

/// The cells of one metric's heatmap (the `<rect>`s with a `layer …` hover), in drawing order.
fn cells(page: &str, metric: &str) -> Vec<Cell> {
    let open = format!("<figure class=\"px-hm px-hm-{metric}\">");
    let start = page.find(&open).unwrap_or_else(|| panic!("no {metric} heatmap"));
    let figure = &page[start..start + page[start..].find("</figure>").unwrap()];
    figure
        .split("<rect class=\"")
        .skip(1)
        .filter_map(|rest| {
            let class = &rest[..rest.find('"')?];
            let title = rest.split_once("<title>")?.1.split_once("</title>")?.0;
            title.starts_with("layer ").then(|| Cell { class: class.into(), title: title.into() })
        })
        .collect()
}

fn at<'a>(cells: &'a [Cell], layer: u32, site: &str) -> &'a Cell {
    let head = format!("layer {layer} · {site} · ");
    cells.iter().find(|c| c.title.starts_with(&head)).unwrap_or_else(|| panic!("no cell {head}"))
}

fn render(json: &str) -> (Report, String) {
    let r = Report::from_json(json).unwrap();
    let page = html::render_standalone(&r);
    (r, page)
}

#[test]
fn the_injected_faults_cells_are_drawn_outside_their_band() {
    let (r, page) = render(FAULT);
    let first = r.verdicts.as_ref().unwrap().first_divergence.as_ref().unwrap();
    assert_eq!((first.at.layer, first.at.site.as_str()), (Some(1), "ffn_gate"));
    for metric in ["cosine", "rel_l2"] {
        let cells = cells(&page, metric);
        let gate = at(&cells, 1, "ffn_gate");
        assert_eq!(gate.class, "px-h-out", "{metric}: {}", gate.title);
        assert!(gate.title.contains("FAIL) · outside the band · "), "{}", gate.title);
        // Upstream of the fault, layer 0 is inside its bands.
        assert!(cells
            .iter()
            .filter(|c| c.title.starts_with("layer 0 "))
            .all(|c| c.class != "px-h-out"));
    }
    let rel = cells(&page, "rel_l2");
    assert!(at(&rel, 1, "ffn_gate").title.contains(" · band ≤ 0.27 (PARALLAX-PARITY-010, FAIL)"));
    // Every cell the verdicts fail is crossed as well as coloured.
    let out = rel.iter().filter(|c| c.class == "px-h-out").count();
    let figure = &page[page.find("px-hm px-hm-rel_l2").unwrap()..];
    let figure = &figure[..figure.find("</figure>").unwrap()];
    // The colour bar's swatch carries one more cross.
    assert_eq!(figure.matches("<path class=\"px-h-mark\" d=\"M").count(), out + 2);
    let failed: u32 = r
        .verdicts
        .as_ref()
        .unwrap()
        .contracts
        .iter()
        .flat_map(|c| &c.tests)
        .filter(|t| t.compare_band.as_ref().is_some_and(|b| b.metric == "rel_l2"))
        .filter(|t| t.outcome == Outcome::Fail)
        .map(|t| t.failed)
        .sum();
    assert_eq!(out as u32, failed, "cells drawn outside against points the judge failed");
}

#[test]
fn a_healthy_run_draws_no_cell_outside_its_band() {
    let (_, page) = render(HEALTHY);
    for metric in ["cosine", "sqnr", "rel_l2", "ratio", "noise"] {
        let cells = cells(&page, metric);
        assert!(!cells.is_empty(), "{metric}");
        for c in &cells {
            assert!(!matches!(c.class.as_str(), "px-h-out" | "px-h-expl"), "{metric}: {c:?}");
            assert!(!c.title.contains("outside"), "{metric}: {c:?}");
        }
    }
    assert!(page.contains("0 cells outside, 0 outside but explained"));
    // Banded sites say their band in the hover.
    let cos = cells(&page, "cosine");
    assert!(at(&cos, 2, "resid_ffn").title.contains("band ≥ 0.998 (PARALLAX-PARITY-007, PASS) · "));
    assert!(!page.contains("<script"), "the standalone report stays script-free");
    assert!(!page.contains("Darker"), "no caption relies on the theme's lightness");
}

/// The scale is fixed: the fault run spans far more than the healthy one, yet the cells before
/// the fault (layer 0, the same numbers in both runs) are drawn exactly alike.
#[test]
fn a_cell_is_drawn_the_same_in_reports_of_different_ranges() {
    let (_, healthy) = render(HEALTHY);
    let (_, fault) = render(FAULT);
    for metric in ["cosine", "sqnr", "rel_l2", "ratio", "noise"] {
        let (h, f) = (cells(&healthy, metric), cells(&fault, metric));
        let layer0 = |cells: &[Cell]| -> Vec<String> {
            cells
                .iter()
                .filter(|c| c.title.starts_with("layer 0 "))
                // Layer, site, value: the band's test outcome differs between the runs.
                .map(|c| {
                    format!(
                        "{} {}",
                        c.class,
                        c.title.splitn(4, " · ").take(3).collect::<Vec<_>>().join(" · ")
                    )
                })
                .collect()
        };
        assert!(!layer0(&h).is_empty());
        assert_eq!(layer0(&h), layer0(&f), "{metric}");
    }
}
