//! Weight loading: layouts, configurations, single towers, and every error path.

use crate::common::*;
use clip_lens::config::{Activation, ClipConfig};
use clip_lens::device;
use clip_lens::model::{CaptureRequest, ClipModel, Towers};
use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
use clip_lens::{Error, Layout, WeightFile};

/// A tensor of the fixture file: name, dtype, shape, bytes.
type Entry = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// Re-serialises the fixture with `edit` applied to its list of tensors.
fn edited_fixture(edit: impl FnOnce(&mut Vec<Entry>)) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(MODEL_OPENAI).unwrap();
    let mut tensors: Vec<_> =
        file.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

/// The fixture with the tensor `name` edited.
fn edited_tensor(name: &str, edit: impl FnOnce(&mut Entry)) -> Vec<u8> {
    edited_fixture(|t| edit(t.iter_mut().find(|(n, ..)| n == name).unwrap()))
}

fn load_error(bytes: Vec<u8>, towers: Towers) -> Error {
    let config = ClipConfig::from_hf_json(CONFIG_JSON).unwrap();
    match WeightFile::from_bytes(bytes).and_then(|w| ClipModel::load(&w, &config, towers, &device::cpu())) {
        Ok(_) => panic!("loading should have failed"),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let bytes = edited_fixture(|t| t.retain(|(n, ..)| n != "visual.ln_post.weight"));
    let message = load_error(bytes, Towers::Vision).to_string();
    assert!(message.contains("missing tensor `visual.ln_post.weight`"), "{message}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let bytes = edited_tensor("visual.proj", |proj| {
        proj.2 = vec![32, 64];
    });
    let message = load_error(bytes, Towers::Vision).to_string();
    assert!(message.contains("`visual.proj` has shape [32, 64], expected [64, 32]"), "{message}");
}

#[test]
fn unsupported_dtype_is_named() {
    let bytes = edited_tensor("visual.ln_pre.weight", |ln| {
        ln.1 = safetensors::Dtype::I32;
    });
    let message = load_error(bytes, Towers::Vision).to_string();
    assert!(message.contains("`visual.ln_pre.weight` has unsupported dtype I32"), "{message}");
}

/// The fixture with every F32 tensor widened to F64, as NumPy 2 saves float32 arrays cast to
/// its default type.
fn fixture_as_f64() -> Vec<u8> {
    edited_fixture(|t| {
        for (_, dtype, _, bytes) in t.iter_mut().filter(|(_, d, ..)| *d == safetensors::Dtype::F32) {
            *dtype = safetensors::Dtype::F64;
            *bytes = bytes
                .chunks_exact(4)
                .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as f64).to_le_bytes())
                .collect();
        }
    })
}

#[test]
fn f64_weights_load_and_match_the_reference() {
    let bytes = fixture_as_f64();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        file.tensors().iter().any(|(_, v)| v.dtype() == safetensors::Dtype::F64),
        "the edited fixture holds F64 tensors"
    );
    assert_within("cpu/f64", &pollster::block_on(image_tower_deviations(&bytes, &device::cpu())));
}

#[test]
fn an_f64_value_beyond_f32_is_named() {
    let bytes = edited_tensor("visual.ln_pre.weight", |ln| {
        ln.1 = safetensors::Dtype::F64;
        ln.3 = std::iter::once(1e300f64)
            .chain(std::iter::repeat(1.0))
            .take(ln.2.iter().product())
            .flat_map(f64::to_le_bytes)
            .collect();
    });
    let message = load_error(bytes, Towers::Vision).to_string();
    assert!(message.contains("`visual.ln_pre.weight` holds 1e300, beyond the range of f32"), "{message}");
}

#[test]
fn truncated_and_garbage_files_are_clear_errors() {
    let truncated = MODEL_OPENAI[..MODEL_OPENAI.len() / 2].to_vec();
    let message = WeightFile::from_bytes(truncated).err().expect("truncated file must fail").to_string();
    assert!(message.contains("invalid safetensors file") && message.contains("truncated"), "{message}");
    for garbage in [vec![], vec![1, 2, 3], b"this is not a safetensors file at all".to_vec()] {
        let message = WeightFile::from_bytes(garbage).err().expect("garbage must fail").to_string();
        assert!(message.contains("invalid safetensors file"), "{message}");
    }
}

#[test]
fn unknown_layout_is_reported() {
    let bytes = edited_fixture(|t| t.iter_mut().for_each(|(n, ..)| *n = format!("model.{n}")));
    let message = WeightFile::from_bytes(bytes).unwrap().layout().unwrap_err().to_string();
    assert!(message.contains("unrecognised weight layout"), "{message}");
}

#[test]
fn layouts_are_detected() {
    assert_eq!(WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap().layout().unwrap(), Layout::OpenAi);
    assert_eq!(WeightFile::from_bytes(MODEL_HF.to_vec()).unwrap().layout().unwrap(), Layout::HuggingFace);
}

#[test]
fn one_tower_loads_without_the_other() {
    let config = ClipConfig::from_hf_json(CONFIG_JSON).unwrap();
    let bytes =
        random_weights(&config, Layout::HuggingFace, TowerSelection { vision: true, text: false }, StorageType::F32, 7);
    let weights = WeightFile::from_bytes(bytes).unwrap();
    let model = ClipModel::load(&weights, &config, Towers::Vision, &device::cpu()).unwrap();
    assert!(model.vision.is_some() && model.text.is_none());
    assert!(model.text().err().unwrap().to_string().contains("text tower is not loaded"));
    let message = ClipModel::load(&weights, &config, Towers::Text, &device::cpu()).err().unwrap().to_string();
    assert!(message.contains("missing tensor `text_model.embeddings.token_embedding.weight`"), "{message}");
}

#[test]
fn hf_config_json_is_read() {
    let config = ClipConfig::from_hf_json(CONFIG_JSON).unwrap();
    // Values written in tests/fixtures/tiny-a/config.json.
    assert_eq!(
        (config.vision.width, config.vision.layers, config.vision.heads, config.vision.mlp_width),
        (64, 4, 4, 256)
    );
    assert_eq!((config.vision.image_size, config.vision.patch_size, config.vision.tokens()), (64, 16, 17));
    assert_eq!((config.text.width, config.text.layers, config.text.heads, config.text.mlp_width), (16, 2, 2, 64));
    assert_eq!((config.text.context_length, config.text.vocab_size, config.embed_dim), (77, 49408, 32));
    assert_eq!(config.vision.activation, Activation::QuickGelu);
    assert!(ClipConfig::from_hf_json("{\"vision_config\": {\"hidden_act\": \"relu\"}}")
        .unwrap_err()
        .to_string()
        .contains("relu"));
    assert!(ClipConfig::from_hf_json("not json").unwrap_err().to_string().contains("config.json"));
    let inconsistent = "{\"vision_config\": {\"hidden_size\": 100, \"num_attention_heads\": 12}}";
    assert!(ClipConfig::from_hf_json(inconsistent).unwrap_err().to_string().contains("not divisible"));
}

/// ViT-B/32, B/16 and L/14 shapes: generated with random weights, the configuration is
/// inferred from the shapes alone (OpenAI convention) and the towers load.
#[test]
fn real_shapes_are_inferred_and_load() {
    for (name, expected) in [
        ("ViT-B/32", ClipConfig::vit_b_32()),
        ("ViT-B/16", ClipConfig::vit_b_16()),
        ("ViT-L/14", ClipConfig::vit_l_14()),
    ] {
        let towers = TowerSelection { vision: true, text: name == "ViT-B/32" };
        let bytes = random_weights(&expected, Layout::OpenAi, towers, StorageType::F16, 1);
        let weights = WeightFile::from_bytes(bytes).unwrap();
        let inferred = ClipConfig::infer(&weights).unwrap();
        assert_eq!(inferred.vision, expected.vision, "{name} vision config");
        assert_eq!(inferred.embed_dim, expected.embed_dim, "{name} embed dim");
        if towers.text {
            assert_eq!(inferred.text, expected.text, "{name} text config");
        }
        let model = ClipModel::load(&weights, &inferred, Towers::Vision, &device::cpu()).unwrap();
        assert_eq!(model.vision().unwrap().blocks.len(), expected.vision.layers);
    }
}

/// A full ViT-B/32-shaped forward (random weights, stored as F16) gives finite outputs of the
/// right shapes, and the captures the lens needs.
#[test]
fn vit_b_32_forward_runs_with_captures() {
    let config = ClipConfig::vit_b_32();
    let bytes =
        random_weights(&config, Layout::HuggingFace, TowerSelection { vision: true, text: false }, StorageType::F16, 3);
    let model =
        ClipModel::load(&WeightFile::from_bytes(bytes).unwrap(), &config, Towers::Vision, &device::cpu()).unwrap();
    let pixels = burn::tensor::Tensor::<4>::ones([1, 3, 224, 224], &device::cpu());
    let output = model.vision().unwrap().forward(pixels, &CaptureRequest::for_lens(&[9])).unwrap();
    assert_eq!(output.embeds.dims(), [1, 512]);
    assert_eq!(output.captures.neurons[&9].dims(), [1, 50, 3072]);
    assert_eq!(output.captures.cls_attention.keys().copied().collect::<Vec<_>>(), vec![10, 11]);
    assert_eq!(output.captures.cls_attention[&10].dims(), [1, 12, 50]);
    assert_eq!(output.captures.ln_1[&11].std.dims(), [1, 50]);
    assert!(output.captures.ln_post.is_some());
    let embeds = device::read_f32_blocking(output.embeds).unwrap();
    assert!(embeds.iter().all(|x| x.is_finite()) && embeds.iter().any(|&x| x != 0.0));
}

#[test]
fn bad_inputs_to_the_forward_are_errors() {
    let model = load(MODEL_OPENAI, Towers::Both, &device::cpu());
    let vision = model.vision().unwrap();
    let wrong_size = burn::tensor::Tensor::<4>::zeros([1, 3, 32, 32], &device::cpu());
    assert!(vision
        .forward(wrong_size, &CaptureRequest::default())
        .err()
        .unwrap()
        .to_string()
        .contains("expected [B, 3, 64, 64]"));
    let pixels = burn::tensor::Tensor::<4>::zeros([1, 3, 64, 64], &device::cpu());
    assert!(vision
        .forward(pixels, &CaptureRequest::neurons(&[4]))
        .err()
        .unwrap()
        .to_string()
        .contains("layer 4 is out of range"));
    let text = model.text().unwrap();
    assert!(text.encode(&[1, 2, 3]).err().unwrap().to_string().contains("multiple of the context length"));
    let mut tokens = vec![0u32; 77];
    tokens[0] = 60000;
    assert!(text.encode(&tokens).err().unwrap().to_string().contains("outside the vocabulary"));
}

/// F16 and BF16 storage is converted to f32: the fixture re-stored in each type gives the
/// reference embeddings up to the storage type's rounding.
#[test]
fn f16_and_bf16_storage_load() {
    let expected = expected();
    for (dtype, tolerance) in [(safetensors::Dtype::F16, 1e-2f32), (safetensors::Dtype::BF16, 5e-2)] {
        let bytes = edited_fixture(|tensors| {
            for (_, stored, _, data) in tensors.iter_mut() {
                let values = data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()));
                *data = match dtype {
                    safetensors::Dtype::F16 => values.flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect(),
                    _ => values.flat_map(|v| half::bf16::from_f32(v).to_le_bytes()).collect(),
                };
                *stored = dtype;
            }
        });
        let model = load(&bytes, Towers::Vision, &device::cpu());
        let pixels = &expected["pixels"];
        let input = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(pixels.values.clone(), [6, 3, 64, 64]),
            &device::cpu(),
        );
        let embeds = device::read_f32_blocking(model.vision().unwrap().encode(input).unwrap()).unwrap();
        let deviation = relative_deviation(&embeds, &expected["image_embeds"].values);
        println!("{dtype:?} storage: image_embeds relative deviation {deviation:.3e}");
        assert!(deviation < tolerance, "{dtype:?}: {deviation}");
        assert!(deviation > 0.0, "{dtype:?} storage should round the weights");
    }
}

/// The configuration written into bundles reads back as the same configuration.
#[test]
fn config_round_trips_through_hf_json() {
    for config in [ClipConfig::from_hf_json(CONFIG_JSON).unwrap(), ClipConfig::vit_b_32(), ClipConfig::vit_l_14()] {
        let json = config.to_hf_json().to_string();
        assert_eq!(ClipConfig::from_hf_json(&json).unwrap(), config);
    }
}

/// A batch runs only up to its longest text; each text's embedding is the same as alone.
#[test]
fn text_embeddings_do_not_depend_on_the_batch() {
    let model = load(MODEL_OPENAI, Towers::Text, &device::cpu());
    let text = model.text().unwrap();
    let tokens = check_probe_tokens();
    let together = device::read_f32_blocking(text.encode(&tokens).unwrap()).unwrap();
    for (i, row) in tokens.chunks(77).enumerate() {
        let alone = device::read_f32_blocking(text.encode(row).unwrap()).unwrap();
        assert!(relative_deviation(&alone, &together[i * 32..(i + 1) * 32]) < 1e-5, "probe {i}");
    }
}

/// The largest tensor (what a GPU's largest buffer must hold) is found from the header, and a
/// buffer limit below it is an error that names it; the safetensors crate is the reference.
#[test]
fn largest_tensor_and_buffer_limit() {
    let reference = safetensors::SafeTensors::deserialize(MODEL_OPENAI).unwrap();
    let (name, bytes) = reference
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().iter().product::<usize>() * 4))
        .max_by_key(|(_, b)| *b)
        .unwrap();
    let weights = WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap();
    let (found, found_bytes) = weights.largest_tensor().unwrap();
    assert_eq!(found_bytes, bytes);
    assert_eq!(reference.tensor(found).unwrap().shape().iter().product::<usize>() * 4, bytes, "{found} vs {name}");
    weights.check_buffer_limit(bytes).unwrap();
    let message = weights.check_buffer_limit(bytes - 1).unwrap_err().to_string();
    assert!(
        message.contains(&format!("`{found}`"))
            && message.contains("largest buffer")
            && message.contains("CPU backend"),
        "{message}"
    );
}

/// Shapes that do not decide the configuration are refused, not guessed: the fixture's 64-wide
/// towers (4 heads of 16; OpenAI's 64-wide heads would make them one head) and any Hugging Face
/// checkpoint (OpenAI's use QuickGELU, LAION's GELU).
#[test]
fn undecidable_shapes_are_refused() {
    let openai = WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap();
    let message = ClipConfig::infer(&openai).unwrap_err().to_string();
    assert!(message.contains("64 wide") && message.contains("configuration"), "{message}");
    let hf = WeightFile::from_bytes(MODEL_HF.to_vec()).unwrap();
    let message = ClipConfig::infer(&hf).unwrap_err().to_string();
    assert!(message.contains("activation") && message.contains("config.json"), "{message}");
}
