//! The explorer's logic natively (issue 15): ablations on the analysed image against a hand
//! computation from the reference's tensors, neuron lists, word pages, the analysed image's
//! norm on a card and the CSV exports. The page's e2e checks (www/e2e.mjs) drive the same
//! engine methods through the bindings.

use crate::common::engine::{check_mean_ablation, check_steering, engine_with, reference_bundle, ENGINE_CLASSES};
use crate::common::*;
use clip_lens::apps::engine::{AblationRequest, AblationResult, AnalyzeOptions, Engine};
use clip_lens::bundle::{sha256_hex, Bundle, Storage};
use pollster::block_on;

/// An engine with the reference bundle, having analysed detail image `image`.
fn analysed(image: usize) -> Engine {
    let mut engine = engine_with(&reference_bundle(sha256_hex(MODEL_OPENAI)));
    block_on(engine.analyze(DETAIL_PNGS[image], &AnalyzeOptions::default())).unwrap();
    engine
}

/// The reference's tensors of detail image `image` for layer 1: `v = 100 e / |e|`, the
/// centred effects `[256, 32]` and directions.
struct Reference {
    v: Vec<f32>,
    centred: Vec<f32>,
    directions: Vec<f32>,
    thresholds: Vec<f32>,
}

fn reference(image: usize) -> Reference {
    let expected = expected();
    let e = &expected["image_embeds"].values[image * 32..(image + 1) * 32];
    let length = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    let effects = &expected["second_order.1"].values[image * 256 * 32..(image + 1) * 256 * 32];
    let mean = &expected["mean.1"].values;
    Reference {
        v: e.iter().map(|x| 100.0 * x / length).collect(),
        centred: effects.iter().zip(mean).map(|(p, m)| p - m).collect(),
        directions: expected["pca.1"].values.clone(),
        thresholds: expected["norms.1"].values.iter().step_by(6).copied().collect(),
    }
}

/// Checks a result's classes after the ablation against the cosines of the hand-computed `v'`
/// with the bundle's unit class embeddings, and its shift.
fn check_after(result: &AblationResult, v: &[f32], reference_v: &[f32]) {
    let bundle = reference_bundle(String::new());
    let length = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for class in &result.after.classes {
        let row = &bundle.class_embeds[class.index * 32..(class.index + 1) * 32];
        let cosine = v.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() / length;
        assert!(
            (class.cosine - cosine).abs() < 5e-5,
            "{}: {} vs {cosine} ({})",
            class.name,
            class.cosine,
            result.description
        );
        assert_eq!(class.name, ENGINE_CLASSES[class.index].0);
    }
    let shift = v.iter().zip(reference_v).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
    let (before, after) = (&result.before.classes[0], &result.after.classes[0]);
    println!(
        "{}: shift {shift:.3}, top class {} {:.4} -> {} {:.4}",
        result.description, before.name, before.cosine, after.name, after.cosine
    );
    assert!((result.shift - shift).abs() < 1e-3 * shift.max(1.0), "shift {} vs {shift}", result.shift);
}

#[test]
fn ablations_match_a_hand_computation_from_the_reference() {
    let mut engine = analysed(0);
    let reference = reference(0);
    let row = |t: &[f32], n: usize| t[n * 32..(n + 1) * 32].to_vec();

    // Mean ablation of 1:4 and 1:17: v' = v - c_4 - c_17 (the shared check, also run in the
    // browser).
    let request = AblationRequest::Neurons { neurons: "1:4, 1:17".into() };
    let result = block_on(engine.ablate(&request)).unwrap();
    check_mean_ablation(&serde_json::to_value(&result).unwrap(), 0, &[4, 17]);
    assert_eq!(result.description, "mean-ablated 2 neurons (1:4, 1:17)");

    // Rank one of layer 1: v' = v - sum_n (c_n - (c_n . r_n) r_n).
    let result = block_on(engine.ablate(&AblationRequest::RankOne { layer: 1 })).unwrap();
    let mut v = reference.v.clone();
    for n in 0..256 {
        let (c, r) = (row(&reference.centred, n), row(&reference.directions, n));
        let x: f32 = c.iter().zip(&r).map(|(a, b)| a * b).sum();
        v.iter_mut().zip(c.iter().zip(&r)).for_each(|(v, (c, r))| *v -= c - x * r);
    }
    check_after(&result, &v, &reference.v);
    assert_eq!(result.ablated, 256);

    // Every significant neuron of layer 1 (centred norm above the reference threshold), then
    // every insignificant one: the two removals add up to removing every centred effect.
    let significant: Vec<usize> = (0..256)
        .filter(|&n| {
            row(&reference.centred, n).iter().map(|x| x * x).sum::<f32>().sqrt() > reference.thresholds[n] * 1.00001
        })
        .collect();
    assert!(!significant.is_empty());
    let result = block_on(engine.ablate(&AblationRequest::Significant { layer: 1 })).unwrap();
    let mut v = reference.v.clone();
    for &n in &significant {
        v.iter_mut().zip(row(&reference.centred, n)).for_each(|(x, c)| *x -= c);
    }
    check_mean_ablation(&serde_json::to_value(&result).unwrap(), 0, &significant);
    let result = block_on(engine.ablate(&AblationRequest::Insignificant { layer: 1 })).unwrap();
    assert_eq!(result.ablated, 256 - significant.len());

    // With every layer's significant neurons ablated, no concept word is left.
    for layer in 0..3 {
        let result = block_on(engine.ablate(&AblationRequest::Significant { layer })).unwrap();
        assert!(result.after.words.len() <= result.before.words.len());
    }
    let neurons = significant_everywhere(&mut engine);
    let all = block_on(engine.ablate(&AblationRequest::Neurons { neurons })).unwrap();
    assert!(all.after.words.is_empty(), "{:?}", all.after.words);
}

/// Every significant neuron of every layer of the analysed image, as a list.
fn significant_everywhere(engine: &mut Engine) -> String {
    let analysis = block_on(engine.analyze(DETAIL_PNGS[0], &AnalyzeOptions::default())).unwrap();
    let items: Vec<String> = analysis
        .layers
        .iter()
        .flat_map(|l| l.significant_neurons.iter().map(move |n| format!("{}:{n}", l.layer)))
        .collect();
    items.join(",")
}

#[test]
fn bad_ablations_say_what_is_wrong() {
    let mut engine = engine_with(&reference_bundle(sha256_hex(MODEL_OPENAI)));
    let message =
        |engine: &mut Engine, request: AblationRequest| block_on(engine.ablate(&request)).unwrap_err().to_string();
    assert!(message(&mut engine, AblationRequest::RankOne { layer: 1 }).contains("analyse an image first"));
    assert!(engine.analysis_csv().unwrap_err().to_string().contains("no image has been analysed"));
    block_on(engine.analyze(DETAIL_PNGS[1], &AnalyzeOptions::default())).unwrap();
    assert!(message(&mut engine, AblationRequest::RankOne { layer: 7 }).contains("layer 7 is not in the bundle"));
    let neurons = |spec: &str| AblationRequest::Neurons { neurons: spec.into() };
    assert!(message(&mut engine, neurons("1:256")).contains("neuron 256 is out of range"));
    assert!(message(&mut engine, neurons("1-4")).contains("“1-4” is not a neuron"));
    assert!(message(&mut engine, neurons("")).contains("empty"));
}

#[test]
fn cards_lists_and_word_pages() {
    let mut engine = analysed(2);
    let bundle = reference_bundle(String::new());
    // The analysed image's norm of a neuron is on its card: |phi_n - mean_n| of the reference.
    let reference = {
        let expected = expected();
        let effects = &expected["second_order.1"].values[2 * 256 * 32..3 * 256 * 32];
        let mean = &expected["mean.1"].values;
        (effects[23 * 32..24 * 32].iter().zip(&mean[23 * 32..24 * 32]).map(|(p, m)| (p - m).powi(2)).sum::<f32>())
            .sqrt()
    };
    let card = engine.neuron(1, 23).unwrap();
    let norm = card.analysed_norm.expect("an analysed image");
    assert!((norm - reference).abs() < 1e-4 * reference.max(1e-3), "{norm} vs {reference}");
    assert!(card.distribution.is_none(), "the reference bundle has no histograms");

    // A list: cards in order, shared words among the first 20 of two or more.
    let list = engine.neuron_list("1:23, 0:5,1:23,2:100").unwrap();
    let order: Vec<(usize, usize)> = list.cards.iter().map(|c| (c.layer, c.neuron)).collect();
    assert_eq!(order, [(1, 23), (0, 5), (2, 100)]);
    for word in &list.shared_words {
        let holders = list.cards.iter().filter(|c| c.words.iter().take(20).any(|(w, _)| w == word)).count();
        assert!(holders >= 2, "{word} is shared by {holders}");
    }
    let all_words: Vec<&String> = list.cards.iter().flat_map(|c| c.words.iter().take(20).map(|(w, _)| w)).collect();
    let expected_shared = all_words.iter().filter(|w| all_words.iter().filter(|x| x == w).count() >= 2).count();
    assert_eq!(list.shared_words.is_empty(), expected_shared == 0);
    let message = |spec: &str| engine.neuron_list(spec).unwrap_err().to_string();
    assert!(message("1:23,9:1").contains("9:1: layer 9 is not in the bundle"));
    assert!(message("1:23,1:999").contains("1:999: neuron 999 is out of range"));
    assert!(message("garbage").contains("“garbage” is not a neuron"));
    let long: Vec<String> = (0..65).map(|n| format!("1:{n}")).collect();
    assert!(message(&long.join(",")).contains("at most 64"));

    // A word's page: the neurons holding it, with their words and first top images.
    let (word, holders) = bundle.neurons_with_word("genes").unwrap();
    let page = engine.word_page("Genes", 2).unwrap();
    assert_eq!(page.word, word);
    assert_eq!(page.neurons.len(), holders.len());
    for (neuron, (layer, index, coefficient)) in page.neurons.iter().zip(&holders) {
        assert_eq!((neuron.layer, neuron.neuron, neuron.coefficient), (*layer, *index, *coefficient));
        assert!(neuron.words.iter().any(|(w, _)| *w == word) && neuron.words.len() <= 6);
        assert_eq!(neuron.top_images.len(), 2);
    }
    let missing = engine.word_page("zzzz", 2).unwrap_err();
    assert_eq!((missing.kind(), missing.to_string().contains("“zzzz” is not a word")), ("bad-input", true));

    // CSV: the card's rows and the analysis with its ablations.
    let csv = engine.neuron_csv(1, 23).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "layer,neuron,field,index,label,value");
    assert_eq!(lines.iter().filter(|l| l.starts_with("1,23,word,")).count(), card.words.len());
    assert!(lines.iter().any(|l| l.starts_with("1,23,threshold,0,,")));
    block_on(engine.ablate(&AblationRequest::Significant { layer: 1 })).unwrap();
    let csv = engine.analysis_csv().unwrap();
    assert!(csv.starts_with("section,variant,layer,neuron,rank,label,value\n"));
    assert!(csv.lines().any(|l| l.starts_with("class,analysis,,,0,")));
    assert!(csv.lines().any(|l| l.starts_with("class,after: mean-ablated the ")));
}

/// A precomputed bundle's card carries the distribution: the counts add up to the images, the
/// share above the threshold is the top-k norms above it over the images. Format 5 keeps every
/// norm, so every percentile is exact (the median against one computed by hand from the
/// reference's pixels); the same bundle read as format 4 interpolates the median inside the bin
/// whose edges hold it.
#[test]
fn card_distribution_exact_and_interpolated() {
    let dir =
        precomputed_bundle("explorer-bundle", &["--layers", "1", "--top-k", "6", "--components", "8", "--batch", "16"]);
    let bundle = Bundle::read(&dir).unwrap();
    assert!(bundle.manifest.exact_percentiles);
    let card = engine_with(&bundle).neuron(1, 23).unwrap();
    let d = card.distribution.expect("a distribution");
    assert_eq!((d.images, d.counts.len(), d.edges.len()), (48, 32, 33));
    let top = &bundle.layers[&1].norms[23 * 6..24 * 6];
    let above = top.iter().filter(|&&n| n > top[0] * 1.00001).count();
    assert_eq!(d.above_threshold, above);
    assert!((d.share_above - above as f64 / 48.0).abs() < 1e-12);
    assert_eq!(d.percentiles.iter().map(|p| p.0).collect::<Vec<_>>(), [50.0, 90.0, 98.0, 99.0, 99.9]);
    assert_eq!(d.percentiles[4].1, top[5]);
    assert!(d.percentile_bounds.iter().all(Option::is_none), "{:?}", d.percentile_bounds);
    // By hand: neuron 23's 48 centred norms, the 24th smallest (nearest rank of 50 %).
    let batches = block_on(effect_batches(MODEL_OPENAI, &clip_lens::device::cpu(), &[1], 16));
    let mean = &bundle.layers[&1].mean[23 * 32..24 * 32];
    let mut norms: Vec<f32> = batches
        .iter()
        .flat_map(|b| b[0].chunks_exact(256 * 32).map(|image| image[23 * 32..24 * 32].to_vec()))
        .map(|effect| effect.iter().zip(mean).map(|(e, m)| (e - m) * (e - m)).sum::<f32>().sqrt())
        .collect();
    norms.sort_by(f32::total_cmp);
    let median = d.percentiles[0].1;
    // (Our PNG decoder against the reference's pixels: the statistics agree to 1e-4 of the largest.)
    assert!((median - norms[23]).abs() <= 1e-3 * norms[23], "median {median} against {} by hand", norms[23]);
    // Read as format 4: the median (rank 24) is interpolated in the bin where the counts reach
    // 24, whose edges hold it; the 90th and above (ranks 44-48) are among the top 6, exact.
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let tensors = std::fs::read(dir.join("lens.safetensors")).unwrap();
    let older =
        Bundle::from_parts(&manifest.replacen("\"format_version\": 5", "\"format_version\": 4", 1), tensors).unwrap();
    assert!(!older.manifest.exact_percentiles);
    let engine = engine_with(&older);
    let d = engine.neuron(1, 23).unwrap().distribution.expect("a distribution");
    assert!(d.percentile_bounds[1..].iter().all(Option::is_none), "{:?}", d.percentile_bounds);
    let (low, high) = d.percentile_bounds[0].expect("the median is interpolated");
    let bin = (0..32).find(|&b| d.counts[..=b].iter().sum::<u64>() >= 24).unwrap();
    assert_eq!(low, if bin == 0 { 0.0 } else { d.edges[bin] });
    assert_eq!(high, (bin < 31).then(|| d.edges[bin + 1]));
    assert!(low <= median && high.is_none_or(|h| median <= h), "{median} outside {low}..{high:?}");
    let csv = engine.neuron_csv(1, 23).unwrap();
    assert_eq!(csv.lines().filter(|l| l.starts_with("1,23,bin,")).count(), 32);
    std::fs::remove_dir_all(&dir).ok();
}

/// `clip-lens ablate --image IMG --neurons 1:4,1:17 --json` with the reference bundle on disk:
/// the analysis and the ablation (the page's export schema), its classes after as computed by
/// hand from the reference's tensors.
#[test]
fn ablate_command_on_one_image() {
    let dir = std::env::temp_dir().join(format!("clip-lens-explorer-ablate-{}", std::process::id()));
    reference_bundle(sha256_hex(MODEL_OPENAI)).write(&dir, Storage::F32).unwrap();
    let weights = fixture_path("model-openai.safetensors");
    let run = |extra: &[&str]| {
        clip_lens_command()
            .args(["ablate", "--weights", weights.to_str().unwrap(), "--bundle", dir.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let image = fixture_path("images/img000.png");
    let result = run(&["--image", image.to_str().unwrap(), "--neurons", "1:4,1:17", "--json"]);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert!(json["analysis"]["classes"].is_array());
    assert_eq!(json["ablations"][0]["request"], serde_json::json!({"kind": "neurons", "neurons": "1:4,1:17"}));
    check_mean_ablation(&json["ablations"][0], 0, &[4, 17]);

    // Steering: factor 0 is that mean ablation, factor 1 changes nothing, 3 moves the
    // embedding twice as far as the ablation of the same neuron, the other way (v' - v =
    // (alpha - 1) c_n).
    let steered = run(&["--image", image.to_str().unwrap(), "--steer", "1:4=0,1:17=0", "--json"]);
    assert!(steered.status.success(), "{}", String::from_utf8_lossy(&steered.stderr));
    let steered: serde_json::Value = serde_json::from_slice(&steered.stdout).unwrap();
    assert_eq!(steered["ablations"][0]["after"], json["ablations"][0]["after"]);
    assert_eq!(steered["ablations"][0]["shift"], json["ablations"][0]["shift"]);
    let result = run(&["--image", image.to_str().unwrap(), "--steer", "1:4=1", "--steer", "x", "--json"]);
    assert!(!result.status.success(), "--steer given twice is refused");
    let [one, three, ablated] = ["1:4=1", "1:4=3", "1:4=0"].map(|spec| {
        let result = run(&["--image", image.to_str().unwrap(), "--steer", spec, "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        json["ablations"][0].clone()
    });
    assert_eq!(one["after"], one["before"], "factor 1 changes nothing");
    check_steering(&three, 0, &[(4, 3.0)]);
    assert_eq!(one["shift"].as_f64(), Some(0.0));
    let (three, ablated) = (three["shift"].as_f64().unwrap(), ablated["shift"].as_f64().unwrap());
    assert!(ablated > 0.0 && (three / ablated - 2.0).abs() < 1e-4, "{three} against 2 x {ablated}");
    let result = run(&["--image", image.to_str().unwrap(), "--steer", "1:4=-1,1:4=2"]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("steered twice"));

    // The text table, several ablations in one run; bad input named.
    let result = run(&["--image", image.to_str().unwrap(), "--significant", "1", "--rank-one", "2"]);
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(text.contains("mean-ablated the ") && text.contains("rank-1 reconstruction of layer 2"), "{text}");
    let result = run(&["--image", image.to_str().unwrap(), "--neurons", "1:999"]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("neuron 999 is out of range"));
    let result = run(&["--image", image.to_str().unwrap()]);
    assert!(!result.status.success(), "--image without an ablation is refused");
    std::fs::remove_dir_all(&dir).ok();
}

/// The fidelity of a neuron's words on its card against [`fidelity_by_hand`] (from the
/// reference's own arrays); where it stands in the layer (median, share below, tenths), by hand too; and the
/// search's word neurons carry it.
#[test]
fn the_fidelity_of_the_words_matches_the_reference() {
    let engine = engine_with(&reference_bundle(sha256_hex(MODEL_OPENAI)));
    for layer in 0..3 {
        let by_hand = fidelity_by_hand(layer);
        let mut sorted = by_hand.clone();
        sorted.sort_by(f64::total_cmp);
        for n in [0, 17, 128, 255] {
            let fidelity = engine.neuron(layer, n).unwrap().fidelity.expect("the card has its fidelity");
            assert!(
                (fidelity.cosine as f64 - by_hand[n]).abs() < 1e-4,
                "{layer}:{n}: {} against {}",
                fidelity.cosine,
                by_hand[n]
            );
            assert!((fidelity.layer_median as f64 - sorted[128]).abs() < 1e-4, "{layer}: median");
            let below = by_hand.iter().filter(|&&v| v < by_hand[n] - 1e-5).count() as f32 / 256.0;
            assert!((fidelity.share_below - below).abs() <= 2.0 / 256.0, "{layer}:{n}: share below");
            let tenths: Vec<u32> = (0..10)
                .map(|b| by_hand.iter().filter(|&&v| ((v.max(0.0) * 10.0) as usize).min(9) == b).count() as u32)
                .collect();
            assert_eq!(fidelity.layer_counts, tenths, "{layer}: tenths");
        }
    }
}

/// A neuron whose direction is a dictionary atom, coded as that one word, has fidelity 1; coded
/// by no word, 0.
#[test]
fn a_neuron_that_is_one_word_has_fidelity_one() {
    let mut bundle = reference_bundle(String::new());
    let dim = bundle.manifest.embed_dim;
    let dictionary = clip_lens::lens::Dictionary::from_word_embeddings(&bundle.word_embeds, dim).unwrap();
    let components = bundle.manifest.components;
    let lens = bundle.layers.get_mut(&1).unwrap();
    lens.direction[..dim].copy_from_slice(&dictionary.atoms[5 * dim..6 * dim]);
    lens.decomposition_index[..components].fill(-1);
    lens.decomposition_index[0] = 5;
    lens.decomposition_coef[0] = 0.25;
    lens.decomposition_index[components..2 * components].fill(-1);
    let fidelity = clip_lens::apps::cards::LayerFidelity::of(&bundle, 1).unwrap().values;
    assert!((fidelity[0] - 1.0).abs() < 1e-6, "{}", fidelity[0]);
    assert_eq!(fidelity[1], 0.0);
}
