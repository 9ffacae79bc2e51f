//! `clip-lens segment` (zero-shot segmentation heatmaps and overlays for a concept) and
//! `clip-lens eval-seg` (pixel accuracy, mIoU and mAP against ground-truth masks).

use std::path::{Path, PathBuf};

use clip_lens::apps::engine::{Engine, Ranked, SegmentOptions, Segmentation};
use clip_lens::apps::metrics::{SegmentationMetrics, SegmentationScores};
use clip_lens::apps::segment::{heatmap_to_original, ConceptSpec, NeuronDraw};
use clip_lens::model::Towers;
use clip_lens::preprocess::{decode_image, preprocess_mask, CropGeometry};
use clip_lens::tensor_file::{serialize, NamedTensor};
use clip_lens::{Error, Result};

use crate::common::{engine_with_bundle, on_file, progress, read_file, Loaded};

/// Which bundle, and which of its neurons make the heatmaps (both commands).
#[derive(clap::Args)]
pub struct NeuronChoice {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Comma-separated layers whose neurons are ranked (default: all the bundle's layers).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Neurons averaged (the paper's count); clamped to the number the layers have.
    #[arg(long, default_value_t = SegmentOptions::default().top_neurons)]
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
    /// Also score as many neurons drawn at random (the paper's `--random` baseline; one draw
    /// per concept, as the paper draws one per class) and print both results.
    #[arg(long)]
    pub random_neurons: bool,
    /// The random draw's seed (with `--random-neurons`).
    #[arg(long, default_value_t = 0, requires = "random_neurons")]
    pub seed: u64,
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

/// The heatmaps `[S, S]` of one image file, one per draw of its neurons, and its crop geometry
/// ([`Engine::segment_image`]), naming the file in errors.
fn segment_file(
    engine: &mut Engine,
    path: &Path,
    concept: &str,
    choice: &NeuronChoice,
    draws: &[NeuronDraw],
) -> Result<(Vec<u8>, Vec<Segmentation>, CropGeometry)> {
    let bytes = read_file(path)?;
    let layers = (!choice.layers.is_empty()).then(|| choice.layers.clone());
    let (segmentations, geometry) =
        pollster::block_on(engine.segment_image(&bytes, concept, layers, Some(choice.top_neurons), draws))
            .map_err(|e| on_file(path, e))?;
    Ok((bytes, segmentations, geometry))
}

/// Says on stderr when `--top-neurons` asked for more neurons than the layers have.
fn warn_if_clamped(choice: &NeuronChoice, segmentation: &Segmentation) {
    let available = segmentation.neurons.len();
    if available < choice.top_neurons {
        let (requested, layers) = (choice.top_neurons, &segmentation.layers);
        eprintln!(
            "--top-neurons {requested} is more than the {available} neurons of layers {layers:?}: using {available}"
        );
    }
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

/// The concept as the summary line names it.
fn concept_label(segmentation: &Segmentation) -> String {
    match segmentation.kind {
        "class" => format!("class {:?}", segmentation.concept),
        "predicted" => format!("predicted class {:?}", segmentation.concept),
        _ => format!("{:?}", segmentation.concept),
    }
}

fn describe_neurons(neurons: &[Ranked]) -> String {
    let head: Vec<String> =
        neurons.iter().take(5).map(|n| format!("L{}/{} ({:+.3})", n.layer, n.neuron, n.score)).collect();
    format!("{} neurons, best {}", neurons.len(), head.join(", "))
}

/// `clip-lens segment`.
pub fn segment(loaded: Loaded, args: &SegmentArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.neurons.bundle)?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    let (mut all, mut size) = (Vec::new(), 0);
    for (i, path) in args.images.iter().enumerate() {
        let (bytes, segmentations, geometry) =
            segment_file(&mut engine, path, &args.concept, &args.neurons, &[NeuronDraw::Best])?;
        let segmentation = &segmentations[0];
        if i == 0 {
            warn_if_clamped(&args.neurons, segmentation);
        }
        let heat = &segmentation.heatmap;
        let covered = heat.iter().filter(|&&v| v > 0.5).count() as f64 / heat.len() as f64;
        println!(
            "{}: {}, {}; mask covers {:.1}% of the crop",
            path.display(),
            concept_label(segmentation),
            describe_neurons(&segmentation.neurons),
            100.0 * covered
        );
        if let Some(out) = &args.out {
            let stem = path.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
            let file = out.join(format!("{stem}.overlay.png"));
            let image = decode_image(&bytes).map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
            let on_original = heatmap_to_original(heat, &geometry)?;
            overlay(&image, &on_original)
                .save_with_format(&file, image::ImageFormat::Png)
                .map_err(|e| Error::io(&file, e))?;
        }
        size = segmentation.size;
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

/// A result's scores, in percent, under `title`.
fn print_scores(title: &str, scores: &SegmentationScores) {
    println!("{title}:");
    println!("  pixel accuracy {:.2}%", 100.0 * scores.pixel_accuracy);
    println!(
        "  mIoU {:.2}% (background {:.2}%, foreground {:.2}%)",
        100.0 * scores.mean_iou,
        100.0 * scores.iou[0],
        100.0 * scores.iou[1]
    );
    println!("  mAP {:.2}%", 100.0 * scores.mean_average_precision);
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
pub fn eval_seg(loaded: Loaded, args: &EvalSegArgs) -> Result<()> {
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
    let mut engine = engine_with_bundle(loaded, &args.neurons.bundle)?;
    let mut draws = vec![NeuronDraw::Best];
    if args.random_neurons {
        draws.push(NeuronDraw::Random { seed: args.seed });
    }
    let mut metrics: Vec<SegmentationMetrics> = draws.iter().map(|_| SegmentationMetrics::new()).collect();
    let bar = progress(pairs.len(), "images");
    for (i, (image_path, mask_path)) in pairs.iter().enumerate() {
        let (_, segmentations, geometry) = segment_file(&mut engine, image_path, &args.concept, &args.neurons, &draws)?;
        if i == 0 {
            bar.suspend(|| warn_if_clamped(&args.neurons, &segmentations[0]));
        }
        let bytes = std::fs::read(mask_path).map_err(|e| Error::io(mask_path, e))?;
        let size = segmentations[0].size as u32;
        let truth = preprocess_mask(&bytes, geometry.original_width, geometry.original_height, size)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", mask_path.display())))?;
        for (metrics, segmentation) in metrics.iter_mut().zip(&segmentations) {
            metrics.add(&segmentation.heatmap, &truth)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scores: Vec<SegmentationScores> = metrics.iter().map(SegmentationMetrics::scores).collect();
    if args.json {
        let unmatched: Vec<String> = unmatched.iter().map(|p| p.display().to_string()).collect();
        let as_json = |scores: &SegmentationScores| serde_json::to_value(scores).unwrap_or_default();
        let mut json = as_json(&scores[0]);
        json["unmatched"] = unmatched.into();
        if let Some(random) = scores.get(1) {
            json["random"] = as_json(random);
            json["random"]["seed"] = args.seed.into();
        }
        println!("{json}");
    } else {
        println!("{} images ({} without a mask skipped)", scores[0].images, unmatched.len());
        print_scores(&format!("the concept's top {} neurons", args.neurons.top_neurons), &scores[0]);
        if let Some(random) = scores.get(1) {
            print_scores(&format!("as many neurons at random (seed {})", args.seed), random);
        }
    }
    Ok(())
}
