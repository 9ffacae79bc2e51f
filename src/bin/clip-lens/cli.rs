//! The native command line.
//!
//! - `effects`: image embeddings and per-layer MLP activations (and, with the lens, second-order
//!   effects) of images, for checking against other implementations.
//! - `text`: tokens and text embeddings.
//! - `precompute` (precompute.rs): the bundle; `describe`, `neurons`: reading it.
//! - `convert` (convert.rs): separate image and text tower files for the page.
//! - `concepts`, `classify` (inspect.rs), `segment`, `eval-seg` (segment.rs), `adversarial`,
//!   `fooled` (adversarial.rs), `ablate` (ablate.rs): the applications.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use clip_lens::device::read_f32_blocking;
use clip_lens::lens::{second_order_effects, LensFactors};
use clip_lens::model::{CaptureRequest, Towers};
use clip_lens::tensor_file::{serialize, NamedTensor};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{Error, Result};

use crate::common::{load_model, load_pixels, progress, read_bundle_for, Loaded, ModelArgs};

#[derive(Parser)]
#[command(name = "clip-lens", version, about = "The second-order lens on CLIP's neurons")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Image embeddings, post-GELU activations and second-order effects of chosen layers.
    Effects {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated layer indices.
        #[arg(long, value_delimiter = ',', required = true)]
        layers: Vec<usize>,
        /// Write a safetensors file instead of printing a summary.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Images per forward pass.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Image files, or .safetensors files holding preprocessed `pixels` [B,3,S,S].
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Neuron statistics over an image folder, word decompositions, and the page's bundle.
    Precompute(crate::precompute::PrecomputeCommand),
    /// A neuron's words from a bundle.
    Describe {
        /// Bundle directory.
        #[arg(long)]
        bundle: PathBuf,
        /// Layer.
        #[arg(long)]
        layer: usize,
        /// Neuron index.
        #[arg(long)]
        neuron: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Concept discovery: each image's significant neurons and their words.
    Concepts {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::inspect::ConceptsArgs,
    },
    /// Zero-shot classification with the bundle's ImageNet classifier.
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::inspect::ClassifyArgs,
    },
    /// Words that make CLIP see class 0 in images of class 1, with image descriptions.
    Adversarial {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::adversarial::AdversarialArgs,
    },
    /// Whether images of class 1 fool CLIP into class 0, and the success rate.
    Fooled {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::adversarial::FooledArgs,
    },
    /// Accuracy with second-order effects ablated (the paper's Table 1) on a labelled folder.
    Ablate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::ablate::AblateArgs,
    },
    /// The image and text towers as separate files (f16 by default) for the page.
    Convert(crate::convert::ConvertArgs),
    /// Neurons whose direction best matches a text.
    Neurons {
        #[command(flatten)]
        model: ModelArgs,
        /// Bundle directory (made from the same weights).
        #[arg(long)]
        bundle: PathBuf,
        /// How many neurons to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The text.
        text: String,
    },
    /// Tokens and text embeddings.
    Text {
        #[command(flatten)]
        model: ModelArgs,
        /// Write a safetensors file instead of printing a summary.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Texts to embed.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Zero-shot segmentation heatmaps of images for a concept, with overlays.
    Segment {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::segment::SegmentArgs,
    },
    /// Zero-shot segmentation scores (pixel accuracy, mIoU, mAP) against ground-truth masks.
    EvalSeg {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::segment::EvalSegArgs,
    },
}

/// Parses the arguments, runs the command, reports errors on stderr.
pub fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Effects { model, layers, out, batch, images } => {
            effects(&model, &layers, out.as_deref(), batch, &images)
        }
        Command::Text { model, out, texts } => text(&model, out.as_deref(), &texts),
        Command::Precompute(command) => {
            let loaded = load_model(&command.model, Towers::Both)?;
            crate::precompute::precompute(&loaded.model, &loaded.device, loaded.weights.bytes(), &command)
        }
        Command::Describe { bundle, layer, neuron, json } => describe(&bundle, layer, neuron, json),
        Command::Neurons { model, bundle, top, json, text } => neurons(&model, &bundle, top, json, &text),
        Command::Concepts { model, args } => {
            let loaded = load_model(&model, Towers::Vision)?;
            crate::inspect::concepts(&loaded.model, &loaded.device, loaded.weights.bytes(), &args)
        }
        Command::Adversarial { model, args } => {
            let loaded = load_model(&model, Towers::Both)?;
            crate::adversarial::adversarial(&loaded.model, loaded.weights.bytes(), &args)
        }
        Command::Fooled { model, args } => {
            let loaded = load_model(&model, Towers::Both)?;
            crate::adversarial::fooled(&loaded.model, loaded.weights.bytes(), &args)
        }
        Command::Convert(args) => crate::convert::convert(&args),
        Command::Ablate { model, args } => {
            let loaded = load_model(&model, Towers::Vision)?;
            crate::ablate::ablate(&loaded.model, &loaded.device, loaded.weights.bytes(), &args)
        }
        Command::Classify { model, args } => {
            let loaded = load_model(&model, Towers::Vision)?;
            crate::inspect::classify_images(&loaded.model, loaded.weights.bytes(), &args)
        }
        Command::Segment { model, args } => {
            let loaded = load_model(&model, crate::segment::towers_for(&args.concept))?;
            crate::segment::segment(&loaded.model, loaded.weights.bytes(), &args)
        }
        Command::EvalSeg { model, args } => {
            let loaded = load_model(&model, crate::segment::towers_for(&args.concept))?;
            crate::segment::eval_seg(&loaded.model, loaded.weights.bytes(), &args)
        }
    }
}

fn effects(args: &ModelArgs, layers: &[usize], out: Option<&Path>, batch: usize, images: &[PathBuf]) -> Result<()> {
    let Loaded { model, .. } = load_model(args, Towers::Vision)?;
    let vision = model.vision()?;
    let size = vision.config.image_size;
    let pixels = load_pixels(images, size)?;
    let request = CaptureRequest::for_lens(layers);
    let factors = layers.iter().map(|&l| LensFactors::new(vision, l)).collect::<Result<Vec<_>>>()?;
    let mut embeds = Vec::new();
    let mut neurons: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let mut effects: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let bar = progress(pixels.len(), "images");
    for chunk in pixels.chunks(batch.max(1)) {
        let flat: Vec<f32> = chunk.concat();
        let input = vision.pixel_tensor(flat)?;
        let output = vision.forward(input, &request)?;
        for (i, layer) in layers.iter().enumerate() {
            neurons[i].extend(read_f32_blocking(output.captures.neurons[layer].clone())?);
            effects[i].extend(read_f32_blocking(second_order_effects(vision, &factors[i], &output)?)?);
        }
        embeds.extend(read_f32_blocking(output.embeds)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let n = pixels.len();
    let c = &vision.config;
    let mut tensors = vec![NamedTensor::f32("image_embeds", &[n, model.config.embed_dim], embeds)];
    for ((layer, values), effect) in layers.iter().zip(neurons).zip(effects) {
        tensors.push(NamedTensor::f32(format!("post_gelu.{layer}"), &[n, c.tokens(), c.mlp_width], values));
        tensors.push(NamedTensor::f32(
            format!("second_order.{layer}"),
            &[n, c.mlp_width, model.config.embed_dim],
            effect,
        ));
    }
    emit(&tensors, out)
}

fn text(args: &ModelArgs, out: Option<&Path>, texts: &[String]) -> Result<()> {
    let Loaded { model, .. } = load_model(args, Towers::Text)?;
    let text = model.text()?;
    let context = text.config.context_length;
    let tokens = ClipTokenizer::new().tokenize_batch(texts, context);
    let embeds = read_f32_blocking(text.encode(&tokens)?)?;
    let m = texts.len();
    let tensors = vec![
        NamedTensor::i32("tokens", &[m, context], tokens.iter().map(|&t| t as i32).collect()),
        NamedTensor::f32("text_embeds", &[m, model.config.embed_dim], embeds),
    ];
    emit(&tensors, out)
}

/// Writes the tensors to `out`, or prints a readable summary of each.
fn emit(tensors: &[NamedTensor], out: Option<&Path>) -> Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, serialize(tensors)?).map_err(|e| Error::io(path, e))?;
            eprintln!("wrote {} tensors to {}", tensors.len(), path.display());
        }
        None => tensors.iter().for_each(print_summary),
    }
    Ok(())
}

fn print_summary(tensor: &NamedTensor) {
    let values = tensor.to_f64();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let head: Vec<String> = values.iter().take(6).map(|x| format!("{x:.4}")).collect();
    println!("{:<16} {:?}  mean {mean:.5}  std {std:.5}  first [{}]", tensor.name, tensor.shape, head.join(", "));
}

fn describe(bundle: &Path, layer: usize, neuron: usize, json: bool) -> Result<()> {
    let bundle = clip_lens::bundle::Bundle::read(bundle)?;
    let words = bundle.describe(layer, neuron)?;
    if json {
        let list: Vec<serde_json::Value> = words.iter().map(|(w, c)| serde_json::json!([w, c])).collect();
        println!("{}", serde_json::json!({"layer": layer, "neuron": neuron, "words": list}));
    } else {
        println!("layer {layer}, neuron {neuron}:");
        for (word, coef) in words {
            println!("  {:>+9.4}  {word}", coef);
        }
    }
    Ok(())
}

fn neurons(args: &ModelArgs, bundle: &Path, top: usize, json: bool, query: &str) -> Result<()> {
    let Loaded { model, weights, .. } = load_model(args, Towers::Text)?;
    let bundle = read_bundle_for(bundle, weights.bytes())?;
    let text = model.text()?;
    let tokens = ClipTokenizer::new().tokenize(query, text.config.context_length);
    let embedding = read_f32_blocking(text.encode(&tokens)?)?;
    let matches = bundle.neurons_matching(&embedding, top)?;
    let described = matches
        .iter()
        .map(|&(layer, neuron, score)| Ok((layer, neuron, score, bundle.describe(layer, neuron)?)))
        .collect::<Result<Vec<_>>>()?;
    if json {
        let list: Vec<serde_json::Value> = described
            .iter()
            .map(|(layer, neuron, score, words)| serde_json::json!({"layer": layer, "neuron": neuron, "score": score, "words": words.iter().take(5).map(|(w, c)| serde_json::json!([w, c])).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for (layer, neuron, score, words) in described {
            let words: Vec<String> = words.iter().take(5).map(|(w, c)| format!("{w} ({c:+.3})")).collect();
            println!("layer {layer:>2} neuron {neuron:>5}  {score:+.4}  {}", words.join(", "));
        }
    }
    Ok(())
}
