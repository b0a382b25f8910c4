//! AVX-512 twins of the kernels where register blocking pays: with 32 vector registers a
//! block of weight rows × tokens keeps every partial sum in registers, so each loaded weight
//! vector serves several tokens and each loaded token vector several rows — the tiled matrix ×
//! matrix product llama.cpp's llamafile sgemm runs on this CPU, in [`crate::order`]'s float
//! order. Results equal the scalar reference bit for bit (`tests/simd_parity.rs`).
//!
//! Runtime-detected ([`available`]); the dispatchers in [`crate::dot`] prefer these where they
//! exist and fall back to [`crate::avx2`].

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

/// Whether the kernels of this module (AVX-512 Foundation) run, and the AVX2 ones they fall
/// back to: the CPU has them and the process's cap allows them ([`parallax_cpu::avx512`]).
pub fn available() -> bool {
    parallax_cpu::avx512()
}

/// Weight rows in one register block of [`vec_dot_f32_rows_tokens`].
const ROWS: usize = 3;
/// Tokens in one register block: `ROWS × TOKENS` dots of two accumulators each (24 registers),
/// plus the rows' and a token's loads, fit AVX-512's 32.
const TOKENS: usize = 4;

/// `R` weight rows · `T` token rows, `out[r][t]` = `vec_dot_f32(rows[r], xs[t])` bit for bit:
/// each dot's 32 lanes (element `i` into lane `i mod 32`, product rounded then added) are two
/// 16-lane registers, the tail is added lane by lane, then [`crate::order::reduce32`] (as
/// vector adds where there is no tail).
#[inline(always)]
unsafe fn dot_block<const R: usize, const T: usize>(
    rows: [&[f32]; R],
    xs: [&[f32]; T],
    n: usize,
) -> [[f32; T]; R] {
    let mut acc = [[[_mm512_setzero_ps(); 2]; T]; R];
    let mut i = 0;
    while i + 32 <= n {
        let w: [[__m512; 2]; R] = std::array::from_fn(|r| {
            let p = rows[r].as_ptr().add(i);
            [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))]
        });
        for t in 0..T {
            let p = xs[t].as_ptr().add(i);
            let x = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
            for r in 0..R {
                for h in 0..2 {
                    acc[r][t][h] = _mm512_add_ps(acc[r][t][h], _mm512_mul_ps(w[r][h], x[h]));
                }
            }
        }
        i += 32;
    }
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = if i == n {
                // Width 16 (lane j += lane j + 16) is one add of the halves; the rest of the
                // tree as the AVX2 kernels run it.
                let v16 = _mm512_add_ps(acc[r][t][0], acc[r][t][1]);
                crate::avx2::total16(
                    _mm512_castps512_ps256(v16),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v16))),
                )
            } else {
                let mut lanes = [0f32; 32];
                _mm512_storeu_ps(lanes.as_mut_ptr(), acc[r][t][0]);
                _mm512_storeu_ps(lanes.as_mut_ptr().add(16), acc[r][t][1]);
                for (lane, k) in lanes.iter_mut().zip(i..n) {
                    *lane += rows[r][k] * xs[t][k];
                }
                crate::order::reduce32(&lanes)
            };
        }
    }
    out
}

/// The rows of `w` (row-major, `cols` a row) against the tokens `xs[t0..t0 + T]`, in blocks of
/// [`ROWS`] rows (the last rows one at a time).
#[inline(always)]
unsafe fn rows_against<const T: usize>(
    w: &[f32],
    cols: usize,
    xs: &[&[f32]],
    t0: usize,
    out: &mut [f32],
) {
    let nt = xs.len();
    let tokens: [&[f32]; T] = std::array::from_fn(|t| xs[t0 + t]);
    let n_rows = w.len() / cols;
    let row = |r: usize| &w[r * cols..(r + 1) * cols];
    let mut r = 0;
    while r + ROWS <= n_rows {
        let sums = dot_block::<ROWS, T>(std::array::from_fn(|k| row(r + k)), tokens, cols);
        for (k, sums) in sums.iter().enumerate() {
            out[(r + k) * nt + t0..][..T].copy_from_slice(sums);
        }
        r += ROWS;
    }
    while r < n_rows {
        let [sums] = dot_block::<1, T>([row(r)], tokens, cols);
        out[r * nt + t0..][..T].copy_from_slice(&sums);
        r += 1;
    }
}

/// Rows of `cols` f32 weights against several f32 rows: `out[r * xs.len() + t]` equals
/// `vec_dot_f32(row r, xs[t])` bit for bit. Tokens go in groups of [`TOKENS`] (the last group
/// smaller), the group being the outer loop so its rows stay in L1 while the weight rows stream
/// past, and each group meets the weights [`ROWS`] rows at a time.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]); `cols > 0`, `w.len()` is a multiple of
/// `cols`, every `xs[t]` has `cols` values and `out.len() == w.len() / cols * xs.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn vec_dot_f32_rows_tokens(w: &[f32], cols: usize, xs: &[&[f32]], out: &mut [f32]) {
    let mut t = 0;
    while t < xs.len() {
        let group = (xs.len() - t).min(TOKENS);
        match group {
            4 => rows_against::<4>(w, cols, xs, t, out),
            3 => rows_against::<3>(w, cols, xs, t, out),
            2 => rows_against::<2>(w, cols, xs, t, out),
            _ => rows_against::<1>(w, cols, xs, t, out),
        }
        t += group;
    }
}

// ---------------------------------------------------------------------------------------------
// 32-value formats × Q8_0 with VNNI: weight rows × tokens in register blocks
// ---------------------------------------------------------------------------------------------

/// Whether the rows × tokens kernels below run: AVX-512 VNNI (with the 256-bit forms,
/// AVX-512VL) as well as the AVX2 kernels they share helpers with, under the process's cap.
pub fn vnni_available() -> bool {
    parallax_cpu::avx512_vnni()
}

use crate::avx2::{bits_le, fp16x2, fp16x4, hsum_i32, load32};
use crate::blocks::{
    BlockQ8K, BlockQ8_0, IQ4_NL_BYTES, Q4_0_BYTES, Q4_K_BYTES, Q5_0_BYTES, Q5_K_BYTES, Q8_0_BYTES,
};

/// Weight rows one VNNI register block takes.
const Q_ROWS: usize = 4;
/// Tokens one VNNI register block takes (their float parts go two tokens to a register).
const Q_TOKENS: usize = 8;
/// Bytes of prepared tokens one pass over a tile's weight rows takes: a chunk of tokens stays in
/// L2 while the rows stream past it (a long prompt's tokens would not).
const TOKEN_CHUNK_BYTES: usize = 256 * 1024;

/// A 32-value block format that pairs with Q8_0, in blocks of `B` bytes: its values as 32 i8.
trait Legacy<const B: usize> {
    /// # Safety
    /// AVX2 (the decoders are [`crate::avx2`]'s).
    unsafe fn decode(x: &[u8; B]) -> __m256i;
}

macro_rules! legacy_formats {
    ($($(#[$doc:meta])* $name:ident: $bytes:ident, |$x:ident| $decode:expr;)*) => {$(
        $(#[$doc])*
        struct $name;
        impl Legacy<$bytes> for $name {
            #[inline(always)]
            unsafe fn decode($x: &[u8; $bytes]) -> __m256i {
                $decode
            }
        }
    )*};
}

legacy_formats! {
    Q4_0: Q4_0_BYTES, |x| crate::avx2::decode_q4_0(x);
    Q5_0: Q5_0_BYTES, |x| crate::avx2::decode_q5_0(x);
    Iq4Nl: IQ4_NL_BYTES, |x| crate::avx2::decode_iq4_nl(x);
    /// Q8_0 weights are their bytes, −128 included.
    Q8_0: Q8_0_BYTES, |x| load32(x.as_ptr().add(2));
}

/// Four blocks' 32 bytes each, rearranged so that in every output register the i32 lanes `2k`,
/// `2k + 1` and `2k + 4`, `2k + 5` hold bytes of one block only: blocks 0 and 1 in the first two
/// registers (lanes 0, 1, 4, 5 block 0; 2, 3, 6, 7 block 1), blocks 2 and 3 in the last two.
/// `vpdpbusd` sums four byte products per lane, so after the two registers of a pair are
/// accumulated into one, a pairwise add (`vphaddd`) and one add of the halves give the four
/// blocks' totals — instead of reducing each block's eight lanes apart. Weights and
/// activations get the same arrangement; a dot product does not depend on the order of its
/// terms, so the totals are exact.
#[inline(always)]
unsafe fn interleave(d: [__m256i; 4]) -> [__m256i; 4] {
    [
        _mm256_unpacklo_epi64(d[0], d[1]),
        _mm256_unpackhi_epi64(d[0], d[1]),
        _mm256_unpacklo_epi64(d[2], d[3]),
        _mm256_unpackhi_epi64(d[2], d[3]),
    ]
}

/// Four consecutive blocks of one Q8_0 token as the VNNI kernel reads them (see
/// [`interleave`]).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Group {
    /// The four blocks' values, interleaved.
    a: [__m256i; 4],
    /// Where each pair of registers starts: `vpdpbusd` multiplies unsigned by signed bytes, so
    /// the kernel takes the weights `w + 128` (their sign bit flipped) and starts block `k`'s
    /// lanes at `−128·Σa` (in lane `2k mod 4` of register `k / 2`): the lanes then add up to
    /// exactly `Σ w·a`.
    start: [__m256i; 2],
    /// The four blocks' scales.
    d: [f32; 4],
}

/// Q8_0 token rows prepared once for every weight row of a matrix: each token's whole groups
/// of four blocks ([`Group`]), and the rows themselves for the blocks after the last group.
pub struct PreparedQ8_0<'a> {
    acts: Vec<&'a [BlockQ8_0]>,
    groups: Vec<Group>,
    per_token: usize,
}

impl<'a> PreparedQ8_0<'a> {
    /// Prepares `acts` (every token as many blocks).
    ///
    /// # Safety
    /// The CPU must have AVX-512 VNNI and VL ([`vnni_available`]).
    #[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
    pub unsafe fn new(acts: &[&'a [BlockQ8_0]]) -> Self {
        let per_token = acts.first().map_or(0, |a| a.len() / 4);
        let ones = _mm256_set1_epi8(1);
        let block_sum =
            |y: &BlockQ8_0| hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, load_qs(y)));
        let mut groups = Vec::with_capacity(acts.len() * per_token);
        for a in acts {
            for y in a.as_chunks::<4>().0.iter().take(per_token) {
                let s: [i32; 4] = std::array::from_fn(|k| -128 * block_sum(&y[k]));
                let (d0, d1) = fp16x2(y[0].d.to_bits(), y[1].d.to_bits());
                let (d2, d3) = fp16x2(y[2].d.to_bits(), y[3].d.to_bits());
                groups.push(Group {
                    a: interleave(std::array::from_fn(|k| load_qs(&y[k]))),
                    start: [
                        _mm256_setr_epi32(s[0], 0, s[1], 0, 0, 0, 0, 0),
                        _mm256_setr_epi32(s[2], 0, s[3], 0, 0, 0, 0, 0),
                    ],
                    d: [d0, d1, d2, d3],
                });
            }
        }
        PreparedQ8_0 { acts: acts.to_vec(), groups, per_token }
    }

    fn groups(&self, t: usize) -> &[Group] {
        &self.groups[t * self.per_token..(t + 1) * self.per_token]
    }
}

/// A Q8_0 block's 32 values.
#[inline(always)]
unsafe fn load_qs(y: &BlockQ8_0) -> __m256i {
    load32(y.qs.as_ptr() as *const u8)
}

/// One weight group (four interleaved blocks, flipped to unsigned) · one token's group: the
/// four blocks' exact totals, in lanes 0..4 and, for the other half, 4..8 (to be added).
#[inline(always)]
unsafe fn group_totals(w: &[__m256i; 4], g: &Group) -> __m256i {
    let s01 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(g.start[0], w[0], g.a[0]), w[1], g.a[1]);
    let s23 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(g.start[1], w[2], g.a[2]), w[3], g.a[3]);
    _mm256_hadd_epi32(s01, s23)
}

/// One weight row's group of four blocks as the kernel multiplies it: values flipped to
/// unsigned and interleaved ([`interleave`]), the four scales as f32 in both halves.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct WeightGroup {
    w: [__m256i; 4],
    d: __m256,
}

/// Decodes blocks `4g..4g + 4` of a row of format `F` into a [`WeightGroup`].
#[inline(always)]
unsafe fn decode_group<const B: usize, F: Legacy<B>>(row: &[[u8; B]], g: usize) -> WeightGroup {
    let flip = _mm256_set1_epi8(-128);
    let x = &row[4 * g..4 * g + 4];
    let mut d = [_mm256_setzero_si256(); 4];
    for k in 0..4 {
        d[k] = _mm256_xor_si256(F::decode(&x[k]), flip);
    }
    let s = fp16x4(bits_le(&x[0], 0), bits_le(&x[1], 0), bits_le(&x[2], 0), bits_le(&x[3], 0));
    WeightGroup { w: interleave(d), d: _mm256_set_m128(s, s) }
}

thread_local! {
    /// The weight groups of the rows a thread is multiplying, decoded once for all its tokens
    /// (see [`legacy_rows_tokens`]); reused from call to call.
    static DECODED_GROUPS: std::cell::RefCell<Vec<WeightGroup>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `R` weight rows (whole rows of format `F`) · `T` prepared tokens (the tokens `t0..t0 + T`),
/// `out[r][t]` equal to the scalar dot bit for bit: each block's exact integer sum, then
/// [`crate::order`]'s float order (block `b`'s `(d_w·d_a)·isum` into accumulator `b mod 4`).
/// Tokens go two to a float register (a lone last token is paired with itself).
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
/// With `DECODED`, `decoded[r]` holds row `r`'s whole groups already decoded (the rows are
/// then read only for the blocks after them); otherwise each group is decoded here, once per
/// `T` tokens.
unsafe fn legacy_block<
    const B: usize,
    F: Legacy<B>,
    const R: usize,
    const T: usize,
    const DECODED: bool,
>(
    rows: [&[[u8; B]]; R],
    decoded: [&[WeightGroup]; R],
    tokens: &PreparedQ8_0,
    t0: usize,
) -> [[f32; T]; R] {
    const { assert!(T > 0) };
    let flip = _mm256_set1_epi8(-128);
    let groups: [&[Group]; T] = std::array::from_fn(|t| tokens.groups(t0 + t));
    let pair = |p: usize| (2 * p, (2 * p + 1).min(T - 1));
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for g in 0..tokens.per_token {
        // Plain loops, not `array::from_fn`: its closures were not inlined (a call per row).
        let mut w = [[_mm256_setzero_si256(); 4]; R];
        let mut dw = [_mm256_setzero_ps(); R];
        for r in 0..R {
            let WeightGroup { w: values, d } =
                if DECODED { decoded[r][g] } else { decode_group::<B, F>(rows[r], g) };
            w[r] = values;
            dw[r] = d;
        }
        // `p` picks two tokens' groups and their accumulators (only the first ⌈T/2⌉ of `T`).
        #[allow(clippy::needless_range_loop)]
        for p in 0..T.div_ceil(2) {
            let (t, u) = pair(p);
            let (gt, gu) = (&groups[t][g], &groups[u][g]);
            let da = _mm256_set_m128(_mm_loadu_ps(gu.d.as_ptr()), _mm_loadu_ps(gt.d.as_ptr()));
            for r in 0..R {
                let (ht, hu) = (group_totals(&w[r], gt), group_totals(&w[r], gu));
                let tot = _mm256_add_epi32(
                    _mm256_permute2x128_si256(ht, hu, 0x20),
                    _mm256_permute2x128_si256(ht, hu, 0x31),
                );
                acc[r][p] = _mm256_add_ps(
                    acc[r][p],
                    _mm256_mul_ps(_mm256_mul_ps(dw[r], da), _mm256_cvtepi32_ps(tot)),
                );
            }
        }
    }
    let zero = _mm256_setzero_si256();
    let start = |w: __m256i| _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, flip, w));
    let flipped = |y: &BlockQ8_0| _mm256_xor_si256(load_qs(y), flip);
    let n = rows[0].len();
    let mut out = [[0f32; T]; R];
    for r in 0..R {
        for t in 0..T {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t / 2]);
            let half = if t % 2 == 0 { 0 } else { 4 };
            let mut sums = crate::order::BlockAcc4(std::array::from_fn(|k| lanes[half + k]));
            let y = tokens.acts[t0 + t];
            for k in 4 * tokens.per_token..n {
                let x = &rows[r][k];
                let w = F::decode(x);
                let isum = hsum_i32(_mm256_dpbusd_epi32(start(w), flipped(&y[k]), w));
                let (dx, dy) = fp16x2(bits_le(x, 0), y[k].d.to_bits());
                sums.add(k, (dx * dy) * isum as f32);
            }
            out[r][t] = sums.total();
        }
    }
    out
}

/// Every row of `w` (whole rows of `row_bytes`) against every prepared token,
/// `out[r * n_tokens + t]`: the tokens in chunks that stay in L2, each chunk against every row
/// in register blocks of [`Q_ROWS`] × [`Q_TOKENS`], then the rows and tokens left over in
/// smaller blocks.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn legacy_rows_tokens<const B: usize, F: Legacy<B>>(
    w: &[u8],
    row_bytes: usize,
    tokens: &PreparedQ8_0,
    out: &mut [f32],
) {
    let nt = tokens.acts.len();
    let rows: Vec<&[[u8; B]]> = w.chunks_exact(row_bytes).map(|r| r.as_chunks::<B>().0).collect();
    let per_row = tokens.per_token;
    // More than one pass of register blocks over the rows: decode their groups once into this
    // thread's buffer (the rows of one call are a tile, tens of KiB) instead of once a pass.
    if nt > Q_TOKENS && per_row > 0 {
        DECODED_GROUPS.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            for row in &rows {
                for g in 0..per_row {
                    buffer.push(decode_group::<B, F>(row, g));
                }
            }
            let decoded: Vec<&[WeightGroup]> = buffer.chunks_exact(per_row).collect();
            legacy_passes::<B, F, true>(&rows, &decoded, tokens, out);
        });
    } else {
        legacy_passes::<B, F, false>(&rows, &[], tokens, out);
    }
}

/// [`legacy_rows_tokens`]'s passes: with `DECODED`, `decoded[r]` is row `r`'s groups.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn legacy_passes<const B: usize, F: Legacy<B>, const DECODED: bool>(
    rows: &[&[[u8; B]]],
    decoded: &[&[WeightGroup]],
    tokens: &PreparedQ8_0,
    out: &mut [f32],
) {
    let nt = tokens.acts.len();
    macro_rules! block {
        ($r:expr, $t:expr, $R:expr, $T:expr) => {{
            let sums = legacy_block::<B, F, { $R }, { $T }, DECODED>(
                std::array::from_fn(|k| rows[$r + k]),
                std::array::from_fn(|k| if DECODED { decoded[$r + k] } else { &[] }),
                tokens,
                $t,
            );
            for (k, sums) in sums.iter().enumerate() {
                out[($r + k) * nt + $t..][..$T].copy_from_slice(sums);
            }
        }};
    }
    let token_bytes = (tokens.per_token * size_of::<Group>()).max(1);
    let chunk = (TOKEN_CHUNK_BYTES / token_bytes / Q_TOKENS).max(1) * Q_TOKENS;
    // The tokens of `c0..c1` against rows `r..r + R`: [`Q_TOKENS`] at a time, then 4, 2 and 1
    // (a lone token's float part fills half a register, so pairs are kept where they exist).
    macro_rules! tokens {
        ($r:expr, $R:expr, $c0:expr, $c1:expr) => {{
            let mut t = $c0;
            while t + Q_TOKENS <= $c1 {
                block!($r, t, $R, Q_TOKENS);
                t += Q_TOKENS;
            }
            if t + 4 <= $c1 {
                block!($r, t, $R, 4);
                t += 4;
            }
            if t + 2 <= $c1 {
                block!($r, t, $R, 2);
                t += 2;
            }
            if t < $c1 {
                block!($r, t, $R, 1);
            }
        }};
    }
    let whole_rows = rows.len() / Q_ROWS * Q_ROWS;
    for c0 in (0..nt).step_by(chunk) {
        let c1 = (c0 + chunk).min(nt);
        for r in (0..whole_rows).step_by(Q_ROWS) {
            tokens!(r, Q_ROWS, c0, c1);
        }
        for r in whole_rows..rows.len() {
            tokens!(r, 1, c0, c1);
        }
    }
}

macro_rules! legacy_rows_tokens_kernels {
    ($($name:ident: $format:ident, $bytes:ident;)*) => {$(
        /// Rows of this format (`w`: whole rows of `row_bytes`) × Q8_0 token rows:
        /// `out[r * acts.len() + t]` equals the scalar dot of row `r` and token `t` bit for bit
        /// (see [`legacy_block`]).
        ///
        /// # Safety
        /// The CPU must have AVX-512 VNNI and VL ([`vnni_available`]); `row_bytes > 0`,
        /// `w.len()` a multiple of it, every token as many blocks as a row and
        /// `out.len() == w.len() / row_bytes * n_tokens`.
        #[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
        pub unsafe fn $name(w: &[u8], row_bytes: usize, tokens: &PreparedQ8_0, out: &mut [f32]) {
            legacy_rows_tokens::<$bytes, $format>(w, row_bytes, tokens, out)
        }
    )*};
}

legacy_rows_tokens_kernels! {
    vec_dot_q4_0_q8_0_rows_tokens: Q4_0, Q4_0_BYTES;
    vec_dot_q5_0_q8_0_rows_tokens: Q5_0, Q5_0_BYTES;
    vec_dot_q8_0_q8_0_rows_tokens: Q8_0, Q8_0_BYTES;
    vec_dot_iq4_nl_q8_0_rows_tokens: Iq4Nl, IQ4_NL_BYTES;
}

// ---------------------------------------------------------------------------------------------
// k-quants × Q8_K: the AVX2 multi-token drivers with VNNI's fused multiply-add of i16 pairs
// ---------------------------------------------------------------------------------------------

/// `acc + madd(p, s)` as one `vpdpwssd` (no saturation: the i16 pair products and their sum
/// are exact in i32, as `madd` + `add` are).
#[inline]
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn dpwssd(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, p, s)
}

/// Q4_K × several Q8_K rows, `out[t]` equal to the scalar dot bit for bit (the AVX2 driver,
/// [`crate::avx2::vec_dot_q4_k_q8_k_tokens`], with VNNI's `vpdpwssd`).
///
/// # Safety
/// The CPU must have AVX-512 VNNI and VL ([`vnni_available`]); `out.len() == acts.len()`.
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
pub unsafe fn vec_dot_q4_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    crate::avx2::k4_dot_tokens!(w, acts, out, Q4_K_BYTES, crate::avx2::q4k_values, dpwssd)
}

/// Q5_K × several Q8_K rows (as [`vec_dot_q4_k_q8_k_tokens`]).
///
/// # Safety
/// As [`vec_dot_q4_k_q8_k_tokens`].
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
pub unsafe fn vec_dot_q5_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    crate::avx2::k4_dot_tokens!(w, acts, out, Q5_K_BYTES, crate::avx2::q5k_values, dpwssd)
}

/// Q6_K × several Q8_K rows (as [`vec_dot_q4_k_q8_k_tokens`]).
///
/// # Safety
/// As [`vec_dot_q4_k_q8_k_tokens`].
#[target_feature(enable = "avx512f,avx512vnni,avx512vl,avx2,fma,f16c")]
pub unsafe fn vec_dot_q6_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
    crate::avx2::q6k_dot_tokens!(w, acts, out, dpwssd)
}

// ---------------------------------------------------------------------------------------------
// Dequantization of the 32-value formats (the f32 path's weight rows), sixteen values to a
// register: the AVX2 rows' float steps — an exact i8 widened to f32, times the block's f32
// scale — so the values are bit-identical to `crate::dequant`'s scalar rows.
// ---------------------------------------------------------------------------------------------

/// Whole `F` blocks of `bytes` to f32 in `out` (as many blocks as both hold): each value
/// `q·d`, `q` the format's signed value and `d` the block's f16 scale (its first two bytes).
#[inline(always)]
unsafe fn dequantize_legacy<F: Legacy<B>, const B: usize>(bytes: &[u8], out: &mut [f32]) {
    for (x, y) in bytes.as_chunks::<B>().0.iter().zip(out.as_chunks_mut::<32>().0) {
        let q = F::decode(x);
        let d = _mm512_set1_ps(crate::avx2::fp16(bits_le(x, 0)));
        let lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        let hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)));
        _mm512_storeu_ps(y.as_mut_ptr(), _mm512_mul_ps(lo, d));
        _mm512_storeu_ps(y.as_mut_ptr().add(16), _mm512_mul_ps(hi, d));
    }
}

macro_rules! legacy_dequantizers {
    ($($(#[$doc:meta])* $name:ident: $format:ident, $bytes:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX-512F ([`available`]).
        #[target_feature(enable = "avx512f,avx2,fma,f16c")]
        pub unsafe fn $name(bytes: &[u8], out: &mut [f32]) {
            dequantize_legacy::<$format, $bytes>(bytes, out)
        }
    )*};
}

legacy_dequantizers! {
    /// Q4_0 rows to f32: `(q − 8)·d`.
    dequantize_row_q4_0: Q4_0, Q4_0_BYTES;
    /// Q5_0 rows to f32: `(q − 16)·d`.
    dequantize_row_q5_0: Q5_0, Q5_0_BYTES;
    /// IQ4_NL rows to f32: `d·level[q]`.
    dequantize_row_iq4_nl: Iq4Nl, IQ4_NL_BYTES;
    /// Q8_0 rows to f32: `q·d`.
    dequantize_row_q8_0: Q8_0, Q8_0_BYTES;
}
