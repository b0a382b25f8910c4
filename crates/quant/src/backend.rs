//! Which kernel family the dispatchers in [`crate::dot`] pick on this machine: the same
//! conditions they test (`avx2::available()` natively on x86_64, the `simd128` target feature in
//! wasm), so the report's `kernels:` note names what actually ran.

/// `"avx2_avx512"` (the AVX-512 twins where they exist, AVX2 for the rest), `"avx2"`,
/// `"simd128_relaxed"` (simd128, with relaxed SIMD's integer dot in the k-quant dots),
/// `"simd128"` or `"scalar"` (the `generic` reference).
pub fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::avx512::available() {
            return "avx2_avx512";
        }
        if crate::avx2::available() {
            return "avx2";
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        if crate::simd128::relaxed() {
            return "simd128_relaxed";
        }
        return "simd128";
    }
    #[allow(unreachable_code)]
    "scalar"
}
