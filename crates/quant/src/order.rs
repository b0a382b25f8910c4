//! The one float order every dot-product implementation follows.
//!
//! Integer parts of the fused dots are exact, so they may be computed in any arrangement. Float
//! arithmetic is not associative, so the scalar reference and its AVX2 and simd128 twins combine
//! floats in exactly the order written here — and a report is byte-identical whether the engine
//! ran natively or in a browser tab. (llama.cpp's own kernels each reassociate differently; the
//! difference to them is at the level of ulps and is measured, not hidden.)
//!
//! * **32-value block formats** (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): block `b`'s float term —
//!   `(d_w·d_a)·isum`, plus `m_w·s_a` for the `_1` formats — is added to accumulator `b mod 4`;
//!   the result is `(acc₀ + acc₁) + (acc₂ + acc₃)`. Four independent chains keep the float adds
//!   off the critical path; four lanes are one `f32x4` / one `__m128`.
//! * **256-value super-blocks** (k-quants, IQ4_XS): the super-block's exact integer sum is
//!   scaled once, `sumf += d·isum − dmin·msum`, in block order.
//! * **Float dots** (F32, F16, BF16): 32 lanes, element `i` added to lane `i mod 32` (products
//!   rounded, then added: no fused multiply-add, which base simd128 lacks — for F16 and BF16 the
//!   product is exact, so a fused add is the same), then [`reduce32`].

/// Four block accumulators (32-value block formats).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockAcc4(pub [f32; 4]);

impl BlockAcc4 {
    /// Adds block `b`'s term.
    #[inline(always)]
    pub fn add(&mut self, b: usize, term: f32) {
        self.0[b & 3] += term;
    }

    /// `(acc₀ + acc₁) + (acc₂ + acc₃)`.
    #[inline(always)]
    pub fn total(&self) -> f32 {
        (self.0[0] + self.0[1]) + (self.0[2] + self.0[3])
    }
}

/// Sums 32 lanes as a halving tree: lane `j` += lane `j + 16`, then `+ 8`, `+ 4`, `+ 2`, `+ 1`
/// (the order an 8-wide register file reduces four accumulators in).
#[inline(always)]
pub fn reduce32(lanes: &[f32; 32]) -> f32 {
    let mut v = *lanes;
    let mut width = 16;
    while width > 0 {
        for j in 0..width {
            v[j] += v[j + width];
        }
        width /= 2;
    }
    v[0]
}
