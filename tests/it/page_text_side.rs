//! The model's text side completed in the page (`Engine::complete_text_side`, the Build view's
//! path for a model without a text-embeddings file): in parts, as pools are asked for, it holds
//! the reference's word embeddings and `embed-text`'s classes, and a bundle built with it is the
//! bundle `precompute` writes.

use crate::bundle::bundle_dir;
use crate::common::*;
use crate::page_build::{fixture_images, options, Stages};
use crate::text_file::text_file;
use clip_lens::apps::engine::{BuildWords, Engine, TextSidePlan};
use clip_lens::device::{self, BackendKind};
use clip_lens::precompute::{Control, Driver, MemorySink, NeverStop};
use clip_lens::text_embeddings::{ClassTemplates, TextEmbeddings};
use clip_lens::{Error, Result};
use pollster::block_on;

fn engine() -> Engine {
    Engine::new(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON), device::cpu(), BackendKind::Cpu, usize::MAX).unwrap()
}

/// The pool of the fixture's first `count` words, named as `precompute --words` names it.
fn pool(count: usize) -> Vec<BuildWords> {
    let text = WORDS.lines().take(count).collect::<Vec<_>>().join("\n");
    vec![BuildWords { source: words_source(), text }]
}

fn words_source() -> String {
    fixture_path("words.txt").display().to_string()
}

fn plan(words: usize, classes: usize, templates: usize) -> TextSidePlan {
    TextSidePlan { words, classes, templates, prompts: words + classes * templates }
}

fn complete(engine: &mut Engine, pool: &[BuildWords], templates: ClassTemplates) -> (TextEmbeddings, Vec<String>) {
    let mut stages = Stages::default();
    let bytes = block_on(engine.complete_text_side(pool, templates, &mut stages, &mut NeverStop)).unwrap();
    (TextEmbeddings::from_bytes(&bytes).unwrap(), stages.0)
}

#[test]
fn the_text_side_grows_with_the_pools_asked_for_and_holds_the_reference_embeddings() {
    let mut engine = engine();
    assert_eq!(engine.plan_text_side(&pool(250), ClassTemplates::One).unwrap(), plan(250, 1000, 1));
    let (first, stages) = complete(&mut engine, &pool(250), ClassTemplates::One);
    assert_eq!(stages, ["embedding words", "embedding ImageNet classes"]);
    assert_eq!((first.words.len(), first.class_templates), (250, ClassTemplates::One));
    // The whole pool with the paper's 80 templates: only the 150 new words, and the classes again.
    assert_eq!(engine.plan_text_side(&pool(400), ClassTemplates::All).unwrap(), plan(150, 1000, 80));
    let (whole, _) = complete(&mut engine, &pool(400), ClassTemplates::All);
    assert_eq!(whole.words, WORDS.lines().map(str::to_string).collect::<Vec<_>>());
    assert_eq!(whole.word_sources, [words_source()]);
    assert_eq!(whole.weights_sha256, clip_lens::bundle::sha256_hex(MODEL_OPENAI));
    assert_eq!(whole.word_embeds[..250 * 32], first.word_embeds[..]);
    let deviation = relative_deviation(&whole.word_embeds, &expected()["word_embeds"].values);
    assert!(deviation < MODEL_TOLERANCE, "word embeddings deviate from the reference by {deviation}");
    let cli = TextEmbeddings::from_bytes(&std::fs::read(text_file()).unwrap()).unwrap();
    assert_eq!((whole.classes.clone(), whole.class_templates), (cli.classes.clone(), ClassTemplates::All));
    assert!(whole.class_embeds == cli.class_embeds, "the classes differ from embed-text's");
    // Nothing is left to embed, for either template count (80 serve a build that asks for 1).
    for templates in [ClassTemplates::All, ClassTemplates::One] {
        assert_eq!(engine.plan_text_side(&pool(400), templates).unwrap(), plan(0, 0, templates.count()));
    }
}

#[test]
fn a_bundle_built_with_the_text_side_completed_in_the_page_is_precomputes() {
    let mut engine = engine();
    complete(&mut engine, &pool(400), ClassTemplates::All);
    let (source, sink) = (fixture_images(), MemorySink::new());
    let mut stages = Stages::default();
    block_on(engine.build_bundle(options(), Driver::new(&source, &sink, &mut stages, &mut NeverStop))).unwrap();
    assert!(!stages.0.iter().any(|s| s.starts_with("embedding")), "{:?}", stages.0);
    let files = sink.into_files();
    for name in ["lens.safetensors", "manifest.json"] {
        let expected = std::fs::read(bundle_dir().join(name)).unwrap();
        assert!(files[name] == expected, "{name} differs from precompute's");
    }
}

/// Stops at the first yield point.
struct StopAtOnce;

impl Control for StopAtOnce {
    async fn between_batches(&mut self, _processed: usize) -> Result<()> {
        Ok(())
    }
    async fn between_steps(&mut self) -> Result<()> {
        Err(Error::Interrupted("stopped".into()))
    }
}

#[test]
fn a_stopped_text_side_keeps_nothing_and_an_empty_pool_is_refused() {
    let mut engine = engine();
    let stopped =
        block_on(engine.complete_text_side(&pool(400), ClassTemplates::One, &mut Stages::default(), &mut StopAtOnce));
    assert!(matches!(stopped, Err(Error::Interrupted(_))), "{stopped:?}");
    assert!(!engine.has_text_embeddings());
    let empty = [BuildWords { source: "empty.txt".into(), text: "\n  \n".into() }];
    let message = engine.plan_text_side(&empty, ClassTemplates::One).unwrap_err().to_string();
    assert!(message.contains("empty.txt") || message.contains("no words"), "{message}");
}
