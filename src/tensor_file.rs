//! Named tensors in safetensors files: CLI outputs, bundles and `precompute` checkpoints.

use std::collections::HashMap;
use std::sync::Arc;

use safetensors::tensor::{Dtype, Metadata, TensorView};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// The values of a named tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// 32-bit floats, shareable: the top-k state lends its largest tensor to the checkpoint
    /// being written instead of copying it (see [`NamedTensor::shared_f32`]).
    F32(Arc<Vec<f32>>),
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
        Self::shared_f32(name, shape, Arc::new(values))
    }
    /// An f32 tensor whose values are shared with their owner, not copied.
    pub fn shared_f32(name: impl Into<String>, shape: &[usize], values: Arc<Vec<f32>>) -> Self {
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
        self.shared_f32_values(shape).map(Arc::unwrap_or_clone)
    }

    /// The values of an F32 (or F16) tensor of this shape, as f32, shared with this tensor
    /// when they are f32 (no copy: a resumed checkpoint's top-k state).
    pub fn shared_f32_values(&self, shape: &[usize]) -> Result<Arc<Vec<f32>>> {
        match &self.check_shape(shape)?.values {
            Values::F32(v) => Ok(Arc::clone(v)),
            Values::F16(v) => Ok(Arc::new(v.iter().map(|x| x.to_f32()).collect())),
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

    /// Zeroed values of `dtype` and `shape`, to be filled with the file's bytes
    /// ([`NamedTensor::bytes_mut`]).
    fn zeroed(name: &str, dtype: Dtype, shape: &[usize]) -> Result<Self> {
        let count = shape.iter().product::<usize>();
        let values = match dtype {
            Dtype::F32 => Values::F32(Arc::new(vec![0.0; count])),
            Dtype::F16 => Values::F16(vec![half::f16::ZERO; count]),
            Dtype::F64 => Values::F64(vec![0.0; count]),
            Dtype::I32 => Values::I32(vec![0; count]),
            Dtype::I64 => Values::I64(vec![0; count]),
            other => return Err(unsupported_dtype(name, other)),
        };
        Ok(Self { name: name.to_string(), shape: shape.to_vec(), values })
    }

    /// Its values' bytes as the file stores them, to fill in place (a tensor of
    /// [`FileTable::into_parts`]; shared values are copied first).
    pub fn values_bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.values {
            Values::F32(v) => bytemuck::cast_slice_mut(Arc::make_mut(v).as_mut_slice()),
            Values::F16(v) => bytemuck::cast_slice_mut(v),
            Values::F64(v) => bytemuck::cast_slice_mut(v),
            Values::I32(v) => bytemuck::cast_slice_mut(v),
            Values::I64(v) => bytemuck::cast_slice_mut(v),
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

    /// A copy of a file's tensor (into aligned values: the file's bytes need not be aligned).
    fn from_view(name: &str, view: &TensorView) -> Result<Self> {
        let mut tensor = Self::zeroed(name, view.dtype(), view.shape())?;
        tensor.values_bytes_mut().copy_from_slice(view.data());
        Ok(tensor)
    }
}

fn unsupported_dtype(name: &str, dtype: Dtype) -> Error {
    Error::InvalidInput(format!("tensor `{name}` has dtype {dtype:?}, expected F32, F16, F64, I32 or I64"))
}

/// Serialises tensors (sorted as safetensors sorts them) to bytes.
pub fn serialize(tensors: &[NamedTensor]) -> Result<Vec<u8>> {
    serialize_with_metadata(tensors, None)
}

/// Serialises tensors and a string map (the file's `__metadata__`) to bytes.
pub fn serialize_with_metadata(tensors: &[NamedTensor], metadata: Option<HashMap<String, String>>) -> Result<Vec<u8>> {
    Ok(file_parts(tensors, metadata)?.concat())
}

/// A safetensors file as the parts it is written from, in order: its header (the table's
/// length and the table) and each tensor's bytes, borrowed. A large file (a checkpoint holding
/// the top-k state) is written part by part, never gathered into one buffer.
pub struct FileParts<'a> {
    /// The first 8 bytes (the table's length, little-endian) and the JSON table.
    pub header: Vec<u8>,
    /// The tensors' bytes, in the order of their offsets.
    pub data: Vec<&'a [u8]>,
}

impl FileParts<'_> {
    /// Every part, in order.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.header.as_slice()).chain(self.data.iter().copied())
    }

    /// The whole file in one buffer.
    pub fn concat(&self) -> Vec<u8> {
        self.parts().collect::<Vec<_>>().concat()
    }
}

/// The parts of the safetensors file of `tensors` and `metadata`: the bytes safetensors itself
/// writes (the tensors laid out larger dtypes first, then by name; the table in that order, its
/// metadata first and sorted, padded with spaces to 8 bytes).
pub fn file_parts(tensors: &[NamedTensor], metadata: Option<HashMap<String, String>>) -> Result<FileParts<'_>> {
    let mut order: Vec<&NamedTensor> = tensors.iter().collect();
    order.sort_by(|a, b| b.dtype().cmp(&a.dtype()).then(a.name.cmp(&b.name)));
    let mut entries = Vec::with_capacity(order.len() + 1);
    if let Some(metadata) = metadata {
        let sorted: std::collections::BTreeMap<String, String> = metadata.into_iter().collect();
        entries.push(format!("\"__metadata__\":{}", to_json(&sorted)?));
    }
    let (mut offset, mut names) = (0, std::collections::HashSet::new());
    for tensor in &order {
        let (name, shape, length) = (&tensor.name, &tensor.shape, tensor.bytes().len());
        if shape.iter().product::<usize>() * tensor.dtype().size() != length {
            return Err(Error::InvalidInput(format!("tensor `{name}`: {shape:?} does not fit its values")));
        }
        let info = TableEntry { dtype: tensor.dtype(), shape, data_offsets: (offset, offset + length) };
        if !names.insert(name) {
            return Err(Error::InvalidInput(format!("two tensors are named `{name}`")));
        }
        entries.push(format!("{}:{}", to_json(name)?, to_json(&info)?));
        offset += length;
    }
    let mut table = format!("{{{}}}", entries.join(",")).into_bytes();
    table.resize(table.len().next_multiple_of(8), b' ');
    let header = [(table.len() as u64).to_le_bytes().as_slice(), &table].concat();
    Ok(FileParts { header, data: order.iter().map(|tensor| tensor.bytes()).collect() })
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidInput(format!("a tensor table: {e}")))
}

/// A tensor's entry in a safetensors table, its fields in safetensors' order.
#[derive(serde::Serialize)]
struct TableEntry<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data_offsets: (usize, usize),
}

/// The largest table a safetensors file may have (safetensors' own bound).
const MAX_TABLE_BYTES: u64 = 100_000_000;

/// The table of a safetensors file, read before its data, so that a large file (a checkpoint)
/// is read tensor by tensor straight into their values ([`FileTable::into_parts`]), never whole.
pub struct FileTable {
    /// The file's `__metadata__`.
    metadata: HashMap<String, String>,
    /// Each tensor, zeroed, and the byte offset in the file where its values start.
    tensors: Vec<(NamedTensor, u64)>,
}

impl FileTable {
    /// The table's length, from the file's first 8 bytes; an error for a length no file
    /// of `file_size` bytes can hold.
    pub fn length(first: [u8; 8], file_size: u64) -> Result<usize> {
        let length = u64::from_le_bytes(first);
        if length > MAX_TABLE_BYTES || length.saturating_add(8) > file_size {
            return Err(Error::InvalidInput(format!(
                "not a safetensors file: a {length}-byte table in {file_size} bytes"
            )));
        }
        Ok(length as usize)
    }

    /// The table `json` of a file of `file_size` bytes; an error when a tensor's values do not
    /// fit its shape and dtype or lie outside the file.
    pub fn parse(json: &[u8], file_size: u64) -> Result<Self> {
        let not_safetensors = |why: String| Error::InvalidInput(format!("not a safetensors file: {why}"));
        let table: Metadata = serde_json::from_slice(json).map_err(|e| not_safetensors(e.to_string()))?;
        let data_start = 8 + json.len() as u64;
        let mut tensors = Vec::new();
        for (name, info) in table.tensors() {
            let (start, end) = info.data_offsets;
            let bytes = info.shape.iter().try_fold(info.dtype.size(), |n, &d| n.checked_mul(d));
            if bytes != end.checked_sub(start) || data_start + end as u64 > file_size {
                return Err(not_safetensors(format!("tensor `{name}` does not fit its place in the file")));
            }
            tensors.push((NamedTensor::zeroed(&name, info.dtype, &info.shape)?, data_start + start as u64));
        }
        Ok(Self { metadata: table.metadata().clone().unwrap_or_default(), tensors })
    }

    /// The metadata, and each tensor, zeroed, with the offset of its values in the file: fill
    /// [`NamedTensor::values_bytes_mut`] from there.
    pub fn into_parts(self) -> (HashMap<String, String>, Vec<(NamedTensor, u64)>) {
        (self.metadata, self.tensors)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> Vec<NamedTensor> {
        vec![
            NamedTensor::f32("b.weights", &[2, 3], vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.25]),
            NamedTensor::i64("a.ids", &[3], vec![-1, 7, 1 << 40]),
            NamedTensor::f16("c.half", &[2], &[0.5, -4.0]),
            NamedTensor::f64("d.sums", &[1], vec![1e300]),
        ]
    }

    fn by_name(tensors: Vec<NamedTensor>) -> HashMap<String, NamedTensor> {
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect()
    }

    /// The parts make a file that safetensors itself reads: the same tensors and metadata, laid
    /// out as safetensors lays them out.
    #[test]
    fn file_parts_are_a_safetensors_file() {
        let metadata = HashMap::from([("run".to_string(), "7".to_string())]);
        let bytes = serialize_with_metadata(&tensors(), Some(metadata.clone())).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let names: Vec<String> = file.tensors().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names.len(), 4);
        let (read, read_metadata) = deserialize(&bytes).unwrap();
        assert_eq!(read, by_name(tensors()));
        assert_eq!(read_metadata, metadata);
        let tensors = tensors();
        let views =
            tensors.iter().map(|t| (t.name.clone(), TensorView::new(t.dtype(), t.shape.clone(), t.bytes()).unwrap()));
        let theirs = safetensors::serialize(views, &Some(metadata)).unwrap();
        assert_eq!(theirs, bytes, "safetensors' own bytes (one metadata entry: its order is fixed)");
        let (_, table) = SafeTensors::read_metadata(&bytes).unwrap();
        let offsets = |name: &str| table.info(name).unwrap().data_offsets;
        // safetensors' order: dtypes descending (I64, F64, F32, F16), then names.
        let layout = [offsets("a.ids"), offsets("d.sums"), offsets("b.weights"), offsets("c.half")];
        assert_eq!(layout, [(0, 24), (24, 32), (32, 56), (56, 60)]);
    }

    /// A file read through its table, tensor by tensor into zeroed values, is the file.
    #[test]
    fn a_file_table_reads_the_tensors_in_place() {
        let bytes = serialize_with_metadata(&tensors(), Some(HashMap::from([("k".into(), "v".into())]))).unwrap();
        let size = bytes.len() as u64;
        let length = FileTable::length(bytes[..8].try_into().unwrap(), size).unwrap();
        let table = FileTable::parse(&bytes[8..8 + length], size).unwrap();
        let (metadata, zeroed) = table.into_parts();
        assert_eq!(metadata["k"], "v");
        let read = zeroed.into_iter().map(|(mut tensor, start)| {
            let values = tensor.values_bytes_mut();
            let len = values.len();
            values.copy_from_slice(&bytes[start as usize..][..len]);
            tensor
        });
        assert_eq!(by_name(read.collect()), by_name(tensors()));
    }

    /// A table whose tensors lie past the file's end, or do not fit their shapes, and a length
    /// longer than the file are refused by name.
    #[test]
    fn a_file_table_refuses_what_the_file_cannot_hold() {
        let bytes = serialize(&tensors()).unwrap();
        let length = FileTable::length(bytes[..8].try_into().unwrap(), bytes.len() as u64).unwrap();
        let json = &bytes[8..8 + length];
        let short = FileTable::parse(json, bytes.len() as u64 - 1).err().unwrap().to_string();
        assert!(short.contains("does not fit its place"), "{short}");
        let reshaped = String::from_utf8(json.to_vec()).unwrap().replace("[2,3]", "[3,3]");
        let wrong = FileTable::parse(reshaped.as_bytes(), bytes.len() as u64).err().unwrap().to_string();
        assert!(wrong.contains("b.weights"), "{wrong}");
        let too_long = FileTable::length(1000u64.to_le_bytes(), 500).unwrap_err().to_string();
        assert!(too_long.contains("1000-byte table in 500 bytes"), "{too_long}");
    }
}
