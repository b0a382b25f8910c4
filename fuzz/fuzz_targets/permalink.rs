//! Permalink payloads (`#r=…` in a URL someone shared): base64url, inflate with a cap, report JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parallax_report::permalink;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = permalink::decode(text);
    }
    // Raw deflate streams too, so the inflater itself is mutated, not only the base64 around it.
    use base64::Engine;
    let link = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let _ = permalink::decode(&link);
});
