/**
 * The data-plane wire format, sans-IO: functions that turn frames (byte arrays) into typed
 * values and back, without touching a socket. Documented in docs/wire-format.md and pinned by
 * golden files under conformance/wire/.
 *
 * Every ZeroMQ message on a data link starts with a 3-byte preamble in its first frame:
 * `0xA7` (magic), the protocol version, and the frame kind. Control-like kinds carry a msgpack
 * body; the hot kinds (DATA, CREDIT) are fixed binary layouts, little-endian.
 */
import { Packr } from "msgpackr/pack";
import { DecodeError } from "../errors.js";

/** First byte of every data-plane frame. */
export const FRAME_MAGIC = 0xa7;
/** Version of the data-plane protocol this code speaks. */
export const FRAME_VERSION = 1;
/** Bytes of the preamble: magic, version, kind. */
export const PREAMBLE_BYTES = 3;
/** Bytes of a DATA record header, after its u32 length field. */
export const RECORD_HEADER_BYTES = 24;

/** Frame kinds on a data link. */
export const FrameKind = {
  /** subscriber → publisher: who I am ({ node, process }). */
  Hello: 1,
  /** subscriber → publisher: start sending a topic to me. */
  Sub: 2,
  /** subscriber → publisher: stop sending subscription `sid`. */
  Unsub: 3,
  /** subscriber → publisher: I consumed messages; you may send `msgs` more / `bytes` more. */
  Credit: 4,
  /** publisher → subscriber: a batch of small messages. */
  Data: 5,
  /** publisher → subscriber: one large message whose binary fields travel as separate frames. */
  Blob: 6,
  /** client → server: a service request. */
  Request: 7,
  /** server → client: a service reply. */
  Reply: 8,
  /** either way: I am alive (liveliness, dead-peer detection). */
  Ping: 9,
  /** publisher → subscriber: your request was refused (type mismatch, unknown topic). */
  Error: 10,
  /** either way: shared memory for large frames on one host (sub-kinds in `shm/shm-frame.ts`). */
  Shm: 11,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Body of a Sub frame. */
export interface SubBody {
  /** Subscription id chosen by the subscriber, unique on its link. */
  sid: number;
  topic: string;
  /** Message type name the subscriber expects. */
  type: string;
  reliable: boolean;
  /** Deliver the last `history` messages first (transient-local); 0 for volatile. */
  history: number;
  /** Initial credit in messages. */
  creditMsgs: number;
  /** Initial credit in payload bytes. */
  creditBytes: number;
  /**
   * Queue group: the publisher sends each message to one member of the group, and sends what a
   * member had not consumed to another member when it goes away. Absent for a plain subscription.
   */
  group?: string;
}

/** Body of a Hello frame. */
export interface HelloBody {
  node: string;
  process: string;
  /** The subscriber can map shared memory: the publisher may offer its pools (absent: no). */
  shm?: boolean;
}

/** Header of a Request frame (the request body follows as codec frames). */
export interface RequestHeader {
  id: number;
  service: string;
  type: string;
  /** Milliseconds the client waits; the server may drop work past it. */
  timeoutMs: number;
}

/** Header of a Reply frame. */
export interface ReplyHeader {
  id: number;
  ok: boolean;
  error?: { code: string; message: string };
}

/** Body of an Error frame. */
export interface ErrorBody {
  sid?: number;
  code: string;
  message: string;
}

/** Header of one message in a Data frame, or of a Blob frame. */
export interface RecordHeader {
  /** Subscription id on the receiving side. */
  sid: number;
  /** Index of the publisher within its node. */
  pub: number;
  /** Per-publisher sequence number, from 1. */
  seq: number;
  /** Source time, seconds part. */
  sec: number;
  /** Source time, nanoseconds part. */
  nsec: number;
}

/** A parsed frame, as a discriminated union on `kind`. */
export type ParsedFrame =
  | { kind: typeof FrameKind.Hello; body: HelloBody }
  | { kind: typeof FrameKind.Sub; body: SubBody }
  | { kind: typeof FrameKind.Unsub; sid: number }
  | { kind: typeof FrameKind.Credit; sid: number; msgs: number; bytes: number }
  | { kind: typeof FrameKind.Data; frame: Buffer }
  | { kind: typeof FrameKind.Blob; header: RecordHeader; parts: Buffer[] }
  | { kind: typeof FrameKind.Request; header: RequestHeader; parts: Buffer[] }
  | { kind: typeof FrameKind.Reply; header: ReplyHeader; parts: Buffer[] }
  | { kind: typeof FrameKind.Ping; token: number | undefined }
  | { kind: typeof FrameKind.Error; body: ErrorBody }
  | { kind: typeof FrameKind.Shm; first: Buffer; rest: Buffer[] };

// structuredClone: false refuses msgpackr's reference extensions (0x69/0x70), which are not part of the
// wire format and would let a peer build cyclic values.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, structuredClone: false });

function preamble(kind: FrameKind, bodyBytes: number): Buffer {
  const b = Buffer.allocUnsafe(PREAMBLE_BYTES + bodyBytes);
  b[0] = FRAME_MAGIC;
  b[1] = FRAME_VERSION;
  b[2] = kind;
  return b;
}

function packed(kind: FrameKind, body: unknown): Buffer {
  const payload = packr.pack(body);
  const b = preamble(kind, payload.length);
  payload.copy(b, PREAMBLE_BYTES);
  return b;
}

/** Encodes a Hello frame. */
export function encodeHello(body: HelloBody): Buffer {
  return packed(FrameKind.Hello, body);
}
/** Encodes a Sub frame. */
export function encodeSub(body: SubBody): Buffer {
  return packed(FrameKind.Sub, body);
}
/** Encodes an Unsub frame. */
export function encodeUnsub(sid: number): Buffer {
  const b = preamble(FrameKind.Unsub, 4);
  b.writeUInt32LE(sid, 3);
  return b;
}
/** Encodes a Credit frame granting `msgs` messages and `bytes` payload bytes more. */
export function encodeCredit(sid: number, msgs: number, bytes: number): Buffer {
  const b = preamble(FrameKind.Credit, 12);
  b.writeUInt32LE(sid, 3);
  b.writeUInt32LE(msgs, 7);
  b.writeUInt32LE(Math.min(bytes, 0xffffffff), 11);
  return b;
}
/**
 * Encodes a Ping frame. With a `token`, the peer echoes it back: since frames on a link keep their
 * order, the echo proves everything sent before the ping has arrived (a flush barrier).
 */
export function encodePing(token?: number): Buffer {
  if (token === undefined) return preamble(FrameKind.Ping, 0);
  const b = preamble(FrameKind.Ping, 4);
  b.writeUInt32LE(token >>> 0, PREAMBLE_BYTES);
  return b;
}
/** Encodes an Error frame. */
export function encodeError(body: ErrorBody): Buffer {
  return packed(FrameKind.Error, body);
}
/** Encodes the first frame of a Request; the request's codec frames follow it. */
export function encodeRequestHeader(h: RequestHeader): Buffer {
  return packed(FrameKind.Request, h);
}
/** Encodes the first frame of a Reply; the reply's codec frames follow it. */
export function encodeReplyHeader(h: ReplyHeader): Buffer {
  return packed(FrameKind.Reply, h);
}
/** Encodes the first frame of a Blob; the message's codec frames follow it. */
export function encodeBlobHeader(h: RecordHeader): Buffer {
  const b = preamble(FrameKind.Blob, RECORD_HEADER_BYTES);
  writeRecordHeader(b, PREAMBLE_BYTES, h.sid, h.pub, h.seq, h.sec, h.nsec);
  return b;
}

function writeRecordHeader(
  b: Buffer,
  at: number,
  sid: number,
  pub: number,
  seq: number,
  sec: number,
  nsec: number,
): void {
  b.writeUInt32LE(sid, at);
  b.writeUInt16LE(pub, at + 4);
  b.writeUInt16LE(0, at + 6);
  b.writeDoubleLE(seq, at + 8);
  b.writeUInt32LE(sec >>> 0, at + 16);
  b.writeUInt32LE(nsec, at + 20);
}

function readRecordHeader(b: Buffer, at: number): RecordHeader {
  return {
    sid: b.readUInt32LE(at),
    pub: b.readUInt16LE(at + 4),
    seq: b.readDoubleLE(at + 8),
    sec: b.readUInt32LE(at + 16),
    nsec: b.readUInt32LE(at + 20),
  };
}

/**
 * Writes one message's payload straight into a buffer at an offset (see
 * {@link DataFrameBuilder.appendWith}): returns the buffer holding it (the one given, or a larger
 * copy with the bytes before `at` copied over), with the payload ending at `end`; or null to
 * decline.
 */
export interface RecordWriter {
  write(buf: Buffer, at: number): Buffer | null;
  /** Where the last written payload ends in the returned buffer. */
  readonly end: number;
}

/**
 * Builds a Data frame: many small messages coalesced into one ZeroMQ frame. Layout after the
 * preamble: u32 record count, then per record u32 length (header + payload), the 24-byte
 * record header, the payload.
 */
export class DataFrameBuilder {
  #buf: Buffer;
  #view: DataView;
  #at = PREAMBLE_BYTES + 4;
  #count = 0;

  /** @param capacity initial buffer size in bytes; grows when a record does not fit. */
  constructor(capacity: number) {
    this.#buf = Buffer.allocUnsafe(Math.max(capacity, 64));
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.length);
  }

  /** Messages in the frame so far. */
  get count(): number {
    return this.#count;
  }
  /** Bytes in the frame so far. */
  get size(): number {
    return this.#at;
  }

  /** Appends one message: the first `n` bytes of `payload` (all of it by default). */
  append(
    sid: number,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    payload: Uint8Array,
    n = payload.length,
  ): void {
    const need = 4 + RECORD_HEADER_BYTES + n;
    if (this.#at + need > this.#buf.length) this.#grow(this.#at + need);
    // DataView stores: the same little-endian layout as writeRecordHeader, without Buffer's
    // per-call argument checks (the bounds were checked above).
    const v = this.#view;
    const at = this.#at;
    v.setUint32(at, RECORD_HEADER_BYTES + n, true);
    v.setUint32(at + 4, sid, true);
    v.setUint16(at + 8, pub, true);
    v.setUint16(at + 10, 0, true);
    v.setFloat64(at + 12, seq, true);
    v.setUint32(at + 20, sec >>> 0, true);
    v.setUint32(at + 24, nsec, true);
    const p = at + 4 + RECORD_HEADER_BYTES;
    if (n <= 8) {
      // A very short payload: a loop beats the native copy's call overhead (not so from 16 bytes on).
      const b = this.#buf;
      for (let k = 0; k < n; k++) b[p + k] = payload[k]!;
    } else {
      this.#buf.set(n === payload.length ? payload : payload.subarray(0, n), p);
    }
    this.#at += need;
    this.#count++;
  }

  /**
   * Appends one message that `w` writes straight into the frame (no intermediate copy). Returns
   * the message's size in bytes; the record is kept only when that is at most `maxBytes` (else
   * the frame is as before, and the caller reports the message as too large). Returns -1, the
   * frame as before, when `w` declines (the message travels another way).
   */
  appendWith(
    sid: number,
    pub: number,
    seq: number,
    sec: number,
    nsec: number,
    w: RecordWriter,
    maxBytes: number,
  ): number {
    const at = this.#at;
    const p = at + 4 + RECORD_HEADER_BYTES;
    if (p > this.#buf.length) this.#grow(p);
    const buf = w.write(this.#buf, p);
    if (buf === null) return -1;
    if (buf !== this.#buf) {
      this.#buf = buf;
      this.#view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    const n = w.end - p;
    if (n > maxBytes) return n;
    const v = this.#view;
    v.setUint32(at, RECORD_HEADER_BYTES + n, true);
    v.setUint32(at + 4, sid, true);
    v.setUint16(at + 8, pub, true);
    v.setUint16(at + 10, 0, true);
    v.setFloat64(at + 12, seq, true);
    v.setUint32(at + 20, sec >>> 0, true);
    v.setUint32(at + 24, nsec, true);
    this.#at = w.end;
    this.#count++;
    return n;
  }

  #grow(need: number): void {
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, need));
    this.#buf.copy(grown, 0, 0, this.#at);
    this.#buf = grown;
    this.#view = new DataView(grown.buffer, grown.byteOffset, grown.length);
  }

  /** Finishes the frame and returns its bytes; the builder must not be used afterwards. */
  finish(): Buffer {
    const b = this.#buf;
    b[0] = FRAME_MAGIC;
    b[1] = FRAME_VERSION;
    b[2] = FrameKind.Data;
    b.writeUInt32LE(this.#count, PREAMBLE_BYTES);
    return b.subarray(0, this.#at);
  }
}

/** Called once per message of a Data frame; `payload` is a view into the frame (no copy). */
export type RecordVisitor = (
  sid: number,
  pub: number,
  seq: number,
  sec: number,
  nsec: number,
  payload: Buffer,
) => void;

/**
 * Called once per message of a Data frame with where its payload lies in the frame,
 * `frame[start, end)`: no view is made per message.
 */
export type RecordRangeVisitor = (
  sid: number,
  pub: number,
  seq: number,
  sec: number,
  nsec: number,
  frame: Buffer,
  start: number,
  end: number,
) => void;

/**
 * Walks the messages of a Data frame. Validates every length before reading, so a truncated or
 * corrupt frame throws DecodeError after visiting only the records that were whole.
 * @returns the number of records visited
 */
export function forEachRecord(frame: Buffer, visit: RecordVisitor): number {
  return forEachRecordIn(frame, (sid, pub, seq, sec, nsec, f, start, end) =>
    visit(sid, pub, seq, sec, nsec, f.subarray(start, end)),
  );
}

/**
 * {@link forEachRecord} handing each payload as a range of the frame. The same checks: a
 * truncated or corrupt frame throws DecodeError after visiting only the records that were whole.
 * @returns the number of records visited
 */
export function forEachRecordIn(frame: Buffer, visit: RecordRangeVisitor): number {
  const size = frame.length;
  if (size < PREAMBLE_BYTES + 4) {
    throw new DecodeError("ERR_DECODE", `data frame of ${size} bytes is shorter than its header`);
  }
  // One DataView per frame: its reads skip Buffer's per-call argument checks (bounds are checked here).
  const v = new DataView(frame.buffer, frame.byteOffset, size);
  const count = v.getUint32(PREAMBLE_BYTES, true);
  let at = PREAMBLE_BYTES + 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > size) {
      throw new DecodeError("ERR_DECODE", `data frame truncated: record ${i} of ${count} has no length`);
    }
    const len = v.getUint32(at, true);
    if (len < RECORD_HEADER_BYTES || at + 4 + len > size) {
      throw new DecodeError(
        "ERR_DECODE",
        `data frame corrupt: record ${i} of ${count} claims ${len} bytes, ${size - at - 4} left`,
      );
    }
    const h = at + 4;
    visit(
      v.getUint32(h, true),
      v.getUint16(h + 4, true),
      v.getFloat64(h + 8, true),
      v.getUint32(h + 16, true),
      v.getUint32(h + 20, true),
      frame,
      h + RECORD_HEADER_BYTES,
      h + len,
    );
    at = h + len;
  }
  if (at !== size) {
    throw new DecodeError("ERR_DECODE", `data frame has ${size - at} trailing bytes after ${count} records`);
  }
  return count;
}

function unpackBody(frame: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = packr.unpack(frame.subarray(PREAMBLE_BYTES));
  } catch (e) {
    throw new DecodeError("ERR_DECODE", `${what} frame body is not valid msgpack: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new DecodeError("ERR_DECODE", `${what} frame body must be a map, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function field<T extends "string" | "number" | "boolean">(
  o: Record<string, unknown>,
  name: string,
  type: T,
  what: string,
): T extends "string" ? string : T extends "number" ? number : boolean {
  const v = o[name];
  if (typeof v !== type) {
    throw new DecodeError(
      "ERR_DECODE",
      `${what} frame: field '${name}' must be a ${type}, got ${describe(v)}`,
    );
  }
  return v as never;
}

function u32(o: Record<string, unknown>, name: string, what: string): number {
  const v = field(o, name, "number", what);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new DecodeError("ERR_DECODE", `${what} frame: field '${name}' must be a u32, got ${v}`);
  }
  return v;
}

/** A number of milliseconds > 0 (Infinity allowed: a caller may wait for ever); NaN, 0 and negatives are refused. */
function positive(o: Record<string, unknown>, name: string, what: string): number {
  const v = field(o, name, "number", what);
  if (!(v > 0)) {
    throw new DecodeError("ERR_DECODE", `${what} frame: field '${name}' must be a number > 0, got ${v}`);
  }
  return v;
}

/**
 * Parses one ZeroMQ message (all its frames) received on a data link. Throws DecodeError, with
 * a message naming the kind and the field, for anything that is not a well-formed frame.
 */
export function parseFrame(frames: readonly Buffer[]): ParsedFrame {
  const first = frames[0];
  if (first === undefined || first.length < PREAMBLE_BYTES) {
    throw new DecodeError("ERR_DECODE", `frame of ${first?.length ?? 0} bytes is shorter than the preamble`);
  }
  if (first[0] !== FRAME_MAGIC) {
    throw new DecodeError(
      "ERR_DECODE",
      `not a Myelin data frame: first byte 0x${first[0]!.toString(16)}, expected 0x${FRAME_MAGIC.toString(16)}`,
    );
  }
  if (first[1] !== FRAME_VERSION) {
    throw new DecodeError(
      "ERR_DECODE",
      `data frame version ${first[1]} is not supported (this node speaks version ${FRAME_VERSION}); upgrade both sides`,
    );
  }
  const kind = first[2];
  const rest = frames.slice(1);
  switch (kind) {
    case FrameKind.Hello: {
      const o = unpackBody(first, "hello");
      const body: HelloBody = {
        node: field(o, "node", "string", "hello"),
        process: field(o, "process", "string", "hello"),
      };
      if (o["shm"] !== undefined) body.shm = field(o, "shm", "boolean", "hello");
      return { kind, body };
    }
    case FrameKind.Sub: {
      const w = "sub";
      const o = unpackBody(first, w);
      const body: SubBody = {
        sid: u32(o, "sid", w),
        topic: field(o, "topic", "string", w),
        type: field(o, "type", "string", w),
        reliable: field(o, "reliable", "boolean", w),
        history: u32(o, "history", w),
        creditMsgs: u32(o, "creditMsgs", w),
        creditBytes: u32(o, "creditBytes", w),
      };
      if (o["group"] !== undefined) body.group = field(o, "group", "string", w);
      return { kind, body };
    }
    case FrameKind.Unsub:
      fixed(first, 4, "unsub");
      return { kind, sid: first.readUInt32LE(3) };
    case FrameKind.Credit:
      fixed(first, 12, "credit");
      return { kind, sid: first.readUInt32LE(3), msgs: first.readUInt32LE(7), bytes: first.readUInt32LE(11) };
    case FrameKind.Data:
      return { kind, frame: first };
    case FrameKind.Blob:
      fixed(first, RECORD_HEADER_BYTES, "blob");
      if (rest.length === 0) throw new DecodeError("ERR_DECODE", "blob frame has no body frames");
      return { kind, header: readRecordHeader(first, PREAMBLE_BYTES), parts: rest };
    case FrameKind.Request: {
      const w = "request";
      const o = unpackBody(first, w);
      if (rest.length === 0) throw new DecodeError("ERR_DECODE", "request frame has no body frames");
      return {
        kind,
        header: {
          id: u32(o, "id", w),
          service: field(o, "service", "string", w),
          type: field(o, "type", "string", w),
          timeoutMs: positive(o, "timeoutMs", w),
        },
        parts: rest,
      };
    }
    case FrameKind.Reply: {
      const w = "reply";
      const o = unpackBody(first, w);
      const header: ReplyHeader = { id: u32(o, "id", w), ok: field(o, "ok", "boolean", w) };
      const err = o["error"];
      if (err !== undefined) {
        if (typeof err !== "object" || err === null) {
          throw new DecodeError("ERR_DECODE", "reply frame: field 'error' must be a map");
        }
        const e = err as Record<string, unknown>;
        header.error = { code: field(e, "code", "string", w), message: field(e, "message", "string", w) };
      }
      return { kind, header, parts: rest };
    }
    case FrameKind.Ping:
      if (first.length === PREAMBLE_BYTES) return { kind, token: undefined };
      fixed(first, 4, "ping");
      return { kind, token: first.readUInt32LE(PREAMBLE_BYTES) };
    case FrameKind.Error: {
      const w = "error";
      const o = unpackBody(first, w);
      const body: ErrorBody = {
        code: field(o, "code", "string", w),
        message: field(o, "message", "string", w),
      };
      if (o["sid"] !== undefined) body.sid = u32(o, "sid", w);
      return { kind, body };
    }
    case FrameKind.Shm:
      return { kind, first, rest };
    default:
      throw new DecodeError("ERR_DECODE", `unknown data frame kind ${kind}`);
  }
}

function fixed(frame: Buffer, bodyBytes: number, what: string): void {
  if (frame.length !== PREAMBLE_BYTES + bodyBytes) {
    throw new DecodeError(
      "ERR_DECODE",
      `${what} frame must be ${PREAMBLE_BYTES + bodyBytes} bytes, got ${frame.length}`,
    );
  }
}
