//! `clip-lens effects` (image embeddings, per-layer MLP activations and second-order effects of
//! images) and `clip-lens text` (tokens and text embeddings): tensors for checking against
//! other implementations, written to a safetensors file or summarised.

use std::path::{Path, PathBuf};

use clip_lens::device::read_f32_blocking;
use clip_lens::lens::{second_order_effects, LensFactors};
use clip_lens::model::{CaptureRequest, Towers};
use clip_lens::tensor_file::{serialize, NamedTensor};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{Error, Result};

use crate::common::{load_model, load_pixels, progress, Loaded, ModelArgs};

/// `clip-lens effects`.
pub fn effects(args: &ModelArgs, layers: &[usize], out: Option<&Path>, batch: usize, images: &[PathBuf]) -> Result<()> {
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

/// `clip-lens text`.
pub fn text(args: &ModelArgs, out: Option<&Path>, texts: &[String]) -> Result<()> {
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

/// One line per tensor: name, shape, mean, standard deviation, first values.
fn print_summary(tensor: &NamedTensor) {
    let values = tensor.to_f64();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let head: Vec<String> = values.iter().take(6).map(|x| format!("{x:.4}")).collect();
    println!("{:<16} {:?}  mean {mean:.5}  std {std:.5}  first [{}]", tensor.name, tensor.shape, head.join(", "));
}
