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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-9
    }

    /// scikit-learn's documented example: `average_precision_score([0, 0, 1, 1],
    /// [0.1, 0.4, 0.35, 0.8])` = 0.83 (by hand: 0.8 -> R 1/2, P 1; 0.4 -> no new recall;
    /// 0.35 -> R 1, P 2/3; AP = 1/2 * 1 + 1/2 * 2/3 = 5/6).
    #[test]
    fn average_precision_matches_sklearn_example() {
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!(close(ap, 5.0 / 6.0), "{ap}");
        // Ties form one threshold: scores [0.5, 0.5, 0.2], truth [1, 0, 1]: 0.5 -> R 1/2, P 1/2;
        // 0.2 -> R 1, P 2/3; AP = 1/4 + 1/3 = 7/12 (whatever the order of the tied pair).
        for (scores, truth) in [([0.5, 0.5, 0.2], [true, false, true]), ([0.5, 0.5, 0.2], [false, true, true])] {
            assert!(close(average_precision(&scores, &truth).unwrap(), 7.0 / 12.0));
        }
        // No positive: 0 (scikit-learn returns 0 with a warning; the reference maps NaN to 0).
        assert_eq!(average_precision(&[0.3, 0.7], &[false, false]).unwrap(), 0.0);
        assert!(average_precision(&[0.3], &[true, false]).is_err());
    }

    /// Two 2x2 images, pixels in row-major order; the prediction is heatmap > 0.5.
    ///
    /// A: heatmap [0.9, 0.2, 0.7, 0.5], truth [1, 0, 0, 1] -> predicted [1, 0, 1, 0]
    ///    (0.5 is not above 0.5): correct 2 of 4; background: pred {1, 3}, truth {1, 2}:
    ///    I 1, U 3; foreground: pred {0, 2}, truth {0, 3}: I 1, U 3.
    ///    AP: 0.9 (T) R 1/2 P 1; 0.7 (F); 0.5 (T) R 1 P 2/3; 0.2 (F): 1/2 + 1/2 * 2/3 = 5/6.
    /// B: heatmap [0.8, 0.8, 0.1, 0.6], truth [1, 0, 0, 1] -> predicted [1, 1, 0, 1]: correct 3;
    ///    background: pred {2}, truth {1, 2}: I 1, U 2; foreground: pred {0, 1, 3}, truth {0, 3}:
    ///    I 2, U 3. AP: 0.8 (T, F tied) R 1/2 P 1/2; 0.6 (T) R 1 P 2/3: 1/4 + 1/3 = 7/12.
    /// Dataset: pixel accuracy 5/8; IoU background (1+1)/(3+2) = 2/5, foreground (1+2)/(3+3) = 1/2;
    /// mIoU 9/20 (the mean of per-image mIoUs would be 11/24); mAP (5/6 + 7/12) / 2 = 17/24.
    #[test]
    fn metrics_accumulate_over_the_dataset() {
        let mut metrics = SegmentationMetrics::new();
        metrics.add(&[0.9, 0.2, 0.7, 0.5], &[true, false, false, true]).unwrap();
        metrics.add(&[0.8, 0.8, 0.1, 0.6], &[true, false, false, true]).unwrap();
        let s = metrics.scores();
        assert_eq!(s.images, 2);
        assert!(close(s.pixel_accuracy, 5.0 / 8.0), "{s:?}");
        assert!(close(s.iou[0], 2.0 / 5.0) && close(s.iou[1], 1.0 / 2.0), "{s:?}");
        assert!(close(s.mean_iou, 9.0 / 20.0), "{s:?}");
        assert!(close(s.mean_average_precision, 17.0 / 24.0), "{s:?}");
        let error = metrics.add(&[0.5; 3], &[true; 4]).unwrap_err().to_string();
        assert!(error.contains("the heatmap has 3 pixels, the ground-truth mask 4"), "{error}");
        assert_eq!(metrics.images(), 2, "a rejected image is not counted");
    }
}
