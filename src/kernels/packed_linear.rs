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
            tile_product(x, rows, self.k, panel, bias, prefetch.take(), &mut tile);
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

/// `$kernel::<R>(args)` for the row count `$rows` (1 to [`ROWS`]), so that each tile's
/// accumulators are a fixed set of registers.
macro_rules! for_rows {
    ($rows:expr, $kernel:ident($($arg:expr),*)) => {
        match $rows {
            #[cfg(not(target_arch = "wasm32"))]
            9 => $kernel::<9>($($arg),*),
            #[cfg(not(target_arch = "wasm32"))]
            8 => $kernel::<8>($($arg),*),
            #[cfg(not(target_arch = "wasm32"))]
            7 => $kernel::<7>($($arg),*),
            #[cfg(not(target_arch = "wasm32"))]
            6 => $kernel::<6>($($arg),*),
            #[cfg(not(target_arch = "wasm32"))]
            5 => $kernel::<5>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            _ => $kernel::<1>($($arg),*),
        }
    };
}

/// One register tile: `rows` (at most [`ROWS`]) rows of `x` (row-major, `k` wide) times one
/// panel, plus the panel's bias, into `tile`. Natively `prefetch` (another panel, when given)
/// is brought into the second-level cache on the way; WebAssembly has no prefetch.
fn tile_product(
    x: &[f32],
    rows: usize,
    k: usize,
    panel: &[f32],
    bias: &[f32],
    prefetch: Option<&[f32]>,
    tile: &mut [[f32; PANEL]; ROWS],
) {
    debug_assert!((1..=ROWS).contains(&rows) && x.len() == rows * k && panel.len() == k * PANEL);
    debug_assert!(prefetch.is_none_or(|next| next.len() >= k * PANEL));
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512F (checked); the slices have the sizes asserted above.
        unsafe { avx512::tile(x, rows, k, panel, bias, prefetch, tile) };
        return;
    }
    let _ = prefetch;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd128::tile(x, rows, k, panel, bias, tile);
        return;
    }
    #[allow(unreachable_code)]
    {
        portable_tile(x, rows, k, panel, bias, tile)
    }
}

/// Whether this machine has a vector kernel (AVX-512 natively, SIMD in WebAssembly); elsewhere
/// the model keeps flex's matrix product, which is faster than [`portable_tile`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::available()
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
    {
        false
    }
}

/// The tile in plain Rust: the reference the vector kernels are tested against, and what runs
/// where neither exists (only in tests: see [`available`]).
fn portable_tile(x: &[f32], rows: usize, k: usize, panel: &[f32], bias: &[f32], tile: &mut [[f32; PANEL]; ROWS]) {
    for (r, out) in tile.iter_mut().take(rows).enumerate() {
        out.copy_from_slice(bias);
        for (step, w) in panel.chunks_exact(PANEL).enumerate() {
            let v = x[r * k + step];
            for (o, w) in out.iter_mut().zip(w) {
                *o += v * w;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    use super::{PANEL, ROWS};

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// [`Epilogue::apply`] compiled for AVX-512 (16 lanes; without this, baseline x86-64 code
    /// would run it 4 lanes wide).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn epilogue(epilogue: super::Epilogue, values: &mut [f32]) {
        epilogue.apply(values)
    }

    /// Dispatches on the row count ([`for_rows`]) and on whether a panel is prefetched.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile(
        x: &[f32],
        rows: usize,
        k: usize,
        panel: &[f32],
        bias: &[f32],
        prefetch: Option<&[f32]>,
        tile: &mut [[f32; PANEL]; ROWS],
    ) {
        unsafe {
            match prefetch {
                Some(next) => for_rows!(rows, tile_rows(x, k, panel, bias, next.as_ptr(), tile)),
                None => for_rows!(rows, tile_rows(x, k, panel, bias, std::ptr::null(), tile)),
            }
        }
    }

    /// `R` rows x 48 columns in `3 R` registers; per step of `k`: three loads of the panel's
    /// row, one broadcast per row, `3 R` fused multiply-adds, and where `next` is not null a
    /// prefetch into the second-level cache of the same row of the panel at `next`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile_rows<const R: usize>(
        x: &[f32],
        k: usize,
        panel: &[f32],
        bias: &[f32],
        next: *const f32,
        tile: &mut [[f32; PANEL]; ROWS],
    ) {
        unsafe {
            let b = bias.as_ptr();
            let start = [_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)), _mm512_loadu_ps(b.add(32))];
            let mut acc = [start; R];
            let (x, w) = (x.as_ptr(), panel.as_ptr());
            for step in 0..k {
                if !next.is_null() {
                    let ahead = next.add(step * PANEL).cast::<i8>();
                    _mm_prefetch::<_MM_HINT_T1>(ahead);
                    _mm_prefetch::<_MM_HINT_T1>(ahead.add(64));
                    _mm_prefetch::<_MM_HINT_T1>(ahead.add(128));
                }
                let row = w.add(step * PANEL);
                let w0 = _mm512_loadu_ps(row);
                let w1 = _mm512_loadu_ps(row.add(16));
                let w2 = _mm512_loadu_ps(row.add(32));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*x.add(r * k + step));
                    acc[0] = _mm512_fmadd_ps(v, w0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(v, w1, acc[1]);
                    acc[2] = _mm512_fmadd_ps(v, w2, acc[2]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let out = tile[r].as_mut_ptr();
                _mm512_storeu_ps(out, acc[0]);
                _mm512_storeu_ps(out.add(16), acc[1]);
                _mm512_storeu_ps(out.add(32), acc[2]);
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use std::arch::wasm32::*;

    use super::{PANEL, ROWS};

    /// Steps of `k` per pass over the panel's eight-column blocks: the tile's rows of `x` for
    /// one pass (4 x 128 values) stay in the first-level cache while the six blocks reread them.
    const STEPS: usize = 128;

    /// Eight columns at a time (two 4-lane registers), so that a tile's accumulators (4 rows:
    /// [`ROWS`]), the panel's values and the broadcast fit the 16 vector registers engines map
    /// WebAssembly SIMD onto; WebAssembly has no fused multiply-add, so each term is a multiply
    /// and an add. `k` runs in passes of [`STEPS`], the partial sums kept in `tile` between them.
    pub fn tile(x: &[f32], rows: usize, k: usize, panel: &[f32], bias: &[f32], tile: &mut [[f32; PANEL]; ROWS]) {
        for_rows!(rows, tile_rows(x, k, panel, bias, tile))
    }

    #[inline]
    fn tile_rows<const R: usize>(x: &[f32], k: usize, panel: &[f32], bias: &[f32], tile: &mut [[f32; PANEL]; ROWS]) {
        for first in (0..k).step_by(STEPS) {
            pass::<R>(x, k, panel, first..(first + STEPS).min(k), (first == 0).then_some(bias), tile);
        }
    }

    /// Adds steps `steps` of the product to the partial sums in `tile`; the first pass starts
    /// from `bias` instead (loaded into the accumulators: a copy of it into `tile` would be a
    /// `memory.copy`, see [`super::store`]).
    #[inline]
    fn pass<const R: usize>(
        x: &[f32],
        k: usize,
        panel: &[f32],
        steps: std::ops::Range<usize>,
        bias: Option<&[f32]>,
        tile: &mut [[f32; PANEL]; ROWS],
    ) {
        for block in (0..PANEL).step_by(8) {
            // SAFETY: block + 8 <= PANEL, the width of tile's rows, of the bias and of every
            // panel row; the x reads are r * k + step < R * k = x.len().
            unsafe {
                let mut acc = [[f32x4_splat(0.0); 2]; R];
                for (acc, partial) in acc.iter_mut().zip(tile.iter()) {
                    let start = bias.unwrap_or(partial).as_ptr().add(block);
                    *acc = [v128_load(start as *const v128), v128_load(start.add(4) as *const v128)];
                }
                for step in steps.clone() {
                    let row = panel.as_ptr().add(step * PANEL + block);
                    let w0 = v128_load(row as *const v128);
                    let w1 = v128_load(row.add(4) as *const v128);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let v = f32x4_splat(*x.get_unchecked(r * k + step));
                        acc[0] = f32x4_add(acc[0], f32x4_mul(v, w0));
                        acc[1] = f32x4_add(acc[1], f32x4_mul(v, w1));
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let out = tile[r].as_mut_ptr().add(block);
                    v128_store(out as *mut v128, acc[0]);
                    v128_store(out.add(4) as *mut v128, acc[1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The product by the definition, in f64, with the sum of the terms' magnitudes (which
    /// bounds f32 accumulation's error: (k + 1) 2^-24 times it).
    fn reference(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<(f64, f64)> {
        let mut y = vec![(0.0, 0.0); m * n];
        for i in 0..m {
            for j in 0..n {
                let terms = (0..k).map(|t| x[i * k + t] as f64 * w[t * n + j] as f64).chain([b[j] as f64]);
                y[i * n + j] = terms.fold((0.0, 0.0), |(sum, size), t| (sum + t, size + t.abs()));
            }
        }
        y
    }

    fn check(m: usize, k: usize, n: usize) {
        let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
        let packed = PackedLinear::new(&w, &b, k, n);
        let y = packed.forward(&x, m);
        assert_eq!(y.len(), m * n);
        for (i, (&got, &(want, size))) in y.iter().zip(&reference(&x, &w, &b, m, k, n)).enumerate() {
            let bound = (k + 1) as f64 * f32::EPSILON as f64 / 2.0 * size + 1e-30;
            assert!(
                (got as f64 - want).abs() <= bound,
                "[{m},{k}]x[{k},{n}] at ({}, {}): {got} vs {want}",
                i / n,
                i % n
            );
        }
    }

    #[test]
    fn products_of_every_tail_match_the_definition() {
        // Rows that are and are not multiples of the tile, columns that end mid-panel, a
        // single row and column, and a forward-sized product split between threads.
        for (m, k, n) in [
            (5, 8, 48),
            (7, 13, 50),
            (1, 1, 1),
            (3, 64, 95),
            (12, 33, 144),
            (50, 768, 96),
            (11, 40, 1),
            (2, 5, 48),
            (4, 17, 97),
            (17, 21, 49),
        ] {
            check(m, k, n);
        }
    }

    #[test]
    fn the_product_without_bias_and_the_product_into_a_slice_match_the_definition() {
        let (m, k, n) = (13, 70, 101);
        let (x, w, b) = (values(m * k, 12), values(k * n, 13), values(n, 14));
        let packed = PackedLinear::new(&w, &b, k, n);
        let zero = vec![0.0f32; n];
        for (&got, &(want, size)) in packed.product(&x, m).iter().zip(&reference(&x, &w, &zero, m, k, n)) {
            assert!(
                (got as f64 - want).abs() <= (k + 1) as f64 * f32::EPSILON as f64 / 2.0 * size + 1e-30,
                "{got} vs {want}"
            );
        }
        let mut into = vec![f32::NAN; m * n];
        packed.forward_into(&x, m, &mut into);
        assert_eq!(into, packed.forward(&x, m));
    }

    #[test]
    fn row_tiles_cover_every_row_in_the_fewest_even_tiles() {
        for m in 1..200 {
            let tiles: Vec<_> = row_tiles(m).collect();
            assert_eq!(tiles.len(), m.div_ceil(ROWS), "{m} rows");
            let mut next = 0;
            for &(row, rows) in &tiles {
                assert_eq!(row, next, "{m} rows: {tiles:?}");
                assert!((1..=ROWS).contains(&rows), "{m} rows: {tiles:?}");
                next += rows;
            }
            assert_eq!(next, m);
            let (small, large) = (tiles.iter().map(|t| t.1).min().unwrap(), tiles.iter().map(|t| t.1).max().unwrap());
            assert!(large - small <= 1, "{m} rows: {tiles:?}");
        }
    }

    #[test]
    fn quick_gelu_is_applied_to_every_value() {
        let (m, k, n) = (7, 19, 53);
        let (x, w, b) = (values(m * k, 9), values(k * n, 10), values(n, 11));
        let packed = PackedLinear::new(&w, &b, k, n);
        let plain = packed.forward(&x, m);
        let activated = packed.forward_with(&x, m, Epilogue::QuickGelu);
        for (&y, &a) in plain.iter().zip(&activated) {
            let expected = y as f64 / (1.0 + (-1.702 * y as f64).exp());
            assert!((a as f64 - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "{a} vs QuickGELU({y}) = {expected}");
        }
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 1.234e-4; // inside the clamp
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3e-7, "exp's worst relative error on [-87, 88] is {worst:.2e}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn the_weight_unpacks_exactly() {
        let (w, b) = (values(7 * 101, 4), values(101, 5));
        assert_eq!(PackedLinear::new(&w, &b, 7, 101).weight(), w);
    }

    #[test]
    fn the_vector_tile_matches_the_portable_one() {
        let k = 37;
        let (x, panel, bias) = (values(ROWS * k, 6), values(k * PANEL, 7), values(PANEL, 8));
        for rows in 1..=ROWS {
            let (mut fast, mut plain) = ([[0.0f32; PANEL]; ROWS], [[0.0f32; PANEL]; ROWS]);
            tile_product(&x[..rows * k], rows, k, &panel, &bias, None, &mut fast);
            portable_tile(&x[..rows * k], rows, k, &panel, &bias, &mut plain);
            for r in 0..rows {
                for c in 0..PANEL {
                    assert!(
                        (fast[r][c] - plain[r][c]).abs() <= 1e-5,
                        "rows {rows}: ({r}, {c}) {} vs {}",
                        fast[r][c],
                        plain[r][c]
                    );
                }
            }
        }
    }
}
