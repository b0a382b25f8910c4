//! One path's sample at a point of a check, from a report or an imported trace, pooled over
//! the Parallax sites a contract's site stands for; and element-wise comparisons, pooled the
//! same way.

use parallax_metrics::{log10, Compare, Stats};
use parallax_report::verdict::PathCount;

use crate::contract::{SiteRef, Stat};
use crate::evaluate::{place, Judge, Point, Skip};
use crate::trace::{Trace, TraceStat};

/// One path's sample at a point, as far as its source knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) count: Option<u64>,
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
    pub(crate) fn get(&self, stat: Stat) -> Option<f64> {
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
    pub(crate) fn pool(parts: &[Sample]) -> Sample {
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

pub(crate) fn sample_of(s: &Stats) -> Sample {
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

impl Judge<'_> {
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

    pub(crate) fn sample(&self, path: &str, p: &Point) -> Result<Sample, Skip> {
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
        let from = |ts: &TraceStat| Sample {
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
        let sites: &[TraceStat] = match p.layer {
            Some(i) => t.layers.iter().find(|l| l.index == i).map_or(&[], |l| &l.sites),
            None => &[],
        };
        let globals: Vec<&TraceStat> =
            [&t.embed, &t.final_norm, &t.logits].into_iter().flatten().collect();
        let candidates: Vec<&TraceStat> =
            if p.layer.is_some() { sites.iter().collect() } else { globals };
        // The same union of sites under whatever name the trace uses (`qkv` = q ∪ k ∪ v) …
        let resolved = |ts: &&TraceStat| SiteRef::resolve(&ts.site).map(|r| r.sites);
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

    /// `path`'s local error against its predicted rounding noise at a point: the worst of the
    /// site's parts. Only matmul sites have one.
    pub(crate) fn noise_ratio(
        &self,
        path: &str,
        reference: &str,
        p: &Point,
    ) -> Result<Option<f64>, Skip> {
        // The same questions as an element-wise comparison: both paths run here, and one of
        // them the reference.
        let _ = self.compare(path, reference, p, false)?;
        let path = if reference == self.report.reference { path } else { reference };
        let mut worst: Option<f64> = None;
        for s in &p.site.sites {
            let noise = self.site_record(p.layer, s).and_then(|r| r.noise.get(path));
            let Some(n) = noise else {
                return Err(Skip::Missing(format!(
                    "no local noise prediction of `{path}` at `{s}` (matmul sites have one; reports written before Parallax predicted noise have none)"
                )));
            };
            worst = Some(worst.map_or(n.ratio, |w: f64| w.max(n.ratio)));
        }
        Ok(worst)
    }

    /// `path` against the report's reference at a point (pooled over the site's parts).
    pub(crate) fn compare(
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
        let sq = |s: &Stats| {
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
            sqnr_db: (dd > 0.0 && rr > 0.0).then(|| 10.0 * log10(rr / dd)),
            max_abs: Some(max_abs),
        })
    }

    pub(crate) fn counts(&self, paths: &[&str], p: &Point) -> Vec<PathCount> {
        paths
            .iter()
            .map(|x| PathCount {
                path: x.to_string(),
                count: self.sample(x, p).ok().and_then(|s| s.count),
            })
            .collect()
    }

    /// Two samples' statistics are comparable only when both state the same element count.
    pub(crate) fn same_sample(
        &self,
        a: &str,
        sa: &Sample,
        b: &str,
        sb: &Sample,
    ) -> Result<(), Skip> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_std_equals_std_of_union() {
        let a = [1.0f32, 2.0, 3.0, 10.0];
        let b = [-4.0f32, 0.5, 7.0];
        let all: Vec<f32> = a.iter().chain(&b).copied().collect();
        let p = Sample::pool(&[sample_of(&Stats::of(&a)), sample_of(&Stats::of(&b))]);
        let u = Stats::of(&all);
        assert_eq!(p.count, Some(7));
        assert!((p.mean.unwrap() - u.mean.unwrap()).abs() < 1e-12);
        assert!((p.std.unwrap() - u.std.unwrap()).abs() < 1e-12);
        assert_eq!((p.min, p.max), (u.min, u.max));
    }
}
