/**
 * Property tests of the compiled (validating) msgpack decoder (docs/fuzzing.md): it decodes what
 * msgpackr and the compiled encoder write, never throws, and whatever it accepts is valid for the
 * type and equal to what the generic decoder gives for the same bytes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, messageArb, parseOrCoded } from "../../test/fuzz-helpers.js";
import type { MessageType } from "../msgs/index.js";
import { encodeCompiledTransient } from "./compiled.js";
import { decodeCompiled, MISMATCH } from "./compiled-decoder.js";
import { goldenCases } from "./golden.js";
import { msgpackCodec } from "./msgpack.js";

const types: MessageType<unknown>[] = goldenCases().map((c) => c.type);

/** decodeCompiled must not throw; what it returns must be valid and agree with the generic path. */
function consistent(type: MessageType<unknown>, b: Uint8Array): unknown {
  const r = parseOrCoded(`decodeCompiled(${type.name})`, [], b, () => decodeCompiled(type, b));
  const v = r.ok ? r.value : MISMATCH;
  if (v === MISMATCH) return v;
  const res = type.validate(v);
  assert.ok(res.ok, `decodeCompiled(${type.name}) returned an invalid message: ${JSON.stringify(res)}`);
  assert.deepEqual(
    v,
    msgpackCodec.decode(b),
    `compiled and generic decoders disagree on ${Buffer.from(b).toString("hex")}`,
  );
  return v;
}

for (const type of types) {
  test(`fuzz: compiled decoder of ${type.name}`, () => {
    check(`${type.name}: msgpackr encoding decodes`, 150, [messageArb(type)], (m) => {
      const b = Uint8Array.from(msgpackCodec.encode(m));
      assert.deepEqual(consistent(type, b), m);
    });
    check(`${type.name}: compiled encoding decodes`, 150, [messageArb(type)], (m) => {
      const enc = encodeCompiledTransient(type, m, Infinity);
      assert.ok(enc !== null);
      assert.deepEqual(consistent(type, Uint8Array.from(enc)), m);
    });
    // Near misses: a valid encoding with one byte changed, some bytes cut, or a byte inserted.
    check(
      `${type.name}: mutated encodings`,
      400,
      [messageArb(type), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "cut", "insert")],
      (m, at, x, how) => {
        const enc = Uint8Array.from(msgpackCodec.encode(m));
        const i = at % enc.length;
        let b: Uint8Array;
        if (how === "set") {
          b = enc;
          b[i] = x;
        } else if (how === "cut") b = enc.subarray(0, i);
        else b = Uint8Array.from([...enc.subarray(0, i), x, ...enc.subarray(i)]);
        consistent(type, b);
      },
    );
    check(`${type.name}: random bytes`, 400, [bytes(64)], (b) => {
      consistent(type, b);
    });
  });
}

test("fuzz: huge declared lengths are a quick MISMATCH", () => {
  const t0 = performance.now();
  for (const type of types) {
    for (const tag of [0xdb, 0xc6, 0xdd, 0xdf]) {
      // the whole message, and its first field, claim 4 GiB
      assert.equal(decodeCompiled(type, Uint8Array.of(tag, 0xff, 0xff, 0xff, 0xff, 0x01)), MISMATCH);
      const first = Object.keys(type.fields)[0]!;
      const key = Buffer.from(first);
      const b = Uint8Array.of(0x81, 0xa0 | key.length, ...key, tag, 0xff, 0xff, 0xff, 0xff, 0x01);
      assert.equal(decodeCompiled(type, b), MISMATCH);
    }
  }
  assert.ok(performance.now() - t0 < 500);
});
