//! Regression (fuzzing, report_json): a top logit outside f32's range (or infinite, as a broken
//! model's logits are) was written as JSON `null`, so the saved report and its permalink could
//! not be opened again. Non-finite logits now round-trip as "inf" / "-inf" / "nan".

use parallax_report::{permalink, Report};

const SEED: &str = include_str!("../../../fuzz/corpus/report_json/tiny-report.json");
const CRASH: &str = include_str!(
    "../../../fuzz/regressions/report_json/crash-3b766d4daf00078b0044cc7665a3f74040226022"
);

#[test]
fn non_finite_top_logits_survive_json_and_permalinks() {
    let mut report = Report::from_json(SEED).unwrap();
    let path = report.paths[0].clone();
    report.logits.paths.get_mut(&path).unwrap().top =
        vec![(1, f32::INFINITY), (2, f32::NEG_INFINITY), (3, f32::NAN), (4, 1.5)];
    let json = report.to_json();
    assert!(json.contains("\"inf\"") && json.contains("\"-inf\"") && json.contains("\"nan\""));
    for back in
        [Report::from_json(&json).unwrap(), permalink::decode(&permalink::encode(&report)).unwrap()]
    {
        let top = &back.logits.paths[&path].top;
        let bits: Vec<(u32, u32)> = top.iter().map(|&(i, v)| (i, v.to_bits())).collect();
        assert_eq!(bits[..2], [(1, f32::INFINITY.to_bits()), (2, f32::NEG_INFINITY.to_bits())]);
        assert!(top[2].1.is_nan());
        assert_eq!(top[3], (4, 1.5));
    }
    // Older reports wrote null: it reads as NaN. A string that is not a number is refused.
    // (`"nan"` is also a statistics key: replace the value only, which is followed by `]`.)
    let value = |j: &str, to: &str| {
        j.replacen("\"nan\"\n", &format!("{to}\n"), 1).replacen("\"nan\"]", &format!("{to}]"), 1)
    };
    let old = value(&json, "null");
    assert!(Report::from_json(&old).unwrap().logits.paths[&path].top[2].1.is_nan());
    let bad = value(&json, "\"lots\"");
    assert!(Report::from_json(&bad).unwrap_err().contains("logit of token 3 is not a number"));
}

#[test]
fn the_fuzzer_s_report_reopens_from_its_permalink() {
    let report = Report::from_json(CRASH).expect("the crash input is a valid report");
    permalink::decode(&permalink::encode(&report)).expect("its permalink opens");
}
