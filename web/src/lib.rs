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
    Run(Box<RunRequest>),
    /// Show a report without the model: from a permalink payload (`#r=…`) or report JSON.
    Show { permalink: Option<String>, json: Option<String> },
}

impl Request {
    /// Whether the request reads a model (and so needs a file or URL alongside).
    pub fn needs_model(&self) -> bool {
        !matches!(self, Request::Show { .. })
    }
}

pub use parallax_session::{RunRequest, DEFAULT_MAX_TOKENS};

/// The page's default memory budget per layer: 1.5 GiB leaves room below wasm32's 4 GiB heap
/// (and a browser tab's limits) for the file's buffers and the report.
pub const DEFAULT_MEMORY_BUDGET: u64 = 3 << 29;

/// Run settings a link may carry in its query (`?scope=last&mode=replay&inject=…`): the page
/// applies them to the run the link opens, checked like the form's own values. (`model` and
/// `against` name the files, which the page opens as soon as it loads.)
pub const LINK_SETTINGS: [&str; 10] = [
    "prompt",
    "tokens",
    "paths",
    "scope",
    "mode",
    "inject",
    "max_tokens",
    "memory_budget",
    "reference",
    "threads",
];

/// The page's address for a run by URL: `?model=<url>`, `&against=<url>` when a second file
/// was compared, then each link setting whose value differs from `defaults` (the form as the
/// page loaded it), so opening the address runs the same model with the same settings. Token
/// ids, when given, stand for the prompt (as [`apply_link_settings`] reads them). `kept` is the
/// rest of the page's own query (`http_timeout`, or keys the page does not know), kept as it was
/// after the run's own keys: the address follows the run without dropping what it was opened with.
pub fn run_address(
    model: &str,
    against: Option<&str>,
    form: &parallax_session::FormValues,
    defaults: &parallax_session::FormValues,
    kept: &[(String, String)],
) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("model", model)];
    if let Some(against) = against {
        pairs.push(("against", against));
    }
    let has_tokens = !form.tokens.trim().is_empty();
    for key in LINK_SETTINGS {
        let (value, default) = (link_field(form, key), link_field(defaults, key));
        let skip = match key {
            "prompt" => has_tokens,
            "tokens" => !has_tokens,
            _ => false,
        };
        if !skip && value.trim() != default.trim() {
            pairs.push((key, value));
        }
    }
    let owned = |k: &str| k == "model" || k == "against" || LINK_SETTINGS.contains(&k);
    pairs.extend(kept.iter().filter(|(k, _)| !owned(k)).map(|(k, v)| (k.as_str(), v.as_str())));
    let query: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{k}={}", query_component(v))).collect();
    format!("?{}", query.join("&"))
}

/// The form field a link setting sets (see [`apply_link_settings`]).
fn link_field<'a>(form: &'a parallax_session::FormValues, key: &str) -> &'a str {
    match key {
        "prompt" => &form.prompt,
        "tokens" => &form.tokens,
        "paths" => &form.paths,
        "scope" => &form.scope,
        "mode" => &form.mode,
        "inject" => &form.faults,
        "max_tokens" => &form.max_tokens,
        "memory_budget" => &form.memory_budget,
        "reference" => &form.reference,
        "threads" => &form.threads,
        _ => "",
    }
}

/// `text` percent-encoded for a query string: every byte but the URL's unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`), so a URL, a prompt with `&`, `#` or `+`, or any script survives.
fn query_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Put a link's settings over the form's values (unknown keys are ignored; a bad value is
/// refused later with the same sentence as a bad form value or CLI argument).
pub fn apply_link_settings(form: &mut parallax_session::FormValues, link: &[(String, String)]) {
    for (key, value) in link {
        let field = match key.as_str() {
            "prompt" => &mut form.prompt,
            "tokens" => &mut form.tokens,
            "paths" => &mut form.paths,
            "scope" => &mut form.scope,
            "mode" => &mut form.mode,
            "inject" => &mut form.faults,
            "max_tokens" => &mut form.max_tokens,
            "memory_budget" => &mut form.memory_budget,
            "reference" => &mut form.reference,
            "threads" => &mut form.threads,
            _ => continue,
        };
        *field = value.clone();
        if key == "tokens" {
            form.prompt.clear();
        }
    }
}

/// The link to a Hugging Face file itself (`https://huggingface.co/OWNER/REPO/resolve/REV/FILE`)
/// for the link to its page (`…/blob/REV/FILE`), which serves HTML, not the model; `None` for
/// any other URL, which is used as it is. Datasets' and Spaces' files too; the query is kept.
pub fn hugging_face_file_link(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let (host, path) = rest.split_once('/')?;
    if !["huggingface.co", "www.huggingface.co", "hf.co"]
        .iter()
        .any(|h| host.eq_ignore_ascii_case(h))
    {
        return None;
    }
    // A fragment names a place on the page; the file has none.
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let mut segments: Vec<&str> = path.split('/').collect();
    // OWNER/REPO/blob/REV/FILE…, or datasets|spaces/OWNER/REPO/blob/REV/FILE…
    let at = if matches!(segments.first(), Some(&("datasets" | "spaces"))) { 3 } else { 2 };
    if segments.len() < at + 3 || segments[at] != "blob" || segments[..at].contains(&"") {
        return None;
    }
    segments[at] = "resolve";
    Some(format!("https://{host}/{}", segments.join("/")))
}

/// The lane ids the form's reference field may name: each path the form asks for on each file
/// (`f32, q8, f32@2, q8@2`), unknown paths left out (the run refuses them with their sentence).
pub fn lane_ids(form: &parallax_session::FormValues) -> Vec<String> {
    use parallax_engine::{Lane, PathKind};
    let mut paths: Vec<PathKind> = Vec::new();
    let named = form.paths.split(',').map(str::trim).chain(form.gpu.then_some("gpu"));
    for path in named.filter_map(PathKind::parse) {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let n_files = if form.against.trim().is_empty() { 1 } else { 2 };
    (0..n_files).flat_map(|file| paths.iter().map(move |&path| Lane { path, file }.id())).collect()
}

/// The most threads a run gets by default: the matmuls read weights at memory speed, which a
/// few cores saturate, and every thread is a Web Worker holding its own instance of the engine.
/// A run asks for more with the form's field or `?threads=N`.
pub const MAX_DEFAULT_THREADS: usize = 8;

/// The threads a run gets, and — where that is one although more were asked for or the
/// machine has more cores — why: `asked` is the form's or the link's value (none: one per core,
/// at most [`MAX_DEFAULT_THREADS`]), `cores` is `navigator.hardwareConcurrency`, `shared_memory`
/// whether the page is cross-origin isolated and `threaded_worker` whether this copy of the
/// page has a worker built for threads that loads (each the reason where not).
pub fn run_threads(
    asked: Option<usize>,
    cores: usize,
    shared_memory: Result<(), String>,
    threaded_worker: Result<(), String>,
) -> (usize, Option<String>) {
    let wanted = asked.unwrap_or(cores.clamp(1, MAX_DEFAULT_THREADS));
    if wanted <= 1 {
        return (1, None);
    }
    match shared_memory.and(threaded_worker) {
        Ok(()) => (wanted, None),
        Err(why) => (1, Some(format!("the run uses one thread: {why}"))),
    }
}

/// A 135-byte wasm module whose export `f` returns lane 0 of relaxed SIMD's
/// `i16x8.relaxed_dot_i8x16_i7x16_s(a, b)` plus lane 0 of its i32 sibling
/// `i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c)`, for a = [−100, 50, 3, −7, 0, …],
/// b = [100, 120, 5, 9, 0, …], c = [1000, 0, 0, 0]: [`RELAXED_SIMD_PROBE_ANSWER`] where the
/// browser has both instructions (the page's kernels use both) and computes them as defined.
/// The page loads the worker built with them only then: validating is not enough (node 20's V8
/// validates the i32 dot, doubles it and drops the accumulator: −12096 here; a lowering with its
/// operands swapped would answer otherwise too).
pub const RELAXED_SIMD_PROBE: [u8; 135] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // types: () -> i32
    0x03, 0x02, 0x01, 0x00, // one function of that type
    0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // exported as "f"
    0x0a, 0x6b, 0x01, 0x69, 0x00, // code: one body of 105 bytes, no locals
    0xfd, 0x0c, 0x9c, 0x32, 0x03, 0xf9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const a
    0xfd, 0x0c, 0x64, 0x78, 0x05, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const b
    0xfd, 0x92, 0x02, // i16x8.relaxed_dot_i8x16_i7x16_s
    0xfd, 0x18, 0x00, // i16x8.extract_lane_s 0
    0xfd, 0x0c, 0x9c, 0x32, 0x03, 0xf9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const a
    0xfd, 0x0c, 0x64, 0x78, 0x05, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const b
    0xfd, 0x0c, 0xe8, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // v128.const c
    0xfd, 0x93, 0x02, // i32x4.relaxed_dot_i8x16_i7x16_add_s
    0xfd, 0x1b, 0x00, // i32x4.extract_lane 0
    0x6a, // i32.add
    0x0b, // end
];

/// What [`RELAXED_SIMD_PROBE`]'s `f` returns where relaxed SIMD's dots are right:
/// (−100·100 + 50·120) + (−100·100 + 50·120 + 3·5 − 7·9 + 1000).
pub const RELAXED_SIMD_PROBE_ANSWER: i32 = -7048;

/// The builds of the page's worker: the single-threaded one (Trunk's, stable, simd128), and the
/// threaded ones (`cargo xtask web-threads`), with simd128 or with relaxed SIMD's integer dot too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerBuild {
    Single,
    Threaded,
    ThreadedRelaxed,
}

impl WorkerBuild {
    /// The build a run on `threads` threads gets: the relaxed one where the browser computes
    /// relaxed SIMD right (`relaxed`).
    pub fn for_run(threads: usize, relaxed: bool) -> WorkerBuild {
        match (threads > 1, relaxed) {
            (false, _) => WorkerBuild::Single,
            (true, false) => WorkerBuild::Threaded,
            (true, true) => WorkerBuild::ThreadedRelaxed,
        }
    }

    /// The script the page starts (a classic worker for [`WorkerBuild::Single`], a module
    /// worker told its thread count for the others).
    pub fn script(self, threads: usize) -> String {
        match self {
            WorkerBuild::Single => "./worker_loader.js".into(),
            WorkerBuild::Threaded => format!("./worker_mt_loader.js?threads={threads}"),
            WorkerBuild::ThreadedRelaxed => {
                format!("./worker_mt_relaxed_loader.js?threads={threads}")
            }
        }
    }
}

/// The one line the run settings fold into after a run: the model, the prompt (or its token
/// ids), the paths compared, the scope and the mode, and what else the run asked for (a second
/// file, another reference, injected faults). Described from the request that ran, so it says
/// what the report shows even where the page's address set a value the form does not hold.
pub fn run_summary(model: &str, run: &parallax_session::RunRequest) -> String {
    /// Longer prompts and token lists are cut here, with an ellipsis.
    const PROMPT_CHARS: usize = 48;
    let cut = |s: &str| -> String {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        match s.char_indices().nth(PROMPT_CHARS) {
            Some((at, _)) => format!("{}…", &s[..at]),
            None => s,
        }
    };
    // A URL is named by its file: the whole address is in the model section and the status.
    let model = model.rsplit('/').next().filter(|m| !m.is_empty()).unwrap_or(model);
    let input = match (&run.tokens, &run.prompt) {
        (Some(tokens), _) => {
            let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
            format!("{} token ids {}", tokens.len(), cut(&ids.join(", ")))
        }
        (None, Some(prompt)) => format!("“{}”", cut(prompt)),
        (None, None) => "no prompt".to_string(),
    };
    let reference = run.reference.clone().or_else(|| run.paths.first().cloned());
    let others: Vec<&str> =
        run.paths.iter().map(String::as_str).filter(|p| Some(*p) != reference.as_deref()).collect();
    let paths = match (&reference, others.is_empty()) {
        (Some(r), false) => format!("{} vs {r}", others.join(", ")),
        (Some(r), true) => format!("{r} only"),
        (None, _) => "no paths".to_string(),
    };
    let mut parts = vec![model.to_string(), input, paths];
    parts.extend(run.against.iter().map(|a| {
        format!("against {}", a.rsplit('/').next().filter(|a| !a.is_empty()).unwrap_or(a))
    }));
    parts.push(if run.scope == "last" { "last token" } else { "all tokens" }.to_string());
    parts.push(if run.mode == "replay" { "replay mode" } else { "free mode" }.to_string());
    if !run.faults.is_empty() {
        parts.push(format!("fault {}", run.faults.join(", ")));
    }
    parts.join(" · ")
}

/// A refusal as the page shows it: the CLI's sentence, capitalised and ended with a full stop.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

/// The residual stream's distance from the reference after one layer, while a run streams:
/// what the page draws before the report exists ([`parallax_report::html::render_live_distance`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerDistance {
    pub layer: u32,
    pub reference: String,
    /// The compared lanes, in run order.
    pub lanes: Vec<String>,
    /// Each compared lane's relative L2 at the residual stream (`None`: not a number).
    pub rel_l2: Vec<Option<f64>>,
}

impl LayerDistance {
    /// From the rows the engine shows at each site ([`parallax_engine::Run::tap`]): `None` but
    /// at a layer's last site, the residual stream after the FFN. Over the run's scope (`last`:
    /// the last position only), as the report's comparison at that site, so a point is the
    /// report's value.
    pub fn of<'r>(rows: &parallax_engine::SiteRows<'r>, last_only: bool) -> Option<LayerDistance> {
        let layer = rows.layer?;
        if rows.site != parallax_report::html::RESIDUAL_SITE || rows.rows.is_empty() {
            return None;
        }
        let scoped = |b: &'r [f32]| match last_only {
            true => &b[b.len().saturating_sub(rows.width)..],
            false => b,
        };
        let reference = scoped(&rows.rows[0]);
        let rel_l2 = rows.rows[1..]
            .iter()
            .map(|b| {
                parallax_metrics::Compare::of(reference, scoped(b))
                    .and_then(|c| c.rel_l2)
                    .filter(|v| v.is_finite())
            })
            .collect();
        Some(LayerDistance {
            layer,
            reference: rows.lanes[0].clone(),
            lanes: rows.lanes[1..].to_vec(),
            rel_l2,
        })
    }
}

/// Messages from the worker to the page, posted as JSON strings — but for a report's parts,
/// which travel beside its message ([`ReportPart`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The worker's wasm has loaded (and, in its threaded build, its threads have started);
    /// the page may send work now. `tokenizer_secret`: whether the tokenizer's maps hash with a
    /// secret the worker drew from `crypto.getRandomValues` — without it std's keys on
    /// wasm32-unknown-unknown are two addresses, the same for every visitor, and a vocabulary
    /// could be made to collide (`parallax_tokenizer::set_hash_seed`).
    Ready {
        tokenizer_secret: bool,
    },
    /// The threaded worker could not start its threads (`reason`): the page replaces it with
    /// the single-threaded one.
    ThreadsUnavailable {
        reason: String,
    },
    Progress(parallax_session::ProgressUpdate),
    /// A layer finished: where the residual stream stands (drawn while the run streams).
    Layer(LayerDistance),
    /// The model's summary; for a URL, also the version of the file its server answered
    /// with (its version tag and size), which the page sends back with a run: a run that finds
    /// another version says so and sends the new summary (the page then shows that one).
    Inspected {
        summary: Box<parallax_model::ModelSummary>,
        version: Option<String>,
    },
    /// The finished run's answer, judged, before its report is drawn: the report's opening
    /// sections (`parallax_report::html::render_answer`: the verdict, the first divergence, the
    /// distance chart), which the page shows at once. Drawing, encoding and inserting the whole
    /// report takes a 7-token run of the 0.5B ~0.27 s more (session 21, `bench/page_phases.mjs`).
    Answer {
        html: String,
    },
    /// The finished run. Its report — as JSON, rendered by the shared renderer, as a permalink —
    /// travels beside this message, not in it: the worker posts an array of this message's JSON
    /// text and the [`ReportPart`]s in their order.
    Report {
        /// The worker's wasm memory after the run: it never shrinks, so this is its peak.
        wasm_memory_bytes: u64,
    },
    /// Something the user should know that does not stop the work.
    Warning {
        message: String,
    },
    Error {
        message: String,
    },
}

/// The parts of a finished run's report, posted beside [`WorkerMessage::Report`] as an array:
/// the message's JSON text, then these in [`ReportPart::ALL`]'s order. A 304-token run's JSON
/// is ~100 MB: escaped into the message's JSON text, converted between the worker's and the
/// page's string forms and into a download, it cost seconds; the downloads travel as bytes
/// (their buffers handed over, not copied) and stay bytes until a Blob, and the page inserts
/// the renderings as the strings that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPart {
    /// The report's JSON (UTF-8 bytes): the JSON download.
    Json,
    /// The rendered report (a string): the page shows it.
    Html,
    /// The panels the heatmaps' cells open (a string; empty for a permalink, which has none).
    Details,
    /// The standalone HTML document (UTF-8 bytes): the HTML download.
    Standalone,
    /// The permalink's payload (a string).
    Permalink,
}

impl ReportPart {
    pub const ALL: [ReportPart; 5] = [
        ReportPart::Json,
        ReportPart::Html,
        ReportPart::Details,
        ReportPart::Standalone,
        ReportPart::Permalink,
    ];

    /// Where the part sits in the posted array (after the message's JSON text).
    pub fn index(self) -> u32 {
        1 + ReportPart::ALL.iter().position(|p| *p == self).expect("every part is in ALL") as u32
    }

    /// Whether the part travels as bytes (a `Uint8Array` whose buffer is handed over) rather
    /// than as a string.
    pub fn is_bytes(self) -> bool {
        matches!(self, ReportPart::Json | ReportPart::Standalone)
    }
}

/// How patient the URL source is with a server: every request has a time limit, and transient
/// failures (a stalled or dropped connection, a short body, a 5xx answer) are retried a few
/// times — each retry asks again for exactly the bytes still missing — before a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpPolicy {
    /// Time allowed for any request, before its size is counted.
    pub timeout_base_ms: u32,
    /// Slowest transfer waited for: a request of `n` bytes gets `n / min_bytes_per_s` seconds
    /// on top of the base.
    pub min_bytes_per_s: u32,
    /// Further tries after a transient failure.
    pub retries: u32,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy { timeout_base_ms: 60_000, min_bytes_per_s: 1 << 20, retries: 2 }
    }
}

impl HttpPolicy {
    /// The page's `?http_timeout=SECONDS` (for slow servers, and for tests of stalled ones).
    pub fn with_timeout_s(mut self, seconds: f64) -> Self {
        if seconds.is_finite() && seconds > 0.0 {
            self.timeout_base_ms = (seconds * 1000.0).min(u32::MAX as f64) as u32;
        }
        self
    }

    /// The time limit of a request for `bytes` bytes, in milliseconds (at most ~49 days, the
    /// largest value `XMLHttpRequest.timeout` holds).
    pub fn timeout_ms(&self, bytes: u64) -> u32 {
        let transfer = bytes.saturating_mul(1000) / u64::from(self.min_bytes_per_s.max(1));
        u64::from(self.timeout_base_ms).saturating_add(transfer).min(u32::MAX as u64) as u32
    }
}

/// What an HTTP status means for a read: `Ok(())` for the expected one, else whether trying
/// again may help and what to tell the user.
pub fn judge_status(status: u16, expected: u16, status_text: &str) -> Result<(), (bool, String)> {
    let text = if status_text.is_empty() { String::new() } else { format!(" {status_text}") };
    match status {
        s if s == expected => Ok(()),
        0 => Err((true, "the request failed before any answer (network error)".into())),
        404 | 410 => Err((false, format!("the server has no such file ({status}{text})"))),
        401 | 403 => Err((false, format!("the server refuses to give this file ({status}{text})"))),
        416 => Err((false, format!("the server refused the byte range asked for ({status}{text}); has the file shrunk?"))),
        408 | 429 | 500..=599 => Err((true, format!("the server failed ({status}{text})"))),
        206 => Err((false, "the server answered a whole-file request with a part (206)".into())),
        200 => Err((
            false,
            "the server stopped honouring Range requests (it answered 200 with the whole file) in the middle of the read".into(),
        )),
        s => Err((false, format!("the server answered {s}{text}"))),
    }
}

/// The fetch worker's shared buffer, as `www/fetch-worker.js` lays it out (its header comment
/// says what each part holds): the index of each i32 control word, then byte offsets and sizes.
/// The script writes the same numbers; a test holds the two to each other.
pub mod fetch_layout {
    pub const WRITTEN: u32 = 0;
    pub const CONSUMED: u32 = 1;
    pub const FAILED: u32 = 2;
    pub const MESSAGE_LEN: u32 = 3;
    pub const REQUESTED: u32 = 4;
    pub const STARTED: u32 = 5;
    pub const URL_LEN: u32 = 6;
    pub const VALIDATOR_LEN: u32 = 7;
    pub const SPANS_AT: u32 = 256;
    pub const SLOTS: u32 = 32;
    pub const TOTAL_AT: u32 = 768;
    pub const URL_AT: u32 = 1024;
    pub const URL_MAX: u32 = 8192;
    pub const VALIDATOR_AT: u32 = 9216;
    pub const VALIDATOR_MAX: u32 = 512;
    pub const MESSAGE_AT: u32 = 9728;
    pub const MESSAGE_MAX: u32 = 512;
    pub const RING_AT: u32 = 16384;

    // The parts follow each other without overlap: the 16 control words, the f64 span slots and
    // total (8-aligned), the URL, the validator, the failure's reason, then the ring.
    const _: () = {
        assert!(VALIDATOR_LEN < 16 && 16 * 4 <= SPANS_AT && SPANS_AT.is_multiple_of(8));
        assert!(SPANS_AT + SLOTS * 16 <= TOTAL_AT && TOTAL_AT.is_multiple_of(8));
        assert!(TOTAL_AT + 8 <= URL_AT && URL_AT + URL_MAX <= VALIDATOR_AT);
        assert!(VALIDATOR_AT + VALIDATOR_MAX <= MESSAGE_AT && MESSAGE_AT + MESSAGE_MAX <= RING_AT);
    };

    /// Every constant by name, as the script names it.
    pub const ALL: [(&str, u32); 18] = [
        ("WRITTEN", WRITTEN),
        ("CONSUMED", CONSUMED),
        ("FAILED", FAILED),
        ("MESSAGE_LEN", MESSAGE_LEN),
        ("REQUESTED", REQUESTED),
        ("STARTED", STARTED),
        ("URL_LEN", URL_LEN),
        ("VALIDATOR_LEN", VALIDATOR_LEN),
        ("SPANS_AT", SPANS_AT),
        ("SLOTS", SLOTS),
        ("TOTAL_AT", TOTAL_AT),
        ("URL_AT", URL_AT),
        ("URL_MAX", URL_MAX),
        ("VALIDATOR_AT", VALIDATOR_AT),
        ("VALIDATOR_MAX", VALIDATOR_MAX),
        ("MESSAGE_AT", MESSAGE_AT),
        ("MESSAGE_MAX", MESSAGE_MAX),
        ("RING_AT", RING_AT),
    ];
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
            let reader = web_sys::FileReaderSync::new()
                .map_err(|e| format!("cannot read files here: {e:?}"))?;
            let name = file.name();
            Ok(FileSliceSource { blob: file.into(), name, reader })
        }
    }

    /// A file on a web server, read with synchronous `Range` requests (allowed in workers): each
    /// read is one request for exactly its bytes. The server must answer 206 with the right
    /// `Content-Range`; a change of its `ETag`/`Last-Modified` or of the file's size between
    /// reads is an error. Every request has a time limit ([`crate::HttpPolicy`]), and a transient
    /// failure is retried for the bytes still missing before a clear error.
    pub struct HttpRangeSource {
        url: String,
        len: u64,
        validator: Option<String>,
        policy: crate::HttpPolicy,
        /// The whole file, when the server ignored Range and sent it all (kept as a JS buffer,
        /// outside wasm memory).
        whole: Option<js_sys::Uint8Array>,
        /// The file's first [`OPENING_BYTES`] (all of it, if shorter), which the opening request
        /// brought: the magic and the start of the header are read from it, not asked for again.
        opening: Vec<u8>,
    }

    /// Bytes the opening request asks for: the first chunk a header is parsed from
    /// ([`parallax_source::FIRST_HEADER_CHUNK`]). Asking for one byte, then the magic, then
    /// that chunk took three round trips each time the page reads a model's header (its
    /// summary, then each run); now one.
    pub const OPENING_BYTES: u64 = parallax_source::FIRST_HEADER_CHUNK as u64;

    /// The largest file read whole from a server that ignores Range requests.
    pub const MAX_WHOLE_BYTES: u64 = 2 << 30;

    /// Why a request failed: whether trying again may help, and what to tell the user.
    struct Failure {
        transient: bool,
        message: String,
    }

    fn permanent(message: String) -> Failure {
        Failure { transient: false, message }
    }

    fn xhr_range(
        url: &str,
        first: u64,
        last: u64,
        timeout_ms: u32,
    ) -> Result<web_sys::XmlHttpRequest, Failure> {
        use wasm_bindgen::JsCast;
        let js = |e: wasm_bindgen::JsValue| permanent(format!("{e:?}"));
        let xhr = web_sys::XmlHttpRequest::new().map_err(js)?;
        xhr.open_with_async("GET", url, false).map_err(js)?;
        xhr.set_response_type(web_sys::XmlHttpRequestResponseType::Arraybuffer);
        // Synchronous requests may have a time limit inside a worker: a stalled server cannot
        // hang the run.
        xhr.set_timeout(timeout_ms);
        xhr.set_request_header("Range", &format!("bytes={first}-{last}")).map_err(js)?;
        // A failed synchronous request throws: TimeoutError, or NetworkError (connection refused or
        // dropped, a body shorter than its Content-Length, a CORS refusal).
        xhr.send().map_err(|e| {
            let name = e.dyn_ref::<web_sys::DomException>().map(|d| d.name()).unwrap_or_default();
            let message = if name == "TimeoutError" {
                format!(
                    "no complete answer within {:.0} s (the server stalled or is too slow; open the page with \
                     ?http_timeout=SECONDS to wait longer)",
                    f64::from(timeout_ms) / 1000.0
                )
            } else {
                "the connection failed or broke before all bytes arrived (or the server does not allow this page \
                 to read it: cross-origin requests need CORS headers, Access-Control-Allow-Origin and Range in \
                 Access-Control-Allow-Headers)"
                    .to_string()
            };
            Failure { transient: true, message }
        })?;
        Ok(xhr)
    }

    fn validator(xhr: &web_sys::XmlHttpRequest) -> Option<String> {
        xhr.get_response_header("ETag")
            .ok()
            .flatten()
            .or_else(|| xhr.get_response_header("Last-Modified").ok().flatten())
    }

    fn status_of(xhr: &web_sys::XmlHttpRequest, expected: u16) -> Result<u16, Failure> {
        let status = xhr.status().unwrap_or(0);
        crate::judge_status(status, expected, &xhr.status_text().unwrap_or_default())
            .map(|()| status)
            .map_err(|(transient, message)| Failure { transient, message })
    }

    /// The body of `xhr`, an answer for `want` bytes: a shorter or longer one is a transient
    /// failure (the body ended early).
    fn body_of(xhr: &web_sys::XmlHttpRequest, want: u64) -> Result<js_sys::Uint8Array, Failure> {
        let body = xhr.response().map_err(|e| permanent(format!("{e:?}")))?;
        let bytes = js_sys::Uint8Array::new(&body);
        if u64::from(bytes.length()) != want {
            return Err(Failure {
                transient: true,
                message: format!(
                    "the server sent {} of the {want} bytes asked for (the body ended early)",
                    bytes.length()
                ),
            });
        }
        Ok(bytes)
    }

    /// An answer's bytes must start at `offset`, the start asked for.
    fn check_start(start: u64, offset: u64) -> Result<(), Failure> {
        if start == offset {
            Ok(())
        } else {
            Err(permanent(format!(
                "the server sent bytes from {start}, not the {offset} asked for"
            )))
        }
    }

    /// Run `attempt` until it succeeds, fails for good, or has failed transiently
    /// `1 + policy.retries` times; the error names the reason and the tries (the caller names
    /// the URL).
    fn with_retries<T>(
        url: &str,
        policy: &crate::HttpPolicy,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, String> {
        let tries = 1 + policy.retries;
        let mut n = 0;
        loop {
            n += 1;
            match attempt() {
                Ok(v) => return Ok(v),
                Err(f) if f.transient && n < tries => {
                    web_sys::console::warn_1(
                        &format!("{url}: {} — trying again ({n}/{tries})", f.message).into(),
                    );
                }
                Err(f) if f.transient => return Err(format!("{} ({n} tries)", f.message)),
                Err(f) => return Err(f.message),
            }
        }
    }

    impl HttpRangeSource {
        pub fn open(url: &str) -> Result<Self, String> {
            Self::open_with(url, crate::HttpPolicy::default())
        }

        /// Ask for the first byte: a 206 gives the length and validator; a 200 means the server
        /// ignores Range and sent the whole file, which is then kept and read from.
        pub fn open_with(url: &str, policy: crate::HttpPolicy) -> Result<Self, String> {
            with_retries(url, &policy, || Self::try_open(url, policy))
                .map_err(|e| format!("{url}: {e}"))
        }

        fn try_open(url: &str, policy: crate::HttpPolicy) -> Result<Self, Failure> {
            let xhr = xhr_range(url, 0, OPENING_BYTES - 1, policy.timeout_ms(OPENING_BYTES))?;
            if xhr.status().unwrap_or(0) == 200 {
                // The server ignored Range and sent the whole body: keep it and read from it.
                let body = xhr.response().map_err(|e| permanent(format!("{e:?}")))?;
                let whole = js_sys::Uint8Array::new(&body);
                let len = whole.length() as u64;
                let declared = xhr
                    .get_response_header("Content-Length")
                    .ok()
                    .flatten()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(declared) = declared.filter(|&d| d != len) {
                    return Err(Failure {
                        transient: true,
                        message: format!("the server sent {len} of the {declared} bytes it announced (the body ended early)"),
                    });
                }
                if len > MAX_WHOLE_BYTES {
                    return Err(permanent(format!(
                        "the server ignores Range requests and the file ({len} bytes) is too large to hold whole; \
                         serve it with a server that supports Range (e.g. `npx http-server`), or drop the file here"
                    )));
                }
                return Ok(HttpRangeSource {
                    url: url.to_string(),
                    len,
                    validator: None,
                    policy,
                    whole: Some(whole),
                    opening: Vec::new(),
                });
            }
            status_of(&xhr, 206)?;
            let range = xhr.get_response_header("Content-Range").ok().flatten().ok_or_else(|| {
                permanent("the server sent no Content-Range header (or does not expose it to this page via CORS)".into())
            })?;
            let (start, len) = crate::parse_content_range(&range).ok_or_else(|| {
                permanent(format!("cannot read the server's Content-Range `{range}`"))
            })?;
            check_start(start, 0)?;
            let opening = body_of(&xhr, OPENING_BYTES.min(len))?;
            Ok(HttpRangeSource {
                url: url.to_string(),
                len,
                validator: validator(&xhr),
                policy,
                whole: None,
                opening: opening.to_vec(),
            })
        }

        /// Whether the server ignored Range requests, so the whole file was downloaded at once.
        pub fn read_whole(&self) -> bool {
            self.whole.is_some()
        }

        /// One request for `buf`'s bytes at `offset`. A change of the file is reported as such
        /// (never retried: the bytes already read belong to another version).
        fn try_read(
            &self,
            offset: u64,
            buf: &mut [u8],
        ) -> Result<(), Result<Failure, SourceError>> {
            let want = buf.len() as u64;
            let xhr = xhr_range(&self.url, offset, offset + want - 1, self.policy.timeout_ms(want))
                .map_err(Ok)?;
            status_of(&xhr, 206).map_err(Ok)?;
            if let (Some(was), Some(now)) = (&self.validator, validator(&xhr)) {
                if *was != now {
                    return Err(Err(SourceError::Changed {
                        message: format!(
                            "its version tag on the server went from {was} to {now}; open it again"
                        ),
                    }));
                }
            }
            let range = xhr
                .get_response_header("Content-Range")
                .ok()
                .flatten()
                .and_then(|h| crate::parse_content_range(&h));
            if let Some((start, total)) = range {
                if total != self.len {
                    return Err(Err(SourceError::Changed {
                        message: format!(
                            "it is now {total} bytes long on the server, not {}; open it again",
                            self.len
                        ),
                    }));
                }
                check_start(start, offset).map_err(Ok)?;
            }
            body_of(&xhr, want).map_err(Ok)?.copy_to(buf);
            Ok(())
        }
    }

    impl HttpRangeSource {
        /// The URL, and the version tag its first answer carried (`ETag`, else `Last-Modified`).
        pub fn url_and_validator(&self) -> (&str, Option<&str>) {
            (&self.url, self.validator.as_deref())
        }

        /// The patience this source has with its server.
        pub fn policy(&self) -> crate::HttpPolicy {
            self.policy
        }
    }

    /// A thrown value or an error event as text: the value when it is a string, else its
    /// `message`; `None` when it has neither (a worker script that did not load fires a plain
    /// `Event`).
    pub fn js_message(value: &wasm_bindgen::JsValue) -> Option<String> {
        value
            .as_string()
            .or_else(|| js_sys::Reflect::get(value, &"message".into()).ok()?.as_string())
            .filter(|m| !m.is_empty())
    }

    /// Whether this page (or worker) is cross-origin isolated, which shared memory needs; the
    /// reason when it is not.
    pub fn isolation() -> Result<(), String> {
        let global = js_sys::global();
        let isolated = js_sys::Reflect::get(&global, &"crossOriginIsolated".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        match isolated {
            true => Ok(()),
            false => Err("the page is not cross-origin isolated (its server sends no \
                          Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers, and \
                          its service worker could not add them), so it has no shared memory"
                .into()),
        }
    }

    /// A [`parallax_source::SpanStream`] fed by the fetch worker (`www/fetch-worker.js`): it
    /// reads the requested spans of a URL (or of a chosen file) while this worker computes,
    /// into a ring of shared memory this worker takes them from. Once started, the two speak
    /// only through that shared buffer (its layout is described in the script). Bytes taken
    /// are copied straight into wasm memory; the ring is the only JS-side buffer, and its size
    /// is fixed.
    pub struct FetchStream {
        fetcher: FetchWorker,
        ctrl: js_sys::Int32Array,
        /// Bytes taken so far (wrapping), mirrored in the ring's CONSUMED word.
        taken: std::cell::Cell<u32>,
        /// Spans requested so far, mirrored in the REQUESTED word.
        requested: std::cell::Cell<i32>,
        /// How long a take waits for its next byte before the stream counts as stalled.
        stall_ms: f64,
    }

    /// A fetch worker started for a run, with its shared buffer, not yet told its URL. Dropped,
    /// it is terminated (a worker outlives its last handle otherwise).
    pub struct FetchWorker {
        worker: web_sys::Worker,
        buffer: js_sys::SharedArrayBuffer,
        capacity: u32,
    }

    use crate::fetch_layout::*;

    impl FetchWorker {
        /// Start a fetch worker with a ring of `capacity` bytes (rounded down to a power of
        /// two, 1 MiB to 1 GiB) and wait until it holds the ring. A nested worker hears its
        /// maker's messages only while the maker returns to its event loop, which a run
        /// (synchronous from start to end) never does — so every fetch worker a run needs is
        /// started, and handed its buffer (and the `file` it reads, for a chosen file), before
        /// the run. `Err` where the page has no shared memory or the worker does not start.
        pub async fn spawn(
            capacity: u64,
            file: Option<&web_sys::File>,
        ) -> Result<FetchWorker, String> {
            use wasm_bindgen::JsCast;
            isolation()?;
            let capacity = 1u32 << (63 - capacity.clamp(1 << 20, 1 << 30).leading_zeros());
            let js = |e: wasm_bindgen::JsValue| format!("cannot start the fetch worker: {e:?}");
            // Held from its start, so that the worker is terminated on every way out.
            let fetcher = FetchWorker {
                worker: web_sys::Worker::new("./fetch-worker.js").map_err(js)?,
                buffer: js_sys::SharedArrayBuffer::new(RING_AT + capacity),
                capacity,
            };
            let worker = &fetcher.worker;
            let ready = js_sys::Promise::new(&mut |resolve, reject| {
                let started = wasm_bindgen::closure::Closure::once_into_js(move || {
                    let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
                });
                let failed = wasm_bindgen::closure::Closure::once_into_js(move || {
                    let _ = reject.call0(&wasm_bindgen::JsValue::NULL);
                });
                worker.set_onmessage(Some(started.unchecked_ref()));
                worker.set_onerror(Some(failed.unchecked_ref()));
            });
            let hello = js_sys::Object::new();
            js_sys::Reflect::set(&hello, &"buffer".into(), &fetcher.buffer).map_err(js)?;
            js_sys::Reflect::set(&hello, &"capacity".into(), &capacity.into()).map_err(js)?;
            if let Some(file) = file {
                js_sys::Reflect::set(&hello, &"file".into(), file).map_err(js)?;
            }
            worker.post_message(&hello).map_err(js)?;
            let answer = wasm_bindgen_futures::JsFuture::from(ready).await;
            worker.set_onmessage(None);
            worker.set_onerror(None);
            answer.map_err(|_| {
                "the fetch worker failed to start (is fetch-worker.js served?)".to_string()
            })?;
            Ok(fetcher)
        }
    }

    impl Drop for FetchWorker {
        fn drop(&mut self) {
            self.worker.terminate();
        }
    }

    impl FetchStream {
        /// `fetcher` streams `source`'s URL from now on.
        pub fn for_url(
            fetcher: FetchWorker,
            source: &HttpRangeSource,
        ) -> Result<FetchStream, String> {
            let (url, validator) = source.url_and_validator();
            let stall_ms = f64::from(source.policy().timeout_base_ms);
            Self::begin(fetcher, url, validator.unwrap_or(""), source.len(), stall_ms)
        }

        /// `fetcher`, spawned with a chosen file of `len` bytes, streams it from now on.
        pub fn for_file(fetcher: FetchWorker, len: u64) -> Result<FetchStream, String> {
            let stall_ms = f64::from(crate::HttpPolicy::default().timeout_base_ms);
            Self::begin(fetcher, "", "", len, stall_ms)
        }

        fn begin(
            fetcher: FetchWorker,
            url: &str,
            validator: &str,
            total: u64,
            stall_ms: f64,
        ) -> Result<FetchStream, String> {
            let buffer = &fetcher.buffer;
            let ctrl = js_sys::Int32Array::new_with_byte_offset_and_length(buffer, 0, 16);
            if url.len() > URL_MAX as usize || validator.len() > VALIDATOR_MAX as usize {
                return Err("its URL or version tag is too long to hand to the fetch worker".into());
            }
            let put = |at: u32, bytes: &[u8]| {
                js_sys::Uint8Array::new_with_byte_offset_and_length(buffer, at, bytes.len() as u32)
                    .copy_from(bytes)
            };
            put(URL_AT, url.as_bytes());
            put(VALIDATOR_AT, validator.as_bytes());
            js_sys::Float64Array::new_with_byte_offset_and_length(buffer, TOTAL_AT, 1)
                .set_index(0, total as f64);
            let _ = js_sys::Atomics::store(&ctrl, URL_LEN, url.len() as i32);
            let _ = js_sys::Atomics::store(&ctrl, VALIDATOR_LEN, validator.len() as i32);
            Ok(FetchStream {
                fetcher,
                ctrl,
                taken: std::cell::Cell::new(0),
                requested: std::cell::Cell::new(0),
                stall_ms,
            })
        }

        fn word(&self, index: u32) -> i32 {
            js_sys::Atomics::load(&self.ctrl, index).unwrap_or(0)
        }

        /// Why the fetch worker stopped, in its words.
        fn failure(&self) -> String {
            let len = (self.word(MESSAGE_LEN).max(0) as u32).min(MESSAGE_MAX);
            let mut bytes = vec![0u8; len as usize];
            js_sys::Uint8Array::new_with_byte_offset_and_length(
                &self.fetcher.buffer,
                MESSAGE_AT,
                len,
            )
            .copy_to(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }

        fn take_or_fail(&self, mut buf: Option<&mut [u8]>, len: u64) -> Result<(), String> {
            let mut done = 0u64;
            while done < len {
                let written = self.word(WRITTEN) as u32;
                let taken = self.taken.get();
                let ready = written.wrapping_sub(taken);
                if ready == 0 {
                    if self.word(FAILED) != 0 {
                        return Err(self.failure());
                    }
                    let waited = js_sys::Atomics::wait_with_timeout(
                        &self.ctrl,
                        WRITTEN,
                        written as i32,
                        self.stall_ms,
                    )
                    .map_err(|e| format!("cannot wait for the fetch worker: {e:?}"))?;
                    if waited == "timed-out" {
                        return Err(format!(
                            "no bytes arrived for {:.0} s",
                            self.stall_ms / 1000.0
                        ));
                    }
                    continue;
                }
                let at = taken & (self.fetcher.capacity - 1);
                let n = u64::from(ready).min(len - done).min(u64::from(self.fetcher.capacity - at))
                    as u32;
                if let Some(buf) = buf.as_deref_mut() {
                    let d = done as usize;
                    js_sys::Uint8Array::new_with_byte_offset_and_length(
                        &self.fetcher.buffer,
                        RING_AT + at,
                        n,
                    )
                    .copy_to(&mut buf[d..d + n as usize]);
                }
                let taken = taken.wrapping_add(n);
                self.taken.set(taken);
                let _ = js_sys::Atomics::store(&self.ctrl, CONSUMED, taken as i32);
                let _ = js_sys::Atomics::notify(&self.ctrl, CONSUMED);
                done += u64::from(n);
            }
            Ok(())
        }
    }

    impl parallax_source::SpanStream for FetchStream {
        /// The spans go into their slots first and are published with one store of REQUESTED,
        /// so the fetch worker, which plans each request over the spans it sees, never sees
        /// part of a batch.
        fn request(&self, batch: &[std::ops::Range<u64>]) -> Result<(), String> {
            let k = self.requested.get();
            let waiting = i64::from(k - self.word(STARTED)) + batch.len() as i64;
            if waiting > i64::from(SLOTS) {
                return Err(format!(
                    "the fetch worker holds {SLOTS} spans waiting at most, and {waiting} would wait"
                ));
            }
            let spans = js_sys::Float64Array::new_with_byte_offset_and_length(
                &self.fetcher.buffer,
                SPANS_AT,
                SLOTS * 2,
            );
            for (n, span) in batch.iter().enumerate() {
                let slot = ((k as u32).wrapping_add(n as u32) % SLOTS) * 2;
                spans.set_index(slot, span.start as f64);
                spans.set_index(slot + 1, span.end as f64);
            }
            let k = k + batch.len() as i32;
            self.requested.set(k);
            let _ = js_sys::Atomics::store(&self.ctrl, REQUESTED, k);
            let _ = js_sys::Atomics::notify(&self.ctrl, REQUESTED);
            Ok(())
        }

        fn take(&self, buf: Option<&mut [u8]>, len: u64) -> Result<(), String> {
            self.take_or_fail(buf, len).inspect_err(|why| {
                web_sys::console::warn_1(
                    &format!(
                        "the fetch worker stopped ({why}); reading by single requests from here"
                    )
                    .into(),
                )
            })
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
            let len = buf.len() as u64;
            if offset + len <= self.opening.len() as u64 {
                buf.copy_from_slice(&self.opening[offset as usize..(offset + len) as usize]);
                return Ok(());
            }
            let mut changed = None;
            let result =
                with_retries(&self.url, &self.policy, || match self.try_read(offset, buf) {
                    Ok(()) => Ok(()),
                    Err(Ok(failure)) => Err(failure),
                    Err(Err(e)) => {
                        let message = e.to_string();
                        changed = Some(e);
                        Err(permanent(message))
                    }
                });
            match (result, changed) {
                (Ok(()), _) => Ok(()),
                (Err(_), Some(e)) => Err(e),
                (Err(message), None) => Err(SourceError::Io { offset, len, message }),
            }
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
            let array =
                self.reader.read_as_array_buffer(&slice).map_err(|e| io(format!("{e:?}")))?;
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

    /// A report's message says only what is small; its parts follow it in one fixed order,
    /// the downloads as bytes.
    #[test]
    fn a_report_message_leaves_its_parts_beside_it() {
        let text = serde_json::to_string(&WorkerMessage::Report { wasm_memory_bytes: 7 }).unwrap();
        assert_eq!(text, r#"{"kind":"report","wasm_memory_bytes":7}"#);
        let indices: Vec<u32> = ReportPart::ALL.iter().map(|p| p.index()).collect();
        assert_eq!(indices, [1, 2, 3, 4, 5]);
        let bytes: Vec<ReportPart> = ReportPart::ALL.into_iter().filter(|p| p.is_bytes()).collect();
        assert_eq!(bytes, [ReportPart::Json, ReportPart::Standalone]);
    }

    /// The script's constants are the crate's, name for name.
    #[test]
    fn the_fetch_worker_lays_out_its_buffer_as_the_crate_does() {
        let script = include_str!("../../www/fetch-worker.js");
        // `const A = 1, B = 2,` declarations, possibly over several lines, up to `;`.
        let mut found = std::collections::BTreeMap::new();
        for decl in script.split("\nconst ").skip(1) {
            let body = decl.split(';').next().unwrap_or_default();
            for pair in body.split(',') {
                if let Some((name, value)) = pair.split_once('=') {
                    if let Ok(v) = value.trim().parse::<u32>() {
                        found.insert(name.trim().to_string(), v);
                    }
                }
            }
        }
        for (name, value) in fetch_layout::ALL {
            assert_eq!(found.get(name), Some(&value), "{name} in www/fetch-worker.js");
        }
        assert_eq!(
            found.len(),
            fetch_layout::ALL.len(),
            "the script has constants the crate lacks: {found:?}"
        );
    }

    #[test]
    fn a_layer_distance_is_the_residual_streams_relative_l2_over_the_runs_scope() {
        let lanes = ["f32".to_string(), "q8".to_string()];
        // Two positions of width 2: the path differs at the first position only.
        let rows = [vec![1.0f32, 2.0, 3.0, 4.0], vec![1.5f32, 2.0, 3.0, 4.0]];
        let at = |site, layer| parallax_engine::SiteRows {
            layer,
            site,
            width: 2,
            lanes: &lanes,
            rows: &rows,
        };
        assert_eq!(LayerDistance::of(&at("q", Some(3)), false), None, "only the residual stream");
        assert_eq!(LayerDistance::of(&at("resid_ffn", None), false), None, "only a layer's");
        let all = LayerDistance::of(&at("resid_ffn", Some(3)), false).unwrap();
        assert_eq!(
            (all.layer, all.reference.as_str(), all.lanes.clone()),
            (3, "f32", vec!["q8".to_string()])
        );
        let want = parallax_metrics::Compare::of(&rows[0], &rows[1]).unwrap().rel_l2;
        assert_eq!(all.rel_l2, vec![want]);
        assert!(want.unwrap() > 0.0);
        // Over the last position only, the two paths agree.
        let last = LayerDistance::of(&at("resid_ffn", Some(3)), true).unwrap();
        assert_eq!(last.rel_l2, vec![Some(0.0)]);
    }

    /// The folded settings name what ran: the model's file (not its whole URL), the prompt
    /// cut to a line, the paths with the reference last, scope, mode and any fault.
    #[test]
    fn the_run_summary_names_what_ran_in_one_line() {
        let mut run = parallax_session::RunRequest {
            prompt: Some("What is\n2+2?".into()),
            paths: vec!["f32".into(), "q8".into()],
            faults: vec!["q4k-scales@1:ffn_gate".into()],
            ..Default::default()
        };
        assert_eq!(
            run_summary("https://example.org/m/demo.gguf", &run),
            "demo.gguf · “What is 2+2?” · q8 vs f32 · all tokens · free mode · fault q4k-scales@1:ffn_gate"
        );
        run.tokens = Some((0..40).collect());
        run.faults.clear();
        run.scope = "last".into();
        run.mode = "replay".into();
        run.reference = Some("q8".into());
        run.against = vec!["/x/other.gguf".into()];
        let line = run_summary("demo.gguf", &run);
        assert!(line.starts_with("demo.gguf · 40 token ids 0, 1, 2, "), "{line}");
        assert!(line.contains("…"), "a long list is cut: {line}");
        assert!(
            line.ends_with(" · f32 vs q8 · against other.gguf · last token · replay mode"),
            "{line}"
        );
        run.paths = vec!["q8".into()];
        assert!(run_summary("m", &run).contains(" · q8 only · "));
    }

    #[test]
    fn content_range_header() {
        assert_eq!(parse_content_range("bytes 0-0/491400064"), Some((0, 491400064)));
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-0/5"), None);
    }

    #[test]
    fn request_time_limits_grow_with_size_and_saturate() {
        let p = HttpPolicy::default();
        assert_eq!(p.timeout_ms(0), 60_000);
        assert_eq!(p.timeout_ms(10 << 20), 70_000);
        assert_eq!(p.timeout_ms(u64::MAX), u32::MAX);
        assert_eq!(HttpPolicy::default().with_timeout_s(2.5).timeout_ms(0), 2_500);
        assert_eq!(HttpPolicy::default().with_timeout_s(f64::NAN), HttpPolicy::default());
        assert_eq!(HttpPolicy::default().with_timeout_s(-1.0), HttpPolicy::default());
    }

    #[test]
    fn statuses_are_judged_transient_or_final_with_a_sentence() {
        assert_eq!(judge_status(206, 206, "Partial Content"), Ok(()));
        let (retry, msg) = judge_status(404, 206, "Not Found").unwrap_err();
        assert!(!retry && msg.contains("no such file (404 Not Found)"), "{msg}");
        let (retry, msg) = judge_status(500, 206, "Internal Server Error").unwrap_err();
        assert!(retry && msg.contains("server failed (500 Internal Server Error)"), "{msg}");
        assert!(judge_status(503, 206, "").unwrap_err().0);
        assert!(judge_status(0, 206, "").unwrap_err().0);
        let (retry, msg) = judge_status(200, 206, "OK").unwrap_err();
        assert!(!retry && msg.contains("stopped honouring Range"), "{msg}");
        assert!(!judge_status(416, 206, "").unwrap_err().0);
    }

    #[test]
    fn hugging_face_page_links_become_file_links() {
        let page = "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/blob/main/qwen2.5-0.5b-instruct-q4_k_m.gguf";
        assert_eq!(
            hugging_face_file_link(page).as_deref(),
            Some("https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf")
        );
        // A revision, a folder, a query and a fragment; datasets; the short host.
        assert_eq!(
            hugging_face_file_link(" https://hf.co/o/r/blob/3f2a/sub/dir/m.gguf?download=true#L1 ")
                .as_deref(),
            Some("https://hf.co/o/r/resolve/3f2a/sub/dir/m.gguf?download=true")
        );
        assert_eq!(
            hugging_face_file_link("https://huggingface.co/datasets/o/r/blob/main/m.gguf")
                .as_deref(),
            Some("https://huggingface.co/datasets/o/r/resolve/main/m.gguf")
        );
        // Already a file link, another host, a repository page, a malformed path: as they are.
        for url in [
            "https://huggingface.co/o/r/resolve/main/m.gguf",
            "https://example.com/o/r/blob/main/m.gguf",
            "https://huggingface.co/o/r",
            "https://huggingface.co/o/r/blob/main",
            "https://huggingface.co//r/blob/main/m.gguf",
            "ftp://huggingface.co/o/r/blob/main/m.gguf",
            "/models/m.gguf",
        ] {
            assert_eq!(hugging_face_file_link(url), None, "{url}");
        }
    }

    #[test]
    fn the_relaxed_simd_probe_is_a_whole_module() {
        let m = &RELAXED_SIMD_PROBE;
        assert_eq!(m[..8], [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
        // Each section's declared size reaches exactly to the next one, the last to the end.
        let mut at = 8;
        let mut ids = Vec::new();
        while at < m.len() {
            ids.push(m[at]);
            at += 2 + m[at + 1] as usize;
        }
        assert_eq!((at, ids), (m.len(), vec![1, 3, 7, 10]));
        // The one body's size, and the operands whose dots' lane 0 make the answer.
        assert_eq!(m[29] as usize, m.len() - 30);
        let consts: Vec<&[u8]> = m
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == &[0xfd, 0x0c])
            .map(|(i, _)| &m[i + 2..i + 18])
            .collect();
        assert_eq!(consts.len(), 5);
        let (a, b, c) = (consts[0], consts[1], consts[4]);
        assert_eq!((consts[2], consts[3]), (a, b), "both dots take the same operands");
        assert!(b.iter().all(|&v| v <= 127), "the second operand fits 7 bits");
        let product = |k: usize| a[k] as i8 as i32 * b[k] as i32;
        let i16_lane0 = product(0) + product(1);
        let i32_lane0 =
            (0..4).map(product).sum::<i32>() + i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        assert_eq!(i16_lane0 + i32_lane0, RELAXED_SIMD_PROBE_ANSWER);
        // The instructions, in order.
        let ops: Vec<[u8; 3]> =
            [[0xfd, 0x92, 0x02], [0xfd, 0x18, 0x00], [0xfd, 0x93, 0x02], [0xfd, 0x1b, 0x00]]
                .to_vec();
        let found: Vec<[u8; 3]> = m
            .windows(3)
            .filter(|w| ops.iter().any(|o| o == w))
            .map(|w| [w[0], w[1], w[2]])
            .collect();
        assert_eq!(found, ops);
    }

    #[test]
    fn each_run_gets_the_worker_build_for_its_threads_and_this_browser() {
        assert_eq!(WorkerBuild::for_run(1, true), WorkerBuild::Single);
        assert_eq!(WorkerBuild::for_run(4, false), WorkerBuild::Threaded);
        assert_eq!(WorkerBuild::for_run(4, true), WorkerBuild::ThreadedRelaxed);
        assert_eq!(WorkerBuild::Single.script(1), "./worker_loader.js");
        assert_eq!(
            WorkerBuild::ThreadedRelaxed.script(3),
            "./worker_mt_relaxed_loader.js?threads=3"
        );
    }

    #[test]
    fn a_run_gets_the_threads_asked_for_where_memory_can_be_shared() {
        let ok = || Ok(());
        assert_eq!(run_threads(None, 4, ok(), ok()), (4, None), "one per core by default");
        assert_eq!(run_threads(None, 32, ok(), ok()), (MAX_DEFAULT_THREADS, None), "capped");
        assert_eq!(
            run_threads(Some(12), 4, ok(), ok()),
            (12, None),
            "as asked, even past the cores"
        );
        assert_eq!(run_threads(None, 0, ok(), ok()), (1, None), "a browser that tells no count");
        let not_isolated = || Err("the page is not cross-origin isolated".to_string());
        assert_eq!(
            run_threads(Some(4), 8, not_isolated(), ok()),
            (1, Some("the run uses one thread: the page is not cross-origin isolated".into()))
        );
        let no_build = || Err("this copy of the page has no threaded worker".to_string());
        assert_eq!(run_threads(None, 8, ok(), no_build()).0, 1);
        // One thread asked for (or one core) needs no reason, and no shared memory.
        assert_eq!(run_threads(Some(1), 8, not_isolated(), no_build()), (1, None));
        assert_eq!(run_threads(None, 1, not_isolated(), ok()), (1, None));
    }

    #[test]
    fn the_reference_field_lists_every_path_on_every_file() {
        use parallax_session::FormValues;
        let mut form = FormValues { paths: "f32,q8".into(), ..Default::default() };
        assert_eq!(lane_ids(&form), ["f32", "q8"]);
        form.against = "other.gguf".into();
        form.gpu = true;
        assert_eq!(lane_ids(&form), ["f32", "q8", "gpu", "f32@2", "q8@2", "gpu@2"]);
        form.paths = "q8, bogus, q8".into();
        form.gpu = false;
        assert_eq!(lane_ids(&form), ["q8", "q8@2"]);
    }

    #[test]
    fn link_settings_override_the_form_and_are_checked_like_it() {
        use parallax_session::{FormValues, RunRequest, RunSpec};
        let mut form = FormValues {
            prompt: "What is 2+2?".into(),
            paths: "f32,q8".into(),
            scope: "all".into(),
            mode: "free".into(),
            ..Default::default()
        };
        let link = [
            ("scope".to_string(), "bogus".to_string()),
            ("tokens".to_string(), "1,2".to_string()),
            ("unknown".to_string(), "x".to_string()),
            ("threads".to_string(), "4".to_string()),
        ];
        apply_link_settings(&mut form, &link);
        assert_eq!(form.threads, "4");
        assert_eq!(
            (form.scope.as_str(), form.tokens.as_str(), form.prompt.as_str()),
            ("bogus", "1,2", "")
        );
        let request = RunRequest::from_form(&form, DEFAULT_MEMORY_BUDGET).unwrap();
        let refusal = RunSpec::from_request(&request).unwrap_err().to_string();
        assert_eq!(refusal, "unknown scope `bogus`; the scopes are all and last");
        assert_eq!(sentence(&refusal), "Unknown scope `bogus`; the scopes are all and last.");
        assert_eq!(sentence("done."), "Done.");
        assert_eq!(sentence(""), "");
    }

    /// The address after a run names the model, the compared file and the settings that differ
    /// from the page's, and opening it applies exactly those settings again.
    #[test]
    fn the_address_of_a_run_carries_its_files_and_changed_settings() {
        use parallax_session::FormValues;
        let defaults = FormValues {
            prompt: "What is 2+2?".into(),
            paths: "f32,q8".into(),
            scope: "all".into(),
            mode: "free".into(),
            max_tokens: "512".into(),
            memory_budget: "1.5 GiB".into(),
            ..Default::default()
        };
        let model = "https://h.co/m/resolve/main/qwen q4_k_m.gguf?download=true";
        assert_eq!(
            run_address(model, None, &defaults, &defaults, &[]),
            "?model=https%3A%2F%2Fh.co%2Fm%2Fresolve%2Fmain%2Fqwen%20q4_k_m.gguf%3Fdownload%3Dtrue"
        );
        let form = FormValues {
            prompt: "2 & 2 = #4?".into(),
            scope: "last".into(),
            faults: "q4k-scales@1:ffn_gate".into(),
            threads: "2".into(),
            ..defaults.clone()
        };
        let address =
            run_address("https://a/m.gguf", Some("https://a/n.gguf"), &form, &defaults, &[]);
        assert_eq!(
            address,
            "?model=https%3A%2F%2Fa%2Fm.gguf&against=https%3A%2F%2Fa%2Fn.gguf\
             &prompt=2%20%26%202%20%3D%20%234%3F&scope=last&inject=q4k-scales%401%3Affn_gate&threads=2"
        );
        // Token ids stand for the prompt.
        let tokens = FormValues { tokens: "3838, 374".into(), ..form.clone() };
        let address = run_address("m.gguf", None, &tokens, &defaults, &[]);
        assert!(address.contains("&tokens=3838%2C%20374") && !address.contains("prompt="));

        // Read back as the page reads its query, the settings give the run's form again.
        let decode = |s: &str| {
            let mut bytes = Vec::new();
            let mut it = s.bytes();
            while let Some(b) = it.next() {
                if b == b'%' {
                    let hex: String = [it.next().unwrap(), it.next().unwrap()]
                        .iter()
                        .map(|&c| c as char)
                        .collect();
                    bytes.push(u8::from_str_radix(&hex, 16).unwrap());
                } else {
                    bytes.push(b);
                }
            }
            String::from_utf8(bytes).unwrap()
        };
        // What else the page was opened with stays; the run's own keys are the run's.
        let kept = [
            ("http_timeout".to_string(), "5".to_string()),
            ("scope".to_string(), "all".to_string()),
            ("utm_source".to_string(), "a b".to_string()),
        ];
        assert_eq!(
            run_address("m", None, &defaults, &defaults, &kept),
            "?model=m&http_timeout=5&utm_source=a%20b"
        );
        let link: Vec<(String, String)> = run_address("m", None, &form, &defaults, &kept)[1..]
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), decode(v)))
            .filter(|(k, _)| LINK_SETTINGS.contains(&k.as_str()))
            .collect();
        let mut reopened = defaults.clone();
        apply_link_settings(&mut reopened, &link);
        assert_eq!(reopened, form);
    }
}
