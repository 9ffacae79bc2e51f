//! Per-image application timings of a ViT-B/32-shaped CLIP (random weights) with a bundle of
//! the paper's sizes (`synthetic::random_bundle`: layers 8, 9, 10, k = 100, m = 128, 5000
//! words, 1000 classes), composed from the library calls the page's `Engine` and the CLI make:
//!
//! - `bundle_load`: parsing the bundle's files, the weights and model checks, the lens
//!   factors and means of its layers on the device (`Engine.loadBundle`, the CLI's bundle read);
//! - `analysis_per_image`: a 640x480 PNG decoded and preprocessed, one forward with the lens
//!   captures of the three layers, their centred norms (one readback), concept discovery with
//!   each significant neuron's words, the merged words and the top-5 classes (`Engine.analyze`,
//!   `clip-lens concepts` + `classify`);
//! - `segmentation_per_image`: the heatmap of the predicted class from the kept activations,
//!   top 200 neurons over layers 8-10 (`Engine.segment("predicted")`, `clip-lens segment`);
//! - `forward_with_lens_captures`: the forward (and embedding readback) alone;
//! - `ablation_first_of_layer`, `ablation_cached_layer`, `rank_one_cached_layer`: the lab's
//!   ablations through the `Engine` on the analysed image (`Engine.ablate`, `clip-lens ablate
//!   --image`): two neurons of layer 8 (which computes the layer's effects `[N, D]` once), one
//!   more neuron, the layer's rank-1 reconstruction (the analysis itself untimed).
//!
//! - `neighbours_of_one_layer`, `map_of_one_layer`: a layer's 15 nearest neurons by r_n and its
//!   UMAP map (the work `precompute` adds per layer for format 5's neighbours and map).
//!
//! `cargo bench --profile dev --bench apps`; `CLIP_LENS_BENCH_GPU=1` adds the wgpu device.

mod common;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use clip_lens::apps::analysis::BundleLens;
use clip_lens::apps::classify::{class_row, predicted_class};
use clip_lens::apps::classify::{classify, ClassScore};
use clip_lens::apps::concepts::{merge_layers, Concepts};
use clip_lens::apps::segment::{bundle_directions, heatmaps, top_neurons, Heatmaps, PAPER_TOP_NEURONS};
use clip_lens::bundle::{sha256_hex, Bundle, Storage};
use clip_lens::device::read_f32_blocking;
use clip_lens::model::{CaptureRequest, ClipModel, Towers, VisionTransformer};
use clip_lens::preprocess::preprocess_image;
use clip_lens::synthetic::{gradient_png, random_bundle, random_weights, BundleSizes, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout, Result, WeightFile};
use criterion::{criterion_group, criterion_main, Criterion};

/// The bundle's files as the page fetches them: manifest text and tensor bytes.
struct BundleFiles {
    manifest: String,
    tensors: Vec<u8>,
}

/// A bundle with its lens data on the device (the `Engine`'s `LoadedBundle`).
struct Prepared {
    bundle: Bundle,
    lens: BundleLens,
}

/// What an analysis leaves for segmentation (the `Engine`'s `LastImage`), and its results.
struct Analysed {
    neurons: BTreeMap<usize, Tensor<3>>,
    embedding: Vec<f32>,
    words: Vec<(String, f32)>,
    classes: Vec<ClassScore>,
}

/// The weights' bytes and a paper-sized bundle for them, stored as `precompute --f16` writes.
fn synthetic_inputs(config: &ClipConfig) -> (Vec<u8>, BundleFiles) {
    let weights =
        random_weights(config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F32, 1);
    let bundle = random_bundle(config, &sha256_hex(&weights), &BundleSizes::paper(config), 2);
    let files =
        BundleFiles { manifest: bundle.manifest_json().unwrap(), tensors: bundle.tensors(Storage::F16).unwrap() };
    (weights, files)
}

/// Reads and checks the bundle and puts its lens on the device.
fn prepare(
    vision: &VisionTransformer,
    config: &ClipConfig,
    weights_sha256: &str,
    files: &BundleFiles,
    device: &Device,
) -> Result<Prepared> {
    let bundle = Bundle::from_parts(&files.manifest, files.tensors.clone())?;
    bundle.check_weights(weights_sha256)?;
    bundle.check_model(config)?;
    let lens = BundleLens::new(vision, &bundle, &bundle.manifest.layers, usize::MAX, device)?;
    Ok(Prepared { bundle, lens })
}

/// One image's analysis: forward with the lens captures, concept discovery in every layer
/// (with each significant neuron's top-5 words described), the merged words, the classes.
fn analyse(vision: &VisionTransformer, prepared: &Prepared, image: &[u8], device: &Device) -> Result<Analysed> {
    let bundle = &prepared.bundle;
    let size = vision.config.image_size;
    let pixels = preprocess_image(image, size as u32)?.pixels;
    let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), device);
    let mut output = vision.forward(input, &prepared.lens.capture_request())?;
    let embedding = read_f32_blocking(output.embeds.clone())?;
    let found: Vec<Concepts> =
        pollster::block_on(prepared.lens.discover(vision, &output, bundle))?.into_iter().map(|f| f.concepts).collect();
    for concepts in &found {
        for &neuron in &concepts.significant_neurons {
            std::hint::black_box(bundle.describe(concepts.layer, neuron)?.into_iter().take(5).count());
        }
    }
    let words = merge_layers(&found, 10);
    let classes = classify(&embedding, &bundle.class_embeds, &bundle.manifest.classes, 5)?;
    Ok(Analysed { neurons: std::mem::take(&mut output.captures.neurons), embedding, words, classes })
}

/// The heatmap of the analysed image's predicted class: its top 200 neurons of the bundle's
/// layers, from the kept activations.
fn segment_predicted(vision: &VisionTransformer, bundle: &Bundle, analysed: &Analysed) -> Result<Heatmaps> {
    let concept = class_row(bundle, predicted_class(bundle, &analysed.embedding)?)?;
    let selected = top_neurons(&bundle_directions(bundle, &bundle.manifest.layers)?, &concept, PAPER_TOP_NEURONS)?;
    pollster::block_on(heatmaps(&analysed.neurons, &selected, vision.config.patch_size))
}

fn applications(c: &mut Criterion) {
    let config = ClipConfig::vit_b_32();
    let (weights, files) = synthetic_inputs(&config);
    let weights_sha256 = sha256_hex(&weights);
    let weights = WeightFile::from_bytes(weights).unwrap();
    let image = gradient_png(640, 480);
    let mut group = c.benchmark_group("vit_b_32_apps");
    group.sample_size(10);
    let bundle = Bundle::from_parts(&files.manifest, files.tensors.clone()).unwrap();
    // The fidelity of one layer's words (the first card's extra work): the dictionary of the
    // bundle's 5000 words, then 3072 reconstructions from 128 words.
    group.bench_function("fidelity_of_one_layer", |b| {
        b.iter(|| clip_lens::apps::cards::LayerFidelity::of(&bundle, 9).unwrap())
    });
    // A layer's neighbours and map (format 5's finish, per layer; and the map view of an older
    // bundle, computed on load): the 15 nearest of 3072 directions, then UMAP.
    let directions = &bundle.layers[&9].direction;
    group.bench_function("neighbours_of_one_layer", |b| {
        b.iter(|| clip_lens::lens::nearest_with_cosines(directions, 512, clip_lens::lens::MAP_NEIGHBOURS))
    });
    let nearest = clip_lens::lens::nearest_with_cosines(directions, 512, clip_lens::lens::MAP_NEIGHBOURS);
    group.bench_function("map_of_one_layer", |b| {
        b.iter(|| clip_lens::lens::map_of_neighbours(&nearest, clip_lens::lens::MAP_NEIGHBOURS))
    });
    for (name, device) in common::devices() {
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device).unwrap();
        let vision = model.vision().unwrap();
        group.bench_function(format!("{name}/bundle_load"), |b| {
            b.iter(|| prepare(vision, &config, &weights_sha256, &files, &device).unwrap())
        });
        let prepared = prepare(vision, &config, &weights_sha256, &files, &device).unwrap();
        let (request, size) = (CaptureRequest::for_lens(&prepared.bundle.manifest.layers), config.vision.image_size);
        group.bench_function(format!("{name}/forward_with_lens_captures"), |b| {
            b.iter(|| {
                let pixels = preprocess_image(&image, size as u32).unwrap().pixels;
                read_f32_blocking(
                    vision
                        .forward(Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), &device), &request)
                        .unwrap()
                        .embeds,
                )
                .unwrap()
            })
        });
        group.bench_function(format!("{name}/analysis_per_image"), |b| {
            b.iter(|| analyse(vision, &prepared, &image, &device).unwrap())
        });
        let analysed = analyse(vision, &prepared, &image, &device).unwrap();
        eprintln!(
            "{name}: top words {:?}, classes {:?}",
            &analysed.words[..3.min(analysed.words.len())],
            analysed.classes.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
        group.bench_function(format!("{name}/segmentation_per_image"), |b| {
            b.iter(|| segment_predicted(vision, &prepared.bundle, &analysed).unwrap())
        });
    }
    group.finish();
}

/// The lab's ablations on the CPU engine (see the module's comment).
fn ablations(c: &mut Criterion) {
    use clip_lens::apps::engine::{AblationRequest, AnalyzeOptions, Engine};
    use clip_lens::device::{cpu, BackendKind};
    use std::time::{Duration, Instant};
    let config = ClipConfig::vit_b_32();
    let (weights, files) = synthetic_inputs(&config);
    let config_json = config.to_hf_json().to_string();
    let mut engine = Engine::new(weights, Some(&config_json), cpu(), BackendKind::Cpu, usize::MAX).unwrap();
    engine.load_bundle(&files.manifest, files.tensors.clone()).unwrap();
    let image = gradient_png(640, 480);
    let analyse = |engine: &mut Engine| pollster::block_on(engine.analyze(&image, &AnalyzeOptions::default())).unwrap();
    let ablate = |engine: &mut Engine, request: &AblationRequest| pollster::block_on(engine.ablate(request)).unwrap();
    let two = AblationRequest::Neurons { neurons: "8:0,8:1".into() };
    let mut group = c.benchmark_group("vit_b_32_ablations");
    group.sample_size(10);
    group.bench_function("cpu/ablation_first_of_layer", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                analyse(&mut engine);
                let start = Instant::now();
                ablate(&mut engine, &two);
                total += start.elapsed();
            }
            total
        })
    });
    analyse(&mut engine);
    ablate(&mut engine, &two);
    let one = AblationRequest::Neurons { neurons: "8:2".into() };
    group.bench_function("cpu/ablation_cached_layer", |b| b.iter(|| ablate(&mut engine, &one)));
    let rank_one = AblationRequest::RankOne { layer: 8 };
    group.bench_function("cpu/rank_one_cached_layer", |b| b.iter(|| ablate(&mut engine, &rank_one)));
    group.finish();
}

criterion_group!(benches, applications, ablations);
criterion_main!(benches);
