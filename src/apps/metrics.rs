//! Segmentation metrics over a dataset: pixel accuracy, mIoU over {background, foreground}
//! and mAP, as the paper reports them for zero-shot segmentation (spec section 4).
//!
//! - Pixel accuracy: correct pixels over all pixels, summed over the dataset.
//! - mIoU: per class (background, foreground) the intersections and the unions are summed over
//!   the dataset, then IoU = intersection / union per class, then the mean of the two. A class
//!   whose union is empty over the whole dataset has IoU 0 (the reference divides by
//!   `eps + union`).
//! - mAP: the mean over images of the average precision of the heatmap scores against the
//!   binary mask, with scikit-learn's `average_precision_score` semantics (see
//!   [`average_precision`]). The reference instead scores both channels at once (background
//!   `1 - heatmap` against the background mask concatenated with foreground `heatmap` against
//!   the foreground mask); here only the foreground is scored, as the spec defines it.
//!
//! Everything is plain host arithmetic (integer counts, f64 sums), so it runs anywhere.

use crate::error::{Error, Result};

/// The threshold of the predicted mask: a pixel is foreground when its normalised heatmap
/// value is strictly above it (the reference's `Res.gt(0.5)`).
pub const MASK_THRESHOLD: f32 = 0.5;

/// The predicted mask of a normalised heatmap: `value > 0.5`.
pub fn predicted_mask(heatmap: &[f32]) -> Vec<bool> {
    heatmap.iter().map(|&v| v > MASK_THRESHOLD).collect()
}

/// Average precision of `scores` against the binary `truth`, as scikit-learn's
/// `average_precision_score`: with the distinct scores as thresholds, in decreasing order,
/// `AP = sum_n (R_n - R_{n-1}) P_n` where `P_n`, `R_n` are the precision and recall of
/// predicting positive every sample scoring at least the n-th threshold (`R_0 = 0`). Equal
/// scores form one threshold, so ties are neither optimistic nor pessimistic. Without any
/// positive sample the result is 0 (scikit-learn warns and returns 0; the reference maps NaN
/// to 0). NaN scores count as the lowest.
pub fn average_precision(scores: &[f32], truth: &[bool]) -> Result<f64> {
    if scores.len() != truth.len() {
        return Err(Error::InvalidInput(format!("{} scores for {} ground-truth labels", scores.len(), truth.len())));
    }
    let positives = truth.iter().filter(|&&t| t).count();
    if positives == 0 {
        return Ok(0.0);
    }
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| key(scores[b]).total_cmp(&key(scores[a])));
    let (mut true_positives, mut seen) = (0usize, 0usize);
    let mut previous_recall = 0.0f64;
    let mut ap = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let threshold = key(scores[order[i]]);
        // One threshold per distinct score: take every sample tied with it.
        while i < order.len() && key(scores[order[i]]) == threshold {
            true_positives += usize::from(truth[order[i]]);
            seen += 1;
            i += 1;
        }
        let recall = true_positives as f64 / positives as f64;
        let precision = true_positives as f64 / seen as f64;
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Ok(ap)
}

/// The scores of a set of images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SegmentationScores {
    /// Images accumulated.
    pub images: usize,
    /// Correct pixels over all pixels.
    pub pixel_accuracy: f64,
    /// IoU of the background and of the foreground, from dataset-wide sums.
    pub iou: [f64; 2],
    /// The mean of `iou`.
    pub mean_iou: f64,
    /// The mean over images of the heatmap's average precision.
    pub mean_average_precision: f64,
}

/// Accumulates the metrics image by image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentationMetrics {
    correct: u64,
    labeled: u64,
    intersection: [u64; 2],
    union: [u64; 2],
    average_precision_sum: f64,
    images: usize,
}

impl SegmentationMetrics {
    /// No images yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one image: its normalised heatmap (values in [0, 1]; the prediction is
    /// `heatmap > 0.5`, the AP scores are the heatmap values) and its ground-truth mask, both
    /// at the same resolution, row-major.
    pub fn add(&mut self, heatmap: &[f32], truth: &[bool]) -> Result<()> {
        if heatmap.len() != truth.len() {
            return Err(Error::InvalidInput(format!(
                "the heatmap has {} pixels, the ground-truth mask {}",
                heatmap.len(),
                truth.len()
            )));
        }
        if heatmap.is_empty() {
            return Err(Error::InvalidInput("an empty heatmap cannot be scored".into()));
        }
        let ap = average_precision(heatmap, truth)?;
        for (&value, &t) in heatmap.iter().zip(truth) {
            let predicted = value > MASK_THRESHOLD;
            self.correct += u64::from(predicted == t);
            for (class, label) in [false, true].into_iter().enumerate() {
                let (p, g) = (predicted == label, t == label);
                self.intersection[class] += u64::from(p && g);
                self.union[class] += u64::from(p || g);
            }
        }
        self.labeled += heatmap.len() as u64;
        self.average_precision_sum += ap;
        self.images += 1;
        Ok(())
    }

    /// Images added so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// Correct pixels over all pixels (0 before any image).
    pub fn pixel_accuracy(&self) -> f64 {
        ratio(self.correct, self.labeled)
    }

    /// IoU of background and foreground from the summed intersections and unions.
    pub fn iou(&self) -> [f64; 2] {
        [ratio(self.intersection[0], self.union[0]), ratio(self.intersection[1], self.union[1])]
    }

    /// The mean of [`SegmentationMetrics::iou`].
    pub fn mean_iou(&self) -> f64 {
        let [background, foreground] = self.iou();
        (background + foreground) / 2.0
    }

    /// The mean over images of the average precision (0 before any image).
    pub fn mean_average_precision(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.average_precision_sum / self.images as f64
        }
    }

    /// All scores at once.
    pub fn scores(&self) -> SegmentationScores {
        SegmentationScores {
            images: self.images,
            pixel_accuracy: self.pixel_accuracy(),
            iou: self.iou(),
            mean_iou: self.mean_iou(),
            mean_average_precision: self.mean_average_precision(),
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}
