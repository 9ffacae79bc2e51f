//! Splitting a checkpoint into an image-tower and a text-tower file for the web: the page
//! downloads the image tower first and the text tower only when free text is used, and f16
//! storage halves both downloads (ViT-B/32's image tower: ~176 MB instead of ~350 MB).
//! Tensor names are kept, so each file loads like the original (`Towers::Vision` /
//! `Towers::Text`). Integer buffers (Hugging Face's `position_ids`) are dropped.

use serde::{Deserialize, Serialize};

use crate::bundle::sha256_hex;
use crate::error::{Error, Result};
use crate::tensor_file::{serialize, NamedTensor};
use crate::weights::{Layout, WeightFile};

/// How the converted tensors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// 32-bit floats: bit-exact with an f32 source.
    F32,
    /// 16-bit floats: half the size (~1e-3 relative rounding of the weights).
    F16,
}

/// One tower's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerFile {
    /// The file name (`image.safetensors` or `text.safetensors`).
    pub file: String,
    /// sha256 of the file, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// Tensors in it.
    pub tensors: usize,
}

/// `manifest.json` of a converted directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertedManifest {
    /// sha256 of the source checkpoint: the bundle's `weights_sha256` refers to it.
    pub source_sha256: String,
    /// The storage type.
    pub dtype: WeightDtype,
    /// The image tower's file.
    pub image: TowerFile,
    /// The text tower's file.
    pub text: TowerFile,
}

/// Whether a tensor belongs to the image tower (else to the text tower).
pub fn is_image_tower(name: &str, layout: Layout) -> bool {
    match layout {
        Layout::OpenAi => name.starts_with("visual."),
        Layout::HuggingFace => name.starts_with("vision_model.") || name.starts_with("visual_projection"),
    }
}

/// Splits `weights` into the two towers' safetensors bytes (`image`, `text`) and their
/// manifest (without file names' directory).
pub fn split_towers(weights: &WeightFile, dtype: WeightDtype) -> Result<(Vec<u8>, Vec<u8>, ConvertedManifest)> {
    let layout = weights.layout()?;
    if !weights.has_vision() || !weights.has_text() {
        return Err(Error::InvalidInput("converting needs a checkpoint with both towers".into()));
    }
    let (mut image, mut text) = (Vec::new(), Vec::new());
    let mut names: Vec<&str> = weights.names().collect();
    names.sort_unstable();
    for name in names {
        let (values, shape) = match weights.tensor_any_shape(name) {
            Ok(tensor) => tensor,
            Err(Error::UnsupportedDtype { .. }) => continue, // integer buffers such as `position_ids`
            Err(e) => return Err(e),
        };
        let tensor = match dtype {
            WeightDtype::F32 => NamedTensor::f32(name, &shape, values),
            WeightDtype::F16 => NamedTensor::f16(name, &shape, &values),
        };
        if is_image_tower(name, layout) {
            image.push(tensor)
        } else {
            text.push(tensor)
        }
    }
    let describe = |file: &str, bytes: &[u8], tensors: usize| TowerFile {
        file: file.to_string(),
        sha256: sha256_hex(bytes),
        bytes: bytes.len(),
        tensors,
    };
    let (image_bytes, text_bytes) = (serialize(&image)?, serialize(&text)?);
    let manifest = ConvertedManifest {
        source_sha256: sha256_hex(weights.bytes()),
        dtype,
        image: describe("image.safetensors", &image_bytes, image.len()),
        text: describe("text.safetensors", &text_bytes, text.len()),
    };
    Ok((image_bytes, text_bytes, manifest))
}
