#![cfg(not(target_arch = "wasm32"))]
//! Zero-shot segmentation: the reference's golden heatmaps and neurons, the metrics, the
//! upsampling and the geometry against hand-computed cases, error paths, and the `segment` /
//! `eval-seg` commands.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::{Tensor, TensorData};
use clip_lens::apps::metrics::{average_precision, SegmentationMetrics};
use clip_lens::apps::segment::{self, RankedNeuron};
use clip_lens::bundle::{sha256_hex, Bundle, FORMAT_VERSION};
use clip_lens::device;
use clip_lens::preprocess::CropGeometry;
use clip_lens::tensor_file::{serialize, NamedTensor};
use common::*;

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

/// PyTorch's documented example (`nn.Upsample`, `mode="bilinear"`, `align_corners=False`):
/// [[1, 2], [3, 4]] by 2. Along each axis output o samples max(0, (o + 0.5) / 2 - 0.5) =
/// 0, 0.25, 0.75, 1.25 (clamped to the last input), i.e. weights (1, 0), (0.75, 0.25),
/// (0.25, 0.75), (0, 1): row 0 = [1, 1.25, 1.75, 2], row 3 = [3, 3.25, 3.75, 4], row 1 =
/// 0.75 row 0 + 0.25 row 3, row 2 = 0.25 row 0 + 0.75 row 3.
#[test]
fn bilinear_upsampling_matches_pytorch_2x2_to_4x4() {
    let out = segment::upsample_bilinear(&[1.0, 2.0, 3.0, 4.0], 2, 2, 2).unwrap();
    #[rustfmt::skip]
    let expected = [
        1.0, 1.25, 1.75, 2.0,
        1.5, 1.75, 2.25, 2.5,
        2.5, 2.75, 3.25, 3.5,
        3.0, 3.25, 3.75, 4.0,
    ];
    assert_eq!(out, expected);
    // Min-max normalised: (v - 1) / 3.
    let map = segment::heatmap_from_patches(&[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
    for (a, e) in map.iter().zip(expected) {
        assert!((a - (e - 1.0) / 3.0).abs() < 1e-6);
    }
    // A constant map (0/0 in the reference, NaN mapped to 0) is all zeros.
    let mut flat = vec![5.0f32; 4];
    segment::min_max_normalise(&mut flat);
    assert_eq!(flat, [0.0; 4]);
    assert!(segment::upsample_bilinear(&[1.0, 2.0, 3.0], 2, 2, 2).is_err());
}

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
    assert!(segment::unit(&[0.0, 0.0]).is_err());
}

#[test]
fn empty_concept_text_is_an_error() {
    let model = load(MODEL_OPENAI, clip_lens::Towers::Text, &device::cpu());
    let tokenizer = clip_lens::tokenizer::ClipTokenizer::new();
    for text in ["", "   "] {
        let error = pollster::block_on(segment::text_concept(model.text().unwrap(), &tokenizer, text)).unwrap_err();
        assert!(error.to_string().contains("the concept text is empty"), "{error}");
    }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// scikit-learn's documented example: `average_precision_score([0, 0, 1, 1],
/// [0.1, 0.4, 0.35, 0.8])` = 0.83 (by hand: 0.8 -> R 1/2, P 1; 0.4 -> no new recall;
/// 0.35 -> R 1, P 2/3; AP = 1/2 * 1 + 1/2 * 2/3 = 5/6).
#[test]
fn average_precision_matches_sklearn_example() {
    let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert!(close(ap, 5.0 / 6.0), "{ap}");
    // Ties form one threshold: scores [0.5, 0.5, 0.2], truth [1, 0, 1]: 0.5 -> R 1/2, P 1/2;
    // 0.2 -> R 1, P 2/3; AP = 1/4 + 1/3 = 7/12 (whatever the order of the tied pair).
    for (scores, truth) in [([0.5, 0.5, 0.2], [true, false, true]), ([0.5, 0.5, 0.2], [false, true, true])] {
        assert!(close(average_precision(&scores, &truth).unwrap(), 7.0 / 12.0));
    }
    // No positive: 0 (scikit-learn returns 0 with a warning; the reference maps NaN to 0).
    assert_eq!(average_precision(&[0.3, 0.7], &[false, false]).unwrap(), 0.0);
    assert!(average_precision(&[0.3], &[true, false]).is_err());
}

/// Two 2x2 images, pixels in row-major order; the prediction is heatmap > 0.5.
///
/// A: heatmap [0.9, 0.2, 0.7, 0.5], truth [1, 0, 0, 1] -> predicted [1, 0, 1, 0]
///    (0.5 is not above 0.5): correct 2 of 4; background: pred {1, 3}, truth {1, 2}:
///    I 1, U 3; foreground: pred {0, 2}, truth {0, 3}: I 1, U 3.
///    AP: 0.9 (T) R 1/2 P 1; 0.7 (F); 0.5 (T) R 1 P 2/3; 0.2 (F): 1/2 + 1/2 * 2/3 = 5/6.
/// B: heatmap [0.8, 0.8, 0.1, 0.6], truth [1, 0, 0, 1] -> predicted [1, 1, 0, 1]: correct 3;
///    background: pred {2}, truth {1, 2}: I 1, U 2; foreground: pred {0, 1, 3}, truth {0, 3}:
///    I 2, U 3. AP: 0.8 (T, F tied) R 1/2 P 1/2; 0.6 (T) R 1 P 2/3: 1/4 + 1/3 = 7/12.
/// Dataset: pixel accuracy 5/8; IoU background (1+1)/(3+2) = 2/5, foreground (1+2)/(3+3) = 1/2;
/// mIoU 9/20 (the mean of per-image mIoUs would be 11/24); mAP (5/6 + 7/12) / 2 = 17/24.
#[test]
fn metrics_accumulate_over_the_dataset() {
    let mut metrics = SegmentationMetrics::new();
    metrics.add(&[0.9, 0.2, 0.7, 0.5], &[true, false, false, true]).unwrap();
    metrics.add(&[0.8, 0.8, 0.1, 0.6], &[true, false, false, true]).unwrap();
    let s = metrics.scores();
    assert_eq!(s.images, 2);
    assert!(close(s.pixel_accuracy, 5.0 / 8.0), "{s:?}");
    assert!(close(s.iou[0], 2.0 / 5.0) && close(s.iou[1], 1.0 / 2.0), "{s:?}");
    assert!(close(s.mean_iou, 9.0 / 20.0), "{s:?}");
    assert!(close(s.mean_average_precision, 17.0 / 24.0), "{s:?}");
    let error = metrics.add(&[0.5; 3], &[true; 4]).unwrap_err().to_string();
    assert!(error.contains("the heatmap has 3 pixels, the ground-truth mask 4"), "{error}");
    assert_eq!(metrics.images(), 2, "a rejected image is not counted");
}

// ---------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------

/// Model input 4 x 4, heatmap value h(r, c) = 4 r + c + 1.
/// Landscape 8 x 4: shorter side already 4, so the resize is the identity and the crop starts
/// at column round((8 - 4) / 2) = 2: original (x, y) shows model (x - 2, y); columns 0, 1, 6, 7
/// are outside (0). Portrait 4 x 8: the same with rows. Landscape 16 x 8: resized to 8 x 4
/// (scale 2), crop at resized column 2 = original column 4; original pixel centre x + 0.5 maps
/// to model (x + 0.5) / 2 - 2, sampled at that minus 0.5: x = 5 -> model 0.25 -> 0.75 h(., 0) +
/// 0.25 h(., 1); x = 3 -> model -0.25, outside.
#[test]
fn heatmap_maps_back_onto_non_square_originals() {
    let heat: Vec<f32> = (0..16).map(|i| i as f32 + 1.0).collect();
    let h = |r: usize, c: usize| (4 * r + c + 1) as f32;

    let wide = segment::heatmap_to_original(&heat, &CropGeometry::for_image(8, 4, 4)).unwrap();
    assert_eq!(wide.len(), 32);
    for y in 0..4 {
        for x in 0..8 {
            let expected = if (2..6).contains(&x) { h(y, x - 2) } else { 0.0 };
            assert_eq!(wide[y * 8 + x], expected, "landscape ({x}, {y})");
        }
    }

    let tall = segment::heatmap_to_original(&heat, &CropGeometry::for_image(4, 8, 4)).unwrap();
    for y in 0..8 {
        for x in 0..4 {
            let expected = if (2..6).contains(&y) { h(y - 2, x) } else { 0.0 };
            assert_eq!(tall[y * 4 + x], expected, "portrait ({x}, {y})");
        }
    }

    let large = segment::heatmap_to_original(&heat, &CropGeometry::for_image(16, 8, 4)).unwrap();
    assert_eq!(large.len(), 16 * 8);
    // Row y = 1 -> model row 0.75 - 0.5 = 0.25: 0.75 h(0, .) + 0.25 h(1, .).
    let row = |c: usize| 0.75 * h(0, c) + 0.25 * h(1, c);
    assert!((large[16 + 5] - (0.75 * row(0) + 0.25 * row(1))).abs() < 1e-5);
    assert_eq!(large[16 + 3], 0.0);
    assert_eq!(large[16 + 12], 0.0, "x = 12 -> model 4.25, outside");
    assert!(segment::heatmap_to_original(&heat[..15], &CropGeometry::for_image(8, 4, 4)).is_err());
}

fn png(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// An 8 x 4 mask whose left half is foreground goes through the image's geometry (identity
/// resize, crop of columns 2..6): model columns 0, 1 (original 2, 3) are foreground, 2, 3 are
/// not. The same mask as 0/1 labels gives the same; a mask of another size or bytes that are
/// no image are errors.
#[test]
fn masks_are_preprocessed_like_their_images() {
    let left_half = |on: u8| image::RgbImage::from_fn(8, 4, |x, _| image::Rgb(if x < 4 { [on; 3] } else { [0; 3] }));
    let expected: Vec<bool> = (0..16).map(|i| i % 4 < 2).collect();
    assert_eq!(segment::preprocess_mask(&png(&left_half(255)), 8, 4, 4).unwrap(), expected);
    assert_eq!(segment::preprocess_mask(&png(&left_half(1)), 8, 4, 4).unwrap(), expected);
    let mismatch = segment::preprocess_mask(&png(&left_half(255)), 9, 4, 4).unwrap_err().to_string();
    assert!(mismatch.contains("the mask is 8 x 4, its image 9 x 4"), "{mismatch}");
    let garbage = segment::preprocess_mask(b"not a png", 8, 4, 4).unwrap_err().to_string();
    assert!(garbage.contains("the mask cannot be decoded"), "{garbage}");
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
    let error = segment::class_concept(&bundle, "unicorn").unwrap_err().to_string();
    assert!(error.contains("unknown class \"unicorn\""), "{error}");
    assert_eq!(segment::class_index(&bundle, "Dog").unwrap(), 1);
    // The reference embedding of "a photo of a cat." is class 0's row, so it predicts class 0.
    assert_eq!(segment::predicted_class(&bundle, &expected()["probe_text_embeds"].values[..32]).unwrap(), 0);
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
    let weights = fixture_path("model-openai.safetensors");
    let (ok, stdout, stderr) = clip_lens(&[
        "eval-seg",
        "--weights",
        s(&weights),
        "--bundle",
        s(bundle_dir()),
        "--images",
        s(&samples()),
        "--masks",
        s(&samples().join("masks")),
        "--json",
    ]);
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
    let weights = fixture_path("model-openai.safetensors");
    let images = temp_dir("eval-images");
    let masks = temp_dir("eval-masks");
    std::fs::copy(samples().join("horse.png"), images.join("horse.png")).unwrap();
    let run = || {
        clip_lens(&[
            "eval-seg",
            "--weights",
            s(&weights),
            "--bundle",
            s(bundle_dir()),
            "--images",
            s(&images),
            "--masks",
            s(&masks),
            "--concept",
            "class:dog",
        ])
    };
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

    let concept = segment::class_concept(&bundle, "dog").unwrap();
    let directions = &expected()["pca.2"].values;
    let mut by_alignment: Vec<(f64, usize)> = directions
        .chunks(32)
        .enumerate()
        .map(|(n, r)| (r.iter().zip(&concept).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>().abs(), n))
        .collect();
    by_alignment.sort_by(|a, b| b.0.total_cmp(&a.0));
    let chosen: Vec<usize> = some.rank(&bundle, &concept).unwrap().iter().map(|n| n.neuron).collect();
    assert_eq!(chosen, by_alignment[..3].iter().map(|&(_, n)| n).collect::<Vec<_>>());
}
