/**
 * CURVE key pairs (Curve25519, as ZeroMQ's CURVE and libsodium use them), written as 40-character
 * Z85 text. Generated and checked with Node's own X25519, so code outside the ZeroMQ carrier can
 * create and validate keys without loading ZeroMQ.
 */
import type { KeyObject } from "node:crypto";
import { MyelinError } from "../errors.js";
import { nodeCrypto, randomBytes } from "./node-crypto.js";
import { z85Decode, z85Encode } from "./z85.js";

/** A CURVE key pair as Z85 text (40 characters each). */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** Length of a CURVE key written in Z85, in characters. */
export const CURVE_KEY_LENGTH = 40;

/** The PKCS#8 DER prefix of a raw 32-byte X25519 private key (RFC 8410). */
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

/** A Node key object of a raw 32-byte X25519 secret key. */
export function x25519SecretKey(raw: Buffer): KeyObject {
  return nodeCrypto().createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, raw]),
    format: "der",
    type: "pkcs8",
  });
}

/** The raw 32-byte X25519 public key of a raw 32-byte secret key. */
function x25519PublicOf(secret: Buffer): Buffer {
  // The SPKI DER of an X25519 key ends with its 32 bytes. (Not a JWK export: Node 20 can deadlock
  // exporting a JWK while a collection runs the destructor of a key generation job.)
  const der = nodeCrypto().createPublicKey(x25519SecretKey(secret)).export({ format: "der", type: "spki" });
  return Buffer.from(der.subarray(der.length - 32));
}

/**
 * A new random key pair: 32 random bytes as the secret key (X25519 clamps it when used, as
 * libsodium's and ZeroMQ's key generation do) and its public key.
 */
export function generateCurveKeyPair(): CurveKeyPair {
  const secret = randomBytes(32);
  return { publicKey: z85Encode(x25519PublicOf(secret)), secretKey: z85Encode(secret) };
}

/**
 * The 32 bytes of a Z85 key, checked.
 * @param what names the key in the error, e.g. `MYELIN_HUB_KEY`
 * @throws MyelinError ERR_INVALID_ARGUMENT naming `what` when the text is not a 40-character Z85 key
 */
export function parseCurveKey(text: string, what: string): Buffer {
  if (typeof text !== "string" || text.length !== CURVE_KEY_LENGTH) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: a CURVE key is ${CURVE_KEY_LENGTH} characters of Z85 text (as 'myelin keys show' prints), got ${typeof text === "string" ? `${text.length} characters` : typeof text}`,
    );
  }
  try {
    return z85Decode(text);
  } catch (err) {
    throw new MyelinError("ERR_INVALID_ARGUMENT", `${what}: not a CURVE key: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Checks that `pair.publicKey` belongs to `pair.secretKey`.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming `what` when a key is malformed or they do not match
 */
export function checkCurveKeyPair(pair: CurveKeyPair, what: string): void {
  const pub = parseCurveKey(pair.publicKey, `${what} public key`);
  const sec = parseCurveKey(pair.secretKey, `${what} secret key`);
  if (!x25519PublicOf(sec).equals(pub)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: the public key does not belong to the secret key; create a new pair with 'myelin keys init --force'`,
    );
  }
}
