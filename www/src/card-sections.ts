// The sections of the explorer's card that bundle format 5 adds: "Heads" (through which
// attention heads after its layer the neuron's effect along r_n flows, head-grid.ts),
// "Neighbours" (the layer's neurons whose r_n is nearest by cosine, each linked to its card) and
// "Typical images" (a few images from each band of its distribution, under the histogram).

import type { NeuronCard, TypicalBand } from "clip-lens-wasm";
import { el, neuronLink } from "./dom";
import { formatValue } from "./format";
import { headGridTable } from "./head-grid";
import type { BundleInfo } from "./protocol";
import { thumbnailUrl } from "./thumbnails";

/** The card's "Heads" section: the grid of its later heads, or what a rebuild adds. */
export function headsSection(card: NeuronCard): HTMLElement {
  const section = el("section", { class: "card-heads", "aria-label": "Heads" }, el("h4", {}, "Heads"));
  if (card.heads === null) {
    section.append(
      el(
        "p",
        { class: "hint no-heads" },
        "Heads: this bundle predates format 5; rebuild it with ",
        el("code", {}, "clip-lens precompute"),
        " (or the ",
        el("a", { href: "#/build" }, "Build view"),
        ") to see through which heads this neuron works.",
      ),
    );
    return section;
  }
  section.append(
    el(
      "p",
      { class: "hint" },
      `How much of its effect along r_n flows through each attention head after layer ${card.layer}: the mean over its top images of ⟨φ_{n,l,h}(I), r_n⟩ (blue adds to r_n, red works against it).`,
    ),
    headGridTable(card.heads, `Through which heads after layer ${card.layer} its effect along r_n flows (mean over its top images)`),
  );
  return section;
}

/** The card's "Neighbours" section: links to the layer's neurons nearest by the cosine of r_n,
 * each with its cosine and first words; null for a bundle before format 5 (the heads section
 * already says what a rebuild adds). */
export function neighboursSection(card: NeuronCard): HTMLElement | null {
  if (card.neighbours === null) return null;
  const list = el("ul", { class: "neuron-list card-neighbour-list" });
  for (const n of card.neighbours)
    list.append(
      el(
        "li",
        { "data-neuron": n.neuron },
        neuronLink(card.layer, n.neuron),
        ` cosine ${formatValue(n.cosine, 2)}${n.words.length ? `: ${n.words.join(", ")}` : ""}`,
      ),
    );
  return el(
    "section",
    { class: "card-neighbours", "aria-label": "Neighbours" },
    el("h4", {}, "Neighbours"),
    card.neighbours.length
      ? el("p", { class: "hint" }, `The neurons of layer ${card.layer} whose r_n is nearest to this one's (cosine), nearest first.`)
      : el("p", { class: "hint" }, "None: the layer has no other neuron."),
    list,
  );
}

/** A band's range of centred norms, as the card says it. */
function bandRange(band: TypicalBand): string {
  return band.high === null ? `at least ${formatValue(band.low, 3)}` : `${formatValue(band.low, 3)} to ${formatValue(band.high, 3)}`;
}

/** The card's "Typical images" section: per band of its distribution (lowest first), the images
 * sampled there, as thumbnails; null for a bundle before format 5. */
export function typicalSection(card: NeuronCard, bundle: BundleInfo | null): HTMLElement | null {
  if (card.typical === null) return null;
  const rows = card.typical.map((band) => {
    const images = band.images.flatMap((image) => {
      const src = thumbnailUrl(image, bundle);
      const name = image.path ?? `image ${image.id}`;
      const alt = `Typical image ${name}: centred norm ${bandRange(band)}`;
      return src === null ? [el("li", {}, name)] : [el("li", {}, el("img", { src, alt, loading: "lazy", width: 40, height: 40 }))];
    });
    return el(
      "li",
      { class: "typical-band" },
      el("span", { class: "typical-range" }, `Centred norm ${bandRange(band)}: `),
      images.length ? el("ul", { class: "thumb-strip" }, ...images) : el("span", { class: "hint" }, "no image fell here"),
    );
  });
  return el(
    "section",
    { class: "card-typical", "aria-label": "Typical images" },
    el("h4", {}, "Typical images"),
    el("p", { class: "hint" }, "Not only the extremes: a sample of the images in each band of its distribution, weakest band first."),
    el("ul", { class: "typical-bands" }, ...rows),
  );
}
