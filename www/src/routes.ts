// The app's addresses: the hash routes (#/lab, #/neuron/<layer>/<index>, #/search/<text>,
// #/word/<word>, #/list/<layer>:<neuron>,..., #/map/<layer>, #/miner, #/build?layers=..&k=..&components=..) parsed into a typed route, and the
// links that lead to them. Pure: no DOM (the unit tests run it in Node).

/** The routes; `view` is the `data-view` of the <section> that shows it. */
export type Route =
  | { view: "lab" }
  /** A neuron's card (layer and neuron null where the address leaves them out: the first
   * layer's neuron 0; NaN where they are not numbers: the card says how to write one), or a
   * search (`search` not null). */
  | { view: "explorer"; layer: number | null; neuron: number | null; search: string | null }
  /** A list of neurons ("9:4,9:17"; empty: the visitor's own list). */
  | { view: "list"; spec: string }
  | { view: "word"; word: string }
  /** A layer's map of neurons (layer null: the bundle's first). */
  | { view: "map"; layer: number | null }
  | { view: "miner" }
  /** The Build view, its settings preset by the address where it gives them. */
  | { view: "build"; preset: BuildPreset };

/** Build settings an address presets (`?layers=8,9,10&k=100&components=32`); null: not given.
 * Values are kept as typed: the view checks them and says what is wrong. */
export interface BuildPreset {
  layers: string | null;
  k: string | null;
  components: string | null;
}

export type ViewName = Route["view"];

/** The route of a view. */
export type RouteOf<V extends ViewName> = Extract<Route, { view: V }>;

/** A route's rest, decoded (a malformed escape is kept as typed). */
function decodeRest(rest: readonly string[]): string {
  const text = rest.join("/");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A number part of an address: null where it is absent or empty, NaN where it is no number. */
function numberPart(part: string | undefined): number | null {
  return part === undefined || part === "" ? null : Number(part);
}

/** The preset of a build address's query. */
function buildPreset(query: string): BuildPreset {
  const params = new URLSearchParams(query);
  return { layers: params.get("layers"), k: params.get("k"), components: params.get("components") };
}

/** The route table: an address's first part -> its route, made from the parts after it (and
 * the query after its `?`, for the Build view). */
const ROUTES = new Map<string, (rest: readonly string[], query: string) => Route>([
  ["lab", () => ({ view: "lab" })],
  ["neuron", (rest) => ({ view: "explorer", layer: numberPart(rest[0]), neuron: numberPart(rest[1]), search: null })],
  ["search", (rest) => ({ view: "explorer", layer: null, neuron: null, search: decodeRest(rest) })],
  ["list", (rest) => ({ view: "list", spec: decodeRest(rest) })],
  ["word", (rest) => ({ view: "word", word: decodeRest(rest) })],
  ["map", (rest) => ({ view: "map", layer: numberPart(rest[0]) })],
  ["miner", () => ({ view: "miner" })],
  ["build", (_rest, query) => ({ view: "build", preset: buildPreset(query) })],
]);

/** The route of a location's hash ("#/neuron/1/4"); anything unknown is the lab. */
export function parseRoute(hash: string): Route {
  const [first = "", ...rest] = hash.replace(/^#\/?/, "").split("/");
  const query = first.indexOf("?");
  const [head, search] = query < 0 ? [first, ""] : [first.slice(0, query), first.slice(query + 1)];
  return ROUTES.get(head)?.(rest, search) ?? { view: "lab" };
}

/** The route of a neuron's card. */
export function neuronHref(layer: number, neuron: number): string {
  return `#/neuron/${layer}/${neuron}`;
}

/** The route of a layer's map of neurons. */
export function mapHref(layer: number): string {
  return `#/map/${layer}`;
}

/** The route of a word's page. */
export function wordHref(word: string): string {
  return `#/word/${encodeURIComponent(word)}`;
}

/** The route of a search. */
export function searchHref(text: string): string {
  return `#/search/${encodeURIComponent(text)}`;
}

/** The route of a list ("L:N" items). */
export function listHref(keys: readonly string[]): string {
  return `#/list/${keys.join(",")}`;
}
