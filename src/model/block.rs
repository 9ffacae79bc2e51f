//! The pieces of a pre-LN transformer block, with optional captures for the lens.

use burn::tensor::activation::{gelu, sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::Loader;
use crate::config::Activation;
use crate::error::Result;
use crate::kernels::{self, Epilogue, PackedLinear};
use crate::weights::{Layout, Tower};

/// `y = x @ weight + bias`, weight `[in, out]`.
pub struct Linear {
    weights: LinearWeights,
    /// `[out]`.
    pub bias: Tensor<1>,
}

/// Where a linear layer's weight lives (one per layer: the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum LinearWeights {
    /// A device tensor `[in, out]`, multiplied by burn's `matmul`.
    Tensor(Tensor<2>),
    /// On the CPU with a vector kernel: packed once for it ([`PackedLinear`], bias included).
    Packed(Box<PackedLinear>),
}

impl Linear {
    /// The layer with `weight` `[in, out]` and `bias` `[out]` (row-major host values) on
    /// `device`: packed for the CPU kernel where there is one, else as tensors.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, in_features: usize, out_features: usize, device: &Device) -> Self {
        let weights = if kernels::packs_weights(device) {
            LinearWeights::Packed(Box::new(PackedLinear::new(&weight, &bias, in_features, out_features)))
        } else {
            LinearWeights::Tensor(Tensor::from_data(TensorData::new(weight, [in_features, out_features]), device))
        };
        let bias = Tensor::from_data(TensorData::new(bias, [out_features]), device);
        Self { weights, bias }
    }

    /// The weight `[in, out]` (a new tensor where it is packed: the lens reads it once per
    /// bundle).
    pub fn weight(&self) -> Tensor<2> {
        match &self.weights {
            LinearWeights::Tensor(weight) => weight.clone(),
            LinearWeights::Packed(packed) => {
                let shape = [packed.in_features(), packed.out_features()];
                Tensor::from_data(TensorData::new(packed.weight(), shape), &self.bias.device())
            }
        }
    }

    /// `x @ weight` without the bias, for `x` `[M, in]` (the lens's factors; on the packed
    /// kernel where the weight is packed).
    pub fn product(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.weights {
            LinearWeights::Packed(packed) => {
                kernels::map_rows(x, packed.out_features(), |values, rows| packed.product(values, rows))
                    .unwrap_or_else(|x| x.matmul(self.weight()))
            }
            LinearWeights::Tensor(weight) => x.matmul(weight.clone()),
        }
    }

    /// Applies the layer to the last axis of `[B, T, in]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, Epilogue::None)
    }

    /// The layer, then `epilogue` (fused into the CPU kernel where the weight is packed).
    pub fn forward_with(&self, x: Tensor<3>, epilogue: Epilogue) -> Tensor<3> {
        let [batch, tokens, features] = x.dims();
        let x = x.reshape([batch * tokens, features]);
        let y = match &self.weights {
            LinearWeights::Packed(packed) => {
                let out = packed.out_features();
                kernels::map_rows(x, out, |values, rows| packed.forward_with(values, rows, epilogue))
                    .unwrap_or_else(|x| apply(self.matmul(x), epilogue))
            }
            LinearWeights::Tensor(_) => apply(self.matmul(x), epilogue),
        };
        let out = y.dims()[1];
        y.reshape([batch, tokens, out])
    }

    /// `x @ weight + bias` with burn's ops.
    fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight()) + self.bias.clone().unsqueeze::<2>()
    }
}

/// `epilogue` with burn's ops.
fn apply<const D: usize>(y: Tensor<D>, epilogue: Epilogue) -> Tensor<D> {
    match epilogue {
        Epilogue::None => y,
        Epilogue::QuickGelu => quick_gelu(y),
    }
}

/// CLIP's QuickGELU, `x * sigmoid(1.702 x)`.
fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x.mul_scalar(1.702))
}

/// LayerNorm over the last axis.
pub struct LayerNorm {
    /// Scale.
    pub gamma: Tensor<1>,
    /// Shift.
    pub beta: Tensor<1>,
    /// Added to the variance.
    pub eps: f64,
}

/// The statistics a LayerNorm used: mean and `sqrt(var + eps)` per row, shaped `[B, T]`.
#[derive(Clone)]
pub struct LayerNormStats {
    /// Mean over the features.
    pub mean: Tensor<2>,
    /// `sqrt(biased variance + eps)`.
    pub std: Tensor<2>,
}

impl LayerNorm {
    /// Normalises `[B, T, W]` and returns the statistics it used.
    pub fn forward_with_stats(&self, x: Tensor<3>) -> (Tensor<3>, LayerNormStats) {
        let [batch, tokens, _] = x.dims();
        let mean = x.clone().mean_dim(2);
        let centred = x - mean.clone();
        let std = centred.clone().square().mean_dim(2).add_scalar(self.eps).sqrt();
        let y = centred / std.clone() * self.gamma.clone().unsqueeze::<3>() + self.beta.clone().unsqueeze::<3>();
        let stats = LayerNormStats { mean: mean.reshape([batch, tokens]), std: std.reshape([batch, tokens]) };
        (y, stats)
    }

    /// Normalises `[B, T, W]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with_stats(x).0
    }
}

/// Multi-head self-attention with separate query, key and value maps.
pub struct Attention {
    /// Query map.
    pub query: Linear,
    /// Key map.
    pub key: Linear,
    /// Value map (the lens reads its per-head rows).
    pub value: Linear,
    /// Output map (the lens reads its per-head columns).
    pub out: Linear,
    /// Number of heads.
    pub heads: usize,
}

impl Attention {
    /// Attention of `queries` `[B, Q, W]` over the tokens of `context` `[B, T, W]` (the same
    /// tensor, or its first Q rows: each query row is the token of the same index); `mask`
    /// `[T, T]` is added to the scores. Returns the output `[B, Q, W]` and the attention
    /// probabilities `[B, H, Q, T]`.
    pub fn forward(&self, queries: Tensor<3>, context: Tensor<3>, mask: Option<&Tensor<2>>) -> (Tensor<3>, Tensor<4>) {
        let q = self.query.forward(queries);
        let (k, v) = (self.key.forward(context.clone()), self.value.forward(context));
        let (mixed, probs) = self.mix(q, k, v, mask);
        (self.out.forward(mixed), probs)
    }

    /// The heads' attention proper, from the projected queries `[B, Q, W]`, keys and values
    /// `[B, T, W]`: the mixed values `[B, Q, W]` (heads side by side, before the output map)
    /// and the probabilities `[B, H, Q, T]`.
    pub fn mix(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, mask: Option<&Tensor<2>>) -> (Tensor<3>, Tensor<4>) {
        let [batch, rows, width] = q.dims();
        let tokens = k.dims()[1];
        let head_dim = width / self.heads;
        if let Some(on_cpu) = kernels::flex_attention(&q, &k, &v, mask, self.heads) {
            return on_cpu;
        }
        let split = |t: Tensor<3>, n: usize| t.reshape([batch, n, self.heads, head_dim]).swap_dims(1, 2);
        let (q, k, v) = (split(q, rows), split(k, tokens), split(v, tokens));
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (head_dim as f64).sqrt());
        if let Some(mask) = mask {
            scores = scores + mask.clone().narrow(0, 0, rows).unsqueeze::<4>();
        }
        let probs = softmax(scores, 3);
        let mixed = probs.clone().matmul(v).swap_dims(1, 2).reshape([batch, rows, width]);
        (mixed, probs)
    }
}

/// The MLP: `c_fc -> activation -> c_proj`.
pub struct Mlp {
    /// `c_fc` / `fc1`: width -> neurons.
    pub fc_in: Linear,
    /// `c_proj` / `fc2`: neurons -> width. Column n of its PyTorch weight is neuron n's
    /// output direction `w_n`, here row n of `fc_out.weight`.
    pub fc_out: Linear,
    /// Nonlinearity.
    pub activation: Activation,
}

impl Mlp {
    /// The post-activation values ("neurons") `[B, T, N]`.
    pub fn neurons(&self, x: Tensor<3>) -> Tensor<3> {
        match self.activation {
            Activation::QuickGelu => self.fc_in.forward_with(x, Epilogue::QuickGelu),
            Activation::Gelu => gelu(self.fc_in.forward(x)),
        }
    }
}

/// What a block keeps for the lens when asked.
#[derive(Default)]
pub struct BlockCaptures {
    /// Post-activation MLP values `[B, T, N]`.
    pub neurons: Option<Tensor<3>>,
    /// The CLS row of the attention probabilities `[B, H, T]`.
    pub cls_attention: Option<Tensor<3>>,
    /// `ln_1` statistics `[B, T]`.
    pub ln_1: Option<LayerNormStats>,
}

/// The numbers that size a block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockShape {
    pub width: usize,
    pub heads: usize,
    pub mlp_width: usize,
    pub eps: f64,
    pub activation: Activation,
}

impl BlockShape {
    pub fn new(width: usize, heads: usize, mlp_width: usize, eps: f64, activation: Activation) -> Self {
        Self { width, heads, mlp_width, eps, activation }
    }
}

/// One pre-LN residual block: `x += attn(ln_1 x); x += mlp(ln_2 x)`.
pub struct ResidualBlock {
    /// Before attention.
    pub ln_1: LayerNorm,
    /// Self-attention.
    pub attn: Attention,
    /// Before the MLP.
    pub ln_2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
}

/// What a block's forward keeps of its intermediate values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    /// The post-activation MLP values (the neurons).
    pub neurons: bool,
    /// What the lens needs of a later block: the CLS attention row and the `ln_1` statistics.
    pub lens: bool,
}

impl Keep {
    /// Nothing: the output alone.
    pub const NOTHING: Keep = Keep { neurons: false, lens: false };
}

impl ResidualBlock {
    /// Runs the block, keeping what `keep` asks for.
    pub fn forward(&self, x: Tensor<3>, mask: Option<&Tensor<2>>, keep: Keep) -> (Tensor<3>, BlockCaptures) {
        let tokens = x.dims()[1];
        self.forward_rows(x, tokens, mask, keep)
    }

    /// The block's output for the first `rows` tokens only, `[B, rows, W]`: every token still
    /// serves as a key and a value, and the `ln_1` statistics and the CLS attention row cover
    /// them all, but the queries, the attention output and the MLP run on those rows alone.
    /// The image tower's last block needs only CLS (`rows = 1`): ~80% of its work is saved.
    /// Kept neurons, when asked, are those rows'.
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        rows: usize,
        mask: Option<&Tensor<2>>,
        keep: Keep,
    ) -> (Tensor<3>, BlockCaptures) {
        let [batch, tokens, _] = x.dims();
        let first_rows = |t: Tensor<3>| if rows == tokens { t } else { t.narrow(1, 0, rows) };
        let (normed, ln_1) = self.ln_1.forward_with_stats(x.clone());
        let (attended, probs) = self.attn.forward(first_rows(normed.clone()), normed, mask);
        let x = first_rows(x) + attended;
        let neurons = self.mlp.neurons(self.ln_2.forward(x.clone()));
        let x = x + self.mlp.fc_out.forward(neurons.clone());
        let heads = self.attn.heads;
        let captures = BlockCaptures {
            neurons: keep.neurons.then_some(neurons),
            cls_attention: keep.lens.then(|| probs.narrow(2, 0, 1).reshape([batch, heads, tokens])),
            ln_1: keep.lens.then_some(ln_1),
        };
        (x, captures)
    }

    /// Loads block `layer` of `tower`.
    /// Loads a tower's `layers` blocks, all of one shape.
    pub(crate) fn load_tower(loader: &Loader, tower: Tower, layers: usize, shape: BlockShape) -> Result<Vec<Self>> {
        (0..layers).map(|layer| Self::load(loader, tower, layer, &shape)).collect()
    }

    fn load(loader: &Loader, tower: Tower, layer: usize, shape: &BlockShape) -> Result<Self> {
        let BlockShape { width, heads, mlp_width, eps, activation } = *shape;
        let prefix = |module: &str| loader.layout.layer_module(tower, layer, module);
        let [query, key, value] = load_qkv(loader, tower, layer, width)?;
        Ok(Self {
            ln_1: loader.layer_norm(&prefix("ln_1"), width, eps)?,
            attn: Attention { query, key, value, out: loader.linear(&prefix("attn_out"), width, width)?, heads },
            ln_2: loader.layer_norm(&prefix("ln_2"), width, eps)?,
            mlp: Mlp {
                fc_in: loader.linear(&prefix("mlp_in"), width, mlp_width)?,
                fc_out: loader.linear(&prefix("mlp_out"), mlp_width, width)?,
                activation,
            },
        })
    }
}

/// Query, key and value maps: split from OpenAI's packed `in_proj`, or Hugging Face's three.
fn load_qkv(loader: &Loader, tower: Tower, layer: usize, width: usize) -> Result<[Linear; 3]> {
    let block = loader.layout.block_prefix(tower, layer);
    match loader.layout {
        Layout::OpenAi => {
            let weight = loader.file.tensor(&format!("{block}attn.in_proj_weight"), &[3 * width, width])?;
            let bias = loader.file.tensor(&format!("{block}attn.in_proj_bias"), &[3 * width])?;
            let part = |i: usize| {
                let rows = &weight[i * width * width..(i + 1) * width * width];
                Linear::new(
                    super::transpose(rows, width, width),
                    bias[i * width..(i + 1) * width].to_vec(),
                    width,
                    width,
                    loader.device,
                )
            };
            Ok([part(0), part(1), part(2)])
        }
        Layout::HuggingFace => {
            let part = |p: &str| loader.linear(&format!("{block}self_attn.{p}_proj"), width, width);
            Ok([part("q")?, part("k")?, part("v")?])
        }
    }
}
