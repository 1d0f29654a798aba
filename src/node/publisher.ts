/**
 * A publisher of one topic. `publish()` stamps the header (sequence number, source time), hands
 * the message object to subscriptions in this process (no encoding, no copy), encodes it once
 * for the remote ones and queues it per their credit. Reliable topics push back: the returned
 * promise resolves only when no reliable subscriber has `maxPending` messages waiting.
 *
 * Queue groups: subscriptions that joined with the same group name get each message once
 * between them: the publisher picks, in turn, the next member that has credit (the least
 * backed-up one when none has). What a remote member had not consumed when it goes away (it died,
 * was declared gone, or unsubscribed) is sent to another member of the group; if none is left,
 * it waits (bounded by `maxPending`) for the next member to join.
 */
import { performance } from "node:perf_hooks";
import { ClosedError, MyelinError, TimeoutError, ValidationError } from "../errors.js";
import type { MessageType } from "../msgs/index.js";
import {
  CompiledRecordWriter,
  decodeFrames,
  encodeCompiledScratch,
  encodeFrames,
  msgpackCodec,
  msgpackEncode,
} from "../codec/index.js";
import type { DataServer, OutboxEntry, RemoteSubscriber } from "../transport/data-server.js";
import type { MessageInfo, Subscription } from "./subscription.js";
import type { Qos } from "./qos.js";

const RESOLVED = Promise.resolve();
const TIME_ORIGIN = performance.timeOrigin;

/** Counters of a publisher. */
export interface PublisherStats {
  /** Messages published. */
  published: number;
  /** Per-subscriber drops for lack of credit (best-effort subscribers). */
  dropped: number;
  /** Remote subscribers. */
  remoteSubscribers: number;
  /** Subscriptions in this process. */
  localSubscribers: number;
  /** Messages sent again to another group member because the first one went away. */
  redelivered: number;
  /** Messages of a group that lost every member and were dropped past `maxPending` waiting. */
  orphansDropped: number;
  /**
   * Subscribers dropped (disconnected) because they did not read what they were sent: past the
   * data server's per-peer byte bound (`maxPeerBytes`), whatever credit they granted.
   */
  peersDropped: number;
  /** Subscriptions refused because the policy does not grant the subscriber's identity the topic. */
  subscribersRefused: number;
}

/** One member of a queue group: a remote subscriber, or a subscription in this process. */
type Member = { remote: RemoteSubscriber; local: null } | { remote: null; local: Subscription<unknown> };

/** A queue group as this publisher sees it. */
interface Group {
  members: Member[];
  /** Index of the member to try first next time. */
  next: number;
  /** Messages taken back from members that went away, while no remote member is left. */
  orphans: OutboxEntry[];
}

interface HistoryEntry<T> {
  msg: T;
  info: MessageInfo;
  frames: Uint8Array[];
  bytes: number;
}

/** Options the node passes to a publisher. */
export interface PublisherInternals {
  index: number;
  nodeName: string;
  server: DataServer;
  maxMessageBytes: number;
  blobThreshold: number;
  maxPending: number;
  maxPendingBytes: number;
  /** Check every message against the type before sending it. */
  validate: boolean;
  /** For `persistent` topics: appends an encoded message to the store; resolves once on disk. */
  persist: ((payload: Uint8Array, msgId: string | undefined) => Promise<void>) | undefined;
  localSubs(): ReadonlySet<Subscription<unknown>>;
  onClose(): void;
}

/** Options of one `publish()`. */
export interface PublishOptions {
  /**
   * Persistent topics: an id of this message, unique per topic (at most 256 bytes). The store keeps
   * a message with an id it saw within its deduplication window only once, so a publisher that
   * retries after a lost confirm does not store it twice.
   */
  msgId?: string;
}

/** `T` with its `header` (if it has one) optional: the publisher fills the stamp. */
export type WithOptionalHeader<T> = T extends { header: infer H }
  ? Omit<T, "header"> & { header?: Partial<H> }
  : T;

/**
 * A copy of `msg` whose `header.stamp` is the current time when it is missing or zero (as ROS 2
 * users expect of a header the runtime fills; MQTT devices rarely send one). `msg` itself is not
 * changed; a message with a stamp is returned as it is.
 */
function stampHeader<T>(msg: T): T {
  if (typeof msg !== "object" || msg === null) return msg;
  const m = msg as { header?: { stamp?: { sec?: unknown; nanosec?: unknown }; frame_id?: unknown } };
  const h = m.header;
  if (h !== undefined && (typeof h !== "object" || h === null)) return msg; // validation reports it
  const st = h?.stamp;
  if (st !== undefined && (st.sec !== 0 || st.nanosec !== 0)) return msg;
  const nowMs = TIME_ORIGIN + performance.now();
  const sec = Math.floor(nowMs / 1000);
  const stamp = { sec, nanosec: Math.floor((nowMs - sec * 1000) * 1e6) };
  return { ...m, header: { frame_id: "", ...h, stamp } } as T;
}

/** A publisher; create with `node.createPublisher()`. */
export class Publisher<T> {
  readonly topic: string;
  readonly type: MessageType<T>;
  readonly qos: Qos;
  /** @internal */ readonly index: number;
  /** Id in message headers: `<node name>#<index>`. */
  readonly id: string;
  readonly #in: PublisherInternals;
  /** The type has a `header: std_msgs/Header`: a zero or missing stamp is set to the publish time. */
  readonly #stampsHeader: boolean;
  /** @internal subscribers on other nodes, not in a queue group (see addRemote) */
  readonly remote = new Set<RemoteSubscriber>();
  /** Queue groups by name; null while there is none (the common case costs one check). */
  #groups: Map<string, Group> | null = null;
  /**
   * The one plain remote subscriber, when it is the only place a message goes besides subscriptions
   * in this process (no queue group, no history, not persistent); else null. Kept by #route() each
   * time the subscribers change, so a publish in the common case neither walks a Set nor checks
   * which case it is in.
   */
  #sole: RemoteSubscriber | null = null;
  #redelivered = 0;
  #orphansDropped = 0;
  readonly #history: HistoryEntry<T>[] = [];
  #seq = 0;
  #published = 0;
  #closed = false;
  readonly #matchWaiters = new Set<() => void>();
  /** Transient-local: the last `depth` messages are kept for subscribers that come later. */
  readonly #keep: boolean;
  /** Writes this publisher's messages straight into a subscriber's batch frame (see #send). */
  readonly #writer: CompiledRecordWriter<T>;

  /** @internal */
  constructor(topic: string, type: MessageType<T>, qos: Qos, internals: PublisherInternals) {
    this.topic = topic;
    this.type = type;
    const header = type.fields["header"] as { kind: string; type?: { name: string } } | undefined;
    this.#stampsHeader = header?.kind === "msg" && header.type?.name === "std_msgs/Header";
    this.qos = qos;
    this.#keep = qos.durability === "transient-local";
    this.index = internals.index;
    this.id = `${internals.nodeName}#${internals.index}`;
    this.#in = internals;
    this.#writer = new CompiledRecordWriter(type, internals.blobThreshold);
    this.localGroupsChanged();
  }

  /** @internal A remote subscriber came (a plain one, or a member of a queue group). */
  addRemote(r: RemoteSubscriber): void {
    const name = r.group;
    if (name === undefined) {
      this.remote.add(r);
      this.#route();
      return;
    }
    const g = this.#group(name);
    g.members.push({ remote: r, local: null });
    if (g.orphans.length > 0) {
      const orphans = g.orphans;
      g.orphans = [];
      this.#redeliver(g, orphans);
    }
  }

  /**
   * @internal A remote subscriber went away. A group member's unconsumed messages go to
   * another member. Returns false if it was not a subscriber of this publisher.
   */
  removeRemote(r: RemoteSubscriber): boolean {
    const name = r.group;
    if (name === undefined) {
      const had = this.remote.delete(r);
      this.#route();
      return had;
    }
    const g = this.#groups?.get(name);
    if (g === undefined) return false;
    const i = g.members.findIndex((m) => m.remote === r);
    if (i < 0) return false;
    g.members.splice(i, 1);
    if (g.next > i) g.next--;
    if (!this.#closed) this.#redeliver(g, r.takeUnacked(this.index));
    this.#dropEmpty(name, g);
    return true;
  }

  /** @internal Subscriptions in this process joined or left a queue group of this topic. */
  localGroupsChanged(): void {
    const locals = new Map<string, Subscription<unknown>[]>();
    for (const s of this.#in.localSubs()) {
      if (s.group === undefined || s.typeName !== this.type.name) continue;
      let l = locals.get(s.group);
      if (l === undefined) locals.set(s.group, (l = []));
      l.push(s);
    }
    for (const [name, g] of this.#groups ?? []) {
      g.members = g.members.filter((m) => m.local === null || locals.get(name)?.includes(m.local));
    }
    for (const [name, subs] of locals) {
      const g = this.#group(name);
      for (const s of subs)
        if (!g.members.some((m) => m.local === s)) g.members.push({ remote: null, local: s });
      if (g.orphans.length > 0) {
        const orphans = g.orphans;
        g.orphans = [];
        this.#redeliver(g, orphans);
      }
    }
    for (const [name, g] of this.#groups ?? []) this.#dropEmpty(name, g);
    this.#route();
  }

  /** Sets #sole for the subscribers there are now (see its doc). */
  #route(): void {
    let sole: RemoteSubscriber | null = null;
    if (
      !this.#closed &&
      this.remote.size === 1 &&
      this.#groups === null &&
      !this.#keep &&
      this.#in.persist === undefined
    ) {
      for (const r of this.remote) sole = r;
    }
    this.#sole = sole;
  }

  #group(name: string): Group {
    if (this.#groups === null) {
      this.#groups = new Map();
      this.#route();
    }
    let g = this.#groups.get(name);
    if (g === undefined) this.#groups.set(name, (g = { members: [], next: 0, orphans: [] }));
    return g;
  }

  #dropEmpty(name: string, g: Group): void {
    if (g.members.length > 0 || g.orphans.length > 0) return;
    this.#groups?.delete(name);
    if (this.#groups?.size === 0) {
      this.#groups = null;
      this.#route();
    }
  }

  /** The member to send the next message of `g` to: the next with credit, in turn. */
  #choose(g: Group): Member | undefined {
    const ms = g.members;
    const n = ms.length;
    if (n === 0) return undefined;
    let best = -1;
    let bestPending = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (g.next + k) % n;
      const r = ms[i]!.remote;
      if (r === null || r.canSendNow) {
        best = i;
        break;
      }
      if (r.pending < bestPending) {
        best = i;
        bestPending = r.pending;
      }
    }
    g.next = best + 1;
    return ms[best];
  }

  /** Sends messages taken back from a member that went away to the other members of `g`. */
  #redeliver(g: Group, entries: OutboxEntry[]): void {
    for (const e of entries) {
      const m = this.#choose(g);
      if (m === undefined) {
        g.orphans.push(e);
        if (g.orphans.length > this.#in.maxPending) {
          g.orphans.shift();
          this.#orphansDropped++;
        }
        continue;
      }
      this.#redelivered++;
      if (m.remote !== null) {
        m.remote.server.deliver(m.remote, e.pub, e.seq, e.sec, e.nsec, e.payload, e.frames, e.bytes);
        continue;
      }
      let msg: unknown;
      try {
        msg = e.payload !== null ? msgpackCodec.decode(e.payload) : decodeFrames(e.frames as Buffer[]);
      } catch {
        continue; // we encoded it ourselves: cannot happen
      }
      m.local.deliver(
        msg,
        { seq: e.seq, publisher: this.id, sourceTime: { sec: e.sec, nanosec: e.nsec } },
        null,
        0,
      );
    }
  }

  #peersDropped = 0;
  #subscribersRefused = 0;

  /** @internal A remote subscriber of this publisher was dropped for not reading. */
  notePeerDropped(): void {
    this.#peersDropped++;
  }

  /** @internal A subscriber was refused by the policy. */
  noteSubscriberRefused(): void {
    this.#subscribersRefused++;
  }

  /** Counters. */
  stats(): PublisherStats {
    let dropped = 0;
    for (const r of this.remote) dropped += r.dropped;
    let local = 0;
    for (const _ of this.#in.localSubs()) local++;
    let remote = this.remote.size;
    for (const g of this.#groups?.values() ?? []) {
      for (const m of g.members) {
        if (m.remote !== null) {
          remote++;
          dropped += m.remote.dropped;
        }
      }
    }
    return {
      published: this.#published,
      dropped,
      remoteSubscribers: remote,
      localSubscribers: local,
      redelivered: this.#redelivered,
      orphansDropped: this.#orphansDropped,
      peersDropped: this.#peersDropped,
      subscribersRefused: this.#subscribersRefused,
    };
  }

  /** The remote subscribers, plain and queue-group members, with their backlog, waits and drops. */
  remoteSubscribers(): RemoteSubscriber[] {
    const out = [...this.remote];
    for (const g of this.#groups?.values() ?? [])
      for (const m of g.members) if (m.remote !== null) out.push(m.remote);
    return out;
  }

  /** Number of subscribers, here and remote. */
  get subscriberCount(): number {
    const s = this.stats();
    return s.remoteSubscribers + s.localSubscribers;
  }

  /**
   * Resolves once at least `n` subscribers (here or remote) are connected; rejects with
   * ERR_TIMEOUT after `timeoutMs`. Use it before publishing a message nobody must miss.
   */
  waitForSubscribers(n: number, timeoutMs = 5000): Promise<void> {
    if (this.subscriberCount >= n) return RESOLVED;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#matchWaiters.delete(check);
        reject(
          new TimeoutError(
            "ERR_TIMEOUT",
            `publisher of ${this.topic}: ${this.subscriberCount} of ${n} subscribers after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const check = (): void => {
        if (this.subscriberCount < n) return;
        clearTimeout(timer);
        this.#matchWaiters.delete(check);
        resolve();
      };
      this.#matchWaiters.add(check);
    });
  }

  /** @internal The set of subscribers changed. */
  matched(): void {
    for (const w of [...this.#matchWaiters]) w();
  }

  /**
   * Publishes one message. Resolves at once unless a reliable subscriber is `maxPending`
   * messages behind; then when it catches up (or goes away). A `header` (std_msgs/Header) may be
   * left out or given a zero stamp: the stamp is then the publish time.
   * @throws ClosedError ERR_CLOSED after close()
   * @throws ValidationError ERR_VALIDATION when the message does not match the type (unless the
   *   publisher was created with `validate: false`); nothing was sent
   * @throws MyelinError ERR_PAYLOAD_TOO_LARGE when the encoded message exceeds maxMessageBytes
   * @throws ServiceError ERR_NO_SERVER (persistent topics) when no store runs; `ERR_STORAGE` when
   *   the store could not write it (the message is not stored)
   * @throws MyelinError ERR_BACKPRESSURE when a reliable subscriber is 2 × maxPending behind (the
   *   caller did not await earlier publishes); nothing was sent
   * @throws MyelinError ERR_INVALID_ARGUMENT for a `msgId` on a topic that is not persistent
   */
  publish(input: T | WithOptionalHeader<T>, opts?: PublishOptions): Promise<void> {
    let wait: Promise<void>[] | null;
    try {
      wait = this.#send(input, opts?.msgId, this.#in.validate);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (wait === null) return RESOLVED;
    return wait.length === 1 ? wait[0]! : Promise.all(wait).then(() => undefined);
  }

  /**
   * Publishes one message without waiting, for tight loops: returns true when it was sent (or
   * queued within a subscriber's window), false when a reliable subscriber is already
   * `maxPending` messages (or `maxPendingBytes`) behind — then nothing was sent; await `ready()`
   * and try again. Same checks and errors as `publish()`, thrown instead of rejected.
   * @throws ClosedError ERR_CLOSED after close()
   * @throws ValidationError ERR_VALIDATION when the message does not match the type; nothing was sent
   * @throws MyelinError ERR_PAYLOAD_TOO_LARGE when the encoded message exceeds maxMessageBytes
   * @throws MyelinError ERR_INVALID_ARGUMENT on a persistent topic (its publish waits for the store:
   *   use `publish()`)
   */
  tryPublish(input: T | WithOptionalHeader<T>): boolean {
    if (this.#in.persist !== undefined && !this.#closed) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `publisher of ${this.topic}: tryPublish cannot wait for the store of a persistent topic; use publish()`,
      );
    }
    if (this.#behind() !== null) return false;
    // What it returns (subscribers past maxPending) is what the next call checks: nothing to await.
    void this.#send(input, undefined, this.#in.validate);
    return true;
  }

  /**
   * Resolves when no reliable subscriber is `maxPending` messages (or `maxPendingBytes`) behind,
   * so `tryPublish()` sends again; at once when none is. Subscribers that go away count as caught up.
   */
  ready(): Promise<void> {
    if (this.#behind() === null) return RESOLVED;
    const wait: Promise<void>[] = [];
    const max = this.#in.maxPending;
    const maxBytes = this.#in.maxPendingBytes;
    for (const r of this.#remotes()) {
      if (r.reliable && (r.pending >= max || r.pendingBytes >= maxBytes))
        wait.push(r.waitBelow(max, maxBytes));
    }
    return Promise.all(wait).then(() => undefined);
  }

  /**
   * Publishes `msgs` in order, as many `publish()` calls would, with one promise for all: resolves
   * once every message was sent and no reliable subscriber is `maxPending` behind. Every message is
   * checked first: if one is not valid, the promise rejects with ERR_VALIDATION naming its index
   * and none was sent. Messages sent without a wait between them share one publish time (one
   * clock read, not one per message).
   * @throws the errors of `publish()` (as a rejection); a message id is not taken (use publish())
   */
  async publishBatch(msgs: readonly (T | WithOptionalHeader<T>)[]): Promise<void> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `publisher of ${this.topic} is closed`);
    if (!Array.isArray(msgs)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `publisher of ${this.topic}: publishBatch takes an array of messages, got ${typeof msgs}`,
      );
    }
    const check = this.#in.validate;
    if (check) {
      for (let k = 0; k < msgs.length; k++) {
        const m = this.#stampsHeader ? stampHeader(msgs[k] as T) : (msgs[k] as T);
        const v = this.type.validate(m);
        if (!v.ok) throw this.#invalid(v.errors, ` (message ${k} of ${msgs.length}; none was sent)`);
      }
    }
    let wait: Promise<void>[] | null = null;
    // One clock read for the messages sent together (again after each wait): they were published
    // by one call, at that time.
    let nowMs = TIME_ORIGIN + performance.now();
    for (const m of msgs) {
      if (this.#behind() !== null) {
        await this.ready();
        nowMs = TIME_ORIGIN + performance.now();
      }
      const w = this.#send(m, undefined, false, nowMs);
      if (w !== null) (wait ??= []).push(...w);
    }
    if (wait !== null) await Promise.all(wait);
  }

  /** Every remote subscriber, plain or in a queue group. */
  *#remotes(): Iterable<RemoteSubscriber> {
    yield* this.remote;
    if (this.#groups === null) return;
    for (const g of this.#groups.values()) for (const m of g.members) if (m.remote !== null) yield m.remote;
  }

  /** A reliable subscriber that is `maxPending` messages (or bytes) behind, or null. */
  #behind(): RemoteSubscriber | null {
    const max = this.#in.maxPending;
    const maxBytes = this.#in.maxPendingBytes;
    const sole = this.#sole;
    if (sole !== null)
      return sole.reliable && (sole.pending >= max || sole.pendingBytes >= maxBytes) ? sole : null;
    for (const r of this.remote) if (r.reliable && (r.pending >= max || r.pendingBytes >= maxBytes)) return r;
    if (this.#groups === null) return null;
    for (const g of this.#groups.values()) {
      for (const { remote: r } of g.members)
        if (r !== null && r.reliable && (r.pending >= max || r.pendingBytes >= maxBytes)) return r;
    }
    return null;
  }

  /**
   * Throws ERR_BACKPRESSURE (nothing sent) when a reliable subscriber is 2 × `maxPending` messages
   * (or bytes) behind: the caller did not await earlier publishes.
   */
  #checkNotFarBehind(): void {
    const hard = this.#in.maxPending * 2;
    const hardBytes = this.#in.maxPendingBytes * 2;
    for (const r of this.remote) {
      if (r.reliable && (r.pending >= hard || r.pendingBytes >= hardBytes)) throw this.#tooFarBehind(r);
    }
    if (this.#groups !== null) {
      for (const g of this.#groups.values()) {
        for (const { remote: r } of g.members) {
          if (r !== null && r.reliable && (r.pending >= hard || r.pendingBytes >= hardBytes))
            throw this.#tooFarBehind(r);
        }
      }
    }
  }

  #invalid(errors: readonly { path: string; reason: string }[], suffix = ""): ValidationError {
    const detail = errors.map((e) => `${e.path || "(message)"}: ${e.reason}`).join("; ");
    return new ValidationError(
      "ERR_VALIDATION",
      `message published on ${this.topic} is not a valid ${this.type.name}: ${detail}${suffix}`,
    );
  }

  /**
   * Sends one message to every subscriber; returns what to wait for (store confirms, subscribers
   * past `maxPending`), or null. Throws (nothing sent) for the errors of `publish()`.
   */
  #send(
    input: T | WithOptionalHeader<T>,
    msgId: string | undefined,
    check: boolean,
    nowMs = TIME_ORIGIN + performance.now(),
  ): Promise<void>[] | null {
    let msg = input as T;
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `publisher of ${this.topic} is closed`);
    if (msgId !== undefined) {
      if (msgId === "" || Buffer.byteLength(msgId) > 256) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `publisher of ${this.topic}: message id must be 1 to 256 bytes of UTF-8, got ${Buffer.byteLength(msgId)}`,
        );
      }
      if (this.#in.persist === undefined) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `publisher of ${this.topic}: msgId deduplicates stored messages; use it on a topic with durability "persistent"`,
        );
      }
    }
    const sole = this.#sole;
    if (sole !== null) {
      if (
        sole.reliable &&
        (sole.pending >= this.#in.maxPending * 2 || sole.pendingBytes >= this.#in.maxPendingBytes * 2)
      )
        throw this.#tooFarBehind(sole);
    } else {
      this.#checkNotFarBehind();
    }
    if (this.#stampsHeader) msg = stampHeader(msg);
    if (check) {
      const v = this.type.validate(msg);
      if (!v.ok) throw this.#invalid(v.errors);
    }
    const seq = ++this.#seq;
    this.#published++;
    const sec = Math.floor(nowMs / 1000);
    const nsec = Math.floor((nowMs - sec * 1000) * 1e6);
    const keep = this.#keep;
    const local = this.#in.localSubs();
    let info: MessageInfo | undefined;
    const groups = this.#groups;
    // A loaned buffer goes back to the pool after this call: what is kept in this process (queues
    // of local subscriptions, the history) gets a copy of the message.
    const shm = this.#in.server.shm;
    const loans = shm !== null && shm.loansOut;
    const kept = loans && (local.size > 0 || keep || groups !== null) ? shm.detachValue(msg) : msg;
    if (local.size > 0 || keep || groups !== null) {
      info = { seq, publisher: this.id, sourceTime: { sec, nanosec: nsec } };
      for (const s of local) if (s.group === undefined) s.deliver(kept, info, null, 0);
    }

    const persist = this.#in.persist;
    if (this.remote.size === 0 && !keep && persist === undefined && groups === null) {
      if (loans) shm.endLoansIn(msg);
      return null;
    }

    // The common case, one plain remote subscriber that can take the message now: it is encoded
    // straight into that peer's batch frame. Anything else (or a large message) takes the way below.
    if (sole !== null && !loans) {
      const w = this.#writer;
      w.msg = msg;
      let n: number;
      try {
        n = sole.server.deliverWritten(sole, this.index, seq, sec, nsec, w, this.#in.maxMessageBytes);
      } catch (err) {
        throw err instanceof MyelinError
          ? err
          : new MyelinError("ERR_ENCODE", `publisher of ${this.topic}: ${String(err)}`, { cause: err });
      } finally {
        w.msg = undefined;
      }
      if (n > this.#in.maxMessageBytes) throw this.#tooLarge(n);
      if (n >= 0) return null; // it had credit and nothing parked: nothing to wait for
    }

    // A small message is one buffer (`single`, the message in its first `bytes` bytes); a large
    // binary field sends it as codec frames instead (no copy of the blob).
    let single: Uint8Array | null;
    let frames: Uint8Array[] | null = null;
    let bytes = 0;
    try {
      // Encoded once, into a reusable buffer; every consumer below copies it before the next encode.
      const enc = encodeCompiledScratch(this.type, msg, this.#in.blobThreshold);
      single = enc.buf;
      bytes = enc.length;
      if (single === null) {
        frames = encodeFrames(msg, this.#in.blobThreshold);
        if (frames.length === 1) {
          single = frames[0]!;
          frames = null;
          bytes = single.length;
        } else {
          for (const f of frames) bytes += f.length;
        }
      }
    } catch (err) {
      throw err instanceof MyelinError
        ? err
        : new MyelinError("ERR_ENCODE", `publisher of ${this.topic}: ${String(err)}`, { cause: err });
    }
    if (bytes > this.#in.maxMessageBytes) throw this.#tooLarge(bytes);
    if (keep) {
      this.#history.push({
        msg: kept,
        info: info!,
        frames:
          single !== null ? [Buffer.from(single.subarray(0, bytes))] : loans ? shm.detach(frames!) : frames!,
        bytes,
      });
      if (this.#history.length > this.qos.depth) this.#history.shift();
    }
    let wait: Promise<void>[] | null = null;
    if (persist !== undefined) {
      // The store gets its own copy: the encode buffer is reused by the next publish.
      const stored = single !== null ? Buffer.from(single.subarray(0, bytes)) : msgpackEncode(msg);
      (wait ??= []).push(persist(stored, msgId));
    }
    for (const r of this.remote) {
      r.server.deliver(r, this.index, seq, sec, nsec, single, frames, bytes);
      if (r.reliable && (r.pending >= this.#in.maxPending || r.pendingBytes >= this.#in.maxPendingBytes)) {
        r.waits++;
        (wait ??= []).push(r.waitBelow(this.#in.maxPending, this.#in.maxPendingBytes));
      }
    }
    if (groups !== null) {
      for (const g of groups.values()) {
        const m = this.#choose(g);
        if (m === undefined) continue;
        if (m.local !== null) {
          m.local.deliver(kept, info!, null, 0);
          continue;
        }
        const r = m.remote;
        r.server.deliver(r, this.index, seq, sec, nsec, single, frames, bytes);
        if (r.reliable && (r.pending >= this.#in.maxPending || r.pendingBytes >= this.#in.maxPendingBytes)) {
          r.waits++;
          (wait ??= []).push(r.waitBelow(this.#in.maxPending, this.#in.maxPendingBytes));
        }
      }
    }
    if (loans) shm.endLoans(frames ?? [single!]);
    return wait;
  }

  /**
   * A buffer of `size` bytes to fill and publish in the next message's `bytes` field, for large
   * frames (camera images, point clouds): it lies in this process's shared memory, so subscribers
   * on this host are sent only a descriptor of it and read it in place — no copy on either side.
   * Below 64 KiB, when shared memory is off (`MYELIN_SHM=off`, addon not built) or the pool is
   * full, it is an ordinary heap buffer and everything works the same, with copies.
   *
   * Publishing the message ends the loan: do not write to or keep the buffer afterwards. A loan
   * not published is given back with {@link returnLoan} (or when the buffer is garbage collected).
   * @throws MyelinError ERR_INVALID_ARGUMENT when `size` is not an integer from 1 to maxMessageBytes
   */
  loan(size: number): Buffer {
    if (!Number.isInteger(size) || size < 1 || size > this.#in.maxMessageBytes) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `publisher of ${this.topic}: loan size must be an integer from 1 to maxMessageBytes (${this.#in.maxMessageBytes}), got ${String(size)}`,
      );
    }
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `publisher of ${this.topic} is closed`);
    return this.#in.server.shm?.loan(size) ?? Buffer.allocUnsafe(size);
  }

  /** Gives a buffer from {@link loan} back without publishing it; other buffers are ignored. */
  returnLoan(buf: Uint8Array): void {
    this.#in.server.shm?.endLoans([buf]);
  }

  #tooLarge(bytes: number): MyelinError {
    return new MyelinError(
      "ERR_PAYLOAD_TOO_LARGE",
      `message on ${this.topic} is ${bytes} bytes, over maxMessageBytes ${this.#in.maxMessageBytes}; raise maxMessageBytes on both nodes or split the message`,
    );
  }

  #tooFarBehind(r: RemoteSubscriber): MyelinError {
    return new MyelinError(
      "ERR_BACKPRESSURE",
      `publisher of ${this.topic}: subscriber on node ${r.node} is ${r.pending} messages (${r.pendingBytes} bytes) behind; await publish() to follow its pace, or raise maxPending`,
    );
  }

  /** @internal Sends the kept history to a new remote subscriber (transient-local). */
  replayTo(r: RemoteSubscriber, count: number): void {
    const from = Math.max(0, this.#history.length - count);
    for (let i = from; i < this.#history.length; i++) {
      const h = this.#history[i]!;
      const single = h.frames.length === 1 ? h.frames[0]! : null;
      r.server.deliver(
        r,
        this.index,
        h.info.seq,
        h.info.sourceTime.sec,
        h.info.sourceTime.nanosec,
        single,
        single === null ? h.frames : null,
        h.bytes,
      );
    }
  }

  /** @internal Sends the kept history to a new subscription in this process. */
  replayLocal(s: Subscription<T>, count: number): void {
    const from = Math.max(0, this.#history.length - count);
    for (let i = from; i < this.#history.length; i++)
      s.deliver(this.#history[i]!.msg, this.#history[i]!.info, null, 0);
  }

  /** Stops publishing; subscribers stop hearing from it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.remote.clear();
    this.#groups = null;
    this.#sole = null;
    this.#history.length = 0;
    this.#in.onClose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
