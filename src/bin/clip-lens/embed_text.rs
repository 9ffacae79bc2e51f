//! `clip-lens embed-text`: a model's text side, computed once ([`TextEmbeddings`]): the word
//! pools and the ImageNet classes through the text tower, for `precompute --text` and the page.

use std::path::PathBuf;

use clip_lens::bundle::{sha256_hex, Storage};
use clip_lens::model::Towers;
use clip_lens::precompute::{Progress, WordList};
use clip_lens::text_embeddings::{ClassTemplates, TextEmbeddings, TextStage};
use clip_lens::{Error, Result};

use crate::common::{load_model, Bars, ModelArgs};

/// `embed-text`'s arguments.
#[derive(clap::Args)]
pub struct EmbedTextArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Word list files, one text per line (repeats kept once, in order).
    #[arg(long, num_args = 1.., required = true)]
    pub words: Vec<PathBuf>,
    /// Prompt templates per ImageNet class: 80 (CLIP's, the paper's classifier) or 1 ("a photo
    /// of a {}.", 80 times faster).
    #[arg(long, default_value_t = 80)]
    pub class_templates: usize,
    /// Store the embeddings as f16 (half the size).
    #[arg(long)]
    pub f16: bool,
    /// The file to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// `clip-lens embed-text`.
pub fn embed_text(args: &EmbedTextArgs) -> Result<()> {
    let templates = ClassTemplates::from_count(args.class_templates)?;
    let lists = args.words.iter().map(|path| WordList::read(path)).collect::<Result<Vec<_>>>()?;
    let words = clip_lens::precompute::distinct_words(&lists)?;
    let loaded = load_model(&args.model, Towers::Text)?;
    let sha256 = sha256_hex(loaded.weights.bytes());
    let sources = lists.iter().map(|list| list.source.clone()).collect();
    let mut bars = StageBars::default();
    let text = loaded.model.text()?;
    let computed = TextEmbeddings::compute(text, &sha256, words, sources, templates, |stage, done, total| {
        bars.report(stage, done, total)
    });
    let embeddings = pollster::block_on(computed)?;
    bars.bars.finish();
    let storage = if args.f16 { Storage::F16 } else { Storage::F32 };
    std::fs::write(&args.out, embeddings.to_bytes(storage)?).map_err(|e| Error::io(&args.out, e))?;
    eprintln!(
        "wrote {} words and {} classes ({} templates) of weights {sha256} to {}",
        embeddings.words.len(),
        embeddings.classes.len(),
        templates.count(),
        args.out.display()
    );
    Ok(())
}

/// One bar per stage of [`TextEmbeddings::compute`].
#[derive(Default)]
struct StageBars {
    bars: Bars,
    stage: Option<TextStage>,
}

impl StageBars {
    fn report(&mut self, stage: TextStage, done: usize, total: usize) {
        if self.stage != Some(stage) {
            self.bars.finish();
            self.bars.start(stage.label(), total, 0);
            self.stage = Some(stage);
        }
        self.bars.reach(done);
    }
}
