//! The `clip-lens` command line, end to end on the fixture.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::common::*;

fn clip_lens(args: &[&str]) -> std::process::Output {
    clip_lens_command().args(args).output().expect("the binary runs")
}

fn read_output(path: &Path) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|b| match view.dtype() {
                safetensors::Dtype::I32 => i32::from_le_bytes(b.try_into().unwrap()) as f32,
                _ => f32::from_le_bytes(b.try_into().unwrap()),
            });
            (name, (view.shape().to_vec(), values.collect()))
        })
        .collect()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clip-lens-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `effects` on the reference's own pixels (a `.safetensors` with `pixels`), both layouts,
/// with the config found beside the weights.
#[test]
fn effects_writes_reference_outputs() {
    let expected = expected();
    for weights in ["model-openai.safetensors", "model-hf.safetensors"] {
        let out = temp_path(&format!("effects-{weights}"));
        let result = clip_lens(&[
            "effects",
            "--weights",
            fixture_path(weights).to_str().unwrap(),
            "--layers",
            "0,2",
            "--out",
            out.to_str().unwrap(),
            fixture_path("expected.safetensors").to_str().unwrap(),
        ]);
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        let written = read_output(&out);
        for name in ["image_embeds", "post_gelu.0", "post_gelu.2", "second_order.0", "second_order.2"] {
            assert_eq!(written[name].0, expected[name].shape, "{name} shape");
            let deviation = relative_deviation(&written[name].1, &expected[name].values);
            assert!(deviation <= MODEL_TOLERANCE, "{weights}: {name} deviates by {deviation:e}");
        }
        assert_eq!(written.len(), 5);
    }
}

#[test]
fn effects_on_png_files_is_close_to_reference() {
    let expected = expected();
    let images: Vec<String> =
        (0..6).map(|i| fixture_path(&format!("images/img{i:03}.png")).to_str().unwrap().to_string()).collect();
    let out = temp_path("effects-png.safetensors");
    let mut args = vec![
        "effects",
        "--weights",
        fixture_path("model-openai.safetensors").to_str().unwrap().to_owned().leak(),
        "--layers",
        "1",
        "--out",
        out.to_str().unwrap().to_owned().leak(),
    ];
    args.extend(images.iter().map(String::as_str));
    let result = clip_lens(&args);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let deviation = relative_deviation(&read_output(&out)["image_embeds"].1, &expected["image_embeds"].values);
    println!("image_embeds from PNGs (our decoder and resizer): relative deviation {deviation:.3e}");
    assert!(deviation < 0.05, "embeddings from decoded PNGs deviate by {deviation}");
}

#[test]
fn text_writes_tokens_and_embeddings() {
    let expected = expected();
    let probes = probes();
    let out = temp_path("text.safetensors");
    let mut args = vec![
        "text",
        "--weights",
        fixture_path("model-hf.safetensors").to_str().unwrap().to_owned().leak(),
        "--out",
        out.to_str().unwrap().to_owned().leak(),
    ];
    args.extend(probes.iter().map(String::as_str));
    let result = clip_lens(&args);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let written = read_output(&out);
    assert_eq!(written["tokens"].1, expected["probe_tokens"].values);
    let deviation = relative_deviation(&written["text_embeds"].1, &expected["probe_text_embeds"].values);
    assert!(deviation <= MODEL_TOLERANCE, "text_embeds deviate by {deviation:e}");
}

#[test]
fn summary_is_printed_without_out() {
    let result = clip_lens(&[
        "text",
        "--weights",
        fixture_path("model-openai.safetensors").to_str().unwrap(),
        "a photo of a cat",
    ]);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("tokens")
            && stdout.contains("[1, 77]")
            && stdout.contains("text_embeds")
            && stdout.contains("[1, 32]"),
        "{stdout}"
    );
}

#[test]
fn bad_inputs_give_clear_messages() {
    let corrupt = temp_path("corrupt.png");
    let png = std::fs::read(fixture_path("images/img000.png")).unwrap();
    std::fs::write(&corrupt, &png[..png.len() / 3]).unwrap();
    let weights = fixture_path("model-openai.safetensors");
    // `effects --weights WEIGHTS --layers LAYER IMAGE` and what its error must name.
    let effects = |weights: &Path, layer: &str, image: &Path| -> Vec<OsString> {
        vec!["effects".into(), "--weights".into(), weights.into(), "--layers".into(), layer.into(), image.into()]
    };
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (effects(&weights, "0", &corrupt), "corrupt.png"),
        (effects(Path::new("/nonexistent/w.safetensors"), "0", &corrupt), "cannot read /nonexistent/w.safetensors"),
        (effects(&weights, "9", &fixture_path("expected.safetensors")), "layer 9 is out of range"),
        (effects(&weights, "0", &fixture_path("words.txt")), "words.txt"),
    ];
    for (args, needle) in cases {
        let result = clip_lens_command().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} should fail");
        assert!(stderr.contains("error:") && stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

/// `convert` splits the towers: each file loads alone and gives the original's embeddings
/// (exactly in f32; within f16 rounding, which is not zero, in f16), the manifest's sha256s are
/// the files', and f16 halves the size.
#[test]
fn convert_splits_towers_for_the_web() {
    use clip_lens::convert::ConvertedManifest;
    use clip_lens::model::{ClipModel, Towers};
    use clip_lens::{ClipConfig, WeightFile};
    let cpu = clip_lens::device::cpu();
    let config: ClipConfig = ClipConfig::from_hf_json(CONFIG_JSON).unwrap();
    let expected = expected();
    let pixels = reference_pixels(&expected, &cpu);
    let tokens = check_probe_tokens();
    for (source, bytes) in [("openai", MODEL_OPENAI), ("hf", MODEL_HF)] {
        let weights =
            std::env::temp_dir().join(format!("clip-lens-convert-{source}-{}.safetensors", std::process::id()));
        std::fs::write(&weights, bytes).unwrap();
        let mut sizes = Vec::new();
        for dtype in ["f32", "f16"] {
            let out = std::env::temp_dir().join(format!("clip-lens-convert-{source}-{dtype}-{}", std::process::id()));
            let result = clip_lens_command()
                .args([
                    "convert",
                    "--weights",
                    weights.to_str().unwrap(),
                    "--config",
                    fixture_path("config.json").to_str().unwrap(),
                    "--dtype",
                    dtype,
                    "--out",
                    out.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
            let manifest: ConvertedManifest =
                serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
            assert_eq!(manifest.source_sha256, clip_lens::bundle::sha256_hex(bytes));
            let image_bytes = std::fs::read(out.join("image.safetensors")).unwrap();
            let text_bytes = std::fs::read(out.join("text.safetensors")).unwrap();
            assert_eq!(manifest.image.sha256, clip_lens::bundle::sha256_hex(&image_bytes));
            assert_eq!(manifest.text.sha256, clip_lens::bundle::sha256_hex(&text_bytes));
            sizes.push(image_bytes.len() + text_bytes.len());
            let image =
                ClipModel::load(&WeightFile::from_bytes(image_bytes).unwrap(), &config, Towers::Vision, &cpu).unwrap();
            let text =
                ClipModel::load(&WeightFile::from_bytes(text_bytes).unwrap(), &config, Towers::Text, &cpu).unwrap();
            let image_embeds =
                clip_lens::device::read_f32_blocking(image.vision().unwrap().encode(pixels.clone()).unwrap()).unwrap();
            let text_embeds =
                clip_lens::device::read_f32_blocking(text.text().unwrap().encode(&tokens).unwrap()).unwrap();
            let image_deviation = relative_deviation(&image_embeds, &expected["image_embeds"].values);
            let text_deviation = relative_deviation(&text_embeds, &expected["probe_text_embeds"].values);
            println!(
                "convert {source} {dtype}: image {image_deviation:.2e}, text {text_deviation:.2e}, {} bytes",
                sizes.last().unwrap()
            );
            match dtype {
                "f32" => assert!(image_deviation < MODEL_TOLERANCE && text_deviation < MODEL_TOLERANCE),
                _ => assert!(image_deviation > 0.0 && image_deviation < 1e-2 && text_deviation < 1e-2),
            }
        }
        assert!((sizes[1] as f64) < 0.55 * sizes[0] as f64, "{sizes:?}");
    }
}
