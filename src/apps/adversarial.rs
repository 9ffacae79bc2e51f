//! Semantic adversarial words (section 4): for images that depict class 1 but should be
//! classified as class 0, the words whose neurons push the embedding from class 1 towards
//! class 0.
//!
//! `d = e(class 0) - e(class 1)` (unit text embeddings); the neurons of the chosen layers are
//! ranked by `|r_n . d|`, and every word of the top neurons' decompositions scores
//! `coefficient x (r_n . d)`, summed over those neurons. Words too similar to class 0 (cosine of
//! their text embeddings above a threshold) or on a block list are dropped: they would make the
//! image depict class 0 rather than fool CLIP. An image fools CLIP when `emb . d > 0`.
//!
//! Reference: [`generate_adversarial_images.py`, `main`][adversarial] (`class_embeddings_direction`,
//! `max_directions`, `most_significant_neurons`, `all_words`, `block_list`, `classification_result`). Differs: a
//! word's scores are summed over the neurons (the reference ranks each (neuron, word) pair); synonyms are judged by
//! CLIP's text embeddings, not `all-distilroberta-v1`; the descriptions come from a fixed template
//! ([`describe`]) instead of Llama 3, and generating images (DeepFloyd IF there) is left to an outside tool.
//!
//! [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::lens::omp::TEXT_SCALE;
use crate::vector::{self, dot};

/// What to search for.
///
/// Reference: the `--class_0`, `--class_1`, `--mlp_layers`, `--neurons_num`, `--overall_words` and
/// `--cosim_similarity` arguments and `main`'s `block_list` of [`generate_adversarial_images.py`][adversarial].
///
/// [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py
#[derive(Debug, Clone)]
pub struct AdversarialQuery<'a> {
    /// The class CLIP should wrongly predict, its name and unit embedding.
    pub class0: (&'a str, &'a [f32]),
    /// The class the images depict, its name and unit embedding.
    pub class1: (&'a str, &'a [f32]),
    /// The layers whose neurons are ranked (the paper: 8, 9, 10).
    pub layers: &'a [usize],
    /// Top neurons kept (the paper: 100).
    pub neurons: usize,
    /// Words returned.
    pub words: usize,
    /// Words whose embedding's cosine with class 0 exceeds this are synonyms, dropped.
    pub synonym_cosine: f32,
    /// Words dropped whatever their score (compared case-insensitively).
    pub block_list: &'a [String],
}

/// A neuron and its alignment `r_n . d`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlignedNeuron {
    /// Layer.
    pub layer: usize,
    /// Neuron index.
    pub neuron: usize,
    /// `r_n . d`.
    pub alignment: f32,
}

/// A word, its score and the top neurons whose decompositions hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdversarialWord {
    /// The word.
    pub word: String,
    /// Sum over those neurons of `coefficient x (r_n . d)`.
    pub score: f32,
    /// The neurons it came from, as `(layer, neuron)`.
    pub neurons: Vec<(usize, usize)>,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdversarialWords {
    /// The top neurons by `|r_n . d|`.
    pub neurons: Vec<AlignedNeuron>,
    /// The words, best first (positive scores only: they push towards class 0).
    pub words: Vec<AdversarialWord>,
    /// Words dropped as synonyms of class 0 or blocked.
    pub removed: Vec<String>,
    /// Image descriptions with class 1 and each word, never naming class 0.
    pub descriptions: Vec<String>,
}

/// Ranks the neurons of `layers` by `|r_n . d|` and keeps `top`.
///
/// Reference: `max_directions = pcas @ class_embeddings_direction` and
/// `np.argsort(np.abs(max_directions))[-neurons_num:]` in [`generate_adversarial_images.py`, `main`][adversarial].
///
/// [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py
pub fn aligned_neurons(bundle: &Bundle, layers: &[usize], d: &[f32], top: usize) -> Result<Vec<AlignedNeuron>> {
    let dim = bundle.manifest.embed_dim;
    let mut ranked = Vec::new();
    for &layer in layers {
        let lens = bundle.layer(layer)?;
        ranked.extend(lens.direction.chunks_exact(dim).enumerate().map(|(neuron, r)| AlignedNeuron {
            layer,
            neuron,
            alignment: dot(r, d),
        }));
    }
    ranked.sort_by(|a, b| {
        b.alignment.abs().total_cmp(&a.alignment.abs()).then((a.layer, a.neuron).cmp(&(b.layer, b.neuron)))
    });
    ranked.truncate(top);
    Ok(ranked)
}

/// The adversarial words for `query` from the bundle's decompositions and word embeddings.
///
/// Reference: `all_words`, `(coefficient * max_directions[neuron], text)` per `.json` entry of the top neurons,
/// filtered and sorted, in [`generate_adversarial_images.py`, `main`][adversarial]; summed per word here.
///
/// [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py
pub fn adversarial_words(bundle: &Bundle, query: &AdversarialQuery) -> Result<AdversarialWords> {
    let manifest = &bundle.manifest;
    let dim = manifest.embed_dim;
    for (name, e) in [query.class0, query.class1] {
        if name.trim().is_empty() {
            return Err(Error::InvalidInput("a class name is empty".into()));
        }
        if e.len() != dim {
            return Err(Error::InvalidInput(format!(
                "the embedding of \"{name}\" has {} values, the bundle's space has {dim}",
                e.len()
            )));
        }
    }
    if query.neurons == 0 || query.words == 0 {
        return Err(Error::InvalidInput("the numbers of neurons and words must be positive".into()));
    }
    let d: Vec<f32> = query.class0.1.iter().zip(query.class1.1).map(|(a, b)| a - b).collect();
    let neurons = aligned_neurons(bundle, query.layers, &d, query.neurons)?;
    let m = manifest.components;
    let mut scores: BTreeMap<usize, (f64, Vec<(usize, usize)>)> = BTreeMap::new();
    for n in &neurons {
        let lens = &bundle.layers[&n.layer];
        let row = n.neuron * m..(n.neuron + 1) * m;
        for (&word, &coef) in lens.decomposition_index[row.clone()].iter().zip(&lens.decomposition_coef[row]) {
            if word >= 0 {
                let entry = scores.entry(word as usize).or_default();
                entry.0 += coef as f64 * n.alignment as f64;
                entry.1.push((n.layer, n.neuron));
            }
        }
    }
    let class0_lower = query.class0.0.to_lowercase();
    let blocked = |word: &str| {
        let lower = word.to_lowercase();
        query.block_list.iter().any(|b| b.to_lowercase() == lower)
            || lower.contains(&class0_lower)
            || class0_lower.contains(&lower)
    };
    let (mut words, mut removed) = (Vec::new(), Vec::new());
    for (index, (score, from)) in scores {
        let word = &manifest.words[index];
        let cosine = dot(&bundle.word_embeds[index * dim..(index + 1) * dim], query.class0.1) / TEXT_SCALE;
        if score <= 0.0 {
            continue;
        }
        if cosine > query.synonym_cosine || blocked(word) {
            removed.push(word.clone());
        } else {
            words.push(AdversarialWord { word: word.clone(), score: score as f32, neurons: from });
        }
    }
    words.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.word.cmp(&b.word)));
    words.truncate(query.words);
    let descriptions = words.iter().filter_map(|w| describe(query.class1.0, &w.word, query.class0.0)).collect();
    Ok(AdversarialWords { neurons, words, removed, descriptions })
}

/// Deterministic image descriptions: "a photo of a {class 1} with {word}".
pub const DESCRIPTION_TEMPLATE: &str = "a photo of a {class} with {word}";

/// A description of class 1 with `word`; none if it would name class 0.
///
/// Differs: in [`generate_adversarial_images.py`][adversarial] Llama 3 writes the descriptions (`send_request`)
/// and `main` keeps those that name class 1 and not class 0.
///
/// [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py
pub fn describe(class1: &str, word: &str, class0: &str) -> Option<String> {
    let text = DESCRIPTION_TEMPLATE.replace("{class}", class1).replace("{word}", word);
    (!text.to_lowercase().contains(&class0.to_lowercase())).then_some(text)
}

/// `(emb / |emb|) . d`: the image's cosine with class 0 minus that with class 1 (unit class
/// embeddings); 0 for a zero embedding.
pub fn fooling_score(image_embed: &[f32], class0: &[f32], class1: &[f32]) -> f32 {
    let norm = vector::norm(image_embed);
    let dot: f32 = image_embed.iter().zip(class0).zip(class1).map(|((e, a), b)| e * (a - b)).sum();
    if norm > 0.0 {
        dot / norm
    } else {
        0.0
    }
}

/// Whether CLIP prefers class 0 for an image embedding (any scale): `emb . d > 0`.
///
/// Reference: `classification_result = repp[0] @ class_embeddings_direction`, a success when `> 0`, in
/// [`generate_adversarial_images.py`, `main`][adversarial].
///
/// [adversarial]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/generate_adversarial_images.py
pub fn fools(image_embed: &[f32], class0: &[f32], class1: &[f32]) -> bool {
    fooling_score(image_embed, class0, class1) > 0.0
}
