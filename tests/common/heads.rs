//! The heads fixture (`tests/fixtures/heads`, from the independent NumPy reference): each later
//! head's part of every neuron's effect along the reference's r_n, for the 48 fixture images.

use burn::tensor::{Device, Tensor, TensorData};
use clip_lens::device::read_f32;
use clip_lens::lens::{head_alignments, second_order_effects_and_heads, LensFactors};
use clip_lens::model::{CaptureRequest, Towers};

use super::{expected, load, reference_pixels, relative_deviation};

/// `heads.safetensors`.
pub const HEADS: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/heads/heads.safetensors"));

/// `head_terms.L` `[48, 256, K]`: `<phi_{n,l,h}(I), pca.L[n]>`, K = later layers x 4 heads.
pub fn reference_head_terms(layer: usize) -> (Vec<f32>, usize) {
    let file = safetensors::SafeTensors::deserialize(HEADS).expect("the heads fixture parses");
    let view = file.tensor(&format!("head_terms.{layer}")).expect("a layer of the heads fixture");
    let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    (values, view.shape()[2])
}

/// Per layer 0..3, the relative deviation from the fixture of our heads' terms on the 6 detail
/// images: each head's scalar `c(I) s_{l,h,n}(I)` times `u_{l,h,n} . pca.L[n]`.
pub async fn head_term_deviations(bytes: &[u8], device: &Device) -> Vec<(String, f32)> {
    let expected = expected();
    let model = load(bytes, Towers::Vision, device);
    let vision = model.vision().unwrap();
    let output = vision.forward(reference_pixels(&expected, device), &CaptureRequest::for_lens(&[0, 1, 2])).unwrap();
    let mut deviations = Vec::new();
    for layer in 0..3usize {
        let factors = LensFactors::new(vision, layer).unwrap();
        let pca = &expected[&format!("pca.{layer}")].values;
        let directions = Tensor::<2>::from_data(TensorData::new(pca.clone(), [256, 32]), device);
        let (_, scalars) = second_order_effects_and_heads(vision, &factors, &output).unwrap();
        let scalars = read_f32(scalars.expect("a layer with later heads")).await.unwrap(); // [6, 256, K]
        let alignments = read_f32(head_alignments(vision, &factors, &directions, 0).unwrap()).await.unwrap(); // [K, 256]
        let (reference, heads) = reference_head_terms(layer);
        assert_eq!((heads, factors.later_heads()), ((3 - layer) * 4, (3 - layer) * 4));
        let ours: Vec<f32> =
            (0..6 * 256 * heads).map(|i| scalars[i] * alignments[(i % heads) * 256 + (i / heads) % 256]).collect();
        deviations.push((format!("head_terms.{layer}"), relative_deviation(&ours, &reference[..6 * 256 * heads])));
    }
    deviations
}
