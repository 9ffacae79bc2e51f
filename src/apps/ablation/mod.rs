//! The paper's ablations of second-order effects (Table 1), written once. The embedding that
//! classification sees, `v = 100 emb / |emb|` ([`classifier_embedding`]), is the sum of every
//! neuron's second-order effect `phi_n` and the rest, so replacing effects changes `v` linearly
//! and no forward runs again (as in the paper: the later layers' normalisation statistics stay
//! those of the forward). With the centred effects `c_n = phi_n - mean_n` ([`centre`]):
//! - mean ablation of a set S: every `phi_n` of S by `mean_n`: `v' = v - sum_{n in S} c_n`; their
//!   centred norms become 0;
//! - rank-1 reconstruction of a layer: every `phi_n` by `mean_n + x_n r_n` with
//!   `x_n = c_n . r_n`: `v' = v - sum_n (c_n - x_n r_n)`; the centred norms become `|x_n|`;
//! - sparse reconstruction: the same with `r^_n`, the direction rebuilt from the neuron's sparse
//!   decomposition ([`crate::lens::sparse_directions`]), in place of `r_n` (`x_n` still along `r_n`):
//!   `v' = v - sum_n (c_n - x_n r^_n)`.
//!
//! [`ablate_layer`] applies one of them to one layer of one image, in O(|S| D) (O(N D) for a
//! whole layer). [`image`] builds the page's live ablations of an analysed image on it (its
//! classes and concept words before and after), [`table`] the paper's table of zero-shot
//! accuracies over a labelled set.

pub mod image;
pub mod table;

use crate::vector::{self, dot};

/// The scale of `v = 100 emb / |emb|`, the space in which the lens expresses the effects.
pub const EMBEDDING_SCALE: f32 = 100.0;

/// `v = 100 emb / |emb|` of an unnormalised image embedding; `None` when it is zero (or not
/// finite).
pub fn classifier_embedding(embedding: &[f32]) -> Option<Vec<f32>> {
    vector::unit(embedding).map(|unit| unit.iter().map(|x| EMBEDDING_SCALE * x).collect())
}

/// Centres effects in place: `phi_n - mean_n` for effects `[N, D]` (or several images' `[B, N,
/// D]`) and the means `[N, D]`.
pub fn centre(effects: &mut [f32], mean: &[f32]) {
    for image in effects.chunks_mut(mean.len().max(1)) {
        image.iter_mut().zip(mean).for_each(|(e, m)| *e -= m);
    }
}

/// How one layer's effects are replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Replacement {
    /// These neurons' effects by their means.
    Mean(Vec<usize>),
    /// These neurons' centred effects scaled by their factors alpha (steering):
    /// `phi_n -> mean_n + alpha (phi_n - mean_n)`; alpha 0 is the mean ablation, 1 changes nothing.
    Steer(Vec<(usize, f32)>),
    /// Every neuron's effect by its rank-1 reconstruction `mean_n + x_n r_n`.
    RankOne,
    /// Every neuron's effect by its reconstruction from its sparse decomposition,
    /// `mean_n + x_n r^_n` ([`LayerEffects::sparse_directions`]).
    Sparse,
}

/// One layer of one image: its centred effects `c_n = phi_n - mean_n` `[N, D]`, the bundle's
/// directions `r_n` `[N, D]` (and for [`Replacement::Sparse`] the rebuilt `r^_n`), and the
/// centred norms `[N]`.
pub struct LayerEffects<'a> {
    /// `[N, D]`.
    pub centred: &'a [f32],
    /// `r_n`, `[N, D]`.
    pub directions: &'a [f32],
    /// `r^_n`, `[N, D]` for [`Replacement::Sparse`] (unused otherwise: may be empty).
    pub sparse_directions: &'a [f32],
    /// `[N]`, updated by [`ablate_layer`].
    pub norms: &'a mut [f32],
}

/// Row `n` of a row-major `[N, dim]` matrix.
fn row(matrix: &[f32], n: usize, dim: usize) -> &[f32] {
    &matrix[n * dim..(n + 1) * dim]
}

/// Applies `replacement` to one layer: subtracts the removed parts from `v` (`[D]`) and sets the
/// affected centred norms; returns how many neurons' effects were replaced.
pub fn ablate_layer(v: &mut [f32], mut layer: LayerEffects, replacement: &Replacement) -> usize {
    let dim = v.len();
    match replacement {
        Replacement::Mean(neurons) => {
            neurons.iter().for_each(|&n| scale_effect(v, &mut layer, n, 0.0));
            neurons.len()
        }
        Replacement::Steer(factors) => {
            factors.iter().for_each(|&(n, alpha)| scale_effect(v, &mut layer, n, alpha));
            factors.len()
        }
        Replacement::RankOne | Replacement::Sparse => {
            let sparse = *replacement == Replacement::Sparse;
            for (n, norm) in layer.norms.iter_mut().enumerate() {
                let (c, r) = (row(layer.centred, n, dim), row(layer.directions, n, dim));
                let along = if sparse { row(layer.sparse_directions, n, dim) } else { r };
                let x = dot(c, r);
                v.iter_mut().zip(c.iter().zip(along)).for_each(|(v, (c, a))| *v -= c - x * a);
                *norm = if sparse { x.abs() * vector::norm(along) } else { x.abs() };
            }
            layer.norms.len()
        }
    }
}

/// Scales neuron `n`'s centred effect by `alpha` in `v` (`v += (alpha - 1) c_n`) and its
/// centred norm with it.
fn scale_effect(v: &mut [f32], layer: &mut LayerEffects, n: usize, alpha: f32) {
    let centred = row(layer.centred, n, v.len());
    v.iter_mut().zip(centred).for_each(|(v, c)| *v += (alpha - 1.0) * c);
    layer.norms[n] *= alpha.abs();
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
        let layer =
            LayerEffects { centred: &centred, directions: &directions, sparse_directions: &[], norms: &mut norms };
        assert_eq!(ablate_layer(&mut v, layer, &Replacement::Mean(vec![1])), 1);
        assert_eq!(v, [7.0, 21.0]);
        assert_eq!(norms[1], 0.0);
        // Rank one: c_0 - x_0 r_0 = (0, 2), c_1 - x_1 r_1 = (3, 0); x = (1, -1).
        let mut norms = [5f32.sqrt(), 10f32.sqrt()];
        let mut v = [10.0, 20.0];
        let layer =
            LayerEffects { centred: &centred, directions: &directions, sparse_directions: &[], norms: &mut norms };
        assert_eq!(ablate_layer(&mut v, layer, &Replacement::RankOne), 2);
        assert_eq!(v, [7.0, 18.0]);
        assert_eq!(norms, [1.0, 1.0]);
        // Sparse, r^_0 = (2, 0), r^_1 = (1, 0): x still (1, -1) along r; c_0 - x_0 r^_0 = (-1, 2),
        // c_1 - x_1 r^_1 = (4, -1); norms |x| |r^| = (2, 1).
        let mut norms = [5f32.sqrt(), 10f32.sqrt()];
        let mut v = [10.0, 20.0];
        let sparse = [2.0, 0.0, 1.0, 0.0];
        let layer =
            LayerEffects { centred: &centred, directions: &directions, sparse_directions: &sparse, norms: &mut norms };
        assert_eq!(ablate_layer(&mut v, layer, &Replacement::Sparse), 2);
        assert_eq!(v, [7.0, 19.0]);
        assert_eq!(norms, [2.0, 1.0]);
    }

    /// Steering by hand (the same layer): alpha 3 on c_1 = (3, -1) adds 2 c_1; alpha -1 on
    /// c_0 = (1, 2) subtracts 2 c_0; the norms scale by |alpha|. Alpha 0 is the mean ablation and
    /// alpha 1 changes nothing.
    #[test]
    fn steering_by_hand() {
        let centred = [1.0, 2.0, 3.0, -1.0];
        let steered = |factors: Vec<(usize, f32)>| {
            let (mut v, mut norms) = ([10.0, 20.0], [5f32.sqrt(), 10f32.sqrt()]);
            let layer = LayerEffects { centred: &centred, directions: &[], sparse_directions: &[], norms: &mut norms };
            let count = ablate_layer(&mut v, layer, &Replacement::Steer(factors));
            (v, norms, count)
        };
        let (v, norms, count) = steered(vec![(1, 3.0), (0, -1.0)]);
        assert_eq!((v, count), ([14.0, 14.0], 2));
        assert_eq!(norms, [5f32.sqrt(), 3.0 * 10f32.sqrt()]);
        assert_eq!(steered(vec![(1, 0.0)]).0, [7.0, 21.0], "alpha 0: the mean ablation of neuron 1");
        assert_eq!(steered(vec![(0, 1.0), (1, 1.0)]).0, [10.0, 20.0], "alpha 1: nothing changes");
    }

    /// Two images of one neuron, D = 2: each minus the mean (1, 1).
    #[test]
    fn effects_are_centred_per_image() {
        let mut effects = [3.0, 4.0, 1.0, 0.0];
        centre(&mut effects, &[1.0, 1.0]);
        assert_eq!(effects, [2.0, 3.0, 0.0, -1.0]);
        let v = classifier_embedding(&[3.0, 4.0]).unwrap();
        assert!((v[0] - 60.0).abs() < 1e-4 && (v[1] - 80.0).abs() < 1e-4, "{v:?}");
        assert_eq!(classifier_embedding(&[0.0, 0.0]), None);
    }
}
