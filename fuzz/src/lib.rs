//! The bodies of the fuzz targets, one per parser of untrusted bytes. Each feeds arbitrary
//! bytes to its parser the way the page and the CLI do, then uses what the parser accepted as
//! they would. Returning is a pass; a panic, an abort or a sanitizer report is a finding.
//!
//! The same functions run in three places: the cargo-fuzz targets (`fuzz_targets/`), the
//! replay of kept findings (`regressions/<target>/`, in CI), and the crate's stable tests
//! (`tests/it/fuzz.rs` includes this file: its mutation fuzzing and the same replay).

use clip_lens::bundle::{Bundle, Storage};
use clip_lens::convert::{split_towers, WeightDtype};
use clip_lens::preprocess::preprocess_image;
use clip_lens::{ClipConfig, WeightFile};

/// The byte between `manifest.json` and `lens.safetensors` in a [`bundle`] input (JSON text
/// never holds a raw NUL).
pub const BUNDLE_SEPARATOR: u8 = 0;

/// The side of the model input the [`image`] target preprocesses to.
pub const IMAGE_SIZE: u32 = 24;

/// A [`bundle`] input made of a bundle's two files.
pub fn bundle_input(manifest_json: &str, tensors: &[u8]) -> Vec<u8> {
    let mut input = manifest_json.as_bytes().to_vec();
    input.push(BUNDLE_SEPARATOR);
    input.extend_from_slice(tensors);
    input
}

/// A safetensors weight file (a URL or a picked file in the page, a path in the CLI): the
/// header, the layout and configuration inferred from it, every tensor read as the loader
/// reads it (f32 and i32, with the shape the header states), the buffer-limit check and the
/// tower split of `clip-lens convert`.
pub fn weights(data: &[u8]) {
    let Ok(file) = WeightFile::from_bytes(data.to_vec()) else { return };
    let _ = file.check_buffer_limit(1 << 20);
    let _ = (file.layout(), file.has_vision(), file.has_text());
    let _ = ClipConfig::infer(&file);
    let names: Vec<String> = file.names().map(str::to_string).collect();
    for name in &names {
        let shape = file.shape(name).map(<[usize]>::to_vec).unwrap_or_default();
        let _ = file.tensor(name, &shape);
        let _ = file.tensor_i32(name, &shape);
    }
    let _ = split_towers(&file, WeightDtype::F16);
}

/// A bundle (two downloaded or picked files): `manifest.json`, a [`BUNDLE_SEPARATOR`], then
/// `lens.safetensors`. An accepted bundle is then used as the page and the CLI use it: its
/// model configuration checked against the model, neuron cards (in and out of range), word
/// search, text search over the directions, and written back.
pub fn bundle(data: &[u8]) {
    let split = data.iter().position(|&b| b == BUNDLE_SEPARATOR).unwrap_or(data.len());
    let manifest = String::from_utf8_lossy(&data[..split]);
    let tensors = data.get(split + 1..).unwrap_or_default().to_vec();
    let Ok(bundle) = Bundle::from_parts(&manifest, tensors) else { return };
    let m = &bundle.manifest;
    if let Ok(config) = ClipConfig::from_hf_json(&m.model_config.to_string()) {
        let _ = bundle.check_model(&config);
    }
    let _ = bundle.check_weights(&"0".repeat(64));
    for &layer in &m.layers {
        for neuron in [0, m.neurons / 2, m.neurons.saturating_sub(1), m.neurons] {
            let _ = bundle.describe(layer, neuron);
        }
    }
    let _ = bundle.describe(usize::MAX, 0);
    if let Some(word) = m.words.first() {
        let _ = bundle.neurons_with_word(word);
    }
    // The embedding dimension is backed by the tensors once the bundle is accepted.
    let _ = bundle.neurons_matching(&vec![1.0; m.embed_dim], 3);
    let _ = bundle.tensors(Storage::F16);
    let _ = bundle.manifest_json();
}

/// An encoded image (a picked, dropped or pasted file, a camera frame, a URL): decoded with
/// its EXIF orientation, within the decoder's limits, and preprocessed to a model input.
pub fn image(data: &[u8]) {
    if let Ok(input) = preprocess_image(data, IMAGE_SIZE) {
        let _ = input.geometry.crop_box_in_original();
    }
}
