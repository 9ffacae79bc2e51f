//! The browser benchmark (`bench.html`, `benches/browser.mjs`): the image forward of a
//! random-weight model, the lens, the page's applications through the engine, the crossings of
//! the module's boundary, and on request the matrix-product probe and a block's steps.

use burn::tensor::{Device, Tensor};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{
    create_engine, elapsed_ms, invalid, js_error, parse_options, pick_device, to_js, to_js_through_serde, JsResult,
    Result,
};
use crate::apps::engine::{self, AblationRequest, AnalyzeOptions};
use crate::apps::segment;
use crate::device::{self, read_f32};
use crate::lens::{second_order_effects, LensFactors};
use crate::model::{CaptureRequest, ClipModel, Towers};
use crate::synthetic::{gradient_png, paper_bundle_files, random_weights, StorageType, TowerSelection};
use crate::{ClipConfig, Layout, WeightFile};

/// Times the image forward of a random-weight model in this browser. `shape` is `"ViT-B/32"`,
/// `"ViT-B/16"` or `"ViT-L/14"`; returns JSON `{backend, shape, batch, runs, load_ms,
/// first_ms, mean_ms_per_image, lens}`. With `analysis` (default off: it takes about as long
/// again as the rest), the JSON also has `analysis`: the page's applications through the
/// [`engine::Engine`], one image at a time (see [`benchmark_analysis`]). With `probe` (default off) it
/// also has `matmul`: the matrix-product probe ([`crate::matmul_probe`]) on the forward's shapes
/// at batch 1 and 8, `{threads, timings: [{name, kernel, m, k, n, ms, gflops}]}`, and `steps`:
/// one block's steps timed alone at `batch` ([`crate::forward_profile`]), `[{step, ms}]`.
/// `threads` is the CPU backend's thread count ([`device::cpu_threads`]).
#[wasm_bindgen(js_name = benchmarkVision)]
pub async fn benchmark_vision(
    shape: String,
    backend: String,
    batch: usize,
    runs: usize,
    analysis: Option<bool>,
    probe: Option<bool>,
) -> JsResult<String> {
    let parts = BenchmarkParts { analysis: analysis.unwrap_or(false), probe: probe.unwrap_or(false) };
    benchmark_inner(&shape, &backend, batch.max(1), runs.max(1), parts).await.map_err(js_error)
}

/// What the benchmark times besides the forward and the lens.
struct BenchmarkParts {
    analysis: bool,
    probe: bool,
}

async fn benchmark_inner(
    shape: &str,
    backend: &str,
    batch: usize,
    runs: usize,
    parts: BenchmarkParts,
) -> Result<String> {
    let config = match shape {
        "ViT-B/32" => ClipConfig::vit_b_32(),
        "ViT-B/16" => ClipConfig::vit_b_16(),
        "ViT-L/14" => ClipConfig::vit_l_14(),
        other => return Err(invalid(format!("unknown shape `{other}`"))),
    };
    let (device, kind) = pick_device(backend).await?;
    let start = web_time::Instant::now();
    let weights = WeightFile::from_bytes(random_weights(
        &config,
        Layout::OpenAi,
        TowerSelection { vision: true, text: false },
        StorageType::F16,
        1,
    ))?;
    let model = ClipModel::load(&weights, &config, Towers::Vision, &device)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    // The analysis benchmark's engine is made from the same file (a copy, not a second draw).
    let weights = parts.analysis.then(|| weights.bytes().to_vec());
    let size = config.vision.image_size;
    let mut times = Vec::new();
    for _ in 0..=runs {
        let pixels = Tensor::<4>::ones([batch, 3, size, size], &device);
        let start = web_time::Instant::now();
        read_f32(model.vision()?.encode(pixels)?).await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let first_ms = times[0];
    let mean_ms_per_image = mean_after_first(&times) / batch as f64;
    let lens = benchmark_lens(model.vision()?, &device, batch, runs).await?;
    let steps = if parts.probe {
        Some(crate::forward_profile::block_profile(model.vision()?, &device, batch, runs).await?)
    } else {
        None
    };
    drop(model);
    let threads = device::cpu_threads();
    let mut result = serde_json::json!({"backend": kind.to_string(), "threads": threads, "shape": shape, "batch": batch, "runs": runs, "load_ms": load_ms, "first_ms": first_ms, "mean_ms_per_image": mean_ms_per_image, "lens": lens});
    if let Some(steps) = steps {
        result["steps"] = serde_json::to_value(steps).map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(weights) = weights {
        result["analysis"] = benchmark_analysis(&config, weights, backend, runs).await?;
    }
    if parts.probe {
        let timings = crate::matmul_probe::probe(&device, &config.vision, &[1, 8], runs).await?;
        result["matmul"] = serde_json::json!({"threads": threads, "timings": timings});
    }
    Ok(result.to_string())
}

/// The mean of the timed runs: all but the first (warm-up) one.
fn mean_after_first(times: &[f64]) -> f64 {
    let timed = times.get(1..).unwrap_or_default();
    timed.iter().sum::<f64>() / timed.len().max(1) as f64
}

/// The lens part of the benchmark: the factors of layer `layers - 3` (9 for ViT-B/32), then
/// per image the forward with the lens captures plus every neuron's second-order effects (read
/// back), and the cheap projection alone.
async fn benchmark_lens(
    vision: &crate::model::VisionTransformer,
    device: &Device,
    batch: usize,
    runs: usize,
) -> Result<serde_json::Value> {
    use crate::lens::{projections, ProjectionFactors};
    let layer = vision.config.layers.saturating_sub(3);
    let start = web_time::Instant::now();
    let factors = LensFactors::new(vision, layer)?;
    let (neurons, dim) = (vision.config.mlp_width, vision.projection.dims()[1]);
    let directions = Tensor::<2>::ones([neurons, dim], device).div_scalar((dim as f64).sqrt());
    let projection = ProjectionFactors::new(vision, &factors, directions, Tensor::<2>::zeros([neurons, dim], device));
    let factors_ms = start.elapsed().as_secs_f64() * 1e3;
    let size = vision.config.image_size;
    let request = CaptureRequest::for_lens(&[layer]);
    let (mut effects_ms, mut projection_ms) = (Vec::new(), Vec::new());
    for _ in 0..=runs {
        let pixels = Tensor::<4>::ones([batch, 3, size, size], device);
        let start = web_time::Instant::now();
        let output = vision.forward(pixels, &request)?;
        read_f32(second_order_effects(vision, &factors, &output)?).await?;
        effects_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = web_time::Instant::now();
        read_f32(projections(vision, &factors, &projection, &output)?).await?;
        projection_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let per_image = |times: &[f64]| mean_after_first(times) / batch as f64;
    Ok(
        serde_json::json!({"layer": layer, "form": format!("{:?}", factors.form()), "factors_ms": factors_ms, "effects_with_forward_ms_per_image": per_image(&effects_ms), "projection_ms_per_image": per_image(&projection_ms)}),
    )
}

/// Per-run timings of the analysis benchmark, in milliseconds.
#[derive(Default)]
struct AnalysisRuns {
    analysis: Vec<f64>,
    forward: Vec<f64>,
    lens: Vec<f64>,
    segmentation: Vec<f64>,
    /// Ablations on the analysed image: the first of a layer (its effects computed), another
    /// on the same layer, the layer's rank-1 reconstruction.
    ablation_first: Vec<f64>,
    ablation: Vec<f64>,
    rank_one: Vec<f64>,
    /// The results and options crossing the module's boundary, both ways (the last run's).
    conversions: Option<ConversionTimes>,
    significant_neurons: usize,
}

impl AnalysisRuns {
    /// One analysis of `image` and the segmentation of its predicted class, as the page asks.
    async fn run(&mut self, engine: &mut engine::Engine, image: &[u8]) -> Result<()> {
        let start = web_time::Instant::now();
        let analysis = engine.analyze(image, &AnalyzeOptions::default()).await?;
        self.analysis.push(elapsed_ms(start));
        self.forward.push(analysis.timings_ms.forward);
        self.lens.push(analysis.timings_ms.lens);
        self.significant_neurons = analysis.layers.iter().map(|l| l.significant_neurons.len()).sum();
        let card = engine.neuron(analysis.layers[0].layer, 0)?;
        self.conversions = Some(ConversionTimes::measure(&analysis, &card)?);
        let start = web_time::Instant::now();
        engine.segment("predicted", None, None).await?;
        self.segmentation.push(elapsed_ms(start));
        self.ablate(engine, analysis.layers[0].layer).await
    }

    /// The lab's ablations on the analysed image, each timed as the page waits for it.
    async fn ablate(&mut self, engine: &mut engine::Engine, layer: usize) -> Result<()> {
        let neurons = |list: &str| AblationRequest::Neurons { neurons: list.to_string() };
        for (request, times) in [
            (neurons(&format!("{layer}:0,{layer}:1")), &mut self.ablation_first),
            (neurons(&format!("{layer}:2")), &mut self.ablation),
            (AblationRequest::RankOne { layer }, &mut self.rank_one),
        ] {
            let start = web_time::Instant::now();
            engine.ablate(&request).await?;
            times.push(elapsed_ms(start));
        }
        Ok(())
    }
}

/// Microseconds per crossing of the module's boundary, each `[through serde-wasm-bindgen,
/// through JSON text]`: a large result (an analysis), a small one (a neuron card), options in.
#[derive(Serialize)]
struct ConversionTimes {
    analysis: [f64; 2],
    card: [f64; 2],
    options: [f64; 2],
}

impl ConversionTimes {
    /// Conversions timed this many times each.
    const TIMES: usize = 20;

    fn measure(analysis: &impl Serialize, card: &impl Serialize) -> Result<Self> {
        let options = js_sys::JSON::parse(r#"{"top_classes": 5, "top_words": 10, "neuron_words": 3}"#)
            .map_err(|_| invalid("options"))?;
        let through_serde = || -> Result<AnalyzeOptions> {
            let fields: serde_json::Value =
                serde_wasm_bindgen::from_value(options.clone()).map_err(|e| invalid(e.to_string()))?;
            serde_json::from_value(fields).map_err(|e| invalid(e.to_string()))
        };
        Ok(Self {
            analysis: Self::both_ways(analysis)?,
            card: Self::both_ways(card)?,
            options: [
                Self::time(through_serde)?,
                Self::time(|| parse_options::<AnalyzeOptions>(Some(options.clone()), "analyze"))?,
            ],
        })
    }

    /// `value` out through serde-wasm-bindgen and through JSON text ([`to_js`]).
    fn both_ways(value: &impl Serialize) -> Result<[f64; 2]> {
        Ok([Self::time(|| to_js_through_serde(value))?, Self::time(|| to_js(value))?])
    }

    /// Microseconds per call of `f`, the mean of [`Self::TIMES`].
    fn time<T>(f: impl Fn() -> Result<T>) -> Result<f64> {
        let start = web_time::Instant::now();
        for _ in 0..Self::TIMES {
            f()?;
        }
        Ok(elapsed_ms(start) * 1e3 / Self::TIMES as f64)
    }
}

/// The applications through the page's [`engine::Engine`] on `backend`, with the random-weight
/// `weights` of `config` and a synthetic bundle of the paper's sizes: the engine's creation (sha256 of the
/// weights, model load), the bundle's loading (parse, checks, lens factors and means of its
/// layers), then `runs + 1` times (the first untimed) `analyze` of a 640x480 PNG (decode,
/// forward with the lens captures, centred norms, concept discovery, top-5 classes) and
/// `segment("predicted")` (top 200 neurons of the bundle's layers, from the kept activations)
/// and three ablations on the first layer (two neurons, which computes the layer's effects; one
/// more neuron; the rank-1 reconstruction).
async fn benchmark_analysis(
    config: &ClipConfig,
    weights: Vec<u8>,
    backend: &str,
    runs: usize,
) -> Result<serde_json::Value> {
    let start = web_time::Instant::now();
    let (sizes, manifest, tensors) = paper_bundle_files(config, &weights)?;
    let synthesis_ms = elapsed_ms(start);
    let start = web_time::Instant::now();
    let mut engine = create_engine(weights, Some(&config.to_hf_json().to_string()), backend, None).await?;
    let engine_ms = elapsed_ms(start);
    let start = web_time::Instant::now();
    engine.load_bundle(&manifest, tensors)?;
    let bundle_load_ms = elapsed_ms(start);
    let image = gradient_png(640, 480);
    let mut timings = AnalysisRuns::default();
    for _ in 0..=runs {
        timings.run(&mut engine, &image).await?;
    }
    Ok(serde_json::json!({
        "layers": sizes.layers, "top_k": sizes.top_k, "components": sizes.components, "words": sizes.words, "classes": sizes.classes,
        "significant_neurons": timings.significant_neurons, "top_neurons": segment::PAPER_TOP_NEURONS,
        "synthesis_ms": synthesis_ms, "engine_ms": engine_ms, "bundle_load_ms": bundle_load_ms,
        "first_analysis_ms": timings.analysis[0], "first_segmentation_ms": timings.segmentation[0],
        "analysis_ms_per_image": mean_after_first(&timings.analysis), "forward_ms_per_image": mean_after_first(&timings.forward),
        "lens_ms_per_image": mean_after_first(&timings.lens), "segmentation_ms": mean_after_first(&timings.segmentation),
        "ablation_first_ms": mean_after_first(&timings.ablation_first), "ablation_ms": mean_after_first(&timings.ablation),
        "rank_one_ms": mean_after_first(&timings.rank_one),
        "conversions_us": timings.conversions,
    }))
}
