/**
 * An in-process transport (`inproc://NAME`): listeners and connections of one
 * `MemoryTransport` instance find each other by name and pass messages through queues, with the
 * behaviour of a real carrier — messages are copied, ordered per connection, bounded by the
 * receiver's high-water mark (what is beyond waits in the sender's queue), refused above
 * `maxMessageBytes` (the connection is reset and reconnects), and a connection to a name nobody
 * listens on keeps retrying. For tests, simulations and single-process systems; nodes still talk
 * to each other by function call when they share a process.
 */
import { MyelinError } from "../errors.js";
import type {
  ConnectOptions,
  Connection,
  ConnectionEvents,
  Frames,
  Incoming,
  Listener,
  Transport,
  TransportOptions,
} from "./transport.js";
import { LOCAL_IDENTITY, requireNoSecurity } from "./transport.js";
import { Inbox } from "./inbox.js";

const DEFAULT_HWM = 1000;

function copy(frames: Frames): Frames {
  return frames.map((f) => Buffer.from(f));
}

function sizeOf(frames: Frames): number {
  let n = 0;
  for (const f of frames) n += f.length;
  return n;
}

class MemoryListener implements Listener {
  readonly endpoint: string;
  readonly inbox: Inbox<Incoming>;
  readonly peers = new Map<string, MemoryConnection>();
  readonly hwm: number;
  readonly maxMessageBytes: number;
  #nextPeer = 1;
  #closed = false;

  constructor(
    endpoint: string,
    opts: TransportOptions,
    private readonly registry: Map<string, MemoryListener>,
  ) {
    this.endpoint = endpoint;
    this.hwm = opts.highWaterMark ?? DEFAULT_HWM;
    this.maxMessageBytes = opts.maxMessageBytes;
    // Room in the inbox: let the connections move what waits in their queues.
    this.inbox = new Inbox<Incoming>({
      onTake: () => {
        for (const c of this.peers.values()) c.pump();
      },
    });
  }

  attach(conn: MemoryConnection): Buffer {
    const id = Buffer.alloc(5);
    id.writeUInt8(0, 0);
    id.writeUInt32BE(this.#nextPeer++, 1);
    this.peers.set(id.toString("latin1"), conn);
    return id;
  }

  detach(id: Buffer): void {
    this.peers.delete(id.toString("latin1"));
  }

  [Symbol.asyncIterator](): AsyncIterator<Incoming> {
    return this.inbox;
  }

  send(peer: Buffer, frames: Frames): void {
    if (this.#closed) return;
    this.peers.get(peer.toString("latin1"))?.receive(copy(frames));
  }

  readonly queued = 0;

  drained(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    if (this.registry.get(this.endpoint) === this) this.registry.delete(this.endpoint);
    this.inbox.end();
    for (const c of [...this.peers.values()]) c.lose(`${this.endpoint} closed`);
    this.peers.clear();
    return Promise.resolve();
  }
}

class MemoryConnection implements Connection {
  readonly endpoint: string;
  up = false;
  readonly #inbox = new Inbox<Frames>();
  readonly #outbox: Frames[] = [];
  readonly #opts: ConnectOptions;
  readonly #registry: Map<string, MemoryListener>;
  readonly #listeners: { [E in keyof ConnectionEvents]: ConnectionEvents[E][] } = { up: [], down: [] };
  readonly #idle: (() => void)[] = [];
  #peer: { listener: MemoryListener; id: Buffer } | undefined;
  #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(endpoint: string, opts: ConnectOptions, registry: Map<string, MemoryListener>) {
    this.endpoint = endpoint;
    this.#opts = opts;
    this.#registry = registry;
    this.#retryMs = opts.reconnectMs?.min ?? 100;
    // Connect on the next turn, as a real carrier would: the caller registers its handlers first.
    this.#timer = setTimeout(() => this.#connect(), 0);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const l = this.#registry.get(this.endpoint);
    if (l === undefined) {
      this.#emitDown(`the connection to ${this.endpoint} was refused`);
      this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, this.#opts.reconnectMs?.max ?? 1000);
      return;
    }
    this.#retryMs = this.#opts.reconnectMs?.min ?? 100;
    this.#peer = { listener: l, id: l.attach(this) };
    this.up = true;
    for (const fn of this.#listeners.up) fn();
    this.pump();
  }

  #emitDown(why: string): void {
    this.up = false;
    for (const fn of this.#listeners.down) fn(why);
  }

  /** The listener went away or reset this connection: reconnect later. */
  lose(why: string): void {
    if (this.#peer === undefined) return;
    this.#peer.listener.detach(this.#peer.id);
    this.#peer = undefined;
    this.#emitDown(why);
    if (!this.#closed && this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
    }
  }

  /** A message from the listener. */
  receive(frames: Frames): void {
    this.#inbox.push(frames);
  }

  /** Moves queued messages to the listener while it has room. */
  pump(): void {
    const p = this.#peer;
    while (p !== undefined && this.#outbox.length > 0 && p.listener.inbox.length < p.listener.hwm) {
      const frames = this.#outbox.shift()!;
      if (sizeOf(frames) > p.listener.maxMessageBytes) {
        // As a carrier that refuses an oversized message: reset the connection.
        this.lose(
          `${this.endpoint} refused a message of ${sizeOf(frames)} bytes (limit ${p.listener.maxMessageBytes})`,
        );
        break;
      }
      p.listener.inbox.push({ peer: p.id, frames, identity: LOCAL_IDENTITY });
    }
    if (this.#outbox.length === 0 && this.#idle.length > 0) {
      for (const f of this.#idle.splice(0)) f();
    }
  }

  on<E extends keyof ConnectionEvents>(event: E, fn: ConnectionEvents[E]): void {
    this.#listeners[event].push(fn);
  }

  [Symbol.asyncIterator](): AsyncIterator<Frames> {
    return this.#inbox;
  }

  send(frames: Frames): boolean {
    if (this.#closed) return false;
    const drop = this.#opts.dropWhenDownAfter;
    if (drop !== undefined && !this.up && this.#outbox.length >= drop) return false;
    this.#outbox.push(copy(frames));
    this.pump();
    return this.#outbox.length < (this.#opts.highWaterMark ?? DEFAULT_HWM);
  }

  get queued(): number {
    return this.#outbox.length;
  }

  drained(timeoutMs: number): Promise<void> {
    if (this.#outbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idle.push(done);
    });
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    // Like a carrier's linger: what is queued may still leave if the listener is (or comes) up.
    if (lingerMs > 0) await this.drained(lingerMs);
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#peer !== undefined) this.#peer.listener.detach(this.#peer.id);
    this.#peer = undefined;
    this.up = false;
    this.#outbox.length = 0;
    this.#inbox.end();
    for (const f of this.#idle.splice(0)) f();
  }
}

/**
 * An in-process transport; listeners and connections of the same instance reach each other.
 * Give one instance to every node and hub of a process that should share it.
 */
export class MemoryTransport implements Transport {
  readonly name = "memory";
  readonly #listeners = new Map<string, MemoryListener>();

  listen(endpoint: string, opts: TransportOptions): Promise<Listener> {
    try {
      requireNoSecurity(opts, endpoint, "memory");
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (!endpoint.startsWith("inproc://") || endpoint.length <= "inproc://".length) {
      return Promise.reject(
        new MyelinError("ERR_INVALID_ARGUMENT", `cannot listen on '${endpoint}': use inproc://NAME`),
      );
    }
    if (this.#listeners.has(endpoint)) {
      return Promise.reject(
        new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `cannot listen on ${endpoint}: address in use; another listener of this process holds it, choose another name`,
        ),
      );
    }
    const l = new MemoryListener(endpoint, opts, this.#listeners);
    this.#listeners.set(endpoint, l);
    return Promise.resolve(l);
  }

  /** @throws MyelinError ERR_INVALID_ARGUMENT for any security but `none` (in-process needs none) */
  connect(endpoint: string, opts: ConnectOptions): Connection {
    requireNoSecurity(opts, endpoint, "memory");
    return new MemoryConnection(endpoint, opts, this.#listeners);
  }
}
