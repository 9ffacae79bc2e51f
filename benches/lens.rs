//! Second-order effects of all 3072 neurons of layer 9 of a ViT-B/32-shaped CLIP (random
//! weights), per image, forward included; and the cheap projection alone.
//!
//! `cargo bench --bench lens`. The paper's code takes 38 s per image for the effects on 2 cores.

use burn::tensor::{Device, Tensor};
use clip_lens::device::{self, read_f32_blocking};
use clip_lens::lens::{projections, second_order_effects, FactorForm, LensFactors, ProjectionFactors};
use clip_lens::model::{CaptureRequest, ClipModel, Towers};
use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout, WeightFile};
use criterion::{criterion_group, criterion_main, Criterion};

fn vit_b_32(device: &Device) -> ClipModel {
    let config = ClipConfig::vit_b_32();
    let bytes = random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F32, 1);
    ClipModel::load(&WeightFile::from_bytes(bytes).unwrap(), &config, Towers::Vision, device).unwrap()
}

fn layer_9(c: &mut Criterion) {
    let device = device::cpu();
    let model = vit_b_32(&device);
    let vision = model.vision().unwrap();
    let request = CaptureRequest::for_lens(&[9]);
    let mut group = c.benchmark_group("vit_b_32_layer_9");
    group.sample_size(10);
    for form in [FactorForm::PerHead, FactorForm::Compact] {
        let factors = LensFactors::with_form(vision, 9, form).unwrap();
        for batch in [1usize, 8] {
            let pixels = Tensor::<4>::random([batch, 3, 224, 224], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            // Per batch: divide by the batch size for the per-image figure.
            group.bench_function(format!("cpu/{form:?}/effects_with_forward/batch_{batch}"), |b| {
                b.iter(|| {
                    let output = vision.forward(pixels.clone(), &request).unwrap();
                    read_f32_blocking(second_order_effects(vision, &factors, &output).unwrap()).unwrap()
                })
            });
        }
    }
    let factors = LensFactors::new(vision, 9).unwrap();
    let pixels = Tensor::<4>::ones([1, 3, 224, 224], &device);
    let output = vision.forward(pixels.clone(), &request).unwrap();
    let directions = Tensor::<2>::random([3072, 512], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let mean = Tensor::<2>::zeros([3072, 512], &device);
    let projection = ProjectionFactors::new(vision, &factors, directions, mean);
    group.bench_function("cpu/cheap_projection_per_image", |b| {
        b.iter(|| read_f32_blocking(projections(vision, &factors, &projection, &output).unwrap()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, layer_9);
criterion_main!(benches);
