/**
 * The Transport seam: what both planes (node ↔ hub, node ↔ node) need from a carrier of
 * messages, and nothing more. A message is a list of frames (byte buffers) that arrives whole
 * and in order, or not at all. Everything above — framing, credit, batching, liveliness,
 * requests — is the same for every carrier.
 *
 * A carrier implements {@link Transport} for the endpoint schemes it serves (`ipc`, `tcp`,
 * `inproc`, …). Nodes and the hub receive theirs through their options as a {@link Transports}
 * map from scheme to transport (`DEFAULT_TRANSPORTS` when not given); there is no global
 * registry. Every implementation passes the conformance suite in `transport-conformance.ts`.
 */
import { MyelinError } from "../errors.js";

/** One message: one or more frames. */
export type Frames = Buffer[];

/**
 * Security of a link: `none` (plain; on tcp anyone who reaches the port is {@link
 * ANONYMOUS_IDENTITY}), or `curve` (ZeroMQ CURVE: encrypted, and the client's key authenticated).
 */
export type TransportSecurity = { readonly mode: "none" } | CurveSecurity;

/** A handshake or a connection a CURVE listener refused. */
export interface CurveRefusal {
  /** The peer's network address as the carrier knows it (an IP address on tcp). */
  readonly address: string;
  /** The client public key the peer presented (Z85), "" when none was seen. */
  readonly publicKey: string;
  /** Why, for the log. */
  readonly reason: string;
}

/**
 * CURVE on one listener or connection. Keys are Z85 text (40 characters). A listener admits a
 * client only if `trusted` says yes for its key, and names each message's sender
 * `curve:<client public key>`; a connection needs the listener's public key.
 */
export interface CurveSecurity {
  readonly mode: "curve";
  /** This side's public key. */
  readonly publicKey: string;
  /** This side's secret key. */
  readonly secretKey: string;
  /** Connections only: the listener's public key. */
  readonly serverKey?: string;
  /** Listeners only: true for a client key allowed in; asked on every handshake. */
  readonly trusted?: (publicKey: string) => boolean;
  /** Listeners only: told of every refused handshake or unproven connection. */
  readonly onRefused?: (refusal: CurveRefusal) => void;
  /**
   * Listeners only: subscribes to changes of the trusted set (returns the unsubscribe). On each
   * change the listener asks `trusted` again about every connected peer: from then on it drops
   * the messages from, and to, a peer whose key is no longer trusted (a revoked key), and takes
   * them again once the key is trusted again.
   */
  readonly watchTrust?: (onChange: () => void) => () => void;
}

/** The prefix of a CURVE-authenticated identity: `curve:<Z85 public key>`. */
export const CURVE_IDENTITY_PREFIX = "curve:";

/** Options shared by listeners and connections. */
export interface TransportOptions {
  /** A received message larger than this (all frames) is not delivered, in bytes. */
  maxMessageBytes: number;
  /**
   * Bound on the messages held for one direction inside the carrier (its own queues), per
   * connection; what is beyond waits in the sender's queue (see `queued`). Default: the carrier's.
   */
  highWaterMark?: number;
  /** Security of the link (default `{ mode: "none" }`). */
  security?: TransportSecurity;
  /**
   * Listeners: messages the carrier may hold for one peer that does not take them (a send
   * high-water mark); past it the carrier drops (ZeroMQ) or disconnects the peer. Default: the
   * carrier's (100,000 messages for ZeroMQ).
   */
  sendHighWaterMark?: number;
  /**
   * Listeners: bytes queued for one peer past which a carrier that can measure them (the Unix
   * carrier) disconnects that peer. Default: no carrier bound (the data server bounds every peer
   * by read proofs, whatever the carrier).
   */
  maxPeerBytes?: number;
  /**
   * A connection whose handshake is not done this long after it opened is closed, in ms: a
   * listener's peer that never greets, a listener that never answers (the connection then retries).
   * Default 30,000, ZeroMQ's own handshake interval. Honoured by the Unix carrier; ZeroMQ keeps its own.
   */
  handshakeTimeoutMs?: number;
}

/** Options of {@link Transport.connect}. */
export interface ConnectOptions extends TransportOptions {
  /** First and longest wait between reconnection attempts, in ms (defaults 100 and 1000). */
  reconnectMs?: { min: number; max: number };
  /**
   * While not connected, keep at most this many messages to send on connection and drop the
   * rest (the control plane: a stale heartbeat is worthless). Default: keep everything, the
   * sender bounds it by its own accounting.
   */
  dropWhenDownAfter?: number;
}

/** A message received by a listener, with the connection it came on. */
export interface Incoming {
  /** The sending connection, as the listener knows it; pass it back to `send` to reply. */
  readonly peer: PeerId;
  readonly frames: Frames;
  /**
   * Who sent it, as the carrier authenticated the connection: {@link LOCAL_IDENTITY} for a
   * carrier reachable only on this host by the owning user (`ipc`, `inproc`), `curve:<Z85
   * public key>` for a CURVE-authenticated link, {@link ANONYMOUS_IDENTITY} for plain tcp.
   */
  readonly identity: string;
}

/** The identity of a same-host peer: its socket file is reachable only by the owning user. */
export const LOCAL_IDENTITY = "local";
/** The identity of a peer on an unauthenticated network link (plain tcp, `--insecure`). */
export const ANONYMOUS_IDENTITY = "anonymous";

/**
 * A listener's name for one connected peer: opaque bytes, unique among the listener's peers,
 * the same for every message of one connection.
 */
export type PeerId = Buffer;

/**
 * Push mode, offered by carriers that read on the event loop: what is read is handed to a
 * function at once, synchronously, with no queue and no promise per message.
 */
export interface Pumpable<M> {
  /**
   * Hands every message to `handle` as it is read, instead of through the async iterator: call
   * it once, and do not iterate as well (what arrived before is handed over first). Resolves when
   * the source ends (closed). `handle` must not throw. Frames stay valid after `handle` returns,
   * as with the iterator.
   */
  consume?(handle: (msg: M) => void): Promise<void>;
}

/** The side that waits for connections (a node's data server, the hub). */
export interface Listener extends AsyncIterable<Incoming>, Pumpable<Incoming> {
  /** The endpoint peers connect to (with the real port when bound to port 0). */
  readonly endpoint: string;
  /** Queues a message to a peer; a peer that is gone drops it silently. */
  send(peer: PeerId, frames: Frames): void;
  /** Messages queued and not yet handed to the carrier. */
  readonly queued: number;
  /** Resolves once nothing is queued, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void>;
  /**
   * Closes one peer's connection and frees what is queued for it, where the carrier can (the Unix
   * carrier; ZeroMQ cannot close one peer of a ROUTER: there the peer's messages are ignored and
   * its queue stays within the send high-water mark).
   */
  disconnect?(peer: PeerId): void;
  /**
   * Stops listening: what is queued gets up to `lingerMs` to leave, then the connections close
   * and the iteration ends. Idempotent.
   */
  close(lingerMs: number): Promise<void>;
}

/**
 * The end of every `down` reason saying that the listener uses another carrier for `ipc://` than
 * this process (ZeroMQ against the Unix carrier): retrying cannot help until one side changes.
 */
export const CARRIER_MISMATCH_HINT =
  "every process of a host must use the same carrier for ipc:// (MYELIN_IPC_TRANSPORT)";

/** True when a connection's `down` reason is a carrier mismatch ({@link CARRIER_MISMATCH_HINT}). */
export function isCarrierMismatch(why: string): boolean {
  return why.endsWith(CARRIER_MISMATCH_HINT);
}

/** Events of a connection. */
export interface ConnectionEvents {
  /** Connected (again). */
  up: () => void;
  /** The connection was lost or refused; the carrier keeps trying to connect. */
  down: (why: string) => void;
}

/** The side that connects to a listener (a node's hub client, its links to other nodes). */
export interface Connection extends AsyncIterable<Frames>, Pumpable<Frames> {
  readonly endpoint: string;
  /** True while connected. */
  readonly up: boolean;
  /** Calls `fn` on each change of state. */
  on<E extends keyof ConnectionEvents>(event: E, fn: ConnectionEvents[E]): void;
  /**
   * Queues a message; it leaves as soon as the connection is up (see `dropWhenDownAfter`).
   * @returns false once more than `highWaterMark` messages are queued: wait for `drained`
   */
  send(frames: Frames): boolean;
  /** Messages queued and not yet handed to the carrier. */
  readonly queued: number;
  /** Resolves once nothing is queued, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void>;
  /** Closes: what is queued gets up to `lingerMs` to leave; the iteration ends. Idempotent. */
  close(lingerMs: number): Promise<void>;
}

/** A carrier of messages for some endpoint schemes. */
export interface Transport {
  /** A short name for errors and logs, e.g. `zeromq`. */
  readonly name: string;
  /**
   * Binds `endpoint` and starts accepting connections.
   * @throws MyelinError ERR_INVALID_ARGUMENT naming the endpoint when it cannot be bound
   */
  listen(endpoint: string, opts: TransportOptions): Promise<Listener>;
  /** Connects to `endpoint`, retrying until closed; returns at once. */
  connect(endpoint: string, opts: ConnectOptions): Connection;
}

/** Transports by endpoint scheme (`ipc`, `tcp`, `inproc`, …). */
export type Transports = Readonly<Record<string, Transport>>;

/** The scheme of an endpoint: `tcp` for `tcp://host:port`. */
export function schemeOf(endpoint: string): string {
  const i = endpoint.indexOf("://");
  return i > 0 ? endpoint.slice(0, i) : "";
}

/**
 * The transport serving `endpoint`'s scheme.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the endpoint and the schemes that are served
 */
export function transportFor(transports: Transports, endpoint: string): Transport {
  const scheme = schemeOf(endpoint);
  const t = Object.hasOwn(transports, scheme) ? transports[scheme] : undefined;
  if (t === undefined) {
    const known = Object.keys(transports)
      .map((s) => `${s}://`)
      .join(", ");
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `no transport for endpoint '${endpoint}': use one of ${known}${scheme === "" ? " (the endpoint has no scheme)" : ""}`,
    );
  }
  return t;
}

/**
 * For a transport without encryption (Unix sockets, in-memory): refuses any mode but `none`.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the endpoint, the mode and the transport
 */
export function requireNoSecurity(opts: TransportOptions, endpoint: string, transport: string): void {
  if (opts.security !== undefined && opts.security.mode !== "none") {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${endpoint}: security mode '${String(opts.security.mode)}' is not supported by the ${transport} transport; use 'none', or ZeroMQ over tcp:// for CURVE`,
    );
  }
}
