//! `clip-lens adversarial` (words that make CLIP see class 0 in images of class 1) and
//! `clip-lens fooled` (whether images fool CLIP that way), through the engine as the page's
//! miner (`Engine::adversarial`, `Engine::fooled`).

use std::path::PathBuf;

use clip_lens::apps::engine::AdversarialOptions;
use clip_lens::{Error, Result};

use crate::common::{engine_with_bundle, on_file, read_file, Loaded};

/// The two classes, shared by both commands.
#[derive(clap::Args)]
pub struct ClassPair {
    /// Bundle directory (made from the same weights).
    #[arg(long)]
    pub bundle: PathBuf,
    /// The class CLIP should (wrongly) say: a bundle class name (its 80-template embedding) or
    /// any text.
    #[arg(long)]
    pub class0: String,
    /// The class the images depict (same forms).
    #[arg(long)]
    pub class1: String,
}

/// The search's settings: the engine's [`AdversarialOptions`], with their defaults (the paper's).
#[derive(clap::Args)]
pub struct Mining {
    /// Comma-separated layers (default: all the bundle's layers; the paper: 8,9,10).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// Neurons kept by |r_n . d|.
    #[arg(long, default_value_t = AdversarialOptions::default().neurons)]
    pub neurons: usize,
    /// Words listed.
    #[arg(long, default_value_t = AdversarialOptions::default().words)]
    pub words: usize,
    /// Words whose text embedding has a cosine above this with class 0 are synonyms, dropped.
    #[arg(long, default_value_t = AdversarialOptions::default().synonym_cosine)]
    pub synonym_cosine: f32,
    /// Words never used (repeatable).
    #[arg(long = "block")]
    pub block: Vec<String>,
}

impl Mining {
    /// The engine's options.
    pub fn options(&self) -> AdversarialOptions {
        AdversarialOptions {
            layers: (!self.layers.is_empty()).then(|| self.layers.clone()),
            neurons: self.neurons,
            words: self.words,
            synonym_cosine: self.synonym_cosine,
            block: self.block.clone(),
        }
    }
}

/// `adversarial`'s own arguments.
#[derive(clap::Args)]
pub struct AdversarialArgs {
    #[command(flatten)]
    pub classes: ClassPair,
    #[command(flatten)]
    pub mining: Mining,
    /// A shell command run for each description, `{}` replaced by it (single-quoted), e.g. an
    /// LLM or a text-to-image tool: `--command "my-t2i --prompt {} --out out/"`.
    #[arg(long)]
    pub command: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fooled`'s own arguments.
#[derive(clap::Args)]
pub struct FooledArgs {
    #[command(flatten)]
    pub classes: ClassPair,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// `clip-lens adversarial`.
pub fn adversarial(loaded: Loaded, args: &AdversarialArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.classes.bundle)?;
    let (class0, class1) = (&args.classes.class0, &args.classes.class1);
    let result = pollster::block_on(engine.adversarial(class0, class1, &args.mining.options()))?;
    let (layers, found) = (&result.layers, &result.found);
    if args.json {
        println!("{}", serde_json::to_value(&result).unwrap_or_default());
    } else {
        println!(
            "{} neurons of layers {layers:?}; removed as synonyms or blocked: {}",
            found.neurons.len(),
            found.removed.join(", ")
        );
        for w in &found.words {
            println!("{:<24} {:+.4}  from {} neurons", w.word, w.score, w.neurons.len());
        }
        found.descriptions.iter().for_each(|d| println!("  \"{d}\""));
    }
    if let Some(template) = &args.command {
        for description in &found.descriptions {
            run_command(template, description)?;
        }
    }
    Ok(())
}

/// Runs `template` with `{}` replaced by the single-quoted description, through `sh -c`.
fn run_command(template: &str, description: &str) -> Result<()> {
    let quoted = format!("'{}'", description.replace('\'', "'\\''"));
    let line = template.replace("{}", &quoted);
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .status()
        .map_err(|e| Error::InvalidInput(format!("cannot run `{line}`: {e}")))?;
    if !status.success() {
        return Err(Error::InvalidInput(format!("`{line}` failed ({status})")));
    }
    Ok(())
}

/// `clip-lens fooled`.
pub fn fooled(loaded: Loaded, args: &FooledArgs) -> Result<()> {
    let mut engine = engine_with_bundle(loaded, &args.classes.bundle)?;
    let (class0, class1) = (&args.classes.class0, &args.classes.class1);
    let mut decisions = Vec::new();
    for path in &args.images {
        let result =
            pollster::block_on(engine.fooled(&read_file(path)?, class0, class1)).map_err(|e| on_file(path, e))?;
        decisions.push((path.display().to_string(), result.fooled));
    }
    let rate = decisions.iter().filter(|(_, f)| *f).count() as f64 / decisions.len() as f64;
    if args.json {
        let images: Vec<serde_json::Value> =
            decisions.iter().map(|(p, f)| serde_json::json!({"image": p, "fooled": f})).collect();
        println!(
            "{}",
            serde_json::json!({"class0": args.classes.class0, "class1": args.classes.class1, "images": images, "success_rate": rate})
        );
    } else {
        for (path, fooled) in &decisions {
            println!("{path}: CLIP says {}", if *fooled { &args.classes.class0 } else { &args.classes.class1 });
        }
        println!("success rate: {:.1}% ({} images)", 100.0 * rate, decisions.len());
    }
    Ok(())
}
