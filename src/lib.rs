//! # clip-lens
//!
//! The second-order lens (Gandelsman, Efros, Steinhardt, ICLR 2025) on OpenAI CLIP, in Rust
//! with burn, natively and in the browser (WebAssembly, WebGPU or CPU).
//!
//! Data flow: encoded image bytes → [`preprocess`] → pixels `[B,3,S,S]` →
//! [`model::VisionTransformer::forward`] with a [`model::CaptureRequest`] → embedding and the
//! captures the lens needs. Text goes through [`tokenizer`] and [`model::TextTransformer`].

pub mod apps;
pub mod bundle;
pub mod config;
pub mod convert;
pub mod device;
pub mod error;
pub mod lens;
pub mod model;
pub mod preprocess;
pub mod synthetic;
pub mod tensor_file;
pub mod text_embeddings;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use config::ClipConfig;
pub use error::{Error, Result};
pub use model::{CaptureRequest, ClipModel, Towers};
pub use weights::{Layout, WeightFile};
