// The Build view (#/build): a bundle made in this page from the visitor's images with the loaded
// model. The passes run in a worker of their own (the lab and the explorer stay usable); each
// stage shows a progress bar with images/s and time left; the build pauses, resumes and stops;
// the bundle opens in the explorer and downloads as a zip of exactly what `precompute` writes.

import { buildMemoryProblem, checkBuildForm, textPlanText } from "./build-settings";
import { WorkerClient, WorkerError } from "./client";
import { acceptDrops, el, errorMessage, parts } from "./dom";
import { droppedFiles, folderFiles, folderPicker, type PathedFile } from "./folder-files";
import { formatBytes, formatMs } from "./format";
import { SAMPLES } from "./lab-images";
import { checkBundleName, deleteKeptBundle, keepBundle, type KeptBundle, keptFiles, listKeptBundles, readKeptFile } from "./my-bundles";
import type { BackendChoice, BuildSourceImage, BuiltResponse, BundleInfo, TextSideRequest } from "./protocol";
import type { RouteOf } from "./routes";
import type { Session, Sources } from "./session";
import { LOCAL_BUNDLE } from "./settings";
import { MODEL_POOL, rememberedRate, rememberRate, textSideRequest } from "./text-side";
import type { View } from "./view";
import { unzipFiles, zipFiles } from "./zip";
import type { BuildOptions, BuildProgress } from "clip-lens-wasm";

/** The build view's elements, inside its section. */
function buildElements(section: HTMLElement) {
  const [form] = parts(section, HTMLFormElement, "build-form");
  const [name, images, folder] = parts(section, HTMLInputElement, "build-name", "build-images", "build-folder");
  const [layers, k, components, words] = parts(section, HTMLInputElement, "build-layers", "build-k", "build-components", "build-words");
  const [samples, openFolder] = parts(section, HTMLButtonElement, "build-samples", "build-open-folder");
  const [start, pause, stop, download] = parts(section, HTMLButtonElement, "build-start", "build-pause", "build-stop", "build-download");
  const [picked, status, drop] = parts(section, HTMLElement, "build-picked", "build-status", "build-drop");
  const [textPlan] = parts(section, HTMLElement, "build-text-plan");
  const [pool, templates] = parts(section, HTMLSelectElement, "build-pool", "build-templates");
  const [stages] = parts(section, HTMLOListElement, "build-stages");
  const [kept] = parts(section, HTMLUListElement, "my-bundles-list");
  const [importZip] = parts(section, HTMLInputElement, "my-bundles-import");
  const [keptStatus] = parts(section, HTMLElement, "my-bundles-status");
  // prettier-ignore
  return { form, name, images, folder, openFolder, drop, samples, picked, layers, k, components, pool, words, templates, textPlan,
    start, pause, stop, stages, status, download, kept, importZip, keptStatus };
}

/** The page's address with kept bundle `name` as its bundle (the rest of the query kept). */
export function keptHref(name: string): string {
  const url = new URL(location.href);
  url.searchParams.set("bundle", `${LOCAL_BUNDLE}${name}`);
  url.hash = "#/neuron";
  return url.href;
}

/** A name for the model in the bundle's manifest: the weights' file or directory name. */
function modelName(weights: Sources["weights"]): string {
  if (weights.kind === "bytes") return weights.name;
  return (
    weights.url
      .replace(/\/(manifest\.json)?$/, "")
      .split("/")
      .pop() ?? ""
  );
}

/** The text side's stages, as the engine names them (`TextStage::label`). */
const TEXT_STAGES = { words: "embedding words", classes: "embedding ImageNet classes" };

/** Files whose name says they are images (a folder holds other files too). */
const IMAGE_NAME = /\.(png|jpe?g|webp|gif)$/i;

/** A stage's bar and line, and when it started (for its rate and time left). */
interface StageRow {
  progress: HTMLProgressElement;
  text: HTMLElement;
  started: number;
  startDone: number;
}

/** The Build view (#/build?layers=..&k=..&components=..). */
export class BuildView implements View<RouteOf<"build">> {
  private readonly ui: ReturnType<typeof buildElements>;
  private images: BuildSourceImage[] = [];
  private client: WorkerClient | null = null;
  private paused = false;
  private stages = new Map<string, StageRow>();
  /** The kept name of the last bundle built here (Download bundle zips it). */
  private built: string | null = null;
  private modelLayers = 0;
  /** The running build's text side (its class templates turn classes/s into prompts/s). */
  private textSide: TextSideRequest | null = null;

  constructor(
    readonly section: HTMLElement,
    private readonly session: Session,
    /** Opens a kept bundle in the page's engine (and the explorer). */
    private readonly open: (kept: string) => Promise<void>,
    /** A test hook (`?simulate=build-device-lost`): the first build on WebGPU loses its device. */
    private simulateDeviceLoss = false,
  ) {
    this.ui = buildElements(section);
    this.wire();
  }

  setBundle(bundle: BundleInfo | null): void {
    this.modelLayers = this.session.ready?.visionLayers ?? 0;
    this.offerModelPool(this.session.ready?.textSide === true);
    if (bundle && this.ui.layers.value === "") this.ui.layers.value = bundle.layers.join(",");
  }

  /** Offers the model's own text side as the word pool where it has one (a build that computed
   * one makes it so at once), else picks the paper's 30k words. */
  private offerModelPool(hasTextSide: boolean): void {
    const modelPool = this.ui.pool.querySelector<HTMLOptionElement>(`option[value="${MODEL_POOL}"]`);
    if (modelPool) modelPool.disabled = !hasTextSide;
    if (!hasTextSide && this.ui.pool.value === MODEL_POOL) this.ui.pool.value = "30k";
  }

  async show(route: RouteOf<"build">): Promise<void> {
    const { layers, k, components } = route.preset;
    if (layers !== null) this.ui.layers.value = layers;
    if (k !== null) this.ui.k.value = k;
    if (components !== null) this.ui.components.value = components;
    await Promise.all([this.listKept(), this.showTextPlan()]);
  }

  /** "My bundles": each kept bundle with its size and date, a link that opens it, and Delete. */
  private async listKept(): Promise<void> {
    let kept: KeptBundle[];
    try {
      kept = await listKeptBundles();
    } catch (error) {
      this.ui.kept.replaceChildren(el("li", { class: "hint" }, errorMessage(error)));
      return;
    }
    if (kept.length === 0) this.ui.kept.replaceChildren(el("li", { class: "hint" }, "None yet."));
    else this.ui.kept.replaceChildren(...kept.map((bundle) => this.keptRow(bundle)));
  }

  private keptRow(bundle: KeptBundle): HTMLLIElement {
    const remove = el("button", { type: "button", class: "list-button" }, "Delete");
    remove.addEventListener("click", () => {
      deleteKeptBundle(bundle.name)
        .then(() => this.listKept())
        .catch((error: unknown) => this.say(`Could not delete ${bundle.name}: ${errorMessage(error)}`));
    });
    const date = new Date(bundle.saved).toLocaleString();
    const title = bundle.whole ? el("a", { href: keptHref(bundle.name) }, bundle.name) : el("span", {}, bundle.name);
    const state = bundle.whole ? "" : " (stopped: build it again to resume)";
    return el(
      "li",
      { "data-bundle": bundle.name, "data-whole": String(bundle.whole) },
      title,
      ` ${formatBytes(bundle.bytes)}, ${date}${state} `,
      remove,
    );
  }

  private wire(): void {
    const ui = this.ui;
    const pick = (input: HTMLInputElement) => () =>
      this.pick([...(input.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    ui.images.addEventListener("change", pick(ui.images));
    ui.folder.addEventListener("change", pick(ui.folder));
    acceptDrops(ui.drop, (transfer) => void this.pickFound(() => droppedFiles(transfer)));
    const openFolder = folderPicker();
    ui.openFolder.hidden = openFolder === null;
    if (openFolder) ui.openFolder.addEventListener("click", () => void this.pickFound(async () => folderFiles(await openFolder())));
    for (const control of [ui.pool, ui.templates, ui.words]) control.addEventListener("change", () => void this.showTextPlan());
    ui.samples.addEventListener("click", () => this.pickSamples());
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.build();
    });
    ui.pause.addEventListener("click", () => {
      this.paused = !this.paused;
      this.client?.controlBuild(this.paused ? "pause" : "resume");
      ui.pause.textContent = this.paused ? "Resume" : "Pause";
      this.say(this.paused ? "Paused." : "Building…");
    });
    ui.stop.addEventListener("click", () => this.client?.controlBuild("stop"));
    ui.download.addEventListener("click", () => void this.download());
    ui.importZip.addEventListener("change", () => void this.importZip());
  }

  /** Picked files (or a folder's): the images among them, by their path in the folder. */
  private pick(files: PathedFile[]): void {
    const images = files.filter(({ file }) => IMAGE_NAME.test(file.name));
    this.images = images.map(({ file, path }) => ({ name: path, size: file.size, file, url: null }));
    const skipped = files.length - images.length;
    this.ui.picked.textContent =
      `${images.length} images, ${formatBytes(images.reduce((sum, { file }) => sum + file.size, 0))}` +
      (skipped > 0 ? ` (${skipped} other files left out)` : "");
  }

  /** Files handed over by `find` (a drop, a folder opened), or what went wrong, in words. */
  private async pickFound(find: () => Promise<PathedFile[]>): Promise<void> {
    try {
      this.pick(await find());
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") return;
      this.ui.picked.textContent = `Could not read the folder: ${errorMessage(error)}`;
    }
  }

  /** The page's six samples (with the demo model: k 3, 8 components). */
  private pickSamples(): void {
    this.images = SAMPLES.map(({ file }) => ({ name: file, size: 0, file: null, url: new URL(`samples/${file}`, location.href).href }));
    this.ui.picked.textContent = `the page's ${SAMPLES.length} samples`;
  }

  /** The text side the form asks for (the chosen pool, or the file under Your words). */
  private textSideRequest(): Promise<TextSideRequest | null> {
    return textSideRequest(this.ui.pool.value, this.ui.words.files?.[0], Number(this.ui.templates.value));
  }

  /** Says, before a build, what completing the model's text side for the form's pool takes:
   * the prompts, and a time where this model's text tower was timed here before. */
  private async showTextPlan(): Promise<void> {
    const say = (text: string): void => {
      this.ui.textPlan.textContent = text;
    };
    try {
      const request = await this.textSideRequest();
      if (request === null) return say("Text side: the model's own, as it is; the build embeds no text.");
      const plan = await this.session.call("textSidePlan", request);
      const ready = this.session.ready;
      const rate = (what: "words" | number) => (ready ? rememberedRate(ready.weightsSha256, ready.backend, what) : null);
      say(textPlanText(plan, { words: rate("words"), classes: { 1: rate(1), 80: rate(80) } }));
    } catch (error) {
      say(errorMessage(error));
    }
  }

  /** Remembers the text tower's speed from a text-side stage's progress (classes count as their
   * templates' prompts). */
  private rememberTextRate(event: { stage: string; done: number }, row: StageRow): void {
    const what =
      event.stage === TEXT_STAGES.words ? "words" : event.stage === TEXT_STAGES.classes ? this.textSide?.classTemplates : undefined;
    const ready = this.session.ready;
    const seconds = (performance.now() - row.started) / 1000;
    if (what === undefined || ready === null || event.done <= row.startDone || seconds <= 0) return;
    rememberRate(ready.weightsSha256, ready.backend, what, (event.done - row.startDone) / seconds);
  }

  private say(text: string): void {
    this.ui.status.textContent = text;
  }

  /** The build the form asks for, checked: its name, options and text side; a build that
   * cannot fit in WebAssembly's memory is refused here, with settings that fit. */
  private async prepare(): Promise<{ name: string; options: BuildOptions; textSide: TextSideRequest | null }> {
    const ui = this.ui;
    const form = { layers: ui.layers.value, k: ui.k.value, components: ui.components.value };
    const settings = checkBuildForm(form, this.modelLayers, this.images.length);
    const name = checkBundleName(ui.name.value);
    const textSide = await this.textSideRequest();
    const options: BuildOptions = {
      layers: settings.layers,
      top_k: settings.topK,
      components: settings.components,
      words: textSide?.words ?? [],
      model_name: modelName(this.session.loadedFrom.sources.weights),
    };
    const [memory, { wasmBytes }] = await Promise.all([this.session.call("buildMemory", { options }), this.session.memory()]);
    const problem = buildMemoryProblem(memory, settings, wasmBytes ?? this.session.ready?.weightsBytes ?? 0);
    if (problem !== null) throw new Error(problem);
    return { name, options, textSide };
  }

  /** Starts a build in a worker of its own with the page's model; shows it, then opens it. */
  private async build(): Promise<void> {
    const ui = this.ui;
    let prepared;
    try {
      prepared = await this.prepare();
    } catch (error) {
      this.finish("error", errorMessage(error));
      return;
    }
    const { name, options, textSide } = prepared;
    this.textSide = textSide;
    this.built = null;
    this.stages.clear();
    ui.stages.replaceChildren();
    ui.download.hidden = true;
    this.setRunning(true);
    this.section.dataset["build"] = "running";
    document.querySelector("main")?.removeAttribute("data-build");
    const started = performance.now();
    try {
      const built = await this.runInWorker(name, options, textSide, this.session.loadedFrom.backend);
      this.built = name;
      const manifest = JSON.parse(new TextDecoder().decode(await readKeptFile(name, "manifest.json"))) as { images: string[] };
      const memory = built.wasmBytes === null ? "" : `, at most ${formatBytes(built.wasmBytes)} of WebAssembly memory`;
      const took = `${formatMs(performance.now() - started)}${memory}`;
      this.finish("done", `Built “${name}” over ${manifest.images.length} images in ${took}; opening it…`);
      ui.download.hidden = false;
      await this.listKept();
      await this.open(name);
      if (textSide !== null) this.offerModelPool(true);
      void this.showTextPlan();
      this.say(`Built “${name}” over ${manifest.images.length} images in ${took}: kept in this browser and open in the explorer.`);
      document.querySelector("main")?.setAttribute("data-build", "done");
    } catch (error) {
      const stopped = error instanceof WorkerError && /interrupted/.test(error.message);
      this.finish(
        stopped ? "stopped" : "error",
        stopped
          ? `Stopped after a checkpoint: build “${name}” again with the same images and settings to resume.`
          : `The build failed: ${errorMessage(error)}`,
      );
      await this.listKept();
    } finally {
      this.setRunning(false);
    }
  }

  /** Runs the build in a worker of its own (the page's model, loaded again) on `backend`; where
   * the GPU device is lost, runs it again on the CPU, which resumes from the lost run's last
   * checkpoint. */
  private async runInWorker(
    name: string,
    options: BuildOptions,
    textSide: TextSideRequest | null,
    backend: BackendChoice,
  ): Promise<BuiltResponse> {
    const client = new WorkerClient();
    this.client = client;
    const simulateDeviceLoss = this.simulateDeviceLoss;
    this.simulateDeviceLoss = false;
    let onGpu = false;
    try {
      this.say("Loading the model in the build's worker…");
      onGpu = (await client.load({ ...this.session.loadedFrom.sources, bundle: null, backend, simulateDeviceLoss })).backend === "webgpu";
      this.say("Building…");
      return await client.build(name, this.images, options, textSide, (event) => this.progress(event));
    } catch (error) {
      if (!(onGpu && error instanceof WorkerError && error.deviceLost)) throw error;
      client.terminate();
      this.progress({ note: `${error.message} The build goes on on the CPU, from its last checkpoint.` });
      return await this.runInWorker(name, options, textSide, "cpu");
    } finally {
      client.terminate();
      if (this.client === client) this.client = null;
    }
  }

  private setRunning(running: boolean): void {
    this.ui.start.disabled = running;
    this.ui.pause.hidden = this.ui.stop.hidden = !running;
    this.ui.pause.textContent = "Pause";
    this.paused = false;
  }

  private finish(state: "done" | "error" | "stopped", text: string): void {
    this.section.dataset["build"] = state;
    this.say(text);
  }

  /** A stage's bar: steps done of its total, rate and time left. */
  private progress(event: BuildProgress): void {
    if ("note" in event) {
      this.ui.stages.append(el("li", { class: "hint" }, event.note));
      return;
    }
    let row = this.stages.get(event.stage);
    if (!row) {
      const progress = el("progress", { max: Math.max(1, event.total), value: 0, "aria-label": event.stage });
      const text = el("span", { class: "progress-text" });
      this.ui.stages.append(el("li", { "data-stage": event.stage }, el("span", { class: "download-name" }, event.stage), progress, text));
      row = { progress, text, started: performance.now(), startDone: event.done };
      this.stages.set(event.stage, row);
    }
    this.rememberTextRate(event, row);
    row.progress.max = Math.max(1, event.total);
    row.progress.value = event.done;
    const seconds = (performance.now() - row.started) / 1000;
    const rate = seconds > 0 ? (event.done - row.startDone) / seconds : 0;
    const left = rate > 0 && event.done < event.total ? `, ${formatMs((1000 * (event.total - event.done)) / rate)} left` : "";
    row.text.textContent = `${event.done} of ${event.total}${rate > 0 ? ` (${rate.toFixed(1)}/s${left})` : ""}`;
  }

  /** Keeps a bundle's zip (what Download bundle or a zip of a `precompute` folder holds) under
   * the zip's name, after checking it holds a bundle. */
  private async importZip(): Promise<void> {
    const file = this.ui.importZip.files?.[0];
    if (!file) return;
    const say = (text: string) => (this.ui.keptStatus.textContent = text);
    try {
      const name = checkBundleName(file.name.replace(/\.zip$/i, ""));
      const files = await unzipFiles(new Uint8Array(await file.arrayBuffer()));
      if (!files["manifest.json"] || !files["lens.safetensors"])
        throw new Error("it holds no manifest.json and lens.safetensors: is it a bundle's zip?");
      await keepBundle(name, files);
      say(`Imported “${name}”.`);
    } catch (error) {
      say(`Could not import ${file.name}: ${errorMessage(error)}`);
    }
    this.ui.importZip.value = "";
    await this.listKept();
  }

  /** The bundle as one zip of exactly what `precompute` writes. */
  private async download(): Promise<void> {
    if (this.built === null) return;
    try {
      const link = el("a", { href: URL.createObjectURL(zipFiles(await keptFiles(this.built))), download: `${this.built}.zip` });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    } catch (error) {
      this.say(`Could not make the zip: ${errorMessage(error)}`);
    }
  }
}
