/**
 * Z85 (ZeroMQ RFC 32): the printable encoding of CURVE keys, 5 characters for every 4 bytes.
 * Sans-IO and strict: a string of the wrong length or with a character outside the alphabet is
 * an error, never a silently different key.
 */
import { MyelinError } from "../errors.js";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/**
 * Encodes bytes as Z85.
 * @throws MyelinError ERR_INVALID_ARGUMENT when the length is not a multiple of 4
 */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `Z85 encodes multiples of 4 bytes, got ${bytes.length}`);
  }
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = ALPHABET[v % 85]! + chunk;
      v = Math.floor(v / 85);
    }
    out += chunk;
  }
  return out;
}

/**
 * Decodes Z85 text.
 * @throws MyelinError ERR_INVALID_ARGUMENT when the length is not a multiple of 5 or a character
 *   is not in the Z85 alphabet
 */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `Z85 text has a multiple of 5 characters, got ${text.length}`,
    );
  }
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const c = text.charCodeAt(i + j);
      const d = c < 128 ? DECODE[c]! : -1;
      if (d < 0) {
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `character ${JSON.stringify(text[i + j])} at ${i + j} is not Z85`,
        );
      }
      v = v * 85 + d;
    }
    if (v > 0xffffffff) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `Z85 group at ${i} is out of range`);
    }
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}
