//! The paper's ablations on one analysed image, live (the page's lab, `clip-lens ablate
//! --image`): a request ([`AblationRequest`]) becomes a [`Plan`] (how each touched layer's
//! effects are replaced), [`ablate`] applies it with [`super`]'s formula and gives the image's
//! top classes and concept words before and after. The layers' centred effects are computed
//! once per image by the caller (one lens pass of a layer, no forward: `Engine::ablate`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ablate_layer, classifier_embedding, LayerEffects, Replacement};
use crate::apps::analysis::LayerFindings;
use crate::apps::cards::parse_neurons;
use crate::apps::classify::{classify, ClassScore};
use crate::apps::concepts::{discover_concepts, merge_layers, significant_neurons, Concepts};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::vector;

/// Classes and words shown before and after.
const TOP_CLASSES: usize = 5;
const TOP_WORDS: usize = 10;

/// What to ablate on the analysed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AblationRequest {
    /// Mean-ablate these neurons: `"9:4,9:17"` (layer:neuron, comma separated).
    Neurons {
        /// The neurons.
        neurons: String,
    },
    /// Mean-ablate every neuron of the layer that is significant on the image.
    Significant {
        /// The layer.
        layer: usize,
    },
    /// Mean-ablate every neuron of the layer that is not significant on the image.
    Insignificant {
        /// The layer.
        layer: usize,
    },
    /// Keep only the rank-1 reconstruction `mean_n + x_n r_n` of every neuron of the layer.
    RankOne {
        /// The layer.
        layer: usize,
    },
}

/// Classes and concept words of the analysed image, before or after an ablation.
#[derive(Debug, Clone, Serialize)]
pub struct AblationView {
    /// The top classes.
    pub classes: Vec<ClassScore>,
    /// Concept words merged over the bundle's layers.
    pub words: Vec<(String, f32)>,
}

/// An ablation on the analysed image.
#[derive(Debug, Clone, Serialize)]
pub struct AblationResult {
    /// What was asked.
    pub request: AblationRequest,
    /// What was done, in words.
    pub description: String,
    /// Neurons whose effect was replaced.
    pub ablated: usize,
    /// The image as analysed.
    pub before: AblationView,
    /// With the effects replaced.
    pub after: AblationView,
    /// `|v' - v|`, where `|v| = 100`.
    pub shift: f32,
    /// Milliseconds (the layers' effects, once per image, included).
    pub ms: f64,
}

/// What a request replaces in each layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Per layer, how its effects are replaced.
    pub layers: BTreeMap<usize, Replacement>,
    /// The ablation in words.
    pub description: String,
}

impl Plan {
    /// What `request` replaces, checked against the bundle's sizes and the analysed image's
    /// layers (`findings`, whose centred norms say which neurons are significant).
    pub fn new(request: &AblationRequest, bundle: &Bundle, findings: &BTreeMap<usize, LayerFindings>) -> Result<Plan> {
        let manifest = &bundle.manifest;
        let layer_norms = |layer: usize| match findings.get(&layer) {
            Some(found) => Ok(&found.norms),
            None if bundle.layers.contains_key(&layer) => {
                Err(Error::InvalidInput(format!("layer {layer} of the image was not analysed")))
            }
            None => {
                Err(Error::InvalidInput(format!("layer {layer} is not in the bundle (it has {:?})", manifest.layers)))
            }
        };
        let one_layer = |layer: usize, replacement: Replacement, description: String| Plan {
            layers: [(layer, replacement)].into(),
            description,
        };
        let mean_ablated = |layer: usize, significant: bool| -> Result<Plan> {
            let thresholds = bundle.layers[&layer].thresholds(manifest.top_k);
            let neurons = significant_neurons(layer_norms(layer)?, &thresholds, significant);
            let which = if significant { "significant" } else { "insignificant" };
            let description = format!("mean-ablated the {} {which} neurons of layer {layer}", neurons.len());
            Ok(one_layer(layer, Replacement::Mean(neurons), description))
        };
        match request {
            AblationRequest::Neurons { neurons } => {
                let neurons = parse_neurons(neurons)?;
                let mut layers: BTreeMap<usize, Replacement> = BTreeMap::new();
                for &(layer, neuron) in &neurons {
                    layer_norms(layer)?;
                    if neuron >= manifest.neurons {
                        return Err(Error::InvalidInput(format!(
                            "neuron {neuron} is out of range: layer {layer} has {} neurons",
                            manifest.neurons
                        )));
                    }
                    if let Replacement::Mean(list) = layers.entry(layer).or_insert(Replacement::Mean(Vec::new())) {
                        list.push(neuron);
                    }
                }
                let names: Vec<String> = neurons.iter().map(|(l, n)| format!("{l}:{n}")).collect();
                let count = if names.len() == 1 { "neuron".to_string() } else { format!("{} neurons", names.len()) };
                Ok(Plan { layers, description: format!("mean-ablated {count} ({})", names.join(", ")) })
            }
            AblationRequest::Significant { layer } => mean_ablated(*layer, true),
            AblationRequest::Insignificant { layer } => mean_ablated(*layer, false),
            AblationRequest::RankOne { layer } => {
                layer_norms(*layer)?;
                let description =
                    format!("kept only the rank-1 reconstruction of layer {layer}'s {} neurons", manifest.neurons);
                Ok(one_layer(*layer, Replacement::RankOne, description))
            }
        }
    }
}

/// An analysed image as its ablations see it.
pub struct AnalysedImage<'a> {
    /// Its unnormalised embedding.
    pub embedding: &'a [f32],
    /// Its analysed layers' centred norms and concepts (all the words), by layer.
    pub findings: &'a BTreeMap<usize, LayerFindings>,
    /// The centred effects `[N, D]` of (at least) the layers a plan touches, by layer.
    pub centred: &'a BTreeMap<usize, Vec<f32>>,
}

/// Applies `plan` (made from `request`) to an analysed image: its top classes and concept words
/// before and after, and how far the embedding moved. `ms` is left at 0 for the caller, who
/// times the whole (the layers' effects included).
pub fn ablate(bundle: &Bundle, image: &AnalysedImage, request: &AblationRequest, plan: Plan) -> Result<AblationResult> {
    let before_v = classifier_embedding(image.embedding)
        .ok_or_else(|| Error::InvalidInput("the image embedding is zero".into()))?;
    let mut v = before_v.clone();
    // The centred norms of the ablated layers after the ablation.
    let mut changed: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    let mut ablated = 0;
    for (layer, replacement) in &plan.layers {
        let (Some(centred), Some(found)) = (image.centred.get(layer), image.findings.get(layer)) else {
            return Err(Error::InvalidInput(format!("layer {layer} of the analysed image has no effects")));
        };
        let norms = changed.entry(*layer).or_insert_with(|| found.norms.clone());
        let directions = &bundle.layers[layer].direction;
        let layer_effects = LayerEffects { centred, directions, sparse_directions: &[], norms };
        ablated += ablate_layer(&mut v, layer_effects, replacement);
    }
    let shift = vector::norm(&v.iter().zip(&before_v).map(|(a, b)| a - b).collect::<Vec<_>>());
    Ok(AblationResult {
        request: request.clone(),
        description: plan.description,
        ablated,
        before: view(bundle, &before_v, image.findings, &BTreeMap::new())?,
        after: view(bundle, &v, image.findings, &changed)?,
        shift,
        ms: 0.0,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_from_json_and_refuse_unknown_keys() {
        let request: AblationRequest = serde_json::from_str(r#"{"kind":"rank-one","layer":9}"#).unwrap();
        assert_eq!(request, AblationRequest::RankOne { layer: 9 });
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"rank-one","layer":9,"x":1}"#).is_err());
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"everything"}"#).is_err());
    }
}
