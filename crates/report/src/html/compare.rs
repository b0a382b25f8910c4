//! What a report over two or more files shows, as plain data apart from its markup
//! (`compare_markup.rs`): the weights table, the per-position KLD strips, the ranking of matmul
//! sites by the error each tensor adds on its own, and file size against KLD.
//!
//! Lanes are path ids with the file they run on (`q8`, `f32@2`); which file a lane reads comes
//! from the report's `files`, never from parsing its id, except where a chart needs "the same
//! path on file k", which the id spells.

use parallax_metrics::positions::{PositionsSummary, TokenLogits};

use crate::{type_recipe, Report, TensorDiff, WeightCompare};

/// Differing tensors shown before the rest is folded away.
pub const WEIGHT_ROWS_SHOWN: usize = 24;
/// Matmul sites listed per lane in the tensor ranking.
pub const RANKED_SITES: usize = 20;

/// One file of the run as its column heads and type recipe name it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileColumn {
    /// 1-based, in the order the files were given.
    pub number: usize,
    pub name: String,
    /// The file's types as llama-quantize would be asked for them ([`type_recipe`]).
    pub recipe: Vec<String>,
}

/// The files of the run, numbered from 1: those the report lists, else as many as the weights
/// comparison holds, named by number.
pub fn file_columns(r: &Report) -> Vec<FileColumn> {
    let n = r.files.len().max(r.weights.first().map_or(0, |t| t.files.len()));
    (0..n)
        .map(|k| FileColumn {
            number: k + 1,
            name: r.files.get(k).map_or_else(|| format!("file {}", k + 1), |f| f.file_name.clone()),
            recipe: type_recipe(&r.weights, k),
        })
        .collect()
}

/// The weights comparison as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsTable<'a> {
    pub files: Vec<FileColumn>,
    /// Tensors that differ from the first file's in some other file, worst first.
    pub differing: Vec<&'a TensorDiff>,
    /// Tensors bit-identical, after dequantization, in every file.
    pub identical: usize,
}

impl<'a> WeightsTable<'a> {
    /// `None` for a report without a weights comparison (a run over one file).
    pub fn new(r: &'a Report) -> Option<WeightsTable<'a>> {
        if r.weights.is_empty() {
            return None;
        }
        let (same, mut differing): (Vec<&TensorDiff>, Vec<&TensorDiff>) =
            r.weights.iter().partition(|t| t.compares.iter().all(|c| c.identical));
        // Stable: equally bad tensors keep the file's order.
        differing.sort_by(|a, b| worst_rel_l2(b).total_cmp(&worst_rel_l2(a)));
        Some(WeightsTable { files: file_columns(r), differing, identical: same.len() })
    }

    /// The compare of `t` with file `number` (1-based, from 2), when it was compared.
    pub fn compare(t: &TensorDiff, number: usize) -> Option<&WeightCompare> {
        t.compares.iter().find(|c| c.file as usize == number)
    }
}

/// A tensor's largest relative error over the files it was compared with. A relative error
/// that is not defined (the first file's tensor is zero everywhere, another's is not) is as bad
/// as it gets.
pub fn worst_rel_l2(t: &TensorDiff) -> f64 {
    t.compares
        .iter()
        .filter(|c| !c.identical)
        .map(|c| c.rel_l2.unwrap_or(f64::INFINITY))
        .fold(0.0, f64::max)
}

/// The lower edge of the KLD colour scale: a position whose KL (nats) is below it gets the
/// lightest colour.
pub const KLD_SCALE_FLOOR: f64 = 1e-4;
/// Decades of KL per colour level: levels 1..=8 each span half a decade above the floor, level
/// 9 is 1 nat and more. Fixed, so two reports' strips can be compared by eye.
pub const KLD_DECADES_PER_LEVEL: f64 = 0.5;
/// Colour levels of the KLD scale (`px-c0` … `px-c9`).
pub const KLD_LEVELS: u32 = 10;

/// The colour level of a position's KL on the fixed log scale: 0 below [`KLD_SCALE_FLOOR`]
/// (zero included), 9 at 1 nat and above; `None` for a KL that is not a number.
pub fn kld_level(kl: f64) -> Option<u32> {
    if kl.is_nan() {
        return None;
    }
    if kl < KLD_SCALE_FLOOR {
        return Some(0);
    }
    let above = (libm::log10(kl) - libm::log10(KLD_SCALE_FLOOR)) / KLD_DECADES_PER_LEVEL;
    // A hair of tolerance: 10^-3.5 computed through log10 may land just below its level.
    Some(((above + 1e-9).floor() + 1.0).min(f64::from(KLD_LEVELS - 1)) as u32)
}

/// The lower edge of level `level` (1..=9) of the KLD scale, in nats.
pub fn kld_level_edge(level: u32) -> f64 {
    libm::pow(
        10.0,
        libm::log10(KLD_SCALE_FLOOR) + f64::from(level.saturating_sub(1)) * KLD_DECADES_PER_LEVEL,
    )
}

/// The colour bar's ticks: `(level whose lower edge it marks, label)`, one per decade.
pub fn kld_scale_ticks() -> Vec<(u32, String)> {
    (1..KLD_LEVELS)
        .step_by((1.0 / KLD_DECADES_PER_LEVEL) as usize)
        .map(|level| (level, decade_label(libm::log10(kld_level_edge(level)).round() as i32)))
        .collect()
}

/// `10^exponent` written out: `0.001`, `1`, `100`.
pub fn decade_label(exponent: i32) -> String {
    if exponent >= 0 {
        format!("1{}", "0".repeat(exponent as usize))
    } else {
        format!("0.{}1", "0".repeat((-exponent - 1) as usize))
    }
}

/// One lane's KL at every prompt position, and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct KldStrip<'a> {
    pub lane: &'a str,
    pub positions: &'a [TokenLogits],
    pub summary: Option<&'a PositionsSummary>,
}

/// A strip for each non-reference lane whose per-position logits the report holds, in lane
/// order.
pub fn kld_strips(r: &Report) -> Vec<KldStrip<'_>> {
    r.paths
        .iter()
        .filter(|lane| **lane != r.reference)
        .filter_map(|lane| {
            let positions = r.per_token.logits.get(lane).filter(|p| !p.is_empty())?;
            let summary = r.logits.compare.get(lane).and_then(|c| c.positions.as_ref());
            Some(KldStrip { lane, positions, summary })
        })
        .collect()
}

/// The strips' geometry: one row per lane, one cell per position, narrower cells for long
/// prompts so a row never exceeds [`StripFrame::MAX_CELLS_WIDTH`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StripFrame {
    pub positions: usize,
    pub rows: usize,
    pub cell_width: f64,
}

impl StripFrame {
    /// Room left of the cells for the lane ids.
    pub const LEFT: f64 = 64.0;
    /// Room above the cells for the position numbers.
    pub const TOP: f64 = 18.0;
    pub const ROW_HEIGHT: f64 = 18.0;
    /// The widest a row of cells gets.
    pub const MAX_CELLS_WIDTH: f64 = 816.0;
    /// Cells never get wider than the heat grids'.
    pub const MAX_CELL_WIDTH: f64 = super::charts::CELL;
    /// Room under the rows for the colour bar and its ticks.
    pub const SCALE_HEIGHT: f64 = 44.0;
    /// One colour bar box.
    pub const SCALE_BOX: f64 = 28.0;
    pub const MARGIN: f64 = 10.0;
    /// At most about this many position numbers over the cells.
    pub const POSITION_LABELS: usize = 16;

    pub fn new(positions: usize, rows: usize) -> StripFrame {
        let cell_width =
            (Self::MAX_CELLS_WIDTH / positions.max(1) as f64).min(Self::MAX_CELL_WIDTH);
        StripFrame { positions, rows, cell_width }
    }

    pub fn size(&self) -> (f64, f64) {
        let cells = Self::LEFT + self.cell_width * self.positions as f64;
        let scale = Self::LEFT + Self::SCALE_BOX * f64::from(KLD_LEVELS);
        (
            cells.max(scale) + Self::MARGIN,
            Self::TOP + Self::ROW_HEIGHT * self.rows as f64 + Self::SCALE_HEIGHT,
        )
    }

    /// The top-left corner of position `t`'s cell in row `row`.
    pub fn cell(&self, t: usize, row: usize) -> (f64, f64) {
        (Self::LEFT + self.cell_width * t as f64, Self::TOP + Self::ROW_HEIGHT * row as f64)
    }

    pub fn row_label_y(&self, row: usize) -> f64 {
        Self::TOP + Self::ROW_HEIGHT * (row as f64 + 0.7)
    }

    pub fn position_label_x(&self, t: usize) -> f64 {
        Self::LEFT + self.cell_width * (t as f64 + 0.5)
    }

    /// The top of the colour bar's boxes.
    pub fn scale_y(&self) -> f64 {
        Self::TOP + Self::ROW_HEIGHT * self.rows as f64 + 8.0
    }

    /// The left edge of the colour bar's box for `level`.
    pub fn scale_x(&self, level: u32) -> f64 {
        Self::LEFT + Self::SCALE_BOX * f64::from(level)
    }
}

/// A matmul site of one layer, ranked by the error its op adds on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedSite {
    pub layer: u32,
    pub site: String,
    /// The lane's op fed the reference's input, against the reference's output.
    pub local_rel_l2: f64,
    /// The weight's GGUF name (`blk.3.ffn_down.weight`).
    pub tensor: Option<String>,
    /// Its type in the reference's file and in the lane's file, when the weights comparison
    /// holds it.
    pub reference_type: Option<String>,
    pub lane_type: Option<String>,
    /// The weights themselves, the lane's file against the reference's, when the comparison
    /// has that pair (every pair with the first file).
    pub weights_rel_l2: Option<f64>,
}

/// One lane on another file than the reference, its matmul sites worst first.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRanking {
    pub lane: String,
    /// 1-based files of the reference and of the lane.
    pub reference_file: usize,
    pub lane_file: usize,
    /// The worst [`RANKED_SITES`].
    pub sites: Vec<RankedSite>,
    /// Matmul sites with a local comparison, all told.
    pub total: usize,
}

/// The 0-based file a lane runs on, from the report's list of files.
pub fn lane_file(r: &Report, lane: &str) -> Option<usize> {
    r.files.iter().position(|f| f.paths.iter().any(|p| p == lane))
}

/// The tensor of the weights comparison that plays `name`'s part (its GGUF name, in whichever
/// file spells it so).
fn weights_entry<'a>(r: &'a Report, name: &str) -> Option<&'a TensorDiff> {
    r.weights.iter().find(|t| t.name == name || t.files.iter().any(|f| f.name == name))
}

/// The ranking for each non-reference lane that runs on another file than the reference's.
pub fn tensor_rankings(r: &Report) -> Vec<TensorRanking> {
    let Some(reference_file) = lane_file(r, &r.reference) else { return Vec::new() };
    r.paths
        .iter()
        .filter(|lane| **lane != r.reference)
        .filter_map(|lane| {
            let file = lane_file(r, lane).filter(|&f| f != reference_file)?;
            let mut sites: Vec<RankedSite> = r
                .layers
                .iter()
                .flat_map(|l| {
                    r.site_order.iter().filter_map(move |site| {
                        let local = l.sites.get(site)?.local.get(lane)?.rel_l2?;
                        local.is_finite().then_some((l.index, site, local))
                    })
                })
                .filter(|(_, site, _)| parallax_metrics::sites::is_matmul(site))
                .map(|(layer, site, local_rel_l2)| {
                    let tensor = parallax_metrics::sites::tensor_name(site, layer);
                    let entry = tensor.as_deref().and_then(|n| weights_entry(r, n));
                    let type_in =
                        |k: usize| entry.and_then(|e| e.files.get(k)).map(|f| f.ty.clone());
                    // The comparison pairs the first file with each other one.
                    let weights_rel_l2 = entry.and_then(|e| {
                        let other = match (reference_file, file) {
                            (0, k) | (k, 0) => k + 1,
                            _ => return None,
                        };
                        WeightsTable::compare(e, other)?.rel_l2
                    });
                    RankedSite {
                        layer,
                        site: site.clone(),
                        local_rel_l2,
                        reference_type: type_in(reference_file),
                        lane_type: type_in(file),
                        tensor,
                        weights_rel_l2,
                    }
                })
                .collect();
            let total = sites.len();
            // Stable: equal errors keep the execution order.
            sites.sort_by(|a, b| b.local_rel_l2.total_cmp(&a.local_rel_l2));
            sites.truncate(RANKED_SITES);
            Some(TensorRanking {
                lane: lane.clone(),
                reference_file: reference_file + 1,
                lane_file: file + 1,
                sites,
                total,
            })
        })
        .collect()
}

/// One file in the size chart: its bytes against the mean KLD of the reference's path run on
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct SizePoint {
    /// 1-based.
    pub file: usize,
    pub name: String,
    pub bytes: u64,
    pub lane: String,
    pub kld_mean: f64,
}

/// File bytes (linear) against mean KLD (log) for a run over three or more files.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeChart {
    /// Files with a positive mean KLD, in file order.
    pub points: Vec<SizePoint>,
    /// Files left out: the reference's own, or one without per-position logits.
    pub left_out: Vec<String>,
    /// The x view in bytes.
    pub x0: f64,
    pub x1: f64,
    /// The y view on log10 KLD.
    pub y0: f64,
    pub y1: f64,
}

/// The size chart's frame, in viewBox units.
pub const SIZE_FRAME: super::charts::Frame = super::charts::Frame {
    width: 560.0,
    height: 260.0,
    left: 64.0,
    right: 24.0,
    top: 16.0,
    bottom: 40.0,
};

/// The reference's path run on 0-based file `k`: the reference's id with that file's suffix.
pub fn same_path_on(reference: &str, k: usize) -> String {
    let path = reference.split_once('@').map_or(reference, |(p, _)| p);
    if k == 0 {
        path.to_string()
    } else {
        format!("{path}@{}", k + 1)
    }
}

impl SizeChart {
    /// `None` for fewer than three files, or fewer than two with a KLD to draw.
    pub fn new(r: &Report) -> Option<SizeChart> {
        if r.files.len() < 3 {
            return None;
        }
        let mut points = Vec::new();
        let mut left_out = Vec::new();
        for (k, f) in r.files.iter().enumerate() {
            let lane = same_path_on(&r.reference, k);
            let kld = r
                .logits
                .compare
                .get(&lane)
                .and_then(|c| c.positions.as_ref())
                .map(|p| p.kld.mean)
                .filter(|m| *m > 0.0 && m.is_finite());
            match kld {
                Some(kld_mean) => points.push(SizePoint {
                    file: k + 1,
                    name: f.file_name.clone(),
                    bytes: f.bytes,
                    lane,
                    kld_mean,
                }),
                None => left_out.push(format!("{} ({})", f.file_name, lane)),
            }
        }
        if points.len() < 2 {
            return None;
        }
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.bytes as f64), b.max(p.bytes as f64))
        });
        let pad = ((hi - lo) * 0.08).max(hi * 0.02).max(1.0);
        let (x0, x1) = ((lo - pad).max(0.0), hi + pad);
        let (ylo, yhi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            let v = libm::log10(p.kld_mean);
            (a.min(v), b.max(v))
        });
        let ypad = ((yhi - ylo) * 0.1).max(0.1);
        Some(SizeChart { points, left_out, x0, x1, y0: ylo - ypad, y1: yhi + ypad })
    }

    pub fn x(&self, bytes: f64) -> f64 {
        let f = &SIZE_FRAME;
        f.left + (f.width - f.left - f.right) * (bytes - self.x0) / (self.x1 - self.x0)
    }

    pub fn y(&self, log10_kld: f64) -> f64 {
        let f = &SIZE_FRAME;
        f.top + (f.height - f.top - f.bottom) * (1.0 - (log10_kld - self.y0) / (self.y1 - self.y0))
    }

    /// Byte ticks at a 1-2-5 step, labelled in MiB.
    pub fn x_ticks(&self) -> Vec<(f64, String)> {
        let mib = (1u64 << 20) as f64;
        linear_ticks(self.x0 / mib, self.x1 / mib)
            .into_iter()
            .map(|v| (v * mib, format!("{} MiB", trim_number(v))))
            .collect()
    }

    /// KLD ticks on the log axis.
    pub fn y_ticks(&self) -> Vec<(f64, String)> {
        super::charts::ticks(self.y0, self.y1)
            .into_iter()
            .map(|t| (t, format!("{:.2e}", libm::pow(10.0, t))))
            .collect()
    }
}

/// Ticks on `[lo, hi]` at the smallest 1-2-5 step giving at most 6 intervals.
pub fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || span.is_infinite() {
        return vec![lo];
    }
    let decade = libm::pow(10.0, libm::floor(libm::log10(span / 6.0)));
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * decade);
    let first = libm::ceil(lo / step);
    (0..)
        .map(|i| (first + f64::from(i)) * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .take(8)
        .collect()
}

/// A tick value without trailing zeros (at most 3 decimals).
fn trim_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FileInfo, TensorFile};

    fn seed() -> Report {
        let seed = include_str!("../../../../fuzz/corpus/report_json/tiny-report.json");
        Report::from_json(seed).unwrap()
    }

    fn tensor(name: &str, types: [&str; 2], compare: Option<f64>) -> TensorDiff {
        TensorDiff {
            name: name.into(),
            ne: vec![32, 32],
            files: types
                .iter()
                .map(|ty| TensorFile { name: name.into(), ty: ty.to_string(), bytes: 1 })
                .collect(),
            compares: vec![WeightCompare {
                file: 2,
                rel_l2: compare,
                sqnr_db: None,
                max_abs: None,
                cosine: None,
                identical: compare == Some(0.0),
            }],
        }
    }

    fn file(name: &str, bytes: u64, paths: &[&str]) -> FileInfo {
        FileInfo {
            file_name: name.into(),
            format: "GGUF v3".into(),
            bytes,
            sha256: None,
            types: Default::default(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn the_weights_table_puts_the_worst_first_and_counts_the_identical() {
        let mut r = seed();
        assert!(WeightsTable::new(&r).is_none(), "one file: no table");
        r.files = vec![file("a.gguf", 10, &["f32", "q8"]), file("b.gguf", 20, &["f32@2", "q8@2"])];
        r.weights = vec![
            tensor("blk.0.attn_norm.weight", ["F32", "F32"], Some(0.0)),
            tensor("blk.0.attn_q.weight", ["Q4_K", "Q8_0"], Some(0.01)),
            tensor("blk.0.ffn_down.weight", ["Q6_K", "Q8_0"], Some(0.03)),
            tensor("blk.0.ffn_up.weight", ["Q4_K", "Q8_0"], None),
            tensor("blk.0.attn_k.weight", ["Q4_K", "Q8_0"], Some(0.01)),
        ];
        let t = WeightsTable::new(&r).unwrap();
        let names: Vec<&str> = t.differing.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk.0.ffn_up.weight",   // undefined relative error: worst
                "blk.0.ffn_down.weight", // 0.03
                "blk.0.attn_q.weight",   // 0.01, first in the file
                "blk.0.attn_k.weight",
            ]
        );
        assert_eq!(t.identical, 1);
        assert_eq!(t.files[1].name, "b.gguf");
        assert_eq!(t.files[1].number, 2);
        assert_eq!(t.files[0].recipe, ["Q4_K", "--tensor-type 'blk\\.0\\.ffn_down=q6_k'"]);
        assert_eq!(t.files[1].recipe, ["Q8_0"]);
        assert!(WeightsTable::compare(t.differing[0], 2).is_some());
        assert!(WeightsTable::compare(t.differing[0], 3).is_none());
    }

    #[test]
    fn kld_levels_are_half_decades_from_the_floor_to_one_nat() {
        assert_eq!(kld_level(0.0), Some(0));
        assert_eq!(kld_level(0.99e-4), Some(0));
        assert_eq!(kld_level(1e-4), Some(1));
        assert_eq!(kld_level(3.0e-4), Some(1));
        assert_eq!(kld_level(3.2e-4), Some(2));
        assert_eq!(kld_level(1e-3), Some(3));
        assert_eq!(kld_level(0.5), Some(8));
        assert_eq!(kld_level(1.0), Some(9));
        assert_eq!(kld_level(1e6), Some(9));
        assert_eq!(kld_level(f64::INFINITY), Some(9));
        assert_eq!(kld_level(f64::NAN), None);
        for level in 1..KLD_LEVELS {
            assert_eq!(kld_level(kld_level_edge(level)), Some(level), "edge of {level}");
        }
        let ticks = kld_scale_ticks();
        assert_eq!(
            ticks,
            [
                (1, "0.0001".to_string()),
                (3, "0.001".into()),
                (5, "0.01".into()),
                (7, "0.1".into()),
                (9, "1".into())
            ]
        );
        assert_eq!(decade_label(2), "100");
    }

    #[test]
    fn strips_cover_every_non_reference_lane_with_positions_and_fit_their_frame() {
        let mut r = seed();
        assert!(kld_strips(&r).is_empty());
        let cell = TokenLogits {
            kl: 0.01,
            kl_reverse: 0.01,
            top1: 1,
            reference_top1: 1,
            reference_p: 0.5,
            dp: 0.0,
        };
        r.paths = vec!["f32".into(), "q8".into(), "f32@2".into()];
        r.per_token.logits.insert("f32@2".into(), vec![cell.clone(); 3]);
        r.per_token.logits.insert("q8".into(), Vec::new());
        let strips = kld_strips(&r);
        assert_eq!(strips.len(), 1);
        assert_eq!((strips[0].lane, strips[0].positions.len()), ("f32@2", 3));
        assert!(strips[0].summary.is_none());

        let short = StripFrame::new(3, 2);
        assert_eq!(short.cell_width, StripFrame::MAX_CELL_WIDTH);
        let long = StripFrame::new(408, 1);
        assert_eq!(long.cell_width, 2.0);
        let (w, h) = long.size();
        let (x, _) = long.cell(407, 0);
        assert!(x + long.cell_width <= w - StripFrame::MARGIN + 1e-9);
        assert!(long.scale_y() + StripFrame::SCALE_BOX / 2.0 < h);
        // A short strip still has room for the whole colour bar.
        assert!(short.scale_x(KLD_LEVELS) <= short.size().0);
    }

    #[test]
    fn the_ranking_orders_matmul_sites_of_other_files_by_their_local_error() {
        let mut r = seed();
        r.paths = vec!["f32".into(), "q8".into(), "f32@2".into()];
        r.files = vec![file("a.gguf", 10, &["f32", "q8"]), file("b.gguf", 20, &["f32@2"])];
        r.weights = vec![tensor("blk.0.ffn_down.weight", ["Q6_K", "Q8_0"], Some(0.02))];
        let layer = &mut r.layers[0];
        let local = |rel: f64| parallax_metrics::Compare {
            count: 1,
            std_ratio: None,
            cosine: None,
            rel_l2: Some(rel),
            sqnr_db: None,
            max_abs: None,
        };
        for (site, rel) in [("q", 0.01), ("ffn_down", 0.05), ("ffn_up", 0.05), ("ffn_swigl", 9.0)] {
            let s = layer.sites.get_mut(site).unwrap();
            s.local.insert("f32@2".into(), local(rel));
            s.local.insert("q8".into(), local(rel));
        }
        let rankings = tensor_rankings(&r);
        assert_eq!(rankings.len(), 1, "q8 runs on the reference's file");
        let k = &rankings[0];
        assert_eq!((k.lane.as_str(), k.reference_file, k.lane_file, k.total), ("f32@2", 1, 2, 3));
        let order: Vec<&str> = k.sites.iter().map(|s| s.site.as_str()).collect();
        assert_eq!(order, ["ffn_up", "ffn_down", "q"], "ties keep the execution order");
        let down = &k.sites[1];
        assert_eq!(down.tensor.as_deref(), Some("blk.0.ffn_down.weight"));
        assert_eq!(
            (down.reference_type.as_deref(), down.lane_type.as_deref()),
            (Some("Q6_K"), Some("Q8_0"))
        );
        assert_eq!(down.weights_rel_l2, Some(0.02));
        assert_eq!(k.sites[0].lane_type, None, "ffn_up is not in the weights comparison");
        // A one-file report ranks nothing.
        assert!(tensor_rankings(&seed()).is_empty());
    }

    #[test]
    fn the_size_chart_needs_three_files_and_plots_the_reference_path_on_each() {
        let mut r = seed();
        r.reference = "f32".into();
        r.files = vec![
            file("f32.gguf", 400 << 20, &["f32"]),
            file("q8.gguf", 200 << 20, &["f32@2"]),
            file("q4.gguf", 100 << 20, &["f32@3"]),
        ];
        assert!(SizeChart::new(&r).is_none(), "no KLD yet");
        for (lane, mean) in [("f32@2", 1e-3), ("f32@3", 2e-2)] {
            let mut c = r.logits.compare["q8"].clone();
            let (summary, _) =
                parallax_metrics::positions::compare_positions(&[0.0, 1.0], &[0.0, 1.0], 2, &[])
                    .unwrap();
            c.positions = Some(summary);
            c.positions.as_mut().unwrap().kld.mean = mean;
            r.logits.compare.insert(lane.into(), c);
        }
        let chart = SizeChart::new(&r).unwrap();
        assert_eq!(chart.points.len(), 2);
        assert_eq!(chart.left_out, ["f32.gguf (f32)"]);
        let f = &SIZE_FRAME;
        for p in &chart.points {
            let (x, y) = (chart.x(p.bytes as f64), chart.y(libm::log10(p.kld_mean)));
            assert!(x > f.left && x < f.width - f.right, "x {x}");
            assert!(y > f.top && y < f.height - f.bottom, "y {y}");
        }
        // The larger file lies right of the smaller one, and its KLD lower on the chart.
        let (q8, q4) = (&chart.points[0], &chart.points[1]);
        assert!(chart.x(q8.bytes as f64) > chart.x(q4.bytes as f64));
        assert!(chart.y(libm::log10(q8.kld_mean)) > chart.y(libm::log10(q4.kld_mean)));
        assert!(chart.x_ticks().iter().all(|(b, _)| *b >= chart.x0 && *b <= chart.x1 + 1.0));
        assert_eq!(same_path_on("q8@2", 0), "q8");
        assert_eq!(same_path_on("q8", 2), "q8@3");
        r.files.pop();
        assert!(SizeChart::new(&r).is_none(), "two files: no chart");
    }

    #[test]
    fn linear_ticks_take_a_one_two_five_step() {
        assert_eq!(linear_ticks(0.0, 10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(linear_ticks(95.0, 420.0), [100.0, 200.0, 300.0, 400.0]);
        assert_eq!(linear_ticks(3.0, 3.0), [3.0]);
        assert_eq!(trim_number(1.50), "1.5");
        assert_eq!(trim_number(200.0), "200");
    }
}
