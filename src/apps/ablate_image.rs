//! The paper's ablations (Table 1) on one image, live: the embedding that classification sees,
//! `v = 100 emb / |emb|`, is the sum of every neuron's second-order effect `phi_n` and the
//! rest, so replacing effects changes `v` linearly and no forward runs again:
//! - mean ablation of a set S: `v' = v - sum_{n in S} (phi_n - mean_n)`; the neurons' centred
//!   norms become 0;
//! - rank-1 reconstruction of a layer: every `phi_n` replaced by `mean_n + x_n r_n` with
//!   `x_n = (phi_n - mean_n) . r_n`: `v' = v - sum_n (c_n - x_n r_n)`; the centred norms become
//!   `|x_n|`.
//!
//! The cost is O(|S| D) per layer (O(N D) for a whole layer), after the layer's effects are
//! computed once per image (one lens pass of that layer, no forward).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vector::dot;

/// What to ablate on the analysed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AblationRequest {
    /// Mean-ablate these neurons: `"9:4,9:17"` (layer:neuron, comma separated).
    Neurons {
        /// The neurons.
        neurons: String,
    },
    /// Mean-ablate every neuron of the layer that is significant on the image.
    Significant {
        /// The layer.
        layer: usize,
    },
    /// Mean-ablate every neuron of the layer that is not significant on the image.
    Insignificant {
        /// The layer.
        layer: usize,
    },
    /// Keep only the rank-1 reconstruction `mean_n + x_n r_n` of every neuron of the layer.
    RankOne {
        /// The layer.
        layer: usize,
    },
}

/// How one layer's effects are replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Replacement {
    /// These neurons' effects by their means.
    Mean(Vec<usize>),
    /// Every neuron's effect by its rank-1 reconstruction.
    RankOne,
}

/// One layer of the analysed image: its centred effects `c_n = phi_n - mean_n` `[N, D]`, the
/// bundle's directions `r_n` `[N, D]` and the centred norms `[N]`.
pub struct LayerEffects<'a> {
    /// `[N, D]`.
    pub centred: &'a [f32],
    /// `[N, D]`.
    pub directions: &'a [f32],
    /// `[N]`, updated by [`ablate_layer`].
    pub norms: &'a mut [f32],
}

/// Applies `replacement` to one layer: subtracts the removed parts from `v` (`[D]`) and sets the
/// affected centred norms; returns how many neurons' effects were replaced.
pub fn ablate_layer(v: &mut [f32], layer: LayerEffects, replacement: &Replacement) -> usize {
    let dim = v.len();
    let row = |t: &[f32], n: usize| t[n * dim..(n + 1) * dim].to_vec();
    match replacement {
        Replacement::Mean(neurons) => {
            for &n in neurons {
                v.iter_mut().zip(row(layer.centred, n)).for_each(|(x, c)| *x -= c);
                layer.norms[n] = 0.0;
            }
            neurons.len()
        }
        Replacement::RankOne => {
            let neurons = layer.norms.len();
            for n in 0..neurons {
                let (c, r) = (row(layer.centred, n), row(layer.directions, n));
                let x = dot(&c, &r);
                v.iter_mut().zip(c.iter().zip(&r)).for_each(|(v, (c, r))| *v -= c - x * r);
                layer.norms[n] = x.abs();
            }
            neurons
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand, D = 2, two neurons: c_0 = (1, 2), c_1 = (3, -1); r_0 = (1, 0), r_1 = (0, 1).
    #[test]
    fn mean_and_rank_one_ablations_by_hand() {
        let centred = [1.0, 2.0, 3.0, -1.0];
        let directions = [1.0, 0.0, 0.0, 1.0];
        let mut norms = [5f32.sqrt(), 10f32.sqrt()];
        let mut v = [10.0, 20.0];
        let layer = LayerEffects { centred: &centred, directions: &directions, norms: &mut norms };
        assert_eq!(ablate_layer(&mut v, layer, &Replacement::Mean(vec![1])), 1);
        assert_eq!(v, [7.0, 21.0]);
        assert_eq!(norms[1], 0.0);
        // Rank one: c_0 - x_0 r_0 = (0, 2), c_1 - x_1 r_1 = (3, 0); x = (1, -1).
        let mut norms = [5f32.sqrt(), 10f32.sqrt()];
        let mut v = [10.0, 20.0];
        let layer = LayerEffects { centred: &centred, directions: &directions, norms: &mut norms };
        assert_eq!(ablate_layer(&mut v, layer, &Replacement::RankOne), 2);
        assert_eq!(v, [7.0, 18.0]);
        assert_eq!(norms, [1.0, 1.0]);
    }

    #[test]
    fn neuron_lists_parse_or_say_what_is_wrong() {
        assert_eq!(parse_neurons("9:4, 9:17,10:301,9:4").unwrap(), [(9, 4), (9, 17), (10, 301)]);
        assert!(parse_neurons("9:4,x").unwrap_err().to_string().contains("“x” is not a neuron"));
        assert!(parse_neurons("9-4").unwrap_err().to_string().contains("“9-4” is not a neuron"));
        assert!(parse_neurons(" , ").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn requests_read_from_json_and_refuse_unknown_keys() {
        let request: AblationRequest = serde_json::from_str(r#"{"kind":"rank-one","layer":9}"#).unwrap();
        assert_eq!(request, AblationRequest::RankOne { layer: 9 });
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"rank-one","layer":9,"x":1}"#).is_err());
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"everything"}"#).is_err());
    }
}
