//! Zero-shot classification with the bundle's class embeddings (unit-norm, 80 templates
//! averaged): CLIP's logits `100 cos(image, class)` and their softmax.
//!
//! Reference: the class embeddings of [`compute_classifier_projection.py`, `zero_shot_classifier`][classifier],
//! used as `representation @ classifier` in `compute_ablations.py` and `compute_segmentation.py`. Differs: the
//! softmax probabilities are this crate's own (the reference takes the argmax).
//!
//! [classifier]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_classifier_projection.py

use serde::Serialize;

use crate::error::{Error, Result};
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
