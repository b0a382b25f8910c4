// Shared by gguf_reader and apr_reader: everything the CLI and the page do with a freshly
// opened model before running it (summary, architecture, tokenizer, a first row of each tensor).

use parallax_model::Model;
use parallax_source::MemorySource;

/// Prompt text with special tokens, non-ASCII, digits and spaces: exercises every pre-tokenizer
/// branch of whatever tokenizer the input declares.
const PROMPT: &str = "<|im_start|>user\nWhat is 2+2? Ünïcödé 😀  tabs\t<s></s>";

pub fn exercise_model(data: &[u8]) {
    let Ok(model) = Model::open(MemorySource::new(data)) else {
        return;
    };
    let _ = model.summary();
    let _ = model.summary_full();
    let _ = model.hyperparameters();
    let _ = parallax_engine::ArchConfig::from_model(&model);
    if let Ok(tokenizer) = parallax_engine::tokenizer_for(&model) {
        let ids = tokenizer.encode(PROMPT, true);
        for id in ids {
            let _ = tokenizer.token_text(id);
        }
    }
    // One row of each tensor (the reader guarantees it lies inside the file).
    for t in model.tensors().iter().take(16) {
        if t.n_rows() > 0 {
            let _ = model.read_raw_rows(t, 0..1);
            let _ = model.read_f32_rows(t, 0..1);
        }
    }
}
