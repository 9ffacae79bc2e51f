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
    /// Steer these neurons: scale each one's centred effect by its factor, `"9:4=3,9:17=-1"`
    /// (`phi_n -> mean_n + alpha (phi_n - mean_n)`: 0 is the mean ablation, 1 changes nothing).
    Steer {
        /// The neurons and their factors, `layer:neuron=alpha` comma separated.
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
                let names: Vec<String> = neurons.iter().map(|(l, n)| format!("{l}:{n}")).collect();
                let by_layer =
                    neurons_by_layer(neurons.iter().map(|&neuron| (neuron, 0.0)), manifest.neurons, layer_norms)?;
                let layers = by_layer
                    .into_iter()
                    .map(|(layer, list)| (layer, Replacement::Mean(list.into_iter().map(|(n, _)| n).collect())));
                Ok(Plan {
                    layers: layers.collect(),
                    description: format!("mean-ablated {} ({})", count(names.len()), names.join(", ")),
                })
            }
            AblationRequest::Steer { neurons } => {
                let factors = parse_steering(neurons)?;
                let names: Vec<String> = factors.iter().map(|((l, n), alpha)| format!("{l}:{n} × {alpha}")).collect();
                let by_layer = neurons_by_layer(factors.iter().copied(), manifest.neurons, layer_norms)?;
                let layers = by_layer.into_iter().map(|(layer, list)| (layer, Replacement::Steer(list)));
                Ok(Plan {
                    layers: layers.collect(),
                    description: format!("steered {} ({})", count(names.len()), names.join(", ")),
                })
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

/// "neuron" or "N neurons".
fn count(neurons: usize) -> String {
    if neurons == 1 {
        "neuron".to_string()
    } else {
        format!("{neurons} neurons")
    }
}

/// `(layer, neuron)`s with a factor each, grouped by layer, once checked: every layer analysed
/// (`layer_norms` says why not) and every neuron in range (`neurons` per layer).
fn neurons_by_layer<'a>(
    factors: impl Iterator<Item = ((usize, usize), f32)>,
    neurons: usize,
    layer_norms: impl Fn(usize) -> Result<&'a Vec<f32>>,
) -> Result<BTreeMap<usize, Vec<(usize, f32)>>> {
    let mut layers: BTreeMap<usize, Vec<(usize, f32)>> = BTreeMap::new();
    for ((layer, neuron), alpha) in factors {
        layer_norms(layer)?;
        if neuron >= neurons {
            return Err(Error::InvalidInput(format!(
                "neuron {neuron} is out of range: layer {layer} has {neurons} neurons"
            )));
        }
        layers.entry(layer).or_default().push((neuron, alpha));
    }
    Ok(layers)
}

/// The neurons and factors of a steering, `"9:4=3,9:17=-1"`: each neuron once, each factor a
/// finite number.
pub fn parse_steering(spec: &str) -> Result<Vec<((usize, usize), f32)>> {
    let mut factors: Vec<((usize, usize), f32)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let unreadable =
            || Error::InvalidInput(format!("“{item}” is not a steering: write layer:neuron=factor, e.g. 9:4=3"));
        let (neuron, alpha) = item.split_once('=').ok_or_else(unreadable)?;
        let alpha: f32 = alpha.trim().parse().ok().filter(|a: &f32| a.is_finite()).ok_or_else(unreadable)?;
        let neuron = parse_neurons(neuron)?[0];
        if factors.iter().any(|(seen, _)| *seen == neuron) {
            return Err(Error::InvalidInput(format!("neuron {}:{} is steered twice", neuron.0, neuron.1)));
        }
        factors.push((neuron, alpha));
    }
    if factors.is_empty() {
        return Err(Error::InvalidInput(
            "the steering is empty: write layer:neuron=factor pairs, e.g. 9:4=3,9:17=-1".into(),
        ));
    }
    Ok(factors)
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
        let request: AblationRequest = serde_json::from_str(r#"{"kind":"steer","neurons":"9:4=3"}"#).unwrap();
        assert_eq!(request, AblationRequest::Steer { neurons: "9:4=3".into() });
        let request: AblationRequest = serde_json::from_str(r#"{"kind":"rank-one","layer":9}"#).unwrap();
        assert_eq!(request, AblationRequest::RankOne { layer: 9 });
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"rank-one","layer":9,"x":1}"#).is_err());
        assert!(serde_json::from_str::<AblationRequest>(r#"{"kind":"everything"}"#).is_err());
    }

    #[test]
    fn steerings_read_each_neuron_once_with_a_finite_factor() {
        assert_eq!(parse_steering(" 9:4=3, 10:17=-1.5 ").unwrap(), [((9, 4), 3.0), ((10, 17), -1.5)]);
        for (spec, says) in [
            ("9:4", "not a steering"),
            ("9:4=x", "not a steering"),
            ("9:4=inf", "not a steering"),
            ("9=3", "not a neuron"),
            ("9:4=1,9:4=2", "steered twice"),
            ("", "empty"),
        ] {
            let error = parse_steering(spec).unwrap_err().to_string();
            assert!(error.contains(says), "{spec}: {error}");
        }
    }
}
