//! The paper's applications of the lens (section 4 of the spec): zero-shot classification,
//! concept discovery, zero-shot segmentation, semantic adversarial words and ablations, and the
//! engine the page drives. Without the `engine` feature only what reads a bundle builds: the
//! cards ([`cards`]), classification of given embeddings ([`classify`]) and concept discovery
//! from given norms ([`concepts`]).

pub mod cards;
pub mod classify;
pub mod concepts;

#[cfg(feature = "engine")]
pub mod ablation;
#[cfg(feature = "engine")]
pub mod adversarial;
#[cfg(feature = "engine")]
pub mod analysis;
#[cfg(feature = "engine")]
pub mod engine;
#[cfg(feature = "engine")]
pub mod metrics;
#[cfg(feature = "engine")]
pub mod segment;
