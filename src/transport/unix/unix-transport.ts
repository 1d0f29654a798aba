/**
 * A plain Unix-socket transport for `ipc://PATH`: one stream socket per connection, no I/O
 * thread in between (ZeroMQ's costs a hop each way on one host).
 *
 * Wire: the connecting side first sends a 16-byte greeting (`MYELIN-UNIX/2` padded with zeros);
 * a listener closes a connection whose greeting is wrong, so stray bytes never become messages,
 * and answers a right one with the same 16 bytes, before which the connecting side sends nothing.
 * Then both ways, each message is `u32 length` (of what follows), `u16 frame count`, and per
 * frame `u32 length` + bytes, all big-endian. A message over the receiver's `maxMessageBytes`
 * resets the connection (the sender reconnects), like a carrier that refuses it
 * (unix-framing.ts). A ZeroMQ peer on the same path (a process with the other
 * `MYELIN_IPC_TRANSPORT`) is recognised by its greeting either way, and the connection goes down
 * with a reason saying so ({@link CARRIER_MISMATCH_HINT}).
 *
 * Speed: what one turn sends to a socket leaves in one gathered write (message-writer.ts); a
 * connection reads into slabs (`onread`, message-reader.ts) with frames as views; the receive
 * loop takes messages in push mode (`consume`), in the read callback, with no promise per message.
 *
 * Each socket asks the kernel for a send buffer of a few MiB (send-buffer.ts), so what a busy sender
 * writes waits in the kernel, where the receiver can read it, rather than in this process.
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
import { CARRIER_MISMATCH_HINT, LOCAL_IDENTITY, requireNoSecurity } from "../transport.js";
import { Inbox } from "../inbox.js";
import { GREETING, ZMTP_REFUSAL, looksLikeZmtp } from "./unix-framing.js";
import { MessageWriter } from "./message-writer.js";
import { ChunkReader, SlabReader } from "./message-reader.js";
import { enlargeSendBuffer } from "./send-buffer.js";

/** Messages read ahead of a receiver that does not keep up, before its sockets pause. */
const RECEIVE_HWM = 10000;
/** Messages a connection queues beyond what the socket took, before `send` says so. */
const SEND_HWM = 10000;
/** How long a connection may take to exchange greetings before it is closed (ZeroMQ's default). */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * Closes `sock` (after `expired()`) unless `done()` says its handshake finished within `ms`;
 * cancelled by its close.
 */
function handshakeDeadline(sock: Socket, ms: number, done: () => boolean, expired?: () => void): void {
  const timer = setTimeout(() => {
    if (done()) return;
    expired?.();
    sock.destroy();
  }, ms);
  timer.unref();
  sock.once("close", () => clearTimeout(timer));
}

function pathOf(endpoint: string): string {
  if (!endpoint.startsWith("ipc://") || endpoint.length <= "ipc://".length) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `'${endpoint}' is not an ipc endpoint: use ipc:///PATH`);
  }
  return endpoint.slice("ipc://".length);
}

/**
 * Why a connection to `endpoint` cannot work: the listener there speaks ZeroMQ, this process the
 * Unix carrier.
 */
export function zeromqListenerReason(endpoint: string): string {
  return (
    `${endpoint} is served by ZeroMQ (it sent a ZMTP greeting), while this process uses the Unix ` +
    `carrier; ${CARRIER_MISMATCH_HINT}`
  );
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

/** A greeted connection of a listener. */
interface ListenerPeer {
  readonly sock: Socket;
  readonly writer: MessageWriter;
}

/**
 * Where a listener or connection hands what it reads: the push-mode handler (`consume`) once set, else the
 * inbox its async iterator reads.
 */
class Delivery<M> {
  readonly inbox: Inbox<M>;
  handle: ((msg: M) => void) | undefined;
  #ended = false;
  #onEnd: (() => void) | undefined;

  constructor(onEmpty: () => void) {
    this.inbox = new Inbox<M>({ onEmpty });
  }

  /** Hands one message on; returns the messages now waiting in the inbox (0 in push mode). */
  push(msg: M): number {
    const h = this.handle;
    if (h !== undefined) {
      h(msg);
      return 0;
    }
    this.inbox.push(msg);
    return this.inbox.length;
  }

  consume(handle: (msg: M) => void): Promise<void> {
    if (this.handle !== undefined) throw new Error("consume() was already called");
    this.handle = handle;
    // What arrived before goes first, in order.
    for (const m of this.inbox.takeQueued()) handle(m);
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve) => (this.#onEnd = resolve));
  }

  end(): void {
    this.#ended = true;
    this.inbox.end();
    this.#onEnd?.();
  }
}

class UnixListener implements Listener {
  readonly endpoint: string;
  readonly #server: Server;
  readonly #path: string;
  readonly #opts: TransportOptions;
  /** Greeted connections by peer number (bytes 1–4 of their peer id). */
  readonly #peers = new Map<number, ListenerPeer>();
  /** Every accepted socket, greeted or not. */
  readonly #sockets = new Set<Socket>();
  readonly #in: Delivery<Incoming>;
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
    this.#in = new Delivery<Incoming>(() => this.#resume());
    server.on("connection", (sock) => this.#accept(sock));
  }

  #accept(sock: Socket): void {
    if (this.#closed) {
      sock.destroy();
      return;
    }
    this.#sockets.add(sock);
    const num = this.#nextPeer++;
    const id = Buffer.alloc(5);
    id.writeUInt32BE(num, 1);
    let greeted = false;
    let pending: Buffer | null = null;
    // A peer that never completes its greeting does not hold the socket for ever.
    handshakeDeadline(sock, this.#opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS, () => greeted);
    const reader = new ChunkReader(this.#opts.maxMessageBytes, (frames) => {
      if (this.#in.push({ peer: id, frames, identity: LOCAL_IDENTITY }) >= this.#hwm) this.#pause();
      return !sock.destroyed && !this.#closed;
    });
    sock.on("data", (chunk: Buffer) => {
      try {
        if (!greeted) {
          pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
          const n = Math.min(pending.length, GREETING.length);
          if (!pending.subarray(0, n).equals(GREETING.subarray(0, n))) {
            // A ZeroMQ peer: answer with a greeting its handshake refuses, so it says why.
            if (pending[0] === 0xff) {
              if (pending.length < 10) return;
              if (looksLikeZmtp(pending)) {
                sock.end(ZMTP_REFUSAL);
                return;
              }
            }
            sock.destroy();
            return;
          }
          if (pending.length < GREETING.length) return;
          greeted = true;
          enlargeSendBuffer(sock);
          sock.write(GREETING);
          this.#peers.set(num, { sock, writer: new MessageWriter(sock, () => {}) });
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
      const p = this.#peers.get(num);
      if (p !== undefined && p.sock === sock) {
        p.writer.discard();
        this.#peers.delete(num);
      }
    });
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    for (const p of this.#peers.values()) p.sock.pause();
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    for (const p of this.#peers.values()) p.sock.resume();
  }

  [Symbol.asyncIterator](): AsyncIterator<Incoming> {
    return this.#in.inbox;
  }

  consume(handle: (msg: Incoming) => void): Promise<void> {
    const done = this.#in.consume(handle);
    this.#resume();
    return done;
  }

  #peer(id: Buffer): ListenerPeer | undefined {
    return id.length === 5 ? this.#peers.get(id.readUInt32BE(1)) : undefined;
  }

  send(peer: Buffer, frames: Frames): void {
    if (this.#closed) return;
    const p = this.#peer(peer);
    if (p === undefined || p.sock.destroyed) return;
    p.writer.write(frames);
    // A peer that does not read: past the bound, its connection closes and its queue is freed.
    const max = this.#opts.maxPeerBytes;
    if (max !== undefined && p.sock.writableLength + p.writer.pendingBytes > max) this.disconnect(peer);
  }

  disconnect(peer: Buffer): void {
    const p = this.#peer(peer);
    if (p === undefined) return;
    this.#peers.delete(peer.readUInt32BE(1));
    p.writer.discard();
    p.sock.destroy();
  }

  get queued(): number {
    let n = 0;
    for (const p of this.#peers.values()) if (p.sock.writableLength > 0 || p.writer.pendingBytes > 0) n++;
    return n;
  }

  #flushed(): Socket[] {
    const socks: Socket[] = [];
    for (const p of this.#peers.values()) {
      p.writer.flush();
      socks.push(p.sock);
    }
    return socks;
  }

  drained(timeoutMs: number): Promise<void> {
    return socketsDrained(this.#flushed(), timeoutMs);
  }

  async close(lingerMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (lingerMs > 0) await socketsDrained(this.#flushed(), lingerMs);
    this.#in.end();
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
  readonly #in: Delivery<Frames>;
  readonly #listeners: { [E in keyof ConnectionEvents]: ConnectionEvents[E][] } = { up: [], down: [] };
  readonly #hwm: number;
  /** Messages not yet handed to the socket (it is down, or its buffer is full). */
  #queue: Frames[] = [];
  #queueHead = 0;
  #sock: Socket | undefined;
  #writer: MessageWriter | undefined;
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
    this.#in = new Delivery<Frames>(() => this.#sock?.resume());
    // Connect on the next turn: the caller registers its handlers first.
    this.#timer = setTimeout(() => this.#connect(), 0);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    // The reader's callbacks run only once `sock` is connected and reading.
    const reader = new SlabReader(this.#opts.maxMessageBytes, (frames) => {
      if (this.#in.push(frames) >= RECEIVE_HWM) sock.pause();
      return this.#sock === sock && !this.#closed;
    });
    // The listener's greeting is read into its own buffer, so a read never runs past it into the
    // messages; only then is the connection up and are queued messages written.
    const hello = Buffer.alloc(GREETING.length);
    let helloBytes = 0;
    let zeromq = false;
    const sock: Socket = createConnection({
      path: this.#path,
      onread: {
        buffer: () => (helloBytes < hello.length ? hello.subarray(helloBytes) : reader.buffer()),
        callback: (n: number, buf: Uint8Array): boolean => {
          if (helloBytes < hello.length) {
            if (helloBytes === 0 && buf[0] === 0xff) {
              // A ZMTP signature (our greeting never starts so): the listener speaks ZeroMQ.
              zeromq = true;
              sock.destroy();
              return false;
            }
            helloBytes += n;
            if (helloBytes < hello.length) return true;
            if (!hello.equals(GREETING)) {
              sock.destroy(); // not a Unix-carrier listener of this version: reset, retry later
              return false;
            }
            this.#greeted(sock);
            return true;
          }
          try {
            reader.read(n);
          } catch {
            sock.destroy(); // malformed or oversized: reset, reconnect
            return false;
          }
          return true;
        },
      },
    });
    this.#sock = sock;
    let connected = false;
    /** Set when the listener did not answer the greeting in time (the timeout, in ms). */
    let unanswered = 0;
    sock.on("connect", () => {
      connected = true;
      enlargeSendBuffer(sock);
      sock.write(GREETING);
      // A listener that never answers (a hung or foreign process on the path): close and retry.
      const ms = this.#opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
      handshakeDeadline(
        sock,
        ms,
        () => helloBytes >= hello.length,
        () => (unanswered = ms),
      );
    });
    sock.on("drain", () => {
      if (this.#sock !== sock) return;
      this.#writable = true;
      this.#flush();
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (this.#sock === sock) {
        this.#sock = undefined;
        this.#writer?.discard();
        this.#writer = undefined;
      }
      this.#writable = false;
      if (this.#closed) return;
      this.up = false;
      const why = zeromq
        ? zeromqListenerReason(this.endpoint)
        : unanswered > 0
          ? `the listener at ${this.endpoint} did not answer the greeting within ${unanswered} ms (a process that is not a Myelin listener of this version, or hung)`
          : connected
            ? `the connection to ${this.endpoint} was lost`
            : `the connection to ${this.endpoint} was refused`;
      for (const fn of this.#listeners.down) fn(why);
      this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retryMs = Math.min(this.#retryMs * 2, this.#opts.reconnectMs?.max ?? 1000);
    });
  }

  /** The listener answered the greeting: the connection is up, queued messages leave. */
  #greeted(sock: Socket): void {
    if (this.#sock !== sock || this.#closed) return;
    this.#retryMs = this.#opts.reconnectMs?.min ?? 100;
    this.#writer = new MessageWriter(sock, () => (this.#writable = false));
    this.#writable = true;
    this.up = true;
    for (const fn of this.#listeners.up) fn();
    this.#flush();
  }

  /** Hands queued messages to the socket while it takes them. */
  #flush(): void {
    const w = this.#writer;
    if (w === undefined || !this.#writable) return;
    while (this.#queueHead < this.#queue.length && this.#writable) {
      const m = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead] = undefined as never;
      this.#queueHead++;
      w.write(m);
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
    return this.#in.inbox;
  }

  consume(handle: (msg: Frames) => void): Promise<void> {
    const done = this.#in.consume(handle);
    this.#sock?.resume();
    return done;
  }

  send(frames: Frames): boolean {
    if (this.#closed) return false;
    const w = this.#writer;
    if (this.#writable && this.#queueHead === this.#queue.length && w !== undefined) {
      w.write(frames);
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
    this.#writer?.flush();
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
        this.#writer?.flush();
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
    this.#in.end();
    const sock = this.#sock;
    this.#sock = undefined;
    this.#writer?.flush();
    this.#writer = undefined;
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
