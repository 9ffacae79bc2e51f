//! Named tensors in safetensors files: CLI outputs, bundles and `precompute` checkpoints.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// The values of a named tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 16-bit floats (storage only; converted from and to f32).
    F16(Vec<half::f16>),
    /// 64-bit floats (exact accumulator state).
    F64(Vec<f64>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// 64-bit signed integers.
    I64(Vec<i64>),
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
    /// An f32 tensor stored as f16.
    pub fn f16(name: impl Into<String>, shape: &[usize], values: &[f32]) -> Self {
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            values: Values::F16(values.iter().map(|&x| half::f16::from_f32(x)).collect()),
        }
    }
    /// An f64 tensor.
    pub fn f64(name: impl Into<String>, shape: &[usize], values: Vec<f64>) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), values: Values::F64(values) }
    }
    /// An i32 tensor.
    pub fn i32(name: impl Into<String>, shape: &[usize], values: Vec<i32>) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), values: Values::I32(values) }
    }
    /// An i64 tensor.
    pub fn i64(name: impl Into<String>, shape: &[usize], values: Vec<i64>) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), values: Values::I64(values) }
    }

    /// The values as f64 (any dtype), for summaries.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.values {
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Values::F16(v) => v.iter().map(|&x| x.to_f64()).collect(),
            Values::F64(v) => v.clone(),
            Values::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Values::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Checks the shape; names the tensor and both shapes when it differs.
    pub fn check_shape(&self, shape: &[usize]) -> Result<&Self> {
        if self.shape != shape {
            return Err(Error::InvalidInput(format!(
                "tensor `{}` has shape {:?}, expected {shape:?}",
                self.name, self.shape
            )));
        }
        Ok(self)
    }

    fn wrong_dtype(&self, expected: &str) -> Error {
        Error::InvalidInput(format!("tensor `{}` is {:?}, expected {expected}", self.name, self.dtype()))
    }

    /// The values of an F64 tensor of this shape.
    pub fn f64_values(&self, shape: &[usize]) -> Result<Vec<f64>> {
        match &self.check_shape(shape)?.values {
            Values::F64(v) => Ok(v.clone()),
            _ => Err(self.wrong_dtype("F64")),
        }
    }

    /// The values of an F32 (or F16) tensor of this shape, as f32.
    pub fn f32_values(&self, shape: &[usize]) -> Result<Vec<f32>> {
        match &self.check_shape(shape)?.values {
            Values::F32(v) => Ok(v.clone()),
            Values::F16(v) => Ok(v.iter().map(|x| x.to_f32()).collect()),
            _ => Err(self.wrong_dtype("F32 or F16")),
        }
    }

    /// The values of an I64 tensor of this shape.
    pub fn i64_values(&self, shape: &[usize]) -> Result<Vec<i64>> {
        match &self.check_shape(shape)?.values {
            Values::I64(v) => Ok(v.clone()),
            _ => Err(self.wrong_dtype("I64")),
        }
    }

    /// Its values as the file stores them (little-endian, as every target this crate builds
    /// for), without a copy.
    fn bytes(&self) -> &[u8] {
        match &self.values {
            Values::F32(v) => bytemuck::cast_slice(v),
            Values::F16(v) => bytemuck::cast_slice(v),
            Values::F64(v) => bytemuck::cast_slice(v),
            Values::I32(v) => bytemuck::cast_slice(v),
            Values::I64(v) => bytemuck::cast_slice(v),
        }
    }

    fn dtype(&self) -> Dtype {
        match self.values {
            Values::F32(_) => Dtype::F32,
            Values::F16(_) => Dtype::F16,
            Values::F64(_) => Dtype::F64,
            Values::I32(_) => Dtype::I32,
            Values::I64(_) => Dtype::I64,
        }
    }

    fn from_view(name: &str, view: &TensorView) -> Result<Self> {
        let data = view.data();
        // Copies through `pod_collect_to_vec`: the file's bytes need not be aligned.
        let values = match view.dtype() {
            Dtype::F32 => Values::F32(bytemuck::pod_collect_to_vec(data)),
            Dtype::F16 => Values::F16(bytemuck::pod_collect_to_vec(data)),
            Dtype::F64 => Values::F64(bytemuck::pod_collect_to_vec(data)),
            Dtype::I32 => Values::I32(bytemuck::pod_collect_to_vec(data)),
            Dtype::I64 => Values::I64(bytemuck::pod_collect_to_vec(data)),
            other => {
                return Err(Error::InvalidInput(format!(
                    "tensor `{name}` has dtype {other:?}, expected F32, F16, F64, I32 or I64"
                )))
            }
        };
        Ok(Self { name: name.to_string(), shape: view.shape().to_vec(), values })
    }
}

/// Serialises tensors (safetensors sorts them by name) to bytes.
pub fn serialize(tensors: &[NamedTensor]) -> Result<Vec<u8>> {
    serialize_with_metadata(tensors, None)
}

/// Serialises tensors and a string map (the file's `__metadata__`) to bytes.
pub fn serialize_with_metadata(tensors: &[NamedTensor], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    for tensor in tensors {
        let (name, shape) = (&tensor.name, &tensor.shape);
        if shape.iter().product::<usize>() * tensor.dtype().size() != tensor.bytes().len() {
            return Err(Error::InvalidInput(format!("tensor `{name}`: {shape:?} does not fit its values")));
        }
    }
    let named = tensors.iter().map(|tensor| (tensor.name.as_str(), tensor));
    safetensors::serialize(named, &metadata).map_err(|e| Error::InvalidInput(format!("serialising tensors: {e}")))
}

/// A tensor as safetensors writes it: its values' bytes borrowed, not copied, so that writing a
/// checkpoint holds the state, its tensors and the file's bytes, and no fourth copy.
impl safetensors::View for &NamedTensor {
    fn dtype(&self) -> Dtype {
        NamedTensor::dtype(self)
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(self.bytes())
    }
    fn data_len(&self) -> usize {
        self.bytes().len()
    }
}

#[cfg(target_endian = "big")]
compile_error!("safetensors files are little-endian; NamedTensor::bytes casts values in place");

/// Looks a tensor up by name; the error names the missing tensor.
pub fn lookup<'a>(tensors: &'a HashMap<String, NamedTensor>, name: &str) -> Result<&'a NamedTensor> {
    tensors.get(name).ok_or_else(|| Error::InvalidInput(format!("tensor `{name}` is missing")))
}

/// Every tensor of a safetensors file, by name, and its metadata.
pub fn deserialize(bytes: &[u8]) -> Result<(HashMap<String, NamedTensor>, HashMap<String, String>)> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::InvalidInput(format!("not a safetensors file: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| Error::InvalidInput(format!("not a safetensors file: {e}")))?;
    let tensors = file
        .tensors()
        .iter()
        .map(|(name, view)| Ok((name.clone(), NamedTensor::from_view(name, view)?)))
        .collect::<Result<_>>()?;
    Ok((tensors, metadata))
}
