//! `clip-lens concepts` (concept discovery) and `clip-lens classify` (zero-shot
//! classification): per-image readings of a bundle, each image analysed by the engine as the page
//! does it ([`Engine::analyze`]); `--json` prints each image's [`Analysis`].

use std::path::PathBuf;

use serde::Serialize;

use clip_lens::apps::engine::{Analysis, AnalyzeOptions, Engine};
use clip_lens::Result;

use crate::common::{engine_with_bundle, on_file, read_file, Loaded};

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
    /// Print JSON: a list with the analysis of each image, in input order.
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
    /// Print JSON: a list with the analysis of each image, in input order.
    #[arg(long)]
    pub json: bool,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// An image's analysis as `--json` prints it: the engine's [`Analysis`] with the image's path.
#[derive(Serialize)]
struct ImageAnalysis<'a> {
    image: String,
    #[serde(flatten)]
    analysis: &'a Analysis,
}

/// Each image's analysis with `options`, in input order.
fn analyze_each(engine: &mut Engine, images: &[PathBuf], options: &AnalyzeOptions) -> Result<Vec<Analysis>> {
    images
        .iter()
        .map(|path| pollster::block_on(engine.analyze(&read_file(path)?, options)).map_err(|e| on_file(path, e)))
        .collect()
}

/// Prints the analyses as one JSON list.
fn print_json(images: &[PathBuf], analyses: &[Analysis]) {
    let list: Vec<ImageAnalysis> = images
        .iter()
        .zip(analyses)
        .map(|(path, analysis)| ImageAnalysis { image: path.display().to_string(), analysis })
        .collect();
    println!("{}", serde_json::to_string(&list).unwrap_or_default());
}

/// `clip-lens concepts`.
pub fn concepts(loaded: Loaded, args: &ConceptsArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.bundle)?;
    let layers = if args.layer.is_empty() {
        engine.bundle_summary()?.layers.last().copied().into_iter().collect()
    } else {
        args.layer.clone()
    };
    let options = AnalyzeOptions { top_words: args.top, layers: Some(layers.clone()), ..Default::default() };
    let analyses = analyze_each(&mut engine, &args.images, &options)?;
    if args.json {
        print_json(&args.images, &analyses);
        return Ok(());
    }
    for (path, analysis) in args.images.iter().zip(&analyses) {
        let significant: usize = analysis.layers.iter().map(|l| l.significant_neurons.len()).sum();
        let words: Vec<String> = analysis.words.iter().map(|(w, s)| format!("{w} ({s:.3})")).collect();
        println!("{} (layers {layers:?}, {significant} significant neurons): {}", path.display(), words.join(", "));
    }
    Ok(())
}

/// `clip-lens classify`: the analysis without concept discovery (no layers).
pub fn classify_images(loaded: Loaded, args: &ClassifyArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.bundle)?;
    let options = AnalyzeOptions { top_classes: args.top, layers: Some(Vec::new()), ..Default::default() };
    let analyses = analyze_each(&mut engine, &args.images, &options)?;
    if args.json {
        print_json(&args.images, &analyses);
        return Ok(());
    }
    for (path, analysis) in args.images.iter().zip(&analyses) {
        let classes: Vec<String> =
            analysis.classes.iter().map(|c| format!("{} {:.1}%", c.name, 100.0 * c.probability)).collect();
        println!("{}: {}", path.display(), classes.join(", "));
    }
    Ok(())
}
