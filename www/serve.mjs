// A dependency-free static file server for www/dist on 127.0.0.1.
// Usage: node serve.mjs [directory]   (PORT=8080 by default; directory defaults to ./dist)
//
// It makes the site cross-origin isolated (COOP and COEP on every response), which the browser
// requires for WebAssembly threads; ISOLATION=0 leaves those two out, as a static host that
// cannot set headers would (the site's service worker then adds them: src/isolation-sw.ts).
// Every response also allows other origins to embed it (CORS and CORP): the neuron card and
// the ?embed=1 iframe on someone's page, isolated or not.

import { createServer } from "node:http";
import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const HOST = "127.0.0.1";
const port = Number(process.env.PORT ?? 8080);
const root = resolve(process.argv[2] ?? fileURLToPath(new URL("./dist", import.meta.url)));

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`serve: PORT must be a port number, not "${process.env.PORT}"`);
  process.exit(1);
}
if (!existsSync(join(root, "index.html"))) {
  console.error(`serve: ${root} has no index.html: build the site first (npm --prefix www run build)`);
  process.exit(1);
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".safetensors": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

const isolated = process.env.ISOLATION !== "0";

const SECURITY_HEADERS = {
  // worker-src blob:: the threaded module's pool workers start from a blob (wasm-bindgen-rayon).
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; img-src 'self' blob: data:; connect-src 'self' https:; style-src 'self'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  // Any page may embed the card (its script, the bundle's rows and thumbnails) and the iframe.
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag, Last-Modified",
  "Cross-Origin-Resource-Policy": "cross-origin",
  // Cross-origin isolation: shared memory for the threaded module. require-corp admits every
  // resource of this site (same origin) and CORS requests to other hosts (weights by URL).
  ...(isolated ? { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" } : {}),
};

function send(response, status, text, method) {
  const body = Buffer.from(`${text}\n`);
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": body.length,
  });
  response.end(method === "HEAD" ? undefined : body);
}

/** The file a URL path names inside root, or null when it would leave root. */
function resolvePath(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const path = resolve(root, `.${decoded}`);
  return path === root || path.startsWith(root + sep) ? path : null;
}

const server = createServer(async (request, response) => {
  const method = request.method ?? "GET";
  const log = (status) => console.log(`${method} ${request.url} ${status}`);
  if (method === "OPTIONS") {
    // A CORS preflight (a range request from another origin may need one).
    response.writeHead(204, {
      ...SECURITY_HEADERS,
      "Access-Control-Allow-Methods": "GET, HEAD",
      "Access-Control-Allow-Headers": "Range",
      "Access-Control-Max-Age": "600",
    });
    log(204);
    return response.end();
  }
  if (method !== "GET" && method !== "HEAD") {
    response.setHeader("Allow", "GET, HEAD, OPTIONS");
    log(405);
    return send(response, 405, "Method not allowed", method);
  }
  const url = new URL(request.url ?? "/", `http://${HOST}`);
  let path = resolvePath(url.pathname);
  if (path === null) {
    log(400);
    return send(response, 400, "Bad request", method);
  }
  try {
    let info = await stat(path);
    if (info.isDirectory()) {
      if (!url.pathname.endsWith("/")) {
        response.writeHead(301, { ...SECURITY_HEADERS, Location: `${url.pathname}/${url.search}`, "Content-Length": 0 });
        log(301);
        return response.end();
      }
      path = join(path, "index.html");
      info = await stat(path);
    }
    if (!info.isFile()) throw Object.assign(new Error("not a file"), { code: "ENOENT" });
    // Byte ranges (the neuron card reads single rows of lens.safetensors).
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? "");
    if (range) {
      const start = Number(range[1]);
      const end = Math.min(range[2] ? Number(range[2]) : info.size - 1, info.size - 1);
      if (start > end) {
        response.writeHead(416, { ...SECURITY_HEADERS, "Content-Range": `bytes */${info.size}` });
        log(416);
        return response.end();
      }
      response.writeHead(206, {
        ...SECURITY_HEADERS,
        "Content-Type": MIME[extname(path).toLowerCase()] ?? "application/octet-stream",
        "Content-Length": end - start + 1,
        "Content-Range": `bytes ${start}-${end}/${info.size}`,
        "Cache-Control": "no-cache",
      });
      log(206);
      if (method === "HEAD") return response.end();
      createReadStream(path, { start, end })
        .on("error", () => response.destroy())
        .pipe(response);
      return;
    }
    response.writeHead(200, {
      "Accept-Ranges": "bytes",
      ...SECURITY_HEADERS,
      "Content-Type": MIME[extname(path).toLowerCase()] ?? "application/octet-stream",
      "Content-Length": info.size,
      "Cache-Control": "no-cache",
      "Last-Modified": info.mtime.toUTCString(),
    });
    log(200);
    if (method === "HEAD") return response.end();
    const stream = createReadStream(path);
    stream.on("error", () => response.destroy());
    stream.pipe(response);
  } catch (error) {
    const missing = error?.code === "ENOENT" || error?.code === "ENOTDIR";
    log(missing ? 404 : 500);
    send(response, missing ? 404 : 500, missing ? `Not found: ${url.pathname}` : "Internal server error", method);
  }
});

server.on("error", (error) => {
  console.error(`serve: ${error.message}`);
  process.exit(1);
});
server.listen(port, HOST, () => {
  const { port: actual } = server.address();
  console.log(`serve: ${root}`);
  console.log(`serve: open http://${HOST}:${actual}/ (benchmark: http://${HOST}:${actual}/bench.html); Ctrl+C stops`);
  if (!isolated) console.log("serve: ISOLATION=0: no COOP/COEP headers (the site's service worker adds them)");
});
