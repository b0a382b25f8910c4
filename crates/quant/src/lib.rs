//! GGML block formats and the arithmetic on them.
//!
//! Owns: the type table ([`GgmlType`]), dequantization of every supported weight type to f32
//! (bit-exact with ggml/gguf-py), the activation quantizers llama.cpp's CPU backend uses
//! (Q8_0, Q8_1, Q8_K, with its reference rounding), and the fused integer dot products for
//! each (weight, activation) pairing — a scalar reference (`generic`) always compiled, plus
//! AVX2 (runtime-detected) and wasm simd128 twins with the same signatures, and AVX-512
//! twins where register blocking pays (the f32 rows × tokens product).
//!
//! Knows nothing about files, tensors, models or I/O: inputs are byte slices of whole blocks.

/// Evaluates `$e` in a function compiled for AVX2, FMA and F16C where the CPU has them
/// ([`avx2::available`]), and as it is elsewhere. Plain scalar code then vectorizes wider,
/// `mul_add` is one instruction instead of a libm `fmaf` call and `round_ties_even` one
/// `roundps` instead of a `rintf` call — the same IEEE operations either way, so the same bits.
/// Whatever `$e` calls should be `#[inline(always)]`: a function that is not inlined keeps the
/// features it was compiled with.
#[macro_export]
macro_rules! with_avx2 {
    ($e:expr) => {
        $crate::__with_target_features!(with_avx2, "avx2,fma,f16c", $crate::avx2::available, $e, $e)
    };
}

/// [`with_avx2!`], compiled for AVX-512F as well where the CPU has it ([`avx512::available`]):
/// plain lane loops then vectorize 16 lanes wide. The same IEEE operations, so the same bits.
#[macro_export]
macro_rules! with_avx512 {
    ($e:expr) => {
        $crate::__with_target_features!(
            with_avx512,
            "avx512f,avx2,fma,f16c",
            $crate::avx512::available,
            $e,
            $crate::with_avx2!($e)
        )
    };
}

/// `$e` in a function named `$name` compiled for `$features` where `$available()` says the CPU
/// has them, else `$otherwise` (x86-64); `$e` elsewhere. The one body of [`with_avx2!`] and
/// [`with_avx512!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __with_target_features {
    ($name:ident, $features:literal, $available:path, $e:expr, $otherwise:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if $available() {
                #[target_feature(enable = $features)]
                unsafe fn $name<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                // SAFETY: the CPU features were detected at run time.
                unsafe {
                    $name(
                        #[inline(always)]
                        || $e,
                    )
                }
            } else {
                $otherwise
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $e
        }
    }};
}

mod backend;
pub mod blocks;
pub mod dequant;
pub mod dot;
pub mod generic;
pub mod order;
pub mod quantize;
mod types;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "wasm32")]
pub mod simd128;

pub use backend::backend;
pub use blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1};
pub use dequant::dequantize;
pub use dot::{matvec, vec_dot, Activation};
pub use quantize::{
    quantize_activation, quantize_activation_with, quantize_row_q8_0, quantize_row_q8_1,
    quantize_row_q8_k, Q8Rounding,
};
pub use types::GgmlType;

/// What went wrong in a kernel call; always a caller error (wrong lengths or types), never data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantError {
    /// The type cannot be dequantized or dotted by this crate.
    Unsupported { ty: GgmlType, what: &'static str },
    /// `values` is not a whole number of blocks of the type.
    NotWholeBlocks { ty: GgmlType, values: usize },
    /// The byte slice does not hold exactly the blocks for the requested values.
    WrongByteLength { ty: GgmlType, values: usize, expected: usize, got: usize },
    /// Weight and activation do not pair (wrong activation type or length).
    Mismatch { message: String },
}

impl std::fmt::Display for QuantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuantError::Unsupported { ty, what } => {
                write!(f, "{what} is not supported for tensor type {ty}")
            }
            QuantError::NotWholeBlocks { ty, values } => write!(
                f,
                "{values} values is not a whole number of {ty} blocks ({} values each)",
                ty.block_size()
            ),
            QuantError::WrongByteLength { ty, values, expected, got } => {
                write!(f, "{values} values of {ty} take {expected} bytes, but {got} were given")
            }
            QuantError::Mismatch { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for QuantError {}
