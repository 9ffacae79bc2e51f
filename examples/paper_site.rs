//! Writes what the page needs to open a random-weight ViT-B/32 with a bundle of the paper's sizes
//! (layers 8, 9, 10; k = 100; m = 128; 5000 words; 1000 classes), to time the page from opening
//! to the first analysis shown with `benches/browser.mjs`:
//!
//! ```sh
//! cargo run --profile dev --example paper_site www/dist/models/paper
//! node benches/browser.mjs "index.html?weights=models/paper/vit-b-32.safetensors&config=models/paper/config.json&bundle=models/paper/bundle/"
//! ```
//!
//! OUT gets `vit-b-32.safetensors` (the image tower in f16, as `clip-lens convert --dtype f16`
//! stores it: 176 MB), `config.json`, and `bundle/manifest.json` with `bundle/lens.safetensors`
//! (`synthetic::paper_bundle_files`, the browser benchmark's bundle).
// A native tool: in a wasm32 build (`wasm-pack test` builds the examples too) it is empty.
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use clip_lens::synthetic::{paper_bundle_files, random_weights, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: paper_site OUT")?);
    let config = ClipConfig::vit_b_32();
    let weights =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F16, 1);
    let (_, manifest, tensors) = paper_bundle_files(&config, &weights)?;
    std::fs::create_dir_all(out.join("bundle"))?;
    std::fs::write(out.join("vit-b-32.safetensors"), &weights)?;
    std::fs::write(out.join("config.json"), config.to_hf_json().to_string())?;
    std::fs::write(out.join("bundle/manifest.json"), manifest)?;
    std::fs::write(out.join("bundle/lens.safetensors"), tensors)?;
    println!(
        "wrote {} (weights {} MB, bundle {} MB)",
        out.display(),
        weights.len() >> 20,
        std::fs::metadata(out.join("bundle/lens.safetensors"))?.len() >> 20
    );
    Ok(())
}
