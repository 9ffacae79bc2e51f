//! Prints where a ViT-B/32 image forward's time goes on the CPU (flex): each step of one block
//! (`clip_lens::forward_profile`) at batch 1 and 8, in ms and as a share of the block.
//!
//! `cargo run --release --example forward_profile [RUNS]` (default 20 runs a step).
// A native tool: in a wasm32 build (`wasm-pack test` builds the examples too) it is empty.
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

use clip_lens::forward_profile::block_profile;
use clip_lens::model::{ClipModel, Towers};
use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
use clip_lens::{device, ClipConfig, Layout, WeightFile};

fn main() -> clip_lens::Result<()> {
    let runs = std::env::args()
        .nth(1)
        .map_or(Ok(20), |r| r.parse())
        .map_err(|e| clip_lens::Error::InvalidInput(format!("RUNS: {e}")))?;
    let config = ClipConfig::vit_b_32();
    let bytes =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F32, 1);
    let cpu = device::cpu();
    let model = ClipModel::load(&WeightFile::from_bytes(bytes)?, &config, Towers::Vision, &cpu)?;
    println!("ViT-B/32 block 0 on the CPU, {} threads, {runs} runs a step", device::cpu_threads());
    for batch in [1, 8] {
        let steps = pollster::block_on(block_profile(model.vision()?, &cpu, batch, runs))?;
        let block = steps.last().map_or(1.0, |s| s.ms);
        println!("batch {batch}:");
        for s in &steps {
            println!("  {:<46} {:>8.3} ms {:>5.1}%", s.step, s.ms, 100.0 * s.ms / block);
        }
    }
    Ok(())
}
