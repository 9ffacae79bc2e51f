// The page's settings, read from its address. Query: weights, config, bundle, backend, image,
// concept, embed, simulate; the hash is the route (routes.ts).

import { isBackendChoice, type BackendChoice } from "./protocol";

/** The offline demo: the tiny test model and its bundle, served with the page. */
export const DEMO = {
  /** `clip-lens convert` of the tiny model (f32): the image tower first, the text tower when
   * text is first used. */
  weights: "models/tiny/converted/",
  bundle: "models/tiny/bundle/",
} as const;

/** OpenAI's ViT-B/32 on Hugging Face (a bundle made by `clip-lens precompute` goes with it). */
export const OPENAI_VIT_B_32 = {
  weights: "https://huggingface.co/openai/clip-vit-base-patch32/resolve/main/model.safetensors",
  config: "https://huggingface.co/openai/clip-vit-base-patch32/resolve/main/config.json",
} as const;

export interface Settings {
  /** A safetensors file, or a `clip-lens convert` directory (ends with "/" or manifest.json). */
  weightsUrl: string;
  /** null: infer the shapes from the weights. */
  configUrl: string | null;
  /** null: `?bundle=` was given empty, or names a kept bundle: the model alone (no lens). */
  bundleUrl: string | null;
  /** `?bundle=local:NAME`: a bundle kept in this browser ("My bundles"). */
  bundleLocal: string | null;
  backend: BackendChoice;
  /** Whether the weights are the bundled tiny test model. */
  demo: boolean;
  /** `?image=`: an image to analyse on start. */
  imageUrl: string | null;
  /** `?concept=`: the concept to segment on it ("predicted", "class:<name>" or text). */
  concept: string | null;
  /** `?embed=1`: only the view, for an iframe. */
  embed: boolean;
  /** `?simulate=device-lost`: the first engine call fails as a lost GPU (a test hook). */
  simulateDeviceLoss: boolean;
  /** `?simulate=build-device-lost`: the first build on WebGPU fails as a lost GPU (a test hook). */
  simulateBuildDeviceLoss: boolean;
}

export function absoluteUrl(what: string, value: string): string {
  try {
    return new URL(value, document.baseURI).href;
  } catch {
    throw new Error(`The ${what} address “${value}” is not a valid URL.`);
  }
}

/** Whether a weights address names a directory of `clip-lens convert` rather than a file. */
export function isConvertedDirectory(url: string): boolean {
  const path = new URL(url).pathname;
  return path.endsWith("/") || path.endsWith("/manifest.json");
}

/** How `?bundle=` names a bundle kept in this browser: `local:NAME`. */
export const LOCAL_BUNDLE = "local:";

/** Reads the settings from `search`; readable errors for bad values. */
export function readSettings(search: string): Settings {
  const params = new URLSearchParams(search);
  const weights = params.get("weights") || null;
  const config = params.get("config");
  const bundle = params.get("bundle");
  const backend = params.get("backend") || "auto";
  if (!isBackendChoice(backend)) {
    throw new Error(`Unknown backend “${backend}” in the address: use auto, webgpu or cpu.`);
  }
  const configValue = config !== null ? config || null : null;
  const bundleLocal = bundle?.startsWith(LOCAL_BUNDLE) ? bundle.slice(LOCAL_BUNDLE.length) : null;
  const bundleValue = bundleLocal !== null ? null : bundle !== null ? bundle || null : weights === null ? DEMO.bundle : null;
  const image = params.get("image");
  return {
    weightsUrl: absoluteUrl("weights", weights ?? DEMO.weights),
    configUrl: configValue === null ? null : absoluteUrl("config", configValue),
    bundleUrl: bundleValue === null ? null : absoluteUrl("bundle", bundleValue.endsWith("/") ? bundleValue : `${bundleValue}/`),
    bundleLocal,
    backend,
    demo: weights === null,
    imageUrl: image ? absoluteUrl("image", image) : null,
    concept: params.get("concept") || null,
    embed: params.get("embed") === "1",
    simulateDeviceLoss: params.get("simulate") === "device-lost",
    simulateBuildDeviceLoss: params.get("simulate") === "build-device-lost",
  };
}

/** The page's address for other weights/config/bundle (the rest of the query kept). */
export function settingsHref(weights: string, config: string, bundle: string): string {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of [
    ["weights", weights],
    ["config", config],
    ["bundle", bundle],
  ] as const) {
    if (value.trim()) params.set(name, value.trim());
    else params.delete(name);
  }
  const query = params.toString();
  return `${location.pathname}${query ? `?${query}` : ""}${location.hash}`;
}
