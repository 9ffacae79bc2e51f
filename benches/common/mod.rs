//! What the criterion benchmarks share.

use burn::tensor::Device;
use clip_lens::device;
use clip_lens::model::{ClipModel, Towers};
use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout, WeightFile};

/// The CPU, and the wgpu device when `CLIP_LENS_BENCH_GPU` is set (and an adapter exists).
#[allow(dead_code)] // each bench compiles this module; not every one uses every helper
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut devices = vec![("cpu", device::cpu())];
    if std::env::var("CLIP_LENS_BENCH_GPU").is_ok() {
        match device::gpu() {
            Ok(gpu) => devices.push(("wgpu", gpu)),
            Err(e) => eprintln!("no wgpu device: {e}"),
        }
    }
    devices
}

/// ViT-B/32's image tower with random weights (f32), on `device`.
#[allow(dead_code)] // each bench compiles this module; not every one uses every helper
pub fn vit_b_32(device: &Device) -> ClipModel {
    let config = ClipConfig::vit_b_32();
    let bytes =
        random_weights(&config, Layout::OpenAi, TowerSelection { vision: true, text: false }, StorageType::F32, 1);
    ClipModel::load(&WeightFile::from_bytes(bytes).unwrap(), &config, Towers::Vision, device).unwrap()
}
