/**
 * The recorder's receiving-thread half: copies each raw message into a batch (record-batch.ts) and
 * hands full batches (and the open one whenever the recording thread is idle) to the recording thread
 * (recording-thread.ts) by transferring their buffers, or to a {@link RecordingSink} run inline.
 * Bounded: a message is refused (the caller counts it dropped) while more than `maxQueueBytes` wait,
 * in batches not yet handled plus chunks not yet written. Keeps the sink's per-topic counters.
 */
import { Worker } from "node:worker_threads";
import { MyelinError } from "../errors.js";
import { describeMessageType, type MessageType } from "../msgs/index.js";
import { BatchWriter, type Batch } from "./record-batch.js";
import {
  RecordingSink,
  type SinkCounters,
  type SinkOptions,
  type SinkReply,
  type SinkRequest,
} from "./recording-sink.js";

/** Usual batch size: big enough to amortise a hand-over, small enough to keep latency low. */
const BATCH_BYTES = 256 * 1024;

/** Per-topic counters kept by the sink. */
export interface FeedTopicStats {
  messages: number;
  bytes: number;
  invalid: number;
  /** Handed over but not written: the recording failed first. */
  dropped: number;
}

/** Callbacks of a feed. */
export interface FeedEvents {
  file(path: string): void;
  error(err: Error): void;
}

/** See the module comment. */
export class RecordingFeed {
  readonly #maxQueueBytes: number;
  readonly #events: FeedEvents;
  readonly #batches = new BatchWriter(BATCH_BYTES);
  readonly #topics: FeedTopicStats[] = [];
  #worker: Worker | undefined;
  #sink: RecordingSink | undefined;
  #nextId = 1;
  /** Bytes of batches handed over and not done yet, by id. */
  readonly #inFlight = new Map<number, number>();
  #inFlightBytes = 0;
  #sinkQueued = 0;
  #fileBytes = 0;
  #flushScheduled = false;
  #failed: Error | undefined;
  #closed: ((r: Extract<SinkReply, { op: "closed" }>) => void) | undefined;
  #closing = false;
  #exited = false;

  private constructor(maxQueueBytes: number, events: FeedEvents) {
    this.#maxQueueBytes = maxQueueBytes;
    this.#events = events;
  }

  /**
   * Starts the recording thread (or the inline sink) and opens the first file.
   * @throws MyelinError ERR_STORAGE if the file cannot be created.
   */
  static async start(
    o: SinkOptions & { thread: boolean; maxQueueBytes: number },
    events: FeedEvents,
  ): Promise<RecordingFeed> {
    const f = new RecordingFeed(o.maxQueueBytes, events);
    const { thread, maxQueueBytes: _, ...sinkOptions } = o;
    try {
      if (thread) {
        const worker = new Worker(new URL("./recording-thread.js", import.meta.url), {
          workerData: sinkOptions,
        });
        f.#worker = worker;
        await new Promise<void>((resolve, reject) => {
          let opened = false;
          worker.on("message", (r: SinkReply) => {
            if (opened) f.#reply(r);
            else if (r.op === "opened") {
              opened = true;
              resolve();
            } else if (r.op === "error") reject(new MyelinError("ERR_STORAGE", r.message));
          });
          worker.on("error", (err) => {
            if (!opened) reject(err);
            else f.#reply({ op: "error", message: `the recording thread failed: ${err.message}` });
          });
          worker.on("exit", () => {
            f.#exited = true;
            if (!opened) reject(new Error("the recording thread exited before opening the file"));
            f.#closed?.({ op: "closed", fileBytes: f.#fileBytes, error: "the recording thread exited" });
          });
        });
      } else {
        f.#sink = await RecordingSink.start(sinkOptions, (r) => f.#reply(r));
      }
    } catch (err) {
      void f.#worker?.terminate();
      if (err instanceof MyelinError) throw err;
      throw new MyelinError("ERR_STORAGE", `cannot create ${o.output}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return f;
  }

  /** Bytes handed to files so far (written or waiting), as the sink last said. */
  get fileBytes(): number {
    return this.#fileBytes;
  }

  /** Bytes waiting: batched and not yet handled, plus chunks not yet written. */
  get queuedBytes(): number {
    return this.#inFlightBytes + this.#batches.length + this.#sinkQueued;
  }

  /** The first failure of the recording thread or a file, if any. */
  get failure(): Error | undefined {
    return this.#failed;
  }

  /** The sink's counters of topic `index` (zeros before its first batch is done). */
  topicStats(index: number): FeedTopicStats {
    return (this.#topics[index] ??= { messages: 0, bytes: 0, invalid: 0, dropped: 0 });
  }

  /** Declares topic `index` before its first message. */
  addTopic(index: number, topic: string, type: MessageType<unknown>): void {
    this.topicStats(index);
    this.#post({ op: "topic", index, topic, type: describeMessageType(type) });
  }

  /**
   * Copies one raw message into the open batch; false if it was refused (queue full, or the recording
   * failed or is closing): the caller counts it as dropped.
   */
  push(
    index: number,
    seq: number,
    logMs: number,
    pubSec: number,
    pubNsec: number,
    frames: readonly Uint8Array[],
  ): boolean {
    if (this.#closing || this.#failed !== undefined) return false;
    const size = BatchWriter.sizeOf(frames);
    if (this.queuedBytes + size > this.#maxQueueBytes) return false;
    const closed = this.#batches.add(index, seq, logMs, pubSec, pubNsec, frames, size);
    if (closed !== undefined) this.#handOver(closed);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        // An idle recording thread gets what this turn gathered; a busy one gets it when it says it
        // is done (the batch grows meanwhile, so hand-overs get fewer as the load grows).
        if (this.#inFlight.size === 0) this.flush();
      });
    }
    return true;
  }

  /** Hands the open batch over now. */
  flush(): void {
    const b = this.#batches.take();
    if (b !== undefined) this.#handOver(b);
  }

  /** Gives the sink the counters for the files' metadata. */
  counters(c: SinkCounters): void {
    this.#post({ op: "counters", counters: c });
  }

  /**
   * Hands the rest over, writes the metadata with `c` into the last file and closes it; resolves once
   * every file is closed.
   * @throws MyelinError ERR_STORAGE if a write failed.
   */
  async close(c: SinkCounters): Promise<void> {
    if (this.#closing) return;
    this.flush();
    this.#closing = true;
    const done = new Promise<Extract<SinkReply, { op: "closed" }>>((resolve) => (this.#closed = resolve));
    if (this.#exited) {
      const why = this.#failed?.message ?? "the recording thread exited";
      this.#closed?.({ op: "closed", fileBytes: this.#fileBytes, error: why });
    } else this.#post({ op: "close", counters: c });
    const r = await done;
    this.#fileBytes = r.fileBytes;
    await this.#worker?.terminate();
    if (r.error !== undefined) throw new MyelinError("ERR_STORAGE", `recording failed: ${r.error}`);
  }

  #handOver(b: Batch): void {
    const id = this.#nextId++;
    this.#inFlight.set(id, b.length);
    this.#inFlightBytes += b.length;
    this.#post({ op: "batch", id, buffer: b.buffer, length: b.length, large: b.large }, [b.buffer]);
  }

  #post(req: SinkRequest, transfer?: ArrayBuffer[]): void {
    if (this.#worker !== undefined) this.#worker.postMessage(req, transfer);
    else this.#sink?.post(req);
  }

  #reply(r: SinkReply): void {
    switch (r.op) {
      case "done": {
        const bytes = this.#inFlight.get(r.id) ?? 0;
        this.#inFlight.delete(r.id);
        this.#inFlightBytes -= bytes;
        this.#sinkQueued = r.queuedBytes;
        this.#fileBytes = r.fileBytes;
        const s = r.stats;
        for (let i = 0; i < s.length; i += 5) {
          const t = this.topicStats(s[i]!);
          t.messages += s[i + 1]!;
          t.bytes += s[i + 2]!;
          t.invalid += s[i + 3]!;
          t.dropped += s[i + 4]!;
        }
        if (r.recycled !== undefined) this.#batches.recycle(r.recycled);
        if (this.#inFlight.size === 0 && !this.#closing) this.flush();
        return;
      }
      case "recycle":
        this.#batches.recycle(r.buffer);
        return;
      case "file":
        this.#events.file(r.path);
        return;
      case "error": {
        const e = new MyelinError("ERR_STORAGE", r.message);
        this.#failed ??= e;
        this.#events.error(e);
        return;
      }
      case "closed":
        this.#closed?.(r);
        return;
      case "opened":
        return;
    }
  }
}
