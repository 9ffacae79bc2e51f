//! Helpers of the browser tests and the browser benchmark: engine errors and results as Rust
//! values, and the page's memory figures.

use wasm_bindgen::{JsCast, JsError, JsValue};

/// The message of a JavaScript error from the engine.
pub fn message(error: JsError) -> String {
    let value = JsValue::from(error);
    match value.dyn_ref::<js_sys::Error>() {
        Some(e) => String::from(e.message()),
        None => format!("{value:?}"),
    }
}

/// A result object as JSON.
pub fn json(value: JsValue) -> serde_json::Value {
    let text: String = js_sys::JSON::stringify(&value).expect("a plain object").into();
    serde_json::from_str(&text).unwrap()
}

/// wasm memory in bytes (it never shrinks: this is the peak so far) and Chrome's used JS heap
/// (`performance.memory`, 0 elsewhere).
pub fn memory_figures() -> (f64, f64) {
    let wasm = wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>().unwrap().buffer().dyn_into::<js_sys::ArrayBuffer>().unwrap().byte_length() as f64;
    let heap = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .and_then(|performance| js_sys::Reflect::get(&performance, &"memory".into()))
        .and_then(|memory| js_sys::Reflect::get(&memory, &"usedJSHeapSize".into()))
        .ok()
        .and_then(|value| value.as_f64())
        .unwrap_or(0.0);
    (wasm, heap)
}

