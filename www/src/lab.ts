// The image lab: pick an image (sample, file, drag and drop, paste, camera, or ?image=), see
// its top classes, the concepts the lens discovers, the significant neurons with their words,
// and a segmentation heatmap for a concept, drawn on the original image. Several dropped
// images form a queue (analysis-queue.ts) whose waiting images can be cancelled; the running
// analysis can be stopped (the engine restarts). Under the result: the ablation panel
// (ablation.ts), each significant neuron's distribution with the image's norm marked and its
// heads on the image (lab-heads.ts), and the exports (the analysis as JSON or CSV, the heatmap
// as PNG). The images: lab-images.ts; the camera: camera.ts.

import type { Analysis, Segmentation, SignificantNeuron } from "clip-lens-wasm";
import { AblationPanel } from "./ablation";
import { AnalysisQueue, queueSummary, type QueueState } from "./analysis-queue";
import { Camera } from "./camera";
import { WorkerError } from "./client";
import {
  acceptDroppedFiles,
  append,
  el,
  errorMessage,
  errorParagraph,
  isImageFile,
  neuronLink,
  part,
  parts,
  signedBar,
  wordLink,
  toggleLoadedPanel,
} from "./dom";
import { canvasPng, csvBlob, downloadButton, fileSlug, jsonBlob } from "./export";
import { formatBytes, formatMs, formatValue } from "./format";
import { composeOverlay, drawOverlay, maskFraction } from "./heatmap";
import { distributionSection } from "./histogram";
import { headsToggle } from "./lab-heads";
import { imageFromBlob, imageFromUrl, SAMPLES, type LabImage } from "./lab-images";
import type { BundleInfo } from "./protocol";
import type { RouteOf } from "./routes";
import type { Session } from "./session";
import { conceptSpec } from "./specs";
import type { View } from "./view";

/** What the lab says where a bundle is missing: what one adds, and how to get one. */
function noBundleHint(): (string | HTMLAnchorElement)[] {
  return [
    "The classes above need only the model. Concepts, neurons, heatmaps and ablations need a bundle of this model's neuron " +
      "statistics over a set of images: open one (?bundle=URL, or its two files under Model), or ",
    el("a", { href: "#/build" }, "build one from your images"),
    ".",
  ];
}

/** The lab's elements, inside its section. */
function labElements(section: HTMLElement) {
  const [samples, dropZone, camera] = parts(section, HTMLElement, "samples", "lab-drop", "camera");
  const [queueStatus, result, caption] = parts(section, HTMLElement, "queue-status", "lab-result", "lab-caption");
  const [neurons, timings, segmentInfo] = parts(section, HTMLElement, "lab-neurons", "lab-timings", "segment-info");
  /** The analysis's downloads (filled here). */
  const [exports] = parts(section, HTMLElement, "lab-export");
  const [fileInput, conceptInput, opacity, mask] = parts(section, HTMLInputElement, "lab-file", "concept-input", "opacity", "mask-toggle");
  const [cameraButton, cancelButton, stopButton] = parts(section, HTMLButtonElement, "camera-button", "queue-cancel", "lab-stop");
  const [queue, classes, concepts] = parts(section, HTMLOListElement, "lab-queue", "lab-classes", "lab-concepts");
  const [image] = parts(section, HTMLImageElement, "lab-image");
  const [overlay] = parts(section, HTMLCanvasElement, "lab-overlay");
  const [conceptForm] = parts(section, HTMLFormElement, "concept-form");
  const [classList] = parts(section, HTMLDataListElement, "class-names");
  // prettier-ignore
  return { samples, fileInput, dropZone, cameraButton, camera, queue, queueStatus, cancelButton, stopButton, result, image, overlay,
    caption, classes, concepts, neurons, timings, conceptForm, conceptInput, classList, opacity, mask, segmentInfo, exports };
}

/** An image in the queue, with its row in the queue's list. */
interface QueuedImage {
  image: LabImage;
  row: HTMLLIElement;
}

/** A queue row's state text, for the states without a result. */
const QUEUE_STATE_TEXT: Partial<Record<QueueState, string>> = { queued: "queued", running: "analysing…", cancelled: "cancelled" };

/** The lab (the route #/lab): its image stays when another view is shown. */
export class ImageLab implements View<RouteOf<"lab">> {
  private readonly ui: ReturnType<typeof labElements>;
  private bundle: BundleInfo | null = null;
  private analysis: Analysis | null = null;
  private segmentation: Segmentation | null = null;
  private shown: LabImage | null = null;
  private readonly queue: AnalysisQueue<QueuedImage>;
  /** The engine calls of the lab (analyses and segmentations) still queued in the worker. */
  private readonly queuedCalls = new Set<number>();
  private readonly ablation: AblationPanel;

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
    private concept: string,
  ) {
    this.ui = labElements(section);
    this.ablation = new AblationPanel(part(section, "ablation", HTMLElement), session);
    this.queue = new AnalysisQueue<QueuedImage>({
      run: async ({ image }) => (await this.analyse(image))?.classes[0]?.name ?? "done",
      isCancellation: (error) => error instanceof WorkerError && error.cancelled,
      added: ({ value }) => {
        this.ui.queue.append(value.row);
        this.updateQueueStatus();
      },
      changed: ({ value, state, detail }) => {
        value.row.dataset["state"] = state;
        const label = value.row.querySelector(".queue-state");
        if (label) label.textContent = QUEUE_STATE_TEXT[state] ?? detail ?? state;
        this.updateQueueStatus();
      },
      cleared: (values) => {
        this.session.cancel(this.queuedCalls);
        for (const { image } of values) if (image.src.startsWith("blob:") && image !== this.shown) URL.revokeObjectURL(image.src);
        this.ui.queue.replaceChildren();
        this.updateQueueStatus();
      },
    });
    new Camera(this.ui.cameraButton, this.ui.camera, (blob, name) => {
      this.queue.clear();
      void this.enqueue([imageFromBlob(blob, name)]);
    });
    this.wire();
    this.wireExports();
  }

  /** The bundle the lab works with (classes for the concept box). */
  setBundle(bundle: BundleInfo | null): void {
    this.bundle = bundle;
    this.ui.classList.replaceChildren(...(bundle?.classes ?? []).map((name) => el("option", { value: name })));
    this.ui.conceptInput.value = this.concept === "predicted" ? "" : this.concept.replace(/^class:/, "");
  }

  /** Nothing to load: the lab shows its last image (main.ts opens the first). */
  async show(): Promise<void> {}

  /** Analyses one image now (queue cleared); resolves when its segmentation is drawn. */
  async open(url: string, concept?: string): Promise<void> {
    if (concept !== undefined) {
      this.concept = conceptSpec(concept, this.bundle?.classes ?? []);
      this.ui.conceptInput.value = concept === "predicted" ? "" : concept;
    }
    this.cancelQueue();
    await this.enqueue([imageFromUrl(url)]);
  }

  /** Re-analyses the shown image (after a backend switch the engine has forgotten it). */
  async refresh(): Promise<void> {
    if (this.shown) await this.analyse(this.shown);
  }

  private wire(): void {
    const ui = this.ui;
    for (const sample of SAMPLES) {
      const button = el(
        "button",
        { type: "button", class: "sample", "data-sample": sample.file, title: sample.alt },
        el("img", { src: `samples/${sample.file}`, alt: sample.alt, width: 64, height: 64, loading: "lazy" }),
      );
      button.addEventListener("click", () => void this.open(`samples/${sample.file}`));
      ui.samples.append(button);
    }
    ui.fileInput.addEventListener("change", () => {
      void this.enqueueFiles([...(ui.fileInput.files ?? [])]);
      ui.fileInput.value = "";
    });
    acceptDroppedFiles(ui.dropZone, (files) => void this.enqueueFiles(files));
    document.addEventListener("paste", (event) => {
      if (this.section.hidden) return;
      const files = [...(event.clipboardData?.files ?? [])].filter((file) => file.type.startsWith("image/"));
      if (files.length > 0) {
        event.preventDefault();
        void this.enqueueFiles(files);
      }
    });
    ui.cancelButton.addEventListener("click", () => this.cancelQueue());
    ui.stopButton.addEventListener("click", () => void this.stopRunning());
    ui.conceptForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.concept = conceptSpec(ui.conceptInput.value, this.bundle?.classes ?? []);
      void this.segment();
    });
    ui.opacity.addEventListener("input", () => this.applyOpacity());
    ui.mask.addEventListener("change", () => this.redraw());
    this.applyOpacity();
  }

  /** The downloads: the analysis with its ablations as JSON, the engine's CSV of them, and
   * the heatmap drawn over the image as PNG. */
  private wireExports(): void {
    const ui = this.ui;
    const failed = (error: unknown): void => this.setStatus("error", `The download failed: ${errorMessage(error)}`);
    ui.exports.append(
      downloadButton(
        "Analysis JSON",
        "Download the analysis and its ablations as JSON",
        () => "analysis.json",
        () => jsonBlob({ analysis: this.analysis, ablations: this.ablation.results }),
        failed,
      ),
      downloadButton(
        "Analysis CSV",
        "Download the analysis and its ablations as CSV",
        () => "analysis.csv",
        async () => csvBlob(await this.session.call("analysisCsv", {})),
        failed,
      ),
      downloadButton(
        "Heatmap PNG",
        "Download the heatmap over the image as PNG",
        () => `heatmap-${fileSlug(this.segmentation?.concept ?? "none")}.png`,
        () => {
          if (!this.segmentation) throw new Error("no heatmap is drawn yet");
          return canvasPng(composeOverlay(ui.image, ui.overlay, Number(ui.opacity.value) / 100));
        },
        failed,
      ),
    );
  }

  private applyOpacity(): void {
    this.ui.overlay.style.opacity = String(Number(this.ui.opacity.value) / 100);
  }

  private enqueueFiles(files: File[]): Promise<void> {
    const images = files.filter(isImageFile);
    if (images.length === 0) {
      this.setStatus(
        "error",
        files.length ? `No image among the dropped files (${files.map((f) => f.name).join(", ")}).` : "Nothing was dropped.",
      );
      return Promise.resolve();
    }
    return this.enqueue(images.map((file) => imageFromBlob(file, file.name)));
  }

  /** Queues `images` (their rows in the queue's list) and analyses them in turn. */
  private enqueue(images: LabImage[]): Promise<void> {
    return this.queue.add(
      images.map((image) => {
        const row = el(
          "li",
          { class: "queue-item", "data-state": "queued" },
          el("span", { class: "queue-name" }, image.name),
          " ",
          el("span", { class: "queue-state" }, "queued"),
        );
        const queued = { image, row };
        // A finished image's row analyses it again.
        row.addEventListener("click", () => void this.queue.rerun(queued));
        return queued;
      }),
    );
  }

  private updateQueueStatus(): void {
    const counts = this.queue.counts();
    this.ui.cancelButton.disabled = counts.queued === 0;
    this.ui.queue.parentElement?.toggleAttribute("hidden", this.queue.items.length < 2);
    this.ui.queueStatus.textContent = queueSummary(counts);
  }

  /** Cancels the images that have not started (the running one finishes). */
  private cancelQueue(): void {
    this.queue.cancelWaiting();
    this.session.cancel(this.queuedCalls);
  }

  private setStatus(status: "loading" | "ready" | "error" | "cancelled", text: string): void {
    this.ui.result.dataset["status"] = status;
    this.ui.result.setAttribute("aria-busy", String(status === "loading"));
    this.ui.timings.textContent = text;
    this.ui.stopButton.hidden = status !== "loading";
    this.ui.stopButton.disabled = false;
  }

  /** Stops the running analysis (or segmentation) at once: the engine restarts, with the
   * model from the browser's cache, and the queue goes on with the next image. */
  private async stopRunning(): Promise<void> {
    this.ui.stopButton.disabled = true;
    try {
      await this.session.stopRunning();
    } catch (error) {
      this.setStatus("error", `The engine did not restart after the stop: ${errorMessage(error)}`);
    }
  }

  /** The engine's memory, on the result (`data-wasm-bytes`) and in words. */
  private async memoryText(): Promise<string> {
    const memory = await this.session.memory().catch(() => null);
    if (memory?.wasmBytes == null) return "";
    this.ui.result.dataset["wasmBytes"] = String(memory.wasmBytes);
    const gpu = memory.gpuBytesReserved === null ? "" : `, GPU ${formatBytes(memory.gpuBytesReserved)}`;
    return ` Engine memory: WebAssembly ${formatBytes(memory.wasmBytes)}${gpu}.`;
  }

  /** Shows, analyses and segments one image; the lab's result section tracks its status. */
  private async analyse(image: LabImage): Promise<Analysis | null> {
    this.setStatus("loading", `Analysing ${image.name}…`);
    const previous = this.shown;
    this.shown = image;
    if (
      previous &&
      previous !== image &&
      previous.src.startsWith("blob:") &&
      !this.queue.items.some((entry) => entry.value.image === previous)
    )
      URL.revokeObjectURL(previous.src);
    this.ui.image.src = image.src;
    this.ui.image.alt = `The analysed image: ${image.name}`;
    this.ui.caption.textContent = image.name;
    this.segmentation = null;
    this.ui.exports.hidden = true;
    this.ui.overlay.getContext("2d")?.clearRect(0, 0, this.ui.overlay.width, this.ui.overlay.height);
    try {
      const bytes = await image.bytes();
      const analysis = await this.session.call("analyze", { bytes }, this.queuedCalls);
      if (this.shown !== image) return analysis; // another image took over meanwhile
      this.analysis = analysis;
      // Without a bundle (classes from the text side) there is nothing to ablate or export.
      this.ablation.setAnalysis(this.bundle === null ? null : analysis);
      this.render(analysis);
      this.ui.exports.hidden = this.bundle === null;
      await this.segment();
      return analysis;
    } catch (error) {
      if (this.shown === image) {
        const stopped = error instanceof WorkerError && error.cancelled;
        if (stopped) this.setStatus("cancelled", `Stopped: ${image.name} was not analysed.`);
        else this.setStatus("error", `Could not analyse ${image.name}: ${errorMessage(error)}`);
        this.ui.classes.replaceChildren();
        this.ui.concepts.replaceChildren();
        this.ui.neurons.replaceChildren(stopped ? el("p", { class: "hint" }, "Stopped.") : errorParagraph(error));
        this.analysis = null;
        this.ablation.setAnalysis(null);
      }
      throw error;
    }
  }

  private render(analysis: Analysis): void {
    const ui = this.ui;
    ui.classes.replaceChildren(
      ...analysis.classes.map((c) =>
        el(
          "li",
          { class: "score-row" },
          el("span", { class: "score-label" }, c.name),
          signedBar(c.probability, 1),
          el("span", { class: "num" }, `${(100 * c.probability).toFixed(1)}%`),
        ),
      ),
    );
    const largest = Math.max(1e-12, ...analysis.words.map(([, s]) => Math.abs(s)));
    ui.concepts.replaceChildren(
      ...analysis.words.map(([word, score]) =>
        el(
          "li",
          { class: "score-row" },
          wordLink(word, word, "score-label word-link"),
          signedBar(score, largest),
          el("span", { class: "num" }, formatValue(score, 3)),
        ),
      ),
    );
    if (analysis.words.length === 0)
      ui.concepts.append(
        el(
          "li",
          { class: "hint" },
          ...(this.bundle === null ? noBundleHint() : ["No neuron of the bundle's layers is significant on this image."]),
        ),
      );
    ui.neurons.replaceChildren(
      ...analysis.layers.map((layer) => {
        const list = el("ul", { class: "neuron-list" });
        for (const n of layer.neurons) list.append(this.neuronRow(layer.layer, n));
        const summary = `Layer ${layer.layer}: ${layer.significant_neurons.length} significant neuron${layer.significant_neurons.length === 1 ? "" : "s"}`;
        return el(
          "details",
          { class: "layer-neurons", open: layer.neurons.length > 0 && layer.neurons.length <= 12 },
          el("summary", {}, summary),
          list,
        );
      }),
    );
  }

  /** A significant neuron: its link, norm against threshold and words, the ablation controls,
   * a toggle for its distribution with this image's norm marked and one for its heads on it. */
  private neuronRow(layer: number, n: SignificantNeuron): HTMLLIElement {
    const words = el("span", { class: "neuron-words" });
    n.words.forEach(([w, c], i) => append(words, i ? ", " : "", wordLink(w, `${c < 0 ? "−" : ""}${w}`)));
    const panel = el("div", { class: "neuron-distribution", id: `distribution-${layer}-${n.neuron}`, hidden: true });
    const toggle = el(
      "button",
      {
        type: "button",
        class: "distribution-toggle",
        "aria-expanded": "false",
        "aria-controls": panel.id,
        "aria-label": `Distribution of layer ${layer}, neuron ${n.neuron}, with this image marked`,
      },
      "distribution",
    );
    toggle.addEventListener("click", () => void this.toggleDistribution(toggle, panel, layer, n.neuron));
    const [headsButton, headsPanel] = headsToggle(this.session, layer, n.neuron, () => this.shown?.name ?? "analysed");
    return el(
      "li",
      { class: "significant-neuron", "data-neuron": `${layer}:${n.neuron}` },
      el(
        "div",
        { class: "neuron-row" },
        ...this.ablation.rowControls(layer, n.neuron),
        neuronLink(layer, n.neuron),
        ` ${formatValue(n.norm, 2)} > ${formatValue(n.threshold, 2)}: `,
        words,
        " ",
        toggle,
        " ",
        headsButton,
      ),
      panel,
      headsPanel,
    );
  }

  /** Shows or hides a neuron's distribution (loaded once, with the analysed image's norm). */
  private async toggleDistribution(toggle: HTMLButtonElement, panel: HTMLElement, layer: number, neuron: number): Promise<void> {
    await toggleLoadedPanel(toggle, panel, "Loading its distribution…", async () => {
      const card = await this.session.call("neuron", { layer, neuron });
      return [distributionSection(card, `this image (${this.shown?.name ?? "analysed"})`)];
    });
  }

  /** How the analysis went, for the status line. */
  private static timingText(analysis: Analysis): string {
    const t = analysis.timings_ms;
    return `Analysed on ${analysis.backend === "webgpu" ? "WebGPU" : "the CPU"} in ${formatMs(t.total)} (decode ${formatMs(t.decode)}, forward ${formatMs(t.forward)}, lens ${formatMs(t.lens)}).`;
  }

  /** Segments the current concept on the analysed image and draws it; without a bundle (the
   * classes came from the model's text side) says what a bundle adds instead. */
  private async segment(): Promise<void> {
    const analysis = this.analysis;
    if (!analysis) return;
    const timing = ImageLab.timingText(analysis);
    if (this.bundle === null) {
      this.ui.segmentInfo.replaceChildren(...noBundleHint());
      this.setStatus("ready", `${timing} Classified without a bundle: no neuron concepts or heatmaps.` + (await this.memoryText()));
      return;
    }
    this.setStatus("loading", `${timing} Segmenting…`);
    try {
      const segmentation = await this.session.call("segment", { concept: this.concept, layers: null, topNeurons: null }, this.queuedCalls);
      this.segmentation = segmentation;
      this.redraw();
      const what =
        segmentation.kind === "text"
          ? `“${segmentation.concept}”`
          : `${segmentation.kind === "predicted" ? "the predicted class" : "the class"} “${segmentation.concept}”`;
      const neurons = segmentation.neurons.slice(0, 5).map((n) => neuronLink(n.layer, n.neuron));
      this.ui.segmentInfo.replaceChildren(
        `Heatmap of ${what}: the mean activation map of the ${segmentation.neurons.length} neurons whose r_n best matches it (mask: ${(100 * maskFraction(segmentation.heatmap)).toFixed(0)}% of the crop; ${formatMs(segmentation.ms)}). Strongest: `,
      );
      neurons.forEach((link, i) => append(this.ui.segmentInfo, i ? ", " : "", link));
      this.ui.result.dataset["concept"] = segmentation.concept;
      this.setStatus("ready", timing + (await this.memoryText()));
    } catch (error) {
      this.ui.segmentInfo.replaceChildren(errorParagraph(error));
      this.setStatus("error", `Segmentation failed: ${errorMessage(error)}`);
    }
  }

  private redraw(): void {
    const { segmentation, analysis } = this;
    if (!segmentation || !analysis) return;
    drawOverlay(this.ui.overlay, segmentation.heatmap, segmentation.size, analysis.geometry, { mask: this.ui.mask.checked });
  }
}
