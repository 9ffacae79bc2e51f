//! The lens's per-head form on the CPU: every neuron's second-order effects, or their centred
//! norms, in one pass over its per-head directions.
//!
//! What it computes, for images `b`, neurons `n` and later heads `k` (later layers x heads; see
//! `crate::lens::second_order`): the effects `phi[b, n] = c[b] (sum_k s[b, k, n] u[n, k] +
//! kappa[b])`, `[B, N, D]`, and their centred norms `|phi[b, n] - mean[n]|`, `[B, N]`.
//!
//! Why it is fast: burn's ops ran this as 3072 batched `[B, K] x [K, D]` products, a permute of
//! the scalars, then three element-wise passes over `[B, N, D]` for the effects and three more
//! for the norms, each a new tensor. Here each neuron's `K` directions (rows of `D`) are read
//! once for all images; each image's row of the sum (`D` values) stays in the first-level cache while the `K`
//! terms are added to it (loops the compiler vectorises), and `kappa`, `c` and the mean are
//! applied on the way out; the norms never store `phi`. Neurons are split between rayon's
//! threads.
//!
//! Pinned by the tests below (against the definition, in f64) and by the lens's golden tests,
//! which run through it on the CPU.

use super::SharedOut;

/// Lanes of the norms' partial sums (a sum over one register: it vectorises).
const LANES: usize = 16;
/// Neurons per task.
const NEURONS_PER_TASK: usize = 16;

/// The sizes of one call.
#[derive(Debug, Clone, Copy)]
pub struct EffectShape {
    /// Images `B`.
    pub batch: usize,
    /// Neurons `N`.
    pub neurons: usize,
    /// Later heads `K` (at least one).
    pub heads: usize,
    /// Embedding dimensions `D`.
    pub dim: usize,
}

/// One image batch's terms of the per-head form, row-major.
#[derive(Debug, Clone, Copy)]
pub struct HeadTerms<'a> {
    /// `s[b, k, n]`, `[B, K, N]`.
    pub scalars: &'a [f32],
    /// `u[n, k]`, `[K, N, D]` (heads first, as the lens factors keep them).
    pub directions: &'a [f32],
    /// `kappa[b]`, `[B, D]`.
    pub kappa: &'a [f32],
    /// `c[b]`, `[B]`.
    pub scale: &'a [f32],
    /// Their sizes.
    pub shape: EffectShape,
}

impl HeadTerms<'_> {
    fn check(&self) {
        let EffectShape { batch, neurons, heads, dim } = self.shape;
        assert!(heads >= 1, "the per-head form needs a later head");
        assert!(
            self.scalars.len() == batch * heads * neurons
                && self.directions.len() == neurons * heads * dim
                && self.kappa.len() == batch * dim
                && self.scale.len() == batch,
            "the terms do not match {:?}",
            self.shape
        );
    }

    /// `sum_k s[b, k, n] u[n, k] + kappa[b]` for every image `b`, into `rows` (`B` rows of `D`,
    /// cleared first): the heads' terms added to each row in turn while it is in cache, the
    /// first term written rather than added (no zero fill: a `memory.fill` in wasm, see
    /// [`super::store`]).
    #[inline(always)]
    fn neuron_rows(&self, n: usize, rows: &mut Vec<f32>) {
        let EffectShape { batch, neurons, heads, dim } = self.shape;
        let direction = |k: usize| &self.directions[(k * neurons + n) * dim..][..dim];
        let scalar = |b: usize, k: usize| self.scalars[(b * heads + k) * neurons + n];
        rows.clear();
        for b in 0..batch {
            let s = scalar(b, 0);
            rows.extend(direction(0).iter().map(|u| s * u));
        }
        for k in 1..heads {
            let u = direction(k);
            for (b, row) in rows.chunks_exact_mut(dim).enumerate() {
                let s = scalar(b, k);
                for (r, u) in row.iter_mut().zip(u) {
                    *r += s * u;
                }
            }
        }
        for (row, kappa) in rows.chunks_exact_mut(dim).zip(self.kappa.chunks_exact(dim)) {
            for (r, kappa) in row.iter_mut().zip(kappa) {
                *r += kappa;
            }
        }
    }
}

/// The effects `phi` `[B, N, D]`.
pub fn head_effects(terms: &HeadTerms) -> Vec<f32> {
    terms.check();
    let EffectShape { batch, neurons, dim, .. } = terms.shape;
    let mut effects = vec![0.0f32; batch * neurons * dim];
    let out = SharedOut(effects.as_mut_ptr());
    for_neuron_blocks(terms, |first, last| {
        let mut rows = Vec::with_capacity(batch * dim);
        for n in first..last {
            terms.neuron_rows(n, &mut rows);
            for (b, row) in rows.chunks_exact(dim).enumerate() {
                let c = terms.scale[b];
                // SAFETY: row (b, n) of effects, written by this task alone (its neurons).
                let at = unsafe { out.at((b * neurons + n) * dim) };
                for (d, r) in row.iter().enumerate() {
                    // SAFETY: d < dim: inside row (b, n).
                    unsafe { at.add(d).write(c * r) };
                }
            }
        }
    });
    effects
}

/// The centred norms `|phi[b, n] - mean[n]|` `[B, N]`, with `mean` `[N, D]`.
pub fn head_centred_norms(terms: &HeadTerms, mean: &[f32]) -> Vec<f32> {
    terms.check();
    let EffectShape { batch, neurons, dim, .. } = terms.shape;
    assert_eq!(mean.len(), neurons * dim, "the means are not [N, D]");
    let mut norms = vec![0.0f32; batch * neurons];
    let out = SharedOut(norms.as_mut_ptr());
    for_neuron_blocks(terms, |first, last| {
        let mut rows = Vec::with_capacity(batch * dim);
        for n in first..last {
            terms.neuron_rows(n, &mut rows);
            let mean = &mean[n * dim..][..dim];
            for (b, row) in rows.chunks_exact(dim).enumerate() {
                // SAFETY: element (b, n) of norms, written by this task alone.
                unsafe { out.at(b * neurons + n).write(centred_norm(row, terms.scale[b], mean)) };
            }
        }
    });
    norms
}

/// `|c row - mean|`, in [`LANES`] partial sums.
#[inline(always)]
fn centred_norm(row: &[f32], c: f32, mean: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let blocks = row.len() / LANES * LANES;
    for (r, m) in row[..blocks].chunks_exact(LANES).zip(mean[..blocks].chunks_exact(LANES)) {
        for l in 0..LANES {
            let d = c * r[l] - m[l];
            lanes[l] += d * d;
        }
    }
    let rest: f32 = row[blocks..].iter().zip(&mean[blocks..]).map(|(r, m)| (c * r - m) * (c * r - m)).sum();
    (lanes.iter().sum::<f32>() + rest).sqrt()
}

/// Runs `work(first, last)` over blocks of [`NEURONS_PER_TASK`] neurons, on rayon's threads
/// when there is enough work, compiled for AVX-512 where the CPU has it.
fn for_neuron_blocks(terms: &HeadTerms, work: impl Fn(usize, usize) + Sync + Send) {
    let EffectShape { batch, neurons, heads, dim } = terms.shape;
    let blocks = neurons.div_ceil(NEURONS_PER_TASK);
    super::run_tasks(blocks, batch * neurons * heads * dim, |t| {
        let (first, last) = (t * NEURONS_PER_TASK, ((t + 1) * NEURONS_PER_TASK).min(neurons));
        #[cfg(target_arch = "x86_64")]
        if super::packed_linear::avx512::available() {
            // SAFETY: the CPU has AVX-512F (checked).
            unsafe { block_avx512(&work, first, last) };
            return;
        }
        work(first, last)
    });
}

/// `work(first, last)` compiled for AVX-512 (16 lanes; baseline x86-64 code would run the loops
/// 4 lanes wide).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(work: &impl Fn(usize, usize), first: usize, last: usize) {
    work(first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// `phi` by the definition, in f64, `[B, N, D]`.
    fn reference(t: &HeadTerms) -> Vec<f64> {
        let EffectShape { batch, neurons, heads, dim } = t.shape;
        let mut phi = vec![0.0; batch * neurons * dim];
        for b in 0..batch {
            for n in 0..neurons {
                for d in 0..dim {
                    let sum: f64 = (0..heads)
                        .map(|k| {
                            t.scalars[(b * heads + k) * neurons + n] as f64
                                * t.directions[(k * neurons + n) * dim + d] as f64
                        })
                        .sum();
                    phi[(b * neurons + n) * dim + d] = t.scale[b] as f64 * (sum + t.kappa[b * dim + d] as f64);
                }
            }
        }
        phi
    }

    #[test]
    fn effects_and_centred_norms_match_the_definition() {
        // ViT-B/32's layer 10 at batch 2 (one later layer of 12 heads, split between threads),
        // and odd sizes: one head, a dimension that is not a multiple of the lanes, a partial
        // last block of neurons.
        for shape in [
            EffectShape { batch: 2, neurons: 3072, heads: 12, dim: 512 },
            EffectShape { batch: 3, neurons: 37, heads: 1, dim: 21 },
            EffectShape { batch: 1, neurons: 5, heads: 7, dim: 40 },
        ] {
            let EffectShape { batch, neurons, heads, dim } = shape;
            let (scalars, directions, kappa, scale, mean) = (
                values(batch * heads * neurons, 1),
                values(neurons * heads * dim, 2),
                values(batch * dim, 3),
                values(batch, 4),
                values(neurons * dim, 5),
            );
            let terms = HeadTerms { scalars: &scalars, directions: &directions, kappa: &kappa, scale: &scale, shape };
            let want = reference(&terms);
            for (got, want) in head_effects(&terms).iter().zip(&want) {
                assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{shape:?}: {got} vs {want}");
            }
            let norms = head_centred_norms(&terms, &mean);
            for (i, got) in norms.iter().enumerate() {
                let (b, n) = (i / neurons, i % neurons);
                let want = (0..dim)
                    .map(|d| (want[(b * neurons + n) * dim + d] - mean[n * dim + d] as f64).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want), "{shape:?} ({b}, {n}): {got} vs {want}");
            }
        }
    }
}
