/**
 * The hub ⇄ hub protocol of a site: small msgpack maps (`v`, `t`) on the same control socket as
 * the nodes' messages, told apart by their `peer-` tags. Each hub shares only its own nodes'
 * records, numbered by its own version:
 *
 * - `peer-hello` — a hub that connected introduces itself; the other answers with its snapshot.
 * - `peer-snapshot` — every record of the sender's own nodes at `version`.
 * - `peer-delta` — the change of the sender's records from `from` to `version`.
 * - `peer-beat` — the sender is alive and at `version` (every lease / 4).
 * - `peer-want` — the receiver missed something (a gap in versions, or it had dropped the sender
 *   after its lease): send me your snapshot.
 *
 * Sans-IO: encode and decode only; `decodePeerMessage` checks every field and throws DecodeError
 * naming it.
 */
import { DecodeError } from "../errors.js";
import { decodeNodeRecord, encodeControl, type NodeRecord } from "../node/control-protocol.js";

/** What every hub ⇄ hub message carries about its sender. */
interface From {
  v: 1;
  /** Id of the sending hub instance. */
  hub: string;
  /** The sending hub's host name. */
  host: string;
}

/** Hub ⇄ hub messages. */
export type PeerMessage =
  | (From & { t: "peer-hello"; version: number; leaseMs: number })
  | (From & { t: "peer-snapshot"; version: number; nodes: NodeRecord[] })
  | (From & { t: "peer-delta"; from: number; version: number; upserts: NodeRecord[]; removed: string[] })
  | (From & { t: "peer-beat"; version: number })
  | (From & { t: "peer-want" });

/** True if an unpacked control map is a hub ⇄ hub message (its tag starts with `peer-`). */
export function isPeerMessage(o: Record<string, unknown>): boolean {
  return typeof o["t"] === "string" && o["t"].startsWith("peer-");
}

/** Encodes a hub ⇄ hub message. */
export function encodePeerMessage(m: PeerMessage): Buffer {
  return encodeControl(m as unknown as Parameters<typeof encodeControl>[0]);
}

function fail(what: string): never {
  throw new DecodeError("ERR_DECODE", `hub-to-hub message: ${what}`);
}
function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== "string") fail(`${k} must be a string`);
  return v;
}
function count(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) fail(`${k} must be a whole number >= 0`);
  return v;
}
function list(o: Record<string, unknown>, k: string): unknown[] {
  const v = o[k];
  if (!Array.isArray(v)) fail(`${k} must be an array`);
  return v;
}

/**
 * Checks an unpacked hub ⇄ hub message (see `unpackControl`, which checks the version).
 * @throws DecodeError ERR_DECODE naming the bad field
 */
export function decodePeerMessage(o: Record<string, unknown>): PeerMessage {
  const from: From = { v: 1, hub: str(o, "hub"), host: str(o, "host") };
  if (from.hub === "") fail("hub must not be empty");
  const t = o["t"];
  switch (t) {
    case "peer-hello":
      return { ...from, t, version: count(o, "version"), leaseMs: count(o, "leaseMs") };
    case "peer-snapshot":
      return {
        ...from,
        t,
        version: count(o, "version"),
        nodes: list(o, "nodes").map((x, i) => decodeNodeRecord(x, `nodes[${i}]`)),
      };
    case "peer-delta": {
      const m = {
        ...from,
        t,
        from: count(o, "from"),
        version: count(o, "version"),
        upserts: list(o, "upserts").map((x, i) => decodeNodeRecord(x, `upserts[${i}]`)),
        removed: list(o, "removed").map((x, i) => {
          if (typeof x !== "string") fail(`removed[${i}] must be a string`);
          return x;
        }),
      };
      if (m.version <= m.from) fail(`version ${m.version} must be greater than from ${m.from}`);
      return m;
    }
    case "peer-beat":
      return { ...from, t, version: count(o, "version") };
    case "peer-want":
      return { ...from, t };
    default:
      return fail(`unknown tag '${String(t)}'`);
  }
}
