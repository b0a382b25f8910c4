//! Logits at every prompt position: how far a path's next-token distributions lie from the
//! reference's over a whole text, summarised as `llama-perplexity --kl-divergence` summarises
//! them (mean KLD with its standard error, median, upper percentiles, maximum, top-token
//! agreement, RMS change of a probability, perplexity).
//!
//! KL divergence is asymmetric, so both directions are kept; and a mean over positions is
//! dominated by the positions where the reference itself is undecided, so KLD is also bucketed
//! by the reference's top-token probability.

use serde::{Deserialize, Serialize};

use crate::softmax;

/// Upper edges (exclusive; the last inclusive) of the buckets of
/// [`PositionsSummary::kld_by_top_p`], over the reference's top-token probability.
pub const TOP_P_EDGES: [f64; 5] = [0.0, 0.5, 0.8, 0.95, 1.0];

/// One prompt position: the path's next-token distribution against the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogits {
    /// KL(P_reference ‖ P_path) in nats.
    pub kl: f64,
    /// KL(P_path ‖ P_reference) in nats.
    pub kl_reverse: f64,
    /// The path's most likely next token.
    pub top1: u32,
    /// The reference's most likely next token, and its probability under the reference.
    pub reference_top1: u32,
    pub reference_p: f64,
    /// `p_path(reference_top1) − reference_p`.
    pub dp: f64,
}

/// The spread of a per-position quantity. Percentiles interpolate linearly between the sorted
/// values (numpy's default), so `median` is the 50th.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    /// `√((mean(k²) − mean(k)²) / (n − 1))`, as llama-perplexity writes the ± of its mean KLD;
    /// `None` for a single position.
    pub stderr: Option<f64>,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let mean_sq = values.iter().map(|v| v * v).sum::<f64>() / n;
        let stderr =
            (values.len() > 1).then(|| ((mean_sq - mean * mean).max(0.0) / (n - 1.0)).sqrt());
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            let at = p / 100.0 * (sorted.len() - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
        };
        Some(Spread {
            mean,
            stderr,
            median: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Mean KLD over the positions whose reference top-token probability lies in `[p_min, p_max)`
/// (the last bucket includes 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldBucket {
    pub p_min: f64,
    pub p_max: f64,
    pub n: u32,
    /// `None` for an empty bucket.
    pub mean: Option<f64>,
}

/// A path's logits at every prompt position against the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionsSummary {
    /// Positions compared.
    pub n: u32,
    /// KL(P_reference ‖ P_path) over the positions.
    pub kld: Spread,
    /// KL(P_path ‖ P_reference).
    pub kld_reverse: Spread,
    pub kld_by_top_p: Vec<KldBucket>,
    /// Share of positions whose most likely token is the same, and their count.
    pub same_top1: f64,
    pub same_top1_count: u32,
    /// RMS over positions of the change in the probability of the reference's top token.
    pub dp_rms: f64,
    /// Perplexity of the prompt itself (each position predicting the next prompt token) under
    /// the reference and under the path, and path / reference; `None` for a one-token prompt.
    pub ppl_reference: Option<f64>,
    pub ppl_path: Option<f64>,
    pub ppl_ratio: Option<f64>,
}

/// `reference` and `path` hold the logits of the same prompt positions (rows of `vocab`);
/// `next` holds, for each position but the last, the prompt token that follows it. `None` when
/// the shapes differ or a logit is not finite (softmax is then undefined).
pub fn compare_positions(
    reference: &[f32],
    path: &[f32],
    vocab: usize,
    next: &[u32],
) -> Option<(PositionsSummary, Vec<TokenLogits>)> {
    compare_positions_by(reference, path, vocab, next, |n, one| (0..n).map(one).collect())
}

/// One position's comparison, and the negative log-likelihoods of its next prompt token under
/// the reference and the path (none for the last position).
pub type Position = (TokenLogits, Option<(f64, f64)>);

/// [`compare_positions`] where `map(n, one)` gives `[one(0), …, one(n − 1)]` in order,
/// computed however the caller likes — in parallel, say: the positions are independent and
/// everything summed over them is summed afterwards, in position order, so the result is the
/// same bits.
pub fn compare_positions_by<M>(
    reference: &[f32],
    path: &[f32],
    vocab: usize,
    next: &[u32],
    map: M,
) -> Option<(PositionsSummary, Vec<TokenLogits>)>
where
    M: FnOnce(usize, &(dyn Fn(usize) -> Option<Position> + Sync)) -> Vec<Option<Position>>,
{
    if vocab == 0 || reference.len() != path.len() || !reference.len().is_multiple_of(vocab) {
        return None;
    }
    let rows = reference.len() / vocab;
    if rows == 0 {
        return None;
    }
    let one = |t: usize| -> Option<Position> {
        let rows = t * vocab..(t + 1) * vocab;
        let ((lr, pr), (lp, pp)) = (softmax(&reference[rows.clone()])?, softmax(&path[rows])?);
        let mut kl = 0f64;
        let mut kl_reverse = 0f64;
        for (((a, b), pa), pb) in lr.iter().zip(&lp).zip(&pr).zip(&pp) {
            kl += pa * (a - b);
            kl_reverse += pb * (b - a);
        }
        let argmax = |l: &[f64]| {
            l.iter().enumerate().fold(0, |best, (i, v)| if *v > l[best] { i } else { best })
        };
        let (top_r, top_p) = (argmax(&lr), argmax(&lp));
        let reference_p = libm::exp(lr[top_r]);
        let nll = next.get(t).and_then(|&target| {
            let (a, b) = (lr.get(target as usize)?, lp.get(target as usize)?);
            Some((-a, -b))
        });
        let token = TokenLogits {
            kl: kl.max(0.0),
            kl_reverse: kl_reverse.max(0.0),
            top1: top_p as u32,
            reference_top1: top_r as u32,
            reference_p,
            dp: libm::exp(lp[top_r]) - reference_p,
        };
        Some((token, nll))
    };
    let mut per = Vec::with_capacity(rows);
    let (mut nll_reference, mut nll_path, mut n_targets) = (0f64, 0f64, 0usize);
    for position in map(rows, &one) {
        let (token, nll) = position?;
        per.push(token);
        if let Some((a, b)) = nll {
            // `-= lr[target]` as a sum of negations: the same bits.
            nll_reference += a;
            nll_path += b;
            n_targets += 1;
        }
    }
    let kls: Vec<f64> = per.iter().map(|t| t.kl).collect();
    let reverse: Vec<f64> = per.iter().map(|t| t.kl_reverse).collect();
    let kld_by_top_p = TOP_P_EDGES
        .windows(2)
        .enumerate()
        .map(|(b, edge)| {
            let last = b == TOP_P_EDGES.len() - 2;
            let inside: Vec<f64> = per
                .iter()
                .filter(|t| t.reference_p >= edge[0] && (t.reference_p < edge[1] || last))
                .map(|t| t.kl)
                .collect();
            KldBucket {
                p_min: edge[0],
                p_max: edge[1],
                n: inside.len() as u32,
                mean: (!inside.is_empty())
                    .then(|| inside.iter().sum::<f64>() / inside.len() as f64),
            }
        })
        .collect();
    let same = per.iter().filter(|t| t.top1 == t.reference_top1).count();
    let dp_rms = (per.iter().map(|t| t.dp * t.dp).sum::<f64>() / rows as f64).sqrt();
    let ppl = |nll: f64| (n_targets > 0).then(|| libm::exp(nll / n_targets as f64));
    let (ppl_reference, ppl_path) = (ppl(nll_reference), ppl(nll_path));
    let summary = PositionsSummary {
        n: rows as u32,
        kld: Spread::of(&kls)?,
        kld_reverse: Spread::of(&reverse)?,
        kld_by_top_p,
        same_top1: same as f64 / rows as f64,
        same_top1_count: same as u32,
        dp_rms,
        ppl_ratio: ppl_reference.zip(ppl_path).map(|(r, p)| p / r),
        ppl_reference,
        ppl_path,
    };
    Some((summary, per))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_have_zero_divergence_and_full_agreement() {
        let r = [1.0f32, 2.0, 3.0, 0.5, 0.1, 4.0];
        let (s, per) = compare_positions(&r, &r, 3, &[1]).unwrap();
        assert_eq!(s.n, 2);
        assert_eq!((s.kld.mean, s.kld.max, s.dp_rms), (0.0, 0.0, 0.0));
        assert_eq!((s.same_top1, s.same_top1_count), (1.0, 2));
        assert_eq!(s.ppl_ratio, Some(1.0));
        assert_eq!(per[0].top1, 2);
        assert_eq!(per[1].reference_top1, 2);
    }

    #[test]
    fn divergence_matches_a_hand_computation() {
        // Two tokens: reference p = (0.5, 0.5), path p = (e/(1+e), 1/(1+e)).
        let r = [0.0f32, 0.0];
        let p = [1.0f32, 0.0];
        let (s, per) = compare_positions(&r, &p, 2, &[]).unwrap();
        let q = [1f64.exp() / (1.0 + 1f64.exp()), 1.0 / (1.0 + 1f64.exp())];
        let kl = 0.5 * (0.5 / q[0]).ln() + 0.5 * (0.5 / q[1]).ln();
        let rev = q[0] * (q[0] / 0.5).ln() + q[1] * (q[1] / 0.5).ln();
        assert!((per[0].kl - kl).abs() < 1e-12, "{} vs {kl}", per[0].kl);
        assert!((per[0].kl_reverse - rev).abs() < 1e-12);
        assert_eq!(per[0].reference_top1, 0, "the first of equal logits");
        assert!((per[0].dp - (q[0] - 0.5)).abs() < 1e-12);
        assert_eq!(s.ppl_reference, None, "one position predicts no prompt token");
        assert_eq!(s.kld.stderr, None);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        // np.percentile([1,2,3,4], [50, 90, 99]) = 2.5, 3.7, 3.97
        assert_eq!(s.median, 2.5);
        assert!((s.p90 - 3.7).abs() < 1e-12);
        assert!((s.p99 - 3.97).abs() < 1e-12);
        assert_eq!((s.mean, s.max), (2.5, 4.0));
        // sqrt((7.5 - 6.25) / 3)
        assert!((s.stderr.unwrap() - (1.25f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn perplexity_uses_the_next_prompt_token() {
        // Position 0 predicts token 1 with p = 1/2 on both; the reference is certain elsewhere.
        let r = [0.0f32, 0.0, 50.0, 0.0];
        let (s, _) = compare_positions(&r, &r, 2, &[1]).unwrap();
        assert!((s.ppl_reference.unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(s.kld_by_top_p.iter().map(|b| b.n).collect::<Vec<_>>(), [0, 1, 0, 1]);
    }

    #[test]
    fn unequal_or_non_finite_inputs_are_refused() {
        assert!(compare_positions(&[0.0; 4], &[0.0; 2], 2, &[]).is_none());
        assert!(compare_positions(&[0.0, f32::NAN], &[0.0; 2], 2, &[]).is_none());
        assert!(compare_positions(&[0.0; 3], &[0.0; 3], 2, &[]).is_none());
    }
}
