//! The page: picks or receives a dropped file, hands it to the worker, and shows what comes back.
//! Every string from a model file is inserted as text (`textContent`), never as HTML.

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
    use parallax_model::ModelSummary;
    use parallax_web::WorkerMessage;
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::{prelude::*, JsCast};
    use web_sys::{Document, Element, HtmlInputElement, Worker};

    struct State {
        worker: Worker,
        ready: bool,
        /// A file chosen before the worker finished loading; sent on "ready".
        pending: Option<web_sys::File>,
    }

    pub fn start() -> Result<(), JsValue> {
        let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
        // Classic worker built by trunk (`data-type="worker" data-loader-shim`).
        let worker = Worker::new("./worker_loader.js")?;
        let state = Rc::new(RefCell::new(State { worker: worker.clone(), ready: false, pending: None }));

        {
            let state = state.clone();
            let document = document.clone();
            let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                let Some(text) = event.data().as_string() else { return };
                match serde_json::from_str::<WorkerMessage>(&text) {
                    Ok(WorkerMessage::Ready) => {
                        let mut s = state.borrow_mut();
                        s.ready = true;
                        if let Some(file) = s.pending.take() {
                            let _ = s.worker.post_message(&file);
                        }
                    }
                    Ok(WorkerMessage::Progress { bytes_read, total }) => set_status(
                        &document,
                        &format!("Read {} of {} (only the header and index).", human_bytes(bytes_read), human_bytes(total)),
                        false,
                    ),
                    Ok(WorkerMessage::Inspected { summary }) => {
                        if let Err(e) = render_summary(&document, &summary) {
                            web_sys::console::error_1(&e);
                        }
                    }
                    Ok(WorkerMessage::Error { message }) => set_status(&document, &message, true),
                    Err(e) => set_status(&document, &format!("unexpected message from the worker: {e}"), true),
                }
            });
            worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
            onmessage.forget();
        }

        let send = {
            let state = state.clone();
            let document = document.clone();
            move |file: web_sys::File| {
                set_status(&document, &format!("Reading {} …", file.name()), false);
                clear(&document, "model");
                let mut s = state.borrow_mut();
                if s.ready {
                    let _ = s.worker.post_message(&file);
                } else {
                    s.pending = Some(file);
                }
            }
        };

        let input: HtmlInputElement = document.get_element_by_id("file").ok_or("no #file")?.dyn_into()?;
        {
            let send = send.clone();
            let input2 = input.clone();
            let onchange = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                if let Some(file) = input2.files().and_then(|f| f.get(0)) {
                    send(file);
                }
            });
            input.add_event_listener_with_callback("change", onchange.as_ref().unchecked_ref())?;
            onchange.forget();
        }

        let drop_zone = document.get_element_by_id("drop").ok_or("no #drop")?;
        for (event, over) in [("dragover", true), ("dragenter", true), ("dragleave", false)] {
            let zone = drop_zone.clone();
            let cb = Closure::<dyn FnMut(web_sys::DragEvent)>::new(move |e: web_sys::DragEvent| {
                e.prevent_default();
                let _ = zone.class_list().toggle_with_force("over", over);
            });
            drop_zone.add_event_listener_with_callback(event, cb.as_ref().unchecked_ref())?;
            cb.forget();
        }
        {
            let zone = drop_zone.clone();
            let cb = Closure::<dyn FnMut(web_sys::DragEvent)>::new(move |e: web_sys::DragEvent| {
                e.prevent_default();
                let _ = zone.class_list().remove_1("over");
                if let Some(file) = e.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
                    send(file);
                }
            });
            drop_zone.add_event_listener_with_callback("drop", cb.as_ref().unchecked_ref())?;
            cb.forget();
        }
        Ok(())
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

    fn add(parent: &Element, child: &Element) -> Result<(), JsValue> {
        parent.append_child(child).map(|_| ())
    }

    fn el(document: &Document, tag: &str, text: Option<&str>, class: Option<&str>) -> Result<Element, JsValue> {
        let e = document.create_element(tag)?;
        if let Some(t) = text {
            e.set_text_content(Some(t));
        }
        if let Some(c) = class {
            e.set_class_name(c);
        }
        Ok(e)
    }

    fn render_summary(document: &Document, s: &ModelSummary) -> Result<(), JsValue> {
        let root = document.get_element_by_id("model").ok_or("no #model")?;
        root.set_text_content(None);
        set_status(
            document,
            &format!("{} — {}, {} tensors, {}.", s.file_name, s.format, s.tensors.len(), human_bytes(s.file_bytes)),
            false,
        );

        add(&root, &el(document, "h2", Some("Model"), None)?)?;
        let dl = el(document, "dl", None, Some("meta"))?;
        let mut facts: Vec<(String, String)> = vec![
            ("architecture".into(), s.architecture.clone().unwrap_or_else(|| "unknown".into())),
        ];
        if let Some(h) = &s.hyperparameters {
            facts.extend(h.facts());
        }
        for (k, v) in facts {
            add(&dl, &el(document, "dt", Some(&k), None)?)?;
            add(&dl, &el(document, "dd", Some(&v), None)?)?;
        }
        root.append_child(&dl)?;

        add(&root, &el(document, "h2", Some("Tensor types"), None)?)?;
        let types = el(document, "p", None, None)?;
        for t in &s.type_histogram {
            let text = format!("{} × {} ({})", t.tensors, t.ty, human_bytes(t.bytes));
            add(&types, &el(document, "span", Some(&text), Some("pill"))?)?;
        }
        root.append_child(&types)?;

        add(&root, &el(document, "h2", Some("Metadata"), None)?)?;
        let table = el(document, "table", None, None)?;
        let head = el(document, "tr", None, None)?;
        for h in ["key", "type", "value"] {
            add(&head, &el(document, "th", Some(h), None)?)?;
        }
        table.append_child(&head)?;
        for m in &s.metadata {
            let tr = el(document, "tr", None, None)?;
            add(&tr, &el(document, "td", Some(&m.key), Some("mono"))?)?;
            add(&tr, &el(document, "td", Some(&m.value_type), None)?)?;
            add(&tr, &el(document, "td", Some(&m.value), Some("mono"))?)?;
            table.append_child(&tr)?;
        }
        root.append_child(&table)?;

        add(&root, &el(document, "h2", Some("Tensors"), None)?)?;
        let table = el(document, "table", None, None)?;
        let head = el(document, "tr", None, None)?;
        for (h, num) in [("name", false), ("role", false), ("type", false), ("shape (ne0, ne1, …)", false), ("offset", true), ("bytes", true)] {
            add(&head, &el(document, "th", Some(h), if num { Some("num") } else { None })?)?;
        }
        table.append_child(&head)?;
        for t in &s.tensors {
            let tr = el(document, "tr", None, None)?;
            add(&tr, &el(document, "td", Some(&t.name), Some("mono"))?)?;
            add(&tr, &el(document, "td", Some(t.role.as_deref().unwrap_or("—")), Some("mono"))?)?;
            add(&tr, &el(document, "td", Some(&t.ty), None)?)?;
            let shape: Vec<String> = t.ne.iter().map(|d| d.to_string()).collect();
            add(&tr, &el(document, "td", Some(&shape.join(" × ")), Some("mono"))?)?;
            add(&tr, &el(document, "td", Some(&t.offset.to_string()), Some("num"))?)?;
            add(&tr, &el(document, "td", Some(&t.bytes.to_string()), Some("num"))?)?;
            table.append_child(&tr)?;
        }
        root.append_child(&table)?;
        Ok(())
    }

    fn human_bytes(n: u64) -> String {
        parallax_model::human_bytes(n)
    }
}
