/**
 * Property tests of the JSON codec and of reading a message from untrusted JSON against its type
 * (docs/fuzzing.md): round trips, and garbage is DecodeError ERR_DECODE (bytes) or ValidationError
 * ERR_VALIDATION (a JSON value that is not a valid message), never another error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, configValue, messageArb, parseOrCoded } from "../../test/fuzz-helpers.js";
import type { MessageType } from "../msgs/index.js";
import { goldenCases } from "./golden.js";
import { fromJson, jsonCodec, toJson } from "./json.js";

const TAGS = ["$bytes", "$bigint", "$float"];
const noNegZero = (x: number): number => (x === 0 ? 0 : x);
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double().map(noNegZero),
  fc.bigInt(),
  fc.string({ unit: "grapheme", maxLength: 16 }),
  fc.uint8Array({ maxLength: 32 }),
);
const { plain } = fc.letrec((tie) => ({
  plain: fc.oneof(
    { maxDepth: 4, depthSize: "small" },
    { weight: 3, arbitrary: leaf },
    fc.array(tie("plain"), { maxLength: 4 }),
    // A one-key object named like a tag is read as the tag (documented): leave those out.
    fc
      .dictionary(fc.string({ maxLength: 8 }), tie("plain"), { maxKeys: 5, noNullPrototype: true })
      .filter((o) => !(Object.keys(o).length === 1 && TAGS.includes(Object.keys(o)[0]!))),
  ),
}));

const types: MessageType<unknown>[] = goldenCases().map((c) => c.type);

test("fuzz: jsonCodec round-trips plain values", () => {
  check("jsonCodec round trip", 500, [plain], (v) => {
    assert.deepEqual(jsonCodec.decode(jsonCodec.encode(v)), v);
  });
});

test("fuzz: jsonCodec.decode of any bytes is a value or ERR_DECODE", () => {
  check("random JSON bytes", 2000, [bytes(64)], (b) => {
    parseOrCoded("jsonCodec.decode", ["ERR_DECODE"], b, () => jsonCodec.decode(b));
  });
  // JSON text with tags in odd places, and cut or patched JSON text.
  const tagged = fc.oneof(
    fc.json({ maxDepth: 3 }),
    fc.tuple(fc.constantFrom(...TAGS), fc.json({ maxDepth: 1 })).map(([t, j]) => `{"${t}":${j}}`),
  );
  check(
    "JSON text",
    1500,
    [tagged, fc.nat(), fc.constantFrom("", "{", "}", "]", '"', "\\", "\u0000", ",")],
    (text, at, ins) => {
      const i = at % (text.length + 1);
      for (const t of [text, text.slice(0, i), text.slice(0, i) + ins + text.slice(i)]) {
        const b = new TextEncoder().encode(t);
        parseOrCoded("jsonCodec.decode", ["ERR_DECODE"], t, () => jsonCodec.decode(b));
      }
    },
  );
});

for (const type of types) {
  test(`fuzz: ${type.name} from JSON`, () => {
    check(`${type.name}: toJson → text → fromJson round trip`, 200, [messageArb(type)], (m) => {
      const text = JSON.stringify(toJson(type, m));
      assert.deepEqual(fromJson(type, JSON.parse(text)), m);
    });
    // Untrusted JSON values: field names of the type half the time, anything as values.
    const keys = [...new Set(collectKeys(type))];
    check(`${type.name}: arbitrary JSON values`, 800, [configValue(keys, 5)], (v) => {
      const r = parseOrCoded(`fromJson(${type.name})`, ["ERR_VALIDATION"], v, () => fromJson(type, v));
      if (r.ok) assert.ok(type.validate(r.value).ok, "fromJson returned an invalid message");
    });
    // A valid JSON form with one field replaced by something arbitrary.
    check(
      `${type.name}: one field replaced`,
      600,
      [messageArb(type), fc.nat(), configValue(keys, 2)],
      (m, at, x) => {
        const j = toJson(type, m) as Record<string, unknown>;
        const ks = Object.keys(j);
        if (ks.length > 0) j[ks[at % ks.length]!] = x;
        const r = parseOrCoded(`fromJson(${type.name})`, ["ERR_VALIDATION"], j, () => fromJson(type, j));
        if (r.ok) assert.ok(type.validate(r.value).ok, "fromJson returned an invalid message");
      },
    );
  });
}

function collectKeys(type: MessageType<unknown>, depth = 0): string[] {
  const out: string[] = ["sec", "nanosec"];
  for (const [k, f] of Object.entries(type.fields)) {
    out.push(k);
    let g = f as { kind: string; of?: unknown; type?: MessageType<unknown> };
    while ((g.kind === "array" || g.kind === "optional") && g.of !== undefined) g = g.of as typeof g;
    if (g.kind === "msg" && g.type !== undefined && depth < 3) out.push(...collectKeys(g.type, depth + 1));
  }
  return out;
}

test("fuzz regressions: a `__proto__` key is an unknown field, not a silently dropped one", () => {
  const [twist] = types.filter((t) => t.name === "geometry_msgs/Twist");
  assert.ok(twist !== undefined);
  // JSON.parse makes "__proto__" an own key; it used to be assigned (setting the prototype), so
  // {"__proto__": 7} was accepted as a default Twist and {"__proto__": {...}} gave a baffling error.
  for (const text of [
    '{"__proto__": 7}',
    '{"__proto__": {"linear": {"x": 5}}}',
    '{"linear": {"__proto__": {"x": 1}}}',
  ]) {
    assert.throws(() => fromJson(twist, JSON.parse(text)), {
      code: "ERR_VALIDATION",
      message: /unknown field '__proto__'/,
    });
  }
  assert.equal(({} as Record<string, unknown>)["x"], undefined);
});
