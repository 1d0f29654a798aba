/**
 * `ConsumerState`: the sans-IO state machine of one named durable consumer of one log. It does no
 * I/O and reads no clock: every operation that depends on time takes `now` (ms, any monotonic
 * origin the caller keeps consistent, e.g. `Date.now()`), so the rules are testable without
 * timers. The hub feeds it the log's last sequence number, delivers what it returns, and feeds
 * back acks, nacks and departures of clients. Semantics in docs/store-consumers.md.
 */
import { MyelinError } from "../errors.js";

/**
 * Where a new consumer starts (ignored when it resumes from a snapshot):
 * - `"first"`: the oldest record retained in the log;
 * - `"last"`: the newest record in the log when the consumer is created (then everything after);
 * - `{ seq }`: that sequence number (records below it are never delivered);
 * - `{ timeMs }`: the first record with a timestamp >= `timeMs` (ms since the Unix epoch).
 */
export type StartAt = "first" | "last" | { seq: number } | { timeMs: number };

/** Options of a durable consumer. */
export interface ConsumerOptions {
  /** A delivery not acked within this many milliseconds is redelivered (default 30000). */
  ackTimeoutMs?: number;
  /**
   * Most deliveries of one message, counting the first; a message that would be delivered more
   * often is dead-lettered instead (default 5; `Infinity` for no limit).
   */
  maxDeliver?: number;
  /** Most messages delivered and not yet acked (or dead-lettered) at once, across all clients (default 1000). */
  maxInFlight?: number;
  /** Where a new consumer starts (default `"first"`). */
  startAt?: StartAt;
}

/** Validated options with defaults filled in. */
export interface ResolvedConsumerOptions {
  /** Milliseconds. */
  ackTimeoutMs: number;
  /** Deliveries, counting the first. */
  maxDeliver: number;
  /** Messages. */
  maxInFlight: number;
  startAt: StartAt;
}

/** Defaults of `ConsumerOptions`. */
export const consumerDefaults: Readonly<ResolvedConsumerOptions> = Object.freeze({
  ackTimeoutMs: 30_000,
  maxDeliver: 5,
  maxInFlight: 1000,
  startAt: "first",
});

/** One message to deliver now. */
export interface Delivery {
  /** Sequence number of the record in the log. */
  seq: number;
  /** How many times it has been delivered, this one included (1 for the first delivery). */
  deliveries: number;
  /** The client it is delivered to. */
  clientId: string;
  /** The ack deadline of this delivery, in ms on the caller's clock (`now + ackTimeoutMs`). */
  deadline: number;
}

/** Why the last delivery of a message failed. */
export type FailureKind = "ack-timeout" | "nack" | "released" | "rejected";

/** A message given up on: it goes to the dead-letter topic and counts as handled. */
export interface DeadLetter {
  /** Sequence number of the record in the log. */
  seq: number;
  /** How many times it was delivered. */
  deliveries: number;
  /** What happened, for people: e.g. `"maxDeliver 5 reached; last delivery: ack-timeout"`. */
  reason: string;
  /** Why the last delivery failed (`"rejected"`: a client called `reject`). */
  lastFailure: FailureKind;
}

/** What `nextToDeliver` decided. */
export interface DeliveryBatch {
  /** Messages to deliver now, redeliveries (oldest deadline first) before new ones (ascending seq). */
  deliveries: Delivery[];
  /** Messages that reached `maxDeliver`: publish them to the dead-letter topic; they are handled. */
  deadLetters: DeadLetter[];
}

/** Result of `ack`: `"acked"`, or why nothing changed. */
export type AckResult = "acked" | "already-handled" | "not-delivered";

/**
 * What a consumer must persist to resume: the ack floor, the handled seqs above it, and the
 * delivery counts of outstanding messages. Plain data (JSON-safe).
 */
export interface ConsumerSnapshot {
  /** Every seq <= floor is handled (acked or dead-lettered). 0 = nothing handled yet. */
  floor: number;
  /** Handled seqs above the floor, ascending. */
  handled: number[];
  /** Outstanding (delivered, unacked) messages: `[seq, deliveries so far]`, ascending by seq. */
  outstanding: Array<[seq: number, deliveries: number]>;
}

/** Counters and gauges of a consumer. */
export interface ConsumerStats {
  /** Every seq <= floor is handled. */
  floor: number;
  /** Next seq never delivered yet. */
  nextNew: number;
  /** Messages delivered and not yet handled (held by a client or waiting for redelivery). */
  pending: number;
  /** Of `pending`, those waiting for redelivery (timed out, nacked or released). */
  waiting: number;
  /** Handled seqs above the floor (the holes below them are pending). */
  handledAboveFloor: number;
  /** Deliveries made, first deliveries and redeliveries. */
  delivered: number;
  /** Of `delivered`, redeliveries. */
  redelivered: number;
  /** Acks that handled a message. */
  acked: number;
  /** Messages dead-lettered. */
  deadLettered: number;
  /** Clients holding at least one message. */
  clients: number;
}

interface Entry {
  /** Deliveries so far. */
  deliveries: number;
  /** Holder, or undefined when waiting for redelivery. */
  client: string | undefined;
  /** Ack deadline (held) or redelivery time (waiting), ms. */
  deadline: number;
  /** Bumped on every change of deadline, to invalidate stale heap items. */
  gen: number;
  lastFailure: FailureKind;
}

/** Client id used when the caller does not name one. */
export const DEFAULT_CLIENT = "default";

function bad(message: string): MyelinError {
  return new MyelinError("ERR_INVALID_ARGUMENT", message);
}

function checkSeq(name: string, v: number, min = 0): void {
  if (!(Number.isSafeInteger(v) && v >= min)) throw bad(`${name} must be an integer >= ${min}, got ${v}`);
}

function checkTime(name: string, v: number): void {
  if (!Number.isFinite(v)) throw bad(`${name} must be a finite number of milliseconds, got ${v}`);
}

/**
 * Validates consumer options and fills in defaults; never mutates `opts`.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the bad option.
 */
export function resolveConsumerOptions(opts: ConsumerOptions = {}): ResolvedConsumerOptions {
  const o = { ...consumerDefaults, ...opts };
  if (!(Number.isFinite(o.ackTimeoutMs) && o.ackTimeoutMs > 0))
    throw bad(`ackTimeoutMs must be a number of milliseconds > 0, got ${o.ackTimeoutMs}`);
  if (!((Number.isSafeInteger(o.maxDeliver) && o.maxDeliver >= 1) || o.maxDeliver === Infinity))
    throw bad(`maxDeliver must be an integer >= 1 or Infinity, got ${o.maxDeliver}`);
  if (!(Number.isSafeInteger(o.maxInFlight) && o.maxInFlight >= 1))
    throw bad(`maxInFlight must be an integer >= 1, got ${o.maxInFlight}`);
  const s = o.startAt;
  if (typeof s === "object" && s !== null && "seq" in s) checkSeq("startAt.seq", s.seq, 1);
  else if (typeof s === "object" && s !== null && "timeMs" in s) checkTime("startAt.timeMs", s.timeMs);
  else if (s !== "first" && s !== "last")
    throw bad(`startAt must be "first", "last", { seq } or { timeMs }, got ${JSON.stringify(s)}`);
  return o;
}

/** What `resolveStartSeq` needs from a log; `DurableLog` has it. */
export interface StartLookup {
  /** Seq of the oldest retained record; `last + 1` when empty. */
  readonly first: number;
  /** Seq of the newest record; 0 if none. */
  readonly last: number;
  /** Seq of the first record with timestamp >= `timeMs` (ms since the Unix epoch); `last + 1` if none. */
  seqAtTime(timeMs: number): Promise<number>;
}

/**
 * The first seq a new consumer delivers, for `startAt` on `log`. `"last"` on an empty log
 * (and `{ timeMs }` after the newest record) gives `last + 1`: only records appended later.
 * @throws whatever `log.seqAtTime` throws (ERR_STORAGE for DurableLog).
 */
export async function resolveStartSeq(startAt: StartAt, log: StartLookup): Promise<number> {
  if (startAt === "first") return Math.max(1, log.first);
  if (startAt === "last") return Math.max(1, log.last);
  if ("seq" in startAt) return startAt.seq;
  return Math.max(1, await log.seqAtTime(startAt.timeMs));
}

/** A binary min-heap of [deadline, seq, gen], ordered by deadline then seq. */
class DeadlineHeap {
  readonly #d: number[] = [];
  readonly #s: number[] = [];
  readonly #g: number[] = [];
  get size(): number {
    return this.#d.length;
  }
  #less(i: number, j: number): boolean {
    const a = this.#d[i]!,
      b = this.#d[j]!;
    return a < b || (a === b && this.#s[i]! < this.#s[j]!);
  }
  #swap(i: number, j: number): void {
    const d = this.#d;
    const s = this.#s;
    const g = this.#g;
    const td = d[i]!;
    d[i] = d[j]!;
    d[j] = td;
    const ts = s[i]!;
    s[i] = s[j]!;
    s[j] = ts;
    const tg = g[i]!;
    g[i] = g[j]!;
    g[j] = tg;
  }
  push(deadline: number, seq: number, gen: number): void {
    this.#d.push(deadline);
    this.#s.push(seq);
    this.#g.push(gen);
    let i = this.#d.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }
  /** Deadline, seq and gen of the top item (call only when `size > 0`): no tuple allocated. */
  get topDeadline(): number {
    return this.#d[0]!;
  }
  get topSeq(): number {
    return this.#s[0]!;
  }
  get topGen(): number {
    return this.#g[0]!;
  }
  pop(): void {
    const n = this.#d.length - 1;
    this.#swap(0, n);
    this.#d.pop();
    this.#s.pop();
    this.#g.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let m = i;
      if (l < n && this.#less(l, m)) m = l;
      if (r < n && this.#less(r, m)) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/**
 * The state of one named durable consumer of one log, shared by every client of that name
 * (queue-group semantics: each message goes to one client at a time).
 *
 * Rules: every seq <= `floor` is handled; a handled seq (acked or dead-lettered) is never
 * delivered again; at most `maxInFlight` messages are pending (delivered, not handled); a
 * pending message is redelivered after its ack deadline, after a nack's delay, or at once when
 * its client is released, with its delivery count incremented; a message that would be
 * delivered more than `maxDeliver` times is dead-lettered instead.
 */
export class ConsumerState {
  /** The validated options. */
  #options: Readonly<ResolvedConsumerOptions>;
  #floor: number;
  /** Handled seqs above the floor. */
  readonly #handled = new Set<number>();
  /** Pending messages by seq. */
  readonly #pending = new Map<number, Entry>();
  /** Seqs held by each client. */
  readonly #byClient = new Map<string, Set<number>>();
  /** Deadlines of pending messages; entries of handled or re-timed ones go stale (see #compactHeap). */
  #heap = new DeadlineHeap();
  /** Next seq never delivered (candidates >= it are skipped if handled or pending). */
  #next: number;
  #waiting = 0;
  #gen = 0;
  #delivered = 0;
  #redelivered = 0;
  #acked = 0;
  #deadLettered = 0;

  /**
   * A new consumer whose first delivered seq is `startSeq` (see `resolveStartSeq`), or one
   * resuming from `snapshot` (its pending messages are redeliverable at once, keeping their
   * delivery counts).
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad options, start seq or snapshot.
   */
  constructor(opts: ConsumerOptions, from: { startSeq: number } | { snapshot: ConsumerSnapshot }) {
    this.#options = Object.freeze(resolveConsumerOptions(opts));
    if ("startSeq" in from) {
      checkSeq("startSeq", from.startSeq, 1);
      this.#floor = from.startSeq - 1;
    } else {
      const s = from.snapshot;
      checkSeq("snapshot.floor", s.floor);
      this.#floor = s.floor;
      for (const seq of s.handled) {
        checkSeq("snapshot.handled[]", seq, s.floor + 1);
        this.#handled.add(seq);
      }
      for (const [seq, deliveries] of s.outstanding) {
        checkSeq("snapshot.outstanding[].seq", seq, s.floor + 1);
        checkSeq("snapshot.outstanding[].deliveries", deliveries, 1);
        if (this.#handled.has(seq)) throw bad(`snapshot: seq ${seq} is both handled and outstanding`);
        this.#setWaiting(seq, {
          deliveries,
          client: undefined,
          deadline: -Infinity,
          gen: 0,
          lastFailure: "released",
        });
      }
      this.#advanceFloor();
    }
    this.#next = this.#floor + 1;
  }

  /** Ack timeout, redelivery limit and window (resolved). */
  get options(): Readonly<ResolvedConsumerOptions> {
    return this.#options;
  }

  /**
   * Changes the options (a consumer loaded with defaults, e.g. re-attached by an ack after a
   * restart, then fetches with its own); deliveries already out keep their deadlines.
   * @throws MyelinError ERR_INVALID_ARGUMENT for bad options
   */
  configure(opts: ConsumerOptions): void {
    this.#options = Object.freeze(resolveConsumerOptions(opts));
  }

  /** Every seq <= floor is handled (acked or dead-lettered); 0 = none. */
  get floor(): number {
    return this.#floor;
  }

  /** Messages delivered and not yet handled (held by clients or waiting for redelivery). */
  get pending(): number {
    return this.#pending.size;
  }

  /** True if `seq` is handled (acked or dead-lettered). */
  isHandled(seq: number): boolean {
    return seq <= this.#floor || this.#handled.has(seq);
  }

  /** Delivery count so far of a pending message, or undefined if it is not pending. */
  deliveriesOf(seq: number): number | undefined {
    return this.#pending.get(seq)?.deliveries;
  }

  /**
   * Messages to hand to `clientId` now: first the pending ones whose deadline has passed
   * (`<= now`; oldest deadline first) with their incremented delivery count, then new seqs up to
   * `lastSeqInLog`, never taking the pending count over `maxInFlight`; at most `limit` deliveries
   * (the client's free credit). Messages that reached `maxDeliver` come back as dead letters.
   * @param now current time in ms.
   * @param lastSeqInLog the log's newest seq (0 if empty).
   * @param limit most deliveries to return (>= 0).
   * @throws MyelinError ERR_INVALID_ARGUMENT for a bad argument.
   */
  nextToDeliver(now: number, lastSeqInLog: number, limit: number, clientId = DEFAULT_CLIENT): DeliveryBatch {
    checkTime("now", now);
    checkSeq("lastSeqInLog", lastSeqInLog);
    checkSeq("limit", limit);
    const { ackTimeoutMs, maxDeliver, maxInFlight } = this.options;
    const deliveries: Delivery[] = [];
    const deadLetters: DeadLetter[] = [];
    const deadline = now + ackTimeoutMs;
    // Redeliveries (and dead letters) of everything whose deadline passed.
    while (this.#heap.size > 0) {
      const when = this.#heap.topDeadline;
      const seq = this.#heap.topSeq;
      const gen = this.#heap.topGen;
      const e = this.#pending.get(seq);
      if (e === undefined || e.gen !== gen) {
        this.#heap.pop();
        continue;
      }
      if (when > now) break;
      if (e.client !== undefined) e.lastFailure = "ack-timeout";
      if (e.deliveries >= maxDeliver) {
        this.#heap.pop();
        const why = `maxDeliver ${maxDeliver} reached; last delivery: ${e.lastFailure}`;
        deadLetters.push(this.#deadLetter(seq, e, why));
        continue;
      }
      if (deliveries.length >= limit) break;
      this.#heap.pop();
      if (e.client === undefined) this.#waiting--;
      else this.#unhold(seq, e.client);
      e.deliveries++;
      this.#hold(seq, e, clientId, deadline);
      this.#redelivered++;
      deliveries.push({ seq, deliveries: e.deliveries, clientId, deadline });
    }
    // New seqs.
    while (deliveries.length < limit && this.#pending.size < maxInFlight && this.#next <= lastSeqInLog) {
      const seq = this.#next++;
      if (this.#handled.has(seq) || this.#pending.has(seq)) continue;
      const e: Entry = { deliveries: 1, client: undefined, deadline, gen: 0, lastFailure: "ack-timeout" };
      this.#pending.set(seq, e);
      this.#hold(seq, e, clientId, deadline);
      deliveries.push({ seq, deliveries: 1, clientId, deadline });
    }
    this.#delivered += deliveries.length;
    return { deliveries, deadLetters };
  }

  /**
   * Acknowledges `seq`, from whichever client (a late ack from a client that lost the message
   * still counts: the work was done). Moves the floor over every handled seq.
   * @returns `"acked"`; `"already-handled"` if it was acked or dead-lettered before (nothing
   * changes); `"not-delivered"` if it is not pending (never delivered, or lost in a restart).
   */
  ack(seq: number): AckResult {
    const e = this.#pending.get(seq);
    if (e === undefined) return this.isHandled(seq) ? "already-handled" : "not-delivered";
    this.#remove(seq, e);
    this.#acked++;
    this.#markHandled(seq);
    return "acked";
  }

  /**
   * Acknowledges `seq` although it is not pending: pending deliveries are not kept across a
   * restart of the store, so a consumer acking a message it got before the restart lands here.
   * The message is marked handled (not delivered again) if it is in the log and not handled yet.
   * @param lastSeqInLog the newest seq in the log; a seq above it was never delivered
   * @returns `"acked"`, `"already-handled"`, or `"not-delivered"` for a seq above the log
   */
  ackUndelivered(seq: number, lastSeqInLog: number): AckResult {
    if (this.#pending.has(seq)) return this.ack(seq);
    if (this.isHandled(seq)) return "already-handled";
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > lastSeqInLog) return "not-delivered";
    this.#acked++;
    this.#markHandled(seq);
    return "acked";
  }

  /**
   * Negative ack: the client gives `seq` back; it is redelivered (to any client) once `delayMs`
   * has passed after `now` — at once, as a dead letter, if it already had `maxDeliver` deliveries.
   * @param delayMs milliseconds to wait before redelivery (>= 0).
   * @param now current time in ms.
   * @returns false if `seq` was not pending (already handled or never delivered).
   */
  nack(seq: number, delayMs: number, now: number): boolean {
    checkTime("now", now);
    if (!(Number.isFinite(delayMs) && delayMs >= 0)) throw bad(`delayMs must be >= 0 ms, got ${delayMs}`);
    const e = this.#pending.get(seq);
    if (e === undefined) return false;
    if (e.client !== undefined) this.#unhold(seq, e.client);
    else this.#waiting--;
    e.lastFailure = "nack";
    this.#setWaiting(seq, e, e.deliveries >= this.options.maxDeliver ? now : now + delayMs);
    return true;
  }

  /**
   * Terminates `seq` at once: dead-lettered with `reason` (e.g. a message that fails
   * validation and will never succeed), whatever its delivery count.
   * @returns the dead letter, or undefined if `seq` was not pending.
   */
  reject(seq: number, reason: string): DeadLetter | undefined {
    const e = this.#pending.get(seq);
    if (e === undefined) return undefined;
    e.lastFailure = "rejected";
    return this.#deadLetter(seq, e, reason);
  }

  /**
   * Extends the ack deadline of a held message to `now + ackTimeoutMs` (the client is still
   * working on it). Does not count as a delivery.
   * @returns false if `seq` is not held by a client.
   */
  touch(seq: number, now: number): boolean {
    checkTime("now", now);
    const e = this.#pending.get(seq);
    if (e?.client === undefined) return false;
    e.deadline = now + this.options.ackTimeoutMs;
    e.gen = ++this.#gen;
    this.#heap.push(e.deadline, seq, e.gen);
    return true;
  }

  /**
   * A client went away: every message it holds becomes redeliverable at `now` (to the other
   * clients of this consumer). Its delivery count is kept.
   * @returns how many messages were released.
   */
  release(clientId: string, now: number): number {
    checkTime("now", now);
    const held = this.#byClient.get(clientId);
    if (held === undefined) return 0;
    const seqs = [...held];
    for (const seq of seqs) {
      const e = this.#pending.get(seq)!;
      this.#unhold(seq, clientId);
      e.lastFailure = "released";
      this.#setWaiting(seq, e, now);
    }
    return seqs.length;
  }

  /** Held messages whose ack deadline is `<= now` (ms), ascending: the next call to `nextToDeliver` redelivers them. */
  expired(now: number): number[] {
    const out: number[] = [];
    for (const [seq, e] of this.#pending) if (e.client !== undefined && e.deadline <= now) out.push(seq);
    return out.sort((a, b) => a - b);
  }

  /**
   * The earliest time (ms) at which some pending message becomes redeliverable (or due for
   * dead-lettering): when the hub should call `nextToDeliver` again; may lie in the past
   * (`-Infinity` for messages restored from a snapshot). Undefined if none is pending.
   */
  nextDeadline(): number | undefined {
    const heap = this.#heap;
    while (heap.size > 0) {
      const e = this.#pending.get(heap.topSeq);
      if (e !== undefined && e.gen === heap.topGen) return heap.topDeadline;
      heap.pop();
    }
    return undefined;
  }

  /**
   * Records retention removed everything below `firstSeqInLog`: those seqs can never be
   * delivered, so they count as handled (not acked, not dead-lettered) and pending ones are dropped.
   * @returns how many seqs above the old floor were skipped without being handled before.
   */
  skipBelow(firstSeqInLog: number): number {
    checkSeq("firstSeqInLog", firstSeqInLog, 1);
    let skipped = 0;
    while (this.#floor + 1 < firstSeqInLog) {
      const seq = ++this.#floor;
      const e = this.#pending.get(seq);
      if (e !== undefined) this.#remove(seq, e);
      if (!this.#handled.delete(seq)) skipped++;
    }
    this.#advanceFloor();
    if (this.#next <= this.#floor) this.#next = this.#floor + 1;
    return skipped;
  }

  /** Messages in the log not yet handled: `lastSeqInLog - floor - handled above the floor` (>= 0). */
  lag(lastSeqInLog: number): number {
    let above = 0;
    if (this.#handled.size > 0) for (const s of this.#handled) if (s <= lastSeqInLog) above++;
    return Math.max(0, lastSeqInLog - this.#floor - above);
  }

  /** Counters and gauges; see `ConsumerStats`. */
  stats(): ConsumerStats {
    return {
      floor: this.#floor,
      nextNew: this.#next,
      pending: this.#pending.size,
      waiting: this.#waiting,
      handledAboveFloor: this.#handled.size,
      delivered: this.#delivered,
      redelivered: this.#redelivered,
      acked: this.#acked,
      deadLettered: this.#deadLettered,
      clients: this.#byClient.size,
    };
  }

  /** What to persist to resume (see `ConsumerSnapshot`); a fresh copy. */
  snapshot(): ConsumerSnapshot {
    return {
      floor: this.#floor,
      handled: [...this.#handled].sort((a, b) => a - b),
      outstanding: [...this.#pending]
        .map(([seq, e]): [number, number] => [seq, e.deliveries])
        .sort((a, b) => a[0] - b[0]),
    };
  }

  #hold(seq: number, e: Entry, clientId: string, deadline: number): void {
    e.client = clientId;
    e.deadline = deadline;
    e.gen = ++this.#gen;
    this.#heap.push(deadline, seq, e.gen);
    let set = this.#byClient.get(clientId);
    if (set === undefined) this.#byClient.set(clientId, (set = new Set()));
    set.add(seq);
  }

  #unhold(seq: number, clientId: string): void {
    const set = this.#byClient.get(clientId);
    if (set === undefined) return;
    set.delete(seq);
    if (set.size === 0) this.#byClient.delete(clientId);
  }

  #setWaiting(seq: number, e: Entry, when = e.deadline): void {
    e.client = undefined;
    e.deadline = when;
    e.gen = ++this.#gen;
    this.#pending.set(seq, e);
    this.#heap.push(when, seq, e.gen);
    this.#waiting++;
  }

  #remove(seq: number, e: Entry): void {
    if (e.client !== undefined) this.#unhold(seq, e.client);
    else this.#waiting--;
    this.#pending.delete(seq);
    this.#compactHeap();
  }

  /**
   * Rebuilds the deadline heap from the pending messages once stale entries make up most of it:
   * an acked message's entry would otherwise stay until its deadline comes up (ackTimeoutMs
   * later), so a fast consumer would keep rate x ackTimeoutMs dead entries.
   */
  #compactHeap(): void {
    if (this.#heap.size <= 2 * this.#pending.size + 1024) return;
    const heap = new DeadlineHeap();
    for (const [seq, e] of this.#pending) heap.push(e.deadline, seq, e.gen);
    this.#heap = heap;
  }

  #deadLetter(seq: number, e: Entry, reason: string): DeadLetter {
    this.#remove(seq, e);
    this.#deadLettered++;
    this.#markHandled(seq);
    return { seq, deliveries: e.deliveries, reason, lastFailure: e.lastFailure };
  }

  #markHandled(seq: number): void {
    if (seq <= this.#floor) return;
    // In order (the usual case): the floor moves without a detour through the set.
    if (seq === this.#floor + 1) this.#floor = seq;
    else this.#handled.add(seq);
    if (this.#handled.size > 0) this.#advanceFloor();
  }

  #advanceFloor(): void {
    while (this.#handled.delete(this.#floor + 1)) this.#floor++;
  }
}
