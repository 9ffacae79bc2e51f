//! The matrix-product probe: the image forward's own products, timed on a device, in GFLOP/s:
//! burn's `matmul`, and on the CPU also the packed linear kernel the forward runs there
//! ([`crate::kernels::PackedLinear`], through [`Linear::forward`]). Most of a forward's
//! arithmetic is these products (ViT-B/32: 4.3 of its 4.4 GMAC), so the probe tells how near
//! the matrix kernels run to the machine's peak, apart from everything else the forward does. The criterion benchmark
//! (`benches/matmul.rs`, per thread count) and the browser benchmark page (`&probe=1`) both run it.

use burn::tensor::{Device, Distribution, Tensor};

use crate::config::VisionConfig;
use crate::device::read_f32;
use crate::error::Result;
use crate::kernels;
use crate::model::Linear;

/// One product `[m, k] x [k, n]` of the forward.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MatmulShape {
    /// Which product of a block it is.
    pub name: &'static str,
    /// Rows: tokens times images.
    pub m: usize,
    /// The shared dimension.
    pub k: usize,
    /// Columns.
    pub n: usize,
}

impl MatmulShape {
    /// Floating-point operations of one product (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

/// The products of one block of the image tower for `batch` images: the packed query, key and
/// value maps (`[T, W] x [W, 3W]`), the MLP's `c_fc` (`[T, W] x [W, 4W]`) and `c_proj`
/// (`[T, 4W] x [4W, W]`); for ViT-B/32 at batch 1 `[50,768]x[768,2304]`, `[50,768]x[768,3072]`
/// and `[50,3072]x[3072,768]`.
pub fn forward_shapes(config: &VisionConfig, batch: usize) -> Vec<MatmulShape> {
    let (m, w, mlp) = (batch * config.tokens(), config.width, config.mlp_width);
    vec![
        MatmulShape { name: "qkv", m, k: w, n: 3 * w },
        MatmulShape { name: "mlp_in", m, k: w, n: mlp },
        MatmulShape { name: "mlp_out", m, k: mlp, n: w },
    ]
}

/// The probe's measurement of one shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatmulTiming {
    /// The product.
    #[serde(flatten)]
    pub shape: MatmulShape,
    /// Which kernel: `"matmul"` (burn's) or `"packed"` (the CPU's packed linear layer, bias
    /// included).
    pub kernel: &'static str,
    /// Mean milliseconds per product over the timed runs (after one untimed warm-up).
    pub ms: f64,
    /// `shape.flops() / ms`, in GFLOP/s.
    pub gflops: f64,
}

/// Times `runs` products of `shape` on `device` (random operands, made once; one warm-up run
/// first). Each product's result is read back, one value of it, so a GPU's queue is included.
pub async fn time_matmul(device: &Device, shape: &MatmulShape, runs: usize) -> Result<MatmulTiming> {
    let lhs = Tensor::<2>::random([shape.m, shape.k], Distribution::Normal(0.0, 1.0), device);
    let rhs = Tensor::<2>::random([shape.k, shape.n], Distribution::Normal(0.0, 1.0), device);
    time_product(shape, "matmul", runs, || lhs.clone().matmul(rhs.clone())).await
}

/// Times `runs` products of `shape` through a linear layer made for `device` (on the CPU: the
/// packed kernel), bias included.
pub async fn time_linear(device: &Device, shape: &MatmulShape, runs: usize) -> Result<MatmulTiming> {
    let x = Tensor::<3>::random([1, shape.m, shape.k], Distribution::Normal(0.0, 1.0), device);
    let weight = Tensor::<2>::random([shape.k, shape.n], Distribution::Normal(0.0, 1.0), device);
    let layer = Linear::new(read_f32(weight).await?, vec![0.0; shape.n], shape.k, shape.n, device);
    let kernel = if kernels::packs_weights(device) { "packed" } else { "matmul" };
    time_product(shape, kernel, runs, || layer.forward(x.clone()).reshape([shape.m, shape.n])).await
}

/// Times `product` ([`crate::forward_profile::mean_ms`]) as one of `shape` on `kernel`.
async fn time_product(
    shape: &MatmulShape,
    kernel: &'static str,
    runs: usize,
    product: impl Fn() -> Tensor<2>,
) -> Result<MatmulTiming> {
    let ms = crate::forward_profile::mean_ms(runs, product).await?;
    Ok(MatmulTiming { shape: shape.clone(), kernel, ms, gflops: shape.flops() / (ms * 1e6) })
}

/// Times every product of [`forward_shapes`] for each batch in `batches`: burn's `matmul`, and
/// where the forward packs its weights (the CPU with a vector kernel) the packed layer too.
pub async fn probe(
    device: &Device,
    config: &VisionConfig,
    batches: &[usize],
    runs: usize,
) -> Result<Vec<MatmulTiming>> {
    let mut timings = Vec::new();
    for &batch in batches {
        for shape in forward_shapes(config, batch) {
            timings.push(time_matmul(device, &shape, runs).await?);
            if kernels::packs_weights(device) {
                timings.push(time_linear(device, &shape, runs).await?);
            }
        }
    }
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClipConfig;

    #[test]
    fn the_forward_shapes_of_vit_b_32() {
        let shapes = forward_shapes(&ClipConfig::vit_b_32().vision, 8);
        let dims: Vec<_> = shapes.iter().map(|s| (s.m, s.k, s.n)).collect();
        assert_eq!(dims, [(400, 768, 2304), (400, 768, 3072), (400, 3072, 768)]);
        assert_eq!(shapes[0].flops(), 2.0 * 400.0 * 768.0 * 2304.0);
    }
}
