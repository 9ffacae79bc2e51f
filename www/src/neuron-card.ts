// <clip-lens-neuron bundle="models/tiny/bundle" layer="1" neuron="4"></clip-lens-neuron>
//
// An embeddable card for one neuron of a bundle, for blog posts and other pages. It loads only
// the bundle (no model, no worker): manifest.json, then by HTTP range requests only this
// neuron's rows of lens.safetensors (its direction, norms and decomposition; from format 5 its
// heads and its neighbours, with each neighbour's direction and words) plus the class embeddings
// for its nearest ImageNet classes, and the thumbnails of its top images.
// Attributes: `bundle` (URL of the bundle directory), `layer`, `neuron`, `words` (how many
// word bars show before "all words", default 16), `images` (thumbnails shown, default 8).

import type { HeadGrid, Neighbour } from "clip-lens-wasm";
import { headGridOf, headGridTable } from "./head-grid";
import { RemoteSafetensors } from "./safetensors";

/** The fields of the manifest's `model_config` (a Hugging Face CLIPConfig) the card reads. */
interface ModelConfig {
  vision_config?: { num_hidden_layers?: number; num_attention_heads?: number };
}

/** The fields of manifest.json the card reads. */
interface Manifest {
  format_version: number;
  model_name: string;
  layers: number[];
  neurons: number;
  embed_dim: number;
  top_k: number;
  components: number;
  words: string[];
  classes: string[];
  images: string[];
  top_images: Record<string, number[][]>;
  thumbnail_size?: number;
  model_config?: ModelConfig;
}

/** The card's data for one neuron. */
export interface NeuronCardData {
  layer: number;
  neuron: number;
  model: string;
  /** Signed words, largest |coefficient| first. */
  words: [string, number][];
  /** The nearest ImageNet classes of r_n: name and cosine. */
  classes: [string, number][];
  /** The significance threshold (k-th largest centred norm). */
  threshold: number;
  /** Thumbnail URLs (or image names when the bundle has no thumbnails) of its top images. */
  images: { id: number; name: string; thumbnail: string | null }[];
  /** Through which later heads its effect flows along r_n (null before format 5). */
  heads: HeadGrid | null;
  /** The layer's neurons nearest by the cosine of r_n, nearest first (null before format 5). */
  neighbours: Neighbour[] | null;
}

/** Bundle formats this card reads (3 adds per-neuron histograms, which it does not need; 5 the
 * heads and neighbours it shows). */
const SUPPORTED_FORMATS = [2, 3, 4, 5];
/** Words shown for each neighbour (as the engine's cards). */
const NEIGHBOUR_WORDS = 3;
/** transformers' CLIPVisionConfig defaults (ViT-B/32's), for keys a model_config leaves out. */
const DEFAULT_VISION = { num_hidden_layers: 12, num_attention_heads: 12 };
const cache = new Map<string, Promise<{ manifest: Manifest; tensors: RemoteSafetensors }>>();

function bundleFiles(base: string): Promise<{ manifest: Manifest; tensors: RemoteSafetensors }> {
  const root = base.endsWith("/") ? base : `${base}/`;
  let entry = cache.get(root);
  if (!entry) {
    entry = (async () => {
      let response: Response;
      try {
        response = await fetch(`${root}manifest.json`);
      } catch (error) {
        throw new Error(`Cannot reach the bundle at ${root}: ${error instanceof Error ? error.message : String(error)}.`);
      }
      if (!response.ok) throw new Error(`${root}manifest.json answered ${response.status}: is this a bundle directory?`);
      const manifest = (await response.json()) as Manifest;
      if (!SUPPORTED_FORMATS.includes(manifest.format_version)) {
        throw new Error(
          `The bundle has format version ${manifest.format_version}; this card reads versions ${SUPPORTED_FORMATS.join(", ")}.`,
        );
      }
      return { manifest, tensors: await RemoteSafetensors.open(`${root}lens.safetensors`) };
    })();
    cache.set(root, entry);
    entry.catch(() => cache.delete(root));
  }
  return entry;
}

/** Loads what the card shows for `neuron` of `layer` from the bundle at `base`. */
export async function loadNeuronCard(base: string, layer: number, neuron: number): Promise<NeuronCardData> {
  const { manifest, tensors } = await bundleFiles(base);
  if (!manifest.layers.includes(layer)) throw new Error(`Layer ${layer} is not in the bundle (it has ${manifest.layers.join(", ")}).`);
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= manifest.neurons) {
    throw new Error(`Neuron ${neuron} is out of range: layer ${layer} has ${manifest.neurons} neurons.`);
  }
  const directionRow = tensors.rows(`layer.${layer}.direction`, neuron);
  const [index, coef, norms, direction, classes, heads, neighbours] = await Promise.all([
    tensors.rows(`layer.${layer}.decomposition.index`, neuron),
    tensors.rows(`layer.${layer}.decomposition.coef`, neuron),
    tensors.rows(`layer.${layer}.norms`, neuron),
    directionRow,
    tensors.all("classes.embeds"),
    headsOf(manifest, tensors, layer, neuron),
    neighboursOf(manifest, tensors, layer, neuron, directionRow),
  ]);
  const words: [string, number][] = [];
  index.forEach((i, j) => {
    if (i >= 0) words.push([manifest.words[i] ?? `#${i}`, coef[j] ?? 0]);
  });
  const d = manifest.embed_dim;
  const cosines = manifest.classes.map((name, c): [string, number] => {
    let dot = 0;
    for (let j = 0; j < d; j++) dot += (direction[j] ?? 0) * (classes[c * d + j] ?? 0);
    return [name, dot];
  });
  cosines.sort((a, b) => b[1] - a[1]);
  const root = base.endsWith("/") ? base : `${base}/`;
  const ids = manifest.top_images[String(layer)]?.[neuron] ?? [];
  return {
    layer,
    neuron,
    model: manifest.model_name,
    words,
    classes: cosines.slice(0, 5),
    threshold: norms[0] ?? 0,
    images: ids.map((id) => ({
      id,
      name: manifest.images[id] ?? `#${id}`,
      thumbnail: manifest.thumbnail_size ? `${root}thumbnails/${id}.jpg` : null,
    })),
    heads,
    neighbours,
  };
}

/** The words of a decomposition's row of indices, in its order (-1 pads, left out). */
function wordsOf(manifest: Manifest, index: ArrayLike<number>): string[] {
  return Array.from(index)
    .filter((i) => i >= 0)
    .map((i) => manifest.words[i] ?? `#${i}`);
}

/** The layers after `layer` and the heads per layer of the bundle's model (its manifest's
 * model_config), the columns of `layer.L.heads`. */
function laterHeads(manifest: Manifest, layer: number): { layers: number[]; heads: number } {
  const vision = { ...DEFAULT_VISION, ...manifest.model_config?.vision_config };
  const layers = Array.from({ length: Math.max(0, vision.num_hidden_layers - layer - 1) }, (_, i) => layer + 1 + i);
  return { layers, heads: vision.num_attention_heads };
}

/** The neuron's heads grid from its row of `layer.L.heads`, or null when the bundle has none
 * (before format 5). The model's last layer has no later heads: nothing is read. */
async function headsOf(manifest: Manifest, tensors: RemoteSafetensors, layer: number, neuron: number): Promise<HeadGrid | null> {
  const name = `layer.${layer}.heads`;
  if (!tensors.has(name)) return null;
  const { layers, heads } = laterHeads(manifest, layer);
  const columns = tensors.tensors[name]?.shape[1];
  if (columns !== layers.length * heads)
    throw new Error(
      `The bundle's ${name} has ${columns} columns, not the ${layers.length} later layers x ${heads} heads of its model_config.`,
    );
  return headGridOf(columns === 0 ? [] : await tensors.rows(name, neuron), layers, heads);
}

/** The neuron's neighbours from its row of `layer.L.neighbours` (-1 pads), each with the cosine
 * of its direction and `direction` and its first words; null when the bundle has none (before
 * format 5). */
async function neighboursOf(
  manifest: Manifest,
  tensors: RemoteSafetensors,
  layer: number,
  neuron: number,
  direction: Promise<ArrayLike<number>>,
): Promise<Neighbour[] | null> {
  const name = `layer.${layer}.neighbours`;
  if (!tensors.has(name)) return null;
  const ids = Array.from(await tensors.rows(name, neuron)).filter((id) => id >= 0 && id < manifest.neurons);
  const own = await direction;
  return Promise.all(
    ids.map(async (other): Promise<Neighbour> => {
      const [index, theirs] = await Promise.all([
        tensors.rows(`layer.${layer}.decomposition.index`, other),
        tensors.rows(`layer.${layer}.direction`, other),
      ]);
      return { neuron: other, cosine: cosine(own, theirs), words: wordsOf(manifest, index).slice(0, NEIGHBOUR_WORDS) };
    }),
  );
}

/** The cosine of two vectors (0 when either is zero). */
function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let [dot, aa, bb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i] ?? 0, b[i] ?? 0];
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa > 0 && bb > 0 ? dot / Math.sqrt(aa * bb) : 0;
}

const STYLE = `
:host { display: block; font: 14px/1.4 system-ui, sans-serif; border: 1px solid #ccc; border-radius: 8px; padding: 12px; max-width: 32rem; color: #111; background: #fff; }
h3 { margin: 0 0 8px; font-size: 16px; }
.meta { color: #555; font-size: 12px; margin-bottom: 8px; }
ol { list-style: none; padding: 0; margin: 0 0 8px; }
li { display: grid; grid-template-columns: 9rem 1fr 4rem; gap: 6px; align-items: center; }
.bar { height: 10px; border-radius: 3px; }
.pos { background: #2b7bb9; } .neg { background: #c0392b; }
.num { text-align: right; font-variant-numeric: tabular-nums; font-size: 12px; }
.images { display: flex; flex-wrap: wrap; gap: 4px; }
.images img { width: 56px; height: 56px; object-fit: cover; border-radius: 4px; }
button { font: inherit; }
.error { color: #b00020; }
.head-grid { margin: 8px 0 0; }
.table-scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: #555; margin-bottom: 4px; }
th, td { padding: 2px 5px; text-align: right; white-space: nowrap; }
th[scope="row"] { text-align: left; font-weight: 600; }
.head-cell.positive { background: color-mix(in srgb, #2b7bb9 calc(var(--heat, 0) * 55%), transparent); }
.head-cell.negative { background: color-mix(in srgb, #c0392b calc(var(--heat, 0) * 55%), transparent); }
.hint, .head-largest, .neighbours { color: #555; font-size: 12px; margin: 6px 0 0; }
`;

function paragraph(text: string): HTMLParagraphElement {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}

/** "Neighbours: 12 (0.87: dog, cat, fur), 40 (...)": the nearest neurons of the layer with their
 * cosines and first words. */
function neighboursParagraph(neighbours: Neighbour[]): HTMLParagraphElement {
  const listed = neighbours.map((n) => `${n.neuron} (${n.cosine.toFixed(2)}${n.words.length ? `: ${n.words.join(", ")}` : ""})`);
  const p = paragraph(`Neighbours: ${listed.join(", ") || "none"}`);
  p.className = "neighbours";
  return p;
}

/** The custom element. */
export class ClipLensNeuron extends HTMLElement {
  static observedAttributes = ["bundle", "layer", "neuron", "words", "images"];
  private readonly root = this.attachShadow({ mode: "open" });
  private generation = 0;

  constructor() {
    super();
    // A constructed stylesheet: allowed under a Content-Security-Policy without 'unsafe-inline'.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    this.root.adoptedStyleSheets = [sheet];
  }

  connectedCallback(): void {
    void this.render();
  }

  attributeChangedCallback(): void {
    if (this.isConnected) void this.render();
  }

  private async render(): Promise<void> {
    const generation = ++this.generation;
    const bundle = this.getAttribute("bundle") ?? "";
    const layer = Number(this.getAttribute("layer"));
    const neuron = Number(this.getAttribute("neuron"));
    const shownWords = Number(this.getAttribute("words") ?? 16) || 16;
    const shownImages = Number(this.getAttribute("images") ?? 8) || 8;
    this.setAttribute("aria-busy", "true");
    this.root.replaceChildren(paragraph(`Loading neuron ${neuron} of layer ${layer}…`));
    try {
      if (!bundle) throw new Error('The card needs a bundle="URL" attribute.');
      const data = await loadNeuronCard(bundle, layer, neuron);
      if (generation === this.generation) this.show(data, shownWords, shownImages);
    } catch (error) {
      if (generation !== this.generation) return;
      const message = paragraph(error instanceof Error ? error.message : String(error));
      message.className = "error";
      message.setAttribute("role", "alert");
      this.root.replaceChildren(message);
      this.dataset["status"] = "error";
    } finally {
      if (generation === this.generation) this.removeAttribute("aria-busy");
    }
  }

  private show(data: NeuronCardData, shownWords: number, shownImages: number): void {
    const largest = Math.max(1e-12, ...data.words.map(([, c]) => Math.abs(c)));
    const card = document.createElement("article");
    const title = document.createElement("h3");
    title.textContent = `Layer ${data.layer}, neuron ${data.neuron}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${data.model} · threshold ${data.threshold.toFixed(3)} · nearest classes: ${data.classes.map(([n, c]) => `${n} (${c.toFixed(2)})`).join(", ")}`;
    const list = document.createElement("ol");
    list.setAttribute("aria-label", "Words of its decomposition, signed");
    const addWords = (words: [string, number][]): void => {
      for (const [word, c] of words) {
        const item = document.createElement("li");
        const name = document.createElement("span");
        name.textContent = word;
        const bar = document.createElement("span");
        bar.className = `bar ${c >= 0 ? "pos" : "neg"}`;
        bar.style.width = `${(100 * Math.abs(c)) / largest}%`;
        const value = document.createElement("span");
        value.className = "num";
        value.textContent = `${c >= 0 ? "+" : "−"}${Math.abs(c).toFixed(3)}`;
        item.append(name, bar, value);
        list.append(item);
      }
    };
    addWords(data.words.slice(0, shownWords));
    card.append(title, meta, list);
    if (data.words.length > shownWords) {
      const more = document.createElement("button");
      more.type = "button";
      more.textContent = `All ${data.words.length} words`;
      more.addEventListener("click", () => {
        addWords(data.words.slice(shownWords));
        more.remove();
      });
      card.append(more);
    }
    const images = document.createElement("div");
    images.className = "images";
    for (const image of data.images.slice(0, shownImages)) {
      if (image.thumbnail) {
        const img = document.createElement("img");
        img.src = image.thumbnail;
        img.alt = `Top image ${image.name}`;
        img.loading = "lazy";
        images.append(img);
      }
    }
    card.append(images);
    if (data.heads)
      card.append(
        headGridTable(data.heads, `Through which heads after layer ${data.layer} its effect along r_n flows (mean over its top images)`),
      );
    if (data.neighbours) card.append(neighboursParagraph(data.neighbours));
    this.root.replaceChildren(card);
    this.dataset["status"] = "ready";
  }
}

if (!customElements.get("clip-lens-neuron")) customElements.define("clip-lens-neuron", ClipLensNeuron);
