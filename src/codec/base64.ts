/** Base64 (RFC 4648) without I/O, using Node's Buffer when present and plain JS in browsers. */

interface BufferLike {
  byteLength(s: string, encoding: "utf8"): number;
  from(data: ArrayBufferLike, byteOffset?: number, length?: number): { toString(encoding: "base64"): string };
  from(data: string, encoding: "base64"): Uint8Array;
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
