//! What the engine's methods return and take, as plain data: serialised to the page (JSON
//! text; `src/web` declares their TypeScript types) and to the CLI's `--json`, with snake_case
//! keys. The options' defaults (the paper's settings) are their `Default` impls, and nowhere
//! else: the CLI's flags and the page ([`Defaults`]) take theirs from there.

use serde::{Deserialize, Serialize};

pub use crate::apps::ablation::image::{AblationRequest, AblationResult, AblationView};
use crate::apps::adversarial::AdversarialWords;
pub use crate::apps::cards::{
    NearestClass, NeuronCard, NeuronDistribution, NeuronList, TopImage, WordPage, WordPageNeuron, WordPageOptions,
};
use crate::apps::classify::ClassScore;
use crate::apps::segment::{RankedNeuron, PAPER_TOP_NEURONS};
use crate::preprocess::CropGeometry;

/// Options of [`super::Engine::analyze`]; a key left out takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzeOptions {
    /// Classes returned.
    pub top_classes: usize,
    /// Words per layer and merged.
    pub top_words: usize,
    /// Words shown per significant neuron.
    pub neuron_words: usize,
    /// The layers whose concepts are discovered and merged, in this order (`None`: the
    /// bundle's). Ablations and the cards' norms see only these layers of the image.
    pub layers: Option<Vec<usize>>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self { top_classes: 5, top_words: 10, neuron_words: 5, layers: None }
    }
}

/// A significant neuron of an analysed image.
#[derive(Debug, Clone, Serialize)]
pub struct SignificantNeuron {
    /// Its index in the layer.
    pub neuron: usize,
    /// Its centred norm `|phi_n - mean_n|` on the image.
    pub norm: f32,
    /// The significance threshold: its k-th largest norm over the precompute images.
    pub threshold: f32,
    /// Its first words and coefficients.
    pub words: Vec<(String, f32)>,
}

/// One layer's concepts of an analysed image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerConcepts {
    /// The layer.
    pub layer: usize,
    /// Its significant neurons, ascending.
    pub significant_neurons: Vec<usize>,
    /// The layer's words, best first.
    pub words: Vec<(String, f32)>,
    /// The significant neurons with their words.
    pub neurons: Vec<SignificantNeuron>,
}

/// Where the model's square input lies in the original image: the crop geometry's fields
/// (serialised at the top level, as the page reads them) and the crop in the original's pixels.
#[derive(Debug, Clone, Serialize)]
pub struct Geometry {
    /// The resize and the crop.
    #[serde(flatten)]
    pub crop: CropGeometry,
    /// The crop in the original's pixels: left, top, width, height.
    pub crop_box: [f32; 4],
}

impl From<&CropGeometry> for Geometry {
    fn from(g: &CropGeometry) -> Self {
        let (left, top, width, height) = g.crop_box_in_original();
        Geometry { crop: *g, crop_box: [left, top, width, height] }
    }
}

/// Where an analysis's time went, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisTimings {
    /// Decoding and preprocessing.
    pub decode: f64,
    /// The image forward with the lens's captures.
    pub forward: f64,
    /// The lens, concept discovery and classification.
    pub lens: f64,
    /// All of it.
    pub total: f64,
}

/// An image's analysis with a bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The backend it ran on ([`super::Engine::backend_name`]).
    pub backend: String,
    /// The top classes.
    pub classes: Vec<ClassScore>,
    /// Each bundle layer's concepts.
    pub layers: Vec<LayerConcepts>,
    /// The layers' words merged, best first.
    pub words: Vec<(String, f32)>,
    /// The crop geometry.
    pub geometry: Geometry,
    /// Timings.
    pub timings_ms: AnalysisTimings,
}

/// A neuron and its score.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    /// Its layer.
    pub layer: usize,
    /// Its index.
    pub neuron: usize,
    /// Its score (signed).
    pub score: f32,
}

impl From<&RankedNeuron> for Ranked {
    fn from(n: &RankedNeuron) -> Self {
        Ranked { layer: n.layer, neuron: n.neuron, score: n.score }
    }
}

/// A concept's heatmap on the last analysed image.
#[derive(Debug, Clone, Serialize)]
pub struct Segmentation {
    /// The concept as shown: the text, or the class's name.
    pub concept: String,
    /// `text`, `class` or `predicted`.
    pub kind: &'static str,
    /// The class's index in the bundle, for a class.
    pub class_index: Option<usize>,
    /// The layers whose neurons were ranked.
    pub layers: Vec<usize>,
    /// The heatmap's side (the model's input size).
    pub size: usize,
    /// The heatmap `[size, size]` in [0, 1] (not serialised: the page gets a `Float32Array`).
    #[serde(skip)]
    pub heatmap: Vec<f32>,
    /// The neurons averaged, best first.
    pub neurons: Vec<Ranked>,
    /// Milliseconds.
    pub ms: f64,
}

/// One neuron's activation map on an image.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationMap {
    /// The layer.
    pub layer: usize,
    /// The neuron.
    pub neuron: usize,
    /// The map's side (the model's input size).
    pub size: usize,
    /// The map `[size, size]` in [0, 1] (not serialised: the page gets a `Float32Array`).
    #[serde(skip)]
    pub heatmap: Vec<f32>,
    /// The largest activation over the patches, before normalisation.
    pub peak: f32,
    /// The crop geometry.
    pub geometry: Geometry,
}

/// A neuron whose decomposition holds a searched word.
#[derive(Debug, Clone, Serialize)]
pub struct WordNeuron {
    /// The layer.
    pub layer: usize,
    /// The neuron.
    pub neuron: usize,
    /// The word's coefficient in its decomposition.
    pub coefficient: f32,
    /// How well the neuron's words describe it ([`crate::apps::cards::WordFidelity`]'s cosine).
    pub fidelity: f32,
}

/// A search's result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// The text searched.
    pub text: String,
    /// The dictionary's word, when the text is one.
    pub word: Option<String>,
    /// The neurons whose decomposition holds it.
    pub word_neurons: Vec<WordNeuron>,
    /// The neurons whose r_n best match the text's embedding.
    pub text_neurons: Vec<Ranked>,
}

/// Options of [`super::Engine::adversarial`]; a key left out takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdversarialOptions {
    /// The layers searched (`None`: the bundle's).
    pub layers: Option<Vec<usize>>,
    /// Neurons kept, by `|r_n . (e0 - e1)|`.
    pub neurons: usize,
    /// Words returned.
    pub words: usize,
    /// Words whose cosine with class 0 is above this are dropped (its synonyms).
    pub synonym_cosine: f32,
    /// Words never returned.
    pub block: Vec<String>,
}

impl Default for AdversarialOptions {
    /// The paper's: the bundle's layers, 100 neurons, 50 words, synonyms above a cosine of 0.8.
    fn default() -> Self {
        Self { layers: None, neurons: 100, words: 50, synonym_cosine: 0.8, block: Vec::new() }
    }
}

/// Which neurons [`super::Engine::segment`] averages (its `layers` and `top_neurons`, each
/// defaulting to these).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentOptions {
    /// The layers whose neurons are ranked (`None`: the bundle's; the paper's are
    /// [`crate::apps::segment::PAPER_LAYERS`]).
    pub layers: Option<Vec<usize>>,
    /// Neurons averaged, clamped to those the layers have.
    pub top_neurons: usize,
}

impl Default for SegmentOptions {
    /// The paper's: the [`PAPER_TOP_NEURONS`] best neurons of the bundle's layers.
    fn default() -> Self {
        Self { layers: None, top_neurons: PAPER_TOP_NEURONS }
    }
}

/// Every option's default, as the page reads them (`Engine.defaults()` in `src/web`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Defaults {
    /// [`super::Engine::analyze`]'s.
    pub analyze: AnalyzeOptions,
    /// [`super::Engine::adversarial`]'s.
    pub adversarial: AdversarialOptions,
    /// [`super::Engine::segment`]'s.
    pub segment: SegmentOptions,
    /// [`super::Engine::word_page`]'s.
    pub word_page: WordPageOptions,
}

/// Adversarial words for a pair of classes.
#[derive(Debug, Clone, Serialize)]
pub struct AdversarialResult {
    /// The class CLIP should say.
    pub class0: String,
    /// The class the images depict.
    pub class1: String,
    /// The layers searched.
    pub layers: Vec<usize>,
    /// What was found.
    #[serde(flatten)]
    pub found: AdversarialWords,
}

/// What the GPU allocator holds.
#[derive(Debug, Clone, Serialize)]
pub struct GpuMemory {
    /// Bytes in tensors.
    pub bytes_in_use: u64,
    /// Bytes reserved from the device.
    pub bytes_reserved: u64,
}

/// What the page shows of a loaded bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleSummary {
    /// The model the bundle was computed for (the weight file's name).
    pub model_name: String,
    /// Its lens layers.
    pub layers: Vec<usize>,
    /// Neurons per layer.
    pub neurons: usize,
    /// Top images kept per neuron.
    pub top_k: usize,
    /// OMP components per neuron.
    pub components: usize,
    /// Words in its dictionary.
    pub words: usize,
    /// Its zero-shot classes.
    pub classes: Vec<String>,
    /// Images it was computed over.
    pub images: usize,
    /// Side of its thumbnails in pixels (0: none).
    pub thumbnail_size: u32,
}

/// Whether CLIP prefers class 0 over class 1 for an image.
#[derive(Debug, Clone, Serialize)]
pub struct FooledResult {
    /// The class CLIP should say.
    pub class0: String,
    /// The class the image depicts.
    pub class1: String,
    /// Whether it says class 0.
    pub fooled: bool,
    /// `(emb / |emb|) . (e0 - e1)`.
    pub score: f32,
}
