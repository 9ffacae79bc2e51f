// Imports a TypeScript module of src/ into Node: esbuild bundles it in memory and the bundle is
// imported from a data URL (Node 20 cannot load TypeScript itself). Used by the scripts that run
// the page's code outside a browser: fuzz.mjs and test/card-reader.mjs.

import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The folder www/. */
export const www = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The module `src/<name>` with its imports bundled in; `options` go to esbuild. */
export async function importSource(name, options = {}) {
  const bundled = await build({ entryPoints: [join(www, "src", name)], bundle: true, format: "esm", write: false, ...options });
  return import(`data:text/javascript;base64,${Buffer.from(bundled.outputFiles[0].text).toString("base64")}`);
}
