import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeCompiled, MISMATCH } from "./compiled-decoder.js";
import { encodeCompiledTransient } from "./compiled.js";
import { msgpackCodec } from "./msgpack.js";
import {
  defineMessage,
  geometry_msgs,
  listTypes,
  lookupType,
  sensor_msgs,
  t,
  type MessageType,
} from "../msgs/index.js";

function normal(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v, (_k, x: unknown) =>
      typeof x === "bigint" ? `${x}n` : x instanceof Uint8Array ? [...x] : x,
    ),
  );
}

function both(type: MessageType<unknown>, v: unknown): Uint8Array[] {
  return [Buffer.from(msgpackCodec.encode(v)), Buffer.from(encodeCompiledTransient(type, v, Infinity)!)];
}

test("every standard type's default decodes in one pass from both encoders, valid", () => {
  for (const name of listTypes()) {
    const type = lookupType(name)!;
    const v = type.create();
    for (const bytes of both(type, v)) {
      const got = decodeCompiled(type, bytes);
      assert.notEqual(got, MISMATCH, name);
      assert.ok(type.validate(got).ok, name);
      assert.deepEqual(normal(got), normal(msgpackCodec.decode(bytes)), name);
    }
  }
});

const Inner = defineMessage("decoder_test/Inner", { x: t.f64(), tag: t.optional(t.string()) });
const All = defineMessage("decoder_test/All", {
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
  bytes: t.bytes(),
  time: t.time(),
  list: t.array(t.msg(Inner), { maxLength: 50 }),
  fixed: t.array(t.i32(), { length: 3 }),
  e: t.enum({ A: 0, B: 7 }),
  opt: t.optional(t.u32()),
});
const full = {
  b: true,
  u8: 255,
  u16: 65535,
  u32: 4294967295,
  i8: -128,
  i16: -32768,
  i32: -2147483648,
  f32: 1.5,
  f64: -0.1,
  u64: 18446744073709551615n,
  i64: -9223372036854775808n,
  s: "héllo wörld ✓ ".repeat(10),
  bytes: new Uint8Array(3000).fill(9),
  time: { sec: 1700000000, nanosec: 999999999 },
  list: Array.from({ length: 20 }, (_, i) => (i % 2 ? { x: i / 3, tag: `t${i}` } : { x: i })),
  fixed: [1, -31, 100000],
  e: 7,
  opt: 12,
};

test("edge values of every field kind decode exactly, bytes as views into the input", () => {
  for (const bytes of both(All, full)) {
    const got = decodeCompiled(All, bytes) as typeof full;
    assert.notEqual(got, MISMATCH);
    assert.deepEqual(normal(got), normal(full));
    assert.equal(got.bytes.buffer, bytes.buffer);
  }
});

test("values that break the schema are a MISMATCH, never a wrong value", () => {
  const bad: unknown[] = [
    { ...full, u8: 256 },
    { ...full, e: 3 },
    { ...full, fixed: [1, 2] },
    { ...full, list: Array.from({ length: 51 }, () => ({ x: 1 })) },
    { ...full, extra: 1 },
    { ...full, time: { sec: 1, nanosec: 1e9 } },
    { ...full, s: 5 },
    (({ u8: _drop, ...rest }) => rest)(full),
  ];
  for (const v of bad) assert.equal(decodeCompiled(All, Buffer.from(msgpackCodec.encode(v))), MISMATCH);
  const twist = Buffer.from(msgpackCodec.encode(geometry_msgs.Twist.create()));
  assert.equal(decodeCompiled(sensor_msgs.Image, twist), MISMATCH);
});

test("mutated and truncated bytes give MISMATCH or a valid message, never a throw (seeded fuzz)", () => {
  let seed = 99;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const seeds = [...both(All, full), ...both(geometry_msgs.Twist, geometry_msgs.Twist.create())];
  const types = [All, All, geometry_msgs.Twist, geometry_msgs.Twist] as MessageType<unknown>[];
  for (let n = 0; n < 20000; n++) {
    const k = n % seeds.length;
    const b = Buffer.from(seeds[k]!);
    for (let f = 0; f < 1 + Math.floor(rnd() * 3); f++)
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    const input = n % 5 === 0 ? b.subarray(0, Math.floor(rnd() * b.length)) : b;
    const got = decodeCompiled(types[k]!, input);
    if (got !== MISMATCH) assert.ok(types[k]!.validate(got).ok, `iteration ${n}`);
  }
});
