// The map of a layer's neurons (#/map/<layer>): every neuron placed by UMAP of the cosines of
// their directions r_n (the bundle's `layer.L.map`, or computed by the engine for an older
// bundle), on a canvas that pans and zooms; hover names a neuron and its first words, a click
// opens its card, and a search highlights the neurons whose words contain the text (listed as
// links too: the keyboard's way to the cards).

import type { NeuronMap } from "clip-lens-wasm";
import { el, errorParagraph, neuronLink, part } from "./dom";
import { MapCanvas, type MapHit } from "./map-canvas";
import type { BundleInfo } from "./protocol";
import { mapHref, neuronHref, type RouteOf } from "./routes";
import type { Session } from "./session";
import type { View } from "./view";

/** Matches listed under the map. */
const LISTED_MATCHES = 50;

function mapElements(section: HTMLElement) {
  return {
    title: part(section, "map-title", HTMLElement),
    layer: part(section, "map-layer", HTMLSelectElement),
    search: part(section, "map-search", HTMLInputElement),
    matches: part(section, "map-matches", HTMLElement),
    canvas: part(section, "map-canvas", HTMLCanvasElement),
    hover: part(section, "map-hover", HTMLElement),
    list: part(section, "map-list", HTMLElement),
    status: part(section, "map-status", HTMLElement),
  };
}

/** A layer's map of neurons (the route #/map/<layer>). */
export class MapView implements View<RouteOf<"map">> {
  private readonly ui: ReturnType<typeof mapElements>;
  private readonly canvas: MapCanvas;
  private bundle: BundleInfo | null = null;
  private map: NeuronMap | null = null;

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
  ) {
    this.ui = mapElements(section);
    this.canvas = new MapCanvas(
      this.ui.canvas,
      (hit) => this.hover(hit),
      (index) => this.open(index),
    );
    // For the benchmark (benches/map_frames.mjs) and the e2e: the renderer and its draw times.
    Object.assign(this.ui.canvas, { mapCanvas: this.canvas });
    this.ui.layer.addEventListener("change", () => {
      location.hash = mapHref(Number(this.ui.layer.value));
    });
    this.ui.search.addEventListener("input", () => this.search());
  }

  setBundle(bundle: BundleInfo | null): void {
    this.bundle = bundle;
    this.ui.layer.replaceChildren(...(bundle?.layers ?? []).map((layer) => el("option", { value: String(layer) }, `Layer ${layer}`)));
    this.map = null;
  }

  /** Shows the map of the route's layer (the bundle's first where the address names none). */
  async show({ layer }: RouteOf<"map">): Promise<void> {
    const status = this.ui.status;
    if (!this.bundle) {
      status.replaceChildren(el("p", { class: "hint" }, "No bundle is loaded: the map shows a bundle's neurons."));
      status.dataset["status"] = "error";
      return;
    }
    const shown = layer ?? this.bundle.layers[0] ?? 0;
    if (!this.bundle.layers.includes(shown)) {
      status.replaceChildren(
        el(
          "p",
          { class: "error", role: "alert" },
          `There is no layer ${String(layer)} in the bundle: it has layers ${this.bundle.layers.join(", ")}.`,
        ),
      );
      status.dataset["status"] = "error";
      return;
    }
    this.ui.layer.value = String(shown);
    this.ui.title.textContent = `Map of layer ${shown}`;
    document.title = `Map of layer ${shown} · clip-lens`;
    status.dataset["status"] = "loading";
    status.replaceChildren(el("p", { class: "hint" }, `Placing the neurons of layer ${shown}…`));
    try {
      const map = await this.session.call("neuronMap", { layer: shown });
      this.map = map;
      const labels = map.words.map((words, n) => `${shown}:${n} ${words.join(", ")}`);
      this.canvas.show({ points: map.points, labels });
      this.ui.canvas.setAttribute(
        "aria-label",
        `Map of the ${labels.length} neurons of layer ${shown}: neurons with similar directions lie close. Search their words below; the matches are listed as links.`,
      );
      this.search();
      const source = map.stored ? "stored in the bundle" : "computed now (a bundle before format 5 has no map)";
      status.replaceChildren(el("p", { class: "hint" }, `${labels.length} neurons; the map was ${source}.`));
      this.section.dataset["points"] = String(labels.length);
      status.dataset["status"] = "ready";
    } catch (error) {
      status.replaceChildren(errorParagraph(error));
      status.dataset["status"] = "error";
    }
  }

  /** Highlights and lists the neurons whose words contain the search's text. */
  private search(): void {
    const text = this.ui.search.value.trim().toLowerCase();
    const map = this.map;
    if (!map || text === "") {
      this.canvas.highlight([]);
      this.ui.matches.textContent = "";
      this.ui.list.replaceChildren();
      return;
    }
    const matches = map.words.flatMap((words, n) => (words.some((w) => w.toLowerCase().includes(text)) ? [n] : []));
    this.canvas.highlight(matches);
    this.ui.matches.textContent = `${matches.length} neuron${matches.length === 1 ? "" : "s"} match`;
    this.ui.list.replaceChildren(
      ...matches.slice(0, LISTED_MATCHES).map((n) => el("li", {}, neuronLink(map.layer, n), ` ${map.words[n]?.join(", ") ?? ""}`)),
    );
  }

  private hover(hit: MapHit | null): void {
    this.ui.hover.textContent = hit ? `Neuron ${hit.label}` : "";
    this.ui.canvas.style.cursor = hit ? "pointer" : "grab";
  }

  private open(index: number): void {
    if (this.map) location.hash = neuronHref(this.map.layer, index);
  }
}
