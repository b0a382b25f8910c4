//! "Click a cell to see why": each site × layer cell of a path's heatmaps opens a panel with
//! that site up close — every metric against its band, the matrix behind a matmul site, both
//! paths' histograms on one range, and the elements furthest from the reference with their
//! token positions. Script-free: the cells link to the panels, and a panel shows while it is
//! the address's target (`:target`); the page opens them without touching its address.
//!
//! Geometry is plain data ([`HistogramView`]), tested apart from the markup; its one
//! transcendental function is `libm`'s, so the standalone HTML stays the same on every target.

use super::charts::{SiteGrid, METRICS};
use super::heat::Standing;
use super::markup::{markup, Writer};
use super::tokens;
use crate::{Report, SiteDetail};

/// The id of the panel of `site` at `layer` for path `other`.
pub(super) fn panel_id(other: &str, layer: usize, site: &str) -> String {
    format!("px-why-{other}-{layer}-{site}")
}

/// The id of a path's heatmap section (where a panel's "close" leads).
pub(super) fn heat_id(other: &str) -> String {
    format!("px-heat-{other}")
}

/// Whether the report holds `site`'s detail at `layer` (its panel exists).
pub(super) fn has_panel(r: &Report, layer: usize, site: &str) -> bool {
    r.layers.get(layer).and_then(|l| l.sites.get(site)).is_some_and(|s| s.detail.is_some())
}

/// Histogram box, in px.
const HIST_W: f64 = 280.0;
const HIST_H: f64 = 72.0;

/// A site's histograms as drawn: one step outline per path, on the same bins and the same
/// count scale (the tallest bin of any path at the top).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HistogramView {
    /// `(path id, SVG path data)`, in the report's path order.
    pub outlines: Vec<(String, String)>,
    pub max_count: u32,
}

impl HistogramView {
    pub fn new(detail: &SiteDetail) -> HistogramView {
        let max_count = detail.histogram.values().flatten().copied().max().unwrap_or(0);
        let outlines = detail
            .histogram
            .iter()
            .map(|(id, counts)| (id.clone(), step_outline(counts, max_count, HIST_W, HIST_H)))
            .collect();
        HistogramView { outlines, max_count }
    }
}

/// The outline of `counts` as bars from the baseline of a `w × h` box, on a log scale of count
/// (`ln(1 + count)`, so the tails of a peaked distribution show beside its peak), the count
/// `max` at the top: from the bottom left along each bin's top edge, back down at the right; a
/// point only where the height changes. `libm`'s log, the same on every target.
fn step_outline(counts: &[u32], max: u32, w: f64, h: f64) -> String {
    let bin = w / counts.len().max(1) as f64;
    let top = libm::log1p(f64::from(max));
    let y = |c: u32| if max == 0 { h } else { h - h * libm::log1p(f64::from(c)) / top };
    let mut d = format!("M0 {h:.1}");
    let mut level = h;
    for (i, &c) in counts.iter().enumerate() {
        let (x, top) = (i as f64 * bin, y(c));
        if top != level {
            d.push_str(&format!("L{x:.1} {level:.1}L{x:.1} {top:.1}"));
            level = top;
        }
    }
    d.push_str(&format!("L{w:.1} {level:.1}L{w:.1} {h:.1}"));
    d
}

/// A value as the panel prints it: enough digits to tell f32 neighbours apart.
fn value(v: f64) -> String {
    if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.6}")
    } else {
        format!("{v:.4e}")
    }
}

/// Whether any site of the report holds its detail (a permalink's and older reports do not).
pub(super) fn has_details(r: &Report) -> bool {
    r.layers.iter().any(|l| l.sites.values().any(|s| s.detail.is_some()))
}

/// Every panel of path `other`: hidden until opened, and an index that reaches each by
/// keyboard.
pub(super) fn panels(w: &mut Writer, r: &Report, other: &str) {
    let grids: Vec<SiteGrid> = METRICS.iter().map(|m| SiteGrid::new(r, other, m)).collect();
    let grids = &grids[..];
    let sites: Vec<(usize, &String)> = r.site_order.iter().enumerate().collect();
    markup!(
        w,
        "<section class=\"px-why-all\"><h3>Cell detail: {} against {}</h3><p class=\"px-note\">A click on a heatmap cell opens its panel here; or pick a site and layer below.</p>",
        other,
        r.reference
    );
    markup!(
        w,
        "<details class=\"px-why-index\"><summary>Open a cell's detail by site and layer ({} against {})</summary><table>",
        other,
        r.reference
    );
    for &(_, site) in &sites {
        markup!(w, "<tr><th scope=\"row\">{}</th><td>", r.site_label(site));
        for layer in 0..r.layers.len() {
            if has_panel(r, layer, site) {
                markup!(
                    w,
                    "<a href=\"#{}\" aria-label=\"layer {}, {}\">{}</a> ",
                    panel_id(other, layer, site),
                    layer,
                    r.site_label(site),
                    layer
                );
            }
        }
        w.lit("</td></tr>");
    }
    w.lit("</table></details><div class=\"px-why-panels\">");
    for (layer, l) in r.layers.iter().enumerate() {
        for &(j, site) in &sites {
            let Some(detail) = l.sites.get(site).and_then(|s| s.detail.as_ref()) else {
                continue;
            };
            panel(w, r, other, layer, site, detail, grids, j);
        }
    }
    w.lit("</div></section>");
}

#[allow(clippy::too_many_arguments)]
fn panel(
    w: &mut Writer,
    r: &Report,
    other: &str,
    layer: usize,
    site: &str,
    detail: &SiteDetail,
    grids: &[SiteGrid],
    row: usize,
) {
    let label = r.site_label(site);
    markup!(
        w,
        "<section class=\"px-why\" id=\"{}\" aria-label=\"layer {}, {}: {} against {}\"><h4>Layer {} · {}: {} against {} <a class=\"px-why-close\" href=\"#{}\">close</a></h4>",
        panel_id(other, layer, site),
        layer,
        label,
        other,
        r.reference,
        layer,
        label,
        other,
        r.reference,
        heat_id(other)
    );
    if let Some(t) = &detail.tensor {
        markup!(
            w,
            "<p>Weights: <code>{}</code>, {}, {} × {} (rows × columns).</p>",
            t.name,
            t.ty,
            t.rows,
            t.cols
        );
    }
    // Every metric against its band.
    w.lit("<table class=\"px-why-metrics\"><tr><th>metric</th><th>value</th><th>band</th><th>standing</th></tr>");
    for (m, grid) in METRICS.iter().zip(grids) {
        let Some(Some(cell)) = grid.cells.get(row).and_then(|c| c.get(layer)) else { continue };
        let (band, class) = match cell.band.map(|b| &grid.bands[b]) {
            Some(b) => {
                (format!("{} ({}, {})", b.text, b.test, b.outcome), standing_class(cell.standing))
            }
            None => ("none".into(), ""),
        };
        markup!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            m.name,
            (m.show)(cell.value),
            band,
            class,
            cell.standing.describe()
        );
    }
    w.lit("</table>");
    histogram(w, r, other, detail);
    worst(w, r, other, detail);
    w.lit("</section>");
}

/// The stylesheet class of a standing's words (the verdict tables' outcome colours).
fn standing_class(s: Standing) -> &'static str {
    match s {
        Standing::Outside => "fail",
        Standing::Explained | Standing::NearLimit => "warn",
        Standing::Inside => "pass",
        Standing::Unbanded => "",
    }
}

fn histogram(w: &mut Writer, r: &Report, other: &str, detail: &SiteDetail) {
    let view = HistogramView::new(detail);
    // Per path: values drawn, and those beyond the range on either side.
    let counts: Vec<String> = detail
        .histogram
        .iter()
        .filter(|(id, _)| *id == &r.reference || *id == other)
        .map(|(id, bins)| {
            let drawn = bins.iter().map(|&c| u64::from(c)).sum::<u64>();
            match detail.beyond.get(id) {
                Some([0, 0]) | None => format!("{id} {drawn}"),
                Some([below, above]) => {
                    format!("{id} {drawn}, besides {below} below and {above} above the range")
                }
            }
        })
        .collect();
    markup!(
        w,
        "<figure class=\"px-why-hist\"><svg class=\"px-svg px-fixed\" width=\"{}\" height=\"{}\" viewBox=\"0 -2 {} {}\" role=\"img\" aria-label=\"histograms of {} and {}\">",
        HIST_W,
        HIST_H + 4.0,
        HIST_W,
        HIST_H + 4.0,
        r.reference,
        other
    );
    for (id, d) in &view.outlines {
        if id == &r.reference || id == other {
            let class = if id == &r.reference { "px-why-ref" } else { "px-why-path" };
            markup!(w, "<path class=\"{}\" d=\"{}\"><title>{}</title></path>", class, d, id);
        }
    }
    markup!(
        w,
        "</svg><figcaption>Values from {} to {} ({}'s mean ± 4 σ, within the values' extremes) in {} equal bins, heights on a log scale of count, the tallest holding {}: <span class=\"px-why-ref-key\">{}</span> and <span class=\"px-why-path-key\">{}</span> (values drawn: {}).</figcaption></figure>",
        value(detail.lo),
        value(detail.hi),
        r.reference,
        crate::HISTOGRAM_BINS,
        view.max_count,
        r.reference,
        other,
        counts.join(", ")
    );
}

fn worst(w: &mut Writer, r: &Report, other: &str, detail: &SiteDetail) {
    let Some(worst) = detail.worst.get(other) else {
        markup!(
            w,
            "<p>The report holds no elements of {} here (an imported trace, or a probe over another sample than {}'s).</p>",
            other,
            r.reference
        );
        return;
    };
    if worst.is_empty() {
        w.lit("<p>No element of both sides is a finite number here.</p>");
        return;
    }
    markup!(
        w,
        "<table class=\"px-why-worst\"><caption>The elements furthest from {}</caption><tr><th>token (position)</th><th>feature</th><th>{}</th><th>{}</th><th>difference</th></tr>",
        r.reference,
        r.reference,
        other
    );
    for e in worst {
        markup!(
            w,
            "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            tokens::prompt_token(r, e.token as usize),
            e.token,
            e.index,
            value(f64::from(e.reference)),
            value(f64::from(e.path)),
            value(f64::from(e.path) - f64::from(e.reference))
        );
    }
    w.lit("</table>");
}

/// Opens the link a heatmap cell is wrapped in (the caller closes it): to the cell's panel,
/// which the full report has (its standalone HTML, the page after a run); a permalink's view
/// has the same links and no panels, and the page says where the detail is.
pub(super) fn open_cell_link(w: &mut Writer, r: &Report, other: &str, layer: usize, site: &str) {
    markup!(
        w,
        "<a href=\"#{}\" tabindex=\"-1\" aria-label=\"layer {}, {}: open the detail\">",
        panel_id(other, layer, site),
        layer,
        r.site_label(site)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    #[test]
    fn outlines_share_one_count_scale_and_span_the_box() {
        let mut histogram = IndexMap::new();
        histogram.insert("f32".to_string(), vec![0, 2, 4, 0]);
        histogram.insert("q8".to_string(), vec![1, 1, 1, 1]);
        let view = HistogramView::new(&SiteDetail { histogram, ..Default::default() });
        assert_eq!(view.max_count, 4);
        let f32 = &view.outlines[0].1;
        // The tallest bin reaches the top (y 0), an empty one stays on the baseline; a point
        // only where the height changes.
        // Heights on ln(1 + count): 2 of 4 stands at ln 3 / ln 5 = 68 % of the box.
        assert_eq!(f32, "M0 72.0L70.0 72.0L70.0 22.9L140.0 22.9L140.0 0.0L210.0 0.0L210.0 72.0L280.0 72.0L280.0 72.0");
        assert_eq!(view.outlines[1].1, "M0 72.0L0.0 72.0L0.0 41.0L280.0 41.0L280.0 72.0");
    }

    #[test]
    fn values_print_with_their_digits_or_as_exponents() {
        assert_eq!(value(0.0), "0.000000");
        assert_eq!(value(-1.5), "-1.500000");
        assert_eq!(value(1.0e-5), "1.0000e-5");
        assert_eq!(value(65504.0), "6.5504e4");
    }
}
