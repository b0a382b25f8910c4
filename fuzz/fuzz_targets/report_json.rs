//! A saved report opened in the page or by `parallax check`: parse, judge with the default
//! contracts, render (standalone HTML and fragment) and pack into a permalink and back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_judge::{evaluate, PathMapping};
use parallax_report::{html, permalink, Report};

/// The embedded contracts, parsed once.
fn contracts() -> &'static [parallax_judge::Contract] {
    static CONTRACTS: std::sync::OnceLock<Vec<parallax_judge::Contract>> =
        std::sync::OnceLock::new();
    CONTRACTS.get_or_init(parallax_judge::default_contracts)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(report) = Report::from_json(text) else {
        return;
    };
    let verdicts = evaluate(&report, contracts(), &PathMapping::parse("apr=f32,gguf=q8").unwrap());
    let _ = verdicts;
    let page = html::render_standalone(&report);
    // Every string of the report is escaped: the only tags are the renderer's own.
    assert!(!page.contains("<script"), "the rendered report contains a script tag");
    let _ = html::render_fragment(&report);
    let link = permalink::encode(&report);
    permalink::decode(&link).expect("a permalink of a parsed report unpacks");
});
