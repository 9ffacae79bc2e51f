//! The checkpoint of a `precompute` run: the accumulators of the pass in progress (f64 sums
//! included) and the position in the image list, written atomically, so that a run stopped by
//! Ctrl-C or a crash resumes with identical results.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bundle::sha256_hex;
use crate::lens::{MeanAccumulator, NeuronStatistic, Sizes, TopKAccumulator};
use crate::tensor_file::{deserialize, serialize_with_metadata, NamedTensor};
use crate::{Error, Result};

/// Where a run stands: the pass (1: means over every file, 2: top-k over the images that
/// decoded), how many inputs of that pass are done, and the images that decoded or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Position {
    pub pass: u8,
    pub done: usize,
    pub images: Vec<PathBuf>,
    pub skipped: Vec<String>,
}

/// The accumulators of the current pass, one per lens layer.
pub(super) enum Accumulators {
    Means(Vec<MeanAccumulator>),
    Tops(Vec<TopKAccumulator>),
}

impl Accumulators {
    /// Pass 1's accumulators (a panic in pass 2: a bug).
    pub(super) fn into_means(self) -> Vec<MeanAccumulator> {
        let Accumulators::Means(means) = self else { unreachable!("pass 1 accumulates means") };
        means
    }

    /// Pass 2's accumulators (a panic in pass 1: a bug).
    pub(super) fn into_tops(self) -> Vec<TopKAccumulator> {
        let Accumulators::Tops(tops) = self else { unreachable!("pass 2 keeps the top k") };
        tops
    }

    pub(super) fn add(&mut self, layer: usize, effects: &[f32]) -> Result<()> {
        match self {
            Accumulators::Means(m) => m[layer].add(effects),
            Accumulators::Tops(t) => t[layer].add(effects),
        }
    }

    /// The accumulators as named tensors, `layer.L.*` for each lens layer L.
    pub(super) fn to_tensors(&self, layers: &[usize]) -> Vec<NamedTensor> {
        match self {
            Accumulators::Means(m) => layer_tensors(m, layers),
            Accumulators::Tops(t) => layer_tensors(t, layers),
        }
    }

    /// The accumulators of pass `pass` from [`Accumulators::to_tensors`]' tensors.
    pub(super) fn from_tensors(
        tensors: &HashMap<String, NamedTensor>,
        pass: u8,
        layers: &[usize],
        sizes: Sizes,
    ) -> Result<Self> {
        Ok(match pass {
            1 => Accumulators::Means(from_layer_tensors(tensors, layers, sizes)?),
            2 => {
                let tops: Vec<TopKAccumulator> = from_layer_tensors(tensors, layers, sizes)?;
                // Written before a rider was added: its statistic would be missing from the bundle.
                if let Some(kind) = tops.iter().find_map(TopKAccumulator::missing_rider) {
                    return Err(Error::InvalidInput(format!("no {} (written by another version)", kind.what())));
                }
                Accumulators::Tops(tops)
            }
            other => return Err(Error::InvalidInput(format!("pass {other}"))),
        })
    }

    /// Adds `other`'s accumulators (of the same pass, over the images that follow), layer by
    /// layer (the shards' merge).
    pub(super) fn merge(&mut self, other: &Accumulators) -> Result<()> {
        match (self, other) {
            (Accumulators::Means(mine), Accumulators::Means(theirs)) => merge_layers(mine, theirs),
            (Accumulators::Tops(mine), Accumulators::Tops(theirs)) => merge_layers(mine, theirs),
            _ => Err(Error::InvalidInput("cannot merge the accumulators of pass 1 and pass 2".into())),
        }
    }
}

/// Each layer's statistic under `layer.L`.
fn layer_tensors<A: NeuronStatistic>(per_layer: &[A], layers: &[usize]) -> Vec<NamedTensor> {
    per_layer.iter().zip(layers).flat_map(|(a, l)| a.to_tensors(&format!("layer.{l}"))).collect()
}

fn from_layer_tensors<A: NeuronStatistic>(
    tensors: &HashMap<String, NamedTensor>,
    layers: &[usize],
    sizes: Sizes,
) -> Result<Vec<A>> {
    layers.iter().map(|l| A::from_tensors(tensors, &format!("layer.{l}"), sizes)).collect()
}

fn merge_layers<A: NeuronStatistic>(mine: &mut [A], theirs: &[A]) -> Result<()> {
    mine.iter_mut().zip(theirs).try_for_each(|(a, b)| a.merge(b))
}

/// The checkpoint file of a run, and when it was last written.
pub(super) struct Checkpoint {
    pub(super) path: PathBuf,
    /// What must be equal for a checkpoint to be resumed: weights, layers, k and the files.
    fingerprint: String,
    every: Duration,
    last_saved: Instant,
}

const CHECKPOINT_VERSION: &str = "2";

impl Checkpoint {
    /// The checkpoint at `path` of the run with this fingerprint, saved every `seconds`.
    pub(super) fn new(path: PathBuf, fingerprint: String, seconds: u64) -> Self {
        Self { path, fingerprint, every: Duration::from_secs(seconds), last_saved: Instant::now() }
    }

    /// Writes the state atomically (a temporary file renamed over the old checkpoint).
    pub(super) fn save(&mut self, position: &Position, accumulators: &Accumulators, layers: &[usize]) -> Result<()> {
        let position_json =
            serde_json::to_string(position).map_err(|e| Error::InvalidInput(format!("checkpoint position: {e}")))?;
        let metadata = HashMap::from([
            ("version".to_string(), CHECKPOINT_VERSION.to_string()),
            ("fingerprint".to_string(), self.fingerprint.clone()),
            ("position".to_string(), position_json),
        ]);
        let bytes = serialize_with_metadata(&accumulators.to_tensors(layers), Some(metadata))?;
        write_atomically(&self.path, &bytes)?;
        self.last_saved = Instant::now();
        Ok(())
    }

    pub(super) fn due(&self) -> bool {
        self.last_saved.elapsed() >= self.every
    }

    /// The saved state, if a checkpoint of this very run exists. A checkpoint of another run
    /// (other weights, layers, k or files) is an error unless `restart`.
    pub(super) fn load(
        &self,
        layers: &[usize],
        sizes: Sizes,
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
        let accumulators =
            Accumulators::from_tensors(&tensors, position.pass, layers, sizes).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some((position, accumulators)))
    }

    pub(super) fn remove(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.path, e)),
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it (a reader never sees a
/// partial file), creating the folder.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).map_err(|e| Error::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| Error::io(path, e))
}

/// What a checkpoint must agree on: weights, layers, k, and every file's name and size.
pub(super) fn fingerprint(weights_sha256: &str, layers: &[usize], top_k: usize, files: &[PathBuf]) -> String {
    let listing = listing(files, |f| f.display().to_string());
    sha256_hex(format!("{weights_sha256}|{layers:?}|{top_k}|{listing}").as_bytes())
}

/// `name:size` of every file, a line each, in order: what says that a run's files are the same.
pub(super) fn listing(files: &[PathBuf], name: impl Fn(&Path) -> String) -> String {
    files.iter().map(|f| format!("{}:{}\n", name(f), std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))).collect()
}
