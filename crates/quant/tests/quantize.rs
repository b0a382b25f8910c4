//! Hand-checked corner cases of the activation quantizers (the golden file covers the bulk).

use half::{bf16, f16};
use parallax_quant::quantize::f32_to_bf16;
use parallax_quant::{
    quantize_activation, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k,
};
use parallax_quant::{Activation, BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType};

#[test]
fn q8_0_rounds_half_away_from_zero() {
    // amax 127 -> d = 1, id = 1: x = k + 0.5 is an exact tie; C roundf goes away from zero.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.5;
    x[4] = -0.5;
    x[5] = 3.5;
    let mut b = [BlockQ8_0::ZERO];
    quantize_row_q8_0(&x, &mut b);
    assert_eq!(b[0].d, f16::from_f32(1.0));
    assert_eq!(&b[0].qs[..6], &[127, 3, -3, 1, -1, 4]);
}

#[test]
fn q8_1_sum_uses_the_f32_scale_before_f16_rounding() {
    // d = 1/127 is not representable in f16; s must be f16(Σq · d_f32), not Σq · f16(d).
    let mut x = [0f32; 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 - 10.0) / 127.0;
    }
    x[31] = 1.0;
    let mut b = [BlockQ8_1::ZERO];
    quantize_row_q8_1(&x, &mut b);
    let d = 1.0f32 / 127.0;
    let sum: i32 = b[0].qs.iter().map(|&q| q as i32).sum();
    assert_eq!(b[0].d, f16::from_f32(d));
    assert_eq!(b[0].s, f16::from_f32(sum as f32 * d));
    // And the Q8_1 d/qs agree with Q8_0's.
    let mut b0 = [BlockQ8_0::ZERO];
    quantize_row_q8_0(&x, &mut b0);
    assert_eq!((b0[0].d, b0[0].qs), (b[0].d, b[0].qs));
}

#[test]
fn q8_k_rounds_ties_to_even_and_uses_the_signed_max() {
    // max = -127 (the largest magnitude, negative) -> iscale = -127/-127 = 1, d = 1.
    let mut x = [0f32; 256];
    x[0] = 2.5;
    x[1] = 3.5;
    x[2] = -2.5;
    x[3] = 0.5;
    x[4] = -127.0;
    x[5] = 126.9;
    let mut b = [BlockQ8K::ZERO];
    quantize_row_q8_k(&x, &mut b);
    assert_eq!(b[0].d, 1.0);
    assert_eq!(&b[0].qs[..6], &[2, 4, -2, 0, -127, 127]);
    assert_eq!(b[0].bsums[0], 2 + 4 - 2 - 127 + 127);
    assert!(b[0].bsums[1..].iter().all(|&s| s == 0));

    // max = +127 flips every sign: iscale = -1, d = -1.
    x[4] = 127.0;
    quantize_row_q8_k(&x, &mut b);
    assert_eq!(b[0].d, -1.0);
    assert_eq!(&b[0].qs[..6], &[-2, -4, 2, 0, -127, -127]);
}

#[test]
fn q8_k_first_of_equal_magnitudes_sets_the_sign() {
    let mut x = [0f32; 256];
    x[10] = -3.0;
    x[20] = 3.0;
    let mut b = [BlockQ8K::ZERO];
    quantize_row_q8_k(&x, &mut b);
    assert_eq!(b[0].qs[10], -127);
    assert_eq!(b[0].qs[20], 127);
    assert_eq!(b[0].d, 1.0 / (-127.0f32 / -3.0));
}

#[test]
fn q8_k_zero_block_is_all_zero() {
    let mut b = [BlockQ8K { d: 7.0, qs: [5; 256], bsums: [9; 16] }];
    quantize_row_q8_k(&[0.0; 256], &mut b);
    assert_eq!(b[0], BlockQ8K::ZERO);
    quantize_row_q8_k(&[-0.0; 256], &mut b);
    assert_eq!(b[0], BlockQ8K::ZERO);
}

#[test]
fn q8_k_bsums_are_sums_of_16() {
    let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013).collect();
    let mut b = [BlockQ8K::ZERO; 2];
    quantize_row_q8_k(&x, &mut b);
    for blk in &b {
        for j in 0..16 {
            let s: i32 = blk.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(blk.bsums[j] as i32, s);
        }
    }
}

#[test]
fn quantize_activation_picks_the_vec_dot_type() {
    let x: Vec<f32> = (0..256).map(|i| i as f32 * 0.01 - 1.0).collect();
    for (w, want) in [
        (GgmlType::Q4_K, GgmlType::Q8_K),
        (GgmlType::Q6_K, GgmlType::Q8_K),
        (GgmlType::IQ4_XS, GgmlType::Q8_K),
        (GgmlType::Q4_0, GgmlType::Q8_0),
        (GgmlType::Q5_0, GgmlType::Q8_0),
        (GgmlType::Q8_0, GgmlType::Q8_0),
        (GgmlType::IQ4_NL, GgmlType::Q8_0),
        (GgmlType::Q4_1, GgmlType::Q8_1),
        (GgmlType::Q5_1, GgmlType::Q8_1),
        (GgmlType::F16, GgmlType::F16),
        (GgmlType::BF16, GgmlType::BF16),
        (GgmlType::F32, GgmlType::F32),
    ] {
        let a = quantize_activation(w, &x).unwrap();
        assert_eq!(a.ty(), want, "{w}");
        assert_eq!(a.n_values(), 256, "{w}");
    }
    let Activation::F16(h) = quantize_activation(GgmlType::F16, &[0.1, 65520.0]).unwrap() else {
        panic!()
    };
    assert_eq!(h[0], f16::from_f32(0.1));
    assert!(h[1].is_infinite(), "65520 rounds up to +Inf in f16, as ggml's conversion does");
}

#[test]
fn bf16_conversion_matches_ggml_rounding() {
    // Round to nearest even on the dropped 16 bits; NaN stays NaN with the quiet bit set.
    let cases: [(u32, u16); 7] = [
        (0x3F80_0000, 0x3F80),
        (0x3F80_8000, 0x3F80), // tie, even stays
        (0x3F81_8000, 0x3F82), // tie, odd rounds up
        (0x3F80_8001, 0x3F81),
        (0x7F7F_FFFF, 0x7F80), // largest finite rounds to +Inf
        (0x7F80_0001, 0x7FC0), // signalling NaN -> quiet
        (0xFF80_0000, 0xFF80),
    ];
    for (f, want) in cases {
        assert_eq!(f32_to_bf16(f32::from_bits(f)).to_bits(), want, "{f:#010x}");
    }
    // Agrees with `half` on ordinary values.
    for i in 0..10_000u32 {
        let v = f32::from_bits(i.wrapping_mul(2_654_435_761));
        if !v.is_nan() {
            assert_eq!(f32_to_bf16(v), bf16::from_f32(v), "{:#010x}", v.to_bits());
        }
    }
}
