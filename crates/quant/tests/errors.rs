//! Caller errors come back as typed `QuantError`s naming the problem; nothing panics.

use parallax_quant::dot::matvec;
use parallax_quant::{
    dequantize, quantize_activation, vec_dot, Activation, BlockQ8K, BlockQ8_0, GgmlType, QuantError,
};

#[test]
fn dequantize_rejects_unsupported_types() {
    for ty in [
        GgmlType::IQ2_XXS,
        GgmlType::IQ3_S,
        GgmlType::I8,
        GgmlType::F64,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ] {
        let bytes = vec![0u8; ty.type_size()];
        let mut out = vec![0f32; ty.block_size()];
        let err = dequantize(ty, &bytes, &mut out).unwrap_err();
        assert!(matches!(err, QuantError::Unsupported { ty: t, .. } if t == ty), "{ty}: {err:?}");
        assert!(err.to_string().contains(ty.name()), "message names the type: {err}");
    }
}

#[test]
fn dequantize_rejects_partial_blocks_and_wrong_byte_counts() {
    let mut out = vec![0f32; 100];
    let err = dequantize(GgmlType::Q4_K, &[0u8; 144], &mut out).unwrap_err();
    assert_eq!(err, QuantError::NotWholeBlocks { ty: GgmlType::Q4_K, values: 100 });

    let mut out = vec![0f32; 32];
    let err = dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).unwrap_err();
    assert_eq!(
        err,
        QuantError::WrongByteLength { ty: GgmlType::Q4_0, values: 32, expected: 18, got: 17 }
    );
    let err = dequantize(GgmlType::Q4_0, &[0u8; 19], &mut out).unwrap_err();
    assert!(matches!(err, QuantError::WrongByteLength { got: 19, .. }));

    let mut out = vec![0f32; 3];
    let err = dequantize(GgmlType::F32, &[0u8; 11], &mut out).unwrap_err();
    assert_eq!(
        err,
        QuantError::WrongByteLength { ty: GgmlType::F32, values: 3, expected: 12, got: 11 }
    );
    assert!(err.to_string().contains("12 bytes"), "{err}");
}

#[test]
fn dequantize_of_nothing_is_ok() {
    for ty in GgmlType::all().filter(|t| t.is_dequantizable()) {
        dequantize(ty, &[], &mut []).unwrap_or_else(|e| panic!("{ty}: {e}"));
    }
}

#[test]
fn vec_dot_rejects_unpaired_types_and_wrong_activations() {
    let a = Activation::Q8_0(vec![BlockQ8_0::ZERO]);
    let err = vec_dot(GgmlType::IQ2_XXS, &[0u8; 66], &a).unwrap_err();
    assert!(matches!(err, QuantError::Unsupported { ty: GgmlType::IQ2_XXS, .. }), "{err:?}");

    // Q4_K pairs with Q8_K, not Q8_0.
    let err = vec_dot(GgmlType::Q4_K, &[0u8; 144], &a).unwrap_err();
    assert!(
        matches!(&err, QuantError::Mismatch { message } if message.contains("Q8_K")),
        "{err:?}"
    );

    // Q4_1 pairs with Q8_1.
    let err = vec_dot(GgmlType::Q4_1, &[0u8; 20], &a).unwrap_err();
    assert!(matches!(err, QuantError::Mismatch { .. }), "{err:?}");

    // F16 weights with F32 activations.
    let err = vec_dot(GgmlType::F16, &[0u8; 4], &Activation::F32(vec![1.0, 2.0])).unwrap_err();
    assert!(matches!(err, QuantError::Mismatch { .. }), "{err:?}");
}

#[test]
fn vec_dot_rejects_wrong_weight_lengths() {
    let a = Activation::Q8K(vec![BlockQ8K::ZERO; 2]);
    for len in [0, 143, 287, 289, 1000] {
        let err = vec_dot(GgmlType::Q4_K, &vec![0u8; len], &a).unwrap_err();
        assert_eq!(
            err,
            QuantError::WrongByteLength {
                ty: GgmlType::Q4_K,
                values: 512,
                expected: 288,
                got: len
            }
        );
    }
    assert_eq!(vec_dot(GgmlType::Q4_K, &[0u8; 288], &a), Ok(0.0));
}

#[test]
fn vec_dot_rejects_activations_that_are_not_whole_weight_blocks() {
    // Q8_0 activations come in 32s, so a Q4_0 row always fits; F16 weights against an odd
    // activation length are fine too. But an F32 activation of 3 values for Q4_0 is a mismatch.
    let err = vec_dot(GgmlType::Q4_0, &[0u8; 18], &Activation::F32(vec![0.0; 32])).unwrap_err();
    assert!(matches!(err, QuantError::Mismatch { .. }), "{err:?}");
}

#[test]
fn matvec_checks_shapes() {
    let a = Activation::Q8_0(vec![BlockQ8_0::ZERO; 2]); // 64 columns
    let w = vec![0u8; 3 * 36]; // 3 rows of 2 Q4_0 blocks
    let mut out = vec![0f32; 3];
    matvec(GgmlType::Q4_0, &w, 64, &a, &mut out).unwrap();

    let err = matvec(GgmlType::Q4_0, &w, 32, &a, &mut out).unwrap_err();
    assert!(matches!(err, QuantError::Mismatch { .. }), "n_cols vs activation: {err:?}");

    let mut out4 = vec![0f32; 4];
    let err = matvec(GgmlType::Q4_0, &w, 64, &a, &mut out4).unwrap_err();
    assert_eq!(
        err,
        QuantError::WrongByteLength { ty: GgmlType::Q4_0, values: 256, expected: 144, got: 108 }
    );

    let err = matvec(GgmlType::Q4_0, &w[..107], 64, &a, &mut out).unwrap_err();
    assert!(matches!(err, QuantError::WrongByteLength { expected: 108, got: 107, .. }), "{err:?}");

    let err = matvec(GgmlType::Q2_K, &w, 64, &a, &mut out).unwrap_err();
    assert!(matches!(err, QuantError::Mismatch { .. }), "{err:?}");

    // Zero rows is a valid empty result.
    matvec(GgmlType::Q4_0, &[], 64, &a, &mut []).unwrap();
}

#[test]
fn quantize_activation_checks_type_and_length() {
    let err = quantize_activation(GgmlType::IQ2_XS, &[0.0; 256]).unwrap_err();
    assert!(matches!(err, QuantError::Unsupported { ty: GgmlType::IQ2_XS, .. }), "{err:?}");
    let err = quantize_activation(GgmlType::Q4_K, &[0.0; 100]).unwrap_err();
    assert_eq!(err, QuantError::NotWholeBlocks { ty: GgmlType::Q4_K, values: 100 });
    let err = quantize_activation(GgmlType::Q4_0, &[0.0; 33]).unwrap_err();
    assert_eq!(err, QuantError::NotWholeBlocks { ty: GgmlType::Q4_0, values: 33 });
    assert!(quantize_activation(GgmlType::F16, &[1.0; 3]).is_ok());
    assert_eq!(quantize_activation(GgmlType::Q4_K, &[]).unwrap().n_values(), 0);
}

#[test]
fn non_finite_inputs_never_panic() {
    // Garbage in, garbage out — but never a panic (NaN/Inf activations happen in broken models,
    // and the tool exists to report them).
    let mut x = vec![1.0f32; 512];
    x[3] = f32::NAN;
    x[40] = f32::INFINITY;
    x[300] = f32::NEG_INFINITY;
    x[301] = f32::MAX;
    for ty in GgmlType::all().filter(|t| t.vec_dot_type().is_some()) {
        let a = quantize_activation(ty, &x).unwrap();
        let w = vec![0xA5u8; ty.bytes_for(512).unwrap() as usize];
        let _ = vec_dot(ty, &w, &a).unwrap();
    }
    // Weights with NaN/Inf scales too.
    let mut out = vec![0f32; 256];
    for ty in GgmlType::all().filter(|t| t.is_dequantizable()) {
        let bs = ty.block_size();
        let n = 256 / bs * bs;
        dequantize(ty, &vec![0xFFu8; ty.bytes_for(n as u64).unwrap() as usize], &mut out[..n])
            .unwrap();
    }
}
