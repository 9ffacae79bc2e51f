//! The reconstruction of each neuron's direction r_n from its sparse code (the words OMP chose,
//! their dictionary atoms and coefficients: what the sparse ablation puts in place of r_n), and
//! how well the words describe the neuron: the cosine between r_n and that reconstruction. 1
//! when the words span r_n exactly; near 0 when they explain little of it.
//!
//! The atoms are the dictionary's (word embeddings centred over words and scaled per column,
//! [`Dictionary::from_word_embeddings`]), the space OMP fitted r_n in, so this is the share of
//! r_n that the sparse code keeps, as a cosine. It needs only the bundle: older bundles get it on
//! load.

use rayon::prelude::*;

use super::omp::Dictionary;
use crate::vector::dot_f64;

/// `r^_n = sum_j coef_{n,j} atom_{index_{n,j}}` for decompositions `[N, m]` over dictionary
/// atoms `[V, D]` (row-major; index -1 pads, and an index outside the atoms counts as none).
///
/// Reference: `reconstruction = sparse_decomposition @ text_descriptions` in
/// [`compute_sparse_decomposition.py`, `main`][sparse].
///
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
pub fn sparse_directions(index: &[i32], coef: &[f32], m: usize, atoms: &[f32], dim: usize) -> Vec<f32> {
    let neurons = index.len() / m.max(1);
    let mut out = vec![0f32; neurons * dim];
    out.par_chunks_exact_mut(dim).enumerate().for_each(|(n, reconstruction)| {
        for (&i, &c) in index[n * m..(n + 1) * m].iter().zip(&coef[n * m..(n + 1) * m]) {
            let Some(atom) = usize::try_from(i).ok().and_then(|i| atoms.get(i * dim..(i + 1) * dim)) else { continue };
            reconstruction.iter_mut().zip(atom).for_each(|(o, a)| *o += c * a);
        }
    });
    out
}

/// Per neuron, the cosine between its direction (`directions` `[N, D]`) and its sparse code's
/// reconstruction ([`sparse_directions`] over `dictionary`; `index`, `coef` `[N, m]`). 0 when
/// either vector is zero (a neuron without words, or a zero direction).
pub fn word_fidelity(dictionary: &Dictionary, directions: &[f32], index: &[i32], coef: &[f32]) -> Vec<f32> {
    let dim = dictionary.dim;
    let components = index.len().checked_div(directions.len() / dim).unwrap_or(0);
    let reconstructions = sparse_directions(index, coef, components, &dictionary.atoms, dim);
    directions.chunks_exact(dim).zip(reconstructions.chunks_exact(dim)).map(|(r, s)| cosine(r, s)).collect()
}

/// `a . b / (|a| |b|)` in f64, 0 when either is zero.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norms = (dot_f64(a, a) * dot_f64(b, b)).sqrt();
    if norms > 0.0 {
        (dot_f64(a, b) / norms) as f32
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three atoms of dimension 3 (rows of the identity, then (1, 1, 0)).
    fn dictionary() -> Dictionary {
        Dictionary { atoms: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0], len: 3, dim: 3 }
    }

    /// r = atom 2 coded as atom 2 (any positive coefficient): 1. r = (1, 1, 1) coded as atoms 0
    /// and 1: (1, 1, 0), cosine 2 / (sqrt 3 sqrt 2). No word: 0. A negative coefficient on
    /// the atom itself: -1. A padding index and one outside the dictionary count as none.
    #[test]
    fn fidelity_is_the_cosine_of_direction_and_reconstruction() {
        let directions = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let index = [2, -1, 0, 1, -1, -1, 1, 7];
        let coef = [0.3, 0.0, 1.0, 1.0, 0.0, 0.0, -2.0, 5.0];
        let fidelity = word_fidelity(&dictionary(), &directions, &index, &coef);
        let expected = [1.0, 2.0 / (3f64.sqrt() * 2f64.sqrt()), 0.0, -1.0 / 2f64.sqrt()];
        for (n, (&got, want)) in fidelity.iter().zip(expected).enumerate() {
            assert!((got as f64 - want).abs() < 1e-6, "neuron {n}: {got} against {want}");
        }
    }
}
