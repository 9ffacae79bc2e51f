// The adversarial miner: for "the image depicts class 1, CLIP should say class 0", the
// spurious words of the neurons aligned with e0 - e1 (class-0 synonyms removed), the neurons
// they come from, descriptions to copy (to a text-to-image tool), and a drop zone that tells
// for each test image whether CLIP is fooled, with the success rate.

import type { AdversarialResult, FooledResult } from "clip-lens-wasm";
import { acceptDroppedFiles, append, el, errorMessage, fillSection, isImageFile, neuronLink, parts } from "./dom";
import { formatValue } from "./format";
import type { BundleInfo } from "./protocol";
import type { RouteOf } from "./routes";
import type { Session } from "./session";
import { commaItems } from "./specs";
import type { View } from "./view";

/** The miner's elements, inside its section. */
function minerElements(section: HTMLElement) {
  const [form] = parts(section, HTMLFormElement, "miner-form");
  const [class0, class1, neurons] = parts(section, HTMLInputElement, "class0", "class1", "miner-neurons");
  const [words, block, testInput] = parts(section, HTMLInputElement, "miner-words", "miner-block", "miner-file");
  const [classList] = parts(section, HTMLDataListElement, "miner-classes");
  const [result, testZone, testSummary] = parts(section, HTMLElement, "miner-result", "miner-test", "miner-summary");
  const [testResults] = parts(section, HTMLOListElement, "miner-results");
  return { form, class0, class1, neurons, words, block, classList, result, testZone, testInput, testResults, testSummary };
}

/** The adversarial miner (the route #/miner). */
export class AdversarialMiner implements View<RouteOf<"miner">> {
  private readonly ui: ReturnType<typeof minerElements>;
  private pair: { class0: string; class1: string } | null = null;
  private tested: FooledResult[] = [];

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
  ) {
    this.ui = minerElements(section);
    this.wire();
  }

  setBundle(bundle: BundleInfo | null): void {
    this.ui.classList.replaceChildren(...(bundle?.classes ?? []).map((name) => el("option", { value: name })));
    if (bundle && !this.ui.class0.value && !this.ui.class1.value) {
      this.ui.class0.value = bundle.classes[0] ?? "";
      this.ui.class1.value = bundle.classes[1] ?? "";
    }
  }

  /** Mines the words for the form's classes, each time the route is shown. */
  show(): Promise<void> {
    return this.mine();
  }

  /** Mines the words for the form's classes. */
  private async mine(): Promise<void> {
    const ui = this.ui;
    const class0 = ui.class0.value.trim();
    const class1 = ui.class1.value.trim();
    const block = commaItems(ui.block.value);
    const { adversarial } = await this.session.call("defaults", {});
    const options = { neurons: Number(ui.neurons.value) || adversarial.neurons, words: Number(ui.words.value) || adversarial.words, block };
    await fillSection(
      ui.result,
      `Mining words that push “${class1}” images towards “${class0}”…`,
      () => this.session.call("adversarial", { class0, class1, options }),
      (result) => {
        this.pair = { class0, class1 };
        this.tested = [];
        ui.testResults.replaceChildren();
        ui.testSummary.textContent = "";
        return this.render(result);
      },
    );
  }

  private wire(): void {
    const ui = this.ui;
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.mine();
    });
    ui.testInput.addEventListener("change", () => {
      void this.test([...(ui.testInput.files ?? [])]);
      ui.testInput.value = "";
    });
    acceptDroppedFiles(ui.testZone, (files) => void this.test(files));
  }

  private render(result: AdversarialResult): Node[] {
    const table = el(
      "table",
      { class: "words-table" },
      el(
        "caption",
        {},
        `Spurious words for “${result.class1}” → “${result.class0}” (layers ${result.layers.join(", ")}; ${result.neurons.length} aligned neurons)`,
      ),
      el(
        "thead",
        {},
        el("tr", {}, el("th", { scope: "col" }, "Word"), el("th", { scope: "col" }, "Score"), el("th", { scope: "col" }, "Neurons")),
      ),
    );
    const body = el("tbody");
    for (const word of result.words) {
      const neurons = el("td");
      word.neurons.slice(0, 6).forEach(([layer, neuron], i) => append(neurons, i ? " " : "", neuronLink(layer, neuron)));
      body.append(el("tr", {}, el("td", {}, word.word), el("td", { class: "num" }, formatValue(word.score, 3)), neurons));
    }
    table.append(body);
    const descriptions = el("ol", { class: "descriptions" });
    for (const text of result.descriptions) {
      const copy = el("button", { type: "button", class: "copy" }, "Copy");
      copy.addEventListener("click", () => {
        navigator.clipboard.writeText(text).then(
          () => (copy.textContent = "Copied"),
          () => (copy.textContent = "Copy failed: select the text"),
        );
      });
      descriptions.append(el("li", {}, el("span", { class: "description" }, text), " ", copy));
    }
    const nodes: Node[] = [
      result.words.length ? table : el("p", { class: "hint" }, "No words left after removing class-0 synonyms and blocked words."),
    ];
    if (result.removed.length)
      nodes.push(el("p", { class: "hint" }, `Removed as synonyms of “${result.class0}” or blocked: ${result.removed.join(", ")}.`));
    nodes.push(el("h4", {}, "Image descriptions (they name class 1, never class 0)"), descriptions);
    return nodes;
  }

  /** Tests dropped images: is CLIP fooled into class 0? */
  private async test(files: File[]): Promise<void> {
    const ui = this.ui;
    const pair = this.pair ?? { class0: ui.class0.value.trim(), class1: ui.class1.value.trim() };
    for (const file of files.filter(isImageFile)) {
      const row = el("li", { "data-state": "running" }, `${file.name}: testing…`);
      ui.testResults.append(row);
      try {
        const result = await this.session.call("fooled", { bytes: new Uint8Array(await file.arrayBuffer()), ...pair });
        this.tested.push(result);
        row.dataset["state"] = result.fooled ? "fooled" : "not-fooled";
        row.textContent = `${file.name}: ${result.fooled ? `fooled: CLIP prefers “${result.class0}”` : `not fooled: CLIP prefers “${result.class1}”`} (score ${formatValue(result.score, 4)})`;
      } catch (error) {
        row.dataset["state"] = "error";
        row.textContent = `${file.name}: ${errorMessage(error)}`;
      }
    }
    const fooled = this.tested.filter((r) => r.fooled).length;
    ui.testSummary.textContent = this.tested.length
      ? `Success rate: ${fooled} of ${this.tested.length} images fool CLIP (${((100 * fooled) / this.tested.length).toFixed(0)}%).`
      : "";
  }
}
