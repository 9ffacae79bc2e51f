//! The applications (classification, concept discovery) natively: against the reference where
//! it has results, against hand-computed cases elsewhere.

use crate::common::*;
use clip_lens::apps::classify::{class_index, classify};
use clip_lens::device;

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

/// A hand-made bundle in 2-d: class 0 "boat" = (1, 0), class 1 "car" = (0, 1), d = (1, -1).
/// Neurons of layer 5: r0 = (1, 0) (r.d = 1), r1 = (0, 1) (-1), r2 = (0.6, 0.8) (-0.2).
fn toy_bundle() -> clip_lens::bundle::Bundle {
    use clip_lens::bundle::{Bundle, LayerLens, Manifest, FORMAT_VERSION};
    let words: Vec<String> = ["sail", "boathouse", "ship", "wheel", "ocean"].map(String::from).to_vec();
    // 100 x unit embeddings: cosines with class 0 are 0.6, 0.9, 0.95, 0, 0.
    let unit = |x: f32| [100.0 * x, 100.0 * (1.0 - x * x).sqrt()];
    let word_embeds: Vec<f32> = [0.6, 0.9, 0.95, 0.0, 0.0].iter().flat_map(|&x| unit(x)).collect();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_name: "toy".into(),
        model_config: serde_json::json!({}),
        weights_sha256: String::new(),
        layers: vec![5],
        neurons: 3,
        embed_dim: 2,
        top_k: 1,
        components: 3,
        word_sources: vec![],
        words,
        classes: vec!["boat".into(), "car".into()],
        class_templates: 80,
        images: vec![],
        skipped_images: vec![],
        top_images: Default::default(),
        thumbnail_size: 0,
        ..Manifest::default()
    };
    let lens = LayerLens {
        mean: vec![0.0; 6],
        direction: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        norms: vec![1.0; 3],
        // n0: sail 0.5, boathouse 0.3, ship 0.2; n1: wheel 0.4, sail -0.2; n2: ocean 0.9, wheel 0.1.
        decomposition_index: vec![0, 1, 2, 3, 0, -1, 4, 3, -1],
        decomposition_coef: vec![0.5, 0.3, 0.2, 0.4, -0.2, 0.0, 0.9, 0.1, 0.0],
        ..LayerLens::default()
    };
    Bundle { manifest, layers: [(5, lens)].into(), word_embeds, class_embeds: vec![1.0, 0.0, 0.0, 1.0] }
}

/// By hand: the top 2 neurons by |r.d| are n0 (1) and n1 (-1). Scores: sail 0.5 x 1 + (-0.2)
/// x (-1) = 0.7; boathouse 0.3 (names class 0: removed); ship 0.2 (cosine 0.95 with class 0 >
/// 0.8: removed); wheel 0.4 x (-1) < 0 (pushes towards class 1: not listed); ocean is only in n2.
#[test]
fn adversarial_words_by_hand() {
    use clip_lens::apps::adversarial::{adversarial_words, fools, AdversarialQuery};
    let bundle = toy_bundle();
    let (e0, e1) = ([1.0f32, 0.0], [0.0f32, 1.0]);
    let mut query = AdversarialQuery {
        class0: ("boat", &e0),
        class1: ("car", &e1),
        layers: &[5],
        neurons: 2,
        words: 10,
        synonym_cosine: 0.8,
        block_list: &[],
    };
    let found = adversarial_words(&bundle, &query).unwrap();
    assert_eq!(found.neurons.iter().map(|n| (n.neuron, n.alignment)).collect::<Vec<_>>(), vec![(0, 1.0), (1, -1.0)]);
    assert_eq!(found.words.len(), 1);
    assert_eq!(found.words[0].word, "sail");
    assert!((found.words[0].score - 0.7).abs() < 1e-6);
    assert_eq!(found.words[0].neurons, vec![(5, 0), (5, 1)]);
    assert_eq!(found.removed, vec!["boathouse".to_string(), "ship".to_string()]);
    assert_eq!(found.descriptions, vec!["a photo of a car with sail".to_string()]);
    let block = vec!["SAIL".to_string()];
    query.block_list = &block;
    let found = adversarial_words(&bundle, &query).unwrap();
    assert!(found.words.is_empty() && found.removed.contains(&"sail".to_string()));
    query.layers = &[7];
    assert!(adversarial_words(&bundle, &query).unwrap_err().to_string().contains("layer 7 is not in the bundle"));
    query.layers = &[5];
    query.class0 = (" ", &e0);
    assert!(adversarial_words(&bundle, &query).unwrap_err().to_string().contains("class name is empty"));
    // emb . d: (2, 1) -> 1 > 0 fools; (1, 2) -> -1 does not.
    assert!(fools(&[2.0, 1.0], &e0, &e1));
    assert!(!fools(&[1.0, 2.0], &e0, &e1));
}

/// One image in 2-d, by hand. emb = (3, 4): v = 100 emb / 5 = (60, 80). Neuron 0: phi = (70, 0),
/// mean (10, 0), centred (60, 0), norm 60 > threshold 50 (significant), r = (1, 0): x = 60,
/// rank-1 keeps it all. Neuron 1: phi = (0, 30), mean 0, norm 30 < 40 (insignificant),
/// r = (0.6, 0.8): x = 24, rank-1 residual (0, 30) - 24 (0.6, 0.8) = (-14.4, 10.8); its sparse
/// rebuild r^ = 0.5 (2, 0) = (1, 0) gives x r^ = (24, 0), residual (-24, 30).
#[test]
fn ablations_by_hand() {
    use clip_lens::apps::ablation::table::{ablated_embeddings, AblationFactors, AblationTable};
    use clip_lens::lens::sparse_directions;
    let sparse = sparse_directions(&[0, -1, 1, -1], &[1.0, 0.0, 0.5, 0.0], 2, &[1.0, 0.0, 2.0, 0.0], 2);
    assert_eq!(sparse, vec![1.0, 0.0, 1.0, 0.0]);
    // Neuron 0's sparse rebuild is exact ((1, 0)); neuron 1's is (1, 0).
    let factors = AblationFactors {
        mean: vec![10.0, 0.0, 0.0, 0.0],
        directions: vec![1.0, 0.0, 0.6, 0.8],
        sparse_directions: sparse,
        thresholds: vec![50.0, 40.0],
    };
    let variants = ablated_embeddings(&[3.0, 4.0], &[70.0, 0.0, 0.0, 30.0], &factors).unwrap();
    let expected: [[f32; 2]; 6] = [
        [60.0, 80.0],               // baseline
        [60.0 - 60.0, 80.0 - 30.0], // mean_all: minus (60, 0) and (0, 30)
        [0.0, 80.0],                // mean_significant: minus (60, 0)
        [60.0, 50.0],               // mean_insignificant: minus (0, 30)
        [60.0 + 14.4, 80.0 - 10.8], // rank_1: minus (0, 0) and (-14.4, 10.8)
        [60.0 + 24.0, 80.0 - 30.0], // sparse: minus (0, 0) and (-24, 30)
    ];
    for (got, want) in variants.iter().zip(expected) {
        assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-4), "{got:?} vs {want:?}");
    }
    // Classes (1, 0) and (0, 1), label 1: correct where y > x: baseline, mean_all,
    // mean_significant; wrong for mean_insignificant (60 > 50), rank_1, sparse.
    let mut table = AblationTable::new(9);
    table.add(&variants, &[1], &[1.0, 0.0, 0.0, 1.0], 2);
    assert_eq!(table.correct, vec![1, 1, 1, 0, 0, 0]);
    assert_eq!(table.accuracies()[0], 1.0);
}
