//! OMP's atom search on Intel AMX: the correlations of every residual with every atom in bf16
//! tiles (x86-64 Linux), then an exact f64 recheck of the atoms that could be the largest.
//!
//! Each OMP step needs, per target, the atom whose correlation with the residual is largest in
//! magnitude: `targets x words x dim` multiply-adds, 94 GFLOP per step for 3072 neurons over
//! 30,000 words of dimension 512 (12 TFLOP for 128 steps), far beyond what f32 SIMD does in a
//! minute on two cores. AMX's `tdpbf16ps` multiplies 16x32 by 32x16 bf16 tiles into f32 at
//! about 1 TFLOP/s per core, but bf16 keeps 8 significant bits. So the tiles only *screen*:
//! with `u = 2^-8` (bf16's unit roundoff) the screened correlation `c~` of a residual `r` and
//! atom `a` is within `(2u + u^2 + (D + 1) 2^-24) |r| |a|` of the exact one (both inputs
//! rounded, products exact in f32, one f32 rounding per pair and per sum; [`screen_error`] adds
//! a quarter), so the exact largest is among the atoms whose `|c~|` is within twice that, times
//! `max |a|`, of the largest `|c~|`. Those candidates (a few to a few hundred) are recomputed
//! exactly (f64) and the largest is the pick: the atom an exact search picks.
//!
//! Splitting every value into two bf16 terms (`hi + lo`, one product over three times the
//! dimension) would leave one or two candidates, but was slower: the tile loads, not the
//! products, bound the kernel, and the tripled rows no longer fit the caches.

use std::arch::asm;
use std::arch::x86_64::{__cpuid_count, _mm512_abs_ps, _mm512_cmp_ps_mask, _mm512_load_ps, _mm512_set1_ps, _CMP_GE_OQ};
use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::Dictionary;
use crate::vector::dot_f64;

/// Rows of every tile: targets (screened residuals) or dimension pairs (atoms).
const TILE_ROWS: usize = 16;
/// bf16 dimensions per tile row (64 bytes).
const TILE_DIMS: usize = 32;
/// Atoms per tile (16 columns of f32 results).
const TILE_ATOMS: usize = 16;
/// bf16 values per tile (1 KiB).
const TILE_LEN: usize = TILE_ROWS * TILE_DIMS;
/// Targets and atoms go two tiles at a time (a 2x2 block of result tiles).
const BLOCK: usize = 2 * TILE_ROWS;
/// bf16's unit roundoff.
const BF16_ROUNDOFF: f64 = 1.0 / 256.0;

/// The bound on the screening error relative to `|r| |a|` for `padded_dim` dimensions, plus a
/// quarter (see the module documentation).
fn screen_error(padded_dim: usize) -> f64 {
    let (u, f32_roundoff) = (BF16_ROUNDOFF, (2f64).powi(-24));
    1.25 * (2.0 * u + u * u + (padded_dim + 1) as f64 * f32_roundoff)
}
/// Residual rows screened together against each pair of atom tiles: at most this many bytes, so
/// that they stay in the core's L2 cache while the atom tiles (32 KB for 512 dimensions) stay in
/// L1.
const ROWS_BYTES_IN_CACHE: usize = 1 << 20;
/// Candidates kept per target before the list is pruned to the current margin.
const PRUNE_AT: usize = 512;

/// Whether AMX-BF16 can run in this process: the CPU has it (AMX-TILE, AMX-BF16, AVX-512F)
/// and Linux granted the tile state. Asked once.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE
        .get_or_init(|| cpu_has_amx_bf16() && std::arch::is_x86_feature_detected!("avx512f") && request_tile_state())
}

fn cpu_has_amx_bf16() -> bool {
    #[allow(unused_unsafe)]
    let (max_leaf, features) = unsafe { (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).edx) };
    const AMX_BF16: u32 = 1 << 22;
    const AMX_TILE: u32 = 1 << 24;
    max_leaf >= 7 && features & AMX_BF16 != 0 && features & AMX_TILE != 0
}

/// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`),
/// without which the first tile instruction faults.
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permitted xsave features.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// The dictionary in bf16, laid out as AMX `B` tiles: for each block of 16 atoms and each
/// 32-dimension chunk, 16 rows of (dimension pair) x (atom) x 2 values.
pub struct TiledDictionary {
    tiles: Vec<u16>,
    atom_blocks: usize,
    chunks: usize,
    padded_dim: usize,
    screen_error: f64,
    atoms: usize,
    largest_atom_norm: f64,
}

impl TiledDictionary {
    /// Converts `dictionary` to bf16 tiles (atoms padded with zeros to a multiple of 32,
    /// dimensions to a multiple of 32).
    pub fn new(dictionary: &Dictionary) -> Self {
        let padded_dim = dictionary.dim.next_multiple_of(TILE_DIMS);
        let chunks = padded_dim / TILE_DIMS;
        let atom_blocks = dictionary.len.next_multiple_of(BLOCK) / TILE_ATOMS;
        let mut tiles = vec![0u16; atom_blocks * chunks * TILE_LEN];
        for atom in 0..dictionary.len {
            let (block, column) = (atom / TILE_ATOMS, atom % TILE_ATOMS);
            for (d, &value) in dictionary.atom(atom).iter().enumerate() {
                let (chunk, within) = (d / TILE_DIMS, d % TILE_DIMS);
                let offset =
                    (block * chunks + chunk) * TILE_LEN + (within / 2) * 2 * TILE_ATOMS + column * 2 + within % 2;
                tiles[offset] = bf16::from_f32(value).to_bits();
            }
        }
        let largest_atom_norm =
            (0..dictionary.len).map(|i| dot_f64(dictionary.atom(i), dictionary.atom(i)).sqrt()).fold(0.0, f64::max);
        Self {
            tiles,
            atom_blocks,
            chunks,
            padded_dim,
            screen_error: screen_error(padded_dim),
            atoms: dictionary.len,
            largest_atom_norm,
        }
    }

    /// For each residual, the atoms that may have the largest |correlation| with it: those
    /// whose screened |correlation| is within the screening error of the largest.
    pub fn candidates(&self, residuals: &[&[f64]]) -> Vec<Vec<u32>> {
        let rows = residuals.len().next_multiple_of(BLOCK);
        let mut screened = vec![0u16; rows * self.padded_dim];
        let mut states: Vec<Candidates> = (0..rows).map(|_| Candidates::inert()).collect();
        for (i, residual) in residuals.iter().enumerate() {
            let row = &mut screened[i * self.padded_dim..][..residual.len()];
            row.iter_mut().zip(residual.iter()).for_each(|(b, &r)| *b = bf16::from_f64(r).to_bits());
            let norm = residual.iter().map(|r| r * r).sum::<f64>().sqrt();
            states[i] = Candidates::with_margin(2.0 * self.screen_error * norm * self.largest_atom_norm);
        }
        let per_thread = rows.div_ceil(rayon::current_num_threads()).next_multiple_of(BLOCK);
        screened.par_chunks(per_thread * self.padded_dim).zip(states.par_chunks_mut(per_thread)).for_each(
            |(rows, states)| {
                // SAFETY: `available()` checked AMX-BF16, AVX-512F and the tile permission; the
                // slices hold `states.len()` (a multiple of 32) rows of `padded_dim` values.
                unsafe { self.screen(rows, states) }
            },
        );
        states.into_iter().take(residuals.len()).map(Candidates::finish).collect()
    }

    /// Screens `rows.len() / padded_dim` residual rows (a multiple of 32) against every atom.
    #[target_feature(enable = "avx512f")]
    unsafe fn screen(&self, rows: &[u16], states: &mut [Candidates]) {
        let row_bytes = self.padded_dim * 2;
        let group = (ROWS_BYTES_IN_CACHE / row_bytes / BLOCK).max(1) * BLOCK;
        let mut results = ResultTiles([[0.0; TILE_ROWS * TILE_ATOMS]; 4]);
        load_tile_config();
        for group_start in (0..states.len()).step_by(group) {
            let group_end = (group_start + group).min(states.len());
            for block in (0..self.atom_blocks).step_by(2) {
                let atoms = [
                    self.tiles.as_ptr().add(block * self.chunks * TILE_LEN),
                    self.tiles.as_ptr().add((block + 1) * self.chunks * TILE_LEN),
                ];
                self.screen_block(rows, row_bytes, atoms, block, group_start..group_end, states, &mut results);
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }

    /// Screens the residual rows `targets` (a range of multiples of 32) against atom tiles
    /// `block` and `block + 1`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn screen_block(
        &self,
        rows: &[u16],
        row_bytes: usize,
        atoms: [*const u16; 2],
        block: usize,
        targets: std::ops::Range<usize>,
        states: &mut [Candidates],
        results: &mut ResultTiles,
    ) {
        for first in targets.step_by(BLOCK) {
            let target_rows =
                [rows.as_ptr().add(first * self.padded_dim), rows.as_ptr().add((first + TILE_ROWS) * self.padded_dim)];
            multiply_block(target_rows, row_bytes, atoms, self.chunks, results);
            for (tile, values) in results.0.iter().enumerate() {
                let target = first + (tile / 2) * TILE_ROWS;
                let atom = (block + tile % 2) * TILE_ATOMS;
                for (row, state) in states[target..target + TILE_ROWS].iter_mut().enumerate() {
                    let magnitudes = _mm512_abs_ps(_mm512_load_ps(values.as_ptr().add(row * TILE_ATOMS)));
                    let passing = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(magnitudes, _mm512_set1_ps(state.threshold));
                    if passing != 0 {
                        state.offer(
                            atom,
                            &std::mem::transmute::<std::arch::x86_64::__m512, [f32; TILE_ATOMS]>(magnitudes),
                            passing,
                            self.atoms,
                        );
                    }
                }
            }
        }
    }
}

/// The 2x2 result tiles of one block: `[target tile][atom tile]` flattened, 16x16 f32 each.
#[repr(C, align(64))]
struct ResultTiles([[f32; TILE_ROWS * TILE_ATOMS]; 4]);

/// AMX palette 1 with all eight tiles 16 rows of 64 bytes: tmm0-3 results, tmm4-5 targets,
/// tmm6-7 atoms.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

unsafe fn load_tile_config() {
    let mut config = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row: [0; 16], rows: [0; 16] };
    config.bytes_per_row[..8].fill((TILE_DIMS * 2) as u16);
    config.rows[..8].fill(TILE_ROWS as u8);
    asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly));
}

/// Results of 32 targets (two row tiles of `targets`, `row_bytes` apart per row) against 32
/// atoms (two column tiles) over all `chunks` of 32 dimensions.
unsafe fn multiply_block(
    targets: [*const u16; 2],
    row_bytes: usize,
    atoms: [*const u16; 2],
    chunks: usize,
    results: &mut ResultTiles,
) {
    asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
    for chunk in 0..chunks {
        asm!(
            "tileloadd tmm4, [{t0} + {stride}*1]",
            "tileloadd tmm5, [{t1} + {stride}*1]",
            "tileloadd tmm6, [{a0} + {tile_row}*1]",
            "tileloadd tmm7, [{a1} + {tile_row}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            t0 = in(reg) targets[0].add(chunk * TILE_DIMS),
            t1 = in(reg) targets[1].add(chunk * TILE_DIMS),
            a0 = in(reg) atoms[0].add(chunk * TILE_LEN),
            a1 = in(reg) atoms[1].add(chunk * TILE_LEN),
            stride = in(reg) row_bytes,
            tile_row = in(reg) TILE_ATOMS * 4,
            options(nostack, readonly),
        );
    }
    let out = results.0.as_mut_ptr() as *mut f32;
    asm!(
        "tilestored [{c0} + {stride}*1], tmm0",
        "tilestored [{c1} + {stride}*1], tmm1",
        "tilestored [{c2} + {stride}*1], tmm2",
        "tilestored [{c3} + {stride}*1], tmm3",
        c0 = in(reg) out,
        c1 = in(reg) out.add(TILE_ROWS * TILE_ATOMS),
        c2 = in(reg) out.add(2 * TILE_ROWS * TILE_ATOMS),
        c3 = in(reg) out.add(3 * TILE_ROWS * TILE_ATOMS),
        stride = in(reg) TILE_ATOMS * 4,
        options(nostack),
    );
}

/// One residual's screening: the largest screened |correlation| so far and the atoms within
/// `margin` of it.
struct Candidates {
    largest: f32,
    margin: f32,
    threshold: f32,
    atoms: Vec<(u32, f32)>,
}

impl Candidates {
    /// A padding row: nothing passes.
    fn inert() -> Self {
        Self { largest: 0.0, margin: 0.0, threshold: f32::INFINITY, atoms: Vec::new() }
    }

    fn with_margin(margin: f64) -> Self {
        // Rounded up so that the f32 margin is never below the f64 bound.
        let margin = (margin as f32).max(0.0) * (1.0 + 1e-6) + f32::MIN_POSITIVE;
        Self { largest: 0.0, margin, threshold: f32::NEG_INFINITY, atoms: Vec::new() }
    }

    /// Takes the lanes of `passing` (atoms `first + lane`, real ones only).
    fn offer(&mut self, first: usize, lanes: &[f32; TILE_ATOMS], mut passing: u16, real_atoms: usize) {
        while passing != 0 {
            let lane = passing.trailing_zeros() as usize;
            passing &= passing - 1;
            let (atom, value) = (first + lane, lanes[lane]);
            if atom >= real_atoms || value < self.threshold {
                continue;
            }
            if value > self.largest {
                self.largest = value;
                self.threshold = value - self.margin;
            }
            self.atoms.push((atom as u32, value));
        }
        if self.atoms.len() > PRUNE_AT {
            let threshold = self.threshold;
            self.atoms.retain(|&(_, value)| value >= threshold);
        }
    }

    fn finish(self) -> Vec<u32> {
        let threshold = self.threshold;
        self.atoms.into_iter().filter(|&(_, value)| value >= threshold).map(|(atom, _)| atom).collect()
    }
}
