//! The text tower: token and positional embeddings, causal blocks, `ln_final` at the end
//! token, projection.

use burn::tensor::{Int, Tensor, TensorData};

use super::block::{BlockShape, Keep, LayerNorm, ResidualBlock};
use super::Loader;
use crate::config::{ClipConfig, TextConfig};
use crate::error::{Error, Result};
use crate::weights::Tower;

/// CLIP's text transformer.
pub struct TextTransformer {
    /// Its shape.
    pub config: TextConfig,
    /// `[vocab, width]`.
    pub token_embedding: Tensor<2>,
    /// `[context, width]`.
    pub positional_embedding: Tensor<2>,
    /// The blocks (causal attention).
    pub blocks: Vec<ResidualBlock>,
    /// Applied to the pooled token.
    pub ln_final: LayerNorm,
    /// `[width, embed_dim]`.
    pub projection: Tensor<2>,
    /// Additive causal mask `[context, context]`.
    causal_mask: Tensor<2>,
}

/// Added to masked attention scores: large enough that softmax gives exactly zero, finite so
/// that no backend meets `inf - inf`.
const MASKED: f32 = -1e9;

impl TextTransformer {
    pub(crate) fn load(loader: &Loader, config: &ClipConfig) -> Result<Self> {
        let c = &config.text;
        let names = loader.layout.names();
        let n = c.context_length;
        let token_embedding = loader.tensor(names.text_token_embedding, [c.vocab_size, c.width])?;
        let positional_embedding = loader.tensor(names.text_positional_embedding, [n, c.width])?;
        let shape = BlockShape::new(c.width, c.heads, c.mlp_width, c.layer_norm_eps, c.activation);
        let blocks = ResidualBlock::load_tower(loader, Tower::Text, c.layers, shape)?;
        let mask: Vec<f32> = (0..n * n).map(|i| if i % n > i / n { MASKED } else { 0.0 }).collect();
        Ok(Self {
            config: c.clone(),
            token_embedding,
            positional_embedding,
            blocks,
            ln_final: loader.layer_norm(names.text_ln_final, c.width, c.layer_norm_eps)?,
            projection: loader.projection(names.text_projection, c.width, config.embed_dim)?,
            causal_mask: Tensor::from_data(TensorData::new(mask, [n, n]), loader.device),
        })
    }

    /// The unnormalised text embeddings `[M, D]` of `tokens`, row-major `[M, context]` as made
    /// by [`crate::tokenizer::ClipTokenizer::tokenize_batch`]. Each text is pooled at its
    /// largest token id (the end token), as CLIP does.
    pub fn encode(&self, tokens: &[u32]) -> Result<Tensor<2>> {
        let n = self.config.context_length;
        if tokens.is_empty() || !tokens.len().is_multiple_of(n) {
            return Err(Error::InvalidInput(format!(
                "{} token ids is not a positive multiple of the context length {n}",
                tokens.len()
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= self.config.vocab_size) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        let texts = tokens.len() / n;
        let width = self.config.width;
        let device = self.token_embedding.device();
        // Attention is causal and each text is pooled at its end token, so the positions after
        // the batch's last end token cannot change the result: run only the first `used`.
        let ends: Vec<usize> = tokens.chunks(n).map(argmax).collect();
        let used = ends.iter().max().map_or(n, |&e| e + 1);
        let kept: Vec<i64> = tokens.chunks(n).flat_map(|row| row[..used].iter().map(|&t| t as i64)).collect();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(kept, [texts * used]), &device);
        let positions = self.positional_embedding.clone().narrow(0, 0, used).unsqueeze::<3>();
        let mask = self.causal_mask.clone().narrow(0, 0, used).narrow(1, 0, used);
        let mut x = self.token_embedding.clone().select(0, ids).reshape([texts, used, width]) + positions;
        for block in &self.blocks {
            x = block.forward(x, Some(&mask), Keep::NOTHING).0;
        }
        let pooled_rows: Vec<i64> = ends.iter().enumerate().map(|(i, &end)| (i * used + end) as i64).collect();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(pooled_rows, [texts]), &device);
        let pooled = x.reshape([texts * used, width]).select(0, rows).reshape([texts, 1, width]);
        Ok(self.ln_final.forward(pooled).reshape([texts, width]).matmul(self.projection.clone()))
    }
}

/// Index of the first largest value, as `torch.argmax` returns.
fn argmax(row: &[u32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &t)| if t > row[best] { i } else { best })
}
