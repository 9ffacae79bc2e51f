//! The seam every per-neuron statistic of `precompute` goes through.
//!
//! [`NeuronStatistic`]: a statistic's state as named tensors (what a checkpoint and a shard file
//! hold) and its exact merge (what the shards' merge needs). [`MeanAccumulator`] (pass 1),
//! [`TopKAccumulator`](super::TopKAccumulator) (pass 2) and the statistics riding along pass 2 implement it, so that
//! `precompute`'s checkpoints, shard files and merges loop over statistics without naming them.
//!
//! [`Rider`]: a statistic that pass 2 gathers beside the top k, from every image's centred
//! effects, starting from pass 1's sums ([`NormHistograms`] is one). Adding one takes its type
//! (with both traits) and a line in [`RIDERS`]; the top-k accumulator, checkpoints, shard files
//! and merges carry it from there (a checkpoint or shard file without it is refused as another
//! version's). What it contributes to the bundle is a typed field that its
//! [`Rider::finish`] sets in [`NeuronStatistics`], and the matching field of
//! [`crate::bundle::LayerLens`] with its tensors in [`crate::bundle`]: the applications read
//! those fields by name, so they stay typed rather than entries of a table.
//!
//! Pass 1 has no riders: its one statistic, [`MeanAccumulator`], also keeps the sums that pass
//! 2's riders start from (the squared norms behind the histograms' bins), and a rider that needs
//! other pass-1 sums adds them there; a second table would have no other user.

use std::any::Any;
use std::collections::HashMap;

use super::all_norms::AllNorms;
use super::histogram::NormHistograms;
use super::stats::{MeanAccumulator, NeuronStatistics};
use super::typical::TypicalImages;
use crate::error::{Error, Result};
use crate::tensor_file::NamedTensor;

/// The sizes of one layer's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Neurons.
    pub neurons: usize,
    /// Effect dimension.
    pub dim: usize,
    /// Top images kept per neuron.
    pub k: usize,
}

/// A per-neuron statistic accumulated over a stream of images.
pub trait NeuronStatistic: Sized {
    /// The state as named tensors `{prefix}.*` (exact: resuming from them changes no result).
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor>;

    /// Rebuilds the state from [`NeuronStatistic::to_tensors`]' tensors, checking their shapes.
    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self>;

    /// Adds `other`, gathered over the images that follow this one's (the next shard), as if
    /// this one had seen them too.
    fn merge(&mut self, other: &Self) -> Result<()>;
}

/// One neuron's effect of one image in pass 2.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The neuron.
    pub neuron: usize,
    /// The image's id (its position among the images added).
    pub image: usize,
    /// A hash of the image's name: the same for the image in every run, shard and resumption.
    pub image_key: u64,
    /// `|effect - mean|`.
    pub centred_norm: f32,
    /// The effect `[D]`.
    pub effect: &'a [f32],
    /// The neuron's mean effect from pass 1 `[D]`.
    pub mean: &'a [f32],
}

/// A statistic gathered in pass 2 beside the top k (see the module's documentation).
pub trait Rider: NeuronStatistic + Send + 'static {
    /// Its tensors are named `{prefix}.{KEY}.*`: a checkpoint holds a rider when it holds them.
    const KEY: &'static str;
    /// What messages call it (plural).
    const WHAT: &'static str;

    /// The empty statistic for pass 2, from pass 1's sums.
    fn start(means: &MeanAccumulator) -> Result<Self>;

    /// Counts one neuron's effect of one image.
    fn observe(&mut self, seen: &Observation<'_>);

    /// [`NeuronStatistic::merge`] of a statistic gathered over the images that follow the
    /// `images_before` this one saw (a rider that keeps image ids shifts `other`'s by that).
    fn merge_after(&mut self, other: &Self, images_before: usize) -> Result<()> {
        let _ = images_before;
        NeuronStatistic::merge(self, other)
    }

    /// Sets its field of the layer's statistics, whose top k are final.
    fn finish(self, stats: &mut NeuronStatistics);
}

/// Every statistic pass 2 gathers beside the top k, in this order.
/// (The histograms first: [`AllNorms`] replaces their interpolated percentiles by exact ones.)
pub const RIDERS: &[RiderKind] =
    &[RiderKind::of::<NormHistograms>(), RiderKind::of::<TypicalImages>(), RiderKind::of::<AllNorms>()];

/// Tensors by name (a checkpoint's or a shard file's).
type Tensors = HashMap<String, NamedTensor>;

/// A [`Rider`] type: how pass 2 starts one and how a checkpoint or shard file restores it.
pub struct RiderKind {
    key: &'static str,
    what: &'static str,
    start: fn(&MeanAccumulator) -> Result<Box<dyn AnyRider>>,
    restore: fn(&Tensors, &str, Sizes) -> Result<Box<dyn AnyRider>>,
}

impl RiderKind {
    /// The kind of `R`.
    pub const fn of<R: Rider>() -> Self {
        Self { key: R::KEY, what: R::WHAT, start: start::<R>, restore: restore::<R> }
    }

    /// [`Rider::WHAT`].
    pub fn what(&self) -> &'static str {
        self.what
    }
}

fn start<R: Rider>(means: &MeanAccumulator) -> Result<Box<dyn AnyRider>> {
    Ok(Box::new(R::start(means)?))
}

fn restore<R: Rider>(tensors: &Tensors, prefix: &str, sizes: Sizes) -> Result<Box<dyn AnyRider>> {
    Ok(Box::new(R::from_tensors(tensors, prefix, sizes)?))
}

/// Every rider of [`RIDERS`], started from pass 1's sums.
pub(super) fn start_riders(means: &MeanAccumulator) -> Result<Vec<Box<dyn AnyRider>>> {
    RIDERS.iter().map(|kind| (kind.start)(means)).collect()
}

/// The riders whose tensors are among `tensors` under `prefix`, in [`RIDERS`] order.
pub(super) fn restore_riders(
    tensors: &HashMap<String, NamedTensor>,
    prefix: &str,
    sizes: Sizes,
) -> Result<Vec<Box<dyn AnyRider>>> {
    RIDERS
        .iter()
        .filter(|kind| {
            let start = format!("{prefix}.{}.", kind.key);
            tensors.keys().any(|name| name.starts_with(&start))
        })
        .map(|kind| (kind.restore)(tensors, prefix, sizes))
        .collect()
}

/// The first kind of [`RIDERS`] that `riders` lack.
pub(super) fn missing_rider(riders: &[Box<dyn AnyRider>]) -> Option<&'static RiderKind> {
    RIDERS.iter().find(|kind| !riders.iter().any(|r| r.key() == kind.key))
}

/// Merges `theirs` (gathered over the images after the `images_before` of `mine`) into `mine`,
/// rider by rider: the same riders on both sides (both in [`RIDERS`] order), else an error that
/// names the one missing.
pub(super) fn merge_riders(
    mine: &mut [Box<dyn AnyRider>],
    theirs: &[Box<dyn AnyRider>],
    images_before: usize,
) -> Result<()> {
    let has = |riders: &[Box<dyn AnyRider>], key: &str| riders.iter().any(|r| r.key() == key);
    if let Some(odd) = mine.iter().chain(theirs).find(|r| !has(mine, r.key()) || !has(theirs, r.key())) {
        return Err(Error::InvalidInput(format!("cannot append top-k images with and without {}", odd.what())));
    }
    mine.iter_mut().zip(theirs).try_for_each(|(m, t)| m.merge(t.as_ref(), images_before))
}

/// A [`Rider`] as an object, so that one accumulator holds riders of any types.
pub trait AnyRider: Send {
    /// [`Rider::KEY`].
    fn key(&self) -> &'static str;
    /// [`Rider::WHAT`].
    fn what(&self) -> &'static str;
    /// [`Rider::observe`].
    fn observe(&mut self, seen: &Observation<'_>);
    /// [`NeuronStatistic::to_tensors`].
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor>;
    /// [`Rider::merge_after`] with a rider of the same type.
    fn merge(&mut self, other: &dyn AnyRider, images_before: usize) -> Result<()>;
    /// [`Rider::finish`].
    fn finish(self: Box<Self>, stats: &mut NeuronStatistics);
    /// For [`AnyRider::merge`]'s type check.
    fn as_any(&self) -> &dyn Any;
}

impl<R: Rider> AnyRider for R {
    fn key(&self) -> &'static str {
        R::KEY
    }
    fn what(&self) -> &'static str {
        R::WHAT
    }
    fn observe(&mut self, seen: &Observation<'_>) {
        Rider::observe(self, seen)
    }
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        NeuronStatistic::to_tensors(self, prefix)
    }
    fn merge(&mut self, other: &dyn AnyRider, images_before: usize) -> Result<()> {
        let other = other
            .as_any()
            .downcast_ref::<R>()
            .ok_or_else(|| Error::InvalidInput(format!("cannot merge {} with {}", R::WHAT, other.what())))?;
        Rider::merge_after(self, other, images_before)
    }
    fn finish(self: Box<Self>, stats: &mut NeuronStatistics) {
        Rider::finish(*self, stats)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
