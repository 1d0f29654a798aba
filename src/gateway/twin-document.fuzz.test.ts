/**
 * Property tests of the device-twin parsers and state functions (docs/fuzzing.md): a device's
 * request payload (`parseTwinRequest`) and a twin file (`twinFromFile`) parse or throw a coded
 * error, never another exception; files round trip; a merge patch and the delta agree; `__proto__`
 * is a key like any other.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { check, parseOrCoded } from "../../test/fuzz-helpers.js";
import {
  applyPatch,
  computeDelta,
  mergePatch,
  newTwin,
  parseTwinRequest,
  twinFromFile,
  twinToFile,
  type JsonObject,
} from "./twin-document.js";

const LIMITS = { maxStateBytes: 2048, maxDepth: 4 };
const REQUEST_CODES = ["ERR_PAYLOAD_TOO_LARGE", "ERR_INVALID_ARGUMENT", "ERR_VALIDATION"] as const;
const key = fc.oneof(
  fc.constantFrom("__proto__", "constructor", "state", "a", "b"),
  fc.string({ maxLength: 4 }),
);
const jsonValue = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 6 }),
    fc.array(tie("v"), { maxLength: 3 }),
    fc.dictionary(key, tie("v"), { maxKeys: 3, noNullPrototype: true }),
  ),
})).v;
const jsonObject = fc.dictionary(key, jsonValue, {
  maxKeys: 4,
  noNullPrototype: true,
}) as fc.Arbitrary<JsonObject>;

test("a request payload parses or is refused with a coded error", () => {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    jsonValue.map((v) => new TextEncoder().encode(JSON.stringify(v) ?? "")),
    fc
      .record(
        { state: jsonValue, clientToken: jsonValue, version: jsonValue, extra: jsonValue },
        { requiredKeys: [], noNullPrototype: true },
      )
      .map((v) => new TextEncoder().encode(JSON.stringify(v))),
    jsonObject.map((state) => new TextEncoder().encode(JSON.stringify({ state, clientToken: "t" }))),
  );
  check(
    "parseTwinRequest",
    2000,
    [fc.constantFrom<"reported" | "get">("reported", "get"), payload],
    (op, p) => {
      const r = parseOrCoded("parseTwinRequest", REQUEST_CODES, p, () =>
        parseTwinRequest("dev", op, p, LIMITS),
      );
      if (!r.ok) return;
      if (op === "reported") assert.equal(typeof r.value.state, "object");
      else assert.equal(r.value.state, undefined);
    },
  );
});

test("a valid report reads back its state, __proto__ keys included", () => {
  check("report round trip", 500, [jsonObject], (state) => {
    const text = JSON.stringify({ state, clientToken: "c1", version: 3 });
    const r = parseOrCoded("parseTwinRequest", REQUEST_CODES, text, () =>
      parseTwinRequest("dev", "reported", new TextEncoder().encode(text), {
        maxStateBytes: 1 << 20,
        maxDepth: 32,
      }),
    );
    assert.ok(r.ok);
    assert.equal(JSON.stringify(r.value.state), JSON.stringify(JSON.parse(text).state));
    assert.equal(r.value.clientToken, "c1");
    assert.equal(r.value.version, 3);
  });
  assert.deepEqual(Object.getPrototypeOf({}), Object.prototype, "nothing was written onto Object.prototype");
});

test("twin files round trip; any other text is ERR_STATE_CORRUPT", () => {
  check(
    "twinToFile/twinFromFile",
    500,
    [jsonObject, jsonObject, fc.nat(), fc.boolean()],
    (desired, reported, n, on) => {
      const t = { ...newTwin("d-1", n), desired, reported, version: n, connected: on, clientId: "c" };
      const back = twinFromFile(twinToFile(t), "d-1");
      assert.equal(JSON.stringify(back), JSON.stringify({ ...t, connected: false }));
    },
  );
  check(
    "twinFromFile garbage",
    1000,
    [
      fc.oneof(
        fc.string({ maxLength: 40 }),
        jsonValue.map((v) => JSON.stringify(v) ?? ""),
      ),
    ],
    (text) => {
      parseOrCoded("twinFromFile", ["ERR_STATE_CORRUPT"], text, () => twinFromFile(text, "d-1"));
    },
  );
});

test("after the device reports all of desired, the delta is empty; a patch never changes its target", () => {
  check("delta after merge", 1000, [jsonObject, jsonObject], (d, r) => {
    const desired = mergePatch({}, d); // as the twin holds it: no nulls
    const before = JSON.stringify(r);
    const reported = mergePatch(r, desired);
    assert.equal(JSON.stringify(r), before);
    assert.deepEqual(computeDelta(desired, reported), {});
    for (const k of Object.keys(computeDelta(desired, r)))
      assert.ok(Object.prototype.hasOwnProperty.call(desired, k));
  });
  const t = applyPatch(newTwin("p", 0), "reported", JSON.parse('{"__proto__": {"x": 1}}') as JsonObject, {
    now: 1,
    maxStateBytes: 100,
  });
  assert.deepEqual(Object.keys(t.reported), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(t.reported), Object.prototype);
  assert.deepEqual(
    computeDelta(JSON.parse('{"__proto__": {"x": 2}}') as JsonObject, t.reported),
    JSON.parse('{"__proto__": {"x": 2}}'),
  );
});
