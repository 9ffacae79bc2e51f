//! What follows the passes, for a run and for a merge of shards alike: the words and ImageNet
//! classes through the text tower, OMP of every direction, each neuron's heads, fidelity of its
//! words, neighbours and place on the layer's map, thumbnails of the top and typical images,
//! and the bundle written to the sink.

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Device, Tensor, TensorData};

use super::checkpoint::Position;
use super::driver::{Control, Driver, Progress};
use super::io::{BundleSink, ImageSource};
use super::text_side::{self, TextSide};
use super::{Inputs, Settings};
use crate::bundle::{Bundle, LayerLens, Manifest, FORMAT_VERSION, NEIGHBOURS};
use crate::device::read_f32;
use crate::lens::omp::OMP_BLOCK;
use crate::lens::{
    head_alignments, map_of_neighbours, nearest_with_cosines, neighbour_ids, word_fidelity, Dictionary, FactorForm,
    LensFactors, NeuronStatistics, SparseCoder, HISTOGRAM_BINS, MAP_NEIGHBOURS, PERCENTILES, TYPICAL_BAND_BINS,
    TYPICAL_PER_BAND,
};
use crate::model::{ClipModel, VisionTransformer};
use crate::preprocess::{center_crop, decode_image};
use crate::{Error, Result};

/// Neurons decomposed between two yield points: whole blocks of the device search, so that
/// every block holds the neurons it holds in one call over the layer (the same results).
const OMP_CHUNK: usize = OMP_BLOCK;

/// Thumbnails written between two yield points.
const THUMBNAILS_PER_STEP: usize = 16;

/// The text tower's embeddings, OMP of every direction, the thumbnails, and the bundle written
/// to the driver's sink (and returned).
pub(super) async fn write_bundle<S: ImageSource, K: BundleSink, C: Control>(
    model: &ClipModel,
    device: &Device,
    settings: &Settings,
    inputs: Inputs,
    stats: Vec<NeuronStatistics>,
    position: Position,
    driver: Driver<'_, S, K, C>,
) -> Result<Bundle> {
    let Driver { source, sink, progress, control } = driver;
    let config = &model.config;
    let vision = model.vision()?;
    let Inputs { words, weights_sha256, .. } = inputs;
    let dim = config.embed_dim;
    let TextSide { word_embeds, classes, class_templates, class_embeds } =
        text_side::text_side(model, settings, &words, progress, control).await?;

    let dictionary = Dictionary::from_word_embeddings(&word_embeds, dim)?;
    let components = settings.components.min(words.len()).min(dim);
    let mut lens = BTreeMap::new();
    let mut top_images = BTreeMap::new();
    // One coder for every layer: the atom search's state (the Gram matrix) serves them all.
    let mut coder = SparseCoder::for_device(&dictionary, device)?;
    let exact_percentiles = !stats.is_empty() && stats.iter().all(|s| s.percentiles_exact);
    progress.start("sparse decompositions (OMP)", stats.len(), 0);
    let mut codes = Vec::with_capacity(stats.len());
    for s in &stats {
        codes.push(decompose(&mut coder, dim, &s.directions, components, control).await?);
        progress.advance(1);
    }
    progress.finish();
    // The atom search's state (the Gram matrix: up to 2 GiB) is not needed past OMP.
    drop(coder);
    progress.start("heads, neighbours and maps", stats.len(), 0);
    for ((&layer, s), code) in settings.layers.iter().zip(stats).zip(codes) {
        top_images.insert(
            layer.to_string(),
            s.top_images.chunks(s.k).map(|ids| ids.iter().rev().copied().collect()).collect(),
        );
        lens.insert(layer, layer_lens(vision, &dictionary, layer, s, code).await?);
        progress.advance(1);
        control.between_steps().await?;
    }
    progress.finish();
    if settings.thumbnail_size > 0 {
        let typical = lens.values().flat_map(|l| l.typical.iter().flatten()).filter_map(|&id| usize::try_from(id).ok());
        let ids: BTreeSet<usize> = top_images.values().flatten().flatten().copied().chain(typical).collect();
        let thumbnails = Thumbnails { source, sink, images: &position.images, size: settings.thumbnail_size };
        thumbnails.write(&ids, progress, control).await?;
    }
    let skipped_images = position.skipped.iter().map(|name| source.locate(name)).collect();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: settings.model_name.clone(),
        model_config: config.to_hf_json(),
        weights_sha256,
        layers: settings.layers.to_vec(),
        neurons: vision.config.mlp_width,
        embed_dim: dim,
        top_k: settings.top_k,
        components,
        word_sources: settings.words.iter().map(|list| list.source.clone()).collect(),
        words,
        classes,
        class_templates: class_templates.count(),
        images: position.images,
        skipped_images,
        top_images,
        thumbnail_size: settings.thumbnail_size,
        histogram_bins: HISTOGRAM_BINS,
        percentiles: PERCENTILES.to_vec(),
        exact_percentiles,
        typical_band_bins: TYPICAL_BAND_BINS.to_vec(),
        typical_per_band: TYPICAL_PER_BAND,
    };
    let bundle = Bundle { manifest, layers: lens, word_embeds, class_embeds };
    // The manifest last: a bundle with a manifest is whole.
    sink.write("lens.safetensors", bundle.tensors(settings.storage)?).await?;
    sink.write("manifest.json", bundle.manifest_json()?.into_bytes()).await?;
    Ok(bundle)
}

/// A layer's lens from its statistics and its sparse code: with each neuron's heads, the
/// fidelity of its words, its neighbours and its place on the map.
async fn layer_lens(
    vision: &VisionTransformer,
    dictionary: &Dictionary,
    layer: usize,
    s: NeuronStatistics,
    (decomposition_index, decomposition_coef): (Vec<i32>, Vec<f32>),
) -> Result<LayerLens> {
    let dim = s.dim;
    let heads = layer_heads(vision, layer, &s).await?;
    let fidelity = word_fidelity(dictionary, &s.directions, &decomposition_index, &decomposition_coef);
    // The map's neighbourhoods hold the card's neighbours: one O(N^2 D) search for both.
    let k = MAP_NEIGHBOURS.max(NEIGHBOURS).min(s.neurons.saturating_sub(1));
    let nearest = nearest_with_cosines(&s.directions, dim, k);
    Ok(LayerLens {
        neighbours: Some(neighbour_ids(&nearest, k, NEIGHBOURS)),
        map: Some(map_of_neighbours(&nearest, k)),
        heads: Some(heads),
        fidelity: Some(fidelity),
        typical: s.typical.map(|ids| ids.into_iter().map(|id| id as i32).collect()),
        mean: s.mean,
        direction: s.directions,
        norms: s.norms,
        decomposition_index,
        decomposition_coef,
        distributions: s.distributions,
    })
}

/// Each neuron's heads ([`LayerLens::heads`], `[N, K]`): the mean over its top k of each later
/// head's scalar `c(I) s_{l,h,n}(I)` (kept by pass 2) times `u_{l,h,n} . r_n`, which is the
/// mean of `<phi_{n,l,h}(I), r_n>`.
async fn layer_heads(vision: &VisionTransformer, layer: usize, stats: &NeuronStatistics) -> Result<Vec<f32>> {
    let (neurons, dim, heads) = (stats.neurons, stats.dim, stats.later_heads);
    let factors = LensFactors::with_form(vision, layer, FactorForm::Compact)?;
    let directions =
        Tensor::<2>::from_data(TensorData::new(stats.directions.clone(), [neurons, dim]), &vision.projection.device());
    let Some(alignments) = head_alignments(vision, &factors, &directions, 0) else { return Ok(Vec::new()) };
    let alignments = read_f32(alignments).await?; // [K, N]
    if heads != factors.later_heads() || stats.head_scalars.len() != neurons * heads {
        return Err(Error::InvalidInput(format!(
            "layer {layer}'s top k kept {heads} heads' scalars, its model has {} later heads",
            factors.later_heads()
        )));
    }
    Ok((0..neurons * heads).map(|i| stats.head_scalars[i] * alignments[(i % heads) * neurons + i / heads]).collect())
}

/// Decompositions `[N, m]` sorted by |coefficient|, padded with index -1; the control is asked
/// between chunks of neurons.
async fn decompose(
    coder: &mut SparseCoder<'_>,
    dim: usize,
    directions: &[f32],
    components: usize,
    control: &mut impl Control,
) -> Result<(Vec<i32>, Vec<f32>)> {
    let neurons = directions.len() / dim;
    let mut index = Vec::with_capacity(neurons * components);
    let mut coef = Vec::with_capacity(neurons * components);
    for chunk in directions.chunks(OMP_CHUNK * dim) {
        for code in coder.encode(chunk, components).await? {
            let sorted = code.by_magnitude();
            for slot in 0..components {
                let (i, c) = sorted.get(slot).map(|&(i, c)| (i as i32, c)).unwrap_or((-1, 0.0));
                index.push(i);
                coef.push(c);
            }
        }
        control.between_steps().await?;
    }
    Ok((index, coef))
}

/// The thumbnails of a run's images.
struct Thumbnails<'a, S, K> {
    source: &'a S,
    sink: &'a K,
    /// The images that decoded, by id.
    images: &'a [String],
    /// The side in pixels.
    size: u32,
}

impl<S: ImageSource, K: BundleSink> Thumbnails<'_, S, K> {
    /// Writes `thumbnails/<id>.jpg` (a centre crop) for every image in some top k or among some
    /// neuron's typical images.
    async fn write(
        &self,
        ids: &BTreeSet<usize>,
        progress: &mut dyn Progress,
        control: &mut impl Control,
    ) -> Result<()> {
        progress.start("thumbnails", ids.len(), 0);
        for (i, &id) in ids.iter().enumerate() {
            let name = &self.images[id];
            let jpeg = self.thumbnail(&self.source.read(name).await?, name)?;
            self.sink.write(&format!("thumbnails/{id}.jpg"), jpeg).await?;
            progress.advance(1);
            if (i + 1) % THUMBNAILS_PER_STEP == 0 {
                control.between_steps().await?;
            }
        }
        progress.finish();
        Ok(())
    }

    /// The JPEG of the image `name`'s centre crop.
    fn thumbnail(&self, bytes: &[u8], name: &str) -> Result<Vec<u8>> {
        let size = self.size;
        let image = decode_image(bytes)?;
        let (w, h) = image.dimensions();
        let scale = size as f32 / w.min(h) as f32;
        let resized = image::imageops::resize(
            &image,
            ((w as f32 * scale).round() as u32).max(size),
            ((h as f32 * scale).round() as u32).max(size),
            image::imageops::FilterType::Triangle,
        );
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 80)
            .encode_image(&center_crop(&resized, size))
            .map_err(|e| Error::InvalidInput(format!("encoding the thumbnail of {}: {e}", self.source.locate(name))))?;
        Ok(encoded)
    }
}
