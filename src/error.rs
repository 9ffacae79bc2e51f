//! The crate's error type: every message names the problem so a user can act on it.

use crate::preprocess::PreprocessError;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor the model needs is not in the weight file.
    #[error("missing tensor `{name}` in the weight file ({layout} layout)")]
    MissingTensor {
        /// The tensor's name in the file's layout.
        name: String,
        /// The detected layout.
        layout: String,
    },
    /// A tensor exists but its shape disagrees with the configuration.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type we cannot convert to f32.
    #[error("tensor `{name}` has unsupported dtype {dtype} (supported: F32, F16, BF16, F64)")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// The bytes are not a valid safetensors file (truncated, corrupt header, ...).
    #[error("invalid safetensors file: {0}")]
    InvalidSafetensors(String),
    /// The file holds neither OpenAI/open_clip nor Hugging Face CLIP tensor names.
    #[error("unrecognised weight layout: {0}")]
    UnknownLayout(String),
    /// The model configuration is missing, malformed or inconsistent.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path involved.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// An input tensor or argument has the wrong shape or value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An image could not be decoded or preprocessed.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// A compute device failed (initialisation, readback).
    #[error("interrupted: {0}")]
    Interrupted(String),

    #[error("device error: {0}")]
    Device(String),
}

/// Shorthand for results with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<std::path::Path>, err: impl std::fmt::Display) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), message: err.to_string() }
    }
}
