//! The register tiles of [`super::PackedLinear`]: rows of `x` times one panel of `W`, on
//! AVX-512 natively, WebAssembly SIMD in the page, and in plain Rust as the reference the
//! vector kernels are tested against (`the_vector_tile_matches_the_portable_one`).

use super::{PANEL, ROWS};

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

/// The operands of one register tile: `rows` (at most [`ROWS`]) rows of `x` (row-major, `k`
/// wide), one panel of `W` and its bias, and natively a panel to bring into the second-level
/// cache on the way (the next one, when there is one; WebAssembly has no prefetch).
#[derive(Clone, Copy)]
pub(super) struct TileInput<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub k: usize,
    pub panel: &'a [f32],
    pub bias: &'a [f32],
    pub prefetch: Option<&'a [f32]>,
}

/// One register tile: `input`'s rows times its panel, plus the panel's bias, into `tile`.
pub(super) fn tile_product(input: TileInput, tile: &mut [[f32; PANEL]; ROWS]) {
    let TileInput { x, rows, k, panel, prefetch, .. } = input;
    debug_assert!((1..=ROWS).contains(&rows) && x.len() == rows * k && panel.len() == k * PANEL);
    debug_assert!(prefetch.is_none_or(|next| next.len() >= k * PANEL));
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512F (checked); the slices have the sizes asserted above.
        unsafe { avx512::tile(input, tile) };
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd128::tile(input, tile);
        return;
    }
    #[allow(unreachable_code)]
    {
        portable_tile(input, tile)
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
pub(super) fn portable_tile(input: TileInput, tile: &mut [[f32; PANEL]; ROWS]) {
    let TileInput { x, rows, k, panel, bias, .. } = input;
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
pub(in crate::kernels) mod avx512 {
    use std::arch::x86_64::*;

    use super::super::{Epilogue, PANEL, ROWS};
    use super::TileInput;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// [`Epilogue::apply`] compiled for AVX-512 (16 lanes; without this, baseline x86-64 code
    /// would run it 4 lanes wide).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn epilogue(epilogue: Epilogue, values: &mut [f32]) {
        epilogue.apply(values)
    }

    /// Dispatches on the row count ([`for_rows`]) and on whether a panel is prefetched.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(input: TileInput, tile: &mut [[f32; PANEL]; ROWS]) {
        let TileInput { x, rows, k, panel, bias, prefetch } = input;
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

    use super::super::{PANEL, ROWS};
    use super::TileInput;

    /// Steps of `k` per pass over the panel's eight-column blocks: the tile's rows of `x` for
    /// one pass (4 x 128 values) stay in the first-level cache while the six blocks reread them.
    const STEPS: usize = 128;

    /// Eight columns at a time (two 4-lane registers), so that a tile's accumulators (4 rows:
    /// [`ROWS`]), the panel's values and the broadcast fit the 16 vector registers engines map
    /// WebAssembly SIMD onto; WebAssembly has no fused multiply-add, so each term is a multiply
    /// and an add. `k` runs in passes of [`STEPS`], the partial sums kept in `tile` between them.
    pub fn tile(input: TileInput, tile: &mut [[f32; PANEL]; ROWS]) {
        let TileInput { x, rows, k, panel, bias, .. } = input;
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
    /// `memory.copy`, see [`crate::kernels::store`]).
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
