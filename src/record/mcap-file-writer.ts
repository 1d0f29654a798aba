/**
 * Writes one MCAP file: chunked, compressed, indexed (chunk and message indexes, statistics, summary
 * offsets), as `@mcap/core`'s `McapWriter` does, built on its record and chunk builders, with what a
 * recorder needs on top:
 *
 * - `addMessage` is synchronous: messages go into the open chunk; a full chunk is joined into one buffer
 *   and handed over to a worker thread (mcap-writer-thread.ts, running mcap-file-tail.ts) that checksums,
 *   compresses and writes it behind, in order, so the thread receiving messages only encodes and
 *   copies them. `queuedBytes` tells how far behind that thread and the disk are, so the caller can
 *   shed load (and count it) instead of growing without bound (`thread: false` does the same work
 *   inline, behind the caller on the same thread);
 * - `flushChunk()` closes the open chunk now (the recorder calls it every second), so a process killed
 *   with `kill -9` loses at most that much: everything before is complete chunks;
 * - compression `zstd` (level -1, its first fast level) or `none`; with `zstd` a chunk whose first 64 KiB do not compress below
 *   90 % (raw pixels, point clouds, already-compressed JPEG) is stored uncompressed rather than paying
 *   for compression that saves nothing;
 * - chunk CRCs by Node's native `zlib.crc32`; the data section's CRC is left at 0 ("not computed", as
 *   the spec allows): each chunk's CRC covers the messages.
 */
import { open } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { McapRecordBuilder, type Channel, type Schema, type Statistics } from "@mcap/core";
import { ClosedError, MyelinError } from "../errors.js";
import { ChunkAssembler } from "./chunk-assembler.js";
import { FileAppender } from "./file-appender.js";
import { McapFileTail, zstdLoaded, type ChunkBody, type Compression } from "./mcap-file-tail.js";
import { timeBefore, timeFromBigint, timeToBigint } from "./mcap-time.js";
import type { TailReply, TailRequest, TailThreadData } from "./mcap-writer-thread.js";

export type { Compression } from "./mcap-file-tail.js";

/** Options of {@link McapFileWriter.create}. */
export interface McapFileWriterOptions {
  /** Chunk compression (default `zstd`). */
  compression?: Compression;
  /** A chunk is closed once it holds this many bytes, uncompressed (default 4 MiB). */
  chunkBytes?: number;
  /** The header's `profile` (default `""`: no profile). */
  profile?: string;
  /** The header's `library` (default `myelin`). */
  library?: string;
  /**
   * Checksum, compress and write on a worker thread (default true); false does it on the caller's
   * thread, behind it. The file's bytes are the same either way.
   */
  thread?: boolean;
}

const DEFAULTS = {
  compression: "zstd",
  chunkBytes: 4 * 1024 * 1024,
  profile: "",
  library: "myelin",
  thread: true,
} as const;

/** Where sealed chunks and records go: a worker thread, or a tail run inline. */
interface TailSink {
  /** Hands `req` over; the writer hears of it through its ack (or failure) callbacks. */
  post(req: TailRequest): void;
  /** Closes the file once everything posted is written; resolves with its length. */
  close(): Promise<bigint>;
  /** Keeps the process alive while true (work in flight), not while idle. */
  hold(busy: boolean): void;
}

/** Chunk buffers kept for reuse once the writer thread gave them back (warm memory, no page faults). */
const SPARE_BUFFERS = 4;

/** Runs the tail on a worker thread. */
class ThreadSink implements TailSink {
  readonly #worker: Worker;
  readonly #onReply: (r: TailReply) => void;
  #opened = false;
  #closed: ((position: bigint) => void) | undefined;
  #exited = false;
  /** Chunk buffers the thread gave back, for the next chunks. */
  readonly spare: ArrayBuffer[] = [];

  private constructor(worker: Worker, onReply: (r: TailReply) => void) {
    this.#worker = worker;
    this.#onReply = onReply;
  }

  /** Starts the thread; resolves once it opened `path`. @throws Error with the reason it could not. */
  static start(data: TailThreadData, onReply: (r: TailReply) => void): Promise<ThreadSink> {
    const worker = new Worker(new URL("./mcap-writer-thread.js", import.meta.url), { workerData: data });
    const sink = new ThreadSink(worker, onReply);
    return new Promise((resolve, reject) => {
      worker.on("message", (r: TailReply) => {
        if (!sink.#opened) {
          if (r.op === "opened") {
            sink.#opened = true;
            resolve(sink);
          } else if (r.op === "failed") {
            void worker.terminate();
            reject(new Error(r.message));
          }
          return;
        }
        if (r.op === "closed") sink.#closed?.(r.position);
        else {
          if (r.op === "ack" && r.recycled !== undefined && sink.spare.length < SPARE_BUFFERS) {
            sink.spare.push(r.recycled);
          }
          sink.#onReply(r);
        }
      });
      worker.on("error", (err) => {
        if (!sink.#opened) reject(err);
        else sink.#onReply({ op: "failed", message: `the writer thread failed: ${err.message}` });
      });
      worker.on("exit", () => {
        sink.#exited = true;
        if (!sink.#opened) reject(new Error("the writer thread exited before opening the file"));
        sink.#closed?.(-1n);
      });
    });
  }

  hold(busy: boolean): void {
    if (busy) this.#worker.ref();
    else this.#worker.unref();
  }

  post(req: TailRequest): void {
    if (this.#exited) return;
    if (req.op === "chunk") this.#worker.postMessage(req, [req.chunk.pieces[0]!.buffer as ArrayBuffer]);
    else this.#worker.postMessage(req);
  }

  close(): Promise<bigint> {
    if (this.#exited) return Promise.resolve(-1n);
    return new Promise((resolve) => {
      this.#closed = (p) => {
        this.#closed = undefined;
        resolve(p);
      };
      this.#worker.postMessage({ op: "close" } satisfies TailRequest);
    });
  }
}

/** Runs the tail on the caller's thread; writes go behind it. */
class InlineSink implements TailSink {
  readonly #tail: McapFileTail;
  readonly #appender: FileAppender;
  readonly #onReply: (r: TailReply) => void;
  #reported = false;

  constructor(tail: McapFileTail, appender: FileAppender, onReply: (r: TailReply) => void) {
    this.#tail = tail;
    this.#appender = appender;
    this.#onReply = onReply;
  }

  post(req: TailRequest): void {
    const t = this.#tail;
    let pieces: Uint8Array[];
    switch (req.op) {
      case "records":
        pieces = t.records(req.bytes);
        break;
      case "metadata":
        pieces = t.metadata(req.name, req.record);
        break;
      case "chunk":
        pieces = t.chunk(req.chunk);
        break;
      case "summary":
        pieces = t.summary(req.content);
        break;
      case "close":
        return;
    }
    const position = t.position;
    this.#appender.append(pieces, () => {
      const f = this.#appender.failure;
      if (f === undefined) this.#onReply({ op: "ack", id: req.id, position });
      else if (!this.#reported) {
        this.#reported = true;
        this.#onReply({ op: "failed", message: f.message });
      }
    });
  }

  async close(): Promise<bigint> {
    await this.#appender.close();
    return this.#tail.position;
  }

  hold(): void {
    // pending writes keep the process alive by themselves
  }
}

/** A sequential, write-behind MCAP file writer; see the module comment. */
export class McapFileWriter {
  readonly path: string;
  readonly compression: Compression;
  readonly #chunkBytes: number;
  readonly #records = new McapRecordBuilder();
  readonly #chunk = new ChunkAssembler();
  /** Serialises the schema and channel records put into chunks. */
  readonly #chunkRecords = new McapRecordBuilder();
  readonly #schemas = new Map<number, Schema>();
  readonly #channels = new Map<number, Channel>();
  readonly #inChunk = new Set<number>();
  #sink!: TailSink;
  /** The file's length as last acknowledged, and what was posted and not acknowledged yet (bytes, by request id). */
  #position = 0n;
  #queued = 0;
  readonly #inFlight = new Map<number, number>();
  #nextId = 1;
  #drainWaiters: (() => void)[] = [];
  /** Callbacks to run once the open chunk is written (see holdUntilWritten). */
  #heldByChunk: (() => void)[] = [];
  /** Callbacks to run once request id is written, in id order. */
  readonly #afterWrite: { id: number; run: () => void }[] = [];
  #failure: Error | undefined;
  #closed = false;
  #nextSchemaId = 1;
  #nextChannelId = 0;
  #uncompressedBytes = 0;
  /** Messages so far, and per channel id (numbers: the statistics record's bigints are built at the end). */
  #messages = 0;
  #startSec = 0;
  #startNsec = 0;
  #endSec = 0;
  #endNsec = 0;
  readonly #channelCounts: number[] = [];

  private constructor(path: string, opts: Required<McapFileWriterOptions>) {
    this.path = path;
    this.compression = opts.compression;
    this.#chunkBytes = opts.chunkBytes;
  }

  /**
   * Creates (or truncates) `path` and writes the file's magic and header.
   * @throws MyelinError ERR_STORAGE if the file cannot be created (the message names it and the reason).
   * @throws MyelinError ERR_INVALID_ARGUMENT on a bad option.
   */
  static async create(path: string, options: McapFileWriterOptions = {}): Promise<McapFileWriter> {
    const opts = { ...DEFAULTS, ...options };
    if (opts.compression !== "zstd" && opts.compression !== "none") {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `compression '${String(opts.compression)}' is not supported: use zstd or none`,
      );
    }
    if (!Number.isInteger(opts.chunkBytes) || opts.chunkBytes < 1024) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `chunkBytes must be an integer ≥ 1024, got ${opts.chunkBytes}`,
      );
    }
    const w = new McapFileWriter(path, opts);
    const onReply = (r: TailReply): void => w.#reply(r);
    try {
      if (opts.thread) {
        w.#sink = await ThreadSink.start({ path, compression: opts.compression }, onReply);
      } else {
        if (opts.compression === "zstd") await zstdLoaded();
        const tail = new McapFileTail(opts.compression);
        w.#sink = new InlineSink(tail, new FileAppender(await open(path, "w")), onReply);
      }
    } catch (err) {
      throw new MyelinError("ERR_STORAGE", `cannot create ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    w.#records.writeMagic();
    w.#records.writeHeader({ profile: opts.profile, library: opts.library });
    w.#post({ op: "records", id: 0, bytes: w.#takeRecords() }, 0);
    return w;
  }

  /** Bytes handed to the file so far: written, plus what waits (uncompressed) to be. */
  get bytes(): number {
    return Number(this.#position) + this.#queued;
  }

  /** Bytes waiting to be written: closed chunks behind the writer thread and the disk, plus the open chunk. */
  get queuedBytes(): number {
    return this.#queued + this.#chunk.size;
  }

  /** Messages written so far (in closed chunks or the open one). */
  get messageCount(): number {
    return this.#messages;
  }

  /** Message bytes before compression, so far. */
  get uncompressedBytes(): number {
    return this.#uncompressedBytes;
  }

  /** The first write error, if any: once set, the file is lost and every later call throws it. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Adds a schema (written into the file with the first message of a channel using it); returns its id. */
  addSchema(name: string, encoding: string, data: Uint8Array): number {
    const id = this.#nextSchemaId++;
    this.#schemas.set(id, { id, name, encoding, data });
    return id;
  }

  /** Adds a channel; returns its id. */
  addChannel(
    schemaId: number,
    topic: string,
    messageEncoding: string,
    metadata = new Map<string, string>(),
  ): number {
    const id = this.#nextChannelId++;
    this.#channels.set(id, { id, schemaId, topic, messageEncoding, metadata });
    return id;
  }

  /**
   * Adds a message to the open chunk, closing the chunk when it is full. `data` is the message's bytes,
   * its pieces (as `ChannelEncoding.encodeParts` gives them), or its text (JSON, written as UTF-8);
   * pieces of 16 KiB or more are kept by reference until the chunk closes, so they must not change;
   * smaller ones are copied. Returns the message's length in bytes.
   * @param logTime when it was recorded, in ns since the Unix epoch
   * @param publishTime when it was published, in ns since the Unix epoch
   * @throws MyelinError ERR_STORAGE if an earlier write failed; ERR_CLOSED after close().
   */
  addMessage(
    channelId: number,
    sequence: number,
    logTime: bigint,
    publishTime: bigint,
    data: Uint8Array | readonly Uint8Array[] | string,
  ): number {
    const l = timeFromBigint(logTime);
    const p = timeFromBigint(publishTime);
    return this.addMessageAt(channelId, sequence, l.sec, l.nsec, p.sec, p.nsec, data);
  }

  /**
   * {@link addMessage} with its times as whole seconds and nanoseconds since the Unix epoch, so that
   * no BigInt is made per message (what the recorder calls). `logNsec` may exceed a second (it is
   * carried into the seconds); `pubNsec` is added as it is.
   * @throws MyelinError ERR_STORAGE if an earlier write failed; ERR_CLOSED after close().
   */
  addMessageAt(
    channelId: number,
    sequence: number,
    logSec: number,
    logNsec: number,
    pubSec: number,
    pubNsec: number,
    data: Uint8Array | readonly Uint8Array[] | string,
  ): number {
    this.#check();
    if (!this.#inChunk.has(channelId)) {
      const channel = this.#channels.get(channelId);
      if (channel === undefined) {
        throw new MyelinError("ERR_INVALID_ARGUMENT", `addMessage: no channel ${channelId} in ${this.path}`);
      }
      // Every chunk carries the schemas and channels of its messages, so that each chunk can be read on
      // its own: what `bag repair` relies on after a crash.
      const schema = this.#schemas.get(channel.schemaId);
      const r = this.#chunkRecords;
      if (schema !== undefined) r.writeSchema(schema);
      r.writeChannel(channel);
      this.#chunk.addRecords(r.buffer);
      r.reset();
      this.#inChunk.add(channelId);
    }
    if (logNsec >= 1e9 || logNsec < 0) {
      const carry = Math.floor(logNsec / 1e9);
      logSec += carry;
      logNsec -= carry * 1e9;
    }
    const length = this.#chunk.addMessageAt(channelId, sequence, logSec, logNsec, pubSec, pubNsec, data);
    if (this.#messages === 0 || timeBefore(logSec, logNsec, this.#startSec, this.#startNsec)) {
      this.#startSec = logSec;
      this.#startNsec = logNsec;
    }
    if (this.#messages === 0 || timeBefore(this.#endSec, this.#endNsec, logSec, logNsec)) {
      this.#endSec = logSec;
      this.#endNsec = logNsec;
    }
    this.#messages++;
    this.#channelCounts[channelId] = (this.#channelCounts[channelId] ?? 0) + 1;
    this.#uncompressedBytes += length;
    if (this.#chunk.size >= this.#chunkBytes) this.flushChunk();
    return length;
  }

  /** Adds a metadata record (name → string map), outside chunks, indexed in the summary. */
  addMetadata(name: string, metadata: Map<string, string>): void {
    this.#check();
    this.#records.writeMetadata({ name, metadata });
    const record = this.#takeRecords();
    this.#post({ op: "metadata", id: 0, name, record }, record.byteLength);
  }

  /**
   * Closes the open chunk, if it holds a message: joins its pieces into one buffer and hands it over
   * to be checksummed, compressed and written.
   */
  flushChunk(): void {
    this.#check();
    if (this.#chunk.messages === 0) return;
    if (!(this.#sink instanceof ThreadSink)) {
      // Inline: the pieces as they are (large messages by reference), written with one gathered write.
      const sealed = this.#chunk.seal();
      const chunk: ChunkBody = {
        pieces: sealed.pieces,
        crc: sealed.crc!,
        start: sealed.start,
        end: sealed.end,
        indexes: [...sealed.indexes],
        probePiece: sealed.largest,
        probeOffset: 0,
        probeLength: sealed.pieces[sealed.largest]?.byteLength ?? 0,
      };
      this.#post({ op: "chunk", id: 0, chunk }, sealed.size);
      this.#inChunk.clear();
      this.#releaseHeldAfterPost();
      return;
    }
    // The writer thread checksums it.
    const sealed = this.#chunk.seal(false);
    // One buffer of its own (never a pooled slab), so that it can be moved to the writer thread: one
    // it gave back when big enough (memory already mapped), else a new one.
    const spare = this.#sink.spare;
    const i = spare.findIndex((b) => b.byteLength >= sealed.size);
    const body =
      i >= 0 ? new Uint8Array(spare.splice(i, 1)[0]!, 0, sealed.size) : Buffer.allocUnsafeSlow(sealed.size);
    let o = 0;
    let probeOffset = 0;
    let probeLength = 0;
    for (const p of sealed.pieces) {
      if (p.byteLength > probeLength) {
        probeOffset = o;
        probeLength = p.byteLength;
      }
      body.set(p, o);
      o += p.byteLength;
    }
    const chunk: ChunkBody = {
      pieces: [body],
      start: sealed.start,
      end: sealed.end,
      indexes: [...sealed.indexes],
      probePiece: 0,
      probeOffset,
      probeLength,
    };
    this.#post({ op: "chunk", id: 0, chunk }, sealed.size);
    this.#inChunk.clear();
    this.#releaseHeldAfterPost();
  }

  /** What the chunk just posted held is released once it is written. */
  #releaseHeldAfterPost(): void {
    if (this.#heldByChunk.length === 0) return;
    const id = this.#nextId - 1;
    for (const run of this.#heldByChunk) this.#afterWrite.push({ id, run });
    this.#heldByChunk = [];
  }

  /**
   * Runs `release` once the bytes added so far are written: the open chunk's, or (with no open chunk)
   * everything posted. For callers that hand large messages over by reference and reuse their buffers
   * afterwards. Never runs after a write failure (the buffers are then left to the garbage collector).
   */
  holdUntilWritten(release: () => void): void {
    if (this.#chunk.messages > 0) this.#heldByChunk.push(release);
    else if (this.#inFlight.size === 0) release();
    else this.#afterWrite.push({ id: this.#nextId - 1, run: release });
  }

  /** Resolves once everything queued so far is written (rejects with the write error, if any). */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0 && this.#failure === undefined) {
      await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Closes the open chunk, writes the summary (schemas, channels, statistics, metadata and chunk
   * indexes, summary offsets) and the footer, and closes the file. Idempotent.
   * @throws MyelinError ERR_STORAGE if a write failed: the file then ends at the last complete chunk
   *   and `myelin bag repair` makes it readable.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#failure === undefined) {
        this.flushChunk();
        const stats: Statistics = {
          messageCount: BigInt(this.#messages),
          schemaCount: this.#schemas.size,
          channelCount: this.#channels.size,
          attachmentCount: 0,
          metadataCount: 0,
          chunkCount: 0,
          messageStartTime: timeToBigint(this.#startSec, this.#startNsec),
          messageEndTime: timeToBigint(this.#endSec, this.#endNsec),
          channelMessageCounts: new Map(),
        };
        this.#channelCounts.forEach((n, id) => stats.channelMessageCounts.set(id, BigInt(n)));
        const content = {
          schemas: [...this.#schemas.values()],
          channels: [...this.#channels.values()],
          stats,
        };
        this.#post({ op: "summary", id: 0, content }, 0);
      }
      this.#closed = true;
      await this.drain();
    } finally {
      this.#closed = true;
      this.#sink.hold(true);
      const end = await this.#sink.close();
      if (end >= 0n && this.#failure === undefined) this.#position = end;
    }
  }

  /** Hands a request over, counting `bytes` as queued until it is acknowledged. */
  #post(req: TailRequest & { id: number }, bytes: number): void {
    const id = this.#nextId++;
    req.id = id;
    if (this.#inFlight.size === 0) this.#sink.hold(true);
    this.#inFlight.set(id, bytes);
    this.#queued += bytes;
    this.#sink.post(req);
  }

  #reply(r: TailReply): void {
    if (r.op === "ack") {
      const bytes = this.#inFlight.get(r.id) ?? 0;
      this.#inFlight.delete(r.id);
      this.#queued -= bytes;
      this.#position = r.position;
      // Acknowledgements come in order: everything up to r.id is written.
      const a = this.#afterWrite;
      let n = 0;
      while (n < a.length && a[n]!.id <= r.id) n++;
      if (n > 0) for (const { run } of a.splice(0, n)) run();
    } else if (r.op === "failed") {
      this.#failure ??= new MyelinError("ERR_STORAGE", `writing ${this.path} failed: ${r.message}`);
    } else return;
    if (this.#inFlight.size === 0 && !this.#closed) this.#sink.hold(false);
    if (this.#inFlight.size === 0 || this.#failure !== undefined) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** The records built so far, as a buffer of their own (the builder's is reused). */
  #takeRecords(): Uint8Array {
    const b = this.#records.buffer; // a copy (the builder reuses its memory)
    this.#records.reset();
    return b;
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `${this.path} is closed`);
  }
}
