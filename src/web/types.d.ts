// The TypeScript types of the engine's results, options and errors (src/apps/engine/results.rs
// serialised; the crate's Error::kind), emitted into pkg/clip_lens.d.ts by src/web/types.rs.
// tests/it/typescript_types.rs checks every interface's fields against the serialised results.

/** The `kind` property of an `Error` an engine method throws (the crate's `Error::kind`). */
export type EngineErrorKind = "needs-text-tower" | "device-lost" | "device" | "io" | "interrupted" | "bad-input";

/** A word (or class) with its score or coefficient. */
export type Scored = [string, number];

/** Options of `Engine.analyze`; a key left out takes its default (`Engine.defaults().analyze`). */
export interface AnalyzeOptions {
  /** Classes returned. */
  top_classes?: number;
  /** Words per layer and merged. */
  top_words?: number;
  /** Words shown per significant neuron. */
  neuron_words?: number;
  /** The layers whose concepts are discovered and merged (null: all the bundle's). */
  layers?: number[] | null;
}

/** A class of the bundle's zero-shot classifier. */
export interface ClassScore {
  index: number;
  name: string;
  /** Cosine of the image and class embeddings. */
  cosine: number;
  /** Softmax over all classes of 100 x cosine. */
  probability: number;
}

/** A neuron whose centred norm is above its threshold for the analysed image. */
export interface SignificantNeuron {
  neuron: number;
  /** Its centred norm |phi_n - mean_n| for this image. */
  norm: number;
  /** Its threshold (the k-th largest norm over the bundle's images). */
  threshold: number;
  /** Its decomposition's first words, with signed coefficients. */
  words: Scored[];
}

/** Concept discovery in one layer. */
export interface LayerConcepts {
  layer: number;
  /** The significant neurons, ascending. */
  significant_neurons: number[];
  /** Words ranked by the sum over significant neurons of coefficient x norm. */
  words: Scored[];
  /** The significant neurons with their norms and words, ascending. */
  neurons: SignificantNeuron[];
}

/** How the original image was resized (shorter side to `size`) and centre-cropped. */
export interface CropGeometry {
  original_width: number;
  original_height: number;
  resized_width: number;
  resized_height: number;
  /** The crop's offset in the resized image. */
  left: number;
  top: number;
  /** The model's input side. */
  size: number;
  /** The crop in original pixels: [left, top, width, height]. */
  crop_box: [number, number, number, number];
}

/** Where the time of an analysis went, in milliseconds. */
export interface AnalysisTimings {
  /** Decoding and preprocessing. */
  decode: number;
  /** The image forward (with the lens captures) up to the embedding's readback. */
  forward: number;
  /** Second-order effects, centred norms, concept discovery. */
  lens: number;
  total: number;
}

export interface Analysis {
  backend: string;
  /** The top classes, best first. */
  classes: ClassScore[];
  /** Concept discovery per bundle layer, in the bundle's order. */
  layers: LayerConcepts[];
  /** Words merged over the layers (scores summed), best first. */
  words: Scored[];
  geometry: CropGeometry;
  timings_ms: AnalysisTimings;
}

/** A neuron ranked against a concept or a text: `score` = r_n . e (unit e). */
export interface RankedNeuron {
  layer: number;
  neuron: number;
  score: number;
}

export interface Segmentation {
  /** The free text, the class name, or the predicted class's name. */
  concept: string;
  kind: "text" | "class" | "predicted";
  /** The class's index for "class" and "predicted", else null. */
  class_index: number | null;
  layers: number[];
  /** The heatmap's side: the model's input size. */
  size: number;
  /** size x size values in [0, 1], row-major, on the model's input (the crop): map it onto the
   * original image with the analysis's `geometry`. The mask is heatmap > 0.5. */
  heatmap: Float32Array;
  /** The neurons averaged, by |score| descending. */
  neurons: RankedNeuron[];
  ms: number;
}

/** One neuron's activation map on an image (`Engine.activationMap`). */
export interface ActivationMap {
  layer: number;
  neuron: number;
  /** The map's side: the model's input size. */
  size: number;
  /** size x size values in [0, 1] (min-max of the neuron's post-GELU activation over the
   * patches, bilinearly upsampled), row-major, on the model's input (the crop). */
  heatmap: Float32Array;
  /** The largest raw activation over the patches, before normalisation. */
  peak: number;
  geometry: CropGeometry;
}

/** One of the images that fire a neuron most. */
export interface TopImage {
  id: number;
  /** Its path in the bundle's image set (null if the manifest has none for this id). */
  path: string | null;
  /** `thumbnails/<id>.jpg` relative to the bundle, or null when the bundle has no thumbnails. */
  thumbnail: string | null;
}

export interface NearestClass {
  index: number;
  name: string;
  cosine: number;
}

export interface NeuronCard {
  layer: number;
  neuron: number;
  /** All the words of its decomposition, signed, by |coefficient| descending. */
  words: Scored[];
  /** Its significance threshold (null if the bundle keeps no norms). */
  threshold: number | null;
  /** The images with the largest centred norms, largest first. */
  top_images: TopImage[];
  /** The classes nearest to r_n (cosine), best first. */
  classes: NearestClass[];
  /** Its distribution of centred norms over the bundle's images (null for a format-2 bundle). */
  distribution: NeuronDistribution | null;
  /** The last analysed image's centred norm for this neuron (null before an analysis). */
  analysed_norm: number | null;
  /** How well its words describe it, beside its layer's neurons. */
  fidelity: WordFidelity | null;
  /** Through which later heads its effect flows, along r_n (null before bundle format 5: a
   * rebuild adds it). */
  heads: HeadGrid | null;
  /** Its nearest neurons of the layer by the cosine of r_n, nearest first (null before format 5). */
  neighbours: Neighbour[] | null;
  /** A few images from each band of its distribution of centred norms, lowest band first (null
   * before format 5). */
  typical: TypicalBand[] | null;
}

/** A layer's map of neurons (`#/map/<layer>`): UMAP of the cosines of their r_n. */
export interface NeuronMap {
  layer: number;
  /** Each neuron's place, [x0, y0, x1, y1, ...] (arbitrary units). */
  points: number[];
  /** Each neuron's first words. */
  words: string[][];
  /** Whether the bundle held the map (format 5) or it was computed on load. */
  stored: boolean;
}

/** A band of a neuron's distribution of centred norms and a sample of its images. */
export interface TypicalBand {
  /** The band's lower edge (0 for the first). */
  low: number;
  /** Its upper edge (null for the last band). */
  high: number | null;
  images: TopImage[];
}

/** What each head after a neuron's layer carries of its effect along r_n: on a card, the mean
 * over its top images of <phi_{n,l,h}(I), r_n>; in the lab, the analysed image's term. */
export interface HeadGrid {
  /** The later layers: the grid's rows. */
  layers: number[];
  /** Heads per layer: its columns. */
  heads: number;
  /** The terms, layer-major (layers.length x heads); empty for the model's last layer. */
  values: number[];
  /** The largest terms by magnitude, largest first. */
  largest: HeadTerm[];
}

/** One head's term in a grid. */
export interface HeadTerm {
  layer: number;
  head: number;
  value: number;
}

/** A neuron near another by the cosine of their r_n (same layer). */
export interface Neighbour {
  neuron: number;
  cosine: number;
  /** Its first words. */
  words: string[];
}

/** How well a neuron's words describe it: the cosine between r_n and its reconstruction from
 * its words' dictionary atoms (1: exactly), and where that stands in its layer. */
export interface WordFidelity {
  cosine: number;
  /** The layer's median fidelity. */
  layer_median: number;
  /** The share of the layer's neurons whose fidelity is lower. */
  share_below: number;
  /** The layer's neurons per tenth of [0, 1] (below 0 in the first, 1 in the last). */
  layer_counts: number[];
}

/** A neuron's distribution of centred norms |phi_n - mean_n| over the bundle's images. */
export interface NeuronDistribution {
  /** Bin edges, ascending, log-spaced (bins + 1 values). */
  edges: number[];
  /** Images per bin; the first bin also counts smaller norms, the last larger ones. */
  counts: number[];
  /** [percentile, value]: 50, 90, 98, 99, 99.9. */
  percentiles: [number, number][];
  /** Per percentile, null when its value is exact (every norm kept, bundle format 5, or among
   * the top k norms), else the edges of
   * the histogram bin it was interpolated in, which hold the exact value ([low, high]; high
   * null for the last bin, which is open above). */
  percentile_bounds: ([number, number | null] | null)[];
  /** Images counted. */
  images: number;
  /** Images whose norm is above the significance threshold. */
  above_threshold: number;
  /** above_threshold / images. */
  share_above: number;
}

/** A word's page (`Engine.wordPage`): every neuron whose decomposition holds it. */
export interface WordPage {
  /** The word as the bundle spells it. */
  word: string;
  /** By |coefficient| descending. */
  neurons: WordPageNeuron[];
}

export interface WordPageNeuron {
  layer: number;
  neuron: number;
  /** The word's signed coefficient in the neuron's decomposition. */
  coefficient: number;
  /** The neuron's first words (this one included). */
  words: Scored[];
  /** Its first top images. */
  top_images: TopImage[];
}

/** Several cards side by side (`Engine.neuronList`). */
export interface NeuronList {
  cards: NeuronCard[];
  /** Words among the first 20 of at least two cards, most shared first. */
  shared_words: string[];
}

/** What `Engine.ablate` replaces on the last analysed image. */
export type AblationRequest =
  | { kind: "neurons"; /** "9:4,9:17" */ neurons: string }
  | { kind: "steer"; /** "9:4=3,9:17=-1": each neuron's centred effect times its factor */ neurons: string }
  | { kind: "significant"; layer: number }
  | { kind: "insignificant"; layer: number }
  | { kind: "rank-one"; layer: number };

/** Top classes and merged concept words, before or after an ablation. */
export interface AblationView {
  classes: ClassScore[];
  words: Scored[];
}

export interface AblationResult {
  request: AblationRequest;
  /** What was done, in words. */
  description: string;
  /** Neurons whose effect was replaced. */
  ablated: number;
  before: AblationView;
  after: AblationView;
  /** |v' - v| where |v| = 100 (the embedding classification sees). */
  shift: number;
  /** Milliseconds (the layer's effects, computed once per image, included). */
  ms: number;
}

/** A neuron whose decomposition holds the searched word. */
export interface WordNeuron {
  layer: number;
  neuron: number;
  coefficient: number;
  /** How well the neuron's words describe it (WordFidelity's cosine). */
  fidelity: number;
}

export interface SearchResult {
  text: string;
  /** The bundle's word the text matched (exactly, else ignoring case), or null. */
  word: string | null;
  /** The neurons whose decomposition holds that word, by |coefficient| descending. */
  word_neurons: WordNeuron[];
  /** The neurons by r_n . e(text) / |e(text)|, best first. */
  text_neurons: RankedNeuron[];
}

/** Options of `Engine.adversarial`; a key left out takes its default
 * (`Engine.defaults().adversarial`, the paper's). */
export interface AdversarialOptions {
  /** Layers whose neurons are ranked (null: all the bundle's). */
  layers?: number[] | null;
  /** Top neurons kept. */
  neurons?: number;
  /** Words returned. */
  words?: number;
  /** Words whose cosine with class 0 is above this are dropped. */
  synonym_cosine?: number;
  /** Words dropped whatever their score. */
  block?: string[];
}

/** The neurons `Engine.segment` averages when its `layers` and `topNeurons` are left out. */
export interface SegmentOptions {
  /** Layers whose neurons are ranked (null: all the bundle's). */
  layers: number[] | null;
  /** Neurons averaged (clamped to those the layers have). */
  top_neurons: number;
}

/** What `Engine.wordPage` shows when its `topImages` is left out. */
export interface WordPageOptions {
  /** Top images per neuron. */
  top_images: number;
}

/** Every option's default (`Engine.defaults()`): what the engine applies to a key left out. */
export interface Defaults {
  analyze: Required<AnalyzeOptions>;
  adversarial: Required<AdversarialOptions>;
  segment: SegmentOptions;
  word_page: WordPageOptions;
}

export interface AlignedNeuron {
  layer: number;
  neuron: number;
  /** r_n . (e0 - e1). */
  alignment: number;
}

export interface AdversarialWord {
  word: string;
  score: number;
  /** [layer, neuron] of the top neurons whose decomposition holds it. */
  neurons: [number, number][];
}

export interface AdversarialResult {
  class0: string;
  class1: string;
  layers: number[];
  neurons: AlignedNeuron[];
  words: AdversarialWord[];
  removed: string[];
  /** "a photo of a {class1} with {word}", never naming class 0. */
  descriptions: string[];
}

/** What the page shows of the loaded bundle (`Engine.bundleSummary`). */
export interface BundleSummary {
  /** The model the bundle was computed for (the weight file's name). */
  model_name: string;
  layers: number[];
  /** Neurons per layer. */
  neurons: number;
  /** Top images kept per neuron. */
  top_k: number;
  /** OMP components per neuron. */
  components: number;
  /** Words in its dictionary. */
  words: number;
  /** Its zero-shot classes. */
  classes: string[];
  /** Images it was computed over. */
  images: number;
  /** Side of its thumbnails in pixels (0: none). */
  thumbnail_size: number;
}

export interface FooledResult {
  class0: string;
  class1: string;
  /** Whether CLIP prefers class 0: score > 0. */
  fooled: boolean;
  /** (emb / |emb|) . (e0 - e1): the difference of the image's cosines with the two classes. */
  score: number;
}

/** What the GPU allocator holds, in bytes (the WebAssembly memory is the instance's
 * `memory.buffer.byteLength`). */
export interface GpuMemory {
  /** Live tensors. */
  bytes_in_use: number;
  /** All it reserved: live tensors and pages kept for reuse. */
  bytes_reserved: number;
}

/** The settings of `Engine.buildBundle` (the Build view's). */
export interface BuildOptions {
  /** The lens layers. */
  layers: number[];
  /** Images kept per neuron (the paper: 100). */
  top_k: number;
  /** OMP components per neuron (the paper: 128). */
  components: number;
  /** Word lists; left out or empty: the words of the model's text side. */
  words?: BuildWords[];
  /** Images per forward pass (8). */
  batch?: number;
  /** Side in pixels of the thumbnails of the top images (64; 0: none). */
  thumbnail_size?: number;
  /** The manifest's `model_name`. */
  model_name?: string;
}

/** A word list for a build: its name (the manifest's `word_sources`) and text, a line each. */
export interface BuildWords {
  source: string;
  text: string;
}

/** An image of a build, as listed (its bytes are read when needed). */
export interface BuildImage {
  name: string;
  size: number;
}

/** What `Engine.buildBundle` reports: a stage's steps done, or a note (a skipped image, the words
 * found in the text side). */
export type BuildProgress = { stage: string; total: number; done: number } | { note: string };

/** What `Engine.completeTextSide` would embed for a word pool: words the model's text side
 * lacks, ImageNet classes (all or none) times templates, and the prompts in all. */
export interface TextSidePlan {
  words: number;
  classes: number;
  templates: number;
  prompts: number;
}

/** The peak memory a build holds beside the model, in bytes: `per_k` per image kept per neuron
 * (pass 2's top-k state, held three times while a checkpoint is written), `fixed` the rest, `total`
 * for the options asked. */
export interface BuildMemory {
  per_k: number;
  fixed: number;
  total: number;
}
