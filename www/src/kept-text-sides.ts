// Models' text sides computed in the page (the Build view, for a model without a
// text-embeddings file), kept in the browser's origin-private file system under the weights'
// sha256 (text-sides/<sha256>.safetensors, the format `clip-lens embed-text` writes), so that a
// model's text side is computed once and every later load of that model has it. No DOM: the
// workers use it.

import { storageFolder } from "./my-bundles";

/** A kept text side's bytes, and when it was last written (ms since the epoch). */
export interface KeptTextSide {
  bytes: Uint8Array;
  modified: number;
}

const FOLDER = "text-sides";

/** The file of the model whose weights have `sha256` (hex, so a safe file name). */
function fileName(sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
  return `${sha256}.safetensors`;
}

/** The kept text side of the weights with `sha256`, if it was written after `since` (ms). */
export async function readKeptTextSide(sha256: string, since = 0): Promise<KeptTextSide | null> {
  if (!navigator.storage?.getDirectory) return null;
  const dir = await storageFolder(FOLDER, false);
  if (dir === null) return null;
  let file: File;
  try {
    file = await (await dir.getFileHandle(fileName(sha256))).getFile();
  } catch (error) {
    if (error instanceof DOMException && error.name === "NotFoundError") return null;
    throw error;
  }
  if (file.lastModified <= since) return null;
  return { bytes: new Uint8Array(await file.arrayBuffer()), modified: file.lastModified };
}

/** Keeps `bytes` as the text side of the weights with `sha256` (replacing the last one): written
 * under a temporary name and moved into place, so a reader never sees half a file. */
export async function writeKeptTextSide(sha256: string, bytes: Uint8Array): Promise<void> {
  const name = fileName(sha256);
  try {
    const dir = await storageFolder(FOLDER, true);
    if (dir === null) throw new Error("this browser has no origin-private file system");
    const temporary = await dir.getFileHandle(`${name}.partial`, { create: true });
    const writable = await temporary.createWritable();
    await writable.write(bytes as Uint8Array<ArrayBuffer>);
    await writable.close();
    await dir.removeEntry(name).catch(() => undefined);
    await (temporary as FileSystemFileHandle & { move(name: string): Promise<void> }).move(name);
  } catch (error) {
    const full = error instanceof DOMException && error.name === "QuotaExceededError";
    const why = full ? "the browser's storage is full (delete a kept bundle, or free space)" : String(error);
    throw new Error(`The model's text side was computed but not kept for next time: ${why}`);
  }
}
