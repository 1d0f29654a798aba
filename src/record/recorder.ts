/**
 * The recorder behind `myelin record`: subscribes to the topics a selection names (as they appear in
 * the graph), writes every message into MCAP files with its publish time and sequence number, and
 * counts what it could not keep.
 *
 * It never slows a publisher: live topics are subscribed best-effort and raw (neither decoded nor
 * validated on the receiving thread): each message's bytes are copied into a batch that goes to the
 * recording thread (recording-feed.ts, recording-sink.ts), which decodes and validates it (counting
 * the invalid per topic), encodes it for the viewers and writes it into chunks. When more than
 * `maxQueueBytes` wait (batches not yet handled, chunks not yet written), messages are dropped, counted
 * per topic (`dropped`); messages a publisher could not send because the recorder was not reading fast
 * enough show up as gaps in its sequence (`lost`). Both are printed and written into each file's
 * `myelin.recording` metadata record.
 *
 * Durable topics recorded with `from` (a sequence number or a time) are read from the hub's store
 * instead, history first and then as they grow, without a consumer (nothing is acknowledged, no work
 * queue is affected): each message's sequence is its sequence in the store, its publish time the
 * time it was stored.
 */
import { EventEmitter } from "node:events";
import { MyelinError, ServiceError } from "../errors.js";
import { lookupType, type MessageType } from "../msgs/index.js";
import {
  StoreClient,
  type GraphSnapshot,
  type MessageInfo,
  type Node,
  type RawMessage,
  type Subscription,
} from "../node/index.js";
import type { Compression } from "./mcap-file-writer.js";
import { RecordingFeed } from "./recording-feed.js";
import type { SinkCounters } from "./recording-sink.js";

export { splitName } from "./recording-sink.js";

/** Which topics to record. */
export interface TopicSelection {
  /** Topic names, recorded when they appear. */
  topics?: readonly string[];
  /** Every topic (hidden ones, with a segment starting with `_`, only if a pattern or name asks for them). */
  all?: boolean;
  /** Topics matching any of these are recorded. */
  regex?: readonly RegExp[];
  /** Topics matching any of these are not recorded, whatever else says. */
  exclude?: readonly RegExp[];
}

/** Where durable topics start: a sequence number in the store, or a time (ms since the Unix epoch). */
export type RecordFrom = { seq: number } | { timeMs: number };

/** Options of {@link Recorder}. */
export interface RecorderOptions extends TopicSelection {
  /** The output file, e.g. `run.mcap`; with splitting, `run_0.mcap`, `run_1.mcap`, … */
  output: string;
  compression?: Compression;
  /** Uncompressed chunk size, in bytes (default 4 MiB). */
  chunkBytes?: number;
  /** A chunk is closed at least this often, in ms (default 1000): the most a `kill -9` loses. */
  chunkMs?: number;
  /** Start a new file once the current one holds this many bytes. */
  splitBytes?: number;
  /** Start a new file after this many ms. */
  splitMs?: number;
  /** Record durable topics from the store, from this point. */
  from?: RecordFrom;
  /** Messages are dropped (and counted) while this many bytes wait for the disk (default 512 MiB). */
  maxQueueBytes?: number;
  /** How often the store is asked for more of a durable topic once caught up, in ms (default 100). */
  pollMs?: number;
  /**
   * Decode, validate, encode and write on a recording thread (default true), so that the thread
   * receiving messages only copies their bytes into batches; false does the same work inline, on the
   * receiving thread.
   */
  writerThread?: boolean;
}

/** Counters of one recorded topic. */
export interface TopicStats {
  topic: string;
  type: string;
  /** `live` (subscribed) or `store` (read from the hub's store). */
  source: "live" | "store";
  messages: number;
  /** Encoded bytes written. */
  bytes: number;
  /** Dropped by the recorder: the recording thread or the disk was too far behind (or writing failed). */
  dropped: number;
  /** Lost before reaching the recorder: gaps in a publisher's (or the store's) sequence. */
  lost: number;
  /** Messages that failed to decode or validate. */
  invalid: number;
}

/** What the recorder did so far. */
export interface RecorderStats {
  /** ms since start. */
  elapsedMs: number;
  files: string[];
  /** Bytes handed to files (written or queued). */
  bytes: number;
  /** Bytes waiting for the disk. */
  queuedBytes: number;
  topics: TopicStats[];
  /** Topics matched by the selection but not recorded, with the reason (e.g. unknown type). */
  skipped: { topic: string; reason: string }[];
}

/** Events: `topic` (a topic starts being recorded), `skip` (a matched topic cannot be), `file` (a file was closed), `error`. */
export interface RecorderEvents {
  topic: [TopicStats];
  skip: [{ topic: string; reason: string }];
  file: [string];
  error: [Error];
}

const DEFAULTS = {
  compression: "zstd" as Compression,
  chunkBytes: 4 * 1024 * 1024,
  chunkMs: 1000,
  maxQueueBytes: 512 * 1024 * 1024,
  pollMs: 100,
  writerThread: true,
};

/**
 * How far a publisher may run ahead of the recorder (messages and bytes in flight): about a second of
 * 64 B messages at 250k/s or of 1 MiB frames at 250/s, so that a pause of the recorder's CPU or disk is
 * ridden out rather than counted as lost.
 */
const RECORD_WINDOW = { messages: 262_144, bytes: 256 * 1024 * 1024 };

/** Topics one recording can hold (the batches' topic index is 16 bits). */
const MAX_TOPICS = 65_535;

/** The store page size when reading a durable topic. */
const STORE_PAGE = 1000;

interface Recorded {
  stats: TopicStats;
  /** The topic's index in the feed. */
  index: number;
  type: MessageType<unknown>;
  sub?: Subscription<RawMessage>;
}

const isHidden = (topic: string): boolean => topic.split("/").some((s) => s.startsWith("_"));

/**
 * True if the selection records `topic`: named, or matching a pattern, or `all` (not hidden); and not
 * excluded.
 */
export function selects(sel: TopicSelection, topic: string): boolean {
  if (sel.exclude?.some((r) => r.test(topic)) === true) return false;
  if (sel.topics?.includes(topic) === true) return true;
  if (sel.regex?.some((r) => r.test(topic)) === true) return true;
  return sel.all === true && !isHidden(topic);
}

/** Records topics into MCAP files; see the module comment. `start()`, then `stop()`. */
export class Recorder extends EventEmitter<RecorderEvents> {
  readonly #node: Node;
  readonly #opts: RecorderOptions & typeof DEFAULTS;
  readonly #topics = new Map<string, Recorded>();
  readonly #byIndex: Recorded[] = [];
  readonly #skipped = new Map<string, string>();
  readonly #files: string[] = [];
  #feed: RecordingFeed | undefined;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #stopping: AbortController = new AbortController();
  #onGraph = (g: GraphSnapshot): void => this.#consider(g);
  readonly #pumps: Promise<void>[] = [];
  #lastCounters = "";
  #stoppedAt = 0;
  #closed: Promise<void> | undefined;

  constructor(node: Node, options: RecorderOptions) {
    super();
    this.#node = node;
    this.#opts = { ...DEFAULTS, ...options };
    const o = this.#opts;
    if ((o.topics?.length ?? 0) === 0 && o.all !== true && (o.regex?.length ?? 0) === 0) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        "nothing to record: name topics, or give --all or --regex PATTERN",
      );
    }
  }

  /**
   * Opens the first file and starts recording what the graph shows, then what appears.
   * @throws MyelinError ERR_STORAGE if the file cannot be created.
   */
  async start(): Promise<void> {
    this.#startedAt = Date.now();
    const o = this.#opts;
    this.#feed = await RecordingFeed.start(
      {
        output: o.output,
        compression: o.compression,
        chunkBytes: o.chunkBytes,
        chunkMs: o.chunkMs,
        splitBytes: o.splitBytes,
        splitMs: o.splitMs,
        timeBaseNs: BigInt(Math.round(performance.timeOrigin * 1e6)),
        writerThread: false,
        thread: o.writerThread,
        maxQueueBytes: o.maxQueueBytes,
      },
      {
        file: (path) => {
          this.#files.push(path);
          this.emit("file", path);
        },
        error: (err) => this.emit("error", err),
      },
    );
    this.#node.on("graph", this.#onGraph);
    this.#timer = setInterval(() => this.#tick(), 100);
    this.#consider(await this.#node.queryGraph());
    if (this.#opts.from !== undefined) await this.#fromStore();
  }

  /**
   * With `from`: named topics that no node declares right now, but that the store keeps, are read
   * from the store at once (a durable topic outlives its publishers).
   */
  async #fromStore(): Promise<void> {
    const store = new StoreClient(this.#node, { timeoutMs: 5000 });
    for (const topic of this.#opts.topics ?? []) {
      if (this.#topics.has(topic) || this.#skipped.has(topic) || !selects(this.#opts, topic)) continue;
      let r;
      try {
        r = await store.info({ topic });
      } catch (err) {
        if (err instanceof ServiceError && err.code === "ERR_NO_SERVER") {
          throw new ServiceError(
            "ERR_NO_SERVER",
            `cannot record ${topic} from the store: no store runs with the hub (durable topics need \`myelin hub\` with its store)`,
          );
        }
        throw err;
      }
      if (r.exists && !this.#topics.has(topic)) this.#add(topic, r.type, 0);
    }
  }

  /** Counters so far. */
  stats(): RecorderStats {
    const feed = this.#feed;
    const topics = [...this.#topics.values()].map((r) => {
      const s = { ...r.stats };
      if (r.sub !== undefined && !this.#stopped) s.lost = r.sub.stats().dropped;
      if (feed !== undefined) {
        const f = feed.topicStats(r.index);
        s.messages = f.messages;
        s.bytes = f.bytes;
        s.invalid = f.invalid;
        s.dropped += f.dropped;
      }
      return s;
    });
    return {
      elapsedMs: (this.#stopped ? this.#stoppedAt : Date.now()) - this.#startedAt,
      files: [...this.#files],
      bytes: feed?.fileBytes ?? 0,
      queuedBytes: feed?.queuedBytes ?? 0,
      topics: topics.sort((a, b) => a.topic.localeCompare(b.topic)),
      skipped: [...this.#skipped].map(([topic, reason]) => ({ topic, reason })),
    };
  }

  /**
   * Stops: unsubscribes, writes the drop counts into the file's metadata, closes the file (a valid,
   * indexed MCAP file) and returns the final counters.
   * @throws MyelinError ERR_STORAGE if writing failed (the file then ends at its last complete chunk).
   */
  async stop(): Promise<RecorderStats> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.#stoppedAt = Date.now();
      this.#stopping.abort();
      this.#node.off("graph", this.#onGraph);
      clearInterval(this.#timer);
      for (const r of this.#topics.values()) {
        if (r.sub !== undefined) r.stats.lost = r.sub.stats().dropped;
        r.sub?.close();
      }
      await Promise.allSettled(this.#pumps);
      this.#closed = this.#feed?.close(this.#counters());
    }
    await this.#closed;
    return this.stats();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The counters the files' metadata records, by topic index. */
  #counters(): SinkCounters {
    const c: SinkCounters = { dropped: [], lost: [], skipped: [...this.#skipped] };
    for (const r of this.#byIndex) {
      c.dropped[r.index] = r.stats.dropped;
      c.lost[r.index] = r.sub !== undefined && !this.#stopped ? r.sub.stats().dropped : r.stats.lost;
    }
    return c;
  }

  /** Every 100 ms: the counters go to the recording thread when they changed (for split files). */
  #tick(): void {
    const feed = this.#feed;
    if (feed === undefined || this.#stopped) return;
    const c = this.#counters();
    const key = JSON.stringify(c);
    if (key !== this.#lastCounters) {
      this.#lastCounters = key;
      feed.counters(c);
    }
  }

  /** Subscribes to the selected topics that the graph shows and that are not recorded yet. */
  #consider(g: GraphSnapshot): void {
    if (this.#stopped) return;
    const types = new Map<string, string>();
    const history = new Map<string, number>();
    for (const n of g.nodes) {
      for (const p of n.pubs) {
        types.set(p.topic, p.type);
        if (p.qos.durability === "transient-local") {
          history.set(p.topic, Math.max(history.get(p.topic) ?? 0, p.qos.depth));
        }
      }
      for (const s of n.subs) if (!types.has(s.topic)) types.set(s.topic, s.type);
    }
    for (const [topic, typeName] of types) {
      if (this.#topics.has(topic) || this.#skipped.has(topic) || !selects(this.#opts, topic)) continue;
      this.#add(topic, typeName, history.get(topic) ?? 0);
    }
  }

  /** Starts recording `topic`; `history` > 0 asks publishers that keep history (latched topics) for it. */
  #add(topic: string, typeName: string, history: number): void {
    const type = lookupType(typeName);
    if (type === undefined) {
      const reason = `type ${typeName} is not known here (load its module with --import MODULE)`;
      this.#skipped.set(topic, reason);
      this.emit("skip", { topic, reason });
      return;
    }
    if (this.#byIndex.length >= MAX_TOPICS) {
      const reason = `a recording holds at most ${MAX_TOPICS} topics; narrow the selection (--regex, --exclude) or record in several processes`;
      this.#skipped.set(topic, reason);
      this.emit("skip", { topic, reason });
      return;
    }
    const fromStore = this.#opts.from !== undefined;
    const r: Recorded = {
      stats: {
        topic,
        type: typeName,
        source: fromStore ? "store" : "live",
        messages: 0,
        bytes: 0,
        dropped: 0,
        lost: 0,
        invalid: 0,
      },
      index: this.#byIndex.length,
      type,
    };
    this.#topics.set(topic, r);
    this.#byIndex.push(r);
    this.#feed!.addTopic(r.index, topic, type);
    if (fromStore) {
      this.#pumps.push(this.#pumpStore(r));
    } else {
      void this.#subscribe(r, history);
    }
  }

  async #subscribe(r: Recorded, history: number): Promise<void> {
    try {
      const sub = await this.#node.createSubscription(
        r.stats.topic,
        r.type,
        (msg: RawMessage, info: MessageInfo) => this.#live(r, msg, info),
        {
          raw: true,
          window: RECORD_WINDOW,
          qos:
            history > 0
              ? { reliability: "best-effort", durability: "transient-local", depth: history }
              : { reliability: "best-effort" },
        },
      );
      if (this.#stopped) sub.close();
      else {
        r.sub = sub;
        this.emit("topic", r.stats);
      }
    } catch (err) {
      this.#topics.delete(r.stats.topic);
      const reason = (err as Error).message;
      this.#skipped.set(r.stats.topic, reason);
      this.emit("skip", { topic: r.stats.topic, reason });
    }
  }

  #live(r: Recorded, msg: RawMessage, info: MessageInfo): void {
    if (this.#stopped) return;
    const t = info.sourceTime;
    if (!this.#feed!.push(r.index, info.seq, performance.now(), t.sec, t.nanosec, msg.frames)) {
      r.stats.dropped++;
    }
  }

  /** Reads a durable topic from the store: history from `from`, then new messages as they are stored. */
  async #pumpStore(r: Recorded): Promise<void> {
    const topic = r.stats.topic;
    const store = new StoreClient(this.#node, { timeoutMs: 10000 });
    const from = this.#opts.from!;
    let nextSeq = "seq" in from ? from.seq : 0;
    let fromTime = "timeMs" in from ? from.timeMs : 0;
    this.emit("topic", r.stats);
    const signal = this.#stopping.signal;
    const origin = performance.timeOrigin;
    while (!signal.aborted) {
      let page;
      try {
        page = await store.read({
          topic,
          from_seq: Math.max(1, nextSeq),
          from_time_ms: fromTime,
          max: STORE_PAGE,
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ServiceError && err.code === "ERR_NO_SERVER") {
          const e = new ServiceError(
            "ERR_NO_SERVER",
            `cannot record ${topic} from the store: no store runs with the hub (durable topics need \`myelin hub\` with its store)`,
          );
          this.emit("error", e);
          return;
        }
        this.emit("error", err as Error);
        await delay(1000, signal);
        continue;
      }
      if (page.seqs.length > 0 && fromTime > 0) fromTime = 0; // the time applies to the first page only
      for (let i = 0; i < page.seqs.length; i++) {
        const seq = page.seqs[i]!;
        if (nextSeq > 0 && seq > nextSeq) r.stats.lost += seq - nextSeq; // removed by retention before we read it
        nextSeq = seq + 1;
        // Stored at (and recorded as published at) its store time; decoded and validated on the
        // recording thread like a live message.
        const ms = Math.round(page.timestamps[i]!);
        const sec = Math.floor(ms / 1000);
        const frames = [page.payloads[i]!];
        if (!this.#feed!.push(r.index, seq, ms - origin, sec, (ms - sec * 1000) * 1_000_000, frames)) {
          r.stats.dropped++;
        }
      }
      if (page.seqs.length < STORE_PAGE) await delay(this.#opts.pollMs, signal);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
