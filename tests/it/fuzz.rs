//! The parsers of untrusted bytes under fuzzing, on the stable toolchain. The coverage-guided
//! fuzzers are the cargo-fuzz targets in `fuzz/` (nightly; `scripts/fuzz.sh`, a bounded run in
//! CI); their bodies (`fuzz/src/lib.rs`) are included here and run in three ways:
//! - bounded, deterministic mutation fuzzing of real files (the fixture model, a bundle that
//!   `precompute` writes, fixture images): flips, overwrites, inserts and truncations from a
//!   fixed xorshift seed, so a failure reproduces;
//! - the replay of every kept finding, `fuzz/regressions/<target>/*`;
//! - a check that the fuzzers' seeds (`fuzz/seeds/<target>/*`) are still accepted by the
//!   parsers, so that fuzzing starts past their first checks. `cargo test --test it
//!   fuzz::write_fuzz_seeds -- --ignored` writes them anew (after a format change).

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::common::*;
use clip_lens::bundle::{sha256_hex, Bundle, Storage};
use clip_lens::config::{Activation, TextConfig, VisionConfig};
use clip_lens::preprocess::preprocess_image;
use clip_lens::synthetic::{random_bundle, random_weights, BundleSizes, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout, WeightFile};

struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A mutated copy of `seed`; mutations favour the first `hot` bytes (headers).
    fn mutate(&mut self, seed: &[u8], hot: usize) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let span = if self.below(4) == 0 { bytes.len() } else { hot.min(bytes.len()) };
            let at = self.below(span);
            match self.below(6) {
                0 => bytes.truncate(at),
                1 => bytes.insert(at.min(bytes.len()), self.next() as u8),
                2 if at < bytes.len() => bytes[at] ^= 1 << self.below(8),
                3 if at < bytes.len() => bytes[at] = [0, 0xff, b'9', b'"', b'{', b'-'][self.below(6)],
                4 if at + 8 <= bytes.len() => bytes[at..at + 8].copy_from_slice(&self.next().to_le_bytes()),
                _ => bytes.extend(std::iter::repeat_n(0u8, self.below(16))),
            }
        }
        bytes
    }
}

/// Runs `target` on `cases` mutants of `seed`; panics name the case so it can be reproduced.
fn fuzz(what: &str, seed: &[u8], hot: usize, cases: usize, state: u64, target: impl Fn(&[u8])) {
    let mut mutator = Mutator(state);
    let mut failures = Vec::new();
    for case in 0..cases {
        let input = mutator.mutate(seed, hot);
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            failures.push(case);
        }
    }
    assert!(failures.is_empty(), "{what}: cases {failures:?} panicked (seed {state:#x})");
}

fn safetensors_header_end(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 8
}

#[test]
fn safetensors_reader_never_panics() {
    fuzz(
        "safetensors",
        MODEL_OPENAI,
        safetensors_header_end(MODEL_OPENAI),
        3000,
        0x9e37_79b9_7f4a_7c15,
        targets::weights,
    );
}

#[test]
fn bundle_reader_never_panics() {
    let dir =
        precomputed_bundle("fuzz", &["--layers", "1", "--top-k", "3", "--components", "4", "--thumbnail-size", "0"]);
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let tensors = std::fs::read(dir.join("lens.safetensors")).unwrap();
    Bundle::from_parts(&manifest, tensors.clone()).unwrap();
    fuzz("bundle manifest", manifest.as_bytes(), manifest.len(), 1500, 0x51_7cc1_b727_220a, |json| {
        targets::bundle(&targets::bundle_input(&String::from_utf8_lossy(json), &tensors));
    });
    fuzz("bundle tensors", &tensors, safetensors_header_end(&tensors), 1500, 0x2545_f491_4f6c_dd1d, |bytes| {
        targets::bundle(&targets::bundle_input(&manifest, bytes));
    });
}

#[test]
fn image_decoder_never_panics() {
    let jpeg = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/www/samples/cat.jpg"));
    fuzz("png", DETAIL_PNGS[0], 256, 800, 0xdead_beef_cafe_f00d, targets::image);
    fuzz("jpeg", jpeg, 1024, 300, 0x0123_4567_89ab_cdef, targets::image);
}

// ---------------------------------------------------------------------------
// Kept findings and seeds of the cargo-fuzz targets
// ---------------------------------------------------------------------------

/// A fuzz target: its name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 3] = [("weights", targets::weights), ("bundle", targets::bundle), ("image", targets::image)];

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target)
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none when the folder does not exist).
fn files(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir(kind, target)) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.is_file() && !p.ends_with("README.md")).collect();
    paths.sort();
    paths.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Every input a fuzzer once crashed on (kept when its cause was fixed) now passes.
#[test]
fn kept_fuzz_findings_pass() {
    for (target, run) in TARGETS {
        for (path, input) in files("regressions", target) {
            assert!(
                catch_unwind(AssertUnwindSafe(|| run(&input))).is_ok(),
                "{target}: {} panics again",
                path.display()
            );
        }
    }
}

/// A model small enough for seeds of a few kilobytes, with every tensor a real one has.
fn micro_config() -> ClipConfig {
    let vision = VisionConfig {
        width: 8,
        layers: 2,
        heads: 2,
        mlp_width: 16,
        image_size: 8,
        patch_size: 4,
        layer_norm_eps: 1e-5,
        activation: Activation::QuickGelu,
    };
    let text = TextConfig {
        width: 8,
        layers: 1,
        heads: 2,
        mlp_width: 16,
        context_length: 4,
        vocab_size: 10,
        layer_norm_eps: 1e-5,
        activation: Activation::QuickGelu,
    };
    ClipConfig { vision, text, embed_dim: 4 }
}

/// The seeds: small valid inputs of every kind each parser takes.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let config = micro_config();
    let both = TowerSelection { vision: true, text: true };
    let openai = random_weights(&config, Layout::OpenAi, both, StorageType::F32, 1);
    let hf = random_weights(&config, Layout::HuggingFace, both, StorageType::F16, 2);
    let image_only =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 3);

    let sizes = BundleSizes { layers: vec![0, 1], top_k: 2, components: 3, words: 5, classes: 3, significant_every: 2 };
    let mut bundle = random_bundle(&config, &sha256_hex(&openai), &sizes, 4);
    bundle.manifest.images = vec!["a.png".into(), "b.jpg".into()];
    bundle.manifest.thumbnail_size = 8;
    for layer in &sizes.layers {
        let lists = (0..config.vision.mlp_width).map(|n| if n % 2 == 0 { vec![1, 0] } else { vec![0] }).collect();
        bundle.manifest.top_images.insert(layer.to_string(), lists);
    }
    let manifest = bundle.manifest_json().unwrap();
    let bundle_f32 = targets::bundle_input(&manifest, &bundle.tensors(Storage::F32).unwrap());
    let bundle_f16 = targets::bundle_input(&manifest, &bundle.tensors(Storage::F16).unwrap());

    let mut all = vec![
        ("weights", "openai-f32.safetensors", openai),
        ("weights", "huggingface-f16.safetensors", hf),
        ("weights", "image-tower-f16.safetensors", image_only),
        ("bundle", "f32.bin", bundle_f32),
        ("bundle", "f16.bin", bundle_f16),
    ];
    all.extend(sample_images().into_iter().map(|(name, bytes)| ("image", name, bytes)));
    all
}

/// Small images of every format and colour type the decoder takes, one with an EXIF
/// orientation.
fn sample_images() -> Vec<(&'static str, Vec<u8>)> {
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
    let rgb = RgbImage::from_fn(12, 8, |x, y| Rgb([(x * 20) as u8, (y * 30) as u8, 128]));
    let encode = |image: DynamicImage, format: ImageFormat| {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    };
    let rgb = DynamicImage::ImageRgb8(rgb);
    let jpeg = encode(rgb.clone(), ImageFormat::Jpeg);
    vec![
        ("rgb8.png", encode(rgb.clone(), ImageFormat::Png)),
        ("rgba16.png", encode(DynamicImage::ImageRgba16(rgb.to_rgba16()), ImageFormat::Png)),
        ("gray.png", encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Png)),
        ("exif-rotated.jpg", with_exif_orientation(&jpeg, 6)),
        ("baseline.jpg", jpeg),
        ("lossless.webp", encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::WebP)),
        ("frame.gif", encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Gif)),
    ]
}

/// The fuzzers' seeds are valid inputs: each parser accepts them.
#[test]
fn fuzz_seeds_are_accepted() {
    for (target, _) in TARGETS {
        let seeds = files("seeds", target);
        assert!(
            !seeds.is_empty(),
            "fuzz/seeds/{target} is empty: run `cargo test --test it fuzz::write_fuzz_seeds -- --ignored`"
        );
        for (path, bytes) in seeds {
            let accepted = match target {
                // The fixture's 64-wide towers are not OpenAI's, so `infer` refuses them by design;
                // parsing and the layout are the first checks.
                "weights" => WeightFile::from_bytes(bytes).and_then(|file| file.layout()).map(drop),
                "bundle" => {
                    let split = bytes.iter().position(|&b| b == targets::BUNDLE_SEPARATOR).unwrap();
                    Bundle::from_parts(std::str::from_utf8(&bytes[..split]).unwrap(), bytes[split + 1..].to_vec())
                        .map(drop)
                }
                _ => preprocess_image(&bytes, targets::IMAGE_SIZE).map(drop).map_err(Into::into),
            };
            assert!(accepted.is_ok(), "{}: {} (rewrite the seeds?)", path.display(), accepted.unwrap_err());
        }
    }
}

/// Writes `fuzz/seeds/` anew.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand after a format change"]
fn write_fuzz_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = fuzz_dir("seeds", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
