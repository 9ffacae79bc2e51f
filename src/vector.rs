//! Dot products, norms and unit vectors of f32 slices: what the lens, the applications and the
//! bundle share (the CPU kernels keep their own vector code).

/// `a . b`, summed in order in f32 (over the shorter of the two).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a . b` in f32 as eight independent sums (lane i takes elements i, i + 8, ...) added in order
/// at the end: it vectorises, and gives the same bits on every target (no sum is reordered).
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        (0..8).for_each(|i| sums[i] += x[i] * y[i]);
    }
    sums.iter().sum::<f32>() + tail
}

/// `|a|`, summed in order in f32.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// `a . b` accumulated in f64 (eight independent sums, so that it vectorises); `a` is f32 or
/// f64 (OMP's residuals).
pub fn dot_f64<T: Copy + Into<f64>>(a: &[T], b: &[f32]) -> f64 {
    let mut sums = [0f64; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| x.into() * y as f64).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        (0..8).for_each(|i| sums[i] += x[i].into() * y[i] as f64);
    }
    sums.iter().sum::<f64>() + tail
}

/// `a / |a|`, the norm taken in f64; `None` for a zero or non-finite vector.
pub fn unit(a: &[f32]) -> Option<Vec<f32>> {
    let norm = dot_f64(a, a).sqrt();
    (norm.is_finite() && norm > 0.0).then(|| a.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_norm_of_small_vectors() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, -5.0, 6.0]), 12.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        // Eight lanes plus a tail of three: 1 + 2 + ... + 11 = 66.
        let ones = [1.0f32; 11];
        let counts: Vec<f32> = (1..=11).map(|i| i as f32).collect();
        assert_eq!(dot_f64(&counts, &ones), 66.0);
    }

    #[test]
    fn unit_scales_to_length_one_and_refuses_zero() {
        assert_eq!(unit(&[0.0, -3.0, 4.0]), Some(vec![0.0, -0.6, 0.8]));
        assert_eq!(unit(&[0.0, 0.0]), None);
        assert_eq!(unit(&[f32::NAN, 1.0]), None);
    }
}
