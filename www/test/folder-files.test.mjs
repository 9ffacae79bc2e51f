// Folders handed over by a drop or the File System Access API (src/folder-files.ts): every file
// below them, with its path, however deep and however many batches the browser reads them in.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { entryFiles, folderFiles } from "../src/folder-files.ts";

const file = (name) => new File([name], name);

/** A drop's file entry. */
const fileEntry = (name) => ({ isFile: true, isDirectory: false, name, file: (done) => done(file(name)) });

/** A drop's folder entry whose reader gives `children` in batches of `batch`, then nothing. */
function folderEntry(name, children, batch = 2) {
  return {
    isFile: false,
    isDirectory: true,
    name,
    createReader() {
      let next = 0;
      return {
        readEntries(done) {
          done(children.slice(next, next + batch));
          next += batch;
        },
      };
    },
  };
}

describe("entryFiles", () => {
  it("walks dropped folders to the bottom, over every batch of entries", async () => {
    const drop = [
      folderEntry("holiday", [fileEntry("a.jpg"), fileEntry("b.png"), fileEntry("notes.txt"), folderEntry("day2", [fileEntry("c.jpg")])]),
      fileEntry("loose.webp"),
    ];
    const found = await entryFiles(drop);
    assert.deepEqual(
      found.map(({ path }) => path),
      ["holiday/a.jpg", "holiday/b.png", "holiday/notes.txt", "holiday/day2/c.jpg", "loose.webp"],
    );
    assert.equal(await found[3].file.text(), "c.jpg");
  });

  it("says nothing of an empty folder and fails where the browser cannot read a file", async () => {
    assert.deepEqual(await entryFiles([folderEntry("empty", [])]), []);
    const unreadable = { isFile: true, isDirectory: false, name: "x.jpg", file: (_done, fail) => fail(new Error("NotReadableError")) };
    await assert.rejects(entryFiles([unreadable]), /NotReadableError/);
  });
});

/** A File System Access API folder handle. */
function handle(name, children) {
  return {
    kind: "directory",
    name,
    async *values() {
      yield* children;
    },
  };
}
const fileHandle = (name) => ({ kind: "file", name, getFile: async () => file(name) });

describe("folderFiles", () => {
  it("gives paths from the folder's own name, as a folder input does", async () => {
    const folder = handle("photos", [fileHandle("1.jpg"), handle("more", [fileHandle("2.jpg")])]);
    assert.deepEqual(
      (await folderFiles(folder)).map(({ path }) => path),
      ["photos/1.jpg", "photos/more/2.jpg"],
    );
  });
});
