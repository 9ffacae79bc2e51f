//! OMP's atom search in scikit-learn's own form (`orthogonal_mp_gram`, which the reference
//! runs): at each step a residual's correlations with every atom are
//! `alpha = D y - G[S, :]^T gamma`, from the target's correlations `D y` and the Gram rows
//! `G[s, :] = D d_s` of its chosen atoms `S`, instead of a product of the residual with the
//! whole dictionary.
//!
//! Why it is fast: the direct search costs `V x D` multiply-adds per target and step (3 TFLOP
//! for 9216 neurons, 10,000 words of 512 dimensions and 32 steps). Here the Gram matrix costs
//! `V x V x D` once, `D y` costs `V x D` once per target (both matrix products on the device),
//! and a step `V x |S|` per target on the host, with `|S| < 32` against `D = 512`. Each target
//! runs all its steps on one thread, so the Gram rows of its atoms stay in the caches from one
//! step to the next (in step, as the direct search goes, the rows of 256 targets did not fit
//! and the steps ran at a third of this speed).
//!
//! Pinned by the tests `omp_matches_scikit_learn` (the reference's codes) and
//! `gram_omp_equals_device_omp_on_random_dictionaries` (the direct search's codes).
//!
//! Reference: `_gram_omp` in scikit-learn's `sklearn/linear_model/_omp.py`
//! (`alpha = Xy - Gram[:, :n_active] @ gamma`; `np.argmax(np.abs(alpha))`).

use rayon::prelude::*;

use super::{DeviceSearch, Dictionary, Pick, Pursuit, SparseCode, OMP_BLOCK};
use crate::error::Result;

/// The most memory the Gram matrix may take for [`super::AtomSearch::for_device`] to choose
/// this search (10,000 words: 400 MB; in WebAssembly, whose memory is 4 GiB in all, 11,585
/// words at most).
pub const GRAM_BUDGET_BYTES: u64 = if cfg!(target_arch = "wasm32") { 512 << 20 } else { 2 << 30 };

/// Correlations updated per tile: 8 KiB, so that a tile stays in the L1 cache while the Gram
/// rows' tiles stream past it.
const TILE: usize = 2048;

/// Lanes of the running maximum of |correlation| (two AVX-512 or four SIMD128 registers).
const LANES: usize = 16;

/// Whether `dictionary`'s Gram matrix fits [`GRAM_BUDGET_BYTES`].
pub fn fits(dictionary: &Dictionary) -> bool {
    (dictionary.len as u64).pow(2) * 4 <= GRAM_BUDGET_BYTES
}

/// The Gram search's state across blocks: the dictionary on the device and, once a block was
/// encoded, its Gram matrix.
pub(super) struct GramSearch<'a> {
    products: DeviceSearch<'a>,
    dictionary: &'a Dictionary,
    /// `G = D D^T`, row-major `[V, V]`.
    gram: Vec<f32>,
}

impl<'a> GramSearch<'a> {
    pub(super) fn new(dictionary: &'a Dictionary, products: DeviceSearch<'a>) -> Self {
        Self { products, dictionary, gram: Vec::new() }
    }

    /// The codes of one block of targets (row-major `[n, D]`): their correlations `D y` on the
    /// device, then each target's pursuit on a thread of its own.
    pub(super) async fn encode(&mut self, targets: &[f32], nonzero: usize) -> Result<Vec<SparseCode>> {
        if self.gram.is_empty() {
            self.gram = self.gram_matrix().await?;
        }
        let (dictionary, words) = (self.dictionary, self.dictionary.len);
        let correlations = self.products.correlations(targets.to_vec(), 0).await?;
        let gram = &self.gram;
        Ok(targets
            .par_chunks_exact(dictionary.dim)
            .zip(correlations.par_chunks_exact(words))
            .map(|(target, alpha0)| {
                let mut pursuit = Pursuit::new(target, nonzero);
                loop {
                    let rows: Vec<&[f32]> = pursuit.active.iter().map(|&a| &gram[a * words..][..words]).collect();
                    let pick = largest_correlation(alpha0, &rows, &pursuit.gamma);
                    if !pursuit.advance(dictionary, pick, nonzero) {
                        break pursuit.into_code();
                    }
                }
            })
            .collect())
    }

    /// `G = D D^T`: per block of [`OMP_BLOCK`] atoms, one product on the device with the atoms
    /// from the block's first on (the upper triangle: half the work), then the lower triangle
    /// mirrored.
    async fn gram_matrix(&self) -> Result<Vec<f32>> {
        let (words, dim) = (self.dictionary.len, self.dictionary.dim);
        let mut gram = vec![0f32; words * words];
        for first in (0..words).step_by(OMP_BLOCK) {
            let last = words.min(first + OMP_BLOCK);
            let block = self.dictionary.atoms[first * dim..last * dim].to_vec();
            let products = self.products.correlations(block, first).await?;
            for (row, values) in (first..last).zip(products.chunks_exact(words - first)) {
                gram[row * words + first..(row + 1) * words].copy_from_slice(values);
            }
        }
        mirror_upper_triangle(&mut gram, words);
        Ok(gram)
    }
}

/// Copies the upper triangle of the row-major `[n, n]` `matrix` onto its lower triangle, in
/// square tiles so that both sides of a tile stay in the caches.
fn mirror_upper_triangle(matrix: &mut [f32], n: usize) {
    const SIDE: usize = 64;
    for rows in (0..n).step_by(SIDE) {
        for columns in (0..=rows).step_by(SIDE) {
            for i in rows..n.min(rows + SIDE) {
                for j in columns..i.min(columns + SIDE) {
                    matrix[i * n + j] = matrix[j * n + i];
                }
            }
        }
    }
}

/// The atom whose correlation with the residual, `alpha = alpha0 - sum_j gamma_j rows[j]`, is
/// largest in magnitude (the lowest index among equals), and that |correlation|; none when a
/// correlation is not finite.
///
/// Fast because `alpha` is built a tile of [`TILE`] atoms at a time: the tile stays in L1 while
/// each row's slice streams through a loop that vectorises (one multiply-add per value read),
/// and the tile's largest |value| is found in [`LANES`] lanes; only a tile that beats the best
/// so far is searched for its index.
fn largest_correlation(alpha0: &[f32], rows: &[&[f32]], gamma: &[f64]) -> Pick {
    let mut best: Pick = None;
    let mut buffer = [0f32; TILE];
    for start in (0..alpha0.len()).step_by(TILE) {
        let end = alpha0.len().min(start + TILE);
        let tile = &mut buffer[..end - start];
        tile.copy_from_slice(&alpha0[start..end]);
        for (row, &g) in rows.iter().zip(gamma) {
            let g = g as f32;
            tile.iter_mut().zip(&row[start..end]).for_each(|(c, &r)| *c -= g * r);
        }
        let largest = largest_magnitude(tile);
        if !largest.is_finite() {
            return None;
        }
        if best.is_none_or(|(_, b)| largest as f64 > b) {
            let offset = tile.iter().position(|c| c.abs() == largest).expect("the largest is in the tile");
            best = Some((start + offset, largest as f64));
        }
    }
    best
}

/// The largest |value| of `values`; NaN when one is NaN.
fn largest_magnitude(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        // `!(lane >= v)` keeps a NaN, and a lane that is NaN stays NaN.
        lanes.iter_mut().zip(chunk).for_each(|(lane, v)| {
            let v = v.abs();
            *lane = if *lane >= v || lane.is_nan() { *lane } else { v }
        });
    }
    lanes.iter().chain(tail.iter()).map(|v| v.abs()).fold(0f32, |m, v| if m >= v || m.is_nan() { m } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two atoms' rows against a hand computation: alpha = [1 - 0.5*2, 3 - 0.5*(-4), -2 - 0.5*1]
    /// = [0, 5, -2.5]: atom 1.
    #[test]
    fn the_largest_correlation_is_the_updated_one() {
        let pick = largest_correlation(&[1.0, 3.0, -2.0], &[&[2.0, -4.0, 1.0]], &[0.5]);
        assert_eq!(pick, Some((1, 5.0)));
    }

    /// Equal magnitudes: the lowest index, as numpy's argmax (also across tiles); a NaN or an
    /// infinity anywhere, in a lane or in the tail: no pick.
    #[test]
    fn ties_go_to_the_lowest_index_and_nan_ends() {
        assert_eq!(largest_correlation(&[2.0, -2.0], &[], &[]), Some((0, 2.0)));
        let mut alpha0 = vec![1.0f32; 2 * TILE];
        alpha0[TILE + 3] = -4.0;
        alpha0[5] = 4.0;
        assert_eq!(largest_correlation(&alpha0, &[], &[]), Some((5, 4.0)));
        for at in [1, LANES + 2, 2 * TILE + 4] {
            for bad in [f32::NAN, f32::INFINITY] {
                let mut alpha0 = vec![1.0f32; 2 * TILE + 5];
                alpha0[at] = bad;
                assert_eq!(largest_correlation(&alpha0, &[], &[]), None, "{bad} at {at}");
            }
        }
    }

    /// A 130 x 130 matrix (tiles of 64 and a remainder) with only its upper triangle set
    /// becomes the symmetric one.
    #[test]
    fn the_mirrored_matrix_is_symmetric() {
        let n = 130;
        let value = |i: usize, j: usize| (i.min(j) * 1000 + i.max(j)) as f32;
        let mut matrix: Vec<f32> =
            (0..n * n).map(|k| if k / n <= k % n { value(k / n, k % n) } else { -1.0 }).collect();
        mirror_upper_triangle(&mut matrix, n);
        let expected: Vec<f32> = (0..n * n).map(|k| value(k / n, k % n)).collect();
        assert_eq!(matrix, expected);
    }

    /// Past one tile: the pick in the second tile is found at its global index.
    #[test]
    fn picks_past_the_first_tile_keep_their_index() {
        let mut alpha0 = vec![0.1f32; TILE + 10];
        alpha0[TILE + 7] = -9.0;
        assert_eq!(largest_correlation(&alpha0, &[], &[]), Some((TILE + 7, 9.0)));
    }
}
