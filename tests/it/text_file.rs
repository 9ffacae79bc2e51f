//! The text side computed once (`embed-text`) and used by `precompute --text`: the file's word
//! embeddings against the reference's, the bundle the same as without it, and its refusals.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::bundle::bundle_dir;
use crate::common::*;
use clip_lens::apps::engine::{AnalyzeOptions, Engine};
use clip_lens::bundle::{sha256_hex, Bundle};
use clip_lens::device::{self, BackendKind};
use clip_lens::text_embeddings::{ClassTemplates, TextEmbeddings};
use pollster::block_on;

/// `clip-lens embed-text` of the fixture weights `weights` and words into `out`; the output.
fn embed_text(weights: &str, out: &Path, args: &[&str]) -> std::process::Output {
    clip_lens_command()
        .args(["embed-text", "--weights"])
        .arg(fixture_path(weights))
        .arg("--words")
        .arg(fixture_path("words.txt"))
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("clip-lens runs")
}

/// The fixture model's text side (80 templates, f32), made once.
pub(crate) fn text_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("clip-lens-text-{}.safetensors", std::process::id()));
        let result = embed_text("model-openai.safetensors", &out, &[]);
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        out
    })
}

fn read_text_file(path: &Path) -> TextEmbeddings {
    TextEmbeddings::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn embed_text_writes_the_reference_word_embeddings_tagged_with_the_weights() {
    let file = read_text_file(text_file());
    let expected = expected();
    assert_eq!(file.weights_sha256, sha256_hex(MODEL_OPENAI));
    assert_eq!(file.words, WORDS.lines().map(str::to_string).collect::<Vec<_>>());
    assert_eq!((file.embed_dim, file.classes.len(), file.class_templates), (32, 1000, ClassTemplates::All));
    assert!(file.word_sources[0].ends_with("words.txt"), "{:?}", file.word_sources);
    let deviation = relative_deviation(&file.word_embeds, &expected["word_embeds"].values);
    assert!(deviation < MODEL_TOLERANCE, "word embeddings deviate by {deviation}");
    // Unit-norm classifier rows, as a bundle's.
    for row in file.class_embeds.chunks(32) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
}

/// With the text file, `precompute` embeds nothing and writes the bundle it writes without it,
/// byte for byte (the same text-tower batches made the same numbers once).
#[test]
fn precompute_with_the_text_file_writes_the_same_bundle() {
    let out = std::env::temp_dir().join(format!("clip-lens-with-text-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let result = precompute_command(&fixture_path("images"), &out)
        .args(["--layers", "0,1,2", "--top-k", "6", "--components", "8", "--batch", "16", "--text"])
        .arg(text_file())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("400 of 400 words from") && stderr.contains("0 to embed"), "{stderr}");
    assert!(!stderr.contains("embedding ImageNet classes:"), "{stderr}");
    for file in ["lens.safetensors", "manifest.json"] {
        let (with, without) = (std::fs::read(out.join(file)).unwrap(), std::fs::read(bundle_dir().join(file)).unwrap());
        assert!(with == without, "{file} differs from the bundle made without --text");
    }
}

/// Words the file lacks are embedded (and said so); a one-template file's classes are written
/// with `class_templates: 1`.
#[test]
fn precompute_embeds_the_words_the_file_lacks_and_keeps_one_template_classes() {
    let dir = std::env::temp_dir().join(format!("clip-lens-text-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let quick = dir.join("quick.safetensors");
    let result = embed_text("model-openai.safetensors", &quick, &["--class-templates", "1", "--f16"]);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let extra = dir.join("extra.txt");
    std::fs::write(&extra, "zebra crossing\nlighthouse\n").unwrap();
    let out = dir.join("bundle");
    let result = precompute_command(&fixture_path("images"), &out)
        .args(["--layers", "1", "--top-k", "6", "--components", "8", "--thumbnail-size", "0", "--text"])
        .arg(&quick)
        .arg("--words")
        .arg(&extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("400 of 402 words from") && stderr.contains("2 to embed"), "{stderr}");
    let bundle = Bundle::read(&out).unwrap();
    assert_eq!(bundle.manifest.class_templates, 1);
    let file = read_text_file(&quick);
    assert_eq!(file.class_templates, ClassTemplates::One);
    assert_eq!(bundle.class_embeds, file.class_embeds);
    // The file's words (f16 in the file) come through within f16 rounding of the reference.
    let deviation = relative_deviation(&bundle.word_embeds[..400 * 32], &expected()["word_embeds"].values);
    assert!(deviation < 1e-3, "{deviation}");
    assert_eq!(bundle.manifest.words[400..], ["zebra crossing", "lighthouse"]);
}

#[test]
fn a_text_file_of_other_weights_or_not_a_text_file_is_refused() {
    let other = std::env::temp_dir().join(format!("clip-lens-text-hf-{}.safetensors", std::process::id()));
    let result = embed_text("model-hf.safetensors", &other, &["--class-templates", "1"]);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let refused = |text: &Path| {
        let out = std::env::temp_dir().join(format!("clip-lens-text-refused-{}", std::process::id()));
        let result = precompute_command(&fixture_path("images"), &out)
            .args(["--layers", "1", "--top-k", "6", "--components", "8", "--text"])
            .arg(text)
            .output()
            .unwrap();
        assert!(!result.status.success());
        assert!(!out.join("manifest.json").exists());
        String::from_utf8_lossy(&result.stderr).into_owned()
    };
    let stderr = refused(&other);
    let (hf, openai) = (sha256_hex(MODEL_HF), sha256_hex(MODEL_OPENAI));
    assert!(stderr.contains("other weights") && stderr.contains(&hf) && stderr.contains(&openai), "{stderr}");
    let stderr = refused(&fixture_path("expected.safetensors"));
    assert!(stderr.contains("expected.safetensors") && stderr.contains("no `format`"), "{stderr}");
    let truncated = std::env::temp_dir().join(format!("clip-lens-text-cut-{}.safetensors", std::process::id()));
    let bytes = std::fs::read(text_file()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = refused(&truncated);
    assert!(stderr.contains("text embeddings file") && !stderr.contains("panicked"), "{stderr}");
    let result = embed_text("model-openai.safetensors", &other, &["--class-templates", "3"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && stderr.contains("3 class templates: use 80"), "{stderr}");
}

fn engine() -> Engine {
    Engine::new(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON), device::cpu(), BackendKind::Cpu, usize::MAX).unwrap()
}

/// Without a bundle, the text side classifies: the same classes and probabilities as with the
/// bundle made through the text tower; without either, the message says what to do in words.
#[test]
fn the_engine_classifies_with_the_text_side_alone() {
    let image = std::fs::read(fixture_path("images/img003.png")).unwrap();
    let options = AnalyzeOptions::default();
    let mut bare = engine();
    let message = block_on(bare.analyze(&image, &options)).unwrap_err().to_string();
    assert!(
        message.contains("no bundle is loaded: open one, or build one") && !message.contains("loadBundle"),
        "{message}"
    );
    bare.load_text_embeddings(&std::fs::read(text_file()).unwrap()).unwrap();
    let alone = block_on(bare.analyze(&image, &options)).unwrap();
    assert!(alone.layers.is_empty() && alone.words.is_empty());
    let mut with_bundle = engine();
    with_bundle.use_bundle(Bundle::read(bundle_dir()).unwrap()).unwrap();
    let full = block_on(with_bundle.analyze(&image, &options)).unwrap();
    assert_eq!(alone.classes.len(), options.top_classes);
    for (a, b) in alone.classes.iter().zip(&full.classes) {
        assert_eq!(a.name, b.name);
        assert!((a.probability - b.probability).abs() < 1e-6 && (a.cosine - b.cosine).abs() < 1e-6, "{a:?} {b:?}");
    }
    // A text side of other weights is refused, naming both.
    let other = std::env::temp_dir().join(format!("clip-lens-text-hf-engine-{}.safetensors", std::process::id()));
    assert!(embed_text("model-hf.safetensors", &other, &["--class-templates", "1"]).status.success());
    let message = engine().load_text_embeddings(&std::fs::read(&other).unwrap()).unwrap_err().to_string();
    assert!(message.contains(&sha256_hex(MODEL_HF)) && message.contains(&sha256_hex(MODEL_OPENAI)), "{message}");
}
