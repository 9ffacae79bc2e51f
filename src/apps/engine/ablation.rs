//! [`Engine::ablate`]: the paper's ablations on the last analysed image
//! ([`crate::apps::ablate_image`]), without a new forward.

use std::collections::BTreeMap;

use super::results::{AblationResult, AblationView};
use super::{elapsed_ms, invalid, Engine, LastImage, LoadedBundle};
use crate::apps::ablate_image::{ablate_layer, parse_neurons, AblationRequest, LayerEffects, Replacement};
use crate::apps::analysis::LayerFindings;
use crate::apps::classify::classify;
use crate::apps::concepts::{discover_concepts, merge_layers, significant_neurons, Concepts};
use crate::bundle::Bundle;
use crate::device::read_f32;
use crate::error::Result;
use crate::lens::second_order_effects;
use crate::model::VisionTransformer;
use crate::vector;

/// Classes and words shown before and after.
const TOP_CLASSES: usize = 5;
const TOP_WORDS: usize = 10;

/// Per layer, how its effects are replaced, and the ablation in words.
type Plan = (BTreeMap<usize, Replacement>, String);

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
        let (plan, description) = plan(request, &loaded.bundle, last)?;
        for &layer in plan.keys() {
            compute_centred(model.vision()?, loaded, last, layer).await?;
        }
        let bundle = &loaded.bundle;
        let unit = vector::unit(&last.embedding).ok_or_else(|| invalid("the image embedding is zero"))?;
        let before_v: Vec<f32> = unit.iter().map(|x| 100.0 * x).collect();
        let mut v = before_v.clone();
        // The centred norms of the ablated layers after the ablation.
        let mut changed: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        let mut ablated = 0;
        for (layer, replacement) in &plan {
            let (Some(centred), Some(found)) = (last.centred.get(layer), last.findings.get(layer)) else {
                return Err(invalid(format!("layer {layer} of the analysed image has no effects")));
            };
            let norms = changed.entry(*layer).or_insert_with(|| found.norms.clone());
            let layer_effects = LayerEffects { centred, directions: &bundle.layers[layer].direction, norms };
            ablated += ablate_layer(&mut v, layer_effects, replacement);
        }
        let shift = vector::norm(&v.iter().zip(&before_v).map(|(a, b)| a - b).collect::<Vec<_>>());
        let result = AblationResult {
            request: request.clone(),
            description,
            ablated,
            before: view(bundle, &before_v, &last.findings, &BTreeMap::new())?,
            after: view(bundle, &v, &last.findings, &changed)?,
            shift,
            ms: elapsed_ms(start),
        };
        last.ablations.push(result.clone());
        Ok(result)
    }
}

/// What the request replaces in each layer, checked against the bundle's layers and sizes.
fn plan(request: &AblationRequest, bundle: &Bundle, last: &LastImage) -> Result<Plan> {
    let manifest = &bundle.manifest;
    let layer_norms = |layer: usize| {
        last.findings
            .get(&layer)
            .map(|found| &found.norms)
            .ok_or_else(|| invalid(format!("layer {layer} is not in the bundle (it has {:?})", manifest.layers)))
    };
    let mean_ablated = |layer: usize, significant: bool| -> Result<Plan> {
        let thresholds = bundle.layers[&layer].thresholds(manifest.top_k);
        let neurons = significant_neurons(layer_norms(layer)?, &thresholds, significant);
        let which = if significant { "significant" } else { "insignificant" };
        let description = format!("mean-ablated the {} {which} neurons of layer {layer}", neurons.len());
        Ok(([(layer, Replacement::Mean(neurons))].into(), description))
    };
    match request {
        AblationRequest::Neurons { neurons } => {
            let neurons = parse_neurons(neurons)?;
            let mut plan: BTreeMap<usize, Replacement> = BTreeMap::new();
            for &(layer, neuron) in &neurons {
                layer_norms(layer)?;
                if neuron >= manifest.neurons {
                    return Err(invalid(format!(
                        "neuron {neuron} is out of range: layer {layer} has {} neurons",
                        manifest.neurons
                    )));
                }
                if let Replacement::Mean(list) = plan.entry(layer).or_insert(Replacement::Mean(Vec::new())) {
                    list.push(neuron);
                }
            }
            let names: Vec<String> = neurons.iter().map(|(l, n)| format!("{l}:{n}")).collect();
            let count = if names.len() == 1 { "neuron".to_string() } else { format!("{} neurons", names.len()) };
            Ok((plan, format!("mean-ablated {count} ({})", names.join(", "))))
        }
        AblationRequest::Significant { layer } => mean_ablated(*layer, true),
        AblationRequest::Insignificant { layer } => mean_ablated(*layer, false),
        AblationRequest::RankOne { layer } => {
            layer_norms(*layer)?;
            let description =
                format!("kept only the rank-1 reconstruction of layer {layer}'s {} neurons", manifest.neurons);
            Ok(([(*layer, Replacement::RankOne)].into(), description))
        }
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
    effects.iter_mut().zip(&loaded.bundle.layers[&layer].mean).for_each(|(e, m)| *e -= m);
    last.centred.insert(layer, effects);
    Ok(())
}

/// The top classes of an embedding `v` and the concept words merged over the analysed image's
/// layers, discovery run again only in the `changed` layers (their centred norms after an
/// ablation).
fn view(
    bundle: &Bundle,
    v: &[f32],
    findings: &BTreeMap<usize, LayerFindings>,
    changed: &BTreeMap<usize, Vec<f32>>,
) -> Result<AblationView> {
    let manifest = &bundle.manifest;
    let classes = classify(v, &bundle.class_embeds, &manifest.classes, TOP_CLASSES)?;
    let (k, m) = (manifest.top_k, manifest.components);
    let rediscovered = changed
        .iter()
        .map(|(&layer, norms)| {
            let concepts = discover_concepts(layer, norms, &bundle.layers[&layer], k, m, &manifest.words, usize::MAX)?;
            Ok((layer, concepts))
        })
        .collect::<Result<BTreeMap<usize, Concepts>>>()?;
    let per_layer = findings.iter().map(|(layer, found)| rediscovered.get(layer).unwrap_or(&found.concepts));
    Ok(AblationView { classes, words: merge_layers(per_layer, TOP_WORDS) })
}
