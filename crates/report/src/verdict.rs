//! Verdicts: what judging a report against contracts found, as data — the report's `verdicts`
//! section. `parallax-judge` makes them; [`crate::text`] prints them for a terminal.
//!
//! Every falsification test of every contract appears, measured or not: a test Parallax cannot
//! measure is listed as NOT MEASURABLE with its reason, never dropped.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// A quantity the contract asks to be shown, not judged: no band applies (e.g. the KL
    /// divergence between two quantizations of a model, when the user's contract sets none).
    Measured,
    /// Outside the band, but explained by the arithmetic and not held against the run: a top-1
    /// flip between tokens closer than the run's own logit noise (a tie), or a divergence that
    /// every op's local check attributes to quantization noise. The notes say why; never silent.
    Explained,
    /// The prediction names nothing a report holds (a command, upstream code), or the report
    /// lacks what it names (a path not run, a layer the model does not have).
    NotMeasurable,
    /// The two samples cannot honestly be compared: unknown or unequal element counts, or a
    /// different prompt (the FALSIFY-007 lesson). Never a pass.
    Refused,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Explained => "EXPLAINED",
            Outcome::Measured => "MEASURED",
            Outcome::NotMeasurable => "NOT MEASURABLE",
            Outcome::Refused => "REFUSED",
        })
    }
}

/// The element count one path's sample had at a measured point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCount {
    pub path: String,
    /// `None` when the source (an imported trace) did not say.
    pub count: Option<u64>,
}

/// One measured value at one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `None` for sites outside the layers (embed, final_norm, logits).
    pub layer: Option<u32>,
    /// The site as the contract names it (`qkv`, `ffn_swigl`…).
    pub site: String,
    /// `None` when the value could not be computed (a non-finite sample, a zero std).
    pub value: Option<f64>,
    /// The counts the value was computed from, per path.
    pub counts: Vec<PathCount>,
}

impl Measurement {
    pub fn place(&self) -> String {
        match self.layer {
            Some(l) => format!("layer {l} {}", self.site),
            None => self.site.clone(),
        }
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(v) => write!(f, "{} at {}", fmt_value(v), self.place())?,
            None => write!(f, "no value at {}", self.place())?,
        }
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|c| format!("{} n={}", c.path, c.count.map_or("?".to_string(), |n| n.to_string())))
            .collect();
        if !counts.is_empty() {
            write!(f, " ({})", counts.join(", "))?;
        }
        Ok(())
    }
}

pub(crate) fn fmt_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:.4e}")
    } else {
        format!("{v:.6}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestVerdict {
    pub id: String,
    pub rule: String,
    pub outcome: Outcome,
    /// The check as Parallax measured it, in its own names (`std(f32) / std(q8) at ffn_swigl,
    /// layers [0, 28) ∈ [0.5, 2]`); `None` for tests that name nothing measurable.
    pub check: Option<String>,
    /// The band, as written (`∈ [0.5, 2]`).
    pub band: Option<String>,
    /// Points (layer × site) judged, and how many left the band.
    pub evaluated: u32,
    pub failed: u32,
    /// The value closest to leaving the band (or furthest outside it).
    pub worst: Option<Measurement>,
    /// The first point in execution order that left the band.
    pub first_failure: Option<Measurement>,
    /// Why a test was not measurable or refused; how its layers were adapted to the model.
    pub notes: Vec<String>,
    /// A std-ratio test's band as numbers, for charts (absent for every other kind of test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_band: Option<RatioBand>,
    /// An element-wise comparison test's band as numbers (cosine, relative L2…), for the
    /// heatmaps to class each cell against (absent for every other kind of test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_band: Option<CompareBand>,
}

/// Where a `std(num) / std(den)` band applies, in report terms (path ids, site names, layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioBand {
    pub num: String,
    pub den: String,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// The sites the test names (aliases expanded to Parallax's site names).
    pub sites: Vec<String>,
    /// `[first, end)`; absent: every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<(u32, u32)>,
}

impl RatioBand {
    /// The band for `path / reference`, whichever way round the test wrote its ratio; `None`
    /// when the test compares other paths.
    pub fn oriented(&self, path: &str, reference: &str) -> Option<(Option<f64>, Option<f64>)> {
        if self.num == path && self.den == reference {
            Some((self.lo, self.hi))
        } else if self.num == reference && self.den == path {
            // x ∈ [lo, hi] ⇔ 1/x ∈ [1/hi, 1/lo] for positive bounds.
            let inv = |v: Option<f64>| v.filter(|v| *v > 0.0).map(|v| 1.0 / v);
            Some((inv(self.hi), inv(self.lo)))
        } else {
            None
        }
    }

    /// Whether the band covers `site` at `layer`.
    pub fn applies(&self, site: &str, layer: u32) -> bool {
        self.sites.iter().any(|s| s == site)
            && self.layers.is_none_or(|(a, b)| (a..b).contains(&layer))
    }
}

/// Where a band on `metric(path, reference)` applies, in report terms. The metric is the
/// contract's name for it (`cosine`, `rel_l2`, `sqnr_db`, `max_abs`, `std_ratio`, `noise_ratio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareBand {
    pub metric: String,
    pub path: String,
    pub reference: String,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// The sites judged one by one; a union of sites (an alias judged pooled) is left out,
    /// since no single cell holds its value.
    pub sites: Vec<String>,
    /// `[first, end)`; absent: every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<(u32, u32)>,
}

impl CompareBand {
    /// Whether the band judges `path` against `reference` (either order: the judge compares
    /// each path with the report's reference, whichever the contract named first).
    pub fn compares(&self, path: &str, reference: &str) -> bool {
        (self.path == path && self.reference == reference)
            || (self.path == reference && self.reference == path)
    }

    /// Whether the band covers `site` at `layer`.
    pub fn applies(&self, site: &str, layer: u32) -> bool {
        self.sites.iter().any(|s| s == site)
            && self.layers.is_none_or(|(a, b)| (a..b).contains(&layer))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractVerdict {
    pub name: String,
    pub version: Option<String>,
    pub source: Option<String>,
    /// How the contract's path names were read (`apr → f32`).
    pub mapping: Vec<(String, String)>,
    pub tests: Vec<TestVerdict>,
}

/// Whether the first divergence starts at its own site or arrives from upstream of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The op alone, fed the reference's input, already leaves the band.
    Root,
    /// The op alone stays within the band; the accumulated error leaves it.
    Propagated,
    /// A site without an op-alone comparison (only matmul sites have one).
    Unknown,
}

/// The earliest (layer, site) in execution order where any test's value left its band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstDivergence {
    pub contract: String,
    pub test: String,
    pub at: Measurement,
    pub band: String,
    pub cause: Cause,
    /// The local (op-alone) value against the same band, where the site has one.
    pub local_value: Option<f64>,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdicts {
    pub contracts: Vec<ContractVerdict>,
    pub first_divergence: Option<FirstDivergence>,
}

impl Verdicts {
    /// Overall: no test failed or was refused. NOT MEASURABLE and EXPLAINED tests are listed,
    /// with their reasons, not held against the run.
    pub fn passed(&self) -> bool {
        self.contracts.iter().flat_map(|c| &c.tests).all(|t| {
            matches!(
                t.outcome,
                Outcome::Pass | Outcome::Explained | Outcome::Measured | Outcome::NotMeasurable
            )
        })
    }

    /// How many tests had each outcome.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for v in self.contracts.iter().flat_map(|c| &c.tests) {
            match v.outcome {
                Outcome::Pass => t.pass += 1,
                Outcome::Fail => t.fail += 1,
                Outcome::Explained => t.explained += 1,
                Outcome::Measured => t.measured += 1,
                Outcome::NotMeasurable => t.not_measurable += 1,
                Outcome::Refused => t.refused += 1,
            }
        }
        t
    }
}

/// How many tests of a judgement had each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub pass: usize,
    pub fail: usize,
    pub explained: usize,
    pub measured: usize,
    pub not_measurable: usize,
    pub refused: usize,
}

impl fmt::Display for Tally {
    /// `5 passed, 0 failed, 1 explained, 0 refused, 3 not measurable` — the explained count only
    /// where there is one, so reports judged before it existed read as they did.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.pass, self.fail)?;
        if self.explained > 0 {
            write!(f, ", {} explained", self.explained)?;
        }
        if self.measured > 0 {
            write!(f, ", {} measured", self.measured)?;
        }
        write!(f, ", {} refused, {} not measurable", self.refused, self.not_measurable)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One contract `c` v1 mapping `apr` to `f32`, holding `tests`.
    pub(crate) fn one_contract(tests: Vec<TestVerdict>) -> Verdicts {
        Verdicts {
            contracts: vec![ContractVerdict {
                name: "c".into(),
                version: Some("1".into()),
                source: None,
                mapping: vec![("apr".into(), "f32".into())],
                tests,
            }],
            first_divergence: None,
        }
    }

    pub(crate) fn test(outcome: Outcome) -> TestVerdict {
        TestVerdict {
            id: "X-001".into(),
            rule: "r".into(),
            outcome,
            check: None,
            band: Some("∈ [0.5, 2]".into()),
            evaluated: 3,
            failed: 0,
            worst: Some(Measurement {
                layer: Some(3),
                site: "ffn_swigl".into(),
                value: Some(1.2),
                counts: vec![],
            }),
            first_failure: None,
            notes: vec!["a note".into()],
            ratio_band: None,
            compare_band: None,
        }
    }

    #[test]
    fn overall_verdict_counts_fail_and_refused_against_the_run() {
        let mut v = one_contract(vec![
            test(Outcome::Pass),
            test(Outcome::NotMeasurable),
            test(Outcome::Explained),
        ]);
        assert!(v.passed(), "explained and not measurable tests are not held against the run");
        assert_eq!(
            v.tally().to_string(),
            "1 passed, 0 failed, 1 explained, 0 refused, 1 not measurable"
        );
        v.contracts[0].tests.push(test(Outcome::Refused));
        assert!(!v.passed());
        let t = v.tally();
        assert_eq!((t.pass, t.fail, t.explained, t.not_measurable, t.refused), (1, 0, 1, 1, 1));
        let back: Verdicts = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }
}
