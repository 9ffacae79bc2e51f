//! The page's TypeScript types (`src/web/types.d.ts`, emitted into the wasm-bindgen glue) against
//! what they describe: every interface's fields are the keys of the engine's serialised result
//! (natively, on the fixture), and `EngineErrorKind` is every kind `Error::kind` gives.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::engine::reference_bundle;
use crate::common::*;
use clip_lens::apps::ablation::image::AblationRequest;
use clip_lens::apps::cards::{Neighbour, NeuronDistribution, TypicalBand};
use clip_lens::apps::engine::{
    AdversarialOptions, AnalyzeOptions, BuildImage, BuildOptions, BuildWords, Defaults, Engine, GpuMemory,
};
use clip_lens::bundle::{sha256_hex, Storage};
use clip_lens::device::{self, BackendKind};
use clip_lens::text_embeddings::ClassTemplates;
use clip_lens::Error;
use pollster::block_on;
use serde_json::Value;

const TYPES: &str = include_str!("../../src/web/types.d.ts");

/// Each `export interface` of [`TYPES`] with its field names (optional or not).
fn interfaces() -> BTreeMap<String, BTreeSet<String>> {
    let mut found = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for line in TYPES.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("export interface ") {
            current = Some((name.trim_end_matches(" {").to_string(), BTreeSet::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                found.insert(name, fields);
            }
        } else if let Some((_, fields)) = current.as_mut() {
            if let Some((field, _)) = line.split_once(':').filter(|_| !line.starts_with("/*") && !line.starts_with('*'))
            {
                fields.insert(field.trim_end_matches('?').to_string());
            }
        }
    }
    found
}

/// `value` as the page receives it.
fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// The keys of a serialised object, plus `extra` (the heatmaps the page gets as typed arrays).
fn keys(value: &Value, extra: &[&str]) -> BTreeSet<String> {
    let object = value.as_object().unwrap_or_else(|| panic!("not an object: {value}"));
    object.keys().cloned().chain(extra.iter().map(|k| k.to_string())).collect()
}

#[test]
fn every_interface_has_the_fields_of_what_it_describes() {
    let mut engine =
        Engine::new(MODEL_OPENAI.to_vec(), Some(CONFIG_JSON), device::cpu(), BackendKind::Cpu, usize::MAX).unwrap();
    let bundle = reference_bundle(sha256_hex(MODEL_OPENAI));
    engine.load_bundle(&bundle.manifest_json().unwrap(), bundle.tensors(Storage::F32).unwrap()).unwrap();

    let analysis = json(&block_on(engine.analyze(DETAIL_PNGS[0], &AnalyzeOptions::default())).unwrap());
    let layer = analysis["layers"].as_array().unwrap().iter().find(|l| !l["neurons"].as_array().unwrap().is_empty());
    let segmentation = json(&block_on(engine.segment("predicted", None, None)).unwrap());
    let map = json(&block_on(engine.activation_map(DETAIL_PNGS[0], 1, 4)).unwrap());
    let card = json(&engine.neuron(1, 23).unwrap());
    let heads = json(&block_on(engine.image_heads(1, 23)).unwrap());
    let neighbour = Neighbour { neuron: 4, cosine: 0.5, words: vec!["cat".into()] };
    let search = json(&block_on(engine.search("genes", 5)).unwrap());
    let options = AdversarialOptions { neurons: 20, words: 5, ..Default::default() };
    let adversarial = json(&block_on(engine.adversarial("cat", "dog", &options)).unwrap());
    let fooled = json(&block_on(engine.fooled(DETAIL_PNGS[0], "cat", "dog")).unwrap());
    let layer = layer.expect("a layer with a significant neuron");
    let words = json(&engine.word_page("genes", 3).unwrap());
    let list = json(&engine.neuron_list("1:23,1:4").unwrap());
    let ablation = json(&block_on(engine.ablate(&AblationRequest::RankOne { layer: 1 })).unwrap());
    let defaults = json(&Defaults::default());
    let build = BuildOptions {
        layers: vec![1],
        top_k: 3,
        components: 8,
        words: vec![BuildWords { source: "words.txt".into(), text: "cat".into() }],
        batch: 8,
        thumbnail_size: 64,
        model_name: "tiny".into(),
    };
    let distribution = NeuronDistribution {
        edges: vec![1.0, 2.0],
        counts: vec![3],
        percentiles: vec![(50.0, 1.5)],
        percentile_bounds: vec![Some((1.0, Some(2.0)))],
        images: 3,
        above_threshold: 1,
        share_above: 1.0 / 3.0,
    };

    let described: Vec<(&str, BTreeSet<String>)> = vec![
        ("AnalyzeOptions", keys(&json(&AnalyzeOptions::default()), &[])),
        ("AdversarialOptions", keys(&json(&AdversarialOptions::default()), &[])),
        ("Defaults", keys(&defaults, &[])),
        ("SegmentOptions", keys(&defaults["segment"], &[])),
        ("WordPageOptions", keys(&defaults["word_page"], &[])),
        ("Analysis", keys(&analysis, &[])),
        ("ClassScore", keys(&analysis["classes"][0], &[])),
        ("LayerConcepts", keys(layer, &[])),
        ("SignificantNeuron", keys(&layer["neurons"][0], &[])),
        ("CropGeometry", keys(&analysis["geometry"], &[])),
        ("AnalysisTimings", keys(&analysis["timings_ms"], &[])),
        ("Segmentation", keys(&segmentation, &["heatmap"])),
        ("RankedNeuron", keys(&segmentation["neurons"][0], &[])),
        ("ActivationMap", keys(&map, &["heatmap"])),
        ("NeuronCard", keys(&card, &[])),
        ("WordFidelity", keys(&card["fidelity"], &[])),
        ("HeadGrid", keys(&heads, &[])),
        ("HeadTerm", keys(&heads["largest"][0], &[])),
        ("Neighbour", keys(&json(&neighbour), &[])),
        ("NeuronMap", keys(&json(&engine.neuron_map(1).unwrap()), &[])),
        ("TypicalBand", keys(&json(&TypicalBand { low: 0.0, high: None, images: Vec::new() }), &[])),
        ("TopImage", keys(&card["top_images"][0], &[])),
        ("NearestClass", keys(&card["classes"][0], &[])),
        ("SearchResult", keys(&search, &[])),
        ("WordNeuron", keys(&search["word_neurons"][0], &[])),
        ("AdversarialResult", keys(&adversarial, &[])),
        ("AlignedNeuron", keys(&adversarial["neurons"][0], &[])),
        ("AdversarialWord", keys(&adversarial["words"][0], &[])),
        ("FooledResult", keys(&fooled, &[])),
        ("GpuMemory", keys(&json(&GpuMemory { bytes_in_use: 1, bytes_reserved: 2 }), &[])),
        ("BundleSummary", keys(&json(&engine.bundle_summary().unwrap()), &[])),
        ("NeuronDistribution", keys(&json(&distribution), &[])),
        ("WordPage", keys(&words, &[])),
        ("WordPageNeuron", keys(&words["neurons"][0], &[])),
        ("NeuronList", keys(&list, &[])),
        ("AblationView", keys(&ablation["before"], &[])),
        ("AblationResult", keys(&ablation, &[])),
        ("BuildOptions", keys(&json(&build), &[])),
        ("BuildWords", keys(&json(&build.words[0]), &[])),
        ("BuildImage", keys(&json(&BuildImage { name: "a.png".into(), size: 1 }), &[])),
        ("BuildMemory", keys(&json(&engine.build_memory(&build)), &[])),
        ("TextSidePlan", keys(&json(&engine.plan_text_side(&build.words, ClassTemplates::One).unwrap()), &[])),
    ];
    let declared = interfaces();
    for (name, fields) in &described {
        assert_eq!(declared.get(*name), Some(fields), "interface {name} in src/web/types.d.ts");
    }
    let checked: BTreeSet<&str> = described.iter().map(|(name, _)| *name).collect();
    let unchecked: Vec<&String> = declared.keys().filter(|name| !checked.contains(name.as_str())).collect();
    assert!(unchecked.is_empty(), "interfaces without a check here: {unchecked:?}");
}

#[test]
fn the_error_kinds_are_those_the_crate_gives() {
    let union = TYPES.lines().find_map(|l| l.strip_prefix("export type EngineErrorKind = ")).expect("EngineErrorKind");
    let declared: BTreeSet<&str> = union.trim_end_matches(';').split('|').map(|k| k.trim().trim_matches('"')).collect();
    let errors = [
        Error::NeedsTextTower,
        Error::DeviceLost(String::new()),
        Error::Device(String::new()),
        Error::io("x", "y"),
        Error::Interrupted(String::new()),
        Error::InvalidInput(String::new()),
    ];
    let given: BTreeSet<&str> = errors.iter().map(Error::kind).collect();
    assert_eq!(declared, given);
}
