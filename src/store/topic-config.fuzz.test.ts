/**
 * Property tests of the store config and topic config parsers (docs/fuzzing.md): valid settings
 * round-trip through JSON and YAML; anything else is ERR_BAD_CONFIG, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify as toYaml } from "yaml";
import { check, configValue, cyclic, parseOrCoded } from "../../test/fuzz-helpers.js";
import {
  parseStoreConfig,
  parseStoreConfigText,
  parseTopicConfig,
  type TopicConfig,
} from "./topic-config.js";

const limit = fc.oneof(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.constant(null));
const topicConfigArb: fc.Arbitrary<TopicConfig> = fc.record(
  {
    mode: fc.constantFrom("limits" as const, "work-queue" as const),
    retention: fc.record(
      { maxMessages: limit, maxBytes: limit, maxAgeMs: limit },
      { requiredKeys: [], noNullPrototype: true },
    ),
    fsync: fc.constantFrom("always" as const, "batch" as const, "never" as const),
    batchMs: fc.nat(),
    dedupWindowMs: fc.nat(),
  },
  { requiredKeys: [], noNullPrototype: true },
);
const patternArb = fc
  .array(fc.oneof(fc.constantFrom("*", "**"), fc.stringMatching(/^[a-z0-9_-]{1,6}$/)), {
    minLength: 1,
    maxLength: 4,
  })
  .map((ls) => "/" + ls.join("/"));
const KEYS = [
  "defaults",
  "topics",
  "mode",
  "retention",
  "fsync",
  "batchMs",
  "dedupWindowMs",
  "maxMessages",
  "maxBytes",
  "maxAgeMs",
  "/a",
  "/a/**",
];

test("fuzz: topic and store configs round-trip through JSON and YAML", () => {
  check("topic config round trip", 300, [topicConfigArb], (c) => {
    assert.deepEqual(parseTopicConfig(JSON.parse(JSON.stringify(c)), "t"), c);
  });
  check(
    "store config round trip",
    200,
    [
      topicConfigArb,
      fc.uniqueArray(fc.tuple(patternArb, topicConfigArb), { selector: (x) => x[0], maxLength: 4 }),
    ],
    (defaults, rules) => {
      const doc = { defaults, topics: Object.fromEntries(rules) };
      const got = parseStoreConfigText(toYaml(doc), "store.yaml");
      assert.deepEqual(got, { defaults, rules: rules.map(([pattern, config]) => ({ pattern, config })) });
    },
  );
});

test("fuzz: anything else is ERR_BAD_CONFIG", () => {
  check("arbitrary topic configs", 1500, [configValue(KEYS, 4)], (v) => {
    parseOrCoded("parseTopicConfig", ["ERR_BAD_CONFIG"], v, () => parseTopicConfig(v, "t"));
    parseOrCoded("parseStoreConfig", ["ERR_BAD_CONFIG"], v, () => parseStoreConfig(v, "store.yaml"));
  });
  check(
    "arbitrary store config text",
    800,
    [
      fc.string({ maxLength: 120 }),
      fc.nat(),
      fc.constantFrom(":", "&a", "*a", "- ", "\n  ", "{", "[", "!!binary", "? ", "<<: *a"),
    ],
    (text, at, ins) => {
      const yaml = "defaults:\n  mode: limits\ntopics:\n  /a: { fsync: batch }\n";
      const i = at % (yaml.length + 1);
      for (const t of [text, yaml.slice(0, i) + ins + yaml.slice(i), yaml.slice(0, i) + text]) {
        parseOrCoded("parseStoreConfigText", ["ERR_BAD_CONFIG"], t, () =>
          parseStoreConfigText(t, "store.yaml"),
        );
      }
    },
  );
});

test("fuzz regressions: values JSON cannot show are reported, not a TypeError", () => {
  // Error messages used JSON.stringify(value): a bigint threw "Do not know how to serialize a
  // BigInt", and a YAML alias to itself (`mode: &a [*a]`) "Converting circular structure to JSON".
  for (const v of [{ mode: 10n }, { batchMs: 10n }, { fsync: cyclic() }, { mode: cyclic() }, cyclic()]) {
    assert.throws(() => parseTopicConfig(v, "t"), { code: "ERR_BAD_CONFIG" });
  }
  assert.throws(() => parseStoreConfig({ defaults: cyclic() }, "s"), { code: "ERR_BAD_CONFIG" });
  assert.throws(() => parseStoreConfigText("defaults:\n  mode: &a [*a]\n", "store.yaml"), {
    code: "ERR_BAD_CONFIG",
    message: /store\.yaml: defaults\.mode: must be "limits" or "work-queue", got a list/,
  });
  assert.throws(() => parseStoreConfigText("defaults: [\n", "store.yaml"), {
    code: "ERR_BAD_CONFIG",
    message: /store\.yaml: not valid YAML/,
  });
  // A long value is shown shortened.
  assert.throws(
    () => parseTopicConfig({ mode: "x".repeat(100_000) }, "t"),
    (e: Error) => e.message.length < 300,
  );
});
