// A neuron's distribution of centred norms |phi_n - mean_n| over the bundle's images: a bar
// chart on a log-spaced axis (SVG) with its significance threshold (and, after an analysis,
// the analysed image's norm) marked, the share of images above the threshold, and the
// percentiles as a table: the chart's text alternative.

import type { NeuronCard, NeuronDistribution } from "clip-lens-wasm";
import { el, svg } from "./dom";
import { formatSignificant } from "./format";

/** The chart's drawing box (the SVG scales to its container). */
const WIDTH = 320;
const PLOT = 80;
/** Under the plot: the axis's labels. */
const BOTTOM = 14;
/** Above the plot: a row per mark for its label. */
const MARK_ROW = 11;

/** A value marked on the chart: a vertical line with a label. */
export interface Mark {
  value: number;
  label: string;
  /** CSS class of the line: "threshold" or "analysed". */
  kind: "threshold" | "analysed";
}

/** What a card of a format-2 bundle (no histograms) says instead of its chart. */
function noHistogram(): HTMLParagraphElement {
  return el(
    "p",
    { class: "hint no-histogram" },
    "This bundle (format 2) has no per-neuron histograms: rebuild it with ",
    el("code", {}, "clip-lens precompute"),
    ".",
  );
}

/** Where `value` lies on the axis, 0 (first edge) to 1 (last edge), clamped: log-spaced
 * between the edges, linear when the first edge is not positive. */
export function axisPosition(edges: readonly number[], value: number): number {
  const first = edges[0] ?? 0;
  const last = edges[edges.length - 1] ?? 1;
  const log = first > 0 && value > 0;
  const [a, b, v] = log ? [Math.log(first), Math.log(last), Math.log(value)] : [first, last, value];
  return b > a ? Math.min(1, Math.max(0, (v - a) / (b - a))) : 0;
}

/** "N of M images (x.xx%) above the threshold". */
export function shareText(distribution: NeuronDistribution): string {
  return `${distribution.above_threshold} of ${distribution.images} images (${(100 * distribution.share_above).toFixed(2)}%) above the threshold`;
}

/** The chart's summary for screen readers. */
function chartLabel(distribution: NeuronDistribution, marks: readonly Mark[]): string {
  const first = distribution.edges[0] ?? 0;
  const last = distribution.edges[distribution.edges.length - 1] ?? 0;
  const marked = marks.map((mark) => `${mark.label}`).join("; ");
  return `Histogram of the neuron's centred norm over ${distribution.images} images, ${distribution.counts.length} bins from ${formatSignificant(first)} to ${formatSignificant(last)} (log scale): ${shareText(distribution)}${marked ? `; marked: ${marked}` : ""}.`;
}

/** The bar chart of `distribution` with `marks` as vertical lines. */
export function histogramChart(
  distribution: NeuronDistribution,
  marks: readonly Mark[] = [],
  threshold: number | null = null,
): SVGSVGElement {
  const { edges, counts } = distribution;
  const largest = Math.max(1, ...counts);
  const plot = PLOT;
  const top = 4 + MARK_ROW * marks.length;
  const height = top + PLOT + BOTTOM;
  const x = (value: number): number => WIDTH * axisPosition(edges, value);
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    class: "histogram",
    role: "img",
    "aria-label": chartLabel(distribution, marks),
  });
  counts.forEach((count, i) => {
    const low = edges[i] ?? 0;
    const high = edges[i + 1] ?? low;
    const bar = count > 0 ? Math.max(1.5, (plot * count) / largest) : 0;
    const above = threshold !== null && low >= threshold;
    chart.append(
      svg(
        "rect",
        {
          class: `hist-bar${above ? " above" : ""}`,
          x: x(low) + 0.5,
          y: top + plot - bar,
          width: Math.max(0.5, x(high) - x(low) - 1),
          height: bar,
        },
        svg("title", {}, `${formatSignificant(low)} to ${formatSignificant(high)}: ${count} image${count === 1 ? "" : "s"}`),
      ),
    );
  });
  const baseline = top + plot;
  chart.append(
    svg("line", { class: "hist-axis", x1: 0, x2: WIDTH, y1: baseline, y2: baseline }),
    svg("text", { class: "hist-tick", x: 0, y: height - 3 }, formatSignificant(edges[0] ?? 0)),
    svg(
      "text",
      { class: "hist-tick", x: WIDTH / 2, y: height - 3, "text-anchor": "middle" },
      `tallest bar: ${largest} image${largest === 1 ? "" : "s"}`,
    ),
    svg("text", { class: "hist-tick", x: WIDTH, y: height - 3, "text-anchor": "end" }, formatSignificant(edges[edges.length - 1] ?? 0)),
  );
  // Each mark's label on its own row above the plot, on the side with room.
  marks.forEach((mark, i) => {
    const at = x(mark.value);
    const anchor = at > WIDTH / 2 ? "end" : "start";
    const row = 4 + MARK_ROW * (i + 1) - 2;
    chart.append(
      svg(
        "g",
        { class: `hist-mark ${mark.kind}`, "data-value": mark.value },
        svg("line", { x1: at, x2: at, y1: row - 8, y2: baseline }),
        svg("text", { x: anchor === "end" ? at - 3 : at + 3, y: row, "text-anchor": anchor }, mark.label),
      ),
    );
  });
  return chart;
}

/** The percentiles as a two-row table (percentile, centred norm): an exact value as it is, an
 * interpolated one marked ≈ with the bin edges that hold the exact value (its title, and a
 * note under the table). */
export function percentileTable(distribution: NeuronDistribution): HTMLElement {
  const [head, values] = [el("tr", {}, el("th", { scope: "row" }, "Percentile")), el("tr", {}, el("th", { scope: "row" }, "Centred norm"))];
  const approximate: string[] = [];
  distribution.percentiles.forEach(([percentile, value], i) => {
    head.append(el("th", { scope: "col" }, `${percentile}`));
    const bounds = distribution.percentile_bounds[i] ?? null;
    if (bounds === null) {
      values.append(el("td", {}, formatSignificant(value)));
      return;
    }
    const [low, high] = bounds;
    const range = high === null ? `at least ${formatSignificant(low)}` : `between ${formatSignificant(low)} and ${formatSignificant(high)}`;
    approximate.push(`the ${percentile}th is ${range}`);
    values.append(
      el(
        "td",
        { class: "approximate", title: `interpolated in a histogram bin: the exact value is ${range}` },
        `≈${formatSignificant(value)}`,
      ),
    );
  });
  const table = el(
    "table",
    { class: "percentiles" },
    el("caption", { class: "visually-hidden" }, "Percentiles of the centred norm over the bundle's images"),
    el("thead", {}, head),
    el("tbody", {}, values),
  );
  if (approximate.length === 0) return table;
  const note = el(
    "p",
    { class: "hint percentile-bounds" },
    `≈: interpolated inside a histogram bin (the others are exact: among the top k norms); the exact values: ${approximate.join("; ")}.`,
  );
  return el("div", {}, table, note);
}

/** The card's distribution section: chart, share above the threshold and percentiles, with
 * the analysed image's norm marked when `analysedLabel` is given and the card has one; a
 * format-2 bundle's message instead when the card has no distribution. */
export function distributionSection(card: NeuronCard, analysedLabel: string | null = null): HTMLElement {
  const section = el(
    "section",
    { class: "distribution", "aria-label": "Distribution of its centred norm" },
    el("h4", {}, "Distribution of its centred norm"),
  );
  const distribution = card.distribution;
  if (distribution === null) {
    section.append(noHistogram());
    return section;
  }
  const marks: Mark[] = [];
  if (card.threshold !== null)
    marks.push({ value: card.threshold, label: `threshold ${formatSignificant(card.threshold)}`, kind: "threshold" });
  if (analysedLabel !== null && card.analysed_norm !== null)
    marks.push({ value: card.analysed_norm, label: `${analysedLabel} ${formatSignificant(card.analysed_norm)}`, kind: "analysed" });
  section.append(
    el(
      "figure",
      { class: "histogram-figure" },
      histogramChart(distribution, marks, card.threshold),
      el("figcaption", { class: "histogram-caption" }, `${shareText(distribution)}.`),
    ),
    el("div", { class: "table-scroll" }, percentileTable(distribution)),
  );
  return section;
}
