// How well a neuron's words describe it (the card's "Fidelity of its words"): the cosine between
// r_n and its reconstruction from its words, where it stands in its layer, and the layer's
// distribution of it as ten bars with the neuron's tenth marked.

import type { WordFidelity } from "clip-lens-wasm";
import { el, svg } from "./dom";
import { formatValue } from "./format";

/** The chart's size in its own units. */
const WIDTH = 200;
const HEIGHT = 40;

/** The card's "Fidelity of its words" term and its description. */
export function fidelityFacts(fidelity: WordFidelity | null, layer: number): HTMLElement[] {
  const term = el("dt", {}, "Fidelity of its words");
  if (fidelity === null) return [term, el("dd", {}, "unknown")];
  const share = Math.floor(100 * fidelity.share_below);
  return [
    term,
    el(
      "dd",
      { class: "fidelity", "data-fidelity": fidelity.cosine.toFixed(4) },
      el("strong", {}, formatValue(fidelity.cosine, 3)),
      `: the cosine between r_n and its reconstruction from these words (1: they span it). Layer ${layer}'s median is ${formatValue(fidelity.layer_median, 3)}; ${share}% of its neurons score lower.`,
      layerChart(fidelity, layer),
    ),
  ];
}

/** The layer's neurons per tenth of [0, 1], the neuron's tenth marked. */
function layerChart(fidelity: WordFidelity, layer: number): SVGSVGElement {
  const counts = fidelity.layer_counts;
  const largest = Math.max(1, ...counts);
  const tenth = Math.min(counts.length - 1, Math.max(0, Math.floor(fidelity.cosine * counts.length)));
  const width = WIDTH / counts.length;
  /** Tenth `i` as its range, "0.3-0.4". */
  const range = (i: number): string => `${(i / counts.length).toFixed(1)}-${((i + 1) / counts.length).toFixed(1)}`;
  const summary = counts.map((count, i) => `${range(i)}: ${count}`).join(", ");
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "fidelity-chart",
    role: "img",
    "aria-label": `Layer ${layer}'s neurons by the fidelity of their words, in tenths (${summary}); this neuron is in ${range(tenth)}`,
  });
  counts.forEach((count, i) => {
    const bar = count > 0 ? Math.max(1.5, ((HEIGHT - 2) * count) / largest) : 0;
    chart.append(
      svg(
        "rect",
        { class: `fidelity-bar${i === tenth ? " this" : ""}`, x: i * width + 1, y: HEIGHT - bar, width: width - 2, height: bar },
        svg("title", {}, `${range(i)}: ${count} neurons`),
      ),
    );
  });
  return chart;
}
