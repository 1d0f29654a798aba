/**
 * Persistent state of a durable consumer: the ack floor, the handled seqs above it and the
 * delivery counts of outstanding messages (a `ConsumerSnapshot`), in one small checksummed file
 * written atomically (temp file, fdatasync, rename, fsync of the directory). The previous good
 * copy is kept next to it (`<path>.prev`) so a damaged file falls back to it. Frequent saves are
 * coalesced: at most one write in flight, and the latest state wins. Format and semantics in
 * docs/store-consumers.md.
 */
import { rename } from "node:fs/promises";
import { dirname } from "node:path";
import { ClosedError, MyelinError } from "../errors.js";
import type { ConsumerSnapshot } from "./consumer.js";
import { crc32c } from "./crc32c.js";
import { nodeStoreFs, type StoreFile, type StoreFs } from "./fs.js";

/** The file operations the state file needs: the store's, plus an atomic rename. */
export interface ConsumerStateFs extends Pick<StoreFs, "open" | "unlink" | "syncDir" | "mkdirp"> {
  /** rename(2): atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>;
}

/** The real file system: `nodeStoreFs` plus node:fs/promises `rename`. */
export const nodeConsumerStateFs: ConsumerStateFs = { ...nodeStoreFs, rename };

/** The 4 magic bytes at the start of a state file: "MYCS". */
export const CONSUMER_STATE_MAGIC = Uint8Array.of(0x4d, 0x59, 0x43, 0x53);
/** Version of the state file format written by this code. */
export const CONSUMER_STATE_VERSION = 1;
/** Bytes of the fixed header before the JSON body. */
export const CONSUMER_STATE_HEADER_BYTES = 16;
/** Largest body accepted when reading, in bytes (a state file is normally a few hundred bytes). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/**
 * Most handled seqs above the floor a state file may hold: 2^24, the most a consumer can keep (they
 * live in a `Set`, whose size V8 caps there). Checked before the runs are expanded, so a small file
 * whose runs claim billions of seqs is refused at once instead of exhausting memory.
 */
export const MAX_HANDLED_ABOVE_FLOOR = 2 ** 24;

function corrupt(what: string, why: string, cause?: unknown): MyelinError {
  return new MyelinError(
    "ERR_STATE_CORRUPT",
    `consumer state ${what} is damaged: ${why}; delete it to restart the consumer from its startAt`,
    cause === undefined ? undefined : { cause },
  );
}

function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function storageError(what: string, cause: unknown): MyelinError {
  if (cause instanceof MyelinError) return cause;
  const code = errnoOf(cause);
  const why = code === "ENOSPC" ? "the disk is full (ENOSPC)" : (code ?? String(cause));
  return new MyelinError("ERR_STORAGE", `${what}: ${why}`, { cause });
}

/** Sorted distinct seqs → `[start, count]` runs. */
function toRuns(sorted: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === s) last[1]++;
    else out.push([s, 1]);
  }
  return out;
}

/**
 * Encodes a snapshot as a state file: 16-byte header (magic "MYCS", u16 LE version, u16 LE
 * flags = 0, u32 LE body length, u32 LE CRC-32C of header bytes 0..11 then the body), then a
 * UTF-8 JSON body `{"floor":F,"handled":[[start,count],...],"outstanding":[[seq,deliveries],...]}`.
 * The snapshot is not checked here; `ConsumerState.snapshot()` output is always valid.
 */
export function encodeConsumerState(s: ConsumerSnapshot): Uint8Array {
  const body = new TextEncoder().encode(
    JSON.stringify({ floor: s.floor, handled: toRuns(s.handled), outstanding: s.outstanding }),
  );
  const out = new Uint8Array(CONSUMER_STATE_HEADER_BYTES + body.length);
  const dv = new DataView(out.buffer);
  out.set(CONSUMER_STATE_MAGIC, 0);
  dv.setUint16(4, CONSUMER_STATE_VERSION, true);
  dv.setUint16(6, 0, true);
  dv.setUint32(8, body.length, true);
  out.set(body, CONSUMER_STATE_HEADER_BYTES);
  dv.setUint32(12, crc32c(body, 0, body.length, crc32c(out, 0, 12)), true);
  return out;
}

/** JSON of a (parsed JSON) value for an error message, at most 80 characters. */
function clipJson(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length <= 80 ? s : `${s.slice(0, 79)}…`;
}

function isInt(v: unknown, min: number): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= min;
}

/**
 * Decodes and validates a state file's bytes.
 * @param what names the file in error messages.
 * @throws MyelinError ERR_STATE_CORRUPT if the file is truncated, fails its checksum, has
 * another version or holds an inconsistent snapshot.
 */
export function decodeConsumerState(bytes: Uint8Array, what = "file"): ConsumerSnapshot {
  if (bytes.length < CONSUMER_STATE_HEADER_BYTES)
    throw corrupt(what, `${bytes.length} bytes, shorter than the ${CONSUMER_STATE_HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++)
    if (bytes[i] !== CONSUMER_STATE_MAGIC[i]) throw corrupt(what, "bad magic (not a consumer state file)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = dv.getUint32(8, true);
  if (bytes.length !== CONSUMER_STATE_HEADER_BYTES + len)
    throw corrupt(what, `${bytes.length} bytes, the header announces ${CONSUMER_STATE_HEADER_BYTES + len}`);
  const crc = crc32c(bytes, 16, bytes.length, crc32c(bytes, 0, 12));
  if (crc !== dv.getUint32(12, true)) throw corrupt(what, "checksum mismatch");
  const version = dv.getUint16(4, true);
  if (version !== CONSUMER_STATE_VERSION)
    throw corrupt(what, `format version ${version}, this Myelin reads ${CONSUMER_STATE_VERSION}`);
  let j: any;
  try {
    j = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(16)));
  } catch (e) {
    throw corrupt(what, "body is not UTF-8 JSON", e);
  }
  if (typeof j !== "object" || j === null || !isInt(j.floor, 0)) throw corrupt(what, "no valid floor");
  const floor: number = j.floor;
  if (!Array.isArray(j.handled) || !Array.isArray(j.outstanding))
    throw corrupt(what, "handled or outstanding is not a list");
  // Check every run and their total before expanding any: a run is two numbers in the file but
  // `count` seqs in memory.
  const runs = j.handled as unknown[];
  let prevEnd = floor + 1;
  let total = 0;
  for (const [i, run] of runs.entries()) {
    if (!Array.isArray(run) || run.length !== 2 || !isInt(run[0], prevEnd) || !isInt(run[1], 1))
      throw corrupt(what, `bad handled run ${i} ${clipJson(run)}`);
    const [start, count] = run as [number, number];
    if (!Number.isSafeInteger(start + count))
      throw corrupt(what, `handled run ${i} ${start}+${count} overflows`);
    total += count;
    if (total > MAX_HANDLED_ABOVE_FLOOR)
      throw corrupt(
        what,
        `handled runs 0..${i} hold ${total} seqs above the floor, more than a consumer can keep (${MAX_HANDLED_ABOVE_FLOOR})`,
      );
    prevEnd = start + count + 1;
  }
  // Outstanding seqs ascend, as the runs do: one merged walk checks that none is handled.
  const outstanding: Array<[number, number]> = [];
  let prevSeq = floor;
  let r = 0;
  for (const [i, o] of (j.outstanding as unknown[]).entries()) {
    if (!Array.isArray(o) || o.length !== 2 || !isInt(o[0], prevSeq + 1) || !isInt(o[1], 1))
      throw corrupt(what, `bad outstanding entry ${i} ${clipJson(o)}`);
    const [seq, deliveries] = o as [number, number];
    while (r < runs.length && (runs[r] as [number, number])[0] + (runs[r] as [number, number])[1] <= seq) r++;
    if (r < runs.length && (runs[r] as [number, number])[0] <= seq)
      throw corrupt(what, `seq ${seq} is both handled and outstanding`);
    outstanding.push([seq, deliveries]);
    prevSeq = seq;
  }
  const handled: number[] = new Array<number>(total);
  let h = 0;
  for (const run of runs as Array<[number, number]>) {
    for (let k = 0; k < run[1]; k++) handled[h++] = run[0] + k;
  }
  return { floor, handled, outstanding };
}

async function readWhole(fs: ConsumerStateFs, path: string): Promise<Uint8Array | undefined> {
  let f: StoreFile;
  try {
    f = await fs.open(path, "r");
  } catch (e) {
    if (errnoOf(e) === "ENOENT") return undefined;
    throw storageError(`cannot open consumer state ${path}`, e);
  }
  try {
    const size = await f.size();
    if (size > CONSUMER_STATE_HEADER_BYTES + MAX_BODY_BYTES)
      throw corrupt(path, `${size} bytes, larger than any state file`);
    const buf = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = await f.read(buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } catch (e) {
    throw storageError(`cannot read consumer state ${path}`, e);
  } finally {
    await f.close().catch(() => undefined);
  }
}

/**
 * Reads one state file.
 * @returns the snapshot, or undefined if the file does not exist.
 * @throws MyelinError ERR_STATE_CORRUPT if it is damaged; ERR_STORAGE if it cannot be read.
 */
export async function readConsumerStateFile(
  path: string,
  fs: ConsumerStateFs = nodeConsumerStateFs,
): Promise<ConsumerSnapshot | undefined> {
  const bytes = await readWhole(fs, path);
  return bytes === undefined ? undefined : decodeConsumerState(bytes, path);
}

/** Result of `ConsumerStateFile.load`. */
export interface LoadedConsumerState {
  /** The state to resume from; undefined when the consumer has never saved (start at `startAt`). */
  snapshot: ConsumerSnapshot | undefined;
  /**
   * Where it came from: `"current"` (the file), `"previous"` (the copy before the last save:
   * the file was damaged, or a crash hit between the two renames of a save), `"none"`.
   */
  from: "current" | "previous" | "none";
  /** Damage found on the way (ERR_STATE_CORRUPT errors): log them as warnings. */
  problems: MyelinError[];
}

/** Options of `ConsumerStateFile`. */
export interface ConsumerStateFileOptions {
  /** Path of the state file; `<path>.prev` and `<path>.tmp` are used next to it. */
  path: string;
  /** File operations (default: the real file system); tests inject faults through it. */
  fs?: ConsumerStateFs;
}

/** Counters of a `ConsumerStateFile`. */
export interface ConsumerStateFileStats {
  /** Calls to `save`. */
  saves: number;
  /** Files written (completed or failed); `saves - writes` saves were coalesced into others. */
  writes: number;
  /** Writes that failed. */
  failures: number;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * The state file of one durable consumer. `load()` once at start; `save()` as often as wanted
 * (after acks): saves are coalesced, at most one write is in flight, and each `save` resolves
 * once a write that includes its state (or a later one) is durable.
 */
export class ConsumerStateFile {
  /** Path of the state file. */
  readonly path: string;
  /** Path of the previous good copy. */
  readonly prevPath: string;
  /** Path of the temporary file a save writes before renaming it. */
  readonly tmpPath: string;
  readonly #fs: ConsumerStateFs;
  #queued: { source: ConsumerSnapshot | (() => ConsumerSnapshot); waiters: Waiter[] } | undefined;
  #running = false;
  #idle: Array<() => void> = [];
  #closed = false;
  #stats: ConsumerStateFileStats = { saves: 0, writes: 0, failures: 0 };

  constructor(opts: ConsumerStateFileOptions) {
    if (typeof opts.path !== "string" || opts.path === "")
      throw new MyelinError("ERR_INVALID_ARGUMENT", `path must be a non-empty string, got ${opts.path}`);
    this.path = opts.path;
    this.prevPath = `${opts.path}.prev`;
    this.tmpPath = `${opts.path}.tmp`;
    this.#fs = opts.fs ?? nodeConsumerStateFs;
  }

  /**
   * Reads the saved state: the file, else the previous good copy (reporting the damage in
   * `problems`), else none.
   * @throws MyelinError ERR_STATE_CORRUPT when a copy exists but none is intact: the caller
   * decides (e.g. delete the files and restart from `startAt`, redelivering); ERR_STORAGE on I/O errors.
   */
  async load(): Promise<LoadedConsumerState> {
    const problems: MyelinError[] = [];
    const tryRead = async (p: string): Promise<ConsumerSnapshot | undefined> => {
      try {
        return await readConsumerStateFile(p, this.#fs);
      } catch (e) {
        if (e instanceof MyelinError && e.code === "ERR_STATE_CORRUPT") {
          problems.push(e);
          return undefined;
        }
        throw e;
      }
    };
    const cur = await tryRead(this.path);
    if (cur !== undefined) return { snapshot: cur, from: "current", problems };
    const prev = await tryRead(this.prevPath);
    if (prev !== undefined) return { snapshot: prev, from: "previous", problems };
    if (problems.length === 0) return { snapshot: undefined, from: "none", problems };
    throw new MyelinError(
      "ERR_STATE_CORRUPT",
      `no intact consumer state at ${this.path}: ${problems.map((p) => p.message).join("; ")}`,
      { cause: problems[0] },
    );
  }

  /**
   * Saves `snapshot` (or what the function returns when the write starts: pass
   * `() => state.snapshot()` to avoid building one per ack). Coalesced with other saves.
   * @returns resolves once this state or a later one is durable.
   * @throws (rejects) MyelinError ERR_STORAGE if the write failed (the previous file is
   * intact; a later save retries); ClosedError ERR_CLOSED after `close()`.
   */
  save(snapshot: ConsumerSnapshot | (() => ConsumerSnapshot)): Promise<void> {
    if (this.#closed)
      return Promise.reject(new ClosedError("ERR_CLOSED", `consumer state ${this.path} is closed`));
    this.#stats.saves++;
    return new Promise<void>((resolve, reject) => {
      if (this.#queued === undefined) this.#queued = { source: snapshot, waiters: [] };
      else this.#queued.source = snapshot;
      this.#queued.waiters.push({ resolve, reject });
      this.#kick();
    });
  }

  /** Resolves when no save is queued or being written. */
  flush(): Promise<void> {
    if (!this.#running && this.#queued === undefined) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Counters; a fresh copy. */
  stats(): ConsumerStateFileStats {
    return { ...this.#stats };
  }

  /** Finishes queued saves, then refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #kick(): void {
    if (this.#running) return;
    const q = this.#queued;
    if (q === undefined) {
      for (const f of this.#idle.splice(0)) f();
      return;
    }
    this.#queued = undefined;
    this.#running = true;
    this.#stats.writes++;
    const write = async (): Promise<void> => {
      const snap = typeof q.source === "function" ? q.source() : q.source;
      await this.#write(encodeConsumerState(snap));
    };
    write()
      .then(
        () => {
          for (const w of q.waiters) w.resolve();
        },
        (e: unknown) => {
          this.#stats.failures++;
          const err = storageError(`cannot save consumer state ${this.path}`, e);
          for (const w of q.waiters) w.reject(err);
        },
      )
      .finally(() => {
        this.#running = false;
        this.#kick();
      });
  }

  async #write(bytes: Uint8Array): Promise<void> {
    const fs = this.#fs;
    const dir = dirname(this.path);
    await fs.mkdirp(dir);
    await fs.unlink(this.tmpPath).catch((e: unknown) => {
      if (errnoOf(e) !== "ENOENT") throw e;
    });
    const f = await fs.open(this.tmpPath, "wx");
    try {
      let done = 0;
      while (done < bytes.length) done += await f.write(bytes, done, bytes.length - done, done);
      await f.datasync();
    } finally {
      await f.close();
    }
    await fs.rename(this.path, this.prevPath).catch((e: unknown) => {
      if (errnoOf(e) !== "ENOENT") throw e;
    });
    await fs.rename(this.tmpPath, this.path);
    await fs.syncDir(dir);
  }
}
