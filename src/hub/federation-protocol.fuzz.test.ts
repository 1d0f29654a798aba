/**
 * Property tests of the hub ⇄ hub protocol (docs/fuzzing.md): every message round-trips, and any
 * bytes decode or throw DecodeError ERR_DECODE, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr/pack";
import { bytes, check, parseOrCoded } from "../../test/fuzz-helpers.js";
import { unpackControl, type NodeRecord } from "../node/control-protocol.js";
import {
  decodePeerMessage,
  encodePeerMessage,
  isPeerMessage,
  type PeerMessage,
} from "./federation-protocol.js";

const str = fc.string({ maxLength: 24 });
const num = fc.integer();
const rec = <T>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }, required?: (keyof T)[]): fc.Arbitrary<T> =>
  fc.record(fields, { noNullPrototype: true, ...(required ? { requiredKeys: required } : {}) });
const topicDecl = rec({
  topic: str,
  type: str,
  qos: rec({
    reliability: fc.constantFrom("reliable" as const, "best-effort" as const),
    durability: fc.constantFrom("volatile" as const, "transient-local" as const, "persistent" as const),
    depth: num,
  }),
});
const nodeRecord: fc.Arbitrary<NodeRecord> = rec<NodeRecord>(
  {
    id: str,
    name: str,
    pid: num,
    host: str,
    process: str,
    endpoint: str,
    remoteEndpoint: str,
    startedAt: num,
    pubs: fc.array(topicDecl, { maxLength: 2 }),
    subs: fc.array(topicDecl, { maxLength: 2 }),
    services: fc.array(rec({ service: str, type: str }), { maxLength: 2 }),
  },
  ["id", "name", "pid", "host", "process", "endpoint", "startedAt", "pubs", "subs", "services"],
);

const peerMessage: fc.Arbitrary<PeerMessage> = (() => {
  const from = { v: fc.constant(1 as const), hub: fc.string({ minLength: 1, maxLength: 12 }), host: str };
  const count = fc.nat();
  return fc.oneof(
    rec({ ...from, t: fc.constant("peer-hello" as const), version: count, leaseMs: count }),
    rec({
      ...from,
      t: fc.constant("peer-snapshot" as const),
      version: count,
      nodes: fc.array(nodeRecord, { maxLength: 3 }),
    }),
    rec({
      ...from,
      t: fc.constant("peer-delta" as const),
      from: count,
      version: count,
      upserts: fc.array(nodeRecord, { maxLength: 3 }),
      removed: fc.array(str, { maxLength: 3 }),
    }).map((m) => ({ ...m, version: m.from + 1 + (m.version % 5) })),
    rec({ ...from, t: fc.constant("peer-beat" as const), version: count }),
    rec({ ...from, t: fc.constant("peer-want" as const) }),
  );
})();

test("fuzz: hub-to-hub messages round-trip, and random bytes decode or throw ERR_DECODE", () => {
  check("hub ⇄ hub round trip", 300, [peerMessage], (m) => {
    const o = unpackControl(encodePeerMessage(m));
    assert.ok(isPeerMessage(o));
    assert.deepEqual(decodePeerMessage(o), m);
  });
  check("random hub-to-hub bytes", 1000, [bytes(96)], (b) => {
    parseOrCoded("decodePeerMessage", ["ERR_DECODE"], b, () => decodePeerMessage(unpackControl(b)));
  });
});

test("a delta that does not move forward, an empty hub id, a bad port range are refused with the field named", () => {
  const enc = (o: object) => unpackControl(new Packr({ useRecords: false }).pack(o));
  const base = { v: 1, hub: "h1", host: "a" };
  assert.throws(
    () => decodePeerMessage(enc({ ...base, t: "peer-delta", from: 3, version: 3, upserts: [], removed: [] })),
    { code: "ERR_DECODE", message: /version 3 must be greater than from 3/ },
  );
  assert.throws(() => decodePeerMessage(enc({ ...base, hub: "", t: "peer-beat", version: 1 })), {
    code: "ERR_DECODE",
    message: /hub must not be empty/,
  });
  assert.throws(() => decodePeerMessage(enc({ ...base, t: "peer-beat", version: -1 })), {
    code: "ERR_DECODE",
    message: /version must be a whole number/,
  });
});

test("near-miss maps (right tags and keys, wrong shapes) decode or throw ERR_DECODE", () => {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const keys = [
    "v",
    "t",
    "hub",
    "host",
    "version",
    "leaseMs",
    "nodes",
    "from",
    "upserts",
    "removed",
    "id",
    "pubs",
  ];
  const tags = fc.constantFrom(
    "peer-hello",
    "peer-snapshot",
    "peer-delta",
    "peer-beat",
    "peer-want",
    "register",
  );
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { maxDepth: 4, depthSize: "small" },
      fc.oneof(tags, fc.constant(1), fc.anything({ maxDepth: 0 })),
      fc.dictionary(fc.constantFrom(...keys), tie("tree"), { maxKeys: 8 }),
      fc.array(tie("tree"), { maxLength: 3 }),
    ),
  }));
  check("hub-to-hub near-misses", 2000, [tree], (v) => {
    const value = typeof v === "object" && v !== null && !Array.isArray(v) ? { ...v, v: 1 } : v;
    let b: Uint8Array;
    try {
      b = packr.pack(value);
    } catch {
      return;
    }
    parseOrCoded("decodePeerMessage", ["ERR_DECODE"], value, () => decodePeerMessage(unpackControl(b)));
  });
});
