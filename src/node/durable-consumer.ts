/**
 * A durable consumer: reads a persistent topic from the hub's store under a name, so it resumes
 * after its last acknowledged message across restarts of either side. Messages come with `ack()`
 * and `nack()`; unacknowledged ones come back after the ack timeout, and after `maxDeliver`
 * deliveries they go to `<topic>/dead_letter`. Consumers with the same name share the messages
 * (each to one of them). Holds at most `maxInFlight` unacknowledged messages: it grants the store
 * credit for them ahead of time (several fetches outstanding, answered in order), and sends the
 * acks of one event-loop turn as runs of seqs in one request (docs/store-consumers.md).
 */
import { randomBytes } from "../transport/node-crypto.js";
import { ClosedError, MyelinError, myelinError, ValidationError } from "../errors.js";
import { decodeCompiled, MISMATCH, msgpackCodec } from "../codec/index.js";
import type { MessageType } from "../msgs/index.js";
import type { StoreClient } from "./store-client.js";
import { forEachStoredRecord } from "./stored-records.js";

/** Where a new consumer starts (ignored when the name already has saved progress). */
export type DurableStart = "first" | "last" | { seq: number } | { timeMs: number };

/** Options of a durable consumer. */
export interface DurableConsumerOptions {
  /** The consumer's name: its progress is kept under it; clients with one name share the work. */
  name: string;
  /** Where a new consumer starts (default "first"). */
  startAt?: DurableStart;
  /** An unacknowledged message comes back after this long, in ms (default 30000). */
  ackTimeoutMs?: number;
  /** Deliveries of one message before it goes to the dead-letter topic (default 5). */
  maxDeliver?: number;
  /** Unacknowledged messages held at once (default 256). */
  maxInFlight?: number;
  /**
   * Read the store of this host of the site (a host name as `myelin node list` shows it) instead
   * of the store of the node's own host. A persistent publish is stored by the store of the
   * publisher's host, so a consumer on another host names that host (docs/site.md).
   */
  host?: string;
}

/** One message of a durable topic. */
export interface DurableMessage<T> {
  msg: T;
  /** Its sequence number in the topic's log, from 1. */
  seq: number;
  /** When it was stored, in ms since the Unix epoch. */
  timestamp: number;
  /** How many times it was delivered, this one included. */
  deliveries: number;
  /** Acknowledges it; resolves once the store recorded the ack. */
  ack(): Promise<void>;
  /** Gives it back for redelivery after `delayMs` (default 0). */
  nack(delayMs?: number): Promise<void>;
}

/** Counters of a durable consumer. */
export interface DurableConsumerStats {
  received: number;
  acked: number;
  nacked: number;
  /** Messages that failed to decode or validate (nacked, so they end in the dead-letter topic). */
  invalid: number;
  /** Messages received, not yet acknowledged. */
  inFlight: number;
}

const FETCH_WAIT_MS = 1000;
/** Credit grants (fetches) outstanding at once; each is for up to maxInFlight / MAX_GRANTS messages. */
const MAX_GRANTS = 2;

/** A durable consumer; create with `node.createDurableConsumer()`, read with `for await`. */
export class DurableConsumer<T> {
  readonly topic: string;
  readonly name: string;
  readonly #type: MessageType<T>;
  readonly #opts: Required<Omit<DurableConsumerOptions, "startAt" | "host">> & { startAt: string };
  readonly #store: StoreClient;
  readonly #client = randomBytes(4).toString("hex");
  readonly #onWarning: (err: Error) => void;
  #queue: DurableMessage<T>[] = [];
  #waiter: ((r: IteratorResult<DurableMessage<T>>) => void) | null = null;
  #inFlight = 0;
  #closed = false;
  /** Settlements waiting to be sent, grouped by kind (-1: ack; else the nack delay in ms). */
  #pendingAcks = new Map<number, SettleBatch>();
  #ackScheduled = false;
  #stats = { received: 0, acked: 0, nacked: 0, invalid: 0 };
  /** Fetches (credit grants) outstanding, and the messages they may bring. */
  #grants = 0;
  #granted = 0;
  /** The last answer was empty: one grant waits for new messages, no more are made. */
  #idle = false;
  #warned = false;
  /** The store refused raw fetches (an older store): messages come as parallel arrays. */
  #rawRefused = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Settles once every answer to the grants made so far is handled. */
  #replies: Promise<void> = Promise.resolve();

  /** @internal */
  constructor(
    topic: string,
    type: MessageType<T>,
    opts: DurableConsumerOptions,
    store: StoreClient,
    onWarning: (err: Error) => void,
  ) {
    if (!/^[A-Za-z0-9_.-]+$/.test(opts.name ?? "")) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `durable consumer name '${opts.name}': use letters, digits, '_', '-', '.'`,
      );
    }
    this.topic = topic;
    this.name = opts.name;
    this.#type = type;
    const s = opts.startAt ?? "first";
    this.#opts = {
      name: opts.name,
      startAt: typeof s === "string" ? s : "seq" in s ? `seq:${s.seq}` : `time:${s.timeMs}`,
      ackTimeoutMs: opts.ackTimeoutMs ?? 30000,
      maxDeliver: opts.maxDeliver ?? 5,
      maxInFlight: opts.maxInFlight ?? 256,
    };
    this.#store = store;
    this.#onWarning = onWarning;
    this.#pump();
  }

  /** Counters. */
  stats(): DurableConsumerStats {
    return { ...this.#stats, inFlight: this.#inFlight };
  }

  /** Reads messages as they come; ends when the consumer is closed. */
  [Symbol.asyncIterator](): AsyncIterator<DurableMessage<T>> {
    return {
      next: () => {
        const m = this.#queue.shift();
        if (m !== undefined) return Promise.resolve({ value: m, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.#waiter = resolve));
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /** Stops fetching; acks already made are sent first. Unacknowledged messages come back later. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.({ value: undefined, done: true });
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#flushAcks();
    // The grants outstanding are answered within FETCH_WAIT_MS (the store answers all but the last
    // at once); what they bring is not handed out and comes back after the ack timeout. Withdrawing
    // them has the one waiting for messages answered at once (a store that predates `cancel`
    // refuses it: then it is answered within FETCH_WAIT_MS).
    if (this.#grants > 0) await this.#cancelGrants();
    await this.#replies;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Grants the store credit: a fetch for up to `min(room, grant size)` messages, while fewer than
   * {@link MAX_GRANTS} are outstanding and the window has room for them. The store answers a
   * client's fetches in order, each as soon as it has messages for it, so with several outstanding
   * it pushes messages as the credit allows, without waiting for a round trip per batch. After an
   * empty answer (nothing to deliver) only one grant stays outstanding, waiting for new messages.
   */
  #pump(): void {
    const grantSize = Math.max(1, Math.ceil(this.#opts.maxInFlight / MAX_GRANTS));
    while (!this.#closed && this.#retryTimer === undefined && this.#grants < MAX_GRANTS) {
      if (this.#idle && this.#grants > 0) return;
      const room = this.#opts.maxInFlight - this.#inFlight - this.#granted;
      // A partial grant only when none is outstanding: otherwise wait for a full one's room.
      if (room <= 0 || (room < grantSize && this.#grants > 0)) return;
      this.#grant(Math.min(room, grantSize));
    }
  }

  /** Withdraws this client's outstanding grants at the store; never throws. */
  async #cancelGrants(): Promise<void> {
    try {
      await this.#store.fetch(
        {
          topic: this.topic,
          type: this.#type.name,
          consumer: this.name,
          client: this.#client,
          max: 0,
          wait_ms: 0,
          start_at: this.#opts.startAt,
          ack_timeout_ms: this.#opts.ackTimeoutMs,
          max_deliver: this.#opts.maxDeliver,
          max_in_flight: this.#opts.maxInFlight,
          cancel: true,
        },
        { timeoutMs: FETCH_WAIT_MS + 5000 },
      );
    } catch {
      // An older store, or the store gone: the grants end by themselves.
    }
  }

  #grant(max: number): void {
    // Acks made so far go out before the grant, so the store has the room when it arrives.
    if (this.#pendingAcks.size > 0) void this.#flushAcks();
    this.#grants++;
    this.#granted += max;
    const reply = this.#store.fetch(
      {
        topic: this.topic,
        type: this.#type.name,
        consumer: this.name,
        client: this.#client,
        max,
        wait_ms: FETCH_WAIT_MS,
        start_at: this.#opts.startAt,
        ack_timeout_ms: this.#opts.ackTimeoutMs,
        max_deliver: this.#opts.maxDeliver,
        max_in_flight: this.#opts.maxInFlight,
        // The messages as the log's own records: one buffer instead of four arrays.
        ...(this.#rawRefused ? {} : { raw: true }),
      },
      { timeoutMs: FETCH_WAIT_MS * MAX_GRANTS + 5000 },
    );
    // Answers are handled in the order the grants were made (the store sends them in that order).
    this.#replies = this.#replies.then(() =>
      reply.then(
        (r) => {
          this.#grants--;
          this.#granted -= max;
          this.#warned = false;
          if (r.records !== undefined) {
            const d = r.deliveries;
            try {
              const n = forEachStoredRecord(r.records, (i, seq, ts, payload) =>
                this.#accept(seq, ts, d[i] ?? 1, payload),
              );
              this.#idle = n === 0;
            } catch (err) {
              // What came before the bad record is handed out; the rest comes back after the ack timeout.
              this.#onWarning(err as Error);
            }
          } else {
            this.#idle = r.seqs.length === 0;
            for (let i = 0; i < r.seqs.length; i++)
              this.#accept(r.seqs[i]!, r.timestamps[i]!, r.deliveries[i]!, r.payloads[i]!);
          }
          this.#pump();
        },
        (err: unknown) => {
          this.#grants--;
          this.#granted -= max;
          if (this.#closed) return;
          // A store older than raw fetches refuses the field (nothing was delivered): ask again without it.
          if (
            !this.#rawRefused &&
            err instanceof MyelinError &&
            err.code === "ERR_VALIDATION" &&
            /'raw'/.test(err.message)
          ) {
            this.#rawRefused = true;
            this.#pump();
            return;
          }
          if (!this.#warned) {
            this.#warned = true;
            this.#onWarning(
              myelinError(
                err instanceof MyelinError ? err.code : "ERR_PROTOCOL",
                `durable consumer ${this.name} of ${this.topic} cannot fetch (retrying): ${(err as Error).message}`,
                { cause: err },
              ),
            );
          }
          if (this.#retryTimer === undefined) {
            this.#retryTimer = setTimeout(() => {
              this.#retryTimer = undefined;
              this.#pump();
            }, 500);
          }
        },
      ),
    );
  }

  #accept(seq: number, timestamp: number, deliveries: number, payload: Uint8Array): void {
    this.#stats.received++;
    this.#inFlight++;
    let msg: unknown = decodeCompiled(this.#type, payload);
    if (msg === MISMATCH) {
      try {
        msg = msgpackCodec.decode(payload);
      } catch {
        msg = MISMATCH;
      }
      if (msg === MISMATCH || !this.#type.validate(msg).ok) {
        this.#stats.invalid++;
        this.#onWarning(
          new ValidationError(
            "ERR_VALIDATION",
            `durable message ${this.topic} #${seq} is not a valid ${this.#type.name}; nacked`,
          ),
        );
        void this.#settle(seq, true, 1000).catch(() => undefined);
        return;
      }
    }
    const m = new Delivered<T>(msg as T, seq, timestamp, deliveries, this.#settler);
    const w = this.#waiter;
    if (w !== null) {
      this.#waiter = null;
      w({ value: m, done: false });
    } else this.#queue.push(m);
  }

  readonly #settler = (seq: number, nack: boolean, delay: number): Promise<void> =>
    this.#settle(seq, nack, delay);

  /** Queues an ack (or nack) for the next batch; every settlement of one batch shares its promise. */
  #settle(seq: number, nack: boolean, delay: number): Promise<void> {
    if (nack) this.#stats.nacked++;
    else this.#stats.acked++;
    this.#inFlight--;
    const key = nack ? Math.max(0, delay) : -1;
    let b = this.#pendingAcks.get(key);
    if (b === undefined) {
      b = new SettleBatch();
      this.#pendingAcks.set(key, b);
    }
    b.seqs.push(seq);
    if (!this.#ackScheduled) {
      this.#ackScheduled = true;
      setImmediate(() => void this.#flushAcks());
    }
    // Room for more: a grant made now sends the acks above first.
    this.#pump();
    return b.promise;
  }

  async #flushAcks(): Promise<void> {
    this.#ackScheduled = false;
    if (this.#pendingAcks.size === 0) return;
    const batches = this.#pendingAcks;
    this.#pendingAcks = new Map();
    for (const [key, b] of batches) {
      try {
        // Acks travel as runs of consecutive seqs: usually one or a few per batch.
        await this.#store.ack({
          topic: this.topic,
          consumer: this.name,
          acks: [],
          ack_runs: key < 0 ? toRuns(b.seqs) : [],
          nacks: key < 0 ? [] : b.seqs,
          nack_delay_ms: Math.max(0, key),
        });
        b.resolve();
      } catch (err) {
        b.reject(err);
      }
    }
  }

  /** @internal */
  assertOpen(): void {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `durable consumer ${this.name} is closed`);
  }
}

/** Seqs as runs of consecutive ones, flattened: `[start, count, start, count, ...]`, ascending. */
function toRuns(seqs: number[]): number[] {
  let ascending = true;
  for (let i = 1; i < seqs.length && ascending; i++) ascending = seqs[i]! > seqs[i - 1]!;
  // Acks usually come in delivery order: sorted already.
  const sorted = ascending ? seqs : Float64Array.from(seqs).sort();
  const out: number[] = [];
  for (let i = 0; i < sorted.length;) {
    const start = sorted[i]!;
    let j = i + 1;
    while (j < sorted.length && sorted[j]! <= sorted[j - 1]! + 1) j++;
    out.push(start, sorted[j - 1]! - start + 1);
    i = j;
  }
  return out;
}

/** Acks (or nacks with one delay) sent in one request; they all settle with its reply. */
class SettleBatch {
  readonly seqs: number[] = [];
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: unknown) => void;
  constructor() {
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // Callers may ignore the promise of an ack; a failed batch must not be an unhandled rejection.
    this.promise.catch(() => undefined);
  }
}

/** One delivered message; `ack()` / `nack()` settle it once. */
class Delivered<T> implements DurableMessage<T> {
  #settled = false;
  readonly #settle: (seq: number, nack: boolean, delay: number) => Promise<void>;
  constructor(
    readonly msg: T,
    readonly seq: number,
    readonly timestamp: number,
    readonly deliveries: number,
    settle: (seq: number, nack: boolean, delay: number) => Promise<void>,
  ) {
    this.#settle = settle;
  }
  ack(): Promise<void> {
    if (this.#settled) return Promise.resolve();
    this.#settled = true;
    return this.#settle(this.seq, false, 0);
  }
  nack(delayMs = 0): Promise<void> {
    if (this.#settled) return Promise.resolve();
    this.#settled = true;
    return this.#settle(this.seq, true, delayMs);
  }
}
