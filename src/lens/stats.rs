//! Statistics of second-order effects over an image set (section 2 of the method), streaming:
//! memory is O(neurons x k x D) whatever the number of images.
//!
//! Pass 1 ([`MeanAccumulator`]) averages each neuron's effect. Pass 2 ([`TopKAccumulator`])
//! keeps, per neuron, the k images with the largest centred norm `|phi_n(I) - mean_n|` and
//! their centred effects; [`TopKAccumulator::finish`] then gives the first right singular
//! vector of those k effects (with the paper's sign rule) and the thresholds. With
//! [`TopKAccumulator::with_histograms`] pass 2 also counts every neuron's centred norms into a
//! histogram ([`super::histogram`]), whose bins come from pass 1's RMS centred norms
//! ([`MeanAccumulator::centred_scales`]).
//!
//! Reference: [`compute_pcas.py`, `main`][pcas]: the mean over the images, per neuron the `top_k_pca` largest
//! centred norms (saved as `*_norm.npy`; the thresholds) and the first right singular vector `vh[0]` of their
//! centred effects with the majority sign rule (saved as `*_pca.npy`). Differs: two streaming passes instead of
//! loading every image's effects (`*_merged.npy`, `[images, N, D]`), and power iteration instead of an SVD.
//!
//! [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py

use std::collections::HashMap;

use super::histogram::{Distributions, NormHistograms};
use crate::error::{Error, Result};
use crate::tensor_file::{lookup, NamedTensor};
use crate::vector::dot_f64;

/// Pass 1: the mean effect of every neuron.
///
/// Reference: `neurons_mean = neurons.mean(axis=0)` in [`compute_pcas.py`, `main`][pcas].
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub struct MeanAccumulator {
    neurons: usize,
    dim: usize,
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

    /// The state as named tensors under `prefix` (exact: the f64 sums), to resume later.
    pub fn snapshot(&self, prefix: &str) -> Vec<NamedTensor> {
        vec![
            NamedTensor::f64(format!("{prefix}.sum"), &[self.neurons, self.dim], self.sum.clone()),
            NamedTensor::f64(format!("{prefix}.square_sum"), &[self.neurons], self.square_sum.clone()),
            NamedTensor::i64(format!("{prefix}.images"), &[1], vec![self.images as i64]),
        ]
    }

    /// Rebuilds an accumulator from [`MeanAccumulator::snapshot`]'s tensors.
    pub fn restore(tensors: &HashMap<String, NamedTensor>, prefix: &str, neurons: usize, dim: usize) -> Result<Self> {
        let sum = lookup(tensors, &format!("{prefix}.sum"))?.f64_values(&[neurons, dim])?;
        let square_sum = lookup(tensors, &format!("{prefix}.square_sum"))?.f64_values(&[neurons])?;
        let images = lookup(tensors, &format!("{prefix}.images"))?.i64_values(&[1])?[0] as usize;
        Ok(Self { neurons, dim, sum, square_sum, images })
    }

    /// Adds another accumulator's sums (the same neurons and dimension; disjoint images).
    pub fn merge(&mut self, other: &MeanAccumulator) -> Result<()> {
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

fn check_batch(effects: &[f32], neurons: usize, dim: usize) -> Result<usize> {
    let per_image = neurons * dim;
    if per_image == 0 || !effects.len().is_multiple_of(per_image) {
        return Err(Error::InvalidInput(format!(
            "{} values is not a whole number of [{neurons}, {dim}] effects",
            effects.len()
        )));
    }
    Ok(per_image)
}

/// One image kept for a neuron.
#[derive(Debug, Clone)]
struct Kept {
    norm: f32,
    image: usize,
    centred: Vec<f32>,
}

/// Pass 2: per neuron, the k largest centred norms and their centred effects.
///
/// Reference: `np.argsort(np.linalg.norm(current_neurons, axis=-1))[-top_k_pca:]` and `current_neurons[important]`
/// in [`compute_pcas.py`, `main`][pcas]; here kept while streaming.
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub struct TopKAccumulator {
    k: usize,
    dim: usize,
    mean: Vec<f32>,
    kept: Vec<Vec<Kept>>,
    next_image: usize,
    histograms: Option<NormHistograms>,
}

/// What the statistics of one layer are.
///
/// Reference: what [`compute_pcas.py`, `main`][pcas] saves: `directions` is `*_pca.npy`, `norms` is `*_norm.npy`
/// (whose `norms[:, 0]` is `compute_ablations.py`'s threshold); `top_images` is what `visualize_neurons.ipynb`
/// shows (`importants`, its top 25).
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
#[derive(Debug, Clone)]
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
    /// The distributions of the centred norms, when the accumulator kept histograms.
    pub distributions: Option<Distributions>,
}

impl TopKAccumulator {
    /// Keeps `k` images per neuron, centring with `mean` (`[N, D]` from pass 1).
    pub fn new(mean: Vec<f32>, neurons: usize, dim: usize, k: usize) -> Result<Self> {
        if k == 0 || mean.len() != neurons * dim {
            return Err(Error::InvalidInput(format!("top-k needs k > 0 and a [{neurons}, {dim}] mean")));
        }
        Ok(Self { k, dim, mean, kept: vec![Vec::with_capacity(k); neurons], next_image: 0, histograms: None })
    }

    /// Also counts every centred norm into a histogram per neuron, with bins around `scales`
    /// (`[N]`, pass 1's [`MeanAccumulator::centred_scales`]).
    pub fn with_histograms(mut self, scales: Vec<f32>) -> Result<Self> {
        if scales.len() != self.kept.len() {
            return Err(Error::InvalidInput(format!("{} scales for {} neurons", scales.len(), self.kept.len())));
        }
        self.histograms = Some(NormHistograms::new(scales));
        Ok(self)
    }

    /// Adds a batch of effects `[B, N, D]`; images get consecutive ids.
    pub fn add(&mut self, effects: &[f32]) -> Result<()> {
        let per_image = check_batch(effects, self.kept.len(), self.dim)?;
        for image in effects.chunks_exact(per_image) {
            let id = self.next_image;
            self.next_image += 1;
            let rows = image.chunks_exact(self.dim).zip(self.mean.chunks_exact(self.dim));
            for (n, (kept, (effect, mean))) in self.kept.iter_mut().zip(rows).enumerate() {
                let norm = offer(kept, self.k, id, effect, mean);
                if let Some(histograms) = &mut self.histograms {
                    histograms.add(n, norm);
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors under `prefix`, to resume later: the mean, per neuron the
    /// kept images in their current order (`-1` pads), their norms and centred effects.
    pub fn snapshot(&self, prefix: &str) -> Vec<NamedTensor> {
        let (neurons, k, dim) = (self.kept.len(), self.k, self.dim);
        let mut images = vec![-1i64; neurons * k];
        let mut norms = vec![0f32; neurons * k];
        let mut centred = vec![0f32; neurons * k * dim];
        for (n, kept) in self.kept.iter().enumerate() {
            for (slot, entry) in kept.iter().enumerate() {
                images[n * k + slot] = entry.image as i64;
                norms[n * k + slot] = entry.norm;
                centred[(n * k + slot) * dim..][..dim].copy_from_slice(&entry.centred);
            }
        }
        let mut tensors = vec![
            NamedTensor::f32(format!("{prefix}.mean"), &[neurons, dim], self.mean.clone()),
            NamedTensor::i64(format!("{prefix}.images"), &[neurons, k], images),
            NamedTensor::f32(format!("{prefix}.norms"), &[neurons, k], norms),
            NamedTensor::f32(format!("{prefix}.centred"), &[neurons, k, dim], centred),
            NamedTensor::i64(format!("{prefix}.next_image"), &[1], vec![self.next_image as i64]),
        ];
        tensors.extend(self.histograms.iter().flat_map(|h| h.snapshot(prefix)));
        tensors
    }

    /// Rebuilds an accumulator from [`TopKAccumulator::snapshot`]'s tensors (with its
    /// histograms when the snapshot has them).
    pub fn restore(
        tensors: &HashMap<String, NamedTensor>,
        prefix: &str,
        neurons: usize,
        dim: usize,
        k: usize,
    ) -> Result<Self> {
        let get = |part: &str| lookup(tensors, &format!("{prefix}.{part}"));
        let mean = get("mean")?.f32_values(&[neurons, dim])?;
        let images = get("images")?.i64_values(&[neurons, k])?;
        let norms = get("norms")?.f32_values(&[neurons, k])?;
        let centred = get("centred")?.f32_values(&[neurons, k, dim])?;
        let next_image = get("next_image")?.i64_values(&[1])?[0] as usize;
        let mut accumulator = Self::new(mean, neurons, dim, k)?;
        accumulator.next_image = next_image;
        if tensors.contains_key(&format!("{prefix}.histogram.counts")) {
            accumulator.histograms = Some(NormHistograms::restore(tensors, prefix, neurons)?);
        }
        for (n, kept) in accumulator.kept.iter_mut().enumerate() {
            for slot in (0..k).take_while(|&slot| images[n * k + slot] >= 0) {
                let i = n * k + slot;
                kept.push(Kept {
                    norm: norms[i],
                    image: images[i] as usize,
                    centred: centred[i * dim..(i + 1) * dim].to_vec(),
                });
            }
        }
        Ok(accumulator)
    }

    /// Adds the images of `other` (pass 2 over the images that follow this accumulator's, with
    /// the same mean, k and histogram bins) as if they had been added here after this one's:
    /// their ids are shifted by the number of images added here. Each neuron keeps the k
    /// strongest of both sets, which are exactly those a single accumulator given every image
    /// in order would keep (see [`offer`]); the histograms' counts add up.
    pub fn append(&mut self, other: &TopKAccumulator) -> Result<()> {
        if (self.k, self.dim, self.kept.len()) != (other.k, other.dim, other.kept.len()) {
            return Err(Error::InvalidInput(format!(
                "cannot append a top-{} accumulator of [{}, {}] effects to a top-{} one of [{}, {}]",
                other.k,
                other.kept.len(),
                other.dim,
                self.k,
                self.kept.len(),
                self.dim
            )));
        }
        if self.mean != other.mean {
            return Err(Error::InvalidInput("cannot append top-k images centred on another mean".into()));
        }
        match (&mut self.histograms, &other.histograms) {
            (Some(mine), Some(theirs)) => mine.merge(theirs)?,
            (None, None) => {}
            _ => return Err(Error::InvalidInput("cannot append top-k images with and without histograms".into())),
        }
        let offset = self.next_image;
        for (kept, theirs) in self.kept.iter_mut().zip(&other.kept) {
            kept.extend(theirs.iter().map(|e| Kept { image: e.image + offset, ..e.clone() }));
            kept.sort_by(stronger);
            kept.truncate(self.k);
        }
        self.next_image += other.next_image;
        Ok(())
    }

    /// Images added so far.
    pub fn images(&self) -> usize {
        self.next_image
    }

    /// Directions, thresholds and top images. An error when fewer than k images were added.
    pub fn finish(self) -> Result<NeuronStatistics> {
        if self.next_image < self.k {
            return Err(Error::InvalidInput(format!(
                "k = {} is larger than the number of images ({})",
                self.k, self.next_image
            )));
        }
        let (neurons, dim, k) = (self.kept.len(), self.dim, self.k);
        let mut stats = NeuronStatistics {
            neurons,
            dim,
            k,
            mean: self.mean,
            directions: Vec::with_capacity(neurons * dim),
            norms: Vec::with_capacity(neurons * k),
            top_images: Vec::with_capacity(neurons * k),
            sign_votes: Vec::with_capacity(neurons),
            distributions: None,
        };
        for mut kept in self.kept {
            kept.sort_by(|a, b| a.norm.total_cmp(&b.norm).then(a.image.cmp(&b.image)));
            let rows: Vec<&[f32]> = kept.iter().map(|e| e.centred.as_slice()).collect();
            let direction = first_right_singular_vector(&rows, dim);
            stats.sign_votes.push(rows.iter().filter(|row| dot_f64(row, &direction) > 0.0).count());
            stats.directions.extend(direction);
            stats.norms.extend(kept.iter().map(|e| e.norm));
            stats.top_images.extend(kept.iter().map(|e| e.image));
        }
        stats.distributions = self.histograms.map(|h| h.finish(&stats.norms, k));
        Ok(stats)
    }
}

/// Keeps `image` among a neuron's `k` largest centred norms if it belongs there; returns its
/// centred norm.
///
/// The kept images are always the k first in [`stronger`]'s order among those offered (images
/// come in id order, so a later image with a norm equal to the weakest kept one stays out, and
/// among equal weakest norms the latest image leaves first): a set that does not depend on the
/// order of the offers, which [`TopKAccumulator::append`] relies on.
fn offer(kept: &mut Vec<Kept>, k: usize, image: usize, effect: &[f32], mean: &[f32]) -> f32 {
    let norm = effect.iter().zip(mean).map(|(e, m)| ((e - m) as f64).powi(2)).sum::<f64>().sqrt() as f32;
    let centred = || effect.iter().zip(mean).map(|(e, m)| e - m).collect();
    if kept.len() < k {
        kept.push(Kept { norm, image, centred: centred() });
        return norm;
    }
    let weakest = (0..kept.len()).min_by(|&a, &b| stronger(&kept[b], &kept[a])).unwrap_or(0);
    if norm > kept[weakest].norm {
        kept[weakest] = Kept { norm, image, centred: centred() };
    }
    norm
}

/// The order of the top k: the larger norm first, on equal norms the earlier image.
fn stronger(a: &Kept, b: &Kept) -> std::cmp::Ordering {
    b.norm.total_cmp(&a.norm).then(a.image.cmp(&b.image))
}

/// The first right singular vector of the matrix whose rows are `rows` (not re-centred), with
/// the paper's sign rule: kept if more than half of the rows have a positive dot product with
/// it, else negated (a tie negates).
///
/// The rule needs an orientation to negate on a tie, which the reference takes from LAPACK's
/// SVD (arbitrary); here it is the one where the largest row has a positive projection, so a
/// tie gives the vector on which that row projects negatively. Outside ties the result does
/// not depend on this choice.
///
/// Computed as `X^T v / |X^T v|` for the top eigenvector `v` of the small Gram matrix `X X^T`
/// (k x k), found by power iteration in f64.
///
/// Reference: `vh[0]` of `np.linalg.svd(current_important_neurons)` and the `how_many_positive > top_k_pca // 2`
/// rule in [`compute_pcas.py`, `main`][pcas]. Differs: power iteration, not LAPACK (the tie orientation above).
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub fn first_right_singular_vector(rows: &[&[f32]], dim: usize) -> Vec<f32> {
    let k = rows.len();
    let gram: Vec<f64> = (0..k * k).map(|ij| dot_f64(rows[ij / k], rows[ij % k])).collect();
    let v = top_eigenvector(&gram, k);
    let mut direction = vec![0f64; dim];
    for (row, weight) in rows.iter().zip(&v) {
        direction.iter_mut().zip(row.iter()).for_each(|(d, &x)| *d += weight * x as f64);
    }
    let norm = direction.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        direction.iter_mut().for_each(|x| *x /= norm);
    }
    let project = |row: &[f32]| row.iter().zip(&direction).map(|(&x, d)| x as f64 * d).sum::<f64>();
    let largest = rows.iter().max_by(|a, b| dot_f64(a, a).total_cmp(&dot_f64(b, b)));
    let orientation = if largest.is_some_and(|row| project(row) < 0.0) { -1.0 } else { 1.0 };
    let positive = rows.iter().filter(|row| orientation * project(row) > 0.0).count();
    let sign = orientation * if 2 * positive > k { 1.0 } else { -1.0 };
    direction.into_iter().map(|x| (sign * x) as f32).collect()
}

/// Top eigenvector of a symmetric positive semi-definite `n x n` matrix, by power iteration
/// starting from the column of the largest diagonal entry (never orthogonal to the top
/// eigenvector unless that column is zero), to a change below 1e-13.
fn top_eigenvector(matrix: &[f64], n: usize) -> Vec<f64> {
    let start = (0..n).max_by(|&a, &b| matrix[a * n + a].total_cmp(&matrix[b * n + b])).unwrap_or(0);
    let mut v: Vec<f64> = (0..n).map(|i| matrix[i * n + start]).collect();
    if !normalise(&mut v) {
        return vec![0.0; n];
    }
    for _ in 0..100_000 {
        let mut next: Vec<f64> = (0..n).map(|i| (0..n).map(|j| matrix[i * n + j] * v[j]).sum()).collect();
        if !normalise(&mut next) {
            return v;
        }
        let change = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        v = next;
        if change < 1e-13 {
            break;
        }
    }
    v
}

fn normalise(v: &mut [f64]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
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
