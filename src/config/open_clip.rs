//! open_clip's model JSON (`open_clip/model_configs/*.json`, e.g. `ViT-H-14.json`): the
//! `vision_cfg` and `text_cfg` of open_clip's `CLIPVisionCfg` and `CLIPTextCfg`, with their
//! defaults for absent keys. Features this crate's towers do not have (layer scale, attentional
//! pooling, timm or Hugging Face text towers, ...) are refused by name.

use serde::Deserialize;
use serde_json::Value;

use super::{Activation, ClipConfig, TextConfig, VisionConfig};
use crate::error::{Error, Result};

/// `CLIPVisionCfg` (open_clip/model.py), the keys this crate reads.
#[derive(Deserialize)]
#[serde(default)]
struct VisionCfg {
    layers: Value,
    width: usize,
    head_width: usize,
    mlp_ratio: f64,
    patch_size: usize,
    image_size: Value,
}

impl Default for VisionCfg {
    fn default() -> Self {
        VisionCfg {
            layers: Value::from(12),
            width: 768,
            head_width: 64,
            mlp_ratio: 4.0,
            patch_size: 16,
            image_size: Value::from(224),
        }
    }
}

/// `CLIPTextCfg` (open_clip/model.py), the keys this crate reads.
#[derive(Deserialize)]
#[serde(default)]
struct TextCfg {
    context_length: usize,
    vocab_size: usize,
    width: usize,
    heads: usize,
    layers: usize,
    mlp_ratio: f64,
}

impl Default for TextCfg {
    fn default() -> Self {
        TextCfg { context_length: 77, vocab_size: 49408, width: 512, heads: 8, layers: 12, mlp_ratio: 4.0 }
    }
}

#[derive(Deserialize)]
struct ModelCfg {
    embed_dim: usize,
    #[serde(default)]
    quick_gelu: bool,
    vision_cfg: VisionCfg,
    #[serde(default)]
    text_cfg: TextCfg,
}

/// Keys whose presence with a value other than open_clip's default means an architecture this
/// crate does not build, with that default (`null` for "absent").
const UNSUPPORTED: [(&str, &str, &str); 12] = [
    ("vision_cfg", "timm_model_name", "null"),
    ("vision_cfg", "ls_init_value", "null"),
    ("vision_cfg", "attentional_pool", "false"),
    ("vision_cfg", "no_ln_pre", "false"),
    ("vision_cfg", "final_ln_after_pool", "false"),
    ("vision_cfg", "pool_type", "\"tok\""),
    ("vision_cfg", "pos_embed_type", "\"learnable\""),
    ("text_cfg", "hf_model_name", "null"),
    ("text_cfg", "ls_init_value", "null"),
    ("text_cfg", "embed_cls", "false"),
    ("text_cfg", "pool_type", "\"argmax\""),
    ("text_cfg", "proj_bias", "false"),
];

/// Refuses a model JSON that uses a feature of [`UNSUPPORTED`], naming it.
fn check_supported(value: &Value) -> Result<()> {
    for (section, key, default) in UNSUPPORTED {
        let Some(found) = value.get(section).and_then(|cfg| cfg.get(key)) else { continue };
        let default: Value = serde_json::from_str(default).expect("the defaults are JSON");
        if *found != default {
            return Err(Error::Config(format!(
                "open_clip model JSON: {section}.{key} = {found} is not supported (only {default}): this crate \
                 builds OpenAI's ViT architecture"
            )));
        }
    }
    if value.get("custom_text").and_then(Value::as_bool) == Some(true) {
        return Err(Error::Config(
            "open_clip model JSON: custom_text models (text tower under `text.`) are not supported".into(),
        ));
    }
    Ok(())
}

/// A single number where open_clip also allows a list: `layers` (a list is a ResNet) and
/// `image_size` (a list is a non-square input).
fn single(section: &str, key: &str, value: &Value) -> Result<usize> {
    value.as_u64().map(|n| n as usize).ok_or_else(|| {
        Error::Config(format!("open_clip model JSON: {section}.{key} = {value} is not supported (a single number)"))
    })
}

/// `ratio x width` neurons, refusing a ratio that does not give a whole number.
fn mlp_width(section: &str, width: usize, ratio: f64) -> Result<usize> {
    let neurons = width as f64 * ratio;
    if neurons.fract() != 0.0 || neurons <= 0.0 {
        return Err(Error::Config(format!(
            "open_clip model JSON: {section}.mlp_ratio {ratio} x width {width} is not a whole number of neurons"
        )));
    }
    Ok(neurons as usize)
}

/// The configuration an open_clip model JSON describes. open_clip builds `nn.GELU` unless
/// `quick_gelu` is true, and LayerNorm with eps 1e-5.
pub(super) fn from_json_value(value: Value) -> Result<ClipConfig> {
    check_supported(&value)?;
    let model: ModelCfg =
        serde_json::from_value(value).map_err(|e| Error::Config(format!("open_clip model JSON: {e}")))?;
    let (v, t) = (&model.vision_cfg, &model.text_cfg);
    let activation = if model.quick_gelu { Activation::QuickGelu } else { Activation::Gelu };
    if v.head_width == 0 || !v.width.is_multiple_of(v.head_width) {
        return Err(Error::Config(format!(
            "open_clip model JSON: vision_cfg.width {} is not a multiple of head_width {}",
            v.width, v.head_width
        )));
    }
    let config = ClipConfig {
        vision: VisionConfig {
            width: v.width,
            layers: single("vision_cfg", "layers", &v.layers)?,
            heads: v.width / v.head_width,
            mlp_width: mlp_width("vision_cfg", v.width, v.mlp_ratio)?,
            image_size: single("vision_cfg", "image_size", &v.image_size)?,
            patch_size: v.patch_size,
            layer_norm_eps: 1e-5,
            activation,
        },
        text: TextConfig {
            width: t.width,
            layers: t.layers,
            heads: t.heads,
            mlp_width: mlp_width("text_cfg", t.width, t.mlp_ratio)?,
            context_length: t.context_length,
            vocab_size: t.vocab_size,
            layer_norm_eps: 1e-5,
            activation,
        },
        embed_dim: model.embed_dim,
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClipConfig> {
        from_json_value(serde_json::from_str(json).unwrap())
    }

    /// open_clip's `ViT-B-32-quickgelu.json`, written out by hand: OpenAI's ViT-B/32.
    #[test]
    fn quickgelu_b32_is_openai_b32() {
        let json = r#"{"embed_dim": 512, "quick_gelu": true,
            "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}"#;
        assert_eq!(parse(json).unwrap(), ClipConfig::vit_b_32());
    }

    #[test]
    fn head_width_and_gelu_are_read() {
        let json = r#"{"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280,
            "head_width": 80, "patch_size": 14}, "text_cfg": {"width": 1024, "heads": 16, "layers": 24}}"#;
        let config = parse(json).unwrap();
        assert_eq!((config.vision.heads, config.vision.head_dim(), config.vision.mlp_width), (16, 80, 5120));
        assert_eq!(config.vision.activation, Activation::Gelu);
        assert_eq!((config.text.heads, config.text.mlp_width, config.embed_dim), (16, 4096, 1024));
    }

    #[test]
    fn unsupported_architectures_are_named() {
        let cases = [
            (r#"{"embed_dim": 512, "vision_cfg": {"layers": [3, 4, 6, 3], "width": 64}}"#, "vision_cfg.layers"),
            (r#"{"embed_dim": 512, "vision_cfg": {"timm_model_name": "vit_base"}}"#, "timm_model_name"),
            (r#"{"embed_dim": 512, "vision_cfg": {"ls_init_value": 1e-5}}"#, "ls_init_value"),
            (r#"{"embed_dim": 512, "vision_cfg": {"width": 100, "head_width": 64}}"#, "head_width 64"),
            (r#"{"embed_dim": 512, "vision_cfg": {}, "text_cfg": {"hf_model_name": "roberta"}}"#, "hf_model_name"),
            (r#"{"embed_dim": 512, "vision_cfg": {"image_size": [224, 448]}}"#, "image_size"),
            (r#"{"embed_dim": 512, "vision_cfg": {"mlp_ratio": 2.6667}}"#, "mlp_ratio"),
            (r#"{"embed_dim": 512, "custom_text": true, "vision_cfg": {}}"#, "custom_text"),
        ];
        for (json, named) in cases {
            let message = parse(json).unwrap_err().to_string();
            assert!(message.contains(named), "{json}: {message}");
        }
    }
}
