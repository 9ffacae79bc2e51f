//! The map view's data (`#/map/<layer>`): every neuron of a layer placed by the cosine of its
//! r_n ([`crate::lens::map`]), with its first words for the labels.

use serde::Serialize;

use crate::bundle::Bundle;
use crate::error::Result;

/// Words per neuron on the map.
const MAP_WORDS: usize = 3;

/// A layer's map of neurons.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronMap {
    /// The layer.
    pub layer: usize,
    /// Each neuron's place, `[N, 2]` (x, y; arbitrary units).
    pub points: Vec<f32>,
    /// Each neuron's first words, for hover and search.
    pub words: Vec<Vec<String>>,
    /// Whether the bundle held the map (format 5) or it was computed on load.
    pub stored: bool,
}

/// Layer `layer`'s map: the bundle's (format 5), else `compute`'s from the layer's directions.
pub fn neuron_map(bundle: &Bundle, layer: usize, compute: impl FnOnce(&[f32], usize) -> Vec<f32>) -> Result<NeuronMap> {
    let lens = bundle.layer(layer)?;
    let (points, stored) = match &lens.map {
        Some(points) => (points.clone(), true),
        None => (compute(&lens.direction, bundle.manifest.embed_dim), false),
    };
    let words = (0..bundle.manifest.neurons)
        .map(|n| Ok(bundle.describe(layer, n)?.into_iter().take(MAP_WORDS).map(|(word, _)| word).collect()))
        .collect::<Result<_>>()?;
    Ok(NeuronMap { layer, points, words, stored })
}
