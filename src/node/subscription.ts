/**
 * A subscription to a topic: messages arrive from every publisher of the topic (in memory from
 * publishers in this process, over ZeroMQ from the others) and go to a callback or to a bounded
 * queue read with `for await`. Counts what it receives, drops and finds invalid.
 */
import { EventEmitter } from "node:events";
import { ClosedError } from "../errors.js";
import type { Qos } from "./qos.js";
import type { Time } from "../msgs/index.js";
import { rawFromValue } from "./raw-message.js";

/** What the runtime tells about each message. */
export interface MessageInfo {
  /** Per-publisher sequence number, from 1. */
  seq: number;
  /** Who published it: `<node name>#<publisher index>`. */
  publisher: string;
  /** When it was published (publisher's clock). */
  sourceTime: Time;
  /**
   * Size of the encoded message as it arrived (all its frames), in bytes; absent when it was
   * delivered in memory (publisher in the same process) and never encoded.
   */
  bytes?: number;
}

/** A message with its info, as yielded by a subscription's async iterator. */
export interface Received<T> {
  msg: T;
  info: MessageInfo;
}

/** Counters of a subscription. */
export interface SubscriptionStats {
  /** Messages delivered to the callback or queue. */
  received: number;
  /** Messages lost: dropped by the queue's overflow policy, or missing from a publisher's sequence. */
  dropped: number;
  /** Messages waiting in the queue. */
  pending: number;
  /** Messages that failed to decode or validate (never delivered). */
  invalid: number;
  /** Deadlines missed. */
  deadlinesMissed: number;
}

/** What to do when the queue is full: drop the oldest (sensor streams), the newest, or stop granting credit (block). */
export type Overflow = "drop-oldest" | "drop-newest" | "block";

/** Returns credit for consumed messages to where they came from. */
export interface Acker {
  ack(bytes: number): void;
}

/** Callback of a callback subscription. Returning a promise delays its credit until it settles. */
export type MessageHandler<T> = (msg: T, info: MessageInfo) => void | Promise<void>;

/** Events: `liveliness` ({ publisher, alive }), `deadline` ({ missed }), `invalid` (Error), `refused` (Error). */
export interface SubscriptionEvents {
  liveliness: [{ publisher: string; alive: boolean }];
  deadline: [{ missed: number }];
  invalid: [Error];
  refused: [Error];
}

/** A subscription; create with `node.createSubscription()`. */
export class Subscription<T> extends EventEmitter<SubscriptionEvents> {
  readonly topic: string;
  readonly typeName: string;
  readonly qos: Qos;
  readonly queueSize: number;
  readonly overflow: Overflow;
  /** Queue group: subscriptions with the same group share the topic's messages (each to one). */
  readonly group: string | undefined;
  /** True for a raw subscription: messages are {@link RawMessage}s, not decoded nor validated. */
  readonly raw: boolean;
  readonly #handler: MessageHandler<T> | undefined;
  readonly #onClose: () => void;
  #queue: (Received<T> & { acker: Acker | null; bytes: number })[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<Received<T>>) => void) | null = null;
  #closed = false;
  #received = 0;
  #dropped = 0;
  #invalid = 0;
  #deadlinesMissed = 0;
  #lastMessageAt = Date.now();
  /** When the last message arrived (ms since the epoch); when the subscription began before one did. */
  #lastArrivalAt = Date.now();
  #deadlineTimer: NodeJS.Timeout | undefined;

  /** @internal created by Node */
  constructor(args: {
    topic: string;
    typeName: string;
    qos: Qos;
    queueSize: number;
    overflow: Overflow;
    handler: MessageHandler<T> | undefined;
    onClose: () => void;
    group?: string | undefined;
    raw?: boolean;
  }) {
    super();
    this.topic = args.topic;
    this.typeName = args.typeName;
    this.qos = args.qos;
    this.queueSize = args.queueSize;
    this.overflow = args.overflow;
    this.group = args.group;
    this.raw = args.raw === true;
    this.#handler = args.handler;
    this.#onClose = args.onClose;
    if (this.qos.deadlineMs > 0) {
      this.#deadlineTimer = setInterval(
        () => this.#checkDeadline(),
        Math.max(1, Math.floor(this.qos.deadlineMs / 2)),
      );
      this.#deadlineTimer.unref();
    }
  }

  /** @internal True for a callback subscription: a message is consumed when its callback is done. */
  get callback(): boolean {
    return this.#handler !== undefined;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** When the last message arrived, ms since the epoch (when the subscription began, before any did). */
  get lastMessageAt(): number {
    return this.#lastArrivalAt;
  }

  /** Counters: received, dropped, pending, invalid, deadlinesMissed. */
  stats(): SubscriptionStats {
    return {
      received: this.#received,
      dropped: this.#dropped,
      pending: this.#queue.length - this.#head,
      invalid: this.#invalid,
      deadlinesMissed: this.#deadlinesMissed,
    };
  }

  /**
   * @internal Hands one message over. `acker.ack(bytes)` returns the credit for it; the
   * subscription calls it when the message is consumed (block) or accepted (drop policies).
   */
  deliver(msg: T, info: MessageInfo, acker: Acker | null, bytes: number): void {
    // A publisher in this process hands over values; a raw subscription gets them encoded.
    if (this.raw && !this.#closed) msg = rawFromValue(msg) as T;
    this.deliverEncoded(msg, info, acker, bytes);
  }

  /**
   * @internal Hands one message over as it is: a decoded value, or for a raw subscription the
   * {@link RawMessage} a remote source built from what arrived. `arrivedAt` (ms since the epoch)
   * is when the message arrived: a remote source passes the time its frame was received (one clock
   * read for all the records of a batch frame, not one per message); read from the clock when not
   * given.
   */
  deliverEncoded(
    msg: T,
    info: MessageInfo,
    acker: Acker | null,
    bytes: number,
    arrivedAt: number = Date.now(),
  ): void {
    if (this.#closed) {
      acker?.ack(bytes);
      return;
    }
    this.#received++;
    this.#lastMessageAt = this.#lastArrivalAt = arrivedAt;
    const handler = this.#handler;
    if (handler !== undefined) {
      let r: void | Promise<void>;
      try {
        r = handler(msg, info);
      } catch (err) {
        acker?.ack(bytes);
        this.#handlerFailed(err);
        return;
      }
      if (r !== undefined && typeof r.then === "function") {
        r.then(
          () => acker?.ack(bytes),
          (err: unknown) => {
            acker?.ack(bytes);
            this.#handlerFailed(err);
          },
        );
      } else {
        acker?.ack(bytes);
      }
      return;
    }
    const w = this.#waiter;
    if (w !== null) {
      this.#waiter = null;
      acker?.ack(bytes);
      w({ value: { msg, info }, done: false });
      return;
    }
    const pending = this.#queue.length - this.#head;
    if (this.overflow === "block") {
      // Credit bounds what can arrive, so the queue stays bounded; the ack waits for the reader.
      this.#queue.push({ msg, info, acker, bytes });
      return;
    }
    acker?.ack(bytes);
    if (pending >= this.queueSize) {
      this.#dropped++;
      if (this.overflow === "drop-newest") return;
      this.#queue[this.#head] = undefined as never;
      this.#head++;
    }
    this.#queue.push({ msg, info, acker: null, bytes });
    this.#compact();
  }

  /** @internal Counts messages a publisher's sequence shows were lost. */
  countLost(n: number): void {
    this.#dropped += n;
  }

  /** @internal Counts and reports a message that failed to decode or validate. */
  rejectInvalid(err: Error): void {
    this.#invalid++;
    if (this.listenerCount("invalid") > 0) this.emit("invalid", err);
    else if (this.#invalid === 1 || this.#invalid % 1000 === 0) {
      console.error(`myelin: dropped invalid message #${this.#invalid} on ${this.topic}: ${err.message}`);
    }
  }

  /** @internal Reports a publisher's liveliness change. */
  livelinessChanged(publisher: string, alive: boolean): void {
    this.emit("liveliness", { publisher, alive });
  }

  /** @internal The publisher refused the subscription. */
  refuse(err: Error): void {
    if (this.listenerCount("refused") > 0) this.emit("refused", err);
    else console.error(`myelin: subscription to ${this.topic} refused: ${err.message}`);
  }

  /** Reads messages in order; ends when the subscription is closed. */
  [Symbol.asyncIterator](): AsyncIterator<Received<T>> {
    return {
      next: () => {
        if (this.#head < this.#queue.length) {
          const e = this.#queue[this.#head]!;
          this.#queue[this.#head] = undefined as never;
          this.#head++;
          this.#compact();
          e.acker?.ack(e.bytes);
          return Promise.resolve({ value: { msg: e.msg, info: e.info }, done: false });
        }
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /** Stops the subscription; a pending `for await` ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#deadlineTimer) clearInterval(this.#deadlineTimer);
    for (let i = this.#head; i < this.#queue.length; i++) this.#queue[i]?.acker?.ack(this.#queue[i]!.bytes);
    this.#queue = [];
    this.#head = 0;
    const w = this.#waiter;
    this.#waiter = null;
    w?.({ value: undefined, done: true });
    this.#onClose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** @internal */
  assertOpen(): void {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `subscription to ${this.topic} is closed`);
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #handlerFailed(err: unknown): void {
    console.error(`myelin: subscription callback for ${this.topic} threw:`, err);
  }

  #checkDeadline(): void {
    if (Date.now() - this.#lastMessageAt > this.qos.deadlineMs) {
      this.#deadlinesMissed++;
      this.#lastMessageAt = Date.now();
      this.emit("deadline", { missed: this.#deadlinesMissed });
    }
  }
}
