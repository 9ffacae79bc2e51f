#![cfg(not(target_arch = "wasm32"))]
//! The lens engine against the paper's reference outputs, natively.

mod common;

use clip_lens::device;
use common::*;

#[test]
fn second_order_effects_match_reference_on_cpu() {
    for (label, bytes) in [("cpu/openai", MODEL_OPENAI), ("cpu/hf", MODEL_HF)] {
        assert_within(label, &pollster::block_on(second_order_deviations(bytes, &device::cpu())));
    }
}

#[test]
fn second_order_effects_match_reference_on_wgpu() {
    let gpu = match device::gpu() {
        Ok(gpu) => gpu,
        Err(e) if std::env::var("CLIP_LENS_REQUIRE_GPU").is_err() => {
            eprintln!("skipping the wgpu lens test: {e}");
            return;
        }
        Err(e) => panic!("CLIP_LENS_REQUIRE_GPU is set but {e}"),
    };
    assert_within("wgpu/openai", &pollster::block_on(second_order_deviations(MODEL_OPENAI, &gpu)));
}
