//! Every input the `trace_import` fuzz target once crashed on (`fuzz/regressions/trace_import/`,
//! read at run time so a newly kept crash file is replayed without editing this test) goes
//! through the three trace parsers the target calls, which must return rather than panic.
//! The first one: a line with `]` before `[` sliced the line backwards.

use std::path::PathBuf;

use parallax_judge::trace::{parse_apr_payload, parse_llama_eval_callback, parse_trace};

#[test]
fn trace_import_crash_inputs_parse_without_panicking() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/trace_import");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        // As the fuzz target does: invalid UTF-8 is replaced, not refused.
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_trace(&text);
        let _ = parse_apr_payload(&text);
        let _ = parse_llama_eval_callback(&text);
        replayed += 1;
    }
    assert!(replayed >= 1, "no crash file in {}", dir.display());
}
