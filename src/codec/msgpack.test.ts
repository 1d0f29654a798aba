import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DecodeError, MyelinError } from "../errors.js";
import { geometry_msgs, listTypes, lookupType, sensor_msgs, type MessageType } from "../msgs/index.js";
import {
  decodeFrames,
  encodeFrames,
  msgpackCodec,
  msgpackEncode,
  msgpackEncodeTransient,
} from "./msgpack.js";
import { Everything } from "./golden.js";

/** Every registered type: the standard library, as this process registers nothing else. */
function allStdTypes(): MessageType<unknown>[] {
  return listTypes().map((n) => lookupType(n)!);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

describe("msgpackCodec", () => {
  test("round-trips every standard type's create() value", () => {
    for (const type of allStdTypes()) {
      const v = type.create();
      const back = msgpackCodec.decode(msgpackCodec.encode(v));
      assert.deepEqual(back, v, type.name);
      assert.deepEqual(type.validate(back), { ok: true }, type.name);
    }
  });

  test("round-trips a message with every field kind", () => {
    const v = Everything.create({
      big: (1n << 64n) - 1n,
      signed: -(1n << 63n),
      ratio: NaN,
      value: -Infinity,
      blob: Uint8Array.of(1, 2, 3),
      note: "x",
      samples: [1e-300, 2 ** 40, -0.5],
    });
    const back = msgpackCodec.decode(msgpackCodec.encode(v));
    assert.deepEqual(back, v);
    Everything.assert(back);
  });

  test("is compact: fixmaps and small ints", () => {
    assert.equal(hex(msgpackCodec.encode({ a: 1 })), "81a16101");
    assert.equal(hex(msgpackCodec.encode(geometry_msgs.Vector3.create({ x: 1 }))), "83a17801a17900a17a00");
  });

  test("numbers stay numbers and bigints stay bigints", () => {
    const now = 1_700_000_000_123; // like Date.now(): an integer beyond 32 bits
    const enc = msgpackCodec.encode(now);
    assert.equal(enc[0], 0xcb, "float64");
    assert.equal(msgpackCodec.decode(enc), now);
    assert.equal(typeof msgpackCodec.decode(msgpackCodec.encode(2 ** 53 + 2)), "number");
    assert.equal(msgpackCodec.decode(msgpackCodec.encode(-(2 ** 40))), -(2 ** 40));
    assert.equal(msgpackCodec.decode(msgpackCodec.encode(4294967295)), 4294967295);
    for (const b of [0n, 5n, -5n, (1n << 63n) - 1n, -(1n << 63n), 1n << 63n, (1n << 64n) - 1n]) {
      const e = msgpackCodec.encode(b);
      assert.ok(e[0] === 0xd3 || e[0] === 0xcf);
      assert.equal(msgpackCodec.decode(e), b);
    }
    // int64/uint64 from other encoders decode as bigint
    assert.equal(msgpackCodec.decode(Uint8Array.of(0xcf, 0, 0, 0, 0, 0, 0, 0, 7)), 7n);
    assert.equal(
      msgpackCodec.decode(Uint8Array.of(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
      -1n,
    );
    assert.equal(msgpackCodec.decode(Uint8Array.of(0x07)), 7);
  });

  test("decoded bins are views into the input, not copies", () => {
    const data = Uint8Array.from({ length: 64 }, (_, i) => i);
    const enc = msgpackCodec.encode(sensor_msgs.CompressedImage.create({ format: "jpeg", data }));
    const input = new Uint8Array(enc); // a plain Uint8Array with its own ArrayBuffer
    const back = msgpackCodec.decode(input) as { data: Uint8Array };
    assert.ok(back.data instanceof Uint8Array);
    assert.equal(back.data.buffer, input.buffer);
    assert.deepEqual([...back.data], [...data]);
    input[input.length - 1] = 0xee;
    assert.equal(back.data[63], 0xee, "shares memory with the input");
    // a Buffer input gives Buffer views
    const buf = Buffer.from(enc);
    const fromBuffer = msgpackCodec.decode(buf) as { data: Uint8Array };
    assert.equal(
      Object.getPrototypeOf(fromBuffer.data),
      Uint8Array.prototype,
      "a plain Uint8Array, not a Buffer",
    );
    assert.equal(fromBuffer.data.buffer, buf.buffer);
    assert.ok(!("dataView" in buf), "the caller's input is not modified");
  });

  test("encode() results stay intact; the transient one is reused", () => {
    const a = msgpackEncode({ n: 1 });
    const aCopy = hex(a);
    for (let i = 0; i < 2000; i++) msgpackEncode({ n: i, pad: "x".repeat(i % 50) });
    assert.equal(hex(a), aCopy);
    const t1 = msgpackEncodeTransient({ n: 1 });
    const snapshot = Uint8Array.from(t1);
    assert.deepEqual(msgpackCodec.decode(snapshot), { n: 1 });
    const t2 = msgpackEncodeTransient({ n: 2 });
    assert.equal(t1.byteOffset, t2.byteOffset, "same bytes reused");
    assert.deepEqual(msgpackCodec.decode(t2), { n: 2 });
    // a non-transient encode after a transient one is not disturbed by later transient ones
    const stable = msgpackEncode({ keep: true });
    const stableCopy = hex(stable);
    msgpackEncodeTransient({ other: "value that overwrites" });
    assert.equal(hex(stable), stableCopy);
  });

  test("encode of unsupported values throws ERR_ENCODE", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const bad of [{ f: () => 1 }, { s: Symbol("x") }, cyclic, 1n << 64n, [-(1n << 63n) - 1n]]) {
      assert.throws(
        () => msgpackCodec.encode(bad),
        (e: unknown) => e instanceof MyelinError && e.code === "ERR_ENCODE" && !(e instanceof DecodeError),
      );
    }
    // the codec still works afterwards
    assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode({ ok: 1 })), { ok: 1 });
  });

  test("decode of truncated or garbage input throws DecodeError", () => {
    const expectDecodeError = (bytes: Uint8Array, re?: RegExp) =>
      assert.throws(
        () => msgpackCodec.decode(bytes),
        (e: unknown) =>
          e instanceof DecodeError && e.code === "ERR_DECODE" && (re === undefined || re.test(e.message)),
      );
    expectDecodeError(new Uint8Array(0), /empty/);
    expectDecodeError(Uint8Array.of(0x92, 0x01), /truncated/);
    expectDecodeError(Uint8Array.of(0x01, 0x02), /trailing bytes/);
    expectDecodeError(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), /truncated/);
    expectDecodeError(Uint8Array.of(0xd6, 0x46, 0, 0, 0, 1), /blob reference/);
    expectDecodeError(Uint8Array.of(0xd6, 0x70, 0, 0, 0, 1));
    expectDecodeError(new Uint8Array(100_000).fill(0x91), /nested too deeply/);
    expectDecodeError("not bytes" as never);
    assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode({ ok: 1 })), { ok: 1 }, "still works");
    // a whole message cut at every length
    const whole = msgpackCodec.encode(Everything.create({ note: "n", blob: new Uint8Array(40) }));
    for (let n = 0; n < whole.length; n++) expectDecodeError(whole.subarray(0, n));
  });

  test("seeded fuzz: random and mutated input only ever throws DecodeError", () => {
    let seed = 0x2545f491;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const sample = msgpackCodec.encode(
      Everything.create({
        note: "fuzz",
        blob: Uint8Array.of(1, 2, 3),
        points: [{ x: 1, y: 2, z: 3 }],
        tags: ["a"],
      }),
    );
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(1 + Math.floor(rand() * 64));
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      } else {
        bytes = Uint8Array.from(sample);
        const flips = 1 + Math.floor(rand() * 4);
        for (let j = 0; j < flips; j++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      try {
        msgpackCodec.decode(bytes);
        decoded++;
      } catch (e) {
        if (!(e instanceof DecodeError)) assert.fail(`input ${hex(bytes)} threw ${String(e)}`);
        refused++;
      }
      try {
        decodeFrames([bytes, new Uint8Array(3)]);
      } catch (e) {
        if (!(e instanceof DecodeError)) assert.fail(`frames ${hex(bytes)} threw ${String(e)}`);
      }
    }
    assert.ok(decoded > 0 && refused > 0, `decoded ${decoded}, refused ${refused}`);
    assert.deepEqual(msgpackCodec.decode(sample), msgpackCodec.decode(Uint8Array.from(sample)));
  });
});

describe("encodeFrames / decodeFrames", () => {
  test("without blobs: one frame equal to encode()", () => {
    const v = sensor_msgs.Image.create({ width: 4, data: new Uint8Array(100) });
    const frames = encodeFrames(v);
    assert.equal(frames.length, 1);
    assert.equal(hex(frames[0]!), hex(msgpackCodec.encode(v)));
    assert.deepEqual(decodeFrames(frames), v);
    assert.deepEqual(encodeFrames(geometry_msgs.Twist.create()).length, 1);
  });

  test("large Uint8Arrays travel as their own frames, uncopied", () => {
    const big = new Uint8Array(20_000).fill(7);
    const other = new Uint8Array(16_384).fill(9);
    const small = new Uint8Array(10).fill(1);
    const msg = {
      header: { frame_id: "cam" },
      data: big,
      list: [small, other, big],
      nested: { deep: [{ b: other }] },
    };
    const frames = encodeFrames(msg);
    assert.equal(frames.length, 3, "each distinct blob once");
    assert.equal(frames[1], big, "same object, not a copy");
    assert.equal(frames[2], other);
    assert.ok(frames[0]!.length < 200, `body is small: ${frames[0]!.length}`);
    // the caller's message is untouched
    assert.equal(msg.data, big);
    assert.equal(msg.list[1], other);
    assert.equal(msg.nested.deep[0]!.b, other);
    const back = decodeFrames(frames) as typeof msg;
    assert.equal(back.data, big, "decoded blob is the frame itself");
    assert.equal(back.list[2], big);
    assert.equal(back.list[1], other);
    assert.equal(back.nested.deep[0]!.b, other);
    assert.deepEqual(back.list[0], small);
    assert.equal(back.header.frame_id, "cam");
  });

  test("threshold is inclusive and configurable", () => {
    const v = { a: new Uint8Array(8), b: new Uint8Array(7), c: new Uint8Array(0) };
    assert.equal(encodeFrames(v, 8).length, 2);
    assert.equal(encodeFrames(v, 0).length, 4);
    assert.equal(encodeFrames(v, Infinity).length, 1);
    assert.throws(() => encodeFrames(v, -1), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => encodeFrames(v, NaN), { code: "ERR_INVALID_ARGUMENT" });
    const top = new Uint8Array(50);
    const frames = encodeFrames(top, 10);
    assert.equal(decodeFrames(frames), top);
  });

  test("bad frames are DecodeErrors", () => {
    const frames = encodeFrames({ a: new Uint8Array(32) }, 16);
    assert.equal(frames.length, 2);
    const expectDecodeError = (f: readonly Uint8Array[], re: RegExp) =>
      assert.throws(
        () => decodeFrames(f),
        (e: unknown) => e instanceof DecodeError && re.test(e.message),
      );
    expectDecodeError([], /at least one frame/);
    expectDecodeError([frames[0]!], /single-frame/);
    expectDecodeError([frames[0]!, frames[1]!, new Uint8Array(1)], /frame 2 of 3 is not referenced/);
    const body = Uint8Array.from(frames[0]!);
    body[body.length - 1] = 5; // reference to frame 5
    expectDecodeError([body, frames[1]!], /points to frame 5/);
    body[body.length - 1] = 0; // frame 0 is the body itself
    expectDecodeError([body, frames[1]!], /points to frame 0/);
    expectDecodeError([frames[0]!, "x" as never], /not a Uint8Array/);
    expectDecodeError(null as never, /at least one frame/);
    // afterwards a blob ref outside decodeFrames is refused again
    expectDecodeError([frames[0]!], /single-frame/);
  });
});
