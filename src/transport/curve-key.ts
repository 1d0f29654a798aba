/**
 * CURVE key pairs (Curve25519, as ZeroMQ's CURVE and libsodium use them), written as 40-character
 * Z85 text. Generated and checked with Node's own X25519, so code outside the ZeroMQ carrier can
 * create and validate keys without loading ZeroMQ.
 */
import type { KeyObject } from "node:crypto";
import { MyelinError } from "../errors.js";
import { nodeCrypto } from "./node-crypto.js";
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

/** A new random key pair. */
export function generateCurveKeyPair(): CurveKeyPair {
  const { privateKey, publicKey } = nodeCrypto().generateKeyPairSync("x25519");
  const d = privateKey.export({ format: "jwk" }).d!;
  const x = publicKey.export({ format: "jwk" }).x!;
  return {
    publicKey: z85Encode(Buffer.from(x, "base64url")),
    secretKey: z85Encode(Buffer.from(d, "base64url")),
  };
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
  const derived = nodeCrypto().createPublicKey(x25519SecretKey(sec)).export({ format: "jwk" }).x;
  if (derived !== pub.toString("base64url")) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${what}: the public key does not belong to the secret key; create a new pair with 'myelin keys init --force'`,
    );
  }
}
