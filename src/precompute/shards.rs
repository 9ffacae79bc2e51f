//! Sharded precompute: the two passes cut into N slices of the image list that any batch engine
//! runs as N ordinary processes, and merges that give exactly the bundle of one process.
//!
//! The flow (each step an ordinary `precompute` with the run's arguments, plus):
//!
//! 1. `--shard I/N` for every I in 0..N: pass 1 over shard I's slice, written to
//!    `OUT/shards/pass1-I-of-N.safetensors` (the f64 sums and counts, the files that decoded).
//! 2. `--merge` the N pass-1 files: the sums added in shard order, written to
//!    `OUT/shards/means.safetensors` with every shard's list of decoded images.
//! 3. `--shard I/N --means OUT/shards/means.safetensors` for every I: pass 2 over shard I's
//!    decoded images, centred on the merged means, written to `OUT/shards/pass2-I-of-N.safetensors`
//!    (per neuron the top k norms, image ids and centred effects; the histogram counts).
//! 4. `--merge` the N pass-2 files: the top k of the union (ids shifted by the images of the
//!    shards before), then what an unsharded run does after its passes (words, classes, OMP,
//!    thumbnails): the bundle in OUT.
//!
//! The slice rule: the sorted file list is cut into batches of `--batch` files, and shard I
//! takes batches `floor(I*B/N)` to `floor((I+1)*B/N)` (B batches in all), so every forward
//! batch of pass 1 holds the files it holds in an unsharded run, and the concatenation of the
//! shards in order is the list itself. Image ids are positions among the decoded images, so
//! shard I's ids follow those of shards 0..I.
//!
//! Each shard file tells which run, shard and means it belongs to (`shard_files`), and merges
//! refuse a wrong set by name. A shard's process checkpoints like an unsharded run (its own
//! checkpoint file beside its shard file), so a shard that was stopped or killed resumes; a
//! shard whose file is already written is not run again (unless `--restart`).
//!
//! Native only: merges read shard files by path (a header alone, then one file at a time) from
//! wherever the batch engine left them, so the shards write through a [`DirectorySink`], whose
//! paths they know.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;

use super::checkpoint::{Accumulators, Checkpoint, Locations};
use super::driver::{Control, Driver};
use super::io::{DirectorySink, ImageSource};
use super::passes::{check_readable, Passes};
use super::shard_files::{
    check_shards, means_digest, pass_two_position, read_accumulators, read_header, write_shard_file, Header, Kind, Run,
    Slice,
};
use super::{check_inputs, sizes, write_bundle, Settings};
use crate::bundle::{sha256_hex, Bundle};
use crate::lens::{MeanAccumulator, TopKAccumulator};
use crate::model::ClipModel;
use crate::{Error, Result};

/// Shard `index` (from 0) of `count`, written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, in `0..count`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{text:?} is not I/N with 0 <= I < N (e.g. 0/4 for the first of four shards)");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The positions in the sorted list of `files` files that this shard reads (see the slice
    /// rule in the module's documentation); empty when there are fewer batches than shards.
    pub fn slice(&self, files: usize, batch: usize) -> Range<usize> {
        let batch = batch.max(1);
        let batches = files.div_ceil(batch);
        let start = |shard: usize| (shard * batches / self.count * batch).min(files);
        start(self.index)..start(self.index + 1)
    }

    /// The name of its shard file of pass `pass` (1 or 2).
    pub(super) fn file_name(&self, pass: u8) -> String {
        format!("pass{pass}-{}-of-{}.safetensors", self.index, self.count)
    }
}

/// The folder, in the output directory, of a run's shard files, the merged means and the
/// shards' checkpoints.
const SHARD_DIR: &str = "shards";

/// The merged means' file in [`SHARD_DIR`].
const MEANS_FILE: &str = "shards/means.safetensors";

/// The folder of a run's shard files, the merged means and the shards' checkpoints.
pub fn shard_dir(out: &Path) -> PathBuf {
    out.join(SHARD_DIR)
}

/// The merged means' file in [`shard_dir`].
pub fn means_file(out: &Path) -> PathBuf {
    out.join(MEANS_FILE)
}

/// Runs one shard's pass 1 (`means` none) or pass 2 (centred on the means file of step 2) and
/// writes its shard file into the sink's [`shard_dir`]; returns the file's path. Resumes from
/// the shard's checkpoint; does nothing when the shard file of this very work exists (unless
/// `settings.restart`).
pub async fn precompute_shard<S: ImageSource, C: Control>(
    model: &ClipModel,
    weights_sha256: &str,
    settings: &Settings,
    shard: Shard,
    means: Option<&Path>,
    driver: Driver<'_, S, DirectorySink, C>,
) -> Result<PathBuf> {
    let Driver { source, sink, progress, control } = driver;
    let inputs = check_inputs(model, weights_sha256, settings, source).await?;
    let vision = model.vision()?;
    let sizes = sizes(model, settings)?;
    let run = Run::new(settings, &inputs.weights_sha256, &inputs.images);
    let means = means.map(|path| read_means(path, &run, shard, sizes.neurons, sizes.dim)).transpose()?;
    let (kind, pass) = if means.is_some() { (Kind::Pass2, 2) } else { (Kind::Pass1, 1) };
    let mut header = Header {
        kind,
        run,
        shards: shard.count,
        shard: Some(shard.index),
        means_sha256: means.as_ref().map(|(_, _, digest)| digest.clone()),
        slices: Vec::new(),
    };
    let name = format!("{SHARD_DIR}/{}", shard.file_name(pass));
    let out = sink.path(&name);
    if !settings.restart && read_header(&out).is_ok_and(|done| done.same_work(&header)) {
        progress.note(&format!("{} is already written: shard {shard} of pass {pass} is done", out.display()));
        return Ok(out);
    }
    let fingerprint = sha256_hex(
        serde_json::to_string(&header).map_err(|e| Error::InvalidInput(format!("shard header: {e}")))?.as_bytes(),
    );
    let checkpoint_name = format!("{SHARD_DIR}/.pass{pass}-{}-of-{}.checkpoint.safetensors", shard.index, shard.count);
    let locations = Locations::new(source, &inputs.images);
    let checkpoint = Checkpoint::new(sink, checkpoint_name, fingerprint, locations, settings.checkpoint_seconds);
    let resumed = checkpoint.load(&settings.layers, sizes, settings.restart).await?;
    let mut passes = Passes::new(vision, settings, source, checkpoint, progress, control)?;
    let (inputs, start) = match means {
        None => {
            let slice = shard.slice(inputs.images.len(), settings.batch);
            (inputs.images[slice].iter().map(|e| e.name.clone()).collect(), passes.pass_one_start())
        }
        Some((means, slice, _)) => {
            let position = pass_two_position(std::slice::from_ref(&slice));
            let tops = Accumulators::Tops(passes.pass_two_start(&means)?);
            (position.images.clone(), (position, tops))
        }
    };
    let (position, accumulators) = passes.run_one(&inputs, start, resumed).await?;
    header.slices = vec![Slice::new(&position)];
    let out = write_shard_file(sink, &name, &header, &accumulators).await?;
    passes.checkpoint.remove().await?;
    Ok(out)
}

/// The merged means of `path` (checked against the run and the shard), shard's slice, and
/// their digest.
fn read_means(
    path: &Path,
    run: &Run,
    shard: Shard,
    neurons: usize,
    dim: usize,
) -> Result<(Vec<MeanAccumulator>, Slice, String)> {
    let header = read_header(path)?;
    let refuse = |why: String| Error::InvalidInput(format!("--means {}: {why}", path.display()));
    if header.kind != Kind::Means {
        return Err(refuse(format!("this is {}, not the merged means of the pass-1 shards", header.kind_name())));
    }
    if let Some(difference) = run.difference(&header.run) {
        return Err(refuse(format!("these means are of another run: {difference}")));
    }
    if header.shards != shard.count || header.slices.len() != shard.count {
        return Err(refuse(format!("these means are of {} shards, not {}", header.shards, shard.count)));
    }
    let accumulators = read_accumulators(path, &header, neurons, dim)?;
    let digest = means_digest(&accumulators, &header)?;
    Ok((accumulators.into_means(), header.slices[shard.index].clone(), digest))
}

/// What a merge wrote.
#[derive(Debug)]
pub enum Merged {
    /// Pass-1 shards: the merged means, for pass 2 of every shard.
    Means {
        /// The means file.
        path: PathBuf,
        /// Images that decoded, in all.
        images: usize,
        /// Files skipped, in all.
        skipped: usize,
    },
    /// Pass-2 shards: the bundle, written to the sink.
    Bundle(Box<Bundle>),
}

/// Merges the shard files of one pass of `settings`' run: every shard 0..N exactly once, all
/// of this run (and for pass 2, all centred on the same means), else an error that names the
/// file. Pass-1 files give the means file ([`means_file`]); pass-2 files give the bundle,
/// written as [`super::precompute`] writes it.
pub async fn merge_shards<S: ImageSource, C: Control>(
    model: &ClipModel,
    device: &Device,
    weights_sha256: &str,
    settings: &Settings,
    files: &[PathBuf],
    driver: Driver<'_, S, DirectorySink, C>,
) -> Result<Merged> {
    let inputs = check_inputs(model, weights_sha256, settings, driver.source).await?;
    let sizes = sizes(model, settings)?;
    let run = Run::new(settings, &inputs.weights_sha256, &inputs.images);
    let shards = check_shards(&run, files)?;
    let kind = shards[0].1.kind;
    if kind == Kind::Pass2 {
        super::text_side::check(model, &inputs.weights_sha256, settings, &inputs.words)?;
    }
    let progress = &mut *driver.progress;
    progress.start(&format!("merging {} shards", shards.len()), shards.len(), 0);
    let mut merged: Option<Accumulators> = None;
    for (path, header) in &shards {
        let accumulators = read_accumulators(path, header, sizes.neurons, sizes.dim)?;
        match &mut merged {
            None => merged = Some(accumulators),
            Some(merged) => {
                merged.merge(&accumulators).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?
            }
        }
        progress.advance(1);
    }
    progress.finish();
    let merged = merged.expect("check_shards returns at least one shard");
    let slices: Vec<Slice> = shards.into_iter().flat_map(|(_, header)| header.slices).collect();
    let position = pass_two_position(&slices);
    if kind == Kind::Pass1 {
        check_readable(&position.images, position.skipped.len(), settings.top_k)?;
        let header = Header { kind: Kind::Means, run, shards: slices.len(), shard: None, means_sha256: None, slices };
        let path = write_shard_file(driver.sink, MEANS_FILE, &header, &merged).await?;
        return Ok(Merged::Means { path, images: position.images.len(), skipped: position.skipped.len() });
    }
    let stats = merged.into_tops().into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?;
    Ok(Merged::Bundle(Box::new(write_bundle(model, device, settings, inputs, stats, position, driver).await?)))
}
