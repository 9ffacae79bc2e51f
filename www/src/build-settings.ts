// The Build view's settings as typed (or preset by its address), checked and turned into the
// engine's BuildOptions; every problem is said in words. Pure: the unit tests run it in Node.

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
