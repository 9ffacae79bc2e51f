// The worker's side of a build (the Build view's worker runs one): the images read when the
// build needs them, the bundle's folder in "My bundles" (the browser's storage, which the module
// writes itself, and where a stopped build's checkpoint waits for it to resume), progress to the
// page, and pause and stop.

import type { BuildProgress, Engine } from "clip-lens-wasm";
import { bundleFolder, deleteKeptBundle, isWhole } from "./my-bundles";
import { writeKeptTextSide } from "./kept-text-sides";
import { wasmMemoryBytes } from "./worker-wasm";
import type { BuildControlRequest, BuildRequest, BuildSourceImage, TextSideRequest, WorkerResponse } from "./protocol";

/** The running build's pause and stop (`buildControl` requests act on it at once). */
class BuildControl {
  private stopped = false;
  private paused: Promise<void> | null = null;
  private resume: (() => void) | null = null;

  pause(): void {
    this.paused ??= new Promise((resolve) => (this.resume = resolve));
  }

  play(): void {
    this.resume?.();
    this.paused = this.resume = null;
  }

  stop(): void {
    this.stopped = true;
    this.play();
  }

  /** Awaited by the build between batches and steps: a turn of the event loop (control
   * requests get in), then any pause; false once stopped. */
  async goOn(): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.paused) await this.paused;
    return !this.stopped;
  }
}

/** The builds' control: a build's worker runs one build, and a pause or stop sent before it
 * starts (while the model loads) holds for it. */
const buildControl = new BuildControl();

/** The bytes of a build's image: a picked file, or an address on the site. */
async function imageBytes(image: BuildSourceImage): Promise<Uint8Array> {
  if (image.file !== null) return new Uint8Array(await image.file.arrayBuffer());
  const response = await fetch(image.url ?? "");
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${image.url}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Builds the bundle `request` asks for with `current`, into "My bundles"; `post` answers the
 * page, `withTextTower` loads converted towers' text tower when the build needs it. */
export async function runBuild(
  request: BuildRequest,
  current: Engine,
  post: (response: WorkerResponse) => void,
  withTextTower: <T>(id: number, engine: Engine, work: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const started = performance.now();
  const byName = new Map(request.images.map((image) => [image.name, image]));
  const read = async (name: string): Promise<Uint8Array> => {
    const image = byName.get(name);
    if (image === undefined) throw new Error(`no image ${name}`);
    return imageBytes(image);
  };
  const name = request.name;
  // A whole bundle of that name is replaced; a stopped build of it resumes from its checkpoint.
  if (await isWhole(name)) await deleteKeptBundle(name);
  const folder = await bundleFolder(name, true);
  const listed = request.images.map(({ name, size }) => ({ name, size }));
  const report = (event: BuildProgress): void => post({ id: request.id, type: "buildProgress", event });
  const goOn = () => buildControl.goOn();
  if (request.textSide !== null)
    await completeTextSide(request.textSide, current, report, goOn, (work) => withTextTower(request.id, current, work));
  await withTextTower(request.id, current, () => current.buildBundle(listed, read, folder, request.options, report, goOn));
  post({ id: request.id, type: "built", name, ms: performance.now() - started, wasmBytes: wasmMemoryBytes() });
}

/** Completes the model's text side for the build's word pool where it lacks words or classes
 * (said first, in a note), and keeps it in this browser for the model's next loads and builds;
 * a text side that cannot be kept (a full storage) is said and the build goes on. */
async function completeTextSide(
  request: TextSideRequest,
  current: Engine,
  report: (event: BuildProgress) => void,
  goOn: () => Promise<boolean>,
  withTextTower: (work: () => Promise<Uint8Array>) => Promise<Uint8Array>,
): Promise<void> {
  const plan = current.planTextSide(request.words, request.classTemplates);
  if (plan.prompts === 0) return;
  const classes = plan.classes > 0 ? ` and ${plan.classes} ImageNet classes × ${plan.templates} templates` : "";
  report({ note: `Computing the model's text side first: ${plan.words} words${classes} (${plan.prompts} prompts).` });
  const bytes = await withTextTower(() => current.completeTextSide(request.words, request.classTemplates, report, goOn));
  try {
    await writeKeptTextSide(current.weightsSha256, bytes);
    report({ note: "The model's text side is kept in this browser: its next builds and loads embed no text." });
  } catch (error) {
    report({ note: error instanceof Error ? error.message : String(error) });
  }
}

/** Acts on a `buildControl` request at once. */
export function controlBuild(action: BuildControlRequest["action"]): void {
  if (action === "pause") buildControl.pause();
  else if (action === "resume") buildControl.play();
  else buildControl.stop();
}
