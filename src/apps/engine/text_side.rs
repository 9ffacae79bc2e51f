//! The model's text side completed in the page (the Build view, for a model without a
//! text-embeddings file, or one that lacks the words of the pool asked for): the words it lacks
//! and, where it has fewer templates than asked, the ImageNet classes are embedded through the
//! text tower and added to it. The page keeps the result per model (its weights' sha256), so a
//! model's text side is computed once and grows with the pools its builds ask for.

use std::sync::Arc;

use serde::Serialize;

use super::{BuildWords, Engine};
use crate::error::Result;
use crate::model::TextTransformer;
use crate::precompute::{distinct_words, Control, Progress, WordList};
use crate::text_embeddings::{
    class_embeddings, lines, word_embeddings, ClassTemplates, TextEmbeddings, TextStage, IMAGENET_CLASSES,
};
use crate::tokenizer::ClipTokenizer;

/// Words embedded between two yield points (one text-tower forward each).
const WORD_BATCH: usize = 256;
/// Classes embedded between two yield points (one forward of their prompts each).
const CLASS_BATCH: usize = 4;

/// What completing the text side for a pool takes (`TextSidePlan` in TypeScript): the page
/// shows it, with a time, before the build starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TextSidePlan {
    /// Words of the pool that the text side lacks.
    pub words: usize,
    /// ImageNet classes to embed: all of them, or none.
    pub classes: usize,
    /// Templates per class.
    pub templates: usize,
    /// Prompts through the text tower in all (words, then classes x templates).
    pub prompts: usize,
}

impl TextSidePlan {
    fn new(missing_words: usize, classes_needed: bool, templates: ClassTemplates) -> Self {
        let classes = if classes_needed { lines(IMAGENET_CLASSES).len() } else { 0 };
        let templates = templates.count();
        Self { words: missing_words, classes, templates, prompts: missing_words + classes * templates }
    }
}

/// The words of `words` that `current` lacks, in order (all of them without a text side).
fn missing_words(current: Option<&TextEmbeddings>, words: Vec<String>) -> Vec<String> {
    match current {
        Some(text) => text.missing_words(&words).into_iter().map(|i| words[i].clone()).collect(),
        None => words,
    }
}

/// Whether the classes must be embedded: none yet, other classes, or fewer templates than
/// asked (a text side with the paper's 80 serves a build that asks for 1).
fn classes_needed(current: Option<&TextEmbeddings>, templates: ClassTemplates) -> bool {
    current.is_none_or(|text| !text.has_imagenet_classes() || text.class_templates.count() < templates.count())
}

/// The pool's words, without repeats, and where they came from.
fn pool_words(pool: &[BuildWords]) -> Result<(Vec<String>, Vec<String>)> {
    let lists: Vec<WordList> = pool.iter().cloned().map(WordList::from).collect();
    Ok((distinct_words(&lists)?, pool.iter().map(|list| list.source.clone()).collect()))
}

impl Engine {
    /// What [`Engine::complete_text_side`] would embed for `pool` and `templates`.
    pub fn plan_text_side(&self, pool: &[BuildWords], templates: ClassTemplates) -> Result<TextSidePlan> {
        let current = self.text_side.as_deref();
        let missing = missing_words(current, pool_words(pool)?.0);
        Ok(TextSidePlan::new(missing.len(), classes_needed(current, templates), templates))
    }

    /// Embeds what the text side lacks for `pool` and `templates` (see [`TextSidePlan`]), makes
    /// the result the engine's text side, and returns it as a text-embeddings file (f32, as
    /// `clip-lens embed-text` writes it), for the page to keep. Needs the text tower
    /// ([`crate::error::Error::NeedsTextTower`] before any work for converted towers) unless
    /// nothing is missing. `progress` sees one stage per kind of text; `control` is awaited
    /// between batches (a stop ends it with nothing kept).
    pub async fn complete_text_side<C: Control>(
        &mut self,
        pool: &[BuildWords],
        templates: ClassTemplates,
        progress: &mut dyn Progress,
        control: &mut C,
    ) -> Result<Vec<u8>> {
        let (words, sources) = pool_words(pool)?;
        let missing = missing_words(self.text_side.as_deref(), words);
        let with_classes = classes_needed(self.text_side.as_deref(), templates);
        let (mut word_embeds, mut class_embeds) = (Vec::new(), None);
        if !missing.is_empty() || with_classes {
            self.ensure_text_tower()?;
            let tower = self.model.text()?;
            word_embeds = embed_words(tower, &missing, progress, control).await?;
            if with_classes {
                class_embeds = Some(embed_classes(tower, templates, progress, control).await?);
            }
        }
        // Embedded: the held text side grows (taken out of its Arc, copied only if shared).
        let mut text = match self.text_side.take() {
            Some(held) => Arc::unwrap_or_clone(held),
            None => empty_text_side(&self.weights_sha256, self.model.config.embed_dim),
        };
        text.word_embeds.extend(word_embeds);
        text.words.extend(missing);
        if let Some(class_embeds) = class_embeds {
            (text.classes, text.class_templates, text.class_embeds) =
                (lines(IMAGENET_CLASSES), templates, class_embeds);
        }
        for source in sources {
            if !text.word_sources.contains(&source) {
                text.word_sources.push(source);
            }
        }
        let text = Arc::new(text);
        self.text_side = Some(Arc::clone(&text));
        text.to_bytes(crate::bundle::Storage::F32)
    }
}

/// A text side with nothing in it yet, of the weights with `weights_sha256`.
fn empty_text_side(weights_sha256: &str, embed_dim: usize) -> TextEmbeddings {
    TextEmbeddings {
        weights_sha256: weights_sha256.to_string(),
        embed_dim,
        word_sources: Vec::new(),
        words: Vec::new(),
        word_embeds: Vec::new(),
        classes: Vec::new(),
        class_templates: ClassTemplates::All,
        class_embeds: Vec::new(),
    }
}

/// The dictionary's atoms of `words`, [`WORD_BATCH`] at a time with a yield point between.
async fn embed_words<C: Control>(
    tower: &TextTransformer,
    words: &[String],
    progress: &mut dyn Progress,
    control: &mut C,
) -> Result<Vec<f32>> {
    let mut embeds = Vec::new();
    if words.is_empty() {
        return Ok(embeds);
    }
    let tokenizer = ClipTokenizer::new();
    progress.start(TextStage::Words.label(), words.len(), 0);
    for chunk in words.chunks(WORD_BATCH) {
        embeds.extend(word_embeddings(tower, &tokenizer, chunk, WORD_BATCH, |_| {}).await?);
        progress.advance(chunk.len());
        control.between_steps().await?;
    }
    progress.finish();
    Ok(embeds)
}

/// The zero-shot classifier of the ImageNet classes with `templates`, [`CLASS_BATCH`] classes
/// at a time with a yield point between.
async fn embed_classes<C: Control>(
    tower: &TextTransformer,
    templates: ClassTemplates,
    progress: &mut dyn Progress,
    control: &mut C,
) -> Result<Vec<f32>> {
    let (tokenizer, classes, prompts) = (ClipTokenizer::new(), lines(IMAGENET_CLASSES), templates.templates());
    let mut embeds = Vec::new();
    progress.start(TextStage::Classes.label(), classes.len(), 0);
    for chunk in classes.chunks(CLASS_BATCH) {
        embeds.extend(class_embeddings(tower, &tokenizer, chunk, &prompts, 80, |_| {}).await?);
        progress.advance(chunk.len());
        control.between_steps().await?;
    }
    progress.finish();
    Ok(embeds)
}
