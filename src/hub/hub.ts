/**
 * The hub: one per host. Keeps the registry of nodes, their publications, subscriptions and
 * services; refuses a declaration whose type conflicts with the topic's; sends every node the
 * changes of the graph as versioned deltas (a node that missed one asks for a snapshot); removes
 * a node that stops heartbeating. With peers (federation.ts) it shares its own nodes with the
 * hubs of other hosts and merges theirs; with scouting (scout.ts) it finds those peers on the LAN.
 * Trust and policy are live: a revoked key is cut (its nodes and peer hub leave the graph), and
 * `reloadPolicy` puts a new policy file in force. Refusal lines are rate limited (refusal-log.ts),
 * their counts exact. Never in the path of a message: data flows node to node.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import {
  encodeControl,
  nodeToHubFrom,
  unpackControl,
  type GraphSnapshot,
  type HubToNode,
  type NodeRecord,
  type SiteAdvice,
} from "../node/control-protocol.js";
import { ensureRuntimeDir, hostName, runtimeDir } from "../node/config.js";
import { LinkSecurity } from "../node/link-security.js";
import { AccessPolicy, type PolicyDoc } from "../node/access-policy.js";
import { Authorization, type Ownership } from "./authorization.js";
import { DEFAULT_TRANSPORTS } from "../transport/default-transports.js";
import { receiveLoop } from "../transport/receive-loop.js";
import {
  ANONYMOUS_IDENTITY,
  transportFor,
  type Listener,
  type PeerId,
  type Transports,
  type TransportSecurity,
} from "../transport/transport.js";
import { Federation, type SiteStatus } from "./federation.js";
import { isPeerMessage } from "./federation-protocol.js";
import { GraphRegistry, LOCAL_ORIGIN } from "./graph-registry.js";
import { advertiseAddress, checkPortRange } from "./site-address.js";
import { loadPolicyFile } from "./policy-file.js";
import { Scout } from "./scout.js";
import { SITE_NAME, type Announcement } from "./scout-protocol.js";
import { RefusalLog, type RefusalCounts } from "./refusal-log.js";

import { describeNode } from "./node-names.js";
import { Hub } from "./hub-api.js";
export { describeNode, Hub };

/** Options of a Hub; see HUB_DEFAULTS. */
export interface HubOptions {
  /** Runtime directory for the ipc socket and pid file. */
  runtimeDir: string;
  /** Extra endpoints to listen on, e.g. `tcp://0.0.0.0:7447`. */
  listen: string[];
  /** A node silent for this long is removed, in ms. */
  nodeTimeoutMs: number;
  /** Where human-readable events go (node joined, left, refused). */
  log: (line: string) => void;
  /** The transports by endpoint scheme (default DEFAULT_TRANSPORTS). */
  transports: Transports;
  /**
   * The permission policy (from `loadPolicyFile`), enforced at registration and handed to every
   * node; undefined: the built-in default (see docs/security.md).
   */
  policy: PolicyDoc | undefined;
  /**
   * The file `policy` was read from, read again by {@link Hub.reloadPolicy} (SIGHUP, `myelin
   * policy reload`); undefined: the policy cannot be reloaded.
   */
  policyFile: string | undefined;
  /**
   * Plain text on the `tcp://` endpoints (anyone who reaches the port is an anonymous peer); a
   * warning is logged at start. Default false: tcp uses CURVE with this host's keys and admits
   * only trusted keys.
   */
  insecure: boolean;
  /** The directory of this host's keys and trust list (default: see docs/security.md). */
  keysDir: string | undefined;
  /**
   * Peer hubs of the site to connect to, `tcp://HOST:PORT#KEY` where KEY is the peer host's public
   * key or the name it is trusted under (`#KEY` may be left out with `insecure`); see federation.ts.
   */
  peers: string[];
  /** A peer hub silent for this long is unreachable and its nodes leave the graph, in ms. */
  peerLeaseMs: number;
  /** This host's name in the site (default `$MYELIN_HOST`, else the OS host name). */
  host: string;
  /**
   * The address nodes of this host bind their tcp data endpoint on when the site has other hosts
   * (default `$MYELIN_ADVERTISE_ADDRESS`, else the host of a specific tcp `listen` address, else
   * the first non-loopback IPv4 address).
   */
  advertiseAddress: string | undefined;
  /** Inclusive range of tcp ports for those endpoints; `[0, 0]` lets the system pick. */
  dataPorts: [number, number];
  /**
   * LAN scouting by UDP multicast (scout.ts), off when undefined: the hub announces its first tcp
   * `listen` endpoint and its key, and peers with the hubs of its `site` it hears of (under CURVE,
   * only those whose key is trusted).
   */
  scout: ScoutSettings | undefined;
  /** The site's name: scouting peers only hubs of the same site (default `$MYELIN_SITE`, else `default`). */
  site: string;
  /**
   * Refusal lines are written once per (peer, reason) per window, the rest summarized at its end,
   * in ms (default 10,000; counters are exact either way).
   */
  refusalLogWindowMs: number;
}

/** Where and how often a hub scouts (see HubOptions.scout). */
export interface ScoutSettings {
  /** IPv4 multicast group, e.g. `224.0.0.224`. */
  group: string;
  /** UDP port. */
  port: number;
  /** Address of the interface to scout on (default: the system's choice by route). */
  interfaceAddress?: string;
  /** How often the hub announces itself, in ms (default 1000; a hub unheard for 3.5 intervals expires). */
  intervalMs?: number;
}

/** The outcome of a successful {@link Hub.reloadPolicy}. */
export interface PolicyReload {
  /** The file read. */
  source: string;
  /** Admin identities and grants of the new policy. */
  admins: number;
  grants: number;
  /** False when the file holds the policy already in force (nothing was sent to nodes). */
  changed: boolean;
  /** This hub's nodes, asked to register again when it changed. */
  nodes: number;
}

/** How the hub's network endpoints are secured, for `/_hub/info` and `site status`. */
export interface HubSecurityStatus {
  /** True when tcp endpoints are plain text (`--insecure`). */
  insecure: boolean;
  /** This host's CURVE public key ("" when no tcp endpoint uses CURVE). */
  publicKey: string;
  /** Handshakes and connections refused on the tcp endpoints (untrusted key, plain text, bad proof). */
  refusedHandshakes: number;
}

/**
 * Counts of a hub for its metrics (docs/metrics.md): the graph's size and what the hub refused.
 * Counters count since the hub started.
 */
export interface HubStats {
  /** Nodes of this host in the graph (hidden ones, `_…`, included). */
  localNodes: number;
  /** Nodes of peer hosts in the graph. */
  peerNodes: number;
  /** Distinct topics published or subscribed in the graph (hidden ones, `/_…`, left out). */
  topics: number;
  /** Distinct services served in the graph (hidden ones, `/_…`, left out). */
  services: number;
  /** Version of the merged graph. */
  graphVersion: number;
  /** Declarations refused by the permission policy. */
  refusedPolicy: number;
  /** Declarations refused because the topic or service has another type. */
  refusedConflicts: number;
  /** Registrations, heartbeats and byes refused because the node belongs to another connection. */
  refusedOwnership: number;
  /** Handshakes and connections refused on CURVE endpoints (ZAP). */
  refusedHandshakes: number;
  /** Control messages dropped because they were malformed. */
  badMessages: number;
}

/** Defaults of HubOptions. */
export const HUB_DEFAULTS = {
  listen: [] as string[],
  nodeTimeoutMs: 3000,
  log: (_line: string): void => {},
  transports: DEFAULT_TRANSPORTS,
  insecure: false,
  keysDir: undefined as string | undefined,
  policy: undefined,
  policyFile: undefined as string | undefined,
  peers: [] as string[],
  peerLeaseMs: 3000,
  advertiseAddress: undefined as string | undefined,
  dataPorts: [0, 0] as [number, number],
  scout: undefined as ScoutSettings | undefined,
  refusalLogWindowMs: 10_000,
};

/** Where a node's control messages come from, to answer it there. */
interface Route {
  listener: Listener;
  peer: PeerId;
}

/** A node of this hub (its record is in the registry). */
interface Entry {
  route: Route;
  lastSeen: number;
  /** Who registered it: only that connection, or the same node reconnected, may change it. */
  owner: Ownership;
  /** True until the node got its first snapshot. */
  needsSnapshot: boolean;
  /** Unreachable endpoints already logged, to log each once. */
  reported: Set<string>;
}

function sameRoute(a: Route, b: Route): boolean {
  return a.listener === b.listener && a.peer.equals(b.peer);
}

/** How refusal lines name a connection: its CURVE identity, else its kind and connection id. */
function peerName(route: Route, identity: string): string {
  if (identity.startsWith("curve:")) return identity;
  return `${identity} connection ${route.peer.toString("hex").slice(0, 16)}`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A zombie (a killed hub whose parent has not reaped it yet) is not a running hub.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return true;
  }
}

/**
 * The running hub behind {@link Hub}: `Hub.start()` loads this module and starts one. Its public
 * members are documented on {@link Hub}.
 */
export class HubServer extends Hub {
  /** Id of this hub instance. */
  override readonly id = randomUUID();
  readonly #opts: HubOptions;
  readonly #listeners: Listener[] = [];
  readonly #nodes = new Map<string, Entry>();
  readonly #graph = new GraphRegistry();
  #federation: Federation | undefined;
  #site: SiteAdvice | undefined;
  #pushScheduled = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #startedAt = Date.now();
  #endpoints: string[] = [];
  #pidFile = "";
  #sockPath = "";
  #closed = false;
  /** Control messages dropped because they were malformed. */
  override badMessages = 0;
  /** Handshakes and connections refused on CURVE endpoints. */
  override refusedHandshakes = 0;
  /** Declarations refused because their type conflicts with the graph's. */
  #conflictRefusals = 0;
  #publicKey = "";

  readonly #auth: Authorization;
  /** Refusal lines, rate limited per (peer, reason). */
  readonly #refusalLog: RefusalLog;
  #security: LinkSecurity | undefined;
  #unwatchTrust: (() => void) | undefined;
  #scout: Scout | undefined;
  /** Scouted hubs and keys already logged as not peered (each once). */
  readonly #scoutLogged = new Set<string>();
  /** Announcements of this site's hubs whose key is not trusted here. */
  #scoutUntrusted = 0;
  /** Hub-to-hub messages dropped because they came on a link that proved no trusted key. */
  override refusedPeerMessages = 0;

  private constructor(opts: HubOptions) {
    super();
    this.#opts = opts;
    this.#auth = new Authorization(
      opts.policy === undefined ? AccessPolicy.DEFAULT : new AccessPolicy(opts.policy),
    );
    this.#refusalLog = new RefusalLog({ log: opts.log, windowMs: opts.refusalLogWindowMs });
  }

  /** Control messages and declarations refused so far (ownership, policy). */
  override get refusals(): { ownership: number; declarations: number } {
    return { ownership: this.#auth.ownershipRefusals, declarations: this.#auth.declarationRefusals };
  }

  /** Everything refused since the start, by kind (exact), and the log lines suppressed. */
  override refusalCounts(): RefusalCounts {
    return {
      handshakes: this.refusedHandshakes,
      ownership: this.#auth.ownershipRefusals,
      declarations: this.#auth.declarationRefusals,
      malformed: this.badMessages,
      peerMessages: this.refusedPeerMessages + (this.#federation?.badMessages ?? 0),
      logLinesSuppressed: this.#refusalLog.suppressed,
    };
  }

  /**
   * Reads the policy file again and, when it is valid, puts it in force: later registrations are
   * checked against it, and every node of this hub is asked to register again, which hands it the
   * new policy (its data server checks subscribers and callers with it) and re-checks its
   * declarations. A bad file changes nothing.
   * @throws MyelinError ERR_BAD_CONFIG naming the file and the entry (the old policy stays);
   *   ERR_INVALID_ARGUMENT when the hub was started without a policy file
   */
  override reloadPolicy(): PolicyReload {
    const file = this.#opts.policyFile;
    if (file === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        "this hub was started without a policy file, so there is nothing to reload: restart it with --policy FILE (or MYELIN_POLICY)",
      );
    }
    let doc: PolicyDoc;
    let access: AccessPolicy;
    try {
      doc = loadPolicyFile(file);
      access = new AccessPolicy(doc);
    } catch (err) {
      this.#opts.log(`policy reload refused, the policy in force stays: ${(err as Error).message}`);
      throw err;
    }
    const changed = JSON.stringify(doc) !== JSON.stringify(this.#auth.policy.doc);
    this.#auth.policy = access;
    this.#opts.log(
      `policy reloaded from ${file}: ${doc.admins.length} admin identit${doc.admins.length === 1 ? "y" : "ies"}, ${doc.grants.length} grant(s)${changed ? `; ${this.#nodes.size} node(s) asked to register again` : " (unchanged)"}`,
    );
    if (changed)
      for (const e of this.#nodes.values()) this.#send(e.route, { v: 1, t: "reregister", hub: this.id });
    return {
      source: file,
      admins: doc.admins.length,
      grants: doc.grants.length,
      changed,
      nodes: this.#nodes.size,
    };
  }

  /** The policy in force (the default when no policy file was given). */
  override get policy(): PolicyDoc {
    return this.#auth.policy.doc;
  }

  /**
   * Starts a hub on `<runtimeDir>/hub.sock` and the `listen` endpoints.
   * @throws MyelinError ERR_INVALID_ARGUMENT if another hub already runs in the runtime directory
   */
  static override async start(opts: Partial<HubOptions> = {}): Promise<HubServer> {
    const full: HubOptions = {
      ...HUB_DEFAULTS,
      host: hostName(),
      site: process.env["MYELIN_SITE"] || "default",
      ...stripUndefined(opts),
      runtimeDir: runtimeDir(opts.runtimeDir),
    };
    checkPortRange(full.dataPorts);
    if (full.policy === undefined && full.policyFile !== undefined)
      full.policy = loadPolicyFile(full.policyFile);
    if (!Number.isInteger(full.peerLeaseMs) || full.peerLeaseMs < 100) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `peerLeaseMs must be a whole number of ms >= 100, got ${String(full.peerLeaseMs)}`,
      );
    }
    const dir = ensureRuntimeDir(full.runtimeDir);
    const pidFile = join(dir, "hub.pid");
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `a hub already runs in ${dir} (pid ${pid}); stop it first, or use another runtime directory (MYELIN_RUNTIME_DIR)`,
        );
      }
    }
    const hub = new HubServer(full);
    const sockPath = join(dir, "hub.sock");
    rmSync(sockPath, { force: true });
    const security = new LinkSecurity({
      insecure: full.insecure,
      keysDir: full.keysDir,
      onRefused: (r) => {
        hub.refusedHandshakes++;
        const who = r.publicKey === "" ? "" : ` with key ${r.publicKey}`;
        hub.#refusalLog.report(
          `${r.address === "" ? "an unknown address" : r.address}${who}`,
          `handshake ${r.reason}`,
          `refused a connection${r.address === "" ? "" : ` from ${r.address}`}${who}: ${r.reason}` +
            (r.publicKey !== "" && /not trusted/.test(r.reason)
              ? ` (to admit it: myelin keys trust NAME ${r.publicKey})`
              : ""),
          Date.now(),
        );
      },
    });
    hub.#security = security;
    for (const ep of [`ipc://${sockPath}`, ...full.listen]) {
      let listener: Listener;
      // Before binding: a tcp endpoint without keys is refused with the fix, never bound in clear.
      let sec: ReturnType<LinkSecurity["listen"]>;
      try {
        sec = security.listen(ep);
      } catch (err) {
        for (const l of hub.#listeners) await l.close(0);
        throw err;
      }
      if (sec !== undefined && sec.mode === "curve") hub.#publicKey = sec.publicKey;
      try {
        listener = await transportFor(full.transports, ep).listen(ep, {
          maxMessageBytes: 16 * 1024 * 1024,
          ...(sec !== undefined ? { security: sec } : {}),
        });
      } catch (err) {
        for (const l of hub.#listeners) await l.close(0);
        const reason = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
        const inUse = /in use/i.test(reason);
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `the hub cannot listen on ${ep}: ${reason}` +
            (inUse
              ? "; another process holds that address (another hub?): stop it or choose another port"
              : "; check the address (tcp://HOST:PORT or ipc://PATH)"),
          { cause: err },
        );
      }
      hub.#listeners.push(listener);
      hub.#endpoints.push(listener.endpoint);
      if (full.insecure && ep.startsWith("tcp://")) {
        full.log(
          `WARNING: ${listener.endpoint} is plain text (--insecure): anyone who reaches it can read the graph, register nodes and remove them; use CURVE (myelin keys init, without --insecure) on any network you do not fully trust`,
        );
      }
    }
    writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
    hub.#pidFile = pidFile;
    hub.#sockPath = sockPath;
    hub.#timer = setInterval(() => hub.#sweep(), Math.max(50, Math.floor(full.nodeTimeoutMs / 4)));
    for (const l of hub.#listeners) void hub.#receiveLoop(l);
    try {
      // `tcp://HOST:PORT#KEY`: the link to that peer hub is CURVE with KEY (a key or a trusted
      // name) as the server's key; plain text only with --insecure.
      const peerSecurity = new Map<string, TransportSecurity>();
      const peers = full.peers.map((spec) => {
        const at = spec.indexOf("#");
        const endpoint = at < 0 ? spec : spec.slice(0, at);
        const key = at < 0 ? undefined : security.store.resolve(spec.slice(at + 1), `--peer ${spec}`);
        const sec = security.connect(
          endpoint,
          key,
          `give the peer hub's key: --peer ${endpoint}#KEY, where KEY is its host's public key ('myelin keys show' there) or the name you trusted it under ('myelin keys trust NAME KEY'); or start every hub of the site with --insecure`,
        );
        peerSecurity.set(endpoint, sec ?? { mode: "none" });
        return endpoint;
      });
      hub.#federation = new Federation({
        hubId: hub.id,
        host: full.host,
        peers,
        leaseMs: full.peerLeaseMs,
        securityFor: (endpoint) => peerSecurity.get(endpoint) ?? { mode: "none" },
        transports: full.transports,
        registry: hub.#graph,
        changed: () => hub.#changed(),
        siteChanged: (multi) => hub.#siteChanged(multi),
        log: full.log,
        logRefusal: (peer, reason, line) => hub.#refusalLog.report(peer, reason, line, Date.now()),
      });
      hub.#federation.start();
      if (full.scout !== undefined) await hub.#startScout(full.scout, security);
      // Trust is live: a revoked key's nodes and peer hub are cut now, not at the next handshake.
      if (!full.insecure && (peers.length > 0 || full.listen.some((ep) => ep.startsWith("tcp://"))))
        hub.#unwatchTrust = security.onTrustChange((c) => hub.#trustChanged(c.revoked, c.trusted));
    } catch (err) {
      hub.close();
      throw err;
    }
    return hub;
  }

  /** This host's name in the site. */
  override get host(): string {
    return this.#opts.host;
  }

  /** The site as this hub sees it: its peers, their state, lag and versions. */
  override siteStatus(): SiteStatus {
    const status = this.#federation!.status(this.#graph.site.version);
    // Plain text anywhere on this hub's tcp endpoints is what a reader of `site status` must see.
    if (this.#opts.insecure) status.security = "none (--insecure)";
    status.refusals = this.refusalCounts();
    if (this.#scout !== undefined)
      status.scout = { ...this.#scout.status(), untrusted: this.#scoutUntrusted };
    return status;
  }

  /** A node silent for this long is removed, in ms. */
  override get nodeTimeoutMs(): number {
    return this.#opts.nodeTimeoutMs;
  }

  /** Endpoints the hub listens on (ipc first). */
  override get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** How the network endpoints are secured. */
  override security(): HubSecurityStatus {
    return {
      insecure: this.#opts.insecure,
      publicKey: this.#publicKey,
      refusedHandshakes: this.refusedHandshakes,
    };
  }

  /** The graph's size and the refusals so far, for the metrics; costs one pass over the graph. */
  override stats(): HubStats {
    const topics = new Set<string>();
    const services = new Set<string>();
    const nodes = this.#graph.nodes();
    for (const n of nodes) {
      for (const d of n.pubs) if (!d.topic.startsWith("/_")) topics.add(d.topic);
      for (const d of n.subs) if (!d.topic.startsWith("/_")) topics.add(d.topic);
      for (const d of n.services) if (!d.service.startsWith("/_")) services.add(d.service);
    }
    const localNodes = this.#graph.idsOf(LOCAL_ORIGIN).length;
    return {
      localNodes,
      peerNodes: nodes.length - localNodes,
      topics: topics.size,
      services: services.size,
      graphVersion: this.#graph.site.version,
      refusedPolicy: this.#auth.declarationRefusals,
      refusedConflicts: this.#conflictRefusals,
      refusedOwnership: this.#auth.ownershipRefusals,
      refusedHandshakes: this.refusedHandshakes,
      badMessages: this.badMessages,
    };
  }

  /** The current graph (this hub's nodes and those its peers share). */
  override graph(): GraphSnapshot {
    return {
      hub: this.id,
      version: this.#graph.site.version,
      settled: this.#settled(),
      nodes: this.#graph.nodes(),
      removed: [],
    };
  }

  #settled(): boolean {
    return Date.now() - this.#startedAt > this.#opts.nodeTimeoutMs;
  }

  /** Stops the hub. Nodes keep running and re-register with the next hub. */
  override close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#unwatchTrust?.();
    void this.#scout?.close();
    void this.#federation?.close();
    for (const l of this.#listeners) void l.close(0);
    try {
      // The pid file still naming this process means no other hub took this runtime dir over.
      if (readFileSync(this.#pidFile, "utf8").trim() === String(process.pid)) {
        rmSync(this.#pidFile, { force: true });
        rmSync(this.#sockPath, { force: true });
      }
    } catch {
      // already gone
    }
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #send(route: Route, msg: HubToNode): void {
    if (!this.#closed) route.listener.send(route.peer, [encodeControl(msg)]);
  }

  #receiveLoop(listener: Listener): Promise<void> {
    return receiveLoop(
      listener,
      (msg) => this.#receive({ listener, peer: msg.peer }, msg.identity, msg.frames[0] ?? Buffer.alloc(0)),
      (err, msg) => {
        this.badMessages++;
        this.#refusalLog.report(
          peerName({ listener, peer: msg.peer }, msg.identity),
          "malformed",
          `dropped a malformed control message from ${peerName({ listener, peer: msg.peer }, msg.identity)}: ${err.message}`,
          Date.now(),
        );
        this.#send({ listener, peer: msg.peer }, { v: 1, t: "error", message: err.message });
      },
    );
  }

  #receive(route: Route, linkIdentity: string, bytes: Buffer): void {
    const o = unpackControl(bytes);
    if (isPeerMessage(o)) {
      // Hub-to-hub: only from a link that proved a trusted key (CURVE), this host, or anyone when
      // this hub was started --insecure.
      if (linkIdentity === ANONYMOUS_IDENTITY && !this.#opts.insecure) {
        this.refusedPeerMessages++;
        return;
      }
      const peer = Buffer.from(route.peer);
      this.#federation?.handleIncoming(
        o,
        (b) => {
          if (!this.#closed) route.listener.send(peer, [b]);
        },
        linkIdentity,
      );
      return;
    }
    this.#handle(route, linkIdentity, o);
  }

  #handle(route: Route, linkIdentity: string, o: Record<string, unknown>): void {
    const m = nodeToHubFrom(o);
    switch (m.t) {
      case "register": {
        const origin = this.#graph.origin(m.node.id);
        if (origin !== undefined && origin !== LOCAL_ORIGIN) {
          this.#send(route, {
            v: 1,
            t: "error",
            message: `node id ${m.node.id} belongs to a node of another host's hub; a node registers only with its own id`,
          });
          return;
        }
        const identity = this.#auth.identityOf(linkIdentity, m.credential);
        const policy = this.#auth.policy.doc;
        const known = this.#nodes.get(m.node.id);
        if (known !== undefined && !sameRoute(known.route, route)) {
          const rec = this.#graph.get(m.node.id);
          const what = `node id ${m.node.id} (${describeNode(rec?.name ?? "?")}, pid ${rec?.pid ?? "?"})`;
          const v = this.#auth.mayReconnect(known.owner, identity, m.secret, what);
          if (!v.ok) {
            this.#refusalLog.report(peerName(route, identity), "ownership", v.message, Date.now());
            const refused = [
              { kind: "node" as const, name: m.node.id, code: "ERR_NOT_AUTHORIZED", message: v.message },
            ];
            this.#send(route, { v: 1, t: "registered", hub: this.id, refused, req: m.req, policy, identity });
            return;
          }
        }
        m.node.identity = identity;
        // Refused declarations are removed first, so they never claim a topic's type.
        const byPolicy = this.#auth.filterDeclarations(m.node, identity);
        const conflicts = this.#graph.conflicts(m.node);
        this.#conflictRefusals += conflicts.length;
        const refused = [...byPolicy, ...conflicts];
        this.#nodes.set(m.node.id, {
          route: { listener: route.listener, peer: Buffer.from(route.peer) },
          lastSeen: Date.now(),
          owner: known?.owner ?? this.#auth.own(identity, m.secret),
          needsSnapshot: known?.needsSnapshot ?? true,
          reported: known?.reported ?? new Set(),
        });
        this.#graph.set(m.node, LOCAL_ORIGIN);
        if (known === undefined)
          this.#opts.log(
            `node ${m.node.name} joined (pid ${m.node.pid}, ${m.node.endpoint}, identity ${identity})`,
          );
        for (const r of refused)
          this.#refusalLog.report(
            peerName(route, identity),
            `${r.code} ${r.kind} ${r.name}`,
            `refused ${r.kind} ${r.name} of node ${m.node.name}: ${r.message}`,
            Date.now(),
          );
        this.#logUnreachable(m.node);
        const reply: HubToNode = {
          v: 1,
          t: "registered",
          hub: this.id,
          refused,
          req: m.req,
          policy,
          identity,
          host: this.#opts.host,
        };
        if (this.#site !== undefined) reply.site = this.#site;
        this.#send(route, reply);
        this.#changed();
        return;
      }
      case "heartbeat": {
        const e = this.#nodes.get(m.id);
        // Unknown here, or registered on another connection (the node reconnected, or someone
        // else): ask for a registration, which only the node itself can make with its secret.
        if (e === undefined || !sameRoute(e.route, route)) {
          this.#send(route, { v: 1, t: "reregister", hub: this.id });
          return;
        }
        e.lastSeen = Date.now();
        return;
      }
      case "bye": {
        const e = this.#nodes.get(m.id);
        if (e === undefined) return;
        if (!sameRoute(e.route, route)) {
          const v = this.#auth.notOwner(
            "bye",
            e.owner,
            linkIdentity,
            `${describeNode(this.#graph.get(m.id)?.name ?? "?")} (id ${m.id})`,
          );
          if (!v.ok) {
            this.#refusalLog.report(peerName(route, linkIdentity), "ownership", v.message, Date.now());
            this.#send(route, { v: 1, t: "error", message: v.message });
          }
          return;
        }
        this.#remove(m.id, "left");
        return;
      }
      case "query":
        this.#send(route, { v: 1, t: "graph", graph: this.graph(), req: m.req });
        return;
      case "site":
        this.#send(route, { v: 1, t: "site", req: m.req, json: JSON.stringify(this.siteStatus()) });
        return;
      case "sync":
        // A node that missed a delta: a snapshot now (it is marked, so a batch in flight skips it).
        this.#send(route, { v: 1, t: "graph", graph: this.graph() });
        return;
    }
  }

  /** Logs, once each, the endpoints a node says it cannot reach. */
  #logUnreachable(node: NodeRecord): void {
    const e = this.#nodes.get(node.id);
    if (e === undefined || node.unreachable === undefined) return;
    for (const u of node.unreachable) {
      const key = `${u.node} ${u.endpoint}`;
      if (e.reported.has(key)) continue;
      e.reported.add(key);
      const target = this.#graph.get(u.node);
      this.#opts.log(
        `node ${node.name} cannot reach ${target !== undefined ? `node ${target.name} on host ${target.host}` : `node ${u.node}`} at ${u.endpoint}: ${u.reason}`,
      );
    }
  }

  /**
   * Keys left or joined the trusted set. A revoked key's nodes registered here leave the graph now
   * (the listener drops their messages from then on, so they cannot come back), and its peer hub is
   * cut (federation.ts); a key trusted again comes back by itself: its nodes' next heartbeat is
   * answered with a request to register, and the closed peer links open again.
   */
  #trustChanged(revoked: readonly string[], trusted: readonly string[]): void {
    if (this.#closed) return;
    for (const key of revoked) {
      const identity = `curve:${key}`;
      let cut = 0;
      for (const [id, e] of [...this.#nodes]) {
        if (e.owner.identity !== identity) continue;
        this.#remove(id, `was cut: its key ${key} was revoked`);
        cut++;
      }
      this.#opts.log(
        `key ${key} revoked: its connections are refused from now on, ${cut} node(s) registered with it left the graph`,
      );
    }
    for (const key of trusted) this.#opts.log(`key ${key} trusted: its connections are admitted`);
    this.#federation?.revoke(revoked);
    this.#federation?.trust(trusted);
  }

  /**
   * Starts scouting: announces the first tcp endpoint (its wildcard host replaced by the advertised
   * address) with this host's key.
   * @throws MyelinError ERR_INVALID_ARGUMENT without a tcp endpoint or an address to announce
   */
  async #startScout(s: ScoutSettings, security: LinkSecurity): Promise<void> {
    if (!SITE_NAME.test(this.#opts.site)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `site name '${this.#opts.site}' is not valid: use 1-64 letters, digits, '_', '.', '-' (--site or MYELIN_SITE)`,
      );
    }
    const tcp = this.#endpoints.find((e) => e.startsWith("tcp://"));
    if (tcp === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        "scouting announces the hub's tcp endpoint to its peers, and this hub has none: add --listen tcp://0.0.0.0:7447 (or the address of the site's network)",
      );
    }
    const m = /^tcp:\/\/(.+):(\d+)$/.exec(tcp)!;
    let host = m[1]!;
    if (host === "0.0.0.0" || host === "*" || host === "[::]") {
      const a = s.interfaceAddress ?? advertiseAddress(this.#opts.advertiseAddress, this.#opts.listen);
      if (a === undefined) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `scouting must announce an address peers reach ${tcp} on, and this host has none: set --advertise-address`,
        );
      }
      host = a;
    }
    this.#scout = await Scout.start({
      group: s.group,
      port: s.port,
      interfaceAddress: s.interfaceAddress,
      self: {
        site: this.#opts.site,
        host: this.#opts.host,
        hub: this.id,
        endpoint: `tcp://${host}:${m[2]!}`,
        key: this.#opts.insecure ? "" : this.#publicKey || security.hostKeys(tcp).publicKey,
        intervalMs: s.intervalMs ?? 1000,
      },
      onHub: (a) => this.#scouted(a, security),
      onExpired: (a) => void this.#federation?.dropScouted(a.endpoint),
      log: this.#opts.log,
    });
    this.#opts.log(
      `scouting on ${s.group}:${s.port} for site ${this.#opts.site}: announcing ${`tcp://${host}:${m[2]!}`} every ${s.intervalMs ?? 1000} ms`,
    );
  }

  /** A hub of the site announced itself: peer with it if its key is trusted (or both are plain text). */
  #scouted(a: Announcement, security: LinkSecurity): void {
    if (this.#closed || this.#federation === undefined) return;
    const once = (key: string, line: string): void => {
      if (this.#scoutLogged.has(key)) return;
      if (this.#scoutLogged.size >= 1000) this.#scoutLogged.clear();
      this.#scoutLogged.add(key);
      this.#opts.log(line);
    };
    const who = `hub ${a.hub} on host ${a.host} (${a.endpoint})`;
    if (this.#opts.insecure) {
      if (a.key !== "") {
        once(`curve ${a.hub}`, `scouting: ${who} uses CURVE and this hub is --insecure: not peered`);
        return;
      }
      this.#federation.addScouted(a.endpoint, a.hub, { mode: "none" });
      return;
    }
    if (a.key === "") {
      once(
        `plain ${a.hub}`,
        `scouting: ${who} is plain text (--insecure) and this hub uses CURVE: not peered`,
      );
      return;
    }
    let trusted = false;
    try {
      trusted = security.store.isTrusted(a.key);
    } catch (err) {
      once(
        `error ${(err as Error).message}`,
        `scouting: the trust lists cannot be read: ${(err as Error).message}`,
      );
    }
    if (!trusted) {
      this.#scoutUntrusted++;
      once(
        `key ${a.key}`,
        `scouting: ${who} announces key ${a.key}, which this host does not trust: not peered (an announcement is no credential; to peer with it: myelin keys trust ${a.host} ${a.key})`,
      );
      return;
    }
    const sec = security.connect(a.endpoint, a.key, "the announcement's key");
    this.#federation.addScouted(a.endpoint, a.hub, sec ?? { mode: "none" });
  }

  /** Reads the trust lists again now (also done by a watch of the key directory and a 1 s poll). */
  override checkTrust(): void {
    this.#security?.checkTrust();
  }

  /** The site gained its first other host, or lost its last: nodes learn where to bind for it. */
  #siteChanged(multiHost: boolean): void {
    if (!multiHost) {
      this.#site = undefined;
      return;
    }
    const address = advertiseAddress(this.#opts.advertiseAddress, this.#opts.listen);
    if (address === undefined) {
      this.#opts.log(
        "the site has other hosts but this host has no address to advertise to them: set --advertise-address (or MYELIN_ADVERTISE_ADDRESS); nodes of other hosts cannot reach this host's nodes",
      );
      return;
    }
    this.#site = { address, ports: this.#opts.dataPorts };
    this.#opts.log(`the site has other hosts: nodes here also bind tcp on ${address} for them`);
    // Nodes registered before learn it with their next registration: ask them for it now.
    for (const e of this.#nodes.values()) this.#send(e.route, { v: 1, t: "reregister", hub: this.id });
  }

  #remove(id: string, why: string): void {
    const e = this.#nodes.get(id);
    if (e === undefined) return;
    this.#nodes.delete(id);
    const record = this.#graph.delete(id, LOCAL_ORIGIN);
    if (record !== undefined) this.#opts.log(`node ${record.name} ${why} (pid ${record.pid})`);
    this.#changed();
  }

  #sweep(): void {
    const now = Date.now();
    this.#refusalLog.flush(now);
    for (const [id, e] of this.#nodes) {
      if (now - e.lastSeen > this.#opts.nodeTimeoutMs)
        this.#remove(id, "stopped heartbeating and was removed");
    }
  }

  /**
   * Schedules the push of what changed: once per event-loop turn, one delta encoded once for every
   * node that holds the previous version, one snapshot encoded once for the nodes that hold none,
   * and this hub's own changes to its peers.
   */
  #changed(): void {
    if (this.#pushScheduled) return;
    this.#pushScheduled = true;
    setImmediate(() => {
      this.#pushScheduled = false;
      if (this.#closed) return;
      const local = this.#graph.local.take();
      if (local !== undefined) this.#federation?.broadcast(local);
      const d = this.#graph.site.take();
      let deltaBytes: Buffer | undefined;
      let snapshotBytes: Buffer | undefined;
      for (const e of this.#nodes.values()) {
        if (e.needsSnapshot) {
          snapshotBytes ??= encodeControl({ v: 1, t: "graph", graph: this.graph() });
          e.needsSnapshot = false;
          e.route.listener.send(e.route.peer, [snapshotBytes]);
        } else if (d !== undefined) {
          deltaBytes ??= encodeControl({
            v: 1,
            t: "delta",
            delta: { hub: this.id, settled: this.#settled(), ...d },
          });
          e.route.listener.send(e.route.peer, [deltaBytes]);
        }
      }
    });
  }
}
