//! The second-order lens (sections 1-3 of the method): per-neuron effects on the image
//! embedding through the later attention heads.
//!
//! Reference: the paper's PyTorch code, [`second_order_lens`][repo] at f9f0544.
//! [`second_order`] is `prs_second_order_neurons_hook.py` and `compute_second_order_neuron_prs.py`, [`stats`] and
//! [`singular`] are `compute_pcas.py`, [`omp`] is `decompose.py` and `compute_sparse_decomposition.py`; each module names the
//! functions it matches. [`histogram`], [`all_norms`], [`typical`], [`fidelity`], [`neighbours`], [`map`] and [`statistic`] (the seam of the per-neuron statistics) have
//! no counterpart there.
//!
//! [repo]: https://github.com/yossigandelsman/second_order_lens/tree/f9f054496a97c4e409556f2c9a31b47c3d3ed157

pub mod all_norms;
pub mod fidelity;
pub mod histogram;
pub mod map;
pub mod neighbours;
pub mod omp;
pub mod second_order;
pub mod singular;
pub mod statistic;
pub mod stats;
pub mod top_k;
pub mod typical;

pub use fidelity::{sparse_directions, word_fidelity};
pub use histogram::{Distributions, NormHistograms, HISTOGRAM_BINS, PERCENTILES};
pub use map::{map_of_neighbours, neuron_map, MAP_NEIGHBOURS};
pub use neighbours::{nearest_neighbours, nearest_with_cosines, neighbour_ids};
pub use omp::{
    orthogonal_matching_pursuit, orthogonal_matching_pursuit_with, scaled_unit_rows, tiles_available, AtomSearch,
    Dictionary, SparseCode, SparseCoder,
};
pub use second_order::{
    centred_effect_norms, head_alignments, head_scalars, projections, second_order_effects,
    second_order_effects_and_heads, FactorForm, LensFactors, ProjectionFactors, EFFECT_COEFFICIENT,
    PER_HEAD_BUDGET_BYTES,
};
pub use singular::first_right_singular_vector;
pub use statistic::{NeuronStatistic, Observation, Rider, RiderKind, Sizes, RIDERS};
pub use stats::{MeanAccumulator, NeuronStatistics};
pub use top_k::{PassTwoBatch, TopKAccumulator};
pub use typical::{image_key, TypicalImages, TYPICAL_BANDS, TYPICAL_BAND_BINS, TYPICAL_PER_BAND};
