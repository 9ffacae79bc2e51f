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
//! Nothing of size `[tokens x neurons x width]` is ever formed (the reference forms it per head).
//! The weight-only factors come in two forms ([`FactorForm`]):
//! - `PerHead`: the directions `u_{l,h,n}` themselves, `[N, K, D]` with `K` = later layers x
//!   heads; an image's effects are one `[1, K] x [K, D]` product per neuron (ViT-B/32, L = 9:
//!   ~38 MMAC per image). Costs `K N D` floats (151 MB for ViT-B/32 layer 9).
//! - `Compact`: `G_l = (W_out ⊙ gamma_ln1^l) W_V^T` (`[N, width]`, columns grouped by head) and
//!   `M_l = (W_O^T ⊙ gamma_post) @ P` (`[width, D]`), with
//!   `sum_h s_{l,h} u_{l,h} = (s_l expanded over each head's columns ⊙ G_l) @ M_l`: one
//!   `[N, width] x [width, D]` product per later layer and image (~2.4 GMAC for layer 9), for
//!   when memory is short.
//!
//! `kappa` is the same vector for every neuron: the reference splits each bias and LayerNorm
//! mean evenly over the residual components (`1 + 2l` of them enter block l) and over the
//! N neurons, and `mu_post`, `beta_post` over `(1 + 2l)(1 + 2 layers) H N` per (l, h).
//!
//! Reference: [`prs_second_order_neurons_hook.py`,
//! `SecondOrderPrsNeurons.apply_attention_head_and_project_layer_neurons`][hook] (one later layer and head),
//! summed over the later layers and heads in [`compute_second_order_neuron_prs.py`, `main`][prs]; the forward's
//! captures stand for `hook_prs_logger`'s hooks. Differs: the factored form above, where the reference runs
//! `apply_mlp_post` .. `project_attentions_to_output_per_neuron` on `[B, tokens, N, width]` tensors per head (the
//! same sum, regrouped).
//!
//! [hook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_second_order_neurons_hook.py
//! [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py

use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::kernels;
use crate::model::{LayerNormStats, VisionOutput, VisionTransformer};

/// The paper's scale: effects are `100 / |emb|` times the unnormalised contribution.
///
/// Reference: `SecondOrderPrsNeurons`'s `coefficient` and the division by `final_representation.norm` in
/// [`SecondOrderPrsNeurons.apply_attention_head_and_project_layer_neurons`][hook].
///
/// [hook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_second_order_neurons_hook.py
pub const EFFECT_COEFFICIENT: f64 = 100.0;

/// Weight-only factors of one later layer l.
struct LaterLayer {
    layer: usize,
    /// `G_l = (W_out ⊙ gamma_ln1^l) @ W_V^T`, `[N, width]`.
    neuron_values: Tensor<2>,
    /// `M_l = (W_O^T ⊙ gamma_post) @ P`, `[width, D]`.
    output_map: Tensor<2>,
    /// What `kappa`'s value map makes of its parts, `[3, width]`: the rows
    /// `(gamma_ln1^l ⊙ b_out^L / N) W_V`, `gamma_ln1^l W_V` and `beta_ln1^l W_V + b_V`, so that
    /// no image's `[T, width] x [width, width]` value map is needed (see [`shared_term`]).
    shared_values: Tensor<2>,
}

/// How the weight-only factors are kept: a memory/speed trade-off with identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorForm {
    /// `G_l` and `M_l` per later layer: small, ~64x more arithmetic per image.
    Compact,
    /// The per-head directions `u_{l,h,n}` `[N, K, D]`: `K N D` floats, fast.
    PerHead,
}

/// [`LensFactors::new`] keeps per-head directions up to this size (bytes, f32) per layer.
pub const PER_HEAD_BUDGET_BYTES: usize = 256 << 20;

/// The weight-only factors of the lens for one layer L, computed once per model and layer.
///
/// Reference: the weights that [`SecondOrderPrsNeurons`][hook]'s `apply_mlp_post` (`c_proj`),
/// `normalize_before_attention_per_neuron` (`ln_1`), `apply_attention_matrix_per_neuron` (`W_V`, `out_proj`) and
/// `project_attentions_to_output_per_neuron` (`ln_post`, `proj`) read per image and head; here they are folded
/// once per model and layer.
///
/// [hook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_second_order_neurons_hook.py
pub struct LensFactors {
    /// The neurons' layer L.
    pub layer: usize,
    later: Vec<LaterLayer>,
    /// Heads per layer.
    heads: usize,
    form: FactorForm,
    /// `u_{l,h,n}` as `[K, N, D]` (later layers x heads along K), in the per-head form (none
    /// for the last layer, which has no later heads).
    head_directions: Option<Tensor<3>>,
}

impl LensFactors {
    /// Precomputes the factors of layer `layer` of `vision`, per head when they fit in
    /// [`PER_HEAD_BUDGET_BYTES`], compact otherwise.
    pub fn new(vision: &VisionTransformer, layer: usize) -> Result<Self> {
        Self::within(vision, layer, PER_HEAD_BUDGET_BYTES)
    }

    /// As [`LensFactors::new`], per head only when they also fit in `buffer_limit` bytes (a
    /// device's largest buffer: the per-head directions are one tensor).
    pub fn within(vision: &VisionTransformer, layer: usize, buffer_limit: usize) -> Result<Self> {
        let budget = buffer_limit.min(PER_HEAD_BUDGET_BYTES);
        let form =
            if Self::per_head_bytes(vision, layer) <= budget { FactorForm::PerHead } else { FactorForm::Compact };
        Self::with_form(vision, layer, form)
    }

    /// The size in bytes of the per-head directions of `layer` (f32).
    pub fn per_head_bytes(vision: &VisionTransformer, layer: usize) -> usize {
        let config = &vision.config;
        config.layers.saturating_sub(layer + 1) * config.heads * config.mlp_width * vision.projection.dims()[1] * 4
    }

    /// The form the factors are kept in.
    pub fn form(&self) -> FactorForm {
        self.form
    }

    /// The later heads K (later layers x heads) whose terms the effects sum.
    pub fn later_heads(&self) -> usize {
        self.later.len() * self.heads
    }

    /// Precomputes the factors of layer `layer` of `vision` in the given form.
    pub fn with_form(vision: &VisionTransformer, layer: usize, form: FactorForm) -> Result<Self> {
        let layers = vision.blocks.len();
        if layer >= layers {
            return Err(Error::InvalidInput(format!(
                "layer {layer} is out of range: the image tower has layers 0..={}",
                layers - 1
            )));
        }
        let fc_out = &vision.blocks[layer].mlp.fc_out;
        let neuron_outputs = fc_out.weight(); // [N, width]: row n = w_n
        let count = neuron_outputs.dims()[0];
        let gamma_post = vision.ln_post.gamma.clone().unsqueeze::<2>();
        let later = (layer + 1..layers)
            .map(|l| {
                let block = &vision.blocks[l];
                let value = &block.attn.value;
                let (gamma_1, beta_1) =
                    (block.ln_1.gamma.clone().unsqueeze::<2>(), block.ln_1.beta.clone().unsqueeze::<2>());
                let parts = Tensor::cat(
                    vec![
                        gamma_1.clone() * fc_out.bias.clone().div_scalar(count as f64).unsqueeze::<2>(),
                        gamma_1.clone(),
                        beta_1,
                    ],
                    0,
                );
                let value_bias = Tensor::cat(
                    vec![
                        Tensor::zeros([2, value.bias.dims()[0]], &value.bias.device()),
                        value.bias.clone().unsqueeze::<2>(),
                    ],
                    0,
                );
                LaterLayer {
                    layer: l,
                    neuron_values: value.product(neuron_outputs.clone() * gamma_1),
                    output_map: (block.attn.out.weight() * gamma_post.clone()).matmul(vision.projection.clone()),
                    shared_values: value.product(parts) + value_bias,
                }
            })
            .collect::<Vec<_>>();
        let head_directions = (form == FactorForm::PerHead && !later.is_empty())
            .then(|| per_head_directions(&later, vision.config.heads));
        Ok(Self { layer, later, heads: vision.config.heads, form, head_directions })
    }
}

/// `u_{l,h,n} = G_l[n, head h columns] @ M_l[head h rows]`, stacked as `[K, N, D]` (one
/// contiguous tensor, which the CPU kernel reads as it is); on the CPU's packed kernel where
/// there is one ([`kernels::flex_head_directions`]).
fn per_head_directions(later: &[LaterLayer], heads: usize) -> Tensor<3> {
    let pairs: Vec<_> = later.iter().map(|l| (&l.neuron_values, &l.output_map)).collect();
    if let Some(directions) = kernels::flex_head_directions(&pairs, heads) {
        return directions;
    }
    let per_layer = later
        .iter()
        .map(|l| {
            let [count, width] = l.neuron_values.dims();
            let [_, dim] = l.output_map.dims();
            let head_dim = width / heads;
            let values = l.neuron_values.clone().reshape([count, heads, head_dim]).swap_dims(0, 1); // [H, N, hd]
            values.matmul(l.output_map.clone().reshape([heads, head_dim, dim])) // [H, N, D]
        })
        .collect();
    Tensor::cat(per_layer, 0)
}

/// The per-image pieces of the factored form, read from a captured forward.
///
/// Reference: what [`SecondOrderPrsNeurons`][hook]'s hooks log (`log_post_gelu`, `log_attention_map`,
/// `log_ln_1_mean`, `log_ln_1_std`, `log_post_ln_mean`, `log_post_ln_std`) and `finalize` stacks. Differs: of each
/// attention map only the CLS row, the one the reference projects (`bnmc[:, 0]`).
///
/// [hook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_second_order_neurons_hook.py
struct ImageTerms {
    /// `s_{l,h,n}` per later layer, `[B, H, N]` (including `1 / sigma_post`).
    scalars: Vec<Tensor<3>>,
    /// `kappa`, `[B, D]`.
    kappa: Tensor<2>,
    /// `c(I) = 100 / |emb|`, `[B, 1]`.
    scale: Tensor<2>,
}

fn image_terms(vision: &VisionTransformer, factors: &LensFactors, output: &VisionOutput) -> Result<ImageTerms> {
    let captures = &output.captures;
    let layer = factors.layer;
    let missing = |what: &str| {
        Error::InvalidInput(format!("the forward did not capture {what} needed by the lens of layer {layer}"))
    };
    let neurons = captures.neurons.get(&layer).ok_or_else(|| missing("the neurons"))?.clone();
    let post = captures.ln_post.as_ref().ok_or_else(|| missing("the ln_post statistics"))?;
    let [batch, _, count] = neurons.dims();
    let embed_dim = vision.projection.dims()[1];
    let mut scalars = Vec::with_capacity(factors.later.len());
    let mut kappa = Tensor::<2>::zeros([batch, embed_dim], &neurons.device());
    for later in &factors.later {
        let attention = captures.cls_attention.get(&later.layer).ok_or_else(|| missing("the attention rows"))?.clone();
        let ln_1 = captures.ln_1.get(&later.layer).ok_or_else(|| missing("the ln_1 statistics"))?;
        // s_{l,h,n} = sum_t A[CLS,t] act_n(t) / sigma_l(t) / sigma_post: [B, H, N].
        let weighted = attention.clone() / ln_1.std.clone().unsqueeze_dim::<3>(1);
        scalars.push(weighted.matmul(neurons.clone()) / post.std.clone().unsqueeze_dim::<3>(2));
        kappa = kappa + shared_term(vision, later, attention, ln_1, post, count)?;
    }
    let scale = output.embeds.clone().square().sum_dim(1).sqrt().recip().mul_scalar(EFFECT_COEFFICIENT);
    Ok(ImageTerms { scalars, kappa, scale })
}

/// The second-order effects `[B, N, D]` of every neuron of `factors.layer`, from a forward
/// that captured `CaptureRequest::for_lens(&[layer])` (or more).
///
/// Reference: one image's `[N, D]` of `mlp_results` in [`compute_second_order_neuron_prs.py`, `main`][prs]:
/// `apply_attention_head_and_project_layer_neurons` summed over the heads of the layers after `mlp_layer`.
///
/// [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py
pub fn second_order_effects(
    vision: &VisionTransformer,
    factors: &LensFactors,
    output: &VisionOutput,
) -> Result<Tensor<3>> {
    Ok(effects_of(vision, factors, image_terms(vision, factors, output)?))
}

/// [`second_order_effects`] with each neuron's per-head scalars `c(I) s_{l,h,n}(I)` `[B, N, K]`
/// (K = later layers x heads, layer-major; `None` for the last layer, which has no later head):
/// head h of layer l carries `c(I) s_{l,h,n}(I) u_{l,h,n}` of the effect, so its part along any
/// direction r is that scalar times `u_{l,h,n} . r` ([`head_alignments`]).
///
/// Reference: each `(layer, head)` term of [`compute_second_order_neuron_prs.py`, `main`][prs]'s sum, which the
/// reference adds up and does not keep.
///
/// [prs]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_second_order_neuron_prs.py
pub fn second_order_effects_and_heads(
    vision: &VisionTransformer,
    factors: &LensFactors,
    output: &VisionOutput,
) -> Result<(Tensor<3>, Option<Tensor<3>>)> {
    let terms = image_terms(vision, factors, output)?;
    let heads = scaled_head_scalars(&terms);
    Ok((effects_of(vision, factors, terms), heads))
}

/// The per-head scalars `c(I) s_{l,h,n}(I)` `[B, N, K]` of [`second_order_effects_and_heads`]
/// alone (`None` for the last layer), from a forward's captures: the lab's heads of one image.
pub fn head_scalars(
    vision: &VisionTransformer,
    factors: &LensFactors,
    output: &VisionOutput,
) -> Result<Option<Tensor<3>>> {
    Ok(scaled_head_scalars(&image_terms(vision, factors, output)?))
}

/// `c(I) s_{l,h,n}(I)` `[B, N, K]` from an image's terms.
fn scaled_head_scalars(terms: &ImageTerms) -> Option<Tensor<3>> {
    (!terms.scalars.is_empty()).then(|| {
        let scalars = Tensor::cat(terms.scalars.clone(), 1); // [B, K, N]
        (scalars * terms.scale.clone().unsqueeze_dim::<3>(2)).swap_dims(1, 2)
    })
}

/// The effects `[B, N, D]` from an image's terms: on the CPU's per-head kernel where the
/// factors allow, else with burn's ops.
fn effects_of(vision: &VisionTransformer, factors: &LensFactors, terms: ImageTerms) -> Tensor<3> {
    if let Some((scalars, directions)) = cpu_head_terms(factors, &terms) {
        if let Some(effects) = kernels::flex_head_effects(&scalars, directions, &terms.kappa, &terms.scale) {
            return effects;
        }
    }
    effects_from_terms(vision, factors, terms)
}

/// The centred norms `|phi_n - mean_n|` `[B, N]` of [`second_order_effects`], with the means
/// `[N, D]`; on the CPU in one pass over the per-head directions, without forming the effects.
///
/// Reference: `mlp_results_norm` in [`compute_ablations.py`, `main`][ablations] (`components_centered_norm` in
/// `concept_discovery.ipynb`).
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
pub fn centred_effect_norms(
    vision: &VisionTransformer,
    factors: &LensFactors,
    output: &VisionOutput,
    mean: &Tensor<2>,
) -> Result<Tensor<2>> {
    let terms = image_terms(vision, factors, output)?;
    if let Some((scalars, directions)) = cpu_head_terms(factors, &terms) {
        if let Some(norms) = kernels::flex_head_centred_norms(&scalars, directions, &terms.kappa, &terms.scale, mean) {
            return Ok(norms);
        }
    }
    Ok(centred_norms(effects_from_terms(vision, factors, terms), mean.clone()))
}

/// The per-head form's scalars `[B, K, N]` and directions `[K, N, D]` for the CPU kernels
/// (`kernels::effects`), when the factors are per head and on flex (elsewhere nothing is
/// concatenated for them).
fn cpu_head_terms<'a>(factors: &'a LensFactors, terms: &ImageTerms) -> Option<(Tensor<3>, &'a Tensor<3>)> {
    let directions = factors.head_directions.as_ref().filter(|d| kernels::on_flex(*d))?;
    Some((Tensor::cat(terms.scalars.clone(), 1), directions))
}

/// The centred norms `|phi_n - mean_n|`, `[B, N]`, of effects `[B, N, D]` with means `[N, D]`.
fn centred_norms(effects: Tensor<3>, mean: Tensor<2>) -> Tensor<2> {
    (effects - mean.unsqueeze::<3>()).square().sum_dim(2).sqrt().squeeze_dim::<2>(2)
}

/// The effects `[B, N, D]` from an image's terms with burn's ops (any device).
fn effects_from_terms(vision: &VisionTransformer, factors: &LensFactors, terms: ImageTerms) -> Tensor<3> {
    let [batch, embed_dim] = terms.kappa.dims();
    let mut total = terms.kappa.unsqueeze_dim::<3>(1);
    if factors.form == FactorForm::PerHead {
        if let Some(directions) = &factors.head_directions {
            // [N, B, K] x [N, K, D] -> [N, B, D]: one small product per neuron.
            let scalars = Tensor::cat(terms.scalars, 1).permute([2, 0, 1]);
            total = total + scalars.matmul(directions.clone().swap_dims(0, 1)).swap_dims(0, 1);
        }
        return total * terms.scale.unsqueeze_dim::<3>(2);
    }
    let width = vision.config.width;
    let heads = vision.config.heads;
    for (later, scalars) in factors.later.iter().zip(terms.scalars) {
        let [_, _, count] = scalars.dims();
        // Expand each head's scalar over its head_dim columns: [B, N, width].
        let expanded = scalars
            .swap_dims(1, 2)
            .unsqueeze_dim::<4>(3)
            .expand([batch, count, heads, width / heads])
            .reshape([batch, count, width]);
        let contribution = (expanded * later.neuron_values.clone().unsqueeze::<3>())
            .reshape([batch * count, width])
            .matmul(later.output_map.clone());
        total = total + contribution.reshape([batch, count, embed_dim]);
    }
    total * terms.scale.unsqueeze_dim::<3>(2)
}

/// What the cheap projection needs besides the per-image scalars: `u_{l,h,n} . r_n` for every
/// later layer and head, `r_n` itself (for `kappa . r_n`) and `mean_n . r_n`.
pub struct ProjectionFactors {
    /// `u_{l,h,n} . r_n` per later layer, `[H, N]`.
    head_alignment: Vec<Tensor<2>>,
    /// `r_n`, `[N, D]`.
    directions: Tensor<2>,
    /// `mean_n . r_n`, `[1, N]`.
    mean_alignment: Tensor<2>,
}

impl ProjectionFactors {
    /// Precomputes the scalars for directions `r` and means (both `[N, D]`).
    pub fn new(vision: &VisionTransformer, factors: &LensFactors, directions: Tensor<2>, mean: Tensor<2>) -> Self {
        let [count, _] = directions.dims();
        let head_alignment = factors.later.iter().map(|later| later_alignment(vision, later, &directions, 0)).collect();
        let mean_alignment = (mean * directions.clone()).sum_dim(1).reshape([1, count]);
        Self { head_alignment, directions, mean_alignment }
    }
}

/// `u_{l,h,n} . r_n` for every later layer and head, `[K, M]` (K = later layers x heads,
/// layer-major), for the directions `r` `[M, D]` of neurons `first..first + M`; `None` for the
/// last layer (no later head).
pub fn head_alignments(
    vision: &VisionTransformer,
    factors: &LensFactors,
    directions: &Tensor<2>,
    first: usize,
) -> Option<Tensor<2>> {
    let per_layer: Vec<_> =
        factors.later.iter().map(|later| later_alignment(vision, later, directions, first)).collect();
    (!per_layer.is_empty()).then(|| Tensor::cat(per_layer, 0))
}

/// `u_{l,h,n} . r_n = sum_{j in head h} G_l[n, j] (M_l r_n)_j` for one later layer and the
/// neurons `first..first + M` of directions `[M, D]`, `[H, M]`: one `[M, D] x [D, width]`
/// product, without the per-head directions.
fn later_alignment(vision: &VisionTransformer, later: &LaterLayer, directions: &Tensor<2>, first: usize) -> Tensor<2> {
    let [count, _] = directions.dims();
    let (heads, width) = (vision.config.heads, vision.config.width);
    let mapped = directions.clone().matmul(later.output_map.clone().transpose()); // [M, width]
    let values = later.neuron_values.clone().narrow(0, first, count);
    (values * mapped).reshape([count, heads, width / heads]).sum_dim(2).reshape([count, heads]).transpose()
}

/// The coefficient of each centred effect along its direction, `x_n = (phi_n - mean_n) . r_n`,
/// `[B, N]`, without forming `phi`: `c(I) (sum_{l,h} s_{l,h,n} (u_{l,h,n} . r_n) + kappa . r_n)
/// - mean_n . r_n`, O(layers x heads x tokens x neurons) per image.
///
/// Reference: `np.einsum("nd,nd->n", mlp_results_mean_ablated[batch], pcas)` of `representation_pc` in
/// [`compute_ablations.py`, `main`][ablations], here without forming the effects.
///
/// [ablations]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_ablations.py
pub fn projections(
    vision: &VisionTransformer,
    factors: &LensFactors,
    projection: &ProjectionFactors,
    output: &VisionOutput,
) -> Result<Tensor<2>> {
    let terms = image_terms(vision, factors, output)?;
    let mut total = terms.kappa.matmul(projection.directions.clone().transpose()); // [B, N]
    for (scalars, alignment) in terms.scalars.into_iter().zip(&projection.head_alignment) {
        total = total + (scalars * alignment.clone().unsqueeze::<3>()).sum_dim(1).squeeze_dim::<2>(1);
    }
    Ok(total * terms.scale - projection.mean_alignment.clone())
}

/// kappa's part from later layer `l`, summed over its heads: `[B, D]`, before the `c(I)` scale.
///
/// Each token's input to the value map is
/// `y0(t) = gamma_1 ⊙ (b_out / N - mu(t) / K) / sigma(t) + beta_1 / K` (`K` = `(1 + 2l) N` residual components), and of the value map's bias only
/// `b_V / K` is kept: `v0(t) = y0(t) W_V + b_V / K`. That is three fixed rows
/// ([`LaterLayer::shared_values`]) weighted by `1 / sigma(t)`, `-mu(t) / (K sigma(t))` and
/// `1 / K`, so a head's mix `sum_t A[CLS, t] v0(t)` is those rows weighted by the attention
/// row's sums of the same weights: `O(H T)` per image instead of a `[T, width] x
/// [width, width]` product.
///
/// Reference: the `/ normalization_term` shares in [`SecondOrderPrsNeurons`][hook]'s
/// `normalize_before_attention_per_neuron` (`ln_1` mean and bias), `apply_attention_matrix_per_neuron` (`v_bias`,
/// `out_proj.bias`) and `project_attentions_to_output_per_neuron` (`post_ln_mean`, `ln_post.bias`).
///
/// [hook]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/prs_second_order_neurons_hook.py
fn shared_term(
    vision: &VisionTransformer,
    later: &LaterLayer,
    attention: Tensor<3>,
    ln_1: &LayerNormStats,
    post: &LayerNormStats,
    count: usize,
) -> Result<Tensor<2>> {
    let l = later.layer;
    let block = &vision.blocks[l];
    let [batch, heads, _] = attention.dims();
    let width = vision.config.width;
    let head_dim = width / heads;
    let layers = vision.blocks.len() as f64;
    let n = count as f64;
    let components = (1 + 2 * l) as f64 * n; // K
    let post_components = (1 + 2 * l) as f64 * (1.0 + 2.0 * layers) * heads as f64 * n; // K'
    let inverse_std = ln_1.std.clone().recip(); // [B, T]
                                                // sum_t A[CLS, t] w(t) per head, [B, H, 1]:
    let attended = |w: Tensor<2>| (attention.clone() * w.unsqueeze_dim::<3>(1)).sum_dim(2);
    let by_bias = attended(inverse_std.clone());
    let by_gamma = attended(ln_1.mean.clone() * inverse_std).div_scalar(-components);
    let by_constant = attention.clone().sum_dim(2).div_scalar(components);
    let row = |i: usize| later.shared_values.clone().narrow(0, i, 1).reshape([1, heads, head_dim]);
    let mixed = (by_bias * row(0) + by_gamma * row(1) + by_constant * row(2)).reshape([batch, width]);
    let out = &block.attn.out;
    let o0 = out.forward(mixed.unsqueeze_dim::<3>(1)).reshape([batch, width])
        - out.bias.clone().mul_scalar(1.0 - 1.0 / components).unsqueeze::<2>();
    let gamma_post = vision.ln_post.gamma.clone().unsqueeze::<2>();
    let beta_post = vision.ln_post.beta.clone().unsqueeze::<2>();
    let h = heads as f64;
    let centred = o0 - post.mean.clone().mul_scalar(h / post_components);
    let normalised = centred / post.std.clone() * gamma_post + beta_post.mul_scalar(h / post_components);
    Ok(normalised.matmul(vision.projection.clone()))
}
