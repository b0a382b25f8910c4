//! What a prediction measures, as data: [`Check`] and its parts.

use std::fmt;

use super::SiteRef;

/// Which layers a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Every layer the model has.
    All,
    /// `[start, end)`, as the contract wrote it (a model with fewer layers is judged on its own).
    Range {
        start: u32,
        end: u32,
    },
    One(u32),
    /// A site outside the layers.
    None,
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layers::All => write!(f, "every layer"),
            Layers::Range { start, end } => write!(f, "layers [{start}, {end})"),
            Layers::One(i) => write!(f, "layer {i}"),
            Layers::None => write!(f, "outside the layers"),
        }
    }
}

/// A statistic of one path's sample at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Count,
    Mean,
    Std,
    Min,
    Max,
    AbsMax,
    Nan,
    Inf,
    /// NaN + ±Inf.
    NonFinite,
    Zeros,
}

impl Stat {
    pub(super) fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "count" => Stat::Count,
            "mean" => Stat::Mean,
            "std" => Stat::Std,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "absmax" => Stat::AbsMax,
            "nan" => Stat::Nan,
            "inf" => Stat::Inf,
            "nonfinite" => Stat::NonFinite,
            "zeros" => Stat::Zeros,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::AbsMax => "absmax",
            Stat::Nan => "nan",
            Stat::Inf => "inf",
            Stat::NonFinite => "nonfinite",
            Stat::Zeros => "zeros",
        }
    }
}

/// An element-wise comparison of a path against the report's reference at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    RelL2,
    SqnrDb,
    MaxAbs,
    StdRatio,
    /// Matmul sites: the path's op alone (fed the reference's input) against the rounding noise
    /// its arithmetic predicts, as a ratio of L2 norms, worst token (`LocalNoise::ratio`).
    NoiseRatio,
}

impl Metric {
    pub(super) fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "cosine" => Metric::Cosine,
            "rel_l2" => Metric::RelL2,
            "sqnr_db" => Metric::SqnrDb,
            "max_abs" => Metric::MaxAbs,
            "std_ratio" => Metric::StdRatio,
            "noise_ratio" => Metric::NoiseRatio,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::RelL2 => "rel_l2",
            Metric::SqnrDb => "sqnr_db",
            Metric::MaxAbs => "max_abs",
            Metric::StdRatio => "std_ratio",
            Metric::NoiseRatio => "noise_ratio",
        }
    }
}

/// A comparison of a path's last-position logits against the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMetric {
    /// KL(P_reference ‖ P_path), nats.
    Kl,
    /// 1 when the argmax agrees, 0 otherwise.
    Top1Agree,
    Top10Overlap,
    Cosine,
    /// The output head alone on the reference's last normed row, against the rounding noise
    /// its arithmetic predicts (`LogitsCompare::noise`).
    NoiseRatio,
    /// Mean over every prompt position of KL(P_reference ‖ P_path), nats.
    KldMean,
    /// The 99th percentile of the same.
    KldP99,
    /// The share of prompt positions whose most likely next token is the same.
    SameTop1,
}

impl LogitsMetric {
    pub(super) fn parse(s: &str) -> Option<LogitsMetric> {
        Some(match s {
            "kl" => LogitsMetric::Kl,
            "top1_agree" => LogitsMetric::Top1Agree,
            "top10_overlap" => LogitsMetric::Top10Overlap,
            "cosine" => LogitsMetric::Cosine,
            "noise_ratio" => LogitsMetric::NoiseRatio,
            "kld_mean" => LogitsMetric::KldMean,
            "kld_p99" => LogitsMetric::KldP99,
            "same_top1" => LogitsMetric::SameTop1,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogitsMetric::Kl => "kl",
            LogitsMetric::Top1Agree => "top1_agree",
            LogitsMetric::Top10Overlap => "top10_overlap",
            LogitsMetric::Cosine => "cosine",
            LogitsMetric::NoiseRatio => "noise_ratio",
            LogitsMetric::KldMean => "kld_mean",
            LogitsMetric::KldP99 => "kld_p99",
            LogitsMetric::SameTop1 => "same_top1",
        }
    }

    /// Whether a prediction names the reference first (`kl(reference, path)`, as KL(P ‖ Q) is
    /// written); the other functions take `(path, reference)`.
    pub fn reference_first(self) -> bool {
        matches!(self, LogitsMetric::Kl | LogitsMetric::KldMean | LogitsMetric::KldP99)
    }

    /// Whether the metric needs the logits of every prompt position (`--logits all`).
    pub fn over_positions(self) -> bool {
        matches!(self, LogitsMetric::KldMean | LogitsMetric::KldP99 | LogitsMetric::SameTop1)
    }
}

/// Where a value must lie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub lo_open: bool,
    pub hi_open: bool,
}

impl Band {
    pub fn contains(&self, v: f64) -> bool {
        if v.is_nan() {
            return false;
        }
        let lo_ok = match self.lo {
            Some(lo) if self.lo_open => v > lo,
            Some(lo) => v >= lo,
            None => true,
        };
        let hi_ok = match self.hi {
            Some(hi) if self.hi_open => v < hi,
            Some(hi) => v <= hi,
            None => true,
        };
        lo_ok && hi_ok
    }

    /// How far inside the band `v` is (negative: outside). Ratio bands (both bounds positive)
    /// are judged in log space, so 0.5 and 2.0 are equally far from 1.
    pub fn slack(&self, v: f64) -> f64 {
        if v.is_nan() {
            return f64::NEG_INFINITY;
        }
        let log =
            matches!((self.lo, self.hi), (Some(lo), Some(hi)) if lo > 0.0 && hi > 0.0) && v > 0.0;
        let mut s = f64::INFINITY;
        if let Some(lo) = self.lo {
            s = s.min(if log { libm::log(v / lo) } else { v - lo });
        }
        if let Some(hi) = self.hi {
            s = s.min(if log { libm::log(hi / v) } else { hi - v });
        }
        s
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if lo == hi => write!(f, "== {lo}"),
            (Some(lo), Some(hi)) => {
                write!(
                    f,
                    "∈ {}{lo}, {hi}{}",
                    if self.lo_open { "(" } else { "[" },
                    if self.hi_open { ")" } else { "]" }
                )
            }
            (Some(lo), None) => write!(f, "{} {lo}", if self.lo_open { ">" } else { "≥" }),
            (None, Some(hi)) => write!(f, "{} {hi}", if self.hi_open { "<" } else { "≤" }),
            (None, None) => write!(f, "any value"),
        }
    }
}

/// What a falsification test measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `stat(num) / stat(den)` at each site of each layer, within `band`.
    StatRatio {
        stat: Stat,
        num: String,
        den: String,
        sites: Vec<SiteRef>,
        layers: Layers,
        band: Band,
    },
    /// `stat(a) == stat(b)`: with `Stat::Count`, sample-size parity (FALSIFY-007).
    StatEqual { stat: Stat, a: String, b: String, sites: Vec<SiteRef>, layers: Layers },
    /// One path's statistic within `band`.
    StatBand { stat: Stat, path: String, sites: Vec<SiteRef>, layers: Layers, band: Band },
    /// An element-wise comparison of `path` against `reference` within `band`.
    Compare {
        metric: Metric,
        path: String,
        reference: String,
        sites: Vec<SiteRef>,
        layers: Layers,
        band: Band,
    },
    /// A logits comparison within `band`.
    Logits { metric: LogitsMetric, path: String, reference: String, band: Band },
    /// The prediction names nothing Parallax measures (a command, prose about upstream code).
    NotMeasurable { reason: String },
}

/// The check as parsed, in the contract's own path names: sites with the Parallax sites an
/// alias stands for, the layers, the band. For reading and for tests; verdicts word their checks
/// themselves (`parallax_judge` reads path names through a mapping).
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sites = |sites: &[SiteRef]| {
            let named: Vec<String> = sites
                .iter()
                .map(|s| {
                    if s.sites.len() == 1 && s.sites[0] == s.name {
                        s.name.clone()
                    } else {
                        format!("{} = {}", s.name, s.sites.join(" ∪ "))
                    }
                })
                .collect();
            named.join(", ")
        };
        match self {
            Check::StatRatio { stat, num, den, sites: s, layers, band } => {
                let st = stat.as_str();
                write!(f, "{st}({num}) / {st}({den}) at {}, {layers} {band}", sites(s))
            }
            Check::StatEqual { stat, a, b, sites: s, layers } => {
                let st = stat.as_str();
                write!(f, "{st}({a}) == {st}({b}) at {}, {layers}", sites(s))
            }
            Check::StatBand { stat, path, sites: s, layers, band } => {
                write!(f, "{}({path}) at {}, {layers} {band}", stat.as_str(), sites(s))
            }
            Check::Compare { metric, path, reference, sites: s, layers, band } => {
                let m = metric.as_str();
                write!(f, "{m}({path}, {reference}) at {}, {layers} {band}", sites(s))
            }
            Check::Logits { metric, path, reference, band } => {
                write!(f, "{}({path}, {reference}) on the logits {band}", metric.as_str())
            }
            Check::NotMeasurable { reason } => write!(f, "not measurable: {reason}"),
        }
    }
}

impl Check {
    /// Every contract path name the check uses.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Check::StatRatio { num, den, .. } => vec![num, den],
            Check::StatEqual { a, b, .. } => vec![a, b],
            Check::StatBand { path, .. } => vec![path],
            Check::Compare { path, reference, .. } | Check::Logits { path, reference, .. } => {
                vec![path, reference]
            }
            Check::NotMeasurable { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_judge_ratios_in_log_space() {
        let b = Band { lo: Some(0.5), hi: Some(2.0), lo_open: false, hi_open: false };
        assert!((b.slack(0.5) - b.slack(2.0)).abs() < 1e-12);
        assert!(b.slack(18.23) < 0.0 && !b.contains(18.23) && b.contains(1.245));
        let le = Band { lo: None, hi: Some(0.1), lo_open: false, hi_open: false };
        assert!(le.slack(0.2) < 0.0 && le.slack(0.05) > 0.0);
        assert!(!b.contains(f64::NAN));
    }
}
