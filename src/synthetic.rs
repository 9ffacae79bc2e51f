//! Random-weight CLIP checkpoints of any shape, as safetensors bytes: for tests and benchmarks
//! of real-size models (ViT-B/32, B/16, L/14) where real weights cannot be downloaded.

use crate::config::ClipConfig;
use crate::random::SplitMix64 as SplitMix;
use crate::weights::{Layout, Tower};

/// Storage type of generated tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the bytes, as `convert --dtype f16` writes).
    F16,
}

/// Which towers to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TowerSelection {
    /// Generate the image tower.
    pub vision: bool,
    /// Generate the text tower.
    pub text: bool,
}

impl SplitMix {
    /// Uniform with the given standard deviation, centred on `mean`.
    fn uniform(&mut self, mean: f32, std: f32) -> f32 {
        mean + (self.next_f32() - 0.5) * std * 12f32.sqrt()
    }
}

/// One tensor to generate: name, shape, mean and standard deviation of its values.
struct Spec {
    name: String,
    shape: Vec<usize>,
    mean: f32,
    std: f32,
}

fn spec(name: impl Into<String>, shape: &[usize], mean: f32, std: f32) -> Spec {
    Spec { name: name.into(), shape: shape.to_vec(), mean, std }
}

fn layer_norm(specs: &mut Vec<Spec>, prefix: &str, width: usize) {
    specs.push(spec(format!("{prefix}.weight"), &[width], 1.0, 0.1));
    specs.push(spec(format!("{prefix}.bias"), &[width], 0.0, 0.02));
}

fn linear(specs: &mut Vec<Spec>, prefix: &str, out: usize, inp: usize) {
    specs.push(spec(format!("{prefix}.weight"), &[out, inp], 0.0, 1.0 / (inp as f32).sqrt()));
    specs.push(spec(format!("{prefix}.bias"), &[out], 0.0, 0.02));
}

fn blocks(specs: &mut Vec<Spec>, layout: Layout, tower: Tower, layers: usize, width: usize, mlp: usize) {
    for l in 0..layers {
        let prefix = |module: &str| layout.layer_module(tower, l, module);
        layer_norm(specs, &prefix("ln_1"), width);
        let block = layout.block_prefix(tower, l);
        match layout {
            Layout::OpenAi => linear_packed(specs, &format!("{block}attn.in_proj"), 3 * width, width),
            Layout::HuggingFace => {
                for p in ["q", "k", "v"] {
                    linear(specs, &format!("{block}self_attn.{p}_proj"), width, width);
                }
            }
        }
        linear(specs, &prefix("attn_out"), width, width);
        layer_norm(specs, &prefix("ln_2"), width);
        linear(specs, &prefix("mlp_in"), mlp, width);
        linear(specs, &prefix("mlp_out"), width, mlp);
    }
}

fn linear_packed(specs: &mut Vec<Spec>, prefix: &str, out: usize, inp: usize) {
    specs.push(spec(format!("{prefix}_weight"), &[out, inp], 0.0, 1.0 / (inp as f32).sqrt()));
    specs.push(spec(format!("{prefix}_bias"), &[out], 0.0, 0.02));
}

fn projection(layout: Layout, name: &str, width: usize, out: usize) -> Spec {
    let shape = match layout {
        Layout::OpenAi => [width, out],
        Layout::HuggingFace => [out, width],
    };
    spec(name, &shape, 0.0, 1.0 / (width as f32).sqrt())
}

fn specs(config: &ClipConfig, layout: Layout, towers: TowerSelection) -> Vec<Spec> {
    let names = layout.names();
    let mut specs = Vec::new();
    if towers.vision {
        let v = &config.vision;
        specs.push(spec(names.vision_patch_embedding, &[v.width, 3, v.patch_size, v.patch_size], 0.0, 0.02));
        specs.push(spec(names.vision_class_embedding, &[v.width], 0.0, 0.5));
        specs.push(spec(names.vision_positional_embedding, &[v.tokens(), v.width], 0.0, 0.1));
        layer_norm(&mut specs, names.vision_ln_pre, v.width);
        blocks(&mut specs, layout, Tower::Vision, v.layers, v.width, v.mlp_width);
        layer_norm(&mut specs, names.vision_ln_post, v.width);
        specs.push(projection(layout, names.vision_projection, v.width, config.embed_dim));
    }
    if towers.text {
        let t = &config.text;
        specs.push(spec(names.text_token_embedding, &[t.vocab_size, t.width], 0.0, 0.02));
        specs.push(spec(names.text_positional_embedding, &[t.context_length, t.width], 0.0, 0.01));
        blocks(&mut specs, layout, Tower::Text, t.layers, t.width, t.mlp_width);
        layer_norm(&mut specs, names.text_ln_final, t.width);
        specs.push(projection(layout, names.text_projection, t.width, config.embed_dim));
    }
    specs
}

/// The name and shape of every tensor of a model of `config` under `layout`'s names: what
/// [`random_weights`] writes and the model's loader reads.
pub fn weight_shapes(config: &ClipConfig, layout: Layout, towers: TowerSelection) -> Vec<(String, Vec<usize>)> {
    specs(config, layout, towers).into_iter().map(|s| (s.name, s.shape)).collect()
}

/// A safetensors file (bytes) with random weights of `config`'s shapes under `layout`'s names.
pub fn random_weights(
    config: &ClipConfig,
    layout: Layout,
    towers: TowerSelection,
    storage: StorageType,
    seed: u64,
) -> Vec<u8> {
    let specs = specs(config, layout, towers);
    let element = match storage {
        StorageType::F32 => 4,
        StorageType::F16 => 2,
    };
    let dtype = match storage {
        StorageType::F32 => "F32",
        StorageType::F16 => "F16",
    };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for s in &specs {
        let bytes = s.shape.iter().product::<usize>() * element;
        header.insert(
            s.name.clone(),
            serde_json::json!({"dtype": dtype, "shape": s.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).expect("a JSON map serialises");
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    let mut rng = SplitMix(seed);
    for s in &specs {
        for _ in 0..s.shape.iter().product::<usize>() {
            let value = rng.uniform(s.mean, s.std);
            match storage {
                StorageType::F32 => out.extend_from_slice(&value.to_le_bytes()),
                StorageType::F16 => out.extend_from_slice(&half::f16::from_f32(value).to_le_bytes()),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Bundles and images for benchmarks of the applications
// ---------------------------------------------------------------------------

/// The sizes of a synthetic bundle ([`random_bundle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSizes {
    /// The lens layers.
    pub layers: Vec<usize>,
    /// Thresholds (top-k centred norms) kept per neuron.
    pub top_k: usize,
    /// Decomposition components (word, coefficient) per neuron.
    pub components: usize,
    /// Words in the dictionary.
    pub words: usize,
    /// Zero-shot classes.
    pub classes: usize,
    /// One neuron in this many has threshold 0, so it is significant for every image; the
    /// others never are. (Concept discovery then has work of a realistic size.)
    pub significant_every: usize,
}

impl BundleSizes {
    /// The paper's settings for a model of `config`'s depth: layers L-4, L-3 and L-2 (8, 9 and
    /// 10 of a 12-layer ViT-B), k = 100, m = 128, 5000 words, 1000 classes, one neuron in 20
    /// significant.
    pub fn paper(config: &ClipConfig) -> Self {
        let last = config.vision.layers.saturating_sub(2);
        Self {
            layers: vec![last.saturating_sub(2), last.saturating_sub(1), last],
            top_k: 100,
            components: 128,
            words: 5000,
            classes: 1000,
            significant_every: 20,
        }
    }
}

impl SplitMix {
    /// `rows` random unit vectors of `dim` values, each times `scale`.
    fn unit_rows(&mut self, rows: usize, dim: usize, scale: f32) -> Vec<f32> {
        let mut values: Vec<f32> = (0..rows * dim).map(|_| self.uniform(0.0, 1.0)).collect();
        for row in values.chunks_exact_mut(dim) {
            let norm = crate::vector::norm(row).max(f32::MIN_POSITIVE);
            row.iter_mut().for_each(|x| *x *= scale / norm);
        }
        values
    }
    /// A whole number below `bound` (> 0).
    fn below(&mut self, bound: usize) -> usize {
        ((self.next_f32() as f64 * bound as f64) as usize).min(bound - 1)
    }
}

/// One layer's random lens data: small means, unit directions, ascending top-k norms (column 0,
/// the threshold, is 0 for every `significant_every`-th neuron and 1e30 for the others), and
/// decompositions of consecutive words from a random start with coefficients of falling
/// magnitude and random sign.
fn random_layer(rng: &mut SplitMix, neurons: usize, dim: usize, sizes: &BundleSizes) -> crate::bundle::LayerLens {
    let (k, m) = (sizes.top_k, sizes.components);
    let mean = (0..neurons * dim).map(|_| rng.uniform(0.0, 0.01)).collect();
    let direction = rng.unit_rows(neurons, dim, 1.0);
    let norms = (0..neurons)
        .flat_map(|n| {
            let threshold = if n % sizes.significant_every.max(1) == 0 { 0.0 } else { 1e30 };
            (0..k).map(move |j| threshold + j as f32)
        })
        .collect();
    let mut decomposition_index = Vec::with_capacity(neurons * m);
    let mut decomposition_coef = Vec::with_capacity(neurons * m);
    for _ in 0..neurons {
        let start = rng.below(sizes.words.max(1));
        for j in 0..m {
            decomposition_index.push(((start + j) % sizes.words.max(1)) as i32);
            let sign = if rng.next_f32() < 0.5 { -1.0 } else { 1.0 };
            decomposition_coef.push(sign / (j + 1) as f32);
        }
    }
    // No optional statistics (format 3's distributions): their fields keep their defaults.
    crate::bundle::LayerLens { mean, direction, norms, decomposition_index, decomposition_coef, ..Default::default() }
}

/// A bundle of random lens data for `config`'s image tower, naming the weights whose sha256 is
/// `weights_sha256`, so that it passes [`crate::bundle::Bundle::check_weights`] and
/// [`crate::bundle::Bundle::check_model`] like one `precompute` wrote: for timing the
/// applications at real sizes. Words are `word<i>` (100 x random unit embeddings), classes
/// `class<i>` (random unit embeddings); it lists no images.
pub fn random_bundle(
    config: &ClipConfig,
    weights_sha256: &str,
    sizes: &BundleSizes,
    seed: u64,
) -> crate::bundle::Bundle {
    use crate::bundle::{Bundle, Manifest, FORMAT_VERSION};
    let (neurons, dim) = (config.vision.mlp_width, config.embed_dim);
    let mut rng = SplitMix(seed);
    let layers = sizes.layers.iter().map(|&layer| (layer, random_layer(&mut rng, neurons, dim, sizes))).collect();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: "random weights".into(),
        model_config: config.to_hf_json(),
        weights_sha256: weights_sha256.to_string(),
        layers: sizes.layers.clone(),
        neurons,
        embed_dim: dim,
        top_k: sizes.top_k,
        components: sizes.components,
        word_sources: vec![],
        words: (0..sizes.words).map(|i| format!("word{i}")).collect(),
        classes: (0..sizes.classes).map(|i| format!("class{i}")).collect(),
        class_templates: 80,
        images: vec![],
        skipped_images: vec![],
        top_images: Default::default(),
        // No thumbnails, no optional statistics.
        ..Default::default()
    };
    let word_embeds = rng.unit_rows(sizes.words, dim, 100.0);
    let class_embeds = rng.unit_rows(sizes.classes, dim, 1.0);
    Bundle { manifest, layers, word_embeds, class_embeds }
}

/// A [`random_bundle`] of the paper's sizes ([`BundleSizes::paper`]) for the weight file
/// `weights`, as the page loads it: its sizes, `manifest.json` and f16 `lens.safetensors`.
pub fn paper_bundle_files(config: &ClipConfig, weights: &[u8]) -> crate::error::Result<(BundleSizes, String, Vec<u8>)> {
    let sizes = BundleSizes::paper(config);
    let bundle = random_bundle(config, &crate::bundle::sha256_hex(weights), &sizes, 2);
    Ok((sizes, bundle.manifest_json()?, bundle.tensors(crate::bundle::Storage::F16)?))
}

/// A PNG of `width` x `height` pixels (colour gradients), to time the applications from
/// encoded bytes as the page and the CLI receive them.
pub fn gradient_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    bytes.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{sha256_hex, Bundle, Storage};

    /// The bundle round-trips through its files and fits the model it names.
    #[test]
    fn random_bundle_is_a_valid_bundle_of_the_model() {
        let config = ClipConfig::vit_b_32();
        let sizes = BundleSizes { words: 300, classes: 10, top_k: 4, components: 8, ..BundleSizes::paper(&config) };
        assert_eq!(sizes.layers, vec![8, 9, 10]);
        let bundle = random_bundle(&config, &sha256_hex(b"weights"), &sizes, 3);
        let read = Bundle::from_parts(&bundle.manifest_json().unwrap(), bundle.tensors(Storage::F32).unwrap()).unwrap();
        assert_eq!(read, bundle);
        read.check_weights(&sha256_hex(b"weights")).unwrap();
        read.check_model(&config).unwrap();
        let significant = bundle.layers[&9].norms.chunks_exact(4).filter(|row| row[0] == 0.0).count();
        assert_eq!(significant, 3072usize.div_ceil(20));
        assert!(bundle.layers[&9].norms.chunks_exact(4).all(|row| row.windows(2).all(|w| w[0] <= w[1])));
    }

    #[test]
    fn gradient_png_decodes_to_its_size() {
        let decoded = image::load_from_memory(&gradient_png(40, 30)).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (40, 30));
    }
}
