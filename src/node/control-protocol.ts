/**
 * The control protocol between a node and its hub: registration, heartbeats, the graph.
 * Small msgpack maps with a version `v` and a tag `t`, over one DEALER (node) ⇄ ROUTER (hub)
 * socket. Sans-IO: `encodeControl` / `decodeControl` only turn values into bytes and back, and
 * `decodeControl` checks every field, so a malformed message is a DecodeError naming the field,
 * never a crash. The hub implements the other side (src/hub) and imports these definitions.
 */
import { Packr } from "msgpackr/pack";
import { DecodeError } from "../errors.js";
import type { PolicyDoc } from "./access-policy.js";

/** Version of the control protocol this code speaks. */
export const CONTROL_VERSION = 1;

/** QoS of a topic endpoint as the graph shows it. */
export interface QosSummary {
  reliability: "reliable" | "best-effort";
  durability: "volatile" | "transient-local" | "persistent";
  depth: number;
}

/** A publication or subscription of a node. */
export interface TopicDecl {
  topic: string;
  type: string;
  qos: QosSummary;
  /** Queue group of a subscription, if any. */
  group?: string;
}

/** A service a node serves. */
export interface ServiceDecl {
  service: string;
  type: string;
  /**
   * The server declared the service idempotent (a repeated call does no harm), so a client may
   * retry a call on another replica when the first one dies or times out.
   */
  idempotent?: boolean;
}

/** A node as registered with the hub. */
export interface NodeRecord {
  /** Unique per node instance (changes when the process restarts). */
  id: string;
  name: string;
  pid: number;
  host: string;
  /** Unique per process; nodes in one process deliver to each other in memory. */
  process: string;
  /** Data endpoint nodes on the same host connect to (`ipc://…`, or what the node was told to bind). */
  endpoint: string;
  /**
   * Data endpoint nodes on other hosts connect to (`tcp://ADDRESS:PORT`), present once the node's
   * hub is part of a site of several hosts; see {@link reachableEndpoint}.
   */
  remoteEndpoint?: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  pubs: TopicDecl[];
  subs: TopicDecl[];
  services: ServiceDecl[];
  /** Readiness the node reports (`node.setReady()`); absent means ready. */
  ready?: boolean;
  /** Supervised instance the node runs in (`MYELIN_INSTANCE`, set by the supervisor), if any. */
  instance?: string;
  /**
   * The CURVE public key (Z85) of the node's host when its data endpoint is tcp with CURVE: what
   * a subscriber on another host needs to connect. Absent for ipc and plain-text endpoints (and
   * from nodes older than this field, which then serve plain text only).
   */
  key?: string;
  /**
   * The identity the node registered with (`local`, `anonymous`, `curve:<key>`, `hub`), set by
   * the hub from the connection; whatever a node sends here is replaced.
   */
  identity?: string;
  /** Data endpoints of other nodes this node could not connect to (newest last, bounded). */
  unreachable?: UnreachablePeer[];
}

/** A node's report that it could not reach another node's data endpoint. */
export interface UnreachablePeer {
  /** Id of the node it could not reach. */
  node: string;
  /** The endpoint it tried. */
  endpoint: string;
  /** What happened, for people. */
  reason: string;
  /** When it was first noticed, in ms since the epoch. */
  since: number;
}

/**
 * The endpoint a node on host `fromHost` connects to for node `n`: its `remoteEndpoint` when `n`
 * runs on another host and has one, else its `endpoint`.
 */
export function reachableEndpoint(n: NodeRecord, fromHost: string): string {
  return n.host !== fromHost && n.remoteEndpoint !== undefined ? n.remoteEndpoint : n.endpoint;
}

/**
 * False when node `n` runs on another host than `fromHost` and has only a same-host endpoint
 * (`ipc://`, `inproc://`): nothing to connect to until it binds one for other hosts.
 */
export function canReach(n: NodeRecord, fromHost: string): boolean {
  return (
    n.host === fromHost ||
    n.remoteEndpoint !== undefined ||
    !(n.endpoint.startsWith("ipc://") || n.endpoint.startsWith("inproc://"))
  );
}

/**
 * A change of the graph, from version `from` to version `version` of hub `hub`: the records added
 * or replaced, and the ids removed. A node holding version `from` applies it; any other asks for
 * a snapshot (`sync`).
 */
export interface GraphDelta {
  hub: string;
  from: number;
  version: number;
  settled: boolean;
  upserts: NodeRecord[];
  removed: string[];
}

/**
 * What the hub tells a registered node about the site: where to bind the tcp data endpoint that
 * nodes on other hosts reach (address, and an inclusive port range; 0–0 means any free port).
 */
export interface SiteAdvice {
  address: string;
  ports: [number, number];
}

/** What the hub knows, as pushed to nodes and tools. */
export interface GraphSnapshot {
  /** Id of the hub instance (changes when the hub restarts). */
  hub: string;
  /** Increases with every change within one hub instance. */
  version: number;
  /**
   * True once the hub has run longer than a node's heartbeat timeout, so every live node has
   * re-registered: from then on, a node missing from the graph is gone.
   */
  settled: boolean;
  nodes: NodeRecord[];
  /** Ids of nodes removed since the previous snapshot (gone or timed out). */
  removed: string[];
  /**
   * Ids of the records added or changed since the previous graph, when this graph came from a
   * delta; absent when it is a full snapshot (then every record may have changed).
   */
  changed?: string[];
}

/** Node → hub messages. */
export type NodeToHub =
  | {
      v: 1;
      t: "register";
      node: NodeRecord;
      req: number;
      /**
       * A random secret of this node instance, sent only to its hub and never shown in the graph:
       * the proof that a registration from a new connection (a reconnect) is the same node.
       */
      secret?: string;
      /** The process credential (sent on local links only): proves the node runs in the hub's process. */
      credential?: string;
    }
  | { v: 1; t: "heartbeat"; id: string }
  | { v: 1; t: "bye"; id: string }
  | { v: 1; t: "query"; req: number }
  | { v: 1; t: "sync" }
  | { v: 1; t: "site"; req: number };

/** Hub → node messages. */
export type HubToNode =
  | {
      v: 1;
      t: "registered";
      hub: string;
      refused: Refusal[];
      req: number;
      /** The hub's permission policy, for the node's data server to enforce. */
      policy?: PolicyDoc;
      /** The identity the hub bound this node to. */
      identity?: string;
      /**
       * The hub's host name in the site (`--host`): a node connected over ipc runs on that host
       * and takes the name unless `MYELIN_HOST` is set (absent from hubs of older versions).
       */
      host?: string;
      /** Where to bind the tcp data endpoint other hosts reach, when the site has other hosts. */
      site?: SiteAdvice;
    }
  | { v: 1; t: "reregister"; hub: string }
  | { v: 1; t: "graph"; graph: GraphSnapshot; req?: number }
  | { v: 1; t: "delta"; delta: GraphDelta }
  | { v: 1; t: "site"; req: number; json: string }
  | { v: 1; t: "error"; message: string };

/**
 * A declaration the hub refused, with the reason: a type conflict (`ERR_TYPE_MISMATCH`), a
 * permission the policy does not grant (`ERR_NOT_AUTHORIZED`), or (`kind: "node"`) the whole
 * registration, when the node id belongs to another connection.
 */
export interface Refusal {
  kind: "pub" | "sub" | "service" | "node";
  name: string;
  code: string;
  message: string;
}

// structuredClone: false refuses msgpackr's reference extensions (0x69/0x70): not part of the protocol,
// and they would let a peer build cyclic values.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, structuredClone: false });

/** Encodes a control message. */
export function encodeControl(msg: NodeToHub | HubToNode): Buffer {
  return packr.pack(msg);
}

type Obj = Record<string, unknown>;

function obj(v: unknown, where: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new DecodeError("ERR_DECODE", `control message: ${where} must be a map`);
  }
  return v as Obj;
}
function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== "string")
    throw new DecodeError("ERR_DECODE", `control message: ${where}.${k} must be a string`);
  return v;
}
function num(o: Obj, k: string, where: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new DecodeError("ERR_DECODE", `control message: ${where}.${k} must be a number`);
  }
  return v;
}
function arr(o: Obj, k: string, where: string): unknown[] {
  const v = o[k];
  if (!Array.isArray(v))
    throw new DecodeError("ERR_DECODE", `control message: ${where}.${k} must be an array`);
  return v;
}

function topicDecl(v: unknown, where: string): TopicDecl {
  const o = obj(v, where);
  const q = obj(o["qos"], `${where}.qos`);
  const reliability = str(q, "reliability", `${where}.qos`);
  const durability = str(q, "durability", `${where}.qos`);
  if (reliability !== "reliable" && reliability !== "best-effort") {
    throw new DecodeError(
      "ERR_DECODE",
      `control message: ${where}.qos.reliability '${reliability}' is not known`,
    );
  }
  if (durability !== "volatile" && durability !== "transient-local" && durability !== "persistent") {
    throw new DecodeError(
      "ERR_DECODE",
      `control message: ${where}.qos.durability '${durability}' is not known`,
    );
  }
  const d: TopicDecl = {
    topic: str(o, "topic", where),
    type: str(o, "type", where),
    qos: { reliability, durability, depth: num(q, "depth", `${where}.qos`) },
  };
  if (o["group"] !== undefined) d.group = str(o, "group", where);
  return d;
}

/** Checks a node record field by field. @throws DecodeError ERR_DECODE naming the bad field */
export function decodeNodeRecord(v: unknown, where: string): NodeRecord {
  const o = obj(v, where);
  const rec: NodeRecord = {
    id: str(o, "id", where),
    name: str(o, "name", where),
    pid: num(o, "pid", where),
    host: str(o, "host", where),
    process: str(o, "process", where),
    endpoint: str(o, "endpoint", where),
    startedAt: num(o, "startedAt", where),
    pubs: arr(o, "pubs", where).map((x, i) => topicDecl(x, `${where}.pubs[${i}]`)),
    subs: arr(o, "subs", where).map((x, i) => topicDecl(x, `${where}.subs[${i}]`)),
    services: arr(o, "services", where).map((x, i) => {
      const s = obj(x, `${where}.services[${i}]`);
      const d: ServiceDecl = {
        service: str(s, "service", `${where}.services[${i}]`),
        type: str(s, "type", `${where}.services[${i}]`),
      };
      if (s["idempotent"] !== undefined) {
        if (typeof s["idempotent"] !== "boolean") {
          throw new DecodeError(
            "ERR_DECODE",
            `control message: ${where}.services[${i}].idempotent must be a boolean`,
          );
        }
        d.idempotent = s["idempotent"];
      }
      return d;
    }),
  };
  if (o["ready"] !== undefined) {
    if (typeof o["ready"] !== "boolean")
      throw new DecodeError("ERR_DECODE", `control message: ${where}.ready must be a boolean`);
    rec.ready = o["ready"];
  }
  if (o["instance"] !== undefined) rec.instance = str(o, "instance", where);
  if (o["key"] !== undefined) {
    const key = str(o, "key", where);
    if (!/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/.test(key)) {
      throw new DecodeError(
        "ERR_DECODE",
        `control message: ${where}.key must be a 40-character Z85 CURVE key`,
      );
    }
    rec.key = key;
  }
  if (o["identity"] !== undefined) rec.identity = str(o, "identity", where);
  if (o["remoteEndpoint"] !== undefined) rec.remoteEndpoint = str(o, "remoteEndpoint", where);
  if (o["unreachable"] !== undefined) {
    const list = arr(o, "unreachable", where);
    if (list.length > MAX_UNREACHABLE) {
      throw new DecodeError(
        "ERR_DECODE",
        `control message: ${where}.unreachable has ${list.length} entries (at most ${MAX_UNREACHABLE})`,
      );
    }
    rec.unreachable = list.map((x, i) => {
      const w = `${where}.unreachable[${i}]`;
      const u = obj(x, w);
      return {
        node: str(u, "node", w),
        endpoint: str(u, "endpoint", w),
        reason: str(u, "reason", w),
        since: num(u, "since", w),
      };
    });
  }
  return rec;
}

/** Most unreachable endpoints one record reports. */
export const MAX_UNREACHABLE = 32;

function strings(o: Obj, k: string, where: string): string[] {
  return arr(o, k, where).map((x, i) => {
    if (typeof x !== "string")
      throw new DecodeError("ERR_DECODE", `control message: ${where}.${k}[${i}] must be a string`);
    return x;
  });
}

function policyDoc(v: unknown): PolicyDoc {
  const o = obj(v, "policy");
  return {
    source: str(o, "source", "policy"),
    admins: strings(o, "admins", "policy"),
    grants: arr(o, "grants", "policy").map((x, i) => {
      const g = obj(x, `policy.grants[${i}]`);
      const w = `policy.grants[${i}]`;
      return {
        identities: strings(g, "identities", w),
        publish: strings(g, "publish", w),
        subscribe: strings(g, "subscribe", w),
        serve: strings(g, "serve", w),
        call: strings(g, "call", w),
      };
    }),
  };
}

/** Decodes msgpack bytes into a control map with the right version. @throws DecodeError ERR_DECODE */
export function unpackControl(bytes: Uint8Array): Record<string, unknown> {
  return unpack(bytes);
}

function unpack(bytes: Uint8Array): Obj {
  let v: unknown;
  try {
    v = packr.unpack(bytes);
  } catch (e) {
    throw new DecodeError("ERR_DECODE", `control message is not valid msgpack: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const o = obj(v, "message");
  if (o["v"] !== CONTROL_VERSION) {
    throw new DecodeError(
      "ERR_DECODE",
      `control message version ${String(o["v"])} is not supported (this side speaks ${CONTROL_VERSION}); run the same Myelin version on node and hub`,
    );
  }
  return o;
}

/** Decodes and checks a node → hub message. Throws DecodeError naming the bad field. */
export function decodeNodeToHub(bytes: Uint8Array): NodeToHub {
  return nodeToHubFrom(unpack(bytes));
}

/** Checks an unpacked node → hub message (see {@link unpackControl}). @throws DecodeError ERR_DECODE */
export function nodeToHubFrom(o: Record<string, unknown>): NodeToHub {
  const t = o["t"];
  switch (t) {
    case "register": {
      const m: NodeToHub = {
        v: 1,
        t,
        node: decodeNodeRecord(o["node"], "node"),
        req: num(o, "req", "message"),
      };
      if (o["secret"] !== undefined) m.secret = str(o, "secret", "message");
      if (o["credential"] !== undefined) m.credential = str(o, "credential", "message");
      return m;
    }
    case "heartbeat":
    case "bye":
      return { v: 1, t, id: str(o, "id", "message") };
    case "query":
      return { v: 1, t, req: num(o, "req", "message") };
    case "sync":
      return { v: 1, t };
    case "site":
      return { v: 1, t, req: num(o, "req", "message") };
    default:
      throw new DecodeError("ERR_DECODE", `control message: unknown tag '${String(t)}' from a node`);
  }
}

/** Decodes and checks a hub → node message. Throws DecodeError naming the bad field. */
export function decodeHubToNode(bytes: Uint8Array): HubToNode {
  const o = unpack(bytes);
  const t = o["t"];
  switch (t) {
    case "registered": {
      const msg: HubToNode = {
        v: 1,
        t,
        hub: str(o, "hub", "message"),
        req: num(o, "req", "message"),
        refused: arr(o, "refused", "message").map((x, i) => {
          const r = obj(x, `refused[${i}]`);
          const kind = str(r, "kind", `refused[${i}]`);
          if (kind !== "pub" && kind !== "sub" && kind !== "service" && kind !== "node") {
            throw new DecodeError("ERR_DECODE", `control message: refused[${i}].kind '${kind}' is not known`);
          }
          return {
            kind,
            name: str(r, "name", `refused[${i}]`),
            code: str(r, "code", `refused[${i}]`),
            message: str(r, "message", `refused[${i}]`),
          };
        }),
      };
      if (o["site"] !== undefined) {
        const s = obj(o["site"], "site");
        const ports = arr(s, "ports", "site");
        const lo = ports[0];
        const hi = ports[1];
        if (
          ports.length !== 2 ||
          !Number.isInteger(lo) ||
          !Number.isInteger(hi) ||
          (lo as number) < 0 ||
          (hi as number) > 65535 ||
          (lo as number) > (hi as number)
        ) {
          throw new DecodeError(
            "ERR_DECODE",
            "control message: site.ports must be [low, high] with 0 <= low <= high <= 65535",
          );
        }
        msg.site = { address: str(s, "address", "site"), ports: [lo as number, hi as number] };
      }
      if (o["policy"] !== undefined) msg.policy = policyDoc(o["policy"]);
      if (o["identity"] !== undefined) msg.identity = str(o, "identity", "message");
      if (o["host"] !== undefined) msg.host = str(o, "host", "message");
      return msg;
    }
    case "reregister":
      return { v: 1, t, hub: str(o, "hub", "message") };
    case "graph": {
      const g = obj(o["graph"], "graph");
      const graph: GraphSnapshot = {
        hub: str(g, "hub", "graph"),
        version: num(g, "version", "graph"),
        settled: g["settled"] === true,
        nodes: arr(g, "nodes", "graph").map((x, i) => decodeNodeRecord(x, `graph.nodes[${i}]`)),
        removed: strings(g, "removed", "graph"),
      };
      const msg: HubToNode = { v: 1, t, graph };
      if (typeof o["req"] === "number") msg.req = o["req"];
      return msg;
    }
    case "delta": {
      const d = obj(o["delta"], "delta");
      return {
        v: 1,
        t,
        delta: {
          hub: str(d, "hub", "delta"),
          from: num(d, "from", "delta"),
          version: num(d, "version", "delta"),
          settled: d["settled"] === true,
          upserts: arr(d, "upserts", "delta").map((x, i) => decodeNodeRecord(x, `delta.upserts[${i}]`)),
          removed: strings(d, "removed", "delta"),
        },
      };
    }
    case "site":
      return { v: 1, t, req: num(o, "req", "message"), json: str(o, "json", "message") };
    case "error":
      return { v: 1, t, message: str(o, "message", "message") };
    default:
      throw new DecodeError("ERR_DECODE", `control message: unknown tag '${String(t)}' from the hub`);
  }
}
