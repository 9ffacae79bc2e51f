//! `clip-lens segment` (zero-shot segmentation heatmaps and overlays for a concept) and
//! `clip-lens eval-seg` (pixel accuracy, mIoU and mAP against ground-truth masks).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clip_lens::apps::metrics::SegmentationMetrics;
use clip_lens::apps::segment::{
    class_concept, heatmap_to_original, heatmaps, predicted_class, text_concept, ConceptNeurons, ConceptSpec, Heatmaps,
    RankedNeuron,
};
use clip_lens::bundle::Bundle;
use clip_lens::device::read_f32_blocking;
use clip_lens::model::{CaptureRequest, ClipModel, Towers, VisionTransformer};
use clip_lens::preprocess::{decode_image, preprocess_mask, preprocess_rgb, Preprocessed};
use clip_lens::tensor_file::{serialize, NamedTensor};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{Error, Result};

use crate::common::{progress, read_bundle_for};

/// Which bundle, and which of its neurons make the heatmaps (both commands).
#[derive(clap::Args)]
pub struct NeuronChoice {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Comma-separated layers whose neurons are ranked (default: all the bundle's layers).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Neurons averaged (the paper: 200); clamped to the number the layers have.
    #[arg(long, default_value_t = 200)]
    pub top_neurons: usize,
}

/// `segment`'s own arguments.
#[derive(clap::Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub neurons: NeuronChoice,
    /// The concept: free text, `class:<ImageNet class name>` (the bundle's 80-template class
    /// embedding), or `predicted` (each image's top zero-shot class).
    #[arg(long)]
    pub concept: String,
    /// Write `heatmaps.safetensors` (`heatmap` [B,S,S]) and `<image stem>.overlay.png` here
    /// instead of printing a summary.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Image files (PNG, JPEG, WebP, GIF).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// `eval-seg`'s own arguments.
#[derive(clap::Args)]
pub struct EvalSegArgs {
    #[command(flatten)]
    pub neurons: NeuronChoice,
    /// Folder of images (not recursive; files whose stem ends in `-mask` are not images).
    #[arg(long)]
    pub images: PathBuf,
    /// Folder of ground-truth masks: `<stem>-mask.png` or `<stem>.png` for image `<stem>.*`
    /// (white or 1 = foreground); images without one are skipped and listed.
    #[arg(long)]
    pub masks: PathBuf,
    /// `predicted` (each image's top zero-shot class, as the paper), `class:<ImageNet class
    /// name>`, or free text.
    #[arg(long, default_value = "predicted")]
    pub concept: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The towers a `--concept` needs: the text tower only for free text.
pub fn towers_for(concept: &str) -> Towers {
    match ConceptSpec::parse(concept) {
        Ok(ConceptSpec::Text(_)) => Towers::Both,
        _ => Towers::Vision,
    }
}

/// The bundle, the chosen layers and neurons, and the model: turns preprocessed pixels into a
/// heatmap.
struct Segmenter<'a> {
    bundle: Bundle,
    vision: &'a VisionTransformer,
    neurons: ConceptNeurons,
    /// The neurons of a fixed concept, with its label.
    fixed: Option<(String, Vec<RankedNeuron>)>,
    /// Per predicted class, its neurons.
    by_class: HashMap<usize, Vec<RankedNeuron>>,
}

impl<'a> Segmenter<'a> {
    fn new(model: &'a ClipModel, weights: &[u8], choice: &NeuronChoice, concept: &str) -> Result<Self> {
        let concept = ConceptSpec::parse(concept)?;
        let bundle = read_bundle_for(&choice.bundle, weights)?;
        let neurons = ConceptNeurons::new(&bundle, &choice.layers, choice.top_neurons)?;
        if neurons.count < choice.top_neurons {
            let (requested, layers, available) = (choice.top_neurons, &neurons.layers, neurons.count);
            eprintln!("--top-neurons {requested} is more than the {available} neurons of layers {layers:?}: using {available}");
        }
        let vision = model.vision()?;
        let mut segmenter = Self { bundle, vision, neurons, fixed: None, by_class: HashMap::new() };
        let fixed = match concept {
            ConceptSpec::Text(text) => Some((
                format!("{text:?}"),
                pollster::block_on(text_concept(model.text()?, &ClipTokenizer::new(), text))?,
            )),
            ConceptSpec::Class(class) => Some((format!("class {class:?}"), class_concept(&segmenter.bundle, class)?)),
            ConceptSpec::Predicted => None,
        };
        if let Some((label, embedding)) = fixed {
            let neurons = segmenter.rank(&embedding)?;
            segmenter.fixed = Some((label, neurons));
        }
        Ok(segmenter)
    }

    fn rank(&self, concept: &[f32]) -> Result<Vec<RankedNeuron>> {
        self.neurons.rank(&self.bundle, concept)
    }

    /// The heatmap `[S, S]` of one preprocessed image, with the concept's label and neurons.
    fn heatmap(&mut self, pixels: Vec<f32>) -> Result<(Heatmaps, String, Vec<RankedNeuron>)> {
        let input = self.vision.pixel_tensor(pixels)?;
        let output = self.vision.forward(input, &CaptureRequest::neurons(&self.neurons.layers))?;
        let (label, neurons) = match &self.fixed {
            Some((label, neurons)) => (label.clone(), neurons.clone()),
            None => {
                let class = predicted_class(&self.bundle, &read_f32_blocking(output.embeds)?)?;
                if !self.by_class.contains_key(&class) {
                    let d = self.bundle.manifest.embed_dim;
                    let neurons = self.rank(&self.bundle.class_embeds[class * d..(class + 1) * d])?;
                    self.by_class.insert(class, neurons);
                }
                (format!("predicted class {:?}", self.bundle.manifest.classes[class]), self.by_class[&class].clone())
            }
        };
        let maps = pollster::block_on(heatmaps(&output.captures.neurons, &neurons, self.vision.config.patch_size))?;
        Ok((maps, label, neurons))
    }
}

/// Decodes and preprocesses one image, naming the file in errors.
fn read_image(path: &Path, size: usize) -> Result<(image::RgbImage, Preprocessed)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let image = decode_image(&bytes).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    let pre = preprocess_rgb(&image, size as u32);
    Ok((image, pre))
}

/// The original image with the heatmap blended in red (up to 60% opacity where it is 1).
fn overlay(image: &image::RgbImage, heat: &[f32]) -> image::RgbImage {
    let width = image.width() as usize;
    image::RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let alpha = 0.6 * heat[y as usize * width + x as usize].clamp(0.0, 1.0);
        let p = image.get_pixel(x, y).0;
        let tint = [255.0, 0.0, 0.0];
        image::Rgb(std::array::from_fn(|c| ((1.0 - alpha) * f32::from(p[c]) + alpha * tint[c]).round() as u8))
    })
}

fn describe_neurons(neurons: &[RankedNeuron]) -> String {
    let head: Vec<String> =
        neurons.iter().take(5).map(|n| format!("L{}/{} ({:+.3})", n.layer, n.neuron, n.score)).collect();
    format!("{} neurons, best {}", neurons.len(), head.join(", "))
}

/// `clip-lens segment`.
pub fn segment(model: &ClipModel, weights: &[u8], args: &SegmentArgs) -> Result<()> {
    let mut segmenter = Segmenter::new(model, weights, &args.neurons, &args.concept)?;
    let size = segmenter.vision.config.image_size;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    let mut all = Vec::new();
    for path in &args.images {
        let (image, pre) = read_image(path, size)?;
        let (maps, label, neurons) = segmenter.heatmap(pre.pixels)?;
        let heat = maps.image(0);
        let covered = heat.iter().filter(|&&v| v > 0.5).count() as f64 / heat.len() as f64;
        println!(
            "{}: {label}, {}; mask covers {:.1}% of the crop",
            path.display(),
            describe_neurons(&neurons),
            100.0 * covered
        );
        if let Some(out) = &args.out {
            let stem = path.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
            let file = out.join(format!("{stem}.overlay.png"));
            let on_original = heatmap_to_original(heat, &pre.geometry)?;
            overlay(&image, &on_original)
                .save_with_format(&file, image::ImageFormat::Png)
                .map_err(|e| Error::io(&file, e))?;
        }
        all.extend_from_slice(heat);
    }
    if let Some(out) = &args.out {
        let file = out.join("heatmaps.safetensors");
        let tensors = [NamedTensor::f32("heatmap", &[args.images.len(), size, size], all)];
        std::fs::write(&file, serialize(&tensors)?).map_err(|e| Error::io(&file, e))?;
        eprintln!("wrote {} and {} overlays to {}", file.display(), args.images.len(), out.display());
    }
    Ok(())
}

/// An image file and its mask file.
type ImageAndMask = (PathBuf, PathBuf);

/// The image files of `dir` (sorted) paired with their masks in `masks`, and the images that
/// have none.
fn pair_images(dir: &Path, masks: &Path) -> Result<(Vec<ImageAndMask>, Vec<PathBuf>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    let mut pairs = Vec::new();
    let mut unmatched = Vec::new();
    for file in files {
        let Some(stem) = file.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        if stem.ends_with("-mask") {
            continue;
        }
        let candidates = [masks.join(format!("{stem}-mask.png")), masks.join(format!("{stem}.png"))];
        match candidates.into_iter().find(|m| m.is_file() && *m != file) {
            Some(mask) => pairs.push((file, mask)),
            None => unmatched.push(file),
        }
    }
    Ok((pairs, unmatched))
}

/// `clip-lens eval-seg`.
pub fn eval_seg(model: &ClipModel, weights: &[u8], args: &EvalSegArgs) -> Result<()> {
    let (pairs, unmatched) = pair_images(&args.images, &args.masks)?;
    for file in &unmatched {
        eprintln!(
            "skipping {}: no {}-mask.png or .png in {}",
            file.display(),
            file.file_stem().unwrap_or_default().to_string_lossy(),
            args.masks.display()
        );
    }
    if pairs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no image in {} has a mask in {} (<stem>-mask.png or <stem>.png)",
            args.images.display(),
            args.masks.display()
        )));
    }
    let mut segmenter = Segmenter::new(model, weights, &args.neurons, &args.concept)?;
    let size = segmenter.vision.config.image_size;
    let mut metrics = SegmentationMetrics::new();
    let bar = progress(pairs.len(), "images");
    for (image_path, mask_path) in &pairs {
        let (image, pre) = read_image(image_path, size)?;
        let bytes = std::fs::read(mask_path).map_err(|e| Error::io(mask_path, e))?;
        let truth = preprocess_mask(&bytes, image.width(), image.height(), size as u32)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", mask_path.display())))?;
        let (maps, _, _) = segmenter.heatmap(pre.pixels)?;
        metrics.add(maps.image(0), &truth)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scores = metrics.scores();
    if args.json {
        let unmatched: Vec<String> = unmatched.iter().map(|p| p.display().to_string()).collect();
        println!(
            "{}",
            serde_json::json!({"images": scores.images, "pixel_accuracy": scores.pixel_accuracy, "mean_iou": scores.mean_iou, "iou": scores.iou, "mean_average_precision": scores.mean_average_precision, "unmatched": unmatched})
        );
    } else {
        println!("{} images ({} without a mask skipped)", scores.images, unmatched.len());
        println!("pixel accuracy {:.2}%", 100.0 * scores.pixel_accuracy);
        println!(
            "mIoU {:.2}% (background {:.2}%, foreground {:.2}%)",
            100.0 * scores.mean_iou,
            100.0 * scores.iou[0],
            100.0 * scores.iou[1]
        );
        println!("mAP {:.2}%", 100.0 * scores.mean_average_precision);
    }
    Ok(())
}
