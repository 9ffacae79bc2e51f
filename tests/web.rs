//! Browser tests (wasm-bindgen-test in headless Chromium): the same golden checks as the
//! native tests, on WebGPU and on the CPU (flex). The WebGPU test fails when no adapter is
//! obtained: there is no silent fallback here.
#![cfg(target_arch = "wasm32")]

mod common;

use clip_lens::device;
use clip_lens::lens::AtomSearch;
use common::browser::{json, kind, memory_figures, message, start_module, TEST_THREADS};
use common::*;
use wasm_bindgen_test::*;

// The threaded module's tests run in a Web Worker, as the page's engine does: rayon's callers
// block on atomics, which a page's main thread may not.
#[cfg(not(feature = "threads"))]
wasm_bindgen_test_configure!(run_in_browser);
#[cfg(feature = "threads")]
wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// WebGPU where this module has it; None in the threaded module, which is the CPU backend's
/// alone (see Cargo.toml), so that its run of these tests covers the CPU.
async fn webgpu() -> Option<burn::tensor::Device> {
    if cfg!(feature = "threads") {
        return None;
    }
    Some(device::gpu_async().await.expect("a WebGPU adapter is required for this test"))
}

#[wasm_bindgen_test]
async fn the_cpu_backend_runs_on_the_module_threads() {
    start_module().await;
    assert_eq!(clip_lens::web::is_threaded(), cfg!(feature = "threads"));
    assert_eq!(device::cpu_threads(), TEST_THREADS, "rayon's pool");
}

#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn golden_image_and_text_towers_on_webgpu() {
    start_module().await;
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/openai", &image_tower_deviations(MODEL_OPENAI, &gpu).await);
    assert_within("webgpu/hf", &image_tower_deviations(MODEL_HF, &gpu).await);
    assert_within(
        "webgpu/text-openai",
        &[("probe_text_embeds".into(), text_tower_deviation(MODEL_OPENAI, &gpu).await)],
    );
    assert_within("webgpu/text-hf", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_HF, &gpu).await)]);
}

/// The threaded module refuses WebGPU with a message that says where it is, and "auto" runs on
/// its CPU.
#[cfg(feature = "threads")]
#[wasm_bindgen_test]
async fn the_threaded_module_refuses_webgpu_and_picks_the_cpu() {
    start_module().await;
    let refused = message(
        Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "webgpu".into(), None)
            .await
            .err()
            .expect("refused"),
    );
    assert!(refused.contains("WebGPU runs in the single-threaded module"), "{refused}");
    let engine = Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "auto".into(), None)
        .await
        .map_err(message)
        .unwrap();
    assert_eq!(engine.backend(), "cpu");
}

#[wasm_bindgen_test]
async fn golden_image_and_text_towers_on_cpu() {
    start_module().await;
    let cpu = device::cpu();
    assert_within("cpu/openai", &image_tower_deviations(MODEL_OPENAI, &cpu).await);
    assert_within("cpu/hf", &image_tower_deviations(MODEL_HF, &cpu).await);
    assert_within("cpu/text-openai", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_OPENAI, &cpu).await)]);
    assert_within("cpu/text-hf", &[("probe_text_embeds".into(), text_tower_deviation(MODEL_HF, &cpu).await)]);
}

#[wasm_bindgen_test]
async fn probe_tokens_match_in_the_browser() {
    start_module().await;
    check_probe_tokens();
}

#[wasm_bindgen_test]
async fn pixels_from_pngs_match_in_the_browser() {
    start_module().await;
    let deviations = png_pixel_deviations();
    assert_pixels_within("browser", &deviations);
}

#[wasm_bindgen_test]
async fn second_order_effects_on_webgpu_and_cpu() {
    start_module().await;
    if let Some(gpu) = webgpu().await {
        assert_within("webgpu/lens", &second_order_deviations(MODEL_OPENAI, &gpu).await);
    }
    assert_within("cpu/lens", &second_order_deviations(MODEL_HF, &device::cpu()).await);
}

#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn neuron_statistics_on_webgpu() {
    start_module().await;
    let gpu = device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    assert_within("webgpu/stats", &statistics_deviations(MODEL_OPENAI, &gpu, 16).await);
}

/// Each later head's part of the effects against the NumPy reference (`tests/fixtures/heads`).
#[wasm_bindgen_test]
async fn head_terms_on_webgpu_and_cpu() {
    start_module().await;
    if let Some(gpu) = webgpu().await {
        assert_within("webgpu/heads", &heads::head_term_deviations(MODEL_OPENAI, &gpu).await);
    }
    assert_within("cpu/heads", &heads::head_term_deviations(MODEL_OPENAI, &device::cpu()).await);
}

/// The lab's heads of an analysed image through the binding (`Engine.imageHeads`): the
/// reference's head terms of that image (the reference bundle's r_n are `pca.L`).
#[wasm_bindgen_test]
async fn the_lab_heads_through_the_binding() {
    start_module().await;
    let mut engine = engine_with_bundle("cpu").await;
    engine.analyze(DETAIL_PNGS[0].to_vec(), None).await.map_err(message).unwrap();
    let (reference, heads) = heads::reference_head_terms(1);
    let mut ours = Vec::with_capacity(256 * heads);
    for neuron in 0..256 {
        let grid = json(engine.image_heads(1, neuron).await.map_err(message).unwrap());
        ours.extend(grid["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32));
    }
    let deviation = relative_deviation(&ours, &reference[..256 * heads]);
    report!("lab heads through the binding, layer 1: {deviation:.2e} relative");
    assert!(deviation < 1e-4, "{deviation}");
}

/// The fidelity of a neuron's words through the binding (`Engine.neuron`'s card) against the
/// hand computation from the reference's arrays.
#[wasm_bindgen_test]
async fn the_fidelity_of_the_words_through_the_binding() {
    start_module().await;
    let engine = engine_with_bundle("cpu").await;
    for (layer, neuron) in [(0, 3), (1, 4), (2, 200)] {
        let card = engine.neuron(layer, neuron).map_err(message).unwrap();
        let cosine = js_sys::Reflect::get(&js_sys::Reflect::get(&card, &"fidelity".into()).unwrap(), &"cosine".into())
            .unwrap()
            .as_f64()
            .expect("the card has its fidelity");
        let by_hand = fidelity_by_hand(layer)[neuron];
        assert!((cosine - by_hand).abs() < 1e-4, "{layer}:{neuron}: {cosine} against {by_hand}");
    }
}

#[wasm_bindgen_test]
async fn dictionary_and_omp_in_the_browser() {
    start_module().await;
    let mut results = Vec::new();
    if let Some(gpu) = webgpu().await {
        assert_within("webgpu/dictionary", &dictionary_deviations(MODEL_OPENAI, &gpu).await.0);
        results.extend(omp_against_reference(AtomSearch::Device(&gpu)).await);
    }
    assert_within("cpu/dictionary", &dictionary_deviations(MODEL_HF, &device::cpu()).await.0);
    results.extend(omp_against_reference(AtomSearch::Device(&device::cpu())).await);
    results.extend(omp_against_reference(AtomSearch::Gram(&device::cpu())).await);
    for (layer, mismatches, worst) in results {
        report!("browser omp.{layer}: {mismatches} supports differ, worst coefficient deviation {worst:.2e}");
        assert_eq!(mismatches, 0);
        assert!(worst <= 1e-3);
    }
}

#[wasm_bindgen_test]
async fn zero_shot_segmentation_on_cpu() {
    start_module().await;
    assert_segmentation_matches("browser/cpu", segmentation_golden(MODEL_OPENAI, &device::cpu()).await);
}

#[wasm_bindgen_test]
async fn concept_discovery_on_webgpu_and_cpu() {
    start_module().await;
    let devices = webgpu().await.map(|gpu| ("webgpu", gpu)).into_iter().chain([("cpu", device::cpu())]);
    for (label, device) in devices {
        let worst = check_concept_discovery(MODEL_OPENAI, &device).await;
        report!("{label}/concepts: scores within {worst:.2e}");
        assert!(worst < 1e-4, "{label}: {worst}");
    }
}

// ---------------------------------------------------------------------------
// The Engine API of src/web, through its JavaScript-facing methods, on the fixture model with
// a bundle built from the reference's lens data (mean/pca/norms/omp of layers 0, 1, 2); the
// same checks as tests/it/engine.rs makes natively, plus the JavaScript conversions.
// ---------------------------------------------------------------------------

use clip_lens::bundle::{sha256_hex, Storage};
use clip_lens::web::Engine;
use common::engine::{check_engine_concepts, check_mean_ablation, check_steering, reference_bundle, ENGINE_CLASSES};
use wasm_bindgen::{JsCast, JsValue};

/// Takes a Float32Array out of a result object (the rest converts to JSON).
fn take_f32(value: &JsValue, key: &str) -> Vec<f32> {
    let array = js_sys::Reflect::get(value, &key.into())
        .unwrap()
        .dyn_into::<js_sys::Float32Array>()
        .expect("a Float32Array")
        .to_vec();
    js_sys::Reflect::delete_property(value.unchecked_ref::<js_sys::Object>(), &key.into()).unwrap();
    array
}

/// A plain JavaScript object, as the page passes options.
fn options(value: serde_json::Value) -> Option<JsValue> {
    Some(js_sys::JSON::parse(&value.to_string()).unwrap())
}

/// An engine on `backend` (fixture model, OpenAI layout), without a bundle.
async fn fixture_engine(backend: &str) -> Engine {
    Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), backend.into(), None)
        .await
        .map_err(message)
        .unwrap()
}

/// An engine on `backend` (fixture model, OpenAI layout) with the reference bundle loaded.
async fn engine_with_bundle(backend: &str) -> Engine {
    let mut engine = fixture_engine(backend).await;
    assert!(!engine.has_bundle());
    let bundle = reference_bundle(sha256_hex(MODEL_OPENAI));
    engine
        .load_bundle(bundle.manifest_json().unwrap(), bundle.tensors(Storage::F32).unwrap())
        .map_err(message)
        .unwrap();
    assert!(engine.has_bundle());
    engine
}

/// Segments the fixture's concept on the last analysed image (detail image `i`) with its
/// settings; checks the neurons against the reference's and returns the heatmap's relative
/// deviation from `seg_heatmap`.
async fn check_engine_segmentation(label: &str, engine: &mut Engine, i: usize) -> f32 {
    let (concept, layers, k, reference_pairs) = segmentation_settings();
    let result = engine.segment(concept.clone(), Some(layers.clone()), Some(k)).await.map_err(message).unwrap();
    let heatmap = take_f32(&result, "heatmap");
    let result = json(result);
    assert_eq!(
        (result["kind"].as_str(), result["concept"].as_str(), result["size"].as_u64()),
        (Some("text"), Some(concept.as_str()), Some(64))
    );
    let pairs: Vec<[usize; 2]> = result["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|n| [n["neuron"].as_u64().unwrap() as usize, n["layer"].as_u64().unwrap() as usize])
        .collect();
    assert_eq!(pairs, reference_pairs, "{label}: selected [neuron, layer] pairs, best last");
    relative_deviation(&heatmap, &expected()["seg_heatmap"].values[i * 4096..(i + 1) * 4096])
}

#[wasm_bindgen_test]
async fn engine_analyze_and_segment_on_cpu() {
    start_module().await;
    let start = web_time::Instant::now();
    let mut engine = engine_with_bundle("cpu").await;
    assert_eq!(engine.backend(), "cpu");
    let (mut worst_concepts, mut worst_heatmap) = (0f32, 0f32);
    for (i, png) in DETAIL_PNGS.iter().enumerate() {
        let analysis = json(engine.analyze(png.to_vec(), None).await.map_err(message).unwrap());
        worst_concepts = worst_concepts.max(check_engine_concepts("cpu", i, &analysis));
        // Four classes in the bundle: all of them, best first, probabilities summing to 1.
        let classes = analysis["classes"].as_array().unwrap();
        assert_eq!(classes.len(), 4);
        assert!(classes.windows(2).all(|w| w[0]["cosine"].as_f64() >= w[1]["cosine"].as_f64()));
        assert!((classes.iter().map(|c| c["probability"].as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-4);
        assert_eq!(
            analysis["layers"].as_array().unwrap().iter().map(|l| l["layer"].as_u64().unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert!(!analysis["words"].as_array().unwrap().is_empty() && analysis["words"].as_array().unwrap().len() <= 10);
        let geometry = &analysis["geometry"];
        assert_eq!(geometry["size"], 64);
        assert!(
            geometry["crop_box"].as_array().unwrap().len() == 4 && geometry["original_width"].as_u64().unwrap() > 0
        );
        for key in ["decode", "forward", "lens", "total"] {
            assert!(analysis["timings_ms"][key].as_f64().unwrap() >= 0.0, "timing {key}");
        }
        worst_heatmap = worst_heatmap.max(check_engine_segmentation("cpu", &mut engine, i).await);
    }
    report!("engine/cpu: layer-1 concepts on 6 images: same neurons and words, scores within {worst_concepts:.2e} of the best; seg_heatmap within {worst_heatmap:.2e}");
    assert!(worst_concepts < 1e-4, "{worst_concepts}");
    assert!(worst_heatmap <= MODEL_TOLERANCE, "{worst_heatmap}");

    // The last image is detail image 5: a class concept and the predicted class reuse its
    // activations. `cat` is the normalised reference embedding of the fixture's concept text.
    let (concept, layers, k, _) = segmentation_settings();
    let text = engine.segment(concept, Some(layers.clone()), Some(k)).await.map_err(message).unwrap();
    let class = engine.segment("class:Cat".into(), Some(layers.clone()), Some(k)).await.map_err(message).unwrap();
    let (text_map, class_map) = (take_f32(&text, "heatmap"), take_f32(&class, "heatmap"));
    let class = json(class);
    assert_eq!(
        (class["kind"].as_str(), class["concept"].as_str(), class["class_index"].as_u64()),
        (Some("class"), Some("cat"), Some(0))
    );
    assert_eq!(json(text)["neurons"].as_array().unwrap().len(), k);
    let class_vs_text = relative_deviation(&class_map, &text_map);
    report!("engine/cpu: class:cat vs the text concept: heatmaps within {class_vs_text:.2e}");
    assert!(class_vs_text <= MODEL_TOLERANCE);
    let analysis = json(
        engine
            .analyze(DETAIL_PNGS[5].to_vec(), options(serde_json::json!({"top_classes": 2, "top_words": 3})))
            .await
            .map_err(message)
            .unwrap(),
    );
    assert_eq!(analysis["classes"].as_array().unwrap().len(), 2);
    assert!(analysis["words"].as_array().unwrap().len() <= 3);
    let predicted = engine.segment("predicted".into(), None, None).await.map_err(message).unwrap();
    let map = take_f32(&predicted, "heatmap");
    let predicted = json(predicted);
    assert_eq!(predicted["kind"], "predicted");
    assert_eq!(predicted["concept"], analysis["classes"][0]["name"]);
    assert_eq!(predicted["layers"], serde_json::json!([0, 1, 2]));
    // 200 neurons by default (the paper's), of the 768 of the three layers.
    assert_eq!(predicted["neurons"].as_array().unwrap().len(), 200);
    assert!(map.len() == 64 * 64 && map.iter().all(|v| (0.0..=1.0).contains(v)));
    let all = engine.segment("predicted".into(), Some(vec![2]), Some(10_000)).await.map_err(message).unwrap();
    assert_eq!(take_f32(&all, "heatmap").len(), 64 * 64);
    let all = json(all);
    assert_eq!(all["neurons"].as_array().unwrap().len(), 256, "top_neurons is clamped to the layers' neurons");
    report!("engine/cpu: browser time {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
}

#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn engine_analyze_and_segment_on_webgpu() {
    start_module().await;
    device::gpu_async().await.expect("a WebGPU adapter is required for this test");
    let start = web_time::Instant::now();
    let mut engine = engine_with_bundle("webgpu").await;
    assert_eq!(engine.backend(), "webgpu");
    let analysis = json(engine.analyze(DETAIL_PNGS[0].to_vec(), None).await.map_err(message).unwrap());
    let concepts = check_engine_concepts("webgpu", 0, &analysis);
    let heatmap = check_engine_segmentation("webgpu", &mut engine, 0).await;
    report!("engine/webgpu: layer-1 concepts of img000: scores within {concepts:.2e} of the best; seg_heatmap within {heatmap:.2e}; timings {}; browser time {:.0} ms", analysis["timings_ms"], start.elapsed().as_secs_f64() * 1e3);
    assert!(concepts < 1e-4, "{concepts}");
    assert!(heatmap <= MODEL_TOLERANCE, "{heatmap}");
}

#[wasm_bindgen_test]
async fn engine_neuron_cards_and_search() {
    start_module().await;
    let mut engine = engine_with_bundle("cpu").await;
    let bundle = reference_bundle(String::new());
    let summary = json(engine.bundle_summary().map_err(message).unwrap());
    assert_eq!((summary["layers"].clone(), summary["images"].clone()), (serde_json::json!([0, 1, 2]), 48.into()));
    let card = json(engine.neuron(1, 23).map_err(message).unwrap());
    let words: Vec<(String, f32)> = serde_json::from_value(card["words"].clone()).unwrap();
    assert_eq!(words, bundle.describe(1, 23).unwrap());
    assert_eq!(card["threshold"].as_f64().unwrap() as f32, bundle.layers[&1].norms[23 * 6]);
    let images = card["top_images"].as_array().unwrap();
    assert_eq!(images.len(), 6);
    for (j, image) in images.iter().enumerate() {
        let id = (23 + 7 * j) % 48;
        assert_eq!(
            image,
            &serde_json::json!({"id": id, "path": format!("img{id:03}.png"), "thumbnail": format!("thumbnails/{id}.jpg")})
        );
    }
    // Nearest classes: all four, by the cosine of r_n with each class, best first.
    let r = &bundle.layers[&1].direction[23 * 32..24 * 32];
    let classes = card["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 4);
    for class in classes {
        let index = class["index"].as_u64().unwrap() as usize;
        let cosine: f32 =
            r.iter().zip(&bundle.class_embeds[index * 32..(index + 1) * 32]).map(|(a, b)| a * b).sum::<f32>()
                / r.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((class["cosine"].as_f64().unwrap() as f32 - cosine).abs() < 1e-5);
        assert_eq!(class["name"], ENGINE_CLASSES[index].0);
    }
    assert!(classes.windows(2).all(|w| w[0]["cosine"].as_f64() >= w[1]["cosine"].as_f64()));
    assert!(message(engine.neuron(7, 0).unwrap_err()).contains("layer 7 is not in the bundle"));
    assert!(message(engine.neuron(1, 256).unwrap_err()).contains("neuron 256 is out of range"));

    // A word of the dictionary (case-insensitive): the neurons holding it, with coefficients.
    let (word, holders) = bundle.neurons_with_word("genes").unwrap();
    assert!(!holders.is_empty());
    let found = json(engine.search("GENES".into(), None).await.map_err(message).unwrap());
    assert_eq!(found["word"].as_str(), Some(word.as_str()));
    let word_neurons = found["word_neurons"].as_array().unwrap();
    assert_eq!(word_neurons.len(), holders.len());
    for neuron in word_neurons {
        let (layer, index) = (neuron["layer"].as_u64().unwrap() as usize, neuron["neuron"].as_u64().unwrap() as usize);
        let coefficient = bundle
            .describe(layer, index)
            .unwrap()
            .into_iter()
            .find(|(w, _)| *w == word)
            .expect("the word is in its decomposition")
            .1;
        assert_eq!(neuron["coefficient"].as_f64().unwrap() as f32, coefficient);
    }
    let text_neurons = found["text_neurons"].as_array().unwrap();
    assert_eq!(text_neurons.len(), 20);
    assert!(text_neurons.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    // Free text: no word, neurons by r_n . e(text) / |e| (the text tower's embedding of the
    // fixture's first probe is the reference's within the model tolerance).
    let found = json(engine.search("a photo of a cat.".into(), Some(5)).await.map_err(message).unwrap());
    assert!(found["word"].is_null() && found["word_neurons"].as_array().unwrap().is_empty());
    let probe = &expected()["probe_text_embeds"].values[..32];
    let reference: Vec<(usize, usize)> =
        bundle.neurons_matching(probe, 5).unwrap().into_iter().map(|(l, n, _)| (l, n)).collect();
    let ours: Vec<(usize, usize)> = found["text_neurons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["layer"].as_u64().unwrap() as usize, n["neuron"].as_u64().unwrap() as usize))
        .collect();
    assert_eq!(ours, reference);
    assert!(message(engine.search(" ".into(), None).await.unwrap_err()).contains("the search text is empty"));
}

/// The explorer's methods through the bindings: an ablation and a steering on the analysed image
/// against the hand computation (the native tests' shared check), a list, a word page, the CSV exports and
/// their errors.
#[wasm_bindgen_test]
async fn engine_ablation_lists_word_pages_and_exports() {
    start_module().await;
    let mut engine = engine_with_bundle("cpu").await;
    let request = || options(serde_json::json!({"kind": "neurons", "neurons": "1:4,1:17"})).unwrap();
    assert!(message(engine.ablate(request()).await.unwrap_err()).contains("analyse an image first"));
    engine.analyze(DETAIL_PNGS[0].to_vec(), None).await.map_err(message).unwrap();
    let result = json(engine.ablate(request()).await.map_err(message).unwrap());
    check_mean_ablation(&result, 0, &[4, 17]);
    let steer = options(serde_json::json!({"kind": "steer", "neurons": "1:4=3,1:17=-1"})).unwrap();
    check_steering(&json(engine.ablate(steer).await.map_err(message).unwrap()), 0, &[(4, 3.0), (17, -1.0)]);
    let bad = engine.ablate(options(serde_json::json!({"kind": "rank-one", "layer": 1, "x": 2})).unwrap()).await;
    let error = bad.unwrap_err();
    assert_eq!(kind(&error).as_deref(), Some("bad-input"));
    assert!(message(error).contains("invalid ablation request"));
    let card = json(engine.neuron(1, 23).map_err(message).unwrap());
    assert!(card["analysed_norm"].as_f64().unwrap() > 0.0 && card["distribution"].is_null());

    let list = json(engine.neuron_list("1:23,0:5".into()).map_err(message).unwrap());
    assert_eq!(list["cards"].as_array().unwrap().len(), 2);
    assert!(list["shared_words"].is_array());
    assert!(message(engine.neuron_list("1:23,9:1".into()).unwrap_err()).contains("9:1: layer 9 is not in the bundle"));
    let page = json(engine.word_page("genes".into(), Some(2)).map_err(message).unwrap());
    let holders = reference_bundle(String::new()).neurons_with_word("genes").unwrap().1;
    assert_eq!(page["neurons"].as_array().unwrap().len(), holders.len());
    assert_eq!(page["neurons"][0]["top_images"].as_array().unwrap().len(), 2);
    assert!(message(engine.word_page("zzzz".into(), None).unwrap_err()).contains("“zzzz” is not a word"));
    let csv = engine.neuron_csv(1, 23).map_err(message).unwrap();
    assert!(csv.starts_with("layer,neuron,field,index,label,value\n"));
    let csv = engine.analysis_csv().map_err(message).unwrap();
    // The description holds a comma: the field is quoted.
    assert!(csv.lines().any(|l| l.starts_with("class,\"after: mean-ablated 2 neurons (1:4, 1:17)\",,,0,")), "{csv}");
}

#[wasm_bindgen_test]
async fn engine_adversarial_and_fooled() {
    start_module().await;
    let mut engine = engine_with_bundle("cpu").await;
    let result = json(
        engine
            .adversarial("cat".into(), "dog".into(), options(serde_json::json!({"neurons": 60, "words": 20})))
            .await
            .map_err(message)
            .unwrap(),
    );
    assert_eq!((result["class0"].as_str(), result["class1"].as_str()), (Some("cat"), Some("dog")));
    assert_eq!(result["layers"], serde_json::json!([0, 1, 2]));
    assert_eq!(result["neurons"].as_array().unwrap().len(), 60);
    let words = result["words"].as_array().unwrap();
    let descriptions = result["descriptions"].as_array().unwrap();
    assert!(!words.is_empty() && words.len() <= 20, "{result}");
    assert!(words.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    assert!(words.iter().all(|w| w["score"].as_f64().unwrap() > 0.0 && !w["neurons"].as_array().unwrap().is_empty()));
    assert!(!descriptions.is_empty());
    for description in descriptions {
        let text = description.as_str().unwrap().to_lowercase();
        assert!(text.contains("dog") && !text.contains("cat"), "{text}");
    }
    report!("engine/adversarial cat <- dog: {} words, e.g. {}", words.len(), descriptions[0]);
    // A free-text class goes through the text tower; the same class twice is an error.
    let free = json(engine.adversarial("a paper crane".into(), "dog".into(), None).await.map_err(message).unwrap());
    assert!(free["descriptions"].as_array().unwrap().iter().all(|d| !d.as_str().unwrap().contains("a paper crane")));
    assert!(message(engine.adversarial("Cat".into(), "cat".into(), None).await.unwrap_err()).contains("same class"));
    assert!(message(
        engine.adversarial("cat".into(), "dog".into(), options(serde_json::json!({"neuron": 3}))).await.unwrap_err()
    )
    .contains("invalid adversarial options"));

    // fooled: score = (emb / |emb|) . (e(cat) - e(dog)), with the classes' bundle rows.
    let bundle = reference_bundle(String::new());
    for png in &DETAIL_PNGS[..2] {
        let result = json(engine.fooled(png.to_vec(), "cat".into(), "dog".into()).await.map_err(message).unwrap());
        let embedding = engine.embed_image(png.to_vec()).await.map_err(message).unwrap();
        let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        let score: f32 = embedding
            .iter()
            .enumerate()
            .map(|(j, x)| x / norm * (bundle.class_embeds[j] - bundle.class_embeds[32 + j]))
            .sum();
        assert!((result["score"].as_f64().unwrap() as f32 - score).abs() < 1e-5, "{result} vs {score}");
        assert_eq!(result["fooled"].as_bool(), Some(score > 0.0));
    }
}

#[wasm_bindgen_test]
async fn engine_errors_are_messages() {
    start_module().await;
    let mut engine = Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "cpu".into(), None)
        .await
        .map_err(message)
        .unwrap();
    assert!(message(engine.analyze(DETAIL_PNGS[0].to_vec(), None).await.unwrap_err()).contains("no bundle is loaded"));
    assert!(message(engine.neuron(1, 0).unwrap_err()).contains("no bundle is loaded"));
    // A bundle of other weights (the same model in the other layout has another sha256).
    let other = reference_bundle(sha256_hex(MODEL_HF));
    let mismatch =
        message(engine.load_bundle(other.manifest_json().unwrap(), other.tensors(Storage::F32).unwrap()).unwrap_err());
    assert!(mismatch.contains("bundle/model mismatch"), "{mismatch}");
    assert!(!engine.has_bundle());
    assert!(message(engine.load_bundle("{}".into(), vec![]).unwrap_err()).contains("invalid bundle"));

    let bundle = reference_bundle(sha256_hex(MODEL_OPENAI));
    engine
        .load_bundle(bundle.manifest_json().unwrap(), bundle.tensors(Storage::F16).unwrap())
        .map_err(message)
        .unwrap();
    assert!(message(engine.segment("predicted".into(), None, None).await.unwrap_err())
        .contains("no image has been analysed yet"));
    let undecodable = message(engine.analyze(b"not an image".to_vec(), None).await.unwrap_err());
    assert!(undecodable.contains("unsupported image format"), "{undecodable}");
    assert!(message(engine.analyze(Vec::new(), None).await.unwrap_err()).contains("empty image"));
    assert!(message(
        engine.analyze(DETAIL_PNGS[0].to_vec(), options(serde_json::json!({"topWords": 3}))).await.unwrap_err()
    )
    .contains("invalid analyze options"));
    engine.analyze(DETAIL_PNGS[0].to_vec(), None).await.map_err(message).unwrap();
    let unknown = message(engine.segment("class:zebra".into(), None, None).await.unwrap_err());
    assert!(unknown.contains("unknown class \"zebra\""), "{unknown}");
    assert!(message(engine.segment("   ".into(), None, None).await.unwrap_err()).contains("the concept text is empty"));
    assert!(message(engine.segment("class: ".into(), None, None).await.unwrap_err()).contains("needs a class name"));
    assert!(message(engine.segment("predicted".into(), Some(vec![3]), None).await.unwrap_err())
        .contains("layer 3 is not in the bundle"));
    assert!(message(engine.segment("predicted".into(), None, Some(0)).await.unwrap_err()).contains("at least 1"));
    assert!(message(engine.fooled(b"GIF89a".to_vec(), "cat".into(), "dog".into()).await.unwrap_err()).contains("image"));
}

/// `activationMap` of a neuron equals the fixture's post-GELU activations of its patches,
/// upsampled and normalised as segmentation does (`seg_heatmap` checks that step), and its peak
/// is the reference's largest patch activation.
#[wasm_bindgen_test]
async fn engine_activation_map_matches_reference_activations() {
    start_module().await;
    use clip_lens::apps::segment::heatmap_from_patches;
    let engine = Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "cpu".into(), None)
        .await
        .map_err(message)
        .unwrap();
    let (tokens, neurons) = (17, 256);
    let mut worst = 0f32;
    for (i, layer, neuron) in [(0, 2, 4), (1, 1, 17), (3, 0, 200)] {
        let result = engine.activation_map(DETAIL_PNGS[i].to_vec(), layer, neuron).await.map_err(message).unwrap();
        let heatmap = take_f32(&result, "heatmap");
        let result = json(result);
        assert_eq!(
            (result["layer"].as_u64(), result["neuron"].as_u64(), result["size"].as_u64()),
            (Some(layer as u64), Some(neuron as u64), Some(64))
        );
        let activations = &expected()[format!("post_gelu.{layer}").as_str()].values;
        let patches: Vec<f32> = (1..tokens).map(|t| activations[(i * tokens + t) * neurons + neuron]).collect();
        let reference = heatmap_from_patches(&patches, 4, 16).unwrap();
        worst = worst.max(relative_deviation(&heatmap, &reference));
        let peak = patches.iter().copied().fold(f32::MIN, f32::max);
        assert!(
            (result["peak"].as_f64().unwrap() as f32 - peak).abs() <= 1e-4 * peak.abs().max(1.0),
            "peak {} vs {peak}",
            result["peak"]
        );
    }
    report!("engine/cpu: activation maps of 3 neurons within {worst:.2e} of the reference activations");
    assert!(worst <= MODEL_TOLERANCE, "{worst}");
    assert!(message(engine.activation_map(DETAIL_PNGS[0].to_vec(), 4, 0).await.unwrap_err())
        .contains("layer 4 is out of range"));
    assert!(message(engine.activation_map(DETAIL_PNGS[0].to_vec(), 0, 256).await.unwrap_err())
        .contains("neuron 256 is out of range"));
}

/// An engine from the towers of `clip-lens convert` (f32): the same image and text embeddings
/// as from the original file, bundles checked against the source's sha256, the text tower
/// loaded on demand and checked against the manifest.
#[wasm_bindgen_test]
async fn engine_from_converted_towers() {
    start_module().await;
    use clip_lens::convert::{split_towers, WeightDtype};
    let (image, text, manifest) =
        split_towers(&clip_lens::WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap(), WeightDtype::F32).unwrap();
    let manifest_json = serde_json::to_string(&manifest).unwrap();
    let mut converted =
        Engine::create_from_converted(manifest_json.clone(), image.clone(), CONFIG_JSON.into(), "cpu".into(), None)
            .await
            .map_err(message)
            .unwrap();
    let mut original = Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "cpu".into(), None)
        .await
        .map_err(message)
        .unwrap();
    assert!(!converted.text_tower_available() && original.text_tower_available());

    let ours = converted.embed_image(DETAIL_PNGS[2].to_vec()).await.map_err(message).unwrap();
    let theirs = original.embed_image(DETAIL_PNGS[2].to_vec()).await.map_err(message).unwrap();
    assert_eq!(ours, theirs, "image embeddings from the converted image tower");

    let bundle = reference_bundle(sha256_hex(MODEL_OPENAI));
    converted
        .load_bundle(bundle.manifest_json().unwrap(), bundle.tensors(Storage::F32).unwrap())
        .map_err(message)
        .unwrap();

    let before = converted.embed_text("a photo of a cat".into()).await.unwrap_err();
    assert_eq!(kind(&before).as_deref(), Some("needs-text-tower"), "{}", message(before.clone()));
    assert!(message(before).contains("text tower of the converted weights is not loaded yet"));
    let wrong = converted.load_text_tower(image).unwrap_err();
    assert_eq!(kind(&wrong).as_deref(), Some("bad-input"));
    let wrong = message(wrong);
    assert!(wrong.contains("text tower file does not match its manifest"), "{wrong}");
    converted.load_text_tower(text).map_err(message).unwrap();
    assert!(converted.text_tower_available());
    let ours = converted.embed_text("a photo of a cat".into()).await.map_err(message).unwrap();
    let theirs = original.embed_text("a photo of a cat".into()).await.map_err(message).unwrap();
    assert_eq!(ours, theirs, "text embeddings from the converted text tower");

    let mut corrupt = manifest.clone();
    corrupt.image.sha256 = "0".repeat(64);
    let (image, _, _) =
        split_towers(&clip_lens::WeightFile::from_bytes(MODEL_OPENAI.to_vec()).unwrap(), WeightDtype::F16).unwrap();
    let stale = message(
        Engine::create_from_converted(
            serde_json::to_string(&corrupt).unwrap(),
            image,
            CONFIG_JSON.into(),
            "cpu".into(),
            None,
        )
        .await
        .err()
        .unwrap(),
    );
    assert!(stale.contains("image tower file does not match its manifest"), "{stale}");
    report!("engine/cpu: converted towers give the original's image and text embeddings exactly");
}

/// The demo's converted towers with their text side (`embed-text`'s file), as the page loads
/// them: without a bundle the engine classifies with the text side, as it does with the bundle
/// made from that file, on WebGPU (where there is an adapter) and the CPU.
#[wasm_bindgen_test]
async fn engine_classifies_with_the_text_side_without_a_bundle() {
    start_module().await;
    let manifest = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/generated/tiny-converted/manifest.json"));
    let image = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/generated/tiny-converted/image.safetensors"));
    let text = DEMO_TEXT_EMBEDDINGS;
    let bundle_manifest = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/generated/tiny-bundle/manifest.json"));
    let bundle_tensors =
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/generated/tiny-bundle/lens.safetensors"));
    let backends: &[&str] = if webgpu().await.is_some() { &["webgpu", "cpu"] } else { &["cpu"] };
    for &backend in backends {
        let create =
            || Engine::create_from_converted(manifest.into(), image.to_vec(), CONFIG_JSON.into(), backend.into(), None);
        let mut alone = create().await.map_err(message).unwrap();
        let refused = message(alone.analyze(DETAIL_PNGS[1].to_vec(), None).await.unwrap_err());
        assert!(refused.contains("no bundle is loaded: open one, or build one"), "{refused}");
        alone.load_text_embeddings(text.to_vec()).map_err(message).unwrap();
        assert!(alone.has_text_embeddings() && !alone.has_bundle());
        let classes_alone = alone.analyze(DETAIL_PNGS[1].to_vec(), None).await.map_err(message).unwrap();
        let mut with_bundle = create().await.map_err(message).unwrap();
        with_bundle.load_bundle(bundle_manifest.into(), bundle_tensors.to_vec()).map_err(message).unwrap();
        let full = with_bundle.analyze(DETAIL_PNGS[1].to_vec(), None).await.map_err(message).unwrap();
        let json = |value: &JsValue| -> serde_json::Value {
            serde_json::from_str(&js_sys::JSON::stringify(value).unwrap().as_string().unwrap()).unwrap()
        };
        let (alone_json, full_json) = (json(&classes_alone), json(&full));
        assert_eq!(alone_json["layers"], serde_json::json!([]), "{backend}");
        let names = |v: &serde_json::Value| {
            v["classes"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect::<Vec<_>>()
        };
        assert!(!names(&alone_json).is_empty());
        assert_eq!(names(&alone_json), names(&full_json), "{backend}: the text side's classes are the bundle's");
        report!("engine/{backend}: without a bundle the text side classifies as the bundle does");
    }
}

/// Real-size image towers in the browser on the CPU backend: random-weight ViT-B/32 and ViT-L/14
/// (f16 storage, as `clip-lens convert --dtype f16` writes them) load tensor by tensor from one
/// copy of the file and run one forward without running out of memory; reports the wasm memory
/// (its peak so far) and the JS heap.
#[wasm_bindgen_test]
async fn real_size_image_towers_load_and_run_on_cpu() {
    start_module().await;
    use burn::tensor::{Distribution, Tensor};
    use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
    use clip_lens::{ClipConfig, ClipModel, Layout, Towers, WeightFile};
    let cpu = device::cpu();
    for (name, config) in [("ViT-B/32", ClipConfig::vit_b_32()), ("ViT-L/14", ClipConfig::vit_l_14())] {
        let bytes =
            random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 7);
        let file_mb = bytes.len() as f64 / 1e6;
        let start = web_time::Instant::now();
        let model = ClipModel::load(&WeightFile::from_bytes(bytes).unwrap(), &config, Towers::Vision, &cpu)
            .map_err(|e| e.to_string())
            .unwrap();
        let load_s = start.elapsed().as_secs_f64();
        let size = config.vision.image_size;
        let pixels = Tensor::<4>::random([1, 3, size, size], Distribution::Normal(0.0, 1.0), &cpu);
        let start = web_time::Instant::now();
        let embedding = device::read_f32(model.vision().unwrap().encode(pixels).unwrap()).await.unwrap();
        let forward_s = start.elapsed().as_secs_f64();
        assert_eq!(embedding.len(), config.embed_dim, "{name}");
        assert!(
            embedding.iter().all(|x| x.is_finite()) && embedding.iter().any(|&x| x != 0.0),
            "{name}: a degenerate embedding"
        );
        let (wasm, heap) = memory_figures();
        report!("browser/cpu {name}: {file_mb:.0} MB f16 image tower loaded in {load_s:.1} s, forward {forward_s:.1} s; wasm memory {:.0} MB (peak so far), JS heap {:.0} MB", wasm / 1e6, heap / 1e6);
    }
}

/// Real-size image towers on WebGPU: random-weight ViT-B/32 and ViT-L/14 (f16 files, as
/// `clip-lens convert --dtype f16` writes them) load through the page's `Engine`, tensor by
/// tensor onto the GPU, as f32. Reports the wasm memory, the JS heap and what the GPU allocator
/// holds, which must cover every weight in f32. (A ViT-L/14 forward is ~160 GFLOP: about half an
/// hour on SwiftShader's 0.02-0.2 GFLOP/s, so only ViT-B/32 runs one, in the analysis test.)
#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn real_size_image_towers_load_on_webgpu() {
    start_module().await;
    use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
    use clip_lens::{ClipConfig, Layout};
    for (name, config) in [("ViT-B/32", ClipConfig::vit_b_32()), ("ViT-L/14", ClipConfig::vit_l_14())] {
        let bytes =
            random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 13);
        let f32_bytes = 2.0 * bytes.len() as f64; // every f16 value becomes an f32 on the GPU
        let start = web_time::Instant::now();
        let engine = Engine::create(bytes, Some(config.to_hf_json().to_string()), "webgpu".into(), None)
            .await
            .map_err(message)
            .unwrap();
        let load_s = start.elapsed().as_secs_f64();
        assert_eq!(engine.backend(), "webgpu", "{name}");
        let memory = json(engine.gpu_memory().map_err(message).unwrap());
        let (in_use, reserved) = (memory["bytes_in_use"].as_f64().unwrap(), memory["bytes_reserved"].as_f64().unwrap());
        assert!(
            in_use >= 0.99 * f32_bytes && reserved >= in_use,
            "{name}: the GPU allocator holds {in_use} bytes ({reserved} reserved) for {f32_bytes} bytes of f32 weights"
        );
        let (wasm, heap) = memory_figures();
        report!(
            "browser/webgpu {name}: {:.0} MB f16 image tower loaded in {load_s:.1} s; GPU allocator {:.0} MB in use, {:.0} MB reserved; wasm memory {:.0} MB (peak so far), JS heap {:.0} MB",
            f32_bytes / 2e6,
            in_use / 1e6,
            reserved / 1e6,
            wasm / 1e6,
            heap / 1e6
        );
        drop(engine);
    }
}

/// On WebGPU the engine respects the device's largest buffer: a weight tensor above it is
/// refused with its name, before anything is uploaded.
#[cfg(not(feature = "threads"))]
#[wasm_bindgen_test]
async fn engine_refuses_tensors_above_the_buffer_limit() {
    start_module().await;
    let refused = message(
        Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "webgpu".into(), Some(4096.0))
            .await
            .err()
            .expect("refused"),
    );
    assert!(
        refused.contains("more than this device's largest buffer (0.0 MiB)") && refused.contains("needs"),
        "{refused}"
    );
    // The CPU has no such limit.
    Engine::create(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON.into()), "cpu".into(), Some(4096.0))
        .await
        .map_err(message)
        .unwrap();
}

/// The demo's text side: `embed-text` of the fixture model with the fixture's 400 words.
const DEMO_TEXT_EMBEDDINGS: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/generated/tiny-converted/text-embeddings.safetensors"));

/// Calls method `name` of `target` with `args` and awaits the promise it returns.
async fn call_async(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let method: js_sys::Function = js_sys::Reflect::get(target, &name.into())?.dyn_into()?;
    let promise = method.apply(target, &args.iter().collect::<js_sys::Array>())?;
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&promise)).await
}

/// A new, empty top folder `name` of this origin's private file system.
async fn storage_folder(name: &str) -> JsValue {
    let storage =
        js_sys::Reflect::get(&js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap(), &"storage".into())
            .unwrap();
    let root = call_async(&storage, "getDirectory", &[]).await.unwrap();
    let recursive = js_sys::JSON::parse(r#"{"recursive": true}"#).unwrap();
    let _ = call_async(&root, "removeEntry", &[name.into(), recursive]).await;
    let create = js_sys::JSON::parse(r#"{"create": true}"#).unwrap();
    call_async(&root, "getDirectoryHandle", &[name.into(), create]).await.unwrap()
}

/// The bytes of file `name` of `folder`, or `None` when it has none.
async fn stored_file(folder: &JsValue, name: &str) -> Option<Vec<u8>> {
    let handle = call_async(folder, "getFileHandle", &[name.into()]).await.ok()?;
    let file = call_async(&handle, "getFile", &[]).await.unwrap();
    let bytes = call_async(&file, "arrayBuffer", &[]).await.unwrap();
    Some(js_sys::Uint8Array::new(&bytes).to_vec())
}

/// Builds a bundle through the page's binding (`Engine.buildBundle`: the 48 fixture images read
/// by a JavaScript callback, progress and the yield point as callbacks, the files in `folder`,
/// the fixture's words, layers 0-2, k 6, 8 components): its result (the error's message), and
/// how many progress events and yield-point calls it made.
async fn build_fixture_bundle(engine: &mut Engine, folder: JsValue) -> (Result<(), String>, usize, usize) {
    use js_sys::{Function, Promise, Uint8Array};
    use wasm_bindgen::closure::Closure;
    let listed: Vec<serde_json::Value> =
        FIXTURE_PNGS.iter().map(|(name, bytes)| serde_json::json!({"name": name, "size": bytes.len()})).collect();
    let read = Closure::<dyn FnMut(JsValue) -> Promise>::new(|name: JsValue| {
        let name = name.as_string().unwrap_or_default();
        let bytes = FIXTURE_PNGS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).unwrap_or_default();
        Promise::resolve(&JsValue::from(Uint8Array::from(bytes)))
    });
    let events = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let counted = events.clone();
    let progress = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| counted.set(counted.get() + 1));
    let asked = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let counted_asks = asked.clone();
    let control = Closure::<dyn FnMut() -> Promise>::new(move || {
        counted_asks.set(counted_asks.get() + 1);
        Promise::resolve(&JsValue::TRUE)
    });
    let images = js_sys::JSON::parse(&serde_json::Value::Array(listed).to_string()).unwrap();
    // The fixture words and the classes from the model's text side (the demo's file, made by
    // `embed-text` from these weights): the text tower would take minutes on SwiftShader.
    engine.load_text_embeddings(DEMO_TEXT_EMBEDDINGS.to_vec()).map_err(message).unwrap();
    let options = options(serde_json::json!({"layers": [0, 1, 2], "top_k": 6, "components": 8, "batch": 16})).unwrap();
    let function = |closure: &JsValue| closure.unchecked_ref::<Function>().clone();
    let result = engine
        .build_bundle(
            images,
            function(read.as_ref()),
            folder,
            options,
            function(progress.as_ref()),
            function(control.as_ref()),
        )
        .await
        .map(|_| ())
        .map_err(message);
    (result, events.get(), asked.get())
}

/// A bundle built through the page's binding ([`build_fixture_bundle`], into a folder of the
/// origin-private file system, as the page keeps them): its statistics match the reference's
/// (1e-4 relative on the CPU, 1e-3 on WebGPU), on each backend there is.
#[wasm_bindgen_test]
async fn a_bundle_built_in_the_page_matches_the_reference() {
    start_module().await;
    let backends: &[&str] = if webgpu().await.is_some() { &["webgpu", "cpu"] } else { &["cpu"] };
    for &backend in backends {
        let mut engine = fixture_engine(backend).await;
        let folder = storage_folder(&format!("build-test-{backend}")).await;
        let (result, events, asked) = build_fixture_bundle(&mut engine, folder.clone()).await;
        result.unwrap();
        assert!(
            stored_file(&folder, ".precompute-checkpoint.safetensors").await.is_none(),
            "the checkpoint is removed at the end"
        );
        let file = |name: &'static str| {
            let folder = folder.clone();
            async move { stored_file(&folder, name).await.unwrap_or_else(|| panic!("{name} was not written")) }
        };
        let bundle = clip_lens::bundle::Bundle::from_parts(
            &String::from_utf8(file("manifest.json").await).unwrap(),
            file("lens.safetensors").await,
        )
        .unwrap();
        assert!(engine.has_bundle() && events > 0 && asked > 0, "{backend}");
        assert_eq!(bundle.manifest.words, WORDS.lines().collect::<Vec<_>>(), "{backend}");
        check_bundle_statistics(&bundle, &format!("build/{backend}"), if backend == "cpu" { 1e-4 } else { 1e-3 });
        check_format_5_through_the_bindings(&engine, backend);
    }
}

/// Format 5 of a bundle built in the page, through the bindings: a card's heads (layer 1 of the
/// 4-layer fixture: 2 later layers x 4 heads), its 8 neighbours, its typical images in 5 bands,
/// its exact percentiles (no bounds), and the layer's stored map.
fn check_format_5_through_the_bindings(engine: &Engine, backend: &str) {
    let card = json(engine.neuron(1, 4).map_err(message).unwrap());
    assert_eq!(card["heads"]["layers"], serde_json::json!([2, 3]), "{backend}");
    assert_eq!(card["heads"]["values"].as_array().unwrap().len(), 8, "{backend}");
    assert_eq!(card["neighbours"].as_array().unwrap().len(), 8, "{backend}");
    assert!(card["neighbours"].as_array().unwrap().iter().all(|n| n["neuron"].as_u64().unwrap() != 4));
    let bands = card["typical"].as_array().unwrap();
    let sampled: usize = bands.iter().map(|band| band["images"].as_array().unwrap().len()).sum();
    assert!(bands.len() == 5 && (1..=20).contains(&sampled), "{backend}: {bands:?}");
    assert!(card["distribution"]["percentile_bounds"].as_array().unwrap().iter().all(|b| b.is_null()), "{backend}");
    let map = json(engine.neuron_map(1).map_err(message).unwrap());
    assert_eq!((map["points"].as_array().unwrap().len(), map["stored"].as_bool()), (512, Some(true)), "{backend}");
}

/// A folder of the browser's storage that is full: a `FileSystemDirectoryHandle` (by its
/// prototype) whose files do not exist until made, and whose writes fail as a full quota does,
/// with a `QuotaExceededError`.
fn full_storage_folder() -> JsValue {
    let make = js_sys::Function::new_no_args(
        r#"
        const notFound = () => Promise.reject(new DOMException("absent", "NotFoundError"));
        const full = () => Promise.reject(new DOMException("the quota is reached", "QuotaExceededError"));
        const stream = { write: full, close: full, abort: () => Promise.resolve() };
        const file = { createWritable: () => Promise.resolve(stream) };
        const folder = Object.create(FileSystemDirectoryHandle.prototype);
        const made = (options) => options && options.create;
        folder.getDirectoryHandle = (name, options) => made(options) ? Promise.resolve(folder) : notFound();
        folder.getFileHandle = (name, options) => made(options) ? Promise.resolve(file) : notFound();
        folder.removeEntry = () => notFound();
        return folder;
        "#,
    );
    make.call0(&JsValue::NULL).unwrap()
}

/// A build whose storage is full stops with a message that says so and names the file, and
/// leaves no bundle loaded.
#[wasm_bindgen_test]
async fn a_full_storage_stops_a_build_with_a_message_that_says_so() {
    start_module().await;
    let mut engine = fixture_engine("cpu").await;
    let (result, _, _) = build_fixture_bundle(&mut engine, full_storage_folder()).await;
    let error = result.unwrap_err();
    assert!(
        error.contains("the browser's storage is full:") && error.contains(".safetensors cannot be written"),
        "{error}"
    );
    assert!(!engine.has_bundle(), "{error}");
}
