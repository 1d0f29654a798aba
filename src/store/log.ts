/**
 * `DurableLog`: one durable topic's append-only log, stored as segment files in a directory
 * (format in docs/store-format.md). Appends resolve once the record is written under the fsync
 * policy, with group commit; reads see acknowledged records only; a failed write is refused and
 * rolled back, never acknowledged; recovery on open scans only the last segment and cuts off a
 * torn tail.
 */
import { join } from "node:path";
import { ClosedError, MyelinError } from "../errors.js";
import { nodeStoreFs, type StoreFile, type StoreFs } from "./fs.js";
import {
  RECORD_OVERHEAD_BYTES,
  SEGMENT_HEADER_BYTES,
  SegmentReader,
  type SegmentRecord,
  checkRecordSizes,
  decodeSegmentHeader,
  encodeRecordInto,
  encodeSegmentHeader,
  recordSize,
} from "./segment-format.js";

/**
 * When an append is acknowledged:
 * - `always`: after its bytes are written and fdatasync'd (concurrent appends share one fdatasync);
 * - `batch`: appends are gathered for up to `batchMs`, then written and fdatasync'd together;
 * - `never`: after the write to the OS (survives `kill -9`, not a power cut).
 */
export type FsyncPolicy = "always" | "batch" | "never";

/** Retention limits; whole old segments are deleted once they lie entirely outside every limit given. */
export interface RetentionOptions {
  /** Keep at least the newest this many messages; older whole segments go. */
  maxMessages?: number;
  /** Keep at least the newest this many bytes of segment files; older whole segments go. */
  maxBytes?: number;
  /** Delete a segment once all its records are older than this, in milliseconds. */
  maxAgeMs?: number;
}

/** Options of `DurableLog.open`. */
export interface DurableLogOptions {
  /** Directory of the log's segment files (created if missing). One log per directory. */
  dir: string;
  /** When an append is acknowledged; default `"always"` (the safe one). */
  fsync?: FsyncPolicy;
  /** For `fsync: "batch"`: the longest an append waits for its group commit, in milliseconds (default 5). */
  batchMs?: number;
  /** A segment is rolled once the next write would take it over this size, in bytes (default 64 MiB). */
  segmentBytes?: number;
  /** Retention limits (default: keep everything). */
  retention?: RetentionOptions;
  /** How often age retention is checked, in milliseconds (default 1000). */
  retentionIntervalMs?: number;
  /** Most bytes of appends waiting to be written; more are refused with ERR_BACKPRESSURE (default 64 MiB). */
  maxPendingBytes?: number;
  /**
   * Bytes of the newest records kept in memory, so readers that keep up with the writers are
   * served without touching the disk (default 8 MiB; 0 turns the cache off).
   */
  cacheBytes?: number;
  /** File operations (default: node:fs/promises); tests inject faults through it. */
  fs?: StoreFs;
  /** Clock for timestamps and age retention, in ms since the Unix epoch (default `Date.now`). */
  clock?: () => number;
  /** What recovery cut off, and why (a torn tail, or damage whose bytes were saved aside). */
  log?: (line: string) => void;
  /** Called after each fsync of a group commit with how long it took, in seconds (for the metrics). */
  onSync?: (seconds: number) => void;
}

/** Options of one append. */
export interface AppendOptions {
  /**
   * Timestamp of the record, in ms since the Unix epoch (default: the clock when `append` is
   * called). Raised to the previous record's timestamp if lower: timestamps never decrease.
   */
  ts?: number;
}

/** An acknowledged append. */
export interface AppendResult {
  /** The record's sequence number: the previous one plus 1, from 1. */
  seq: number;
  /** The record's timestamp, in ms since the Unix epoch. */
  ts: number;
}

/** Records stored by one `appendBatch`: consecutive sequence numbers from `firstSeq`. */
export interface AppendBatchResult {
  /** Sequence number of the first record (of the next one to be appended when `count` is 0). */
  firstSeq: number;
  /** How many records were stored. */
  count: number;
  /** Timestamp of the last record, in ms since the Unix epoch. */
  ts: number;
}

/** A record read back from the log. Its header and payload may be shared with the log's cache: read them, do not modify them. */
export interface LogRecord {
  /** Sequence number, from 1. */
  seq: number;
  /** Timestamp, in ms since the Unix epoch. */
  ts: number;
  header: Uint8Array;
  payload: Uint8Array;
}

/**
 * Records as the log stores them (docs/store-format.md): consecutive sequence numbers from
 * `firstSeq`, their bytes back to back in the segment format, checksums included.
 */
export interface RawRecords {
  /** Sequence number of the first record (of the next one to be appended when `count` is 0). */
  firstSeq: number;
  /** How many records `bytes` holds. */
  count: number;
  bytes: Uint8Array;
}

/** Records of one write kept in memory: the bytes written and where each record starts in them. */
interface CacheChunk {
  /** Sequence number of the chunk's first record (evicted or not). */
  firstSeq: number;
  buf: Buffer;
  /** Byte offset in `buf` of each record, then `buf.length`. */
  offs: Int32Array;
  /** Index of the first record still cached (older ones were evicted). */
  start: number;
}

/** Where `records()` starts: a sequence number, a time (ms since the Unix epoch), or the first record. */
export type ReadFrom = { seq: number } | { timeMs: number } | Record<string, never>;

const defaults = {
  fsync: "always" as FsyncPolicy,
  batchMs: 5,
  segmentBytes: 64 * 1024 * 1024,
  retentionIntervalMs: 1000,
  maxPendingBytes: 64 * 1024 * 1024,
  cacheBytes: 8 * 1024 * 1024,
};

/** Largest single write of a group commit, in bytes. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** Bytes read from a segment file at a time: the first read of a range, then at most. */
const READ_CHUNK_FIRST_BYTES = 64 * 1024;
const READ_CHUNK_MAX_BYTES = 1024 * 1024;
/**
 * A sparse index entry every this many bytes of a segment: a read starts at most this far before
 * the record it wants (64k entries for a 1 GiB log).
 */
const INDEX_INTERVAL_BYTES = 16 * 1024;
const SEGMENT_NAME = /^(\d{20})\.seg$/;

interface Segment {
  baseSeq: number;
  path: string;
  /** Bytes of the file holding acknowledged records (the active one may have more in flight). */
  size: number;
  createdAtMs: number;
  /** Sparse index: record seqs and their file offsets, ascending. */
  idxSeq: number[];
  idxOff: number[];
  /** A handle for reads, opened on the first read and kept until the segment goes or the log closes. */
  reader?: Promise<StoreFile> | undefined;
}

interface Pending {
  header: Uint8Array;
  payload: Uint8Array;
  ts: number;
  size: number;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

const EMPTY = new Uint8Array(0);
const noop = (): void => undefined;

function segmentName(baseSeq: number): string {
  return `${String(baseSeq).padStart(20, "0")}.seg`;
}

function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function storageError(what: string, cause: unknown): MyelinError {
  if (cause instanceof MyelinError && cause.code === "ERR_STORAGE") return cause;
  const code = errnoOf(cause);
  const why = code === "ENOSPC" ? "the disk is full (ENOSPC)" : (code ?? String(cause));
  return new MyelinError("ERR_STORAGE", `${what}: ${why}`, { cause });
}

function positiveInt(name: string, v: number | undefined, min = 1): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${name} must be an integer >= ${min}, got ${v}`);
  }
}

function addIndex(seg: Segment, seq: number, offset: number): void {
  const n = seg.idxSeq.length;
  const lastOff = n === 0 ? 0 : seg.idxOff[n - 1]!;
  const lastSeq = n === 0 ? 0 : seg.idxSeq[n - 1]!;
  if (seq > lastSeq && offset >= lastOff + INDEX_INTERVAL_BYTES) {
    seg.idxSeq.push(seq);
    seg.idxOff.push(offset);
  }
}

async function writeFully(f: StoreFile, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await f.write(buf, done, buf.length - done, position + done);
    if (n <= 0) throw new Error(`write returned ${n}`);
    done += n;
  }
}

/**
 * An append-only log of records in segment files. Create with `DurableLog.open`. Every record
 * gets the next sequence number (from 1) and a timestamp; `append` resolves once the record is
 * stored under the fsync policy and rejects (ERR_STORAGE) if it could not be stored — a rejected
 * append is never visible to readers, and the log keeps serving reads and retries the write path
 * on the next append.
 */
export class DurableLog {
  readonly #dir: string;
  readonly #fs: StoreFs;
  readonly #clock: () => number;
  readonly #log: ((line: string) => void) | undefined;
  readonly #onSync: ((seconds: number) => void) | undefined;
  #appended = 0;
  #fsync: FsyncPolicy;
  #batchMs: number;
  readonly #segmentBytes: number;
  #retention: RetentionOptions;
  readonly #maxPendingBytes: number;
  readonly #cacheBytes: number;
  readonly #retentionIntervalMs: number;
  /** The newest records (consecutive seqs), oldest at `#cacheHead`; see `cacheBytes`. */
  #cache: CacheChunk[] = [];
  #cacheHead = 0;
  #cacheSize = 0;
  #segments: Segment[] = [];
  #file: StoreFile | undefined;
  #last = 0;
  #lastTs = 0;
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #flushing = false;
  #timer: NodeJS.Timeout | undefined;
  #retentionTimer: NodeJS.Timeout | undefined;
  #retentionRun: Promise<number> | undefined;
  #needsRepair = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #idleWaiters: (() => void)[] = [];

  private constructor(opts: DurableLogOptions) {
    this.#dir = opts.dir;
    this.#fs = opts.fs ?? nodeStoreFs;
    this.#clock = opts.clock ?? Date.now;
    this.#log = opts.log;
    this.#onSync = opts.onSync;
    this.#fsync = opts.fsync ?? defaults.fsync;
    this.#batchMs = opts.batchMs ?? defaults.batchMs;
    this.#segmentBytes = opts.segmentBytes ?? defaults.segmentBytes;
    this.#retention = { ...opts.retention };
    this.#maxPendingBytes = opts.maxPendingBytes ?? defaults.maxPendingBytes;
    this.#cacheBytes = opts.cacheBytes ?? defaults.cacheBytes;
    this.#retentionIntervalMs = opts.retentionIntervalMs ?? defaults.retentionIntervalMs;
  }

  /**
   * Opens (or creates) the log in `opts.dir` and recovers it: older segments are trusted (only
   * their headers are read); the last segment is scanned and a torn tail is truncated away.
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad options; ERR_STORAGE if the directory cannot
   * be used or an older segment's header is damaged.
   */
  static async open(opts: DurableLogOptions): Promise<DurableLog> {
    if (typeof opts.dir !== "string" || opts.dir === "") {
      throw new MyelinError("ERR_INVALID_ARGUMENT", "DurableLog.open: dir must be a non-empty path");
    }
    if (opts.fsync !== undefined && !["always", "batch", "never"].includes(opts.fsync)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `fsync must be "always", "batch" or "never", got ${String(opts.fsync)}`,
      );
    }
    positiveInt("batchMs", opts.batchMs, 0);
    positiveInt("segmentBytes", opts.segmentBytes, SEGMENT_HEADER_BYTES + 1);
    positiveInt("retentionIntervalMs", opts.retentionIntervalMs);
    positiveInt("maxPendingBytes", opts.maxPendingBytes);
    positiveInt("cacheBytes", opts.cacheBytes, 0);
    positiveInt("retention.maxMessages", opts.retention?.maxMessages);
    positiveInt("retention.maxBytes", opts.retention?.maxBytes);
    positiveInt("retention.maxAgeMs", opts.retention?.maxAgeMs);
    const log = new DurableLog(opts);
    await log.#recover();
    if (log.#retention.maxAgeMs !== undefined) {
      log.#retentionTimer = setInterval(() => log.#retentionSoon(), log.#retentionIntervalMs);
      log.#retentionTimer.unref();
    }
    log.#retentionSoon();
    return log;
  }

  /**
   * Changes the fsync policy, group-commit bound or retention limits of the open log. Appends
   * already waiting are committed under the new policy; retention runs again at once.
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad values
   */
  configure(opts: { fsync?: FsyncPolicy; batchMs?: number; retention?: RetentionOptions }): void {
    if (opts.fsync !== undefined && !["always", "batch", "never"].includes(opts.fsync)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `fsync must be "always", "batch" or "never", got ${String(opts.fsync)}`,
      );
    }
    positiveInt("batchMs", opts.batchMs, 0);
    positiveInt("retention.maxMessages", opts.retention?.maxMessages);
    positiveInt("retention.maxBytes", opts.retention?.maxBytes);
    positiveInt("retention.maxAgeMs", opts.retention?.maxAgeMs);
    if (opts.fsync !== undefined) this.#fsync = opts.fsync;
    if (opts.batchMs !== undefined) this.#batchMs = opts.batchMs;
    if (opts.retention !== undefined) {
      this.#retention = { ...opts.retention };
      if (this.#retention.maxAgeMs !== undefined && this.#retentionTimer === undefined && !this.#closed) {
        this.#retentionTimer = setInterval(() => this.#retentionSoon(), this.#retentionIntervalMs);
        this.#retentionTimer.unref();
      }
      this.#retentionSoon();
    }
  }

  /** Sequence number of the oldest retained record; `last + 1` when the log holds none. */
  get first(): number {
    return this.#segments[0]!.baseSeq;
  }

  /** Sequence number of the newest acknowledged record; 0 if none was ever appended. */
  get last(): number {
    return this.#last;
  }

  /** Number of records retained (`last - first + 1`). */
  get count(): number {
    return this.#last - this.first + 1;
  }

  /** Bytes of the segment files (acknowledged records and segment headers). */
  get bytes(): number {
    let n = 0;
    for (const s of this.#segments) n += s.size;
    return n;
  }

  /** Records appended since the log was opened. */
  get appended(): number {
    return this.#appended;
  }

  /** Number of segment files. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  async #recover(): Promise<void> {
    const fs = this.#fs;
    try {
      await fs.mkdirp(this.#dir);
    } catch (e) {
      throw storageError(`cannot create the log directory ${this.#dir}`, e);
    }
    let names: string[];
    try {
      names = (await fs.readdir(this.#dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
    } catch (e) {
      throw storageError(`cannot list the log directory ${this.#dir}`, e);
    }
    if (names.length === 0) {
      const seg = await this.#createSegment(1);
      this.#segments.push(seg.seg);
      this.#file = seg.file;
      return;
    }
    for (const name of names.slice(0, -1)) this.#segments.push(await this.#readOldSegment(name));
    await this.#recoverLast(names[names.length - 1]!);
  }

  async #readOldSegment(name: string): Promise<Segment> {
    const path = join(this.#dir, name);
    const baseSeq = Number(SEGMENT_NAME.exec(name)![1]);
    let f: StoreFile | undefined;
    try {
      f = await this.#fs.open(path, "r");
      const size = await f.size();
      const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const n = await f.read(buf, 0, SEGMENT_HEADER_BYTES, 0);
      const h = n === SEGMENT_HEADER_BYTES ? decodeSegmentHeader(buf) : undefined;
      if (!h || h.baseSeq !== baseSeq) {
        throw new MyelinError(
          "ERR_STORAGE",
          `segment ${path} has a damaged header (it is not the last segment, so it cannot be a torn ` +
            `write); move it away to open the log without it`,
        );
      }
      return { baseSeq, path, size, createdAtMs: h.createdAtMs, idxSeq: [], idxOff: [] };
    } catch (e) {
      throw storageError(`cannot read segment ${path}`, e);
    } finally {
      await f?.close().catch(() => undefined);
    }
  }

  async #recoverLast(name: string): Promise<void> {
    const path = join(this.#dir, name);
    const baseSeq = Number(SEGMENT_NAME.exec(name)![1]);
    let f: StoreFile | undefined;
    try {
      f = await this.#fs.open(path, "r+");
      const fileSize = await f.size();
      const seg: Segment = { baseSeq, path, size: 0, createdAtMs: 0, idxSeq: [], idxOff: [] };
      const reader = new SegmentReader();
      let pos = 0;
      let validBytes = 0;
      let reason = "";
      for (;;) {
        const r = reader.next();
        if (r === undefined) {
          if (pos >= fileSize) {
            reader.end();
            continue;
          }
          const want = Math.min(READ_CHUNK_MAX_BYTES, fileSize - pos);
          const buf = Buffer.allocUnsafe(want);
          const n = await f.read(buf, 0, want, pos);
          if (n === 0) reader.end();
          else reader.push(buf.subarray(0, n));
          pos += n;
          continue;
        }
        if (r.torn) {
          validBytes = r.validBytes;
          reason = r.reason;
          break;
        }
        addIndex(seg, r.seq, r.offset);
      }
      const h = reader.header;
      if (h && h.baseSeq !== baseSeq) {
        throw new MyelinError(
          "ERR_STORAGE",
          `segment ${path} says it starts at seq ${h.baseSeq}, not ${baseSeq}`,
        );
      }
      if (!h) {
        // Torn while the header was written: the segment holds nothing; write the header again.
        seg.createdAtMs = this.#clock();
        await f.truncate(0);
        await writeFully(f, encodeSegmentHeader({ baseSeq, createdAtMs: seg.createdAtMs }), 0);
        await f.datasync();
        seg.size = SEGMENT_HEADER_BYTES;
        this.#last = baseSeq - 1;
        this.#lastTs = seg.createdAtMs;
      } else {
        if (validBytes < fileSize) {
          await this.#cutTail(f, path, validBytes, fileSize, reason, reader.nextSeq! - 1);
          await f.truncate(validBytes);
          await f.datasync();
        }
        seg.size = validBytes;
        seg.createdAtMs = h.createdAtMs;
        this.#last = reader.nextSeq! - 1;
        this.#lastTs = reader.lastTs ?? h.createdAtMs;
      }
      this.#segments.push(seg);
      this.#file = f;
    } catch (e) {
      await f?.close().catch(() => undefined);
      throw storageError(`cannot recover segment ${path}`, e);
    }
  }

  /**
   * Before the bytes of the last segment from `validBytes` on are cut: a torn tail (the bad
   * record is the last thing in the file: an append a crash interrupted, never acknowledged) is
   * logged; anything longer is damage (another writer, a disk fault) and its bytes are first
   * copied to `<segment>.damaged-<offset>`, so nothing is destroyed, and it is logged loudly.
   * @throws MyelinError ERR_STORAGE if the damaged bytes cannot be saved (nothing is cut then)
   */
  async #cutTail(
    f: StoreFile,
    path: string,
    validBytes: number,
    fileSize: number,
    reason: string,
    lastSeq: number,
  ): Promise<void> {
    const cut = fileSize - validBytes;
    let recordEnd = fileSize;
    if (cut >= 4) {
      const len = Buffer.alloc(4);
      if ((await f.read(len, 0, 4, validBytes)) === 4) recordEnd = validBytes + 8 + len.readUInt32LE(0);
    }
    if (recordEnd >= fileSize) {
      this.#log?.(
        `${path}: cut a torn tail of ${cut} bytes at byte ${validBytes} (${reason}): an append a crash interrupted, never acknowledged; the log ends at seq ${lastSeq}`,
      );
      return;
    }
    const saved = `${path}.damaged-${validBytes}`;
    let out: StoreFile | undefined;
    try {
      await this.#fs.unlink(saved).catch(() => undefined);
      out = await this.#fs.open(saved, "wx");
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK_MAX_BYTES, cut));
      for (let at = validBytes; at < fileSize;) {
        const n = await f.read(buf, 0, Math.min(buf.length, fileSize - at), at);
        if (n === 0) break;
        await writeFully(out, buf.subarray(0, n), at - validBytes);
        at += n;
      }
      await out.datasync();
    } catch (e) {
      throw storageError(
        `segment ${path} is damaged at byte ${validBytes} (${reason}) with ${cut} bytes after it, which could not be saved to ${saved} before cutting them; free space and open it again`,
        e,
      );
    } finally {
      await out?.close().catch(() => undefined);
    }
    this.#log?.(
      `${path}: DAMAGED at byte ${validBytes} (${reason}); the ${cut} bytes from there on were moved to ${saved} and cut off, keeping seqs up to ${lastSeq}. ` +
        `A second process writing this directory or a disk fault does this; check that one hub uses this data directory`,
    );
  }

  async #createSegment(baseSeq: number): Promise<{ seg: Segment; file: StoreFile }> {
    const path = join(this.#dir, segmentName(baseSeq));
    const createdAtMs = Math.max(this.#clock(), this.#lastTs);
    let f: StoreFile | undefined;
    try {
      // Any file already there holds only seqs >= baseSeq, none of them acknowledged.
      await this.#fs.unlink(path).catch((e: unknown) => {
        if (errnoOf(e) !== "ENOENT") throw e;
      });
      f = await this.#fs.open(path, "wx");
      await writeFully(f, encodeSegmentHeader({ baseSeq, createdAtMs }), 0);
      if (this.#fsync !== "never") {
        await f.datasync();
        await this.#fs.syncDir(this.#dir);
      }
    } catch (e) {
      await f?.close().catch(() => undefined);
      if (f) await this.#fs.unlink(path).catch(() => undefined);
      throw storageError(`cannot create segment ${path}`, e);
    }
    return {
      seg: { baseSeq, path, size: SEGMENT_HEADER_BYTES, createdAtMs, idxSeq: [], idxOff: [] },
      file: f,
    };
  }

  /**
   * Appends a record. Resolves with its seq and timestamp once it is stored under the fsync
   * policy. Do not modify `header` or `payload` until the promise settles.
   * @param header opaque record header, at most 65535 bytes
   * @param payload the message bytes
   * @throws (rejects) MyelinError ERR_STORAGE if it could not be written or synced (it is then not
   * stored and never visible); ERR_PAYLOAD_TOO_LARGE; ERR_BACKPRESSURE when more than
   * `maxPendingBytes` wait to be written; ClosedError ERR_CLOSED after `close()`.
   */
  // async: every refusal below becomes a rejection; the record joins the queue synchronously.
  async append(header: Uint8Array, payload: Uint8Array, opts: AppendOptions = {}): Promise<AppendResult> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `durable log ${this.#dir} is closed`);
    checkRecordSizes(header.length, payload.length);
    if (opts.ts !== undefined && !Number.isFinite(opts.ts)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `ts must be a finite number, got ${opts.ts}`);
    }
    const size = recordSize(header.length, payload.length);
    if (this.#pendingBytes + size > this.#maxPendingBytes && this.#pending.length > 0) {
      throw new MyelinError(
        "ERR_BACKPRESSURE",
        `durable log ${this.#dir} has ${this.#pendingBytes} bytes waiting to be written ` +
          `(maxPendingBytes ${this.#maxPendingBytes}); await appends or raise maxPendingBytes`,
      );
    }
    const ts = opts.ts ?? this.#clock();
    return new Promise<AppendResult>((resolve, reject) => {
      this.#pending.push({ header, payload, ts, size, resolve, reject });
      this.#pendingBytes += size;
      this.#schedule();
    });
  }

  /**
   * Appends records in order, with one promise for all of them: they get consecutive sequence
   * numbers and join the same group commit as any append waiting with them. Resolves once every
   * one of them is stored under the fsync policy. Do not modify the arrays' contents until the
   * promise settles.
   * @param headers one opaque header per record (at most 65535 bytes each); `[]` for none at all
   * @param payloads the message bytes, one per record
   * @throws (rejects) as `append`; ERR_INVALID_ARGUMENT when `headers` is neither empty nor as
   * long as `payloads`. If the write of a later part fails, the earlier part may be stored: the
   * promise then rejects with ERR_STORAGE, as `append`s awaited together would.
   */
  // async: every refusal below becomes a rejection; the records join the queue synchronously.
  async appendBatch(
    headers: readonly Uint8Array[],
    payloads: readonly Uint8Array[],
    opts: AppendOptions = {},
  ): Promise<AppendBatchResult> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `durable log ${this.#dir} is closed`);
    const n = payloads.length;
    if (headers.length !== 0 && headers.length !== n) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `appendBatch: ${headers.length} headers for ${n} payloads (give one per payload, or none)`,
      );
    }
    if (opts.ts !== undefined && !Number.isFinite(opts.ts)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `ts must be a finite number, got ${opts.ts}`);
    }
    if (n === 0) return { firstSeq: this.#last + 1, count: 0, ts: this.#lastTs };
    let total = 0;
    for (let i = 0; i < n; i++) {
      const h = headers[i] ?? EMPTY;
      const p = payloads[i]!;
      checkRecordSizes(h.length, p.length);
      total += recordSize(h.length, p.length);
    }
    if (this.#pendingBytes + total > this.#maxPendingBytes && this.#pending.length > 0) {
      throw new MyelinError(
        "ERR_BACKPRESSURE",
        `durable log ${this.#dir} has ${this.#pendingBytes} bytes waiting to be written ` +
          `(maxPendingBytes ${this.#maxPendingBytes}); await appends or raise maxPendingBytes`,
      );
    }
    const ts = opts.ts ?? this.#clock();
    return new Promise<AppendBatchResult>((resolve, reject) => {
      let failed = false;
      const fail = (e: unknown): void => {
        if (failed) return;
        failed = true;
        reject(e instanceof Error ? e : new Error(String(e)));
      };
      for (let i = 0; i < n; i++) {
        const h = headers[i] ?? EMPTY;
        const p = payloads[i]!;
        const size = recordSize(h.length, p.length);
        // Only the last record settles the batch: records are committed in order, so every
        // earlier one is stored once it is.
        const done =
          i < n - 1
            ? noop
            : (r: AppendResult): void => {
                if (!failed) resolve({ firstSeq: r.seq - n + 1, count: n, ts: r.ts });
              };
        this.#pending.push({ header: h, payload: p, ts, size, resolve: done, reject: fail });
      }
      this.#pendingBytes += total;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#flushing || this.#timer !== undefined || this.#pending.length === 0) return;
    if (this.#fsync === "batch" && !this.#closed) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#flush();
      }, this.#batchMs);
      return;
    }
    this.#flushing = true;
    queueMicrotask(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        await this.#commitBatch();
        if (this.#fsync === "batch" && !this.#closed) break;
      }
    } finally {
      this.#flushing = false;
      this.#schedule();
      if (!this.#flushing && this.#timer === undefined) {
        for (const w of this.#idleWaiters.splice(0)) w();
      }
    }
  }

  #rejectPending(err: unknown, n = this.#pending.length): void {
    for (const p of this.#pending.splice(0, n)) {
      this.#pendingBytes -= p.size;
      p.reject(err);
    }
  }

  /** Truncates the active segment back to its acknowledged size, reopening the file. */
  async #repair(): Promise<void> {
    const seg = this.#segments[this.#segments.length - 1]!;
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
    const f = await this.#fs.open(seg.path, "r+");
    this.#file = f;
    await f.truncate(seg.size);
    if (this.#fsync !== "never") await f.datasync();
    this.#needsRepair = false;
  }

  async #roll(): Promise<void> {
    const { seg, file } = await this.#createSegment(this.#last + 1);
    const old = this.#file;
    this.#segments.push(seg);
    this.#file = file;
    await old?.close().catch(() => undefined);
    this.#retentionSoon();
  }

  async #commitBatch(): Promise<void> {
    const first = this.#pending[0]!;
    try {
      if (this.#needsRepair || this.#file === undefined) await this.#repair();
      const seg = this.#segments[this.#segments.length - 1]!;
      if (seg.size > SEGMENT_HEADER_BYTES && seg.size + first.size > this.#segmentBytes) await this.#roll();
    } catch (e) {
      this.#rejectPending(
        storageError(`durable log ${this.#dir}: append refused, the log cannot be written`, e),
      );
      return;
    }
    const seg = this.#segments[this.#segments.length - 1]!;
    const file = this.#file!;
    let n = 0;
    let total = 0;
    for (const p of this.#pending) {
      if (n > 0 && (total + p.size > MAX_BATCH_BYTES || seg.size + total + p.size > this.#segmentBytes))
        break;
      total += p.size;
      n++;
    }
    const batch = this.#pending.slice(0, n);
    const buf = Buffer.allocUnsafe(total);
    // Where each record starts in `buf` (and where the last ends): the cache's index of them.
    const offs = new Int32Array(n + 1);
    const firstSeq = this.#last + 1;
    const firstTs = this.#lastTs;
    let at = 0;
    let seq = this.#last;
    let ts = firstTs;
    for (let i = 0; i < n; i++) {
      const p = batch[i]!;
      seq++;
      ts = Math.max(ts, p.ts);
      offs[i] = at;
      at = encodeRecordInto(buf, at, seq, ts, p.header, p.payload);
    }
    offs[n] = at;
    try {
      await writeFully(file, buf, seg.size);
      if (this.#fsync !== "never") {
        const t0 = process.hrtime.bigint();
        await file.datasync();
        this.#onSync?.(Number(process.hrtime.bigint() - t0) / 1e9);
      }
    } catch (e) {
      this.#needsRepair = true;
      this.#rejectPending(
        storageError(`durable log ${this.#dir}: append refused, the record was not stored`, e),
        n,
      );
      await this.#repair().catch(() => undefined);
      return;
    }
    // Index the new records (offsets only; no parsing needed).
    const base = seg.size;
    for (let i = 0; i < n; i++) addIndex(seg, firstSeq + i, base + offs[i]!);
    seg.size += total;
    this.#last = seq;
    this.#lastTs = ts;
    if (this.#cacheBytes > 0) this.#cacheChunk(buf, firstSeq, offs);
    this.#pending.splice(0, n);
    this.#pendingBytes -= total;
    this.#appended += n;
    // A batch's records share one waiter (the last one's); the others wait on nothing.
    let t = firstTs;
    for (let i = 0; i < n; i++) {
      const p = batch[i]!;
      t = Math.max(t, p.ts);
      if (p.resolve !== noop) p.resolve({ seq: firstSeq + i, ts: t });
    }
  }

  /**
   * Keeps the records just written in the cache: the written bytes themselves (no copy) and
   * where each record starts, one chunk per write; records are decoded from them when read.
   */
  #cacheChunk(buf: Buffer, firstSeq: number, offs: Int32Array): void {
    this.#cache.push({ firstSeq, buf, offs, start: 0 });
    this.#cacheSize += buf.length;
    while (this.#cacheSize > this.#cacheBytes && this.#cacheHead < this.#cache.length) {
      const c = this.#cache[this.#cacheHead]!;
      this.#cacheSize -= c.offs[c.start + 1]! - c.offs[c.start]!;
      if (++c.start === c.offs.length - 1) this.#cacheHead++;
    }
    if (this.#cacheHead > 64 && this.#cacheHead * 2 > this.#cache.length) {
      this.#cache = this.#cache.slice(this.#cacheHead);
      this.#cacheHead = 0;
    }
  }

  /**
   * Where the cache holds `fromSeq`: the chunk's position in `#cache` and the record's index in
   * it; undefined if the cache does not hold it. `fromSeq` past the newest record gives the
   * position just after it.
   */
  #cacheFind(fromSeq: number): { chunk: number; index: number } | undefined {
    const cache = this.#cache;
    let lo = this.#cacheHead;
    const head = cache[lo];
    if (head === undefined || fromSeq < head.firstSeq + head.start) return undefined;
    let hi = cache.length - 1;
    // Reads come mostly near the tail: look there first.
    if (cache[hi]!.firstSeq <= fromSeq) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (cache[mid]!.firstSeq <= fromSeq) lo = mid;
      else hi = mid - 1;
    }
    const c = cache[lo]!;
    const index = fromSeq - c.firstSeq;
    if (index >= c.offs.length - 1) return { chunk: cache.length, index: 0 };
    return { chunk: lo, index };
  }

  /** Records from `fromSeq` on held by the cache, up to `maxCount`; undefined if it does not hold `fromSeq`. */
  #fromCache(fromSeq: number, maxCount: number): LogRecord[] | undefined {
    const pos = this.#cacheFind(fromSeq);
    if (pos === undefined) return undefined;
    const out: LogRecord[] = [];
    for (let k = pos.chunk, i = pos.index; k < this.#cache.length && out.length < maxCount; k++, i = 0) {
      const { buf, offs, firstSeq } = this.#cache[k]!;
      for (; i < offs.length - 1 && out.length < maxCount; i++) {
        const at = offs[i]!;
        const h = at + RECORD_OVERHEAD_BYTES;
        const p = h + buf.readUInt16LE(at + 24);
        out.push({
          seq: firstSeq + i,
          ts: buf.readDoubleLE(at + 16),
          header: buf.subarray(h, p),
          payload: buf.subarray(p, offs[i + 1]),
        });
      }
    }
    return out;
  }

  /** The bytes of up to `maxCount` records from `fromSeq` on held by the cache; undefined if it does not hold `fromSeq`. */
  #rawFromCache(fromSeq: number, maxCount: number): RawRecords | undefined {
    const pos = this.#cacheFind(fromSeq);
    if (pos === undefined) return undefined;
    // First the size, then one copy per chunk.
    let bytes = 0;
    let count = 0;
    for (let k = pos.chunk, i = pos.index; k < this.#cache.length && count < maxCount; k++, i = 0) {
      const { offs } = this.#cache[k]!;
      const take = Math.min(offs.length - 1 - i, maxCount - count);
      bytes += offs[i + take]! - offs[i]!;
      count += take;
    }
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    let left = count;
    for (let k = pos.chunk, i = pos.index; left > 0; k++, i = 0) {
      const { buf, offs } = this.#cache[k]!;
      const take = Math.min(offs.length - 1 - i, left);
      at += buf.copy(out, at, offs[i], offs[i + take]);
      left -= take;
    }
    return { firstSeq: count > 0 ? fromSeq : this.#last + 1, count, bytes: out };
  }

  #retentionSoon(): void {
    if (this.#retentionRun || this.#closed) return;
    this.#retentionRun = this.enforceRetention()
      .catch(() => 0)
      .finally(() => {
        this.#retentionRun = undefined;
      });
  }

  /**
   * Deletes whole old segments that lie outside the retention limits (never the segment being
   * appended to). Runs by itself after each segment roll and, with `maxAgeMs`, on a timer;
   * appends do not wait for it. Resolves with the number of segments deleted.
   */
  async enforceRetention(): Promise<number> {
    const { maxMessages, maxBytes, maxAgeMs } = this.#retention;
    const now = this.#clock();
    const removed: Segment[] = [];
    let bytes = this.bytes;
    while (this.#segments.length > 1) {
      const s = this.#segments[0]!;
      const next = this.#segments[1]!;
      const byCount = maxMessages !== undefined && this.#last - next.baseSeq + 1 >= maxMessages;
      const byBytes = maxBytes !== undefined && bytes - s.size >= maxBytes;
      // Every record of s is no newer than the next segment's creation time.
      const byAge = maxAgeMs !== undefined && next.createdAtMs < now - maxAgeMs;
      if (!byCount && !byBytes && !byAge) break;
      this.#segments.shift();
      bytes -= s.size;
      removed.push(s);
    }
    for (const s of removed) await this.#removeSegment(s);
    if (removed.length > 0 && this.#fsync !== "never")
      await this.#fs.syncDir(this.#dir).catch(() => undefined);
    return removed.length;
  }

  /**
   * Deletes whole segments whose records all have a seq below `seq` (never the segment being
   * appended to): what a work queue does once every consumer has acknowledged them. Resolves with
   * the number of segments deleted.
   */
  async deleteBefore(seq: number): Promise<number> {
    const removed: Segment[] = [];
    while (this.#segments.length > 1 && this.#segments[1]!.baseSeq <= seq)
      removed.push(this.#segments.shift()!);
    for (const s of removed) await this.#removeSegment(s);
    if (removed.length > 0 && this.#fsync !== "never")
      await this.#fs.syncDir(this.#dir).catch(() => undefined);
    return removed.length;
  }

  async #removeSegment(s: Segment): Promise<void> {
    const reader = s.reader;
    s.reader = undefined;
    if (reader !== undefined) await (await reader.catch(() => undefined))?.close().catch(() => undefined);
    await this.#fs.unlink(s.path).catch(() => undefined);
  }

  /**
   * Reads up to `maxCount` acknowledged records from `fromSeq` on (from `first` if `fromSeq` is
   * older than the oldest retained record). Returns fewer, or none, at the end of the log.
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad arguments; ERR_STORAGE if a segment cannot
   * be read or is damaged.
   */
  async read(fromSeq: number, maxCount = 1000): Promise<LogRecord[]> {
    positiveInt("fromSeq", fromSeq, 0);
    positiveInt("maxCount", maxCount);
    const from = Math.max(fromSeq, this.first);
    const cached = this.#fromCache(from, maxCount);
    if (cached !== undefined) return cached;
    const out: LogRecord[] = [];
    await this.#readFromSegments(from, maxCount, (r) =>
      out.push({
        seq: r.seq,
        ts: r.ts,
        header: new Uint8Array(r.header),
        payload: new Uint8Array(r.payload),
      }),
    );
    return out;
  }

  /**
   * Reads up to `maxCount` acknowledged records from `fromSeq` on (from `first` if `fromSeq` is
   * older than the oldest retained record) as the log stores them: their bytes in the segment
   * format, checksums included, back to back, in one buffer. From the cache when it holds them
   * (one copy per write), else from the segment files (each record's checksum checked).
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad arguments; ERR_STORAGE if a segment cannot
   * be read or is damaged.
   */
  async readRaw(fromSeq: number, maxCount = 1000): Promise<RawRecords> {
    positiveInt("fromSeq", fromSeq, 0);
    positiveInt("maxCount", maxCount);
    const from = Math.max(fromSeq, this.first);
    const cached = this.#rawFromCache(from, maxCount);
    if (cached !== undefined) return cached;
    const parts: Uint8Array[] = [];
    let first = 0;
    await this.#readFromSegments(from, maxCount, (r) => {
      // Retention removed a segment while it was read: keep the records after the gap only.
      if (parts.length > 0 && r.seq !== first + parts.length) parts.length = 0;
      if (parts.length === 0) first = r.seq;
      // The record's bytes: its header field starts RECORD_OVERHEAD_BYTES after the record.
      parts.push(new Uint8Array(r.header.buffer, r.header.byteOffset - RECORD_OVERHEAD_BYTES, r.size));
    });
    if (parts.length === 0) return { firstSeq: this.#last + 1, count: 0, bytes: EMPTY };
    return { firstSeq: first, count: parts.length, bytes: Buffer.concat(parts) };
  }

  /** Calls `emit` with up to `maxCount` records from `from` (>= first) on, read from the segment files. */
  async #readFromSegments(from: number, maxCount: number, emit: (r: SegmentRecord) => void): Promise<void> {
    let seq = from;
    let done = 0;
    let lastSeq = 0;
    const emitting = (r: SegmentRecord): void => {
      lastSeq = r.seq;
      emit(r);
    };
    for (let attempt = 0; ; attempt++) {
      try {
        while (done < maxCount && seq <= this.#last) {
          const i = this.#segmentIndexOf(seq);
          const seg = this.#segments[i]!;
          const next = this.#segments[i + 1];
          const lastInSeg = next ? next.baseSeq - 1 : this.#last;
          const got = await this.#readSegment(
            seg,
            seq,
            Math.min(maxCount - done, lastInSeg - seq + 1),
            emitting,
          );
          if (got === 0) {
            throw new MyelinError("ERR_STORAGE", `segment ${seg.path} ends before seq ${seq} it should hold`);
          }
          done += got;
          seq = lastSeq + 1;
        }
        return;
      } catch (e) {
        // Retention deleted the segment under us: go on from the new first record.
        if (errnoOf(e) === "ENOENT" && attempt < 5) {
          seq = Math.max(seq, this.first);
          continue;
        }
        throw storageError(`durable log ${this.#dir}: cannot read from seq ${seq}`, e);
      }
    }
  }

  #segmentIndexOf(seq: number): number {
    const segs = this.#segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid]!.baseSeq <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Emits up to `count` records of `seg` from `fromSeq` on; resolves with how many. */
  async #readSegment(
    seg: Segment,
    fromSeq: number,
    count: number,
    emit: (r: SegmentRecord) => void,
  ): Promise<number> {
    const endOffset = seg.size; // acknowledged bytes only
    let k = -1;
    for (let lo = 0, hi = seg.idxSeq.length - 1; lo <= hi;) {
      const mid = (lo + hi) >> 1;
      if (seg.idxSeq[mid]! <= fromSeq) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let pos = k >= 0 ? seg.idxOff[k]! : 0;
    const reader = new SegmentReader(k >= 0 ? { resume: { offset: pos, seq: seg.idxSeq[k]! } } : {});
    seg.reader ??= this.#fs.open(seg.path, "r");
    const f = await seg.reader.catch((e: unknown) => {
      seg.reader = undefined;
      throw e;
    });
    let emitted = 0;
    let chunk = READ_CHUNK_FIRST_BYTES;
    try {
      for (;;) {
        const r = reader.next();
        if (r === undefined) {
          if (pos >= endOffset) {
            reader.end();
            continue;
          }
          const want = Math.min(chunk, endOffset - pos);
          chunk = Math.min(chunk * 2, READ_CHUNK_MAX_BYTES);
          const buf = Buffer.allocUnsafe(want);
          const n = await f.read(buf, 0, want, pos);
          if (n === 0) reader.end();
          else reader.push(buf.subarray(0, n));
          pos += n;
          continue;
        }
        if (r.torn) {
          if (r.validBytes >= endOffset) break;
          throw new MyelinError(
            "ERR_STORAGE",
            `segment ${seg.path} is damaged at byte ${r.validBytes} (${r.reason})`,
          );
        }
        addIndex(seg, r.seq, r.offset);
        if (r.seq >= fromSeq) {
          emit(r);
          if (++emitted >= count) break;
        }
      }
    } catch (e) {
      // Open the file again on the next read, in case the handle itself went bad.
      if (seg.reader !== undefined) {
        seg.reader = undefined;
        await f.close().catch(() => undefined);
      }
      throw e;
    }
    return emitted;
  }

  /** Sequence number of the first record with a timestamp >= `timeMs` (ms since the Unix epoch); `last + 1` if none. */
  async seqAtTime(timeMs: number): Promise<number> {
    const segs = this.#segments;
    let i = 0;
    // Records of segment i are no newer than segment i+1's creation time.
    while (i + 1 < segs.length && segs[i + 1]!.createdAtMs < timeMs) i++;
    let seq = segs[i]!.baseSeq;
    for (;;) {
      const batch = await this.read(seq, 1024);
      if (batch.length === 0) return Math.max(seq, this.#last + 1);
      for (const r of batch) if (r.ts >= timeMs) return r.seq;
      seq = batch[batch.length - 1]!.seq + 1;
    }
  }

  /**
   * Iterates acknowledged records from a sequence number, a time, or the first record, up to
   * the end of the log as it grows while iterating; ends when it reaches the last record.
   * @throws MyelinError ERR_STORAGE if a segment cannot be read.
   */
  async *records(from: ReadFrom = {}, batchSize = 256): AsyncGenerator<LogRecord, void, undefined> {
    let seq = "seq" in from ? from.seq : "timeMs" in from ? await this.seqAtTime(from.timeMs) : this.first;
    for (;;) {
      const batch = await this.read(seq, batchSize);
      if (batch.length === 0) return;
      for (const r of batch) yield r;
      seq = batch[batch.length - 1]!.seq + 1;
    }
  }

  /** Resolves when no append is waiting or being written. */
  async #idle(): Promise<void> {
    while (this.#flushing || this.#timer !== undefined || this.#pending.length > 0) {
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        void this.#flush();
      }
      await new Promise<void>((r) => this.#idleWaiters.push(r));
    }
  }

  /**
   * Stops accepting appends (they reject with ERR_CLOSED), lets accepted ones finish, waits for
   * a running retention pass and closes the files. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#retentionTimer) clearInterval(this.#retentionTimer);
      await this.#idle();
      await this.#retentionRun;
      await this.#file?.close().catch(() => undefined);
      this.#file = undefined;
      for (const seg of this.#segments) {
        const reader = seg.reader;
        seg.reader = undefined;
        if (reader !== undefined) await (await reader.catch(() => undefined))?.close().catch(() => undefined);
      }
      this.#cache = [];
      this.#cacheHead = 0;
      this.#cacheSize = 0;
    })();
    return this.#closing;
  }

  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
