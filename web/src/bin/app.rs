//! The page: takes a file (picker or drop; every shard of a split GGUF at once, put in order by
//! `parallax_model::order_chosen_files`), hands it to the worker with the run settings, shows
//! progress with a cancel button, then the report from the shared renderer. Strings from model
//! files are inserted as text (`textContent`); the report fragment comes from the renderer, which
//! escapes every string it prints, and the page's CSP forbids inline script anyway.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    app::isolate_by_service_worker();
    if let Err(e) = app::start() {
        web_sys::console::error_1(&e);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("parallax-web's page runs in the browser; build and serve it with `./dev serve`.");
}

#[cfg(target_arch = "wasm32")]
mod app {
    use std::cell::RefCell;
    use std::rc::Rc;

    use parallax_model::ModelSummary;
    use parallax_session::{FormValues, RunRequest, RunSpec};
    use parallax_web::{Request, WorkerBuild, WorkerMessage};
    use wasm_bindgen::{prelude::*, JsCast};
    use web_sys::{Document, Element, HtmlInputElement, HtmlSelectElement, Worker};

    struct State {
        document: Document,
        worker: Worker,
        /// Which build `worker` is, and the threads it runs matmuls on (1 for the single one).
        worker_build: WorkerBuild,
        worker_threads: usize,
        /// Why this page runs on one thread, once a threaded worker failed to start.
        no_threads: Option<String>,
        /// Whether this browser computes relaxed SIMD's integer dot right (the reason where not,
        /// or once the relaxed worker failed to start): runs on threads then use that build.
        relaxed: Result<(), String>,
        ready: bool,
        /// Jobs sent before the worker finished loading, in order; posted on "ready". A queue,
        /// not one slot: a demo clicked at page load sends Inspect then Run, and both count.
        pending: Vec<js_sys::Array>,
        /// The model's Inspect job until its summary (or an error) comes back: a worker replaced
        /// meanwhile (another thread count) gets it again first.
        inspecting: Option<js_sys::Array>,
        /// What the worker reads: a local file or a URL.
        target: Option<Target>,
        /// For a model URL, the version of the file whose summary the page shows (its server's
        /// version tag and size, [`WorkerMessage::Inspected`]): a run sends it along, and
        /// names a change.
        model_version: Option<String>,
        /// The "Compare with…" slot: a second file every path runs on too.
        against: Option<Target>,
        running: bool,
        /// The model's "opened" sentence may still take the status line: nothing since the file
        /// was chosen has written there. A run started (or refused) before the worker's summary
        /// arrives keeps its own status.
        announce_open: bool,
        started_ms: f64,
        /// The run's progress bar: one fraction over its steps, the time left.
        progress: parallax_session::RunProgress,
        /// Where the residual stream stood after each finished layer of the running run: the
        /// layer and each compared lane's relative L2.
        live: Vec<(u32, Vec<Option<f64>>)>,
        /// Run settings from the page's address (`?scope=last&mode=replay…`), applied to the
        /// next run over the form's values, then dropped.
        link_settings: Vec<(String, String)>,
        /// Object URLs of the current downloads, revoked when replaced.
        urls: Vec<String>,
        /// A shared report (a permalink, a saved file) is being shown: the page is a viewer,
        /// nothing runs here.
        viewing: bool,
        /// The one line the settings fold into when the run in flight finishes
        /// (`parallax_web::run_summary` of its request).
        run_summary: String,
        /// The form as the page loaded it: a run's address names only the settings that differ.
        form_defaults: FormValues,
        /// The address that opens the running run again (`?model=…&…`), or why it has none;
        /// put in the address bar when its report arrives.
        run_address: Option<Result<String, &'static str>>,
        /// Seconds from Run to the running run's answer, once it is shown (its report follows).
        answered_s: Option<f64>,
        /// The shown report's cell panels, still to be inserted ([`insert_cell_details`]).
        pending_details: Option<JsValue>,
    }

    type Shared = Rc<RefCell<State>>;

    #[derive(Clone)]
    enum Target {
        /// A file the user chose or dropped, or the shards of a split GGUF in shard order
        /// (never empty).
        Files(Vec<web_sys::File>),
        Url(String),
    }

    impl Target {
        /// How the run request and the page name it: the file's name (the first shard's, with
        /// the count of the others, as the worker's `Shards` names them), or the URL.
        fn name(&self) -> String {
            match self {
                Target::Files(files) => parallax_source::shards_name(
                    &files.first().map(|f| f.name()).unwrap_or_default(),
                    files.len(),
                ),
                Target::Url(u) => u.clone(),
            }
        }

        /// As the worker takes it: one File, the shards as an array of Files, or the URL.
        fn to_js(&self) -> JsValue {
            match self {
                Target::Files(files) if files.len() == 1 => files[0].clone().into(),
                Target::Files(files) => files.iter().collect::<js_sys::Array>().into(),
                Target::Url(u) => JsValue::from_str(u),
            }
        }
    }

    /// The files of a picker or a drop as one model: one file, or every shard of a split GGUF
    /// in shard order; `Ok(None)` when there are none (a drop of text, a closed picker), the
    /// sentence to show when they are not one model.
    fn model_files(list: Option<web_sys::FileList>) -> Result<Option<Vec<web_sys::File>>, String> {
        let files: Vec<web_sys::File> = match list {
            Some(list) => (0..list.length()).filter_map(|i| list.get(i)).collect(),
            None => Vec::new(),
        };
        if files.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = files.iter().map(|f| f.name()).collect();
        let order = parallax_model::order_chosen_files(&names).map_err(|e| e.to_string())?;
        Ok(Some(order.into_iter().map(|i| files[i].clone()).collect()))
    }

    /// The files a drop event carries.
    fn dropped_files(e: &web_sys::Event) -> Option<web_sys::FileList> {
        let drag: Option<&web_sys::DragEvent> = e.dyn_ref();
        drag.and_then(|d| d.data_transfer()).and_then(|d| d.files())
    }

    /// Where the server sends no cross-origin isolation headers (a static host), register
    /// `isolation-sw.js`, which adds them to this origin's files, and reload once so the page
    /// comes through it. A session that reloaded once does not try again (a browser that will
    /// not isolate the page then keeps it as it is: URL reads are then one request per layer).
    pub fn isolate_by_service_worker() {
        const TRIED: &str = "parallax-isolation-reload";
        let Some(window) = web_sys::window() else { return };
        let isolated = parallax_web::browser::isolation().is_ok();
        let Ok(Some(storage)) = window.session_storage() else { return };
        if isolated
            || !window.is_secure_context()
            || storage.get_item(TRIED).ok().flatten().is_some()
        {
            return;
        }
        let has_workers = js_sys::Reflect::has(&window.navigator(), &"serviceWorker".into());
        if !has_workers.unwrap_or(false) {
            return;
        }
        let container = window.navigator().service_worker();
        wasm_bindgen_futures::spawn_local(async move {
            use wasm_bindgen_futures::JsFuture;
            let registered = JsFuture::from(container.register("./isolation-sw.js")).await;
            let ready = match (registered, container.ready()) {
                (Ok(_), Ok(ready)) => JsFuture::from(ready).await.is_ok(),
                _ => false,
            };
            if ready && storage.set_item(TRIED, "1").is_ok() {
                let _ = window.location().reload();
            }
        });
    }

    /// This machine's cores as the browser counts them (`navigator.hardwareConcurrency`).
    fn cores() -> usize {
        web_sys::window().map_or(1, |w| w.navigator().hardware_concurrency() as usize)
    }

    /// The threads a run asking for `asked` gets on this page, and why only one where so.
    fn threads_for(no_threads: &Option<String>, asked: Option<usize>) -> (usize, Option<String>) {
        let threaded_worker = match no_threads {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        };
        parallax_web::run_threads(
            asked,
            cores(),
            parallax_web::browser::isolation(),
            threaded_worker,
        )
    }

    /// Whether this browser runs relaxed SIMD's integer dot, and runs it right
    /// ([`parallax_web::RELAXED_SIMD_PROBE`]); the reason where not, or where the page's
    /// address asks for the simd128 kernels (`?kernels=simd128`).
    fn relaxed_simd() -> Result<(), String> {
        use js_sys::WebAssembly;
        let asked = all_query_pairs().into_iter().find(|(k, _)| k == "kernels");
        if asked.is_some_and(|(_, v)| v == "simd128") {
            return Err("the page's address asks for the simd128 kernels".into());
        }
        let bytes = js_sys::Uint8Array::from(&parallax_web::RELAXED_SIMD_PROBE[..]);
        let module = WebAssembly::Module::new(&bytes)
            .map_err(|_| "this browser has no relaxed SIMD".to_string())?;
        let answer = WebAssembly::Instance::new(&module, &js_sys::Object::new())
            .ok()
            .and_then(|i| js_sys::Reflect::get(&i.exports(), &"f".into()).ok())
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call0(&JsValue::NULL).ok())
            .and_then(|v| v.as_f64());
        match answer {
            Some(a) if a == f64::from(parallax_web::RELAXED_SIMD_PROBE_ANSWER) => Ok(()),
            other => Err(format!(
                "this browser's relaxed SIMD dot answers {other:?} where {} is right",
                parallax_web::RELAXED_SIMD_PROBE_ANSWER
            )),
        }
    }

    /// A worker of `build` whose matmuls run on `threads` threads: a classic worker for the
    /// single-threaded build; for the threaded ones an ES module worker over shared memory
    /// (`cargo xtask web-threads`), which starts its threads before it says it is ready.
    fn spawn_worker(build: WorkerBuild, threads: usize) -> Result<Worker, JsValue> {
        if build == WorkerBuild::Single {
            return Worker::new(&build.script(1));
        }
        let options = web_sys::WorkerOptions::new();
        options.set_type(web_sys::WorkerType::Module);
        Worker::new_with_options(&build.script(threads), &options)
    }

    /// End the worker and start a fresh one of `build` on `threads` threads (the single one
    /// where that fails). Jobs not yet posted wait for the new one.
    fn replace_worker(state: &Shared, build: WorkerBuild, threads: usize) {
        {
            let mut s = state.borrow_mut();
            s.worker.terminate();
            let (worker, build, threads) = match spawn_worker(build, threads) {
                Ok(w) => (Ok(w), build, threads),
                Err(e) => {
                    web_sys::console::error_1(&e);
                    (spawn_worker(WorkerBuild::Single, 1), WorkerBuild::Single, 1)
                }
            };
            match worker {
                Ok(w) => s.worker = w,
                Err(e) => web_sys::console::error_1(&e),
            }
            // An Inspect the old worker had not answered goes to the new one first.
            if let Some(job) = s.inspecting.clone() {
                if !s.pending.iter().any(|p| js_sys::Object::is(p, &job)) {
                    s.pending.insert(0, job);
                }
            }
            s.worker_build = build;
            s.worker_threads = threads;
            s.ready = false;
        }
        attach_worker(state);
    }

    /// The threads field's note: the default here, or why a run gets one thread.
    fn show_threads_note(state: &State) {
        let (default, why) = threads_for(&state.no_threads, None);
        let note = match why {
            Some(why) => parallax_web::sentence(&why),
            None => format!("default {default} (this machine has {} cores)", cores()),
        };
        if let Some(e) = state.document.get_element_by_id("threads-note") {
            e.set_text_content(Some(&note));
        }
    }

    pub fn start() -> Result<(), JsValue> {
        let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
        let link_settings = query_pairs();
        // The first worker has the threads the page's link asks for, so a link that opens a
        // model runs on the worker that read its summary (a bad value is refused by the run).
        let asked = link_settings
            .iter()
            .find(|(k, _)| k == "threads")
            .and_then(|(_, v)| parallax_session::parse_threads(v).ok().flatten());
        // A permalink only shows a report: no pool of threads for that (a run later starts one).
        let permalink = web_sys::window().and_then(|w| w.location().hash().ok()).and_then(|hash| {
            let key = format!("#{}=", parallax_report::permalink::FRAGMENT_KEY);
            hash.strip_prefix(&key).map(str::to_string)
        });
        let (threads, _) = match permalink {
            Some(_) => (1, None),
            None => threads_for(&None, asked),
        };
        let relaxed = relaxed_simd();
        if let Err(why) = &relaxed {
            web_sys::console::info_1(
                &format!("the simd128 kernels, not relaxed SIMD: {why}").into(),
            );
        }
        let build = WorkerBuild::for_run(threads, relaxed.is_ok());
        let state: Shared = Rc::new(RefCell::new(State {
            document: document.clone(),
            worker: spawn_worker(build, threads)?,
            worker_build: build,
            worker_threads: threads,
            no_threads: None,
            relaxed,
            ready: false,
            pending: Vec::new(),
            inspecting: None,
            model_version: None,
            target: None,
            against: None,
            running: false,
            announce_open: false,
            started_ms: 0.0,
            progress: Default::default(),
            live: Vec::new(),
            urls: Vec::new(),
            link_settings,
            viewing: false,
            run_summary: String::new(),
            form_defaults: FormValues::default(),
            run_address: None,
            answered_s: None,
            pending_details: None,
        }));
        // Before any value is set from the address or by the user.
        let defaults = form_values(&state.borrow());
        state.borrow_mut().form_defaults = defaults;
        attach_worker(&state);
        show_threads_note(&state.borrow());

        attach_file_slot(&state, "file", "drop", choose_files)?;
        {
            let state = state.clone();
            on(&by_id(&document, "run")?, "click", move |_| start_run(&state))?;
        }
        {
            let state = state.clone();
            on(&by_id(&document, "run-again")?, "click", move |_| start_run(&state))?;
        }
        {
            let document2 = document.clone();
            on(&by_id(&document, "edit-settings")?, "click", move |_| {
                set_folded(&document2, false);
                if let Some(source) = document2.get_element_by_id("source") {
                    source.scroll_into_view_with_bool(true);
                }
            })?;
        }
        {
            let state = state.clone();
            let document2 = document.clone();
            on(&by_id(&document, "open-url")?, "click", move |_| {
                choose_url(&state, &value(&document2, "url"))
            })?;
        }
        attach_compare_slot(&state)?;
        {
            // A heat cell's detail panel opens in place: the links are in-page anchors, which
            // in the page would replace the address (and a permalink's `#r=…` with it).
            for id in ["report", "cell-details"] {
                let state2 = state.clone();
                on(&by_id(&document, id)?, "click", move |e| open_detail_panel(&state2, &e))?;
            }
        }
        {
            // The built-in evaluation text becomes the prompt (the CLI's --builtin-text).
            let document2 = document.clone();
            on(&by_id(&document, "builtin-text")?, "click", move |_| {
                set_value(&document2, "prompt", parallax_engine::BUILTIN_TEXT);
                set_value(&document2, "tokens", "");
            })?;
        }
        for (id, event) in [("paths", "change"), ("gpu", "change")] {
            let state = state.clone();
            on(&by_id(&document, id)?, event, move |_| show_lanes(&state))?;
        }
        // `#r=…`: a permalink; show its report without any model.
        if let Some(payload) = permalink {
            set_status(&document, "Opening the report from the link …", false);
            state.borrow_mut().viewing = true;
            post(&state, &Request::Show { permalink: Some(payload), json: None });
        }
        {
            let state = state.clone();
            let input: HtmlInputElement = by_id(&document, "report-file")?.dyn_into()?;
            let input2 = input.clone();
            on(&input, "change", move |_| {
                let Some(file) = input2.files().and_then(|f| f.get(0)) else { return };
                let state = state.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match file_text(&file).await {
                        Some(json) => {
                            state.borrow_mut().viewing = true;
                            post(&state, &Request::Show { permalink: None, json: Some(json) })
                        }
                        None => {
                            set_status(&state.borrow().document, "Could not read that file.", true)
                        }
                    }
                });
            })?;
        }
        // `?model=<url>&against=<url2>`: open that model right away, with the file to compare
        // it with (a shareable "look at this model" link).
        let params = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok());
        if let Some(against) = params.as_ref().and_then(|p| p.get("against")) {
            set_value(&document, "against-url", &against);
            choose_against_url(&state, &against);
        }
        if let Some(model) = params.as_ref().and_then(|p| p.get("model")) {
            set_value(&document, "url", &model);
            choose_url(&state, &model);
        }
        show_lanes(&state);
        for (id, fault) in [("demo", ""), ("demo-fault", DEMO_FAULT)] {
            let state = state.clone();
            on(&by_id(&document, id)?, "click", move |_| run_demo(&state, fault))?;
        }
        {
            let state = state.clone();
            on(&by_id(&document, "cancel")?, "click", move |_| cancel(&state))?;
        }
        {
            let document2 = document.clone();
            on(&by_id(&document, "copy-link")?, "click", move |_| copy_address(&document2))?;
        }
        Ok(())
    }

    /// The demo model ships with the page (www/demo, made by tools/demo-model).
    const DEMO_URL: &str = "./demo/parallax-demo-qwen2.gguf";
    /// Layer 1's gate projection is Q4_K in the demo: break its scale/min unpacking on q8.
    const DEMO_FAULT: &str = "q4k-scales@1:ffn_gate";

    /// Fetch the bundled demo (same origin, so it works offline) and run it with the default
    /// settings, optionally with one injected fault.
    fn run_demo(state: &Shared, fault: &'static str) {
        if state.borrow().running {
            return;
        }
        let document = state.borrow().document.clone();
        set_status(&document, "Loading the demo model …", false);
        let state = state.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let document = state.borrow().document.clone();
            let file = match fetch_file(DEMO_URL, "parallax-demo-qwen2.gguf").await {
                Ok(f) => f,
                Err(e) => {
                    return set_status(
                        &document,
                        &format!("Could not load the demo model: {e}"),
                        true,
                    )
                }
            };
            for (id, value) in
                [("tokens", ""), ("prompt", "What is 2+2?"), ("faults", fault), ("reference", "")]
            {
                set_value(&document, id, value);
            }
            // The demo is one file: a second one chosen before would not be the same network.
            set_against(&state, None);
            choose_file(&state, file);
            start_run(&state);
        });
    }

    /// A chosen file's text; `None` when the browser cannot read it.
    async fn file_text(file: &web_sys::File) -> Option<String> {
        wasm_bindgen_futures::JsFuture::from(file.text()).await.ok().and_then(|t| t.as_string())
    }

    async fn fetch_file(url: &str, name: &str) -> Result<web_sys::File, String> {
        let window = web_sys::window().ok_or("no window")?;
        let resp = wasm_bindgen_futures::JsFuture::from(window.fetch_with_str(url))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let resp: web_sys::Response = resp.dyn_into().map_err(|_| "not a response".to_string())?;
        if !resp.ok() {
            return Err(format!("the server answered {} for {url}", resp.status()));
        }
        let blob = wasm_bindgen_futures::JsFuture::from(resp.blob().map_err(|e| format!("{e:?}"))?)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let parts = js_sys::Array::of1(&blob);
        web_sys::File::new_with_blob_sequence(&parts, name).map_err(|e| format!("{e:?}"))
    }

    fn on(
        target: &Element,
        event: &str,
        f: impl FnMut(web_sys::Event) + 'static,
    ) -> Result<(), JsValue> {
        let cb = Closure::<dyn FnMut(web_sys::Event)>::new(f);
        target.add_event_listener_with_callback(event, cb.as_ref().unchecked_ref())?;
        cb.forget();
        Ok(())
    }

    /// A file slot: the picker `input_id` and the drop zone `zone_id` around it both hand the
    /// files to `choose`. The picker is emptied once read, so that choosing the same file again
    /// is a change too; the zone is outlined while files are dragged over it.
    fn attach_file_slot(
        state: &Shared,
        input_id: &str,
        zone_id: &str,
        choose: fn(&Shared, Option<web_sys::FileList>),
    ) -> Result<(), JsValue> {
        let document = state.borrow().document.clone();
        let input: HtmlInputElement = by_id(&document, input_id)?.dyn_into()?;
        {
            let state = state.clone();
            let input2 = input.clone();
            on(&input, "change", move |_| {
                choose(&state, input2.files());
                input2.set_value("");
            })?;
        }
        let zone = by_id(&document, zone_id)?;
        for (event, over) in [("dragover", true), ("dragenter", true), ("dragleave", false)] {
            let zone2 = zone.clone();
            on(&zone, event, move |e| {
                e.prevent_default();
                let _ = zone2.class_list().toggle_with_force("over", over);
            })?;
        }
        let state = state.clone();
        let zone2 = zone.clone();
        on(&zone, "drop", move |e| {
            e.prevent_default();
            let _ = zone2.class_list().remove_1("over");
            choose(&state, dropped_files(&e));
        })
    }

    fn by_id(document: &Document, id: &str) -> Result<Element, JsValue> {
        document.get_element_by_id(id).ok_or_else(|| JsValue::from_str(&format!("no #{id}")))
    }

    fn attach_worker(state: &Shared) {
        let handler_state = state.clone();
        let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                // JSON text, or (a report) an array of the JSON text and the report's parts
                // (`parallax_web::ReportPart`).
                let data = event.data();
                let (text, parts) = match data.dyn_ref::<js_sys::Array>() {
                    Some(array) => (array.get(0).as_string(), Some(array.clone())),
                    None => (data.as_string(), None),
                };
                let Some(text) = text else { return };
                let message = serde_json::from_str::<WorkerMessage>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|m| match (m, parts) {
                        (WorkerMessage::Report { wasm_memory_bytes }, Some(parts)) => {
                            ReportParts::of(&parts).map(|parts| {
                                on_report(&handler_state, parts, wasm_memory_bytes);
                                None
                            })
                        }
                        (WorkerMessage::Report { .. }, None) => {
                            Err("a report came without its parts".into())
                        }
                        (m, None) => Ok(Some(m)),
                        (_, Some(_)) => {
                            Err("a message that is not a report came with parts".into())
                        }
                    });
                match message {
                    Ok(Some(msg)) => on_worker_message(&handler_state, msg),
                    Ok(None) => {}
                    Err(e) => set_status(
                        &handler_state.borrow().document,
                        &format!("unexpected message from the worker: {e}"),
                        true,
                    ),
                }
            },
        );
        state.borrow().worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        onmessage.forget();
        // A threaded worker whose script does not load (a copy of the page built without it)
        // or that fails before it is ready falls back to the single-threaded one.
        let handler_state = state.clone();
        // (A script that does not load fires a plain `Event`; one that throws, an `ErrorEvent`.)
        let onerror = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let (threaded, ready) = {
                let s = handler_state.borrow();
                (s.worker_build != WorkerBuild::Single, s.ready)
            };
            if threaded && !ready {
                event.prevent_default();
                let what = parallax_web::browser::js_message(&event)
                    .unwrap_or_else(|| "its script did not load".into());
                threads_unavailable(&handler_state, &what);
            }
        });
        state.borrow().worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        onerror.forget();
    }

    /// Post `request` to the worker as [request JSON, model, HTTP policy JSON, compared file,
    /// model version] (the compared file only with a run that names it, the model's version only
    /// with a run of a URL whose summary came).
    fn post(state: &Shared, request: &Request) {
        let (target, against, version) = {
            let s = state.borrow();
            (s.target.clone(), s.against.clone(), s.model_version.clone())
        };
        let job = js_sys::Array::new();
        job.push(&JsValue::from_str(&serde_json::to_string(request).unwrap_or_default()));
        match (request.needs_model(), target) {
            (false, _) => job.push(&JsValue::NULL),
            (true, Some(target)) => job.push(&target.to_js()),
            (true, None) => return,
        };
        job.push(&JsValue::from_str(&serde_json::to_string(&http_policy()).unwrap_or_default()));
        if let Request::Run(run) = request {
            match against {
                Some(against) if !run.against.is_empty() => job.push(&against.to_js()),
                _ => job.push(&JsValue::NULL),
            };
            if let Some(version) = version {
                job.push(&JsValue::from_str(&version));
            }
        }
        let mut s = state.borrow_mut();
        if matches!(request, Request::Inspect) {
            s.inspecting = Some(job.clone());
        }
        if s.ready {
            let _ = s.worker.post_message(&job);
        } else {
            s.pending.push(job);
        }
    }

    /// How long the worker waits for a model's server: the default, or `?http_timeout=SECONDS`.
    fn http_policy() -> parallax_web::HttpPolicy {
        let seconds = all_query_pairs()
            .into_iter()
            .find(|(k, _)| k == "http_timeout")
            .and_then(|(_, v)| v.trim().parse::<f64>().ok());
        let policy = parallax_web::HttpPolicy::default();
        match seconds {
            Some(s) => policy.with_timeout_s(s),
            None => policy,
        }
    }

    fn choose_file(state: &Shared, file: web_sys::File) {
        let name = file.name();
        choose(state, Target::Files(vec![file]), &name);
    }

    /// Open the files picked or dropped as the model; files that are not one model (one shard
    /// of three, shards of two models…) leave no model chosen, and the sentence says why.
    fn choose_files(state: &Shared, list: Option<web_sys::FileList>) {
        match model_files(list) {
            Ok(Some(files)) => {
                let target = Target::Files(files);
                let name = target.name();
                choose(state, target, &name);
            }
            Ok(None) => {}
            Err(sentence) => {
                let mut s = state.borrow_mut();
                if s.running {
                    return;
                }
                s.target = None;
                s.model_version = None;
                s.announce_open = false;
                clear(&s.document, "model");
                clear(&s.document, "report");
                clear(&s.document, "cell-details");
                s.pending_details = None;
                set_hidden(&s.document, "downloads", true);
                set_hidden(&s.document, "warning", true);
                if let Some(b) = s.document.get_element_by_id("run") {
                    let _ = b.set_attribute("disabled", "");
                }
                set_status(&s.document, &sentence, true);
            }
        }
    }

    fn choose(state: &Shared, target: Target, name: &str) {
        {
            let mut s = state.borrow_mut();
            if s.running {
                return;
            }
            set_status(&s.document, &format!("Reading {name} …"), false);
            // A new model: its run settings are the next thing to choose.
            set_folded(&s.document, false);
            s.announce_open = true;
            clear(&s.document, "model");
            clear(&s.document, "report");
            clear(&s.document, "cell-details");
            s.pending_details = None;
            set_hidden(&s.document, "downloads", true);
            set_hidden(&s.document, "warning", true);
            s.target = Some(target);
            s.model_version = None;
        }
        post(state, &Request::Inspect);
    }

    /// A URL as typed, resolved against the page (so relative paths work), a Hugging Face page
    /// link turned into its file's link; the error is the sentence to show.
    fn resolve_url(url: &str, what: &str) -> Result<(String, bool), String> {
        let url = url.trim();
        if url.is_empty() {
            return Err(format!("Give the {what}'s URL."));
        }
        let (url, rewritten) = match parallax_web::hugging_face_file_link(url) {
            Some(file) => (file, true),
            None => (url.to_string(), false),
        };
        let base = web_sys::window().and_then(|w| w.location().href().ok()).unwrap_or_default();
        match web_sys::Url::new_with_base(&url, &base) {
            Ok(u) if u.protocol() == "http:" || u.protocol() == "https:" => {
                Ok((u.href(), rewritten))
            }
            _ => Err(format!("`{url}` is not an http(s) URL.")),
        }
    }

    /// What the page says when it used a Hugging Face file link for the page link given.
    const HUGGING_FACE_NOTE: &str =
        " (the Hugging Face page link was turned into the link to its file: /blob/ became /resolve/)";

    /// Open a model by URL.
    fn choose_url(state: &Shared, url: &str) {
        match resolve_url(url, "model") {
            Ok((href, rewritten)) => {
                let name =
                    if rewritten { format!("{href}{HUGGING_FACE_NOTE}") } else { href.clone() };
                choose(state, Target::Url(href), &name)
            }
            Err(sentence) => set_status(&state.borrow().document, &sentence, true),
        }
    }

    /// The "Compare with…" slot: a file chosen or dropped there, a URL, and its Remove button.
    fn attach_compare_slot(state: &Shared) -> Result<(), JsValue> {
        let document = state.borrow().document.clone();
        attach_file_slot(state, "against-file", "compare", choose_against_files)?;
        {
            let state = state.clone();
            let document2 = document.clone();
            on(&by_id(&document, "open-against")?, "click", move |_| {
                choose_against_url(&state, &value(&document2, "against-url"))
            })?;
        }
        {
            let state = state.clone();
            on(&by_id(&document, "clear-against")?, "click", move |_| set_against(&state, None))?;
        }
        Ok(())
    }

    /// Put the files picked or dropped in the "Compare with…" slot: one file, or every shard of
    /// a split GGUF; files that are not one model empty the slot, and the sentence says why.
    fn choose_against_files(state: &Shared, list: Option<web_sys::FileList>) {
        match model_files(list) {
            Ok(Some(files)) => set_against(state, Some(Target::Files(files))),
            Ok(None) => {}
            Err(sentence) => {
                if state.borrow().running {
                    return;
                }
                set_against(state, None);
                set_status(&state.borrow().document, &sentence, true);
            }
        }
    }

    fn choose_against_url(state: &Shared, url: &str) {
        match resolve_url(url, "second file") {
            Ok((href, rewritten)) => {
                set_against(state, Some(Target::Url(href.clone())));
                if rewritten {
                    if let Some(e) = state.borrow().document.get_element_by_id("against-name") {
                        e.set_text_content(Some(&format!(
                            "Compared with {href}{HUGGING_FACE_NOTE}."
                        )));
                    }
                }
            }
            Err(sentence) => set_status(&state.borrow().document, &sentence, true),
        }
    }

    /// Put a file in the "Compare with…" slot (or empty it). The worker opens it, and checks it
    /// is the same network, when a run starts.
    fn set_against(state: &Shared, against: Option<Target>) {
        {
            let mut s = state.borrow_mut();
            if s.running {
                return;
            }
            let text = match &against {
                Some(t) => format!("Compared with {}.", t.name()),
                None => "No second file: the run reads one file.".to_string(),
            };
            if let Some(e) = s.document.get_element_by_id("against-name") {
                e.set_text_content(Some(&text));
                let _ = e.class_list().toggle_with_force("set", against.is_some());
            }
            set_hidden(&s.document, "clear-against", against.is_none());
            if against.is_none() {
                set_value(&s.document, "against-file", "");
            }
            s.against = against;
        }
        show_lanes(state);
    }

    /// List the ids the reference field may name for the paths and files chosen now.
    fn show_lanes(state: &Shared) {
        let s = state.borrow();
        let lanes = parallax_web::lane_ids(&form_values(&s));
        if let Some(list) = s.document.get_element_by_id("lanes") {
            list.set_text_content(None);
            for lane in &lanes {
                if let Ok(option) = s.document.create_element("option") {
                    let _ = option.set_attribute("value", lane);
                    let _ = list.append_child(&option);
                }
            }
        }
        if let Some(hint) = s.document.get_element_by_id("lane-list") {
            hint.set_text_content(Some(&format!("one of {}", lanes.join(", "))));
        }
        if let (Some(first), Some(field)) = (
            lanes.first(),
            s.document
                .get_element_by_id("reference")
                .and_then(|e| e.dyn_into::<HtmlInputElement>().ok()),
        ) {
            field.set_placeholder(first);
        }
    }

    fn set_value(document: &Document, id: &str, value: &str) {
        let Some(e) = document.get_element_by_id(id) else { return };
        match e.dyn_into::<HtmlInputElement>() {
            Ok(i) => i.set_value(value),
            // The prompt is a text area: an input's value loses its line breaks.
            Err(e) => {
                if let Ok(t) = e.dyn_into::<web_sys::HtmlTextAreaElement>() {
                    t.set_value(value);
                }
            }
        }
    }

    fn value(document: &Document, id: &str) -> String {
        if let Some(i) =
            document.get_element_by_id(id).and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        {
            return i.value();
        }
        if let Some(t) = document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
        {
            return t.value();
        }
        document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlSelectElement>().ok())
            .map(|s| s.value())
            .unwrap_or_default()
    }

    /// The run settings in the page's query: the first value of each of the link settings, in
    /// their order.
    fn query_pairs() -> Vec<(String, String)> {
        let all = all_query_pairs();
        parallax_web::LINK_SETTINGS
            .iter()
            .filter_map(|key| all.iter().find(|(k, _)| k == key).cloned())
            .collect()
    }

    /// Every (key, value) of the page's query, in order.
    fn all_query_pairs() -> Vec<(String, String)> {
        let params = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok());
        let Some(entries) = params.and_then(|p| js_sys::try_iter(&p).ok().flatten()) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|pair| {
                let pair: js_sys::Array = pair.dyn_into().ok()?;
                Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
            })
            .collect()
    }

    fn checked(document: &Document, id: &str) -> bool {
        document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
            .is_some_and(|i| i.checked())
    }

    /// The form's fields as they stand, and the file in the "Compare with…" slot; the DOM code
    /// only moves values, `parallax_session` parses and checks them (the CLI's checks, with its
    /// sentences).
    fn form_values(state: &State) -> FormValues {
        let document = &state.document;
        FormValues {
            prompt: value(document, "prompt"),
            tokens: value(document, "tokens"),
            paths: value(document, "paths"),
            gpu: checked(document, "gpu"),
            scope: value(document, "scope"),
            mode: value(document, "mode"),
            faults: value(document, "faults"),
            hash: checked(document, "hash"),
            max_tokens: value(document, "max-tokens"),
            memory_budget: value(document, "memory-budget"),
            against: state.against.as_ref().map(Target::name).unwrap_or_default(),
            reference: value(document, "reference"),
            threads: value(document, "threads"),
        }
    }

    fn start_run(state: &Shared) {
        let document = state.borrow().document.clone();
        state.borrow_mut().announce_open = false;
        if state.borrow().target.is_none() {
            return set_status(&document, "Choose a model file first.", true);
        }
        let mut form = form_values(&state.borrow());
        let link = std::mem::take(&mut state.borrow_mut().link_settings);
        parallax_web::apply_link_settings(&mut form, &link);
        let checked = RunRequest::from_form(&form, parallax_web::DEFAULT_MEMORY_BUDGET)
            .and_then(|r| RunSpec::from_request(&r).map(|_| r));
        let mut run = match checked {
            Ok(r) => r,
            Err(e) => {
                // The sentence names a field: show the form it is in.
                set_folded(&document, false);
                return set_status(&document, &parallax_web::sentence(&e.to_string()), true);
            }
        };
        let (threads, why) = threads_for(&state.borrow().no_threads, run.threads);
        if let Some(why) = why {
            web_sys::console::info_1(&why.into());
        }
        run.threads = Some(threads);
        let build = WorkerBuild::for_run(threads, state.borrow().relaxed.is_ok());
        if (build, threads) != (state.borrow().worker_build, state.borrow().worker_threads) {
            replace_worker(state, build, threads);
        }
        let model = state.borrow().target.as_ref().map(Target::name).unwrap_or_default();
        state.borrow_mut().run_summary = parallax_web::run_summary(&model, &run);
        let address = address_of_run(&state.borrow(), &form);
        state.borrow_mut().run_address = Some(address);
        let contract_file = document
            .get_element_by_id("contract-file")
            .and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
            .and_then(|i| i.files())
            .and_then(|f| f.get(0));
        match contract_file {
            None => begin_run(state, Request::Run(Box::new(run))),
            Some(file) => {
                let state = state.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match file_text(&file).await {
                        Some(text) => {
                            run.contracts.push((file.name(), text));
                            begin_run(&state, Request::Run(Box::new(run)));
                        }
                        None => set_status(
                            &state.borrow().document,
                            &format!("Could not read the contract {}.", file.name()),
                            true,
                        ),
                    }
                });
            }
        }
    }

    fn begin_run(state: &Shared, request: Request) {
        let document = state.borrow().document.clone();
        {
            let mut s = state.borrow_mut();
            s.running = true;
            s.started_ms = now_ms();
            s.progress = Default::default();
            s.live.clear();
            s.answered_s = None;
            s.pending_details = None;
        }
        set_running(&document, true);
        // While it runs the form stays open: its Cancel button is the way to stop it.
        set_folded(&document, false);
        clear(&document, "answer");
        clear(&document, "report");
        clear(&document, "cell-details");
        clear(&document, "live");
        set_hidden(&document, "downloads", true);
        // What an earlier run warned of (no WebGPU, a server without Range) is not this run's.
        set_hidden(&document, "warning", true);
        set_status(&document, "Running …", false);
        post(state, &request);
    }

    /// A run cannot be interrupted from outside a busy worker: end the worker and start a fresh
    /// one (it loads in well under a second).
    fn cancel(state: &Shared) {
        let (build, threads) = {
            let mut s = state.borrow_mut();
            s.pending.clear();
            s.running = false;
            set_running(&s.document, false);
            set_status(&s.document, "Cancelled. Nothing was kept from the stopped run.", false);
            (s.worker_build, s.worker_threads)
        };
        replace_worker(state, build, threads);
    }

    /// The threaded worker did not start (`reason`): runs from now on use the single-threaded
    /// one, and the page says why. The jobs it was to run wait for the new worker.
    /// A relaxed-SIMD threaded worker that fails is replaced by the simd128 one first.
    fn threads_unavailable(state: &Shared, reason: &str) {
        let (build, threads) = {
            let s = state.borrow();
            (s.worker_build, s.worker_threads)
        };
        if build == WorkerBuild::ThreadedRelaxed {
            let reason = format!("its relaxed-SIMD build did not start ({reason})");
            web_sys::console::warn_1(&format!("{reason}; the simd128 kernels run").into());
            state.borrow_mut().relaxed = Err(reason);
            return replace_worker(state, WorkerBuild::Threaded, threads);
        }
        let reason = format!("this page's threaded worker did not start ({reason})");
        web_sys::console::warn_1(&format!("{reason}; runs use one thread").into());
        state.borrow_mut().no_threads = Some(reason);
        show_threads_note(&state.borrow());
        replace_worker(state, WorkerBuild::Single, 1);
    }

    /// A finished run's report parts as the worker posts them beside its message.
    struct ReportParts {
        json: js_sys::Uint8Array,
        html: JsValue,
        details: JsValue,
        standalone: js_sys::Uint8Array,
        permalink: String,
    }

    impl ReportParts {
        fn of(array: &js_sys::Array) -> Result<ReportParts, String> {
            use parallax_web::ReportPart;
            if array.length() != 1 + ReportPart::ALL.len() as u32 {
                return Err(format!("a report came with {} parts", array.length() - 1));
            }
            let bytes = |part: ReportPart| {
                array
                    .get(part.index())
                    .dyn_into::<js_sys::Uint8Array>()
                    .map_err(|_| format!("the report's {part:?} part is not bytes"))
            };
            let text = |part: ReportPart| {
                let value = array.get(part.index());
                match value.is_string() {
                    true => Ok(value),
                    false => Err(format!("the report's {part:?} part is not text")),
                }
            };
            Ok(ReportParts {
                json: bytes(ReportPart::Json)?,
                html: text(ReportPart::Html)?,
                details: text(ReportPart::Details)?,
                standalone: bytes(ReportPart::Standalone)?,
                permalink: text(ReportPart::Permalink)?.as_string().unwrap_or_default(),
            })
        }
    }

    /// Show a finished run's report: the renderings inserted as the strings that came (built
    /// by the shared renderer, which escapes every string it prints), the downloads made from
    /// the bytes that came, the permalink offered.
    fn on_report(state: &Shared, parts: ReportParts, wasm_memory_bytes: u64) {
        let document = state.borrow().document.clone();
        let answered_s = state.borrow_mut().answered_s.take();
        let secs = answered_s.unwrap_or_else(|| (now_ms() - state.borrow().started_ms) / 1000.0);
        state.borrow_mut().running = false;
        set_running(&document, false);
        set_hidden(&document, "progress", true);
        if state.borrow().viewing {
            show_as_viewer(&document);
        } else {
            set_status(
                &document,
                &format!(
                    "Done in {secs:.1} s · worker memory {}.",
                    parallax_model::human_bytes(wasm_memory_bytes)
                ),
                false,
            );
        }
        // The answer shown before gives way to the report that opens with the same markup, in
        // one task: nothing on the screen moves.
        clear(&document, "answer");
        if let Some(root) = document.get_element_by_id("report") {
            let _ = js_sys::Reflect::set(&root, &"innerHTML".into(), &parts.html);
        }
        // The cells' panels stay hidden until a cell is clicked, and are most of the markup
        // (1.2 MB of the 0.5B's 1.9 MB at 7 tokens, half the time the report took to appear):
        // parsed after the report's first frame. A click before then inserts them first.
        clear(&document, "cell-details");
        state.borrow_mut().pending_details = Some(parts.details);
        insert_cell_details_after_next_frame(state);
        offer_downloads(state, &parts.json, &parts.standalone);
        offer_permalink(&document, &parts.permalink);
        let address = state.borrow_mut().run_address.take();
        follow_run_in_address(&document, address);
        // Where the answer came first the page has scrolled to it already, and the reader may
        // have moved on.
        if !state.borrow().viewing && answered_s.is_none() {
            show_answer_first(state);
        }
    }

    /// Show a finished run's answer ([`WorkerMessage::Answer`]: the verdict, the first
    /// divergence and the distance chart) while the worker draws the whole report, which then
    /// takes its place. The run cannot be cancelled any more, and another cannot start until
    /// its report is in.
    fn on_answer(state: &Shared, html: &str) {
        let document = state.borrow().document.clone();
        let secs = (now_ms() - state.borrow().started_ms) / 1000.0;
        state.borrow_mut().answered_s = Some(secs);
        if let Some(cancel) = document.get_element_by_id("cancel") {
            let _ = cancel.set_attribute("disabled", "");
        }
        set_hidden(&document, "progress", true);
        set_status(&document, &format!("Done in {secs:.1} s · drawing the whole report …"), false);
        if let Some(root) = document.get_element_by_id("answer") {
            // Built by the shared renderer, which escapes every string it prints.
            root.set_inner_html(html);
        }
        show_answer_first(state);
    }

    fn on_worker_message(state: &Shared, msg: WorkerMessage) {
        let document = state.borrow().document.clone();
        match msg {
            WorkerMessage::ThreadsUnavailable { reason } => threads_unavailable(state, &reason),
            WorkerMessage::Ready { tokenizer_secret } => {
                if !tokenizer_secret {
                    web_sys::console::warn_1(
                        &"the worker could not draw a secret for the tokenizer's hashing \
                          (crypto.getRandomValues failed): a crafted vocabulary could slow \
                          tokenizing down"
                            .into(),
                    );
                }
                let mut s = state.borrow_mut();
                s.ready = true;
                for job in std::mem::take(&mut s.pending) {
                    let _ = s.worker.post_message(&job);
                }
            }
            WorkerMessage::Progress(p) => {
                set_hidden(&document, "progress", false);
                let now_s = now_ms() / 1000.0;
                state.borrow_mut().progress.update(p, now_s);
                let (fraction, text) = {
                    let s = state.borrow();
                    (s.progress.fraction(), s.progress.sentence(now_s))
                };
                if let Some(bar) = document
                    .get_element_by_id("bar")
                    .and_then(|e| e.dyn_into::<web_sys::HtmlProgressElement>().ok())
                {
                    bar.set_value(fraction);
                }
                if let Some(p) = document.get_element_by_id("progress-text") {
                    p.set_text_content(Some(&text));
                }
            }
            WorkerMessage::Layer(distance) => {
                let html = {
                    let mut s = state.borrow_mut();
                    // A run that drops a failing gpu path starts again from layer 0.
                    if distance.layer == 0 {
                        s.live.clear();
                    }
                    s.live.push((distance.layer, distance.rel_l2));
                    let n_layers = s.progress.n_layers().unwrap_or(distance.layer + 1);
                    parallax_report::html::render_live_distance(
                        &distance.reference,
                        &distance.lanes,
                        n_layers,
                        &s.live,
                    )
                };
                if let Some(live) = document.get_element_by_id("live") {
                    // Built by the shared renderer, which escapes every string it prints.
                    live.set_inner_html(&html);
                }
            }
            WorkerMessage::Inspected { summary, version } => {
                // A run that found its URL's file changed sends the new summary: the page shows
                // that one, and the run goes on.
                let running = state.borrow().running;
                state.borrow_mut().model_version = version;
                state.borrow_mut().inspecting = None;
                let announce = std::mem::take(&mut state.borrow_mut().announce_open);
                // What the hash will cost this model, beside its checkbox.
                let by_url = matches!(state.borrow().target, Some(Target::Url(_)));
                if let Some(note) = document.get_element_by_id("hash-note") {
                    note.set_text_content(Some(&parallax_session::hash_note(&summary, by_url)));
                }
                if let Err(e) = render_summary(&document, &summary, announce) {
                    web_sys::console::error_1(&e);
                }
                if !running {
                    if let Some(b) = document.get_element_by_id("run") {
                        let _ = b.remove_attribute("disabled");
                    }
                }
            }
            WorkerMessage::Answer { html } => on_answer(state, &html),
            // Handled with its parts (`on_report`); never reaches here.
            WorkerMessage::Report { .. } => {}
            WorkerMessage::Warning { message } => {
                if let Some(w) = document.get_element_by_id("warning") {
                    w.set_text_content(Some(&message));
                    let _ = w.remove_attribute("hidden");
                }
            }
            WorkerMessage::Error { message } => {
                state.borrow_mut().inspecting = None;
                state.borrow_mut().running = false;
                set_running(&document, false);
                set_hidden(&document, "progress", true);
                set_status(&document, &message, true);
            }
        }
    }

    /// After a run: the model intake and the settings fold into one line (with Edit and Run
    /// again), and the page scrolls to the report's summary card — the verdict, the first
    /// divergence and the first chart on the first screen.
    fn show_answer_first(state: &Shared) {
        let s = state.borrow();
        if let Some(line) = s.document.get_element_by_id("run-summary-text") {
            line.set_text_content(Some(&s.run_summary));
        }
        set_folded(&s.document, true);
        let card = s
            .document
            .query_selector("#answer .px-summary-card, #report .px-summary-card")
            .ok()
            .flatten()
            .or_else(|| s.document.get_element_by_id("report"));
        if let Some(card) = card {
            card.scroll_into_view_with_bool(true);
        }
    }

    /// The shown report's cell panels into `#cell-details`, once, in a task after the frame that
    /// shows the report (a hidden tab draws no frames: then once it is shown again), or at the
    /// first click in the report before that ([`open_detail_panel`]).
    fn insert_cell_details_after_next_frame(state: &Shared) {
        let Some(window) = web_sys::window() else { return insert_cell_details(state) };
        let state2 = state.clone();
        let after_frame = Closure::once_into_js(move || {
            let state3 = state2.clone();
            let insert = Closure::once_into_js(move || insert_cell_details(&state3));
            let scheduled = web_sys::window().map(|w| {
                w.set_timeout_with_callback_and_timeout_and_arguments_0(insert.unchecked_ref(), 0)
            });
            if !matches!(scheduled, Some(Ok(_))) {
                insert_cell_details(&state2);
            }
        });
        if window.request_animation_frame(after_frame.unchecked_ref()).is_err() {
            insert_cell_details(state);
        }
    }

    /// The cell panels still to be inserted, if any, into `#cell-details`.
    fn insert_cell_details(state: &Shared) {
        let (document, html) = {
            let mut s = state.borrow_mut();
            (s.document.clone(), s.pending_details.take())
        };
        if let (Some(html), Some(root)) = (html, document.get_element_by_id("cell-details")) {
            let _ = js_sys::Reflect::set(&root, &"innerHTML".into(), &html);
        }
    }

    /// A click on a link to a cell's detail panel (`#px-why-…`) opens that panel and closes the
    /// one open before; its "close" link (`#px-heat-…`) closes it and returns to the heatmaps.
    /// Other clicks pass.
    fn open_detail_panel(state: &Shared, e: &web_sys::Event) {
        insert_cell_details(state);
        let document = state.borrow().document.clone();
        let document = &document;
        let link = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|t| t.closest("a[href^='#px-why-'], a[href^='#px-heat-']").ok().flatten());
        let Some(href) = link.and_then(|a| a.get_attribute("href")) else { return };
        e.prevent_default();
        if let Ok(open) = document.query_selector_all(".px-why.px-open") {
            for i in 0..open.length() {
                if let Some(el) = open.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                    let _ = el.class_list().remove_1("px-open");
                }
            }
        }
        let Some(target) = document.get_element_by_id(&href[1..]) else {
            set_status(
                document,
                "The cells' detail is in the run's own report (its JSON or HTML download): a link carries the view only.",
                false,
            );
            return;
        };
        if href.starts_with("#px-why-") {
            let _ = target.class_list().add_1("px-open");
        }
        target.scroll_into_view_with_bool(true);
    }

    /// Fold the model intake and the run settings into the one-line summary, or unfold them.
    fn set_folded(document: &Document, folded: bool) {
        if let Some(body) = document.body() {
            let _ = body.class_list().toggle_with_force("folded", folded);
        }
    }

    /// The page as a viewer of a shared report: no run form, no model intake, no "Done" (nothing
    /// ran here), and a way back to the tool.
    fn show_as_viewer(document: &Document) {
        if let Some(body) = document.body() {
            let _ = body.class_list().add_1("viewer");
        }
        set_hidden(document, "viewer-note", false);
        if let (Some(a), Some(location)) =
            (document.get_element_by_id("open-tool"), web_sys::window().map(|w| w.location()))
        {
            let tool = format!(
                "{}{}",
                location.origin().unwrap_or_default(),
                location.pathname().unwrap_or_default()
            );
            let _ = a.set_attribute("href", &tool);
        }
        set_status(
            document,
            "A shared report: it was computed elsewhere, nothing ran in this tab.",
            false,
        );
    }

    /// The address that opens this run again: the model's and the compared file's URLs and the
    /// settings that differ from the page's; or, for a file that was not opened by URL, why no
    /// address can.
    fn address_of_run(s: &State, form: &FormValues) -> Result<String, &'static str> {
        const NO_URL: &str = "This run's model was not opened by URL, so no address can open it \
                              again; share the permalink or the report instead.";
        const NO_AGAINST_URL: &str = "The compared file was not opened by URL, so no address \
                                      can open this run again; share the permalink or the report instead.";
        let Some(Target::Url(model)) = &s.target else { return Err(NO_URL) };
        let against = match &s.against {
            None => None,
            Some(Target::Url(url)) => Some(url.as_str()),
            Some(Target::Files(_)) => return Err(NO_AGAINST_URL),
        };
        Ok(parallax_web::run_address(model, against, form, &s.form_defaults, &all_query_pairs()))
    }

    /// After a run: the address bar opens this run again (replacing the entry, so Back still
    /// leaves the page), with a button that copies it; or the sentence saying why it cannot.
    fn follow_run_in_address(document: &Document, address: Option<Result<String, &'static str>>) {
        let Some(address) = address else { return };
        let note = document.get_element_by_id("run-link-note");
        match address {
            Ok(query) => {
                let replaced = web_sys::window()
                    .and_then(|w| w.history().ok())
                    .map(|h| h.replace_state_with_url(&JsValue::NULL, "", Some(&query)).is_ok());
                set_hidden(document, "copy-link", replaced != Some(true));
                if let Some(note) = note {
                    note.set_text_content(None);
                }
            }
            Err(why) => {
                set_hidden(document, "copy-link", true);
                if let Some(note) = note {
                    note.set_text_content(Some(why));
                }
            }
        }
    }

    /// Copy the page's address (the run's, after [`follow_run_in_address`]) to the clipboard.
    fn copy_address(document: &Document) {
        let Some(window) = web_sys::window() else { return };
        let Ok(href) = window.location().href() else { return };
        let promise = window.navigator().clipboard().write_text(&href);
        let document = document.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let said = match wasm_bindgen_futures::JsFuture::from(promise).await {
                Ok(_) => "Copied.",
                Err(_) => "The browser refused the clipboard; copy the address bar instead.",
            };
            if let Some(note) = document.get_element_by_id("run-link-note") {
                note.set_text_content(Some(said));
            }
        });
    }

    fn offer_permalink(document: &Document, payload: &str) {
        let Some(window) = web_sys::window() else { return };
        let (origin, path) = (
            window.location().origin().unwrap_or_default(),
            window.location().pathname().unwrap_or_default(),
        );
        if let Some(a) = document.get_element_by_id("permalink") {
            let _ = a.set_attribute(
                "href",
                &format!("{origin}{path}#{}={payload}", parallax_report::permalink::FRAGMENT_KEY),
            );
            a.set_text_content(Some(&format!(
                "Permalink ({} KB, opens without the model)",
                payload.len().div_ceil(1024)
            )));
        }
    }

    fn offer_downloads(state: &Shared, json: &js_sys::Uint8Array, html: &js_sys::Uint8Array) {
        let mut s = state.borrow_mut();
        for url in s.urls.drain(..) {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
        for (id, bytes, mime) in
            [("dl-json", json, "application/json"), ("dl-html", html, "text/html")]
        {
            let parts = js_sys::Array::of1(bytes);
            let opts = web_sys::BlobPropertyBag::new();
            opts.set_type(mime);
            let Ok(blob) = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts)
            else {
                continue;
            };
            let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { continue };
            if let Some(a) = s.document.get_element_by_id(id) {
                let _ = a.set_attribute("href", &url);
            }
            s.urls.push(url);
        }
        set_hidden(&s.document, "downloads", false);
    }

    fn now_ms() -> f64 {
        web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
    }

    fn set_running(document: &Document, running: bool) {
        for (id, disabled) in [("run", running), ("run-again", running), ("cancel", !running)] {
            if let Some(b) = document.get_element_by_id(id) {
                let _ = if disabled {
                    b.set_attribute("disabled", "")
                } else {
                    b.remove_attribute("disabled")
                };
            }
        }
    }

    fn set_hidden(document: &Document, id: &str, hidden: bool) {
        if let Some(e) = document.get_element_by_id(id) {
            let _ =
                if hidden { e.set_attribute("hidden", "") } else { e.remove_attribute("hidden") };
        }
    }

    fn set_status(document: &Document, text: &str, error: bool) {
        if let Some(el) = document.get_element_by_id("status") {
            el.set_text_content(None);
            if let Ok(p) = document.create_element("p") {
                if error {
                    p.set_class_name("error");
                }
                p.set_text_content(Some(text));
                let _ = el.append_child(&p);
            }
        }
    }

    fn clear(document: &Document, id: &str) {
        if let Some(el) = document.get_element_by_id(id) {
            el.set_text_content(None);
        }
    }

    fn render_summary(
        document: &Document,
        s: &ModelSummary,
        announce: bool,
    ) -> Result<(), JsValue> {
        let root = by_id(document, "model")?;
        if announce {
            set_status(
                document,
                &format!(
                    "{} — {}, {} tensors, {}, of which a run reads about {}. Choose the run settings above and press Run parity.",
                    s.file_name,
                    s.format,
                    s.tensors.len(),
                    parallax_model::human_bytes(s.file_bytes),
                    // All but what no run reads: an untied embedding beyond the prompt's rows.
                    parallax_model::human_bytes(
                        s.file_bytes.saturating_sub(parallax_session::hash_unread_bytes(s))
                    )
                ),
                false,
            );
        }
        // Built by the shared renderer, which escapes every string it prints.
        root.set_inner_html(&parallax_report::html::render_summary(&summary_view(s)));
        Ok(())
    }

    /// The renderer's view of the model summary (the report crate knows no model types).
    fn summary_view(s: &ModelSummary) -> parallax_report::html::SummaryView {
        use parallax_report::html::{SummaryMeta, SummaryTensor, SummaryView};
        let mut facts: Vec<(String, String)> = vec![(
            "architecture".into(),
            s.architecture.clone().unwrap_or_else(|| "unknown".into()),
        )];
        if let Some(h) = &s.hyperparameters {
            facts.extend(h.facts());
        }
        SummaryView {
            facts,
            types: s
                .type_histogram
                .iter()
                .map(|t| (t.ty.clone(), t.tensors, parallax_model::human_bytes(t.bytes)))
                .collect(),
            metadata: s
                .metadata
                .iter()
                .map(|m| SummaryMeta {
                    key: m.key.clone(),
                    value_type: m.value_type.clone(),
                    value: m.value.clone(),
                })
                .collect(),
            tensors: s
                .tensors
                .iter()
                .map(|t| SummaryTensor {
                    name: t.name.clone(),
                    role: t.role.clone(),
                    ty: t.ty.clone(),
                    ne: t.ne.clone(),
                    offset: t.offset,
                    bytes: t.bytes,
                })
                .collect(),
        }
    }
}
