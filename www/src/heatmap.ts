// Draws a heatmap (or its mask) computed on the model's square input (the centre crop) over
// the original image, undoing the crop: the canvas has the image's own pixel size and sits on
// top of the <img>.

import type { CropGeometry } from "clip-lens-wasm";

export interface OverlayStyle {
  /** Show the mask (heatmap > 0.5): the rest of the image darkened. */
  mask: boolean;
}

/** Colour stops of the heat palette (blue, cyan, green, yellow, red). */
const STOPS: [number, number, number][] = [
  [48, 18, 160],
  [30, 160, 230],
  [40, 200, 90],
  [250, 220, 40],
  [220, 40, 30],
];

/** The palette's colour for `value` in [0, 1]. */
export function heatColour(value: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, value)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const t = x - i;
  const a = STOPS[i] as [number, number, number];
  const b = STOPS[i + 1] as [number, number, number];
  return [0, 1, 2].map((c) => Math.round((a[c] as number) + t * ((b[c] as number) - (a[c] as number)))) as [number, number, number];
}

/** An S x S canvas with the heatmap's colours, or in mask mode black where the mask is off. */
function heatCanvas(heatmap: Float32Array, size: number, style: OverlayStyle): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("This browser cannot draw on a canvas.");
  const image = context.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const value = heatmap[i] ?? 0;
    const [r, g, b] = style.mask ? [0, 0, 0] : heatColour(value);
    image.data[4 * i] = r;
    image.data[4 * i + 1] = g;
    image.data[4 * i + 2] = b;
    image.data[4 * i + 3] = style.mask ? (value > 0.5 ? 0 : 210) : 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** Draws `heatmap` ([size x size] on the crop) onto `canvas` sized to the original image;
 * the parts the model never saw (outside the crop) are hatched dark. */
export function drawOverlay(
  canvas: HTMLCanvasElement,
  heatmap: Float32Array,
  size: number,
  geometry: CropGeometry,
  style: OverlayStyle,
): void {
  if (heatmap.length !== size * size) throw new Error(`A heatmap of ${heatmap.length} values is not ${size} x ${size}.`);
  canvas.width = geometry.original_width;
  canvas.height = geometry.original_height;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("This browser cannot draw on a canvas.");
  const [left, top, width, height] = geometry.crop_box;
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(heatCanvas(heatmap, size, style), 0, 0, size, size, left, top, width, height);
  // Outside the crop: dark, and the crop's outline.
  context.fillStyle = "rgba(0, 0, 0, 0.55)";
  context.fillRect(0, 0, canvas.width, top);
  context.fillRect(0, top + height, canvas.width, canvas.height - top - height);
  context.fillRect(0, top, left, height);
  context.fillRect(left + width, top, canvas.width - left - width, height);
  context.strokeStyle = "rgba(255, 255, 255, 0.8)";
  context.setLineDash([6, 4]);
  context.lineWidth = Math.max(1, Math.round(canvas.width / 300));
  context.strokeRect(left, top, width, height);
}

/** The fraction of heatmap values above 0.5 (the mask's area on the crop). */
export function maskFraction(heatmap: Float32Array): number {
  let on = 0;
  for (const value of heatmap) if (value > 0.5) on++;
  return heatmap.length === 0 ? 0 : on / heatmap.length;
}

/** A canvas of `image` with `overlay` (drawn by `drawOverlay` at the image's own size) over it
 * at `opacity`: what the page shows, for a PNG download. */
export function composeOverlay(image: HTMLImageElement, overlay: HTMLCanvasElement, opacity: number): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = overlay.width;
  canvas.height = overlay.height;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("This browser cannot draw on a canvas.");
  if (image.complete && image.naturalWidth > 0) context.drawImage(image, 0, 0, canvas.width, canvas.height);
  context.globalAlpha = Math.min(1, Math.max(0, opacity));
  context.drawImage(overlay, 0, 0);
  return canvas;
}
