//! Safetensors weight files: from bytes (browser) or memory-mapped from a path (native);
//! detection of the tensor-name layout (OpenAI/open_clip or Hugging Face transformers);
//! conversion of F32, F16, BF16 and F64 storage to f32.

use std::collections::HashMap;
use std::fmt;

use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// Which naming convention a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// OpenAI `clip` / open_clip: `visual.transformer.resblocks.N.attn.in_proj_weight`,
    /// `visual.proj` stored [width, out].
    OpenAi,
    /// Hugging Face transformers `CLIPModel`: `vision_model.encoder.layers.N.self_attn.q_proj.weight`,
    /// `visual_projection.weight` stored [out, width].
    HuggingFace,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::OpenAi => "OpenAI/open_clip",
            Layout::HuggingFace => "Hugging Face",
        })
    }
}

/// Names of the tensors outside the transformer blocks, in one layout.
#[allow(missing_docs)]
pub struct TowerNames {
    pub vision_patch_embedding: &'static str,
    pub vision_class_embedding: &'static str,
    pub vision_positional_embedding: &'static str,
    pub vision_ln_pre: &'static str,
    pub vision_ln_post: &'static str,
    pub vision_projection: &'static str,
    pub vision_layer_prefix: &'static str,
    pub text_token_embedding: &'static str,
    pub text_positional_embedding: &'static str,
    pub text_ln_final: &'static str,
    pub text_projection: &'static str,
    pub text_layer_prefix: &'static str,
}

const OPENAI_NAMES: TowerNames = TowerNames {
    vision_patch_embedding: "visual.conv1.weight",
    vision_class_embedding: "visual.class_embedding",
    vision_positional_embedding: "visual.positional_embedding",
    vision_ln_pre: "visual.ln_pre",
    vision_ln_post: "visual.ln_post",
    vision_projection: "visual.proj",
    vision_layer_prefix: "visual.transformer.resblocks.",
    text_token_embedding: "token_embedding.weight",
    text_positional_embedding: "positional_embedding",
    text_ln_final: "ln_final",
    text_projection: "text_projection",
    text_layer_prefix: "transformer.resblocks.",
};

const HF_NAMES: TowerNames = TowerNames {
    vision_patch_embedding: "vision_model.embeddings.patch_embedding.weight",
    vision_class_embedding: "vision_model.embeddings.class_embedding",
    vision_positional_embedding: "vision_model.embeddings.position_embedding.weight",
    vision_ln_pre: "vision_model.pre_layrnorm",
    vision_ln_post: "vision_model.post_layernorm",
    vision_projection: "visual_projection.weight",
    vision_layer_prefix: "vision_model.encoder.layers.",
    text_token_embedding: "text_model.embeddings.token_embedding.weight",
    text_positional_embedding: "text_model.embeddings.position_embedding.weight",
    text_ln_final: "text_model.final_layer_norm",
    text_projection: "text_projection.weight",
    text_layer_prefix: "text_model.encoder.layers.",
};

/// One of CLIP's two transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tower {
    /// The image tower (ViT).
    Vision,
    /// The text tower.
    Text,
}

impl Layout {
    /// The names of the non-block tensors.
    pub fn names(&self) -> &'static TowerNames {
        match self {
            Layout::OpenAi => &OPENAI_NAMES,
            Layout::HuggingFace => &HF_NAMES,
        }
    }

    /// The prefix of every tensor of block `layer`, e.g. `visual.transformer.resblocks.3.`.
    pub fn block_prefix(&self, tower: Tower, layer: usize) -> String {
        let names = self.names();
        let prefix = match tower {
            Tower::Vision => names.vision_layer_prefix,
            Tower::Text => names.text_layer_prefix,
        };
        format!("{prefix}{layer}.")
    }

    /// The file name of a module of block `layer`, without the parameter: `module` is one of
    /// the layout-neutral names `ln_1`, `ln_2`, `mlp_in`, `mlp_out`, `attn_out`.
    pub fn layer_module(&self, tower: Tower, layer: usize, module: &str) -> String {
        let module = match (self, module) {
            (Layout::OpenAi, "ln_1") => "ln_1",
            (Layout::OpenAi, "ln_2") => "ln_2",
            (Layout::OpenAi, "mlp_in") => "mlp.c_fc",
            (Layout::OpenAi, "mlp_out") => "mlp.c_proj",
            (Layout::OpenAi, "attn_out") => "attn.out_proj",
            (Layout::HuggingFace, "ln_1") => "layer_norm1",
            (Layout::HuggingFace, "ln_2") => "layer_norm2",
            (Layout::HuggingFace, "mlp_in") => "mlp.fc1",
            (Layout::HuggingFace, "mlp_out") => "mlp.fc2",
            (Layout::HuggingFace, "attn_out") => "self_attn.out_proj",
            (_, other) => other,
        };
        format!("{}{module}", self.block_prefix(tower, layer))
    }

    /// The file name of a tensor of block `layer`: `part` is `module.param` with a
    /// layout-neutral module name (see [`Layout::layer_module`]), e.g. `mlp_in.weight`.
    pub fn layer_tensor(&self, tower: Tower, layer: usize, part: &str) -> String {
        let (module, param) = part.split_once('.').unwrap_or((part, ""));
        format!("{}.{param}", self.layer_module(tower, layer, module))
    }
}

/// Where the file's bytes live.
enum Storage {
    Owned(Vec<u8>),
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(bytes) => bytes,
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(map) => map,
        }
    }
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed safetensors file. Tensors are converted to f32 one at a time, on demand, so a
/// memory-mapped file is never copied whole.
pub struct WeightFile {
    storage: Storage,
    entries: HashMap<String, Entry>,
}

impl WeightFile {
    /// Parses a safetensors file held in memory (the browser path).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::new(Storage::Owned(bytes))
    }

    /// Memory-maps and parses a safetensors file (the native path: no full copy).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; a file modified while mapped is the caller's problem,
        // as with any memory-mapped reader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::new(Storage::Mapped(map))
    }

    fn new(storage: Storage) -> Result<Self> {
        let (header_len, metadata) = SafeTensors::read_metadata(storage.bytes()).map_err(describe_safetensors_error)?;
        let entries = Self::entries(&metadata, 8 + header_len);
        Ok(Self { storage, entries })
    }

    fn entries(metadata: &Metadata, data_start: usize) -> HashMap<String, Entry> {
        metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (start, end) = info.data_offsets;
                let entry = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + start,
                    end: data_start + end,
                };
                (name, entry)
            })
            .collect()
    }

    /// The whole file's bytes (for hashing).
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The names of all tensors in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The tensor with the most elements and its size in bytes once loaded as f32 (every
    /// tensor becomes one device buffer), or `None` for an empty file.
    pub fn largest_tensor(&self) -> Option<(&str, usize)> {
        self.entries
            .iter()
            .map(|(name, entry)| (name.as_str(), entry.shape.iter().product::<usize>() * 4))
            .max_by_key(|&(name, bytes)| (bytes, std::cmp::Reverse(name)))
    }

    /// An error naming the first tensor (the largest) that would not fit in a device buffer
    /// of `limit_bytes` once loaded as f32.
    pub fn check_buffer_limit(&self, limit_bytes: usize) -> Result<()> {
        match self.largest_tensor() {
            Some((name, bytes)) if bytes > limit_bytes => Err(Error::InvalidInput(format!(
                "the tensor `{name}` needs {:.1} MiB as f32, more than this device's largest buffer ({:.1} MiB): use the CPU backend",
                bytes as f64 / 1048576.0,
                limit_bytes as f64 / 1048576.0
            ))),
            _ => Ok(()),
        }
    }

    /// Whether a tensor is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Detects the naming convention.
    pub fn layout(&self) -> Result<Layout> {
        let has_prefix = |p: &str| self.entries.keys().any(|k| k.starts_with(p));
        if has_prefix("vision_model.") || has_prefix("text_model.") {
            Ok(Layout::HuggingFace)
        } else if has_prefix("visual.") || self.contains("token_embedding.weight") {
            Ok(Layout::OpenAi)
        } else {
            let mut sample: Vec<&str> = self.names().take(5).collect();
            sample.sort();
            Err(Error::UnknownLayout(format!(
                "expected OpenAI (`visual.*`, `token_embedding.weight`) or Hugging Face (`vision_model.*`, `text_model.*`) tensor names; found {} tensors such as {:?}",
                self.entries.len(),
                sample
            )))
        }
    }

    /// Whether the file holds an image tower.
    pub fn has_vision(&self) -> bool {
        self.layout().map(|l| self.contains(l.names().vision_class_embedding)).unwrap_or(false)
    }

    /// Whether the file holds a text tower.
    pub fn has_text(&self) -> bool {
        self.layout().map(|l| self.contains(l.names().text_token_embedding)).unwrap_or(false)
    }

    /// The number of consecutive blocks `prefix0.`, `prefix1.`, ... present.
    pub fn count_layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|l| {
                let block = format!("{prefix}{l}.");
                self.entries.keys().any(|k| k.starts_with(&block))
            })
            .count()
    }

    /// Reads a tensor as f32, checking its shape. The error names the tensor when it is
    /// missing, has another shape or is stored in an unsupported type.
    pub fn tensor(&self, name: &str, expected_shape: &[usize]) -> Result<Vec<f32>> {
        let entry = self.entry_of_shape(name, expected_shape)?;
        self.convert(name, entry)
    }

    fn entry_of_shape(&self, name: &str, expected_shape: &[usize]) -> Result<&Entry> {
        let entry = self.entry(name)?;
        if entry.shape != expected_shape {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: expected_shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        Ok(entry)
    }

    /// Reads an I32 tensor, checking its shape.
    pub fn tensor_i32(&self, name: &str, expected_shape: &[usize]) -> Result<Vec<i32>> {
        let entry = self.entry_of_shape(name, expected_shape)?;
        if entry.dtype != Dtype::I32 {
            return Err(Error::UnsupportedDtype {
                name: name.to_string(),
                dtype: format!("{:?} (expected I32)", entry.dtype),
            });
        }
        let bytes = &self.storage.bytes()[entry.start..entry.end];
        Ok(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Reads a tensor as f32 whatever its shape; returns the data and the shape.
    pub fn tensor_any_shape(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let entry = self.entry(name)?;
        Ok((self.convert(name, entry)?, entry.shape.clone()))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            layout: self.layout().map(|l| l.to_string()).unwrap_or_else(|_| "unknown".into()),
        })
    }

    fn convert(&self, name: &str, entry: &Entry) -> Result<Vec<f32>> {
        let bytes = &self.storage.bytes()[entry.start..entry.end];
        match entry.dtype {
            Dtype::F32 => Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            Dtype::F16 => Ok(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
            Dtype::BF16 => {
                Ok(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
            }
            Dtype::F64 => narrow_f64(name, bytes),
            other => Err(Error::UnsupportedDtype { name: name.to_string(), dtype: format!("{other:?}") }),
        }
    }
}

/// F64 storage (NumPy 2 writes float64 by default) narrowed to f32, to the nearest value; a
/// finite value beyond f32's range is an error that names the tensor, not an infinity.
fn narrow_f64(name: &str, bytes: &[u8]) -> Result<Vec<f32>> {
    bytes
        .chunks_exact(8)
        .map(|b| {
            let value = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let narrowed = value as f32;
            if value.is_finite() && !narrowed.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "tensor `{name}` holds {value:e}, beyond the range of f32, which the model computes in"
                )));
            }
            Ok(narrowed)
        })
        .collect()
}

fn describe_safetensors_error(err: safetensors::SafeTensorError) -> Error {
    use safetensors::SafeTensorError as E;
    let message = match err {
        E::HeaderTooSmall => "file shorter than the 8-byte header length (empty or truncated)".to_string(),
        E::InvalidHeaderLength => "header length points past the end of the file (truncated?)".to_string(),
        E::MetadataIncompleteBuffer => {
            "tensor data does not match the file size (truncated or padded file)".to_string()
        }
        E::HeaderTooLarge => "header larger than 100 MB (not a safetensors file?)".to_string(),
        E::InvalidHeader | E::InvalidHeaderDeserialization | E::InvalidHeaderStart => {
            "header is not valid safetensors JSON (not a safetensors file?)".to_string()
        }
        other => other.to_string(),
    };
    Error::InvalidSafetensors(message)
}
