// Thumbnails of a neuron's top images (the bundle's thumbnails/<id>.jpg), shared by the card,
// the lists, the word pages and the search results.

import type { TopImage } from "clip-lens-wasm";
import { el } from "./dom";
import type { BundleInfo } from "./protocol";
import { neuronHref } from "./routes";

/** The absolute address of a top image's thumbnail, or null when the bundle has none (or was
 * picked as files, with no address). */
export function thumbnailUrl(image: TopImage, bundle: BundleInfo | null): string | null {
  return image.thumbnail && bundle?.baseUrl ? new URL(image.thumbnail, bundle.baseUrl).href : null;
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
