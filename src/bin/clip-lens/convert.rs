//! `clip-lens convert`: the image and text towers as separate files (f32 or f16) for the page,
//! with `config.json` and a `manifest.json` of sha256s.

use std::path::PathBuf;

use clip_lens::convert::{split_towers, WeightDtype};
use clip_lens::{ClipConfig, Error, Result, WeightFile};

/// `convert`'s arguments.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// CLIP weights (.safetensors, either layout).
    #[arg(long)]
    pub weights: PathBuf,
    /// Hugging Face config.json (default: the one beside the weights, else inferred).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Storage: f32, or f16 (half the download).
    #[arg(long, default_value = "f16", value_parser = parse_dtype)]
    pub dtype: WeightDtype,
}

fn parse_dtype(value: &str) -> std::result::Result<WeightDtype, String> {
    match value {
        "f32" => Ok(WeightDtype::F32),
        "f16" => Ok(WeightDtype::F16),
        other => Err(format!("unknown dtype `{other}`: use f32 or f16")),
    }
}

/// `clip-lens convert`.
pub fn convert(args: &ConvertArgs) -> Result<()> {
    let weights = WeightFile::open(&args.weights)?;
    let config = ClipConfig::resolve(&weights, &args.weights, args.config.as_deref())?;
    let (image, text, manifest) = split_towers(&weights, args.dtype)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    };
    write(&manifest.image.file, &image)?;
    write(&manifest.text.file, &text)?;
    write("config.json", serde_json::to_string_pretty(&config.to_hf_json()).unwrap_or_default().as_bytes())?;
    write("manifest.json", serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes())?;
    let mb = |bytes: usize| bytes as f64 / 1e6;
    eprintln!(
        "wrote {} ({:.1} MB) and {} ({:.1} MB) to {}",
        manifest.image.file,
        mb(manifest.image.bytes),
        manifest.text.file,
        mb(manifest.text.bytes),
        args.out.display()
    );
    Ok(())
}
