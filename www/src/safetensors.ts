// Reading tensors from a safetensors file over HTTP without downloading all of it: the
// 8-byte header length and the JSON header first, then only the byte ranges asked for
// (HTTP Range requests). A server that ignores Range (status 200) gets the whole file once,
// which is then sliced locally. The header is untrusted: every entry is checked before use,
// and every range must come back whole (www/fuzz.mjs fuzzes this reader).

/** A tensor's entry in the header. */
export interface TensorInfo {
  dtype: "F32" | "F16" | "I32" | string;
  shape: number[];
  /** Byte offsets [start, end) relative to the data section. */
  data_offsets: [number, number];
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, I32: 4 };

/** Converts IEEE 754 half-precision bits to a number. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Decodes little-endian F32, F16 (to f32) or I32 values. */
export function decode(dtype: string, bytes: ArrayBuffer): Float32Array | Int32Array {
  const view = new DataView(bytes);
  switch (dtype) {
    case "F32": {
      const out = new Float32Array(bytes.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    }
    case "I32": {
      const out = new Int32Array(bytes.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    }
    default:
      throw new Error(`Unsupported tensor dtype ${dtype} (expected F32, F16 or I32).`);
  }
}

/** A safetensors file at a URL, read by ranges. */
export class RemoteSafetensors {
  private whole: ArrayBuffer | null = null;

  private constructor(
    private readonly url: string,
    readonly tensors: Record<string, TensorInfo>,
    private readonly dataStart: number,
  ) {}

  /** Fetches the header (two small range requests, or the whole file without Range support)
   * and checks it. */
  static async open(url: string): Promise<RemoteSafetensors> {
    const first = await fetchRange(url, 0, 8);
    if (first.bytes.byteLength < 8) throw new Error(`${url} is not a safetensors file (shorter than 8 bytes).`);
    const headerLength = Number(new DataView(first.bytes).getBigUint64(0, true));
    if (headerLength > 100_000_000) throw new Error(`${url} is not a safetensors file (header length ${headerLength}).`);
    const headerBytes = first.whole ? first.bytes.slice(8, 8 + headerLength) : (await fetchRange(url, 8, 8 + headerLength)).bytes;
    if (headerBytes.byteLength !== headerLength)
      throw new Error(`${url} is not a safetensors file (its header is cut short: ${headerBytes.byteLength} of ${headerLength} bytes).`);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder().decode(headerBytes));
    } catch {
      throw new Error(`${url} is not a safetensors file (its header is not JSON).`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header))
      throw new Error(`${url} is not a safetensors file (its header is not a JSON object).`);
    const dataLength = first.size === null ? null : first.size - 8 - headerLength;
    const tensors: Record<string, TensorInfo> = {};
    for (const [name, entry] of Object.entries(header))
      if (name !== "__metadata__") tensors[name] = checkedEntry(url, name, entry, dataLength);
    const file = new RemoteSafetensors(url, tensors, 8 + headerLength);
    if (first.whole) file.whole = first.bytes;
    return file;
  }

  /** Whether the file holds a tensor called `name`. */
  has(name: string): boolean {
    return Object.hasOwn(this.tensors, name);
  }

  /** A tensor's entry, when this reader can decode it. */
  private info(name: string): TensorInfo {
    const info = this.tensors[name];
    if (!info) throw new Error(`Tensor ${name} is missing from ${this.url}.`);
    if (BYTES[info.dtype] === undefined)
      throw new Error(`Tensor ${name} of ${this.url} has dtype ${info.dtype}; this reader decodes F32, F16 and I32.`);
    return info;
  }

  /** Rows `[first, first + count)` of a 2-d tensor, decoded. */
  async rows(name: string, first: number, count = 1): Promise<Float32Array | Int32Array> {
    const info = this.info(name);
    const [rows, columns] = info.shape;
    const width = BYTES[info.dtype];
    if (rows === undefined || columns === undefined || info.shape.length !== 2 || width === undefined) {
      throw new Error(`Tensor ${name} of ${this.url} is not a 2-d tensor.`);
    }
    if (first < 0 || first + count > rows) throw new Error(`Rows ${first}..${first + count} are outside ${name} (${rows} rows).`);
    const start = this.dataStart + info.data_offsets[0] + first * columns * width;
    return decode(info.dtype, await this.bytes(start, start + count * columns * width));
  }

  /** A whole tensor, decoded. */
  async all(name: string): Promise<Float32Array | Int32Array> {
    const info = this.info(name);
    return decode(info.dtype, await this.bytes(this.dataStart + info.data_offsets[0], this.dataStart + info.data_offsets[1]));
  }

  /** Bytes [start, end) of the file, all of them (a short answer is an error). */
  private async bytes(start: number, end: number): Promise<ArrayBuffer> {
    let bytes: ArrayBuffer;
    if (this.whole) {
      bytes = this.whole.slice(start, end);
    } else {
      const got = await fetchRange(this.url, start, end);
      if (got.whole) this.whole = got.bytes;
      bytes = got.whole ? got.bytes.slice(start, end) : got.bytes;
    }
    if (bytes.byteLength !== end - start)
      throw new Error(`${this.url} ends early: bytes ${start} to ${end} were asked for, ${bytes.byteLength} came (a truncated file?).`);
    return bytes;
  }
}

/** A header entry, checked: a dtype name, a shape of whole numbers and data offsets [start, end)
 * inside the data section (when its length is known) that hold exactly the shape's values for
 * the dtypes this reader decodes. */
function checkedEntry(url: string, name: string, entry: unknown, dataLength: number | null): TensorInfo {
  const bad = (what: string): Error => new Error(`${url}: the header's entry for ${name} ${what}.`);
  if (typeof entry !== "object" || entry === null) throw bad("is not an object");
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  const whole = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  if (typeof dtype !== "string") throw bad("has no dtype");
  if (!Array.isArray(shape) || !shape.every(whole)) throw bad("has no shape of whole numbers");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !whole(offsets[0]) || !whole(offsets[1]) || offsets[0] > offsets[1])
    throw bad("has no data offsets [start, end)");
  if (dataLength !== null && offsets[1] > dataLength) throw bad(`ends at byte ${offsets[1]}, past the data's ${dataLength} bytes`);
  const width = BYTES[dtype];
  const values = shape.reduce((product: number, n: number) => product * n, 1);
  if (width !== undefined && (!Number.isSafeInteger(values) || values * width !== offsets[1] - offsets[0]))
    throw bad(`holds ${offsets[1] - offsets[0]} bytes, not the ${values} values of shape [${shape.join(", ")}]`);
  return { dtype, shape, data_offsets: [offsets[0], offsets[1]] };
}

/** Bytes [start, end) of `url`; `whole` when the server sent the entire file instead; `size`
 * the file's size when the server says it (Content-Range, or the whole file). */
async function fetchRange(url: string, start: number, end: number): Promise<{ bytes: ArrayBuffer; whole: boolean; size: number | null }> {
  let response: Response;
  try {
    response = await fetch(url, { headers: { Range: `bytes=${start}-${end - 1}` } });
  } catch (error) {
    throw new Error(`Cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}.`);
  }
  if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}.`);
  const bytes = await response.arrayBuffer();
  const whole = response.status !== 206;
  const total = /\/(\d+)$/.exec(response.headers.get("Content-Range") ?? "")?.[1];
  return { bytes, whole, size: whole ? bytes.byteLength : total === undefined ? null : Number(total) };
}
