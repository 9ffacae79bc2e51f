//! `precompute` end to end on the fixture's 48 PNGs, the bundle format, and `describe`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::*;
use clip_lens::bundle::{sha256_hex, Bundle};

/// Runs `precompute` once for all tests of this file (and `precompute_io`'s).
pub(crate) fn bundle_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        precomputed_bundle("bundle", &["--layers", "0,1,2", "--top-k", "6", "--components", "8", "--batch", "16"])
    })
}

/// Statistics from the PNG folder (our decoder and resizer) match the reference's, which were
/// computed from its own preprocessing of the same files.
#[test]
fn precompute_statistics_match_reference() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    assert_eq!(bundle.manifest.images.len(), 48);
    assert_eq!(bundle.manifest.words.len(), 400);
    assert_eq!(bundle.manifest.classes.len(), 1000);
    assert_eq!(bundle.manifest.weights_sha256, sha256_hex(MODEL_OPENAI));
    check_bundle_statistics(&bundle, "bundle", 1e-4);
}

/// Format 3's distributions: every neuron's histogram counts the 48 images once, and the
/// percentiles at or above the 90th (ranks 44..48 of 48, within the top 6) are the reference's
/// top norms; the median lies inside its bin and below the threshold.
#[test]
fn precompute_distributions_match_reference_norms() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let expected = expected();
    let manifest = &bundle.manifest;
    assert_eq!((manifest.format_version, manifest.histogram_bins, manifest.class_templates), (5, 32, 80));
    assert_eq!(manifest.percentiles, [50.0, 90.0, 98.0, 99.0, 99.9]);
    for layer in 0..3usize {
        let d = bundle.layers[&layer].distributions.as_ref().expect("format 3 has distributions");
        let reference = &expected[&format!("norms.{layer}")].values; // [256, 6] ascending
        for n in 0..256 {
            let counts = &d.counts[n * 32..(n + 1) * 32];
            let edges = &d.edges[n * 33..(n + 1) * 33];
            let percentiles = &d.percentiles[n * 5..(n + 1) * 5];
            let top = &reference[n * 6..(n + 1) * 6];
            assert_eq!(counts.iter().sum::<u64>(), 48, "layer {layer} neuron {n}");
            assert!(edges.windows(2).all(|w| w[0] < w[1]));
            // p90: rank 44 = the 5th largest; p98, p99, p99.9: rank 48 = the largest.
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1e-6);
            assert!(close(percentiles[1], top[1]), "layer {layer} neuron {n}: p90 {} vs {}", percentiles[1], top[1]);
            for &p in &percentiles[2..] {
                assert!(close(p, top[5]), "layer {layer} neuron {n}: {p} vs the largest {}", top[5]);
            }
            assert!(percentiles[0] <= top[0] * 1.0001 && percentiles[0] >= edges[0].min(percentiles[0]));
            // The largest norm is counted in the bin whose edges hold it (or an outer bin).
            let bin = edges.partition_point(|&e| e <= top[5]).saturating_sub(1).min(31);
            assert!(counts[bin] >= 1, "layer {layer} neuron {n}: bin {bin} of the largest norm is empty");
        }
    }
}

/// Each neuron's decomposition is sorted by |coefficient| and, where the direction's sign
/// agrees with the reference, has the reference OMP's words and coefficients.
#[test]
fn precompute_decompositions_match_reference_omp() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let expected = expected();
    for layer in 0..3usize {
        let lens = &bundle.layers[&layer];
        let reference = &expected[&format!("omp.{layer}")].values;
        let pca = &expected[&format!("pca.{layer}")].values;
        let mut compared = 0;
        for n in 0..256 {
            let coefs = &lens.decomposition_coef[n * 8..(n + 1) * 8];
            assert!(coefs.windows(2).all(|w| w[0].abs() >= w[1].abs()), "layer {layer} neuron {n} not sorted");
            let same_sign = lens.direction[n * 32..(n + 1) * 32]
                .iter()
                .zip(&pca[n * 32..(n + 1) * 32])
                .map(|(a, b)| a * b)
                .sum::<f32>()
                > 0.0;
            if !same_sign {
                continue;
            }
            compared += 1;
            for (&i, &c) in lens.decomposition_index[n * 8..(n + 1) * 8].iter().zip(coefs) {
                let r = reference[n * 400 + i as usize];
                assert!(
                    r != 0.0 && (r - c).abs() < 1e-3 * r.abs().max(1.0),
                    "layer {layer} neuron {n} word {i}: {c} vs {r}"
                );
            }
        }
        assert!(compared >= 250, "layer {layer}: only {compared} neurons compared");
    }
}

#[test]
fn describe_prints_signed_words() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let words = bundle.describe(1, 4).unwrap();
    assert_eq!(words.len(), 8);
    let result = clip_lens_command()
        .args(["describe", "--bundle", bundle_dir().to_str().unwrap(), "--layer", "1", "--neuron", "4", "--json"])
        .output()
        .unwrap();
    assert!(result.status.success());
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["words"][0][0].as_str().unwrap(), words[0].0);
    // The page's card: the distribution of format 3 included.
    let d = &json["distribution"];
    assert_eq!(d["images"].as_u64(), Some(48));
    assert_eq!(d["counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 48);
    assert_eq!(d["percentiles"][4][1].as_f64().unwrap() as f32, bundle.layers[&1].norms[4 * 6 + 5]);
    assert_eq!(json["top_images"].as_array().unwrap().len(), 6);
    assert!(bundle.describe(7, 0).unwrap_err().to_string().contains("layer 7 is not in the bundle"));
    assert!(bundle.describe(1, 999).unwrap_err().to_string().contains("neuron 999 is out of range"));
}

#[test]
fn bad_bundles_are_rejected_with_reasons() {
    let dir = bundle_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let tensors = std::fs::read(dir.join("lens.safetensors")).unwrap();
    let bundle = Bundle::from_parts(&manifest, tensors.clone()).unwrap();
    let message = |json: String, bytes: Vec<u8>| Bundle::from_parts(&json, bytes).unwrap_err().to_string();
    let newer = manifest.replacen("\"format_version\": 5", "\"format_version\": 99", 1);
    assert!(message(newer, tensors.clone()).contains("bundle format version 99"));
    // Format 3 (no class_templates): still read, its classes CLIP's 80 templates.
    let mut three: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    three["format_version"] = serde_json::json!(3);
    three.as_object_mut().unwrap().remove("class_templates");
    assert_eq!(Bundle::from_parts(&three.to_string(), tensors.clone()).unwrap().manifest.class_templates, 80);
    // Format 2 (no histograms): still read, without distributions.
    let mut old: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    old["format_version"] = serde_json::json!(2);
    old.as_object_mut().unwrap().remove("histogram_bins");
    old.as_object_mut().unwrap().remove("percentiles");
    let read = Bundle::from_parts(&old.to_string(), tensors.clone()).unwrap();
    assert!(read.layers.values().all(|l| l.distributions.is_none()));
    let more_bins = manifest.replacen("\"histogram_bins\": 32", "\"histogram_bins\": 40", 1);
    assert!(message(more_bins, tensors.clone()).contains("layer.0.histogram.counts"));
    let mut no_percentiles: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    no_percentiles["percentiles"] = serde_json::json!([]);
    assert!(message(no_percentiles.to_string(), tensors.clone()).contains("`percentiles` must list"));
    let more_neurons = manifest.replacen("\"neurons\": 256", "\"neurons\": 300", 1);
    assert!(message(more_neurons, tensors.clone()).contains("has shape [256, 8], expected [300, 8]"));
    let mut fewer_words: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    fewer_words["words"] = serde_json::json!(["only", "two"]);
    assert!(message(fewer_words.to_string(), tensors.clone()).contains("outside the 2 words"));
    assert!(message("not json".into(), tensors.clone()).contains("not JSON"));
    // Malicious manifests: huge shapes, image ids out of range, neurons without lists.
    let huge = manifest.replacen("\"neurons\": 256", "\"neurons\": 1000000000000000", 1);
    assert!(message(huge, tensors.clone()).contains("expected [1000000000000000, 8]"));
    let mut far: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    far["top_images"]["1"][3][0] = serde_json::json!(4_000_000_000u64);
    assert!(message(far.to_string(), tensors.clone()).contains("names image 4000000000, outside the 48 images"));
    let mut short: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    short["top_images"]["2"] = serde_json::json!([[0, 1]]);
    assert!(message(short.to_string(), tensors.clone()).contains("for each of the 256 neurons"));
    // Degenerate sizes, which empty tensors could otherwise back (a zero neuron count makes
    // `[0, D]` shapes valid for any D): every count the readers divide or index by is checked.
    for (key, value) in [
        ("neurons", serde_json::json!(0)),
        ("embed_dim", serde_json::json!(0)),
        ("top_k", serde_json::json!(0)),
        ("components", serde_json::json!(0)),
        ("words", serde_json::json!([])),
        ("classes", serde_json::json!([])),
        ("layers", serde_json::json!([])),
    ] {
        let mut degenerate: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        degenerate[key] = value;
        let error = message(degenerate.to_string(), tensors.clone());
        assert!(error.contains(&format!("`{key}` is empty or zero")), "{key}: {error}");
    }
    let mut twice: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    twice["layers"] = serde_json::json!([1, 2, 1]);
    assert!(message(twice.to_string(), tensors.clone()).contains("lists layer 1 twice"));
    // A tensor stored with another dtype than the format's (i64 word indices) is named.
    let mut retyped = clip_lens::tensor_file::deserialize(&tensors).unwrap().0;
    let index = retyped.remove("layer.0.decomposition.index").unwrap();
    let wide: Vec<i64> = index.to_f64().iter().map(|&x| x as i64).collect();
    let mut all: Vec<_> = retyped.into_values().collect();
    all.push(clip_lens::tensor_file::NamedTensor::i64("layer.0.decomposition.index", &index.shape, wide));
    let retyped_bytes = clip_lens::tensor_file::serialize(&all).unwrap();
    let error = message(manifest.clone(), retyped_bytes);
    assert!(error.contains("layer.0.decomposition.index"), "{error}");
    assert!(message(manifest.clone(), tensors[..tensors.len() / 2].to_vec()).contains("invalid safetensors"));
    assert!(bundle.check_weights(&sha256_hex(MODEL_HF)).unwrap_err().to_string().contains("bundle/model mismatch"));
    bundle.check_weights(&sha256_hex(MODEL_OPENAI)).unwrap();
}

#[test]
fn precompute_reports_bad_inputs() {
    let empty = std::env::temp_dir().join(format!("clip-lens-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let run = |images: &Path, layers: &str, k: &str| {
        let out =
            precompute_command(images, &empty.join("b")).args(["--layers", layers, "--top-k", k]).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&empty, "1", "6").contains("contains no image files"));
    assert!(run(&fixture_path("images"), "4", "6").contains("layer 4 is out of range"));
    assert!(run(&fixture_path("images"), "1", "100").contains("--top-k 100 is larger than the number of images (48)"));
}

/// `neurons` ranks by r_n . e / |e|: the top neuron's direction is the one closest to the text.
#[test]
fn neurons_finds_the_best_matching_directions() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let result = clip_lens_on_bundle("neurons", bundle_dir(), &["--top", "3", "--json", "a photo of a cat"]);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let scores: Vec<f64> = list.iter().map(|m| m["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    // Brute force over every neuron with a random unit query agrees with the ranking.
    let query: Vec<f32> = (0..32).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
    let best = bundle.neurons_matching(&query, 1).unwrap()[0];
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (layer, lens) in &bundle.layers {
        for (n, r) in lens.direction.chunks(32).enumerate() {
            let score = r.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>() / norm;
            assert!(score <= best.2 + 1e-6, "layer {layer} neuron {n} scores {score} > best {}", best.2);
        }
    }
    let wrong = clip_lens_with("model-hf.safetensors", "neurons", bundle_dir(), &["cat"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("bundle/model mismatch"));
}

/// An unreadable file in the folder is skipped, counted and named in the manifest.
#[test]
fn precompute_skips_unreadable_images() {
    let dir = std::env::temp_dir().join(format!("clip-lens-skip-{}", std::process::id()));
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..8 {
        std::fs::copy(fixture_path(&format!("images/img{i:03}.png")), images.join(format!("img{i:03}.png"))).unwrap();
    }
    std::fs::write(images.join("broken.jpg"), b"not an image").unwrap();
    let out = dir.join("bundle");
    let result = precompute_command(&images, &out)
        .args(["--layers", "1", "--top-k", "3", "--components", "4", "--f16"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipping") && stderr.contains("broken.jpg") && stderr.contains("8 images, 1 skipped"),
        "{stderr}"
    );
    let bundle = Bundle::read(&out).unwrap();
    assert_eq!(bundle.manifest.images.len(), 8);
    assert_eq!(bundle.manifest.skipped_images.len(), 1);
    assert!(bundle.manifest.top_images["1"].iter().all(|ids| ids.len() == 3 && ids.iter().all(|&i| i < 8)));
    // --f16: the large tensors are stored as f16 and read back as f32 (unit directions stay
    // unit to f16 rounding).
    let file = clip_lens::WeightFile::from_bytes(std::fs::read(out.join("lens.safetensors")).unwrap()).unwrap();
    let safetensors = safetensors::SafeTensors::deserialize(file.bytes()).unwrap();
    for name in ["layer.1.mean", "layer.1.direction", "words.embeds", "classes.embeds"] {
        assert_eq!(safetensors.tensor(name).unwrap().dtype(), safetensors::Dtype::F16, "{name}");
    }
    assert_eq!(safetensors.tensor("layer.1.norms").unwrap().dtype(), safetensors::Dtype::F32);
    for r in bundle.layers[&1].direction.chunks(32) {
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 2e-3, "{norm}");
    }
}

/// Every image in some neuron's top k has a thumbnail: a JPEG of the manifest's size.
#[test]
fn precompute_writes_thumbnails_of_top_images() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    assert_eq!(bundle.manifest.thumbnail_size, 64);
    let ids: std::collections::BTreeSet<usize> =
        bundle.manifest.top_images.values().flatten().flatten().copied().collect();
    assert!(!ids.is_empty());
    for id in ids {
        let bytes = std::fs::read(bundle_dir().join(format!("thumbnails/{id}.jpg"))).unwrap();
        let image = clip_lens::preprocess::decode_image(&bytes).unwrap();
        assert_eq!(image.dimensions(), (64, 64), "thumbnail {id}");
    }
}

/// An interrupted run (the Ctrl-C path) and then a crashed one (abort: only the periodic
/// checkpoint survives) resume where they stopped, without redoing finished images, and give
/// exactly the bundle of an uninterrupted run. A checkpoint of another run is refused.
#[test]
fn precompute_resumes_after_interruption_and_crash() {
    let out = std::env::temp_dir().join(format!("clip-lens-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run_with_k = |k: &str, extra: &[&str]| {
        precompute_command(&fixture_path("images"), &out)
            .args(["--layers", "0,1,2", "--top-k", k, "--components", "8", "--batch", "16"])
            .args(extra)
            .output()
            .unwrap()
    };
    let run = |extra: &[&str]| run_with_k("6", extra);
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let interrupted = run(&["--interrupt-after", "16"]);
    assert!(!interrupted.status.success());
    assert!(
        stderr(&interrupted).contains("interrupted: progress saved")
            && stderr(&interrupted).contains("run the same command again"),
        "{}",
        stderr(&interrupted)
    );
    assert!(out.join(".precompute-checkpoint.safetensors").exists());

    let other_run = run_with_k("5", &[]);
    assert!(!other_run.status.success());
    assert!(
        stderr(&other_run).contains("checkpoint of a different run") && stderr(&other_run).contains("--restart"),
        "{}",
        stderr(&other_run)
    );

    // 32 images finish pass 1, 16 more are pass 2's first batch: then the process aborts.
    let crashed = run(&["--checkpoint-seconds", "0", "--crash-after", "48"]);
    assert!(!crashed.status.success());
    assert!(stderr(&crashed).contains("resuming from the checkpoint: pass 1/2 at image 16/48"), "{}", stderr(&crashed));
    assert!(stderr(&crashed).contains("simulated crash after 48 images"), "{}", stderr(&crashed));

    let resumed = run(&[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("resuming from the checkpoint: pass 2/2 at image 16/48"), "{}", stderr(&resumed));
    assert!(!out.join(".precompute-checkpoint.safetensors").exists(), "the checkpoint is removed at the end");
    assert_eq!(Bundle::read(&out).unwrap(), Bundle::read(bundle_dir()).unwrap());
}

/// `concepts --json` on three fixture PNGs with the bundle made from the PNG folder: one analysis
/// per image in input order, and (the bundle's statistics matching the reference's to 1e-4)
/// nearly the reference's significant neurons and the same best word.
#[test]
fn concepts_command_agrees_with_reference_discovery() {
    let images: Vec<PathBuf> =
        ["img002.png", "img000.png", "img001.png"].iter().map(|n| fixture_path(&format!("images/{n}"))).collect();
    let mut args = vec!["--layer", "1", "--top", "5", "--json"];
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let result = clip_lens_on_bundle("concepts", bundle_dir(), &args);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let reference: serde_json::Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for (object, path) in list.iter().zip(&images) {
        assert_eq!(object["image"].as_str().unwrap(), path.to_str().unwrap());
        let layers = object["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["layer"].as_u64(), Some(1));
        let name = path.file_name().unwrap().to_str().unwrap();
        let expected = &reference["concept_discovery"]["results"][name];
        let ours: std::collections::BTreeSet<u64> =
            layers[0]["significant_neurons"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        let theirs: std::collections::BTreeSet<u64> =
            expected["significant_neurons"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        let jaccard = ours.intersection(&theirs).count() as f64 / ours.union(&theirs).count() as f64;
        let words = object["words"].as_array().unwrap();
        println!(
            "{name}: significant neurons Jaccard {jaccard:.3}, best word {} (reference {})",
            words[0][0], expected["top_words"][0][0]
        );
        assert!(jaccard >= 0.9, "{name}: {jaccard}");
        assert_eq!(words.len(), 5);
        assert_eq!(words[0][0], expected["top_words"][0][0], "{name}");
    }
    let missing =
        clip_lens_on_bundle("concepts", bundle_dir(), &["--layer", "3", fixture_path("words.txt").to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("layer 3 is not in the bundle"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// `classify --json`: the bundle's 1000 ImageNet classes, top 5 with probabilities that
/// decrease and the cosines the library computes from the embedding `effects` writes.
#[test]
fn classify_command_lists_top_classes() {
    let image = fixture_path("images/img003.png");
    let result = clip_lens_command()
        .args([
            "classify",
            "--weights",
            fixture_path("model-openai.safetensors").to_str().unwrap(),
            "--bundle",
            bundle_dir().to_str().unwrap(),
            "--json",
        ])
        .arg(&image)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let classes = json[0]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 5);
    let probabilities: Vec<f64> = classes.iter().map(|c| c["probability"].as_f64().unwrap()).collect();
    assert!(probabilities.windows(2).all(|w| w[0] >= w[1]) && probabilities[0] > 0.0 && probabilities[0] <= 1.0);
    // The best class's cosine, recomputed by hand from the bundle's classifier row.
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let best = classes[0]["index"].as_u64().unwrap() as usize;
    assert_eq!(classes[0]["name"].as_str().unwrap(), bundle.manifest.classes[best]);
    let expected = expected();
    let embed = &expected["image_embeds"].values[3 * 32..4 * 32];
    let norm = embed.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cosine =
        embed.iter().zip(&bundle.class_embeds[best * 32..(best + 1) * 32]).map(|(a, b)| a * b).sum::<f32>() / norm;
    assert!(
        (cosine as f64 - classes[0]["cosine"].as_f64().unwrap()).abs() < 1e-3,
        "{cosine} vs {}",
        classes[0]["cosine"]
    );
}

/// `adversarial` and `fooled` end to end on the fixture bundle (random weights: the words are
/// arbitrary, so this checks the contract): descriptions hold class 1 and never class 0, every
/// word's neurons are among the listed top neurons, `--command` gets each description, and
/// `fooled`'s rate is the share of `true` decisions.
#[test]
fn adversarial_and_fooled_commands() {
    let weights = fixture_path("model-openai.safetensors");
    let base = |command: &str| {
        let mut c = clip_lens_command();
        c.args([
            command,
            "--weights",
            weights.to_str().unwrap(),
            "--bundle",
            bundle_dir().to_str().unwrap(),
            "--class0",
            "tabby cat",
            "--class1",
            "golden retriever",
        ]);
        c
    };
    let log = std::env::temp_dir().join(format!("clip-lens-adversarial-{}.txt", std::process::id()));
    let result = base("adversarial")
        .args(["--neurons", "20", "--words", "5", "--json", "--command", &format!("echo {{}} >> {}", log.display())])
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let stdout = String::from_utf8_lossy(&result.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let neurons: Vec<(u64, u64)> = json["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["layer"].as_u64().unwrap(), n["neuron"].as_u64().unwrap()))
        .collect();
    assert_eq!(neurons.len(), 20);
    let words = json["words"].as_array().unwrap();
    assert!(!words.is_empty() && words.len() <= 5);
    for w in words {
        assert!(w["score"].as_f64().unwrap() > 0.0);
        assert!(w["neurons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| neurons.contains(&(n[0].as_u64().unwrap(), n[1].as_u64().unwrap()))));
    }
    let descriptions: Vec<&str> =
        json["descriptions"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(!descriptions.is_empty());
    assert!(descriptions.iter().all(|d| d.contains("golden retriever") && !d.contains("tabby cat")));
    let piped = std::fs::read_to_string(&log).unwrap();
    assert_eq!(piped.lines().collect::<Vec<_>>(), descriptions);

    let images: Vec<PathBuf> = (0..4).map(|i| fixture_path(&format!("images/img{i:03}.png"))).collect();
    let result = base("fooled").arg("--json").args(&images).output().unwrap();
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let decisions: Vec<bool> =
        json["images"].as_array().unwrap().iter().map(|i| i["fooled"].as_bool().unwrap()).collect();
    assert_eq!(decisions.len(), 4);
    let rate = decisions.iter().filter(|&&f| f).count() as f64 / 4.0;
    assert!((json["success_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    let image = images[0].to_str().unwrap();
    let same = clip_lens_on_bundle("fooled", bundle_dir(), &["--class0", "cat", "--class1", "Cat", image]);
    assert!(String::from_utf8_lossy(&same.stderr).contains("the same class"));
}

/// `ablate` on a synthetic labelling of the fixture images (two ImageNet-named subfolders): the
/// baseline row equals the share of images whose `classify` top class among the two is their
/// folder's, and the JSON has every variant.
#[test]
fn ablate_command_on_a_synthetic_labelling() {
    let dir = std::env::temp_dir().join(format!("clip-lens-ablate-{}", std::process::id()));
    let classes = ["tabby cat", "golden retriever"];
    for (c, class) in classes.iter().enumerate() {
        let folder = dir.join("images").join(class.replace(' ', "_"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in (c..12).step_by(2) {
            std::fs::copy(fixture_path(&format!("images/img{i:03}.png")), folder.join(format!("img{i:03}.png")))
                .unwrap();
        }
    }
    let json = dir.join("table.json");
    let weights = fixture_path("model-openai.safetensors");
    let result = clip_lens_on_bundle(
        "ablate",
        bundle_dir(),
        &["--images", dir.join("images").to_str().unwrap(), "--layers", "1,2", "--json", json.to_str().unwrap()],
    );
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let tables: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(tables.as_array().unwrap().len(), 2);
    // The baseline by hand: cosines with the two class rows of the bundle.
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let rows: Vec<&[f32]> = classes
        .iter()
        .map(|c| {
            let i = bundle.manifest.classes.iter().position(|n| n.eq_ignore_ascii_case(c)).unwrap();
            &bundle.class_embeds[i * 32..(i + 1) * 32]
        })
        .collect();
    let effects = clip_lens_command()
        .args([
            "effects",
            "--weights",
            weights.to_str().unwrap(),
            "--layers",
            "1",
            "--out",
            dir.join("e.safetensors").to_str().unwrap(),
        ])
        .args((0..12).map(|i| fixture_path(&format!("images/img{i:03}.png"))))
        .output()
        .unwrap();
    assert!(effects.status.success());
    let file = clip_lens::WeightFile::from_bytes(std::fs::read(dir.join("e.safetensors")).unwrap()).unwrap();
    let embeds = file.tensor("image_embeds", &[12, 32]).unwrap();
    let correct = (0..12)
        .filter(|&i| {
            let e = &embeds[i * 32..(i + 1) * 32];
            let score = |r: &[f32]| r.iter().zip(e).map(|(a, b)| a * b).sum::<f32>();
            (score(rows[1]) > score(rows[0])) == (i % 2 == 1)
        })
        .count();
    for table in tables.as_array().unwrap() {
        assert_eq!(table["images"].as_u64(), Some(12));
        assert!((table["accuracy"]["baseline"].as_f64().unwrap() - correct as f64 / 12.0).abs() < 1e-12);
        for variant in ["mean_all", "mean_significant", "mean_insignificant", "rank_1", "sparse"] {
            let a = table["accuracy"][variant].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{variant}");
        }
    }
    let one =
        clip_lens_on_bundle("ablate", bundle_dir(), &["--images", dir.join("images/tabby_cat").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&one.stderr).contains("at least two class subfolders"));
}
