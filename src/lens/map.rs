//! A 2-D map of a layer's neurons, placed by the cosine of their directions r_n: UMAP (McInnes,
//! Healy and Melville, 2018, "UMAP: Uniform Manifold Approximation and Projection"), as
//! umap-learn computes it with `metric="cosine"`, `n_neighbors=15`, `min_dist=0.1`,
//! `init="random"`, `n_epochs=200`, `negative_sample_rate=5`.
//!
//! 1. Each neuron's 15 nearest neurons by cosine distance `1 - cos` ([`nearest_with_cosines`]).
//! 2. Its fuzzy neighbourhood: `w_ij = exp(-(d_ij - rho_i) / sigma_i)`, where `rho_i` is the
//!    distance to its nearest neighbour and `sigma_i` makes `sum_j w_ij = log2(15)` (binary
//!    search); then the fuzzy union `w_ij + w_ji - w_ij w_ji` (one weight per pair).
//! 3. Points start uniform in [-10, 10]^2 and move by stochastic gradient steps over 200 epochs:
//!    each edge pulls its two points together as often as its weight says, and each pull pushes
//!    the first point away from 5 random others; the curve `1 / (1 + a d^(2b))` with `a`, `b`
//!    fitted to `min_dist = 0.1` (umap-learn's values).
//!
//! Seeded ([`SplitMix64`]), single-threaded, and with the transcendental functions of the
//! `libm` crate (the same bits natively and in WebAssembly): a run, its shards, a resumed run and
//! the page's builder compute the same map from the same directions.

use super::neighbours::nearest_with_cosines;
use crate::random::SplitMix64;

/// Neighbours per neuron of the fuzzy graph (umap-learn's default).
pub const MAP_NEIGHBOURS: usize = 15;
/// Optimisation epochs (umap-learn's for more than 10,000 points; enough for 3072).
const EPOCHS: usize = 200;
/// Repulsive samples per attractive one.
const NEGATIVE_SAMPLES: usize = 5;
/// The seed of the initial layout and the negative samples.
const SEED: u64 = 0x005E_ED0F_C11F;
/// umap-learn's curve parameters for `min_dist = 0.1`, `spread = 1` (`find_ab_params`).
const A: f32 = 1.576_943_5;
const B: f32 = 0.895_060_6;
/// The largest step of one coordinate (umap-learn's clip).
const CLIP: f32 = 4.0;

/// The map `[N, 2]` of directions `[N, D]` (any scale: the cosine is used). Fewer than 3 neurons
/// are placed on a line.
pub fn neuron_map(directions: &[f32], dim: usize) -> Vec<f32> {
    let neurons = directions.len() / dim.max(1);
    let k = MAP_NEIGHBOURS.min(neurons.saturating_sub(1));
    map_of_neighbours(&nearest_with_cosines(directions, dim, k), k)
}

/// [`neuron_map`] from each neuron's `k` nearest ([`nearest_with_cosines`], `[N, k]`), when
/// they are known already.
pub fn map_of_neighbours(nearest: &[(Option<usize>, f32)], k: usize) -> Vec<f32> {
    let neurons = nearest.len() / k.max(1);
    if neurons < 3 {
        return (0..neurons).flat_map(|n| [n as f32, 0.0]).collect();
    }
    optimise(neurons, &fuzzy_graph(nearest, k))
}

/// One undirected edge of the fuzzy graph.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    from: usize,
    to: usize,
    weight: f32,
}

/// The fuzzy union of every neuron's neighbourhood (step 2) over its `k` nearest `[N, k]`, one
/// edge per pair, in order.
fn fuzzy_graph(nearest: &[(Option<usize>, f32)], k: usize) -> Vec<Edge> {
    let mut directed = std::collections::BTreeMap::new();
    for (i, row) in nearest.chunks_exact(k).enumerate() {
        let distances: Vec<f64> = row.iter().map(|&(_, cosine)| (1.0 - cosine as f64).max(0.0)).collect();
        let (rho, sigma) = smooth_distances(&distances);
        for (&(j, _), &d) in row.iter().zip(&distances) {
            let Some(j) = j else { continue };
            directed.insert((i, j), libm::exp(-((d - rho).max(0.0)) / sigma));
        }
    }
    let mut edges = Vec::new();
    for (&(i, j), &w) in &directed {
        let back = directed.get(&(j, i)).copied();
        if back.is_some() && j < i {
            continue; // the pair was joined at (j, i)
        }
        let b = back.unwrap_or(0.0);
        edges.push(Edge { from: i, to: j, weight: (w + b - w * b) as f32 });
    }
    edges
}

/// A neighbourhood's `rho` (its smallest distance) and the `sigma` for which
/// `sum_j exp(-max(0, d_j - rho) / sigma) = log2(k)` (64 bisection steps, umap-learn's
/// `smooth_knn_dist`, whose 1e-3 floor on sigma relative to the mean distance it keeps).
fn smooth_distances(distances: &[f64]) -> (f64, f64) {
    let rho = distances.iter().copied().filter(|&d| d > 0.0).fold(f64::INFINITY, f64::min);
    let rho = if rho.is_finite() { rho } else { 0.0 };
    let target = (distances.len() as f64).log2();
    let (mut low, mut high, mut sigma) = (0.0, f64::INFINITY, 1.0);
    for _ in 0..64 {
        let sum: f64 = distances.iter().map(|&d| libm::exp(-((d - rho).max(0.0)) / sigma)).sum();
        if (sum - target).abs() < 1e-5 {
            break;
        }
        if sum > target {
            high = sigma;
            sigma = (low + high) / 2.0;
        } else {
            low = sigma;
            sigma = if high.is_finite() { (low + high) / 2.0 } else { sigma * 2.0 };
        }
    }
    let mean = distances.iter().sum::<f64>() / distances.len().max(1) as f64;
    (rho, sigma.max(1e-3 * mean).max(f64::MIN_POSITIVE))
}

/// Step 3: the layout `[N, 2]` of the graph.
fn optimise(neurons: usize, edges: &[Edge]) -> Vec<f32> {
    let mut random = SplitMix64(SEED);
    let mut layout: Vec<f32> = (0..neurons * 2).map(|_| random.next_f32() * 20.0 - 10.0).collect();
    let largest = edges.iter().map(|e| e.weight).fold(0.0f32, f32::max);
    // Edges too weak to be sampled once in the run are dropped (as umap-learn does).
    let edges: Vec<&Edge> = edges.iter().filter(|e| e.weight * EPOCHS as f32 >= largest).collect();
    let every: Vec<f32> = edges.iter().map(|e| largest / e.weight).collect();
    let mut next = every.clone();
    let every_negative: Vec<f32> = every.iter().map(|e| e / NEGATIVE_SAMPLES as f32).collect();
    let mut next_negative = every_negative.clone();
    for epoch in 0..EPOCHS {
        let rate = 1.0 - epoch as f32 / EPOCHS as f32;
        let now = epoch as f32;
        for (e, edge) in edges.iter().enumerate() {
            if next[e] > now {
                continue;
            }
            let (from, to) = (edge.from, edge.to);
            let gap = difference(&layout, from, to);
            let squared = gap[0] * gap[0] + gap[1] * gap[1];
            if squared > 0.0 {
                let pull = -2.0 * A * B * libm::powf(squared, B - 1.0) / (1.0 + A * libm::powf(squared, B));
                for axis in 0..2 {
                    let step = (pull * gap[axis]).clamp(-CLIP, CLIP) * rate;
                    layout[from * 2 + axis] += step;
                    layout[to * 2 + axis] -= step;
                }
            }
            next[e] += every[e];
            let negatives = ((now - next_negative[e]) / every_negative[e]).max(0.0) as usize;
            for _ in 0..negatives {
                let other = (random.next_u64() % neurons as u64) as usize;
                if other == from {
                    continue;
                }
                let gap = difference(&layout, from, other);
                let squared = gap[0] * gap[0] + gap[1] * gap[1];
                let push = if squared > 0.0 {
                    2.0 * B / ((0.001 + squared) * (1.0 + A * libm::powf(squared, B)))
                } else {
                    0.0
                };
                for axis in 0..2 {
                    let step = if push > 0.0 { (push * gap[axis]).clamp(-CLIP, CLIP) } else { CLIP };
                    layout[from * 2 + axis] += step * rate;
                }
            }
            next_negative[e] += negatives as f32 * every_negative[e];
        }
    }
    layout
}

/// `y_a - y_b` of a layout `[N, 2]`.
fn difference(layout: &[f32], a: usize, b: usize) -> [f32; 2] {
    [layout[a * 2] - layout[b * 2], layout[a * 2 + 1] - layout[b * 2 + 1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sigma solves sum exp(-(d - rho) / sigma) = log2(k); rho is the smallest distance.
    #[test]
    fn smooth_distances_reach_log2_k() {
        let distances = [0.1, 0.2, 0.25, 0.4, 0.5, 0.9, 1.0, 1.3];
        let (rho, sigma) = smooth_distances(&distances);
        assert_eq!(rho, 0.1);
        let sum: f64 = distances.iter().map(|&d| (-(d - rho) / sigma).exp()).sum();
        assert!((sum - 3.0).abs() < 1e-4, "{sum} against log2(8) = 3");
    }

    /// A pair's two directed weights join as a fuzzy union, once per pair.
    #[test]
    fn the_graph_is_the_fuzzy_union() {
        // Three directions in the plane at 0, 30 and 90 degrees, 2 neighbours each.
        let at = |degrees: f32| [degrees.to_radians().cos(), degrees.to_radians().sin()];
        let directions = [at(0.0), at(30.0), at(90.0)].concat();
        let edges = fuzzy_graph(&nearest_with_cosines(&directions, 2, 2), 2);
        let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(pairs, [(0, 1), (0, 2), (1, 2)]);
        // Neuron 0's nearest is 1 (weight 1), so w(0,1) = 1 whatever w(1,0) is.
        assert!((edges[0].weight - 1.0).abs() < 1e-6);
        assert!(edges.iter().all(|e| e.weight > 0.0 && e.weight <= 1.0));
    }

    /// Four tight clusters of directions land apart: every neuron's nearest point on the map is
    /// of its own cluster, and the same input gives the same map.
    #[test]
    fn clusters_stay_together_and_the_map_is_deterministic() {
        let mut random = SplitMix64(7);
        let (clusters, per_cluster, dim) = (4, 40, 16);
        let mut directions = Vec::new();
        for n in 0..clusters * per_cluster {
            let centre = n % clusters;
            directions.extend((0..dim).map(|d| if d == centre { 1.0 } else { 0.0 } + 0.05 * random.next_f32()));
        }
        let map = neuron_map(&directions, dim);
        assert_eq!(map, neuron_map(&directions, dim), "deterministic");
        let neurons = clusters * per_cluster;
        for n in 0..neurons {
            let nearest = (0..neurons)
                .filter(|&o| o != n)
                .min_by(|&a, &b| {
                    let d = |o: usize| difference(&map, n, o).iter().map(|x| x * x).sum::<f32>();
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_eq!(nearest % clusters, n % clusters, "neuron {n}'s nearest on the map is {nearest}");
        }
    }
}
