//! Sparse text decomposition (section 3 of the method): the word dictionary and Orthogonal
//! Matching Pursuit as scikit-learn's `SparseCoder(transform_algorithm="omp")` computes it
//! (Gram-OMP with Cholesky updates).
//!
//! Reference: [`decompose.py`, `Decompose.transform`][decompose] with `solver="omp"`, applied to the neurons'
//! directions (`*_pca.npy`) in [`compute_sparse_decomposition.py`, `main`][sparse]. Differs: OMP written out
//! here, batched on a device, instead of calling scikit-learn.
//!
//! [decompose]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/decompose.py
//! [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod tiles;

use burn::tensor::{Device, Tensor, TensorData};

use crate::device::read_f32;
use crate::error::{Error, Result};
use crate::vector::dot_f64;
use rayon::prelude::*;

/// The paper's scale of text embeddings and dictionary atoms.
///
/// Reference: the `--coefficient` (100) of [`compute_text_set_projection.py`][text] and
/// [`compute_sparse_decomposition.py`][sparse].
///
/// [text]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_text_set_projection.py
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
pub const TEXT_SCALE: f32 = 100.0;

/// `100 x` the L2-normalised rows of `embeds` (`[V, D]`): how texts enter the dictionary.
///
/// Reference: `F.normalize(class_embeddings, dim=-1)` in [`compute_text_set_projection.py`,
/// `get_text_features`][text], times `args.coefficient` in its `main`.
///
/// [text]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_text_set_projection.py
pub fn scaled_unit_rows(embeds: &[f32], dim: usize) -> Vec<f32> {
    embeds
        .chunks_exact(dim)
        .flat_map(|row| {
            let norm = row.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt().max(1e-12) as f32;
            row.iter().map(move |x| x / norm * TEXT_SCALE)
        })
        .collect()
}

/// The OMP dictionary: word embeddings minus their mean over words, each column divided by its
/// norm over words, times 100. Atoms (rows) are not unit-normalised.
///
/// Reference: `text_descriptions - text_descriptions.mean(axis=0)`, then `args.coefficient * text_descriptions`
/// over `np.linalg.norm(text_descriptions, axis=0, keepdims=True)`, in [`compute_sparse_decomposition.py`,
/// `main`][sparse].
///
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
#[derive(Debug, Clone)]
pub struct Dictionary {
    /// Row-major `[V, D]`.
    pub atoms: Vec<f32>,
    /// Atoms (words).
    pub len: usize,
    /// Dimension.
    pub dim: usize,
}

impl Dictionary {
    /// Builds the dictionary from `100 x` normalised word embeddings `[V, D]`.
    pub fn from_word_embeddings(word_embeds: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || word_embeds.is_empty() || !word_embeds.len().is_multiple_of(dim) {
            return Err(Error::InvalidInput("the word list is empty or its embeddings are not [V, D]".into()));
        }
        let len = word_embeds.len() / dim;
        let mut atoms = word_embeds.to_vec();
        for column in 0..dim {
            let mean = (0..len).map(|r| atoms[r * dim + column] as f64).sum::<f64>() / len as f64;
            (0..len).for_each(|r| atoms[r * dim + column] -= mean as f32);
            let norm = (0..len).map(|r| (atoms[r * dim + column] as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
            (0..len).for_each(|r| {
                atoms[r * dim + column] = (atoms[r * dim + column] as f64 / norm * TEXT_SCALE as f64) as f32
            });
        }
        Ok(Self { atoms, len, dim })
    }

    fn atom(&self, i: usize) -> &[f32] {
        &self.atoms[i * self.dim..(i + 1) * self.dim]
    }
}

/// A sparse code: atom indices in the order OMP chose them, and their coefficients.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseCode {
    /// Atom (word) indices.
    pub indices: Vec<usize>,
    /// Coefficients, same order.
    pub coefficients: Vec<f32>,
}

impl SparseCode {
    /// Indices and coefficients sorted by |coefficient|, largest first.
    ///
    /// Reference: the `.json` listing of [`compute_sparse_decomposition.py`, `main`][sparse]: per neuron
    /// `np.argsort(np.abs(decomposition[neuron]))`, largest first.
    ///
    /// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
    pub fn by_magnitude(&self) -> Vec<(usize, f32)> {
        let mut pairs: Vec<(usize, f32)> =
            self.indices.iter().copied().zip(self.coefficients.iter().copied()).collect();
        pairs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        pairs
    }
}

/// Targets decomposed per matrix product on a device: bounds the `[block, V]` correlations
/// in memory (256 x 30,000 words: 31 MB).
pub const OMP_BLOCK: usize = 256;

/// How each OMP step finds, per target, the atom most correlated with its residual.
#[derive(Clone, Copy)]
pub enum AtomSearch<'a> {
    /// All correlations, `R D^T`, as one matrix product per step on a burn device, and their
    /// argmax there; only the picks come back. Targets go in blocks of [`OMP_BLOCK`].
    Device(&'a Device),
    /// Intel AMX bf16 tiles on this CPU screen the correlations and the few atoms that may be
    /// the largest are recomputed exactly in f64 (x86-64 Linux with AMX; see [`tiles_available`]).
    /// All targets go in one block. Elsewhere it is an error.
    Tiles,
}

impl<'a> AtomSearch<'a> {
    /// The fastest exact search for `device`: AMX tiles when `device` is the CPU and this CPU
    /// has AMX, the device otherwise.
    pub fn for_device(device: &'a Device) -> Self {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if *device == crate::device::cpu() && tiles::available() {
            return AtomSearch::Tiles;
        }
        AtomSearch::Device(device)
    }
}

/// Whether [`AtomSearch::Tiles`] can run here (x86-64 Linux on a CPU with AMX-BF16).
pub fn tiles_available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return tiles::available();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

/// OMP of each target (row-major `[N, D]`) over `dictionary` with at most `nonzero`
/// coefficients, as scikit-learn's `orthogonal_mp_gram`: pick the atom with the largest
/// |correlation| with the residual, refit all chosen coefficients by least squares through a
/// Cholesky factor updated one row at a time; stop early if an atom repeats or the new atom is
/// linearly dependent on the chosen ones. The atom search is [`AtomSearch::for_device`].
///
/// The targets go all in step: at each step the correlations of every atom with every
/// residual (the expensive part: `targets x D x V`, compute-bound) are searched for the largest;
/// the Cholesky refit and the residuals (`t x D` per target and step) are computed on the host
/// in f64.
///
/// Reference: `coder.transform(pcas)` in [`compute_sparse_decomposition.py`, `main`][sparse], i.e. scikit-learn's
/// `SparseCoder(transform_algorithm="omp", transform_n_nonzero_coefs=components)` built by [`decompose.py`,
/// `Decompose.__init__`][decompose] (its `transform_alpha` plays no part in OMP).
///
/// [sparse]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/compute_sparse_decomposition.py
/// [decompose]: https://github.com/yossigandelsman/second_order_lens/blob/f9f054496a97c4e409556f2c9a31b47c3d3ed157/decompose.py
pub async fn orthogonal_matching_pursuit(
    dictionary: &Dictionary,
    targets: &[f32],
    nonzero: usize,
    device: &Device,
) -> Result<Vec<SparseCode>> {
    orthogonal_matching_pursuit_with(dictionary, targets, nonzero, AtomSearch::for_device(device)).await
}

/// [`orthogonal_matching_pursuit`] with a chosen atom search.
pub async fn orthogonal_matching_pursuit_with(
    dictionary: &Dictionary,
    targets: &[f32],
    nonzero: usize,
    search: AtomSearch<'_>,
) -> Result<Vec<SparseCode>> {
    let dim = dictionary.dim;
    if !targets.len().is_multiple_of(dim) {
        return Err(Error::InvalidInput(format!("targets are not rows of dimension {dim}")));
    }
    if nonzero == 0 || nonzero > dictionary.len.min(dim) {
        return Err(Error::InvalidInput(format!(
            "the number of components ({nonzero}) must be between 1 and min(words, dimension) = {}",
            dictionary.len.min(dim)
        )));
    }
    let mut codes = Vec::with_capacity(targets.len() / dim);
    match search {
        AtomSearch::Device(device) => {
            let searcher = DeviceSearch::new(dictionary, device);
            for block in targets.chunks(OMP_BLOCK * dim) {
                codes.extend(
                    pursue(dictionary, block, nonzero, |residuals| {
                        searcher.picks(residuals.iter().flat_map(|r| r.iter().map(|&x| x as f32)).collect())
                    })
                    .await?,
                );
            }
        }
        AtomSearch::Tiles => {
            if !tiles_available() {
                return Err(Error::Device("this CPU (or kernel) has no AMX-BF16 for the tiled OMP search".into()));
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            {
                let tiled = tiles::TiledDictionary::new(dictionary);
                codes = pursue(dictionary, targets, nonzero, |residuals| {
                    std::future::ready(Ok(exact_picks(dictionary, &tiled.candidates(residuals), residuals)))
                })
                .await?;
            }
        }
    }
    Ok(codes)
}

/// Searches on a burn device: `D^T` stays there; each step is one product and one argmax.
struct DeviceSearch<'a> {
    atoms_t: Tensor<2>,
    device: &'a Device,
    dim: usize,
}

impl<'a> DeviceSearch<'a> {
    fn new(dictionary: &Dictionary, device: &'a Device) -> Self {
        let dim = dictionary.dim;
        // D^T, laid out contiguously (a transposed view would be copied at every product).
        let transposed: Vec<f32> = (0..dim * dictionary.len)
            .map(|i| dictionary.atoms[(i % dictionary.len) * dim + i / dictionary.len])
            .collect();
        Self {
            atoms_t: Tensor::<2>::from_data(TensorData::new(transposed, [dim, dictionary.len]), device),
            device,
            dim,
        }
    }

    /// The atom with the largest |correlation| per residual (row-major `[n, D]`, in f32), and
    /// that |correlation|.
    async fn picks(&self, residuals: Vec<f32>) -> Result<Vec<Option<(usize, f64)>>> {
        let rows = residuals.len() / self.dim;
        let correlations = Tensor::<2>::from_data(TensorData::new(residuals, [rows, self.dim]), self.device)
            .matmul(self.atoms_t.clone())
            .abs();
        // One readback per step: each row's argmax and max side by side.
        let picks =
            read_f32(Tensor::cat(vec![correlations.clone().argmax(1).float(), correlations.max_dim(1)], 1)).await?;
        Ok(picks.chunks_exact(2).map(|pick| Some((pick[0] as usize, pick[1] as f64))).collect())
    }
}

/// The exact pick among each residual's screened candidates: the largest |r . a| in f64 (the
/// lowest index among equals); none when there is no candidate (a non-finite residual).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn exact_picks(dictionary: &Dictionary, candidates: &[Vec<u32>], residuals: &[&[f64]]) -> Vec<Option<(usize, f64)>> {
    candidates
        .par_iter()
        .zip(residuals.par_iter())
        .map(|(atoms, residual)| {
            atoms.iter().map(|&atom| (atom as usize, dot_f64(residual, dictionary.atom(atom as usize)).abs())).fold(
                None,
                |best: Option<(usize, f64)>, (atom, value)| match best {
                    Some((b, v)) if v > value || (v == value && b < atom) => Some((b, v)),
                    _ => Some((atom, value)),
                },
            )
        })
        .collect()
}

/// One target's pursuit state.
struct Pursuit<'a> {
    target: &'a [f32],
    active: Vec<usize>,
    /// `D_a . y` of the active atoms.
    xy: Vec<f64>,
    /// Lower-triangular `L` (row-major, stride `nonzero`) with `L L^T = G_AA`.
    chol: Vec<f64>,
    gamma: Vec<f64>,
    residual: Vec<f64>,
    done: bool,
}

impl Pursuit<'_> {
    /// Takes atom `pick` (its correlation with the residual is `correlation`); false when the
    /// pursuit ends instead.
    fn step(&mut self, dictionary: &Dictionary, pick: usize, correlation: f64, nonzero: usize) -> bool {
        if self.active.contains(&pick) || correlation * correlation < f64::MIN_POSITIVE {
            return false;
        }
        let atom = dictionary.atom(pick);
        let column: Vec<f64> = self.active.iter().map(|&a| dot_f64(dictionary.atom(a), atom)).collect();
        if !extend_cholesky(&mut self.chol, nonzero, &column, dot_f64(atom, atom)) {
            return false;
        }
        self.active.push(pick);
        self.xy.push(dot_f64(atom, self.target));
        self.gamma = cholesky_solve(&self.chol, nonzero, &self.xy);
        self.residual.iter_mut().zip(self.target).for_each(|(r, &y)| *r = y as f64);
        for (&a, g) in self.active.iter().zip(&self.gamma) {
            self.residual.iter_mut().zip(dictionary.atom(a)).for_each(|(r, &x)| *r -= g * x as f64);
        }
        self.active.len() < nonzero
    }
}

/// Runs the pursuits of `targets` in step; `search` gives each open residual's pick.
async fn pursue<F, Fut>(
    dictionary: &Dictionary,
    targets: &[f32],
    nonzero: usize,
    mut search: F,
) -> Result<Vec<SparseCode>>
where
    F: FnMut(&[&[f64]]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Option<(usize, f64)>>>>,
{
    let mut pursuits: Vec<Pursuit> = targets
        .chunks_exact(dictionary.dim)
        .map(|target| Pursuit {
            target,
            active: Vec::new(),
            xy: Vec::new(),
            chol: vec![0.0; nonzero * nonzero],
            gamma: Vec::new(),
            residual: target.iter().map(|&y| y as f64).collect(),
            done: false,
        })
        .collect();
    loop {
        let residuals: Vec<&[f64]> = pursuits.iter().filter(|p| !p.done).map(|p| p.residual.as_slice()).collect();
        if residuals.is_empty() {
            break;
        }
        let picks = search(&residuals).await?;
        let mut steps: Vec<(&mut Pursuit, Option<(usize, f64)>)> =
            pursuits.iter_mut().filter(|p| !p.done).zip(picks).collect();
        let advance = |(pursuit, pick): &mut (&mut Pursuit, Option<(usize, f64)>)| {
            pursuit.done = !pick.is_some_and(|(atom, value)| pursuit.step(dictionary, atom, value, nonzero));
        };
        steps.par_iter_mut().for_each(advance);
    }
    Ok(pursuits
        .into_iter()
        .map(|p| SparseCode { indices: p.active, coefficients: p.gamma.into_iter().map(|g| g as f32).collect() })
        .collect())
}

/// Adds the row of a new atom (`column` = its Gram entries with the active atoms, `diagonal`
/// its squared norm) to the Cholesky factor of the active atoms' Gram matrix. Returns false
/// when the atom is (numerically) dependent on the active ones.
fn extend_cholesky(chol: &mut [f64], stride: usize, column: &[f64], diagonal: f64) -> bool {
    let k = column.len();
    // Solve L w = G[active, new] by forward substitution.
    let mut w: Vec<f64> = column.to_vec();
    for i in 0..k {
        let s: f64 = (0..i).map(|j| chol[i * stride + j] * w[j]).sum();
        w[i] = (w[i] - s) / chol[i * stride + i];
    }
    let diagonal = diagonal - w.iter().map(|x| x * x).sum::<f64>();
    if diagonal <= f64::MIN_POSITIVE {
        return false;
    }
    w.iter().enumerate().for_each(|(j, x)| chol[k * stride + j] = *x);
    chol[k * stride + k] = diagonal.sqrt();
    true
}

/// Solves `L L^T x = b` for the leading `b.len()` block of `chol`.
fn cholesky_solve(chol: &[f64], stride: usize, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut y = b.to_vec();
    for i in 0..n {
        let s: f64 = (0..i).map(|j| chol[i * stride + j] * y[j]).sum();
        y[i] = (y[i] - s) / chol[i * stride + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| chol[j * stride + i] * y[j]).sum();
        y[i] = (y[i] - s) / chol[i * stride + i];
    }
    y
}
