//! Native golden tests: the model against the paper's reference outputs, on the CPU (flex)
//! and, when a wgpu adapter exists (lavapipe in CI), on the GPU path.

use crate::common::*;
use clip_lens::device;

#[test]
fn image_tower_matches_reference_openai_layout_cpu() {
    let deviations = pollster::block_on(image_tower_deviations(MODEL_OPENAI, &device::cpu()));
    assert_eq!(deviations.len(), 5, "image_embeds and four post_gelu layers");
    assert_within("cpu/openai", &deviations);
}

#[test]
fn image_tower_matches_reference_hf_layout_cpu() {
    assert_within("cpu/hf", &pollster::block_on(image_tower_deviations(MODEL_HF, &device::cpu())));
}

#[test]
fn text_tower_matches_reference_both_layouts_cpu() {
    for (label, bytes) in [("openai", MODEL_OPENAI), ("hf", MODEL_HF)] {
        let deviation = pollster::block_on(text_tower_deviation(bytes, &device::cpu()));
        assert_within(&format!("cpu/{label}"), &[("probe_text_embeds".into(), deviation)]);
    }
}

#[test]
fn probe_tokens_match_reference_exactly() {
    check_probe_tokens();
}

/// The wgpu path (a real GPU, or Mesa's lavapipe in CI). Set `CLIP_LENS_REQUIRE_GPU=1` to make
/// a missing adapter a failure rather than a skip.
#[test]
fn image_and_text_towers_match_reference_on_wgpu() {
    let Some(gpu) = native_gpu_or_skip("the wgpu golden test") else { return };
    assert_within("wgpu/openai", &pollster::block_on(image_tower_deviations(MODEL_OPENAI, &gpu)));
    assert_within("wgpu/hf", &pollster::block_on(image_tower_deviations(MODEL_HF, &gpu)));
    let deviation = pollster::block_on(text_tower_deviation(MODEL_HF, &gpu));
    assert_within("wgpu/text", &[("probe_text_embeds".into(), deviation)]);
}

#[test]
fn pixels_from_pngs_match_reference() {
    assert_pixels_within("native", &png_pixel_deviations());
}
