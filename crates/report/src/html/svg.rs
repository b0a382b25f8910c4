//! The chart sections' markup: draws the models of `charts.rs` as inline SVG, with hover values
//! as `<title>`s and CSS-only toggles (checkboxes for sites, radio buttons for metrics and sites).

use super::charts::{
    self, labelled, Grid, RatioChart, SiteGrid, TokenGrid, HEAT_LAYER_LABELS, METRICS, RATIO_FRAME,
    RATIO_LAYER_LABELS,
};
use super::markup::{markup, Html, Writer};
use super::KNOWN_SITES;
use crate::Report;

/// The stylesheet class of a site's colour. Site names are identifiers from our own list;
/// anything else gets a neutral class.
fn site_class(site: &str) -> String {
    if KNOWN_SITES.contains(&site) {
        format!("s-{site}")
    } else {
        "s-other".into()
    }
}

/// Per-layer std ratio (path / reference) per site, log axis, with the contract band shaded.
pub(super) fn ratio_chart(w: &mut Writer, r: &Report, other: &str) {
    let Some(chart) = RatioChart::new(r, other) else { return };
    let f = &RATIO_FRAME;
    markup!(
        w,
        "<section class=\"px-chart\"><h3>σ ratio {} / {} per layer</h3>\
         <p class=\"px-note\">std of each site on <b>{}</b> divided by its std on <b>{}</b>, same tokens, same element count. \
         Log axis. {} Hover a point or band for its value; untick a site to hide it.</p>",
        other,
        r.reference,
        other,
        r.reference,
        chart.band_note(),
    );
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
    for i in labelled(chart.n_layers, RATIO_LAYER_LABELS) {
        markup!(
            w,
            "<text class=\"px-tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            chart.x(i),
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
    for (site, points) in &chart.series {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", chart.x(p.layer), chart.y_of_ratio(p.ratio)))
            .collect();
        markup!(
            w,
            "<g class=\"px-series {}\"><polyline points=\"{}\"/>",
            site_class(site),
            path.join(" ")
        );
        for p in points {
            let out = !p.outside.is_empty();
            markup!(
                w,
                "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\"><title>layer {} · {} · ratio {:.6}{}</title></circle>",
                if out { "px-out" } else { "px-pt" },
                chart.x(p.layer),
                chart.y_of_ratio(p.ratio),
                if out { 5u32 } else { 3 },
                p.layer,
                site,
                p.ratio,
                chart.why_outside(p)
            );
        }
        w.lit("</g>");
    }
    w.lit("</svg></section>\n");
}

/// One checkbox per site, which the stylesheet ties to the site's series.
fn legend(w: &mut Writer, other: &str, r: &Report) {
    w.lit("<div class=\"px-legend\">");
    for site in &r.site_order {
        markup!(
            w,
            "<label class=\"{}\"><input type=\"checkbox\" class=\"px-toggle\" data-site=\"{}\" id=\"rt-{}-{}\" checked><span class=\"px-swatch\"></span>{}</label>",
            site_class(site),
            site,
            other,
            site,
            site
        );
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
fn open_grid_svg(w: &mut Writer, grid: &Grid) {
    let (width, height) = grid.size();
    markup!(
        w,
        "<svg class=\"px-svg px-fixed\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">",
        width,
        height,
        width,
        height
    );
}

/// Site × layer heatmaps for each metric; radio buttons pick which one shows.
pub(super) fn heatmaps(w: &mut Writer, r: &Report, other: &str) {
    markup!(
        w,
        "<section class=\"px-heat\"><h3>Site × layer: {} against {}</h3>\
         <p class=\"px-note\">Darker cells are further apart. Hover a cell for its value and element count.</p><div class=\"px-metrics\">",
        other,
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
    for m in &METRICS {
        let heat = SiteGrid::new(r, other, m);
        let grid = &heat.grid;
        markup!(
            w,
            "<figure class=\"px-hm px-hm-{}\"><figcaption>{}</figcaption>",
            m.name,
            m.caption
        );
        open_grid_svg(w, grid);
        for (j, site) in r.site_order.iter().enumerate() {
            markup!(
                w,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                grid.row_label_x(),
                grid.row_label_y(j),
                site
            );
            for (i, v) in heat.values[j].iter().enumerate() {
                let (x, y) = grid.cell(i, j);
                match v {
                    Some(v) => {
                        let count = r.layers[i]
                            .sites
                            .get(site)
                            .and_then(|s| s.compare.get(other))
                            .map(|c| c.count)
                            .unwrap_or(0);
                        markup!(
                            w,
                            "<rect class=\"px-c{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>layer {} · {} · {} · {} values</title></rect>",
                            heat.levels.falling(*v),
                            x,
                            y,
                            charts::CELL,
                            charts::CELL,
                            i,
                            site,
                            (m.show)(*v),
                            count
                        );
                    }
                    None => markup!(
                        w,
                        "<rect class=\"px-na\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>layer {} · {} · identical or undefined</title></rect>",
                        x,
                        y,
                        charts::CELL,
                        charts::CELL,
                        i,
                        site
                    ),
                }
            }
        }
        layer_labels(w, grid);
        w.lit("</svg></figure>");
    }
    w.lit("</div></section>\n");
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
            site
        );
    }
    for site in sites {
        let Some(heat) = TokenGrid::new(r, site) else { continue };
        let grid = &heat.grid;
        markup!(
            w,
            "<figure class=\"px-tok px-tok-{}\"><figcaption>{}: std per position (rows) and layer (columns); log colour, darker = larger</figcaption>",
            site,
            site
        );
        open_grid_svg(w, grid);
        layer_labels(w, grid);
        for (t, row) in heat.stds.iter().enumerate() {
            let piece = r.prompt.pieces.get(t).map(String::as_str).unwrap_or("");
            let id = r.prompt.tokens.get(t).copied().unwrap_or(0);
            markup!(
                w,
                "<text class=\"px-tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                grid.row_label_x(),
                grid.row_label_y(t),
                charts::token_label(t, piece)
            );
            for (i, v) in row.iter().enumerate() {
                let (x, y) = grid.cell(i, t);
                match v {
                    Some(v) if *v > 0.0 => markup!(
                        w,
                        "<rect class=\"px-c{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>layer {} · position {} (id {}, {}) · std {:.6}</title></rect>",
                        heat.level(*v),
                        x,
                        y,
                        charts::CELL,
                        charts::CELL,
                        i,
                        t,
                        id,
                        piece,
                        *v
                    ),
                    _ => markup!(
                        w,
                        "<rect class=\"px-na\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                        x,
                        y,
                        charts::CELL,
                        charts::CELL
                    ),
                }
            }
        }
        w.lit("</svg></figure>");
    }
    w.lit("</div></section>\n");
}
