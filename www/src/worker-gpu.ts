// What the worker asks the browser's WebGPU before choosing a backend: whether there is an
// adapter, whether it is a software one (which `auto` skips), its name and its largest buffer.

import { describe, LoadError } from "./worker-errors";

/** Words in an adapter's description that mark a software rasteriser. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|warp|basic render|software/i;

/** Why `auto` does not use WebGPU here, or null when it does: no adapter, or only a
 * fallback (software) one, which runs the model 10-100x slower than the CPU backend
 * (SwiftShader: 0.02-0.2 GFLOP/s). `?backend=webgpu` still uses a software adapter. */
export async function autoSkipsWebgpu(): Promise<string | null> {
  const gpu = webgpu();
  if (!gpu) return "this browser has no navigator.gpu (WebGPU is disabled or unsupported here)";
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return "requesting a WebGPU adapter failed";
  }
  if (!adapter) return "the browser offers no WebGPU adapter";
  const info = adapter.info ?? {};
  const description = [info.vendor, info.architecture, info.device, info.description].filter((part) => !!part).join(" ");
  if (adapter.isFallbackAdapter || info.isFallbackAdapter || SOFTWARE_ADAPTER.test(description)) {
    return `the only WebGPU adapter is a software one${description ? ` (${description})` : ""}, slower than the CPU; ?backend=webgpu uses it anyway`;
  }
  return null;
}

/** The parts of the WebGPU API used here (tsconfig has no WebGPU types). */
interface GpuAdapterLike {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
  readonly limits?: { maxStorageBufferBindingSize?: number; maxBufferSize?: number };
}
interface GpuLike {
  requestAdapter(): Promise<GpuAdapterLike | null>;
}

function webgpu(): GpuLike | undefined {
  return (navigator as { gpu?: GpuLike }).gpu;
}

/** Why WebGPU is not used, for the page; `error` is what the WebGPU attempt threw. */
export async function webgpuProblem(error: unknown): Promise<string> {
  const gpu = webgpu();
  if (!gpu) return "this browser has no navigator.gpu (WebGPU is disabled or unsupported here)";
  try {
    if ((await gpu.requestAdapter()) === null) return "the browser offers no WebGPU adapter";
  } catch {
    return "requesting a WebGPU adapter failed";
  }
  return error instanceof LoadError ? error.detail : describe(error);
}

/** The browser's default WebGPU adapter in words ("nvidia ampere", "google swiftshader,
 * software"), or null when there is none or the browser tells nothing about it. */
export async function adapterName(): Promise<string | null> {
  try {
    const adapter = await webgpu()?.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const parts = [...new Set([info.vendor, info.architecture, info.device, info.description].filter((part) => !!part))];
    const software = adapter.isFallbackAdapter || info.isFallbackAdapter ? "software" : null;
    const name = parts.join(" ");
    return [name, software].filter((part) => !!part).join(", ") || null;
  } catch {
    return null;
  }
}

/** The adapter's largest buffer in bytes (the smaller of its storage-binding and buffer-size
 * limits), or undefined when unknown: the engine refuses weights and picks lens factors that
 * fit. */
export async function adapterBufferLimit(): Promise<number | undefined> {
  try {
    const limits = (await webgpu()?.requestAdapter())?.limits;
    const values = [limits?.maxStorageBufferBindingSize, limits?.maxBufferSize].filter((v): v is number => typeof v === "number" && v > 0);
    return values.length ? Math.min(...values) : undefined;
  } catch {
    return undefined;
  }
}
