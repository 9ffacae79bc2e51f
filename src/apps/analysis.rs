//! One image's analysis with a bundle, as the page (`Engine.analyze`), the CLI (`concepts`) and
//! the benchmarks do it: the bundle's lens prepared once on the device (per layer the lens
//! factors and the mean effects), then per analysed forward every layer's centred norms in one
//! readback and concept discovery per layer.

use burn::tensor::{Device, Tensor, TensorData};

use crate::apps::cards::HeadGrid;
use crate::apps::concepts::{discover_concepts, Concepts};
use crate::bundle::Bundle;
use crate::device::read_f32;
use crate::error::{Error, Result};
use crate::lens::{centred_effect_norms, head_alignments, head_scalars, LensFactors};
use crate::model::{CaptureRequest, VisionOutput, VisionTransformer};

/// One bundle layer's lens on the device.
pub struct PreparedLayer {
    /// The layer.
    pub layer: usize,
    /// Its weight-only lens factors.
    pub factors: LensFactors,
    /// The bundle's mean effects `[N, D]`.
    pub mean: Tensor<2>,
}

/// The lens of some of a bundle's layers, prepared for a model on a device.
pub struct BundleLens {
    /// The layers, in the order asked.
    pub layers: Vec<PreparedLayer>,
}

/// A layer's findings on one image.
pub struct LayerFindings {
    /// Every neuron's centred norm `|phi_n - mean_n|` `[N]`.
    pub norms: Vec<f32>,
    /// Concept discovery from those norms (all the words, best first).
    pub concepts: Concepts,
}

impl BundleLens {
    /// Prepares `layers` of `bundle` (each must be one of its layers) for `vision` on `device`;
    /// the factors are per head when they fit in `buffer_limit` bytes (see
    /// [`LensFactors::within`]).
    pub fn new(
        vision: &VisionTransformer,
        bundle: &Bundle,
        layers: &[usize],
        buffer_limit: usize,
        device: &Device,
    ) -> Result<Self> {
        let manifest = &bundle.manifest;
        let layers = layers
            .iter()
            .map(|&layer| {
                let lens = bundle.layer(layer)?;
                let mean = Tensor::<2>::from_data(
                    TensorData::new(lens.mean.clone(), [manifest.neurons, manifest.embed_dim]),
                    device,
                );
                Ok(PreparedLayer { layer, factors: LensFactors::within(vision, layer, buffer_limit)?, mean })
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// Layer `layer`'s prepared lens; an error naming the prepared layers when it is not one.
    pub fn prepared(&self, layer: usize) -> Result<&PreparedLayer> {
        self.layers.iter().find(|l| l.layer == layer).ok_or_else(|| {
            Error::InvalidInput(format!("layer {layer} is not prepared (it has {:?})", self.layer_numbers()))
        })
    }

    /// Neuron `neuron`'s heads on the one image of a forward captured with
    /// [`BundleLens::capture_request`]: each later head's part of its effect along r_n,
    /// `c(I) s_{l,h,n}(I) (u_{l,h,n} . r_n)`, from the captures and the factors (no new
    /// forward; one `[1, D] x [D, width]` product per later layer).
    pub async fn image_heads(
        &self,
        vision: &VisionTransformer,
        output: &VisionOutput,
        bundle: &Bundle,
        (layer, neuron): (usize, usize),
    ) -> Result<HeadGrid> {
        let factors = &self.prepared(layer)?.factors;
        bundle.describe(layer, neuron)?;
        let later = bundle.later_heads(layer)?;
        let dim = bundle.manifest.embed_dim;
        let direction = bundle.layer(layer)?.direction[neuron * dim..(neuron + 1) * dim].to_vec();
        let device = output.embeds.device();
        let direction = Tensor::<2>::from_data(TensorData::new(direction, [1, dim]), &device);
        let (Some(scalars), Some(alignment)) =
            (head_scalars(vision, factors, output)?, head_alignments(vision, factors, &direction, neuron))
        else {
            return Ok(HeadGrid::new(later, Vec::new()));
        };
        let [_, neurons, heads] = scalars.dims();
        let scalars = read_f32(scalars.narrow(1, neuron, 1).reshape([heads])).await?;
        let alignment = read_f32(alignment.reshape([heads])).await?;
        debug_assert_eq!(neurons, bundle.manifest.neurons);
        Ok(HeadGrid::new(later, scalars.iter().zip(&alignment).map(|(s, a)| s * a).collect()))
    }

    /// The layer numbers, in order.
    pub fn layer_numbers(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.layer).collect()
    }

    /// What a forward must capture for [`BundleLens::discover`].
    pub fn capture_request(&self) -> CaptureRequest {
        CaptureRequest::for_lens(&self.layer_numbers())
    }

    /// Concept discovery in every prepared layer for the one image of a forward captured with
    /// [`BundleLens::capture_request`]: all layers' centred norms in one readback.
    pub async fn discover(
        &self,
        vision: &VisionTransformer,
        output: &VisionOutput,
        bundle: &Bundle,
    ) -> Result<Vec<LayerFindings>> {
        self.discover_layers(vision, output, bundle, &self.layer_numbers()).await
    }

    /// [`BundleLens::discover`] in some of the prepared layers only, in the order of `layers`.
    pub async fn discover_layers(
        &self,
        vision: &VisionTransformer,
        output: &VisionOutput,
        bundle: &Bundle,
        layers: &[usize],
    ) -> Result<Vec<LayerFindings>> {
        let batch = output.embeds.dims()[0];
        if batch != 1 {
            return Err(Error::InvalidInput(format!("concept discovery takes one image per forward, not {batch}")));
        }
        let prepared = layers.iter().map(|&layer| self.prepared(layer)).collect::<Result<Vec<_>>>()?;
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let norms = prepared
            .iter()
            .map(|l| centred_effect_norms(vision, &l.factors, output, &l.mean))
            .collect::<Result<Vec<_>>>()?;
        let norms = read_f32(Tensor::cat(norms, 1)).await?; // [1, layers x N]
        let manifest = &bundle.manifest;
        prepared
            .iter()
            .zip(norms.chunks_exact(manifest.neurons))
            .map(|(l, layer_norms)| {
                let concepts = discover_concepts(
                    l.layer,
                    layer_norms,
                    &bundle.layers[&l.layer],
                    manifest.top_k,
                    manifest.components,
                    &manifest.words,
                    usize::MAX,
                )?;
                Ok(LayerFindings { norms: layer_norms.to_vec(), concepts })
            })
            .collect()
    }
}
