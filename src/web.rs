//! The WebAssembly API (wasm-bindgen), used by the page's Web Worker.
//!
//! The model code knows nothing of the web: this module only turns bytes and strings from
//! JavaScript into calls of the library ([`crate::apps`], [`crate::lens`], [`crate::bundle`])
//! and results back into plain JavaScript objects (serde, through JSON text, which measured
//! faster here than serde-wasm-bindgen: see [`to_js`];
//! object keys are snake_case, as in the CLI's `--json`) and typed arrays. Every method rejects with an `Error`
//! carrying the library's message; none panics on bad input.
//!
//! The TypeScript types of the results are declared below (`TS_TYPES`, emitted into
//! `pkg/clip_lens.d.ts`, which the front end imports as `clip-lens-wasm`): the one source.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::apps::adversarial::{adversarial_words, fooling_score, AdversarialQuery, AdversarialWords};
use crate::apps::analysis::{BundleLens, LayerFindings};
use crate::apps::classify::{classify, ClassScore};
use crate::apps::concepts::{merge_layers, Concepts};
use crate::apps::segment::{self, ConceptNeurons, ConceptSpec, RankedNeuron};
use crate::bundle::{sha256_hex, Bundle};
use crate::convert::ConvertedManifest;
use crate::device::{self, read_f32, BackendKind};
use crate::lens::{second_order_effects, LensFactors};
use crate::model::{CaptureRequest, ClipModel, Towers};
use crate::preprocess::{preprocess_image, CropGeometry};
use crate::synthetic::{gradient_png, paper_bundle_files, random_weights, StorageType, TowerSelection};
use crate::tokenizer::ClipTokenizer;
use crate::{ClipConfig, Error, Layout, WeightFile};

type Result<T> = std::result::Result<T, Error>;

fn js_error(error: Error) -> JsError {
    JsError::new(&error.to_string())
}

/// Runs the module's static constructors, once, then installs a panic hook that reports Rust
/// panics on the console.
#[wasm_bindgen(start)]
pub fn start() {
    run_static_constructors_once();
    console_error_panic_hook::set_once();
}

/// Runs the static constructors (the `inventory` registrations of burn's compiler dependencies)
/// the first time it is called, in any thread (the flag is in the module's memory, shared by the
/// threaded module's workers).
///
/// Why it exists: when no code refers to `__wasm_call_ctors`, wasm-ld treats the module as a
/// "command" and wraps every export in a call to all the constructors, so every call into the
/// module, down to wasm-bindgen's allocator and its table of JavaScript values, ran them again:
/// ~0.25 ms a call. This explicit call is the reference that turns the wrappers off
/// (`lld/wasm/Writer.cpp`, `createCommandExportWrappers`); the benchmark page's `call_us`
/// measures a call.
fn run_static_constructors_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    extern "C" {
        fn __wasm_call_ctors();
    }
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::SeqCst) {
        // SAFETY: the linker's function that runs each constructor once per call; the flag
        // makes this its only call.
        unsafe { __wasm_call_ctors() }
    }
}

/// The threaded module (feature `threads`) exports `initThreadPool(n)`: a Promise that starts
/// rayon's pool on `n` Web Workers sharing this module's memory. The page awaits it once, before
/// any other call (a first parallel call without it would fix the pool at one thread).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Whether this is the threaded module (built with atomics and the feature `threads`).
#[wasm_bindgen(js_name = isThreaded)]
pub fn is_threaded() -> bool {
    cfg!(feature = "threads")
}

/// The threads the CPU backend uses now ([`device::cpu_threads`]).
#[wasm_bindgen(js_name = cpuThreads)]
pub fn cpu_threads() -> usize {
    device::cpu_threads()
}

/// Picks the device: `"webgpu"` (an error when no adapter exists), `"cpu"`, or `"auto"`
/// (WebGPU when an adapter exists, else the CPU).
async fn pick_device(backend: &str) -> Result<(Device, BackendKind)> {
    match backend {
        "cpu" => Ok((device::cpu(), BackendKind::Cpu)),
        "webgpu" | "gpu" => Ok((device::gpu_async().await?, BackendKind::Gpu)),
        "auto" => match device::gpu_async().await {
            Ok(gpu) => Ok((gpu, BackendKind::Gpu)),
            Err(_) => Ok((device::cpu(), BackendKind::Cpu)),
        },
        other => Err(Error::InvalidInput(format!("unknown backend `{other}` (expected auto, webgpu or cpu)"))),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

fn elapsed_ms(start: web_time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// A Rust value as a plain JavaScript object (snake_case keys, `null` for `None`, arrays for
/// sequences; non-finite floats become `null`), through JSON text and `JSON.parse`: measured
/// against serde-wasm-bindgen ([`to_js_through_serde`]) in the benchmark page
/// (`analysis.conversions_us`), JSON text took under half the time for an analysis (580-670
/// against 1,320-1,640 µs) and for a neuron card (27-31 against 54-69 µs): serde-wasm-bindgen
/// makes a call into JavaScript for every value it creates. Options come in the same way
/// ([`parse_options`]).
fn to_js<T: Serialize>(value: &T) -> Result<JsValue> {
    let text = serde_json::to_string(value).map_err(|e| invalid(format!("cannot build the result: {e}")))?;
    js_sys::JSON::parse(&text).map_err(|e| invalid(format!("cannot build the result: {e:?}")))
}

/// [`to_js`] through serde-wasm-bindgen: the benchmark's comparison.
fn to_js_through_serde<T: Serialize>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| invalid(format!("cannot build the result: {e}")))
}

/// The largest device buffer in bytes: the page's figure on the GPU, none on the CPU.
fn buffer_limit(backend: BackendKind, max_buffer_bytes: Option<f64>) -> usize {
    match (backend, max_buffer_bytes) {
        (BackendKind::Gpu, Some(bytes)) if bytes.is_finite() && bytes > 0.0 => bytes as usize,
        _ => usize::MAX,
    }
}

/// Checks a converted tower file's sha256 against its manifest.
fn check_tower_file(tower: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let found = sha256_hex(bytes);
    if found != expected {
        return Err(invalid(format!("the {tower} tower file does not match its manifest: sha256 {found}, the manifest says {expected} (a stale cache or a file from another conversion?)")));
    }
    Ok(())
}

/// `object` with `key` set to a `Float32Array` copy of `values` (serde would make an Array).
fn with_float_array(object: JsValue, key: &str, values: &[f32]) -> std::result::Result<JsValue, JsError> {
    js_sys::Reflect::set(&object, &key.into(), &js_sys::Float32Array::from(values))
        .map_err(|_| JsError::new(&format!("cannot set `{key}` on the result")))?;
    Ok(object)
}

/// Options from JavaScript: `undefined` or `null` give the defaults; unknown keys are errors.
/// Through `JSON.stringify` and serde_json, like the results ([`to_js`]): the benchmark page's
/// `analysis.conversions_us.options` measured 1.5-1.7 µs, against 7-10 µs through
/// serde-wasm-bindgen, which must go through a `serde_json::Value` to see unknown keys (it reads
/// a struct's own fields by name, so `{"topWords": 3}` would pass unseen).
fn parse_options<T: for<'de> Deserialize<'de> + Default>(value: Option<JsValue>, what: &str) -> Result<T> {
    let value = match value {
        Some(v) if !(v.is_null() || v.is_undefined()) => v,
        _ => return Ok(T::default()),
    };
    let error = |e: &dyn std::fmt::Display| invalid(format!("invalid {what} options: {e}"));
    if !value.is_object() || js_sys::Array::is_array(&value) {
        return Err(error(&"expected an object"));
    }
    let text: String = js_sys::JSON::stringify(&value).map_err(|_| error(&"not serialisable as JSON"))?.into();
    serde_json::from_str(&text).map_err(|e| error(&e))
}

// ---------------------------------------------------------------------------
// TypeScript types of the results (keep www/src/wasm-api.d.ts in step)
// ---------------------------------------------------------------------------

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A word (or class) with its score or coefficient. */
export type Scored = [string, number];

/** Options of `Engine.analyze`; every key is optional. */
export interface AnalyzeOptions {
  /** Classes returned (default 5). */
  top_classes?: number;
  /** Words per layer and merged (default 10). */
  top_words?: number;
  /** Words shown per significant neuron (default 5). */
  neuron_words?: number;
}

/** A class of the bundle's zero-shot classifier. */
export interface ClassScore {
  index: number;
  name: string;
  /** Cosine of the image and class embeddings. */
  cosine: number;
  /** Softmax over all classes of 100 x cosine. */
  probability: number;
}

/** A neuron whose centred norm is above its threshold for the analysed image. */
export interface SignificantNeuron {
  neuron: number;
  /** Its centred norm |phi_n - mean_n| for this image. */
  norm: number;
  /** Its threshold (the k-th largest norm over the bundle's images). */
  threshold: number;
  /** Its decomposition's first words, with signed coefficients. */
  words: Scored[];
}

/** Concept discovery in one layer. */
export interface LayerConcepts {
  layer: number;
  /** The significant neurons, ascending. */
  significant_neurons: number[];
  /** Words ranked by the sum over significant neurons of coefficient x norm. */
  words: Scored[];
  /** The significant neurons with their norms and words, ascending. */
  neurons: SignificantNeuron[];
}

/** How the original image was resized (shorter side to `size`) and centre-cropped. */
export interface CropGeometry {
  original_width: number;
  original_height: number;
  resized_width: number;
  resized_height: number;
  /** The crop's offset in the resized image. */
  left: number;
  top: number;
  /** The model's input side. */
  size: number;
  /** The crop in original pixels: [left, top, width, height]. */
  crop_box: [number, number, number, number];
}

/** Where the time of an analysis went, in milliseconds. */
export interface AnalysisTimings {
  /** Decoding and preprocessing. */
  decode: number;
  /** The image forward (with the lens captures) up to the embedding's readback. */
  forward: number;
  /** Second-order effects, centred norms, concept discovery. */
  lens: number;
  total: number;
}

export interface Analysis {
  backend: string;
  /** The top classes, best first. */
  classes: ClassScore[];
  /** Concept discovery per bundle layer, in the bundle's order. */
  layers: LayerConcepts[];
  /** Words merged over the layers (scores summed), best first. */
  words: Scored[];
  geometry: CropGeometry;
  timings_ms: AnalysisTimings;
}

/** A neuron ranked against a concept or a text: `score` = r_n . e (unit e). */
export interface RankedNeuron {
  layer: number;
  neuron: number;
  score: number;
}

export interface Segmentation {
  /** The free text, the class name, or the predicted class's name. */
  concept: string;
  kind: "text" | "class" | "predicted";
  /** The class's index for "class" and "predicted", else null. */
  class_index: number | null;
  layers: number[];
  /** The heatmap's side: the model's input size. */
  size: number;
  /** size x size values in [0, 1], row-major, on the model's input (the crop): map it onto the
   * original image with the analysis's `geometry`. The mask is heatmap > 0.5. */
  heatmap: Float32Array;
  /** The neurons averaged, by |score| descending. */
  neurons: RankedNeuron[];
  ms: number;
}

/** One neuron's activation map on an image (`Engine.activationMap`). */
export interface ActivationMap {
  layer: number;
  neuron: number;
  /** The map's side: the model's input size. */
  size: number;
  /** size x size values in [0, 1] (min-max of the neuron's post-GELU activation over the
   * patches, bilinearly upsampled), row-major, on the model's input (the crop). */
  heatmap: Float32Array;
  /** The largest raw activation over the patches, before normalisation. */
  peak: number;
  geometry: CropGeometry;
}

/** One of the images that fire a neuron most. */
export interface TopImage {
  id: number;
  /** Its path in the bundle's image set (null if the manifest has none for this id). */
  path: string | null;
  /** `thumbnails/<id>.jpg` relative to the bundle, or null when the bundle has no thumbnails. */
  thumbnail: string | null;
}

export interface NearestClass {
  index: number;
  name: string;
  cosine: number;
}

export interface NeuronCard {
  layer: number;
  neuron: number;
  /** All the words of its decomposition, signed, by |coefficient| descending. */
  words: Scored[];
  /** Its significance threshold (null if the bundle keeps no norms). */
  threshold: number | null;
  /** The images with the largest centred norms, largest first. */
  top_images: TopImage[];
  /** The classes nearest to r_n (cosine), best first. */
  classes: NearestClass[];
}

/** A neuron whose decomposition holds the searched word. */
export interface WordNeuron {
  layer: number;
  neuron: number;
  coefficient: number;
}

export interface SearchResult {
  text: string;
  /** The bundle's word the text matched (exactly, else ignoring case), or null. */
  word: string | null;
  /** The neurons whose decomposition holds that word, by |coefficient| descending. */
  word_neurons: WordNeuron[];
  /** The neurons by r_n . e(text) / |e(text)|, best first. */
  text_neurons: RankedNeuron[];
}

/** Options of `Engine.adversarial`; every key is optional. */
export interface AdversarialOptions {
  /** Layers whose neurons are ranked (default: all the bundle's). */
  layers?: number[];
  /** Top neurons kept (default 100). */
  neurons?: number;
  /** Words returned (default 50). */
  words?: number;
  /** Words whose cosine with class 0 is above this are dropped (default 0.8). */
  synonym_cosine?: number;
  /** Words dropped whatever their score. */
  block?: string[];
}

export interface AlignedNeuron {
  layer: number;
  neuron: number;
  /** r_n . (e0 - e1). */
  alignment: number;
}

export interface AdversarialWord {
  word: string;
  score: number;
  /** [layer, neuron] of the top neurons whose decomposition holds it. */
  neurons: [number, number][];
}

export interface AdversarialResult {
  class0: string;
  class1: string;
  layers: number[];
  neurons: AlignedNeuron[];
  words: AdversarialWord[];
  removed: string[];
  /** "a photo of a {class1} with {word}", never naming class 0. */
  descriptions: string[];
}

export interface FooledResult {
  class0: string;
  class1: string;
  /** Whether CLIP prefers class 0: score > 0. */
  fooled: boolean;
  /** (emb / |emb|) . (e0 - e1): the difference of the image's cosines with the two classes. */
  score: number;
}

/** What the GPU allocator holds, in bytes (the WebAssembly memory is the instance's
 * `memory.buffer.byteLength`). */
export interface GpuMemory {
  /** Live tensors. */
  bytes_in_use: number;
  /** All it reserved: live tensors and pages kept for reuse. */
  bytes_reserved: number;
}
"#;

// ---------------------------------------------------------------------------
// Results (serialised to the types above)
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AnalyzeOptions {
    top_classes: Option<usize>,
    top_words: Option<usize>,
    neuron_words: Option<usize>,
}

#[derive(Serialize)]
struct SignificantNeuron {
    neuron: usize,
    norm: f32,
    threshold: f32,
    words: Vec<(String, f32)>,
}

#[derive(Serialize)]
struct LayerConcepts {
    layer: usize,
    significant_neurons: Vec<usize>,
    words: Vec<(String, f32)>,
    neurons: Vec<SignificantNeuron>,
}

#[derive(Serialize)]
struct Geometry {
    original_width: u32,
    original_height: u32,
    resized_width: u32,
    resized_height: u32,
    left: u32,
    top: u32,
    size: u32,
    crop_box: [f32; 4],
}

impl From<&CropGeometry> for Geometry {
    fn from(g: &CropGeometry) -> Self {
        let (left, top, width, height) = g.crop_box_in_original();
        Geometry {
            original_width: g.original_width,
            original_height: g.original_height,
            resized_width: g.resized_width,
            resized_height: g.resized_height,
            left: g.left,
            top: g.top,
            size: g.size,
            crop_box: [left, top, width, height],
        }
    }
}

#[derive(Serialize)]
struct AnalysisTimings {
    decode: f64,
    forward: f64,
    lens: f64,
    total: f64,
}

#[derive(Serialize)]
struct Analysis {
    backend: String,
    classes: Vec<ClassScore>,
    layers: Vec<LayerConcepts>,
    words: Vec<(String, f32)>,
    geometry: Geometry,
    timings_ms: AnalysisTimings,
}

#[derive(Serialize)]
struct Ranked {
    layer: usize,
    neuron: usize,
    score: f32,
}

impl From<&RankedNeuron> for Ranked {
    fn from(n: &RankedNeuron) -> Self {
        Ranked { layer: n.layer, neuron: n.neuron, score: n.score }
    }
}

#[derive(Serialize)]
struct Segmentation {
    concept: String,
    kind: &'static str,
    class_index: Option<usize>,
    layers: Vec<usize>,
    size: usize,
    /// Set as a `Float32Array` after the rest is converted.
    #[serde(skip)]
    heatmap: Vec<f32>,
    neurons: Vec<Ranked>,
    ms: f64,
}

#[derive(Serialize)]
struct ActivationMap {
    layer: usize,
    neuron: usize,
    size: usize,
    /// Set as a `Float32Array` after the rest is converted.
    #[serde(skip)]
    heatmap: Vec<f32>,
    peak: f32,
    geometry: Geometry,
}

#[derive(Serialize)]
struct TopImage {
    id: usize,
    path: Option<String>,
    thumbnail: Option<String>,
}

#[derive(Serialize)]
struct NearestClass {
    index: usize,
    name: String,
    cosine: f32,
}

#[derive(Serialize)]
struct NeuronCard {
    layer: usize,
    neuron: usize,
    words: Vec<(String, f32)>,
    threshold: Option<f32>,
    top_images: Vec<TopImage>,
    classes: Vec<NearestClass>,
}

#[derive(Serialize)]
struct WordNeuron {
    layer: usize,
    neuron: usize,
    coefficient: f32,
}

#[derive(Serialize)]
struct SearchResult {
    text: String,
    word: Option<String>,
    word_neurons: Vec<WordNeuron>,
    text_neurons: Vec<Ranked>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AdversarialOptions {
    layers: Option<Vec<usize>>,
    neurons: Option<usize>,
    words: Option<usize>,
    synonym_cosine: Option<f32>,
    block: Vec<String>,
}

#[derive(Serialize)]
struct AdversarialResult<'a> {
    class0: &'a str,
    class1: &'a str,
    layers: &'a [usize],
    #[serde(flatten)]
    found: &'a AdversarialWords,
}

#[derive(Serialize)]
struct GpuMemory {
    bytes_in_use: u64,
    bytes_reserved: u64,
}

#[derive(Serialize)]
struct FooledResult<'a> {
    class0: &'a str,
    class1: &'a str,
    fooled: bool,
    score: f32,
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// A bundle checked against the model, with its lens data on the device.
struct LoadedBundle {
    bundle: Bundle,
    /// Its layers' lens on the device, in the manifest's order.
    lens: BundleLens,
}

/// What `segment` needs of the last analysed image.
struct LastImage {
    /// Post-GELU activations `[1, T, N]` of the bundle's layers.
    neurons: BTreeMap<usize, Tensor<3>>,
    /// The unnormalised image embedding.
    embedding: Vec<f32>,
}

/// A loaded CLIP model on one device, optionally with a bundle. The text tower is loaded on
/// first use, so a page that only analyses images never pays for it.
#[wasm_bindgen]
pub struct Engine {
    model: ClipModel,
    /// The weight file, kept until the text tower is loaded (none when it has no text tower).
    weights: Option<WeightFile>,
    /// For a converted checkpoint (image tower only): the text tower file's expected sha256,
    /// until `loadTextTower` loads it.
    text_tower_sha256: Option<String>,
    /// The device's largest buffer in bytes (`usize::MAX` on the CPU or when unknown).
    buffer_limit: usize,
    /// sha256 of the weight file, checked against a bundle's manifest.
    weights_sha256: String,
    device: Device,
    backend: BackendKind,
    tokenizer: Option<ClipTokenizer>,
    bundle: Option<LoadedBundle>,
    last: Option<LastImage>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads the image tower from safetensors `weights` (either layout) on `backend`
    /// (`"auto"`, `"webgpu"` or `"cpu"`). `config_json` is a Hugging Face `config.json`; without
    /// one the shapes decide (OpenAI convention). `max_buffer_bytes` is the GPU's largest buffer
    /// (the adapter's `maxStorageBufferBindingSize`, `maxBufferSize`): on WebGPU a weight tensor
    /// above it is refused with a message, and the lens keeps its factors below it.
    pub async fn create(
        weights: Vec<u8>,
        config_json: Option<String>,
        backend: String,
        max_buffer_bytes: Option<f64>,
    ) -> std::result::Result<Engine, JsError> {
        Self::create_inner(weights, config_json, &backend, max_buffer_bytes).await.map_err(js_error)
    }

    async fn create_inner(
        weights: Vec<u8>,
        config_json: Option<String>,
        backend: &str,
        max_buffer_bytes: Option<f64>,
    ) -> Result<Engine> {
        let weights_sha256 = sha256_hex(&weights);
        let weights = WeightFile::from_bytes(weights)?;
        let config = match config_json {
            Some(json) => ClipConfig::from_hf_json(&json)?,
            None => ClipConfig::infer(&weights)?,
        };
        let (device, backend) = pick_device(backend).await?;
        let buffer_limit = buffer_limit(backend, max_buffer_bytes);
        weights.check_buffer_limit(buffer_limit)?;
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
        let weights = weights.has_text().then_some(weights);
        Ok(Engine {
            model,
            weights,
            weights_sha256,
            text_tower_sha256: None,
            device,
            backend,
            buffer_limit,
            tokenizer: None,
            bundle: None,
            last: None,
        })
    }

    /// Loads the image tower of a checkpoint split by `clip-lens convert`: its `manifest.json`,
    /// `image.safetensors` (checked against the manifest's sha256) and `config.json`. Bundles
    /// are checked against the source checkpoint's sha256; the text tower comes later, with
    /// `loadTextTower`, when text is first needed.
    #[wasm_bindgen(js_name = createFromConverted)]
    pub async fn create_from_converted(
        manifest_json: String,
        image_tower: Vec<u8>,
        config_json: String,
        backend: String,
        max_buffer_bytes: Option<f64>,
    ) -> std::result::Result<Engine, JsError> {
        Self::create_from_converted_inner(&manifest_json, image_tower, &config_json, &backend, max_buffer_bytes)
            .await
            .map_err(js_error)
    }

    async fn create_from_converted_inner(
        manifest_json: &str,
        image_tower: Vec<u8>,
        config_json: &str,
        backend: &str,
        max_buffer_bytes: Option<f64>,
    ) -> Result<Engine> {
        let manifest: ConvertedManifest = serde_json::from_str(manifest_json)
            .map_err(|e| invalid(format!("invalid converted manifest.json: {e}")))?;
        check_tower_file("image", &manifest.image.sha256, &image_tower)?;
        let weights = WeightFile::from_bytes(image_tower)?;
        let config = ClipConfig::from_hf_json(config_json)?;
        let (device, backend) = pick_device(backend).await?;
        let buffer_limit = buffer_limit(backend, max_buffer_bytes);
        weights.check_buffer_limit(buffer_limit)?;
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
        Ok(Engine {
            model,
            weights: None,
            weights_sha256: manifest.source_sha256,
            text_tower_sha256: Some(manifest.text.sha256),
            device,
            backend,
            buffer_limit,
            tokenizer: None,
            bundle: None,
            last: None,
        })
    }

    /// Whether text can be embedded without `loadTextTower` (the tower is loaded, or in the
    /// weight file the engine was made from).
    #[wasm_bindgen(getter, js_name = textTowerAvailable)]
    pub fn text_tower_available(&self) -> bool {
        self.model.text.is_some() || self.weights.is_some()
    }

    /// Loads the text tower of a converted checkpoint (`text.safetensors`, checked against the
    /// manifest's sha256).
    #[wasm_bindgen(js_name = loadTextTower)]
    pub fn load_text_tower(&mut self, text_tower: Vec<u8>) -> std::result::Result<(), JsError> {
        self.load_text_tower_inner(text_tower).map_err(js_error)
    }

    fn load_text_tower_inner(&mut self, text_tower: Vec<u8>) -> Result<()> {
        let expected = self.text_tower_sha256.as_ref().ok_or_else(|| {
            invalid("this engine was not made from a converted checkpoint: its text tower comes with its weights")
        })?;
        check_tower_file("text", expected, &text_tower)?;
        let file = WeightFile::from_bytes(text_tower)?;
        file.check_buffer_limit(self.buffer_limit)?;
        let loaded = ClipModel::load(&file, &self.model.config, Towers::Text, &self.device)?;
        self.model.text = loaded.text;
        self.text_tower_sha256 = None;
        Ok(())
    }

    /// What the GPU allocator holds on WebGPU; `null` on the CPU, whose tensors live in the
    /// WebAssembly memory.
    #[wasm_bindgen(js_name = gpuMemory, unchecked_return_type = "GpuMemory | null")]
    pub fn gpu_memory(&self) -> std::result::Result<JsValue, JsError> {
        let usage = match self.backend {
            BackendKind::Gpu => self.device.memory_pool_usage(),
            BackendKind::Cpu => None,
        };
        usage.map_or(Ok(JsValue::NULL), |u| {
            to_js(&GpuMemory { bytes_in_use: u.bytes_in_use, bytes_reserved: u.bytes_reserved }).map_err(js_error)
        })
    }

    /// `"webgpu"` or `"cpu"`.
    pub fn backend(&self) -> String {
        match self.backend {
            BackendKind::Gpu => "webgpu".into(),
            BackendKind::Cpu => "cpu".into(),
        }
    }

    /// The model's input resolution in pixels.
    #[wasm_bindgen(getter, js_name = imageSize)]
    pub fn image_size(&self) -> usize {
        self.model.config.vision.image_size
    }

    /// The unnormalised image embedding of an encoded image (PNG, JPEG, WebP, GIF).
    #[wasm_bindgen(js_name = embedImage)]
    pub async fn embed_image(&self, bytes: Vec<u8>) -> std::result::Result<Vec<f32>, JsError> {
        self.embed_image_inner(&bytes).await.map_err(js_error)
    }

    /// The unnormalised text embedding of `text`; loads the text tower on first use.
    #[wasm_bindgen(js_name = embedText)]
    pub async fn embed_text(&mut self, text: String) -> std::result::Result<Vec<f32>, JsError> {
        self.embed_text_inner(&text).await.map_err(js_error)
    }

    /// Loads a bundle (`manifest.json`'s text and `lens.safetensors`' bytes), checks it was
    /// computed from these weights (sha256) and fits the model, and prepares its lens. Replaces
    /// any earlier bundle and forgets the last analysed image.
    #[wasm_bindgen(js_name = loadBundle)]
    pub fn load_bundle(&mut self, manifest_json: String, tensors: Vec<u8>) -> std::result::Result<(), JsError> {
        self.load_bundle_inner(&manifest_json, tensors).map_err(js_error)
    }

    /// Whether a bundle is loaded.
    #[wasm_bindgen(getter, js_name = hasBundle)]
    pub fn has_bundle(&self) -> bool {
        self.bundle.is_some()
    }

    /// Analyses an encoded image with the bundle: top classes, concept discovery per layer and
    /// merged, the significant neurons with their words, the crop geometry and timings. One
    /// forward; its activations are kept for `segment`.
    #[wasm_bindgen(unchecked_return_type = "Analysis")]
    pub async fn analyze(
        &mut self,
        image: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "AnalyzeOptions | null")] options: Option<JsValue>,
    ) -> std::result::Result<JsValue, JsError> {
        self.analyze_inner(&image, options).await.and_then(|a| to_js(&a)).map_err(js_error)
    }

    /// The heatmap of a concept on the last analysed image, without a new forward. `concept`
    /// is `"predicted"` (the image's top class), `"class:<name>"` (a class of the bundle) or
    /// free text (loads the text tower). `layers` default to the bundle's; `top_neurons`
    /// (default 200) is clamped to the neurons those layers have.
    #[wasm_bindgen(unchecked_return_type = "Segmentation")]
    pub async fn segment(
        &mut self,
        concept: String,
        layers: Option<Vec<usize>>,
        top_neurons: Option<usize>,
    ) -> std::result::Result<JsValue, JsError> {
        let segmentation = self.segment_inner(&concept, layers, top_neurons).await.map_err(js_error)?;
        with_float_array(to_js(&segmentation).map_err(js_error)?, "heatmap", &segmentation.heatmap)
    }

    /// One neuron's activation map on an encoded image, with its own forward (the last analysed
    /// image is kept for `segment`). Needs no bundle; `layer` and `neuron` must exist in the
    /// model.
    #[wasm_bindgen(js_name = activationMap, unchecked_return_type = "ActivationMap")]
    pub async fn activation_map(
        &self,
        image: Vec<u8>,
        layer: usize,
        neuron: usize,
    ) -> std::result::Result<JsValue, JsError> {
        let map = self.activation_map_inner(&image, layer, neuron).await.map_err(js_error)?;
        with_float_array(to_js(&map).map_err(js_error)?, "heatmap", &map.heatmap)
    }

    /// A neuron's card from the bundle: all its words, its top images (with thumbnail paths),
    /// the classes nearest to r_n and its threshold.
    #[wasm_bindgen(unchecked_return_type = "NeuronCard")]
    pub fn neuron(&self, layer: usize, index: usize) -> std::result::Result<JsValue, JsError> {
        self.neuron_inner(layer, index).and_then(|c| to_js(&c)).map_err(js_error)
    }

    /// The neurons whose decomposition holds `text` when it is a word of the bundle, and the
    /// `top` (default 20) neurons by r_n . e(text) (loads the text tower).
    #[wasm_bindgen(unchecked_return_type = "SearchResult")]
    pub async fn search(&mut self, text: String, top: Option<usize>) -> std::result::Result<JsValue, JsError> {
        self.search_inner(&text, top.unwrap_or(20)).await.and_then(|s| to_js(&s)).map_err(js_error)
    }

    /// Semantic adversarial words for "depicts `class1`, CLIP should say `class0`". A class is
    /// the bundle's classifier row when it names a bundle class, else its text embedding.
    #[wasm_bindgen(unchecked_return_type = "AdversarialResult")]
    pub async fn adversarial(
        &mut self,
        class0: String,
        class1: String,
        #[wasm_bindgen(unchecked_param_type = "AdversarialOptions | null")] options: Option<JsValue>,
    ) -> std::result::Result<JsValue, JsError> {
        self.adversarial_inner(&class0, &class1, options).await.map_err(js_error)
    }

    /// Whether CLIP prefers `class0` over `class1` for an encoded image, with the score.
    #[wasm_bindgen(unchecked_return_type = "FooledResult")]
    pub async fn fooled(
        &mut self,
        image: Vec<u8>,
        class0: String,
        class1: String,
    ) -> std::result::Result<JsValue, JsError> {
        self.fooled_inner(&image, &class0, &class1).await.map_err(js_error)
    }
}

// The typed results of the JavaScript methods (their TypeScript types are in `TS_TYPES`).
impl Engine {
    fn bundle(&self) -> Result<&LoadedBundle> {
        self.bundle.as_ref().ok_or_else(|| invalid("no bundle is loaded: call loadBundle first"))
    }

    async fn embed_image_inner(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        let size = self.image_size();
        let pixels = preprocess_image(bytes, size as u32)?.pixels;
        let vision = self.model.vision()?;
        read_f32(vision.encode(vision.pixel_tensor(pixels)?)?).await
    }

    /// Loads the text tower (once; the weight file is then dropped).
    fn ensure_text_tower(&mut self) -> Result<()> {
        if self.model.text.is_none() {
            if self.text_tower_sha256.is_some() {
                // The page's worker recognises `loadTextTower` in this message: it then loads
                // the tower and repeats the call (every method asks for the tower first).
                return Err(invalid(
                    "the text tower is not loaded yet: call loadTextTower with the converted text.safetensors",
                ));
            }
            let weights = self.weights.as_ref().ok_or_else(|| invalid("these weights have no text tower"))?;
            let loaded = ClipModel::load(weights, &self.model.config, Towers::Text, &self.device)?;
            self.model.text = loaded.text;
            self.weights = None;
        }
        Ok(())
    }

    async fn embed_text_inner(&mut self, text: &str) -> Result<Vec<f32>> {
        self.ensure_text_tower()?;
        let tokenizer = self.tokenizer.get_or_insert_with(ClipTokenizer::new);
        let tokens = tokenizer.tokenize(text, self.model.config.text.context_length);
        read_f32(self.model.text()?.encode(&tokens)?).await
    }

    /// The unit text embedding of a non-empty text.
    async fn text_concept(&mut self, text: &str) -> Result<Vec<f32>> {
        self.ensure_text_tower()?;
        let tokenizer = self.tokenizer.get_or_insert_with(ClipTokenizer::new);
        segment::text_concept(self.model.text()?, tokenizer, text).await
    }

    /// A class's unit embedding: the bundle's classifier row when `name` is one of its classes,
    /// else the text embedding of `name`.
    async fn class_or_text(&mut self, name: &str) -> Result<Vec<f32>> {
        if name.trim().is_empty() {
            return Err(invalid("a class name is empty"));
        }
        match segment::class_concept(&self.bundle()?.bundle, name) {
            Ok(embedding) => Ok(embedding),
            Err(_) => self.text_concept(name).await,
        }
    }

    fn load_bundle_inner(&mut self, manifest_json: &str, tensors: Vec<u8>) -> Result<()> {
        let bundle = Bundle::from_parts(manifest_json, tensors)?;
        bundle.check_weights(&self.weights_sha256)?;
        bundle.check_model(&self.model.config)?;
        let lens =
            BundleLens::new(self.model.vision()?, &bundle, &bundle.manifest.layers, self.buffer_limit, &self.device)?;
        self.last = None;
        self.bundle = Some(LoadedBundle { bundle, lens });
        Ok(())
    }

    async fn analyze_inner(&mut self, image: &[u8], options: Option<JsValue>) -> Result<Analysis> {
        let options: AnalyzeOptions = parse_options(options, "analyze")?;
        let top_classes = options.top_classes.unwrap_or(5);
        let top_words = options.top_words.unwrap_or(10);
        let neuron_words = options.neuron_words.unwrap_or(5);
        let start = web_time::Instant::now();
        let loaded = self.bundle()?;
        let (bundle, manifest) = (&loaded.bundle, &loaded.bundle.manifest);
        let vision = self.model.vision()?;
        let size = vision.config.image_size;
        let preprocessed = preprocess_image(image, size as u32)?;
        let decode = elapsed_ms(start);

        let forward_start = web_time::Instant::now();
        let input = vision.pixel_tensor(preprocessed.pixels)?;
        let mut output = vision.forward(input, &loaded.lens.capture_request())?;
        let embedding = read_f32(output.embeds.clone()).await?;
        let forward = elapsed_ms(forward_start);

        let lens_start = web_time::Instant::now();
        let findings = loaded.lens.discover(vision, &output, bundle).await?;
        let mut layers = Vec::with_capacity(findings.len());
        for LayerFindings { norms, concepts } in &findings {
            let (layer, lens) = (concepts.layer, &bundle.layers[&concepts.layer]);
            let neurons = concepts
                .significant_neurons
                .iter()
                .map(|&neuron| {
                    let mut words = bundle.describe(layer, neuron)?;
                    words.truncate(neuron_words);
                    Ok(SignificantNeuron {
                        neuron,
                        norm: norms[neuron],
                        threshold: lens.norms[neuron * manifest.top_k],
                        words,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            layers.push(LayerConcepts {
                layer,
                significant_neurons: concepts.significant_neurons.clone(),
                words: concepts.words.iter().take(top_words).cloned().collect(),
                neurons,
            });
        }
        let found: Vec<Concepts> = findings.into_iter().map(|f| f.concepts).collect();
        let words = merge_layers(&found, top_words);
        let classes = classify(&embedding, &bundle.class_embeds, &manifest.classes, top_classes)?;
        let lens = elapsed_ms(lens_start);

        let analysis = Analysis {
            backend: self.backend(),
            classes,
            layers,
            words,
            geometry: Geometry::from(&preprocessed.geometry),
            timings_ms: AnalysisTimings { decode, forward, lens, total: elapsed_ms(start) },
        };
        let neurons = std::mem::take(&mut output.captures.neurons);
        self.last = Some(LastImage { neurons, embedding });
        Ok(analysis)
    }

    async fn segment_inner(
        &mut self,
        concept: &str,
        layers: Option<Vec<usize>>,
        top_neurons: Option<usize>,
    ) -> Result<Segmentation> {
        let start = web_time::Instant::now();
        let concept = ConceptSpec::parse(concept)?;
        self.bundle()?;
        if self.last.is_none() {
            return Err(invalid("no image has been analysed yet: call analyze first"));
        }
        // The text tower first: it needs `&mut self`.
        let mut text_embedding = match concept {
            ConceptSpec::Text(text) => Some(self.text_concept(text).await?),
            _ => None,
        };
        let bundle = &self.bundle()?.bundle;
        let last = self.last.as_ref().ok_or_else(|| invalid("no image has been analysed yet: call analyze first"))?;
        let (label, kind, class_index, embedding) = match concept {
            ConceptSpec::Text(text) => (
                text.to_string(),
                "text",
                None,
                text_embedding.take().ok_or_else(|| invalid("the concept text has no embedding"))?,
            ),
            ConceptSpec::Class(name) => {
                let index = segment::class_index(bundle, name)?;
                (bundle.manifest.classes[index].clone(), "class", Some(index), segment::class_row(bundle, index)?)
            }
            ConceptSpec::Predicted => {
                let index = segment::predicted_class(bundle, &last.embedding)?;
                (bundle.manifest.classes[index].clone(), "predicted", Some(index), segment::class_row(bundle, index)?)
            }
        };
        let count = top_neurons.unwrap_or(segment::PAPER_TOP_NEURONS);
        let choice = ConceptNeurons::new(bundle, &layers.unwrap_or_default(), count)?;
        let selected = choice.rank(bundle, &embedding)?;
        let maps = segment::heatmaps(&last.neurons, &selected, self.model.config.vision.patch_size).await?;
        Ok(Segmentation {
            concept: label,
            kind,
            class_index,
            layers: choice.layers,
            size: maps.size,
            heatmap: maps.image(0).to_vec(),
            neurons: selected.iter().map(Ranked::from).collect(),
            ms: elapsed_ms(start),
        })
    }

    async fn activation_map_inner(&self, image: &[u8], layer: usize, neuron: usize) -> Result<ActivationMap> {
        let vision = self.model.vision()?;
        let config = &vision.config;
        if layer >= config.layers {
            return Err(invalid(format!("layer {layer} is out of range: the model has {} layers", config.layers)));
        }
        if neuron >= config.mlp_width {
            return Err(invalid(format!(
                "neuron {neuron} is out of range: layer {layer} has {} neurons",
                config.mlp_width
            )));
        }
        let size = config.image_size;
        let preprocessed = preprocess_image(image, size as u32)?;
        let input = vision.pixel_tensor(preprocessed.pixels)?;
        let output = vision.forward(input, &CaptureRequest::neurons(&[layer]))?;
        let maps = segment::heatmaps(
            &output.captures.neurons,
            &[RankedNeuron { layer, neuron, score: 1.0 }],
            config.patch_size,
        )
        .await?;
        Ok(ActivationMap {
            layer,
            neuron,
            size: maps.size,
            heatmap: maps.image(0).to_vec(),
            peak: maps.peaks[0],
            geometry: Geometry::from(&preprocessed.geometry),
        })
    }

    fn neuron_inner(&self, layer: usize, neuron: usize) -> Result<NeuronCard> {
        let bundle = &self.bundle()?.bundle;
        let manifest = &bundle.manifest;
        let words = bundle.describe(layer, neuron)?;
        let lens = &bundle.layers[&layer];
        let d = manifest.embed_dim;
        let direction = &lens.direction[neuron * d..(neuron + 1) * d];
        let classes = if direction.iter().any(|&x| x != 0.0) {
            classify(direction, &bundle.class_embeds, &manifest.classes, 5)?
                .into_iter()
                .map(|c| NearestClass { index: c.index, name: c.name, cosine: c.cosine })
                .collect()
        } else {
            Vec::new()
        };
        let ids = manifest
            .top_images
            .get(&layer.to_string())
            .and_then(|per_neuron| per_neuron.get(neuron))
            .cloned()
            .unwrap_or_default();
        let top_images = ids
            .into_iter()
            .map(|id| TopImage {
                id,
                path: manifest.images.get(id).cloned(),
                thumbnail: (manifest.thumbnail_size > 0).then(|| format!("thumbnails/{id}.jpg")),
            })
            .collect();
        Ok(NeuronCard {
            layer,
            neuron,
            words,
            threshold: lens.norms.get(neuron * manifest.top_k).copied(),
            top_images,
            classes,
        })
    }

    async fn search_inner(&mut self, text: &str, top: usize) -> Result<SearchResult> {
        if text.trim().is_empty() {
            return Err(invalid("the search text is empty"));
        }
        self.bundle()?;
        let embedding = self.embed_text_inner(text).await?;
        let bundle = &self.bundle()?.bundle;
        let (word, word_neurons) = match bundle.neurons_with_word(text) {
            Some((word, neurons)) => (
                Some(word),
                neurons
                    .into_iter()
                    .map(|(layer, neuron, coefficient)| WordNeuron { layer, neuron, coefficient })
                    .collect(),
            ),
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

    async fn adversarial_inner(&mut self, class0: &str, class1: &str, options: Option<JsValue>) -> Result<JsValue> {
        let options: AdversarialOptions = parse_options(options, "adversarial")?;
        let (e0, e1) = self.class_pair(class0, class1).await?;
        let bundle = &self.bundle()?.bundle;
        let layers = options.layers.unwrap_or_else(|| bundle.manifest.layers.clone());
        let query = AdversarialQuery {
            class0: (class0, &e0),
            class1: (class1, &e1),
            layers: &layers,
            neurons: options.neurons.unwrap_or(100),
            words: options.words.unwrap_or(50),
            synonym_cosine: options.synonym_cosine.unwrap_or(0.8),
            block_list: &options.block,
        };
        let found = adversarial_words(bundle, &query)?;
        to_js(&AdversarialResult { class0, class1, layers: &layers, found: &found })
    }

    async fn fooled_inner(&mut self, image: &[u8], class0: &str, class1: &str) -> Result<JsValue> {
        let (e0, e1) = self.class_pair(class0, class1).await?;
        let embedding = self.embed_image_inner(image).await?;
        segment::unit(&embedding)?; // a zero embedding is an error, as before
        let score = fooling_score(&embedding, &e0, &e1);
        to_js(&FooledResult { class0, class1, fooled: score > 0.0, score })
    }
}

/// Times the image forward of a random-weight model in this browser. `shape` is `"ViT-B/32"`,
/// `"ViT-B/16"` or `"ViT-L/14"`; returns JSON `{backend, shape, batch, runs, load_ms,
/// first_ms, mean_ms_per_image, lens}`. With `analysis` (default off: it takes about as long
/// again as the rest), the JSON also has `analysis`: the page's applications through the
/// [`Engine`], one image at a time (see [`benchmark_analysis`]). With `probe` (default off) it
/// also has `matmul`: the matrix-product probe ([`crate::matmul_probe`]) on the forward's shapes
/// at batch 1 and 8, `{threads, timings: [{name, kernel, m, k, n, ms, gflops}]}`, and `steps`:
/// one block's steps timed alone at `batch` ([`crate::forward_profile`]), `[{step, ms}]`.
/// `threads` is the CPU backend's thread count ([`device::cpu_threads`]).
#[wasm_bindgen(js_name = benchmarkVision)]
pub async fn benchmark_vision(
    shape: String,
    backend: String,
    batch: usize,
    runs: usize,
    analysis: Option<bool>,
    probe: Option<bool>,
) -> std::result::Result<String, JsError> {
    let parts = BenchmarkParts { analysis: analysis.unwrap_or(false), probe: probe.unwrap_or(false) };
    benchmark_inner(&shape, &backend, batch.max(1), runs.max(1), parts).await.map_err(js_error)
}

/// What the benchmark times besides the forward and the lens.
struct BenchmarkParts {
    analysis: bool,
    probe: bool,
}

async fn benchmark_inner(
    shape: &str,
    backend: &str,
    batch: usize,
    runs: usize,
    parts: BenchmarkParts,
) -> Result<String> {
    let config = match shape {
        "ViT-B/32" => ClipConfig::vit_b_32(),
        "ViT-B/16" => ClipConfig::vit_b_16(),
        "ViT-L/14" => ClipConfig::vit_l_14(),
        other => return Err(Error::InvalidInput(format!("unknown shape `{other}`"))),
    };
    let (device, kind) = pick_device(backend).await?;
    let start = web_time::Instant::now();
    let weights = WeightFile::from_bytes(random_weights(
        &config,
        Layout::OpenAi,
        TowerSelection { vision: true, text: false },
        StorageType::F16,
        1,
    ))?;
    let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    // The analysis benchmark's engine is made from the same file (a copy, not a second draw).
    let weights = parts.analysis.then(|| weights.bytes().to_vec());
    let size = config.vision.image_size;
    let mut times = Vec::new();
    for _ in 0..=runs {
        let pixels = Tensor::<4>::ones([batch, 3, size, size], &device);
        let start = web_time::Instant::now();
        read_f32(model.vision()?.encode(pixels)?).await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let first_ms = times[0];
    let mean_ms_per_image = mean_after_first(&times) / batch as f64;
    let lens = benchmark_lens(model.vision()?, &device, batch, runs).await?;
    let steps = if parts.probe {
        Some(crate::forward_profile::block_profile(model.vision()?, &device, batch, runs).await?)
    } else {
        None
    };
    drop(model);
    let threads = device::cpu_threads();
    let mut result = serde_json::json!({"backend": kind.to_string(), "threads": threads, "shape": shape, "batch": batch, "runs": runs, "load_ms": load_ms, "first_ms": first_ms, "mean_ms_per_image": mean_ms_per_image, "lens": lens});
    if let Some(steps) = steps {
        result["steps"] = serde_json::to_value(steps).map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(weights) = weights {
        result["analysis"] = benchmark_analysis(&config, weights, backend, runs).await?;
    }
    if parts.probe {
        let timings = crate::matmul_probe::probe(&device, &config.vision, &[1, 8], runs).await?;
        result["matmul"] = serde_json::json!({"threads": threads, "timings": timings});
    }
    Ok(result.to_string())
}

/// The mean of the timed runs: all but the first (warm-up) one.
fn mean_after_first(times: &[f64]) -> f64 {
    let timed = times.get(1..).unwrap_or_default();
    timed.iter().sum::<f64>() / timed.len().max(1) as f64
}

/// The lens part of the benchmark: the factors of layer `layers - 3` (9 for ViT-B/32), then
/// per image the forward with the lens captures plus every neuron's second-order effects (read
/// back), and the cheap projection alone.
async fn benchmark_lens(
    vision: &crate::model::VisionTransformer,
    device: &Device,
    batch: usize,
    runs: usize,
) -> Result<serde_json::Value> {
    use crate::lens::{projections, ProjectionFactors};
    let layer = vision.config.layers.saturating_sub(3);
    let start = web_time::Instant::now();
    let factors = LensFactors::new(vision, layer)?;
    let (neurons, dim) = (vision.config.mlp_width, vision.projection.dims()[1]);
    let directions = Tensor::<2>::ones([neurons, dim], device).div_scalar((dim as f64).sqrt());
    let projection = ProjectionFactors::new(vision, &factors, directions, Tensor::<2>::zeros([neurons, dim], device));
    let factors_ms = start.elapsed().as_secs_f64() * 1e3;
    let size = vision.config.image_size;
    let request = CaptureRequest::for_lens(&[layer]);
    let (mut effects_ms, mut projection_ms) = (Vec::new(), Vec::new());
    for _ in 0..=runs {
        let pixels = Tensor::<4>::ones([batch, 3, size, size], device);
        let start = web_time::Instant::now();
        let output = vision.forward(pixels, &request)?;
        read_f32(second_order_effects(vision, &factors, &output)?).await?;
        effects_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = web_time::Instant::now();
        read_f32(projections(vision, &factors, &projection, &output)?).await?;
        projection_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let per_image = |times: &[f64]| mean_after_first(times) / batch as f64;
    Ok(
        serde_json::json!({"layer": layer, "form": format!("{:?}", factors.form()), "factors_ms": factors_ms, "effects_with_forward_ms_per_image": per_image(&effects_ms), "projection_ms_per_image": per_image(&projection_ms)}),
    )
}

/// Per-run timings of the analysis benchmark, in milliseconds.
#[derive(Default)]
struct AnalysisRuns {
    analysis: Vec<f64>,
    forward: Vec<f64>,
    lens: Vec<f64>,
    segmentation: Vec<f64>,
    /// The results and options crossing the module's boundary, both ways (the last run's).
    conversions: Option<ConversionTimes>,
    significant_neurons: usize,
}

impl AnalysisRuns {
    /// One analysis of `image` and the segmentation of its predicted class, as the page asks.
    async fn run(&mut self, engine: &mut Engine, image: &[u8]) -> Result<()> {
        let start = web_time::Instant::now();
        let analysis = engine.analyze_inner(image, None).await?;
        self.analysis.push(elapsed_ms(start));
        self.forward.push(analysis.timings_ms.forward);
        self.lens.push(analysis.timings_ms.lens);
        self.significant_neurons = analysis.layers.iter().map(|l| l.significant_neurons.len()).sum();
        let card = engine.neuron_inner(analysis.layers[0].layer, 0)?;
        self.conversions = Some(ConversionTimes::measure(&analysis, &card)?);
        let start = web_time::Instant::now();
        engine.segment_inner("predicted", None, None).await?;
        self.segmentation.push(elapsed_ms(start));
        Ok(())
    }
}

/// Microseconds per crossing of the module's boundary, each `[through serde-wasm-bindgen,
/// through JSON text]`: a large result (an analysis), a small one (a neuron card), options in.
#[derive(Serialize)]
struct ConversionTimes {
    analysis: [f64; 2],
    card: [f64; 2],
    options: [f64; 2],
}

impl ConversionTimes {
    /// Conversions timed this many times each.
    const TIMES: usize = 20;

    fn measure(analysis: &impl Serialize, card: &impl Serialize) -> Result<Self> {
        let options = js_sys::JSON::parse(r#"{"top_classes": 5, "top_words": 10, "neuron_words": 3}"#)
            .map_err(|_| invalid("options"))?;
        let through_serde = || -> Result<AnalyzeOptions> {
            let fields: serde_json::Value =
                serde_wasm_bindgen::from_value(options.clone()).map_err(|e| invalid(e.to_string()))?;
            serde_json::from_value(fields).map_err(|e| invalid(e.to_string()))
        };
        Ok(Self {
            analysis: Self::both_ways(analysis)?,
            card: Self::both_ways(card)?,
            options: [
                Self::time(through_serde)?,
                Self::time(|| parse_options::<AnalyzeOptions>(Some(options.clone()), "analyze"))?,
            ],
        })
    }

    /// `value` out through serde-wasm-bindgen and through JSON text ([`to_js`]).
    fn both_ways(value: &impl Serialize) -> Result<[f64; 2]> {
        Ok([Self::time(|| to_js_through_serde(value))?, Self::time(|| to_js(value))?])
    }

    /// Microseconds per call of `f`, the mean of [`Self::TIMES`].
    fn time<T>(f: impl Fn() -> Result<T>) -> Result<f64> {
        let start = web_time::Instant::now();
        for _ in 0..Self::TIMES {
            f()?;
        }
        Ok(elapsed_ms(start) * 1e3 / Self::TIMES as f64)
    }
}

/// The applications through the page's [`Engine`] on `backend`, with the random-weight
/// `weights` of `config` and a synthetic bundle of the paper's sizes: the engine's creation (sha256 of the
/// weights, model load), the bundle's loading (parse, checks, lens factors and means of its
/// layers), then `runs + 1` times (the first untimed) `analyze` of a 640x480 PNG (decode,
/// forward with the lens captures, centred norms, concept discovery, top-5 classes) and
/// `segment("predicted")` (top 200 neurons of the bundle's layers, from the kept activations).
async fn benchmark_analysis(
    config: &ClipConfig,
    weights: Vec<u8>,
    backend: &str,
    runs: usize,
) -> Result<serde_json::Value> {
    let start = web_time::Instant::now();
    let (sizes, manifest, tensors) = paper_bundle_files(config, &weights)?;
    let synthesis_ms = elapsed_ms(start);
    let start = web_time::Instant::now();
    let mut engine = Engine::create_inner(weights, Some(config.to_hf_json().to_string()), backend, None).await?;
    let engine_ms = elapsed_ms(start);
    let start = web_time::Instant::now();
    engine.load_bundle_inner(&manifest, tensors)?;
    let bundle_load_ms = elapsed_ms(start);
    let image = gradient_png(640, 480);
    let mut timings = AnalysisRuns::default();
    for _ in 0..=runs {
        timings.run(&mut engine, &image).await?;
    }
    Ok(serde_json::json!({
        "layers": sizes.layers, "top_k": sizes.top_k, "components": sizes.components, "words": sizes.words, "classes": sizes.classes,
        "significant_neurons": timings.significant_neurons, "top_neurons": segment::PAPER_TOP_NEURONS,
        "synthesis_ms": synthesis_ms, "engine_ms": engine_ms, "bundle_load_ms": bundle_load_ms,
        "first_analysis_ms": timings.analysis[0], "first_segmentation_ms": timings.segmentation[0],
        "analysis_ms_per_image": mean_after_first(&timings.analysis), "forward_ms_per_image": mean_after_first(&timings.forward),
        "lens_ms_per_image": mean_after_first(&timings.lens), "segmentation_ms": mean_after_first(&timings.segmentation),
        "conversions_us": timings.conversions,
    }))
}
