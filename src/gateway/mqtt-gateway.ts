/**
 * The embedded MQTT gateway: an MQTT 3.1.1 broker (aedes) inside the hub process, listening on
 * TCP, TLS and WebSocket, joined to Myelin through a {@link MyelinPort}. Devices publish and
 * subscribe as with any broker (QoS 0/1/2, retained messages, wills, persistent sessions, shared
 * subscriptions, keep-alive); messages on topics the mapping covers also go to Myelin, typed and
 * validated, and Myelin publications on mapped topics reach MQTT subscribers.
 *
 * A mapped PUBLISH whose payload fails the schema is acknowledged per its QoS but goes nowhere:
 * not to Myelin, not to MQTT subscribers, not into the retained store; its reason is published on
 * the error topic and counted. Security (users, certificates, ACLs) and limits are enforced per
 * client; refusals carry the MQTT 3.1.1 CONNACK code (4 bad user name or password, 5 not
 * authorized, 3 server unavailable for rate and client limits) or SUBACK 0x80.
 *
 * MQTT 5 is not spoken by aedes 1.x; MQTT 5 devices connect to a v5 broker that Myelin bridges to.
 */
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from "node:http";
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from "node:net";
import { join } from "node:path";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import type { Aedes, AedesPublishPacket, Client, PublishPacket, Subscription } from "aedes";
import type { WebSocketServer } from "ws";
import { wsLib } from "./libs.js";
import { MyelinError } from "../errors.js";
import { createNode, serveProtocol, type Node } from "../node/index.js";
import { GATEWAY_ERRORS_TOPIC, GATEWAY_PROTOCOL } from "./gateway-protocol.js";
import { TopicMap, type MappingSpec } from "./mapping.js";
import { MyelinPort } from "./myelin-port.js";
import { Authenticator, unshare, type AuthSpec, type Principal } from "./mqtt-auth.js";
import {
  ConnectionRate,
  guardPacketSize,
  guardStrings,
  resolveLimits,
  type MqttLimits,
} from "./mqtt-limits.js";
import { deliverOncePerPacket } from "./mqtt-delivery.js";
import { FilePersistence } from "./mqtt-persistence.js";
import { withSharedSubscriptions, type MessageRouter } from "./mqtt-shared-subs.js";
import { resolveTwinOptions, type ResolvedTwinOptions, type TwinOptions } from "./twin-document.js";
import { TwinMqtt } from "./twin-mqtt.js";
import { TwinService } from "./twin-service.js";
import { TwinStore, type TwinStoreOptions } from "./twin-store.js";
import { MqttGateway } from "./mqtt-gateway-api.js";

export { MqttGateway };

/** A plain TCP listener. Port 0 picks a free one (read it back from `gateway.listeners`). */
export interface TcpListenerOptions {
  port: number;
  /** Default all interfaces. */
  host?: string;
}

/** A TLS listener. PEM contents (the config loader reads the files). */
export interface TlsListenerOptions extends TcpListenerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificates that client certificates must chain to. */
  ca?: string | Buffer;
  /** Ask clients for a certificate; its CN logs the client in as the mapped user (auth.certificates). */
  requestCert?: boolean;
  /** With requestCert: refuse the TLS handshake without a valid client certificate (default false: fall back to a password). */
  requireCert?: boolean;
}

/** A WebSocket listener (MQTT over WebSocket, subprotocol `mqtt`). */
export interface WsListenerOptions extends TcpListenerOptions {
  /** URL path (default `/mqtt`). */
  path?: string;
}

/** Listeners of the gateway; configure at least one. */
export interface MqttListeners {
  tcp?: TcpListenerOptions;
  tls?: TlsListenerOptions;
  ws?: WsListenerOptions;
}

/** Options of {@link MqttGateway.start}. */
export interface MqttGatewayOptions {
  listeners: MqttListeners;
  /** Topic mapping between MQTT and Myelin (default none: a plain broker). */
  mapping?: MappingSpec[];
  /** Prefix of every mapped MQTT topic, e.g. `site-a`. */
  sitePrefix?: string;
  /** Myelin topic where refused messages are reported (default `/_gateway/errors`). */
  errorTopic?: string;
  /** Users, certificates and ACLs (default: anyone may do anything). */
  auth?: AuthSpec;
  limits?: MqttLimits;
  /**
   * Directory for persistent sessions, retained messages and device twins (`twins/`); without it
   * they live in memory only.
   */
  dataDir?: string;
  /** Device twins (default: on, with the defaults of TWIN_DEFAULTS); see docs/device-twins.md. */
  twins?: TwinOptions;
  /** fsync the session journal on every write (default false). */
  fsync?: boolean;
  /** Hub address and runtime directory (defaults as for any node). */
  hub?: string;
  runtimeDir?: string;
  /** Name of the gateway's node (default `_gateway`). */
  nodeName?: string;
  /** Serve the gateway's status (GATEWAY_PROTOCOL, default true). */
  serveStatus?: boolean;
  /** Human-readable events: listening, refusals, errors. */
  log?: (line: string) => void;
}

interface ClientState {
  principal: Principal | undefined;
  transport: "tcp" | "tls" | "ws";
  address: string;
  connectedAt: number;
  msgsIn: number;
  msgsOut: number;
  rejected: number;
}

/** Status of the gateway, as its status service and `myelin gateway status` report it. */
export interface GatewayStatus {
  listeners: string[];
  clients: {
    id: string;
    user: string;
    address: string;
    transport: string;
    clean: boolean;
    connected_at: number;
    subscriptions: string[];
    msgs_in: number;
    msgs_out: number;
    rejected: number;
  }[];
  msgs_in: number;
  msgs_out: number;
  rate_in: number;
  rate_out: number;
  to_myelin: number;
  from_myelin: number;
  rejected: number;
  reject_reasons: string[];
  reject_counts: number[];
  last_reject: string;
  refused_connections: number;
  persistent_sessions: number;
  retained: number;
}

const REJECT_SINK = "$SYS/myelin/rejected";

/** A stable category of a reject reason, for counts by reason. */
function rejectKind(reason: string): string {
  if (/not valid JSON|not UTF-8/.test(reason)) return "payload is not JSON";
  if (/\(ACL\)/.test(reason))
    return reason.startsWith("subscribe") ? "subscribe not allowed (ACL)" : "publish not allowed (ACL)";
  if (/maxMessageBytes/.test(reason)) return "message too large (maxMessageBytes)";
  if (/MQTT-1\.5\.3/.test(reason)) return "malformed string (UTF-8, U+0000)";
  if (/reserved for the broker/.test(reason)) return "publish to a $ topic";
  if (/maxSubscriptions/.test(reason)) return "too many subscriptions (maxSubscriptions)";
  if (/not a valid Myelin level|empty Myelin topic/.test(reason)) return "topic cannot be mapped to Myelin";
  if (/cannot publish on|publishing on .* failed/.test(reason)) return "Myelin publish failed";
  if (/^mapping\[\d+\] \(/.test(reason)) return "payload does not fit the schema";
  if (/^twin /.test(reason)) return "twin request refused";
  return reason.slice(0, 60);
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * The running gateway behind {@link MqttGateway}: `MqttGateway.start()` loads this module and
 * starts one. Its public members are documented on {@link MqttGateway}.
 */
export class MqttGatewayServer extends MqttGateway {
  readonly #opts: MqttGatewayOptions;
  readonly #limits: Required<MqttLimits>;
  readonly #map: TopicMap;
  readonly #auth: Authenticator;
  readonly #rate: ConnectionRate;
  readonly #persistence: FilePersistence;
  readonly #broker: Aedes;
  readonly #clients = new Map<Client, ClientState>();
  /** The principal each persistent session last logged in as (for what may be queued for it). */
  readonly #lastPrincipal = new Map<string, Principal>();
  readonly #transports = new WeakMap<object, "tcp" | "tls" | "ws">();
  readonly #servers: (NetServer | HttpServer)[] = [];
  readonly #wss: WebSocketServer[] = [];
  readonly #listeners: string[] = [];
  readonly #rejectReasons = new Map<string, number>();
  #node!: Node;
  #ownNode = false;
  readonly #twinOpts: ResolvedTwinOptions;
  #twinStore: TwinStore | undefined;
  #twinMqtt: TwinMqtt | undefined;
  #twinService: TwinService | undefined;
  #port!: MyelinPort;
  #msgsIn = 0;
  #msgsOut = 0;
  #refusedConnections = 0;
  #lastReject = "";
  #rates: { t: number; in: number; out: number }[] = [];
  #rateTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(opts: MqttGatewayOptions, AedesBroker: typeof Aedes) {
    super();
    this.#opts = opts;
    this.#limits = resolveLimits(opts.limits);
    const mapOpts: { syntax: "mqtt"; sitePrefix?: string } = { syntax: "mqtt" };
    if (opts.sitePrefix !== undefined) mapOpts.sitePrefix = opts.sitePrefix;
    this.#map = new TopicMap(opts.mapping ?? [], mapOpts);
    this.#auth = new Authenticator(opts.auth);
    this.#rate = new ConnectionRate();
    this.#twinOpts = resolveTwinOptions(opts.twins);
    const pOpts: ConstructorParameters<typeof FilePersistence>[0] = {};
    if (opts.dataDir !== undefined) pOpts.dir = opts.dataDir;
    if (opts.fsync !== undefined) pOpts.fsync = opts.fsync;
    if (opts.log !== undefined) pOpts.log = opts.log;
    pOpts.mayQueue = (clientId, topic) => this.#mayQueue(clientId, topic);
    pOpts.maxIncomingBytes = this.#limits.maxInflightBytes;
    this.#persistence = new FilePersistence(pOpts);
    this.#broker = new AedesBroker({
      persistence: this.#persistence,
      maxInflightInbound: this.#limits.maxInflight,
      keepaliveLimit: this.#limits.maxKeepaliveSeconds,
      drainTimeout: 10000,
      connectTimeout: 10000,
      concurrency: 1000,
      preConnect: (client, packet, cb) => this.#preConnect(client, packet, cb),
      authenticate: (client, username, password, cb) => this.#authenticate(client, username, password, cb),
      authorizePublish: (client, packet, cb) => this.#authorizePublish(client, packet, cb),
      authorizeSubscribe: (client, sub, cb) => this.#authorizeSubscribe(client, sub, cb),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
    });
    const b = this.#broker as unknown as { mq: MessageRouter };
    b.mq = withSharedSubscriptions(b.mq);
  }

  /**
   * Starts the gateway: its node, the broker (loading persistent sessions from `dataDir`), the
   * Myelin port and the listeners.
   * @throws MyelinError ERR_BAD_CONFIG for a bad mapping, auth or limits entry, or no listener;
   *   ERR_INVALID_ARGUMENT when a listener cannot bind (the message names the port)
   */
  static override async start(opts: MqttGatewayOptions): Promise<MqttGatewayServer> {
    const l = opts.listeners ?? {};
    if (l.tcp === undefined && l.tls === undefined && l.ws === undefined) {
      throw new MyelinError(
        "ERR_BAD_CONFIG",
        "the MQTT gateway needs at least one listener (tcp, tls or ws)",
      );
    }
    // aedes (an ES module) is loaded here, not when this module is: most processes that load the
    // public API never start a gateway.
    const { Aedes } = await import("aedes");
    const gw = new MqttGatewayServer(opts, Aedes);
    try {
      await gw.#start();
    } catch (err) {
      await gw.close().catch(() => undefined);
      throw err;
    }
    return gw;
  }

  async #start(): Promise<void> {
    const nodeOpts: Parameters<typeof createNode>[0] = { name: this.#opts.nodeName ?? "_gateway" };
    if (this.#opts.hub !== undefined) nodeOpts.hub = this.#opts.hub;
    if (this.#opts.runtimeDir !== undefined) nodeOpts.runtimeDir = this.#opts.runtimeDir;
    this.#node = await createNode(nodeOpts);
    this.#ownNode = true;
    await this.#broker.listen();
    this.#broker.on("clientDisconnect", (c) => this.#clients.delete(c));
    this.#broker.on("clientError", (c, err) => this.#log(`client ${c.id}: ${err.message}`));
    this.#broker.on("connectionError", (_c, err) => this.#log(`connection refused: ${err.message}`));
    this.#port = await MyelinPort.start({
      node: this.#node,
      map: this.#map,
      errorTopic: this.#opts.errorTopic ?? GATEWAY_ERRORS_TOPIC,
      source: "mqtt",
      onOutbound: (topic, payload, rule) => this.#outbound(topic, payload, rule.qos),
      onReject: (r) => {
        const kind = rejectKind(r.reason);
        this.#rejectReasons.set(kind, (this.#rejectReasons.get(kind) ?? 0) + 1);
        this.#lastReject = `${r.source} on ${r.externalTopic}: ${r.reason}`;
      },
      onWarning: (err) => this.#log(err.message),
    });
    if (this.#twinOpts.enabled) await this.#startTwins();
    if (this.#opts.serveStatus !== false) {
      await serveProtocol(this.#node, GATEWAY_PROTOCOL, { status: () => this.status() });
    }
    const l = this.#opts.listeners;
    if (l.tcp !== undefined) {
      const srv = createNetServer((sock) => this.#handle(sock, "tcp"));
      await this.#listen(srv, l.tcp, "mqtt");
    }
    if (l.tls !== undefined) {
      const t = l.tls;
      const tlsOpts: Parameters<typeof createTlsServer>[0] = {
        cert: t.cert,
        key: t.key,
        requestCert: t.requestCert === true,
        rejectUnauthorized: t.requireCert === true,
      };
      if (t.ca !== undefined) tlsOpts.ca = t.ca;
      const srv = createTlsServer(tlsOpts, (sock) => this.#handle(sock, "tls"));
      srv.on("tlsClientError", (err) => this.#log(`TLS handshake failed: ${err.message}`));
      await this.#listen(srv, t, "mqtts");
    }
    if (l.ws !== undefined) {
      const path = l.ws.path ?? "/mqtt";
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { "content-type": "text/plain" });
        res.end(`MQTT over WebSocket: connect to ws://<host>:<port>${path} with subprotocol mqtt\n`);
      });
      const { WebSocketServer, createWebSocketStream } = wsLib();
      const wss = new WebSocketServer({
        server: http,
        path,
        maxPayload: this.#limits.maxMessageBytes + 64 * 1024,
        handleProtocols: (protocols) =>
          protocols.has("mqtt") ? "mqtt" : protocols.has("mqttv3.1") ? "mqttv3.1" : false,
      });
      wss.on("connection", (ws, req: IncomingMessage) => {
        const stream = createWebSocketStream(ws);
        stream.on("error", () => undefined);
        this.#handle(stream, "ws", req);
      });
      this.#wss.push(wss);
      await this.#listen(http, l.ws, "ws", path);
    }
    this.#rateTimer = setInterval(() => this.#sampleRates(), 1000);
    this.#rateTimer.unref();
  }

  /** Device twins: their store (beside the sessions), MQTT topics and services. */
  async #startTwins(): Promise<void> {
    const storeOpts: TwinStoreOptions = {
      maxTwins: this.#twinOpts.maxTwins,
      log: (line: string) => this.#log(line),
    };
    if (this.#opts.dataDir !== undefined) storeOpts.dir = join(this.#opts.dataDir, "twins");
    this.#twinStore = await TwinStore.open(storeOpts);
    this.#twinMqtt = new TwinMqtt({
      broker: this.#broker,
      store: this.#twinStore,
      twins: this.#twinOpts,
      enforceIdentity: this.#auth.userCount > 0,
      userOf: (c) => this.#clients.get(c)?.principal?.user,
      reject: (reason, topic, c) => {
        const st = c === null ? undefined : this.#clients.get(c);
        if (st !== undefined) st.rejected++;
        this.#port.reject(reason, topic, -1, c?.id ?? "(will)");
      },
      log: (line) => this.#log(line),
    });
    this.#twinService = await TwinService.start({
      node: this.#node,
      store: this.#twinStore,
      twins: this.#twinOpts,
      log: (line) => this.#log(line),
    });
    this.#log(
      `device twins on ${this.#twinOpts.topicPrefix}/<device>/…: ${this.#twinStore.size} twins${this.#twinStore.dir === undefined ? " (in memory only)" : ` in ${this.#twinStore.dir}`}`,
    );
  }

  async #listen(
    srv: NetServer | HttpServer,
    o: TcpListenerOptions,
    scheme: string,
    path = "",
  ): Promise<void> {
    this.#servers.push(srv);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new MyelinError(
            "ERR_INVALID_ARGUMENT",
            `MQTT gateway: cannot listen on ${o.host ?? "0.0.0.0"}:${o.port} (${scheme}): ${err.code === "EADDRINUSE" ? "the port is in use; choose another one" : err.message}`,
            { cause: err },
          ),
        );
      };
      srv.once("error", onError);
      srv.listen(o.port, o.host, () => {
        srv.off("error", onError);
        resolve();
      });
    });
    const a = srv.address() as AddressInfo;
    const url = `${scheme}://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}${path}`;
    this.#listeners.push(url);
    this.#log(`MQTT gateway listening on ${url}`);
  }

  #handle(stream: Duplex, transport: "tcp" | "tls" | "ws", req?: IncomingMessage): void {
    if (this.#closed) {
      stream.destroy();
      return;
    }
    this.#transports.set(stream, transport);
    const client = this.#broker.handle(stream, req) as unknown as { _parser: unknown };
    deliverOncePerPacket(client, (topic) => this.#mayReceive(client as unknown as Client, topic));
    // Refuse a packet whose header says it is too large, before buffering it (1 KiB for the topic and header).
    guardPacketSize(client._parser, this.#limits.maxMessageBytes + 1024, (cmd, length) => {
      this.#port?.reject(
        `${cmd} of ${length} bytes is over the gateway's limit (maxMessageBytes ${this.#limits.maxMessageBytes}); the client was disconnected`,
        "",
        -1,
        (client as unknown as Client).id ?? "(connecting)",
      );
    });
    guardStrings(client._parser, (cmd, reason) => {
      this.#port?.reject(
        `${cmd}: a topic, filter or id is refused: ${reason}; the client was disconnected (MQTT-1.5.3)`,
        "",
        -1,
        (client as unknown as Client).id ?? "(connecting)",
      );
    });
  }

  /** The URLs the gateway listens on, e.g. `mqtt://0.0.0.0:1883`. */
  override get listeners(): string[] {
    return [...this.#listeners];
  }

  /** The port of a listener (useful with port 0). */
  override port(kind: "tcp" | "tls" | "ws"): number | undefined {
    const scheme = kind === "tcp" ? "mqtt://" : kind === "tls" ? "mqtts://" : "ws://";
    const url = this.#listeners.find((u) => u.startsWith(scheme));
    if (url === undefined) return undefined;
    return Number(/:(\d+)(\/|$)/.exec(url.slice(scheme.length))?.[1]);
  }

  /** The Myelin side (counters). */
  override get myelin(): MyelinPort {
    return this.#port;
  }

  // ---- broker hooks -------------------------------------------------------------------------

  /** Clients that connected with an empty client id (aedes makes one up before authentication). */
  readonly #anonymousIds = new WeakSet<Client>();

  #preConnect(
    client: Client,
    packet: { clientId?: string },
    cb: (err: Error | null, ok: boolean) => void,
  ): void {
    if (packet.clientId === undefined || packet.clientId === "") this.#anonymousIds.add(client);
    cb(null, true);
  }

  #refuse(client: Client, code: 2 | 3 | 4 | 5, reason: string): Error & { returnCode: number } {
    this.#refusedConnections++;
    this.#log(`refused client ${client.id} (${this.#address(client)}): ${reason}`);
    return Object.assign(new Error(reason), { returnCode: code });
  }

  #address(client: Client): string {
    const conn = client.conn as Partial<Socket>;
    const req = client.req;
    const addr = conn.remoteAddress ?? req?.socket?.remoteAddress;
    const port = conn.remotePort ?? req?.socket?.remotePort;
    return addr === undefined ? "?" : `${addr}:${port ?? "?"}`;
  }

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    cb: (err: (Error & { returnCode: number }) | null, ok: boolean | null) => void,
  ): void {
    const address = this.#address(client);
    const host = address.replace(/:[^:]*$/, "");
    if (this.#anonymousIds.has(client) && !client.clean) {
      // MQTT-3.1.3-8: a session cannot be resumed under a name the server made up.
      cb(this.#refuse(client, 2, "an empty client id needs clean session true (identifier rejected)"), false);
      return;
    }
    if (this.#clients.size >= this.#limits.maxClients) {
      cb(this.#refuse(client, 3, `too many clients (maxClients ${this.#limits.maxClients})`), false);
      return;
    }
    const over = this.#rate.over([
      [`id:${client.id}`, this.#limits.maxConnectionsPerMinute],
      [`addr:${host}`, this.#limits.maxConnectionsPerMinutePerAddress],
    ]);
    if (over !== undefined) {
      const byId = over.startsWith("id:");
      cb(
        this.#refuse(
          client,
          3,
          byId
            ? `more than ${this.#limits.maxConnectionsPerMinute} connections per minute with client id ${client.id} (maxConnectionsPerMinute)`
            : `more than ${this.#limits.maxConnectionsPerMinutePerAddress} connections per minute from ${host} (maxConnectionsPerMinutePerAddress)`,
        ),
        false,
      );
      return;
    }
    let certCN: string | undefined;
    const conn = client.conn as Partial<TLSSocket>;
    if (typeof conn.getPeerCertificate === "function" && conn.authorized === true) {
      const cn = conn.getPeerCertificate().subject?.CN;
      certCN = Array.isArray(cn) ? cn[0] : cn;
    }
    this.#auth.authenticate({ username, password, certCN }).then(
      (r) => {
        if ("code" in r) {
          cb(this.#refuse(client, r.code, r.reason), false);
          return;
        }
        const will = (client as unknown as { _will?: { topic: string; payload: Buffer } })._will;
        if (will?.topic !== undefined) {
          if (!r.acl.canPublish(will.topic, client.id, r.user)) {
            cb(
              this.#refuse(client, 5, `will topic ${will.topic} is not allowed for ${r.user || "anonymous"}`),
              false,
            );
            return;
          }
          if (will.payload !== undefined && will.payload.length > this.#limits.maxMessageBytes) {
            cb(
              this.#refuse(client, 5, `will payload of ${will.payload.length} bytes is over maxMessageBytes`),
              false,
            );
            return;
          }
        }
        if (!client.clean) this.#lastPrincipal.set(client.id, r);
        else this.#lastPrincipal.delete(client.id);
        this.#clients.set(client, {
          principal: r,
          transport: this.#transports.get(client.conn) ?? "tcp",
          address,
          connectedAt: Date.now(),
          msgsIn: 0,
          msgsOut: 0,
          rejected: 0,
        });
        cb(null, true);
      },
      (err: unknown) =>
        cb(this.#refuse(client, 3, `authentication failed: ${(err as Error).message}`) as never, false),
    );
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    const topic = packet.topic;
    const st = client === null ? undefined : this.#clients.get(client);
    if (client !== null) {
      if (st !== undefined && topic.startsWith("$")) {
        // Reserved for the broker: dropped, counted and reported, acknowledged per its QoS
        // (MQTT 3.1.1 has no way to refuse a PUBLISH), as for a topic outside the ACL.
        st.rejected++;
        this.#port.reject(
          `publish to ${topic} refused: topics starting with $ are reserved for the broker`,
          topic,
          -1,
          client.id,
        );
        this.#sink(packet);
        cb(null);
        return;
      }
      if (st === undefined) {
        cb(new Error("publish before the session was established"));
        return;
      }
      st.msgsIn++;
      this.#msgsIn++;
      const p = st.principal!;
      if (!p.acl.canPublish(topic, client.id, p.user)) {
        // Dropped (acknowledged per its QoS, as MQTT 3.1.1 has no way to say no), counted, reported.
        st.rejected++;
        this.#port.reject(
          `publish to ${topic} is not allowed for ${p.user || "anonymous"} (ACL)`,
          topic,
          -1,
          client.id,
        );
        this.#sink(packet);
        cb(null);
        return;
      }
      if (packet.payload.length > this.#limits.maxMessageBytes) {
        st.rejected++;
        this.#port.reject(
          `payload of ${packet.payload.length} bytes is over maxMessageBytes (${this.#limits.maxMessageBytes}); the client was disconnected`,
          topic,
          -1,
          client.id,
        );
        cb(new Error(`payload over maxMessageBytes`));
        return;
      }
    }
    if (this.#twinMqtt?.handles(topic) === true) {
      // A twin request: answered on its accepted or rejected topic, not routed (PUBACK after the write).
      void this.#twinMqtt.onPublish(client, packet).then(() => {
        this.#sink(packet);
        cb(null);
      });
      return;
    }
    const m = this.#map.matchInbound(topic);
    if (!m.ok) {
      if (m.rule === undefined) {
        this.#queueBeforeAck(client, packet, cb); // not mapped: plain MQTT
        return;
      }
      if (st !== undefined) st.rejected++;
      this.#port.reject(m.reason, topic, m.rule.index, client?.id ?? "(will)");
      this.#sink(packet);
      cb(null);
      return;
    }
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const d = this.#port.decode(m.myelinTopic, m.rule, payload);
    if (!d.ok) {
      if (st !== undefined) st.rejected++;
      this.#port.reject(
        `mapping[${m.rule.index}] (${m.rule.type}): ${d.reason}`,
        topic,
        m.rule.index,
        client?.id ?? "(will)",
      );
      this.#sink(packet);
      cb(null);
      return;
    }
    this.#port.publishDecoded(m.myelinTopic, m.rule, topic, d.message, client?.id ?? "(will)").then(
      (r) => {
        if (!r.ok) {
          if (st !== undefined) st.rejected++;
          this.#sink(packet);
          cb(null);
          return;
        }
        this.#queueBeforeAck(client, packet, cb);
      },
      () => cb(null),
    );
  }

  /**
   * A QoS 1 publish from a client: store it if retained and queue it for offline persistent
   * sessions before aedes sends the PUBACK (aedes acknowledges first and queues after, which a crash in between would turn
   * into a lost message). The packet keeps the broker id and counter given here, so aedes
   * recognises it and does not queue it twice.
   */
  #queueBeforeAck(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    if (client === null || packet.qos !== 1) {
      cb(null);
      return;
    }
    const broker = this.#broker as unknown as { id: string; counter: number };
    const ids = packet as unknown as { brokerId: string; brokerCounter: number };
    ids.brokerId = broker.id;
    ids.brokerCounter = ++broker.counter;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const stored = {
      cmd: "publish",
      brokerId: ids.brokerId,
      brokerCounter: ids.brokerCounter,
      topic: packet.topic,
      payload,
      qos: 1,
      retain: packet.retain,
      dup: false,
    };
    // A retained message is stored before the PUBACK too (aedes stores it again after: same content).
    (packet.retain ? this.#persistence.storeRetained(stored) : Promise.resolve())
      .then(() => this.#persistence.enqueueBeforeAck(stored))
      .then(
        () => cb(null),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
  }

  /** Makes a refused packet go nowhere: not retained, routed to a topic nobody may subscribe to. */
  #sink(packet: PublishPacket): void {
    packet.retain = false;
    packet.topic = REJECT_SINK;
  }

  #authorizeSubscribe(
    client: Client,
    sub: Subscription,
    cb: (err: Error | null, sub?: Subscription | null) => void,
  ): void {
    const st = this.#clients.get(client);
    const p = st?.principal;
    if (p === undefined) {
      cb(null, null);
      return;
    }
    const { group, filter } = unshare(sub.topic);
    if (sub.topic.startsWith("$share/") && (group === undefined || filter === "")) {
      this.#log(`client ${client.id}: bad shared subscription ${sub.topic}`);
      cb(null, null);
      return;
    }
    if (!p.acl.canSubscribe(sub.topic, client.id, p.user)) {
      st!.rejected++;
      this.#port.reject(
        `subscribe to ${sub.topic} is not allowed for ${p.user || "anonymous"} (ACL)`,
        sub.topic,
        -1,
        client.id,
      );
      cb(null, null); // SUBACK 0x80
      return;
    }
    const subs = (client as unknown as { subscriptions: Record<string, unknown> }).subscriptions;
    if (subs[sub.topic] === undefined && Object.keys(subs).length >= this.#limits.maxSubscriptions) {
      st!.rejected++;
      this.#port.reject(
        `subscription ${sub.topic} refused: ${this.#limits.maxSubscriptions} subscriptions already (maxSubscriptions)`,
        sub.topic,
        -1,
        client.id,
      );
      cb(null, null);
      return;
    }
    cb(null, sub);
  }

  /** False for a topic the client's ACL denies to its subscriptions (`deny.subscribe`). */
  #mayReceive(client: Client, topic: string): boolean {
    const p = this.#clients.get(client)?.principal;
    return p === undefined || !p.acl.hasSubscribeDenials || p.acl.canReceive(topic, client.id, p.user);
  }

  /** Queued for an offline persistent session only what its ACL lets it receive (last known user). */
  #mayQueue(clientId: string, topic: string): boolean {
    const p = this.#lastPrincipal.get(clientId);
    return p === undefined || !p.acl.hasSubscribeDenials || p.acl.canReceive(topic, clientId, p.user);
  }

  /** Runs for every delivery (after the ACL check of mqtt-delivery's wrapper): counts it. */
  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (packet.topic === REJECT_SINK) return null;
    const st = this.#clients.get(client);
    if (st !== undefined) {
      const p = st.principal;
      if (p !== undefined && p.acl.hasSubscribeDenials && !p.acl.canReceive(packet.topic, client.id, p.user))
        return null;
      st.msgsOut++;
      this.#msgsOut++;
    }
    return packet;
  }

  #outbound(topic: string, payload: Uint8Array, qos: 0 | 1 | 2): Promise<void> {
    return new Promise((resolve) => {
      this.#broker.publish(
        { cmd: "publish", topic, payload: asBuffer(payload), qos, retain: false, dup: false },
        () => resolve(),
      );
    });
  }

  // ---- status -------------------------------------------------------------------------------

  #sampleRates(): void {
    const now = Date.now();
    this.#rates.push({ t: now, in: this.#msgsIn, out: this.#msgsOut });
    while (this.#rates.length > 6) this.#rates.shift();
  }

  /** Clients, subscriptions, counters and rates (messages per second over the last ~5 s). */
  override status(): GatewayStatus {
    const first = this.#rates[0];
    const last = { t: Date.now(), in: this.#msgsIn, out: this.#msgsOut };
    const dt = first === undefined ? 0 : (last.t - first.t) / 1000;
    const s = this.#port.stats();
    const reasons = [...this.#rejectReasons].sort((a, b) => b[1] - a[1]).slice(0, 20);
    let persistent = 0;
    const clients = [...this.#clients].map(([c, st]) => {
      if (!c.clean) persistent++;
      return {
        id: c.id,
        user: st.principal?.user ?? "",
        address: st.address,
        transport: st.transport,
        clean: c.clean,
        connected_at: st.connectedAt,
        subscriptions: Object.keys(
          (c as unknown as { subscriptions: Record<string, unknown> }).subscriptions ?? {},
        ).sort(),
        msgs_in: st.msgsIn,
        msgs_out: st.msgsOut,
        rejected: st.rejected,
      };
    });
    return {
      listeners: this.listeners,
      clients,
      msgs_in: this.#msgsIn,
      msgs_out: this.#msgsOut,
      rate_in: dt > 0 ? (last.in - first!.in) / dt : 0,
      rate_out: dt > 0 ? (last.out - first!.out) / dt : 0,
      to_myelin: s.in,
      from_myelin: s.out,
      rejected: s.rejected,
      reject_reasons: reasons.map((r) => r[0]),
      reject_counts: reasons.map((r) => r[1]),
      last_reject: this.#lastReject,
      refused_connections: this.#refusedConnections,
      persistent_sessions: persistent,
      retained: this.#persistence.retainedCount,
    };
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  #log(line: string): void {
    this.#opts.log?.(line);
  }

  /** Disconnects every client, stops listening, saves persistent sessions, leaves the hub. */
  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#rateTimer) clearInterval(this.#rateTimer);
    for (const w of this.#wss) {
      for (const c of w.clients) c.terminate();
      w.close();
    }
    const closing = this.#servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.close(() => resolve());
          (s as { closeAllConnections?: () => void }).closeAllConnections?.();
        }),
    );
    await new Promise<void>((resolve) => this.#broker.close(() => resolve()));
    await Promise.all(closing);
    await this.#persistence
      .destroy()
      .catch((err: unknown) => this.#log(`saving MQTT sessions failed: ${(err as Error).message}`));
    this.#twinMqtt?.close();
    this.#twinService?.close();
    await this.#twinStore?.close();
    await this.#port?.close();
    if (this.#ownNode) await this.#node.close();
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
