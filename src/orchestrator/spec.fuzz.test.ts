/**
 * Property tests of the launch spec parser (docs/fuzzing.md): valid specs resolve to their nodes;
 * any text or value gives a spec or SpecError ERR_SPEC, never another error, and never touches
 * `Object.prototype`.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { stringify as toYaml } from "yaml";
import { check, configValue, parseOrCoded } from "../../test/fuzz-helpers.js";
import { loadSpec, parseSpecText } from "./spec.js";
import { validateAgainstSchema } from "./spec-schema.js";

const dir = mkdtempSync(join(tmpdir(), "myelin-spec-fuzz-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join(",");
/** Object.prototype has no new property (a spec once wrote `module` onto it). */
function unpolluted(): void {
  assert.equal(
    Object.getOwnPropertyNames(Object.prototype).sort().join(","),
    PROTO_KEYS,
    "Object.prototype was modified",
  );
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}

let n = 0;
function load(
  text: string,
  environment?: string,
): ReturnType<typeof parseOrCoded<ReturnType<typeof loadSpec>>> {
  const file = join(dir, `spec-${n++ % 8}.yaml`);
  writeFileSync(file, text);
  const r = parseOrCoded("loadSpec", ["ERR_SPEC"], text, () =>
    loadSpec(file, { checkFiles: false, environment }),
  );
  unpolluted();
  return r;
}

const KEYS = [
  "version",
  "include",
  "nodes",
  "topics",
  "environments",
  "module",
  "command",
  "args",
  "env",
  "cwd",
  "replicas",
  "process",
  "placement",
  "dependsOn",
  "readiness",
  "restart",
  "policy",
  "health",
  "probe",
  "http",
  "service",
  "limits",
  "memoryMb",
  "stopGraceMs",
  "crashLoop",
  "a",
  "b",
  "prod",
  "/a",
  "/a/**",
  "mode",
  "retention",
  "maxMessages",
  "fsync",
];

const nameArb = fc.stringMatching(/^[a-z][a-z0-9_-]{0,7}$/);
const nodeArb = fc.record(
  {
    command: fc.oneof(
      fc.constant("node -e 1"),
      fc.array(fc.constantFrom("node", "-e", "1", "x y"), { minLength: 1, maxLength: 3 }),
    ),
    replicas: fc.integer({ min: 0, max: 64 }),
    env: fc.dictionary(
      fc.stringMatching(/^[A-Z_]{1,6}$/),
      fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean()),
      { maxKeys: 3, noNullPrototype: true },
    ),
    readiness: fc.constantFrom("node", "process"),
    restart: fc.oneof(
      fc.constantFrom("always", "on-failure", "never"),
      fc.record(
        {
          policy: fc.constantFrom("always", "never"),
          backoffMs: fc.nat(),
          jitter: fc.double({ min: 0, max: 1, noNaN: true }),
        },
        { requiredKeys: [], noNullPrototype: true },
      ),
    ),
    stopGraceMs: fc.nat(),
    placement: fc.oneof(
      fc.constantFrom("edge"),
      fc.array(fc.constantFrom("edge", "cloud"), { maxLength: 2 }),
    ),
  },
  { requiredKeys: ["command"], noNullPrototype: true },
);
const specArb = fc
  .uniqueArray(fc.tuple(nameArb, nodeArb, fc.array(fc.nat(), { maxLength: 2 })), {
    selector: (x) => x[0],
    minLength: 1,
    maxLength: 5,
  })
  .map((entries) => {
    const nodes: Record<string, Record<string, unknown>> = {};
    entries.forEach(([name, node, deps], i) => {
      // depend only on earlier nodes: no cycle
      const on = i === 0 ? [] : [...new Set(deps.map((d) => entries[d % i]![0]))];
      nodes[name] = on.length > 0 ? { ...node, dependsOn: on } : node;
    });
    return { nodes };
  });

test("fuzz: a valid spec resolves to its nodes, in dependency order", () => {
  check("launch spec round trip", 80, [specArb], (spec) => {
    const r = load(toYaml(spec));
    assert.ok(r.ok, r.ok ? "" : r.error.message);
    const units = r.value.units;
    assert.deepEqual(units.map((u) => u.name).sort(), Object.keys(spec.nodes).sort());
    const at = new Map(units.map((u, i) => [u.name, i]));
    for (const u of units) {
      const raw = spec.nodes[u.name]!;
      assert.equal(u.replicas, raw["replicas"] ?? 1);
      for (const d of u.dependsOn)
        assert.ok(at.get(d.unit)! < at.get(u.name)!, `${d.unit} not before ${u.name}`);
      for (const [k, v] of Object.entries((raw["env"] ?? {}) as Record<string, unknown>))
        assert.equal(u.env[k], String(v));
    }
  });
});

test("fuzz: any text gives a spec or ERR_SPEC, never pollutes Object.prototype", () => {
  check("spec text", 250, [fc.string({ maxLength: 160 })], (text) => {
    parseOrCoded("parseSpecText", [], text, () => parseSpecText(text, "f.yaml"));
    load(text);
  });
  check(
    "spec values as YAML",
    300,
    [
      configValue(KEYS, 5),
      fc.option(fc.constantFrom("prod", "toString", "__proto__", "a"), { nil: undefined }),
    ],
    (v, env) => {
      let text: string | undefined;
      try {
        text = toYaml(v);
      } catch {
        return; // not representable
      }
      if (typeof text !== "string") return;
      load(text, env);
      parseOrCoded("validateAgainstSchema", [], v, () =>
        validateAgainstSchema({ file: "f", value: v, pos: new Map() }),
      );
    },
  );
  check(
    "valid spec, one part replaced",
    300,
    [specArb, fc.constantFrom(...KEYS), configValue(KEYS, 3), fc.nat()],
    (spec, key, x, pick) => {
      const names = Object.keys(spec.nodes);
      const doc = JSON.parse(JSON.stringify(spec)) as {
        nodes: Record<string, Record<string, unknown>>;
      } & Record<string, unknown>;
      if (pick % 3 === 0) doc[key] = x;
      else doc.nodes[names[pick % names.length]!]![key] = x;
      let text: string;
      try {
        text = toYaml(doc);
      } catch {
        return;
      }
      load(text, pick % 2 === 0 ? "prod" : undefined);
    },
  );
});

test("fuzz: anchors and aliases anywhere in a valid spec", () => {
  // YAML aliases can make a value contain itself; such a spec must be refused, not recursed into.
  check(
    "aliases",
    200,
    [
      specArb,
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(" &x", " *x", "&y ", " *y", " { p: *x }", " [*y]")), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.boolean(),
    ],
    (spec, edits, env) => {
      const doc = env
        ? {
            ...spec,
            environments: {
              prod: {
                nodes: Object.fromEntries(Object.keys(spec.nodes).map((k) => [k, { parameters: { q: 1 } }])),
              },
            },
          }
        : spec;
      let text = toYaml(doc);
      for (const [at, ins] of edits) {
        const i = at % (text.length + 1);
        text = text.slice(0, i) + ins + text.slice(i);
      }
      load(text, env ? "prod" : undefined);
    },
  );
});

test("fuzz regressions: `__proto__` keys stay fields, Object.prototype stays clean", () => {
  // nodes: { __proto__: { module: x.js } } merged into Object.prototype: every object then had
  // `module`, and the next node was refused with "give either module or command, not both".
  const r1 = load("nodes:\n  __proto__:\n    module: x.js\n  real:\n    command: [node, a.js]\n");
  assert.ok(
    !r1.ok && /nodes\.__proto__: node name '__proto__' is not valid/.test(r1.error.message),
    r1.ok ? "" : r1.error.message,
  );
  assert.ok(!/not both/.test(r1.ok ? "" : r1.error.message));
  // the same through an environment override and through topics
  load(
    "nodes:\n  a:\n    command: [node]\nenvironments:\n  prod:\n    nodes:\n      __proto__: { replicas: 3 }\n",
    "prod",
  );
  const r2 = load("nodes:\n  a:\n    command: [node]\ntopics:\n  __proto__: { mode: work-queue }\n");
  assert.ok(!r2.ok && /topics\.__proto__: a topic pattern starts with '\/'/.test(r2.error.message));
  // environments inherited from Object.prototype are not environments; nor dependencies
  for (const env of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    const r = load("nodes:\n  a:\n    command: [node]\n", env);
    assert.ok(!r.ok && /environment '.*' is not defined/.test(r.error.message), `--env ${env} accepted`);
  }
  const r3 = load("nodes:\n  a:\n    command: [node]\n    dependsOn: [toString]\n");
  assert.ok(!r3.ok && /depends on 'toString', which is not defined/.test(r3.error.message));
  // an environment variable named __proto__ is kept, not dropped
  const r4 = load("nodes:\n  a:\n    command: [node]\n    env: { __proto__: x, B: y }\n");
  assert.ok(r4.ok);
  assert.deepEqual(Object.entries(r4.value.units[0]!.env), [
    ["__proto__", "x"],
    ["B", "y"],
  ]);
});

test("fuzz regressions: a spec that contains itself through aliases is refused, not recursed into", () => {
  // An environment override merging a node that contains itself into another one overflowed the
  // stack (RangeError); without the override the cyclic parameters reached the runner.
  const r1 = load(
    "nodes:\n  a: &x\n    command: [node]\n    parameters: { p: *x }\nenvironments:\n  prod:\n    nodes:\n      a: &y\n        parameters: { p: *y }\n",
    "prod",
  );
  assert.ok(
    !r1.ok &&
      /4:22: nodes\.a\.parameters\.p: alias \*x refers to a node that contains it/.test(r1.error.message),
    r1.ok ? "" : r1.error.message,
  );
  const r2 = load("nodes:\n  a: &x\n    module: m.js\n    parameters: { p: [*x] }\n");
  assert.ok(
    !r2.ok && /nodes\.a\.parameters\.p\[0\]: alias \*x/.test(r2.error.message),
    r2.ok ? "" : r2.error.message,
  );
  // an alias to a node that does not contain it is fine
  const r3 = load(
    "nodes:\n  a:\n    command: [node]\n    env: &e { A: x }\n  b:\n    command: [node]\n    env: *e\n",
  );
  assert.ok(r3.ok, r3.ok ? "" : r3.error.message);
  assert.deepEqual(
    r3.value.units.map((u) => u.env),
    [{ A: "x" }, { A: "x" }],
  );
});
