/**
 * A msgpack encoder compiled from a message type: one closure per field, chosen once, that writes
 * straight into a reusable buffer. It produces plain msgpack that any decoder (msgpackr here)
 * reads back to the same value, without the generic encoder's type dispatch per value. Used on the
 * publish hot path; `msgpackCodec` stays the reference encoder (and the golden files pin it).
 *
 * The encoder trusts the value to match its type (the publisher validates first): a field of the
 * wrong kind may encode as something else, never as memory outside the buffer.
 */
import type { AnyField, Field, MessageType } from "../msgs/index.js";

/** The reusable output buffer. */
class Out {
  buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  pos = 0;
  /** A bytes field at least this large makes the encoder give up (it travels out of band). */
  blobThreshold = Infinity;
  tooLarge = false;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}

type Writer = (o: Out, v: any) => void;

function writeInt(o: Out, v: number): void {
  o.ensure(9);
  const b = o.buf;
  let p = o.pos;
  if (v >= 0) {
    if (v < 0x80) b[p++] = v;
    else if (v < 0x100) {
      b[p++] = 0xcc;
      b[p++] = v;
    } else if (v < 0x10000) {
      b[p++] = 0xcd;
      b.writeUInt16BE(v, p);
      p += 2;
    } else if (v < 0x100000000) {
      b[p++] = 0xce;
      b.writeUInt32BE(v, p);
      p += 4;
    } else {
      b[p++] = 0xcb;
      b.writeDoubleBE(v, p);
      p += 8;
    }
  } else if (v >= -0x20) b[p++] = 0x100 + v;
  else if (v >= -0x80) {
    b[p++] = 0xd0;
    b.writeInt8(v, p);
    p += 1;
  } else if (v >= -0x8000) {
    b[p++] = 0xd1;
    b.writeInt16BE(v, p);
    p += 2;
  } else if (v >= -0x80000000) {
    b[p++] = 0xd2;
    b.writeInt32BE(v, p);
    p += 4;
  } else {
    b[p++] = 0xcb;
    b.writeDoubleBE(v, p);
    p += 8;
  }
  o.pos = p;
}

function writeFloat(o: Out, v: number): void {
  o.ensure(9);
  o.buf[o.pos] = 0xcb;
  o.buf.writeDoubleBE(v, o.pos + 1);
  o.pos += 9;
}

function writeBigInt(o: Out, v: bigint): void {
  o.ensure(9);
  if (v > 0x7fffffffffffffffn) {
    o.buf[o.pos] = 0xcf;
    o.buf.writeBigUInt64BE(v, o.pos + 1);
  } else {
    o.buf[o.pos] = 0xd3;
    o.buf.writeBigInt64BE(v, o.pos + 1);
  }
  o.pos += 9;
}

function writeString(o: Out, s: string): void {
  const max = s.length * 3;
  const head = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
  o.ensure(head + max);
  const b = o.buf;
  const start = o.pos;
  const n = b.write(s, start + head, max, "utf8");
  if (head === 1) b[start] = 0xa0 | n;
  else if (head === 2) {
    b[start] = 0xd9;
    b[start + 1] = n;
  } else if (head === 3) {
    b[start] = 0xda;
    b.writeUInt16BE(n, start + 1);
  } else {
    b[start] = 0xdb;
    b.writeUInt32BE(n, start + 1);
  }
  o.pos = start + head + n;
}

function writeBytes(o: Out, v: Uint8Array): void {
  const n = v.length;
  if (n >= o.blobThreshold) {
    o.tooLarge = true;
    return;
  }
  o.ensure(n + 5);
  const b = o.buf;
  if (n < 0x100) {
    b[o.pos++] = 0xc4;
    b[o.pos++] = n;
  } else if (n < 0x10000) {
    b[o.pos] = 0xc5;
    b.writeUInt16BE(n, o.pos + 1);
    o.pos += 3;
  } else {
    b[o.pos] = 0xc6;
    b.writeUInt32BE(n, o.pos + 1);
    o.pos += 5;
  }
  if (n <= 8) {
    // A very short field: a loop beats the native copy's call overhead (not so from 16 bytes on).
    const p = o.pos;
    for (let k = 0; k < n; k++) b[p + k] = v[k]!;
  } else {
    b.set(v, o.pos);
  }
  o.pos += n;
}

function writeHeader(o: Out, n: number, fix: number, x16: number, x32: number): void {
  o.ensure(5);
  if (n < 16) o.buf[o.pos++] = fix | n;
  else if (n < 0x10000) {
    o.buf[o.pos] = x16;
    o.buf.writeUInt16BE(n, o.pos + 1);
    o.pos += 3;
  } else {
    o.buf[o.pos] = x32;
    o.buf.writeUInt32BE(n, o.pos + 1);
    o.pos += 5;
  }
}

/**
 * @internal The bytes the compiled writer writes for a map key (a str header sized for the worst
 * case of 3 bytes per character, then UTF-8): the compiled reader's fast path expects exactly these.
 */
export function keyBytes(name: string): Buffer {
  const o = new Out();
  writeString(o, name);
  return Buffer.from(o.buf.subarray(0, o.pos));
}

const SEC = keyBytes("sec");
const NANOSEC = keyBytes("nanosec");

function writeRaw(o: Out, bytes: Buffer): void {
  const n = bytes.length;
  o.ensure(n);
  if (n > 32) {
    bytes.copy(o.buf, o.pos);
  } else {
    // A short key: a loop beats the native copy's call overhead.
    const b = o.buf;
    const p = o.pos;
    for (let k = 0; k < n; k++) b[p + k] = bytes[k]!;
  }
  o.pos += n;
}

const writeTime: Writer = (o, v: { sec: number; nanosec: number }) => {
  o.ensure(1);
  o.buf[o.pos++] = 0x82;
  writeRaw(o, SEC);
  writeInt(o, v.sec);
  writeRaw(o, NANOSEC);
  writeInt(o, v.nanosec);
};

const cache = new WeakMap<MessageType<unknown>, Writer>();

function fieldWriter(f: Field<unknown>): Writer {
  const a = f as AnyField;
  switch (a.kind) {
    case "bool":
      return (o, v: boolean) => {
        o.ensure(1);
        o.buf[o.pos++] = v ? 0xc3 : 0xc2;
      };
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
    case "enum":
      return writeInt;
    case "f32":
    case "f64":
      return writeFloat;
    case "u64":
    case "i64":
      return writeBigInt;
    case "string":
      return writeString;
    case "bytes":
      return writeBytes;
    case "time":
    case "duration":
      return writeTime;
    case "msg":
      return messageWriter(a.type);
    case "optional":
      return fieldWriter(a.of);
    case "array": {
      const el = fieldWriter(a.of);
      return (o, v: unknown[]) => {
        writeHeader(o, v.length, 0x90, 0xdc, 0xdd);
        for (let i = 0; i < v.length; i++) el(o, v[i]);
      };
    }
  }
}

let codegen = true;

/**
 * @internal Turns the generated (`new Function`) message writers on or off for types first encoded
 * afterwards; tests compare both. Code generation is also skipped, silently, where `new Function`
 * is forbidden (a Content-Security-Policy without `unsafe-eval`).
 */
export function _setEncoderCodegen(enabled: boolean): void {
  codegen = enabled;
}

function messageWriter(type: MessageType<unknown>): Writer {
  const hit = cache.get(type);
  if (hit !== undefined) return hit;
  const names = Object.keys(type.fields);
  const keys = names.map(keyBytes);
  const optional = names.map((n) => type.fields[n]!.kind === "optional");
  const anyOptional = optional.some((x) => x);
  // Filled in after registration in the cache, so recursive types resolve.
  const writers: Writer[] = [];
  const generic: Writer = (o, v: Record<string, unknown>) => {
    let n = names.length;
    if (anyOptional)
      for (let i = 0; i < names.length; i++) if (optional[i] && v[names[i]!] === undefined) n--;
    writeHeader(o, n, 0x80, 0xde, 0xdf);
    for (let i = 0; i < names.length; i++) {
      const x = v[names[i]!];
      if (x === undefined && optional[i]) continue;
      writeRaw(o, keys[i]!);
      writers[i]!(o, x);
    }
  };
  const floats = names.map((n) => {
    const k = (type.fields[n] as AnyField).kind;
    return k === "f64" || k === "f32";
  });
  const w = (codegen ? generateWriter(names, keys, optional, floats, writers) : undefined) ?? generic;
  cache.set(type, w);
  for (const n of names) writers.push(fieldWriter(type.fields[n]!));
  return w;
}

/**
 * Generates the writer of a message type with fewer than 16 fields: straight-line code with named
 * property loads, each key written as inline byte stores and f32/f64 fields inline (the rest
 * through their field writers). Writes exactly what the generic writer writes. Returns undefined
 * where code generation is not possible or not allowed.
 */
function generateWriter(
  names: readonly string[],
  keys: readonly Buffer[],
  optional: readonly boolean[],
  floats: readonly boolean[],
  writers: Writer[],
): Writer | undefined {
  if (names.length >= 16 || keys.some((k) => k.length > 32)) return undefined;
  const lines: string[] = [`let n = ${names.length}, x, b, p;`];
  for (let k = 0; k < names.length; k++)
    if (optional[k]) lines.push(`if (v[${JSON.stringify(names[k])}] === undefined) n--;`);
  lines.push(`o.ensure(1);`, `o.buf[o.pos++] = 0x80 | n;`);
  for (let k = 0; k < names.length; k++) {
    const key = keys[k]!;
    const body: string[] = [
      `o.ensure(${key.length + (floats[k] ? 9 : 0)}); b = o.buf; p = o.pos;`,
      [...key].map((byte, j) => `b[p + ${j}] = ${byte};`).join(" "),
      floats[k]
        ? `b[p + ${key.length}] = 0xcb; b.writeDoubleBE(x, p + ${key.length + 1}); o.pos = p + ${key.length + 9};`
        : `o.pos = p + ${key.length}; W[${k}](o, x);`,
    ];
    lines.push(`x = v[${JSON.stringify(names[k])}];`);
    lines.push(optional[k] ? `if (x !== undefined) {\n${body.join("\n")}\n}` : body.join("\n"));
  }
  const source = `"use strict";\nconst W = r[0];\nreturn function write(o, v) {\n${lines.join("\n")}\n};`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function("r", source)([writers]) as Writer;
  } catch {
    return undefined;
  }
}

const out = new Out();

/**
 * Encodes `msg` (valid for `type`) as msgpack into a reusable buffer, returned with the message's
 * length: the message is `buf[0, length)`, valid only until the next encode. `buf` is null when a
 * `bytes` field of at least `blobThreshold` bytes means the message should travel as frames (see
 * encodeFrames). No object is made per call: the result is this one, reused.
 */
export function encodeCompiledScratch<T>(
  type: MessageType<T>,
  msg: T,
  blobThreshold: number,
): EncodedScratch {
  const w = messageWriter(type);
  // Do not keep a huge buffer alive after one big message.
  if (out.buf.length > 1024 * 1024 && scratch.length < 64 * 1024) out.buf = Buffer.allocUnsafe(64 * 1024);
  out.pos = 0;
  out.blobThreshold = blobThreshold;
  out.tooLarge = false;
  w(out, msg);
  scratch.buf = out.tooLarge ? null : out.buf;
  scratch.length = out.pos;
  return scratch;
}

/**
 * Writes messages of one type straight into a caller's buffer (a Data frame being built), so the
 * message is copied once, not encoded into a scratch buffer and copied again. Set `msg`, then call
 * `write(buf, at)`: it returns the buffer holding the message — `buf`, or a larger copy of it when
 * the message did not fit (its first `at` bytes copied over) — with the message ending at `end`;
 * or null when a `bytes` field of at least `blobThreshold` bytes means the message should travel
 * as frames (see encodeFrames).
 */
export class CompiledRecordWriter<T> {
  /** The message the next `write` writes. */
  msg: T | undefined = undefined;
  /** Where the last written message ends in the returned buffer. */
  end = 0;
  readonly #write: Writer;

  constructor(
    type: MessageType<T>,
    readonly blobThreshold: number,
  ) {
    this.#write = messageWriter(type);
  }

  write(buf: Buffer, at: number): Buffer | null {
    const own = out.buf;
    out.buf = buf;
    out.pos = at;
    out.blobThreshold = this.blobThreshold;
    out.tooLarge = false;
    try {
      this.#write(out, this.msg);
      if (out.tooLarge) return null;
      this.end = out.pos;
      return out.buf;
    } finally {
      // The caller's buffer is never kept: the next scratch encode must not write into it.
      out.buf = own;
    }
  }
}

/** What {@link encodeCompiledScratch} returns: the message is `buf[0, length)`. */
export interface EncodedScratch {
  /** The reusable buffer holding the message, or null when it travels as frames. */
  buf: Buffer | null;
  /** Bytes of the message. */
  length: number;
}

const scratch: EncodedScratch = { buf: null, length: 0 };

/**
 * Encodes `msg` (valid for `type`) as msgpack into a reusable buffer. Returns a view valid only
 * until the next call, or `null` when a `bytes` field of at least `blobThreshold` bytes means the
 * message should travel as frames (see encodeFrames).
 */
export function encodeCompiledTransient<T>(
  type: MessageType<T>,
  msg: T,
  blobThreshold: number,
): Uint8Array | null {
  const r = encodeCompiledScratch(type, msg, blobThreshold);
  if (r.buf === null) return null;
  // A plain view: cheaper to make than a Buffer, and every user copies it before the next encode.
  return new Uint8Array(r.buf.buffer, r.buf.byteOffset, r.length);
}
