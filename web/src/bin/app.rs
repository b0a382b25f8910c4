//! The page: takes a file (picker or drop), hands it to the worker with the run settings, shows
//! progress with a cancel button, then the report from the shared renderer. Strings from model
//! files are inserted as text (`textContent`); the report fragment comes from the renderer, which
//! escapes every string it prints, and the page's CSP forbids inline script anyway.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
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
    use parallax_web::{Request, WorkerMessage};
    use wasm_bindgen::{prelude::*, JsCast};
    use web_sys::{Document, Element, HtmlInputElement, HtmlSelectElement, Worker};

    struct State {
        document: Document,
        worker: Worker,
        ready: bool,
        /// A job sent before the worker finished loading; posted on "ready".
        pending: Option<js_sys::Array>,
        /// What the worker reads: a local file or a URL.
        target: Option<Target>,
        /// The "Compare with…" slot: a second file every path runs on too.
        against: Option<Target>,
        running: bool,
        /// The model's "opened" sentence may still take the status line: nothing since the file
        /// was chosen has written there. A run started (or refused) before the worker's summary
        /// arrives keeps its own status.
        announce_open: bool,
        started_ms: f64,
        /// Run settings from the page's address (`?scope=last&mode=replay…`), applied to the
        /// next run over the form's values, then dropped.
        link_settings: Vec<(String, String)>,
        /// Object URLs of the current downloads, revoked when replaced.
        urls: Vec<String>,
    }

    type Shared = Rc<RefCell<State>>;

    #[derive(Clone)]
    enum Target {
        File(web_sys::File),
        Url(String),
    }

    impl Target {
        /// How the run request and the page name it: the file's name, or the URL.
        fn name(&self) -> String {
            match self {
                Target::File(f) => f.name(),
                Target::Url(u) => u.clone(),
            }
        }

        fn to_js(&self) -> JsValue {
            match self {
                Target::File(f) => f.into(),
                Target::Url(u) => JsValue::from_str(u),
            }
        }
    }

    pub fn start() -> Result<(), JsValue> {
        let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
        let state: Shared = Rc::new(RefCell::new(State {
            document: document.clone(),
            worker: Worker::new("./worker_loader.js")?,
            ready: false,
            pending: None,
            target: None,
            against: None,
            running: false,
            announce_open: false,
            started_ms: 0.0,
            urls: Vec::new(),
            link_settings: query_pairs(),
        }));
        attach_worker(&state);

        let input: HtmlInputElement = by_id(&document, "file")?.dyn_into()?;
        {
            let state = state.clone();
            let input2 = input.clone();
            on(&input, "change", move |_| {
                if let Some(file) = input2.files().and_then(|f| f.get(0)) {
                    choose_file(&state, file);
                }
            })?;
        }
        let drop_zone = by_id(&document, "drop")?;
        for (event, over) in [("dragover", true), ("dragenter", true), ("dragleave", false)] {
            let zone = drop_zone.clone();
            on(&drop_zone, event, move |e| {
                e.prevent_default();
                let _ = zone.class_list().toggle_with_force("over", over);
            })?;
        }
        {
            let state = state.clone();
            let zone = drop_zone.clone();
            on(&drop_zone, "drop", move |e| {
                e.prevent_default();
                let _ = zone.class_list().remove_1("over");
                let drag: Option<&web_sys::DragEvent> = e.dyn_ref();
                if let Some(file) = drag
                    .and_then(|d| d.data_transfer())
                    .and_then(|d| d.files())
                    .and_then(|f| f.get(0))
                {
                    choose_file(&state, file);
                }
            })?;
        }
        {
            let state = state.clone();
            on(&by_id(&document, "run")?, "click", move |_| start_run(&state))?;
        }
        {
            let state = state.clone();
            let document2 = document.clone();
            on(&by_id(&document, "open-url")?, "click", move |_| {
                choose_url(&state, &value(&document2, "url"))
            })?;
        }
        attach_compare_slot(&state)?;
        for (id, event) in [("paths", "change"), ("gpu", "change")] {
            let state = state.clone();
            on(&by_id(&document, id)?, event, move |_| show_lanes(&state))?;
        }
        // `#r=…`: a permalink; show its report without any model.
        if let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()) {
            if let Some(payload) =
                hash.strip_prefix(&format!("#{}=", parallax_report::permalink::FRAGMENT_KEY))
            {
                set_status(&document, "Opening the report from the link …", false);
                post(&state, &Request::Show { permalink: Some(payload.to_string()), json: None });
            }
        }
        {
            let state = state.clone();
            let input: HtmlInputElement = by_id(&document, "report-file")?.dyn_into()?;
            let input2 = input.clone();
            on(&input, "change", move |_| {
                let Some(file) = input2.files().and_then(|f| f.get(0)) else { return };
                let state = state.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match wasm_bindgen_futures::JsFuture::from(file.text())
                        .await
                        .ok()
                        .and_then(|t| t.as_string())
                    {
                        Some(json) => {
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

    fn by_id(document: &Document, id: &str) -> Result<Element, JsValue> {
        document.get_element_by_id(id).ok_or_else(|| JsValue::from_str(&format!("no #{id}")))
    }

    fn attach_worker(state: &Shared) {
        let handler_state = state.clone();
        let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                let Some(text) = event.data().as_string() else { return };
                match serde_json::from_str::<WorkerMessage>(&text) {
                    Ok(msg) => on_worker_message(&handler_state, msg),
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
    }

    /// Post `request` to the worker as [request JSON, model, HTTP policy JSON, compared file]
    /// (the compared file only with a run that names it).
    fn post(state: &Shared, request: &Request) {
        let (target, against) = {
            let s = state.borrow();
            (s.target.clone(), s.against.clone())
        };
        let job = js_sys::Array::new();
        job.push(&JsValue::from_str(&serde_json::to_string(request).unwrap_or_default()));
        match (request.needs_model(), target) {
            (false, _) => job.push(&JsValue::NULL),
            (true, Some(target)) => job.push(&target.to_js()),
            (true, None) => return,
        };
        job.push(&JsValue::from_str(&serde_json::to_string(&http_policy()).unwrap_or_default()));
        if let (Request::Run(run), Some(against)) = (request, against) {
            if !run.against.is_empty() {
                job.push(&against.to_js());
            }
        }
        let mut s = state.borrow_mut();
        if s.ready {
            let _ = s.worker.post_message(&job);
        } else {
            s.pending = Some(job);
        }
    }

    /// How long the worker waits for a model's server: the default, or `?http_timeout=SECONDS`.
    fn http_policy() -> parallax_web::HttpPolicy {
        let seconds = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
            .and_then(|p| p.get("http_timeout"))
            .and_then(|v| v.trim().parse::<f64>().ok());
        let policy = parallax_web::HttpPolicy::default();
        match seconds {
            Some(s) => policy.with_timeout_s(s),
            None => policy,
        }
    }

    fn choose_file(state: &Shared, file: web_sys::File) {
        let name = file.name();
        choose(state, Target::File(file), &name);
    }

    fn choose(state: &Shared, target: Target, name: &str) {
        {
            let mut s = state.borrow_mut();
            if s.running {
                return;
            }
            set_status(&s.document, &format!("Reading {name} …"), false);
            s.announce_open = true;
            clear(&s.document, "model");
            clear(&s.document, "report");
            set_hidden(&s.document, "downloads", true);
            set_hidden(&s.document, "warning", true);
            s.target = Some(target);
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
        let input: HtmlInputElement = by_id(&document, "against-file")?.dyn_into()?;
        {
            let state = state.clone();
            let input2 = input.clone();
            on(&input, "change", move |_| {
                if let Some(file) = input2.files().and_then(|f| f.get(0)) {
                    set_against(&state, Some(Target::File(file)));
                }
            })?;
        }
        let zone = by_id(&document, "compare")?;
        for (event, over) in [("dragover", true), ("dragenter", true), ("dragleave", false)] {
            let zone2 = zone.clone();
            on(&zone, event, move |e| {
                e.prevent_default();
                let _ = zone2.class_list().toggle_with_force("over", over);
            })?;
        }
        {
            let state = state.clone();
            let zone2 = zone.clone();
            on(&zone, "drop", move |e| {
                e.prevent_default();
                let _ = zone2.class_list().remove_1("over");
                let drag: Option<&web_sys::DragEvent> = e.dyn_ref();
                if let Some(file) = drag
                    .and_then(|d| d.data_transfer())
                    .and_then(|d| d.files())
                    .and_then(|f| f.get(0))
                {
                    set_against(&state, Some(Target::File(file)));
                }
            })?;
        }
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
        if let Some(i) =
            document.get_element_by_id(id).and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        {
            i.set_value(value);
        }
    }

    fn value(document: &Document, id: &str) -> String {
        if let Some(i) =
            document.get_element_by_id(id).and_then(|e| e.dyn_into::<HtmlInputElement>().ok())
        {
            return i.value();
        }
        document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlSelectElement>().ok())
            .map(|s| s.value())
            .unwrap_or_default()
    }

    /// The page's query string as (key, value) pairs.
    fn query_pairs() -> Vec<(String, String)> {
        let Some(params) = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
        else {
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for key in parallax_web::LINK_SETTINGS {
            if let Some(v) = params.get(key) {
                pairs.push((key.to_string(), v));
            }
        }
        pairs
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
            Err(e) => return set_status(&document, &parallax_web::sentence(&e.to_string()), true),
        };
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
                    match wasm_bindgen_futures::JsFuture::from(file.text())
                        .await
                        .ok()
                        .and_then(|t| t.as_string())
                    {
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
        }
        set_running(&document, true);
        clear(&document, "report");
        set_hidden(&document, "downloads", true);
        set_status(&document, "Running …", false);
        post(state, &request);
    }

    /// A run cannot be interrupted from outside a busy worker: end the worker and start a fresh
    /// one (it loads in well under a second).
    fn cancel(state: &Shared) {
        {
            let mut s = state.borrow_mut();
            s.worker.terminate();
            match Worker::new("./worker_loader.js") {
                Ok(w) => s.worker = w,
                Err(e) => web_sys::console::error_1(&e),
            }
            s.ready = false;
            s.pending = None;
            s.running = false;
            set_running(&s.document, false);
            set_status(&s.document, "Cancelled. Nothing was kept from the stopped run.", false);
        }
        attach_worker(state);
    }

    fn on_worker_message(state: &Shared, msg: WorkerMessage) {
        let document = state.borrow().document.clone();
        match msg {
            WorkerMessage::Ready => {
                let mut s = state.borrow_mut();
                s.ready = true;
                if let Some(job) = s.pending.take() {
                    let _ = s.worker.post_message(&job);
                }
            }
            WorkerMessage::Progress(p) => {
                set_hidden(&document, "progress", false);
                let frac = p.fraction();
                if let Some(bar) = document
                    .get_element_by_id("bar")
                    .and_then(|e| e.dyn_into::<web_sys::HtmlProgressElement>().ok())
                {
                    bar.set_value(frac);
                }
                let elapsed = (now_ms() - state.borrow().started_ms) / 1000.0;
                let eta = if frac > 0.02 && p.step != parallax_session::Step::Hash {
                    format!(", about {:.0} s left", elapsed * (1.0 - frac) / frac)
                } else {
                    String::new()
                };
                let text = p.sentence(&eta);
                if let Some(p) = document.get_element_by_id("progress-text") {
                    p.set_text_content(Some(&text));
                }
            }
            WorkerMessage::Inspected { summary } => {
                let announce = std::mem::take(&mut state.borrow_mut().announce_open);
                if let Err(e) = render_summary(&document, &summary, announce) {
                    web_sys::console::error_1(&e);
                }
                if let Some(b) = document.get_element_by_id("run") {
                    let _ = b.remove_attribute("disabled");
                }
            }
            WorkerMessage::Report { json, html, standalone, permalink, wasm_memory_bytes } => {
                let secs = (now_ms() - state.borrow().started_ms) / 1000.0;
                state.borrow_mut().running = false;
                set_running(&document, false);
                set_hidden(&document, "progress", true);
                set_status(
                    &document,
                    &format!(
                        "Done in {secs:.1} s · worker memory {}.",
                        parallax_model::human_bytes(wasm_memory_bytes)
                    ),
                    false,
                );
                if let Some(root) = document.get_element_by_id("report") {
                    // Built by the shared renderer, which escapes every string it prints.
                    root.set_inner_html(&html);
                }
                offer_downloads(state, &json, &standalone);
                offer_permalink(&document, &permalink);
            }
            WorkerMessage::Warning { message } => {
                if let Some(w) = document.get_element_by_id("warning") {
                    w.set_text_content(Some(&message));
                    let _ = w.remove_attribute("hidden");
                }
            }
            WorkerMessage::Error { message } => {
                state.borrow_mut().running = false;
                set_running(&document, false);
                set_hidden(&document, "progress", true);
                set_status(&document, &message, true);
            }
        }
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

    fn offer_downloads(state: &Shared, json: &str, html: &str) {
        let mut s = state.borrow_mut();
        for url in s.urls.drain(..) {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
        for (id, text, mime) in
            [("dl-json", json, "application/json"), ("dl-html", html, "text/html")]
        {
            let parts = js_sys::Array::of1(&JsValue::from_str(text));
            let opts = web_sys::BlobPropertyBag::new();
            opts.set_type(mime);
            let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else {
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
        for (id, disabled) in [("run", running), ("cancel", !running)] {
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
                    "{} — {}, {} tensors, {}. Choose the run settings above and press Run parity.",
                    s.file_name,
                    s.format,
                    s.tensors.len(),
                    parallax_model::human_bytes(s.file_bytes)
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
