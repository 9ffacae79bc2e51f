//! `precompute`, the paper's bundle-building step: neuron statistics over a set of images in two
//! streaming passes (`passes`, resumable through `checkpoint`), then the text dictionary and
//! ImageNet classes through the text tower, OMP for every neuron's direction, thumbnails of the
//! top images, and the bundle the page reads (`finish`). The CLI (`clip-lens precompute`) is a
//! thin layer over [`precompute`]: its arguments are [`Settings`], its folder a [`FolderSource`],
//! its output directory a [`DirectorySink`], its progress bars a [`Progress`] and its Ctrl-C
//! handler a [`StopFlag`].
//!
//! The run is `async` and blocks nowhere: the caller awaits it (the CLI with `pollster`, a
//! browser worker on its event loop), and [`Control`] is awaited between batches and steps,
//! where a worker yields to its event loop and a run can be stopped. Its images come from an
//! [`ImageSource`] and its files go to a [`BundleSink`] (`io`): natively a folder and a
//! directory, anywhere in memory.
//!
//! The two passes are checkpointed into the sink's `.precompute-checkpoint.safetensors`
//! (accumulators in full, f64 sums included, and the position in the image list) every
//! `checkpoint_seconds` and when the control stops the run. Running again with the same
//! settings resumes where the last checkpoint was taken, with identical results; the checkpoint
//! is removed once the bundle is written.
//!
//! Beyond one machine (native only), `shards` cuts both passes into N slices of the image list,
//! run as N ordinary processes ([`precompute_shard`]) and merged exactly ([`merge_shards`]).

mod checkpoint;
mod driver;
mod finish;
mod io;
mod passes;
#[cfg(not(target_arch = "wasm32"))]
mod shard_files;
#[cfg(not(target_arch = "wasm32"))]
mod shards;
mod text_side;

pub use driver::{Control, Driver, NeverStop, Progress, StopFlag};
pub use io::{BundleSink, ImageEntry, ImageSource, MemorySink, MemorySource};
#[cfg(not(target_arch = "wasm32"))]
pub use io::{DirectorySink, FolderSource, IMAGE_EXTENSIONS};
#[cfg(not(target_arch = "wasm32"))]
pub use shards::{means_file, merge_shards, precompute_shard, shard_dir, Merged, Shard};
pub use text_side::text_tower_needed;

use std::sync::Arc;

use burn::tensor::Device;

use crate::bundle::{Bundle, Storage};
use crate::lens::Sizes;
use crate::model::ClipModel;
use crate::text_embeddings::{lines, TextEmbeddings};
use crate::{Error, Result};
use checkpoint::{fingerprint, Checkpoint, Locations};
use finish::write_bundle;
use passes::Passes;

/// What a run computes.
#[derive(Debug)]
pub struct Settings {
    /// The lens layers.
    pub layers: Vec<usize>,
    /// Images kept per neuron (the paper: 100).
    pub top_k: usize,
    /// The word lists.
    pub words: Vec<WordList>,
    /// Text embeddings computed before (`embed-text`): the words and classes it holds are not
    /// embedded again.
    pub text: Option<TextFile>,
    /// OMP components per neuron (the paper: 128), at most the words and the dimension.
    pub components: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// How the means, directions and embeddings are stored.
    pub storage: Storage,
    /// Side in pixels of the JPEG thumbnails of the top images (0: none).
    pub thumbnail_size: u32,
    /// Seconds between checkpoints (0: after every batch).
    pub checkpoint_seconds: u64,
    /// Discard a checkpoint in the sink instead of resuming from it.
    pub restart: bool,
    /// The manifest's `model_name` (the CLI: the weight file's name).
    pub model_name: String,
    /// Test hook: stop as if the control had (checkpoint, [`Error::Interrupted`]) once this
    /// many images were processed.
    pub interrupt_after: Option<usize>,
    /// Test hook: abort the process (no clean-up) once this many images were processed.
    pub crash_after: Option<usize>,
}

/// A word list: one text per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordList {
    /// Where it came from (the manifest's `word_sources`: the CLI's file paths).
    pub source: String,
    /// The text.
    pub text: String,
}

impl WordList {
    /// The word list of the file `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { source: path.display().to_string(), text })
    }
}

/// A text-embeddings file given to a run.
#[derive(Debug)]
pub struct TextFile {
    /// Its name in messages (the CLI: its path).
    pub name: String,
    /// What it holds (shared: the page's engine keeps it for classifying, too).
    pub embeddings: Arc<TextEmbeddings>,
}

impl TextFile {
    /// The text-embeddings file `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let embeddings = TextEmbeddings::from_bytes(&bytes).map_err(|e| match e {
            Error::InvalidInput(message) => Error::InvalidInput(format!("{}: {message}", path.display())),
            other => other,
        })?;
        Ok(Self { name: path.display().to_string(), embeddings: Arc::new(embeddings) })
    }
}

/// The words of the word lists, in order, without repeats.
pub fn distinct_words(lists: &[WordList]) -> Result<Vec<String>> {
    let mut words: Vec<String> = lists.iter().flat_map(|list| lines(&list.text)).collect();
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    if words.is_empty() {
        return Err(Error::InvalidInput("the word files hold no words".into()));
    }
    Ok(words)
}

/// A run's inputs, checked: the words, the images (sorted) and the weights' digest.
struct Inputs {
    words: Vec<String>,
    images: Vec<ImageEntry>,
    weights_sha256: String,
}

/// Checks the settings against the model and lists the words and the images.
async fn check_inputs(
    model: &ClipModel,
    weights_sha256: &str,
    settings: &Settings,
    source: &impl ImageSource,
) -> Result<Inputs> {
    let layers = model.vision()?.config.layers;
    if let Some(&bad) = settings.layers.iter().find(|&&l| l >= layers) {
        return Err(Error::InvalidInput(format!(
            "layer {bad} is out of range: the image tower has layers 0..={}",
            layers - 1
        )));
    }
    let layers = &settings.layers;
    if let Some(repeated) = layers.iter().enumerate().find_map(|(i, l)| layers[..i].contains(l).then_some(*l)) {
        return Err(Error::InvalidInput(format!("layer {repeated} is given twice")));
    }
    let words = distinct_words(&settings.words)?;
    let images = source.list().await?;
    if images.is_empty() {
        return Err(Error::InvalidInput("there are no images".into()));
    }
    if images.len() < settings.top_k {
        return Err(Error::InvalidInput(format!(
            "--top-k {} is larger than the number of images ({})",
            settings.top_k,
            images.len()
        )));
    }
    Ok(Inputs { words, images, weights_sha256: weights_sha256.to_string() })
}

/// The sizes of the model's statistics with `settings`' k.
fn sizes(model: &ClipModel, settings: &Settings) -> Result<Sizes> {
    Ok(Sizes { neurons: model.vision()?.config.mlp_width, dim: model.config.embed_dim, k: settings.top_k })
}

/// The checkpoint of an unsharded run, in the sink.
const CHECKPOINT_FILE: &str = ".precompute-checkpoint.safetensors";

/// Runs the whole precomputation (both passes, resumable; the words and ImageNet classes through
/// the text tower; OMP; thumbnails) over the driver's images and writes the bundle to its sink,
/// for the model of the weights with `weights_sha256` (the bundle's). Returns the bundle written.
pub async fn precompute<S: ImageSource, K: BundleSink, C: Control>(
    model: &ClipModel,
    device: &Device,
    weights_sha256: &str,
    settings: &Settings,
    driver: Driver<'_, S, K, C>,
) -> Result<Bundle> {
    let Driver { source, sink, progress, control } = driver;
    let inputs = check_inputs(model, weights_sha256, settings, source).await?;
    let vision = model.vision()?;
    text_side::check(model, &inputs.weights_sha256, settings, &inputs.words)?;
    let fingerprint = fingerprint(&inputs.weights_sha256, &settings.layers, settings.top_k, &inputs.images, source);
    let locations = Locations::new(source, &inputs.images);
    let checkpoint = Checkpoint::new(sink, CHECKPOINT_FILE.into(), fingerprint, locations, settings.checkpoint_seconds);
    let resumed = checkpoint.load(&settings.layers, sizes(model, settings)?, settings.restart).await?;
    let mut passes = Passes::new(vision, settings, source, checkpoint, progress, control)?;
    let names: Vec<String> = inputs.images.iter().map(|e| e.name.clone()).collect();
    let (stats, position) = passes.run(&names, resumed).await?;
    let Passes { checkpoint, progress, control, .. } = passes;
    let bundle =
        write_bundle(model, device, settings, inputs, stats, position, Driver::new(source, sink, progress, control))
            .await?;
    checkpoint.remove().await?;
    Ok(bundle)
}
