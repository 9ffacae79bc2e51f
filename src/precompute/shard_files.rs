//! The shard files of a sharded `precompute` (`shards`): what each holds ([`Header`], the
//! accumulators as tensors), how they are read and written, and the checks of a set of them.
//!
//! Every shard file carries the run it belongs to ([`Run`]: weights, layers, k, batch and a
//! digest of the image names and sizes), its index and N, and for pass 2 the digest of the
//! means it was centred on; merges refuse a file that disagrees, a missing or a repeated shard,
//! and name the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::{listing, Accumulators, Position};
use super::io::{read_tensor_file, write_tensor_file, DirectorySink, ImageEntry};
use super::shards::Shard;
use super::Settings;
use crate::bundle::sha256_hex;
use crate::lens::Sizes;
use crate::tensor_file::serialize;
use crate::{Error, Result};

/// What every shard file of one run agrees on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Run {
    pub weights_sha256: String,
    pub layers: Vec<usize>,
    pub top_k: usize,
    pub batch: usize,
    /// Images in the source.
    pub images: usize,
    /// sha256 of their names and sizes, in order.
    pub images_sha256: String,
}

impl Run {
    pub fn new(settings: &Settings, weights_sha256: &str, images: &[ImageEntry]) -> Self {
        let listing = listing(images, str::to_string);
        Run {
            weights_sha256: weights_sha256.to_string(),
            layers: settings.layers.clone(),
            top_k: settings.top_k,
            batch: settings.batch.max(1),
            images: images.len(),
            images_sha256: sha256_hex(listing.as_bytes()),
        }
    }

    /// How `other` differs from this run, in words, if it does.
    pub fn difference(&self, other: &Run) -> Option<String> {
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
pub(super) enum Kind {
    /// One shard's pass 1: sums and counts.
    Pass1,
    /// Every shard's pass 1, merged.
    Means,
    /// One shard's pass 2: top k and histograms.
    Pass2,
}

/// The images of one shard that decoded and those that did not, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Slice {
    pub images: Vec<String>,
    pub skipped: Vec<String>,
}

impl Slice {
    pub fn new(position: &Position) -> Self {
        Slice { images: position.images.clone(), skipped: position.skipped.clone() }
    }
}

/// The position of pass 2 over `slices` (in order) at its start.
pub(super) fn pass_two_position(slices: &[Slice]) -> Position {
    Position {
        pass: 2,
        done: 0,
        images: slices.iter().flat_map(|s| s.images.iter().cloned()).collect(),
        skipped: slices.iter().flat_map(|s| s.skipped.iter().cloned()).collect(),
    }
}

/// A shard file's description of itself (its safetensors metadata `clip-lens-shard`, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Header {
    pub kind: Kind,
    pub run: Run,
    /// N.
    pub shards: usize,
    /// The shard's index; none in the means file.
    pub shard: Option<usize>,
    /// Pass 2: the digest of the means file it was centred on.
    pub means_sha256: Option<String>,
    /// Per shard covered (the shard's own; every shard's in the means file), in order.
    pub slices: Vec<Slice>,
}

const HEADER_KEY: &str = "clip-lens-shard";

impl Header {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Pass1 => "a pass-1 shard file",
            Kind::Means => "a file of merged means",
            Kind::Pass2 => "a pass-2 shard file",
        }
    }

    /// The same work (all but the slices, which are its result).
    pub fn same_work(&self, other: &Header) -> bool {
        Header { slices: Vec::new(), ..self.clone() } == Header { slices: Vec::new(), ..other.clone() }
    }

    /// The pass of the accumulators (pass 1's in a pass-1 or means file).
    fn pass(&self) -> u8 {
        if self.kind == Kind::Pass2 {
            2
        } else {
            1
        }
    }

    /// The sizes of the accumulators.
    fn sizes(&self, neurons: usize, dim: usize) -> Sizes {
        Sizes { neurons, dim, k: self.run.top_k }
    }
}

/// Reads only the header of a shard file (its safetensors metadata), an error naming the file
/// if it has none.
pub(super) fn read_header(path: &Path) -> Result<Header> {
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

/// A shard file's accumulators.
pub(super) fn read_accumulators(path: &Path, header: &Header, neurons: usize, dim: usize) -> Result<Accumulators> {
    let in_file = |e: Error| Error::InvalidInput(format!("{}: {e}", path.display()));
    let (folder, name) = (path.parent().unwrap_or(Path::new(".")), path.file_name().unwrap_or_default());
    let file = pollster::block_on(read_tensor_file(&DirectorySink::new(folder), &name.to_string_lossy()));
    let (tensors, _) =
        file.map_err(in_file)?.ok_or_else(|| Error::InvalidInput(format!("{} is gone", path.display())))?;
    Accumulators::from_tensors(&tensors, header.pass(), &header.run.layers, header.sizes(neurons, dim)).map_err(in_file)
}

/// Writes the shard file `name` of `sink`; returns its path.
pub(super) async fn write_shard_file(
    sink: &DirectorySink,
    name: &str,
    header: &Header,
    accumulators: &Accumulators,
) -> Result<PathBuf> {
    let json = serde_json::to_string(header).map_err(|e| Error::InvalidInput(format!("shard header: {e}")))?;
    let metadata = HashMap::from([(HEADER_KEY.to_string(), json)]);
    write_tensor_file(sink, name, &accumulators.to_tensors(&header.run.layers), metadata).await?;
    Ok(sink.path(name))
}

/// The digest that pass-2 shards record of the means they were centred on: the merged sums and
/// the shards' image lists.
pub(super) fn means_digest(means: &Accumulators, header: &Header) -> Result<String> {
    let mut bytes = serialize(&means.to_tensors(&header.run.layers))?;
    bytes.extend(serde_json::to_vec(&header.slices).map_err(|e| Error::InvalidInput(e.to_string()))?);
    Ok(sha256_hex(&bytes))
}

/// The headers of `files`, in shard order, once checked: shard files of one pass of `run`, each
/// shard of the same N exactly once, and (pass 2) centred on the same means.
pub(super) fn check_shards(run: &Run, files: &[PathBuf]) -> Result<Vec<(PathBuf, Header)>> {
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
    let pass = reference.pass();
    let missing: Vec<String> = (0..reference.shards)
        .filter(|&index| by_index[index].is_none())
        .map(|index| {
            let shard = Shard { index, count: reference.shards };
            format!("shard {shard} ({})", shard.file_name(pass))
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
