/**
 * An exclusive lock on a data directory (durable topics, MQTT sessions, a bridge's queue), so that
 * two processes never append to the same files. The lock is a file `LOCK` in the directory naming
 * its holder (pid, process start time, host, what it is, since when). It is created whole and
 * atomically (written to a private file, then hard-linked into place), so it is never seen half
 * written. A lock whose holder is gone (no such pid on this host, or the pid now belongs to a
 * process that started later) is stale and taken over; a lock held from another host is never
 * taken over, since its holder cannot be checked from here.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import { processRunning, procStartTime } from "./proc-stat.js";

/** Who holds a lock, as written in its `LOCK` file. */
export interface LockHolder {
  pid: number;
  /** Start time of the process (clock ticks since boot), when the OS tells it. */
  start?: string;
  host: string;
  /** What holds it, e.g. "myelin hub (durable topics)". */
  what: string;
  /** When it was taken, in ms since the Unix epoch. */
  since: number;
}

/** Options of {@link DirLock.acquire}. */
export interface DirLockOptions {
  /** What takes the lock, shown to whoever finds it taken. */
  what: string;
  /** This host's name (default `os.hostname()`). */
  host?: string;
  /** Called when a stale lock is taken over. */
  log?: (line: string) => void;
}

/** The name of the lock file in a locked directory. */
export const LOCK_FILE = "LOCK";

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid !== "number" || typeof v.host !== "string") return undefined;
    return {
      pid: v.pid,
      host: v.host,
      what: typeof v.what === "string" ? v.what : "a process",
      since: typeof v.since === "number" ? v.since : 0,
      ...(typeof v.start === "string" ? { start: v.start } : {}),
    };
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * True if the holder's process still runs (always true for a holder on another host, which cannot
 * be checked from here). `host` is this host's name.
 */
export function holderAlive(h: LockHolder, host: string = hostname()): boolean {
  if (h.host !== host) return true;
  if (!processRunning(h.pid)) return false; // gone, or a zombie not yet reaped
  if (h.start === undefined) return true;
  const now = procStartTime(h.pid);
  return now === undefined || now === h.start;
}

function describe(h: LockHolder): string {
  const since = h.since > 0 ? ` since ${new Date(h.since).toISOString()}` : "";
  return `${h.what}, pid ${h.pid} on host ${h.host}${since}`;
}

/** An exclusive lock on a directory, held until {@link DirLock.release}. */
export class DirLock {
  readonly dir: string;
  readonly #path: string;
  readonly #content: string;
  #held = true;

  private constructor(dir: string, content: string) {
    this.dir = dir;
    this.#path = join(dir, LOCK_FILE);
    this.#content = content;
  }

  /**
   * Takes the lock of `dir` (created if missing), taking over a stale one.
   * @throws MyelinError ERR_LOCKED if a live process holds it (the message names it);
   *   ERR_STORAGE if the lock file cannot be written
   */
  static acquire(dir: string, opts: DirLockOptions): DirLock {
    const host = opts.host ?? hostname();
    const me: LockHolder = { pid: process.pid, host, what: opts.what, since: Date.now() };
    const start = procStartTime(process.pid);
    if (start !== undefined) me.start = start;
    const content = JSON.stringify(me) + "\n";
    const path = join(dir, LOCK_FILE);
    const own = join(dir, `${LOCK_FILE}.${process.pid}.${randomBytes(4).toString("hex")}`);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const fd = openSync(own, "wx", 0o600);
      try {
        writeSync(fd, content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new MyelinError(
        "ERR_STORAGE",
        `cannot lock ${dir}: ${(e as Error).message}; check that the directory is writable`,
        { cause: e },
      );
    }
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          linkSync(own, path);
          return new DirLock(dir, content);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
        const text = readText(path);
        if (text === undefined) continue; // released meanwhile
        const holder = parseHolder(text);
        if (holder !== undefined && holderAlive(holder, host)) {
          const where =
            holder.host === host
              ? "stop that process, or give this one its own data directory (--data-dir or MYELIN_DATA_DIR)"
              : `it cannot be checked from host ${host}; if host ${holder.host} no longer uses this directory, remove ${path}`;
          throw new MyelinError("ERR_LOCKED", `${dir} is in use by ${describe(holder)}; ${where}`);
        }
        // Stale: move it aside, then make sure what moved is the lock judged stale, not a new one.
        const aside = join(dir, `${LOCK_FILE}.stale.${process.pid}.${randomBytes(4).toString("hex")}`);
        try {
          renameSync(path, aside);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
          throw e;
        }
        const moved = readText(aside);
        if (moved !== text) {
          try {
            linkSync(aside, path); // another process's fresh lock: put it back
          } catch {
            // a third process took the place meanwhile; the next round sees it
          }
        } else {
          opts.log?.(
            `${dir}: took over the lock of ${holder === undefined ? "an unreadable lock file" : describe(holder)}, which is no longer running`,
          );
        }
        unlinkSync(aside);
      }
      throw new MyelinError(
        "ERR_LOCKED",
        `${dir}: the lock kept changing hands while taking it; another process is starting on this directory`,
      );
    } catch (e) {
      if (e instanceof MyelinError) throw e;
      throw new MyelinError("ERR_STORAGE", `cannot lock ${dir}: ${(e as Error).message}`, { cause: e });
    } finally {
      try {
        unlinkSync(own);
      } catch {
        // already gone
      }
    }
  }

  /** Who holds the lock of `dir` now, if anyone. */
  static holder(dir: string): LockHolder | undefined {
    const text = readText(join(dir, LOCK_FILE));
    return text === undefined ? undefined : parseHolder(text);
  }

  /** Releases the lock (removes the lock file if it is still this one). Safe to call twice. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      if (readText(this.#path) === this.#content) unlinkSync(this.#path);
    } catch {
      // gone already, or the directory was removed
    }
  }
}
