//! `clip-lens precompute`: the bundle the page reads, from an image folder and word lists
//! ([`clip_lens::precompute`] does the work; this file maps the arguments, shows the progress
//! bars, turns Ctrl-C into a checkpoint and awaits the run). With `--shard I/N` it runs one
//! shard of a pass, with `--merge` it merges shard files (`docs/sharding.md`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Device;

use clip_lens::bundle::{sha256_hex, Storage};
use clip_lens::model::ClipModel;
use clip_lens::precompute::{
    merge_shards, precompute as run, precompute_shard, DirectorySink, Driver, FolderSource, Merged, Progress, Settings,
    Shard, StopFlag, TextFile, WordList,
};
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
    /// Text embeddings of these weights made by `embed-text`: the words and ImageNet classes it
    /// holds are taken from it instead of the text tower (the words it lacks are embedded).
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
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
    /// Run one shard: the files of slice I (from 0) of N of the sorted image list (cut at
    /// multiples of --batch), pass 1, or pass 2 with --means; writes OUT/shards/passP-I-of-N.safetensors.
    #[arg(long, value_name = "I/N", conflicts_with = "merge")]
    pub shard: Option<Shard>,
    /// With --shard: run pass 2 of the shard, centred on these merged means (from --merge of
    /// every shard's pass-1 file).
    #[arg(long, value_name = "MEANS_FILE", requires = "shard")]
    pub means: Option<PathBuf>,
    /// Merge the shard files of one pass: pass-1 files into OUT/shards/means.safetensors, pass-2
    /// files into the bundle in OUT (the same bundle as an unsharded run).
    #[arg(long, value_name = "SHARD_FILE", num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Test hook: act as if Ctrl-C came once this many images were processed.
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    /// Test hook: abort the process (no clean-up) once this many images were processed.
    #[arg(long, hide = true)]
    pub crash_after: Option<usize>,
}

impl PrecomputeCommand {
    /// The library's settings for these arguments (the word files read).
    fn settings(&self) -> Result<Settings> {
        Ok(Settings {
            layers: self.layers.clone(),
            top_k: self.top_k,
            words: self.words.iter().map(|path| WordList::read(path)).collect::<Result<_>>()?,
            text: self.text.as_deref().map(TextFile::read).transpose()?,
            components: self.components,
            batch: self.batch,
            storage: if self.f16 { Storage::F16 } else { Storage::F32 },
            thumbnail_size: self.thumbnail_size,
            checkpoint_seconds: self.checkpoint_seconds,
            restart: self.restart,
            model_name: self.model.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            interrupt_after: self.interrupt_after,
            crash_after: self.crash_after,
        })
    }
}

/// The bars, and where stderr is not a terminal (a batch engine's log, where the bars are not
/// drawn) a line per stage when it ends: steps, seconds and rate.
struct Logged {
    bars: Bars,
    log: bool,
    stage: Option<(String, usize, Instant)>,
}

impl Logged {
    fn new() -> Self {
        Self { bars: Bars::default(), log: !std::io::stderr().is_terminal(), stage: None }
    }
}

impl Progress for Logged {
    fn start(&mut self, what: &str, total: usize, done: usize) {
        self.bars.start(what, total, done);
        self.stage = Some((what.to_string(), total.saturating_sub(done), Instant::now()));
    }
    fn advance(&mut self, steps: usize) {
        self.bars.advance(steps);
    }
    fn reach(&mut self, done: usize) {
        self.bars.reach(done);
    }
    fn finish(&mut self) {
        self.bars.finish();
        if let (true, Some((what, steps, started))) = (self.log, self.stage.take()) {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("{what}: {steps} in {seconds:.2} s ({:.2}/s)", steps as f64 / seconds.max(1e-9));
        }
    }
    fn note(&mut self, message: &str) {
        self.bars.note(message);
    }
}

/// Set by the Ctrl-C handler; the passes check it after every batch ([`StopFlag`]).
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

impl PrecomputeCommand {
    /// Whether the model's text tower is needed: not by a shard's passes.
    pub fn needs_text_tower(&self) -> bool {
        self.shard.is_none()
    }
}

/// Runs the whole precomputation and writes the bundle, or one shard's pass, or a merge.
pub fn precompute(model: &ClipModel, device: &Device, weights_bytes: &[u8], args: &PrecomputeCommand) -> Result<()> {
    pollster::block_on(precompute_async(model, device, &sha256_hex(weights_bytes), args))
}

async fn precompute_async(
    model: &ClipModel,
    device: &Device,
    weights_sha256: &str,
    args: &PrecomputeCommand,
) -> Result<()> {
    install_interrupt_handler();
    let settings = args.settings()?;
    let (source, sink) = (FolderSource::new(&args.images), DirectorySink::new(&args.out));
    let (bars, control) = (&mut Logged::new(), &mut StopFlag(&INTERRUPTED));
    let driver = Driver::new(&source, &sink, bars, control);
    if let Some(shard) = args.shard {
        let file = precompute_shard(model, weights_sha256, &settings, shard, args.means.as_deref(), driver).await?;
        let pass = if args.means.is_some() { 2 } else { 1 };
        eprintln!("wrote pass {pass} of shard {shard} to {}", file.display());
        return Ok(());
    }
    if !args.merge.is_empty() {
        match merge_shards(model, device, weights_sha256, &settings, &args.merge, driver).await? {
            Merged::Means { path, images, skipped } => {
                eprintln!(
                    "merged the means of {} shards into {} ({images} images, {skipped} skipped); next: pass 2 of \
                     every shard with --means {}",
                    args.merge.len(),
                    path.display(),
                    path.display()
                );
            }
            Merged::Bundle(bundle) => wrote_bundle(&bundle, &args.out),
        }
        return Ok(());
    }
    let bundle = run(model, device, weights_sha256, &settings, driver).await?;
    wrote_bundle(&bundle, &args.out);
    Ok(())
}

fn wrote_bundle(bundle: &clip_lens::bundle::Bundle, out: &Path) {
    let manifest = &bundle.manifest;
    let (images, skipped) = (manifest.images.len(), manifest.skipped_images.len());
    eprintln!("wrote the bundle to {} ({images} images, {skipped} skipped)", out.display());
}
