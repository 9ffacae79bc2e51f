//! Random-weight CLIP checkpoints of any shape, as safetensors bytes: for tests and benchmarks
//! of real-size models (ViT-B/32, B/16, L/14) where real weights cannot be downloaded.

use crate::config::ClipConfig;
use crate::weights::Layout;

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

/// A small deterministic generator (SplitMix64), so that tests need no random crate.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
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

fn blocks(specs: &mut Vec<Spec>, layout: Layout, vision: bool, layers: usize, width: usize, mlp: usize) {
    for l in 0..layers {
        let prefix = |module: &str| layout.layer_module(vision, l, module);
        layer_norm(specs, &prefix("ln_1"), width);
        let block = layout.block_prefix(vision, l);
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
        blocks(&mut specs, layout, true, v.layers, v.width, v.mlp_width);
        layer_norm(&mut specs, names.vision_ln_post, v.width);
        specs.push(projection(layout, names.vision_projection, v.width, config.embed_dim));
    }
    if towers.text {
        let t = &config.text;
        specs.push(spec(names.text_token_embedding, &[t.vocab_size, t.width], 0.0, 0.02));
        specs.push(spec(names.text_positional_embedding, &[t.context_length, t.width], 0.0, 0.01));
        blocks(&mut specs, layout, false, t.layers, t.width, t.mlp_width);
        layer_norm(&mut specs, names.text_ln_final, t.width);
        specs.push(projection(layout, names.text_projection, t.width, config.embed_dim));
    }
    specs
}

/// A safetensors file (bytes) with random weights of `config`'s shapes under `layout`'s names.
pub fn random_weights(config: &ClipConfig, layout: Layout, towers: TowerSelection, storage: StorageType, seed: u64) -> Vec<u8> {
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
        header.insert(s.name.clone(), serde_json::json!({"dtype": dtype, "shape": s.shape, "data_offsets": [offset, offset + bytes]}));
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
