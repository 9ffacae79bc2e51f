//! Second-order effects in factored form.
//!
//! For neuron n of layer L and image I (the paper's eq. 5 with the layer norms frozen at this
//! forward's statistics):
//!
//! ```text
//! phi_n(I) = c(I) [ sum_{l>L} sum_h s_{l,h,n}(I) u_{l,h,n} + kappa(I) ]
//! c(I)      = 100 / |emb(I)|
//! s_{l,h,n} = (1 / sigma_post) sum_t A_{l,h}[CLS,t] act_{L,n}(t) / sigma_l(t)
//! u_{l,h,n} = (gamma_post ⊙ W_O^h W_V^h (gamma_ln1^l ⊙ w_n)) @ P
//! ```
//!
//! `u` is never materialised per head. With `G_l = (W_out ⊙ gamma_ln1^l) W_V^T` (`[N, width]`,
//! columns grouped by head; weights only) and `M_l = (W_O^T ⊙ gamma_post) @ P` (`[width, D]`),
//! `sum_h s_{l,h} u_{l,h} = (s_l expanded over each head's columns ⊙ G_l) @ M_l`: one
//! `[N, width] x [width, D]` product per later layer and image (ViT-B/32, L = 9: ~2.4 GMAC).
//!
//! `kappa` is the same vector for every neuron: the reference splits each bias and LayerNorm
//! mean evenly over the residual components (`1 + 2l` of them enter block l) and over the
//! N neurons, and `mu_post`, `beta_post` over `(1 + 2l)(1 + 2 layers) H N` per (l, h).

use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::model::{LayerNormStats, VisionOutput, VisionTransformer};

/// The paper's scale: effects are `100 / |emb|` times the unnormalised contribution.
pub const EFFECT_COEFFICIENT: f64 = 100.0;

/// Weight-only factors of one later layer l.
struct LaterLayer {
    layer: usize,
    /// `G_l = (W_out ⊙ gamma_ln1^l) @ W_V^T`, `[N, width]`.
    neuron_values: Tensor<2>,
    /// `M_l = (W_O^T ⊙ gamma_post) @ P`, `[width, D]`.
    output_map: Tensor<2>,
}

/// The weight-only factors of the lens for one layer L, computed once per model and layer.
pub struct LensFactors {
    /// The neurons' layer L.
    pub layer: usize,
    later: Vec<LaterLayer>,
}

impl LensFactors {
    /// Precomputes the factors of layer `layer` of `vision`.
    pub fn new(vision: &VisionTransformer, layer: usize) -> Result<Self> {
        let layers = vision.blocks.len();
        if layer >= layers {
            return Err(Error::InvalidInput(format!("layer {layer} is out of range: the image tower has layers 0..={}", layers - 1)));
        }
        let neuron_outputs = vision.blocks[layer].mlp.fc_out.weight.clone(); // [N, width]: row n = w_n
        let gamma_post = vision.ln_post.gamma.clone().unsqueeze::<2>();
        let later = (layer + 1..layers)
            .map(|l| {
                let block = &vision.blocks[l];
                let gamma_1 = block.ln_1.gamma.clone().unsqueeze::<2>();
                LaterLayer {
                    layer: l,
                    neuron_values: (neuron_outputs.clone() * gamma_1).matmul(block.attn.value.weight.clone()),
                    output_map: (block.attn.out.weight.clone() * gamma_post.clone()).matmul(vision.projection.clone()),
                }
            })
            .collect();
        Ok(Self { layer, later })
    }
}

/// The second-order effects `[B, N, D]` of every neuron of `factors.layer`, from a forward
/// that captured `CaptureRequest::for_lens(&[layer])` (or more).
pub fn second_order_effects(vision: &VisionTransformer, factors: &LensFactors, output: &VisionOutput) -> Result<Tensor<3>> {
    let captures = &output.captures;
    let layer = factors.layer;
    let missing = |what: &str| Error::InvalidInput(format!("the forward did not capture {what} needed by the lens of layer {layer}"));
    let neurons = captures.neurons.get(&layer).ok_or_else(|| missing("the neurons"))?.clone();
    let post = captures.ln_post.as_ref().ok_or_else(|| missing("the ln_post statistics"))?;
    let [batch, _, count] = neurons.dims();
    let width = vision.config.width;
    let heads = vision.config.heads;
    let head_dim = width / heads;
    let embed_dim = vision.projection.dims()[1];
    let sigma_post = post.std.clone(); // [B, 1]
    let mut direct = Tensor::<3>::zeros([batch, count, embed_dim], &neurons.device());
    let mut kappa = Tensor::<2>::zeros([batch, embed_dim], &neurons.device());
    for later in &factors.later {
        let attention = captures.cls_attention.get(&later.layer).ok_or_else(|| missing("the attention rows"))?.clone();
        let ln_1 = captures.ln_1.get(&later.layer).ok_or_else(|| missing("the ln_1 statistics"))?;
        // s_{l,h,n} = sum_t A[CLS,t] act_n(t) / sigma_l(t) / sigma_post: [B, H, N].
        let weighted = attention.clone() / ln_1.std.clone().unsqueeze_dim::<3>(1);
        let scalars = weighted.matmul(neurons.clone()) / sigma_post.clone().unsqueeze_dim::<3>(2);
        // Expand each head's scalar over its head_dim columns: [B, N, width].
        let expanded = scalars.swap_dims(1, 2).unsqueeze_dim::<4>(3).expand([batch, count, heads, head_dim]).reshape([batch, count, width]);
        let contribution = (expanded * later.neuron_values.clone().unsqueeze::<3>()).reshape([batch * count, width]).matmul(later.output_map.clone());
        direct = direct + contribution.reshape([batch, count, embed_dim]);
        kappa = kappa + shared_term(vision, layer, later.layer, attention, ln_1, post, count)?;
    }
    let norms = output.embeds.clone().square().sum_dim(1).sqrt(); // [B, 1]
    let scale = norms.recip().mul_scalar(EFFECT_COEFFICIENT).unsqueeze_dim::<3>(2);
    Ok((direct + kappa.unsqueeze_dim::<3>(1)) * scale)
}

/// kappa's part from later layer `l`, summed over its heads: `[B, D]`, before the `c(I)` scale.
fn shared_term(
    vision: &VisionTransformer,
    layer: usize,
    l: usize,
    attention: Tensor<3>,
    ln_1: &LayerNormStats,
    post: &LayerNormStats,
    count: usize,
) -> Result<Tensor<2>> {
    let block = &vision.blocks[l];
    let [batch, heads, tokens] = attention.dims();
    let width = vision.config.width;
    let head_dim = width / heads;
    let layers = vision.blocks.len() as f64;
    let n = count as f64;
    let components = (1 + 2 * l) as f64 * n; // K
    let post_components = (1 + 2 * l) as f64 * (1.0 + 2.0 * layers) * heads as f64 * n; // K'
    let bias_out = vision.blocks[layer].mlp.fc_out.bias.clone().div_scalar(n).reshape([1, 1, width]);
    let mean = ln_1.mean.clone().unsqueeze_dim::<3>(2).div_scalar(components); // [B, T, 1]
    let std = ln_1.std.clone().unsqueeze_dim::<3>(2);
    // y0 = gamma_1 (b_out / N - mu / K) / sigma + beta_1 / K: [B, T, width]
    let y0 = (bias_out - mean) / std * block.ln_1.gamma.clone().reshape([1, 1, width]) + block.ln_1.beta.clone().div_scalar(components).reshape([1, 1, width]);
    let values = block.attn.value.forward(y0) - block.attn.value.bias.clone().mul_scalar(1.0 - 1.0 / components).reshape([1, 1, width]);
    // Per head: A[CLS] @ v0, concatenated over heads: [B, width].
    let per_head = values.reshape([batch, tokens, heads, head_dim]).swap_dims(1, 2);
    let mixed = attention.unsqueeze_dim::<4>(2).matmul(per_head).reshape([batch, width]);
    let out = &block.attn.out;
    let o0 = mixed.matmul(out.weight.clone()) + out.bias.clone().div_scalar(components).unsqueeze::<2>();
    let gamma_post = vision.ln_post.gamma.clone().unsqueeze::<2>();
    let beta_post = vision.ln_post.beta.clone().unsqueeze::<2>();
    let h = heads as f64;
    let centred = o0 - post.mean.clone().mul_scalar(h / post_components);
    let normalised = centred / post.std.clone() * gamma_post + beta_post.mul_scalar(h / post_components);
    Ok(normalised.matmul(vision.projection.clone()))
}
