//! Segmentation's heatmaps (steps 3 and 4 of [`super`]): the selected neurons' mean post-GELU
//! activation per patch, upsampled and min-max normalised, and mapped back onto the original
//! image.

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor, TensorData};

use super::RankedNeuron;
use crate::device::read_f32;
use crate::error::{Error, Result};
use crate::model::{CaptureRequest, VisionTransformer};
use crate::preprocess::CropGeometry;

/// Heatmaps at the model's resolution, `[B, S, S]` row-major, each min-max normalised to
/// [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmaps {
    /// Images.
    pub batch: usize,
    /// Side `S` (the model's input size).
    pub size: usize,
    /// `batch * size * size` values.
    pub values: Vec<f32>,
    /// Per image, the largest patch score before normalisation.
    pub peaks: Vec<f32>,
}

impl Heatmaps {
    /// The heatmap of image `i`, `[S, S]`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.size * self.size;
        &self.values[i * n..(i + 1) * n]
    }

    /// The predicted mask of image `i`: `heatmap > 0.5`.
    ///
    /// Reference: `Res_1 = Res.gt(ret)`, `ret = 0.5`, in [`compute_segmentation.py`, `eval_batch`][segmentation].
    ///
    /// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
    pub fn mask(&self, i: usize) -> Vec<bool> {
        crate::apps::metrics::predicted_mask(self.image(i))
    }
}

/// The mean post-GELU activation of the `selected` neurons at every patch token (CLS
/// dropped): `[B, T - 1]` on the captures' device. `neurons` are the captures
/// ([`crate::model::VisionCaptures::neurons`], `[B, T, N]` by layer); every selected layer must
/// be among them.
///
/// Reference: `np.mean(np.stack(prs.recorded, axis=0), axis=0)[:, 1:]` in [`compute_segmentation.py`,
/// `eval_batch`][segmentation], of the `ret[:, :, index]` that [`prs_neuron_record.py`,
/// `SwitchLogger.after_gelu`][record] records (`hook_switch_logger(post_gelu=True)`).
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
/// [record]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_neuron_record.py
pub fn selected_activation(neurons: &BTreeMap<usize, Tensor<3>>, selected: &[RankedNeuron]) -> Result<Tensor<2>> {
    if selected.is_empty() {
        return Err(Error::InvalidInput("no neurons were selected".into()));
    }
    let mut by_layer: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for n in selected {
        by_layer.entry(n.layer).or_default().push(n.neuron as i64);
    }
    let mut total: Option<Tensor<3>> = None;
    let mut tokens = 0;
    for (layer, indices) in by_layer {
        let captured = neurons.get(&layer).ok_or_else(|| {
            Error::InvalidInput(format!(
                "the activations of layer {layer} were not captured (captured: {:?})",
                neurons.keys().collect::<Vec<_>>()
            ))
        })?;
        let [_, t, width] = captured.dims();
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= width) {
            return Err(Error::InvalidInput(format!(
                "neuron {bad} is out of range: layer {layer} has {width} neurons"
            )));
        }
        tokens = t;
        let count = indices.len();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(indices, [count]), &captured.device());
        let sum = captured.clone().select(2, ids).sum_dim(2);
        total = Some(match total {
            Some(acc) => acc + sum,
            None => sum,
        });
    }
    let total = total.expect("at least one layer");
    let [batch, _, _] = total.dims();
    if tokens < 2 {
        return Err(Error::InvalidInput(format!("the captures have {tokens} tokens: no patch tokens")));
    }
    Ok(total.narrow(1, 1, tokens - 1).reshape([batch, tokens - 1]).div_scalar(selected.len() as f64))
}

/// PyTorch's `F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)` of
/// one `[height, width]` map: output pixel `o` samples input coordinate
/// `max(0, (o + 0.5) / factor - 0.5)`, and the upper neighbour is clamped to the last row or
/// column.
///
/// Reference: `torch.nn.functional.interpolate(..., scale_factor=patch_size, mode="bilinear")` in
/// [`compute_segmentation.py`, `eval_batch`][segmentation].
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn upsample_bilinear(values: &[f32], height: usize, width: usize, factor: usize) -> Result<Vec<f32>> {
    if values.len() != height * width || height == 0 || width == 0 || factor == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot upsample {} values as a {height} x {width} map by {factor}",
            values.len()
        )));
    }
    let scale = 1.0 / factor as f32;
    let taps = |out: usize, len: usize| {
        let source = ((out as f32 + 0.5) * scale - 0.5).max(0.0);
        let low = (source as usize).min(len - 1);
        let high = (low + 1).min(len - 1);
        (low, high, source - low as f32)
    };
    let (out_h, out_w) = (height * factor, width * factor);
    let columns: Vec<_> = (0..out_w).map(|x| taps(x, width)).collect();
    let mut out = Vec::with_capacity(out_h * out_w);
    for y in 0..out_h {
        let (y0, y1, ly) = taps(y, height);
        for &(x0, x1, lx) in &columns {
            let top = (1.0 - lx) * values[y0 * width + x0] + lx * values[y0 * width + x1];
            let bottom = (1.0 - lx) * values[y1 * width + x0] + lx * values[y1 * width + x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    Ok(out)
}

/// `(v - min) / (max - min)` in place. A constant map (where the reference divides by zero and
/// then maps NaN to 0) becomes all zeros.
///
/// Reference: `Res = (Res - Res.min()) / (Res.max() - Res.min())` in [`compute_segmentation.py`,
/// `eval_batch`][segmentation].
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub fn min_max_normalise(values: &mut [f32]) {
    let (min, max) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = max - min;
    if range > 0.0 && range.is_finite() {
        values.iter_mut().for_each(|v| *v = (*v - min) / range);
    } else {
        values.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// One image's heatmap from its per-patch scores (`grid * grid`, row-major): upsampled by
/// `patch` and min-max normalised, `[grid * patch, grid * patch]`.
pub fn heatmap_from_patches(patches: &[f32], grid: usize, patch: usize) -> Result<Vec<f32>> {
    let mut map = upsample_bilinear(patches, grid, grid, patch)?;
    min_max_normalise(&mut map);
    Ok(map)
}

/// The heatmaps `[B, S, S]` of the `selected` neurons from captured post-GELU activations
/// (`[B, T, N]` by layer; request them with [`CaptureRequest::neurons`]), `S = grid * patch`.
/// Each image is normalised on its own.
///
/// Reference: [`compute_segmentation.py`, `eval_batch`][segmentation] from `prs.recorded` to `Res`.
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub async fn heatmaps(
    neurons: &BTreeMap<usize, Tensor<3>>,
    selected: &[RankedNeuron],
    patch_size: usize,
) -> Result<Heatmaps> {
    let activation = selected_activation(neurons, selected)?;
    let [batch, patches] = activation.dims();
    let grid = (patches as f64).sqrt().round() as usize;
    if grid * grid != patches {
        return Err(Error::InvalidInput(format!("{patches} patch tokens do not form a square grid")));
    }
    let host = read_f32(activation).await?;
    let mut values = Vec::with_capacity(batch * grid * grid * patch_size * patch_size);
    for image in host.chunks_exact(patches) {
        values.extend(heatmap_from_patches(image, grid, patch_size)?);
    }
    let peaks =
        host.chunks_exact(patches).map(|image| image.iter().copied().fold(f32::NEG_INFINITY, f32::max)).collect();
    Ok(Heatmaps { batch, size: grid * patch_size, values, peaks })
}

/// Runs the image tower on preprocessed `pixels` `[B, 3, S, S]`, capturing only the layers of
/// `selected`, and returns their heatmaps with the unnormalised image embeddings `[B, D]`.
///
/// Reference: the second `model.encode_image` of [`compute_segmentation.py`, `eval_batch`][segmentation], with
/// `prs.layers` and `prs.indices` set to the chosen neurons.
///
/// [segmentation]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_segmentation.py
pub async fn segment(
    vision: &VisionTransformer,
    pixels: Tensor<4>,
    selected: &[RankedNeuron],
) -> Result<(Heatmaps, Vec<f32>)> {
    let mut layers: Vec<usize> = selected.iter().map(|n| n.layer).collect();
    layers.sort_unstable();
    layers.dedup();
    let output = vision.forward(pixels, &CaptureRequest::neurons(&layers))?;
    let maps = heatmaps(&output.captures.neurons, selected, vision.config.patch_size).await?;
    Ok((maps, read_f32(output.embeds).await?))
}

// ---------------------------------------------------------------------------
// Geometry: back onto the original image, and ground-truth masks onto the model's input
// ---------------------------------------------------------------------------

/// Bilinear sample of a `size x size` map at continuous coordinates (pixel `i` centred at
/// `i + 0.5`), clamped at the borders.
fn sample(map: &[f32], size: usize, x: f32, y: f32) -> f32 {
    let last = (size - 1) as f32;
    let (sx, sy) = ((x - 0.5).clamp(0.0, last), (y - 0.5).clamp(0.0, last));
    let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
    let (lx, ly) = (sx - x0 as f32, sy - y0 as f32);
    let top = (1.0 - lx) * map[y0 * size + x0] + lx * map[y0 * size + x1];
    let bottom = (1.0 - lx) * map[y1 * size + x0] + lx * map[y1 * size + x1];
    (1.0 - ly) * top + ly * bottom
}

/// A model-resolution heatmap (`[S, S]`, `S = geometry.size`) on the original image
/// (`[original_height, original_width]`, row-major): each original pixel centre is mapped into
/// the crop ([`CropGeometry::original_to_model`]) and the heatmap sampled bilinearly there;
/// pixels outside the crop get 0.
pub fn heatmap_to_original(heatmap: &[f32], geometry: &CropGeometry) -> Result<Vec<f32>> {
    let size = geometry.size as usize;
    if size == 0 || heatmap.len() != size * size {
        return Err(Error::InvalidInput(format!(
            "the heatmap has {} values, the crop is {size} x {size}",
            heatmap.len()
        )));
    }
    let (width, height) = (geometry.original_width as usize, geometry.original_height as usize);
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (mx, my) = geometry.original_to_model(x as f32 + 0.5, y as f32 + 0.5);
            let inside = (0.0..size as f32).contains(&mx) && (0.0..size as f32).contains(&my);
            out.push(if inside { sample(heatmap, size, mx, my) } else { 0.0 });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's documented example (`nn.Upsample`, `mode="bilinear"`, `align_corners=False`):
    /// [[1, 2], [3, 4]] by 2. Along each axis output o samples max(0, (o + 0.5) / 2 - 0.5) =
    /// 0, 0.25, 0.75, 1.25 (clamped to the last input), i.e. weights (1, 0), (0.75, 0.25),
    /// (0.25, 0.75), (0, 1): row 0 = [1, 1.25, 1.75, 2], row 3 = [3, 3.25, 3.75, 4], row 1 =
    /// 0.75 row 0 + 0.25 row 3, row 2 = 0.25 row 0 + 0.75 row 3.
    #[test]
    fn bilinear_upsampling_matches_pytorch_2x2_to_4x4() {
        let out = upsample_bilinear(&[1.0, 2.0, 3.0, 4.0], 2, 2, 2).unwrap();
        #[rustfmt::skip]
        let expected = [
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(out, expected);
        // Min-max normalised: (v - 1) / 3.
        let map = heatmap_from_patches(&[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
        for (a, e) in map.iter().zip(expected) {
            assert!((a - (e - 1.0) / 3.0).abs() < 1e-6);
        }
        // A constant map (0/0 in the reference, NaN mapped to 0) is all zeros.
        let mut flat = vec![5.0f32; 4];
        min_max_normalise(&mut flat);
        assert_eq!(flat, [0.0; 4]);
        assert!(upsample_bilinear(&[1.0, 2.0, 3.0], 2, 2, 2).is_err());
    }

    /// Model input 4 x 4, heatmap value h(r, c) = 4 r + c + 1.
    /// Landscape 8 x 4: shorter side already 4, so the resize is the identity and the crop starts
    /// at column round((8 - 4) / 2) = 2: original (x, y) shows model (x - 2, y); columns 0, 1, 6, 7
    /// are outside (0). Portrait 4 x 8: the same with rows. Landscape 16 x 8: resized to 8 x 4
    /// (scale 2), crop at resized column 2 = original column 4; original pixel centre x + 0.5 maps
    /// to model (x + 0.5) / 2 - 2, sampled at that minus 0.5: x = 5 -> model 0.25 -> 0.75 h(., 0) +
    /// 0.25 h(., 1); x = 3 -> model -0.25, outside.
    #[test]
    fn heatmap_maps_back_onto_non_square_originals() {
        let heat: Vec<f32> = (0..16).map(|i| i as f32 + 1.0).collect();
        let h = |r: usize, c: usize| (4 * r + c + 1) as f32;

        let wide = heatmap_to_original(&heat, &CropGeometry::for_image(8, 4, 4)).unwrap();
        assert_eq!(wide.len(), 32);
        for y in 0..4 {
            for x in 0..8 {
                let expected = if (2..6).contains(&x) { h(y, x - 2) } else { 0.0 };
                assert_eq!(wide[y * 8 + x], expected, "landscape ({x}, {y})");
            }
        }

        let tall = heatmap_to_original(&heat, &CropGeometry::for_image(4, 8, 4)).unwrap();
        for y in 0..8 {
            for x in 0..4 {
                let expected = if (2..6).contains(&y) { h(y - 2, x) } else { 0.0 };
                assert_eq!(tall[y * 4 + x], expected, "portrait ({x}, {y})");
            }
        }

        let large = heatmap_to_original(&heat, &CropGeometry::for_image(16, 8, 4)).unwrap();
        assert_eq!(large.len(), 16 * 8);
        // Row y = 1 -> model row 0.75 - 0.5 = 0.25: 0.75 h(0, .) + 0.25 h(1, .).
        let row = |c: usize| 0.75 * h(0, c) + 0.25 * h(1, c);
        assert!((large[16 + 5] - (0.75 * row(0) + 0.25 * row(1))).abs() < 1e-5);
        assert_eq!(large[16 + 3], 0.0);
        assert_eq!(large[16 + 12], 0.0, "x = 12 -> model 4.25, outside");
        assert!(heatmap_to_original(&heat[..15], &CropGeometry::for_image(8, 4, 4)).is_err());
    }
}
