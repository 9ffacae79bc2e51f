//! What the explorer shows from a bundle alone (no model, and no `engine` feature: it builds
//! with the file formats): a neuron's card with its distribution, several cards side by side
//! with their shared words, and a word's page. The engine serves them to the page (with the
//! analysed image's norms); the CLI's `describe --json` prints the same card.

use std::collections::HashMap;

use serde::Serialize;

use crate::apps::classify::classify;
use crate::apps::concepts::is_significant;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::percentile::percentile_bounds;

mod fidelity;
mod map;
mod sections;

pub use fidelity::{LayerFidelity, WordFidelity, FIDELITY_BINS};
pub use map::{neuron_map, NeuronMap};
use sections::{head_grid, neighbours, typical_bands};
pub use sections::{HeadGrid, HeadTerm, Neighbour, TypicalBand};

/// The most neurons a list shows.
pub const MAX_LIST: usize = 64;

/// Words of each card compared for [`NeuronList::shared_words`].
const SHARED_WORDS_PER_CARD: usize = 20;

/// One of a neuron's top images.
#[derive(Debug, Clone, Serialize)]
pub struct TopImage {
    /// Its index in the bundle's image list.
    pub id: usize,
    /// Its path there.
    pub path: Option<String>,
    /// Its thumbnail's path in the bundle, when the bundle has thumbnails.
    pub thumbnail: Option<String>,
}

/// A class near a neuron's direction.
#[derive(Debug, Clone, Serialize)]
pub struct NearestClass {
    /// The class's index in the bundle.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// The cosine of r_n with the class embedding.
    pub cosine: f32,
}

/// A neuron's card.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronCard {
    /// The layer.
    pub layer: usize,
    /// The neuron.
    pub neuron: usize,
    /// All its words with their coefficients.
    pub words: Vec<(String, f32)>,
    /// Its significance threshold.
    pub threshold: Option<f32>,
    /// Its top images.
    pub top_images: Vec<TopImage>,
    /// The classes nearest to r_n, best first.
    pub classes: Vec<NearestClass>,
    /// Its distribution of centred norms over the bundle's images (none in format 2).
    pub distribution: Option<NeuronDistribution>,
    /// The last analysed image's centred norm for this neuron, when there is one.
    pub analysed_norm: Option<f32>,
    /// How well its words describe it, beside its layer's neurons.
    pub fidelity: Option<WordFidelity>,
    /// Through which later heads its effect flows (none before format 5: a rebuild adds it).
    pub heads: Option<HeadGrid>,
    /// Its nearest neurons by r_n (none before format 5).
    pub neighbours: Option<Vec<Neighbour>>,
    /// A few images from each band of its distribution (none before format 5).
    pub typical: Option<Vec<TypicalBand>>,
}

/// A neuron's distribution of centred norms `|phi_n - mean_n|` over the bundle's images.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronDistribution {
    /// Bin edges, ascending, log-spaced (bins + 1 values).
    pub edges: Vec<f32>,
    /// Images per bin; the first bin also counts smaller norms, the last larger ones.
    pub counts: Vec<u64>,
    /// `(percentile, value)`: 50, 90, 98, 99, 99.9.
    pub percentiles: Vec<(f32, f32)>,
    /// Per percentile, `None` when its value is exact (every norm kept, format 5, or among the
    /// top k norms), else the edges
    /// of the histogram bin it was interpolated in, which hold the exact value (`(low, high)`;
    /// the first bin from 0, the last with no upper edge: `None`).
    pub percentile_bounds: Vec<Option<(f32, Option<f32>)>>,
    /// Images counted.
    pub images: u64,
    /// Images whose norm is above the significance threshold.
    pub above_threshold: usize,
    /// `above_threshold / images`.
    pub share_above: f64,
}

/// Options of a word's page ([`word_page`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordPageOptions {
    /// Top images shown per neuron.
    pub top_images: usize,
}

impl Default for WordPageOptions {
    fn default() -> Self {
        Self { top_images: 6 }
    }
}

/// A word's page: every neuron whose decomposition holds it.
#[derive(Debug, Clone, Serialize)]
pub struct WordPage {
    /// The word as the bundle spells it.
    pub word: String,
    /// The neurons, by |coefficient| descending.
    pub neurons: Vec<WordPageNeuron>,
}

/// A neuron on a word's page.
#[derive(Debug, Clone, Serialize)]
pub struct WordPageNeuron {
    /// The layer.
    pub layer: usize,
    /// The neuron.
    pub neuron: usize,
    /// The word's signed coefficient in its decomposition.
    pub coefficient: f32,
    /// Its first words (this one included).
    pub words: Vec<(String, f32)>,
    /// Its first top images.
    pub top_images: Vec<TopImage>,
}

/// Several neurons' cards, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct NeuronList {
    /// The cards, in the list's order.
    pub cards: Vec<NeuronCard>,
    /// Words among the first words of at least two cards, most shared first.
    pub shared_words: Vec<String>,
}

/// A neuron's card: all its words, top images, nearest classes, threshold and distribution;
/// `analysed_norm` is the last analysed image's centred norm, when there is one; `fidelity`
/// its words' fidelity ([`LayerFidelity::neuron`]), when known.
pub fn neuron_card(
    bundle: &Bundle,
    layer: usize,
    neuron: usize,
    analysed_norm: Option<f32>,
    fidelity: Option<WordFidelity>,
) -> Result<NeuronCard> {
    let manifest = &bundle.manifest;
    let words = bundle.describe(layer, neuron)?;
    let lens = &bundle.layers[&layer];
    let d = manifest.embed_dim;
    let direction = &lens.direction[neuron * d..(neuron + 1) * d];
    let classes = if direction.iter().any(|&x| x != 0.0) {
        classify(direction, &bundle.class_embeds, &manifest.classes, 5)?
            .into_iter()
            .map(|c| NearestClass { index: c.index, name: c.name, cosine: c.cosine })
            .collect()
    } else {
        Vec::new()
    };
    let threshold = lens.norms.get(neuron * manifest.top_k).copied();
    Ok(NeuronCard {
        layer,
        neuron,
        words,
        threshold,
        top_images: top_images(bundle, layer, neuron, usize::MAX),
        classes,
        distribution: distribution(bundle, layer, neuron),
        analysed_norm,
        fidelity,
        heads: head_grid(bundle, layer, neuron)?,
        neighbours: neighbours(bundle, layer, neuron)?,
        typical: typical_bands(bundle, layer, neuron)?,
    })
}

/// A neuron's first `limit` top images, with their paths and thumbnails.
fn top_images(bundle: &Bundle, layer: usize, neuron: usize, limit: usize) -> Vec<TopImage> {
    let manifest = &bundle.manifest;
    let ids = manifest.top_images.get(&layer.to_string()).and_then(|per_neuron| per_neuron.get(neuron));
    ids.into_iter().flatten().take(limit).map(|&id| TopImage::of(bundle, id)).collect()
}

impl TopImage {
    /// Image `id` of `bundle`, with its path and thumbnail.
    pub fn of(bundle: &Bundle, id: usize) -> Self {
        let manifest = &bundle.manifest;
        Self {
            id,
            path: manifest.images.get(id).cloned(),
            thumbnail: (manifest.thumbnail_size > 0).then(|| format!("thumbnails/{id}.jpg")),
        }
    }
}

/// A neuron's distribution, when the bundle has them (format 3). The share above the
/// threshold counts the top-k norms that are significant (by the rule concept discovery uses).
fn distribution(bundle: &Bundle, layer: usize, neuron: usize) -> Option<NeuronDistribution> {
    let manifest = &bundle.manifest;
    let lens = &bundle.layers[&layer];
    let d = lens.distributions.as_ref()?;
    let (bins, k, p) = (manifest.histogram_bins, manifest.top_k, manifest.percentiles.len());
    let counts = d.counts[neuron * bins..(neuron + 1) * bins].to_vec();
    let images: u64 = counts.iter().sum();
    let top = &lens.norms[neuron * k..(neuron + 1) * k];
    let above_threshold = top.iter().filter(|&&norm| is_significant(norm, top[0])).count();
    let edges = d.edges[neuron * (bins + 1)..(neuron + 1) * (bins + 1)].to_vec();
    // Exact percentiles (format 5 within precompute's budget) have no bounds to say.
    let bounds = |p: f32| if manifest.exact_percentiles { None } else { percentile_bounds(p, &counts, &edges, k) };
    let percentile_bounds = manifest.percentiles.iter().map(|&p| bounds(p)).collect();
    Some(NeuronDistribution {
        edges,
        counts,
        percentile_bounds,
        percentiles: manifest
            .percentiles
            .iter()
            .copied()
            .zip(d.percentiles[neuron * p..(neuron + 1) * p].iter().copied())
            .collect(),
        images,
        above_threshold,
        share_above: above_threshold as f64 / images.max(1) as f64,
    })
}

/// A list of neurons `"9:4, 9:17,10:301"`: `(layer, neuron)` in order, repeats dropped. Each
/// item must be `layer:neuron` with two whole numbers.
pub fn parse_neurons(spec: &str) -> Result<Vec<(usize, usize)>> {
    let mut neurons = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once(':').and_then(|(l, n)| Some((l.trim().parse().ok()?, n.trim().parse().ok()?)));
        let neuron = parsed
            .ok_or_else(|| Error::InvalidInput(format!("“{item}” is not a neuron: write layer:neuron, e.g. 9:4")))?;
        if !neurons.contains(&neuron) {
            neurons.push(neuron);
        }
    }
    if neurons.is_empty() {
        return Err(Error::InvalidInput("the neuron list is empty: write layer:neuron pairs, e.g. 9:4,9:17".into()));
    }
    Ok(neurons)
}

/// The cards of a list such as `"9:4,9:17,10:301"` (at most [`MAX_LIST`]), with the words that
/// at least two of them share among their first words. `analysed_norm` gives a neuron's norm on
/// the last analysed image; `fidelity` a neuron's [`WordFidelity`], when known.
pub fn neuron_list(
    bundle: &Bundle,
    spec: &str,
    analysed_norm: impl Fn(usize, usize) -> Option<f32>,
    fidelity: impl Fn(usize, usize) -> Result<Option<WordFidelity>>,
) -> Result<NeuronList> {
    let neurons = parse_neurons(spec)?;
    if neurons.len() > MAX_LIST {
        return Err(Error::InvalidInput(format!(
            "a list shows at most {MAX_LIST} neurons, this one has {}",
            neurons.len()
        )));
    }
    let cards = neurons
        .iter()
        .map(|&(layer, neuron)| {
            fidelity(layer, neuron)
                .and_then(|fidelity| neuron_card(bundle, layer, neuron, analysed_norm(layer, neuron), fidelity))
                .map_err(|e| Error::InvalidInput(format!("{layer}:{neuron}: {}", message(&e))))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(NeuronList { shared_words: shared_words(&cards), cards })
}

/// An error's message without the variant's prefix.
fn message(error: &Error) -> String {
    match error {
        Error::InvalidInput(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Words among the first [`SHARED_WORDS_PER_CARD`] of at least two cards: most shared first,
/// then in order of first appearance.
fn shared_words(cards: &[NeuronCard]) -> Vec<String> {
    let mut order: Vec<&str> = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for card in cards {
        for (word, _) in card.words.iter().take(SHARED_WORDS_PER_CARD) {
            let count = counts.entry(word).or_insert(0);
            if *count == 0 {
                order.push(word);
            }
            *count += 1;
        }
    }
    let mut shared: Vec<(usize, &str)> =
        order.iter().enumerate().filter(|(_, w)| counts[*w] >= 2).map(|(i, w)| (i, *w)).collect();
    shared.sort_by_key(|&(first, word)| (std::cmp::Reverse(counts[word]), first));
    shared.into_iter().map(|(_, w)| w.to_string()).collect()
}

/// A word's page: each neuron whose decomposition holds `word` with its coefficient, its first
/// six words and its first `images` top images; an error naming the word when the dictionary
/// does not hold it.
pub fn word_page(bundle: &Bundle, word: &str, images: usize) -> Result<WordPage> {
    let (spelled, uses) = bundle.neurons_with_word(word).ok_or_else(|| {
        Error::InvalidInput(format!(
            "“{}” is not a word of the bundle's dictionary ({} words)",
            word.trim(),
            bundle.manifest.words.len()
        ))
    })?;
    let neurons = uses
        .into_iter()
        .map(|(layer, neuron, coefficient)| {
            let mut words = bundle.describe(layer, neuron)?;
            words.truncate(6);
            Ok(WordPageNeuron {
                layer,
                neuron,
                coefficient,
                words,
                top_images: top_images(bundle, layer, neuron, images),
            })
        })
        .collect::<Result<_>>()?;
    Ok(WordPage { word: spelled, neurons })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neuron_lists_parse_or_say_what_is_wrong() {
        assert_eq!(parse_neurons("9:4, 9:17,10:301,9:4").unwrap(), [(9, 4), (9, 17), (10, 301)]);
        assert!(parse_neurons("9:4,x").unwrap_err().to_string().contains("“x” is not a neuron"));
        assert!(parse_neurons("9-4").unwrap_err().to_string().contains("“9-4” is not a neuron"));
        assert!(parse_neurons(" , ").unwrap_err().to_string().contains("empty"));
    }
}
