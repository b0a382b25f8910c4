//! The chart sections' markup: draws the models of `charts.rs` as inline SVG, with hover values
//! as `<title>`s and CSS-only toggles (checkboxes for sites, radio buttons for metrics and sites).

use super::charts::{
    self, labelled, Frame, Grid, HeatCell, Metric, RatioChart, ScaleBar, SiteGrid, TokenGrid,
    HEAT_LAYER_LABELS, METRICS, RATIO_FRAME, RATIO_LAYER_LABELS,
};
use super::distance::{self, DistanceChart, SeriesKind, DISTANCE_FRAME};
use super::heat::{Standing, DISTANCE_LEVELS};
use super::markup::{markup, Html, Writer};
use super::why;
use super::KNOWN_SITES;
use crate::Report;
use std::fmt::Write as _;

/// The stylesheet class of a site's colour. Site names are identifiers from our own list;
/// anything else gets a neutral class.
fn site_class(site: &str) -> String {
    if KNOWN_SITES.contains(&site) {
        format!("s-{site}")
    } else {
        "s-other".into()
    }
}

/// A horizontal grid line at `y` across frame `f`, and its tick label left of the axis.
pub(super) fn y_tick(w: &mut Writer, f: &Frame, y: f64, label: &str) {
    markup!(
        w,
        "<line class=\"px-grid\" x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        f.left,
        f.width - f.right,
        y,
        y,
        f.left - 6.0,
        y + 4.0,
        label
    );
}

/// A layer axis under frame `f`: at most about `max_labels` layer numbers, at `x(layer)`, and
/// its title.
fn layer_axis(
    w: &mut Writer,
    f: &Frame,
    n_layers: usize,
    max_labels: usize,
    x: impl Fn(usize) -> f64,
) {
    for i in labelled(n_layers, max_labels) {
        markup!(
            w,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            f.height - f.bottom + 16.0,
            i
        );
    }
    markup!(
        w,
        "<text class=\"px-axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">layer</text>",
        (f.left + f.width - f.right) / 2.0,
        f.height - 4.0
    );
}

/// Per-layer std ratio (path / reference) per site, log axis, with the contract band shaded.
pub(super) fn ratio_chart(w: &mut Writer, r: &Report, other: &str) {
    let Some(chart) = RatioChart::new(r, other) else { return };
    let f = &RATIO_FRAME;
    markup!(
        w,
        "<section class=\"px-chart\"><h3>σ ratio {} / {} per layer</h3>\
         <p class=\"px-note\">std of each site on <b>{}</b> divided by its std on <b>{}</b>, same tokens, same element count. \
         Log axis. {} Hover a point or band for its value. It shows the key sites first: the residual streams and the sites that leave a band where the paths first part.</p>",
        other,
        r.reference,
        other,
        r.reference,
        chart.band_note(),
    );
    show_select(w, other, r);
    legend(w, other, r);
    markup!(
        w,
        "<svg class=\"px-svg px-ratio\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"std ratio per layer\">",
        f.width,
        f.height
    );
    if chart.bands_visible {
        for b in &chart.bands {
            let (top_y, bottom_y) = chart.band_span(b);
            markup!(
                w,
                "<rect class=\"px-band\" x=\"{}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}</title></rect>",
                f.left,
                top_y,
                f.width - f.left - f.right,
                bottom_y - top_y,
                b.describe()
            );
        }
    }
    // Grid and labels: ratio ticks at "nice" values.
    for (t, label) in chart.ticks() {
        let y = chart.y(t);
        y_tick(w, f, y, &label);
    }
    layer_axis(w, f, chart.n_layers, RATIO_LAYER_LABELS, |i| chart.x(i));
    for (site, points) in &chart.series {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", chart.x(p.layer), chart.y_of_ratio(p.ratio)))
            .collect();
        let key = chart.key.contains(site);
        markup!(
            w,
            "<g class=\"px-series {}{}\"><polyline points=\"{}\"/>",
            site_class(site),
            Html::lit(if key { " px-key" } else { "" }),
            path.join(" ")
        );
        let shape = site_shape(site, r);
        for p in points {
            let (x, y) = (chart.x(p.layer), chart.y_of_ratio(p.ratio));
            let title = format!(
                "layer {} · {} · ratio {:.6}{}",
                p.layer,
                r.site_label(site),
                p.ratio,
                chart.why_outside(p)
            );
            if p.outside.is_empty() {
                // Inside its band: the site's own mark, so series differ by shape as well.
                w.lit("<g>");
                mark(w, shape, x, y, 3.0);
                markup!(w, "<title>{}</title></g>", title);
            } else {
                markup!(
                    w,
                    "<circle class=\"px-out\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\"><title>{}</title></circle>",
                    x,
                    y,
                    title
                );
            }
        }
        w.lit("</g>");
    }
    w.lit("</svg>");
    // The chart's values as text: a row per layer, a column per site.
    w.lit("<details class=\"px-table-view\"><summary>The chart's values as a table</summary><table><tr><th>layer</th>");
    for (site, _) in &chart.series {
        markup!(w, "<th>{}</th>", r.site_label(site));
    }
    w.lit("</tr>");
    for layer in 0..r.layers.len() {
        markup!(w, "<tr><td>{}</td>", layer);
        for (_, points) in &chart.series {
            match points.iter().find(|p| p.layer == layer) {
                Some(p) if p.outside.is_empty() => markup!(w, "<td>{:.6}</td>", p.ratio),
                Some(p) => markup!(w, "<td>{:.6} (outside its band)</td>", p.ratio),
                None => w.lit("<td>—</td>"),
            }
        }
        w.lit("</tr>");
    }
    w.lit("</table></details></section>\n");
}

/// Which sites the chart shows — the key ones, all, none, one, or those ticked in the legend —
/// as a `<select>` the stylesheet reads (`option:checked`), so it works with no script.
fn show_select(w: &mut Writer, other: &str, r: &Report) {
    markup!(
        w,
        "<p class=\"px-show\"><label for=\"show-{}\">Show</label> <select class=\"px-show-sel\" id=\"show-{}\">\
         <option value=\"key\" selected>key sites</option><option value=\"all\">all sites</option>\
         <option value=\"ticked\">the sites ticked below</option><option value=\"none\">none</option>",
        other,
        other
    );
    for site in &r.site_order {
        markup!(w, "<option value=\"only-{}\">only {}</option>", site, r.site_label(site));
    }
    w.lit("</select></p>");
}

/// A series' point mark: sites take the four shapes in turn along the site order, so that
/// neighbours in a chart differ by shape as well as colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Circle,
    Square,
    Diamond,
    Triangle,
}

fn site_shape(site: &str, r: &Report) -> Shape {
    const SHAPES: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Diamond, Shape::Triangle];
    SHAPES[r.site_order.iter().position(|s| s == site).unwrap_or(0) % SHAPES.len()]
}

/// `shape` of half-size `h` at (`x`, `y`), in the series' colour (`px-pt`).
fn mark(w: &mut Writer, shape: Shape, x: f64, y: f64, h: f64) {
    match shape {
        Shape::Circle => {
            markup!(w, "<circle class=\"px-pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\"/>", x, y, h)
        }
        Shape::Square => markup!(
            w,
            "<rect class=\"px-pt\" x=\"{:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{}\"/>",
            x - h,
            y - h,
            2.0 * h,
            2.0 * h
        ),
        Shape::Diamond => markup!(
            w,
            "<path class=\"px-pt\" d=\"M{:.1} {:.1}l{} {}l{} {}l{} {}z\"/>",
            x,
            y - 1.3 * h,
            1.3 * h,
            1.3 * h,
            -1.3 * h,
            1.3 * h,
            -1.3 * h,
            -1.3 * h
        ),
        Shape::Triangle => markup!(
            w,
            "<path class=\"px-pt\" d=\"M{:.1} {:.1}l{} {}h{}z\"/>",
            x,
            y - 1.3 * h,
            1.3 * h,
            2.3 * h,
            -2.6 * h
        ),
    }
}

/// One checkbox per site, which the stylesheet ties to the site's series (in "ticked" mode).
fn legend(w: &mut Writer, other: &str, r: &Report) {
    w.lit("<div class=\"px-legend\">");
    for site in &r.site_order {
        markup!(
            w,
            "<label class=\"{}\"><input type=\"checkbox\" class=\"px-toggle\" data-site=\"{}\" id=\"rt-{}-{}\" checked><span class=\"px-swatch\"></span>",
            site_class(site),
            site,
            other,
            site
        );
        w.lit("<svg class=\"px-legend-mark\" viewBox=\"-5 -5 10 10\" width=\"10\" height=\"10\" aria-hidden=\"true\">");
        mark(w, site_shape(site, r), 0.0, 0.0, 3.0);
        markup!(w, "</svg>{}</label>", r.site_label(site));
    }
    w.lit("</div>");
}

/// The layer numbers over a grid.
fn layer_labels(w: &mut Writer, grid: &Grid) {
    for i in labelled(grid.cols, HEAT_LAYER_LABELS) {
        markup!(
            w,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            grid.col_label_x(i),
            Grid::LABEL_BASELINE,
            i
        );
    }
}

/// A fixed-size SVG for a grid.
fn open_grid_svg(w: &mut Writer, grid: &Grid, label: &str) {
    let (width, height) = grid.size();
    markup!(
        w,
        "<svg class=\"px-svg px-fixed\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">",
        width,
        height,
        width,
        height,
        label
    );
}

/// The stylesheet class of a heat cell: its standing against a band where that is worth a
/// colour, else its neutral level on the fixed scale.
fn cell_class(cell: &HeatCell) -> String {
    match cell.standing {
        Standing::Outside => "px-h-out".into(),
        Standing::Explained => "px-h-expl".into(),
        Standing::NearLimit => "px-h-near".into(),
        Standing::Inside | Standing::Unbanded => format!("px-d{}", cell.level),
    }
}

/// Site × layer heatmaps for each metric; radio buttons pick which one shows.
pub(super) fn heatmaps(w: &mut Writer, r: &Report, other: &str) {
    markup!(
        w,
        "<section class=\"px-heat\" id=\"{}\"><h3>Site × layer: {} against {}</h3>\
         <p class=\"px-note\">Each cell is coloured by its distance from {} on a fixed scale, the same in every report (the bar under the grid). \
         Where a contract band judges the site, a cell in the last quarter of its band is amber, and one outside it is red and crossed (×); violet with one stroke: outside, but explained by the arithmetic. \
         Hover a cell for its value, band and element count; click it for the site up close (histograms, the elements furthest apart, the weights).</p><div class=\"px-metrics\">",
        why::heat_id(other),
        other,
        r.reference,
        r.reference
    );
    for (i, m) in METRICS.iter().enumerate() {
        markup!(
            w,
            "<input type=\"radio\" name=\"hm-{}\" id=\"hm-{}-{}\" class=\"px-metric-{}\"{}><label for=\"hm-{}-{}\">{}</label>",
            other,
            other,
            m.name,
            m.name,
            Html::lit(if i == 0 { " checked" } else { "" }),
            other,
            m.name,
            m.name
        );
    }
    let grids: Vec<SiteGrid> = METRICS.iter().map(|m| SiteGrid::new(r, other, m)).collect();
    for (m, heat) in METRICS.iter().zip(&grids) {
        let grid = &heat.grid;
        let (outside, explained, near) = heat.counts();
        markup!(
            w,
            "<figure class=\"px-hm px-hm-{}\"><figcaption>{}. {}</figcaption>",
            m.name,
            m.caption,
            band_summary(heat, outside, explained, near)
        );
        let (width, height) = grid.size();
        markup!(
            w,
            "<svg class=\"px-svg px-fixed\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"group\" aria-label=\"{} of {} against {} per site and layer (each cell a link to its detail): {} outside the band, {} explained, {} near the limit\">",
            width,
            height,
            width,
            height,
            m.name,
            other,
            r.reference,
            outside,
            explained,
            near
        );
        for (j, site) in r.site_order.iter().enumerate() {
            markup!(
                w,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                grid.row_label_x(),
                grid.row_label_y(j),
                r.site_label(site)
            );
            for (i, cell) in heat.cells[j].iter().enumerate() {
                let (x, y) = grid.cell(i, j);
                match cell {
                    Some(cell) => {
                        let count = r.layers[i]
                            .sites
                            .get(site)
                            .and_then(|s| s.compare.get(other))
                            .map(|c| c.count)
                            .unwrap_or(0);
                        let band = match cell.band.map(|b| &heat.bands[b]) {
                            Some(b) => format!(" · band {} ({}, {})", b.text, b.test, b.outcome),
                            None => String::new(),
                        };
                        why::open_cell_link(w, r, other, i, site);
                        markup!(
                            w,
                            "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>layer {} · {} · {}{} · {} · {} values</title></rect>",
                            cell_class(cell),
                            x,
                            y,
                            charts::CELL,
                            charts::CELL,
                            i,
                            r.site_label(site),
                            (m.show)(cell.value),
                            band,
                            cell.standing.describe(),
                            count
                        );
                        if matches!(cell.standing, Standing::Outside | Standing::Explained) {
                            cross(w, x, y, charts::CELL, cell.standing == Standing::Outside);
                        }
                        w.lit("</a>");
                    }
                    None => markup!(
                        w,
                        "<rect class=\"px-na\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>layer {} · {} · identical or undefined</title></rect>",
                        x,
                        y,
                        charts::CELL,
                        charts::CELL,
                        i,
                        r.site_label(site)
                    ),
                }
            }
        }
        layer_labels(w, grid);
        w.lit("</svg>");
        scale_bar(w, m);
        w.lit("</figure>");
    }
    w.lit("</div></section>\n");
}

/// The figure caption's sentence on bands: how many cells leave theirs, or that none judges
/// this metric.
fn band_summary(heat: &SiteGrid, outside: usize, explained: usize, near: usize) -> String {
    if heat.bands.is_empty() {
        return "No contract band judges this metric here: every cell is on the neutral scale."
            .into();
    }
    let tests: Vec<&str> = heat.bands.iter().map(|b| b.test.as_str()).collect();
    format!(
        "Bands of {}: {outside} cells outside, {explained} outside but explained, {near} near the limit.",
        tests.join(", ")
    )
}

/// The mark of a square cell of side `side` outside its band (a cross; a single slash when
/// explained), so that colour is not the only sign. It takes no pointer events: the cell's
/// hover stays.
pub(super) fn cross(w: &mut Writer, x: f64, y: f64, side: f64, full: bool) {
    let inset = (side / 6.0).min(3.0);
    let (a, b) = (inset, side - inset);
    if full {
        markup!(
            w,
            "<path class=\"px-h-mark\" d=\"M{} {}L{} {}M{} {}L{} {}\"/>",
            x + a,
            y + a,
            x + b,
            y + b,
            x + b,
            y + a,
            x + a,
            y + b
        );
    } else {
        markup!(w, "<path class=\"px-h-mark\" d=\"M{} {}L{} {}\"/>", x + a, y + b, x + b, y + a);
    }
}

/// The colour bar under a heatmap: the fixed neutral levels with round ticks in the metric's
/// own terms, then the swatches of the standings against a band.
fn scale_bar(w: &mut Writer, m: &Metric) {
    let swatches: [(&str, &str, Html); 3] = [
        ("px-h-near", "last quarter of band", Html::default()),
        ("px-h-out", "outside band", cross_html(ScaleBar::swatch_x(1), true)),
        ("px-h-expl", "outside, explained", cross_html(ScaleBar::swatch_x(2), false)),
    ];
    let width = ScaleBar::width(swatches.len());
    markup!(
        w,
        "<svg class=\"px-svg px-fixed px-scale\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"colour scale of {}\">",
        width,
        ScaleBar::HEIGHT,
        width,
        ScaleBar::HEIGHT,
        m.name
    );
    markup!(
        w,
        "<text class=\"px-tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        ScaleBar::LEFT - 6.0,
        ScaleBar::TOP + 10.0,
        m.name
    );
    for level in 0..DISTANCE_LEVELS {
        let range = match level {
            0 => format!("below {}", (m.show)((m.raw_at)(m.scale.edge(1)))),
            l if l == DISTANCE_LEVELS - 1 => {
                format!("{} and further", (m.show)((m.raw_at)(m.scale.edge(l))))
            }
            l => format!(
                "{} to {}",
                (m.show)((m.raw_at)(m.scale.edge(l))),
                (m.show)((m.raw_at)(m.scale.edge(l + 1)))
            ),
        };
        markup!(
            w,
            "<rect class=\"px-d{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            level,
            ScaleBar::level_x(level),
            ScaleBar::TOP,
            ScaleBar::BOX,
            ScaleBar::BOX_HEIGHT,
            range
        );
    }
    for (level, exponent) in m.scale.decade_ticks() {
        let x = ScaleBar::level_x(level);
        markup!(
            w,
            "<line class=\"px-grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><text class=\"px-tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x,
            x,
            ScaleBar::TOP,
            ScaleBar::TOP + ScaleBar::BOX_HEIGHT + 3.0,
            x,
            ScaleBar::tick_y(),
            (m.tick)(exponent)
        );
    }
    for (i, (class, label, mark)) in swatches.iter().enumerate() {
        let x = ScaleBar::swatch_x(i);
        markup!(
            w,
            "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>{}<text class=\"px-tick\" x=\"{}\" y=\"{}\">{}</text>",
            *class,
            x,
            ScaleBar::TOP - 3.0,
            charts::CELL,
            charts::CELL,
            mark,
            x + charts::CELL + 5.0,
            ScaleBar::TOP + 10.0,
            *label
        );
    }
    w.lit("</svg>");
}

/// A swatch's mark, as [`cross`] draws it on a cell.
fn cross_html(x: f64, full: bool) -> Html {
    let mut w = Writer::new();
    cross(&mut w, x, ScaleBar::TOP - 3.0, charts::CELL, full);
    w.finish()
}

/// Which prompt position dominates a site's std: per-token std of the reference path, token ×
/// layer, for any site (radio buttons pick it; `ffn_swigl` first, where upstream's artefact was).
pub(super) fn per_token(w: &mut Writer, r: &Report) {
    let sites: Vec<&str> =
        r.site_order.iter().map(String::as_str).filter(|s| KNOWN_SITES.contains(s)).collect();
    markup!(
        w,
        "<section class=\"px-tokens\"><h3>Per token: std of each prompt position on {}</h3>\
         <p class=\"px-note\">An all-token std is dominated by the largest row: position 0 often carries activations 10–100× the others. \
         This is why a statistic over all tokens must never be compared with one over the last token. Pick a site:</p><div class=\"px-token-sites\">",
        r.reference
    );
    for site in &sites {
        markup!(
            w,
            "<input type=\"radio\" name=\"px-ptk\" id=\"ptk-{}\" class=\"px-ptk-{}\"{}><label for=\"ptk-{}\">{}</label>",
            site,
            site,
            Html::lit(if *site == "ffn_swigl" { " checked" } else { "" }),
            site,
            r.site_label(site)
        );
    }
    for site in sites {
        let Some(heat) = TokenGrid::new(r, site) else { continue };
        let grid = &heat.grid;
        markup!(
            w,
            "<figure class=\"px-tok px-tok-{}\"><figcaption>{}: std per position (rows) and layer (columns); log colour, darker = larger</figcaption>",
            site,
            r.site_label(site)
        );
        open_grid_svg(w, grid, &format!("{}: std per position and layer", r.site_label(site)));
        layer_labels(w, grid);
        // The cells as one path per colour (each row's runs of one colour merged): a long
        // prompt's grid is 7 296 cells a site on the 0.5B over 304 tokens, and as a `<rect>` with
        // its own hover each, the report was 17.2 MB of which the grids were 88 %, and a browser
        // took ~1 s to parse them. Each row's values are its hover instead (below).
        let level = |std: Option<f64>| std.filter(|v| *v > 0.0).map(|v| heat.level(v));
        let mut paths: Vec<(Option<u32>, String)> = Vec::new();
        for (t, row) in heat.stds.iter().enumerate() {
            let mut i = 0;
            while i < row.len() {
                let here = level(row[i]);
                let run = row[i..].iter().take_while(|v| level(**v) == here).count();
                let (x, y) = grid.cell(i, t);
                let d = match paths.iter_mut().find(|(l, _)| *l == here) {
                    Some((_, d)) => d,
                    None => {
                        paths.push((here, String::new()));
                        &mut paths.last_mut().expect("just pushed").1
                    }
                };
                let width = charts::CELL * run as f64;
                let _ = write!(d, "M{x} {y}h{width}v{}h-{width}z", charts::CELL);
                i += run;
            }
        }
        // Missing values first, then the levels upwards: the same order in every report.
        paths.sort();
        for (level, d) in &paths {
            match level {
                Some(l) => markup!(w, "<path class=\"px-c{}\" d=\"{}\"/>", l, d),
                None => markup!(w, "<path class=\"px-na\" d=\"{}\"/>", d),
            }
        }
        let (width, _) = grid.size();
        let last_layer = grid.cols.saturating_sub(1);
        for (t, row) in heat.stds.iter().enumerate() {
            let piece = super::tokens::prompt_token(r, t);
            let id = r.prompt.tokens.get(t).copied().unwrap_or(0);
            markup!(
                w,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                grid.row_label_x(),
                grid.row_label_y(t),
                charts::token_label(t, &piece)
            );
            let mut values = String::new();
            for (i, v) in row.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = match v {
                    Some(v) => write!(values, "{sep}{v:.3e}"),
                    None => write!(values, "{sep}none"),
                };
            }
            let (_, y) = grid.cell(0, t);
            markup!(
                w,
                "<rect class=\"px-tok-row\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"><title>position {} (id {}, {}) · std by layer 0–{}: {}</title></rect>",
                y,
                width,
                charts::CELL,
                t,
                id,
                piece,
                last_layer,
                values
            );
        }
        w.lit("</svg></figure>");
    }
    w.lit("</div></section>\n");
}

/// The shape of a distance point, by where it stands: a failing point is a red ×, an explained
/// one a hollow violet diamond — shapes as well as colours — and one inside is its series' own
/// mark (a square on the residual stream, a diamond on the worst op), amber in the last
/// quarter of its band.
fn distance_mark(w: &mut Writer, kind: SeriesKind, standing: Standing, x: f64, y: f64) {
    let diamond = |w: &mut Writer, class: &str, r: f64| {
        markup!(
            w,
            "<path class=\"{}\" d=\"M{:.1} {:.1}l{} {}l{} {}l{} {}z\"/>",
            class,
            x,
            y - r,
            r,
            r,
            -r,
            r,
            -r,
            -r
        )
    };
    match standing {
        Standing::Outside => {
            let r = 5.5;
            markup!(
                w,
                "<path class=\"px-dist-out\" d=\"M{:.1} {:.1}l{} {}M{:.1} {:.1}l{} {}\"/>",
                x - r,
                y - r,
                2.0 * r,
                2.0 * r,
                x + r,
                y - r,
                -2.0 * r,
                2.0 * r
            );
        }
        Standing::Explained => diamond(w, "px-dist-expl", 6.0),
        _ => {
            let class = if standing == Standing::NearLimit { "px-dist-near" } else { "px-dist-pt" };
            match kind {
                SeriesKind::Residual => markup!(
                    w,
                    "<rect class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\"/>",
                    class,
                    x - 3.0,
                    y - 3.0
                ),
                SeriesKind::WorstSite => diamond(w, class, 4.0),
            }
        }
    }
}

/// The key above the distance chart's plot: each series' line and mark, the failing and
/// explained marks, and the band limit.
fn distance_key(w: &mut Writer) {
    let f = &DISTANCE_FRAME;
    let y = 14.0;
    let items: [(f64, &str, Option<SeriesKind>, Standing); 4] = [
        (f.left, "residual stream (resid_ffn)", Some(SeriesKind::Residual), Standing::Inside),
        (f.left + 210.0, "worst op of the layer", Some(SeriesKind::WorstSite), Standing::Inside),
        (f.left + 400.0, "outside its band", None, Standing::Outside),
        (f.left + 520.0, "outside, explained", None, Standing::Explained),
    ];
    for (x, label, kind, standing) in items {
        let mark_x = match kind {
            Some(k) => {
                markup!(
                    w,
                    "<g class=\"px-dist-series px-dist-{}\"><line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
                    Html::lit(if k == SeriesKind::Residual { "resid" } else { "worst" }),
                    x,
                    x + 24.0,
                    y,
                    y
                );
                distance_mark(w, k, standing, x + 12.0, y);
                w.lit("</g>");
                x + 30.0
            }
            None => {
                distance_mark(w, SeriesKind::WorstSite, standing, x + 6.0, y);
                x + 16.0
            }
        };
        markup!(w, "<text class=\"px-tick\" x=\"{}\" y=\"{}\">{}</text>", mark_x, y + 4.0, label);
    }
    let x = f.left + 650.0;
    markup!(
        w,
        "<line class=\"px-dist-limit\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/><text class=\"px-tick\" x=\"{}\" y=\"{}\">band limit</text>",
        x,
        x + 24.0,
        y,
        y,
        x + 30.0,
        y + 4.0
    );
}

/// Distance from the reference per layer: relative L2 of the residual stream and of each
/// layer's worst op site, on fixed log decades, with the limits of the bands that judge them and
/// the failing points marked. The report's first chart: the quantity that catches a fault.
pub(super) fn distance_chart(w: &mut Writer, r: &Report, other: &str) {
    let Some(chart) = DistanceChart::new(r, other) else { return };
    let f = &DISTANCE_FRAME;
    let (outside, explained, _) = chart.counts();
    markup!(
        w,
        "<section class=\"px-chart px-distance\"><h3>Distance from {} per layer: {}</h3>\
         <p class=\"px-note\">Relative L2 error ‖{} − {}‖ / ‖{}‖ on a log axis of fixed decades (the same in every report), \
         for the residual stream after each layer and for the layer's op closest to its band's limit. {} \
         Hover a point for its site, value, band and element count.</p>",
        r.reference,
        other,
        other,
        r.reference,
        r.reference,
        chart.band_note()
    );
    markup!(
        w,
        "<svg class=\"px-svg px-dist\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"relative L2 of {} against {} per layer: {} points outside their band, {} explained\">",
        f.width,
        f.height,
        other,
        r.reference,
        outside,
        explained
    );
    distance_key(w);
    for (e, label) in chart.ticks() {
        let y = chart.y_of_log(f64::from(e));
        y_tick(w, f, y, &label);
    }
    layer_axis(w, f, chart.n_layers, distance::LAYER_LABELS, |i| chart.x(i));
    for b in &chart.bands {
        let Some(limit) = b.hi else { continue };
        let (x0, x1) = chart.band_x_span(b);
        let y = chart.y(limit);
        markup!(
            w,
            "<g class=\"px-dist-band\"><title>{} {} ({}) at {}</title><line class=\"px-dist-limit\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"px-tick px-dist-limit-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            b.test,
            b.text,
            b.outcome.to_string(),
            b.sites.join(", "),
            x0,
            x1,
            y,
            y,
            x1 + 4.0,
            y + 4.0,
            b.text
        );
    }
    for s in &chart.series {
        let class = Html::lit(match s.kind {
            SeriesKind::Residual => "resid",
            SeriesKind::WorstSite => "worst",
        });
        let line: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", chart.x(p.layer), chart.y(p.value)))
            .collect();
        markup!(
            w,
            "<g class=\"px-dist-series px-dist-{}\"><polyline points=\"{}\"/>",
            class,
            line.join(" ")
        );
        for p in &s.points {
            let (x, y) = (chart.x(p.layer), chart.y(p.value));
            let band = match p.band.map(|b| &chart.bands[b]) {
                Some(b) => format!(" · band {} ({}, {})", b.text, b.test, b.outcome),
                None => String::new(),
            };
            let value = if p.value < distance::FLOOR {
                format!("relative L2 {:.3e} (drawn at the floor, {})", p.value, distance::FLOOR)
            } else {
                format!("relative L2 {:.3e}", p.value)
            };
            markup!(
                w,
                "<g class=\"px-dist-point\"><title>layer {} · {} ({}) · {}{} · {} · {} values</title>\
                 <rect class=\"px-dist-hit\" x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"14\"/>",
                p.layer,
                r.site_label(&p.site),
                s.kind.describe(),
                value,
                band,
                p.standing.describe(),
                p.count,
                x - 7.0,
                y - 7.0
            );
            distance_mark(w, s.kind, p.standing, x, y);
            w.lit("</g>");
        }
        w.lit("</g>");
    }
    w.lit("</svg>");
    // The chart's values as text (screen readers, copying), folded under the chart.
    w.lit(
        "<details class=\"px-table-view\"><summary>The chart's values as a table</summary><table>\
         <tr><th>layer</th><th>series</th><th>site</th><th>relative L2</th><th>band</th><th>standing</th><th>values</th></tr>",
    );
    for s in &chart.series {
        for p in &s.points {
            let band = p.band.map(|b| &chart.bands[b]);
            markup!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3e}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.layer,
                s.kind.describe(),
                r.site_label(&p.site),
                p.value,
                band.map_or_else(String::new, |b| format!("{} ({}, {})", b.text, b.test, b.outcome)),
                p.standing.describe(),
                p.count
            );
        }
    }
    w.lit("</table></details></section>\n");
}

/// The summary card's sparkline of one path: the distance chart's view drawn small — the
/// residual stream's relative L2 per layer (the worst op's where the report has no residual
/// series), its band limit when one band judges the whole line — over a strip of one cell per
/// layer, classed by the layer's worst point against its band ([`DistanceChart::worst_per_layer`]),
/// crossed when outside it so that colour is not the only sign.
pub(super) fn sparkline(w: &mut Writer, chart: &DistanceChart, other: &str, reference: &str) {
    let f = &distance::SPARKLINE_FRAME;
    let (outside, explained, _) = chart.counts();
    markup!(
        w,
        "<svg class=\"px-spark\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"relative L2 of {} against {} per layer: {} points outside their band, {} explained\">",
        f.width,
        f.height,
        f.width,
        f.height,
        other,
        reference,
        outside,
        explained
    );
    if let Some(line) = chart.series.first() {
        let bands: Vec<Option<usize>> = line.points.iter().map(|p| p.band).collect();
        if let Some(Some(b)) = bands.first().filter(|b| bands.iter().all(|x| x == *b)) {
            if let Some(limit) = chart.bands[*b].hi {
                let y = chart.y_in(f, limit);
                markup!(
                    w,
                    "<line class=\"px-dist-limit\" x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"><title>{} {} at {}</title></line>",
                    f.left,
                    f.width - f.right,
                    y,
                    y,
                    chart.bands[*b].test,
                    chart.bands[*b].text,
                    chart.bands[*b].sites.join(", ")
                );
            }
        }
        let points: Vec<String> = line
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", chart.x_in(f, p.layer), chart.y_in(f, p.value)))
            .collect();
        markup!(
            w,
            "<polyline class=\"px-spark-line px-spark-{}\" points=\"{}\"/>",
            Html::lit(match line.kind {
                SeriesKind::Residual => "resid",
                SeriesKind::WorstSite => "worst",
            }),
            points.join(" ")
        );
    }
    let cell_width = (f.width - f.left - f.right) / chart.n_layers as f64;
    let (cell_top, cell_height) = (f.height - f.bottom + 3.0, f.bottom - 4.0);
    for (layer, worst) in chart.worst_per_layer().into_iter().enumerate() {
        let x = f.left + cell_width * layer as f64;
        let Some(p) = worst else {
            markup!(
                w,
                "<rect class=\"px-spark-cell px-na\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\"><title>layer {} · no relative L2</title></rect>",
                x,
                cell_top,
                cell_width,
                cell_height,
                layer
            );
            continue;
        };
        let class = Html::lit(match p.standing {
            Standing::Outside => "px-spark-cell px-spark-out",
            Standing::Explained => "px-spark-cell px-spark-expl",
            Standing::NearLimit => "px-spark-cell px-spark-near",
            Standing::Inside | Standing::Unbanded => "px-spark-cell",
        });
        let band = match p.band.map(|b| &chart.bands[b]) {
            Some(b) => format!(" · band {} ({})", b.text, b.test),
            None => String::new(),
        };
        markup!(
            w,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\"><title>layer {} · worst: {} · relative L2 {:.3e}{} · {}</title></rect>",
            class,
            x,
            cell_top,
            cell_width,
            cell_height,
            layer,
            p.site,
            p.value,
            band,
            p.standing.describe()
        );
        if matches!(p.standing, Standing::Outside | Standing::Explained) {
            let side = cell_width.min(cell_height);
            cross(
                w,
                x + (cell_width - side) / 2.0,
                cell_top,
                side,
                p.standing == Standing::Outside,
            );
        }
    }
    w.lit("</svg>");
}

/// The live view of [`super::render_live_distance`]: a line per compared lane in the view a
/// distance chart of these values would have ([`DistanceChart::view`]), drawn with its geometry
/// (a value below the floor on the floor, one not a number on the top edge).
pub(super) fn live_distance(
    w: &mut Writer,
    reference: &str,
    lanes: &[String],
    n_layers: u32,
    points: &[(u32, Vec<Option<f64>>)],
) {
    let f = &distance::LIVE_FRAME;
    let value = |v: &Vec<Option<f64>>, k: usize| v.get(k).copied().flatten().unwrap_or(f64::NAN);
    let chart = DistanceChart::view(
        n_layers as usize,
        points.iter().flat_map(|(_, v)| v.iter().flatten().copied()),
    );
    let done = points.len();
    markup!(
        w,
        "<figure class=\"px-report px-live\"><figcaption>While it runs: relative L2 of the residual stream against {} after each layer ({} of {} done); the report's charts replace it</figcaption>\
         <svg class=\"px-svg\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"relative L2 of the residual stream per finished layer, {} of {}\">",
        reference,
        done,
        n_layers,
        f.width,
        f.height,
        done,
        n_layers
    );
    for (e, label) in chart.ticks() {
        y_tick(w, f, chart.y_of_log_in(f, f64::from(e)), &label);
    }
    layer_axis(w, f, chart.n_layers, distance::LAYER_LABELS, |i| chart.x_in(f, i));
    for (k, lane) in lanes.iter().enumerate() {
        let xy = |(l, v): &(u32, Vec<Option<f64>>)| {
            (chart.x_in(f, *l as usize), chart.y_in(f, value(v, k)))
        };
        let line: Vec<String> = points
            .iter()
            .map(|p| {
                let (x, y) = xy(p);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        markup!(
            w,
            "<g class=\"px-live-series px-live-{}\"><polyline points=\"{}\"/>",
            k,
            line.join(" ")
        );
        for p in points {
            let ((x, y), v) = (xy(p), value(&p.1, k));
            let shown = if v.is_finite() { format!("{v:.3e}") } else { "not a number".into() };
            markup!(
                w,
                "<circle class=\"px-live-pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>layer {} · {} · relative L2 {}</title></circle>",
                x,
                y,
                p.0,
                lane,
                shown
            );
        }
        w.lit("</g>");
    }
    w.lit("</svg></figure>");
}
