//! The WebAssembly API (wasm-bindgen), used by the page's Web Worker: thin bindings over
//! [`crate::apps::engine::Engine`], which holds the page's logic and is tested natively.
//!
//! Each export turns bytes and strings from JavaScript into an engine call and the typed result
//! back into a plain JavaScript object (serde, through JSON text, which measured faster than
//! serde-wasm-bindgen: see [`to_js`]; snake_case keys, as in the CLI's `--json`) or a
//! typed array. Every method rejects with an `Error` carrying the library's message and its
//! `kind` ([`js_error`]); none panics on bad input. The TypeScript types are in [`types`]; the
//! browser benchmark is in [`benchmark`].

mod benchmark;
mod build;
mod storage;
mod types;

pub use benchmark::benchmark_vision;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::apps::engine::{
    self, elapsed_ms, invalid, AblationRequest, AdversarialOptions, AnalyzeOptions, Defaults, WordPageOptions,
};
use crate::device::{self, BackendKind};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// What an export returns: its value, or a thrown JavaScript `Error` ([`js_error`]).
type JsResult<T> = std::result::Result<T, JsValue>;

/// `error` as a JavaScript `Error` with its message and a `kind` property ([`Error::kind`]:
/// `needs-text-tower`, `device-lost`, `bad-input`, ...), on which the page's worker branches.
fn js_error(error: Error) -> JsValue {
    let thrown = js_sys::Error::new(&error.to_string());
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&thrown, &"kind".into(), &error.kind().into());
    thrown.into()
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
/// a fraction of a millisecond a call. This explicit call is the reference that turns the wrappers off
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

/// A Rust value as a plain JavaScript object (snake_case keys, `null` for `None`, arrays for
/// sequences; non-finite floats become `null`), through JSON text and `JSON.parse`: in the
/// benchmark page (`analysis.conversions_us`) it took under half the time of serde-wasm-bindgen
/// ([`to_js_through_serde`]), which makes a call into JavaScript for every value it creates
/// (figures in `docs/performance.md`). Options come in the same way ([`parse_options`]).
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

/// `object` with `key` set to a `Float32Array` copy of `values` (serde would make an Array).
fn with_float_array(object: JsValue, key: &str, values: &[f32]) -> JsResult<JsValue> {
    js_sys::Reflect::set(&object, &key.into(), &js_sys::Float32Array::from(values))
        .map_err(|_| js_error(invalid(format!("cannot set `{key}` on the result"))))?;
    Ok(object)
}

/// Options from JavaScript: `undefined` or `null` give the defaults; unknown keys are errors.
/// Through `JSON.stringify` and serde_json, like the results ([`to_js`]): faster in the
/// benchmark page's `analysis.conversions_us.options` than serde-wasm-bindgen, which must go through a `serde_json::Value` to see unknown keys (it reads
/// a struct's own fields by name, so `{"topWords": 3}` would pass unseen).
fn parse_options<T: for<'de> Deserialize<'de> + Default>(value: Option<JsValue>, what: &str) -> Result<T> {
    match value {
        Some(v) if !(v.is_null() || v.is_undefined()) => parse_object(v, &format!("{what} options")),
        _ => Ok(T::default()),
    }
}

/// A JavaScript array read as a list of `T` ([`through_json`]); `what` names it in errors.
fn parse_list<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<Vec<T>> {
    through_json(&value, what)
}

/// A plain object read as `T` ([`through_json`]; unknown keys refused where `T` says so).
fn parse_object<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T> {
    if !value.is_object() || js_sys::Array::is_array(&value) {
        return Err(invalid(format!("invalid {what}: expected an object")));
    }
    through_json(&value, what)
}

/// `value` read as `T` through its JSON text (`JSON.stringify`, then serde_json); `what` names
/// it in errors.
fn through_json<T: for<'de> Deserialize<'de>>(value: &JsValue, what: &str) -> Result<T> {
    let error = |e: &dyn std::fmt::Display| invalid(format!("invalid {what}: {e}"));
    let text: String = js_sys::JSON::stringify(value).map_err(|_| error(&"not serialisable as JSON"))?.into();
    serde_json::from_str(&text).map_err(|e| error(&e))
}

/// A thrown JavaScript value's message.
fn describe(value: &JsValue) -> String {
    value.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{value:?}"))
}

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// The library's engine ([`engine::Engine`]) on the device `backend` names (`"auto"`,
/// `"webgpu"` or `"cpu"`), from a weight file or from converted towers.
async fn create_engine(
    weights: Vec<u8>,
    config_json: Option<&str>,
    backend: &str,
    max_buffer_bytes: Option<f64>,
) -> Result<engine::Engine> {
    let (device, kind) = pick_device(backend).await?;
    engine::Engine::new(weights, config_json, device, kind, buffer_limit(kind, max_buffer_bytes))
}

/// A loaded CLIP model on one device, optionally with a bundle ([`engine::Engine`]). The text
/// tower is loaded on first use, so a page that only analyses images never pays for it.
#[wasm_bindgen]
pub struct Engine {
    engine: engine::Engine,
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
    ) -> JsResult<Engine> {
        let engine = create_engine(weights, config_json.as_deref(), &backend, max_buffer_bytes).await;
        engine.map(|engine| Engine { engine }).map_err(js_error)
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
    ) -> JsResult<Engine> {
        let (device, kind) = pick_device(&backend).await.map_err(js_error)?;
        let limit = buffer_limit(kind, max_buffer_bytes);
        engine::Engine::from_converted(&manifest_json, image_tower, &config_json, device, kind, limit)
            .map(|engine| Engine { engine })
            .map_err(js_error)
    }

    /// Whether text can be embedded without `loadTextTower` (the tower is loaded, or in the
    /// weight file the engine was made from).
    #[wasm_bindgen(getter, js_name = textTowerAvailable)]
    pub fn text_tower_available(&self) -> bool {
        self.engine.text_tower_available()
    }

    /// Loads the text tower of a converted checkpoint (`text.safetensors`, checked against the
    /// manifest's sha256).
    #[wasm_bindgen(js_name = loadTextTower)]
    pub fn load_text_tower(&mut self, text_tower: Vec<u8>) -> JsResult<()> {
        self.engine.load_text_tower(text_tower).map_err(js_error)
    }

    /// Loads the model's text side (a text-embeddings file of these weights, from `clip-lens
    /// embed-text`): `analyze` classifies images with it while no bundle is loaded.
    #[wasm_bindgen(js_name = loadTextEmbeddings)]
    pub fn load_text_embeddings(&mut self, bytes: Vec<u8>) -> JsResult<()> {
        self.engine.load_text_embeddings(&bytes).map_err(js_error)
    }

    /// Whether the model's text side is loaded.
    #[wasm_bindgen(getter, js_name = hasTextEmbeddings)]
    pub fn has_text_embeddings(&self) -> bool {
        self.engine.has_text_embeddings()
    }

    /// The sha256 of the weights (of the source checkpoint, for converted towers): the key
    /// under which the page keeps the model's text side.
    #[wasm_bindgen(getter, js_name = weightsSha256)]
    pub fn weights_sha256(&self) -> String {
        self.engine.weights_sha256().to_string()
    }

    /// What the GPU allocator holds on WebGPU; `null` on the CPU, whose tensors live in the
    /// WebAssembly memory.
    #[wasm_bindgen(js_name = gpuMemory, unchecked_return_type = "GpuMemory | null")]
    pub fn gpu_memory(&self) -> JsResult<JsValue> {
        self.engine.gpu_memory().map_or(Ok(JsValue::NULL), |usage| to_js(&usage).map_err(js_error))
    }

    /// `"webgpu"` or `"cpu"`.
    pub fn backend(&self) -> String {
        self.engine.backend_name().into()
    }

    /// The image tower's layers (a build's lens layers are among them).
    #[wasm_bindgen(getter, js_name = visionLayers)]
    pub fn vision_layers(&self) -> usize {
        self.engine.vision_layers()
    }

    /// The model's input resolution in pixels.
    #[wasm_bindgen(getter, js_name = imageSize)]
    pub fn image_size(&self) -> usize {
        self.engine.image_size()
    }

    /// The unnormalised image embedding of an encoded image (PNG, JPEG, WebP, GIF).
    #[wasm_bindgen(js_name = embedImage)]
    pub async fn embed_image(&self, bytes: Vec<u8>) -> JsResult<Vec<f32>> {
        self.engine.embed_image(&bytes).await.map_err(js_error)
    }

    /// The unnormalised text embedding of `text`; loads the text tower on first use.
    #[wasm_bindgen(js_name = embedText)]
    pub async fn embed_text(&mut self, text: String) -> JsResult<Vec<f32>> {
        self.engine.embed_text(&text).await.map_err(js_error)
    }

    /// Loads a bundle (`manifest.json`'s text and `lens.safetensors`' bytes), checks it was
    /// computed from these weights (sha256) and fits the model, and prepares its lens. Replaces
    /// any earlier bundle and forgets the last analysed image.
    #[wasm_bindgen(js_name = loadBundle)]
    pub fn load_bundle(&mut self, manifest_json: String, tensors: Vec<u8>) -> JsResult<()> {
        self.engine.load_bundle(&manifest_json, tensors).map_err(js_error)
    }

    /// What the page shows of the loaded bundle (its sizes, layers and classes).
    #[wasm_bindgen(js_name = bundleSummary, unchecked_return_type = "BundleSummary")]
    pub fn bundle_summary(&self) -> JsResult<JsValue> {
        self.engine.bundle_summary().and_then(|s| to_js(&s)).map_err(js_error)
    }

    /// Whether a bundle is loaded.
    #[wasm_bindgen(getter, js_name = hasBundle)]
    pub fn has_bundle(&self) -> bool {
        self.engine.has_bundle()
    }

    /// Analyses an encoded image with the bundle: top classes, concept discovery per layer and
    /// merged, the significant neurons with their words, the crop geometry and timings. One
    /// forward; its activations are kept for `segment`. Without a bundle but with the text side
    /// (`loadTextEmbeddings`): the top classes alone, `layers` and `words` empty.
    #[wasm_bindgen(unchecked_return_type = "Analysis")]
    pub async fn analyze(
        &mut self,
        image: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "AnalyzeOptions | null")] options: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let options: AnalyzeOptions = parse_options(options, "analyze").map_err(js_error)?;
        self.engine.analyze(&image, &options).await.and_then(|a| to_js(&a)).map_err(js_error)
    }

    /// The heatmap of a concept on the last analysed image, without a new forward. `concept`
    /// is `"predicted"` (the image's top class), `"class:<name>"` (a class of the bundle) or
    /// free text (loads the text tower). `layers` and `top_neurons` default to `defaults().segment`
    /// (the bundle's layers, the paper's count); `top_neurons` is clamped to the neurons those
    /// layers have.
    #[wasm_bindgen(unchecked_return_type = "Segmentation")]
    pub async fn segment(
        &mut self,
        concept: String,
        layers: Option<Vec<usize>>,
        top_neurons: Option<usize>,
    ) -> JsResult<JsValue> {
        let segmentation = self.engine.segment(&concept, layers, top_neurons).await.map_err(js_error)?;
        with_float_array(to_js(&segmentation).map_err(js_error)?, "heatmap", &segmentation.heatmap)
    }

    /// One neuron's activation map on an encoded image, with its own forward (the last analysed
    /// image is kept for `segment`). Needs no bundle; `layer` and `neuron` must exist in the
    /// model.
    #[wasm_bindgen(js_name = activationMap, unchecked_return_type = "ActivationMap")]
    pub async fn activation_map(&self, image: Vec<u8>, layer: usize, neuron: usize) -> JsResult<JsValue> {
        let map = self.engine.activation_map(&image, layer, neuron).await.map_err(js_error)?;
        with_float_array(to_js(&map).map_err(js_error)?, "heatmap", &map.heatmap)
    }

    /// A neuron's card from the bundle: all its words, its top images (with thumbnail paths),
    /// the classes nearest to r_n and its threshold.
    #[wasm_bindgen(unchecked_return_type = "NeuronCard")]
    pub fn neuron(&self, layer: usize, index: usize) -> JsResult<JsValue> {
        self.engine.neuron(layer, index).and_then(|card| to_js(&card)).map_err(js_error)
    }

    /// A neuron's heads on the last analysed image: each later head's part of its effect along
    /// r_n (a later layers x heads grid, its largest heads named).
    #[wasm_bindgen(js_name = imageHeads, unchecked_return_type = "HeadGrid")]
    pub async fn image_heads(&self, layer: usize, neuron: usize) -> JsResult<JsValue> {
        self.engine.image_heads(layer, neuron).await.and_then(|grid| to_js(&grid)).map_err(js_error)
    }

    /// A layer's map of neurons by the cosine of their r_n (`#/map/<layer>`): each neuron's place
    /// and first words.
    #[wasm_bindgen(js_name = neuronMap, unchecked_return_type = "NeuronMap")]
    pub fn neuron_map(&self, layer: usize) -> JsResult<JsValue> {
        self.engine.neuron_map(layer).and_then(|map| to_js(&map)).map_err(js_error)
    }

    /// The cards of a list such as `"9:4,9:17,10:301"`, with the words at least two share.
    #[wasm_bindgen(js_name = neuronList, unchecked_return_type = "NeuronList")]
    pub fn neuron_list(&self, spec: String) -> JsResult<JsValue> {
        self.engine.neuron_list(&spec).and_then(|list| to_js(&list)).map_err(js_error)
    }

    /// A word's page: every neuron whose decomposition holds `word`, with its first words and
    /// its first `top_images` (default: `defaults().word_page.top_images`) top images.
    #[wasm_bindgen(js_name = wordPage, unchecked_return_type = "WordPage")]
    pub fn word_page(&self, word: String, top_images: Option<usize>) -> JsResult<JsValue> {
        let images = top_images.unwrap_or(WordPageOptions::default().top_images);
        self.engine.word_page(&word, images).and_then(|page| to_js(&page)).map_err(js_error)
    }

    /// Every option's default (the paper's settings), as the engine applies them when an option
    /// is left out: `analyze`, `adversarial`, `segment` and `word_page`.
    #[wasm_bindgen(unchecked_return_type = "Defaults")]
    pub fn defaults(&self) -> JsResult<JsValue> {
        to_js(&Defaults::default()).map_err(js_error)
    }

    /// Ablates second-order effects of the last analysed image (no new forward): its top
    /// classes and concept words before and after.
    #[wasm_bindgen(unchecked_return_type = "AblationResult")]
    pub async fn ablate(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "AblationRequest")] request: JsValue,
    ) -> JsResult<JsValue> {
        let request: AblationRequest = parse_object(request, "ablation request").map_err(js_error)?;
        self.engine.ablate(&request).await.and_then(|result| to_js(&result)).map_err(js_error)
    }

    /// A neuron's card as CSV.
    #[wasm_bindgen(js_name = neuronCsv)]
    pub fn neuron_csv(&self, layer: usize, neuron: usize) -> JsResult<String> {
        self.engine.neuron_csv(layer, neuron).map_err(js_error)
    }

    /// The last analysis and the ablations run on it as CSV.
    #[wasm_bindgen(js_name = analysisCsv)]
    pub fn analysis_csv(&self) -> JsResult<String> {
        self.engine.analysis_csv().map_err(js_error)
    }

    /// The neurons whose decomposition holds `text` when it is a word of the bundle, and the
    /// `top` (default 20) neurons by r_n . e(text) (loads the text tower).
    #[wasm_bindgen(unchecked_return_type = "SearchResult")]
    pub async fn search(&mut self, text: String, top: Option<usize>) -> JsResult<JsValue> {
        self.engine.search(&text, top.unwrap_or(20)).await.and_then(|s| to_js(&s)).map_err(js_error)
    }

    /// Semantic adversarial words for "depicts `class1`, CLIP should say `class0`". A class is
    /// the bundle's classifier row when it names a bundle class, else its text embedding.
    #[wasm_bindgen(unchecked_return_type = "AdversarialResult")]
    pub async fn adversarial(
        &mut self,
        class0: String,
        class1: String,
        #[wasm_bindgen(unchecked_param_type = "AdversarialOptions | null")] options: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let options: AdversarialOptions = parse_options(options, "adversarial").map_err(js_error)?;
        let found = self.engine.adversarial(&class0, &class1, &options).await;
        found.and_then(|f| to_js(&f)).map_err(js_error)
    }

    /// Whether CLIP prefers `class0` over `class1` for an encoded image, with the score.
    #[wasm_bindgen(unchecked_return_type = "FooledResult")]
    pub async fn fooled(&mut self, image: Vec<u8>, class0: String, class1: String) -> JsResult<JsValue> {
        self.engine.fooled(&image, &class0, &class1).await.and_then(|f| to_js(&f)).map_err(js_error)
    }
}
