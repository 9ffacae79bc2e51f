//! Writes the inputs of a real-sized `precompute` without downloads, to time it (unsharded and
//! sharded: `benches/shards.sh`): a random-weight CLIP of a paper shape with both towers, its
//! config.json, and N synthetic PNGs (smooth colour fields, each other).
//!
//! ```sh
//! cargo run --profile dev --example precompute_inputs OUT [IMAGES=300] [b32|b16|l14]
//! ```
//!
//! OUT gets `model.safetensors` (f16), `config.json` and `images/img00000.png`...
// A native tool: in a wasm32 build (`wasm-pack test` builds the examples too) it is empty.
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use clip_lens::synthetic::{random_weights, StorageType, TowerSelection};
use clip_lens::{ClipConfig, Layout};

/// A 256 x 256 PNG: per channel a sum of three sinusoids of random frequency and phase.
fn image(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut random = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32
    };
    let waves: Vec<[f32; 4]> = (0..9).map(|_| [random() * 0.1, random() * 0.1, random() * 6.3, random()]).collect();
    let picture = image::RgbImage::from_fn(256, 256, |x, y| {
        let channel = |c: usize| {
            let value: f32 = waves[3 * c..3 * c + 3]
                .iter()
                .map(|[fx, fy, phase, amplitude]| amplitude * (fx * x as f32 + fy * y as f32 + phase).sin())
                .sum();
            (127.5 + 60.0 * value).clamp(0.0, 255.0) as u8
        };
        image::Rgb([channel(0), channel(1), channel(2)])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut bytes, image::ImageFormat::Png).expect("encoding a PNG in memory cannot fail");
    bytes.into_inner()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: precompute_inputs OUT [IMAGES] [b32|b16|l14]")?);
    let images: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(300);
    let config = match args.next().as_deref() {
        None | Some("b32") => ClipConfig::vit_b_32(),
        Some("b16") => ClipConfig::vit_b_16(),
        Some("l14") => ClipConfig::vit_l_14(),
        Some(other) => return Err(format!("unknown shape {other} (b32, b16 or l14)").into()),
    };
    std::fs::create_dir_all(out.join("images"))?;
    let towers = TowerSelection { vision: true, text: true };
    std::fs::write(
        out.join("model.safetensors"),
        random_weights(&config, Layout::OpenAi, towers, StorageType::F16, 1),
    )?;
    std::fs::write(out.join("config.json"), config.to_hf_json().to_string())?;
    for i in 0..images {
        std::fs::write(out.join(format!("images/img{i:05}.png")), image(i as u64))?;
    }
    println!("wrote {} ({images} images)", out.display());
    Ok(())
}
