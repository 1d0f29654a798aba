/**
 * Property tests of the uplink configuration parser (docs/fuzzing.md): valid configurations
 * round-trip through YAML; any other value or text is ERR_BAD_CONFIG, never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify as toYaml } from "yaml";
import { check } from "../../test/fuzz-helpers.js";
import { MyelinError } from "../errors.js";
import { parseUplinkConfig, parseUplinkConfigText } from "./uplink-config.js";

const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const pattern = fc
  .array(fc.oneof(fc.stringMatching(/^[a-z0-9_.~-]{1,6}$/), fc.constantFrom("*", "**")), {
    minLength: 1,
    maxLength: 4,
  })
  .map((l) => "/" + l.join("/"))
  .filter((p) => !p.startsWith("/_"));
const site = fc.record({
  site: name,
  nats: fc.record({
    servers: fc.array(fc.constantFrom("nats://a:4222", "tls://b", "c:4222"), { minLength: 1, maxLength: 3 }),
  }),
  export: fc.record({ durable: fc.array(pattern, { minLength: 1, maxLength: 3 }) }),
  import: fc.array(pattern, { maxLength: 2 }),
  stream: fc.record({
    replicas: fc.constantFrom(1, 3, 5),
    duplicateWindowMs: fc.integer({ min: 1000, max: 86_400_000 }),
  }),
  catchUp: fc.record({
    maxInFlight: fc.integer({ min: 1, max: 65536 }),
    messagesPerSecond: fc.integer({ min: 0, max: 1e6 }),
  }),
});

function codedOrOk(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof MyelinError) || e.code !== "ERR_BAD_CONFIG") throw e;
  }
}

test("valid site configurations round-trip through YAML", () => {
  check("uplink round trip", 200, [site], (cfg) => {
    const a = parseUplinkConfig(cfg, "f");
    const b = parseUplinkConfigText(toYaml(cfg), "f");
    assert.deepEqual(b, a);
    assert.deepEqual(a.exportDurable, cfg.export.durable);
  });
});

test("any value or text is a configuration or ERR_BAD_CONFIG", () => {
  check("uplink anything", 300, [fc.anything()], (v) => codedOrOk(() => parseUplinkConfig(v, "f")));
  check("uplink mutated", 300, [site, fc.string(), fc.anything()], (cfg, key, v) =>
    codedOrOk(() => parseUplinkConfig({ ...cfg, [key]: v }, "f")),
  );
  check("uplink text", 300, [fc.string()], (t) => codedOrOk(() => parseUplinkConfigText(t, "f")));
});
