//! `clip-lens ablate`: the paper's Table 1 on a labelled folder (`--images`: one subfolder per
//! class, named after bundle classes; `_` reads as a space): accuracy of zero-shot
//! classification among the folder's classes with each layer's second-order effects ablated;
//! or on one image (`--image`), as the page's lab does: its top classes and concept words
//! before and after each ablation asked (the engine's `ablate`).

use std::path::{Path, PathBuf};

use clip_lens::apps::ablation::image::{AblationRequest, AblationResult};
use clip_lens::apps::ablation::table::{AblationTable, AblationTables, VARIANTS};
use clip_lens::apps::classify::{class_index, ClassScore};
use clip_lens::apps::engine::AnalyzeOptions;
use clip_lens::bundle::Bundle;
use clip_lens::{Error, Result};

use crate::common::{engine_with_bundle, load_pixels, progress, read_bundle_for, read_file, Loaded};

/// `ablate`'s own arguments.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "image"])))]
#[command(group(clap::ArgGroup::new("ablation").multiple(true)))]
pub struct AblateArgs {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Folder with one subfolder of images per class (the paper's table).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// One image: classes and concept words before and after each ablation asked.
    #[arg(long, requires = "ablation")]
    pub image: Option<PathBuf>,
    /// With --image: mean-ablate these neurons, layer:neuron comma-separated (9:4,9:17).
    #[arg(long, group = "ablation")]
    pub neurons: Option<String>,
    /// With --image: steer these neurons, scaling each one's centred effect by its factor,
    /// layer:neuron=factor comma-separated (9:4=3,9:17=-1; 0 is the mean ablation, 1 nothing).
    #[arg(long, group = "ablation", allow_hyphen_values = true)]
    pub steer: Option<String>,
    /// With --image: mean-ablate the layer's neurons that are significant on the image.
    #[arg(long, group = "ablation")]
    pub significant: Option<usize>,
    /// With --image: mean-ablate the layer's neurons that are not significant on the image.
    #[arg(long, group = "ablation")]
    pub insignificant: Option<usize>,
    /// With --image: keep only the rank-1 reconstruction of the layer's neurons.
    #[arg(long, group = "ablation")]
    pub rank_one: Option<usize>,
    /// With --images: comma-separated layers (default: all the bundle's), each ablated on its own.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Images per forward pass (--images).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Print the results as JSON (or, with a path, write them there).
    #[arg(long, num_args = 0..=1)]
    pub json: Option<Option<PathBuf>>,
}

/// An image file and its label (an index into the classes found).
type LabelledImage = (PathBuf, usize);

/// The labelled images, and the classes' bundle indices.
fn labelled_images(dir: &Path, bundle: &Bundle) -> Result<(Vec<LabelledImage>, Vec<usize>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut folders: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    folders.sort();
    if folders.len() < 2 {
        return Err(Error::InvalidInput(format!(
            "{} needs at least two class subfolders, it has {}",
            dir.display(),
            folders.len()
        )));
    }
    let (mut images, mut classes) = (Vec::new(), Vec::new());
    for (label, folder) in folders.iter().enumerate() {
        let name = folder.file_name().map(|n| n.to_string_lossy().replace('_', " ")).unwrap_or_default();
        classes.push(
            class_index(&bundle.manifest.classes, &name)
                .map_err(|e| Error::InvalidInput(format!("subfolder {}: {e}", folder.display())))?,
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| Error::io(folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        images.extend(files.into_iter().map(|f| (f, label)));
    }
    Ok((images, classes))
}

/// `clip-lens ablate`, on a folder or on one image.
pub fn ablate(loaded: Loaded, args: &AblateArgs) -> Result<()> {
    match (&args.images, &args.image) {
        (Some(folder), _) => table(loaded, folder, args),
        (None, Some(image)) => on_image(loaded, image, args),
        (None, None) => Err(Error::InvalidInput("ablate needs --images FOLDER or --image FILE".into())),
    }
}

/// The ablations asked for one image, in the order of the options.
fn requests(args: &AblateArgs) -> Vec<AblationRequest> {
    let mut requests = Vec::new();
    requests.extend(args.neurons.clone().map(|neurons| AblationRequest::Neurons { neurons }));
    requests.extend(args.steer.clone().map(|neurons| AblationRequest::Steer { neurons }));
    requests.extend(args.significant.map(|layer| AblationRequest::Significant { layer }));
    requests.extend(args.insignificant.map(|layer| AblationRequest::Insignificant { layer }));
    requests.extend(args.rank_one.map(|layer| AblationRequest::RankOne { layer }));
    requests
}

/// One image through the engine: its analysis and each ablation, printed as a table (or JSON
/// `{analysis, ablations}`, the page's export).
fn on_image(loaded: Loaded, image: &Path, args: &AblateArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.bundle)?;
    let bytes = read_file(image)?;
    let analysis = pollster::block_on(engine.analyze(&bytes, &AnalyzeOptions::default()))
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", image.display())))?;
    let ablations =
        requests(args).iter().map(|request| pollster::block_on(engine.ablate(request))).collect::<Result<Vec<_>>>()?;
    match &args.json {
        Some(target) => {
            write_json(target.as_deref(), &serde_json::json!({"analysis": analysis, "ablations": ablations}))
        }
        None => {
            ablations.iter().for_each(print_ablation);
            Ok(())
        }
    }
}

/// An ablation's classes and words, before and after, side by side.
fn print_ablation(result: &AblationResult) {
    println!("{} (|v' - v| = {:.3}, {:.1} ms)", result.description, result.shift, result.ms);
    println!("  {:<36} after", "before");
    let (before, after) = (&result.before, &result.after);
    for i in 0..before.classes.len().max(after.classes.len()) {
        let class = |list: &[ClassScore]| {
            list.get(i).map(|c| format!("{} {:.1}%", c.name, 100.0 * c.probability)).unwrap_or_default()
        };
        println!("  {:<36} {}", class(&before.classes), class(&after.classes));
    }
    let words = |list: &[(String, f32)]| list.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(", ");
    println!("  words before: {}\n  words after:  {}", words(&before.words), words(&after.words));
}

/// JSON to stdout (`None`) or to a file.
fn write_json(target: Option<&Path>, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    match target {
        None => {
            println!("{text}");
            Ok(())
        }
        Some(path) => std::fs::write(path, text).map_err(|e| Error::io(path, e)),
    }
}

/// The paper's table over a labelled folder.
fn table(loaded: Loaded, folder: &Path, args: &AblateArgs) -> Result<()> {
    let bundle = read_bundle_for(&args.bundle, loaded.weights.bytes())?;
    let layers = if args.layers.is_empty() { bundle.manifest.layers.clone() } else { args.layers.clone() };
    let (images, class_ids) = labelled_images(folder, &bundle)?;
    let vision = loaded.model.vision()?;
    let mut tables = AblationTables::new(vision, &bundle, &layers, &class_ids)?;
    let bar = progress(images.len(), "ablations");
    for chunk in images.chunks(args.batch.max(1)) {
        let paths: Vec<PathBuf> = chunk.iter().map(|(p, _)| p.clone()).collect();
        let labels: Vec<usize> = chunk.iter().map(|(_, l)| *l).collect();
        let pixels: Vec<f32> = load_pixels(&paths, vision.config.image_size)?.concat();
        pollster::block_on(tables.add(vision, pixels, &labels))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let tables: Vec<AblationTable> = tables.into_tables();
    println!("{:<20} {}", "variant", layers.iter().map(|l| format!("layer {l:>2}")).collect::<Vec<_>>().join("  "));
    for (v, name) in VARIANTS.iter().enumerate() {
        println!(
            "{name:<20} {}",
            tables.iter().map(|t| format!("{:>7.1}%", 100.0 * t.accuracies()[v])).collect::<Vec<_>>().join("  ")
        );
    }
    if let Some(target) = &args.json {
        let json: Vec<serde_json::Value> = tables
            .iter()
            .map(|t| {
                let accuracy: serde_json::Map<String, serde_json::Value> =
                    VARIANTS.iter().zip(t.accuracies()).map(|(v, a)| (v.to_string(), serde_json::json!(a))).collect();
                serde_json::json!({"layer": t.layer, "images": t.images, "accuracy": accuracy})
            })
            .collect();
        write_json(target.as_deref(), &serde_json::Value::Array(json))?;
    }
    Ok(())
}
