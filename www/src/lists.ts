// Lists of neurons: the route #/list/9:4,9:17,10:301 shows their cards side by side (words,
// threshold, top thumbnails, histogram) with the words they share highlighted. The visitor's
// own list is kept in localStorage ("add to list" on every card; its link and count in the
// header), and a list's link can be copied.

import type { NeuronCard, NeuronList } from "clip-lens-wasm";
import { el, errorMessage, fillSection, neuronLink, parts, signedBar, wordLink } from "./dom";
import { formatSigned, formatSignificant } from "./format";
import { distributionSection } from "./histogram";
import type { BundleInfo } from "./protocol";
import { listHref, type RouteOf } from "./routes";
import type { Session } from "./session";
import { commaItems, isNeuronKey, neuronKey } from "./specs";
import { thumbnailStrip } from "./thumbnails";
import type { View } from "./view";

const STORAGE_KEY = "clip-lens-list";
/** Words shown on a compact card. */
const LIST_WORDS = 8;

/** The visitor's list, in localStorage (in memory where storage is refused). */
export class ListStore {
  private keys: string[];
  private readonly listeners: (() => void)[] = [];

  constructor() {
    this.keys = ListStore.read();
  }

  private static read(): string[] {
    try {
      const stored: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
      return Array.isArray(stored) ? stored.filter((key): key is string => typeof key === "string" && isNeuronKey(key)) : [];
    } catch {
      return [];
    }
  }

  get items(): readonly string[] {
    return this.keys;
  }

  has(key: string): boolean {
    return this.keys.includes(key);
  }

  /** Adds `key` when absent, else removes it. */
  toggle(key: string): void {
    this.keys = this.has(key) ? this.keys.filter((k) => k !== key) : [...this.keys, key];
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.keys));
    } catch {
      // Private browsing without storage: the list lasts as long as the page.
    }
    for (const listener of this.listeners) listener();
  }

  /** Calls `listener` after every change. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
}

/** Shows on a list button whether its neuron is listed. */
function showListed(button: HTMLButtonElement, listed: boolean): void {
  const state = button.querySelector(".list-state");
  if (state) state.textContent = listed ? "✓ in my list" : "+ add to list";
  button.setAttribute("aria-pressed", String(listed));
}

/** The "add to list" toggle button of a neuron's card (aria-pressed while it is listed); a
 * click updates every button of that neuron on the page. */
export function listButton(store: ListStore, layer: number, neuron: number): HTMLButtonElement {
  const key = neuronKey(layer, neuron);
  // The state's words, then the neuron for screen readers: the accessible name holds the
  // visible text (and names the neuron), and aria-pressed says whether it is listed.
  const button = el(
    "button",
    { type: "button", class: "list-button", "data-neuron": key },
    el("span", { class: "list-state" }),
    el("span", { class: "visually-hidden" }, `: layer ${layer}, neuron ${neuron}`),
  );
  button.addEventListener("click", () => {
    store.toggle(key);
    for (const same of document.querySelectorAll<HTMLButtonElement>(`.list-button[data-neuron="${key}"]`)) showListed(same, store.has(key));
    showListed(button, store.has(key));
  });
  showListed(button, store.has(key));
  return button;
}

/** The header's link to the visitor's list, with its count. */
export function wireListLink(store: ListStore, link: HTMLAnchorElement, count: HTMLElement): void {
  const update = (): void => {
    link.href = listHref(store.items);
    count.textContent = String(store.items.length);
    link.setAttribute("aria-label", `My list: ${store.items.length} neuron${store.items.length === 1 ? "" : "s"}`);
  };
  store.onChange(update);
  update();
}

/** The list view's elements, inside its section. */
function listElements(section: HTMLElement) {
  const [form] = parts(section, HTMLFormElement, "list-form");
  const [spec, copyField] = parts(section, HTMLInputElement, "list-spec", "list-copy-field");
  const [copy] = parts(section, HTMLButtonElement, "list-copy");
  const [copyStatus, cards] = parts(section, HTMLElement, "list-copy-status", "list-cards");
  return { form, spec, copy, copyStatus, copyField, cards };
}

/** The list view (#/list/<spec>). */
export class ListView implements View<RouteOf<"list">> {
  private readonly ui: ReturnType<typeof listElements>;
  private bundle: BundleInfo | null = null;

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
    private readonly store: ListStore,
  ) {
    const ui = listElements(section);
    this.ui = ui;
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      location.hash = listHref(commaItems(ui.spec.value));
    });
    ui.copy.addEventListener("click", () => void this.copyLink());
  }

  setBundle(bundle: BundleInfo | null): void {
    this.bundle = bundle;
  }

  /** Shows the cards of the route's spec ("9:4,9:17"); an empty spec shows the visitor's list. */
  async show({ spec }: RouteOf<"list">): Promise<void> {
    const ui = this.ui;
    const wanted = spec.trim() === "" ? this.store.items.join(",") : spec.trim();
    ui.spec.value = wanted;
    ui.copyField.hidden = true;
    ui.copyStatus.textContent = "";
    document.title = "Neuron list · clip-lens";
    if (wanted === "") {
      ui.cards.replaceChildren(
        el(
          "p",
          { class: "hint" },
          "Your list is empty: add neurons with “+ add to list” on their cards, or type some above (layer:neuron, comma separated).",
        ),
      );
      ui.cards.dataset["status"] = "ready";
      return;
    }
    await fillSection(
      ui.cards,
      `Loading ${wanted}…`,
      () => this.session.call("neuronList", { spec: wanted }),
      (list) => this.render(list),
    );
  }

  private render(list: NeuronList): Node[] {
    const shared = new Set(list.shared_words);
    const summary = list.shared_words.length
      ? el(
          "p",
          { class: "shared-summary" },
          `Words shared by at least two of them (highlighted): `,
          ...list.shared_words.flatMap((word, i) => [i ? ", " : "", wordLink(word, word, "word-link shared")]),
        )
      : el("p", { class: "hint shared-summary" }, "No word is shared by two of these neurons' first words.");
    return [summary, el("div", { class: "list-cards" }, ...list.cards.map((card) => this.compactCard(card, shared)))];
  }

  /** A small card: title, threshold, fidelity of its words, first words (shared ones highlighted),
   * thumbnails, histogram. */
  private compactCard(card: NeuronCard, shared: ReadonlySet<string>): HTMLElement {
    const largest = Math.max(1e-12, ...card.words.map(([, c]) => Math.abs(c)));
    const words = el("ol", { class: "word-bars compact", "aria-label": `First words of layer ${card.layer}, neuron ${card.neuron}` });
    for (const [word, c] of card.words.slice(0, LIST_WORDS)) {
      const isShared = shared.has(word);
      words.append(
        el(
          "li",
          { class: `score-row${isShared ? " shared" : ""}`, "data-shared": isShared },
          wordLink(word, word, `score-label word-link${isShared ? " shared" : ""}`),
          signedBar(c, largest),
          el("span", { class: "num" }, formatSigned(c)),
        ),
      );
    }
    return el(
      "article",
      {
        class: "compact-card",
        "data-neuron": neuronKey(card.layer, card.neuron),
        "aria-label": `Layer ${card.layer}, neuron ${card.neuron}`,
      },
      el(
        "header",
        { class: "card-header" },
        el("h3", {}, neuronLink(card.layer, card.neuron, `Layer ${card.layer}, neuron ${card.neuron}`)),
        listButton(this.store, card.layer, card.neuron),
      ),
      el("p", { class: "hint" }, card.threshold === null ? "No threshold (no norms)." : `Threshold ${formatSignificant(card.threshold)}`),
      el(
        "p",
        { class: "hint list-fidelity" },
        card.fidelity === null
          ? "Fidelity of its words: unknown."
          : `Fidelity of its words ${formatSignificant(card.fidelity.cosine)} (layer median ${formatSignificant(card.fidelity.layer_median)})`,
      ),
      words,
      thumbnailStrip(card.top_images, this.bundle, card.layer, card.neuron) ?? el("p", { class: "hint" }, "No thumbnails."),
      distributionSection(card),
    );
  }

  /** Copies the list's address; where the clipboard is refused, shows it selected in a field. */
  private async copyLink(): Promise<void> {
    const ui = this.ui;
    const url = new URL(listHref(commaItems(ui.spec.value)), location.href).href;
    try {
      await navigator.clipboard.writeText(url);
      ui.copyField.hidden = true;
      ui.copyStatus.textContent = "Link copied.";
    } catch (error) {
      ui.copyField.value = url;
      ui.copyField.hidden = false;
      ui.copyField.select();
      ui.copyStatus.textContent = `The clipboard is not available (${errorMessage(error)}): copy the link from the field.`;
    }
  }
}
