//! `clip-lens`: the native command line (the page drives the library through `src/web`):
//! arguments and dispatch here, what the commands share in `common.rs`, and one file per
//! command group:
//!
//! - `effects`, `text` (tensors.rs): embeddings, activations and second-order effects, tokens,
//!   for checking against other implementations.
//! - `precompute` (precompute.rs): the bundle; `describe`, `neurons` (describe.rs): reading it.
//! - `convert` (convert.rs): separate image and text tower files for the page; `embed-text`
//!   (embed_text.rs): the text side of a model, computed once.
//! - `concepts`, `classify` (inspect.rs), `segment`, `eval-seg` (segment.rs), `adversarial`,
//!   `fooled` (adversarial.rs), `ablate` (ablate.rs): the applications.

#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

mod ablate;
mod adversarial;
mod common;
mod convert;
mod describe;
mod embed_text;
mod inspect;
mod precompute;
mod segment;
mod tensors;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use clip_lens::model::Towers;
use clip_lens::Result;

use crate::common::{load_model, ModelArgs};

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
    /// Neuron statistics over an image folder, word decompositions, and the page's bundle; or
    /// one shard of its passes (--shard), or a merge of shard files (--merge).
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
    /// Second-order effects ablated: the paper's Table 1 on a labelled folder, or one image's classes
    /// and concept words before and after.
    Ablate {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        args: crate::ablate::AblateArgs,
    },
    /// The image and text towers as separate files (f16 by default) for the page.
    Convert(crate::convert::ConvertArgs),
    /// A model's text side, computed once: word pools and ImageNet classes through the text
    /// tower, for `precompute --text` and the page.
    EmbedText(crate::embed_text::EmbedTextArgs),
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
fn main() -> ExitCode {
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
            tensors::effects(&model, &layers, out.as_deref(), batch, &images)
        }
        Command::Text { model, out, texts } => tensors::text(&model, out.as_deref(), &texts),
        Command::Precompute(command) => {
            let towers = if command.needs_text_tower() { Towers::Both } else { Towers::Vision };
            let loaded = load_model(&command.model, towers)?;
            crate::precompute::precompute(&loaded.model, &loaded.device, loaded.weights.bytes(), &command)
        }
        Command::Describe { bundle, layer, neuron, json } => describe::describe(&bundle, layer, neuron, json),
        Command::Neurons { model, bundle, top, json, text } => describe::neurons(&model, &bundle, top, json, &text),
        Command::Concepts { model, args } => crate::inspect::concepts(load_model(&model, Towers::Vision)?, &args),
        Command::Adversarial { model, args } => {
            crate::adversarial::adversarial(load_model(&model, Towers::Both)?, &args)
        }
        Command::Fooled { model, args } => crate::adversarial::fooled(load_model(&model, Towers::Both)?, &args),
        Command::Convert(args) => crate::convert::convert(&args),
        Command::EmbedText(args) => crate::embed_text::embed_text(&args),
        Command::Ablate { model, args } => crate::ablate::ablate(load_model(&model, Towers::Vision)?, &args),
        Command::Classify { model, args } => {
            crate::inspect::classify_images(load_model(&model, Towers::Vision)?, &args)
        }
        Command::Segment { model, args } => {
            let loaded = load_model(&model, crate::segment::towers_for(&args.concept))?;
            crate::segment::segment(loaded, &args)
        }
        Command::EvalSeg { model, args } => {
            let loaded = load_model(&model, crate::segment::towers_for(&args.concept))?;
            crate::segment::eval_seg(loaded, &args)
        }
    }
}
