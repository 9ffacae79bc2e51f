//! Writing named tensors as a safetensors file (CLI outputs, bundles).

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};

/// The values of a named tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
}

/// A tensor with a name and a shape, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Values,
}

impl NamedTensor {
    /// An f32 tensor.
    pub fn f32(name: impl Into<String>, shape: &[usize], values: Vec<f32>) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), values: Values::F32(values) }
    }
    /// An i32 tensor.
    pub fn i32(name: impl Into<String>, shape: &[usize], values: Vec<i32>) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), values: Values::I32(values) }
    }
    fn bytes(&self) -> Vec<u8> {
        match &self.values {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    fn dtype(&self) -> Dtype {
        match self.values {
            Values::F32(_) => Dtype::F32,
            Values::I32(_) => Dtype::I32,
        }
    }
}

/// Serialises tensors (in the given order of names; safetensors sorts them) to bytes.
pub fn serialize(tensors: &[NamedTensor]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(NamedTensor::bytes).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(t.dtype(), t.shape.clone(), b)
                .map(|view| (t.name.clone(), view))
                .map_err(|e| Error::InvalidInput(format!("tensor `{}`: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, &None).map_err(|e| Error::InvalidInput(format!("serialising tensors: {e}")))
}
