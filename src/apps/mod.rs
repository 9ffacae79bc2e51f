//! The paper's applications of the lens (section 4 of the spec): zero-shot classification,
//! concept discovery, zero-shot segmentation, semantic adversarial words and ablations.

pub mod metrics;
pub mod segment;

pub mod ablation;
pub mod adversarial;
pub mod analysis;
pub mod classify;
pub mod concepts;
pub mod engine;
