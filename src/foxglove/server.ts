/**
 * The Foxglove WebSocket server: Foxglove and Lichtblick (or any client of the
 * foxglove/ws-protocol spec) see the live system. It runs in the hub process next to a hidden
 * node `_foxglove`, which watches the graph, subscribes to a topic only while some client
 * subscribes to it, publishes what clients publish (checked against the topic's type), calls
 * services and reaches node parameters.
 *
 * - The HTTP upgrade is refused (401) without the token (`?token=` or `Authorization: Bearer`),
 *   (400) without a subprotocol served (`foxglove.sdk.v1`, `foxglove.websocket.v1`), and (503)
 *   past `maxClients`; each refusal says why in its body.
 * - Each client has its own bounded outbox (see outbox.ts): a client that does not read costs its
 *   send budget and no more, drops are counted per topic, reported to the client as a status, and
 *   shown by `myelin foxglove status` (the hidden service `/_foxglove/status`, foxglove-protocol.ts).
 * - Rate caps per topic from the settings (`maxHz`) and from the client's URL
 *   (`?maxHz=/camera/**:5`, only lower); a client may also lower its budget (`?budget=BYTES`).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket, WebSocketServer } from "ws";
import { wsLib } from "../gateway/libs.js";
import type { Parameter, ServerMessage } from "@foxglove/ws-protocol";
import { fromJson } from "../codec/index.js";
import { MyelinError } from "../errors.js";
import { lookupType, type MessageType } from "../msgs/index.js";
import {
  createNode,
  type GraphSnapshot,
  type MessageInfo,
  type Node,
  type Publisher,
  type Subscription,
} from "../node/index.js";
import { FOXGLOVE_DEFAULTS, type FoxgloveSettings } from "./config.js";
import { diffGraph, graphState } from "./connection-graph.js";
import { serveFoxgloveStatus, type FoxgloveStatus } from "./foxglove-protocol.js";
import { ParameterAccess } from "./parameters.js";
import {
  nowNs,
  parseClientBinary,
  parseClientJson,
  pickSubprotocol,
  serviceResponseFrame,
  STATUS_LEVEL,
  timeFrame,
  type ClientBinary,
  type ClientJsonOp,
} from "./protocol.js";
import { capFor, parseRateCap, RateGate, type RateCap } from "./rate-cap.js";
import { ServiceTable } from "./services.js";
import { Session } from "./session.js";
import { allowed, isHiddenName, TopicTable, type ChannelInfo, type EncodingFor } from "./topics.js";

/** Options of {@link FoxgloveServer.start}. */
export interface FoxgloveServerOptions extends Partial<FoxgloveSettings> {
  /** The token clients must give. */
  token: string;
  /** How a topic's messages are offered (the recorder's channel encodings). */
  encodingFor: EncodingFor;
  /** Runtime directory of the hub to join (default: the usual one). */
  runtimeDir?: string;
  /** Where log lines go. */
  log?: (line: string) => void;
}

/** A Myelin subscription feeding the clients subscribed to one channel. */
interface Tap {
  channel: ChannelInfo;
  sub: Subscription<unknown> | undefined;
  /** Client subscriptions fed, as [session, subscription id]. */
  readers: Set<Session>;
  received: number;
  encodeErrors: number;
}

/** A Myelin publisher shared by the clients publishing on one topic. */
interface SharedPublisher {
  pub: Promise<Publisher<unknown>>;
  type: MessageType<unknown>;
  users: number;
  pending: number;
}

const MAX_PENDING_PUBLISHES = 64;

/** The Foxglove WebSocket server of the hub. */
export class FoxgloveServer {
  readonly #s: FoxgloveSettings & { token: string };
  readonly #encodingFor: EncodingFor;
  readonly #log: (line: string) => void;
  readonly #node: Node;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  readonly #tokenHash: Buffer;
  readonly #topics: TopicTable;
  readonly #services: ServiceTable;
  readonly #params: ParameterAccess;
  readonly #sessions = new Set<Session>();
  readonly #taps = new Map<number, Tap>();
  readonly #publishers = new Map<string, SharedPublisher>();
  readonly #refused = { noToken: 0, badToken: 0, badRequest: 0, tooMany: 0 };
  /** Drops of clients that disconnected, and how many clients connected since start. */
  readonly #gone = { dropped: 0, droppedBytes: 0 };
  #clientsConnected = 0;
  readonly #startedAt = Date.now();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #capabilities: string[];
  #graph: GraphSnapshot | undefined;
  #nextSessionId = 1;
  #paramValues = new Map<string, string>();
  #polling = false;
  #closed = false;

  private constructor(opts: FoxgloveServerOptions, node: Node, http: Server) {
    this.#s = { ...FOXGLOVE_DEFAULTS, ...opts };
    this.#encodingFor = opts.encodingFor;
    this.#log = opts.log ?? (() => {});
    this.#node = node;
    this.#http = http;
    this.#tokenHash = createHash("sha256").update(opts.token).digest();
    this.#topics = new TopicTable({
      allow: this.#s.topics,
      showHidden: this.#s.showHidden,
      encodingFor: this.#encodingFor,
    });
    this.#services = new ServiceTable({ showHidden: this.#s.showHidden });
    this.#params = new ParameterAccess(node, this.#s.serviceTimeoutMs);
    this.#capabilities = ["connectionGraph"];
    if (this.#s.publish) this.#capabilities.push("clientPublish");
    if (this.#s.services) this.#capabilities.push("services");
    if (this.#s.parameters) this.#capabilities.push("parameters", "parametersSubscribe");
    if (this.#s.timeIntervalMs > 0) this.#capabilities.push("time");
    this.#wss = new (wsLib().WebSocketServer)({
      noServer: true,
      maxPayload: this.#s.maxMessageBytes,
      perMessageDeflate: false,
      handleProtocols: (offered) => pickSubprotocol(offered) ?? false,
    });
  }

  /**
   * Starts the server: joins the hub as the hidden node `_foxglove` and listens.
   * @throws MyelinError ERR_BAD_CONFIG when the address cannot be listened on (e.g. the port is taken)
   */
  static async start(opts: FoxgloveServerOptions): Promise<FoxgloveServer> {
    const s = { ...FOXGLOVE_DEFAULTS, ...opts };
    const http =
      s.tls === undefined
        ? createHttpServer()
        : createHttpsServer({
            cert: s.tls.cert,
            key: s.tls.key,
            ...(s.tls.ca !== undefined ? { ca: s.tls.ca } : {}),
          });
    const node = await createNode({
      name: "_foxglove",
      ...(opts.runtimeDir !== undefined ? { runtimeDir: opts.runtimeDir } : {}),
    });
    const server = new FoxgloveServer(opts, node, http);
    try {
      await server.#listen();
      await serveFoxgloveStatus(node, () => server.status());
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  async #listen(): Promise<void> {
    this.#http.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
    this.#http.on("request", (_req, res) => {
      const body =
        "This is the Foxglove WebSocket server of a Myelin hub. Open it in Foxglove or Lichtblick " +
        `(Open connection, Foxglove WebSocket) as ${this.url}/?token=TOKEN.\n`;
      res.writeHead(426, { "content-type": "text/plain; charset=utf-8", upgrade: "websocket" }).end(body);
    });
    this.#http.on("tlsClientError", (err: Error) =>
      this.#log(`foxglove: TLS handshake failed: ${err.message}`),
    );
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new MyelinError(
            "ERR_BAD_CONFIG",
            `the Foxglove server cannot listen on ${this.#s.host}:${this.#s.port}: ${err.message}` +
              (err.code === "EADDRINUSE" ? "; choose another port with --foxglove-port" : ""),
            { cause: err },
          ),
        );
      };
      this.#http.once("error", onError);
      this.#http.listen(this.#s.port, this.#s.host, () => {
        this.#http.off("error", onError);
        resolve();
      });
    });
    this.#node.on("graph", (g) => this.#onGraph(g));
    const g = this.#node.graph();
    if (g !== undefined) this.#onGraph(g);
    if (this.#s.timeIntervalMs > 0) {
      const t = setInterval(() => {
        const frame = timeFrame(nowNs());
        for (const s of this.#sessions) s.outbox.time(frame);
      }, this.#s.timeIntervalMs);
      t.unref();
      this.#timers.push(t);
    }
    const ping = setInterval(() => {
      for (const s of this.#sessions) {
        if (!s.alive) {
          this.#log(`foxglove: client ${s.id} (${s.address}) closed: it did not answer pings`);
          s.ws.terminate();
          continue;
        }
        s.alive = false;
        s.ws.ping();
      }
    }, this.#s.pingIntervalMs);
    ping.unref();
    this.#timers.push(ping);
    const poll = setInterval(
      () => this.#background(undefined, "reading watched parameters", this.#pollParameters()),
      this.#s.parameterPollMs,
    );
    poll.unref();
    this.#timers.push(poll);
  }

  /** The TCP port listened on. */
  get port(): number {
    return (this.#http.address() as AddressInfo).port;
  }

  /** The address clients connect to, without the token (`ws://127.0.0.1:8765`). */
  get url(): string {
    const a = this.#http.address() as AddressInfo | null;
    const host = this.#s.host.includes(":") ? `[${this.#s.host}]` : this.#s.host;
    return `${this.#s.tls === undefined ? "ws" : "wss"}://${host}:${a?.port ?? this.#s.port}`;
  }

  // ---- connections -------------------------------------------------------------------------

  #tokenOk(given: string): boolean {
    const h = createHash("sha256").update(given).digest();
    return timingSafeEqual(h, this.#tokenHash);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string, why: keyof FoxgloveStatus["refused"]): void => {
      this.#refused[why]++;
      const body = `${text}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${status === 401 ? "Unauthorized" : status === 503 ? "Service Unavailable" : "Bad Request"}\r\n` +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    const address = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      refuse(400, "the request URL cannot be parsed", "badRequest");
      return;
    }
    const auth = req.headers.authorization;
    const given =
      url.searchParams.get("token") ??
      (auth !== undefined && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, "").trim() : undefined);
    if (given === undefined || given === "") {
      this.#log(`foxglove: refused ${address}: no token`);
      refuse(
        401,
        `no token: connect to ${this.url}/?token=TOKEN (or send Authorization: Bearer TOKEN); the hub prints the URL with the token when it starts`,
        "noToken",
      );
      return;
    }
    if (!this.#tokenOk(given)) {
      this.#log(`foxglove: refused ${address}: wrong token`);
      refuse(401, "wrong token: use the token the hub was started with", "badToken");
      return;
    }
    const offered = (req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((p) => p.trim())
      .filter((p) => p !== "");
    if (pickSubprotocol(offered) === undefined) {
      refuse(
        400,
        `no subprotocol served: offered ${offered.length === 0 ? "none" : offered.join(", ")}; this server speaks foxglove.sdk.v1 and foxglove.websocket.v1`,
        "badRequest",
      );
      return;
    }
    let maxHz: RateCap[];
    let budget = this.#s.sendBudgetBytes;
    try {
      maxHz = url.searchParams.getAll("maxHz").flatMap((v) =>
        v
          .split(",")
          .filter((x) => x !== "")
          .map((x) => parseRateCap(x, "maxHz")),
      );
      const b = url.searchParams.get("budget");
      if (b !== null) {
        const n = Number(b);
        if (!Number.isInteger(n) || n < 1024)
          throw new Error(`budget: ${JSON.stringify(b)} is not a number of bytes (at least 1024)`);
        budget = Math.min(n, budget);
      }
    } catch (err) {
      refuse(400, (err as Error).message, "badRequest");
      return;
    }
    if (this.#sessions.size >= this.#s.maxClients) {
      this.#log(`foxglove: refused ${address}: ${this.#s.maxClients} clients are connected already`);
      refuse(503, `too many clients: ${this.#s.maxClients} are connected already (maxClients)`, "tooMany");
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, address, maxHz, budget));
  }

  #accept(ws: WebSocket, address: string, maxHz: RateCap[], budget: number): void {
    if (this.#closed) {
      ws.terminate();
      return;
    }
    const session = new Session({
      id: this.#nextSessionId++,
      ws,
      address,
      subprotocol: ws.protocol,
      limits: {
        budgetBytes: budget,
        writeWindowBytes: this.#s.writeWindowBytes,
        controlBudgetBytes: this.#s.controlBudgetBytes,
      },
      log: this.#log,
    });
    const caps = maxHz;
    this.#sessions.add(session);
    this.#clientsConnected++;
    this.#log(`foxglove: client ${session.id} connected from ${address} (${ws.protocol})`);
    ws.on("pong", () => (session.alive = true));
    ws.on("message", (data, isBinary) => this.#onMessage(session, caps, data, isBinary));
    ws.on("close", () => this.#drop(session));
    ws.on("error", (err) => this.#log(`foxglove: client ${session.id}: ${err.message}`));
    const info: ServerMessage = {
      op: "serverInfo",
      name: "myelin",
      capabilities: this.#capabilities,
      metadata: { hub: this.#graph?.hub ?? "" },
      sessionId: `${this.#startedAt}`,
    };
    if (this.#s.publish || this.#s.services) info.supportedEncodings = ["json"];
    session.send(info);
    session.send({ op: "advertise", channels: this.#topics.all().map((c) => c.wire) });
    if (this.#s.services) {
      const services = this.#services.all().map((s) => s.wire);
      if (services.length > 0) session.send({ op: "advertiseServices", services });
    }
  }

  #drop(session: Session): void {
    if (!this.#sessions.has(session)) return;
    const st = session.statusNow();
    this.#gone.dropped += st.dropped;
    this.#gone.droppedBytes += st.droppedBytes;
    this.#sessions.delete(session);
    session.close();
    for (const sub of [...session.subs.values()]) this.#unsubscribe(session, sub.id);
    for (const a of session.adverts.values()) this.#releasePublisher(a.channel.topic);
    session.adverts.clear();
    this.#log(`foxglove: client ${session.id} (${session.address}) disconnected`);
  }

  // ---- client messages ---------------------------------------------------------------------

  #onMessage(session: Session, caps: RateCap[], data: RawData, isBinary: boolean): void {
    if (session.closed) return;
    const bytes = Array.isArray(data)
      ? Buffer.concat(data)
      : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : data;
    try {
      if (isBinary) this.#onBinary(session, parseClientBinary(bytes));
      else this.#onJson(session, caps, parseClientJson(Buffer.from(bytes).toString("utf8")));
    } catch (err) {
      if (err instanceof MyelinError && err.code === "ERR_PROTOCOL") {
        session.status(STATUS_LEVEL.ERROR, `ignored a message: ${err.message}`);
        return;
      }
      // A bug of ours must not take the hub down: the client is told, the hub's log has it.
      this.#log(
        `foxglove: client ${session.id}: error handling a message: ${(err as Error).stack ?? String(err)}`,
      );
      session.status(STATUS_LEVEL.ERROR, `the server failed to handle a message: ${(err as Error).message}`);
    }
  }

  /** Runs `work` in the background; an error is logged and told to `session`, never thrown. */
  #background(session: Session | undefined, what: string, work: Promise<void>): void {
    work.catch((err: unknown) => {
      this.#log(`foxglove: ${what} failed: ${(err as Error).stack ?? String(err)}`);
      if (session !== undefined && !session.closed)
        session.status(STATUS_LEVEL.ERROR, `${what} failed: ${(err as Error).message}`);
    });
  }

  #needs(session: Session, capability: string, what: string): boolean {
    if (this.#capabilities.includes(capability)) return true;
    session.status(
      STATUS_LEVEL.ERROR,
      `${what} is turned off on this server (capability ${capability} is not offered)`,
    );
    return false;
  }

  #onJson(session: Session, caps: RateCap[], m: ClientJsonOp): void {
    switch (m.op) {
      case "subscribe":
        for (const s of m.subscriptions) this.#subscribe(session, caps, s.id, s.channelId);
        return;
      case "unsubscribe":
        for (const id of m.subscriptionIds) {
          if (!session.subs.has(id)) {
            session.status(STATUS_LEVEL.WARNING, `unsubscribe: no subscription ${id}; ignored`);
            continue;
          }
          this.#unsubscribe(session, id);
        }
        return;
      case "advertise":
        if (!this.#needs(session, "clientPublish", "publishing")) return;
        for (const c of m.channels) this.#clientAdvertise(session, c);
        return;
      case "unadvertise":
        if (!this.#needs(session, "clientPublish", "publishing")) return;
        for (const id of m.channelIds) {
          const a = session.adverts.get(id);
          if (a === undefined) {
            session.status(STATUS_LEVEL.WARNING, `unadvertise: channel ${id} was not advertised; ignored`);
            continue;
          }
          session.adverts.delete(id);
          this.#releasePublisher(a.channel.topic);
        }
        return;
      case "getParameters":
        if (!this.#needs(session, "parameters", "parameters")) return;
        this.#background(session, "getParameters", this.#getParameters(session, m.parameterNames, m.id));
        return;
      case "setParameters":
        if (!this.#needs(session, "parameters", "parameters")) return;
        this.#background(session, "setParameters", this.#setParameters(session, m.parameters, m.id));
        return;
      case "subscribeParameterUpdates":
        if (!this.#needs(session, "parametersSubscribe", "watching parameters")) return;
        if (m.parameterNames.length === 0) session.watchAllParams = true;
        for (const n of m.parameterNames) session.watchedParams.add(n);
        this.#background(session, "subscribeParameterUpdates", this.#pollParameters());
        return;
      case "unsubscribeParameterUpdates":
        if (!this.#needs(session, "parametersSubscribe", "watching parameters")) return;
        if (m.parameterNames.length === 0) {
          session.watchAllParams = false;
          session.watchedParams.clear();
        }
        for (const n of m.parameterNames) session.watchedParams.delete(n);
        return;
      case "subscribeConnectionGraph":
        session.watchesGraph = true;
        session.graph = undefined;
        this.#sendGraph(session);
        return;
      case "unsubscribeConnectionGraph":
        session.watchesGraph = false;
        session.graph = undefined;
        return;
      case "fetchAsset":
        session.send({
          op: "status",
          level: STATUS_LEVEL.ERROR,
          message: `fetchAsset ${m.uri}: this server does not serve assets (capability assets is not offered)`,
        });
        return;
    }
  }

  #onBinary(session: Session, m: ClientBinary): void {
    if (m.op === "messageData") {
      if (!this.#needs(session, "clientPublish", "publishing")) return;
      this.#clientPublish(session, m.channelId, m.data);
      return;
    }
    if (!this.#needs(session, "services", "calling services")) return;
    this.#background(
      session,
      "a service call",
      this.#serviceCall(session, m.serviceId, m.callId, m.encoding, m.data),
    );
  }

  // ---- subscriptions -----------------------------------------------------------------------

  #subscribe(session: Session, caps: RateCap[], id: number, channelId: number): void {
    if (session.subs.has(id)) {
      session.status(STATUS_LEVEL.ERROR, `subscribe: subscription id ${id} is in use; unsubscribe it first`);
      return;
    }
    if (session.subsByChannel.has(channelId)) {
      session.status(STATUS_LEVEL.WARNING, `subscribe: already subscribed to channel ${channelId}; ignored`);
      return;
    }
    const ch = this.#topics.get(channelId);
    if (ch === undefined) {
      session.status(
        STATUS_LEVEL.WARNING,
        `subscribe: channel ${channelId} is not advertised (any more); ignored`,
      );
      return;
    }
    const hz = capFor(ch.topic, this.#s.maxHz, caps);
    const sub = {
      id,
      channelId,
      topic: ch.topic,
      gate: hz === undefined ? undefined : new RateGate(hz),
      throttled: 0,
    };
    session.subs.set(id, sub);
    session.subsByChannel.set(channelId, sub);
    let tap = this.#taps.get(channelId);
    if (tap === undefined) {
      tap = { channel: ch, sub: undefined, readers: new Set(), received: 0, encodeErrors: 0 };
      this.#taps.set(channelId, tap);
      this.#openTap(tap);
    }
    tap.readers.add(session);
  }

  #openTap(tap: Tap): void {
    const ch = tap.channel;
    // Best-effort: a slow viewer never makes a publisher wait. Transient-local when a publisher
    // keeps history, so a latched message (a map) shows up at once.
    const latched =
      this.#graph?.nodes.some((n) =>
        n.pubs.some((p) => p.topic === ch.topic && p.qos.durability === "transient-local"),
      ) === true;
    this.#node
      .createSubscription(
        ch.topic,
        ch.type,
        (msg: unknown, info: MessageInfo) => this.#onTopicMessage(tap, msg, info),
        {
          qos: {
            reliability: "best-effort",
            ...(latched ? { durability: "transient-local", depth: 1 } : {}),
          },
          queueSize: 16,
          overflow: "drop-oldest",
          validate: false,
        },
      )
      .then(
        (sub) => {
          if (this.#taps.get(ch.id) !== tap || tap.readers.size === 0 || this.#closed) sub.close();
          else tap.sub = sub;
        },
        (err: unknown) => {
          // The clients' subscriptions go with the tap, so a later subscribe tries again.
          this.#log(`foxglove: cannot subscribe to ${ch.topic}: ${(err as Error).message}`);
          if (this.#taps.get(ch.id) === tap) this.#taps.delete(ch.id);
          for (const s of tap.readers) {
            const sub = s.subsByChannel.get(ch.id);
            if (sub !== undefined) s.unsubscribe(sub);
            s.status(STATUS_LEVEL.ERROR, `cannot subscribe to ${ch.topic}: ${(err as Error).message}`);
          }
        },
      );
  }

  #onTopicMessage(tap: Tap, msg: unknown, _info: MessageInfo): void {
    if (tap.readers.size === 0) return;
    tap.received++;
    let payload: Uint8Array;
    try {
      payload = tap.channel.enc.encode(msg);
    } catch (err) {
      if (tap.encodeErrors++ === 0) {
        this.#log(`foxglove: cannot encode a message of ${tap.channel.topic}: ${(err as Error).message}`);
      }
      return;
    }
    const ts = nowNs();
    const nowMs = Date.now();
    for (const s of tap.readers) {
      const sub = s.subsByChannel.get(tap.channel.id);
      if (sub !== undefined) s.deliver(sub, payload, ts, nowMs);
    }
  }

  #unsubscribe(session: Session, id: number): void {
    const sub = session.subs.get(id);
    if (sub === undefined) return;
    session.unsubscribe(sub);
    const tap = this.#taps.get(sub.channelId);
    if (tap === undefined) return;
    tap.readers.delete(session);
    if (tap.readers.size === 0) {
      tap.sub?.close();
      this.#taps.delete(sub.channelId);
    }
  }

  // ---- client publish ----------------------------------------------------------------------

  #clientAdvertise(session: Session, c: ClientJsonOpChannel): void {
    const refuse = (why: string): void =>
      session.status(STATUS_LEVEL.ERROR, `advertise of channel ${c.id} (${c.topic}) refused: ${why}`);
    if (session.adverts.has(c.id))
      return refuse(`channel id ${c.id} is advertised already; unadvertise it first`);
    if (c.encoding !== "json")
      return refuse(
        `encoding ${JSON.stringify(c.encoding)} is not supported; publish with the json encoding`,
      );
    if (!/^(\/[A-Za-z0-9_.~-]+)+$/.test(c.topic))
      return refuse(
        "not a topic name: use segments of letters, digits, '_', '-', '.' separated by '/', e.g. /cmd_vel",
      );
    const publishAllow = this.#s.publishTopics ?? this.#s.topics;
    if (!allowed(publishAllow, c.topic) || (!this.#s.showHidden && isHiddenName(c.topic)))
      return refuse(`publishing to ${c.topic} is not allowed (publishTopics: ${publishAllow.join(", ")})`);
    const existing = this.#topicType(c.topic);
    const wanted = c.schemaName === "" ? existing : c.schemaName;
    if (wanted === undefined)
      return refuse(
        `${c.topic} has no publisher yet, so give its type as schemaName (e.g. geometry_msgs/Twist)`,
      );
    const type = resolveMessageType(wanted);
    if (type === undefined)
      return refuse(
        `type ${wanted} is not known to the hub; use a registered type or start the hub with --import MODULE`,
      );
    if (existing !== undefined && existing !== type.name)
      return refuse(`${c.topic} has type ${existing}, not ${type.name}`);
    session.adverts.set(c.id, { channel: c, type, published: 0, refused: 0 });
    const shared = this.#publishers.get(c.topic);
    if (shared !== undefined) {
      shared.users++;
      return;
    }
    // The first messages wait until the topic's subscribers (as the graph shows them) are
    // matched, so a command sent right after advertising is not lost (at most 2 s).
    const subscribers = (this.#graph?.nodes ?? []).reduce(
      (n, node) => n + node.subs.filter((x) => x.topic === c.topic).length,
      0,
    );
    const pub = this.#node.createPublisher(c.topic, type).then(async (p) => {
      if (subscribers > 0) await p.waitForSubscribers(subscribers, 2000).catch(() => {});
      return p;
    });
    this.#publishers.set(c.topic, { pub, type, users: 1, pending: 0 });
    pub.catch((err: unknown) => {
      this.#publishers.delete(c.topic);
      for (const s of this.#sessions) {
        for (const [id, a] of s.adverts) {
          if (a.channel.topic !== c.topic) continue;
          s.adverts.delete(id);
          s.status(
            STATUS_LEVEL.ERROR,
            `advertise of channel ${id} (${c.topic}) refused: ${(err as Error).message}`,
          );
        }
      }
    });
  }

  #topicType(topic: string): string | undefined {
    for (const n of this.#graph?.nodes ?? []) {
      for (const p of [...n.pubs, ...n.subs]) if (p.topic === topic) return p.type;
    }
    return undefined;
  }

  #releasePublisher(topic: string): void {
    const p = this.#publishers.get(topic);
    if (p === undefined) return;
    if (--p.users > 0) return;
    this.#publishers.delete(topic);
    p.pub.then(
      (x) => x.close(),
      () => {},
    );
  }

  #clientPublish(session: Session, channelId: number, data: Uint8Array): void {
    const a = session.adverts.get(channelId);
    if (a === undefined) {
      session.status(
        STATUS_LEVEL.ERROR,
        `message on channel ${channelId} refused: the channel is not advertised`,
      );
      return;
    }
    const topic = a.channel.topic;
    const refuse = (why: string): void => {
      a.refused++;
      session.status(STATUS_LEVEL.ERROR, `message on ${topic} refused: ${why}`, `myelin.publish:${topic}`);
    };
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
    } catch {
      return refuse("it is not JSON");
    }
    let msg: unknown;
    try {
      msg = fromJson(a.type, value, `message on ${topic}`);
    } catch (err) {
      return refuse(`it does not fit ${a.type.name}: ${(err as Error).message}`);
    }
    const shared = this.#publishers.get(topic);
    if (shared === undefined) return refuse("the topic's publisher is gone");
    if (shared.pending >= MAX_PENDING_PUBLISHES)
      return refuse(
        `${MAX_PENDING_PUBLISHES} messages are waiting for slow subscribers already; publish slower`,
      );
    shared.pending++;
    shared.pub
      .then((p) => p.publish(msg as never))
      .then(
        () => a.published++,
        (err: unknown) => refuse((err as Error).message),
      )
      .finally(() => shared.pending--);
  }

  // ---- services ----------------------------------------------------------------------------

  async #serviceCall(
    session: Session,
    serviceId: number,
    callId: number,
    encoding: string,
    data: Uint8Array,
  ): Promise<void> {
    const fail = (message: string): void => {
      session.serviceCallsFailed++;
      session.send({ op: "serviceCallFailure", serviceId, callId, message });
    };
    session.serviceCalls++;
    const svc = this.#services.get(serviceId);
    if (svc === undefined) return fail(`service ${serviceId} is not advertised (any more)`);
    const want = svc.wire.request?.encoding ?? "json";
    if (encoding !== want)
      return fail(`encoding ${JSON.stringify(encoding)} is not supported by ${svc.name}; call with ${want}`);
    if (session.serviceCallsRunning >= this.#s.maxServiceCalls)
      return fail(`${this.#s.maxServiceCalls} calls of this client are running already; wait for one to end`);
    session.serviceCallsRunning++;
    try {
      const res = await this.#services.call(this.#node, svc, data, this.#s.serviceTimeoutMs);
      if (!session.closed) session.outbox.control(serviceResponseFrame(serviceId, callId, want, res));
    } catch (err) {
      fail(`${svc.name}: ${(err as Error).message}`);
    } finally {
      session.serviceCallsRunning--;
    }
  }

  // ---- parameters --------------------------------------------------------------------------

  async #getParameters(session: Session, names: string[], id: string | undefined): Promise<void> {
    const r = await this.#params.get(names, this.#graph);
    for (const e of r.errors) session.status(STATUS_LEVEL.WARNING, `getParameters: ${e}`);
    session.send(
      id === undefined
        ? { op: "parameterValues", parameters: r.parameters }
        : { op: "parameterValues", parameters: r.parameters, id },
    );
  }

  async #setParameters(session: Session, params: Parameter[], id: string | undefined): Promise<void> {
    const r = await this.#params.set(params);
    for (const e of r.errors) session.status(STATUS_LEVEL.ERROR, `setParameters: ${e}`);
    if (id !== undefined) session.send({ op: "parameterValues", parameters: r.parameters, id });
    if (r.parameters.length > 0)
      this.#background(undefined, "reading watched parameters", this.#pollParameters());
  }

  /** Reads the watched parameters again and sends what changed to the clients watching them. */
  async #pollParameters(): Promise<void> {
    const watchers = [...this.#sessions].filter((s) => s.watchAllParams || s.watchedParams.size > 0);
    if (watchers.length === 0) this.#paramValues.clear(); // a new watcher starts from fresh values
    if (watchers.length === 0 || this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      // Only the nodes of watched parameters are read, unless some client watches them all.
      const names = watchers.some((w) => w.watchAllParams)
        ? []
        : [...new Set(watchers.flatMap((w) => [...w.watchedParams]))];
      const r = await this.#params.get(names, this.#graph);
      const changed: Parameter[] = [];
      const seen = new Set<string>();
      for (const p of r.parameters) {
        seen.add(p.name);
        const v = JSON.stringify(p.value);
        const before = this.#paramValues.get(p.name);
        this.#paramValues.set(p.name, v);
        if (before !== undefined && before !== v) changed.push(p);
      }
      if (names.length === 0) {
        for (const k of [...this.#paramValues.keys()]) if (!seen.has(k)) this.#paramValues.delete(k);
      }
      if (changed.length === 0) return;
      for (const s of watchers) {
        const mine = changed.filter((p) => s.watchAllParams || s.watchedParams.has(p.name));
        if (mine.length > 0 && !s.closed) s.send({ op: "parameterValues", parameters: mine });
      }
    } finally {
      this.#polling = false;
    }
  }

  // ---- the graph ---------------------------------------------------------------------------

  #onGraph(g: GraphSnapshot): void {
    if (this.#closed) return;
    this.#graph = g;
    const { added, removed } = this.#topics.update(g);
    for (const ch of removed) {
      const tap = this.#taps.get(ch.id);
      for (const s of this.#sessions) {
        const sub = s.subsByChannel.get(ch.id);
        if (sub !== undefined) s.unsubscribe(sub);
      }
      if (tap !== undefined) {
        tap.sub?.close();
        this.#taps.delete(ch.id);
      }
    }
    if (removed.length > 0) {
      for (const s of this.#sessions) s.send({ op: "unadvertise", channelIds: removed.map((c) => c.id) });
    }
    if (added.length > 0) {
      for (const s of this.#sessions) s.send({ op: "advertise", channels: added.map((c) => c.wire) });
    }
    if (this.#s.services) {
      const sv = this.#services.update(g);
      if (sv.removed.length > 0) {
        for (const s of this.#sessions)
          s.send({ op: "unadvertiseServices", serviceIds: sv.removed.map((x) => x.id) });
      }
      if (sv.added.length > 0) {
        for (const s of this.#sessions)
          s.send({ op: "advertiseServices", services: sv.added.map((x) => x.wire) });
      }
    }
    this.#params.prune(g);
    for (const s of this.#sessions) if (s.watchesGraph) this.#sendGraph(s);
  }

  #sendGraph(session: Session): void {
    if (this.#graph === undefined) return;
    const now = graphState(
      this.#graph,
      (t) => this.#topics.visible(t),
      (svc) => this.#s.showHidden || !isHiddenName(svc),
    );
    const u = diffGraph(session.graph, now);
    session.graph = now;
    if (u !== undefined) session.send(u);
  }

  // ---- status and close --------------------------------------------------------------------

  /**
   * Totals since the server started, over the clients connected now and those gone: for the
   * metrics, whose counters must not fall when a client leaves.
   */
  totals(): { clientsConnected: number; dropped: number; droppedBytes: number } {
    let dropped = this.#gone.dropped;
    let droppedBytes = this.#gone.droppedBytes;
    for (const s of this.#sessions) {
      const st = s.statusNow();
      dropped += st.dropped;
      droppedBytes += st.droppedBytes;
    }
    return { clientsConnected: this.#clientsConnected, dropped, droppedBytes };
  }

  /** What `myelin foxglove status` shows. */
  status(): FoxgloveStatus {
    const notAdvertised: { name: string; reason: string }[] = [];
    for (const [topic, why] of this.#topics.unencodable)
      notAdvertised.push({ name: topic, reason: `no encoding for ${why}` });
    for (const [svc, type] of this.#services.unknownTypes)
      notAdvertised.push({
        name: svc,
        reason: `service type ${type} is not known to the hub (start it with --import MODULE)`,
      });
    return {
      url: this.url,
      host: this.#s.host,
      port: this.port,
      tls: this.#s.tls !== undefined,
      startedAt: this.#startedAt,
      capabilities: [...this.#capabilities],
      sendBudgetBytes: this.#s.sendBudgetBytes,
      maxHz: this.#s.maxHz,
      channels: this.#topics.all().length,
      services: this.#services.all().length,
      notAdvertised,
      refused: { ...this.#refused },
      clients: [...this.#sessions].map((s) => s.statusNow()),
    };
  }

  /** Closes every client, stops listening and leaves the hub. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const s of [...this.#sessions]) {
      s.close(1001, "the hub is stopping");
      this.#drop(s);
    }
    for (const tap of this.#taps.values()) tap.sub?.close();
    this.#taps.clear();
    this.#services.close();
    this.#params.close();
    this.#wss.close();
    await new Promise<void>((resolve) => {
      if (!this.#http.listening) return resolve();
      this.#http.close(() => resolve());
      this.#http.closeAllConnections();
    });
    await this.#node.close();
  }
}

type ClientJsonOpChannel = Extract<ClientJsonOp, { op: "advertise" }>["channels"][number];

/** The registered message type `name` (also spelt `pkg/msg/Name` or `pkg.Name`), if any. */
function resolveMessageType(name: string): MessageType<unknown> | undefined {
  const ros = /^([a-z][a-z0-9_]*)\/msg\/([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  const dotted = /^([a-z][a-z0-9_]*)\.(?:msg\.)?([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  return (
    lookupType(name) ??
    (ros !== null ? lookupType(`${ros[1]}/${ros[2]}`) : undefined) ??
    (dotted !== null ? lookupType(`${dotted[1]}/${dotted[2]}`) : undefined)
  );
}
