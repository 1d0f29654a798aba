// The generated (new Function) writers and readers must agree with the closure ones on every input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { _setDecoderCodegen, decodeCompiled, decodeCompiledIn, MISMATCH } from "./compiled-decoder.js";
import { _setEncoderCodegen, encodeCompiledScratch, encodeCompiledTransient } from "./compiled.js";
import { msgpackCodec } from "./msgpack.js";
import { defineMessage, t, type MessageType } from "../msgs/index.js";

/** The same types under a fresh name each time, so each variant compiles its own writers and readers. */
function types(suffix: string): { Outer: MessageType<unknown>; Wide: MessageType<unknown> } {
  const Inner = defineMessage(`codec_codegen_${suffix}/Inner`, {
    x: t.f64(),
    y: t.f32(),
    tag: t.optional(t.string()),
  });
  const Outer = defineMessage(`codec_codegen_${suffix}/Outer`, {
    id: t.u32(),
    name: t.string(),
    data: t.bytes(),
    at: t.time(),
    a: t.msg(Inner),
    list: t.array(t.msg(Inner), { maxLength: 8 }),
    big: t.i64(),
    a_longer_field_name: t.u16(),
    flag: t.optional(t.bool()),
  });
  // 16 fields: over a fixmap's 15, so both sides keep the generic path.
  const fields: Record<string, ReturnType<typeof t.u8>> = {};
  for (let k = 0; k < 16; k++) fields[`f${k}`] = t.u8();
  const Wide = defineMessage(`codec_codegen_${suffix}/Wide`, fields);
  return { Outer: Outer, Wide: Wide };
}

_setEncoderCodegen(false);
_setDecoderCodegen(false);
const closure = types("closure");
_setEncoderCodegen(true);
_setDecoderCodegen(true);
const generated = types("generated");

const samples: unknown[] = [
  {
    id: 7,
    name: "arm",
    data: Uint8Array.of(1, 2, 3),
    at: { sec: 5, nanosec: 6 },
    a: { x: 1.5, y: 0.25 },
    list: [],
    big: -3n,
    a_longer_field_name: 300,
  },
  {
    id: 0xffffffff,
    name: "é".repeat(40),
    data: new Uint8Array(300),
    at: { sec: -1, nanosec: 999999999 },
    a: { x: -0, y: 3, tag: "t" },
    list: [
      { x: 1, y: 2 },
      { x: Number.MAX_VALUE, y: -1, tag: "" },
    ],
    big: 0x7fffffffffffffffn,
    a_longer_field_name: 0,
    flag: true,
  },
];

const encode = (type: MessageType<unknown>, v: unknown): Buffer =>
  Buffer.from(encodeCompiledTransient(type, v, Infinity)!);

test("generated writers write the same bytes as the closure writers", () => {
  for (const v of samples) assert.deepEqual(encode(generated.Outer, v), encode(closure.Outer, v));
  const wide = Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`f${k}`, k]));
  assert.deepEqual(encode(generated.Wide, wide), encode(closure.Wide, wide));
});

test("generated readers read what the closure readers read, in any key order", () => {
  for (const v of samples) {
    const bytes = encode(closure.Outer, v);
    const reversed = Buffer.from(
      msgpackCodec.encode(Object.fromEntries(Object.entries(v as object).reverse())),
    );
    for (const b of [bytes, reversed]) {
      const a = decodeCompiled(generated.Outer, b);
      assert.notEqual(a, MISMATCH);
      assert.deepEqual(a, decodeCompiled(closure.Outer, b));
      assert.ok(generated.Outer.validate(a).ok);
    }
  }
});

test("msgpackr's encoding (shorter key headers) decodes through the generic path", () => {
  for (const v of samples) {
    const b = Buffer.from(msgpackCodec.encode(v));
    assert.deepEqual(decodeCompiled(generated.Outer, b), decodeCompiled(closure.Outer, b));
    assert.notEqual(decodeCompiled(generated.Outer, b), MISMATCH);
  }
});

test("generated readers refuse what the closure readers refuse", () => {
  const bytes = encode(closure.Outer, samples[1]);
  // Every truncation, and every single-byte change, gets the same answer from both.
  for (let n = 0; n < bytes.length; n++) {
    const cut = bytes.subarray(0, n);
    assert.equal(decodeCompiled(generated.Outer, cut), MISMATCH, `cut at ${n}`);
    assert.equal(decodeCompiled(closure.Outer, cut), MISMATCH, `cut at ${n}`);
  }
  for (let k = 0; k < bytes.length; k++) {
    for (const flip of [0x01, 0x20, 0x80]) {
      const b = Buffer.from(bytes);
      b[k]! ^= flip;
      const g = decodeCompiled(generated.Outer, b);
      const c = decodeCompiled(closure.Outer, b);
      if (c === MISMATCH) assert.equal(g, MISMATCH, `byte ${k} ^ ${flip}`);
      else assert.deepEqual(g, c, `byte ${k} ^ ${flip}`);
    }
  }
});

test("messages decoded from one shared buffer are views that stay correct", () => {
  // Records of one batch frame share a buffer; the reader reuses its views over it.
  const one = encode(closure.Outer, samples[0]);
  const frame = Buffer.concat([Buffer.from([9, 9, 9]), one, one, Buffer.from([7])]);
  const a = decodeCompiled(generated.Outer, frame.subarray(3, 3 + one.length)) as { data: Uint8Array };
  const b = decodeCompiled(generated.Outer, frame.subarray(3 + one.length, 3 + 2 * one.length));
  assert.deepEqual([...a.data], [1, 2, 3]);
  assert.deepEqual(b, a);
  // A view that is not the whole message does not decode.
  assert.equal(decodeCompiled(generated.Outer, frame.subarray(3, 3 + one.length + 1)), MISMATCH);
});

test("messages decoded by range from one frame equal those decoded from views", () => {
  const one = encode(closure.Outer, samples[0]);
  const frame = Buffer.concat([Buffer.from([9, 9, 9]), one, one, Buffer.from([7])]);
  const a = decodeCompiledIn(generated.Outer, frame, 3, 3 + one.length) as { data: Uint8Array };
  const b = decodeCompiledIn(closure.Outer, frame, 3 + one.length, 3 + 2 * one.length);
  assert.deepEqual(a, decodeCompiled(generated.Outer, one));
  assert.deepEqual(b, a);
  assert.equal(a.data.buffer, frame.buffer, "bytes fields are views into the frame");
  // A range that is not one whole message does not decode, nor does a cut one.
  assert.equal(decodeCompiledIn(generated.Outer, frame, 3, 3 + one.length + 1), MISMATCH);
  assert.equal(decodeCompiledIn(generated.Outer, frame, 3, 2 + one.length), MISMATCH);
  // Another frame (same length, other bytes) is read afresh, not through the first one's views.
  const other = Buffer.from(frame);
  other[3 + 1] = 0xff; // a key byte of the first field
  assert.equal(decodeCompiledIn(generated.Outer, other, 3, 3 + one.length), MISMATCH);
  assert.deepEqual(decodeCompiledIn(generated.Outer, frame, 3, 3 + one.length), a);
});

test("the scratch encoding is the transient one, in the first `length` bytes of a reused buffer", () => {
  for (const v of samples) {
    const want = Buffer.from(encodeCompiledTransient(generated.Outer, v, Infinity)!);
    const r = encodeCompiledScratch(generated.Outer, v, Infinity);
    assert.ok(r.buf !== null);
    assert.deepEqual(Buffer.from(r.buf.subarray(0, r.length)), want);
  }
  // A bytes field at the blob threshold: the message travels as frames.
  assert.equal(encodeCompiledScratch(generated.Outer, samples[0], 1).buf, null);
});
