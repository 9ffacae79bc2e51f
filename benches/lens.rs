//! Second-order effects of all 3072 neurons of layer 9 of a ViT-B/32-shaped CLIP (random
//! weights), per image, forward included; the weight-only factors a bundle's load computes for
//! layers 8, 9 and 10; and the cheap projection alone.
//!
//! `cargo bench --bench lens`. The paper's code takes 38 s per image for the effects on 2 cores.

mod common;

use burn::tensor::Tensor;
use clip_lens::device::{self, read_f32_blocking};
use clip_lens::lens::{projections, second_order_effects, FactorForm, LensFactors, ProjectionFactors};
use clip_lens::model::CaptureRequest;
use criterion::{criterion_group, criterion_main, Criterion};

fn layer_9(c: &mut Criterion) {
    let device = device::cpu();
    let model = common::vit_b_32(&device);
    let vision = model.vision().unwrap();
    let request = CaptureRequest::for_lens(&[9]);
    let mut group = c.benchmark_group("vit_b_32_layer_9");
    group.sample_size(10);
    for form in [FactorForm::PerHead, FactorForm::Compact] {
        let factors = LensFactors::with_form(vision, 9, form).unwrap();
        for batch in [1usize, 8] {
            let pixels =
                Tensor::<4>::random([batch, 3, 224, 224], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            // Per batch: divide by the batch size for the per-image figure.
            group.bench_function(format!("cpu/{form:?}/effects_with_forward/batch_{batch}"), |b| {
                b.iter(|| {
                    let output = vision.forward(pixels.clone(), &request).unwrap();
                    read_f32_blocking(second_order_effects(vision, &factors, &output).unwrap()).unwrap()
                })
            });
        }
    }
    // What a bundle's load computes per layer (the paper's bundle: layers 8, 9 and 10).
    for layer in [8, 9, 10] {
        group.bench_function(format!("cpu/factors_of_layer_{layer}"), |b| {
            b.iter(|| LensFactors::new(vision, layer).unwrap())
        });
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

/// A random dictionary of `words` x `dim` (as `precompute` makes one from word embeddings) and
/// `neurons` random targets.
fn random_omp_inputs(words: usize, dim: usize, neurons: usize) -> (clip_lens::lens::Dictionary, Vec<f32>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let embeds: Vec<f32> = (0..words * dim).map(|_| random()).collect();
    let dictionary =
        clip_lens::lens::Dictionary::from_word_embeddings(&clip_lens::lens::scaled_unit_rows(&embeds, dim), dim)
            .unwrap();
    let targets: Vec<f32> = (0..neurons * dim).map(|_| random()).collect();
    (dictionary, targets)
}

/// OMP at the paper's size: 30,000 words, 512 dimensions, 128 components. The device search
/// for one block of 256 neurons (x 12 for all 3072 of a layer); the AMX tile search (where the
/// CPU has it) for 256 and for all 3072 neurons of a layer. Random dictionary and targets.
fn omp_30k_words(c: &mut Criterion) {
    use clip_lens::lens::{orthogonal_matching_pursuit_with, AtomSearch};
    let (dictionary, targets) = random_omp_inputs(30_000, 512, 3072);
    let block = &targets[..256 * 512];
    let mut group = c.benchmark_group("omp_30k_words_512_dim_128_components");
    group.sample_size(10);
    let cpu = device::cpu();
    group.bench_function("cpu/256_neurons", |b| {
        b.iter(|| {
            pollster::block_on(orthogonal_matching_pursuit_with(&dictionary, block, 128, AtomSearch::Device(&cpu)))
                .unwrap()
        })
    });
    if clip_lens::lens::tiles_available() {
        group.bench_function("amx_tiles/256_neurons", |b| {
            b.iter(|| {
                pollster::block_on(orthogonal_matching_pursuit_with(&dictionary, block, 128, AtomSearch::Tiles))
                    .unwrap()
            })
        });
        group.bench_function("amx_tiles/3072_neurons", |b| {
            b.iter(|| {
                pollster::block_on(orthogonal_matching_pursuit_with(&dictionary, &targets, 128, AtomSearch::Tiles))
                    .unwrap()
            })
        });
    } else {
        println!("no AMX-BF16 here: the tiled OMP benchmarks are skipped");
    }
    group.finish();
}

/// OMP at the page build's size (`benches/page_build.sh`): one layer's 3072 neurons over 10,000
/// words of 512 dimensions, 32 components, by the device's products and in the Gram form (a
/// fresh coder each time: no Gram row computed before).
fn omp_10k_words(c: &mut Criterion) {
    use clip_lens::lens::{orthogonal_matching_pursuit_with, AtomSearch};
    let (dictionary, targets) = random_omp_inputs(10_000, 512, 3072);
    let mut group = c.benchmark_group("omp_10k_words_512_dim_32_components_3072_neurons");
    group.sample_size(10);
    let cpu = device::cpu();
    for (name, search) in [("cpu", AtomSearch::Device(&cpu)), ("gram", AtomSearch::Gram(&cpu))] {
        group.bench_function(name, |b| {
            b.iter(|| pollster::block_on(orthogonal_matching_pursuit_with(&dictionary, &targets, 32, search)).unwrap())
        });
    }
    group.finish();
}

/// One `precompute` batch (8 images) for layers 8, 9, 10: forward, effects of the three layers,
/// readback, and both passes' accumulators (k = 100). Images/s = 8 / time.
fn precompute_batch(c: &mut Criterion) {
    use clip_lens::lens::{MeanAccumulator, TopKAccumulator};
    let device = device::cpu();
    let model = common::vit_b_32(&device);
    let vision = model.vision().unwrap();
    let layers = [8usize, 9, 10];
    let factors: Vec<LensFactors> = layers.iter().map(|&l| LensFactors::new(vision, l).unwrap()).collect();
    let request = CaptureRequest::for_lens(&layers);
    let pixels = Tensor::<4>::random([8, 3, 224, 224], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let mut means: Vec<MeanAccumulator> = layers.iter().map(|_| MeanAccumulator::new(3072, 512)).collect();
    let mut tops: Vec<TopKAccumulator> =
        layers.iter().map(|_| TopKAccumulator::new(vec![0.0; 3072 * 512], 3072, 512, 100).unwrap()).collect();
    let mut group = c.benchmark_group("vit_b_32_precompute");
    group.sample_size(10);
    group.bench_function("cpu/batch_8_layers_8_9_10_both_passes", |b| {
        b.iter(|| {
            let output = vision.forward(pixels.clone(), &request).unwrap();
            for (i, f) in factors.iter().enumerate() {
                let effects = read_f32_blocking(second_order_effects(vision, f, &output).unwrap()).unwrap();
                means[i].add(&effects).unwrap();
                tops[i].add(&effects).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, layer_9, omp_30k_words, omp_10k_words, precompute_batch);
criterion_main!(benches);
