//! Helpers of the browser tests and the browser benchmark: engine errors and results as Rust
//! values, and the page's memory figures.

use wasm_bindgen::{JsCast, JsValue};

/// The message of a JavaScript error from the engine.
pub fn message(error: JsValue) -> String {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.message()),
        None => format!("{error:?}"),
    }
}

/// The `kind` of a JavaScript error from the engine (`needs-text-tower`, `bad-input`, ...).
pub fn kind(error: &JsValue) -> Option<String> {
    js_sys::Reflect::get(error, &"kind".into()).ok()?.as_string()
}

/// A result object as JSON.
pub fn json(value: JsValue) -> serde_json::Value {
    let text: String = js_sys::JSON::stringify(&value).expect("a plain object").into();
    serde_json::from_str(&text).unwrap()
}

/// wasm memory in bytes (it never shrinks: this is the peak so far) and Chrome's used JS heap
/// (`performance.memory`, 0 elsewhere).
pub fn memory_figures() -> (f64, f64) {
    // An ArrayBuffer, or a SharedArrayBuffer in the threaded module: read its length either way.
    let buffer = wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>().unwrap().buffer();
    let wasm = js_sys::Reflect::get(&buffer, &"byteLength".into()).unwrap().as_f64().unwrap();
    let heap = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .and_then(|performance| js_sys::Reflect::get(&performance, &"memory".into()))
        .and_then(|memory| js_sys::Reflect::get(&memory, &"usedJSHeapSize".into()))
        .ok()
        .and_then(|value| value.as_f64())
        .unwrap_or(0.0);
    (wasm, heap)
}

/// The CPU threads the browser tests run on: 2 in the threaded module (rayon's pool on two Web
/// Workers, as on this 2-core machine's page), 1 in the single-threaded one.
pub const TEST_THREADS: usize = if cfg!(feature = "threads") { 2 } else { 1 };

/// Prepares the module as the page's `init` does, once per test run: its start function (the
/// static constructors, which wasm-bindgen-test does not run, and the panic hook), then, in the
/// threaded module, rayon's pool of [`TEST_THREADS`] workers. Every test that uses the engine
/// calls it first: rayon's first parallel call without a pool would fix it at one thread.
pub async fn start_module() {
    clip_lens::web::start();
    #[cfg(feature = "threads")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static STARTED: AtomicBool = AtomicBool::new(false);
        if !STARTED.swap(true, Ordering::SeqCst) {
            wasm_bindgen_futures::JsFuture::from(clip_lens::web::init_thread_pool(TEST_THREADS))
                .await
                .expect("rayon's pool on Web Workers");
        }
    }
}
