//! Zero-shot segmentation: the reference's golden heatmaps and neurons, the metrics, the
//! upsampling and the geometry against hand-computed cases, error paths, and the `segment` /
//! `eval-seg` commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::*;
use burn::tensor::{Tensor, TensorData};
use clip_lens::apps::classify;
use clip_lens::apps::segment::{self, RankedNeuron};
use clip_lens::bundle::{sha256_hex, Bundle, FORMAT_VERSION};
use clip_lens::device;
use clip_lens::tensor_file::{serialize, NamedTensor};

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-9
}

// ---------------------------------------------------------------------------
// Golden
// ---------------------------------------------------------------------------

#[test]
fn golden_heatmaps_and_neurons_match_reference() {
    assert_segmentation_matches("cpu", pollster::block_on(segmentation_golden(MODEL_OPENAI, &device::cpu())));
}

// ---------------------------------------------------------------------------
// Upsampling and normalisation
// ---------------------------------------------------------------------------

/// The mean over the selected neurons at each patch token, CLS dropped: captures [1, 5, 3]
/// (CLS + 2x2 patches, 3 neurons) for two layers.
#[test]
fn selected_activation_averages_patch_tokens() {
    let cpu = device::cpu();
    // Layer 0: token t, neuron n holds 10 t + n. Layer 1: 100 + token.
    let layer0: Vec<f32> = (0..5).flat_map(|t| (0..3).map(move |n| (10 * t + n) as f32)).collect();
    let layer1: Vec<f32> = (0..5).flat_map(|t| (0..3).map(move |_| (100 + t) as f32)).collect();
    let mut captures = BTreeMap::new();
    captures.insert(0, Tensor::<3>::from_data(TensorData::new(layer0, [1, 5, 3]), &cpu));
    captures.insert(1, Tensor::<3>::from_data(TensorData::new(layer1, [1, 5, 3]), &cpu));
    let pick = |layer, neuron| RankedNeuron { layer, neuron, score: 1.0 };
    let selected = [pick(0, 2), pick(1, 0), pick(0, 1)];
    let mean = device::read_f32_blocking(segment::selected_activation(&captures, &selected).unwrap()).unwrap();
    // Patch token t (1..=4): ((10 t + 2) + (100 + t) + (10 t + 1)) / 3 = (21 t + 103) / 3.
    let expected: Vec<f32> = (1..5).map(|t| (21 * t + 103) as f32 / 3.0).collect();
    for (a, e) in mean.iter().zip(&expected) {
        assert!((a - e).abs() < 1e-4, "{mean:?} vs {expected:?}");
    }
    let missing = segment::selected_activation(&captures, &[pick(3, 0)]).unwrap_err().to_string();
    assert!(missing.contains("layer 3 were not captured"), "{missing}");
    let out_of_range = segment::selected_activation(&captures, &[pick(0, 3)]).unwrap_err().to_string();
    assert!(out_of_range.contains("neuron 3 is out of range"), "{out_of_range}");
}

// ---------------------------------------------------------------------------
// Ranking
// ---------------------------------------------------------------------------

/// |r_n . e| ranks across layers; K limits; errors for K = 0, K too large, bad shapes.
#[test]
fn ranking_uses_absolute_alignment_across_layers() {
    let e = [1.0, 0.0];
    // Layer 4: r . e = 0.5, -0.9. Layer 7: 0.1, 0.7.
    let layer4 = [0.5, 0.5, -0.9, 0.1];
    let layer7 = [0.1, 0.9, 0.7, -0.7];
    let layers: Vec<(usize, &[f32])> = vec![(4, &layer4), (7, &layer7)];
    let ranked = segment::top_neurons(&layers, &e, 3).unwrap();
    let order: Vec<(usize, usize)> = ranked.iter().map(|n| (n.layer, n.neuron)).collect();
    assert_eq!(order, [(4, 1), (7, 1), (4, 0)]);
    assert_eq!(ranked[0].score, -0.9);
    assert!(segment::top_neurons(&layers, &e, 0).unwrap_err().to_string().contains("at least 1"));
    assert!(segment::top_neurons(&layers, &e, 5)
        .unwrap_err()
        .to_string()
        .contains("cannot keep 5 neurons: the chosen layers have 4"));
    assert!(segment::rank_neurons(&[(4, &layer4[..3])], &e)
        .unwrap_err()
        .to_string()
        .contains("layer 4 has 3 direction values"));
    assert!(segment::rank_neurons(&[], &e).is_err());
    assert!(classify::unit(&[0.0, 0.0]).is_err());
}

#[test]
fn empty_concept_text_is_an_error() {
    let model = load(MODEL_OPENAI, clip_lens::Towers::Text, &device::cpu());
    let tokenizer = clip_lens::tokenizer::ClipTokenizer::new();
    for text in ["", "   "] {
        let error = pollster::block_on(classify::text_concept(model.text().unwrap(), &tokenizer, text)).unwrap_err();
        assert!(error.to_string().contains("the concept text is empty"), "{error}");
    }
}

// ---------------------------------------------------------------------------
// A tiny bundle and the command line
// ---------------------------------------------------------------------------

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www/samples")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-lens-segment-{}", std::process::id())).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The three classes of the tiny bundle: unit-normalised reference text embeddings of the
/// first three probes, so that class "tabby cat" is exactly the concept "a photo of a cat.".
const CLASSES: [&str; 3] = ["tabby cat", "dog", "origami crane"];

/// A bundle for the fixture model's layers 1 and 2 with the reference's statistics
/// (`pca.L` as directions), one word and three classes, written without `precompute`.
fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let expected = expected();
        let dir = temp_dir("bundle");
        let (n, d, k) = (256, 32, 6);
        let manifest = serde_json::json!({
            "format_version": FORMAT_VERSION,
            "model_name": "tiny-a",
            "model_config": serde_json::from_str::<serde_json::Value>(CONFIG_JSON).unwrap(),
            "weights_sha256": sha256_hex(MODEL_OPENAI),
            "layers": [1, 2],
            "neurons": n,
            "embed_dim": d,
            "top_k": k,
            "components": 1,
            "word_sources": ["words.txt"],
            "words": ["cat"],
            "classes": CLASSES,
            "images": (0..k).map(|i| format!("img{i:03}.png")).collect::<Vec<_>>(),
            "skipped_images": [],
            "top_images": {"1": vec![(0..k).collect::<Vec<_>>(); n], "2": vec![(0..k).collect::<Vec<_>>(); n]},
        });
        let mut tensors = Vec::new();
        for layer in [1, 2] {
            tensors.push(NamedTensor::f32(
                format!("layer.{layer}.mean"),
                &[n, d],
                expected[&format!("mean.{layer}")].values.clone(),
            ));
            tensors.push(NamedTensor::f32(
                format!("layer.{layer}.direction"),
                &[n, d],
                expected[&format!("pca.{layer}")].values.clone(),
            ));
            tensors.push(NamedTensor::f32(
                format!("layer.{layer}.norms"),
                &[n, k],
                expected[&format!("norms.{layer}")].values.clone(),
            ));
            tensors.push(NamedTensor::i32(format!("layer.{layer}.decomposition.index"), &[n, 1], vec![-1; n]));
            tensors.push(NamedTensor::f32(format!("layer.{layer}.decomposition.coef"), &[n, 1], vec![0.0; n]));
        }
        tensors.push(NamedTensor::f32("words.embeds", &[1, d], expected["word_embeds"].values[..d].to_vec()));
        let classes: Vec<f32> = expected["probe_text_embeds"].values[..3 * d]
            .chunks(d)
            .flat_map(|row| {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter().map(move |x| x / norm)
            })
            .collect();
        tensors.push(NamedTensor::f32("classes.embeds", &[3, d], classes));
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.join("lens.safetensors"), serialize(&tensors).unwrap()).unwrap();
        dir
    })
}

fn clip_lens(args: &[&str]) -> (bool, String, String) {
    let out = clip_lens_command().args(args).output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `clip-lens eval-seg` of the fixture model and this file's bundle on `images` and `masks`.
fn eval_seg(images: &Path, masks: &Path, args: &[&str]) -> (bool, String, String) {
    let weights = fixture_path("model-openai.safetensors");
    let paths = ["--weights", s(&weights), "--bundle", s(bundle_dir()), "--images", s(images), "--masks", s(masks)];
    clip_lens(&[&["eval-seg"], &paths[..], args].concat())
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn read_bundle() -> Bundle {
    let dir = bundle_dir();
    Bundle::from_parts(
        &std::fs::read_to_string(dir.join("manifest.json")).unwrap(),
        std::fs::read(dir.join("lens.safetensors")).unwrap(),
    )
    .unwrap()
}

#[test]
fn bundle_helpers_report_unknown_layers_and_classes() {
    let bundle = read_bundle();
    let error = segment::bundle_directions(&bundle, &[1, 5]).unwrap_err().to_string();
    assert!(error.contains("layer 5 is not in the bundle (it has [1, 2])"), "{error}");
    assert!(segment::bundle_directions(&bundle, &[]).is_err());
    let error = segment::bundle_directions(&bundle, &[2, 1, 2]).unwrap_err().to_string();
    assert!(error.contains("layer 2 is chosen twice"), "{error}");
    let error = classify::class_concept(&bundle, "unicorn").unwrap_err().to_string();
    assert!(error.contains("unknown class \"unicorn\""), "{error}");
    assert_eq!(classify::class_index(&bundle.manifest.classes, "Dog").unwrap(), 1);
    // The reference embedding of "a photo of a cat." is class 0's row, so it predicts class 0.
    assert_eq!(classify::predicted_class(&bundle, &expected()["probe_text_embeds"].values[..32]).unwrap(), 0);
}

fn read_heatmap(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor("heatmap").unwrap();
    (view.shape().to_vec(), view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

/// `segment` on the six detail PNGs (decoded and resized by us, not the reference's pixels) for the fixture's concept, given as free text and as the bundle class
/// holding the same embedding: the reference's best neuron (layer 1, neuron 50: the last of
/// `neurons_layer_index`) leads, the heatmaps are close to
/// `seg_heatmap`, and every overlay has its original image's size.
#[test]
fn segment_command_writes_heatmaps_and_overlays() {
    let expected = expected();
    let images: Vec<PathBuf> = (0..6).map(|i| fixture_path(&format!("images/img{i:03}.png"))).collect();
    let weights = fixture_path("model-openai.safetensors");
    for (name, concept) in [("text", "a photo of a cat."), ("class", "class:tabby cat")] {
        let out = temp_dir(&format!("segment-{name}"));
        let mut args = vec![
            "segment",
            "--weights",
            s(&weights),
            "--bundle",
            s(bundle_dir()),
            "--concept",
            concept,
            "--layers",
            "1,2",
            "--top-neurons",
            "16",
            "--out",
            s(&out),
        ];
        args.extend(images.iter().map(|p| s(p)));
        let (ok, stdout, stderr) = clip_lens(&args);
        assert!(ok, "{stderr}");
        assert_eq!(stdout.lines().count(), 6, "{stdout}");
        assert!(stdout.lines().all(|l| l.contains("16 neurons, best L1/50 ")), "{stdout}");
        let (shape, values) = read_heatmap(&out.join("heatmaps.safetensors"));
        assert_eq!(shape, [6, 64, 64]);
        let reference = &expected["seg_heatmap"].values;
        let deviation = relative_deviation(&values, reference);
        println!("{name}: heatmaps from PNGs: relative deviation from seg_heatmap {deviation:.3e}");
        assert!(deviation < 1e-3, "{name}: heatmaps deviate by {deviation}");
        for (i, image) in images.iter().enumerate() {
            let original = image::open(image).unwrap();
            let overlay = image::open(out.join(format!("img{i:03}.overlay.png"))).unwrap();
            assert_eq!((overlay.width(), overlay.height()), (original.width(), original.height()));
        }
    }
}

#[test]
fn segment_command_reports_bad_inputs() {
    let weights = fixture_path("model-openai.safetensors");
    let image = fixture_path("images/img000.png");
    let run = |extra: &[&str]| {
        let mut args = vec!["segment", "--weights", s(&weights), "--bundle", s(bundle_dir())];
        args.extend_from_slice(extra);
        args.push(s(&image));
        clip_lens(&args)
    };
    for (extra, needle) in [
        (vec!["--concept", ""], "the concept text is empty"),
        (vec!["--concept", "class:unicorn"], "unknown class \"unicorn\""),
        (vec!["--concept", "cat", "--layers", "3"], "layer 3 is not in the bundle"),
        (vec!["--concept", "cat", "--top-neurons", "0"], "at least 1"),
    ] {
        let (ok, _, stderr) = run(&extra);
        assert!(!ok && stderr.contains("error:") && stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    let (ok, stdout, stderr) = run(&["--concept", "class:dog", "--top-neurons", "100000"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("--top-neurons 100000 is more than the 512 neurons of layers [1, 2]: using 512"),
        "{stderr}"
    );
    assert!(stdout.contains("512 neurons"), "{stdout}");
    let (ok, _, stderr) = clip_lens(&[
        "segment",
        "--weights",
        s(&fixture_path("model-hf.safetensors")),
        "--bundle",
        s(bundle_dir()),
        "--concept",
        "cat",
        s(&image),
    ]);
    assert!(!ok && stderr.contains("bundle/model mismatch"), "{stderr}");
}

/// `eval-seg` on the sample folder: only the horse has a mask (`masks/horse.png`); the other
/// files are listed as unmatched. The scores are fractions and mIoU is the mean of the two IoUs.
#[test]
fn eval_seg_scores_the_sample_horse() {
    let (ok, stdout, stderr) = eval_seg(&samples(), &samples().join("masks"), &["--json"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["images"], 1, "{json}");
    let unmatched: Vec<&str> = json["unmatched"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(
        unmatched.iter().any(|p| p.ends_with("cat.jpg")) && !unmatched.iter().any(|p| p.contains("horse")),
        "{unmatched:?}"
    );
    let score = |name: &str| json[name].as_f64().unwrap();
    for name in ["pixel_accuracy", "mean_iou", "mean_average_precision"] {
        assert!((0.0..=1.0).contains(&score(name)), "{name}: {json}");
    }
    let iou: Vec<f64> = json["iou"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(close(score("mean_iou"), (iou[0] + iou[1]) / 2.0), "{json}");
    // The horse covers part of the crop: the foreground AP cannot be 0 (a mask with positives).
    assert!(score("mean_average_precision") > 0.0, "{json}");
}

#[test]
fn eval_seg_reports_bad_masks() {
    let images = temp_dir("eval-images");
    let masks = temp_dir("eval-masks");
    std::fs::copy(samples().join("horse.png"), images.join("horse.png")).unwrap();
    let run = || eval_seg(&images, &masks, &["--concept", "class:dog"]);
    let (ok, _, stderr) = run();
    assert!(!ok && stderr.contains("has a mask in"), "{stderr}");
    std::fs::copy(fixture_path("images/img000.png"), masks.join("horse-mask.png")).unwrap();
    let (ok, _, stderr) = run();
    assert!(!ok && stderr.contains("horse-mask.png") && stderr.contains("the mask is"), "{stderr}");
    std::fs::write(masks.join("horse-mask.png"), b"not a png").unwrap();
    let (ok, _, stderr) = run();
    assert!(!ok && stderr.contains("horse-mask.png") && stderr.contains("cannot be decoded"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The page and the CLI choose a concept's neurons the same way: the bundle's layers unless
/// some are given, the count clamped to the neurons they have, ranked by |r_n . e| (checked here
/// against the reference's directions with the products written out).
#[test]
fn concept_neurons_default_to_the_bundles_layers_and_clamp_the_count() {
    let bundle = read_bundle();
    let every = segment::ConceptNeurons::new(&bundle, &[], 1000).unwrap();
    assert_eq!((every.layers.as_slice(), every.count), (&[1, 2][..], 2 * 256));
    let some = segment::ConceptNeurons::new(&bundle, &[2], 3).unwrap();
    assert_eq!((some.layers.as_slice(), some.count), (&[2][..], 3));
    assert!(segment::ConceptNeurons::new(&bundle, &[7], 3).is_err());

    let concept = classify::class_concept(&bundle, "dog").unwrap();
    let directions = &expected()["pca.2"].values;
    let mut by_alignment: Vec<(f64, usize)> = directions
        .chunks(32)
        .enumerate()
        .map(|(n, r)| (r.iter().zip(&concept).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>().abs(), n))
        .collect();
    by_alignment.sort_by(|a, b| b.0.total_cmp(&a.0));
    let chosen: Vec<usize> = some
        .choose(&bundle, &concept, "a concept", segment::NeuronDraw::Best)
        .unwrap()
        .iter()
        .map(|n| n.neuron)
        .collect();
    assert_eq!(chosen, by_alignment[..3].iter().map(|&(_, n)| n).collect::<Vec<_>>());
}

/// The random baseline's draw: `k` distinct neurons of the chosen layers, the same for the same
/// seed and concept, another for another seed or concept (as the reference draws one per class),
/// listed best aligned first with their scores; all of them when `k` is every neuron.
#[test]
fn random_neurons_are_a_seeded_draw_per_concept() {
    let bundle = read_bundle();
    let layers = segment::bundle_directions(&bundle, &[1, 2]).unwrap();
    let concept = classify::class_concept(&bundle, "dog").unwrap();
    let draw = |seed, label| segment::random_neurons(&layers, &concept, 20, seed, label).unwrap();
    let key = |neurons: &[RankedNeuron]| neurons.iter().map(|n| (n.layer, n.neuron)).collect::<Vec<_>>();
    let first = draw(7, "dog");
    assert_eq!(first.len(), 20);
    assert_eq!(key(&first), key(&draw(7, "dog")));
    assert_ne!(key(&first), key(&draw(8, "dog")));
    assert_ne!(key(&first), key(&draw(7, "cat")));
    let distinct: std::collections::BTreeSet<_> = key(&first).into_iter().collect();
    assert_eq!(distinct.len(), 20);
    assert!(first.windows(2).all(|w| w[0].score.abs() >= w[1].score.abs()));
    let best = segment::top_neurons(&layers, &concept, 20).unwrap();
    assert_ne!(key(&first), key(&best), "20 of 512 at random are not the 20 best");
    let mut all = key(&segment::random_neurons(&layers, &concept, 512, 7, "dog").unwrap());
    all.sort();
    assert_eq!(all, (1..=2).flat_map(|l| (0..256).map(move |n| (l, n))).collect::<Vec<_>>());
    assert!(segment::random_neurons(&layers, &concept, 513, 7, "dog").is_err());
    assert!(segment::random_neurons(&layers, &concept, 0, 7, "dog").is_err());
}

/// `eval-seg --random-neurons` prints the random draw's scores beside the top neurons': with
/// every neuron of the layers chosen, both average the same neurons (the same scores); with 3,
/// the seeded draw gives the same scores twice, and the top 3 neurons' differ from them.
#[test]
fn eval_seg_scores_random_neurons_beside_the_top_ones() {
    let run = |extra: &[&str]| {
        let (ok, stdout, stderr) =
            eval_seg(&samples(), &samples().join("masks"), &[&["--json", "--random-neurons"], extra].concat());
        assert!(ok, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let scores = |json: &serde_json::Value| {
        ["pixel_accuracy", "mean_iou", "mean_average_precision"].map(|name| json[name].as_f64().unwrap())
    };
    let every = run(&["--top-neurons", "512"]);
    assert_eq!(scores(&every), scores(&every["random"]), "{every}");
    let three = run(&["--top-neurons", "3", "--seed", "5"]);
    assert_eq!(three["random"]["seed"], 5, "{three}");
    assert_eq!(scores(&three["random"]), scores(&run(&["--top-neurons", "3", "--seed", "5"])["random"]));
    assert_ne!(scores(&three), scores(&three["random"]), "{three}");
    let (ok, _, stderr) = eval_seg(&samples(), &samples().join("masks"), &["--seed", "5"]);
    assert!(!ok && stderr.contains("--random-neurons"), "{stderr}");
}
