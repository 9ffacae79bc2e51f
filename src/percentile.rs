//! Percentiles of a neuron's centred norms: exact from all of them ([`exact_percentile`], what
//! `precompute` keeps within its budget), or from what a bundle keeps of them, its histogram and
//! its top k norms. Nearest rank: exact when the rank falls among the top k norms, else
//! interpolated log-linearly inside the histogram's bin, whose edges then bound the exact value.
//! Without the engine (the bundle's readers use it too).

/// Where percentile `p` (nearest rank) of a neuron's norms lies: among its top norms (0: the
/// largest), or in a histogram bin at a fraction of the bin's count; `None` without norms.
enum RankPlace {
    Top(usize),
    Bin { bin: usize, fraction: f64 },
}

fn rank_place(p: f32, counts: &[u64], top_len: usize) -> Option<RankPlace> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p as f64 / 100.0 * total as f64).ceil() as u64).clamp(1, total); // 1-based, ascending
    let from_top = (total - rank) as usize; // 0: the largest
    if from_top < top_len {
        return Some(RankPlace::Top(from_top));
    }
    let mut below = 0u64;
    for (bin, &count) in counts.iter().enumerate() {
        if count > 0 && below + count >= rank {
            return Some(RankPlace::Bin { bin, fraction: (rank - below) as f64 / count as f64 });
        }
        below += count;
    }
    Some(RankPlace::Bin { bin: counts.len() - 1, fraction: 1.0 })
}

/// Percentile `p` (nearest rank) of a neuron's norms: from its `top` norms (ascending, the
/// largest k exactly) when the rank is among them, else interpolated in the histogram.
pub fn percentile(p: f32, counts: &[u64], edges: &[f32], top: &[f32]) -> f32 {
    match rank_place(p, counts, top.len()) {
        None => 0.0,
        Some(RankPlace::Top(from_top)) => top[top.len() - 1 - from_top],
        Some(RankPlace::Bin { bin, fraction }) => {
            let (low, high) = (edges[bin] as f64, edges[bin + 1] as f64);
            (low * (high / low).powf(fraction)) as f32
        }
    }
}

/// Percentile `p` (nearest rank, as [`percentile`] ranks) of `sorted` norms (ascending): the
/// exact value; 0 without norms.
pub fn exact_percentile(p: f32, sorted: &[f32]) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p as f64 / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What bounds percentile `p`'s true value when [`percentile`] interpolated it: the edges of
/// its bin (`(low, high)`, the first bin from 0, the last without an upper edge: `None`);
/// `None` when the value is exact (among the `top_len` top norms) or there are no norms.
pub fn percentile_bounds(p: f32, counts: &[u64], edges: &[f32], top_len: usize) -> Option<(f32, Option<f32>)> {
    match rank_place(p, counts, top_len)? {
        RankPlace::Top(_) => None,
        RankPlace::Bin { bin, .. } => {
            let low = if bin == 0 { 0.0 } else { edges[bin] };
            Some((low, (bin + 1 < counts.len()).then(|| edges[bin + 1])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_top_norms_exactly_and_interpolate_below() {
        // 10 norms: 8 in bin 3 (edges 1..2), the top two exact (5 and 9).
        let mut counts = vec![0u64; 4];
        counts[3] = 8;
        counts[0] = 2; // the two top norms counted in some bin; here bin 0
        let edges = [0.125, 0.25, 0.5, 1.0, 2.0];
        let top = [5.0, 9.0];
        assert_eq!(percentile(100.0, &counts, &edges, &top), 9.0); // rank 10: the largest
        assert_eq!(percentile(90.0, &counts, &edges, &top), 5.0); // rank 9
                                                                  // rank 5: the 3rd of bin 3's 8 after bin 0's 2: 1 x 2^(3/8).
        assert!((percentile(50.0, &counts, &edges, &top) - 2f32.powf(3.0 / 8.0)).abs() < 1e-6);
        assert_eq!(percentile(50.0, &[0, 0, 0, 0], &edges, &top), 0.0);
    }

    /// The bounds of an interpolated percentile are its bin's edges (the first bin from 0, the
    /// last open above); an exact one (among the top norms) has none.
    #[test]
    fn interpolated_percentiles_are_bounded_by_their_bin() {
        let edges = [0.125, 0.25, 0.5, 1.0, 2.0];
        let mut counts = vec![0u64; 4];
        counts[2] = 8; // ranks 3..10: edges 0.5..1
        counts[0] = 2; // ranks 1, 2
        assert_eq!(percentile_bounds(50.0, &counts, &edges, 2), Some((0.5, Some(1.0))));
        assert_eq!(percentile_bounds(10.0, &counts, &edges, 2), Some((0.0, Some(0.25))));
        assert_eq!(percentile_bounds(90.0, &counts, &edges, 2), None);
        let last = [0, 0, 0, 10];
        assert_eq!(percentile_bounds(50.0, &last, &edges, 2), Some((1.0, None)));
        assert_eq!(percentile_bounds(50.0, &[0, 0, 0, 0], &edges, 2), None);
    }
}
