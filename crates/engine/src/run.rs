//! One run: every layer streamed once, every path stepped through the same ops in lockstep, and
//! every site probed on all paths before the next op — so a comparison can only ever be between
//! the same site, the same tokens and the same element count.
//!
//! [`Run`] is the one entry point; this file holds it, the fallback that drops a failing `gpu`
//! path, and the layer loop. The block is `block`, the report `assemble`.

use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;

use parallax_model::Model;
use parallax_report::{LocalNoise, Mode, Report};
use parallax_source::ByteSource;

use crate::arch::ArchConfig;
use crate::assemble::{self, Probes};
use crate::block::Lockstep;
use crate::options::{Phase, Progress, RunInput, RunOptions};
use crate::paths::{self, gpu_record, open_gpu, Gpu, PathKind};
use crate::probe::Probe;
use crate::weights::Loader;
use crate::{ops, EngineError};

/// Rows of the output head read and multiplied at a time: bounded memory whatever the vocabulary.
const HEAD_CHUNK_ROWS: u64 = 8192;

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
    model: &'a Model<S>,
    input: &'a RunInput,
    opts: &'a RunOptions,
    progress: Box<dyn FnMut(&Progress) + 'a>,
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
            model,
            input,
            opts,
            progress: Box::new(|_| {}),
            cancel: &NEVER_CANCELLED,
            out: PhantomData,
        }
    }

    /// Also return each path's full last-position logits.
    pub fn with_logits(self) -> Run<'a, S, (Report, Vec<Vec<f32>>)> {
        let Run { model, input, opts, progress, cancel, .. } = self;
        Run { model, input, opts, progress, cancel, out: PhantomData }
    }
}

impl<'a, S: ByteSource, Out: RunOutput> Run<'a, S, Out> {
    /// Called after each step: embedding, each layer, each output-head chunk, done.
    pub fn progress(mut self, f: impl FnMut(&Progress) + 'a) -> Self {
        self.progress = Box::new(f);
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
        let (model, input, opts, cancel) = (self.model, self.input, self.opts, self.cancel);
        let on_progress = &mut *self.progress;
        if !opts.paths.contains(&PathKind::Gpu) {
            let (report, logits) = run_paths(model, input, opts, None, on_progress, cancel).await?;
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
            Ok(gpu) => match run_paths(model, input, opts, Some(&gpu), on_progress, cancel).await {
                Ok((mut report, logits)) => {
                    report.execution.gpu = Some(gpu_record(&gpu));
                    return Ok(Out::from_run(report, logits));
                }
                Err(EngineError::GpuUnavailable { reason }) => {
                    let rest = without_gpu(reason.clone())?;
                    (run_paths(model, input, &rest, None, on_progress, cancel).await, reason)
                }
                Err(e) => return Err(e),
            },
            Err(reason) => {
                let rest = without_gpu(reason.clone())?;
                (run_paths(model, input, &rest, None, on_progress, cancel).await, reason)
            }
        };
        let (mut report, logits) = result?;
        report.execution.gpu_unavailable = Some(format!("the gpu path was dropped: {reason}"));
        Ok(Out::from_run(report, logits))
    }
}

/// Refuse what cannot run before anything is read.
fn check(cfg: &ArchConfig, input: &RunInput, opts: &RunOptions) -> Result<(), EngineError> {
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
        if Some(&f.path) == opts.paths.first() {
            return Err(EngineError::FaultOnReference { fault: f.to_string() });
        }
    }
    Ok(())
}

/// The run on the paths of `opts` (the `gpu` path on `gpu`): the report, and each path's
/// last-position logits.
async fn run_paths<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    gpu: Option<&Gpu>,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<(Report, Vec<Vec<f32>>), EngineError> {
    let cfg = ArchConfig::from_model(model)?;
    check(&cfg, input, opts)?;
    let tokens = &input.tokens;
    let n = tokens.len();
    let loader = Loader { model, cfg: &cfg };
    let step = Lockstep {
        cfg: &cfg,
        opts,
        probe: Probe { paths: &opts.paths, scope: opts.scope, n_tokens: n },
        positions: (0..n as u32).collect(),
        cancel,
        gpu,
        gpu_calls: std::cell::Cell::new(0),
    };

    let (head, out_norm, norm_bytes) = loader.output_head()?;
    let bytes_total = assemble::estimate_bytes(model, &cfg, head, n);
    let mut progress = Progress {
        phase: Phase::Embedding,
        layers_done: 0,
        n_layers: cfg.n_layers,
        bytes_read: norm_bytes,
        bytes_total,
    };
    on_progress(&progress);

    let (mut x, read) = loader.embeddings(tokens)?;
    progress.bytes_read += read;
    if let Some(s) = cfg.embed_scale {
        x.iter_mut().for_each(|v| *v *= s);
    }
    let mut resid: Vec<Vec<f32>> = opts.paths.iter().map(|_| x.clone()).collect();
    drop(x);
    let embed = step.probe.site(&resid, cfg.n_embd);

    let mut execution = assemble::execution(&cfg, opts);
    let mut layers = Vec::with_capacity(cfg.n_layers as usize);
    let mut per_token_layers = Vec::with_capacity(cfg.n_layers as usize);
    for il in 0..cfg.n_layers {
        step.check_cancel()?;
        progress.phase = Phase::Layer;
        if il == 0 {
            loader.check_memory_budget(il, n, opts.paths.len(), opts.memory_budget_bytes)?;
            loader.prefetch_layer(il)?;
        }
        let w = loader.layer(il)?;
        // The next layer is hinted before this one computes, so a source that reads in the
        // background (the CLI's) has it ready; its budget is checked before any of it is read.
        if il + 1 < cfg.n_layers {
            loader.check_memory_budget(il + 1, n, opts.paths.len(), opts.memory_budget_bytes)?;
            loader.prefetch_layer(il + 1)?;
        } else {
            loader.release_prefetch()?;
        }
        progress.bytes_read += w.bytes;
        for m in [&w.wq, &w.wk, &w.wv, &w.wo, &w.gate, &w.up, &w.down] {
            for p in &opts.paths {
                let labels = execution.matmuls.entry(p.id().into()).or_default();
                let label = m.kernel_label(*p);
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
        }
        if opts.mode == Mode::Replay {
            // Every path starts the layer from the reference's residual stream: what the layer
            // shows is its own divergence, nothing carried from earlier layers.
            let (reference, others) = resid.split_at_mut(1);
            others.iter_mut().for_each(|r| r.copy_from_slice(&reference[0]));
        }
        let (rec, tok) = step.layer(il, &w, &mut resid).await?;
        drop(w);
        layers.push(rec);
        per_token_layers.push(tok);
        progress.layers_done = il + 1;
        on_progress(&progress);
    }

    // Final norm and the output head, read in row chunks.
    progress.phase = Phase::OutputHead;
    let normed: Vec<Vec<f32>> =
        resid.iter().map(|x| ops::rms_norm(x, cfg.n_embd, &out_norm, cfg.rms_eps)).collect();
    drop(resid);
    let final_norm = step.probe.site(&normed, cfg.n_embd);
    let vocab = head.n_rows();
    let mut logits: Vec<Vec<f32>> =
        opts.paths.iter().map(|_| vec![0f32; n * vocab as usize]).collect();
    // The head alone: every other path's product on the reference's last normed row, and the
    // noise its arithmetic predicts, summed over the chunks (as `Block::mul` does per site).
    let last_ref = &normed[0][(n - 1) * cfg.n_embd..];
    let mut head_alone = HeadAlone::new(opts.paths.len(), vocab as usize);
    let mut start = 0;
    while start < vocab {
        step.check_cancel()?;
        let end = (start + HEAD_CHUNK_ROWS).min(vocab);
        let (m, read) = loader.matrix_rows(head, cfg.n_embd, start..end)?;
        progress.bytes_read += read;
        let mut columns: Option<Vec<f64>> = None;
        for (i, ((p, x), out)) in opts.paths.iter().zip(&normed).zip(&mut logits).enumerate() {
            let y = if i == 0 && *p == PathKind::F32 && opts.paths.len() > 1 {
                // The reference's dequantized tiles give the column energies.
                let (y, c) = paths::matmul_f32_with_column_energy(&m, x, n)?;
                columns = Some(c);
                y
            } else if i == 0 {
                step.matmul(*p, &m, x).await?
            } else {
                let mut y = step.matmul(*p, &m, &[x.as_slice(), last_ref].concat()).await?;
                let alone = y.split_off(n * m.rows);
                let columns = match &mut columns {
                    Some(c) => c,
                    None => columns.insert(paths::column_energy(&m)?),
                };
                head_alone.add(i, &opts.paths, &m, start as usize, &alone, last_ref, columns)?;
                y
            };
            for t in 0..n {
                let dst = &mut out
                    [t * vocab as usize + start as usize..t * vocab as usize + end as usize];
                dst.copy_from_slice(&y[t * m.rows..(t + 1) * m.rows]);
            }
        }
        if start == 0 {
            for p in &opts.paths {
                execution
                    .matmuls
                    .entry(p.id().into())
                    .or_default()
                    .push(format!("output head: {}", m.kernel_label(*p)));
            }
        }
        on_progress(&progress);
        start = end;
    }
    let mut logits_rec = assemble::logits_record(opts, &step.probe, &logits, vocab as usize);
    let reference_last = &logits[0][(n - 1) * vocab as usize..];
    for (i, p) in opts.paths.iter().enumerate().skip(1) {
        if let (Some(c), Some(noise)) =
            (logits_rec.compare.get_mut(p.id()), head_alone.noise(i, reference_last, n as u32 - 1))
        {
            c.noise = Some(noise);
        }
    }
    progress.phase = Phase::Done;
    on_progress(&progress);

    let last_logits: Vec<Vec<f32>> =
        logits.iter().map(|l| l[(n - 1) * vocab as usize..].to_vec()).collect();
    drop(logits);
    let probes = Probes { embed, layers, per_token_layers, final_norm, logits: logits_rec };
    let report = assemble::report(model, &cfg, input, opts, vocab, probes, execution);
    Ok((report, last_logits))
}
