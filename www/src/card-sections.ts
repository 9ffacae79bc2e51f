// The sections of the explorer's card that bundle format 5 adds: "Heads" (through which
// attention heads after its layer the neuron's effect along r_n flows, head-grid.ts) and
// "Neighbours" (the layer's neurons whose r_n is nearest by cosine, each linked to its card).

import type { NeuronCard } from "clip-lens-wasm";
import { el, neuronLink } from "./dom";
import { formatValue } from "./format";
import { headGridTable } from "./head-grid";

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
