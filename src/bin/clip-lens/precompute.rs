//! `clip-lens precompute`: neuron statistics over an image folder, the text dictionary, OMP,
//! and the bundle the page reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use indicatif::ProgressBar;

use clip_lens::bundle::{sha256_hex, Bundle, LayerLens, Manifest, FORMAT_VERSION};
use clip_lens::device::read_f32_blocking;
use clip_lens::lens::{orthogonal_matching_pursuit, second_order_effects, Dictionary, LensFactors, MeanAccumulator, NeuronStatistics, TopKAccumulator};
use clip_lens::model::{CaptureRequest, ClipModel, VisionTransformer};
use clip_lens::preprocess::preprocess_image;
use clip_lens::text_embeddings::{class_embeddings, lines, word_embeddings, IMAGENET_CLASSES, IMAGENET_TEMPLATES};
use clip_lens::tokenizer::ClipTokenizer;
use clip_lens::{Error, Result};

use crate::cli::progress;

/// What `precompute` was asked to do.
pub struct PrecomputeArgs<'a> {
    pub weights_path: &'a Path,
    pub images: &'a Path,
    pub layers: &'a [usize],
    pub top_k: usize,
    pub words: &'a [PathBuf],
    pub components: usize,
    pub out: &'a Path,
    pub batch: usize,
}

/// The image files of a folder (not recursive), sorted by name.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidInput(format!("{} contains no files", dir.display())));
    }
    Ok(files)
}

/// Decodes and preprocesses `files`, returning the pixels of those that decode and naming
/// (on stderr, through `bar`) those that do not.
fn decode_batch(files: &[PathBuf], size: usize, bar: &ProgressBar) -> (Vec<PathBuf>, Vec<f32>, Vec<String>) {
    let mut decoded = Vec::new();
    let mut pixels = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        match std::fs::read(file).map_err(|e| e.to_string()).and_then(|b| preprocess_image(&b, size as u32).map_err(|e| e.to_string())) {
            Ok(pre) => {
                decoded.push(file.clone());
                pixels.extend(pre.pixels);
            }
            Err(e) => {
                bar.suspend(|| eprintln!("skipping {}: {e}", file.display()));
                skipped.push(file.display().to_string());
            }
        }
    }
    (decoded, pixels, skipped)
}

/// One pass over the image files, decoded batch by batch (memory O(batch)): the effects of
/// every lens layer handed to `sink`. Returns the files that decoded and those skipped.
fn for_each_effect_batch(vision: &VisionTransformer, device: &Device, factors: &[LensFactors], files: &[PathBuf], batch: usize, what: &str, mut sink: impl FnMut(usize, &[f32]) -> Result<()>) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let size = vision.config.image_size;
    let layers: Vec<usize> = factors.iter().map(|f| f.layer).collect();
    let request = CaptureRequest::for_lens(&layers);
    let bar = progress(files.len(), what);
    let (mut decoded, mut skipped) = (Vec::new(), Vec::new());
    for chunk in files.chunks(batch.max(1)) {
        let (ok, pixels, failed) = decode_batch(chunk, size, &bar);
        skipped.extend(failed);
        if !ok.is_empty() {
            let input = Tensor::<4>::from_data(TensorData::new(pixels, [ok.len(), 3, size, size]), device);
            let output = vision.forward(input, &request)?;
            for (i, f) in factors.iter().enumerate() {
                sink(i, &read_f32_blocking(second_order_effects(vision, f, &output)?)?)?;
            }
        }
        decoded.extend(ok);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((decoded, skipped))
}

/// The two streaming passes; returns the statistics per layer, the images used and those skipped.
fn statistics(vision: &VisionTransformer, device: &Device, factors: &[LensFactors], files: &[PathBuf], args: &PrecomputeArgs, dim: usize) -> Result<(Vec<NeuronStatistics>, Vec<PathBuf>, Vec<String>)> {
    let neurons = vision.config.mlp_width;
    let mut means: Vec<MeanAccumulator> = factors.iter().map(|_| MeanAccumulator::new(neurons, dim)).collect();
    let (images, skipped) = for_each_effect_batch(vision, device, factors, files, args.batch, "pass 1/2 (means)", |i, e| means[i].add(e))?;
    if images.len() < args.top_k {
        return Err(Error::InvalidInput(format!("--top-k {} is larger than the number of readable images ({}, {} skipped)", args.top_k, images.len(), skipped.len())));
    }
    let mut tops = means.iter().map(|m| TopKAccumulator::new(m.mean()?, neurons, dim, args.top_k)).collect::<Result<Vec<_>>>()?;
    let (again, _) = for_each_effect_batch(vision, device, factors, &images, args.batch, "pass 2/2 (top-k)", |i, e| tops[i].add(e))?;
    if again.len() != images.len() {
        return Err(Error::InvalidInput("an image changed between the two passes (it no longer decodes)".into()));
    }
    let stats = tops.into_iter().map(TopKAccumulator::finish).collect::<Result<Vec<_>>>()?;
    Ok((stats, images, skipped))
}

fn read_words(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut words = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        words.extend(lines(&text));
    }
    let mut seen = std::collections::HashSet::new();
    words.retain(|w| seen.insert(w.clone()));
    if words.is_empty() {
        return Err(Error::InvalidInput("the word files hold no words".into()));
    }
    Ok(words)
}

/// Decompositions `[N, m]` sorted by |coefficient|, padded with index -1.
fn decompose(dictionary: &Dictionary, directions: &[f32], components: usize) -> Result<(Vec<i32>, Vec<f32>)> {
    let codes = orthogonal_matching_pursuit(dictionary, directions, components)?;
    let mut index = Vec::with_capacity(codes.len() * components);
    let mut coef = Vec::with_capacity(codes.len() * components);
    for code in codes {
        let sorted = code.by_magnitude();
        for slot in 0..components {
            let (i, c) = sorted.get(slot).map(|&(i, c)| (i as i32, c)).unwrap_or((-1, 0.0));
            index.push(i);
            coef.push(c);
        }
    }
    Ok((index, coef))
}

/// Runs the whole precomputation and writes the bundle.
pub fn precompute(model: &ClipModel, device: &Device, weights_bytes: &[u8], args: &PrecomputeArgs) -> Result<()> {
    let config = &model.config;
    let vision = model.vision()?;
    let text = model.text()?;
    let layers = vision.config.layers;
    if let Some(&bad) = args.layers.iter().find(|&&l| l >= layers) {
        return Err(Error::InvalidInput(format!("layer {bad} is out of range: the image tower has layers 0..={}", layers - 1)));
    }
    let words = read_words(args.words)?;
    let files = list_images(args.images)?;
    if files.len() < args.top_k {
        return Err(Error::InvalidInput(format!("--top-k {} is larger than the number of images ({})", args.top_k, files.len())));
    }
    let dim = config.embed_dim;
    let factors = args.layers.iter().map(|&l| LensFactors::new(vision, l)).collect::<Result<Vec<_>>>()?;
    let (stats, images, skipped) = statistics(vision, device, &factors, &files, args, dim)?;

    let tokenizer = ClipTokenizer::new();
    let bar: ProgressBar = progress(words.len(), "embedding words");
    let word_embeds = pollster::block_on(word_embeddings(text, &tokenizer, &words, 256, |d| bar.set_position(d as u64)))?;
    bar.finish_and_clear();
    let classes = lines(IMAGENET_CLASSES);
    let templates = lines(IMAGENET_TEMPLATES);
    let bar = progress(classes.len(), "embedding ImageNet classes");
    let class_embeds = pollster::block_on(class_embeddings(text, &tokenizer, &classes, &templates, 80, |d| bar.set_position(d as u64)))?;
    bar.finish_and_clear();

    let dictionary = Dictionary::from_word_embeddings(&word_embeds, dim)?;
    let components = args.components.min(words.len()).min(dim);
    let mut lens = BTreeMap::new();
    let mut top_images = BTreeMap::new();
    let bar = progress(stats.len(), "sparse decompositions (OMP)");
    for (layer, s) in args.layers.iter().zip(stats) {
        let (decomposition_index, decomposition_coef) = decompose(&dictionary, &s.directions, components)?;
        top_images.insert(layer.to_string(), s.top_images.chunks(s.k).map(|ids| ids.iter().rev().copied().collect()).collect());
        lens.insert(*layer, LayerLens { mean: s.mean, direction: s.directions, norms: s.norms, decomposition_index, decomposition_coef });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let base = args.images;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: args.weights_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model_config: config.to_hf_json(),
        weights_sha256: sha256_hex(weights_bytes),
        layers: args.layers.to_vec(),
        neurons: vision.config.mlp_width,
        embed_dim: dim,
        top_k: args.top_k,
        components,
        word_sources: args.words.iter().map(|p| p.display().to_string()).collect(),
        words,
        classes,
        images: images.iter().map(|p| p.strip_prefix(base).unwrap_or(p).display().to_string()).collect(),
        skipped_images: skipped,
        top_images,
    };
    let bundle = Bundle { manifest, layers: lens, word_embeds, class_embeds };
    bundle.write(args.out)?;
    eprintln!("wrote the bundle to {} ({} images, {} skipped)", args.out.display(), bundle.manifest.images.len(), bundle.manifest.skipped_images.len());
    Ok(())
}
