/**
 * The floor for Node: a plain `net` Unix-domain stream socket carrying u32-LE length-prefixed frames.
 *
 * The sender listens and writes every frame to every connected client. Small frames are coalesced into
 * one write buffer (flushed when full, and in a microtask once the sending code yields), which is what
 * any serious Node stream user does; frames larger than half the batch go out as a header write plus
 * the payload itself. Backpressure is honoured: when `socket.write` returns false, `send` returns a
 * promise that resolves on `'drain'`. The receiver reads with `onread` into a reused buffer and parses
 * frames out of the byte stream: zero-copy views when a frame is inside one read, assembling frames
 * that straddle reads (big ones are read by the kernel directly into the frame's buffer).
 */
import { once } from "node:events";
import net from "node:net";
import path from "node:path";
import type { EndpointOptions, Impl, Receiver, ReceiverOptions, Sender } from "../impl.js";

const BATCH_BYTES = 256 * 1024;

class UnixSender implements Sender {
  readonly endpoint: string;
  private readonly server: net.Server;
  private readonly clients = new Set<net.Socket>();
  private batch = Buffer.allocUnsafe(BATCH_BYTES);
  private used = 0;
  private flushQueued = false;
  private readonly flushSoon = (): void => {
    this.flushQueued = false;
    this.writeBatch();
  };

  constructor(server: net.Server, endpoint: string) {
    this.server = server;
    this.endpoint = endpoint;
    server.on("connection", (socket) => {
      this.clients.add(socket);
      socket.on("error", () => socket.destroy());
      socket.on("close", () => this.clients.delete(socket));
      // Receivers never write; drain anything so the socket cannot stall.
      socket.resume();
    });
  }

  send(payload: Uint8Array): void | Promise<void> {
    const len = payload.length;
    if (len > BATCH_BYTES / 2) {
      let full = this.writeBatch();
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32LE(len, 0);
      for (const s of this.clients) {
        s.write(header);
        if (!s.write(payload)) full = true;
      }
      return full ? this.drained() : undefined;
    }
    let full = false;
    if (this.used + 4 + len > BATCH_BYTES) full = this.writeBatch();
    const b = this.batch;
    let o = this.used;
    b[o] = len & 0xff;
    b[o + 1] = (len >>> 8) & 0xff;
    b[o + 2] = (len >>> 16) & 0xff;
    b[o + 3] = len >>> 24;
    o += 4;
    b.set(payload, o);
    this.used = o + len;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushSoon);
    }
    return full ? this.drained() : undefined;
  }

  /** Write the pending batch to every client; true when some client is over its high-water mark. */
  private writeBatch(): boolean {
    if (this.used === 0) return false;
    const chunk = this.batch.subarray(0, this.used);
    // The socket may keep `chunk` queued: never reuse it.
    this.batch = Buffer.allocUnsafe(BATCH_BYTES);
    this.used = 0;
    let full = false;
    for (const s of this.clients) if (!s.write(chunk)) full = true;
    return full;
  }

  private async drained(): Promise<void> {
    await Promise.all(
      [...this.clients]
        .filter((s) => s.writableNeedDrain)
        .map((s) => once(s, "drain").catch(() => undefined)),
    );
  }

  async flush(): Promise<void> {
    this.writeBatch();
    await Promise.all(
      [...this.clients].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) resolve();
            else s.write(Buffer.alloc(0), () => resolve());
          }),
      ),
    );
  }

  async close(): Promise<void> {
    for (const s of this.clients) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const READ_BYTES = 256 * 1024;
/** A frame still missing at least this much is read by the kernel straight into its own buffer. */
const DIRECT_READ_MIN = 32 * 1024;

class UnixReceiver implements Receiver {
  readonly socket: net.Socket;
  private cb: (payload: Uint8Array) => void = () => undefined;
  private readonly header = Buffer.alloc(4);
  private headerHave = 0;
  /** Frame being assembled across reads, or null. */
  private frame: Buffer | null = null;
  private frameHave = 0;
  /** Reads go into this reused buffer (frames are delivered as views into it)... */
  private readonly readBuf = Buffer.allocUnsafe(READ_BYTES);
  /** ...unless the last buffer handed to the socket was the rest of `frame` (no copy for big frames). */
  private direct = false;

  constructor(endpoint: string) {
    // `onread` instead of 'data' events: no allocation per read, and big frames are read in place.
    this.socket = net.connect({
      path: endpoint,
      onread: { buffer: () => this.nextBuffer(), callback: (n) => this.onRead(n) },
    });
    this.socket.on("error", () => undefined);
  }

  private nextBuffer(): Uint8Array {
    const f = this.frame;
    if (f !== null && f.length - this.frameHave >= DIRECT_READ_MIN) {
      this.direct = true;
      return f.subarray(this.frameHave);
    }
    this.direct = false;
    return this.readBuf;
  }

  /** Data landed in the buffer last returned by {@link nextBuffer}. Returns true: keep reading. */
  private onRead(n: number): boolean {
    if (this.direct) {
      this.frameHave += n;
      const f = this.frame!;
      if (this.frameHave === f.length) {
        this.frame = null;
        this.cb(f);
      }
    } else {
      this.onData(this.readBuf.subarray(0, n));
    }
    return true;
  }

  onMessage(cb: (payload: Uint8Array) => void): void {
    this.cb = cb;
  }

  private onData(chunk: Buffer): void {
    const n = chunk.length;
    let o = 0;
    // Finish a frame (or a header) left over from previous chunks.
    if (this.frame !== null) {
      const take = Math.min(this.frame.length - this.frameHave, n);
      chunk.copy(this.frame, this.frameHave, 0, take);
      this.frameHave += take;
      o = take;
      if (this.frameHave < this.frame.length) return;
      const f = this.frame;
      this.frame = null;
      this.cb(f);
    } else if (this.headerHave > 0) {
      while (this.headerHave < 4 && o < n) this.header[this.headerHave++] = chunk[o++]!;
      if (this.headerHave < 4) return;
      this.headerHave = 0;
      const len = this.header.readUInt32LE(0);
      if (!this.startFrame(len, chunk, o)) return;
      o += len;
    }
    // Whole frames inside this chunk: zero-copy views (a plain Uint8Array view is ~3x cheaper to create
    // than Buffer#subarray, which matters at millions of frames per second).
    const cb = this.cb;
    const ab = chunk.buffer;
    const base = chunk.byteOffset;
    while (n - o >= 4) {
      const len = (chunk[o]! | (chunk[o + 1]! << 8) | (chunk[o + 2]! << 16) | (chunk[o + 3]! << 24)) >>> 0;
      const start = o + 4;
      if (n - start < len) {
        this.startFrame(len, chunk, start);
        return;
      }
      cb(new Uint8Array(ab, base + start, len));
      o = start + len;
    }
    while (o < n) this.header[this.headerHave++] = chunk[o++]!;
  }

  /** A frame of `len` bytes starts at `chunk[start]`: deliver it if complete, else start assembling. */
  private startFrame(len: number, chunk: Buffer, start: number): boolean {
    if (chunk.length - start >= len) {
      this.cb(chunk.subarray(start, start + len));
      return true;
    }
    this.frame = Buffer.allocUnsafe(len);
    this.frameHave = chunk.copy(this.frame, 0, start);
    return false;
  }

  async close(): Promise<void> {
    this.socket.destroy();
  }
}

const impl: Impl = {
  name: "unix-socket",
  description: "Node net Unix-domain socket, u32 length-prefixed frames, batched writes + drain (the floor)",

  async createSender(opts: EndpointOptions): Promise<Sender> {
    const endpoint = path.join(opts.dir, `${opts.channel}.sock`);
    const server = net.createServer();
    server.listen(endpoint);
    await once(server, "listening");
    return new UnixSender(server, endpoint);
  },

  async createReceiver(opts: ReceiverOptions): Promise<Receiver> {
    const r = new UnixReceiver(opts.endpoint);
    await once(r.socket, "connect");
    return r;
  },
};

export default impl;
