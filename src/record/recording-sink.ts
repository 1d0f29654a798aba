/**
 * The back of the recorder, run on its recording thread (recording-thread.ts) or inline: takes the
 * raw messages the receiving thread batched (record-batch.ts), decodes and validates each against its
 * topic's type (counting the invalid per topic), encodes it for the viewers (JSON text, or CDR for
 * images and point clouds; channel-encoding.ts) and writes it into the current MCAP file; closes
 * chunks every `chunkMs`, splits files by size or time (the next file is opened in advance), writes
 * the `myelin.recording` metadata record into each file as it closes. Requests are handled in the
 * order they were posted; replies say what was done, so the receiving thread can bound what waits.
 */
import { unlink } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { decodeCompiled, decodeFrames, MISMATCH, msgpackCodec } from "../codec/index.js";
import { messageTypeFromDescription, type MessageType, type TypeDescription } from "../msgs/index.js";
import { channelEncodingOf, type ChannelEncoding } from "./channel-encoding.js";
import { forEachBatchMessage, type BatchVisitor } from "./record-batch.js";
import { McapFileWriter, type Compression } from "./mcap-file-writer.js";
import { timeFromBigint } from "./mcap-time.js";
import { viewerJsonText } from "./viewer-json.js";
import { viewerJsonTranscoder, type ViewerJsonTranscoder } from "./viewer-json-transcoder.js";

/** Room for a small message's JSON written straight from msgpack (below the chunk's by-reference size: copied). */
const TRANSCODE_BYTES = 8 * 1024;

/** How the sink is set up. */
export interface SinkOptions {
  /** The output file; with splitting, `run_0.mcap`, `run_1.mcap`, … */
  output: string;
  compression: Compression;
  chunkBytes: number;
  chunkMs: number;
  splitBytes?: number | undefined;
  splitMs?: number | undefined;
  /** The time base of the batches' log times, in ns since the Unix epoch. */
  timeBaseNs: bigint;
  /** Write chunks on a thread of their own (McapFileWriter's `thread`). */
  writerThread: boolean;
}

/** Counters the receiving thread keeps, by topic index, for the files' metadata. */
export interface SinkCounters {
  dropped: number[];
  lost: number[];
  skipped: [string, string][];
}

/** What the receiving thread posts, in order. */
export type SinkRequest =
  | { op: "topic"; index: number; topic: string; type: TypeDescription }
  | { op: "batch"; id: number; buffer: ArrayBuffer; length: number; large: boolean }
  | { op: "counters"; counters: SinkCounters }
  | { op: "close"; counters: SinkCounters };

/** What the sink posts back. */
export type SinkReply =
  | { op: "opened" }
  /**
   * Batch `id` is written into the open chunk. `stats`: per topic touched, index, messages, bytes,
   * invalid and dropped (after a failure: not written) (increments); `fileBytes`: bytes handed to files so far; `queuedBytes`: waiting for the disk.
   */
  | {
      op: "done";
      id: number;
      stats: number[];
      fileBytes: number;
      queuedBytes: number;
      recycled?: ArrayBuffer;
    }
  /** A batch with large messages is written: its buffer goes back for reuse. */
  | { op: "recycle"; buffer: ArrayBuffer }
  | { op: "file"; path: string }
  | { op: "error"; message: string }
  | { op: "closed"; fileBytes: number; error?: string };

/** The name of part `index` of a split recording: `run.mcap` → `run_3.mcap`. */
export function splitName(output: string, index: number): string {
  const ext = extname(output);
  return join(dirname(output), `${basename(output, ext)}_${index}${ext === "" ? ".mcap" : ext}`);
}

interface SinkTopic {
  topic: string;
  type: MessageType<unknown>;
  enc: ChannelEncoding<unknown>;
  json: boolean;
  /** Writes the JSON straight from msgpack (types with only plain fields), else undefined. */
  transcode: ViewerJsonTranscoder | undefined;
  /** Channel id in the current file, or -1 before its first message there. */
  channel: number;
  invalid: number;
  /** Increments since the last reply. */
  dMessages: number;
  dBytes: number;
  dInvalid: number;
  dDropped: number;
  touched: boolean;
}

/** See the module comment. */
export class RecordingSink {
  readonly #o: SinkOptions;
  readonly #reply: (r: SinkReply, transfer?: ArrayBuffer[]) => void;
  readonly #topics: SinkTopic[] = [];
  readonly #touched: SinkTopic[] = [];
  #counters: SinkCounters = { dropped: [], lost: [], skipped: [] };
  #writer!: McapFileWriter;
  #next: Promise<McapFileWriter> | undefined;
  #fileIndex = 0;
  #fileStart = 0;
  #bytesClosed = 0;
  readonly #closing: Promise<void>[] = [];
  /** The last file's closing: files close (and are reported) one after the other, in order. */
  #lastClose: Promise<void> = Promise.resolve();
  /** Requests waiting while the next file opens. */
  #backlog: SinkRequest[] | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failed = false;
  readonly #visit: BatchVisitor;
  readonly #startedAt = new Date();
  readonly #json = Buffer.allocUnsafe(TRANSCODE_BYTES);
  /** The batches' time base (timeBaseNs) in whole seconds and nanoseconds. */
  readonly #baseSec: number;
  readonly #baseNsec: number;

  private constructor(o: SinkOptions, reply: (r: SinkReply, transfer?: ArrayBuffer[]) => void) {
    this.#o = o;
    this.#reply = reply;
    const base = timeFromBigint(o.timeBaseNs);
    this.#baseSec = base.sec;
    this.#baseNsec = base.nsec;
    this.#visit = (topic, seq, logMs, pubSec, pubNsec, frames) =>
      this.#message(topic, seq, logMs, pubSec, pubNsec, frames);
  }

  get #splitting(): boolean {
    return this.#o.splitBytes !== undefined || this.#o.splitMs !== undefined;
  }

  /**
   * Opens the first file (and the second, with splitting) and starts the chunk timer.
   * @throws MyelinError ERR_STORAGE if the file cannot be created.
   */
  static async start(
    o: SinkOptions,
    reply: (r: SinkReply, transfer?: ArrayBuffer[]) => void,
  ): Promise<RecordingSink> {
    const s = new RecordingSink(o, reply);
    s.#writer = await s.#open(0);
    s.#fileStart = Date.now();
    if (s.#splitting) s.#next = s.#open(1);
    s.#timer = setInterval(() => s.#tick(), Math.max(10, Math.min(o.chunkMs, 250)));
    return s;
  }

  /** Handles one request (queued behind the next file's opening, if one is under way). */
  post(req: SinkRequest): void {
    if (this.#backlog !== undefined) {
      this.#backlog.push(req);
      return;
    }
    try {
      this.#handle(req);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #handle(req: SinkRequest): void {
    switch (req.op) {
      case "topic": {
        const type = messageTypeFromDescription(req.type);
        const enc = channelEncodingOf(type);
        this.#topics[req.index] = {
          topic: req.topic,
          type,
          enc,
          json: enc.messageEncoding === "json",
          transcode: enc.messageEncoding === "json" ? viewerJsonTranscoder(type) : undefined,
          channel: -1,
          invalid: 0,
          dMessages: 0,
          dBytes: 0,
          dInvalid: 0,
          dDropped: 0,
          touched: false,
        };
        return;
      }
      case "batch":
        this.#batch(req.id, req.buffer, req.length, req.large);
        return;
      case "counters":
        this.#counters = req.counters;
        return;
      case "close":
        this.#counters = req.counters;
        void this.#close();
        return;
    }
  }

  #batch(id: number, buffer: ArrayBuffer, length: number, large: boolean): void {
    if (!this.#failed) {
      try {
        forEachBatchMessage(buffer, length, this.#visit);
      } catch (err) {
        this.#fail(err as Error);
      }
    }
    if (this.#failed) {
      // Nothing more is written: what is left of the batch is counted as dropped, never lost silently.
      let done = 0;
      for (const t of this.#touched) done += t.dMessages + t.dInvalid;
      let seen = 0;
      forEachBatchMessage(buffer, length, (index) => {
        if (seen++ < done) return;
        const t = this.#topics[index]!;
        if (!t.touched) {
          t.touched = true;
          this.#touched.push(t);
        }
        t.dDropped++;
      });
    }
    const stats: number[] = [];
    for (const t of this.#touched) {
      stats.push(this.#topics.indexOf(t), t.dMessages, t.dBytes, t.dInvalid, t.dDropped);
      t.dMessages = t.dBytes = t.dInvalid = t.dDropped = 0;
      t.touched = false;
    }
    this.#touched.length = 0;
    const w = this.#writer;
    const r: SinkReply = {
      op: "done",
      id,
      stats,
      fileBytes: this.#bytesClosed + w.bytes,
      queuedBytes: w.queuedBytes,
    };
    // A batch whose messages were all copied into the chunk goes back for reuse now; one with a large
    // message is referenced by the chunk (no copy) and goes back once the chunk is written.
    if (!large) {
      r.recycled = buffer;
      this.#reply(r, [buffer]);
    } else {
      this.#reply(r);
      w.holdUntilWritten(() => this.#reply({ op: "recycle", buffer }, [buffer]));
    }
    if (this.#o.splitBytes !== undefined && w.bytes + w.queuedBytes >= this.#o.splitBytes) this.#split();
  }

  #message(
    index: number,
    seq: number,
    logMs: number,
    pubSec: number,
    pubNsec: number,
    frames: Uint8Array[],
  ): void {
    const t = this.#topics[index]!;
    if (!t.touched) {
      t.touched = true;
      this.#touched.push(t);
    }
    // Log time: the time base plus logMs, in seconds and nanoseconds (no BigInt per message).
    const ns = this.#baseNsec + Math.round(logMs * 1e6);
    const carry = Math.floor(ns / 1e9);
    const logSec = this.#baseSec + carry;
    const logNsec = ns - carry * 1e9;
    if (t.transcode !== undefined && frames.length === 1) {
      // Small JSON messages in their plain form: checked and written in one pass, no decoded object.
      const n = t.transcode(frames[0]!, this.#json);
      if (n >= 0) {
        const data = this.#json.subarray(0, n);
        t.dBytes += this.#channelOf(t).addMessageAt(t.channel, seq, logSec, logNsec, pubSec, pubNsec, data);
        t.dMessages++;
        return;
      }
    }
    const msg = decode(t.type, frames);
    if (msg === undefined) {
      t.invalid++;
      t.dInvalid++;
      return;
    }
    const w = this.#channelOf(t);
    const data = t.json ? viewerJsonText(t.type, msg) : t.enc.encodeParts(msg);
    t.dBytes += w.addMessageAt(t.channel, seq, logSec, logNsec, pubSec, pubNsec, data);
    t.dMessages++;
  }

  /** The current file's writer, with topic `t`'s channel added to it (on its first message there). */
  #channelOf(t: SinkTopic): McapFileWriter {
    const w = this.#writer;
    if (t.channel < 0) {
      const e = t.enc;
      const schema = w.addSchema(e.schemaName, e.schemaEncoding, e.schemaData);
      t.channel = w.addChannel(schema, t.topic, e.messageEncoding, new Map([["myelin_type", t.type.name]]));
    }
    return w;
  }

  #tick(): void {
    if (this.#failed || this.#backlog !== undefined) return;
    const w = this.#writer;
    if (w.failure !== undefined) {
      this.#fail(w.failure);
      return;
    }
    try {
      w.flushChunk();
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (this.#o.splitMs !== undefined && Date.now() - this.#fileStart >= this.#o.splitMs) this.#split();
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#reply({ op: "error", message: err.message });
  }

  async #open(index: number): Promise<McapFileWriter> {
    const path = this.#splitting ? splitName(this.#o.output, index) : this.#o.output;
    return McapFileWriter.create(path, {
      compression: this.#o.compression,
      chunkBytes: this.#o.chunkBytes,
      library: "myelin",
      thread: this.#o.writerThread,
    });
  }

  /** Closes the current file and goes on in the next (opened in advance); requests wait meanwhile. */
  #split(): void {
    const next = this.#next;
    if (next === undefined || this.#backlog !== undefined) return;
    const w = this.#writer;
    this.#next = undefined;
    this.#bytesClosed += w.bytes;
    this.#closing.push(this.#finish(w));
    this.#backlog = [];
    void next.then(
      (nw) => {
        this.#fileIndex++;
        this.#writer = nw;
        this.#fileStart = Date.now();
        for (const t of this.#topics) if (t !== undefined) t.channel = -1;
        this.#next = this.#open(this.#fileIndex + 1);
        const backlog = this.#backlog ?? [];
        this.#backlog = undefined;
        for (let i = 0; i < backlog.length; i++) {
          const again = this.#backlog as SinkRequest[] | undefined;
          if (again !== undefined) {
            // split again while draining: keep the rest, in order
            again.push(...backlog.slice(i));
            return;
          }
          try {
            this.#handle(backlog[i]!);
          } catch (err) {
            this.#fail(err as Error);
          }
        }
      },
      (err: unknown) => this.#fail(err as Error),
    );
  }

  /**
   * Writes the metadata record into `w` now, and closes it once the files before it are closed (so
   * that `file` replies come in file order, even when the last file is closed while the one before is
   * still being written).
   */
  #finish(w: McapFileWriter): Promise<void> {
    const byTopic = (values: number[]): string =>
      JSON.stringify(
        Object.fromEntries(
          this.#topics.flatMap((t, i) => (t === undefined ? [] : [[t.topic, values[i] ?? 0]])),
        ),
      );
    const meta = new Map<string, string>([
      ["started", this.#startedAt.toISOString()],
      ["file_index", String(this.#fileIndex)],
      ["dropped", byTopic(this.#counters.dropped)],
      ["lost", byTopic(this.#counters.lost)],
      ["invalid", byTopic(this.#topics.map((t) => t?.invalid ?? 0))],
      ["skipped", JSON.stringify(Object.fromEntries(this.#counters.skipped))],
    ]);
    if (w.failure === undefined) w.addMetadata("myelin.recording", meta);
    const before = this.#lastClose;
    const closed = (async () => {
      await before.catch(() => undefined);
      await w.close();
      this.#reply({ op: "file", path: w.path });
    })();
    this.#lastClose = closed;
    return closed;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    let error: string | undefined;
    const w = this.#writer;
    this.#closing.push(
      this.#finish(w).then(() => {
        this.#bytesClosed += w.bytes;
      }),
    );
    const next = this.#next;
    this.#next = undefined;
    if (next !== undefined) {
      this.#closing.push(
        next.then(async (nw) => {
          await nw.close();
          await unlink(nw.path);
        }),
      );
    }
    const results = await Promise.allSettled(this.#closing);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) error = (failed.reason as Error).message;
    const r: SinkReply = { op: "closed", fileBytes: this.#bytesClosed };
    if (error !== undefined) r.error = error;
    this.#reply(r);
  }
}

/** A payload decoded and validated, or undefined. */
function decode(type: MessageType<unknown>, frames: Uint8Array[]): unknown {
  if (frames.length === 1) {
    const fast = decodeCompiled(type, frames[0]!);
    if (fast !== MISMATCH) return fast;
  }
  try {
    const msg = frames.length === 1 ? msgpackCodec.decode(frames[0]!) : decodeFrames(frames);
    return type.validate(msg).ok ? msg : undefined;
  } catch {
    return undefined;
  }
}
