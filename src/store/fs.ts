/**
 * The few file operations the store needs, behind a small interface so tests can inject faults
 * (ENOSPC, EIO) and count fsyncs. `nodeStoreFs` is the real implementation on node:fs/promises.
 */
import { mkdir, open, readdir, unlink, type FileHandle } from "node:fs/promises";

/** An open file. Offsets and lengths are in bytes. */
export interface StoreFile {
  /** Reads up to `length` bytes at file offset `position` into `buf[offset..]`; returns the bytes read (0 at EOF). */
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes `buf[offset, offset + length)` at file offset `position`; returns the bytes written (may be fewer). */
  write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** fdatasync(2): the written data (and the size) reach the disk. */
  datasync(): Promise<void>;
  /** ftruncate(2) to `length` bytes. */
  truncate(length: number): Promise<void>;
  /** The file's size in bytes. */
  size(): Promise<number>;
  close(): Promise<void>;
}

/** File-system operations of the store. Rejections carry Node's `code` (ENOENT, ENOSPC, ...). */
export interface StoreFs {
  /** Opens a file: "r" read-only, "r+" read-write (must exist), "wx" create new (must not exist). */
  open(path: string, flags: "r" | "r+" | "wx"): Promise<StoreFile>;
  /** Names of the entries of a directory. */
  readdir(dir: string): Promise<string[]>;
  /** Creates a directory and its parents if missing. */
  mkdirp(dir: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync(2) a directory, so created or deleted entries survive a power cut. */
  syncDir(dir: string): Promise<void>;
}

class NodeFile implements StoreFile {
  constructor(readonly fh: FileHandle) {}
  async read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(buf, offset, length, position)).bytesRead;
  }
  async write(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.write(buf, offset, length, position)).bytesWritten;
  }
  datasync(): Promise<void> {
    return this.fh.datasync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** The real file system, through node:fs/promises. */
export const nodeStoreFs: StoreFs = {
  async open(path, flags) {
    // Stored messages are private to the owner: 0600 (an existing file keeps its mode).
    return new NodeFile(await open(path, flags, 0o600));
  },
  readdir(dir) {
    return readdir(dir);
  },
  async mkdirp(dir) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  },
  unlink(path) {
    return unlink(path);
  },
  async syncDir(dir) {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};
