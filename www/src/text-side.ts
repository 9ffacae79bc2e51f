// The Build view's text side: the word pools it offers (the paper's two, shipped with the site
// under words/; data/words/README.md says where they come from), the request for the model's
// text side a build completes first, and the text tower's speed remembered per model and
// backend, for the time the view shows before a build.

import type { TextSideRequest } from "./protocol";

/** The shipped pools by the Word pool control's value: the file on the site and the name the
 * bundle's `word_sources` gives it. */
const SHIPPED_POOLS: Record<string, { file: string; source: string }> = {
  "30k": { file: "words/30k.txt", source: "30k.txt" },
  descriptions: { file: "words/image-descriptions.txt", source: "image_descriptions_per_class.txt" },
};

/** The Word pool control's value for the words of the model's text side as they are. */
export const MODEL_POOL = "model";

const poolTexts = new Map<string, Promise<string>>();

/** A shipped pool's text, fetched once per page. */
function shippedPoolText(file: string): Promise<string> {
  let text = poolTexts.get(file);
  if (text === undefined) {
    text = fetch(new URL(file, location.href)).then(async (response) => {
      if (!response.ok) throw new Error(`the word pool ${file} could not be fetched (HTTP ${response.status})`);
      return response.text();
    });
    text.catch(() => poolTexts.delete(file));
    poolTexts.set(file, text);
  }
  return text;
}

/** The text side a build completes first for pool `pool` (a file under Your words is the pool),
 * with `classTemplates` per class; null for the model's text side as it is. */
export async function textSideRequest(pool: string, file: File | undefined, classTemplates: number): Promise<TextSideRequest | null> {
  if (file) {
    const text = await file.text();
    if (text.trim() === "") throw new Error(`Your words: ${file.name} holds no words (one word or phrase per line).`);
    return { words: [{ source: file.name, text }], classTemplates };
  }
  if (pool === MODEL_POOL) return null;
  const shipped = SHIPPED_POOLS[pool];
  if (shipped === undefined) throw new Error(`Word pool: no pool “${pool}”.`);
  return { words: [{ source: shipped.source, text: await shippedPoolText(shipped.file) }], classTemplates };
}

/** Where the text tower's speed for a model and backend is remembered: words per second, or
 * classes per second with a number of templates. */
function rateKey(weightsSha256: string, backend: string, what: "words" | number): string {
  const unit = what === "words" ? "words" : `classes-of-${what}-templates`;
  return `clip-lens:text-side-rate:${weightsSha256}:${backend}:${unit}`;
}

/** The text tower's speed last measured here for the model, backend and kind of text, if any. */
export function rememberedRate(weightsSha256: string, backend: string, what: "words" | number): number | null {
  try {
    const rate = Number(localStorage.getItem(rateKey(weightsSha256, backend, what)));
    return rate > 0 ? rate : null;
  } catch {
    return null;
  }
}

/** Remembers the text tower's speed for the model, backend and kind of text (steps per second). */
export function rememberRate(weightsSha256: string, backend: string, what: "words" | number, perSecond: number): void {
  try {
    localStorage.setItem(rateKey(weightsSha256, backend, what), String(perSecond));
  } catch {
    // Storage refused (private browsing): the next plan shows no time, nothing else is lost.
  }
}
