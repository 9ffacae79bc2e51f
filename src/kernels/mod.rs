//! CPU kernels that burn's `flex` backend lacks, run on flex tensors natively and in the
//! browser (the same code: AVX-512 natively, WebAssembly SIMD in the page). Where a device is
//! not flex (wgpu, WebGPU), or the CPU has no vector kernel, the model keeps burn's own ops.

pub mod packed_linear;

use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};

pub use packed_linear::{Epilogue, PackedLinear};

/// Whether `device` is flex and this CPU has the packed kernels' vector code.
pub fn packs_weights(device: &Device) -> bool {
    *device == Device::flex() && packed_linear::available()
}

/// `f(values, rows)` on the row-major f32 values of `x` `[rows, cols]`, as a flex tensor
/// `[rows, out_cols]`. `None` (and `x` back) when `x` is not an f32 flex tensor.
pub fn map_rows(x: Tensor<2>, out_cols: usize, f: impl FnOnce(&[f32], usize) -> Vec<f32>) -> Result<Tensor<2>, Tensor<2>> {
    if x.device() != Device::flex() || x.dtype() != DType::F32 {
        return Err(x);
    }
    let [rows, _] = x.dims();
    let flex: FlexTensor = match x.try_into_primitive::<Flex>() {
        Ok(tensor) => tensor,
        Err(e) => unreachable!("a flex f32 tensor is a flex primitive: {e:?}"),
    };
    let flex = if flex.layout().contiguous_offsets().is_some() { flex } else { flex.to_contiguous() };
    let values = flex.as_slice::<f32>().expect("contiguous f32");
    let out = f(values, rows);
    Ok(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, [rows, out_cols]))))
}
