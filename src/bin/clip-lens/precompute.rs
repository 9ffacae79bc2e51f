//! `clip-lens precompute`: neuron statistics over an image folder, the text dictionary, OMP,
//! and the bundle the page reads.
//!
//! The two passes over the images are checkpointed into `OUT/.precompute-checkpoint.safetensors`
//! (accumulators in full, f64 sums included, and the position in the folder), every
//! `--checkpoint-seconds` and on Ctrl-C. Running the same command again resumes where the last
//! checkpoint was taken, with identical results; the checkpoint is removed once the bundle is
//! written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use clip_lens::bundle::{sha256_hex, Bundle, LayerLens, Manifest, Storage, FORMAT_VERSION};
use clip_lens::device::read_f32_blocking;
use clip_lens::lens::{
    orthogonal_matching_pursuit, second_order_effects, Dictionary, LensFactors, MeanAccumulator, NeuronStatistics,
    TopKAccumulator,
};
use clip_lens::model::{CaptureRequest, ClipModel, VisionTransformer};
use clip_lens::preprocess::{center_crop, decode_image, preprocess_image};
use clip_lens::tensor_file::{deserialize, serialize_with_metadata, NamedTensor};
use clip_lens::text_embeddings::{class_embeddings, lines, word_embeddings, IMAGENET_CLASSES, IMAGENET_TEMPLATES};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{Error, Result};

use crate::common::{progress, ModelArgs};

/// `clip-lens precompute`'s arguments.
#[derive(clap::Args)]
pub struct PrecomputeCommand {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder of images (not recursive; unreadable files are skipped and counted).
    #[arg(long)]
    pub images: PathBuf,
    /// Comma-separated lens layers.
    #[arg(long, value_delimiter = ',', required = true)]
    pub layers: Vec<usize>,
    /// Images kept per neuron (the paper: 100).
    #[arg(long, default_value_t = 100)]
    pub top_k: usize,
    /// Word list files, one text per line.
    #[arg(long, num_args = 1.., required = true)]
    pub words: Vec<PathBuf>,
    /// OMP components per neuron (the paper: 128).
    #[arg(long, default_value_t = 128)]
    pub components: usize,
    /// Output bundle directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Store the means, directions and embeddings as f16 (half the size).
    #[arg(long)]
    pub f16: bool,
    /// Side in pixels of the JPEG thumbnails of the top images (0: none).
    #[arg(long, default_value_t = 64)]
    pub thumbnail_size: u32,
    /// Seconds between checkpoints (0: after every batch). Ctrl-C always checkpoints.
    #[arg(long, default_value_t = 60)]
    pub checkpoint_seconds: u64,
    /// Discard a checkpoint in --out instead of resuming from it.
    #[arg(long)]
    pub restart: bool,
    /// Test hook: act as if Ctrl-C came once this many images were processed.
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    /// Test hook: abort the process (no clean-up) once this many images were processed.
    #[arg(long, hide = true)]
    pub crash_after: Option<usize>,
}

impl PrecomputeCommand {
    fn storage(&self) -> Storage {
        if self.f16 {
            Storage::F16
        } else {
            Storage::F32
        }
    }
}

/// Set by the Ctrl-C handler; checked after every batch.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The first Ctrl-C asks for a checkpoint and a clean stop; a second one stops at once.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: saving a checkpoint after this batch (Ctrl-C again to stop at once)");
    });
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

/// Decodes and preprocesses `files`, returning the pixels of those that decode and naming
/// (on stderr, through `bar`) those that do not.
fn decode_batch(files: &[PathBuf], size: usize, bar: &ProgressBar) -> (Vec<PathBuf>, Vec<f32>, Vec<String>) {
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
                bar.suspend(|| eprintln!("skipping {}: {e}", file.display()));
                skipped.push(file.display().to_string());
            }
        }
    }
    (decoded, pixels, skipped)
}

/// Where a run stands: the pass (1: means over every file, 2: top-k over the images that
/// decoded), how many inputs of that pass are done, and the images that decoded or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Position {
    pass: u8,
    done: usize,
    images: Vec<PathBuf>,
    skipped: Vec<String>,
}

/// The accumulators of the current pass, one per lens layer.
enum Accumulators {
    Means(Vec<MeanAccumulator>),
    Tops(Vec<TopKAccumulator>),
}

impl Accumulators {
    fn add(&mut self, layer: usize, effects: &[f32]) -> Result<()> {
        match self {
            Accumulators::Means(m) => m[layer].add(effects),
            Accumulators::Tops(t) => t[layer].add(effects),
        }
    }

    fn snapshot(&self, layers: &[usize]) -> Vec<NamedTensor> {
        match self {
            Accumulators::Means(m) => {
                m.iter().zip(layers).flat_map(|(a, l)| a.snapshot(&format!("layer.{l}"))).collect()
            }
            Accumulators::Tops(t) => {
                t.iter().zip(layers).flat_map(|(a, l)| a.snapshot(&format!("layer.{l}"))).collect()
            }
        }
    }
}

/// The checkpoint file of a run, and when it was last written.
struct Checkpoint {
    path: PathBuf,
    /// What must be equal for a checkpoint to be resumed: weights, layers, k and the files.
    fingerprint: String,
    every: Duration,
    last_saved: Instant,
}

const CHECKPOINT_VERSION: &str = "1";

impl Checkpoint {
    fn new(out: &Path, fingerprint: String, seconds: u64) -> Self {
        Self {
            path: out.join(".precompute-checkpoint.safetensors"),
            fingerprint,
            every: Duration::from_secs(seconds),
            last_saved: Instant::now(),
        }
    }

    /// Writes the state atomically (a temporary file renamed over the old checkpoint).
    fn save(&mut self, position: &Position, accumulators: &Accumulators, layers: &[usize]) -> Result<()> {
        let position_json =
            serde_json::to_string(position).map_err(|e| Error::InvalidInput(format!("checkpoint position: {e}")))?;
        let metadata = HashMap::from([
            ("version".to_string(), CHECKPOINT_VERSION.to_string()),
            ("fingerprint".to_string(), self.fingerprint.clone()),
            ("position".to_string(), position_json),
        ]);
        let bytes = serialize_with_metadata(&accumulators.snapshot(layers), Some(metadata))?;
        let parent = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, bytes).map_err(|e| Error::io(&temporary, e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.last_saved = Instant::now();
        Ok(())
    }

    fn due(&self) -> bool {
        self.last_saved.elapsed() >= self.every
    }

    /// The saved state, if a checkpoint of this very run exists. A checkpoint of another run
    /// (other weights, layers, k or files) is an error unless `restart`.
    fn load(
        &self,
        layers: &[usize],
        neurons: usize,
        dim: usize,
        k: usize,
        restart: bool,
    ) -> Result<Option<(Position, Accumulators)>> {
        if !self.path.exists() {
            return Ok(None);
        }
        if restart {
            std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))?;
            return Ok(None);
        }
        let corrupt = |why: String| {
            Error::InvalidInput(format!(
                "the checkpoint {} is unusable ({why}); pass --restart to start over",
                self.path.display()
            ))
        };
        let bytes = std::fs::read(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let (tensors, metadata) = deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let field = |name: &str| metadata.get(name).cloned().ok_or_else(|| corrupt(format!("no {name}")));
        if field("version")? != CHECKPOINT_VERSION {
            return Err(corrupt("written by another version".into()));
        }
        if field("fingerprint")? != self.fingerprint {
            return Err(Error::InvalidInput(format!(
                "{} holds a checkpoint of a different run (other weights, layers, --top-k or image files); pass --restart to discard it",
                self.path.display()
            )));
        }
        let position: Position = serde_json::from_str(&field("position")?).map_err(|e| corrupt(e.to_string()))?;
        let restore = |l: &usize| format!("layer.{l}");
        let accumulators = match position.pass {
            1 => Accumulators::Means(
                layers
                    .iter()
                    .map(|l| MeanAccumulator::restore(&tensors, &restore(l), neurons, dim))
                    .collect::<Result<_>>()
                    .map_err(|e| corrupt(e.to_string()))?,
            ),
            2 => Accumulators::Tops(
                layers
                    .iter()
                    .map(|l| TopKAccumulator::restore(&tensors, &restore(l), neurons, dim, k))
                    .collect::<Result<_>>()
                    .map_err(|e| corrupt(e.to_string()))?,
            ),
            other => return Err(corrupt(format!("pass {other}"))),
        };
        Ok(Some((position, accumulators)))
    }

    fn remove(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.path, e)),
            _ => Ok(()),
        }
    }
}

/// What a checkpoint must agree on: weights, layers, k, and every file's name and size.
fn fingerprint(weights_sha256: &str, args: &PrecomputeCommand, files: &[PathBuf]) -> String {
    let listing: String = files
        .iter()
        .map(|f| format!("{}:{}\n", f.display(), std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)))
        .collect();
    sha256_hex(format!("{weights_sha256}|{:?}|{}|{listing}", args.layers, args.top_k).as_bytes())
}

/// The streaming passes, resumable.
struct Passes<'a> {
    vision: &'a VisionTransformer,
    factors: Vec<LensFactors>,
    args: &'a PrecomputeCommand,
    checkpoint: Checkpoint,
    processed_this_run: usize,
}

impl Passes<'_> {
    /// Runs (or resumes) both passes; returns the statistics per layer and the position at the end.
    fn run(
        &mut self,
        files: &[PathBuf],
        resumed: Option<(Position, Accumulators)>,
    ) -> Result<(Vec<NeuronStatistics>, Position)> {
        let (neurons, dim) = (self.vision.config.mlp_width, self.vision.projection.dims()[1]);
        let (mut position, mut accumulators) = match resumed {
            Some((position, accumulators)) => {
                let total = if position.pass == 1 { files.len() } else { position.images.len() };
                eprintln!("resuming from the checkpoint: pass {}/2 at image {}/{total}", position.pass, position.done);
                (position, accumulators)
            }
            None => (
                Position { pass: 1, done: 0, images: Vec::new(), skipped: Vec::new() },
                Accumulators::Means(self.factors.iter().map(|_| MeanAccumulator::new(neurons, dim)).collect()),
            ),
        };
        if position.pass == 1 {
            self.pass(files, "pass 1/2 (means)", &mut position, &mut accumulators)?;
            let Accumulators::Means(means) = accumulators else { unreachable!("pass 1 accumulates means") };
            if position.images.len() < self.args.top_k {
                return Err(Error::InvalidInput(format!(
                    "--top-k {} is larger than the number of readable images ({}, {} skipped)",
                    self.args.top_k,
                    position.images.len(),
                    position.skipped.len()
                )));
            }
            accumulators = Accumulators::Tops(
                means
                    .iter()
                    .map(|m| TopKAccumulator::new(m.mean()?, neurons, dim, self.args.top_k))
                    .collect::<Result<_>>()?,
            );
            position.pass = 2;
            position.done = 0;
            self.checkpoint.save(&position, &accumulators, &self.args.layers)?;
        }
        let images = position.images.clone();
        self.pass(&images, "pass 2/2 (top-k)", &mut position, &mut accumulators)?;
        let Accumulators::Tops(tops) = accumulators else { unreachable!("pass 2 keeps the top k") };
        Ok((tops.into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?, position))
    }

    /// One pass over `inputs[position.done..]`, batch by batch (memory O(batch)), with
    /// checkpoints.
    fn pass(
        &mut self,
        inputs: &[PathBuf],
        what: &str,
        position: &mut Position,
        accumulators: &mut Accumulators,
    ) -> Result<()> {
        let size = self.vision.config.image_size;
        let layers: Vec<usize> = self.factors.iter().map(|f| f.layer).collect();
        let request = CaptureRequest::for_lens(&layers);
        let bar = progress(inputs.len(), what);
        bar.set_position(position.done as u64);
        bar.reset_eta();
        let start = position.done;
        for chunk in inputs[start..].chunks(self.args.batch.max(1)) {
            let (ok, pixels, failed) = decode_batch(chunk, size, &bar);
            if position.pass == 2 && ok.len() != chunk.len() {
                return Err(Error::InvalidInput(
                    "an image changed between the two passes (it no longer decodes)".into(),
                ));
            }
            if !ok.is_empty() {
                let input = self.vision.pixel_tensor(pixels)?;
                let output = self.vision.forward(input, &request)?;
                for (i, f) in self.factors.iter().enumerate() {
                    accumulators.add(i, &read_f32_blocking(second_order_effects(self.vision, f, &output)?)?)?;
                }
            }
            if position.pass == 1 {
                position.images.extend(ok);
                position.skipped.extend(failed);
            }
            position.done += chunk.len();
            self.processed_this_run += chunk.len();
            bar.inc(chunk.len() as u64);
            self.after_batch(position, accumulators, &bar)?;
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Checkpoints when due or interrupted; stops on an interruption.
    fn after_batch(&mut self, position: &Position, accumulators: &Accumulators, bar: &ProgressBar) -> Result<()> {
        let simulated = |limit: Option<usize>| limit.is_some_and(|n| self.processed_this_run >= n);
        if simulated(self.args.interrupt_after) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if interrupted || self.checkpoint.due() {
            self.checkpoint.save(position, accumulators, &self.args.layers)?;
        }
        if simulated(self.args.crash_after) {
            bar.suspend(|| eprintln!("simulated crash after {} images", self.processed_this_run));
            std::process::abort();
        }
        if interrupted {
            bar.abandon();
            return Err(Error::Interrupted(format!(
                "progress saved to {} (pass {}/2, {} done); run the same command again to resume",
                self.checkpoint.path.display(),
                position.pass,
                position.done
            )));
        }
        Ok(())
    }
}

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
fn write_thumbnails(out: &Path, images: &[PathBuf], ids: &BTreeSet<usize>, size: u32) -> Result<()> {
    let dir = out.join("thumbnails");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let bar = progress(ids.len(), "thumbnails");
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
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Runs the whole precomputation and writes the bundle.
pub fn precompute(model: &ClipModel, device: &Device, weights_bytes: &[u8], args: &PrecomputeCommand) -> Result<()> {
    let config = &model.config;
    let vision = model.vision()?;
    let text = model.text()?;
    let layers = vision.config.layers;
    if let Some(&bad) = args.layers.iter().find(|&&l| l >= layers) {
        return Err(Error::InvalidInput(format!(
            "layer {bad} is out of range: the image tower has layers 0..={}",
            layers - 1
        )));
    }
    let words = read_words(&args.words)?;
    let files = list_images(&args.images)?;
    if files.len() < args.top_k {
        return Err(Error::InvalidInput(format!(
            "--top-k {} is larger than the number of images ({})",
            args.top_k,
            files.len()
        )));
    }
    let dim = config.embed_dim;
    let weights_sha256 = sha256_hex(weights_bytes);
    let checkpoint = Checkpoint::new(&args.out, fingerprint(&weights_sha256, args, &files), args.checkpoint_seconds);
    let resumed = checkpoint.load(&args.layers, vision.config.mlp_width, dim, args.top_k, args.restart)?;
    install_interrupt_handler();
    let factors = args.layers.iter().map(|&l| LensFactors::new(vision, l)).collect::<Result<Vec<_>>>()?;
    let mut passes = Passes { vision, factors, args, checkpoint, processed_this_run: 0 };
    let (stats, position) = passes.run(&files, resumed)?;

    let tokenizer = ClipTokenizer::new();
    let bar: ProgressBar = progress(words.len(), "embedding words");
    let word_embeds =
        pollster::block_on(word_embeddings(text, &tokenizer, &words, 256, |d| bar.set_position(d as u64)))?;
    bar.finish_and_clear();
    let classes = lines(IMAGENET_CLASSES);
    let templates = lines(IMAGENET_TEMPLATES);
    let bar = progress(classes.len(), "embedding ImageNet classes");
    let class_embeds = pollster::block_on(class_embeddings(text, &tokenizer, &classes, &templates, 80, |d| {
        bar.set_position(d as u64)
    }))?;
    bar.finish_and_clear();

    let dictionary = Dictionary::from_word_embeddings(&word_embeds, dim)?;
    let components = args.components.min(words.len()).min(dim);
    let mut lens = BTreeMap::new();
    let mut top_images = BTreeMap::new();
    let bar = progress(stats.len(), "sparse decompositions (OMP)");
    for (layer, s) in args.layers.iter().zip(stats) {
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
            },
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.thumbnail_size > 0 {
        let ids: BTreeSet<usize> = top_images.values().flatten().flatten().copied().collect();
        write_thumbnails(&args.out, &position.images, &ids, args.thumbnail_size)?;
    }
    let base = &args.images;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: args.model.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model_config: config.to_hf_json(),
        weights_sha256,
        layers: args.layers.to_vec(),
        neurons: vision.config.mlp_width,
        embed_dim: dim,
        top_k: args.top_k,
        components,
        word_sources: args.words.iter().map(|p| p.display().to_string()).collect(),
        words,
        classes,
        images: position.images.iter().map(|p| p.strip_prefix(base).unwrap_or(p).display().to_string()).collect(),
        skipped_images: position.skipped,
        top_images,
        thumbnail_size: args.thumbnail_size,
    };
    let bundle = Bundle { manifest, layers: lens, word_embeds, class_embeds };
    bundle.write(&args.out, args.storage())?;
    passes.checkpoint.remove()?;
    eprintln!(
        "wrote the bundle to {} ({} images, {} skipped)",
        args.out.display(),
        bundle.manifest.images.len(),
        bundle.manifest.skipped_images.len()
    );
    Ok(())
}
