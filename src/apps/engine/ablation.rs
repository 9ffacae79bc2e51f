//! [`Engine::ablate`]: the paper's ablations on the last analysed image
//! ([`crate::apps::ablation::image`]), without a new forward. The engine's part: the analysed
//! image it keeps, and each touched layer's centred effects, computed on the device once per
//! image.

use super::results::{AblationRequest, AblationResult};
use super::{elapsed_ms, invalid, Engine, LastImage, LoadedBundle};
use crate::apps::ablation::centre;
use crate::apps::ablation::image::{ablate, AnalysedImage, Plan};
use crate::device::read_f32;
use crate::error::Result;
use crate::lens::second_order_effects;
use crate::model::VisionTransformer;

impl Engine {
    /// Replaces some second-order effects of the last analysed image (by their means, or by
    /// their rank-1 reconstructions) and returns its top classes and concept words before and
    /// after. The change to the embedding is linear in the effects: the first ablation touching
    /// a layer computes that layer's effects once (one lens pass, no forward); each ablation
    /// then costs O(ablated neurons x D).
    pub async fn ablate(&mut self, request: &AblationRequest) -> Result<AblationResult> {
        let start = web_time::Instant::now();
        let Engine { model, bundle, last, .. } = self;
        let loaded = bundle.as_ref().ok_or_else(|| invalid("no bundle is loaded: call loadBundle first"))?;
        let last = last.as_mut().ok_or_else(|| invalid("no image has been analysed yet: analyse an image first"))?;
        let plan = Plan::new(request, &loaded.bundle, &last.findings)?;
        for &layer in plan.layers.keys() {
            compute_centred(model.vision()?, loaded, last, layer).await?;
        }
        let image = AnalysedImage { embedding: &last.embedding, findings: &last.findings, centred: &last.centred };
        let mut result = ablate(&loaded.bundle, &image, request, plan)?;
        result.ms = elapsed_ms(start);
        last.ablations.push(result.clone());
        Ok(result)
    }
}

/// Computes (once per image) a layer's centred effects `phi_n - mean_n` `[N, D]`.
async fn compute_centred(
    vision: &VisionTransformer,
    loaded: &LoadedBundle,
    last: &mut LastImage,
    layer: usize,
) -> Result<()> {
    if last.centred.contains_key(&layer) {
        return Ok(());
    }
    let prepared = loaded.lens.layers.iter().find(|l| l.layer == layer).ok_or_else(|| {
        invalid(format!("layer {layer} is not prepared (the bundle has {:?})", loaded.bundle.manifest.layers))
    })?;
    let mut effects = read_f32(second_order_effects(vision, &prepared.factors, &last.output)?).await?;
    centre(&mut effects, &loaded.bundle.layers[&layer].mean);
    last.centred.insert(layer, effects);
    Ok(())
}
