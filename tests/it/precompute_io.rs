//! `precompute` through its library API on the fixture's 48 PNGs: it reports its stages and
//! writes the command's bundle; in memory (`MemorySource`, `MemorySink`) it writes the files
//! that the folder and directory run writes, byte for byte; the control's yield point comes
//! between batches and stops a run with a checkpoint, from which the run resumes to the same
//! files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use crate::common::*;
use clip_lens::bundle::{sha256_hex, Bundle};
use clip_lens::precompute::{
    precompute, BundleSink, Control, DirectorySink, Driver, FolderSource, ImageSource, MemorySink, MemorySource,
    NeverStop, Progress, Settings, WordList,
};
use clip_lens::{Error, Result};

fn settings() -> Settings {
    Settings {
        layers: vec![0, 1, 2],
        top_k: 6,
        words: vec![WordList::read(&fixture_path("words.txt")).unwrap()],
        text: None,
        components: 8,
        batch: 16,
        storage: clip_lens::bundle::Storage::F32,
        thumbnail_size: 64,
        checkpoint_seconds: 3600,
        restart: false,
        model_name: "model-openai.safetensors".into(),
        interrupt_after: None,
        crash_after: None,
    }
}

/// Keeps the notes.
#[derive(Default)]
struct Notes(Vec<String>);

impl Progress for Notes {
    fn start(&mut self, _what: &str, _total: usize, _done: usize) {}
    fn advance(&mut self, _steps: usize) {}
    fn reach(&mut self, _done: usize) {}
    fn finish(&mut self) {}
    fn note(&mut self, message: &str) {
        self.0.push(message.to_string());
    }
}

/// Records the yield points; stops the run at the `stop_at`-th batch.
#[derive(Default)]
struct Recorder {
    /// `processed` of each call between batches.
    batches: Vec<usize>,
    /// Calls between the later steps.
    steps: usize,
    stop_at: Option<usize>,
}

impl Control for Recorder {
    async fn between_batches(&mut self, processed: usize) -> Result<()> {
        self.batches.push(processed);
        if self.stop_at == Some(self.batches.len()) {
            return Err(Error::Interrupted("the test stops here".into()));
        }
        Ok(())
    }

    async fn between_steps(&mut self) -> Result<()> {
        self.steps += 1;
        Ok(())
    }
}

fn run<S: ImageSource, K: BundleSink, C: Control>(
    source: &S,
    sink: &K,
    progress: &mut dyn Progress,
    control: &mut C,
) -> Result<clip_lens::bundle::Bundle> {
    let device = clip_lens::device::cpu();
    let model = load(MODEL_OPENAI, clip_lens::Towers::Both, &device);
    let driver = Driver::new(source, sink, progress, control);
    pollster::block_on(precompute(&model, &device, &sha256_hex(MODEL_OPENAI), &settings(), driver))
}

/// Every file under `dir`, by its name relative to `dir` (with `/`).
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_str().unwrap().replace('\\', "/");
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The files of the folder-to-directory run, once for the tests of this file.
fn directory_files() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("clip-lens-precompute-io-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let (source, sink) = (FolderSource::new(fixture_path("images")), DirectorySink::new(&out));
        run(&source, &sink, &mut Notes::default(), &mut NeverStop).unwrap();
        let files = files_under(&out);
        std::fs::remove_dir_all(&out).ok();
        files
    })
}

/// The fixture's images, in memory under their file names.
fn memory_source() -> MemorySource {
    std::fs::read_dir(fixture_path("images"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn a_run_in_memory_writes_the_directory_runs_files() {
    let expected = directory_files();
    assert!(expected.contains_key("manifest.json") && expected.contains_key("lens.safetensors"));
    assert!(expected.keys().any(|name| name.starts_with("thumbnails/")));
    let sink = MemorySink::new();
    let mut control = Recorder::default();
    run(&memory_source(), &sink, &mut Notes::default(), &mut control).unwrap();
    // 48 images in batches of 16, twice; no `.precompute-checkpoint.safetensors` left.
    assert_eq!(control.batches, [16, 32, 48, 64, 80, 96]);
    assert!(control.steps >= 2 + 3, "{} steps", control.steps);
    let written = sink.into_files();
    assert_eq!(written.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (name, bytes) in expected {
        assert!(written[name] == *bytes, "{name} differs");
    }
}

#[test]
fn the_yield_point_stops_a_run_that_resumes_to_the_same_files() {
    let (source, sink) = (memory_source(), MemorySink::new());
    let mut stopping = Recorder { stop_at: Some(2), ..Recorder::default() };
    let stopped = run(&source, &sink, &mut Notes::default(), &mut stopping).unwrap_err();
    assert!(matches!(stopped, Error::Interrupted(_)), "{stopped}");
    assert!(stopped.to_string().contains("progress saved to .precompute-checkpoint.safetensors (pass 1/2, 32 done)"));
    assert_eq!(stopping.batches, [16, 32]);
    assert_eq!(sink.names(), [".precompute-checkpoint.safetensors"]);

    let (mut notes, mut control) = (Notes::default(), Recorder::default());
    run(&source, &sink, &mut notes, &mut control).unwrap();
    assert_eq!(notes.0, ["resuming from the checkpoint: pass 1/2 at image 32/48"]);
    assert_eq!(control.batches, [16, 32, 48, 64], "the last batch of pass 1, then pass 2");
    assert!(sink.into_files() == *directory_files(), "the resumed run wrote other files");
}

/// A [`clip_lens::precompute::Progress`] that records its stages and notes.
#[derive(Default)]
struct Recorded {
    stages: Vec<(String, usize)>,
    steps: usize,
    notes: Vec<String>,
}

impl Progress for Recorded {
    fn start(&mut self, what: &str, total: usize, _done: usize) {
        self.stages.push((what.to_string(), total));
    }
    fn advance(&mut self, steps: usize) {
        self.steps += steps;
    }
    fn reach(&mut self, _done: usize) {}
    fn finish(&mut self) {}
    fn note(&mut self, message: &str) {
        self.notes.push(message.to_string());
    }
}

/// The library's `precompute` (what the CLI calls) reports each stage to its progress callback
/// and writes the same bundle as the command.
#[test]
fn precompute_in_the_library_reports_its_stages_and_matches_the_command() {
    let out = std::env::temp_dir().join(format!("clip-lens-library-bundle-{}", std::process::id()));
    let settings = Settings { checkpoint_seconds: 60, ..settings() };
    let model = load(MODEL_OPENAI, clip_lens::Towers::Both, &clip_lens::device::cpu());
    let mut progress = Recorded::default();
    let (source, sink, mut control) = (FolderSource::new(fixture_path("images")), DirectorySink::new(&out), NeverStop);
    let driver = Driver::new(&source, &sink, &mut progress, &mut control);
    let device = clip_lens::device::cpu();
    let bundle = pollster::block_on(precompute(&model, &device, &sha256_hex(MODEL_OPENAI), &settings, driver)).unwrap();
    let stages: Vec<&str> = progress.stages.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(
        stages,
        [
            "pass 1/2 (means)",
            "pass 2/2 (top-k)",
            "embedding words",
            "embedding ImageNet classes",
            "sparse decompositions (OMP)",
            "heads, neighbours and maps",
            "thumbnails"
        ]
    );
    assert_eq!(progress.stages[0].1, 48);
    assert!(progress.steps >= 2 * 48 + 6, "{} steps", progress.steps);
    assert!(progress.notes.is_empty(), "{:?}", progress.notes);
    let command = Bundle::read(crate::bundle::bundle_dir()).unwrap();
    assert_eq!(Bundle::read(&out).unwrap().manifest, bundle.manifest);
    assert_eq!(bundle.manifest.top_images, command.manifest.top_images);
    for layer in [0, 1, 2] {
        assert_eq!(bundle.layers[&layer].mean, command.layers[&layer].mean, "layer {layer} means");
        assert_eq!(bundle.layers[&layer].direction, command.layers[&layer].direction, "layer {layer} directions");
    }
    std::fs::remove_dir_all(&out).ok();
}
