//! A build's files in the browser's storage: a folder of the origin-private file system (the
//! kept bundle's, `bundles/<name>/`), written and read from Rust through web-sys.
//!
//! A file is written through a writable stream, which the browser applies to the file only when
//! it is closed (the old file stays until then), so a reader never sees part of one. Files go
//! to the stream, and come back from it, a chunk at a time: a checkpoint (the top-k state, up
//! to gigabytes) is never copied whole, neither into the page's memory nor out of the module's.

use std::cell::RefCell;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, DomException, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemWritableFileStream,
};

use super::{describe, JsResult, Result};
use crate::precompute::BundleSink;
use crate::Error;

/// How much a write copies out of the module at once.
const WRITE_CHUNK: usize = 8 << 20;

/// A folder of the origin-private file system, as a build's [`BundleSink`]. File names are
/// paths with `/` (`thumbnails/3.jpg`); their folders are made when a file is written.
pub(super) struct StorageFolder {
    folder: FileSystemDirectoryHandle,
    /// The file read last, kept between the ranges of one read (a checkpoint's are about a
    /// hundred) instead of looking its handle up for each; a write or a removal forgets it.
    last_read: RefCell<Option<(String, Blob)>>,
}

impl StorageFolder {
    /// The folder `folder` (a `FileSystemDirectoryHandle`).
    pub(super) fn new(folder: JsValue) -> Result<Self> {
        let folder = folder
            .dyn_into::<FileSystemDirectoryHandle>()
            .map_err(|_| Error::InvalidInput("the build's files need a folder of the browser's storage".into()))?;
        Ok(Self { folder, last_read: RefCell::new(None) })
    }

    /// The subfolder `path` (`a/b`; `""`: this folder); with `create`, made, else `None` when
    /// absent.
    async fn folder(&self, path: &str, create: bool) -> JsResult<Option<FileSystemDirectoryHandle>> {
        let mut folder = self.folder.clone();
        for part in path.split('/').filter(|part| !part.is_empty()) {
            let options = FileSystemGetDirectoryOptions::new();
            options.set_create(create);
            match awaited(folder.get_directory_handle_with_options(part, &options)).await {
                Ok(handle) => folder = handle.unchecked_into(),
                Err(e) if !create && is_named(&e, "NotFoundError") => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(folder))
    }

    /// The handle of file `name`; with `create`, made with its folders, else `None` when absent.
    async fn file(&self, name: &str, create: bool) -> JsResult<Option<FileSystemFileHandle>> {
        let (folders, file) = split(name);
        let Some(folder) = self.folder(folders, create).await? else { return Ok(None) };
        let options = FileSystemGetFileOptions::new();
        options.set_create(create);
        match awaited(folder.get_file_handle_with_options(file, &options)).await {
            Ok(handle) => Ok(Some(handle.unchecked_into())),
            Err(e) if !create && is_named(&e, "NotFoundError") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// File `name` as a `Blob`, if there is one.
    async fn blob(&self, name: &str) -> Result<Option<Blob>> {
        if let Some((_, blob)) = self.last_read.borrow().as_ref().filter(|(read, _)| read == name) {
            return Ok(Some(blob.clone()));
        }
        let unreadable = |e: JsValue| failed(name, "cannot be read", e);
        let Some(handle) = self.file(name, false).await.map_err(unreadable)? else { return Ok(None) };
        let blob: Blob = awaited(handle.get_file()).await.map_err(unreadable)?.unchecked_into();
        *self.last_read.borrow_mut() = Some((name.to_string(), blob.clone()));
        Ok(Some(blob))
    }

    /// Writes `parts` to `stream`, a chunk at a time (each copied out of the module, which may
    /// share its memory with threads: a stream takes no view of shared memory).
    async fn write_chunks(stream: &FileSystemWritableFileStream, parts: &[&[u8]]) -> JsResult<()> {
        for chunk in parts.iter().flat_map(|part| part.chunks(WRITE_CHUNK)) {
            awaited(stream.write_with_js_u8_array(&Uint8Array::from(chunk))?).await?;
        }
        awaited(stream.close()).await.map(|_| ())
    }
}

impl BundleSink for StorageFolder {
    async fn write_parts(&self, name: &str, parts: &[&[u8]]) -> Result<()> {
        self.last_read.take();
        let unwritable = |e: JsValue| failed(name, "cannot be written", e);
        let handle = self.file(name, true).await.map_err(unwritable)?.ok_or_else(|| unwritable(JsValue::NULL))?;
        let stream: FileSystemWritableFileStream =
            awaited(handle.create_writable()).await.map_err(unwritable)?.unchecked_into();
        if let Err(e) = Self::write_chunks(&stream, parts).await {
            // Discards what was written: the old file stays.
            let _ = awaited(stream.abort()).await;
            return Err(unwritable(e));
        }
        Ok(())
    }

    async fn size(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.blob(name).await?.map(|blob| blob.size() as u64))
    }

    async fn read_range(&self, name: &str, start: u64, into: &mut [u8]) -> Result<()> {
        let unreadable = |e: JsValue| failed(name, "cannot be read", e);
        let blob = self.blob(name).await?.ok_or_else(|| Error::InvalidInput(format!("{name} is gone")))?;
        let end = start + into.len() as u64;
        if end > blob.size() as u64 {
            return Err(Error::InvalidInput(format!("{name} ends before byte {end}")));
        }
        let range = blob.slice_with_f64_and_f64(start as f64, end as f64).map_err(unreadable)?;
        let bytes = awaited(range.array_buffer()).await.map_err(unreadable)?;
        Uint8Array::new(&bytes).copy_to(into);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.last_read.take();
        let cannot = |e: JsValue| failed(name, "cannot be removed", e);
        let (folders, file) = split(name);
        let Some(folder) = self.folder(folders, false).await.map_err(cannot)? else { return Ok(()) };
        match awaited(folder.remove_entry(file)).await {
            Err(e) if !is_named(&e, "NotFoundError") => Err(cannot(e)),
            _ => Ok(()),
        }
    }
}

/// A file's path as its folders (`""`: none) and its name.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

async fn awaited(promise: Promise) -> JsResult<JsValue> {
    JsFuture::from(promise).await
}

/// Whether `error` is a `DOMException` named `name`.
fn is_named(error: &JsValue, name: &str) -> bool {
    error.dyn_ref::<DomException>().is_some_and(|e| e.name() == name)
}

/// File `name` `what` ("cannot be written"), and why: a full storage said in words.
fn failed(name: &str, what: &str, error: JsValue) -> Error {
    if is_named(&error, "QuotaExceededError") {
        return Error::InvalidInput(format!(
            "the browser's storage is full: {name} {what} (delete a kept bundle, or free space)"
        ));
    }
    Error::InvalidInput(format!("{name} {what}: {}", describe(&error)))
}
