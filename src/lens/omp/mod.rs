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

pub mod gram;
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
        // Per column, over the rows in order (the sums of a column-by-column walk), but a row at
        // a time: the walk down a column touched one value per cache line.
        let column_sums = |values: &[f32], term: &dyn Fn(f32) -> f64| {
            let mut sums = vec![0f64; dim];
            for row in values.chunks_exact(dim) {
                sums.iter_mut().zip(row).for_each(|(sum, &x)| *sum += term(x));
            }
            sums
        };
        let means: Vec<f32> = column_sums(word_embeds, &|x| x as f64).iter().map(|s| (s / len as f64) as f32).collect();
        let mut atoms: Vec<f32> =
            word_embeds.chunks_exact(dim).flat_map(|row| row.iter().zip(&means).map(|(x, m)| x - m)).collect();
        let norms: Vec<f64> =
            column_sums(&atoms, &|x| (x as f64).powi(2)).iter().map(|s| s.sqrt().max(1e-12)).collect();
        for row in atoms.chunks_exact_mut(dim) {
            row.iter_mut().zip(&norms).for_each(|(x, norm)| *x = (*x as f64 / norm * TEXT_SCALE as f64) as f32);
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
    /// scikit-learn's own form (`orthogonal_mp_gram`): the dictionary's Gram matrix once, each
    /// target's correlations with the atoms once (both products on the device), and each
    /// step's correlations from them on the host (see [`gram`]). Targets go in blocks of
    /// [`OMP_BLOCK`]; the Gram matrix is kept across blocks and calls.
    Gram(&'a Device),
    /// Intel AMX bf16 tiles on this CPU screen the correlations and the few atoms that may be
    /// the largest are recomputed exactly in f64 (x86-64 Linux with AMX; see [`tiles_available`]).
    /// All targets go in one block. Elsewhere it is an error.
    Tiles,
}

impl<'a> AtomSearch<'a> {
    /// The fastest exact search for `device` and `dictionary`: AMX tiles when `device` is the
    /// CPU and this CPU has AMX; else the Gram form on the CPU when the dictionary's Gram
    /// matrix fits [`gram::GRAM_BUDGET_BYTES`]; the device's products otherwise.
    pub fn for_device(device: &'a Device, dictionary: &Dictionary) -> Self {
        let on_cpu = *device == crate::device::cpu();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if on_cpu && tiles::available() {
            return AtomSearch::Tiles;
        }
        if on_cpu && gram::fits(dictionary) {
            return AtomSearch::Gram(device);
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
/// Several calls over one dictionary: keep one [`SparseCoder`].
///
/// The atom search is the expensive part; the Cholesky refit and the residuals (`t x D` per
/// target and step) are computed on the host in f64.
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
    SparseCoder::for_device(dictionary, device)?.encode(targets, nonzero).await
}

/// [`orthogonal_matching_pursuit`] with a chosen atom search.
pub async fn orthogonal_matching_pursuit_with(
    dictionary: &Dictionary,
    targets: &[f32],
    nonzero: usize,
    search: AtomSearch<'_>,
) -> Result<Vec<SparseCode>> {
    SparseCoder::new(dictionary, search)?.encode(targets, nonzero).await
}

/// OMP over one dictionary for many calls: the atom search's state (the dictionary on the
/// device, the Gram matrix, the tiles) is made once.
pub struct SparseCoder<'a> {
    dictionary: &'a Dictionary,
    search: Searcher<'a>,
}

/// The state of each [`AtomSearch`].
enum Searcher<'a> {
    Device(DeviceSearch<'a>),
    Gram(gram::GramSearch<'a>),
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    Tiles(tiles::TiledDictionary),
}

impl<'a> SparseCoder<'a> {
    /// The coder with [`AtomSearch::for_device`].
    pub fn for_device(dictionary: &'a Dictionary, device: &'a Device) -> Result<Self> {
        Self::new(dictionary, AtomSearch::for_device(device, dictionary))
    }

    /// The coder with `search`; an error for [`AtomSearch::Tiles`] where there is no AMX.
    pub fn new(dictionary: &'a Dictionary, search: AtomSearch<'a>) -> Result<Self> {
        let search = match search {
            AtomSearch::Device(device) => Searcher::Device(DeviceSearch::new(dictionary, device)),
            AtomSearch::Gram(device) => {
                Searcher::Gram(gram::GramSearch::new(dictionary, DeviceSearch::new(dictionary, device)))
            }
            AtomSearch::Tiles => {
                if !tiles_available() {
                    return Err(Error::Device("this CPU (or kernel) has no AMX-BF16 for the tiled OMP search".into()));
                }
                #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                {
                    Searcher::Tiles(tiles::TiledDictionary::new(dictionary))
                }
                #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
                unreachable!("tiles_available() is false off x86-64 Linux")
            }
        };
        Ok(Self { dictionary, search })
    }

    /// The sparse codes of `targets` (row-major `[N, D]`) with at most `nonzero` coefficients:
    /// [`orthogonal_matching_pursuit`].
    pub async fn encode(&mut self, targets: &[f32], nonzero: usize) -> Result<Vec<SparseCode>> {
        let dictionary = self.dictionary;
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
        match &mut self.search {
            Searcher::Device(search) => {
                for block in targets.chunks(OMP_BLOCK * dim) {
                    codes.extend(pursue(dictionary, block, nonzero, &*search).await?);
                }
            }
            Searcher::Gram(search) => {
                for block in targets.chunks(OMP_BLOCK * dim) {
                    codes.extend(search.encode(block, nonzero).await?);
                }
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Searcher::Tiles(tiled) => {
                codes = pursue(dictionary, targets, nonzero, &TiledPicks { tiled, dictionary }).await?;
            }
        }
        Ok(codes)
    }
}

/// A pick: an atom and its |correlation| with the residual; none ends the pursuit.
type Pick = Option<(usize, f64)>;

/// Where the pursuits of a block, in step, get each step's picks.
trait PickSource {
    /// One pick per residual of the open pursuits, in order.
    async fn picks(&self, residuals: &[Vec<f64>]) -> Result<Vec<Pick>>;
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

    /// `rows D^T` (`rows` row-major `[n, D]`) with the atoms from `first` on, on the device
    /// (`[n, V - first]`).
    fn product(&self, rows: Vec<f32>, first: usize) -> Tensor<2> {
        let n = rows.len() / self.dim;
        let atoms = match first {
            0 => self.atoms_t.clone(),
            _ => self.atoms_t.clone().slice([0..self.dim, first..self.atoms_t.dims()[1]]),
        };
        Tensor::<2>::from_data(TensorData::new(rows, [n, self.dim]), self.device).matmul(atoms)
    }

    /// [`Self::product`], read back (row-major).
    async fn correlations(&self, rows: Vec<f32>, first: usize) -> Result<Vec<f32>> {
        read_f32(self.product(rows, first)).await
    }
}

impl PickSource for DeviceSearch<'_> {
    /// The atom with the largest |correlation| per residual (in f32), and that |correlation|.
    async fn picks(&self, residuals: &[Vec<f64>]) -> Result<Vec<Pick>> {
        let correlations = self.product(residuals.iter().flatten().map(|&x| x as f32).collect(), 0).abs();
        // One readback per step: each row's argmax and max side by side.
        let picks =
            read_f32(Tensor::cat(vec![correlations.clone().argmax(1).float(), correlations.max_dim(1)], 1)).await?;
        Ok(picks.chunks_exact(2).map(|pick| Some((pick[0] as usize, pick[1] as f64))).collect())
    }
}

/// The AMX search: tiles screen, [`exact_picks`] decides.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
struct TiledPicks<'a> {
    tiled: &'a tiles::TiledDictionary,
    dictionary: &'a Dictionary,
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl PickSource for TiledPicks<'_> {
    async fn picks(&self, residuals: &[Vec<f64>]) -> Result<Vec<Pick>> {
        let residuals: Vec<&[f64]> = residuals.iter().map(Vec::as_slice).collect();
        Ok(exact_picks(self.dictionary, &self.tiled.candidates(&residuals), &residuals))
    }
}

/// The exact pick among each residual's screened candidates: the largest |r . a| in f64 (the
/// lowest index among equals); none when there is no candidate (a non-finite residual).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn exact_picks(dictionary: &Dictionary, candidates: &[Vec<u32>], residuals: &[&[f64]]) -> Vec<Pick> {
    candidates
        .par_iter()
        .zip(residuals.par_iter())
        .map(|(atoms, residual)| {
            atoms.iter().map(|&atom| (atom as usize, dot_f64(residual, dictionary.atom(atom as usize)).abs())).fold(
                None,
                |best: Pick, (atom, value)| match best {
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
    done: bool,
}

impl<'a> Pursuit<'a> {
    /// The pursuit of `target` before its first step.
    fn new(target: &'a [f32], nonzero: usize) -> Self {
        Pursuit {
            target,
            active: Vec::new(),
            xy: Vec::new(),
            chol: vec![0.0; nonzero * nonzero],
            gamma: Vec::new(),
            done: false,
        }
    }

    /// The residual `y - D_a^T gamma`, in f64 (what the direct and tiled searches correlate).
    fn residual(&self, dictionary: &Dictionary) -> Vec<f64> {
        let mut residual: Vec<f64> = self.target.iter().map(|&y| y as f64).collect();
        for (&a, g) in self.active.iter().zip(&self.gamma) {
            residual.iter_mut().zip(dictionary.atom(a)).for_each(|(r, &x)| *r -= g * x as f64);
        }
        residual
    }

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
        self.active.len() < nonzero
    }

    /// Takes `pick` or ends: false once the pursuit is done.
    fn advance(&mut self, dictionary: &Dictionary, pick: Pick, nonzero: usize) -> bool {
        self.done = !pick.is_some_and(|(atom, value)| self.step(dictionary, atom, value, nonzero));
        !self.done
    }

    fn into_code(self) -> SparseCode {
        SparseCode { indices: self.active, coefficients: self.gamma.into_iter().map(|g| g as f32).collect() }
    }
}

/// Runs the pursuits of `targets` in step; `search` gives each open pursuit's pick.
async fn pursue(
    dictionary: &Dictionary,
    targets: &[f32],
    nonzero: usize,
    search: &impl PickSource,
) -> Result<Vec<SparseCode>> {
    let mut pursuits: Vec<Pursuit> =
        targets.chunks_exact(dictionary.dim).map(|target| Pursuit::new(target, nonzero)).collect();
    loop {
        let residuals: Vec<Vec<f64>> =
            pursuits.par_iter().filter(|p| !p.done).map(|p| p.residual(dictionary)).collect();
        if residuals.is_empty() {
            break;
        }
        let picks = search.picks(&residuals).await?;
        let mut steps: Vec<(&mut Pursuit, Pick)> = pursuits.iter_mut().filter(|p| !p.done).zip(picks).collect();
        steps.par_iter_mut().for_each(|(pursuit, pick)| {
            pursuit.advance(dictionary, *pick, nonzero);
        });
    }
    Ok(pursuits.into_iter().map(Pursuit::into_code).collect())
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
