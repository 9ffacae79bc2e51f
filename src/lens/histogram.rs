//! Each neuron's distribution of centred norms `|phi_n(I) - mean_n|` over the precompute images,
//! gathered in pass 2 beside the top k (no extra forward): a histogram with log-spaced bins and
//! a few percentiles.
//!
//! Bins: neuron n's `HISTOGRAM_BINS` bins cover `s_n x 10^[-1.5, 1.5]` evenly in log scale,
//! where `s_n` is its RMS centred norm from pass 1 (`sqrt(E|phi_n|^2 - |mean_n|^2)`); the
//! first bin also counts smaller norms (zero included), the last larger ones. The edges depend
//! on pass 1 only, so histograms of disjoint image sets with the same means add up exactly.
//!
//! Percentiles (nearest rank): exact when the rank falls among the neuron's top k norms (kept
//! exactly by the top-k accumulator: with k = 100 of 5,124 images, the 98th percentile and
//! above), else interpolated log-linearly inside the histogram's bin.

use std::collections::HashMap;

use super::statistic::{NeuronStatistic, Observation, Rider, Sizes};
use super::stats::{MeanAccumulator, NeuronStatistics};
pub use crate::bundle::Distributions;
use crate::error::{Error, Result};
use crate::percentile::percentile;
use crate::tensor_file::{lookup, NamedTensor};

/// Bins per neuron.
pub const HISTOGRAM_BINS: usize = 32;

/// The percentiles a bundle keeps per neuron.
pub const PERCENTILES: [f32; 5] = [50.0, 90.0, 98.0, 99.0, 99.9];

/// Decades the bins cover on each side of a neuron's RMS centred norm.
const HALF_RANGE_DECADES: f64 = 1.5;

/// Per neuron, counts of centred norms in log-spaced bins around its scale.
#[derive(Debug, Clone, PartialEq)]
pub struct NormHistograms {
    /// The RMS centred norm of each neuron `[N]` (the bins' centre).
    scales: Vec<f32>,
    /// `[N, HISTOGRAM_BINS]`.
    counts: Vec<u64>,
}

impl NormHistograms {
    /// Empty histograms for neurons of these RMS centred norms (a zero or non-finite scale
    /// is replaced by the smallest positive one: every norm then lands in the last bin or, when
    /// zero, in the first).
    pub fn new(scales: Vec<f32>) -> Self {
        let scales: Vec<f32> =
            scales.into_iter().map(|s| if s.is_finite() && s > 0.0 { s } else { f32::MIN_POSITIVE }).collect();
        let counts = vec![0; scales.len() * HISTOGRAM_BINS];
        Self { scales, counts }
    }

    /// Counts one centred norm of `neuron`.
    pub fn add(&mut self, neuron: usize, norm: f32) {
        let bin = bin_of(norm, self.scales[neuron]);
        self.counts[neuron * HISTOGRAM_BINS + bin] += 1;
    }

    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.scales.len()
    }

    /// The counts `[N, HISTOGRAM_BINS]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The bin edges `[N, HISTOGRAM_BINS + 1]`.
    pub fn edges(&self) -> Vec<f32> {
        self.scales.iter().flat_map(|&s| (0..=HISTOGRAM_BINS).map(move |i| edge(s, i))).collect()
    }

    /// The distributions, with each neuron's top norms (ascending, `[N, k]`) for the exact
    /// upper percentiles.
    pub fn distributions(self, top_norms: &[f32], k: usize) -> Distributions {
        let edges = self.edges();
        let mut percentiles = Vec::with_capacity(self.neurons() * PERCENTILES.len());
        for n in 0..self.neurons() {
            let counts = &self.counts[n * HISTOGRAM_BINS..(n + 1) * HISTOGRAM_BINS];
            let edges = &edges[n * (HISTOGRAM_BINS + 1)..(n + 1) * (HISTOGRAM_BINS + 1)];
            let top = &top_norms[n * k..(n + 1) * k];
            percentiles.extend(PERCENTILES.iter().map(|&p| percentile(p, counts, edges, top)));
        }
        Distributions { edges, counts: self.counts, percentiles }
    }
}

/// The scales and counts, `{prefix}.histogram.scales` and `.counts`.
impl NeuronStatistic for NormHistograms {
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let n = self.neurons();
        vec![
            NamedTensor::f32(format!("{prefix}.histogram.scales"), &[n], self.scales.clone()),
            NamedTensor::i64(
                format!("{prefix}.histogram.counts"),
                &[n, HISTOGRAM_BINS],
                self.counts.iter().map(|&c| c as i64).collect(),
            ),
        ]
    }

    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self> {
        let neurons = sizes.neurons;
        let scales = lookup(tensors, &format!("{prefix}.histogram.scales"))?.f32_values(&[neurons])?;
        let counts = lookup(tensors, &format!("{prefix}.histogram.counts"))?.i64_values(&[neurons, HISTOGRAM_BINS])?;
        if counts.iter().any(|&c| c < 0) {
            return Err(Error::InvalidInput(format!("{prefix}.histogram.counts holds a negative count")));
        }
        Ok(Self { scales, counts: counts.into_iter().map(|c| c as u64).collect() })
    }

    /// Adds another set's counts (same neurons and scales: the histograms of disjoint image
    /// sets with the same pass-1 statistics).
    fn merge(&mut self, other: &NormHistograms) -> Result<()> {
        if self.scales != other.scales {
            return Err(Error::InvalidInput(
                "histograms with other bins (other pass-1 statistics) cannot be added".into(),
            ));
        }
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        Ok(())
    }
}

/// Pass 2 counts every centred norm; the bins come from pass 1's RMS centred norms.
impl Rider for NormHistograms {
    const KEY: &'static str = "histogram";
    const WHAT: &'static str = "histograms";

    fn start(means: &MeanAccumulator) -> Result<Self> {
        Ok(Self::new(means.centred_scales()?))
    }

    fn observe(&mut self, seen: &Observation<'_>) {
        self.add(seen.neuron, seen.centred_norm);
    }

    fn finish(self, stats: &mut NeuronStatistics) {
        stats.distributions = Some(self.distributions(&stats.norms, stats.k));
    }
}

/// Edge `i` (0..=HISTOGRAM_BINS) of a neuron of this scale.
fn edge(scale: f32, i: usize) -> f32 {
    let decades = -HALF_RANGE_DECADES + 2.0 * HALF_RANGE_DECADES * i as f64 / HISTOGRAM_BINS as f64;
    (scale as f64 * 10f64.powf(decades)) as f32
}

/// The bin of a norm, the outer bins taking what lies outside the edges.
pub(super) fn bin_of(norm: f32, scale: f32) -> usize {
    if norm <= 0.0 || norm.is_nan() {
        return 0;
    }
    let position = ((norm as f64 / scale as f64).log10() + HALF_RANGE_DECADES) / (2.0 * HALF_RANGE_DECADES);
    ((position * HISTOGRAM_BINS as f64).floor().max(0.0) as usize).min(HISTOGRAM_BINS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_log_spaced_around_the_scale() {
        // Scale 2: bin 16 starts at 2 (the centre), each bin is 10^(3/32) wide.
        assert_eq!(bin_of(2.0 * 1.0001, 2.0), 16);
        assert_eq!(bin_of(2.0 * 0.9999, 2.0), 15);
        assert_eq!(bin_of(2.0 * 10f32.powf(3.0 / 32.0) * 1.0001, 2.0), 17);
        assert_eq!(bin_of(0.0, 2.0), 0);
        assert_eq!(bin_of(1e-9, 2.0), 0);
        assert_eq!(bin_of(1e9, 2.0), HISTOGRAM_BINS - 1);
        let h = NormHistograms::new(vec![2.0]);
        let edges = h.edges();
        assert!((edges[0] - 2.0 / 10f32.powf(1.5)).abs() < 1e-6);
        assert!((edges[16] - 2.0).abs() < 1e-6);
        assert!((edges[32] - 2.0 * 10f32.powf(1.5)).abs() < 1e-4);
    }

    #[test]
    fn merging_adds_counts_and_refuses_other_bins() {
        let mut a = NormHistograms::new(vec![1.0, 3.0]);
        let mut b = NormHistograms::new(vec![1.0, 3.0]);
        a.add(0, 1.0);
        b.add(0, 1.0);
        b.add(1, 100.0);
        a.merge(&b).unwrap();
        assert_eq!(a.counts()[16], 2);
        assert_eq!(a.counts()[HISTOGRAM_BINS + HISTOGRAM_BINS - 1], 1);
        assert!(a.merge(&NormHistograms::new(vec![1.0, 2.0])).is_err());
        let tensors = a.to_tensors("x").into_iter().map(|t| (t.name.clone(), t)).collect();
        let restored = NormHistograms::from_tensors(&tensors, "x", Sizes { neurons: 2, dim: 0, k: 0 }).unwrap();
        assert_eq!(restored, a);
    }
}
