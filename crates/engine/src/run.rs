//! One run: every layer streamed once, every path stepped through the same ops in lockstep, and
//! every site probed on all paths before the next op — so a comparison can only ever be between
//! the same site, the same tokens and the same element count.

use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use parallax_metrics::{top_k, Compare, LogitsCompare, Stats, STD_KIND};
use parallax_model::Model;
use parallax_report::{
    Execution, LayerRecord, LogitsRecord, Mode, ModelInfo, PathLogits, PerToken, Prompt, Report,
    Scope, SiteRecord, TokenSite, SCHEMA,
};
use parallax_source::ByteSource;

use crate::arch::{Activation, ArchConfig};
use crate::inject::{self, Fault, FaultKind};
use crate::matmul::{matmul_async, Gpu, Matrix, PathKind, Storage};
use crate::ops;
use crate::weights::{LayerWeights, Loader};
use crate::EngineError;

/// Rows of the output head read and multiplied at a time: bounded memory whatever the vocabulary.
const HEAD_CHUNK_ROWS: u64 = 8192;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Paths in order; the first is the reference.
    pub paths: Vec<PathKind>,
    pub mode: Mode,
    pub scope: Scope,
    /// Refuse prompts longer than this (memory and time grow with it).
    pub max_tokens: usize,
    /// Ops broken on purpose (`--inject`).
    pub faults: Vec<Fault>,
    /// Refuse to load a layer whose weights and activations would take more bytes than this
    /// (checked before the layer is read; `None`: no limit).
    pub memory_budget_bytes: Option<u64>,
    /// How the `gpu` path finds its device (only read when `paths` holds it).
    pub gpu: GpuSettings,
}

/// How the `gpu` path finds its device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuSettings {
    /// Act as if there were no adapter (tests of the fallback; a user's "CPU only" switch).
    pub disabled: bool,
    /// Destroy the device after this many GPU matmuls, as a driver reset would (tests of the
    /// mid-run fallback).
    pub lose_device_after: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            paths: vec![PathKind::F32, PathKind::Q8],
            mode: Mode::Free,
            scope: Scope::All,
            max_tokens: 512,
            faults: Vec::new(),
            memory_budget_bytes: None,
            gpu: GpuSettings::default(),
        }
    }
}

/// What the report says about the input, beyond the model itself.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    pub tokens: Vec<u32>,
    pub text: Option<String>,
    pub pieces: Vec<String>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Embedding,
    Layer,
    OutputHead,
    Done,
}

/// Progress after each step: bytes of weights read so far out of the bytes the run will read.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: Phase,
    /// Layers finished.
    pub layers_done: u32,
    pub n_layers: u32,
    pub bytes_read: u64,
    pub bytes_total: u64,
}

/// Site names within a layer, in execution order: parity's canonical list, without Gemma 3's two
/// post-norms on architectures that have none.
pub fn layer_sites(cfg: &ArchConfig) -> Vec<&'static str> {
    let post = cfg.kind == crate::ArchKind::Gemma3;
    parallax_metrics::sites::LAYER_SITES
        .iter()
        .copied()
        .filter(|s| post || !matches!(*s, "attn_post_norm" | "ffn_post_norm"))
        .collect()
}

struct Probe<'a> {
    paths: &'a [PathKind],
    scope: Scope,
    n_tokens: usize,
}

impl Probe<'_> {
    fn scoped<'b>(&self, buf: &'b [f32], width: usize) -> &'b [f32] {
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
    fn site_with<'b>(
        &self,
        bufs: &'b [Vec<f32>],
        width: usize,
        broken: &[PathKind],
    ) -> (SiteRecord, TokenSite) {
        let mut rec = SiteRecord { width: width as u64, ..Default::default() };
        let mut tok = TokenSite::default();
        let reference = &bufs[0];
        let sample = |p: &PathKind, buf: &'b Vec<f32>| -> &'b [f32] {
            if broken.contains(p) {
                self.mismatched(buf, width)
            } else {
                self.scoped(buf, width)
            }
        };
        // Each path's statistics once; the comparisons reuse their stds (same slices).
        let samples: Vec<&[f32]> =
            self.paths.iter().zip(bufs).map(|(p, buf)| sample(p, buf)).collect();
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        let per_token: Vec<Vec<Stats>> =
            bufs.iter().map(|buf| buf.chunks_exact(width).map(Stats::of).collect()).collect();
        for (i, p) in self.paths.iter().enumerate().skip(1) {
            if let Some(c) = Compare::of_with_stats(samples[0], samples[i], &stats[0], &stats[i]) {
                rec.compare.insert(p.id().into(), c);
            }
            let per: Vec<Compare> = reference
                .chunks_exact(width)
                .zip(bufs[i].chunks_exact(width))
                .zip(per_token[0].iter().zip(&per_token[i]))
                .filter_map(|((r, b), (sr, sb))| Compare::of_with_stats(r, b, sr, sb))
                .collect();
            tok.compare.insert(p.id().into(), per);
        }
        for ((p, s), per) in self.paths.iter().zip(stats).zip(per_token) {
            rec.paths.insert(p.id().into(), s);
            tok.paths.insert(p.id().into(), per);
        }
        (rec, tok)
    }

    fn site(&self, bufs: &[Vec<f32>], width: usize) -> (SiteRecord, TokenSite) {
        self.site_with(bufs, width, &[])
    }
}

struct Lockstep<'a, S: ByteSource> {
    cfg: &'a ArchConfig,
    opts: &'a RunOptions,
    probe: Probe<'a>,
    positions: Vec<u32>,
    cancel: &'a AtomicBool,
    gpu: Option<&'a Gpu>,
    /// GPU matmuls so far (for `GpuSettings::lose_device_after`).
    gpu_calls: std::cell::Cell<u32>,
    _source: std::marker::PhantomData<S>,
}

impl<S: ByteSource> Lockstep<'_, S> {
    fn check_cancel(&self) -> Result<(), EngineError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// One path's matmul, on the GPU for `gpu`.
    async fn matmul(&self, p: PathKind, m: &Matrix, x: &[f32]) -> Result<Vec<f32>, EngineError> {
        if p == PathKind::Gpu {
            let calls = self.gpu_calls.get() + 1;
            self.gpu_calls.set(calls);
            #[cfg(feature = "gpu")]
            if let (Some(after), Some(gpu)) = (self.opts.gpu.lose_device_after, self.gpu) {
                if calls > after {
                    gpu.destroy();
                }
            }
        }
        matmul_async(p, m, x, self.probe.n_tokens, self.gpu).await
    }

    /// `m · x` on path `p`, with the bias unless a fault drops it.
    async fn apply(
        &self,
        il: u32,
        site: &str,
        m: &Matrix,
        p: PathKind,
        x: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>, EngineError> {
        let faults = &self.opts.faults;
        let mut y = if inject::any(faults, FaultKind::Q4kScales, il, site, p) {
            self.matmul(p, &broken_q4k(m, il)?, x).await?
        } else {
            self.matmul(p, m, x).await?
        };
        if let Some(b) = bias {
            if !inject::any(faults, FaultKind::DropBias, il, site, p) {
                ops::add_bias(&mut y, b);
            }
        }
        Ok(y)
    }

    /// Each path multiplies its own input; in replay mode every other path also multiplies the
    /// reference's input, and that local result is compared with the reference's output.
    /// `pick` chooses the matrix per path (a `swap-gate-up` fault hands one path the other's).
    #[allow(clippy::too_many_arguments)]
    async fn matmul_site<'w>(
        &self,
        il: u32,
        site: &str,
        pick: &dyn Fn(PathKind) -> &'w Matrix,
        inputs: &[Vec<f32>],
        bias: Option<&[f32]>,
        rec: &mut SiteRecord,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut outs = Vec::with_capacity(inputs.len());
        for (p, x) in self.opts.paths.iter().zip(inputs) {
            self.check_cancel()?;
            outs.push(self.apply(il, site, pick(*p), *p, x, bias).await?);
        }
        if self.opts.mode == Mode::Replay {
            let rows = pick(self.opts.paths[0]).rows;
            for p in self.opts.paths.iter().skip(1) {
                let y = self.apply(il, site, pick(*p), *p, &inputs[0], bias).await?;
                if let Some(c) =
                    Compare::of(self.probe.scoped(&outs[0], rows), self.probe.scoped(&y, rows))
                {
                    rec.local.insert(p.id().into(), c);
                }
            }
        }
        Ok(outs)
    }

    fn swapped(&self, il: u32, p: PathKind) -> bool {
        self.opts
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::SwapGateUp && f.layer == il && f.path == p)
    }

    async fn layer(
        &self,
        il: u32,
        w: &LayerWeights,
        resid: &mut [Vec<f32>],
        layer_rec: &mut LayerRecord,
        tok_rec: &mut IndexMap<String, TokenSite>,
    ) -> Result<(), EngineError> {
        let c = self.cfg;
        let n = self.probe.n_tokens;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let broken_scope = |name: &str| -> Vec<PathKind> {
            self.opts
                .paths
                .iter()
                .copied()
                .filter(|p| inject::any(&self.opts.faults, FaultKind::ScopeMismatch, il, name, *p))
                .collect()
        };
        let mut record =
            |name: &str, bufs: &[Vec<f32>], width: usize, local: IndexMap<String, Compare>| {
                let (mut rec, tok) = self.probe.site_with(bufs, width, &broken_scope(name));
                rec.local = local;
                layer_rec.sites.insert(name.into(), rec);
                tok_rec.insert(name.into(), tok);
            };
        let map = |bufs: &[Vec<f32>], f: &dyn Fn(&[f32]) -> Vec<f32>| -> Vec<Vec<f32>> {
            bufs.iter().map(|b| f(b)).collect()
        };

        // Attention block.
        let h = map(resid, &|x| ops::rms_norm(x, c.n_embd, &w.attn_norm, c.rms_eps));
        record("attn_norm", &h, c.n_embd, IndexMap::new());
        let mut site = SiteRecord::default();
        let mut q = self.matmul_site(il, "q", &|_| &w.wq, &h, w.bq.as_deref(), &mut site).await?;
        record("q", &q, q_dim, site.local);
        let mut site = SiteRecord::default();
        let mut k = self.matmul_site(il, "k", &|_| &w.wk, &h, w.bk.as_deref(), &mut site).await?;
        record("k", &k, kv_dim, site.local);
        let mut site = SiteRecord::default();
        let v = self.matmul_site(il, "v", &|_| &w.wv, &h, w.bv.as_deref(), &mut site).await?;
        record("v", &v, kv_dim, site.local);

        let (base, freq_scale) = c.rope_for(il);
        let window = if c.is_swa(il) { c.sliding_window } else { None };
        let mut att = Vec::with_capacity(q.len());
        for (((q, k), v), path) in q.iter_mut().zip(k.iter_mut()).zip(&v).zip(&self.opts.paths) {
            if let Some(qn) = &w.q_norm {
                *q = ops::rms_norm(q, c.head_dim, qn, c.rms_eps);
            }
            if let Some(kn) = &w.k_norm {
                *k = ops::rms_norm(k, c.head_dim, kn, c.rms_eps);
            }
            ops::rope(q, &self.positions, c.n_head, c.head_dim, base, freq_scale, c.rope_style);
            ops::rope(k, &self.positions, c.n_head_kv, c.head_dim, base, freq_scale, c.rope_style);
            let f16 = path.llamacpp_ops();
            // llama.cpp's Gemma 3 graph scales Q (ggml_scale) before the f16 KQ product and
            // uses kq_scale 1; the other graphs scale the scores in the softmax. The two differ
            // where q·scale falls into f16's subnormal range, so the q8 path follows the graph.
            let scale = if f16 && c.kind == crate::ArchKind::Gemma3 {
                q.iter_mut().for_each(|x| *x *= c.attn_scale);
                1.0
            } else {
                c.attn_scale
            };
            att.push(ops::attention(
                q,
                k,
                v,
                n,
                c.n_head,
                c.n_head_kv,
                c.head_dim,
                scale,
                window,
                f16,
            ));
        }
        drop((q, k, v));
        record("attn_out", &att, q_dim, IndexMap::new());
        let mut site = SiteRecord::default();
        let mut proj = self.matmul_site(il, "attn_proj", &|_| &w.wo, &att, None, &mut site).await?;
        record("attn_proj", &proj, c.n_embd, site.local);
        if let Some(pn) = &w.post_attn_norm {
            proj = map(&proj, &|x| ops::rms_norm(x, c.n_embd, pn, c.rms_eps));
            record("attn_post_norm", &proj, c.n_embd, IndexMap::new());
        }
        for (r, p) in resid.iter_mut().zip(&proj) {
            ops::add_into(r, p);
        }
        record("resid_attn", resid, c.n_embd, IndexMap::new());

        // Feed-forward block.
        let h = map(resid, &|x| ops::rms_norm(x, c.n_embd, &w.ffn_norm, c.rms_eps));
        record("ffn_norm", &h, c.n_embd, IndexMap::new());
        let mut site = SiteRecord::default();
        let gate = self
            .matmul_site(
                il,
                "ffn_gate",
                &|p| if self.swapped(il, p) { &w.up } else { &w.gate },
                &h,
                None,
                &mut site,
            )
            .await?;
        record("ffn_gate", &gate, c.n_ff, site.local);
        let mut site = SiteRecord::default();
        let up = self
            .matmul_site(
                il,
                "ffn_up",
                &|p| if self.swapped(il, p) { &w.gate } else { &w.up },
                &h,
                None,
                &mut site,
            )
            .await?;
        record("ffn_up", &up, c.n_ff, site.local);
        let activated: Vec<Vec<f32>> = gate
            .iter()
            .zip(&self.opts.paths)
            .map(|(g, path)| {
                type Act = fn(f32) -> f32;
                let (act, tail): (Act, Act) = match (c.activation, path.llamacpp_ops()) {
                    (Activation::Silu, false) => (ops::silu, ops::silu),
                    // ggml_vec_swiglu_f32 (AVX-512): ggml_v_silu on whole 16-lane chunks of a
                    // row, the scalar ggml_silu_f32 (libm expf) on the rest.
                    (Activation::Silu, true) => (ops::silu_ggml, ops::silu),
                    (Activation::GeluTanh, false) => (ops::gelu_tanh, ops::gelu_tanh),
                    (Activation::GeluTanh, true) => {
                        (ops::gelu_tanh_f16_table, ops::gelu_tanh_f16_table)
                    }
                };
                let simd = c.n_ff - c.n_ff % 16;
                g.chunks_exact(c.n_ff)
                    .flat_map(|row| {
                        row.iter()
                            .enumerate()
                            .map(move |(i, &x)| if i < simd { act(x) } else { tail(x) })
                    })
                    .collect()
            })
            .collect();
        record("ffn_silu", &activated, c.n_ff, IndexMap::new());
        let swigl: Vec<Vec<f32>> = activated
            .iter()
            .zip(&up)
            .map(|(a, u)| a.iter().zip(u).map(|(a, u)| a * u).collect())
            .collect();
        drop((gate, up, activated));
        record("ffn_swigl", &swigl, c.n_ff, IndexMap::new());
        let mut site = SiteRecord::default();
        let mut down =
            self.matmul_site(il, "ffn_down", &|_| &w.down, &swigl, None, &mut site).await?;
        record("ffn_down", &down, c.n_embd, site.local);
        if let Some(pn) = &w.post_ffw_norm {
            down = map(&down, &|x| ops::rms_norm(x, c.n_embd, pn, c.rms_eps));
            record("ffn_post_norm", &down, c.n_embd, IndexMap::new());
        }
        for (r, d) in resid.iter_mut().zip(&down) {
            ops::add_into(r, d);
        }
        record("resid_ffn", resid, c.n_embd, IndexMap::new());
        Ok(())
    }
}

/// Run the model over `input.tokens` along every path of `opts`, streaming one layer's weights at
/// a time, and return the report. Natively this blocks on the GPU when `opts` has the `gpu`
/// path; in the browser, where nothing may block on the GPU, use [`run_async`].
pub fn run<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<Report, EngineError> {
    run_with_logits(model, input, opts, on_progress, cancel).map(|(report, _)| report)
}

/// [`run`], also returning each path's full last-position logits (in path order), for checks
/// against other implementations' logits.
pub fn run_with_logits<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<(Report, Vec<Vec<f32>>), EngineError> {
    if cfg!(target_arch = "wasm32") && opts.paths.contains(&PathKind::Gpu) {
        return Err(EngineError::BadOptions {
            message:
                "in the browser the gpu path cannot be waited for synchronously; use run_async"
                    .into(),
        });
    }
    crate::block_on(run_with_logits_async(model, input, opts, on_progress, cancel))
}

/// [`run`] as a future: the `gpu` path awaits the GPU's results.
pub async fn run_async<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<Report, EngineError> {
    run_with_logits_async(model, input, opts, on_progress, cancel).await.map(|(report, _)| report)
}

/// [`run_with_logits`] as a future. If the `gpu` path cannot start (no adapter, a build without
/// GPU support) or fails on the way (device lost, out of memory), the run goes on — from the
/// start, so every path sees the same ops — without it, and the report says why
/// (`execution.gpu_unavailable`).
pub async fn run_with_logits_async<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<(Report, Vec<Vec<f32>>), EngineError> {
    if !opts.paths.contains(&PathKind::Gpu) {
        return run_paths(model, input, opts, None, on_progress, cancel).await;
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
                return Ok((report, logits));
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
    Ok((report, logits))
}

#[cfg(feature = "gpu")]
async fn open_gpu(settings: &GpuSettings) -> Result<Gpu, String> {
    if settings.disabled {
        return Err("the GPU was switched off for this run".into());
    }
    parallax_gpu::GpuMatmul::new().await.map_err(|e| e.to_string())
}

#[cfg(not(feature = "gpu"))]
async fn open_gpu(_settings: &GpuSettings) -> Result<Gpu, String> {
    Err("this build of Parallax has no GPU support (the engine's `gpu` feature)".into())
}

#[cfg(feature = "gpu")]
fn gpu_record(gpu: &Gpu) -> parallax_report::GpuRecord {
    let f = gpu.facts();
    parallax_report::GpuRecord {
        adapter: f.name.clone(),
        backend: f.backend.clone(),
        device_type: f.device_type.clone(),
        driver: f.driver.clone(),
        features: f.features.clone(),
        limits: f.limits.iter().cloned().collect(),
        placement: GPU_PLACEMENT.into(),
    }
}

#[cfg(not(feature = "gpu"))]
fn gpu_record(gpu: &Gpu) -> parallax_report::GpuRecord {
    match *gpu {}
}

/// Where the `gpu` path's ops run.
pub const GPU_PLACEMENT: &str =
    "matmuls (weights dequantized in the shader, f32 dots) on the GPU; embedding lookup, \
     norms, RoPE, attention and activations on the CPU, in f32 as on the f32 path";

async fn run_paths<S: ByteSource>(
    model: &Model<S>,
    input: &RunInput,
    opts: &RunOptions,
    gpu: Option<&Gpu>,
    on_progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<(Report, Vec<Vec<f32>>), EngineError> {
    let cfg = ArchConfig::from_model(model)?;
    let tokens = &input.tokens;
    if tokens.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if tokens.len() > opts.max_tokens {
        return Err(EngineError::PromptTooLong { tokens: tokens.len(), max: opts.max_tokens });
    }
    if opts.paths.is_empty() {
        return Err(EngineError::BadOptions { message: "no paths to run".into() });
    }
    for f in &opts.faults {
        if f.layer >= cfg.n_layers {
            return Err(EngineError::BadOptions {
                message: format!("cannot inject {f}: the model has layers 0..{}", cfg.n_layers),
            });
        }
        if Some(&f.path) == opts.paths.first() {
            return Err(EngineError::BadOptions {
                message: format!("cannot inject {f}: that is the reference path"),
            });
        }
    }
    let n = tokens.len();
    let loader = Loader { model, cfg: &cfg };
    let step = Lockstep::<S> {
        cfg: &cfg,
        opts,
        probe: Probe { paths: &opts.paths, scope: opts.scope, n_tokens: n },
        positions: (0..n as u32).collect(),
        cancel,
        gpu,
        gpu_calls: std::cell::Cell::new(0),
        _source: std::marker::PhantomData,
    };

    let (head, out_norm, norm_bytes) = loader.output_head()?;
    let bytes_total = estimate_bytes(model, &cfg, head, n);
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
    let (embed, embed_tok) = step.probe.site(&resid, cfg.n_embd);

    let mut execution = Execution {
        shared_ops: vec![
            "embedding lookup (dequantized rows)".into(),
            "RMSNorm (f64 sum of squares, as ggml)".into(),
            "RoPE (ggml's angle recurrence)".into(),
            "attention softmax (f64 sum, as ggml)".into(),
            format!("FFN activation: {}", if cfg.activation == Activation::Silu { "SiLU" } else { "GELU (tanh)" }),
        ],
        injected: opts.faults.iter().map(|f| f.to_string()).collect(),
        notes: vec![
            format!("kernels: {}", crate::kernel_backend()),
            "f32 path: attention q·k and p·v in f32".into(),
            "q8 path: llama.cpp CPU semantics beyond the weight matmuls — K/V as f16 (default KV cache), \
             q and softmax probabilities converted to f16 for the two attention matmuls, GELU from ggml's f16 table"
                .into(),
        ],
        ..Default::default()
    };
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
        let mut rec = LayerRecord { index: il, sites: IndexMap::new() };
        let mut tok = IndexMap::new();
        step.layer(il, &w, &mut resid, &mut rec, &mut tok).await?;
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
    let (final_norm, final_tok) = step.probe.site(&normed, cfg.n_embd);
    let vocab = head.n_rows();
    let mut logits: Vec<Vec<f32>> =
        opts.paths.iter().map(|_| vec![0f32; n * vocab as usize]).collect();
    let mut start = 0;
    while start < vocab {
        step.check_cancel()?;
        let end = (start + HEAD_CHUNK_ROWS).min(vocab);
        let (m, read) = loader.matrix_rows(head, cfg.n_embd, start..end)?;
        progress.bytes_read += read;
        for ((p, x), out) in opts.paths.iter().zip(&normed).zip(&mut logits) {
            let y = step.matmul(*p, &m, x).await?;
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
    let last = |l: &Vec<f32>| l[(n - 1) * vocab as usize..].to_vec();
    let mut logits_rec =
        LogitsRecord { position: (n - 1) as u32, paths: IndexMap::new(), compare: IndexMap::new() };
    for (p, l) in opts.paths.iter().zip(&logits) {
        let scoped = step.probe.scoped(l, vocab as usize);
        logits_rec.paths.insert(
            p.id().into(),
            PathLogits { top: top_k(&last(l), 10), stats: Stats::of(scoped) },
        );
    }
    let ref_last = last(&logits[0]);
    for (p, l) in opts.paths.iter().zip(&logits).skip(1) {
        if let Some(c) = LogitsCompare::of(&ref_last, &last(l)) {
            logits_rec.compare.insert(p.id().into(), c);
        }
    }
    progress.phase = Phase::Done;
    on_progress(&progress);

    let last_logits: Vec<Vec<f32>> = logits.iter().map(last).collect();
    drop(logits);
    let summary = model.summary();
    let report = Report {
        schema: SCHEMA.into(),
        model: ModelInfo {
            name: model.gguf().and_then(|g| g.get_str("general.name").map(str::to_string)).or_else(
                || {
                    model.apr().and_then(|a| {
                        a.metadata().get("name").and_then(|v| v.as_str()).map(str::to_string)
                    })
                },
            ),
            file_name: summary.file_name,
            format: summary.format,
            arch: cfg.name.clone(),
            n_layers: cfg.n_layers,
            n_embd: cfg.n_embd as u64,
            n_vocab: vocab,
            file_bytes: model.source().len(),
            sha256: input.sha256.clone(),
        },
        prompt: Prompt {
            text: input.text.clone(),
            tokens: tokens.clone(),
            pieces: input.pieces.clone(),
        },
        paths: opts.paths.iter().map(|p| p.id().to_string()).collect(),
        reference: opts.paths[0].id().into(),
        mode: opts.mode,
        scope: opts.scope,
        std_kind: STD_KIND.into(),
        site_order: layer_sites(&cfg).into_iter().map(String::from).collect(),
        embed,
        layers,
        final_norm,
        logits: logits_rec,
        per_token: PerToken { embed: embed_tok, layers: per_token_layers, final_norm: final_tok },
        execution,
        verdicts: None,
    };
    Ok((report, last_logits))
}

/// Bytes the run will read: every layer tensor, the prompt's embedding rows, the output head.
fn estimate_bytes<S: ByteSource>(
    model: &Model<S>,
    cfg: &ArchConfig,
    head: &parallax_model::Tensor,
    n_tokens: usize,
) -> u64 {
    let layers: u64 = model
        .tensors()
        .iter()
        .filter(|t| matches!(t.role, Some(parallax_model::Role::Layer { layer, .. }) if layer < cfg.n_layers))
        .map(|t| t.n_bytes)
        .sum();
    let embd = model
        .tensor_by_role(parallax_model::Role::TokenEmbd)
        .map(|t| t.n_bytes / t.n_rows().max(1) * n_tokens as u64)
        .unwrap_or(0);
    let norm =
        model.tensor_by_role(parallax_model::Role::OutputNorm).map(|t| t.n_bytes).unwrap_or(0);
    layers + embd + head.n_bytes + norm
}

/// A copy of `m` whose Q4_K blocks a kernel with swapped scale/min unpacking would see.
fn broken_q4k(m: &Matrix, il: u32) -> Result<Matrix, EngineError> {
    match &m.storage {
        Storage::Ggml { ty: parallax_quant::GgmlType::Q4_K, bytes, row_bytes } => {
            let mut bytes = bytes.clone();
            inject::swap_q4k_scale_min(&mut bytes);
            Ok(Matrix {
                name: m.name.clone(),
                rows: m.rows,
                cols: m.cols,
                storage: Storage::Ggml { ty: parallax_quant::GgmlType::Q4_K, bytes, row_bytes: *row_bytes },
            })
        }
        _ => Err(EngineError::BadOptions {
            message: format!(
                "cannot inject q4k-scales at layer {il}: `{}` is {}, not Q4_K; pick a site whose weights are Q4_K (see `parallax inspect`)",
                m.name,
                m.kernel_label(PathKind::F32).split(' ').next().unwrap_or("?")
            ),
        }),
    }
}
