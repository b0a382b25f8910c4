//! Fused dot products: the checked entry points ([`vec_dot`], [`matvec`]) and the per-pairing
//! dispatchers that pick the fastest available twin (AVX2 / simd128) or fall back to the
//! scalar reference in [`crate::generic`].
//!
//! The per-pairing functions check nothing (see `generic.rs`); only [`vec_dot`] and [`matvec`]
//! validate types and lengths, once per call, so the inner loops stay branch-free.

use crate::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};
use crate::generic;
use crate::{GgmlType, QuantError};
use half::{bf16, f16};

/// A quantized (or converted) activation row, in the type llama.cpp's CPU backend pairs with a
/// weight type (see [`GgmlType::vec_dot_type`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8K(Vec<BlockQ8K>),
}

impl Activation {
    /// Number of values the row holds.
    pub fn n_values(&self) -> usize {
        match self {
            Activation::F32(v) => v.len(),
            Activation::F16(v) => v.len(),
            Activation::BF16(v) => v.len(),
            Activation::Q8_0(v) => v.len() * QK,
            Activation::Q8_1(v) => v.len() * QK,
            Activation::Q8K(v) => v.len() * QK_K,
        }
    }

    /// The values the fused dot products multiply: the row as quantized (`qs · d`) or
    /// converted. `Q8_1`'s block sum `s` is a derived term and not among them.
    pub fn values(&self) -> Vec<f32> {
        match self {
            Activation::F32(v) => v.clone(),
            Activation::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Activation::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Activation::Q8_0(v) => v
                .iter()
                .flat_map(|b| {
                    let d = b.d.to_f32();
                    b.qs.iter().map(move |&q| q as f32 * d)
                })
                .collect(),
            Activation::Q8_1(v) => v
                .iter()
                .flat_map(|b| {
                    let d = b.d.to_f32();
                    b.qs.iter().map(move |&q| q as f32 * d)
                })
                .collect(),
            Activation::Q8K(v) => {
                v.iter().flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d)).collect()
            }
        }
    }

    /// The GGML type of the row.
    pub fn ty(&self) -> GgmlType {
        match self {
            Activation::F32(_) => GgmlType::F32,
            Activation::F16(_) => GgmlType::F16,
            Activation::BF16(_) => GgmlType::BF16,
            Activation::Q8_0(_) => GgmlType::Q8_0,
            Activation::Q8_1(_) => GgmlType::Q8_1,
            Activation::Q8K(_) => GgmlType::Q8_K,
        }
    }
}

// ---- per-pairing dispatchers (unchecked; same signatures as `generic`) ----

/// One dispatcher per kernel: the AVX2 twin when the CPU has it, the simd128 twin in a wasm
/// build with simd128 (for the kernels marked `, simd128`), else the scalar reference in
/// `generic`. The twins share the reference's name and signature, and `tests/simd_parity.rs`
/// holds each to it bit for bit.
macro_rules! dispatch {
    (@one $name:ident($x:ident: $xt:ty, $y:ident: $yt:ty) $($simd:ident)?) => {
        pub fn $name($x: $xt, $y: $yt) -> f32 {
            #[cfg(target_arch = "x86_64")]
            if crate::avx2::available() {
                // SAFETY: the CPU features the kernel needs were detected at runtime.
                return unsafe { crate::avx2::$name($x, $y) };
            }
            $(
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                if crate::$simd::available() {
                    return crate::$simd::$name($x, $y);
                }
            )?
            generic::$name($x, $y)
        }
    };
    ($($name:ident($x:ident: $xt:ty, $y:ident: $yt:ty) $(, $simd:ident)?;)*) => {
        $(dispatch!(@one $name($x: $xt, $y: $yt) $($simd)?);)*
    };
}

dispatch! {
    vec_dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]), simd128;
    vec_dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]), simd128;
    vec_dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]), simd128;
    vec_dot_q5_1_q8_1(w: &[u8], a: &[BlockQ8_1]), simd128;
    vec_dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]), simd128;
    vec_dot_iq4_nl_q8_0(w: &[u8], a: &[BlockQ8_0]), simd128;
    vec_dot_q2_k_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_q3_k_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_q5_k_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_iq4_xs_q8_k(w: &[u8], a: &[BlockQ8K]), simd128;
    vec_dot_f32(a: &[f32], b: &[f32]), simd128;
    // No simd128 twin: wasm uses the scalar code for the half-precision weights.
    vec_dot_f16(w: &[u8], a: &[f16]);
    vec_dot_bf16(w: &[u8], a: &[bf16]);
}

// ---- checked entry points ----

/// Checks that weights of type `ty` can be dotted with `a` and returns the weight bytes one
/// row of `a.n_values()` values takes.
fn row_bytes(ty: GgmlType, a: &Activation) -> Result<usize, QuantError> {
    let want =
        ty.vec_dot_type().ok_or(QuantError::Unsupported { ty, what: "fused dot product" })?;
    if a.ty() != want {
        return Err(QuantError::Mismatch {
            message: format!("{ty} weights pair with {want} activations, but {} was given", a.ty()),
        });
    }
    let n = a.n_values();
    ty.bytes_for(n as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(QuantError::NotWholeBlocks { ty, values: n })
}

/// One row of weights dotted with an activation; lengths already checked.
fn dot_unchecked(
    ty: GgmlType,
    w: &[u8],
    a: &Activation,
    scratch: &mut Vec<f32>,
) -> Result<f32, QuantError> {
    use GgmlType as T;
    Ok(match (ty, a) {
        (T::Q4_0, Activation::Q8_0(a)) => vec_dot_q4_0_q8_0(w, a),
        (T::Q5_0, Activation::Q8_0(a)) => vec_dot_q5_0_q8_0(w, a),
        (T::Q8_0, Activation::Q8_0(a)) => vec_dot_q8_0_q8_0(w, a),
        (T::IQ4_NL, Activation::Q8_0(a)) => vec_dot_iq4_nl_q8_0(w, a),
        (T::Q4_1, Activation::Q8_1(a)) => vec_dot_q4_1_q8_1(w, a),
        (T::Q5_1, Activation::Q8_1(a)) => vec_dot_q5_1_q8_1(w, a),
        (T::Q2_K, Activation::Q8K(a)) => vec_dot_q2_k_q8_k(w, a),
        (T::Q3_K, Activation::Q8K(a)) => vec_dot_q3_k_q8_k(w, a),
        (T::Q4_K, Activation::Q8K(a)) => vec_dot_q4_k_q8_k(w, a),
        (T::Q5_K, Activation::Q8K(a)) => vec_dot_q5_k_q8_k(w, a),
        (T::Q6_K, Activation::Q8K(a)) => vec_dot_q6_k_q8_k(w, a),
        (T::IQ4_XS, Activation::Q8K(a)) => vec_dot_iq4_xs_q8_k(w, a),
        (T::F16, Activation::F16(a)) => vec_dot_f16(w, a),
        (T::BF16, Activation::BF16(a)) => vec_dot_bf16(w, a),
        (T::F32, Activation::F32(a)) => {
            // F32 weights arrive as unaligned bytes; widen them once into a reused buffer so
            // the kernel keeps ggml's `(a: &[f32], b: &[f32])` shape.
            scratch.clear();
            scratch.extend(w.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)));
            vec_dot_f32(scratch, a)
        }
        _ => {
            // `row_bytes` already rejected every other pairing; keep a typed error anyway.
            return Err(QuantError::Mismatch {
                message: format!("{ty} weights cannot be dotted with {} activations", a.ty()),
            });
        }
    })
}

/// Dot product of one row of weights (`w`: the raw bytes of `a.n_values()` values of type `ty`)
/// with an activation of the matching type, as llama.cpp's CPU backend computes it.
pub fn vec_dot(ty: GgmlType, w: &[u8], a: &Activation) -> Result<f32, QuantError> {
    let expected = row_bytes(ty, a)?;
    if w.len() != expected {
        return Err(QuantError::WrongByteLength {
            ty,
            values: a.n_values(),
            expected,
            got: w.len(),
        });
    }
    dot_unchecked(ty, w, a, &mut Vec::new())
}

/// One row of weights against several activation rows of its pairing type (the tokens of a
/// prompt): `out[t] = vec_dot(ty, w, acts[t])`, bit for bit. Where a multi-token kernel exists
/// (AVX2 and simd128: the 32-value formats × Q8_0, Q4_K, Q5_K and Q6_K × Q8_K) each weight block
/// is decoded once for every token. For many rows against the same tokens, [`TokenActivations`]
/// checks the tokens once.
pub fn vec_dot_tokens(
    ty: GgmlType,
    w: &[u8],
    acts: &[Activation],
    out: &mut [f32],
) -> Result<(), QuantError> {
    TokenActivations::new(ty, acts)?.dot_row(w, out)
}

/// Activation rows (the tokens) checked once against a weight type, for dotting many weight
/// rows with them ([`TokenActivations::dot_row`]); the per-row check is then one length compare.
pub struct TokenActivations<'a> {
    ty: GgmlType,
    acts: &'a [Activation],
    row_bytes: usize,
    /// The Q8_0 rows, for the multi-token kernels; empty for other pairings.
    q8_0: Vec<&'a [BlockQ8_0]>,
    /// The Q8_K rows, likewise.
    q8_k: Vec<&'a [BlockQ8K]>,
    /// The Q8_0 rows laid out for the AVX-512 VNNI rows × tokens kernels, where the CPU has
    /// them and the weight type has one; made by the first [`TokenActivations::dot_rows`]
    /// (a single row's dot needs no layout).
    #[cfg(target_arch = "x86_64")]
    vnni: std::sync::OnceLock<Option<(RowsTokensKernel, crate::avx512::PreparedQ8_0<'a>)>>,
    /// The Q8_0 rows widened to i16 for the simd128 wide dots (Q8_0, IQ4_NL weights); made by
    /// the first [`TokenActivations::dot_rows`].
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    wide: std::sync::OnceLock<Option<crate::simd128::PreparedWide<'a>>>,
}

impl<'a> TokenActivations<'a> {
    /// Checks that every row pairs with `ty` and that all have the same length.
    pub fn new(ty: GgmlType, acts: &'a [Activation]) -> Result<Self, QuantError> {
        let mut row_bytes = None;
        for a in acts {
            let rb = self::row_bytes(ty, a)?;
            if *row_bytes.get_or_insert(rb) != rb {
                return Err(QuantError::Mismatch {
                    message: format!(
                        "token rows of different lengths ({} values and more)",
                        a.n_values()
                    ),
                });
            }
        }
        let q8_0 = acts
            .iter()
            .filter_map(|a| match a {
                Activation::Q8_0(blocks) => Some(blocks.as_slice()),
                _ => None,
            })
            .collect::<Vec<_>>();
        let q8_0 = if q8_0.len() == acts.len() { q8_0 } else { Vec::new() };
        let q8_k = acts
            .iter()
            .filter_map(|a| match a {
                Activation::Q8K(blocks) => Some(blocks.as_slice()),
                _ => None,
            })
            .collect::<Vec<_>>();
        let q8_k = if q8_k.len() == acts.len() { q8_k } else { Vec::new() };
        Ok(TokenActivations {
            ty,
            acts,
            row_bytes: row_bytes.unwrap_or(0),
            q8_0,
            q8_k,
            #[cfg(target_arch = "x86_64")]
            vnni: std::sync::OnceLock::new(),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            wide: std::sync::OnceLock::new(),
        })
    }

    /// `out[t] = vec_dot(ty, w, acts[t])` for one weight row `w`.
    pub fn dot_row(&self, w: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
        let ty = self.ty;
        if out.len() != self.acts.len() {
            return Err(QuantError::Mismatch {
                message: format!(
                    "{} activation rows but room for {} results",
                    self.acts.len(),
                    out.len()
                ),
            });
        }
        if let Some(a) = self.acts.first() {
            if w.len() != self.row_bytes {
                return Err(QuantError::WrongByteLength {
                    ty,
                    values: a.n_values(),
                    expected: self.row_bytes,
                    got: w.len(),
                });
            }
        }
        if self.acts.len() > 1 {
            if let (false, Some(kernel)) = (self.q8_0.is_empty(), multi_token_kernel(ty)) {
                kernel(w, &self.q8_0, out);
                return Ok(());
            }
            if let (false, Some(kernel)) = (self.q8_k.is_empty(), multi_token_kernel_k(ty)) {
                kernel(w, &self.q8_k, out);
                return Ok(());
            }
        }
        let mut scratch = Vec::new();
        for (o, a) in out.iter_mut().zip(self.acts) {
            *o = dot_unchecked(ty, w, a, &mut scratch)?;
        }
        Ok(())
    }
}

impl TokenActivations<'_> {
    /// `out[r * n_tokens + t] = vec_dot(ty, row r of w, acts[t])` for the whole rows of `w`.
    /// Where a rows × tokens kernel exists (the 32-value formats that pair with Q8_0, with
    /// AVX-512 VNNI; wasm's prepared Q8_0 product) the rows meet the tokens in register blocks;
    /// elsewhere the multi-token kernels take passes of tokens over groups of rows
    /// (`each_pass`), or, with neither, row by row ([`TokenActivations::dot_row`]).
    pub fn dot_rows(&self, w: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
        let (nt, rb) = (self.acts.len(), self.row_bytes);
        if nt == 0 && out.is_empty() {
            return Ok(());
        }
        let rows = w.len().checked_div(rb).unwrap_or(0);
        if rb == 0 || !w.len().is_multiple_of(rb) || out.len() != rows * nt {
            return Err(QuantError::Mismatch {
                message: format!(
                    "{} weight bytes in rows of {rb}, {nt} tokens, room for {} results",
                    w.len(),
                    out.len()
                ),
            });
        }
        #[cfg(target_arch = "x86_64")]
        let vnni = self.vnni.get_or_init(|| match rows_tokens_kernel(self.ty) {
            // SAFETY: AVX-512 VNNI and VL were detected at runtime (`rows_tokens_kernel`).
            Some(kernel) if !self.q8_0.is_empty() => {
                Some((kernel, unsafe { crate::avx512::PreparedQ8_0::new(&self.q8_0) }))
            }
            _ => None,
        });
        #[cfg(target_arch = "x86_64")]
        if let Some((kernel, prepared)) = vnni {
            // SAFETY: AVX-512 VNNI and VL were detected at runtime; the shapes were checked
            // above and the tokens by `TokenActivations::new`.
            unsafe { kernel(w, rb, prepared, out) };
            return Ok(());
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        // One token too for Q8_0 rows: the token's blocks are widened, and their f16 scales
        // made f32, once for every row instead of once a row (Q4_0, Q5_0 and IQ4_NL rows are
        // rewritten as Q8_0 for it, which pays only across tokens).
        if crate::simd128::has_q8_0_form(self.ty) && (nt > 1 || self.ty == GgmlType::Q8_0) {
            let wide = self.wide.get_or_init(|| {
                (!self.q8_0.is_empty())
                    .then(|| crate::simd128::PreparedWide::new(&self.q8_0, self.ty))
            });
            if let Some(tokens) = wide {
                // With relaxed SIMD, Q4_0 and Q5_0 multiply their unsigned values byte by byte.
                #[cfg(target_feature = "relaxed-simd")]
                if crate::simd128::unsigned_rows(self.ty, w, rb, tokens, out) {
                    return Ok(());
                }
                // Q4_0, Q5_0 and IQ4_NL rows are rewritten as Q8_0 for it, decoded once (same
                // products, same order).
                let product = |rows: &[u8], row_bytes| {
                    crate::simd128::wide_q8_0_rows(rows, row_bytes, tokens, out)
                };
                if crate::simd128::as_q8_0_rows(self.ty, w, rb, product).is_some() {
                    return Ok(());
                }
            }
        }
        if nt > 1 && self.rows_by_passes(w, out) {
            return Ok(());
        }
        for (row, o) in w.chunks_exact(rb).zip(out.chunks_exact_mut(nt)) {
            self.dot_row(row, o)?;
        }
        Ok(())
    }

    /// The multi-token kernel over whole rows of `w` (shapes checked by the caller), rows in
    /// groups of [`ROW_GROUP_BYTES`] and the tokens in passes of [`TOKENS_PER_GROUP_PASS`]
    /// over each group in turn: a pass's tokens stay in cache for every row of the group, where
    /// row by row with every token a long prompt's tokens came from L2 or beyond for each row
    /// (a 4864-column k-quant row against 304 tokens: 1.7 MiB of Q8_K rows). Each result is
    /// the kernel's for that token, which does not depend on the other tokens of the call.
    /// `false`, and nothing done, where this pairing has no multi-token kernel.
    fn rows_by_passes(&self, w: &[u8], out: &mut [f32]) -> bool {
        let (nt, rb) = (self.acts.len(), self.row_bytes);
        if let (false, Some(kernel)) = (self.q8_0.is_empty(), multi_token_kernel(self.ty)) {
            each_pass(w, rb, nt, out, |row, tokens, o| kernel(row, &self.q8_0[tokens], o));
            return true;
        }
        if let (false, Some(kernel)) = (self.q8_k.is_empty(), multi_token_kernel_k(self.ty)) {
            each_pass(w, rb, nt, out, |row, tokens, o| kernel(row, &self.q8_k[tokens], o));
            return true;
        }
        false
    }
}

/// `run(row, tokens, out)` for every whole row of `w` (`rb` bytes each) and every pass of
/// [`TOKENS_PER_GROUP_PASS`] of its `nt` tokens, `out` being that row's results for the pass:
/// rows in groups of [`ROW_GROUP_BYTES`], the passes over each group in turn (also the order
/// of wasm's prepared rows × tokens products).
pub(crate) fn each_pass(
    w: &[u8],
    rb: usize,
    nt: usize,
    out: &mut [f32],
    mut run: impl FnMut(&[u8], std::ops::Range<usize>, &mut [f32]),
) {
    let group = (ROW_GROUP_BYTES / rb.max(1)).max(1);
    for (rows, outs) in w.chunks(group * rb).zip(out.chunks_mut(group * nt)) {
        for t0 in (0..nt).step_by(TOKENS_PER_GROUP_PASS) {
            let tokens = t0..(t0 + TOKENS_PER_GROUP_PASS).min(nt);
            for (row, o) in rows.chunks_exact(rb).zip(outs.chunks_exact_mut(nt)) {
                run(row, tokens.clone(), &mut o[tokens.clone()]);
            }
        }
    }
}

/// Bytes of weight rows a pass of tokens goes over before the next ([`each_pass`]): with a
/// pass's tokens (wasm's prepared Q8_0 tokens: 8 × 64 bytes a block, 14 KiB for 896 columns)
/// they stay within a 32 KiB L1.
const ROW_GROUP_BYTES: usize = 12 * 1024;

/// Tokens a pass of [`each_pass`] takes over a group of rows: the multi-token kernels' own
/// pass (AVX2, simd128: 8; AVX-512: two of 4).
pub(crate) const TOKENS_PER_GROUP_PASS: usize = 8;

/// A rows × tokens kernel: whole weight rows of `row_bytes`, several prepared Q8_0 token rows.
#[cfg(target_arch = "x86_64")]
type RowsTokensKernel = unsafe fn(&[u8], usize, &crate::avx512::PreparedQ8_0, &mut [f32]);

/// The AVX-512 VNNI rows × tokens kernel for weights of `ty`, where the CPU has one.
#[cfg(target_arch = "x86_64")]
fn rows_tokens_kernel(ty: GgmlType) -> Option<RowsTokensKernel> {
    use crate::avx512 as k;
    if !k::vnni_available() {
        return None;
    }
    match ty {
        GgmlType::Q4_0 => Some(k::vec_dot_q4_0_q8_0_rows_tokens as RowsTokensKernel),
        GgmlType::Q5_0 => Some(k::vec_dot_q5_0_q8_0_rows_tokens as RowsTokensKernel),
        GgmlType::Q8_0 => Some(k::vec_dot_q8_0_q8_0_rows_tokens as RowsTokensKernel),
        GgmlType::IQ4_NL => Some(k::vec_dot_iq4_nl_q8_0_rows_tokens as RowsTokensKernel),
        _ => None,
    }
}

/// A multi-token kernel: one weight row, several Q8_0 rows, one result per row.
type TokensKernel = fn(&[u8], &[&[BlockQ8_0]], &mut [f32]);

/// A multi-token kernel for a k-quant: one weight row, several Q8_K rows.
type TokensKernelK = fn(&[u8], &[&[BlockQ8K]], &mut [f32]);

/// `fn $name(ty) -> Option<$kernel>`: the multi-token kernel of `ty` on this CPU / build (AVX2,
/// or simd128 in a wasm build with it), if there is one; the same type list for both twins.
macro_rules! multi_token_kernels {
    ($(#[$doc:meta])* fn $name:ident -> $kernel:ty { $($ty:ident => $f:ident,)* }) => {
        $(#[$doc])*
        #[allow(unused_variables)]
        fn $name(ty: GgmlType) -> Option<$kernel> {
            #[cfg(target_arch = "x86_64")]
            if crate::avx2::available() {
                // SAFETY (each wrapper): AVX2, FMA and F16C were detected at runtime; the caller
                // passes rows whose lengths `TokenActivations` checked.
                return match ty {
                    $(GgmlType::$ty => Some(|w, a, o| unsafe { crate::avx2::$f(w, a, o) }),)*
                    _ => None,
                };
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            return match ty {
                $(GgmlType::$ty => Some(crate::simd128::$f),)*
                _ => None,
            };
            #[allow(unreachable_code)]
            None
        }
    };
}

/// The multi-token kernel for k-quant `ty` × Q8_K on this CPU / build, if there is one: the
/// AVX-512 VNNI twins where the CPU has them.
fn multi_token_kernel_k(ty: GgmlType) -> Option<TokensKernelK> {
    #[cfg(target_arch = "x86_64")]
    if crate::avx512::vnni_available() {
        use crate::avx512 as k;
        // SAFETY (each wrapper): AVX-512 VNNI and VL were detected at runtime; the caller passes
        // rows whose lengths `TokenActivations` checked.
        return match ty {
            GgmlType::Q4_K => Some(|w, a, o| unsafe { k::vec_dot_q4_k_q8_k_tokens(w, a, o) }),
            GgmlType::Q5_K => Some(|w, a, o| unsafe { k::vec_dot_q5_k_q8_k_tokens(w, a, o) }),
            GgmlType::Q6_K => Some(|w, a, o| unsafe { k::vec_dot_q6_k_q8_k_tokens(w, a, o) }),
            _ => None,
        };
    }
    multi_token_kernel_k_portable(ty)
}

multi_token_kernels! {
    /// The AVX2 or simd128 multi-token kernel for k-quant `ty` × Q8_K, if there is one.
    fn multi_token_kernel_k_portable -> TokensKernelK {
        Q4_K => vec_dot_q4_k_q8_k_tokens,
        Q5_K => vec_dot_q5_k_q8_k_tokens,
        Q6_K => vec_dot_q6_k_q8_k_tokens,
    }
}

multi_token_kernels! {
    /// The multi-token kernel for `ty` × Q8_0 on this CPU / build, if there is one.
    fn multi_token_kernel -> TokensKernel {
        Q4_0 => vec_dot_q4_0_q8_0_tokens,
        Q5_0 => vec_dot_q5_0_q8_0_tokens,
        Q8_0 => vec_dot_q8_0_q8_0_tokens,
        IQ4_NL => vec_dot_iq4_nl_q8_0_tokens,
    }
}

/// Rows of `cols` f32 weights (`w`, row-major) against several f32 rows (the tokens):
/// `out[r * xs.len() + t] = vec_dot_f32(row r, xs[t])`, bit for bit, with each loaded weight
/// vector reused across tokens and the tokens kept in cache across rows where a kernel allows
/// (AVX-512: blocks of 3 rows × 4 tokens in registers; AVX2, simd128: tokens in pairs).
pub fn vec_dot_f32_rows_tokens(
    w: &[f32],
    cols: usize,
    xs: &[&[f32]],
    out: &mut [f32],
) -> Result<(), QuantError> {
    let rows = w.len().checked_div(cols).unwrap_or(0);
    if cols == 0
        || !w.len().is_multiple_of(cols)
        || xs.iter().any(|x| x.len() != cols)
        || out.len() != rows * xs.len()
    {
        return Err(QuantError::Mismatch {
            message: format!(
                "f32 rows: {} weights in rows of {cols}, {} token rows, room for {} results",
                w.len(),
                xs.len(),
                out.len()
            ),
        });
    }
    #[cfg(target_arch = "x86_64")]
    if crate::avx512::available() {
        // SAFETY: the CPU features the kernel needs were detected at runtime; shapes checked.
        unsafe { crate::avx512::vec_dot_f32_rows_tokens(w, cols, xs, out) };
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if crate::avx2::available() {
        // SAFETY: the CPU features the kernel needs were detected at runtime; shapes checked.
        unsafe { crate::avx2::vec_dot_f32_rows_tokens(w, cols, xs, out) };
        return Ok(());
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    crate::simd128::vec_dot_f32_rows_tokens(w, cols, xs, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (row, o) in w.chunks_exact(cols).zip(out.chunks_exact_mut(xs.len().max(1))) {
        for (o, x) in o.iter_mut().zip(xs) {
            *o = vec_dot_f32(row, x);
        }
    }
    Ok(())
}

/// Matrix × vector: `out[i] = vec_dot(row i, a)` where row `i` is
/// `weights[i * row_bytes .. (i + 1) * row_bytes]` and a row holds `n_cols` values.
/// `out.len()` is the number of rows; `weights` must hold exactly that many rows.
pub fn matvec(
    ty: GgmlType,
    weights: &[u8],
    n_cols: usize,
    a: &Activation,
    out: &mut [f32],
) -> Result<(), QuantError> {
    if a.n_values() != n_cols {
        return Err(QuantError::Mismatch {
            message: format!(
                "matvec over {n_cols} columns was given an activation of {} values",
                a.n_values()
            ),
        });
    }
    let rb = row_bytes(ty, a)?;
    let rows = out.len();
    let expected = rows.checked_mul(rb).ok_or(QuantError::Mismatch {
        message: format!("{rows} rows of {rb} bytes overflow the address space"),
    })?;
    if weights.len() != expected {
        return Err(QuantError::WrongByteLength {
            ty,
            values: rows.saturating_mul(n_cols),
            expected,
            got: weights.len(),
        });
    }
    if rb == 0 {
        out.fill(0.0);
        return Ok(());
    }
    // In wasm, Q8_0 rows take the token prepared once ([`TokenActivations::dot_rows`]): in
    // Chromium 1.38× / 1.06× → 1.52× / 1.72× candle's `vec_dot` (bench/kernels_in_chromium.mjs,
    // session 22; the node 20 of `./dev bench-peers` measured no change).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if ty == GgmlType::Q8_0 && matches!(a, Activation::Q8_0(_)) {
        return TokenActivations::new(ty, std::slice::from_ref(a))?.dot_rows(weights, out);
    }
    let mut scratch = Vec::new();
    for (o, row) in out.iter_mut().zip(weights.chunks_exact(rb)) {
        *o = dot_unchecked(ty, row, a, &mut scratch)?;
    }
    Ok(())
}
