//! The image tower: patch embedding, class token, `ln_pre`, blocks, `ln_post`, projection.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};

use super::block::{BlockShape, Keep, LayerNorm, LayerNormStats, Linear, ResidualBlock};
use super::Loader;
use crate::config::{ClipConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::weights::Tower;

/// What the image forward must keep besides the embedding. Nothing is kept unless asked, so a
/// plain embedding costs a plain forward.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureRequest {
    /// Layers whose post-activation MLP values `[B, T, N]` to keep.
    pub neurons: Vec<usize>,
    /// Keep, for every layer from this one on, the CLS attention row `[B, H, T]` and the
    /// `ln_1` statistics `[B, T]`, plus the `ln_post` statistics: what the second-order lens
    /// of a layer L needs is `lens_from = L + 1`.
    pub lens_from: Option<usize>,
}

impl CaptureRequest {
    /// Keep the neurons of `layers` and everything the lens needs for them.
    pub fn for_lens(layers: &[usize]) -> Self {
        Self { neurons: layers.to_vec(), lens_from: layers.iter().min().map(|l| l + 1) }
    }

    /// Keep only the neurons of `layers`.
    pub fn neurons(layers: &[usize]) -> Self {
        Self { neurons: layers.to_vec(), lens_from: None }
    }
}

/// What a captured image forward kept.
#[derive(Default)]
pub struct VisionCaptures {
    /// Post-activation MLP values `[B, T, N]` by layer.
    pub neurons: BTreeMap<usize, Tensor<3>>,
    /// CLS row of the attention probabilities `[B, H, T]` by layer.
    pub cls_attention: BTreeMap<usize, Tensor<3>>,
    /// `ln_1` mean and std `[B, T]` by layer.
    pub ln_1: BTreeMap<usize, LayerNormStats>,
    /// `ln_post` mean and std at the CLS token, `[B, 1]`.
    pub ln_post: Option<LayerNormStats>,
}

/// The result of an image forward.
pub struct VisionOutput {
    /// The unnormalised image embedding `[B, D]`.
    pub embeds: Tensor<2>,
    /// What the capture request asked for.
    pub captures: VisionCaptures,
}

/// CLIP's vision transformer.
pub struct VisionTransformer {
    /// Its shape.
    pub config: VisionConfig,
    /// The patch embedding (a stride-`patch` convolution without bias) as a linear layer
    /// `[3 * patch * patch, width]` with a zero bias.
    pub patch_embedding: Linear,
    /// `[width]`.
    pub class_embedding: Tensor<1>,
    /// `[tokens, width]`.
    pub positional_embedding: Tensor<2>,
    /// Applied to the embeddings; the residual stream starts after it.
    pub ln_pre: LayerNorm,
    /// The blocks.
    pub blocks: Vec<ResidualBlock>,
    /// Applied to the final CLS token.
    pub ln_post: LayerNorm,
    /// `[width, embed_dim]`.
    pub projection: Tensor<2>,
}

impl VisionTransformer {
    pub(crate) fn load(loader: &Loader, config: &ClipConfig) -> Result<Self> {
        let c = &config.vision;
        let names = loader.layout.names();
        let patch_len = 3 * c.patch_size * c.patch_size;
        let conv = loader.file.tensor(names.vision_patch_embedding, &[c.width, 3, c.patch_size, c.patch_size])?;
        let shape = BlockShape::new(c.width, c.heads, c.mlp_width, c.layer_norm_eps, c.activation);
        let blocks = ResidualBlock::load_tower(loader, Tower::Vision, c.layers, shape)?;
        Ok(Self {
            config: c.clone(),
            patch_embedding: Linear::new(
                super::transpose(&conv, c.width, patch_len),
                vec![0.0; c.width],
                patch_len,
                c.width,
                loader.device,
            ),
            class_embedding: loader.tensor(names.vision_class_embedding, [c.width])?,
            positional_embedding: loader.tensor(names.vision_positional_embedding, [c.tokens(), c.width])?,
            ln_pre: loader.layer_norm(names.vision_ln_pre, c.width, c.layer_norm_eps)?,
            blocks,
            ln_post: loader.layer_norm(names.vision_ln_post, c.width, c.layer_norm_eps)?,
            projection: loader.projection(names.vision_projection, c.width, config.embed_dim)?,
        })
    }

    /// Checks that `pixels` is `[B, 3, S, S]` at this model's resolution.
    pub fn check_pixels(&self, dims: [usize; 4]) -> Result<()> {
        let s = self.config.image_size;
        if dims[0] == 0 || dims[1] != 3 || dims[2] != s || dims[3] != s {
            return Err(Error::InvalidInput(format!(
                "pixels have shape {dims:?}, expected [B, 3, {s}, {s}] with B > 0"
            )));
        }
        Ok(())
    }

    /// The residual stream after `ln_pre` (patch and class embeddings, positions): `[B,
    /// tokens, width]`, the input of block 0.
    pub fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [batch, _, _, _] = pixels.dims();
        let (p, g, w) = (self.config.patch_size, self.config.grid(), self.config.width);
        let patches =
            pixels.reshape([batch, 3, g, p, g, p]).permute([0, 2, 4, 1, 3, 5]).reshape([batch, g * g, 3 * p * p]);
        let patches = self.patch_embedding.forward(patches);
        let cls = self.class_embedding.clone().reshape([1, 1, w]).expand([batch, 1, w]);
        let tokens = Tensor::cat(vec![cls, patches], 1) + self.positional_embedding.clone().unsqueeze::<3>();
        self.ln_pre.forward(tokens)
    }

    /// Preprocessed images (each `[3, S, S]` row-major, one after another) as the forward's
    /// input `[B, 3, S, S]` on the tower's device; an error unless they are whole images.
    pub fn pixel_tensor(&self, values: Vec<f32>) -> Result<Tensor<4>> {
        let size = self.config.image_size;
        let per_image = 3 * size * size;
        if values.is_empty() || !values.len().is_multiple_of(per_image) {
            return Err(Error::InvalidInput(format!(
                "{} pixel values are not whole images of 3 x {size} x {size}",
                values.len()
            )));
        }
        let batch = values.len() / per_image;
        Ok(Tensor::from_data(TensorData::new(values, [batch, 3, size, size]), &self.positional_embedding.device()))
    }

    /// The image forward, keeping what `request` asks for. `pixels` is `[B, 3, S, S]`,
    /// preprocessed.
    pub fn forward(&self, pixels: Tensor<4>, request: &CaptureRequest) -> Result<VisionOutput> {
        self.check_pixels(pixels.dims())?;
        self.check_request(request)?;
        let mut x = self.embed(pixels);
        let mut captures = VisionCaptures::default();
        let last = self.blocks.len() - 1;
        for (layer, block) in self.blocks.iter().enumerate() {
            let keep = Keep {
                neurons: request.neurons.contains(&layer),
                lens: request.lens_from.is_some_and(|from| layer >= from),
            };
            // Only CLS leaves the last block, unless its neurons are wanted at every token.
            let rows = if layer == last && !keep.neurons { 1 } else { x.dims()[1] };
            let (next, kept) = block.forward_rows(x, rows, None, keep);
            x = next;
            if let Some(neurons) = kept.neurons {
                captures.neurons.insert(layer, neurons);
            }
            if let (Some(attention), Some(stats)) = (kept.cls_attention, kept.ln_1) {
                captures.cls_attention.insert(layer, attention);
                captures.ln_1.insert(layer, stats);
            }
        }
        let [batch, _, width] = x.dims();
        let cls = x.narrow(1, 0, 1);
        let (pooled, stats) = self.ln_post.forward_with_stats(cls);
        if request.lens_from.is_some() {
            captures.ln_post = Some(stats);
        }
        let embeds = pooled.reshape([batch, width]).matmul(self.projection.clone());
        Ok(VisionOutput { embeds, captures })
    }

    /// The unnormalised image embedding `[B, D]`.
    pub fn encode(&self, pixels: Tensor<4>) -> Result<Tensor<2>> {
        Ok(self.forward(pixels, &CaptureRequest::default())?.embeds)
    }

    fn check_request(&self, request: &CaptureRequest) -> Result<()> {
        let layers = self.config.layers;
        let out_of_range = |l: usize| {
            Error::InvalidInput(format!("layer {l} is out of range: the image tower has layers 0..={}", layers - 1))
        };
        if let Some(&l) = request.neurons.iter().find(|&&l| l >= layers) {
            return Err(out_of_range(l));
        }
        match request.lens_from {
            Some(from) if from > layers => Err(out_of_range(from - 1)),
            _ => Ok(()),
        }
    }
}
