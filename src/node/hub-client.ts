/**
 * A node's connection to its hub: registers, heartbeats, receives the graph. Works without a
 * hub: it keeps trying, and registers as soon as one answers (also after a hub restart, when the
 * new hub asks every unknown node to register again).
 */
import { randomBytes } from "../transport/node-crypto.js";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import type { PolicyDoc } from "./access-policy.js";
import { PROCESS_CREDENTIAL } from "./process-credential.js";
import {
  decodeHubToNode,
  encodeControl,
  type GraphDelta,
  type GraphSnapshot,
  type NodeRecord,
  type NodeToHub,
  type Refusal,
  type SiteAdvice,
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
  /**
   * The graph changed: a snapshot (no `changed`), or a delta applied to the last graph (`changed`
   * names the records added or replaced). `removed` names the nodes gone since the last call.
   */
  onGraph(graph: GraphSnapshot): void;
  /** The hub says the site has other hosts and where to bind for them (with every registration). */
  onSite?(site: SiteAdvice): void;
  onRefused(refusals: Refusal[]): void;
  /** The hub's host name in the site, on each registration (before the registration's waiters resume). */
  onHost?(host: string): void;
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
  readonly #siteQueries = new Map<number, (json: string) => void>();
  /** Ends the waits of pending queries when the client closes. */
  readonly #queryAborts = new Set<() => void>();
  #nextReq = 1;
  #hub = "";
  /** The graph as deltas built it: its hub, version and records. */
  #graphHub = "";
  #graphVersion = -1;
  readonly #records = new Map<string, NodeRecord>();
  /** When a snapshot was asked for (0: none asked). */
  #syncSince = 0;
  /** Deltas applied, and snapshots asked for after a gap (for tests and `stats`). */
  deltas = 0;
  gaps = 0;
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

  /** Asks the hub how it sees the site (JSON text). Throws ERR_HUB_UNREACHABLE after `timeoutMs`. */
  querySite(timeoutMs: number): Promise<string> {
    const req = this.#nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#siteQueries.delete(req);
        reject(
          new TimeoutError(
            "ERR_HUB_UNREACHABLE",
            `no hub answered at ${this.#opts.endpoint} within ${timeoutMs} ms; start one with \`myelin hub\` or set MYELIN_HUB`,
          ),
        );
      }, timeoutMs);
      this.#siteQueries.set(req, (json) => {
        clearTimeout(timer);
        resolve(json);
      });
      this.#send({ v: 1, t: "site", req });
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
    // A snapshot asked for and not come (the request or its answer was dropped): ask again.
    if (this.#syncSince !== 0 && Date.now() - this.#syncSince > 2 * this.#opts.heartbeatMs) this.#sync();
    // Until the hub confirmed a registration, keep sending the record: a send made while the
    // connection was still being set up is dropped (immediate mode), and nothing else would repeat it.
    if (!this.#registered) this.#sendRecord();
    else this.#send({ v: 1, t: "heartbeat", id: this.#opts.record().id });
  }

  #sync(): void {
    this.#syncSince = Date.now();
    this.#send({ v: 1, t: "sync" });
  }

  #applySnapshot(g: GraphSnapshot): void {
    // A snapshot older than what deltas already built (from the same hub) changes nothing.
    if (g.hub === this.#graphHub && g.version < this.#graphVersion) return;
    this.#syncSince = 0;
    const keep = new Set<string>();
    for (const n of g.nodes) keep.add(n.id);
    const removed = new Set(g.removed);
    // Records missing from a snapshot of the same hub were removed; a new hub that has not settled
    // yet may simply not have heard from them again (they re-register): they are not gone.
    if (g.hub === this.#graphHub || g.settled)
      for (const id of this.#records.keys()) if (!keep.has(id)) removed.add(id);
    this.#records.clear();
    for (const n of g.nodes) this.#records.set(n.id, n);
    this.#graphHub = g.hub;
    this.#graphVersion = g.version;
    this.#opts.onGraph({
      hub: g.hub,
      version: g.version,
      settled: g.settled,
      nodes: g.nodes,
      removed: [...removed],
    });
  }

  #applyDelta(d: GraphDelta): void {
    if (d.hub !== this.#graphHub || d.from !== this.#graphVersion) {
      // Already covered by the snapshot held (same hub, not newer): nothing to do.
      if (d.hub === this.#graphHub && d.version <= this.#graphVersion) return;
      // A gap (or a new hub): the snapshot says everything; ask once, not per delta.
      if (this.#syncSince === 0) {
        this.gaps++;
        this.#sync();
      }
      return;
    }
    this.deltas++;
    for (const id of d.removed) this.#records.delete(id);
    for (const n of d.upserts) this.#records.set(n.id, n);
    this.#graphVersion = d.version;
    this.#opts.onGraph({
      hub: d.hub,
      version: d.version,
      settled: d.settled,
      nodes: [...this.#records.values()],
      removed: d.removed,
      changed: d.upserts.map((n) => n.id),
    });
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
        if (m.host !== undefined) this.#opts.onHost?.(m.host);
        // A reply covers its registration and every earlier one (the record only grows between them).
        for (const [req, w] of this.#registeredWaiters) {
          if (req > m.req) continue;
          this.#registeredWaiters.delete(req);
          w(m.refused);
        }
        this.#opts.onPolicy?.(m.policy, m.identity);
        if (m.refused.length > 0) this.#opts.onRefused(m.refused);
        if (m.site !== undefined) this.#opts.onSite?.(m.site);
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
        this.#applySnapshot(m.graph);
        return;
      }
      case "delta":
        this.#applyDelta(m.delta);
        return;
      case "site": {
        const q = this.#siteQueries.get(m.req);
        this.#siteQueries.delete(m.req);
        q?.(m.json);
        return;
      }
      case "error":
        this.#opts.onBadMessage(new MyelinError("ERR_PROTOCOL", `hub says: ${m.message}`));
        return;
    }
  }
}
