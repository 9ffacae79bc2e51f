//! `y = x W + b` on the CPU with `W` packed once, when the model loads.
//!
//! What it computes: for row-major `x` `[M, K]`, a layer's `W` `[K, N]` and bias `b` `[N]`, the
//! row-major `y` `[M, N]`, every output accumulated over the whole of `K` in registers and
//! stored once.
//!
//! Why it is fast on the forward's shapes (`M` = 50 tokens an image, `K`, `N` of 768 to 3072),
//! where flex's general matrix product (the `gemm` crate) reaches about a third of these
//! cores' peak:
//! - `W` is rearranged once into panels of [`PANEL`] columns, each panel `K` rows of
//!   [`PANEL`] consecutive values: the kernel reads a panel front to back, one 192-byte row per
//!   step, with no packing on any call.
//! - The register tile is up to [`ROWS`] rows by [`PANEL`] columns (on AVX-512: 27
//!   accumulators of 16 lanes; per step 3 loads of `W`, 9 broadcasts of `x` and 27 fused
//!   multiply-adds), so it is bound by the multiply-add units, not by loads. The rows are split
//!   into tiles of near-equal size (50 tokens: 8, 8, 9, 8, 8, 9), so no tile is a small tail.
//!   In WebAssembly the tile is 4 rows, 8 columns at a time (see [`ROWS`]).
//! - The bias is the accumulators' starting value, and CLIP's QuickGELU, when asked, is applied
//!   to each tile before it is stored: no pass over `y` for either.
//! - Threads split the panels (rayon: natively, and in the threaded wasm module): at batch 1 each thread runs
//!   whole panels over all rows instead of sharing one small product.
//!
//! Pinned by the tests below (odd sizes, tails of rows and columns, against a plain triple
//! loop) and by the golden tests of the image and text towers, which run through it on the CPU.

mod tiles;

pub use tiles::available;
#[cfg(target_arch = "x86_64")]
pub(super) use tiles::avx512;
use tiles::{tile_product, TileInput};

use super::SharedOut;

/// Columns per panel: three AVX-512 registers, twelve WebAssembly SIMD ones.
pub const PANEL: usize = 48;
/// Rows per register tile, at most: nine with AVX-512, whose 32 vector registers hold the
/// tile's 27 accumulators, three panel values and a broadcast: 27 fused multiply-adds per 12
/// loads (five rows: 15 per 8); more than nine spill. Measured against 5 and 8 rows in
/// `docs/performance.md` (*Why the kernels are shaped so*).
#[cfg(not(target_arch = "wasm32"))]
pub const ROWS: usize = 9;
/// Rows per register tile, at most: four in WebAssembly, whose SIMD engines map onto 16
/// registers. Four rows of eight columns keep 8 accumulators, 2 panel values and a broadcast in
/// registers; five rows (13 registers) spill on the engines measured (`docs/performance.md`,
/// *Why the kernels are shaped so*).
#[cfg(target_arch = "wasm32")]
pub const ROWS: usize = 4;

/// A layer's weight `[K, N]` and bias `[N]` in the kernel's layout: `panels` panels of `K` rows
/// of [`PANEL`] values (zero past column `N`), the bias padded likewise.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    k: usize,
    n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs the row-major weight `[k, n]` and the bias `[n]`.
    pub fn new(weight: &[f32], bias: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), k * n, "weight is not [k, n]");
        assert_eq!(bias.len(), n, "bias is not [n]");
        let count = n.div_ceil(PANEL);
        let mut panels = vec![0.0f32; count * k * PANEL];
        for (p, panel) in panels.chunks_exact_mut(k * PANEL).enumerate() {
            let (start, end) = (p * PANEL, ((p + 1) * PANEL).min(n));
            for (row, packed) in panel.chunks_exact_mut(PANEL).enumerate() {
                packed[..end - start].copy_from_slice(&weight[row * n + start..row * n + end]);
            }
        }
        let mut padded = vec![0.0f32; count * PANEL];
        padded[..n].copy_from_slice(bias);
        Self { k, n, panels, bias: padded }
    }

    /// Input features `K`.
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// Output features `N`.
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// The weight back in row-major `[K, N]` (for the lens, which reads the matrices).
    pub fn weight(&self) -> Vec<f32> {
        let mut weight = vec![0.0f32; self.k * self.n];
        for (row, out) in weight.chunks_exact_mut(self.n).enumerate() {
            for (p, chunk) in out.chunks_mut(PANEL).enumerate() {
                let at = (p * self.k + row) * PANEL;
                chunk.copy_from_slice(&self.panels[at..at + chunk.len()]);
            }
        }
        weight
    }

    /// `x W + b` for row-major `x` `[m, K]`: row-major `[m, N]`.
    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        self.forward_with(x, m, Epilogue::None)
    }

    /// `x W + b`, then `epilogue` on each value.
    pub fn forward_with(&self, x: &[f32], m: usize, epilogue: Epilogue) -> Vec<f32> {
        let mut y = vec![0.0f32; m * self.n];
        self.run(x, m, Bias::Added, epilogue, &mut y);
        y
    }

    /// `x W + b` for row-major `x` `[m, K]`, written to `y` `[m, N]`.
    pub fn forward_into(&self, x: &[f32], m: usize, y: &mut [f32]) {
        self.run(x, m, Bias::Added, Epilogue::None, y);
    }

    /// `x W` without the bias: row-major `[m, N]`.
    pub fn product(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; m * self.n];
        self.run(x, m, Bias::Left, Epilogue::None, &mut y);
        y
    }

    /// Every panel's product into `y`, the panels split between threads.
    fn run(&self, x: &[f32], m: usize, bias: Bias, epilogue: Epilogue, y: &mut [f32]) {
        assert_eq!(x.len(), m * self.k, "input is not [m, k]");
        assert_eq!(y.len(), m * self.n, "output is not [m, n]");
        let out = SharedOut(y.as_mut_ptr());
        split_panels(self.n.div_ceil(PANEL), m * self.k * PANEL, |first, last| {
            for p in first..last {
                self.panel_product(x, m, p, bias, epilogue, out);
            }
        });
    }

    /// Columns `p * PANEL ..` of every row of `y`. Never inlined: inlined into `forward_with`'s
    /// rayon task, the threaded release wasm module ran the packed product at a third of the
    /// speed (`bench.html?probe=1&threads=2`; figures in `docs/performance.md`). Both this and
    /// [`super::store`] are needed; the inlined copy has no more `memory.fill`/`memory.copy`
    /// than this one, so the cause is not pinned down.
    #[inline(never)]
    fn panel_product(&self, x: &[f32], m: usize, p: usize, bias: Bias, epilogue: Epilogue, y: SharedOut) {
        let panel = &self.panels[p * self.k * PANEL..(p + 1) * self.k * PANEL];
        let bias = match bias {
            Bias::Added => &self.bias[p * PANEL..(p + 1) * PANEL],
            Bias::Left => &[0.0; PANEL],
        };
        let cols = PANEL.min(self.n - p * PANEL);
        // One tile for all rows: every product overwrites the rows it uses.
        let mut tile = [[0.0f32; PANEL]; ROWS];
        // The first tile also brings the next panel into the second-level cache, so that its
        // tiles do not wait on memory: at batch 1 the weights are read once per forward (340 MB
        // for ViT-B/32), and the forward waited on them (`benches/forward.rs`; before/after in
        // `docs/performance.md`).
        let next = &self.panels[((p + 1) * self.k * PANEL).min(self.panels.len())..];
        let mut prefetch = (next.len() >= self.k * PANEL).then_some(next);
        for (row, rows) in row_tiles(m) {
            let x = &x[row * self.k..(row + rows) * self.k];
            tile_product(TileInput { x, rows, k: self.k, panel, bias, prefetch: prefetch.take() }, &mut tile);
            for (r, values) in tile.iter_mut().take(rows).enumerate() {
                apply_epilogue(epilogue, &mut values[..cols]);
                // SAFETY: each (row, panel) block of y is written by one call only: panels are
                // split between threads, rows walked here; the block lies inside y's m x n.
                unsafe { super::store(&values[..cols], y.at((row + r) * self.n + p * PANEL)) };
            }
        }
    }
}

/// `m` rows as register tiles `(first row, rows)`: the fewest tiles of at most [`ROWS`] rows,
/// of sizes that differ by one at most (a full tile's speed on all of them, not a short tail).
fn row_tiles(m: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = m.div_ceil(ROWS);
    (0..tiles).map(move |t| (t * m / tiles, (t + 1) * m / tiles - t * m / tiles))
}

/// Whether a product adds the layer's bias.
#[derive(Debug, Clone, Copy)]
enum Bias {
    Added,
    Left,
}

/// What is applied to each output value before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    /// The affine map alone.
    None,
    /// CLIP's QuickGELU, `y * sigmoid(1.702 y)`.
    QuickGelu,
}

/// `epilogue` on `values`, in AVX-512 registers where the CPU has them.
fn apply_epilogue(epilogue: Epilogue, values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512F (checked).
        unsafe { avx512::epilogue(epilogue, values) };
        return;
    }
    epilogue.apply(values)
}

impl Epilogue {
    /// Applies the epilogue in place; a loop the compiler vectorises (no calls into libm), with
    /// the vector width of the function it is inlined into.
    #[inline(always)]
    fn apply(self, values: &mut [f32]) {
        if self == Epilogue::QuickGelu {
            for v in values {
                *v /= 1.0 + exp(-1.702 * *v);
            }
        }
    }
}

/// `e^x` in branch-free arithmetic, so that loops over it vectorise: `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2` (n rounded by adding 1.5 * 2^23), `e^r` by its Taylor polynomial of degree
/// 7 (truncation under 1e-8 relative), `2^n` built in the exponent bits. Within 3e-7 relative
/// of `e^x` (`exp_is_accurate`); arguments are clamped to [-87, 88], where `2^n` is a normal
/// number (QuickGELU of a value beyond them is that value or 0 to within 1e-38).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    #[allow(clippy::excessive_precision)] // written out exactly: 355/512
    const LN2_HI: f32 = 0.693_359_375; // ln 2 = LN2_HI + LN2_LO; LN2_HI = 355/512, so n LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n + 127 in the exponent field (wrapping: overflow checks would keep the loop scalar).
    let exponent = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(exponent)
}

/// Runs `work(first, last)` over `0..count` panels: split between rayon's threads (natively, and
/// in the threaded wasm module) when the product is large enough to pay for them
/// (`flops_per_panel` multiply-adds each), else in one call.
fn split_panels(count: usize, flops_per_panel: usize, work: impl Fn(usize, usize) + Sync) {
    const MIN_WORK_PER_THREAD: usize = 1 << 20;
    let threads = rayon::current_num_threads().min(count).min((count * flops_per_panel / MIN_WORK_PER_THREAD).max(1));
    if threads > 1 {
        use rayon::prelude::*;
        let per = count.div_ceil(threads);
        (0..threads).into_par_iter().for_each(|t| work((t * per).min(count), ((t + 1) * per).min(count)));
        return;
    }
    work(0, count);
}

#[cfg(test)]
mod tests;
