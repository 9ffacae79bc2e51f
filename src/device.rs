//! Choosing a compute device and reading tensors back, the same way natively and in wasm.
//!
//! Natively the GPU is wgpu (Vulkan, Metal, DX12; lavapipe without a GPU); in the browser it is
//! WebGPU, which must be initialised asynchronously, once per page. The CPU is burn's `flex`
//! backend everywhere.

use burn::tensor::{Device, ExecutionError, Tensor};

use crate::error::{Error, Result};

/// Which kind of device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn `flex` on the CPU.
    Cpu,
    /// wgpu natively, WebGPU in the browser.
    Gpu,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "gpu" | "webgpu" | "wgpu" => Ok(BackendKind::Gpu),
            other => Err(Error::InvalidInput(format!("unknown device `{other}` (expected cpu or gpu)"))),
        }
    }
}

/// The threads the CPU backend's matrix products and batches use: rayon's pool. Natively one
/// per core unless `RAYON_NUM_THREADS` says otherwise; in the browser one in the
/// single-threaded module, and in the threaded one as many as the page started
/// (`initThreadPool`).
pub fn cpu_threads() -> usize {
    rayon::current_num_threads()
}

/// The CPU device (burn `flex`).
pub fn cpu() -> Device {
    Device::flex()
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
static GPU: std::sync::OnceLock<Device> = std::sync::OnceLock::new();

/// The outcome of the native GPU initialisation, which wgpu allows once per process.
#[cfg(not(target_arch = "wasm32"))]
static GPU_INIT: std::sync::Mutex<Option<std::result::Result<(), String>>> = std::sync::Mutex::new(None);

/// The GPU device, initialised on first use (natively: synchronously). Threads asking at the
/// same time wait for one initialisation; a failure is remembered and reported to every caller.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> Result<Device> {
    let mut outcome = GPU_INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if outcome.is_none() {
        *outcome = Some(match Device::wgpu_options().init() {
            Ok(device) => {
                let _ = GPU.set(device);
                Ok(())
            }
            Err(e) => Err(format!("no usable GPU adapter: {e}")),
        });
    }
    match (outcome.as_ref(), GPU.get()) {
        (Some(Ok(())), Some(device)) => Ok(device.clone()),
        (Some(Err(message)), _) => Err(Error::Device(message.clone())),
        _ => Err(Error::Device("the GPU was not initialised".into())),
    }
}

/// The GPU device, initialised on first use. In the browser WebGPU can only be initialised
/// asynchronously and only once per page; later calls return the same device.
#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
pub async fn gpu_async() -> Result<Device> {
    if let Some(device) = GPU.get() {
        return Ok(device.clone());
    }
    let device =
        Device::wgpu_options().init_async().await.map_err(|e| Error::Device(format!("no usable GPU adapter: {e}")))?;
    Ok(GPU.get_or_init(|| device).clone())
}

/// The threaded wasm module has no GPU backend (see Cargo.toml): an error that says so.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub async fn gpu_async() -> Result<Device> {
    Err(Error::Device("WebGPU runs in the single-threaded module; this threaded one has only the CPU backend".into()))
}

/// A device of the requested kind (native only: the browser uses [`device_async`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(cpu()),
        BackendKind::Gpu => gpu(),
    }
}

/// A device of the requested kind, on any target.
pub async fn device_async(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(cpu()),
        BackendKind::Gpu => gpu_async().await,
    }
}

/// Reads a float tensor back to the host as row-major f32 values. Works on every backend
/// and target (in the browser a synchronous read would panic).
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor.into_data_async().await.map_err(readback_error)?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("unexpected tensor data: {e:?}")))
}

/// A failed readback: [`Error::DeviceLost`] when burn says the device is poisoned (every later
/// operation on it fails), else [`Error::Device`].
fn readback_error(error: ExecutionError) -> Error {
    match error {
        ExecutionError::DevicePoisoned { reason } => Error::DeviceLost(reason),
        other => Error::Device(format!("reading a tensor back failed: {other:?}")),
    }
}

/// Synchronous [`read_f32`] for native code.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_f32_blocking<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor.try_into_data().map_err(readback_error)?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("unexpected tensor data: {e:?}")))
}
