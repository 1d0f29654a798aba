/**
 * The launch spec: golden good and bad specs under conformance/launch/, includes and environment
 * overrides, and the published JSON Schema kept in step with the validator's.
 *
 * Bad specs carry their expected problem in a header comment:
 *   # expect: [FILE:]LINE:COL FIELD: start of the message
 *   # env: NAME          (optional: the environment to apply)
 * Good specs may say `# order: a, b, c` (the process start order).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSpec, SpecError } from "./spec.js";
import { LAUNCH_SPEC_SCHEMA } from "./spec-schema.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DIR = join(ROOT, "conformance", "launch");

const specs = (kind: "good" | "bad"): string[] =>
  readdirSync(join(DIR, kind))
    .filter((f) => f.endsWith(".yaml") && !f.endsWith(".inc.yaml"))
    .sort()
    .map((f) => join(DIR, kind, f));

const header = (file: string, key: string): string | undefined =>
  new RegExp(`^# ${key}: (.*)$`, "m").exec(readFileSync(file, "utf8"))?.[1]?.trim();

for (const file of specs("bad")) {
  test(`bad spec ${basename(file)} is refused with file, line, column and field`, () => {
    const expect = header(file, "expect");
    assert.ok(expect, `${file} has no '# expect:' header`);
    const m = /^(?:(\S+\.yaml):)?(\d+):(\d+) (\S+): (.*)$/.exec(expect)!;
    assert.ok(m, `bad expect header: ${expect}`);
    const [, wantFile, line, col, field, message] = m;
    let err: unknown;
    try {
      loadSpec(file, { environment: header(file, "env") });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof SpecError, `expected a SpecError, got ${String(err)}`);
    assert.equal(err.code, "ERR_SPEC");
    assert.equal(err.problems.length, 1, err.message);
    const p = err.problems[0]!;
    assert.equal(basename(p.file), wantFile ?? basename(file), err.message);
    assert.equal(`${p.line}:${p.col}`, `${line}:${col}`, err.message);
    assert.equal(p.field, field);
    assert.ok(p.message.startsWith(message!), `message '${p.message}' should start with '${message}'`);
    assert.ok(err.message.includes(`${p.file}:${p.line}:${p.col}: ${p.field}: `), err.message);
  });
}

for (const file of specs("good")) {
  test(`good spec ${basename(file)} loads`, () => {
    const spec = loadSpec(file, { environment: header(file, "env") });
    const order = header(file, "order");
    if (order !== undefined)
      assert.deepEqual(
        spec.units.map((u) => u.name),
        order.split(",").map((s) => s.trim()),
      );
  });
}

test("durable-topic settings in a spec come out as store rules, in the order given", () => {
  const spec = loadSpec(join(DIR, "good", "with-topics.yaml"));
  assert.deepEqual(spec.topics, [
    { pattern: "/jobs/**", config: { mode: "work-queue", dedupWindowMs: 600000 } },
    {
      pattern: "/telemetry/*",
      config: { retention: { maxAgeMs: 604800000, maxBytes: 10000000000 }, fsync: "batch", batchMs: 5 },
    },
    { pattern: "/alerts", config: { retention: { maxMessages: null } } },
  ]);
});

test("includes merge under the including file, then the environment's overrides apply", () => {
  const spec = loadSpec(join(DIR, "good", "with-include.yaml"), { environment: "prod" });
  const unit = (n: string) => spec.units.find((u) => u.name === n)!;
  assert.deepEqual(unit("sensor").env, { RATE: "50", SITE: "lab" });
  assert.equal(unit("uploader").replicas, 2);
  assert.deepEqual(unit("logger").dependsOn, [{ unit: "sensor", condition: "ready" }]);
  assert.equal(spec.files.length, 2);
  const plain = loadSpec(join(DIR, "good", "with-include.yaml"));
  assert.equal(plain.units.find((u) => u.name === "uploader")!.replicas, 0);
  assert.deepEqual(plain.units.find((u) => u.name === "sensor")!.env, { RATE: "10", SITE: "lab" });
  assert.throws(() => loadSpec(join(DIR, "good", "with-include.yaml"), { environment: "prd" }), {
    code: "ERR_SPEC",
    message: /environment 'prd' is not defined \(did you mean 'prod'\?\); defined: prod/,
  });
});

test("composition, restart policy, limits and probes resolve with their defaults", () => {
  const spec = loadSpec(join(DIR, "good", "full.yaml"));
  const unit = (n: string) => spec.units.find((u) => u.name === n)!;
  const vision = unit("vision");
  assert.deepEqual(vision.nodes, ["camera", "detector"]);
  assert.equal(vision.kind, "module");
  assert.deepEqual(
    vision.modules.map((m) => [m.node, basename(m.path), m.export]),
    [
      ["camera", "noop.js", "default"],
      ["detector", "noop.js", "default"],
    ],
  );
  assert.deepEqual(vision.modules[0]!.parameters, { fps: 30 });
  assert.deepEqual(vision.dependsOn, [{ unit: "db", condition: "ready" }]);
  const db = unit("db");
  assert.deepEqual(db.command, ["node", "-e", "setInterval(()=>{},1000)"]);
  assert.equal(db.cwd, join(DIR, "good", "modules"));
  assert.deepEqual(db.env, { LEVEL: "debug", PORT: "5432", VERBOSE: "true" });
  assert.deepEqual(db.restart, {
    policy: "always",
    backoffMs: 50,
    maxBackoffMs: 2000,
    jitter: 0.1,
    resetAfterMs: 5000,
    crashLoopRestarts: 4,
    crashLoopWindowMs: 30000,
  });
  assert.deepEqual(db.limits, { memoryMb: 256, openFiles: 1024, nice: 5 });
  assert.deepEqual(db.placement, ["server", "edge"]);
  const api = unit("api");
  assert.equal(api.replicas, 3);
  assert.equal(api.restart.policy, "on-failure");
  assert.deepEqual(api.dependsOn, [
    { unit: "db", condition: "started" },
    { unit: "vision", condition: "ready" },
  ]);
  assert.deepEqual(api.health.probe, {
    kind: "service",
    target: ["/{node}/health"],
    intervalMs: 1000,
    timeoutMs: 500,
    failureThreshold: 2,
    initialDelayMs: 100,
  });
  assert.equal(unit("probe-http").health.probe?.failureThreshold, 3);
  assert.deepEqual(unit("probe-http").placement, ["cloud"]);
});

test("schema/myelin.schema.json is the validator's schema (run scripts/write-launch-schema.mjs after a change)", () => {
  const published = JSON.parse(readFileSync(join(ROOT, "schema", "myelin.schema.json"), "utf8")) as unknown;
  assert.deepEqual(published, JSON.parse(JSON.stringify(LAUNCH_SPEC_SCHEMA)));
});

test("the example system spec is valid", () => {
  const spec = loadSpec(join(ROOT, "examples", "system", "myelin.yaml"));
  assert.deepEqual(
    spec.units.map((u) => [u.name, u.nodes.join(",")]),
    [
      ["vision", "camera,detector"],
      ["monitor", "monitor"],
    ],
  );
  assert.equal(spec.units[0]!.health.probe?.kind, "service");
});
