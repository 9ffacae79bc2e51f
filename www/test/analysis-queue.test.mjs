// The lab's queue (src/analysis-queue.ts): order, one run at a time, cancelling the waiting
// images, batches, failures and runs again; and its status line.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AnalysisQueue, queueSummary } from "../src/analysis-queue.ts";

/** A queue whose runs wait until the test settles them; `log` records every hook call. */
function harness() {
  const log = [];
  const pending = new Map();
  let running = 0;
  let mostAtOnce = 0;
  const queue = new AnalysisQueue({
    run(value) {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      log.push(`run ${value}`);
      return new Promise((resolve, reject) => pending.set(value, { resolve, reject })).finally(() => running--);
    },
    isCancellation: (error) => error === CANCELLED,
    added: (entry) => log.push(`added ${entry.value}`),
    changed: (entry) => log.push(`${entry.value} ${entry.state}${entry.detail === null ? "" : ` (${entry.detail})`}`),
    cleared: (values) => log.push(`cleared [${values.join(",")}]`),
  });
  /** Lets the queue reach its next await. */
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const finish = async (value, label = `${value} done`) => {
    pending.get(value).resolve(label);
    await tick();
  };
  const fail = async (value, error) => {
    pending.get(value).reject(error);
    await tick();
  };
  const states = () => queue.items.map((entry) => `${entry.value}:${entry.state}`).join(" ");
  return { queue, log, finish, fail, tick, states, mostAtOnce: () => mostAtOnce };
}

const CANCELLED = { cancelled: true };

describe("AnalysisQueue", () => {
  it("runs the images one at a time, in order", async () => {
    const h = harness();
    const drained = h.queue.add(["a", "b", "c"]);
    await h.tick();
    assert.equal(h.states(), "a:running b:queued c:queued");
    await h.finish("a", "tabby cat");
    assert.equal(h.states(), "a:done b:running c:queued");
    await h.finish("b");
    await h.finish("c");
    await drained;
    assert.equal(h.states(), "a:done b:done c:done");
    assert.equal(h.mostAtOnce(), 1);
    assert.deepEqual(h.log, [
      "cleared []",
      "added a",
      "added b",
      "added c",
      "a running",
      "run a",
      "a done (tabby cat)",
      "b running",
      "run b",
      "b done (b done)",
      "c running",
      "run c",
      "c done (c done)",
    ]);
    assert.deepEqual(h.queue.items[0], { value: "a", state: "done", detail: "tabby cat" });
    assert.equal(h.queue.busy, false);
  });

  it("cancels the waiting images; the running one finishes", async () => {
    const h = harness();
    const drained = h.queue.add(["a", "b", "c"]);
    await h.tick();
    h.queue.cancelWaiting();
    assert.equal(h.states(), "a:running b:cancelled c:cancelled");
    assert.deepEqual(h.queue.counts(), { queued: 0, running: 1, done: 0, error: 0, cancelled: 2 });
    await h.finish("a");
    await drained;
    assert.equal(h.states(), "a:done b:cancelled c:cancelled");
    assert.ok(!h.log.includes("run b") && !h.log.includes("run c"));
  });

  it("adds to the running batch; the second add resolves at once", async () => {
    const h = harness();
    const first = h.queue.add(["a"]);
    await h.tick();
    let secondDone = false;
    const second = h.queue.add(["b"]).then(() => (secondDone = true));
    await h.tick();
    assert.equal(secondDone, true);
    assert.equal(h.states(), "a:running b:queued");
    assert.equal(h.log.filter((line) => line.startsWith("cleared")).length, 1);
    await h.finish("a");
    await h.finish("b");
    await Promise.all([first, second]);
    assert.equal(h.states(), "a:done b:done");
  });

  it("starts a new batch once the previous one has finished", async () => {
    const h = harness();
    const first = h.queue.add(["a", "b"]);
    await h.tick();
    await h.finish("a");
    await h.finish("b");
    await first;
    const second = h.queue.add(["c"]);
    await h.tick();
    assert.equal(h.states(), "c:running");
    assert.ok(h.log.includes("cleared [a,b]"));
    await h.finish("c");
    await second;
  });

  it("tells failures from cancellations", async () => {
    const h = harness();
    const drained = h.queue.add(["a", "b", "c"]);
    await h.tick();
    await h.fail("a", new Error("HTTP 404"));
    await h.fail("b", CANCELLED);
    await h.fail("c", "a string");
    await drained;
    assert.deepEqual(
      h.queue.items.map((entry) => [entry.state, entry.detail]),
      [
        ["error", "HTTP 404"],
        ["cancelled", null],
        ["error", "a string"],
      ],
    );
    assert.deepEqual(h.queue.counts(), { queued: 0, running: 0, done: 0, error: 2, cancelled: 1 });
  });

  it("runs a finished image again, but not a waiting or cancelled one", async () => {
    const h = harness();
    const drained = h.queue.add(["a", "b"]);
    await h.tick();
    h.queue.cancelWaiting();
    await h.fail("a", new Error("boom"));
    await drained;
    assert.equal(h.states(), "a:error b:cancelled");
    await h.queue.rerun("b");
    await h.queue.rerun("unknown");
    assert.equal(h.log.filter((line) => line === "run b").length, 0);
    const again = h.queue.rerun("a");
    await h.tick();
    assert.equal(h.states(), "a:running b:cancelled");
    await h.finish("a", "horse");
    await again;
    assert.deepEqual(h.queue.items[0], { value: "a", state: "done", detail: "horse" });
  });

  it("clears while running: the waiting ones are cancelled, the running one finishes unlisted", async () => {
    const h = harness();
    const first = h.queue.add(["a", "b"]);
    await h.tick();
    h.queue.clear();
    assert.equal(h.states(), "");
    assert.ok(h.log.includes("b cancelled"));
    assert.ok(h.log.includes("cleared [a,b]"));
    const second = h.queue.add(["c"]);
    await h.finish("a");
    assert.ok(h.log.includes("a done (a done)"));
    // The running drain goes on with the new batch.
    assert.equal(h.states(), "c:running");
    await h.finish("c");
    await Promise.all([first, second]);
    assert.equal(h.states(), "c:done");
    assert.deepEqual(h.queue.counts(), { queued: 0, running: 0, done: 1, error: 0, cancelled: 0 });
  });
});

describe("queueSummary", () => {
  const counts = (partial) => ({ queued: 0, running: 0, done: 0, error: 0, cancelled: 0, ...partial });

  it("says nothing for fewer than two images", () => {
    assert.equal(queueSummary(counts({})), "");
    assert.equal(queueSummary(counts({ running: 1 })), "");
    assert.equal(queueSummary(counts({ done: 1 })), "");
  });

  it("counts the analysed, waiting (queued or running), failed and cancelled images", () => {
    assert.equal(
      queueSummary(counts({ done: 3, queued: 1, running: 1, error: 1, cancelled: 2 })),
      "3 analysed, 2 waiting, 1 failed, 2 cancelled.",
    );
    assert.equal(queueSummary(counts({ done: 50 })), "50 analysed, 0 waiting, 0 failed, 0 cancelled.");
  });
});
