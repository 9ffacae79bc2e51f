// A neuron's heads grid (HeadGrid): how much of its effect along r_n flows through each attention
// head after its layer, as an accessible table (a row per later layer, a column per head; each
// cell its value as text, on a diverging scale: blue adds to r_n, red works against it) and a
// line naming the largest heads. The explorer's card, the lab ("on this image") and the
// embeddable card (neuron-card.ts, which reads a grid's row from the bundle: `headGridOf`) share
// it. The colours come from CSS (`.head-cell.positive`, `.head-cell.negative`) with each cell's
// intensity in its `--heat` property, set through the CSSOM: the page's CSP forbids style
// attributes.

import type { HeadGrid, HeadTerm } from "clip-lens-wasm";
import { el } from "./dom";
import { formatSigned } from "./format";

/** What a grid without later heads (the model's last layer) says instead of a table. */
export const NO_LATER_HEADS = "No later heads: the last layer writes to the embedding directly.";

/** Heads named under the table (the engine names as many). */
const LARGEST_HEADS = 3;

/** Decimals of a cell's value. */
const DECIMALS = 3;

/** The grid of one row of a bundle's `layer.L.heads`: `values` over the `layers` after the
 * neuron's (layer-major, `heads` per layer), with its largest terms named as the engine names
 * them (by |value|, equal ones the earlier head first). */
export function headGridOf(values: ArrayLike<number>, layers: number[], heads: number): HeadGrid {
  const all = Array.from(values);
  const perLayer = Math.max(1, heads);
  const magnitude = (i: number): number => Math.abs(all[i] ?? 0);
  const order = all.map((_, i) => i).sort((a, b) => magnitude(b) - magnitude(a) || a - b);
  const term = (i: number): HeadTerm => ({ layer: layers[Math.floor(i / perLayer)] ?? -1, head: i % perLayer, value: all[i] ?? 0 });
  return { layers, heads, values: all, largest: order.slice(0, LARGEST_HEADS).map(term) };
}

/** The value of head `head` in the grid's `row`-th later layer. */
export function headValue(grid: HeadGrid, row: number, head: number): number {
  return grid.values[row * grid.heads + head] ?? 0;
}

/** A cell's intensity on the colour scale: |value| / the grid's largest |value|, in [0, 1]
 * (0 throughout a grid of zeros). */
export function heatOf(value: number, largest: number): number {
  return largest > 0 ? Math.min(1, Math.abs(value) / largest) : 0;
}

/** "L10 H3 +0.123". */
export function headTermText(term: HeadTerm): string {
  return `L${term.layer} H${term.head} ${formatSigned(term.value, DECIMALS)}`;
}

/** "Largest: L10 H3 +0.123, L11 H0 −0.045, ..." (empty for a grid without heads). */
export function largestText(grid: HeadGrid): string {
  return grid.largest.length ? `Largest: ${grid.largest.map(headTermText).join(", ")}` : "";
}

/** The grid as a table with `caption`, and the line naming its largest heads; a grid without
 * later heads gives the sentence that says why. */
export function headGridTable(grid: HeadGrid, caption: string): HTMLElement {
  if (grid.layers.length === 0 || grid.values.length === 0)
    return el("div", { class: "head-grid", "data-rows": 0, "data-columns": 0 }, el("p", { class: "hint" }, NO_LATER_HEADS));
  const largest = Math.max(0, ...grid.values.map(Math.abs));
  const columns = Array.from({ length: grid.heads }, (_, head) => el("th", { scope: "col" }, `H${head}`));
  const head = el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Layer"), ...columns));
  const body = el(
    "tbody",
    {},
    ...grid.layers.map((layer, row) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, `Layer ${layer}`),
        ...Array.from({ length: grid.heads }, (_, h) => headCell(headValue(grid, row, h), largest)),
      ),
    ),
  );
  const table = el("table", { class: "head-table" }, el("caption", {}, caption), head, body);
  return el(
    "div",
    { class: "head-grid", "data-rows": grid.layers.length, "data-columns": grid.heads },
    el("div", { class: "table-scroll" }, table),
    el("p", { class: "head-largest" }, largestText(grid)),
  );
}

/** A cell: its value as text, coloured by sign with an intensity by magnitude. */
function headCell(value: number, largest: number): HTMLTableCellElement {
  const cell = el("td", { class: `head-cell ${value >= 0 ? "positive" : "negative"}` }, formatSigned(value, DECIMALS));
  cell.style.setProperty("--heat", heatOf(value, largest).toFixed(3));
  return cell;
}
