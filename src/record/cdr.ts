/**
 * CDR (OMG Common Data Representation, little-endian, XCDR1 as ROS 2 writes it) for Myelin message
 * types: the encoding that ROS 2 bags and the viewers' `cdr` decoder read. A Myelin type maps field for
 * field to its ROS 2 definition (see `ros2msg.ts`): integers, floats and bool at their natural alignment
 * (measured from the end of the 4-byte encapsulation header), strings as a u32 length counting a final
 * NUL, `bytes` and variable arrays as a u32 count then the elements, fixed arrays without a count, times
 * and durations as `int32 sec, uint32 nanosec`.
 *
 * Enums and optional fields have no ROS 2 counterpart: {@link cdrUnsupported} names them, and the
 * channel encoding uses JSON for such types. No I/O.
 */
import { DecodeError, MyelinError } from "../errors.js";
import type { AnyField, Field, MessageType } from "../msgs/index.js";

/** Encapsulation header of little-endian plain CDR: representation id 0x0001, options 0. */
const CDR_LE_HEADER = [0x00, 0x01, 0x00, 0x00] as const;

interface Cursor {
  view: DataView;
  buf: Uint8Array;
  /** Offset in `buf` of the first byte after the encapsulation header: alignment is relative to it. */
  base: number;
  /** Logical position in the encoded message. */
  pos: number;
  /**
   * Writing in parts: bytes of the message so far that are not in `buf` (large byte sequences kept by
   * reference), so a value at logical `pos` goes to `buf[pos - shift]`. Always 0 when reading.
   */
  shift: number;
  /** Writing in parts: where each referenced byte sequence goes (its offset in `buf`) and its bytes. */
  holes?: { at: number; data: Uint8Array }[];
}

/** Byte sequences at least this long are referenced, not copied, by {@link cdrEncodeParts}. */
const BY_REFERENCE_BYTES = 16 * 1024;

/** What one field compiles to. */
interface FieldCodec {
  /** Size in bytes of `v` written at offset `off` (relative to the CDR body); returns the end offset. */
  size(v: unknown, off: number): number;
  write(v: unknown, c: Cursor): void;
  read(c: Cursor): unknown;
}

const align = (off: number, n: number): number => (off + n - 1) & ~(n - 1);

function alignCursor(c: Cursor, n: number): void {
  c.pos = c.base + align(c.pos - c.base, n);
}

/** Aligns a writing cursor and zeroes the padding (the buffer is allocated uninitialised). */
function alignWrite(c: Cursor, n: number): void {
  const to = c.base + align(c.pos - c.base, n);
  while (c.pos < to) c.buf[c.pos++ - c.shift] = 0;
}

function need(c: Cursor, n: number, what: string): void {
  if (c.pos + n > c.buf.length) {
    throw new DecodeError(
      "ERR_DECODE",
      `CDR message ends early: ${what} needs ${n} bytes at offset ${c.pos - c.base}, ${c.buf.length - c.pos} left`,
    );
  }
}

function prim(
  width: 1 | 2 | 4 | 8,
  name: string,
  get: (v: DataView, o: number) => unknown,
  set: (v: DataView, o: number, x: unknown) => void,
): FieldCodec {
  return {
    size: (_v, off) => align(off, width) + width,
    write(v, c) {
      alignWrite(c, width);
      set(c.view, c.pos - c.shift, v);
      c.pos += width;
    },
    read(c) {
      alignCursor(c, width);
      need(c, width, name);
      const x = get(c.view, c.pos);
      c.pos += width;
      return x;
    },
  };
}

const PRIMS = {
  bool: prim(
    1,
    "bool",
    (v, o) => v.getUint8(o) !== 0,
    (v, o, x) => v.setUint8(o, x === true ? 1 : 0),
  ),
  u8: prim(
    1,
    "uint8",
    (v, o) => v.getUint8(o),
    (v, o, x) => v.setUint8(o, x as number),
  ),
  i8: prim(
    1,
    "int8",
    (v, o) => v.getInt8(o),
    (v, o, x) => v.setInt8(o, x as number),
  ),
  u16: prim(
    2,
    "uint16",
    (v, o) => v.getUint16(o, true),
    (v, o, x) => v.setUint16(o, x as number, true),
  ),
  i16: prim(
    2,
    "int16",
    (v, o) => v.getInt16(o, true),
    (v, o, x) => v.setInt16(o, x as number, true),
  ),
  u32: prim(
    4,
    "uint32",
    (v, o) => v.getUint32(o, true),
    (v, o, x) => v.setUint32(o, x as number, true),
  ),
  i32: prim(
    4,
    "int32",
    (v, o) => v.getInt32(o, true),
    (v, o, x) => v.setInt32(o, x as number, true),
  ),
  f32: prim(
    4,
    "float32",
    (v, o) => v.getFloat32(o, true),
    (v, o, x) => v.setFloat32(o, x as number, true),
  ),
  f64: prim(
    8,
    "float64",
    (v, o) => v.getFloat64(o, true),
    (v, o, x) => v.setFloat64(o, x as number, true),
  ),
  u64: prim(
    8,
    "uint64",
    (v, o) => v.getBigUint64(o, true),
    (v, o, x) => v.setBigUint64(o, x as bigint, true),
  ),
  i64: prim(
    8,
    "int64",
    (v, o) => v.getBigInt64(o, true),
    (v, o, x) => v.setBigInt64(o, x as bigint, true),
  ),
} as const;

const utf8 = new TextDecoder("utf-8");

const stringCodec: FieldCodec = {
  size: (v, off) => align(off, 4) + 4 + Buffer.byteLength(v as string) + 1,
  write(v, c) {
    alignWrite(c, 4);
    const s = v as string;
    const at = c.pos - c.shift;
    const n = Buffer.from(c.buf.buffer, c.buf.byteOffset, c.buf.byteLength).write(s, at + 4, "utf8");
    c.view.setUint32(at, n + 1, true);
    c.buf[at + 4 + n] = 0;
    c.pos += 4 + n + 1;
  },
  read(c) {
    alignCursor(c, 4);
    need(c, 4, "string length");
    const n = c.view.getUint32(c.pos, true);
    c.pos += 4;
    need(c, n, "string");
    // The length counts the terminating NUL; a writer that left it out is read as well.
    const end = n > 0 && c.buf[c.pos + n - 1] === 0 ? c.pos + n - 1 : c.pos + n;
    const s = utf8.decode(c.buf.subarray(c.pos, end));
    c.pos += n;
    return s;
  },
};

const bytesCodec: FieldCodec = {
  size: (v, off) => align(off, 4) + 4 + (v as Uint8Array).byteLength,
  write(v, c) {
    alignWrite(c, 4);
    const b = v as Uint8Array;
    c.view.setUint32(c.pos - c.shift, b.byteLength, true);
    if (c.holes !== undefined && b.byteLength >= BY_REFERENCE_BYTES) {
      c.holes.push({ at: c.pos + 4 - c.shift, data: b });
      c.shift += b.byteLength;
    } else c.buf.set(b, c.pos + 4 - c.shift);
    c.pos += 4 + b.byteLength;
  },
  read(c) {
    alignCursor(c, 4);
    need(c, 4, "byte sequence length");
    const n = c.view.getUint32(c.pos, true);
    c.pos += 4;
    need(c, n, "byte sequence");
    const b = c.buf.subarray(c.pos, c.pos + n); // a view: large payloads are not copied
    c.pos += n;
    return b;
  },
};

function stampCodec(): FieldCodec {
  const i32 = PRIMS.i32;
  const u32 = PRIMS.u32;
  return {
    size: (_v, off) => align(off, 4) + 8,
    write(v, c) {
      const t = v as { sec: number; nanosec: number };
      i32.write(t.sec, c);
      u32.write(t.nanosec, c);
    },
    read(c) {
      const sec = i32.read(c) as number;
      const nanosec = u32.read(c) as number;
      return { sec, nanosec };
    },
  };
}

function arrayCodec(el: FieldCodec, length: number | undefined): FieldCodec {
  return {
    size(v, off) {
      const a = v as unknown[];
      let o = length === undefined ? align(off, 4) + 4 : off;
      for (const x of a) o = el.size(x, o);
      return o;
    },
    write(v, c) {
      const a = v as unknown[];
      if (length === undefined) {
        alignWrite(c, 4);
        c.view.setUint32(c.pos - c.shift, a.length, true);
        c.pos += 4;
      }
      for (const x of a) el.write(x, c);
    },
    read(c) {
      let n = length;
      if (n === undefined) {
        alignCursor(c, 4);
        need(c, 4, "sequence length");
        n = c.view.getUint32(c.pos, true);
        c.pos += 4;
        // Every element takes at least one byte: a count beyond what is left is corrupt, not a huge allocation.
        need(c, n, "sequence");
      }
      const out: unknown[] = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = el.read(c);
      return out;
    },
  };
}

const messageCodecs = new WeakMap<object, FieldCodec>();

function messageCodec(type: MessageType<unknown>): FieldCodec {
  let codec = messageCodecs.get(type);
  if (codec !== undefined) return codec;
  const entries = Object.entries(type.fields).map(([k, f]) => [k, fieldCodec(f, type.name, k)] as const);
  codec = {
    size(v, off) {
      const m = v as Record<string, unknown>;
      let o = off;
      for (const [k, fc] of entries) o = fc.size(m[k], o);
      return o;
    },
    write(v, c) {
      const m = v as Record<string, unknown>;
      for (const [k, fc] of entries) fc.write(m[k], c);
    },
    read(c) {
      const m: Record<string, unknown> = {};
      for (const [k, fc] of entries) m[k] = fc.read(c);
      return m;
    },
  };
  messageCodecs.set(type, codec);
  return codec;
}

function fieldCodec(field: Field<unknown>, typeName: string, key: string): FieldCodec {
  const f = field as AnyField;
  switch (f.kind) {
    case "bool":
    case "u8":
    case "i8":
    case "u16":
    case "i16":
    case "u32":
    case "i32":
    case "f32":
    case "f64":
    case "u64":
    case "i64":
      return PRIMS[f.kind];
    case "string":
      return stringCodec;
    case "bytes":
      return bytesCodec;
    case "time":
    case "duration":
      return stampCodec();
    case "array":
      return arrayCodec(fieldCodec(f.of, typeName, key), f.length);
    case "msg":
      return messageCodec(f.type);
    case "enum":
    case "optional":
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${typeName}.${key} is ${f.kind === "enum" ? "an enum" : "optional"}, which CDR cannot carry; use the JSON encoding`,
      );
  }
}

/**
 * Why `type` cannot be written as CDR (a field path and its kind), or undefined when it can: enums,
 * optional fields and arrays of `bytes` have no ROS 2 equivalent.
 */
export function cdrUnsupported(type: MessageType<unknown>): string | undefined {
  const walk = (field: Field<unknown>, path: string, inArray: boolean): string | undefined => {
    const f = field as AnyField;
    switch (f.kind) {
      case "enum":
        return `${path} is an enum`;
      case "optional":
        return `${path} is optional`;
      case "bytes":
        return inArray ? `${path} is an array of bytes` : undefined;
      case "array":
        return walk(f.of, `${path}[]`, true);
      case "msg":
        for (const [k, g] of Object.entries(f.type.fields)) {
          const r = walk(g, `${path}.${k}`, false);
          if (r !== undefined) return r;
        }
        return undefined;
      default:
        return undefined;
    }
  };
  for (const [k, g] of Object.entries(type.fields)) {
    const r = walk(g, `${type.name}.${k}`, false);
    if (r !== undefined) return r;
  }
  return undefined;
}

/**
 * Encodes `msg` (a valid message of `type`) as little-endian CDR with its encapsulation header, in one
 * allocation of the exact size; `bytes` fields are copied once.
 * @throws MyelinError ERR_INVALID_ARGUMENT if the type has a field CDR cannot carry ({@link cdrUnsupported}).
 */
export function cdrEncode<T>(type: MessageType<T>, msg: T): Uint8Array {
  const codec = messageCodec(type);
  const bodySize = codec.size(msg, 0);
  const buf = Buffer.allocUnsafe(4 + bodySize);
  buf[0] = CDR_LE_HEADER[0];
  buf[1] = CDR_LE_HEADER[1];
  buf[2] = CDR_LE_HEADER[2];
  buf[3] = CDR_LE_HEADER[3];
  const c: Cursor = {
    view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
    buf,
    base: 4,
    pos: 4,
    shift: 0,
  };
  codec.write(msg, c);
  if (c.pos !== buf.length) {
    throw new MyelinError("ERR_ENCODE", `CDR encoding of ${type.name} wrote ${c.pos} of ${buf.length} bytes`);
  }
  return buf;
}

/**
 * The same bytes as {@link cdrEncode}, in pieces: byte sequences of 16 KiB or more (image pixels, point
 * data) are not copied but returned as their own pieces, between the encoded fields around them.
 * @throws MyelinError ERR_INVALID_ARGUMENT if the type has a field CDR cannot carry.
 */
export function cdrEncodeParts<T>(type: MessageType<T>, msg: T): Uint8Array[] {
  const codec = messageCodec(type);
  const total = 4 + codec.size(msg, 0);
  const referenced = largeBytes(type, msg);
  if (referenced === 0) return [cdrEncode(type, msg)];
  const buf = Buffer.allocUnsafe(total - referenced);
  buf[0] = CDR_LE_HEADER[0];
  buf[1] = CDR_LE_HEADER[1];
  buf[2] = CDR_LE_HEADER[2];
  buf[3] = CDR_LE_HEADER[3];
  const holes: { at: number; data: Uint8Array }[] = [];
  const c: Cursor = {
    view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
    buf,
    base: 4,
    pos: 4,
    shift: 0,
    holes,
  };
  codec.write(msg, c);
  if (c.pos !== total) {
    throw new MyelinError("ERR_ENCODE", `CDR encoding of ${type.name} wrote ${c.pos} of ${total} bytes`);
  }
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const h of holes) {
    parts.push(buf.subarray(from, h.at), h.data);
    from = h.at;
  }
  if (from < buf.length) parts.push(buf.subarray(from));
  return parts;
}

/** Total length of the byte sequences of `msg` that {@link cdrEncodeParts} references (top-level and nested). */
function largeBytes(type: MessageType<unknown>, msg: unknown): number {
  let n = 0;
  const walk = (field: Field<unknown>, v: unknown): void => {
    const f = field as AnyField;
    if (f.kind === "bytes") {
      const b = v as Uint8Array;
      if (b.byteLength >= BY_REFERENCE_BYTES) n += b.byteLength;
    } else if (f.kind === "msg") {
      for (const [k, g] of Object.entries(f.type.fields)) walk(g, (v as Record<string, unknown>)[k]);
    } else if (f.kind === "array" && f.of.kind === "msg") {
      for (const x of v as unknown[]) walk(f.of, x);
    }
  };
  for (const [k, g] of Object.entries(type.fields)) walk(g, (msg as Record<string, unknown>)[k]);
  return n;
}

/**
 * Decodes a CDR message of `type` (with its encapsulation header; little-endian plain CDR, as ROS 2 writes).
 * `bytes` fields are views into `data`, not copies.
 * @throws DecodeError ERR_DECODE if `data` is too short, has an unknown encapsulation or trailing garbage
 *   beyond alignment padding.
 */
export function cdrDecode<T>(type: MessageType<T>, data: Uint8Array): T {
  if (data.byteLength < 4) {
    throw new DecodeError(
      "ERR_DECODE",
      `CDR message of ${type.name} is ${data.byteLength} bytes, shorter than its header`,
    );
  }
  const kind = (data[0]! << 8) | data[1]!;
  if (kind !== 0x0001) {
    throw new DecodeError(
      "ERR_DECODE",
      `CDR message of ${type.name} has encapsulation 0x${kind.toString(16).padStart(4, "0")}; only little-endian plain CDR (0x0001) is read`,
    );
  }
  const c: Cursor = {
    view: new DataView(data.buffer, data.byteOffset, data.byteLength),
    buf: data,
    base: 4,
    pos: 4,
    shift: 0,
  };
  const msg = messageCodec(type).read(c) as T;
  if (data.byteLength - c.pos > 3) {
    throw new DecodeError(
      "ERR_DECODE",
      `CDR message of ${type.name} has ${data.byteLength - c.pos} bytes left after its last field; is it another type?`,
    );
  }
  return msg;
}
