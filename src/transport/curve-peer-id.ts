/**
 * Ties a CURVE connection's routing id to its client key, so a listener can name who sent each
 * message. ZeroMQ's ZAP handler sees the client key of a handshake but not the routing id the
 * client chose, and a ROUTER names peers by that routing id only; so a client proves the key it
 * claims inside the routing id itself:
 *
 *     <client public key, Z85, 40 chars> <nonce, 16 hex> <tag, 43 base64url>
 *     tag = HMAC-SHA256(X25519(client secret, listener public), "myelin-curve-peer-id" ‖ nonce)
 *
 * Only the holder of the client secret key (or of the listener's secret key) can compute the tag,
 * so a trusted client cannot claim another client's key. The routing id travels inside the
 * encrypted CURVE handshake, so an eavesdropper never sees one to replay, and ZeroMQ refuses a
 * second connection with a routing id already connected.
 */
import { nodeCrypto, randomBytes } from "./node-crypto.js";
import type { CurveKeyPair } from "./curve-key.js";
import { CURVE_KEY_LENGTH, parseCurveKey, x25519SecretKey } from "./curve-key.js";

const LABEL = "myelin-curve-peer-id";
const NONCE_HEX = 16;
const TAG_CHARS = 43;

function shared(secretZ85: string, publicZ85: string): Buffer {
  const sec = parseCurveKey(secretZ85, "secret key");
  const pub = parseCurveKey(publicZ85, "public key");
  return nodeCrypto().diffieHellman({
    privateKey: x25519SecretKey(sec),
    publicKey: nodeCrypto().createPublicKey({
      key: { kty: "OKP", crv: "X25519", x: pub.toString("base64url") },
      format: "jwk",
    }),
  });
}

function tag(secret: Buffer, nonce: string): string {
  return nodeCrypto().createHmac("sha256", secret).update(LABEL).update(nonce).digest("base64url");
}

/** A fresh routing id for a client with `keys` connecting to the listener whose key is `serverKey`. */
export function curvePeerId(keys: CurveKeyPair, serverKey: string): string {
  const nonce = randomBytes(NONCE_HEX / 2).toString("hex");
  return keys.publicKey + nonce + tag(shared(keys.secretKey, serverKey), nonce);
}

/**
 * Checks a routing id made by {@link curvePeerId} on the listener whose secret key is
 * `listenerSecret`.
 * @returns the client public key (Z85) it proves, or undefined when the id proves nothing
 */
export function verifyCurvePeerId(id: Buffer, listenerSecret: string): string | undefined {
  if (id.length !== CURVE_KEY_LENGTH + NONCE_HEX + TAG_CHARS) return undefined;
  const text = id.toString("latin1");
  const key = text.slice(0, CURVE_KEY_LENGTH);
  const nonce = text.slice(CURVE_KEY_LENGTH, CURVE_KEY_LENGTH + NONCE_HEX);
  const given = Buffer.from(text.slice(CURVE_KEY_LENGTH + NONCE_HEX), "latin1");
  let expected: Buffer;
  try {
    expected = Buffer.from(tag(shared(listenerSecret, key), nonce), "latin1");
  } catch {
    return undefined; // not a key
  }
  return expected.length === given.length && nodeCrypto().timingSafeEqual(expected, given) ? key : undefined;
}
