//! Judging a parity report against contracts.
//!
//! Owns [`evaluate`]: every falsification test of every contract becomes a [`TestVerdict`] —
//! PASS, FAIL, REFUSED (samples of unknown or unequal size: the FALSIFY-007 lesson) or NOT
//! MEASURABLE (with the reason) — with its worst value, where it was, and the element counts it
//! was computed from; and the first divergence: the earliest (layer, site) in execution order
//! that leaves a band, with, in replay mode, whether the op alone already leaves it (root) or
//! only the accumulated error does (propagated). Works on a saved report alone, so a report can
//! be re-judged without the model. Imported traces ([`parallax_parity::trace`]) join as extra
//! paths ([`evaluate_with_traces`]).
//! Knows nothing about models, kernels or terminals.

use parallax_parity::contract::{
    Band, Check, Contract, Layers, LogitsMetric, Metric, SiteRef, Stat,
};
use parallax_parity::trace::Trace;
use parallax_parity::verdict::{
    Cause, ContractVerdict, FirstDivergence, Measurement, Outcome, PathCount, RatioBand,
    TestVerdict, Verdicts,
};
use parallax_parity::Compare;
use parallax_report::{Mode, Report, SiteRecord};

pub use parallax_parity::contract::{default_contracts, ContractError};

/// How a contract's path names are read: upstream's `apr` is Parallax's `f32`, `gguf` is `q8`.
/// Names without an entry are taken as they are (Parallax's own contracts use `f32`, `q8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMapping {
    pairs: Vec<(String, String)>,
}

impl Default for PathMapping {
    fn default() -> Self {
        PathMapping { pairs: vec![("apr".into(), "f32".into()), ("gguf".into(), "q8".into())] }
    }
}

impl PathMapping {
    /// No renaming at all.
    pub fn identity() -> Self {
        PathMapping { pairs: Vec::new() }
    }

    /// Read `name` as `path` (replacing an earlier entry for `name`).
    pub fn with(mut self, name: &str, path: &str) -> Self {
        self.pairs.retain(|(n, _)| n != name);
        self.pairs.push((name.into(), path.into()));
        self
    }

    /// `apr=f32,gguf=llama` on top of the default mapping.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut m = PathMapping::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((a, b)) = part.split_once('=') else {
                return Err(format!("path mapping `{part}`: write NAME=PATH, e.g. apr=f32"));
            };
            let (a, b) = (a.trim(), b.trim());
            if a.is_empty() || b.is_empty() {
                return Err(format!("path mapping `{part}`: both sides need a name"));
            }
            m = m.with(a, b);
        }
        Ok(m)
    }

    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.pairs.iter().find(|(n, _)| n == name).map_or(name, |(_, p)| p.as_str())
    }
}

/// Judge `report` against `contracts`.
pub fn evaluate(report: &Report, contracts: &[Contract], mapping: &PathMapping) -> Verdicts {
    evaluate_with_traces(report, &[], contracts, mapping)
}

/// [`evaluate`], with imported traces as extra paths named by their id (map a contract's path
/// name to the id, e.g. `apr=apr-trace`). Trace statistics are compared only when both sides
/// state the same element count and the trace ran the report's prompt; otherwise the point is
/// REFUSED, as FALSIFY-007 demands.
pub fn evaluate_with_traces(
    report: &Report,
    traces: &[(&str, &Trace)],
    contracts: &[Contract],
    mapping: &PathMapping,
) -> Verdicts {
    let j = Judge { report, traces, n_layers: report.layers.len() as u32 };
    let mut out = Verdicts { contracts: Vec::new(), first_divergence: None };
    let mut first: Option<(u64, FirstDivergence)> = None;
    for c in contracts {
        let mut used: Vec<(String, String)> = Vec::new();
        for t in &c.tests {
            for p in t.check.paths() {
                let to = mapping.resolve(p);
                if to != p && !used.iter().any(|(a, _)| a == p) {
                    used.push((p.to_string(), to.to_string()));
                }
            }
        }
        let mut tests = Vec::with_capacity(c.tests.len());
        for t in &c.tests {
            let (verdict, fd) = j.test(t.id.as_str(), &t.rule, &t.check, mapping);
            if let Some((order, mut fd)) = fd {
                if first.as_ref().is_none_or(|(o, _)| order < *o) {
                    fd.contract = c.name.clone();
                    first = Some((order, fd));
                }
            }
            tests.push(verdict);
        }
        out.contracts.push(ContractVerdict {
            name: c.name.clone(),
            version: c.version.clone(),
            source: c.source.clone(),
            mapping: used,
            tests,
        });
    }
    out.first_divergence = first.map(|(_, fd)| fd);
    out
}

/// One path's sample at a point, as far as its source knows it.
#[derive(Debug, Clone, Default)]
struct Sample {
    count: Option<u64>,
    finite: Option<u64>,
    mean: Option<f64>,
    std: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    absmax: Option<f64>,
    nan: Option<u64>,
    inf: Option<u64>,
    zeros: Option<u64>,
}

impl Sample {
    fn get(&self, stat: Stat) -> Option<f64> {
        match stat {
            Stat::Count => self.count.map(|c| c as f64),
            Stat::Mean => self.mean,
            Stat::Std => self.std,
            Stat::Min => self.min,
            Stat::Max => self.max,
            Stat::AbsMax => self.absmax,
            Stat::Nan => self.nan.map(|c| c as f64),
            Stat::Inf => self.inf.map(|c| c as f64),
            Stat::NonFinite => Some((self.nan? + self.inf?) as f64),
            Stat::Zeros => self.zeros.map(|c| c as f64),
        }
    }

    /// The statistics of the union of several samples (upstream's `qkv` is q ∪ k ∪ v), from
    /// each part's count, mean and sample std: exact up to rounding.
    fn pool(parts: &[Sample]) -> Sample {
        if parts.len() == 1 {
            return parts[0].clone();
        }
        let sum_u = |f: fn(&Sample) -> Option<u64>| parts.iter().map(f).sum::<Option<u64>>();
        let fold = |f: fn(&Sample) -> Option<f64>, g: fn(f64, f64) -> f64| {
            parts
                .iter()
                .map(f)
                .try_fold(None, |acc: Option<f64>, v| v.map(|v| Some(acc.map_or(v, |a| g(a, v)))))?
        };
        let finite = sum_u(|s| s.finite);
        let mut mean = None;
        let mut std = None;
        if let Some(n) = finite.filter(|&n| n > 0) {
            let moments: Option<Vec<(f64, f64, f64)>> = parts
                .iter()
                .map(|p| Some((p.finite? as f64, p.mean.unwrap_or(0.0), p.std.unwrap_or(0.0))))
                .collect();
            if let Some(m) = moments {
                let mu = m.iter().map(|(k, mk, _)| k * mk).sum::<f64>() / n as f64;
                let ss: f64 = m
                    .iter()
                    .map(|(k, mk, sk)| (k - 1.0).max(0.0) * sk * sk + k * ((mk - mu) * (mk - mu)))
                    .sum();
                mean = Some(mu);
                std = (n > 1).then(|| (ss / (n - 1) as f64).sqrt());
            }
        }
        Sample {
            count: sum_u(|s| s.count),
            finite,
            mean,
            std,
            min: fold(|s| s.min, f64::min),
            max: fold(|s| s.max, f64::max),
            absmax: fold(|s| s.absmax, f64::max),
            nan: sum_u(|s| s.nan),
            inf: sum_u(|s| s.inf),
            zeros: sum_u(|s| s.zeros),
        }
    }
}

fn sample_of(s: &parallax_parity::Stats) -> Sample {
    Sample {
        count: Some(s.count),
        finite: Some(s.count.saturating_sub(s.nan + s.inf)),
        mean: s.mean,
        std: s.std,
        min: s.min,
        max: s.max,
        absmax: s.absmax,
        nan: Some(s.nan),
        inf: Some(s.inf),
        zeros: Some(s.zeros),
    }
}

/// Why a point was not judged.
enum Skip {
    /// The report or trace lacks it (a site the model does not have, a path not run).
    Missing(String),
    /// It exists but the comparison would not be honest.
    Refused(String),
}

struct Judge<'a> {
    report: &'a Report,
    traces: &'a [(&'a str, &'a Trace)],
    n_layers: u32,
}

/// A point of a check: a layer (or none) and a site.
struct Point<'s> {
    layer: Option<u32>,
    site: &'s SiteRef,
}

impl Judge<'_> {
    fn site_record(&self, layer: Option<u32>, site: &str) -> Option<&SiteRecord> {
        match layer {
            None => match site {
                "embed" => Some(&self.report.embed),
                "final_norm" => Some(&self.report.final_norm),
                _ => None,
            },
            Some(i) => self.report.layers.get(i as usize)?.sites.get(site),
        }
    }

    fn trace(&self, path: &str) -> Option<&Trace> {
        self.traces.iter().find(|(id, _)| *id == path).map(|(_, t)| *t)
    }

    /// Why a trace's samples cannot stand beside the report's at all, if they cannot.
    fn trace_refusal(&self, id: &str, t: &Trace) -> Option<String> {
        let tokens = t.tokens.as_ref()?;
        (tokens != &self.report.prompt.tokens).then(|| {
            format!(
                "trace `{id}` ran {} tokens {:?}, the report {} tokens {:?}: different prompts are different samples",
                tokens.len(),
                tokens,
                self.report.prompt.tokens.len(),
                self.report.prompt.tokens
            )
        })
    }

    fn sample(&self, path: &str, p: &Point) -> Result<Sample, Skip> {
        if let Some(t) = self.trace(path) {
            if let Some(why) = self.trace_refusal(path, t) {
                return Err(Skip::Refused(why));
            }
            return self.trace_sample(path, t, p);
        }
        if !self.report.paths.iter().any(|x| x == path) {
            return Err(Skip::Missing(format!(
                "path `{path}` is not in the report (paths: {})",
                self.report.paths.join(", ")
            )));
        }
        let mut parts = Vec::with_capacity(p.site.sites.len());
        for s in &p.site.sites {
            let stats = if p.layer.is_none() && s == "logits" {
                self.report.logits.paths.get(path).map(|l| &l.stats)
            } else {
                self.site_record(p.layer, s).and_then(|r| r.paths.get(path))
            };
            match stats {
                Some(st) => parts.push(sample_of(st)),
                None => return Err(Skip::Missing(format!("site `{s}` is not in this model"))),
            }
        }
        Ok(Sample::pool(&parts))
    }

    fn trace_sample(&self, id: &str, t: &Trace, p: &Point) -> Result<Sample, Skip> {
        let from = |ts: &parallax_parity::trace::TraceStat| Sample {
            count: ts.count,
            finite: ts.count,
            mean: ts.mean,
            std: ts.std,
            min: ts.min,
            max: ts.max,
            absmax: match (ts.min, ts.max) {
                (Some(a), Some(b)) => Some(a.abs().max(b.abs())),
                _ => None,
            },
            ..Default::default()
        };
        let sites: &[parallax_parity::trace::TraceStat] = match p.layer {
            Some(i) => t.layers.iter().find(|l| l.index == i).map_or(&[], |l| &l.sites),
            None => &[],
        };
        let globals: Vec<&parallax_parity::trace::TraceStat> =
            [&t.embed, &t.final_norm, &t.logits].into_iter().flatten().collect();
        let candidates: Vec<&parallax_parity::trace::TraceStat> =
            if p.layer.is_some() { sites.iter().collect() } else { globals };
        // The same union of sites under whatever name the trace uses (`qkv` = q ∪ k ∪ v) …
        let resolved =
            |ts: &&parallax_parity::trace::TraceStat| SiteRef::resolve(&ts.site).map(|r| r.sites);
        if let Some(ts) = candidates.iter().find(|ts| resolved(ts).as_ref() == Some(&p.site.sites))
        {
            return Ok(from(ts));
        }
        // … or pooled from its parts.
        let parts: Option<Vec<Sample>> = p
            .site
            .sites
            .iter()
            .map(|s| {
                candidates
                    .iter()
                    .find(|ts| resolved(ts).as_deref() == Some(std::slice::from_ref(s)))
                    .map(|ts| from(ts))
            })
            .collect();
        parts.map(|p| Sample::pool(&p)).ok_or_else(|| {
            Skip::Missing(format!(
                "trace `{id}` ({}) has no `{}` {}",
                t.format.as_str(),
                p.site.name,
                place(p.layer)
            ))
        })
    }

    /// `path` against the report's reference at a point (pooled over the site's parts).
    fn compare(
        &self,
        path: &str,
        reference: &str,
        p: &Point,
        local: bool,
    ) -> Result<Compare, Skip> {
        for x in [path, reference] {
            if self.trace(x).is_some() {
                return Err(Skip::Missing(format!(
                    "`{x}` is an imported trace: it has statistics, not values, so element-wise comparisons are impossible"
                )));
            }
            if !self.report.paths.iter().any(|y| y == x) {
                return Err(Skip::Missing(format!(
                    "path `{x}` is not in the report (paths: {})",
                    self.report.paths.join(", ")
                )));
            }
        }
        let r = &self.report.reference;
        let (path, reference) = if reference == r { (path, reference) } else { (reference, path) };
        if reference != r || path == r {
            return Err(Skip::Missing(format!(
                "the report compares each path with the reference `{r}` only"
            )));
        }
        let mut parts = Vec::new();
        for s in &p.site.sites {
            let rec = self
                .site_record(p.layer, s)
                .ok_or_else(|| Skip::Missing(format!("site `{s}` is not in this model")))?;
            let map = if local { &rec.local } else { &rec.compare };
            let c = map
                .get(path)
                .ok_or_else(|| Skip::Missing(format!("no comparison of `{path}` at `{s}`")))?;
            let (rs, ps) = (rec.paths.get(reference), rec.paths.get(path));
            parts.push((c, rs, ps));
        }
        if parts.len() == 1 {
            return Ok(parts[0].0.clone());
        }
        // Union of sites: sums of squares from each part's moments, then the same formulas.
        let sq = |s: &parallax_parity::Stats| {
            let n = s.count.saturating_sub(s.nan + s.inf) as f64;
            let (m, sd) = (s.mean.unwrap_or(0.0), s.std.unwrap_or(0.0));
            (n - 1.0).max(0.0) * sd * sd + n * m * m
        };
        let (mut rr, mut pp, mut dd, mut count, mut max_abs) = (0.0, 0.0, 0.0, 0u64, 0f64);
        for (c, rs, ps) in &parts {
            let (Some(rs), Some(ps), Some(rel)) = (rs, ps, c.rel_l2) else {
                return Ok(Compare {
                    count: c.count,
                    std_ratio: None,
                    cosine: None,
                    rel_l2: None,
                    sqnr_db: None,
                    max_abs: None,
                });
            };
            let r2 = sq(rs);
            rr += r2;
            pp += sq(ps);
            dd += rel * rel * r2;
            count += c.count;
            max_abs = max_abs.max(c.max_abs.unwrap_or(f64::NAN));
        }
        let rp = (rr + pp - dd) / 2.0;
        let ref_s: Vec<Sample> = parts.iter().filter_map(|(_, r, _)| r.map(sample_of)).collect();
        let path_s: Vec<Sample> = parts.iter().filter_map(|(_, _, q)| q.map(sample_of)).collect();
        let ratio = match (Sample::pool(&ref_s).std, Sample::pool(&path_s).std) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        };
        Ok(Compare {
            count,
            std_ratio: ratio,
            cosine: (rr > 0.0 && pp > 0.0).then(|| rp / (rr.sqrt() * pp.sqrt())),
            rel_l2: (rr > 0.0).then(|| (dd / rr).sqrt()),
            sqnr_db: (dd > 0.0 && rr > 0.0).then(|| 10.0 * parallax_parity::log10(rr / dd)),
            max_abs: Some(max_abs),
        })
    }

    /// The points a check covers, in execution order, and notes on how its layers and sites
    /// were fitted to this model; `Err` when nothing of it exists here.
    fn points<'s>(
        &self,
        sites: &'s [SiteRef],
        layers: Layers,
    ) -> Result<(Vec<Point<'s>>, Vec<String>), String> {
        let mut notes = Vec::new();
        let n = self.n_layers;
        let idx: Vec<Option<u32>> = match layers {
            Layers::None => vec![None],
            Layers::All => (0..n).map(Some).collect(),
            Layers::One(i) if i < n => vec![Some(i)],
            Layers::One(i) => {
                return Err(format!(
                    "the contract names layer {i}; this model has {n} layers (0..{})",
                    n.saturating_sub(1)
                ))
            }
            Layers::Range { start, .. } if start >= n => {
                return Err(format!("the contract names layers from {start}; this model has {n}"))
            }
            Layers::Range { start, end } => {
                if end != n {
                    notes.push(format!(
                        "the contract names layers [{start}, {end}); this model has {n}: judged on [{start}, {})",
                        end.min(n)
                    ));
                }
                (start..end.min(n)).map(Some).collect()
            }
        };
        let order = &self.report.site_order;
        let present = |s: &SiteRef| {
            s.sites.iter().all(|x| {
                if layers == Layers::None {
                    true
                } else {
                    order.iter().any(|o| o == x)
                }
            })
        };
        let mut absent: Vec<&str> =
            sites.iter().filter(|s| !present(s)).map(|s| s.name.as_str()).collect();
        absent.dedup();
        if !absent.is_empty() && absent.len() < sites.len() {
            notes.push(format!("sites this model does not have, skipped: {}", absent.join(", ")));
        }
        let mut kept: Vec<&SiteRef> = sites.iter().filter(|s| present(s)).collect();
        if kept.is_empty() {
            return Err(format!("this model has none of the sites {}", absent.join(", ")));
        }
        // Execution order within a layer, whatever order the contract listed them in.
        kept.sort_by_key(|s| self.site_pos(s));
        let mut pts = Vec::with_capacity(idx.len() * kept.len());
        for l in idx {
            for s in &kept {
                pts.push(Point { layer: l, site: s });
            }
        }
        Ok((pts, notes))
    }

    fn site_pos(&self, s: &SiteRef) -> u64 {
        s.sites
            .iter()
            .filter_map(|x| self.report.site_order.iter().position(|o| o == x))
            .min()
            .unwrap_or(0) as u64
    }

    /// Execution-order key: embed, then layer by layer in site order, then final_norm, logits.
    fn order(&self, layer: Option<u32>, site: &SiteRef) -> u64 {
        let width = self.report.site_order.len() as u64 + 1;
        match (layer, site.sites.first().map(String::as_str)) {
            (Some(i), _) => 1 + i as u64 * width + self.site_pos(site),
            (None, Some("embed")) => 0,
            (None, Some("final_norm")) => u64::MAX - 1,
            _ => u64::MAX,
        }
    }

    fn counts(&self, paths: &[&str], p: &Point) -> Vec<PathCount> {
        paths
            .iter()
            .map(|x| PathCount {
                path: x.to_string(),
                count: self.sample(x, p).ok().and_then(|s| s.count),
            })
            .collect()
    }

    /// Two samples' statistics are comparable only when both state the same element count.
    fn same_sample(&self, a: &str, sa: &Sample, b: &str, sb: &Sample) -> Result<(), Skip> {
        match (sa.count, sb.count) {
            (Some(x), Some(y)) if x == y => Ok(()),
            (Some(x), Some(y)) => Err(Skip::Refused(format!(
                "unequal samples: `{a}` n={x}, `{b}` n={y} — a statistic over one sample cannot be compared with one over another (FALSIFY-007)"
            ))),
            _ => {
                let who = if sa.count.is_none() { a } else { b };
                Err(Skip::Refused(format!(
                    "`{who}` states no element count: its sample's size and token scope are unknown, so the comparison is refused (FALSIFY-007)"
                )))
            }
        }
    }

    fn test(
        &self,
        id: &str,
        rule: &str,
        check: &Check,
        mapping: &PathMapping,
    ) -> (TestVerdict, Option<(u64, FirstDivergence)>) {
        let mut v = TestVerdict {
            id: id.into(),
            rule: rule.into(),
            outcome: Outcome::NotMeasurable,
            check: None,
            band: None,
            evaluated: 0,
            failed: 0,
            worst: None,
            first_failure: None,
            notes: Vec::new(),
            ratio_band: None,
        };
        let m = |x: &str| mapping.resolve(x).to_string();
        let names = |sites: &[SiteRef]| {
            sites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        };
        // (sites, layers, band, description, paths for counts)
        let (sites, layers, band, paths): (&[SiteRef], Layers, Band, Vec<String>) = match check {
            Check::NotMeasurable { reason } => {
                v.notes.push(reason.clone());
                return (v, None);
            }
            Check::StatRatio { stat, num, den, sites, layers, band } => {
                v.check = Some(format!(
                    "{0}({1}) / {0}({2}) at {3}, {4}",
                    stat.as_str(),
                    m(num),
                    m(den),
                    names(sites),
                    layers
                ));
                // Charts draw per-layer std ratios; a band on a site outside the layers has no
                // place on them.
                if *stat == Stat::Std && *layers != Layers::None {
                    let layer_range = match *layers {
                        Layers::Range { start, end } => Some((start, end)),
                        Layers::One(i) => Some((i, i + 1)),
                        _ => None,
                    };
                    v.ratio_band = Some(RatioBand {
                        num: m(num),
                        den: m(den),
                        lo: band.lo,
                        hi: band.hi,
                        sites: sites.iter().flat_map(|s| s.sites.iter().cloned()).collect(),
                        layers: layer_range,
                    });
                }
                (sites, *layers, *band, vec![m(num), m(den)])
            }
            Check::StatEqual { stat, a, b, sites, layers } => {
                v.check = Some(format!(
                    "{0}({1}) == {0}({2}) at {3}, {4}",
                    stat.as_str(),
                    m(a),
                    m(b),
                    names(sites),
                    layers
                ));
                let eq = Band { lo: Some(0.0), hi: Some(0.0), lo_open: false, hi_open: false };
                (sites, *layers, eq, vec![m(a), m(b)])
            }
            Check::StatBand { stat, path, sites, layers, band } => {
                v.check =
                    Some(format!("{}({}) at {}, {}", stat.as_str(), m(path), names(sites), layers));
                (sites, *layers, *band, vec![m(path)])
            }
            Check::Compare { metric, path, reference, sites, layers, band } => {
                v.check = Some(format!(
                    "{}({}, {}) at {}, {}",
                    metric.as_str(),
                    m(path),
                    m(reference),
                    names(sites),
                    layers
                ));
                (sites, *layers, *band, vec![m(path), m(reference)])
            }
            Check::Logits { metric, path, reference, band } => {
                v.check = Some(format!(
                    "{}({}, {}) on the last-position logits",
                    metric.as_str(),
                    m(path),
                    m(reference)
                ));
                v.band = Some(band.to_string());
                return (self.logits_test(v, *metric, &m(path), &m(reference), *band), None);
            }
        };
        v.band = Some(match check {
            Check::StatEqual { .. } => "equal".to_string(),
            _ => band.to_string(),
        });
        let (points, notes) = match self.points(sites, layers) {
            Ok(x) => x,
            Err(why) => {
                v.notes.push(why);
                return (v, None);
            }
        };
        v.notes.extend(notes);
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut worst: Option<(f64, Measurement)> = None;
        let mut refused: Vec<String> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut first: Option<(&Point, Measurement)> = None;
        for p in &points {
            let value = self.value(check, &paths, p);
            let value = match value {
                Ok(x) => x,
                Err(Skip::Missing(why)) => {
                    if !missing.contains(&why) {
                        missing.push(why);
                    }
                    continue;
                }
                Err(Skip::Refused(why)) => {
                    if refused.len() < 3 {
                        refused.push(format!("{}: {why}", place_site(p.layer, &p.site.name)));
                    }
                    v.evaluated += 1;
                    continue;
                }
            };
            v.evaluated += 1;
            let meas = Measurement {
                layer: p.layer,
                site: p.site.name.clone(),
                value,
                counts: self.counts(&paths, p),
            };
            let slack = value.map_or(f64::NEG_INFINITY, |x| band.slack(x));
            let inside = value.is_some_and(|x| band.contains(x));
            if !inside {
                v.failed += 1;
                if first.is_none() {
                    first = Some((p, meas.clone()));
                }
            }
            if worst.as_ref().is_none_or(|(s, _)| slack < *s) {
                worst = Some((slack, meas));
            }
        }
        v.notes.extend(missing.iter().take(3).cloned());
        v.notes.extend(refused.iter().cloned());
        v.worst = worst.map(|(_, m)| m);
        let judged = v.worst.is_some();
        v.outcome = if v.failed > 0 {
            Outcome::Fail
        } else if !refused.is_empty() {
            Outcome::Refused
        } else if !judged {
            Outcome::NotMeasurable
        } else {
            Outcome::Pass
        };
        let fd = first.map(|(p, meas)| {
            v.first_failure = Some(meas.clone());
            let order = self.order(p.layer, p.site);
            (order, self.divergence(id, check, &paths, p, meas, &band))
        });
        (v, fd)
    }

    fn value(&self, check: &Check, paths: &[&str], p: &Point) -> Result<Option<f64>, Skip> {
        match check {
            Check::StatRatio { stat, .. } => {
                let (a, b) = (self.sample(paths[0], p)?, self.sample(paths[1], p)?);
                self.same_sample(paths[0], &a, paths[1], &b)?;
                Ok(match (a.get(*stat), b.get(*stat)) {
                    (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                    _ => None,
                })
            }
            Check::StatEqual { stat, .. } => {
                let (a, b) = (self.sample(paths[0], p)?, self.sample(paths[1], p)?);
                match (a.get(*stat), b.get(*stat)) {
                    (Some(x), Some(y)) => Ok(Some(x - y)),
                    _ if *stat == Stat::Count => {
                        self.same_sample(paths[0], &a, paths[1], &b).map(|_| None)
                    }
                    _ => Ok(None),
                }
            }
            Check::StatBand { stat, .. } => Ok(self.sample(paths[0], p)?.get(*stat)),
            Check::Compare { metric, .. } => {
                Ok(metric_of(&self.compare(paths[0], paths[1], p, false)?, *metric))
            }
            _ => Err(Skip::Missing("not a site check".into())),
        }
    }

    fn divergence(
        &self,
        id: &str,
        check: &Check,
        paths: &[&str],
        p: &Point,
        at: Measurement,
        band: &Band,
    ) -> FirstDivergence {
        let replay = self.report.mode == Mode::Replay;
        // The op alone (fed the reference's input), measured with the same metric.
        let local: Option<f64> = if !replay {
            None
        } else {
            match check {
                Check::Compare { metric, .. } => self
                    .compare(paths[0], paths[1], p, true)
                    .ok()
                    .and_then(|c| metric_of(&c, *metric)),
                Check::StatRatio { stat: Stat::Std, .. } => {
                    let r = &self.report.reference;
                    let (other, inverted) =
                        if paths[1] == r { (paths[0], false) } else { (paths[1], true) };
                    self.compare(other, r, p, true).ok().and_then(|c| c.std_ratio).map(|x| {
                        if inverted {
                            1.0 / x
                        } else {
                            x
                        }
                    })
                }
                _ => None,
            }
        };
        let (cause, explanation) = match local {
            Some(x) if !band.contains(x) => (
                Cause::Root,
                format!("replayed alone on the reference's input, this op gives {x:.6}, already outside the band: the divergence starts here"),
            ),
            Some(x) => (
                Cause::Propagated,
                format!("replayed alone on the reference's input, this op gives {x:.6}, inside the band: the error arrives accumulated from earlier sites"),
            ),
            None if !replay => (
                Cause::Unknown,
                "run with --mode replay to tell whether this op starts the divergence or inherits it".to_string(),
            ),
            None => (
                Cause::Unknown,
                "no replayed (op-alone) comparison exists for this site and check; only matmul sites are replayed".to_string(),
            ),
        };
        FirstDivergence {
            contract: String::new(),
            test: id.into(),
            at,
            band: band.to_string(),
            cause,
            local_value: local,
            explanation,
        }
    }

    fn logits_test(
        &self,
        mut v: TestVerdict,
        metric: LogitsMetric,
        path: &str,
        reference: &str,
        band: Band,
    ) -> TestVerdict {
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
        let value = match metric {
            LogitsMetric::Kl => lc.kl,
            LogitsMetric::Top1Agree => Some(if lc.top1_agree { 1.0 } else { 0.0 }),
            LogitsMetric::Top10Overlap => Some(lc.top10_overlap as f64),
            LogitsMetric::Cosine => lc.cosine,
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
            site: format!("logits (position {})", self.report.logits.position),
            value,
            counts,
        };
        v.evaluated = 1;
        let inside = value.is_some_and(|x| band.contains(x));
        v.outcome = if inside { Outcome::Pass } else { Outcome::Fail };
        if !inside {
            v.failed = 1;
            v.first_failure = Some(meas.clone());
        }
        v.worst = Some(meas);
        v
    }
}

fn metric_of(c: &Compare, m: Metric) -> Option<f64> {
    match m {
        Metric::Cosine => c.cosine,
        Metric::RelL2 => c.rel_l2,
        Metric::SqnrDb => c.sqnr_db,
        Metric::MaxAbs => c.max_abs,
        Metric::StdRatio => c.std_ratio,
    }
}

fn place(layer: Option<u32>) -> String {
    layer.map_or("outside the layers".to_string(), |l| format!("at layer {l}"))
}

fn place_site(layer: Option<u32>, site: &str) -> String {
    layer.map_or(site.to_string(), |l| format!("layer {l} {site}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_std_equals_std_of_union() {
        let a = [1.0f32, 2.0, 3.0, 10.0];
        let b = [-4.0f32, 0.5, 7.0];
        let all: Vec<f32> = a.iter().chain(&b).copied().collect();
        let p = Sample::pool(&[
            sample_of(&parallax_parity::Stats::of(&a)),
            sample_of(&parallax_parity::Stats::of(&b)),
        ]);
        let u = parallax_parity::Stats::of(&all);
        assert_eq!(p.count, Some(7));
        assert!((p.mean.unwrap() - u.mean.unwrap()).abs() < 1e-12);
        assert!((p.std.unwrap() - u.std.unwrap()).abs() < 1e-12);
        assert_eq!((p.min, p.max), (u.min, u.max));
    }

    #[test]
    fn mapping_parses_and_overrides() {
        let m = PathMapping::parse("gguf=llama").unwrap();
        assert_eq!((m.resolve("apr"), m.resolve("gguf"), m.resolve("q8")), ("f32", "llama", "q8"));
        assert!(PathMapping::parse("apr").is_err());
        assert!(PathMapping::parse("=x").is_err());
    }
}
