//! open_clip checkpoints: a tiny GELU model made and run by open_clip itself
//! (`tests/fixtures/openclip-gelu`, 3 heads of 32, exact GELU) against its outputs, and open_clip's
//! real configurations (ViT-H-14: 16 heads of 80, GELU; ViT-B-32) checked against the shapes of
//! their state dicts, without their weights (`tests/fixtures/open_clip`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use clip_lens::config::Activation;
use clip_lens::device::{self, read_f32};
use clip_lens::lens::{second_order_effects, FactorForm, LensFactors};
use clip_lens::model::{CaptureRequest, ClipModel, Towers};
use clip_lens::synthetic::{weight_shapes, TowerSelection};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{ClipConfig, Layout, WeightFile};

use crate::common::{assert_within, relative_deviation, Expected};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

fn config_of(path: &str) -> ClipConfig {
    ClipConfig::from_json(&std::fs::read_to_string(fixture(path)).unwrap()).unwrap()
}

/// Every tensor of a safetensors file, as f32 (i32 converted).
fn tensors_of(path: &str) -> HashMap<String, Expected> {
    let bytes = std::fs::read(fixture(path)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let value = |view: &safetensors::tensor::TensorView| -> Vec<f32> {
        let words = view.data().chunks_exact(4).map(|b| <[u8; 4]>::try_from(b).unwrap());
        match view.dtype() {
            safetensors::Dtype::F32 => words.map(f32::from_le_bytes).collect(),
            safetensors::Dtype::I32 => words.map(|w| i32::from_le_bytes(w) as f32).collect(),
            other => panic!("unexpected dtype {other:?}"),
        }
    };
    file.tensors()
        .iter()
        .map(|(name, view)| (name.clone(), Expected { shape: view.shape().to_vec(), values: value(view) }))
        .collect()
}

#[test]
fn gelu_model_json_is_read_as_open_clip_builds_it() {
    let config = config_of("openclip-gelu/model.json");
    let v = &config.vision;
    assert_eq!((v.width, v.heads, v.head_dim(), v.mlp_width, v.layers, v.tokens()), (96, 3, 32, 384, 4, 17));
    assert_eq!((v.activation, config.text.activation), (Activation::Gelu, Activation::Gelu));
    assert_eq!((config.text.width, config.text.heads, config.embed_dim), (32, 2, 32));
}

/// The image tower, every layer's post-GELU activations, the text tower and the second-order
/// effects of layers 1 and 2 (both factor forms) against what open_clip computed (the effects:
/// the NumPy reference with exact GELU, which reproduces open_clip's forward to 3.5e-6).
#[test]
fn gelu_model_matches_open_clip() {
    let expected = tensors_of("openclip-gelu/expected.safetensors");
    let config = config_of("openclip-gelu/model.json");
    let weights = WeightFile::open(fixture("openclip-gelu/model.safetensors")).unwrap();
    assert_eq!(weights.layout().unwrap(), Layout::OpenAi);
    let cpu = device::cpu();
    let model = ClipModel::load(&weights, &config, Towers::Both, &cpu).unwrap();
    let vision = model.vision().unwrap();
    let pixels = &expected["pixels"];
    let input = Tensor::<4>::from_data(TensorData::new(pixels.values.clone(), [4, 3, 64, 64]), &cpu);
    let lens_layers = [1usize, 2];
    let request = CaptureRequest { neurons: (0..4).collect(), ..CaptureRequest::for_lens(&lens_layers) };
    let output = vision.forward(input, &request).unwrap();
    let mut deviations = Vec::new();
    for layer in lens_layers {
        for form in [FactorForm::PerHead, FactorForm::Compact] {
            let factors = LensFactors::with_form(vision, layer, form).unwrap();
            let effects = second_order_effects(vision, &factors, &output).unwrap();
            let name = format!("second_order.{layer}");
            let values = pollster::block_on(read_f32(effects)).unwrap();
            deviations.push((format!("{name} ({form:?})"), relative_deviation(&values, &expected[&name].values)));
        }
    }
    let neurons: BTreeMap<usize, Vec<f32>> = output
        .captures
        .neurons
        .iter()
        .map(|(&layer, t)| (layer, pollster::block_on(read_f32(t.clone())).unwrap()))
        .collect();
    let mut check = |name: String, actual: Vec<f32>| {
        deviations.push((name.clone(), relative_deviation(&actual, &expected[&name].values)));
    };
    check("image_embeds".into(), pollster::block_on(read_f32(output.embeds)).unwrap());
    for (layer, values) in neurons {
        check(format!("post_gelu.{layer}"), values);
    }
    let probes = ["a photo of a cat.", "an origami crane, made of paper"].map(String::from);
    let tokens = ClipTokenizer::new().tokenize_batch(&probes, 77);
    let reference: Vec<u32> = expected["probe_tokens"].values.iter().map(|&t| t as u32).collect();
    assert_eq!(tokens, reference, "open_clip's tokens");
    let text = model.text().unwrap().encode(&tokens).unwrap();
    check("probe_text_embeds".into(), pollster::block_on(read_f32(text)).unwrap());
    assert_eq!(deviations.len(), 10, "4 effects, the embeddings, 4 layers' activations, the text");
    assert_within("open_clip GELU", &deviations);
}

/// The tensors a configuration implies, against an open_clip state dict's shapes (without the
/// weights): the same names with the same shapes, and nothing in the state dict that the
/// model would not read (`logit_scale` aside, which CLIP's lens does not use).
fn assert_shapes_match(config: &ClipConfig, shapes_file: &str) {
    let json: BTreeMap<String, Vec<usize>> =
        serde_json::from_str(&std::fs::read_to_string(fixture(shapes_file)).unwrap()).unwrap();
    let ours: BTreeMap<String, Vec<usize>> =
        weight_shapes(config, Layout::OpenAi, TowerSelection { vision: true, text: true }).into_iter().collect();
    for (name, shape) in &ours {
        assert_eq!(json.get(name), Some(shape), "{shapes_file}: {name}");
    }
    let unread: Vec<&String> = json.keys().filter(|name| !ours.contains_key(*name) && *name != "logit_scale").collect();
    assert!(unread.is_empty(), "{shapes_file}: tensors the model would not read: {unread:?}");
}

#[test]
fn vit_h_14_configuration_matches_its_state_dict() {
    let config = config_of("open_clip/ViT-H-14.json");
    let v = &config.vision;
    assert_eq!((v.width, v.layers, v.heads, v.head_dim(), v.mlp_width), (1280, 32, 16, 80, 5120));
    assert_eq!((v.image_size, v.patch_size, v.tokens(), v.activation), (224, 14, 257, Activation::Gelu));
    assert_eq!((config.text.width, config.text.heads, config.text.layers, config.embed_dim), (1024, 16, 24, 1024));
    assert_shapes_match(&config, "open_clip/ViT-H-14.shapes.json");
}

#[test]
fn vit_b_32_configurations_match_their_state_dict() {
    let gelu = config_of("open_clip/ViT-B-32.json");
    assert_eq!(gelu.vision.activation, Activation::Gelu);
    assert_shapes_match(&gelu, "open_clip/ViT-B-32.shapes.json");
    let quick = config_of("open_clip/ViT-B-32-quickgelu.json");
    assert_eq!(quick, ClipConfig::vit_b_32(), "the quickgelu variant is OpenAI's ViT-B/32");
}
