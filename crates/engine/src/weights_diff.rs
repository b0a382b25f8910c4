//! The weights diff: each tensor of the first file against the tensor playing its role in the
//! others, dequantized to f32 and compared value for value.
//!
//! Tensors are read in row chunks of at most [`CHUNK_VALUES`] values per file and their sums
//! kept in f64, so memory stays two chunks whatever the tensor's size and the statistics do not
//! depend on how the rows were cut.

use std::sync::atomic::{AtomicBool, Ordering};

use parallax_metrics::{reduce_lanes, LANES};
use parallax_model::{check_compatible, counterpart, Incompatibility, Model, Side, Tensor};
use parallax_report::{TensorDiff, TensorFile, WeightCompare};
use parallax_source::ByteSource;

use crate::EngineError;

/// f32 values compared at a time per file, read or dequantized from a layer in memory: 1 MiB,
/// so the diff adds little to a run's peak, which the layers' weights set (16 MiB chunks made a
/// two-file run's peak RSS 10 % higher and were no faster). A tensor's row is never cut, so a
/// row longer than this (a 1-D tensor of more values) is read whole.
const CHUNK_VALUES: u64 = 1 << 18;

/// One entry per tensor of `models[0]`, in its file order, with the tensor that plays the same
/// role in every other model (see [`parallax_model::counterpart`]) compared with it.
///
/// Every model is first checked to be compatible with the first
/// ([`parallax_model::check_compatible`]), before any weight is read. `on_tensor(done, total)` is
/// called with 0 before the first tensor and after each one; `cancel` is looked at between
/// chunks. Fewer than two models give an entry per tensor with no comparisons.
pub fn weights_diff<S: ByteSource>(
    models: &[&Model<S>],
    mut on_tensor: impl FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Vec<TensorDiff>, EngineError> {
    let Some(mut diff) = WeightsDiff::new(models)? else {
        return Ok(Vec::new());
    };
    let total = diff.len();
    on_tensor(0, total);
    for i in 0..total {
        diff.compare_from_source(i, cancel)?;
        on_tensor(i + 1, total);
    }
    Ok(diff.finish())
}

/// A weights diff filled in as a run reads the files: the tensors a layer holds are compared
/// from the values already in memory ([`WeightsDiff::compare_values`]), the rest read again in
/// row chunks ([`WeightsDiff::compare_from_source`]). Either way every value is compared in
/// row order, so the entries are the same bits whichever way each tensor came.
pub(crate) struct WeightsDiff<'m, S: ByteSource> {
    models: Vec<&'m Model<S>>,
    /// Per tensor of the first model, in its file order: each other model's counterpart.
    pairs: Vec<Vec<&'m Tensor>>,
    /// Per tensor: the comparisons, once made.
    compares: Vec<Option<Vec<WeightCompare>>>,
}

impl<'m, S: ByteSource> WeightsDiff<'m, S> {
    /// `None` for no model. Refuses models that are not one network before reading a weight.
    pub fn new(models: &[&'m Model<S>]) -> Result<Option<Self>, EngineError> {
        let Some((first, others)) = models.split_first() else {
            return Ok(None);
        };
        for (k, other) in others.iter().enumerate() {
            check_compatible(*first, *other)
                .map_err(|difference| EngineError::Incompatible { file: k + 2, difference })?;
        }
        let mut pairs = Vec::with_capacity(first.tensors().len());
        for tensor in first.tensors() {
            let mut of_tensor = Vec::with_capacity(others.len());
            for (k, other) in others.iter().enumerate() {
                // Compatible files have every counterpart, of the same shape; a caller that
                // skipped the check above cannot reach here, but a sentence costs nothing.
                let incompatible =
                    |difference| EngineError::Incompatible { file: k + 2, difference };
                let pair = counterpart(*other, tensor).ok_or_else(|| {
                    incompatible(Incompatibility::MissingTensor {
                        name: tensor.name.clone(),
                        present_in: Side::A,
                    })
                })?;
                if pair.ne != tensor.ne {
                    let shape = |t: &Tensor| t.ne.iter().rev().copied().collect();
                    return Err(incompatible(Incompatibility::TensorShape {
                        name_a: tensor.name.clone(),
                        name_b: pair.name.clone(),
                        shape_a: shape(tensor),
                        shape_b: shape(pair),
                    }));
                }
                of_tensor.push(pair);
            }
            pairs.push(of_tensor);
        }
        let compares = vec![None; pairs.len()];
        Ok(Some(WeightsDiff { models: models.to_vec(), pairs, compares }))
    }

    /// How many tensors the first model has.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// The first model's tensors, in file order.
    pub fn tensors(&self) -> &'m [Tensor] {
        self.models[0].tensors()
    }

    /// Bytes of tensor `i` in every model together (what reading it from the files costs).
    pub fn tensor_bytes(&self, i: usize) -> u64 {
        self.tensors()[i].n_bytes + self.pairs[i].iter().map(|t| t.n_bytes).sum::<u64>()
    }

    /// Whether tensor `i` is compared already.
    pub fn is_done(&self, i: usize) -> bool {
        self.compares[i].is_some()
    }

    /// Compare tensor `i` reading it (and its counterparts) from the files in row chunks.
    pub fn compare_from_source(
        &mut self,
        i: usize,
        cancel: &AtomicBool,
    ) -> Result<(), EngineError> {
        let tensor = &self.tensors()[i];
        let pairs: Vec<(&Model<S>, &Tensor)> =
            self.models[1..].iter().copied().zip(self.pairs[i].iter().copied()).collect();
        self.compares[i] = Some(compare_tensor(self.models[0], tensor, &pairs, cancel)?);
        Ok(())
    }

    /// Compare tensor `i` from values already read: `values(k, rows, out)` puts model `k`'s
    /// values of those rows (the first model's at `k = 0`) into `out`, dequantized as
    /// `read_f32_rows` would.
    pub fn compare_values(
        &mut self,
        i: usize,
        mut values: impl FnMut(usize, std::ops::Range<u64>, &mut Vec<f32>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let tensor = &self.tensors()[i];
        let mut sums: Vec<Sums> = self.pairs[i].iter().map(|_| Sums::new()).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for rows in row_chunks(tensor, CHUNK_VALUES) {
            values(0, rows.clone(), &mut a)?;
            for (k, (pair, sums)) in self.pairs[i].iter().zip(&mut sums).enumerate() {
                values(k + 1, rows.clone(), &mut b)?;
                check_lengths(tensor, pair, &a, &b, &rows)?;
                sums.add(&a, &b);
            }
        }
        self.compares[i] = Some(sums_compares(&sums));
        Ok(())
    }

    /// Every entry, in the first model's file order; a tensor nobody compared is read now.
    pub fn finish(mut self) -> Vec<TensorDiff> {
        let never = AtomicBool::new(false);
        for i in 0..self.len() {
            if !self.is_done(i) {
                // Unreachable in a run (it compares every tensor); reading cannot be cancelled.
                let _ = self.compare_from_source(i, &never);
            }
        }
        let first = self.models[0];
        first
            .tensors()
            .iter()
            .zip(self.pairs)
            .zip(self.compares)
            .map(|((tensor, pairs), compares)| TensorDiff {
                name: tensor.name.clone(),
                ne: tensor.ne.clone(),
                files: std::iter::once(tensor).chain(pairs).map(tensor_file).collect(),
                compares: compares.unwrap_or_default(),
            })
            .collect()
    }
}

/// A tensor's rows, cut into chunks of at most `max_values` values (a row is never cut).
fn row_chunks(tensor: &Tensor, max_values: u64) -> impl Iterator<Item = std::ops::Range<u64>> {
    let n_rows = tensor.n_rows();
    let rows_per_chunk = (max_values / (tensor.row_values() as u64).max(1)).max(1);
    (0..n_rows.div_ceil(rows_per_chunk))
        .map(move |c| c * rows_per_chunk..((c + 1) * rows_per_chunk).min(n_rows))
}

fn check_lengths(
    tensor: &Tensor,
    pair: &Tensor,
    a: &[f32],
    b: &[f32],
    rows: &std::ops::Range<u64>,
) -> Result<(), EngineError> {
    if b.len() == a.len() {
        return Ok(());
    }
    Err(EngineError::BadShape {
        tensor: pair.name.clone(),
        ne: pair.ne.clone(),
        expected: format!("{} values in rows {rows:?}, as {} has", a.len(), tensor.name),
    })
}

fn sums_compares(sums: &[Sums]) -> Vec<WeightCompare> {
    sums.iter().enumerate().map(|(k, s)| s.compare(k as u32 + 2)).collect()
}

fn tensor_file(t: &Tensor) -> TensorFile {
    TensorFile { name: t.name.clone(), ty: t.ty.name().to_string(), bytes: t.n_bytes }
}

/// Running sums of one file's values (b) against the first file's (a). Value `k` of a tensor
/// (in row-major order, across chunks) is added to lane `k mod LANES`, the lanes combined by
/// `reduce_lanes` — the statistics' one fixed order on every target, and eight independent
/// chains, so the sums run as fast as the values stream instead of waiting on one add each.
struct Sums {
    a2: [f64; LANES],
    b2: [f64; LANES],
    ab: [f64; LANES],
    diff2: [f64; LANES],
    /// The lane of the next value.
    lane: usize,
    max_abs: f64,
    /// A difference was NaN or infinite: `max_abs` then means nothing.
    non_finite: bool,
    identical: bool,
}

impl Sums {
    fn new() -> Self {
        Sums {
            a2: [0.0; LANES],
            b2: [0.0; LANES],
            ab: [0.0; LANES],
            diff2: [0.0; LANES],
            lane: 0,
            max_abs: 0.0,
            non_finite: false,
            identical: true,
        }
    }

    #[inline(always)]
    fn add_one(&mut self, lane: usize, x: f32, y: f32) {
        self.identical &= x.to_bits() == y.to_bits();
        let (x, y) = (f64::from(x), f64::from(y));
        let d = y - x;
        self.a2[lane] += x * x;
        self.b2[lane] += y * y;
        self.ab[lane] += x * y;
        self.diff2[lane] += d * d;
        // Over every difference, as `add_groups` takes it: a non-finite one sets `non_finite`,
        // and `max_abs` is then not reported.
        self.non_finite |= !d.is_finite();
        self.max_abs = self.max_abs.max(d.abs());
    }

    /// Whole groups of [`LANES`] values, the first in lane 0 (compiled for AVX2 where the CPU
    /// has it: the same IEEE operations per lane), [`Sums::add_one`]'s step with the flags and
    /// the largest |difference| kept per lane too, without branches, so the lanes vectorize.
    #[inline(always)]
    fn add_groups(&mut self, a: &[f32], b: &[f32]) {
        let (mut a2, mut b2, mut ab, mut diff2) = (self.a2, self.b2, self.ab, self.diff2);
        let mut max_abs = [0f64; LANES];
        let (mut same, mut finite) = ([true; LANES], [true; LANES]);
        for (xs, ys) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
            for l in 0..LANES {
                same[l] &= xs[l].to_bits() == ys[l].to_bits();
                let (x, y) = (f64::from(xs[l]), f64::from(ys[l]));
                let d = y - x;
                a2[l] += x * x;
                b2[l] += y * y;
                ab[l] += x * y;
                diff2[l] += d * d;
                finite[l] &= d.is_finite();
                max_abs[l] = max_abs[l].max(d.abs());
            }
        }
        (self.a2, self.b2, self.ab, self.diff2) = (a2, b2, ab, diff2);
        self.identical &= same.iter().all(|&s| s);
        self.non_finite |= !finite.iter().all(|&f| f);
        self.max_abs = max_abs.iter().fold(self.max_abs, |m, &v| m.max(v));
    }

    /// The next values of the tensor: up to the next lane 0 one by one, whole groups, the rest.
    fn add(&mut self, a: &[f32], b: &[f32]) {
        let n = a.len().min(b.len());
        let lead = ((LANES - self.lane) % LANES).min(n);
        let whole = (n - lead) / LANES * LANES;
        for i in 0..lead {
            self.add_one(self.lane, a[i], b[i]);
            self.lane = (self.lane + 1) % LANES;
        }
        parallax_quant::with_avx2!(self.add_groups(&a[lead..lead + whole], &b[lead..lead + whole]));
        for i in lead + whole..n {
            self.add_one(self.lane, a[i], b[i]);
            self.lane = (self.lane + 1) % LANES;
        }
    }

    fn compare(&self, file: u32) -> WeightCompare {
        let finite = |v: f64| v.is_finite().then_some(v);
        let (a2, b2, ab, diff2) = (
            reduce_lanes(self.a2),
            reduce_lanes(self.b2),
            reduce_lanes(self.ab),
            reduce_lanes(self.diff2),
        );
        let rel_l2 = if diff2 == 0.0 {
            Some(0.0)
        } else if a2 == 0.0 {
            None
        } else {
            finite((diff2 / a2).sqrt())
        };
        let sqnr_db =
            if diff2 == 0.0 || a2 == 0.0 { None } else { finite(10.0 * libm::log10(a2 / diff2)) };
        let cosine = if a2 == 0.0 || b2 == 0.0 {
            None
        } else {
            // Rounding can carry the quotient an ulp past ±1 (equal tensors gave 1.0000000000000002).
            finite(ab / (a2.sqrt() * b2.sqrt())).map(|c| c.clamp(-1.0, 1.0))
        };
        WeightCompare {
            file,
            rel_l2,
            sqnr_db,
            max_abs: (!self.non_finite).then_some(self.max_abs),
            cosine,
            identical: self.identical,
        }
    }
}

/// `tensor` of `first` against each `(model, tensor)` of `pairs` (same shape), chunk by chunk.
fn compare_tensor<S: ByteSource>(
    first: &Model<S>,
    tensor: &Tensor,
    pairs: &[(&Model<S>, &Tensor)],
    cancel: &AtomicBool,
) -> Result<Vec<WeightCompare>, EngineError> {
    let mut sums: Vec<Sums> = pairs.iter().map(|_| Sums::new()).collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // One buffer per side for every chunk: a fresh megabyte each time was mapped, zeroed and
    // unmapped again (a third of a short two-file run).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for rows in row_chunks(tensor, CHUNK_VALUES) {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        first.read_f32_rows_into(tensor, rows.clone(), &mut a)?;
        for ((model, pair), sums) in pairs.iter().zip(&mut sums) {
            model.read_f32_rows_into(pair, rows.clone(), &mut b)?;
            check_lengths(tensor, pair, &a, &b, &rows)?;
            sums.add(&a, &b);
        }
    }
    Ok(sums_compares(&sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(a: &[f32], b: &[f32]) -> WeightCompare {
        let mut sums = Sums::new();
        sums.add(a, b);
        sums.compare(2)
    }

    #[test]
    fn equal_values_are_identical_with_an_infinite_sqnr_written_as_none() {
        let c = compare(&[1.0, -2.0, 0.5], &[1.0, -2.0, 0.5]);
        assert_eq!(
            c,
            WeightCompare {
                file: 2,
                rel_l2: Some(0.0),
                sqnr_db: None,
                max_abs: Some(0.0),
                cosine: Some(1.0),
                identical: true,
            }
        );
        // ‖a‖² = 3, and √3·√3 rounds below 3: the quotient is an ulp over 1 before it is held.
        assert_eq!(compare(&[1.0; 3], &[1.0; 3]).cosine, Some(1.0));
        assert_eq!(compare(&[1.0; 3], &[-1.0; 3]).cosine, Some(-1.0));
        // Equal as numbers, not as bits: not identical.
        let c = compare(&[0.0, 1.0], &[-0.0, 1.0]);
        assert!(!c.identical);
        assert_eq!(c.rel_l2, Some(0.0));
    }

    #[test]
    fn the_statistics_are_the_textbook_ones() {
        // a = (3, 4), b = (3, 5): ‖a‖ = 5, ‖b − a‖ = 1.
        let c = compare(&[3.0, 4.0], &[3.0, 5.0]);
        assert_eq!(c.rel_l2, Some(0.2));
        assert_eq!(c.sqnr_db, Some(10.0 * libm::log10(25.0)));
        assert_eq!(c.max_abs, Some(1.0));
        let cosine = 29.0 / (5.0 * 34f64.sqrt());
        assert!((c.cosine.unwrap() - cosine).abs() < 1e-15);
        assert!(!c.identical);
    }

    #[test]
    fn zeros_and_non_finite_values_give_none_never_an_infinity() {
        let c = compare(&[0.0, 0.0], &[0.0, 1.0]);
        assert_eq!((c.rel_l2, c.sqnr_db, c.cosine), (None, None, None));
        assert_eq!(c.max_abs, Some(1.0));
        let c = compare(&[1.0, f32::NAN], &[1.0, 2.0]);
        assert_eq!((c.rel_l2, c.sqnr_db, c.max_abs, c.cosine), (None, None, None, None));
        // The same NaN bits are identical bits.
        assert!(compare(&[f32::NAN], &[f32::NAN]).identical);
        let json = format!("{:?}", compare(&[f32::INFINITY], &[0.0]));
        assert!(!json.contains("inf"), "{json}");
    }

    #[test]
    fn sums_do_not_depend_on_how_the_values_are_cut() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = a.iter().map(|x| x + 1e-3 * x * x).collect();
        let whole = compare(&a, &b);
        // Chunks that do and do not end on a lane boundary (each value keeps its lane).
        for size in [1, 7, 13, 96] {
            let mut chunked = Sums::new();
            for (x, y) in a.chunks(size).zip(b.chunks(size)) {
                chunked.add(x, y);
            }
            assert_eq!(chunked.compare(2), whole, "chunks of {size}");
        }
    }
}
