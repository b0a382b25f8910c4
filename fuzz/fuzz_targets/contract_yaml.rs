//! Contract YAML loading (upstream's pv schema), then judging a small real report with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_judge::Contract;
use parallax_judge::{evaluate, PathMapping};

#[path = "seed_report.rs"]
mod seed_report;
use seed_report::report;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(contract) = Contract::from_yaml_str(text) {
        let _ = evaluate(report(), &[contract], &PathMapping::parse("apr=f32,gguf=q8").unwrap());
    }
});
