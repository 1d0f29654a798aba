import { test } from "node:test";
import assert from "node:assert/strict";
import { capFor, parseRateCap, RateGate } from "./rate-cap.js";

function passed(inputHz: number, capHz: number, seconds: number, jitterMs = 0): number {
  const gate = new RateGate(capHz);
  let n = 0;
  const period = 1000 / inputHz;
  for (let i = 0; i < inputHz * seconds; i++) {
    const jitter = jitterMs === 0 ? 0 : (((i * 7919) % 13) / 12 - 0.5) * 2 * jitterMs;
    if (gate.take(i * period + jitter)) n++;
  }
  return n;
}

test("a gate passes the capped rate of a steady input, also with jitter", () => {
  assert.equal(passed(15, 5, 10), 50);
  assert.ok(Math.abs(passed(15, 10, 10) - 100) <= 2, String(passed(15, 10, 10)));
  assert.equal(passed(5, 10, 10), 50, "an input below the cap passes whole");
  const jittery = passed(30, 5, 20, 5);
  assert.ok(Math.abs(jittery - 100) <= 3, `jittery: ${jittery}`);
});

test("rate caps parse PATTERN:HZ and the lowest matching cap applies", () => {
  assert.deepEqual(parseRateCap("/camera/**:5", "x"), { pattern: "/camera/**", hz: 5 });
  assert.deepEqual(parseRateCap("/scan:0.5", "x"), { pattern: "/scan", hz: 0.5 });
  assert.throws(
    () => parseRateCap("/scan", "maxHz"),
    /maxHz: "\/scan" is not a rate cap: write TOPIC_PATTERN:HZ/,
  );
  assert.throws(() => parseRateCap("/scan:0", "maxHz"), /HZ > 0/);
  assert.throws(() => parseRateCap("scan:5", "maxHz"), /not a topic pattern/);
  const server = [{ pattern: "/camera/**", hz: 10 }];
  const client = [{ pattern: "/camera/front/image", hz: 2 }];
  assert.equal(capFor("/camera/front/image", server, client), 2);
  assert.equal(capFor("/camera/rear/image", server, client), 10);
  assert.equal(capFor("/scan", server, client), undefined);
});
