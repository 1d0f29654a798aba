import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DecodeError, MyelinError, ValidationError } from "../errors.js";
import {
  diagnostic_msgs,
  geometry_msgs,
  listTypes,
  lookupType,
  sensor_msgs,
  std_msgs,
  type MessageType,
} from "../msgs/index.js";
import {
  BASE64_CHUNK_CHARS,
  BASE64_JS_MAX_CHARS,
  base64Decode,
  base64DecodeBytes,
  base64DecodeJs,
  base64Encode,
  base64EncodeJs,
} from "./base64.js";
import { Everything } from "./golden.js";
import { fromJson, jsonCodec, toJson } from "./json.js";

function allStdTypes(): MessageType<unknown>[] {
  return listTypes().map((n) => lookupType(n)!);
}

describe("toJson / fromJson", () => {
  test("round-trip every standard type's create() value through JSON text", () => {
    for (const type of allStdTypes()) {
      const v = type.create();
      const text = JSON.stringify(toJson(type, v));
      assert.deepEqual(fromJson(type, JSON.parse(text)), v, type.name);
    }
  });

  test("the JSON face: base64 bytes, string 64-bit integers, named non-finite floats", () => {
    const v = Everything.create({
      big: (1n << 64n) - 1n,
      signed: -5n,
      ratio: NaN,
      value: -Infinity,
      samples: [Infinity, 1.5, 0],
      blob: Uint8Array.of(0xde, 0xad, 0xbe, 0xef),
      note: "n",
    });
    const j = toJson(Everything, v) as Record<string, unknown>;
    assert.equal(j.big, "18446744073709551615");
    assert.equal(j.signed, "-5");
    assert.equal(j.ratio, "NaN");
    assert.equal(j.value, "-Infinity");
    assert.deepEqual(j.samples, ["Infinity", 1.5, 0]);
    assert.equal(j.blob, "3q2+7w==");
    assert.equal(j.note, "n");
    assert.ok(!("missing" in j), "absent optional fields are left out");
    assert.deepEqual(j.stamp, { sec: 0, nanosec: 0 });
    const back = fromJson(Everything, JSON.parse(JSON.stringify(j)));
    assert.deepEqual(back, v);
  });

  test("fromJson fills defaults, accepts integers for 64-bit fields and enum names", () => {
    const v = fromJson(Everything, {
      big: 5,
      signed: "-7",
      level: "ERROR",
      blob: "AQID",
      missing: null,
      samples: [1, 2, 3],
    });
    assert.equal(v.big, 5n);
    assert.equal(v.signed, -7n);
    assert.equal(v.level, 2);
    assert.deepEqual([...v.blob], [1, 2, 3]);
    assert.ok(!("missing" in v));
    assert.equal(v.label, "");
    assert.deepEqual(fromJson(geometry_msgs.Twist, {}), geometry_msgs.Twist.create());
    assert.deepEqual(fromJson(geometry_msgs.Pose, { position: { x: 1 } }).orientation, {
      x: 0,
      y: 0,
      z: 0,
      w: 1,
    });
    // URL-safe base64 and missing padding are fine
    assert.deepEqual([...fromJson(sensor_msgs.CompressedImage, { data: "-_8" }).data], [0xfb, 0xff]);
  });

  test("fromJson errors name the field path", () => {
    const cases: [unknown, RegExp][] = [
      [
        { big: 1.5 },
        /invalid myelin_conformance\/Everything: big: expected u64 \(a decimal string or an integer up to 2\^53\), got number 1.5/,
      ],
      [{ big: 2 ** 60 }, /big: .*send large values as strings/],
      [{ big: "12x" }, /big: expected u64 as a decimal string, got string "12x"/],
      [{ big: "-1" }, /big: expected u64 \(bigint\), got bigint -1 \(out of range/],
      [{ blob: "***" }, /blob: expected bytes as a base64 string, got a string that is not base64/],
      [{ blob: [1, 2] }, /blob: expected bytes as a base64 string, got array\(2\)/],
      [
        { value: "1.5" },
        /value: expected f64 \(a number, "NaN", "Infinity" or "-Infinity"\), got string "1.5"/,
      ],
      [{ points: [{ x: "a" }] }, /points\[0\]\.x: expected f64 \(a number/],
      [{ points: [{ q: 1 }] }, /points\[0\]\.q: unknown field 'q' in geometry_msgs\/Point/],
      [{ label: null }, /label: expected string, got null/],
      [{ samples: [1] }, /samples: expected exactly 3 elements, got 1/],
      [{ level: "NOPE" }, /level: expected one of OK=0/],
      [{ nope: 1 }, /nope: unknown field 'nope'/],
      [[], /expected a JSON object, got array\(0\)/],
      ["x", /expected a JSON object/],
    ];
    for (const [input, re] of cases) {
      assert.throws(
        () => fromJson(Everything, input, "/topic"),
        (e: unknown) =>
          e instanceof ValidationError &&
          e.code === "ERR_VALIDATION" &&
          e.message.startsWith("/topic: ") &&
          re.test(e.message),
        `${JSON.stringify(input)} → ${re}`,
      );
    }
  });

  test("toJson without a type", () => {
    assert.deepEqual(
      toJson(undefined, {
        a: Uint8Array.of(1, 2, 3),
        b: 5n,
        c: NaN,
        d: undefined,
        e: [undefined, 1],
        f: new Date(0),
      }),
      {
        a: "AQID",
        b: "5",
        c: "NaN",
        e: [null, 1],
        f: "1970-01-01T00:00:00.000Z",
      },
    );
    assert.throws(() => toJson(undefined, { f: () => 1 }), { code: "ERR_ENCODE" });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => toJson(undefined, cyclic), { code: "ERR_ENCODE" });
    // with a type, keys that are not fields are converted generically
    assert.deepEqual(toJson(std_msgs.Header, { stamp: { sec: 1, nanosec: 2 }, frame_id: "f", x: 1n }), {
      stamp: { sec: 1, nanosec: 2 },
      frame_id: "f",
      x: "1",
    });
    assert.equal(
      toJson(diagnostic_msgs.DiagnosticStatus, diagnostic_msgs.DiagnosticStatus.create()) !== undefined,
      true,
    );
  });
});

describe("jsonCodec", () => {
  test("lossless round trip with tags", () => {
    const v = {
      a: Uint8Array.of(1, 2),
      b: -(1n << 63n),
      c: [NaN, Infinity, -Infinity, 1.5],
      d: { e: "é✓", f: null, g: true },
    };
    const bytes = jsonCodec.encode(v);
    const text = new TextDecoder().decode(bytes);
    assert.equal(
      text,
      '{"a":{"$bytes":"AQI="},"b":{"$bigint":"-9223372036854775808"},"c":[{"$float":"NaN"},{"$float":"Infinity"},{"$float":"-Infinity"},1.5],"d":{"e":"é✓","f":null,"g":true}}',
    );
    assert.deepEqual(jsonCodec.decode(bytes), v);
    for (const type of allStdTypes()) {
      const m = type.create();
      assert.deepEqual(jsonCodec.decode(jsonCodec.encode(m)), m, type.name);
    }
    assert.equal(jsonCodec.name, "json");
  });

  test("decode errors are DecodeErrors", () => {
    for (const bad of ['{"a":', "nope", '{"$bytes": 5}', '{"$bigint": "1.5"}', '{"$float": "nan"}', ""]) {
      assert.throws(() => jsonCodec.decode(new TextEncoder().encode(bad)), DecodeError, bad);
    }
    assert.throws(() => jsonCodec.decode(Uint8Array.of(0x22, 0xff, 0x22)), /not UTF-8/);
    assert.throws(() => jsonCodec.decode("{}" as never), DecodeError);
    assert.throws(() => jsonCodec.decode(new TextEncoder().encode("[".repeat(200_000))), DecodeError);
    // objects with a tag plus other keys are plain objects
    assert.deepEqual(jsonCodec.decode(new TextEncoder().encode('{"$bytes":"AQI=","x":1}')), {
      $bytes: "AQI=",
      x: 1,
    });
  });

  test("encode errors are ERR_ENCODE", () => {
    assert.throws(
      () => jsonCodec.encode({ f: Symbol("x") }),
      (e: unknown) => e instanceof MyelinError && e.code === "ERR_ENCODE",
    );
    assert.throws(() => jsonCodec.encode(undefined), { code: "ERR_ENCODE" });
  });
});

test("base64Decode (Node's decoder and a length check) accepts and rejects exactly what the strict JS decoder does", () => {
  const chars = fc.constantFrom(..."AZaz09+/-_=", " ", "\n", "$", "\u0000", "é", "\u0141", "\u4141", "😀");
  fc.assert(
    fc.property(
      fc.array(chars, { maxLength: 24 }).map((a) => a.join("")),
      (s) => {
        assert.deepEqual(base64Decode(s), base64DecodeJs(s), JSON.stringify(s));
      },
    ),
    { numRuns: 20000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(70), fc.string({ maxLength: 2 }), (b, at, junk) => {
      const s = Buffer.from(b).toString("base64");
      const spliced = s.slice(0, at) + junk + s.slice(at);
      assert.deepEqual(base64Decode(spliced), base64DecodeJs(spliced), JSON.stringify(spliced));
    }),
    { numRuns: 20000 },
  );
});

test("base64DecodeBytes (from bytes, a chunk at a time) accepts and rejects what base64Decode does, with the same bytes", () => {
  const chars = fc.constantFrom(..."AZaz09+/-_=", " ", "\n", "$", "\u0000", "\u0080", "\u00e9", "\u00ff");
  /** `s` read as Latin-1 bytes, inside other bytes, decoded by both. */
  const same = (s: string, before: number): void => {
    const src = Buffer.concat([Buffer.alloc(before, 0x22), Buffer.from(s, "latin1"), Buffer.from('"}')]);
    let lent: Uint8Array | undefined;
    const got = base64DecodeBytes(src, before, before + s.length, (n) => (lent = new Uint8Array(n)));
    const want = base64Decode(s);
    assert.equal(got === undefined, want === undefined, JSON.stringify(s.slice(0, 80)));
    if (want !== undefined) {
      assert.equal(got, lent, "the bytes are in the buffer alloc gave");
      assert.ok(Buffer.from(got!).equals(Buffer.from(want)), JSON.stringify(s.slice(0, 80)));
    }
  };
  fc.assert(
    fc.property(
      fc.array(chars, { maxLength: 24 }).map((a) => a.join("")),
      fc.nat(3),
      same,
    ),
    { numRuns: 5000 },
  );
  // Around the JS decoder's limit, and longer than a chunk; a bad character (or none) anywhere,
  // mostly near a chunk's edge.
  const long = fc.tuple(
    fc.oneof(
      fc.uint8Array({
        minLength: (BASE64_JS_MAX_CHARS / 4) * 3 - 8,
        maxLength: (BASE64_JS_MAX_CHARS / 4) * 3 + 8,
      }),
      fc.uint8Array({ minLength: 3000, maxLength: 3100 }),
      fc.uint8Array({
        minLength: (BASE64_CHUNK_CHARS / 4) * 3 - 8,
        maxLength: (BASE64_CHUNK_CHARS / 4) * 6 + 8,
      }),
    ),
    fc.oneof(fc.constant(-1), fc.nat(2 * BASE64_CHUNK_CHARS + 16), fc.integer({ min: -3, max: 3 })),
    fc.constantFrom("", "$", "=", "\u0080", " ", "\u0000"),
    fc.boolean(),
  );
  fc.assert(
    fc.property(long, ([b, at, junk, url]) => {
      let s = Buffer.from(b).toString(url ? "base64url" : "base64");
      const i = at < 4 ? Math.min(s.length, BASE64_CHUNK_CHARS) + at : at;
      if (at !== -1) s = s.slice(0, i) + junk + s.slice(i);
      same(s, 9);
    }),
    { numRuns: 300 },
  );
});

test("base64 matches Buffer for all lengths, with and without Buffer", () => {
  for (let n = 0; n < 40; n++) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
    const s = base64Encode(b);
    assert.equal(s, Buffer.from(b).toString("base64"));
    assert.equal(base64EncodeJs(b), s);
    assert.deepEqual(base64Decode(s), b);
    assert.deepEqual(base64DecodeJs(s), b);
    const unpadded = s.replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
    assert.deepEqual(base64Decode(unpadded), b);
    assert.deepEqual(base64DecodeJs(unpadded), b);
  }
  for (const bad of [
    "A",
    "AAAAA",
    "A===",
    "AA=A",
    "AB CD",
    "ÄÄ==",
    "AAA==",
    "\u0141AAA",
    "A\u0000AA",
    "AA\nAA",
  ]) {
    assert.equal(base64Decode(bad), undefined, bad);
    assert.equal(base64DecodeJs(bad), undefined, bad);
  }
});
