//! The WebAssembly API (wasm-bindgen), used by the page's Web Worker.
//!
//! The model code knows nothing of the web: this module only turns bytes and strings from
//! JavaScript into calls of the library and results back into typed arrays and JSON.

use burn::tensor::{Device, Tensor, TensorData};
use wasm_bindgen::prelude::*;

use crate::device::{self, read_f32, BackendKind};
use crate::model::{ClipModel, Towers};
use crate::preprocess::preprocess_image;
use crate::synthetic::{random_weights, StorageType, TowerSelection};
use crate::tokenizer::ClipTokenizer;
use crate::{ClipConfig, Error, Layout, WeightFile};

fn js_error(error: Error) -> JsError {
    JsError::new(&error.to_string())
}

/// Installs a panic hook that reports Rust panics on the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Picks the device: `"webgpu"` (an error when no adapter exists), `"cpu"`, or `"auto"`
/// (WebGPU when an adapter exists, else the CPU).
async fn pick_device(backend: &str) -> Result<(Device, BackendKind), Error> {
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

/// A loaded CLIP model on one device. The text tower is loaded on first use, so a page that
/// only analyses images never pays for it.
#[wasm_bindgen]
pub struct Engine {
    model: ClipModel,
    weights: Option<WeightFile>,
    device: Device,
    backend: BackendKind,
    tokenizer: Option<ClipTokenizer>,
}

#[wasm_bindgen]
impl Engine {
    /// Loads the image tower from safetensors `weights` (either layout) on `backend`
    /// (`"auto"`, `"webgpu"` or `"cpu"`). `config_json` is a Hugging Face `config.json`; without
    /// one the shapes decide (OpenAI convention).
    pub async fn create(weights: Vec<u8>, config_json: Option<String>, backend: String) -> Result<Engine, JsError> {
        Self::create_inner(weights, config_json, &backend).await.map_err(js_error)
    }

    async fn create_inner(weights: Vec<u8>, config_json: Option<String>, backend: &str) -> Result<Engine, Error> {
        let weights = WeightFile::from_bytes(weights)?;
        let config = match config_json {
            Some(json) => ClipConfig::from_hf_json(&json)?,
            None => ClipConfig::infer(&weights)?,
        };
        let (device, backend) = pick_device(backend).await?;
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
        let weights = weights.has_text().then_some(weights);
        Ok(Engine { model, weights, device, backend, tokenizer: None })
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
    pub async fn embed_image(&self, bytes: Vec<u8>) -> Result<Vec<f32>, JsError> {
        self.embed_image_inner(&bytes).await.map_err(js_error)
    }

    async fn embed_image_inner(&self, bytes: &[u8]) -> Result<Vec<f32>, Error> {
        let size = self.image_size();
        let pixels = preprocess_image(bytes, size as u32)?.pixels;
        let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), &self.device);
        read_f32(self.model.vision()?.encode(input)?).await
    }

    /// The unnormalised text embedding of `text`; loads the text tower on first use.
    #[wasm_bindgen(js_name = embedText)]
    pub async fn embed_text(&mut self, text: String) -> Result<Vec<f32>, JsError> {
        self.embed_text_inner(&text).await.map_err(js_error)
    }

    async fn embed_text_inner(&mut self, text: &str) -> Result<Vec<f32>, Error> {
        if self.model.text.is_none() {
            let weights = self.weights.as_ref().ok_or_else(|| Error::InvalidInput("these weights have no text tower".into()))?;
            let loaded = ClipModel::load(weights, &self.model.config, Towers::Text, &self.device)?;
            self.model.text = loaded.text;
            self.weights = None;
        }
        let tokenizer = self.tokenizer.get_or_insert_with(ClipTokenizer::new);
        let tokens = tokenizer.tokenize(text, self.model.config.text.context_length);
        read_f32(self.model.text()?.encode(&tokens)?).await
    }
}

/// Times the image forward of a random-weight model in this browser. `shape` is `"ViT-B/32"`,
/// `"ViT-B/16"` or `"ViT-L/14"`; returns JSON `{backend, shape, batch, runs, load_ms,
/// first_ms, mean_ms_per_image}`.
#[wasm_bindgen(js_name = benchmarkVision)]
pub async fn benchmark_vision(shape: String, backend: String, batch: usize, runs: usize) -> Result<String, JsError> {
    benchmark_inner(&shape, &backend, batch.max(1), runs.max(1)).await.map_err(js_error)
}

async fn benchmark_inner(shape: &str, backend: &str, batch: usize, runs: usize) -> Result<String, Error> {
    let config = match shape {
        "ViT-B/32" => ClipConfig::vit_b_32(),
        "ViT-B/16" => ClipConfig::vit_b_16(),
        "ViT-L/14" => ClipConfig::vit_l_14(),
        other => return Err(Error::InvalidInput(format!("unknown shape `{other}`"))),
    };
    let (device, kind) = pick_device(backend).await?;
    let start = web_time::Instant::now();
    let bytes = random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 1);
    let model = ClipModel::load(&WeightFile::from_bytes(bytes)?, &config, Towers::Vision, &device)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let size = config.vision.image_size;
    let mut times = Vec::new();
    for _ in 0..=runs {
        let pixels = Tensor::<4>::ones([batch, 3, size, size], &device);
        let start = web_time::Instant::now();
        read_f32(model.vision()?.encode(pixels)?).await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let first_ms = times[0];
    let mean_ms_per_image = times[1..].iter().sum::<f64>() / (runs * batch) as f64;
    Ok(serde_json::json!({"backend": kind.to_string(), "shape": shape, "batch": batch, "runs": runs, "load_ms": load_ms, "first_ms": first_ms, "mean_ms_per_image": mean_ms_per_image}).to_string())
}
