// The lab's images: the samples served with the page, and an image to analyse from an address
// or from bytes the visitor gave (a file, a paste, a camera snapshot).

import { errorMessage } from "./dom";

/** The samples served with the page (www/samples; sources in SOURCES.md). */
export const SAMPLES = [
  { file: "cat.jpg", alt: "A tabby cat's face" },
  { file: "astronaut.jpg", alt: "An astronaut in a spacesuit with a flag" },
  { file: "coffee.jpg", alt: "A cup of coffee on a saucer" },
  { file: "horse.png", alt: "A horse on a plain background" },
  { file: "rocket.jpg", alt: "A rocket on its launch pad" },
  { file: "galaxies.jpg", alt: "Two galaxies in space" },
] as const;

/** An image to analyse: where it came from and how to read it. */
export interface LabImage {
  name: string;
  /** An address the <img> can show (an object URL for local files). */
  src: string;
  bytes(): Promise<Uint8Array>;
}

/** The image at `url` (named after its last path part), downloaded when it is analysed. */
export function imageFromUrl(url: string, name = url.split("/").pop() || url): LabImage {
  return {
    name,
    src: url,
    async bytes() {
      let response: Response;
      try {
        response = await fetch(url);
      } catch (error) {
        throw new Error(`Could not download the image ${url}: ${errorMessage(error)}`);
      }
      if (!response.ok) throw new Error(`Could not download the image ${url}: HTTP ${response.status} ${response.statusText}`.trim());
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

/** An image from the visitor's bytes, shown from an object URL (the lab revokes it). */
export function imageFromBlob(blob: Blob, name: string): LabImage {
  return { name, src: URL.createObjectURL(blob), bytes: async () => new Uint8Array(await blob.arrayBuffer()) };
}
