/**
 * The store service: durable topics, served by the hub process. A hidden node (`_store`) serves
 * the store's protocol (`STORE_PROTOCOL`, with its client, in src/node/store-client.ts): append
 * with confirm, fetch for a named durable consumer, ack/nack, info, read and configure. Each topic is a DurableLog in `<dataDir>/topics/<topic>`; each consumer's progress is a
 * ConsumerState saved to a ConsumerStateFile beside it; messages that exhaust `maxDeliver` go to
 * the durable topic `<topic>/dead_letter` with the reason, before the consumer's state moves on.
 */
import { existsSync, statfsSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { MyelinError, TypeMismatchError } from "../errors.js";
import { createNode, serveProtocol, STORE_PROTOCOL, type Node } from "../node/index.js";
import { ConsumerState, resolveStartSeq, type StartAt } from "./consumer.js";
import { ConsumerStateFile } from "./consumer-state-file.js";
import { DedupWindow, decodeIdHeader, encodeIdHeader } from "./dedup.js";
import type { StoreFs } from "./fs.js";
import { DurableLog, type FsyncPolicy, type LogRecord, type RetentionOptions } from "./log.js";
import { writeFileAtomic } from "./atomic-file.js";
import { DirLock, type DirLockOptions } from "./dir-lock.js";
import {
  mergeTopicConfig,
  parseTopicConfig,
  topicMatches,
  resolveTopicConfig,
  type ResolvedTopicConfig,
  type TopicConfig,
  type TopicConfigRule,
} from "./topic-config.js";
import { StoreService } from "./service-api.js";

export { StoreService };

/**
 * The settings file of a topic, or undefined if it is missing, empty or not JSON (an earlier
 * version wrote it in place, and a full disk could leave it empty): it is then written again.
 */
/** True if the error (or its cause) is ENOSPC or EDQUOT. */
function isDiskFull(e: unknown): boolean {
  for (let x: unknown = e, i = 0; x instanceof Error && i < 5; x = x.cause, i++) {
    const code = (x as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT" || /ENOSPC|disk is full/.test(x.message)) return true;
  }
  return false;
}

/** Bytes available to this user on the file system of `dir`, or undefined if unknown. */
function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** A consumer's options from a request; 0 takes the default. */
function consumerOptionsOf(o: { ackTimeoutMs: number; maxDeliver: number; maxInFlight: number }): {
  ackTimeoutMs: number;
  maxDeliver: number;
  maxInFlight: number;
} {
  return {
    ackTimeoutMs: o.ackTimeoutMs > 0 ? o.ackTimeoutMs : 30000,
    maxDeliver: o.maxDeliver > 0 ? o.maxDeliver : 5,
    maxInFlight: o.maxInFlight > 0 ? o.maxInFlight : 1000,
  };
}

async function readTopicMeta(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await readFile(path, "utf8")) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Options of the store service. */
export interface StoreServiceOptions {
  /** Directory of all durable topics (created if missing). Must survive reboots: not a tmpfs. */
  dataDir: string;
  /** Hub address and runtime directory of the hub to serve through (defaults as for any node). */
  hub?: string;
  runtimeDir?: string;
  /** When an append is confirmed (default "always"). */
  fsync?: FsyncPolicy;
  /** Group-commit bound for `batch`, in ms (default 5). */
  batchMs?: number;
  /** Retention of every topic (default: keep everything). */
  retention?: RetentionOptions;
  /** Settings of every topic (fsync, batchMs and retention above override these). */
  defaults?: TopicConfig;
  /** Per-topic settings by pattern (`*` one level, `**` any); the first match applies. */
  topics?: readonly TopicConfigRule[];
  /** File operations of the logs (default: node:fs/promises); tests inject disk faults through it. */
  fs?: StoreFs;
  /** Size at which a topic's log rolls to a new segment file, in bytes (default 64 MiB). */
  segmentBytes?: number;
  /** Human-readable events (topic opened, consumer created, dead letters). */
  log?: (line: string) => void;
}

interface ConsumerEntry {
  state: ConsumerState;
  file: ConsumerStateFile;
}

/** A durable consumer as the metrics see it. */
export interface StoreConsumerMetrics {
  name: string;
  /** Messages stored after the consumer's acknowledged floor (not yet acknowledged). */
  lagMessages: number;
  /** Messages delivered and waiting for their acknowledgement. */
  pending: number;
  /** Messages sent to the dead-letter topic since the consumer was created. */
  deadLettered: number;
}

/** A durable topic as the metrics see it. */
export interface StoreTopicMetrics {
  topic: string;
  mode: "limits" | "work-queue";
  /** Messages retained (for a work queue: from the oldest one a consumer still needs). */
  messages: number;
  /** Bytes of the topic's segment files. */
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  /** Messages appended since the hub opened the topic. */
  appended: number;
  consumers: StoreConsumerMetrics[];
}

interface TopicStore {
  topic: string;
  type: string;
  dir: string;
  log: DurableLog;
  /** Settings set on this topic itself (kept in topic.json). */
  own: TopicConfig;
  config: ResolvedTopicConfig;
  /** Whether a message id was ever stored on this topic (kept in topic.json). */
  usesIds: boolean;
  /** Message ids of the dedup window, rebuilt from the log on first use. */
  dedup: Promise<DedupWindow> | undefined;
  consumers: Map<string, Promise<ConsumerEntry>>;
  /** The consumers loaded so far (for reads that cannot wait, such as the metrics). */
  loaded: Map<string, ConsumerEntry>;
  /** Fetches waiting for something to deliver. */
  waiters: Set<() => void>;
  /**
   * Settles once the last append request that had to wait (for topic.json or the dedup window)
   * has queued its records; requests arriving meanwhile queue theirs after it. Undefined when none waits.
   */
  appendTail: Promise<void> | undefined;
}

/** A fetch request (see myelin_msgs/StoreFetch). */
interface FetchRequest {
  topic: string;
  type: string;
  consumer: string;
  client: string;
  max: number;
  wait_ms: number;
  start_at: string;
  ack_timeout_ms: number;
  max_deliver: number;
  max_in_flight: number;
  raw?: boolean | undefined;
  cancel?: boolean | undefined;
}

/** The reply to a fetch: the messages delivered, in parallel arrays or (raw) as records. */
interface FetchReply {
  seqs: number[];
  timestamps: number[];
  deliveries: number[];
  payloads: Uint8Array[];
  records?: Uint8Array;
}

/** An append request (see myelin_msgs/StoreAppend). */
interface AppendRequest {
  topic: string;
  type: string;
  payloads: Uint8Array[];
  msg_ids: string[];
  packed?: Uint8Array | undefined;
}

/** The reply to an append. */
interface AppendReply {
  first_seq: number;
  count: number;
  seqs: number[];
  duplicates: number;
}

const EMPTY_HEADER = new Uint8Array(0);
const DEAD_LETTER_SUFFIX = "/dead_letter";

/** `count` consecutive seqs from `first`. */
function seqsFrom(first: number, count: number): number[] {
  const seqs = new Array<number>(count);
  for (let i = 0; i < count; i++) seqs[i] = first + i;
  return seqs;
}

/** Most seqs one ack request may cover with its runs. */
const MAX_ACK_RUN_SEQS = 1_000_000;

/**
 * Checks an ack request's runs (`[start, count, ...]`) before any is applied.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the bad run
 */
function checkAckRuns(runs: number[], what: string): number[] {
  if (runs.length % 2 !== 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: ack_runs holds [start, count] pairs, got ${runs.length} numbers`,
    );
  }
  let total = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const start = runs[i]!;
    const count = runs[i + 1]!;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 1 || count < 1) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${what}: run [${start}, ${count}] is not a seq >= 1 and a count >= 1`,
      );
    }
    total += count;
  }
  if (total > MAX_ACK_RUN_SEQS) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: the runs cover ${total} seqs, over ${MAX_ACK_RUN_SEQS} in one request; send them in smaller requests`,
    );
  }
  return runs;
}

/**
 * The payloads of an append's `packed` field: each after its length as a u32 LE, back to back.
 * The payloads are views of `packed`.
 * @throws MyelinError ERR_INVALID_ARGUMENT when a length runs past the end
 */
function unpackPayloads(packed: Uint8Array, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const end = packed.byteLength;
  for (let at = 0; at < end;) {
    if (at + 4 > end) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${what}: packed payloads end inside a length at byte ${at} of ${end}; each payload is a u32 LE length, then its bytes`,
      );
    }
    const n = dv.getUint32(at, true);
    at += 4;
    if (at + n > end) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${what}: packed payload at byte ${at - 4} says ${n} bytes, but only ${end - at} follow`,
      );
    }
    out.push(new Uint8Array(packed.buffer, packed.byteOffset + at, n));
    at += n;
  }
  return out;
}

function parseStartAt(s: string): StartAt {
  if (s === "" || s === "first") return "first";
  if (s === "last") return "last";
  const m = /^(seq|time):(\d+(?:\.\d+)?)$/.exec(s);
  if (m === null) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `start_at '${s}' is not first, last, seq:N or time:MS`);
  }
  return m[1] === "seq" ? { seq: Number(m[2]) } : { timeMs: Number(m[2]) };
}

/**
 * The running store behind {@link StoreService}: `StoreService.start()` loads this module and
 * starts one. Its public members are documented on {@link StoreService}.
 */
export class StoreServer extends StoreService {
  readonly #opts: StoreServiceOptions;
  readonly #node: Node;
  readonly #lock: DirLock;
  readonly #topics = new Map<string, Promise<TopicStore>>();
  /** The topics opened so far (for reads that cannot wait, such as the metrics). */
  readonly #opened = new Map<string, TopicStore>();
  #onSync: ((seconds: number) => void) | undefined;
  #closed = false;

  private constructor(opts: StoreServiceOptions, node: Node, lock: DirLock) {
    super();
    this.#opts = opts;
    this.#node = node;
    this.#lock = lock;
  }

  /** Opens the data directory and serves the store services through the hub. */
  static override async start(opts: StoreServiceOptions): Promise<StoreServer> {
    // Directories made here are private (0700); an existing data directory keeps its mode (the
    // files in it are 0600 whatever it is).
    await mkdir(join(opts.dataDir, "topics"), { recursive: true, mode: 0o700 });
    const lockOpts: DirLockOptions = { what: "the durable-topic store of a myelin hub" };
    if (opts.log !== undefined) lockOpts.log = opts.log;
    const lock = DirLock.acquire(opts.dataDir, lockOpts);
    let node: Node;
    try {
      const nodeOpts: Parameters<typeof createNode>[0] = { name: "_store" };
      if (opts.hub !== undefined) nodeOpts.hub = opts.hub;
      if (opts.runtimeDir !== undefined) nodeOpts.runtimeDir = opts.runtimeDir;
      node = await createNode(nodeOpts);
    } catch (e) {
      lock.release();
      throw e;
    }
    const svc = new StoreServer(opts, node, lock);
    await svc.#loadRuntimeRules();
    await serveProtocol(node, STORE_PROTOCOL, {
      // Anyone may call these (delegateServiceCheck): the caller needs the topic's grant.
      append: (req, ctx) => {
        node.requireGrant(ctx.identity, "publish", req.topic);
        return svc.#watchDisk(`appends to ${req.topic}`, svc.#append(req));
      },
      fetch: (req, ctx) => {
        node.requireGrant(ctx.identity, "subscribe", req.topic);
        return svc.#fetchInOrder(req, ctx.timeoutMs);
      },
      ack: (req, ctx) => {
        node.requireGrant(ctx.identity, "subscribe", req.topic);
        return svc.#watchDisk(`acks of ${req.consumer} on ${req.topic}`, svc.#ack(req));
      },
      info: (req) => svc.#info(req.topic),
      read: (req) => svc.#read(req),
      configure: (req) => svc.#configure(req),
    });
    return svc;
  }

  /** A full-disk episode: since when, what was refused first, how much since. */
  #diskFull: { since: number; first: string; refused: number } | undefined;

  /** Where the store stands: its directory, free space, and a full-disk episode if one is going on. */
  override health(): {
    dataDir: string;
    freeBytes: number | undefined;
    diskFull: { since: number; first: string; refused: number } | undefined;
  } {
    return {
      dataDir: this.#opts.dataDir,
      freeBytes: freeBytes(this.#opts.dataDir),
      diskFull: this.#diskFull && { ...this.#diskFull },
    };
  }

  /**
   * Logs a full disk once per episode (what was refused, free space) and when writes succeed
   * again; file-system errors that are not Myelin errors become ERR_STORAGE.
   */
  async #watchDisk<T>(what: string, work: Promise<T>): Promise<T> {
    try {
      const r = await work;
      if (this.#diskFull !== undefined) {
        const d = this.#diskFull;
        this.#diskFull = undefined;
        this.#opts.log?.(
          `disk has space again on ${this.#opts.dataDir}: writes resumed after ${d.refused} refused in ${Math.round((Date.now() - d.since) / 1000)} s`,
        );
      }
      return r;
    } catch (e) {
      const err =
        e instanceof MyelinError
          ? e
          : new MyelinError("ERR_STORAGE", `${what}: ${(e as Error).message}`, { cause: e });
      if (err.code === "ERR_STORAGE" && isDiskFull(err)) {
        if (this.#diskFull === undefined) {
          this.#diskFull = { since: Date.now(), first: what, refused: 0 };
          const free = freeBytes(this.#opts.dataDir);
          this.#opts.log?.(
            `DISK FULL on ${this.#opts.dataDir} (${free === undefined ? "free space unknown" : `${(free / 1048576).toFixed(1)} MiB free`}): ${what} refused (ERR_STORAGE); publishers get ERR_STORAGE until space is freed`,
          );
        }
        this.#diskFull.refused++;
      }
      throw err;
    }
  }

  /**
   * Calls `fn` after every fsync of every topic's log with how long it took, in seconds (one
   * observer; undefined removes it). For the metrics' fsync histogram.
   */
  override observeFsync(fn: ((seconds: number) => void) | undefined): void {
    this.#onSync = fn;
  }

  /**
   * The topics the store has opened since it started (a publish, a consumer, `topic info`, the
   * uplink), with their consumers, read without waiting: for the metrics. Costs one pass over the
   * open topics and their consumers.
   */
  override metrics(): StoreTopicMetrics[] {
    const out: StoreTopicMetrics[] = [];
    for (const t of this.#opened.values()) {
      const last = t.log.last;
      let first = t.log.first;
      if (t.config.mode === "work-queue") {
        let floor = Infinity;
        for (const c of t.loaded.values()) floor = Math.min(floor, c.state.floor);
        if (floor !== Infinity) first = Math.max(first, floor + 1);
      }
      out.push({
        topic: t.topic,
        mode: t.config.mode,
        messages: Math.max(0, last - first + 1),
        bytes: t.log.bytes,
        firstSeq: first,
        lastSeq: last,
        appended: t.log.appended,
        consumers: [...t.loaded].map(([name, c]) => ({
          name,
          lagMessages: c.state.lag(last),
          pending: c.state.pending,
          deadLettered: c.state.stats().deadLettered,
        })),
      });
    }
    return out;
  }

  /** Closes every log and state file, and leaves the hub. */
  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#node.close();
    for (const p of this.#topics.values()) {
      const t = await p.catch(() => undefined);
      if (t === undefined) continue;
      for (const w of t.waiters) w();
      for (const c of t.consumers.values()) await (await c.catch(() => undefined))?.file.close();
      await t.log.close();
    }
    this.#lock.release();
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #topicDir(topic: string): string {
    return join(this.#opts.dataDir, "topics", encodeURIComponent(topic));
  }

  /** Opens (or creates) a topic; refuses another type than the one it was created with. */
  #open(topic: string, type: string): Promise<TopicStore> {
    let p = this.#topics.get(topic);
    if (p === undefined) {
      p = this.#openNew(topic, type);
      this.#topics.set(topic, p);
      p.then(
        (t) => this.#opened.set(topic, t),
        () => this.#topics.delete(topic),
      );
    }
    return p.then((t) => {
      if (t.type !== type) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `durable topic ${topic} has type ${t.type}; this request used ${type}`,
        );
      }
      return t;
    });
  }

  async #openNew(topic: string, type: string): Promise<TopicStore> {
    const dir = this.#topicDir(topic);
    const metaPath = join(dir, "topic.json");
    let storedType = type;
    let own: TopicConfig = {};
    let usesIds = false;
    const meta = existsSync(metaPath) ? await readTopicMeta(metaPath) : undefined;
    if (meta !== undefined) {
      if (typeof meta["type"] === "string") storedType = meta["type"];
      if (meta["config"] !== undefined) own = parseTopicConfig(meta["config"], `${metaPath}: config`);
      usesIds = meta["usesIds"] === true;
    } else {
      const existed = existsSync(metaPath);
      await mkdir(join(dir, "log"), { recursive: true, mode: 0o700 });
      await mkdir(join(dir, "consumers"), { recursive: true, mode: 0o700 });
      await writeFileAtomic(metaPath, JSON.stringify({ topic, type }) + "\n");
      this.#opts.log?.(
        existed
          ? `durable topic ${topic}: ${metaPath} was empty or unreadable; written again with type ${type}`
          : `durable topic ${topic} created (${type})`,
      );
    }
    const config = this.#resolve(topic, own);
    const logOpts: Parameters<typeof DurableLog.open>[0] = {
      dir: join(dir, "log"),
      fsync: config.fsync,
      batchMs: config.batchMs,
      retention: config.retention,
    };
    if (this.#opts.fs !== undefined) logOpts.fs = this.#opts.fs;
    if (this.#opts.segmentBytes !== undefined) logOpts.segmentBytes = this.#opts.segmentBytes;
    if (this.#opts.log !== undefined) logOpts.log = this.#opts.log;
    logOpts.onSync = (seconds) => this.#onSync?.(seconds);
    const log = await DurableLog.open(logOpts);
    const t: TopicStore = {
      topic,
      type: storedType,
      dir,
      log,
      own,
      config,
      usesIds,
      dedup: undefined,
      consumers: new Map(),
      loaded: new Map(),
      waiters: new Set(),
      appendTail: undefined,
    };
    if (config.mode === "work-queue") await this.#loadAllConsumers(t);
    return t;
  }

  #resolve(topic: string, own: TopicConfig): ResolvedTopicConfig {
    const o = this.#opts;
    const legacy: TopicConfig = {};
    if (o.fsync !== undefined) legacy.fsync = o.fsync;
    if (o.batchMs !== undefined) legacy.batchMs = o.batchMs;
    if (o.retention !== undefined) legacy.retention = o.retention;
    // Patterns set at runtime (e.g. by a launch spec) come before the store config's.
    const rules = [...this.#runtimeRules, ...(o.topics ?? [])];
    return resolveTopicConfig(topic, mergeTopicConfig(o.defaults, legacy), rules, own);
  }

  /** Pattern settings set through `/_store/configure` (a topic with `*`), kept in `<dataDir>/rules.json`. */
  #runtimeRules: TopicConfigRule[] = [];

  async #loadRuntimeRules(): Promise<void> {
    const path = join(this.#opts.dataDir, "rules.json");
    if (!existsSync(path)) return;
    const raw = JSON.parse(await readFile(path, "utf8")) as { pattern: string; config: unknown }[];
    this.#runtimeRules = raw.map((r) => ({
      pattern: r.pattern,
      config: parseTopicConfig(r.config, `${path}: ${r.pattern}`),
    }));
  }

  /** Sets the settings of a topic pattern (replacing an earlier one of the same pattern) and applies them to open topics. */
  async #configurePattern(pattern: string, change: TopicConfig): Promise<{ config_json: string }> {
    if (!pattern.startsWith("/")) {
      throw new MyelinError("ERR_BAD_CONFIG", `topic pattern ${pattern}: a topic pattern starts with '/'`);
    }
    const rest = this.#runtimeRules.filter((r) => r.pattern !== pattern);
    this.#runtimeRules = [{ pattern, config: change }, ...rest];
    const path = join(this.#opts.dataDir, "rules.json");
    await writeFileAtomic(path, JSON.stringify(this.#runtimeRules) + "\n");
    for (const p of this.#topics.values()) {
      const t = await p.catch(() => undefined);
      if (t === undefined || !topicMatches(pattern, t.topic)) continue;
      await this.#apply(t, t.own);
    }
    const effective = this.#resolve(pattern, {});
    this.#opts.log?.(`durable topics ${pattern} settings: ${JSON.stringify(effective)}`);
    return { config_json: JSON.stringify(effective) };
  }

  /** Makes `own` the topic's own settings and applies the result to its log. */
  async #apply(t: TopicStore, own: TopicConfig): Promise<ResolvedTopicConfig> {
    const before = t.config;
    const config = this.#resolve(t.topic, own);
    t.log.configure({ fsync: config.fsync, batchMs: config.batchMs, retention: config.retention });
    t.own = own;
    t.config = config;
    if (config.dedupWindowMs !== before.dedupWindowMs) t.dedup = undefined;
    if (config.mode === "work-queue") {
      await this.#loadAllConsumers(t);
      await this.#trimWorkQueue(t);
    }
    return config;
  }

  /** Writes topic.json again (type, own settings, whether ids are used), atomically. */
  async #saveMeta(t: TopicStore, usesIds = t.usesIds): Promise<void> {
    const path = join(t.dir, "topic.json");
    const meta: Record<string, unknown> = { topic: t.topic, type: t.type };
    if (Object.keys(t.own).length > 0) meta["config"] = t.own;
    if (usesIds) meta["usesIds"] = true;
    await writeFileAtomic(path, JSON.stringify(meta) + "\n");
  }

  /** Work queues: every consumer of the topic counts for what may be removed, loaded or not. */
  async #loadAllConsumers(t: TopicStore): Promise<void> {
    const names = (await readdir(join(t.dir, "consumers")).catch(() => [] as string[]))
      .filter((n) => n.endsWith(".state"))
      .map((n) => n.slice(0, -".state".length));
    for (const name of names) {
      await this.#consumer(t, name, {
        startAt: "first",
        ackTimeoutMs: 0,
        maxDeliver: 0,
        maxInFlight: 0,
      }).catch(() => undefined);
    }
  }

  /**
   * Work queues: the first seq some consumer still needs (every seq below it was acknowledged by
   * every consumer); the log's first when the topic has no consumer yet.
   */
  async #workQueueFirst(t: TopicStore, except?: string): Promise<number> {
    let floor = Infinity;
    for (const [name, p] of t.consumers) {
      if (name === except) continue;
      const c = await p.catch(() => undefined);
      if (c !== undefined) floor = Math.min(floor, c.state.floor);
    }
    return floor === Infinity ? t.log.first : Math.max(t.log.first, floor + 1);
  }

  /** Work queues: deletes the segments every consumer is done with. */
  async #trimWorkQueue(t: TopicStore): Promise<void> {
    if (t.config.mode !== "work-queue") return;
    const first = await this.#workQueueFirst(t);
    const removed = await t.log.deleteBefore(first);
    if (removed > 0) this.#opts.log?.(`work queue ${t.topic}: ${removed} acknowledged segment(s) removed`);
  }

  /** The dedup window of a topic, rebuilt from the records stored within it on first use. */
  #dedupOf(t: TopicStore): Promise<DedupWindow> {
    t.dedup ??= (async () => {
      const w = new DedupWindow(t.config.dedupWindowMs);
      if (t.usesIds && t.config.dedupWindowMs > 0) {
        const since = Date.now() - t.config.dedupWindowMs;
        for await (const r of t.log.records({ timeMs: since })) {
          const id = decodeIdHeader(r.header);
          if (id !== undefined) w.set(id, r.seq, r.ts);
        }
      }
      return w;
    })();
    t.dedup.catch(() => (t.dedup = undefined));
    return t.dedup;
  }

  #wake(t: TopicStore): void {
    const ws = [...t.waiters];
    t.waiters.clear();
    for (const w of ws) w();
  }

  async #append(req: AppendRequest): Promise<AppendReply> {
    if (req.topic.endsWith(DEAD_LETTER_SUFFIX)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${req.topic} is a dead-letter topic: only the store writes to it`,
      );
    }
    const t = await this.#open(req.topic, req.type);
    if (req.packed !== undefined) {
      if (req.payloads.length > 0) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `append to ${req.topic}: give the payloads either in payloads or in packed, not both`,
        );
      }
      req = { ...req, payloads: unpackPayloads(req.packed, `append to ${req.topic}`), packed: undefined };
    }
    if (req.payloads.length === 0) return { first_seq: t.log.last + 1, count: 0, seqs: [], duplicates: 0 };
    const ids = req.msg_ids;
    if (ids.length !== 0 && ids.length !== req.payloads.length) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `append to ${req.topic}: ${ids.length} message ids for ${req.payloads.length} payloads`,
      );
    }
    const withIds = ids.some((id) => id !== "");
    const dedup = withIds && t.config.dedupWindowMs > 0;
    // Requests reach the log in the order they arrived. One that must first record that the topic
    // uses message ids, or load its dedup window, holds back every request after it until its
    // records are queued in the log (queued, not yet stored: they still share one group commit).
    if (!dedup && t.appendTail === undefined) return this.#appendQueued(t, req, undefined);
    const queued = (t.appendTail ?? Promise.resolve()).then(async () => {
      let window: DedupWindow | undefined;
      if (dedup) {
        if (!t.usesIds) {
          await this.#saveMeta(t, true);
          t.usesIds = true;
        }
        window = await this.#dedupOf(t);
      }
      // Wrapped: the tail moves on once the records are queued, not once they are stored.
      return { stored: this.#appendQueued(t, req, window) };
    });
    const tail = queued.then(
      () => undefined,
      () => undefined,
    );
    t.appendTail = tail;
    void tail.then(() => {
      if (t.appendTail === tail) t.appendTail = undefined;
    });
    return (await queued).stored;
  }

  /**
   * Queues a request's records in the topic's log at once (synchronously, in order) and resolves
   * with the reply once they are stored. `dedup`: the topic's window, when ids are checked.
   */
  async #appendQueued(
    t: TopicStore,
    req: AppendRequest,
    dedup: DedupWindow | undefined,
  ): Promise<AppendReply> {
    const ids = req.msg_ids;
    if (dedup === undefined) {
      // One batch in the log: one promise, consecutive seqs, the same group commit.
      const withIds = ids.some((id) => id !== "");
      const headers = withIds ? ids.map((id) => (id === "" ? EMPTY_HEADER : encodeIdHeader(id))) : [];
      const r = await t.log.appendBatch(headers, req.payloads);
      this.#wake(t);
      // Consecutive seqs: first_seq and count say it all (seqs are listed only with message ids).
      return {
        first_seq: r.firstSeq,
        count: r.count,
        seqs: withIds ? seqsFrom(r.firstSeq, r.count) : [],
        duplicates: 0,
      };
    }
    const now = Date.now();
    let duplicates = 0;
    const pending: Promise<number>[] = req.payloads.map((p, i) => {
      const id = ids[i]!;
      if (id === "") return t.log.append(EMPTY_HEADER, p).then((r) => r.seq);
      const known = dedup.get(id, now);
      if (known !== undefined) {
        duplicates++;
        return Promise.resolve(known);
      }
      const seq = t.log.append(encodeIdHeader(id), p).then((r) => r.seq);
      dedup.set(id, seq, now);
      seq.then(
        (n) => dedup.set(id, n, now),
        () => dedup.delete(id),
      );
      return seq;
    });
    const seqs = await Promise.all(pending);
    this.#wake(t);
    return { first_seq: Math.min(...seqs), count: seqs.length - duplicates, seqs, duplicates };
  }

  async #configure(req: {
    topic: string;
    type: string;
    config_json: string;
    rule: boolean;
  }): Promise<{ config_json: string }> {
    let raw: unknown;
    try {
      raw = JSON.parse(req.config_json);
    } catch {
      throw new MyelinError("ERR_BAD_CONFIG", `settings of ${req.topic} are not JSON: ${req.config_json}`);
    }
    const change = parseTopicConfig(raw, `settings of ${req.topic}`);
    if (req.rule || req.topic.includes("*")) return this.#configurePattern(req.topic, change);
    const t = req.type === "" ? await this.#existing(req.topic) : await this.#open(req.topic, req.type);
    if (t === undefined) {
      throw new MyelinError(
        "ERR_UNKNOWN_TOPIC",
        `no durable topic ${req.topic}; publish to it first, or give its type to create it`,
      );
    }
    const config = await this.#apply(t, mergeTopicConfig(t.own, change));
    await this.#saveMeta(t);
    this.#opts.log?.(`durable topic ${t.topic} settings: ${JSON.stringify(config)}`);
    return { config_json: JSON.stringify(config) };
  }

  #consumer(
    t: TopicStore,
    name: string,
    opts: { startAt: string; ackTimeoutMs: number; maxDeliver: number; maxInFlight: number },
  ): Promise<ConsumerEntry> {
    let p = t.consumers.get(name);
    if (p === undefined) {
      p = (async () => {
        if (!/^[A-Za-z0-9_.-]+$/.test(name)) {
          throw new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `consumer name '${name}': use letters, digits, '_', '-', '.'`,
          );
        }
        const file = new ConsumerStateFile({ path: join(t.dir, "consumers", `${name}.state`) });
        const loaded = await file.load();
        for (const problem of loaded.problems)
          this.#opts.log?.(`consumer ${name} of ${t.topic}: ${problem.message}`);
        const copts = consumerOptionsOf(opts);
        const state =
          loaded.snapshot !== undefined
            ? new ConsumerState(copts, { snapshot: loaded.snapshot })
            : new ConsumerState(copts, {
                startSeq:
                  t.config.mode === "work-queue" && (opts.startAt === "" || opts.startAt === "first")
                    ? await this.#workQueueFirst(t, name)
                    : await resolveStartSeq(parseStartAt(opts.startAt), t.log),
              });
        if (loaded.snapshot === undefined) {
          // Its start position is kept from the start: after a restart it resumes there (a
          // consumer that starts at new messages does not skip those published meanwhile), and
          // its acks of messages delivered before the restart are accepted.
          await file.save(() => state.snapshot());
          this.#opts.log?.(`consumer ${name} of ${t.topic} created`);
        }
        return { state, file };
      })();
      t.consumers.set(name, p);
      p.then(
        (c) => t.loaded.set(name, c),
        () => t.consumers.delete(name),
      );
    }
    return p;
  }

  /**
   * A client's fetches (its credit grants) are served one after another in the order they came, so
   * their answers leave in that order; a fetch with a later one queued behind it does not wait for
   * messages (it answers with what there is, maybe nothing), and a fetch waiting for messages is
   * answered when a later one comes.
   */
  #fetchInOrder(req: FetchRequest, callTimeoutMs: number): Promise<FetchReply> {
    const key = `${req.topic}\0${req.consumer}\0${req.client}`;
    let q = this.#clientFetches.get(key);
    if (q === undefined) {
      q = { tail: Promise.resolve(), queued: 0, wake: undefined };
      this.#clientFetches.set(key, q);
    }
    const queue = q;
    queue.queued++;
    queue.wake?.();
    const arrived = Date.now();
    const run = queue.tail.then(() => this.#fetch(req, callTimeoutMs, arrived, queue));
    queue.tail = run.then(
      () => undefined,
      () => undefined,
    );
    void queue.tail.then(() => {
      queue.queued--;
      if (queue.queued === 0 && this.#clientFetches.get(key) === queue) this.#clientFetches.delete(key);
    });
    return run;
  }

  /** Fetches of each client (topic, consumer, client) being served or waiting their turn. */
  readonly #clientFetches = new Map<
    string,
    { tail: Promise<void>; queued: number; wake: (() => void) | undefined }
  >();

  async #fetch(
    req: FetchRequest,
    callTimeoutMs: number,
    arrived: number,
    queue: { queued: number; wake: (() => void) | undefined },
  ): Promise<FetchReply> {
    // Withdrawn grants: the one waiting before this was woken and answered (a later one was queued).
    if (req.cancel === true) return { seqs: [], timestamps: [], deliveries: [], payloads: [] };
    const t = await this.#open(req.topic, req.type);
    const asked = {
      startAt: req.start_at,
      ackTimeoutMs: req.ack_timeout_ms,
      maxDeliver: req.max_deliver,
      maxInFlight: req.max_in_flight,
    };
    const c = await this.#consumer(t, req.consumer, asked);
    // A consumer loaded before this fetch (re-attached by an ack, or as a work-queue member) takes
    // the options its client asks for.
    const want = consumerOptionsOf(asked);
    const have = c.state.options;
    if (
      want.ackTimeoutMs !== have.ackTimeoutMs ||
      want.maxDeliver !== have.maxDeliver ||
      want.maxInFlight !== have.maxInFlight
    ) {
      c.state.configure(want);
    }
    // Answer before the caller gives up, leaving it time to receive the reply.
    const until = arrived + Math.max(0, Math.min(req.wait_ms, callTimeoutMs - 200));
    for (;;) {
      if (t.log.first > 1) c.state.skipBelow(t.log.first);
      const batch = c.state.nextToDeliver(Date.now(), t.log.last, Math.max(1, req.max), req.client);
      if (batch.deadLetters.length > 0) await this.#deadLetter(t, c, batch.deadLetters);
      if (batch.deliveries.length > 0 && req.raw === true) {
        const r = await this.#readRaw(t, c, batch.deliveries);
        if (r.deliveries.length > 0) return r;
      } else if (batch.deliveries.length > 0) {
        const seqs: number[] = [];
        const timestamps: number[] = [];
        const deliveries: number[] = [];
        const payloads: Uint8Array[] = [];
        const recs = await this.#readSeqs(
          t,
          batch.deliveries.map((d) => d.seq),
        );
        for (const d of batch.deliveries) {
          const rec = recs.get(d.seq);
          if (rec === undefined) {
            c.state.ack(d.seq); // removed by retention meanwhile: nothing to deliver
            continue;
          }
          seqs.push(rec.seq);
          timestamps.push(rec.ts);
          deliveries.push(d.deliveries);
          payloads.push(rec.payload);
        }
        if (seqs.length > 0) return { seqs, timestamps, deliveries, payloads };
      }
      const now = Date.now();
      // A later fetch of this client is queued: it waits, this one answers (empty) now.
      if (now >= until || this.#closed || queue.queued > 1)
        return { seqs: [], timestamps: [], deliveries: [], payloads: [] };
      const next = c.state.nextDeadline();
      const waitMs = Math.max(1, Math.min(until, next ?? until) - now);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done(): void {
          clearTimeout(timer);
          t.waiters.delete(done);
          if (queue.wake === done) queue.wake = undefined;
          resolve();
        }
        t.waiters.add(done);
        queue.wake = done;
      });
    }
  }

  /**
   * The reply to a raw fetch: the records of `deliveries` as the log stores them, one log read
   * per run of consecutive seqs (new deliveries are one run). A seq retention removed meanwhile
   * has nothing to deliver: it is acknowledged.
   */
  async #readRaw(
    t: TopicStore,
    c: ConsumerEntry,
    deliveries: readonly { seq: number; deliveries: number }[],
  ): Promise<FetchReply> {
    const n = deliveries.length;
    let runs: { seq: number; deliveries: number }[] = deliveries as { seq: number; deliveries: number }[];
    for (let i = 1; i < n; i++) {
      if (deliveries[i]!.seq !== deliveries[i - 1]!.seq + 1) {
        runs = [...deliveries].sort((a, b) => a.seq - b.seq);
        break;
      }
    }
    const parts: Uint8Array[] = [];
    const counts: number[] = [];
    for (let i = 0; i < n;) {
      let j = i + 1;
      while (j < n && runs[j]!.seq === runs[j - 1]!.seq + 1) j++;
      const from = runs[i]!.seq;
      const r = await t.log.readRaw(from, j - i);
      const end = r.firstSeq + r.count;
      for (let k = i; k < j; k++) {
        const seq = runs[k]!.seq;
        if (seq >= r.firstSeq && seq < end) counts.push(runs[k]!.deliveries);
        else c.state.ack(seq); // removed by retention meanwhile: nothing to deliver
      }
      if (r.count > 0) parts.push(r.bytes);
      i = j;
    }
    const records = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return { seqs: [], timestamps: [], deliveries: counts, payloads: [], records };
  }

  /** Reads the given sequence numbers, one log read per run of consecutive ones. */
  async #readSeqs(t: TopicStore, wanted: number[]): Promise<Map<number, LogRecord>> {
    const out = new Map<number, LogRecord>();
    const n = wanted.length;
    if (n > 0 && wanted[n - 1]! - wanted[0]! === n - 1) {
      // New deliveries: one run of consecutive seqs, already in order.
      let ascending = true;
      for (let i = 1; i < n && ascending; i++) ascending = wanted[i] === wanted[i - 1]! + 1;
      if (ascending) {
        for (const rec of await t.log.read(wanted[0]!, n)) out.set(rec.seq, rec);
        return out;
      }
    }
    const sorted = [...wanted].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length;) {
      let j = i + 1;
      while (j < sorted.length && sorted[j] === sorted[j - 1]! + 1) j++;
      for (const rec of await t.log.read(sorted[i]!, j - i)) out.set(rec.seq, rec);
      i = j;
    }
    return out;
  }

  async #deadLetter(
    t: TopicStore,
    c: ConsumerEntry,
    dead: { seq: number; deliveries: number; reason: string }[],
  ): Promise<void> {
    const dlq = await this.#open(t.topic + DEAD_LETTER_SUFFIX, t.type);
    for (const d of dead) {
      const [rec] = await t.log.read(d.seq, 1);
      if (rec === undefined || rec.seq !== d.seq) continue;
      const header = new TextEncoder().encode(
        JSON.stringify({ topic: t.topic, seq: d.seq, deliveries: d.deliveries, reason: d.reason }),
      );
      // On disk in the dead-letter topic before the consumer's state says it is handled.
      await dlq.log.append(header, rec.payload);
      this.#opts.log?.(`dead letter: ${t.topic} #${d.seq} after ${d.deliveries} deliveries (${d.reason})`);
    }
    this.#wake(dlq);
    await c.file.save(() => c.state.snapshot());
  }

  async #ack(req: {
    topic: string;
    consumer: string;
    acks: number[];
    ack_runs?: number[];
    nacks: number[];
    nack_delay_ms: number;
  }): Promise<{ acked: number }> {
    const t = await this.#existing(req.topic);
    if (t === undefined) {
      throw new MyelinError(
        "ERR_UNKNOWN_TOPIC",
        `no durable topic ${req.topic}; \`myelin topic list\` shows the topics`,
      );
    }
    // After a restart of the store, a consumer that is still running acks what it got before:
    // its saved state is loaded again (re-attached), and those acks count.
    let c = await t.consumers.get(req.consumer);
    if (c === undefined && existsSync(join(t.dir, "consumers", `${req.consumer}.state`))) {
      c = await this.#consumer(t, req.consumer, {
        startAt: "",
        ackTimeoutMs: 0,
        maxDeliver: 0,
        maxInFlight: 0,
      });
    }
    if (c === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `durable topic ${req.topic} has no consumer ${req.consumer}; a consumer starts with a fetch (DurableConsumer), then acknowledges what it got`,
      );
    }
    const runs = checkAckRuns(req.ack_runs ?? [], `acks of ${req.consumer} on ${req.topic}`);
    let acked = 0;
    const last = t.log.last;
    for (const seq of req.acks) if (c.state.ackUndelivered(seq, last) === "acked") acked++;
    for (let i = 0; i < runs.length; i += 2) {
      // Seqs above the log were never delivered: the run stops there.
      const end = Math.min(runs[i]! + runs[i + 1]! - 1, last);
      for (let seq = runs[i]!; seq <= end; seq++) if (c.state.ackUndelivered(seq, last) === "acked") acked++;
    }
    const now = Date.now();
    for (const seq of req.nacks) c.state.nack(seq, req.nack_delay_ms, now);
    // Room for more deliveries now; the reply waits until the acks are durable (a restarted
    // consumer resumes after them).
    this.#wake(t);
    await c.file.save(() => c.state.snapshot());
    if (t.config.mode === "work-queue" && acked > 0) await this.#trimWorkQueue(t);
    return { acked };
  }

  async #read(req: {
    topic: string;
    from_seq: number;
    from_time_ms: number;
    max: number;
  }): Promise<{ type: string; seqs: number[]; timestamps: number[]; payloads: Uint8Array[] }> {
    const t = await this.#existing(req.topic);
    if (t === undefined) {
      throw new MyelinError(
        "ERR_UNKNOWN_TOPIC",
        `no durable topic ${req.topic}; \`myelin topic list\` shows the topics`,
      );
    }
    const from = req.from_time_ms > 0 ? await t.log.seqAtTime(req.from_time_ms) : Math.max(1, req.from_seq);
    const recs = await t.log.read(from, Math.max(1, Math.min(req.max, 10000)));
    return {
      type: t.type,
      seqs: recs.map((r) => r.seq),
      timestamps: recs.map((r) => r.ts),
      payloads: recs.map((r) => r.payload),
    };
  }

  /** An open or on-disk topic, opened with its stored type; undefined if it never existed. */
  async #existing(topic: string): Promise<TopicStore | undefined> {
    const p = this.#topics.get(topic);
    if (p !== undefined) return p;
    const metaPath = join(this.#topicDir(topic), "topic.json");
    if (!existsSync(metaPath)) return undefined;
    const meta = JSON.parse(await readFile(metaPath, "utf8")) as { type: string };
    return this.#open(topic, meta.type);
  }

  async #info(topic: string): Promise<{
    exists: boolean;
    type: string;
    first_seq: number;
    last_seq: number;
    count: number;
    bytes: number;
    consumers: string[];
    lags: number[];
    pending: number[];
    dead_lettered: number[];
    config_json: string;
  }> {
    const empty = {
      exists: false,
      type: "",
      first_seq: 0,
      last_seq: 0,
      count: 0,
      bytes: 0,
      consumers: [],
      lags: [],
      pending: [],
      dead_lettered: [],
      config_json: "",
    };
    const t = await this.#existing(topic);
    if (t === undefined) return empty;
    const names = [...t.consumers.keys()].sort();
    const entries = await Promise.all(names.map((n) => t.consumers.get(n)!));
    // A work queue's first message is the oldest one some consumer still needs.
    const first = t.config.mode === "work-queue" ? await this.#workQueueFirst(t) : t.log.first;
    return {
      exists: true,
      type: t.type,
      first_seq: first,
      last_seq: t.log.last,
      count: t.log.last - first + 1,
      bytes: t.log.bytes,
      consumers: names,
      lags: entries.map((e) => e.state.lag(t.log.last)),
      pending: entries.map((e) => e.state.pending),
      dead_lettered: entries.map((e) => e.state.stats().deadLettered),
      config_json: JSON.stringify(t.config),
    };
  }
}
