// End-to-end checks of the built site in Debian's Chromium: e2e/run.mjs (the checks by view in
// e2e/). Kept as the entry point that scripts/test.sh and the docs name.
// Usage: node e2e.mjs (after `npm run build`; CHROMIUM=/path/to/chromium to override,
// E2E_ONLY=image-queue,search to run only some checks).

import "./e2e/run.mjs";
