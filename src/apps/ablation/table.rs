//! The paper's Table 1: zero-shot accuracy over a labelled set with one layer's second-order
//! effects ablated, for each variant of [`VARIANTS`] (the formula is [`super`]'s):
//! - `mean_all`: every `phi_n` by `mean_n`;
//! - `mean_significant` / `mean_insignificant`: only the neurons whose centred norm is (not)
//!   above the threshold on the image;
//! - `rank_1`: every `phi_n` by `mean_n + x_n r_n`;
//! - `sparse`: every `phi_n` by `mean_n + x_n r^_n`, `r^_n` the direction rebuilt from its
//!   sparse decomposition over the dictionary.
//!
//! Reference: [`compute_ablations.py`, `main`][ablations] for `baseline` .. `rank_1`; `sparse` is the
//! `--evaluate` part of [`compute_sparse_decomposition.py`, `main`][sparse]. Differs: `sparse`'s coefficient is
//! `x_n` (along `r_n`), where the reference's is `(phi_n - mean_n) . r^_n`.
//!
//! [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
//! [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py

use serde::Serialize;

use super::{ablate_layer, centre, classifier_embedding, LayerEffects, Replacement};
use crate::apps::classify::best_class;
use crate::apps::concepts::significant_neurons;
use crate::bundle::Bundle;
use crate::device::read_f32;
use crate::error::{Error, Result};
use crate::lens::{second_order_effects, sparse_directions, Dictionary, LensFactors};
use crate::model::{CaptureRequest, VisionTransformer};
use crate::vector;

/// The ablation variants, in table order.
///
/// Reference: what `compute_ablations.py` prints ("Baseline (from representations)", "Without all the neurons",
/// "Without significant neurons", "Without insignificant neurons", "With neurons reconstructed from PC"), then
/// `compute_sparse_decomposition.py --evaluate`'s "Reconstructed neurons".
pub const VARIANTS: [&str; 6] = ["baseline", "mean_all", "mean_significant", "mean_insignificant", "rank_1", "sparse"];

/// One layer's lens data the variants need (row-major, on the host).
pub struct AblationFactors {
    /// `mean_n`, `[N, D]`.
    pub mean: Vec<f32>,
    /// `r_n`, `[N, D]`.
    pub directions: Vec<f32>,
    /// `r^_n` from the sparse decompositions, `[N, D]`.
    pub sparse_directions: Vec<f32>,
    /// The significance thresholds, `[N]`.
    pub thresholds: Vec<f32>,
}

impl AblationFactors {
    /// Layer `layer` of `bundle`, its sparse directions rebuilt over the dictionary `atoms`
    /// (`[V, D]`).
    pub fn from_bundle(bundle: &Bundle, layer: usize, atoms: &[f32]) -> Result<Self> {
        let manifest = &bundle.manifest;
        let lens = bundle.layer(layer)?;
        let (index, coef) = (&lens.decomposition_index, &lens.decomposition_coef);
        Ok(Self {
            mean: lens.mean.clone(),
            directions: lens.direction.clone(),
            sparse_directions: sparse_directions(index, coef, manifest.components, atoms, manifest.embed_dim),
            thresholds: lens.thresholds(manifest.top_k),
        })
    }
}

/// The embeddings `[B, D]` (in `v` space) of every variant of [`VARIANTS`], from the image
/// embeddings `[B, D]` and the effects `[B, N, D]` of one layer (row-major).
///
/// Reference: `without_neurons`, `representation_wo_sig`, `representation_wo_insig` and `representation_pc` in
/// [`compute_ablations.py`, `main`][ablations]; `representation_mean_ablated` in
/// [`compute_sparse_decomposition.py`, `main`][sparse].
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
pub fn ablated_embeddings(embeds: &[f32], effects: &[f32], factors: &AblationFactors) -> Result<Vec<Vec<f32>>> {
    let neurons = factors.thresholds.len();
    let dim = factors.mean.len() / neurons.max(1);
    let batch = embeds.len() / dim.max(1);
    if dim == 0 || embeds.len() != batch * dim || effects.len() != batch * neurons * dim {
        return Err(Error::InvalidInput(format!(
            "{} embedding and {} effect values are not [B, {dim}] and [B, {neurons}, {dim}]",
            embeds.len(),
            effects.len()
        )));
    }
    let mut variants = vec![Vec::new(); VARIANTS.len()];
    for (embed, effects) in embeds.chunks_exact(dim).zip(effects.chunks_exact(neurons * dim)) {
        let v = classifier_embedding(embed).ok_or_else(|| Error::InvalidInput("an image embedding is zero".into()))?;
        let mut centred = effects.to_vec();
        centre(&mut centred, &factors.mean);
        let norms: Vec<f32> = centred.chunks_exact(dim).map(vector::norm).collect();
        let ablated = |replacement: Replacement| {
            let (mut v, mut norms) = (v.clone(), norms.clone());
            let layer = LayerEffects {
                centred: &centred,
                directions: &factors.directions,
                sparse_directions: &factors.sparse_directions,
                norms: &mut norms,
            };
            ablate_layer(&mut v, layer, &replacement);
            v
        };
        let rows = [
            v.clone(),
            ablated(Replacement::Mean((0..neurons).collect())),
            ablated(Replacement::Mean(significant_neurons(&norms, &factors.thresholds, true))),
            ablated(Replacement::Mean(significant_neurons(&norms, &factors.thresholds, false))),
            ablated(Replacement::RankOne),
            ablated(Replacement::Sparse),
        ];
        variants.iter_mut().zip(rows).for_each(|(variant, row)| variant.extend(row));
    }
    Ok(variants)
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

/// The table of some layers of a bundle over labelled images, batch by batch: per layer its lens
/// factors, its ablation factors and its counts.
pub struct AblationTables {
    layers: Vec<(LensFactors, AblationFactors, AblationTable)>,
    request: CaptureRequest,
    /// The labels' class rows `[C, D]` (unit).
    classes: Vec<f32>,
    dim: usize,
}

impl AblationTables {
    /// Empty tables of `layers` (each a layer of `bundle`) for `vision`; a label is an index
    /// into `class_ids`, bundle classes.
    pub fn new(vision: &VisionTransformer, bundle: &Bundle, layers: &[usize], class_ids: &[usize]) -> Result<Self> {
        let dim = bundle.manifest.embed_dim;
        let dictionary = Dictionary::from_word_embeddings(&bundle.word_embeds, dim)?;
        let layers = layers
            .iter()
            .map(|&layer| {
                let factors = AblationFactors::from_bundle(bundle, layer, &dictionary.atoms)?;
                Ok((LensFactors::new(vision, layer)?, factors, AblationTable::new(layer)))
            })
            .collect::<Result<Vec<_>>>()?;
        let request = CaptureRequest::for_lens(&layers.iter().map(|(_, _, t)| t.layer).collect::<Vec<_>>());
        let classes = class_ids.iter().flat_map(|&c| bundle.class_embeds[c * dim..(c + 1) * dim].to_vec()).collect();
        Ok(Self { layers, request, classes, dim })
    }

    /// Counts one batch: preprocessed images (`[3, S, S]` each, one after another) and their
    /// labels. One forward, then per layer its effects and the variants.
    pub async fn add(&mut self, vision: &VisionTransformer, pixels: Vec<f32>, labels: &[usize]) -> Result<()> {
        let output = vision.forward(vision.pixel_tensor(pixels)?, &self.request)?;
        let embeds = read_f32(output.embeds.clone()).await?;
        for (lens, factors, table) in &mut self.layers {
            let effects = read_f32(second_order_effects(vision, lens, &output)?).await?;
            table.add(&ablated_embeddings(&embeds, &effects, factors)?, labels, &self.classes, self.dim);
        }
        Ok(())
    }

    /// The tables, in the layers' order.
    pub fn into_tables(self) -> Vec<AblationTable> {
        self.layers.into_iter().map(|(_, _, table)| table).collect()
    }
}
