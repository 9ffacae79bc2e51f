// Where a WebAssembly module's bytes go: its sections, and its code by crate (from the function
// names in the `name` section, so run it on cargo's output before wasm-bindgen or wasm-opt strip
// them: target/wasm32-unknown-unknown/release/clip_lens.wasm).
//   node scripts/wasm-crates.mjs MODULE.wasm [TOP]
// A generic function is counted under the crate of its first path (`<burn_cubecl::X as
// burn_backend::Y>::f` under burn_cubecl).
import { readFileSync } from "node:fs";

const [file, top = "30"] = process.argv.slice(2);
const bytes = readFileSync(file);
let at = 8;

function leb() {
  let result = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return result;
  }
}
function name() {
  const length = leb();
  const text = bytes.toString("utf8", at, at + length);
  at += length;
  return text;
}

const SECTIONS = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count"];
const sections = new Map();
let importedFunctions = 0;
let bodies = [];
const names = new Map();
while (at < bytes.length) {
  const id = bytes[at++];
  const size = leb();
  const end = at + size;
  let label = SECTIONS[id] ?? `section ${id}`;
  if (id === 0) {
    const start = at;
    label = `custom "${name()}"`;
    if (label === 'custom "name"') readNames(end);
    at = start;
  } else if (id === 2) {
    for (let count = leb(), i = 0; i < count; i++) {
      name();
      name();
      const kind = bytes[at++];
      if (kind === 0) importedFunctions++, leb();
      else if (kind === 1) at++, limits();
      else if (kind === 2) limits();
      else if (kind === 3) at += 2;
      else leb();
    }
  } else if (id === 10) {
    for (let count = leb(), i = 0; i < count; i++) {
      const length = leb();
      bodies.push(length);
      at += length;
    }
  }
  sections.set(label, (sections.get(label) ?? 0) + size);
  at = end;
}

function limits() {
  const flags = bytes[at++];
  leb();
  if (flags & 1) leb();
}

function readNames(end) {
  while (at < end) {
    const kind = bytes[at++];
    const size = leb();
    const stop = at + size;
    if (kind === 1) {
      for (let count = leb(), i = 0; i < count; i++) {
        const index = leb();
        names.set(index, name());
      }
    }
    at = stop;
  }
}

/** The crate of a mangled (legacy or v0) or plain Rust symbol. */
function crateOf(symbol) {
  const legacy = /^_ZN(\d+)(.*)/.exec(symbol);
  if (legacy) {
    const first = legacy[2].slice(0, Number(legacy[1]));
    const inner = /^_\$LT\$(?:\$RF\$)?(?:mut\$u20\$)?([A-Za-z0-9_]+)\.\./.exec(first);
    return inner ? inner[1] : first.startsWith("_$LT$") ? "(generic impl)" : first;
  }
  const v0 = /^_R[A-Za-z]*?C[^\d]*\d*?(?:s[0-9a-z_]*_)?(\d+)([A-Za-z0-9_]+)/.exec(symbol);
  if (v0) return v0[2].slice(0, Number(v0[1]));
  return symbol.startsWith("__") || !symbol ? "(runtime)" : "(other)";
}

const mib = (n) => `${(n / 2 ** 20).toFixed(2)} MiB`;
console.log(`${file}: ${mib(bytes.length)}`);
for (const [label, size] of [...sections].sort((a, b) => b[1] - a[1])) console.log(`  ${label.padEnd(28)} ${mib(size)}`);
const byCrate = new Map();
bodies.forEach((size, i) => {
  const crate = names.size ? crateOf(names.get(importedFunctions + i) ?? "") : "(no name section)";
  byCrate.set(crate, (byCrate.get(crate) ?? 0) + size);
});
console.log(`code by crate (${bodies.length} functions):`);
for (const [crate, size] of [...byCrate].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) console.log(`  ${crate.padEnd(28)} ${mib(size)}`);
