//! The bundle: everything the page needs from a `precompute` run, in a directory with
//! `manifest.json` and `lens.safetensors` (readable from Python with `safetensors`).
//!
//! Tensors (f32 unless noted), for each lens layer L:
//! `layer.L.mean` `[N,D]`, `layer.L.direction` `[N,D]` (r_n), `layer.L.norms` `[N,k]` (the k
//! largest centred norms, ascending: column 0 is the significance threshold),
//! `layer.L.decomposition.index` `[N,m]` (i32 word index, -1 pads a code OMP ended early) and
//! `layer.L.decomposition.coef` `[N,m]` (sorted by |coef| descending); and `words.embeds` `[V,D]`
//! (100 x normalised text embeddings), `classes.embeds` `[C,D]` (unit-norm zero-shot
//! classifier: templates averaged). Format 3 adds, when `histogram_bins` > 0, each neuron's
//! distribution of centred norms over the images (see [`crate::lens::histogram`]):
//! `layer.L.histogram.edges` `[N,B+1]`, `layer.L.histogram.counts` `[N,B]` (i32) and
//! `layer.L.percentiles` `[N,P]` (the manifest's `percentiles`); format 2 still reads, without
//! them. Format 5 adds, where the run computed them, each neuron's heads `layer.L.heads`
//! `[N,K]` (what each head after L carries of its effect along r_n, K = later layers x heads,
//! layer-major), the fidelity of its words `layer.L.fidelity` `[N]`, its nearest neurons
//! `layer.L.neighbours` `[N,8]` (i32), its place on the layer's map `layer.L.map` `[N,2]` and its
//! typical images `layer.L.typical` `[N,bands x m]` (i32 image ids; thumbnails too); see
//! [`LayerLens`]. With [`Storage::F16`] the means, directions and embeddings
//! are stored as f16 (readers convert to f32). When the images were available, `thumbnails/`
//! holds `<image id>.jpg` (a small centre crop) for every image that is in some neuron's top k
//! or among its typical images.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tensor_file::{serialize, NamedTensor};
use crate::vector;

mod manifest;
mod statistics;

use manifest::{check_sizes, check_top_images};
pub use manifest::{LaterHeads, Manifest};
pub use statistics::NEIGHBOURS;
use statistics::{read_distributions, read_format_5, write_distributions, write_format_5};

/// A neuron whose decomposition holds a word: `(layer, neuron, coefficient)`.
pub type WordUse = (usize, usize, f32);
use crate::{ClipConfig, WeightFile};

/// The bundle format this code writes.
pub const FORMAT_VERSION: u32 = 5;

/// The formats this code reads (2: without the per-neuron distributions; 3: without
/// `class_templates`, always 80; 4: without the heads, the fidelity and the neighbours).
pub const READABLE_VERSIONS: [u32; 4] = [2, 3, 4, 5];

/// How the large tensors (means, directions, word and class embeddings) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats: half the size, ~1e-3 relative rounding.
    F16,
}

/// One layer's lens data. (`Default`: for the optional statistics of bundles built in code.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerLens {
    /// Mean effect `[N,D]`.
    pub mean: Vec<f32>,
    /// Directions r_n `[N,D]`.
    pub direction: Vec<f32>,
    /// Top-k centred norms, ascending, `[N,k]`.
    pub norms: Vec<f32>,
    /// Word indices `[N,m]`, -1 for padding.
    pub decomposition_index: Vec<i32>,
    /// Coefficients `[N,m]`.
    pub decomposition_coef: Vec<f32>,
    /// Each neuron's distribution of centred norms (none in format 2).
    pub distributions: Option<Distributions>,
    /// Per neuron, what each later head carries of its effect along r_n: the mean over its top
    /// k of `<phi_{n,l,h}(I), r_n>`, `[N, K]`, K = later layers x heads, layer-major (format 5).
    pub heads: Option<Vec<f32>>,
    /// Per neuron, the fidelity of its words: the cosine between r_n and its words'
    /// reconstruction ([`crate::lens::word_fidelity`]), `[N]` (format 5; older bundles compute
    /// it on load).
    pub fidelity: Option<Vec<f32>>,
    /// Per neuron, the [`NEIGHBOURS`] neurons of the layer nearest by the cosine of their r_n,
    /// nearest first, `[N, 8]` (format 5; -1 pads a layer of fewer neurons).
    pub neighbours: Option<Vec<i32>>,
    /// Each neuron's place on the layer's map (UMAP of the cosines of r_n,
    /// [`crate::lens::map`]), `[N, 2]` (format 5).
    pub map: Option<Vec<f32>>,
    /// Per neuron, a few images from each band of its distribution (the manifest's
    /// `typical_band_bins`, `typical_per_band`), band by band, `[N, bands x m]` image ids (-1
    /// pads; format 5).
    pub typical: Option<Vec<i32>>,
}

impl LayerLens {
    /// Each neuron's significance threshold `[N]`: its k-th largest centred norm (column 0 of
    /// `norms`, `[N, k]`).
    pub fn thresholds(&self, k: usize) -> Vec<f32> {
        self.norms.iter().step_by(k.max(1)).copied().collect()
    }
}

/// One layer's distributions of centred norms (format 3; `crate::lens::histogram` gathers
/// them).
#[derive(Debug, Clone, PartialEq)]
pub struct Distributions {
    /// Bin edges `[N, bins + 1]`, ascending.
    pub edges: Vec<f32>,
    /// Images per bin `[N, bins]`.
    pub counts: Vec<u64>,
    /// The manifest's percentiles `[N, P]`.
    pub percentiles: Vec<f32>,
}

/// A loaded bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    /// Lens data by layer.
    pub layers: BTreeMap<usize, LayerLens>,
    /// 100 x normalised word embeddings `[V,D]`.
    pub word_embeds: Vec<f32>,
    /// Unit-norm class embeddings `[C,D]`.
    pub class_embeds: Vec<f32>,
}

/// sha256 of bytes, lower-case hex.
///
/// Fed in chunks of [`HASH_CHUNK`] bytes, each its own call of the block function: a browser
/// runs a WebAssembly function in its baseline code until the call returns (V8 has no
/// on-stack replacement for WebAssembly), so one call over a whole checkpoint hashed all of it
/// at the baseline code's speed (most of the first engine's load time: `docs/performance.md`);
/// in chunks the optimised code takes over after the first few.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for chunk in bytes.chunks(HASH_CHUNK) {
        hasher.update(chunk);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes hashed per call of the block function ([`sha256_hex`]).
const HASH_CHUNK: usize = 1 << 16;

impl Bundle {
    /// The tensors file's bytes.
    pub fn tensors(&self, storage: Storage) -> Result<Vec<u8>> {
        let m = &self.manifest;
        let (n, d, k, c) = (m.neurons, m.embed_dim, m.top_k, m.components);
        let large = |name: String, shape: &[usize], values: &[f32]| match storage {
            Storage::F32 => NamedTensor::f32(name, shape, values.to_vec()),
            Storage::F16 => NamedTensor::f16(name, shape, values),
        };
        let mut tensors = Vec::new();
        for (layer, lens) in &self.layers {
            tensors.push(large(format!("layer.{layer}.mean"), &[n, d], &lens.mean));
            tensors.push(large(format!("layer.{layer}.direction"), &[n, d], &lens.direction));
            tensors.push(NamedTensor::f32(format!("layer.{layer}.norms"), &[n, k], lens.norms.clone()));
            tensors.push(NamedTensor::i32(
                format!("layer.{layer}.decomposition.index"),
                &[n, c],
                lens.decomposition_index.clone(),
            ));
            tensors.push(NamedTensor::f32(
                format!("layer.{layer}.decomposition.coef"),
                &[n, c],
                lens.decomposition_coef.clone(),
            ));
            if let Some(d) = &lens.distributions {
                tensors.extend(write_distributions(d, m, *layer));
            }
            tensors.extend(write_format_5(lens, m, *layer));
        }
        tensors.push(large("words.embeds".into(), &[m.words.len(), d], &self.word_embeds));
        tensors.push(large("classes.embeds".into(), &[m.classes.len(), d], &self.class_embeds));
        serialize(&tensors)
    }

    /// The manifest's JSON text.
    pub fn manifest_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.manifest).map_err(|e| Error::InvalidInput(format!("manifest: {e}")))
    }

    /// Reads a bundle from its two files' contents, checking the version, every tensor's shape
    /// and the word indices.
    pub fn from_parts(manifest_json: &str, tensors: Vec<u8>) -> Result<Self> {
        let version: serde_json::Value =
            serde_json::from_str(manifest_json).map_err(|e| bundle_error(format!("manifest.json is not JSON: {e}")))?;
        match version.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if READABLE_VERSIONS.iter().any(|&r| r as u64 == v) => {}
            Some(v) => return Err(bundle_error(format!("bundle format version {v}, this build reads versions {READABLE_VERSIONS:?}: rebuild the bundle with `clip-lens precompute`"))),
            None => return Err(bundle_error("manifest.json has no format_version".into())),
        }
        let mut manifest: Manifest =
            serde_json::from_value(version).map_err(|e| bundle_error(format!("manifest.json: {e}")))?;
        // Before format 5 every percentile below the top k was interpolated.
        manifest.exact_percentiles &= manifest.format_version >= 5;
        check_sizes(&manifest)?;
        let file = WeightFile::from_bytes(tensors).map_err(|e| bundle_error(format!("lens.safetensors: {e}")))?;
        let (n, d, k, c) = (manifest.neurons, manifest.embed_dim, manifest.top_k, manifest.components);
        let f32s = |name: &str, shape: &[usize]| file.tensor(name, shape).map_err(|e| bundle_error(e.to_string()));
        let mut layers = BTreeMap::new();
        for &layer in &manifest.layers {
            let name = |part: &str| format!("layer.{layer}.{part}");
            let index =
                file.tensor_i32(&name("decomposition.index"), &[n, c]).map_err(|e| bundle_error(e.to_string()))?;
            if let Some(bad) = index.iter().find(|&&i| i < -1 || i >= manifest.words.len() as i32) {
                return Err(bundle_error(format!(
                    "{} holds word index {bad}, outside the {} words",
                    name("decomposition.index"),
                    manifest.words.len()
                )));
            }
            let mut lens = LayerLens {
                mean: f32s(&name("mean"), &[n, d])?,
                direction: f32s(&name("direction"), &[n, d])?,
                norms: f32s(&name("norms"), &[n, k])?,
                decomposition_index: index,
                decomposition_coef: f32s(&name("decomposition.coef"), &[n, c])?,
                distributions: read_distributions(&file, &manifest, layer)?,
                ..LayerLens::default()
            };
            if manifest.format_version >= 5 {
                read_format_5(&file, &manifest, layer, &mut lens)?;
            }
            layers.insert(layer, lens);
        }
        let word_embeds = f32s("words.embeds", &[manifest.words.len(), d])?;
        let class_embeds = f32s("classes.embeds", &[manifest.classes.len(), d])?;
        check_top_images(&manifest)?;
        Ok(Self { manifest, layers, word_embeds, class_embeds })
    }

    /// The heads after layer `layer` whose terms `layer.L.heads` holds: their count and the
    /// later layers, in the order of its columns (layer-major).
    pub fn later_heads(&self, layer: usize) -> Result<LaterHeads> {
        self.manifest.later_heads(layer)
    }

    /// Checks that `weights` are the ones the bundle was computed from.
    pub fn check_weights(&self, weights_sha256: &str) -> Result<()> {
        if weights_sha256 != self.manifest.weights_sha256 {
            return Err(bundle_error(format!(
                "the bundle was computed for weights with sha256 {}, these weights have {weights_sha256} (bundle/model mismatch)",
                self.manifest.weights_sha256
            )));
        }
        Ok(())
    }

    /// Writes `manifest.json` and `lens.safetensors` into `dir` (created if needed).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write(&self, dir: &std::path::Path, storage: Storage) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tensors = dir.join("lens.safetensors");
        std::fs::write(&tensors, self.tensors(storage)?).map_err(|e| Error::io(&tensors, e))?;
        let manifest = dir.join("manifest.json");
        std::fs::write(&manifest, self.manifest_json()?).map_err(|e| Error::io(&manifest, e))
    }

    /// Reads and validates a bundle directory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(dir: &std::path::Path) -> Result<Self> {
        let manifest = dir.join("manifest.json");
        let json = std::fs::read_to_string(&manifest).map_err(|e| Error::io(&manifest, e))?;
        let tensors = dir.join("lens.safetensors");
        let bytes = std::fs::read(&tensors).map_err(|e| Error::io(&tensors, e))?;
        Self::from_parts(&json, bytes)
    }

    /// The neurons of the bundle's layers whose direction best matches `embedding` (any
    /// scale): `(layer, neuron, r_n . e / |e|)`, best first, at most `top`.
    pub fn neurons_matching(&self, embedding: &[f32], top: usize) -> Result<Vec<(usize, usize, f32)>> {
        let d = self.manifest.embed_dim;
        if embedding.len() != d {
            return Err(Error::InvalidInput(format!(
                "the embedding has {} values, the bundle's space has {d}",
                embedding.len()
            )));
        }
        let norm = vector::norm(embedding).max(f32::MIN_POSITIVE);
        let mut scores: Vec<(usize, usize, f32)> = self
            .layers
            .iter()
            .flat_map(|(&layer, lens)| {
                lens.direction
                    .chunks_exact(d)
                    .enumerate()
                    .map(move |(n, r)| (layer, n, vector::dot(r, embedding) / norm))
            })
            .collect();
        scores.sort_by(|a, b| b.2.total_cmp(&a.2));
        scores.truncate(top);
        Ok(scores)
    }

    /// Layer `layer`'s lens data; an error that names the bundle's layers when it has no such
    /// layer.
    pub fn layer(&self, layer: usize) -> Result<&LayerLens> {
        self.layers.get(&layer).ok_or_else(|| {
            Error::InvalidInput(format!("layer {layer} is not in the bundle (it has {:?})", self.manifest.layers))
        })
    }

    /// A neuron's words with their signed coefficients, largest |coefficient| first.
    pub fn describe(&self, layer: usize, neuron: usize) -> Result<Vec<(String, f32)>> {
        let lens = self.layer(layer)?;
        if neuron >= self.manifest.neurons {
            return Err(Error::InvalidInput(format!(
                "neuron {neuron} is out of range: layer {layer} has {} neurons",
                self.manifest.neurons
            )));
        }
        let c = self.manifest.components;
        let row = neuron * c..(neuron + 1) * c;
        Ok(lens.decomposition_index[row.clone()]
            .iter()
            .zip(&lens.decomposition_coef[row])
            .filter(|(&i, _)| i >= 0)
            .map(|(&i, &coef)| (self.manifest.words[i as usize].clone(), coef))
            .collect())
    }

    /// Checks that the bundle fits a model of this configuration (its embedding dimension,
    /// neurons per layer and layers): a bundle of another model is an error, never a shape
    /// panic later.
    pub fn check_model(&self, config: &ClipConfig) -> Result<()> {
        let m = &self.manifest;
        let vision = &config.vision;
        if m.embed_dim != config.embed_dim || m.neurons != vision.mlp_width {
            return Err(bundle_error(format!(
                "the bundle has {} neurons per layer and {}-dimensional embeddings, the model {} and {} (bundle/model mismatch)",
                m.neurons, m.embed_dim, vision.mlp_width, config.embed_dim
            )));
        }
        if let Some(layer) = m.layers.iter().find(|&&l| l >= vision.layers) {
            return Err(bundle_error(format!(
                "the bundle has layer {layer}, the model's image tower has layers 0..={} (bundle/model mismatch)",
                vision.layers.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// The neurons whose decomposition holds `word` (matched exactly, else ignoring case):
    /// the word as the bundle spells it and `(layer, neuron, coefficient)`, largest
    /// |coefficient| first; `None` when the word is not in the dictionary.
    pub fn neurons_with_word(&self, word: &str) -> Option<(String, Vec<WordUse>)> {
        let words = &self.manifest.words;
        let wanted = word.trim();
        let index = words
            .iter()
            .position(|w| w == wanted)
            .or_else(|| words.iter().position(|w| w.eq_ignore_ascii_case(wanted)))?;
        let c = self.manifest.components.max(1);
        let mut found: Vec<(usize, usize, f32)> = Vec::new();
        for (&layer, lens) in &self.layers {
            for (neuron, (indices, coefs)) in
                lens.decomposition_index.chunks_exact(c).zip(lens.decomposition_coef.chunks_exact(c)).enumerate()
            {
                found.extend(
                    indices
                        .iter()
                        .zip(coefs)
                        .filter(|(&i, _)| i == index as i32)
                        .map(|(_, &coef)| (layer, neuron, coef)),
                );
            }
        }
        found.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()).then((a.0, a.1).cmp(&(b.0, b.1))));
        Some((words[index].clone(), found))
    }
}

pub(crate) fn bundle_error(message: String) -> Error {
    Error::InvalidInput(format!("invalid bundle: {message}"))
}
