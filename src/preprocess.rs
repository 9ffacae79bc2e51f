//! Placeholder until the preprocessing module lands.
/// Preprocessing errors.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// Placeholder.
    #[error("corrupt image: {0}")]
    Corrupt(String),
}
