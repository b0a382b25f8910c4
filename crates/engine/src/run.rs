//! One run: every layer streamed once, every path stepped through the same ops in lockstep, and
//! every site probed on all paths before the next op — so a comparison can only ever be between
//! the same site, the same tokens and the same element count.
//!
//! [`Run`] is the one entry point; this file holds it, the fallback that drops a failing `gpu`
//! path, and the layer loop. The block is `block`, the report `assemble`.

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;

use parallax_model::{Model, Role};
use parallax_report::{LocalNoise, Mode, Report};
use parallax_source::ByteSource;

use crate::arch::ArchConfig;
use crate::assemble::{self, Probes};
use crate::block::Lockstep;
use crate::options::{Lane, LogitsPositions, Phase, Progress, RunInput, RunOptions};
use crate::paths::{self, gpu_record, open_gpu, Gpu, PathKind};
use crate::probe::{Probe, SiteRows};
use crate::weights::{LayerWeights, Loader};
use crate::weights_diff::WeightsDiff;
use crate::{ops, EngineError};

/// Rows of the output head read and multiplied at a time: bounded memory whatever the vocabulary.
const HEAD_CHUNK_ROWS: u64 = 8192;

/// The output head's chunks of rows, in the order the run reads them: the one sequence the head
/// loop, its hints and the run's plan ([`Loader::prefetch_later`]) all follow.
fn head_chunks(vocab: u64) -> impl Iterator<Item = std::ops::Range<u64>> {
    (0..vocab)
        .step_by(HEAD_CHUNK_ROWS as usize)
        .map(move |start| start..(start + HEAD_CHUNK_ROWS).min(vocab))
}

/// A run of `model` over `input` along every path of `opts`, streaming one layer's weights at a
/// time:
///
/// ```ignore
/// let report = Run::new(&model, &input, &opts).progress(|p| show(p)).cancel(&flag).run()?;
/// let (report, logits) = Run::new(&model, &input, &opts).with_logits().run()?;
/// ```
///
/// Without [`progress`](Run::progress) nothing is told; without [`cancel`](Run::cancel) the run
/// is never cancelled. [`run`](Run::run) blocks (natively, on the GPU too, whose futures complete
/// when first polled); in the browser, where nothing may block on the GPU, a run with the `gpu`
/// path must be [`run_async`](Run::run_async).
#[must_use = "a Run does nothing until .run() or .run_async()"]
pub struct Run<'a, S: ByteSource, Out: RunOutput = Report> {
    /// The run's files: the model under test first, then each file it is compared against.
    files: Vec<&'a Model<S>>,
    input: &'a RunInput,
    opts: &'a RunOptions,
    progress: Box<dyn FnMut(&Progress) + 'a>,
    tap: Box<dyn FnMut(&SiteRows) + 'a>,
    cancel: &'a AtomicBool,
    out: PhantomData<Out>,
}

/// What a [`Run`] returns: the [`Report`], or with [`Run::with_logits`] the report and each
/// path's full last-position logits (in path order), for checks against other implementations.
pub trait RunOutput: Sized {
    #[doc(hidden)]
    fn from_run(report: Report, last_logits: Vec<Vec<f32>>) -> Self;
}

impl RunOutput for Report {
    fn from_run(report: Report, _: Vec<Vec<f32>>) -> Self {
        report
    }
}

impl RunOutput for (Report, Vec<Vec<f32>>) {
    fn from_run(report: Report, last_logits: Vec<Vec<f32>>) -> Self {
        (report, last_logits)
    }
}

/// The output head alone on each non-reference path, gathered chunk by chunk: its logits for the
/// reference's last normed row, and their predicted rounding-noise energy.
struct HeadAlone {
    /// Per path (index 0 unused): the head-alone logits of the last position.
    logits: Vec<Vec<f32>>,
    /// Per path: `Σ_i c_i (e_i² + floor · x_i²)` over the chunks so far.
    predicted: Vec<f64>,
    /// Per path, the reference's at index 0: the input as that path's kernel rounds it (`None`:
    /// not rounded), made once.
    rounded: Vec<Option<Option<Vec<f32>>>>,
}

impl HeadAlone {
    fn new(n_paths: usize, vocab: usize) -> HeadAlone {
        HeadAlone {
            logits: vec![vec![0f32; vocab]; n_paths],
            predicted: vec![0.0; n_paths],
            rounded: vec![None; n_paths],
        }
    }

    /// Path `i` (`paths[i]`) multiplied the chunk `m` from row `start`, giving `alone`.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        i: usize,
        paths: &[PathKind],
        m: &paths::Matrix,
        start: usize,
        alone: &[f32],
        x: &[f32],
        columns: &[f64],
    ) -> Result<(), EngineError> {
        self.logits[i][start..start + alone.len()].copy_from_slice(alone);
        for k in [0, i] {
            if self.rounded[k].is_none() {
                self.rounded[k] = Some(paths::kernel_input(paths[k], m, x)?);
            }
        }
        let view = |k: usize| self.rounded[k].as_ref().and_then(|r| r.as_deref());
        self.predicted[i] += paths::predicted_energy(columns, x, view(i), view(0));
        Ok(())
    }

    fn noise(&self, i: usize, reference: &[f32], position: u32) -> Option<LocalNoise> {
        paths::noise_of(&[self.predicted[i]], reference, &self.logits[i], reference.len(), position)
    }
}

/// The flag of a run nobody cancels.
static NEVER_CANCELLED: AtomicBool = AtomicBool::new(false);

impl<'a, S: ByteSource> Run<'a, S> {
    pub fn new(model: &'a Model<S>, input: &'a RunInput, opts: &'a RunOptions) -> Self {
        Run {
            files: vec![model],
            input,
            opts,
            progress: Box::new(|_| {}),
            tap: Box::new(|_| {}),
            cancel: &NEVER_CANCELLED,
            out: PhantomData,
        }
    }

    /// Also return each lane's full last-position logits.
    pub fn with_logits(self) -> Run<'a, S, (Report, Vec<Vec<f32>>)> {
        let Run { files, input, opts, progress, tap, cancel, .. } = self;
        Run { files, input, opts, progress, tap, cancel, out: PhantomData }
    }
}

impl<'a, S: ByteSource, Out: RunOutput> Run<'a, S, Out> {
    /// Compare against these files too: every path runs on each (`q8@2` is `q8` on the second
    /// file), all files stepped through the layers in lockstep, one layer of each in memory.
    /// The files must be versions of one model (architecture, shapes, vocabulary); the run
    /// refuses others before reading a layer.
    pub fn against(mut self, others: impl IntoIterator<Item = &'a Model<S>>) -> Self {
        self.files.extend(others);
        self
    }
}

impl<'a, S: ByteSource, Out: RunOutput> Run<'a, S, Out> {
    /// Called after each step: embedding, each layer, each output-head chunk, done.
    pub fn progress(mut self, f: impl FnMut(&Progress) + 'a) -> Self {
        self.progress = Box::new(f);
        self
    }

    /// Show `f` every lane's buffer at every site (all prompt positions, before the site is
    /// probed), as ggml's `cb_eval` shows each node: for checks of whole rows against another
    /// implementation. A run that drops a failing `gpu` path starts again, and shows the sites
    /// again.
    pub fn tap(mut self, f: impl FnMut(&SiteRows) + 'a) -> Self {
        self.tap = Box::new(f);
        self
    }

    /// The run stops with [`EngineError::Cancelled`] at its next op once `flag` is set.
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = flag;
        self
    }

    /// Run to completion on this thread.
    pub fn run(self) -> Result<Out, EngineError> {
        if cfg!(target_arch = "wasm32") && self.opts.paths.contains(&PathKind::Gpu) {
            return Err(EngineError::GpuNeedsAsync);
        }
        pollster::block_on(self.run_async())
    }

    /// The run as a future: the `gpu` path awaits the GPU's results. If that path cannot start
    /// (no adapter, a build without GPU support) or fails on the way (device lost, out of
    /// memory), the run goes on — from the start, so every path sees the same ops — without it,
    /// and the report says why (`execution.gpu_unavailable`).
    pub async fn run_async(mut self) -> Result<Out, EngineError> {
        let (files, input, opts, cancel) = (&self.files[..], self.input, self.opts, self.cancel);
        let on_progress = &mut *self.progress;
        let on_site = &mut *self.tap;
        if !opts.paths.contains(&PathKind::Gpu) {
            let (report, logits) =
                run_paths(files, input, opts, None, on_progress, on_site, cancel).await?;
            return Ok(Out::from_run(report, logits));
        }
        let without_gpu = |reason: String| -> Result<RunOptions, EngineError> {
            let paths: Vec<PathKind> =
                opts.paths.iter().copied().filter(|p| *p != PathKind::Gpu).collect();
            if paths.is_empty() {
                return Err(EngineError::GpuUnavailable { reason });
            }
            Ok(RunOptions { paths, ..opts.clone() })
        };
        let (result, reason) = match open_gpu(&opts.gpu).await {
            Ok(gpu) => {
                match run_paths(files, input, opts, Some(&gpu), on_progress, on_site, cancel).await
                {
                    Ok((mut report, logits)) => {
                        report.execution.gpu = Some(gpu_record(&gpu));
                        return Ok(Out::from_run(report, logits));
                    }
                    Err(EngineError::GpuUnavailable { reason }) => {
                        let rest = without_gpu(reason.clone())?;
                        (
                            run_paths(files, input, &rest, None, on_progress, on_site, cancel)
                                .await,
                            reason,
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(reason) => {
                let rest = without_gpu(reason.clone())?;
                (run_paths(files, input, &rest, None, on_progress, on_site, cancel).await, reason)
            }
        };
        let (mut report, logits) = result?;
        report.execution.gpu_unavailable = Some(format!("the gpu path was dropped: {reason}"));
        Ok(Out::from_run(report, logits))
    }
}

/// Refuse what cannot run before anything is read.
fn check(
    cfg: &ArchConfig,
    input: &RunInput,
    opts: &RunOptions,
    lanes: &[Lane],
) -> Result<(), EngineError> {
    let tokens = &input.tokens;
    if tokens.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if tokens.len() > opts.max_tokens {
        return Err(EngineError::PromptTooLong { tokens: tokens.len(), max: opts.max_tokens });
    }
    if opts.paths.is_empty() {
        return Err(EngineError::NoPaths);
    }
    for f in &opts.faults {
        if f.layer >= cfg.n_layers {
            return Err(EngineError::FaultLayerOutOfRange {
                fault: f.to_string(),
                n_layers: cfg.n_layers,
            });
        }
        if lanes.first() == Some(&Lane { path: f.path, file: 0 }) {
            return Err(EngineError::FaultOnReference { fault: f.to_string() });
        }
    }
    Ok(())
}

/// Refuse layer `il` when the weights of every file plus the lanes' work exceed `budget`.
fn check_memory_budget<S: ByteSource>(
    loaders: &[Loader<'_, S>],
    il: u32,
    n_tokens: usize,
    n_lanes: usize,
    budget: Option<u64>,
) -> Result<(), EngineError> {
    let Some(budget) = budget else { return Ok(()) };
    let mut need = loaders[0].layer_memory(il, n_tokens, n_lanes);
    for l in &loaders[1..] {
        need.weights = need.weights.saturating_add(l.layer_memory(il, n_tokens, 0).weights);
    }
    if need.total() > budget {
        return Err(EngineError::OverMemoryBudget {
            layer: il,
            weights: need.weights,
            work: need.work,
            budget,
        });
    }
    Ok(())
}

/// The run on the lanes of `opts` over `files` (the `gpu` path on `gpu`): the report, and each
/// lane's last-position logits.
async fn run_paths<S: ByteSource>(
    files: &[&Model<S>],
    input: &RunInput,
    opts: &RunOptions,
    gpu: Option<&Gpu>,
    on_progress: &mut dyn FnMut(&Progress),
    on_site: &mut dyn FnMut(&SiteRows),
    cancel: &AtomicBool,
) -> Result<(Report, Vec<Vec<f32>>), EngineError> {
    let cfg = ArchConfig::from_model(files[0])?;
    for (k, other) in files.iter().enumerate().skip(1) {
        parallax_model::check_compatible(files[0], other)
            .map_err(|difference| EngineError::Incompatible { file: k + 1, difference })?;
    }
    let lanes = opts.lanes(files.len())?;
    check(&cfg, input, opts, &lanes)?;
    let tokens = &input.tokens;
    let n = tokens.len();
    let loaders: Vec<Loader<S>> = files.iter().map(|&model| Loader { model, cfg: &cfg }).collect();
    let on_site = std::cell::RefCell::new(on_site);
    let step = Lockstep {
        cfg: &cfg,
        opts,
        lanes: &lanes,
        probe: Probe {
            lanes: &lanes,
            ids: lanes.iter().map(Lane::id).collect(),
            scope: opts.scope,
            n_tokens: n,
            tap: &|rows: &SiteRows| (on_site.borrow_mut())(rows),
        },
        positions: (0..n as u32).collect(),
        cancel,
        gpu,
        gpu_calls: std::cell::Cell::new(0),
    };
    let ids = &step.probe.ids;
    let logit_rows = match opts.logits {
        LogitsPositions::All => n,
        LogitsPositions::Last => 1,
    };

    let mut heads = Vec::with_capacity(files.len());
    let mut out_norms = Vec::with_capacity(files.len());
    let mut bytes_total = 0u64;
    let mut bytes_read = 0u64;
    for (model, loader) in files.iter().zip(&loaders) {
        let (head, out_norm, norm_bytes) = loader.output_head()?;
        bytes_total += assemble::estimate_bytes(model, &cfg, head, n);
        bytes_read += norm_bytes;
        heads.push(head);
        out_norms.push(out_norm);
    }
    let vocab = heads[0].n_rows();
    // Two or more files: their weights compared tensor by tensor. A layer's tensors are compared
    // from the values the layer loop holds anyway; the rest (the embedding, the head, anything
    // no layer holds) are read here first, in row chunks, counted in the progress.
    let mut diff = if files.len() > 1 { WeightsDiff::new(files)? } else { None };
    let in_a_layer = |t: &parallax_model::Tensor| matches!(t.role, Some(Role::Layer { .. }));
    let read_apart: Vec<usize> = match &diff {
        Some(d) => (0..d.len()).filter(|&i| !in_a_layer(&d.tensors()[i])).collect(),
        None => Vec::new(),
    };
    let diff_bytes: u64 = match &diff {
        Some(d) => read_apart.iter().map(|&i| d.tensor_bytes(i)).sum(),
        None => 0,
    };
    let mut progress = Progress {
        phase: if files.len() > 1 { Phase::Weights } else { Phase::Embedding },
        layers_done: 0,
        n_layers: cfg.n_layers,
        bytes_read,
        bytes_total: bytes_total + diff_bytes,
    };
    on_progress(&progress);
    if let Some(diff) = &mut diff {
        for &i in &read_apart {
            diff.compare_from_source(i, cancel)?;
            progress.bytes_read += diff.tensor_bytes(i);
            on_progress(&progress);
        }
        progress.phase = Phase::Embedding;
        on_progress(&progress);
    }

    let mut embedded = Vec::with_capacity(files.len());
    for loader in &loaders {
        let (mut x, read) = loader.embeddings(tokens)?;
        progress.bytes_read += read;
        if let Some(s) = cfg.embed_scale {
            x.iter_mut().for_each(|v| *v *= s);
        }
        embedded.push(x);
    }
    let mut resid: Vec<Vec<f32>> = lanes.iter().map(|l| embedded[l.file].clone()).collect();
    drop(embedded);
    step.probe.tap(None, "embed", &resid, cfg.n_embd);
    let embed = step.probe.site(&resid, cfg.n_embd);

    let mut execution = assemble::execution(&cfg, opts);
    let mut layers = Vec::with_capacity(cfg.n_layers as usize);
    let mut per_token_layers = Vec::with_capacity(cfg.n_layers as usize);
    for il in 0..cfg.n_layers {
        step.check_cancel()?;
        progress.phase = Phase::Layer;
        if il == 0 {
            check_memory_budget(&loaders, il, n, lanes.len(), opts.memory_budget_bytes)?;
            // The first layer, then everything after it: a source that streams into bounded
            // memory (the page's) keeps fetching while layers compute, and has the head's
            // first chunks by the time the last layer ends.
            for (l, head) in loaders.iter().zip(&heads) {
                l.prefetch_layer(il)?;
                l.prefetch_later(1..cfg.n_layers, head, head_chunks(vocab))?;
            }
        }
        let ws = loaders.iter().map(|l| l.layer(il)).collect::<Result<Vec<_>, _>>()?;
        // The next layer is hinted before this one computes, so a source that reads in the
        // background (the CLI's) has it ready; its budget is checked before any of it is read.
        if il + 1 < cfg.n_layers {
            check_memory_budget(&loaders, il + 1, n, lanes.len(), opts.memory_budget_bytes)?;
            for l in &loaders {
                l.prefetch_layer(il + 1)?;
            }
        } else {
            // The output head's first chunk (see the head loop).
            for (l, head) in loaders.iter().zip(&heads) {
                l.prefetch_rows(head, head_chunks(vocab).next().unwrap_or(0..0))?;
            }
        }
        progress.bytes_read += ws.iter().map(|w| w.bytes).sum::<u64>();
        for (lane, id) in lanes.iter().zip(ids) {
            let w = &ws[lane.file];
            for m in [&w.wq, &w.wk, &w.wv, &w.wo, &w.gate, &w.up, &w.down] {
                let labels = execution.matmuls.entry(id.clone()).or_default();
                let label = m.kernel_label(lane.path);
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        if opts.mode == Mode::Replay {
            // Every lane starts the layer from the reference's residual stream: what the layer
            // shows is its own divergence, nothing carried from earlier layers.
            let (reference, others) = resid.split_at_mut(1);
            others.iter_mut().for_each(|r| r.copy_from_slice(&reference[0]));
        }
        if let Some(diff) = &mut diff {
            compare_layer_weights(diff, il, &ws)?;
        }
        let (rec, tok) = step.layer(il, &ws, &mut resid).await?;
        drop(ws);
        layers.push(rec);
        per_token_layers.push(tok);
        progress.layers_done = il + 1;
        on_progress(&progress);
    }

    // Final norm and the output head, read in row chunks.
    progress.phase = Phase::OutputHead;
    let normed: Vec<Vec<f32>> = lanes
        .iter()
        .zip(&resid)
        .map(|(l, x)| ops::rms_norm(x, cfg.n_embd, &out_norms[l.file], cfg.rms_eps))
        .collect();
    drop(resid);
    step.probe.tap(None, "final_norm", &normed, cfg.n_embd);
    let final_norm = step.probe.site(&normed, cfg.n_embd);
    // The rows the head multiplies: every position, or the last.
    let head_in: Vec<&[f32]> = normed.iter().map(|x| &x[(n - logit_rows) * cfg.n_embd..]).collect();
    let mut logits: Vec<Vec<f32>> =
        lanes.iter().map(|_| vec![0f32; logit_rows * vocab as usize]).collect();
    // The head alone: every other lane's product on the reference's last normed row, and the
    // noise its arithmetic predicts, summed over the chunks (as `Block::mul` does per site).
    let last_ref = &normed[0][(n - 1) * cfg.n_embd..];
    let kinds: Vec<PathKind> = lanes.iter().map(|l| l.path).collect();
    let mut head_alone = HeadAlone::new(lanes.len(), vocab as usize);
    let mut rows = head_chunks(vocab).peekable();
    while let Some(chunk) = rows.next() {
        step.check_cancel()?;
        let (start, end) = (chunk.start, chunk.end);
        let mut chunks = Vec::with_capacity(files.len());
        for (loader, head) in loaders.iter().zip(&heads) {
            let (m, read) = loader.matrix_rows(head, cfg.n_embd, chunk.clone())?;
            progress.bytes_read += read;
            chunks.push(m);
            // The next chunk is hinted before this one computes, as the next layer is.
            match rows.peek() {
                Some(next) => loader.prefetch_rows(head, next.clone())?,
                None => loader.release_prefetch()?,
            }
        }
        let mut columns: Option<Vec<f64>> = None;
        // The lockstep f32 and q8 lanes of one file: both products in one pass over the chunk
        // (as `Block::mul` does), the same results as each lane's below.
        let mut fused = if paths::f32_and_q8_lanes(&lanes) {
            let both = [head_in[1], last_ref].concat();
            paths::matmul_f32_and_q8(&chunks[lanes[0].file], head_in[0], &both).transpose()?
        } else {
            None
        };
        for (i, ((lane, x), out)) in lanes.iter().zip(&head_in).zip(&mut logits).enumerate() {
            let m = &chunks[lane.file];
            let y = if let (0, Some((y, c, _))) = (i, &mut fused) {
                columns = Some(std::mem::take(c));
                std::mem::take(y)
            } else if i == 0 && lane.path == PathKind::F32 && lanes.len() > 1 {
                // The reference's dequantized tiles give the column energies.
                let (y, c) = paths::matmul_f32_with_column_energy(m, x, logit_rows)?;
                columns = Some(c);
                y
            } else if i == 0 {
                step.matmul(lane.path, m, x).await?
            } else {
                let mut y = match fused.take() {
                    Some((_, _, q8_y)) => q8_y,
                    None => step.matmul(lane.path, m, &[*x, last_ref].concat()).await?,
                };
                let alone = y.split_off(logit_rows * m.rows);
                // Another file's head differs by more than rounding: no noise to predict.
                if lane.file == lanes[0].file {
                    let columns = match &mut columns {
                        Some(c) => c,
                        None => columns.insert(paths::column_energy(&chunks[lanes[0].file])?),
                    };
                    head_alone.add(i, &kinds, m, start as usize, &alone, last_ref, columns)?;
                }
                y
            };
            for t in 0..logit_rows {
                let dst = &mut out
                    [t * vocab as usize + start as usize..t * vocab as usize + end as usize];
                dst.copy_from_slice(&y[t * m.rows..(t + 1) * m.rows]);
            }
        }
        if start == 0 {
            for (lane, id) in lanes.iter().zip(ids) {
                execution
                    .matmuls
                    .entry(id.clone())
                    .or_default()
                    .push(format!("output head: {}", chunks[lane.file].kernel_label(lane.path)));
            }
        }
        on_progress(&progress);
    }
    let (mut logits_rec, per_token_logits) =
        assemble::logits_record(&step.probe, tokens, &logits, vocab as usize);
    let reference_last = &logits[0][(logit_rows - 1) * vocab as usize..];
    for (i, (lane, id)) in lanes.iter().zip(ids).enumerate().skip(1) {
        if lane.file != lanes[0].file {
            continue;
        }
        if let (Some(c), Some(noise)) =
            (logits_rec.compare.get_mut(id), head_alone.noise(i, reference_last, n as u32 - 1))
        {
            c.noise = Some(noise);
        }
    }
    progress.phase = Phase::Done;
    on_progress(&progress);

    let last_logits: Vec<Vec<f32>> =
        logits.iter().map(|l| l[(logit_rows - 1) * vocab as usize..].to_vec()).collect();
    drop(logits);
    let probes = Probes {
        embed,
        layers,
        per_token_layers,
        final_norm,
        logits: logits_rec,
        per_token_logits,
        weights: diff.map(WeightsDiff::finish).unwrap_or_default(),
    };
    let report = assemble::report(files, &cfg, input, opts, &lanes, vocab, probes, execution);
    Ok((report, last_logits))
}

/// Compare layer `il`'s tensors from the values `ws` (one set per file) hold; a tensor the
/// layer does not hold (one the architecture does not use) is read from the files.
fn compare_layer_weights<S: ByteSource>(
    diff: &mut WeightsDiff<'_, S>,
    il: u32,
    ws: &[LayerWeights],
) -> Result<(), EngineError> {
    for i in 0..diff.len() {
        let tensor = &diff.tensors()[i];
        let Some(Role::Layer { layer, kind, param }) = tensor.role else { continue };
        if layer != il {
            continue;
        }
        let held: Option<Vec<_>> = ws.iter().map(|w| w.held(kind, param)).collect();
        match held {
            Some(held) => {
                let row_values = tensor.row_values();
                diff.compare_values(i, |k, rows, out| held[k].rows_into(rows, row_values, out))?
            }
            None => diff.compare_from_source(i, &NEVER_CANCELLED)?,
        }
    }
    Ok(())
}
