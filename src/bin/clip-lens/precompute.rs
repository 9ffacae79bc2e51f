//! `clip-lens precompute`: the bundle the page reads, from an image folder and word lists
//! ([`clip_lens::precompute`] does the work; this file maps the arguments, shows the progress
//! bars and turns Ctrl-C into a checkpoint).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;

use clip_lens::bundle::Storage;
use clip_lens::model::ClipModel;
use clip_lens::precompute::{precompute as run, Settings};
use clip_lens::Result;

use crate::common::{Bars, ModelArgs};

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
    /// The library's settings for these arguments; `interrupted` is set by Ctrl-C.
    fn settings(&self, interrupted: &'static AtomicBool) -> Settings {
        Settings {
            images: self.images.clone(),
            layers: self.layers.clone(),
            top_k: self.top_k,
            words: self.words.clone(),
            components: self.components,
            out: self.out.clone(),
            batch: self.batch,
            storage: if self.f16 { Storage::F16 } else { Storage::F32 },
            thumbnail_size: self.thumbnail_size,
            checkpoint_seconds: self.checkpoint_seconds,
            restart: self.restart,
            model_name: self.model.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            interrupted,
            interrupt_after: self.interrupt_after,
            crash_after: self.crash_after,
        }
    }
}

/// Set by the Ctrl-C handler; the passes check it after every batch.
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

/// Runs the whole precomputation and writes the bundle.
pub fn precompute(model: &ClipModel, device: &Device, weights_bytes: &[u8], args: &PrecomputeCommand) -> Result<()> {
    install_interrupt_handler();
    let bundle = run(model, device, weights_bytes, &args.settings(&INTERRUPTED), &mut Bars::default())?;
    let manifest = &bundle.manifest;
    let (images, skipped) = (manifest.images.len(), manifest.skipped_images.len());
    eprintln!("wrote the bundle to {} ({images} images, {skipped} skipped)", args.out.display());
    Ok(())
}
