// Where the model and its bundle come from: the page's address (?weights=, ?config=, ?bundle=)
// or files the visitor picked or dropped, and how the page names each source. No DOM.

import type { BundleSource, FileSource, WeightsSource } from "./protocol";
import type { Sources } from "./session";
import { isConvertedDirectory, type Settings } from "./settings";

/** The sources the settings name (a weights address ending in "/" or manifest.json: converted towers). */
export function urlSources(settings: Settings): Sources {
  return {
    weights: isConvertedDirectory(settings.weightsUrl)
      ? { kind: "converted", url: settings.weightsUrl }
      : { kind: "url", url: settings.weightsUrl },
    config: settings.configUrl === null ? null : { kind: "url", url: settings.configUrl },
    bundle: settings.bundleLocal
      ? { kind: "local", name: settings.bundleLocal }
      : settings.bundleUrl === null
        ? null
        : { kind: "url", url: settings.bundleUrl },
  };
}

/** Picked or dropped files sorted by their names: the weights (a .safetensors not named
 * lens*), the bundle's files (manifest.json, lens*) and a config (another .json). */
export function sortPickedFiles<F extends { name: string }>(
  files: readonly F[],
): { weights: F | undefined; bundle: F[]; config: F | undefined } {
  return {
    weights: files.find((file) => file.name.endsWith(".safetensors") && !file.name.startsWith("lens")),
    bundle: files.filter((file) => file.name === "manifest.json" || file.name.startsWith("lens")),
    config: files.find((file) => file.name.endsWith(".json") && file.name !== "manifest.json"),
  };
}

async function fileSource(file: File): Promise<FileSource> {
  return { kind: "bytes", name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
}

/** Sources from picked files: weights, the bundle's two files, an optional config. */
export async function pickedSources(files: readonly File[]): Promise<Sources> {
  const { weights, bundle: bundleFiles, config } = sortPickedFiles(files);
  if (!weights) throw new Error("Choose a weights file (.safetensors).");
  const manifest = bundleFiles.find((file) => file.name.endsWith(".json"));
  const tensors = bundleFiles.find((file) => file.name.endsWith(".safetensors"));
  if (bundleFiles.length > 0 && (!manifest || !tensors))
    throw new Error("A bundle is two files: choose its manifest.json and its lens.safetensors together.");
  const bundle: BundleSource | null =
    manifest && tensors
      ? {
          kind: "files",
          name: `${manifest.name} + ${tensors.name}`,
          manifest: new Uint8Array(await manifest.arrayBuffer()),
          tensors: new Uint8Array(await tensors.arrayBuffer()),
        }
      : null;
  return { weights: await fileSource(weights), config: config ? await fileSource(config) : null, bundle };
}

/** How the page names a source. */
export function sourceText(source: WeightsSource | BundleSource | null): string {
  if (source === null) return "none (the lens views need one)";
  if (source.kind === "converted") return `${source.url} (converted towers: the text tower loads when text is first used)`;
  if (source.kind === "local") return `kept in this browser: ${source.name}`;
  return source.kind === "url" ? source.url : `local: ${source.name}`;
}
