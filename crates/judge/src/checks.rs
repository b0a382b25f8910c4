//! One function per kind of check: what it says it measures (the verdict's `check` and `band`,
//! a chart's ratio band), which sites, layers and paths it covers, and its value at a point.

use parallax_metrics::{Compare, LogitsCompare, TIE_SIGMAS};
use parallax_report::verdict::{
    CompareBand, Measurement, Outcome, PathCount, RatioBand, TestVerdict,
};

use crate::contract::{Band, Check, ContractTest, Layers, LogitsMetric, Metric, SiteRef, Stat};
use crate::evaluate::{Judge, Point, Skip};
use crate::mapping::PathMapping;

/// A check judged site by site: where, against which band, over which report paths (the
/// contract's names read through the mapping), and what is measured at each point.
pub(crate) struct SiteCheck<'c> {
    pub(crate) sites: &'c [SiteRef],
    pub(crate) layers: Layers,
    pub(crate) band: Band,
    pub(crate) paths: Vec<String>,
    pub(crate) measure: Measure,
}

/// What a site check measures at one point.
#[derive(Clone, Copy)]
pub(crate) enum Measure {
    /// `stat(paths[0]) / stat(paths[1])`, over samples of equal size.
    Ratio(Stat),
    /// `stat(paths[0]) − stat(paths[1])`, judged against zero.
    Difference(Stat),
    /// `stat(paths[0])`.
    Stat(Stat),
    /// `metric(paths[0] against paths[1])`, element-wise.
    Compare(Metric),
    /// `paths[0]`'s local error at a matmul site against its predicted rounding noise.
    NoiseRatio,
}

/// A check's layers as a chart reads them: `[first, end)`, `None` for every layer.
fn layer_range(layers: Layers) -> Option<(u32, u32)> {
    match layers {
        Layers::Range { start, end } => Some((start, end)),
        Layers::One(i) => Some((i, i + 1)),
        _ => None,
    }
}

fn names(sites: &[SiteRef]) -> String {
    sites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// [`crate::contract::Check::StatRatio`]; a std ratio also gives charts its band.
pub(crate) fn stat_ratio<'c>(
    v: &mut TestVerdict,
    stat: Stat,
    num: String,
    den: String,
    sites: &'c [SiteRef],
    layers: Layers,
    band: Band,
) -> SiteCheck<'c> {
    v.check =
        Some(format!("{0}({num}) / {0}({den}) at {1}, {layers}", stat.as_str(), names(sites)));
    // Charts draw per-layer std ratios; a band on a site outside the layers has no place on them.
    if stat == Stat::Std && layers != Layers::None {
        v.ratio_band = Some(RatioBand {
            num: num.clone(),
            den: den.clone(),
            lo: band.lo,
            hi: band.hi,
            sites: sites.iter().flat_map(|s| s.sites.iter().cloned()).collect(),
            layers: layer_range(layers),
        });
    }
    v.band = Some(band.to_string());
    SiteCheck { sites, layers, band, paths: vec![num, den], measure: Measure::Ratio(stat) }
}

/// [`crate::contract::Check::StatEqual`]: the difference must be zero.
pub(crate) fn stat_equal<'c>(
    v: &mut TestVerdict,
    stat: Stat,
    a: String,
    b: String,
    sites: &'c [SiteRef],
    layers: Layers,
) -> SiteCheck<'c> {
    v.check = Some(format!("{0}({a}) == {0}({b}) at {1}, {layers}", stat.as_str(), names(sites)));
    v.band = Some("equal".to_string());
    let band = Band { lo: Some(0.0), hi: Some(0.0), lo_open: false, hi_open: false };
    SiteCheck { sites, layers, band, paths: vec![a, b], measure: Measure::Difference(stat) }
}

/// [`crate::contract::Check::StatBand`].
pub(crate) fn stat_band<'c>(
    v: &mut TestVerdict,
    stat: Stat,
    path: String,
    sites: &'c [SiteRef],
    layers: Layers,
    band: Band,
) -> SiteCheck<'c> {
    v.check = Some(format!("{}({path}) at {}, {layers}", stat.as_str(), names(sites)));
    v.band = Some(band.to_string());
    SiteCheck { sites, layers, band, paths: vec![path], measure: Measure::Stat(stat) }
}

/// [`crate::contract::Check::Compare`].
pub(crate) fn compare<'c>(
    v: &mut TestVerdict,
    metric: Metric,
    path: String,
    reference: String,
    sites: &'c [SiteRef],
    layers: Layers,
    band: Band,
) -> SiteCheck<'c> {
    v.check =
        Some(format!("{}({path}, {reference}) at {}, {layers}", metric.as_str(), names(sites)));
    // Heatmaps class each site × layer cell against this band; a site outside the layers, or a
    // union judged pooled, has no cell of its own.
    if layers != Layers::None {
        v.compare_band = Some(CompareBand {
            metric: metric.as_str().to_string(),
            path: path.clone(),
            reference: reference.clone(),
            lo: band.lo,
            hi: band.hi,
            sites: sites
                .iter()
                .filter(|s| s.sites.len() == 1)
                .map(|s| s.sites[0].clone())
                .collect(),
            layers: layer_range(layers),
        });
    }
    v.band = Some(band.to_string());
    let measure =
        if metric == Metric::NoiseRatio { Measure::NoiseRatio } else { Measure::Compare(metric) };
    SiteCheck { sites, layers, band, paths: vec![path, reference], measure }
}

pub(crate) fn metric_of(c: &Compare, m: Metric) -> Option<f64> {
    match m {
        Metric::Cosine => c.cosine,
        Metric::RelL2 => c.rel_l2,
        Metric::SqnrDb => c.sqnr_db,
        Metric::MaxAbs => c.max_abs,
        Metric::StdRatio => c.std_ratio,
        // Not an element-wise statistic: the site record's `noise` holds it.
        Metric::NoiseRatio => None,
    }
}

impl Judge<'_> {
    /// A site check's value at one point; `None` when it cannot be computed (a zero std, a
    /// non-finite sample).
    pub(crate) fn measure(
        &self,
        measure: Measure,
        paths: &[&str],
        p: &Point,
    ) -> Result<Option<f64>, Skip> {
        match measure {
            Measure::Ratio(stat) => {
                let (a, b) = (self.sample(paths[0], p)?, self.sample(paths[1], p)?);
                self.same_sample(paths[0], &a, paths[1], &b)?;
                Ok(match (a.get(stat), b.get(stat)) {
                    (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                    _ => None,
                })
            }
            Measure::Difference(stat) => {
                let (a, b) = (self.sample(paths[0], p)?, self.sample(paths[1], p)?);
                match (a.get(stat), b.get(stat)) {
                    (Some(x), Some(y)) => Ok(Some(x - y)),
                    _ if stat == Stat::Count => {
                        self.same_sample(paths[0], &a, paths[1], &b).map(|_| None)
                    }
                    _ => Ok(None),
                }
            }
            Measure::Stat(stat) => Ok(self.sample(paths[0], p)?.get(stat)),
            Measure::Compare(metric) => {
                Ok(metric_of(&self.compare(paths[0], paths[1], p, false)?, metric))
            }
            Measure::NoiseRatio => self.noise_ratio(paths[0], paths[1], p),
        }
    }

    /// [`Check::Logits`]: the report's last-position logits comparison against the band.
    pub(crate) fn logits(
        &self,
        mut v: TestVerdict,
        metric: LogitsMetric,
        path: &str,
        reference: &str,
        band: Band,
    ) -> TestVerdict {
        let scope = if metric.over_positions() {
            "the logits of every prompt position"
        } else {
            "the last-position logits"
        };
        v.check = Some(format!("{}({path}, {reference}) on {scope}", metric.as_str()));
        v.band = Some(band.to_string());
        let r = &self.report.reference;
        let other = if reference == r {
            path
        } else if path == r {
            reference
        } else {
            ""
        };
        let lc = self.report.logits.compare.get(other);
        let Some(lc) = lc else {
            v.notes.push(if other.is_empty() {
                format!("the report compares logits with the reference `{r}` only")
            } else {
                format!(
                    "no logits comparison of `{other}` in the report (paths: {})",
                    self.report.paths.join(", ")
                )
            });
            return v;
        };
        if metric.over_positions() && lc.positions.is_none() {
            v.notes.push(format!(
                "the report holds the logits of the last position only (a run with --logits last, or an older report): no per-position comparison of `{other}`"
            ));
            return v;
        }
        if metric == LogitsMetric::NoiseRatio && lc.noise.is_none() {
            v.notes.push(format!(
                "no output-head noise prediction of `{other}` in the report (reports written before Parallax predicted noise have none)"
            ));
            return v;
        }
        let value = match metric {
            LogitsMetric::Kl => lc.kl,
            LogitsMetric::Top1Agree => Some(if lc.top1_agree { 1.0 } else { 0.0 }),
            LogitsMetric::Top10Overlap => Some(lc.top10_overlap as f64),
            LogitsMetric::Cosine => lc.cosine,
            LogitsMetric::NoiseRatio => lc.noise.as_ref().map(|n| n.ratio),
            LogitsMetric::KldMean => lc.positions.as_ref().map(|p| p.kld.mean),
            LogitsMetric::KldP99 => lc.positions.as_ref().map(|p| p.kld.p99),
            LogitsMetric::SameTop1 => lc.positions.as_ref().map(|p| p.same_top1),
        };
        let counts = [r.as_str(), other]
            .iter()
            .map(|x| PathCount {
                path: x.to_string(),
                count: self.report.logits.paths.get(*x).map(|l| l.stats.count),
            })
            .collect();
        let meas = Measurement {
            layer: None,
            site: match &lc.positions {
                Some(p) if metric.over_positions() => format!("logits ({} positions)", p.n),
                _ => format!("logits (position {})", self.report.logits.position),
            },
            value,
            counts,
        };
        v.evaluated = 1;
        let inside = value.is_some_and(|x| band.contains(x));
        v.outcome = if inside { Outcome::Pass } else { Outcome::Fail };
        if !inside {
            v.failed = 1;
            v.first_failure = Some(meas.clone());
            let top_len = self.report.logits.paths.get(r.as_str()).map_or(10, |l| l.top.len());
            if let Some((explained, note)) = ties(metric, lc, band, other, top_len) {
                if explained {
                    v.outcome = Outcome::Explained;
                }
                v.notes.push(note);
            }
        }
        v.worst = Some(meas);
        v
    }
}

/// A logit difference for a note: three decimals, or three significant digits below 0.001.
fn logit(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// Whether a top-1 or top-10 value outside `band` is a tie of this run's noise: `(true, why)`
/// when counting the flips within the tie margin as agreement brings it inside the band
/// (EXPLAINED), `(false, why)` when the report measured the noise and the flips are wider
/// (FAIL, with the margins in the note). `None` when the report does not measure the noise (a
/// report written before it did, non-finite logits): judged strictly, as before.
fn ties(
    metric: LogitsMetric,
    lc: &LogitsCompare,
    band: Band,
    path: &str,
    top_len: usize,
) -> Option<(bool, String)> {
    let (noise, margin) = (lc.logit_noise?, lc.tie_margin?);
    let run = format!(
        "this run's tie margin {} ({}·√2 × logit noise {})",
        logit(margin),
        TIE_SIGMAS,
        logit(noise)
    );
    match metric {
        LogitsMetric::Top1Agree if !lc.top1_agree => {
            let flip = lc.top1_flip.as_ref()?;
            let (a, b, m) = (flip.reference, flip.path, flip.margin);
            if m <= margin && band.contains(1.0) {
                Some((
                    true,
                    format!(
                        "a tie: the reference's top-1 token {a} and the {path} path's top-1 {b} are {} logits apart in the reference, inside {run}; the paths may order them either way",
                        logit(m)
                    ),
                ))
            } else {
                Some((
                    false,
                    format!(
                        "not a tie: the reference holds its top-1 token {a} {} logits above the {path} path's top-1 {b}, beyond {run}",
                        logit(m)
                    ),
                ))
            }
        }
        LogitsMetric::Top10Overlap => {
            let missing = (top_len as u32).saturating_sub(lc.top10_overlap);
            let ties = lc.top10_ties.min(missing);
            let counted = lc.top10_overlap + ties;
            let are = if ties == 1 { "is" } else { "are" };
            let swaps = format!(
                "the {path} path's top-10 misses {missing} of the reference's; {ties} of those swaps across the 10th place {are} between tokens the reference held within {run}; counted as ties, the overlap is {counted}"
            );
            Some(if ties > 0 && band.contains(counted as f64) {
                (true, format!("a tie: {swaps}"))
            } else {
                (false, format!("not a tie: {swaps}, still outside the band"))
            })
        }
        _ => None,
    }
}

/// A tie margin comes from the run's own noise, so a broken path widens its own excuse: a dropped
/// bias (σ ≈ 1.3 logits on Qwen2.5-0.5B) would make a 2.5-logit flip "a tie". A tie is therefore
/// explained only while the distributions agree as a whole: where the same contract has a KL test
/// on the same two paths and that test FAILs, every EXPLAINED top-1 or top-10 test on them is
/// a FAIL again, and its note says why. A contract without a KL test judges ties alone.
pub(crate) fn ties_need_agreeing_distributions(
    tests: &[ContractTest],
    verdicts: &mut [TestVerdict],
    mapping: &PathMapping,
) {
    let pair = |p: &str, r: &str| {
        let (a, b) = (mapping.resolve(p).to_string(), mapping.resolve(r).to_string());
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    };
    let failed_kl: Vec<((String, String), &str)> = tests
        .iter()
        .zip(verdicts.iter())
        .filter_map(|(t, v)| match &t.check {
            Check::Logits { metric: LogitsMetric::Kl, path, reference, .. }
                if v.outcome == Outcome::Fail =>
            {
                Some((pair(path, reference), t.id.as_str()))
            }
            _ => None,
        })
        .collect();
    for (t, v) in tests.iter().zip(verdicts.iter_mut()) {
        let Check::Logits { path, reference, .. } = &t.check else { continue };
        if v.outcome != Outcome::Explained {
            continue;
        }
        let Some((_, kl)) = failed_kl.iter().find(|(k, _)| *k == pair(path, reference)) else {
            continue;
        };
        v.outcome = Outcome::Fail;
        for n in v.notes.iter_mut().filter(|n| n.starts_with("a tie: ")) {
            let facts =
                n["a tie: ".len()..].trim_end_matches("; the paths may order them either way");
            *n = format!(
                "not a tie: {facts}; but {kl} fails on the same logits (KL outside its band), so the noise this margin comes from is not honest noise and explains nothing"
            );
        }
    }
}
