//! The parts of a neuron's card that format 5 adds: the heads its effect flows through, its
//! nearest neurons and its typical images (each `None` for an older bundle: a rebuild adds it).

use serde::Serialize;

use super::TopImage;
use crate::bundle::{Bundle, LaterHeads, NEIGHBOURS};
use crate::error::Result;
use crate::vector::{dot, norm};

/// Heads named on a card ([`HeadGrid::largest`]).
const LARGEST_HEADS: usize = 3;

/// Words shown for each neighbour.
const NEIGHBOUR_WORDS: usize = 3;

/// What each head after a neuron's layer carries of its effect along r_n
/// ([`crate::bundle::LayerLens::heads`]): a later layers x heads grid.
#[derive(Debug, Clone, Serialize)]
pub struct HeadGrid {
    /// The later layers (the grid's rows).
    pub layers: Vec<usize>,
    /// Heads per layer (its columns).
    pub heads: usize,
    /// The mean over the top k of `<phi_{n,l,h}(I), r_n>`, layer-major `[layers x heads]`.
    pub values: Vec<f32>,
    /// The largest by magnitude, largest first.
    pub largest: Vec<HeadTerm>,
}

/// One head's term.
#[derive(Debug, Clone, Serialize)]
pub struct HeadTerm {
    /// Its layer.
    pub layer: usize,
    /// The head.
    pub head: usize,
    /// Its value in the grid.
    pub value: f32,
}

impl HeadGrid {
    /// The grid of `values` over `later` (layer-major), with its largest terms named.
    pub fn new(later: LaterHeads, values: Vec<f32>) -> Self {
        let heads = later.heads.max(1);
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
        let largest = order
            .into_iter()
            .take(LARGEST_HEADS)
            .map(|i| HeadTerm { layer: later.layers[i / heads], head: i % heads, value: values[i] })
            .collect();
        Self { layers: later.layers, heads: later.heads, values, largest }
    }
}

/// A neuron near another by r_n.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    /// The neuron (same layer).
    pub neuron: usize,
    /// The cosine of the two r_n.
    pub cosine: f32,
    /// Its first words.
    pub words: Vec<String>,
}

/// A neuron's [`HeadGrid`], when the bundle has the heads (format 5).
pub(super) fn head_grid(bundle: &Bundle, layer: usize, neuron: usize) -> Result<Option<HeadGrid>> {
    let Some(heads) = &bundle.layer(layer)?.heads else { return Ok(None) };
    let later = bundle.later_heads(layer)?;
    let count = later.count();
    Ok(Some(HeadGrid::new(later, heads[neuron * count..(neuron + 1) * count].to_vec())))
}

/// A neuron's neighbours with their cosines and first words, when the bundle has them (format 5).
pub(super) fn neighbours(bundle: &Bundle, layer: usize, neuron: usize) -> Result<Option<Vec<Neighbour>>> {
    let lens = bundle.layer(layer)?;
    let Some(all) = &lens.neighbours else { return Ok(None) };
    let d = bundle.manifest.embed_dim;
    let direction = |n: usize| &lens.direction[n * d..(n + 1) * d];
    let cosine = |a: &[f32], b: &[f32]| dot(a, b) / (norm(a) * norm(b)).max(f32::MIN_POSITIVE);
    all[neuron * NEIGHBOURS..(neuron + 1) * NEIGHBOURS]
        .iter()
        .filter_map(|&other| usize::try_from(other).ok())
        .map(|other| {
            let words = bundle.describe(layer, other)?.into_iter().take(NEIGHBOUR_WORDS).map(|(w, _)| w).collect();
            Ok(Neighbour { neuron: other, cosine: cosine(direction(neuron), direction(other)), words })
        })
        .collect::<Result<_>>()
        .map(Some)
}

/// A band of a neuron's distribution of centred norms with its typical images.
#[derive(Debug, Clone, Serialize)]
pub struct TypicalBand {
    /// The band's lower edge (0 for the first band).
    pub low: f32,
    /// Its upper edge (`None` for the last band: no bound).
    pub high: Option<f32>,
    /// Images of the bundle whose norm fell in the band (a sample; at most the manifest's
    /// `typical_per_band`).
    pub images: Vec<TopImage>,
}

/// A neuron's typical images by band, when the bundle has them (format 5) and its distribution.
pub(super) fn typical_bands(bundle: &Bundle, layer: usize, neuron: usize) -> Result<Option<Vec<TypicalBand>>> {
    let (manifest, lens) = (&bundle.manifest, bundle.layer(layer)?);
    let (Some(typical), Some(distributions)) = (&lens.typical, &lens.distributions) else { return Ok(None) };
    let (bins, per_band) = (&manifest.typical_band_bins, manifest.typical_per_band);
    let slots = bins.len().saturating_sub(1) * per_band;
    let edges =
        &distributions.edges[neuron * (manifest.histogram_bins + 1)..(neuron + 1) * (manifest.histogram_bins + 1)];
    let ids = &typical[neuron * slots..(neuron + 1) * slots];
    let bands = bins
        .windows(2)
        .zip(ids.chunks_exact(per_band.max(1)))
        .enumerate()
        .map(|(band, (range, ids))| TypicalBand {
            low: if band == 0 { 0.0 } else { edges[range[0]] },
            high: (band + 2 < bins.len()).then(|| edges[range[1]]),
            images: ids.iter().filter_map(|&id| usize::try_from(id).ok()).map(|id| TopImage::of(bundle, id)).collect(),
        })
        .collect();
    Ok(Some(bands))
}
