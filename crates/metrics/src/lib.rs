//! Parity metrics, and the one site table.
//!
//! Owns the statistics recorded at every capture point ([`Stats`]: count, moments, extremes,
//! NaN/Inf/zero counts, accumulated in f64), the comparison of one path against the reference on
//! the *same* sample ([`Compare`]), and logits agreement ([`LogitsCompare`], [`top_k`]). Every
//! comparison takes two equally long slices of the same site and scope, so the upstream artefact
//! — a std over 7 tokens divided by a std over 1 token — cannot be expressed.
//! Also owns [`sites`]: every probe site, in execution order, with what the engine, the contract
//! parser and the report renderer need to know about it.
//! A leaf crate: knows nothing about models, paths, files, reports or contracts; inputs are
//! slices of f32.

pub mod sites;

use serde::{Deserialize, Serialize};

/// `log10` from the `libm` crate: every number in a report is computed by the same code
/// natively and in wasm, so reports are byte-identical across targets.
pub fn log10(x: f64) -> f64 {
    libm::log10(x)
}

/// Which standard deviation every [`Stats::std`] is: the sample std (n − 1), as upstream's
/// traces use, so imported traces compare like with like.
pub const STD_KIND: &str = "sample";

/// Statistics of one sample (one site, one path, one token scope). Moments and extremes are over
/// the finite values only; NaN and ±Inf are counted apart. `None` where no finite value exists
/// (or, for `std`, fewer than two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub absmax: Option<f64>,
    pub nan: u64,
    pub inf: u64,
    pub zeros: u64,
}

impl Stats {
    /// Two passes in f64 (mean, then squared deviations), each summed in [`LANES`] lanes
    /// (value `i` into lane `i mod LANES`, lanes combined as a halving tree). The order is
    /// fixed, so the result is the same on every target; the lanes are independent add chains
    /// and the loops branch-free, so they run several times faster than one running sum.
    pub fn of(values: &[f32]) -> Stats {
        // Counting first, on the bits, lets the common all-finite case sum without selects.
        let (mut non_finite, mut nan, mut zeros) = ([0u32; LANES], [0u32; LANES], [0u32; LANES]);
        for_lanes(values, |j, v| {
            let bits = v.to_bits() & 0x7fff_ffff;
            non_finite[j] += (bits >= 0x7f80_0000) as u32;
            nan[j] += (bits > 0x7f80_0000) as u32;
            zeros[j] += (bits == 0) as u32;
        });
        let total = |c: [u32; LANES]| c.iter().map(|&v| v as u64).sum::<u64>();
        let (non_finite, nan, zeros) = (total(non_finite), total(nan), total(zeros));
        let all_finite = non_finite == 0;
        let mut sum = [0f64; LANES];
        let (mut min, mut max) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
        for_lanes(values, |j, v| {
            let ok = all_finite || v.is_finite();
            let x = v as f64;
            sum[j] = if ok { sum[j] + x } else { sum[j] };
            min[j] = if ok && x < min[j] { x } else { min[j] };
            max[j] = if ok && x > max[j] { x } else { max[j] };
        });
        let n = values.len() as u64 - non_finite;
        let inf = non_finite - nan;
        if n == 0 {
            return Stats {
                count: values.len() as u64,
                mean: None,
                std: None,
                min: None,
                max: None,
                absmax: None,
                nan,
                inf,
                zeros,
            };
        }
        let mean = reduce_lanes(sum) / n as f64;
        let mut ss = [0f64; LANES];
        for_lanes(values, |j, v| {
            let d = v as f64 - mean;
            ss[j] = if all_finite || v.is_finite() { ss[j] + d * d } else { ss[j] };
        });
        let (min, max) = (
            min.into_iter().fold(f64::INFINITY, f64::min),
            max.into_iter().fold(f64::NEG_INFINITY, f64::max),
        );
        Stats {
            count: values.len() as u64,
            mean: Some(mean),
            std: (n > 1).then(|| (reduce_lanes(ss) / (n - 1) as f64).sqrt()),
            min: Some(min),
            max: Some(max),
            absmax: Some(min.abs().max(max.abs())),
            nan,
            inf,
            zeros,
        }
    }

    /// Whether any value was NaN or infinite.
    pub fn has_non_finite(&self) -> bool {
        self.nan > 0 || self.inf > 0
    }
}

/// Lanes of every f64 sum over a sample (see [`Stats::of`]).
const LANES: usize = 8;

/// `f(i mod LANES, values[i])` for every value, in order, in an unrolled shape the compiler
/// vectorizes.
#[inline(always)]
fn for_lanes(values: &[f32], mut f: impl FnMut(usize, f32)) {
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (j, &v) in c.iter().enumerate() {
            f(j, v);
        }
    }
    for (j, &v) in tail.iter().enumerate() {
        f(j, v);
    }
}

/// Lane sums combined as a halving tree: lane `j` += lane `j + 4`, then `+ 2`, then `+ 1`.
#[inline(always)]
fn reduce_lanes(mut v: [f64; LANES]) -> f64 {
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            v[j] += v[j + width];
        }
        width /= 2;
    }
    v[0]
}

/// One path against the reference on the same site and the same values (same count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    /// Elements compared (equal on both sides by construction).
    pub count: u64,
    /// std(path) / std(reference).
    pub std_ratio: Option<f64>,
    pub cosine: Option<f64>,
    /// ‖path − reference‖ / ‖reference‖.
    pub rel_l2: Option<f64>,
    /// 10·log10(‖reference‖² / ‖path − reference‖²); `None` when the two are identical.
    pub sqnr_db: Option<f64>,
    pub max_abs: Option<f64>,
}

impl Compare {
    /// Compare `path` with `reference`. Returns `None` when the lengths differ: unequal samples
    /// are never compared (FALSIFY-007).
    pub fn of(reference: &[f32], path: &[f32]) -> Option<Compare> {
        Compare::with_stds(reference, path, || (Stats::of(reference).std, Stats::of(path).std))
    }

    /// [`Compare::of`] for a caller that already holds both sides' [`Stats`] of these very
    /// slices (a probe records them anyway): `stds` gives their `std`s, so the two extra passes
    /// over the values are skipped. The result is the same, bit for bit.
    pub fn of_with_stats(
        reference: &[f32],
        path: &[f32],
        ref_stats: &Stats,
        path_stats: &Stats,
    ) -> Option<Compare> {
        debug_assert!(
            ref_stats.count == reference.len() as u64 && path_stats.count == path.len() as u64
        );
        Compare::with_stds(reference, path, || (ref_stats.std, path_stats.std))
    }

    fn with_stds(
        reference: &[f32],
        path: &[f32],
        stds: impl FnOnce() -> (Option<f64>, Option<f64>),
    ) -> Option<Compare> {
        if reference.len() != path.len() {
            return None;
        }
        // The same lanes as `Stats::of`; a non-finite value anywhere voids every sum, so the
        // loop need not stop at it.
        let (mut rr, mut pp, mut rp, mut dd, mut max_abs) =
            ([0f64; LANES], [0f64; LANES], [0f64; LANES], [0f64; LANES], [0f64; LANES]);
        let finite = reference.iter().chain(path).all(|v| v.is_finite());
        if finite {
            let mut add = |j: usize, r: f32, p: f32| {
                let (r, p) = (r as f64, p as f64);
                rr[j] += r * r;
                pp[j] += p * p;
                rp[j] += r * p;
                let d = p - r;
                dd[j] += d * d;
                max_abs[j] = max_abs[j].max(d.abs());
            };
            let (rc, pc) = (reference.chunks_exact(LANES), path.chunks_exact(LANES));
            let (rt, pt) = (rc.remainder(), pc.remainder());
            for (r, p) in rc.zip(pc) {
                for j in 0..LANES {
                    add(j, r[j], p[j]);
                }
            }
            for (j, (&r, &p)) in rt.iter().zip(pt).enumerate() {
                add(j, r, p);
            }
        }
        let count = reference.len() as u64;
        if !finite {
            return Some(Compare {
                count,
                std_ratio: None,
                cosine: None,
                rel_l2: None,
                sqnr_db: None,
                max_abs: None,
            });
        }
        let ratio = match stds() {
            (Some(r), Some(p)) if r > 0.0 => Some(p / r),
            _ => None,
        };
        let (rr, pp, rp, dd) =
            (reduce_lanes(rr), reduce_lanes(pp), reduce_lanes(rp), reduce_lanes(dd));
        let max_abs = max_abs.into_iter().fold(0f64, f64::max);
        let cosine = (rr > 0.0 && pp > 0.0).then(|| rp / (rr.sqrt() * pp.sqrt()));
        Some(Compare {
            count,
            std_ratio: ratio,
            cosine,
            rel_l2: (rr > 0.0).then(|| (dd / rr).sqrt()),
            sqnr_db: (dd > 0.0 && rr > 0.0).then(|| 10.0 * log10(rr / dd)),
            max_abs: Some(max_abs),
        })
    }
}

/// Logits of one path against the reference's, for one token position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsCompare {
    /// KL(P_reference ‖ P_path) in nats, softmax in f64.
    pub kl: Option<f64>,
    pub top1_agree: bool,
    /// How many of the reference's top-10 ids are in the path's top-10.
    pub top10_overlap: u32,
    pub cosine: Option<f64>,
}

impl LogitsCompare {
    pub fn of(reference: &[f32], path: &[f32]) -> Option<LogitsCompare> {
        if reference.len() != path.len() || reference.is_empty() {
            return None;
        }
        let (tr, tp) = (top_k(reference, 10), top_k(path, 10));
        let overlap = tr.iter().filter(|(id, _)| tp.iter().any(|(j, _)| j == id)).count() as u32;
        let kl = match (log_softmax(reference), log_softmax(path)) {
            (Some(lr), Some(lp)) => {
                Some(lr.iter().zip(&lp).map(|(a, b)| libm::exp(*a) * (a - b)).sum::<f64>().max(0.0))
            }
            _ => None,
        };
        Some(LogitsCompare {
            kl,
            top1_agree: tr.first().map(|t| t.0) == tp.first().map(|t| t.0),
            top10_overlap: overlap,
            cosine: Compare::of(reference, path).and_then(|c| c.cosine),
        })
    }
}

/// The `k` largest values with their indices, largest first; ties broken by the lower index so
/// the order is deterministic. NaN is never ranked.
pub fn top_k(values: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() || k == 0 {
            continue;
        }
        if top.len() == k && v <= top[k - 1].1 {
            continue;
        }
        let pos = top.iter().position(|&(_, t)| v > t).unwrap_or(top.len());
        top.insert(pos, (i as u32, v));
        top.truncate(k);
    }
    top
}

fn log_softmax(x: &[f32]) -> Option<Vec<f64>> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let lse = max + libm::log(x.iter().map(|&v| libm::exp(v as f64 - max)).sum::<f64>());
    Some(x.iter().map(|&v| v as f64 - lse).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_non_finite_apart_and_use_sample_std() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0, f32::NAN, f32::INFINITY, 0.0]);
        assert_eq!(s.count, 7);
        assert_eq!((s.nan, s.inf, s.zeros), (1, 1, 1));
        assert_eq!(s.mean, Some(2.0));
        // sample std of [1,2,3,4,0] = sqrt(10/4)
        assert!((s.std.unwrap() - (2.5f64).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.absmax), (Some(0.0), Some(4.0), Some(4.0)));
        let empty = Stats::of(&[f32::NAN]);
        assert_eq!(empty.mean, None);
        assert!(empty.has_non_finite());
    }

    #[test]
    fn compare_refuses_unequal_samples() {
        assert!(Compare::of(&[1.0, 2.0], &[1.0]).is_none());
        let c = Compare::of(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(c.rel_l2, Some(0.0));
        assert_eq!(c.sqnr_db, None);
        assert!((c.cosine.unwrap() - 1.0).abs() < 1e-12);
        let c = Compare::of(&[1.0, 0.0], &[1.1, 0.0]).unwrap();
        assert!((c.rel_l2.unwrap() - 0.1).abs() < 1e-6);
        assert!((c.sqnr_db.unwrap() - 20.0).abs() < 1e-4);
        assert!((c.max_abs.unwrap() - 0.1).abs() < 1e-6);
    }

    #[test]
    fn logits_compare_and_top_k() {
        assert_eq!(
            top_k(&[0.5, 3.0, 3.0, -1.0, f32::NAN, 2.0], 3),
            vec![(1, 3.0), (2, 3.0), (5, 2.0)]
        );
        let a = [1.0f32, 2.0, 3.0, 0.0];
        let l = LogitsCompare::of(&a, &a).unwrap();
        assert!(l.kl.unwrap().abs() < 1e-12);
        assert!(l.top1_agree);
        assert_eq!(l.top10_overlap, 4);
        let b = [1.0f32, 3.5, 3.0, 0.0];
        let l = LogitsCompare::of(&a, &b).unwrap();
        assert!(!l.top1_agree);
        assert!(l.kl.unwrap() > 0.0);
    }
}
