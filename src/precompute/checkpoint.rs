//! The checkpoint of a `precompute` run: the accumulators of the pass in progress (f64 sums
//! included) and the position in the image list, written whole through the sink, so that a run
//! stopped (Ctrl-C, a worker's stop) or crashed resumes with identical results.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::io::{read_tensor_file, write_tensor_file, BundleSink, ImageEntry, ImageSource};
use crate::bundle::sha256_hex;
use crate::lens::{MeanAccumulator, NeuronStatistic, Sizes, TopKAccumulator};
use crate::tensor_file::NamedTensor;
use crate::{Error, Result};

/// Where a run stands: the pass (1: means over every image, 2: top-k over the images that
/// decoded), how many inputs of that pass are done, and the images (by name) that decoded or
/// not.
#[derive(Debug, Clone)]
pub(super) struct Position {
    pub pass: u8,
    pub done: usize,
    pub images: Vec<String>,
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
    /// layer (the shards' merge, native only).
    #[cfg(not(target_arch = "wasm32"))]
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

#[cfg(not(target_arch = "wasm32"))]
fn merge_layers<A: NeuronStatistic>(mine: &mut [A], theirs: &[A]) -> Result<()> {
    mine.iter_mut().zip(theirs).try_for_each(|(a, b)| a.merge(b))
}

/// [`Position`] as a checkpoint holds it: the images as the source locates them (a folder's
/// paths), as checkpoints always did.
#[derive(Serialize, Deserialize)]
struct SavedPosition {
    pass: u8,
    done: usize,
    images: Vec<String>,
    skipped: Vec<String>,
}

/// Images' names and how the source locates them, both ways.
pub(super) struct Locations {
    located: HashMap<String, String>,
    names: HashMap<String, String>,
}

impl Locations {
    /// The locations of `images` in `source`.
    pub(super) fn new(source: &impl ImageSource, images: &[ImageEntry]) -> Self {
        let pairs: Vec<(String, String)> = images.iter().map(|e| (e.name.clone(), source.locate(&e.name))).collect();
        Self {
            names: pairs.iter().map(|(name, located)| (located.clone(), name.clone())).collect(),
            located: pairs.into_iter().collect(),
        }
    }

    fn save(&self, position: &Position) -> SavedPosition {
        let locate = |names: &[String]| names.iter().map(|n| self.located.get(n).unwrap_or(n).clone()).collect();
        SavedPosition {
            pass: position.pass,
            done: position.done,
            images: locate(&position.images),
            skipped: locate(&position.skipped),
        }
    }

    fn load(&self, saved: SavedPosition) -> std::result::Result<Position, String> {
        let name = |located: String| self.names.get(&located).cloned().ok_or(format!("unknown image {located}"));
        Ok(Position {
            pass: saved.pass,
            done: saved.done,
            images: saved.images.into_iter().map(name).collect::<std::result::Result<_, _>>()?,
            skipped: saved.skipped.into_iter().map(name).collect::<std::result::Result<_, _>>()?,
        })
    }
}

/// The checkpoint file of a run, and when it was last written.
pub(super) struct Checkpoint<'a, K> {
    sink: &'a K,
    name: String,
    /// What must be equal for a checkpoint to be resumed: weights, layers, k and the images.
    fingerprint: String,
    locations: Locations,
    every: Duration,
    last_saved: Instant,
}

/// The checkpoint format: 3 keeps each top-k entry's per-head scalars and the typical images
/// (bundle format 5); an older checkpoint is refused as another version's.
const CHECKPOINT_VERSION: &str = "3";

impl<'a, K: BundleSink> Checkpoint<'a, K> {
    /// The checkpoint `name` in `sink` of the run with this fingerprint, saved every `seconds`.
    pub(super) fn new(sink: &'a K, name: String, fingerprint: String, locations: Locations, seconds: u64) -> Self {
        let every = Duration::from_secs(seconds);
        Self { sink, name, fingerprint, locations, every, last_saved: Instant::now() }
    }

    /// The checkpoint's file as messages name it.
    pub(super) fn location(&self) -> String {
        self.sink.locate(&self.name)
    }

    /// Writes the state (whole: the sink replaces the old checkpoint at once), part by part: the
    /// top-k state is lent to the file, not copied.
    pub(super) async fn save(
        &mut self,
        position: &Position,
        accumulators: &Accumulators,
        layers: &[usize],
    ) -> Result<()> {
        let position_json = serde_json::to_string(&self.locations.save(position))
            .map_err(|e| Error::InvalidInput(format!("checkpoint position: {e}")))?;
        let metadata = HashMap::from([
            ("version".to_string(), CHECKPOINT_VERSION.to_string()),
            ("fingerprint".to_string(), self.fingerprint.clone()),
            ("position".to_string(), position_json),
        ]);
        write_tensor_file(self.sink, &self.name, &accumulators.to_tensors(layers), metadata).await?;
        self.last_saved = Instant::now();
        Ok(())
    }

    pub(super) fn due(&self) -> bool {
        self.last_saved.elapsed() >= self.every
    }

    /// The saved state, if a checkpoint of this very run exists. A checkpoint of another run
    /// (other weights, layers, k or images) is an error unless `restart`, which removes it.
    pub(super) async fn load(
        &self,
        layers: &[usize],
        sizes: Sizes,
        restart: bool,
    ) -> Result<Option<(Position, Accumulators)>> {
        if restart {
            self.sink.remove(&self.name).await?;
            return Ok(None);
        }
        let corrupt = |why: String| {
            Error::InvalidInput(format!(
                "the checkpoint {} is unusable ({why}); pass --restart to start over",
                self.location()
            ))
        };
        let file = read_tensor_file(self.sink, &self.name).await;
        let Some((tensors, metadata)) = file.map_err(|e| corrupt(e.to_string()))? else { return Ok(None) };
        let field = |name: &str| metadata.get(name).cloned().ok_or_else(|| corrupt(format!("no {name}")));
        if field("version")? != CHECKPOINT_VERSION {
            return Err(corrupt("written by another version".into()));
        }
        if field("fingerprint")? != self.fingerprint {
            return Err(Error::InvalidInput(format!(
                "{} holds a checkpoint of a different run (other weights, layers, --top-k or image files); pass --restart to discard it",
                self.location()
            )));
        }
        let saved: SavedPosition = serde_json::from_str(&field("position")?).map_err(|e| corrupt(e.to_string()))?;
        let position = self.locations.load(saved).map_err(corrupt)?;
        let accumulators =
            Accumulators::from_tensors(&tensors, position.pass, layers, sizes).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some((position, accumulators)))
    }

    pub(super) async fn remove(&self) -> Result<()> {
        self.sink.remove(&self.name).await
    }
}

/// What a checkpoint must agree on: weights, layers, k, and every image's location and size.
pub(super) fn fingerprint(
    weights_sha256: &str,
    layers: &[usize],
    top_k: usize,
    images: &[ImageEntry],
    source: &impl ImageSource,
) -> String {
    let listing = listing(images, |name| source.locate(name));
    sha256_hex(format!("{weights_sha256}|{layers:?}|{top_k}|{listing}").as_bytes())
}

/// `name:size` of every image, a line each, in order: what says that a run's images are the
/// same.
pub(super) fn listing(images: &[ImageEntry], name: impl Fn(&str) -> String) -> String {
    images.iter().map(|e| format!("{}:{}\n", name(&e.name), e.size)).collect()
}
