//! Where a run reads its images ([`ImageSource`]) and writes its files ([`BundleSink`]): the
//! bundle (`manifest.json`, `lens.safetensors`, `thumbnails/<id>.jpg`), the checkpoint and the
//! shard files. Natively a folder ([`FolderSource`]) and a directory ([`DirectorySink`]); in
//! memory ([`MemorySource`], [`MemorySink`]) anywhere, the browser included.
//!
//! File names are relative paths with `/` (`thumbnails/3.jpg`, `shards/means.safetensors`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::tensor_file::{file_parts, FileTable, NamedTensor};
use crate::{Error, Result};

/// An image of a source: its name (the manifest's) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The name, unique in the source.
    pub name: String,
    /// Bytes; with the names, what says that a resumed run reads the same images.
    pub size: u64,
}

/// The images of a run.
// The futures are awaited where they are made (pollster natively, a worker's event loop in the
// browser), never sent to another thread: no `Send` bound to promise.
#[allow(async_fn_in_trait)]
pub trait ImageSource {
    /// Every image, sorted by name (an image's id is its position among those that decode).
    async fn list(&self) -> Result<Vec<ImageEntry>>;

    /// The bytes of image `name`.
    async fn read(&self, name: &str) -> Result<Vec<u8>>;

    /// How messages, checkpoints and the manifest's skipped images spell `name` (a folder: the
    /// file's path).
    fn locate(&self, name: &str) -> String {
        name.to_string()
    }
}

/// Where a run writes its files, and reads back its checkpoint.
///
/// Files are written from parts and read by ranges, so that a checkpoint holding the top-k
/// state (the largest thing a run holds) never has a second copy in memory
/// ([`write_tensor_file`], [`read_tensor_file`]).
#[allow(async_fn_in_trait)]
pub trait BundleSink {
    /// Writes the file `name` whole from `parts`, in order: a reader sees the old file or the
    /// new one, never part of one (a checkpoint replaced while the process dies stays usable).
    async fn write_parts(&self, name: &str, parts: &[&[u8]]) -> Result<()>;

    /// The size in bytes of the file `name`, if there is one.
    async fn size(&self, name: &str) -> Result<Option<u64>>;

    /// Fills `into` with the bytes of the file `name` from byte `start` on.
    async fn read_range(&self, name: &str, start: u64, into: &mut [u8]) -> Result<()>;

    /// Removes the file `name` (nothing if there is none).
    async fn remove(&self, name: &str) -> Result<()>;

    /// How messages spell the file `name` (a directory: its path).
    fn locate(&self, name: &str) -> String {
        name.to_string()
    }

    /// Writes the file `name` whole from `bytes`.
    async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.write_parts(name, &[&bytes]).await
    }

    /// The file `name`, if there is one.
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(size) = self.size(name).await? else { return Ok(None) };
        let mut bytes = vec![0; size as usize];
        self.read_range(name, 0, &mut bytes).await?;
        Ok(Some(bytes))
    }
}

/// How much of a file [`read_tensor_file`] asks a sink for at once: what a page copies between
/// its storage and the module at a time.
const READ_CHUNK: usize = 16 << 20;

/// Writes `tensors` and `metadata` as the safetensors file `name`, part by part.
pub(crate) async fn write_tensor_file(
    sink: &impl BundleSink,
    name: &str,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let file = file_parts(tensors, Some(metadata))?;
    sink.write_parts(name, &file.parts().collect::<Vec<_>>()).await
}

/// The tensors and metadata of the safetensors file `name`, if there is one, each tensor read
/// straight into its values (no copy of the file in memory).
pub(crate) async fn read_tensor_file(sink: &impl BundleSink, name: &str) -> Result<Option<TensorFile>> {
    let Some(size) = sink.size(name).await? else { return Ok(None) };
    let mut first = [0; 8];
    if size < 8 {
        return Err(Error::InvalidInput(format!("not a safetensors file: {size} bytes")));
    }
    sink.read_range(name, 0, &mut first).await?;
    let mut json = vec![0; FileTable::length(first, size)?];
    sink.read_range(name, 8, &mut json).await?;
    let (metadata, to_read) = FileTable::parse(&json, size)?.into_parts();
    let mut tensors = HashMap::new();
    for (mut tensor, start) in to_read {
        let mut offset = start;
        for chunk in tensor.values_bytes_mut().chunks_mut(READ_CHUNK) {
            sink.read_range(name, offset, chunk).await?;
            offset += chunk.len() as u64;
        }
        tensors.insert(tensor.name.clone(), tensor);
    }
    Ok(Some((tensors, metadata)))
}

/// A safetensors file's tensors by name, and its metadata.
pub(crate) type TensorFile = (HashMap<String, NamedTensor>, HashMap<String, String>);

/// The bytes of `file` from `start`, into `into`; an error naming `name` when it ends before.
fn copy_range(file: &[u8], name: &str, start: u64, into: &mut [u8]) -> Result<()> {
    let range = usize::try_from(start).ok().and_then(|start| file.get(start..start.checked_add(into.len())?));
    let bytes =
        range.ok_or_else(|| Error::InvalidInput(format!("{name} ends before byte {}", start + into.len() as u64)))?;
    into.copy_from_slice(bytes);
    Ok(())
}

/// Images held in memory, by name (any bytes: undecodable ones are skipped as in a folder).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    images: BTreeMap<String, Vec<u8>>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) image `name`.
    pub fn insert(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.images.insert(name.into(), bytes);
    }
}

impl<N: Into<String>> FromIterator<(N, Vec<u8>)> for MemorySource {
    fn from_iter<I: IntoIterator<Item = (N, Vec<u8>)>>(images: I) -> Self {
        Self { images: images.into_iter().map(|(name, bytes)| (name.into(), bytes)).collect() }
    }
}

impl ImageSource for MemorySource {
    async fn list(&self) -> Result<Vec<ImageEntry>> {
        Ok(self
            .images
            .iter()
            .map(|(name, bytes)| ImageEntry { name: name.clone(), size: bytes.len() as u64 })
            .collect())
    }

    async fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.images.get(name).cloned().ok_or_else(|| Error::InvalidInput(format!("no image {name:?} in memory")))
    }
}

/// Files held in memory, by name.
#[derive(Debug, Default)]
pub struct MemorySink {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The names of the files written (and not removed), sorted: without copying their bytes,
    /// which for a checkpoint are the whole top-k state.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The files written (and not removed), by name.
    pub fn into_files(self) -> BTreeMap<String, Vec<u8>> {
        self.files.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic elsewhere cannot leave the map half-updated: every change is one call.
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BundleSink for MemorySink {
    async fn write_parts(&self, name: &str, parts: &[&[u8]]) -> Result<()> {
        self.lock().insert(name.to_string(), parts.concat());
        Ok(())
    }

    async fn size(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.lock().get(name).map(|bytes| bytes.len() as u64))
    }

    async fn read_range(&self, name: &str, start: u64, into: &mut [u8]) -> Result<()> {
        let files = self.lock();
        let file = files.get(name).ok_or_else(|| Error::InvalidInput(format!("no file {name}")))?;
        copy_range(file, name, start, into)
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.lock().remove(name);
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{DirectorySink, FolderSource, IMAGE_EXTENSIONS};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::{Path, PathBuf};

    use super::{BundleSink, ImageEntry, ImageSource};
    use crate::{Error, Result};

    /// File name extensions taken as images (any case); other files in a folder are ignored.
    pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

    /// The image files of a folder (not recursive, by extension), named by file name.
    #[derive(Debug, Clone)]
    pub struct FolderSource {
        dir: PathBuf,
    }

    impl FolderSource {
        /// The images of `dir` (listed when the run starts).
        pub fn new(dir: impl Into<PathBuf>) -> Self {
            Self { dir: dir.into() }
        }
    }

    impl ImageSource for FolderSource {
        /// Sorted by path; an error when the folder holds no image file.
        async fn list(&self) -> Result<Vec<ImageEntry>> {
            let dir = &self.dir;
            let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            let is_image = |p: &Path| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            };
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && is_image(p)).collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "{} contains no image files ({})",
                    dir.display(),
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            Ok(files
                .iter()
                .map(|f| ImageEntry {
                    name: f.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    size: std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
                })
                .collect())
        }

        async fn read(&self, name: &str) -> Result<Vec<u8>> {
            let path = self.dir.join(name);
            std::fs::read(&path).map_err(|e| Error::io(&path, e))
        }

        fn locate(&self, name: &str) -> String {
            self.dir.join(name).display().to_string()
        }
    }

    /// Files in a directory (created when the first file is written).
    #[derive(Debug, Clone)]
    pub struct DirectorySink {
        dir: PathBuf,
    }

    impl DirectorySink {
        /// The files of `dir`.
        pub fn new(dir: impl Into<PathBuf>) -> Self {
            Self { dir: dir.into() }
        }

        /// The path of the file `name`.
        pub fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }
    }

    impl BundleSink for DirectorySink {
        /// Through a temporary file renamed over the old one, creating the folders.
        async fn write_parts(&self, name: &str, parts: &[&[u8]]) -> Result<()> {
            let path = self.path(name);
            let parent = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            let temporary = path.with_extension("tmp");
            let written = std::fs::File::create(&temporary)
                .and_then(|mut file| parts.iter().try_for_each(|part| file.write_all(part)));
            written.map_err(|e| Error::io(&temporary, e))?;
            std::fs::rename(&temporary, &path).map_err(|e| Error::io(&path, e))
        }

        async fn size(&self, name: &str) -> Result<Option<u64>> {
            let path = self.path(name);
            match std::fs::metadata(&path) {
                Ok(metadata) => Ok(Some(metadata.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(&path, e)),
            }
        }

        async fn read_range(&self, name: &str, start: u64, into: &mut [u8]) -> Result<()> {
            let path = self.path(name);
            let read = std::fs::File::open(&path).and_then(|mut file| {
                file.seek(SeekFrom::Start(start))?;
                file.read_exact(into)
            });
            read.map_err(|e| Error::io(&path, e))
        }

        async fn remove(&self, name: &str) -> Result<()> {
            let path = self.path(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
                _ => Ok(()),
            }
        }

        fn locate(&self, name: &str) -> String {
            self.path(name).display().to_string()
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// A file larger than a read chunk (a checkpoint's top-k state) written from parts and read
    /// back tensor by tensor is what was written, in memory and in a directory.
    #[test]
    fn tensor_files_round_trip_through_sinks_in_chunks() {
        let large: Vec<f32> = (0..READ_CHUNK / 2).map(|i| i as f32 * 0.5).collect();
        let tensors = vec![
            NamedTensor::f32("layer.8.centred", &[READ_CHUNK / 2], large),
            NamedTensor::i64("layer.8.images", &[2], vec![-1, 3]),
        ];
        let metadata = HashMap::from([("position".to_string(), "{}".to_string())]);
        let expected: HashMap<String, NamedTensor> = tensors.iter().map(|t| (t.name.clone(), t.clone())).collect();
        let folder = std::env::temp_dir().join(format!("clip-lens-io-{}", std::process::id()));
        let directory = native::DirectorySink::new(&folder);
        let memory = MemorySink::new();
        let results = pollster::block_on(async {
            [round_trip(&memory, &tensors, &metadata).await, round_trip(&directory, &tensors, &metadata).await]
        });
        for (written, absent) in results {
            assert_eq!(written.0, expected);
            assert_eq!(written.1, metadata);
            assert!(absent.is_none(), "a file that is not there reads as none");
        }
        let _ = std::fs::remove_dir_all(folder);
    }

    async fn round_trip(
        sink: &impl BundleSink,
        tensors: &[NamedTensor],
        metadata: &HashMap<String, String>,
    ) -> (TensorFile, Option<TensorFile>) {
        write_tensor_file(sink, "sub/file.safetensors", tensors, metadata.clone()).await.unwrap();
        let written = read_tensor_file(sink, "sub/file.safetensors").await.unwrap().unwrap();
        (written, read_tensor_file(sink, "none.safetensors").await.unwrap())
    }
}
