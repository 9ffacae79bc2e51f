//! The Build view's bindings: `Engine.buildBundle` runs `precompute` in the page
//! ([`crate::apps::engine::Engine::build_bundle`]) over images that JavaScript reads one at a
//! time (picked files, a folder, the samples), into files that JavaScript stores (the browser's
//! storage: the checkpoint survives a reload, and a build of the same images resumes from it);
//! its progress goes to a JavaScript callback, and at each yield point it awaits another one,
//! which a page can hold back (pause) or answer `false` (stop after a checkpoint).
//! `Engine.buildMemory` says what a build needs, `planTextSide` and `completeTextSide` the model's
//! text side that a build completes first.

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::storage::StorageFolder;
use super::{describe, invalid, js_error, parse_list, parse_object, to_js, Engine, JsResult, Result};
use crate::apps::engine::{self, BuildImage};
use crate::precompute::{Control, ImageEntry, ImageSource, Progress};
use crate::text_embeddings::ClassTemplates;
use crate::Error;

/// The page's images: their names and sizes, and `read(name)`, a JavaScript function that
/// returns a promise of the image's bytes (a `Uint8Array`).
struct PageImages {
    entries: Vec<ImageEntry>,
    read: Function,
}

impl PageImages {
    /// From `images`, a JavaScript array of `{name, size}`, and `read`.
    fn new(images: JsValue, read: Function) -> Result<Self> {
        let mut listed: Vec<BuildImage> = parse_list(images, "image list")?;
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = listed.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(invalid(format!("two images are named {:?}", pair[0].name)));
        }
        let entries = listed.into_iter().map(|image| ImageEntry { name: image.name, size: image.size }).collect();
        Ok(Self { entries, read })
    }
}

impl ImageSource for PageImages {
    async fn list(&self) -> Result<Vec<ImageEntry>> {
        Ok(self.entries.clone())
    }

    async fn read(&self, name: &str) -> Result<Vec<u8>> {
        let unreadable = |what: String| Error::InvalidInput(format!("{name}: cannot be read: {what}"));
        let promise = self.read.call1(&JsValue::NULL, &name.into()).map_err(|e| unreadable(describe(&e)))?;
        let bytes = JsFuture::from(Promise::resolve(&promise)).await.map_err(|e| unreadable(describe(&e)))?;
        bytes.dyn_into::<Uint8Array>().map(|array| array.to_vec()).map_err(|_| unreadable("not bytes".into()))
    }
}

/// Progress as calls of a JavaScript function with `{stage, total, done}` (a stage's steps) or
/// `{note}`.
struct PageProgress {
    report: Function,
    stage: String,
    total: usize,
    done: usize,
}

impl PageProgress {
    fn new(report: Function) -> Self {
        Self { report, stage: String::new(), total: 0, done: 0 }
    }

    fn send(&self, fields: &[(&str, JsValue)]) {
        let event = Object::new();
        for (key, value) in fields {
            let _ = Reflect::set(&event, &(*key).into(), value);
        }
        // A failing callback only loses a progress report.
        let _ = self.report.call1(&JsValue::NULL, &event);
    }

    fn send_stage(&self) {
        let (total, done) = (self.total as f64, self.done as f64);
        self.send(&[("stage", self.stage.as_str().into()), ("total", total.into()), ("done", done.into())]);
    }
}

impl Progress for PageProgress {
    fn start(&mut self, what: &str, total: usize, done: usize) {
        (self.stage, self.total, self.done) = (what.to_string(), total, done);
        self.send_stage();
    }
    fn advance(&mut self, steps: usize) {
        self.done += steps;
        self.send_stage();
    }
    fn reach(&mut self, done: usize) {
        self.done = done;
        self.send_stage();
    }
    fn finish(&mut self) {
        self.done = self.total;
        self.send_stage();
    }
    fn note(&mut self, message: &str) {
        self.send(&[("note", message.into())]);
    }
}

/// The yield point as a JavaScript function that returns a promise of `true` (go on) or
/// `false` (stop): awaiting it lets the worker's event loop run.
struct PageControl {
    ask: Function,
}

impl PageControl {
    fn new(ask: Function) -> Self {
        Self { ask }
    }

    async fn go_on(&self) -> Result<()> {
        let answer = self
            .ask
            .call0(&JsValue::NULL)
            .map_err(|e| invalid(format!("the build's control failed: {}", describe(&e))))?;
        let answer = JsFuture::from(Promise::resolve(&answer)).await.map_err(|e| invalid(describe(&e)))?;
        match answer.as_bool() {
            Some(false) => Err(Error::Interrupted("the build was stopped".into())),
            _ => Ok(()),
        }
    }
}

impl Control for PageControl {
    async fn between_batches(&mut self, _processed: usize) -> Result<()> {
        self.go_on().await
    }

    async fn between_steps(&mut self) -> Result<()> {
        self.go_on().await
    }
}

/// The Build view's bindings: a build, its memory, and the model's text side it completes first.
#[wasm_bindgen]
impl Engine {
    /// Builds a bundle from the page's images (`precompute` in the page) and makes it this
    /// engine's: `images` lists them (`{name, size}`), `read(name)` returns a promise of an
    /// image's bytes, `folder` (a folder of the browser's origin-private file system) receives
    /// the bundle and its checkpoint (a build of the same images and settings resumes from a
    /// checkpoint it finds there), `options` are the Build view's
    /// settings, `progress` is called with each stage's steps (`{stage, total, done}`) and notes
    /// (`{note}`), and `control()` is awaited between batches and steps: a promise of `false`
    /// stops the build after a checkpoint (an `interrupted` error).
    #[wasm_bindgen(js_name = buildBundle)]
    pub async fn build_bundle(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "BuildImage[]")] images: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(name: string) => Promise<Uint8Array>")] read: js_sys::Function,
        #[wasm_bindgen(unchecked_param_type = "FileSystemDirectoryHandle")] folder: JsValue,
        #[wasm_bindgen(unchecked_param_type = "BuildOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: BuildProgress) => void")] progress: js_sys::Function,
        #[wasm_bindgen(unchecked_param_type = "() => Promise<boolean>")] control: js_sys::Function,
    ) -> JsResult<()> {
        let options: engine::BuildOptions = parse_object(options, "build options").map_err(js_error)?;
        let source = PageImages::new(images, read).map_err(js_error)?;
        let sink = StorageFolder::new(folder).map_err(js_error)?;
        let (progress, control) = (&mut PageProgress::new(progress), &mut PageControl::new(control));
        let driver = crate::precompute::Driver::new(&source, &sink, progress, control);
        self.engine.build_bundle(options, driver).await.map_err(js_error)
    }

    /// The peak memory a build of `options` holds beside the model (`BuildMemory`): the page
    /// refuses a build that cannot fit, and proposes settings that do.
    #[wasm_bindgen(js_name = buildMemory, unchecked_return_type = "BuildMemory")]
    pub fn build_memory(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BuildOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let options: engine::BuildOptions = parse_object(options, "build options").map_err(js_error)?;
        to_js(&self.engine.build_memory(&options)).map_err(js_error)
    }

    /// What completing the model's text side for the word pool `words` with `classTemplates`
    /// (80 or 1) per ImageNet class would embed (`completeTextSide`): the Build view shows it,
    /// with a time, before a build.
    #[wasm_bindgen(js_name = planTextSide, unchecked_return_type = "TextSidePlan")]
    pub fn plan_text_side(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BuildWords[]")] words: JsValue,
        class_templates: usize,
    ) -> JsResult<JsValue> {
        let (words, templates) = text_side_request(words, class_templates).map_err(js_error)?;
        to_js(&self.engine.plan_text_side(&words, templates).map_err(js_error)?).map_err(js_error)
    }

    /// Embeds what the model's text side lacks for the word pool `words` and `classTemplates`
    /// per class, makes it the engine's text side, and returns it as a text-embeddings file for
    /// the page to keep; `progress` and `control` as for `buildBundle` (a stop keeps nothing).
    #[wasm_bindgen(js_name = completeTextSide)]
    pub async fn complete_text_side(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "BuildWords[]")] words: JsValue,
        class_templates: usize,
        #[wasm_bindgen(unchecked_param_type = "(event: BuildProgress) => void")] progress: js_sys::Function,
        #[wasm_bindgen(unchecked_param_type = "() => Promise<boolean>")] control: js_sys::Function,
    ) -> JsResult<Vec<u8>> {
        let (words, templates) = text_side_request(words, class_templates).map_err(js_error)?;
        let (progress, control) = (&mut PageProgress::new(progress), &mut PageControl::new(control));
        self.engine.complete_text_side(&words, templates, progress, control).await.map_err(js_error)
    }
}

/// A text-side request's word pool (a list of `{source, text}`) and template count.
fn text_side_request(words: JsValue, class_templates: usize) -> Result<(Vec<engine::BuildWords>, ClassTemplates)> {
    Ok((parse_list(words, "word pool")?, ClassTemplates::from_count(class_templates)?))
}
