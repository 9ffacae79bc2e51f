//! Format 5's per-neuron statistics in a precomputed bundle (issue 27): the fidelity of the
//! words, the neighbours and the typical images by hand, and a format-4 bundle that lacks them
//! still reads.

use crate::bundle::bundle_dir;
use crate::common::*;
use clip_lens::apps::cards::{neuron_card, LayerFidelity};
use clip_lens::bundle::{Bundle, NEIGHBOURS};
use clip_lens::tensor_file::{deserialize, serialize};

/// The bundle's files with format 5's tensors removed and the manifest saying format 4.
fn as_format_4() -> Bundle {
    let manifest = std::fs::read_to_string(bundle_dir().join("manifest.json")).unwrap();
    let (tensors, _) = deserialize(&std::fs::read(bundle_dir().join("lens.safetensors")).unwrap()).unwrap();
    let new =
        |name: &str| [".heads", ".fidelity", ".neighbours", ".map", ".typical"].iter().any(|part| name.ends_with(part));
    let kept: Vec<_> = tensors.into_values().filter(|t| !new(&t.name)).collect();
    let manifest = manifest.replacen("\"format_version\": 5", "\"format_version\": 4", 1);
    Bundle::from_parts(&manifest, serialize(&kept).unwrap()).unwrap()
}

/// The stored fidelity is what a format-4 bundle's load computes from its words.
#[test]
fn stored_fidelity_equals_the_fidelity_computed_on_load() {
    let (bundle, older) = (Bundle::read(bundle_dir()).unwrap(), as_format_4());
    for layer in 0..3 {
        let stored = bundle.layers[&layer].fidelity.as_ref().expect("format 5 stores the fidelity");
        assert!(older.layers[&layer].fidelity.is_none());
        let computed = LayerFidelity::of(&older, layer).unwrap().values;
        assert_eq!(stored.len(), 256);
        assert!(relative_deviation(stored, &computed) < 1e-6, "layer {layer}");
        assert!(stored.iter().all(|&f| (-1.0..=1.0 + 1e-6).contains(&f)));
    }
}

/// Each neuron's neighbours are the 8 others of its layer with the largest cosine of r_n,
/// computed here in f64: the same cosines rank by rank (ties may swap equal neurons).
#[test]
fn neighbours_are_the_nearest_directions_by_hand() {
    let bundle = Bundle::read(bundle_dir()).unwrap();
    for layer in 0..3 {
        let lens = &bundle.layers[&layer];
        let neighbours = lens.neighbours.as_ref().expect("format 5 stores the neighbours");
        let r = |n: usize| &lens.direction[n * 32..(n + 1) * 32];
        let cosine = |a: usize, b: usize| {
            let dot: f64 = r(a).iter().zip(r(b)).map(|(x, y)| *x as f64 * *y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (norm(r(a)) * norm(r(b)))
        };
        for n in [0, 31, 200, 255] {
            let mut by_hand: Vec<f64> = (0..256).filter(|&o| o != n).map(|o| cosine(n, o)).collect();
            by_hand.sort_by(|a, b| b.total_cmp(a));
            let ours = &neighbours[n * NEIGHBOURS..(n + 1) * NEIGHBOURS];
            for (rank, &other) in ours.iter().enumerate() {
                assert!((cosine(n, other as usize) - by_hand[rank]).abs() < 1e-6, "{layer}:{n} rank {rank}");
            }
            let card = neuron_card(&bundle, layer, n, None, None).unwrap();
            let listed: Vec<i32> = card.neighbours.unwrap().iter().map(|x| x.neuron as i32).collect();
            assert_eq!(listed, ours, "the card lists them in order");
        }
    }
}

/// A format-4 bundle reads: its cards have no heads and no neighbours (the page says a rebuild
/// adds them); its map is computed on load, the same as the one format 5 stores.
#[test]
fn a_format_4_bundle_reads_without_the_new_statistics() {
    let older = as_format_4();
    let card = neuron_card(&older, 1, 4, None, None).unwrap();
    assert!(card.heads.is_none() && card.neighbours.is_none() && card.typical.is_none());
    let computed = clip_lens::apps::cards::neuron_map(&older, 1, clip_lens::lens::neuron_map).unwrap();
    let stored =
        clip_lens::apps::cards::neuron_map(&Bundle::read(bundle_dir()).unwrap(), 1, |_, _| unreachable!()).unwrap();
    assert!(!computed.stored && stored.stored);
    assert_eq!(computed.points, stored.points, "the same map, stored or computed on load");
    assert_eq!((stored.points.len(), stored.words.len()), (512, 256));
    assert!(stored.points.iter().all(|x| x.is_finite()));
    let card = neuron_card(&Bundle::read(bundle_dir()).unwrap(), 1, 4, None, None).unwrap();
    let grid = card.heads.expect("format 5 has the heads");
    assert_eq!((grid.layers.clone(), grid.heads, grid.values.len()), (vec![2, 3], 4, 8));
    let largest = grid.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_eq!(grid.largest[0].value.abs(), largest, "the largest head is named first");
    let at = |t: &clip_lens::apps::cards::HeadTerm| grid.values[(t.layer - 2) * 4 + t.head];
    assert!(grid.largest.iter().all(|t| at(t) == t.value));
}

/// Typical images by hand over the 48 fixture images: per neuron and band (bins 0-12, 13-14,
/// 15-16, 17-18, 19-31 of its histogram, by its centred norm), the 4 images with the smallest
/// sample key of (image name, neuron); and a precomputed bundle's cards show them, band by band,
/// with thumbnails.
#[test]
fn typical_images_are_each_bands_smallest_keys() {
    use clip_lens::lens::typical::sample_key;
    use clip_lens::lens::{image_key, MeanAccumulator, PassTwoBatch, TopKAccumulator, TYPICAL_BAND_BINS};
    let batches = pollster::block_on(effect_batches(MODEL_OPENAI, &clip_lens::device::cpu(), &[1], 8));
    let effects: Vec<f32> = batches.iter().flat_map(|b| b[0].iter().copied()).collect();
    let names: Vec<String> = (0..48).map(|i| format!("img{i:03}.png")).collect();
    let keys: Vec<u64> = names.iter().map(|name| image_key(name)).collect();
    let mut means = MeanAccumulator::new(256, 32);
    means.add(&effects).unwrap();
    let mut top = TopKAccumulator::after(&means, 6, 0).unwrap();
    top.add_batch(PassTwoBatch { effects: &effects, head_scalars: &[], image_keys: &keys }).unwrap();
    let stats = top.finish().unwrap();
    let (typical, edges) = (stats.typical.unwrap(), stats.distributions.unwrap().edges);
    let mean = means.mean().unwrap();
    for n in [0, 9, 100, 255] {
        let edges = &edges[n * 33..(n + 1) * 33];
        let mut bands: Vec<Vec<(u64, i64)>> = vec![Vec::new(); 5];
        for image in 0..48 {
            let effect = &effects[(image * 256 + n) * 32..][..32];
            let norm = effect.iter().zip(&mean[n * 32..]).map(|(e, m)| ((e - m) as f64).powi(2)).sum::<f64>().sqrt();
            let bin = (edges.partition_point(|&e| (e as f64) <= norm).max(1) - 1).min(31);
            let band = TYPICAL_BAND_BINS.windows(2).position(|w| bin < w[1]).unwrap();
            bands[band].push((sample_key(keys[image], n), image as i64));
        }
        let mut expected = Vec::new();
        for mut band in bands {
            band.sort();
            expected.extend(band.iter().take(4).map(|&(_, image)| image));
            expected.extend(std::iter::repeat_n(-1, 4usize.saturating_sub(band.len())));
        }
        assert_eq!(&typical[n * 20..(n + 1) * 20], expected, "neuron {n}");
    }
    let bundle = Bundle::read(bundle_dir()).unwrap();
    let card = neuron_card(&bundle, 1, 9, None, None).unwrap();
    let bands = card.typical.expect("format 5 has typical images");
    assert_eq!(bands.len(), 5);
    let kept = bundle.layers[&1].typical.as_ref().unwrap()[180..200].iter().filter(|&&id| id >= 0).count();
    assert_eq!(bands.iter().map(|b| b.images.len()).sum::<usize>(), kept);
    assert!(bands.windows(2).all(|w| w[0].high == Some(w[1].low)) && bands[0].low == 0.0 && bands[4].high.is_none());
    for image in bands.iter().flat_map(|b| &b.images) {
        let thumbnail = image.thumbnail.as_ref().expect("a thumbnail");
        assert!(bundle_dir().join(thumbnail).exists(), "{thumbnail}");
    }
}
