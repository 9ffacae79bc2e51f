//! Each neuron's heads (issue 27): the part of its effect that flows through each later head,
//! against the independent NumPy reference (`tests/fixtures/heads`), natively.

use crate::common::engine::{engine_with, reference_bundle};
use crate::common::heads::{head_term_deviations, reference_head_terms};
use crate::common::*;
use clip_lens::apps::engine::AnalyzeOptions;
use clip_lens::bundle::{sha256_hex, Bundle};
use clip_lens::device;
use pollster::block_on;

#[test]
fn head_terms_match_the_numpy_reference_on_cpu() {
    assert_within("cpu/heads", &pollster::block_on(head_term_deviations(MODEL_OPENAI, &device::cpu())));
}

#[test]
fn head_terms_match_the_numpy_reference_on_wgpu() {
    let Some(gpu) = native_gpu_or_skip("the wgpu heads test") else { return };
    assert_within("wgpu/heads", &pollster::block_on(head_term_deviations(MODEL_OPENAI, &gpu)));
}

/// A bundle's `layer.L.heads` is, per neuron, the mean over its top images of the reference's
/// head terms (r_n up to its sign: the heads follow it).
#[test]
fn bundle_heads_are_the_reference_terms_over_the_top_images() {
    let bundle = Bundle::read(crate::bundle::bundle_dir()).unwrap();
    let expected = expected();
    for layer in 0..3usize {
        let (terms, heads) = reference_head_terms(layer);
        let lens = &bundle.layers[&layer];
        let ours = lens.heads.as_ref().expect("a format-5 bundle has the heads");
        assert_eq!(bundle.later_heads(layer).unwrap().count(), heads);
        let pca = &expected[&format!("pca.{layer}")].values;
        let mut reference = Vec::with_capacity(256 * heads);
        for n in 0..256 {
            let agree =
                clip_lens::vector::dot(&lens.direction[n * 32..(n + 1) * 32], &pca[n * 32..(n + 1) * 32]) >= 0.0;
            let sign = if agree { 1.0 } else { -1.0 };
            let top = &bundle.manifest.top_images[&layer.to_string()][n];
            reference.extend((0..heads).map(|h| {
                sign * top.iter().map(|&image| terms[(image * 256 + n) * heads + h]).sum::<f32>() / top.len() as f32
            }));
        }
        let deviation = relative_deviation(ours, &reference);
        report!("bundle heads of layer {layer}: {deviation:.2e} relative");
        assert!(deviation < 1e-4, "layer {layer}: {deviation}");
    }
}

/// The lab's heads of an analysed image (from the forward's captures) are the reference's terms
/// of that image: the reference bundle's r_n are the reference's `pca.L`, and the image is
/// decoded from its PNG (our resizer: the statistics agree to 1e-4 that way too).
#[test]
fn the_lab_heads_of_an_image_are_the_reference_terms() {
    let mut engine = engine_with(&reference_bundle(sha256_hex(MODEL_OPENAI)));
    let before = block_on(engine.image_heads(1, 4)).unwrap_err().to_string();
    assert!(before.contains("no image has been analysed yet"), "{before}");
    block_on(engine.analyze(DETAIL_PNGS[0], &AnalyzeOptions::default())).unwrap();
    for layer in 0..3 {
        let (terms, heads) = reference_head_terms(layer);
        let ours: Vec<f32> = (0..256).flat_map(|n| block_on(engine.image_heads(layer, n)).unwrap().values).collect();
        let deviation = relative_deviation(&ours, &terms[..256 * heads]);
        report!("lab heads of image 0, layer {layer}: {deviation:.2e} relative");
        assert!(deviation < 1e-4, "layer {layer}: {deviation}");
    }
    let outside = block_on(engine.image_heads(1, 256)).unwrap_err().to_string();
    assert!(outside.contains("neuron 256 is out of range"), "{outside}");
}
