/**
 * A bounded on-disk log of one supervised process. The process writes its stdout and stderr
 * straight into `<name>.log` (opened O_APPEND), so its output survives a hub restart and an
 * adopted process keeps logging; the supervisor tails the file for new lines and bounds it by
 * copy-and-truncate: when the file passes `maxBytes`, its content moves to `<name>.log.1` (the
 * previous `.1` is dropped) and the file is truncated in place. At most about 2 × maxBytes are
 * kept. Lines written between the copy and the truncation (microseconds) can be lost.
 */
import {
  closeSync,
  copyFileSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  appendFileSync,
} from "node:fs";

/** Options of a LogRing. */
export interface LogRingOptions {
  /** Path of the live file; the older half is `<path>.1`. */
  path: string;
  /** Size at which the live file is rotated, in bytes. */
  maxBytes: number;
  /** Longest line passed to `onLine`, in bytes of UTF-8 text (longer ones are cut). */
  maxLineBytes?: number;
}

/** One process's log on disk; `poll()` reads what was appended since the last call. */
export class LogRing {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #maxLine: number;
  #offset = 0;
  #partial = "";

  constructor(opts: LogRingOptions) {
    this.path = opts.path;
    this.#maxBytes = opts.maxBytes;
    this.#maxLine = opts.maxLineBytes ?? 16 * 1024;
  }

  /** Opens the file for a child's stdout/stderr (append, created 0600); the caller closes the fd after spawn. */
  openForChild(): number {
    return openSync(this.path, "a", 0o600);
  }

  /** Starts tailing at the current end (output already there is not reported again). */
  skipToEnd(): void {
    try {
      this.#offset = statSync(this.path).size;
    } catch {
      this.#offset = 0;
    }
    this.#partial = "";
  }

  /** Appends a line written by the supervisor itself (e.g. why the process restarted). */
  note(line: string): void {
    try {
      appendFileSync(this.path, `${line}\n`, { mode: 0o600 });
    } catch {
      // the log is best effort
    }
  }

  /** Reads new complete lines, rotating the file when it is over maxBytes; returns them. */
  poll(): string[] {
    let size: number;
    try {
      size = statSync(this.path).size;
    } catch {
      return [];
    }
    if (size < this.#offset) {
      // truncated behind our back: start over
      this.#offset = 0;
      this.#partial = "";
    }
    const lines: string[] = [];
    if (size > this.#offset) {
      const fd = openSync(this.path, "r");
      try {
        const buf = Buffer.allocUnsafe(Math.min(size - this.#offset, 4 * 1024 * 1024));
        let n: number;
        while (this.#offset < size && (n = readSync(fd, buf, 0, buf.length, this.#offset)) > 0) {
          this.#offset += n;
          const text = this.#partial + buf.toString("utf8", 0, n);
          const parts = text.split("\n");
          this.#partial = parts.pop() ?? "";
          if (this.#partial.length > this.#maxLine) {
            parts.push(this.#partial);
            this.#partial = "";
          }
          for (const p of parts) lines.push(p.length > this.#maxLine ? `${p.slice(0, this.#maxLine)}…` : p);
        }
      } finally {
        closeSync(fd);
      }
    }
    if (this.#offset > this.#maxBytes) this.#rotate();
    return lines;
  }

  #rotate(): void {
    try {
      copyFileSync(this.path, `${this.path}.1`);
      truncateSync(this.path, 0);
      this.#offset = 0;
    } catch {
      // try again at the next poll
    }
  }

  /** The last `n` lines kept (older file first). */
  last(n: number): string[] {
    const read = (p: string): string => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return "";
      }
    };
    const text = read(`${this.path}.1`) + read(this.path);
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return n >= lines.length ? lines : lines.slice(lines.length - n);
  }
}
