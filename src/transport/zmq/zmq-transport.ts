/**
 * The ZeroMQ transport (`ipc://`, `tcp://`): a listener is a ROUTER socket, a connection a
 * DEALER. ZeroMQ reconnects by itself and keeps the messages of a connection in order; a message
 * over `maxMessageBytes` makes ZeroMQ drop that connection, which then reconnects. This file and
 * its folder are the only ones that import `zeromq`.
 *
 * With `security: { mode: "curve" }` the link is CURVE-encrypted: the listener is a CURVE server
 * whose ZAP domain (zap-handler.ts) admits only trusted client keys, and a connection proves its
 * key in its routing id (curve-peer-id.ts), so every message is named `curve:<client key>`.
 */
import { Dealer, Router } from "zeromq";
import { MyelinError } from "../../errors.js";
import { curvePeerId, verifyCurvePeerId } from "../curve-peer-id.js";
import { checkCurveKeyPair, parseCurveKey } from "../curve-key.js";
import type {
  ConnectOptions,
  CurveSecurity,
  Connection,
  ConnectionEvents,
  Frames,
  Incoming,
  Listener,
  Transport,
  TransportOptions,
} from "../transport.js";
import {
  ANONYMOUS_IDENTITY,
  CARRIER_MISMATCH_HINT,
  CURVE_IDENTITY_PREFIX,
  LOCAL_IDENTITY,
} from "../transport.js";
import { SendQueue } from "./send-queue.js";
import { registerZapDomain } from "./zap-handler.js";

/** Messages a connection's DEALER holds for its peer before sends wait (ZeroMQ's SNDHWM). */
const CONNECTION_HWM = 10000;
/**
 * Messages a listener's ROUTER holds for one peer that does not read (ZeroMQ's SNDHWM); past it
 * ZeroMQ drops what is sent to that peer. The data server drops such a peer well before, by
 * bytes (read proofs); this bounds a flood of small messages.
 */
const LISTENER_SEND_HWM = 100_000;
/** Messages a listener's ROUTER reads ahead of the receiver (ZeroMQ's RCVHWM). */
const LISTENER_RECEIVE_HWM = 10000;

/** Peers a CURVE listener remembers the verdict of; beyond this the memory starts afresh. */
const MAX_KNOWN_PEERS = 10000;

/**
 * The CURVE security of `opts`, checked, or undefined for plain links.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming the endpoint and the key that is wrong or missing
 */
function curveOf(
  opts: TransportOptions,
  endpoint: string,
  side: "listen" | "connect",
): CurveSecurity | undefined {
  const sec = opts.security;
  if (sec === undefined || sec.mode === "none") return undefined;
  if ((sec as { mode: string }).mode !== "curve") {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${endpoint}: security mode '${String((sec as { mode: unknown }).mode)}' is not known to the zeromq transport; use 'none' or 'curve'`,
    );
  }
  checkCurveKeyPair(sec, `${endpoint}: this side's`);
  if (side === "connect") {
    if (sec.serverKey === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${endpoint}: a CURVE connection needs the listener's public key (serverKey)`,
      );
    }
    parseCurveKey(sec.serverKey, `${endpoint}: the listener's public key`);
  } else if (typeof sec.trusted !== "function") {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${endpoint}: a CURVE listener needs a trust check of client keys (trusted)`,
    );
  }
  return sec;
}

/** Reads a socket until it closes. */
async function* receiveAll(sock: Router | Dealer): AsyncGenerator<Buffer[]> {
  for (;;) {
    let msg: Buffer[];
    try {
      msg = await sock.receive();
    } catch {
      return; // closed
    }
    yield msg;
  }
}

/** A ZeroMQ listener; with CURVE it also counts what it refused. */
export class ZmqListener implements Listener {
  endpoint = "";
  readonly #sock: Router;
  readonly #queue: SendQueue;
  readonly #curve: CurveSecurity | undefined;
  /**
   * CURVE: the key each routing id proved (null: none, dropped for good) and whether that key is
   * trusted now (false: revoked, dropped until trusted again).
   */
  readonly #peers = new Map<string, { key: string | null; ok: boolean }>();
  #releaseZap: (() => Promise<void>) | undefined;
  #unwatchTrust: (() => void) | undefined;
  /** Connected peers whose key is not trusted now (sends are looked up only while there are some). */
  #revoked = 0;
  #identity = LOCAL_IDENTITY;
  #closed = false;
  /** Handshakes refused (untrusted key, not CURVE, wrong listener key) and connections whose routing id proved no key. */
  refused = 0;
  /** Messages dropped from, or to, a connected peer whose key was revoked. */
  droppedRevoked = 0;

  constructor(opts: TransportOptions, curve: CurveSecurity | undefined) {
    this.#curve = curve;
    this.#sock = new Router({
      linger: 0,
      mandatory: false,
      // Bounded: a peer that grants credit and never reads must not grow this process (the data
      // server also drops it by bytes, see DataServerOptions.maxPeerBytes).
      sendHighWaterMark: opts.sendHighWaterMark ?? opts.highWaterMark ?? LISTENER_SEND_HWM,
      receiveHighWaterMark: LISTENER_RECEIVE_HWM,
      maxMessageSize: opts.maxMessageBytes,
      ...(curve !== undefined
        ? { curveServer: true, curveSecretKey: curve.secretKey, curvePublicKey: curve.publicKey }
        : {}),
    });
    this.#queue = new SendQueue(this.#sock, () => {});
  }

  #refuse(address: string, publicKey: string, reason: string): void {
    this.refused++;
    this.#curve?.onRefused?.({ address, publicKey, reason });
  }

  async bind(endpoint: string): Promise<void> {
    const curve = this.#curve;
    if (curve !== undefined) {
      const trusted = curve.trusted!;
      const zap = await registerZapDomain((address, key) => {
        let ok = false;
        try {
          ok = key === curve.publicKey || trusted(key);
        } catch {
          ok = false; // a failing trust check admits no one
        }
        if (ok) return { ok: true };
        const reason = "client key not trusted";
        this.#refuse(address, key, reason);
        return { ok: false, reason };
      });
      this.#releaseZap = zap.release;
      this.#unwatchTrust = curve.watchTrust?.(() => this.#trustChanged(curve));
      this.#sock.zapDomain = zap.domain;
      // Handshakes that never reach ZAP: a plain-text client, or one using a wrong listener key.
      this.#sock.events.on("handshake:error:protocol", (e) =>
        this.#refuse(
          e.address,
          "",
          `CURVE handshake failed (${e.error.message}): a plain-text client, or a wrong listener key`,
        ),
      );
    }
    try {
      await this.#sock.bind(endpoint);
    } catch (err) {
      this.#sock.close();
      this.#unwatchTrust?.();
      await this.#releaseZap?.();
      const reason = (err as Error).message;
      const inUse = /in use/i.test(reason);
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `cannot listen on ${endpoint}: ${reason}` +
          (inUse
            ? "; another process holds that address: stop it or choose another one"
            : "; check the address (tcp://HOST:PORT or ipc://PATH)"),
        { cause: err },
      );
    }
    this.endpoint = this.#sock.lastEndpoint ?? endpoint;
    // Without security, a tcp peer is whoever reached the port; ipc is this host's user.
    this.#identity = endpoint.startsWith("tcp://") ? ANONYMOUS_IDENTITY : LOCAL_IDENTITY;
  }

  #isTrusted(curve: CurveSecurity, key: string): boolean {
    if (key === curve.publicKey) return true;
    try {
      return curve.trusted!(key);
    } catch {
      return false; // a failing trust check admits no one
    }
  }

  /** CURVE: the identity a routing id proves, or undefined (its messages are dropped). */
  #curveIdentity(curve: CurveSecurity, peer: Buffer): string | undefined {
    const k = peer.toString("latin1");
    let p = this.#peers.get(k);
    if (p === undefined) {
      const key = verifyCurvePeerId(peer, curve.secretKey) ?? null;
      p = { key, ok: key !== null && this.#isTrusted(curve, key) };
      if (key === null) {
        this.#refuse("", "", "the connection's routing id proves no key (a client claiming another key)");
      } else if (!p.ok) {
        this.#refuse("", key, "the key this connection's routing id proves is not trusted");
        this.#revoked++;
      }
      if (this.#peers.size >= MAX_KNOWN_PEERS) this.#peers.clear();
      this.#peers.set(k, p);
    } else if (!p.ok && p.key !== null) {
      this.droppedRevoked++;
    }
    return p.ok ? CURVE_IDENTITY_PREFIX + p.key! : undefined;
  }

  /**
   * The trusted set changed: asks again about every connected peer's key. A revoked one is
   * refused (told to `onRefused` once) and its messages are dropped both ways from now on; ZeroMQ
   * has no call to close one peer of a ROUTER, so its TCP connection stays open, carrying nothing,
   * until the peer closes it. A key trusted again is admitted on that same connection.
   */
  #trustChanged(curve: CurveSecurity): void {
    let revoked = 0;
    for (const p of this.#peers.values()) {
      if (p.key === null) continue;
      const ok = this.#isTrusted(curve, p.key);
      if (p.ok && !ok)
        this.#refuse("", p.key, "key revoked: the connection's messages are dropped from now on");
      p.ok = ok;
      if (!ok) revoked++;
    }
    this.#revoked = revoked;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Incoming> {
    const curve = this.#curve;
    for await (const msg of receiveAll(this.#sock)) {
      const peer = msg[0];
      if (peer === undefined) continue;
      if (curve === undefined) {
        yield { peer, frames: msg.slice(1), identity: this.#identity };
        continue;
      }
      const identity = this.#curveIdentity(curve, peer);
      if (identity !== undefined) yield { peer, frames: msg.slice(1), identity };
    }
  }

  send(peer: Buffer, frames: Frames): void {
    if (this.#closed) return;
    if (this.#revoked > 0 && this.#peers.get(peer.toString("latin1"))?.ok === false) {
      this.droppedRevoked++;
      return;
    }
    this.#queue.push([peer, ...frames]);
  }

  get queued(): number {
    return this.#queue.length;
  }

  drained(timeoutMs: number): Promise<void> {
    return this.#queue.drained(timeoutMs);
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.drained(lingerMs);
    this.#sock.linger = lingerMs;
    this.#sock.close();
    this.#unwatchTrust?.();
    await this.#releaseZap?.();
  }
}

class ZmqConnection implements Connection {
  readonly endpoint: string;
  up = false;
  readonly #sock: Dealer;
  readonly #queue: SendQueue;
  readonly #hwm: number;
  readonly #listeners: { [E in keyof ConnectionEvents]: ConnectionEvents[E][] } = { up: [], down: [] };
  #closed = false;
  /** The next attempt after a refused CURVE handshake. */
  #retry: NodeJS.Timeout | undefined;

  constructor(endpoint: string, opts: ConnectOptions, curve: CurveSecurity | undefined) {
    this.endpoint = endpoint;
    const drop = opts.dropWhenDownAfter;
    this.#hwm = opts.highWaterMark ?? CONNECTION_HWM;
    this.#sock = new Dealer({
      linger: 0,
      // Not immediate: what is sent before the connection is up waits in the pipe and leaves the
      // moment it connects. With dropWhenDownAfter, a full pipe drops instead of waiting.
      immediate: false,
      ...(drop !== undefined
        ? { sendTimeout: 0, sendHighWaterMark: Math.max(1, drop) }
        : { sendHighWaterMark: this.#hwm }),
      receiveHighWaterMark: 0,
      maxMessageSize: opts.maxMessageBytes,
      reconnectInterval: opts.reconnectMs?.min ?? 100,
      reconnectMaxInterval: opts.reconnectMs?.max ?? 1000,
      ...(curve !== undefined
        ? {
            curveServerKey: curve.serverKey!,
            curvePublicKey: curve.publicKey,
            curveSecretKey: curve.secretKey,
            routingId: curvePeerId(curve, curve.serverKey!),
          }
        : {}),
    });
    this.#queue = new SendQueue(this.#sock, () => {});
    this.#sock.events.on("connect", () => {
      this.up = true;
      for (const fn of this.#listeners.up) fn();
    });
    const lost = (why: string) => (): void => {
      if (this.#closed) return;
      this.up = false;
      for (const fn of this.#listeners.down) fn(why);
    };
    this.#sock.events.on("disconnect", lost(`the connection to ${endpoint} was lost`));
    this.#sock.events.on("connect:retry", lost(`the connection to ${endpoint} was refused`));
    // ZeroMQ does not reconnect after a failed handshake; try again now and then, so a key
    // trusted later, or a listener restarted with the right carrier, is reached without
    // restarting this side.
    const retryMs = Math.max(1000, opts.reconnectMs?.max ?? 1000);
    const retryAfter = (report: () => void) => (): void => {
      report();
      if (this.#retry !== undefined || this.#closed) return;
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (this.#closed) return;
        try {
          this.#sock.disconnect(endpoint);
        } catch {
          // already disconnected
        }
        this.#sock.connect(endpoint);
      }, retryMs);
      this.#retry.unref();
    };
    if (curve !== undefined) {
      const retry = retryAfter(
        lost(
          `${endpoint} refused this host's CURVE key ${curve.publicKey}: its owner trusts it with 'myelin keys trust NAME ${curve.publicKey}'`,
        ),
      );
      this.#sock.events.on("handshake:error:auth", retry);
      this.#sock.events.on("handshake:error:protocol", retry);
    } else if (endpoint.startsWith("ipc://")) {
      // A Unix-carrier listener answers a ZeroMQ greeting with one naming a mechanism no ZeroMQ
      // peer has (MYELIN-UNIX): the handshake fails here, and says why.
      this.#sock.events.on("handshake:error:protocol", retryAfter(lost(unixListenerReason(endpoint))));
    }
    this.#sock.connect(endpoint);
  }

  on<E extends keyof ConnectionEvents>(event: E, fn: ConnectionEvents[E]): void {
    this.#listeners[event].push(fn);
  }

  [Symbol.asyncIterator](): AsyncIterator<Frames> {
    return receiveAll(this.#sock);
  }

  send(frames: Frames): boolean {
    if (this.#closed) return false;
    this.#queue.push(frames.length === 1 ? frames[0]! : frames);
    return this.#queue.length < this.#hwm;
  }

  get queued(): number {
    return this.#queue.length;
  }

  drained(timeoutMs: number): Promise<void> {
    return this.#queue.drained(timeoutMs);
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.up = false;
    clearTimeout(this.#retry);
    if (lingerMs > 0) await this.#queue.drained(lingerMs);
    this.#sock.linger = lingerMs;
    this.#sock.close();
  }
}

/**
 * Why a connection to `endpoint` cannot work: the listener there does not complete ZeroMQ's
 * handshake, which on `ipc://` means a Myelin process using the Unix carrier.
 */
export function unixListenerReason(endpoint: string): string {
  return (
    `${endpoint} did not complete ZeroMQ's handshake: it is probably served by the Unix carrier, ` +
    `while this process uses ZeroMQ; ${CARRIER_MISMATCH_HINT}`
  );
}

/** The ZeroMQ transport; one instance serves any number of listeners and connections. */
export const zmqTransport: Transport = {
  name: "zeromq",
  async listen(endpoint, opts) {
    const l = new ZmqListener(opts, curveOf(opts, endpoint, "listen"));
    await l.bind(endpoint);
    return l;
  },
  connect(endpoint, opts) {
    return new ZmqConnection(endpoint, opts, curveOf(opts, endpoint, "connect"));
  },
};
