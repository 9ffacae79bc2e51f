//! # clip-lens
//!
//! The second-order lens (Gandelsman, Efros, Steinhardt, ICLR 2025) on OpenAI CLIP, in Rust
//! with burn, natively and in the browser (WebAssembly, WebGPU or CPU).
//!
//! Data flow: encoded image bytes → [`preprocess`] → pixels `[B,3,S,S]` →
//! [`model::VisionTransformer::forward`] with a [`model::CaptureRequest`] → embedding and the
//! captures the lens needs. Text goes through [`tokenizer`] and [`model::TextTransformer`].
//!
//! Without the `engine` feature (on by default, through `cli`) only the file formats build (weights, configuration,
//! bundle, images, tokenizer, tensor files, conversion) and what reads a bundle alone (the cards,
//! classification and concept discovery in [`apps`]): no burn. The fuzz targets use that.

pub mod apps;
pub mod bundle;
pub mod config;
pub mod convert;
#[cfg(feature = "engine")]
pub mod device;
pub mod error;
#[cfg(feature = "engine")]
pub mod forward_profile;
#[cfg(feature = "engine")]
pub mod kernels;
#[cfg(feature = "engine")]
pub mod lens;
#[cfg(feature = "engine")]
pub mod matmul_probe;
#[cfg(feature = "engine")]
pub mod model;
pub mod percentile;
#[cfg(feature = "engine")]
pub mod precompute;
pub mod preprocess;
pub mod random;
pub mod synthetic;
pub mod tensor_file;
#[cfg(feature = "engine")]
pub mod text_embeddings;
pub mod tokenizer;
pub mod vector;
pub mod weights;

#[cfg(all(target_arch = "wasm32", feature = "engine"))]
pub mod web;

pub use config::ClipConfig;
pub use error::{Error, Result};
#[cfg(feature = "engine")]
pub use model::{CaptureRequest, ClipModel, Towers};
pub use weights::{Layout, WeightFile};
