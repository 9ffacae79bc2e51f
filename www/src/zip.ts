// Zip archives of a bundle's files: written stored, without compression (its tensors and JPEG
// thumbnails barely compress): local headers, the data, a central directory; read stored or
// deflated (DecompressionStream), each file's CRC checked. Pure: tested in Node.

/** CRC-32 (IEEE 802.3, as zip uses) of `bytes`, table-driven. */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The zip of `files` (name -> bytes; names with `/` make folders), in name order. Sizes must
 * stay below 4 GiB each and in all (no zip64). */
export function zipFiles(files: Record<string, Uint8Array>): Blob {
  const encoder = new TextEncoder();
  const parts: BlobPart[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const name of Object.keys(files).sort()) {
    const data = files[name]!;
    const nameBytes = encoder.encode(name);
    const crc = crc32(data);
    const local = header(30, nameBytes);
    local.setUint32(0, 0x04034b50, true);
    fields(local, 4, crc, data.length, nameBytes.length);
    const entry = header(46, nameBytes);
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true); // made by: version 2.0
    fields(entry, 6, crc, data.length, nameBytes.length);
    entry.setUint32(42, offset, true);
    parts.push(local.buffer as ArrayBuffer, data as Uint8Array<ArrayBuffer>);
    central.push(new Uint8Array(entry.buffer));
    offset += local.byteLength + data.length;
  }
  const size = central.reduce((sum, entry) => sum + entry.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, central.length, true);
  end.setUint16(10, central.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central.map((entry) => entry as Uint8Array<ArrayBuffer>), end.buffer as ArrayBuffer], {
    type: "application/zip",
  });
}

/** A header of `size` fixed bytes followed by the UTF-8 name. */
function header(size: number, name: Uint8Array): DataView {
  const bytes = new Uint8Array(size + name.length);
  bytes.set(name, size);
  return new DataView(bytes.buffer);
}

/** The fields local and central headers share, from `at` (4 in a local header, 6 in the
 * central one): version needed (+0), flags (+2; bit 11: UTF-8 names), method (+4; 0: stored),
 * time and date (+6, +8; left 0), CRC (+10), compressed and full size (+14, +18), name length
 * (+22). */
function fields(view: DataView, at: number, crc: number, length: number, nameLength: number): void {
  view.setUint16(at, 20, true);
  view.setUint16(at + 2, 0x0800, true);
  view.setUint32(at + 10, crc, true);
  view.setUint32(at + 14, length, true);
  view.setUint32(at + 18, length, true);
  view.setUint16(at + 22, nameLength, true);
}

/** The most bytes an archive may unpack to (a bundle of the paper's size is about 0.1 GiB). */
export const MAX_UNZIPPED_BYTES = 4 * 2 ** 30;

/** The files of a zip archive, path -> bytes, a common top folder removed (`bundle/manifest.json`
 * -> `manifest.json`). Refused with a message: not a zip, zip64, encryption, a method other than
 * stored or deflate, a path that leaves the folder, a CRC that does not match, or more than
 * [MAX_UNZIPPED_BYTES]. */
export async function unzipFiles(zip: Uint8Array): Promise<Record<string, Uint8Array>> {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let end = zip.length - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("This is not a zip archive (no end of central directory).");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  if (at === 0xffffffff || count === 0xffff) throw new Error("Zip64 archives are not read: zip the bundle again.");
  const decoder = new TextDecoder();
  const files: Record<string, Uint8Array> = {};
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > zip.length || view.getUint32(at, true) !== 0x02014b50) throw new Error("The zip's central directory is damaged.");
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const [packed, size] = [view.getUint32(at + 20, true), view.getUint32(at + 24, true)];
    const [nameLength, extraLength, commentLength] = [
      view.getUint16(at + 28, true),
      view.getUint16(at + 30, true),
      view.getUint16(at + 32, true),
    ];
    const local = view.getUint32(at + 42, true);
    const name = decoder.decode(zip.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith("/")) continue; // a folder
    if (flags & 1) throw new Error(`${name} is encrypted.`);
    if (name.startsWith("/") || name.split("/").includes("..")) throw new Error(`${name} would leave the bundle's folder.`);
    total += size;
    if (total > MAX_UNZIPPED_BYTES) throw new Error(`The zip unpacks to more than ${MAX_UNZIPPED_BYTES / 2 ** 30} GiB.`);
    if (local + 30 > zip.length) throw new Error(`${name} is cut short.`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = zip.subarray(start, start + packed);
    if (start + packed > zip.length) throw new Error(`${name} is cut short.`);
    const bytes = method === 0 ? data : method === 8 ? await inflate(data) : null;
    if (bytes === null) throw new Error(`${name} is compressed with method ${method}: only stored and deflated files are read.`);
    if (bytes.length !== size || crc32(bytes) !== crc) throw new Error(`${name} is damaged (its size or CRC does not match).`);
    files[name] = bytes;
  }
  return withoutTopFolder(files);
}

/** Raw deflate data inflated by the platform's DecompressionStream. */
async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** `files` without the one top folder they all share, if they share one. */
function withoutTopFolder(files: Record<string, Uint8Array>): Record<string, Uint8Array> {
  const names = Object.keys(files);
  const top = names[0]?.split("/")[0];
  if (top === undefined || !names.every((name) => name.startsWith(`${top}/`))) return files;
  return Object.fromEntries(names.map((name) => [name.slice(top.length + 1), files[name]!]));
}
