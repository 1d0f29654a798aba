/** Base64 (RFC 4648) without I/O, using Node's Buffer when present and plain JS in browsers. */

interface BufferLike {
  byteLength(s: string, encoding: "utf8"): number;
  from(data: ArrayBufferLike, byteOffset?: number, length?: number): BufferView;
  from(data: string, encoding: "base64"): Uint8Array;
  allocUnsafe(size: number): Uint8Array;
}
interface BufferView {
  toString(encoding: "base64" | "latin1", start?: number, end?: number): string;
  write(s: string, offset: number, encoding: "base64"): number;
}
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;
LOOKUP["-".charCodeAt(0)] = 62;
LOOKUP["_".charCodeAt(0)] = 63;

/** Standard base64 with padding. */
export function base64Encode(bytes: Uint8Array): string {
  if (NodeBuffer !== undefined)
    return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return base64EncodeJs(bytes);
}

/** The plain-JS encoder {@link base64Encode} uses where there is no `Buffer` (browsers). */
export function base64EncodeJs(bytes: Uint8Array): string {
  let out = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]! + ALPHABET[(v >> 6) & 63]! + ALPHABET[v & 63]!;
  }
  if (i < n) {
    const v = (bytes[i]! << 16) | ((i + 1 < n ? bytes[i + 1]! : 0) << 8);
    out += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]!;
    out += i + 1 < n ? ALPHABET[(v >> 6) & 63]! + "=" : "==";
  }
  return out;
}

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** Length of `s` without its trailing `=` padding (at most two count; more is not base64). */
function unpaddedLength(s: string): number {
  let n = s.length;
  while (n > 0 && s.charCodeAt(n - 1) === 61 /* = */) n--;
  return n;
}

/**
 * Decodes base64 (standard or URL-safe alphabet, padding optional). Returns `undefined` if `s` is not
 * base64. Whitespace is not allowed.
 */
export function base64Decode(s: string): Uint8Array | undefined {
  if (NodeBuffer === undefined) return base64DecodeJs(s);
  const n = unpaddedLength(s);
  const pad = s.length - n;
  if (pad > 2 || n % 4 === 1 || (pad > 0 && s.length % 4 !== 0)) return undefined;
  // Node's decoder reads a character above U+00FF by its low byte ('\u0141' as 'A'): only
  // ASCII strings go on (one UTF-8 byte per character).
  if (NodeBuffer.byteLength(s, "utf8") !== s.length) return undefined;
  // On ASCII, Node's decoder skips any character outside both alphabets (and stops at an inner
  // '='), so it returns fewer bytes than a clean string of this length gives exactly when `s`
  // has one: each skipped character lowers floor(3n/4) by at least one for n % 4 ≠ 1. Two
  // regular expressions over a megabyte-long string cost ten times this decoding.
  const b = NodeBuffer.from(pad === 0 ? s : s.slice(0, n), "base64");
  if (b.byteLength !== Math.floor((n * 3) / 4)) return undefined;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The plain-JS decoder {@link base64Decode} uses where there is no `Buffer` (browsers); same rules. */
export function base64DecodeJs(s: string): Uint8Array | undefined {
  if (!BASE64.test(s)) return undefined;
  const body = s.replace(/=+$/, "");
  if (body.length % 4 === 1) return undefined;
  if (s.length !== body.length && s.length % 4 !== 0) return undefined;
  return decodeJs(body);
}

function decodeJs(body: string): Uint8Array {
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < body.length; i++) {
    acc = (acc << 6) | LOOKUP[body.charCodeAt(i)]!;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * Characters of base64 text turned into a string at a time by {@link base64DecodeBytes}: a multiple
 * of 4. Strings of 64 KiB made from 1.4 MB of text cost well under half of one string of all of it,
 * which cost several times the decoding itself (Node 20; measured, not explained).
 */
export const BASE64_CHUNK_CHARS = 65536;

/**
 * Text up to this many characters is decoded by {@link base64DecodeBytes} in JS, straight from the
 * bytes (no string, no call into Node), which is faster for short payloads.
 */
export const BASE64_JS_MAX_CHARS = 1024;

/** Decodes `src[start, start + n)` (no padding) into `out`, as {@link base64DecodeJs} does; false if not base64. */
function decodeBytesJs(src: Uint8Array, start: number, n: number, out: Uint8Array): boolean {
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = start; i < start + n; i++) {
    const c = src[i]!;
    const v = c < 128 ? LOOKUP[c]! : -1;
    if (v < 0) return false;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return true;
}

/**
 * Decodes base64 text held as bytes (`src[start, end)`, one byte per character, e.g. the inside of
 * a JSON string in a UTF-8 payload) without making one string of all of it: short text in JS,
 * longer text with Node's decoder a chunk at a time ({@link BASE64_CHUNK_CHARS}), into
 * one buffer of the decoded size that `alloc(size)` gives (by default a new one; a caller may lend
 * shared memory to fill, see `Publisher.loan`). Accepts and refuses exactly what
 * {@link base64Decode} does for the same text read as Latin-1: standard or URL-safe alphabet,
 * padding optional, nothing else (a byte above 0x7F is refused). Returns the decoded bytes (the
 * buffer `alloc` gave), or `undefined` when the text is not base64; `alloc` is called only for text
 * of a possible length, and when a bad character is found after it, its buffer is not used (give
 * back what `alloc` lent).
 */
export function base64DecodeBytes(
  src: Uint8Array,
  start: number,
  end: number,
  alloc: (size: number) => Uint8Array = defaultAlloc,
): Uint8Array | undefined {
  let n = end - start;
  while (n > 0 && src[start + n - 1] === 61 /* = */) n--;
  const pad = end - start - n;
  if (pad > 2 || n % 4 === 1 || (pad > 0 && (end - start) % 4 !== 0)) return undefined;
  const out = alloc(Math.floor((n * 3) / 4));
  if (n <= BASE64_JS_MAX_CHARS || NodeBuffer === undefined)
    return decodeBytesJs(src, start, n, out) ? out : undefined;
  const text = NodeBuffer.from(src.buffer, src.byteOffset, src.byteLength);
  const into = NodeBuffer.from(out.buffer, out.byteOffset, out.byteLength);
  let o = 0;
  for (let i = start; i < start + n; i += BASE64_CHUNK_CHARS) {
    const j = Math.min(start + n, i + BASE64_CHUNK_CHARS);
    // Node's decoder skips a character outside both alphabets (and stops at an '='), so a chunk
    // decodes to fewer than floor(3 × length / 4) bytes exactly when it holds one, as in
    // base64Decode (every chunk but the last is a multiple of 4 characters long).
    const want = Math.floor(((j - i) * 3) / 4);
    if (into.write(text.toString("latin1", i, j), o, "base64") !== want) return undefined;
    o += want;
  }
  return out;
}

/** A new buffer, uninitialised where Node's `Buffer` is there; a plain Uint8Array as base64Decode's. */
function defaultAlloc(size: number): Uint8Array {
  if (NodeBuffer === undefined) return new Uint8Array(size);
  const b = NodeBuffer.allocUnsafe(size);
  return new Uint8Array(b.buffer, b.byteOffset, size);
}
