//! wasm32 simd128 twins of the scalar fused dot products in [`crate::generic`].
//!
//! Compiled only when the build enables simd128 (the page's build does, by .cargo/config.toml):
//! wasm has no runtime feature detection, so a module either validates with SIMD or not at all.
//! Without the feature this module only says so ([`available`] is `false`) and the dispatcher
//! keeps the scalar code.
//!
//! Same contract as the AVX2 twins: identical signatures, identical exact integer sums per
//! block, floats combined in [`crate::order`]'s order — bit-identical results. Byte products widen to
//! i16 and go through `i32x4.dot_i16x8_s`, which is exact for every i8 input (no saturation
//! cases to reason about). Loads are 1-aligned `v128.load`s of 16 bytes cut from the block by
//! slice indexing, so they cannot leave the block.
//!
//! With relaxed SIMD as well (`+relaxed-simd`: a second build of the page, loaded where the
//! browser computes it right — the page's probe, `parallax_web::RELAXED_SIMD_PROBE`), the Q4_K,
//! Q5_K and Q6_K dots multiply with `i16x8.relaxed_dot_i8x16_i7x16_s`: 16 byte products summed
//! two to an i16 lane in one instruction (x86: `pmaddubsw`), and so do a prompt's Q4_0 and
//! Q5_0 matmuls ([`unsigned_rows`]; their leftover blocks with the i32 sibling
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s`). Their
//! result is only fixed when every byte of the second operand is in [0, 127] (and then no pair
//! sum can saturate), and the weight values given them are unsigned and at most 63 (Q6_K's are
//! stored as `q + 32`, Q4_0's and Q5_0's as `q + 8` and `q + 16`, and the offset times `Σy` is
//! taken back with the activations' block sums), so every block's integer total is the exact
//! one the simd128 code computes, and the results are bit-identical.

/// Whether this build carries the simd128 kernels (decided at compile time).
pub fn available() -> bool {
    cfg!(target_feature = "simd128")
}

/// Whether this build's k-quant dots use relaxed SIMD's integer dot (decided at compile time).
pub fn relaxed() -> bool {
    cfg!(all(target_feature = "simd128", target_feature = "relaxed-simd"))
}

#[cfg(target_feature = "simd128")]
pub use imp::*;

#[cfg(target_feature = "simd128")]
mod imp {
    use core::arch::wasm32::*;

    use crate::blocks::*;

    /// 16 bytes of `b` from `off` (bounds-checked; the constant offsets below make the check
    /// vanish on fixed-size block arrays).
    #[inline(always)]
    fn load(b: &[u8], off: usize) -> v128 {
        let s = &b[off..off + 16];
        // SAFETY: `s` has exactly 16 readable bytes and `v128_load` is a 1-aligned load.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// 16 signed activation bytes from `off`.
    #[inline(always)]
    fn load_i8(b: &[i8], off: usize) -> v128 {
        let s = &b[off..off + 16];
        // SAFETY: as in `load`.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// Σ x·y of 16 signed bytes into four i32 lanes (widened: exact for every input).
    #[inline(always)]
    fn dot16(x: v128, y: v128) -> v128 {
        let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
        let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
        i32x4_add(lo, hi)
    }

    /// Σ x·y over two 16-byte halves (x0·y0 ‖ x1·y1) for weights with |x| ≤ 31: the products
    /// (|·| ≤ 31·128) are summed four to an i16 lane (≤ 15872, no overflow) and widened once —
    /// half the work of two [`dot16`]s.
    #[inline(always)]
    fn small_dot32(x0: v128, x1: v128, y0: v128, y1: v128) -> v128 {
        let p = i16x8_add(
            i16x8_add(i16x8_extmul_low_i8x16(x0, y0), i16x8_extmul_high_i8x16(x0, y0)),
            i16x8_add(i16x8_extmul_low_i8x16(x1, y1), i16x8_extmul_high_i8x16(x1, y1)),
        );
        i32x4_extadd_pairwise_i16x8(p)
    }

    #[inline(always)]
    fn hsum_i32(v: v128) -> i32 {
        i32x4_extract_lane::<0>(v)
            + i32x4_extract_lane::<1>(v)
            + i32x4_extract_lane::<2>(v)
            + i32x4_extract_lane::<3>(v)
    }

    /// The totals of two vectors' four i32 lanes, each as `total as f32`: reduced side by side
    /// and converted in the vector (half the steps of two [`hsum_i32`]s, and no move of each
    /// total to an integer register and back: 7.5 % of the Q4_K dot in Chromium). Integer sums,
    /// so the same totals; the vector conversion rounds as `as f32` does.
    #[inline(always)]
    fn totals_as_f32(a: v128, b: v128) -> (f32, f32) {
        // [a0 + a2, a1 + a3, b0 + b2, b1 + b3]
        let s = i32x4_add(i64x2_shuffle::<0, 2>(a, b), i64x2_shuffle::<1, 3>(a, b));
        let t = f32x4_convert_i32x4(i32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s)));
        (f32x4_extract_lane::<0>(t), f32x4_extract_lane::<2>(t))
    }

    /// The total of four i32 lanes as `total as f32`, reduced and converted in the vector (see
    /// [`totals_as_f32`]).
    #[inline(always)]
    fn total_as_f32(v: v128) -> f32 {
        let s = i32x4_add(v, i64x2_shuffle::<1, 0>(v, v));
        let t = i32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
        f32x4_extract_lane::<0>(f32x4_convert_i32x4(t))
    }

    /// Four f32 lanes as [`crate::order`]'s four block accumulators.
    #[inline(always)]
    fn block_acc4(v: v128) -> crate::order::BlockAcc4 {
        crate::order::BlockAcc4([
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ])
    }

    /// Low nibbles of 16 bytes.
    #[inline(always)]
    fn lo4(q: v128) -> v128 {
        v128_and(q, u8x16_splat(0x0F))
    }

    /// High nibbles of 16 bytes: a 16-bit shift, then the low nibbles' mask.
    #[inline(always)]
    fn hi4(q: v128) -> v128 {
        lo4(shr_bytes(q, 4))
    }

    /// Bytes shifted right by `n` as 16-bit lanes: each byte's top `n` bits come from the byte
    /// above it, so the caller masks them away (or they are zero). wasm's own byte shifts have
    /// no x86 instruction: V8 runs `i8x16.shr_u` as the 16-bit shift and a byte mask it builds
    /// anew at every use (move, `movd`, `pshufd`, `pand`: five instructions for one), where a
    /// mask written here is one constant for the whole loop.
    #[inline(always)]
    fn shr_bytes(v: v128, n: u32) -> v128 {
        u16x8_shr(v, n)
    }

    /// Bytes shifted left by `n` as 16-bit lanes ([`shr_bytes`]' twin): each byte's top `n`
    /// bits must be zero, or they reach the byte above.
    #[inline(always)]
    fn shl_bytes(v: v128, n: u32) -> v128 {
        i16x8_shl(v, n)
    }

    /// 16 bytes, 0xFF where bit `16·half + i` of `bits` is set.
    #[inline(always)]
    fn bytes_from_bits16(bits: u32, half: u8) -> v128 {
        let b0 = 2 * half;
        let b1 = b0 + 1;
        let spread = u8x16(b0, b0, b0, b0, b0, b0, b0, b0, b1, b1, b1, b1, b1, b1, b1, b1);
        let b = i8x16_swizzle(u32x4_splat(bits), spread);
        let mask = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        i8x16_eq(v128_and(b, mask), mask)
    }

    /// The exact totals of four blocks' 4-lane integer sums, `[t0, t1, t2, t3]` (a transpose
    /// by shuffles, then two adds).
    #[inline(always)]
    fn totals4(p0: v128, p1: v128, p2: v128, p3: v128) -> v128 {
        let s01 =
            i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p0, p1), i32x4_shuffle::<2, 6, 3, 7>(p0, p1));
        let s23 =
            i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p2, p3), i32x4_shuffle::<2, 6, 3, 7>(p2, p3));
        // s01 = [p0a, p1a, p0b, p1b] with a = lanes 0+2, b = lanes 1+3.
        i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(s01, s23), i32x4_shuffle::<2, 3, 6, 7>(s01, s23))
    }

    /// A per-block term of a dot: a weight block and its activation block to one f32.
    type BlockTerm<const B: usize, A> = dyn Fn(&[u8; B], &A) -> f32;

    /// The driver shared by the 32-value block formats, in [`crate::order`]'s block order (see
    /// the AVX2 twin): four blocks at a time into four f32 lanes, leftovers one by one.
    /// `block(x, y)` gives one block's integer sum in 4 lanes, `scale` its `d_w·d_a`, `min`
    /// (when present) its `m_w·s_a`.
    #[inline(always)]
    fn legacy_dot<const B: usize, A>(
        w: &[u8],
        a: &[A],
        block: impl Fn(&[u8; B], &A) -> v128,
        scale: impl Fn(&[u8; B], &A) -> f32,
        min: Option<&BlockTerm<B, A>>,
    ) -> f32 {
        let wb = w.as_chunks::<B>().0;
        let n = wb.len().min(a.len());
        let mut acc = f32x4_splat(0.0);
        let mut b = 0;
        while b + 4 <= n {
            let (x, y) = (&wb[b..b + 4], &a[b..b + 4]);
            let t = totals4(
                block(&x[0], &y[0]),
                block(&x[1], &y[1]),
                block(&x[2], &y[2]),
                block(&x[3], &y[3]),
            );
            let d = f32x4(
                scale(&x[0], &y[0]),
                scale(&x[1], &y[1]),
                scale(&x[2], &y[2]),
                scale(&x[3], &y[3]),
            );
            let mut term = f32x4_mul(d, f32x4_convert_i32x4(t));
            if let Some(min) = min {
                term = f32x4_add(
                    term,
                    f32x4(
                        min(&x[0], &y[0]),
                        min(&x[1], &y[1]),
                        min(&x[2], &y[2]),
                        min(&x[3], &y[3]),
                    ),
                );
            }
            acc = f32x4_add(acc, term);
            b += 4;
        }
        let mut acc = block_acc4(acc);
        while b < n {
            let mut term = scale(&wb[b], &a[b]) * hsum_i32(block(&wb[b], &a[b])) as f32;
            if let Some(min) = min {
                term += min(&wb[b], &a[b]);
            }
            acc.add(b, term);
            b += 1;
        }
        acc.total()
    }

    fn scale_q8_0<const B: usize>(x: &[u8; B], y: &BlockQ8_0) -> f32 {
        f16_at(x, 0) * crate::blocks::f16_to_f32(y.d.to_bits())
    }

    fn scale_q8_1<const B: usize>(x: &[u8; B], y: &BlockQ8_1) -> f32 {
        f16_at(x, 0) * crate::blocks::f16_to_f32(y.d.to_bits())
    }

    fn min_q8_1<const B: usize>(x: &[u8; B], y: &BlockQ8_1) -> f32 {
        f16_at(x, 2) * crate::blocks::f16_to_f32(y.s.to_bits())
    }

    /// Q4_0 × Q8_0.
    pub fn vec_dot_q4_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
        legacy_dot(w, a, |x, y| small_dot(q4_0_values(x), y), scale_q8_0, None)
    }

    /// Q5_0 × Q8_0.
    pub fn vec_dot_q5_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
        legacy_dot(w, a, |x, y| small_dot(q5_0_values(x), y), scale_q8_0, None)
    }

    /// Q4_1 × Q8_1 (unsigned nibbles; the min enters through the activation's `s`).
    pub fn vec_dot_q4_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
        let block = |x: &[u8; Q4_1_BYTES], y: &BlockQ8_1| {
            let q = load(x, 4);
            small_dot32(lo4(q), hi4(q), load_i8(&y.qs, 0), load_i8(&y.qs, 16))
        };
        legacy_dot(w, a, block, scale_q8_1, Some(&min_q8_1))
    }

    /// Q5_1 × Q8_1 (values `nibble | bit·16 ∈ [0, 31]`).
    pub fn vec_dot_q5_1_q8_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
        let b16 = u8x16_splat(0x10);
        let block = |x: &[u8; Q5_1_BYTES], y: &BlockQ8_1| {
            let qh = u32_at(x, 4);
            let q = load(x, 8);
            let x0 = v128_or(lo4(q), v128_and(bytes_from_bits16(qh, 0), b16));
            let x1 = v128_or(hi4(q), v128_and(bytes_from_bits16(qh, 1), b16));
            small_dot32(x0, x1, load_i8(&y.qs, 0), load_i8(&y.qs, 16))
        };
        legacy_dot(w, a, block, scale_q8_1, Some(&min_q8_1))
    }

    /// Q8_0 × Q8_0.
    pub fn vec_dot_q8_0_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
        legacy_dot(w, a, |x, y| wide_dot(q8_0_values(x), y), scale_q8_0, None)
    }

    /// IQ4_NL × Q8_0 (levels looked up with a byte swizzle).
    pub fn vec_dot_iq4_nl_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
        legacy_dot(w, a, |x, y| wide_dot(iq4_nl_values(x), y), scale_q8_0, None)
    }

    /// Activation rows one multi-token call takes; more are done in groups of this many.
    pub const TOKENS_PER_PASS: usize = 8;
    // `dot::each_pass` hands the prepared products passes of at most this many tokens.
    const _: () = assert!(crate::dot::TOKENS_PER_GROUP_PASS <= TOKENS_PER_PASS);

    /// One weight row against several Q8_0 activation rows, each group of four weight blocks
    /// decoded once for all the tokens; `out[t]` equals the one-row kernel's result for
    /// `acts[t]` bit for bit (see the AVX2 twin). `decode` gives a block's weights as two
    /// 16-byte halves, `dot` their exact sum with an activation block in four lanes.
    #[inline(always)]
    fn legacy_dot_tokens<const B: usize>(
        w: &[u8],
        acts: &[&[BlockQ8_0]],
        out: &mut [f32],
        decode: impl Fn(&[u8; B]) -> [v128; 2],
        dot: impl Fn([v128; 2], &BlockQ8_0) -> v128,
    ) {
        let wb = w.as_chunks::<B>().0;
        let d_a = |y: &BlockQ8_0| crate::blocks::f16_to_f32(y.d.to_bits());
        for (acts, out) in acts.chunks(TOKENS_PER_PASS).zip(out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut acc = [f32x4_splat(0.0); TOKENS_PER_PASS];
            let mut b = 0;
            while b + 4 <= n {
                let x = &wb[b..b + 4];
                let q = [decode(&x[0]), decode(&x[1]), decode(&x[2]), decode(&x[3])];
                let dw =
                    f32x4(f16_at(&x[0], 0), f16_at(&x[1], 0), f16_at(&x[2], 0), f16_at(&x[3], 0));
                for (acc, a) in acc.iter_mut().zip(acts) {
                    let y = &a[b..b + 4];
                    let t = totals4(
                        dot(q[0], &y[0]),
                        dot(q[1], &y[1]),
                        dot(q[2], &y[2]),
                        dot(q[3], &y[3]),
                    );
                    let da = f32x4(d_a(&y[0]), d_a(&y[1]), d_a(&y[2]), d_a(&y[3]));
                    *acc = f32x4_add(*acc, f32x4_mul(f32x4_mul(dw, da), f32x4_convert_i32x4(t)));
                }
                b += 4;
            }
            for ((acc, a), o) in acc.iter().zip(acts).zip(out.iter_mut()) {
                let mut acc = block_acc4(*acc);
                for (k, (x, y)) in wb[b..n].iter().zip(&a[b..n]).enumerate() {
                    acc.add(b + k, (f16_at(x, 0) * d_a(y)) * hsum_i32(dot(decode(x), y)) as f32);
                }
                *o = acc.total();
            }
        }
    }

    /// Q8_0 token rows laid out once for every weight row of a matrix. The wide dot (Q8_0
    /// weights, whose bytes span all of i8, and the formats rewritten as Q8_0 for it,
    /// [`as_q8_0_rows`]) multiplies in i16, so the tokens are widened; without this each row
    /// widened each token's blocks again, four extends per 32 values. With relaxed SIMD, Q4_0
    /// and Q5_0 weights ([`unsigned_rows`]) take them as bytes interleaved four blocks at a time
    /// instead, with each block's sum.
    pub struct PreparedWide<'a> {
        acts: Vec<&'a [BlockQ8_0]>,
        /// Token `t`'s block `b` at `t · blocks + b`: its 32 values as i16 (empty where the
        /// weights take the grouped layout).
        values: Vec<[i16; 32]>,
        /// Its scale as f32, at the same index.
        scales: Vec<f32>,
        /// The sum of its 32 values, at the same index, which [`unsigned_rows`] takes back
        /// `offset` times (empty for the wide dot).
        #[cfg(target_feature = "relaxed-simd")]
        sums: Vec<i32>,
        /// Each token's blocks in fours as [`unsigned_rows`]' grouped layout takes them: token
        /// `t`'s group `g` (blocks `4g .. 4g + 4`) at `(t · groups + g) · 8`, eight vectors of
        /// their bytes interleaved ([`interleave4`]; blocks left over past the last four are
        /// read from `acts`). Empty for the wide dot.
        #[cfg(target_feature = "relaxed-simd")]
        grouped: Vec<v128>,
        blocks: usize,
    }

    impl<'a> PreparedWide<'a> {
        /// `acts`: every token as many blocks, to multiply weights of `ty`.
        pub fn new(acts: &[&'a [BlockQ8_0]], ty: crate::GgmlType) -> Self {
            let blocks = acts.first().map_or(0, |a| a.len());
            let each_block = || acts.iter().flat_map(|a| &a[..blocks]);
            let scales = each_block().map(|y| crate::blocks::f16_to_f32(y.d.to_bits())).collect();
            let grouped_layout = cfg!(target_feature = "relaxed-simd")
                && matches!(ty, crate::GgmlType::Q4_0 | crate::GgmlType::Q5_0);
            let values = match grouped_layout {
                true => Vec::new(),
                false => each_block().map(|y| y.qs.map(i16::from)).collect(),
            };
            #[cfg(target_feature = "relaxed-simd")]
            let (sums, grouped) = match grouped_layout {
                false => (Vec::new(), Vec::new()),
                true => (
                    each_block().map(|y| y.qs.iter().map(|&q| i32::from(q)).sum()).collect(),
                    acts.iter()
                        .flat_map(|a| a[..blocks].as_chunks::<4>().0)
                        .flat_map(|y| {
                            let half = |h: usize| {
                                interleave4([0, 1, 2, 3].map(|k| load_i8(&y[k].qs, 16 * h)))
                            };
                            let [lo, hi] = [half(0), half(1)];
                            [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
                        })
                        .collect(),
                ),
            };
            PreparedWide {
                acts: acts.to_vec(),
                values,
                scales,
                #[cfg(target_feature = "relaxed-simd")]
                sums,
                #[cfg(target_feature = "relaxed-simd")]
                grouped,
                blocks,
            }
        }

        /// Tokens prepared.
        pub fn len(&self) -> usize {
            self.acts.len()
        }

        /// Whether no token was prepared.
        pub fn is_empty(&self) -> bool {
            self.acts.is_empty()
        }
    }

    /// Eight i16 at `v[k * 8..]`.
    #[inline(always)]
    fn load_i16x8(v: &[i16; 32], k: usize) -> v128 {
        let s = &v[8 * k..8 * k + 8];
        // SAFETY: `s` has exactly 16 readable bytes and `v128_load` is a 1-aligned load.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// Four f32 (or i32) at `v[at..at + 4]` as one vector.
    #[inline(always)]
    fn four_at<T: Copy>(v: &[T], at: usize) -> v128 {
        const { assert!(std::mem::size_of::<T>() == 4) };
        let s = &v[at..at + 4];
        // SAFETY: `s` is four readable 4-byte values (16 bytes); `v128_load` is 1-aligned.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// The driver of the products of one row of Q8_0-layout blocks against a pass of prepared
    /// tokens (`out.len()` ≤ [`TOKENS_PER_PASS`] of them from `t0`), `out[k]` bit for bit
    /// [`legacy_dot_tokens`]'s for token `t0 + k`: the weight blocks four at a time, decoded
    /// once for the pass (`decode`), each token's four exact block totals (`totals(&q, t, b)`,
    /// for blocks `b..b + 4` of token `t`) scaled by `d_w·d_a` into [`crate::order`]'s four
    /// lanes; the blocks left over one by one (`total(x, t, j)`). [`wide_pass`] gives those
    /// three.
    #[inline(always)]
    fn prepared_pass<const N: usize, Q>(
        w: &[u8],
        tokens: &PreparedWide,
        t0: usize,
        out: &mut [f32],
        decode: impl Fn(&[u8; Q8_0_BYTES]) -> Q,
        totals: impl Fn(&[Q; 4], usize, usize) -> v128,
        total: impl Fn(&[u8; Q8_0_BYTES], usize, usize) -> i32,
    ) {
        let wb = w.as_chunks::<Q8_0_BYTES>().0;
        let n = wb.len().min(tokens.blocks);
        let mut acc = [f32x4_splat(0.0); N];
        let mut b = 0;
        while b + 4 <= n {
            let x = &wb[b..b + 4];
            let q = [decode(&x[0]), decode(&x[1]), decode(&x[2]), decode(&x[3])];
            let dw = f32x4(f16_at(&x[0], 0), f16_at(&x[1], 0), f16_at(&x[2], 0), f16_at(&x[3], 0));
            for (k, acc) in acc.iter_mut().enumerate().take(out.len()) {
                let t = totals(&q, t0 + k, b);
                let da = four_at(&tokens.scales, (t0 + k) * tokens.blocks + b);
                *acc = f32x4_add(*acc, f32x4_mul(f32x4_mul(dw, da), f32x4_convert_i32x4(t)));
            }
            b += 4;
        }
        for (k, (acc, o)) in acc.iter().zip(out.iter_mut()).enumerate() {
            let mut acc = block_acc4(*acc);
            let t = t0 + k;
            for (j, x) in wb.iter().enumerate().take(n).skip(b) {
                let d_a = tokens.scales[t * tokens.blocks + j];
                acc.add(j, (f16_at(x, 0) * d_a) * total(x, t, j) as f32);
            }
            *o = acc.total();
        }
    }

    /// One Q8_0 weight row against a pass of prepared tokens ([`prepared_pass`]): each block's
    /// exact integer total from four `i32x4.dot_i16x8_s` of the widened weights and the
    /// prepared activations.
    #[inline(always)]
    fn wide_pass(w: &[u8], tokens: &PreparedWide, t0: usize, out: &mut [f32]) {
        let widened = |x: &[u8; Q8_0_BYTES]| {
            let [h0, h1] = q8_0_values(x);
            [
                i16x8_extend_low_i8x16(h0),
                i16x8_extend_high_i8x16(h0),
                i16x8_extend_low_i8x16(h1),
                i16x8_extend_high_i8x16(h1),
            ]
        };
        let totals = |q: &[[v128; 4]; 4], t: usize, b: usize| {
            let at = t * tokens.blocks + b;
            let block = |j: usize| {
                let (a, q) = (&tokens.values[at + j], &q[j]);
                i32x4_add(
                    i32x4_add(
                        i32x4_dot_i16x8(q[0], load_i16x8(a, 0)),
                        i32x4_dot_i16x8(q[1], load_i16x8(a, 1)),
                    ),
                    i32x4_add(
                        i32x4_dot_i16x8(q[2], load_i16x8(a, 2)),
                        i32x4_dot_i16x8(q[3], load_i16x8(a, 3)),
                    ),
                )
            };
            totals4(block(0), block(1), block(2), block(3))
        };
        let total = |x: &[u8; Q8_0_BYTES], t: usize, j: usize| {
            hsum_i32(wide_dot(q8_0_values(x), &tokens.acts[t][j]))
        };
        // One token (a matrix times one activation row) with one accumulator, which stays in a
        // register: the pass's eight lived on the stack, each step a load and a store.
        match out.len() {
            1 => prepared_pass::<1, _>(w, tokens, t0, out, widened, totals, total),
            _ => prepared_pass::<TOKENS_PER_PASS, _>(w, tokens, t0, out, widened, totals, total),
        }
    }

    /// Rows of Q8_0 weights (whole rows of `row_bytes`) × prepared Q8_0 tokens:
    /// `out[r * tokens.len() + t]`, each equal to the one-row kernel's result bit for bit.
    pub fn wide_q8_0_rows(w: &[u8], row_bytes: usize, tokens: &PreparedWide, out: &mut [f32]) {
        assert_eq!(tokens.values.len(), tokens.scales.len(), "tokens prepared for the wide dot");
        // A pass of tokens over a group of rows before the next pass (`dot::each_pass`): at 304
        // tokens of 896 columns the prepared tokens are 545 KiB, read from L2 for every row if
        // each row took every token.
        crate::dot::each_pass(w, row_bytes, tokens.len(), out, |row, t, out| {
            wide_pass(row, tokens, t.start, out)
        });
    }

    /// A Q8_0 block's weights as two 16-byte halves.
    #[inline(always)]
    fn q8_0_values(x: &[u8; Q8_0_BYTES]) -> [v128; 2] {
        [load(x, 2), load(x, 18)]
    }

    /// Whether [`as_q8_0_rows`] takes rows of `ty`.
    pub fn has_q8_0_form(ty: crate::GgmlType) -> bool {
        use crate::GgmlType::*;
        matches!(ty, Q8_0 | Q4_0 | Q5_0 | IQ4_NL)
    }

    thread_local! {
        /// Q4_0, Q5_0 or IQ4_NL rows rewritten as Q8_0 (see [`as_q8_0_rows`]); reused from call
        /// to call.
        static AS_Q8_0: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// [`AS_Q8_0`]'s buffer, emptied, with room for `bytes`: to be put back after use.
    fn rewrite_buffer(bytes: usize) -> Vec<u8> {
        let mut out = AS_Q8_0.with(|b| std::mem::take(&mut *b.borrow_mut()));
        out.clear();
        out.reserve(bytes);
        out
    }

    /// The 16 bytes of `v`, appended to `out`.
    fn push_v128(out: &mut Vec<u8>, v: v128) {
        let mut bytes = [0u8; 16];
        // SAFETY: 16 writable bytes; `v128_store` is a 1-aligned store.
        unsafe { v128_store(bytes.as_mut_ptr() as *mut v128, v) };
        out.extend_from_slice(&bytes);
    }

    /// Block `x` (its first two bytes the f16 scale) appended to `out` in Q8_0's layout: the
    /// scale as it is, then its values' two 16-byte halves.
    fn push_as_q8_0<const B: usize>(out: &mut Vec<u8>, x: &[u8; B], [lo, hi]: [v128; 2]) {
        out.extend_from_slice(&x[..2]);
        push_v128(out, lo);
        push_v128(out, hi);
    }

    /// The blocks of `w` (whole rows of `row_bytes`, blocks of `B` bytes whose first two are
    /// the f16 scale) in Q8_0's layout: the scale as it is, `decode(x)`'s two halves as the
    /// values; with the new rows' length. The buffer is [`AS_Q8_0`]'s, to be put back.
    fn rewrite_as_q8_0<const B: usize>(
        w: &[u8],
        row_bytes: usize,
        decode: impl Fn(&[u8; B]) -> [v128; 2],
    ) -> (Vec<u8>, usize) {
        let mut out = rewrite_buffer(w.len() / B * Q8_0_BYTES);
        for x in w.as_chunks::<B>().0 {
            push_as_q8_0(&mut out, x, decode(x));
        }
        (out, row_bytes / B * Q8_0_BYTES)
    }

    /// `f(rows, row_bytes)` on the rows of `w` (whole rows of `row_bytes`) as Q8_0 blocks: Q8_0
    /// rows as they are; Q4_0, Q5_0 or IQ4_NL rows rewritten, each block's f16 scale as it is
    /// and its values, integers that fit an i8, as i8. A dot with the Q8_0 form is then the same
    /// integers and the same float steps as with the original (the 32-value formats share
    /// [`crate::order`]'s order), so the prepared Q8_0 rows × tokens product applies, decoding
    /// each block once instead of once a token. `None`, and `f` not called, for any other type
    /// (see [`has_q8_0_form`]).
    pub fn as_q8_0_rows<R>(
        ty: crate::GgmlType,
        w: &[u8],
        row_bytes: usize,
        f: impl FnOnce(&[u8], usize) -> R,
    ) -> Option<R> {
        let (rows, q8_row_bytes) = match ty {
            crate::GgmlType::Q8_0 => return Some(f(w, row_bytes)),
            crate::GgmlType::Q4_0 => rewrite_as_q8_0(w, row_bytes, q4_0_values),
            crate::GgmlType::Q5_0 => rewrite_as_q8_0(w, row_bytes, q5_0_values),
            crate::GgmlType::IQ4_NL => rewrite_as_q8_0(w, row_bytes, iq4_nl_values),
            _ => return None,
        };
        let result = f(&rows, q8_row_bytes);
        AS_Q8_0.with(|b| *b.borrow_mut() = rows);
        Some(result)
    }

    /// Q4_0 and Q5_0 rows (whole rows of `row_bytes`) × prepared tokens with relaxed SIMD's
    /// `i16x8.relaxed_dot_i8x16_i7x16_s`: `out[r * tokens.len() + t]`, each equal to the one-row
    /// kernel's result bit for bit. The weights are rewritten once in [`grouped_rows`]' layout
    /// as their stored, unsigned values (Q4_0's nibble q ∈ [0, 15], Q5_0's 5-bit q ∈ [0, 31]:
    /// within the 7 bits for which the instruction's result is fixed, and no pair sum near
    /// saturation); a block's value is `q − offset` (8, 16), so its exact integer is
    /// `Σ q·a − offset · Σ a`, the prepared block sum taken back — the same integer as the
    /// signed product's, then the same float steps ([`grouped_pass`]). `false`, and nothing
    /// done, for other types.
    #[cfg(target_feature = "relaxed-simd")]
    pub fn unsigned_rows(
        ty: crate::GgmlType,
        w: &[u8],
        row_bytes: usize,
        tokens: &PreparedWide,
        out: &mut [f32],
    ) -> bool {
        let unsigned_q4_0 = |x: &[u8; Q4_0_BYTES]| {
            let q = load(x, 2);
            [lo4(q), hi4(q)]
        };
        let unsigned_q5_0 = |x: &[u8; Q5_0_BYTES]| {
            let (qh, q) = (u32_at(x, 2), load(x, 6));
            let high = u8x16_splat(0x10);
            [
                v128_or(lo4(q), v128_and(bytes_from_bits16(qh, 0), high)),
                v128_or(hi4(q), v128_and(bytes_from_bits16(qh, 1), high)),
            ]
        };
        // `offset · Σ a` as a shift by the offset's log2 (a constant in the loop).
        let mut each_row =
            |rows: &[u8], row_bytes, pass: fn(&[u8], &PreparedWide, usize, &mut [f32])| {
                crate::dot::each_pass(rows, row_bytes, tokens.len(), out, |row, t, out| {
                    pass(row, tokens, t.start, out)
                })
            };
        let rows = match ty {
            crate::GgmlType::Q4_0 => {
                let (rows, rb) = grouped_rows(w, row_bytes, unsigned_q4_0);
                each_row(&rows, rb, grouped_pass::<3>);
                rows
            }
            crate::GgmlType::Q5_0 => {
                let (rows, rb) = grouped_rows(w, row_bytes, unsigned_q5_0);
                each_row(&rows, rb, grouped_pass::<4>);
                rows
            }
            _ => return false,
        };
        AS_Q8_0.with(|b| *b.borrow_mut() = rows);
        true
    }

    /// Bytes of four blocks in [`grouped_rows`]' layout: their scales as four f32, then their
    /// 128 values as eight interleaved vectors ([`interleave4`]).
    #[cfg(target_feature = "relaxed-simd")]
    const GROUP_BYTES: usize = 16 + 128;

    /// The words (4-byte pieces) of four vectors transposed: vector `j` of the result holds word
    /// `j` of `h[0]`, `h[1]`, `h[2]`, `h[3]` in that order. Applied alike to four blocks'
    /// weights and to their activations, it keeps each block's products within one i32 lane
    /// (lane `k`: block `k`), so a dot of the interleaved vectors sums every block apart with no
    /// reduction after it.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn interleave4(h: [v128; 4]) -> [v128; 4] {
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(h[0], h[1]);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(h[0], h[1]);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(h[2], h[3]);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(h[2], h[3]);
        [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ]
    }

    /// The blocks of `w` (whole rows of `row_bytes`, blocks of `B` bytes whose first two are the
    /// f16 scale) rewritten row by row: each four blocks as [`GROUP_BYTES`] (scales as f32, the
    /// values `decode` gives interleaved), the blocks left over past the last four in Q8_0's
    /// layout (the f16 scale as it is, the values); with the new rows' length. The buffer is
    /// [`AS_Q8_0`]'s, to be put back.
    #[cfg(target_feature = "relaxed-simd")]
    fn grouped_rows<const B: usize>(
        w: &[u8],
        row_bytes: usize,
        decode: impl Fn(&[u8; B]) -> [v128; 2],
    ) -> (Vec<u8>, usize) {
        let blocks_per_row = row_bytes / B;
        let grouped_row_bytes = blocks_per_row / 4 * GROUP_BYTES + blocks_per_row % 4 * Q8_0_BYTES;
        let mut out = rewrite_buffer(w.len() / row_bytes.max(1) * grouped_row_bytes);
        for row in w.chunks_exact(row_bytes.max(1)) {
            let (groups, left) = row.as_chunks::<B>().0.as_chunks::<4>();
            for x in groups {
                let [b0, b1, b2, b3] = [decode(&x[0]), decode(&x[1]), decode(&x[2]), decode(&x[3])];
                push_v128(
                    &mut out,
                    f32x4(f16_at(&x[0], 0), f16_at(&x[1], 0), f16_at(&x[2], 0), f16_at(&x[3], 0)),
                );
                for half in [0, 1] {
                    for v in interleave4([b0[half], b1[half], b2[half], b3[half]]) {
                        push_v128(&mut out, v);
                    }
                }
            }
            for x in left {
                push_as_q8_0(&mut out, x, decode(x));
            }
        }
        (out, grouped_row_bytes)
    }

    /// One row of [`grouped_rows`] against a pass of prepared tokens (`out.len()` ≤
    /// [`TOKENS_PER_PASS`] of them from `t0`), token by token: each four blocks' products summed
    /// in i16 lanes four vectors at a time (8 products a lane, |Σ| ≤ 8 · 31 · 128 = 31744: exact)
    /// and widened once, lane `k` block `k`'s `Σ q·a`; less `Σ a << OFFSET_SHIFT`; scaled by
    /// `d_w·d_a` into [`crate::order`]'s four lanes; the blocks left over one by one. The same
    /// integers and float steps as the one-row kernel.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn grouped_pass<const OFFSET_SHIFT: u32>(
        w: &[u8],
        tokens: &PreparedWide,
        t0: usize,
        out: &mut [f32],
    ) {
        let groups = tokens.blocks / 4;
        let (grouped, left) = w.split_at((groups * GROUP_BYTES).min(w.len()));
        let (gw, lw) = (grouped.as_chunks::<GROUP_BYTES>().0, left.as_chunks::<Q8_0_BYTES>().0);
        for (k, o) in out.iter_mut().enumerate() {
            let t = t0 + k;
            let acts = &tokens.grouped[t * groups * 8..(t + 1) * groups * 8];
            let mut acc = f32x4_splat(0.0);
            for (g, (x, a)) in gw.iter().zip(acts.as_chunks::<8>().0).enumerate() {
                let dot = |j: usize| i16x8_relaxed_dot_i8x16_i7x16(a[j], load(x, 16 + 16 * j));
                let lo = i16x8_add(i16x8_add(dot(0), dot(1)), i16x8_add(dot(2), dot(3)));
                let hi = i16x8_add(i16x8_add(dot(4), dot(5)), i16x8_add(dot(6), dot(7)));
                let sums =
                    i32x4_add(i32x4_extadd_pairwise_i16x8(lo), i32x4_extadd_pairwise_i16x8(hi));
                let at = t * tokens.blocks + 4 * g;
                let totals = i32x4_sub(sums, i32x4_shl(four_at(&tokens.sums, at), OFFSET_SHIFT));
                let da = four_at(&tokens.scales, at);
                acc = f32x4_add(
                    acc,
                    f32x4_mul(f32x4_mul(load(x, 0), da), f32x4_convert_i32x4(totals)),
                );
            }
            let mut acc = block_acc4(acc);
            for (j, x) in lw.iter().enumerate() {
                let b = 4 * groups + j;
                let (y, at) = (&tokens.acts[t][b], t * tokens.blocks + b);
                let zero = i32x4_splat(0);
                let lo = i32x4_relaxed_dot_i8x16_i7x16_add(load_i8(&y.qs, 0), load(x, 2), zero);
                let sum = i32x4_relaxed_dot_i8x16_i7x16_add(load_i8(&y.qs, 16), load(x, 18), lo);
                let total = hsum_i32(sum) - (tokens.sums[at] << OFFSET_SHIFT);
                acc.add(b, (f16_at(x, 0) * tokens.scales[at]) * total as f32);
            }
            *o = acc.total();
        }
    }

    /// A Q5_0 block's weights as two halves of i8.
    #[inline(always)]
    fn q5_0_values(x: &[u8; Q5_0_BYTES]) -> [v128; 2] {
        let f0 = u8x16_splat(0xF0);
        let (qh, q) = (u32_at(x, 2), load(x, 6));
        // Where the 5th bit is clear, a high nibble of 0xF makes the i8 `nibble − 16`; where it
        // is set, the byte stays `nibble` = `(nibble + 16) − 16`.
        [
            v128_or(lo4(q), v128_andnot(f0, bytes_from_bits16(qh, 0))),
            v128_or(hi4(q), v128_andnot(f0, bytes_from_bits16(qh, 1))),
        ]
    }

    /// A Q4_0 block's weights as two halves of i8.
    #[inline(always)]
    fn q4_0_values(x: &[u8; Q4_0_BYTES]) -> [v128; 2] {
        let (eight, q) = (i8x16_splat(8), load(x, 2));
        [i8x16_sub(lo4(q), eight), i8x16_sub(hi4(q), eight)]
    }

    /// An IQ4_NL block's weights (the levels its nibbles index) as two halves of i8.
    #[inline(always)]
    fn iq4_nl_values(x: &[u8; IQ4_NL_BYTES]) -> [v128; 2] {
        let (table, q) = (load_i8(&KVALUES_IQ4NL, 0), load(x, 2));
        [i8x16_swizzle(table, lo4(q)), i8x16_swizzle(table, hi4(q))]
    }

    /// Weights with |x| ≤ 31 (Q4_0, Q5_0) × a Q8_0 block.
    #[inline(always)]
    fn small_dot(q: [v128; 2], y: &BlockQ8_0) -> v128 {
        small_dot32(q[0], q[1], load_i8(&y.qs, 0), load_i8(&y.qs, 16))
    }

    /// Any signed weights (Q8_0, IQ4_NL) × a Q8_0 block.
    #[inline(always)]
    fn wide_dot(q: [v128; 2], y: &BlockQ8_0) -> v128 {
        i32x4_add(dot16(q[0], load_i8(&y.qs, 0)), dot16(q[1], load_i8(&y.qs, 16)))
    }

    /// Q4_0 × several Q8_0 rows; `out.len() == acts.len()`.
    pub fn vec_dot_q4_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
        legacy_dot_tokens(w, acts, out, q4_0_values, small_dot)
    }

    /// Q5_0 × several Q8_0 rows; `out.len() == acts.len()`.
    pub fn vec_dot_q5_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
        legacy_dot_tokens(w, acts, out, q5_0_values, small_dot)
    }

    /// Q8_0 × several Q8_0 rows; `out.len() == acts.len()`.
    pub fn vec_dot_q8_0_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
        legacy_dot_tokens(w, acts, out, q8_0_values, wide_dot)
    }

    /// IQ4_NL × several Q8_0 rows; `out.len() == acts.len()`.
    pub fn vec_dot_iq4_nl_q8_0_tokens(w: &[u8], acts: &[&[BlockQ8_0]], out: &mut [f32]) {
        legacy_dot_tokens(w, acts, out, iq4_nl_values, wide_dot)
    }

    /// Q2_K × Q8_K. Each 16-byte piece of a 2-bit plane is one 16-value sub-block.
    pub fn vec_dot_q2_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let m3 = u8x16_splat(3);
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q2_K_BYTES>().0.iter().zip(a) {
            let summs: i32 =
                y.bsums.iter().zip(&x[..16]).map(|(&b, &sc)| b as i32 * (sc >> 4) as i32).sum();
            let mut sumi = i32x4_splat(0);
            for k in 0..2 {
                for t in 0..2 {
                    let q2 = load(x, 16 + 32 * k + 16 * t);
                    for j in 0..4 {
                        let g = 4 * k + j;
                        let sub = 2 * g + t;
                        let v = v128_and(shr_bytes(q2, 2 * j as u32), m3);
                        let p = dot16(v, load_i8(&y.qs, 16 * sub));
                        sumi = i32x4_add(sumi, i32x4_mul(p, i32x4_splat((x[sub] & 0xF) as i32)));
                    }
                }
            }
            let dall = y.d * f16_at(x, 80);
            let dmin = y.d * f16_at(x, 82);
            sumf += dall * hsum_i32(sumi) as f32 - dmin * summs as f32;
        }
        sumf
    }

    /// Q3_K × Q8_K: values `(2 low bits) − 4·(hmask bit clear) ∈ [−4, 3]`, scales `s − 32`.
    pub fn vec_dot_q3_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let m3 = u8x16_splat(3);
        let four = u8x16_splat(4);
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q3_K_BYTES>().0.iter().zip(a) {
            let scales = scales_q3_k(arr12(x, 96));
            let hm = [load(x, 0), load(x, 16)];
            let mut sumi = i32x4_splat(0);
            for k in 0..2 {
                for (t, hm_t) in hm.iter().enumerate() {
                    let q3 = load(x, 32 + 32 * k + 16 * t);
                    for j in 0..4 {
                        let g = 4 * k + j;
                        let sub = 2 * g + t;
                        let lo = v128_and(shr_bytes(q3, 2 * j as u32), m3);
                        let bit = u8x16_splat(1 << g);
                        let sub4 = v128_andnot(four, i8x16_eq(v128_and(*hm_t, bit), bit));
                        let p = dot16(i8x16_sub(lo, sub4), load_i8(&y.qs, 16 * sub));
                        sumi = i32x4_add(sumi, i32x4_mul(p, i32x4_splat(scales[sub] as i32 - 32)));
                    }
                }
            }
            let d = f16_at(x, 108) * y.d;
            sumf += d * hsum_i32(sumi) as f32;
        }
        sumf
    }

    /// A Q4_K/Q5_K block's eight scales and eight mins (six bits each: [`scale_min_k4_words`]'s
    /// unpacking of the 12 bytes at offset 4) as bytes 0..8 and 8..16 of one vector, unpacked
    /// in its lanes — where the scalar words took a dozen integer operations and four moves
    /// into vectors, each block, and were a sixth of the Q4_K dot's time in Chromium.
    #[inline(always)]
    fn k4_scales_mins<const N: usize>(x: &[u8; N]) -> v128 {
        // [u0, u1, u2, ·]: the three little-endian words of the scale field.
        let v = load(x, 4);
        let p = i32x4_shuffle::<0, 2, 1, 2>(v, v);
        // [u0, u2, u1, u2 >> 4] masked: scales 0..4, the low bits of 4..8, mins 0..4, those of
        // mins 4..8.
        let low = v128_and(
            i32x4_shuffle::<0, 1, 2, 7>(p, u32x4_shr(p, 4)),
            u32x4(0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f),
        );
        // The top two bits of scales 4..8 (mins 4..8) are those of u0's (u1's) bytes, in bits
        // 4 and 5: `((u >> 6) & 0x03) << 4` per byte is `(u >> 2) & 0x30`.
        let r = i32x4_shuffle::<0, 0, 1, 1>(v, v);
        let high = v128_and(u32x4_shr(r, 2), u32x4(0, 0x3030_3030, 0, 0x3030_3030));
        v128_or(low, high)
    }

    /// Bytes `8h..8h + 8` of [`k4_scales_mins`]' vector (h = 0: the scales, 1: the mins), each
    /// doubled into an i16 pair: `[b₀, b₀, b₁, b₁, b₂, b₂, b₃, b₃]` and the same of `b₄..b₈`,
    /// as an i16 dot multiplies them with pairs of lanes. One-input byte shuffles and
    /// widenings, what V8 lowers to a `pshufb` and `pmovzxbw`/`punpckhbw`.
    #[inline(always)]
    fn k4_pairs<const H: usize>(sm: v128) -> [v128; 2] {
        let doubled = if H == 0 {
            i8x16_shuffle::<0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7>(sm, sm)
        } else {
            i8x16_shuffle::<8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15>(sm, sm)
        };
        [u16x8_extend_low_u8x16(doubled), u16x8_extend_high_u8x16(doubled)]
    }

    /// `Σ_j mins[j]·(bsums[2j] + bsums[2j+1])` of a Q4_K/Q5_K block in four i32 lanes, from
    /// its mins doubled into i16 pairs ([`k4_pairs`]`::<1>`).
    #[inline(always)]
    fn k4_min_lanes(min_pairs: [v128; 2], y: &BlockQ8K) -> v128 {
        // SAFETY: `bsums` is 16 i16 = 32 readable bytes; `v128_load` is 1-aligned.
        let (bs_lo, bs_hi) = unsafe {
            let p = y.bsums.as_ptr() as *const v128;
            (v128_load(p), v128_load(p.add(1)))
        };
        i32x4_add(i32x4_dot_i16x8(bs_lo, min_pairs[0]), i32x4_dot_i16x8(bs_hi, min_pairs[1]))
    }

    /// Scale `k` (0..8) of [`k4_scales_mins`]' vector, as an i16 in every lane.
    #[inline(always)]
    fn k4_scale_splat(sm: v128, k: usize) -> v128 {
        let word = if k < 4 { u32x4_extract_lane::<0>(sm) } else { u32x4_extract_lane::<1>(sm) };
        i16x8_splat(((word >> (8 * (k % 4))) & 0xff) as i16)
    }

    /// Σ of the 32 products `a·ya ‖ b·yb` for weights `a`, `b` in [0, 31] (Q4_K nibbles, Q5_K
    /// values), in eight i16 lanes of four products each (|lane| ≤ 4·31·128 = 15872: no
    /// overflow). Which products share a lane differs between the two forms; the lanes' total
    /// does not.
    #[inline(always)]
    fn nibble_dot32(a: v128, b: v128, ya: v128, yb: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        {
            i16x8_add(i16x8_relaxed_dot_i8x16_i7x16(ya, a), i16x8_relaxed_dot_i8x16_i7x16(yb, b))
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        {
            i16x8_add(
                i16x8_add(i16x8_extmul_low_i8x16(a, ya), i16x8_extmul_high_i8x16(a, ya)),
                i16x8_add(i16x8_extmul_low_i8x16(b, yb), i16x8_extmul_high_i8x16(b, yb)),
            )
        }
    }

    /// `scale · Σ a·ya ‖ b·yb` of a 32-value sub-block with weights `a`, `b` in [0, 31] (Q5_K
    /// values), in four i32 lanes (`scale`: the sub-block's scale in every i16 lane): the
    /// products four to an i16 lane ([`nibble_dot32`]), widened by one dot with the scale.
    #[inline(always)]
    fn scaled_dot32(a: v128, b: v128, ya: v128, yb: v128, scale: v128) -> v128 {
        i32x4_dot_i16x8(nibble_dot32(a, b, ya, yb), scale)
    }

    /// A Q4_K block's 256 nibbles as 16 vectors: sub-block `k`'s first and second 16 in vectors
    /// `2k` and `2k + 1`.
    #[inline(always)]
    fn q4k_values(x: &[u8; Q4_K_BYTES]) -> [v128; 16] {
        let mut v = [i8x16_splat(0); 16];
        for j in 0..4 {
            let (qa, qb) = (load(x, 16 + 32 * j), load(x, 32 + 32 * j));
            v[4 * j..4 * j + 4].copy_from_slice(&[lo4(qa), lo4(qb), hi4(qa), hi4(qb)]);
        }
        v
    }

    /// `Σ_k scale_k · Σ q·y` over a Q4_K block's eight sub-blocks, in four i32 lanes, from its
    /// nibbles ([`q4k_values`]) and scales ([`k4_pairs`]`::<0>`). The products stay in i16 lanes
    /// while four sub-blocks are folded side by side — four products a lane ([`nibble_dot32`]),
    /// then eight, then sixteen, |Σ| ≤ 16·15·128 = 30720 < 2¹⁵ (nibbles are ≤ 15, which Q5_K's
    /// values are not) — so one i16 dot scales and widens four sub-blocks at once, where the
    /// per-sub-block form needs a dot, an add and a scale splat each. The same exact integer.
    #[inline(always)]
    fn q4k_scaled_sums(v: &[v128; 16], y: &BlockQ8K, scales: [v128; 2]) -> v128 {
        let mut sums = [i32x4_splat(0); 2];
        for (h, sum) in sums.iter_mut().enumerate() {
            let p: [v128; 4] = std::array::from_fn(|i| {
                let k = 4 * h + i;
                let (ya, yb) = (load_i8(&y.qs, 32 * k), load_i8(&y.qs, 32 * k + 16));
                nibble_dot32(v[2 * k], v[2 * k + 1], ya, yb)
            });
            // Sub-blocks i and i + 1 side by side: [Pᵢ(0 + 2), Pᵢ(1 + 3), Pᵢ₊₁(0 + 2), Pᵢ₊₁(1 + 3)]
            // in 32-bit lanes (each two i16 of eight products).
            let fold64 = |a: v128, b: v128| {
                i16x8_add(i64x2_shuffle::<0, 2>(a, b), i64x2_shuffle::<1, 3>(a, b))
            };
            let (s01, s23) = (fold64(p[0], p[1]), fold64(p[2], p[3]));
            // Sub-block i's sixteen-product sums in 32-bit lane i, scaled and widened by one dot.
            let t = i16x8_add(
                i32x4_shuffle::<0, 2, 4, 6>(s01, s23),
                i32x4_shuffle::<1, 3, 5, 7>(s01, s23),
            );
            *sum = i32x4_dot_i16x8(t, scales[h]);
        }
        i32x4_add(sums[0], sums[1])
    }

    /// Q4_K × Q8_K ([`q4k_scaled_sums`] a block).
    pub fn vec_dot_q4_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q4_K_BYTES>().0.iter().zip(a) {
            let sm = k4_scales_mins(x);
            let (sumi, summ) = totals_as_f32(
                q4k_scaled_sums(&q4k_values(x), y, k4_pairs::<0>(sm)),
                k4_min_lanes(k4_pairs::<1>(sm), y),
            );
            let d = f16_at(x, 0) * y.d;
            let dmin = f16_at(x, 2) * y.d;
            sumf += d * sumi - dmin * summ;
        }
        sumf
    }

    /// The multi-token driver of the Q4_K and Q5_K dots: `out[t]` equals the one-token
    /// kernel's result for `acts[t]` bit for bit, each super-block unpacked once for all the
    /// tokens: `prepare(x, sm)` (`sm`: the block's [`k4_scales_mins`]) gives what
    /// `sums(prepared, y)` needs (values, scale vectors) to give the block's scaled sums in four
    /// i32 lanes.
    #[inline(always)]
    fn k4_dot_tokens<const B: usize, P>(
        w: &[u8],
        acts: &[&[BlockQ8K]],
        out: &mut [f32],
        prepare: impl Fn(&[u8; B], v128) -> P,
        sums: impl Fn(&P, &BlockQ8K) -> v128,
    ) {
        let wb = w.as_chunks::<B>().0;
        for (acts, out) in acts.chunks(TOKENS_PER_PASS).zip(out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut sumf = [0f32; TOKENS_PER_PASS];
            for (b, x) in wb[..n].iter().enumerate() {
                let sm = k4_scales_mins(x);
                let (prepared, min_pairs) = (prepare(x, sm), k4_pairs::<1>(sm));
                let (dx, mx) = (f16_at(x, 0), f16_at(x, 2));
                for (sumf, a) in sumf.iter_mut().zip(acts) {
                    let y = &a[b];
                    let (sumi, summ) =
                        totals_as_f32(sums(&prepared, y), k4_min_lanes(min_pairs, y));
                    let d = dx * y.d;
                    let dmin = mx * y.d;
                    *sumf += d * sumi - dmin * summ;
                }
            }
            out.copy_from_slice(&sumf[..out.len()]);
        }
    }

    /// Q4_K × several Q8_K rows: `out[t]` equals [`vec_dot_q4_k_q8_k`]`(w, acts[t])` bit for
    /// bit (see [`k4_dot_tokens`]).
    pub fn vec_dot_q4_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
        k4_dot_tokens(
            w,
            acts,
            out,
            |x: &[u8; Q4_K_BYTES], sm| (q4k_values(x), k4_pairs::<0>(sm)),
            |(v, scales), y| q4k_scaled_sums(v, y, *scales),
        )
    }

    /// Q5_K × several Q8_K rows: `out[t]` equals [`vec_dot_q5_k_q8_k`]`(w, acts[t])` bit for
    /// bit (see [`k4_dot_tokens`]).
    pub fn vec_dot_q5_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
        let b16 = u8x16_splat(0x10);
        let prepare = |x: &[u8; Q5_K_BYTES], sm| {
            let qh = [load(x, 16), load(x, 32)];
            let mut v = [i8x16_splat(0); 16];
            for j in 0..4 {
                let q = [load(x, 48 + 32 * j), load(x, 64 + 32 * j)];
                let bit0 = u8x16_splat(1 << (2 * j));
                let bit1 = u8x16_splat(1 << (2 * j + 1));
                for t in 0..2 {
                    let h0 = v128_and(i8x16_eq(v128_and(qh[t], bit0), bit0), b16);
                    let h1 = v128_and(i8x16_eq(v128_and(qh[t], bit1), bit1), b16);
                    v[4 * j + t] = v128_or(lo4(q[t]), h0);
                    v[4 * j + 2 + t] = v128_or(hi4(q[t]), h1);
                }
            }
            let scale: [v128; 8] = std::array::from_fn(|k| k4_scale_splat(sm, k));
            (v, scale)
        };
        let sums = |(v, scale): &([v128; 16], [v128; 8]), y: &BlockQ8K| {
            let mut sumi = i32x4_splat(0);
            for k in 0..8 {
                let (ya, yb) = (load_i8(&y.qs, 32 * k), load_i8(&y.qs, 32 * k + 16));
                sumi = i32x4_add(sumi, scaled_dot32(v[2 * k], v[2 * k + 1], ya, yb, scale[k]));
            }
            sumi
        };
        k4_dot_tokens(w, acts, out, prepare, sums)
    }

    /// Q5_K × Q8_K.
    pub fn vec_dot_q5_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let b16 = u8x16_splat(0x10);
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q5_K_BYTES>().0.iter().zip(a) {
            let sm = k4_scales_mins(x);
            let qh = [load(x, 16), load(x, 32)];
            let mut sumi = i32x4_splat(0);
            for j in 0..4 {
                let q = [load(x, 48 + 32 * j), load(x, 64 + 32 * j)];
                let bit0 = u8x16_splat(1 << (2 * j));
                let bit1 = u8x16_splat(1 << (2 * j + 1));
                // Sub-block 2j: the low nibbles and bit 2j; 2j + 1: the high ones and bit 2j + 1.
                let [lo, hi]: [[v128; 2]; 2] = std::array::from_fn(|half| {
                    std::array::from_fn(|t| {
                        let (bit, nibble) =
                            if half == 0 { (bit0, lo4(q[t])) } else { (bit1, hi4(q[t])) };
                        v128_or(nibble, v128_and(i8x16_eq(v128_and(qh[t], bit), bit), b16))
                    })
                });
                let y = |o: usize| load_i8(&y.qs, 64 * j + o);
                let (s0, s1) = (k4_scale_splat(sm, 2 * j), k4_scale_splat(sm, 2 * j + 1));
                sumi = i32x4_add(sumi, scaled_dot32(lo[0], lo[1], y(0), y(16), s0));
                sumi = i32x4_add(sumi, scaled_dot32(hi[0], hi[1], y(32), y(48), s1));
            }
            let (sumi, summ) = totals_as_f32(sumi, k4_min_lanes(k4_pairs::<1>(sm), y));
            let d = f16_at(x, 0) * y.d;
            let dmin = f16_at(x, 2) * y.d;
            sumf += d * sumi - dmin * summ;
        }
        sumf
    }

    /// The unsigned 6-bit values of a Q6_K block's sub-blocks `8h + 2g + t`, g = 0..4 (16
    /// values each). Masking before shifting keeps every bit inside its own byte.
    #[inline(always)]
    fn q6k_parts(x: &[u8; Q6_K_BYTES], h: usize, t: usize) -> [v128; 4] {
        let ql0 = load(x, 64 * h + 16 * t);
        let ql1 = load(x, 64 * h + 32 + 16 * t);
        let qh = load(x, 128 + 32 * h + 16 * t);
        [
            v128_or(lo4(ql0), shl_bytes(v128_and(qh, u8x16_splat(0x03)), 4)),
            v128_or(lo4(ql1), shl_bytes(v128_and(qh, u8x16_splat(0x0C)), 2)),
            v128_or(hi4(ql0), v128_and(qh, u8x16_splat(0x30))),
            v128_or(hi4(ql1), shr_bytes(v128_and(qh, u8x16_splat(0xC0)), 2)),
        ]
    }

    /// Σ_sub scale_sub·(Σ (q − 32)·y over sub-block `sub`) of a Q6_K block, in four i32 lanes to be
    /// totalled, from the unsigned
    /// sums `sumi` (lanes of Σ_sub scale_sub·Σ q·y) and the block's scales and activation block
    /// sums: `32·Σ_sub scale_sub·bsums[sub]` taken back once, the same integer either way.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn q6k_total(sumi: v128, x: &[u8; Q6_K_BYTES], y: &BlockQ8K) -> v128 {
        let scales = load(x, 192);
        // SAFETY: `bsums` is 16 i16 = 32 readable bytes; `v128_load` is 1-aligned.
        let (bs_lo, bs_hi) = unsafe {
            let p = y.bsums.as_ptr() as *const v128;
            (v128_load(p), v128_load(p.add(1)))
        };
        let corr = i32x4_add(
            i32x4_dot_i16x8(bs_lo, i16x8_extend_low_i8x16(scales)),
            i32x4_dot_i16x8(bs_hi, i16x8_extend_high_i8x16(scales)),
        );
        // Lanes whose total is Σ sumi − 32·Σ corr (wrapping i32 either way).
        i32x4_sub(sumi, i32x4_shl(corr, 5))
    }

    /// A Q6_K sub-block's values as [`q6k_scaled_dot16`] takes them: `q − 32` (signed) for
    /// simd128, `q` as stored (unsigned, ≤ 63) for relaxed SIMD, which [`q6k_total`] corrects.
    #[inline(always)]
    fn q6k_values(v: v128) -> v128 {
        if cfg!(target_feature = "relaxed-simd") {
            v
        } else {
            i8x16_sub(v, i8x16_splat(32))
        }
    }

    /// `scale · Σ v·y` of a Q6_K sub-block's 16 values (from [`q6k_values`]) in four i32 lanes
    /// (`scale` in every i16 lane): the products two to an i16 lane (|·| ≤ 2·63·128), widened
    /// by one dot with the scale.
    #[inline(always)]
    fn q6k_scaled_dot16(v: v128, y: v128, scale: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        let p = i16x8_relaxed_dot_i8x16_i7x16(y, v);
        #[cfg(not(target_feature = "relaxed-simd"))]
        let p = i16x8_add(i16x8_extmul_low_i8x16(v, y), i16x8_extmul_high_i8x16(v, y));
        i32x4_dot_i16x8(p, scale)
    }

    /// A Q6_K block's exact integer total from its scaled sub-block sums, as `total as f32`.
    #[inline(always)]
    fn q6k_sum(sumi: v128, _x: &[u8; Q6_K_BYTES], _y: &BlockQ8K) -> f32 {
        #[cfg(target_feature = "relaxed-simd")]
        {
            total_as_f32(q6k_total(sumi, _x, _y))
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        {
            total_as_f32(sumi)
        }
    }

    /// Q6_K × Q8_K with relaxed SIMD: each 16-value sub-block's products (its stored values,
    /// ≤ 63) two to an i16 lane with the i16 dot (x86: one `pmaddubsw`), then two sub-blocks
    /// `k` and `k + 2` folded side by side into one vector — sub-block `k`'s eight lanes to four
    /// in the low half, `k + 2`'s in the high half (four products a lane, |Σ| ≤ 4·63·128 =
    /// 32256) — and scaled and widened by one dot with `[s_k ×4, s_{k+2} ×4]`;
    /// `32·Σ scale·bsums` taken back ([`q6k_total`]). The same exact integer, so the same result.
    #[cfg(target_feature = "relaxed-simd")]
    pub fn vec_dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q6_K_BYTES>().0.iter().zip(a) {
            // The 16 scales (i8) widened to i16: sub-blocks 0..8, 8..16.
            let scales = load(x, 192);
            let wide = [i16x8_extend_low_i8x16(scales), i16x8_extend_high_i8x16(scales)];
            let mut sumi = i32x4_splat(0);
            for (h, &half_scales) in wide.iter().enumerate() {
                for t in 0..2 {
                    let v = q6k_parts(x, h, t);
                    // Parts g and g + 1 are sub-blocks k = 8h + 2g + t and k + 2.
                    for g in [0, 2] {
                        let k = 8 * h + 2 * g + t;
                        let p0 = i16x8_relaxed_dot_i8x16_i7x16(load_i8(&y.qs, 16 * k), v[g]);
                        let p1 =
                            i16x8_relaxed_dot_i8x16_i7x16(load_i8(&y.qs, 16 * k + 32), v[g + 1]);
                        let folded =
                            i16x8_add(i64x2_shuffle::<0, 2>(p0, p1), i64x2_shuffle::<1, 3>(p0, p1));
                        let pair_scales = pair_scale_lanes(half_scales, k % 8);
                        sumi = i32x4_add(sumi, i32x4_dot_i16x8(folded, pair_scales));
                    }
                }
            }
            let d = f16_at(x, 208) * y.d;
            sumf += d * q6k_sum(sumi, x, y);
        }
        sumf
    }

    /// `[s_j ×4, s_{j+2} ×4]` of eight i16 scales `s` (lane `j`), by a constant byte shuffle.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn pair_scale_lanes(s: v128, j: usize) -> v128 {
        match j {
            0 => i16x8_shuffle::<0, 0, 0, 0, 2, 2, 2, 2>(s, s),
            1 => i16x8_shuffle::<1, 1, 1, 1, 3, 3, 3, 3>(s, s),
            4 => i16x8_shuffle::<4, 4, 4, 4, 6, 6, 6, 6>(s, s),
            5 => i16x8_shuffle::<5, 5, 5, 5, 7, 7, 7, 7>(s, s),
            _ => unreachable!("Q6_K pairs sub-blocks 8h + 2g + t with g even"),
        }
    }

    /// Q6_K × Q8_K. Each 16-byte piece below is exactly one 16-value sub-block.
    #[cfg(not(target_feature = "relaxed-simd"))]
    pub fn vec_dot_q6_k_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<Q6_K_BYTES>().0.iter().zip(a) {
            let mut sumi = i32x4_splat(0);
            for h in 0..2 {
                for t in 0..2 {
                    for (g, vg) in q6k_parts(x, h, t).iter().enumerate() {
                        let sub = 8 * h + 2 * g + t;
                        let scale = i16x8_splat(x[192 + sub] as i8 as i16);
                        let p = q6k_scaled_dot16(q6k_values(*vg), load_i8(&y.qs, 16 * sub), scale);
                        sumi = i32x4_add(sumi, p);
                    }
                }
            }
            let d = f16_at(x, 208) * y.d;
            sumf += d * q6k_sum(sumi, x, y);
        }
        sumf
    }

    /// Q6_K × several Q8_K rows: `out[t]` equals [`vec_dot_q6_k_q8_k`]`(w, acts[t])` bit for
    /// bit, each super-block's values and scales unpacked once for all the tokens.
    pub fn vec_dot_q6_k_q8_k_tokens(w: &[u8], acts: &[&[BlockQ8K]], out: &mut [f32]) {
        let wb = w.as_chunks::<Q6_K_BYTES>().0;
        for (acts, out) in acts.chunks(TOKENS_PER_PASS).zip(out.chunks_mut(TOKENS_PER_PASS)) {
            let n = acts.iter().fold(wb.len(), |n, a| n.min(a.len()));
            let mut sumf = [0f32; TOKENS_PER_PASS];
            for (b, x) in wb[..n].iter().enumerate() {
                // Sub-block `sub` (16 values): its signed values and its scale.
                let mut v = [i8x16_splat(0); 16];
                let mut scale = [i32x4_splat(0); 16];
                for h in 0..2 {
                    for t in 0..2 {
                        for (g, vg) in q6k_parts(x, h, t).into_iter().enumerate() {
                            let sub = 8 * h + 2 * g + t;
                            v[sub] = q6k_values(vg);
                            scale[sub] = i16x8_splat(x[192 + sub] as i8 as i16);
                        }
                    }
                }
                let dx = f16_at(x, 208);
                for (sumf, a) in sumf.iter_mut().zip(acts) {
                    let y = &a[b];
                    let mut sumi = i32x4_splat(0);
                    for sub in 0..16 {
                        let p = q6k_scaled_dot16(v[sub], load_i8(&y.qs, 16 * sub), scale[sub]);
                        sumi = i32x4_add(sumi, p);
                    }
                    let d = dx * y.d;
                    *sumf += d * q6k_sum(sumi, x, y);
                }
            }
            out.copy_from_slice(&sumf[..out.len()]);
        }
    }

    /// IQ4_XS × Q8_K: `(ls − 32)·Σ level·q8` summed in integers per super-block, scaled once.
    pub fn vec_dot_iq4_xs_q8_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
        let table = load_i8(&KVALUES_IQ4NL, 0);
        let mut sumf = 0.0f32;
        for (x, y) in w.as_chunks::<IQ4_XS_BYTES>().0.iter().zip(a) {
            let h = u16_at(x, 2) as i32;
            let mut sumi = i32x4_splat(0);
            for ib in 0..8 {
                let ls =
                    ((x[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) as i32 | (((h >> (2 * ib)) & 3) << 4);
                let q = load(x, 8 + 16 * ib);
                let p = i32x4_add(
                    dot16(i8x16_swizzle(table, lo4(q)), load_i8(&y.qs, 32 * ib)),
                    dot16(i8x16_swizzle(table, hi4(q)), load_i8(&y.qs, 32 * ib + 16)),
                );
                sumi = i32x4_add(sumi, i32x4_mul(p, i32x4_splat(ls - 32)));
            }
            sumf += f16_at(x, 0) * y.d * hsum_i32(sumi) as f32;
        }
        sumf
    }

    /// F32 × F32 in [`crate::order`]'s 32 lanes: eight f32x4 accumulators, products rounded
    /// then added (base simd128 has no fused multiply-add), the tail lane by lane.
    pub fn vec_dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [f32x4_splat(0.0); 8];
        for (ca, cb) in a.as_chunks::<32>().0.iter().zip(b.as_chunks::<32>().0) {
            for (k, s) in acc.iter_mut().enumerate() {
                *s = f32x4_add(*s, f32x4_mul(load4(ca, k), load4(cb, k)));
            }
        }
        let i = n - n % 32;
        total32(&acc, (i..n).map(|k| a[k] * b[k]))
    }

    /// [`crate::order::reduce32`] of the lanes `acc` holds (lane `4k + j` in `acc[k]`) after
    /// `tail`'s values are added to lanes 0, 1, … (the elements past the last whole 32). Without
    /// a tail each halving step is vector adds of the same lane pairs in the same operand
    /// order: reduce32's bits without moving 32 lanes out one by one.
    #[inline(always)]
    fn total32(acc: &[v128; 8], tail: impl ExactSizeIterator<Item = f32>) -> f32 {
        if tail.len() > 0 {
            let mut lanes = lanes32(acc);
            for (lane, x) in lanes.iter_mut().zip(tail) {
                *lane += x;
            }
            return crate::order::reduce32(&lanes);
        }
        // Width 16 (lane j += lane j + 16): accumulator k += accumulator k + 4; width 8: k += k + 2;
        // width 4: 0 += 1; widths 2 and 1 within the last vector.
        let v16: [v128; 4] = std::array::from_fn(|k| f32x4_add(acc[k], acc[k + 4]));
        let v8 = [f32x4_add(v16[0], v16[2]), f32x4_add(v16[1], v16[3])];
        let v4 = f32x4_add(v8[0], v8[1]);
        let v2 = f32x4_add(v4, i32x4_shuffle::<2, 3, 2, 3>(v4, v4));
        f32x4_extract_lane::<0>(v2) + f32x4_extract_lane::<1>(v2)
    }

    /// Values `4k .. 4k + 4` of a 32-value chunk (whole chunks as arrays: no bounds checks).
    #[inline(always)]
    fn load4(s: &[f32; 32], k: usize) -> v128 {
        let s = &s[4 * k..4 * k + 4];
        // SAFETY: `s` has exactly 4 readable f32s; `v128_load` is 1-aligned.
        unsafe { v128_load(s.as_ptr() as *const v128) }
    }

    /// Eight 4-lane accumulators as the 32 lanes of [`crate::order`] (lane `4k + j` = lane `j`
    /// of accumulator `k`).
    #[inline(always)]
    fn lanes32(acc: &[v128; 8]) -> [f32; 32] {
        let mut lanes = [0f32; 32];
        for (k, v) in acc.iter().enumerate() {
            lanes[4 * k] = f32x4_extract_lane::<0>(*v);
            lanes[4 * k + 1] = f32x4_extract_lane::<1>(*v);
            lanes[4 * k + 2] = f32x4_extract_lane::<2>(*v);
            lanes[4 * k + 3] = f32x4_extract_lane::<3>(*v);
        }
        lanes
    }

    /// `(vec_dot_f32(w, a), vec_dot_f32(w, b))` bit for bit, for `a` and `b` as long as `w`.
    #[inline(always)]
    fn dot_f32_pair(w: &[f32], a: &[f32], b: &[f32]) -> (f32, f32) {
        let n = w.len();
        let (mut acc_a, mut acc_b) = ([f32x4_splat(0.0); 8], [f32x4_splat(0.0); 8]);
        for ((cw, ca), cb) in
            w.as_chunks::<32>().0.iter().zip(a.as_chunks::<32>().0).zip(b.as_chunks::<32>().0)
        {
            for k in 0..8 {
                let x = load4(cw, k);
                acc_a[k] = f32x4_add(acc_a[k], f32x4_mul(x, load4(ca, k)));
                acc_b[k] = f32x4_add(acc_b[k], f32x4_mul(x, load4(cb, k)));
            }
        }
        let i = n - n % 32;
        (total32(&acc_a, (i..n).map(|k| w[k] * a[k])), total32(&acc_b, (i..n).map(|k| w[k] * b[k])))
    }

    /// Tokens from which [`vec_dot_f32_rows_tokens`] packs the rows ([`pack_rows4`]) before
    /// it multiplies them: the packing is a copy of every row, paid back over the token pairs.
    /// `crates/quant/examples/prefill_wide.rs` in Chromium 156 (tiles of 32 rows × 896,
    /// session 27), packed / unpacked G products/s: 7 tokens 9.9 / 14.3, 16 12.5 / 14.9, 24
    /// 13.9 / 15.5, 32 15.1 / 15.4, 48 16.9 / 14.6, 64 16.4 / 15.1, 304 17.3 / 15.4.
    const PACK_TOKENS: usize = 40;

    thread_local! {
        /// Groups of four f32 weight rows in [`pack_rows4`]' layout; reused from call to call.
        static PACKED_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Four rows' whole 32-value chunks (`chunks` of them) laid out in the order [`dots_4x2`]
    /// reads them: for each eighth `k` of the lanes, for each chunk `c`, the four rows' values
    /// `32c + 4k .. 32c + 4k + 4` side by side. The kernel then walks one pointer through the
    /// weights instead of four (V8 keeps a register and an add a step for each), from memory it
    /// reads in order.
    fn pack_rows4(rows: [&[f32]; 4], chunks: usize, out: &mut Vec<f32>) {
        for k in 0..8 {
            for c in 0..chunks {
                for row in rows {
                    out.extend_from_slice(&row[32 * c + 4 * k..32 * c + 4 * k + 4]);
                }
            }
        }
    }

    /// Four rows × two tokens: `[w0·a, w0·b, w1·a, w1·b, …]`, each bit for bit
    /// [`vec_dot_f32`], the rows' whole chunks from `packed` ([`pack_rows4`]), their tails from
    /// `w`. A lane's sum involves only its own elements, so the 32 lanes are taken an eighth at
    /// a time (lanes `4k .. 4k + 4` of every 32-value chunk): the eight dots then need 8
    /// registers of sums, not 64 — a 128-bit machine has 16 — and each loaded token vector
    /// serves four dots.
    #[inline(always)]
    fn dots_4x2(packed: &[f32], w: [&[f32]; 4], a: &[f32], b: &[f32]) -> [f32; 8] {
        let n = a.len();
        let (ca, cb) = (a[..n].as_chunks::<32>().0, b[..n].as_chunks::<32>().0);
        let chunks = ca.len();
        let mut lanes = [[f32x4_splat(0.0); 8]; 8];
        for k in 0..8 {
            let slice = &packed[16 * chunks * k..16 * chunks * (k + 1)];
            let mut s = [f32x4_splat(0.0); 8];
            for ((xa, xb), x) in ca.iter().zip(cb).zip(slice.as_chunks::<16>().0) {
                let (va, vb) = (load4(xa, k), load4(xb, k));
                for r in 0..4 {
                    let x = four_at(x, 4 * r);
                    s[2 * r] = f32x4_add(s[2 * r], f32x4_mul(x, va));
                    s[2 * r + 1] = f32x4_add(s[2 * r + 1], f32x4_mul(x, vb));
                }
            }
            for (d, lanes) in lanes.iter_mut().enumerate() {
                lanes[k] = s[d];
            }
        }
        finish_4x2(&lanes, w, a, b)
    }

    /// The eight dots of four rows × two tokens from their 32 lanes each (`lanes[2r + t]`),
    /// each with its tail past the whole chunks. A plain loop: `std::array::from_fn` here stayed
    /// a function of its own in Chromium's code (3.4 % of a pool thread's time over the text on
    /// the f32 path alone), and the loop makes the 304-token product 17.1–17.6 → 17.7–18.4 G
    /// products/s (`prefill_wide` in Chromium).
    #[inline(always)]
    fn finish_4x2(lanes: &[[v128; 8]; 8], w: [&[f32]; 4], a: &[f32], b: &[f32]) -> [f32; 8] {
        let n = a.len();
        let i = n - n % 32;
        let mut out = [0f32; 8];
        for (d, o) in out.iter_mut().enumerate() {
            let (row, x) = (w[d / 2], if d % 2 == 0 { a } else { b });
            *o = total32(&lanes[d], (i..n).map(|k| row[k] * x[k]));
        }
        out
    }

    /// [`dots_4x2`] reading the four rows where they lie instead of packed.
    #[inline(always)]
    fn dots_4x2_unpacked(w: [&[f32]; 4], a: &[f32], b: &[f32]) -> [f32; 8] {
        let n = a.len();
        let (ca, cb) = (a[..n].as_chunks::<32>().0, b[..n].as_chunks::<32>().0);
        let rows = w.map(|r| r[..n].as_chunks::<32>().0);
        let mut lanes = [[f32x4_splat(0.0); 8]; 8];
        for k in 0..8 {
            let mut s = [f32x4_splat(0.0); 8];
            for (c, (xa, xb)) in ca.iter().zip(cb).enumerate() {
                let (va, vb) = (load4(xa, k), load4(xb, k));
                for r in 0..4 {
                    let x = load4(&rows[r][c], k);
                    s[2 * r] = f32x4_add(s[2 * r], f32x4_mul(x, va));
                    s[2 * r + 1] = f32x4_add(s[2 * r + 1], f32x4_mul(x, vb));
                }
            }
            for (d, lanes) in lanes.iter_mut().enumerate() {
                lanes[k] = s[d];
            }
        }
        finish_4x2(&lanes, w, a, b)
    }

    /// Rows of `cols` weights against several token rows, `out[r * xs.len() + t]`, bit for bit
    /// [`vec_dot_f32`]; from [`PACK_TOKENS`] tokens the rows packed four at a time
    /// ([`pack_rows4`]) once for every token, token pairs outside, four rows at a time inside
    /// ([`dots_4x2`], or [`dots_4x2_unpacked`] for fewer tokens), the rows and a token left over
    /// one by one. Shapes are the caller's to check (`dot::vec_dot_f32_rows_tokens`).
    pub fn vec_dot_f32_rows_tokens(w: &[f32], cols: usize, xs: &[&[f32]], out: &mut [f32]) {
        let nt = xs.len();
        let n_rows = w.len() / cols.max(1);
        let row = |r: usize| &w[r * cols..(r + 1) * cols];
        let (groups, chunks) = (n_rows / 4, cols / 32);
        let mut packed = PACKED_ROWS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        packed.clear();
        let pack = nt >= PACK_TOKENS;
        if pack {
            packed.reserve(groups * 4 * chunks * 32);
            for g in 0..groups {
                pack_rows4(
                    [row(4 * g), row(4 * g + 1), row(4 * g + 2), row(4 * g + 3)],
                    chunks,
                    &mut packed,
                );
            }
        }
        let group_len = 4 * chunks * 32;
        let mut t = 0;
        while t + 2 <= nt {
            let (a, b) = (&xs[t][..cols], &xs[t + 1][..cols]);
            for g in 0..groups {
                let r = 4 * g;
                let rows = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                let d = match pack {
                    true => dots_4x2(&packed[g * group_len..(g + 1) * group_len], rows, a, b),
                    false => dots_4x2_unpacked(rows, a, b),
                };
                for k in 0..4 {
                    out[(r + k) * nt + t] = d[2 * k];
                    out[(r + k) * nt + t + 1] = d[2 * k + 1];
                }
            }
            for r in 4 * groups..n_rows {
                let (da, db) = dot_f32_pair(row(r), a, b);
                out[r * nt + t] = da;
                out[r * nt + t + 1] = db;
            }
            t += 2;
        }
        if t < nt {
            for r in 0..n_rows {
                out[r * nt + t] = vec_dot_f32(row(r), xs[t]);
            }
        }
        PACKED_ROWS.with(|b| *b.borrow_mut() = packed);
    }

    /// 16 signed bytes times `d`, as 16 f32 stored to `y` (each an exact integer times `d`:
    /// one rounding, as the scalar `q as f32 * d`).
    #[inline(always)]
    fn store_scaled16(q: v128, d: v128, y: &mut [f32]) {
        let lo = i16x8_extend_low_i8x16(q);
        let hi = i16x8_extend_high_i8x16(q);
        let parts = [
            i32x4_extend_low_i16x8(lo),
            i32x4_extend_high_i16x8(lo),
            i32x4_extend_low_i16x8(hi),
            i32x4_extend_high_i16x8(hi),
        ];
        for (k, p) in parts.into_iter().enumerate() {
            let v = f32x4_mul(f32x4_convert_i32x4(p), d);
            let dst = &mut y[4 * k..4 * k + 4];
            // SAFETY: `dst` has exactly 4 writable f32s; `v128_store` is 1-aligned.
            unsafe { v128_store(dst.as_mut_ptr() as *mut v128, v) };
        }
    }

    /// Q5_0 rows to f32, bit-identical to `crate::dequant`'s.
    pub fn dequantize_row_q5_0(bytes: &[u8], out: &mut [f32]) {
        for (x, y) in bytes.as_chunks::<Q5_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
            // `q5_0_values` gives `(nibble | bit·16) − 16` directly.
            let d = f32x4_splat(f16_at(x, 0));
            let [x0, x1] = q5_0_values(x);
            store_scaled16(x0, d, &mut y[..16]);
            store_scaled16(x1, d, &mut y[16..]);
        }
    }

    /// 16 unsigned bytes `q` as `d·q − m`, 16 f32 stored to `y` (the scalar's product, then
    /// difference: no fused multiply-add).
    #[inline(always)]
    fn store_affine16(q: v128, d: v128, m: v128, y: &mut [f32]) {
        let lo = u16x8_extend_low_u8x16(q);
        let hi = u16x8_extend_high_u8x16(q);
        let parts = [
            u32x4_extend_low_u16x8(lo),
            u32x4_extend_high_u16x8(lo),
            u32x4_extend_low_u16x8(hi),
            u32x4_extend_high_u16x8(hi),
        ];
        for (k, p) in parts.into_iter().enumerate() {
            let v = f32x4_sub(f32x4_mul(d, f32x4_convert_i32x4(p)), m);
            let dst = &mut y[4 * k..4 * k + 4];
            // SAFETY: `dst` has exactly 4 writable f32s; `v128_store` is 1-aligned.
            unsafe { v128_store(dst.as_mut_ptr() as *mut v128, v) };
        }
    }

    /// Q4_K rows to f32, bit-identical to `crate::dequant`'s: per 32 values `(d·sc)·q − (dmin·m)`.
    pub fn dequantize_row_q4_k(bytes: &[u8], out: &mut [f32]) {
        for (x, y) in bytes.as_chunks::<Q4_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
            let (d, dmin) = (f16_at(x, 0), f16_at(x, 2));
            let (sc, mn) = scale_min_k4(arr12(x, 4));
            for j in 0..QK_K / 64 {
                for (h, nib) in [lo4 as fn(v128) -> v128, hi4].into_iter().enumerate() {
                    let g = 2 * j + h;
                    let d1 = f32x4_splat(d * sc[g] as f32);
                    let m1 = f32x4_splat(dmin * mn[g] as f32);
                    for half in 0..2 {
                        let q = nib(load(x, 16 + 32 * j + 16 * half));
                        store_affine16(
                            q,
                            d1,
                            m1,
                            &mut y[32 * g + 16 * half..32 * g + 16 * half + 16],
                        );
                    }
                }
            }
        }
    }

    /// Q6_K rows to f32, bit-identical to `crate::dequant`'s: `(d·sc)·(q − 32)`, a scale per 16.
    pub fn dequantize_row_q6_k(bytes: &[u8], out: &mut [f32]) {
        let thirty_two = i8x16_splat(32);
        for (x, y) in bytes.as_chunks::<Q6_K_BYTES>().0.iter().zip(out.as_chunks_mut::<QK_K>().0) {
            let d = f16_at(x, 208);
            for n in 0..QK_K / 128 {
                for h in 0..2 {
                    // Values l = 16h .. 16h + 16 of each of the four 32-value parts.
                    for (part, q) in q6k_parts(x, n, h).into_iter().enumerate() {
                        let sc = x[192 + 8 * n + 2 * part + h] as i8;
                        let ds = f32x4_splat(d * sc as f32);
                        let at = 128 * n + 32 * part + 16 * h;
                        store_scaled16(i8x16_sub(q, thirty_two), ds, &mut y[at..at + 16]);
                    }
                }
            }
        }
    }

    /// Q8_0 rows to f32, bit-identical to `crate::dequant`'s.
    pub fn dequantize_row_q8_0(bytes: &[u8], out: &mut [f32]) {
        for (x, y) in bytes.as_chunks::<Q8_0_BYTES>().0.iter().zip(out.as_chunks_mut::<QK>().0) {
            let d = f32x4_splat(f16_at(x, 0));
            store_scaled16(load(x, 2), d, &mut y[..16]);
            store_scaled16(load(x, 18), d, &mut y[16..]);
        }
    }
}
