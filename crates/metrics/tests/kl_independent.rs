//! The metrics against an independent computation: KL divergence, cosine, rel-L2, SQNR, max-abs,
//! std ratio and sample statistics equal what numpy and scipy compute in f64 on the same f32
//! values (`golden/metrics_independent.json`, written by `tools/golden/gen_metrics_golden.py`),
//! and a hand case with closed-form values. A KL in the wrong direction (Q‖P), in bits instead
//! of nats, or scaled by any constant fails here.

use parallax_metrics::{Compare, LogitsCompare, Stats};
use parallax_testkit::{f32s_le, unhex};
use serde_json::Value;

fn golden() -> Value {
    serde_json::from_str(include_str!("golden/metrics_independent.json")).expect("golden parses")
}

fn vector(case: &Value, key: &str) -> Vec<f32> {
    f32s_le(&unhex(case[key].as_str().unwrap_or_else(|| panic!("{key} missing"))))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// `got` equals `want` within `rel` of `want`, or `abs` near zero.
fn close(what: &str, got: f64, want: f64, rel: f64, abs: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs() + abs,
        "{what}: got {got:e}, numpy/scipy {want:e} (difference {:e})",
        (got - want).abs()
    );
}

/// Both sides sum in f64, in different orders: they agree to about 1e-15 relative. The slack
/// near zero covers the log-sum-exp's last bits, which every term of the KL shares
/// (a few ulps of a value near 10, about 1e-14 nats).
const REL: f64 = 1e-10;
const KL_ABS: f64 = 1e-13;

#[test]
fn kl_is_p_reference_against_q_path_in_nats() {
    let g = golden();
    let cases = g["logits"].as_array().unwrap();
    assert_eq!(cases.len(), 4, "the golden's cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (reference, path) =
            (vector(case, "reference_f32le_hex"), vector(case, "path_f32le_hex"));
        let l = LogitsCompare::of(&reference, &path).expect("equal lengths");
        let (want, reverse) = (num(&case["kl"]), num(&case["kl_reverse"]));
        let kl = l.kl.expect("finite logits have a KL");
        close(&format!("{name}: KL(P_ref‖Q_path)"), kl, want, REL, KL_ABS);
        // The golden can tell the directions apart, so the match above is not a coincidence.
        if want > 1e-6 {
            assert!(
                (want - reverse).abs() > 1e3 * (REL * want + KL_ABS),
                "{name}: the case cannot tell KL(P‖Q) from KL(Q‖P)"
            );
        }
        assert_eq!(l.top1_agree, case["top1_agree"].as_bool().unwrap(), "{name}: top-1");
        assert_eq!(l.top10_overlap as u64, case["top10_overlap"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn compare_and_stats_equal_numpy() {
    let g = golden();
    for case in g["samples"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (reference, path) =
            (vector(case, "reference_f32le_hex"), vector(case, "path_f32le_hex"));
        let c = Compare::of(&reference, &path).expect("equal lengths");
        let want = &case["compare"];
        assert_eq!(c.count, reference.len() as u64);
        for (metric, got) in [
            ("cosine", c.cosine),
            ("rel_l2", c.rel_l2),
            ("sqnr_db", c.sqnr_db),
            ("max_abs", c.max_abs),
            ("std_ratio", c.std_ratio),
        ] {
            close(&format!("{name}: {metric}"), got.unwrap(), num(&want[metric]), REL, 0.0);
        }
        for (side, values) in [("reference_stats", &reference), ("path_stats", &path)] {
            let s = Stats::of(values);
            let want = &case[side];
            for (stat, got) in [
                ("mean", s.mean),
                ("std", s.std),
                ("min", s.min),
                ("max", s.max),
                ("absmax", s.absmax),
            ] {
                close(
                    &format!("{name}: {side}.{stat}"),
                    got.unwrap(),
                    num(&want[stat]),
                    REL,
                    1e-15,
                );
            }
        }
    }
}

/// reference (3, 0, 4, 0), path (3, 0, 4, 5): the difference (0, 0, 0, 5) is as long as the
/// reference (‖r‖ = ‖d‖ = 5), so rel-L2 = 1, SQNR = 0 dB, cosine = 25 / (5·√50) = 1/√2 and
/// max-abs = 5; the sample stds are √(25/3 − 49/12) and √(50/3 − 144/12), whose ratio is
/// √(56/51).
#[test]
fn compare_on_a_hand_case_with_closed_form_values() {
    let c = Compare::of(&[3.0, 0.0, 4.0, 0.0], &[3.0, 0.0, 4.0, 5.0]).unwrap();
    close("cosine", c.cosine.unwrap(), std::f64::consts::FRAC_1_SQRT_2, 1e-15, 0.0);
    close("rel_l2", c.rel_l2.unwrap(), 1.0, 1e-15, 0.0);
    close("sqnr_db", c.sqnr_db.unwrap(), 0.0, 0.0, 1e-14);
    assert_eq!(c.max_abs, Some(5.0));
    close("std_ratio", c.std_ratio.unwrap(), (56.0f64 / 51.0).sqrt(), 1e-15, 0.0);
}

/// Two tokens: P = (1/2, 1/2) from logits (0, 0); Q = (1/(1+e), e/(1+e)) from logits (0, 1).
/// KL(P‖Q) = ½·ln((1+e)/2) + ½·ln((1+e)/(2e)) = ln((1+e)/2) − ½ in nats; KL(Q‖P) differs.
#[test]
fn kl_on_two_tokens_has_the_closed_form_value() {
    let e = std::f64::consts::E;
    let want = ((1.0 + e) / 2.0).ln() - 0.5;
    let l = LogitsCompare::of(&[0.0, 0.0], &[0.0, 1.0]).unwrap();
    close("KL(P‖Q)", l.kl.unwrap(), want, 1e-14, 0.0);
    let q = [1.0 / (1.0 + e), e / (1.0 + e)];
    let reverse: f64 = q.iter().map(|qi| qi * (qi / 0.5).ln()).sum();
    assert!((reverse - want).abs() > 1e-3, "the two directions differ here: {reverse} vs {want}");
}
