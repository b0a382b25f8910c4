//! A hostile variant of the demo model for the hardening tests: the same runnable weights, but
//! the strings a user sees — `general.name`, a tensor name, three tokenizer pieces and the chat
//! template — carry HTML, script and `javascript:` payloads. Each payload, if it ever ran, would
//! set `window.__pwned` to a value naming where it came from.

use parallax_gguf::writer::GgufWriter;
use parallax_gguf::{GgmlType, GgufFile, MetaArray, MetaValue};
use parallax_source::MemorySource;

use crate::DemoError;

/// `general.name` of the hostile model.
pub const NAME: &str = "<script>window.__pwned='name-script'</script><img src=x onerror=\"window.__pwned='name-img'\">";
/// An extra (unused) tensor's name.
pub const TENSOR: &str = "blk.0.\"><svg onload=window.__pwned='tensor'>";
/// `tokenizer.chat_template`.
pub const CHAT_TEMPLATE: &str =
    "{% for m in messages %}<script>window.__pwned='template'</script>{{ m.content }}\
<a href=\"javascript:window.__pwned='href'\">x</a>{% endfor %}";
/// Pieces given to the last three token ids of the vocabulary.
pub const PIECES: [&str; 3] = [
    "<img src=x onerror=window.__pwned='piece-img'>",
    "javascript:window.__pwned='piece-js'",
    "</title></textarea><script>window.__pwned='piece-script'</script>",
];

/// The hostile model made from the demo model's bytes, and the ids that carry [`PIECES`].
pub fn hostile_model(demo: &[u8]) -> Result<(Vec<u8>, [u32; 3]), DemoError> {
    let src = MemorySource::new(demo);
    let file = GgufFile::read(&src).map_err(|e| DemoError::new(format!("the demo model: {e}")))?;
    let tokens = file
        .get_str_arr("tokenizer.ggml.tokens")
        .ok_or_else(|| DemoError::new("the demo model has no tokenizer.ggml.tokens"))?;
    let n = tokens.len();
    let ids = [n as u32 - 3, n as u32 - 2, n as u32 - 1];
    let replaced: Vec<&str> = ids.iter().map(|&i| &tokens[i as usize]).collect();
    let bad = |e: parallax_gguf::writer::WriteError| DemoError::new(e.to_string());

    let mut w = GgufWriter::new();
    for (key, value) in file.metadata() {
        let value = match key.as_str() {
            "general.name" => NAME.into(),
            "tokenizer.ggml.tokens" => {
                let mut t = tokens.to_vec();
                for (&id, piece) in ids.iter().zip(PIECES) {
                    t[id as usize] = piece.to_string();
                }
                MetaValue::from(t)
            }
            // A merge that names a replaced piece would no longer resolve.
            "tokenizer.ggml.merges" => MetaValue::Array(MetaArray::String(
                file.get_str_arr(key)
                    .into_iter()
                    .flat_map(|a| a.iter())
                    .filter(|m| !m.split(' ').any(|p| replaced.contains(&p)))
                    .collect(),
            )),
            "tokenizer.chat_template" => continue,
            _ => value.clone(),
        };
        w.add(key, value).map_err(bad)?;
    }
    w.add("tokenizer.chat_template", CHAT_TEMPLATE).map_err(bad)?;
    for t in file.tensors() {
        let bytes = file.tensor_bytes(&src, t).map_err(|e| DemoError::new(e.to_string()))?;
        w.add_tensor(&t.name, &t.dims, t.ty, bytes).map_err(bad)?;
    }
    w.add_tensor(TENSOR, &[32], GgmlType::F32, vec![0u8; 128]).map_err(bad)?;
    Ok((w.to_bytes(), ids))
}
