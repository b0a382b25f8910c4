//! How a site × layer heat cell is coloured, as plain data: on a fixed scale of distance from
//! the reference (the same in every report, never the report's own min/max), and against the
//! contract band that judges that site and metric — well inside it, near its limit, outside it,
//! or outside but explained by the arithmetic.
//!
//! Every transcendental function here is `libm`'s, like the rest of the chart models, so the
//! standalone HTML is the same to the byte on every target.

use crate::verdict::Outcome;
use crate::Report;

/// A cell is "near the limit" from this fraction of the way to its band's limit on: the last
/// quarter of the band, in the metric's own distance (1 − cos, relative L2, |log10 σ ratio|…).
pub const NEAR_LIMIT: f64 = 0.75;

/// Neutral colour levels run 0..DISTANCE_LEVELS (the stylesheet's `px-d0` … `px-d9`).
pub const DISTANCE_LEVELS: u32 = 10;

/// A fixed log scale of distance: level 0 below `floor` (identical included), then
/// `decades_per_level` decades per level, the top level open-ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceScale {
    pub floor: f64,
    pub decades_per_level: f64,
}

impl DistanceScale {
    /// The neutral level of a distance; a distance that is not a number gets the top level.
    pub fn level(&self, distance: f64) -> u32 {
        if distance.is_nan() {
            return DISTANCE_LEVELS - 1;
        }
        if distance < self.floor {
            return 0;
        }
        let above = (libm::log10(distance) - libm::log10(self.floor)) / self.decades_per_level;
        // A hair of tolerance: a decade computed through log10 may land just below its level.
        ((above + 1e-9).floor() + 1.0).min(f64::from(DISTANCE_LEVELS - 1)) as u32
    }

    /// The lower edge of `level` (1..DISTANCE_LEVELS), as a distance.
    pub fn edge(&self, level: u32) -> f64 {
        libm::pow(
            10.0,
            libm::log10(self.floor) + f64::from(level.saturating_sub(1)) * self.decades_per_level,
        )
    }

    /// The colour bar's ticks: `(level whose lower edge it marks, decade exponent)` at every
    /// level edge that is a whole decade.
    pub fn decade_ticks(&self) -> Vec<(u32, i32)> {
        (1..DISTANCE_LEVELS)
            .filter_map(|level| {
                let e = libm::log10(self.edge(level));
                let round = libm::round(e);
                ((e - round).abs() < 1e-6).then_some((level, round as i32))
            })
            .collect()
    }
}

/// Where a cell stands against the band that judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// No contract test judges this site and metric for this pair of paths.
    Unbanded,
    /// Inside the band, short of its last quarter.
    Inside,
    /// Inside the band, in its last quarter.
    NearLimit,
    /// Outside the band, in a test whose every departure the arithmetic explains.
    Explained,
    /// Outside the band.
    Outside,
}

impl Standing {
    /// How the hover says it.
    pub fn describe(self) -> &'static str {
        match self {
            Standing::Unbanded => "no contract band for this site and metric",
            Standing::Inside => "inside the band",
            Standing::NearLimit => "near the limit (last quarter of the band)",
            Standing::Explained => "outside the band, explained by the arithmetic",
            Standing::Outside => "outside the band",
        }
    }
}

/// A contract band on one heatmap metric, in the metric's raw terms (cosine, relative L2, dB,
/// σ ratio, noise ratio), and where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatBand {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub sites: Vec<String>,
    /// `[first, end)`; `None`: every layer.
    pub layers: Option<(u32, u32)>,
    pub test: String,
    /// The band as the verdict writes it (`≥ 0.964`).
    pub text: String,
    pub outcome: Outcome,
}

impl HeatBand {
    pub fn applies(&self, site: &str, layer: u32) -> bool {
        self.sites.iter().any(|s| s == site)
            && self.layers.is_none_or(|(a, b)| (a..b).contains(&layer))
    }

    pub fn contains(&self, v: f64) -> bool {
        !v.is_nan() && self.lo.is_none_or(|lo| v >= lo) && self.hi.is_none_or(|hi| v <= hi)
    }
}

/// The bands of the report's verdicts that judge `metric` (the contract's name for it:
/// `cosine`, `rel_l2`, `std_ratio`…) between `other` and the reference. Tests that could not be
/// measured draw nothing; a std-ratio band is oriented as `other / reference`, as drawn.
pub fn bands_for(r: &Report, other: &str, metric: &str) -> Vec<HeatBand> {
    let Some(verdicts) = &r.verdicts else { return Vec::new() };
    let mut out = Vec::new();
    for t in verdicts.contracts.iter().flat_map(|c| &c.tests) {
        if matches!(t.outcome, Outcome::NotMeasurable | Outcome::Measured | Outcome::Refused) {
            continue;
        }
        let text = t.band.clone().unwrap_or_default();
        let band = |lo, hi, sites: &Vec<String>, layers| HeatBand {
            lo,
            hi,
            sites: sites.clone(),
            layers,
            test: t.id.clone(),
            text: text.clone(),
            outcome: t.outcome,
        };
        if let Some(cb) = &t.compare_band {
            if cb.metric == metric && cb.compares(other, &r.reference) {
                out.push(band(cb.lo, cb.hi, &cb.sites, cb.layers));
            }
        }
        if let Some(rb) = &t.ratio_band {
            if metric == "std_ratio" {
                if let Some((lo, hi)) = rb.oriented(other, &r.reference) {
                    out.push(band(lo, hi, &rb.sites, rb.layers));
                }
            }
        }
    }
    out
}

/// Where a raw value stands against one band. `ideal` is the metric's value for identical
/// samples and `distance` maps a raw value to its distance from it: the near-limit fraction is
/// the value's distance over the distance of the bound it heads for (the upper bound above
/// `ideal`, the lower below). A side the band leaves open has no near-limit part.
pub fn standing(band: &HeatBand, raw: f64, ideal: f64, distance: fn(f64) -> f64) -> Standing {
    if !band.contains(raw) {
        return if band.outcome == Outcome::Explained {
            Standing::Explained
        } else {
            Standing::Outside
        };
    }
    let bound = if raw >= ideal { band.hi } else { band.lo };
    match bound.map(distance) {
        Some(limit) if limit > 0.0 && distance(raw) >= NEAR_LIMIT * limit => Standing::NearLimit,
        _ => Standing::Inside,
    }
}

/// The standing of a cell against every band that applies to it: the gravest, and the band
/// that gave it (`None` when no band applies).
pub fn worst_standing<'b>(
    bands: &'b [HeatBand],
    site: &str,
    layer: u32,
    raw: f64,
    ideal: f64,
    distance: fn(f64) -> f64,
) -> (Standing, Option<&'b HeatBand>) {
    bands
        .iter()
        .filter(|b| b.applies(site, layer))
        .map(|b| (standing(b, raw, ideal, distance), Some(b)))
        .max_by_key(|(s, _)| *s)
        .unwrap_or((Standing::Unbanded, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_minus(c: f64) -> f64 {
        1.0 - c
    }

    fn cosine_band(outcome: Outcome) -> HeatBand {
        HeatBand {
            lo: Some(0.964),
            hi: None,
            sites: vec!["ffn_gate".into()],
            layers: None,
            test: "T-011".into(),
            text: "≥ 0.964".into(),
            outcome,
        }
    }

    const COSINE_SCALE: DistanceScale = DistanceScale { floor: 1e-6, decades_per_level: 0.5 };

    #[test]
    fn a_cell_is_neutral_well_inside_warned_in_the_last_quarter_and_out_beyond() {
        let b = cosine_band(Outcome::Pass);
        let s = |cos| standing(&b, cos, 1.0, one_minus);
        // The limit is 1 − cos = 0.036: a healthy 0.9995 is well inside.
        assert_eq!(s(0.9995), Standing::Inside);
        assert_eq!(s(1.0), Standing::Inside);
        // 80 % of the way to the limit.
        assert_eq!(s(1.0 - 0.8 * 0.036), Standing::NearLimit);
        assert_eq!(s(1.0 - 0.7 * 0.036), Standing::Inside);
        assert_eq!(s(0.964), Standing::NearLimit, "the bound itself is inside");
        assert_eq!(s(0.933), Standing::Outside);
        assert_eq!(s(f64::NAN), Standing::Outside, "a value that is not a number fails");
        let explained = cosine_band(Outcome::Explained);
        assert_eq!(standing(&explained, 0.933, 1.0, one_minus), Standing::Explained);
    }

    #[test]
    fn an_upper_bound_warns_above_the_ideal_and_a_ratio_band_on_either_side() {
        let rel = HeatBand { lo: None, hi: Some(0.27), ..cosine_band(Outcome::Pass) };
        let s = |v| standing(&rel, v, 0.0, |v| v);
        assert_eq!(
            (s(0.03), s(0.21), s(0.28)),
            (Standing::Inside, Standing::NearLimit, Standing::Outside)
        );
        let ratio = HeatBand { lo: Some(0.8), hi: Some(1.25), ..cosine_band(Outcome::Pass) };
        let log = |v: f64| libm::log10(v).abs();
        let s = |v| standing(&ratio, v, 1.0, log);
        assert_eq!(s(1.01), Standing::Inside);
        assert_eq!(s(1.2), Standing::NearLimit);
        assert_eq!(s(0.82), Standing::NearLimit);
        assert_eq!((s(1.3), s(0.7)), (Standing::Outside, Standing::Outside));
    }

    #[test]
    fn the_gravest_band_that_applies_wins() {
        let loose = HeatBand { lo: Some(0.9), ..cosine_band(Outcome::Pass) };
        let tight = HeatBand { lo: Some(0.99), layers: Some((0, 2)), ..cosine_band(Outcome::Fail) };
        let bands = [loose, tight];
        let (s, b) = worst_standing(&bands, "ffn_gate", 1, 0.95, 1.0, one_minus);
        assert_eq!((s, b.map(|b| b.lo)), (Standing::Outside, Some(Some(0.99))));
        // Layer 2 is outside the tight band's layers: the loose one alone judges it.
        assert_eq!(worst_standing(&bands, "ffn_gate", 2, 0.95, 1.0, one_minus).0, Standing::Inside);
        assert_eq!(worst_standing(&bands, "q", 1, 0.5, 1.0, one_minus), (Standing::Unbanded, None));
    }

    /// The neutral scale is fixed: the same distance gets the same level whatever else the
    /// report holds, unlike a scale stretched over the report's own range.
    #[test]
    fn neutral_levels_are_fixed_decades() {
        let s = COSINE_SCALE;
        assert_eq!((s.level(0.0), s.level(9e-7), s.level(1e-6)), (0, 0, 1));
        assert_eq!(s.level(1e-5), 3);
        assert_eq!(s.level(5e-4), 6);
        assert_eq!((s.level(0.067), s.level(1.0), s.level(f64::NAN)), (9, 9, 9));
        assert!((s.edge(3) - 1e-5).abs() < 1e-18);
        assert_eq!(s.decade_ticks(), vec![(1, -6), (3, -5), (5, -4), (7, -3), (9, -2)]);
        // Two reports of different ranges: one healthy (all near 5e-4), one with a fault (up
        // to 0.07). A cell of 5e-4 is drawn the same in both.
        let healthy = [4e-4, 5e-4, 6e-4];
        let faulty = [5e-4, 0.01, 0.07];
        assert_eq!(s.level(healthy[1]), s.level(faulty[0]));
    }
}
