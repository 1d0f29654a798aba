/**
 * The store's segment file format, sans-IO: encoders that build the bytes of a segment header
 * and of records, and a `SegmentReader` you push bytes into and pull records out of, without
 * touching a file. Documented in docs/store-format.md and pinned by golden files under
 * conformance/store/.
 *
 * All integers are little-endian. A 64-bit sequence number is a u64 (low u32, then high u32);
 * this implementation limits it to `Number.MAX_SAFE_INTEGER`.
 */
import { DecodeError, MyelinError } from "../errors.js";
import { crc32c } from "./crc32c.js";

/** The 8 ASCII bytes every segment file starts with. */
export const SEGMENT_MAGIC = "MYLSEG01";
/** Version of the segment format this code writes and reads. */
export const SEGMENT_VERSION = 1;
/** Bytes of the segment file header (version 1). */
export const SEGMENT_HEADER_BYTES = 40;
/** Bytes of a record before its header bytes: length, CRC, seq, timestamp, header length. */
export const RECORD_OVERHEAD_BYTES = 26;
/** Bytes of the fixed part of a record body (seq, timestamp, header length), covered by the CRC. */
export const RECORD_BODY_FIXED_BYTES = 18;
/** Largest record body (everything after the length and CRC fields) the format allows, in bytes (64 MiB). */
export const MAX_RECORD_BODY_BYTES = 64 * 1024 * 1024;
/** Largest record header, in bytes (it has a u16 length). */
export const MAX_RECORD_HEADER_BYTES = 0xffff;

const MAGIC_BYTES = Buffer.from(SEGMENT_MAGIC, "latin1");
const TWO_32 = 0x1_0000_0000;

/** The decoded file header of a segment. */
export interface SegmentHeader {
  /** Format version (1). */
  version: number;
  /** Sequence number of the first record the segment holds (or will hold), from 1. */
  baseSeq: number;
  /** When the segment was created, in milliseconds since the Unix epoch. */
  createdAtMs: number;
}

/** A record pulled from a `SegmentReader`; its checksum and sequence were checked. */
export interface SegmentRecord {
  torn: false;
  /** Sequence number, from 1, one more than the record before it. */
  seq: number;
  /** Timestamp in milliseconds since the Unix epoch. */
  ts: number;
  /** The opaque record header (a view into the reader's buffer; do not mutate). */
  header: Uint8Array;
  /** The payload (a view into the reader's buffer; do not mutate). */
  payload: Uint8Array;
  /** Byte offset of the record's first byte in the segment file. */
  offset: number;
  /** Total bytes of the record, length field included. */
  size: number;
}

/**
 * The reader's report that the bytes stop being a valid segment: the tail is incomplete (after
 * `end()`), or a record fails its checksum, length or sequence check. Everything before
 * `validBytes` is good; everything from it on must be discarded (truncated).
 */
export interface TornTail {
  torn: true;
  /** Bytes from the start of the file that hold a valid header and valid records. */
  validBytes: number;
  /** Why the tail was rejected, for logs. */
  reason: string;
}

function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v % TWO_32, at);
  b.writeUInt32LE(Math.floor(v / TWO_32), at + 4);
}

function readU64(b: Buffer, at: number): number | undefined {
  const hi = b.readUInt32LE(at + 4);
  if (hi > 0x1fffff) return undefined;
  return hi * TWO_32 + b.readUInt32LE(at);
}

function checkSeq(seq: number, what: string): void {
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${what} must be a safe integer >= 1, got ${seq}`);
  }
}

/**
 * Encodes a segment file header (`SEGMENT_HEADER_BYTES` bytes).
 * @throws MyelinError ERR_INVALID_ARGUMENT if `baseSeq` is not a safe integer >= 1.
 */
export function encodeSegmentHeader(h: { baseSeq: number; createdAtMs: number }): Buffer {
  checkSeq(h.baseSeq, "baseSeq");
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  MAGIC_BYTES.copy(b, 0);
  b.writeUInt16LE(SEGMENT_VERSION, 8);
  b.writeUInt16LE(SEGMENT_HEADER_BYTES, 10);
  b.writeUInt32LE(0, 12); // flags
  writeU64(b, 16, h.baseSeq);
  b.writeDoubleLE(h.createdAtMs, 24);
  b.writeUInt32LE(0, 32); // reserved
  b.writeUInt32LE(crc32c(b, 0, 36), 36);
  return b;
}

/**
 * Decodes a segment file header from the first `SEGMENT_HEADER_BYTES` bytes of `b`.
 * Returns undefined if its checksum fails (a torn or damaged header).
 * @throws DecodeError ERR_DECODE if the bytes are not a segment (wrong magic) or have an unsupported version.
 */
export function decodeSegmentHeader(b: Uint8Array): SegmentHeader | undefined {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < SEGMENT_HEADER_BYTES) return undefined;
  if (!buf.subarray(0, 8).equals(MAGIC_BYTES)) {
    throw new DecodeError(
      "ERR_DECODE",
      `not a Myelin segment: the file does not start with "${SEGMENT_MAGIC}"`,
    );
  }
  const version = buf.readUInt16LE(8);
  if (version !== SEGMENT_VERSION || buf.readUInt16LE(10) !== SEGMENT_HEADER_BYTES) {
    throw new DecodeError(
      "ERR_DECODE",
      `segment format version ${version} is not supported (this Myelin reads version ${SEGMENT_VERSION})`,
    );
  }
  if (crc32c(buf, 0, 36) !== buf.readUInt32LE(36)) return undefined;
  const baseSeq = readU64(buf, 16);
  if (baseSeq === undefined || baseSeq < 1) return undefined;
  return { version, baseSeq, createdAtMs: buf.readDoubleLE(24) };
}

/** Total bytes of a record with `headerBytes` of header and `payloadBytes` of payload. */
export function recordSize(headerBytes: number, payloadBytes: number): number {
  return RECORD_OVERHEAD_BYTES + headerBytes + payloadBytes;
}

/**
 * Checks that a record of these sizes can be encoded.
 * @throws MyelinError ERR_PAYLOAD_TOO_LARGE if the header is over 65535 bytes or the record body over 64 MiB.
 */
export function checkRecordSizes(headerBytes: number, payloadBytes: number): void {
  if (headerBytes > MAX_RECORD_HEADER_BYTES) {
    throw new MyelinError(
      "ERR_PAYLOAD_TOO_LARGE",
      `record header is ${headerBytes} bytes; the segment format allows at most ${MAX_RECORD_HEADER_BYTES}`,
    );
  }
  if (RECORD_BODY_FIXED_BYTES + headerBytes + payloadBytes > MAX_RECORD_BODY_BYTES) {
    throw new MyelinError(
      "ERR_PAYLOAD_TOO_LARGE",
      `record of ${headerBytes + payloadBytes} bytes (header + payload) is over the store's limit of ` +
        `${MAX_RECORD_BODY_BYTES - RECORD_BODY_FIXED_BYTES} bytes; split the message`,
    );
  }
}

/**
 * Encodes one record into `out` at byte offset `at` and returns the offset after it. `out` must
 * have `recordSize(header.length, payload.length)` bytes free at `at`.
 * @param seq sequence number (safe integer >= 1)
 * @param ts timestamp in milliseconds since the Unix epoch
 * @throws MyelinError ERR_PAYLOAD_TOO_LARGE or ERR_INVALID_ARGUMENT for sizes or a seq out of range.
 */
export function encodeRecordInto(
  out: Buffer,
  at: number,
  seq: number,
  ts: number,
  header: Uint8Array,
  payload: Uint8Array,
): number {
  checkSeq(seq, "seq");
  checkRecordSizes(header.length, payload.length);
  const body = RECORD_BODY_FIXED_BYTES + header.length + payload.length;
  out.writeUInt32LE(body, at);
  writeU64(out, at + 8, seq);
  out.writeDoubleLE(ts, at + 16);
  out.writeUInt16LE(header.length, at + 24);
  out.set(header, at + RECORD_OVERHEAD_BYTES);
  out.set(payload, at + RECORD_OVERHEAD_BYTES + header.length);
  const end = at + 8 + body;
  out.writeUInt32LE(crc32c(out, at + 8, end), at + 4);
  return end;
}

/** Encodes one record as a new buffer; see `encodeRecordInto`. */
export function encodeRecord(seq: number, ts: number, header: Uint8Array, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(recordSize(header.length, payload.length));
  encodeRecordInto(out, 0, seq, ts, header, payload);
  return out;
}

/** Options of a `SegmentReader`. */
export interface SegmentReaderOptions {
  /**
   * Start in the middle of a segment, at a record boundary: the bytes pushed start at file
   * offset `offset`, and the first record there has sequence number `seq`. Without it, the
   * bytes start with the file header.
   */
  resume?: { offset: number; seq: number };
}

/**
 * Parses a segment from bytes pushed in any chunking. `next()` returns the next complete,
 * checked record; `undefined` when it needs more bytes; or a `TornTail` once the bytes stop
 * being valid (incomplete after `end()`, checksum, length or sequence failure). After a torn
 * report, every later `next()` returns the same report: nothing after a bad record is trusted.
 *
 * A record is returned only after its CRC-32C matched and its sequence number was exactly one
 * more than the previous one (the first equals the header's base sequence).
 *
 * Records are views into the pushed chunks (no copy): do not reuse a chunk after pushing it.
 */
export class SegmentReader {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  /** File offset of `#buf[0]`. */
  #base = 0;
  #ended = false;
  #torn: TornTail | undefined;
  #header: SegmentHeader | undefined;
  #nextSeq: number | undefined;
  #lastTs: number | undefined;

  constructor(opts: SegmentReaderOptions = {}) {
    if (opts.resume) {
      checkSeq(opts.resume.seq, "resume.seq");
      this.#base = opts.resume.offset;
      this.#nextSeq = opts.resume.seq;
    }
  }

  /** The file header, once parsed (undefined when resuming mid-segment). */
  get header(): SegmentHeader | undefined {
    return this.#header;
  }

  /** File offset just after the last good record (or the header): the bytes known valid, in bytes. */
  get validBytes(): number {
    return this.#base + this.#pos;
  }

  /** Sequence number the next record must have, once known. */
  get nextSeq(): number | undefined {
    return this.#nextSeq;
  }

  /** Timestamp of the last record returned, in ms since the Unix epoch. */
  get lastTs(): number | undefined {
    return this.#lastTs;
  }

  /** Feeds more bytes of the segment. */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new MyelinError("ERR_INVALID_ARGUMENT", "SegmentReader.push() after end()");
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (c.length === 0) return;
    if (this.#pos >= this.#buf.length) {
      this.#base += this.#buf.length;
      this.#buf = c;
    } else {
      this.#base += this.#pos;
      this.#buf = Buffer.concat([this.#buf.subarray(this.#pos), c]);
    }
    this.#pos = 0;
  }

  /** Says no more bytes will come: an incomplete tail is then reported as torn. */
  end(): void {
    this.#ended = true;
  }

  #tear(reason: string): TornTail {
    this.#torn = { torn: true, validBytes: this.validBytes, reason };
    return this.#torn;
  }

  /**
   * The next record, `undefined` if more bytes are needed, or the torn-tail report.
   * @throws DecodeError ERR_DECODE if the bytes are not a Myelin segment or of an unsupported version.
   */
  next(): SegmentRecord | TornTail | undefined {
    if (this.#torn) return this.#torn;
    const b = this.#buf;
    const avail = b.length - this.#pos;
    if (this.#nextSeq === undefined) {
      if (avail < SEGMENT_HEADER_BYTES) {
        // A wrong magic is reported as soon as we can see it.
        const n = Math.min(avail, 8);
        if (!b.subarray(this.#pos, this.#pos + n).equals(MAGIC_BYTES.subarray(0, n))) {
          throw new DecodeError(
            "ERR_DECODE",
            `not a Myelin segment: the file does not start with "${SEGMENT_MAGIC}"`,
          );
        }
        return this.#ended ? this.#tear("incomplete segment header") : undefined;
      }
      const h = decodeSegmentHeader(b.subarray(this.#pos, this.#pos + SEGMENT_HEADER_BYTES));
      if (!h) return this.#tear("segment header checksum mismatch");
      this.#header = h;
      this.#nextSeq = h.baseSeq;
      this.#pos += SEGMENT_HEADER_BYTES;
      return this.next();
    }
    if (avail < 8) return this.#ended ? this.#tear("incomplete record") : undefined;
    const at = this.#pos;
    const bodyLen = b.readUInt32LE(at);
    if (bodyLen < RECORD_BODY_FIXED_BYTES || bodyLen > MAX_RECORD_BODY_BYTES) {
      return this.#tear(`bad record length ${bodyLen}`);
    }
    if (avail < 8 + bodyLen) return this.#ended ? this.#tear("incomplete record") : undefined;
    const end = at + 8 + bodyLen;
    if (crc32c(b, at + 8, end) !== b.readUInt32LE(at + 4)) return this.#tear("record checksum mismatch");
    const seq = readU64(b, at + 8);
    if (seq !== this.#nextSeq) return this.#tear(`record has seq ${seq}, expected ${this.#nextSeq}`);
    const ts = b.readDoubleLE(at + 16);
    if (!Number.isFinite(ts)) return this.#tear("record timestamp is not finite");
    const hlen = b.readUInt16LE(at + 24);
    if (RECORD_BODY_FIXED_BYTES + hlen > bodyLen) return this.#tear("record header overruns the record");
    const rec: SegmentRecord = {
      torn: false,
      seq,
      ts,
      header: b.subarray(at + RECORD_OVERHEAD_BYTES, at + RECORD_OVERHEAD_BYTES + hlen),
      payload: b.subarray(at + RECORD_OVERHEAD_BYTES + hlen, end),
      offset: this.#base + at,
      size: 8 + bodyLen,
    };
    this.#pos = end;
    this.#nextSeq = seq + 1;
    this.#lastTs = ts;
    return rec;
  }
}
