/**
 * Property tests of the bridge configuration parser (docs/fuzzing.md): valid configurations
 * round-trip through YAML; any other value or text is ERR_BAD_CONFIG, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify as toYaml } from "yaml";
import { check, configValue, cyclic, parseOrCoded } from "../../test/fuzz-helpers.js";
import { ruleArb } from "../../test/fuzz-mapping.js";
import "../msgs/index.js";
import { parseBridgeConfig, validateBridgeFile, type BridgeConfig } from "./bridge-config.js";
import type { MappingSpec } from "./mapping.js";

const opt = { requiredKeys: [] as never[], noNullPrototype: true };
const common = {
  sitePrefix: fc.constantFrom("site-a", "plant"),
  errorTopic: fc.constantFrom("/_gateway/errors", "/errs/bridge"),
  maxInFlight: fc.integer({ min: 1, max: 65535 }),
  queue: fc.record(
    {
      maxMessages: fc.integer({ min: 1, max: 1e9 }),
      maxBytes: fc.integer({ min: 1, max: 2 ** 40 }),
      whenFull: fc.constantFrom("block" as const, "reject" as const),
      fsync: fc.constantFrom("always" as const, "batch" as const, "never" as const),
    },
    opt,
  ),
  reconnect: fc.record(
    {
      initialMs: fc.integer({ min: 1, max: 1000 }),
      maxMs: fc.integer({ min: 1000, max: 60000 }),
      factor: fc.double({ min: 1, max: 10, noNaN: true }),
      connectTimeoutMs: fc.integer({ min: 100, max: 60000 }),
    },
    opt,
  ),
};
const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const mqtt = fc.record(
  {
    name,
    kind: fc.constant("mqtt" as const),
    url: fc.constantFrom("mqtt://h:1883", "mqtts://h", "ws://h/mqtt"),
    mapping: fc.array(ruleArb("mqtt"), { minLength: 1, maxLength: 3 }),
    ...common,
    clientId: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/),
    username: fc.constantFrom("u", "myelin"),
    passwordEnv: fc.constant("PW"),
    protocolVersion: fc.constantFrom(4 as const, 5 as const),
    cleanSession: fc.boolean(),
    keepaliveSec: fc.integer({ min: 0, max: 65535 }),
  },
  { requiredKeys: ["name", "kind", "url", "mapping"], noNullPrototype: true },
);
const nats = fc.record(
  {
    name,
    kind: fc.constant("nats" as const),
    url: fc.constantFrom("nats://h:4222", "h:4222", "tls://h"),
    // qos given: core NATS without a stream needs qos 0 (checked), so leave it to the defaults here
    mapping: fc.array(
      ruleArb("nats").map(({ qos: _q, ...r }) => r),
      { minLength: 1, maxLength: 3 },
    ),
    ...common,
    user: fc.constant("u"),
    tokenEnv: fc.constant("TOKEN"),
    jetstream: fc.record(
      {
        stream: fc.stringMatching(/^[A-Z]{1,8}$/),
        create: fc.boolean(),
        subjects: fc.constant(["site-a.>"]),
        maxAckPending: fc.integer({ min: 1, max: 1000 }),
      },
      { requiredKeys: ["stream"], noNullPrototype: true },
    ),
  },
  { requiredKeys: ["name", "kind", "url", "mapping"], noNullPrototype: true },
);
const amqp = fc.record(
  {
    name,
    kind: fc.constant("amqp" as const),
    url: fc.constantFrom("amqp://g:g@h:5672", "amqps://h"),
    mapping: fc.array(ruleArb("amqp"), { minLength: 1, maxLength: 3 }),
    ...common,
    exchange: fc.constantFrom("amq.topic", "myelin"),
    declareExchange: fc.boolean(),
    prefetch: fc.integer({ min: 1, max: 65535 }),
    heartbeatSec: fc.integer({ min: 0, max: 3600 }),
  },
  { requiredKeys: ["name", "kind", "url", "mapping"], noNullPrototype: true },
);
const fileArb = fc
  .uniqueArray(fc.oneof(mqtt, nats, amqp), { selector: (b) => b.name, minLength: 1, maxLength: 3 })
  .filter((bs) =>
    bs.every(
      (b) =>
        b.reconnect?.initialMs === undefined ||
        b.reconnect.maxMs === undefined ||
        b.reconnect.maxMs >= b.reconnect.initialMs,
    ),
  );

const KEYS = [
  "bridges",
  "name",
  "kind",
  "url",
  "mapping",
  "myelin",
  "external",
  "type",
  "qos",
  "direction",
  "format",
  "sitePrefix",
  "errorTopic",
  "queue",
  "maxMessages",
  "whenFull",
  "reconnect",
  "initialMs",
  "maxMs",
  "factor",
  "maxInFlight",
  "clientId",
  "protocolVersion",
  "jetstream",
  "stream",
  "subjects",
  "exchange",
  "prefetch",
];

test("fuzz: valid bridge configs round-trip through YAML", () => {
  check("bridge config round trip", 200, [fileArb], (bridges) => {
    const got = parseBridgeConfig(toYaml({ bridges }), "b.yaml");
    assert.equal(got.length, bridges.length);
    got.forEach((g: BridgeConfig, i) => {
      const want = bridges[i]!;
      for (const [k, v] of Object.entries(want)) {
        if (k === "mapping") continue;
        assert.deepEqual((g as unknown as Record<string, unknown>)[k], v, `bridges[${i}].${k}`);
      }
      // NATS fills each rule's qos in (JetStream or core); elsewhere the rules are as written
      assert.deepEqual(
        g.mapping.map(({ qos: _q, ...r }) => r),
        (want.mapping as MappingSpec[]).map(({ qos: _q, ...r }) => r),
      );
    });
  });
});

test("fuzz: any other value or text is ERR_BAD_CONFIG", () => {
  check("arbitrary bridge values", 800, [configValue(KEYS, 5), fc.boolean()], (v, wrap) => {
    const doc = wrap ? { bridges: [v] } : v;
    parseOrCoded("validateBridgeFile", ["ERR_BAD_CONFIG"], doc, () => validateBridgeFile(doc, "b.yaml"));
  });
  check(
    "valid bridge, one setting replaced",
    600,
    [fileArb, fc.constantFrom(...KEYS), configValue(KEYS, 2)],
    (bridges, key, x) => {
      const doc = JSON.parse(JSON.stringify({ bridges })) as { bridges: Record<string, unknown>[] };
      doc.bridges[0]![key] = x;
      parseOrCoded("validateBridgeFile", ["ERR_BAD_CONFIG"], doc, () => validateBridgeFile(doc, "b.yaml"));
    },
  );
  check("arbitrary bridge text", 300, [fc.string({ maxLength: 100 }), fc.nat()], (text, at) => {
    const yaml =
      "bridges:\n  - name: p\n    kind: mqtt\n    url: mqtt://h\n    mapping:\n      - { myelin: /a, external: a, type: std_msgs/String }\n";
    const i = at % (yaml.length + 1);
    for (const t of [text, yaml.slice(0, i) + text + yaml.slice(i)]) {
      parseOrCoded("parseBridgeConfig", ["ERR_BAD_CONFIG"], t, () => parseBridgeConfig(t, "b.yaml"));
    }
  });
});

test("fuzz: values JSON cannot show, and YAML aliases to themselves, are ERR_BAD_CONFIG", () => {
  const base = {
    name: "p",
    kind: "mqtt",
    url: "mqtt://h",
    mapping: [{ myelin: "/a", external: "a", type: "std_msgs/String" }],
  };
  for (const [k, v] of [
    ["maxInFlight", 10n],
    ["queue", cyclic()],
    ["mapping", cyclic()],
    ["url", cyclic()],
    ["sitePrefix", 5n],
  ] as const) {
    assert.throws(() => validateBridgeFile({ bridges: [{ ...base, [k]: v }] }), { code: "ERR_BAD_CONFIG" });
  }
  assert.throws(() => parseBridgeConfig("bridges: &b [*b]\n"), { code: "ERR_BAD_CONFIG" });
});
