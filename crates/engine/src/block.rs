//! The transformer block, written the way llama.cpp's `llm_build_qwen2` writes it: one op a line,
//! each followed by its probe (`record`, ggml's `cb(cur, "name", il)`). Every op steps all paths
//! before the next, and every site is probed on all paths before the next op ([`Lockstep`]).
//! How a path computes an op is asked of [`PathKind`]; what a fault changes, of `inject`.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use parallax_metrics::Compare;
use parallax_report::{LayerRecord, LocalNoise, SiteTensor, TokenSite};

use crate::arch::ArchConfig;
use crate::inject;
use crate::options::{Lane, RunOptions};
use crate::paths::{self, matmul_async, Gpu, Matrix, PathKind};
use crate::probe::Probe;
use crate::weights::LayerWeights;
use crate::{ops, EngineError};

/// All lanes of one run (every path on every file), stepped through the same ops together.
pub(crate) struct Lockstep<'a> {
    pub cfg: &'a ArchConfig,
    pub opts: &'a RunOptions,
    /// The reference first.
    pub lanes: &'a [Lane],
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
        matmul_async(p, m, x, x.len() / m.cols.max(1), self.gpu).await
    }

    /// Layer `il` on every lane: `ws` holds each file's weights of the layer, `resid` (one
    /// residual stream per lane) goes in before the block and comes out after it; returns the
    /// layer's probes (scoped, and per token).
    pub async fn layer(
        &self,
        il: u32,
        ws: &[LayerWeights],
        resid: &mut [Vec<f32>],
    ) -> Result<(LayerRecord, IndexMap<String, TokenSite>), EngineError> {
        let c = self.cfg;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let mut b = Block::new(self, il, ws);

        // Attention.
        let cur = b.rms_norm(resid, |w| &w.attn_norm);
        b.record("attn_norm", &cur, c.n_embd);
        let mut q = b.mul("q", |w| (&w.wq, w.bq.as_deref()), &cur).await?;
        b.record("q", &q, q_dim);
        let mut k = b.mul("k", |w| (&w.wk, w.bk.as_deref()), &cur).await?;
        b.record("k", &k, kv_dim);
        let v = b.mul("v", |w| (&w.wv, w.bv.as_deref()), &cur).await?;
        b.record("v", &v, kv_dim);
        let att = b.attention(&mut q, &mut k, &v);
        drop((q, k, v));
        b.record("attn_out", &att, q_dim);
        let sites = ["attn_proj", "attn_post_norm", "resid_attn"];
        b.add_to_residual(resid, sites, |w| (&w.wo, None), &att, |w| w.post_attn_norm.as_deref())
            .await?;

        // Feed-forward.
        let cur = b.rms_norm(resid, |w| &w.ffn_norm);
        b.record("ffn_norm", &cur, c.n_embd);
        let gate = b.mul("ffn_gate", |w| (&w.gate, None), &cur).await?;
        b.record("ffn_gate", &gate, c.n_ff);
        let up = b.mul("ffn_up", |w| (&w.up, None), &cur).await?;
        b.record("ffn_up", &up, c.n_ff);
        let act = b.each_path(&gate, |(p, _), g| p.activate(c.activation, g, c.n_ff));
        // The activation's arithmetic is the path's own: also fed the reference's gate.
        let local = b.local_op(
            &act,
            c.n_ff,
            |p| p.activate(c.activation, &gate[0], c.n_ff),
            |p| p.exact_activation(c.activation, &gate[0], c.n_ff),
        );
        b.local.insert("ffn_silu", local);
        b.record("ffn_silu", &act, c.n_ff);
        let swigl =
            b.each_path(&act, |(_, i), a| a.iter().zip(&up[i]).map(|(a, u)| a * u).collect());
        drop((gate, up, act));
        b.record("ffn_swigl", &swigl, c.n_ff);
        let sites = ["ffn_down", "ffn_post_norm", "resid_ffn"];
        b.add_to_residual(
            resid,
            sites,
            |w| (&w.down, None),
            &swigl,
            |w| w.post_ffw_norm.as_deref(),
        )
        .await?;

        Ok((b.sites, b.per_token))
    }
}

/// The noise path `p`'s arithmetic predicts for its local result `y` (rows of `m.rows`) from
/// the reference's input `x` and output `reference` (`paths`: `p` and the reference's path): per
/// token `Σ_i c_i e_i²` with `e` the input's rounding as `p`'s kernel sees it, plus an f32
/// summation floor ([`LocalNoise`]). The rows are the last of a prompt of `n_tokens`.
fn local_noise(
    (p, reference_path): (PathKind, PathKind),
    m: &Matrix,
    columns: &[f64],
    (x, reference, y): (&[f32], &[f32], &[f32]),
    n_tokens: usize,
) -> Result<Option<LocalNoise>, EngineError> {
    // Each token's prediction on its own (on the pool's threads).
    let token = |t: usize| -> Result<f64, EngineError> {
        let xr = &x[t * m.cols..(t + 1) * m.cols];
        let path_view = paths::kernel_input(p, m, xr)?;
        let reference_view = paths::kernel_input(reference_path, m, xr)?;
        Ok(paths::predicted_energy(columns, xr, path_view.as_deref(), reference_view.as_deref()))
    };
    let predicted: Vec<f64> =
        crate::map_indices(x.len() / m.cols.max(1), token).into_iter().collect::<Result<_, _>>()?;
    let first_position = (n_tokens - predicted.len()) as u32;
    Ok(paths::noise_of(&predicted, reference, y, m.rows, first_position))
}

/// An op's comparisons fed the reference's input, per path: against the reference's output
/// (`SiteRecord::local`) and against the noise the arithmetic predicts (`SiteRecord::noise`).
type OpAlone = (IndexMap<String, Compare>, IndexMap<String, LocalNoise>);

/// A matrix of a layer's weights and the bias added to its product.
type MatrixOf = fn(&LayerWeights) -> (&Matrix, Option<&[f32]>);
/// A norm weight of a layer.
type VectorOf = fn(&LayerWeights) -> &[f32];
/// A norm weight only some architectures have.
type OptionalVectorOf = fn(&LayerWeights) -> Option<&[f32]>;

/// One layer in progress: its weights (one set per file), and the probes recorded so far.
struct Block<'s, 'w> {
    step: &'s Lockstep<'s>,
    il: u32,
    ws: &'w [LayerWeights],
    sites: LayerRecord,
    per_token: IndexMap<String, TokenSite>,
    /// A matmul site's local comparisons and their predicted noise, until the site is recorded.
    local: HashMap<&'static str, OpAlone>,
    /// A matmul site's weight matrix (the reference's file), until the site is recorded.
    tensors: HashMap<&'static str, SiteTensor>,
}

impl<'s, 'w> Block<'s, 'w> {
    fn new(step: &'s Lockstep<'s>, il: u32, ws: &'w [LayerWeights]) -> Self {
        Block {
            step,
            il,
            ws,
            sites: LayerRecord { index: il, sites: IndexMap::new() },
            per_token: IndexMap::new(),
            local: HashMap::new(),
            tensors: HashMap::new(),
        }
    }

    /// The layer's weights as lane `i` reads them: its file's.
    fn w(&self, i: usize) -> &'w LayerWeights {
        &self.ws[self.step.lanes[i].file]
    }

    /// Probe `bufs` (one per lane, rows of `width`) as site `name`.
    fn record(&mut self, name: &'static str, bufs: &[Vec<f32>], width: usize) {
        let s = self.step;
        s.probe.tap(Some(self.il), name, bufs, width);
        let broken = inject::broken_scope(&s.opts.faults, s.lanes, self.il, name);
        let (mut rec, tok) = s.probe.site_with(bufs, width, &broken);
        (rec.local, rec.noise) = self.local.remove(name).unwrap_or_default();
        if let Some(detail) = &mut rec.detail {
            detail.tensor = self.tensors.remove(name);
        }
        self.sites.sites.insert(name.into(), rec);
        self.per_token.insert(name.into(), tok);
    }

    /// `f(path, buf)` on each lane's buffer; the lane's path comes with the lane's index.
    fn each_path(
        &self,
        bufs: &[Vec<f32>],
        f: impl Fn((PathKind, usize), &[f32]) -> Vec<f32>,
    ) -> Vec<Vec<f32>> {
        self.step.lanes.iter().zip(bufs).enumerate().map(|(i, (l, b))| f((l.path, i), b)).collect()
    }

    /// RMSNorm of each lane's rows of `n_embd`, by its own file's weight.
    fn rms_norm(&self, bufs: &[Vec<f32>], weight: VectorOf) -> Vec<Vec<f32>> {
        let c = self.step.cfg;
        let norm =
            |(i, x): (usize, &Vec<f32>)| ops::rms_norm(x, c.n_embd, weight(self.w(i)), c.rms_eps);
        bufs.iter().enumerate().map(norm).collect()
    }

    /// `m · x + bias` at `site` on every lane, each on its own input and its own file's
    /// matrix (`of` picks it from a layer's weights). Every other lane also multiplies the
    /// reference's input (the rows in scope), and that local result is compared with the
    /// reference's output and, for lanes on the reference's file, with the noise its arithmetic
    /// predicts (recorded with the site): the error the op adds on its own, so a wrong kernel —
    /// or, across files, a tensor's own quantization — is found at its own site however much
    /// error arrives from upstream.
    async fn mul(
        &mut self,
        site: &'static str,
        of: MatrixOf,
        inputs: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let s = self.step;
        let lanes = s.lanes;
        let mut outs = Vec::with_capacity(inputs.len());
        let mut alone = Vec::with_capacity(inputs.len());
        let mut columns: Option<Vec<f64>> = None;
        let (m_ref, _) = of(self.w(0));
        self.tensors.insert(site, paths::site_tensor(m_ref));
        let x_ref = s.probe.scoped(&inputs[0], m_ref.cols);
        // The lockstep f32 and q8 lanes of one file: both products in one pass over the
        // weights, the same results as the loop below gives.
        let fused = self.f32_and_q8(site, of, inputs, x_ref)?;
        if let Some((y, c, mut q8_y)) = fused {
            s.check_cancel()?;
            columns = Some(c);
            outs.push(y);
            alone.push(q8_y.split_off(inputs[1].len() / m_ref.cols * m_ref.rows));
            outs.push(q8_y);
        }
        for (i, (lane, x)) in lanes.iter().zip(inputs).enumerate().skip(outs.len()) {
            s.check_cancel()?;
            let (m, bias) = of(self.w(i));
            if i == 0 && lane.path == PathKind::F32 && lanes.len() > 1 {
                // The reference's own dequantization gives the noise prediction's column
                // energies (no fault touches the reference).
                let (mut y, c) = paths::matmul_f32_with_column_energy(m, x, x.len() / m.cols)?;
                if let Some(b) = bias {
                    ops::add_bias(&mut y, b);
                }
                columns = Some(c);
                outs.push(y);
                continue;
            }
            if i == 0 {
                outs.push(self.apply(site, m, i, x, bias).await?);
                continue;
            }
            // The lane's own input and the reference's rows in scope in one product: every
            // output row is computed on its own, so this is what two products would give, for
            // one pass over the weights.
            let both = [x.as_slice(), x_ref].concat();
            let mut y = self.apply(site, m, i, &both, bias).await?;
            alone.push(y.split_off(x.len() / m.cols * m.rows));
            outs.push(y);
        }
        let x = x_ref;
        let reference = s.probe.scoped(&outs[0], m_ref.rows);
        let (mut local, mut noise) = (IndexMap::new(), IndexMap::new());
        let (reference_path, n_tokens) = (lanes[0].path, s.probe.n_tokens);
        for ((lane, id), y) in lanes.iter().zip(&s.probe.ids).skip(1).zip(alone) {
            // Another file's weights differ by more than any rounding: no noise to predict.
            let same_file = lane.file == lanes[0].file;
            if same_file && columns.is_none() {
                columns = Some(paths::column_energy(m_ref)?);
            }
            let lane_columns = if same_file { columns.as_deref() } else { None };
            // The comparison beside the prediction, on the pool's threads.
            let (c, n) = crate::join(
                || Compare::of(reference, &y),
                || match lane_columns {
                    Some(columns) => local_noise(
                        (lane.path, reference_path),
                        m_ref,
                        columns,
                        (x, reference, &y),
                        n_tokens,
                    ),
                    None => Ok(None),
                },
            );
            if let Some(c) = c {
                local.insert(id.clone(), c);
            }
            if let Some(n) = n? {
                noise.insert(id.clone(), n);
            }
        }
        self.local.insert(site, (local, noise));
        Ok(outs)
    }

    /// Both lanes' products at `site` in one pass (the reference's with its column energies,
    /// and the other lane's on its own input and the reference's rows `x_ref`, biases added),
    /// where the run is the `f32` reference and the `q8` path on one file and no fault changes
    /// the second lane's matrix or bias here; `None` where each lane multiplies apart.
    #[allow(clippy::type_complexity)]
    fn f32_and_q8(
        &self,
        site: &str,
        of: MatrixOf,
        inputs: &[Vec<f32>],
        x_ref: &[f32],
    ) -> Result<Option<(Vec<f32>, Vec<f64>, Vec<f32>)>, EngineError> {
        let s = self.step;
        if !paths::f32_and_q8_lanes(s.lanes) {
            return Ok(None);
        }
        let (m, bias) = of(self.w(0));
        let (faults, other) = (&s.opts.faults, s.lanes[1]);
        let other_m = inject::weights(faults, self.il, site, other, m, self.w(1))?;
        let other_bias = inject::bias(faults, self.il, site, other, m, bias)?;
        if !std::ptr::eq(&*other_m, m)
            || other_bias.map(<[f32]>::as_ptr) != bias.map(<[f32]>::as_ptr)
        {
            return Ok(None);
        }
        // The other lane's own input and the reference's rows in scope in one product, as
        // `mul` multiplies them.
        let both = [inputs[1].as_slice(), x_ref].concat();
        let Some(products) = paths::matmul_f32_and_q8(m, &inputs[0], &both) else {
            return Ok(None);
        };
        let (mut y, c, mut q8_y) = products?;
        if let Some(b) = bias {
            ops::add_bias(&mut y, b);
            ops::add_bias(&mut q8_y, b);
        }
        Ok(Some((y, c, q8_y)))
    }

    /// The prompt position of the first of `n_scoped` rows in scope.
    fn first_scoped_position(&self, n_scoped: usize) -> u32 {
        (self.step.probe.n_tokens - n_scoped) as u32
    }

    /// Lane `i`'s `m · x + bias`, as the run's faults have it on that lane.
    async fn apply(
        &self,
        site: &str,
        m: &'w Matrix,
        i: usize,
        x: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>, EngineError> {
        let faults = &self.step.opts.faults;
        let lane = self.step.lanes[i];
        let m = inject::weights(faults, self.il, site, lane, m, self.w(i))?;
        let mut y = self.step.matmul(lane.path, &m, x).await?;
        if let Some(b) = inject::bias(faults, self.il, site, lane, &m, bias)? {
            ops::add_bias(&mut y, b);
        }
        Ok(y)
    }

    /// Per-head q/k norms (Qwen 3, Gemma 3), RoPE, then softmax(q·kᵀ·scale)·v on each path, in
    /// that path's arithmetic. Every other path's arithmetic is also fed the reference's q, k
    /// and v (recorded with `attn_out`).
    fn attention(
        &mut self,
        q: &mut [Vec<f32>],
        k: &mut [Vec<f32>],
        v: &[Vec<f32>],
    ) -> Vec<Vec<f32>> {
        let (c, il) = (self.step.cfg, self.il);
        let (base, freq_scale) = c.rope_for(il);
        let positions = &self.step.positions;
        for (i, (q, k)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            let w = self.w(i);
            if let Some(qn) = &w.q_norm {
                *q = ops::rms_norm(q, c.head_dim, qn, c.rms_eps);
            }
            if let Some(kn) = &w.k_norm {
                *k = ops::rms_norm(k, c.head_dim, kn, c.rms_eps);
            }
            ops::rope(q, positions, c.n_head, c.head_dim, base, freq_scale, c.rope_style);
            ops::rope(k, positions, c.n_head_kv, c.head_dim, base, freq_scale, c.rope_style);
        }
        let att: Vec<Vec<f32>> = (self.step.lanes.iter().zip(q.iter()))
            .zip(k.iter().zip(v))
            .map(|((lane, q), (k, v))| self.attend(lane.path, q.clone(), k, v))
            .collect();
        let local = self.local_op(
            &att,
            c.n_head * c.head_dim,
            |p| self.attend(p, q[0].clone(), &k[0], &v[0]),
            |p| self.attend_exact(p, q[0].clone(), &k[0], &v[0]),
        );
        self.local.insert("attn_out", local);
        att
    }

    /// softmax(q·kᵀ·scale)·v in `path`'s arithmetic (f16 operands, where it scales q).
    fn attend(&self, path: PathKind, mut q: Vec<f32>, k: &[f32], v: &[f32]) -> Vec<f32> {
        let (c, il) = (self.step.cfg, self.il);
        let window = if c.is_swa(il) { c.sliding_window } else { None };
        let scale = path.prescale_q(c, &mut q);
        let (n, f16) = (self.step.probe.n_tokens, path.f16_attention());
        ops::attention(&q, k, v, n, c.n_head, c.n_head_kv, c.head_dim, scale, window, f16)
    }

    /// What `path`'s attention would give if its only difference from the reference were the
    /// rounding of its operands: q (scaled first where the path does), k and v rounded to f16,
    /// then the reference's f32 attention. `None` for paths that round none.
    fn attend_exact(
        &self,
        path: PathKind,
        mut q: Vec<f32>,
        k: &[f32],
        v: &[f32],
    ) -> Option<Vec<f32>> {
        if !path.f16_attention() {
            return None;
        }
        let (c, il) = (self.step.cfg, self.il);
        let window = if c.is_swa(il) { c.sliding_window } else { None };
        let scale = path.prescale_q(c, &mut q);
        let round = |x: &[f32]| -> Vec<f32> {
            x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
        };
        let n = self.step.probe.n_tokens;
        Some(ops::attention(
            &round(&q),
            &round(k),
            &round(v),
            n,
            c.n_head,
            c.n_head_kv,
            c.head_dim,
            scale,
            window,
            false,
        ))
    }

    /// A path-specific op other than a matmul: every other path's arithmetic, run by
    /// `op` on the reference's input, against the reference's output `outs[0]` (rows of
    /// `width`, compared over the run's scope): the site's `local` comparisons. Its
    /// noise is predicted by `exact`: the f32 op applied to the operands as a path rounds them
    /// (`None` where it rounds none, so its own output is the f32 op's). The prediction is the
    /// distance between the path's and the reference's, so either side may be the one that
    /// rounds, plus a floor of 2⁻¹⁰ of the output for what the op rounds inside (f16 softmax
    /// probabilities).
    fn local_op(
        &self,
        outs: &[Vec<f32>],
        width: usize,
        op: impl Fn(PathKind) -> Vec<f32>,
        exact: impl Fn(PathKind) -> Option<Vec<f32>>,
    ) -> OpAlone {
        const FLOOR: f64 = 1.0 / 1024.0;
        let s = self.step;
        let reference = s.probe.scoped(&outs[0], width);
        let reference_exact = exact(s.lanes[0].path);
        let reference_exact = reference_exact.as_deref().map(|e| s.probe.scoped(e, width));
        let (mut local, mut noise) = (IndexMap::new(), IndexMap::new());
        for (lane, id) in s.lanes.iter().zip(&s.probe.ids).skip(1) {
            let y = op(lane.path);
            let y = s.probe.scoped(&y, width);
            if let Some(c) = Compare::of(reference, y) {
                local.insert(id.clone(), c);
            }
            let path_exact = exact(lane.path);
            let path_exact = path_exact.as_deref().map(|e| s.probe.scoped(e, width));
            // What each side's rounding alone gives; a side that rounds nothing is its output.
            let rounded = match (path_exact, reference_exact) {
                (None, None) => None,
                (a, b) => Some((a.unwrap_or(y), b.unwrap_or(reference))),
            };
            // Each token's prediction on its own (on the pool's threads).
            let predicted: Vec<f64> = crate::map_indices(reference.len() / width.max(1), |t| {
                let rows = t * width..(t + 1) * width;
                let rounding: f64 = rounded.map_or(0.0, |(a, b)| {
                    a[rows.clone()]
                        .iter()
                        .zip(&b[rows.clone()])
                        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                        .sum()
                });
                let size: f64 = reference[rows].iter().map(|a| f64::from(*a).powi(2)).sum();
                rounding + FLOOR * FLOOR * size
            });
            let first = self.first_scoped_position(predicted.len());
            if let Some(n) = paths::noise_of(&predicted, reference, y, width, first) {
                noise.insert(id.clone(), n);
            }
        }
        (local, noise)
    }

    /// `resid += post_norm(m · x)` on every lane — attention's output projection and the FFN's
    /// down projection — probing the product, the post-norm (only where the architecture has
    /// one: Gemma 3) and the sum, as `sites` names them.
    async fn add_to_residual(
        &mut self,
        resid: &mut [Vec<f32>],
        [product, post, sum]: [&'static str; 3],
        m: MatrixOf,
        x: &[Vec<f32>],
        post_norm: OptionalVectorOf,
    ) -> Result<(), EngineError> {
        let n_embd = self.step.cfg.n_embd;
        let mut cur = self.mul(product, m, x).await?;
        self.record(product, &cur, n_embd);
        // Compatible files agree on which norms exist (the reference's file decides).
        if post_norm(self.w(0)).is_some() {
            let c = self.step.cfg;
            let norm = |(i, x): (usize, &Vec<f32>)| match post_norm(self.w(i)) {
                Some(pn) => ops::rms_norm(x, n_embd, pn, c.rms_eps),
                None => x.clone(),
            };
            cur = cur.iter().enumerate().map(norm).collect();
            self.record(post, &cur, n_embd);
        }
        for (r, c) in resid.iter_mut().zip(&cur) {
            ops::add_into(r, c);
        }
        self.record(sum, resid, n_embd);
        Ok(())
    }
}
