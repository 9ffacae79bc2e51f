// Small DOM helpers shared by the page's views: element builders, lookups and links.

import { neuronHref, wordHref } from "./routes";

type Child = Node | string | null | undefined | false;
type Props = Record<string, string | number | boolean | null | undefined>;

/** `<tag>` with attributes (`class`, `data-*`, `aria-*`, ...; false/null/undefined left out)
 * and children (strings become text). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, ...children);
  return element;
}

/** An SVG element with attributes and children. */
export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  ...children: (Node | string)[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/** Appends children, skipping empty ones. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** The element with id `id`, which must be a `type`. */
export function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`The page lacks the element #${id}.`);
  return found;
}

/** The element with id `id` inside `root` (a view's section), which must be a `type`. */
export function part<T extends HTMLElement>(root: HTMLElement, id: string, type: { new (): T; prototype: T }): T {
  const found = root.querySelector(`[id="${id}"]`);
  if (!(found instanceof type)) throw new Error(`The page lacks the element #${id} in #${root.id}.`);
  return found;
}

/**
 * The elements with ids `ids` inside `root`, in order, each of which must be a `type`: a view
 * looks its elements up once, grouped by type, so that a missing one fails at start-up.
 */
export function parts<T extends HTMLElement, const Ids extends readonly string[]>(
  root: HTMLElement,
  type: { new (): T; prototype: T },
  ...ids: Ids
): { [K in keyof Ids]: T } {
  return ids.map((id) => part(root, id, type)) as { [K in keyof Ids]: T };
}

/** A link to a neuron's card, "L9/N1234"; its accessible name spells it out after the visible
 * text ("L9/N1234, layer 9, neuron 1234": a name that holds what is shown, for voice control). */
export function neuronLink(layer: number, neuron: number, text = `L${layer}/N${neuron}`): HTMLAnchorElement {
  const spelled = `layer ${layer}, neuron ${neuron}`;
  const label = text.toLowerCase() === spelled ? null : `${text}, ${spelled}`;
  return el("a", { href: neuronHref(layer, neuron), class: "neuron-link", "aria-label": label }, text);
}

/** A link to a word's page (the neurons whose decomposition holds it). */
export function wordLink(word: string, text = word, className = "word-link"): HTMLAnchorElement {
  return el("a", { href: wordHref(word), class: className, title: `Neurons whose words include “${word}”` }, text);
}

/** A signed value's bar: width relative to `largest`, colour by sign. */
export function signedBar(value: number, largest: number): HTMLSpanElement {
  const bar = el("span", { class: `bar ${value >= 0 ? "positive" : "negative"}`, "aria-hidden": "true" });
  bar.style.width = `${Math.min(100, (100 * Math.abs(value)) / Math.max(largest, 1e-12))}%`;
  return bar;
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `<p class="error" role="alert">`. */
export function errorParagraph(error: unknown): HTMLParagraphElement {
  return el("p", { class: "inline-error", role: "alert" }, errorMessage(error));
}

/** Whether a file is an image the engine decodes (by type, else by extension). */
export function isImageFile(file: File): boolean {
  return file.type.startsWith("image/") || /\.(png|jpe?g|webp|gif)$/i.test(file.name);
}

/** Makes `zone` take drops: the `dragging` class while they hover, `onDrop` with what is dropped. */
export function acceptDrops(zone: HTMLElement, onDrop: (transfer: DataTransfer) => void): void {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer) onDrop(event.dataTransfer);
  });
}

/** Makes `zone` take dropped files (`onFiles` on drop). */
export function acceptDroppedFiles(zone: HTMLElement, onFiles: (files: File[]) => void): void {
  acceptDrops(zone, (transfer) => onFiles([...transfer.files]));
}

/** Fills `section` with `loading` text (`data-status="loading"`), then with what `render`
 * makes of `work`'s result ("ready"), or with its error ("error"). Resolves to the result,
 * or null after an error. */
export async function fillSection<T>(
  section: HTMLElement,
  loading: string,
  work: () => Promise<T>,
  render: (value: T) => Node[],
): Promise<T | null> {
  section.dataset["status"] = "loading";
  section.replaceChildren(el("p", {}, loading));
  try {
    const value = await work();
    section.replaceChildren(...render(value));
    section.dataset["status"] = "ready";
    return value;
  } catch (error) {
    section.replaceChildren(errorParagraph(error));
    section.dataset["status"] = "error";
    return null;
  }
}

/** A disclosure whose panel loads once: `toggle` (aria-expanded) shows or hides `panel`; the first
 * opening fills it with `load`'s nodes (`loading` meanwhile; an error as a message). */
export async function toggleLoadedPanel(
  toggle: HTMLButtonElement,
  panel: HTMLElement,
  loading: string,
  load: () => Promise<Node[]>,
): Promise<void> {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  panel.hidden = !open;
  if (!open || panel.dataset["status"] === "ready" || panel.dataset["status"] === "loading") return;
  await fillSection(panel, loading, load, (nodes) => nodes);
}
