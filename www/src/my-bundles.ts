// "My bundles": bundles built in the page, kept in the browser's origin-private file system
// (OPFS) as the folders `precompute` writes (bundles/<name>/manifest.json, lens.safetensors,
// thumbnails/). The page lists, opens (`?bundle=local:NAME`, read by the worker) and deletes
// them. No DOM: the worker uses it too.

/** A kept bundle as the list shows it. */
export interface KeptBundle {
  name: string;
  /** Whether it is whole; else a build that stopped, which resumes when built again. */
  whole: boolean;
  /** Its files' bytes in all. */
  bytes: number;
  /** When it was kept (its manifest's last change), ms since the epoch. */
  saved: number;
}

/** A build's checkpoint in its folder (`precompute`'s). */
const CHECKPOINT = ".precompute-checkpoint.safetensors";

/** Names a bundle can be kept under: letters, digits, `-`, `_`, `.` (not first), 1-64 long. */
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** Checks a bundle's name; the message says what a name may hold. */
export function checkBundleName(name: string): string {
  const trimmed = name.trim();
  if (!NAME.test(trimmed)) throw new Error(`“${name}” cannot name a bundle: use 1 to 64 letters, digits, “-”, “_” or “.” (not first).`);
  return trimmed;
}

/** The origin-private file system's top folder `name` (made when `create`; null when absent). */
export async function storageFolder(name: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  if (!navigator.storage?.getDirectory) throw new Error(`This browser has no origin-private file system to keep ${name} in.`);
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle(name, { create });
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

/** The folder of kept bundle `name` (made when `create`): a build writes its files there. */
export async function bundleFolder(name: string, create: boolean): Promise<FileSystemDirectoryHandle> {
  const folder = await storageFolder("bundles", create);
  if (folder === null) throw new Error("no bundle is kept in this browser");
  return folder.getDirectoryHandle(name, { create });
}

/** The folder holding file `path` (`a/b/c.jpg`) of `root`, and the file's own name. */
async function parent(root: FileSystemDirectoryHandle, path: string, create: boolean): Promise<[FileSystemDirectoryHandle, string]> {
  const parts = path.split("/");
  let dir = root;
  for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part, { create });
  return [dir, parts[parts.length - 1]!];
}

/** Writes file `path` of kept bundle `name` whole (a full quota is said in words). */
async function writeKeptFile(name: string, path: string, bytes: Uint8Array): Promise<void> {
  try {
    const [dir, file] = await parent(await bundleFolder(name, true), path, true);
    const writable = await (await dir.getFileHandle(file, { create: true })).createWritable();
    await writable.write(bytes as Uint8Array<ArrayBuffer>);
    await writable.close();
  } catch (error) {
    throw writeError(name, error);
  }
}

/** The bytes of file `path` of kept bundle `name`, or null when it has none. */
export async function readKeptFileIfAny(name: string, path: string): Promise<Uint8Array | null> {
  if ((await storageFolder("bundles", false)) === null) return null;
  try {
    const [dir, file] = await parent(await bundleFolder(name, false), path, false);
    return new Uint8Array(await (await (await dir.getFileHandle(file)).getFile()).arrayBuffer());
  } catch (error) {
    if (error instanceof DOMException && error.name === "NotFoundError") return null;
    throw error;
  }
}

/** Keeps `files` (name -> bytes) as bundle `name`, replacing one of that name. The manifest is
 * written last: a kept bundle with a manifest is whole. */
export async function keepBundle(name: string, files: Record<string, Uint8Array>): Promise<void> {
  await deleteKeptBundle(name);
  const names = Object.keys(files).sort((a, b) => Number(a === "manifest.json") - Number(b === "manifest.json"));
  try {
    for (const path of names) await writeKeptFile(name, path, files[path]!);
  } catch (error) {
    await deleteKeptBundle(name);
    throw error;
  }
}

/** Every file of kept bundle `name` (or of its subfolder `folder`), path -> bytes (for its zip,
 * or its thumbnails). */
export async function keptFiles(name: string, folder?: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  const walk = async (dir: FileSystemDirectoryHandle, prefix: string): Promise<void> => {
    for await (const [entry, handle] of dir.entries()) {
      if (handle.kind === "directory") await walk(handle, `${prefix}${entry}/`);
      else files[`${prefix}${entry}`] = new Uint8Array(await (await handle.getFile()).arrayBuffer());
    }
  };
  const root = await bundleFolder(name, false);
  if (folder === undefined) await walk(root, "");
  else await walk(await root.getDirectoryHandle(folder), `${folder}/`);
  return files;
}

/** Whether kept bundle `name` is whole (has its manifest). */
export async function isWhole(name: string): Promise<boolean> {
  return (await readKeptFileIfAny(name, "manifest.json").catch(() => null)) !== null;
}

/** The kept bundles, newest first. */
export async function listKeptBundles(): Promise<KeptBundle[]> {
  const folder = await storageFolder("bundles", false);
  if (folder === null) return [];
  const kept: KeptBundle[] = [];
  for await (const [name, handle] of folder.entries()) {
    if (handle.kind !== "directory") continue;
    const file = (path: string): Promise<File | null> =>
      handle
        .getFileHandle(path)
        .then((found) => found.getFile())
        .catch(() => null);
    const manifest = await file("manifest.json");
    const marker = manifest ?? (await file(CHECKPOINT));
    if (marker === null) continue; // neither a bundle nor a build that stopped
    kept.push({ name, whole: manifest !== null, bytes: await folderBytes(handle), saved: marker.lastModified });
  }
  return kept.sort((a, b) => b.saved - a.saved);
}

async function folderBytes(folder: FileSystemDirectoryHandle): Promise<number> {
  let bytes = 0;
  for await (const handle of folder.values()) bytes += handle.kind === "file" ? (await handle.getFile()).size : await folderBytes(handle);
  return bytes;
}

/** The bytes of file `path` of kept bundle `name`; an error that says so when it has none. */
export async function readKeptFile(name: string, path: string): Promise<Uint8Array> {
  const bytes = await readKeptFileIfAny(name, path).catch(() => null);
  if (bytes === null) throw new Error(`No bundle “${name}” with ${path} is kept in this browser.`);
  return bytes;
}

/** Deletes kept bundle `name`. */
export async function deleteKeptBundle(name: string): Promise<void> {
  const folder = await storageFolder("bundles", false);
  await folder?.removeEntry(name, { recursive: true }).catch((error: unknown) => {
    if (!(error instanceof DOMException && error.name === "NotFoundError")) throw error;
  });
}
