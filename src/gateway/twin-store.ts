/**
 * The twins of the MQTT gateway's devices, kept durably: one file per device
 * (`<dir>/<device>.json`), each replaced atomically (temp file, fsync, rename, fsync of the
 * directory: see `src/store/atomic-file.ts`), so a crash leaves the old twin or the new one,
 * whole. Updates of one device run one after another (read, change, write, then publish the
 * change); an update resolves once its twin is on disk, and one that fails to be written leaves
 * the twin as it was. Without a directory, twins live in memory only.
 *
 * The directory belongs to the gateway's data directory, whose lock the gateway holds.
 */
import { mkdir, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { myelinError } from "../errors.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { deviceNameProblem, twinFromFile, twinToFile, type TwinDocument } from "./twin-document.js";

/** What changed in a twin, as the change stream (`/_twins/updates`) reports it. */
export type TwinChangeKind = "created" | "desired" | "reported" | "connection" | "deleted";

/** A change of a twin: its kind and the twin after it (before it, for `deleted`). */
export interface TwinChange {
  kind: TwinChangeKind;
  twin: TwinDocument;
}

/** Options of {@link TwinStore.open}. */
export interface TwinStoreOptions {
  /** Where twin files go; without it twins live in memory only. */
  dir?: string;
  /** Most twins kept; a new device beyond it is refused. */
  maxTwins: number;
  /** Human-readable events (a damaged file set aside). */
  log?: (line: string) => void;
}

/**
 * What an update does with the twin it is given (undefined: the device has none): return the new
 * twin with the kind of change, or undefined to change nothing. It may throw to refuse.
 */
export type TwinUpdater = (
  current: TwinDocument | undefined,
) => { twin: TwinDocument; kind: TwinChangeKind } | undefined;

/** The twins, in memory and on disk. Open with {@link TwinStore.open}. */
export class TwinStore {
  readonly #opts: TwinStoreOptions;
  readonly #twins = new Map<string, TwinDocument>();
  /** The last update of each device still running (updates of one device run in turn). */
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<(c: TwinChange) => void>();
  #closed = false;

  private constructor(opts: TwinStoreOptions) {
    this.#opts = opts;
  }

  /**
   * Opens the store, loading every twin file of `dir` (created if missing). A file that cannot be
   * read as a twin is renamed `<name>.damaged-<ms>` (kept for inspection, never deleted) and logged;
   * leftover temp files of an interrupted write are removed.
   * @throws MyelinError ERR_STORAGE when the directory cannot be created or read
   */
  static async open(opts: TwinStoreOptions): Promise<TwinStore> {
    const s = new TwinStore(opts);
    if (opts.dir !== undefined) await s.#load(opts.dir);
    return s;
  }

  async #load(dir: string): Promise<void> {
    let names: string[];
    try {
      await mkdir(dir, { recursive: true });
      names = await readdir(dir);
    } catch (err) {
      throw myelinError(
        "ERR_STORAGE",
        `cannot open the twin directory ${dir}: ${(err as Error).message}; check the data directory's permissions`,
        { cause: err },
      );
    }
    for (const name of names.sort()) {
      const path = join(dir, name);
      if (name.startsWith(".") && name.endsWith(".tmp")) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!name.endsWith(".json")) continue;
      const device = name.slice(0, -".json".length);
      try {
        if (deviceNameProblem(device) !== undefined) throw new Error("the file name is not a device name");
        this.#twins.set(device, twinFromFile(await readFile(path, "utf8"), device));
      } catch (err) {
        const aside = `${path}.damaged-${Date.now()}`;
        await rename(path, aside).catch(() => undefined);
        this.#opts.log?.(
          `twin file ${path} cannot be read (${(err as Error).message}); kept as ${aside}, the device starts without a twin`,
        );
      }
    }
  }

  /** Number of twins. */
  get size(): number {
    return this.#twins.size;
  }

  /** Where twin files go (undefined: memory only). */
  get dir(): string | undefined {
    return this.#opts.dir;
  }

  /** The twin of `device`, or undefined. */
  get(device: string): TwinDocument | undefined {
    return this.#twins.get(device);
  }

  /** Every twin, sorted by device name. */
  list(): TwinDocument[] {
    return [...this.#twins.values()].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
  }

  /** Calls `fn` after every change is on disk; returns a function that stops it. */
  onChange(fn: (c: TwinChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Changes the twin of `device`: after the updates of the device before it, calls `updater` with
   * the twin as it is then, writes the result and publishes the change. Resolves with the twin
   * after the update (the same twin when nothing changed; undefined when there is none).
   * @throws what `updater` throws; MyelinError ERR_STORAGE when the twin cannot be written (the
   *   twin is left as it was); ERR_INVALID_ARGUMENT when a new twin would exceed `maxTwins`;
   *   ERR_CLOSED after close
   */
  update(device: string, updater: TwinUpdater): Promise<TwinDocument | undefined> {
    const prev = this.#tails.get(device) ?? Promise.resolve();
    const run = prev.then(
      () => this.#apply(device, updater),
      () => this.#apply(device, updater),
    );
    this.#tails.set(device, run);
    const cleanup = (): void => {
      if (this.#tails.get(device) === run) this.#tails.delete(device);
    };
    run.then(cleanup, cleanup);
    return run;
  }

  async #apply(device: string, updater: TwinUpdater): Promise<TwinDocument | undefined> {
    if (this.#closed)
      throw myelinError("ERR_CLOSED", `the twin store is closed; twin ${device} was not changed`);
    const current = this.#twins.get(device);
    const r = updater(current);
    if (r === undefined) return current;
    if (r.kind === "deleted") {
      if (current === undefined) return undefined;
      if (this.#opts.dir !== undefined) await this.#remove(device);
      this.#twins.delete(device);
      this.#emit({ kind: "deleted", twin: current });
      return undefined;
    }
    if (current === undefined && this.#twins.size >= this.#opts.maxTwins) {
      throw myelinError(
        "ERR_INVALID_ARGUMENT",
        `no twin created for device ${device}: the gateway holds ${this.#twins.size} twins, its limit (twins.maxTwins); delete unused twins (\`myelin twin delete\`) or raise the limit`,
      );
    }
    if (this.#opts.dir !== undefined) {
      await writeFileAtomic(join(this.#opts.dir, `${device}.json`), twinToFile(r.twin));
    }
    this.#twins.set(device, r.twin);
    this.#emit({ kind: current === undefined ? "created" : r.kind, twin: r.twin });
    return r.twin;
  }

  async #remove(device: string): Promise<void> {
    const path = join(this.#opts.dir!, `${device}.json`);
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw myelinError(
        "ERR_STORAGE",
        `cannot delete the twin file ${path}: ${(err as Error).message}; the twin is kept`,
        { cause: err },
      );
    }
  }

  #emit(c: TwinChange): void {
    for (const fn of [...this.#listeners]) {
      try {
        fn(c);
      } catch (err) {
        this.#opts.log?.(`a twin change listener failed: ${(err as Error).message}`);
      }
    }
  }

  /** Waits for the updates under way, then refuses new ones. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#tails.values()]);
    this.#closed = true;
    this.#listeners.clear();
  }
}
