//! The Web Worker: receives a `File` from the page, reads it in slices and answers with the
//! model's summary. Heavy work lives here so the page never blocks.

#[cfg(target_arch = "wasm32")]
fn main() {
    use parallax_source::{ByteSource, CountingSource};
    use parallax_web::{browser::FileSliceSource, WorkerMessage};
    use wasm_bindgen::{prelude::*, JsCast};

    console_error_panic_hook::set_once();
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();

    let post = {
        let scope = scope.clone();
        move |msg: &WorkerMessage| {
            let text = serde_json::to_string(msg).unwrap_or_else(|e| format!(r#"{{"kind":"error","message":"{e}"}}"#));
            let _ = scope.post_message(&JsValue::from_str(&text));
        }
    };

    let post_for_handler = post.clone();
    let onmessage = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let post = &post_for_handler;
        let file: Result<web_sys::File, _> = event.data().dyn_into();
        let Ok(file) = file else {
            post(&WorkerMessage::Error { message: "the worker expected a file".into() });
            return;
        };
        let source = match FileSliceSource::new(file) {
            Ok(s) => CountingSource::new(s),
            Err(message) => return post(&WorkerMessage::Error { message }),
        };
        let result = parallax_model::Model::open(&source);
        post(&WorkerMessage::Progress { bytes_read: source.bytes_read(), total: source.len() });
        match result {
            Ok(model) => post(&WorkerMessage::Inspected { summary: model.summary() }),
            Err(e) => post(&WorkerMessage::Error { message: format!("{}: {e}", source.name()) }),
        }
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(&WorkerMessage::Ready);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("parallax-web's worker runs in the browser; build it with `./dev serve`.");
}
