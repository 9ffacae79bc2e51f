//! `clip-lens concepts` (concept discovery) and `clip-lens classify` (zero-shot
//! classification): per-image readings of a bundle.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use clip_lens::apps::analysis::BundleLens;
use clip_lens::apps::classify::{classify, ClassScore};
use clip_lens::apps::concepts::{merge_layers, Concepts};
use clip_lens::apps::engine::AnalyzeOptions;
use clip_lens::device::read_f32_blocking;
use clip_lens::model::{CaptureRequest, ClipModel, VisionOutput};
use clip_lens::Result;

use crate::common::{load_pixels, read_bundle_for};

/// `concepts`' own arguments.
#[derive(clap::Args)]
pub struct ConceptsArgs {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Comma-separated layers (default: the bundle's last layer); with several, the words'
    /// scores are summed over them.
    #[arg(long, value_delimiter = ',')]
    pub layer: Vec<usize>,
    /// Words shown per image.
    #[arg(long, default_value_t = AnalyzeOptions::default().top_words)]
    pub top: usize,
    /// Print JSON: a list with one object per image, in input order.
    #[arg(long)]
    pub json: bool,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// `classify`'s own arguments.
#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Classes shown per image.
    #[arg(long, default_value_t = AnalyzeOptions::default().top_classes)]
    pub top: usize,
    /// Print JSON: a list with one object per image, in input order.
    #[arg(long)]
    pub json: bool,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// One forward per image (with the captures of `layers`), in input order.
fn forward_each(
    model: &ClipModel,
    images: &[PathBuf],
    layers: &[usize],
    mut each: impl FnMut(&Path, VisionOutput) -> Result<()>,
) -> Result<()> {
    let vision = model.vision()?;
    let size = vision.config.image_size;
    let request = CaptureRequest::for_lens(layers);
    for path in images {
        let pixels = load_pixels(std::slice::from_ref(path), size)?.remove(0);
        let output = vision.forward(vision.pixel_tensor(pixels)?, &request)?;
        each(path, output)?;
    }
    Ok(())
}

/// `clip-lens concepts`.
pub fn concepts(model: &ClipModel, device: &Device, weights: &[u8], args: &ConceptsArgs) -> Result<()> {
    let bundle = read_bundle_for(&args.bundle, weights)?;
    let layers = if args.layer.is_empty() {
        bundle.manifest.layers.last().copied().into_iter().collect()
    } else {
        args.layer.clone()
    };
    let vision = model.vision()?;
    let lens = BundleLens::new(vision, &bundle, &layers, usize::MAX, device)?;
    let mut results = Vec::new();
    forward_each(model, &args.images, &layers, |path, output| {
        let findings = pollster::block_on(lens.discover(vision, &output, &bundle))?;
        results.push((path.to_path_buf(), findings.into_iter().map(|f| f.concepts).collect::<Vec<Concepts>>()));
        Ok(())
    })?;
    if args.json {
        let list: Vec<serde_json::Value> =
            results.iter().map(|(path, found)| concepts_json(path, found, args.top)).collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (path, found) in &results {
            let significant: usize = found.iter().map(|c| c.significant_neurons.len()).sum();
            let words: Vec<String> =
                merge_layers(found, args.top).iter().map(|(w, s)| format!("{w} ({s:.3})")).collect();
            println!("{} (layers {layers:?}, {significant} significant neurons): {}", path.display(), words.join(", "));
        }
    }
    Ok(())
}

/// `{"image", "layer", "significant_neurons", "words"}`; over several layers `layer` is the
/// list and the neurons are `[layer, neuron]` pairs.
fn concepts_json(path: &Path, found: &[Concepts], top: usize) -> serde_json::Value {
    let words: Vec<serde_json::Value> =
        merge_layers(found, top).iter().map(|(w, s)| serde_json::json!([w, s])).collect();
    match found {
        [one] => {
            serde_json::json!({"image": path.display().to_string(), "layer": one.layer, "significant_neurons": one.significant_neurons, "words": words})
        }
        several => {
            let neurons: Vec<[usize; 2]> =
                several.iter().flat_map(|c| c.significant_neurons.iter().map(move |&n| [c.layer, n])).collect();
            let layers: Vec<usize> = several.iter().map(|c| c.layer).collect();
            serde_json::json!({"image": path.display().to_string(), "layer": layers, "significant_neurons": neurons, "words": words})
        }
    }
}

/// `clip-lens classify`.
pub fn classify_images(model: &ClipModel, weights: &[u8], args: &ClassifyArgs) -> Result<()> {
    let bundle = read_bundle_for(&args.bundle, weights)?;
    let mut results: Vec<(PathBuf, Vec<ClassScore>)> = Vec::new();
    forward_each(model, &args.images, &[], |path, output| {
        let embed = read_f32_blocking(output.embeds)?;
        results.push((path.to_path_buf(), classify(&embed, &bundle.class_embeds, &bundle.manifest.classes, args.top)?));
        Ok(())
    })?;
    if args.json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|(path, top)| serde_json::json!({"image": path.display().to_string(), "classes": top}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (path, top) in &results {
            let classes: Vec<String> =
                top.iter().map(|c| format!("{} {:.1}%", c.name, 100.0 * c.probability)).collect();
            println!("{}: {}", path.display(), classes.join(", "));
        }
    }
    Ok(())
}
