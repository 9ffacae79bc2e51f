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
    next_image: usize,
    /// The statistics gathered beside the top k, in [`super::statistic::RIDERS`] order.
    riders: Vec<Box<dyn AnyRider>>,
}

/// One neuron's k slots of the top-k state.
struct Slots<'a> {
    norms: &'a mut [f32],
    images: &'a mut [i64],
    centred: &'a mut [f32],
    dim: usize,
}

impl Slots<'_> {
    /// Slot `slot`'s rank key: its norm and image.
    fn key(&self, slot: usize) -> (f32, i64) {
        (self.norms[slot], self.images[slot])
    }

    /// Puts an image in slot `slot`: its norm, id and centred effect.
    fn set(&mut self, slot: usize, norm: f32, image: i64, centred: impl Iterator<Item = f32>) {
        self.norms[slot] = norm;
        self.images[slot] = image;
        self.centred[slot * self.dim..][..self.dim].iter_mut().zip(centred).for_each(|(to, x)| *to = x);
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
            next_image: 0,
            riders: Vec::new(),
        })
    }

    /// Pass 2 after pass 1's `means`: centred on their mean, with every rider.
    pub fn after(means: &MeanAccumulator, k: usize) -> Result<Self> {
        let mut top = Self::new(means.mean()?, means.neurons, means.dim, k)?;
        top.riders = start_riders(means)?;
        Ok(top)
    }

    /// Also counts every centred norm into a histogram per neuron, with bins around `scales`
    /// (`[N]`, pass 1's [`MeanAccumulator::centred_scales`]): the histogram rider without
    /// [`TopKAccumulator::after`].
    pub fn with_histograms(mut self, scales: Vec<f32>) -> Result<Self> {
        if scales.len() != self.neurons {
            return Err(Error::InvalidInput(format!("{} scales for {} neurons", scales.len(), self.neurons)));
        }
        self.riders.push(Box::new(NormHistograms::new(scales)));
        Ok(self)
    }

    /// Each neuron's slots, in order.
    fn slots<'a>(
        norms: &'a mut [f32],
        images: &'a mut [i64],
        centred: &'a mut Arc<Vec<f32>>,
        (k, dim): (usize, usize),
    ) -> impl Iterator<Item = Slots<'a>> {
        let centred = Arc::make_mut(centred).chunks_exact_mut(k * dim);
        (norms.chunks_exact_mut(k).zip(images.chunks_exact_mut(k)).zip(centred))
            .map(move |((norms, images), centred)| Slots { norms, images, centred, dim })
    }

    /// Adds a batch of effects `[B, N, D]`; images get consecutive ids.
    pub fn add(&mut self, effects: &[f32]) -> Result<()> {
        let per_image = check_batch(effects, self.neurons, self.dim)?;
        let (k, dim) = (self.k, self.dim);
        for image in effects.chunks_exact(per_image) {
            let id = self.next_image;
            self.next_image += 1;
            let rows = image.chunks_exact(dim).zip(self.mean.chunks_exact(dim));
            let all_slots = Self::slots(&mut self.norms, &mut self.images, &mut self.centred, (k, dim));
            for (neuron, (slots, (effect, mean))) in all_slots.zip(rows).enumerate() {
                let centred_norm = offer(slots, id.min(k), id, effect, mean);
                let seen = Observation { neuron, image: id, centred_norm, effect, mean };
                self.riders.iter_mut().for_each(|rider| rider.observe(&seen));
            }
        }
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
        merge_riders(&mut self.riders, &other.riders)?;
        let (k, dim, offset) = (self.k, self.dim, self.next_image as i64);
        let (mine, theirs) = (self.next_image.min(k), other.next_image.min(k));
        let all_slots = Self::slots(&mut self.norms, &mut self.images, &mut self.centred, (k, dim));
        for (n, mut slots) in all_slots.enumerate() {
            let at = |slot: usize| n * k + slot;
            // Both sets' filled slots, strongest first (an image of `other`: `Err(slot)`).
            let mut candidates: Vec<((f32, i64), std::result::Result<usize, usize>)> = (0..mine)
                .map(|slot| (slots.key(slot), Ok(slot)))
                .chain((0..theirs).map(|slot| ((other.norms[at(slot)], other.images[at(slot)] + offset), Err(slot))))
                .collect();
            candidates.sort_by(|a, b| stronger(a.0, b.0));
            candidates.truncate(k);
            let own_rows = slots.centred.to_vec();
            for (slot, &((norm, image), from)) in candidates.iter().enumerate() {
                let row = match from {
                    Ok(own) => &own_rows[own * dim..][..dim],
                    Err(their) => &other.centred[at(their) * dim..][..dim],
                };
                slots.set(slot, norm, image, row.iter().copied());
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
        for (n, (direction, votes, order)) in per_neuron.into_iter().enumerate() {
            let at = |slot: usize| n * k + slot;
            stats.sign_votes.push(votes);
            stats.directions.extend(direction);
            stats.norms.extend(order.iter().map(|&slot| self.norms[at(slot)]));
            stats.top_images.extend(order.iter().map(|&slot| self.images[at(slot)] as usize));
        }
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
        Ok(Self {
            norms: get("norms")?.f32_values(&[neurons, k])?,
            centred: get("centred")?.shared_f32_values(&[neurons, k, dim])?,
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
fn offer(mut slots: Slots<'_>, filled: usize, image: usize, effect: &[f32], mean: &[f32]) -> f32 {
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
    slots.set(slot, norm, image as i64, effect.iter().zip(mean).map(|(e, m)| e - m));
    norm
}

/// The order of the top k on (norm, image): the larger norm first, on equal norms the earlier
/// image.
fn stronger(a: (f32, i64), b: (f32, i64)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Effects `[images, 3 neurons, 2]` whose centred norms repeat (ties across the split).
    fn effects(images: usize) -> Vec<f32> {
        (0..images * 6).map(|i| ((i * 7 + i / 6) % 5) as f32 - 2.0).collect()
    }

    fn accumulator(effects: &[f32]) -> TopKAccumulator {
        let mut top = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_histograms(vec![1.0; 3]).unwrap();
        top.add(effects).unwrap();
        top
    }

    /// Appending the accumulators of consecutive slices gives what one accumulator over every
    /// image gives, ties included (the earlier image wins).
    #[test]
    fn appended_slices_equal_one_stream() {
        let all = effects(23);
        let whole = accumulator(&all).finish().unwrap();
        for cuts in [vec![0, 23], vec![0, 2, 11, 23], vec![0, 0, 5, 23, 23]] {
            let mut merged = accumulator(&all[..cuts[1] * 6]);
            for pair in cuts[1..].windows(2) {
                merged.append(&accumulator(&all[pair[0] * 6..pair[1] * 6])).unwrap();
            }
            assert_eq!(merged.images(), 23);
            let merged = merged.finish().unwrap();
            assert_eq!(merged.top_images, whole.top_images, "{cuts:?}");
            assert_eq!(merged.norms, whole.norms);
            assert_eq!(merged.directions, whole.directions);
            assert_eq!(merged.distributions, whole.distributions);
        }
        assert!(whole.norms.windows(2).any(|w| w[0] == w[1]), "the case has ties");
    }

    /// Of equal norms the earlier image stays, whichever of them was replaced before.
    #[test]
    fn ties_keep_the_earlier_image() {
        let top = |effects: &[f32]| {
            let mut top = TopKAccumulator::new(vec![0.0], 1, 1, 2).unwrap();
            top.add(effects).unwrap();
            top
        };
        // Image 2 replaces one of the two tied images 0 and 1: image 1, the later.
        assert_eq!(top(&[1.0, 1.0, 2.0]).finish().unwrap().top_images, [0, 2]);
        let mut merged = top(&[1.0, 1.0]);
        merged.append(&top(&[2.0])).unwrap();
        assert_eq!(merged.finish().unwrap().top_images, [0, 2]);
        // Later images of a tied norm stay out; a larger one replaces the latest of the ties.
        assert_eq!(top(&[3.0, 1.0, 1.0, 1.0, 2.0]).finish().unwrap().top_images, [4, 0]);
    }

    /// A checkpoint's tensors lend the centred effects (no copy); once they are dropped, the
    /// next batch writes into the same buffer. Restored from them, the state finishes alike.
    #[test]
    fn checkpoint_tensors_lend_the_state() {
        let mut top = accumulator(&effects(5));
        let tensors = top.to_tensors("x");
        let centred = tensors.iter().find(|t| t.name == "x.centred").unwrap();
        let crate::tensor_file::Values::F32(lent) = &centred.values else { panic!("f32 values") };
        assert!(Arc::ptr_eq(lent, &top.centred), "lent, not copied");
        let (by_name, _) = crate::tensor_file::deserialize(&crate::tensor_file::serialize(&tensors).unwrap()).unwrap();
        let restored = TopKAccumulator::from_tensors(&by_name, "x", Sizes { neurons: 3, dim: 2, k: 4 }).unwrap();
        let buffer = top.centred.as_ptr();
        drop((tensors, by_name));
        top.add(&effects(3)).unwrap();
        assert_eq!(top.centred.as_ptr(), buffer, "the next batch copies nothing");
        let (mut again, whole) = (restored, accumulator(&effects(5)));
        assert_eq!(again.images(), 5);
        again.add(&effects(3)).unwrap();
        let mut expected = whole;
        expected.add(&effects(3)).unwrap();
        assert_eq!(again.finish().unwrap().top_images, expected.finish().unwrap().top_images);
    }

    /// Slots that do not hold the first min(images, k) ids of every neuron are refused.
    #[test]
    fn restoring_refuses_misplaced_slots() {
        let top = accumulator(&effects(2));
        let mut by_name: HashMap<String, NamedTensor> =
            top.to_tensors("x").into_iter().map(|t| (t.name.clone(), t)).collect();
        let images = by_name.get_mut("x.images").unwrap();
        *images = NamedTensor::i64("x.images", &[3, 4], vec![0, 1, -1, -1, 0, -1, 1, -1, 0, 1, -1, -1]);
        let error = TopKAccumulator::from_tensors(&by_name, "x", Sizes { neurons: 3, dim: 2, k: 4 }).err().unwrap();
        assert!(error.to_string().contains("does not hold 2 images per neuron"), "{error}");
    }

    #[test]
    fn append_refuses_other_means_and_shapes() {
        let mut top = accumulator(&effects(4));
        let other_mean = TopKAccumulator::new(vec![0.0; 6], 3, 2, 4).unwrap().with_histograms(vec![1.0; 3]).unwrap();
        assert!(top.append(&other_mean).unwrap_err().to_string().contains("another mean"));
        let other_k = TopKAccumulator::new(vec![0.5; 6], 3, 2, 2).unwrap();
        assert!(top.append(&other_k).unwrap_err().to_string().contains("top-2"));
        let no_histograms = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap();
        assert!(top.append(&no_histograms).unwrap_err().to_string().contains("histograms"));
    }
}
