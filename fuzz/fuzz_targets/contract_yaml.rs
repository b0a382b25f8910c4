//! Contract YAML loading (upstream's pv schema), then judging a small real report with it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parallax_judge::{evaluate, PathMapping};
use parallax_parity::contract::Contract;
use parallax_report::Report;

/// A report of the synthetic 2-layer model (committed seed of the report_json target).
fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        Report::from_json(include_str!("../corpus/report_json/tiny-report.json"))
            .expect("seed report parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(contract) = Contract::from_yaml_str(text) {
        let _ = evaluate(
            report(),
            &[contract],
            &PathMapping::parse("apr=f32,gguf=q8").unwrap(),
        );
    }
});
