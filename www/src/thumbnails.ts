// Thumbnails of a neuron's top images (the bundle's thumbnails/<id>.jpg), shared by the card,
// the lists, the word pages and the search results.

import type { TopImage } from "clip-lens-wasm";
import { el } from "./dom";
import { keptFiles } from "./my-bundles";
import type { BundleInfo } from "./protocol";
import { neuronHref } from "./routes";

/** The thumbnails of the kept bundle now loaded, by path (`thumbnails/3.jpg`): their bytes and
 * object URLs. */
const keptThumbnails = new Map<string, { bytes: Uint8Array; url: string }>();

/** Reads the thumbnails of `bundle` when it is kept in this browser (they have no address), as
 * object URLs; the previous bundle's are revoked. */
export async function loadKeptThumbnails(bundle: BundleInfo | null): Promise<void> {
  for (const { url } of keptThumbnails.values()) URL.revokeObjectURL(url);
  keptThumbnails.clear();
  if (!bundle?.kept || !bundle.hasThumbnails) return;
  const files = await keptFiles(bundle.kept, "thumbnails").catch(() => ({}) as Record<string, Uint8Array>);
  for (const [path, bytes] of Object.entries(files))
    keptThumbnails.set(path, { bytes, url: URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "image/jpeg" })) });
}

/** The address of a top image's thumbnail (absolute, or an object URL for a kept bundle), or
 * null when the bundle has none (or was picked as files, with no address). */
export function thumbnailUrl(image: TopImage, bundle: BundleInfo | null): string | null {
  if (!image.thumbnail) return null;
  if (bundle?.kept) return keptThumbnails.get(image.thumbnail)?.url ?? null;
  return bundle?.baseUrl ? new URL(image.thumbnail, bundle.baseUrl).href : null;
}

/** The bytes of a top image's thumbnail (read from storage for a kept bundle, downloaded
 * otherwise), or null when it has none. */
export async function thumbnailBytes(image: TopImage, bundle: BundleInfo | null): Promise<Uint8Array | null> {
  if (bundle?.kept) return (image.thumbnail && keptThumbnails.get(image.thumbnail)?.bytes) || null;
  const src = thumbnailUrl(image, bundle);
  if (src === null) return null;
  const response = await fetch(src);
  if (!response.ok) throw new Error(`thumbnail: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** A strip of up to `limit` thumbnails of a neuron's top images, linked to its card; null when
 * none has a thumbnail. */
export function thumbnailStrip(
  images: readonly TopImage[],
  bundle: BundleInfo | null,
  layer: number,
  neuron: number,
  limit = 6,
): HTMLElement | null {
  const items = images.slice(0, limit).flatMap((image) => {
    const src = thumbnailUrl(image, bundle);
    if (src === null) return [];
    const name = image.path ?? `image ${image.id}`;
    return [
      el(
        "li",
        {},
        el(
          "a",
          { href: neuronHref(layer, neuron), tabindex: -1 },
          el("img", { src, alt: `Top image ${name} of layer ${layer}, neuron ${neuron}`, loading: "lazy", width: 48, height: 48 }),
        ),
      ),
    ];
  });
  if (items.length === 0) return null;
  return el("ul", { class: "thumb-strip", "aria-label": `Images that fire layer ${layer}, neuron ${neuron} most` }, ...items);
}
