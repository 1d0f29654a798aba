import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStoreConfig, parseTopicConfig, resolveTopicConfig, topicMatches } from "./topic-config.js";

test("topic patterns: exact, * for one level, ** for one or more", () => {
  assert.ok(topicMatches("/orders", "/orders"));
  assert.ok(!topicMatches("/orders", "/orders/x"));
  assert.ok(topicMatches("/jobs/*", "/jobs/resize"));
  assert.ok(!topicMatches("/jobs/*", "/jobs/resize/big"));
  assert.ok(!topicMatches("/jobs/*", "/jobs"));
  assert.ok(topicMatches("/jobs/**", "/jobs/resize/big"));
  assert.ok(topicMatches("/**", "/anything/at/all"));
  assert.ok(topicMatches("/a/*/c", "/a/b/c"));
});

test("settings layer: defaults, first matching rule, the topic's own; null lifts a limit", () => {
  const rules = [
    {
      pattern: "/jobs/**",
      config: parseTopicConfig({ mode: "work-queue", retention: { maxAgeMs: 1000 } }, "r1"),
    },
    { pattern: "/**", config: parseTopicConfig({ fsync: "never" }, "r2") },
  ];
  const defaults = parseTopicConfig({ retention: { maxMessages: 10 }, dedupWindowMs: 0 }, "d");
  const r = resolveTopicConfig(
    "/jobs/a",
    defaults,
    rules,
    parseTopicConfig({ retention: { maxMessages: null } }, "own"),
  );
  assert.deepEqual(r, {
    mode: "work-queue",
    retention: { maxAgeMs: 1000 },
    fsync: "always",
    batchMs: 5,
    dedupWindowMs: 0,
  });
  const other = resolveTopicConfig("/x", defaults, rules, undefined);
  assert.deepEqual(other.retention, { maxMessages: 10 });
  assert.equal(other.fsync, "never");
});

test("bad settings name the field and the fix", () => {
  assert.throws(
    () => parseTopicConfig({ mode: "queue" }, "store.yaml: topics./a"),
    /store\.yaml: topics\.\/a\.mode: must be "limits" or "work-queue"/,
  );
  assert.throws(
    () => parseTopicConfig({ retention: { maxMessages: -1 } }, "x"),
    /x\.retention\.maxMessages: must be an integer >= 1/,
  );
  assert.throws(() => parseTopicConfig({ fsnyc: "always" }, "x"), /x\.fsnyc: unknown setting/);
  assert.throws(() => parseStoreConfig({ topic: {} }, "store.yaml"), /store\.yaml: topic: unknown section/);
  assert.throws(
    () => parseStoreConfig({ topics: { orders: {} } }, "store.yaml"),
    /topics\.orders: a topic pattern starts with '\/'/,
  );
  assert.deepEqual(parseStoreConfig(undefined, "f"), { defaults: {}, rules: [] });
});
