// The generated validators (new Function) must agree with the closure validators on every input.
import assert from "node:assert/strict";
import { test } from "node:test";
import { _setValidatorCodegen, defineMessage, t, type Field, type MessageType } from "./schema.js";

function defineBoth(fields: () => Record<string, Field<any>>): [MessageType<unknown>, MessageType<unknown>] {
  _setValidatorCodegen(false);
  const Point = defineMessage("test_codegen/Point", { x: t.f64(), y: t.f32(), z: t.optional(t.i16()) });
  const closure = defineMessage("test_codegen/T", {
    ...fields(),
    p: t.msg(Point),
    ps: t.array(t.msg(Point)),
  });
  _setValidatorCodegen(true);
  const Point2 = defineMessage("test_codegen/Point", { x: t.f64(), y: t.f32(), z: t.optional(t.i16()) });
  const generated = defineMessage("test_codegen/T", {
    ...fields(),
    p: t.msg(Point2),
    ps: t.array(t.msg(Point2)),
  });
  return [closure, generated];
}

const fields = () => ({
  b: t.bool(),
  u8: t.u8(),
  u16: t.u16(),
  u32: t.u32(),
  i8: t.i8(),
  i16: t.i16(),
  i32: t.i32(),
  f32: t.f32(),
  f64: t.f64(),
  u64: t.u64(),
  i64: t.i64(),
  s: t.string(),
  by: t.bytes(),
  tm: t.time(),
  du: t.duration(),
  fixed: t.array(t.u8(), { length: 2 }),
  bounded: t.array(t.array(t.i8(), { maxLength: 2 }), { maxLength: 3 }),
  e: t.enum({ A: -1, B: 0, C: 7 }),
  o: t.optional(t.string()),
  oa: t.optional(t.array(t.u64())),
});

const POOL: unknown[] = [
  0,
  -0,
  1,
  -1,
  7,
  255,
  256,
  -128,
  -129,
  65535,
  65536,
  32767,
  -32768,
  -32769,
  2 ** 31,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  0.5,
  NaN,
  Infinity,
  -Infinity,
  0n,
  -1n,
  (1n << 64n) - 1n,
  1n << 64n,
  -(1n << 63n),
  (1n << 63n) - 1n,
  "",
  "x",
  true,
  false,
  null,
  undefined,
  [],
  [1, 2],
  [[1], [2, 3]],
  [[1, 2, 3]],
  {},
  { sec: 1, nanosec: 2 },
  { sec: 1, nanosec: 1e9 },
  { sec: 1.5, nanosec: 0 },
  { x: 1, y: 2 },
  { x: 1, y: 2, z: 3 },
  { x: 1, y: 2, z: 1e6 },
  new Uint8Array(2),
  Buffer.from("a"),
  new Date(0),
  new Map(),
];

test("generated and closure validators agree", () => {
  const [closure, generated] = defineBoth(fields);
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pick = () => POOL[rand(POOL.length)];
  /** Changes one random spot of `v` (a leaf, an element, a key) and returns the changed copy. */
  const mutate = (v: unknown, depth: number): unknown => {
    if (depth > 4 || rand(6) === 0) return pick();
    if (Array.isArray(v)) {
      if (v.length === 0 || rand(6) === 0) return [...v, pick()];
      const out = [...v];
      const i = rand(out.length);
      out[i] = mutate(out[i], depth + 1);
      return out;
    }
    if (typeof v === "object" && v !== null && !(v instanceof Uint8Array)) {
      const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
      const keys = Object.keys(out);
      const r = rand(10);
      if (r === 0 || keys.length === 0) out[`extra${rand(3)}`] = pick();
      else if (r === 1) delete out[keys[rand(keys.length)]!];
      else {
        const k = keys[rand(keys.length)]!;
        out[k] = mutate(out[k], depth + 1);
      }
      return out;
    }
    return pick();
  };
  const base = closure.create({ ps: [{}, { z: 3 }], o: "s", oa: [1n] });
  assert.equal(closure.validate(base).ok, true);
  assert.equal(generated.validate(base).ok, true);
  let valid = 0;
  for (let i = 0; i < 20_000; i++) {
    const v = rand(10) === 0 ? base : mutate(base, 0);
    const a = closure.validate(v);
    const b = generated.validate(v);
    assert.equal(
      b.ok,
      a.ok,
      `disagree on ${JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x))}`,
    );
    if (!a.ok && !b.ok) assert.deepEqual(b.errors, a.errors);
    if (a.ok) valid++;
  }
  assert.ok(valid > 100, `only ${valid} valid samples`);
  for (const v of POOL) assert.equal(generated.validate(v).ok, closure.validate(v).ok);
});

test("field names cannot inject code", () => {
  // names are restricted to identifiers; anything else is refused before code generation
  assert.throws(() => defineMessage("test_codegen/Bad", { 'a"];process.exit(1);//': t.u8() }), {
    code: "ERR_INVALID_ARGUMENT",
  });
});

test("the generated validator refuses what is not a plain object, whatever its fields", () => {
  // It reads the first field before it checks the prototype: that read must not change the verdict.
  _setValidatorCodegen(true);
  const P = defineMessage("test_codegen/Plain", { x: t.f64(), y: t.optional(t.string()) });
  class WithGetters {
    get x(): number {
      return 1;
    }
  }
  class Throwing {
    get x(): number {
      throw new Error("getter of x");
    }
  }
  const nullProto = Object.assign(Object.create(null) as object, { x: 2 });
  const { proxy, revoke } = Proxy.revocable({ x: 1 }, {});
  revoke();
  assert.equal(P.validate({ x: 1 }).ok, true);
  assert.equal(P.validate(nullProto).ok, true);
  assert.equal(P.validate(new WithGetters()).ok, false);
  assert.equal(P.validate(new Throwing()).ok, false);
  assert.equal(P.validate(Object.create({ x: 1 })).ok, false);
  assert.equal(P.validate(proxy).ok, false);
  assert.equal(P.validate(new Map([["x", 1]])).ok, false);
  assert.equal(P.validate([1]).ok, false);
});
