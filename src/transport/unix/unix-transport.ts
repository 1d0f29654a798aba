/**
 * A plain Unix-socket transport for `ipc://PATH`: one stream socket per connection, no I/O
 * thread in between (ZeroMQ's costs a hop each way on one host).
 *
 * Wire: the connecting side first sends a 16-byte greeting (`MYELIN-UNIX/1` padded with zeros);
 * a listener closes a connection whose greeting is wrong, so stray bytes never become messages.
 * Then both ways, each message is `u32 length` (of what follows), `u16 frame count`, and per
 * frame `u32 length` + bytes, all big-endian. A message over the receiver's `maxMessageBytes`
 * resets the connection (the sender reconnects), like a carrier that refuses it.
 *
 * Backpressure: a sender writes to the socket while the kernel takes it and queues the rest in
 * memory (`queued`); a receiver that does not read pauses its sockets once `highWaterMark`
 * messages wait, so the kernel's buffers fill and the sender's queue grows instead — bounded by
 * the sender heeding `send()`'s false.
 */
import { existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
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
import { LOCAL_IDENTITY, requireNoSecurity } from "../transport.js";
import { Inbox } from "../inbox.js";

const GREETING = Buffer.alloc(16);
GREETING.write("MYELIN-UNIX/1", "latin1");
/** Messages read ahead of a receiver that does not keep up, before its sockets pause. */
const RECEIVE_HWM = 10000;
/** Messages a connection queues beyond what the socket took, before `send` says so. */
const SEND_HWM = 10000;

function pathOf(endpoint: string): string {
  if (!endpoint.startsWith("ipc://") || endpoint.length <= "ipc://".length) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `'${endpoint}' is not an ipc endpoint: use ipc:///PATH`);
  }
  return endpoint.slice("ipc://".length);
}

/** Encodes a message's header: total length, frame count, and each frame's length. */
function header(frames: Frames): Buffer {
  const h = Buffer.allocUnsafe(6 + 4 * frames.length);
  let total = 2 + 4 * frames.length;
  for (let i = 0; i < frames.length; i++) {
    const n = frames[i]!.length;
    h.writeUInt32BE(n, 6 + 4 * i);
    total += n;
  }
  h.writeUInt32BE(total, 0);
  h.writeUInt16BE(frames.length, 4);
  return h;
}

const corked = new WeakSet<Socket>();

/**
 * Writes one message to a socket; returns false once the socket's buffer is full. The writes of
 * one event-loop turn leave together (one writev), not one system call per frame.
 */
function writeMessage(sock: Socket, frames: Frames): boolean {
  if (!corked.has(sock)) {
    corked.add(sock);
    sock.cork();
    process.nextTick(() => {
      corked.delete(sock);
      sock.uncork();
    });
  }
  let ok = sock.write(header(frames));
  for (const f of frames) if (f.length > 0) ok = sock.write(f);
  return ok;
}

/**
 * Cuts a byte stream into messages. Frames are views into the received chunks when a message
 * lies within one chunk (no copy).
 */
class MessageReader {
  /** Received bytes not yet cut into messages: the start of a message that is still arriving. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes the message being assembled needs (prefix included), once its prefix is known. */
  #need = 0;
  constructor(
    private readonly maxMessageBytes: number,
    private readonly onMessage: (frames: Frames) => void,
  ) {}

  /** @throws Error when a message is malformed or over the limit (the connection must reset) */
  feed(chunk: Buffer): void {
    if (this.#pending.length === 0) {
      this.#cut(chunk);
      return;
    }
    // A message spans chunks: keep them until it is whole, then join them once (not per chunk).
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#need === 0) {
      if (this.#pendingBytes < 4) return;
      const head = this.#pending[0]!.length >= 4 ? this.#pending[0]! : Buffer.concat(this.#pending);
      this.#need = 4 + this.#checkTotal(head.readUInt32BE(0));
    }
    if (this.#pendingBytes < this.#need) return;
    const joined = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#need = 0;
    this.#cut(joined);
  }

  #checkTotal(total: number): number {
    if (total > this.maxMessageBytes + 2 + 4 * 65535 || total < 2) {
      throw new Error(`a message of ${total} bytes is over the limit of ${this.maxMessageBytes}`);
    }
    return total;
  }

  /** Delivers the whole messages in `buf`; keeps the rest (a view, no copy) for the next chunks. */
  #cut(buf: Buffer): void {
    let off = 0;
    while (buf.length - off >= 4) {
      const total = this.#checkTotal(buf.readUInt32BE(off));
      if (buf.length - off - 4 < total) {
        this.#need = 4 + total;
        break;
      }
      const start = off + 4;
      const count = buf.readUInt16BE(start);
      const frames: Frames = new Array<Buffer>(count);
      let p = start + 2 + 4 * count;
      let bytes = 0;
      if (p > start + total) throw new Error(`a message declares ${count} frames in ${total} bytes`);
      for (let i = 0; i < count; i++) {
        const n = buf.readUInt32BE(start + 2 + 4 * i);
        if (p + n > start + total) throw new Error(`frame ${i} overruns its message`);
        frames[i] = buf.subarray(p, p + n);
        p += n;
        bytes += n;
      }
      if (p !== start + total) throw new Error(`a message has ${start + total - p} bytes after its frames`);
      if (bytes > this.maxMessageBytes) {
        throw new Error(`a message of ${bytes} bytes is over the limit of ${this.maxMessageBytes}`);
      }
      off = start + total;
      this.onMessage(frames);
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
      if (rest.length < 4) this.#need = 0;
    }
  }
}

/** Resolves when every socket's buffer is handed to the kernel, or after `timeoutMs`. */
function socketsDrained(socks: Iterable<Socket>, timeoutMs: number): Promise<void> {
  const pending = [...socks].filter((s) => !s.destroyed && s.writableLength > 0);
  if (pending.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let left = pending.length;
    const timer = setTimeout(resolve, timeoutMs);
    const one = (): void => {
      if (--left === 0) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (const s of pending) {
      // An empty write's callback runs once everything written before it is flushed ('drain'
      // fires only after a write said the buffer was full).
      let done = false;
      const once = (): void => {
        if (done) return;
        done = true;
        s.off("close", once);
        one();
      };
      s.once("close", once);
      s.write(Buffer.alloc(0), () => once());
    }
  });
}

class UnixListener implements Listener {
  readonly endpoint: string;
  readonly #server: Server;
  readonly #path: string;
  readonly #opts: TransportOptions;
  readonly #peers = new Map<string, Socket>();
  /** Every accepted socket, greeted or not. */
  readonly #sockets = new Set<Socket>();
  readonly #inbox: Inbox<Incoming>;
  readonly #hwm: number;
  #nextPeer = 1;
  #paused = false;
  #closed = false;

  constructor(endpoint: string, path: string, server: Server, opts: TransportOptions) {
    this.endpoint = endpoint;
    this.#path = path;
    this.#server = server;
    this.#opts = opts;
    this.#hwm = opts.highWaterMark ?? RECEIVE_HWM;
    this.#inbox = new Inbox<Incoming>({ onEmpty: () => this.#resume() });
    server.on("connection", (sock) => this.#accept(sock));
  }

  #accept(sock: Socket): void {
    if (this.#closed) {
      sock.destroy();
      return;
    }
    this.#sockets.add(sock);
    const id = Buffer.alloc(5);
    id.writeUInt32BE(this.#nextPeer++, 1);
    const key = id.toString("latin1");
    let greeted = false;
    let pending: Buffer | null = null;
    const reader = new MessageReader(this.#opts.maxMessageBytes, (frames) => {
      this.#inbox.push({ peer: id, frames, identity: LOCAL_IDENTITY });
      if (this.#inbox.length >= this.#hwm) this.#pause();
    });
    sock.on("data", (chunk: Buffer) => {
      try {
        if (!greeted) {
          pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
          if (pending.length < GREETING.length) return;
          if (!pending.subarray(0, GREETING.length).equals(GREETING)) {
            sock.destroy();
            return;
          }
          greeted = true;
          this.#peers.set(key, sock);
          chunk = pending.subarray(GREETING.length);
          pending = null;
          if (this.#paused) sock.pause();
          if (chunk.length === 0) return;
        }
        reader.feed(chunk);
      } catch {
        sock.destroy(); // malformed or oversized: reset, the peer reconnects
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      this.#sockets.delete(sock);
      if (this.#peers.get(key) === sock) this.#peers.delete(key);
    });
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    for (const s of this.#peers.values()) s.pause();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const s of this.#peers.values()) s.resume();
  }

  [Symbol.asyncIterator](): AsyncIterator<Incoming> {
    return this.#inbox;
  }

  send(peer: Buffer, frames: Frames): void {
    if (this.#closed) return;
    const sock = this.#peers.get(peer.toString("latin1"));
    if (sock === undefined || sock.destroyed) return;
    writeMessage(sock, frames);
    // A peer that does not read: past the bound, its connection closes and its queue is freed.
    const max = this.#opts.maxPeerBytes;
    if (max !== undefined && sock.writableLength > max) this.disconnect(peer);
  }

  disconnect(peer: Buffer): void {
    const key = peer.toString("latin1");
    const sock = this.#peers.get(key);
    if (sock === undefined) return;
    this.#peers.delete(key);
    sock.destroy();
  }

  get queued(): number {
    let n = 0;
    for (const s of this.#peers.values()) if (s.writableLength > 0) n++;
    return n;
  }

  drained(timeoutMs: number): Promise<void> {
    return socketsDrained(this.#peers.values(), timeoutMs);
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (lingerMs > 0) await socketsDrained(this.#peers.values(), lingerMs);
    this.#inbox.end();
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    this.#peers.clear();
    try {
      unlinkSync(this.#path);
    } catch {
      // already gone, or taken over
    }
  }
}

class UnixConnection implements Connection {
  readonly endpoint: string;
  up = false;
  readonly #path: string;
  readonly #opts: ConnectOptions;
  readonly #inbox: Inbox<Frames>;
  readonly #listeners: { [E in keyof ConnectionEvents]: ConnectionEvents[E][] } = { up: [], down: [] };
  readonly #hwm: number;
  /** Messages not yet handed to the socket (it is down, or its buffer is full). */
  #queue: Frames[] = [];
  #queueHead = 0;
  #sock: Socket | undefined;
  #writable = false;
  #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(endpoint: string, path: string, opts: ConnectOptions) {
    this.endpoint = endpoint;
    this.#path = path;
    this.#opts = opts;
    this.#hwm = opts.highWaterMark ?? SEND_HWM;
    this.#retryMs = opts.reconnectMs?.min ?? 100;
    this.#inbox = new Inbox<Frames>({ onEmpty: () => this.#sock?.resume() });
    // Connect on the next turn: the caller registers its handlers first.
    this.#timer = setTimeout(() => this.#connect(), 0);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const sock = createConnection({ path: this.#path });
    this.#sock = sock;
    const reader = new MessageReader(this.#opts.maxMessageBytes, (frames) => {
      this.#inbox.push(frames);
      if (this.#inbox.length >= RECEIVE_HWM) sock.pause();
    });
    let connected = false;
    sock.on("connect", () => {
      connected = true;
      this.#retryMs = this.#opts.reconnectMs?.min ?? 100;
      sock.write(GREETING);
      this.#writable = true;
      this.up = true;
      for (const fn of this.#listeners.up) fn();
      this.#flush();
    });
    sock.on("data", (chunk: Buffer) => {
      try {
        reader.feed(chunk);
      } catch {
        sock.destroy();
      }
    });
    sock.on("drain", () => {
      this.#writable = true;
      this.#flush();
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (this.#sock === sock) this.#sock = undefined;
      this.#writable = false;
      if (this.#closed) return;
      this.up = false;
      const why = connected
        ? `the connection to ${this.endpoint} was lost`
        : `the connection to ${this.endpoint} was refused`;
      for (const fn of this.#listeners.down) fn(why);
      this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, this.#opts.reconnectMs?.max ?? 1000);
    });
  }

  /** Hands queued messages to the socket while it takes them. */
  #flush(): void {
    const sock = this.#sock;
    if (sock === undefined || !this.#writable) return;
    while (this.#queueHead < this.#queue.length) {
      const m = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead] = undefined as never;
      this.#queueHead++;
      if (!writeMessage(sock, m)) {
        this.#writable = false;
        break;
      }
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
      if (this.#idle.length > 0) for (const f of this.#idle.splice(0)) f();
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
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
    if (this.#writable && this.#queueHead === this.#queue.length && this.#sock !== undefined) {
      if (!writeMessage(this.#sock, frames)) this.#writable = false;
      return true;
    }
    const drop = this.#opts.dropWhenDownAfter;
    if (drop !== undefined && !this.up && this.queued >= drop) return false;
    this.#queue.push(frames);
    return this.queued < this.#hwm;
  }

  get queued(): number {
    return this.#queue.length - this.#queueHead;
  }

  drained(timeoutMs: number): Promise<void> {
    const sock = this.#sock;
    if (this.queued === 0) return sock === undefined ? Promise.resolve() : socketsDrained([sock], timeoutMs);
    const deadline = Date.now() + timeoutMs;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idle.push(() => {
        clearTimeout(timer);
        const s = this.#sock;
        if (s === undefined) resolve();
        else void socketsDrained([s], Math.max(0, deadline - Date.now())).then(resolve);
      });
    });
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    if (lingerMs > 0) await this.drained(lingerMs);
    this.#closed = true;
    this.up = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#queueHead = 0;
    this.#inbox.end();
    const sock = this.#sock;
    this.#sock = undefined;
    if (sock !== undefined) {
      if (lingerMs > 0) sock.end();
      else sock.destroy();
    }
    for (const f of this.#idle.splice(0)) f();
  }
}

/** Listens on `path`; a socket file left by a process that is gone is replaced. */
function listenOn(path: string): Promise<Server> {
  const attempt = (): Promise<Server> =>
    new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true });
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        server.on("error", () => {});
        resolve(server);
      });
    });
  return attempt().catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== "EADDRINUSE" || !existsSync(path)) throw err;
    const live = await new Promise<boolean>((resolve) => {
      const probe = createConnection({ path });
      probe.once("connect", () => {
        probe.destroy();
        resolve(true);
      });
      probe.once("error", () => resolve(false));
    });
    if (live) throw err;
    unlinkSync(path); // stale: its listener is gone
    return attempt();
  });
}

/** The Unix-socket transport for `ipc://`. */
export const unixTransport: Transport = {
  name: "unix",
  async listen(endpoint, opts) {
    requireNoSecurity(opts, endpoint, "unix");
    const path = pathOf(endpoint);
    let server: Server;
    try {
      server = await listenOn(path);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `cannot listen on ${endpoint}: ${e.message}` +
          (e.code === "EADDRINUSE"
            ? "; another process listens there (address in use): stop it or choose another path"
            : "; check that the directory exists and is writable"),
        { cause: err },
      );
    }
    return new UnixListener(endpoint, path, server, opts);
  },
  connect(endpoint, opts) {
    requireNoSecurity(opts, endpoint, "unix");
    return new UnixConnection(endpoint, pathOf(endpoint), opts);
  },
};
