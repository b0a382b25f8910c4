//! The first chart of a report, as plain data: how far each path is from the reference, layer
//! by layer, on a log axis of fixed decades, against the contract bands that judge those sites.
//!
//! The quantity is **relative L2**, ‖path − reference‖ / ‖reference‖, not 1 − cos: it grows
//! linearly with the error's amplitude (1 − cos ≈ rel-L2² / 2 for small errors, which squashes a
//! healthy run into twice the decades and hides the gap to a fault), it sees a pure scale error
//! that leaves the cosine at 1 (a path that doubles its output has rel-L2 1, cosine 1), it is
//! the SQNR's own scale (rel-L2 = 10^(−SQNR/20)), and the default contract bands every layer
//! site on it — the residual stream (`PARALLAX-PARITY-006`), the norms (`-008`) and the matmul
//! outputs (`-010`).
//!
//! Two series per path: the residual stream after the layer ([`RESIDUAL_SITE`]), what the next
//! layer receives; and the layer's worst op site (norms, projections, activations: every site
//! but the stream's, [`STREAM_SITES`]) — the one closest to (or furthest past) its own band's
//! limit, so the op the contract is nearest to failing on. Each point is classed
//! against the band that judges it ([`heat::worst_standing`], the heatmaps' classing), so a
//! point marked outside is exactly a point a verdict counted as failing.
//!
//! Every transcendental function is `libm`'s, so the geometry — and the standalone HTML — is
//! the same to the byte on every target.

use super::charts::Frame;
use super::compare::decade_label;
use super::heat::{self, HeatBand, Standing};
use crate::Report;

/// The residual stream after a whole layer: the series every layer has.
pub const RESIDUAL_SITE: &str = "resid_ffn";

/// The residual stream, before and after the FFN: the residual series draws it, so the worst
/// site is looked for among the ops that write into it (a mid-layer stream point would mostly
/// repeat the residual series).
pub const STREAM_SITES: [&str; 2] = ["resid_attn", RESIDUAL_SITE];

/// The contract's name of the metric drawn.
pub const METRIC: &str = "rel_l2";

/// Relative L2 below this (identical samples included) is drawn on it: a log axis has no zero.
pub const FLOOR: f64 = 1e-6;

/// The decades every view spans at least, `[10^lo, 10^hi]`, so that two reports of different
/// ranges draw the same value at the same height, and a healthy run's points sit low in a view
/// reaching up to a rel-L2 of 1 (the error as large as the signal).
pub const MIN_VIEW: (i32, i32) = (-3, 0);

/// The chart's frame, in viewBox units; the top margin holds the key, the right one the band
/// limits' labels (outside the plot, where no point can cover them).
pub const DISTANCE_FRAME: Frame =
    Frame { width: 880.0, height: 280.0, left: 60.0, right: 64.0, top: 30.0, bottom: 36.0 };

/// The page's view of the residual stream while a run streams: the same view, smaller.
pub const LIVE_FRAME: Frame =
    Frame { width: 640.0, height: 160.0, left: 60.0, right: 12.0, top: 10.0, bottom: 36.0 };

/// The summary card's sparkline: the same view, small, with a strip of one cell per layer
/// under it (the strip's height is the bottom margin).
pub const SPARKLINE_FRAME: Frame =
    Frame { width: 240.0, height: 46.0, left: 2.0, right: 2.0, top: 4.0, bottom: 14.0 };

/// At most about this many layer labels under the chart.
pub const LAYER_LABELS: usize = 14;

/// Whole decades covering every one of `values` (positive), and at least [`MIN_VIEW`].
fn view_decades(values: impl Iterator<Item = f64>) -> (i32, i32) {
    let (mut lo_decade, mut hi_decade) = MIN_VIEW;
    for v in values {
        let e = libm::log10(v);
        // A hair of tolerance, so that a value on a decade does not open the next one.
        lo_decade = lo_decade.min(libm::floor(e + 1e-9) as i32);
        hi_decade = hi_decade.max(libm::ceil(e - 1e-9) as i32);
    }
    (lo_decade, hi_decade)
}

/// Which series a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// [`RESIDUAL_SITE`] at every layer.
    Residual,
    /// Per layer, the op site closest to its band's limit.
    WorstSite,
}

impl SeriesKind {
    pub fn describe(self) -> &'static str {
        match self {
            SeriesKind::Residual => "residual stream",
            SeriesKind::WorstSite => "worst op of the layer",
        }
    }
}

/// One drawn point: a site's relative L2 at a layer and where it stands against its band.
#[derive(Debug, Clone, PartialEq)]
pub struct DistancePoint {
    pub layer: usize,
    pub site: String,
    /// Relative L2 as the report holds it (NaN for a sample that was not finite).
    pub value: f64,
    /// Elements compared per path.
    pub count: u64,
    pub standing: Standing,
    /// Index into [`DistanceChart::bands`] of the band that judged it.
    pub band: Option<usize>,
}

impl DistancePoint {
    /// Outside its band and held against the run.
    pub fn failing(&self) -> bool {
        self.standing == Standing::Outside
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DistanceSeries {
    pub kind: SeriesKind,
    /// In layer order; a layer without a value at any candidate site has no point.
    pub points: Vec<DistancePoint>,
}

/// The distance chart of one path against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct DistanceChart {
    pub n_layers: usize,
    /// The view, in whole decades: `[10^lo_decade, 10^hi_decade]`.
    pub lo_decade: i32,
    pub hi_decade: i32,
    /// The relative-L2 bands with an upper limit that judge a drawn point, in verdict order.
    pub bands: Vec<HeatBand>,
    /// The residual series first (when the report has the site), then the worst sites.
    pub series: Vec<DistanceSeries>,
}

/// How close a point is to failing, for picking a layer's worst site: its value over the
/// tightest upper limit that judges it, `None` when no band with an upper limit does. A value
/// that is not a number is as bad as it gets.
fn band_fraction(bands: &[HeatBand], site: &str, layer: u32, value: f64) -> Option<f64> {
    let limit = bands
        .iter()
        .filter(|b| b.applies(site, layer))
        .filter_map(|b| b.hi.filter(|hi| *hi > 0.0))
        .reduce(f64::min)?;
    Some(if value.is_nan() { f64::INFINITY } else { value / limit })
}

impl DistanceChart {
    /// `None` when no site has a relative L2 for this path.
    pub fn new(r: &Report, other: &str) -> Option<DistanceChart> {
        let all_bands = heat::bands_for(r, other, METRIC);
        let point = |layer: usize, site: &str| -> Option<DistancePoint> {
            let c = r.layers[layer].sites.get(site)?.compare.get(other)?;
            let value = c.rel_l2?;
            let (standing, band) =
                heat::worst_standing(&all_bands, site, layer as u32, value, 0.0, |e| e.max(0.0));
            Some(DistancePoint {
                layer,
                site: site.to_string(),
                value,
                count: c.count,
                standing,
                band: band.and_then(|b| all_bands.iter().position(|x| std::ptr::eq(x, b))),
            })
        };
        let residual: Vec<DistancePoint> =
            (0..r.layers.len()).filter_map(|i| point(i, RESIDUAL_SITE)).collect();
        let worst: Vec<DistancePoint> = (0..r.layers.len())
            .filter_map(|i| {
                let candidates: Vec<DistancePoint> = r
                    .site_order
                    .iter()
                    .filter(|s| !STREAM_SITES.contains(&s.as_str()))
                    .filter_map(|s| point(i, s))
                    .collect();
                // Closest to its own band's limit; in a layer no band judges, the largest.
                let banded =
                    |p: &DistancePoint| band_fraction(&all_bands, &p.site, i as u32, p.value);
                let by_value =
                    |p: &DistancePoint| if p.value.is_nan() { f64::INFINITY } else { p.value };
                if candidates.iter().any(|p| banded(p).is_some()) {
                    candidates
                        .into_iter()
                        .filter_map(|p| banded(&p).map(|f| (f, p)))
                        .reduce(|a, b| if b.0 > a.0 { b } else { a })
                        .map(|(_, p)| p)
                } else {
                    candidates
                        .into_iter()
                        .reduce(|a, b| if by_value(&b) > by_value(&a) { b } else { a })
                }
            })
            .collect();
        if residual.is_empty() && worst.is_empty() {
            return None;
        }
        // Keep only the bands that judge a drawn point and have a limit to draw, renumbered.
        let mut bands: Vec<HeatBand> = Vec::new();
        let mut series = Vec::new();
        for (kind, mut points) in [(SeriesKind::Residual, residual), (SeriesKind::WorstSite, worst)]
        {
            for p in &mut points {
                p.band = p.band.filter(|&b| all_bands[b].hi.is_some()).map(|b| {
                    match bands.iter().position(|x| *x == all_bands[b]) {
                        Some(i) => i,
                        None => {
                            bands.push(all_bands[b].clone());
                            bands.len() - 1
                        }
                    }
                });
            }
            if !points.is_empty() {
                series.push(DistanceSeries { kind, points });
            }
        }
        // The view: whole decades covering every finite point (the floor for those below it)
        // and every band limit drawn, and at least MIN_VIEW.
        let values = series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.value)
            .filter(|v| v.is_finite())
            .map(|v| v.max(FLOOR))
            .chain(bands.iter().filter_map(|b| b.hi).filter(|v| *v > 0.0));
        let (lo_decade, hi_decade) = view_decades(values);
        Some(DistanceChart { n_layers: r.layers.len().max(1), lo_decade, hi_decade, bands, series })
    }

    /// The view alone (no band, no series) of `n_layers` layers holding `values`: the decades
    /// the chart of a report with those values would span. What the page draws while a run
    /// streams, before the report exists.
    pub fn view(n_layers: usize, values: impl IntoIterator<Item = f64>) -> DistanceChart {
        let values = values.into_iter().filter(|v| v.is_finite()).map(|v| v.max(FLOOR));
        let (lo_decade, hi_decade) = view_decades(values);
        DistanceChart {
            n_layers: n_layers.max(1),
            lo_decade,
            hi_decade,
            bands: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Grid lines at every decade of the view: `(exponent, label)`.
    pub fn ticks(&self) -> Vec<(i32, String)> {
        (self.lo_decade..=self.hi_decade).map(|e| (e, decade_label(e))).collect()
    }

    /// The x of layer `i`'s column centre.
    pub fn x(&self, i: usize) -> f64 {
        self.x_in(&DISTANCE_FRAME, i)
    }

    /// The y of a log10 value.
    pub fn y_of_log(&self, e: f64) -> f64 {
        self.y_of_log_in(&DISTANCE_FRAME, e)
    }

    /// The y of a relative L2: one below the floor on the floor, one that is not finite on the
    /// top edge (it is marked, not hidden).
    pub fn y(&self, value: f64) -> f64 {
        self.y_in(&DISTANCE_FRAME, value)
    }

    /// [`Self::x`] in another frame: the summary card's sparkline draws this chart's view small.
    pub fn x_in(&self, f: &Frame, i: usize) -> f64 {
        f.left + (f.width - f.left - f.right) * (i as f64 + 0.5) / self.n_layers as f64
    }

    /// [`Self::y_of_log`] in another frame.
    pub fn y_of_log_in(&self, f: &Frame, e: f64) -> f64 {
        let (lo, hi) = (f64::from(self.lo_decade), f64::from(self.hi_decade));
        f.top + (f.height - f.top - f.bottom) * (1.0 - (e - lo) / (hi - lo))
    }

    /// [`Self::y`] in another frame.
    pub fn y_in(&self, f: &Frame, value: f64) -> f64 {
        if !value.is_finite() {
            return self.y_of_log_in(f, f64::from(self.hi_decade));
        }
        self.y_of_log_in(f, libm::log10(value.max(FLOOR)))
    }

    /// The `[x0, x1]` a band's limit line spans: its layers' columns, or the whole width.
    pub fn band_x_span(&self, b: &HeatBand) -> (f64, f64) {
        let f = &DISTANCE_FRAME;
        let half = (f.width - f.left - f.right) / self.n_layers as f64 / 2.0;
        match b.layers {
            Some((a, end)) => {
                let end = (end as usize).min(self.n_layers).max(a as usize + 1);
                (self.x(a as usize) - half, self.x(end - 1) + half)
            }
            None => (f.left, f.width - f.right),
        }
    }

    /// Every drawn point.
    pub fn points(&self) -> impl Iterator<Item = (SeriesKind, &DistancePoint)> {
        self.series.iter().flat_map(|s| s.points.iter().map(move |p| (s.kind, p)))
    }

    /// How many drawn points stand each way: `(outside, explained, near the limit)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.points().filter(|(_, p)| p.standing == s).count();
        let failing = self.points().filter(|(_, p)| p.failing()).count();
        (failing, n(Standing::Explained), n(Standing::NearLimit))
    }

    /// Per layer, the drawn point that stands worst against its band (outside before
    /// explained before near the limit before inside; among equals the larger value), `None`
    /// for a layer without a point: what the summary card's sparkline marks under each layer.
    pub fn worst_per_layer(&self) -> Vec<Option<&DistancePoint>> {
        let magnitude = |p: &DistancePoint| if p.value.is_nan() { f64::INFINITY } else { p.value };
        let mut worst: Vec<Option<&DistancePoint>> = vec![None; self.n_layers];
        for (_, p) in self.points() {
            let Some(slot) = worst.get_mut(p.layer) else { continue };
            let replaces = match slot {
                None => true,
                Some(q) => (p.standing, magnitude(p)) > (q.standing, magnitude(q)),
            };
            if replaces {
                *slot = Some(p);
            }
        }
        worst
    }

    /// The caption's sentence on bands: which limits are drawn, and how many points leave them.
    pub fn band_note(&self) -> String {
        if self.bands.is_empty() {
            return "No contract band judges relative L2 at these sites, so no limit is drawn."
                .into();
        }
        let limits: Vec<String> = self
            .bands
            .iter()
            .map(|b| {
                // A long site list is the hover's; the caption counts it.
                let at = if b.sites.len() > 3 {
                    format!("{} sites", b.sites.len())
                } else {
                    b.sites.join(", ")
                };
                format!("{} {} at {at}", b.test, b.text)
            })
            .collect();
        let (outside, explained, near) = self.counts();
        let standing = if outside + explained == 0 {
            "every point lies inside its band".to_string()
        } else {
            format!("{outside} points outside their band, {explained} outside but explained")
        };
        format!(
            "Dashed lines: the band limits ({}); {}{}.",
            limits.join("; "),
            standing,
            if near > 0 { format!(", {near} in the last quarter of it") } else { String::new() }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Outcome;

    const FAULT: &str =
        include_str!("../../../judge/tests/fixtures/inject-q4k-scales-1-ffn_gate.json");
    const HEALTHY: &str = include_str!("../../../judge/tests/fixtures/healthy.json");

    fn chart(json: &str) -> (Report, DistanceChart) {
        let r = Report::from_json(json).unwrap();
        let c = DistanceChart::new(&r, "q8").expect("the fixture has relative L2");
        (r, c)
    }

    fn series(c: &DistanceChart, kind: SeriesKind) -> &[DistancePoint] {
        &c.series.iter().find(|s| s.kind == kind).unwrap().points
    }

    /// The view covers every point and every band limit drawn, in whole decades, at least
    /// MIN_VIEW; the ticks are exactly those decades.
    #[test]
    fn the_view_covers_the_bands_in_whole_decades() {
        for json in [FAULT, HEALTHY] {
            let (_, c) = chart(json);
            assert!(c.lo_decade <= MIN_VIEW.0 && c.hi_decade >= MIN_VIEW.1);
            let (lo, hi) =
                (libm::pow(10.0, c.lo_decade.into()), libm::pow(10.0, c.hi_decade.into()));
            assert!(!c.bands.is_empty());
            for b in &c.bands {
                let limit = b.hi.unwrap();
                assert!(limit >= lo && limit <= hi, "band {limit} outside [{lo}, {hi}]");
            }
            for (_, p) in c.points() {
                assert!(p.value >= lo && p.value <= hi, "point {}", p.value);
            }
            let ticks: Vec<i32> = c.ticks().iter().map(|t| t.0).collect();
            assert_eq!(ticks, (c.lo_decade..=c.hi_decade).collect::<Vec<_>>());
            assert_eq!(c.ticks()[0].1, decade_label(c.lo_decade));
            let f = &DISTANCE_FRAME;
            assert!((c.y_of_log(c.lo_decade.into()) - (f.height - f.bottom)).abs() < 1e-9);
            assert!((c.y_of_log(c.hi_decade.into()) - f.top).abs() < 1e-9);
        }
    }

    /// The fixed view: the same value is drawn at the same height in both reports.
    #[test]
    fn the_same_value_is_drawn_alike_in_both_reports() {
        let (_, healthy) = chart(HEALTHY);
        let (_, fault) = chart(FAULT);
        assert_eq!((healthy.lo_decade, healthy.hi_decade), (fault.lo_decade, fault.hi_decade));
        assert_eq!(healthy.y(0.01), fault.y(0.01));
    }

    /// Failing points come from the verdicts' bands: the fault's layer 1 leaves them, a
    /// healthy run has none.
    #[test]
    fn failing_points_are_flagged_from_the_verdicts() {
        let (r, c) = chart(FAULT);
        let worst = series(&c, SeriesKind::WorstSite);
        let one = worst.iter().find(|p| p.layer == 1).unwrap();
        assert!(one.failing(), "{one:?}");
        let band = &c.bands[one.band.unwrap()];
        assert_eq!((band.test.as_str(), band.outcome), ("PARALLAX-PARITY-010", Outcome::Fail));
        assert!(one.value > band.hi.unwrap());
        // Upstream of the fault, layer 0 stays inside on both series.
        assert!(c.points().filter(|(_, p)| p.layer == 0).all(|(_, p)| !p.failing()));
        // The residual stream is judged by its own band, tighter than the matmul sites'.
        let resid = series(&c, SeriesKind::Residual);
        let rb = &c.bands[resid[0].band.unwrap()];
        assert_eq!(rb.test, "PARALLAX-PARITY-006");
        // Every failing point is one the verdict counted: its test failed.
        let failed_tests: Vec<&str> = r.verdicts.as_ref().unwrap().contracts[0]
            .tests
            .iter()
            .filter(|t| t.outcome == Outcome::Fail)
            .map(|t| t.id.as_str())
            .collect();
        for (_, p) in c.points().filter(|(_, p)| p.failing()) {
            assert!(failed_tests.contains(&c.bands[p.band.unwrap()].test.as_str()));
        }
        assert!(c.band_note().contains("points outside their band"));

        let (_, healthy) = chart(HEALTHY);
        assert!(healthy.points().all(|(_, p)| !p.failing()));
        assert!(healthy.band_note().contains("every point lies inside its band"));
    }

    /// The sparkline's cell under each layer is the layer's worst point: the fault's layer 1
    /// stands outside, its layer 0 and every layer of a healthy run do not.
    #[test]
    fn the_worst_point_of_each_layer_stands_worst() {
        let (_, c) = chart(FAULT);
        let worst = c.worst_per_layer();
        assert_eq!(worst.len(), c.n_layers);
        assert!(worst[1].unwrap().failing(), "{:?}", worst[1]);
        assert!(!worst[0].unwrap().failing());
        for (i, p) in worst.iter().enumerate() {
            let p = p.unwrap();
            assert_eq!(p.layer, i);
            for (_, q) in c.points().filter(|(_, q)| q.layer == i) {
                assert!(q.standing <= p.standing, "layer {i}: {q:?} stands worse than {p:?}");
            }
        }
        let (_, healthy) = chart(HEALTHY);
        assert!(healthy.worst_per_layer().iter().all(|p| !p.unwrap().failing()));
    }

    /// The worst site of a layer is the op site closest to its own band's limit; the residual
    /// stream is never it.
    #[test]
    fn the_worst_site_is_the_one_closest_to_its_limit() {
        let (r, c) = chart(FAULT);
        let bands = heat::bands_for(&r, "q8", METRIC);
        for p in series(&c, SeriesKind::WorstSite) {
            assert!(!STREAM_SITES.contains(&p.site.as_str()), "{}", p.site);
            let fraction = |site: &str| {
                let v = r.layers[p.layer].sites[site].compare["q8"].rel_l2.unwrap();
                band_fraction(&bands, site, p.layer as u32, v)
            };
            let best = fraction(&p.site).unwrap();
            for s in r.site_order.iter().filter(|s| !STREAM_SITES.contains(&s.as_str())) {
                if let Some(f) = fraction(s) {
                    assert!(f <= best, "layer {}: {s} at {f} beats {} at {best}", p.layer, p.site);
                }
            }
        }
        assert_eq!(series(&c, SeriesKind::WorstSite).len(), r.layers.len(), "one per layer");
    }

    /// Without verdicts there are no bands: no limit is drawn, the worst site is the largest,
    /// and no point is marked.
    #[test]
    fn an_unjudged_report_draws_no_limit_and_picks_the_largest() {
        let (mut r, _) = chart(FAULT);
        r.verdicts = None;
        let c = DistanceChart::new(&r, "q8").unwrap();
        assert!(c.bands.is_empty() && c.band_note().starts_with("No contract band"));
        assert_eq!((c.lo_decade, c.hi_decade), MIN_VIEW);
        for p in series(&c, SeriesKind::WorstSite) {
            let largest = r.layers[p.layer]
                .sites
                .iter()
                .filter(|(s, _)| !STREAM_SITES.contains(&s.as_str()))
                .filter_map(|(_, s)| s.compare.get("q8")?.rel_l2)
                .fold(0.0, f64::max);
            assert_eq!(p.value, largest);
            assert_eq!(p.standing, Standing::Unbanded);
        }
        assert!(DistanceChart::new(&r, "no-such-path").is_none());
    }

    /// Identical samples (rel-L2 0) are drawn on the floor, which the view then reaches; a band
    /// over some layers is drawn over their columns only.
    #[test]
    fn identical_samples_sit_on_the_floor_and_a_layer_band_spans_its_columns() {
        let (mut r, _) = chart(HEALTHY);
        for l in &mut r.layers {
            for s in l.sites.values_mut() {
                if let Some(c) = s.compare.get_mut("q8") {
                    c.rel_l2 = Some(0.0);
                }
            }
        }
        let c = DistanceChart::new(&r, "q8").unwrap();
        assert_eq!(c.lo_decade, -6);
        let f = &DISTANCE_FRAME;
        assert!((c.y(0.0) - (f.height - f.bottom)).abs() < 1e-9);
        let band = HeatBand {
            lo: None,
            hi: Some(0.1),
            sites: vec![RESIDUAL_SITE.into()],
            layers: Some((1, 2)),
            test: "T".into(),
            text: "≤ 0.1".into(),
            outcome: Outcome::Pass,
        };
        let (x0, x1) = c.band_x_span(&band);
        assert!(x0 < c.x(1) && c.x(1) < x1 && x0 > c.x(0) && x1 < c.x(2));
    }
}
