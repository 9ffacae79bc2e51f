//! Concept discovery (section 4): the significant neurons of a layer for an image, those whose
//! centred effect norm `|phi_n(I) - mean_n|` exceeds the neuron's threshold (the k-th largest
//! norm over the image set), and the words of their decompositions ranked by the sum over those
//! neurons of `coefficient x centred norm`.
//!
//! Reference: [`concept_discovery.ipynb`][notebook] (the cells of `components_centered_norm`, `indices` and
//! `all_words`); the threshold is `norms[:, 0]` (the k-th largest centred norm) as in [`compute_ablations.py`,
//! `main`][ablations], where the notebook's `all_norms_sorted` cell sorts the effects, not their norms. Differs:
//! [`SIGNIFICANCE_MARGIN`], and several layers ([`merge_layers`]) where the notebook reads one.
//!
//! [notebook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/concept_discovery.ipynb
//! [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py

use std::collections::HashMap;

use serde::Serialize;

use crate::bundle::LayerLens;
use crate::error::{Error, Result};

/// How far above its threshold a centred norm must be to count, relative: the image that set
/// a threshold equals it in exact arithmetic and is not significant (the rule is `>`), but a
/// forward in another batch reproduces its norm only to rounding.
///
/// Differs from the reference, whose rule is a bare `>` ([`compute_ablations.py`, `main`][ablations]).
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
pub const SIGNIFICANCE_MARGIN: f32 = 1e-5;

/// Whether a centred norm is significant for a neuron with this threshold.
pub fn is_significant(centred_norm: f32, threshold: f32) -> bool {
    centred_norm > threshold * (1.0 + SIGNIFICANCE_MARGIN)
}

/// The neurons whose centred norm `[N]` is (`significant`) or is not above its threshold `[N]`,
/// ascending.
///
/// Reference: `mlp_results_norm[batch] > norms[:, 0]` in [`compute_ablations.py`, `main`][ablations];
/// `np.nonzero(components_centered_norm[image_index] > all_norms_sorted)` in [`concept_discovery.ipynb`][notebook].
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
/// [notebook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/concept_discovery.ipynb
pub fn significant_neurons(norms: &[f32], thresholds: &[f32], significant: bool) -> Vec<usize> {
    (0..norms.len()).filter(|&n| is_significant(norms[n], thresholds[n]) == significant).collect()
}

/// What concept discovery found in one image for one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concepts {
    /// The layer.
    pub layer: usize,
    /// The significant neurons, ascending.
    pub significant_neurons: Vec<usize>,
    /// Words and scores, best first.
    pub words: Vec<(String, f32)>,
}

/// Concept discovery from an image's centred norms `[N]` of `layer`, with the bundle data of
/// that layer (`k` thresholds per neuron, `m` components), keeping the `top` words.
///
/// Reference: the `all_words` cell of [`concept_discovery.ipynb`][notebook]: for each `(index, coefficient, text)`
/// of a significant neuron's decomposition (the `.json` of `compute_sparse_decomposition.py`),
/// `coefficient x centred norm`, summed per text and sorted.
///
/// [notebook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/concept_discovery.ipynb
pub fn discover_concepts(
    layer: usize,
    centred_norms: &[f32],
    lens: &LayerLens,
    k: usize,
    m: usize,
    words: &[String],
    top: usize,
) -> Result<Concepts> {
    let neurons = centred_norms.len();
    if k == 0 || lens.norms.len() != neurons * k || lens.decomposition_index.len() != neurons * m {
        return Err(Error::InvalidInput(format!(
            "layer {layer}: {neurons} centred norms do not match the bundle's thresholds and decompositions"
        )));
    }
    let significant_neurons = significant_neurons(centred_norms, &lens.thresholds(k), true);
    let mut scores: HashMap<usize, f64> = HashMap::new();
    for &n in &significant_neurons {
        let row = n * m..(n + 1) * m;
        for (&word, &coef) in lens.decomposition_index[row.clone()].iter().zip(&lens.decomposition_coef[row]) {
            if word >= 0 {
                *scores.entry(word as usize).or_default() += coef as f64 * centred_norms[n] as f64;
            }
        }
    }
    let mut ranked: Vec<(usize, f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let words = ranked
        .into_iter()
        .take(top)
        .map(|(w, s)| {
            words
                .get(w)
                .map(|name| (name.clone(), s as f32))
                .ok_or_else(|| Error::InvalidInput(format!("word index {w} is outside the {} words", words.len())))
        })
        .collect::<Result<_>>()?;
    Ok(Concepts { layer, significant_neurons, words })
}

/// Concept discovery across several layers: the words' scores summed over the layers, best
/// first, keeping `top`. The per-layer results must hold every word (`top = usize::MAX`).
///
/// No reference counterpart: [`concept_discovery.ipynb`][notebook] reads one layer (`mlp_layer = 9`).
///
/// [notebook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/concept_discovery.ipynb
pub fn merge_layers<'a>(per_layer: impl IntoIterator<Item = &'a Concepts>, top: usize) -> Vec<(String, f32)> {
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for (word, score) in per_layer.into_iter().flat_map(|c| &c.words) {
        *totals.entry(word).or_default() += *score as f64;
    }
    let mut scores: Vec<(String, f64)> = totals.into_iter().map(|(w, s)| (w.to_string(), s)).collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scores.into_iter().take(top).map(|(w, s)| (w, s as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three neurons, k = 2, m = 2. Thresholds (each neuron's first norm) 1, 2, 0.5; centred
    /// norms 1.5, 3, 0.5: neurons 0 and 1 are significant, 2 equals its threshold and is not.
    /// Scores: word 1 gets 0.4 x 1.5 (neuron 0) - 0.5 x 3 (neuron 1) = -0.9, word 0 gets
    /// 0.2 x 3 = 0.6; neuron 2's word 2 does not count.
    #[test]
    fn significant_neurons_are_those_above_their_thresholds() {
        assert_eq!(significant_neurons(&[1.0, 3.0, 2.0], &[1.5, 1.5, 2.0], true), [1]);
        assert_eq!(significant_neurons(&[1.0, 3.0, 2.0], &[1.5, 1.5, 2.0], false), [0, 2]);
    }

    #[test]
    fn concept_scores_sum_coefficient_times_norm_over_significant_neurons() {
        let lens = LayerLens {
            mean: vec![],
            direction: vec![],
            norms: vec![1.0, 0.9, 2.0, 1.0, 0.5, 0.4],
            decomposition_index: vec![1, -1, 1, 0, 2, -1],
            decomposition_coef: vec![0.4, 0.0, -0.5, 0.2, 1.0, 0.0],
            ..LayerLens::default()
        };
        let words: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let found = discover_concepts(7, &[1.5, 3.0, 0.5], &lens, 2, 2, &words, 10).unwrap();
        assert_eq!(found.significant_neurons, [0, 1]);
        assert_eq!(found.words.len(), 2);
        assert_eq!(found.words[0].0, "a");
        assert!((found.words[0].1 - 0.6).abs() < 1e-6);
        assert_eq!(found.words[1].0, "b");
        assert!((found.words[1].1 + 0.9).abs() < 1e-6);
        let top = discover_concepts(7, &[1.5, 3.0, 0.5], &lens, 2, 2, &words, 1).unwrap();
        assert_eq!(top.words.len(), 1);
        assert!(discover_concepts(7, &[1.5, 3.0], &lens, 2, 2, &words, 10).is_err());
    }

    /// Word scores add across layers: a 1, b 0.5 + 0.75, c 0.1; the top two are b, a.
    #[test]
    fn merged_layers_add_each_words_scores() {
        let layer = |words: &[(&str, f32)]| Concepts {
            layer: 0,
            significant_neurons: vec![],
            words: words.iter().map(|&(w, s)| (w.to_string(), s)).collect(),
        };
        let merged = merge_layers(&[layer(&[("a", 1.0), ("b", 0.5)]), layer(&[("b", 0.75), ("c", 0.1)])], 2);
        assert_eq!(merged, [("b".to_string(), 1.25), ("a".to_string(), 1.0)]);
    }
}
