//! Chart models as plain data: scales, ticks, the contract bands oriented per path, heat levels,
//! and every geometry constant, apart from the markup that draws them (`svg.rs`).
//!
//! Every transcendental function here is `libm`'s, so the drawn geometry — and with it the
//! standalone HTML — is the same to the byte on every target (native and wasm32).

use super::compare::decade_label;
use super::distance::STREAM_SITES;
use super::heat::{self, DistanceScale, HeatBand, Standing, DISTANCE_LEVELS};
use crate::{Report, SiteRecord};

/// The σ-ratio line chart's frame, in viewBox units.
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

pub const RATIO_FRAME: Frame =
    Frame { width: 880.0, height: 320.0, left: 60.0, right: 20.0, top: 16.0, bottom: 36.0 };
/// At most about this many layer labels under the ratio chart.
pub const RATIO_LAYER_LABELS: usize = 14;
/// At most about this many layer labels over a heat grid.
pub const HEAT_LAYER_LABELS: usize = 12;
/// Side of one heat-grid cell.
pub const CELL: f64 = 18.0;
/// Room left of a site × layer grid for the site names.
pub const SITE_GRID_LEFT: f64 = 110.0;
/// Room left of a token × layer grid for the position and token piece.
pub const TOKEN_GRID_LEFT: f64 = 150.0;
/// Characters of `position: piece` shown left of a token row.
pub const TOKEN_LABEL_CHARS: usize = 20;
/// Heat levels run 0..=HEAT_LEVELS (the stylesheet's `px-c0` … `px-c9`).
pub const HEAT_LEVELS: f64 = 9.0;

/// The layer indices that get a label when `n` are drawn, at most about `max` of them.
pub fn labelled(n: usize, max: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by((n / max).max(1))
}

/// One shaded band of the σ-ratio chart: a contract's `std(path) / std(reference)` bounds and
/// the sites and layers they apply to (several tests with the same bounds share one band).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartBand {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub tests: Vec<String>,
    pub places: Vec<BandPlace>,
}

/// Where a band applies: sites, layers (`[first, end)`; `None`: every layer), and how to say it.
#[derive(Debug, Clone, PartialEq)]
pub struct BandPlace {
    pub sites: Vec<String>,
    pub layers: Option<(u32, u32)>,
    pub label: String,
}

impl ChartBand {
    pub fn contains(&self, v: f64) -> bool {
        self.lo.is_none_or(|lo| v >= lo) && self.hi.is_none_or(|hi| v <= hi)
    }

    pub fn applies(&self, site: &str, layer: u32) -> bool {
        self.places.iter().any(|p| {
            p.sites.iter().any(|s| s == site)
                && p.layers.is_none_or(|(a, b)| (a..b).contains(&layer))
        })
    }

    pub fn range(&self) -> String {
        let f = |v: Option<f64>, open: &str| {
            v.map(|v| format!("{}", (v * 1e6).round() / 1e6)).unwrap_or_else(|| open.into())
        };
        format!("[{}, {}]", f(self.lo, "0"), f(self.hi, "∞"))
    }

    pub fn describe(&self) -> String {
        let places: Vec<&str> = self.places.iter().map(|p| p.label.as_str()).collect();
        format!("{} band {} at {}", self.tests.join(", "), self.range(), places.join("; "))
    }

    /// The bounds on the chart's log10 axis.
    fn log_bounds(&self) -> (Option<f64>, Option<f64>) {
        (self.lo.map(libm::log10), self.hi.map(libm::log10))
    }
}

/// The std-ratio bands of the contracts this report was judged by, oriented as
/// `path / reference` and merged by bounds.
pub fn ratio_bands(r: &Report, path: &str) -> Vec<ChartBand> {
    let mut out: Vec<ChartBand> = Vec::new();
    let Some(verdicts) = &r.verdicts else { return out };
    for c in &verdicts.contracts {
        for t in &c.tests {
            let Some(rb) = &t.ratio_band else { continue };
            if t.outcome == crate::verdict::Outcome::NotMeasurable {
                continue; // e.g. a layer this model does not have
            }
            let Some((lo, hi)) = rb.oriented(path, &r.reference) else { continue };
            if lo.is_none() && hi.is_none() {
                continue;
            }
            // Layers clipped to the model's; a range covering them all is no qualifier.
            let n = r.layers.len() as u32;
            let layers =
                rb.layers.map(|(a, b)| (a.min(n), b.min(n))).filter(|&(a, b)| !(a == 0 && b >= n));
            let every_site = r.site_order.iter().all(|s| rb.sites.contains(s));
            let label = match (every_site, layers) {
                (true, None) => "every site".to_string(),
                (true, Some((a, b))) => format!("every site, layers {a}–{}", b.saturating_sub(1)),
                (false, None) => rb.sites.join(", "),
                (false, Some((a, b))) if b == a + 1 => {
                    format!("{} (layer {a})", rb.sites.join(", "))
                }
                (false, Some((a, b))) => {
                    format!("{} (layers {a}–{})", rb.sites.join(", "), b.saturating_sub(1))
                }
            };
            let place = BandPlace { sites: rb.sites.clone(), layers, label };
            match out.iter_mut().find(|b| b.lo == lo && b.hi == hi) {
                Some(b) => {
                    if !b.tests.contains(&t.id) {
                        b.tests.push(t.id.clone());
                    }
                    if !b.places.contains(&place) {
                        b.places.push(place);
                    }
                }
                None => {
                    out.push(ChartBand { lo, hi, tests: vec![t.id.clone()], places: vec![place] })
                }
            }
        }
    }
    out
}

/// One point of a σ-ratio series.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioPoint {
    pub layer: usize,
    pub ratio: f64,
    /// The bands that apply here and that the ratio leaves (indices into `RatioChart::bands`).
    pub outside: Vec<usize>,
}

/// The σ-ratio chart of one path against the reference: per site, per layer, on a log axis.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioChart {
    pub n_layers: usize,
    /// The view on the log10 axis.
    pub y0: f64,
    pub y1: f64,
    pub bands: Vec<ChartBand>,
    /// Whether the bands are drawn: they lie in (or near) the view.
    pub bands_visible: bool,
    /// `(site, points)` in site order; sites without a positive ratio are left out.
    pub series: Vec<(String, Vec<RatioPoint>)>,
    /// The series shown first: the residual streams, and the sites that leave a band — their σ
    /// ratio's, or the cosine or relative-L2 band that judges them (a fault often keeps its σ
    /// ratio while its direction goes wrong) — at the first layer where any site does: where
    /// the paths part, not everything a fault carries downstream.
    pub key: Vec<String>,
}

impl RatioChart {
    /// `None` when no site has a positive ratio to draw.
    pub fn new(r: &Report, other: &str) -> Option<RatioChart> {
        let n_layers = r.layers.len().max(1);
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for l in &r.layers {
            for s in l.sites.values() {
                if let Some(v) = s.compare.get(other).and_then(|c| c.std_ratio).filter(|v| *v > 0.0)
                {
                    lo = lo.min(libm::log10(v));
                    hi = hi.max(libm::log10(v));
                }
            }
        }
        if !lo.is_finite() {
            return None;
        }
        // The contracts' std-ratio bands for this pair of paths, drawn when they lie in (or
        // near) the view; a bound the band leaves open is drawn to the chart's edge.
        let bands = ratio_bands(r, other);
        let pad = ((hi - lo) * 0.1).max(0.002);
        let (mut y0, mut y1) = (lo - pad, hi + pad);
        let span = y1 - y0;
        let bands_visible = !bands.is_empty()
            && bands.iter().all(|b| {
                let (l, h) = b.log_bounds();
                l.is_none_or(|l| l > y0 - 3.0 * span) && h.is_none_or(|h| h < y1 + 3.0 * span)
            });
        if bands_visible {
            for b in &bands {
                let (l, h) = b.log_bounds();
                if let Some(l) = l {
                    y0 = y0.min(l - 0.05);
                }
                if let Some(h) = h {
                    y1 = y1.max(h + 0.05);
                }
            }
        }
        let series = r
            .site_order
            .iter()
            .filter_map(|site| {
                let points: Vec<RatioPoint> = r
                    .layers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        l.sites
                            .get(site)
                            .and_then(|s| s.compare.get(other))
                            .and_then(|c| c.std_ratio)
                            .map(|v| (i, v))
                    })
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(layer, ratio)| RatioPoint {
                        layer,
                        ratio,
                        outside: (0..bands.len())
                            .filter(|&b| {
                                bands[b].applies(site, layer as u32) && !bands[b].contains(ratio)
                            })
                            .collect(),
                    })
                    .collect();
                (!points.is_empty()).then(|| (site.clone(), points))
            })
            .collect::<Vec<(String, Vec<RatioPoint>)>>();
        // The heatmaps' cosine and relative-L2 metrics, each with the bands that judge it.
        let judged: Vec<(&Metric, Vec<HeatBand>)> = METRICS
            .iter()
            .filter(|m| matches!(m.name, "cosine" | "rel_l2"))
            .map(|m| (m, heat::bands_for(r, other, m.contract_metric)))
            .collect();
        // The first layer at which each site leaves a band, if it does.
        let first_out = |site: &str, points: &[RatioPoint]| {
            let by_ratio = points.iter().find(|p| !p.outside.is_empty()).map(|p| p.layer);
            let by_compare = r.layers.iter().enumerate().position(|(i, l)| {
                let Some(s) = l.sites.get(site) else { return false };
                judged.iter().any(|(m, bands)| {
                    (m.value)(s, other).is_some_and(|v| {
                        heat::worst_standing(bands, site, i as u32, v, m.ideal, m.distance).0
                            == Standing::Outside
                    })
                })
            });
            by_ratio.into_iter().chain(by_compare).min()
        };
        let first: Vec<Option<usize>> =
            series.iter().map(|(site, points)| first_out(site, points)).collect();
        let parting = first.iter().flatten().min().copied();
        let key = series
            .iter()
            .zip(&first)
            .filter(|((site, _), at)| {
                STREAM_SITES.contains(&site.as_str()) || (at.is_some() && **at == parting)
            })
            .map(|((site, _), _)| site.clone())
            .collect();
        Some(RatioChart { n_layers, y0, y1, bands, bands_visible, series, key })
    }

    /// The x of layer `i`'s column centre.
    pub fn x(&self, i: usize) -> f64 {
        let f = &RATIO_FRAME;
        f.left + (f.width - f.left - f.right) * (i as f64 + 0.5) / self.n_layers as f64
    }

    /// The y of a log10 value.
    pub fn y(&self, v: f64) -> f64 {
        let f = &RATIO_FRAME;
        f.top + (f.height - f.top - f.bottom) * (1.0 - (v - self.y0) / (self.y1 - self.y0))
    }

    /// The y of a ratio.
    pub fn y_of_ratio(&self, ratio: f64) -> f64 {
        self.y(libm::log10(ratio))
    }

    /// The `(top, bottom)` y of a band, an open bound drawn to the chart's edge.
    pub fn band_span(&self, b: &ChartBand) -> (f64, f64) {
        let (l, h) = b.log_bounds();
        (self.y(h.unwrap_or(self.y1)), self.y(l.unwrap_or(self.y0)))
    }

    /// Grid lines: `(log10 value, label)` at "nice" steps.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        ticks(self.y0, self.y1).into_iter().map(|t| (t, fmt_ratio(libm::pow(10.0, t)))).collect()
    }

    /// The chart note's sentence about bands.
    pub fn band_note(&self) -> String {
        if self.bands.is_empty() {
            return "No contract this report was judged by bounds this ratio, so no band is drawn."
                .into();
        }
        let list: Vec<String> = self.bands.iter().map(|b| b.describe()).collect();
        format!(
            "Shaded: {}{}.",
            list.join("; "),
            if self.bands_visible {
                ""
            } else {
                " (outside this view: every point lies well inside)"
            }
        )
    }

    /// Why a point is marked: the ranges and tests of the bands it leaves.
    pub fn why_outside(&self, p: &RatioPoint) -> String {
        p.outside
            .iter()
            .map(|&b| {
                let b = &self.bands[b];
                format!(" — outside {} ({})", b.range(), b.tests.join(", "))
            })
            .collect()
    }
}

/// A ratio tick label: plain near 1, scientific far from it.
pub fn fmt_ratio(v: f64) -> String {
    if (0.1..10.0).contains(&v) {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

/// Ticks on `[y0, y1]` at the smallest "nice" step giving at most 8 intervals, 12 ticks at most.
pub fn ticks(y0: f64, y1: f64) -> Vec<f64> {
    let span = y1 - y0;
    let step = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or(1.0);
    let mut t = (y0 / step).ceil() * step;
    let mut out = Vec::new();
    while t <= y1 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

/// The range of the finite values of a grid, for its heat levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub lo: f64,
    pub hi: f64,
}

impl Levels {
    pub fn of<'a>(values: impl IntoIterator<Item = &'a f64>) -> Levels {
        let (lo, hi) = values
            .into_iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        Levels { lo, hi }
    }

    /// 0 at the bottom of the range, `HEAT_LEVELS` at the top.
    pub fn rising(&self, v: f64) -> u32 {
        if self.hi > self.lo {
            (HEAT_LEVELS * (v - self.lo) / (self.hi - self.lo)).round() as u32
        } else {
            0
        }
    }
}

/// A heatmap metric: its raw value at a cell, the distance from the reference it is drawn by
/// (0 for identical samples), the fixed scale of that distance, and the contract name of the
/// metric, whose bands class the cells.
pub struct Metric {
    pub name: &'static str,
    /// What the colours mean, in words that hold in any theme.
    pub caption: &'static str,
    /// The value as the report holds it (cosine, relative L2, dB, σ ratio, noise ratio).
    pub value: fn(&SiteRecord, &str) -> Option<f64>,
    /// The raw value of identical samples.
    pub ideal: f64,
    pub distance: fn(f64) -> f64,
    /// The raw value at a distance (on the side away from `ideal` the cells lie on), for the
    /// colour bar's hover.
    pub raw_at: fn(f64) -> f64,
    pub scale: DistanceScale,
    /// A tick of the colour bar, at a distance of `10^exponent`, in the metric's own terms.
    pub tick: fn(i32) -> String,
    /// The contract's name of the metric (`cosine`, `rel_l2`, `std_ratio`…).
    pub contract_metric: &'static str,
    pub show: fn(f64) -> String,
}

/// Every fixed scale steps half a decade per level, like the KLD strip's.
const HALF_DECADES: f64 = 0.5;

/// The site × layer heatmaps, the first one shown by default.
pub const METRICS: [Metric; 5] = [
    Metric {
        name: "cosine",
        caption: "cosine similarity, coloured by 1 − cos on a fixed log scale",
        value: |s, p| s.compare.get(p)?.cosine,
        ideal: 1.0,
        distance: |c| (1.0 - c).max(0.0),
        raw_at: |d| 1.0 - d,
        scale: DistanceScale { floor: 1e-6, decades_per_level: HALF_DECADES },
        // 1 − cos = 10^e: cosine 0.999…9 with −e nines.
        tick: |e| format!("0.{}", "9".repeat((-e).max(0) as usize)),
        contract_metric: "cosine",
        show: |c| format!("cosine {c:.8}"),
    },
    Metric {
        name: "sqnr",
        caption: "SQNR in dB, coloured on a fixed scale of 10 dB per level",
        value: |s, p| s.compare.get(p)?.sqnr_db,
        ideal: f64::INFINITY,
        // The noise-to-signal amplitude, the same scale as relative L2.
        distance: |db| libm::pow(10.0, -db / 20.0),
        raw_at: |d| -20.0 * libm::log10(d),
        scale: DistanceScale { floor: 1e-4, decades_per_level: HALF_DECADES },
        tick: |e| format!("{} dB", -20 * e),
        contract_metric: "sqnr_db",
        show: |v| format!("SQNR {v:.2} dB"),
    },
    Metric {
        name: "rel_l2",
        caption: "relative L2 error on a fixed log scale",
        value: |s, p| s.compare.get(p)?.rel_l2,
        ideal: 0.0,
        distance: |e| e.max(0.0),
        raw_at: |d| d,
        scale: DistanceScale { floor: 1e-4, decades_per_level: HALF_DECADES },
        tick: decade_label,
        contract_metric: "rel_l2",
        show: |e| format!("relative L2 {e:.3e}"),
    },
    Metric {
        name: "ratio",
        caption: "σ ratio, coloured by |log10 σ ratio| on a fixed log scale",
        value: |s, p| s.compare.get(p)?.std_ratio.filter(|v| *v > 0.0),
        ideal: 1.0,
        distance: |v| libm::fabs(libm::log10(v)),
        raw_at: |d| libm::pow(10.0, d),
        scale: DistanceScale { floor: 1e-5, decades_per_level: HALF_DECADES },
        tick: |e| format!("±{}", decade_label(e)),
        contract_metric: "std_ratio",
        show: |v| format!("σ ratio {v:.6}"),
    },
    Metric {
        name: "noise",
        caption: "each op alone on the reference's input ÷ the rounding noise its arithmetic predicts (1× is as predicted), on a fixed log scale; only ops that differ between paths",
        value: |s, p| s.noise.get(p).map(|n| n.ratio),
        ideal: 0.0,
        distance: |v| v.max(0.0),
        raw_at: |d| d,
        scale: DistanceScale { floor: 0.01, decades_per_level: HALF_DECADES },
        tick: |e| format!("{}×", decade_label(e)),
        contract_metric: "noise_ratio",
        show: |v| format!("{v:.2}× its predicted noise"),
    },
];

/// A grid of cells, a label column on the left and a label row on top.
pub struct Grid {
    pub left: f64,
    pub rows: usize,
    pub cols: usize,
}

impl Grid {
    /// Label row above the cells.
    const TOP: f64 = 20.0;
    /// Margin right of and below the cells.
    const MARGIN: f64 = 10.0;
    /// The baseline of the layer labels.
    pub const LABEL_BASELINE: f64 = 14.0;

    pub fn size(&self) -> (f64, f64) {
        (
            self.left + CELL * self.cols as f64 + Self::MARGIN,
            Self::TOP + CELL * self.rows as f64 + Self::MARGIN,
        )
    }

    /// The top-left corner of cell (column `i`, row `j`).
    pub fn cell(&self, i: usize, j: usize) -> (f64, f64) {
        (self.left + CELL * i as f64, Self::TOP + CELL * j as f64)
    }

    /// The right edge of the row labels.
    pub fn row_label_x(&self) -> f64 {
        self.left - 6.0
    }

    pub fn row_label_y(&self, j: usize) -> f64 {
        Self::TOP + CELL * (j as f64 + 0.7)
    }

    pub fn col_label_x(&self, i: usize) -> f64 {
        self.left + CELL * (i as f64 + 0.5)
    }
}

/// One heat cell: the metric's raw value, its neutral level on the fixed scale, and where it
/// stands against the band that judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    pub value: f64,
    pub level: u32,
    pub standing: Standing,
    /// Index into [`SiteGrid::bands`] of the band that judged it.
    pub band: Option<usize>,
}

/// One metric's site × layer cells for a path against the reference, classed against the
/// contract bands of the report's verdicts.
pub struct SiteGrid {
    /// `cells[site][layer]`, in site order.
    pub cells: Vec<Vec<Option<HeatCell>>>,
    pub bands: Vec<HeatBand>,
    pub grid: Grid,
}

impl SiteGrid {
    pub fn new(r: &Report, other: &str, metric: &Metric) -> SiteGrid {
        let bands = heat::bands_for(r, other, metric.contract_metric);
        let cells = r
            .site_order
            .iter()
            .map(|site| {
                r.layers
                    .iter()
                    .enumerate()
                    .map(|(layer, l)| {
                        let value = l.sites.get(site).and_then(|s| (metric.value)(s, other))?;
                        let (standing, band) = heat::worst_standing(
                            &bands,
                            site,
                            layer as u32,
                            value,
                            metric.ideal,
                            metric.distance,
                        );
                        Some(HeatCell {
                            value,
                            level: metric.scale.level((metric.distance)(value)),
                            standing,
                            band: band.and_then(|b| bands.iter().position(|x| std::ptr::eq(x, b))),
                        })
                    })
                    .collect()
            })
            .collect();
        let grid = Grid { left: SITE_GRID_LEFT, rows: r.site_order.len(), cols: r.layers.len() };
        SiteGrid { cells, bands, grid }
    }

    /// How many cells stand each way: `(outside, explained, near the limit)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.cells.iter().flatten().flatten().filter(|c| c.standing == s).count();
        (n(Standing::Outside), n(Standing::Explained), n(Standing::NearLimit))
    }
}

/// The colour bar under a site × layer heatmap, in px: the neutral levels, then a swatch for
/// each standing against a band.
pub struct ScaleBar;

impl ScaleBar {
    pub const LEFT: f64 = SITE_GRID_LEFT;
    pub const BOX: f64 = 32.0;
    pub const BOX_HEIGHT: f64 = 12.0;
    pub const TOP: f64 = 4.0;
    /// Room between the neutral levels and the band swatches.
    pub const GAP: f64 = 24.0;
    /// Room for one band swatch and its label.
    pub const SWATCH_WIDTH: f64 = 150.0;
    pub const HEIGHT: f64 = 36.0;

    pub fn level_x(level: u32) -> f64 {
        Self::LEFT + Self::BOX * f64::from(level)
    }

    pub fn swatch_x(i: usize) -> f64 {
        Self::level_x(DISTANCE_LEVELS) + Self::GAP + Self::SWATCH_WIDTH * i as f64
    }

    pub fn width(swatches: usize) -> f64 {
        Self::swatch_x(swatches) + 10.0
    }

    pub fn tick_y() -> f64 {
        Self::TOP + Self::BOX_HEIGHT + 13.0
    }
}

/// Significant digits of a per-token std as the grid shows it (in each row's hover) and colours
/// it. The grid is drawn from the stds rounded to these digits and nothing finer, so a permalink
/// carries them rounded ([`crate::permalink::slim`]) and still redraws the same grid.
pub const TOKEN_STD_DIGITS: usize = 4;

/// A per-token std as the grid draws it: rounded to [`TOKEN_STD_DIGITS`] significant digits.
/// Rounding twice gives the same value, so the rounded report draws what the full one does.
pub fn token_std_as_drawn(std: f64) -> f64 {
    if !std.is_finite() || std == 0.0 {
        return std;
    }
    format!("{:.*e}", TOKEN_STD_DIGITS - 1, std).parse().unwrap_or(std)
}

/// One site's per-token std on the reference, position × layer, on a log colour scale.
pub struct TokenGrid {
    /// `stds[position][layer]`, as drawn ([`token_std_as_drawn`]).
    pub stds: Vec<Vec<Option<f64>>>,
    /// Over log10 of the positive stds.
    pub levels: Levels,
    pub grid: Grid,
}

impl TokenGrid {
    /// `None` when the site has no positive std on the reference.
    pub fn new(r: &Report, site: &str) -> Option<TokenGrid> {
        let n_tokens = r.prompt.tokens.len();
        let stds: Vec<Vec<Option<f64>>> = (0..n_tokens)
            .map(|t| {
                r.per_token
                    .layers
                    .iter()
                    .map(|l| {
                        l.get(site)
                            .and_then(|s| s.paths.get(&r.reference))
                            .and_then(|v| v.get(t))
                            .and_then(|s| s.std)
                            .map(token_std_as_drawn)
                    })
                    .collect()
            })
            .collect();
        let logs: Vec<f64> = stds
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| *v > 0.0)
            .map(libm::log10)
            .collect();
        if logs.is_empty() {
            return None;
        }
        let levels = Levels::of(&logs);
        let grid = Grid { left: TOKEN_GRID_LEFT, rows: n_tokens, cols: r.per_token.layers.len() };
        Some(TokenGrid { stds, levels, grid })
    }

    /// The heat level of a positive std.
    pub fn level(&self, std: f64) -> u32 {
        self.levels.rising(libm::log10(std))
    }
}

/// The row label of prompt position `t`: `t: piece`, cut to [`TOKEN_LABEL_CHARS`].
pub fn token_label(t: usize, piece: &str) -> String {
    format!("{t}: {piece}").chars().take(TOKEN_LABEL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(
        lo: Option<f64>,
        hi: Option<f64>,
        sites: &[&str],
        layers: Option<(u32, u32)>,
    ) -> ChartBand {
        ChartBand {
            lo,
            hi,
            tests: vec!["t1".into()],
            places: vec![BandPlace {
                sites: sites.iter().map(|s| s.to_string()).collect(),
                layers,
                label: "here".into(),
            }],
        }
    }

    /// The seed report's σ-ratio chart: the view's ends map onto the frame's edges, every point
    /// and tick lies inside, and an unjudged report has no band.
    #[test]
    fn ratio_chart_maps_its_view_onto_the_frame() {
        let seed = include_str!("../../../../fuzz/corpus/report_json/tiny-report.json");
        let r = Report::from_json(seed).unwrap();
        let c = RatioChart::new(&r, "q8").expect("the seed has ratios");
        let f = &RATIO_FRAME;
        assert!((c.y(c.y0) - (f.height - f.bottom)).abs() < 1e-9);
        assert!((c.y(c.y1) - f.top).abs() < 1e-9);
        assert!(!c.series.is_empty() && c.bands.is_empty() && !c.bands_visible);
        for (_, points) in &c.series {
            for p in points {
                let (x, y) = (c.x(p.layer), c.y_of_ratio(p.ratio));
                assert!(x > f.left && x < f.width - f.right, "x {x}");
                assert!(y > f.top && y < f.height - f.bottom, "y {y}");
                assert!(p.outside.is_empty());
            }
        }
        assert!(c.ticks().iter().all(|(t, _)| *t >= c.y0 && *t <= c.y1));
        assert!(c.band_note().starts_with("No contract"));
        assert!(RatioChart::new(&r, "no-such-path").is_none());
    }

    #[test]
    fn ticks_take_the_smallest_nice_step_with_at_most_eight_intervals() {
        // Span 0.1: 0.01 gives 10 intervals, 0.02 gives 5.
        let t = ticks(-0.05, 0.05);
        assert_eq!(t.len(), 5);
        assert!((t[1] - t[0] - 0.02).abs() < 1e-12);
        assert!(t[0] >= -0.05 && *t.last().unwrap() <= 0.05);
        // A huge span falls back to whole decades, 12 ticks at most.
        assert_eq!(ticks(0.0, 30.0).len(), 12);
        // A degenerate view still yields the value itself when it is on a step.
        assert_eq!(ticks(0.0, 0.0), vec![0.0]);
    }

    #[test]
    fn ratio_labels_are_plain_near_one_and_scientific_far_from_it() {
        assert_eq!(fmt_ratio(1.0), "1");
        assert_eq!(fmt_ratio(1.02), "1.02");
        assert_eq!(fmt_ratio(0.99995), "1");
        assert_eq!(fmt_ratio(0.05), "5.000e-2");
        assert_eq!(fmt_ratio(12.0), "1.200e1");
    }

    #[test]
    fn a_band_contains_its_bounds_and_applies_only_to_its_sites_and_layers() {
        let b = band(Some(0.9), None, &["ffn_swigl"], Some((2, 4)));
        assert!(b.contains(0.9) && b.contains(1e9) && !b.contains(0.8999));
        assert!(b.applies("ffn_swigl", 2) && b.applies("ffn_swigl", 3));
        assert!(!b.applies("ffn_swigl", 4) && !b.applies("q", 2));
        assert_eq!(b.range(), "[0.9, ∞]");
        assert_eq!(band(None, Some(1.1234567), &[], None).range(), "[0, 1.123457]");
        assert_eq!(b.describe(), "t1 band [0.9, ∞] at here");
    }

    #[test]
    fn heat_levels_span_zero_to_nine() {
        let l = Levels::of(&[1.0, 3.0, 2.0]);
        assert_eq!((l.lo, l.hi), (1.0, 3.0));
        assert_eq!((l.rising(1.0), l.rising(3.0), l.rising(2.0)), (0, 9, 5));
        // One value: no range, every cell the lightest.
        let flat = Levels::of(&[2.0]);
        assert_eq!(flat.rising(2.0), 0);
    }

    #[test]
    fn grid_geometry_places_cells_and_labels() {
        let g = Grid { left: 110.0, rows: 2, cols: 3 };
        assert_eq!(g.size(), (110.0 + 54.0 + 10.0, 20.0 + 36.0 + 10.0));
        assert_eq!(g.cell(2, 1), (146.0, 38.0));
        assert_eq!(g.row_label_x(), 104.0);
        assert!((g.row_label_y(1) - (20.0 + 18.0 * 1.7)).abs() < 1e-12);
        assert_eq!(g.col_label_x(0), 119.0);
        assert_eq!(
            labelled(30, 14).collect::<Vec<_>>(),
            vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28]
        );
        assert_eq!(labelled(3, 12).collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn metrics_show_what_they_draw() {
        let [cosine, sqnr, rel_l2, ratio, noise] = &METRICS;
        assert_eq!((cosine.show)(0.999), "cosine 0.99900000");
        assert!(((cosine.distance)(0.999) - 1e-3).abs() < 1e-12);
        assert_eq!((rel_l2.show)(0.01), "relative L2 1.000e-2");
        assert_eq!((ratio.show)(1.25), "σ ratio 1.250000");
        // 1.25 and 0.8 are as far from 1 on the σ-ratio scale.
        assert!(((ratio.distance)(1.25) - (ratio.distance)(0.8)).abs() < 1e-12);
        // 40 dB is a noise amplitude of 1 %, as relative L2 0.01.
        assert!(((sqnr.distance)(40.0) - 0.01).abs() < 1e-12);
        assert_eq!((noise.show)(1.234), "1.23× its predicted noise");
        // Colour-bar ticks in each metric's own terms.
        assert_eq!(
            ((cosine.tick)(-3), (sqnr.tick)(-2), (rel_l2.tick)(-2)),
            ("0.999".into(), "40 dB".into(), "0.01".into())
        );
        assert_eq!(((ratio.tick)(-3), (noise.tick)(0)), ("±0.001".into(), "1×".into()));
    }

    #[test]
    fn token_labels_are_cut_by_characters() {
        assert_eq!(token_label(3, "Ġis"), "3: Ġis");
        assert_eq!(token_label(0, "ααααααααααααααααααααααα").chars().count(), TOKEN_LABEL_CHARS);
    }
}
