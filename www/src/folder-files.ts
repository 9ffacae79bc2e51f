// The files of a folder the visitor hands over, each with its path in the folder: a folder (or
// files) dropped on the page, walked through the entries of the drop (`webkitGetAsEntry`), and a
// folder opened through the File System Access API (`showDirectoryPicker`, where the browser has
// it). The walkers take the few members they use, so the unit tests give them plain objects.

/** A file and its path in what was handed over ("holiday/beach.jpg"; a loose file: its name). */
export interface PathedFile {
  file: File;
  path: string;
}

/** What the walk uses of a drop's `FileSystemEntry`. */
export interface DropEntry {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
  file?(success: (file: File) => void, failure?: (error: unknown) => void): void;
  createReader?(): { readEntries(success: (entries: DropEntry[]) => void, failure?: (error: unknown) => void): void };
}

/** Every file below the dropped `entries` (folders walked to the bottom), with its path. */
export async function entryFiles(entries: DropEntry[], prefix = ""): Promise<PathedFile[]> {
  const found: PathedFile[] = [];
  for (const entry of entries) {
    const path = prefix + entry.name;
    if (entry.isFile && entry.file) {
      const read = entry.file.bind(entry);
      found.push({ file: await new Promise<File>((resolve, reject) => read(resolve, reject)), path });
    } else if (entry.isDirectory && entry.createReader) {
      found.push(...(await entryFiles(await allEntries(entry.createReader()), `${path}/`)));
    }
  }
  return found;
}

/** A folder's entries: `readEntries` gives them in batches (Chromium: 100) until an empty one. */
async function allEntries(reader: ReturnType<NonNullable<DropEntry["createReader"]>>): Promise<DropEntry[]> {
  const entries: DropEntry[] = [];
  for (;;) {
    const batch = await new Promise<DropEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return entries;
    entries.push(...batch);
  }
}

/** The files of a drop: its entries walked where the browser gives them, else its plain files. */
export async function droppedFiles(transfer: DataTransfer): Promise<PathedFile[]> {
  const entries = [...transfer.items]
    .map((item) => item.webkitGetAsEntry?.() as DropEntry | null | undefined)
    .filter((entry): entry is DropEntry => entry != null);
  if (entries.length > 0) return entryFiles(entries);
  return [...transfer.files].map((file) => ({ file, path: file.name }));
}

/** What the walk uses of a `FileSystemDirectoryHandle` (and of its entries). */
export interface FolderHandle {
  kind: "directory";
  name: string;
  values(): AsyncIterable<FolderHandle | { kind: "file"; name: string; getFile(): Promise<File> }>;
}

/** Every file below a folder opened with `showDirectoryPicker`, with its path from the folder's
 * own name on (as a folder input gives `webkitRelativePath`). */
export async function folderFiles(folder: FolderHandle, prefix = `${folder.name}/`): Promise<PathedFile[]> {
  const found: PathedFile[] = [];
  for await (const entry of folder.values()) {
    if (entry.kind === "file") found.push({ file: await entry.getFile(), path: prefix + entry.name });
    else found.push(...(await folderFiles(entry, `${prefix}${entry.name}/`)));
  }
  return found;
}

/** The File System Access API's folder picker, where the browser has it. */
export function folderPicker(): (() => Promise<FolderHandle>) | null {
  const picker = (globalThis as { showDirectoryPicker?: (options?: { mode?: string }) => Promise<FolderHandle> }).showDirectoryPicker;
  return picker ? () => picker({ mode: "read" }) : null;
}
