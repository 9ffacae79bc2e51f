//! `precompute`, the paper's bundle-building step: neuron statistics over an image folder in two
//! streaming passes (`passes`, resumable through `checkpoint`), the text dictionary and
//! ImageNet classes through the text tower, OMP for every neuron's direction, thumbnails of the
//! top images, and the bundle the page reads. The CLI (`clip-lens precompute`) is a thin layer
//! over [`precompute`]: its arguments are [`Settings`], its progress bars a [`Progress`].
//!
//! The two passes are checkpointed into `OUT/.precompute-checkpoint.safetensors` (accumulators
//! in full, f64 sums included, and the position in the folder) every `checkpoint_seconds` and
//! when `interrupted` is set. Running again with the same settings resumes where the last
//! checkpoint was taken, with identical results; the checkpoint is removed once the bundle is
//! written.
//!
//! Beyond one machine, `shards` cuts both passes into N slices of the image list, run as N
//! ordinary processes ([`precompute_shard`]) and merged exactly ([`merge_shards`]).

mod checkpoint;
mod passes;
mod shard_files;
mod shards;

pub use shards::{means_file, merge_shards, precompute_shard, shard_dir, Merged, Shard};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;

use crate::bundle::{sha256_hex, Bundle, LayerLens, Manifest, Storage, FORMAT_VERSION};
use crate::lens::{orthogonal_matching_pursuit, Dictionary, NeuronStatistics, Sizes, HISTOGRAM_BINS, PERCENTILES};
use crate::model::ClipModel;
use crate::preprocess::{center_crop, decode_image, preprocess_image};
use crate::text_embeddings::{class_embeddings, lines, word_embeddings, IMAGENET_CLASSES, IMAGENET_TEMPLATES};
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Result};
use checkpoint::{fingerprint, Checkpoint, Position};
use passes::Passes;

/// What a run computes, and from what.
#[derive(Debug)]
pub struct Settings {
    /// Folder of images (not recursive; unreadable files are skipped and counted).
    pub images: PathBuf,
    /// The lens layers.
    pub layers: Vec<usize>,
    /// Images kept per neuron (the paper: 100).
    pub top_k: usize,
    /// Word list files, one text per line.
    pub words: Vec<PathBuf>,
    /// OMP components per neuron (the paper: 128), at most the words and the dimension.
    pub components: usize,
    /// The bundle directory written.
    pub out: PathBuf,
    /// Images per forward pass.
    pub batch: usize,
    /// How the means, directions and embeddings are stored.
    pub storage: Storage,
    /// Side in pixels of the JPEG thumbnails of the top images (0: none).
    pub thumbnail_size: u32,
    /// Seconds between checkpoints (0: after every batch).
    pub checkpoint_seconds: u64,
    /// Discard a checkpoint in `out` instead of resuming from it.
    pub restart: bool,
    /// The manifest's `model_name` (the CLI: the weight file's name).
    pub model_name: String,
    /// Set (by a Ctrl-C handler) to checkpoint after the current batch and stop with
    /// [`Error::Interrupted`].
    pub interrupted: &'static AtomicBool,
    /// Test hook: act as if `interrupted` were set once this many images were processed.
    pub interrupt_after: Option<usize>,
    /// Test hook: abort the process (no clean-up) once this many images were processed.
    pub crash_after: Option<usize>,
}

/// Where a long run reports its progress (the CLI: indicatif bars).
pub trait Progress {
    /// A stage of `total` steps begins, `done` of them already done (a resumed pass).
    fn start(&mut self, what: &str, total: usize, done: usize);
    /// `steps` more steps of the stage are done.
    fn advance(&mut self, steps: usize);
    /// `done` steps of the stage are done in all.
    fn reach(&mut self, done: usize);
    /// The stage is over.
    fn finish(&mut self);
    /// A message for the user (a skipped image, a resumed checkpoint).
    fn note(&mut self, message: &str);
}

/// File name extensions taken as images (any case); other files in the folder are ignored.
const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// The image files of a folder (not recursive, by extension), sorted by name.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && is_image(p)).collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} contains no image files ({})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        )));
    }
    Ok(files)
}

/// Decodes and preprocesses `files`: the files that decode with their pixels, and the names
/// of those that do not (each also reported through `progress`).
fn decode_batch(files: &[PathBuf], size: usize, progress: &mut dyn Progress) -> (Vec<PathBuf>, Vec<f32>, Vec<String>) {
    let mut decoded = Vec::new();
    let mut pixels = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| preprocess_image(&b, size as u32).map_err(|e| e.to_string()))
        {
            Ok(pre) => {
                decoded.push(file.clone());
                pixels.extend(pre.pixels);
            }
            Err(e) => {
                progress.note(&format!("skipping {}: {e}", file.display()));
                skipped.push(file.display().to_string());
            }
        }
    }
    (decoded, pixels, skipped)
}

/// The words of the word files, in order, without repeats.
fn read_words(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut words = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        words.extend(lines(&text));
    }
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    if words.is_empty() {
        return Err(Error::InvalidInput("the word files hold no words".into()));
    }
    Ok(words)
}

/// Decompositions `[N, m]` sorted by |coefficient|, padded with index -1.
fn decompose(
    dictionary: &Dictionary,
    directions: &[f32],
    components: usize,
    device: &Device,
) -> Result<(Vec<i32>, Vec<f32>)> {
    let codes = pollster::block_on(orthogonal_matching_pursuit(dictionary, directions, components, device))?;
    let mut index = Vec::with_capacity(codes.len() * components);
    let mut coef = Vec::with_capacity(codes.len() * components);
    for code in codes {
        let sorted = code.by_magnitude();
        for slot in 0..components {
            let (i, c) = sorted.get(slot).map(|&(i, c)| (i as i32, c)).unwrap_or((-1, 0.0));
            index.push(i);
            coef.push(c);
        }
    }
    Ok((index, coef))
}

/// Writes `thumbnails/<id>.jpg` (a centre crop of side `size`) for every image in some top k.
fn write_thumbnails(
    out: &Path,
    images: &[PathBuf],
    ids: &BTreeSet<usize>,
    size: u32,
    progress: &mut dyn Progress,
) -> Result<()> {
    let dir = out.join("thumbnails");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    progress.start("thumbnails", ids.len(), 0);
    for &id in ids {
        let file = &images[id];
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let image = decode_image(&bytes)?;
        let (w, h) = image.dimensions();
        let scale = size as f32 / w.min(h) as f32;
        let resized = image::imageops::resize(
            &image,
            ((w as f32 * scale).round() as u32).max(size),
            ((h as f32 * scale).round() as u32).max(size),
            image::imageops::FilterType::Triangle,
        );
        let path = dir.join(format!("{id}.jpg"));
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 80)
            .encode_image(&center_crop(&resized, size))
            .map_err(|e| Error::InvalidInput(format!("encoding the thumbnail of {}: {e}", file.display())))?;
        std::fs::write(&path, encoded).map_err(|e| Error::io(&path, e))?;
        progress.advance(1);
    }
    progress.finish();
    Ok(())
}

/// A run's inputs, checked: the words, the image files (sorted) and the weights' digest.
struct Inputs {
    words: Vec<String>,
    files: Vec<PathBuf>,
    weights_sha256: String,
}

/// Checks the settings against the model and reads the words and the folder's file list.
fn check_inputs(model: &ClipModel, weights_bytes: &[u8], settings: &Settings) -> Result<Inputs> {
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
    let words = read_words(&settings.words)?;
    let files = list_images(&settings.images)?;
    if files.len() < settings.top_k {
        return Err(Error::InvalidInput(format!(
            "--top-k {} is larger than the number of images ({})",
            settings.top_k,
            files.len()
        )));
    }
    Ok(Inputs { words, files, weights_sha256: sha256_hex(weights_bytes) })
}

/// The checkpoint of an unsharded run, in the bundle directory.
const CHECKPOINT_FILE: &str = ".precompute-checkpoint.safetensors";

/// Runs the whole precomputation (both passes, resumable; the words and ImageNet classes through
/// the text tower; OMP; thumbnails) and writes the bundle to `settings.out`. Returns the bundle
/// written.
pub fn precompute(
    model: &ClipModel,
    device: &Device,
    weights_bytes: &[u8],
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Bundle> {
    let inputs = check_inputs(model, weights_bytes, settings)?;
    let vision = model.vision()?;
    model.text()?;
    let fingerprint = fingerprint(&inputs.weights_sha256, &settings.layers, settings.top_k, &inputs.files);
    let checkpoint = Checkpoint::new(settings.out.join(CHECKPOINT_FILE), fingerprint, settings.checkpoint_seconds);
    let (neurons, dim) = (vision.config.mlp_width, model.config.embed_dim);
    let resumed = checkpoint.load(&settings.layers, Sizes { neurons, dim, k: settings.top_k }, settings.restart)?;
    let mut passes = Passes::new(vision, settings, checkpoint, progress)?;
    let (stats, position) = passes.run(&inputs.files, resumed)?;
    let (checkpoint, progress) = (passes.checkpoint, passes.progress);
    let bundle = write_bundle(model, device, settings, inputs, stats, position, progress)?;
    checkpoint.remove()?;
    Ok(bundle)
}

/// What follows the passes, for a run and for a merge of shards alike: the words and ImageNet
/// classes through the text tower, OMP of every direction, thumbnails, and the bundle written
/// to `settings.out` (and returned).
fn write_bundle(
    model: &ClipModel,
    device: &Device,
    settings: &Settings,
    inputs: Inputs,
    stats: Vec<NeuronStatistics>,
    position: Position,
    progress: &mut dyn Progress,
) -> Result<Bundle> {
    let config = &model.config;
    let (vision, text) = (model.vision()?, model.text()?);
    let Inputs { words, weights_sha256, .. } = inputs;
    let dim = config.embed_dim;
    let tokenizer = ClipTokenizer::new();
    progress.start("embedding words", words.len(), 0);
    let word_embeds = pollster::block_on(word_embeddings(text, &tokenizer, &words, 256, |d| progress.reach(d)))?;
    progress.finish();
    let classes = lines(IMAGENET_CLASSES);
    let templates = lines(IMAGENET_TEMPLATES);
    progress.start("embedding ImageNet classes", classes.len(), 0);
    let class_embeds =
        pollster::block_on(class_embeddings(text, &tokenizer, &classes, &templates, 80, |d| progress.reach(d)))?;
    progress.finish();

    let dictionary = Dictionary::from_word_embeddings(&word_embeds, dim)?;
    let components = settings.components.min(words.len()).min(dim);
    let mut lens = BTreeMap::new();
    let mut top_images = BTreeMap::new();
    progress.start("sparse decompositions (OMP)", stats.len(), 0);
    for (layer, s) in settings.layers.iter().zip(stats) {
        let (decomposition_index, decomposition_coef) = decompose(&dictionary, &s.directions, components, device)?;
        top_images.insert(
            layer.to_string(),
            s.top_images.chunks(s.k).map(|ids| ids.iter().rev().copied().collect()).collect(),
        );
        lens.insert(
            *layer,
            LayerLens {
                mean: s.mean,
                direction: s.directions,
                norms: s.norms,
                decomposition_index,
                decomposition_coef,
                distributions: s.distributions,
            },
        );
        progress.advance(1);
    }
    progress.finish();
    if settings.thumbnail_size > 0 {
        let ids: BTreeSet<usize> = top_images.values().flatten().flatten().copied().collect();
        write_thumbnails(&settings.out, &position.images, &ids, settings.thumbnail_size, progress)?;
    }
    let base = &settings.images;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: settings.model_name.clone(),
        model_config: config.to_hf_json(),
        weights_sha256,
        layers: settings.layers.to_vec(),
        neurons: vision.config.mlp_width,
        embed_dim: dim,
        top_k: settings.top_k,
        components,
        word_sources: settings.words.iter().map(|p| p.display().to_string()).collect(),
        words,
        classes,
        images: position.images.iter().map(|p| p.strip_prefix(base).unwrap_or(p).display().to_string()).collect(),
        skipped_images: position.skipped,
        top_images,
        thumbnail_size: settings.thumbnail_size,
        histogram_bins: HISTOGRAM_BINS,
        percentiles: PERCENTILES.to_vec(),
    };
    let bundle = Bundle { manifest, layers: lens, word_embeds, class_embeds };
    bundle.write(&settings.out, settings.storage)?;
    Ok(bundle)
}
