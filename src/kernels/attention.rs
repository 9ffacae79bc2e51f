//! Multi-head attention over a few dozen tokens, on the rows of the projected queries, keys and
//! values as they come out of the linear layers.
//!
//! What it computes: for each image `b`, head `h` and query row `i`, the probabilities
//! `p_ij = softmax_j(q_i . k_j / sqrt(d) + mask_ij)` over the head's `d` columns, and the mixed
//! values `sum_j p_ij v_j` written into those same columns of row `i`; plus every `p_ij`
//! (`[B, H, Q, T]`, which the lens reads).
//!
//! Why it is fast where burn's ops are slow for CLIP's 50 or 77 tokens: no head split (flex
//! copies `[B, T, H, d]` into `[B, H, T, d]` for the two batched products and back after), no
//! separate passes for the scale, the mask, the softmax's max, exponentials and sum; one task
//! per (image, head), split between rayon's threads. The dot products run in 16-lane
//! blocks the compiler vectorises; the exponential is the packed kernel's
//! ([`super::packed_linear::exp`]).
//!
//! Pinned by `attention_matches_the_definition` below and by the golden tests of both towers
//! (the text tower's causal mask included), which run through it on the CPU.

use super::packed_linear::exp;
use super::SharedOut;

/// Lanes of the blocked dot product.
const LANES: usize = 16;

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Images.
    pub batch: usize,
    /// Query rows per image (the first `queries` tokens).
    pub queries: usize,
    /// Key and value rows per image.
    pub tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Columns per head.
    pub head_dim: usize,
}

/// Attention of row-major `q` `[B, Q, H d]` over `k`, `v` `[B, T, H d]`; `mask` `[Q', T]` with
/// `Q' >= Q` (its first `Q` rows are added to the scores). Returns the mixed values
/// `[B, Q, H d]` and the probabilities `[B, H, Q, T]`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, shape: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let AttentionShape { batch, queries, tokens, heads, head_dim } = shape;
    let width = heads * head_dim;
    assert!(
        q.len() == batch * queries * width && k.len() == batch * tokens * width && v.len() == k.len(),
        "q, k, v do not match the shape"
    );
    assert!(mask.is_none_or(|m| m.len() >= queries * tokens && m.len() % tokens == 0), "the mask is not [>= Q, T]");
    let mut mixed = vec![0.0f32; q.len()];
    let mut probs = vec![0.0f32; batch * heads * queries * tokens];
    let (out, out_probs) = (SharedOut(mixed.as_mut_ptr()), SharedOut(probs.as_mut_ptr()));
    let task = |t: usize| {
        let (b, h) = (t / heads, t % heads);
        let head = Head {
            q: &q[b * queries * width..],
            k: &k[b * tokens * width..],
            v: &v[b * tokens * width..],
            column: h * head_dim,
            shape,
        };
        // SAFETY: task (b, h) writes rows b * Q .. (b + 1) * Q of mixed at columns h d .. (h + 1) d
        // and block (b, h) of probs: no two tasks share an element; both lie inside the buffers.
        unsafe { run_head(&head, mask, out.at(b * queries * width), out_probs.at(t * queries * tokens)) };
    };
    super::run_tasks(batch * heads, batch * queries * tokens * width, task);
    (mixed, probs)
}

/// [`Head::run`], in AVX-512 registers where the CPU has them.
///
/// # Safety
/// As [`Head::run`].
unsafe fn run_head(head: &Head, mask: Option<&[f32]>, mixed: *mut f32, probs: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    if super::packed_linear::avx512::available() {
        // SAFETY: the CPU has AVX-512F (checked); the rest is the caller's.
        unsafe { run_head_avx512(head, mask, mixed, probs) };
        return;
    }
    unsafe { head.run(mask, mixed, probs) }
}

/// [`Head::run`] compiled for AVX-512: its 16-lane blocks in one register each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_head_avx512(head: &Head, mask: Option<&[f32]>, mixed: *mut f32, probs: *mut f32) {
    unsafe { head.run(mask, mixed, probs) }
}

/// One (image, head): its rows of q, k, v start at the image's first row; the head's columns
/// start at `column`.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    column: usize,
    shape: AttentionShape,
}

impl Head<'_> {
    /// Writes the head's mixed values into `mixed` (the image's first output row) and its
    /// probabilities `[Q, T]` into `probs`.
    #[inline(always)]
    unsafe fn run(&self, mask: Option<&[f32]>, mixed: *mut f32, probs: *mut f32) {
        let AttentionShape { queries, tokens, heads, head_dim, .. } = self.shape;
        let width = heads * head_dim;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut scores = vec![0.0f32; tokens];
        let mut row_out = vec![0.0f32; head_dim];
        for i in 0..queries {
            let qi = &self.q[i * width + self.column..][..head_dim];
            for (j, score) in scores.iter_mut().enumerate() {
                *score = dot(qi, &self.k[j * width + self.column..][..head_dim]) * scale
                    + mask.map_or(0.0, |m| m[i * tokens + j]);
            }
            softmax_in_place(&mut scores);
            // The first token's term starts the sum (no zero fill: a `memory.fill` in wasm,
            // see [`super::store`]).
            let value_row = |j: usize| &self.v[j * width + self.column..][..head_dim];
            for (o, &x) in row_out.iter_mut().zip(value_row(0)) {
                *o = scores[0] * x;
            }
            for (j, &p) in scores.iter().enumerate().skip(1) {
                for (o, &x) in row_out.iter_mut().zip(value_row(j)) {
                    *o += p * x;
                }
            }
            // SAFETY: see `attention`: this task's own columns of row i, and row i of its block.
            unsafe {
                super::store(&row_out, mixed.add(i * width + self.column));
                super::store(&scores, probs.add(i * tokens));
            }
        }
    }
}

/// `a . b` in [`LANES`] partial sums (then added up), so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (blocks_a, rest_a) = a.split_at(a.len() / LANES * LANES);
    let (blocks_b, rest_b) = b.split_at(blocks_a.len());
    for (x, y) in blocks_a.chunks_exact(LANES).zip(blocks_b.chunks_exact(LANES)) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + rest_a.iter().zip(rest_b).map(|(x, y)| x * y).sum::<f32>()
}

/// `softmax` of a row in place (its maximum subtracted first).
#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inverse = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inverse);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_values as values;

    /// Attention by the definition, in f64.
    fn reference(q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>, s: AttentionShape) -> (Vec<f64>, Vec<f64>) {
        let width = s.heads * s.head_dim;
        let (mut mixed, mut probs) = (vec![0.0; q.len()], vec![0.0; s.batch * s.heads * s.queries * s.tokens]);
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.queries {
                    let col = |row: usize| b * s.tokens * width + row * width + h * s.head_dim;
                    let qi = b * s.queries * width + i * width + h * s.head_dim;
                    let scores: Vec<f64> = (0..s.tokens)
                        .map(|j| {
                            let dot: f64 = (0..s.head_dim).map(|c| q[qi + c] as f64 * k[col(j) + c] as f64).sum();
                            dot / (s.head_dim as f64).sqrt() + mask.map_or(0.0, |m| m[i * s.tokens + j] as f64)
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|x| (x - max).exp()).sum();
                    for j in 0..s.tokens {
                        let p = (scores[j] - max).exp() / total;
                        probs[((b * s.heads + h) * s.queries + i) * s.tokens + j] = p;
                        for c in 0..s.head_dim {
                            mixed[qi + c] += p * v[col(j) + c] as f64;
                        }
                    }
                }
            }
        }
        (mixed, probs)
    }

    #[test]
    fn attention_matches_the_definition() {
        // A vision-like shape (all queries, heads of 64 split between threads), the CLS-only
        // last block (one query), and a causal text mask with heads of odd width.
        let cases = [
            (AttentionShape { batch: 2, queries: 50, tokens: 50, heads: 12, head_dim: 64 }, false),
            (AttentionShape { batch: 3, queries: 1, tokens: 50, heads: 4, head_dim: 16 }, false),
            (AttentionShape { batch: 1, queries: 9, tokens: 9, heads: 3, head_dim: 21 }, true),
        ];
        for (s, masked) in cases {
            let width = s.heads * s.head_dim;
            let (q, k, v) = (
                values(s.batch * s.queries * width, 1),
                values(s.batch * s.tokens * width, 2),
                values(s.batch * s.tokens * width, 3),
            );
            let mask: Option<Vec<f32>> = masked.then(|| {
                (0..s.queries * s.tokens)
                    .map(|x| if x % s.tokens > x / s.tokens { f32::NEG_INFINITY } else { 0.0 })
                    .collect()
            });
            let (mixed, probs) = attention(&q, &k, &v, mask.as_deref(), s);
            let (want_mixed, want_probs) = reference(&q, &k, &v, mask.as_deref(), s);
            for (got, want) in mixed.iter().zip(&want_mixed).chain(probs.iter().zip(&want_probs)) {
                assert!((*got as f64 - want).abs() <= 2e-6, "{s:?}: {got} vs {want}");
            }
        }
    }
}
