//! Each neuron's nearest neurons of its layer by the cosine of their directions r_n (the map's
//! neighbours: neurons that write the same thing to the image embedding).

use rayon::prelude::*;

use crate::vector::{dot_lanes, norm};

/// For each of the directions `[N, D]`, the `count` others with the largest cosine, nearest
/// first (equal cosines: the lower index first), as i32 `[N, count]`; -1 pads when the layer has
/// fewer than `count + 1` neurons. A zero direction has cosine 0 with every other.
pub fn nearest_neighbours(directions: &[f32], dim: usize, count: usize) -> Vec<i32> {
    neighbour_ids(&nearest_with_cosines(directions, dim, count), count, count)
}

/// The first `count` ids of each row of [`nearest_with_cosines`]' `[N, computed]`, -1 padding.
pub fn neighbour_ids(nearest: &[(Option<usize>, f32)], computed: usize, count: usize) -> Vec<i32> {
    let id = |row: &[(Option<usize>, f32)], i: usize| row.get(i).and_then(|&(other, _)| other).map_or(-1, |o| o as i32);
    nearest.chunks_exact(computed.max(1)).flat_map(|row| (0..count).map(move |i| id(row, i))).collect()
}

/// [`nearest_neighbours`] with their cosines: `[N, count]` of `(neuron, cosine)`, `(None, 0)`
/// padding.
///
/// O(N^2 D): each neuron's dot products with every other, a neuron per thread (ViT-B/32: 4.8
/// GFLOP per layer). The dot products are [`dot_lanes`]': the same bits natively and in the page,
/// so both find the same neighbours (and the same map).
pub fn nearest_with_cosines(directions: &[f32], dim: usize, count: usize) -> Vec<(Option<usize>, f32)> {
    let rows: Vec<&[f32]> = directions.chunks_exact(dim).collect();
    let inverse_norms: Vec<f32> = rows.iter().map(|r| 1.0 / norm(r).max(f32::MIN_POSITIVE)).collect();
    let mut out = vec![(None, 0.0); rows.len() * count];
    out.par_chunks_mut(count.max(1)).enumerate().for_each(|(n, nearest)| {
        let mut cosines: Vec<(f32, usize)> = (0..rows.len())
            .filter(|&other| other != n)
            .map(|other| (dot_lanes(rows[n], rows[other]) * inverse_norms[n] * inverse_norms[other], other))
            .collect();
        let by_closeness = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if cosines.len() > count {
            cosines.select_nth_unstable_by(count, by_closeness);
            cosines.truncate(count);
        }
        cosines.sort_by(by_closeness);
        for (slot, (cosine, other)) in nearest.iter_mut().zip(cosines) {
            *slot = (Some(other), cosine);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four directions in the plane at 0, 10, 100 and 180 degrees (unequal lengths): by hand,
    /// 0's nearest are 10 (cos 0.985), 100 (cos -0.174), 180 (cos -1); 10's are 0 (0.985), 100
    /// (0); 100's are 180 (cos 80° = 0.174), 10 (0); 180's are 100 (0.174), 10 (-0.985).
    #[test]
    fn neighbours_are_the_largest_cosines_in_order() {
        let angle =
            |degrees: f32, length: f32| [length * degrees.to_radians().cos(), length * degrees.to_radians().sin()];
        let directions: Vec<f32> = [angle(0.0, 1.0), angle(10.0, 3.0), angle(100.0, 0.5), angle(180.0, 2.0)].concat();
        let nearest = nearest_neighbours(&directions, 2, 2);
        assert_eq!(nearest, [1, 2, 0, 2, 3, 1, 2, 1]);
        // Asked for more than there are: -1 pads.
        assert_eq!(&nearest_neighbours(&directions, 2, 4)[..4], [1, 2, 3, -1]);
    }
}
