//! Sparse text decomposition (section 3 of the method): the word dictionary and Orthogonal
//! Matching Pursuit as scikit-learn's `SparseCoder(transform_algorithm="omp")` computes it
//! (Gram-OMP with Cholesky updates).

use burn::tensor::{Device, Tensor, TensorData};

use crate::device::read_f32;
use crate::error::{Error, Result};

/// The paper's scale of text embeddings and dictionary atoms.
pub const TEXT_SCALE: f32 = 100.0;

/// `100 x` the L2-normalised rows of `embeds` (`[V, D]`): how texts enter the dictionary.
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
            (0..len).for_each(|r| atoms[r * dim + column] = (atoms[r * dim + column] as f64 / norm * TEXT_SCALE as f64) as f32);
        }
        Ok(Self { atoms, len, dim })
    }

    fn atom(&self, i: usize) -> &[f32] {
        &self.atoms[i * self.dim..(i + 1) * self.dim]
    }

}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
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
    pub fn by_magnitude(&self) -> Vec<(usize, f32)> {
        let mut pairs: Vec<(usize, f32)> = self.indices.iter().copied().zip(self.coefficients.iter().copied()).collect();
        pairs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        pairs
    }
}

/// Targets decomposed per matrix product: bounds the `[block, V]` correlations in memory
/// (256 x 30,000 words: 31 MB).
pub const OMP_BLOCK: usize = 256;

/// OMP of each target (row-major `[N, D]`) over `dictionary` with at most `nonzero`
/// coefficients, as scikit-learn's `orthogonal_mp_gram`: pick the atom with the largest
/// |correlation| with the residual, refit all chosen coefficients by least squares through a
/// Cholesky factor updated one row at a time; stop early if an atom repeats or the new atom is
/// linearly dependent on the chosen ones.
///
/// The targets go in blocks of [`OMP_BLOCK`], all in step: at each step the correlations of
/// every atom with every residual of the block, `R D^T`, are one matrix product on `device`
/// (the expensive part: `block x D x V`, compute-bound, fast on a GPU) and their argmax is
/// taken there; only the picks come back. The Cholesky refit and the residuals (`t x D` per
/// target and step) are computed on the host in f64. The correlations are those of the Gram
/// form (`D r = D y - G_A gamma`) computed in f32.
pub async fn orthogonal_matching_pursuit(dictionary: &Dictionary, targets: &[f32], nonzero: usize, device: &Device) -> Result<Vec<SparseCode>> {
    let dim = dictionary.dim;
    if !targets.len().is_multiple_of(dim) {
        return Err(Error::InvalidInput(format!("targets are not rows of dimension {dim}")));
    }
    if nonzero == 0 || nonzero > dictionary.len.min(dim) {
        return Err(Error::InvalidInput(format!("the number of components ({nonzero}) must be between 1 and min(words, dimension) = {}", dictionary.len.min(dim))));
    }
    // D^T, laid out contiguously (a transposed view would be copied at every product).
    let transposed: Vec<f32> = (0..dim * dictionary.len).map(|i| dictionary.atoms[(i % dictionary.len) * dim + i / dictionary.len]).collect();
    let atoms_t = Tensor::<2>::from_data(TensorData::new(transposed, [dim, dictionary.len]), device);
    let mut codes = Vec::with_capacity(targets.len() / dim);
    for block in targets.chunks(OMP_BLOCK * dim) {
        codes.extend(omp_block(dictionary, &atoms_t, block, nonzero, device).await?);
    }
    Ok(codes)
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
    residual: Vec<f32>,
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
        let column: Vec<f64> = self.active.iter().map(|&a| dot(dictionary.atom(a), atom)).collect();
        if !extend_cholesky(&mut self.chol, nonzero, &column, dot(atom, atom)) {
            return false;
        }
        self.active.push(pick);
        self.xy.push(dot(atom, self.target));
        self.gamma = cholesky_solve(&self.chol, nonzero, &self.xy);
        let mut residual: Vec<f64> = self.target.iter().map(|&y| y as f64).collect();
        for (&a, g) in self.active.iter().zip(&self.gamma) {
            residual.iter_mut().zip(dictionary.atom(a)).for_each(|(r, &x)| *r -= g * x as f64);
        }
        self.residual = residual.into_iter().map(|r| r as f32).collect();
        self.active.len() < nonzero
    }
}

async fn omp_block(dictionary: &Dictionary, atoms_t: &Tensor<2>, targets: &[f32], nonzero: usize, device: &Device) -> Result<Vec<SparseCode>> {
    let dim = dictionary.dim;
    let mut pursuits: Vec<Pursuit> = targets
        .chunks_exact(dim)
        .map(|target| Pursuit { target, active: Vec::new(), xy: Vec::new(), chol: vec![0.0; nonzero * nonzero], gamma: Vec::new(), residual: target.to_vec(), done: false })
        .collect();
    while pursuits.iter().any(|p| !p.done) {
        let open: Vec<usize> = (0..pursuits.len()).filter(|&i| !pursuits[i].done).collect();
        let residuals: Vec<f32> = open.iter().flat_map(|&i| pursuits[i].residual.iter().copied()).collect();
        let correlations = Tensor::<2>::from_data(TensorData::new(residuals, [open.len(), dim]), device).matmul(atoms_t.clone()).abs();
        let picks = read_f32(correlations.clone().argmax(1).float()).await?;
        let largest = read_f32(correlations.max_dim(1)).await?;
        for ((&i, &pick), &value) in open.iter().zip(&picks).zip(&largest) {
            let pursuit = &mut pursuits[i];
            pursuit.done = !pursuit.step(dictionary, pick as usize, value as f64, nonzero);
        }
    }
    Ok(pursuits.into_iter().map(|p| SparseCode { indices: p.active, coefficients: p.gamma.into_iter().map(|g| g as f32).collect() }).collect())
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
