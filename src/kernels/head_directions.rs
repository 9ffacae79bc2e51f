//! The lens's per-head directions on the CPU, computed once per bundle layer.
//!
//! What it computes, for each later layer `l` with `G_l` `[N, width]` (columns grouped by
//! head) and `M_l` `[width, D]`: `u[l, h, n] = G_l[n, head h's columns] M_l[head h's rows]`,
//! stacked `[K, N, D]` with `K` = later layers x heads, layer-major (see
//! `crate::lens::second_order`).
//!
//! Why it is fast: each head's product `[N, head_dim] x [head_dim, D]` runs on the packed
//! kernel ([`PackedLinear`], its panels split between threads) and writes straight into its
//! block of the result, where burn's batched `matmul` ran flex's general product and
//! `Tensor::cat` copied every layer's `[H, N, D]` again (ViT-B/32's layer 8: 226 MB).
//!
//! Pinned by the test below (against the definition) and by the lens's golden tests, which
//! run through it on the CPU.

use super::packed_linear::PackedLinear;

/// `u` for `layers`, pairs of row-major `G_l` `[neurons, width]` and `M_l` `[width, dim]`, with
/// `heads` heads: `[layers x heads, neurons, dim]`, row-major.
pub fn head_directions(
    layers: &[(&[f32], &[f32])],
    neurons: usize,
    width: usize,
    dim: usize,
    heads: usize,
) -> Vec<f32> {
    assert!(heads >= 1 && width.is_multiple_of(heads), "{width} features do not split into {heads} heads");
    let head_dim = width / heads;
    let mut directions = vec![0.0f32; layers.len() * heads * neurons * dim];
    let mut blocks = directions.chunks_exact_mut(neurons * dim);
    let no_bias = vec![0.0f32; dim];
    for &(values, map) in layers {
        assert!(
            values.len() == neurons * width && map.len() == width * dim,
            "G_l or M_l does not match [{neurons}, {width}] x [{width}, {dim}]"
        );
        for head in 0..heads {
            let columns = head * head_dim..(head + 1) * head_dim;
            let rows = PackedLinear::new(&map[columns.start * dim..columns.end * dim], &no_bias, head_dim, dim);
            let head_values: Vec<f32> =
                values.chunks_exact(width).flat_map(|row| &row[columns.clone()]).copied().collect();
            rows.forward_into(&head_values, neurons, blocks.next().expect("one block per head"));
        }
    }
    directions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    #[test]
    fn directions_match_the_definition() {
        // Two later layers, three heads of 5 features, a dimension that ends mid-panel.
        let (neurons, width, dim, heads) = (11, 15, 50, 3);
        let pairs = [
            (values(neurons * width, 1), values(width * dim, 2)),
            (values(neurons * width, 3), values(width * dim, 4)),
        ];
        let layers: Vec<(&[f32], &[f32])> = pairs.iter().map(|(g, m)| (g.as_slice(), m.as_slice())).collect();
        let got = head_directions(&layers, neurons, width, dim, heads);
        assert_eq!(got.len(), 2 * heads * neurons * dim);
        let head_dim = width / heads;
        for (l, (g, m)) in pairs.iter().enumerate() {
            for h in 0..heads {
                for n in 0..neurons {
                    for d in 0..dim {
                        let want: f64 = (h * head_dim..(h + 1) * head_dim)
                            .map(|c| g[n * width + c] as f64 * m[c * dim + d] as f64)
                            .sum();
                        let at = (((l * heads + h) * neurons) + n) * dim + d;
                        assert!(
                            (got[at] as f64 - want).abs() < 1e-5,
                            "layer {l} head {h} neuron {n} dim {d}: {} vs {want}",
                            got[at]
                        );
                    }
                }
            }
        }
    }
}
