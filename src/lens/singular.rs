//! The first principal direction of a neuron's top-k centred effects (pass 2's result), with
//! the paper's sign rule.

use crate::vector::dot_f64;

/// The first right singular vector of the matrix whose rows are `rows` (not re-centred), with
/// the paper's sign rule: kept if more than half of the rows have a positive dot product with
/// it, else negated (a tie negates).
///
/// The rule needs an orientation to negate on a tie, which the reference takes from LAPACK's
/// SVD (arbitrary); here it is the one where the largest row has a positive projection, so a
/// tie gives the vector on which that row projects negatively. Outside ties the result does
/// not depend on this choice.
///
/// Computed as `X^T v / |X^T v|` for the top eigenvector `v` of the small Gram matrix `X X^T`
/// (k x k), found by power iteration in f64.
///
/// Reference: `vh[0]` of `np.linalg.svd(current_important_neurons)` and the `how_many_positive > top_k_pca // 2`
/// rule in [`compute_pcas.py`, `main`][pcas]. Differs: power iteration, not LAPACK (the tie orientation above).
///
/// [pcas]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_pcas.py
pub fn first_right_singular_vector(rows: &[&[f32]], dim: usize) -> Vec<f32> {
    let k = rows.len();
    // X X^T is symmetric: each product once, mirrored.
    let mut gram = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let product = dot_f64(rows[i], rows[j]);
            gram[i * k + j] = product;
            gram[j * k + i] = product;
        }
    }
    let v = top_eigenvector(&gram, k);
    let mut direction = vec![0f64; dim];
    for (row, weight) in rows.iter().zip(&v) {
        direction.iter_mut().zip(row.iter()).for_each(|(d, &x)| *d += weight * x as f64);
    }
    let norm = direction.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        direction.iter_mut().for_each(|x| *x /= norm);
    }
    let project = |row: &[f32]| row.iter().zip(&direction).map(|(&x, d)| x as f64 * d).sum::<f64>();
    let largest = rows.iter().max_by(|a, b| dot_f64(a, a).total_cmp(&dot_f64(b, b)));
    let orientation = if largest.is_some_and(|row| project(row) < 0.0) { -1.0 } else { 1.0 };
    let positive = rows.iter().filter(|row| orientation * project(row) > 0.0).count();
    let sign = orientation * if 2 * positive > k { 1.0 } else { -1.0 };
    direction.into_iter().map(|x| (sign * x) as f32).collect()
}

/// Top eigenvector of a symmetric positive semi-definite `n x n` matrix, by power iteration
/// starting from the column of the largest diagonal entry (never orthogonal to the top
/// eigenvector unless that column is zero), to a change below 1e-13.
fn top_eigenvector(matrix: &[f64], n: usize) -> Vec<f64> {
    let start = (0..n).max_by(|&a, &b| matrix[a * n + a].total_cmp(&matrix[b * n + b])).unwrap_or(0);
    let mut v: Vec<f64> = (0..n).map(|i| matrix[i * n + start]).collect();
    if !normalise(&mut v) {
        return vec![0.0; n];
    }
    for _ in 0..100_000 {
        let mut next: Vec<f64> = (0..n).map(|i| (0..n).map(|j| matrix[i * n + j] * v[j]).sum()).collect();
        if !normalise(&mut next) {
            return v;
        }
        let change = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        v = next;
        if change < 1e-13 {
            break;
        }
    }
    v
}

fn normalise(v: &mut [f64]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}
