//! Judging a report: every test of every contract over the points it covers, in execution
//! order, and the earliest point that leaves a band.

use parallax_report::verdict::{
    Cause, ContractVerdict, FirstDivergence, Measurement, Outcome, TestVerdict, Verdicts,
};
use parallax_report::{Report, SiteRecord};

use crate::checks::{self, Measure, SiteCheck};
use crate::contract::{Check, Contract, ContractTest, Layers, Requirement, SiteRef};
use crate::mapping::PathMapping;
use crate::trace::Trace;

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
        // Explaining tests first: the tests they explain need where they first fail.
        let explains = |t: &ContractTest| c.tests.iter().any(|x| x.explained_by.contains(&t.id));
        let mut done: Vec<Option<Judged>> =
            c.tests.iter().map(|t| explains(t).then(|| j.test(t, &[], mapping))).collect();
        for (i, t) in c.tests.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let explainers: Vec<(&str, &Judged)> = t
                .explained_by
                .iter()
                .filter_map(|e| {
                    let k = c.tests.iter().position(|x| &x.id == e)?;
                    done[k].as_ref().map(|jk| (e.as_str(), jk))
                })
                .collect();
            let judged = j.test(t, &explainers, mapping);
            done[i] = Some(judged);
        }
        let judged = done.into_iter().flatten();
        let mut tests = Vec::with_capacity(c.tests.len());
        for Judged { verdict, first: fd, .. } in judged {
            if let Some((order, mut fd)) = fd {
                // At one point, an op-alone (root) finding names the cause best.
                let better = |(o, f): &(u64, FirstDivergence)| {
                    order < *o || (order == *o && fd.cause == Cause::Root && f.cause != Cause::Root)
                };
                if first.as_ref().is_none_or(better) {
                    fd.contract = c.name.clone();
                    first = Some((order, fd));
                }
            }
            tests.push(verdict);
        }
        checks::ties_need_agreeing_distributions(&c.tests, &mut tests, mapping);
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

/// One test judged: its verdict, where it first left its band (execution-order key first),
/// and the paths it compared.
pub(crate) struct Judged {
    verdict: TestVerdict,
    first: Option<(u64, FirstDivergence)>,
    /// The execution-order key of the first point outside the band (logits: after every site).
    first_failure: Option<u64>,
    /// The report paths (or trace ids) the test compared, sorted.
    paths: Vec<String>,
}

/// How far `explainers` explain a failure of a test over `paths`: `Some(Some(key))` before the
/// earliest first failure among them, `Some(None)` everywhere (all pass), `None` nowhere (an
/// explainer was not measured, or on other paths).
fn explanation_limit(explainers: &[(&str, &Judged)], paths: &[String]) -> Option<Option<u64>> {
    if explainers.is_empty() {
        return None;
    }
    let mut limit: Option<u64> = None;
    for (_, e) in explainers {
        let measured = matches!(e.verdict.outcome, Outcome::Pass | Outcome::Fail)
            && e.verdict.evaluated > 0
            && e.paths == paths;
        if !measured {
            return None;
        }
        if let Some(o) = e.first_failure {
            limit = Some(limit.map_or(o, |l| l.min(o)));
        }
    }
    Some(limit)
}

/// How far the explainers pass, for a note: `A passes at every point; B passes before its first
/// failure layer 20 ffn_gate`.
fn upto(explainers: &[(&str, &Judged)]) -> String {
    let parts: Vec<String> = explainers
        .iter()
        .map(|(id, j)| match j.verdict.first_failure.as_ref() {
            Some(m) if j.verdict.outcome == Outcome::Fail => {
                format!("{id} passes before its first failure {}", m.place())
            }
            _ => format!("{id} passes at every point"),
        })
        .collect();
    parts.join("; ")
}

/// Why a point was not judged.
pub(crate) enum Skip {
    /// The report or trace lacks it (a site the model does not have, a path not run).
    Missing(String),
    /// It exists but the comparison would not be honest.
    Refused(String),
}

/// A report being judged, with the traces that join it as extra paths.
pub(crate) struct Judge<'a> {
    pub(crate) report: &'a Report,
    pub(crate) traces: &'a [(&'a str, &'a Trace)],
    n_layers: u32,
}

/// A point of a check: a layer (or none) and a site.
pub(crate) struct Point<'s> {
    pub(crate) layer: Option<u32>,
    pub(crate) site: &'s SiteRef,
}

impl Judge<'_> {
    pub(crate) fn site_record(&self, layer: Option<u32>, site: &str) -> Option<&SiteRecord> {
        match layer {
            None => match site {
                "embed" => Some(&self.report.embed),
                "final_norm" => Some(&self.report.final_norm),
                _ => None,
            },
            Some(i) => self.report.layers.get(i as usize)?.sites.get(site),
        }
    }

    pub(crate) fn trace(&self, path: &str) -> Option<&Trace> {
        self.traces.iter().find(|(id, _)| *id == path).map(|(_, t)| *t)
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
                    "the contract names layer {i}; this model has {n} layers (0–{})",
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

    /// One test's verdict, and where it first left its band (execution-order key first).
    /// One test's verdict. With `explainer` (the test its `explained_by` names, judged), its
    /// failures before the explainer's first failure in execution order — or anywhere, if the
    /// explainer passed — are explained by the arithmetic: counted apart, never a FAIL, never the
    /// first divergence. Only a measured explainer of the same paths explains: an old report
    /// without noise predictions, or an imported trace (which has none), is judged strictly.
    fn test(
        &self,
        t: &ContractTest,
        explainers: &[(&str, &Judged)],
        mapping: &PathMapping,
    ) -> Judged {
        if let Some(Requirement::IdenticalWeights) = t.requires {
            let why = match self.report.weights_identical() {
                Some(true) => None,
                Some(false) => Some(
                    "applies to files with identical weights; these files' weights differ (see `weights`)",
                ),
                None => Some(
                    "applies to a run over two files with identical weights; the report compares no weights (one file, or written before Parallax did)",
                ),
            };
            if let Some(why) = why {
                let mut judged = self.judge_test(t, explainers, mapping);
                let v = &mut judged.verdict;
                v.outcome = Outcome::NotMeasurable;
                (v.evaluated, v.failed, v.worst, v.first_failure) = (0, 0, None, None);
                v.notes = vec![why.to_string()];
                return Judged { first: None, first_failure: None, ..judged };
            }
        }
        let mut judged = self.judge_test(t, explainers, mapping);
        if t.measured && matches!(judged.verdict.outcome, Outcome::Pass | Outcome::Fail) {
            let v = &mut judged.verdict;
            v.outcome = Outcome::Measured;
            v.worst = v.worst.take().or(v.first_failure.take());
            (v.failed, v.first_failure, v.band, v.compare_band) = (0, None, None, None);
            v.notes.push(
                "measured, not judged: no band is known for these files; a contract of your own can set one"
                    .into(),
            );
            return Judged { first: None, first_failure: None, ..judged };
        }
        judged
    }

    fn judge_test(
        &self,
        t: &ContractTest,
        explainers: &[(&str, &Judged)],
        mapping: &PathMapping,
    ) -> Judged {
        let (id, rule, check) = (t.id.as_str(), t.rule.as_str(), &t.check);
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
            compare_band: None,
        };
        let m = |x: &str| mapping.resolve(x).to_string();
        let plan = match check {
            Check::NotMeasurable { reason } => {
                v.notes.push(reason.clone());
                return Judged { verdict: v, first: None, first_failure: None, paths: Vec::new() };
            }
            Check::StatRatio { stat, num, den, sites, layers, band } => {
                checks::stat_ratio(&mut v, *stat, m(num), m(den), sites, *layers, *band)
            }
            Check::StatEqual { stat, a, b, sites, layers } => {
                checks::stat_equal(&mut v, *stat, m(a), m(b), sites, *layers)
            }
            Check::StatBand { stat, path, sites, layers, band } => {
                checks::stat_band(&mut v, *stat, m(path), sites, *layers, *band)
            }
            Check::Compare { metric, path, reference, sites, layers, band } => {
                checks::compare(&mut v, *metric, m(path), m(reference), sites, *layers, *band)
            }
            Check::Logits { metric, path, reference, band } => {
                let mut verdict = self.logits(v, *metric, &m(path), &m(reference), *band);
                let mut paths = vec![m(path), m(reference)];
                paths.sort();
                let failed = verdict.outcome == Outcome::Fail;
                // The logits come after every site: explained only where every explainer
                // passes everywhere.
                if failed && explanation_limit(explainers, &paths) == Some(None) {
                    verdict.outcome = Outcome::Explained;
                    verdict.notes.insert(
                        0,
                        format!(
                            "explained by the arithmetic: every op that differs between the paths, the output head included, adds only its predicted rounding noise ({}), so these logits differ by that noise as this model carries it forward — not a fault (on models that amplify noise, llama.cpp's own settings differ as much)",
                            upto(explainers)
                        ),
                    );
                }
                let first_failure = failed.then_some(u64::MAX);
                return Judged { verdict, first: None, first_failure, paths };
            }
        };
        let SiteCheck { sites, layers, band, paths, measure } = plan;
        let (points, notes) = match self.points(sites, layers) {
            Ok(x) => x,
            Err(why) => {
                v.notes.push(why);
                return Judged { verdict: v, first: None, first_failure: None, paths: Vec::new() };
            }
        };
        v.notes.extend(notes);
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut worst: Option<(f64, Measurement)> = None;
        let mut refused: Vec<String> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut first: Option<(&Point, Measurement)> = None;
        let mut sorted: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        sorted.sort();
        // Points before this execution-order key are explained where they leave the band.
        let explained_before =
            explanation_limit(explainers, &sorted).map(|limit| limit.unwrap_or(u64::MAX));
        let mut explained: Option<(&Point, Measurement)> = None;
        let mut n_explained = 0u32;
        for p in &points {
            let value = self.measure(measure, &paths, p);
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
            if !inside && explained_before.is_some_and(|o| self.order(p.layer, p.site) < o) {
                n_explained += 1;
                if explained.is_none() {
                    explained = Some((p, meas.clone()));
                }
            } else if !inside {
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
        if n_explained > 0 {
            v.notes.insert(
                0,
                format!(
                    "{n_explained} point(s) outside the band are explained by the arithmetic: every op that differs between the paths adds only its predicted rounding noise up to them ({}), so what arrives there is that noise, carried forward — not a fault",
                    upto(explainers)
                ),
            );
        }
        v.outcome = if v.failed > 0 {
            Outcome::Fail
        } else if n_explained > 0 {
            Outcome::Explained
        } else if !refused.is_empty() {
            Outcome::Refused
        } else if !judged {
            Outcome::NotMeasurable
        } else {
            Outcome::Pass
        };
        // Which position carries the divergence, at the first point that left the band.
        if let (Some((p, _)), Measure::Compare(_) | Measure::Ratio(_)) =
            (first.as_ref().or(explained.as_ref()), measure)
        {
            if let Some(note) = self.carrier(&paths, p) {
                v.notes.push(note);
            }
        }
        if v.outcome == Outcome::Explained {
            v.first_failure = explained.map(|(_, m)| m);
        }
        let fd = first.map(|(p, meas)| {
            v.first_failure = Some(meas.clone());
            let order = self.order(p.layer, p.site);
            (order, self.divergence(id, check, &paths, p, meas, &band))
        });
        let first_failure = fd.as_ref().map(|(o, _)| *o);
        Judged { verdict: v, first: fd, first_failure, paths: sorted }
    }

    /// Which prompt position carries the divergence at `p` (its share of the error energy of
    /// the path that is not the reference), as a note; `None` for one-token runs, traces and
    /// sites without per-token comparisons.
    fn carrier(&self, paths: &[&str], p: &Point) -> Option<String> {
        let r = self.report.reference.as_str();
        let path = paths.iter().find(|x| **x != r)?;
        // A last-token run judged one position: nothing to apportion.
        if self.report.scope == parallax_report::Scope::Last {
            return None;
        }
        let per_token = &self.report.per_token;
        let mut energy: Vec<f64> = Vec::new();
        for s in &p.site.sites {
            let site = match p.layer {
                Some(i) => per_token.layers.get(i as usize)?.get(s.as_str())?,
                None if s == "embed" => &per_token.embed,
                None if s == "final_norm" => &per_token.final_norm,
                None => return None,
            };
            let (cmp, refs) = (site.compare.get(*path)?, site.paths.get(r)?);
            energy.resize(cmp.len().max(energy.len()), 0.0);
            for (t, (c, st)) in cmp.iter().zip(refs).enumerate() {
                let (rel, std, mean) = (c.rel_l2?, st.std?, st.mean?);
                energy[t] += rel * rel * st.count as f64 * (std * std + mean * mean);
            }
        }
        let total: f64 = energy.iter().sum();
        if energy.len() < 2 || total.is_nan() || total <= 0.0 {
            return None;
        }
        let (t, e) = energy.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        let piece =
            self.report.prompt.pieces.get(t).map(|s| format!(" ({s:?})")).unwrap_or_default();
        Some(format!(
            "at {}, position {t}{piece} carries {:.0}% of {path}'s divergence (error energy over the {} positions)",
            place_site(p.layer, &p.site.name),
            100.0 * e / total,
            energy.len()
        ))
    }
}

pub(crate) fn place(layer: Option<u32>) -> String {
    layer.map_or("outside the layers".to_string(), |l| format!("at layer {l}"))
}

fn place_site(layer: Option<u32>, site: &str) -> String {
    layer.map_or(site.to_string(), |l| format!("layer {l} {site}"))
}
