//! The engine's test bundle and checks, shared by the native engine tests (`tests/it/engine.rs`)
//! and the browser tests of its bindings (`tests/web.rs`): both compare the engine's results,
//! as the JSON the page receives, with the reference.

use clip_lens::bundle::{Bundle, Manifest, FORMAT_VERSION};

use super::{expected, reference_layer_lens, CONFIG_JSON, EXPECTED_JSON, WORDS};

/// The test bundle's classes: names and the `probe_text_embeds` row each is (normalised).
pub const ENGINE_CLASSES: [(&str, usize); 4] = [("cat", 0), ("dog", 1), ("origami crane", 2), ("creme brulee", 3)];

/// An engine on the CPU for the fixture model with `bundle` loaded.
#[cfg(not(target_arch = "wasm32"))]
pub fn engine_with(bundle: &Bundle) -> clip_lens::apps::engine::Engine {
    use clip_lens::device::{self, BackendKind};
    let mut engine = clip_lens::apps::engine::Engine::new(
        super::MODEL_OPENAI.to_vec(),
        Some(CONFIG_JSON),
        device::cpu(),
        BackendKind::Cpu,
        usize::MAX,
    )
    .unwrap();
    let tensors = bundle.tensors(clip_lens::bundle::Storage::F32).unwrap();
    engine.load_bundle(&bundle.manifest_json().unwrap(), tensors).unwrap();
    engine
}

/// A bundle from the reference's data for weights with `weights_sha256`: layers 0, 1, 2,
/// the fixture words, a few classes, made-up top images and thumbnails.
pub fn reference_bundle(weights_sha256: String) -> Bundle {
    let expected = expected();
    let layers = [0usize, 1, 2];
    let probes = &expected["probe_text_embeds"].values;
    let class_embeds = ENGINE_CLASSES
        .iter()
        .flat_map(|&(_, i)| clip_lens::apps::classify::unit(&probes[i * 32..(i + 1) * 32]).unwrap())
        .collect();
    let top_images = layers
        .iter()
        .map(|l| (l.to_string(), (0..256).map(|n| (0..6).map(|j| (n + 7 * j) % 48).collect()).collect()))
        .collect();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: "tiny-a".into(),
        model_config: serde_json::from_str(CONFIG_JSON).unwrap(),
        weights_sha256,
        layers: layers.to_vec(),
        neurons: 256,
        embed_dim: 32,
        top_k: 6,
        components: 8,
        word_sources: vec!["words.txt".into()],
        words: WORDS.lines().map(str::to_string).collect(),
        classes: ENGINE_CLASSES.iter().map(|(name, _)| name.to_string()).collect(),
        class_templates: 80,
        images: (0..48).map(|i| format!("img{i:03}.png")).collect(),
        skipped_images: vec![],
        top_images,
        thumbnail_size: 16,
        ..Manifest::default()
    };
    let layers = layers.iter().map(|&l| (l, reference_layer_lens(&expected, l))).collect();
    Bundle { manifest, layers, word_embeds: expected["word_embeds"].values.clone(), class_embeds }
}

/// Checks `analyze`'s layer-1 concepts of detail image `i` against `expected.json` (same
/// significant neurons, same words in order) and returns the worst score deviation relative
/// to the best reference score.
pub fn check_engine_concepts(label: &str, i: usize, analysis: &serde_json::Value) -> f32 {
    let reference_json: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    let image = reference_json["detail_images"][i].as_str().unwrap();
    let reference = &reference_json["concept_discovery"]["results"][image];
    let layer = analysis["layers"].as_array().unwrap().iter().find(|l| l["layer"] == 1).expect("layer 1 analysed");
    assert_eq!(layer["significant_neurons"], reference["significant_neurons"], "{label} {image}: significant neurons");
    let neurons = layer["neurons"].as_array().unwrap();
    assert_eq!(neurons.len(), layer["significant_neurons"].as_array().unwrap().len());
    for neuron in neurons {
        assert!(neuron["norm"].as_f64().unwrap() > neuron["threshold"].as_f64().unwrap(), "{label}: {neuron}");
        assert!(neuron["words"].as_array().unwrap().len() <= 5);
    }
    let words = layer["words"].as_array().unwrap();
    let reference_words = reference["top_words"].as_array().unwrap();
    assert_eq!(words.len(), reference_words.len(), "{label} {image}: number of words");
    let best = reference_words[0][1].as_f64().unwrap();
    let mut worst = 0f64;
    for (ours, theirs) in words.iter().zip(reference_words) {
        assert_eq!(ours[0], theirs[0], "{label} {image}: words in order");
        worst = worst.max((ours[1].as_f64().unwrap() - theirs[1].as_f64().unwrap()).abs() / best.abs());
    }
    worst as f32
}

/// Checks an ablation result (as JSON) of detail image `image` that mean-ablated the layer-1
/// neurons `removed` ([`check_steering`] with factors 0). Returns the shift.
pub fn check_mean_ablation(result: &serde_json::Value, image: usize, removed: &[usize]) -> f32 {
    check_steering(result, image, &removed.iter().map(|&n| (n, 0.0)).collect::<Vec<_>>())
}

/// Checks a steering result (as JSON) of detail image `image` that scaled the layer-1 neurons'
/// centred effects by their factors, against a hand computation from the reference's tensors:
/// `v' = v + sum_n (alpha_n - 1)(phi_n - mean_n)` with `v = 100 e / |e|`; the classes after are
/// the cosines of `v'` with the bundle's unit class rows, the shift is `|v' - v|`. Returns the
/// shift.
pub fn check_steering(result: &serde_json::Value, image: usize, factors: &[(usize, f32)]) -> f32 {
    let expected = expected();
    let e = &expected["image_embeds"].values[image * 32..(image + 1) * 32];
    let length = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    let v: Vec<f32> = e.iter().map(|x| 100.0 * x / length).collect();
    let effects = &expected["second_order.1"].values[image * 256 * 32..(image + 1) * 256 * 32];
    let mean = &expected["mean.1"].values;
    let mut ablated = v.clone();
    for &(n, alpha) in factors {
        for j in n * 32..(n + 1) * 32 {
            ablated[j % 32] += (alpha - 1.0) * (effects[j] - mean[j]);
        }
    }
    let bundle = reference_bundle(String::new());
    let cosine = |v: &[f32], index: usize| {
        let row = &bundle.class_embeds[index * 32..(index + 1) * 32];
        v.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() / v.iter().map(|x| x * x).sum::<f32>().sqrt()
    };
    for (view, embedding) in [("before", &v), ("after", &ablated)] {
        for class in result[view]["classes"].as_array().unwrap() {
            let index = class["index"].as_u64().unwrap() as usize;
            let ours = class["cosine"].as_f64().unwrap() as f32;
            assert!(
                (ours - cosine(embedding, index)).abs() < 5e-5,
                "{view} {index}: {ours} vs {}",
                cosine(embedding, index)
            );
            assert_eq!(class["name"].as_str(), Some(ENGINE_CLASSES[index].0));
        }
    }
    let shift = ablated.iter().zip(&v).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
    let ours = result["shift"].as_f64().unwrap() as f32;
    assert!((ours - shift).abs() < 1e-3 * shift.max(1.0), "shift {ours} vs {shift}");
    assert_eq!(result["ablated"].as_u64(), Some(factors.len() as u64));
    shift
}
