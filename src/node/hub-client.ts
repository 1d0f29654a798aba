/**
 * A node's connection to its hub: registers, heartbeats, receives the graph. Works without a
 * hub: it keeps trying, and registers as soon as one answers (also after a hub restart, when the
 * new hub asks every unknown node to register again).
 */
import { randomBytes } from "node:crypto";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import type { PolicyDoc } from "./access-policy.js";
import { PROCESS_CREDENTIAL } from "./process-credential.js";
import {
  decodeHubToNode,
  encodeControl,
  type GraphSnapshot,
  type NodeRecord,
  type NodeToHub,
  type Refusal,
} from "./control-protocol.js";
import { DEFAULT_TRANSPORTS } from "../transport/default-transports.js";
import { receiveLoop } from "../transport/receive-loop.js";
import {
  transportFor,
  type Connection,
  type Transports,
  type TransportSecurity,
} from "../transport/transport.js";

/** Options of a HubClient. */
export interface HubClientOptions {
  endpoint: string;
  /** The transports by endpoint scheme (default DEFAULT_TRANSPORTS). */
  transports?: Transports;
  /** Interval between heartbeats, in ms. */
  heartbeatMs: number;
  /** The node's current record (called on every registration). */
  record(): NodeRecord;
  onGraph(graph: GraphSnapshot): void;
  onRefused(refusals: Refusal[]): void;
  /** The hub's permission policy and the identity it bound the node to, on each registration. */
  onPolicy?(policy: PolicyDoc | undefined, identity: string | undefined): void;
  /** Malformed message from the hub (dropped). */
  onBadMessage(err: Error): void;
  /** Security of the connection (default none; CURVE with the hub's key on tcp). */
  security?: TransportSecurity;
  /** The connection went down, with why (e.g. the hub refused this host's key). */
  onDown?: (why: string) => void;
}

/** The node side of the control plane. */
export class HubClient {
  readonly #conn: Connection;
  readonly #opts: HubClientOptions;
  readonly #timer: NodeJS.Timeout;
  readonly #registeredWaiters = new Map<number, (r: Refusal[]) => void>();
  #queries = new Map<number, (g: GraphSnapshot) => void>();
  /** Ends the waits of pending queries when the client closes. */
  readonly #queryAborts = new Set<() => void>();
  #nextReq = 1;
  #hub = "";
  #lastHeard = 0;
  #closed = false;
  #registered = false;
  /** This node instance's secret: proves a registration on a new connection is the same node. */
  readonly #secret = randomBytes(24).toString("base64url");
  /** The process credential goes on local links only (never over tcp). */
  readonly #local: boolean;

  /** @throws MyelinError ERR_INVALID_ARGUMENT when no transport serves the endpoint's scheme */
  constructor(opts: HubClientOptions) {
    this.#opts = opts;
    this.#local = opts.endpoint.startsWith("ipc://") || opts.endpoint.startsWith("inproc://");
    this.#conn = transportFor(opts.transports ?? DEFAULT_TRANSPORTS, opts.endpoint).connect(opts.endpoint, {
      maxMessageBytes: 16 * 1024 * 1024,
      // What is sent before the hub is up waits (at most a few messages, then they are dropped:
      // a stale heartbeat is worthless) and arrives the moment it connects.
      dropWhenDownAfter: 8,
      reconnectMs: { min: 100, max: 500 },
      ...(opts.security !== undefined ? { security: opts.security } : {}),
    });
    this.#conn.on("up", () => this.#sendRecord());
    this.#conn.on("down", (why) => {
      this.#registered = false;
      opts.onDown?.(why);
    });
    this.#timer = setInterval(() => this.#heartbeat(), opts.heartbeatMs);
    this.#timer.unref();
    void this.#receiveLoop();
  }

  /** Id of the hub instance last heard from ("" before any). */
  get hub(): string {
    return this.#hub;
  }

  /** True if the hub answered within the last three heartbeat intervals. */
  get connected(): boolean {
    return Date.now() - this.#lastHeard < 3 * this.#opts.heartbeatMs;
  }

  /**
   * Sends the node's current record. Resolves with the hub's refusals, or with `[]` after
   * `timeoutMs` when no hub answers (the record is sent again once one does).
   */
  register(timeoutMs: number): Promise<Refusal[]> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const [req, w] of this.#registeredWaiters) if (w === done) this.#registeredWaiters.delete(req);
        resolve([]);
      }, timeoutMs);
      const done = (r: Refusal[]): void => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#registeredWaiters.set(this.#sendRecord(), done);
    });
  }

  /** Asks the hub for the graph. Throws ERR_HUB_UNREACHABLE after `timeoutMs`. */
  query(timeoutMs: number): Promise<GraphSnapshot> {
    const req = this.#nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#queries.delete(req);
        this.#queryAborts.delete(abort);
        clearInterval(retry);
        reject(
          new TimeoutError(
            "ERR_HUB_UNREACHABLE",
            `no hub answered at ${this.#opts.endpoint} within ${timeoutMs} ms; start one with \`myelin hub\` or set MYELIN_HUB`,
          ),
        );
      }, timeoutMs);
      // A query sent while no hub is connected is dropped (immediate mode): ask again until answered.
      const retry = setInterval(() => this.#send({ v: 1, t: "query", req }), 200);
      const abort = (): void => {
        clearTimeout(timer);
        clearInterval(retry);
        this.#queries.delete(req);
        reject(new ClosedError("ERR_CLOSED", "the node closed while it asked the hub for the graph"));
      };
      this.#queryAborts.add(abort);
      this.#queries.set(req, (g) => {
        clearTimeout(timer);
        clearInterval(retry);
        this.#queryAborts.delete(abort);
        resolve(g);
      });
      this.#send({ v: 1, t: "query", req });
    });
  }

  /** Says goodbye to the hub and closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // Registrations still waiting for the hub's answer end now (as if no hub answered), and so do
    // queries: their timers must not keep the process alive.
    for (const w of [...this.#registeredWaiters.values()]) w([]);
    this.#registeredWaiters.clear();
    for (const abort of [...this.#queryAborts]) abort();
    this.#queryAborts.clear();
    // With no hub the goodbye is dropped (the hub, when back, times the node out); a hub that
    // is there gets it.
    this.#conn.send([encodeControl({ v: 1, t: "bye", id: this.#opts.record().id })]);
    await this.#conn.drained(500);
    await this.#conn.close(0);
  }

  /** Sends the node's record; returns the request id the hub will echo. */
  #sendRecord(): number {
    const req = this.#nextReq++;
    const msg: NodeToHub = { v: 1, t: "register", node: this.#opts.record(), req, secret: this.#secret };
    if (this.#local) msg.credential = PROCESS_CREDENTIAL;
    this.#send(msg);
    return req;
  }

  #send(msg: NodeToHub): void {
    if (this.#closed) return;
    this.#conn.send([encodeControl(msg)]);
  }

  #heartbeat(): void {
    // Until the hub confirmed a registration, keep sending the record: a send made while the
    // connection was still being set up is dropped (immediate mode), and nothing else would repeat it.
    if (!this.#registered) this.#sendRecord();
    else this.#send({ v: 1, t: "heartbeat", id: this.#opts.record().id });
  }

  #receiveLoop(): Promise<void> {
    return receiveLoop(
      this.#conn,
      (msg) => this.#handle(msg[0] ?? Buffer.alloc(0)),
      (err) =>
        this.#opts.onBadMessage(
          err instanceof MyelinError ? err : new MyelinError("ERR_PROTOCOL", err.message, { cause: err }),
        ),
    );
  }

  #handle(bytes: Buffer): void {
    const m = decodeHubToNode(bytes);
    this.#lastHeard = Date.now();
    switch (m.t) {
      case "registered": {
        this.#hub = m.hub;
        this.#registered = true;
        // A reply covers its registration and every earlier one (the record only grows between them).
        for (const [req, w] of this.#registeredWaiters) {
          if (req > m.req) continue;
          this.#registeredWaiters.delete(req);
          w(m.refused);
        }
        this.#opts.onPolicy?.(m.policy, m.identity);
        if (m.refused.length > 0) this.#opts.onRefused(m.refused);
        return;
      }
      case "reregister":
        this.#hub = m.hub;
        this.#registered = false;
        this.#sendRecord();
        return;
      case "graph": {
        if (m.req !== undefined) {
          const q = this.#queries.get(m.req);
          this.#queries.delete(m.req);
          q?.(m.graph);
          return;
        }
        this.#opts.onGraph(m.graph);
        return;
      }
      case "error":
        this.#opts.onBadMessage(new MyelinError("ERR_PROTOCOL", `hub says: ${m.message}`));
        return;
    }
  }
}
