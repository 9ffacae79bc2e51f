//! Where a run reads its images ([`ImageSource`]) and writes its files ([`BundleSink`]): the
//! bundle (`manifest.json`, `lens.safetensors`, `thumbnails/<id>.jpg`), the checkpoint and the
//! shard files. Natively a folder ([`FolderSource`]) and a directory ([`DirectorySink`]); in
//! memory ([`MemorySource`], [`MemorySink`]) anywhere, the browser included.
//!
//! File names are relative paths with `/` (`thumbnails/3.jpg`, `shards/means.safetensors`).

use std::collections::BTreeMap;
use std::sync::Mutex;

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
#[allow(async_fn_in_trait)]
pub trait BundleSink {
    /// Writes the file `name` whole: a reader sees the old file or the new one, never part of
    /// one (a checkpoint replaced while the process dies stays usable).
    async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()>;

    /// The file `name`, if there is one.
    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Removes the file `name` (nothing if there is none).
    async fn remove(&self, name: &str) -> Result<()>;

    /// How messages spell the file `name` (a directory: its path).
    fn locate(&self, name: &str) -> String {
        name.to_string()
    }
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
    async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.lock().insert(name.to_string(), bytes);
        Ok(())
    }

    async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(name).cloned())
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
        async fn write(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
            let path = self.path(name);
            let parent = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, bytes).map_err(|e| Error::io(&temporary, e))?;
            std::fs::rename(&temporary, &path).map_err(|e| Error::io(&path, e))
        }

        async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
            let path = self.path(name);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(&path, e)),
            }
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
