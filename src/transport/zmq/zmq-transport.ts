/**
 * The ZeroMQ transport (`ipc://`, `tcp://`): a listener is a ROUTER socket, a connection a
 * DEALER. ZeroMQ reconnects by itself and keeps the messages of a connection in order; a message
 * over `maxMessageBytes` makes ZeroMQ drop that connection, which then reconnects. This file and
 * its folder are the only ones that import `zeromq`.
 */
import { Dealer, Router } from "zeromq";
import { MyelinError } from "../../errors.js";
import type {
  ConnectOptions,
  Connection,
  ConnectionEvents,
  Frames,
  Incoming,
  Listener,
  Transport,
  TransportOptions,
} from "../transport.js";
import { ANONYMOUS_IDENTITY, LOCAL_IDENTITY, requireNoSecurity } from "../transport.js";
import { SendQueue } from "./send-queue.js";

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

class ZmqListener implements Listener {
  endpoint = "";
  readonly #sock: Router;
  readonly #queue: SendQueue;
  #identity = LOCAL_IDENTITY;
  #closed = false;

  constructor(opts: TransportOptions) {
    this.#sock = new Router({
      linger: 0,
      mandatory: false,
      // Bounded: a peer that grants credit and never reads must not grow this process (the data
      // server also drops it by bytes, see DataServerOptions.maxPeerBytes).
      sendHighWaterMark: opts.sendHighWaterMark ?? opts.highWaterMark ?? LISTENER_SEND_HWM,
      receiveHighWaterMark: LISTENER_RECEIVE_HWM,
      maxMessageSize: opts.maxMessageBytes,
    });
    this.#queue = new SendQueue(this.#sock, () => {});
  }

  async bind(endpoint: string): Promise<void> {
    try {
      await this.#sock.bind(endpoint);
    } catch (err) {
      this.#sock.close();
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

  async *[Symbol.asyncIterator](): AsyncIterator<Incoming> {
    for await (const msg of receiveAll(this.#sock)) {
      const peer = msg[0];
      if (peer === undefined) continue;
      yield { peer, frames: msg.slice(1), identity: this.#identity };
    }
  }

  send(peer: Buffer, frames: Frames): void {
    if (!this.#closed) this.#queue.push([peer, ...frames]);
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

  constructor(endpoint: string, opts: ConnectOptions) {
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
    if (lingerMs > 0) await this.#queue.drained(lingerMs);
    this.#sock.linger = lingerMs;
    this.#sock.close();
  }
}

/** The ZeroMQ transport; one instance serves any number of listeners and connections. */
export const zmqTransport: Transport = {
  name: "zeromq",
  async listen(endpoint, opts) {
    requireNoSecurity(opts, endpoint, "zeromq");
    const l = new ZmqListener(opts);
    await l.bind(endpoint);
    return l;
  },
  connect(endpoint, opts) {
    requireNoSecurity(opts, endpoint, "zeromq");
    return new ZmqConnection(endpoint, opts);
  },
};
