/**
 * The hub: one per host. Keeps the registry of nodes, their publications, subscriptions and
 * services; refuses a declaration whose type conflicts with the topic's; pushes the graph to
 * every node when it changes; removes a node that stops heartbeating and tells its peers.
 * Never in the path of a message: data flows node to node.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import {
  decodeNodeToHub,
  encodeControl,
  type GraphSnapshot,
  type HubToNode,
  type NodeRecord,
  type Refusal,
} from "../node/control-protocol.js";
import { ensureRuntimeDir, runtimeDir } from "../node/config.js";
import { LinkSecurity } from "../node/link-security.js";
import { AccessPolicy, type PolicyDoc } from "../node/access-policy.js";
import { Authorization, type Ownership } from "./authorization.js";
import { DEFAULT_TRANSPORTS } from "../transport/default-transports.js";
import { receiveLoop } from "../transport/receive-loop.js";
import { transportFor, type Listener, type PeerId, type Transports } from "../transport/transport.js";

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
   * Plain text on the `tcp://` endpoints (anyone who reaches the port is an anonymous peer); a
   * warning is logged at start. Default false: tcp uses CURVE with this host's keys and admits
   * only trusted keys.
   */
  insecure: boolean;
  /** The directory of this host's keys and trust list (default: see docs/security.md). */
  keysDir: string | undefined;
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

/** Defaults of HubOptions. */
export const HUB_DEFAULTS = {
  listen: [] as string[],
  nodeTimeoutMs: 3000,
  log: (_line: string): void => {},
  transports: DEFAULT_TRANSPORTS,
  insecure: false,
  keysDir: undefined as string | undefined,
  policy: undefined,
};

/** Where a node's control messages come from, to answer it there. */
interface Route {
  listener: Listener;
  peer: PeerId;
}

interface Entry {
  record: NodeRecord;
  route: Route;
  lastSeen: number;
  /** Who registered it: only that connection, or the same node reconnected, may change it. */
  owner: Ownership;
}

function sameRoute(a: Route, b: Route): boolean {
  return a.listener === b.listener && a.peer.equals(b.peer);
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

/** A node as a user knows it: the hidden nodes of the CLI and the hub's services by what they are. */
export function describeNode(name: string): string {
  const cli = /^_myelin_(.+)_(\d+)$/.exec(name);
  if (cli !== null) return `the CLI (myelin ${cli[1]!.replace(/_/g, " ")}, pid ${cli[2]})`;
  if (name === "_store") return "the hub's store";
  if (name === "_gateway") return "the MQTT gateway";
  if (name.startsWith("_supervisor")) return "the hub's supervisor";
  return `node ${name}`;
}

/** A running hub. Create with `Hub.start()`; stop with `close()` or `await using`. */
export class Hub {
  /** Id of this hub instance. */
  readonly id = randomUUID();
  readonly #opts: HubOptions;
  readonly #listeners: Listener[] = [];
  readonly #nodes = new Map<string, Entry>();
  #removed: string[] = [];
  #version = 0;
  #pushScheduled = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #startedAt = Date.now();
  #endpoints: string[] = [];
  #pidFile = "";
  #sockPath = "";
  #closed = false;
  /** Control messages dropped because they were malformed. */
  badMessages = 0;
  /** Handshakes and connections refused on CURVE endpoints. */
  refusedHandshakes = 0;
  #publicKey = "";

  readonly #auth: Authorization;

  private constructor(opts: HubOptions) {
    this.#opts = opts;
    this.#auth = new Authorization(
      opts.policy === undefined ? AccessPolicy.DEFAULT : new AccessPolicy(opts.policy),
    );
  }

  /** Control messages and declarations refused so far (ownership, policy). */
  get refusals(): { ownership: number; declarations: number } {
    return { ownership: this.#auth.ownershipRefusals, declarations: this.#auth.declarationRefusals };
  }

  /** The policy in force (the default when no policy file was given). */
  get policy(): PolicyDoc {
    return this.#auth.policy.doc;
  }

  /**
   * Starts a hub on `<runtimeDir>/hub.sock` and the `listen` endpoints.
   * @throws MyelinError ERR_INVALID_ARGUMENT if another hub already runs in the runtime directory
   */
  static async start(opts: Partial<HubOptions> = {}): Promise<Hub> {
    const full: HubOptions = {
      ...HUB_DEFAULTS,
      ...stripUndefined(opts),
      runtimeDir: runtimeDir(opts.runtimeDir),
    };
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
    const hub = new Hub(full);
    const sockPath = join(dir, "hub.sock");
    rmSync(sockPath, { force: true });
    /** When each refused peer (address and key) was last logged: once a minute each, counted always. */
    const lastLogged = new Map<string, number>();
    const security = new LinkSecurity({
      insecure: full.insecure,
      keysDir: full.keysDir,
      onRefused: (r) => {
        hub.refusedHandshakes++;
        const peer = `${r.address} ${r.publicKey} ${r.reason}`;
        const now = Date.now();
        if (now - (lastLogged.get(peer) ?? -Infinity) < 60_000) return;
        if (lastLogged.size > 1000) lastLogged.clear();
        lastLogged.set(peer, now);
        const who = r.publicKey === "" ? "" : ` with key ${r.publicKey}`;
        full.log(
          `refused a connection${r.address === "" ? "" : ` from ${r.address}`}${who}: ${r.reason}` +
            (r.publicKey !== "" && /not trusted/.test(r.reason)
              ? ` (to admit it: myelin keys trust NAME ${r.publicKey})`
              : ""),
        );
      },
    });
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
    return hub;
  }

  /** Endpoints the hub listens on (ipc first). */
  /** A node silent for this long is removed, in ms. */
  get nodeTimeoutMs(): number {
    return this.#opts.nodeTimeoutMs;
  }

  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** How the network endpoints are secured. */
  security(): HubSecurityStatus {
    return {
      insecure: this.#opts.insecure,
      publicKey: this.#publicKey,
      refusedHandshakes: this.refusedHandshakes,
    };
  }

  /** The current graph. */
  graph(): GraphSnapshot {
    return {
      hub: this.id,
      version: this.#version,
      settled: Date.now() - this.#startedAt > this.#opts.nodeTimeoutMs,
      nodes: [...this.#nodes.values()].map((e) => e.record),
      removed: [],
    };
  }

  /** Stops the hub. Nodes keep running and re-register with the next hub. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
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

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #send(route: Route, msg: HubToNode): void {
    if (!this.#closed) route.listener.send(route.peer, [encodeControl(msg)]);
  }

  #receiveLoop(listener: Listener): Promise<void> {
    return receiveLoop(
      listener,
      (msg) => this.#handle({ listener, peer: msg.peer }, msg.identity, msg.frames[0] ?? Buffer.alloc(0)),
      (err, msg) => {
        this.badMessages++;
        this.#opts.log(`dropped a malformed control message: ${err.message}`);
        this.#send({ listener, peer: msg.peer }, { v: 1, t: "error", message: err.message });
      },
    );
  }

  #handle(route: Route, linkIdentity: string, bytes: Buffer): void {
    const m = decodeNodeToHub(bytes);
    switch (m.t) {
      case "register": {
        const identity = this.#auth.identityOf(linkIdentity, m.credential);
        const policy = this.#auth.policy.doc;
        const known = this.#nodes.get(m.node.id);
        if (known !== undefined && !sameRoute(known.route, route)) {
          const what = `node id ${m.node.id} (${describeNode(known.record.name)}, pid ${known.record.pid})`;
          const v = this.#auth.mayReconnect(known.owner, identity, m.secret, what);
          if (!v.ok) {
            this.#opts.log(v.message);
            const refused = [
              { kind: "node" as const, name: m.node.id, code: "ERR_NOT_AUTHORIZED", message: v.message },
            ];
            this.#send(route, { v: 1, t: "registered", hub: this.id, refused, req: m.req, policy, identity });
            return;
          }
        }
        m.node.identity = identity;
        const refused = [...this.#auth.filterDeclarations(m.node, identity), ...this.#conflicts(m.node)];
        this.#nodes.set(m.node.id, {
          record: m.node,
          route: { listener: route.listener, peer: Buffer.from(route.peer) },
          lastSeen: Date.now(),
          owner: known?.owner ?? this.#auth.own(identity, m.secret),
        });
        if (known === undefined)
          this.#opts.log(
            `node ${m.node.name} joined (pid ${m.node.pid}, ${m.node.endpoint}, identity ${identity})`,
          );
        for (const r of refused)
          this.#opts.log(`refused ${r.kind} ${r.name} of node ${m.node.name}: ${r.message}`);
        this.#send(route, { v: 1, t: "registered", hub: this.id, refused, req: m.req, policy, identity });
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
            `${describeNode(e.record.name)} (id ${m.id})`,
          );
          if (!v.ok) {
            this.#opts.log(v.message);
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
    }
  }

  /** Removes from `node` the declarations whose type conflicts with another node's; returns them. */
  #conflicts(node: NodeRecord): Refusal[] {
    const topicTypes = new Map<string, { type: string; by: string }>();
    const serviceTypes = new Map<string, { type: string; by: string }>();
    for (const e of this.#nodes.values()) {
      if (e.record.id === node.id) continue;
      for (const d of [...e.record.pubs, ...e.record.subs]) {
        if (!topicTypes.has(d.topic)) topicTypes.set(d.topic, { type: d.type, by: e.record.name });
      }
      for (const s of e.record.services) {
        if (!serviceTypes.has(s.service)) serviceTypes.set(s.service, { type: s.type, by: e.record.name });
      }
    }
    const refused: Refusal[] = [];
    const keep =
      <T extends { type: string }>(kind: Refusal["kind"], name: (d: T) => string, map: typeof topicTypes) =>
      (d: T) => {
        const have = map.get(name(d));
        if (have === undefined || have.type === d.type) return true;
        refused.push({
          kind,
          name: name(d),
          code: "ERR_TYPE_MISMATCH",
          message: `${kind === "service" ? "service" : "topic"} ${name(d)} has type ${have.type} (from ${describeNode(have.by)}); ${describeNode(node.name)} used ${d.type}`,
        });
        return false;
      };
    node.pubs = node.pubs.filter(keep("pub", (d) => d.topic, topicTypes));
    node.subs = node.subs.filter(keep("sub", (d) => d.topic, topicTypes));
    node.services = node.services.filter(keep("service", (d) => d.service, serviceTypes));
    return refused;
  }

  #remove(id: string, why: string): void {
    const e = this.#nodes.get(id);
    if (e === undefined) return;
    this.#nodes.delete(id);
    this.#removed.push(id);
    this.#opts.log(`node ${e.record.name} ${why} (pid ${e.record.pid})`);
    this.#changed();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, e] of this.#nodes) {
      if (now - e.lastSeen > this.#opts.nodeTimeoutMs)
        this.#remove(id, "stopped heartbeating and was removed");
    }
  }

  #changed(): void {
    this.#version++;
    if (this.#pushScheduled) return;
    this.#pushScheduled = true;
    setImmediate(() => {
      this.#pushScheduled = false;
      const graph = this.graph();
      graph.removed = this.#removed;
      this.#removed = [];
      // One encoding for every node: with hundreds of nodes, encoding per node dominated a change.
      if (this.#closed) return;
      const bytes = encodeControl({ v: 1, t: "graph", graph });
      for (const e of this.#nodes.values()) e.route.listener.send(e.route.peer, [bytes]);
    });
  }
}
