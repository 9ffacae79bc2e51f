//! What the commands share: where the model comes from and loading it, bundles checked against
//! the weights, the engine with a bundle and the image files it reads, preprocessed pixels of
//! the inputs, progress bars. Every command file uses this, and none uses another command's file.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};

use clip_lens::apps::engine::Engine;
use clip_lens::bundle::{sha256_hex, Bundle};
use clip_lens::device::{device, BackendKind};
use clip_lens::model::{ClipModel, Towers};
use clip_lens::precompute::Progress;
use clip_lens::preprocess::preprocess_image;
use clip_lens::{ClipConfig, Error, Result, WeightFile};

/// Where the model comes from and where it runs.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// CLIP weights (.safetensors, OpenAI/open_clip or Hugging Face names).
    #[arg(long)]
    pub weights: PathBuf,
    /// The model's configuration: Hugging Face config.json or open_clip model JSON (default: the
    /// config.json beside the weights, else inferred from the shapes of OpenAI's checkpoints).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// cpu (burn flex) or gpu (wgpu).
    #[arg(long, default_value = "cpu")]
    pub device: BackendKind,
}

/// A loaded model with the file it came from and the device it runs on.
pub struct Loaded {
    pub model: ClipModel,
    pub weights: WeightFile,
    pub device: Device,
    pub backend: BackendKind,
}

/// The model of `args` with the towers asked for, on its device.
pub fn load_model(args: &ModelArgs, towers: Towers) -> Result<Loaded> {
    let weights = WeightFile::open(&args.weights)?;
    let config = ClipConfig::resolve(&weights, &args.weights, args.config.as_deref())?;
    let device = device(args.device)?;
    let model = ClipModel::load(&weights, &config, towers, &device)?;
    Ok(Loaded { model, weights, device, backend: args.device })
}

/// Preprocessed pixels of every input, in order, as `[3*S*S]` rows.
pub fn load_pixels(paths: &[PathBuf], size: usize) -> Result<Vec<Vec<f32>>> {
    let mut rows = Vec::new();
    for path in paths {
        if path.extension().is_some_and(|e| e == "safetensors") {
            rows.extend(pixels_from_safetensors(path, size)?);
        } else {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let pre = preprocess_image(&bytes, size as u32)
                .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            rows.push(pre.pixels);
        }
    }
    Ok(rows)
}

fn pixels_from_safetensors(path: &Path, size: usize) -> Result<Vec<Vec<f32>>> {
    let file = WeightFile::open(path)?;
    let (values, shape) = file.tensor_any_shape("pixels")?;
    if shape.len() != 4 || shape[1] != 3 || shape[2] != size || shape[3] != size {
        return Err(Error::ShapeMismatch {
            name: format!("{}: pixels", path.display()),
            expected: vec![0, 3, size, size],
            found: shape,
        });
    }
    Ok(values.chunks(3 * size * size).map(<[f32]>::to_vec).collect())
}

/// A progress bar with rate and ETA.
pub fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, ETA {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Reads a bundle and checks that it was made from these weights.
pub fn read_bundle_for(dir: &Path, weights: &[u8]) -> Result<Bundle> {
    let bundle = Bundle::read(dir)?;
    bundle.check_weights(&sha256_hex(weights))?;
    Ok(bundle)
}

/// The engine over a loaded model with the bundle in `dir` (checked against the weights): what
/// the commands that read images with a bundle run, as the page does.
pub fn engine_with_bundle(loaded: Loaded, dir: &Path) -> Result<Engine> {
    let bundle = Bundle::read(dir)?;
    let sha256 = sha256_hex(loaded.weights.bytes());
    let mut engine = Engine::from_model(loaded.model, sha256, loaded.device, loaded.backend);
    engine.use_bundle(bundle)?;
    Ok(engine)
}

/// A file's bytes.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// An engine error about the image in `path`, naming the file when the image could not be read.
pub fn on_file(path: &Path, error: Error) -> Error {
    match error {
        Error::Preprocess(e) => Error::InvalidInput(format!("{}: {e}", path.display())),
        other => other,
    }
}

/// The library's [`Progress`] as indicatif bars, one per stage; notes print above the bar.
#[derive(Default)]
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn start(&mut self, what: &str, total: usize, done: usize) {
        let bar = progress(total, what);
        bar.set_position(done as u64);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, steps: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(steps as u64);
        }
    }

    fn reach(&mut self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}
