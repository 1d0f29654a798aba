/**
 * One connected Foxglove client: its WebSocket, its bounded {@link Outbox}, its subscriptions
 * (with their rate gates), the channels it advertised for publishing, the parameters and graph it
 * watches, and its counters for `myelin foxglove status`. Drops are reported to the client as a
 * warning status, at most once a second per topic, naming the topic, how many and what to do.
 */
import type { WebSocket } from "ws";
import type { ClientChannel, ServerMessage } from "@foxglove/ws-protocol";
import type { MessageType } from "../msgs/index.js";
import type { GraphState } from "./connection-graph.js";
import { Outbox, type OutboxLimits } from "./outbox.js";
import { messageDataHeader, STATUS_LEVEL } from "./protocol.js";
import { RateGate } from "./rate-cap.js";

/** A subscription of a client. */
export interface ClientSubscription {
  id: number;
  channelId: number;
  topic: string;
  gate: RateGate | undefined;
  /** Messages the rate cap held back. */
  throttled: number;
}

/** A channel a client advertised, to publish on. */
export interface ClientAdvertisement {
  channel: ClientChannel;
  /** The Myelin type messages are checked against. */
  type: MessageType<unknown>;
  published: number;
  refused: number;
}

/** What `myelin foxglove status` shows of a subscription. */
export interface SubscriptionStatus {
  topic: string;
  channelId: number;
  subscriptionId: number;
  maxHz: number | null;
  sent: number;
  sentBytes: number;
  dropped: number;
  droppedBytes: number;
  throttled: number;
  queued: number;
  queuedBytes: number;
}

/** What `myelin foxglove status` shows of a client. */
export interface ClientStatus {
  id: number;
  address: string;
  subprotocol: string;
  connectedAt: number;
  budgetBytes: number;
  queuedBytes: number;
  inFlightBytes: number;
  controlQueuedBytes: number;
  dropped: number;
  droppedBytes: number;
  subscriptions: SubscriptionStatus[];
  /** Drops of topics the client no longer subscribes to are kept here. */
  pastDrops: Record<string, { dropped: number; droppedBytes: number }>;
  publishing: { topic: string; type: string; published: number; refused: number }[];
  serviceCalls: number;
  serviceCallsFailed: number;
  statusSent: number;
}

/** Options of a session. */
export interface SessionOptions {
  id: number;
  ws: WebSocket;
  address: string;
  subprotocol: string;
  limits: OutboxLimits;
  /** Called when the client is too slow for its control messages; the session closes it. */
  log: (line: string) => void;
}

/** A connected client. */
export class Session {
  readonly id: number;
  readonly ws: WebSocket;
  readonly address: string;
  readonly subprotocol: string;
  readonly connectedAt = Date.now();
  readonly budgetBytes: number;
  readonly outbox: Outbox;
  /** Subscriptions by subscription id, and by channel id. */
  readonly subs = new Map<number, ClientSubscription>();
  readonly subsByChannel = new Map<number, ClientSubscription>();
  readonly adverts = new Map<number, ClientAdvertisement>();
  /** Watched parameter names; `all` watches every parameter. */
  readonly watchedParams = new Set<string>();
  watchAllParams = false;
  /** What was last sent of the connection graph, when watching it. */
  graph: GraphState | undefined;
  watchesGraph = false;
  serviceCallsRunning = 0;
  serviceCalls = 0;
  serviceCallsFailed = 0;
  statusSent = 0;
  alive = true;
  closed = false;
  readonly #pendingDrops = new Map<string, { count: number; bytes: number }>();
  readonly #pastDrops: Record<string, { dropped: number; droppedBytes: number }> = {};
  #dropTimer: NodeJS.Timeout | undefined;
  readonly #log: (line: string) => void;

  constructor(opts: SessionOptions) {
    this.id = opts.id;
    this.ws = opts.ws;
    this.address = opts.address;
    this.subprotocol = opts.subprotocol;
    this.budgetBytes = opts.limits.budgetBytes;
    this.#log = opts.log;
    this.outbox = new Outbox(
      {
        send: (frames, done) => {
          if (this.ws.readyState !== this.ws.OPEN) {
            done();
            return;
          }
          if (frames.length === 1) {
            const f = frames[0]!;
            this.ws.send(f, { binary: typeof f !== "string" }, () => done());
            return;
          }
          // Header and payload as two fragments of one message: the payload is never copied.
          for (let i = 0; i < frames.length - 1; i++) this.ws.send(frames[i]!, { binary: true, fin: false });
          this.ws.send(frames[frames.length - 1]!, { binary: true, fin: true }, () => done());
        },
      },
      opts.limits,
      {
        onDrop: (topic, count, bytes) => this.#dropped(topic, count, bytes),
        onOverflow: (queued) => {
          this.#log(
            `foxglove: client ${this.id} (${this.address}) closed: it does not read (${queued} bytes of control messages waiting)`,
          );
          this.close(1008, "too slow: the client does not read what the server sends");
        },
      },
    );
  }

  /** Queues a JSON op. */
  send(msg: ServerMessage): void {
    if (msg.op === "status") this.statusSent++;
    this.outbox.control(JSON.stringify(msg));
  }

  /** Queues a status message (0 info, 1 warning, 2 error). */
  status(level: 0 | 1 | 2, message: string, id?: string): void {
    this.send(id === undefined ? { op: "status", level, message } : { op: "status", level, message, id });
  }

  /** Offers one message of a subscribed channel; the rate cap and the budget decide. */
  deliver(sub: ClientSubscription, payload: Uint8Array, timestampNs: bigint, nowMs: number): void {
    if (sub.gate !== undefined && !sub.gate.take(nowMs)) {
      sub.throttled++;
      return;
    }
    const header = messageDataHeader(sub.id, timestampNs);
    this.outbox.data(sub.topic, [header, payload], header.byteLength + payload.byteLength);
  }

  /** Forgets a subscription (its queued messages go, its drop counts stay in the status). */
  unsubscribe(sub: ClientSubscription): void {
    this.subs.delete(sub.id);
    this.subsByChannel.delete(sub.channelId);
    const st = this.outbox.stats().keys[sub.topic];
    if (st !== undefined && st.dropped > 0) {
      const past = (this.#pastDrops[sub.topic] ??= { dropped: 0, droppedBytes: 0 });
      past.dropped += st.dropped;
      past.droppedBytes += st.droppedBytes;
    }
    this.outbox.removeKey(sub.topic);
  }

  #dropped(topic: string, count: number, bytes: number): void {
    const d = this.#pendingDrops.get(topic) ?? { count: 0, bytes: 0 };
    d.count += count;
    d.bytes += bytes;
    this.#pendingDrops.set(topic, d);
    if (this.#dropTimer !== undefined) return;
    this.#reportDrops();
    // Further drops within the second are summed up in one status per topic.
    this.#dropTimer = setInterval(() => {
      if (this.#pendingDrops.size === 0) {
        clearInterval(this.#dropTimer);
        this.#dropTimer = undefined;
        return;
      }
      this.#reportDrops();
    }, 1000);
    this.#dropTimer.unref();
  }

  #reportDrops(): void {
    for (const [topic, d] of this.#pendingDrops) {
      this.status(
        STATUS_LEVEL.WARNING,
        `dropped ${d.count} message(s) of ${topic} (${d.bytes} bytes), the oldest first: this client reads slower than ` +
          `the topic is published and its send budget (${this.budgetBytes} bytes) is full; lower the rate ` +
          `(connect with ?maxHz=${topic}:5) or subscribe to fewer topics`,
        `myelin.dropped:${topic}`,
      );
    }
    this.#pendingDrops.clear();
  }

  /** Closes the connection (once) and drops what was queued. */
  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#dropTimer !== undefined) clearInterval(this.#dropTimer);
    this.outbox.close();
    if (code === 1008) this.ws.terminate();
    else this.ws.close(code, reason);
  }

  /** The status of this client now. */
  statusNow(): ClientStatus {
    const ob = this.outbox.stats();
    let dropped = 0;
    let droppedBytes = 0;
    for (const k of Object.values(ob.keys)) {
      dropped += k.dropped;
      droppedBytes += k.droppedBytes;
    }
    for (const p of Object.values(this.#pastDrops)) {
      dropped += p.dropped;
      droppedBytes += p.droppedBytes;
    }
    return {
      id: this.id,
      address: this.address,
      subprotocol: this.subprotocol,
      connectedAt: this.connectedAt,
      budgetBytes: this.budgetBytes,
      queuedBytes: ob.queuedBytes,
      inFlightBytes: ob.inFlightBytes,
      controlQueuedBytes: ob.controlQueuedBytes,
      dropped,
      droppedBytes,
      subscriptions: [...this.subs.values()].map((s) => {
        const k = ob.keys[s.topic];
        return {
          topic: s.topic,
          channelId: s.channelId,
          subscriptionId: s.id,
          maxHz: s.gate?.hz ?? null,
          sent: k?.sent ?? 0,
          sentBytes: k?.sentBytes ?? 0,
          dropped: k?.dropped ?? 0,
          droppedBytes: k?.droppedBytes ?? 0,
          throttled: s.throttled,
          queued: k?.queued ?? 0,
          queuedBytes: k?.queuedBytes ?? 0,
        };
      }),
      pastDrops: { ...this.#pastDrops },
      publishing: [...this.adverts.values()].map((a) => ({
        topic: a.channel.topic,
        type: a.type.name,
        published: a.published,
        refused: a.refused,
      })),
      serviceCalls: this.serviceCalls,
      serviceCallsFailed: this.serviceCallsFailed,
      statusSent: this.statusSent,
    };
  }
}
