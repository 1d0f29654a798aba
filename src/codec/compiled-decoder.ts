/**
 * A msgpack decoder compiled from a message type that validates while it decodes: one pass over
 * the bytes yields a value that is guaranteed to satisfy `type.validate`, or `MISMATCH` when the
 * bytes are anything else (another encoding of the same value, a wrong type, garbage). On
 * `MISMATCH` the caller falls back to the generic decoder and the validator, which accept every
 * valid encoding and name what is wrong. Used on the receive hot path for small messages.
 *
 * Accepts what the compiled encoder and msgpackr write: ints in any msgpack int form, floats as
 * float32/float64 or ints, strings as str8/16/32/fixstr, bytes as bin8/16/32 (returned as views
 * into the input, no copy), maps with keys in any order, 64-bit ints as int64/uint64 (→ bigint).
 */
import { INT_RANGES, type AnyField, type Field, type MessageType } from "../msgs/index.js";
import { keyBytes } from "./compiled.js";

/** Returned when the bytes do not decode straight into a valid message. */
export const MISMATCH: unique symbol = Symbol("myelin.codec.mismatch");

/** Decoding cursor over one message's bytes. */
interface In {
  b: Uint8Array;
  dv: DataView;
  /** `b`'s buffer and offset in it, read once per buffer (a typed array's `.buffer` is not free). */
  ab: ArrayBufferLike;
  off: number;
  p: number;
  end: number;
}

type Reader = (i: In) => unknown;

const NO = MISMATCH as unknown;
const textDecoder = new TextDecoder("utf-8", { fatal: true });

function readInt(i: In): number | typeof MISMATCH {
  if (i.p >= i.end) return MISMATCH;
  const t = i.b[i.p]!;
  const dv = i.dv;
  let p = i.p + 1;
  let v: number;
  if (t < 0x80) v = t;
  else if (t >= 0xe0) v = t - 0x100;
  else {
    switch (t) {
      case 0xcc:
        if (p + 1 > i.end) return MISMATCH;
        v = i.b[p]!;
        p += 1;
        break;
      case 0xcd:
        if (p + 2 > i.end) return MISMATCH;
        v = dv.getUint16(p);
        p += 2;
        break;
      case 0xce:
        if (p + 4 > i.end) return MISMATCH;
        v = dv.getUint32(p);
        p += 4;
        break;
      case 0xd0:
        if (p + 1 > i.end) return MISMATCH;
        v = dv.getInt8(p);
        p += 1;
        break;
      case 0xd1:
        if (p + 2 > i.end) return MISMATCH;
        v = dv.getInt16(p);
        p += 2;
        break;
      case 0xd2:
        if (p + 4 > i.end) return MISMATCH;
        v = dv.getInt32(p);
        p += 4;
        break;
      default:
        return MISMATCH;
    }
  }
  i.p = p;
  return v;
}

function intReader(min: number, max: number): Reader {
  return (i) => {
    const v = readInt(i);
    if (v === MISMATCH || v < min || v > max) return NO;
    return v;
  };
}

const readFloat: Reader = (i) => {
  if (i.p >= i.end) return NO;
  const t = i.b[i.p]!;
  if (t === 0xcb) {
    if (i.p + 9 > i.end) return NO;
    const v = i.dv.getFloat64(i.p + 1);
    i.p += 9;
    return v;
  }
  if (t === 0xca) {
    if (i.p + 5 > i.end) return NO;
    const v = i.dv.getFloat32(i.p + 1);
    i.p += 5;
    return v;
  }
  const v = readInt(i);
  return v === MISMATCH ? NO : v;
};

function bigReader(signed: boolean): Reader {
  return (i) => {
    if (i.p + 9 > i.end) return NO;
    const t = i.b[i.p]!;
    let v: bigint;
    if (t === 0xd3) v = i.dv.getBigInt64(i.p + 1);
    else if (t === 0xcf) v = i.dv.getBigUint64(i.p + 1);
    else return NO;
    if (!signed && v < 0n) return NO;
    if (signed && v > 0x7fffffffffffffffn) return NO;
    i.p += 9;
    return v;
  };
}

const readBool: Reader = (i) => {
  if (i.p >= i.end) return NO;
  const t = i.b[i.p];
  if (t !== 0xc2 && t !== 0xc3) return NO;
  i.p++;
  return t === 0xc3;
};

/** Reads a str header; returns the byte length, or -1. */
function strLength(i: In): number {
  if (i.p >= i.end) return -1;
  const t = i.b[i.p]!;
  let n: number;
  let h: number;
  if ((t & 0xe0) === 0xa0) {
    n = t & 0x1f;
    h = 1;
  } else if (t === 0xd9) {
    if (i.p + 2 > i.end) return -1;
    n = i.b[i.p + 1]!;
    h = 2;
  } else if (t === 0xda) {
    if (i.p + 3 > i.end) return -1;
    n = i.dv.getUint16(i.p + 1);
    h = 3;
  } else if (t === 0xdb) {
    if (i.p + 5 > i.end) return -1;
    n = i.dv.getUint32(i.p + 1);
    h = 5;
  } else return -1;
  if (i.p + h + n > i.end) return -1;
  i.p += h;
  return n;
}

const readString: Reader = (i) => {
  const n = strLength(i);
  if (n < 0) return NO;
  const b = i.b;
  const s = i.p;
  i.p += n;
  if (n < 32) {
    let ascii = true;
    for (let k = s; k < s + n; k++) if (b[k]! >= 0x80) ascii = false;
    if (ascii) {
      let out = "";
      for (let k = s; k < s + n; k++) out += String.fromCharCode(b[k]!);
      return out;
    }
  }
  try {
    return textDecoder.decode(b.subarray(s, s + n));
  } catch {
    return NO;
  }
};

const readBytes: Reader = (i) => {
  if (i.p >= i.end) return NO;
  const t = i.b[i.p]!;
  let n: number;
  let h: number;
  if (t === 0xc4) {
    if (i.p + 2 > i.end) return NO;
    n = i.b[i.p + 1]!;
    h = 2;
  } else if (t === 0xc5) {
    if (i.p + 3 > i.end) return NO;
    n = i.dv.getUint16(i.p + 1);
    h = 3;
  } else if (t === 0xc6) {
    if (i.p + 5 > i.end) return NO;
    n = i.dv.getUint32(i.p + 1);
    h = 5;
  } else return NO;
  const s = i.p + h;
  if (s + n > i.end) return NO;
  i.p = s + n;
  return new Uint8Array(i.ab, i.off + s, n);
};

/** Reads a container header of the given family; returns the element count, or -1. */
function header(i: In, fixBase: number, fixMask: number, x16: number, x32: number): number {
  if (i.p >= i.end) return -1;
  const t = i.b[i.p]!;
  if ((t & fixMask) === fixBase) {
    i.p++;
    return t & ~fixMask & 0xff;
  }
  if (t === x16) {
    if (i.p + 3 > i.end) return -1;
    const n = i.dv.getUint16(i.p + 1);
    i.p += 3;
    return n;
  }
  if (t === x32) {
    if (i.p + 5 > i.end) return -1;
    const n = i.dv.getUint32(i.p + 1);
    i.p += 5;
    return n;
  }
  return -1;
}

const mapHeader = (i: In): number => header(i, 0x80, 0xf0, 0xde, 0xdf);
const arrayHeader = (i: In): number => header(i, 0x90, 0xf0, 0xdc, 0xdd);

function timeReader(): Reader {
  const sec = intReader(INT_RANGES.i32.min, INT_RANGES.i32.max);
  const nanosec = intReader(0, 999999999);
  return (i) => {
    if (mapHeader(i) !== 2) return NO;
    let s: unknown = NO;
    let n: unknown = NO;
    for (let k = 0; k < 2; k++) {
      const key = readString(i);
      if (key === "sec" && s === NO) s = sec(i);
      else if (key === "nanosec" && n === NO) n = nanosec(i);
      else return NO;
    }
    if (s === NO || n === NO) return NO;
    return { sec: s, nanosec: n };
  };
}

function fieldReader(f: Field<unknown>): Reader {
  const a = f as AnyField;
  switch (a.kind) {
    case "bool":
      return readBool;
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
      return intReader(INT_RANGES[a.kind].min, INT_RANGES[a.kind].max);
    case "f32":
    case "f64":
      return readFloat;
    case "u64":
      return bigReader(false);
    case "i64":
      return bigReader(true);
    case "string":
      return readString;
    case "bytes":
      return readBytes;
    case "time":
    case "duration":
      return timeReader();
    case "enum": {
      const allowed = new Set(Object.values(a.values));
      return (i) => {
        const v = readInt(i);
        return v !== MISMATCH && allowed.has(v) ? v : NO;
      };
    }
    case "msg":
      return messageReader(a.type);
    case "optional":
      return fieldReader(a.of);
    case "array": {
      const el = fieldReader(a.of);
      const length = a.length;
      const maxLength = a.maxLength;
      return (i) => {
        const n = arrayHeader(i);
        if (n < 0) return NO;
        if (length !== undefined && n !== length) return NO;
        if (maxLength !== undefined && n > maxLength) return NO;
        if (n > i.end - i.p) return NO; // every element takes at least one byte
        const out = new Array<unknown>(n);
        for (let k = 0; k < n; k++) {
          const v = el(i);
          if (v === NO) return NO;
          out[k] = v;
        }
        return out;
      };
    }
  }
}

const readers = new WeakMap<MessageType<unknown>, Reader>();

let codegen = true;

/**
 * @internal Turns the generated (`new Function`) message readers on or off for types first decoded
 * afterwards; tests compare both. Code generation is also skipped, silently, where `new Function`
 * is forbidden (a Content-Security-Policy without `unsafe-eval`).
 */
export function _setDecoderCodegen(enabled: boolean): void {
  codegen = enabled;
}

function messageReader(type: MessageType<unknown>): Reader {
  const hit = readers.get(type);
  if (hit !== undefined) return hit;
  const names = Object.keys(type.fields);
  const index = new Map(names.map((n, k) => [n, k]));
  const required = names.filter((n) => type.fields[n]!.kind !== "optional").length;
  const optional = names.map((n) => type.fields[n]!.kind === "optional");
  // Filled in after registration, so recursive types resolve.
  const fields: Reader[] = [];
  const generic: Reader = (i) => {
    const n = mapHeader(i);
    if (n < 0 || n > names.length) return NO;
    const out: Record<string, unknown> = {};
    let seenRequired = 0;
    for (let k = 0; k < n; k++) {
      const key = readString(i);
      if (key === NO) return NO;
      const name = key as string;
      const at = index.get(name);
      if (at === undefined || name in out) return NO; // unknown or repeated field
      const v = fields[at]!(i);
      if (v === NO) return NO;
      out[name] = v;
      if (!optional[at]) seenRequired++;
    }
    if (seenRequired !== required) return NO;
    return out;
  };
  const r = (codegen ? generateInOrder(names, fields, generic) : undefined) ?? generic;
  readers.set(type, r);
  for (const n of names) fields.push(fieldReader(type.fields[n]!));
  return r;
}

/**
 * Generates a reader for the common encoding, the one the compiled encoder writes: a fixmap with
 * every field, keys as that encoder writes them, in declaration order. Keys are compared byte by byte (no string is
 * built, no lookup) and the message is one object literal (one hidden class per type). Anything
 * else, from the first byte that differs, goes to `generic` from the message's first byte.
 * Returns undefined where code generation is not possible or not allowed.
 */
function generateInOrder(names: readonly string[], fields: Reader[], generic: Reader): Reader | undefined {
  if (names.length === 0 || names.length >= 16 || names.includes("__proto__")) return undefined;
  // The keys as the compiled writer writes them (msgpackr's shorter headers take the generic path).
  const keys = names.map((n) => [...keyBytes(n)]);
  if (keys.some((k) => k.length > 40)) return undefined;
  const lines: string[] = [
    `if (s + ${1 + keys.reduce((n, k) => n + k.length, 0)} > e || b[s] !== ${0x80 | names.length}) return slow(i);`,
    `let p = s + 1;`,
  ];
  for (let k = 0; k < names.length; k++) {
    const key = keys[k]!;
    const test = key.map((byte, j) => `b[p + ${j}] !== ${byte}`).join(" || ");
    lines.push(
      k === 0
        ? `if (${test}) return slow(i);`
        : `if (p + ${key.length} > e || ${test}) { i.p = s; return slow(i); }`,
      `i.p = p + ${key.length};`,
      `const v${k} = F[${k}](i);`,
      `if (v${k} === NO) return NO;`,
      `p = i.p;`,
    );
  }
  const literal = names.map((n, k) => `${JSON.stringify(n)}: v${k}`).join(", ");
  const source =
    `"use strict";\nconst NO = r[0], F = r[1], slow = r[2];\n` +
    `return function read(i) {\nconst b = i.b, s = i.p, e = i.end;\n${lines.join("\n")}\n` +
    `return { ${literal} };\n};`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function("r", source)([NO, fields, generic]) as Reader;
  } catch {
    return undefined;
  }
}

/**
 * Decodes `bytes` as a message of `type`, validating as it goes. Returns a valid message (bytes
 * fields are views into `bytes`), or `MISMATCH` — then decode generically and validate to learn
 * what is wrong (or to accept an encoding this decoder does not take).
 */
export function decodeCompiled<T>(type: MessageType<T>, bytes: Uint8Array): T | typeof MISMATCH {
  const i = cursorOver(bytes);
  const end = i.end;
  const v = messageReader(type)(i);
  if (v === NO || i.p !== end) return MISMATCH;
  return v as T;
}

/**
 * {@link decodeCompiled} of `frame[start, end)`: for messages that lie one after another in one
 * buffer (a Data frame), without a view per message. Consecutive calls with the same `frame`
 * share one cursor over it.
 */
export function decodeCompiledIn<T>(
  type: MessageType<T>,
  frame: Uint8Array,
  start: number,
  end: number,
): T | typeof MISMATCH {
  let i: In;
  if (frame === inFrame) i = inShared;
  else if (frame.byteLength > MAX_SHARED_VIEW_BYTES) i = cursorOf(frame);
  else {
    inFrame = frame;
    i = inShared = cursorOf(frame);
  }
  i.p = start;
  i.end = end;
  const v = messageReader(type)(i);
  if (v === NO || i.p !== end) return MISMATCH;
  return v as T;
}

/** Views over a buffer of at most this many bytes are kept for the next message (one frame's). */
const MAX_SHARED_VIEW_BYTES = 256 * 1024;
let sharedBuffer: ArrayBufferLike | null = null;
let sharedBytes: Uint8Array = new Uint8Array(0);
let sharedView: DataView = new DataView(sharedBytes.buffer);
const shared: In = { b: sharedBytes, dv: sharedView, ab: sharedBytes.buffer, off: 0, p: 0, end: 0 };
/** The frame of the last decodeCompiledIn, and the cursor over it. */
let inFrame: Uint8Array | null = null;
let inShared: In = shared;

/** A cursor of its own over `bytes` (positions are offsets into `bytes`). */
function cursorOf(bytes: Uint8Array): In {
  return {
    b: bytes,
    dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    ab: bytes.buffer,
    off: bytes.byteOffset,
    p: 0,
    end: bytes.byteLength,
  };
}

/**
 * A cursor over `bytes`. Messages received together share one buffer (a batch frame): the views over
 * it are made once and reused, positions being offsets into the whole buffer. A large buffer gets
 * views of its own, so a big message is not kept alive by the cache.
 */
function cursorOver(bytes: Uint8Array): In {
  const ab = bytes.buffer;
  if (ab !== sharedBuffer) {
    if (ab.byteLength > MAX_SHARED_VIEW_BYTES) return cursorOf(bytes);
    sharedBuffer = ab;
    sharedBytes = new Uint8Array(ab);
    sharedView = new DataView(ab);
    shared.b = sharedBytes;
    shared.dv = sharedView;
    shared.ab = ab;
    shared.off = 0;
  }
  shared.p = bytes.byteOffset;
  shared.end = bytes.byteOffset + bytes.byteLength;
  return shared;
}
