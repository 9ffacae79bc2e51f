//! The per-neuron statistics of a bundle beyond the lens itself, each written and read here side
//! by side: format 3's distributions of centred norms, and format 5's heads, fidelity of the
//! words, nearest neighbours, map and typical images.
//!
//! Each is a typed field of [`LayerLens`] that the applications read by name, rather than an
//! entry in a table of untyped tensors that every reader would then type. A statistic a bundle
//! lacks (an older format's) reads as `None`.

use super::{bundle_error, Distributions, LayerLens, Manifest};
use crate::error::{Error, Result};
use crate::tensor_file::NamedTensor;
use crate::WeightFile;

/// Neighbours kept per neuron (`layer.L.neighbours`).
pub const NEIGHBOURS: usize = 8;

/// A layer's distributions as tensors: `layer.L.histogram.edges` `[N, B+1]`,
/// `layer.L.histogram.counts` `[N, B]` (i32), `layer.L.percentiles` `[N, P]`.
pub(super) fn write_distributions(d: &Distributions, manifest: &Manifest, layer: usize) -> [NamedTensor; 3] {
    let (n, bins) = (manifest.neurons, manifest.histogram_bins);
    let name = |part: &str| format!("layer.{layer}.{part}");
    [
        NamedTensor::f32(name("histogram.edges"), &[n, bins + 1], d.edges.clone()),
        NamedTensor::i32(
            name("histogram.counts"),
            &[n, bins],
            d.counts.iter().map(|&c| c.min(i32::MAX as u64) as i32).collect(),
        ),
        NamedTensor::f32(name("percentiles"), &[n, manifest.percentiles.len()], d.percentiles.clone()),
    ]
}

/// A layer's distributions ([`write_distributions`]), when the manifest says the bundle has
/// them.
pub(super) fn read_distributions(
    file: &WeightFile,
    manifest: &Manifest,
    layer: usize,
) -> Result<Option<Distributions>> {
    let (n, bins) = (manifest.neurons, manifest.histogram_bins);
    if bins == 0 {
        return Ok(None);
    }
    let name = |part: &str| format!("layer.{layer}.{part}");
    let read = |e: Error| bundle_error(e.to_string());
    let counts = file.tensor_i32(&name("histogram.counts"), &[n, bins]).map_err(read)?;
    if counts.iter().any(|&c| c < 0) {
        return Err(bundle_error(format!("{} holds a negative count", name("histogram.counts"))));
    }
    let edges = file.tensor(&name("histogram.edges"), &[n, bins + 1]).map_err(read)?;
    if edges
        .chunks_exact(bins + 1)
        .any(|row| row.windows(2).any(|pair| pair[0].partial_cmp(&pair[1]) != Some(std::cmp::Ordering::Less)))
    {
        return Err(bundle_error(format!("{} are not ascending", name("histogram.edges"))));
    }
    Ok(Some(Distributions {
        edges,
        counts: counts.into_iter().map(|c| c as u64).collect(),
        percentiles: file.tensor(&name("percentiles"), &[n, manifest.percentiles.len()]).map_err(read)?,
    }))
}

/// Format 5's statistics of a layer that it has, as tensors: `layer.L.heads` `[N, K]`,
/// `layer.L.fidelity` `[N]`, `layer.L.neighbours` `[N, 8]` (i32), `layer.L.map` `[N, 2]`,
/// `layer.L.typical` `[N, bands x m]` (i32).
pub(super) fn write_format_5(lens: &LayerLens, manifest: &Manifest, layer: usize) -> Vec<NamedTensor> {
    let n = manifest.neurons;
    let name = |part: &str| format!("layer.{layer}.{part}");
    let mut tensors = Vec::new();
    if let Some(heads) = &lens.heads {
        tensors.push(NamedTensor::f32(name("heads"), &[n, heads.len() / n.max(1)], heads.clone()));
    }
    if let Some(fidelity) = &lens.fidelity {
        tensors.push(NamedTensor::f32(name("fidelity"), &[n], fidelity.clone()));
    }
    if let Some(neighbours) = &lens.neighbours {
        tensors.push(NamedTensor::i32(name("neighbours"), &[n, NEIGHBOURS], neighbours.clone()));
    }
    if let Some(map) = &lens.map {
        tensors.push(NamedTensor::f32(name("map"), &[n, 2], map.clone()));
    }
    if let Some(typical) = &lens.typical {
        tensors.push(NamedTensor::i32(name("typical"), &[n, typical_slots(manifest)], typical.clone()));
    }
    tensors
}

/// Reads format 5's statistics of layer `layer` into `lens`, those the file has: the heads'
/// columns must be the model's later heads, the neighbours neurons of the layer.
pub(super) fn read_format_5(file: &WeightFile, manifest: &Manifest, layer: usize, lens: &mut LayerLens) -> Result<()> {
    let n = manifest.neurons;
    let name = |part: &str| format!("layer.{layer}.{part}");
    let read = |e: Error| bundle_error(e.to_string());
    let present = |part: &str| file.contains(&name(part));
    if present("heads") {
        let later_heads = manifest.later_heads(layer)?.count();
        lens.heads = Some(file.tensor(&name("heads"), &[n, later_heads]).map_err(read)?);
    }
    if present("fidelity") {
        lens.fidelity = Some(file.tensor(&name("fidelity"), &[n]).map_err(read)?);
    }
    if present("neighbours") {
        let neighbours = file.tensor_i32(&name("neighbours"), &[n, NEIGHBOURS]).map_err(read)?;
        if let Some(bad) = neighbours.iter().find(|&&i| i < -1 || i >= n as i32) {
            return Err(bundle_error(format!("{} holds neuron {bad}, outside the {n} neurons", name("neighbours"))));
        }
        lens.neighbours = Some(neighbours);
    }
    if present("map") {
        lens.map = Some(file.tensor(&name("map"), &[n, 2]).map_err(read)?);
    }
    if present("typical") {
        let bins = &manifest.typical_band_bins;
        if bins.windows(2).any(|pair| pair[0] >= pair[1])
            || bins.last().is_some_and(|&end| end > manifest.histogram_bins)
        {
            return Err(bundle_error(format!(
                "manifest.json: `typical_band_bins` {bins:?} are not ascending bins of the {} histogram bins",
                manifest.histogram_bins
            )));
        }
        let typical = file.tensor_i32(&name("typical"), &[n, typical_slots(manifest)]).map_err(read)?;
        if let Some(bad) = typical.iter().find(|&&i| i < -1 || i >= manifest.images.len() as i32) {
            let images = manifest.images.len();
            return Err(bundle_error(format!("{} names image {bad}, outside the {images} images", name("typical"))));
        }
        lens.typical = Some(typical);
    }
    Ok(())
}

/// Typical images per neuron: bands x images per band.
fn typical_slots(manifest: &Manifest) -> usize {
    manifest.typical_band_bins.len().saturating_sub(1) * manifest.typical_per_band
}
