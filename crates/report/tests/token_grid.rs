//! The per-token std grids draw every (position, layer) cell exactly once, in the colour of its
//! std on the grid's log scale, and each position's row carries its stds as its hover — on the
//! demo model's report written by the CLI (`crates/judge/tests/fixtures/healthy.json`). The cells
//! are drawn as one path per colour (a long prompt's grids were most of a report's bytes as one
//! `<rect>` each), so this reads the paths back into cells.

use std::collections::BTreeMap;

use parallax_report::html::{self, token_std_as_drawn};
use parallax_report::Report;

const HEALTHY: &str = include_str!("../../judge/tests/fixtures/healthy.json");

/// The grid's geometry (`charts::Grid` for the token grid): cell size, left edge of the cells,
/// top of the cells.
const CELL: f64 = 18.0;
const LEFT: f64 = 150.0;
const TOP: f64 = 20.0;

/// The classes each cell is drawn in, by (layer, position).
type Cells = BTreeMap<(usize, usize), Vec<String>>;

/// One site's figure: its cells from its paths, and its row hovers in order.
fn figure(page: &str, site: &str) -> (Cells, Vec<String>) {
    let open = format!("<figure class=\"px-tok px-tok-{site}\">");
    let start = page.find(&open).unwrap_or_else(|| panic!("no per-token grid for {site}"));
    let figure = &page[start..start + page[start..].find("</figure>").unwrap()];
    let mut cells = Cells::new();
    for rest in figure.split("<path class=\"").skip(1) {
        let class = &rest[..rest.find('"').unwrap()];
        let d = rest.split_once(" d=\"").unwrap().1.split_once('"').unwrap().0;
        for run in d.split('z').filter(|r| !r.is_empty()) {
            // M{x} {y}h{w}v{CELL}h-{w}
            let (x, rest) = run.strip_prefix('M').unwrap().split_once(' ').unwrap();
            let (y, rest) = rest.split_once('h').unwrap();
            let (w, rest) = rest.split_once('v').unwrap();
            let (h, back) = rest.split_once('h').unwrap();
            let (x, y, w): (f64, f64, f64) =
                (x.parse().unwrap(), y.parse().unwrap(), w.parse().unwrap());
            assert_eq!(h.parse::<f64>().unwrap(), CELL, "{run}");
            assert_eq!(back.parse::<f64>().unwrap(), -w, "{run}: the run closes on itself");
            assert!(w > 0.0 && w % CELL == 0.0, "{run}");
            let (col, row) = ((x - LEFT) / CELL, (y - TOP) / CELL);
            assert!(col.fract() == 0.0 && row.fract() == 0.0 && col >= 0.0 && row >= 0.0, "{run}");
            for k in 0..(w / CELL) as usize {
                cells.entry((col as usize + k, row as usize)).or_default().push(class.to_string());
            }
        }
    }
    let hovers = figure
        .split("<rect class=\"px-tok-row\"")
        .skip(1)
        .map(|rest| {
            rest.split_once("<title>").unwrap().1.split_once("</title>").unwrap().0.to_string()
        })
        .collect();
    (cells, hovers)
}

#[test]
fn every_cell_is_drawn_once_in_its_colour_and_each_row_hovers_its_values() {
    let r = Report::from_json(HEALTHY).unwrap();
    let page = html::render_standalone(&r);
    let (n_tokens, n_layers) = (r.prompt.tokens.len(), r.per_token.layers.len());
    assert!(n_tokens >= 2 && n_layers >= 2, "the fixture has a grid to draw");
    let mut sites_seen = 0;
    for site in r.site_order.iter().filter(|s| html::KNOWN_SITES.contains(&s.as_str())) {
        let std = |layer: usize, t: usize| {
            r.per_token.layers[layer]
                .get(site.as_str())
                .and_then(|s| s.paths.get(&r.reference))
                .and_then(|v| v.get(t))
                .and_then(|s| s.std)
                .map(token_std_as_drawn)
        };
        if !(0..n_layers).any(|l| (0..n_tokens).any(|t| std(l, t).is_some_and(|v| v > 0.0))) {
            continue;
        }
        sites_seen += 1;
        let (cells, hovers) = figure(&page, site);
        assert_eq!(cells.len(), n_tokens * n_layers, "{site}: every cell drawn");
        // Each cell in one class, which is its std's: `px-na` without a positive std, else its
        // level of nine steps on log10 between the site's smallest and largest positive std.
        let logs: Vec<f64> = (0..n_layers)
            .flat_map(|l| (0..n_tokens).filter_map(move |t| std(l, t)))
            .filter(|v| *v > 0.0)
            .map(f64::log10)
            .collect();
        let (lo, hi) =
            logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let level_of =
            |v: f64| if hi > lo { (9.0 * (v.log10() - lo) / (hi - lo)).round() as u32 } else { 0 };
        let mut levels: Vec<(f64, u32)> = Vec::new();
        for (&(layer, t), classes) in &cells {
            assert!(
                layer < n_layers && t < n_tokens,
                "{site}: cell ({layer}, {t}) outside the grid"
            );
            assert_eq!(classes.len(), 1, "{site}: cell ({layer}, {t}) drawn as {classes:?}");
            match std(layer, t) {
                Some(v) if v > 0.0 => {
                    let level = classes[0]
                        .strip_prefix("px-c")
                        .unwrap_or_else(|| panic!("{site}: {classes:?}"));
                    assert_eq!(
                        level.parse::<u32>().unwrap(),
                        level_of(v),
                        "{site}: cell ({layer}, {t}), std {v}"
                    );
                    levels.push((v, level_of(v)));
                }
                _ => assert_eq!(classes[0], "px-na", "{site}: cell ({layer}, {t})"),
            }
        }
        levels.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            levels.windows(2).all(|w| w[0].1 <= w[1].1),
            "{site}: levels follow the stds: {levels:?}"
        );
        assert!(
            levels.first().unwrap().1 < levels.last().unwrap().1,
            "{site}: the scale spans the stds"
        );
        // One hover per position, with its id and its stds by layer as the grid draws them.
        assert_eq!(hovers.len(), n_tokens, "{site}");
        for (t, hover) in hovers.iter().enumerate() {
            let head = format!("position {t} (id {}, ", r.prompt.tokens[t]);
            assert!(hover.starts_with(&head), "{site}: {hover}");
            let values: Vec<String> = (0..n_layers)
                .map(|l| std(l, t).map_or("none".into(), |v| format!("{v:.3e}")))
                .collect();
            let tail = format!(" · std by layer 0–{}: {}", n_layers - 1, values.join(", "));
            assert!(hover.ends_with(&tail), "{site}: {hover} should end with {tail}");
        }
    }
    assert!(sites_seen >= 10, "{sites_seen} sites drawn");
}
