//! Trace import (`parallax check --trace`): upstream `apr trace --payload` text and llama.cpp
//! `llama-eval-callback` output, detected and parsed, then judged beside a small real report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_judge::trace::{parse_apr_payload, parse_llama_eval_callback, parse_trace};
use parallax_judge::{evaluate_with_traces, PathMapping};

#[path = "seed_report.rs"]
mod seed_report;
use seed_report::report;

/// The embedded contracts, parsed once.
fn contracts() -> &'static [parallax_judge::Contract] {
    static CONTRACTS: std::sync::OnceLock<Vec<parallax_judge::Contract>> =
        std::sync::OnceLock::new();
    CONTRACTS.get_or_init(parallax_judge::default_contracts)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(trace) = parse_trace(&text) {
        let mapping = PathMapping::parse("apr=t,gguf=q8").unwrap();
        let _ = evaluate_with_traces(report(), &[("t", &trace)], contracts(), &mapping);
    }
    let _ = parse_apr_payload(&text);
    let _ = parse_llama_eval_callback(&text);
});
