//! `manifest.json`: what a bundle says of itself (its model, sizes, words, classes, images and
//! top images, and which statistics it holds), and the checks that let its readers rely on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bundle_error;
use crate::error::Result;
use crate::ClipConfig;

/// `manifest.json`. (`Default`: for the optional fields of bundles built in code.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// A name for the model (e.g. the weights' file name).
    pub model_name: String,
    /// The model configuration as a Hugging Face `CLIPConfig` JSON object.
    pub model_config: serde_json::Value,
    /// sha256 of the weight file, lower-case hex.
    pub weights_sha256: String,
    /// The lens layers.
    pub layers: Vec<usize>,
    /// Neurons per layer.
    pub neurons: usize,
    /// Embedding dimension.
    pub embed_dim: usize,
    /// Top images kept per neuron.
    pub top_k: usize,
    /// OMP components per neuron.
    pub components: usize,
    /// The word list files the dictionary came from.
    pub word_sources: Vec<String>,
    /// The dictionary's words, in `words.embeds` order.
    pub words: Vec<String>,
    /// The zero-shot classes, in `classes.embeds` order.
    pub classes: Vec<String>,
    /// The prompt templates each class's embedding averages: 80 (CLIP's; formats 2 and 3) or 1
    /// ("a photo of a {}.", the quick setting of a text side computed in the page).
    #[serde(default = "clip_templates")]
    pub class_templates: usize,
    /// The images statistics were computed over (relative paths), in id order.
    pub images: Vec<String>,
    /// Images skipped because they could not be read or decoded.
    pub skipped_images: Vec<String>,
    /// Per layer (as a string key), per neuron: the ids of its top-k images, largest norm first.
    pub top_images: BTreeMap<String, Vec<Vec<usize>>>,
    /// The side in pixels of the thumbnails in `thumbnails/<image id>.jpg`; 0 when the bundle
    /// has none.
    #[serde(default)]
    pub thumbnail_size: u32,
    /// Histogram bins per neuron (0: the bundle has no distributions, as in format 2).
    #[serde(default)]
    pub histogram_bins: usize,
    /// The percentiles kept per neuron, in `layer.L.percentiles` order.
    #[serde(default)]
    pub percentiles: Vec<f32>,
    /// The typical images' bands as histogram bins: band b holds bins
    /// `typical_band_bins[b]..typical_band_bins[b + 1]` (empty: no typical images, before format 5).
    #[serde(default)]
    pub typical_band_bins: Vec<usize>,
    /// Typical images kept per band.
    #[serde(default)]
    pub typical_per_band: usize,
    /// Whether `layer.L.percentiles` are exact (from every image's norm; format 5, within
    /// `precompute`'s budget), else interpolated in the histogram below the top k.
    #[serde(default)]
    pub exact_percentiles: bool,
}

/// The `class_templates` of a manifest that does not say (formats 2 and 3): CLIP's 80.
fn clip_templates() -> usize {
    80
}

/// The later layers and heads per layer of the bundle's model after `layer`: the columns of
/// `layer.L.heads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaterHeads {
    /// The later layers, in order.
    pub layers: Vec<usize>,
    /// Heads per layer.
    pub heads: usize,
}

impl LaterHeads {
    /// Columns: later layers x heads.
    pub fn count(&self) -> usize {
        self.layers.len() * self.heads
    }
}

impl Manifest {
    /// The later layers and heads of the manifest's model after `layer`: the columns of
    /// `layer.L.heads`.
    pub fn later_heads(&self, layer: usize) -> Result<LaterHeads> {
        let config = ClipConfig::from_hf_json(&self.model_config.to_string())
            .map_err(|e| bundle_error(format!("manifest.json: model_config: {e}")))?;
        let vision = &config.vision;
        Ok(LaterHeads { layers: (layer + 1..vision.layers).collect(), heads: vision.heads })
    }
}

/// The manifest's sizes are ones the readers can rely on: at least one layer (each listed
/// once), neuron, embedding dimension, top image, component, word and class. (With no neurons
/// or words, the tensors' shapes would hold no values and so could not back the other sizes.)
pub(super) fn check_sizes(manifest: &Manifest) -> Result<()> {
    let m = manifest;
    let counts = [
        ("layers", m.layers.len()),
        ("neurons", m.neurons),
        ("embed_dim", m.embed_dim),
        ("top_k", m.top_k),
        ("components", m.components),
        ("words", m.words.len()),
        ("classes", m.classes.len()),
    ];
    if let Some((name, _)) = counts.iter().find(|(_, count)| *count == 0) {
        return Err(bundle_error(format!("manifest.json: `{name}` is empty or zero")));
    }
    if m.histogram_bins > 0 && (m.percentiles.is_empty() || m.percentiles.iter().any(|p| !(*p > 0.0 && *p <= 100.0))) {
        return Err(bundle_error(
            "manifest.json: `percentiles` must list values in (0, 100] when `histogram_bins` is set".into(),
        ));
    }
    let mut layers = m.layers.clone();
    layers.sort_unstable();
    if let Some(pair) = layers.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(bundle_error(format!("manifest.json lists layer {} twice", pair[0])));
    }
    Ok(())
}

/// Every listed layer has `top_images` for each neuron, at most k each, all naming images of
/// the manifest.
pub(super) fn check_top_images(manifest: &Manifest) -> Result<()> {
    for layer in &manifest.layers {
        let Some(lists) = manifest.top_images.get(&layer.to_string()) else { continue };
        if lists.len() != manifest.neurons || lists.iter().any(|ids| ids.len() > manifest.top_k) {
            return Err(bundle_error(format!(
                "top_images of layer {layer} must list at most {} images for each of the {} neurons",
                manifest.top_k, manifest.neurons
            )));
        }
        if let Some(bad) = lists.iter().flatten().find(|&&id| id >= manifest.images.len()) {
            return Err(bundle_error(format!(
                "top_images of layer {layer} names image {bad}, outside the {} images",
                manifest.images.len()
            )));
        }
    }
    Ok(())
}
