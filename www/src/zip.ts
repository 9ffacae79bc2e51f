// A zip archive of files, stored without compression (the bundle's tensors and JPEG thumbnails
// barely compress): local headers, the data, a central directory. Pure: tested in Node.

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
