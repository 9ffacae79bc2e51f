// The Build view's settings as typed (or preset by its address), checked and turned into the
// engine's BuildOptions, the memory a build needs against what WebAssembly holds, and what the
// view says of the text side; every problem is said in words. Pure: the unit tests run it in Node.

import { formatBytes } from "./format";

/** The settings as the form holds them. */
export interface BuildForm {
  layers: string;
  k: string;
  components: string;
}

/** The checked settings. */
export interface BuildSettings {
  layers: number[];
  topK: number;
  components: number;
}

/** A whole number from `min` to `max`, or a message naming the setting. */
function count(name: string, text: string, min: number, max: number): number {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isInteger(value) || value < min || value > max)
    throw new Error(`${name} must be a whole number from ${min} to ${max}, not “${text}”.`);
  return value;
}

/** Checks the form against the model (`modelLayers` layers) and the images picked. */
export function checkBuildForm(form: BuildForm, modelLayers: number, images: number): BuildSettings {
  const parts = form.layers.split(/[\s,]+/).filter((part) => part !== "");
  if (parts.length === 0) throw new Error("Layers: give at least one layer, e.g. 8,9,10.");
  const layers = parts.map((part) => count("Each layer", part, 0, modelLayers - 1));
  const repeated = layers.find((layer, i) => layers.indexOf(layer) !== i);
  if (repeated !== undefined) throw new Error(`Layers: layer ${repeated} is given twice.`);
  if (images === 0) throw new Error("Images: choose some images, a folder, or the page's samples.");
  const topK = count("Top images (k)", form.k, 1, 10_000);
  if (topK > images)
    throw new Error(`Top images (k) is ${topK}, but there are only ${images} images: choose k of at most ${images}, or more images.`);
  const components = count("Components", form.components, 1, 512);
  return { layers, topK, components };
}

/** What completing the model's text side takes (the engine's `TextSidePlan`). */
export interface TextPlan {
  words: number;
  classes: number;
  templates: number;
  prompts: number;
}

/** The text tower's speeds measured here for a model: words per second, and ImageNet classes per
 * second by templates per class (a class's templates are one forward). */
export interface TextRates {
  words: number | null;
  classes: Record<number, number | null>;
}

/** The Build view's line about the text side, said before a build: what it will embed and, when
 * this model's text tower was timed here before (`rates`), how long that takes; with the paper's
 * 80 templates, what the quick setting (1) would cost instead. */
export function textPlanText(plan: TextPlan, rates: TextRates): string {
  if (plan.prompts === 0) return "Text side: kept for this model; the build embeds no text.";
  const number = (n: number) => n.toLocaleString("en-US");
  const classes = plan.classes > 0 ? ` and ${number(plan.classes)} classes × ${plan.templates} templates` : "";
  const what = `${number(plan.words)} words${classes}: ${number(plan.prompts)} prompts through the text tower`;
  /** The time to embed the words and the classes with `templates`, where both were timed. */
  const time = (templates: number): string | null => {
    const [words, perClass] = [rates.words, rates.classes[templates] ?? null];
    if ((plan.words > 0 && !words) || (plan.classes > 0 && !perClass)) return null;
    return formatDuration((words ? plan.words / words : 0) + (perClass ? plan.classes / perClass : 0));
  };
  const took = time(plan.templates);
  const quick = plan.classes > 0 && plan.templates > 1 ? plan.words + plan.classes : null;
  const quickTook = time(1);
  const hint =
    quick === null
      ? ""
      : ` For a quicker first bundle, choose Class templates 1: ${number(quick)} prompts` + (quickTook ? `, about ${quickTook}.` : ".");
  const when = took ? `, about ${took} here` : ", timed on its bars from their first batch";
  return `The build first computes this model's text side, then keeps it in this browser: ${what}${when}.${hint}`;
}

/** Seconds in words: "45 s", "12 min", "1 h 40 min". */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** What a build holds beside the model at its peak (the engine's `BuildMemory`), in bytes. */
export interface BuildMemory {
  per_k: number;
  fixed: number;
  total: number;
}

/** The most a WebAssembly module's memory holds (wasm32: 4 GiB). */
export const WASM_MEMORY_LIMIT = 4 * 2 ** 30;

/** Null when a build needing `memory` fits beside a model of `modelBytes` in `limit`; else why
 * not, with settings that fit: the largest k at these layers, and the most layers at this k. */
export function buildMemoryProblem(
  memory: BuildMemory,
  settings: BuildSettings,
  modelBytes: number,
  limit = WASM_MEMORY_LIMIT,
): string | null {
  const budget = limit - modelBytes;
  if (memory.total <= budget) return null;
  const asked = settings.layers.length;
  // Both parts grow with the layers: per layer, the same share.
  const largestK = (layers: number) => Math.floor((budget - (memory.fixed * layers) / asked) / ((memory.per_k * layers) / asked));
  const fits: string[] = [];
  if (largestK(asked) >= 1) fits.push(`Top images (k) ${Math.min(largestK(asked), settings.topK - 1)}`);
  const layers = [...Array(asked - 1).keys()].map((i) => asked - 1 - i).find((count) => largestK(count) >= settings.topK);
  if (layers !== undefined) fits.push(`Layers ${settings.layers.slice(-layers).join(",")} with k ${settings.topK}`);
  const need = `This build would hold about ${formatBytes(memory.total)} beside the model's ${formatBytes(modelBytes)}`;
  const room = `more than the ${formatBytes(limit)} WebAssembly can hold`;
  const advice =
    fits.length > 0 ? `Settings that fit: ${fits.join(", or ")}.` : "No k fits: use fewer layers, or the CLI (clip-lens precompute).";
  return `${need}: ${room}. ${advice}`;
}
