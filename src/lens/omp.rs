//! Sparse text decomposition (section 3 of the method): the word dictionary and Orthogonal
//! Matching Pursuit as scikit-learn's `SparseCoder(transform_algorithm="omp")` computes it
//! (Gram-OMP with Cholesky updates).

use std::collections::HashMap;

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

    /// `D v`: the correlation of every atom with `v`.
    fn correlations(&self, v: &[f32]) -> Vec<f64> {
        self.atoms.chunks_exact(self.dim).map(|atom| dot(atom, v)).collect()
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

/// Columns of the Gram matrix `G = D D^T`, computed on demand and shared between targets
/// (the words OMP picks repeat across neurons), so `G` (`V x V`) is never formed.
struct GramColumns<'a> {
    dictionary: &'a Dictionary,
    columns: HashMap<usize, Vec<f64>>,
}

impl<'a> GramColumns<'a> {
    fn column(&mut self, atom: usize) -> &[f64] {
        let dictionary = self.dictionary;
        self.columns.entry(atom).or_insert_with(|| dictionary.correlations(dictionary.atom(atom)))
    }
}

/// OMP of each target (row-major `[N, D]`) over `dictionary` with at most `nonzero`
/// coefficients, as scikit-learn's `orthogonal_mp_gram`: pick the atom with the largest
/// |correlation| with the residual, refit all chosen coefficients by least squares through a
/// Cholesky factor updated one row at a time; stop early if an atom repeats or the new atom is
/// linearly dependent on the chosen ones.
pub fn orthogonal_matching_pursuit(dictionary: &Dictionary, targets: &[f32], nonzero: usize) -> Result<Vec<SparseCode>> {
    let dim = dictionary.dim;
    if !targets.len().is_multiple_of(dim) {
        return Err(Error::InvalidInput(format!("targets are not rows of dimension {dim}")));
    }
    if nonzero == 0 || nonzero > dictionary.len.min(dim) {
        return Err(Error::InvalidInput(format!("the number of components ({nonzero}) must be between 1 and min(words, dimension) = {}", dictionary.len.min(dim))));
    }
    let mut gram = GramColumns { dictionary, columns: HashMap::new() };
    Ok(targets.chunks_exact(dim).map(|target| omp_one(&mut gram, target, nonzero)).collect())
}

fn omp_one(gram: &mut GramColumns, target: &[f32], nonzero: usize) -> SparseCode {
    let xy = gram.dictionary.correlations(target);
    let mut alpha = xy.clone();
    let mut active: Vec<usize> = Vec::with_capacity(nonzero);
    let mut chol = vec![0f64; nonzero * nonzero]; // lower-triangular L, row-major, L L^T = G_AA
    let mut gamma: Vec<f64> = Vec::new();
    while active.len() < nonzero {
        let pick = alpha.iter().enumerate().fold(0, |best, (i, a)| if a.abs() > alpha[best].abs() { i } else { best });
        if active.contains(&pick) || alpha[pick] * alpha[pick] < f64::MIN_POSITIVE {
            break;
        }
        let column = gram.column(pick).to_vec();
        if !extend_cholesky(&mut chol, nonzero, &active, &column, pick) {
            break;
        }
        active.push(pick);
        let rhs: Vec<f64> = active.iter().map(|&a| xy[a]).collect();
        gamma = cholesky_solve(&chol, nonzero, &rhs);
        let columns: Vec<Vec<f64>> = active.iter().map(|&a| gram.column(a).to_vec()).collect();
        alpha = xy.iter().enumerate().map(|(i, x)| x - columns.iter().zip(&gamma).map(|(c, g)| c[i] * g).sum::<f64>()).collect();
    }
    SparseCode { indices: active, coefficients: gamma.into_iter().map(|g| g as f32).collect() }
}

/// Adds the row of atom `new` (its Gram `column`) to the Cholesky factor of the active atoms'
/// Gram matrix. Returns false when the atom is (numerically) dependent on the active ones.
fn extend_cholesky(chol: &mut [f64], stride: usize, active: &[usize], column: &[f64], new: usize) -> bool {
    let k = active.len();
    // Solve L w = G[active, new] by forward substitution.
    let mut w: Vec<f64> = active.iter().map(|&a| column[a]).collect();
    for i in 0..k {
        let s: f64 = (0..i).map(|j| chol[i * stride + j] * w[j]).sum();
        w[i] = (w[i] - s) / chol[i * stride + i];
    }
    let diagonal = column[new] - w.iter().map(|x| x * x).sum::<f64>();
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
