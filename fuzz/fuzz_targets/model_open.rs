//! A model file (GGUF or APR, detected) opened as the CLI and the page open it: summary,
//! architecture, tokenizer (built and run on a prompt), a first row of each tensor.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common_model.rs"]
mod common_model;

fuzz_target!(|data: &[u8]| {
    common_model::exercise_model(data);
});
