/**
 * A hub's part in a site: links to its peer hubs (`--peer tcp://host:7447`, and the hubs that
 * connect to it), the records of their nodes merged into this hub's graph, and leases.
 *
 * Each hub shares only its own nodes (see federation-protocol.ts): a snapshot when a link comes up
 * or a peer asks, then deltas, and a beat every lease / 4. A peer not heard from for a lease is
 * unreachable: its nodes leave the graph. When it is heard again, it is asked for its snapshot and
 * its nodes come back. A peer that restarts (a new hub id from the same host) replaces the old one
 * at once. No hub writes another's records: a record whose id another origin holds is refused.
 *
 * Links are static (`--peer`) or scouted (scout.ts adds one per hub of the site it hears of, and
 * drops it when that hub stops announcing and the link is down). A link to a hub whose key is
 * revoked is closed (its TCP connection goes) and the hub's nodes leave the graph at once; a hub
 * that connected to this one under a revoked key is forgotten the same way (the listener drops its
 * messages from then on). When the key is trusted again, the link opens again.
 */
import { MyelinError } from "../errors.js";
import { DEFAULT_TRANSPORTS } from "../transport/default-transports.js";
import { receiveLoop } from "../transport/receive-loop.js";
import {
  transportFor,
  type Connection,
  type Transports,
  type TransportSecurity,
} from "../transport/transport.js";
import { unpackControl, type NodeRecord } from "../node/control-protocol.js";
import {
  decodePeerMessage,
  encodePeerMessage,
  isPeerMessage,
  type PeerMessage,
} from "./federation-protocol.js";
import { LOCAL_ORIGIN, type GraphRegistry } from "./graph-registry.js";
import type { RefusalCounts } from "./refusal-log.js";
import type { ScoutStatus } from "./scout.js";

/** Options of a Federation. */
export interface FederationOptions {
  /** This hub's id. */
  hubId: string;
  /** This host's name, as peers show it. */
  host: string;
  /** Endpoints of the peer hubs to connect to (`tcp://host:port`). */
  peers: readonly string[];
  /** A peer silent for this long is unreachable and its nodes leave the graph, in ms. */
  leaseMs: number;
  /** Security of the link to each peer endpoint (passed to the transport). */
  securityFor: (endpoint: string) => TransportSecurity;
  transports?: Transports;
  /** The hub's graph; the federation writes only the records of peer origins. */
  registry: GraphRegistry;
  /** Called after the federation changed the graph (the hub pushes the change to its nodes). */
  changed: () => void;
  /** Called when the site gains its first other host (or loses its last one). */
  siteChanged: (multiHost: boolean) => void;
  log: (line: string) => void;
  /** Where refusals of peers' messages go, rate limited per (peer, reason) (default: `log`). */
  logRefusal?: (peer: string, reason: string, line: string) => void;
}

/** How a peer hub was found: `--peer` (static), by multicast scouting, or it connected to this hub. */
export type PeerSource = "static" | "scouted" | "incoming";

/** How one peer hub looks from here, for `myelin site status`. */
export interface PeerStatus {
  /** The peer hub's id ("" while a configured link has not heard from it). */
  hub: string;
  host: string;
  /** The endpoint this hub connects to, if it was configured here. */
  endpoint?: string;
  /** How it was found (absent from older hubs). */
  found?: PeerSource;
  /** True when its key was revoked: the link is closed until the key is trusted again. */
  revoked?: boolean;
  /** `up`: records held and current; `syncing`: heard, snapshot asked; `unreachable`: silent past the lease; `connecting`: never heard. */
  state: "up" | "syncing" | "unreachable" | "connecting";
  /** Version of the peer's records this hub holds. */
  version: number;
  /** Latest version the peer announced. */
  announced: number;
  /** Versions announced and not yet applied. */
  lagVersions: number;
  /** Time since the peer was last heard, in ms (-1 if never). */
  silentMs: number;
  /** Its nodes in this hub's graph. */
  nodes: number;
}

/** The site as one hub sees it. */
export interface SiteStatus {
  hub: string;
  host: string;
  /** Version of this hub's own records (what peers hold of it). */
  version: number;
  /** Version of the merged graph this hub sends its nodes. */
  graphVersion: number;
  leaseMs: number;
  /** Security mode of the links to peers. */
  security: string;
  /** This hub's own nodes. */
  nodes: number;
  peers: PeerStatus[];
  /** What the hub refused since it started (filled by the hub). */
  refusals?: RefusalCounts;
  /** LAN scouting, when on (filled by the hub). */
  scout?: ScoutStatus & {
    /** Announcements of this site's hubs whose key this host does not trust (not peered). */
    untrusted: number;
  };
}

interface PeerState {
  hub: string;
  host: string;
  state: "up" | "syncing" | "unreachable";
  version: number;
  announced: number;
  lastHeard: number;
  /** Last `peer-want` sent, in ms since the epoch (rate limit). */
  wantedAt: number;
  /** Where to answer it (the last route it spoke on). */
  reply: (bytes: Buffer) => void;
  /** Its nodes left the graph after the lease; its next snapshot brings them back. */
  lost: boolean;
  /** The identity of the link it connected to this hub on (`curve:<key>`), if it did. */
  identity: string;
}

interface OutLink {
  endpoint: string;
  /** Undefined while closed because the peer's key is revoked. */
  conn: Connection | undefined;
  security: TransportSecurity;
  source: "static" | "scouted";
  /** Id of the hub that answered on this link, once known. */
  hub: string;
}

/** The listener key of a link (`""` for plain text). */
function serverKeyOf(sec: TransportSecurity): string {
  return sec.mode === "curve" ? (sec.serverKey ?? "") : "";
}

/** The federation of one hub; see the file comment. */
export class Federation {
  readonly #o: FederationOptions;
  readonly #links: OutLink[] = [];
  readonly #peers = new Map<string, PeerState>();
  /** Reply routes of hubs that connected to this one, by hub id. */
  readonly #incoming = new Map<string, (bytes: Buffer) => void>();
  #timer: NodeJS.Timeout | undefined;
  #multiHost = false;
  #closed = false;
  /** Hub-to-hub messages dropped because they were malformed or broke the rules. */
  badMessages = 0;

  /**
   * Opens the links to the configured peers.
   * @throws MyelinError ERR_INVALID_ARGUMENT when a peer endpoint is not tcp://HOST:PORT
   */
  constructor(opts: FederationOptions) {
    this.#o = opts;
    for (const ep of opts.peers) {
      if (!/^tcp:\/\/[^\s/:]+:\d{1,5}$|^tcp:\/\/\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(ep)) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `peer '${ep}' is not a hub address: use tcp://HOST:PORT, e.g. --peer tcp://10.0.0.2:7447 (the port the peer hub listens on with --listen)`,
        );
      }
    }
    for (const endpoint of opts.peers) {
      const link: OutLink = {
        endpoint,
        conn: undefined,
        security: opts.securityFor(endpoint),
        source: "static",
        hub: "",
      };
      this.#links.push(link);
      this.#open(link);
    }
    this.#timer = setInterval(() => this.#tick(), Math.max(25, Math.floor(opts.leaseMs / 4)));
    this.#timer.unref();
  }

  #open(link: OutLink): void {
    const conn = transportFor(this.#o.transports ?? DEFAULT_TRANSPORTS, link.endpoint).connect(
      link.endpoint,
      {
        maxMessageBytes: 64 * 1024 * 1024,
        security: link.security,
        dropWhenDownAfter: 16,
        reconnectMs: { min: 100, max: Math.max(200, Math.floor(this.#o.leaseMs / 4)) },
      },
    );
    link.conn = conn;
    conn.on("up", () => {
      if (link.conn !== conn) return;
      this.#sendOut(link, this.#hello());
      this.#sendOut(link, this.#snapshot());
    });
    void receiveLoop(
      conn,
      (frames) => {
        if (link.conn === conn) this.#receive(frames[0] ?? Buffer.alloc(0), (b) => conn.send([b]), link);
      },
      (err) => this.#bad(`from ${link.endpoint}: ${err.message}`, link.endpoint, "malformed"),
    );
  }

  /**
   * Adds a link to a hub found by scouting, unless one to `endpoint` exists or `hubId` is already
   * a peer that is up (it connected here, or another endpoint of it is linked).
   * @returns true when a link was added
   */
  addScouted(endpoint: string, hubId: string, security: TransportSecurity): boolean {
    if (this.#closed || this.#links.some((l) => l.endpoint === endpoint)) return false;
    if (hubId === this.#o.hubId) return false;
    if (this.#links.some((l) => l.hub === hubId && l.conn?.up === true)) return false;
    this.#links.push({ endpoint, conn: undefined, security, source: "scouted", hub: "" });
    this.#open(this.#links[this.#links.length - 1]!);
    this.#o.log(`scouting: peering with hub ${hubId} at ${endpoint}`);
    this.#updateMultiHost();
    return true;
  }

  /**
   * Drops the scouted link to `endpoint` when it is not up (the hub stopped announcing and cannot
   * be reached); a link that is up stays, its lease decides.
   * @returns true when it was dropped
   */
  dropScouted(endpoint: string): boolean {
    const i = this.#links.findIndex((l) => l.endpoint === endpoint && l.source === "scouted");
    const link = this.#links[i];
    if (link === undefined || link.conn?.up === true) return false;
    this.#links.splice(i, 1);
    void link.conn?.close(0);
    link.conn = undefined;
    this.#o.log(`scouting: ${endpoint} stopped announcing and is not connected: link dropped`);
    this.#updateMultiHost();
    return true;
  }

  /** Endpoints of the links, and how each was found. */
  links(): { endpoint: string; source: "static" | "scouted"; up: boolean }[] {
    return this.#links.map((l) => ({ endpoint: l.endpoint, source: l.source, up: l.conn?.up === true }));
  }

  /**
   * Keys were revoked: closes the links to hubs listening under them (their TCP connections go)
   * and forgets those hubs and the ones that connected here under them; their nodes leave the graph.
   */
  revoke(keys: readonly string[]): void {
    if (this.#closed || keys.length === 0) return;
    const set = new Set(keys);
    for (const l of this.#links) {
      const key = serverKeyOf(l.security);
      if (!set.has(key) || l.conn === undefined) continue;
      void l.conn.close(0);
      l.conn = undefined;
      this.#o.log(`link to peer hub at ${l.endpoint} closed: its key ${key} was revoked`);
    }
    for (const p of [...this.#peers.values()]) {
      const viaLink = this.#links.some((l) => l.hub === p.hub && set.has(serverKeyOf(l.security)));
      const key = p.identity.startsWith("curve:") ? p.identity.slice(6) : "";
      if (viaLink || set.has(key)) this.#forget(p, `was cut: its key ${key || "of its link"} was revoked`);
    }
  }

  /** Keys were trusted (again): opens the links closed by their revocation. */
  trust(keys: readonly string[]): void {
    if (this.#closed || keys.length === 0) return;
    const set = new Set(keys);
    for (const l of this.#links) {
      if (l.conn !== undefined || !set.has(serverKeyOf(l.security))) continue;
      this.#o.log(`link to peer hub at ${l.endpoint} opens again: its key is trusted`);
      this.#open(l);
    }
  }

  /** True when the site has another host that is reachable or configured. */
  get multiHost(): boolean {
    return this.#multiHost;
  }

  /**
   * A hub-to-hub message arrived on the hub's own listener (a peer connected to this hub).
   * @throws DecodeError when it is malformed
   */
  handleIncoming(o: Record<string, unknown>, reply: (bytes: Buffer) => void, identity = ""): void {
    const m = decodePeerMessage(o);
    this.#incoming.set(m.hub, reply);
    this.#handle(m, reply);
    const p = this.#peers.get(m.hub);
    if (p !== undefined && identity !== "") p.identity = identity;
  }

  /** Sends this hub's change of its own records (from the registry's local journal) to every peer. */
  broadcast(delta: { from: number; version: number; upserts: NodeRecord[]; removed: string[] }): void {
    this.#sendAll(
      encodePeerMessage({ v: 1, t: "peer-delta", hub: this.#o.hubId, host: this.#o.host, ...delta }),
    );
  }

  /** The site as this hub sees it. */
  status(graphVersion: number): SiteStatus {
    const now = Date.now();
    const peers: PeerStatus[] = [];
    const listed = new Set<string>();
    for (const l of this.#links) {
      const p = l.hub !== "" ? this.#peers.get(l.hub) : undefined;
      if (p !== undefined) listed.add(p.hub);
      peers.push(
        p === undefined
          ? {
              hub: "",
              host: "",
              endpoint: l.endpoint,
              found: l.source,
              ...(l.conn === undefined ? { revoked: true } : {}),
              state: "connecting",
              version: 0,
              announced: 0,
              lagVersions: 0,
              silentMs: -1,
              nodes: 0,
            }
          : { ...this.#peerStatus(p, now), endpoint: l.endpoint, found: l.source },
      );
    }
    for (const p of this.#peers.values())
      if (!listed.has(p.hub)) peers.push({ ...this.#peerStatus(p, now), found: "incoming" });
    return {
      hub: this.#o.hubId,
      host: this.#o.host,
      version: this.#o.registry.local.version,
      graphVersion,
      leaseMs: this.#o.leaseMs,
      security: this.#links.some((l) => l.security.mode === "none") ? "none" : "curve",
      nodes: this.#o.registry.idsOf(LOCAL_ORIGIN).length,
      peers,
    };
  }

  /** Closes the links; the peers' records leave the graph. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all(this.#links.map((l) => l.conn?.close(0) ?? Promise.resolve()));
  }

  #peerStatus(p: PeerState, now: number): PeerStatus {
    return {
      hub: p.hub,
      host: p.host,
      state: p.state,
      version: p.version,
      announced: p.announced,
      lagVersions: Math.max(0, p.announced - p.version),
      silentMs: now - p.lastHeard,
      nodes: this.#o.registry.idsOf(p.hub).length,
    };
  }

  #receive(bytes: Buffer, reply: (b: Buffer) => void, link: OutLink): void {
    const o = unpackControl(bytes);
    if (!isPeerMessage(o)) {
      // A hub answers a node message with `error` when it does not speak federation: say so once.
      throw new MyelinError(
        "ERR_PROTOCOL",
        `${link.endpoint} answered with '${String(o["t"])}', not a hub-to-hub message: is it a Myelin hub of the same version?`,
      );
    }
    const m = decodePeerMessage(o);
    link.hub = m.hub;
    this.#handle(m, reply);
  }

  #handle(m: PeerMessage, reply: (b: Buffer) => void): void {
    if (this.#closed) return;
    if (m.hub === this.#o.hubId) {
      this.#bad(
        `a link reaches this hub itself (host ${m.host}): remove this hub's own address from its peers`,
        "this hub",
        "self",
      );
      return;
    }
    const now = Date.now();
    let p = this.#peers.get(m.hub);
    if (p === undefined) {
      // The same host with a new hub id: the peer hub restarted; its old records go now.
      for (const old of [...this.#peers.values()]) {
        if (old.host === m.host && old.hub !== m.hub)
          this.#forget(old, `was replaced by hub ${m.hub} on the same host`);
      }
      p = {
        hub: m.hub,
        host: m.host,
        state: "syncing",
        version: 0,
        announced: 0,
        lastHeard: now,
        wantedAt: 0,
        reply,
        lost: false,
        identity: "",
      };
      this.#peers.set(m.hub, p);
      this.#o.log(`peer hub ${m.hub} on host ${m.host} connected`);
      this.#updateMultiHost();
    }
    p.lastHeard = now;
    p.reply = reply;
    switch (m.t) {
      case "peer-hello":
        reply(this.#snapshot());
        return;
      case "peer-want":
        reply(this.#snapshot());
        return;
      case "peer-snapshot":
        this.#applySnapshot(p, m.version, m.nodes);
        return;
      case "peer-delta":
        p.announced = Math.max(p.announced, m.version);
        if (p.state === "up" && m.from === p.version) {
          this.#applyDelta(p, m.version, m.upserts, m.removed);
        } else if (p.state !== "up" || m.version > p.version) {
          this.#want(p, now);
        }
        return;
      case "peer-beat":
        p.announced = Math.max(p.announced, m.version);
        if (p.state !== "up" || m.version > p.version) this.#want(p, now);
        return;
    }
  }

  #applySnapshot(p: PeerState, version: number, nodes: NodeRecord[]): void {
    const reg = this.#o.registry;
    const keep = new Set(nodes.map((n) => n.id));
    for (const id of reg.idsOf(p.hub)) if (!keep.has(id)) reg.delete(id, p.hub);
    let refused = 0;
    for (const n of nodes) if (!reg.set(n, p.hub)) refused++;
    if (refused > 0)
      this.#bad(
        `peer hub ${p.hub} (${p.host}) sent ${refused} record(s) whose ids another hub owns; they were ignored`,
        `peer hub ${p.hub}`,
        "foreign records",
      );
    const wasLost = p.lost;
    p.lost = false;
    p.state = "up";
    p.version = version;
    p.announced = Math.max(p.announced, version);
    if (wasLost)
      this.#o.log(`peer hub ${p.hub} on host ${p.host} is back: ${nodes.length} node(s) rejoin the graph`);
    this.#o.changed();
  }

  #applyDelta(p: PeerState, version: number, upserts: NodeRecord[], removed: string[]): void {
    const reg = this.#o.registry;
    for (const id of removed) reg.delete(id, p.hub);
    let refused = 0;
    for (const n of upserts) if (!reg.set(n, p.hub)) refused++;
    if (refused > 0)
      this.#bad(
        `peer hub ${p.hub} (${p.host}) sent ${refused} record(s) whose ids another hub owns; they were ignored`,
        `peer hub ${p.hub}`,
        "foreign records",
      );
    p.version = version;
    this.#o.changed();
  }

  #want(p: PeerState, now: number): void {
    if (now - p.wantedAt < Math.max(50, this.#o.leaseMs / 8)) return;
    p.wantedAt = now;
    if (p.state === "unreachable") p.state = "syncing";
    p.reply(encodePeerMessage({ v: 1, t: "peer-want", hub: this.#o.hubId, host: this.#o.host }));
  }

  #forget(p: PeerState, why: string): void {
    this.#peers.delete(p.hub);
    this.#incoming.delete(p.hub);
    const ids = this.#o.registry.idsOf(p.hub);
    for (const id of ids) this.#o.registry.delete(id, p.hub);
    this.#o.log(`peer hub ${p.hub} on host ${p.host} ${why}: ${ids.length} node(s) left the graph`);
    if (ids.length > 0) this.#o.changed();
    this.#updateMultiHost();
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const p of this.#peers.values()) {
      if (p.state !== "unreachable" && now - p.lastHeard > this.#o.leaseMs) {
        p.state = "unreachable";
        p.lost = true;
        const ids = this.#o.registry.idsOf(p.hub);
        for (const id of ids) this.#o.registry.delete(id, p.hub);
        this.#o.log(
          `peer hub ${p.hub} on host ${p.host} is unreachable (silent for ${now - p.lastHeard} ms, lease ${this.#o.leaseMs} ms): ${ids.length} node(s) left the graph`,
        );
        if (ids.length > 0) this.#o.changed();
      }
    }
    this.#sendAll(
      encodePeerMessage({
        v: 1,
        t: "peer-beat",
        hub: this.#o.hubId,
        host: this.#o.host,
        version: this.#o.registry.local.version,
      }),
    );
  }

  #updateMultiHost(): void {
    const multi = this.#links.length > 0 || [...this.#peers.values()].some((p) => p.host !== this.#o.host);
    if (multi === this.#multiHost) return;
    this.#multiHost = multi;
    this.#o.siteChanged(multi);
  }

  /** Starts the site state (a hub configured with peers is part of a multi-host site from the start). */
  start(): void {
    this.#updateMultiHost();
  }

  #hello(): Buffer {
    return encodePeerMessage({
      v: 1,
      t: "peer-hello",
      hub: this.#o.hubId,
      host: this.#o.host,
      version: this.#o.registry.local.version,
      leaseMs: this.#o.leaseMs,
    });
  }

  #snapshot(): Buffer {
    return encodePeerMessage({
      v: 1,
      t: "peer-snapshot",
      hub: this.#o.hubId,
      host: this.#o.host,
      version: this.#o.registry.local.version,
      nodes: this.#o.registry.nodesOf(LOCAL_ORIGIN),
    });
  }

  #sendOut(link: OutLink, bytes: Buffer): void {
    if (!this.#closed) link.conn?.send([bytes]);
  }

  #sendAll(bytes: Buffer): void {
    if (this.#closed) return;
    for (const l of this.#links) if (l.conn?.up === true) l.conn.send([bytes]);
    for (const [hub, reply] of this.#incoming) {
      // A hub reached on an outgoing link already got it there.
      if (this.#links.some((l) => l.hub === hub && l.conn?.up === true)) continue;
      reply(bytes);
    }
  }

  #bad(what: string, peer: string, reason: string): void {
    this.badMessages++;
    const line = `hub-to-hub: ${what}`;
    if (this.#o.logRefusal !== undefined) this.#o.logRefusal(peer, reason, line);
    else this.#o.log(line);
  }
}
