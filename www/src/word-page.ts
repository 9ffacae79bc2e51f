// A word's page (#/word/<word>): every neuron whose decomposition holds the word, with the
// word's signed coefficient, the neuron's other words (each a word page) and its top images'
// thumbnails, each linked to the neuron's card. Needs no text tower; search stays a link away.

import type { WordPage, WordPageNeuron } from "clip-lens-wasm";
import { append, el, fillSection, neuronLink, part, wordLink } from "./dom";
import { formatSigned } from "./format";
import type { BundleInfo } from "./protocol";
import { searchHref, type RouteOf } from "./routes";
import type { Session } from "./session";
import { thumbnailStrip } from "./thumbnails";
import type { View } from "./view";

/** The word page's elements, inside its section. */
function wordPageElements(section: HTMLElement) {
  return {
    title: part(section, "word-title", HTMLElement),
    result: part(section, "word-result", HTMLElement),
  };
}

/** A word's page (the route #/word/<word>). */
export class WordPageView implements View<RouteOf<"word">> {
  private readonly ui: ReturnType<typeof wordPageElements>;
  private bundle: BundleInfo | null = null;

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
  ) {
    this.ui = wordPageElements(section);
  }

  setBundle(bundle: BundleInfo | null): void {
    this.bundle = bundle;
  }

  /** Shows the page of the route's word. */
  async show({ word }: RouteOf<"word">): Promise<void> {
    this.ui.title.textContent = `The word “${word}”`;
    document.title = `“${word}” · clip-lens`;
    if (word.trim() === "") {
      this.ui.title.textContent = "Word";
      this.ui.result.replaceChildren(el("p", { class: "hint" }, "No word: open #/word/<word>, or follow a word on a neuron's card."));
      this.ui.result.dataset["status"] = "ready";
      return;
    }
    await fillSection(
      this.ui.result,
      `Finding the neurons whose words include “${word}”…`,
      () => this.session.call("wordPage", { word, topImages: null /* the engine's default */ }),
      (page) => this.render(page),
    );
  }

  private render(page: WordPage): Node[] {
    const search = el(
      "p",
      { class: "hint" },
      "Also: ",
      el("a", { href: searchHref(page.word) }, `search for “${page.word}”`),
      " (the neurons whose direction best matches its text embedding).",
    );
    const heading = el("h3", {}, `Neurons whose decomposition holds “${page.word}” (${page.neurons.length})`);
    if (page.neurons.length === 0)
      return [heading, el("p", { class: "hint" }, "None: no neuron of the bundle's layers uses this word."), search];
    return [heading, el("ol", { class: "word-page-neurons" }, ...page.neurons.map((neuron) => this.row(page.word, neuron))), search];
  }

  private row(word: string, n: WordPageNeuron): HTMLLIElement {
    const others = n.words.filter(([w]) => w !== word);
    const words = el("span", { class: "other-words" });
    others.forEach(([w, c], i) => append(words, i ? ", " : "", wordLink(w, `${c < 0 ? "−" : ""}${w}`)));
    const sign = n.coefficient < 0 ? "negative" : "positive";
    return el(
      "li",
      { class: "word-page-neuron", "data-neuron": `${n.layer}:${n.neuron}` },
      el(
        "div",
        { class: "word-page-head" },
        neuronLink(n.layer, n.neuron),
        " ",
        el(
          "span",
          { class: `coefficient ${sign}`, title: `The coefficient of “${word}” in its decomposition` },
          formatSigned(n.coefficient),
        ),
        others.length ? el("span", { class: "hint" }, " with ") : null,
        others.length ? words : null,
      ),
      thumbnailStrip(n.top_images, this.bundle, n.layer, n.neuron, n.top_images.length),
    );
  }
}
