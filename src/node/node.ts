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
  ERROR_CODES,
  type ErrorCode,
  ClosedError,
  MyelinError,
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
import type { ErrorBody, RecordHeader, RequestHeader } from "../transport/frame.js";
import { InprocRegistry } from "../transport/inproc.js";
import { ensureRuntimeDir, hubEndpoint, runtimeDir } from "./config.js";
import type { GraphSnapshot, NodeRecord, Refusal, TopicDecl } from "./control-protocol.js";
import { HubClient } from "./hub-client.js";
import { DurableConsumer, type DurableConsumerOptions } from "./durable-consumer.js";
import { Parameter, type ParameterKind, type ParameterSpec } from "./parameter.js";
import { Publisher } from "./publisher.js";
import { resolveQos, type Qos } from "./qos.js";
import { ServiceClient, ServiceServer, type CallRouter, type ServiceHandler } from "./service.js";
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
}

/** Options of createClient. */
export interface ClientOptions {
  /** Default timeout of each call, in ms. */
  timeoutMs?: number;
}

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

const CREDIT_MSGS = 16384;
const CREDIT_BYTES = 32 * 1024 * 1024;

/** One publisher node feeding one subscription, over a link. */
class RemoteSource implements RecordSink, Acker {
  sid = 0;
  alive = true;
  #consumedMsgs = 0;
  #consumedBytes = 0;
  readonly #lastSeq = new Map<number, number>();
  readonly #names = new Map<number, string>();

  constructor(
    readonly sub: Subscription<unknown>,
    readonly type: MessageType<unknown> | undefined,
    readonly validate: boolean,
    readonly link: PeerLink,
    readonly publisherNode: string,
    readonly publisherName: string,
    readonly windowMsgs: number,
    readonly windowBytes: number,
  ) {}

  ack(bytes: number): void {
    this.#consumedMsgs++;
    this.#consumedBytes += bytes;
    if (this.#consumedMsgs * 4 >= this.windowMsgs || this.#consumedBytes * 4 >= this.windowBytes) {
      this.link.credit(this.sid, this.#consumedMsgs, this.#consumedBytes);
      this.#consumedMsgs = 0;
      this.#consumedBytes = 0;
    }
  }

  onRecord(pub: number, seq: number, sec: number, nsec: number, payload: Buffer): void {
    if (!this.#sequence(pub, seq)) {
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
    if (!this.#sequence(h.pub, h.seq)) {
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
    this.sub.deliver(msg, { seq, publisher: name, sourceTime: { sec, nanosec: nsec } }, this, bytes);
  }

  #invalid(err: unknown, bytes: number): void {
    this.ack(bytes);
    const e = err instanceof Error ? err : new Error(String(err));
    const msg =
      e instanceof ValidationError
        ? e.message
        : `message on ${this.sub.topic} from ${this.publisherName} could not be decoded: ${e.message}`;
    this.sub.rejectInvalid(
      e instanceof ValidationError ? e : new MyelinError("ERR_DECODE", msg, { cause: e }),
    );
  }
}

interface SubState {
  sub: Subscription<unknown>;
  /** Read with for-await (the queue bounds the credit window) rather than a callback. */
  iterator: boolean;
  type: MessageType<unknown> | undefined;
  validate: boolean;
  sources: Map<string, RemoteSource>;
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
  #rr = 0;
  readonly #durables = new Set<DurableConsumer<unknown>>();
  readonly #storeBatches = new Map<
    string,
    { type: string; payloads: Uint8Array[]; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }
  >();
  #storeClient:
    | ServiceClient<
        { topic: string; type: string; payloads: Uint8Array[] },
        { first_seq: number; count: number }
      >
    | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #ipcPath = "";
  #closed = false;

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
    this.name = opts.name;
    this.id = `${opts.name}-${randomBytes(4).toString("hex")}`;
    this.#runtimeDir = runtimeDir(opts.runtimeDir);
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
          for (const p of this.#publishers) if (p.remote.delete(r)) p.matched();
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
        qos.durability === "persistent" ? (payload) => this.#persist(name, type.name, payload) : undefined,
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
    const sub: Subscription<T> = new Subscription<T>({
      topic: name,
      typeName,
      qos,
      queueSize: opts.queueSize ?? Math.max(qos.depth, 100),
      overflow,
      handler,
      onClose: () => this.#dropSubscription(sub as Subscription<unknown>),
    });
    const state: SubState = {
      sub: sub as Subscription<unknown>,
      iterator: handler === undefined,
      type: typeObj,
      validate: opts.validate ?? true,
      sources: new Map(),
    };
    this.#subs.set(sub as Subscription<unknown>, state);
    inproc.addSubscription(name, sub as Subscription<unknown>);
    for (const p of inproc.publishers(name)) p.matched();
    if (qos.durability === "transient-local") {
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
  ): Promise<ServiceServer<Req, Res>> {
    this.#check();
    const n = resolveName(name, "service");
    if (this.#services.has(n)) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `node ${this.name} already serves ${n}; close it first`);
    }
    const srv: ServiceServer<Req, Res> = new ServiceServer(n, type, handler, () => {
      this.#services.delete(n);
      inproc.removeService(n, srv as ServiceServer<unknown, unknown>);
      this.#reregister();
    });
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
      (service, t) => this.createClient(service, t as ServiceType<never, never>),
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
    return new ServiceClient(resolveName(name, "service"), type, opts.timeoutMs ?? 5000, this);
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
  #persist(topic: string, type: string, payload: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let b = this.#storeBatches.get(topic);
      if (b === undefined) {
        b = { type, payloads: [], waiters: [] };
        this.#storeBatches.set(topic, b);
        setImmediate(() => void this.#flushStore(topic));
      }
      b.payloads.push(payload);
      b.waiters.push({ resolve, reject });
    });
  }

  async #flushStore(topic: string): Promise<void> {
    const b = this.#storeBatches.get(topic);
    if (b === undefined) return;
    this.#storeBatches.delete(topic);
    this.#storeClient ??= this.createClient("/_store/append", myelin_msgs.StoreAppend, { timeoutMs: 10000 });
    try {
      await this.#storeClient.call({ topic, type: b.type, payloads: b.payloads });
      for (const w of b.waiters) w.resolve();
    } catch (err) {
      const e =
        err instanceof MyelinError && err.code === "ERR_NO_SERVER"
          ? new ServiceError(
              "ERR_NO_SERVER",
              `persistent topic ${topic}: no store runs; start the hub with a data directory (\`myelin hub --data-dir DIR\`)`,
              { cause: err },
            )
          : err;
      for (const w of b.waiters) w.reject(e);
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
  async call(name: string, typeName: string, req: unknown, timeoutMs: number): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
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
    if (this.#graph === undefined) {
      await this.waitForGraph(() => true, timeoutMs).catch(() => undefined);
    }
    const servers = this.#servers(name);
    if (servers.length === 0) {
      const known = new Set<string>();
      for (const n of this.#graph?.nodes ?? []) for (const s of n.services) known.add(s.service);
      throw new ServiceError(
        "ERR_NO_SERVER",
        this.#graph === undefined
          ? `no node serves ${name}: no hub answered, so no server can be found; start one with \`myelin hub\``
          : `no node serves ${name}; services now: ${[...known].sort().join(", ") || "none"}`,
      );
    }
    const target = servers[this.#rr++ % servers.length]!;
    const decl = target.services.find((s) => s.service === name)!;
    if (decl.type !== typeName) {
      throw new TypeMismatchError(
        "ERR_TYPE_MISMATCH",
        `service ${name} has type ${decl.type} (node ${target.name}); the client used ${typeName}`,
      );
    }
    const link = this.#link(target.endpoint);
    const remaining = Math.max(1, deadline - Date.now());
    const { id, reply } = link.request(
      { service: name, type: typeName, timeoutMs: remaining },
      encodeFrames(req, this.#opts.blobThreshold),
    );
    const r = await this.#withTimeout(reply, name, remaining, () => link.cancel(id), target.name, timeoutMs);
    if (!r.header.ok) {
      const e = r.header.error ?? {
        code: "ERR_SERVICE_FAILED",
        message: "the server reported an error without details",
      };
      if (e.code === "ERR_TYPE_MISMATCH") throw new TypeMismatchError("ERR_TYPE_MISMATCH", e.message);
      if (e.code === "ERR_NO_SERVER") throw new ServiceError("ERR_NO_SERVER", e.message);
      if (e.code === "ERR_VALIDATION")
        throw new ValidationError("ERR_VALIDATION", `${name} refused the request: ${e.message}`);
      if (e.code !== "ERR_SERVICE_FAILED" && (ERROR_CODES as readonly string[]).includes(e.code)) {
        throw new MyelinError(e.code as ErrorCode, `${name} on node ${target.name}: ${e.message}`);
      }
      throw new ServiceError("ERR_SERVICE_FAILED", `${name} on node ${target.name} failed: ${e.message}`);
    }
    let res: unknown;
    try {
      res = decodeFrames(r.header.ok ? r.parts : []);
    } catch (err) {
      throw new MyelinError(
        "ERR_DECODE",
        `reply of ${name} from node ${target.name} could not be decoded: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return res;
  }

  /** @internal */
  async waitForServer(name: string, timeoutMs: number): Promise<boolean> {
    if (inproc.service(name) !== undefined) return true;
    try {
      await this.waitForGraph(() => this.#servers(name).length > 0, timeoutMs);
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

  #servers(name: string): NodeRecord[] {
    return (this.#graph?.nodes ?? []).filter(
      (n) => n.process !== PROCESS_ID && n.services.some((s) => s.service === name),
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
      subs: [...this.#subs.keys()].map((s) => decl(s.topic, s.typeName, s.qos)),
      services: [...this.#services.values()].map((s) => ({ service: s.name, type: s.type.name })),
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
    for (const src of st.sources.values()) if (src.sid !== 0) src.link.unsubscribe(src.sid);
    st.sources.clear();
    this.#reregister();
  }

  #onGraph(g: GraphSnapshot): void {
    const removed = new Set(g.removed);
    for (const id of removed) {
      this.#server.dropNode(id);
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
      const windowMsgs = block ? Math.max(16, Math.min(sub.queueSize, CREDIT_MSGS)) : CREDIT_MSGS;
      const link = this.#link(n.endpoint);
      const src =
        have ?? new RemoteSource(sub, st.type, st.validate, link, id, n.name, windowMsgs, CREDIT_BYTES);
      src.sid = link.subscribe(
        {
          topic: sub.topic,
          type: sub.typeName,
          reliable: sub.qos.reliability === "reliable",
          history: sub.qos.durability === "transient-local" ? sub.qos.depth : 0,
          creditMsgs: windowMsgs,
          creditBytes: CREDIT_BYTES,
        },
        src,
      );
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
      p.remote.add(r);
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
