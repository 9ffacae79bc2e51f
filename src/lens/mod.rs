//! The second-order lens (sections 1-3 of the method): per-neuron effects on the image
//! embedding through the later attention heads.

pub mod histogram;
pub mod omp;
pub mod second_order;
pub mod stats;

pub use histogram::{Distributions, NormHistograms, HISTOGRAM_BINS, PERCENTILES};
pub use omp::{
    orthogonal_matching_pursuit, orthogonal_matching_pursuit_with, scaled_unit_rows, tiles_available, AtomSearch,
    Dictionary, SparseCode,
};
pub use second_order::{
    centred_effect_norms, projections, second_order_effects, FactorForm, LensFactors, ProjectionFactors,
    EFFECT_COEFFICIENT, PER_HEAD_BUDGET_BYTES,
};
pub use stats::{first_right_singular_vector, MeanAccumulator, NeuronStatistics, TopKAccumulator};
