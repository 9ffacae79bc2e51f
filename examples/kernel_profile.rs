//! Profiles the GPU work of one image's analysis, as the page's `Engine.analyze` and
//! `segment("predicted")` do it, for a random-weight ViT-B/32 with a bundle of the paper's
//! sizes: cubecl's profiling log lists every kernel launch. Run it from a directory holding a
//! `cubecl.toml` such as
//!
//! ```toml
//! [profiling]
//! logger = { level = "minimal", stderr = true }   # "basic": each kernel's time, and a summary
//! ```
//!
//! (`cd /tmp/profile && cargo run --manifest-path ~/clip-lens/Cargo.toml --example kernel_profile`).
//! The first analysis compiles the kernels; the second is the steady state. Markers on stderr
//! bracket each phase, so `Executing` lines can be counted between them.
// A native tool: in a wasm32 build (`wasm-pack test` builds the examples too) it is empty.
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

use burn::tensor::{Tensor, TensorData};
use clip_lens::apps::analysis::BundleLens;
use clip_lens::apps::classify::{class_row, predicted_class};
use clip_lens::apps::segment::{bundle_directions, heatmaps, top_neurons, PAPER_TOP_NEURONS};
use clip_lens::bundle::sha256_hex;
use clip_lens::device::{self, read_f32_blocking};
use clip_lens::model::{ClipModel, Towers};
use clip_lens::preprocess::preprocess_image;
use clip_lens::synthetic::{gradient_png, random_bundle, random_weights, BundleSizes, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout, WeightFile};

/// Waits for the device and for cubecl's asynchronous logger, then prints a marker.
fn marker(device: &burn::tensor::Device, text: &str) {
    device.sync().expect("device sync");
    std::thread::sleep(std::time::Duration::from_millis(500));
    eprintln!("=== {text}");
}

fn main() -> clip_lens::Result<()> {
    let device = device::gpu()?;
    let config = ClipConfig::vit_b_32();
    let bytes =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 1);
    let bundle = random_bundle(&config, &sha256_hex(&bytes), &BundleSizes::paper(&config), 2);
    let model = ClipModel::load(&WeightFile::from_bytes(bytes)?, &config, Towers::Vision, &device)?;
    let vision = model.vision()?;
    marker(&device, "model loaded");
    let lens = BundleLens::new(vision, &bundle, &bundle.manifest.layers, usize::MAX, &device)?;
    marker(&device, "bundle lens prepared");
    let image = gradient_png(640, 480);
    let size = config.vision.image_size;
    for run in ["first", "second"] {
        let start = std::time::Instant::now();
        let pixels = preprocess_image(&image, size as u32)?.pixels;
        let output = vision.forward(
            Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, size, size]), &device),
            &lens.capture_request(),
        )?;
        let embedding = read_f32_blocking(output.embeds.clone())?;
        marker(&device, &format!("{run} analysis: forward read back ({:.2} s)", start.elapsed().as_secs_f64()));
        let findings = pollster::block_on(lens.discover(vision, &output, &bundle))?;
        let significant: usize = findings.iter().map(|f| f.concepts.significant_neurons.len()).sum();
        marker(
            &device,
            &format!(
                "{run} analysis: lens read back, {significant} significant neurons ({:.2} s)",
                start.elapsed().as_secs_f64()
            ),
        );
        let concept = class_row(&bundle, predicted_class(&bundle, &embedding)?)?;
        let selected = top_neurons(&bundle_directions(&bundle, &bundle.manifest.layers)?, &concept, PAPER_TOP_NEURONS)?;
        pollster::block_on(heatmaps(&output.captures.neurons, &selected, config.vision.patch_size))?;
        marker(&device, &format!("{run} segmentation read back ({:.2} s)", start.elapsed().as_secs_f64()));
    }
    Ok(())
}
