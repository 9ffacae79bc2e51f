//! Zero-shot classification and the concepts it is made of: the bundle's classes (names and
//! unit-norm embeddings, 80 templates averaged), free-text concepts through the text tower,
//! CLIP's logits `100 cos(image, class)` and their softmax. Segmentation, adversarial words and
//! the engine take their concept embeddings from here.
//!
//! Reference: the class embeddings of [`compute_classifier_projection.py`, `zero_shot_classifier`][classifier],
//! used as `representation @ classifier` in `compute_ablations.py` and `compute_segmentation.py`. Differs: the
//! softmax probabilities are this crate's own (the reference takes the argmax).
//!
//! [classifier]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_classifier_projection.py

use serde::Serialize;

use crate::bundle::Bundle;
#[cfg(feature = "engine")]
use crate::device::read_f32;
use crate::error::{Error, Result};
#[cfg(feature = "engine")]
use crate::model::TextTransformer;
#[cfg(feature = "engine")]
use crate::tokenizer::ClipTokenizer;
use crate::vector;

/// CLIP's logit scale (`exp(logit_scale)` of the trained ViT models).
pub const LOGIT_SCALE: f32 = 100.0;

/// One class of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Index into the class list.
    pub index: usize,
    /// The class name.
    pub name: String,
    /// Cosine similarity of the image and class embeddings.
    pub cosine: f32,
    /// Softmax probability over all classes of `100 x cosine`.
    pub probability: f32,
}

/// The `top` classes of one image embedding (any scale, `[D]`) among `class_embeds`
/// (`[C, D]`, unit rows), best first.
pub fn classify(
    image_embed: &[f32],
    class_embeds: &[f32],
    class_names: &[String],
    top: usize,
) -> Result<Vec<ClassScore>> {
    let cosines = class_cosines(image_embed, class_embeds, class_names.len())?;
    let largest = cosines.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = cosines.iter().map(|&c| (((c - largest) * LOGIT_SCALE) as f64).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut order: Vec<usize> = (0..cosines.len()).collect();
    order.sort_by(|&a, &b| cosines[b].total_cmp(&cosines[a]).then(a.cmp(&b)));
    Ok(order
        .into_iter()
        .take(top)
        .map(|index| ClassScore {
            index,
            name: class_names[index].clone(),
            cosine: cosines[index],
            probability: (exps[index] / total) as f32,
        })
        .collect())
}

/// Cosine of `image_embed` with each unit row of `class_embeds` (`[C, D]`).
pub fn class_cosines(image_embed: &[f32], class_embeds: &[f32], classes: usize) -> Result<Vec<f32>> {
    let dim = image_embed.len();
    if classes == 0 || dim == 0 || class_embeds.len() != classes * dim {
        return Err(Error::InvalidInput(format!(
            "{} class embedding values do not form {classes} classes of dimension {dim}",
            class_embeds.len()
        )));
    }
    let norm = vector::norm(image_embed);
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::InvalidInput("the image embedding is zero or not finite".into()));
    }
    Ok(class_embeds.chunks_exact(dim).map(|c| vector::dot(c, image_embed) / norm).collect())
}

/// The class whose embedding has the largest cosine with `image_embed` (first on ties).
///
/// Reference: the argmax of `representation @ classifier` (`accuracy` in [`utils/misc.py`][misc],
/// `chosen_class` in `compute_segmentation.py`).
///
/// [misc]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/utils/misc.py
pub fn best_class(image_embed: &[f32], class_embeds: &[f32], classes: usize) -> Result<usize> {
    let cosines = class_cosines(image_embed, class_embeds, classes)?;
    Ok(cosines.iter().enumerate().fold(0, |best, (i, &c)| if c > cosines[best] { i } else { best }))
}

/// The index of a class by name (exact, then case-insensitive); the error lists near names.
pub fn class_index(class_names: &[String], name: &str) -> Result<usize> {
    let wanted = name.trim();
    if let Some(i) = class_names.iter().position(|c| c == wanted) {
        return Ok(i);
    }
    if let Some(i) = class_names.iter().position(|c| c.eq_ignore_ascii_case(wanted)) {
        return Ok(i);
    }
    let lower = wanted.to_lowercase();
    let similar: Vec<&str> = class_names
        .iter()
        .filter(|c| !lower.is_empty() && (c.to_lowercase().contains(&lower) || lower.contains(&c.to_lowercase())))
        .take(5)
        .map(String::as_str)
        .collect();
    let hint = if similar.is_empty() { String::new() } else { format!(" (similar: {})", similar.join(", ")) };
    Err(Error::InvalidInput(format!("unknown class \"{name}\"{hint}")))
}

/// `embedding / |embedding|`; an error for a zero (or non-finite) vector.
pub fn unit(embedding: &[f32]) -> Result<Vec<f32>> {
    vector::unit(embedding).ok_or_else(|| {
        Error::InvalidInput(format!(
            "cannot normalise a concept embedding of norm {}",
            vector::dot_f64(embedding, embedding).sqrt()
        ))
    })
}

/// The normalised text embedding of a free-text concept. Empty (or blank) text is an error.
#[cfg(feature = "engine")]
pub async fn text_concept(text: &TextTransformer, tokenizer: &ClipTokenizer, concept: &str) -> Result<Vec<f32>> {
    if concept.trim().is_empty() {
        return Err(Error::InvalidInput("the concept text is empty".into()));
    }
    let tokens = tokenizer.tokenize(concept, text.config.context_length);
    unit(&read_f32(text.encode(&tokens)?).await?)
}

/// The unit-norm zero-shot classifier row of a class of the bundle (80 templates averaged).
pub fn class_concept(bundle: &Bundle, class: &str) -> Result<Vec<f32>> {
    class_row(bundle, class_index(&bundle.manifest.classes, class)?)
}

/// The unit-norm zero-shot classifier row of class `index` (a class the bundle has, e.g. from
/// [`class_index`] of its classes or [`predicted_class`]).
pub fn class_row(bundle: &Bundle, index: usize) -> Result<Vec<f32>> {
    let d = bundle.manifest.embed_dim;
    unit(&bundle.class_embeds[index * d..(index + 1) * d])
}

/// The bundle class that best matches an (unnormalised) image embedding: the argmax of
/// `classes.embeds . embedding`, the first on ties (NumPy's `argmax`).
///
/// Reference: `chosen_class = (representation @ classifier).argmax(axis=1)` in [`compute_segmentation.py`,
/// `eval_batch`][segmentation].
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn predicted_class(bundle: &Bundle, image_embedding: &[f32]) -> Result<usize> {
    best_class(image_embedding, &bundle.class_embeds, bundle.manifest.classes.len())
}
