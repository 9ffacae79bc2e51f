//! Typical images: besides its top k, a few images of each neuron from each band of its
//! distribution of centred norms, gathered in pass 2 as a rider (no extra forward).
//!
//! Bands are groups of the histogram's bins ([`super::histogram`]), whose edges are fixed by pass
//! 1: [`TYPICAL_BAND_BINS`] cut each neuron's range at 0.52, 0.81, 1.24 and 1.91 times its RMS
//! centred norm. In each band the rider keeps the [`TYPICAL_PER_BAND`] images with the smallest
//! sample key, a hash of (the image's name, the neuron): a uniform sample of the band that does
//! not depend on the order the images come in, so shards and resumed runs keep the same images
//! and merges are exact (the smallest keys of a union are the smallest of each part's smallest).

use std::collections::HashMap;

use super::histogram::{bin_of, HISTOGRAM_BINS};
use super::statistic::{NeuronStatistic, Observation, Rider, Sizes};
use super::stats::{MeanAccumulator, NeuronStatistics};
use crate::error::{Error, Result};
use crate::random::SplitMix64;
use crate::tensor_file::{lookup, NamedTensor};

/// The first histogram bin of each band, and the end of the last: 5 bands.
pub const TYPICAL_BAND_BINS: [usize; 6] = [0, 13, 15, 17, 19, HISTOGRAM_BINS];

/// Bands.
pub const TYPICAL_BANDS: usize = TYPICAL_BAND_BINS.len() - 1;

/// Images kept per band.
pub const TYPICAL_PER_BAND: usize = 4;

/// Slots per neuron.
const SLOTS: usize = TYPICAL_BANDS * TYPICAL_PER_BAND;

/// Per neuron and band, the images with the smallest sample keys.
#[derive(Debug, Clone, PartialEq)]
pub struct TypicalImages {
    /// Each neuron's RMS centred norm `[N]` (its histogram's bins).
    scales: Vec<f32>,
    /// The kept images' sample keys `[N, bands, m]`, `u64::MAX` in an empty slot.
    keys: Vec<u64>,
    /// Their image ids `[N, bands, m]`, -1 in an empty slot.
    images: Vec<i64>,
}

/// An image's key: the first 8 bytes of the sha256 of its name (the same on every platform).
pub fn image_key(name: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
}

/// The sample key of `image_key` (a hash of the image's name) for `neuron`: well mixed, so that
/// each neuron samples other images.
pub fn sample_key(image_key: u64, neuron: usize) -> u64 {
    SplitMix64(image_key ^ (neuron as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// The band of a histogram bin.
fn band_of(bin: usize) -> usize {
    TYPICAL_BAND_BINS[1..].iter().position(|&end| bin < end).unwrap_or(TYPICAL_BANDS - 1)
}

impl TypicalImages {
    /// Empty for neurons of these RMS centred norms (the histograms' scales, checked as
    /// [`super::NormHistograms::new`] does).
    pub fn new(scales: Vec<f32>) -> Self {
        let scales: Vec<f32> =
            scales.into_iter().map(|s| if s.is_finite() && s > 0.0 { s } else { f32::MIN_POSITIVE }).collect();
        let slots = scales.len() * SLOTS;
        Self { scales, keys: vec![u64::MAX; slots], images: vec![-1; slots] }
    }

    /// Keeps `image` in `neuron`'s `band` if its key is among the band's smallest (ties: the
    /// smaller id).
    fn offer(&mut self, neuron: usize, band: usize, key: u64, image: i64) {
        let start = (neuron * TYPICAL_BANDS + band) * TYPICAL_PER_BAND;
        let slots = start..start + TYPICAL_PER_BAND;
        let largest = slots.clone().max_by_key(|&s| (self.keys[s], self.images[s])).unwrap_or(start);
        if (key, image) < (self.keys[largest], self.images[largest]) || self.images[largest] < 0 {
            self.keys[largest] = key;
            self.images[largest] = image;
        }
    }

    /// Each neuron's kept images, band by band, each band by sample key, -1 padding:
    /// `[N, bands x m]`.
    pub fn images(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.images.len());
        for (keys, images) in self.keys.chunks_exact(TYPICAL_PER_BAND).zip(self.images.chunks_exact(TYPICAL_PER_BAND)) {
            let mut band: Vec<(u64, i64)> = keys.iter().copied().zip(images.iter().copied()).collect();
            band.sort_by_key(|&(key, image)| (image < 0, key, image));
            out.extend(band.into_iter().map(|(_, image)| image));
        }
        out
    }
}

/// The scales, keys (as i64 bits) and image ids, `{prefix}.typical.*`.
impl NeuronStatistic for TypicalImages {
    fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let n = self.scales.len();
        let shape = [n, TYPICAL_BANDS, TYPICAL_PER_BAND];
        vec![
            NamedTensor::f32(format!("{prefix}.typical.scales"), &[n], self.scales.clone()),
            NamedTensor::i64(format!("{prefix}.typical.keys"), &shape, self.keys.iter().map(|&k| k as i64).collect()),
            NamedTensor::i64(format!("{prefix}.typical.images"), &shape, self.images.clone()),
        ]
    }

    fn from_tensors(tensors: &HashMap<String, NamedTensor>, prefix: &str, sizes: Sizes) -> Result<Self> {
        let n = sizes.neurons;
        let shape = [n, TYPICAL_BANDS, TYPICAL_PER_BAND];
        let get = |part: &str| lookup(tensors, &format!("{prefix}.typical.{part}"));
        let images = get("images")?.i64_values(&shape)?;
        if images.iter().any(|&id| id < -1) {
            return Err(Error::InvalidInput(format!("{prefix}.typical.images holds a negative id")));
        }
        Ok(Self {
            scales: get("scales")?.f32_values(&[n])?,
            keys: get("keys")?.i64_values(&shape)?.into_iter().map(|k| k as u64).collect(),
            images,
        })
    }

    /// Keeps the smallest keys of both (the same neurons and bins; `other`'s ids already
    /// shifted: see [`Rider::merge_after`]).
    fn merge(&mut self, other: &Self) -> Result<()> {
        self.merge_after(other, 0)
    }
}

/// Pass 2 offers every image to the band of its centred norm.
impl Rider for TypicalImages {
    const KEY: &'static str = "typical";
    const WHAT: &'static str = "typical images";

    fn start(means: &MeanAccumulator) -> Result<Self> {
        Ok(Self::new(means.centred_scales()?))
    }

    fn observe(&mut self, seen: &Observation<'_>) {
        let band = band_of(bin_of(seen.centred_norm, self.scales[seen.neuron]));
        self.offer(seen.neuron, band, sample_key(seen.image_key, seen.neuron), seen.image as i64);
    }

    fn merge_after(&mut self, other: &Self, images_before: usize) -> Result<()> {
        if self.scales != other.scales {
            return Err(Error::InvalidInput(
                "typical images of other bands (other pass-1 statistics) cannot merge".into(),
            ));
        }
        for slot in (0..other.images.len()).filter(|&s| other.images[s] >= 0) {
            let (neuron, band) = (slot / SLOTS, slot % SLOTS / TYPICAL_PER_BAND);
            self.offer(neuron, band, other.keys[slot], other.images[slot] + images_before as i64);
        }
        Ok(())
    }

    fn finish(self, stats: &mut NeuronStatistics) {
        stats.typical = Some(self.images());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_group_the_bins() {
        assert_eq!([0, 12, 13, 14, 15, 16, 17, 18, 19, 31].map(band_of), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    }

    /// Per band, the images with the smallest sample keys, whatever the order they come in;
    /// merged halves (the second's ids shifted) keep the same.
    #[test]
    fn each_band_keeps_its_smallest_keys_in_any_order() {
        let offers: Vec<(usize, u64)> = (0..40).map(|i| (i % 3, sample_key(i as u64 * 7919, 0))).collect();
        let mut whole = TypicalImages::new(vec![1.0]);
        offers.iter().enumerate().for_each(|(id, &(band, key))| whole.offer(0, band, key, id as i64));
        let mut reversed = TypicalImages::new(vec![1.0]);
        offers.iter().enumerate().rev().for_each(|(id, &(band, key))| reversed.offer(0, band, key, id as i64));
        assert_eq!(whole.images(), reversed.images());
        let (mut first, mut second) = (TypicalImages::new(vec![1.0]), TypicalImages::new(vec![1.0]));
        offers[..17].iter().enumerate().for_each(|(id, &(band, key))| first.offer(0, band, key, id as i64));
        offers[17..].iter().enumerate().for_each(|(id, &(band, key))| second.offer(0, band, key, id as i64));
        first.merge_after(&second, 17).unwrap();
        assert_eq!(first.images(), whole.images());
        // By hand: band b's images are those of its offers with the 4 smallest keys.
        let images = whole.images();
        for band in 0..3 {
            let mut expected: Vec<(u64, i64)> =
                offers.iter().enumerate().filter(|(_, o)| o.0 == band).map(|(id, o)| (o.1, id as i64)).collect();
            expected.sort();
            let expected: Vec<i64> = expected.iter().take(4).map(|&(_, id)| id).collect();
            assert_eq!(&images[band * 4..(band + 1) * 4], expected, "band {band}");
        }
        assert_eq!(&images[12..], [-1; 8], "bands 3 and 4 are empty");
    }
}
