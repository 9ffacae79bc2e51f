//! Statistics of second-order effects over an image set (section 2 of the method), streaming:
//! memory is O(neurons x k x D) whatever the number of images.
//!
//! Pass 1 ([`MeanAccumulator`], here) averages each neuron's effect. Pass 2
//! ([`TopKAccumulator`](super::TopKAccumulator), [`super::top_k`])
//! keeps, per neuron, the k images with the largest centred norm `|phi_n(I) - mean_n|` and
//! their centred effects; [`TopKAccumulator::finish`](super::TopKAccumulator::finish) then gives the first right singular
//! vector of those k effects ([`super::singular`]) and the thresholds. Started with
//! [`TopKAccumulator::after`](super::TopKAccumulator::after), pass 2 also gathers the [`super::statistic::RIDERS`] (every
//! neuron's histogram of centred norms, [`super::histogram`], whose bins come from pass 1's RMS
//! centred norms, [`MeanAccumulator::centred_scales`], and its typical images per band of it,
//! [`super::typical`]).
//!
//! Both accumulators are [`NeuronStatistic`]s: their state as tensors, and exact merges.
//!
//! Reference: [`compute_pcas.py`, `main`][pcas]: the mean over the images, per neuron the `top_k_pca` largest
//! centred norms (saved as `*_norm.npy`; the thresholds) and the first right singular vector `vh[0]` of their
//! centred effects with the majority sign rule (saved as `*_pca.npy`). Differs: two streaming passes instead of
//! loading every image's effects (`*_merged.npy`, `[images, N, D]`), and power iteration instead of an SVD.
//!
//! [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py

use std::collections::HashMap;

use super::histogram::Distributions;
use super::statistic::{NeuronStatistic, Sizes};
use crate::error::{Error, Result};
use crate::tensor_file::{lookup, NamedTensor};
use crate::vector::dot_f64;

/// Pass 1: the mean effect of every neuron.
///
/// Reference: `neurons_mean = neurons.mean(axis=0)` in [`compute_pcas.py`, `main`][pcas].
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub struct MeanAccumulator {
    pub(super) neurons: usize,
    pub(super) dim: usize,
    sum: Vec<f64>,
    /// Per neuron, the sum of `|phi_n|^2` (for [`MeanAccumulator::centred_scales`]).
    square_sum: Vec<f64>,
    images: usize,
}

impl MeanAccumulator {
    /// An empty accumulator for `neurons` effects of dimension `dim`.
    pub fn new(neurons: usize, dim: usize) -> Self {
        Self { neurons, dim, sum: vec![0.0; neurons * dim], square_sum: vec![0.0; neurons], images: 0 }
    }

    /// Adds a batch of effects, row-major `[B, N, D]`.
    pub fn add(&mut self, effects: &[f32]) -> Result<()> {
        let per_image = check_batch(effects, self.neurons, self.dim)?;
        for image in effects.chunks_exact(per_image) {
            self.sum.iter_mut().zip(image).for_each(|(s, &x)| *s += x as f64);
            for (square, effect) in self.square_sum.iter_mut().zip(image.chunks_exact(self.dim)) {
                *square += dot_f64(effect, effect);
            }
            self.images += 1;
        }
        Ok(())
    }

    /// Images seen so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// Each neuron's RMS centred norm `sqrt(E|phi_n|^2 - |mean_n|^2)` `[N]`, in f64 from the
    /// sums (the histograms' scale); an error when no image was added.
    pub fn centred_scales(&self) -> Result<Vec<f32>> {
        if self.images == 0 {
            return Err(Error::InvalidInput("no images: the centred norms' scale is undefined".into()));
        }
        let images = self.images as f64;
        Ok(self
            .square_sum
            .iter()
            .zip(self.sum.chunks_exact(self.dim))
            .map(|(&square, sum)| {
                let mean_square: f64 = sum.iter().map(|s| (s / images).powi(2)).sum();
                (square / images - mean_square).max(0.0).sqrt() as f32
            })
            .collect())
    }

    /// The mean effects `[N, D]`; an error when no image was added.
    pub fn mean(&self) -> Result<Vec<f32>> {
        if self.images == 0 {
            return Err(Error::InvalidInput("no images: the mean effect is undefined".into()));
        }
        Ok(self.sum.iter().map(|s| (s / self.images as f64) as f32).collect())
    }
}

/// The f64 sums and the image count (exact), `{prefix}.sum`, `.square_sum`, `.images`.
impl NeuronStatistic for MeanAccumulator {
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        vec![
            NamedTensor::f64(format!("{prefix}.sum"), &[self.neurons, self.dim], self.sum.clone()),
            NamedTensor::f64(format!("{prefix}.square_sum"), &[self.neurons], self.square_sum.clone()),
            NamedTensor::i64(format!("{prefix}.images"), &[1], vec![self.images as i64]),
        ]
    }

    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self> {
        let Sizes { neurons, dim, .. } = sizes;
        let sum = lookup(tensors, &format!("{prefix}.sum"))?.f64_values(&[neurons, dim])?;
        let square_sum = lookup(tensors, &format!("{prefix}.square_sum"))?.f64_values(&[neurons])?;
        let images = lookup(tensors, &format!("{prefix}.images"))?.i64_values(&[1])?[0] as usize;
        Ok(Self { neurons, dim, sum, square_sum, images })
    }

    /// Adds the sums (the same neurons and dimension; disjoint images).
    fn merge(&mut self, other: &Self) -> Result<()> {
        if (self.neurons, self.dim) != (other.neurons, other.dim) {
            return Err(Error::InvalidInput(format!(
                "cannot add [{}, {}] sums to [{}, {}] ones",
                other.neurons, other.dim, self.neurons, self.dim
            )));
        }
        self.sum.iter_mut().zip(&other.sum).for_each(|(a, b)| *a += b);
        self.square_sum.iter_mut().zip(&other.square_sum).for_each(|(a, b)| *a += b);
        self.images += other.images;
        Ok(())
    }
}

/// The effects per image of a batch `[B, N, D]`; an error when `effects` is not whole images.
pub(super) fn check_batch(effects: &[f32], neurons: usize, dim: usize) -> Result<usize> {
    let per_image = neurons * dim;
    if per_image == 0 || !effects.len().is_multiple_of(per_image) {
        return Err(Error::InvalidInput(format!(
            "{} values is not a whole number of [{neurons}, {dim}] effects",
            effects.len()
        )));
    }
    Ok(per_image)
}

/// What the statistics of one layer are. (`Default`: the riders' fields start empty.)
///
/// Reference: what [`compute_pcas.py`, `main`][pcas] saves: `directions` is `*_pca.npy`, `norms` is `*_norm.npy`
/// (whose `norms[:, 0]` is `compute_ablations.py`'s threshold); `top_images` is what `visualize_neurons.ipynb`
/// shows (`importants`, its top 25).
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
#[derive(Debug, Clone, Default)]
pub struct NeuronStatistics {
    /// Neurons.
    pub neurons: usize,
    /// Effect dimension.
    pub dim: usize,
    /// k.
    pub k: usize,
    /// Mean effect `[N, D]`.
    pub mean: Vec<f32>,
    /// First right singular vector of the top-k centred effects, sign rule applied, `[N, D]`.
    pub directions: Vec<f32>,
    /// The k largest centred norms, ascending, `[N, k]`; `norms[n * k]` is the threshold.
    pub norms: Vec<f32>,
    /// The images of those norms (ids in the order images were added), same order, `[N, k]`.
    pub top_images: Vec<usize>,
    /// Per neuron, how many of its top-k centred effects have a positive dot product with its
    /// direction. Exactly k/2 is a tie, where the reference's sign is LAPACK's arbitrary one.
    pub sign_votes: Vec<usize>,
    /// The distributions of the centred norms, when the accumulator kept histograms (set by
    /// the [`NormHistograms`](super::NormHistograms) rider).
    pub distributions: Option<Distributions>,
    /// Later heads K (later layers x heads, layer-major).
    pub later_heads: usize,
    /// Whether the distributions' percentiles are exact (every centred norm was kept: the
    /// [`AllNorms`](super::all_norms::AllNorms) rider), else interpolated below the top k.
    pub percentiles_exact: bool,
    /// Per neuron, its typical images `[N, bands x m]` (ids, -1 pads; set by the
    /// [`TypicalImages`](super::typical::TypicalImages) rider).
    pub typical: Option<Vec<i64>>,
    /// Per neuron, the mean over its top k of each later head's scalar `c(I) s_{l,h,n}(I)`,
    /// `[N, K]`: times `u_{l,h,n} . r_n`, the head's mean part of the effect along r_n.
    pub head_scalars: Vec<f32>,
}
