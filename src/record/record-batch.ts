/**
 * The batches in which the recorder's receiving thread hands raw messages to its recording thread:
 * one transferable buffer of messages back to back, each a fixed header (topic index, frame count,
 * sequence, log time, publish time) followed by its frames' lengths and bytes, as they arrived
 * (still msgpack: decoding, validating and encoding happen on the other side). No I/O.
 *
 * Layout of one message, little-endian: u16 topic, u16 frame count, u32 publish time nanoseconds,
 * f64 sequence, f64 log time (ms after the recording's time base), f64 publish time seconds, then a
 * u32 length per frame, then the frames.
 */

/** Bytes of a message's fixed header. */
export const BATCH_HEADER_BYTES = 32;

/** A batch ready to hand over: `buffer` holds `count` messages in its first `length` bytes. */
export interface Batch {
  buffer: ArrayBuffer;
  length: number;
  count: number;
  /** True if a message of 16 KiB or more is in it (its bytes may be referenced until written). */
  large: boolean;
}

/** Messages of at least this many bytes make a batch `large`. */
export const LARGE_MESSAGE_BYTES = 16 * 1024;

/** Fills batches; see the module comment. */
export class BatchWriter {
  readonly #capacity: number;
  readonly #spare: ArrayBuffer[] = [];
  /** Large batches' buffers given back (memory already mapped: no page faults when filled again). */
  readonly #spareLarge: ArrayBuffer[] = [];
  #buf: Uint8Array;
  #dv: DataView;
  #pos = 0;
  #count = 0;
  #large = false;

  /** `capacity`: the usual size of a batch (a larger message opens a batch of its size, rounded up to 64 KiB). */
  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#buf = new Uint8Array(0);
    this.#dv = new DataView(this.#buf.buffer);
  }

  /** Messages in the open batch. */
  get count(): number {
    return this.#count;
  }

  /** Bytes in the open batch. */
  get length(): number {
    return this.#pos;
  }

  /** Keeps `b` (a batch's buffer given back) for a later batch. */
  recycle(b: ArrayBuffer): void {
    if (b.byteLength === this.#capacity) {
      if (this.#spare.length < 8) this.#spare.push(b);
    } else if (this.#spareLarge.length < 32) this.#spareLarge.push(b);
  }

  /** The bytes one message takes in a batch. */
  static sizeOf(frames: readonly Uint8Array[]): number {
    let n = BATCH_HEADER_BYTES + 4 * frames.length;
    for (const f of frames) n += f.byteLength;
    return n;
  }

  /**
   * Adds a message. Returns the batch that had to be closed to make room for it, if any: the caller
   * hands it over.
   */
  add(
    topic: number,
    seq: number,
    logMs: number,
    pubSec: number,
    pubNsec: number,
    frames: readonly Uint8Array[],
    size: number,
  ): Batch | undefined {
    let closed: Batch | undefined;
    if (this.#pos + size > this.#buf.byteLength) {
      closed = this.take();
      this.#open(size);
    }
    const dv = this.#dv;
    let o = this.#pos;
    dv.setUint16(o, topic, true);
    dv.setUint16(o + 2, frames.length, true);
    dv.setUint32(o + 4, pubNsec, true);
    dv.setFloat64(o + 8, seq, true);
    dv.setFloat64(o + 16, logMs, true);
    dv.setFloat64(o + 24, pubSec, true);
    o += BATCH_HEADER_BYTES;
    for (const f of frames) {
      dv.setUint32(o, f.byteLength, true);
      o += 4;
    }
    const b = this.#buf;
    for (const f of frames) {
      const n = f.byteLength;
      if (n < 64) for (let i = 0; i < n; i++) b[o + i] = f[i]!;
      else b.set(f, o);
      o += n;
    }
    if (size >= LARGE_MESSAGE_BYTES) this.#large = true;
    this.#pos = o;
    this.#count++;
    return closed;
  }

  /** Closes the open batch and returns it (undefined if empty). */
  take(): Batch | undefined {
    if (this.#count === 0) return undefined;
    const batch: Batch = {
      buffer: this.#buf.buffer as ArrayBuffer,
      length: this.#pos,
      count: this.#count,
      large: this.#large,
    };
    this.#buf = new Uint8Array(0);
    this.#dv = new DataView(this.#buf.buffer);
    this.#pos = 0;
    this.#count = 0;
    this.#large = false;
    return batch;
  }

  #open(need: number): void {
    const ab =
      need <= this.#capacity
        ? (this.#spare.pop() ?? new ArrayBuffer(this.#capacity))
        : this.#largeBuffer(need);
    this.#buf = new Uint8Array(ab);
    this.#dv = new DataView(ab);
    this.#pos = 0;
  }

  /** A buffer for a large message: a spare one that fits (not more than twice too big), else a new one. */
  #largeBuffer(need: number): ArrayBuffer {
    const s = this.#spareLarge;
    for (let i = s.length - 1; i >= 0; i--) {
      const b = s[i]!;
      if (b.byteLength >= need && b.byteLength <= 2 * need) {
        s.splice(i, 1);
        return b;
      }
    }
    if (s.length >= 32) s.shift(); // sizes changed: let the oldest go
    return new ArrayBuffer(Math.ceil(need / LARGE_ROUND) * LARGE_ROUND);
  }
}

/** Sizes of large batches are rounded up to this, so that buffers given back fit the next frames. */
const LARGE_ROUND = 64 * 1024;
/** What {@link forEachBatchMessage} passes for each message. */
export type BatchVisitor = (
  topic: number,
  seq: number,
  logMs: number,
  pubSec: number,
  pubNsec: number,
  frames: Uint8Array[],
) => void;

/**
 * Calls `visit` for each message of a batch, in order; frames are views into `buffer`. The array of a
 * one-frame message is reused for the next one: `visit` must not keep it (the views it may keep).
 */
export function forEachBatchMessage(buffer: ArrayBuffer, length: number, visit: BatchVisitor): void {
  const dv = new DataView(buffer, 0, length);
  const u8 = new Uint8Array(buffer, 0, length);
  const one: Uint8Array[] = [u8];
  let o = 0;
  while (o < length) {
    const topic = dv.getUint16(o, true);
    const n = dv.getUint16(o + 2, true);
    const pubNsec = dv.getUint32(o + 4, true);
    const seq = dv.getFloat64(o + 8, true);
    const logMs = dv.getFloat64(o + 16, true);
    const pubSec = dv.getFloat64(o + 24, true);
    let p = o + BATCH_HEADER_BYTES + 4 * n;
    if (n === 1) {
      const len = dv.getUint32(o + BATCH_HEADER_BYTES, true);
      one[0] = u8.subarray(p, p + len);
      o = p + len;
      visit(topic, seq, logMs, pubSec, pubNsec, one);
      continue;
    }
    const frames: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const len = dv.getUint32(o + BATCH_HEADER_BYTES + 4 * i, true);
      frames.push(u8.subarray(p, p + len));
      p += len;
    }
    o = p;
    visit(topic, seq, logMs, pubSec, pubNsec, frames);
  }
}
