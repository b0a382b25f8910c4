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
    /// Show a report without the model: from a permalink payload (`#r=…`) or report JSON.
    Show { permalink: Option<String>, json: Option<String> },
}

impl Request {
    /// Whether the request reads a model (and so needs a file or URL alongside).
    pub fn needs_model(&self) -> bool {
        !matches!(self, Request::Show { .. })
    }
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
    /// Hash the whole file (sha256, recorded in the report) before the run.
    #[serde(default)]
    pub sha256: bool,
    /// Contract YAML texts (pv schema) to judge by; empty: the embedded defaults.
    #[serde(default)]
    pub contracts: Vec<(String, String)>,
}

/// Messages from the worker to the page, posted as JSON strings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The worker's wasm has loaded; the page may send work now.
    Ready,
    Progress { phase: String, layers_done: u32, n_layers: u32, bytes_read: u64, bytes_total: u64 },
    Inspected { summary: Box<parallax_model::ModelSummary> },
    /// The finished run: the report as JSON and rendered by the shared renderer.
    Report {
        json: String,
        html: String,
        standalone: String,
        permalink: String,
        /// The worker's wasm memory after the run: it never shrinks, so this is its peak.
        wasm_memory_bytes: u64,
    },
    /// Something the user should know that does not stop the work.
    Warning { message: String },
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

    /// A file on a web server, read with synchronous `Range` requests (allowed in workers): each
    /// read is one request for exactly its bytes. The server must answer 206 with the right
    /// `Content-Range`; a change of its `ETag`/`Last-Modified` between reads is an error.
    pub struct HttpRangeSource {
        url: String,
        len: u64,
        validator: Option<String>,
        /// The whole file, when the server ignored Range and sent it all (kept as a JS buffer,
        /// outside wasm memory).
        whole: Option<js_sys::Uint8Array>,
    }

    /// The largest file read whole from a server that ignores Range requests.
    pub const MAX_WHOLE_BYTES: u64 = 2 << 30;

    fn xhr_range(url: &str, first: u64, last: u64) -> Result<web_sys::XmlHttpRequest, String> {
        let xhr = web_sys::XmlHttpRequest::new().map_err(|e| format!("{e:?}"))?;
        xhr.open_with_async("GET", url, false).map_err(|e| format!("{e:?}"))?;
        xhr.set_response_type(web_sys::XmlHttpRequestResponseType::Arraybuffer);
        xhr.set_request_header("Range", &format!("bytes={first}-{last}")).map_err(|e| format!("{e:?}"))?;
        // A failed synchronous request throws (network error, CORS refusal).
        xhr.send().map_err(|_| {
            format!(
                "could not fetch {url}: the network failed, or the server does not allow this page to read it \
                 (cross-origin requests need CORS headers: Access-Control-Allow-Origin, and Range in \
                 Access-Control-Allow-Headers)"
            )
        })?;
        Ok(xhr)
    }

    fn validator(xhr: &web_sys::XmlHttpRequest) -> Option<String> {
        xhr.get_response_header("ETag").ok().flatten().or_else(|| xhr.get_response_header("Last-Modified").ok().flatten())
    }

    impl HttpRangeSource {
        pub fn open(url: &str) -> Result<Self, String> {
            let xhr = xhr_range(url, 0, 0)?;
            let status = xhr.status().unwrap_or(0);
            match status {
                206 => {}
                200 => {
                    // The server ignored Range and sent the whole body: keep it and read from it.
                    let body = xhr.response().map_err(|e| format!("{url}: {e:?}"))?;
                    let whole = js_sys::Uint8Array::new(&body);
                    let len = whole.length() as u64;
                    if len > MAX_WHOLE_BYTES {
                        return Err(format!(
                            "{url}: the server ignores Range requests and the file ({len} bytes) is too large to hold whole; \
                             serve it with a server that supports Range (e.g. `npx http-server`), or drop the file here"
                        ));
                    }
                    return Ok(HttpRangeSource { url: url.to_string(), len, validator: None, whole: Some(whole) });
                }
                404 => return Err(format!("{url}: the server has no such file (404 Not Found)")),
                s => return Err(format!("{url}: the server answered {s} {}", xhr.status_text().unwrap_or_default())),
            }
            let range = xhr.get_response_header("Content-Range").ok().flatten().ok_or_else(|| {
                format!("{url}: the server sent no Content-Range header (or does not expose it to this page via CORS)")
            })?;
            let (_, len) = crate::parse_content_range(&range)
                .ok_or_else(|| format!("{url}: cannot read the server's Content-Range `{range}`"))?;
            Ok(HttpRangeSource { url: url.to_string(), len, validator: validator(&xhr), whole: None })
        }

        /// Whether the server ignored Range requests, so the whole file was downloaded at once.
        pub fn read_whole(&self) -> bool {
            self.whole.is_some()
        }
    }

    impl ByteSource for HttpRangeSource {
        fn len(&self) -> u64 {
            self.len
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
            check_bounds(offset, buf.len() as u64, self.len)?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Some(whole) = &self.whole {
                whole.subarray(offset as u32, (offset + buf.len() as u64) as u32).copy_to(buf);
                return Ok(());
            }
            let io = |message: String| SourceError::Io { offset, len: buf.len() as u64, message };
            let xhr = xhr_range(&self.url, offset, offset + buf.len() as u64 - 1).map_err(io)?;
            let status = xhr.status().unwrap_or(0);
            if status != 206 {
                return Err(io(format!("the server answered {status} to a Range request")));
            }
            if let (Some(was), Some(now)) = (&self.validator, validator(&xhr)) {
                if *was != now {
                    return Err(SourceError::Changed { message: format!("{} changed on the server ({was} → {now})", self.url) });
                }
            }
            let start = xhr.get_response_header("Content-Range").ok().flatten().and_then(|h| crate::parse_content_range(&h));
            if let Some((start, total)) = start {
                if start != offset || total != self.len {
                    return Err(SourceError::Changed {
                        message: format!("the server sent bytes from {start} of a {total}-byte file, not {offset} of {}", self.len),
                    });
                }
            }
            let body = xhr.response().map_err(|e| io(format!("{e:?}")))?;
            let bytes = js_sys::Uint8Array::new(&body);
            if bytes.length() as usize != buf.len() {
                return Err(io(format!("the server sent {} bytes", bytes.length())));
            }
            bytes.copy_to(buf);
            Ok(())
        }
        fn name(&self) -> String {
            self.url.clone()
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

/// The byte length declared by a `Content-Range: bytes A-B/TOTAL` header, and its start.
pub fn parse_content_range(header: &str) -> Option<(u64, u64)> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_header() {
        assert_eq!(parse_content_range("bytes 0-0/491400064"), Some((0, 491400064)));
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-0/5"), None);
    }

    #[test]
    fn token_field_parses_commas_and_spaces() {
        assert_eq!(parse_tokens("3838, 374 220,17").unwrap(), vec![3838, 374, 220, 17]);
        assert!(parse_tokens("1, x").unwrap_err().contains("`x`"));
        assert_eq!(parse_tokens("  ").unwrap(), Vec::<u32>::new());
    }
}
