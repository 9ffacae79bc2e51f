//! What the criterion benchmarks share.

use burn::tensor::Device;
use clip_lens::device;

/// The CPU, and the wgpu device when `CLIP_LENS_BENCH_GPU` is set (and an adapter exists).
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
