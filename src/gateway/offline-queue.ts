/**
 * `OfflineQueue`: the on-disk, bounded, crash-safe queue a bridge keeps for messages it must not
 * lose (QoS 1/2 towards MQTT, JetStream publishes, AMQP publishes with confirms). A message is on
 * disk (under the fsync policy) before `append` resolves, and it stays until the broker
 * acknowledged it (`ack`): a bridge that restarts, or a hub killed with `kill -9`, sends what was
 * not acknowledged again (at-least-once: the broker may see a message twice, never zero times).
 *
 * Layout: the queue directory holds generations `g<N>/`, each a DurableLog (segment files with
 * CRCs; a torn tail is cut off on open) plus a small `floor` file: every record of the generation
 * up to that sequence number is acknowledged. New messages go to the newest generation; once it
 * holds more than `generationBytes` a new one starts, and a generation whose messages are all
 * acknowledged is deleted (renamed away first, so a crash halfway never resurrects part of it).
 * The floor is written without fsync: after a power cut it may be older than it was, and
 * messages after it are sent again.
 *
 * Bounded: at most `maxMessages` messages and `maxBytes` payload bytes wait (acknowledged ones do
 * not count). A full queue refuses an append with ERR_QUEUE_FULL and counts it; callers that would
 * rather wait use `waitForSpace()` (the bridges' default: backpressure on the Myelin side).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import { DurableLog, type FsyncPolicy } from "../store/log.js";
import type { StoreFs } from "../store/fs.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { DirLock, type DirLockOptions } from "../store/dir-lock.js";

/** Options of `OfflineQueue.open`. */
export interface OfflineQueueOptions {
  /** Directory of the queue (created if missing). One queue per directory. */
  dir: string;
  /** Most messages waiting (appended, not yet acknowledged); default 100000. */
  maxMessages?: number;
  /** Most payload bytes waiting (appended, not yet acknowledged); default 64 MiB. */
  maxBytes?: number;
  /** When an append resolves: `always` (default, fdatasync, shared by concurrent appends), `batch`, `never`. */
  fsync?: FsyncPolicy;
  /** A new generation file starts once the newest holds this many bytes; default 4 MiB. */
  generationBytes?: number;
  /** File operations of the logs (default: node:fs); tests inject faults through it. */
  fs?: StoreFs;
  /** Recovery events: a stale lock taken over, a damaged log cut. */
  log?: (line: string) => void;
}

/** Defaults of OfflineQueueOptions. */
export const OFFLINE_QUEUE_DEFAULTS = {
  maxMessages: 100_000,
  maxBytes: 64 * 1024 * 1024,
  fsync: "always" as FsyncPolicy,
  generationBytes: 4 * 1024 * 1024,
} as const;

/** A message taken from the queue to be sent; hand it back with `ack` or `release`. */
export interface QueuedMessage {
  /** The external topic, subject or routing key it goes to. */
  readonly topic: string;
  /** The QoS it was queued with (0, 1 or 2; backends map it to their own acknowledgement). */
  readonly qos: 0 | 1 | 2;
  /** The bytes to send. */
  readonly payload: Uint8Array;
  /**
   * A name unique to this message in this queue, stable across reopens: a broker that deduplicates
   * (JetStream's Nats-Msg-Id, an AMQP message id) recognises a message sent twice.
   */
  readonly id: string;
  /** Times it was taken for sending, this one included (1 for the first attempt since open). */
  readonly attempts: number;
  /** @internal */
  readonly gen: number;
  /** @internal */
  readonly seq: number;
}

/** Counters of a queue. */
export interface OfflineQueueStats {
  /** Messages waiting: appended and not yet acknowledged (in flight included). */
  messages: number;
  /** Payload bytes waiting. */
  bytes: number;
  /** Messages taken for sending and neither acknowledged nor released. */
  inFlight: number;
  /** Appends accepted since open. */
  enqueued: number;
  /** Acknowledgements since open. */
  acked: number;
  /** Appends refused because the queue was full (ERR_QUEUE_FULL), since open. */
  refused: number;
  /** Messages found waiting on disk when the queue was opened. */
  recovered: number;
  /** Generation directories on disk. */
  generations: number;
}

interface Gen {
  n: number;
  dir: string;
  log: DurableLog;
  /** Every seq <= floor is acknowledged. */
  floor: number;
  /** Acknowledged seqs above the floor. */
  acked: Set<number>;
  /** Payload bytes of unacknowledged seqs (seq → bytes). */
  sizes: Map<number, number>;
  /** Bumped on every acknowledgement; `savedVersion` is the one last written to disk. */
  version: number;
  savedVersion: number;
  saving: Promise<void> | undefined;
  saveAgain: boolean;
  removing: boolean;
  /** Appends to this generation not yet stored. */
  appending: number;
}

const GEN_NAME = /^g(\d{10})$/;
const enc = new TextEncoder();
const dec = new TextDecoder();

function genName(n: number): string {
  return `g${String(n).padStart(10, "0")}`;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `OfflineQueue: ${name} must be an integer >= 1, got ${v}`);
  }
}

function encodeHeader(topic: string, qos: 0 | 1 | 2): Uint8Array {
  return enc.encode(JSON.stringify({ t: topic, q: qos }));
}

function decodeHeader(h: Uint8Array): { topic: string; qos: 0 | 1 | 2 } {
  try {
    const o = JSON.parse(dec.decode(h)) as { t?: unknown; q?: unknown };
    if (typeof o.t === "string" && (o.q === 0 || o.q === 1 || o.q === 2)) return { topic: o.t, qos: o.q };
  } catch {
    // fall through
  }
  throw new MyelinError("ERR_STORAGE", "offline queue record has a damaged header (its CRC was good)");
}

/**
 * A bounded on-disk queue of outgoing messages: append (durable when it resolves), take in order,
 * ack once the broker confirmed, release to send again. Create with `OfflineQueue.open`.
 */
export class OfflineQueue {
  readonly #dir: string;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #fsync: FsyncPolicy;
  readonly #genBytes: number;
  readonly #fs: StoreFs | undefined;
  #gens: Gen[] = [];
  #queueId = "";
  #rolling: Promise<void> | undefined;
  /** Stored, unacknowledged messages and their payload bytes. */
  #messages = 0;
  #bytes = 0;
  /** Reserved by appends in progress (not yet stored). */
  #reservedMessages = 0;
  #reservedBytes = 0;
  /** Next position `take` looks at. */
  #cursorGen = 0;
  #cursorSeq = 1;
  readonly #inFlight = new Map<string, number>();
  readonly #attempts = new Map<string, number>();
  #enqueued = 0;
  #acked = 0;
  #refused = 0;
  #recovered = 0;
  #readyWaiters: (() => void)[] = [];
  #spaceWaiters: (() => void)[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  #lock: DirLock | undefined;
  readonly #log: ((line: string) => void) | undefined;

  private constructor(opts: OfflineQueueOptions) {
    this.#log = opts.log;
    this.#dir = opts.dir;
    this.#maxMessages = opts.maxMessages ?? OFFLINE_QUEUE_DEFAULTS.maxMessages;
    this.#maxBytes = opts.maxBytes ?? OFFLINE_QUEUE_DEFAULTS.maxBytes;
    this.#fsync = opts.fsync ?? OFFLINE_QUEUE_DEFAULTS.fsync;
    this.#genBytes = opts.generationBytes ?? OFFLINE_QUEUE_DEFAULTS.generationBytes;
    this.#fs = opts.fs;
  }

  /**
   * Opens (or creates) the queue in `opts.dir` and recovers what waits in it: every generation's
   * log is recovered (torn tails cut off), acknowledged generations are deleted, and the
   * unacknowledged messages are counted and will be taken first, in the order they were appended.
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad options; ERR_STORAGE if the directory or a
   * log cannot be used.
   */
  static async open(opts: OfflineQueueOptions): Promise<OfflineQueue> {
    if (typeof opts.dir !== "string" || opts.dir === "") {
      throw new MyelinError("ERR_INVALID_ARGUMENT", "OfflineQueue.open: dir must be a non-empty path");
    }
    positiveInt("maxMessages", opts.maxMessages);
    positiveInt("maxBytes", opts.maxBytes);
    positiveInt("generationBytes", opts.generationBytes);
    const q = new OfflineQueue(opts);
    try {
      await q.#recover();
    } catch (e) {
      await q.close().catch(() => undefined);
      throw e;
    }
    return q;
  }

  async #recover(): Promise<void> {
    try {
      await mkdir(this.#dir, { recursive: true });
    } catch (e) {
      throw new MyelinError(
        "ERR_STORAGE",
        `cannot create the offline queue directory ${this.#dir}: ${String(e)}`,
        {
          cause: e,
        },
      );
    }
    const lockOpts: DirLockOptions = { what: `an offline queue (${this.#dir})` };
    if (this.#log !== undefined) lockOpts.log = this.#log;
    this.#lock = DirLock.acquire(this.#dir, lockOpts);
    try {
      this.#queueId = (await readFile(join(this.#dir, "id"), "utf8")).trim();
    } catch {
      // First open (or the id was lost: a new one only weakens deduplication by the broker).
    }
    if (!/^[0-9a-f]{16}$/.test(this.#queueId)) {
      this.#queueId = randomBytes(8).toString("hex");
      await writeFileAtomic(join(this.#dir, "id"), this.#queueId + "\n");
    }
    const names = await readdir(this.#dir);
    // Leftovers of a deletion a crash interrupted.
    for (const n of names) {
      if (n.endsWith(".deleted")) await rm(join(this.#dir, n), { recursive: true, force: true });
    }
    const gens = names
      .map((n) => GEN_NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const n of gens) this.#gens.push(await this.#openGen(n));
    // Delete fully acknowledged generations (all but the newest), and count what waits.
    for (const g of [...this.#gens]) {
      if (g !== this.#newest() && g.floor >= g.log.last) {
        await this.#removeGen(g);
        continue;
      }
      const from = Math.max(g.floor + 1, g.log.first);
      for await (const r of g.log.records({ seq: from })) {
        if (g.acked.has(r.seq)) continue;
        g.sizes.set(r.seq, r.payload.length);
        this.#messages++;
        this.#bytes += r.payload.length;
      }
    }
    this.#recovered = this.#messages;
    if (this.#gens.length === 0) this.#gens.push(await this.#openGen(1));
    this.#cursorGen = this.#gens[0]!.n;
    this.#cursorSeq = this.#gens[0]!.floor + 1;
  }

  #newest(): Gen {
    return this.#gens[this.#gens.length - 1]!;
  }

  async #openGen(n: number): Promise<Gen> {
    const dir = join(this.#dir, genName(n));
    const logOpts: Parameters<typeof DurableLog.open>[0] = {
      dir: join(dir, "log"),
      fsync: this.#fsync,
      segmentBytes: Math.max(this.#genBytes * 2, 64 * 1024),
    };
    if (this.#fs !== undefined) logOpts.fs = this.#fs;
    if (this.#log !== undefined) logOpts.log = this.#log;
    const log = await DurableLog.open(logOpts);
    let floor = 0;
    const acked = new Set<number>();
    try {
      const o = JSON.parse(await readFile(join(dir, "floor"), "utf8")) as {
        floor?: unknown;
        acked?: unknown;
      };
      if (typeof o.floor === "number" && Number.isSafeInteger(o.floor) && o.floor >= 0) {
        floor = o.floor;
        if (Array.isArray(o.acked)) {
          for (const x of o.acked) if (typeof x === "number" && x > floor && x <= log.last) acked.add(x);
        }
      }
    } catch {
      // Missing or damaged (a power cut while it was replaced): send everything again.
    }
    floor = Math.min(floor, log.last);
    return {
      n,
      dir,
      log,
      floor,
      acked,
      sizes: new Map(),
      version: 0,
      savedVersion: 0,
      saving: undefined,
      saveAgain: false,
      removing: false,
      appending: 0,
    };
  }

  async #removeGen(g: Gen): Promise<void> {
    g.removing = true;
    this.#gens = this.#gens.filter((x) => x !== g);
    await g.saving?.catch(() => undefined);
    await g.log.close();
    const gone = `${g.dir}.${randomBytes(4).toString("hex")}.deleted`;
    try {
      await rename(g.dir, gone);
      await rm(gone, { recursive: true, force: true });
    } catch {
      // Retried on the next open (a leftover generation whose floor covers everything).
    }
  }

  /** Counters; see OfflineQueueStats. */
  stats(): OfflineQueueStats {
    return {
      messages: this.#messages,
      bytes: this.#bytes,
      inFlight: this.#inFlight.size,
      enqueued: this.#enqueued,
      acked: this.#acked,
      refused: this.#refused,
      recovered: this.#recovered,
      generations: this.#gens.length,
    };
  }

  /** The directory of the queue. */
  get dir(): string {
    return this.#dir;
  }

  /** True when an append of `bytes` payload bytes would be refused now. */
  isFull(bytes = 0): boolean {
    const messages = this.#messages + this.#reservedMessages;
    const total = this.#bytes + this.#reservedBytes;
    return messages + 1 > this.#maxMessages || (messages > 0 && total + bytes > this.#maxBytes);
  }

  /** Messages waiting that are not in flight (what `take` would hand out). */
  get ready(): number {
    return this.#messages - this.#inFlight.size;
  }

  /**
   * Appends a message; resolves once it is stored under the fsync policy.
   * @throws (rejects) MyelinError ERR_QUEUE_FULL when `maxMessages` or `maxBytes` would be exceeded
   * (counted in `refused`; nothing is stored); ERR_STORAGE if it could not be written (not stored);
   * ERR_PAYLOAD_TOO_LARGE; ClosedError ERR_CLOSED after `close()`.
   */
  async append(topic: string, qos: 0 | 1 | 2, payload: Uint8Array): Promise<void> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `offline queue ${this.#dir} is closed`);
    if (this.isFull(payload.length)) {
      this.#refused++;
      throw new MyelinError(
        "ERR_QUEUE_FULL",
        `offline queue ${this.#dir} is full (${this.#messages} messages, ${this.#bytes} bytes; ` +
          `limits ${this.#maxMessages} messages, ${this.#maxBytes} bytes): the broker has not acknowledged ` +
          `for a while; bring it back, or raise the bridge's queue.maxMessages / queue.maxBytes`,
      );
    }
    // Reserve before any await, so concurrent appends cannot overshoot the bound.
    this.#reservedMessages++;
    this.#reservedBytes += payload.length;
    let stored = false;
    try {
      if (this.#rolling === undefined && this.#newest().log.bytes >= this.#genBytes) {
        this.#rolling = this.#roll().finally(() => {
          this.#rolling = undefined;
        });
      }
      if (this.#rolling !== undefined) await this.#rolling;
      const g = this.#newest();
      g.appending++;
      try {
        const r = await g.log.append(encodeHeader(topic, qos), payload);
        g.sizes.set(r.seq, payload.length);
      } finally {
        g.appending--;
      }
      stored = true;
      this.#enqueued++;
      this.#messages++;
      this.#bytes += payload.length;
    } finally {
      this.#reservedMessages--;
      this.#reservedBytes -= payload.length;
      if (!stored) this.#wakeSpace();
    }
    this.#wakeReady();
  }

  async #roll(): Promise<void> {
    const g = await this.#openGen(this.#newest().n + 1);
    if (this.#closed) {
      await g.log.close();
      return;
    }
    const old = this.#newest();
    this.#gens.push(g);
    if (this.#drained(old)) await this.#removeGen(old);
  }

  /**
   * Resolves when there is room for a `bytes`-byte append, or rejects with ERR_TIMEOUT after
   * `timeoutMs` (default: no limit) and ERR_CLOSED when the queue closes.
   */
  waitForSpace(bytes = 0, timeoutMs?: number): Promise<void> {
    return this.#waitOn(
      this.#spaceWaiters,
      () => !this.isFull(bytes),
      timeoutMs,
      "space in the offline queue",
    );
  }

  /** Resolves when `take` would return something, or rejects with ERR_CLOSED when the queue closes. */
  waitForReady(): Promise<void> {
    return this.#waitOn(this.#readyWaiters, () => this.ready > 0, undefined, "a queued message");
  }

  #waitOn(
    list: (() => void)[],
    ok: () => boolean,
    timeoutMs: number | undefined,
    what: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        if (this.#closed) {
          if (timer) clearTimeout(timer);
          reject(new ClosedError("ERR_CLOSED", `offline queue ${this.#dir} is closed`));
        } else if (ok()) {
          if (timer) clearTimeout(timer);
          resolve();
        } else list.push(check);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const i = list.indexOf(check);
          if (i >= 0) list.splice(i, 1);
          reject(new TimeoutError("ERR_TIMEOUT", `waited ${timeoutMs} ms for ${what}`));
        }, timeoutMs);
      }
      check();
    });
  }

  #wakeReady(): void {
    for (const w of this.#readyWaiters.splice(0)) w();
  }

  #wakeSpace(): void {
    for (const w of this.#spaceWaiters.splice(0)) w();
  }

  /**
   * Takes up to `max` waiting messages that are not in flight, oldest first, and marks them in
   * flight. Returns fewer or none when fewer wait.
   * @throws (rejects) MyelinError ERR_STORAGE if the log cannot be read.
   */
  async take(max: number): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    while (out.length < max && this.ready > 0 && !this.#closed) {
      const gi = this.#gens.findIndex((g) => g.n >= this.#cursorGen);
      if (gi < 0) break;
      const g = this.#gens[gi]!;
      if (g.n !== this.#cursorGen) {
        this.#cursorGen = g.n;
        this.#cursorSeq = g.floor + 1;
      }
      this.#cursorSeq = Math.max(this.#cursorSeq, g.floor + 1, g.log.first);
      if (this.#cursorSeq > g.log.last) {
        const next = this.#gens[gi + 1];
        if (next === undefined) break;
        this.#cursorGen = next.n;
        this.#cursorSeq = next.floor + 1;
        continue;
      }
      const recs = await g.log.read(this.#cursorSeq, Math.min(256, max - out.length + this.#inFlight.size));
      if (recs.length === 0) break;
      for (const r of recs) {
        this.#cursorSeq = r.seq + 1;
        const key = `${g.n}:${r.seq}`;
        if (r.seq <= g.floor || g.acked.has(r.seq) || this.#inFlight.has(key)) continue;
        const h = decodeHeader(r.header);
        const attempts = (this.#attempts.get(key) ?? 0) + 1;
        this.#attempts.set(key, attempts);
        this.#inFlight.set(key, r.payload.length);
        out.push({
          topic: h.topic,
          qos: h.qos,
          payload: r.payload,
          id: `${this.#queueId}-${g.n}-${r.seq}`,
          attempts,
          gen: g.n,
          seq: r.seq,
        });
        if (out.length >= max) break;
      }
    }
    return out;
  }

  /**
   * The broker acknowledged `m`: it no longer counts against the bounds and is not sent again.
   * Acknowledging twice, or a message of another queue, does nothing.
   */
  ack(m: QueuedMessage): void {
    const key = `${m.gen}:${m.seq}`;
    this.#inFlight.delete(key);
    this.#attempts.delete(key);
    const g = this.#gens.find((x) => x.n === m.gen);
    if (g === undefined || m.seq <= g.floor || g.acked.has(m.seq)) return;
    const size = g.sizes.get(m.seq);
    if (size === undefined) return;
    g.sizes.delete(m.seq);
    g.acked.add(m.seq);
    this.#messages--;
    this.#bytes -= size;
    this.#acked++;
    while (g.acked.has(g.floor + 1)) {
      g.acked.delete(g.floor + 1);
      g.floor++;
    }
    g.version++;
    this.#saveFloor(g);
    this.#wakeSpace();
  }

  /** Gives `m` back unsent (the send failed): it is taken again, before newer messages. */
  release(m: QueuedMessage): void {
    const key = `${m.gen}:${m.seq}`;
    if (!this.#inFlight.delete(key)) return;
    this.#rewind(m.gen, m.seq);
    this.#wakeReady();
  }

  /** Gives every message in flight back (the connection dropped): all are taken again, in order. */
  releaseAll(): void {
    if (this.#inFlight.size === 0) return;
    this.#inFlight.clear();
    const first = this.#gens[0];
    if (first !== undefined) this.#rewind(first.n, first.floor + 1);
    this.#wakeReady();
  }

  #rewind(gen: number, seq: number): void {
    if (gen < this.#cursorGen || (gen === this.#cursorGen && seq < this.#cursorSeq)) {
      this.#cursorGen = gen;
      this.#cursorSeq = seq;
    }
  }

  /** An older generation whose every message is acknowledged and that nothing appends to. */
  #drained(g: Gen): boolean {
    return (
      g !== this.#newest() &&
      !g.removing &&
      g.appending === 0 &&
      g.floor >= g.log.last &&
      this.#gens.includes(g)
    );
  }

  #saveFloor(g: Gen): void {
    if (g.saving !== undefined) {
      g.saveAgain = true;
      return;
    }
    if (g.version === g.savedVersion || g.removing) return;
    g.saving = (async () => {
      do {
        g.saveAgain = false;
        const version = g.version;
        const state = JSON.stringify({ floor: g.floor, acked: [...g.acked] });
        const tmp = join(g.dir, "floor.tmp");
        try {
          await writeFile(tmp, state + "\n");
          await rename(tmp, join(g.dir, "floor"));
          g.savedVersion = version;
        } catch {
          // Not saved: after a restart these messages are sent again (at-least-once).
        }
      } while (g.saveAgain && !g.removing);
    })().finally(() => {
      g.saving = undefined;
      if (this.#drained(g) && g.saving === undefined) void this.#removeGen(g);
    });
  }

  /**
   * Stops accepting appends (ERR_CLOSED), lets accepted ones and floor saves finish, and closes
   * the files. Unacknowledged messages stay on disk for the next open. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#wakeReady();
      this.#wakeSpace();
      await this.#rolling?.catch(() => undefined);
      for (const g of [...this.#gens]) {
        await g.saving?.catch(() => undefined);
        await g.log.close();
      }
      this.#lock?.release();
    })();
    return this.#closing;
  }

  /** `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
