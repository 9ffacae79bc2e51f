//! Browser benchmark (run by hand, not part of the test suite): ViT-B/32-shaped image forward
//! with random weights, on WebGPU and on the CPU backend, printed on the console.
//!
//! `CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=3600 cargo test --target
//! wasm32-unknown-unknown --test web_bench -- --nocapture`. The same figures come from the
//! page `bench.html` of the built site.
#![cfg(target_arch = "wasm32")]

use clip_lens::web::benchmark_vision;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn run(backend: &str, batch: usize, runs: usize) {
    match benchmark_vision("ViT-B/32".into(), backend.into(), batch, runs).await {
        Ok(json) => console_log!("bench {json}"),
        Err(_) => panic!("benchmark on {backend} failed"),
    }
}

#[wasm_bindgen_test]
async fn vit_b_32_forward_on_cpu() {
    run("cpu", 1, 3).await;
    run("cpu", 8, 1).await;
}

#[wasm_bindgen_test]
async fn vit_b_32_forward_on_webgpu() {
    run("webgpu", 1, 1).await;
}
