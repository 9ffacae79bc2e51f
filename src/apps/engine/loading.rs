//! Making an engine (from a weight file, converted towers or a model already loaded), the text
//! tower on first use, and loading a bundle.

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::Device;

use super::{invalid, Engine, LoadedBundle};
use crate::apps::analysis::BundleLens;
use crate::bundle::{sha256_hex, Bundle};
use crate::convert::ConvertedManifest;
use crate::device::BackendKind;
use crate::error::{Error, Result};
use crate::model::{ClipModel, Towers};
use crate::text_embeddings::TextEmbeddings;
use crate::{ClipConfig, WeightFile};

/// Checks a converted tower file's sha256 against its manifest.
fn check_tower_file(tower: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let found = sha256_hex(bytes);
    if found != expected {
        return Err(invalid(format!("the {tower} tower file does not match its manifest: sha256 {found}, the manifest says {expected} (a stale cache or a file from another conversion?)")));
    }
    Ok(())
}

impl Engine {
    /// The image tower of safetensors `weights` (either layout) on `device` (of kind
    /// `backend`). `config_json` is a Hugging Face `config.json` or an open_clip model JSON;
    /// without one the shapes decide where they can ([`ClipConfig::infer`]). A weight tensor above `buffer_limit` bytes is refused, and the lens
    /// keeps its factors below it (the GPU's largest buffer; `usize::MAX` on the CPU).
    pub fn new(
        weights: Vec<u8>,
        config_json: Option<&str>,
        device: Device,
        backend: BackendKind,
        buffer_limit: usize,
    ) -> Result<Engine> {
        let weights_sha256 = sha256_hex(&weights);
        let weights = WeightFile::from_bytes(weights)?;
        let config = match config_json {
            Some(json) => ClipConfig::from_json(json)?,
            None => ClipConfig::infer(&weights)?,
        };
        weights.check_buffer_limit(buffer_limit)?;
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
        let weights = weights.has_text().then_some(weights);
        Ok(Engine::with_model(model, weights, weights_sha256, None, device, backend, buffer_limit))
    }

    /// The image tower of a checkpoint split by `clip-lens convert`: its `manifest.json`,
    /// `image.safetensors` (checked against the manifest's sha256) and `config.json`. Bundles
    /// are checked against the source checkpoint's sha256; the text tower comes later
    /// ([`Engine::load_text_tower`]).
    pub fn from_converted(
        manifest_json: &str,
        image_tower: Vec<u8>,
        config_json: &str,
        device: Device,
        backend: BackendKind,
        buffer_limit: usize,
    ) -> Result<Engine> {
        let manifest: ConvertedManifest = serde_json::from_str(manifest_json)
            .map_err(|e| invalid(format!("invalid converted manifest.json: {e}")))?;
        check_tower_file("image", &manifest.image.sha256, &image_tower)?;
        let weights = WeightFile::from_bytes(image_tower)?;
        let config = ClipConfig::from_json(config_json)?;
        weights.check_buffer_limit(buffer_limit)?;
        let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
        let text_sha256 = Some(manifest.text.sha256);
        Ok(Engine::with_model(model, None, manifest.source_sha256, text_sha256, device, backend, buffer_limit))
    }

    /// An engine over a model already loaded (the CLI's), made from weights with
    /// `weights_sha256`; text needs [`Engine::load_text_tower`] unless `model` has its tower.
    pub fn from_model(model: ClipModel, weights_sha256: String, device: Device, backend: BackendKind) -> Engine {
        Engine::with_model(model, None, weights_sha256, None, device, backend, usize::MAX)
    }

    fn with_model(
        model: ClipModel,
        weights: Option<WeightFile>,
        weights_sha256: String,
        text_tower_sha256: Option<String>,
        device: Device,
        backend: BackendKind,
        buffer_limit: usize,
    ) -> Engine {
        Engine {
            model,
            weights,
            weights_sha256,
            text_tower_sha256,
            device,
            backend,
            buffer_limit,
            tokenizer: None,
            text_concepts: HashMap::new(),
            bundle: None,
            text_side: None,
            last: None,
        }
    }

    /// Whether text can be embedded without [`Engine::load_text_tower`] (the tower is loaded,
    /// or in the weight file the engine was made from).
    pub fn text_tower_available(&self) -> bool {
        self.model.text.is_some() || self.weights.is_some()
    }

    /// Loads the text tower of converted towers (`text.safetensors`, checked against the
    /// manifest's sha256).
    pub fn load_text_tower(&mut self, text_tower: Vec<u8>) -> Result<()> {
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

    /// Loads the text tower (once; the weight file is then dropped).
    pub(super) fn ensure_text_tower(&mut self) -> Result<()> {
        if self.model.text.is_none() {
            if self.text_tower_sha256.is_some() {
                // The caller loads it (`loadTextTower` in the page) and asks again.
                return Err(Error::NeedsTextTower);
            }
            let weights = self.weights.as_ref().ok_or_else(|| invalid("these weights have no text tower"))?;
            let loaded = ClipModel::load(weights, &self.model.config, Towers::Text, &self.device)?;
            self.model.text = loaded.text;
            self.weights = None;
        }
        Ok(())
    }

    /// Loads the model's text side (a text-embeddings file of these weights, `embed-text`'s):
    /// images are classified with it while no bundle is loaded.
    pub fn load_text_embeddings(&mut self, bytes: &[u8]) -> Result<()> {
        let text = TextEmbeddings::from_bytes(bytes)?;
        text.check_model("the text embeddings file", &self.weights_sha256, self.model.config.embed_dim)?;
        self.text_side = Some(Arc::new(text));
        Ok(())
    }

    /// Whether the model's text side is loaded ([`Engine::load_text_embeddings`]).
    pub fn has_text_embeddings(&self) -> bool {
        self.text_side.is_some()
    }

    /// The sha256 of the weights (of the source checkpoint, for converted towers).
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Loads a bundle (`manifest.json`'s text and `lens.safetensors`' bytes), checks it was
    /// computed from these weights (sha256) and fits the model, and prepares its lens. Replaces
    /// any earlier bundle and forgets the last analysed image.
    pub fn load_bundle(&mut self, manifest_json: &str, tensors: Vec<u8>) -> Result<()> {
        self.use_bundle(Bundle::from_parts(manifest_json, tensors)?)
    }

    /// [`Engine::load_bundle`] for a bundle already read.
    pub fn use_bundle(&mut self, bundle: Bundle) -> Result<()> {
        bundle.check_weights(&self.weights_sha256)?;
        bundle.check_model(&self.model.config)?;
        let vision = self.model.vision()?;
        let lens = BundleLens::new(vision, &bundle, &bundle.manifest.layers, self.buffer_limit, &self.device)?;
        self.last = None;
        self.bundle = Some(LoadedBundle { bundle, lens, fidelity: Default::default(), maps: Default::default() });
        Ok(())
    }
}
