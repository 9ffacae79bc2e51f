//! Image-forward speed of a ViT-B/32-shaped CLIP with random weights (ms per image at batch 1
//! and 8), on the CPU (burn flex) and, when an adapter exists, on wgpu; and the last block on
//! every token against CLS alone.
//!
//! `cargo bench --bench forward`; `CLIP_LENS_BENCH_GPU=1` adds the wgpu device.

mod common;

use burn::tensor::Tensor;
use clip_lens::device::read_f32_blocking;
use clip_lens::model::{CaptureRequest, ClipModel, Keep};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Both groups on one model per device (generating and loading it takes longer than a group).
fn forward_benches(c: &mut Criterion) {
    let models: Vec<(&str, ClipModel)> =
        common::devices().into_iter().map(|(name, device)| (name, common::vit_b_32(&device))).collect();
    image_forward(c, &models);
    last_block(c, &models);
}

fn image_forward(c: &mut Criterion, models: &[(&str, ClipModel)]) {
    let mut group = c.benchmark_group("vit_b_32_image_forward");
    group.sample_size(10);
    for (name, model) in models {
        let vision = model.vision().unwrap();
        let device = vision.projection.device();
        for batch in [1usize, 8] {
            group.throughput(Throughput::Elements(batch as u64));
            let pixels = Tensor::<4>::ones([batch, 3, 224, 224], &device);
            group.bench_with_input(BenchmarkId::new(*name, format!("batch{batch}")), &batch, |b, _| {
                b.iter(|| read_f32_blocking(vision.encode(pixels.clone()).unwrap()).unwrap())
            });
            // The lens forward: layer 9's neurons plus the attention rows and LN statistics.
            group.bench_with_input(
                BenchmarkId::new(format!("{name}-with-lens-captures"), format!("batch{batch}")),
                &batch,
                |b, _| {
                    b.iter(|| {
                        let output = vision.forward(pixels.clone(), &CaptureRequest::for_lens(&[9])).unwrap();
                        read_f32_blocking(output.captures.neurons[&9].clone()).unwrap();
                        read_f32_blocking(output.embeds).unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

/// The image tower's last block on every token, and on CLS alone (what the forward runs when
/// the last layer's neurons are not wanted): the work the CLS-only block saves.
fn last_block(c: &mut Criterion, models: &[(&str, ClipModel)]) {
    let mut group = c.benchmark_group("vit_b_32_last_block");
    group.sample_size(20);
    for (name, model) in models {
        let vision = model.vision().unwrap();
        let block = vision.blocks.last().unwrap();
        let tokens = vision.config.tokens();
        let x = Tensor::<3>::ones([1, tokens, vision.config.width], &vision.projection.device());
        for (label, rows) in [("all-tokens", tokens), ("cls-only", 1)] {
            group.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| {
                    read_f32_blocking(block.forward_rows(x.clone(), rows, None, Keep { neurons: false, lens: true }).0)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward_benches);
criterion_main!(benches);
