//! Texts to embeddings for the lens: word pools (100 x normalised) and the ImageNet zero-shot
//! classifier (80 prompt templates averaged per class).
//!
//! Reference: [`compute_text_set_projection.py`, `get_text_features`][text] for the word pools and
//! [`compute_classifier_projection.py`, `zero_shot_classifier`][classifier] for the classifier.
//!
//! [text]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_text_set_projection.py
//! [classifier]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_classifier_projection.py

mod file;

pub use file::{ClassTemplates, TextEmbeddings, TextStage, SINGLE_TEMPLATE, TEXT_FILE_FORMAT, TEXT_FILE_VERSION};

use crate::device::read_f32;
use crate::error::{Error, Result};
use crate::lens::omp::scaled_unit_rows;
use crate::model::TextTransformer;
use crate::tokenizer::ClipTokenizer;

/// The 1000 ImageNet class names, one per line.
///
/// Reference: `imagenet_classes` in [`utils/imagenet_classes.py`][classes].
///
/// [classes]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/utils/imagenet_classes.py
pub const IMAGENET_CLASSES: &str = include_str!("../../data/imagenet/classes.txt");
/// CLIP's 80 ImageNet prompt templates, `{}` standing for the class name.
///
/// Reference: `OPENAI_IMAGENET_TEMPLATES` in [`utils/openai_templates.py`][templates].
///
/// [templates]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/utils/openai_templates.py
pub const IMAGENET_TEMPLATES: &str = include_str!("../../data/imagenet/templates.txt");

/// Unnormalised text embeddings `[M, D]` of `texts`, `batch` texts per forward; `progress` is
/// told how many texts are done after each batch.
///
/// Reference: the batched `model.encode_text` of [`compute_text_set_projection.py`, `get_text_features`][text].
/// Differs: in f32, where the reference runs under `torch.cuda.amp.autocast`.
///
/// [text]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_text_set_projection.py
pub async fn embed_texts(
    text: &TextTransformer,
    tokenizer: &ClipTokenizer,
    texts: &[String],
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>> {
    let mut embeds = Vec::new();
    let mut done = 0;
    for chunk in texts.chunks(batch.max(1)) {
        let tokens = tokenizer.tokenize_batch(chunk, text.config.context_length);
        embeds.extend(read_f32(text.encode(&tokens)?).await?);
        done += chunk.len();
        progress(done);
    }
    Ok(embeds)
}

/// `100 x` normalised embeddings `[V, D]` of a word pool (the dictionary's input).
///
/// Reference: [`compute_text_set_projection.py`][text]: `get_text_features` (`F.normalize`) and `main`
/// (`args.coefficient * features`), the `*_{model}_{pretrained}.npy` that `compute_sparse_decomposition.py` loads.
///
/// [text]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_text_set_projection.py
pub async fn word_embeddings(
    text: &TextTransformer,
    tokenizer: &ClipTokenizer,
    words: &[String],
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<f32>> {
    if words.is_empty() {
        return Err(Error::InvalidInput("the word list is empty".into()));
    }
    let raw = embed_texts(text, tokenizer, words, batch, progress).await?;
    let dim = raw.len() / words.len();
    Ok(scaled_unit_rows(&raw, dim))
}

/// Unit-norm zero-shot classifier `[C, D]`: per class, the mean of the unit-normalised
/// embeddings of every template filled with the class name, normalised again (CLIP's recipe).
///
/// Reference: [`compute_classifier_projection.py`, `zero_shot_classifier`][classifier]. Differs: rows `[C, D]`
/// where the reference stacks columns `[D, C]`.
///
/// [classifier]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_classifier_projection.py
pub async fn class_embeddings(
    text: &TextTransformer,
    tokenizer: &ClipTokenizer,
    classes: &[String],
    templates: &[String],
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>> {
    if classes.is_empty() || templates.is_empty() {
        return Err(Error::InvalidInput("class names and templates must not be empty".into()));
    }
    let mut classifier = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", class)).collect();
        let raw = embed_texts(text, tokenizer, &prompts, batch, |_| {}).await?;
        let dim = raw.len() / prompts.len();
        let unit = scaled_unit_rows(&raw, dim);
        let mean: Vec<f32> =
            (0..dim).map(|d| unit.iter().skip(d).step_by(dim).sum::<f32>() / prompts.len() as f32).collect();
        classifier.extend(scaled_unit_rows(&mean, dim).into_iter().map(|x| x / crate::lens::omp::TEXT_SCALE));
        progress(i + 1);
    }
    Ok(classifier)
}

/// Non-empty, trimmed lines.
pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}
