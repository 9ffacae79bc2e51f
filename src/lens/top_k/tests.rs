//! The top-k accumulator's tests: exact merges, ties, checkpoints, refusals.

use super::*;

/// Effects `[images, 3 neurons, 2]` whose centred norms repeat (ties across the split).
fn effects(images: usize) -> Vec<f32> {
    (0..images * 6).map(|i| ((i * 7 + i / 6) % 5) as f32 - 2.0).collect()
}

fn batch<'a>(effects: &'a [f32], head_scalars: &'a [f32], image_keys: &'a [u64]) -> PassTwoBatch<'a> {
    PassTwoBatch { effects, head_scalars, image_keys }
}

/// A key per image of `effects`, from its values (the same image, the same key, in any run).
fn keys(effects: &[f32]) -> Vec<u64> {
    effects
        .chunks_exact(6)
        .map(|image| image.iter().fold(7u64, |h, &x| h.wrapping_mul(31) ^ x.to_bits() as u64))
        .collect()
}

/// Two per-head scalars per effect, from its values (the same image, the same scalars, in any
/// slice).
fn head_scalars(effects: &[f32]) -> Vec<f32> {
    effects.chunks_exact(2).flat_map(|e| [e[0] * 3.0 + e[1], e[1] - 0.25 * e[0]]).collect()
}

/// Keeps 4 of 3 neurons' images, with 2 heads, histograms and typical images.
fn empty() -> TopKAccumulator {
    let top = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_heads(2);
    top.with_histograms(vec![1.0; 3]).unwrap().with_typical(vec![1.0; 3]).unwrap()
}

fn accumulator(effects: &[f32]) -> TopKAccumulator {
    let mut top = empty();
    top.add_batch(batch(effects, &head_scalars(effects), &keys(effects))).unwrap();
    top
}

/// Appending the accumulators of consecutive slices gives what one accumulator over every
/// image gives, ties included (the earlier image wins).
#[test]
fn appended_slices_equal_one_stream() {
    let all = effects(23);
    let whole = accumulator(&all).finish().unwrap();
    for cuts in [vec![0, 23], vec![0, 2, 11, 23], vec![0, 0, 5, 23, 23]] {
        let mut merged = accumulator(&all[..cuts[1] * 6]);
        for pair in cuts[1..].windows(2) {
            merged.append(&accumulator(&all[pair[0] * 6..pair[1] * 6])).unwrap();
        }
        assert_eq!(merged.images(), 23);
        let merged = merged.finish().unwrap();
        assert_eq!(merged.top_images, whole.top_images, "{cuts:?}");
        assert_eq!(merged.norms, whole.norms);
        assert_eq!(merged.directions, whole.directions);
        assert_eq!(merged.distributions, whole.distributions);
        assert_eq!(merged.head_scalars, whole.head_scalars);
        assert_eq!(merged.typical, whole.typical);
    }
    assert!(whole.norms.windows(2).any(|w| w[0] == w[1]), "the case has ties");
    assert_eq!(whole.later_heads, 2);
    assert!(whole.typical.as_ref().unwrap().iter().filter(|&&id| id >= 0).count() > 6, "typical images kept");
}

/// The heads' scalars are the mean over each neuron's top k of the scalars of its images.
#[test]
fn head_scalars_are_the_mean_over_the_top_k() {
    let all = effects(9);
    let scalars = head_scalars(&all);
    let stats = accumulator(&all).finish().unwrap();
    for n in 0..3 {
        for h in 0..2 {
            let top = &stats.top_images[n * 4..(n + 1) * 4];
            let mean = top.iter().map(|&image| scalars[(image * 3 + n) * 2 + h]).sum::<f32>() / 4.0;
            assert!((stats.head_scalars[n * 2 + h] - mean).abs() < 1e-6, "neuron {n} head {h}");
        }
    }
    let mut top = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_heads(2);
    let error = top.add_batch(batch(&all, &scalars[1..], &keys(&all))).unwrap_err().to_string();
    assert!(error.contains("53 per-head scalars and 9 keys for 9 images of 3 neurons and 2 later heads"), "{error}");
}

/// Of equal norms the earlier image stays, whichever of them was replaced before.
#[test]
fn ties_keep_the_earlier_image() {
    let top = |effects: &[f32]| {
        let mut top = TopKAccumulator::new(vec![0.0], 1, 1, 2).unwrap();
        top.add(effects).unwrap();
        top
    };
    // Image 2 replaces one of the two tied images 0 and 1: image 1, the later.
    assert_eq!(top(&[1.0, 1.0, 2.0]).finish().unwrap().top_images, [0, 2]);
    let mut merged = top(&[1.0, 1.0]);
    merged.append(&top(&[2.0])).unwrap();
    assert_eq!(merged.finish().unwrap().top_images, [0, 2]);
    // Later images of a tied norm stay out; a larger one replaces the latest of the ties.
    assert_eq!(top(&[3.0, 1.0, 1.0, 1.0, 2.0]).finish().unwrap().top_images, [4, 0]);
}

/// A checkpoint's tensors lend the centred effects (no copy); once they are dropped, the
/// next batch writes into the same buffer. Restored from them, the state finishes alike.
#[test]
fn checkpoint_tensors_lend_the_state() {
    let mut top = accumulator(&effects(5));
    let tensors = top.to_tensors("x");
    let three = effects(3);
    let centred = tensors.iter().find(|t| t.name == "x.centred").unwrap();
    let crate::tensor_file::Values::F32(lent) = &centred.values else { panic!("f32 values") };
    assert!(Arc::ptr_eq(lent, &top.centred), "lent, not copied");
    let (by_name, _) = crate::tensor_file::deserialize(&crate::tensor_file::serialize(&tensors).unwrap()).unwrap();
    let restored = TopKAccumulator::from_tensors(&by_name, "x", Sizes { neurons: 3, dim: 2, k: 4 }).unwrap();
    let buffer = top.centred.as_ptr();
    drop((tensors, by_name));
    top.add_batch(batch(&three, &head_scalars(&three), &keys(&three))).unwrap();
    assert_eq!(top.centred.as_ptr(), buffer, "the next batch copies nothing");
    let (mut again, whole) = (restored, accumulator(&effects(5)));
    assert_eq!(again.images(), 5);
    again.add_batch(batch(&three, &head_scalars(&three), &keys(&three))).unwrap();
    let mut expected = whole;
    expected.add_batch(batch(&three, &head_scalars(&three), &keys(&three))).unwrap();
    let (again, expected) = (again.finish().unwrap(), expected.finish().unwrap());
    assert_eq!(again.top_images, expected.top_images);
    assert_eq!(again.head_scalars, expected.head_scalars);
}

/// Slots that do not hold the first min(images, k) ids of every neuron are refused.
#[test]
fn restoring_refuses_misplaced_slots() {
    let top = accumulator(&effects(2));
    let mut by_name: HashMap<String, NamedTensor> =
        top.to_tensors("x").into_iter().map(|t| (t.name.clone(), t)).collect();
    let images = by_name.get_mut("x.images").unwrap();
    *images = NamedTensor::i64("x.images", &[3, 4], vec![0, 1, -1, -1, 0, -1, 1, -1, 0, 1, -1, -1]);
    let error = TopKAccumulator::from_tensors(&by_name, "x", Sizes { neurons: 3, dim: 2, k: 4 }).err().unwrap();
    assert!(error.to_string().contains("does not hold 2 images per neuron"), "{error}");
}

#[test]
fn append_refuses_other_means_and_shapes() {
    let mut top = accumulator(&effects(4));
    let other_mean = TopKAccumulator::new(vec![0.0; 6], 3, 2, 4).unwrap().with_histograms(vec![1.0; 3]).unwrap();
    assert!(top.append(&other_mean).unwrap_err().to_string().contains("another mean"));
    let other_k = TopKAccumulator::new(vec![0.5; 6], 3, 2, 2).unwrap();
    assert!(top.append(&other_k).unwrap_err().to_string().contains("top-2"));
    let no_heads = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_histograms(vec![1.0; 3]).unwrap();
    assert!(top.append(&no_heads).unwrap_err().to_string().contains("with 0 later heads to ones with 2"));
    let no_histograms = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_heads(2);
    assert!(top.append(&no_histograms).unwrap_err().to_string().contains("histograms"));
    let no_typical = TopKAccumulator::new(vec![0.5; 6], 3, 2, 4).unwrap().with_heads(2).with_histograms(vec![1.0; 3]);
    assert!(top.append(&no_typical.unwrap()).unwrap_err().to_string().contains("typical images"));
}
