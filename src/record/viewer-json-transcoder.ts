/**
 * Viewer JSON straight from msgpack, for the recorder's small messages: one pass over a message's
 * msgpack bytes that checks them against the type and writes the JSON text's UTF-8 bytes, with no
 * decoded object, no JS string and no separate UTF-8 encoding in between. The bytes written are
 * exactly `viewerJsonText(type, decoded)` (viewer-json.ts) for what it accepts.
 *
 * It takes only the plain form, the one the compiled encoder writes: a fixmap with every field, keys
 * in declaration order, of types whose fields are all bool, 8- to 32-bit integers, finite floats, ASCII
 * strings, times/durations and nested messages of the same kinds. Anything else (another key order,
 * a non-ASCII string, NaN, arrays, bytes, 64-bit integers, enums, optional fields, a wrong value)
 * returns -1: the caller then decodes and validates as before, which accepts every valid encoding and
 * counts the invalid ones. No I/O.
 */
import { keyBytes } from "../codec/compiled.js";
import { INT_RANGES, type AnyField, type Field, type MessageType } from "../msgs/index.js";

/** Writes the JSON of one msgpack message into `out` from 0; returns its length, or -1 (see the module comment). */
export type ViewerJsonTranscoder = (src: Uint8Array, out: Uint8Array) => number;

interface Cursor {
  s: Uint8Array;
  /** A view over `s`, made on first use (most small messages need none). */
  view: DataView | undefined;
  p: number;
  end: number;
  out: Uint8Array;
  o: number;
}

/** Writes one value; false when it is not in the plain form (or `out` is full). */
type Writer = (c: Cursor) => boolean;

const cache = new WeakMap<object, Writer | null>();
const ascii = (text: string): Uint8Array => Buffer.from(text, "latin1");
const TRUE = ascii("true");
const FALSE = ascii("false");
const SEC_KEY = keyBytes("sec");
const NANOSEC_KEY = keyBytes("nanosec");
const SEC_JSON = ascii('{"sec":');
const NANOSEC_JSON = ascii(',"nanosec":');
const HEX = ascii("0123456789abcdef");
/** JSON escapes of the control characters that have a short form. */
const SHORT_ESCAPES: Record<number, number> = { 8: 0x62, 9: 0x74, 10: 0x6e, 12: 0x66, 13: 0x72 };

/**
 * The transcoder of `type`, or undefined when the type has a field kind it does not take (then every
 * message of it goes the decode-and-stringify way).
 */
export function viewerJsonTranscoder(type: MessageType<unknown>): ViewerJsonTranscoder | undefined {
  const w = messageWriter(type, new Set());
  if (w === null) return undefined;
  const c: Cursor = {
    s: new Uint8Array(0),
    view: undefined,
    p: 0,
    end: 0,
    out: new Uint8Array(0),
    o: 0,
  };
  return (src, out) => {
    c.s = src;
    c.view = undefined;
    c.p = 0;
    c.end = src.byteLength;
    c.out = out;
    c.o = 0;
    if (!w(c) || c.p !== c.end) return -1;
    return c.o;
  };
}

function dv(c: Cursor): DataView {
  return (c.view ??= new DataView(c.s.buffer, c.s.byteOffset, c.s.byteLength));
}

function put(c: Cursor, bytes: Uint8Array): boolean {
  const n = bytes.length;
  if (c.o + n > c.out.length) return false;
  const out = c.out;
  for (let k = 0; k < n; k++) out[c.o + k] = bytes[k]!;
  c.o += n;
  return true;
}

/** Matches the msgpack `key` at the cursor, byte for byte. */
function key(c: Cursor, k: Uint8Array): boolean {
  const n = k.length;
  if (c.p + n > c.end) return false;
  const s = c.s;
  for (let j = 0; j < n; j++) if (s[c.p + j] !== k[j]) return false;
  c.p += n;
  return true;
}

function messageWriter(type: MessageType<unknown>, visiting: Set<object>): Writer | null {
  const hit = cache.get(type);
  if (hit !== undefined) return hit;
  if (visiting.has(type)) return null; // recursive types: not the plain kind this takes
  visiting.add(type);
  const names = Object.keys(type.fields);
  let result: Writer | null = null;
  if (names.length > 0 && names.length < 16) {
    const writers: Writer[] = [];
    for (const n of names) {
      const w = fieldWriter(type.fields[n]!, visiting);
      if (w === null) break;
      writers.push(w);
    }
    if (writers.length === names.length) {
      const keys = names.map((n) => keyBytes(n));
      const prefixes = names.map((n, k) => ascii(`${k === 0 ? "{" : ","}${JSON.stringify(n)}:`));
      const head = 0x80 | names.length;
      result = (c) => {
        if (c.p >= c.end || c.s[c.p] !== head) return false;
        c.p++;
        for (let k = 0; k < writers.length; k++) {
          if (!key(c, keys[k]!) || !put(c, prefixes[k]!) || !writers[k]!(c)) return false;
        }
        if (c.o + 1 > c.out.length) return false;
        c.out[c.o++] = 0x7d; // }
        return true;
      };
    }
  }
  visiting.delete(type);
  cache.set(type, result);
  return result;
}

function fieldWriter(field: Field<unknown>, visiting: Set<object>): Writer | null {
  const f = field as AnyField;
  switch (f.kind) {
    case "bool":
      return writeBool;
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
      return intWriter(INT_RANGES[f.kind].min, INT_RANGES[f.kind].max);
    case "f32":
    case "f64":
      return writeFloat;
    case "string":
      return writeString;
    case "time":
    case "duration":
      return writeTime;
    case "msg":
      return messageWriter(f.type, visiting);
    default:
      return null;
  }
}

/** Reads a msgpack integer (any int form) as the compiled decoder does; NaN if it is not one. */
function readInt(c: Cursor): number {
  if (c.p >= c.end) return NaN;
  const t = c.s[c.p]!;
  const p = c.p + 1;
  if (t < 0x80) {
    c.p = p;
    return t;
  }
  if (t >= 0xe0) {
    c.p = p;
    return t - 0x100;
  }
  let v: number;
  let n: number;
  switch (t) {
    case 0xcc:
      n = 1;
      if (p + n > c.end) return NaN;
      v = c.s[p]!;
      break;
    case 0xcd:
      n = 2;
      if (p + n > c.end) return NaN;
      v = dv(c).getUint16(p);
      break;
    case 0xce:
      n = 4;
      if (p + n > c.end) return NaN;
      v = dv(c).getUint32(p);
      break;
    case 0xd0:
      n = 1;
      if (p + n > c.end) return NaN;
      v = dv(c).getInt8(p);
      break;
    case 0xd1:
      n = 2;
      if (p + n > c.end) return NaN;
      v = dv(c).getInt16(p);
      break;
    case 0xd2:
      n = 4;
      if (p + n > c.end) return NaN;
      v = dv(c).getInt32(p);
      break;
    default:
      return NaN;
  }
  c.p = p + n;
  return v;
}

/** Writes an integer's decimal digits (what JSON.stringify writes for it). */
function putInt(c: Cursor, v: number): boolean {
  if (c.o + 11 > c.out.length) return false;
  const out = c.out;
  if (v < 0) {
    out[c.o++] = 0x2d; // -
    v = -v;
  }
  if (v < 10) {
    out[c.o++] = 0x30 + v;
    return true;
  }
  let digits = 0;
  for (let x = v; x > 0; x = Math.floor(x / 10)) digits++;
  let at = c.o + digits;
  c.o = at;
  for (let x = v; x > 0; x = Math.floor(x / 10)) out[--at] = 0x30 + (x % 10);
  return true;
}

function intWriter(min: number, max: number): Writer {
  return (c) => {
    const v = readInt(c);
    if (!(v >= min && v <= max)) return false;
    return putInt(c, v);
  };
}

const writeBool: Writer = (c) => {
  if (c.p >= c.end) return false;
  const t = c.s[c.p];
  if (t !== 0xc2 && t !== 0xc3) return false;
  c.p++;
  return put(c, t === 0xc3 ? TRUE : FALSE);
};

const writeFloat: Writer = (c) => {
  if (c.p >= c.end) return false;
  const t = c.s[c.p]!;
  let v: number;
  if (t === 0xcb) {
    if (c.p + 9 > c.end) return false;
    v = dv(c).getFloat64(c.p + 1);
    c.p += 9;
  } else if (t === 0xca) {
    if (c.p + 5 > c.end) return false;
    v = dv(c).getFloat32(c.p + 1);
    c.p += 5;
  } else {
    v = readInt(c);
    if (Number.isNaN(v)) return false;
    return putInt(c, v);
  }
  if (!Number.isFinite(v)) return false; // written as a string ("NaN", …): the general path does that
  const text = String(v);
  if (c.o + text.length > c.out.length) return false;
  for (let k = 0; k < text.length; k++) c.out[c.o + k] = text.charCodeAt(k);
  c.o += text.length;
  return true;
};

/** An ASCII msgpack string as a JSON string (escaped as JSON.stringify escapes). */
const writeString: Writer = (c) => {
  if (c.p >= c.end) return false;
  const t = c.s[c.p]!;
  let n: number;
  let h: number;
  if ((t & 0xe0) === 0xa0) {
    n = t & 0x1f;
    h = 1;
  } else if (t === 0xd9) {
    if (c.p + 2 > c.end) return false;
    n = c.s[c.p + 1]!;
    h = 2;
  } else if (t === 0xda) {
    if (c.p + 3 > c.end) return false;
    n = dv(c).getUint16(c.p + 1);
    h = 3;
  } else if (t === 0xdb) {
    if (c.p + 5 > c.end) return false;
    n = dv(c).getUint32(c.p + 1);
    h = 5;
  } else return false;
  const start = c.p + h;
  const stop = start + n;
  if (stop > c.end || c.o + 2 + 6 * n > c.out.length) return false;
  const s = c.s;
  const out = c.out;
  let o = c.o;
  out[o++] = 0x22;
  for (let k = start; k < stop; k++) {
    const b = s[k]!;
    if (b >= 0x80) return false; // UTF-8 beyond ASCII: the general path checks and writes it
    if (b >= 0x20 && b !== 0x22 && b !== 0x5c) {
      out[o++] = b;
    } else if (b === 0x22 || b === 0x5c) {
      out[o++] = 0x5c;
      out[o++] = b;
    } else {
      out[o++] = 0x5c;
      const short = SHORT_ESCAPES[b];
      if (short !== undefined) out[o++] = short;
      else {
        out[o++] = 0x75; // \u00XX
        out[o++] = 0x30;
        out[o++] = 0x30;
        out[o++] = HEX[b >> 4]!;
        out[o++] = HEX[b & 15]!;
      }
    }
  }
  out[o++] = 0x22;
  c.o = o;
  c.p = stop;
  return true;
};

/** A time or duration: a map of `sec` (i32) and `nanosec` (0 to 999,999,999), either order. */
const writeTime: Writer = (c) => {
  if (c.p >= c.end || c.s[c.p] !== 0x82) return false;
  c.p++;
  let sec = NaN;
  let nanosec = NaN;
  for (let k = 0; k < 2; k++) {
    if (Number.isNaN(sec) && key(c, SEC_KEY)) {
      sec = readInt(c);
      if (!(sec >= -0x80000000 && sec <= 0x7fffffff)) return false;
    } else if (Number.isNaN(nanosec) && key(c, NANOSEC_KEY)) {
      nanosec = readInt(c);
      if (!(nanosec >= 0 && nanosec <= 999999999)) return false;
    } else return false;
  }
  if (!put(c, SEC_JSON) || !putInt(c, sec) || !put(c, NANOSEC_JSON) || !putInt(c, nanosec)) return false;
  if (c.o + 1 > c.out.length) return false;
  c.out[c.o++] = 0x7d;
  return true;
};
