//! The text side of a model, computed once (`clip-lens embed-text`, or the page) and kept in a
//! safetensors file: the word pools' embeddings (the dictionary's atoms) and the ImageNet
//! zero-shot classifier, tagged with the sha256 of the weights they came from. `precompute
//! --text` and the page take what it holds instead of running the text tower again (on ViT-B/32
//! and 2 cores the 1000 classes x 80 templates alone take 8 minutes a run).
//!
//! The file: tensors `words.embeds` `[V, D]` (100 x unit rows, as a bundle's) and
//! `classes.embeds` `[C, D]` (f32, or f16 when written so), and its `__metadata__`: `format`
//! ([`TEXT_FILE_FORMAT`]), `format_version`, `weights_sha256`, `class_templates` (80: CLIP's
//! templates averaged; 1: "a photo of a {}." alone), and the JSON lists `words`, `word_sources`
//! and `classes`.

use std::collections::HashMap;

use super::{class_embeddings, lines, word_embeddings, IMAGENET_CLASSES, IMAGENET_TEMPLATES};
use crate::bundle::Storage;
use crate::error::{Error, Result};
use crate::model::TextTransformer;
use crate::tensor_file::{deserialize, lookup, serialize_with_metadata, NamedTensor};
use crate::tokenizer::ClipTokenizer;

/// The `format` in a text-embeddings file's metadata.
pub const TEXT_FILE_FORMAT: &str = "clip-lens text embeddings";

/// The text-embeddings file format this code writes and reads.
pub const TEXT_FILE_VERSION: u32 = 1;

/// The template of a one-template classifier (the quick setting): CLIP's plain prompt.
pub const SINGLE_TEMPLATE: &str = "a photo of a {}.";

/// How many prompt templates make a class's embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassTemplates {
    /// CLIP's 80 ImageNet templates, averaged (the paper's classifier).
    #[default]
    All,
    /// [`SINGLE_TEMPLATE`] alone: 80 times fewer text-tower passes, a slightly weaker classifier.
    One,
}

impl ClassTemplates {
    /// The count written in files and manifests (80 or 1).
    pub fn count(self) -> usize {
        match self {
            Self::All => lines(IMAGENET_TEMPLATES).len(),
            Self::One => 1,
        }
    }

    /// From a count: 80 or 1.
    pub fn from_count(count: usize) -> Result<Self> {
        match count {
            1 => Ok(Self::One),
            n if n == Self::All.count() => Ok(Self::All),
            n => Err(Error::InvalidInput(format!("{n} class templates: use 80 (CLIP's) or 1 (\"{SINGLE_TEMPLATE}\")"))),
        }
    }

    /// The templates, `{}` standing for the class name.
    pub fn templates(self) -> Vec<String> {
        match self {
            Self::All => lines(IMAGENET_TEMPLATES),
            Self::One => vec![SINGLE_TEMPLATE.to_string()],
        }
    }
}

/// A stage of [`TextEmbeddings::compute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextStage {
    /// The word pools.
    Words,
    /// The ImageNet classes.
    Classes,
}

impl TextStage {
    /// What a progress bar calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Words => "embedding words",
            Self::Classes => "embedding ImageNet classes",
        }
    }
}

/// A model's text side: its word pools' and ImageNet classes' embeddings.
#[derive(Clone, PartialEq)]
pub struct TextEmbeddings {
    /// The sha256 of the weights they came from (a bundle's `weights_sha256`).
    pub weights_sha256: String,
    /// The embedding dimension D.
    pub embed_dim: usize,
    /// Where the words came from (file names), in order.
    pub word_sources: Vec<String>,
    /// The words, without repeats, in `word_embeds` order.
    pub words: Vec<String>,
    /// `[V, D]`: each word's embedding, unit norm times 100 (the dictionary's atoms).
    pub word_embeds: Vec<f32>,
    /// The ImageNet classes, in `class_embeds` order.
    pub classes: Vec<String>,
    /// The templates each class's embedding averages.
    pub class_templates: ClassTemplates,
    /// `[C, D]`: the zero-shot classifier.
    pub class_embeds: Vec<f32>,
}

/// Sizes only: the embeddings are millions of numbers.
impl std::fmt::Debug for TextEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEmbeddings")
            .field("weights_sha256", &self.weights_sha256)
            .field("embed_dim", &self.embed_dim)
            .field("word_sources", &self.word_sources)
            .field("words", &self.words.len())
            .field("classes", &self.classes.len())
            .field("class_templates", &self.class_templates.count())
            .finish()
    }
}

fn file_error(message: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("text embeddings file: {message}"))
}

/// An error of a part of the file, said as the file's.
fn inner_error(error: Error) -> Error {
    match error {
        Error::InvalidInput(message) => file_error(message),
        other => file_error(other),
    }
}

impl TextEmbeddings {
    /// Embeds `words` (from `word_sources`) and the 1000 ImageNet classes with `templates`
    /// through the text tower of the weights with `weights_sha256`; `progress` is told each
    /// stage's steps done and its total.
    pub async fn compute(
        text: &TextTransformer,
        weights_sha256: &str,
        words: Vec<String>,
        word_sources: Vec<String>,
        templates: ClassTemplates,
        mut progress: impl FnMut(TextStage, usize, usize),
    ) -> Result<Self> {
        let tokenizer = ClipTokenizer::new();
        let total = words.len();
        let word_embeds =
            word_embeddings(text, &tokenizer, &words, 256, |done| progress(TextStage::Words, done, total)).await?;
        let classes = lines(IMAGENET_CLASSES);
        let (prompts, total) = (templates.templates(), classes.len());
        let class_embeds = class_embeddings(text, &tokenizer, &classes, &prompts, 80, |done| {
            progress(TextStage::Classes, done, total)
        })
        .await?;
        let embed_dim = word_embeds.len() / words.len();
        Ok(Self {
            weights_sha256: weights_sha256.to_string(),
            embed_dim,
            word_sources,
            words,
            word_embeds,
            classes,
            class_templates: templates,
            class_embeds,
        })
    }

    /// The file's bytes, the embeddings stored as `storage`.
    pub fn to_bytes(&self, storage: Storage) -> Result<Vec<u8>> {
        let d = self.embed_dim;
        let tensor = |name: &str, rows: usize, values: &[f32]| match storage {
            Storage::F32 => NamedTensor::f32(name, &[rows, d], values.to_vec()),
            Storage::F16 => NamedTensor::f16(name, &[rows, d], values),
        };
        let tensors = [
            tensor("words.embeds", self.words.len(), &self.word_embeds),
            tensor("classes.embeds", self.classes.len(), &self.class_embeds),
        ];
        let json = |list: &[String]| serde_json::to_string(list).unwrap_or_default();
        let metadata = HashMap::from([
            ("format".to_string(), TEXT_FILE_FORMAT.to_string()),
            ("format_version".to_string(), TEXT_FILE_VERSION.to_string()),
            ("weights_sha256".to_string(), self.weights_sha256.clone()),
            ("class_templates".to_string(), self.class_templates.count().to_string()),
            ("words".to_string(), json(&self.words)),
            ("word_sources".to_string(), json(&self.word_sources)),
            ("classes".to_string(), json(&self.classes)),
        ]);
        serialize_with_metadata(&tensors, Some(metadata))
    }

    /// Reads a file written by [`TextEmbeddings::to_bytes`], checking its format, its lists and
    /// every tensor's shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (tensors, metadata) = deserialize(bytes).map_err(inner_error)?;
        let field = |key: &str| metadata.get(key).ok_or_else(|| file_error(format!("its metadata has no `{key}`")));
        if field("format")? != TEXT_FILE_FORMAT {
            return Err(file_error(format!("its format is `{}`, not `{TEXT_FILE_FORMAT}`", field("format")?)));
        }
        let version = field("format_version")?;
        if version.parse::<u32>().ok() != Some(TEXT_FILE_VERSION) {
            return Err(file_error(format!(
                "format version {version}, this build reads version {TEXT_FILE_VERSION}: embed the text again with `clip-lens embed-text`"
            )));
        }
        let list = |key: &str| -> Result<Vec<String>> {
            serde_json::from_str(field(key)?)
                .map_err(|e| file_error(format!("`{key}` is not a JSON list of texts: {e}")))
        };
        let (words, classes) = (list("words")?, list("classes")?);
        if words.is_empty() {
            return Err(file_error("it holds no words"));
        }
        let count = field("class_templates")?;
        let class_templates = ClassTemplates::from_count(
            count.parse().map_err(|_| file_error(format!("class_templates `{count}` is not a number")))?,
        )
        .map_err(inner_error)?;
        let word_tensor = lookup(&tensors, "words.embeds").map_err(inner_error)?;
        let embed_dim = match word_tensor.shape.as_slice() {
            [_, d] if *d > 0 => *d,
            shape => {
                return Err(file_error(format!("`words.embeds` has shape {shape:?}, expected [words, dimension]")))
            }
        };
        let rows = |name: &str, count: usize| {
            lookup(&tensors, name).and_then(|t| t.f32_values(&[count, embed_dim])).map_err(inner_error)
        };
        Ok(Self {
            weights_sha256: field("weights_sha256")?.clone(),
            embed_dim,
            word_sources: list("word_sources")?,
            word_embeds: rows("words.embeds", words.len())?,
            class_embeds: rows("classes.embeds", classes.len())?,
            words,
            classes,
            class_templates,
        })
    }

    /// Checks that the file came from the weights with `weights_sha256` and has their
    /// dimension; `name` names the file in the message.
    pub fn check_model(&self, name: &str, weights_sha256: &str, embed_dim: usize) -> Result<()> {
        if self.weights_sha256 != weights_sha256 {
            return Err(Error::InvalidInput(format!(
                "{name} holds the text embeddings of other weights (sha256 {}), not of these (sha256 {weights_sha256})",
                self.weights_sha256
            )));
        }
        if self.embed_dim != embed_dim {
            return Err(Error::InvalidInput(format!(
                "{name} holds {}-dimensional embeddings, the model's are {embed_dim}-dimensional",
                self.embed_dim
            )));
        }
        Ok(())
    }

    /// Rows `[words.len(), D]` for `words` from the file (zeros where it lacks a word), and the
    /// positions in `words` of those it lacks.
    pub fn word_rows(&self, words: &[String]) -> (Vec<f32>, Vec<usize>) {
        let d = self.embed_dim;
        let index = self.word_index();
        let mut rows = vec![0.0; words.len() * d];
        let mut missing = Vec::new();
        for (i, word) in words.iter().enumerate() {
            match index.get(word.as_str()) {
                Some(&row) => rows[i * d..(i + 1) * d].copy_from_slice(&self.word_embeds[row * d..(row + 1) * d]),
                None => missing.push(i),
            }
        }
        (rows, missing)
    }

    /// The positions in `words` of those the file lacks (no rows copied).
    pub fn missing_words(&self, words: &[String]) -> Vec<usize> {
        let index = self.word_index();
        (0..words.len()).filter(|&i| !index.contains_key(words[i].as_str())).collect()
    }

    /// Each word's row.
    fn word_index(&self) -> HashMap<&str, usize> {
        self.words.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect()
    }

    /// Whether its classes are the ImageNet classes this build classifies with, in order.
    pub fn has_imagenet_classes(&self) -> bool {
        self.classes == lines(IMAGENET_CLASSES)
    }
}
