//! Ablations of second-order effects (the paper's Table 1 rows), on the embedding that
//! classification sees: `v = 100 emb / |emb|`, in which the effects `phi_n` are expressed.
//! Each variant replaces effects and re-classifies:
//! - `mean_all`: every `phi_n` by `mean_n`: `v - sum_n (phi_n - mean_n)`;
//! - `mean_significant` / `mean_insignificant`: only the neurons whose centred norm is (not)
//!   above the threshold;
//! - `rank_1`: `phi_n` by `mean_n + x_n r_n`, `x_n = (phi_n - mean_n) . r_n`;
//! - `sparse`: `phi_n` by `mean_n + x_n r^_n` with `r^_n` the direction rebuilt from its
//!   sparse decomposition over the dictionary.
//!
//! The change to the embedding is linear in the effects (as in the paper: the later layers'
//! normalisation statistics stay those of the forward).
//!
//! Reference: [`compute_ablations.py`, `main`][ablations] for `baseline` .. `rank_1`; `sparse` is the
//! `--evaluate` part of [`compute_sparse_decomposition.py`, `main`][sparse]. Differs: `sparse`'s coefficient is
//! `x_n` (along `r_n`), where the reference's is `(phi_n - mean_n) . r^_n`.
//!
//! [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
//! [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py

use burn::tensor::Tensor;
use serde::Serialize;

use crate::apps::classify::best_class;
use crate::apps::concepts::SIGNIFICANCE_MARGIN;

/// The ablation variants, in table order.
///
/// Reference: what `compute_ablations.py` prints ("Baseline (from representations)", "Without all the neurons",
/// "Without significant neurons", "Without insignificant neurons", "With neurons reconstructed from PC"), then
/// `compute_sparse_decomposition.py --evaluate`'s "Reconstructed neurons".
pub const VARIANTS: [&str; 6] = ["baseline", "mean_all", "mean_significant", "mean_insignificant", "rank_1", "sparse"];

/// Per layer lens data on the device.
pub struct AblationFactors {
    /// `[N, D]`.
    pub mean: Tensor<2>,
    /// `r_n`, `[N, D]`.
    pub directions: Tensor<2>,
    /// `r^_n` from the sparse decompositions, `[N, D]`.
    pub sparse_directions: Tensor<2>,
    /// The significance thresholds, `[1, N]`.
    pub thresholds: Tensor<2>,
}

/// `r^_n = sum_j coef_{n,j} atom_{index_{n,j}}` for decompositions `[N, m]` over dictionary
/// atoms `[V, D]` (row-major; index -1 pads).
///
/// Reference: `reconstruction = sparse_decomposition @ text_descriptions` in
/// [`compute_sparse_decomposition.py`, `main`][sparse].
///
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
pub fn sparse_directions(index: &[i32], coef: &[f32], m: usize, atoms: &[f32], dim: usize) -> Vec<f32> {
    let neurons = index.len() / m.max(1);
    let mut out = vec![0f32; neurons * dim];
    for n in 0..neurons {
        for j in 0..m {
            let (i, c) = (index[n * m + j], coef[n * m + j]);
            if i >= 0 {
                let atom = &atoms[i as usize * dim..(i as usize + 1) * dim];
                out[n * dim..(n + 1) * dim].iter_mut().zip(atom).for_each(|(o, a)| *o += c * a);
            }
        }
    }
    out
}

/// The embeddings `[B, D]` (in `v` space) of every variant of [`VARIANTS`], from the image
/// embeddings `[B, D]` and the effects `[B, N, D]` of one layer.
///
/// Reference: `without_neurons`, `representation_wo_sig`, `representation_wo_insig` and `representation_pc` in
/// [`compute_ablations.py`, `main`][ablations]; `representation_mean_ablated` in
/// [`compute_sparse_decomposition.py`, `main`][sparse].
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
pub fn ablated_embeddings(embeds: Tensor<2>, effects: Tensor<3>, factors: &AblationFactors) -> Vec<Tensor<2>> {
    let [batch, neurons, dim] = effects.dims();
    let v = embeds.clone() / embeds.square().sum_dim(1).sqrt() * 100.0;
    let centred = effects - factors.mean.clone().unsqueeze::<3>(); // [B, N, D]
    let norms = centred.clone().square().sum_dim(2).sqrt().reshape([batch, neurons]);
    let significant = norms
        .greater(factors.thresholds.clone().mul_scalar(1.0 + SIGNIFICANCE_MARGIN))
        .float()
        .reshape([batch, neurons, 1]);
    let x = (centred.clone() * factors.directions.clone().unsqueeze::<3>()).sum_dim(2); // [B, N, 1]
    let rebuilt = |directions: &Tensor<2>| centred.clone() - x.clone() * directions.clone().unsqueeze::<3>();
    let removed = |t: Tensor<3>| v.clone() - t.sum_dim(1).reshape([batch, dim]);
    vec![
        v.clone(),
        removed(centred.clone()),
        removed(centred.clone() * significant.clone()),
        removed(centred.clone() * (significant.neg() + 1.0)),
        removed(rebuilt(&factors.directions)),
        removed(rebuilt(&factors.sparse_directions)),
    ]
}

/// Accuracy per variant over a labelled set.
///
/// Reference: `accuracy` (top 1) of [`utils/misc.py`][misc] on `representation @ classifier`, as
/// `compute_ablations.py` counts.
///
/// [misc]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/utils/misc.py
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AblationTable {
    /// The layer.
    pub layer: usize,
    /// Images counted.
    pub images: usize,
    /// Correct predictions per variant, [`VARIANTS`] order.
    pub correct: Vec<usize>,
}

impl AblationTable {
    /// An empty table for `layer`.
    pub fn new(layer: usize) -> Self {
        Self { layer, images: 0, correct: vec![0; VARIANTS.len()] }
    }

    /// Counts one batch: per variant the embeddings `[B, D]` (host rows), the labels (indices
    /// into `classes`, unit rows `[C, D]`).
    pub fn add(&mut self, variants: &[Vec<f32>], labels: &[usize], classes: &[f32], dim: usize) {
        for (variant, rows) in variants.iter().enumerate() {
            for (row, &label) in rows.chunks_exact(dim).zip(labels) {
                if best_class(row, classes, classes.len() / dim).is_ok_and(|best| best == label) {
                    self.correct[variant] += 1;
                }
            }
        }
        self.images += labels.len();
    }

    /// Accuracy per variant.
    pub fn accuracies(&self) -> Vec<f64> {
        self.correct.iter().map(|&c| c as f64 / self.images.max(1) as f64).collect()
    }
}
