// The lab's ablation panel: on the analysed image (no new forward), replace the effects of
// chosen neurons (one, a typed or ticked set, a layer's significant or insignificant ones) by
// their means over the bundle's images, keep only a layer's rank-one reconstruction, or steer
// neurons (each one's centred effect times a factor from -5 to 5: a slider per significant
// neuron, several at once), and show the top classes and concept words before and after, side
// by side, with the shift of the image embedding and the time taken.

import type { AblationRequest, AblationResult, AblationView, Analysis } from "clip-lens-wasm";
import { el, fillSection, part, signedBar, wordLink } from "./dom";
import { formatMs, formatValue } from "./format";
import type { Session } from "./session";
import { commaItems, neuronKey } from "./specs";

/** The panel's elements, inside its section. */
function ablationElements(panel: HTMLElement) {
  return {
    panel,
    neuronsForm: part(panel, "ablate-neurons-form", HTMLFormElement),
    neurons: part(panel, "ablate-neurons", HTMLInputElement),
    steerForm: part(panel, "steer-form", HTMLFormElement),
    steer: part(panel, "steer-neurons", HTMLInputElement),
    layerForm: part(panel, "ablate-layer-form", HTMLFormElement),
    layer: part(panel, "ablate-layer", HTMLSelectElement),
    result: part(panel, "ablation-result", HTMLElement),
  };
}

type LayerKind = Exclude<AblationRequest["kind"], "neurons" | "steer">;

/** What an empty typed list asks for, by the kind of request it is. */
const EMPTY_LIST_HINTS = {
  neurons: "Type neurons to ablate (layer:neuron, comma separated, e.g. 9:4,9:17) or tick significant neurons.",
  steer: "Type neurons to steer (layer:neuron=factor, e.g. 9:4=3,9:17=-1) or move the sliders of significant neurons.",
} as const;

const LAYER_KINDS: readonly LayerKind[] = ["significant", "insignificant", "rank-one"];

export class AblationPanel {
  private readonly ui: ReturnType<typeof ablationElements>;
  private runs: AblationResult[] = [];
  private readonly queued = new Set<number>();

  /** `panel`: the lab's ablation section. */
  constructor(
    panel: HTMLElement,
    private readonly session: Session,
  ) {
    const ui = ablationElements(panel);
    this.ui = ui;
    ui.neuronsForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run({ kind: "neurons", neurons: commaItems(ui.neurons.value).join(",") });
    });
    ui.steerForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run({ kind: "steer", neurons: commaItems(ui.steer.value).join(",") });
    });
    for (const button of ui.layerForm.querySelectorAll<HTMLButtonElement>("button[data-kind]")) {
      const kind = button.dataset["kind"] as LayerKind;
      if (!LAYER_KINDS.includes(kind)) continue;
      button.addEventListener("click", () => void this.run({ kind, layer: Number(ui.layer.value) }));
    }
    ui.layerForm.addEventListener("submit", (event) => event.preventDefault());
  }

  /** The ablations run on the current analysis, oldest first. */
  get results(): readonly AblationResult[] {
    return this.runs;
  }

  /** A new analysis (or none): the panel shows for it, empty. */
  setAnalysis(analysis: Analysis | null): void {
    const ui = this.ui;
    this.session.cancel(this.queued);
    this.runs = [];
    ui.panel.hidden = analysis === null;
    ui.neurons.value = ui.steer.value = "";
    ui.result.replaceChildren();
    ui.result.dataset["status"] = "idle";
    const layers = analysis?.layers ?? [];
    ui.layer.replaceChildren(
      ...layers.map((layer) =>
        el("option", { value: layer.layer }, `Layer ${layer.layer} (${layer.significant_neurons.length} significant)`),
      ),
    );
    // The deepest layer first: its neurons change the embedding most directly.
    const last = layers[layers.length - 1];
    if (last) ui.layer.value = String(last.layer);
  }

  /** A significant neuron's row controls: a checkbox that adds it to the set, a button that
   * ablates it alone, and a slider that steers it (with the other steered neurons). */
  rowControls(layer: number, neuron: number): HTMLElement[] {
    const key = neuronKey(layer, neuron);
    const box = el("input", {
      type: "checkbox",
      class: "ablate-select",
      "aria-label": `Select layer ${layer}, neuron ${neuron} for ablation`,
      "data-neuron": key,
    });
    box.checked = commaItems(this.ui.neurons.value).includes(key);
    box.addEventListener("change", () => {
      const items = commaItems(this.ui.neurons.value).filter((item) => item !== key);
      this.ui.neurons.value = (box.checked ? [...items, key] : items).join(",");
    });
    const button = el(
      "button",
      { type: "button", class: "ablate-one", "aria-label": `Ablate layer ${layer}, neuron ${neuron}`, "data-neuron": key },
      "ablate",
    );
    button.addEventListener("click", () => void this.run({ kind: "neurons", neurons: key }));
    return [box, button, this.steerSlider(layer, neuron)];
  }

  /** The typed steering's factors by neuron (`9:4` → 3; a neuron not there is not steered). */
  private factors(): Map<string, number> {
    const pairs = commaItems(this.ui.steer.value).map((item) => item.split("=") as [string, string]);
    return new Map(pairs.map(([key, factor]) => [key.trim(), Number(factor)]));
  }

  /** A slider from -5 to 5 that steers a neuron: a change sets its factor in the typed steering
   * (1 removes it) and runs the steering of every neuron there. */
  private steerSlider(layer: number, neuron: number): HTMLElement {
    const key = neuronKey(layer, neuron);
    const slider = el("input", {
      type: "range",
      min: -5,
      max: 5,
      step: 0.5,
      value: this.factors().get(key) ?? 1,
      class: "steer-slider",
      "aria-label": `Steer layer ${layer}, neuron ${neuron}: its effect times this factor`,
      "data-neuron": key,
    });
    slider.addEventListener("change", () => {
      const factors = this.factors();
      const factor = Number(slider.value);
      if (factor === 1) factors.delete(key);
      else factors.set(key, factor);
      this.ui.steer.value = [...factors].map(([k, f]) => `${k}=${f}`).join(",");
      if (factors.size > 0) void this.run({ kind: "steer", neurons: this.ui.steer.value });
    });
    return slider;
  }

  /** Runs `request` on the analysed image and shows the result (or the engine's message). */
  async run(request: AblationRequest): Promise<AblationResult | null> {
    const ui = this.ui;
    if ((request.kind === "neurons" || request.kind === "steer") && request.neurons === "") {
      ui.result.replaceChildren(el("p", { class: "inline-error", role: "alert" }, EMPTY_LIST_HINTS[request.kind]));
      ui.result.dataset["status"] = "error";
      return null;
    }
    const result = await fillSection(
      ui.result,
      "Ablating…",
      () => this.session.call("ablate", { request }, this.queued),
      (found) => AblationPanel.render(found),
    );
    if (result) this.runs.push(result);
    ui.result.scrollIntoView({ block: "nearest" });
    return result;
  }

  private static render(result: AblationResult): Node[] {
    const summary = el(
      "p",
      { class: "ablation-summary" },
      el("strong", {}, result.description),
      `: ${result.ablated} neuron${result.ablated === 1 ? "" : "s"} ${result.request.kind === "steer" ? "steered" : "replaced"}; the embedding moved by `,
      el("span", { class: "shift" }, formatValue(result.shift, 2)),
      ` (its length being 100), in ${formatMs(result.ms)}.`,
    );
    return [
      summary,
      el(
        "div",
        { class: "before-after" },
        AblationPanel.view("Before", result.before, null),
        AblationPanel.view("After", result.after, result.before),
      ),
    ];
  }

  /** One side: top classes (probabilities) and concept words; on the after side, what
   * changed against `before` is marked. */
  private static view(title: string, view: AblationView, before: AblationView | null): HTMLElement {
    const classes = el("ol", { class: "score-list", "aria-label": `${title}: top classes` });
    view.classes.forEach((c, i) => {
      const moved = before !== null && before.classes[i]?.name !== c.name;
      classes.append(
        el(
          "li",
          { class: `score-row${moved ? " changed" : ""}` },
          el("span", { class: "score-label" }, c.name),
          signedBar(c.probability, 1),
          el("span", { class: "num" }, `${(100 * c.probability).toFixed(1)}%`),
        ),
      );
    });
    const largest = Math.max(1e-12, ...view.words.map(([, s]) => Math.abs(s)));
    const words = el("ol", { class: "score-list", "aria-label": `${title}: concept words` });
    for (const [word, score] of view.words) {
      const fresh = before !== null && !before.words.some(([w]) => w === word);
      words.append(
        el(
          "li",
          { class: `score-row${fresh ? " changed" : ""}` },
          wordLink(word, word, "score-label word-link"),
          signedBar(score, largest),
          el("span", { class: "num" }, formatValue(score, 3)),
        ),
      );
    }
    if (view.words.length === 0) words.append(el("li", { class: "hint" }, "No concept word."));
    return el(
      "section",
      { class: "ablation-side", "aria-label": title },
      el("h4", {}, title),
      el("h5", {}, "Top classes"),
      classes,
      el("h5", {}, "Concept words"),
      words,
    );
  }
}
