/**
 * What a node is created with and says: its options and their defaults, the options of its
 * publishers and subscriptions, its events, and the rules for names.
 */
import { MyelinError } from "../errors.js";
import type { Transports } from "../transport/transport.js";
import { replicaNodeName } from "./config.js";
import type { GraphSnapshot } from "./control-protocol.js";
import type { Qos } from "./qos.js";
import type { Overflow } from "./subscription.js";

/** Options of a node; every field but `name` has a default (see NODE_DEFAULTS). */
export interface NodeOptions {
  /** Node name, shown by `myelin node list`. Names starting with `_` are hidden (tools). */
  name: string;
  /** Hub address (default: `MYELIN_HUB`, else the runtime directory's socket). */
  hub?: string;
  /** Runtime directory for ipc sockets (default: `MYELIN_RUNTIME_DIR`, `$XDG_RUNTIME_DIR/myelin`, `/tmp/myelin-<uid>`). */
  runtimeDir?: string;
  /**
   * Where this node's data socket binds: `ipc` (default, one host), `tcp://HOST:PORT` (PORT 0
   * picks a free one), or `inproc` (with an `inproc` transport in `transports`). Env
   * `MYELIN_DATA_ENDPOINT` sets the default.
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
  /**
   * Most bytes this node's data socket sends one peer beyond what that peer proved it read; a peer
   * further behind (one that grants credit but does not read) is dropped and counted in
   * `publisher.stats().peersDropped` (default 128 MiB). Keep it above subscription windows.
   */
  maxPeerBytes?: number;
  /** How long a create call waits for the hub to confirm, in ms (only when a hub is connected). */
  registerTimeoutMs?: number;
  /** Initial parameter values; they override declared defaults. */
  parameters?: Record<string, unknown>;
  /**
   * Start not ready, and say when with `setReady(true)` (default false: ready once created).
   * Readiness is on the graph; a supervisor waits for it before starting dependent nodes.
   */
  manualReady?: boolean;
  /**
   * Serve the node's flow status as `/_status/<node>` once it has a publisher or a subscription
   * (default true), for the dashboard's slow-subscriber and missed-deadline alarms.
   */
  statusService?: boolean;
  /**
   * The transports by endpoint scheme, for the hub connection, the data socket and the links to
   * other nodes (default `DEFAULT_TRANSPORTS`: the Unix-socket carrier for `ipc://`, ZeroMQ for `tcp://`). Give an `inproc` transport (one
   * `MemoryTransport` shared by the hub and the nodes) to run a whole system in one process
   * through a real carrier.
   */
  transports?: Transports;
  /**
   * Plain text on tcp links (to a hub started with `--insecure`, to and from other hosts' nodes):
   * no keys, and peers are anonymous. Default: `MYELIN_INSECURE=1`, else false (CURVE on tcp).
   */
  insecure?: boolean;
  /**
   * The public key of a tcp hub's host, or the name it is trusted under (`myelin keys trust`).
   * Default: `MYELIN_HUB_KEY`. Needed only when the hub is `tcp://` and not insecure.
   */
  hubKey?: string;
  /** The directory of this host's keys and trust list (default: `MYELIN_KEYS_DIR`, see docs/security.md). */
  keysDir?: string;
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
  /**
   * Queue group: subscriptions (in any process) that join a topic with the same group name
   * share its messages, each message going to one of them; see docs/services.md for what is
   * guaranteed when a member dies. Letters, digits, `_`, `-`, `.`; default none.
   */
  group?: string;
  /**
   * How far each remote publisher may run ahead of this subscription: messages and bytes sent and not
   * yet consumed (its credit). Past it, a reliable publisher waits and a best-effort one drops (counted).
   * Default 16,384 messages and 32 MiB (1,024 messages in a queue group; an iterator that blocks uses
   * its queue size). A recorder that must ride out pauses of its disk or CPU asks for more.
   */
  window?: { messages?: number; bytes?: number };
  /**
   * Hand messages over as they arrived, still encoded (`RawMessage`: the codec's frames, with
   * seq, publish time and publisher in the info), without decoding or validating them (default
   * false). For tools that store or forward messages and decode them elsewhere (the recorder
   * transcodes on a worker thread); the reader must decode and validate before trusting a payload.
   * `validate` does not apply.
   */
  raw?: boolean;
}

/** Events of a node. */
export interface NodeEvents {
  /** The graph changed. */
  graph: [GraphSnapshot];
  /** Something went wrong outside any call (bad frame from a peer, hub refused a declaration). */
  warning: [Error];
}

const TOPIC_RE = /^(\/[A-Za-z0-9_.~-]+)+$/;

export function resolveName(name: string, what: string): string {
  const n = name.startsWith("/") ? name : `/${name}`;
  if (!TOPIC_RE.test(n)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what} name '${name}' is not valid: use segments of letters, digits, '_', '-', '.' separated by '/', e.g. /camera/front/image`,
    );
  }
  return n;
}

/**
 * The name of a node of a supervised process: replica 0 keeps the spec's name, replica N > 0 of
 * a node the spec names becomes `<name>.N`, so every replica can be addressed
 * (`myelin param set camera.1 fps 5`). The supervisor sets MYELIN_NODE_NAME and MYELIN_REPLICA.
 */
export function replicaName(name: string): string {
  const replica = Number(process.env["MYELIN_REPLICA"] ?? "0");
  if (!Number.isInteger(replica) || replica <= 0) return name;
  const specNodes = (process.env["MYELIN_NODE_NAME"] ?? "").split(",");
  return specNodes.includes(name) ? replicaNodeName(name, replica) : name;
}
