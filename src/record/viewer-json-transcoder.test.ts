import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeCompiled, encodeCompiledTransient, MISMATCH, msgpackCodec } from "../codec/index.js";
import { geometry_msgs, sensor_msgs, std_msgs, type MessageType } from "../msgs/index.js";
import { viewerJsonText } from "./viewer-json.js";
import { viewerJsonTranscoder } from "./viewer-json-transcoder.js";

/** A deterministic pseudo-random source. */
function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 4294967296;
  };
}

const out = Buffer.alloc(8192);

/**
 * The transcoder's bytes, when it takes a payload, are exactly viewerJsonText of what the compiled
 * decoder makes of it; it takes nothing the decoder refuses.
 */
function check(type: MessageType<unknown>, payload: Uint8Array, what: string): boolean {
  const tr = viewerJsonTranscoder(type)!;
  const n = tr(payload, out);
  const decoded = decodeCompiled(type, payload);
  if (n < 0) return false;
  assert.notEqual(decoded, MISMATCH, `${what}: taken by the transcoder, refused by the decoder`);
  assert.equal(out.toString("utf8", 0, n), viewerJsonText(type, decoded), what);
  return true;
}

test("strings: every ASCII character, escaped as JSON.stringify escapes it; other text goes the general way", () => {
  const tr = viewerJsonTranscoder(std_msgs.String)!;
  let all = "";
  for (let c = 0; c < 128; c++) all += String.fromCharCode(c);
  for (const data of ["", "hello", all, 'quote " and back \\ slash', "x".repeat(64), "y".repeat(70000)]) {
    const payload = encodeCompiledTransient(std_msgs.String, { data }, 1 << 30)!.slice();
    const taken = check(std_msgs.String, payload, JSON.stringify(data.slice(0, 40)));
    assert.equal(taken, data.length < 1000, `${data.length} chars: taken only when it fits`);
  }
  for (const data of ["wörld ✓", "\u2028", "😀"]) {
    const payload = msgpackCodec.encode({ data });
    assert.equal(tr(payload, out), -1, `${data}: not ASCII`);
    assert.notEqual(decodeCompiled(std_msgs.String, payload), MISMATCH);
  }
});

test("random messages of plain types match the decode-and-stringify path", () => {
  const rnd = prng(7);
  const types: MessageType<unknown>[] = [
    std_msgs.String,
    std_msgs.Bool,
    std_msgs.Int8,
    std_msgs.Int16,
    std_msgs.Int32,
    std_msgs.UInt8,
    std_msgs.UInt16,
    std_msgs.UInt32,
    std_msgs.Float32,
    std_msgs.Float64,
    std_msgs.Header,
    geometry_msgs.Twist,
    geometry_msgs.PoseStamped,
    geometry_msgs.TransformStamped,
  ];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const ints = [
    0,
    1,
    -1,
    127,
    -128,
    128,
    255,
    256,
    -32768,
    32767,
    65535,
    65536,
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 32 - 1,
  ];
  const floats = [
    0,
    -0,
    1.5,
    -0.1,
    1e21,
    1e-7,
    3.4e38,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    42,
    NaN,
    Infinity,
  ];
  let taken = 0;
  for (let round = 0; round < 3000; round++) {
    const type = pick(types);
    const msg = type.create() as Record<string, unknown>;
    // Fill every leaf with a random value of about the right kind (sometimes out of range).
    const fill = (v: Record<string, unknown>): void => {
      for (const k of Object.keys(v)) {
        const x = v[k];
        if (typeof x === "number") v[k] = rnd() < 0.5 ? pick(ints) : pick(floats) * (rnd() < 0.5 ? 1 : -1);
        else if (typeof x === "string")
          v[k] = String.fromCharCode(
            ...Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 128)),
          );
        else if (typeof x === "boolean") v[k] = rnd() < 0.5;
        else if (x !== null && typeof x === "object" && !Array.isArray(x)) fill(x as Record<string, unknown>);
      }
    };
    fill(msg);
    const payload = msgpackCodec.encode(msg);
    if (check(type, payload, `${type.name} #${round}`)) taken++;
    // The wire's own encoding, when the value is valid.
    if (type.validate(msg).ok) {
      const wire = encodeCompiledTransient(type, msg, 1 << 30)!.slice();
      if (check(type, wire, `${type.name} #${round} (wire)`)) taken++;
    }
  }
  assert.ok(taken > 1000, `most plain messages are transcoded (${taken})`);
});

test("another key order, a missing or extra field, trailing or cut bytes: not taken", () => {
  const tr = viewerJsonTranscoder(geometry_msgs.Vector3)!;
  const ok = msgpackCodec.encode({ x: 1, y: 2, z: 3 });
  assert.ok(tr(ok, out) > 0);
  for (const bad of [
    msgpackCodec.encode({ y: 2, x: 1, z: 3 }),
    msgpackCodec.encode({ x: 1, y: 2 }),
    msgpackCodec.encode({ x: 1, y: 2, z: 3, w: 4 }),
    msgpackCodec.encode({ x: 1, y: "2", z: 3 }),
    Buffer.concat([ok, Buffer.from([0])]),
    ok.subarray(0, ok.length - 1),
    new Uint8Array(0),
  ]) {
    assert.equal(tr(bad, out), -1);
  }
  assert.equal(tr(ok, Buffer.alloc(4)), -1, "does not fit: not taken");
});

test("types with arrays, bytes, 64-bit integers or optional fields have no transcoder", () => {
  assert.equal(viewerJsonTranscoder(sensor_msgs.Image), undefined);
  assert.equal(viewerJsonTranscoder(std_msgs.Int64), undefined);
  assert.equal(viewerJsonTranscoder(std_msgs.Float64MultiArray), undefined);
});
