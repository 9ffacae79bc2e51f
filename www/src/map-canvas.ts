// The map's canvas: a layer's neurons as points (their places from the engine's `neuronMap`),
// with pan (drag, arrow keys), zoom (wheel, + and -), hover (the nearest point within a few
// pixels names its neuron) and click (opens its card). Points matching a search are drawn
// larger, in another colour. Pure drawing: no engine, so the benchmark page can time it with
// any number of points.

/** Pixels within which the pointer names a point. */
const HOVER_RADIUS = 8;
/** The margin around the points when they are fitted to the canvas. */
const MARGIN = 16;
/** Zoom per wheel notch or key press. */
const ZOOM_STEP = 1.25;

/** What the canvas shows: each point's place [x0, y0, x1, y1, ...] and its label. */
export interface MapPoints {
  points: ArrayLike<number>;
  labels: readonly string[];
}

/** A point under the pointer: its index and label. */
export interface MapHit {
  index: number;
  label: string;
}

/** Pan and zoom: canvas = (place - centre) * scale + half the canvas. */
interface Viewport {
  centreX: number;
  centreY: number;
  scale: number;
}

export class MapCanvas {
  private data: MapPoints = { points: [], labels: [] };
  private highlighted = new Set<number>();
  private view: Viewport = { centreX: 0, centreY: 0, scale: 1 };
  private drag: { x: number; y: number } | null = null;
  private frame = 0;
  /** Milliseconds each draw took (the benchmark's frame times). */
  readonly drawTimes: number[] = [];

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly onHover: (hit: MapHit | null) => void,
    private readonly onOpen: (index: number) => void,
  ) {
    canvas.addEventListener("pointerdown", (event) => this.startDrag(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.endDrag(event));
    canvas.addEventListener("pointerleave", () => this.onHover(null));
    canvas.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    canvas.addEventListener("keydown", (event) => this.key(event));
  }

  /** Shows `data`, fitted to the canvas, nothing highlighted. */
  show(data: MapPoints): void {
    this.data = data;
    this.highlighted.clear();
    this.fit();
    this.draw();
  }

  /** Draws the points of `indices` highlighted (the search's matches). */
  highlight(indices: Iterable<number>): void {
    this.highlighted = new Set(indices);
    this.draw();
  }

  /** Moves the view by (dx, dy) canvas pixels and redraws on the next frame. */
  pan(dx: number, dy: number): void {
    this.view.centreX -= dx / this.view.scale;
    this.view.centreY -= dy / this.view.scale;
    this.schedule();
  }

  /** Zooms by `factor` around canvas point (x, y). */
  zoom(factor: number, x = this.canvas.width / 2, y = this.canvas.height / 2): void {
    const [px, py] = this.toPlace(x, y);
    this.view.scale *= factor;
    const [qx, qy] = this.toPlace(x, y);
    this.view.centreX += px - qx;
    this.view.centreY += py - qy;
    this.schedule();
  }

  /** The point nearest canvas point (x, y) within the hover radius, if any. */
  hitAt(x: number, y: number): MapHit | null {
    const { points, labels } = this.data;
    let best = -1;
    let bestDistance = HOVER_RADIUS * HOVER_RADIUS;
    for (let i = 0; i * 2 + 1 < points.length; i++) {
      const [cx, cy] = this.toCanvas(points[i * 2] ?? 0, points[i * 2 + 1] ?? 0);
      const distance = (cx - x) ** 2 + (cy - y) ** 2;
      if (distance <= bestDistance) [best, bestDistance] = [i, distance];
    }
    return best < 0 ? null : { index: best, label: labels[best] ?? `#${best}` };
  }

  /** Where point `index` is on the canvas. */
  canvasPoint(index: number): [number, number] {
    return this.toCanvas(this.data.points[index * 2] ?? 0, this.data.points[index * 2 + 1] ?? 0);
  }

  /** Fits every point in the canvas. */
  private fit(): void {
    const { points } = this.data;
    let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
    for (let i = 0; i + 1 < points.length; i += 2) {
      const [x, y] = [points[i] ?? 0, points[i + 1] ?? 0];
      [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
    }
    if (!Number.isFinite(minX)) [minX, maxX, minY, maxY] = [-1, 1, -1, 1];
    const width = Math.max(maxX - minX, 1e-6);
    const height = Math.max(maxY - minY, 1e-6);
    const scale = Math.min((this.canvas.width - 2 * MARGIN) / width, (this.canvas.height - 2 * MARGIN) / height);
    this.view = { centreX: (minX + maxX) / 2, centreY: (minY + maxY) / 2, scale };
  }

  private toCanvas(x: number, y: number): [number, number] {
    const { centreX, centreY, scale } = this.view;
    return [(x - centreX) * scale + this.canvas.width / 2, (y - centreY) * scale + this.canvas.height / 2];
  }

  private toPlace(x: number, y: number): [number, number] {
    const { centreX, centreY, scale } = this.view;
    return [(x - this.canvas.width / 2) / scale + centreX, (y - this.canvas.height / 2) / scale + centreY];
  }

  /** Redraws on the next animation frame (one draw however many moves came before it). */
  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Draws every point: one path per colour, so that 3072 points are two fills. */
  draw(): void {
    const started = performance.now();
    const context = this.canvas.getContext("2d");
    if (!context) return;
    context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const plain = new Path2D();
    const marked = new Path2D();
    const { points } = this.data;
    for (let i = 0; i * 2 + 1 < points.length; i++) {
      const [x, y] = this.toCanvas(points[i * 2] ?? 0, points[i * 2 + 1] ?? 0);
      if (x < -4 || y < -4 || x > this.canvas.width + 4 || y > this.canvas.height + 4) continue;
      if (this.highlighted.has(i)) marked.rect(x - 3, y - 3, 6, 6);
      else plain.rect(x - 1.5, y - 1.5, 3, 3);
    }
    context.fillStyle = this.highlighted.size ? "#9aa5b1" : "#2b7bb9";
    context.fill(plain);
    context.fillStyle = "#c0392b";
    context.fill(marked);
    this.drawTimes.push(performance.now() - started);
  }

  private canvasXY(event: MouseEvent): [number, number] {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / Math.max(box.width, 1),
      ((event.clientY - box.top) * this.canvas.height) / Math.max(box.height, 1),
    ];
  }

  private startDrag(event: PointerEvent): void {
    const [x, y] = this.canvasXY(event);
    this.drag = { x, y };
    this.canvas.setPointerCapture(event.pointerId);
  }

  private move(event: PointerEvent): void {
    const [x, y] = this.canvasXY(event);
    if (this.drag) {
      this.pan(x - this.drag.x, y - this.drag.y);
      this.drag = { x, y };
      return;
    }
    this.onHover(this.hitAt(x, y));
  }

  private endDrag(event: PointerEvent): void {
    const start = this.drag;
    this.drag = null;
    const [x, y] = this.canvasXY(event);
    // A click (no drag) on a point opens its card.
    if (start && Math.abs(start.x - x) + Math.abs(start.y - y) < 3) {
      const hit = this.hitAt(x, y);
      if (hit) this.onOpen(hit.index);
    }
  }

  private wheel(event: WheelEvent): void {
    event.preventDefault();
    const [x, y] = this.canvasXY(event);
    this.zoom(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, x, y);
  }

  private key(event: KeyboardEvent): void {
    const moves: Record<string, [number, number]> = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] };
    const move = moves[event.key];
    if (move) this.pan(move[0], move[1]);
    else if (event.key === "+" || event.key === "=") this.zoom(ZOOM_STEP);
    else if (event.key === "-") this.zoom(1 / ZOOM_STEP);
    else return;
    event.preventDefault();
  }
}
