/**
 * The receive side of a Unix-carrier socket: cuts the byte stream into messages whose frames are
 * views into what was read (no copy for a message read whole).
 *
 * - {@link ChunkReader} takes the chunks of `'data'` events (fresh buffers from Node).
 * - {@link SlabReader} hands the socket the buffers to read into (`onread`): the unused tail of a
 *   slab, so many messages arrive per read, a message that spans two reads is already contiguous,
 *   and no stream machinery runs per read. Slab bytes are never read into twice, so a frame stays
 *   valid for as long as the receiver keeps it. A message larger than half a slab is read straight
 *   into a buffer of its own size.
 */
import type { Frames } from "../transport.js";
import { checkTotal, cutMessages } from "./unix-framing.js";

/** Receives one message; returns false to stop (the reader's socket was closed). */
export type OnMessage = (frames: Frames) => boolean;

/** Cuts the chunks of `'data'` events into messages. */
export class ChunkReader {
  /** Received bytes not yet cut into messages: the start of a message that is still arriving. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes the message being assembled needs (prefix included), once its prefix is known. */
  #need = 0;
  readonly #max: number;
  readonly #onMessage: OnMessage;

  constructor(maxMessageBytes: number, onMessage: OnMessage) {
    this.#max = maxMessageBytes;
    this.#onMessage = onMessage;
  }

  /** @throws FramingError when a message is malformed or over the limit (reset the connection) */
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
      this.#need = 4 + checkTotal(head.readUInt32BE(0), this.#max);
    }
    if (this.#pendingBytes < this.#need) return;
    const joined = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#need = 0;
    this.#cut(joined);
  }

  #cut(buf: Buffer): void {
    const off = cutMessages(buf, 0, buf.length, this.#max, this.#onMessage);
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.#pending = [rest];
      this.#pendingBytes = rest.length;
      this.#need = rest.length >= 4 ? 4 + checkTotal(rest.readUInt32BE(0), this.#max) : 0;
    }
  }
}

/** Size of a slab that reads go into, in bytes. */
const SLAB_BYTES = 256 * 1024;
/** A new slab is taken once the current one has less room than this for the next read, in bytes. */
const MIN_READ_BYTES = 32 * 1024;

/** Hands the socket the buffers to read into (`onread`) and cuts what lands there into messages. */
export class SlabReader {
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  /** Start of the bytes not yet cut into messages. */
  #start = 0;
  /** End of the bytes read into the slab. */
  #end = 0;
  /** A large message being read into a buffer of its own, and how much of it has arrived. */
  #big: Buffer | null = null;
  #bigHave = 0;
  readonly #max: number;
  readonly #onMessage: OnMessage;

  constructor(maxMessageBytes: number, onMessage: OnMessage) {
    this.#max = maxMessageBytes;
    this.#onMessage = onMessage;
  }

  /** The buffer the next read goes into. */
  buffer(): Buffer {
    if (this.#big !== null) return this.#big.subarray(this.#bigHave);
    if (this.#slab.length - this.#end < MIN_READ_BYTES) this.#moveTo(SLAB_BYTES);
    return this.#slab.subarray(this.#end);
  }

  /**
   * `n` bytes landed in the buffer last returned by {@link buffer}.
   * @throws FramingError when a message is malformed or over the limit (reset the connection)
   */
  read(n: number): void {
    const big = this.#big;
    if (big !== null) {
      this.#bigHave += n;
      if (this.#bigHave < big.length) return;
      this.#big = null;
      this.#bigHave = 0;
      cutMessages(big, 0, big.length, this.#max, this.#onMessage);
      return;
    }
    this.#end += n;
    this.#start = cutMessages(this.#slab, this.#start, this.#end, this.#max, this.#onMessage);
    const have = this.#end - this.#start;
    if (have < 4) return;
    // A message still arriving: make sure the rest has room.
    const need = 4 + checkTotal(this.#slab.readUInt32BE(this.#start), this.#max);
    if (this.#start + need <= this.#slab.length) return;
    if (need <= SLAB_BYTES / 2) {
      this.#moveTo(SLAB_BYTES);
      return;
    }
    const own = Buffer.allocUnsafe(need);
    this.#slab.copy(own, 0, this.#start, this.#end);
    this.#big = own;
    this.#bigHave = have;
    this.#start = this.#end;
  }

  /** Continues in a fresh slab, with the bytes of the message still arriving copied over. */
  #moveTo(size: number): void {
    const fresh = Buffer.allocUnsafe(size);
    const have = this.#slab.copy(fresh, 0, this.#start, this.#end);
    this.#slab = fresh;
    this.#start = 0;
    this.#end = have;
  }
}
