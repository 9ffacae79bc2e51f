//! Model configuration: from a Hugging Face `config.json`, an open_clip model JSON
//! (`model_configs/ViT-H-14.json`), or inferred from the tensor shapes of one of OpenAI's
//! released checkpoints. What the shapes cannot decide (the head count of another width, the
//! activation of another checkpoint) is refused, not guessed.

mod open_clip;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::weights::{Layout, Tower, WeightFile};

/// The MLP nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: what OpenAI trained CLIP with.
    QuickGelu,
    /// The exact (erf) GELU, used by some later CLIP-architecture checkpoints.
    Gelu,
}

impl Activation {
    /// The name in a Hugging Face `config.json` (`hidden_act`).
    fn from_name(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(Error::Config(format!("unsupported hidden_act `{other}` (expected quick_gelu or gelu)"))),
        }
    }
}

/// The image tower's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// Residual width.
    pub width: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// MLP neurons per block.
    pub mlp_width: usize,
    /// Input resolution in pixels (square).
    pub image_size: usize,
    /// Patch size in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// MLP nonlinearity.
    pub activation: Activation,
}

impl VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Tokens: one CLS token plus one per patch.
    pub fn tokens(&self) -> usize {
        1 + self.grid() * self.grid()
    }
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// The text tower's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    /// Residual width.
    pub width: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// MLP neurons per block.
    pub mlp_width: usize,
    /// Context length (77 for CLIP).
    pub context_length: usize,
    /// Vocabulary size (49408 for CLIP).
    pub vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// MLP nonlinearity.
    pub activation: Activation,
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// A whole CLIP model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// The image tower.
    pub vision: VisionConfig,
    /// The text tower.
    pub text: TextConfig,
    /// Dimension of the joint embedding space.
    pub embed_dim: usize,
}

/// OpenAI's convention: every head is 64 wide.
const OPENAI_HEAD_WIDTH: usize = 64;

/// The tower widths of OpenAI's released ViT checkpoints (B/32, B/16, L/14: images 768 and
/// 1024 wide, text 512 and 768), the only ones whose head count the shapes decide (64-wide
/// heads). Other checkpoints (open_clip's ViT-H-14 has 16 heads of 80) need their
/// configuration.
const OPENAI_WIDTHS: [usize; 3] = [512, 768, 1024];

/// The head count of a tower of `width` inferred from shapes alone, or why it cannot be.
fn openai_heads(tower: &str, width: usize) -> Result<usize> {
    if OPENAI_WIDTHS.contains(&width) {
        return Ok(width / OPENAI_HEAD_WIDTH);
    }
    Err(Error::Config(format!(
        "the {tower} tower is {width} wide, not one of OpenAI's checkpoints (widths {OPENAI_WIDTHS:?}): its number \
         of attention heads cannot be told from the tensors; give the model's configuration (Hugging Face \
         config.json or open_clip model JSON)"
    )))
}

#[derive(Deserialize)]
struct HfVision {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_attention_heads: Option<usize>,
    num_hidden_layers: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

#[derive(Deserialize)]
struct HfText {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_attention_heads: Option<usize>,
    num_hidden_layers: Option<usize>,
    max_position_embeddings: Option<usize>,
    vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

#[derive(Deserialize)]
struct HfClip {
    projection_dim: Option<usize>,
    vision_config: Option<HfVision>,
    text_config: Option<HfText>,
}

impl ClipConfig {
    /// OpenAI CLIP ViT-B/32.
    pub fn vit_b_32() -> Self {
        Self::openai(768, 12, 32, 224, 512, 12, 512)
    }
    /// OpenAI CLIP ViT-B/16.
    pub fn vit_b_16() -> Self {
        Self::openai(768, 12, 16, 224, 512, 12, 512)
    }
    /// OpenAI CLIP ViT-L/14 (224 px).
    pub fn vit_l_14() -> Self {
        Self::openai(1024, 24, 14, 224, 768, 12, 768)
    }

    fn openai(
        width: usize,
        layers: usize,
        patch_size: usize,
        image_size: usize,
        text_width: usize,
        text_layers: usize,
        embed_dim: usize,
    ) -> Self {
        ClipConfig {
            vision: VisionConfig {
                width,
                layers,
                heads: width / OPENAI_HEAD_WIDTH,
                mlp_width: 4 * width,
                image_size,
                patch_size,
                layer_norm_eps: 1e-5,
                activation: Activation::QuickGelu,
            },
            text: TextConfig {
                width: text_width,
                layers: text_layers,
                heads: text_width / OPENAI_HEAD_WIDTH,
                mlp_width: 4 * text_width,
                context_length: 77,
                vocab_size: 49408,
                layer_norm_eps: 1e-5,
                activation: Activation::QuickGelu,
            },
            embed_dim,
        }
    }

    /// Parses a model configuration: a Hugging Face `config.json` or an open_clip model JSON
    /// (told apart by its `vision_cfg` key).
    pub fn from_json(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("configuration JSON: {e}")))?;
        if value.get("vision_cfg").is_some() {
            open_clip::from_json_value(value)
        } else {
            Self::from_hf_json(json)
        }
    }

    /// Parses a Hugging Face `CLIPConfig` `config.json`. Absent keys take transformers' defaults
    /// (which are ViT-B/32's).
    pub fn from_hf_json(json: &str) -> Result<Self> {
        let hf: HfClip = serde_json::from_str(json).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        let defaults = Self::vit_b_32();
        let v = hf.vision_config.unwrap_or_else(|| serde_json::from_str("{}").unwrap());
        let t = hf.text_config.unwrap_or_else(|| serde_json::from_str("{}").unwrap());
        let config = ClipConfig {
            vision: VisionConfig {
                width: v.hidden_size.unwrap_or(defaults.vision.width),
                layers: v.num_hidden_layers.unwrap_or(defaults.vision.layers),
                heads: v.num_attention_heads.unwrap_or(defaults.vision.heads),
                mlp_width: v.intermediate_size.unwrap_or(defaults.vision.mlp_width),
                image_size: v.image_size.unwrap_or(defaults.vision.image_size),
                patch_size: v.patch_size.unwrap_or(defaults.vision.patch_size),
                layer_norm_eps: v.layer_norm_eps.unwrap_or(1e-5),
                activation: Activation::from_name(v.hidden_act.as_deref().unwrap_or("quick_gelu"))?,
            },
            text: TextConfig {
                width: t.hidden_size.unwrap_or(defaults.text.width),
                layers: t.num_hidden_layers.unwrap_or(defaults.text.layers),
                heads: t.num_attention_heads.unwrap_or(defaults.text.heads),
                mlp_width: t.intermediate_size.unwrap_or(defaults.text.mlp_width),
                context_length: t.max_position_embeddings.unwrap_or(defaults.text.context_length),
                vocab_size: t.vocab_size.unwrap_or(defaults.text.vocab_size),
                layer_norm_eps: t.layer_norm_eps.unwrap_or(1e-5),
                activation: Activation::from_name(t.hidden_act.as_deref().unwrap_or("quick_gelu"))?,
            },
            embed_dim: hf.projection_dim.unwrap_or(defaults.embed_dim),
        };
        config.validate()?;
        Ok(config)
    }

    /// Infers the configuration from the tensor shapes of one of OpenAI's checkpoints (the
    /// OpenAI layout, widths of B/32, B/16 or L/14; heads 64 wide, QuickGELU, LayerNorm eps
    /// 1e-5). Towers absent from the file keep ViT-B/32's values. Anything else is refused: a
    /// Hugging Face checkpoint comes with its `config.json`, and other widths or activations
    /// (open_clip's GELU models) cannot be told from shapes.
    pub fn infer(weights: &WeightFile) -> Result<Self> {
        let layout = weights.layout()?;
        if layout == Layout::HuggingFace {
            return Err(Error::Config(
                "a Hugging Face checkpoint's shapes do not tell its activation (OpenAI's use QuickGELU, LAION's GELU): \
                 give its config.json"
                    .into(),
            ));
        }
        let mut config = Self::vit_b_32();
        let dim = |name: &str, axis: usize| -> Result<usize> {
            let shape = weights
                .shape(name)
                .ok_or_else(|| Error::MissingTensor { name: name.to_string(), layout: layout.to_string() })?;
            shape.get(axis).copied().ok_or_else(|| Error::Config(format!("tensor `{name}` has shape {shape:?}")))
        };
        let names = layout.names();
        if weights.has_vision() {
            let v = &mut config.vision;
            v.width = dim(names.vision_class_embedding, 0)?;
            v.patch_size = dim(names.vision_patch_embedding, 2)?;
            let tokens = dim(names.vision_positional_embedding, 0)?;
            let grid = (tokens.saturating_sub(1) as f64).sqrt().round() as usize;
            if grid * grid + 1 != tokens {
                return Err(Error::Config(format!("{tokens} vision positions is not 1 + a square number of patches")));
            }
            v.image_size = grid * v.patch_size;
            v.layers = weights.count_layers(names.vision_layer_prefix);
            v.heads = openai_heads("image", v.width)?;
            v.mlp_width = dim(&layout.layer_tensor(Tower::Vision, 0, "mlp_in.weight"), 0)?;
            config.embed_dim = match layout {
                Layout::OpenAi => dim(names.vision_projection, 1)?,
                Layout::HuggingFace => dim(names.vision_projection, 0)?,
            };
        }
        if weights.has_text() {
            let t = &mut config.text;
            t.vocab_size = dim(names.text_token_embedding, 0)?;
            t.width = dim(names.text_token_embedding, 1)?;
            t.context_length = dim(names.text_positional_embedding, 0)?;
            t.layers = weights.count_layers(names.text_layer_prefix);
            t.heads = openai_heads("text", t.width)?;
            t.mlp_width = dim(&layout.layer_tensor(Tower::Text, 0, "mlp_in.weight"), 0)?;
            config.embed_dim = match layout {
                Layout::OpenAi => dim(names.text_projection, 1)?,
                Layout::HuggingFace => dim(names.text_projection, 0)?,
            };
        }
        config.validate()?;
        Ok(config)
    }

    /// The configuration for a weight file on disk: `explicit` (a Hugging Face `config.json`
    /// or an open_clip model JSON) if given, else the `config.json` beside the weights if there
    /// is one, else inferred from the shapes.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn resolve(
        weights: &WeightFile,
        weights_path: &std::path::Path,
        explicit: Option<&std::path::Path>,
    ) -> Result<Self> {
        let beside = weights_path.parent().map(|dir| dir.join("config.json")).filter(|p| p.is_file());
        match explicit.map(std::path::Path::to_path_buf).or(beside) {
            Some(path) => {
                let json = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                Self::from_json(&json).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
            }
            None => Self::infer(weights),
        }
    }

    /// This configuration as a Hugging Face `CLIPConfig` JSON object (what
    /// [`ClipConfig::from_hf_json`] reads back).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let act = |a: Activation| if a == Activation::QuickGelu { "quick_gelu" } else { "gelu" };
        let (v, t) = (&self.vision, &self.text);
        serde_json::json!({
            "model_type": "clip",
            "projection_dim": self.embed_dim,
            "vision_config": {
                "hidden_size": v.width, "intermediate_size": v.mlp_width, "num_attention_heads": v.heads,
                "num_hidden_layers": v.layers, "image_size": v.image_size, "patch_size": v.patch_size,
                "layer_norm_eps": v.layer_norm_eps, "hidden_act": act(v.activation)
            },
            "text_config": {
                "hidden_size": t.width, "intermediate_size": t.mlp_width, "num_attention_heads": t.heads,
                "num_hidden_layers": t.layers, "max_position_embeddings": t.context_length, "vocab_size": t.vocab_size,
                "layer_norm_eps": t.layer_norm_eps, "hidden_act": act(t.activation)
            }
        })
    }

    /// Checks that the numbers are consistent (heads divide widths, patches tile the image).
    pub fn validate(&self) -> Result<()> {
        let v = &self.vision;
        let t = &self.text;
        let checks = [
            (
                v.heads > 0 && v.width.is_multiple_of(v.heads),
                format!("vision width {} is not divisible by {} heads", v.width, v.heads),
            ),
            (
                v.patch_size > 0 && v.image_size.is_multiple_of(v.patch_size),
                format!("image size {} is not a multiple of patch size {}", v.image_size, v.patch_size),
            ),
            (
                t.heads > 0 && t.width.is_multiple_of(t.heads),
                format!("text width {} is not divisible by {} heads", t.width, t.heads),
            ),
            (v.layers > 0 && t.layers > 0, "a tower has no layers".to_string()),
            (self.embed_dim > 0 && t.context_length > 1, "embedding dimension or context length is zero".to_string()),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(Error::Config(message)),
            None => Ok(()),
        }
    }
}
