//! Exact percentiles: every image's centred norm of every neuron, kept compactly (f32,
//! image-major) during pass 2 as a rider and selected at the end, so that each percentile of a
//! bundle is the nearest-rank value itself, not one interpolated in a histogram bin. Shards and
//! resumed runs append their images' rows in order, so merges are exact.
//!
//! A run too large for [`ALL_NORMS_BUDGET_BYTES`] per layer (natively 512 MiB: 43,690 images of
//! ViT-B/32's 3072 neurons) stops keeping them; its percentiles below the top k stay
//! interpolated, marked with the histogram bin that bounds them ([`crate::percentile`]).

use std::collections::HashMap;

use super::histogram::PERCENTILES;
use super::statistic::{NeuronStatistic, Observation, Rider, Sizes};
use super::stats::{MeanAccumulator, NeuronStatistics};
use crate::error::{Error, Result};
use crate::percentile::exact_percentile;
use crate::tensor_file::{lookup, NamedTensor};

/// The most bytes of norms kept per layer (the page's memory is smaller than a machine's).
pub const ALL_NORMS_BUDGET_BYTES: usize = if cfg!(target_arch = "wasm32") { 64 << 20 } else { 512 << 20 };

/// Every centred norm `[images, N]`, until the budget is passed.
#[derive(Debug, Clone, PartialEq)]
pub struct AllNorms {
    neurons: usize,
    /// Image-major: row i holds image i's norms of every neuron.
    norms: Vec<f32>,
    /// Set once the budget was passed: the norms are dropped and stay so.
    overflowed: bool,
    /// [`ALL_NORMS_BUDGET_BYTES`] (smaller in tests).
    budget_bytes: usize,
}

impl AllNorms {
    /// Empty, for `neurons` neurons.
    pub fn new(neurons: usize) -> Self {
        Self { neurons, norms: Vec::new(), overflowed: false, budget_bytes: ALL_NORMS_BUDGET_BYTES }
    }

    /// Whether the norms were dropped (too many images for the budget).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Drops the norms for good when they pass the budget.
    fn check_budget(&mut self) {
        if self.norms.len() * 4 > self.budget_bytes {
            self.overflowed = true;
            self.norms = Vec::new();
        }
    }

    /// Each neuron's exact percentiles [`PERCENTILES`] `[N, P]` (nearest rank); `None` once
    /// overflowed or without images.
    pub fn percentiles(&self) -> Option<Vec<f32>> {
        if self.overflowed || self.norms.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.neurons * PERCENTILES.len());
        for n in 0..self.neurons {
            let mut column: Vec<f32> = self.norms.iter().skip(n).step_by(self.neurons).copied().collect();
            column.sort_by(f32::total_cmp);
            out.extend(PERCENTILES.iter().map(|&p| exact_percentile(p, &column)));
        }
        Some(out)
    }
}

/// The norms `{prefix}.all_norms.values` `[images, N]` and whether they overflowed.
impl NeuronStatistic for AllNorms {
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let rows = self.norms.len() / self.neurons.max(1);
        vec![
            NamedTensor::f32(format!("{prefix}.all_norms.values"), &[rows, self.neurons], self.norms.clone()),
            NamedTensor::i64(format!("{prefix}.all_norms.overflowed"), &[1], vec![self.overflowed as i64]),
        ]
    }

    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self> {
        let values = lookup(tensors, &format!("{prefix}.all_norms.values"))?;
        let rows = values.shape.first().copied().unwrap_or(0);
        Ok(Self {
            neurons: sizes.neurons,
            norms: values.f32_values(&[rows, sizes.neurons])?,
            overflowed: lookup(tensors, &format!("{prefix}.all_norms.overflowed"))?.i64_values(&[1])?[0] != 0,
            budget_bytes: ALL_NORMS_BUDGET_BYTES,
        })
    }

    /// Appends `other`'s rows (the images after this one's).
    fn merge(&mut self, other: &Self) -> Result<()> {
        if self.neurons != other.neurons {
            return Err(Error::InvalidInput(format!(
                "cannot append the norms of {} neurons to those of {}",
                other.neurons, self.neurons
            )));
        }
        self.overflowed |= other.overflowed;
        if self.overflowed {
            self.norms = Vec::new();
        } else {
            self.norms.extend_from_slice(&other.norms);
            self.check_budget();
        }
        Ok(())
    }
}

/// Pass 2 keeps every centred norm; the end replaces the interpolated percentiles by exact ones.
impl Rider for AllNorms {
    const KEY: &'static str = "all_norms";
    const WHAT: &'static str = "exact percentiles";

    fn start(means: &MeanAccumulator) -> Result<Self> {
        Ok(Self::new(means.neurons))
    }

    fn observe(&mut self, seen: &Observation<'_>) {
        if self.overflowed {
            return;
        }
        // Neurons come in order for each image: appending keeps the rows image-major.
        self.norms.push(seen.centred_norm);
        if seen.neuron + 1 == self.neurons {
            self.check_budget();
        }
    }

    fn finish(self, stats: &mut NeuronStatistics) {
        let exact = self.percentiles();
        stats.percentiles_exact = exact.is_some();
        if let (Some(exact), Some(distributions)) = (exact, stats.distributions.as_mut()) {
            distributions.percentiles = exact;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe_all(norms: &mut AllNorms, rows: &[[f32; 2]]) {
        for row in rows {
            for (neuron, &centred_norm) in row.iter().enumerate() {
                let seen = Observation { neuron, image: 0, image_key: 0, centred_norm, effect: &[], mean: &[] };
                norms.observe(&seen);
            }
        }
    }

    /// Nearest rank over 10 images by hand; the same when appended from two parts.
    #[test]
    fn percentiles_are_exact_nearest_ranks() {
        let rows: Vec<[f32; 2]> = (0..10).map(|i| [(i * 7 % 10) as f32, 100.0 - i as f32]).collect();
        let mut whole = AllNorms::new(2);
        observe_all(&mut whole, &rows);
        let p = whole.percentiles().unwrap();
        // Neuron 0 holds 0..9: p50 is rank 5 (4), p90 rank 9 (8), p98, p99, p99.9 rank 10 (9).
        assert_eq!(&p[..5], [4.0, 8.0, 9.0, 9.0, 9.0]);
        // Neuron 1 holds 91..100: rank 5 is 95.
        assert_eq!(p[5], 95.0);
        let (mut first, mut second) = (AllNorms::new(2), AllNorms::new(2));
        observe_all(&mut first, &rows[..3]);
        observe_all(&mut second, &rows[3..]);
        first.merge(&second).unwrap();
        assert_eq!(first, whole);
        let tensors = first.to_tensors("x").into_iter().map(|t| (t.name.clone(), t)).collect();
        assert_eq!(AllNorms::from_tensors(&tensors, "x", Sizes { neurons: 2, dim: 0, k: 0 }).unwrap(), whole);
    }

    /// Past the budget the norms are dropped for good, and a merge with such a part too.
    #[test]
    fn the_budget_drops_the_norms() {
        // A budget of 4 images of 2 neurons: the fifth image drops them.
        let mut norms = AllNorms { budget_bytes: 32, ..AllNorms::new(2) };
        observe_all(&mut norms, &[[1.0, 2.0]; 4]);
        assert!(!norms.overflowed() && norms.percentiles().is_some());
        observe_all(&mut norms, &[[1.0, 2.0]]);
        assert!(norms.overflowed() && norms.percentiles().is_none() && norms.norms.is_empty());
        let mut small = AllNorms::new(2);
        observe_all(&mut small, &[[3.0, 4.0]]);
        small.merge(&norms).unwrap();
        assert!(small.overflowed() && small.percentiles().is_none());
    }
}
