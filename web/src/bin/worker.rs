//! The Web Worker: receives a request and a `File` (or a split GGUF's shards, in order) or URL
//! from the page (and a second one to compare it with), reads the files in slices and answers with the model summary or a full
//! parity report. Heavy work lives here so the page
//! never blocks; cancelling a run terminates this worker.

#[cfg(target_arch = "wasm32")]
fn main() {
    use parallax_web::WorkerMessage;
    use wasm_bindgen::{prelude::*, JsCast};

    console_error_panic_hook::set_once();
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    // The tokenizer's maps hash a file's vocabulary: their secret must be random, and std has
    // no random source here (it would take two addresses, the same for every visitor).
    // Drawn into an array of JavaScript's own: `getRandomValues` refuses a view of shared
    // memory, which the threaded build's wasm memory is.
    let tokenizer_secret = scope.crypto().is_ok_and(|crypto| {
        let drawn = js_sys::Uint8Array::new_with_length(16);
        let mut secret = [[0u8; 8]; 2];
        crypto.get_random_values_with_js_u8_array(&drawn).is_ok() && {
            drawn.subarray(0, 8).copy_to(&mut secret[0]);
            drawn.subarray(8, 16).copy_to(&mut secret[1]);
            parallax_tokenizer::set_hash_seed(secret.map(u64::from_le_bytes))
        }
    });
    let post = job::poster();
    let post_for_handler = post.clone();
    let onmessage =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let post = &post_for_handler;
            // The page posts [request JSON, model, HTTP policy JSON, compared file, version]: the
            // model and the compared file (a run over two files only) each a File, an array of
            // the Files of a split GGUF's shards in shard order, or a URL; for a run by URL, the
            // version of the file the page showed ([`WorkerMessage::Inspected`]).
            let data: js_sys::Array = match event.data().dyn_into() {
                Ok(a) => a,
                Err(_) => {
                    return post(&WorkerMessage::Error {
                        message: "the worker expected [request, file or URL]".into(),
                    })
                }
            };
            let request = data.get(0).as_string().and_then(|t| serde_json::from_str(&t).ok());
            // A URL comes with the page's patience for its server.
            let policy = data
                .get(2)
                .as_string()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let result = match (request, job::Target::of(data.get(1))) {
                (Some(parallax_web::Request::Show { permalink, json }), _) => {
                    job::show(permalink, json)
                }
                (Some(request), Some(model)) => {
                    let job = job::Job {
                        request,
                        model,
                        against: job::Target::of(data.get(3)),
                        shown_version: data.get(4).as_string(),
                        policy,
                    };
                    let post = post.clone();
                    // A run hashing a file read by URL first opens its spill files (an
                    // asynchronous browser call), so the hash downloads nothing twice.
                    wasm_bindgen_futures::spawn_local(async move {
                        let against = job.against.as_ref();
                        let spills = job::Spills::open(&job.request, &job.model, against).await;
                        let fetchers =
                            job::Fetchers::spawn(&job.request, &job.model, against).await;
                        if let Err(message) = job::handle(job, spills, fetchers, &post) {
                            post(&WorkerMessage::Error { message });
                        }
                    });
                    Ok(())
                }
                _ => Err("the worker received a malformed request".into()),
            };
            if let Err(message) = result {
                post(&WorkerMessage::Error { message });
            }
        });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    // The threaded build starts its threads before it says it is ready: a run's matmuls need
    // the pool, and the threads (Web Workers) start only while this worker is idle.
    #[cfg(feature = "threads")]
    wasm_bindgen_futures::spawn_local(async move {
        match job::start_threads().await {
            Ok(()) => post(&WorkerMessage::Ready { tokenizer_secret }),
            Err(reason) => post(&WorkerMessage::ThreadsUnavailable { reason }),
        }
    });
    #[cfg(not(feature = "threads"))]
    post(&WorkerMessage::Ready { tokenizer_secret });
}

#[cfg(target_arch = "wasm32")]
mod job {

    use parallax_engine::PathKind;
    use parallax_model::Model;
    use parallax_session::{HashAlong, ProgressUpdate, RunSpec};
    use parallax_source::ByteSource;
    use parallax_web::{
        browser::{FetchStream, FetchWorker, FileSliceSource, HttpRangeSource},
        Request, WorkerMessage,
    };

    /// Starts the pool of threads the page asked for when it started this worker
    /// (`worker_mt_loader.js?threads=N`): Web Workers sharing this worker's memory, each running
    /// the same wasm module; rayon hands them the matmuls' row tiles.
    #[cfg(feature = "threads")]
    pub async fn start_threads() -> Result<(), String> {
        use wasm_bindgen::JsCast;
        let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let search = scope.location().search();
        let asked = web_sys::UrlSearchParams::new_with_str(&search)
            .ok()
            .and_then(|p| p.get("threads"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| format!("the worker was started without a thread count ({search:?})"))?;
        parallax_web::browser::isolation()?;
        wasm_bindgen_futures::JsFuture::from(wasm_bindgen_rayon::init_thread_pool(asked))
            .await
            .map(drop)
            .map_err(|e| {
                let why = parallax_web::browser::js_message(&e).unwrap_or_else(|| format!("{e:?}"));
                format!("its {asked} threads did not start ({why})")
            })
    }

    /// Posts a message to the page (JSON text).
    pub fn poster() -> impl Fn(&WorkerMessage) + Clone + 'static {
        use wasm_bindgen::JsValue;
        move |msg: &WorkerMessage| {
            let _ = scope().post_message(&JsValue::from_str(&message_text(msg)));
        }
    }

    fn scope() -> web_sys::DedicatedWorkerGlobalScope {
        use wasm_bindgen::JsCast;
        js_sys::global().unchecked_into()
    }

    fn message_text(msg: &WorkerMessage) -> String {
        serde_json::to_string(msg).unwrap_or_else(|e| {
            format!(r#"{{"kind":"error","message":"cannot encode a message: {e}"}}"#)
        })
    }

    /// Posts a report to the page: an array of its message's JSON text and its parts
    /// ([`parallax_web::ReportPart`]), the byte parts' buffers handed over rather than copied.
    fn post_report(report: &parallax_report::Report) {
        use parallax_web::ReportPart;
        use wasm_bindgen::JsValue;
        // The JSON (100 MB over a long prompt) beside the drawings and the link: each a function
        // of the report alone, so the same bytes on one thread or two.
        let ((drawn, permalink), json) = parallax_engine::join(
            || {
                let drawn = parallax_report::html::render_for_page(report);
                (drawn, parallax_report::permalink::encode(report))
            },
            || report.to_json(),
        );
        let message = WorkerMessage::Report { wasm_memory_bytes: wasm_memory_bytes() };
        let parts = js_sys::Array::of1(&JsValue::from_str(&message_text(&message)));
        let handed_over = js_sys::Array::new();
        for part in ReportPart::ALL {
            let text = match part {
                ReportPart::Json => &json,
                ReportPart::Html => &drawn.fragment,
                ReportPart::Details => &drawn.details,
                ReportPart::Standalone => &drawn.standalone,
                ReportPart::Permalink => &permalink,
            };
            if part.is_bytes() {
                let bytes = js_sys::Uint8Array::from(text.as_bytes());
                handed_over.push(&bytes.buffer());
                parts.push(&bytes);
            } else {
                parts.push(&JsValue::from_str(text));
            }
        }
        let _ = scope().post_message_with_transfer(&parts, &handed_over);
    }

    fn progress_message(p: &parallax_engine::Progress) -> WorkerMessage {
        WorkerMessage::Progress(ProgressUpdate::from(p))
    }

    /// After each layer, where its residual stream stands: the page draws it while the run
    /// streams.
    fn post_layer(
        rows: &parallax_engine::SiteRows,
        last_only: bool,
        post: &dyn Fn(&WorkerMessage),
    ) {
        if let Some(d) = parallax_web::LayerDistance::of(rows, last_only) {
            post(&WorkerMessage::Layer(d));
        }
    }

    /// Judge, warn if the gpu path was dropped, and post the report.
    fn finish(mut report: parallax_report::Report, spec: &RunSpec, post: &dyn Fn(&WorkerMessage)) {
        if let Some(why) = &report.execution.gpu_unavailable {
            post(&WorkerMessage::Warning {
                message: format!("{why}. The other paths ran as usual."),
            });
        }
        // The browser's clock: wasm32 has no `SystemTime`.
        spec.stamp(
            &mut report,
            (js_sys::Date::now() / 1000.0).floor() as i64,
            parallax_engine::worker_threads(),
        );
        spec.judge(&mut report);
        // The answer first: its few KB are drawn in milliseconds, the whole report's MBs (and
        // its JSON and permalink) in a tenth of a second or more.
        post(&WorkerMessage::Answer { html: parallax_report::html::render_answer(&report) });
        post_report(&report);
    }

    /// Render a report that arrives without its model (permalink or saved JSON).
    pub fn show(permalink: Option<String>, json: Option<String>) -> Result<(), String> {
        let report = match (permalink, json) {
            (Some(p), _) => parallax_report::permalink::decode(&p)
                .map_err(|e| format!("This permalink cannot be opened: {e}"))?,
            (None, Some(j)) => parallax_report::Report::from_json(&j)
                .map_err(|e| format!("This report cannot be opened: {e}"))?,
            (None, None) => return Err("nothing to show".into()),
        };
        post_report(&report);
        Ok(())
    }

    fn wasm_memory_bytes() -> u64 {
        use wasm_bindgen::JsCast;
        wasm_bindgen::memory()
            .dyn_into::<js_sys::WebAssembly::Memory>()
            .map(|m| m.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as u64)
            .unwrap_or(0)
    }

    /// A file the page hands over: one the user chose or dropped (or the shards of a split
    /// GGUF chosen together, in shard order), or a URL.
    pub enum Target {
        Files(Vec<web_sys::File>),
        Url(String),
    }

    impl Target {
        /// The File, array of Files or URL string in a posted message's slot; `None` for an
        /// empty slot, or an array that is empty or holds anything but Files.
        pub fn of(value: wasm_bindgen::JsValue) -> Option<Target> {
            use wasm_bindgen::JsCast;
            if let Some(url) = value.as_string() {
                return Some(Target::Url(url));
            }
            if js_sys::Array::is_array(&value) {
                let files = js_sys::Array::from(&value)
                    .iter()
                    .map(|f| f.dyn_into::<web_sys::File>().ok())
                    .collect::<Option<Vec<_>>>()?;
                return (!files.is_empty()).then_some(Target::Files(files));
            }
            value.dyn_into::<web_sys::File>().ok().map(|f| Target::Files(vec![f]))
        }
    }

    /// The source the engine reads a target through: the File in slices (the shards of a split
    /// GGUF end to end, as the page ordered them), or the URL — with every shard of a split
    /// GGUF — by Range requests (a warning when the server ignores them).
    ///
    /// Where the page is cross-origin isolated, the hinted spans of a URL or a chosen file
    /// (each layer, up to [`streamed_span`] bytes) stream in through a fetch worker while the
    /// layer before computes ([`parallax_web::browser::FetchStream`]); elsewhere each is one
    /// read when first needed. Also says whether every part of it streams, and, for a URL, the
    /// version of the file its server answered with ([`url_version`]).
    fn open(
        target: Target,
        policy: parallax_web::HttpPolicy,
        budget: u64,
        mut fetchers: Option<Vec<FetchWorker>>,
        post: &dyn Fn(&WorkerMessage),
    ) -> Result<Opened, String> {
        let mut parts = Vec::new();
        let mut streamed = 0;
        let mut versions = Vec::new();
        let mut recorded = None;
        match target {
            Target::Files(files) => {
                for file in files {
                    let source = FileSliceSource::new(file)?;
                    let stream = fetchers.as_mut().map(|f| {
                        let fetcher = f.pop().ok_or_else(Fetchers::why_none)?;
                        FetchStream::for_file(fetcher, source.len())
                    });
                    let (part, is_streamed) = behind_stream(source, stream, budget);
                    parts.push(part);
                    streamed += usize::from(is_streamed);
                }
            }
            // A shard of a split GGUF brings its siblings, named as it is, beside it.
            Target::Url(url) => {
                let urls = shard_urls(&url);
                for url in &urls {
                    let source = HttpRangeSource::open_with(url, policy)?;
                    let version = url_version(&source);
                    versions.push(version.clone());
                    if source.read_whole() {
                        post(&WorkerMessage::Warning {
                            message: format!(
                                "{url}: the server ignores Range requests, so the whole file ({}) was downloaded at once instead of a layer at a time.",
                                parallax_model::human_bytes(source.len())
                            ),
                        });
                        parts.push(Box::new(source) as Box<dyn ByteSource>);
                        continue;
                    }
                    let stream = fetchers.as_mut().map(|f| {
                        let fetcher = f.pop().ok_or_else(Fetchers::why_none)?;
                        FetchStream::for_url(fetcher, &source)
                    });
                    // The file's header, read from the start, kept from this opening to the
                    // next of the same version (one file, whose server names its versions).
                    let versioned = source.url_and_validator().1.is_some();
                    let source: Box<dyn ByteSource> = match (versioned, urls.len()) {
                        (true, 1) => {
                            let (source, recording) = kept_start::open(url, &version, source);
                            recorded = recording;
                            Box::new(source)
                        }
                        _ => Box::new(source),
                    };
                    let (part, is_streamed) = behind_stream(source, stream, budget);
                    parts.push(part);
                    streamed += usize::from(is_streamed);
                }
            }
        }
        let all_streamed = streamed == parts.len();
        let source = match parts.len() {
            1 => parts.remove(0),
            _ => Box::new(parallax_source::Shards::new(parts).ok_or("internal: no file")?),
        };
        let version = (!versions.is_empty()).then(|| versions.join("; "));
        Ok(Opened { source, streamed: all_streamed, version, recorded })
    }

    /// A model or compared file as [`open`] opened it.
    struct Opened {
        source: Box<dyn ByteSource>,
        /// Whether every part of it streams through a fetch worker.
        streamed: bool,
        /// For a URL, the version of the file its server answered with ([`url_version`]).
        version: Option<String>,
        /// The recording of its first bytes, to keep once its header is read
        /// ([`kept_start::keep`]); `None` where its start was known or is not kept (split
        /// files, a server that names no versions).
        recorded: Option<kept_start::Recorded>,
    }

    /// A model URL's first bytes — its header, which the page reads for the summary and then
    /// for each run (a compared file's: for the check that it is the model's network, then for
    /// the run), by URL a round trip per 1 MiB — kept in this worker from one opening to the
    /// next of the same version of the file: its server's version tag (`ETag` or
    /// `Last-Modified`, without which nothing is kept) and size, the URL the same.
    mod kept_start {
        use std::cell::RefCell;
        use std::sync::Arc;

        use parallax_source::{KeptStart, StartRecording};
        use parallax_web::browser::HttpRangeSource;

        /// At most this much of a file's start is kept (a model's header; the 0.5B's is 6 MB,
        /// most of it the tokenizer's vocabulary).
        const LIMIT: usize = 32 << 20;

        /// Files whose start is kept: a run's model and the file compared with it.
        const FILES: usize = 2;

        struct Kept {
            url: String,
            version: String,
            start: Arc<[u8]>,
        }

        thread_local! {
            /// The files kept, the last kept last.
            static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
        }

        /// A recording of a URL's first bytes, made where they were not known yet.
        pub struct Recorded {
            url: String,
            version: String,
            recording: StartRecording,
        }

        /// `source` (`url`, answering as `version`) with its start served from what was kept
        /// of that version, or recorded for the next opening.
        pub fn open(
            url: &str,
            version: &str,
            source: HttpRangeSource,
        ) -> (KeptStart<HttpRangeSource>, Option<Recorded>) {
            let known = KEPT.with(|k| {
                k.borrow()
                    .iter()
                    .find(|k| k.url == url && k.version == version)
                    .map(|k| k.start.clone())
            });
            match known {
                Some(start) => (KeptStart::known(source, start), None),
                None => {
                    let (source, recording) = KeptStart::recording(source, LIMIT);
                    let url = url.to_string();
                    (source, Some(Recorded { url, version: version.into(), recording }))
                }
            }
        }

        /// Keep what `recorded` holds (once the header has been read through it; the source
        /// it was recorded from serves it from then on too) in place of what was kept of the
        /// same URL, or of the file kept longest ago.
        pub fn keep(recorded: Recorded) {
            let start = recorded.recording.finish();
            KEPT.with(|k| {
                let mut kept = k.borrow_mut();
                kept.retain(|k| k.url != recorded.url);
                if kept.len() == FILES {
                    kept.remove(0);
                }
                kept.push(Kept { url: recorded.url, version: recorded.version, start });
            });
        }
    }

    /// What a URL's server said of the file when it was opened: its version tag (`ETag`, else
    /// `Last-Modified`) where it sent one, and its size — what tells one version from the next.
    fn url_version(source: &HttpRangeSource) -> String {
        let size =
            format!("{} ({} bytes)", parallax_model::human_bytes(source.len()), source.len());
        match source.url_and_validator().1 {
            Some(tag) => format!("version {tag}, {size}"),
            None => size,
        }
    }

    /// `source` behind its fetch worker's `stream` where it has one, else as it is (`None`: a
    /// request that streams nothing; an error: why not, told in the console); and whether it
    /// streams.
    fn behind_stream<S: ByteSource + 'static>(
        source: S,
        stream: Option<Result<FetchStream, String>>,
        budget: u64,
    ) -> (Box<dyn ByteSource>, bool) {
        let name = source.name();
        match stream {
            None => (Box::new(source), false),
            Some(Ok(stream)) => {
                web_sys::console::info_1(&format!("{name}: streamed by a fetch worker").into());
                let span = streamed_span(budget);
                (Box::new(parallax_source::StreamedReads::new(source, stream, span)), true)
            }
            Some(Err(why)) => {
                web_sys::console::info_1(
                    &format!(
                        "{name}: not streamed: {why}; the run reads it itself, a layer at a time"
                    )
                    .into(),
                );
                (Box::new(source), false)
            }
        }
    }

    /// `url`, or the URLs of every shard of the split GGUF whose shard it names (the last path
    /// segment, query kept).
    fn shard_urls(url: &str) -> Vec<String> {
        let (path, query) = url.split_once('?').map_or((url, ""), |(p, q)| (p, q));
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        match parallax_model::shard_file_names(name) {
            Some(names) => names
                .iter()
                .map(|n| {
                    let q = if query.is_empty() { String::new() } else { format!("?{query}") };
                    format!("{dir}/{n}{q}")
                })
                .collect(),
            None => vec![url.to_string()],
        }
    }

    /// The most a layer's read-ahead holds (see `ReadAhead`): a 0.5B layer (~15 MB) is one
    /// `FileReaderSync` call or HTTP request instead of a dozen; larger layers' tensors are big
    /// enough that reading them one by one costs little extra. Never more than a quarter of the
    /// run's memory budget (the budget's field says so).
    const READ_AHEAD_WINDOW: u64 = 32 << 20;

    /// The largest span a fetch worker streams for one hint: a whole layer of a 7B-class
    /// model (~140 MB at Q4_K_M) is one, fetched while the layer before computes. Never more
    /// than a quarter of the run's memory budget. Nothing holds a span whole: the layer's
    /// tensors are taken from the ring as they arrive, in file order.
    const STREAMED_SPAN: u64 = 256 << 20;

    fn streamed_span(budget: u64) -> u64 {
        STREAMED_SPAN.min(budget / 4)
    }

    /// The fetch worker's ring: a quarter of a span, enough to keep the server busy while a
    /// layer computes without holding a layer's size of bytes on the JavaScript side.
    fn ring_bytes(budget: u64) -> u64 {
        streamed_span(budget) / 4
    }

    /// The memory a request may use: its own budget, or the page's default.
    fn memory_budget(request: &Request) -> u64 {
        match request {
            Request::Run(r) => r.memory_budget_bytes.unwrap_or(parallax_web::DEFAULT_MEMORY_BUDGET),
            _ => parallax_web::DEFAULT_MEMORY_BUDGET,
        }
    }

    /// The read-ahead window of a source (see `READ_AHEAD_WINDOW`): none where a fetch worker
    /// streams it, which serves each layer's reads in file order without one.
    fn window_for(streamed: bool, budget: u64) -> u64 {
        if streamed {
            0
        } else {
            READ_AHEAD_WINDOW.min(budget / 4)
        }
    }

    /// A model source as the engine reads it: hashed along the run (when it asks for sha256)
    /// under a read-ahead window, so the window's one read per layer is what the hash sees.
    type PageSource =
        parallax_source::ReadAhead<HashAlong<Box<dyn ByteSource>, OwnReadProgress, OpfsSpill>>;

    /// The hash's spill store: a file in the origin's private file system (on disk, not in the
    /// tab's memory), where it keeps the bytes it would otherwise download twice (see
    /// `parallax_session::SpillStore`). Emptied when opened and when dropped; a file a
    /// cancelled run leaves is emptied by the next run.
    pub struct OpfsSpill {
        handle: web_sys::FileSystemSyncAccessHandle,
    }

    impl OpfsSpill {
        /// The spill file `name`, emptied; `None` where the browser gives none (no private file
        /// system, or the file is held by a run in another tab): the hash then reads again.
        async fn open(name: &str) -> Option<OpfsSpill> {
            use wasm_bindgen::JsCast;
            use wasm_bindgen_futures::JsFuture;
            let scope: web_sys::WorkerGlobalScope = js_sys::global().dyn_into().ok()?;
            let dir: web_sys::FileSystemDirectoryHandle =
                JsFuture::from(scope.navigator().storage().get_directory())
                    .await
                    .ok()?
                    .dyn_into()
                    .ok()?;
            let options = web_sys::FileSystemGetFileOptions::new();
            options.set_create(true);
            let file: web_sys::FileSystemFileHandle =
                JsFuture::from(dir.get_file_handle_with_options(name, &options))
                    .await
                    .ok()?
                    .dyn_into()
                    .ok()?;
            let handle: web_sys::FileSystemSyncAccessHandle =
                JsFuture::from(file.create_sync_access_handle()).await.ok()?.dyn_into().ok()?;
            handle.truncate_with_f64(0.0).ok()?;
            Some(OpfsSpill { handle })
        }

        /// The options of an access at `offset`.
        fn at(offset: u64) -> web_sys::FileSystemReadWriteOptions {
            let at = web_sys::FileSystemReadWriteOptions::new();
            at.set_at(offset as f64);
            at
        }

        /// An access of `len` bytes at `offset` that `did` (`"read"`, `"wrote"`) `done` bytes:
        /// all of them, or an error that says how many.
        fn whole(
            offset: u64,
            len: usize,
            did: &str,
            done: Result<f64, wasm_bindgen::JsValue>,
        ) -> Result<(), parallax_source::SourceError> {
            match done {
                Ok(n) if n as usize == len => Ok(()),
                Ok(n) => Err(Self::failed(offset, len, format!("{did} {n} bytes").into())),
                Err(e) => Err(Self::failed(offset, len, e)),
            }
        }

        fn failed(
            offset: u64,
            len: usize,
            e: wasm_bindgen::JsValue,
        ) -> parallax_source::SourceError {
            parallax_source::SourceError::Io {
                offset,
                len: len as u64,
                message: format!("the hash's spill file: {e:?}"),
            }
        }
    }

    impl Drop for OpfsSpill {
        fn drop(&mut self) {
            let _ = self.handle.truncate_with_f64(0.0);
            self.handle.close();
        }
    }

    impl parallax_session::SpillStore for OpfsSpill {
        fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), parallax_source::SourceError> {
            let done = self.handle.write_with_u8_array_and_options(data, &Self::at(offset));
            Self::whole(offset, data.len(), "wrote", done)
        }

        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), parallax_source::SourceError> {
            let done = self.handle.read_with_u8_array_and_options(buf, &Self::at(offset));
            Self::whole(offset, buf.len(), "read", done)
        }
    }

    /// The spill stores of a run's files, the model's first: opened for a run that hashes a
    /// file read by URL (a chosen file is read again from the disk, which costs little).
    pub struct Spills(Vec<Option<OpfsSpill>>);

    impl Spills {
        pub async fn open(request: &Request, model: &Target, against: Option<&Target>) -> Spills {
            let hashing = matches!(request, Request::Run(r) if r.sha256);
            let mut spills = Vec::new();
            for (k, target) in std::iter::once(Some(model)).chain([against]).enumerate() {
                let by_url = matches!(target, Some(Target::Url(_)));
                spills.push(match hashing && by_url {
                    true => OpfsSpill::open(&format!("parallax-hash-spill-{k}")).await,
                    false => None,
                });
            }
            Spills(spills)
        }

        /// The k-th file's store (0: the model).
        fn take(&mut self, k: usize) -> Option<OpfsSpill> {
            self.0.get_mut(k).and_then(Option::take)
        }
    }

    /// The fetch workers of a run's files, one per file read (per shard of a split GGUF, by
    /// URL or chosen), the model's first — started before the run, which cannot start them
    /// itself (see [`FetchWorker::spawn`]). Empty where the page has no shared memory.
    pub struct Fetchers(Vec<Vec<FetchWorker>>);

    impl Fetchers {
        pub async fn spawn(
            request: &Request,
            model: &Target,
            against: Option<&Target>,
        ) -> Fetchers {
            if !matches!(request, Request::Run(_)) {
                return Fetchers(Vec::new());
            }
            let ring = ring_bytes(memory_budget(request));
            let mut all = Vec::new();
            for target in std::iter::once(Some(model)).chain([against]) {
                // One per file read: each shard of a split GGUF, by URL or chosen.
                let files: Vec<Option<&web_sys::File>> = match target {
                    Some(Target::Url(url)) => vec![None; shard_urls(url).len()],
                    Some(Target::Files(files)) => files.iter().map(Some).collect(),
                    None => Vec::new(),
                };
                let mut workers = Vec::with_capacity(files.len());
                for file in files {
                    match FetchWorker::spawn(ring, file).await {
                        Ok(w) => workers.push(w),
                        Err(why) => {
                            web_sys::console::info_1(&why.into());
                            break;
                        }
                    }
                }
                all.push(workers);
            }
            Fetchers(all)
        }

        /// The k-th file's workers (0: the model), to be popped in shard order; `None` for a
        /// request that runs nothing (a model's summary), which streams nothing.
        fn take(&mut self, k: usize) -> Option<Vec<FetchWorker>> {
            let mut workers = self.0.get_mut(k).map(std::mem::take)?;
            workers.reverse();
            Some(workers)
        }

        /// Why a file has no fetch worker.
        fn why_none() -> String {
            parallax_web::browser::isolation()
                .err()
                .unwrap_or_else(|| "its fetch worker did not start".into())
        }
    }

    /// Told the bytes a file's hash reads for itself (the gaps the run skips).
    type OwnReadProgress = Box<dyn Fn(u64, u64)>;

    /// `source` as the engine reads it (see [`PageSource`]), keeping in `spill` what its hash
    /// would read twice; a URL's (`by_url`) hashed on the pool (see [`offload`]).
    fn page_source(
        source: Box<dyn ByteSource>,
        sha256: bool,
        window: u64,
        spill: Option<OpfsSpill>,
        by_url: bool,
    ) -> PageSource {
        let post = poster();
        let told: OwnReadProgress = Box::new(move |done, total| {
            post(&WorkerMessage::Progress(ProgressUpdate::hashing(done, total)))
        });
        let hashing = HashAlong::new_if(source, sha256, told)
            .with_spill_if(spill)
            .hashing_on_if(if by_url { offload() } else { None });
        parallax_source::ReadAhead::new(hashing, window)
    }

    /// Where the compression of a URL's hash runs: in jobs on the pool, which its threads take
    /// while the run's serial work leaves them idle, the run's thread only queuing the bytes
    /// (SHA-256 costs ~2 s a GB in wasm). `bench/url_vs_file.mjs HASH=1`, session 20, on 2
    /// vCPUs: the 0.5B by URL 5.8–6.3 s on the run's thread against 5.0–5.1 s on the pool, the
    /// 7B-shaped 35.0 against 32.4 s. Not a chosen file's: there the pool's jobs made the
    /// 7B-shaped run slower (38.6 s against 29.0) and the tab larger (1.41 against 0.90 GiB),
    /// and a worker of its own hashing the file whole (the CLI's way: read twice) took 35.1 s
    /// and 1.22 GiB, the browser reading the file twice through its blob system — on a machine
    /// with cores to spare either may win. `None` in the one-thread build.
    fn offload() -> Option<parallax_session::Spawner> {
        #[cfg(feature = "threads")]
        {
            Some(std::sync::Arc::new(rayon::spawn::<Box<dyn FnOnce() + Send>>))
        }
        #[cfg(not(feature = "threads"))]
        {
            None
        }
    }

    /// The sha256 of each of a run's files (`None` where the run asks for none), once the run
    /// has read them: what it skipped is read now.
    fn digests(sources: &[&PageSource]) -> Result<Vec<Option<String>>, String> {
        sources
            .iter()
            .map(|s| s.inner().finish().map_err(|e| format!("hashing {}: {e}", s.name())))
            .collect()
    }

    /// A request as the page posts it, with what it needs.
    pub struct Job {
        pub request: Request,
        pub model: Target,
        /// The file compared with the model (a run over two files only).
        pub against: Option<Target>,
        /// For a run by URL, the version of the file whose summary the page shows.
        pub shown_version: Option<String>,
        /// The page's patience for a model's server.
        pub policy: parallax_web::HttpPolicy,
    }

    pub fn handle(
        job: Job,
        mut spills: Spills,
        mut fetchers: Fetchers,
        post: &dyn Fn(&WorkerMessage),
    ) -> Result<(), String> {
        let Job { request, model, against, shown_version, policy } = job;
        let budget = memory_budget(&request);
        let sha256 = matches!(&request, Request::Run(r) if r.sha256);
        let by_url = matches!(model, Target::Url(_));
        let Opened { source, streamed, version, recorded } =
            open(model, policy, budget, fetchers.take(0), post)?;
        let window = window_for(streamed, budget);
        let source = page_source(source, sha256, window, spills.take(0), by_url);
        let name = source.name();
        let model = Model::open(&source).map_err(|e| format!("{name}: {e}"))?;
        if let Some(recorded) = recorded {
            kept_start::keep(recorded);
        }
        match request {
            Request::Inspect => {
                post(&WorkerMessage::Inspected { summary: Box::new(model.summary()), version });
                Ok(())
            }
            Request::Show { .. } => Err("internal: a report needs no model".into()),
            Request::Run(r) => {
                // Everything the request says is checked before any weight is read: the same
                // checks, and the same sentences, as the CLI's.
                let spec = RunSpec::from_request(&r).map_err(|e| e.to_string())?;
                // A model URL whose file changed on its server since the page showed its
                // summary: the run reads the file as it is now, and the page is told, with the
                // new summary.
                if let (Some(was), Some(now)) = (&shown_version, &version) {
                    if was != now {
                        post(&WorkerMessage::Warning {
                            message: format!(
                                "{name} changed on its server since the page opened it ({was}, now {now}): this run reads it as it is now, and the model shown above is the new one."
                            ),
                        });
                        post(&WorkerMessage::Inspected {
                            summary: Box::new(model.summary()),
                            version: version.clone(),
                        });
                    }
                }
                let other_sources = match (against, r.against.first()) {
                    (None, None) => Vec::new(),
                    (Some(t), Some(_)) => {
                        let by_url = matches!(t, Target::Url(_));
                        let other = open(t, policy, budget, fetchers.take(1), post)?;
                        let window = window_for(other.streamed, budget);
                        let source =
                            page_source(other.source, spec.sha256, window, spills.take(1), by_url);
                        vec![(source, other.recorded)]
                    }
                    (None, Some(named)) => {
                        return Err(format!(
                            "the run compares with {named}, but the page sent no second file; open it again under Compare with…"
                        ))
                    }
                    (Some(_), None) => {
                        return Err("internal: a second file came without its name in the run request".into())
                    }
                };
                // Files that are not one network are refused before a layer is read, naming
                // the first difference (the CLI's sentence).
                let other_sources: Vec<PageSource> = other_sources
                    .into_iter()
                    .map(|(other, recorded)| {
                        let other_model =
                            Model::open(&other).map_err(|e| format!("{}: {e}", other.name()))?;
                        if let Some(recorded) = recorded {
                            kept_start::keep(recorded);
                        }
                        parallax_model::check_compatible(&model, &other_model).map_err(|e| {
                            format!("{} cannot be compared with {name}: {e}", other.name())
                        })?;
                        drop(other_model);
                        Ok(other)
                    })
                    .collect::<Result<_, String>>()?;
                // The page's default budget also binds requests that name none.
                let opts = parallax_engine::RunOptions {
                    memory_budget_bytes: Some(budget),
                    ..spec.options()
                };
                let input = spec.input(&model)?;
                let last_only = opts.scope == parallax_report::Scope::Last;
                if opts.paths.contains(&PathKind::Gpu) {
                    // The browser answers GPU work only through its event loop: run as a task
                    // that awaits it. The sources are read synchronously as before.
                    drop(model);
                    let post = poster();
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = async {
                            let model = open_model(&source)?;
                            let others = other_sources
                                .iter()
                                .map(open_model)
                                .collect::<Result<Vec<_>, _>>()?;
                            parallax_engine::Run::new(&model, &input, &opts)
                                .against(&others)
                                .progress(|p| post(&progress_message(p)))
                                .tap(|rows| post_layer(rows, last_only, &post))
                                .run_async()
                                .await
                                .map_err(|e| e.to_string())
                        }
                        .await;
                        let all: Vec<&PageSource> =
                            std::iter::once(&source).chain(&other_sources).collect();
                        let result = result.and_then(|mut report| {
                            parallax_session::record_sha256(&mut report, &digests(&all)?);
                            Ok(report)
                        });
                        match result {
                            Ok(report) => finish(report, &spec, &post),
                            Err(message) => post(&WorkerMessage::Error { message }),
                        }
                    });
                    return Ok(());
                }
                let others = other_sources.iter().map(open_model).collect::<Result<Vec<_>, _>>()?;
                let mut report = parallax_engine::Run::new(&model, &input, &opts)
                    .against(&others)
                    .progress(|p| post(&progress_message(p)))
                    .tap(|rows| post_layer(rows, last_only, post))
                    .run()
                    .map_err(|e| e.to_string())?;
                let all: Vec<&PageSource> =
                    std::iter::once(&source).chain(&other_sources).collect();
                parallax_session::record_sha256(&mut report, &digests(&all)?);
                finish(report, &spec, post);
                Ok(())
            }
        }
    }

    /// The model in `source`, an error naming the source.
    fn open_model(source: &PageSource) -> Result<Model<&PageSource>, String> {
        Model::open(source).map_err(|e| format!("{}: {e}", source.name()))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("parallax-web's worker runs in the browser; build it with `./dev serve`.");
}
