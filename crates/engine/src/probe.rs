//! The probe: at one site, each path's statistics and every path's comparison with the
//! reference, over the run's scope and token by token. All paths' buffers are cut the same way,
//! so a comparison is only ever between equal samples.

use parallax_metrics::{Compare, Stats};
use parallax_report::{
    Scope, SiteDetail, SiteRecord, TokenSite, WorstElement, HISTOGRAM_BINS, WORST_ELEMENTS,
};

use crate::arch::{ArchConfig, ArchKind};
use crate::options::Lane;
use crate::{join, map_indices};

/// Site names within a layer, in execution order: the site table's layer rows
/// ([`parallax_metrics::sites`]), without the post-norm sites on architectures that have none.
pub fn layer_sites(cfg: &ArchConfig) -> Vec<&'static str> {
    parallax_metrics::sites::layer_sites(cfg.kind == ArchKind::Gemma3).map(|s| s.name).collect()
}

/// What [`Run::tap`](crate::Run::tap) is shown at a site, as ggml's `cb_eval` is shown a node:
/// every lane's whole buffer there, all prompt positions whatever the run's scope.
pub struct SiteRows<'r> {
    /// The layer, or `None` for `embed` and `final_norm`.
    pub layer: Option<u32>,
    pub site: &'r str,
    /// Each lane's buffer holds one row of `width` per prompt position.
    pub width: usize,
    /// The lanes' ids (`f32`, `q8`, `q8@2`…), the reference first.
    pub lanes: &'r [String],
    /// One buffer per lane, in the order of `lanes`.
    pub rows: &'r [Vec<f32>],
}

pub(crate) struct Probe<'a> {
    pub lanes: &'a [Lane],
    /// Each lane's id, in lane order.
    pub ids: Vec<String>,
    pub scope: Scope,
    pub n_tokens: usize,
    /// Shown every site's buffers before they are probed (the run's `FnMut` behind a `RefCell`).
    pub tap: &'a dyn Fn(&SiteRows),
}

impl Probe<'_> {
    /// Show the site's buffers to the run's tap.
    pub fn tap(&self, layer: Option<u32>, site: &str, bufs: &[Vec<f32>], width: usize) {
        let rows = SiteRows { layer, site, width, lanes: &self.ids, rows: bufs };
        (self.tap)(&rows);
    }

    /// `buf` (`n_tokens` rows of `width`) cut to the run's scope.
    pub fn scoped<'b>(&self, buf: &'b [f32], width: usize) -> &'b [f32] {
        &buf[self.first_token() * width..]
    }

    /// The other scope, for a path whose probe is broken on purpose (`scope-mismatch`).
    fn mismatched<'b>(&self, buf: &'b [f32], width: usize) -> &'b [f32] {
        match self.scope {
            Scope::All => &buf[(self.n_tokens - 1) * width..],
            Scope::Last => buf,
        }
    }

    /// Statistics of each path and comparisons against the reference, for the run's scope and
    /// per token. All slices are cut with the same `width` and token range on every path —
    /// unless `broken` names a path whose probe was made to take the other scope on purpose;
    /// then its comparison is refused (unequal samples), as `Compare` refuses all such.
    pub fn site_with<'b>(
        &self,
        bufs: &'b [Vec<f32>],
        width: usize,
        broken: &[Lane],
    ) -> (SiteRecord, TokenSite) {
        let mut rec = SiteRecord { width: width as u64, ..Default::default() };
        let mut tok = TokenSite::default();
        let sample = |lane: &Lane, buf: &'b Vec<f32>| -> &'b [f32] {
            if broken.contains(lane) {
                self.mismatched(buf, width)
            } else {
                self.scoped(buf, width)
            }
        };
        // Each path's statistics once; the comparisons reuse their stds (same slices). Each
        // statistic and each comparison is one task's, computed as on one thread (the same
        // function on the same slice), so the threads change no bit.
        let samples: Vec<&[f32]> =
            self.lanes.iter().zip(bufs).map(|(lane, buf)| sample(lane, buf)).collect();
        let stats: Vec<Stats> = map_indices(samples.len(), |k| Stats::of(samples[k]));
        let rows: Vec<Vec<&[f32]>> =
            bufs.iter().map(|buf| buf.chunks_exact(width).collect()).collect();
        let per_token: Vec<Vec<Stats>> =
            rows.iter().map(|r| map_indices(r.len(), |t| Stats::of(r[t]))).collect();
        // The scope-wide comparisons beside the site's detail (histograms, worst elements).
        let (ids, first_token) = (&self.ids, self.first_token());
        let (compares, detail) = join(
            || {
                map_indices(samples.len().saturating_sub(1), |k| {
                    Compare::of_with_stats(samples[0], samples[k + 1], &stats[0], &stats[k + 1])
                })
            },
            || site_detail(ids, first_token, &samples, &stats, width),
        );
        for ((i, id), c) in self.ids.iter().enumerate().skip(1).zip(compares) {
            if let Some(c) = c {
                rec.compare.insert(id.clone(), c);
            }
            let n = rows[i].len().min(rows[0].len());
            let per: Vec<Compare> = map_indices(n, |t| {
                Compare::of_with_stats(rows[0][t], rows[i][t], &per_token[0][t], &per_token[i][t])
            })
            .into_iter()
            .flatten()
            .collect();
            tok.compare.insert(id.clone(), per);
        }
        rec.detail = Some(detail);
        for ((id, s), per) in self.ids.iter().zip(stats).zip(per_token) {
            rec.paths.insert(id.clone(), s);
            tok.paths.insert(id.clone(), per);
        }
        (rec, tok)
    }

    pub fn site(&self, bufs: &[Vec<f32>], width: usize) -> (SiteRecord, TokenSite) {
        self.site_with(bufs, width, &[])
    }

    /// The first token of the run's scope.
    fn first_token(&self) -> usize {
        match self.scope {
            Scope::All => 0,
            Scope::Last => self.n_tokens - 1,
        }
    }
}

/// The site up close over the samples the comparisons use: each path's histogram on one
/// range, and the elements furthest from the reference (a path whose sample is not the
/// reference's — a broken probe — has none). A function of the probe's path ids and scope, not
/// of the probe (whose tap need not be shared between threads).
fn site_detail(
    ids: &[String],
    first_token: usize,
    samples: &[&[f32]],
    stats: &[Stats],
    width: usize,
) -> SiteDetail {
    let lo = stats.iter().filter_map(|s| s.min).fold(f64::INFINITY, f64::min);
    let hi = stats.iter().filter_map(|s| s.max).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = match (stats[0].mean, stats[0].std) {
        (Some(mean), Some(std)) if lo <= hi => (lo.max(mean - 4.0 * std), hi.min(mean + 4.0 * std)),
        _ if lo <= hi => (lo, hi),
        _ => (0.0, 0.0),
    };
    let mut detail = SiteDetail { lo, hi, ..Default::default() };
    // One task per histogram and per path's worst elements: each the same function on the
    // same slice as on one thread.
    let (histograms, worst_elements) = join(
        || map_indices(samples.len(), |k| histogram(samples[k], lo, hi)),
        || {
            map_indices(samples.len().saturating_sub(1), |k| {
                let sample = samples[k + 1];
                (sample.len() == samples[0].len())
                    .then(|| worst(samples[0], sample, width, first_token))
            })
        },
    );
    for (id, (bins, beyond)) in ids.iter().zip(histograms) {
        detail.histogram.insert(id.clone(), bins);
        detail.beyond.insert(id.clone(), beyond);
    }
    for (id, w) in ids.iter().skip(1).zip(worst_elements) {
        if let Some(w) = w {
            detail.worst.insert(id.clone(), w);
        }
    }
    detail
}

/// The finite values of `values` from `lo` to `hi` in [`HISTOGRAM_BINS`] equal bins (`hi`
/// itself in the last; all in the first when the range is one value), and how many lie below
/// and above.
pub(crate) fn histogram(values: &[f32], lo: f64, hi: f64) -> (Vec<u32>, [u64; 2]) {
    // Four f64 lanes a vector where the CPU has AVX2 (the baseline x86-64 has two): a long
    // prompt's histograms are ~340 M values, 7 % of a text run's time before.
    parallax_quant::with_avx2!(histogram_body(values, lo, hi))
}

#[inline(always)]
fn histogram_body(values: &[f32], lo: f64, hi: f64) -> (Vec<u32>, [u64; 2]) {
    // Slots for the bins, then one for the values below, one above and one for the non-finite
    // (not counted).
    const BELOW: usize = HISTOGRAM_BINS;
    const ABOVE: usize = HISTOGRAM_BINS + 1;
    const SKIPPED: usize = HISTOGRAM_BINS + 2;
    const { assert!(SKIPPED <= u8::MAX as usize) };
    let scale = if hi > lo { HISTOGRAM_BINS as f64 / (hi - lo) } else { 0.0 };
    // Branch-free, so a block of slots is computed as vectors before it is counted.
    let slot = |v: f32| -> u8 {
        let x = f64::from(v);
        // The quotient clamped to [0, BINS − 1] as a float (NaN to 0: `max` takes the other
        // operand), then truncated: the bin a saturating conversion then clamped gives, for
        // every quotient, but with a conversion that vectorizes — a saturating one (`as`) is
        // a scalar instruction and fix-ups per value (f64 → usize: 2.4× the time of the whole
        // histogram, natively and in wasm; f64 → i32 still a scalar convert a lane).
        let t = ((x - lo) * scale).max(0.0).min((HISTOGRAM_BINS - 1) as f64);
        // SAFETY: `t` is in [0, BINS − 1], so it is finite and fits an i32.
        let bin = unsafe { t.to_int_unchecked::<i32>() } as usize;
        let slot = if x > hi { ABOVE } else { bin };
        let slot = if x < lo { BELOW } else { slot };
        (if v.is_finite() { slot } else { SKIPPED }) as u8
    };
    // Four interleaved sets of counters: most values fall in a few central bins, and one set
    // would make each count wait on the last.
    let mut sets = [[0u32; SKIPPED + 1]; 4];
    let mut slots = [0u8; 256];
    for block in values.chunks(slots.len()) {
        let slots = &mut slots[..block.len()];
        for (s, &v) in slots.iter_mut().zip(block) {
            *s = slot(v);
        }
        for (k, &s) in slots.iter().enumerate() {
            sets[k & 3][usize::from(s)] += 1;
        }
    }
    let total = |k: usize| sets.iter().map(|s| s[k]).sum::<u32>();
    let bins = (0..HISTOGRAM_BINS).map(total).collect();
    (bins, [u64::from(total(BELOW)), u64::from(total(ABOVE))])
}

/// The [`WORST_ELEMENTS`] elements with the largest |path − reference| (both finite), largest
/// first, the earlier element first among equals. Element `i` is prompt position
/// `first_token + i / width`, feature `i % width`.
pub(crate) fn worst(
    reference: &[f32],
    path: &[f32],
    width: usize,
    first_token: usize,
) -> Vec<WorstElement> {
    const BLOCK: usize = 16;
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(WORST_ELEMENTS + 1);
    let blocks = reference.chunks(BLOCK).zip(path.chunks(BLOCK));
    for (b, (reference, path)) in blocks.enumerate() {
        // Once the list is full, a block none of whose finite differences beats its last is
        // passed over in one vectorized look (the loop below would skip each of them).
        if top.len() == WORST_ELEMENTS {
            let largest = reference.iter().zip(path).fold(0f32, |m, (&r, &p)| {
                let d = (p - r).abs();
                crate::ops::larger(m, if d.is_finite() { d } else { 0.0 })
            });
            if largest <= top[WORST_ELEMENTS - 1].0 {
                continue;
            }
        }
        for (k, (&r, &p)) in reference.iter().zip(path).enumerate() {
            let d = (p - r).abs();
            if !d.is_finite() || (top.len() == WORST_ELEMENTS && d <= top[WORST_ELEMENTS - 1].0) {
                continue;
            }
            let at = top.iter().position(|&(e, _)| d > e).unwrap_or(top.len());
            top.insert(at, (d, b * BLOCK + k));
            top.truncate(WORST_ELEMENTS);
        }
    }
    top.into_iter()
        .map(|(_, i)| WorstElement {
            token: (first_token + i / width.max(1)) as u32,
            index: (i % width.max(1)) as u32,
            reference: reference[i],
            path: path[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_finite_value_once_on_the_shared_range() {
        let v = [0.0, 1.0, 2.0, 4.0, f32::NAN, f32::INFINITY, 4.0, -1.0, 9.0, 9.5];
        let (h, beyond) = histogram(&v, 0.0, 4.0);
        assert_eq!(h.iter().sum::<u32>(), 5);
        assert_eq!((h[0], h[8], h[16], h[HISTOGRAM_BINS - 1]), (1, 1, 1, 2));
        assert_eq!(beyond, [1, 2]);
        assert_eq!(histogram(&[3.0, 3.0], 3.0, 3.0).0[0], 2);
    }

    /// The vectorizing bin computation against the plain one (a saturating conversion, then
    /// the clamp), value by value: the range's ends and their neighbouring floats, quotients
    /// beyond i32, subnormals, infinities, NaN, ranges of one point and of huge width.
    #[test]
    fn histogram_bins_are_those_of_the_plain_formula() {
        let plain = |values: &[f32], lo: f64, hi: f64| {
            let scale = if hi > lo { HISTOGRAM_BINS as f64 / (hi - lo) } else { 0.0 };
            let (mut bins, mut beyond) = (vec![0u32; HISTOGRAM_BINS], [0u64; 2]);
            for &v in values.iter().filter(|v| v.is_finite()) {
                let x = f64::from(v);
                if x < lo {
                    beyond[0] += 1;
                } else if x > hi {
                    beyond[1] += 1;
                } else {
                    bins[(((x - lo) * scale) as usize).min(HISTOGRAM_BINS - 1)] += 1;
                }
            }
            (bins, beyond)
        };
        let mut rng = parallax_testkit::SplitMix64(0x4157);
        let ranges = [(-1.0, 1.0), (0.0, 0.0), (-3.0e38, 3.0e38), (1e-40, 2e-40), (-7.5, 0.25)];
        for (lo, hi) in ranges {
            let (l, h) = (lo as f32, hi as f32);
            let mut values = vec![l, h, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX];
            values.extend([f32::MIN, 1e-45, -1e-45, 0.0, -0.0]);
            for v in [l, h] {
                values.extend([v.next_up(), v.next_down()]);
            }
            for k in 0..=4 * HISTOGRAM_BINS {
                values.push(l + (h - l) * k as f32 / (4 * HISTOGRAM_BINS) as f32);
            }
            values.extend((0..2000).map(|_| f32::from_bits(rng.next_u64() as u32)));
            values.extend((0..2000).map(|_| l + (h - l) * rng.below(1 << 20) as f32 / 1e6));
            assert_eq!(histogram(&values, lo, hi), plain(&values, lo, hi), "range {lo}..{hi}");
        }
    }

    #[test]
    fn worst_elements_over_many_blocks_are_those_of_a_full_sort() {
        // Long enough that most blocks are passed over once the list is full; differences on a
        // coarse grid, so ties are common, and some non-finite.
        let mut rng = parallax_testkit::SplitMix64(0x3057);
        let mut coarse = move || rng.below(64) as f32 / 8.0;
        for n in [15, 16, 17, 1000, 4099] {
            let reference: Vec<f32> = (0..n).map(|_| coarse()).collect();
            let mut path: Vec<f32> = (0..n).map(|_| coarse()).collect();
            for i in (0..n).step_by(97) {
                path[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3];
            }
            let mut all: Vec<(f32, usize)> = (0..n)
                .map(|i| ((path[i] - reference[i]).abs(), i))
                .filter(|(d, _)| d.is_finite())
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0)); // stable: the earlier first among equals
            let want: Vec<usize> = all.iter().take(WORST_ELEMENTS).map(|&(_, i)| i).collect();
            let got: Vec<usize> = worst(&reference, &path, 7, 3)
                .iter()
                .map(|e| (e.token as usize - 3) * 7 + e.index as usize)
                .collect();
            assert_eq!(got, want, "{n} values");
        }
    }

    #[test]
    fn worst_elements_are_the_largest_differences_with_their_positions() {
        let reference = [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let path = [0.1f32, -0.5, 0.0, 0.3, f32::NAN, 0.5, 0.2, 0.05];
        let w = worst(&reference, &path, 4, 2);
        let at: Vec<(u32, u32, f32)> = w.iter().map(|e| (e.token, e.index, e.path)).collect();
        // −0.5 and 0.5 tie: the earlier element first; the NaN is not an element.
        assert_eq!(at, vec![(2, 1, -0.5), (3, 1, 0.5), (2, 3, 0.3), (3, 2, 0.2), (2, 0, 0.1)]);
    }
}
