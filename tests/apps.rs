#![cfg(not(target_arch = "wasm32"))]
//! The applications (classification, concept discovery) natively: against the reference where
//! it has results, against hand-computed cases elsewhere.

mod common;

use clip_lens::apps::classify::{class_index, classify};
use clip_lens::device;
use common::*;

#[test]
fn concept_discovery_matches_reference() {
    let worst = pollster::block_on(check_concept_discovery(MODEL_OPENAI, &device::cpu()));
    assert!(worst < 1e-4, "scores deviate by {worst}");
}

/// Three classes in 2-d: the image (2, 0) has cosines 1, 0.6, -1 with (1,0), (0.6,0.8), (-1,0);
/// softmax of 100 x cosine: e^0 / (e^0 + e^-40 + e^-200) for the first.
#[test]
fn classification_ranks_by_cosine_with_softmax_probabilities() {
    let names: Vec<String> = ["tabby cat", "golden retriever", "airliner"].map(String::from).to_vec();
    let classes = [1.0, 0.0, 0.6, 0.8, -1.0, 0.0];
    let top = classify(&[2.0, 0.0], &classes, &names, 2).unwrap();
    assert_eq!(top.iter().map(|c| c.index).collect::<Vec<_>>(), vec![0, 1]);
    assert!((top[0].cosine - 1.0).abs() < 1e-6 && (top[1].cosine - 0.6).abs() < 1e-6);
    let expected_first = 1.0 / (1.0 + (-40f64).exp() + (-200f64).exp());
    assert!((top[0].probability as f64 - expected_first).abs() < 1e-7);
    assert!((top[1].probability as f64 - (-40f64).exp() * expected_first).abs() < 1e-20);
    assert!(classify(&[0.0, 0.0], &classes, &names, 2).unwrap_err().to_string().contains("zero"));
    assert!(classify(&[1.0, 0.0, 0.0], &classes, &names, 2).unwrap_err().to_string().contains("do not form 3 classes"));
    assert_eq!(class_index(&names, "Golden Retriever").unwrap(), 1);
    let unknown = class_index(&names, "cat").unwrap_err().to_string();
    assert!(unknown.contains("unknown class \"cat\"") && unknown.contains("tabby cat"), "{unknown}");
}
