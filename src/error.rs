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
    /// A long run stopped before its end (a resumable `precompute`).
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// A compute device failed (initialisation, readback).
    #[error("device error: {0}")]
    Device(String),
    /// The GPU device is gone (lost, or reset by the browser): the caller can move to the CPU.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// The text tower of converted weights is not loaded yet: the caller loads it
    /// (`loadTextTower` in the page) and asks again.
    #[error("the text tower of the converted weights is not loaded yet (its file, text.safetensors, is loaded on first use)")]
    NeedsTextTower,
}

/// Shorthand for results with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// What a caller can do about the error, as a short stable name (the page's worker
    /// branches on it): `needs-text-tower` (load it and ask again), `device-lost` (move to
    /// the CPU), `device` (the device failed otherwise), `io`, `interrupted`, and `bad-input`
    /// for everything the input itself got wrong (weights, configuration, images, arguments).
    /// The page's TypeScript type of these names is `EngineErrorKind` in `src/web/types.d.ts`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NeedsTextTower => "needs-text-tower",
            Error::DeviceLost(_) => "device-lost",
            Error::Device(_) => "device",
            Error::Io { .. } => "io",
            Error::Interrupted(_) => "interrupted",
            Error::MissingTensor { .. }
            | Error::ShapeMismatch { .. }
            | Error::UnsupportedDtype { .. }
            | Error::InvalidSafetensors(_)
            | Error::UnknownLayout(_)
            | Error::Config(_)
            | Error::InvalidInput(_)
            | Error::Preprocess(_) => "bad-input",
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<std::path::Path>, err: impl std::fmt::Display) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), message: err.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn kinds_tell_what_a_caller_does() {
        assert_eq!(Error::NeedsTextTower.kind(), "needs-text-tower");
        assert_eq!(Error::DeviceLost("gone".into()).kind(), "device-lost");
        assert_eq!(Error::Device("no adapter".into()).kind(), "device");
        assert_eq!(Error::io("x.safetensors", "not found").kind(), "io");
        assert_eq!(Error::InvalidInput("k = 0".into()).kind(), "bad-input");
        assert_eq!(Error::Config("no width".into()).kind(), "bad-input");
        assert!(Error::NeedsTextTower.to_string().contains("text tower of the converted weights is not loaded yet"));
    }
}
