//! How well a neuron's words describe it (the fidelity of the words), beside its layer's
//! neurons: computed once per layer, shown on every card.

use serde::Serialize;

#[cfg(feature = "engine")]
use crate::bundle::Bundle;
#[cfg(feature = "engine")]
use crate::error::Result;
#[cfg(feature = "engine")]
use crate::lens::{word_fidelity, Dictionary};

/// Bins of a layer's distribution of fidelity over [0, 1] ([`WordFidelity::layer_counts`]).
pub const FIDELITY_BINS: usize = 10;

/// How well a neuron's words describe it ([`word_fidelity`]: the cosine between r_n and its
/// reconstruction from its words), and where that stands in its layer.
#[derive(Debug, Clone, Serialize)]
pub struct WordFidelity {
    /// The cosine between r_n and its words' reconstruction.
    pub cosine: f32,
    /// The layer's median fidelity.
    pub layer_median: f32,
    /// The share of the layer's neurons whose fidelity is lower.
    pub share_below: f32,
    /// The layer's neurons per tenth of [0, 1] (values below 0 in the first, 1 in the last).
    pub layer_counts: Vec<u32>,
}

/// A layer's fidelity of the words ([`word_fidelity`] per neuron), with what every neuron's
/// [`WordFidelity`] shares: the layer's median and its tenths, computed once.
#[derive(Debug, Clone)]
pub struct LayerFidelity {
    /// Each neuron's cosine `[N]`.
    pub values: Vec<f32>,
    median: f32,
    counts: Vec<u32>,
}

impl LayerFidelity {
    /// The layer's statistics of its neurons' fidelity `values` `[N]`.
    pub fn new(values: Vec<f32>) -> Self {
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        let mut counts = vec![0u32; FIDELITY_BINS];
        for &value in &values {
            counts[((value.max(0.0) * FIDELITY_BINS as f32) as usize).min(FIDELITY_BINS - 1)] += 1;
        }
        Self { median: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0), values, counts }
    }

    /// Every neuron's fidelity in `layer` of `bundle` ([`word_fidelity`] over the dictionary
    /// made from the bundle's word embeddings, as `precompute` made it).
    /// A format-5 bundle has them (`layer.L.fidelity`); an older one's are computed here.
    #[cfg(feature = "engine")]
    pub fn of(bundle: &Bundle, layer: usize) -> Result<Self> {
        let lens = bundle.layer(layer)?;
        if let Some(values) = &lens.fidelity {
            return Ok(Self::new(values.clone()));
        }
        let dictionary = Dictionary::from_word_embeddings(&bundle.word_embeds, bundle.manifest.embed_dim)?;
        Ok(Self::new(word_fidelity(&dictionary, &lens.direction, &lens.decomposition_index, &lens.decomposition_coef)))
    }

    /// Neuron `neuron`'s fidelity within the layer; `None` past the layer's neurons.
    pub fn neuron(&self, neuron: usize) -> Option<WordFidelity> {
        let cosine = *self.values.get(neuron)?;
        Some(WordFidelity {
            cosine,
            layer_median: self.median,
            share_below: self.values.iter().filter(|&&v| v < cosine).count() as f32 / self.values.len() as f32,
            layer_counts: self.counts.clone(),
        })
    }
}
