//! Browser benchmark (run by hand, not part of the test suite): ViT-B/32-shaped image forward
//! with random weights, on WebGPU and on the CPU backend, and the page's applications (one
//! image's analysis and segmentation through the Engine, with a synthetic bundle of the paper's
//! sizes), printed on the console.
//!
//! `CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=3600 cargo test --target
//! wasm32-unknown-unknown --test web_bench -- --nocapture`. The same figures come from the
//! page `bench.html` of the built site (`&analysis=1` for the applications).
#![cfg(target_arch = "wasm32")]

use clip_lens::web::benchmark_vision;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn run(backend: &str, batch: usize, runs: usize, analysis: bool) {
    match benchmark_vision("ViT-B/32".into(), backend.into(), batch, runs, Some(analysis)).await {
        Ok(json) => console_log!("bench {json}"),
        Err(_) => panic!("benchmark on {backend} failed"),
    }
}

#[wasm_bindgen_test]
async fn vit_b_32_forward_and_applications_on_cpu() {
    run("cpu", 1, 3, true).await;
    run("cpu", 8, 1, false).await;
}

/// Slow on a software adapter: on SwiftShader here the run did not finish in 12 minutes.
#[wasm_bindgen_test]
async fn vit_b_32_forward_and_applications_on_webgpu() {
    run("webgpu", 1, 1, true).await;
}
