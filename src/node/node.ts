/**
 * A node: the unit that publishes, subscribes, serves and calls. Each node binds one data
 * socket (ZeroMQ ROUTER) that its subscribers and clients connect to, keeps one link (DEALER)
 * per remote node it talks to, and registers with the hub, which tells it where everything is.
 * Nodes in one process deliver to each other by a function call.
 */
import { EventEmitter } from "node:events";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  ClosedError,
  isErrorCode,
  myelinError,
  MyelinError,
  TimeoutError,
  TypeMismatchError,
} from "../errors.js";
import { lookupType, type MessageType, type ServiceType } from "../msgs/index.js";
import { DataServer, type DataServerHandler, type RemoteSubscriber } from "../transport/data-server.js";
import type { ErrorBody } from "../transport/frame.js";
import { DEFAULT_TRANSPORTS } from "../transport/default-transports.js";
import { isCarrierMismatch, type Transports, type TransportSecurity } from "../transport/transport.js";
import { insecureFromEnv, LinkSecurity } from "./link-security.js";
import { InprocRegistry } from "../transport/inproc.js";
import { processShared } from "../process-shared.js";
import { randomBytes } from "../transport/node-crypto.js";
import { ensureRuntimeDir, explicitHostName, hostName, hubEndpoint, runtimeDir } from "./config.js";
import {
  canReach,
  reachableEndpoint,
  type GraphSnapshot,
  type NodeRecord,
  type Refusal,
  type SiteAdvice,
} from "./control-protocol.js";
import type { Permission, PolicyDoc } from "./access-policy.js";
import { Reachability } from "./reachability.js";
import { HubClient } from "./hub-client.js";
import { AccessPolicy } from "./access-policy.js";
import { PeerLinks } from "./peer-links.js";
import {
  acceptRemoteSubscriber,
  adoptRemoteSubscribers,
  advertisedEndpoint,
  nodeRecord,
} from "./node-record.js";
import { DurableConsumer, type DurableConsumerOptions } from "./durable-consumer.js";
import { StoreClient } from "./store-client.js";
import { Parameter, type ParameterKind, type ParameterSpec } from "./parameter.js";
import { serveParameters } from "./parameter-service.js";
import { nodeStatus, serveNodeStatus, type NodeStatus } from "./status-service.js";
import { Publisher } from "./publisher.js";
import { resolveQos } from "./qos.js";
import { ServiceCaller } from "./call-router.js";
import { dispatchRequest } from "./request-dispatch.js";
import {
  checkLiveliness,
  checkWindow,
  dropRemovedSources,
  reconcileSubscription,
  type SubState,
} from "./subscription-wiring.js";
import {
  ServiceClient,
  ServiceServer,
  type CallPlan,
  type CallRouter,
  type ClientOptions,
  type ServiceHandler,
  type ServiceOptions,
} from "./service.js";
import type { RawMessage } from "./raw-message.js";
import { Subscription, type MessageHandler } from "./subscription.js";
import {
  NODE_DEFAULTS,
  replicaName,
  resolveName,
  type NodeEvents,
  type NodeOptions,
  type PublisherOptions,
  type SubscriptionOptions,
} from "./node-options.js";

export { NODE_DEFAULTS } from "./node-options.js";
export type { NodeEvents, NodeOptions, PublisherOptions, SubscriptionOptions } from "./node-options.js";
export type { ClientOptions, ServiceOptions } from "./service.js";

/**
 * The process id and the registry of in-memory delivery, one pair per process
 * (src/process-shared.ts), so the nodes of every copy of Myelin in a process (the bundle and the
 * CLI's modules) find each other's publishers, subscriptions and services and deliver by a function
 * call. The shape shared includes what one copy's node calls on another's: `Publisher`
 * (`type`, `matched`, `localGroupsChanged`, `replayLocal`), `Subscription` (`topic`, `typeName`,
 * `group`, `deliver`) and `ServiceServer` (`type`, `handler`); bump SHARED_STATE_VERSION when
 * one of these changes.
 */
const inprocShared = processShared("node.inproc", () => ({
  processId: randomBytes(6).toString("hex"),
  registry: new InprocRegistry<Publisher<unknown>, Subscription<unknown>, ServiceServer<unknown, unknown>>(),
}));

/** A random id of this process; nodes with the same one deliver to each other in memory. */
export const PROCESS_ID: string = inprocShared.processId;

const inproc = inprocShared.registry;

/**
 * Creates a node, binds its data socket and registers it with the hub (if one runs).
 * @throws MyelinError ERR_NOT_AUTHORIZED when the hub refused this host's CURVE key
 * @throws MyelinError ERR_CARRIER_MISMATCH when the hub's ipc:// listener uses the other carrier
 *   (ZeroMQ against the Unix carrier: `MYELIN_IPC_TRANSPORT` differs)
 */
export async function createNode(opts: NodeOptions): Promise<Node> {
  const node = new Node(opts);
  await node.start();
  return node;
}

/** The error a refusal of the hub stands for (type conflict, permission, node id taken). */
function refusalError(r: Refusal): MyelinError {
  return myelinError(isErrorCode(r.code) ? r.code : "ERR_TYPE_MISMATCH", r.message);
}

/** A Myelin node. Create with `createNode()`. */
export class Node extends EventEmitter<NodeEvents> implements CallRouter {
  /** Node name. */
  readonly name: string;
  /** Unique id of this node instance. */
  readonly id: string;
  readonly #opts: NodeOptions & typeof NODE_DEFAULTS;
  readonly #runtimeDir: string;
  readonly #transports: Transports;
  readonly #caller: ServiceCaller;
  #server!: DataServer;
  /** The tcp data server for nodes on other hosts, once the hub said the site has some. */
  #remoteServer: DataServer | undefined;
  #remoteBinding: Promise<void> | undefined;
  /**
   * This host's name in the site: MYELIN_HOST when set, else the hub's when the hub is reached
   * over ipc (same host), else the OS's.
   */
  #host = hostName();
  /** True when the host name is MYELIN_HOST's, which the hub's does not replace. */
  readonly #hostExplicit = explicitHostName() !== undefined;
  /** True when the hub is reached over ipc, so it runs on this host. */
  #hubLocal = false;
  /** The registration that carries an adopted host name, while the hub has the old one. */
  #hostSync: Promise<unknown> | undefined;
  readonly #reach = new Reachability(3000);
  #reachTick = 0;
  #hub!: HubClient;
  readonly #startedAt = Date.now();
  readonly #publishers = new Set<Publisher<unknown>>();
  /** Publishers created so far: a new one takes the next index, never a closed one's (subscribers track sequence numbers per index). */
  #publishersCreated = 0;
  readonly #subs = new Map<Subscription<unknown>, SubState>();
  readonly #services = new Map<string, ServiceServer<unknown, unknown>>();
  readonly #params = new Map<string, Parameter>();
  readonly #links: PeerLinks;
  #graph: GraphSnapshot | undefined;
  #graphWaiters: (() => void)[] = [];
  readonly #durables = new Set<DurableConsumer<unknown>>();
  /** The client of the hub's store (persistent publish, durable consumers), made on first use. */
  #store: StoreClient | undefined;
  /** Clients of the stores of other hosts of the site (durable consumers with `host`). */
  readonly #hostStores = new Map<string, StoreClient>();
  #livenessTimer: NodeJS.Timeout | undefined;
  #ipcPath = "";
  readonly #security: LinkSecurity;
  readonly #warnedUnreachable = new Set<string>();
  /** Why the hub refused this host's CURVE key, if it did. */
  #hubRefusal: string | undefined;
  /** Why the hub cannot be reached: its listener uses another carrier for ipc:// (warned once). */
  #carrierMismatchWhy: string | undefined;
  #statusServed = false;
  #closed = false;
  #ready: boolean;
  /** The policy the hub handed over (the built-in default until it does). */
  #access: AccessPolicy = AccessPolicy.DEFAULT;
  #identity = "";

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
    this.#transports = opts.transports ?? DEFAULT_TRANSPORTS;
    this.#security = new LinkSecurity({
      insecure: opts.insecure ?? insecureFromEnv(),
      keysDir: opts.keysDir,
      // A peer refused by this node's data socket (its key is not trusted here).
      onRefused: (r) =>
        this.emit(
          "warning",
          new MyelinError(
            "ERR_NOT_AUTHORIZED",
            `refused a connection to this node's data socket${r.address === "" ? "" : ` from ${r.address}`}${r.publicKey === "" ? "" : ` with key ${r.publicKey}`}: ${r.reason}${r.publicKey !== "" && /not trusted/.test(r.reason) ? ` (to admit it: myelin keys trust NAME ${r.publicKey})` : ""}`,
          ),
        ),
    });
    this.#links = new PeerLinks({
      securityFor: (endpoint) => this.#linkSecurity(endpoint),
      transports: this.#transports,
      hello: { node: this.id, process: PROCESS_ID },
      maxMessageBytes: this.#opts.maxMessageBytes,
      onWarning: (err) => this.emit("warning", err),
    });
    this.#caller = new ServiceCaller({
      id: this.id,
      host: () => this.#host,
      processId: PROCESS_ID,
      blobThreshold: this.#opts.blobThreshold,
      localService: (name) => inproc.service(name),
      graph: () => this.#graph,
      waitForGraph: (pred, timeoutMs) => this.waitForGraph(pred, timeoutMs),
      link: (n) => this.#links.get(this.#endpointOf(n)),
      linkDown: (n) => this.#links.isDown(this.#endpointOf(n)),
      reachable: (n) => canReach(n, this.#host),
    });
  }

  /** @internal */
  async start(): Promise<void> {
    const requested = this.#opts.dataEndpoint ?? process.env["MYELIN_DATA_ENDPOINT"] ?? "ipc";
    let endpoint = requested;
    if (requested === "ipc") {
      ensureRuntimeDir(this.#runtimeDir);
      this.#ipcPath = join(this.#runtimeDir, `n-${this.id}.sock`);
      endpoint = `ipc://${this.#ipcPath}`;
    } else if (requested === "inproc") {
      endpoint = `inproc://n-${this.id}`;
    }
    const dataSecurity = this.#security.listen(endpoint);
    const hubEp = hubEndpoint({ hub: this.#opts.hub, runtimeDir: this.#opts.runtimeDir });
    this.#hubLocal = hubEp.startsWith("ipc://");
    const hubSecurity = this.#security.connect(
      hubEp,
      this.#security.usesCurve(hubEp) ? this.#hubKey() : undefined,
      "set MYELIN_HUB_KEY (or the hubKey option) to the hub host's public key ('myelin keys show' there) or to the name it is trusted under; for a hub started with --insecure set MYELIN_INSECURE=1",
    );
    this.#server = await DataServer.bind(
      {
        endpoint,
        maxMessageBytes: this.#opts.maxMessageBytes,
        transports: this.#transports,
        ...(this.#opts.maxPeerBytes !== undefined ? { maxPeerBytes: this.#opts.maxPeerBytes } : {}),
        ...(dataSecurity !== undefined ? { security: dataSecurity } : {}),
      },
      this.#dataHandler(),
    );
    const dataKey = this.#security.advertisedKey(endpoint);
    this.#hub = new HubClient({
      endpoint: hubEp,
      ...(hubSecurity !== undefined ? { security: hubSecurity } : {}),
      onDown: (why: string) => {
        if (hubSecurity !== undefined && /refused this host's CURVE key/.test(why)) {
          this.#hubRefusal = `the hub at ${why}`;
          this.emit("warning", new MyelinError("ERR_NOT_AUTHORIZED", this.#hubRefusal));
        } else if (isCarrierMismatch(why) && this.#carrierMismatchWhy === undefined) {
          // Retrying will not help until one side restarts with the other carrier: say so, once.
          this.#carrierMismatchWhy = `the hub at ${why}`;
          this.emit("warning", new MyelinError("ERR_CARRIER_MISMATCH", this.#carrierMismatchWhy));
        }
      },
      transports: this.#transports,
      heartbeatMs: this.#opts.heartbeatMs,
      record: () =>
        nodeRecord({
          id: this.id,
          name: this.name,
          host: this.#host,
          processId: PROCESS_ID,
          endpoint: advertisedEndpoint(this.#server.endpoint, this.#opts.advertiseHost),
          remoteEndpoint: this.#remoteServer?.endpoint,
          unreachable: this.#reach.list(),
          startedAt: this.#startedAt,
          publishers: this.#publishers,
          subscriptions: this.#subs.keys(),
          services: this.#services.values(),
          ready: this.#ready,
          ...(dataKey !== undefined ? { key: dataKey } : this.#remoteKey()),
        }),
      onGraph: (g) => this.#onGraph(g),
      onSite: (site) => this.#onSite(site),
      onRefused: (rs) => {
        for (const r of rs) this.emit("warning", refusalError(r));
      },
      onHost: (host) => this.#adoptHost(host),
      onPolicy: (policy, identity) => this.#setPolicy(policy, identity),
      onBadMessage: (err) => this.emit("warning", err),
    });
    this.#livenessTimer = setInterval(() => {
      checkLiveliness(this.#subs.values());
      if (++this.#reachTick % 4 === 0) this.#checkReachability();
    }, 250);
    this.#livenessTimer.unref();
    // Give a running hub the chance to answer, so the node is registered and the first graph is
    // here when we return. A hub socket in the runtime directory means one probably runs: wait for
    // it longer than when there is none (a node may start before its hub).
    const hubSock = hubEndpoint({ hub: this.#opts.hub, runtimeDir: this.#opts.runtimeDir });
    const likely = !hubSock.startsWith("ipc://") || existsSync(hubSock.slice("ipc://".length));
    await this.#hub.register(likely ? this.#opts.registerTimeoutMs : 300);
    // The hub named this host otherwise: return once the graph has the name it goes by.
    if (this.#hostSync !== undefined) await this.#hostSync;
    // A hub that refused this host's key will not admit it on a retry: fail now, with the fix.
    if (this.#hubRefusal !== undefined && !this.#hub.connected) {
      const why = this.#hubRefusal;
      await this.close();
      throw new MyelinError("ERR_NOT_AUTHORIZED", why);
    }
    // A hub that speaks the other ipc:// carrier will never answer: fail now, with the fix.
    if (this.#carrierMismatchWhy !== undefined && !this.#hub.connected) {
      const why = this.#carrierMismatchWhy;
      await this.close();
      throw new MyelinError("ERR_CARRIER_MISMATCH", why);
    }
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
    return advertisedEndpoint(this.#server.endpoint, this.#opts.advertiseHost);
  }

  /** True if the hub answered recently. */
  get hubConnected(): boolean {
    return this.#hub.connected;
  }

  /** The last graph the hub sent, if any. */
  graph(): GraphSnapshot | undefined {
    return this.#graph;
  }

  /**
   * Asks the hub how it sees the site (its peers, their state, lag and versions), as the JSON
   * text of the hub's `SiteStatus`. @throws ERR_HUB_UNREACHABLE after `timeoutMs`
   */
  querySiteStatus(timeoutMs = 2000): Promise<string> {
    return this.#hub.querySite(timeoutMs);
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
      index: ++this.#publishersCreated,
      nodeName: this.name,
      server: this.#server,
      maxMessageBytes: this.#opts.maxMessageBytes,
      blobThreshold: this.#opts.blobThreshold,
      maxPending: opts.maxPending ?? 1024,
      maxPendingBytes: opts.maxPendingBytes ?? 8 * 1024 * 1024,
      validate: opts.validate ?? true,
      persist:
        qos.durability === "persistent"
          ? (payload, msgId) => this.#storeClient().append(name, type.name, payload, msgId)
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
    for (const server of [this.#server, this.#remoteServer])
      if (server !== undefined)
        adoptRemoteSubscribers(pub as Publisher<unknown>, server.subscribersOf(name), this.#access);
    this.#serveStatus();
    const refused = await this.#register();
    const r = refused.find((x) => x.kind === "pub" && x.name === name);
    if (r !== undefined) {
      pub.close();
      throw refusalError(r);
    }
    return pub;
  }

  /**
   * Subscribes to `topic`. With a handler, messages go to it; without, read them with
   * `for await (const { msg, info } of sub)`. `type` may be a type name (for tools), in which
   * case messages are validated only if the name is in the type registry. With `raw: true`, messages
   * are handed over still encoded ({@link RawMessage}), neither decoded nor validated.
   * @throws TypeMismatchError ERR_TYPE_MISMATCH if the topic has another type
   */
  createSubscription(
    topic: string,
    type: MessageType<unknown> | string,
    handler: MessageHandler<RawMessage> | undefined,
    opts: SubscriptionOptions & { raw: true },
  ): Promise<Subscription<RawMessage>>;
  createSubscription<T>(
    topic: string,
    type: MessageType<T> | string,
    handler?: MessageHandler<T>,
    opts?: SubscriptionOptions,
  ): Promise<Subscription<T>>;
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
      raw: opts.raw === true,
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
    this.#serveStatus();
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
      throw refusalError(r);
    }
    if (this.#graph !== undefined)
      reconcileSubscription(
        state,
        this.#graph,
        false,
        PROCESS_ID,
        (n) => this.#links.get(this.#endpointOf(n)),
        (n) => canReach(n, this.#host),
        (n, err) => this.#unreachable(n, err),
      );
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
      throw refusalError(r);
    }
    return srv;
  }

  /**
   * Reads the persistent topic `topic` as durable consumer `opts.name` (see DurableConsumer):
   * `for await (const m of consumer) { …; await m.ack(); }`. Reads the store of this host's hub,
   * or of host `opts.host`'s in a site. Needs a hub with a store (`myelin hub --data-dir DIR`);
   * until one answers, the consumer retries and emits `warning`.
   */
  createDurableConsumer<T>(
    topic: string,
    type: MessageType<T>,
    opts: DurableConsumerOptions,
  ): DurableConsumer<T> {
    this.#check();
    const name = resolveName(topic, "topic");
    const c = new DurableConsumer(name, type, opts, this.#storeClient(opts.host), (err) =>
      this.emit("warning", err),
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

  /** Serves this node's parameters (parameter-service.ts), for `myelin param`. */
  #serveParameters(): void {
    serveParameters(this, this.#params).catch((err: unknown) =>
      this.emit(
        "warning",
        new MyelinError(
          "ERR_PARAMETER",
          `node ${this.name} cannot serve its parameters: ${(err as Error).message}`,
        ),
      ),
    );
  }

  /**
   * The node's client of the hub's store, shared by its persistent publishers and durable
   * consumers. They handle the store's errors themselves: no circuit breaker turns them into
   * ERR_UNAVAILABLE.
   */
  #storeClient(host?: string): StoreClient {
    if (host === undefined || host === this.#host)
      return (this.#store ??= new StoreClient(this, { breaker: false }));
    let c = this.#hostStores.get(host);
    if (c === undefined) {
      c = new StoreClient(this, { breaker: false, host });
      this.#hostStores.set(host, c);
    }
    return c;
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

  /**
   * The flow status of this node's publishers and subscriptions (status-service.ts): what each
   * subscription received, dropped and how long its topic is silent; each remote subscriber's
   * backlog, waits and drops. Served as `/_status/<node>` once the node has a publisher or a
   * subscription.
   */
  status(): NodeStatus {
    return nodeStatus(this, this.#publishers, this.#subs.keys(), Date.now());
  }

  /** Closes everything the node opened and says goodbye to the hub. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#livenessTimer) clearInterval(this.#livenessTimer);
    await Promise.all([...this.#durables].map((c) => c.close()));
    this.#store?.close();
    for (const c of this.#hostStores.values()) c.close();
    for (const s of [...this.#subs.keys()]) s.close();
    for (const p of [...this.#publishers]) p.close();
    for (const s of [...this.#services.values()]) s.close();
    this.#links.closeAll();
    await this.#remoteBinding?.catch(() => {});
    await this.#remoteServer?.close();
    await this.#server.close();
    await this.#hub.close();
    if (this.#ipcPath !== "") rmSync(this.#ipcPath, { force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- CallRouter ----------------------------------------------------------------------

  /** @internal */
  call(name: string, typeName: string, req: unknown, timeoutMs: number, plan: CallPlan): Promise<unknown> {
    return this.#caller.call(name, typeName, req, timeoutMs, plan);
  }

  /** @internal */
  waitForServer(name: string, timeoutMs: number, host?: string): Promise<boolean> {
    return this.#caller.waitForServer(name, timeoutMs, host);
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Serves `/_status/<node>` the first time the node has a publisher or a subscription. */
  #serveStatus(): void {
    if (this.#statusServed || this.#opts.statusService === false) return;
    this.#statusServed = true;
    serveNodeStatus(this, () => this.status()).catch((err: unknown) => {
      if (!this.#closed)
        this.emit(
          "warning",
          new MyelinError(
            "ERR_PROTOCOL",
            `node ${this.name} cannot serve its status: ${(err as Error).message}`,
            {
              cause: err,
            },
          ),
        );
    });
  }

  #check(): void {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `node ${this.name} is closed`);
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

  /** The identity the hub bound this node to (`local`, `anonymous`, `curve:<key>`, `hub`); "" before. */
  get identity(): string {
    return this.#identity;
  }

  /**
   * This host's name in the site, as the node's record carries it: `$MYELIN_HOST` when set, else
   * the host name of its hub when the hub is reached over ipc (`myelin hub --host`), else the
   * system's host name.
   */
  get host(): string {
    return this.#host;
  }

  /** The permission policy this node enforces (the hub's, or the built-in default before it answers). */
  get accessPolicy(): AccessPolicy {
    return this.#access;
  }

  /**
   * For a service handler that does something only admins may (start commands, change the
   * store): throws unless the caller's identity (`ctx.identity`) is an admin of the policy.
   * @throws MyelinError ERR_NOT_AUTHORIZED naming the identity and the service
   */
  requireAdmin(identity: string, what: string): void {
    if (this.#access.isAdmin(identity)) return;
    throw new MyelinError(
      "ERR_NOT_AUTHORIZED",
      `${what} is for admins only; identity '${identity}' is not one (${this.#access.doc.source})`,
    );
  }

  /**
   * For a handler whose permission depends on the request (see `delegateServiceCheck`): throws
   * unless the caller's identity may do `permission` on `name`.
   * @throws MyelinError ERR_NOT_AUTHORIZED naming the identity, the permission and the name
   */
  requireGrant(identity: string, permission: Permission, name: string): void {
    const d = this.#access.check(identity, permission, name);
    if (!d.allowed) throw new MyelinError("ERR_NOT_AUTHORIZED", `node ${this.name} refused: ${d.reason}`);
  }

  /**
   * The hub's host name, from its answer to a registration: a node that reaches its hub over ipc
   * runs on the hub's host and goes by its name (`myelin hub --host`), unless MYELIN_HOST names it;
   * a node reaching its hub over tcp keeps its own. A new name is registered at once.
   */
  #adoptHost(host: string): void {
    if (this.#hostExplicit || !this.#hubLocal || host === this.#host || this.#closed) return;
    this.#host = host;
    this.#hostSync = this.#hub.register(this.#opts.registerTimeoutMs);
  }

  #setPolicy(policy: PolicyDoc | undefined, identity: string | undefined): void {
    if (identity !== undefined) this.#identity = identity;
    if (policy === undefined) {
      if (this.#access === AccessPolicy.DEFAULT) return;
      this.#access = AccessPolicy.DEFAULT;
      this.#endWithdrawnSubscriptions();
      return;
    }
    if (policy === this.#access.doc || JSON.stringify(policy) === JSON.stringify(this.#access.doc)) return;
    try {
      this.#access = new AccessPolicy(policy);
    } catch (err) {
      // A policy this node cannot read grants nothing: refusing is safe, allowing is not.
      this.#access = new AccessPolicy({ source: policy.source, admins: [], grants: [] });
      this.emit(
        "warning",
        new MyelinError(
          "ERR_PROTOCOL",
          `the hub's policy could not be read, every peer is refused: ${(err as Error).message}`,
        ),
      );
    }
    this.#endWithdrawnSubscriptions();
  }

  /**
   * The policy changed: remote subscribers it no longer grants `subscribe` lose their subscription
   * now, with an error naming the policy (asking again is refused the same way until a policy
   * grants it back); subscribers refused before are prompted to ask again.
   */
  #endWithdrawnSubscriptions(): void {
    // Registering again, now that the policy is in force here, changes this node's record: a
    // subscriber refused before (on any hub of the site) asks again then, and gets an answer from
    // the new policy — not from the old one, as it might on the change that brought it.
    if (this.#publishers.size > 0) this.#reregister();
    const access = this.#access;
    const refuse = (r: RemoteSubscriber): ErrorBody | undefined => {
      const d = access.check(r.identity, "subscribe", r.topic);
      if (d.allowed) return undefined;
      return {
        code: "ERR_NOT_AUTHORIZED",
        message: `node ${this.name} ended the subscription to ${r.topic}: ${d.reason}`,
      };
    };
    for (const server of [this.#server, this.#remoteServer]) server?.endSubscriptions(refuse);
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

  /** The public key of the hub's host: the option or MYELIN_HUB_KEY, a key or a trusted name. */
  #hubKey(): string | undefined {
    const given = this.#opts.hubKey ?? process.env["MYELIN_HUB_KEY"];
    if (given === undefined || given === "") return undefined;
    return this.#security.store.resolve(given, "MYELIN_HUB_KEY");
  }

  /**
   * The security of a link to another node's data endpoint: CURVE with the key its record
   * carries, when the endpoint is tcp.
   * @throws MyelinError ERR_NOT_AUTHORIZED when the record carries no key (a plain-text node)
   */
  #linkSecurity(endpoint: string): TransportSecurity | undefined {
    if (!this.#security.usesCurve(endpoint)) return undefined;
    const rec = this.#graph?.nodes.find((n) => n.endpoint === endpoint || n.remoteEndpoint === endpoint);
    if (rec?.key === undefined) {
      throw new MyelinError(
        "ERR_NOT_AUTHORIZED",
        `${rec !== undefined ? `node ${rec.name} at ` : ""}${endpoint} advertises no CURVE key (it runs in plain text, MYELIN_INSECURE=1): this node talks to tcp endpoints over CURVE only`,
      );
    }
    return this.#security.connect(endpoint, rec.key, "the node's record carries no key");
  }

  /** The key other hosts need for this node's tcp endpoint for them, once it is bound. */
  #remoteKey(): { key?: string } {
    const ep = this.#remoteServer?.endpoint;
    const key = ep === undefined ? undefined : this.#security.advertisedKey(ep);
    return key !== undefined ? { key } : {};
  }

  /** Warns once per endpoint that a publisher cannot be reached securely. */
  #unreachable(n: NodeRecord, err: Error): void {
    if (this.#warnedUnreachable.has(n.endpoint)) return;
    this.#warnedUnreachable.add(n.endpoint);
    this.emit(
      "warning",
      err instanceof MyelinError
        ? err
        : new MyelinError("ERR_INVALID_ARGUMENT", `cannot link to node ${n.name}: ${err.message}`, {
            cause: err,
          }),
    );
  }

  #onGraph(g: GraphSnapshot): void {
    if (g.removed.length > 0) {
      const before = new Map<string, NodeRecord>();
      for (const n of this.#graph?.nodes ?? []) before.set(n.id, n);
      for (const id of g.removed) {
        this.#server.dropNode(id);
        this.#remoteServer?.dropNode(id);
        // Calls waiting on a node the hub removed cannot be answered any more: fail them now.
        const gone = before.get(id);
        if (gone !== undefined)
          this.#links.failCalls(this.#endpointOf(gone), `the hub removed node ${gone.name}`);
      }
    }
    dropRemovedSources(this.#subs.values(), g.removed);
    const wasSettled = this.#graph?.settled === true;
    this.#graph = g;
    // The first settled graph of a hub says who is gone: every record is looked at. After that, a
    // delta's changed records are the only ones that can bring new publishers.
    const authoritative = g.settled && (g.changed === undefined || !wasSettled);
    let view = g;
    if (g.changed !== undefined && !authoritative) {
      const changed = new Set(g.changed);
      view = { ...g, nodes: g.nodes.filter((n) => changed.has(n.id)) };
    }
    for (const st of this.#subs.values())
      reconcileSubscription(
        st,
        view,
        authoritative,
        PROCESS_ID,
        (n) => this.#links.get(this.#endpointOf(n)),
        (n) => canReach(n, this.#host),
        (n, err) => this.#unreachable(n, err),
      );
    if (g.changed === undefined || g.removed.length > 0) this.#links.closeIdle(g, (n) => this.#endpointOf(n));
    this.emit("graph", g);
  }

  /** What the node's data servers (ipc, and tcp for other hosts) do with their events. */
  #dataHandler(): DataServerHandler {
    return {
      onSubscribe: (r) => acceptRemoteSubscriber(this.name, this.#publishers, r, this.#access),
      onUnsubscribe: (r) => {
        for (const p of this.#publishers) {
          if (!p.removeRemote(r)) continue;
          if (r.droppedForNotReading) p.notePeerDropped();
          p.matched();
        }
      },
      onRequest: (peer, h, parts) =>
        dispatchRequest(this.name, this.#services, this.#opts.blobThreshold, peer, h, parts, this.#access),
      onPeerDropped: (peer, why) =>
        this.emit(
          "warning",
          new MyelinError(
            "ERR_BACKPRESSURE",
            `node ${this.name} dropped ${peer.node || "a peer"} (${peer.identity}): ${why}`,
          ),
        ),
      onBadFrame: (peer, err) =>
        this.emit(
          "warning",
          new MyelinError(
            "ERR_PROTOCOL",
            `dropped a bad frame from ${peer.node || "an unknown peer"}: ${err.message}`,
            { cause: err },
          ),
        ),
    };
  }

  /** The endpoint of node `n` as this node reaches it: ipc on this host, tcp from another. */
  #endpointOf(n: NodeRecord): string {
    return reachableEndpoint(n, this.#host);
  }

  /** The hub says the site has other hosts: bind a tcp data endpoint for them (once). */
  #onSite(site: SiteAdvice): void {
    if (this.#remoteServer !== undefined || this.#remoteBinding !== undefined || this.#closed) return;
    // A node told to bind tcp (MYELIN_DATA_ENDPOINT) is reachable already.
    if (!this.#server.endpoint.startsWith("ipc://") && !this.#server.endpoint.startsWith("inproc://")) return;
    this.#remoteBinding = this.#bindRemote(site).finally(() => (this.#remoteBinding = undefined));
  }

  async #bindRemote(advice: SiteAdvice): Promise<void> {
    // The node's own MYELIN_ADVERTISE_ADDRESS wins (a node whose hub runs on another host).
    const own = process.env["MYELIN_ADVERTISE_ADDRESS"];
    const site = own !== undefined && own !== "" ? { ...advice, address: own } : advice;
    const [lo, hi] = site.ports;
    let lastErr: unknown;
    for (let port = lo; port <= hi; port++) {
      const endpoint = `tcp://${site.address.includes(":") ? `[${site.address}]` : site.address}:${port}`;
      try {
        // Other hosts reach it over tcp: CURVE with this host's keys (plain text only when insecure).
        const security = this.#security.listen(endpoint);
        const server = await DataServer.bind(
          {
            endpoint,
            maxMessageBytes: this.#opts.maxMessageBytes,
            transports: this.#transports,
            ...(this.#opts.maxPeerBytes !== undefined ? { maxPeerBytes: this.#opts.maxPeerBytes } : {}),
            ...(security !== undefined ? { security } : {}),
          },
          this.#dataHandler(),
        );
        if (this.#closed) {
          await server.close();
          return;
        }
        this.#remoteServer = server;
        this.#reregister();
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    this.emit(
      "warning",
      new MyelinError(
        "ERR_PEER_UNREACHABLE",
        `node ${this.name} cannot bind a tcp data endpoint on ${site.address} (ports ${lo}-${hi}), so nodes of other hosts cannot reach it: ${(lastErr as Error | undefined)?.message ?? "no port free"}; check the hub's advertise address and data port range`,
        { cause: lastErr },
      ),
    );
  }

  /** Reports links that hear nothing from their peer: in the node's log and, through its record, the hub's. */
  #checkReachability(): void {
    if (this.#graph === undefined) return;
    const { lost, back } = this.#reach.check(
      this.#links.links(),
      this.#graph.nodes,
      (n) => this.#endpointOf(n),
      Date.now(),
    );
    for (const u of lost) {
      const n = this.#graph.nodes.find((x) => x.id === u.node);
      this.emit(
        "warning",
        new MyelinError(
          "ERR_PEER_UNREACHABLE",
          `node ${this.name} cannot reach node ${n?.name ?? u.node}${n !== undefined ? ` on host ${n.host}` : ""} at ${u.endpoint}: ${u.reason}`,
        ),
      );
    }
    if (lost.length > 0 || back.length > 0) this.#reregister();
  }
}
