//! SplitMix64 (Vigna): tiny, seedable, defined by integer arithmetic only, so the same seed gives
//! the same stream on every target. Test data, benches and the demo model all draw from it.

/// SplitMix64 with its state in the open: `SplitMix64(seed)` starts the reference stream of
/// `seed` (the first output of seed 0 is `0xE220_A839_7B1D_CDAF`).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `next_u64() % n`: slightly biased for `n` that are not powers of two, which test data
    /// does not mind, and kept so that committed seeds keep their streams.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [-1, 1) on a grid of 2^-23 (the top 24 bits of a draw).
    pub fn signed_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Fills `b` with the generator's output, eight little-endian bytes per draw (the last draw
    /// is cut to what is left).
    pub fn fill_bytes(&mut self, b: &mut [u8]) {
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    /// Vigna's reference implementation (splitmix64.c) seeded with 0 and with 1234567.
    #[test]
    fn streams_equal_the_reference_implementation() {
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64(1_234_567);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423]
        );
    }

    #[test]
    fn derived_draws_stay_in_range() {
        let mut r = SplitMix64(7);
        for _ in 0..10_000 {
            let u = r.unit_f64();
            assert!((0.0..1.0).contains(&u));
            let s = r.signed_unit_f32();
            assert!((-1.0..1.0).contains(&s));
            assert!(r.below(3) < 3);
        }
        let mut b = [0u8; 11];
        SplitMix64(0).fill_bytes(&mut b);
        assert_eq!(b[..8], 0xE220_A839_7B1D_CDAFu64.to_le_bytes());
    }
}
