//! Heatmaps: a concept's segmentation (on the last analysed image, or on an image with a forward
//! of its own) and one neuron's activation map.

use std::collections::BTreeMap;

use super::results::{ActivationMap, Geometry, Ranked, Segmentation};
use super::{elapsed_ms, invalid, no_image_yet, Engine, SegmentOptions};
use crate::apps::classify;
use crate::apps::segment::{self, ConceptNeurons, ConceptSpec, NeuronDraw, RankedNeuron};
use crate::device::read_f32;
use crate::error::Result;
use crate::model::CaptureRequest;
use crate::preprocess::{preprocess_image, CropGeometry};

/// A concept of a segmentation, resolved: what it is called, its kind (`text`, `class` or
/// `predicted`), its class's index, and its unit embedding.
struct ResolvedConcept {
    label: String,
    kind: &'static str,
    class_index: Option<usize>,
    embedding: Vec<f32>,
}

impl Engine {
    /// The heatmap of a concept on the last analysed image, without a new forward. `concept`
    /// is `"predicted"` (the image's top class), `"class:<name>"` (a class of the bundle) or
    /// free text (loads the text tower). `layers` and `top_neurons` default to
    /// [`SegmentOptions`]'s (the bundle's layers, the paper's count); `top_neurons` is clamped to
    /// the neurons those layers have.
    pub async fn segment(
        &mut self,
        concept: &str,
        layers: Option<Vec<usize>>,
        top_neurons: Option<usize>,
    ) -> Result<Segmentation> {
        let start = web_time::Instant::now();
        let concept = ConceptSpec::parse(concept)?;
        self.bundle()?;
        if self.last.is_none() {
            return Err(no_image_yet());
        }
        let text = self.text_embedding_of(&concept).await?;
        let last = self.last.as_ref().ok_or_else(no_image_yet)?;
        let choice = self.concept_neurons(layers, top_neurons)?;
        let resolved = self.resolve_concept(concept, text, &last.embedding)?;
        self.segmentation(&resolved, &choice, NeuronDraw::Best, &last.output.captures.neurons, start).await
    }

    /// The heatmaps of a concept on an encoded image, one per draw of its neurons (`draws`:
    /// the best aligned, or as many at random), from one forward of its own that keeps only the
    /// ranked layers' neurons: no lens and no concepts, what `clip-lens segment` and `eval-seg`
    /// need for many images. The last analysed image is left as it was. Returns the crop
    /// geometry too, which maps the heatmaps back onto the image. Other arguments as
    /// [`Engine::segment`]'s.
    pub async fn segment_image(
        &mut self,
        image: &[u8],
        concept: &str,
        layers: Option<Vec<usize>>,
        top_neurons: Option<usize>,
        draws: &[NeuronDraw],
    ) -> Result<(Vec<Segmentation>, CropGeometry)> {
        let start = web_time::Instant::now();
        let concept = ConceptSpec::parse(concept)?;
        self.bundle()?;
        let text = self.text_embedding_of(&concept).await?;
        let choice = self.concept_neurons(layers, top_neurons)?;
        let vision = self.model.vision()?;
        let pre = preprocess_image(image, vision.config.image_size as u32)?;
        let output = vision.forward(vision.pixel_tensor(pre.pixels)?, &CaptureRequest::neurons(&choice.layers))?;
        let embedding = read_f32(output.embeds).await?;
        let resolved = self.resolve_concept(concept, text, &embedding)?;
        let mut segmentations = Vec::with_capacity(draws.len());
        for &draw in draws {
            segmentations.push(self.segmentation(&resolved, &choice, draw, &output.captures.neurons, start).await?);
        }
        Ok((segmentations, pre.geometry))
    }

    /// The unit text embedding a free-text concept needs (loads the text tower); `None` for a
    /// class.
    async fn text_embedding_of(&mut self, concept: &ConceptSpec<'_>) -> Result<Option<Vec<f32>>> {
        match concept {
            ConceptSpec::Text(text) => Ok(Some(self.text_concept(text).await?)),
            _ => Ok(None),
        }
    }

    /// The bundle's neurons a segmentation ranks: of `layers`, the `top_neurons` best (clamped
    /// to what the layers have), each defaulting to [`SegmentOptions`]'s.
    fn concept_neurons(&self, layers: Option<Vec<usize>>, top_neurons: Option<usize>) -> Result<ConceptNeurons> {
        let defaults = SegmentOptions::default();
        let layers = layers.or(defaults.layers).unwrap_or_default();
        ConceptNeurons::new(&self.bundle()?.bundle, &layers, top_neurons.unwrap_or(defaults.top_neurons))
    }

    /// A concept's name, kind and unit embedding: free text (its `text` embedding), a class of
    /// the bundle, or the class an image of unnormalised embedding `image_embedding` is
    /// predicted as.
    fn resolve_concept(
        &self,
        concept: ConceptSpec<'_>,
        text: Option<Vec<f32>>,
        image_embedding: &[f32],
    ) -> Result<ResolvedConcept> {
        let bundle = &self.bundle()?.bundle;
        let class = |index: usize, kind: &'static str| -> Result<ResolvedConcept> {
            let label = bundle.manifest.classes[index].clone();
            Ok(ResolvedConcept {
                label,
                kind,
                class_index: Some(index),
                embedding: classify::class_row(bundle, index)?,
            })
        };
        match concept {
            ConceptSpec::Text(label) => {
                let embedding = text.ok_or_else(|| invalid("the concept text has no embedding"))?;
                Ok(ResolvedConcept { label: label.to_string(), kind: "text", class_index: None, embedding })
            }
            ConceptSpec::Class(name) => class(classify::class_index(&bundle.manifest.classes, name)?, "class"),
            ConceptSpec::Predicted => class(classify::predicted_class(bundle, image_embedding)?, "predicted"),
        }
    }

    /// The segmentation of a resolved concept from a forward's post-GELU activations
    /// (`neurons`, by layer): the concept's neurons of `choice` drawn by `draw`, their heatmap.
    async fn segmentation(
        &self,
        concept: &ResolvedConcept,
        choice: &ConceptNeurons,
        draw: NeuronDraw,
        neurons: &BTreeMap<usize, burn::tensor::Tensor<3>>,
        start: web_time::Instant,
    ) -> Result<Segmentation> {
        let selected = choice.choose(&self.bundle()?.bundle, &concept.embedding, &concept.label, draw)?;
        let maps = segment::heatmaps(neurons, &selected, self.model.config.vision.patch_size).await?;
        Ok(Segmentation {
            concept: concept.label.clone(),
            kind: concept.kind,
            class_index: concept.class_index,
            layers: choice.layers.clone(),
            size: maps.size,
            heatmap: maps.image(0).to_vec(),
            neurons: selected.iter().map(Ranked::from).collect(),
            ms: elapsed_ms(start),
        })
    }

    /// One neuron's activation map on an encoded image, with its own forward (the last
    /// analysed image is kept for [`Engine::segment`]). Needs no bundle; `layer` and `neuron`
    /// must exist in the model.
    pub async fn activation_map(&self, image: &[u8], layer: usize, neuron: usize) -> Result<ActivationMap> {
        let vision = self.model.vision()?;
        let config = &vision.config;
        if layer >= config.layers {
            return Err(invalid(format!("layer {layer} is out of range: the model has {} layers", config.layers)));
        }
        if neuron >= config.mlp_width {
            return Err(invalid(format!(
                "neuron {neuron} is out of range: layer {layer} has {} neurons",
                config.mlp_width
            )));
        }
        let preprocessed = preprocess_image(image, config.image_size as u32)?;
        let input = vision.pixel_tensor(preprocessed.pixels)?;
        let output = vision.forward(input, &CaptureRequest::neurons(&[layer]))?;
        let one = [RankedNeuron { layer, neuron, score: 1.0 }];
        let maps = segment::heatmaps(&output.captures.neurons, &one, config.patch_size).await?;
        Ok(ActivationMap {
            layer,
            neuron,
            size: maps.size,
            heatmap: maps.image(0).to_vec(),
            peak: maps.peaks[0],
            geometry: Geometry::from(&preprocessed.geometry),
        })
    }
}
