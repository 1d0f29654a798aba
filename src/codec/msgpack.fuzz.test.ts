/**
 * Property tests of the msgpack codec (docs/fuzzing.md): plain values round-trip (single frame and
 * multi-frame), and any bytes decode or throw DecodeError ERR_DECODE, without disturbing the next
 * decode.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytes, check, parseOrCoded } from "../../test/fuzz-helpers.js";
import { decodeFrames, encodeFrames, msgpackCodec } from "./msgpack.js";

const noNegZero = (x: number): number => (x === 0 ? 0 : x);
// "__proto__" keys are renamed by msgpackr on decoding (a guard against prototype pollution).
const key = fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__");
const leaf = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.double().map(noNegZero),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.string({ unit: "grapheme", maxLength: 16 }),
  fc.uint8Array({ maxLength: 48 }),
);
const { plain } = fc.letrec((tie) => ({
  plain: fc.oneof(
    { maxDepth: 4, depthSize: "small" },
    { weight: 3, arbitrary: leaf },
    fc.array(tie("plain"), { maxLength: 4 }),
    fc.dictionary(key, tie("plain"), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

/** A value whose decoding must keep working after any garbage. */
const canary = { a: [1, 2.5, "three", 4n], b: Uint8Array.of(9, 8, 7) };
const canaryBytes = Uint8Array.from(msgpackCodec.encode(canary));

test("fuzz: plain values round-trip through msgpack", () => {
  check("msgpack round trip", 500, [plain], (v) => {
    assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode(v)), v);
  });
  check(
    "encodeFrames/decodeFrames round trip",
    300,
    [plain, fc.integer({ min: 0, max: 40 })],
    (v, threshold) => {
      // Byte arrays come back as the very frames (blob) or as views: compare contents.
      assert.deepEqual(decodeFrames(encodeFrames(v, threshold)), v);
    },
  );
});

test("fuzz: arbitrary bytes decode or throw ERR_DECODE, and leave the decoder sound", () => {
  check("random msgpack bytes", 3000, [bytes(64)], (b) => {
    parseOrCoded("msgpackCodec.decode", ["ERR_DECODE"], b, () => msgpackCodec.decode(b));
    assert.deepEqual(msgpackCodec.decode(canaryBytes), canary, "decoding after garbage");
  });
  check(
    "random multi-frame messages",
    1000,
    [bytes(48), fc.array(bytes(8), { minLength: 1, maxLength: 3 })],
    (b, rest) => {
      parseOrCoded("decodeFrames", ["ERR_DECODE"], b, () => decodeFrames([b, ...rest]));
      assert.deepEqual(msgpackCodec.decode(canaryBytes), canary, "decoding after garbage");
    },
  );
  // Every extension type msgpackr knows (and some it does not), with an arbitrary payload.
  check("extension types", 1500, [fc.integer({ min: 0, max: 255 }), bytes(24)], (type, payload) => {
    const b = Uint8Array.from([0xc7, payload.length, type, ...payload]);
    parseOrCoded("msgpackCodec.decode(ext)", ["ERR_DECODE"], b, () => msgpackCodec.decode(b));
    parseOrCoded("decodeFrames(ext)", ["ERR_DECODE"], b, () => decodeFrames([b, Uint8Array.of(1)]));
    assert.deepEqual(msgpackCodec.decode(canaryBytes), canary, "decoding after garbage");
  });
});

test("fuzz: huge declared lengths are refused at once", () => {
  const t0 = performance.now();
  for (const n of [0xffffffff, 0x7fffffff, 0x10000000]) {
    const be = [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    for (const tag of [0xdb, 0xc6, 0xdd, 0xdf, 0xc9]) {
      assert.throws(() => msgpackCodec.decode(Uint8Array.of(tag, ...be, 0x01, 0x02)), { code: "ERR_DECODE" });
      // nested: a map whose one value claims n
      assert.throws(() => msgpackCodec.decode(Uint8Array.of(0x81, 0xa1, 0x6b, tag, ...be, 0x01)), {
        code: "ERR_DECODE",
      });
    }
  }
  assert.ok(performance.now() - t0 < 500, `took ${performance.now() - t0} ms`);
});

test("fuzz regressions: structured-clone references no longer build cyclic values", () => {
  // d6 69 00000001 | 91 | d6 70 00000001: "object 1 is [pointer to object 1]". msgpackr decoded it as
  // an array holding itself, which the codec handed out as a message.
  const cyc = Buffer.from("d66900000001" + "91" + "d67000000001", "hex");
  assert.throws(() => msgpackCodec.decode(cyc), { code: "ERR_DECODE", message: /structured clone/i });
  assert.throws(() => decodeFrames([cyc, Uint8Array.of(1)]), { code: "ERR_DECODE" });
  // with a string: [ "a", <itself> ]
  const cyc2 = Buffer.from("d66900000001" + "92a161" + "d67000000001", "hex");
  assert.throws(() => msgpackCodec.decode(cyc2), { code: "ERR_DECODE" });
});
