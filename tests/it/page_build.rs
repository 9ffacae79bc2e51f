//! A bundle built through the engine (`Engine::build_bundle`, the page's Build view's path) with
//! the model's text side: the same files as `clip-lens precompute` over the same images.

use crate::bundle::bundle_dir;
use crate::common::*;
use crate::text_file::text_file;
use clip_lens::apps::engine::{BuildOptions, Engine};
use clip_lens::device::{self, BackendKind};
use clip_lens::precompute::{Driver, MemorySink, MemorySource, NeverStop, Progress};
use pollster::block_on;

/// Keeps the stages and notes.
#[derive(Default)]
pub(crate) struct Stages(pub Vec<String>);

impl Progress for Stages {
    fn start(&mut self, what: &str, _total: usize, _done: usize) {
        self.0.push(what.to_string());
    }
    fn advance(&mut self, _steps: usize) {}
    fn reach(&mut self, _done: usize) {}
    fn finish(&mut self) {}
    fn note(&mut self, message: &str) {
        self.0.push(message.to_string());
    }
}

pub(crate) fn fixture_images() -> MemorySource {
    FIXTURE_PNGS.iter().map(|&(name, bytes)| (name, bytes.to_vec())).collect()
}

pub(crate) fn options() -> BuildOptions {
    BuildOptions {
        layers: vec![0, 1, 2],
        top_k: 6,
        components: 8,
        words: vec![],
        batch: 16,
        thumbnail_size: 64,
        model_name: "model-openai.safetensors".into(),
    }
}

#[test]
fn a_page_build_writes_the_bundle_precompute_writes() {
    let mut engine =
        Engine::new(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON), device::cpu(), BackendKind::Cpu, usize::MAX).unwrap();
    let (source, sink) = (fixture_images(), MemorySink::new());
    let message =
        block_on(engine.build_bundle(options(), Driver::new(&source, &sink, &mut Stages::default(), &mut NeverStop)))
            .unwrap_err()
            .to_string();
    assert!(message.contains("no word list"), "{message}");
    engine.load_text_embeddings(&std::fs::read(text_file()).unwrap()).unwrap();
    let mut stages = Stages::default();
    block_on(engine.build_bundle(options(), Driver::new(&source, &sink, &mut stages, &mut NeverStop))).unwrap();
    assert!(engine.has_bundle());
    assert!(
        stages.0.iter().any(|s| s.starts_with("400 of 400 words from the model's text embeddings")),
        "{:?}",
        stages.0
    );
    assert!(!stages.0.iter().any(|s| s.starts_with("embedding")), "{:?}", stages.0);
    let files = sink.into_files();
    for name in ["lens.safetensors", "manifest.json"] {
        let expected = std::fs::read(bundle_dir().join(name)).unwrap();
        assert!(files[name] == expected, "{name} differs from precompute's");
    }
    let thumbnails = files.keys().filter(|name| name.starts_with("thumbnails/")).count();
    assert_eq!(thumbnails, std::fs::read_dir(bundle_dir().join("thumbnails")).unwrap().count());
}
