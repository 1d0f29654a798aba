/**
 * The binary codec: MessagePack through msgpackr, plus the multi-frame form that keeps large binary fields
 * out of the body so they travel without copies.
 *
 * Wire rules (pinned by conformance/codec/*.msgpack):
 * - objects are msgpack maps with the smallest header that fits (fixmap, map16, map32); keys are strings;
 * - numbers that are 32-bit integers use the smallest int format; every other number (fractions, NaN,
 *   ±Infinity, integers beyond 32 bits such as `Date.now()`) is a float64, so it decodes as a number;
 * - a `bigint` is always an int64 (0xd3), or a uint64 (0xcf) above 2^63-1, so it decodes as a `bigint`;
 *   any int64/uint64 read from the wire decodes as a `bigint`;
 * - `Uint8Array` (and `Buffer`) is a bin; decoding returns plain `Uint8Array` views into the input, never
 *   copies (blob frames of the multi-frame form are returned as the frame objects themselves);
 * - `undefined` is msgpackr's fixext 0 and decodes as `undefined`;
 * - a blob reference (multi-frame only) is fixext 4 of type {@link BLOB_REF_EXT} whose payload is the
 *   frame index as a big-endian uint32;
 * - msgpackr's structured-clone references (extensions 0x69 and 0x70, which can make a value that
 *   contains itself) are refused when decoding.
 */
// The pure-JS build (the "msgpackr/pack" entry resolves to it in Node): the native string decoder of the
// main entry costs ~7 MB of RSS per process and does not help the binary-heavy messages Myelin moves.
import { Packr, RESET_BUFFER_MODE, addExtension } from "msgpackr/pack";
import { clearSource } from "msgpackr/unpack";
import { DecodeError, MyelinError } from "../errors.js";

/** A codec turns a message into bytes and back. */
export interface Codec {
  /** `"msgpack"` (binary, the default on the wire) or `"json"` (at the edges). */
  readonly name: "msgpack" | "json";
  /**
   * Encodes `msg`.
   * @throws MyelinError ERR_ENCODE if `msg` holds something that cannot be encoded.
   */
  encode(msg: unknown): Uint8Array;
  /**
   * Decodes one message from exactly `bytes` (trailing bytes are an error).
   * @throws DecodeError ERR_DECODE if `bytes` is not one valid encoded value; never any other error.
   */
  decode(bytes: Uint8Array): unknown;
}

/** msgpack extension type of a blob reference: `F`, for frame. */
export const BLOB_REF_EXT = 0x46;

/** Default size from which `encodeFrames` moves a `Uint8Array` into its own frame: 16 KiB. */
export const DEFAULT_BLOB_THRESHOLD = 16384;

class BlobRef {
  constructor(readonly index: number) {}
}

/** Frames of the `decodeFrames` call in progress; blob references resolve against them. */
let frameContext: readonly Uint8Array[] | null = null;
let frameUsed: Uint8Array | null = null;

function unpackBlobRef(data: Uint8Array): Uint8Array {
  if (frameContext === null || frameUsed === null) {
    throw new Error("a blob reference was found in a single-frame message (use decodeFrames)");
  }
  if (data.length !== 4) throw new Error(`a blob reference has a ${data.length}-byte payload, expected 4`);
  const index = ((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!) >>> 0;
  if (index < 1 || index >= frameContext.length) {
    throw new Error(
      `a blob reference points to frame ${index}, but the message has frames 1..${frameContext.length - 1}`,
    );
  }
  frameUsed[index] = 1;
  return frameContext[index]!;
}

addExtension({
  Class: BlobRef,
  type: BLOB_REF_EXT,
  pack(ref: BlobRef): Uint8Array {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, ref.index);
    return out;
  },
  unpack: unpackBlobRef,
});

function refuseFunction(): never {
  throw new TypeError("a function cannot be encoded");
}

/**
 * One Packr for the process. msgpackr keeps its output buffer in module state, shared by every Packr, and
 * hands out subarrays of it: plain `pack()` never writes over bytes it returned (it moves on, then starts a
 * fresh slab), while `RESET_BUFFER_MODE` lets the next call reuse the same bytes.
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  copyBuffers: false,
  int64AsType: "bigint",
  writeFunction: refuseFunction,
  // Refuse msgpackr's structured-clone reference extensions (0x69 id, 0x70 pointer) when decoding: they
  // are not part of the wire format, and would let untrusted bytes build cyclic values.
  structuredClone: false,
});

function encodeError(err: unknown): MyelinError {
  if (err instanceof MyelinError) return err;
  const why =
    err instanceof RangeError && /call stack/i.test(err.message)
      ? "the value is nested too deeply or contains a cycle"
      : err instanceof Error
        ? err.message
        : String(err);
  return new MyelinError(
    "ERR_ENCODE",
    `cannot encode the message as msgpack: ${why}; publish plain data (numbers, bigints, strings, ` +
      `booleans, arrays, objects, Uint8Array)`,
    { cause: err },
  );
}

function decodeError(err: unknown, length: number, what = "msgpack message"): DecodeError {
  if (err instanceof DecodeError) return err;
  let why: string;
  if (err instanceof RangeError && /call stack/i.test(err.message)) why = "nested too deeply";
  else if (err instanceof Error) {
    if (/unexpected end/i.test(err.message)) why = "truncated (unexpected end of data)";
    else if (/end of buffer not reached/i.test(err.message)) why = "trailing bytes after the value";
    else why = err.message.length > 200 ? `${err.message.slice(0, 200)}…` : err.message;
  } else why = String(err);
  return new DecodeError("ERR_DECODE", `invalid ${what} (${length} bytes): ${why}`, { cause: err });
}

function unpack(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new DecodeError("ERR_DECODE", `msgpack input must be a Uint8Array, got ${typeof bytes}`);
  }
  if (bytes.length === 0)
    throw new DecodeError("ERR_DECODE", "invalid msgpack message (0 bytes): empty input");
  // A fresh plain view: bins decode as plain Uint8Array views (not Buffers, whose slice() does not copy),
  // and msgpackr caches its DataView on this object rather than on the caller's.
  const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return packr.unpack(src);
  } catch (err) {
    clearSource(); // msgpackr may not have cleaned up if it ran out of stack
    throw decodeError(err, bytes.length);
  }
}

/**
 * Encodes `msg` as msgpack. The result (a `Buffer` in Node) is never overwritten later, but it is a view into a pooled slab
 * (its `.buffer` is shared with other encoded messages, like `Buffer.from`): copy it (`.slice()`) before
 * transferring its ArrayBuffer.
 * @throws MyelinError ERR_ENCODE on functions, symbols, cycles, bigints beyond 64 bits.
 */
export function msgpackEncode(msg: unknown): Uint8Array {
  try {
    return packr.pack(msg);
  } catch (err) {
    throw encodeError(err);
  }
}

/**
 * Encodes `msg` as msgpack into msgpackr's reusable buffer, without allocating. The result is valid only
 * until the next msgpack encode of any kind in this process (this function, `msgpackCodec.encode`,
 * `encodeFrames`, or any other use of msgpackr): copy it into your own buffer at once. For hot paths that
 * copy into a frame anyway.
 * @throws MyelinError ERR_ENCODE as {@link msgpackEncode}.
 */
export function msgpackEncodeTransient(msg: unknown): Uint8Array {
  try {
    return packr.pack(msg, RESET_BUFFER_MODE);
  } catch (err) {
    throw encodeError(err);
  }
}

/**
 * The msgpack codec (the wire default). `encode` is {@link msgpackEncode}; `decode` returns plain objects,
 * arrays, numbers, bigints (for int64/uint64), strings, booleans, `null`, `undefined`, and plain
 * `Uint8Array` views into the input for bins (no copy: do not modify the input while you use them).
 * Decoding a blob reference (multi-frame body) fails: use {@link decodeFrames}.
 */
export const msgpackCodec: Codec = Object.freeze({
  name: "msgpack" as const,
  encode: msgpackEncode,
  decode: unpack,
});

// ---------------------------------------------------------------------------------------------------------
// Multi-frame form
// ---------------------------------------------------------------------------------------------------------

function isWalkable(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Returns `v`, or a copy of its path to the blobs with each blob replaced by a {@link BlobRef}. */
function extractBlobs(v: unknown, threshold: number, blobs: Uint8Array[], depth: number): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (v instanceof Uint8Array) {
    if (v.byteLength < threshold) return v;
    let index = blobs.indexOf(v);
    if (index < 0) index = blobs.push(v) - 1;
    return new BlobRef(index + 1);
  }
  if (depth > 1000) throw new RangeError("Maximum call stack size exceeded (nesting deeper than 1000)");
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = extractBlobs(x, threshold, blobs, depth + 1);
      if (y !== x) {
        out ??= v.slice();
        out[i] = y;
      }
    }
    return out ?? v;
  }
  if (!isWalkable(v)) return v;
  let out: Record<string, unknown> | undefined;
  const o = v as Record<string, unknown>;
  for (const k in o) {
    const x = o[k];
    const y = extractBlobs(x, threshold, blobs, depth + 1);
    if (y !== x) {
      out ??= { ...o };
      out[k] = y;
    }
  }
  return out ?? v;
}

/**
 * Encodes `msg` as one or more frames: `frames[0]` is the msgpack body, in which every `Uint8Array` of at
 * least `blobThreshold` bytes (anywhere in plain objects and arrays) is replaced by a blob reference;
 * `frames[1..]` are those `Uint8Array`s themselves, not copied (the same objects, each once even if used
 * twice). Without such blobs the result is `[body]`, and the body is exactly `msgpackCodec.encode(msg)`.
 * `msg` is not modified. The body is never overwritten later (see {@link msgpackEncode}). The walk costs a
 * little; when the message's type has `blobFields === false`, `[msgpackEncode(msg)]` gives the same frames.
 * @param blobThreshold size in bytes from which a `Uint8Array` gets its own frame (default 16384).
 * @throws MyelinError ERR_ENCODE as {@link msgpackEncode}; ERR_INVALID_ARGUMENT on a bad threshold.
 */
export function encodeFrames(msg: unknown, blobThreshold: number = DEFAULT_BLOB_THRESHOLD): Uint8Array[] {
  if (typeof blobThreshold !== "number" || !(blobThreshold >= 0)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `blobThreshold must be a number of bytes >= 0, got ${String(blobThreshold)}`,
    );
  }
  const blobs: Uint8Array[] = [];
  let body: unknown;
  try {
    body = extractBlobs(msg, blobThreshold, blobs, 0);
  } catch (err) {
    throw encodeError(err);
  }
  const head = msgpackEncode(body);
  if (blobs.length === 0) return [head];
  return [head, ...blobs];
}

/**
 * Decodes frames made by {@link encodeFrames}: blob references in the body become the frame `Uint8Array`s
 * themselves (no copy); other bins are views into `frames[0]`.
 * @throws DecodeError ERR_DECODE if there is no frame, the body is not valid msgpack, a reference points to
 * a frame that does not exist, or a frame is not referenced. Never any other error.
 */
export function decodeFrames(frames: readonly Uint8Array[]): unknown {
  if (!Array.isArray(frames) || frames.length === 0) {
    throw new DecodeError("ERR_DECODE", "a message needs at least one frame, got none");
  }
  const body = frames[0];
  if (frames.length === 1) return unpack(body as Uint8Array);
  for (let i = 0; i < frames.length; i++) {
    if (!(frames[i] instanceof Uint8Array)) {
      throw new DecodeError("ERR_DECODE", `frame ${i} of a message is not a Uint8Array`);
    }
  }
  const used = new Uint8Array(frames.length);
  frameContext = frames;
  frameUsed = used;
  let value: unknown;
  try {
    value = unpack(body as Uint8Array);
  } finally {
    frameContext = null;
    frameUsed = null;
  }
  for (let i = 1; i < frames.length; i++) {
    if (used[i] === 0) {
      throw new DecodeError(
        "ERR_DECODE",
        `frame ${i} of ${frames.length} is not referenced by the message body`,
      );
    }
  }
  return value;
}
