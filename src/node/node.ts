/**
 * A node: the unit that publishes, subscribes, serves and calls. Each node binds one data
 * socket (ZeroMQ ROUTER) that its subscribers and clients connect to, keeps one link (DEALER)
 * per remote node it talks to, and registers with the hub, which tells it where everything is.
 * Nodes in one process deliver to each other by a function call.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import {
  ClosedError,
  DecodeError,
  isErrorCode,
  MyelinError,
  myelinError,
  ServiceError,
  TimeoutError,
  TypeMismatchError,
  ValidationError,
} from "../errors.js";
import { lookupType, myelin_msgs, type MessageType, type ServiceType } from "../msgs/index.js";
import { decodeCompiled, decodeFrames, encodeFrames, MISMATCH, msgpackCodec } from "../codec/index.js";
import {
  DataServer,
  type PeerInfo,
  type RemoteSubscriber,
  type ReplyResult,
} from "../transport/data-server.js";
import { PeerLink, type RecordSink } from "../transport/peer-link.js";
import type { ErrorBody, RecordHeader, RequestHeader, SubBody } from "../transport/frame.js";
import { InprocRegistry } from "../transport/inproc.js";
import { ensureRuntimeDir, hubEndpoint, replicaNodeName, runtimeDir } from "./config.js";
import type { GraphSnapshot, NodeRecord, Refusal, TopicDecl } from "./control-protocol.js";
import { HubClient } from "./hub-client.js";
import { DurableConsumer, type DurableConsumerOptions } from "./durable-consumer.js";
import { Parameter, type ParameterKind, type ParameterSpec } from "./parameter.js";
import { Publisher } from "./publisher.js";
import { resolveQos, type Qos } from "./qos.js";
import type { AttemptOutcome } from "./balancer.js";
import {
  ServiceClient,
  ServiceServer,
  type CallPlan,
  type CallRouter,
  type ClientOptions,
  type ServiceHandler,
  type ServiceOptions,
} from "./service.js";
import { Subscription, type Acker, type MessageHandler, type Overflow } from "./subscription.js";

/** A random id of this process; nodes with the same one deliver to each other in memory. */
export const PROCESS_ID = randomBytes(6).toString("hex");

const inproc = new InprocRegistry<
  Publisher<unknown>,
  Subscription<unknown>,
  ServiceServer<unknown, unknown>
>();

/** Options of a node; every field but `name` has a default (see NODE_DEFAULTS). */
export interface NodeOptions {
  /** Node name, shown by `myelin node list`. Names starting with `_` are hidden (tools). */
  name: string;
  /** Hub address (default: `MYELIN_HUB`, else the runtime directory's socket). */
  hub?: string;
  /** Runtime directory for ipc sockets (default: `MYELIN_RUNTIME_DIR`, `$XDG_RUNTIME_DIR/myelin`, `/tmp/myelin-<uid>`). */
  runtimeDir?: string;
  /**
   * Where this node's data socket binds: `ipc` (default, one host), or `tcp://HOST:PORT`
   * (PORT 0 picks a free one). Env `MYELIN_DATA_ENDPOINT` sets the default.
   */
  dataEndpoint?: string;
  /** Host name or address other hosts use to reach a tcp data socket bound to 0.0.0.0. */
  advertiseHost?: string;
  /** Heartbeat interval towards the hub, in ms. */
  heartbeatMs?: number;
  /** Largest message this node sends or accepts, in bytes. */
  maxMessageBytes?: number;
  /** Binary fields at least this large travel as separate frames, without copies, in bytes. */
  blobThreshold?: number;
  /** How long a create call waits for the hub to confirm, in ms (only when a hub is connected). */
  registerTimeoutMs?: number;
  /** Initial parameter values; they override declared defaults. */
  parameters?: Record<string, unknown>;
  /**
   * Start not ready, and say when with `setReady(true)` (default false: ready once created).
   * Readiness is on the graph; a supervisor waits for it before starting dependent nodes.
   */
  manualReady?: boolean;
}

/** Defaults of NodeOptions. */
export const NODE_DEFAULTS = {
  heartbeatMs: 500,
  maxMessageBytes: 64 * 1024 * 1024,
  blobThreshold: 16 * 1024,
  registerTimeoutMs: 2000,
} as const;

/** Options of createPublisher. */
export interface PublisherOptions {
  qos?: Partial<Qos>;
  /** A reliable subscriber this many messages behind makes publish() wait (default 1024). */
  maxPending?: number;
  /** A reliable subscriber this many bytes behind makes publish() wait (default 8 MiB). */
  maxPendingBytes?: number;
  /** Check every message against the type before sending (default true). */
  validate?: boolean;
}

/** Options of createSubscription. */
export interface SubscriptionOptions {
  qos?: Partial<Qos>;
  /** Queue size for `for await` reading (default max(depth, 100)). */
  queueSize?: number;
  /** Queue overflow policy (default: `block` for reliable, `drop-oldest` for best-effort). */
  overflow?: Overflow;
  /** Validate each message from another process against the schema (default true). */
  validate?: boolean;
  /**
   * Queue group: subscriptions (in any process) that join a topic with the same group name
   * share its messages, each message going to one of them; see docs/services.md for what is
   * guaranteed when a member dies. Letters, digits, `_`, `-`, `.`; default none.
   */
  group?: string;
  /**
   * How far each remote publisher may run ahead of this subscription: messages and bytes sent and not
   * yet consumed (its credit). Past it, a reliable publisher waits and a best-effort one drops (counted).
   * Default 16,384 messages and 32 MiB (1,024 messages in a queue group; an iterator that blocks uses
   * its queue size). A recorder that must ride out pauses of its disk or CPU asks for more.
   */
  window?: { messages?: number; bytes?: number };
}

export type { ClientOptions, ServiceOptions } from "./service.js";

/** Events of a node. */
export interface NodeEvents {
  /** The graph changed. */
  graph: [GraphSnapshot];
  /** Something went wrong outside any call (bad frame from a peer, hub refused a declaration). */
  warning: [Error];
}

const TOPIC_RE = /^(\/[A-Za-z0-9_.~-]+)+$/;

function resolveName(name: string, what: string): string {
  const n = name.startsWith("/") ? name : `/${name}`;
  if (!TOPIC_RE.test(n)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what} name '${name}' is not valid: use segments of letters, digits, '_', '-', '.' separated by '/', e.g. /camera/front/image`,
    );
  }
  return n;
}

/** How long a persistent publish waits for a store that answered before to come back (hub restart). */
const STORE_RESTART_WAIT_MS = 10000;
/**
 * The name of a node of a supervised process: replica 0 keeps the spec's name, replica N > 0 of
 * a node the spec names becomes `<name>.N`, so every replica can be addressed
 * (`myelin param set camera.1 fps 5`). The supervisor sets MYELIN_NODE_NAME and MYELIN_REPLICA.
 */
function replicaName(name: string): string {
  const replica = Number(process.env["MYELIN_REPLICA"] ?? "0");
  if (!Number.isInteger(replica) || replica <= 0) return name;
  const specNodes = (process.env["MYELIN_NODE_NAME"] ?? "").split(",");
  return specNodes.includes(name) ? replicaNodeName(name, replica) : name;
}

const CREDIT_MSGS = 16384;
const GROUP_CREDIT_MSGS = 1024;
const CREDIT_BYTES = 32 * 1024 * 1024;

/**
 * One publisher node feeding one subscription, over a link.
 *
 * A queue-group member (`grouped`) credits the publisher only for a contiguous prefix of the
 * messages it received (a handler that finishes early waits for the earlier ones), and does so
 * at the end of each event-loop turn rather than per quarter window: the publisher's count of
 * uncredited messages is then exactly the messages not consumed yet, which it sends to another
 * member if this one goes away.
 */
class RemoteSource implements RecordSink, Acker {
  sid = 0;
  alive = true;
  #consumedMsgs = 0;
  #consumedBytes = 0;
  readonly #lastSeq = new Map<number, number>();
  readonly #names = new Map<number, string>();
  /** Group members: index of the message being handled, of the next one, and of the first unconsumed. */
  #cur = 0;
  #nextIdx = 0;
  #doneIdx = 0;
  /** Group members: consumed out of order (index → bytes), waiting for the ones before. */
  readonly #early = new Map<number, number>();
  #flushScheduled = false;

  constructor(
    readonly sub: Subscription<unknown>,
    readonly type: MessageType<unknown> | undefined,
    readonly validate: boolean,
    readonly link: PeerLink,
    readonly publisherNode: string,
    readonly publisherName: string,
    readonly windowMsgs: number,
    readonly windowBytes: number,
    readonly grouped = false,
  ) {}

  ack(bytes: number): void {
    if (this.grouped) {
      this.#ackAt(this.#cur, bytes);
      return;
    }
    this.#consumedMsgs++;
    this.#consumedBytes += bytes;
    if (this.#consumedMsgs * 4 >= this.windowMsgs || this.#consumedBytes * 4 >= this.windowBytes) {
      this.link.credit(this.sid, this.#consumedMsgs, this.#consumedBytes);
      this.#consumedMsgs = 0;
      this.#consumedBytes = 0;
    }
  }

  #ackAt(i: number, bytes: number): void {
    if (i !== this.#doneIdx) {
      this.#early.set(i, bytes);
      return;
    }
    let msgs = 1;
    let total = bytes;
    this.#doneIdx++;
    for (let b = this.#early.get(this.#doneIdx); b !== undefined; b = this.#early.get(this.#doneIdx)) {
      this.#early.delete(this.#doneIdx);
      this.#doneIdx++;
      msgs++;
      total += b;
    }
    this.#consumedMsgs += msgs;
    this.#consumedBytes += total;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#consumedMsgs === 0) return;
      this.link.credit(this.sid, this.#consumedMsgs, this.#consumedBytes);
      this.#consumedMsgs = 0;
      this.#consumedBytes = 0;
    });
  }

  onRecord(pub: number, seq: number, sec: number, nsec: number, payload: Buffer): void {
    if (this.grouped) this.#cur = this.#nextIdx++;
    else if (!this.#sequence(pub, seq)) {
      this.ack(payload.length);
      return;
    }
    if (this.validate && this.type !== undefined) {
      // One pass that decodes and validates; anything unusual takes the generic path below,
      // which also names what is wrong.
      const fast = decodeCompiled(this.type, payload);
      if (fast !== MISMATCH) {
        this.#deliver(fast, pub, seq, sec, nsec, payload.length);
        return;
      }
    }
    let msg: unknown;
    try {
      msg = msgpackCodec.decode(payload);
    } catch (err) {
      this.#invalid(err, payload.length);
      return;
    }
    this.#accept(msg, pub, seq, sec, nsec, payload.length);
  }

  onBlob(h: RecordHeader, parts: Buffer[]): void {
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    if (this.grouped) this.#cur = this.#nextIdx++;
    else if (!this.#sequence(h.pub, h.seq)) {
      this.ack(bytes);
      return;
    }
    let msg: unknown;
    try {
      msg = decodeFrames(parts);
    } catch (err) {
      this.#invalid(err, bytes);
      return;
    }
    this.#accept(msg, h.pub, h.seq, h.sec, h.nsec, bytes);
  }

  onRefused(err: ErrorBody): void {
    const e =
      err.code === "ERR_TYPE_MISMATCH"
        ? new TypeMismatchError("ERR_TYPE_MISMATCH", err.message)
        : new MyelinError(
            err.code === "ERR_UNKNOWN_TOPIC" ? "ERR_UNKNOWN_TOPIC" : "ERR_PROTOCOL",
            err.message,
          );
    this.sid = 0;
    if (err.code !== "ERR_UNKNOWN_TOPIC") this.sub.refuse(e);
  }

  /** Returns false for a repeat (already delivered); counts gaps as lost. */
  #sequence(pub: number, seq: number): boolean {
    const last = this.#lastSeq.get(pub) ?? 0;
    if (seq <= last) return false;
    if (last > 0 && seq > last + 1) this.sub.countLost(seq - last - 1);
    this.#lastSeq.set(pub, seq);
    return true;
  }

  #accept(msg: unknown, pub: number, seq: number, sec: number, nsec: number, bytes: number): void {
    if (this.validate && this.type !== undefined) {
      const r = this.type.validate(msg);
      if (!r.ok) {
        const detail = r.errors.map((e) => `${e.path || "(message)"}: ${e.reason}`).join("; ");
        this.#invalid(
          new ValidationError(
            "ERR_VALIDATION",
            `message on ${this.sub.topic} from ${this.publisherName} is not a valid ${this.type.name}: ${detail}`,
          ),
          bytes,
        );
        return;
      }
    }
    this.#deliver(msg, pub, seq, sec, nsec, bytes);
  }

  #deliver(msg: unknown, pub: number, seq: number, sec: number, nsec: number, bytes: number): void {
    let name = this.#names.get(pub);
    if (name === undefined) this.#names.set(pub, (name = `${this.publisherName}#${pub}`));
    const info = { seq, publisher: name, sourceTime: { sec, nanosec: nsec }, bytes };
    if (this.grouped) {
      const i = this.#cur;
      this.sub.deliver(msg, info, { ack: (b) => this.#ackAt(i, b) }, bytes);
      return;
    }
    this.sub.deliver(msg, info, this, bytes);
  }

  #invalid(err: unknown, bytes: number): void {
    this.ack(bytes);
    const e = err instanceof Error ? err : new Error(String(err));
    const msg =
      e instanceof ValidationError
        ? e.message
        : `message on ${this.sub.topic} from ${this.publisherName} could not be decoded: ${e.message}`;
    this.sub.rejectInvalid(
      e instanceof ValidationError ? e : new DecodeError("ERR_DECODE", msg, { cause: e }),
    );
  }
}

interface SubState {
  sub: Subscription<unknown>;
  /** Read with for-await (the queue bounds the credit window) rather than a callback. */
  iterator: boolean;
  type: MessageType<unknown> | undefined;
  validate: boolean;
  /** Credit window asked for with `window`, if any. */
  window: { messages?: number; bytes?: number } | undefined;
  sources: Map<string, RemoteSource>;
}

/**
 * The `window` option of a subscription, checked: whole numbers from 1 to 2^31 - 1.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the subscription and the bad value
 */
function checkWindow(
  w: SubscriptionOptions["window"],
  topic: string,
): { messages?: number; bytes?: number } | undefined {
  if (w === undefined) return undefined;
  for (const [k, v] of Object.entries(w)) {
    if ((k !== "messages" && k !== "bytes") || !Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `subscription to ${topic}: window.${k} must be a whole number from 1 to 2147483647, got ${String(v)}`,
      );
    }
  }
  return { ...w };
}

/** Creates a node, binds its data socket and registers it with the hub (if one runs). */
export async function createNode(opts: NodeOptions): Promise<Node> {
  const node = new Node(opts);
  await node.start();
  return node;
}

/** A Myelin node. Create with `createNode()`. */
export class Node extends EventEmitter<NodeEvents> implements CallRouter {
  /** Node name. */
  readonly name: string;
  /** Unique id of this node instance. */
  readonly id: string;
  readonly #opts: NodeOptions & typeof NODE_DEFAULTS;
  readonly #runtimeDir: string;
  #server!: DataServer;
  #hub!: HubClient;
  readonly #startedAt = Date.now();
  readonly #publishers = new Set<Publisher<unknown>>();
  readonly #subs = new Map<Subscription<unknown>, SubState>();
  readonly #services = new Map<string, ServiceServer<unknown, unknown>>();
  readonly #params = new Map<string, Parameter>();
  readonly #links = new Map<string, PeerLink>();
  #graph: GraphSnapshot | undefined;
  #graphWaiters: (() => void)[] = [];
  readonly #durables = new Set<DurableConsumer<unknown>>();
  readonly #storeBatches = new Map<
    string,
    {
      type: string;
      payloads: Uint8Array[];
      /** One per payload ("" for none), or null while no payload of the batch has an id. */
      ids: string[] | null;
      waiters: { resolve: () => void; reject: (e: unknown) => void }[];
    }
  >();
  /** A store answered an append of this node (so its absence now means it is restarting). */
  #storeSeen = false;
  #storeClient:
    | ServiceClient<
        { topic: string; type: string; payloads: Uint8Array[]; msg_ids: string[] },
        { first_seq: number; count: number; seqs: number[]; duplicates: number }
      >
    | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #ipcPath = "";
  #closed = false;
  #ready: boolean;

  /** @internal use createNode() */
  constructor(opts: NodeOptions) {
    super();
    if (typeof opts?.name !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(opts.name)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `node name ${JSON.stringify(opts?.name)} is not valid: use letters, digits, '_', '-', '.', starting with a letter or '_'`,
      );
    }
    this.#opts = { ...NODE_DEFAULTS, ...opts } as NodeOptions & typeof NODE_DEFAULTS;
    this.name = replicaName(opts.name);
    this.id = `${opts.name}-${randomBytes(4).toString("hex")}`;
    this.#runtimeDir = runtimeDir(opts.runtimeDir);
    this.#ready = opts.manualReady !== true;
  }

  /** @internal */
  async start(): Promise<void> {
    const requested = this.#opts.dataEndpoint ?? process.env["MYELIN_DATA_ENDPOINT"] ?? "ipc";
    let endpoint = requested;
    if (requested === "ipc") {
      ensureRuntimeDir(this.#runtimeDir);
      this.#ipcPath = join(this.#runtimeDir, `n-${this.id}.sock`);
      endpoint = `ipc://${this.#ipcPath}`;
    }
    this.#server = await DataServer.bind(
      { endpoint, maxMessageBytes: this.#opts.maxMessageBytes },
      {
        onSubscribe: (r) => this.#onRemoteSubscribe(r),
        onUnsubscribe: (r) => {
          for (const p of this.#publishers) if (p.removeRemote(r)) p.matched();
        },
        onRequest: (peer, h, parts) => this.#onRequest(peer, h, parts),
        onBadFrame: (peer, err) =>
          this.emit(
            "warning",
            new MyelinError(
              "ERR_PROTOCOL",
              `dropped a bad frame from ${peer.node || "an unknown peer"}: ${err.message}`,
              { cause: err },
            ),
          ),
      },
    );
    this.#hub = new HubClient({
      endpoint: hubEndpoint({ hub: this.#opts.hub, runtimeDir: this.#opts.runtimeDir }),
      heartbeatMs: this.#opts.heartbeatMs,
      record: () => this.#record(),
      onGraph: (g) => this.#onGraph(g),
      onRefused: (rs) => {
        for (const r of rs) this.emit("warning", new TypeMismatchError("ERR_TYPE_MISMATCH", r.message));
      },
      onBadMessage: (err) => this.emit("warning", err),
    });
    this.#livenessTimer = setInterval(() => this.#checkLiveliness(), 250);
    this.#livenessTimer.unref();
    // Give a running hub the chance to answer, so the node is registered and the first graph is
    // here when we return. A hub socket in the runtime directory means one probably runs: wait for
    // it longer than when there is none (a node may start before its hub).
    const hubSock = hubEndpoint({ hub: this.#opts.hub, runtimeDir: this.#opts.runtimeDir });
    const likely = !hubSock.startsWith("ipc://") || existsSync(hubSock.slice("ipc://".length));
    await this.#hub.register(likely ? this.#opts.registerTimeoutMs : 300);
  }

  /** True if the node said it is ready (see `manualReady`). */
  get ready(): boolean {
    return this.#ready;
  }

  /** Reports readiness to the hub (shown on the graph; a supervisor waits for it). */
  setReady(ready: boolean): void {
    if (ready === this.#ready) return;
    this.#ready = ready;
    this.#reregister();
  }

  /** The endpoint of this node's data socket. */
  get endpoint(): string {
    return this.#advertised();
  }

  /** True if the hub answered recently. */
  get hubConnected(): boolean {
    return this.#hub.connected;
  }

  /** The last graph the hub sent, if any. */
  graph(): GraphSnapshot | undefined {
    return this.#graph;
  }

  /** Asks the hub for the current graph. @throws ERR_HUB_UNREACHABLE after `timeoutMs` */
  queryGraph(timeoutMs = 2000): Promise<GraphSnapshot> {
    return this.#hub.query(timeoutMs);
  }

  /** Resolves when a graph satisfying `pred` arrived, or rejects with ERR_TIMEOUT. */
  waitForGraph(pred: (g: GraphSnapshot) => boolean, timeoutMs: number): Promise<GraphSnapshot> {
    if (this.#graph !== undefined && pred(this.#graph)) return Promise.resolve(this.#graph);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("graph", on);
        reject(
          new TimeoutError(
            "ERR_TIMEOUT",
            `node ${this.name}: the awaited graph state did not come within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const on = (g: GraphSnapshot): void => {
        if (!pred(g)) return;
        clearTimeout(timer);
        this.off("graph", on);
        resolve(g);
      };
      this.on("graph", on);
    });
  }

  /**
   * Creates a publisher of `topic` with message type `type`.
   * @throws TypeMismatchError ERR_TYPE_MISMATCH if the topic has another type (the message names both)
   */
  async createPublisher<T>(
    topic: string,
    type: MessageType<T>,
    opts: PublisherOptions = {},
  ): Promise<Publisher<T>> {
    this.#check();
    const name = resolveName(topic, "topic");
    const qos = resolveQos(opts.qos, `publisher of ${name}`);
    this.#checkLocalType(name, type.name);
    const pub: Publisher<T> = new Publisher(name, type, qos, {
      index: this.#publishers.size + 1,
      nodeName: this.name,
      server: this.#server,
      maxMessageBytes: this.#opts.maxMessageBytes,
      blobThreshold: this.#opts.blobThreshold,
      maxPending: opts.maxPending ?? 1024,
      maxPendingBytes: opts.maxPendingBytes ?? 8 * 1024 * 1024,
      validate: opts.validate ?? true,
      persist:
        qos.durability === "persistent"
          ? (payload, msgId) => this.#persist(name, type.name, payload, msgId)
          : undefined,
      localSubs: () => inproc.subscriptions(name),
      onClose: () => {
        this.#publishers.delete(pub as Publisher<unknown>);
        inproc.removePublisher(name, pub as Publisher<unknown>);
        this.#reregister();
      },
    });
    this.#publishers.add(pub as Publisher<unknown>);
    inproc.addPublisher(name, pub as Publisher<unknown>);
    const refused = await this.#register();
    const r = refused.find((x) => x.kind === "pub" && x.name === name);
    if (r !== undefined) {
      pub.close();
      throw new TypeMismatchError("ERR_TYPE_MISMATCH", r.message);
    }
    return pub;
  }

  /**
   * Subscribes to `topic`. With a handler, messages go to it; without, read them with
   * `for await (const { msg, info } of sub)`. `type` may be a type name (for tools), in which
   * case messages are validated only if the name is in the type registry.
   * @throws TypeMismatchError ERR_TYPE_MISMATCH if the topic has another type
   */
  async createSubscription<T>(
    topic: string,
    type: MessageType<T> | string,
    handler?: MessageHandler<T>,
    opts: SubscriptionOptions = {},
  ): Promise<Subscription<T>> {
    this.#check();
    const name = resolveName(topic, "topic");
    const qos = resolveQos(opts.qos, `subscription to ${name}`);
    const typeObj = typeof type === "string" ? (lookupType(type) as MessageType<T> | undefined) : type;
    const typeName = typeof type === "string" ? type : type.name;
    this.#checkLocalType(name, typeName);
    const overflow = opts.overflow ?? (qos.reliability === "reliable" ? "block" : "drop-oldest");
    const group = opts.group;
    if (group !== undefined && (typeof group !== "string" || !/^[A-Za-z0-9_.-]{1,128}$/.test(group))) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `subscription to ${name}: group ${JSON.stringify(group)} is not valid: use 1 to 128 letters, digits, '_', '-', '.'`,
      );
    }
    const sub: Subscription<T> = new Subscription<T>({
      topic: name,
      typeName,
      qos,
      queueSize: opts.queueSize ?? Math.max(qos.depth, 100),
      overflow,
      handler,
      onClose: () => this.#dropSubscription(sub as Subscription<unknown>),
      group,
    });
    const state: SubState = {
      sub: sub as Subscription<unknown>,
      iterator: handler === undefined,
      type: typeObj,
      validate: opts.validate ?? true,
      window: checkWindow(opts.window, name),
      sources: new Map(),
    };
    this.#subs.set(sub as Subscription<unknown>, state);
    inproc.addSubscription(name, sub as Subscription<unknown>);
    for (const p of inproc.publishers(name)) {
      if (group !== undefined) p.localGroupsChanged();
      p.matched();
    }
    if (qos.durability === "transient-local" && group === undefined) {
      for (const p of inproc.publishers(name))
        if (p.type.name === typeName) (p as Publisher<T>).replayLocal(sub, qos.depth);
    }
    const refused = await this.#register();
    const r = refused.find((x) => x.kind === "sub" && x.name === name);
    if (r !== undefined) {
      sub.close();
      throw new TypeMismatchError("ERR_TYPE_MISMATCH", r.message);
    }
    if (this.#graph !== undefined) this.#reconcile(state, this.#graph, false);
    return sub;
  }

  /**
   * Serves `name` with `handler`. Requests are validated against the request type; a handler
   * that throws replies with an error.
   * @throws TypeMismatchError ERR_TYPE_MISMATCH if the service exists with another type
   */
  async createService<Req, Res>(
    name: string,
    type: ServiceType<Req, Res>,
    handler: ServiceHandler<Req, Res>,
    opts: ServiceOptions = {},
  ): Promise<ServiceServer<Req, Res>> {
    this.#check();
    const n = resolveName(name, "service");
    if (this.#services.has(n)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `node ${this.name} already serves ${n}; close it first`);
    }
    if (opts.idempotent !== undefined && typeof opts.idempotent !== "boolean") {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `service ${n}: idempotent must be true or false`);
    }
    const srv: ServiceServer<Req, Res> = new ServiceServer(
      n,
      type,
      handler,
      () => {
        this.#services.delete(n);
        inproc.removeService(n, srv as ServiceServer<unknown, unknown>);
        this.#reregister();
      },
      opts.idempotent === true,
    );
    this.#services.set(n, srv as ServiceServer<unknown, unknown>);
    inproc.addService(n, srv as ServiceServer<unknown, unknown>);
    const refused = await this.#register();
    const r = refused.find((x) => x.kind === "service" && x.name === n);
    if (r !== undefined) {
      srv.close();
      throw new TypeMismatchError("ERR_TYPE_MISMATCH", r.message);
    }
    return srv;
  }

  /**
   * Reads the persistent topic `topic` as durable consumer `opts.name` (see DurableConsumer):
   * `for await (const m of consumer) { …; await m.ack(); }`. Needs a hub with a store
   * (`myelin hub --data-dir DIR`); until one answers, the consumer retries and emits `warning`.
   */
  createDurableConsumer<T>(
    topic: string,
    type: MessageType<T>,
    opts: DurableConsumerOptions,
  ): DurableConsumer<T> {
    this.#check();
    const name = resolveName(topic, "topic");
    const c = new DurableConsumer(
      name,
      type,
      opts,
      // The consumer handles store errors itself: no breaker turning them into ERR_UNAVAILABLE.
      (service, t) => this.createClient(service, t as ServiceType<never, never>, { breaker: false }),
      (err) => this.emit("warning", err),
    );
    this.#durables.add(c as DurableConsumer<unknown>);
    return c;
  }

  /** Creates a client of service `name`. */
  createClient<Req, Res>(
    name: string,
    type: ServiceType<Req, Res>,
    opts: ClientOptions = {},
  ): ServiceClient<Req, Res> {
    this.#check();
    return new ServiceClient(resolveName(name, "service"), type, opts, this);
  }

  /**
   * Declares a parameter; a value given in the `parameters` option overrides the default.
   * @throws MyelinError ERR_PARAMETER if the initial value has the wrong type
   */
  declareParameter<K extends ParameterKind>(name: string, spec: ParameterSpec<K>): Parameter<K> {
    if (this.#params.has(name))
      throw new MyelinError("ERR_PARAMETER", `parameter ${name} is already declared on node ${this.name}`);
    const p = new Parameter(name, spec, this.#opts.parameters?.[name], `node ${this.name}`);
    this.#params.set(name, p);
    if (this.#params.size === 1) this.#serveParameters();
    return p;
  }

  /** Serves `/<name>/list_parameters` and `/<name>/set_parameter` (myelin_msgs), for `myelin param`. */
  #serveParameters(): void {
    const list = this.createService(`/${this.name}/list_parameters`, myelin_msgs.ListParameters, () => {
      const ps = [...this.#params.values()];
      return {
        names: ps.map((p) => p.name),
        kinds: ps.map((p) => p.spec.type),
        values_json: ps.map((p) => JSON.stringify(p.value)),
        descriptions: ps.map((p) => p.spec.description ?? ""),
        descriptors: ps.map((p) => ({
          name: p.name,
          kind: p.spec.type,
          description: p.spec.description ?? "",
          read_only: p.spec.readOnly === true,
          ...(p.spec.min !== undefined ? { min: p.spec.min } : {}),
          ...(p.spec.max !== undefined ? { max: p.spec.max } : {}),
          default_json: JSON.stringify(p.spec.default),
        })),
      };
    });
    const set = this.createService(`/${this.name}/set_parameter`, myelin_msgs.SetParameter, (req) => {
      const p = this.#params.get(req.name);
      if (p === undefined) {
        return { success: false, reason: `node ${this.name} has no parameter ${req.name}`, value_json: "" };
      }
      let value: unknown;
      try {
        value = JSON.parse(req.value_json);
      } catch {
        return {
          success: false,
          reason: `value ${req.value_json} is not JSON`,
          value_json: JSON.stringify(p.value),
        };
      }
      try {
        p.set(value);
      } catch (err) {
        return { success: false, reason: (err as Error).message, value_json: JSON.stringify(p.value) };
      }
      return { success: true, reason: "", value_json: JSON.stringify(p.value) };
    });
    for (const pending of [list, set]) {
      pending.catch((err: unknown) =>
        this.emit(
          "warning",
          new MyelinError(
            "ERR_PARAMETER",
            `node ${this.name} cannot serve its parameters: ${(err as Error).message}`,
          ),
        ),
      );
    }
  }

  /**
   * Appends an encoded message of a persistent topic to the hub's store. Appends made in one
   * event-loop turn travel in one request and share the store's group commit.
   */
  #persist(topic: string, type: string, payload: Uint8Array, msgId: string | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let b = this.#storeBatches.get(topic);
      if (b === undefined) {
        b = { type, payloads: [], ids: null, waiters: [] };
        this.#storeBatches.set(topic, b);
        setImmediate(() => void this.#flushStore(topic));
      }
      if (msgId !== undefined && b.ids === null) b.ids = b.payloads.map(() => "");
      b.payloads.push(payload);
      b.ids?.push(msgId ?? "");
      b.waiters.push({ resolve, reject });
    });
  }

  async #flushStore(topic: string): Promise<void> {
    const b = this.#storeBatches.get(topic);
    if (b === undefined) return;
    this.#storeBatches.delete(topic);
    this.#storeClient ??= this.createClient("/_store/append", myelin_msgs.StoreAppend, {
      timeoutMs: 10000,
      breaker: false,
    });
    const client = this.#storeClient;
    // While the hub (and its store) restarts, a store that answered before is gone for a moment:
    // the append has not reached any store, so it is safe to wait for it and send it then.
    const deadline = Date.now() + STORE_RESTART_WAIT_MS;
    for (;;) {
      try {
        await client.call({ topic, type: b.type, payloads: b.payloads, msg_ids: b.ids ?? [] });
        this.#storeSeen = true;
        for (const w of b.waiters) w.resolve();
        return;
      } catch (err) {
        const noStore = err instanceof MyelinError && err.code === "ERR_NO_SERVER";
        if (noStore && this.#storeSeen && !this.#closed && Date.now() < deadline) {
          if (await client.waitForService(deadline - Date.now()).catch(() => false)) continue;
        }
        let e = err;
        if (noStore) {
          e = this.#storeSeen
            ? new ServiceError(
                "ERR_UNAVAILABLE",
                `persistent topic ${topic}: the store is restarting and was not back within ${STORE_RESTART_WAIT_MS} ms; the message was not stored, publish it again`,
                { cause: err },
              )
            : new ServiceError(
                "ERR_NO_SERVER",
                `persistent topic ${topic}: no store runs; start the hub with a data directory (\`myelin hub --data-dir DIR\`)`,
                { cause: err },
              );
        }
        for (const w of b.waiters) w.reject(e);
        return;
      }
    }
  }

  /** A declared parameter, or undefined. */
  parameter(name: string): Parameter | undefined {
    return this.#params.get(name);
  }

  /** All parameters and their values. */
  parameters(): Record<string, unknown> {
    return Object.fromEntries([...this.#params].map(([k, p]) => [k, p.value]));
  }

  /** Sets a declared parameter. @throws MyelinError ERR_PARAMETER if undeclared or of the wrong type */
  setParameter(name: string, value: unknown): void {
    const p = this.#params.get(name);
    if (p === undefined) {
      throw new MyelinError(
        "ERR_PARAMETER",
        `node ${this.name} has no parameter ${name}; declared: ${[...this.#params.keys()].join(", ") || "none"}`,
      );
    }
    p.set(value);
  }

  /** Closes everything the node opened and says goodbye to the hub. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#livenessTimer) clearInterval(this.#livenessTimer);
    await Promise.all([...this.#durables].map((c) => c.close()));
    for (const s of [...this.#subs.keys()]) s.close();
    for (const p of [...this.#publishers]) p.close();
    for (const s of [...this.#services.values()]) s.close();
    for (const l of this.#links.values()) l.close();
    this.#links.clear();
    await this.#server.close();
    await this.#hub.close();
    if (this.#ipcPath !== "") rmSync(this.#ipcPath, { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- CallRouter --------------------------------------------------------------------------

  /** @internal */
  async call(
    name: string,
    typeName: string,
    req: unknown,
    timeoutMs: number,
    plan: CallPlan,
  ): Promise<unknown> {
    const local = inproc.service(name);
    if (local !== undefined) {
      if (local.type.name !== typeName) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `service ${name} has type ${local.type.name}; the client used ${typeName}`,
        );
      }
      return this.#withTimeout(
        Promise.resolve(local.handler(req, { caller: this.id, timeoutMs })),
        name,
        timeoutMs,
        () => {},
      );
    }
    const deadline = Date.now() + timeoutMs;
    if (this.#graph === undefined) {
      await this.waitForGraph(() => true, timeoutMs).catch(() => undefined);
    }
    const tried = new Set<string>();
    let lastErr: Error | undefined;
    let retries = 0;
    plan.budget.deposit();
    for (;;) {
      const servers = this.#servers(name);
      if (servers.length === 0) {
        if (lastErr !== undefined) throw lastErr;
        // Fail after one turn of the event loop: a caller retrying in a loop must not starve
        // timers and I/O (the graph update that brings a server arrives through them).
        await new Promise((resolve) => setImmediate(resolve));
        const known = new Set<string>();
        for (const n of this.#graph?.nodes ?? []) for (const s of n.services) known.add(s.service);
        throw new ServiceError(
          "ERR_NO_SERVER",
          this.#graph === undefined
            ? `no node serves ${name}: no hub answered, so no server can be found; start one with \`myelin hub\``
            : `no node serves ${name}; services now: ${[...known].sort().join(", ") || "none"}`,
        );
      }
      const candidates = servers.map((n) => ({
        id: n.id,
        name: n.name,
        down: this.#links.get(n.endpoint)?.down === true,
      }));
      const now = Date.now();
      const pick = plan.balancer.pick(candidates, tried, now);
      if (!pick.ok) {
        if (lastErr !== undefined) throw lastErr;
        throw new ServiceError(
          "ERR_UNAVAILABLE",
          pick.reason === "open"
            ? `service ${name}: all ${servers.length} replica(s) failed repeatedly and their circuit breakers are open; the next try goes through in ${pick.retryInMs} ms`
            : `service ${name}: the links to all ${servers.length} replica(s) are down (their nodes stopped or crashed); start a server, or retry once the hub shows one`,
        );
      }
      const target = servers.find((n) => n.id === pick.id)!;
      const decl = target.services.find((s) => s.service === name)!;
      if (decl.type !== typeName) {
        plan.balancer.done(target.id, "cancelled", now);
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `service ${name} has type ${decl.type} (node ${target.name}); the client used ${typeName}`,
        );
      }
      const remaining = Math.max(1, deadline - now);
      const attemptMs = Math.max(1, Math.min(remaining, plan.attemptTimeoutMs ?? remaining));
      const r = await this.#attempt(
        target,
        name,
        typeName,
        req,
        attemptMs,
        attemptMs === remaining ? timeoutMs : attemptMs,
      );
      plan.balancer.done(target.id, r.outcome, Date.now());
      if (r.ok) return r.res;
      const err = r.err instanceof Error ? r.err : new Error(String(r.err));
      lastErr = err;
      tried.add(target.id);
      // ERR_NO_SERVER from the replica: it did not run the call, so repeating it is always safe.
      const notRun = err instanceof MyelinError && err.code === "ERR_NO_SERVER";
      const transient = notRun || r.outcome === "timeout" || r.outcome === "unreachable";
      const mayRepeat = notRun || (plan.idempotent ?? decl.idempotent === true);
      if (
        !transient ||
        !mayRepeat ||
        retries >= plan.retries ||
        deadline - Date.now() <= 1 ||
        !plan.budget.withdraw()
      ) {
        throw err;
      }
      retries++;
    }
  }

  /** One attempt of a call on one replica; never throws, says how it ended. */
  async #attempt(
    target: NodeRecord,
    name: string,
    typeName: string,
    req: unknown,
    attemptMs: number,
    reportedMs: number,
  ): Promise<
    { ok: true; res: unknown; outcome: AttemptOutcome } | { ok: false; err: unknown; outcome: AttemptOutcome }
  > {
    const fail = (err: unknown, outcome: AttemptOutcome) => ({ ok: false as const, err, outcome });
    let r: Awaited<ReturnType<PeerLink["request"]>["reply"]>;
    try {
      const link = this.#link(target.endpoint);
      const { id, reply } = link.request(
        { service: name, type: typeName, timeoutMs: attemptMs },
        encodeFrames(req, this.#opts.blobThreshold),
      );
      r = await this.#withTimeout(reply, name, attemptMs, () => link.cancel(id), target.name, reportedMs);
    } catch (err) {
      const code = err instanceof MyelinError ? err.code : "";
      if (code === "ERR_TIMEOUT") return fail(err, "timeout");
      if (code === "ERR_UNAVAILABLE") {
        return fail(
          new ServiceError(
            "ERR_UNAVAILABLE",
            `service ${name} on node ${target.name}: ${(err as Error).message}`,
            {
              cause: err,
            },
          ),
          "unreachable",
        );
      }
      return fail(err, "cancelled");
    }
    if (!r.header.ok) {
      const e = r.header.error ?? {
        code: "ERR_SERVICE_FAILED",
        message: "the server reported an error without details",
      };
      // Errors that are the request's fault say nothing about the replica: it answered.
      if (e.code === "ERR_TYPE_MISMATCH")
        return fail(new TypeMismatchError("ERR_TYPE_MISMATCH", e.message), "ok");
      if (e.code === "ERR_NO_SERVER") return fail(new ServiceError("ERR_NO_SERVER", e.message), "cancelled");
      if (e.code === "ERR_VALIDATION")
        return fail(new ValidationError("ERR_VALIDATION", `${name} refused the request: ${e.message}`), "ok");
      if (e.code === "ERR_DECODE")
        return fail(new DecodeError("ERR_DECODE", `${name} on node ${target.name}: ${e.message}`), "ok");
      if (e.code !== "ERR_SERVICE_FAILED" && isErrorCode(e.code)) {
        return fail(myelinError(e.code, `${name} on node ${target.name}: ${e.message}`), "fault");
      }
      return fail(
        new ServiceError("ERR_SERVICE_FAILED", `${name} on node ${target.name} failed: ${e.message}`),
        "fault",
      );
    }
    try {
      return { ok: true, res: decodeFrames(r.parts), outcome: "ok" };
    } catch (err) {
      return fail(
        new DecodeError(
          "ERR_DECODE",
          `reply of ${name} from node ${target.name} could not be decoded: ${(err as Error).message}`,
          { cause: err },
        ),
        "fault",
      );
    }
  }

  /** @internal */
  async waitForServer(name: string, timeoutMs: number): Promise<boolean> {
    if (inproc.service(name) !== undefined) return true;
    try {
      // A server in this process is called directly; the graph update of its node says it is there.
      await this.waitForGraph(
        () => inproc.service(name) !== undefined || this.#servers(name).length > 0,
        timeoutMs,
      );
      return true;
    } catch {
      return false;
    }
  }

  // ---- internals ---------------------------------------------------------------------------

  #check(): void {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `node ${this.name} is closed`);
  }

  #withTimeout<R>(
    p: Promise<R>,
    name: string,
    timeoutMs: number,
    onTimeout: () => void,
    server?: string,
    reportedMs = timeoutMs,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        onTimeout();
        reject(
          new TimeoutError(
            "ERR_TIMEOUT",
            `service ${name}${server ? ` on node ${server}` : ""} did not answer within ${reportedMs} ms`,
          ),
        );
      }, timeoutMs);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(
            err instanceof MyelinError
              ? err
              : new ServiceError(
                  "ERR_SERVICE_FAILED",
                  `${name} failed: ${(err as Error)?.message ?? String(err)}`,
                  { cause: err },
                ),
          );
        },
      );
    });
  }

  /**
   * Replicas of service `name` that may take calls: in the graph (so live), in another process,
   * and ready (`ready` absent counts as ready). This is the one place that decides it.
   */
  #servers(name: string): NodeRecord[] {
    return (this.#graph?.nodes ?? []).filter(
      (n) => n.process !== PROCESS_ID && n.ready !== false && n.services.some((s) => s.service === name),
    );
  }

  #checkLocalType(topic: string, typeName: string): void {
    for (const p of inproc.publishers(topic)) {
      if (p.type.name !== typeName) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `topic ${topic} has type ${p.type.name} (a publisher in this process); ${this.name} used ${typeName}`,
        );
      }
    }
    for (const s of inproc.subscriptions(topic)) {
      if (s.typeName !== typeName) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `topic ${topic} has type ${s.typeName} (a subscription in this process); ${this.name} used ${typeName}`,
        );
      }
    }
  }

  #advertised(): string {
    const ep = this.#server.endpoint;
    const m = /^tcp:\/\/(0\.0\.0\.0|\*|\[::\]):(\d+)$/.exec(ep);
    if (m === null) return ep;
    return `tcp://${this.#opts.advertiseHost ?? hostname()}:${m[2]}`;
  }

  #record(): NodeRecord {
    const decl = (topic: string, type: string, q: Qos): TopicDecl => ({
      topic,
      type,
      qos: { reliability: q.reliability, durability: q.durability, depth: q.depth },
    });
    return {
      id: this.id,
      name: this.name,
      pid: process.pid,
      host: hostname(),
      process: PROCESS_ID,
      endpoint: this.#advertised(),
      startedAt: this.#startedAt,
      pubs: [...this.#publishers].map((p) => decl(p.topic, p.type.name, p.qos)),
      subs: [...this.#subs.keys()].map((s) =>
        s.group === undefined
          ? decl(s.topic, s.typeName, s.qos)
          : { ...decl(s.topic, s.typeName, s.qos), group: s.group },
      ),
      services: [...this.#services.values()].map((s) => ({
        service: s.name,
        type: s.type.name,
        ...(s.idempotent ? { idempotent: true } : {}),
      })),
      ready: this.#ready,
      ...(process.env["MYELIN_INSTANCE"] ? { instance: process.env["MYELIN_INSTANCE"] } : {}),
    };
  }

  async #register(): Promise<Refusal[]> {
    if (!this.#hub.connected) {
      this.#reregister();
      return [];
    }
    return this.#hub.register(this.#opts.registerTimeoutMs);
  }

  #reregister(): void {
    if (!this.#closed) void this.#hub.register(this.#opts.registerTimeoutMs);
  }

  #link(endpoint: string): PeerLink {
    let link = this.#links.get(endpoint);
    if (link === undefined) {
      link = new PeerLink({
        endpoint,
        hello: { node: this.id, process: PROCESS_ID },
        maxMessageBytes: this.#opts.maxMessageBytes,
        pingIntervalMs: 500,
        onBadFrame: (err) =>
          this.emit(
            "warning",
            new MyelinError("ERR_PROTOCOL", `dropped a bad frame from ${endpoint}: ${err.message}`, {
              cause: err,
            }),
          ),
      });
      this.#links.set(endpoint, link);
    }
    return link;
  }

  #dropSubscription(sub: Subscription<unknown>): void {
    const st = this.#subs.get(sub);
    if (st === undefined) return;
    this.#subs.delete(sub);
    inproc.removeSubscription(sub.topic, sub);
    if (sub.group !== undefined) for (const p of inproc.publishers(sub.topic)) p.localGroupsChanged();
    for (const src of st.sources.values()) if (src.sid !== 0) src.link.unsubscribe(src.sid);
    st.sources.clear();
    this.#reregister();
  }

  #onGraph(g: GraphSnapshot): void {
    const removed = new Set(g.removed);
    for (const id of removed) {
      this.#server.dropNode(id);
      // Calls waiting on a node the hub removed cannot be answered any more: fail them now.
      const gone = this.#graph?.nodes.find((n) => n.id === id);
      if (gone !== undefined) this.#links.get(gone.endpoint)?.failCalls(`the hub removed node ${gone.name}`);
      for (const st of this.#subs.values()) {
        const src = st.sources.get(id);
        if (src === undefined) continue;
        st.sources.delete(id);
        if (src.alive) st.sub.livelinessChanged(src.publisherName, false);
        if (src.sid !== 0) src.link.unsubscribe(src.sid);
      }
    }
    this.#graph = g;
    for (const st of this.#subs.values()) this.#reconcile(st, g, g.settled);
    this.#closeIdleLinks(g);
    this.emit("graph", g);
  }

  /** Connects `st` to every remote publisher of its topic; with `authoritative`, drops the rest. */
  #reconcile(st: SubState, g: GraphSnapshot, authoritative: boolean): void {
    const sub = st.sub;
    const want = new Map<string, NodeRecord>();
    for (const n of g.nodes) {
      if (n.process === PROCESS_ID) continue;
      if (n.pubs.some((p) => p.topic === sub.topic && p.type === sub.typeName)) want.set(n.id, n);
    }
    for (const [id, n] of want) {
      const have = st.sources.get(id);
      if (have !== undefined && have.sid !== 0) continue;
      // A for-await reader that blocks takes credit only as it reads: the window is its queue.
      const block = st.iterator && sub.overflow === "block";
      // A group member keeps a smaller window, so a busy member is passed over sooner.
      const full = sub.group === undefined ? CREDIT_MSGS : GROUP_CREDIT_MSGS;
      const windowMsgs = block ? Math.max(16, Math.min(sub.queueSize, full)) : (st.window?.messages ?? full);
      const windowBytes = st.window?.bytes ?? CREDIT_BYTES;
      const link = this.#link(n.endpoint);
      const src =
        have ??
        new RemoteSource(
          sub,
          st.type,
          st.validate,
          link,
          id,
          n.name,
          windowMsgs,
          windowBytes,
          sub.group !== undefined,
        );
      const body: Omit<SubBody, "sid"> = {
        topic: sub.topic,
        type: sub.typeName,
        reliable: sub.qos.reliability === "reliable",
        history: sub.qos.durability === "transient-local" && sub.group === undefined ? sub.qos.depth : 0,
        creditMsgs: windowMsgs,
        creditBytes: windowBytes,
      };
      if (sub.group !== undefined) body.group = sub.group;
      src.sid = link.subscribe(body, src);
      st.sources.set(id, src);
    }
    if (!authoritative) return;
    for (const [id, src] of st.sources) {
      if (want.has(id)) continue;
      st.sources.delete(id);
      if (src.sid !== 0) src.link.unsubscribe(src.sid);
    }
  }

  #closeIdleLinks(g: GraphSnapshot): void {
    if (!g.settled) return;
    const live = new Set(g.nodes.map((n) => n.endpoint));
    for (const [ep, link] of this.#links) {
      if (!live.has(ep) && link.subscriptionCount === 0 && link.pendingCalls === 0) {
        link.close();
        this.#links.delete(ep);
      }
    }
  }

  #checkLiveliness(): void {
    const now = Date.now();
    for (const st of this.#subs.values()) {
      const lease = st.sub.qos.livelinessLeaseMs;
      if (lease === 0) continue;
      for (const src of st.sources.values()) {
        const alive = src.link.lastSeen !== 0 && now - src.link.lastSeen < lease;
        if (src.link.lastSeen === 0) continue;
        if (alive !== src.alive) {
          src.alive = alive;
          st.sub.livelinessChanged(src.publisherName, alive);
        }
      }
    }
  }

  #onRemoteSubscribe(r: RemoteSubscriber): ErrorBody | undefined {
    const pubs = [...this.#publishers].filter((p) => p.topic === r.topic);
    if (pubs.length === 0) {
      return { code: "ERR_UNKNOWN_TOPIC", message: `node ${this.name} does not publish ${r.topic}` };
    }
    const wrong = pubs.find((p) => p.type.name !== r.body.type);
    if (wrong !== undefined) {
      return {
        code: "ERR_TYPE_MISMATCH",
        message: `topic ${r.topic} has type ${wrong.type.name} (node ${this.name}); the subscriber used ${r.body.type}`,
      };
    }
    for (const p of pubs) {
      p.addRemote(r);
      if (r.body.history > 0) p.replayTo(r, r.body.history);
      p.matched();
    }
    return undefined;
  }

  async #onRequest(peer: PeerInfo, h: RequestHeader, parts: Buffer[]): Promise<ReplyResult> {
    const srv = this.#services.get(h.service);
    if (srv === undefined)
      return {
        ok: false,
        error: { code: "ERR_NO_SERVER", message: `node ${this.name} does not serve ${h.service}` },
      };
    if (srv.type.name !== h.type) {
      return {
        ok: false,
        error: {
          code: "ERR_TYPE_MISMATCH",
          message: `service ${h.service} has type ${srv.type.name} (node ${this.name}); the client used ${h.type}`,
        },
      };
    }
    let req: unknown;
    try {
      req = decodeFrames(parts);
    } catch (err) {
      srv.failed++;
      return {
        ok: false,
        error: { code: "ERR_DECODE", message: `request could not be decoded: ${(err as Error).message}` },
      };
    }
    const v = srv.type.request.validate(req);
    if (!v.ok) {
      srv.failed++;
      return {
        ok: false,
        error: {
          code: "ERR_VALIDATION",
          message: v.errors.map((e) => `${e.path || "(request)"}: ${e.reason}`).join("; "),
        },
      };
    }
    try {
      const res = await srv.handler(req, { caller: peer.node, timeoutMs: h.timeoutMs });
      const rv = srv.type.response.validate(res);
      if (!rv.ok) {
        srv.failed++;
        const detail = rv.errors.map((e) => `${e.path || "(reply)"}: ${e.reason}`).join("; ");
        return {
          ok: false,
          error: {
            code: "ERR_SERVICE_FAILED",
            message: `the handler returned an invalid ${srv.type.response.name}: ${detail}`,
          },
        };
      }
      srv.served++;
      return { ok: true, frames: encodeFrames(res, this.#opts.blobThreshold) };
    } catch (err) {
      srv.failed++;
      return {
        ok: false,
        error: {
          // A handler's MyelinError keeps its code (ERR_STORAGE, ERR_BACKPRESSURE, …) for the caller.
          code: err instanceof MyelinError ? err.code : "ERR_SERVICE_FAILED",
          message: (err as Error)?.message ?? String(err),
        },
      };
    }
  }
}
