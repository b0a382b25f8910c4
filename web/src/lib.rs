//! The browser app's shared pieces: the message protocol between page and worker, and the byte
//! source that reads a `File` from inside the worker.
//!
//! Owns the DOM glue and worker plumbing only; everything it shows comes from the engine crates,
//! which know nothing of the browser. The worker reads with `FileReaderSync` (synchronous, allowed
//! in workers), so the same synchronous readers serve the CLI and the page.

use serde::{Deserialize, Serialize};

/// What the page asks the worker to do with the file it sends along.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Read the header and answer with the model summary.
    Inspect,
    /// Run the parity engine.
    Run(RunRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// Prompt text, tokenized with the model's tokenizer; ignored when `tokens` is set.
    pub prompt: Option<String>,
    pub tokens: Option<Vec<u32>>,
    /// Path ids, the first being the reference.
    pub paths: Vec<String>,
    pub scope: String,
    pub mode: String,
    /// Faults to inject into the q8 path (`KIND@LAYER[:SITE]`), for demonstrations.
    #[serde(default)]
    pub faults: Vec<String>,
}

/// Messages from the worker to the page, posted as JSON strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The worker's wasm has loaded; the page may send work now.
    Ready,
    Progress { phase: String, layers_done: u32, n_layers: u32, bytes_read: u64, bytes_total: u64 },
    Inspected { summary: parallax_model::ModelSummary },
    /// The finished run: the report as JSON and rendered by the shared renderer.
    Report { json: String, html: String, standalone: String },
    Error { message: String },
}

/// Parse the page's token field: ids separated by commas or spaces.
pub fn parse_tokens(text: &str) -> Result<Vec<u32>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| format!("`{s}` is not a token id (a whole number)")))
        .collect()
}

#[cfg(target_arch = "wasm32")]
pub mod browser {
    use parallax_source::{check_bounds, ByteSource, SourceError};

    /// A `File` (or any `Blob`) read in slices with `FileReaderSync`; only valid inside a worker.
    pub struct FileSliceSource {
        blob: web_sys::Blob,
        name: String,
        reader: web_sys::FileReaderSync,
    }

    impl FileSliceSource {
        pub fn new(file: web_sys::File) -> Result<Self, String> {
            let reader = web_sys::FileReaderSync::new().map_err(|e| format!("cannot read files here: {e:?}"))?;
            let name = file.name();
            Ok(FileSliceSource { blob: file.into(), name, reader })
        }
    }

    impl ByteSource for FileSliceSource {
        fn len(&self) -> u64 {
            self.blob.size() as u64
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
            check_bounds(offset, buf.len() as u64, self.len())?;
            let io = |message: String| SourceError::Io { offset, len: buf.len() as u64, message };
            let slice = self
                .blob
                .slice_with_f64_and_f64(offset as f64, (offset + buf.len() as u64) as f64)
                .map_err(|e| io(format!("{e:?}")))?;
            let array = self.reader.read_as_array_buffer(&slice).map_err(|e| io(format!("{e:?}")))?;
            let bytes = js_sys::Uint8Array::new(&array);
            if bytes.length() as usize != buf.len() {
                return Err(io(format!("the browser returned {} bytes", bytes.length())));
            }
            bytes.copy_to(buf);
            Ok(())
        }
        fn name(&self) -> String {
            self.name.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_field_parses_commas_and_spaces() {
        assert_eq!(parse_tokens("3838, 374 220,17").unwrap(), vec![3838, 374, 220, 17]);
        assert!(parse_tokens("1, x").unwrap_err().contains("`x`"));
        assert_eq!(parse_tokens("  ").unwrap(), Vec::<u32>::new());
    }
}
