//! The paths — the only place they differ. Every per-path choice is a method of [`PathKind`]:
//!
//! * the matrix products ([`matmul`], [`matmul_async`]):
//!   * `f32`: weight rows dequantized (in tiles that stay in cache, never a whole matrix) and
//!     dotted with f32 activations.
//!   * `q8`: each activation row quantized once to the weight type's llama.cpp partner (Q8_K for
//!     k-quants, Q8_0 / Q8_1 for legacy types), then fused integer dots with the packed rows.
//!   * `gpu`: the packed rows uploaded to a WGSL kernel that dequantizes them in the shader and
//!     dots them with f32 activations (`parallax-gpu`, feature `gpu`); asynchronous, so only
//!     [`matmul_async`] runs it.
//! * attention's operands ([`PathKind::f16_attention`]) and where its scale is applied
//!   ([`PathKind::prescale_q`]),
//! * the FFN activation's arithmetic ([`PathKind::activate`]).
//!
//! `q8` follows llama.cpp's CPU backend in all of them; `f32` and `gpu` compute in f32.
//! Output element (token t, row r) of a matmul is computed by exactly one task in a fixed order,
//! so the result is the same whatever the number of threads.

use parallax_quant::GgmlType;
use parallax_report::LocalNoise;
use parallax_source::SourceBytes;

use crate::arch::{Activation, ArchConfig, ArchKind};
use crate::ops;
use crate::options::GpuSettings;
use crate::EngineError;

thread_local! {
    /// The f32 path's dequantized tile (at most `TILE_ROWS` rows), one per thread.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows dequantized at a time on the f32 path: 32 rows of a 4864-wide matrix are 608 KiB.
const TILE_ROWS: usize = 32;

/// Which arithmetic a path's matmuls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Dequantized weights, f32 activations.
    F32,
    /// llama.cpp CPU semantics: quantized activations, fused integer dots.
    Q8,
    /// WGSL kernels through wgpu: in-shader dequantization, f32 dots (feature `gpu`; without
    /// it, or without an adapter, a run drops this path and says why).
    Gpu,
}

impl PathKind {
    pub fn id(self) -> &'static str {
        match self {
            PathKind::F32 => "f32",
            PathKind::Q8 => "q8",
            PathKind::Gpu => "gpu",
        }
    }

    /// Whether the path also follows llama.cpp's CPU backend in the ops around the weight
    /// matmuls (f16 KV cache and attention operands, table GELU), not only in the matmuls.
    fn llamacpp_ops(self) -> bool {
        self == PathKind::Q8
    }

    /// Whether attention's two matmuls take f16 operands: K/V as llama.cpp's default f16 KV
    /// cache stores them, q and the softmax probabilities converted to f16 for the products.
    pub fn f16_attention(self) -> bool {
        self.llamacpp_ops()
    }

    /// The scale `ops::attention` applies to the scores on this path, after scaling `q` in place
    /// where the path follows a graph that does so: llama.cpp's Gemma 3 graph scales Q
    /// (ggml_scale) before the f16 KQ product and uses kq_scale 1; the other graphs scale the
    /// scores in the softmax. The two differ where q·scale falls into f16's subnormal range, so
    /// the f16 path follows the graph.
    pub(crate) fn prescale_q(self, cfg: &ArchConfig, q: &mut [f32]) -> f32 {
        if self.f16_attention() && cfg.kind == ArchKind::Gemma3 {
            q.iter_mut().for_each(|x| *x *= cfg.attn_scale);
            1.0
        } else {
            cfg.attn_scale
        }
    }

    /// The FFN activation of `gate` (rows of `n_ff`) as this path computes it.
    pub(crate) fn activate(self, act: Activation, gate: &[f32], n_ff: usize) -> Vec<f32> {
        match (act, self.llamacpp_ops()) {
            (Activation::Silu, false) => ops::silu_all(gate),
            // ggml_vec_swiglu_f32 (AVX-512): ggml_v_silu on whole 16-lane chunks of a row, the
            // scalar ggml_silu_f32 (libm expf) on the rest.
            (Activation::Silu, true) => ops::map_rows(gate, n_ff, ops::silu_ggml, ops::silu),
            (Activation::GeluTanh, false) => {
                ops::map_rows(gate, n_ff, ops::gelu_tanh, ops::gelu_tanh)
            }
            (Activation::GeluTanh, true) => {
                ops::map_rows(gate, n_ff, ops::gelu_tanh_f16_table, ops::gelu_tanh_f16_table)
            }
        }
    }

    /// What [`PathKind::activate`] would give if this path's only difference from the reference
    /// were the rounding of its input: the table GELU looks its input up as f16, so the exact
    /// GELU of the f16-rounded gate. `None` where the path rounds nothing (ggml's SiLU differs
    /// from libm's only in the last bits, inside the noise floor).
    pub(crate) fn exact_activation(
        self,
        act: Activation,
        gate: &[f32],
        n_ff: usize,
    ) -> Option<Vec<f32>> {
        match (act, self.llamacpp_ops()) {
            (Activation::GeluTanh, true) => {
                let rounded: Vec<f32> =
                    gate.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
                Some(PathKind::F32.activate(act, &rounded, n_ff))
            }
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<PathKind> {
        match s {
            "f32" => Some(PathKind::F32),
            "q8" => Some(PathKind::Q8),
            "gpu" => Some(PathKind::Gpu),
            _ => None,
        }
    }
}

/// A weight matrix of `rows` output rows × `cols` inputs, as stored in the file.
#[derive(Clone)]
pub struct Matrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub storage: Storage,
}

#[derive(Clone)]
pub enum Storage {
    /// GGML bytes, `row_bytes` per row: as the source lent them (natively, the file's mapped pages).
    Ggml { ty: GgmlType, bytes: SourceBytes, row_bytes: usize },
    /// Types without a llama.cpp kernel (APR-Q4/Q8): dequantized at load, both paths use f32.
    F32 { values: Vec<f32>, from: String },
}

impl Matrix {
    /// How `path` multiplies this matrix, for the report.
    pub fn kernel_label(&self, path: PathKind) -> String {
        match (&self.storage, path) {
            (Storage::Ggml { ty, .. }, PathKind::F32) => format!("{ty} dequantized → f32 dot"),
            (Storage::Ggml { ty, .. }, PathKind::Q8) => match ty.vec_dot_type() {
                Some(GgmlType::F32) => format!("{ty} × F32 dot"),
                Some(act) => format!("{ty} × {act} fused dot"),
                None => format!("{ty} dequantized → f32 dot (no llama.cpp pairing)"),
            },
            #[cfg(feature = "gpu")]
            (Storage::Ggml { ty, .. }, PathKind::Gpu) => parallax_gpu::kernel_label(*ty),
            #[cfg(not(feature = "gpu"))]
            (Storage::Ggml { ty, .. }, PathKind::Gpu) => {
                format!("{ty}: no GPU kernels in this build")
            }
            (Storage::F32 { from, .. }, PathKind::Gpu) => {
                format!("{from} dequantized on the CPU, uploaded as f32 → f32 dot (WGSL)")
            }
            (Storage::F32 { from, .. }, _) => {
                format!("{from} dequantized → f32 dot (no llama.cpp kernel)")
            }
        }
    }
}

/// `m` as a report names it beside a site: its name, its type in the file, rows × columns.
pub(crate) fn site_tensor(m: &Matrix) -> parallax_report::SiteTensor {
    let ty = match &m.storage {
        Storage::Ggml { ty, .. } => ty.to_string(),
        Storage::F32 { from, .. } => from.clone(),
    };
    parallax_report::SiteTensor {
        name: m.name.clone(),
        ty,
        rows: m.rows as u64,
        cols: m.cols as u64,
    }
}

/// The GPU the `gpu` path runs on: a wgpu device with the feature, nothing without it.
#[cfg(feature = "gpu")]
pub type Gpu = parallax_gpu::GpuMatmul;
#[cfg(not(feature = "gpu"))]
pub enum Gpu {}

#[cfg(feature = "gpu")]
pub(crate) async fn open_gpu(settings: &GpuSettings) -> Result<Gpu, String> {
    if settings.disabled {
        return Err("the GPU was switched off for this run".into());
    }
    parallax_gpu::GpuMatmul::new().await.map_err(|e| e.to_string())
}

#[cfg(not(feature = "gpu"))]
pub(crate) async fn open_gpu(_settings: &GpuSettings) -> Result<Gpu, String> {
    Err("this build of Parallax has no GPU support (the engine's `gpu` feature)".into())
}

#[cfg(feature = "gpu")]
pub(crate) fn gpu_record(gpu: &Gpu) -> parallax_report::GpuRecord {
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
pub(crate) fn gpu_record(gpu: &Gpu) -> parallax_report::GpuRecord {
    match *gpu {}
}

/// Where the `gpu` path's ops run.
pub const GPU_PLACEMENT: &str =
    "matmuls (weights dequantized in the shader, f32 dots) on the GPU; embedding lookup, \
     norms, RoPE, attention and activations on the CPU, in f32 as on the f32 path";

/// [`matmul`] for every path, `gpu` included (on `gpu`, which must be `Some` for that path).
/// A GPU failure is [`EngineError::GpuUnavailable`]: the run goes on without the path.
pub async fn matmul_async(
    path: PathKind,
    m: &Matrix,
    x: &[f32],
    n_tokens: usize,
    gpu: Option<&Gpu>,
) -> Result<Vec<f32>, EngineError> {
    if path != PathKind::Gpu {
        return matmul(path, m, x, n_tokens);
    }
    let Some(gpu) = gpu else {
        return Err(EngineError::GpuUnavailable { reason: "the GPU was not opened".into() });
    };
    #[cfg(feature = "gpu")]
    {
        let result = match &m.storage {
            Storage::Ggml { ty, bytes, .. } => {
                gpu.matmul(*ty, bytes, m.rows, m.cols, x, n_tokens).await
            }
            Storage::F32 { values, .. } => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                gpu.matmul(GgmlType::F32, &bytes, m.rows, m.cols, x, n_tokens).await
            }
        };
        result.map_err(|e| EngineError::GpuUnavailable {
            reason: format!("tensor `{}`: {e}", m.name),
        })
    }
    #[cfg(not(feature = "gpu"))]
    match *gpu {}
}

/// The `f32` path's `m · x` (as [`matmul`]) and, from the same dequantized tiles, the weights'
/// column energies ([`column_energy`]) — the local-noise prediction's one pass over the weights,
/// made free where the reference dequantizes anyway.
pub(crate) fn matmul_f32_with_column_energy(
    m: &Matrix,
    x: &[f32],
    n_tokens: usize,
) -> Result<(Vec<f32>, Vec<f64>), EngineError> {
    let Storage::Ggml { ty, bytes, row_bytes } = &m.storage else {
        return Ok((matmul(PathKind::F32, m, x, n_tokens)?, column_energy(m)?));
    };
    let mut by_row = vec![0f32; m.rows * n_tokens];
    let tokens: Vec<&[f32]> = x.chunks_exact(m.cols.max(1)).collect();
    let outs = by_row.chunks_mut(TILE_ROWS * n_tokens);
    let energy = tiles_with_column_sums(outs, m.cols, |i, out, energy| {
        let (r0, n_rows) = (i * TILE_ROWS, out.len() / n_tokens);
        let src = &bytes[r0 * row_bytes..(r0 + n_rows) * row_bytes];
        with_dequantized_tile_and_energy(m, *ty, *row_bytes, src, Some(energy), |tile| {
            parallax_quant::dot::vec_dot_f32_rows_tokens(tile, m.cols, &tokens, out)
                .map_err(|e| quant_error(m, e))
        })
    })?;
    Ok((ops::transpose(&by_row, m.rows, n_tokens), energy))
}

/// Whether `lanes` are the lockstep pair [`matmul_f32_and_q8`] serves: the `f32` reference and
/// the `q8` path, on one file.
pub(crate) fn f32_and_q8_lanes(lanes: &[crate::options::Lane]) -> bool {
    matches!(lanes, [a, b] if a.path == PathKind::F32 && b.path == PathKind::Q8 && a.file == b.file)
}

/// [`matmul_f32_with_column_energy`] of `x` and, on the same tiles of weight rows while they
/// are in cache, [`matmul`]`(PathKind::Q8, m, q8_x, …)`: each output element is computed by the
/// same kernel from the same bytes as in the two products apart, so the results are theirs bit
/// for bit, for one pass over the weights instead of two (a lockstep run of the `f32` and `q8`
/// paths on one file multiplies every matrix on both). `None` where the two products apart are
/// what runs: weights the `q8` path multiplies in f32, or not in a GGML type.
#[allow(clippy::type_complexity)]
pub(crate) fn matmul_f32_and_q8(
    m: &Matrix,
    x: &[f32],
    q8_x: &[f32],
) -> Option<Result<(Vec<f32>, Vec<f64>, Vec<f32>), EngineError>> {
    let Storage::Ggml { ty, bytes, row_bytes } = &m.storage else { return None };
    if *ty == GgmlType::F32 || ty.vec_dot_type().is_none_or(|a| a == GgmlType::F32) {
        return None;
    }
    let cols = m.cols.max(1);
    let (n_f32, n_q8) = (x.len() / cols, q8_x.len() / cols);
    if n_f32 == 0 || n_q8 == 0 {
        return None;
    }
    let result = (|| {
        let acts = q8_activations(m, *ty, q8_x, n_q8)?;
        let q8_tokens = parallax_quant::dot::TokenActivations::new(*ty, &acts)
            .map_err(|e| quant_error(m, e))?;
        let f32_tokens: Vec<&[f32]> = x.chunks_exact(cols).collect();
        let mut by_row = vec![0f32; m.rows * n_f32];
        let mut q8_by_row = vec![0f32; m.rows * n_q8];
        let (f32_chunk, q8_chunk) = (TILE_ROWS * n_f32, TILE_ROWS * n_q8);
        let outs = by_row.chunks_mut(f32_chunk).zip(q8_by_row.chunks_mut(q8_chunk));
        let energy = tiles_with_column_sums(outs, m.cols, |i, (out, q8_out), energy| {
            let n_rows = q8_out.len() / n_q8;
            let r0 = i * TILE_ROWS;
            let src = &bytes[r0 * row_bytes..(r0 + n_rows) * row_bytes];
            // Which product goes first is measured, not derived (session 21, 7 tokens): the
            // 32-value formats' f32 pass waits on memory for the weights, which the q8 product
            // then finds in cache (the 0.5B, 1 thread: −9.5 % against the two products apart);
            // the k-quants' q8 product first, else the 7B-shaped model on 2 threads ran 4 %
            // slower than apart (its Q4_K dots 13 % slower after the f32 pass's tile), and
            // the 0.5B gained less.
            let q8_first = ty.block_size() != 32;
            if q8_first {
                q8_tokens.dot_rows(src, q8_out).map_err(|e| quant_error(m, e))?;
            }
            with_dequantized_tile_and_energy(m, *ty, *row_bytes, src, Some(energy), |tile| {
                parallax_quant::dot::vec_dot_f32_rows_tokens(tile, m.cols, &f32_tokens, out)
                    .map_err(|e| quant_error(m, e))
            })?;
            if !q8_first {
                q8_tokens.dot_rows(src, q8_out).map_err(|e| quant_error(m, e))?;
            }
            Ok(())
        })?;
        Ok((
            ops::transpose(&by_row, m.rows, n_f32),
            energy,
            ops::transpose(&q8_by_row, m.rows, n_q8),
        ))
    })();
    Some(result)
}

/// `x`'s `n_tokens` rows quantized each on its own (on the pool's threads) to `ty`'s llama.cpp
/// partner: llama.cpp as built for x86 (AVX2/AVX-512), its Q8_0/Q8_1 rounding.
fn q8_activations(
    m: &Matrix,
    ty: GgmlType,
    x: &[f32],
    n_tokens: usize,
) -> Result<Vec<parallax_quant::Activation>, EngineError> {
    let quantize = |t: usize| {
        let row = &x[t * m.cols..(t + 1) * m.cols];
        parallax_quant::quantize_activation_with(ty, row, parallax_quant::Q8Rounding::X86)
    };
    crate::map_indices(n_tokens, quantize)
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| quant_error(m, e))
}

/// `x` is `n_tokens` rows of `m.cols`; returns `n_tokens` rows of `m.rows`. The `gpu` path is
/// asynchronous: see [`matmul_async`].
pub fn matmul(
    path: PathKind,
    m: &Matrix,
    x: &[f32],
    n_tokens: usize,
) -> Result<Vec<f32>, EngineError> {
    debug_assert_eq!(x.len(), n_tokens * m.cols);
    // Computed as rows × tokens (each tile owns a contiguous block), transposed at the end.
    if path == PathKind::Gpu {
        return Err(EngineError::GpuUnavailable {
            reason: "the gpu path needs the asynchronous run".into(),
        });
    }
    let mut by_row = vec![0f32; m.rows * n_tokens];
    let tokens: Vec<&[f32]> = x.chunks_exact(m.cols.max(1)).collect();
    match (&m.storage, path) {
        (Storage::F32 { values, .. }, _) => {
            for_each_tile(&mut by_row, n_tokens, |r0, out| {
                let n_rows = out.len() / n_tokens;
                let w = &values[r0 * m.cols..(r0 + n_rows) * m.cols];
                parallax_quant::dot::vec_dot_f32_rows_tokens(w, m.cols, &tokens, out)
                    .map_err(|e| quant_error(m, e))
            })?;
        }
        // F32 weights pair with F32 activations on `q8` too (llama.cpp's `vec_dot_type`), so
        // that path's product is the f32 path's, and takes its rows × tokens kernels.
        (Storage::Ggml { ty, bytes, row_bytes }, PathKind::F32 | PathKind::Gpu)
        | (Storage::Ggml { ty: ty @ GgmlType::F32, bytes, row_bytes }, PathKind::Q8) => {
            for_each_tile(&mut by_row, n_tokens, |r0, out| {
                let n_rows = out.len() / n_tokens;
                let src = &bytes[r0 * row_bytes..(r0 + n_rows) * row_bytes];
                with_dequantized_tile(m, *ty, *row_bytes, src, |tile| {
                    parallax_quant::dot::vec_dot_f32_rows_tokens(tile, m.cols, &tokens, out)
                        .map_err(|e| quant_error(m, e))
                })
            })?;
        }
        (Storage::Ggml { ty, bytes, row_bytes }, PathKind::Q8) => {
            let acts = q8_activations(m, *ty, x, n_tokens)?;
            let tokens = parallax_quant::dot::TokenActivations::new(*ty, &acts)
                .map_err(|e| quant_error(m, e))?;
            for_each_tile(&mut by_row, n_tokens, |r0, out| {
                let n_rows = out.len() / n_tokens;
                // Every token at once: each weight block is decoded once, not once a token.
                let w = &bytes[r0 * row_bytes..(r0 + n_rows) * row_bytes];
                tokens.dot_rows(w, out).map_err(|e| quant_error(m, e))
            })?;
        }
    }
    Ok(ops::transpose(&by_row, m.rows, n_tokens))
}

/// `f` on the rows `src` of `m` (raw `ty` bytes, whole rows of `row_bytes`) dequantized into
/// this thread's tile buffer.
fn with_dequantized_tile<R>(
    m: &Matrix,
    ty: GgmlType,
    row_bytes: usize,
    src: &[u8],
    f: impl FnOnce(&[f32]) -> Result<R, EngineError>,
) -> Result<R, EngineError> {
    with_dequantized_tile_and_energy(m, ty, row_bytes, src, None, f)
}

/// [`with_dequantized_tile`], also adding the tile's column energies into `sums` where given
/// ([`add_tile_energy`]): a few rows at a time, each group squared right after it is
/// dequantized, while it is in L1 — a pass over the whole tile afterwards read it from L2 (5 %
/// of a 7-token run of the 0.5B). Rows still add in order, so the sums are the same.
fn with_dequantized_tile_and_energy<R>(
    m: &Matrix,
    ty: GgmlType,
    row_bytes: usize,
    src: &[u8],
    sums: Option<&mut [f32]>,
    f: impl FnOnce(&[f32]) -> Result<R, EngineError>,
) -> Result<R, EngineError> {
    /// Rows of f32 a group may take: 16 KiB, a third of a 48 KiB L1.
    const GROUP_BYTES: usize = 16 * 1024;
    let n = src.len() / row_bytes * m.cols;
    // One tile buffer per thread, reused: a fresh 0.6 MB allocation per tile was mapped,
    // faulted in and zeroed every time (a tenth of a run's time).
    TILE.with(|tile| {
        let mut tile = tile.borrow_mut();
        tile.resize(n, 0.0);
        let tile = &mut tile[..n];
        match sums {
            Some(sums) if m.cols > 0 => {
                let rows = (GROUP_BYTES / (4 * m.cols)).clamp(1, 4);
                for (src, dst) in src.chunks(rows * row_bytes).zip(tile.chunks_mut(rows * m.cols)) {
                    parallax_quant::dequantize(ty, src, dst).map_err(|e| quant_error(m, e))?;
                    add_tile_energy(dst, m.cols, sums);
                }
            }
            _ => parallax_quant::dequantize(ty, src, tile).map_err(|e| quant_error(m, e))?,
        }
        f(tile)
    })
}

/// Add the column energies of `tile` (rows of `cols`, at most `TILE_ROWS`) into the tile's
/// `sums`: squares added in f32 row after row, each column on its own — the same sums whichever
/// function computes them. Across tiles they are added in f64 ([`tiles_with_column_sums`],
/// [`column_energy`]).
fn add_tile_energy(tile: &[f32], cols: usize, sums: &mut [f32]) {
    // With AVX-512 the lanes are wider (AVX2 where it is missing); the code has no FMA to
    // contract.
    parallax_quant::with_avx512!(add_tile_energy_lanes(tile, cols, sums))
}

#[inline(always)]
fn add_tile_energy_lanes(tile: &[f32], cols: usize, sums: &mut [f32]) {
    let sums = &mut sums[..cols];
    // Four rows per pass over the sums, each column's squares still added row after row: the
    // same sums as one row a pass, with a quarter of the loads and stores of `sums` (which
    // bound the one-row loop).
    let mut quads = tile.chunks_exact(4 * cols);
    for quad in quads.by_ref() {
        let (r0, rest) = quad.split_at(cols);
        let (r1, rest) = rest.split_at(cols);
        let (r2, r3) = rest.split_at(cols);
        for ((((c, a), b), d), e) in sums.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *c = *c + a * a + b * b + d * d + e * e;
        }
    }
    for row in quads.remainder().chunks_exact(cols) {
        for (c, w) in sums.iter_mut().zip(row) {
            *c += w * w;
        }
    }
}

/// The input row as `path`'s kernel multiplies it: quantized per block or converted to the
/// weight type's llama.cpp partner on `q8` (the rounding [`matmul`] applies), `None` where the
/// path multiplies f32 values as they are.
pub(crate) fn kernel_input(
    path: PathKind,
    m: &Matrix,
    row: &[f32],
) -> Result<Option<Vec<f32>>, EngineError> {
    match (&m.storage, path) {
        (Storage::Ggml { ty, .. }, PathKind::Q8)
            if ty.vec_dot_type().is_some_and(|a| a != GgmlType::F32) =>
        {
            let a =
                parallax_quant::quantize_activation_with(*ty, row, parallax_quant::Q8Rounding::X86)
                    .map_err(|e| quant_error(m, e))?;
            Ok(Some(a.values()))
        }
        _ => Ok(None),
    }
}

/// The f32 summation floor of the predicted local noise, per unit of `Σ_i c_i x_i²`, for a dot
/// product of `n` terms: `(4u)²·n`, `u = 2⁻²⁴` — a random walk of one rounding per addition,
/// with a 4× allowance for different summation orders.
fn f32_floor_scale(n: usize) -> f64 {
    const UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;
    (4.0 * UNIT_ROUNDOFF).powi(2) * n as f64
}

/// [`LocalNoise`] from each token's predicted error energy, against the measured local result
/// `y` (rows of `width`, the rows in scope, as `reference`; the first at prompt position
/// `first_position`).
pub(crate) fn noise_of(
    predicted: &[f64],
    reference: &[f32],
    y: &[f32],
    width: usize,
    first_position: u32,
) -> Option<LocalNoise> {
    let (mut predicted_sum, mut reference_sum) = (0f64, 0f64);
    let mut worst: Option<(f64, u32)> = None;
    // Each row's two sums on its own (on the pool's threads), then combined in row order.
    let width = width.max(1);
    let n = predicted.len().min(reference.len() / width).min(y.len() / width);
    let row_sums = crate::map_indices(n, |t| {
        let (rr, yr) = (&reference[t * width..(t + 1) * width], &y[t * width..(t + 1) * width]);
        let measured: f64 =
            rr.iter().zip(yr).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
        (measured, rr.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>())
    });
    for (t, ((measured, reference_row), &predicted)) in
        row_sums.into_iter().zip(predicted).enumerate()
    {
        if !measured.is_finite() || !predicted.is_finite() {
            return None;
        }
        predicted_sum += predicted;
        reference_sum += reference_row;
        let ratio = if predicted > 0.0 {
            (measured / predicted).sqrt()
        } else if measured > 0.0 {
            f64::MAX
        } else {
            0.0
        };
        if worst.is_none_or(|(w, _)| ratio > w) {
            worst = Some((ratio, first_position + t as u32));
        }
    }
    let (ratio, position) = worst?;
    let predicted_rel_l2 =
        if reference_sum > 0.0 { (predicted_sum / reference_sum).sqrt() } else { 0.0 };
    Some(LocalNoise { predicted_rel_l2, ratio, position })
}

/// `c_i = Σ_r W_ri²` for every input column `i` of the dequantized weights, in the row tiles
/// the `f32` path uses ([`add_tile_energy`]), so the sums equal those of
/// [`matmul_f32_with_column_energy`].
pub(crate) fn column_energy(m: &Matrix) -> Result<Vec<f64>, EngineError> {
    match &m.storage {
        Storage::F32 { values, .. } => {
            let tiles = values.chunks(TILE_ROWS * m.cols.max(1));
            tiles_with_column_sums(tiles, m.cols, |_, tile, sums| {
                add_tile_energy(tile, m.cols, sums);
                Ok(())
            })
        }
        Storage::Ggml { ty, bytes, row_bytes } => {
            let tiles = bytes.chunks(TILE_ROWS * row_bytes);
            tiles_with_column_sums(tiles, m.cols, |_, src, sums| {
                with_dequantized_tile_and_energy(m, *ty, *row_bytes, src, Some(sums), |_| Ok(()))
            })
        }
    }
}

/// The predicted local-noise energy of one token between a path and the reference:
/// `Σ_i c_i (e_i² + floor · x_i²)`, with `e` the difference of the input row `x` as each side's
/// kernel sees it ([`kernel_input`]: `None` where a side multiplies f32 values as they are) and
/// the f32 summation floor of [`f32_floor_scale`].
pub(crate) fn predicted_energy(
    columns: &[f64],
    x: &[f32],
    path_view: Option<&[f32]>,
    reference_view: Option<&[f32]>,
) -> f64 {
    let floor = f32_floor_scale(x.len());
    let view = |v: Option<&[f32]>, i: usize| f64::from(v.map_or(x[i], |v| v[i]));
    let mut energy = 0f64;
    for (i, (&xi, &ci)) in x.iter().zip(columns).enumerate() {
        let xi = f64::from(xi);
        let e = view(path_view, i) - view(reference_view, i);
        energy += ci * (e * e + floor * xi * xi);
    }
    energy
}

fn quant_error(m: &Matrix, e: parallax_quant::QuantError) -> EngineError {
    EngineError::Kernel { tensor: m.name.clone(), error: e }
}

/// `f(i, item, sums)` for every tile `i` (`item`: its share of the outputs), in parallel when
/// the `parallel` feature is on; `sums` (`width` f32, zeroed) takes the tile's column sums, which
/// are widened to f64 and added into the total in tile order — the same totals whatever the
/// threads. All tiles' sums live in one buffer (an eighth of the matrix's size in f32), where
/// each tile had allocated a vector of f64.
fn tiles_with_column_sums<T: Send>(
    items: impl Iterator<Item = T>,
    width: usize,
    f: impl Fn(usize, T, &mut [f32]) -> Result<(), EngineError> + Sync,
) -> Result<Vec<f64>, EngineError> {
    let slot = width.max(1);
    let items: Vec<(usize, T)> = items.enumerate().collect();
    let mut slots = vec![0f32; items.len() * slot];
    let run = |((i, item), sums): ((usize, T), &mut [f32])| f(i, item, &mut sums[..width]);
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.into_par_iter().zip(slots.par_chunks_mut(slot)).try_for_each(run)?;
    }
    #[cfg(not(feature = "parallel"))]
    items.into_iter().zip(slots.chunks_mut(slot)).try_for_each(run)?;
    let mut total = vec![0f64; width];
    for sums in slots.chunks_exact(slot) {
        total.iter_mut().zip(sums).for_each(|(t, s)| *t += f64::from(*s));
    }
    Ok(total)
}

/// Run `f(first_row, block)` over blocks of `TILE_ROWS` rows (each `TILE_ROWS × n_tokens`
/// values of `by_row`), in parallel when the `parallel` feature is on.
fn for_each_tile<F>(by_row: &mut [f32], n_tokens: usize, f: F) -> Result<(), EngineError>
where
    F: Fn(usize, &mut [f32]) -> Result<(), EngineError> + Sync + Send,
{
    let chunk = TILE_ROWS * n_tokens;
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        by_row.par_chunks_mut(chunk).enumerate().try_for_each(|(i, block)| f(i * TILE_ROWS, block))
    }
    #[cfg(not(feature = "parallel"))]
    {
        by_row.chunks_mut(chunk).enumerate().try_for_each(|(i, block)| f(i * TILE_ROWS, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q8_0_matrix(rows: usize, cols: usize, seed: u32) -> (Matrix, Vec<f32>) {
        // Quantize a deterministic f32 matrix to Q8_0 with the activation quantizer (same block
        // layout as Q8_0 weights), and keep its dequantized values.
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let values: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
        let mut bytes = Vec::new();
        for row in values.chunks_exact(cols) {
            let mut blocks =
                vec![parallax_quant::BlockQ8_0 { d: half::f16::ZERO, qs: [0; 32] }; cols / 32];
            parallax_quant::quantize_row_q8_0(row, &mut blocks);
            for b in &blocks {
                bytes.extend_from_slice(&b.d.to_le_bytes());
                bytes.extend(b.qs.iter().map(|&q| q as u8));
            }
        }
        let mut deq = vec![0f32; rows * cols];
        parallax_quant::dequantize(GgmlType::Q8_0, &bytes, &mut deq).unwrap();
        let row_bytes = cols / 32 * 34;
        (
            Matrix {
                name: "w".into(),
                rows,
                cols,
                storage: Storage::Ggml { ty: GgmlType::Q8_0, bytes: bytes.into(), row_bytes },
            },
            deq,
        )
    }

    #[test]
    fn f32_path_is_dequantized_matmul_and_q8_path_is_close() {
        let (m, w) = q8_0_matrix(70, 64, 7);
        let x: Vec<f32> = (0..3 * 64).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let f = matmul(PathKind::F32, &m, &x, 3).unwrap();
        for t in 0..3 {
            for r in 0..70 {
                let want: f32 = parallax_quant::dot::vec_dot_f32(
                    &w[r * 64..(r + 1) * 64],
                    &x[t * 64..(t + 1) * 64],
                );
                assert_eq!(f[t * 70 + r], want, "t {t} r {r}");
            }
        }
        let q = matmul(PathKind::Q8, &m, &x, 3).unwrap();
        let err: f32 = f.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let scale: f32 = f.iter().map(|a| a.abs()).fold(0.0, f32::max);
        assert!(err > 0.0 && err < 0.02 * scale, "q8 path differs by {err} (scale {scale})");
    }

    /// A `rows × cols` matrix of `ty` from deterministic bytes, each block's f16 scales set to
    /// small finite values (`scales`: their byte offsets in a block of `block_bytes`).
    fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u32) -> Matrix {
        let (block_values, block_bytes, scales): (usize, usize, &[usize]) = match ty {
            GgmlType::Q8_0 => (32, 34, &[0]),
            GgmlType::Q5_0 => (32, 22, &[0]),
            GgmlType::Q4_K => (256, 144, &[0, 2]),
            GgmlType::Q6_K => (256, 210, &[208]),
            other => panic!("no layout for {other:?}"),
        };
        let mut s = seed;
        let mut bytes: Vec<u8> = (0..rows * cols / block_values * block_bytes)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as u8
            })
            .collect();
        for (k, block) in bytes.chunks_exact_mut(block_bytes).enumerate() {
            for &at in scales {
                let d = half::f16::from_f32(0.001 + (k % 13) as f32 * 0.0007);
                block[at..at + 2].copy_from_slice(&d.to_le_bytes());
            }
        }
        Matrix {
            name: "w".into(),
            rows,
            cols,
            storage: Storage::Ggml {
                ty,
                bytes: bytes.into(),
                row_bytes: cols / block_values * block_bytes,
            },
        }
    }

    /// Both lanes' products in one pass over the weight tiles are the two products apart, bit
    /// for bit — the outputs and the column energies — for each pairing of the q8 path (Q8_0,
    /// Q8_1 and Q8_K activations), with rows that do not fill the last tile.
    #[test]
    fn f32_and_q8_in_one_pass_equal_the_two_products() {
        for ty in [GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            let (rows, cols) = (2 * TILE_ROWS + 7, 512);
            let m = random_matrix(ty, rows, cols, 99);
            let x: Vec<f32> =
                (0..3 * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let q8_x: Vec<f32> =
                (0..5 * cols).map(|i| ((i * 53 % 89) as f32 - 44.0) / 17.0).collect();
            let (y, energy, q8_y) = matmul_f32_and_q8(&m, &x, &q8_x).expect("fused").unwrap();
            let (want_y, want_energy) = matmul_f32_with_column_energy(&m, &x, 3).unwrap();
            let want_q8 = matmul(PathKind::Q8, &m, &q8_x, 5).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want_y), "{ty:?}: the f32 product");
            assert_eq!(bits(&q8_y), bits(&want_q8), "{ty:?}: the q8 product");
            let e = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(e(&energy), e(&want_energy), "{ty:?}: the column energies");
            assert!(y.iter().chain(&q8_y).any(|v| *v != 0.0), "{ty:?}: all zero");
        }
        // F32 weights: the q8 path's product is the f32 one, and nothing is fused.
        let f32_m = Matrix {
            name: "w".into(),
            rows: 4,
            cols: 32,
            storage: Storage::Ggml {
                ty: GgmlType::F32,
                bytes: vec![0u8; 4 * 32 * 4].into(),
                row_bytes: 128,
            },
        };
        assert!(matmul_f32_and_q8(&f32_m, &[0.0; 32], &[0.0; 32]).is_none());
    }

    /// The column energies equal squares added row after row in f32 into the tile's sums, bit
    /// for bit, for every row count (whole groups of four rows and the rows left over).
    #[test]
    fn tile_energy_adds_each_columns_squares_in_row_order() {
        let cols = 37;
        let mut s = 12345u32;
        let tile: Vec<f32> = (0..11 * cols)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 1e3
            })
            .collect();
        for rows in 0..=11 {
            let mut got = vec![0.25f32; cols];
            add_tile_energy(&tile[..rows * cols], cols, &mut got);
            for c in 0..cols {
                let mut sum = 0.25f32;
                for r in 0..rows {
                    let w = tile[r * cols + c];
                    sum += w * w;
                }
                assert_eq!(got[c].to_bits(), sum.to_bits(), "{rows} rows, col {c}");
            }
        }
    }

    /// Tiles' column sums are added in f64 in tile order, each tile starting from zeroed sums,
    /// and its outputs are its own; a tile's error is returned.
    #[test]
    fn column_sums_add_in_tile_order() {
        let (n_tiles, width) = (133, 3);
        let value = |i: usize, c: usize| ((i * 7 + c * 13) % 17) as f32 * 0.1 + 1e-7 * i as f32;
        let mut outs = vec![0usize; n_tiles];
        let total = tiles_with_column_sums(outs.iter_mut(), width, |i, out, sums| {
            assert!(sums.iter().all(|&s| s == 0.0), "tile {i}: sums not zeroed");
            for (c, s) in sums.iter_mut().enumerate() {
                *s += value(i, c);
            }
            *out = i + 1;
            Ok(())
        })
        .unwrap();
        let mut want = vec![0f64; width];
        for i in 0..n_tiles {
            for (c, w) in want.iter_mut().enumerate() {
                *w += f64::from(value(i, c));
            }
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&total), bits(&want));
        assert_eq!(outs, (1..=n_tiles).collect::<Vec<_>>());
        let failed = tiles_with_column_sums(0..n_tiles, width, |i, _, _| {
            if i == 65 {
                Err(EngineError::NoPrompt)
            } else {
                Ok(())
            }
        });
        assert!(failed.is_err());
    }
}
