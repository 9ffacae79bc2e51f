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
//! Every shard file carries the run it belongs to ([`Run`]: weights, layers, k, batch and a
//! digest of the file names and sizes), its index and N, and for pass 2 the digest of the means
//! it was centred on; merges refuse a file that disagrees, a missing or a repeated shard, and
//! name the file. A shard's process checkpoints like an unsharded run (its own checkpoint file
//! beside its shard file), so a shard that was stopped or killed resumes; a shard whose file
//! is already written is not run again (unless `--restart`).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::checkpoint::{listing, write_atomically, Accumulators, Checkpoint, Position};
use super::passes::{check_readable, Passes};
use super::{check_inputs, write_bundle, Inputs, Progress, Settings};
use crate::bundle::{sha256_hex, Bundle};
use crate::lens::{MeanAccumulator, Sizes, TopKAccumulator};
use crate::model::ClipModel;
use crate::tensor_file::{deserialize, serialize, serialize_with_metadata};
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

    /// The shard file of pass `pass` (1 or 2) in `dir`.
    fn file(&self, dir: &Path, pass: u8) -> PathBuf {
        dir.join(format!("pass{pass}-{}-of-{}.safetensors", self.index, self.count))
    }
}

/// The folder of a run's shard files, the merged means and the shards' checkpoints.
pub fn shard_dir(out: &Path) -> PathBuf {
    out.join("shards")
}

/// The merged means' file in [`shard_dir`].
pub fn means_file(out: &Path) -> PathBuf {
    shard_dir(out).join("means.safetensors")
}

/// What every shard file of one run agrees on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    weights_sha256: String,
    layers: Vec<usize>,
    top_k: usize,
    batch: usize,
    /// Image files in the folder.
    images: usize,
    /// sha256 of their names (relative to the folder) and sizes, in order.
    images_sha256: String,
}

impl Run {
    fn new(settings: &Settings, inputs: &Inputs) -> Self {
        let listing = listing(&inputs.files, |f| relative(&settings.images, f));
        Run {
            weights_sha256: inputs.weights_sha256.clone(),
            layers: settings.layers.clone(),
            top_k: settings.top_k,
            batch: settings.batch.max(1),
            images: inputs.files.len(),
            images_sha256: sha256_hex(listing.as_bytes()),
        }
    }

    /// How `other` differs from this run, in words, if it does.
    fn difference(&self, other: &Run) -> Option<String> {
        if other.weights_sha256 != self.weights_sha256 {
            Some(format!("other weights (sha256 {}, not {})", other.weights_sha256, self.weights_sha256))
        } else if other.layers != self.layers {
            Some(format!("other layers ({:?}, not {:?})", other.layers, self.layers))
        } else if other.top_k != self.top_k {
            Some(format!("another --top-k ({}, not {})", other.top_k, self.top_k))
        } else if other.batch != self.batch {
            Some(format!("another --batch ({}, not {}), which slices the images otherwise", other.batch, self.batch))
        } else if (other.images, &other.images_sha256) != (self.images, &self.images_sha256) {
            Some(format!("another image list ({} files, not {}, or other names or sizes)", other.images, self.images))
        } else {
            None
        }
    }
}

/// What a shard file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// One shard's pass 1: sums and counts.
    Pass1,
    /// Every shard's pass 1, merged.
    Means,
    /// One shard's pass 2: top k and histograms.
    Pass2,
}

/// The files of one shard that decoded and those that did not, by name in the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slice {
    images: Vec<String>,
    skipped: Vec<String>,
}

/// A shard file's description of itself (its safetensors metadata `clip-lens-shard`, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    kind: Kind,
    run: Run,
    /// N.
    shards: usize,
    /// The shard's index; none in the means file.
    shard: Option<usize>,
    /// Pass 2: the digest of the means file it was centred on.
    means_sha256: Option<String>,
    /// Per shard covered (the shard's own; every shard's in the means file), in order.
    slices: Vec<Slice>,
}

const HEADER_KEY: &str = "clip-lens-shard";

impl Header {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Pass1 => "a pass-1 shard file",
            Kind::Means => "a file of merged means",
            Kind::Pass2 => "a pass-2 shard file",
        }
    }

    /// The same work (all but the slices, which are its result).
    fn same_work(&self, other: &Header) -> bool {
        Header { slices: Vec::new(), ..self.clone() } == Header { slices: Vec::new(), ..other.clone() }
    }
}

/// Reads only the header of a shard file (its safetensors metadata), an error naming the file
/// if it has none.
fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let not_a_shard =
        |why: String| Error::InvalidInput(format!("{} is not a clip-lens shard or means file ({why})", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|e| not_a_shard(e.to_string()))?;
    let length = u64::from_le_bytes(length);
    if length > 1 << 30 {
        return Err(not_a_shard("no safetensors header".into()));
    }
    let mut json = vec![0u8; length as usize];
    file.read_exact(&mut json).map_err(|e| not_a_shard(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(|e| not_a_shard(e.to_string()))?;
    let header = value["__metadata__"][HEADER_KEY].as_str().ok_or_else(|| not_a_shard("no shard header".into()))?;
    serde_json::from_str(header).map_err(|e| not_a_shard(e.to_string()))
}

/// A shard file's accumulators (pass 1's for a pass-1 or means file, pass 2's otherwise).
fn read_accumulators(path: &Path, header: &Header, neurons: usize, dim: usize) -> Result<Accumulators> {
    let in_file = |e: Error| Error::InvalidInput(format!("{}: {e}", path.display()));
    let pass = if header.kind == Kind::Pass2 { 2 } else { 1 };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (tensors, _) = deserialize(&bytes).map_err(in_file)?;
    drop(bytes);
    let sizes = Sizes { neurons, dim, k: header.run.top_k };
    Accumulators::from_tensors(&tensors, pass, &header.run.layers, sizes).map_err(in_file)
}

fn write_shard_file(path: &Path, header: &Header, accumulators: &Accumulators) -> Result<()> {
    let json = serde_json::to_string(header).map_err(|e| Error::InvalidInput(format!("shard header: {e}")))?;
    let metadata = HashMap::from([(HEADER_KEY.to_string(), json)]);
    write_atomically(path, &serialize_with_metadata(&accumulators.to_tensors(&header.run.layers), Some(metadata))?)
}

/// The digest that pass-2 shards record of the means they were centred on: the merged sums and
/// the shards' image lists.
fn means_digest(means: &Accumulators, header: &Header) -> Result<String> {
    let mut bytes = serialize(&means.to_tensors(&header.run.layers))?;
    bytes.extend(serde_json::to_vec(&header.slices).map_err(|e| Error::InvalidInput(e.to_string()))?);
    Ok(sha256_hex(&bytes))
}

/// `file`'s name relative to the image folder.
fn relative(base: &Path, file: &Path) -> String {
    file.strip_prefix(base).unwrap_or(file).display().to_string()
}

impl Slice {
    fn new(base: &Path, position: &Position) -> Self {
        Slice {
            images: position.images.iter().map(|f| relative(base, f)).collect(),
            skipped: position.skipped.iter().map(|f| relative(base, Path::new(f))).collect(),
        }
    }
}

/// The position of pass 2 over `slices` (in order) at its start, with paths in `base`.
fn pass_two_position(base: &Path, slices: &[Slice]) -> Position {
    Position {
        pass: 2,
        done: 0,
        images: slices.iter().flat_map(|s| s.images.iter().map(|name| base.join(name))).collect(),
        skipped: slices
            .iter()
            .flat_map(|s| s.skipped.iter().map(|name| base.join(name).display().to_string()))
            .collect(),
    }
}

/// Runs one shard's pass 1 (`means` none) or pass 2 (centred on the means file of step 2) and
/// writes its shard file into [`shard_dir`]; returns the file's path. Resumes from the shard's
/// checkpoint; does nothing when the shard file of this very work exists (unless
/// `settings.restart`).
pub fn precompute_shard(
    model: &ClipModel,
    weights_bytes: &[u8],
    settings: &Settings,
    shard: Shard,
    means: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    let inputs = check_inputs(model, weights_bytes, settings)?;
    let vision = model.vision()?;
    let (neurons, dim) = (vision.config.mlp_width, model.config.embed_dim);
    let run = Run::new(settings, &inputs);
    let means = means.map(|path| read_means(path, &run, shard, neurons, dim)).transpose()?;
    let (kind, pass) = if means.is_some() { (Kind::Pass2, 2) } else { (Kind::Pass1, 1) };
    let mut header = Header {
        kind,
        run,
        shards: shard.count,
        shard: Some(shard.index),
        means_sha256: means.as_ref().map(|(_, _, digest)| digest.clone()),
        slices: Vec::new(),
    };
    let dir = shard_dir(&settings.out);
    let out = shard.file(&dir, pass);
    if !settings.restart && read_header(&out).is_ok_and(|done| done.same_work(&header)) {
        progress.note(&format!("{} is already written: shard {shard} of pass {pass} is done", out.display()));
        return Ok(out);
    }
    let fingerprint = sha256_hex(
        serde_json::to_string(&header).map_err(|e| Error::InvalidInput(format!("shard header: {e}")))?.as_bytes(),
    );
    let checkpoint_path = dir.join(format!(".pass{pass}-{}-of-{}.checkpoint.safetensors", shard.index, shard.count));
    let checkpoint = Checkpoint::new(checkpoint_path, fingerprint, settings.checkpoint_seconds);
    let resumed = checkpoint.load(&settings.layers, Sizes { neurons, dim, k: settings.top_k }, settings.restart)?;
    let mut passes = Passes::new(vision, settings, checkpoint, progress)?;
    let (inputs, start) = match means {
        None => (inputs.files[shard.slice(inputs.files.len(), settings.batch)].to_vec(), passes.pass_one_start()),
        Some((means, slice, _)) => {
            let position = pass_two_position(&settings.images, std::slice::from_ref(&slice));
            let tops = Accumulators::Tops(passes.pass_two_start(&means)?);
            (position.images.clone(), (position, tops))
        }
    };
    let (position, accumulators) = passes.run_one(&inputs, start, resumed)?;
    header.slices = vec![Slice::new(&settings.images, &position)];
    write_shard_file(&out, &header, &accumulators)?;
    passes.checkpoint.remove()?;
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
    /// Pass-2 shards: the bundle, written to `settings.out`.
    Bundle(Box<Bundle>),
}

/// Merges the shard files of one pass of `settings`' run: every shard 0..N exactly once, all
/// of this run (and for pass 2, all centred on the same means), else an error that names the
/// file. Pass-1 files give the means file ([`means_file`]); pass-2 files give the bundle,
/// written as [`super::precompute`] writes it.
pub fn merge_shards(
    model: &ClipModel,
    device: &Device,
    weights_bytes: &[u8],
    settings: &Settings,
    files: &[PathBuf],
    progress: &mut dyn Progress,
) -> Result<Merged> {
    let inputs = check_inputs(model, weights_bytes, settings)?;
    let (neurons, dim) = (model.vision()?.config.mlp_width, model.config.embed_dim);
    let run = Run::new(settings, &inputs);
    let shards = check_shards(&run, files)?;
    let kind = shards[0].1.kind;
    if kind == Kind::Pass2 {
        model.text()?;
    }
    progress.start(&format!("merging {} shards", shards.len()), shards.len(), 0);
    let mut merged: Option<Accumulators> = None;
    for (path, header) in &shards {
        let accumulators = read_accumulators(path, header, neurons, dim)?;
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
    let position = pass_two_position(&settings.images, &slices);
    if kind == Kind::Pass1 {
        check_readable(&position.images, position.skipped.len(), settings.top_k)?;
        let header = Header { kind: Kind::Means, run, shards: slices.len(), shard: None, means_sha256: None, slices };
        let path = means_file(&settings.out);
        write_shard_file(&path, &header, &merged)?;
        return Ok(Merged::Means { path, images: position.images.len(), skipped: position.skipped.len() });
    }
    let stats = merged.into_tops().into_iter().map(TopKAccumulator::finish).collect::<Result<_>>()?;
    Ok(Merged::Bundle(Box::new(write_bundle(model, device, settings, inputs, stats, position, progress)?)))
}

/// The headers of `files`, in shard order, once checked: shard files of one pass of `run`, each
/// shard of the same N exactly once, and (pass 2) centred on the same means.
fn check_shards(run: &Run, files: &[PathBuf]) -> Result<Vec<(PathBuf, Header)>> {
    let refuse = |path: &Path, why: String| Err(Error::InvalidInput(format!("{}: {why}", path.display())));
    let Some(first) = files.first() else {
        return Err(Error::InvalidInput("--merge needs the shard files of one pass".into()));
    };
    let reference = read_header(first)?;
    let mut by_index: Vec<Option<(PathBuf, Header)>> = vec![None; reference.shards];
    for path in files {
        let header = read_header(path)?;
        if header.kind == Kind::Means {
            return refuse(path, "this is the merged means: merge the pass-1 or the pass-2 shard files".into());
        }
        if header.kind != reference.kind {
            return refuse(
                path,
                format!(
                    "this is {}, but {} is {}: merge the shards of one pass at a time",
                    header.kind_name(),
                    first.display(),
                    reference.kind_name()
                ),
            );
        }
        if let Some(difference) = run.difference(&header.run) {
            return refuse(path, format!("a shard of another run: {difference}"));
        }
        let index = header.shard.unwrap_or(usize::MAX);
        if header.shards != reference.shards || index >= header.shards {
            return refuse(
                path,
                format!(
                    "shard {index}/{} of another sharding than {} (of {})",
                    header.shards,
                    first.display(),
                    reference.shards
                ),
            );
        }
        if header.means_sha256 != reference.means_sha256 {
            return refuse(
                path,
                format!(
                    "pass 2 of this shard was centred on other means than {}'s: run pass 2 of every shard \
                     with the same --means file",
                    first.display()
                ),
            );
        }
        if let Some((other, _)) = &by_index[index] {
            return refuse(path, format!("shard {index}/{} is given twice (also {})", header.shards, other.display()));
        }
        by_index[index] = Some((path.clone(), header));
    }
    let pass = if reference.kind == Kind::Pass1 { 1 } else { 2 };
    let missing: Vec<String> = (0..reference.shards)
        .filter(|&index| by_index[index].is_none())
        .map(|index| {
            let shard = Shard { index, count: reference.shards };
            format!("shard {shard} ({})", shard.file(Path::new(""), pass).display())
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidInput(format!(
            "missing from the pass-{pass} shard files given: {}; the merge needs all {} shards",
            missing.join(", "),
            reference.shards
        )));
    }
    Ok(by_index.into_iter().flatten().collect())
}
