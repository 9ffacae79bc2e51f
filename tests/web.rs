//! Browser tests (wasm-bindgen-test in headless Chromium): the same golden checks as the
//! native tests, on WebGPU and on the CPU (flex). The WebGPU test fails when no adapter is
//! obtained: there is no silent fallback here.
#![cfg(target_arch = "wasm32")]

mod common;

use clip_lens::device;
use common::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn golden_image_and_text_towers_on_webgpu() {
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/openai", &image_tower_deviations(MODEL_OPENAI, &gpu).await);
    assert_within("webgpu/hf", &image_tower_deviations(MODEL_HF, &gpu).await);
    assert_within("webgpu/text-openai", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_OPENAI, &gpu).await)]);
    assert_within("webgpu/text-hf", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_HF, &gpu).await)]);
}

#[wasm_bindgen_test]
async fn golden_image_and_text_towers_on_cpu() {
    let cpu = device::cpu();
    assert_within("cpu/openai", &image_tower_deviations(MODEL_OPENAI, &cpu).await);
    assert_within("cpu/hf", &image_tower_deviations(MODEL_HF, &cpu).await);
    assert_within("cpu/text-openai", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_OPENAI, &cpu).await)]);
    assert_within("cpu/text-hf", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_HF, &cpu).await)]);
}

#[wasm_bindgen_test]
fn probe_tokens_match_in_the_browser() {
    check_probe_tokens();
}

#[wasm_bindgen_test]
fn pixels_from_pngs_match_in_the_browser() {
    let deviations = png_pixel_deviations();
    assert_pixels_within("browser", &deviations);
}

#[wasm_bindgen_test]
async fn second_order_effects_on_webgpu_and_cpu() {
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/lens", &second_order_deviations(MODEL_OPENAI, &gpu).await);
    assert_within("cpu/lens", &second_order_deviations(MODEL_HF, &device::cpu()).await);
}

#[wasm_bindgen_test]
async fn neuron_statistics_on_webgpu() {
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/stats", &statistics_deviations(MODEL_OPENAI, &gpu, 16).await);
}

#[wasm_bindgen_test]
async fn dictionary_and_omp_in_the_browser() {
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/dictionary", &dictionary_deviations(MODEL_OPENAI, &gpu).await.0);
    assert_within("cpu/dictionary", &dictionary_deviations(MODEL_HF, &device::cpu()).await.0);
    let mut results = omp_against_reference(&gpu).await;
    results.extend(omp_against_reference(&device::cpu()).await);
    for (layer, mismatches, worst) in results {
        report!("browser omp.{layer}: {mismatches} supports differ, worst coefficient deviation {worst:.2e}");
        assert_eq!(mismatches, 0);
        assert!(worst <= 1e-3);
    }
}

#[wasm_bindgen_test]
async fn zero_shot_segmentation_on_cpu() {
    assert_segmentation_matches("browser/cpu", segmentation_golden(MODEL_OPENAI, &device::cpu()).await);
}

#[wasm_bindgen_test]
async fn concept_discovery_on_webgpu_and_cpu() {
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    for (label, device) in [("webgpu", gpu), ("cpu", device::cpu())] {
        let worst = check_concept_discovery(MODEL_OPENAI, &device).await;
        report!("{label}/concepts: scores within {worst:.2e}");
        assert!(worst < 1e-4, "{label}: {worst}");
    }
}
