//! Golden checks against the paper's reference outputs (`tests/fixtures/tiny-a`), shared by
//! the native tests and the browser (wasm-bindgen) tests. Fixture files are embedded with
//! `include_bytes!` so that the same code runs where there is no filesystem.
// Each browser suite uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use clip_lens::device::read_f32;
use clip_lens::lens::FactorForm;
use clip_lens::model::{CaptureRequest, ClipModel, Towers};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{ClipConfig, WeightFile};

#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod engine;
pub mod heads;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/", $name))
    };
}

/// The fixture model under OpenAI names.
pub const MODEL_OPENAI: &[u8] = fixture!("model-openai.safetensors");
/// The fixture model under Hugging Face names.
pub const MODEL_HF: &[u8] = fixture!("model-hf.safetensors");
/// The reference outputs.
pub const EXPECTED: &[u8] = fixture!("expected.safetensors");
/// The reference's parameters and probe strings.
pub const EXPECTED_JSON: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/expected.json"));
/// The fixture's Hugging Face config.
pub const CONFIG_JSON: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/config.json"));
/// The six detail images whose reference pixels are in `expected.safetensors`.
pub const DETAIL_PNGS: [&[u8]; 6] = [
    fixture!("images/img000.png"),
    fixture!("images/img001.png"),
    fixture!("images/img002.png"),
    fixture!("images/img003.png"),
    fixture!("images/img004.png"),
    fixture!("images/img005.png"),
];

/// All 48 fixture images (`images/imgNNN.png`), by name, as a folder of them holds them.
pub const FIXTURE_PNGS: [(&str, &[u8]); 48] = [
    ("img000.png", fixture!("images/img000.png")),
    ("img001.png", fixture!("images/img001.png")),
    ("img002.png", fixture!("images/img002.png")),
    ("img003.png", fixture!("images/img003.png")),
    ("img004.png", fixture!("images/img004.png")),
    ("img005.png", fixture!("images/img005.png")),
    ("img006.png", fixture!("images/img006.png")),
    ("img007.png", fixture!("images/img007.png")),
    ("img008.png", fixture!("images/img008.png")),
    ("img009.png", fixture!("images/img009.png")),
    ("img010.png", fixture!("images/img010.png")),
    ("img011.png", fixture!("images/img011.png")),
    ("img012.png", fixture!("images/img012.png")),
    ("img013.png", fixture!("images/img013.png")),
    ("img014.png", fixture!("images/img014.png")),
    ("img015.png", fixture!("images/img015.png")),
    ("img016.png", fixture!("images/img016.png")),
    ("img017.png", fixture!("images/img017.png")),
    ("img018.png", fixture!("images/img018.png")),
    ("img019.png", fixture!("images/img019.png")),
    ("img020.png", fixture!("images/img020.png")),
    ("img021.png", fixture!("images/img021.png")),
    ("img022.png", fixture!("images/img022.png")),
    ("img023.png", fixture!("images/img023.png")),
    ("img024.png", fixture!("images/img024.png")),
    ("img025.png", fixture!("images/img025.png")),
    ("img026.png", fixture!("images/img026.png")),
    ("img027.png", fixture!("images/img027.png")),
    ("img028.png", fixture!("images/img028.png")),
    ("img029.png", fixture!("images/img029.png")),
    ("img030.png", fixture!("images/img030.png")),
    ("img031.png", fixture!("images/img031.png")),
    ("img032.png", fixture!("images/img032.png")),
    ("img033.png", fixture!("images/img033.png")),
    ("img034.png", fixture!("images/img034.png")),
    ("img035.png", fixture!("images/img035.png")),
    ("img036.png", fixture!("images/img036.png")),
    ("img037.png", fixture!("images/img037.png")),
    ("img038.png", fixture!("images/img038.png")),
    ("img039.png", fixture!("images/img039.png")),
    ("img040.png", fixture!("images/img040.png")),
    ("img041.png", fixture!("images/img041.png")),
    ("img042.png", fixture!("images/img042.png")),
    ("img043.png", fixture!("images/img043.png")),
    ("img044.png", fixture!("images/img044.png")),
    ("img045.png", fixture!("images/img045.png")),
    ("img046.png", fixture!("images/img046.png")),
    ("img047.png", fixture!("images/img047.png")),
];

/// The fixture file `name` under `tests/fixtures/tiny-a` (native tests; the browser tests embed
/// what they need).
#[cfg(not(target_arch = "wasm32"))]
pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-a").join(name)
}

/// The `clip-lens` command line, ready for arguments (native integration tests).
#[cfg(not(target_arch = "wasm32"))]
pub fn clip_lens_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_clip-lens"))
}

/// `clip-lens SUBCOMMAND --weights <the fixture model> --bundle BUNDLE ARGS...`, run to its end.
#[cfg(not(target_arch = "wasm32"))]
pub fn clip_lens_on_bundle(subcommand: &str, bundle: &std::path::Path, args: &[&str]) -> std::process::Output {
    clip_lens_with("model-openai.safetensors", subcommand, bundle, args)
}

/// [`clip_lens_on_bundle`] with the fixture weights `weights` (a file name under the fixtures).
#[cfg(not(target_arch = "wasm32"))]
pub fn clip_lens_with(
    weights: &str,
    subcommand: &str,
    bundle: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let weights = fixture_path(weights);
    let mut command = clip_lens_command();
    command.arg(subcommand).arg("--weights").arg(weights).arg("--bundle").arg(bundle).args(args);
    command.output().expect("clip-lens runs")
}

/// `clip-lens precompute` of the fixture model with the fixture's words, from the images in
/// `images` into `out`; the caller adds the layers, k and the rest.
#[cfg(not(target_arch = "wasm32"))]
pub fn precompute_command(images: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut command = clip_lens_command();
    command.args(["precompute", "--weights"]).arg(fixture_path("model-openai.safetensors"));
    command.arg("--images").arg(images).arg("--words").arg(fixture_path("words.txt")).arg("--out").arg(out);
    command
}

/// A bundle precomputed from the fixture images with `args` (layers, k, ...) into a fresh
/// temporary folder named after `name`; panics with precompute's errors when it fails.
#[cfg(not(target_arch = "wasm32"))]
pub fn precomputed_bundle(name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("clip-lens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let result = precompute_command(&fixture_path("images"), &out).args(args).output().expect("clip-lens runs");
    assert!(result.status.success(), "precompute failed: {}", String::from_utf8_lossy(&result.stderr));
    out
}

/// Prints a line on the console (native) or the browser console (wasm).
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!($($arg)*);
        #[cfg(not(target_arch = "wasm32"))]
        println!($($arg)*);
    }};
}

/// The tolerance for model outputs: relative to the tensor's largest magnitude.
pub const MODEL_TOLERANCE: f32 = 1e-4;

/// A tensor read from a fixture file.
pub struct Expected {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// All tensors of `expected.safetensors` (integers converted to f32).
pub fn expected() -> HashMap<String, Expected> {
    let file = safetensors::SafeTensors::deserialize(EXPECTED).expect("fixture parses");
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
                }
                safetensors::Dtype::I32 => {
                    view.data().chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32).collect()
                }
                other => panic!("unexpected fixture dtype {other:?}"),
            };
            (name, Expected { shape: view.shape().to_vec(), values })
        })
        .collect()
}

/// The probe strings of `expected.json`.
pub fn probes() -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    json["probes"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

/// max |actual - expected| / max |expected|.
pub fn relative_deviation(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    let scale = expected.iter().fold(0f32, |m, x| m.max(x.abs())).max(f32::MIN_POSITIVE);
    let worst = actual.iter().zip(expected).fold(0f32, |m, (a, e)| m.max((a - e).abs()));
    if actual.iter().any(|a| !a.is_finite()) {
        return f32::INFINITY;
    }
    worst / scale
}

/// Loads the fixture model from `bytes` (either layout) onto `device`.
pub fn load(bytes: &[u8], towers: Towers, device: &Device) -> ClipModel {
    let weights = WeightFile::from_bytes(bytes.to_vec()).expect("fixture weights parse");
    let config = ClipConfig::from_hf_json(CONFIG_JSON).expect("fixture config parses");
    ClipModel::load(&weights, &config, towers, device).expect("fixture model loads")
}

/// The reference's preprocessed detail images `[6, 3, 64, 64]` on `device`.
pub fn reference_pixels(expected: &HashMap<String, Expected>, device: &Device) -> Tensor<4> {
    let pixels = &expected["pixels"];
    let shape: [usize; 4] = pixels.shape.clone().try_into().unwrap();
    Tensor::<4>::from_data(TensorData::new(pixels.values.clone(), shape), device)
}

/// The wgpu device for native GPU tests, or `None` (skip) when there is no adapter, unless
/// `CLIP_LENS_REQUIRE_GPU` is set, which makes a missing adapter a failure.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_gpu_or_skip(test: &str) -> Option<Device> {
    match clip_lens::device::gpu() {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var("CLIP_LENS_REQUIRE_GPU").is_err() => {
            eprintln!("skipping {test}: {e}");
            None
        }
        Err(e) => panic!("CLIP_LENS_REQUIRE_GPU is set but {e}"),
    }
}

/// Runs the image tower on the reference pixels and returns the relative deviation of
/// `image_embeds` and of every layer's `post_gelu.L`, by name.
pub async fn image_tower_deviations(bytes: &[u8], device: &Device) -> Vec<(String, f32)> {
    let expected = expected();
    let model = load(bytes, Towers::Vision, device);
    let vision = model.vision().unwrap();
    let input = reference_pixels(&expected, device);
    let layers: Vec<usize> = (0..vision.config.layers).collect();
    let output = vision.forward(input, &CaptureRequest::neurons(&layers)).unwrap();
    let mut deviations = vec![(
        "image_embeds".to_string(),
        relative_deviation(&read_f32(output.embeds).await.unwrap(), &expected["image_embeds"].values),
    )];
    for (layer, neurons) in output.captures.neurons {
        let name = format!("post_gelu.{layer}");
        assert_eq!(neurons.dims().to_vec(), expected[&name].shape, "{name} shape");
        deviations.push((name.clone(), relative_deviation(&read_f32(neurons).await.unwrap(), &expected[&name].values)));
    }
    deviations
}

/// Tokenizes the probes and checks them against `probe_tokens` exactly; returns the tokens.
pub fn check_probe_tokens() -> Vec<u32> {
    let expected = expected();
    let tokens = ClipTokenizer::new().tokenize_batch(&probes(), 77);
    let reference: Vec<u32> = expected["probe_tokens"].values.iter().map(|&t| t as u32).collect();
    for (i, (ours, theirs)) in tokens.chunks(77).zip(reference.chunks(77)).enumerate() {
        assert_eq!(ours, theirs, "tokens of probe {i} ({:?})", probes()[i]);
    }
    tokens
}

/// Runs the text tower on the probes and returns the relative deviation of `probe_text_embeds`.
pub async fn text_tower_deviation(bytes: &[u8], device: &Device) -> f32 {
    let tokens = check_probe_tokens();
    let model = load(bytes, Towers::Text, device);
    let embeds = model.text().unwrap().encode(&tokens).unwrap();
    relative_deviation(&read_f32(embeds).await.unwrap(), &expected()["probe_text_embeds"].values)
}

/// Asserts every deviation is within the model tolerance, printing them all first.
pub fn assert_within(label: &str, deviations: &[(String, f32)]) {
    for (name, deviation) in deviations {
        report!("{label}: {name}: relative deviation {deviation:.3e}");
    }
    for (name, deviation) in deviations {
        assert!(*deviation <= MODEL_TOLERANCE, "{label}: {name} deviates by {deviation:.3e} > {MODEL_TOLERANCE:e}");
    }
}

/// Mean and largest absolute difference between our preprocessing of each detail PNG and the
/// reference's `pixels`.
pub fn png_pixel_deviations() -> Vec<(f32, f32)> {
    let expected = expected();
    let per_image = 3 * 64 * 64;
    DETAIL_PNGS
        .iter()
        .zip(expected["pixels"].values.chunks(per_image))
        .map(|(png, reference)| {
            let ours = clip_lens::preprocess::preprocess_image(png, 64).expect("fixture PNG decodes").pixels;
            let diffs: Vec<f32> = ours.iter().zip(reference).map(|(a, b)| (a - b).abs()).collect();
            (diffs.iter().sum::<f32>() / diffs.len() as f32, diffs.iter().fold(0f32, |m, &d| m.max(d)))
        })
        .collect()
}

/// Asserts the fixture's pixel tolerance: mean absolute difference below 0.02, largest below 0.25.
pub fn assert_pixels_within(label: &str, deviations: &[(f32, f32)]) {
    for (i, (mean, max)) in deviations.iter().enumerate() {
        report!("{label}: pixels of img{i:03}.png: mean abs diff {mean:.2e}, max {max:.2e}");
        assert!(*mean < 0.02 && *max < 0.25, "{label}: img{i:03}.png pixels deviate (mean {mean}, max {max})");
    }
}

/// Second-order effects of layers 0, 1, 2 for the reference pixels, with the factors in both
/// forms (per head and compact): relative deviation from `second_order.L`, by name and form.
pub async fn second_order_deviations(bytes: &[u8], device: &Device) -> Vec<(String, f32)> {
    let expected = expected();
    let model = load(bytes, Towers::Vision, device);
    let vision = model.vision().unwrap();
    let input = reference_pixels(&expected, device);
    let layers = [0usize, 1, 2];
    let output = vision.forward(input, &CaptureRequest::for_lens(&layers)).unwrap();
    let mut deviations = Vec::new();
    for (layer, form) in layers.into_iter().flat_map(|l| [(l, FactorForm::PerHead), (l, FactorForm::Compact)]) {
        let factors = clip_lens::lens::LensFactors::with_form(vision, layer, form).unwrap();
        assert_eq!(factors.form(), form);
        let effects = clip_lens::lens::second_order_effects(vision, &factors, &output).unwrap();
        let name = format!("second_order.{layer}");
        assert_eq!(effects.dims().to_vec(), expected[&name].shape, "{name} shape");
        deviations.push((
            format!("{name} ({form:?})"),
            relative_deviation(&read_f32(effects).await.unwrap(), &expected[&name].values),
        ));
    }
    deviations
}

/// All 48 preprocessed fixture images, `[48, 3, 64, 64]`.
pub const PIXELS: &[u8] = fixture!("pixels.safetensors");

/// Second-order effects `[B, N, D]` of `layers` for each batch of `batch` fixture images, in order.
pub async fn effect_batches(bytes: &[u8], device: &Device, layers: &[usize], batch: usize) -> Vec<Vec<Vec<f32>>> {
    let model = load(bytes, Towers::Vision, device);
    let vision = model.vision().unwrap();
    let file = WeightFile::from_bytes(PIXELS.to_vec()).unwrap();
    let (pixels, shape) = file.tensor_any_shape("pixels").unwrap();
    let per_image = shape[1..].iter().product::<usize>();
    let factors: Vec<_> = layers.iter().map(|&l| clip_lens::lens::LensFactors::new(vision, l).unwrap()).collect();
    let mut batches = Vec::new();
    for chunk in pixels.chunks(per_image * batch) {
        let input =
            Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [chunk.len() / per_image, 3, 64, 64]), device);
        let output = vision.forward(input, &CaptureRequest::for_lens(layers)).unwrap();
        let mut per_layer = Vec::new();
        for f in &factors {
            per_layer.push(read_f32(clip_lens::lens::second_order_effects(vision, f, &output).unwrap()).await.unwrap());
        }
        batches.push(per_layer);
    }
    batches
}

/// Streaming statistics of layer index `i` of `layers` from effect batches.
pub fn statistics(
    batches: &[Vec<Vec<f32>>],
    i: usize,
    neurons: usize,
    dim: usize,
    k: usize,
) -> clip_lens::lens::NeuronStatistics {
    let mut mean = clip_lens::lens::MeanAccumulator::new(neurons, dim);
    batches.iter().for_each(|b| mean.add(&b[i]).unwrap());
    let mut top = clip_lens::lens::TopKAccumulator::new(mean.mean().unwrap(), neurons, dim, k).unwrap();
    batches.iter().for_each(|b| top.add(&b[i]).unwrap());
    top.finish().unwrap()
}

/// Largest deviation of unit directions compared up to sign (the sign is tested, with the
/// reference's tie caveat, in tests/it/lens.rs).
pub fn sign_free_deviation(ours: &[f32], theirs: &[f32], dim: usize) -> f32 {
    ours.chunks(dim)
        .zip(theirs.chunks(dim))
        .map(|(a, b)| {
            let sign = if a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() < 0.0 { -1.0 } else { 1.0 };
            a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((sign * x - y).abs()))
        })
        .fold(0f32, f32::max)
}

/// Checks a bundle over the 48 fixture images against the reference: each layer's mean, norms
/// and directions (up to sign) within `tolerance` relative; `label` names the run in the report.
pub fn check_bundle_statistics(bundle: &clip_lens::bundle::Bundle, label: &str, tolerance: f32) {
    let expected = expected();
    for layer in 0..3usize {
        let lens = &bundle.layers[&layer];
        let mean = relative_deviation(&lens.mean, &expected[&format!("mean.{layer}")].values);
        let norms = relative_deviation(&lens.norms, &expected[&format!("norms.{layer}")].values);
        let directions = sign_free_deviation(&lens.direction, &expected[&format!("pca.{layer}")].values, 32);
        report!("{label} layer {layer}: mean {mean:.2e}, norms {norms:.2e}, directions (up to sign) {directions:.2e}");
        assert!(mean < tolerance && norms < tolerance && directions < tolerance, "{label} layer {layer}");
    }
}

/// Relative deviations of `mean.L`, `pca.L`, `norms.L` over the 48 fixture images.
pub async fn statistics_deviations(bytes: &[u8], device: &Device, batch: usize) -> Vec<(String, f32)> {
    let expected = expected();
    let layers = [0usize, 1, 2];
    let batches = effect_batches(bytes, device, &layers, batch).await;
    let mut deviations = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let stats = statistics(&batches, i, 256, 32, 6);
        deviations.push((
            format!("mean.{layer}"),
            relative_deviation(&stats.mean, &expected[&format!("mean.{layer}")].values),
        ));
        deviations
            .push((format!("pca.{layer}"), direction_deviation(&stats, &expected[&format!("pca.{layer}")].values)));
        deviations.push((
            format!("norms.{layer}"),
            relative_deviation(&stats.norms, &expected[&format!("norms.{layer}")].values),
        ));
    }
    deviations
}

/// Relative deviation of the directions, where for a tied sign vote (exactly k/2 positive
/// projections: the reference's sign is then LAPACK's arbitrary one) either sign counts.
pub fn direction_deviation(stats: &clip_lens::lens::NeuronStatistics, expected: &[f32]) -> f32 {
    let d = stats.dim;
    let mut adjusted = stats.directions.clone();
    let mut ties = 0;
    for n in 0..stats.neurons {
        if 2 * stats.sign_votes[n] == stats.k {
            ties += 1;
            let ours = &stats.directions[n * d..(n + 1) * d];
            let theirs = &expected[n * d..(n + 1) * d];
            if ours.iter().zip(theirs).map(|(a, b)| a * b).sum::<f32>() < 0.0 {
                adjusted[n * d..(n + 1) * d].iter_mut().for_each(|x| *x = -*x);
            }
        }
    }
    report!("{ties} of {} neurons have a tied sign vote", stats.neurons);
    relative_deviation(&adjusted, expected)
}

/// The fixture's word list.
pub const WORDS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-a/words.txt"));

/// Embeds the fixture words with the text tower: `100 x` normalised, `[400, 32]`; returns the
/// relative deviations of `word_embeds` and `dictionary` and the dictionary itself.
pub async fn dictionary_deviations(bytes: &[u8], device: &Device) -> (Vec<(String, f32)>, clip_lens::lens::Dictionary) {
    let expected = expected();
    let model = load(bytes, Towers::Text, device);
    let words: Vec<&str> = WORDS.lines().collect();
    let tokens = ClipTokenizer::new().tokenize_batch(&words, 77);
    let raw = read_f32(model.text().unwrap().encode(&tokens).unwrap()).await.unwrap();
    let embeds = clip_lens::lens::scaled_unit_rows(&raw, 32);
    let dictionary = clip_lens::lens::Dictionary::from_word_embeddings(&embeds, 32).unwrap();
    let deviations = vec![
        ("word_embeds".to_string(), relative_deviation(&embeds, &expected["word_embeds"].values)),
        ("dictionary".to_string(), relative_deviation(&dictionary.atoms, &expected["dictionary"].values)),
    ];
    (deviations, dictionary)
}

/// OMP (with `search`) of the reference directions `pca.L` over the reference dictionary with
/// 8 components: per layer, the number of neurons whose support differs and the worst
/// coefficient deviation relative to the largest coefficient of the layer.
pub async fn omp_against_reference(search: clip_lens::lens::AtomSearch<'_>) -> Vec<(usize, usize, f32)> {
    let expected = expected();
    let dictionary = clip_lens::lens::Dictionary { atoms: expected["dictionary"].values.clone(), len: 400, dim: 32 };
    let mut results = Vec::new();
    for layer in 0..3 {
        let codes = clip_lens::lens::orthogonal_matching_pursuit_with(
            &dictionary,
            &expected[&format!("pca.{layer}")].values,
            8,
            search,
        )
        .await
        .unwrap();
        results.push({
            let reference = &expected[&format!("omp.{layer}")].values;
            let scale = reference.iter().fold(0f32, |m, x| m.max(x.abs()));
            let mut support_mismatches = 0;
            let mut worst = 0f32;
            for (n, code) in codes.iter().enumerate() {
                let row = &reference[n * 400..(n + 1) * 400];
                let mut dense = vec![0f32; 400];
                code.indices.iter().zip(&code.coefficients).for_each(|(&i, &c)| dense[i] = c);
                if dense.iter().zip(row).any(|(a, b)| (*a != 0.0) != (*b != 0.0)) {
                    support_mismatches += 1;
                }
                worst = dense.iter().zip(row).fold(worst, |m, (a, b)| m.max((a - b).abs() / scale));
            }
            (layer, support_mismatches, worst)
        });
    }
    results
}

/// The segmentation settings of `expected.json`: concept, layers, top neurons and the
/// reference's chosen `[neuron, layer]` pairs, as listed (the `argsort` tail: best last).
pub fn segmentation_settings() -> (String, Vec<usize>, usize, Vec<[usize; 2]>) {
    let json: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    let seg = &json["segmentation"];
    let layers = seg["layers"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
    let pairs = seg["neurons_layer_index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize])
        .collect();
    (seg["concept"].as_str().unwrap().to_string(), layers, seg["top_neurons"].as_u64().unwrap() as usize, pairs)
}

/// Zero-shot segmentation of the six detail images (reference pixels) for `expected.json`'s
/// concept (the model's normalised text embedding) with the reference directions `pca.L`:
/// our selected `[neuron, layer]` pairs, best first, and the relative deviation of our
/// heatmaps from `seg_heatmap`.
pub async fn segmentation_golden(bytes: &[u8], device: &Device) -> (Vec<[usize; 2]>, f32) {
    use clip_lens::apps::segment;
    let expected = expected();
    let (concept, layers, k, _) = segmentation_settings();
    let model = load(bytes, Towers::Both, device);
    let e =
        clip_lens::apps::classify::text_concept(model.text().unwrap(), &ClipTokenizer::new(), &concept).await.unwrap();
    let directions: Vec<(usize, &[f32])> =
        layers.iter().map(|&l| (l, expected[&format!("pca.{l}")].values.as_slice())).collect();
    let selected = segment::top_neurons(&directions, &e, k).unwrap();
    let (maps, _) =
        segment::segment(model.vision().unwrap(), reference_pixels(&expected, device), &selected).await.unwrap();
    assert_eq!(vec![maps.batch, maps.size, maps.size], expected["seg_heatmap"].shape, "seg_heatmap shape");
    let pairs = selected.iter().map(|n| [n.neuron, n.layer]).collect();
    (pairs, relative_deviation(&maps.values, &expected["seg_heatmap"].values))
}

/// The reference's lens data of `layer` as a bundle layer: `mean.L`, `pca.L`, `norms.L` and
/// `omp.L` (dense `[256, 400]`, turned into 8 sorted components per neuron).
pub fn reference_layer_lens(expected: &HashMap<String, Expected>, layer: usize) -> clip_lens::bundle::LayerLens {
    let omp = &expected[&format!("omp.{layer}")].values;
    let (mut decomposition_index, mut decomposition_coef) = (Vec::new(), Vec::new());
    for row in omp.chunks(400) {
        let mut nonzero: Vec<(usize, f32)> = row.iter().copied().enumerate().filter(|(_, c)| *c != 0.0).collect();
        nonzero.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        nonzero.resize(8, (usize::MAX, 0.0));
        decomposition_index.extend(nonzero.iter().map(|&(i, _)| if i == usize::MAX { -1 } else { i as i32 }));
        decomposition_coef.extend(nonzero.iter().map(|&(_, c)| c));
    }
    clip_lens::bundle::LayerLens {
        mean: expected[&format!("mean.{layer}")].values.clone(),
        direction: expected[&format!("pca.{layer}")].values.clone(),
        norms: expected[&format!("norms.{layer}")].values.clone(),
        decomposition_index,
        decomposition_coef,
        ..Default::default()
    }
}

/// Concept discovery on the six detail images (layer 1, with the reference's lens data and
/// our effects) against `expected.json`: the same significant neurons, the same top words, and
/// the largest score deviation relative to each image's best score.
pub async fn check_concept_discovery(bytes: &[u8], device: &Device) -> f32 {
    use clip_lens::apps::concepts::discover_concepts;
    let expected = expected();
    let json: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    let discovery = &json["concept_discovery"];
    let layer = discovery["layer"].as_u64().unwrap() as usize;
    let lens = reference_layer_lens(&expected, layer);
    let model = load(bytes, Towers::Vision, device);
    let vision = model.vision().unwrap();
    let output = vision.forward(reference_pixels(&expected, device), &CaptureRequest::for_lens(&[layer])).unwrap();
    let factors = clip_lens::lens::LensFactors::new(vision, layer).unwrap();
    let mean = Tensor::<2>::from_data(TensorData::new(lens.mean.clone(), [256, 32]), device);
    let norms =
        read_f32(clip_lens::lens::centred_effect_norms(vision, &factors, &output, &mean).unwrap()).await.unwrap();
    let words: Vec<String> = WORDS.lines().map(str::to_string).collect();
    let mut worst = 0f32;
    for (i, image) in json["detail_images"].as_array().unwrap().iter().enumerate() {
        let reference = &discovery["results"][image.as_str().unwrap()];
        let reference_words = reference["top_words"].as_array().unwrap();
        let concepts =
            discover_concepts(layer, &norms[i * 256..(i + 1) * 256], &lens, 6, 8, &words, reference_words.len())
                .unwrap();
        let significant: Vec<usize> =
            reference["significant_neurons"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap() as usize).collect();
        assert_eq!(concepts.significant_neurons, significant, "{image}: significant neurons");
        let best = reference_words[0][1].as_f64().unwrap() as f32;
        for ((word, score), reference) in concepts.words.iter().zip(reference_words) {
            assert_eq!(word, reference[0].as_str().unwrap(), "{image}: words in order");
            worst = worst.max((score - reference[1].as_f64().unwrap() as f32).abs() / best.abs());
        }
    }
    report!("concept discovery: same neurons and words on 6 images, scores within {worst:.2e} of the best score");
    worst
}

/// Asserts the segmentation golden result: the selected neurons are the reference's (which
/// `expected.json` lists in NumPy `argsort` order, i.e. the best last) and the heatmaps are
/// within the model tolerance.
pub fn assert_segmentation_matches(label: &str, (pairs, deviation): (Vec<[usize; 2]>, f32)) {
    let (_, _, _, reference) = segmentation_settings();
    report!("{label}: seg_heatmap: relative deviation {deviation:.3e}");
    let best_last: Vec<[usize; 2]> = pairs.into_iter().rev().collect();
    assert_eq!(best_last, reference, "{label}: selected [neuron, layer] pairs, best last");
    assert!(deviation <= MODEL_TOLERANCE, "{label}: seg_heatmap deviates by {deviation:.3e} > {MODEL_TOLERANCE:e}");
}

/// Inserts an APP1 Exif segment with Orientation = `orientation` right
/// after the JPEG's SOI marker.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II"); // little-endian
    tiff.extend_from_slice(&42u16.to_le_bytes());
    tiff.extend_from_slice(&8u32.to_le_bytes()); // offset of IFD0
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&u32::from(orientation).to_le_bytes()); // value, padded
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    assert_eq!(out, [0xFF, 0xD8]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The fidelity of every neuron's words in `layer` (0-2) by hand from the reference's own
/// arrays: the cosine of `pca.L`'s row with its dense `omp.L` coefficients times the
/// reference's dictionary (400 words, 32 dimensions, 256 neurons).
pub fn fidelity_by_hand(layer: usize) -> Vec<f64> {
    let expected = expected();
    let (dictionary, words, dim) = (&expected["dictionary"].values, 400, 32);
    let (directions, codes) = (&expected[&format!("pca.{layer}")].values, &expected[&format!("omp.{layer}")].values);
    (0..256)
        .map(|n| {
            let r = &directions[n * dim..(n + 1) * dim];
            let mut reconstruction = vec![0f64; dim];
            for w in 0..words {
                let c = codes[n * words + w] as f64;
                (0..dim).for_each(|d| reconstruction[d] += c * dictionary[w * dim + d] as f64);
            }
            let dot: f64 = (0..dim).map(|d| r[d] as f64 * reconstruction[d]).sum();
            let norms = (r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>()
                * reconstruction.iter().map(|x| x * x).sum::<f64>())
            .sqrt();
            dot / norms
        })
        .collect()
}
