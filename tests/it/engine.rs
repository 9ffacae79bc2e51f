//! The engine (`clip_lens::apps::engine`), natively on the CPU: every method against the
//! reference fixture, with a bundle built from the reference's lens data (layers 0, 1, 2). The
//! browser tests (`tests/web.rs`) run the same checks through the page's bindings.

use crate::common::engine::{check_engine_concepts, reference_bundle, ENGINE_CLASSES};
use crate::common::*;
use clip_lens::apps::engine::{AdversarialOptions, AnalyzeOptions, Engine};
use clip_lens::apps::segment::heatmap_from_patches;
use clip_lens::bundle::{sha256_hex, Storage};
use clip_lens::convert::{split_towers, WeightDtype};
use clip_lens::device::{self, BackendKind};
use clip_lens::WeightFile;
use pollster::block_on;

/// An engine on the CPU for the fixture model (OpenAI layout).
fn engine() -> Engine {
    Engine::new(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON), device::cpu(), BackendKind::Cpu, usize::MAX).unwrap()
}

/// [`engine`] with the reference bundle loaded.
fn engine_with_bundle() -> Engine {
    let mut engine = engine();
    assert!(!engine.has_bundle());
    let bundle = reference_bundle(sha256_hex(MODEL_OPENAI));
    engine.load_bundle(&bundle.manifest_json().unwrap(), bundle.tensors(Storage::F32).unwrap()).unwrap();
    assert!(engine.has_bundle());
    engine
}

/// The engine's error message and kind for a failed call.
fn failure<T>(result: clip_lens::Result<T>) -> (String, &'static str) {
    match result {
        Ok(_) => panic!("the call succeeded"),
        Err(error) => (error.to_string(), error.kind()),
    }
}

#[test]
fn analyze_and_segment_match_the_reference() {
    let mut engine = engine_with_bundle();
    assert_eq!(engine.backend_name(), "cpu");
    let (concept, layers, k, reference_pairs) = segmentation_settings();
    let (mut worst_concepts, mut worst_heatmap) = (0f32, 0f32);
    for (i, png) in DETAIL_PNGS.iter().enumerate() {
        let analysis = block_on(engine.analyze(png, &AnalyzeOptions::default())).unwrap();
        let json = serde_json::to_value(&analysis).unwrap();
        worst_concepts = worst_concepts.max(check_engine_concepts("native", i, &json));
        // Four classes in the bundle: all of them, best first, probabilities summing to 1.
        assert_eq!(analysis.classes.len(), 4);
        assert!(analysis.classes.windows(2).all(|w| w[0].cosine >= w[1].cosine));
        assert!((analysis.classes.iter().map(|c| c.probability).sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(analysis.layers.iter().map(|l| l.layer).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(!analysis.words.is_empty() && analysis.words.len() <= 10);
        assert_eq!(analysis.geometry.crop.size, 64);

        let segmentation = block_on(engine.segment(&concept, Some(layers.clone()), Some(k))).unwrap();
        assert_eq!(
            (segmentation.kind, segmentation.concept.as_str(), segmentation.size),
            ("text", concept.as_str(), 64)
        );
        let pairs: Vec<[usize; 2]> = segmentation.neurons.iter().rev().map(|n| [n.neuron, n.layer]).collect();
        assert_eq!(pairs, reference_pairs, "image {i}: selected [neuron, layer] pairs, best last");
        let reference = &expected()["seg_heatmap"].values[i * 4096..(i + 1) * 4096];
        worst_heatmap = worst_heatmap.max(relative_deviation(&segmentation.heatmap, reference));
    }
    report!("engine: layer-1 concepts of 6 images within {worst_concepts:.2e}; seg_heatmap within {worst_heatmap:.2e}");
    assert!(worst_concepts < 1e-4, "{worst_concepts}");
    assert!(worst_heatmap <= MODEL_TOLERANCE, "{worst_heatmap}");

    // A class concept and the predicted class reuse the last image's activations; "cat" is
    // the normalised reference embedding of the fixture's concept text.
    let text = block_on(engine.segment(&concept, Some(layers.clone()), Some(k))).unwrap();
    let class = block_on(engine.segment("class:Cat", Some(layers), Some(k))).unwrap();
    assert_eq!((class.kind, class.concept.as_str(), class.class_index), ("class", "cat", Some(0)));
    assert!(relative_deviation(&class.heatmap, &text.heatmap) <= MODEL_TOLERANCE);
    let options = AnalyzeOptions { top_classes: 2, top_words: 3, ..Default::default() };
    let analysis = block_on(engine.analyze(DETAIL_PNGS[5], &options)).unwrap();
    assert_eq!(analysis.classes.len(), 2);
    assert!(analysis.words.len() <= 3);
    let predicted = block_on(engine.segment("predicted", None, None)).unwrap();
    assert_eq!((predicted.kind, &predicted.concept), ("predicted", &analysis.classes[0].name));
    assert_eq!(predicted.layers, [0, 1, 2]);
    assert_eq!(predicted.neurons.len(), 200, "the paper's 200 neurons by default");
    assert!(predicted.heatmap.len() == 64 * 64 && predicted.heatmap.iter().all(|v| (0.0..=1.0).contains(v)));
    let all = block_on(engine.segment("predicted", Some(vec![2]), Some(10_000))).unwrap();
    assert_eq!(all.neurons.len(), 256, "top_neurons is clamped to the layers' neurons");
}

/// The summary the page shows is the bundle's manifest in numbers.
#[test]
fn the_bundle_summary_counts_the_manifest() {
    assert!(failure(engine().bundle_summary()).0.contains("no bundle is loaded"));
    let summary = engine_with_bundle().bundle_summary().unwrap();
    let classes: Vec<String> = ENGINE_CLASSES.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(
        (summary.model_name.as_str(), summary.layers.as_slice(), summary.neurons, summary.top_k, summary.components),
        ("tiny-a", &[0, 1, 2][..], 256, 6, 8)
    );
    assert_eq!(
        (summary.words, summary.classes, summary.images, summary.thumbnail_size),
        (WORDS.lines().count(), classes, 48, 16)
    );
}

#[test]
fn neuron_cards_and_search() {
    let mut engine = engine_with_bundle();
    let bundle = reference_bundle(String::new());
    let card = engine.neuron(1, 23).unwrap();
    assert_eq!(card.words, bundle.describe(1, 23).unwrap());
    assert_eq!(card.threshold, Some(bundle.layers[&1].norms[23 * 6]));
    assert_eq!(card.top_images.len(), 6);
    for (j, image) in card.top_images.iter().enumerate() {
        let id = (23 + 7 * j) % 48;
        assert_eq!((image.id, image.path.as_deref()), (id, Some(format!("img{id:03}.png").as_str())));
        assert_eq!(image.thumbnail.as_deref(), Some(format!("thumbnails/{id}.jpg").as_str()));
    }
    // Nearest classes: all four, by the cosine of r_n with each class, best first.
    let r = &bundle.layers[&1].direction[23 * 32..24 * 32];
    let r_norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert_eq!(card.classes.len(), 4);
    for class in &card.classes {
        let row = &bundle.class_embeds[class.index * 32..(class.index + 1) * 32];
        let cosine = r.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() / r_norm;
        assert!((class.cosine - cosine).abs() < 1e-5);
        assert_eq!(class.name, ENGINE_CLASSES[class.index].0);
    }
    assert!(failure(engine.neuron(7, 0)).0.contains("layer 7 is not in the bundle"));
    assert!(failure(engine.neuron(1, 256)).0.contains("neuron 256 is out of range"));

    // A word of the dictionary (any case): the neurons holding it, with their coefficients.
    let (word, holders) = bundle.neurons_with_word("genes").unwrap();
    let found = block_on(engine.search("GENES", 20)).unwrap();
    assert_eq!(found.word.as_deref(), Some(word.as_str()));
    assert_eq!(found.word_neurons.len(), holders.len());
    for (ours, (layer, neuron, coefficient)) in found.word_neurons.iter().zip(&holders) {
        assert_eq!((ours.layer, ours.neuron, ours.coefficient), (*layer, *neuron, *coefficient));
    }
    assert_eq!(found.text_neurons.len(), 20);
    assert!(found.text_neurons.windows(2).all(|w| w[0].score >= w[1].score));
    // Free text: no word; neurons by r_n . e(text) / |e|, as with the reference's embedding.
    let found = block_on(engine.search("a photo of a cat.", 5)).unwrap();
    assert!(found.word.is_none() && found.word_neurons.is_empty());
    let probe = &expected()["probe_text_embeds"].values[..32];
    let reference: Vec<(usize, usize)> =
        bundle.neurons_matching(probe, 5).unwrap().into_iter().map(|(l, n, _)| (l, n)).collect();
    let ours: Vec<(usize, usize)> = found.text_neurons.iter().map(|n| (n.layer, n.neuron)).collect();
    assert_eq!(ours, reference);
    assert_eq!(
        failure(block_on(engine.search(" ", 20))),
        ("invalid input: the search text is empty".into(), "bad-input")
    );
}

#[test]
fn adversarial_words_and_fooled() {
    let mut engine = engine_with_bundle();
    let options = AdversarialOptions { neurons: 60, words: 20, ..Default::default() };
    let result = block_on(engine.adversarial("cat", "dog", &options)).unwrap();
    assert_eq!(
        (result.class0.as_str(), result.class1.as_str(), result.layers.as_slice()),
        ("cat", "dog", &[0, 1, 2][..])
    );
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["neurons"].as_array().unwrap().len(), 60);
    let words = json["words"].as_array().unwrap();
    assert!(!words.is_empty() && words.len() <= 20);
    assert!(words.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    for description in json["descriptions"].as_array().unwrap() {
        let text = description.as_str().unwrap().to_lowercase();
        assert!(text.contains("dog") && !text.contains("cat"), "{text}");
    }
    assert!(failure(block_on(engine.adversarial("Cat", "cat", &AdversarialOptions::default())))
        .0
        .contains("same class"));

    // fooled: score = (emb / |emb|) . (e(cat) - e(dog)), with the classes' bundle rows.
    let bundle = reference_bundle(String::new());
    for png in &DETAIL_PNGS[..2] {
        let result = block_on(engine.fooled(png, "cat", "dog")).unwrap();
        let embedding = block_on(engine.embed_image(png)).unwrap();
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        let (cat, dog) = (&bundle.class_embeds[..32], &bundle.class_embeds[32..64]);
        let score: f32 = embedding.iter().zip(cat.iter().zip(dog)).map(|(x, (c, d))| x / norm * (c - d)).sum();
        assert!((result.score - score).abs() < 1e-5, "{} vs {score}", result.score);
        assert_eq!(result.fooled, score > 0.0);
    }
}

/// A neuron's activation map is the fixture's post-GELU activations of its patches, upsampled
/// and normalised as segmentation does; its peak is the largest of them.
#[test]
fn activation_maps_match_the_reference_activations() {
    let engine = engine();
    let (tokens, neurons) = (17, 256);
    let mut worst = 0f32;
    for (i, layer, neuron) in [(0, 2, 4), (1, 1, 17), (3, 0, 200)] {
        let map = block_on(engine.activation_map(DETAIL_PNGS[i], layer, neuron)).unwrap();
        assert_eq!((map.layer, map.neuron, map.size), (layer, neuron, 64));
        let activations = &expected()[format!("post_gelu.{layer}").as_str()].values;
        let patches: Vec<f32> = (1..tokens).map(|t| activations[(i * tokens + t) * neurons + neuron]).collect();
        worst = worst.max(relative_deviation(&map.heatmap, &heatmap_from_patches(&patches, 4, 16).unwrap()));
        let peak = patches.iter().copied().fold(f32::MIN, f32::max);
        assert!((map.peak - peak).abs() <= 1e-4 * peak.abs().max(1.0), "peak {} vs {peak}", map.peak);
    }
    assert!(worst <= MODEL_TOLERANCE, "{worst}");
    assert!(failure(block_on(engine.activation_map(DETAIL_PNGS[0], 4, 0))).0.contains("layer 4 is out of range"));
    assert!(failure(block_on(engine.activation_map(DETAIL_PNGS[0], 0, 256))).0.contains("neuron 256 is out of range"));
}

/// Bad input gets a message naming the problem and the kind a caller acts on.
#[test]
fn errors_name_the_problem_and_its_kind() {
    let mut engine = engine();
    let (message, kind) = failure(block_on(engine.analyze(DETAIL_PNGS[0], &AnalyzeOptions::default())));
    assert!(message.contains("no bundle is loaded") && kind == "bad-input", "{message}");
    let other = reference_bundle(sha256_hex(MODEL_HF));
    let (message, _) =
        failure(engine.load_bundle(&other.manifest_json().unwrap(), other.tensors(Storage::F32).unwrap()));
    assert!(message.contains("bundle/model mismatch"), "{message}");
    assert!(!engine.has_bundle());

    let mut engine = engine_with_bundle();
    assert!(failure(block_on(engine.segment("predicted", None, None))).0.contains("no image has been analysed yet"));
    assert!(failure(block_on(engine.analyze(b"not an image", &AnalyzeOptions::default())))
        .0
        .contains("unsupported image format"));
    block_on(engine.analyze(DETAIL_PNGS[0], &AnalyzeOptions::default())).unwrap();
    assert!(failure(block_on(engine.segment("class:zebra", None, None))).0.contains("unknown class \"zebra\""));
    assert!(failure(block_on(engine.segment("predicted", Some(vec![3]), None)))
        .0
        .contains("layer 3 is not in the bundle"));
    assert!(failure(block_on(engine.segment("predicted", None, Some(0)))).0.contains("at least 1"));
}

/// From the towers of `clip-lens convert`: the original's embeddings; the text tower asked for
/// with the `needs-text-tower` kind, then loaded and checked against the manifest.
#[test]
fn converted_towers_give_the_originals_embeddings() {
    let (image, text, manifest) =
        split_towers(&WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap(), WeightDtype::F32).unwrap();
    let manifest_json = serde_json::to_string(&manifest).unwrap();
    let mut converted =
        Engine::from_converted(&manifest_json, image.clone(), CONFIG_JSON, device::cpu(), BackendKind::Cpu, usize::MAX)
            .unwrap();
    let mut original = engine();
    assert!(!converted.text_tower_available() && original.text_tower_available());
    assert_eq!(
        block_on(converted.embed_image(DETAIL_PNGS[2])).unwrap(),
        block_on(original.embed_image(DETAIL_PNGS[2])).unwrap()
    );

    let (message, kind) = failure(block_on(converted.embed_text("a photo of a cat")));
    assert_eq!(kind, "needs-text-tower");
    assert!(message.contains("text tower of the converted weights is not loaded yet"), "{message}");
    let (message, kind) = failure(converted.load_text_tower(image));
    assert!(message.contains("text tower file does not match its manifest") && kind == "bad-input", "{message}");
    converted.load_text_tower(text).unwrap();
    assert_eq!(
        block_on(converted.embed_text("a photo of a cat")).unwrap(),
        block_on(original.embed_text("a photo of a cat")).unwrap()
    );
}
