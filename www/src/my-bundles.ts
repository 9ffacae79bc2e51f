// "My bundles": bundles built in the page, kept in the browser's origin-private file system
// (OPFS) as the folders `precompute` writes (bundles/<name>/manifest.json, lens.safetensors,
// thumbnails/). The page lists, opens (`?bundle=local:NAME`, read by the worker) and deletes
// them. No DOM: the worker uses it too.

/** A kept bundle as the list shows it. */
export interface KeptBundle {
  name: string;
  /** Its files' bytes in all. */
  bytes: number;
  /** When it was kept (its manifest's last change), ms since the epoch. */
  saved: number;
}

/** Names a bundle can be kept under: letters, digits, `-`, `_`, `.` (not first), 1-64 long. */
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** Checks a bundle's name; the message says what a name may hold. */
export function checkBundleName(name: string): string {
  const trimmed = name.trim();
  if (!NAME.test(trimmed)) throw new Error(`“${name}” cannot name a bundle: use 1 to 64 letters, digits, “-”, “_” or “.” (not first).`);
  return trimmed;
}

async function bundlesFolder(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  if (!navigator.storage?.getDirectory) throw new Error("This browser has no origin-private file system to keep bundles in.");
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle("bundles", { create });
  } catch (error) {
    if (!create && error instanceof DOMException && error.name === "NotFoundError") return null;
    throw error;
  }
}

/** What a failed write says: a full quota in words. */
function writeError(name: string, error: unknown): Error {
  if (error instanceof DOMException && error.name === "QuotaExceededError")
    return new Error(`The browser's storage is full: bundle “${name}” was not kept (delete a kept bundle, or free space).`);
  return new Error(`Bundle “${name}” was not kept: ${error instanceof Error ? error.message : String(error)}`);
}

/** Keeps `files` (name -> bytes, `/` for subfolders) as bundle `name`, replacing one of that name.
 * The manifest is written last: a kept bundle with a manifest is whole. */
export async function keepBundle(name: string, files: Record<string, Uint8Array>): Promise<void> {
  const folder = (await bundlesFolder(true))!;
  await folder.removeEntry(name, { recursive: true }).catch(() => undefined);
  try {
    const bundle = await folder.getDirectoryHandle(name, { create: true });
    const names = Object.keys(files).sort((a, b) => Number(a === "manifest.json") - Number(b === "manifest.json"));
    for (const path of names) {
      const parts = path.split("/");
      let dir = bundle;
      for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part, { create: true });
      const writable = await (await dir.getFileHandle(parts[parts.length - 1]!, { create: true })).createWritable();
      await writable.write(files[path] as Uint8Array<ArrayBuffer>);
      await writable.close();
    }
  } catch (error) {
    await folder.removeEntry(name, { recursive: true }).catch(() => undefined);
    throw writeError(name, error);
  }
}

/** The kept bundles, newest first. */
export async function listKeptBundles(): Promise<KeptBundle[]> {
  const folder = await bundlesFolder(false);
  if (folder === null) return [];
  const kept: KeptBundle[] = [];
  for await (const [name, handle] of folder.entries()) {
    if (handle.kind !== "directory") continue;
    const manifest = await handle
      .getFileHandle("manifest.json")
      .then((file) => file.getFile())
      .catch(() => null);
    if (manifest === null) continue; // an interrupted write: not a bundle
    kept.push({ name, bytes: await folderBytes(handle), saved: manifest.lastModified });
  }
  return kept.sort((a, b) => b.saved - a.saved);
}

async function folderBytes(folder: FileSystemDirectoryHandle): Promise<number> {
  let bytes = 0;
  for await (const handle of folder.values()) bytes += handle.kind === "file" ? (await handle.getFile()).size : await folderBytes(handle);
  return bytes;
}

/** The bytes of file `path` of kept bundle `name`. */
export async function readKeptFile(name: string, path: string): Promise<Uint8Array> {
  const folder = await bundlesFolder(false);
  try {
    if (folder === null) throw new Error("no bundle is kept");
    const parts = path.split("/");
    let dir = await folder.getDirectoryHandle(name);
    for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
    const file = await (await dir.getFileHandle(parts[parts.length - 1]!)).getFile();
    return new Uint8Array(await file.arrayBuffer());
  } catch (error) {
    throw new Error(`No kept bundle “${name}” with ${path} in this browser (${error instanceof Error ? error.message : String(error)}).`);
  }
}

/** Deletes kept bundle `name`. */
export async function deleteKeptBundle(name: string): Promise<void> {
  const folder = await bundlesFolder(false);
  await folder?.removeEntry(name, { recursive: true });
}
