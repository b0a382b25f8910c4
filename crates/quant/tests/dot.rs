//! Fused dot products against `Σ dequant(w)·dequant(q8(x))` computed in f64.
//!
//! Tolerance: |fused − reference| ≤ 1e-5 · Σ (|scale part| + |min part|)·|a_i| (see
//! `common::ref_dot`). Why that is enough and not loose: the integer sums inside a block are exact
//! in both; what differs is float rounding (2^-24 relative each) — a few roundings per block to
//! combine scales (d_w·d_a, ·Σ, the 8 lanes, the final lane sum) plus one per block of serial
//! accumulation — at most (n_blocks + 16)·2^-24 ≈ 4.8e-6 for the ≤ 64 blocks used here. The
//! reference's own f32 dequantization (d·sc, d1·q − m1) adds a few more 2^-24 per term.
//! `a_single_wrong_weight_bit_is_detected` shows the bound is far tighter than any real bug.

mod common;

use common::{random_row, random_weights, ref_dot, Rng};
use parallax_quant::dot::{self, matvec};
use parallax_quant::{generic, quantize_activation, vec_dot, Activation, GgmlType};

const PAIRED: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::IQ4_NL,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_XS,
];

/// Calls the scalar reference kernel directly, bypassing any SIMD dispatch.
fn generic_dot(ty: GgmlType, w: &[u8], a: &Activation) -> f32 {
    use GgmlType as T;
    match (ty, a) {
        (T::Q4_0, Activation::Q8_0(a)) => generic::vec_dot_q4_0_q8_0(w, a),
        (T::Q5_0, Activation::Q8_0(a)) => generic::vec_dot_q5_0_q8_0(w, a),
        (T::Q8_0, Activation::Q8_0(a)) => generic::vec_dot_q8_0_q8_0(w, a),
        (T::IQ4_NL, Activation::Q8_0(a)) => generic::vec_dot_iq4_nl_q8_0(w, a),
        (T::Q4_1, Activation::Q8_1(a)) => generic::vec_dot_q4_1_q8_1(w, a),
        (T::Q5_1, Activation::Q8_1(a)) => generic::vec_dot_q5_1_q8_1(w, a),
        (T::Q2_K, Activation::Q8K(a)) => generic::vec_dot_q2_k_q8_k(w, a),
        (T::Q3_K, Activation::Q8K(a)) => generic::vec_dot_q3_k_q8_k(w, a),
        (T::Q4_K, Activation::Q8K(a)) => generic::vec_dot_q4_k_q8_k(w, a),
        (T::Q5_K, Activation::Q8K(a)) => generic::vec_dot_q5_k_q8_k(w, a),
        (T::Q6_K, Activation::Q8K(a)) => generic::vec_dot_q6_k_q8_k(w, a),
        (T::IQ4_XS, Activation::Q8K(a)) => generic::vec_dot_iq4_xs_q8_k(w, a),
        (T::F16, Activation::F16(a)) => generic::vec_dot_f16(w, a),
        (T::BF16, Activation::BF16(a)) => generic::vec_dot_bf16(w, a),
        (T::F32, Activation::F32(a)) => {
            let wf: Vec<f32> =
                w.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            generic::vec_dot_f32(&wf, a)
        }
        _ => panic!("{ty} has no pairing with {:?}", a.ty()),
    }
}

fn check(ty: GgmlType, w: &[u8], a: &Activation, what: &str) {
    let (want, mag) = ref_dot(ty, w, a);
    let tol = 1e-5 * mag;
    for (path, got) in
        [("vec_dot (dispatched)", vec_dot(ty, w, a).unwrap()), ("generic", generic_dot(ty, w, a))]
    {
        let err = (got as f64 - want).abs();
        assert!(
            err <= tol,
            "{ty} × {} [{what}], {path}: got {got:e}, reference {want:e}, |err| {err:e} > tol {tol:e} \
             ({} values)",
            a.ty(),
            a.n_values()
        );
    }
}

/// Values per row used for a type: one block, and a longer row.
fn sizes(ty: GgmlType) -> [usize; 3] {
    match ty.block_size() {
        256 => [256, 1024, 4096],
        32 => [32, 256, 2048],
        _ => [1, 255, 2048],
    }
}

#[test]
fn every_pairing_matches_the_dequantized_reference() {
    let mut rng = Rng(0x5EED_0001);
    for ty in PAIRED {
        for n in sizes(ty) {
            for trial in 0..4 {
                let w = random_weights(&mut rng, ty, n);
                let x = random_row(&mut rng, n);
                let a = quantize_activation(ty, &x).unwrap();
                assert_eq!(a.ty(), ty.vec_dot_type().unwrap());
                check(ty, &w, &a, &format!("random n={n} trial {trial}"));
            }
        }
    }
}

#[test]
fn pairings_hold_for_activations_with_outliers_and_zero_blocks() {
    // Real activations have a few huge channels (massive activations) and exact-zero stretches.
    let mut rng = Rng(0x5EED_0002);
    for ty in PAIRED {
        let n = sizes(ty)[1];
        let w = random_weights(&mut rng, ty, n);
        let mut x = random_row(&mut rng, n);
        x[n / 3] = 300.0;
        x[n / 2] = -1500.0;
        for v in x.iter_mut().take(n / 4) {
            *v = 0.0;
        }
        let a = quantize_activation(ty, &x).unwrap();
        check(ty, &w, &a, "outliers and zeros");
    }
}

#[test]
fn a_single_wrong_weight_bit_is_detected() {
    // Flipping one quant bit under a large activation must move the fused result outside the
    // tolerance used above, or the tests above could not catch a wrong nibble order.
    let mut rng = Rng(0x5EED_0003);
    for (ty, byte) in [
        (GgmlType::Q4_0, 2 + 5),
        (GgmlType::Q4_K, 16 + 40),
        (GgmlType::Q6_K, 7),
        (GgmlType::Q8_0, 9),
    ] {
        let n = ty.block_size() * 2;
        let w = random_weights(&mut rng, ty, n);
        // Scale fields may be negative; use positive all-ones activations so no cancellation hides it.
        let x = vec![1.0f32; n];
        let a = quantize_activation(ty, &x).unwrap();
        let (want, mag) = ref_dot(ty, &w, &a);
        let mut w2 = w.clone();
        w2[byte] ^= 0x04;
        let got = vec_dot(ty, &w2, &a).unwrap() as f64;
        assert!(
            (got - want).abs() > 1e-5 * mag,
            "{ty}: flipping a bit of byte {byte} changed the dot by only {:e} (tol {:e})",
            (got - want).abs(),
            1e-5 * mag
        );
    }
}

/// The dispatcher picks a twin (AVX2, simd128) or the scalar code; every twin equals the scalar
/// code bit for bit (`simd_parity.rs` proves it kernel by kernel), so the dispatcher does too.
#[test]
fn dispatcher_equals_generic_bit_for_bit() {
    let mut rng = Rng(0x5EED_0004);
    let ty = GgmlType::Q4_K;
    let w = random_weights(&mut rng, ty, 1024);
    let a = quantize_activation(ty, &random_row(&mut rng, 1024)).unwrap();
    let Activation::Q8K(blocks) = &a else { unreachable!() };
    let d = dot::vec_dot_q4_k_q8_k(&w, blocks);
    let g = generic::vec_dot_q4_k_q8_k(&w, blocks);
    assert_eq!(d.to_bits(), g.to_bits(), "dispatch {d:e} vs generic {g:e}");
}

#[test]
fn matvec_equals_row_by_row_vec_dot() {
    let mut rng = Rng(0x5EED_0005);
    for ty in PAIRED {
        let n_cols = sizes(ty)[1];
        let rows = 5;
        let w = random_weights(&mut rng, ty, n_cols * rows);
        let a = quantize_activation(ty, &random_row(&mut rng, n_cols)).unwrap();
        let mut out = vec![f32::NAN; rows];
        matvec(ty, &w, n_cols, &a, &mut out).unwrap();
        let rb = w.len() / rows;
        for (i, &o) in out.iter().enumerate() {
            let row = vec_dot(ty, &w[i * rb..(i + 1) * rb], &a).unwrap();
            assert_eq!(o.to_bits(), row.to_bits(), "{ty} row {i}");
        }
    }
}

#[test]
fn q8_k_bsums_feed_the_min_terms() {
    // Q4_K's mins go through Q8_K's bsums only; a row where the weights are all "min"
    // (q = 0, scale irrelevant) isolates that path: y_i = −dmin·m_j for every i.
    let ty = GgmlType::Q4_K;
    let mut blk = vec![0u8; ty.type_size()];
    blk[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes()); // d
    blk[2..4].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes()); // dmin
    for j in 0..4 {
        blk[4 + j] = 1; // scales 0..4 = 1
        blk[8 + j] = 3; // mins 0..4 = 3
    }
    let mut rng = Rng(0x5EED_0006);
    let x = random_row(&mut rng, 256);
    let a = quantize_activation(ty, &x).unwrap();
    check(ty, &blk, &a, "all-min block");
    let (want, _) = ref_dot(ty, &blk, &a);
    assert!(want.abs() > 0.0, "test block must exercise a non-zero min term");
}
