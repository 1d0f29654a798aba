/**
 * The send side of one Unix-carrier socket: messages of one event-loop turn leave in one write.
 *
 * Small messages (header and frames) are copied into a slab, one after the other, so a burst of
 * them costs one `socket.write` and one system call, not one (or two) per message; a large
 * message's frames are not copied (its header goes into the slab, its frames are written as they
 * are, in order, in the same gathered write). What is pending is written at the end of the turn
 * (`process.nextTick`), or at once when it reaches {@link FLUSH_BYTES}, so a lone message leaves
 * without waiting for a timer and a stream keeps the socket busy while the sender works.
 */
import type { Socket } from "node:net";
import type { Frames } from "../transport.js";
import { headerBytes } from "./unix-framing.js";

/** Size of a slab that small messages are copied into, in bytes. */
const SLAB_BYTES = 64 * 1024;
/** A message with more bytes than this (all frames) is written without copying its frames. */
const COPY_MAX_BYTES = 8 * 1024;
/** Pending bytes written at once, without waiting for the end of the turn. */
export const FLUSH_BYTES = 64 * 1024;

/** Batches the messages written to one socket. */
export class MessageWriter {
  readonly #sock: Socket;
  readonly #onFull: () => void;
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  /** Bytes of the slab used; slab bytes are never written twice (the socket may still hold them). */
  #used = 0;
  /** Start of the slab bytes not yet in `#chunks`. */
  #segStart = 0;
  #chunks: Buffer[] = [];
  #pending = 0;
  #scheduled = false;
  readonly #tick = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  /**
   * @param onFull called when a write found the socket's buffer full (wait for 'drain')
   */
  constructor(sock: Socket, onFull: () => void) {
    this.#sock = sock;
    this.#onFull = onFull;
  }

  /** Bytes accepted and not yet handed to the socket. */
  get pendingBytes(): number {
    return this.#pending;
  }

  /** Queues one message; it leaves at the end of this turn, or at once past {@link FLUSH_BYTES}. */
  write(frames: Frames): void {
    const count = frames.length;
    let payload = 0;
    for (let i = 0; i < count; i++) payload += frames[i]!.length;
    const head = headerBytes(count);
    const copy = payload <= COPY_MAX_BYTES;
    const need = copy ? head + payload : head;
    if (this.#slab.length - this.#used < need) this.#newSlab(need);
    const b = this.#slab;
    let o = this.#used;
    b.writeUInt32BE(head - 4 + payload, o);
    b.writeUInt16BE(count, o + 4);
    o += 6;
    for (let i = 0; i < count; i++) {
      b.writeUInt32BE(frames[i]!.length, o);
      o += 4;
    }
    if (copy) {
      for (let i = 0; i < count; i++) {
        const f = frames[i]!;
        if (f.length === 0) continue;
        b.set(f, o);
        o += f.length;
      }
      this.#used = o;
    } else {
      this.#used = o;
      this.#cut();
      for (let i = 0; i < count; i++) if (frames[i]!.length > 0) this.#chunks.push(frames[i]!);
    }
    this.#pending += head + payload;
    if (this.#pending >= FLUSH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.#tick);
    }
  }

  /** Hands everything pending to the socket now (one gathered write). */
  flush(): void {
    this.#cut();
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    this.#chunks = [];
    this.#pending = 0;
    const sock = this.#sock;
    if (sock.destroyed) return;
    let ok: boolean;
    if (chunks.length === 1) ok = sock.write(chunks[0]!);
    else {
      sock.cork();
      ok = true;
      for (const c of chunks) ok = sock.write(c);
      sock.uncork();
    }
    if (!ok) this.#onFull();
  }

  /** Forgets what is pending (the socket is gone). */
  discard(): void {
    this.#chunks = [];
    this.#pending = 0;
    this.#segStart = this.#used;
  }

  /** Moves the slab bytes written since the last cut into `#chunks`. */
  #cut(): void {
    if (this.#used > this.#segStart) {
      this.#chunks.push(this.#slab.subarray(this.#segStart, this.#used));
      this.#segStart = this.#used;
    }
  }

  #newSlab(need: number): void {
    this.#cut();
    this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, need));
    this.#used = 0;
    this.#segStart = 0;
  }
}
