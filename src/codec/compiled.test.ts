import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeCompiledTransient } from "./compiled.js";
import { msgpackCodec } from "./msgpack.js";
import { defineMessage, geometry_msgs, listTypes, lookupType, sensor_msgs, t } from "../msgs/index.js";

function roundTrip(type: Parameters<typeof encodeCompiledTransient>[0], msg: unknown): unknown {
  const bytes = encodeCompiledTransient(type, msg, Infinity);
  assert.ok(bytes !== null);
  return msgpackCodec.decode(Buffer.from(bytes));
}

test("every standard type's default value decodes back to itself", () => {
  for (const name of listTypes()) {
    const type = lookupType(name)!;
    const v = type.create();
    assert.deepEqual(roundTrip(type, v), msgpackCodec.decode(msgpackCodec.encode(v)), name);
  }
});

test("all field kinds, edge values, optional fields and nesting decode back", () => {
  const Inner = defineMessage("compiled_test/Inner", { x: t.f64(), tag: t.optional(t.string()) });
  const All = defineMessage("compiled_test/All", {
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
    dur: t.duration(),
    list: t.array(t.msg(Inner)),
    fixed: t.array(t.i32(), { length: 3 }),
    e: t.enum({ A: 0, B: 7 }),
    opt: t.optional(t.u32()),
  });
  const values = [
    All.create(),
    {
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
      s: "héllo wörld — ✓ ".repeat(40),
      bytes: new Uint8Array(70000).fill(7),
      time: { sec: 1700000000, nanosec: 999999999 },
      dur: { sec: -5, nanosec: 1 },
      list: Array.from({ length: 20 }, (_, i) => ({ x: i / 3, tag: i % 2 ? `t${i}` : undefined })),
      fixed: [1, -31, 100000],
      e: 7,
      opt: 12,
    },
  ];
  for (const v of values) {
    const got = roundTrip(All, v) as Record<string, unknown>;
    const want = msgpackCodec.decode(msgpackCodec.encode(v)) as Record<string, unknown>;
    // msgpackr keeps `key: undefined`; the compiled encoder leaves absent optional keys out.
    for (const k of Object.keys(want)) if (want[k] === undefined) delete want[k];
    const list = want["list"] as Record<string, unknown>[];
    for (const item of list) for (const k of Object.keys(item)) if (item[k] === undefined) delete item[k];
    assert.deepEqual(
      { ...got, bytes: [...(got["bytes"] as Uint8Array)] },
      { ...want, bytes: [...(want["bytes"] as Uint8Array)] },
    );
    assert.ok(All.validate(got).ok);
  }
});

test("a bytes field at or over the blob threshold makes the compiled encoder step aside", () => {
  const img = sensor_msgs.Image.create({ data: new Uint8Array(20000) });
  assert.equal(encodeCompiledTransient(sensor_msgs.Image, img, 16384), null);
  assert.notEqual(encodeCompiledTransient(sensor_msgs.Image, img, 32768), null);
});

test("the result is a view into a reused buffer: valid until the next call", () => {
  const a = encodeCompiledTransient(geometry_msgs.Twist, geometry_msgs.Twist.create(), Infinity)!;
  const copy = Buffer.from(a);
  encodeCompiledTransient(
    geometry_msgs.Twist,
    { linear: { x: 1, y: 2, z: 3 }, angular: { x: 4, y: 5, z: 6 } },
    Infinity,
  );
  assert.notDeepEqual(Buffer.from(a), copy);
});
