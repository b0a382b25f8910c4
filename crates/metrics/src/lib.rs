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

mod exp;
mod lanes;
pub mod positions;
pub mod sites;

pub use exp::exp_each;
use lanes::{CompareSums, Moments};

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
/// Evaluates `$f($args…)` (an `#[inline(always)]` function over [`LANES`] lanes) compiled for
/// AVX-512 or AVX2 where the CPU has it: eight f64 lanes are then one or two registers, not
/// four. Each lane's arithmetic is the same IEEE operations in the same order, so the bits do
/// not change.
macro_rules! wider_lanes {
    ($($f:ident)::+($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if parallax_cpu::avx512() {
                #[target_feature(enable = "avx512f")]
                unsafe fn widest<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                // SAFETY: AVX-512F was detected at run time (`parallax_cpu`).
                unsafe { widest(#[inline(always)] || $($f)::+($($arg),*)) }
            } else if parallax_cpu::avx2() {
                #[target_feature(enable = "avx2")]
                unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                // SAFETY: AVX2 was detected at run time (`parallax_cpu`).
                unsafe { wide(#[inline(always)] || $($f)::+($($arg),*)) }
            } else {
                $($f)::+($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $($f)::+($($arg),*)
        }
    }};
}

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
        wider_lanes!(Stats::of_lanes(values))
    }

    #[inline(always)]
    fn of_lanes(values: &[f32]) -> Stats {
        // Counting first, on the bits, lets the common all-finite case sum without selects.
        let (non_finite, nan, zeros) = lanes::count_special(values);
        let all_finite = non_finite == 0;
        // The sums as explicit vectors (`lanes`); with a NaN or an infinity, the loop that
        // passes them over.
        let mut moments = Moments::new();
        if all_finite {
            moments.add_finite(values);
        } else {
            moments.add_portable(values, false);
        }
        let Moments { sum, min, max } = moments;
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
        let ss = if all_finite {
            lanes::squared_deviations(values, mean)
        } else {
            let mut ss = [0f64; LANES];
            lanes::squared_deviations_portable(&mut ss, values, mean, false);
            ss
        };
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

/// Lanes of every f64 sum over a sample (see [`Stats::of`]), and of the engine's weights diff:
/// value `i` into lane `i mod LANES`, then [`reduce_lanes`].
pub const LANES: usize = 8;

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
pub fn reduce_lanes(mut v: [f64; LANES]) -> f64 {
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
        if reference.len() != path.len() {
            return None;
        }
        // The statistics count the NaNs and infinities (vectorized, where a scan that stops at
        // the first is one value at a time) and give the stds.
        Compare::of_with_stats(reference, path, &Stats::of(reference), &Stats::of(path))
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
        // The statistics counted every NaN and infinity: no pass to look for them again.
        let finite = !ref_stats.has_non_finite() && !path_stats.has_non_finite();
        Compare::with_stds(reference, path, finite, || (ref_stats.std, path_stats.std))
    }

    /// `finite`: whether every value on both sides is finite.
    fn with_stds(
        reference: &[f32],
        path: &[f32],
        finite: bool,
        stds: impl FnOnce() -> (Option<f64>, Option<f64>),
    ) -> Option<Compare> {
        if reference.len() != path.len() {
            return None;
        }
        // The same lanes as `Stats::of`; a non-finite value anywhere voids every sum, so none
        // is taken.
        let mut sums = CompareSums::zero();
        if finite {
            sums.add(reference, path);
        }
        let CompareSums { rr, pp, rp, dd, max_abs } = sums;
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

/// How many standard deviations of a two-token logit difference make a tie: see
/// [`LogitsCompare::tie_margin`].
pub const TIE_SIGMAS: f64 = 3.0;

/// The tie margin for a measured logit noise: `TIE_SIGMAS · √2 · noise` (see
/// [`LogitsCompare::tie_margin`]).
pub fn tie_margin(logit_noise: f64) -> f64 {
    TIE_SIGMAS * std::f64::consts::SQRT_2 * logit_noise
}

/// Logits of one path against the reference's, for one token position.
///
/// Besides the agreement itself it measures how far apart the reference's own choices were, so
/// that a flip between two tokens closer than this run's noise can be told from a wrong op: the
/// judge reports such a flip as a tie (EXPLAINED), not a failure. Reports written before these
/// fields existed read them as absent (and are judged strictly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitsCompare {
    /// KL(P_reference ‖ P_path) in nats, softmax in f64.
    pub kl: Option<f64>,
    pub top1_agree: bool,
    /// How many of the reference's top-10 ids are in the path's top-10.
    pub top10_overlap: u32,
    pub cosine: Option<f64>,
    /// The measured logit noise of this run: the population standard deviation, over the whole
    /// vocabulary, of `d = path − reference` (accumulated in f64). Softmax ignores a shift common
    /// to every logit, and the std removes it. `None` when a logit on either side is not finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_noise: Option<f64>,
    /// `3·√2·logit_noise`: the largest reference margin a flip may cross and still be a tie.
    ///
    /// Tokens `a` and `b` with reference logits `z_a > z_b` change places on the path when
    /// `d_b − d_a > z_a − z_b`, the reference's own margin. If the errors of single tokens were
    /// independent with std `σ = logit_noise`, `d_b − d_a` would have std `√2·σ`; a margin
    /// within [`TIE_SIGMAS`] (3) of those is one this run's noise can cross, so a flip across it
    /// is a tie, not evidence of a wrong op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_margin: Option<f64>,
    /// When the top-1 ids differ: which ones, and the reference's margin between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_flip: Option<TopFlip>,
    /// How many of the reference's top-10 ids missing from the path's top-10 are ties. Each
    /// missing id `a` is paired with a distinct intruder `b` (an id in the path's top-10 but not
    /// the reference's); a pair is a tie when the reference's margin `z_a − z_b` is within
    /// `tie_margin` — the top-1 rule applied to a swap across the 10th place. Since
    /// `z_a ≥ z_10 ≥ z_b`, both ids then lie within `tie_margin` of the reference's 10th logit:
    /// an intruder from far below the 10th place is never a tie, however close `a` was. The
    /// count is the largest number of such disjoint pairs; 0 when `tie_margin` is absent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub top10_ties: u32,
    /// The output head alone — the path's product on the reference's final-norm row — against
    /// the rounding noise its arithmetic predicts (set by the engine; absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<LocalNoise>,
    /// Every prompt position's distributions compared (set by the engine when a run computes
    /// the logits of every position; absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<positions::PositionsSummary>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The rounding noise a path's arithmetic predicts for its local error, and how the
/// measured local error compares with it.
///
/// The path multiplies `W · x̃`, where `x̃` is the reference's input `x` as the path's kernel
/// sees it (quantized per block to Q8_K/Q8_0/Q8_1, or converted to f16, as llama.cpp does;
/// `x̃ = x` on f32 paths). With `e = x̃ − x` its local error is `W · e`, whose expected energy,
/// for rounding errors independent across inputs, is `Σ_i c_i e_i²` with `c_i = Σ_r W_ri²`
/// (the weights' column energies) — computed from the actual `e`, not a bound. Summation in
/// f32 adds a floor of `(4u)² · n · Σ_i c_i x_i²` (`u = 2⁻²⁴`, `n` inputs): a random walk of
/// one rounding per addition, with a 4× allowance for different summation orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalNoise {
    /// The predicted relative L2 of the local error over the rows in scope:
    /// `sqrt(Σ_t predicted_t / Σ_t ‖y_t‖²)`.
    pub predicted_rel_l2: f64,
    /// The worst token's `‖measured‖ / ‖predicted‖`: near 1 (below, where inputs fall on the
    /// grid) for a kernel that computes what its arithmetic says; a wrong kernel is orders of
    /// magnitude above.
    pub ratio: f64,
    /// The prompt position of that token.
    pub position: u32,
}

/// The two top-1 ids when they differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFlip {
    /// The reference's top-1 id.
    pub reference: u32,
    /// The path's top-1 id.
    pub path: u32,
    /// `z[reference] − z[path]` in the reference's logits (≥ 0): how far apart the reference
    /// held the two tokens.
    pub margin: f64,
}

impl LogitsCompare {
    pub fn of(reference: &[f32], path: &[f32]) -> Option<LogitsCompare> {
        if reference.len() != path.len() || reference.is_empty() {
            return None;
        }
        let (tr, tp) = (top_k(reference, 10), top_k(path, 10));
        let overlap = tr.iter().filter(|(id, _)| tp.iter().any(|(j, _)| j == id)).count() as u32;
        let kl = match (softmax(reference), log_softmax(path)) {
            (Some((lr, pr)), Some(lp)) => Some(
                lr.iter().zip(&lp).zip(&pr).map(|((a, b), p)| p * (a - b)).sum::<f64>().max(0.0),
            ),
            _ => None,
        };
        let logit_noise = difference_std(reference, path);
        let tie_margin = logit_noise.map(tie_margin);
        let z = |id: u32| reference[id as usize] as f64;
        let top1_flip = match (tr.first(), tp.first()) {
            (Some(&(a, _)), Some(&(b, _))) if a != b => {
                let margin = z(a) - z(b);
                margin.is_finite().then_some(TopFlip { reference: a, path: b, margin })
            }
            _ => None,
        };
        let top10_ties = match tie_margin {
            Some(m) => {
                // Missing ids least constrained first (lowest z_a), intruders lowest first: each
                // missing id takes the lowest intruder it can still reach. The compatible
                // intruders of a higher z_a are a subset of a lower one's, so this greedy pairing
                // is a largest one.
                let mut missing: Vec<f64> = tr
                    .iter()
                    .filter(|(id, _)| !tp.iter().any(|(j, _)| j == id))
                    .map(|&(id, _)| z(id))
                    .collect();
                let mut intruders: Vec<f64> = tp
                    .iter()
                    .filter(|(id, _)| !tr.iter().any(|(j, _)| j == id))
                    .map(|&(id, _)| z(id))
                    .collect();
                missing.sort_by(f64::total_cmp);
                intruders.sort_by(f64::total_cmp);
                let (mut ties, mut j) = (0u32, 0usize);
                for a in missing {
                    while j < intruders.len() && a - intruders[j] > m {
                        j += 1;
                    }
                    if j == intruders.len() {
                        break;
                    }
                    ties += 1;
                    j += 1;
                }
                ties
            }
            None => 0,
        };
        Some(LogitsCompare {
            kl,
            top1_agree: tr.first().map(|t| t.0) == tp.first().map(|t| t.0),
            top10_overlap: overlap,
            cosine: Compare::of(reference, path).and_then(|c| c.cosine),
            logit_noise,
            tie_margin,
            top1_flip,
            top10_ties,
            noise: None,
            positions: None,
        })
    }
}

/// Population std of `path − reference` over all elements, two passes in f64; `None` when any
/// value on either side is not finite.
fn difference_std(reference: &[f32], path: &[f32]) -> Option<f64> {
    if reference.iter().chain(path).any(|v| !v.is_finite()) {
        return None;
    }
    let d = |(r, p): (&f32, &f32)| *p as f64 - *r as f64;
    let n = reference.len() as f64;
    let mean = reference.iter().zip(path).map(d).sum::<f64>() / n;
    let ss = reference.iter().zip(path).map(|x| (d(x) - mean).powi(2)).sum::<f64>();
    Some((ss / n).sqrt())
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

/// The probability of each of `ids` under softmax(`logits`) (f64, as [`log_softmax`]); `None`
/// when a logit is not finite or an id is out of range.
pub fn probabilities_of(logits: &[f32], ids: &[u32]) -> Option<Vec<f64>> {
    let logp = log_softmax(logits)?;
    ids.iter().map(|&id| logp.get(id as usize).map(|&l| libm::exp(l))).collect()
}

/// `x − logsumexp(x)` in f64 (libm, so every target gives the same bits); `None` when a value
/// is not finite.
pub(crate) fn log_softmax(x: &[f32]) -> Option<Vec<f64>> {
    let (_, _, lse) = shifted_exps(x)?;
    Some(x.iter().map(|&v| v as f64 - lse).collect())
}

/// `x − logsumexp(x)` and the probabilities, `exp(x − max) / Σ exp(x − max)`, in f64 (libm, so
/// every target gives the same bits); `None` when a value is not finite. One exponential a value:
/// taking the probabilities as `exp` of the log-probabilities instead was a second, and the
/// exponentials are most of a long prompt's per-position comparison (two vocabularies of 152k a
/// position on Qwen2.5).
pub(crate) fn softmax(x: &[f32]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (mut e, sum, lse) = shifted_exps(x)?;
    let logp = x.iter().map(|&v| v as f64 - lse).collect();
    e.iter_mut().for_each(|p| *p /= sum);
    Some((logp, e))
}

/// `exp(x − max)` of every value, their sum and `logsumexp(x)`; `None` when a value is not
/// finite. The one place both [`log_softmax`] and [`softmax`] take them from, so their
/// log-probabilities are the same bits.
fn shifted_exps(x: &[f32]) -> Option<(Vec<f64>, f64, f64)> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // A comparison, not `f64::max` (a libm call per value in wasm); every value is finite.
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| if v as f64 > m { v as f64 } else { m });
    let mut e: Vec<f64> = x.iter().map(|&v| v as f64 - max).collect();
    exp_each(&mut e);
    let sum = e.iter().sum::<f64>();
    Some((e, sum, max + libm::log(sum)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_of_ids_sum_as_softmax() {
        let p = probabilities_of(&[0.0, 0.0, (3.0f32).ln()], &[2, 0]).unwrap();
        assert!((p[0] - 0.6).abs() < 1e-7 && (p[1] - 0.2).abs() < 1e-7, "{p:?}");
        assert_eq!(probabilities_of(&[0.0, f32::NAN], &[0]), None);
        assert_eq!(probabilities_of(&[0.0], &[1]), None);
    }

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

    fn close(what: &str, got: Option<f64>, want: f64) {
        let got = got.unwrap_or_else(|| panic!("{what}: no value"));
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{what}: {got} != {want}");
    }

    /// The reference holds tokens 0 and 1 1/128 apart; the path lifts token 1 by 1/64 and
    /// nothing else. d = (0, 1/64, 0, 0): mean 1/256, population variance 1/16384 − 1/65536 =
    /// 3/65536, so the noise is √3/256 and the tie margin 3·√2·√3/256 = 3√6/256 ≈ 0.0287,
    /// above the margin 1/128: a tie.
    #[test]
    fn a_near_tie_flip_has_a_margin_inside_the_tie_margin() {
        let r = [1.0f32, 1.0 - 1.0 / 128.0, 0.0, -1.0];
        let p = [1.0f32, 1.0 + 1.0 / 128.0, 0.0, -1.0];
        let l = LogitsCompare::of(&r, &p).unwrap();
        assert!(!l.top1_agree);
        close("noise", l.logit_noise, 3f64.sqrt() / 256.0);
        close("tie margin", l.tie_margin, 3.0 * 6f64.sqrt() / 256.0);
        assert_eq!(l.top1_flip, Some(TopFlip { reference: 0, path: 1, margin: 1.0 / 128.0 }));
        assert!(l.top1_flip.unwrap().margin <= l.tie_margin.unwrap());
        assert_eq!(l.top10_ties, 0, "four tokens: both top-10s hold all of them");
    }

    /// 64 tokens, the reference's best (2) clear of the rest (0); the path lifts token 1 to 2.5.
    /// d = 2.5·e₁: population std 2.5·√63/64 ≈ 0.310, tie margin 3·√2 of it ≈ 1.32, below the
    /// reference's margin 2: not a tie.
    #[test]
    fn a_clear_flip_has_a_margin_beyond_the_tie_margin() {
        let mut r = [0.0f32; 64];
        r[0] = 2.0;
        let mut p = r;
        p[1] = 2.5;
        let l = LogitsCompare::of(&r, &p).unwrap();
        let noise = 2.5 * 63f64.sqrt() / 64.0;
        close("noise", l.logit_noise, noise);
        close("tie margin", l.tie_margin, 3.0 * 2f64.sqrt() * noise);
        assert_eq!(l.top1_flip, Some(TopFlip { reference: 0, path: 1, margin: 2.0 }));
        assert!(l.top1_flip.unwrap().margin > l.tie_margin.unwrap());
    }

    /// No flip, no flip field; a shift common to every logit is no noise (softmax ignores it).
    #[test]
    fn no_flip_and_a_common_shift_is_no_noise() {
        let r = [3.0f32, 1.0, -2.0, 0.5];
        let l = LogitsCompare::of(&r, &r).unwrap();
        assert_eq!(
            (l.logit_noise, l.tie_margin, l.top1_flip, l.top10_ties),
            (Some(0.0), Some(0.0), None, 0)
        );
        let shifted: Vec<f32> = r.iter().map(|v| v + 4.0).collect();
        let l = LogitsCompare::of(&r, &shifted).unwrap();
        assert!(l.top1_agree && l.top1_flip.is_none());
        assert_eq!(l.logit_noise, Some(0.0));
        // Old reports lack the fields and still parse; a report without a flip gains only the
        // noise and the tie margin.
        let json = serde_json::to_string(&l).unwrap();
        assert!(!json.contains("top1_flip") && !json.contains("top10_ties"), "{json}");
        let old: LogitsCompare = serde_json::from_str(
            r#"{"kl":0.001,"top1_agree":false,"top10_overlap":9,"cosine":0.99}"#,
        )
        .unwrap();
        assert_eq!(
            (old.logit_noise, old.tie_margin, old.top1_flip, old.top10_ties),
            (None, None, None, 0)
        );
    }

    /// A NaN on either side: no noise, so no tie margin and no ties; the flip is still named.
    #[test]
    fn non_finite_logits_measure_no_noise() {
        let r = [1.0f32, f32::NAN, 0.5];
        let p = [0.4f32, 0.0, 0.5];
        let l = LogitsCompare::of(&r, &p).unwrap();
        assert_eq!((l.logit_noise, l.tie_margin, l.top10_ties), (None, None, 0));
        assert_eq!(l.top1_flip, Some(TopFlip { reference: 0, path: 2, margin: 0.5 }));
        let l = LogitsCompare::of(&[1.0, 0.0], &[0.0, f32::INFINITY]).unwrap();
        assert_eq!((l.logit_noise, l.tie_margin), (None, None));
    }

    /// 64 tokens, reference z_i = 64 − i (the 10th, id 9, is 55). A swap across the 10th place
    /// with id 10 held 1/64 below it is a tie; an intruder from far below (id 20, z = 44, lifted
    /// by 12) pushes out the same id 9 — which sits exactly at the 10th logit — and is not: the
    /// pair's margin 11 exceeds the tie margin 3·√2·12·√63/64 ≈ 6.31.
    #[test]
    fn top10_ties_pair_each_missing_id_with_an_intruder() {
        let r: Vec<f32> =
            (0..64).map(|i| if i == 10 { 55.0 - 1.0 / 64.0 } else { 64.0 - i as f32 }).collect();
        let mut near = r.clone();
        near[10] += 1.0 / 32.0;
        let l = LogitsCompare::of(&r, &near).unwrap();
        assert!(l.top1_agree);
        assert_eq!((l.top10_overlap, l.top10_ties), (9, 1));
        close("tie margin", l.tie_margin, 3.0 * 2f64.sqrt() * (63f64.sqrt() / 64.0) / 32.0);
        let mut far = r.clone();
        far[20] += 12.0;
        let l = LogitsCompare::of(&r, &far).unwrap();
        assert_eq!((l.top10_overlap, l.top10_ties), (9, 0));
        close("tie margin", l.tie_margin, 3.0 * 2f64.sqrt() * 12.0 * 63f64.sqrt() / 64.0);
    }
}
