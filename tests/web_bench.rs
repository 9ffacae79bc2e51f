//! Browser benchmark (run by hand, not part of the test suite): ViT-B/32-shaped image forward
//! with random weights, on WebGPU and on the CPU backend, the page's applications (one image's
//! analysis and segmentation through the Engine, with a synthetic bundle of the paper's sizes)
//! and the matrix-product probe, printed on the console; and the real-size analysis on WebGPU,
//! which takes minutes on a software adapter (it was a browser test until the CI's time ran
//! short: the smaller WebGPU tests cover the same code).
//!
//! Its tests are ignored, so that `wasm-pack test --headless --chrome` runs the browser suite
//! alone: `WASM_BINDGEN_TEST_TIMEOUT=3600 wasm-pack test --headless --chrome --test web_bench --
//! --nocapture --include-ignored` (or `cargo test --target wasm32-unknown-unknown --test web_bench
//! -- --nocapture --include-ignored` with `CHROMEDRIVER=/usr/bin/chromedriver`). The same figures come from the
//! page `bench.html` of the built site (`&analysis=1` for the applications, `&probe=1` for the probe).
#![cfg(target_arch = "wasm32")]

mod common;

use clip_lens::web::benchmark_vision;
use common::browser::start_module;
// The real-size WebGPU analysis's.
use wasm_bindgen_test::*;
#[cfg(not(feature = "threads"))]
use {
    clip_lens::web::Engine,
    common::browser::{json, memory_figures, message},
    wasm_bindgen::JsValue,
};

#[cfg(not(feature = "threads"))]
wasm_bindgen_test_configure!(run_in_browser);
#[cfg(feature = "threads")]
wasm_bindgen_test_configure!(run_in_dedicated_worker);

async fn run(backend: &str, batch: usize, runs: usize, analysis: bool) {
    match benchmark_vision("ViT-B/32".into(), backend.into(), batch, runs, Some(analysis), Some(true)).await {
        Ok(json) => console_log!("bench {json}"),
        Err(_) => panic!("benchmark on {backend} failed"),
    }
}

#[wasm_bindgen_test]
#[ignore = "a benchmark of minutes: run it with --include-ignored"]
async fn vit_b_32_forward_and_applications_on_cpu() {
    start_module().await;
    run("cpu", 1, 3, true).await;
    run("cpu", 8, 1, false).await;
}

/// Slow on a software adapter: on SwiftShader here the run did not finish in 12 minutes.
// The threaded module is the CPU backend's alone.
#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
#[ignore = "a benchmark of minutes: run it with --include-ignored"]
async fn vit_b_32_forward_and_applications_on_webgpu() {
    start_module().await;
    run("webgpu", 1, 1, true).await;
}

/// One ViT-B/32 analysis on WebGPU, as the page runs it (SwiftShader here, so slow: about five
/// minutes, mostly the first analysis): the engine with random f16 weights, a synthetic bundle of
/// the paper's sizes (layers 8-10, k = 100, m = 128, 5000 words, 1000 classes), one `analyze` of
/// a 640x480 image and the segmentation of its predicted class; none may run out of memory.
// The threaded module is the CPU backend's alone.
#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
#[ignore = "a benchmark of minutes: run it with --include-ignored"]
async fn real_size_analysis_on_webgpu() {
    start_module().await;
    use clip_lens::synthetic::{gradient_png, paper_bundle_files, random_weights, StorageType, TowerSelection};
    use clip_lens::{ClipConfig, Layout};
    let config = ClipConfig::vit_b_32();
    let weights =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 11);
    let (_, manifest, tensors) = paper_bundle_files(&config, &weights).unwrap();
    let start = web_time::Instant::now();
    let mut engine = Engine::create(weights, Some(config.to_hf_json().to_string()), "webgpu".into(), None)
        .await
        .map_err(message)
        .unwrap();
    engine.load_bundle(manifest, tensors).map_err(message).unwrap();
    let loaded_s = start.elapsed().as_secs_f64();
    let start = web_time::Instant::now();
    let analysis = engine.analyze(gradient_png(640, 480), None).await.map_err(message).unwrap();
    let analysis_s = start.elapsed().as_secs_f64();
    let field = |value: &JsValue, name: &str| js_sys::Reflect::get(value, &name.into()).unwrap();
    assert_eq!(field(&analysis, "backend").as_string().as_deref(), Some("webgpu"));
    assert_eq!(js_sys::Array::from(&field(&analysis, "classes")).length(), 5, "top-5 classes");
    assert_eq!(js_sys::Array::from(&field(&analysis, "layers")).length(), 3, "layers 8, 9, 10");
    let start = web_time::Instant::now();
    let segmentation = engine.segment("predicted".into(), None, None).await.map_err(message).unwrap();
    let segmentation_s = start.elapsed().as_secs_f64();
    let heatmap = js_sys::Float32Array::from(field(&segmentation, "heatmap")).to_vec();
    assert!(!heatmap.is_empty() && heatmap.iter().all(|x| x.is_finite()), "a heatmap of finite values");
    assert!(heatmap.iter().any(|&x| x != heatmap[0]), "a heatmap that is not flat");
    let (wasm, heap) = memory_figures();
    let gpu = json(engine.gpu_memory().map_err(message).unwrap());
    report!(
        "browser/webgpu ViT-B/32: engine and bundle {loaded_s:.1} s, first analysis {analysis_s:.1} s, segmentation {segmentation_s:.2} s; wasm memory {:.0} MB, JS heap {:.0} MB, GPU allocator {:.0} MB in use, {:.0} MB reserved",
        wasm / 1e6,
        heap / 1e6,
        gpu["bytes_in_use"].as_f64().unwrap_or(0.0) / 1e6,
        gpu["bytes_reserved"].as_f64().unwrap_or(0.0) / 1e6
    );
}
