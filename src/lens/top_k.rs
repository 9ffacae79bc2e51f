//! Pass 2 of the statistics ([`super::stats`]): per neuron, the k images with the largest
//! centred norm and their centred effects, kept while streaming, and the riders gathered beside
//! them; [`TopKAccumulator::finish`] gives the directions and thresholds.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::histogram::NormHistograms;
use super::singular::first_right_singular_vector;
use super::statistic::{
    merge_riders, missing_rider, restore_riders, start_riders, AnyRider, NeuronStatistic, Observation, RiderKind, Sizes,
};
use super::stats::{check_batch, MeanAccumulator, NeuronStatistics};
use super::typical::TypicalImages;
use crate::error::{Error, Result};
use crate::tensor_file::{lookup, NamedTensor};
use crate::vector::dot_f64;

/// Pass 2: per neuron, the k largest centred norms and their centred effects, and the riders.
///
/// The state is held as its checkpoint's tensors are laid out, neuron-major, one buffer per
/// field: nothing is allocated per kept image, and a checkpoint lends the largest buffer (the
/// centred effects, `N x k x D` floats: 1.9 GB for ViT-B/32 at k = 100 over three layers) to
/// the file being written instead of copying it.
///
/// Reference: `np.argsort(np.linalg.norm(current_neurons, axis=-1))[-top_k_pca:]` and `current_neurons[important]`
/// in [`compute_pcas.py`, `main`][pcas]; here kept while streaming.
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub struct TopKAccumulator {
    k: usize,
    dim: usize,
    neurons: usize,
    mean: Vec<f32>,
    /// Each neuron's k slots: the kept images' centred norms `[N, k]`.
    norms: Vec<f32>,
    /// Their image ids `[N, k]`; `-1` marks an empty slot. Every neuron sees every image, so
    /// each has its first `min(images, k)` slots full.
    images: Vec<i64>,
    /// Their centred effects `[N, k, D]`. Shared only with a checkpoint being written, which
    /// is dropped before the next batch: `Arc::make_mut` never copies it.
    centred: Arc<Vec<f32>>,
    /// Later heads K (later layers x heads): each slot's per-head scalars `c(I) s_{l,h,n}(I)`.
    heads: usize,
    /// Those scalars `[N, k, K]` (the heads' parts of the effect along any direction, once it
    /// is known: [`crate::lens::second_order::second_order_effects_and_heads`]).
    head_scalars: Vec<f32>,
    next_image: usize,
    /// The statistics gathered beside the top k, in [`super::statistic::RIDERS`] order.
    riders: Vec<Box<dyn AnyRider>>,
}

/// One batch of pass 2: its images' effects and what the statistics beside the top k need.
#[derive(Debug, Clone, Copy)]
pub struct PassTwoBatch<'a> {
    /// The effects `[B, N, D]`.
    pub effects: &'a [f32],
    /// Their per-head scalars `[B, N, K]` (empty for a layer with no later head).
    pub head_scalars: &'a [f32],
    /// Each image's key `[B]`, a hash of its name ([`Observation::image_key`]).
    pub image_keys: &'a [u64],
}

/// One neuron's k slots of the top-k state.
struct Slots<'a> {
    norms: &'a mut [f32],
    images: &'a mut [i64],
    centred: &'a mut [f32],
    head_scalars: &'a mut [f32],
    dim: usize,
    heads: usize,
}

impl Slots<'_> {
    /// Slot `slot`'s rank key: its norm and image.
    fn key(&self, slot: usize) -> (f32, i64) {
        (self.norms[slot], self.images[slot])
    }

    /// Puts an image in slot `slot`: its norm, id, centred effect and per-head scalars.
    fn set(&mut self, slot: usize, norm: f32, image: i64, centred: impl Iterator<Item = f32>, heads: &[f32]) {
        self.norms[slot] = norm;
        self.images[slot] = image;
        self.centred[slot * self.dim..][..self.dim].iter_mut().zip(centred).for_each(|(to, x)| *to = x);
        self.head_scalars[slot * self.heads..][..self.heads].copy_from_slice(heads);
    }
}

impl TopKAccumulator {
    /// Keeps `k` images per neuron, centring with `mean` (`[N, D]` from pass 1).
    pub fn new(mean: Vec<f32>, neurons: usize, dim: usize, k: usize) -> Result<Self> {
        if k == 0 || dim == 0 || mean.len() != neurons * dim {
            return Err(Error::InvalidInput(format!("top-k needs k > 0 and a [{neurons}, {dim}] mean (D > 0)")));
        }
        Ok(Self {
            k,
            dim,
            neurons,
            mean,
            norms: vec![0.0; neurons * k],
            images: vec![-1; neurons * k],
            centred: Arc::new(vec![0.0; neurons * k * dim]),
            heads: 0,
            head_scalars: Vec::new(),
            next_image: 0,
            riders: Vec::new(),
        })
    }

    /// Pass 2 after pass 1's `means`: centred on their mean, with every rider, keeping `heads`
    /// per-head scalars per slot (the layer's later heads).
    pub fn after(means: &MeanAccumulator, k: usize, heads: usize) -> Result<Self> {
        let mut top = Self::new(means.mean()?, means.neurons, means.dim, k)?.with_heads(heads);
        top.riders = start_riders(means)?;
        Ok(top)
    }

    /// Also keeps `heads` per-head scalars per slot ([`TopKAccumulator::add_batch`]).
    pub fn with_heads(mut self, heads: usize) -> Self {
        self.heads = heads;
        self.head_scalars = vec![0.0; self.neurons * self.k * heads];
        self
    }

    /// Also counts every centred norm into a histogram per neuron, with bins around `scales`
    /// (`[N]`, pass 1's [`MeanAccumulator::centred_scales`]): the histogram rider without
    /// [`TopKAccumulator::after`].
    pub fn with_histograms(self, scales: Vec<f32>) -> Result<Self> {
        self.with_rider(scales, |scales| Box::new(NormHistograms::new(scales)))
    }

    /// Also keeps typical images per band of each neuron's distribution, with bins around
    /// `scales` (`[N]`): the typical-images rider without [`TopKAccumulator::after`].
    pub fn with_typical(self, scales: Vec<f32>) -> Result<Self> {
        self.with_rider(scales, |scales| Box::new(TypicalImages::new(scales)))
    }

    /// Adds the rider `make` starts from per-neuron `scales` (`[N]`).
    fn with_rider(mut self, scales: Vec<f32>, make: impl FnOnce(Vec<f32>) -> Box<dyn AnyRider>) -> Result<Self> {
        if scales.len() != self.neurons {
            return Err(Error::InvalidInput(format!("{} scales for {} neurons", scales.len(), self.neurons)));
        }
        self.riders.push(make(scales));
        Ok(self)
    }

    /// Each neuron's slots, in order.
    fn slots(&mut self) -> impl Iterator<Item = Slots<'_>> {
        let (k, dim, heads) = (self.k, self.dim, self.heads);
        let centred = Arc::make_mut(&mut self.centred).chunks_exact_mut(k * dim);
        // With no later head, every neuron's scalars are the same empty row.
        let head_scalars =
            self.head_scalars.chunks_mut((k * heads).max(1)).chain(std::iter::repeat_with(|| &mut [][..]));
        (self.norms.chunks_exact_mut(k).zip(self.images.chunks_exact_mut(k)).zip(centred).zip(head_scalars)).map(
            move |(((norms, images), centred), head_scalars)| Slots {
                norms,
                images,
                centred,
                head_scalars,
                dim,
                heads,
            },
        )
    }

    /// Adds a batch of effects `[B, N, D]` (of a layer with no later head); images get
    /// consecutive ids, which also serve as their keys.
    pub fn add(&mut self, effects: &[f32]) -> Result<()> {
        let first = self.next_image as u64;
        let keys: Vec<u64> = (first..).take(effects.len() / (self.neurons * self.dim).max(1)).collect();
        self.add_batch(PassTwoBatch { effects, head_scalars: &[], image_keys: &keys })
    }

    /// Adds a batch of pass 2; its images get consecutive ids.
    pub fn add_batch(&mut self, batch: PassTwoBatch<'_>) -> Result<()> {
        let PassTwoBatch { effects, head_scalars, image_keys } = batch;
        let per_image = check_batch(effects, self.neurons, self.dim)?;
        let images = effects.len() / per_image;
        if head_scalars.len() != images * self.neurons * self.heads || image_keys.len() != images {
            return Err(Error::InvalidInput(format!(
                "{} per-head scalars and {} keys for {images} images of {} neurons and {} later heads",
                head_scalars.len(),
                image_keys.len(),
                self.neurons,
                self.heads
            )));
        }
        let (k, dim, heads) = (self.k, self.dim, self.heads);
        let mean = std::mem::take(&mut self.mean);
        let mut riders = std::mem::take(&mut self.riders);
        let per_image_heads = chunks_or_empty(head_scalars, self.neurons * heads);
        for ((image, image_heads), &image_key) in effects.chunks_exact(per_image).zip(per_image_heads).zip(image_keys) {
            let id = self.next_image;
            self.next_image += 1;
            let rows = image.chunks_exact(dim).zip(mean.chunks_exact(dim));
            let neuron_heads = chunks_or_empty(image_heads, heads);
            for (neuron, ((slots, (effect, mean)), heads)) in self.slots().zip(rows).zip(neuron_heads).enumerate() {
                let centred_norm = offer(slots, id.min(k), id, effect, mean, heads);
                let seen = Observation { neuron, image: id, image_key, centred_norm, effect, mean };
                riders.iter_mut().for_each(|rider| rider.observe(&seen));
            }
        }
        self.riders = riders;
        self.mean = mean;
        Ok(())
    }

    /// Adds the images of `other` (pass 2 over the images that follow this accumulator's, with
    /// the same mean, k and histogram bins) as if they had been added here after this one's:
    /// their ids are shifted by the number of images added here. Each neuron keeps the k
    /// strongest of both sets, which are exactly those a single accumulator given every image
    /// in order would keep (see [`offer`]); the riders merge (the histograms' counts add up).
    pub fn append(&mut self, other: &TopKAccumulator) -> Result<()> {
        if (self.k, self.dim, self.neurons) != (other.k, other.dim, other.neurons) {
            return Err(Error::InvalidInput(format!(
                "cannot append a top-{} accumulator of [{}, {}] effects to a top-{} one of [{}, {}]",
                other.k, other.neurons, other.dim, self.k, self.neurons, self.dim
            )));
        }
        if self.mean != other.mean {
            return Err(Error::InvalidInput("cannot append top-k images centred on another mean".into()));
        }
        if self.heads != other.heads {
            return Err(Error::InvalidInput(format!(
                "cannot append top-k images with {} later heads to ones with {}",
                other.heads, self.heads
            )));
        }
        merge_riders(&mut self.riders, &other.riders, self.next_image)?;
        let (k, dim, heads, offset) = (self.k, self.dim, self.heads, self.next_image as i64);
        let (mine, theirs) = (self.next_image.min(k), other.next_image.min(k));
        for (n, mut slots) in self.slots().enumerate() {
            let at = |slot: usize| n * k + slot;
            // Both sets' filled slots, strongest first (an image of `other`: `Err(slot)`).
            let mut candidates: Vec<((f32, i64), std::result::Result<usize, usize>)> = (0..mine)
                .map(|slot| (slots.key(slot), Ok(slot)))
                .chain((0..theirs).map(|slot| ((other.norms[at(slot)], other.images[at(slot)] + offset), Err(slot))))
                .collect();
            candidates.sort_by(|a, b| stronger(a.0, b.0));
            candidates.truncate(k);
            let (own_rows, own_heads) = (slots.centred.to_vec(), slots.head_scalars.to_vec());
            for (slot, &((norm, image), from)) in candidates.iter().enumerate() {
                let (row, head_row) = match from {
                    Ok(own) => (&own_rows[own * dim..][..dim], &own_heads[own * heads..][..heads]),
                    Err(their) => {
                        (&other.centred[at(their) * dim..][..dim], &other.head_scalars[at(their) * heads..][..heads])
                    }
                };
                slots.set(slot, norm, image, row.iter().copied(), head_row);
            }
        }
        self.next_image += other.next_image;
        Ok(())
    }

    /// Images added so far.
    pub fn images(&self) -> usize {
        self.next_image
    }

    /// The first of the [`super::statistic::RIDERS`] that this accumulator does not gather
    /// (one restored from the files of an older version).
    pub fn missing_rider(&self) -> Option<&'static RiderKind> {
        missing_rider(&self.riders)
    }

    /// Directions, thresholds and top images. An error when fewer than k images were added.
    pub fn finish(self) -> Result<NeuronStatistics> {
        if self.next_image < self.k {
            return Err(Error::InvalidInput(format!(
                "k = {} is larger than the number of images ({})",
                self.k, self.next_image
            )));
        }
        let (neurons, dim, k) = (self.neurons, self.dim, self.k);
        let mut stats = NeuronStatistics {
            neurons,
            dim,
            k,
            directions: Vec::with_capacity(neurons * dim),
            norms: Vec::with_capacity(neurons * k),
            top_images: Vec::with_capacity(neurons * k),
            sign_votes: Vec::with_capacity(neurons),
            ..NeuronStatistics::default()
        };
        // Each neuron's direction on its own (a thread each): 9216 neurons' k x k Gram
        // matrices at the paper's settings, the longest step between pass 2 and OMP.
        let per_neuron: Vec<(Vec<f32>, usize, Vec<usize>)> = (0..neurons)
            .into_par_iter()
            .map(|n| {
                let at = |slot: usize| n * k + slot;
                let mut order: Vec<usize> = (0..k).collect();
                order.sort_by(|&a, &b| {
                    self.norms[at(a)].total_cmp(&self.norms[at(b)]).then(self.images[at(a)].cmp(&self.images[at(b)]))
                });
                let rows: Vec<&[f32]> = order.iter().map(|&slot| &self.centred[at(slot) * dim..][..dim]).collect();
                let direction = first_right_singular_vector(&rows, dim);
                let votes = rows.iter().filter(|row| dot_f64(row, &direction) > 0.0).count();
                (direction, votes, order)
            })
            .collect();
        let heads = self.heads;
        for (n, (direction, votes, order)) in per_neuron.into_iter().enumerate() {
            let at = |slot: usize| n * k + slot;
            stats.sign_votes.push(votes);
            stats.directions.extend(direction);
            stats.norms.extend(order.iter().map(|&slot| self.norms[at(slot)]));
            stats.top_images.extend(order.iter().map(|&slot| self.images[at(slot)] as usize));
            // The mean over the top k, summed in rank order: the same whatever slots hold them.
            stats.head_scalars.extend((0..heads).map(|h| {
                let sum: f64 = order.iter().map(|&slot| self.head_scalars[at(slot) * heads + h] as f64).sum();
                (sum / k as f64) as f32
            }));
        }
        stats.later_heads = heads;
        stats.mean = self.mean;
        for rider in self.riders {
            rider.finish(&mut stats);
        }
        Ok(stats)
    }
}

/// The top k's state, then each rider's (`{prefix}.{KEY}.*`).
impl NeuronStatistic for TopKAccumulator {
    /// The state as named tensors under `prefix`: the mean, per neuron the kept images in
    /// their slots (`-1` pads), their norms and centred effects (lent, not copied); the
    /// riders' tensors.
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let (neurons, k, dim) = (self.neurons, self.k, self.dim);
        let mut tensors = vec![
            NamedTensor::f32(format!("{prefix}.mean"), &[neurons, dim], self.mean.clone()),
            NamedTensor::i64(format!("{prefix}.images"), &[neurons, k], self.images.clone()),
            NamedTensor::f32(format!("{prefix}.norms"), &[neurons, k], self.norms.clone()),
            NamedTensor::shared_f32(format!("{prefix}.centred"), &[neurons, k, dim], Arc::clone(&self.centred)),
            NamedTensor::f32(format!("{prefix}.head_scalars"), &[neurons, k, self.heads], self.head_scalars.clone()),
            NamedTensor::i64(format!("{prefix}.next_image"), &[1], vec![self.next_image as i64]),
        ];
        tensors.extend(self.riders.iter().flat_map(|rider| rider.to_tensors(prefix)));
        tensors
    }

    /// With the riders whose tensors are there; the centred effects shared with `tensors`
    /// (drop those before adding images, or they are copied).
    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self> {
        let Sizes { neurons, dim, k } = sizes;
        let get = |part: &str| lookup(tensors, &format!("{prefix}.{part}"));
        let mean = get("mean")?.f32_values(&[neurons, dim])?;
        let images = get("images")?.i64_values(&[neurons, k])?;
        let next_image = get("next_image")?.i64_values(&[1])?[0] as usize;
        let filled = next_image.min(k);
        if images.chunks_exact(k).any(|slots| slots.iter().enumerate().any(|(slot, &id)| (id >= 0) != (slot < filled)))
        {
            return Err(Error::InvalidInput(format!("`{prefix}.images` does not hold {filled} images per neuron")));
        }
        // Written before the per-head scalars were kept: the bundle would lack its heads.
        let head_scalars = get("head_scalars").map_err(|_| {
            Error::InvalidInput(format!("no `{prefix}.head_scalars` (written by another version of clip-lens)"))
        })?;
        let heads = head_scalars.shape.get(2).copied().unwrap_or(0);
        Ok(Self {
            norms: get("norms")?.f32_values(&[neurons, k])?,
            centred: get("centred")?.shared_f32_values(&[neurons, k, dim])?,
            head_scalars: head_scalars.f32_values(&[neurons, k, heads])?,
            heads,
            images,
            next_image,
            riders: restore_riders(tensors, prefix, sizes)?,
            ..Self::new(mean, neurons, dim, k)?
        })
    }

    /// [`TopKAccumulator::append`].
    fn merge(&mut self, other: &Self) -> Result<()> {
        self.append(other)
    }
}

/// Keeps `image` among a neuron's k largest centred norms if it belongs there (`filled` of
/// its slots are full); returns its centred norm.
///
/// The kept images are always the k first in [`stronger`]'s order among those offered (images
/// come in id order, so a later image with a norm equal to the weakest kept one stays out, and
/// among equal weakest norms the latest image leaves first): a set that does not depend on the
/// order of the offers, which [`TopKAccumulator::append`] relies on.
fn offer(mut slots: Slots<'_>, filled: usize, image: usize, effect: &[f32], mean: &[f32], heads: &[f32]) -> f32 {
    let norm = effect.iter().zip(mean).map(|(e, m)| ((e - m) as f64).powi(2)).sum::<f64>().sqrt() as f32;
    let k = slots.norms.len();
    let slot = if filled < k {
        filled
    } else {
        let weakest = (0..k).min_by(|&a, &b| stronger(slots.key(b), slots.key(a))).unwrap_or(0);
        match norm > slots.norms[weakest] {
            true => weakest,
            false => return norm,
        }
    };
    slots.set(slot, norm, image as i64, effect.iter().zip(mean).map(|(e, m)| e - m), heads);
    norm
}

/// `values` in chunks of `size`, or endless empty chunks when `size` is 0 (no later head).
fn chunks_or_empty(values: &[f32], size: usize) -> Box<dyn Iterator<Item = &[f32]> + '_> {
    match size {
        0 => Box::new(std::iter::repeat(&[][..])),
        _ => Box::new(values.chunks_exact(size)),
    }
}

/// The order of the top k on (norm, image): the larger norm first, on equal norms the earlier
/// image.
fn stronger(a: (f32, i64), b: (f32, i64)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests;
