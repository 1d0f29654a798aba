/**
 * A publisher of one topic. `publish()` stamps the header (sequence number, source time), hands
 * the message object to subscriptions in this process (no encoding, no copy), encodes it once
 * for the remote ones and queues it per their credit. Reliable topics push back: the returned
 * promise resolves only when no reliable subscriber has `maxPending` messages waiting.
 */
import { ClosedError, MyelinError, TimeoutError, ValidationError } from "../errors.js";
import type { MessageType } from "../msgs/index.js";
import { encodeCompiledTransient, encodeFrames, msgpackEncode } from "../codec/index.js";
import type { DataServer, RemoteSubscriber } from "../transport/data-server.js";
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
  persist: ((payload: Uint8Array) => Promise<void>) | undefined;
  localSubs(): ReadonlySet<Subscription<unknown>>;
  onClose(): void;
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
  /** @internal subscribers on other nodes */
  readonly remote = new Set<RemoteSubscriber>();
  readonly #history: HistoryEntry<T>[] = [];
  #seq = 0;
  #published = 0;
  #closed = false;
  readonly #matchWaiters = new Set<() => void>();

  /** @internal */
  constructor(topic: string, type: MessageType<T>, qos: Qos, internals: PublisherInternals) {
    this.topic = topic;
    this.type = type;
    this.qos = qos;
    this.index = internals.index;
    this.id = `${internals.nodeName}#${internals.index}`;
    this.#in = internals;
  }

  /** Counters. */
  stats(): PublisherStats {
    let dropped = 0;
    for (const r of this.remote) dropped += r.dropped;
    let local = 0;
    for (const _ of this.#in.localSubs()) local++;
    return {
      published: this.#published,
      dropped,
      remoteSubscribers: this.remote.size,
      localSubscribers: local,
    };
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
   * messages behind; then when it catches up (or goes away).
   * @throws ClosedError ERR_CLOSED after close()
   * @throws ValidationError ERR_VALIDATION when the message does not match the type (unless the
   *   publisher was created with `validate: false`); nothing was sent
   * @throws MyelinError ERR_PAYLOAD_TOO_LARGE when the encoded message exceeds maxMessageBytes
   * @throws ServiceError ERR_NO_SERVER (persistent topics) when no store runs; `ERR_STORAGE` when
   *   the store could not write it (the message is not stored)
   * @throws MyelinError ERR_BACKPRESSURE when a reliable subscriber is 2 × maxPending behind (the
   *   caller did not await earlier publishes); nothing was sent
   */
  publish(msg: T): Promise<void> {
    if (this.#closed)
      return Promise.reject(new ClosedError("ERR_CLOSED", `publisher of ${this.topic} is closed`));
    const hard = this.#in.maxPending * 2;
    const hardBytes = this.#in.maxPendingBytes * 2;
    for (const r of this.remote) {
      if (r.reliable && (r.pending >= hard || r.pendingBytes >= hardBytes)) {
        return Promise.reject(
          new MyelinError(
            "ERR_BACKPRESSURE",
            `publisher of ${this.topic}: subscriber on node ${r.node} is ${r.pending} messages (${r.pendingBytes} bytes) behind; await publish() to follow its pace, or raise maxPending`,
          ),
        );
      }
    }
    if (this.#in.validate) {
      const v = this.type.validate(msg);
      if (!v.ok) {
        const detail = v.errors.map((e) => `${e.path || "(message)"}: ${e.reason}`).join("; ");
        return Promise.reject(
          new ValidationError(
            "ERR_VALIDATION",
            `message published on ${this.topic} is not a valid ${this.type.name}: ${detail}`,
          ),
        );
      }
    }
    const seq = ++this.#seq;
    this.#published++;
    const nowMs = TIME_ORIGIN + performance.now();
    const sec = Math.floor(nowMs / 1000);
    const nsec = Math.floor((nowMs - sec * 1000) * 1e6);
    const keep = this.qos.durability === "transient-local";
    const local = this.#in.localSubs();
    let info: MessageInfo | undefined;
    if (local.size > 0 || keep) {
      info = { seq, publisher: this.id, sourceTime: { sec, nanosec: nsec } };
      for (const s of local) s.deliver(msg, info, null, 0);
    }

    const persist = this.#in.persist;
    if (this.remote.size === 0 && !keep && persist === undefined) return RESOLVED;

    let frames: Uint8Array[];
    try {
      // Encoded once, into a reusable buffer; every consumer below copies it before the next
      // encode. A large binary field sends the message as frames instead (no copy of the blob).
      const small = encodeCompiledTransient(this.type, msg, this.#in.blobThreshold);
      frames = small !== null ? [small] : encodeFrames(msg, this.#in.blobThreshold);
    } catch (err) {
      return Promise.reject(
        err instanceof MyelinError
          ? err
          : new MyelinError("ERR_ENCODE", `publisher of ${this.topic}: ${String(err)}`, { cause: err }),
      );
    }
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    if (bytes > this.#in.maxMessageBytes) {
      return Promise.reject(
        new MyelinError(
          "ERR_PAYLOAD_TOO_LARGE",
          `message on ${this.topic} is ${bytes} bytes, over maxMessageBytes ${this.#in.maxMessageBytes}; raise maxMessageBytes on both nodes or split the message`,
        ),
      );
    }
    if (keep) {
      this.#history.push({
        msg,
        info: info!,
        frames: frames.length === 1 ? [Buffer.from(frames[0]!)] : frames,
        bytes,
      });
      if (this.#history.length > this.qos.depth) this.#history.shift();
    }
    let wait: Promise<void>[] | null = null;
    const single = frames.length === 1 ? frames[0]! : null;
    if (persist !== undefined) {
      // The store gets its own copy: the encode buffer is reused by the next publish.
      const stored = single !== null ? Buffer.from(single) : msgpackEncode(msg);
      (wait ??= []).push(persist(stored));
    }
    for (const r of this.remote) {
      this.#in.server.deliver(r, this.index, seq, sec, nsec, single, single === null ? frames : null, bytes);
      if (r.reliable && (r.pending >= this.#in.maxPending || r.pendingBytes >= this.#in.maxPendingBytes)) {
        (wait ??= []).push(r.waitBelow(this.#in.maxPending, this.#in.maxPendingBytes));
      }
    }
    if (wait === null) return RESOLVED;
    return Promise.all(wait).then(() => undefined);
  }

  /** @internal Sends the kept history to a new remote subscriber (transient-local). */
  replayTo(r: RemoteSubscriber, count: number): void {
    const from = Math.max(0, this.#history.length - count);
    for (let i = from; i < this.#history.length; i++) {
      const h = this.#history[i]!;
      const single = h.frames.length === 1 ? h.frames[0]! : null;
      this.#in.server.deliver(
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
    this.#history.length = 0;
    this.#in.onClose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
