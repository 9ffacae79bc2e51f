//! Building a bundle with the engine's model (the page's Build view): `precompute` over the
//! caller's images and sink, with the model's text side where the engine has it; the bundle
//! built is then the engine's.

use serde::{Deserialize, Serialize};

use super::{invalid, Engine};
use crate::bundle::{Bundle, Storage};
use crate::error::Result;
use crate::lens::{HISTOGRAM_BINS, TYPICAL_BANDS, TYPICAL_PER_BAND};
use crate::precompute::{
    precompute, text_tower_needed, BundleSink, Control, Driver, ImageSource, Settings, TextFile, WordList,
};
use crate::text_embeddings::TextEmbeddings;

/// The name of the engine's text side in a build's messages.
const TEXT_SIDE_NAME: &str = "the model's text embeddings";

/// What a build computes (the page's Build view; `BuildOptions` in TypeScript); the rest as the
/// CLI's defaults, except checkpoints every 30 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildOptions {
    /// The lens layers.
    pub layers: Vec<usize>,
    /// Images kept per neuron.
    pub top_k: usize,
    /// OMP components per neuron.
    pub components: usize,
    /// Word lists; none: the words of the model's text side.
    #[serde(default)]
    pub words: Vec<BuildWords>,
    /// Images per forward pass.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Side in pixels of the thumbnails of the top images (0: none).
    #[serde(default = "default_thumbnail_size")]
    pub thumbnail_size: u32,
    /// The manifest's `model_name`.
    #[serde(default)]
    pub model_name: String,
}

/// A word list handed over by the page: where it came from (a file's name) and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildWords {
    /// The manifest's `word_sources` entry.
    pub source: String,
    /// One word or phrase per line.
    pub text: String,
}

/// An image as the page lists it for a build (its bytes are read when needed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildImage {
    /// Its name (the manifest's), unique in the build.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

impl From<BuildWords> for WordList {
    fn from(list: BuildWords) -> Self {
        WordList { source: list.source, text: list.text }
    }
}

fn default_batch() -> usize {
    8
}

fn default_thumbnail_size() -> u32 {
    64
}

/// Seconds between a page build's checkpoints.
const CHECKPOINT_SECONDS: u64 = 30;

impl BuildOptions {
    /// The run's settings; a build without word lists takes the words of `text_side`.
    fn settings(self, text_side: Option<&TextEmbeddings>) -> Result<Settings> {
        let words = if self.words.is_empty() {
            let text = text_side.ok_or_else(|| {
                invalid("no word list: give one (one word or phrase per line), or load the model's text embeddings")
            })?;
            vec![WordList { source: text.word_sources.join(", "), text: text.words.join("\n") }]
        } else {
            self.words.into_iter().map(WordList::from).collect()
        };
        Ok(Settings {
            layers: self.layers,
            top_k: self.top_k,
            words,
            text: None,
            components: self.components,
            batch: self.batch.max(1),
            storage: Storage::F32,
            thumbnail_size: self.thumbnail_size,
            checkpoint_seconds: CHECKPOINT_SECONDS,
            restart: false,
            model_name: self.model_name,
            interrupt_after: None,
            crash_after: None,
        })
    }
}

/// What a build holds in memory beside the model, in bytes, at its peak (`BuildMemory` in
/// TypeScript): pass 2's top-k state (per layer, neuron and kept image its centred effect, norm,
/// id and per-head scalars: the part that grows with k), held once (a checkpoint writes it a
/// chunk at a time and reads it back in place; the small head scalars it copies), and the rest
/// (pass 1's sums, one batch's effects, the histograms and typical images, the chunk in flight).
/// The norms kept for exact percentiles grow with the images, not with k: 4 bytes per image,
/// neuron and layer, at most 64 MiB per layer in the page (past that the percentiles below the
/// top k are interpolated), so they are left out. The page refuses a build that cannot fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildMemory {
    /// Bytes per image kept per neuron (times k).
    pub per_k: u64,
    /// Bytes that do not grow with k.
    pub fixed: u64,
    /// `per_k * k + fixed` for the options asked.
    pub total: u64,
}

/// Bytes of one kept image beside its effect: its norm (f32) and id (i64), and their copies in
/// a checkpoint being written or read.
const KEPT_OVERHEAD: u64 = 2 * (4 + 8);

/// The largest piece of a file a build holds while it writes or reads one (a sink's chunk).
const FILE_CHUNK: u64 = 16 << 20;

impl Engine {
    /// The peak memory a build of `options` holds beside the model ([`BuildMemory`]).
    pub fn build_memory(&self, options: &BuildOptions) -> BuildMemory {
        let config = &self.model.config;
        let (layers, neurons) = (options.layers.len() as u64, config.vision.mlp_width as u64);
        let dim = config.embed_dim as u64;
        // Each layer's later heads, whose scalars a kept image carries (copied in a checkpoint).
        let later_heads: u64 = options
            .layers
            .iter()
            .map(|&l| (config.vision.layers.saturating_sub(l + 1) * config.vision.heads) as u64)
            .sum();
        let per_k = neurons * (layers * (4 * dim + KEPT_OVERHEAD) + 2 * 4 * later_heads);
        // Pass 1's f64 sums and the f32 mean (and its copy in a checkpoint); a batch's effects and
        // head scalars, as tensor data and read back; the histograms and typical images.
        let sums = layers * neurons * dim * (8 + 4 + 4);
        let batch = 2 * options.batch.max(1) as u64 * neurons * (layers * dim + later_heads) * 4;
        let typical = (TYPICAL_BANDS * TYPICAL_PER_BAND) as u64 * 2 * (8 + 8);
        let riders = layers * neurons * (HISTOGRAM_BINS as u64 * 8 + typical);
        let fixed = sums + batch + riders + FILE_CHUNK;
        BuildMemory { per_k, fixed, total: per_k * options.top_k as u64 + fixed }
    }

    /// Runs `precompute` with `options` over the driver's images into its sink and makes the
    /// bundle this engine's (the explorer opens it at once). The engine's text side is used
    /// where it has one; the text tower is needed only for what
    /// that lacks ([`crate::error::Error::NeedsTextTower`] for converted towers not loaded yet,
    /// before any image is read).
    pub async fn build_bundle<S: ImageSource, K: BundleSink, C: Control>(
        &mut self,
        options: BuildOptions,
        driver: Driver<'_, S, K, C>,
    ) -> Result<()> {
        let mut settings = options.settings(self.text_side.as_deref())?;
        settings.text = self.text_side.clone().map(|embeddings| TextFile { name: TEXT_SIDE_NAME.into(), embeddings });
        if text_tower_needed(&settings)? {
            self.ensure_text_tower()?;
        }
        let bundle: Bundle = precompute(&self.model, &self.device, &self.weights_sha256, &settings, driver).await?;
        self.use_bundle(bundle)
    }
}
