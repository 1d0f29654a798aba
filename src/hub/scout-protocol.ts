/**
 * The datagram a hub announces itself with when LAN scouting is on (scout.ts): `MYSC`, a version
 * byte (1), a kind byte (`A` announce, `L` leaving), then a UTF-8 JSON map:
 *
 *     { "site": "plant-1", "host": "edge-2", "hub": "<hub id>",
 *       "endpoint": "tcp://10.0.0.2:7447", "key": "<CURVE public key, Z85, or \"\">",
 *       "intervalMs": 1000 }
 *
 * At most {@link MAX_ANNOUNCEMENT_BYTES} bytes. An announcement is a hint, never a credential:
 * the receiver peers only with a key it trusts, and the CURVE handshake proves the key.
 *
 * Sans-IO: encode and decode only; `decodeAnnouncement` checks the size, the magic, the version
 * and every field, and throws DecodeError naming what is wrong.
 */
import { DecodeError } from "../errors.js";

/** The largest datagram accepted or sent, in bytes. */
export const MAX_ANNOUNCEMENT_BYTES = 512;
/** The version this code writes and reads. */
export const SCOUT_VERSION = 1;

const MAGIC = Buffer.from("MYSC", "latin1");
const HEADER = MAGIC.length + 2;

/** What a hub announces. */
export interface Announcement {
  /** `announce`: here I am (every interval); `leave`: this hub is stopping. */
  kind: "announce" | "leave";
  /** The site's name: hubs peer only within their site. */
  site: string;
  /** The announcing hub's host name. */
  host: string;
  /** The announcing hub's id. */
  hub: string;
  /** Where its peers connect (`tcp://ADDR:PORT`). */
  endpoint: string;
  /** Its host's CURVE public key (Z85, 40 characters), "" for a plain-text (`--insecure`) hub. */
  key: string;
  /** How often it announces, in ms (its entry expires after a few missed ones). */
  intervalMs: number;
}

/** Site and host names: 1-64 letters, digits, `_`, `.`, `-`. */
export const SITE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const HUB_ID = /^[A-Za-z0-9-]{1,64}$/;
const ENDPOINT = /^tcp:\/\/(?:[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:.]{2,45}\]):\d{1,5}$/;
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function fail(what: string): never {
  throw new DecodeError("ERR_DECODE", `scouting datagram: ${what}`);
}

function field(o: Record<string, unknown>, k: string, re: RegExp, what: string): string {
  const v = o[k];
  if (typeof v !== "string" || !re.test(v)) fail(`${k} must be ${what}`);
  return v;
}

/**
 * Encodes an announcement.
 * @throws DecodeError ERR_DECODE when a field is invalid or the datagram would be too large
 */
export function encodeAnnouncement(a: Announcement): Buffer {
  const body = Buffer.from(
    JSON.stringify({
      site: a.site,
      host: a.host,
      hub: a.hub,
      endpoint: a.endpoint,
      key: a.key,
      intervalMs: a.intervalMs,
    }),
    "utf8",
  );
  const out = Buffer.concat([MAGIC, Buffer.from([SCOUT_VERSION, a.kind === "announce" ? 0x41 : 0x4c]), body]);
  decodeAnnouncement(out); // what is sent is what a receiver accepts
  return out;
}

/**
 * Decodes and checks a datagram.
 * @throws DecodeError ERR_DECODE naming the first thing wrong (size, magic, version, field)
 */
export function decodeAnnouncement(d: Uint8Array): Announcement {
  if (d.length > MAX_ANNOUNCEMENT_BYTES) fail(`${d.length} bytes, more than ${MAX_ANNOUNCEMENT_BYTES}`);
  if (d.length < HEADER + 2) fail(`${d.length} bytes, too short`);
  const b = Buffer.from(d.buffer, d.byteOffset, d.length);
  if (!b.subarray(0, MAGIC.length).equals(MAGIC)) fail("not a Myelin announcement (no MYSC magic)");
  if (b[4] !== SCOUT_VERSION) fail(`version ${b[4]}, this hub reads version ${SCOUT_VERSION}`);
  const kind = b[5] === 0x41 ? "announce" : b[5] === 0x4c ? "leave" : fail(`unknown kind byte ${b[5]}`);
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(HEADER)));
  } catch (err) {
    fail(`the body is not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) fail("the body must be a JSON map");
  const m = o as Record<string, unknown>;
  const key = m["key"];
  if (typeof key !== "string" || (key !== "" && !Z85_KEY.test(key)))
    fail('key must be a 40-character Z85 CURVE key or "" (plain text)');
  const intervalMs = m["intervalMs"];
  if (
    typeof intervalMs !== "number" ||
    !Number.isInteger(intervalMs) ||
    intervalMs < 100 ||
    intervalMs > 600_000
  )
    fail("intervalMs must be a whole number of ms from 100 to 600000");
  const endpoint = field(m, "endpoint", ENDPOINT, "tcp://HOST:PORT");
  const port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
  if (port < 1 || port > 65535) fail(`endpoint port ${port} is not 1-65535`);
  return {
    kind,
    site: field(m, "site", SITE_NAME, "a site name (1-64 letters, digits, _ . -)"),
    host: field(m, "host", SITE_NAME, "a host name (1-64 letters, digits, _ . -)"),
    hub: field(m, "hub", HUB_ID, "a hub id (1-64 letters, digits, -)"),
    endpoint,
    key,
    intervalMs,
  };
}
