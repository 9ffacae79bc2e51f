//! The run's text side: the dictionary's word embeddings and the ImageNet classifier, taken from
//! a text-embeddings file where it holds them ([`Settings::text`]) and computed through the text
//! tower otherwise (the words the file lacks; the classes when it has other ones).

use super::driver::{Control, Progress};
use super::{Settings, TextFile};
use crate::model::ClipModel;
use crate::text_embeddings::{class_embeddings, lines, word_embeddings, ClassTemplates, IMAGENET_CLASSES};
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Result};

/// The embeddings a bundle stores of its words and classes.
pub(super) struct TextSide {
    /// `[V, D]`, the dictionary's atoms.
    pub word_embeds: Vec<f32>,
    /// The ImageNet classes, in `class_embeds` order.
    pub classes: Vec<String>,
    /// The templates each class's embedding averages.
    pub class_templates: ClassTemplates,
    /// `[C, D]`, the zero-shot classifier.
    pub class_embeds: Vec<f32>,
}

/// Words embedded per text-tower forward.
const WORD_BATCH: usize = 256;
/// Prompts embedded per text-tower forward (one class's 80 templates).
const PROMPT_BATCH: usize = 80;

/// Checks before a run that its text side can be made: the text file (if any) is of these
/// weights, and the text tower is loaded where the file does not hold everything.
pub(super) fn check(model: &ClipModel, weights_sha256: &str, settings: &Settings, words: &[String]) -> Result<()> {
    if let Some(TextFile { name, embeddings }) = &settings.text {
        embeddings.check_model(name, weights_sha256, model.config.embed_dim)?;
    }
    match tower_work(settings, words) {
        Some(what) => text_tower(model, &what).map(|_| ()),
        None => Ok(()),
    }
}

/// What a run of `settings` over `words` must embed through the text tower, in words; `None`
/// when its text file holds it all.
fn tower_work(settings: &Settings, words: &[String]) -> Option<String> {
    let Some(TextFile { name, embeddings }) = &settings.text else {
        return Some("the words and the ImageNet classes".into());
    };
    let missing = embeddings.missing_words(words).len();
    if missing > 0 {
        return Some(format!("the {missing} words that {name} lacks"));
    }
    (!embeddings.has_imagenet_classes()).then(|| format!("the ImageNet classes ({name} holds other classes)"))
}

/// Whether a run of `settings` needs the model's text tower (its text file, if any, does not
/// hold all its words and the ImageNet classes): a caller that loads the tower on demand (the
/// page's converted towers) loads it first.
pub fn text_tower_needed(settings: &Settings) -> Result<bool> {
    Ok(tower_work(settings, &super::distinct_words(&settings.words)?).is_some())
}

/// The embeddings of `words` and of the ImageNet classes for a run of `settings` over `model`
/// (after [`check`]).
pub(super) async fn text_side<C: Control>(
    model: &ClipModel,
    settings: &Settings,
    words: &[String],
    progress: &mut dyn Progress,
    control: &mut C,
) -> Result<TextSide> {
    let dim = model.config.embed_dim;
    let tokenizer = ClipTokenizer::new();
    let file = settings.text.as_ref();
    let (mut word_embeds, missing) = match file {
        Some(TextFile { name, embeddings }) => {
            let (rows, missing) = embeddings.word_rows(words);
            let found = words.len() - missing.len();
            progress.note(&format!("{found} of {} words from {name}; {} to embed", words.len(), missing.len()));
            (rows, missing)
        }
        None => (vec![0.0; words.len() * dim], (0..words.len()).collect()),
    };
    if !missing.is_empty() {
        let texts: Vec<String> = missing.iter().map(|&i| words[i].clone()).collect();
        let text = text_tower(model, &format!("{} words", texts.len()))?;
        progress.start("embedding words", texts.len(), 0);
        let embedded = word_embeddings(text, &tokenizer, &texts, WORD_BATCH, |d| progress.reach(d)).await?;
        progress.finish();
        for (row, &i) in embedded.chunks(dim).zip(&missing) {
            word_embeds[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
        control.between_steps().await?;
    }
    let classes = lines(IMAGENET_CLASSES);
    if let Some(TextFile { embeddings, .. }) = file.filter(|file| file.embeddings.has_imagenet_classes()) {
        let (class_templates, class_embeds) = (embeddings.class_templates, embeddings.class_embeds.clone());
        return Ok(TextSide { word_embeds, classes, class_templates, class_embeds });
    }
    let class_templates = ClassTemplates::All;
    let text = text_tower(model, "the ImageNet classes")?;
    progress.start("embedding ImageNet classes", classes.len(), 0);
    let class_embeds =
        class_embeddings(text, &tokenizer, &classes, &class_templates.templates(), PROMPT_BATCH, |d| progress.reach(d))
            .await?;
    progress.finish();
    control.between_steps().await?;
    Ok(TextSide { word_embeds, classes, class_templates, class_embeds })
}

/// The model's text tower, needed to embed `what`.
fn text_tower<'a>(model: &'a ClipModel, what: &str) -> Result<&'a crate::model::TextTransformer> {
    model
        .text()
        .map_err(|_| Error::InvalidInput(format!("embedding {what} needs the model's text tower, which is not loaded")))
}
