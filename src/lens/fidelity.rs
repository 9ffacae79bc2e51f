//! How well a neuron's words describe it: the cosine between its direction r_n and the
//! reconstruction of r_n from the dictionary atoms of the words OMP chose, with their
//! coefficients. 1 when the words span r_n exactly; near 0 when they explain little of it.
//!
//! The atoms are the dictionary's (word embeddings centred over words and scaled per column,
//! [`Dictionary::from_word_embeddings`]), the space OMP fitted r_n in, so this is the share of
//! r_n that the sparse code keeps, as a cosine. It needs only the bundle: older bundles get it on
//! load.

use rayon::prelude::*;

use super::omp::Dictionary;
use crate::vector::dot_f64;

/// Per neuron, the cosine between its direction (`directions` `[N, D]`) and its sparse code's
/// reconstruction `sum_j coef[n, j] atom(index[n, j])` (`index`, `coef` `[N, m]`; index -1
/// pads). 0 when either vector is zero (a neuron without words, or a zero direction); an
/// index outside the dictionary counts as no word.
pub fn word_fidelity(dictionary: &Dictionary, directions: &[f32], index: &[i32], coef: &[f32]) -> Vec<f32> {
    let dim = dictionary.dim;
    let neurons = directions.len() / dim;
    let components = index.len().checked_div(neurons).unwrap_or(0);
    directions
        .par_chunks_exact(dim)
        .enumerate()
        .map(|(n, direction)| {
            let mut reconstruction = vec![0f64; dim];
            let code = n * components..(n + 1) * components;
            for (&word, &c) in index[code.clone()].iter().zip(&coef[code]) {
                let Some(atom) = usize::try_from(word).ok().filter(|&w| w < dictionary.len) else { continue };
                let atom = &dictionary.atoms[atom * dim..(atom + 1) * dim];
                reconstruction.iter_mut().zip(atom).for_each(|(r, &a)| *r += c as f64 * a as f64);
            }
            cosine(direction, &reconstruction)
        })
        .collect()
}

/// `a . b / (|a| |b|)`, 0 when either is zero.
fn cosine(a: &[f32], b: &[f64]) -> f32 {
    let norms = dot_f64(a, a).sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norms > 0.0 {
        (b.iter().zip(a).map(|(x, &y)| x * y as f64).sum::<f64>() / norms) as f32
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
