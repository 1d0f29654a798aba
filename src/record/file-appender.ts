/**
 * Appends pieces of bytes to a file in order, behind the caller: each `append` is queued after the
 * previous one and written with one gathered write where possible (short writes are resumed). The
 * first failure is kept; later appends are skipped.
 */
import type { FileHandle } from "node:fs/promises";

/** See the module comment. */
export class FileAppender {
  readonly #fh: FileHandle;
  #tail: Promise<void> = Promise.resolve();
  #failure: Error | undefined;

  constructor(fh: FileHandle) {
    this.#fh = fh;
  }

  /** The first write error, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Queues `pieces`; `done` runs once they are written (or skipped after a failure). */
  append(pieces: readonly Uint8Array[], done?: () => void): void {
    this.#tail = this.#tail.then(async () => {
      try {
        if (this.#failure !== undefined) return;
        let rest = pieces.filter((p) => p.byteLength > 0);
        while (rest.length > 0) {
          let { bytesWritten } = await this.#fh.writev(rest);
          // A short write: drop what went out and write the remainder.
          while (rest.length > 0 && bytesWritten >= rest[0]!.byteLength) {
            bytesWritten -= rest[0]!.byteLength;
            rest = rest.slice(1);
          }
          if (rest.length > 0 && bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
        }
      } catch (err) {
        this.#failure = err as Error;
      } finally {
        done?.();
      }
    });
  }

  /** Resolves once everything queued so far is written or skipped. */
  drained(): Promise<void> {
    return this.#tail;
  }

  /** Waits for the queue, then closes the file (errors closing it are ignored). */
  async close(): Promise<void> {
    await this.#tail;
    await this.#fh.close().catch(() => undefined);
  }
}
