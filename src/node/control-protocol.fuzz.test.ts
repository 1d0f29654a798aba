/**
 * Property tests of the node ⇄ hub control protocol (docs/fuzzing.md): every message round-trips,
 * and any bytes decode or throw DecodeError ERR_DECODE, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr/pack";
import { bytes, check, parseOrCoded } from "../../test/fuzz-helpers.js";
import {
  decodeHubToNode,
  decodeNodeToHub,
  encodeControl,
  type HubToNode,
  type NodeRecord,
  type NodeToHub,
} from "./control-protocol.js";

const str = fc.string({ maxLength: 24 });
// -0 travels as the integer 0 (msgpack has no negative-zero integer): not a round-trip concern here.
const num = fc
  .oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))
  .map((x) => (x === 0 ? 0 : x));
const rec = <T>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }, required?: (keyof T)[]): fc.Arbitrary<T> =>
  fc.record(fields, {
    noNullPrototype: true,
    ...(required ? { requiredKeys: required } : {}),
  });

const topicDecl = rec(
  {
    topic: str,
    type: str,
    qos: rec({
      reliability: fc.constantFrom("reliable", "best-effort"),
      durability: fc.constantFrom("volatile", "transient-local", "persistent"),
      depth: num,
    }),
    group: str,
  },
  ["topic", "type", "qos"],
);
const nodeRecord: fc.Arbitrary<NodeRecord> = rec<NodeRecord>(
  {
    id: str,
    name: str,
    pid: num,
    host: str,
    process: str,
    endpoint: str,
    startedAt: num,
    pubs: fc.array(topicDecl, { maxLength: 3 }),
    subs: fc.array(topicDecl, { maxLength: 3 }),
    services: fc.array(rec({ service: str, type: str, idempotent: fc.boolean() }, ["service", "type"]), {
      maxLength: 3,
    }),
    ready: fc.boolean(),
    instance: str,
    remoteEndpoint: str,
    unreachable: fc.array(rec({ node: str, endpoint: str, reason: str, since: num }), { maxLength: 2 }),
  },
  ["id", "name", "pid", "host", "process", "endpoint", "startedAt", "pubs", "subs", "services"],
);

const nodeToHub: fc.Arbitrary<NodeToHub> = fc.oneof(
  rec({ v: fc.constant(1 as const), t: fc.constant("register" as const), node: nodeRecord, req: num }),
  rec({ v: fc.constant(1 as const), t: fc.constantFrom("heartbeat" as const, "bye" as const), id: str }),
  rec({ v: fc.constant(1 as const), t: fc.constant("query" as const), req: num }),
  rec({ v: fc.constant(1 as const), t: fc.constant("sync" as const) }),
  rec({ v: fc.constant(1 as const), t: fc.constant("site" as const), req: num }),
);
const refusal = rec({
  kind: fc.constantFrom("pub" as const, "sub" as const, "service" as const),
  name: str,
  code: str,
  message: str,
});
const hubToNode: fc.Arbitrary<HubToNode> = fc.oneof(
  rec({
    v: fc.constant(1 as const),
    t: fc.constant("registered" as const),
    hub: str,
    refused: fc.array(refusal, { maxLength: 3 }),
    req: num,
  }),
  rec(
    {
      v: fc.constant(1 as const),
      t: fc.constant("registered" as const),
      hub: str,
      refused: fc.array(refusal, { maxLength: 1 }),
      req: num,
      site: rec({
        address: str,
        ports: fc
          .tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }))
          .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as [number, number]),
      }),
    },
    ["v", "t", "hub", "refused", "req"],
  ),
  rec({
    v: fc.constant(1 as const),
    t: fc.constant("delta" as const),
    delta: rec({
      hub: str,
      from: num,
      version: num,
      settled: fc.boolean(),
      upserts: fc.array(nodeRecord, { maxLength: 3 }),
      removed: fc.array(str, { maxLength: 3 }),
    }),
  }),
  rec({ v: fc.constant(1 as const), t: fc.constant("reregister" as const), hub: str }),
  rec(
    {
      v: fc.constant(1 as const),
      t: fc.constant("graph" as const),
      graph: rec({
        hub: str,
        version: num,
        settled: fc.boolean(),
        nodes: fc.array(nodeRecord, { maxLength: 3 }),
        removed: fc.array(str, { maxLength: 3 }),
      }),
      req: num,
    },
    ["v", "t", "graph"],
  ),
  rec({ v: fc.constant(1 as const), t: fc.constant("error" as const), message: str }),
  rec({ v: fc.constant(1 as const), t: fc.constant("site" as const), req: num, json: str }),
);

test("fuzz: control messages round-trip", () => {
  check("node → hub round trip", 300, [nodeToHub], (m) => {
    assert.deepEqual(decodeNodeToHub(encodeControl(m)), m);
  });
  check("hub → node round trip", 300, [hubToNode], (m) => {
    assert.deepEqual(decodeHubToNode(encodeControl(m)), m);
  });
});

test("fuzz: arbitrary bytes decode or throw ERR_DECODE", () => {
  check("random control bytes", 2000, [bytes(96)], (b) => {
    parseOrCoded("decodeNodeToHub", ["ERR_DECODE"], b, () => decodeNodeToHub(b));
    parseOrCoded("decodeHubToNode", ["ERR_DECODE"], b, () => decodeHubToNode(b));
  });
  // Well-formed msgpack of near-miss values: right tags and keys, wrong shapes anywhere below.
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const keys = [
    "v",
    "t",
    "node",
    "req",
    "id",
    "hub",
    "refused",
    "graph",
    "message",
    "kind",
    "name",
    "code",
    "pid",
    "host",
    "process",
    "endpoint",
    "startedAt",
    "pubs",
    "subs",
    "services",
    "topic",
    "type",
    "qos",
    "reliability",
    "durability",
    "depth",
    "version",
    "settled",
    "nodes",
    "removed",
    "ready",
    "instance",
    "idempotent",
    "group",
    "remoteEndpoint",
    "unreachable",
    "since",
    "reason",
    "site",
    "address",
    "ports",
    "delta",
    "from",
    "upserts",
    "leaseMs",
  ];
  const tags = fc.constantFrom(
    "register",
    "heartbeat",
    "bye",
    "query",
    "registered",
    "reregister",
    "graph",
    "error",
    "sync",
    "site",
    "json",
    "delta",
    "peer-hello",
    "peer-snapshot",
    "peer-delta",
    "peer-beat",
    "peer-want",
    "reliable",
    "volatile",
    "pub",
  );
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { maxDepth: 5, depthSize: "small" },
      fc.oneof(tags, fc.constant(1), fc.anything({ maxDepth: 0 })),
      fc.dictionary(fc.constantFrom(...keys), tie("tree"), { maxKeys: 8 }),
      fc.array(tie("tree"), { maxLength: 3 }),
    ),
  }));
  check("msgpack near-misses", 2000, [tree, fc.boolean()], (v, versioned) => {
    const value = versioned && typeof v === "object" && v !== null && !Array.isArray(v) ? { ...v, v: 1 } : v;
    let b: Uint8Array;
    try {
      b = packr.pack(value);
    } catch {
      return;
    }
    parseOrCoded("decodeNodeToHub", ["ERR_DECODE"], value, () => decodeNodeToHub(b));
    parseOrCoded("decodeHubToNode", ["ERR_DECODE"], value, () => decodeHubToNode(b));
  });
});

test("fuzz: huge declared lengths are refused at once", () => {
  const t0 = performance.now();
  for (const tag of [0xdb, 0xc6, 0xdd, 0xdf, 0xc9]) {
    const b = Uint8Array.of(tag, 0xff, 0xff, 0xff, 0xff, 1, 2, 3);
    assert.throws(() => decodeNodeToHub(b), { code: "ERR_DECODE" });
    // inside a valid-looking message: {v:1, t:"register", node: <huge array>}
    const m = Uint8Array.of(
      0x83,
      0xa1,
      0x76,
      0x01,
      0xa1,
      0x74,
      0xa8,
      ...Buffer.from("register"),
      0xa4,
      ...Buffer.from("node"),
      tag,
      0xff,
      0xff,
      0xff,
      0xff,
      1,
    );
    assert.throws(() => decodeNodeToHub(m), { code: "ERR_DECODE" });
  }
  assert.ok(performance.now() - t0 < 500);
});

test("msgpackr structured-clone references are refused while decoding", () => {
  // d6 69 00000001 (define object 1) 91 (array of 1) d6 70 00000001 (pointer to object 1): a list
  // holding itself. The field checks refused it before too; now msgpack decoding itself does.
  const cyc = Buffer.from("d66900000001" + "91" + "d67000000001", "hex");
  const msg = Buffer.concat([Buffer.from("83a17601a174a56572726f72a76d657373616765", "hex"), cyc]);
  assert.throws(() => decodeHubToNode(msg), { code: "ERR_DECODE", message: /structured clone/i });
});

test("a registered reply with a bad port range is refused with the field named", () => {
  const reg = {
    v: 1,
    t: "registered",
    hub: "h",
    refused: [],
    req: 1,
    site: { address: "10.0.0.1", ports: [9, 3] },
  };
  assert.throws(() => decodeHubToNode(new Packr({ useRecords: false }).pack(reg)), {
    code: "ERR_DECODE",
    message: /site\.ports/,
  });
});
