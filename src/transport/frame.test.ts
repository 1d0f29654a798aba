import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import {
  DataFrameBuilder,
  FrameKind,
  encodeBlobHeader,
  encodeCredit,
  encodeError,
  encodeHello,
  encodePing,
  encodeReplyHeader,
  encodeRequestHeader,
  encodeSub,
  encodeUnsub,
  forEachRecord,
  forEachRecordIn,
  parseFrame,
} from "./frame.js";
import { DecodeError } from "../errors.js";

function sampleData(): Buffer {
  const b = new DataFrameBuilder(16);
  b.append(7, 1, 1, 1700000000, 5, Buffer.from("hello"));
  b.append(7, 1, 2, 1700000000, 6, Buffer.alloc(0));
  b.append(9, 2, 2 ** 40, 1700000001, 999999999, Buffer.from([1, 2, 3]));
  return b.finish();
}

test("data frames carry many records and read back in order, payloads as views", () => {
  const frame = sampleData();
  const got: unknown[] = [];
  const n = forEachRecord(frame, (sid, pub, seq, sec, nsec, payload) => {
    assert.equal(payload.buffer, frame.buffer);
    got.push([sid, pub, seq, sec, nsec, [...payload]]);
  });
  assert.equal(n, 3);
  assert.deepEqual(got, [
    [7, 1, 1, 1700000000, 5, [...Buffer.from("hello")]],
    [7, 1, 2, 1700000000, 6, []],
    [9, 2, 2 ** 40, 1700000001, 999999999, [1, 2, 3]],
  ]);
  const parsed = parseFrame([frame]);
  assert.equal(parsed.kind, FrameKind.Data);
  // The same records as ranges of the frame, no view per record.
  const ranges: unknown[] = [];
  assert.equal(
    forEachRecordIn(frame, (sid, pub, seq, sec, nsec, f, start, end) => {
      assert.equal(f, frame);
      ranges.push([sid, pub, seq, sec, nsec, [...frame.subarray(start, end)]]);
    }),
    3,
  );
  assert.deepEqual(ranges, got);
});

test("a record appended from the first bytes of a longer buffer carries only those", () => {
  const b = new DataFrameBuilder(64);
  const scratch = Buffer.from("abcdefghijklmnopqrstuvwxyz");
  b.append(1, 0, 1, 0, 0, scratch, 3);
  b.append(1, 0, 2, 0, 0, scratch, 20);
  const got: string[] = [];
  forEachRecord(b.finish(), (_sid, _pub, _seq, _sec, _nsec, payload) => got.push(payload.toString()));
  assert.deepEqual(got, ["abc", "abcdefghijklmnopqrst"]);
});

test("a data frame truncated at any offset is a DecodeError, never garbage records", () => {
  const frame = sampleData();
  for (let cut = 0; cut < frame.length; cut++) {
    const part = frame.subarray(0, cut);
    let visited = 0;
    assert.throws(
      () => {
        parseFrame([part]);
        forEachRecord(part, () => visited++);
      },
      DecodeError,
      `cut at ${cut}`,
    );
    assert.ok(visited < 3);
  }
});

test("control-like frames round-trip", () => {
  const sub = {
    sid: 3,
    topic: "/a",
    type: "std_msgs/String",
    reliable: true,
    history: 5,
    creditMsgs: 10,
    creditBytes: 1000,
  };
  assert.deepEqual(parseFrame([encodeSub(sub)]), { kind: FrameKind.Sub, body: sub });
  assert.deepEqual(parseFrame([encodeHello({ node: "n1", process: "p" })]), {
    kind: FrameKind.Hello,
    body: { node: "n1", process: "p" },
  });
  assert.deepEqual(parseFrame([encodeUnsub(3)]), { kind: FrameKind.Unsub, sid: 3 });
  assert.deepEqual(parseFrame([encodeCredit(3, 100, 5000)]), {
    kind: FrameKind.Credit,
    sid: 3,
    msgs: 100,
    bytes: 5000,
  });
  assert.deepEqual(parseFrame([encodePing()]), { kind: FrameKind.Ping, token: undefined });
  assert.deepEqual(parseFrame([encodePing(77)]), { kind: FrameKind.Ping, token: 77 });
  assert.deepEqual(parseFrame([encodeError({ sid: 2, code: "ERR_X", message: "m" })]), {
    kind: FrameKind.Error,
    body: { sid: 2, code: "ERR_X", message: "m" },
  });
  const req = parseFrame([
    encodeRequestHeader({ id: 1, service: "/s", type: "t/T", timeoutMs: 50 }),
    Buffer.from([0x80]),
  ]);
  assert.equal(req.kind, FrameKind.Request);
  const rep = parseFrame([encodeReplyHeader({ id: 1, ok: false, error: { code: "E", message: "no" } })]);
  assert.deepEqual(rep, {
    kind: FrameKind.Reply,
    header: { id: 1, ok: false, error: { code: "E", message: "no" } },
    parts: [],
  });
  const blob = parseFrame([encodeBlobHeader({ sid: 1, pub: 2, seq: 3, sec: 4, nsec: 5 }), Buffer.from([1])]);
  assert.deepEqual(blob.kind === FrameKind.Blob && blob.header, { sid: 1, pub: 2, seq: 3, sec: 4, nsec: 5 });
});

test("bad frames say what is wrong", () => {
  assert.throws(() => parseFrame([]), /shorter than the preamble/);
  assert.throws(() => parseFrame([Buffer.from("GET / HTTP/1.1")]), /not a Myelin data frame/);
  assert.throws(() => parseFrame([Buffer.from([0xa7, 9, 1])]), /version 9 is not supported/);
  assert.throws(() => parseFrame([Buffer.from([0xa7, 1, 77])]), /unknown data frame kind 77/);
  const badSub = encodeSub({
    sid: 1,
    topic: "/a",
    type: "x/Y",
    reliable: true,
    history: 0,
    creditMsgs: 1,
    creditBytes: 1,
  });
  badSub[badSub.length - 1] = 0xc1; // never-used msgpack byte
  assert.throws(() => parseFrame([badSub]), DecodeError);
  assert.throws(
    () => parseFrame([Buffer.from([0xa7, 1, FrameKind.Credit, 1])]),
    /credit frame must be 15 bytes/,
  );
  assert.throws(
    () => parseFrame([encodeRequestHeader({ id: 1, service: "/s", type: "t/T", timeoutMs: 1 })]),
    /no body frames/,
  );
});

test("random bytes never throw anything but DecodeError (seeded fuzz)", () => {
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const seeds = [
    sampleData(),
    encodeSub({
      sid: 1,
      topic: "/a",
      type: "x/Y",
      reliable: false,
      history: 1,
      creditMsgs: 1,
      creditBytes: 1,
    }),
    encodeCredit(1, 2, 3),
  ];
  for (let i = 0; i < 5000; i++) {
    const base = Buffer.from(seeds[i % seeds.length]!);
    const flips = 1 + Math.floor(rnd() * 4);
    for (let f = 0; f < flips; f++) base[Math.floor(rnd() * base.length)] = Math.floor(rnd() * 256);
    const frame = i % 7 === 0 ? base.subarray(0, Math.floor(rnd() * base.length)) : base;
    try {
      const p = parseFrame([frame]);
      if (p.kind === FrameKind.Data) forEachRecord(p.frame, () => {});
    } catch (e) {
      assert.ok(e instanceof DecodeError, `iteration ${i}: ${String(e)}`);
    }
  }
});

test("golden wire frames in conformance/wire match the encoder", () => {
  const dir = new URL("../../../conformance/wire/", import.meta.url);
  const golden: Record<string, Buffer> = {
    "data-3-records.bin": sampleData(),
    "sub.bin": encodeSub({
      sid: 1,
      topic: "/camera/image",
      type: "sensor_msgs/Image",
      reliable: true,
      history: 1,
      creditMsgs: 16384,
      creditBytes: 33554432,
    }),
    "credit.bin": encodeCredit(1, 4096, 1048576),
    "ping.bin": encodePing(),
  };
  if (process.env["MYELIN_UPDATE_GOLDEN"] === "1") {
    mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of Object.entries(golden)) writeFileSync(new URL(name, dir), bytes);
  }
  for (const [name, bytes] of Object.entries(golden)) {
    assert.deepEqual(readFileSync(new URL(name, dir)), bytes, name);
  }
});
