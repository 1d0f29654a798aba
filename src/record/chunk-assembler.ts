/**
 * The open chunk of an MCAP file, kept as a list of pieces rather than one growing buffer: small
 * records are packed into 1 MiB slabs, and the data of a large message (16 KiB or more) is kept as the
 * caller's own buffer, not copied. Its records' CRC is computed piece by piece, and the pieces are
 * joined only when the chunk is compressed. Message indexes are kept per channel as plain numbers
 * (log times as seconds and nanoseconds: no BigInt per message, see mcap-time.ts) and serialised when
 * the chunk closes. No I/O.
 *
 * The caller must not change a large message's `data` after `addMessage` (the recorder's encoded
 * messages are fresh buffers).
 */
import { crc32 } from "node:zlib";
import { Opcode } from "@mcap/core";
import { timeBefore, timeFromBigint, timeToBigint, writeTimeLE } from "./mcap-time.js";

const SLAB_BYTES = 1024 * 1024;
/** Messages with at least this much data are referenced, not copied. */
const BY_REFERENCE_BYTES = 16 * 1024;
/** opcode u8, record length u64, channel u16, sequence u32, log time u64, publish time u64. */
const MESSAGE_HEADER_BYTES = 1 + 8 + 2 + 4 + 8 + 8;

interface ChannelIndex {
  secs: number[];
  nsecs: number[];
  offsets: number[];
}

const NS_PER_S = 1_000_000_000;

/** A chunk's content, sealed: its pieces, their total size and CRC, and its message index records. */
export interface SealedChunk {
  pieces: Uint8Array[];
  size: number;
  /** The pieces' CRC-32, if asked for. */
  crc: number | undefined;
  /** The piece holding the most bytes of one message's data (to probe for compressibility). */
  largest: number;
  start: bigint;
  end: bigint;
  messages: number;
  /** Channel id → its MessageIndex record, in channel order of first appearance. */
  indexes: Map<number, Buffer>;
}

/** Builds one chunk at a time; see the module comment. */
export class ChunkAssembler {
  #pieces: Uint8Array[] = [];
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  #slabStart = 0;
  #slabPos = 0;
  #size = 0;
  #messages = 0;
  #startSec = 0;
  #startNsec = 0;
  #endSec = 0;
  #endNsec = 0;
  #index = new Map<number, ChannelIndex>();

  /** Bytes of records in the open chunk. */
  get size(): number {
    return this.#size;
  }

  /** Messages in the open chunk. */
  get messages(): number {
    return this.#messages;
  }

  /** Adds already-serialised records (schemas, channels) to the chunk. */
  addRecords(records: Uint8Array): void {
    this.#reserve(records.byteLength).set(records, this.#slabPos);
    this.#slabPos += records.byteLength;
    this.#size += records.byteLength;
  }

  /**
   * Adds a message record whose data is `data`: bytes, their pieces (joined), or text (written as
   * UTF-8 straight into the chunk). Times are ns since the Unix epoch. Pieces of 16 KiB or more are
   * referenced, smaller ones copied. Returns the data's length in bytes.
   */
  addMessage(
    channelId: number,
    sequence: number,
    logTime: bigint,
    publishTime: bigint,
    data: Uint8Array | readonly Uint8Array[] | string,
  ): number {
    const l = timeFromBigint(logTime);
    const p = timeFromBigint(publishTime);
    return this.addMessageAt(channelId, sequence, l.sec, l.nsec, p.sec, p.nsec, data);
  }

  /**
   * {@link addMessage} with its times as whole seconds and nanoseconds since the Unix epoch (no BigInt:
   * the recorder's per-message path).
   */
  addMessageAt(
    channelId: number,
    sequence: number,
    logSec: number,
    logNsec: number,
    pubSec: number,
    pubNsec: number,
    data: Uint8Array | readonly Uint8Array[] | string,
  ): number {
    if (logNsec >= NS_PER_S || logNsec < 0) {
      logSec += Math.floor(logNsec / NS_PER_S);
      logNsec -= Math.floor(logNsec / NS_PER_S) * NS_PER_S;
    }
    if (typeof data === "string") {
      return this.#addText(channelId, sequence, logSec, logNsec, pubSec, pubNsec, data);
    }
    if (data instanceof Uint8Array && data.byteLength < BY_REFERENCE_BYTES) {
      // One small piece (most messages): copied, no list made.
      const n = data.byteLength;
      this.#indexMessage(channelId, logSec, logNsec);
      this.#header(channelId, sequence, logSec, logNsec, pubSec, pubNsec, n);
      this.#reserve(n).set(data, this.#slabPos);
      this.#slabPos += n;
      this.#size += MESSAGE_HEADER_BYTES + n;
      return n;
    }
    const parts = data instanceof Uint8Array ? [data] : data;
    let dataLength = 0;
    for (const p of parts) dataLength += p.byteLength;
    this.#indexMessage(channelId, logSec, logNsec);
    this.#header(channelId, sequence, logSec, logNsec, pubSec, pubNsec, dataLength);
    for (const p of parts) {
      if (p.byteLength >= BY_REFERENCE_BYTES) {
        this.#cutSlab();
        this.#pieces.push(p);
      } else {
        this.#reserve(p.byteLength).set(p, this.#slabPos);
        this.#slabPos += p.byteLength;
      }
    }
    this.#size += MESSAGE_HEADER_BYTES + dataLength;
    return dataLength;
  }

  #addText(
    channelId: number,
    sequence: number,
    logSec: number,
    logNsec: number,
    pubSec: number,
    pubNsec: number,
    text: string,
  ): number {
    this.#indexMessage(channelId, logSec, logNsec);
    // Room for the longest UTF-8 form, then the header is written with the actual length.
    const b = this.#reserve(MESSAGE_HEADER_BYTES + text.length * 3);
    const o = this.#slabPos;
    const n = b.write(text, o + MESSAGE_HEADER_BYTES, "utf8");
    this.#header(channelId, sequence, logSec, logNsec, pubSec, pubNsec, n);
    this.#slabPos += n;
    this.#size += MESSAGE_HEADER_BYTES + n;
    return n;
  }

  #indexMessage(channelId: number, sec: number, nsec: number): void {
    let idx = this.#index.get(channelId);
    if (idx === undefined) this.#index.set(channelId, (idx = { secs: [], nsecs: [], offsets: [] }));
    idx.secs.push(sec);
    idx.nsecs.push(nsec);
    idx.offsets.push(this.#size);
    if (this.#messages === 0 || timeBefore(sec, nsec, this.#startSec, this.#startNsec)) {
      this.#startSec = sec;
      this.#startNsec = nsec;
    }
    if (this.#messages === 0 || timeBefore(this.#endSec, this.#endNsec, sec, nsec)) {
      this.#endSec = sec;
      this.#endNsec = nsec;
    }
    this.#messages++;
  }

  /** Writes a message record's header at the slab position and moves past it. */
  #header(
    channelId: number,
    sequence: number,
    logSec: number,
    logNsec: number,
    pubSec: number,
    pubNsec: number,
    dataLength: number,
  ): void {
    const recordLength = 2 + 4 + 8 + 8 + dataLength;
    const b = this.#reserve(MESSAGE_HEADER_BYTES);
    const o = this.#slabPos;
    b[o] = Opcode.MESSAGE;
    putU32(b, o + 1, recordLength >>> 0);
    putU32(b, o + 5, Math.floor(recordLength / 0x100000000));
    b[o + 9] = channelId;
    b[o + 10] = channelId >>> 8;
    putU32(b, o + 11, sequence >>> 0);
    writeTimeLE(b, o + 15, logSec, logNsec);
    writeTimeLE(b, o + 23, pubSec, pubNsec);
    this.#slabPos = o + MESSAGE_HEADER_BYTES;
  }

  /** Closes the chunk: returns its content (with its CRC if `crc`) and starts an empty one. */
  seal(crc = true): SealedChunk {
    this.#cutSlab();
    const pieces = this.#pieces;
    let sum: number | undefined;
    if (crc) {
      sum = 0;
      for (const p of pieces) sum = crc32(p, sum);
    }
    let largest = 0;
    for (let i = 1; i < pieces.length; i++)
      if (pieces[i]!.byteLength > pieces[largest]!.byteLength) largest = i;
    const indexes = new Map<number, Buffer>();
    for (const [channelId, idx] of this.#index) {
      const n = idx.offsets.length;
      const b = Buffer.allocUnsafe(1 + 8 + 2 + 4 + n * 16);
      b[0] = Opcode.MESSAGE_INDEX;
      b.writeBigUInt64LE(BigInt(2 + 4 + n * 16), 1);
      b.writeUInt16LE(channelId, 9);
      b.writeUInt32LE(n * 16, 11);
      let o = 15;
      for (let i = 0; i < n; i++) {
        writeTimeLE(b, o, idx.secs[i]!, idx.nsecs[i]!);
        b.writeUInt32LE(idx.offsets[i]! >>> 0, o + 8);
        b.writeUInt32LE(Math.floor(idx.offsets[i]! / 0x100000000), o + 12);
        o += 16;
      }
      indexes.set(channelId, b);
    }
    const sealed: SealedChunk = {
      pieces,
      size: this.#size,
      crc: sum,
      largest,
      start: timeToBigint(this.#startSec, this.#startNsec),
      end: timeToBigint(this.#endSec, this.#endNsec),
      messages: this.#messages,
      indexes,
    };
    this.#pieces = [];
    this.#size = 0;
    this.#messages = 0;
    this.#index = new Map();
    return sealed;
  }

  /** A slab with room for `n` more bytes at `#slabPos` (a new one if needed; a dedicated one if huge). */
  #reserve(n: number): Buffer {
    if (this.#slabPos + n > this.#slab.length) {
      this.#cutSlab();
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, n));
      this.#slabStart = 0;
      this.#slabPos = 0;
    }
    return this.#slab;
  }

  /** Moves what the slab holds since the last cut into the pieces (the rest of the slab stays in use). */
  #cutSlab(): void {
    if (this.#slabPos > this.#slabStart) {
      this.#pieces.push(this.#slab.subarray(this.#slabStart, this.#slabPos));
      this.#slabStart = this.#slabPos;
    }
  }
}

/** Writes `v` (a u32) little-endian at `o`: plain byte stores, cheaper than Buffer's checked writers. */
function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}
