//! The engine: a CLIP model on one device with a bundle's lens ([`loading`]), answering what the
//! page asks (analyze, segment and activation map ([`segmentation`]), neuron card, neuron lists
//! and word pages ([`crate::apps::cards`]), ablations on the analysed image ([`ablation`]),
//! search, adversarial words, fooled, CSV exports ([`export`])) with typed results
//! ([`results`]), and builds a bundle from images ([`build`]). The page's WebAssembly bindings (`src/web`) are a thin layer over it; natively
//! `tests/it/engine.rs` checks every method against the fixture.
//!
//! The text tower loads on first use (from the weight file, or, for converted towers, when the
//! caller hands it over after an [`Error::NeedsTextTower`]), so analysing images never pays for
//! it.

mod ablation;
mod build;
pub mod export;
mod loading;
pub mod results;
mod segmentation;
mod text_side;

pub use build::{BuildImage, BuildMemory, BuildOptions, BuildWords};
pub use text_side::TextSidePlan;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use burn::tensor::Device;

pub use results::*;

use crate::apps::adversarial::{adversarial_words, fooling_score, AdversarialQuery};
use crate::apps::analysis::{BundleLens, LayerFindings};
use crate::apps::cards::{self, HeadGrid, LayerFidelity, NeuronMap, WordFidelity};
use crate::apps::classify::{self, classify};
use crate::apps::concepts::merge_layers;
use crate::bundle::Bundle;
use crate::device::{read_f32, BackendKind};
use crate::error::{Error, Result};
use crate::model::{ClipModel, VisionOutput};
use crate::preprocess::preprocess_image;
use crate::text_embeddings::TextEmbeddings;
use crate::tokenizer::ClipTokenizer;
use crate::WeightFile;

/// A bundle checked against the model, with its lens data on the device.
struct LoadedBundle {
    bundle: Bundle,
    /// Its layers' lens on the device, in the manifest's order.
    lens: BundleLens,
    /// Layers' fidelity of the words, each computed when a card of the layer is first asked for.
    fidelity: RefCell<BTreeMap<usize, Rc<LayerFidelity>>>,
    /// Layers' maps computed on load (a bundle before format 5), each when first asked for.
    maps: RefCell<BTreeMap<usize, Vec<f32>>>,
}

impl LoadedBundle {
    /// Layer `layer`'s fidelity of the words ([`LayerFidelity::of`]), computed once.
    fn layer_fidelity(&self, layer: usize) -> Result<Rc<LayerFidelity>> {
        if let Some(known) = self.fidelity.borrow().get(&layer) {
            return Ok(Rc::clone(known));
        }
        let computed = Rc::new(LayerFidelity::of(&self.bundle, layer)?);
        self.fidelity.borrow_mut().insert(layer, Rc::clone(&computed));
        Ok(computed)
    }

    /// Layer `layer`'s map of neurons: the bundle's, else computed once ([`crate::lens::neuron_map`]).
    fn neuron_map(&self, layer: usize) -> Result<NeuronMap> {
        cards::neuron_map(&self.bundle, layer, |directions, dim| {
            let mut maps = self.maps.borrow_mut();
            maps.entry(layer).or_insert_with(|| crate::lens::neuron_map(directions, dim)).clone()
        })
    }

    /// Neuron `neuron`'s [`WordFidelity`] within `layer`.
    fn word_fidelity(&self, layer: usize, neuron: usize) -> Result<Option<WordFidelity>> {
        Ok(self.layer_fidelity(layer)?.neuron(neuron))
    }
}

/// What `segment`, `ablate` and the cards need of the last analysed image.
struct LastImage {
    /// Its forward's output with the lens captures (for segment: the post-GELU activations
    /// `[1, T, N]` of the bundle's layers; for ablations: the effects).
    output: VisionOutput,
    /// The unnormalised image embedding.
    embedding: Vec<f32>,
    /// Every analysed layer's centred norms `[N]` and concept discovery (all words), by layer.
    findings: BTreeMap<usize, LayerFindings>,
    /// Centred effects `[N, D]` of the layers an ablation needed, computed on first use.
    centred: BTreeMap<usize, Vec<f32>>,
    /// The analysis, and the ablations run on it since (for the CSV export).
    analysis: Analysis,
    ablations: Vec<AblationResult>,
}

/// A loaded CLIP model on one device, optionally with a bundle.
pub struct Engine {
    model: ClipModel,
    /// The weight file, kept until the text tower is loaded (none when it has no text tower).
    weights: Option<WeightFile>,
    /// For converted towers (image tower only): the text tower file's expected sha256, until
    /// [`Engine::load_text_tower`] loads it.
    text_tower_sha256: Option<String>,
    /// The device's largest buffer in bytes (`usize::MAX` on the CPU or when unknown).
    buffer_limit: usize,
    /// sha256 of the weight file, checked against a bundle's manifest.
    weights_sha256: String,
    device: Device,
    backend: BackendKind,
    tokenizer: Option<ClipTokenizer>,
    /// The unit embeddings of the free-text concepts met so far, by text (a class named in
    /// every `fooled` call is embedded once).
    text_concepts: HashMap<String, Vec<f32>>,
    bundle: Option<LoadedBundle>,
    /// The model's text side computed before ([`Engine::load_text_embeddings`]): classifies
    /// images while no bundle is loaded.
    text_side: Option<Arc<TextEmbeddings>>,
    last: Option<LastImage>,
}

/// What a call that needs a bundle says when none is loaded (shown to people as it is).
const NO_BUNDLE: &str = "no bundle is loaded: open one, or build one from your images";

/// The error of a call that needs an analysed image before any was analysed.
fn no_image_yet() -> Error {
    invalid("no image has been analysed yet: analyse an image first")
}

/// An [`Error::InvalidInput`] with `message` (the page's bindings use it too).
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// Milliseconds since `start` (on every target: `web_time` in the browser).
pub(crate) fn elapsed_ms(start: web_time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

impl Engine {
    /// What the GPU allocator holds; `None` on the CPU.
    pub fn gpu_memory(&self) -> Option<GpuMemory> {
        let usage = match self.backend {
            BackendKind::Gpu => self.device.memory_pool_usage(),
            BackendKind::Cpu => None,
        };
        usage.map(|u| GpuMemory { bytes_in_use: u.bytes_in_use, bytes_reserved: u.bytes_reserved })
    }

    /// The device's kind.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// `"cpu"`, or the GPU backend's name: `"webgpu"` in the browser, `"wgpu"` natively.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu if cfg!(target_arch = "wasm32") => "webgpu",
            BackendKind::Gpu => "wgpu",
        }
    }

    /// The image tower's layers.
    pub fn vision_layers(&self) -> usize {
        self.model.config.vision.layers
    }

    /// The model's input resolution in pixels.
    pub fn image_size(&self) -> usize {
        self.model.config.vision.image_size
    }

    /// Whether a bundle is loaded.
    pub fn has_bundle(&self) -> bool {
        self.bundle.is_some()
    }

    /// What the page shows of the loaded bundle.
    pub fn bundle_summary(&self) -> Result<BundleSummary> {
        let manifest = &self.bundle()?.bundle.manifest;
        Ok(BundleSummary {
            model_name: manifest.model_name.clone(),
            layers: manifest.layers.clone(),
            neurons: manifest.neurons,
            top_k: manifest.top_k,
            components: manifest.components,
            words: manifest.words.len(),
            classes: manifest.classes.clone(),
            images: manifest.images.len(),
            thumbnail_size: manifest.thumbnail_size,
        })
    }

    fn bundle(&self) -> Result<&LoadedBundle> {
        self.bundle.as_ref().ok_or_else(|| invalid(NO_BUNDLE))
    }

    /// The unnormalised image embedding of an encoded image (PNG, JPEG, WebP, GIF).
    pub async fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        let pixels = preprocess_image(bytes, self.image_size() as u32)?.pixels;
        let vision = self.model.vision()?;
        read_f32(vision.encode(vision.pixel_tensor(pixels)?)?).await
    }

    /// The unnormalised text embedding of `text`; loads the text tower on first use.
    pub async fn embed_text(&mut self, text: &str) -> Result<Vec<f32>> {
        self.ensure_text_tower()?;
        let tokenizer = self.tokenizer.get_or_insert_with(ClipTokenizer::new);
        let tokens = tokenizer.tokenize(text, self.model.config.text.context_length);
        read_f32(self.model.text()?.encode(&tokens)?).await
    }

    /// The unit text embedding of a non-empty text (embedded once per text).
    async fn text_concept(&mut self, text: &str) -> Result<Vec<f32>> {
        if let Some(embedding) = self.text_concepts.get(text) {
            return Ok(embedding.clone());
        }
        self.ensure_text_tower()?;
        let tokenizer = self.tokenizer.get_or_insert_with(ClipTokenizer::new);
        let embedding = classify::text_concept(self.model.text()?, tokenizer, text).await?;
        self.text_concepts.insert(text.to_string(), embedding.clone());
        Ok(embedding)
    }

    /// A class's unit embedding: the bundle's classifier row when `name` is one of its classes,
    /// else the text embedding of `name`.
    async fn class_or_text(&mut self, name: &str) -> Result<Vec<f32>> {
        if name.trim().is_empty() {
            return Err(invalid("a class name is empty"));
        }
        match classify::class_concept(&self.bundle()?.bundle, name) {
            Ok(embedding) => Ok(embedding),
            Err(_) => self.text_concept(name).await,
        }
    }

    /// Analyses an encoded image with the bundle: top classes, concept discovery per layer
    /// (`options.layers`, default the bundle's) and merged, the significant neurons with their
    /// words, the crop geometry and timings. One forward; its activations are kept for
    /// [`Engine::segment`] (every bundle layer's), its layers' findings for [`Engine::ablate`] and
    /// the cards.
    pub async fn analyze(&mut self, image: &[u8], options: &AnalyzeOptions) -> Result<Analysis> {
        let start = web_time::Instant::now();
        if self.bundle.is_none() && self.text_side.is_some() {
            return self.classify_only(image, options, start).await;
        }
        let loaded = self.bundle()?;
        let (bundle, manifest) = (&loaded.bundle, &loaded.bundle.manifest);
        let analysed = options.layers.clone().unwrap_or_else(|| manifest.layers.clone());
        for &layer in &analysed {
            bundle.layer(layer)?;
        }
        let vision = self.model.vision()?;
        let preprocessed = preprocess_image(image, vision.config.image_size as u32)?;
        let decode = elapsed_ms(start);

        let forward_start = web_time::Instant::now();
        let input = vision.pixel_tensor(preprocessed.pixels)?;
        let output = vision.forward(input, &loaded.lens.capture_request())?;
        let embedding = read_f32(output.embeds.clone()).await?;
        let forward = elapsed_ms(forward_start);

        let lens_start = web_time::Instant::now();
        let findings = loaded.lens.discover_layers(vision, &output, bundle, &analysed).await?;
        let mut layers = Vec::with_capacity(findings.len());
        for LayerFindings { norms, concepts } in &findings {
            let (layer, lens) = (concepts.layer, &bundle.layers[&concepts.layer]);
            let neurons = concepts
                .significant_neurons
                .iter()
                .map(|&neuron| {
                    let mut words = bundle.describe(layer, neuron)?;
                    words.truncate(options.neuron_words);
                    let threshold = lens.norms[neuron * manifest.top_k];
                    Ok(SignificantNeuron { neuron, norm: norms[neuron], threshold, words })
                })
                .collect::<Result<Vec<_>>>()?;
            layers.push(LayerConcepts {
                layer,
                significant_neurons: concepts.significant_neurons.clone(),
                words: concepts.words.iter().take(options.top_words).cloned().collect(),
                neurons,
            });
        }
        let words = merge_layers(findings.iter().map(|f| &f.concepts), options.top_words);
        let classes = classify(&embedding, &bundle.class_embeds, &manifest.classes, options.top_classes)?;
        let lens = elapsed_ms(lens_start);

        let analysis = Analysis {
            backend: self.backend_name().to_string(),
            classes,
            layers,
            words,
            geometry: Geometry::from(&preprocessed.geometry),
            timings_ms: AnalysisTimings { decode, forward, lens, total: elapsed_ms(start) },
        };
        self.last = Some(LastImage {
            output,
            embedding,
            findings: findings.into_iter().map(|f| (f.concepts.layer, f)).collect(),
            centred: BTreeMap::new(),
            analysis: analysis.clone(),
            ablations: Vec::new(),
        });
        Ok(analysis)
    }

    /// Without a bundle: the image's top classes by the text side's zero-shot classifier, and no
    /// neuron concepts (they need a bundle's statistics).
    async fn classify_only(
        &mut self,
        image: &[u8],
        options: &AnalyzeOptions,
        start: web_time::Instant,
    ) -> Result<Analysis> {
        let text = self.text_side.as_ref().ok_or_else(|| invalid(NO_BUNDLE))?;
        let vision = self.model.vision()?;
        let preprocessed = preprocess_image(image, vision.config.image_size as u32)?;
        let decode = elapsed_ms(start);
        let forward_start = web_time::Instant::now();
        let embedding = read_f32(vision.encode(vision.pixel_tensor(preprocessed.pixels)?)?).await?;
        let forward = elapsed_ms(forward_start);
        let lens_start = web_time::Instant::now();
        let classes = classify(&embedding, &text.class_embeds, &text.classes, options.top_classes)?;
        self.last = None;
        Ok(Analysis {
            backend: self.backend_name().to_string(),
            classes,
            layers: Vec::new(),
            words: Vec::new(),
            geometry: Geometry::from(&preprocessed.geometry),
            timings_ms: AnalysisTimings { decode, forward, lens: elapsed_ms(lens_start), total: elapsed_ms(start) },
        })
    }

    /// A neuron's card from the bundle: all its words, its top images (with thumbnail paths),
    /// the classes nearest to r_n, its threshold and distribution, and its centred norm on the
    /// last analysed image.
    pub fn neuron(&self, layer: usize, neuron: usize) -> Result<NeuronCard> {
        let loaded = self.bundle()?;
        let fidelity = loaded.word_fidelity(layer, neuron)?;
        cards::neuron_card(&loaded.bundle, layer, neuron, self.analysed_norm(layer, neuron), fidelity)
    }

    /// Neuron `neuron`'s heads on the last analysed image ([`BundleLens::image_heads`]): through
    /// which later heads its effect on that image flows, along r_n.
    pub async fn image_heads(&self, layer: usize, neuron: usize) -> Result<HeadGrid> {
        let loaded = self.bundle()?;
        let last = self.last.as_ref().ok_or_else(no_image_yet)?;
        loaded.lens.image_heads(self.model.vision()?, &last.output, &loaded.bundle, (layer, neuron)).await
    }

    /// Layer `layer`'s map of neurons ([`NeuronMap`]): the bundle's, or computed here for a
    /// bundle before format 5.
    pub fn neuron_map(&self, layer: usize) -> Result<NeuronMap> {
        self.bundle()?.neuron_map(layer)
    }

    /// The cards of a list such as `"9:4,9:17,10:301"`, with the words they share.
    pub fn neuron_list(&self, spec: &str) -> Result<NeuronList> {
        let loaded = self.bundle()?;
        let analysed_norm = |layer, neuron| self.analysed_norm(layer, neuron);
        cards::neuron_list(&loaded.bundle, spec, analysed_norm, |layer, neuron| loaded.word_fidelity(layer, neuron))
    }

    /// A word's page: the neurons whose decomposition holds it, each with its first words and
    /// its first `images` top images ([`WordPageOptions`] has the page's default).
    pub fn word_page(&self, word: &str, images: usize) -> Result<WordPage> {
        cards::word_page(&self.bundle()?.bundle, word, images)
    }

    /// A neuron's card as CSV ([`export::card_csv`]).
    pub fn neuron_csv(&self, layer: usize, neuron: usize) -> Result<String> {
        Ok(export::card_csv(&self.neuron(layer, neuron)?))
    }

    /// The last analysis and the ablations run on it as CSV ([`export::analysis_csv`]).
    pub fn analysis_csv(&self) -> Result<String> {
        let last = self.last.as_ref().ok_or_else(no_image_yet)?;
        Ok(export::analysis_csv(&last.analysis, &last.ablations))
    }

    /// The last analysed image's centred norm of a neuron, when its layer was analysed.
    fn analysed_norm(&self, layer: usize, neuron: usize) -> Option<f32> {
        self.last.as_ref()?.findings.get(&layer)?.norms.get(neuron).copied()
    }

    /// The neurons whose decomposition holds `text` when it is a word of the bundle, and the
    /// `top` neurons by r_n . e(text) (loads the text tower).
    pub async fn search(&mut self, text: &str, top: usize) -> Result<SearchResult> {
        if text.trim().is_empty() {
            return Err(invalid("the search text is empty"));
        }
        self.bundle()?;
        let embedding = self.embed_text(text).await?;
        let loaded = self.bundle()?;
        let bundle = &loaded.bundle;
        let (word, word_neurons) = match bundle.neurons_with_word(text) {
            Some((word, neurons)) => {
                let holders = neurons.into_iter().map(|(layer, neuron, coefficient)| {
                    let fidelity = loaded.layer_fidelity(layer)?.values.get(neuron).copied().unwrap_or(0.0);
                    Ok(WordNeuron { layer, neuron, coefficient, fidelity })
                });
                (Some(word), holders.collect::<Result<_>>()?)
            }
            None => (None, Vec::new()),
        };
        let text_neurons = bundle
            .neurons_matching(&embedding, top)?
            .into_iter()
            .map(|(layer, neuron, score)| Ranked { layer, neuron, score })
            .collect();
        Ok(SearchResult { text: text.to_string(), word, word_neurons, text_neurons })
    }

    /// The two classes' unit embeddings, after checking they differ.
    async fn class_pair(&mut self, class0: &str, class1: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        self.bundle()?;
        if class0.trim().eq_ignore_ascii_case(class1.trim()) {
            return Err(invalid("class0 and class1 are the same class"));
        }
        Ok((self.class_or_text(class0).await?, self.class_or_text(class1).await?))
    }

    /// Semantic adversarial words for "depicts `class1`, CLIP should say `class0`". A class is
    /// the bundle's classifier row when it names a bundle class, else its text embedding.
    pub async fn adversarial(
        &mut self,
        class0: &str,
        class1: &str,
        options: &AdversarialOptions,
    ) -> Result<AdversarialResult> {
        let (e0, e1) = self.class_pair(class0, class1).await?;
        let bundle = &self.bundle()?.bundle;
        let layers = options.layers.clone().unwrap_or_else(|| bundle.manifest.layers.clone());
        let query = AdversarialQuery {
            class0: (class0, &e0),
            class1: (class1, &e1),
            layers: &layers,
            neurons: options.neurons,
            words: options.words,
            synonym_cosine: options.synonym_cosine,
            block_list: &options.block,
        };
        let found = adversarial_words(bundle, &query)?;
        Ok(AdversarialResult { class0: class0.into(), class1: class1.into(), layers, found })
    }

    /// Whether CLIP prefers `class0` over `class1` for an encoded image, with the score.
    pub async fn fooled(&mut self, image: &[u8], class0: &str, class1: &str) -> Result<FooledResult> {
        let (e0, e1) = self.class_pair(class0, class1).await?;
        let embedding = self.embed_image(image).await?;
        classify::unit(&embedding)?; // a zero embedding is an error
        let score = fooling_score(&embedding, &e0, &e1);
        Ok(FooledResult { class0: class0.into(), class1: class1.into(), fooled: score > 0.0, score })
    }
}
