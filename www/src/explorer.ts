// The neuron explorer: a neuron's card (signed words, each a link to its word page; top images
// with the neuron's activation map over them; nearest ImageNet classes; how often it is
// significant, with the distribution of its centred norm; the heads its effect flows through
// and its nearest neurons, card-sections.ts), "add to list", downloads (JSON,
// CSV, each map as PNG), previous/next, and a search box (a word of the dictionary finds the
// neurons whose decomposition holds it; any text finds the neurons whose direction r_n best
// matches its embedding), with each found neuron's thumbnails.

import type { ActivationMap, NeuronCard, SearchResult, WordNeuron } from "clip-lens-wasm";
import { headsSection, neighboursSection, typicalSection } from "./card-sections";
import { append, el, errorMessage, errorParagraph, fillSection, neuronLink, parts, signedBar, wordLink } from "./dom";
import { canvasPng, csvBlob, downloadButton, jsonBlob } from "./export";
import { fidelityFacts } from "./fidelity";
import { formatOrdinal, formatSigned, formatValue } from "./format";
import { composeOverlay, drawOverlay } from "./heatmap";
import { distributionSection } from "./histogram";
import { type ListStore, listButton } from "./lists";
import type { BundleInfo } from "./protocol";
import { neuronHref, searchHref, type RouteOf } from "./routes";
import type { Session } from "./session";
import { thumbnailBytes, thumbnailStrip, thumbnailUrl } from "./thumbnails";
import type { View } from "./view";

/** Word bars shown before "all words". */
const SHOWN_WORDS = 16;
/** Opacity of the activation map over a thumbnail (as .thumb .overlay in style.css). */
const THUMB_OVERLAY_OPACITY = 0.55;

/** The explorer's elements, inside its section. */
function explorerElements(section: HTMLElement) {
  const [pickForm, searchForm] = parts(section, HTMLFormElement, "neuron-pick", "search-form");
  const [layer] = parts(section, HTMLSelectElement, "layer-select");
  const [neuron, searchInput] = parts(section, HTMLInputElement, "neuron-input", "search-input");
  const [previous, next] = parts(section, HTMLButtonElement, "neuron-previous", "neuron-next");
  const [card, searchResult] = parts(section, HTMLElement, "neuron-card", "search-result");
  return { pickForm, layer, neuron, previous, next, card, searchForm, searchInput, searchResult };
}

/** The explorer (the routes #/neuron/<layer>/<index> and #/search/<text>). */
export class NeuronExplorer implements View<RouteOf<"explorer">> {
  private readonly ui: ReturnType<typeof explorerElements>;
  private bundle: BundleInfo | null = null;
  private shown: { layer: number; neuron: number } | null = null;
  /** Activation-map calls of the shown card still queued (cancelled when the card changes). */
  private readonly mapCalls = new Set<number>();
  /** Card calls of the search results' thumbnails still queued. */
  private readonly thumbnailCalls = new Set<number>();

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
    private readonly list: ListStore,
  ) {
    this.ui = explorerElements(section);
    this.wire();
  }

  setBundle(bundle: BundleInfo | null): void {
    this.bundle = bundle;
    this.ui.layer.replaceChildren(...(bundle?.layers ?? []).map((layer) => el("option", { value: layer }, `Layer ${layer}`)));
    this.ui.neuron.max = String(Math.max(0, (bundle?.neurons ?? 1) - 1));
    for (const control of [this.ui.layer, this.ui.neuron, this.ui.previous, this.ui.next, this.ui.searchInput])
      control.disabled = bundle === null;
  }

  /** Runs the route's search, or shows its card (by default the first layer's neuron 0). */
  async show(route: RouteOf<"explorer">): Promise<void> {
    if (route.search !== null) await this.search(route.search);
    else await this.showCard(route.layer ?? this.bundle?.layers[0] ?? 0, route.neuron ?? 0);
  }

  /** Shows the card of `neuron` of `layer` (the route #/neuron/L/N). */
  private async showCard(layer: number, neuron: number): Promise<void> {
    const ui = this.ui;
    this.session.cancel(this.mapCalls);
    this.shown = { layer, neuron };
    ui.layer.value = String(layer);
    ui.neuron.value = String(neuron);
    ui.card.dataset["status"] = "loading";
    ui.card.replaceChildren(el("p", {}, `Loading neuron ${neuron} of layer ${layer}…`));
    try {
      const bundle = this.bundle;
      if (!bundle) throw new Error("No bundle is loaded: the explorer needs one (?bundle=URL).");
      if (!Number.isInteger(layer) || !Number.isInteger(neuron))
        throw new Error(
          `The address ${location.hash} names no neuron: write #/neuron/<layer>/<index>, e.g. #/neuron/${bundle.layers[0] ?? 0}/4.`,
        );
      if (!bundle.layers.includes(layer))
        throw new Error(`Layer ${layer} is not in the bundle (it has layers ${bundle.layers.join(", ")}).`);
      if (!Number.isInteger(neuron) || neuron < 0 || neuron >= bundle.neurons)
        throw new Error(`Neuron ${neuron} is out of range: layer ${layer} has neurons 0 to ${bundle.neurons - 1}.`);
      const card = await this.session.call("neuron", { layer, neuron });
      if (this.shown?.layer !== layer || this.shown.neuron !== neuron) return;
      // The card's render after its data arrived (the e2e reports it: target 100 ms).
      const started = performance.now();
      ui.card.replaceChildren(...this.renderCard(card, bundle));
      ui.card.dataset["renderMs"] = (performance.now() - started).toFixed(1);
      ui.card.dataset["status"] = "ready";
      document.title = `Layer ${layer}, neuron ${neuron} · clip-lens`;
      void this.drawActivationMaps(card, bundle);
    } catch (error) {
      ui.card.replaceChildren(errorParagraph(error));
      ui.card.dataset["status"] = "error";
    }
  }

  /** Runs a search (the route #/search/<text>). */
  private async search(text: string): Promise<void> {
    const ui = this.ui;
    ui.searchInput.value = text;
    this.session.cancel(this.thumbnailCalls);
    const result = await fillSection(
      ui.searchResult,
      `Searching for “${text}”…`,
      () => this.session.call("search", { text, top: 20 }),
      (found) => this.renderSearch(found),
    );
    if (result) void this.fillSearchThumbnails();
  }

  /** Adds each listed neuron's thumbnails to its search result row. */
  private async fillSearchThumbnails(): Promise<void> {
    for (const row of this.ui.searchResult.querySelectorAll<HTMLElement>("li[data-layer]")) {
      const layer = Number(row.dataset["layer"]);
      const neuron = Number(row.dataset["neuron"]);
      try {
        const card = await this.session.call("neuron", { layer, neuron }, this.thumbnailCalls);
        const strip = thumbnailStrip(card.top_images, this.bundle, layer, neuron, 4);
        if (strip && row.isConnected) row.append(strip);
      } catch {
        return; // a new search took over (cancelled), or the engine is gone: the links remain
      }
    }
  }

  private wire(): void {
    const ui = this.ui;
    const go = (layer: number, neuron: number): void => {
      location.hash = neuronHref(layer, neuron);
    };
    ui.pickForm.addEventListener("submit", (event) => {
      event.preventDefault();
      go(Number(ui.layer.value), Number(ui.neuron.value));
    });
    ui.layer.addEventListener("change", () => go(Number(ui.layer.value), Number(ui.neuron.value)));
    const step = (delta: number): void => {
      const count = this.bundle?.neurons ?? 1;
      go(Number(ui.layer.value), ((((Number(ui.neuron.value) || 0) + delta) % count) + count) % count);
    };
    ui.previous.addEventListener("click", () => step(-1));
    ui.next.addEventListener("click", () => step(1));
    this.section.addEventListener("keydown", (event) => {
      const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
      if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "ArrowLeft") step(-1);
      else if (event.key === "ArrowRight") step(1);
    });
    ui.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = ui.searchInput.value.trim();
      if (text) location.hash = searchHref(text);
    });
  }

  private renderCard(card: NeuronCard, bundle: BundleInfo): Node[] {
    const title = el("h3", { id: "card-title" }, `Layer ${card.layer}, neuron ${card.neuron}`);
    const share = el("a", { href: neuronHref(card.layer, card.neuron), class: "share-link" }, "link to this card");
    const failed = (error: unknown): void => {
      this.ui.card.querySelector(".card-actions")?.append(errorParagraph(`The download failed: ${errorMessage(error)}`));
    };
    const name = `neuron-${card.layer}-${card.neuron}`;
    const actions = el(
      "div",
      { class: "button-row card-actions" },
      listButton(this.list, card.layer, card.neuron),
      downloadButton(
        "JSON",
        `Download the card of layer ${card.layer}, neuron ${card.neuron} as JSON`,
        () => `${name}.json`,
        () => jsonBlob(card),
        failed,
      ),
      downloadButton(
        "CSV",
        `Download the card of layer ${card.layer}, neuron ${card.neuron} as CSV`,
        () => `${name}.csv`,
        async () => csvBlob(await this.session.call("neuronCsv", { layer: card.layer, neuron: card.neuron })),
        failed,
      ),
    );
    const rate =
      bundle.images > 0
        ? `${Math.max(0, bundle.topK - 1)} of the bundle's ${bundle.images} images (${((100 * Math.max(0, bundle.topK - 1)) / bundle.images).toFixed(1)}%)`
        : "no images";
    const facts = el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Significant"),
      el(
        "dd",
        {},
        card.threshold === null
          ? "unknown (no norms)"
          : `when its centred norm exceeds ${formatValue(card.threshold, 3)}, its ${formatOrdinal(bundle.topK)} largest over the bundle's images: on ${rate}`,
      ),
      el("dt", {}, "Nearest classes of r_n"),
      el(
        "dd",
        {},
        card.classes.length
          ? card.classes.map((c) => `${c.name} (${formatValue(c.cosine, 3)})`).join(", ")
          : "none (its direction is zero)",
      ),
      ...fidelityFacts(card.fidelity, card.layer),
    );
    const neighbours = neighboursSection(card);
    const typical = typicalSection(card, bundle);
    return [
      el("header", { class: "card-header" }, title, " ", share),
      actions,
      facts,
      distributionSection(card, "the last analysed image"),
      ...(typical ? [typical] : []),
      this.renderWords(card),
      this.renderTopImages(card, bundle),
      headsSection(card),
      ...(neighbours ? [neighbours] : []),
    ];
  }

  private renderWords(card: NeuronCard): HTMLElement {
    const largest = Math.max(1e-12, ...card.words.map(([, c]) => Math.abs(c)));
    const list = el("ol", { class: "word-bars", "aria-label": "The words of its sparse decomposition, signed, largest first" });
    const add = (words: [string, number][]): void => {
      for (const [word, c] of words) {
        list.append(
          el(
            "li",
            { class: "score-row" },
            wordLink(word, word, "score-label word-link"),
            signedBar(c, largest),
            el("span", { class: "num" }, formatSigned(c)),
          ),
        );
      }
    };
    add(card.words.slice(0, SHOWN_WORDS));
    const section = el(
      "section",
      { class: "card-words", "aria-label": "Words" },
      el("h4", {}, `Words (${card.words.length} of the decomposition)`),
      list,
    );
    if (card.words.length > SHOWN_WORDS) {
      const more = el("button", { type: "button", class: "more" }, `Show all ${card.words.length} words`);
      more.addEventListener("click", () => {
        add(card.words.slice(SHOWN_WORDS));
        more.remove();
      });
      section.append(more);
    }
    return section;
  }

  private renderTopImages(card: NeuronCard, bundle: BundleInfo): HTMLElement {
    const grid = el("ol", { class: "top-images" });
    for (const image of card.top_images) {
      const name = image.path ?? `image ${image.id}`;
      const src = thumbnailUrl(image, bundle);
      if (src !== null) {
        grid.append(
          el(
            "li",
            { "data-image": image.id },
            el(
              "figure",
              { class: "thumb" },
              el(
                "div",
                { class: "overlay-box" },
                el("img", { src, alt: `Top image ${name}`, loading: "lazy" }),
                el("canvas", { class: "overlay", "aria-hidden": "true" }),
              ),
              el("figcaption", {}, name),
            ),
          ),
        );
      } else {
        grid.append(el("li", {}, name));
      }
    }
    return el(
      "section",
      { class: "card-images", "aria-label": "Top images" },
      el("h4", {}, `Images that fire it most (${card.top_images.length})`),
      grid,
      el("p", { class: "hint map-status" }, card.top_images.length ? "Activation maps: computing…" : "The bundle lists no images."),
    );
  }

  /** Overlays the neuron's activation map on each top image's thumbnail (one forward each). */
  private async drawActivationMaps(card: NeuronCard, bundle: BundleInfo): Promise<void> {
    const status = this.ui.card.querySelector(".map-status");
    let drawn = 0;
    for (const image of card.top_images) {
      const item = this.ui.card.querySelector(`[data-image="${image.id}"]`);
      const canvas = item?.querySelector("canvas");
      if (thumbnailUrl(image, bundle) === null || !canvas) continue;
      try {
        const bytes = await thumbnailBytes(image, bundle);
        if (bytes === null) continue;
        const map: ActivationMap = await this.session.call(
          "activationMap",
          { bytes, layer: card.layer, neuron: card.neuron },
          this.mapCalls,
        );
        if (this.shown?.layer !== card.layer || this.shown.neuron !== card.neuron) return;
        drawOverlay(canvas, map.heatmap, map.size, map.geometry, { mask: false });
        canvas.title = `peak activation ${formatValue(map.peak, 3)}`;
        item?.querySelector("figure")?.append(this.mapDownload(card, image.id, canvas));
        drawn++;
      } catch (error) {
        if (this.shown?.layer !== card.layer || this.shown.neuron !== card.neuron) return;
        if (status) status.textContent = `Activation maps: ${errorMessage(error)}`;
        return;
      }
    }
    if (status)
      status.textContent = drawn
        ? `The neuron's activation map (its post-GELU activation over the patches) is drawn over each thumbnail.`
        : "";
  }

  /** A button that saves a top image's thumbnail with the activation map over it as PNG. */
  private mapDownload(card: NeuronCard, imageId: number, canvas: HTMLCanvasElement): HTMLButtonElement {
    const image = canvas.parentElement?.querySelector("img");
    return downloadButton(
      "PNG",
      `Download the activation map of layer ${card.layer}, neuron ${card.neuron} on image ${imageId} as PNG`,
      () => `heatmap-${card.layer}-${card.neuron}-image-${imageId}.png`,
      () => {
        if (!image) throw new Error("the thumbnail is missing");
        return canvasPng(composeOverlay(image, canvas, THUMB_OVERLAY_OPACITY));
      },
    );
  }

  private renderSearch(result: SearchResult): Node[] {
    const nodes: Node[] = [];
    const row = (layer: number, neuron: number, text: string): HTMLLIElement =>
      el("li", { "data-layer": layer, "data-neuron": neuron }, neuronLink(layer, neuron), text);
    if (result.word !== null) {
      const list = el("ul", { class: "neuron-list", id: "search-word-neurons" });
      // The first 50 by |coefficient| (the engine's order) or by the fidelity of their words.
      const fill = (byFidelity: boolean): void => {
        const neurons: WordNeuron[] = byFidelity ? [...result.word_neurons].sort((a, b) => b.fidelity - a.fidelity) : result.word_neurons;
        list.replaceChildren(
          ...neurons
            .slice(0, 50)
            .map((n) => row(n.layer, n.neuron, ` coefficient ${formatValue(n.coefficient, 3)}, fidelity ${formatValue(n.fidelity, 3)}`)),
        );
      };
      const order = el(
        "select",
        { id: "search-order" },
        el("option", { value: "coefficient" }, "|coefficient| of the word, largest first"),
        el("option", { value: "fidelity" }, "fidelity of the words, best first"),
      );
      order.addEventListener("change", () => fill(order.value === "fidelity"));
      fill(false);
      nodes.push(
        el("h4", {}, `Neurons whose decomposition holds “${result.word}” (${result.word_neurons.length})`),
        el("p", { class: "hint" }, wordLink(result.word, `The word page of “${result.word}”`), " lists them with their other words."),
        ...(result.word_neurons.length
          ? [el("label", { class: "input-row search-order" }, "Order by ", order), list]
          : [el("p", { class: "hint" }, "None.")]),
      );
    } else {
      nodes.push(el("p", { class: "hint" }, `“${result.text}” is not a word of the bundle's dictionary.`));
    }
    const ranked = el("ol", { class: "neuron-list" });
    for (const n of result.text_neurons) append(ranked, row(n.layer, n.neuron, ` r·e = ${formatValue(n.score, 3)}`));
    nodes.push(el("h4", {}, `Neurons whose direction best matches the text's embedding`), ranked);
    return nodes;
  }
}
