import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MyelinError, ValidationError } from "../errors.js";
import {
  defineMessage,
  defineService,
  t,
  typeSignature,
  type Duration,
  type Field,
  type MessageOf,
  type MessageType,
  type RequestOf,
  type ResponseOf,
  type Time,
  type ValidationIssue,
} from "./schema.js";

// ---- compile-time checks: these lines only need to type-check ----

const Inner = defineMessage("test_schema/Inner", { x: t.f64(), tag: t.optional(t.string()) });
const Outer = defineMessage("test_schema/Outer", {
  flag: t.bool(),
  n8: t.u8(),
  big: t.u64(),
  name: t.string(),
  data: t.bytes(),
  stamp: t.time(),
  period: t.duration(),
  fixed: t.array(t.f32(), { length: 3 }),
  items: t.array(t.msg(Inner), { maxLength: 4 }),
  inner: t.msg(Inner),
  mode: t.enum({ IDLE: 0, RUN: 5 }),
  maybe: t.optional(t.i32()),
});
type Outer = MessageOf<typeof Outer>;

{
  const ok: Outer = {
    flag: true,
    n8: 1,
    big: 2n,
    name: "n",
    data: new Uint8Array(1),
    stamp: { sec: 1, nanosec: 2 },
    period: { sec: 0, nanosec: 0 },
    fixed: [1, 2, 3],
    items: [{ x: 1 }],
    inner: { x: 2, tag: "t" },
    mode: 5,
  };
  const s: Time = ok.stamp;
  const d: Duration = ok.period;
  const m: 0 | 5 = ok.mode;
  const maybe: number | undefined = ok.maybe;
  const big: bigint = ok.big;
  // @ts-expect-error u64 is a bigint, not a number
  const bad1: Outer = { ...ok, big: 5 };
  // @ts-expect-error 3 is not an enum value
  const bad2: Outer = { ...ok, mode: 3 };
  // @ts-expect-error a required field is missing
  const bad3: Outer = { flag: true };
  void [s, d, m, maybe, big, bad1, bad2, bad3];
}

const Svc = defineService("test_schema/Svc", { a: t.i64() }, { ok: t.bool() });
{
  const q: RequestOf<typeof Svc> = { a: 1n };
  const r: ResponseOf<typeof Svc> = { ok: true };
  void [q, r];
}

// ---- runtime ----

function errorsOf(type: MessageType<unknown>, v: unknown): readonly ValidationIssue[] {
  const r = type.validate(v);
  assert.equal(r.ok, false, "expected invalid");
  return r.ok ? [] : r.errors;
}

/** Asserts through an annotated parameter (TS2775: assertion calls need explicitly typed names). */
function valid(type: MessageType<any>, v: unknown): void {
  type.assert(v);
}

function one(field: Field<unknown>, name: string): MessageType<unknown> {
  return defineMessage(`test_schema/${name}`, { v: field });
}

describe("field kinds", () => {
  const table: { kind: string; field: () => Field<unknown>; good: unknown[]; bad: unknown[] }[] = [
    { kind: "bool", field: () => t.bool(), good: [true, false], bad: [0, "true", null] },
    { kind: "u8", field: () => t.u8(), good: [0, 255], bad: [-1, 256, 1.5, "1", 1n, NaN] },
    { kind: "u16", field: () => t.u16(), good: [0, 65535], bad: [-1, 65536, 0.5] },
    { kind: "u32", field: () => t.u32(), good: [0, 4294967295], bad: [-1, 4294967296, 2.5] },
    { kind: "i8", field: () => t.i8(), good: [-128, 127], bad: [-129, 128, 0.1] },
    { kind: "i16", field: () => t.i16(), good: [-32768, 32767], bad: [-32769, 32768] },
    { kind: "i32", field: () => t.i32(), good: [-2147483648, 2147483647], bad: [2147483648, Infinity] },
    { kind: "f32", field: () => t.f32(), good: [0, -1.5, NaN, Infinity, 1e300], bad: ["1", 1n, null] },
    { kind: "f64", field: () => t.f64(), good: [0, NaN, -Infinity], bad: ["x", undefined, {}] },
    {
      kind: "u64",
      field: () => t.u64(),
      good: [0n, (1n << 64n) - 1n],
      bad: [5, -1n, 1n << 64n, "5"],
    },
    {
      kind: "i64",
      field: () => t.i64(),
      good: [-(1n << 63n), (1n << 63n) - 1n],
      bad: [0, 1n << 63n, -(1n << 63n) - 1n],
    },
    { kind: "string", field: () => t.string(), good: ["", "é"], bad: [1, null, ["a"]] },
    {
      kind: "bytes",
      field: () => t.bytes(),
      good: [new Uint8Array(0), Buffer.from("ab")],
      bad: [[1, 2], "AAEC", new Uint16Array(2), new ArrayBuffer(2)],
    },
    {
      kind: "time",
      field: () => t.time(),
      good: [
        { sec: 0, nanosec: 0 },
        { sec: -5, nanosec: 999999999 },
      ],
      bad: [
        { sec: 0 },
        { sec: 0, nanosec: 1e9 },
        { sec: 0.5, nanosec: 0 },
        { sec: 0, nanosec: -1 },
        { sec: 0, nanosec: 0, extra: 1 },
        { sec: 2 ** 31, nanosec: 0 },
        new Date(0),
        0,
      ],
    },
    { kind: "duration", field: () => t.duration(), good: [{ sec: -1, nanosec: 5 }], bad: [{ nanosec: 5 }] },
  ];
  for (const { kind, field, good, bad } of table) {
    test(kind, () => {
      const T: MessageType<unknown> = one(field(), `Kind_${kind}`);
      for (const v of good) {
        assert.deepEqual(T.validate({ v }), { ok: true }, `${kind} should accept ${String(v)}`);
        T.assert({ v });
      }
      for (const v of bad) {
        const errs = errorsOf(T, { v });
        assert.ok(errs.length >= 1, `${kind} should refuse ${String(v)}`);
        assert.match(errs[0]!.path, /^v(\.|$)/);
        assert.throws(() => T.assert({ v }), ValidationError);
      }
    });
  }

  test("reasons name the expected kind and what was found", () => {
    const F = defineMessage("test_schema/Reasons", {
      a: t.f64(),
      b: t.u64(),
      c: t.u8(),
      d: t.u8(),
      e: t.bytes(),
    });
    const errs = errorsOf(F, { a: "x", b: 5, c: 300, d: 1.5, e: [1] });
    assert.deepEqual(
      errs.map((e) => `${e.path}: ${e.reason}`),
      [
        'a: expected f64, got string "x"',
        "b: expected u64 (bigint), got number 5",
        "c: expected u8, got number 300 (out of range 0..255)",
        "d: expected u8, got number 1.5 (not an integer)",
        "e: expected bytes (Uint8Array), got array(1)",
      ],
    );
  });

  test("enum accepts only its values; the first is the default", () => {
    const E = defineMessage("test_schema/Enum", { level: t.enum({ OK: 0, WARN: 1, ERROR: 2 }) });
    valid(E, { level: 2 });
    const errs = errorsOf(E, { level: 3 });
    assert.equal(errs[0]!.reason, "expected one of OK=0, WARN=1, ERROR=2, got number 3");
    assert.equal(errorsOf(E, { level: "OK" }).length, 1);
    assert.deepEqual(E.create(), { level: 0 });
    const E2 = defineMessage("test_schema/Enum2", { level: t.enum({ DEBUG: 10, INFO: 20 }) });
    assert.deepEqual(E2.create(), { level: 10 });
  });

  test("fixed and bounded arrays", () => {
    const A = defineMessage("test_schema/Arrays", {
      fixed: t.array(t.f64(), { length: 3 }),
      bounded: t.array(t.u8(), { maxLength: 2 }),
      free: t.array(t.string()),
    });
    valid(A, { fixed: [1, 2, 3], bounded: [], free: ["a", "b", "c", "d"] });
    assert.equal(
      errorsOf(A, { fixed: [1, 2], bounded: [], free: [] })[0]!.reason,
      "expected exactly 3 elements, got 2",
    );
    assert.equal(
      errorsOf(A, { fixed: [1, 2, 3], bounded: [1, 2, 3], free: [] })[0]!.reason,
      "expected at most 2 elements, got 3",
    );
    const e = errorsOf(A, { fixed: [1, "2", 3], bounded: [], free: [] });
    assert.equal(e[0]!.path, "fixed[1]");
    assert.equal(errorsOf(A, { fixed: new Float64Array(3), bounded: [], free: [] })[0]!.path, "fixed");
    assert.equal(errorsOf(A, { fixed: [1, , 3], bounded: [], free: [] })[0]!.path, "fixed[1]");
  });

  test("optional fields may be absent or undefined, not null", () => {
    valid(Outer, Outer.create());
    const v = Outer.create({ maybe: 3 });
    assert.equal(v.maybe, 3);
    valid(Outer, { ...Outer.create(), maybe: undefined });
    const errs = errorsOf(Outer, { ...Outer.create(), maybe: null });
    assert.equal(errs[0]!.path, "maybe");
    assert.equal(errs[0]!.reason, "expected i32, got null");
    assert.equal(
      errorsOf(Outer as MessageType<unknown>, { ...Outer.create(), maybe: 1.5 })[0]!.path,
      "maybe",
    );
  });
});

describe("messages", () => {
  test("nested paths in errors", () => {
    const Center = defineMessage("test_schema/Center", { x: t.f64(), y: t.f64() });
    const Box = defineMessage("test_schema/Box", { center: t.msg(Center) });
    const Det = defineMessage("test_schema/Det", { bbox: t.msg(Box) });
    const Arr = defineMessage("test_schema/DetArray", { detections: t.array(t.msg(Det)) });
    const good = { bbox: { center: { x: 1, y: 2 } } };
    const bad = { bbox: { center: { x: "1", y: 2 } } };
    const errs = errorsOf(Arr, { detections: [good, good, bad] });
    assert.deepEqual(errs, [{ path: "detections[2].bbox.center.x", reason: 'expected f64, got string "1"' }]);
    assert.throws(
      () => Arr.assert({ detections: [good, good, bad] }, "/camera/detections"),
      (err: unknown) =>
        err instanceof ValidationError &&
        err.code === "ERR_VALIDATION" &&
        err.message ===
          '/camera/detections: invalid test_schema/DetArray: detections[2].bbox.center.x: expected f64, got string "1"',
    );
  });

  test("missing, unknown, and non-object values", () => {
    const P = defineMessage("test_schema/P", { x: t.f64(), y: t.f64() });
    assert.deepEqual(errorsOf(P, { x: 1 }), [{ path: "y", reason: "missing required field (f64)" }]);
    assert.deepEqual(errorsOf(P, { x: 1, y: 2, foo: 3 }), [
      { path: "foo", reason: "unknown field 'foo' in test_schema/P" },
    ]);
    assert.deepEqual(errorsOf(P, { x: 1, y: 2, "a b": 3 }), [
      { path: '["a b"]', reason: "unknown field 'a b' in test_schema/P" },
    ]);
    assert.deepEqual(errorsOf(P, null), [{ path: "", reason: "expected object (test_schema/P), got null" }]);
    assert.equal(errorsOf(P, [1, 2])[0]!.reason, "expected object (test_schema/P), got array(2)");
    assert.equal(errorsOf(P, new Date())[0]!.reason, "expected object (test_schema/P), got Date");
    assert.equal(errorsOf(P, Object.assign(Object.create({ x: 1 }) as object, { y: 2 })).length, 1);
    // null-prototype objects are fine
    valid(P, Object.assign(Object.create(null) as object, { x: 1, y: 2 }));
    assert.throws(
      () => P.assert(null),
      /invalid test_schema\/P: expected object \(test_schema\/P\), got null/,
    );
  });

  test("at most ten errors are reported", () => {
    const fields = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, t.u8()]));
    const Many = defineMessage("test_schema/Many", fields);
    const errs = errorsOf(Many, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f${i}`, -1])));
    assert.equal(errs.length, 10);
    assert.throws(() => Many.assert({}), /\(and 5 more\)/);
  });

  test("validate never throws, whatever the input", () => {
    const weird: unknown[] = [
      undefined,
      Symbol("s"),
      () => 1,
      new Proxy({}, {}),
      { flag: Symbol("x") },
      Object.create(null),
      { __proto__: { flag: true } },
      JSON.parse('{"__proto__": 1}'),
      new Map(),
      1n,
      {
        get flag() {
          throw new Error("getter");
        },
      },
      (() => {
        const r = Proxy.revocable({}, {});
        r.revoke();
        return r.proxy;
      })(),
    ];
    for (const w of weird) {
      assert.equal(Outer.validate(w).ok, false);
      assert.throws(() => Outer.assert(w), ValidationError);
    }
  });

  test("create() fills defaults and overlays init without touching it", () => {
    const v = Outer.create();
    assert.deepEqual(v, {
      flag: false,
      n8: 0,
      big: 0n,
      name: "",
      data: new Uint8Array(0),
      stamp: { sec: 0, nanosec: 0 },
      period: { sec: 0, nanosec: 0 },
      fixed: [0, 0, 0],
      items: [],
      inner: { x: 0 },
      mode: 0,
    });
    assert.ok(!("maybe" in v));
    const init = { inner: { x: 5 }, items: [{}, { tag: "b" }], stamp: { sec: 9 } };
    const w = Outer.create(init);
    assert.deepEqual(w.items, [{ x: 0 }, { x: 0, tag: "b" }]);
    assert.deepEqual(w.stamp, { sec: 9, nanosec: 0 });
    assert.deepEqual(init, { inner: { x: 5 }, items: [{}, { tag: "b" }], stamp: { sec: 9 } });
    assert.notEqual(w.inner, init.inner);
    // each create() returns fresh objects
    const a = Outer.create();
    const b = Outer.create();
    assert.notEqual(a.stamp, b.stamp);
    assert.notEqual(a.fixed, b.fixed);
    assert.notEqual(a.data, b.data);
    // bytes in init are used as they are
    const data = new Uint8Array(4);
    assert.equal(Outer.create({ data }).data, data);
    // unknown keys are kept so that validation catches typos
    const typo = Outer.create({ nmae: "x" } as never);
    assert.equal(Outer.validate(typo).ok, false);
  });

  test("scalar defaults", () => {
    const D = defineMessage("test_schema/Defaults", {
      w: t.f64({ default: 1 }),
      s: t.string({ default: "x" }),
      b: t.bool({ default: true }),
      n: t.u8({ default: 7 }),
      big: t.i64({ default: -3n }),
    });
    assert.deepEqual(D.create(), { w: 1, s: "x", b: true, n: 7, big: -3n });
    assert.deepEqual(D.create({ w: 0 }).w, 0);
    assert.equal(
      D.jsonSchema.properties &&
        (D.jsonSchema.properties as Record<string, { default?: unknown }>).w?.default,
      1,
    );
    assert.throws(() => t.u8({ default: 300 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.u64({ default: 5 as never }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.string({ default: 5 as never }), { code: "ERR_INVALID_ARGUMENT" });
  });

  test("blobFields", () => {
    assert.equal(Outer.blobFields, true);
    assert.equal(Inner.blobFields, false);
    const Nested = defineMessage("test_schema/NestedBlob", { o: t.optional(t.array(t.msg(Outer))) });
    assert.equal(Nested.blobFields, true);
  });

  test("types and fields are frozen", () => {
    assert.ok(Object.isFrozen(Outer));
    assert.ok(Object.isFrozen(Outer.fields));
    assert.ok(Object.isFrozen(Outer.fields.n8));
    assert.ok(Object.isFrozen(Outer.jsonSchema));
    assert.equal(Outer.kind, "message");
    assert.equal(Outer.fields.fixed?.kind, "array");
  });
});

describe("names and arguments", () => {
  test("type names must be pkg/Name", () => {
    for (const bad of [
      "Twist",
      "geometry_msgs/twist",
      "Geometry/Twist",
      "a/B/C",
      "a-b/C",
      "",
      "a/",
      "/B",
      "1a/B",
    ]) {
      assert.throws(
        () => defineMessage(bad, {}),
        (e: unknown) => e instanceof MyelinError && e.code === "ERR_INVALID_ARGUMENT",
        bad,
      );
    }
    for (const good of ["a/B", "geometry_msgs/Twist", "pkg2/Name_2", "x_y/ABC"]) defineMessage(good, {});
    assert.throws(() => defineService("bad", {}, {}), { code: "ERR_INVALID_ARGUMENT" });
  });

  test("field names and fields are checked", () => {
    assert.throws(() => defineMessage("test_schema/F1", { "a b": t.u8() }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => defineMessage("test_schema/F2", { constructor: t.u8() }), {
      code: "ERR_INVALID_ARGUMENT",
    });
    assert.throws(() => defineMessage("test_schema/F3", { _x: t.u8() }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => defineMessage("test_schema/F4", { x: { kind: "u8" } as never }), {
      code: "ERR_INVALID_ARGUMENT",
    });
    assert.throws(() => t.array(t.optional(t.u8())), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.optional(t.optional(t.u8())), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.array(t.u8(), { length: 2, maxLength: 3 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.array(t.u8(), { length: -1 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.msg({ name: "x/Y" } as never), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.enum({}), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => t.enum({ A: NaN }), { code: "ERR_INVALID_ARGUMENT" });
    defineMessage("test_schema/CamelOk", { frameId: t.string() });
  });

  test("services name their request and response types", () => {
    assert.equal(Svc.kind, "service");
    assert.equal(Svc.request.name, "test_schema/Svc_Request");
    assert.equal(Svc.response.name, "test_schema/Svc_Response");
    valid(Svc.request, { a: 1n });
    assert.throws(() => Svc.request.assert({ a: 1 }), ValidationError);
  });

  test("typeSignature tells structures apart", () => {
    const a = defineMessage("test_schema/Sig", { x: t.f64() });
    const b = defineMessage("test_schema/Sig", { x: t.f64() });
    const c = defineMessage("test_schema/Sig", { x: t.f32() });
    const d = defineMessage("test_schema/Sig", { x: t.f64({ default: 1 }) });
    assert.equal(typeSignature(a), typeSignature(b));
    assert.notEqual(typeSignature(a), typeSignature(c));
    assert.notEqual(typeSignature(a), typeSignature(d));
  });
});

describe("JSON Schema", () => {
  test("shape", () => {
    const s = Outer.jsonSchema as Record<string, any>;
    assert.equal(s.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.equal(s.title, "test_schema/Outer");
    assert.equal(s.type, "object");
    assert.equal(s.additionalProperties, false);
    assert.deepEqual(s.required, [
      "flag",
      "n8",
      "big",
      "name",
      "data",
      "stamp",
      "period",
      "fixed",
      "items",
      "inner",
      "mode",
    ]);
    assert.deepEqual(s.properties.flag, { type: "boolean" });
    assert.deepEqual(s.properties.n8, { type: "integer", minimum: 0, maximum: 255 });
    assert.deepEqual(s.properties.data, { type: "string", contentEncoding: "base64" });
    assert.equal(s.properties.big.anyOf[0].type, "string");
    assert.equal(s.properties.big.anyOf[1].type, "integer");
    assert.deepEqual(s.properties.fixed.minItems, 3);
    assert.deepEqual(s.properties.fixed.maxItems, 3);
    assert.equal(s.properties.items.maxItems, 4);
    assert.equal(s.properties.items.items.title, "test_schema/Inner");
    assert.equal(s.properties.items.items.$schema, undefined);
    assert.deepEqual(s.properties.inner.required, ["x"]);
    assert.equal(s.properties.stamp.title, "builtin_interfaces/Time");
    assert.deepEqual(s.properties.mode.oneOf, [
      { const: 0, title: "IDLE" },
      { const: 5, title: "RUN" },
    ]);
    assert.deepEqual(s.properties.maybe, { type: "integer", minimum: -2147483648, maximum: 2147483647 });
    assert.equal(Outer.jsonSchema, Outer.jsonSchema, "built once");
    JSON.stringify(s); // serialisable
  });
});
