import assert from "node:assert/strict";
import { test } from "node:test";
import { timeBefore, timeFromBigint, timeToBigint, writeTimeLE } from "./mcap-time.js";

const viaBigint = (sec: number, nsec: number): bigint => BigInt(sec) * 1_000_000_000n + BigInt(nsec);

test("writeTimeLE writes the same u64 as BigInt arithmetic, across the whole fast range and beyond", () => {
  const cases: [number, number][] = [
    [0, 0],
    [0, 999_999_999],
    [1, 0],
    [1_700_000_000, 123_456_789],
    [4_294_967_295, 999_999_999],
    [4_294_967_295, 4_294_967_295], // nsec beyond a second (a publisher's u32) is added as it is
    [8_589, 4_294_967_295],
    [4_294_967_296, 0], // past 2106: the BigInt path
    [18_446_744_073, 709_551_615], // u64 max
  ];
  // A deterministic spread of seconds and nanoseconds.
  let x = 0x12345678;
  for (let i = 0; i < 2000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const sec = x;
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    cases.push([sec, x % 1_000_000_000]);
  }
  const b = Buffer.alloc(16);
  for (const [sec, nsec] of cases) {
    writeTimeLE(b, 3, sec, nsec);
    assert.equal(b.readBigUInt64LE(3), viaBigint(sec, nsec), `${sec} s ${nsec} ns`);
  }
});

test("writeTimeLE refuses a time that is not a u64 of nanoseconds", () => {
  const b = Buffer.alloc(8);
  assert.throws(() => writeTimeLE(b, 0, -1, 0), RangeError);
  assert.throws(() => writeTimeLE(b, 0, 18_446_744_074, 0), RangeError);
});

test("times convert to and from bigint nanoseconds and compare", () => {
  for (const ns of [
    0n,
    1n,
    999_999_999n,
    1_000_000_000n,
    1_700_000_000_123_456_789n,
    0xffff_ffff_ffff_ffffn,
  ]) {
    const t = timeFromBigint(ns);
    assert.ok(t.nsec >= 0 && t.nsec < 1e9);
    assert.equal(timeToBigint(t.sec, t.nsec), ns);
  }
  assert.ok(timeBefore(1, 5, 2, 0));
  assert.ok(timeBefore(1, 5, 1, 6));
  assert.ok(!timeBefore(1, 5, 1, 5));
  assert.ok(!timeBefore(2, 0, 1, 999_999_999));
});
