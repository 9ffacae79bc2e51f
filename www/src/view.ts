// What main.ts knows of a view: its <section class="view" data-view> in index.html (the view
// finds its own elements inside it), the bundle it works with, and the routes it shows.

import type { BundleInfo } from "./protocol";
import type { Route } from "./routes";

export interface View<R extends Route = Route> {
  /** The view's section (`data-view` is its name in the route table). */
  readonly section: HTMLElement;
  /** The bundle of the engine now loaded (null: none), after each (re)load. */
  setBundle(bundle: BundleInfo | null): void;
  /** Shows `route` in the section, which main.ts has just revealed; resolves when its result
   * (or its error) is shown. */
  show(route: R): Promise<void>;
}
