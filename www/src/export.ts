// Downloads of what the page shows: a card or an analysis as JSON or CSV, a heatmap overlay as
// PNG. Each is an <a download> on a blob URL, revoked once the browser has it.

import { el } from "./dom";

/** Saves `blob` as `filename` (the browser's download). */
export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL by the next task.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** `value` as indented JSON text. */
export function jsonBlob(value: unknown): Blob {
  return new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: "application/json" });
}

/** CSV text as a file. */
export function csvBlob(text: string): Blob {
  return new Blob([text], { type: "text/csv" });
}

/** A canvas as PNG bytes. */
export function canvasPng(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("The canvas could not be encoded as PNG."))), "image/png"),
  );
}

/** `text` as a file-name part: letters, digits and dashes ("a horse!" -> "a-horse"). */
export function fileSlug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 60) || "untitled"
  );
}

/** A button `label` that downloads what `make` builds as `filename`; its accessible name is the
 * label, then `description` (the name holds the visible text). A failure shows on the
 * button's `title` and in `onError`. */
export function downloadButton(
  label: string,
  description: string,
  filename: () => string,
  make: () => Promise<Blob> | Blob,
  onError?: (error: unknown) => void,
): HTMLButtonElement {
  const button = el("button", { type: "button", class: "download-button", "aria-label": `${label}: ${description}` }, label);
  button.addEventListener("click", () => {
    button.disabled = true;
    Promise.resolve()
      .then(make)
      .then((blob) => downloadBlob(blob, filename()))
      .catch((error: unknown) => onError?.(error))
      .finally(() => (button.disabled = false));
  });
  return button;
}
