//! The probe: at one site, each path's statistics and every path's comparison with the
//! reference, over the run's scope and token by token. All paths' buffers are cut the same way,
//! so a comparison is only ever between equal samples.

use parallax_metrics::{Compare, Stats};
use parallax_report::{Scope, SiteRecord, TokenSite};

use crate::arch::{ArchConfig, ArchKind};
use crate::options::Lane;

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
        match self.scope {
            Scope::All => buf,
            Scope::Last => &buf[(self.n_tokens - 1) * width..],
        }
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
        let reference = &bufs[0];
        let sample = |lane: &Lane, buf: &'b Vec<f32>| -> &'b [f32] {
            if broken.contains(lane) {
                self.mismatched(buf, width)
            } else {
                self.scoped(buf, width)
            }
        };
        // Each path's statistics once; the comparisons reuse their stds (same slices).
        let samples: Vec<&[f32]> =
            self.lanes.iter().zip(bufs).map(|(lane, buf)| sample(lane, buf)).collect();
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        let per_token: Vec<Vec<Stats>> =
            bufs.iter().map(|buf| buf.chunks_exact(width).map(Stats::of).collect()).collect();
        for (i, id) in self.ids.iter().enumerate().skip(1) {
            if let Some(c) = Compare::of_with_stats(samples[0], samples[i], &stats[0], &stats[i]) {
                rec.compare.insert(id.clone(), c);
            }
            let per: Vec<Compare> = reference
                .chunks_exact(width)
                .zip(bufs[i].chunks_exact(width))
                .zip(per_token[0].iter().zip(&per_token[i]))
                .filter_map(|((r, b), (sr, sb))| Compare::of_with_stats(r, b, sr, sb))
                .collect();
            tok.compare.insert(id.clone(), per);
        }
        for ((id, s), per) in self.ids.iter().zip(stats).zip(per_token) {
            rec.paths.insert(id.clone(), s);
            tok.paths.insert(id.clone(), per);
        }
        (rec, tok)
    }

    pub fn site(&self, bufs: &[Vec<f32>], width: usize) -> (SiteRecord, TokenSite) {
        self.site_with(bufs, width, &[])
    }
}
