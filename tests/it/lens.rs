//! The lens engine against the paper's reference outputs, natively.

use crate::common::*;
use clip_lens::device;
use clip_lens::lens::AtomSearch;

#[test]
fn second_order_effects_match_reference_on_cpu() {
    for (label, bytes) in [("cpu/openai", MODEL_OPENAI), ("cpu/hf", MODEL_HF)] {
        assert_within(label, &pollster::block_on(second_order_deviations(bytes, &device::cpu())));
    }
}

#[test]
fn second_order_effects_match_reference_on_wgpu() {
    let Some(gpu) = native_gpu_or_skip("the wgpu lens test") else { return };
    assert_within("wgpu/openai", &pollster::block_on(second_order_deviations(MODEL_OPENAI, &gpu)));
}

#[test]
fn statistics_match_reference_over_the_48_images() {
    assert_within("cpu/stats", &pollster::block_on(statistics_deviations(MODEL_OPENAI, &device::cpu(), 8)));
}

/// Streaming in batches of 5 gives exactly what one batch of all 48 images gives.
#[test]
fn streaming_statistics_equal_in_memory_statistics() {
    let streamed = pollster::block_on(effect_batches(MODEL_OPENAI, &device::cpu(), &[1], 5));
    let whole = pollster::block_on(effect_batches(MODEL_OPENAI, &device::cpu(), &[1], 48));
    let a = statistics(&streamed, 0, 256, 32, 6);
    let b = statistics(&whole, 0, 256, 32, 6);
    assert_eq!(a.top_images, b.top_images);
    assert!(relative_deviation(&a.mean, &b.mean) < 1e-6);
    assert!(relative_deviation(&a.norms, &b.norms) < 1e-6);
    assert!(relative_deviation(&a.directions, &b.directions) < 1e-5);
}

#[test]
fn statistics_reject_bad_inputs() {
    use clip_lens::lens::{MeanAccumulator, TopKAccumulator};
    assert!(MeanAccumulator::new(4, 2).mean().unwrap_err().to_string().contains("no images"));
    assert!(MeanAccumulator::new(4, 2).add(&[0.0; 7]).unwrap_err().to_string().contains("whole number"));
    let mut top = TopKAccumulator::new(vec![0.0; 8], 4, 2, 3).unwrap();
    top.add(&[1.0; 16]).unwrap();
    assert!(top.finish().unwrap_err().to_string().contains("k = 3 is larger than the number of images (2)"));
}

/// The sign rule on a hand-made case: rows mostly along -e1 give +e1 negated.
#[test]
fn singular_vector_sign_rule() {
    let rows: Vec<Vec<f32>> = vec![vec![-2.0, 0.1], vec![-1.0, -0.1], vec![0.5, 0.0]];
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let r = clip_lens::lens::first_right_singular_vector(&refs, 2);
    assert!(r[0] < -0.99, "{r:?}");
    // A tie (one row each way) negates whatever the iteration found.
    let tie: Vec<Vec<f32>> = vec![vec![1.0, 0.0], vec![-1.0, 0.0]];
    let refs: Vec<&[f32]> = tie.iter().map(Vec::as_slice).collect();
    let r = clip_lens::lens::first_right_singular_vector(&refs, 2);
    let positive = tie.iter().filter(|row| row[0] * r[0] + row[1] * r[1] > 0.0).count();
    assert_eq!(positive, 1);
    assert!((r[0].abs() - 1.0).abs() < 1e-6);
}

#[test]
fn word_embeddings_and_dictionary_match_reference() {
    let (deviations, _) = pollster::block_on(dictionary_deviations(MODEL_HF, &device::cpu()));
    assert_within("cpu/dictionary", &deviations);
}

/// Same support and coefficients within 1e-3 of the reference's scikit-learn OMP: the atom
/// search on the CPU device, in the Gram form, on wgpu and, where the CPU has AMX, in bf16
/// tiles.
#[test]
fn omp_matches_scikit_learn() {
    let cpu = device::cpu();
    let mut results = pollster::block_on(omp_against_reference(AtomSearch::Device(&cpu)));
    results.extend(pollster::block_on(omp_against_reference(AtomSearch::Gram(&cpu))));
    if let Some(gpu) = native_gpu_or_skip("OMP on wgpu") {
        results.extend(pollster::block_on(omp_against_reference(AtomSearch::Device(&gpu))));
    }
    if tiles_or_skip("OMP in AMX tiles") {
        results.extend(pollster::block_on(omp_against_reference(AtomSearch::Tiles)));
    }
    for (layer, mismatches, worst) in results {
        println!("omp.{layer}: {mismatches} neurons with another support, worst coefficient deviation {worst:.2e}");
        assert_eq!(mismatches, 0, "omp.{layer} support");
        assert!(worst <= 1e-3, "omp.{layer} coefficients deviate by {worst}");
    }
}

/// The cheap projection equals the exact one, `(phi_n - mean_n) . r_n` from the full effects,
/// using the reference's own mean and directions.
#[test]
fn cheap_projection_equals_exact_projection() {
    use burn::tensor::{Tensor, TensorData};
    use clip_lens::lens::{projections, second_order_effects, LensFactors, ProjectionFactors};
    use clip_lens::model::{CaptureRequest, Towers};
    let expected = expected();
    let cpu = device::cpu();
    let model = load(MODEL_OPENAI, Towers::Vision, &cpu);
    let vision = model.vision().unwrap();
    let input = reference_pixels(&expected, &cpu);
    let output = vision.forward(input, &CaptureRequest::for_lens(&[0, 1])).unwrap();
    for layer in [0usize, 1] {
        let factors = LensFactors::new(vision, layer).unwrap();
        let matrix =
            |name: String| Tensor::<2>::from_data(TensorData::new(expected[&name].values.clone(), [256, 32]), &cpu);
        let (mean, directions) = (matrix(format!("mean.{layer}")), matrix(format!("pca.{layer}")));
        let exact = (second_order_effects(vision, &factors, &output).unwrap() - mean.clone().unsqueeze::<3>())
            * directions.clone().unsqueeze::<3>();
        let exact = device::read_f32_blocking(exact.sum_dim(2)).unwrap();
        let projection = ProjectionFactors::new(vision, &factors, directions, mean);
        let cheap = device::read_f32_blocking(projections(vision, &factors, &projection, &output).unwrap()).unwrap();
        let deviation = relative_deviation(&cheap, &exact);
        println!("layer {layer}: cheap vs exact projection, relative deviation {deviation:.2e}");
        assert!(deviation < 1e-5, "layer {layer}: {deviation}");
    }
}

/// `LensFactors::within` keeps the per-head form only when it fits the buffer limit.
#[test]
fn factors_respect_a_buffer_limit() {
    use clip_lens::lens::{FactorForm, LensFactors};
    let model = load(MODEL_OPENAI, clip_lens::model::Towers::Vision, &device::cpu());
    let vision = model.vision().unwrap();
    let bytes = LensFactors::per_head_bytes(vision, 1);
    assert_eq!(bytes, 2 * 4 * 256 * 32 * 4, "2 later layers x 4 heads x 256 neurons x 32 dims, f32");
    assert_eq!(LensFactors::within(vision, 1, bytes).unwrap().form(), FactorForm::PerHead);
    assert_eq!(LensFactors::within(vision, 1, bytes - 1).unwrap().form(), FactorForm::Compact);
    assert_eq!(LensFactors::new(vision, 1).unwrap().form(), FactorForm::PerHead);
}

/// Whether this CPU has AMX for the tiled atom search; a skip is printed otherwise.
fn tiles_or_skip(what: &str) -> bool {
    let available = clip_lens::lens::tiles_available();
    if !available {
        println!("skipped {what}: this CPU (or kernel) has no AMX-BF16");
    }
    available
}

/// A small xorshift generator for the random dictionaries below.
fn uniform_numbers(mut state: u64) -> impl FnMut() -> f32 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

/// The bf16 tiles only screen. Here bf16 ranks the atoms the wrong way round: the winner's
/// components (1.0038) round down to 1 while every other atom has half its components at 1.0040
/// (rounding up to 1.0078) and half at 1.0034 (down to 1), so every other atom screens larger
/// but is exactly smaller. The tiled search must still pick the atom whose exact correlation is
/// the largest (computed here in f64), wherever it sits in the dictionary.
#[test]
fn tiled_omp_picks_the_exact_largest_where_bf16_ranks_it_lower() {
    if !tiles_or_skip("the tiled near-tie test") {
        return;
    }
    let (dim, words) = (70, 1000);
    let target = vec![1f32; dim];
    for winner in [3usize, 517, 999] {
        let atoms: Vec<f32> = (0..words)
            .flat_map(|i| {
                (0..dim).map(move |d| {
                    if i == winner {
                        1.0038
                    } else if (d + i) % 2 == 0 {
                        1.0040
                    } else {
                        1.0034 - i as f32 * 1e-7
                    }
                })
            })
            .collect();
        let dictionary = clip_lens::lens::Dictionary { atoms, len: words, dim };
        let exact = (0..words)
            .map(|i| {
                dictionary.atoms[i * dim..(i + 1) * dim]
                    .iter()
                    .zip(&target)
                    .map(|(&a, &t)| a as f64 * t as f64)
                    .sum::<f64>()
                    .abs()
            })
            .enumerate()
            .fold((0, f64::MIN), |best, (i, c)| if c > best.1 { (i, c) } else { best });
        assert_eq!(exact.0, winner);
        let codes = pollster::block_on(clip_lens::lens::orthogonal_matching_pursuit_with(
            &dictionary,
            &target,
            1,
            AtomSearch::Tiles,
        ))
        .unwrap();
        assert_eq!(codes[0].indices, vec![winner]);
    }
}

/// A random dictionary of 1,000 words x 70 dimensions (not multiples of the AMX tiles) from
/// `seed`, and `targets` random targets.
fn random_omp_problem(seed: u64, targets: usize) -> (clip_lens::lens::Dictionary, Vec<f32>) {
    let (dim, words) = (70, 1000);
    let mut random = uniform_numbers(seed);
    let embeds: Vec<f32> = (0..words * dim).map(|_| random()).collect();
    let dictionary =
        clip_lens::lens::Dictionary::from_word_embeddings(&clip_lens::lens::scaled_unit_rows(&embeds, dim), dim)
            .unwrap();
    (dictionary, (0..targets * dim).map(|_| random()).collect())
}

/// The same atoms in the same order, coefficients within 1e-5 relative to each code's largest.
fn assert_same_codes(expected: &[clip_lens::lens::SparseCode], codes: &[clip_lens::lens::SparseCode]) {
    assert_eq!(expected.len(), codes.len());
    for (n, (e, c)) in expected.iter().zip(codes).enumerate() {
        assert_eq!(e.indices, c.indices, "target {n}");
        let scale = e.coefficients.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = e.coefficients.iter().zip(&c.coefficients).fold(0f32, |m, (a, b)| m.max((a - b).abs() / scale));
        assert!(worst <= 1e-5, "target {n}: coefficients deviate by {worst}");
    }
}

/// OMP of `targets` over `dictionary` with 20 components by `search`.
fn codes_by(
    dictionary: &clip_lens::lens::Dictionary,
    targets: &[f32],
    search: AtomSearch<'_>,
) -> Vec<clip_lens::lens::SparseCode> {
    pollster::block_on(clip_lens::lens::orthogonal_matching_pursuit_with(dictionary, targets, 20, search)).unwrap()
}

/// On a random dictionary ([`random_omp_problem`]), the tiled search gives the device search's
/// codes.
#[test]
fn tiled_omp_equals_device_omp_on_random_dictionaries() {
    if !tiles_or_skip("the tiled OMP test") {
        return;
    }
    let (dictionary, targets) = random_omp_problem(0x2545_f491_4f6c_dd1d, 45);
    let cpu = device::cpu();
    assert_same_codes(
        &codes_by(&dictionary, &targets, AtomSearch::Device(&cpu)),
        &codes_by(&dictionary, &targets, AtomSearch::Tiles),
    );
}

/// On a random dictionary ([`random_omp_problem`], 300 targets: two blocks, so the second
/// reuses the first's Gram matrix), the Gram search gives the device search's codes. One coder
/// encodes the targets in two calls, as `precompute` does per layer.
#[test]
fn gram_omp_equals_device_omp_on_random_dictionaries() {
    let (dictionary, targets) = random_omp_problem(0x9e37_79b9_7f4a_7c15, 300);
    let cpu = device::cpu();
    let mut coder = clip_lens::lens::SparseCoder::new(&dictionary, AtomSearch::Gram(&cpu)).unwrap();
    let (first, second) = targets.split_at(100 * 70);
    let mut gram = pollster::block_on(coder.encode(first, 20)).unwrap();
    gram.extend(pollster::block_on(coder.encode(second, 20)).unwrap());
    assert_same_codes(&codes_by(&dictionary, &targets, AtomSearch::Device(&cpu)), &gram);
}
