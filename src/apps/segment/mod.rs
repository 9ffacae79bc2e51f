//! Zero-shot segmentation for a concept (spec section 4; the reference's
//! `compute_segmentation.py`).
//!
//! 1. The concept embedding `e`: the normalised text embedding of a free text
//!    ([`classify::text_concept`]), or a class of the bundle's zero-shot classifier (the
//!    80-template average, [`classify::class_concept`]), e.g. the image's predicted class
//!    ([`classify::predicted_class`]).
//! 2. Rank the neurons of the chosen layers by `|r_n . e|` (`r_n` = the bundle's
//!    `layer.L.direction`) and keep the top K ([`top_neurons`]).
//! 3. Average their post-GELU activations at each patch token (CLS dropped), reshape to the
//!    patch grid, upsample bilinearly by the patch size (PyTorch's
//!    `F.interpolate(mode="bilinear", align_corners=False)`), min-max normalise each image to
//!    [0, 1] ([`heatmaps`]). The predicted mask is `heatmap > 0.5`.
//! 4. For display, [`heatmap_to_original`] maps a heatmap back onto the original image (undoing
//!    the centre crop and the resize); for evaluation, [`crate::preprocess::preprocess_mask`] brings a
//!    ground-truth mask to the model's input exactly like its image, and
//!    [`super::metrics::SegmentationMetrics`] scores the heatmaps.
//!
//! Everything here runs in wasm: no threads, no files, device reads are asynchronous
//! ([`crate::device::read_f32`]), the rest is host arithmetic on small vectors.
//!
//! Reference: [`compute_segmentation.py`][segmentation]: `main` ranks the neurons (`max_per_class`) and
//! `eval_batch` makes the heatmap from the post-GELU activations that [`prs_neuron_record.py`,
//! `SwitchLogger.after_gelu`][record] records. Differs: the concept may also be free text or any class; the
//! reference always takes the predicted class.
//!
//! [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
//! [record]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_neuron_record.py

mod heatmap;

#[cfg(doc)]
use crate::apps::classify;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::random::SplitMix64;

pub use heatmap::{
    heatmap_from_patches, heatmap_to_original, heatmaps, min_max_normalise, segment, selected_activation,
    upsample_bilinear, Heatmaps,
};

/// The paper's layers for ViT-B/32.
///
/// Reference: `--mlp_layers` (default `[8, 9, 10]`) of `compute_segmentation.py`.
pub const PAPER_LAYERS: [usize; 3] = [8, 9, 10];
/// The paper's number of neurons.
///
/// Reference: `--top_neurons` (default 200) of `compute_segmentation.py`.
pub const PAPER_TOP_NEURONS: usize = 200;

/// A neuron with its alignment to a concept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedNeuron {
    /// The layer.
    pub layer: usize,
    /// The neuron's index in the layer.
    pub neuron: usize,
    /// `r_n . e` (signed; the ranking uses its absolute value).
    pub score: f32,
}

// ---------------------------------------------------------------------------
// Ranking
// ---------------------------------------------------------------------------

/// The directions `[N, D]` of `layers` from the bundle, in the order given. An empty list, a
/// repeated layer or a layer the bundle does not have is an error.
pub fn bundle_directions<'a>(bundle: &'a Bundle, layers: &[usize]) -> Result<Vec<(usize, &'a [f32])>> {
    if layers.is_empty() {
        return Err(Error::InvalidInput("no layers were chosen".into()));
    }
    if let Some((i, layer)) = layers.iter().enumerate().find(|(i, l)| layers[..*i].contains(l)) {
        return Err(Error::InvalidInput(format!("layer {layer} is chosen twice (position {i})")));
    }
    layers.iter().map(|&layer| Ok((layer, bundle.layer(layer)?.direction.as_slice()))).collect()
}

/// Every neuron of `layers` (each `(layer, directions [N, D])`, `D = concept.len()`), ranked by
/// `|r_n . e|`, largest first. Ties keep the order of the concatenation (layers as given,
/// neurons ascending). Products are summed in f64.
///
/// Reference: `max_directions = pcas @ classifier` and `np.argsort(np.abs(max_directions[:, i]))` in
/// [`compute_segmentation.py`, `main`][segmentation], over the layers' concatenated `*_pca.npy`.
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn rank_neurons(layers: &[(usize, &[f32])], concept: &[f32]) -> Result<Vec<RankedNeuron>> {
    let mut ranked = scored_neurons(layers, concept)?;
    // A stable sort: ties stay in concatenation order.
    ranked.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    Ok(ranked.into_iter().map(|(_, n)| n).collect())
}

/// Every neuron of `layers` with its `r_n . e` (summed in f64, and beside it in f32), in
/// concatenation order; errors for an empty concept, no layers, or directions that are not
/// `[N, D]`.
fn scored_neurons(layers: &[(usize, &[f32])], concept: &[f32]) -> Result<Vec<(f64, RankedNeuron)>> {
    let d = concept.len();
    if d == 0 {
        return Err(Error::InvalidInput("the concept embedding is empty".into()));
    }
    if layers.is_empty() {
        return Err(Error::InvalidInput("no layers were chosen".into()));
    }
    let mut scored = Vec::new();
    for &(layer, directions) in layers {
        if directions.is_empty() || !directions.len().is_multiple_of(d) {
            return Err(Error::InvalidInput(format!(
                "layer {layer} has {} direction values, not a positive multiple of the embedding dimension {d}",
                directions.len()
            )));
        }
        for (neuron, r) in directions.chunks_exact(d).enumerate() {
            let score = r.iter().zip(concept).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
            scored.push((score, RankedNeuron { layer, neuron, score: score as f32 }));
        }
    }
    Ok(scored)
}

/// `k` neurons of `layers` drawn at random without replacement (the paper's `--random`
/// baseline), each with its score: the same draw for the same `seed` and `concept_label` (the
/// reference draws once per class), another for another label. Best aligned first, as
/// [`top_neurons`] lists them. `k` must be between 1 and the number of neurons available.
///
/// Reference: `np.random.choice(max_directions.shape[0], args.top_neurons, replace=False)` per
/// class in [`compute_segmentation.py`, `main`][segmentation] (unseeded there).
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn random_neurons(
    layers: &[(usize, &[f32])],
    concept: &[f32],
    k: usize,
    seed: u64,
    concept_label: &str,
) -> Result<Vec<RankedNeuron>> {
    let mut scored = scored_neurons(layers, concept)?;
    check_count(k, scored.len())?;
    // A partial Fisher-Yates shuffle: the first k places are a uniform draw without replacement.
    let mut random = SplitMix64(seed ^ fnv1a(concept_label.as_bytes()));
    for i in 0..k {
        let j = i + (random.next_u64() % (scored.len() - i) as u64) as usize;
        scored.swap(i, j);
    }
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    Ok(scored.into_iter().map(|(_, n)| n).collect())
}

/// An error unless `1 <= k <= available`.
fn check_count(k: usize, available: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidInput("the number of neurons to keep must be at least 1".into()));
    }
    if k > available {
        return Err(Error::InvalidInput(format!("cannot keep {k} neurons: the chosen layers have {available} in all")));
    }
    Ok(())
}

/// The 64-bit FNV-1a hash of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The `k` neurons of `layers` best aligned with `concept` ([`rank_neurons`]). `k` must be
/// between 1 and the number of neurons available.
///
/// Reference: `max_per_class`, the last `top_neurons` of that `argsort`, in [`compute_segmentation.py`,
/// `main`][segmentation].
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn top_neurons(layers: &[(usize, &[f32])], concept: &[f32], k: usize) -> Result<Vec<RankedNeuron>> {
    let mut ranked = rank_neurons(layers, concept)?;
    check_count(k, ranked.len())?;
    ranked.truncate(k);
    Ok(ranked)
}

/// Which neurons make a concept's heatmap: the `count` neurons of `layers` whose directions are
/// closest to the concept (the paper: 200 of layers 8-10). The page and the CLI choose with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptNeurons {
    /// The layers ranked.
    pub layers: Vec<usize>,
    /// How many neurons are kept.
    pub count: usize,
}

impl ConceptNeurons {
    /// `count` neurons of `layers` (every layer of the bundle when empty); `count` is clamped
    /// to the neurons those layers have. Layers the bundle lacks, or repeated, are an error.
    pub fn new(bundle: &Bundle, layers: &[usize], count: usize) -> Result<Self> {
        let layers = if layers.is_empty() { bundle.manifest.layers.clone() } else { layers.to_vec() };
        let available = bundle_directions(bundle, &layers)?.len() * bundle.manifest.neurons;
        Ok(Self { layers, count: count.min(available) })
    }

    /// The chosen neurons for a unit concept embedding, best first: the best aligned
    /// ([`top_neurons`]) or, for [`NeuronDraw::Random`], as many at random ([`random_neurons`],
    /// drawn per `concept_label`).
    pub fn choose(
        &self,
        bundle: &Bundle,
        concept: &[f32],
        concept_label: &str,
        draw: NeuronDraw,
    ) -> Result<Vec<RankedNeuron>> {
        let layers = bundle_directions(bundle, &self.layers)?;
        match draw {
            NeuronDraw::Best => top_neurons(&layers, concept, self.count),
            NeuronDraw::Random { seed } => random_neurons(&layers, concept, self.count, seed, concept_label),
        }
    }
}

/// How a segmentation chooses its neurons among the layers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeuronDraw {
    /// The best aligned with the concept (the method).
    Best,
    /// As many at random, seeded (the paper's baseline).
    Random {
        /// The draw's seed.
        seed: u64,
    },
}

/// What a concept string asks for (the CLI's `--concept`, the page's `segment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConceptSpec<'a> {
    /// `predicted`: each image's top zero-shot class.
    ///
    /// The reference's only concept (`chosen_class` in `compute_segmentation.py`'s `eval_batch`).
    Predicted,
    /// `class:<name>`: a class of the bundle (its 80-template embedding).
    Class(&'a str),
    /// Anything else: free text, embedded by the text tower.
    Text(&'a str),
}

impl<'a> ConceptSpec<'a> {
    /// Parses `"predicted"`, `"class:<name>"` or free text; empty text is an error.
    pub fn parse(value: &'a str) -> Result<Self> {
        let trimmed = value.trim();
        if trimmed == "predicted" {
            Ok(ConceptSpec::Predicted)
        } else if let Some(class) = trimmed.strip_prefix("class:") {
            match class.trim() {
                "" => Err(Error::InvalidInput("`class:` needs a class name".into())),
                name => Ok(ConceptSpec::Class(name)),
            }
        } else if trimmed.is_empty() {
            Err(Error::InvalidInput("the concept text is empty".into()))
        } else {
            Ok(ConceptSpec::Text(value))
        }
    }
}
