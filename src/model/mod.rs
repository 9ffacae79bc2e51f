//! CLIP's two towers in burn, loaded from a [`WeightFile`] in either layout.
//!
//! Parameters are plain tensors (`Tensor<D>` on a `Device`); the model is inference-only.
//! Linear weights are stored transposed, `[in, out]`, so that `x @ weight` is the forward.

mod block;
mod text;
mod vision;

pub use block::{Attention, Keep, LayerNorm, LayerNormStats, Linear, Mlp, ResidualBlock};
pub use text::TextTransformer;
pub use vision::{CaptureRequest, VisionCaptures, VisionOutput, VisionTransformer};

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::weights::{Layout, WeightFile};

/// Which towers to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towers {
    /// Image and text towers.
    Both,
    /// The image tower only (what the page needs first).
    Vision,
    /// The text tower only.
    Text,
}

impl Towers {
    fn vision(self) -> bool {
        matches!(self, Towers::Both | Towers::Vision)
    }
    fn text(self) -> bool {
        matches!(self, Towers::Both | Towers::Text)
    }
}

/// A CLIP model: an image tower, a text tower, or both.
pub struct ClipModel {
    /// The architecture.
    pub config: ClipConfig,
    /// The image tower, when loaded.
    pub vision: Option<VisionTransformer>,
    /// The text tower, when loaded.
    pub text: Option<TextTransformer>,
}

impl ClipModel {
    /// Loads the requested towers from `weights` onto `device`. The layout is detected from
    /// the tensor names; every tensor's shape is checked against `config`.
    pub fn load(weights: &WeightFile, config: &ClipConfig, towers: Towers, device: &Device) -> Result<Self> {
        config.validate()?;
        let loader = Loader { file: weights, layout: weights.layout()?, device };
        let vision = if towers.vision() { Some(VisionTransformer::load(&loader, config)?) } else { None };
        let text = if towers.text() { Some(TextTransformer::load(&loader, config)?) } else { None };
        Ok(Self { config: config.clone(), vision, text })
    }

    /// The image tower, or an error saying it was not loaded.
    pub fn vision(&self) -> Result<&VisionTransformer> {
        self.vision.as_ref().ok_or_else(|| Error::InvalidInput("the image tower is not loaded".into()))
    }

    /// The text tower, or an error saying it was not loaded.
    pub fn text(&self) -> Result<&TextTransformer> {
        self.text.as_ref().ok_or_else(|| Error::InvalidInput("the text tower is not loaded".into()))
    }
}

/// Reads tensors of one file onto one device, converting PyTorch conventions to ours.
pub(crate) struct Loader<'a> {
    pub file: &'a WeightFile,
    pub layout: Layout,
    pub device: &'a Device,
}

impl Loader<'_> {
    /// A tensor of exactly `shape`.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.file.tensor(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), self.device))
    }

    /// A matrix stored PyTorch-style `[out, in]`, returned as `[in, out]`.
    pub fn transposed(&self, name: &str, out_features: usize, in_features: usize) -> Result<Tensor<2>> {
        let values = self.file.tensor(name, &[out_features, in_features])?;
        Ok(Tensor::from_data(
            TensorData::new(transpose(&values, out_features, in_features), [in_features, out_features]),
            self.device,
        ))
    }

    /// `prefix.weight` / `prefix.bias` of a LayerNorm.
    pub fn layer_norm(&self, prefix: &str, width: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: self.tensor(&format!("{prefix}.weight"), [width])?,
            beta: self.tensor(&format!("{prefix}.bias"), [width])?,
            eps,
        })
    }

    /// A linear layer `prefix.weight` [out, in] with `prefix.bias` [out].
    pub fn linear(&self, prefix: &str, in_features: usize, out_features: usize) -> Result<Linear> {
        let weight = self.file.tensor(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias = self.file.tensor(&format!("{prefix}.bias"), &[out_features])?;
        Ok(Linear::new(transpose(&weight, out_features, in_features), bias, in_features, out_features, self.device))
    }

    /// A projection matrix returned as `[width, out]`: OpenAI stores it so, Hugging Face as
    /// the weight of a bias-free linear layer `[out, width]`.
    pub fn projection(&self, name: &str, width: usize, out: usize) -> Result<Tensor<2>> {
        match self.layout {
            Layout::OpenAi => self.tensor(name, [width, out]),
            Layout::HuggingFace => self.transposed(name, out, width),
        }
    }
}

/// The transpose `[cols, rows]` of row-major `[rows, cols]` values.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut transposed = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            transposed[c * rows + r] = values[r * cols + c];
        }
    }
    transposed
}
