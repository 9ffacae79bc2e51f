// The model panel (#loading-panel): where the weights and the bundle come from, the model's
// facts, each download's progress, and the forms that open another model or bundle (addresses,
// which reload the page, or local files, which restart the engine).

import { el, parts } from "./dom";
import { formatBytes, formatMs } from "./format";
import type { ProgressEvent, ReadyResponse } from "./protocol";
import type { Sources } from "./session";
import { OPENAI_VIT_B_32, settingsHref, type Settings } from "./settings";
import { sourceText } from "./sources";

/** The panel's elements, inside its section. */
function panelElements(section: HTMLElement) {
  const [weightsSource, bundleSource] = parts(section, HTMLElement, "weights-source", "bundle-source");
  const [modelFacts, modelNote] = parts(section, HTMLElement, "model-facts", "model-note");
  const [downloads] = parts(section, HTMLUListElement, "downloads");
  const [downloadsPanel] = parts(section, HTMLDetailsElement, "downloads-panel");
  const [urlForm, fileForm] = parts(section, HTMLFormElement, "url-form", "file-form");
  const [weightsUrl, configUrl, bundleUrl] = parts(section, HTMLInputElement, "weights-url", "config-url", "bundle-url");
  const [weightsFile, bundleFiles, configFile] = parts(section, HTMLInputElement, "weights-file", "bundle-files", "config-file");
  const [presetOpenAi] = parts(section, HTMLButtonElement, "preset-openai");
  // prettier-ignore
  return { weightsSource, bundleSource, modelFacts, modelNote, downloads, downloadsPanel, urlForm, weightsUrl, configUrl, bundleUrl,
    presetOpenAi, fileForm, weightsFile, bundleFiles, configFile };
}

export class ModelPanel {
  private readonly ui: ReturnType<typeof panelElements>;
  private readonly progressRows = new Map<string, { progress: HTMLProgressElement; text: HTMLElement }>();

  /** `onFiles` gets the files picked in the file form or dropped on it. */
  constructor(section: HTMLElement, settings: Settings, onFiles: (files: File[]) => void) {
    const ui = panelElements(section);
    this.ui = ui;
    ui.weightsUrl.value = settings.demo ? "" : settings.weightsUrl;
    ui.configUrl.value = settings.demo || settings.configUrl === null ? "" : settings.configUrl;
    ui.bundleUrl.value = settings.demo || settings.bundleUrl === null ? "" : settings.bundleUrl;
    ui.presetOpenAi.addEventListener("click", () => {
      ui.weightsUrl.value = OPENAI_VIT_B_32.weights;
      ui.configUrl.value = OPENAI_VIT_B_32.config;
      ui.bundleUrl.focus();
    });
    ui.urlForm.addEventListener("submit", (event) => {
      event.preventDefault();
      location.href = settingsHref(ui.weightsUrl.value, ui.configUrl.value, ui.bundleUrl.value);
    });
    ui.fileForm.addEventListener("submit", (event) => {
      event.preventDefault();
      onFiles([...(ui.weightsFile.files ?? []), ...(ui.bundleFiles.files ?? []), ...(ui.configFile.files ?? [])]);
    });
    ui.fileForm.addEventListener("dragover", (event) => event.preventDefault());
    ui.fileForm.addEventListener("drop", (event) => {
      event.preventDefault();
      onFiles([...(event.dataTransfer?.files ?? [])]);
    });
  }

  /** Names the sources; `note`: whether to show the note on the demo model. */
  showSources(sources: Sources, note: boolean): void {
    this.ui.weightsSource.textContent = sourceText(sources.weights);
    this.ui.bundleSource.textContent = sourceText(sources.bundle);
    this.ui.modelNote.hidden = !note;
  }

  /** A new load: the downloads list starts empty, open. */
  resetDownloads(): void {
    this.progressRows.clear();
    this.ui.downloads.replaceChildren();
    this.ui.downloadsPanel.open = true;
  }

  /** The ready engine's model and bundle; the downloads list closes. */
  showReady(ready: ReadyResponse): void {
    const bundle = ready.bundle;
    this.ui.modelFacts.textContent =
      `${ready.imageSize}-pixel input, ${formatBytes(ready.weightsBytes)} of weights, built in ${formatMs(ready.initMs)}` +
      (bundle
        ? `; bundle of ${bundle.modelName}: layers ${bundle.layers.join(", ")}, ${bundle.neurons} neurons each, ${bundle.words} words, ${bundle.classes.length} classes, ${bundle.images} images`
        : "");
    this.ui.downloadsPanel.open = false;
  }

  /** A download's row: its progress bar and what it says. */
  showProgress(event: ProgressEvent): void {
    let row = this.progressRows.get(event.file);
    if (!row) {
      const progress = el("progress", { max: 1, value: 0, "aria-label": `${event.file} download` });
      const text = el("span", { class: "progress-text" });
      this.ui.downloads.append(el("li", { "data-file": event.file }, el("span", { class: "download-name" }, event.file), progress, text));
      row = { progress, text };
      this.progressRows.set(event.file, row);
    }
    const { progress, text } = row;
    const seconds = event.elapsedMs / 1000;
    const speed = seconds > 0 && event.source === "network" ? ` at ${formatBytes(event.loaded / seconds)}/s` : "";
    if (event.total !== null && event.total > 0) {
      progress.max = event.total;
      progress.value = event.loaded;
    } else if (event.done) {
      progress.max = 1;
      progress.value = 1;
    } else {
      progress.removeAttribute("value"); // indeterminate: the size is unknown
    }
    const amount =
      event.total !== null
        ? `${formatBytes(event.loaded)} of ${formatBytes(event.total)} (${Math.floor((100 * event.loaded) / Math.max(1, event.total))}%)`
        : `${formatBytes(event.loaded)} (size unknown)`;
    const from = { network: "downloaded", cache: "from the browser's cache", local: "local file" }[event.source];
    text.textContent = event.done
      ? `${formatBytes(event.loaded)}, ${from}${event.source === "network" ? ` in ${formatMs(event.elapsedMs)}` : ""}${speed}`
      : `${amount}${speed}`;
    row.progress.closest("li")?.setAttribute("data-source", event.source);
  }
}
