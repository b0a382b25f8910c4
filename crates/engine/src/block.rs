//! The transformer block, written the way llama.cpp's `llm_build_qwen2` writes it: one op a line,
//! each followed by its probe (`record`, ggml's `cb(cur, "name", il)`). Every op steps all paths
//! before the next, and every site is probed on all paths before the next op ([`Lockstep`]).
//! How a path computes an op is asked of [`PathKind`]; what a fault changes, of `inject`.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use parallax_metrics::Compare;
use parallax_report::{LayerRecord, Mode, TokenSite};

use crate::arch::ArchConfig;
use crate::inject;
use crate::options::RunOptions;
use crate::paths::{matmul_async, Gpu, Matrix, PathKind};
use crate::probe::Probe;
use crate::weights::LayerWeights;
use crate::{ops, EngineError};

/// All paths of one run, stepped through the same ops together.
pub(crate) struct Lockstep<'a> {
    pub cfg: &'a ArchConfig,
    pub opts: &'a RunOptions,
    pub probe: Probe<'a>,
    pub positions: Vec<u32>,
    pub cancel: &'a AtomicBool,
    pub gpu: Option<&'a Gpu>,
    /// GPU matmuls so far (for `GpuSettings::lose_device_after`).
    pub gpu_calls: Cell<u32>,
}

impl Lockstep<'_> {
    pub fn check_cancel(&self) -> Result<(), EngineError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// One path's matmul, on the GPU for `gpu`.
    pub async fn matmul(
        &self,
        p: PathKind,
        m: &Matrix,
        x: &[f32],
    ) -> Result<Vec<f32>, EngineError> {
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

    /// Layer `il` on every path: `resid` (one residual stream per path) goes in before the
    /// block and comes out after it; returns the layer's probes (scoped, and per token).
    pub async fn layer(
        &self,
        il: u32,
        w: &LayerWeights,
        resid: &mut [Vec<f32>],
    ) -> Result<(LayerRecord, IndexMap<String, TokenSite>), EngineError> {
        let c = self.cfg;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut b = Block::new(self, il, w);

        // Attention.
        let cur = b.rms_norm(resid, &w.attn_norm);
        b.record("attn_norm", &cur, c.n_embd);
        let mut q = b.mul("q", &w.wq, &cur, w.bq.as_deref()).await?;
        b.record("q", &q, q_dim);
        let mut k = b.mul("k", &w.wk, &cur, w.bk.as_deref()).await?;
        b.record("k", &k, kv_dim);
        let v = b.mul("v", &w.wv, &cur, w.bv.as_deref()).await?;
        b.record("v", &v, kv_dim);
        let att = b.attention(&mut q, &mut k, &v);
        drop((q, k, v));
        b.record("attn_out", &att, q_dim);
        let sites = ["attn_proj", "attn_post_norm", "resid_attn"];
        b.add_to_residual(resid, sites, &w.wo, &att, w.post_attn_norm.as_deref()).await?;

        // Feed-forward.
        let cur = b.rms_norm(resid, &w.ffn_norm);
        b.record("ffn_norm", &cur, c.n_embd);
        let gate = b.mul("ffn_gate", &w.gate, &cur, None).await?;
        b.record("ffn_gate", &gate, c.n_ff);
        let up = b.mul("ffn_up", &w.up, &cur, None).await?;
        b.record("ffn_up", &up, c.n_ff);
        let act = b.each_path(&gate, |(p, _), g| p.activate(c.activation, g, c.n_ff));
        b.record("ffn_silu", &act, c.n_ff);
        let swigl =
            b.each_path(&act, |(_, i), a| a.iter().zip(&up[i]).map(|(a, u)| a * u).collect());
        drop((gate, up, act));
        b.record("ffn_swigl", &swigl, c.n_ff);
        let sites = ["ffn_down", "ffn_post_norm", "resid_ffn"];
        b.add_to_residual(resid, sites, &w.down, &swigl, w.post_ffw_norm.as_deref()).await?;

        Ok((b.sites, b.per_token))
    }
}

/// One layer in progress: its weights, and the probes recorded so far.
struct Block<'s, 'w> {
    step: &'s Lockstep<'s>,
    il: u32,
    w: &'w LayerWeights,
    sites: LayerRecord,
    per_token: IndexMap<String, TokenSite>,
    /// Replay mode: a matmul site's local comparisons, until the site is recorded.
    local: HashMap<&'static str, IndexMap<String, Compare>>,
}

impl<'s, 'w> Block<'s, 'w> {
    fn new(step: &'s Lockstep<'s>, il: u32, w: &'w LayerWeights) -> Self {
        Block {
            step,
            il,
            w,
            sites: LayerRecord { index: il, sites: IndexMap::new() },
            per_token: IndexMap::new(),
            local: HashMap::new(),
        }
    }

    /// Probe `bufs` (one per path, rows of `width`) as site `name`.
    fn record(&mut self, name: &'static str, bufs: &[Vec<f32>], width: usize) {
        let s = self.step;
        let broken = inject::broken_scope(&s.opts.faults, &s.opts.paths, self.il, name);
        let (mut rec, tok) = s.probe.site_with(bufs, width, &broken);
        rec.local = self.local.remove(name).unwrap_or_default();
        self.sites.sites.insert(name.into(), rec);
        self.per_token.insert(name.into(), tok);
    }

    /// `f(path, buf)` on each path's buffer; the path comes with its index.
    fn each_path(
        &self,
        bufs: &[Vec<f32>],
        f: impl Fn((PathKind, usize), &[f32]) -> Vec<f32>,
    ) -> Vec<Vec<f32>> {
        self.step.opts.paths.iter().zip(bufs).enumerate().map(|(i, (p, b))| f((*p, i), b)).collect()
    }

    fn rms_norm(&self, bufs: &[Vec<f32>], weight: &[f32]) -> Vec<Vec<f32>> {
        let c = self.step.cfg;
        bufs.iter().map(|x| ops::rms_norm(x, c.n_embd, weight, c.rms_eps)).collect()
    }

    /// `m · x + bias` at `site` on every path, each on its own input. In replay mode every
    /// other path also multiplies the reference's input, and that local result is compared with
    /// the reference's output (recorded with the site).
    async fn mul(
        &mut self,
        site: &'static str,
        m: &'w Matrix,
        inputs: &[Vec<f32>],
        bias: Option<&[f32]>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let s = self.step;
        let mut outs = Vec::with_capacity(inputs.len());
        for (p, x) in s.opts.paths.iter().zip(inputs) {
            s.check_cancel()?;
            outs.push(self.apply(site, m, *p, x, bias).await?);
        }
        if s.opts.mode == Mode::Replay {
            let mut local = IndexMap::new();
            for p in s.opts.paths.iter().skip(1) {
                let y = self.apply(site, m, *p, &inputs[0], bias).await?;
                if let Some(c) =
                    Compare::of(s.probe.scoped(&outs[0], m.rows), s.probe.scoped(&y, m.rows))
                {
                    local.insert(p.id().into(), c);
                }
            }
            self.local.insert(site, local);
        }
        Ok(outs)
    }

    /// One path's `m · x + bias`, as the run's faults have it on that path.
    async fn apply(
        &self,
        site: &str,
        m: &'w Matrix,
        p: PathKind,
        x: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>, EngineError> {
        let faults = &self.step.opts.faults;
        let m = inject::weights(faults, self.il, site, p, m, self.w)?;
        let mut y = self.step.matmul(p, &m, x).await?;
        if let Some(b) = inject::bias(faults, self.il, site, p, bias) {
            ops::add_bias(&mut y, b);
        }
        Ok(y)
    }

    /// Per-head q/k norms (Qwen 3, Gemma 3), RoPE, then softmax(q·kᵀ·scale)·v on each path, in
    /// that path's arithmetic.
    fn attention(&self, q: &mut [Vec<f32>], k: &mut [Vec<f32>], v: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let (c, w, il) = (self.step.cfg, self.w, self.il);
        let (base, freq_scale) = c.rope_for(il);
        let window = if c.is_swa(il) { c.sliding_window } else { None };
        let positions = &self.step.positions;
        let mut att = Vec::with_capacity(q.len());
        for (((q, k), v), path) in q.iter_mut().zip(k.iter_mut()).zip(v).zip(&self.step.opts.paths)
        {
            if let Some(qn) = &w.q_norm {
                *q = ops::rms_norm(q, c.head_dim, qn, c.rms_eps);
            }
            if let Some(kn) = &w.k_norm {
                *k = ops::rms_norm(k, c.head_dim, kn, c.rms_eps);
            }
            ops::rope(q, positions, c.n_head, c.head_dim, base, freq_scale, c.rope_style);
            ops::rope(k, positions, c.n_head_kv, c.head_dim, base, freq_scale, c.rope_style);
            let scale = path.prescale_q(c, q);
            let (n, f16) = (self.step.probe.n_tokens, path.f16_attention());
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
        att
    }

    /// `resid += post_norm(m · x)` on every path — attention's output projection and the FFN's
    /// down projection — probing the product, the post-norm (only where the architecture has
    /// one: Gemma 3) and the sum, as `sites` names them.
    async fn add_to_residual(
        &mut self,
        resid: &mut [Vec<f32>],
        [product, post, sum]: [&'static str; 3],
        m: &'w Matrix,
        x: &[Vec<f32>],
        post_norm: Option<&[f32]>,
    ) -> Result<(), EngineError> {
        let n_embd = self.step.cfg.n_embd;
        let mut cur = self.mul(product, m, x, None).await?;
        self.record(product, &cur, n_embd);
        if let Some(pn) = post_norm {
            cur = self.rms_norm(&cur, pn);
            self.record(post, &cur, n_embd);
        }
        for (r, c) in resid.iter_mut().zip(&cur) {
            ops::add_into(r, c);
        }
        self.record(sum, resid, n_embd);
        Ok(())
    }
}
