import { test } from "node:test";
import assert from "node:assert/strict";
import { RefusalLog } from "./refusal-log.js";

test("one line per (peer, reason) per window, then a summary with the exact count", () => {
  const lines: string[] = [];
  const log = new RefusalLog({ log: (l) => lines.push(l), windowMs: 10_000 });
  for (let i = 0; i < 1000; i++) log.report("curve:K1", "ownership", `refused bye #${i}`, 1000 + i);
  log.report("curve:K2", "ownership", "refused bye from K2", 1500);
  log.report("curve:K1", "malformed", "bad message", 1600);
  assert.deepEqual(lines, ["refused bye #0", "refused bye from K2", "bad message"]);
  log.flush(10_999); // the window of K1 has not ended
  assert.equal(lines.length, 3);
  log.flush(11_000);
  assert.equal(lines.length, 4);
  assert.equal(
    lines[3],
    "suppressed 999 similar refusals from curve:K1 in the last 10 s; the last: refused bye #999",
  );
  assert.equal(log.reported, 1002);
  assert.equal(log.suppressed, 999);
  // A new window starts with a line again; a window with nothing suppressed ends silently.
  log.report("curve:K1", "ownership", "again", 12_000);
  log.flush(30_000);
  assert.deepEqual(lines.slice(4), ["again"]);
});

test("a refusal after the window ended summarizes it first", () => {
  const lines: string[] = [];
  const log = new RefusalLog({ log: (l) => lines.push(l), windowMs: 1000 });
  log.report("p", "r", "a", 0);
  log.report("p", "r", "b", 10);
  log.report("p", "r", "c", 1010);
  assert.deepEqual(lines, ["a", "suppressed 1 similar refusal from p in the last 1 s; the last: b", "c"]);
});

test("many distinct peers share one bounded entry past maxKeys", () => {
  const lines: string[] = [];
  const log = new RefusalLog({ log: (l) => lines.push(l), windowMs: 1000, maxKeys: 10 });
  for (let i = 0; i < 10_000; i++) log.report(`anonymous connection ${i}`, "malformed", `bad ${i}`, i / 100);
  assert.equal(lines.length, 11);
  assert.match(lines[10]!, /^bad 10 \(more than 10 distinct refused peers/);
  log.flush(5000);
  assert.equal(lines.length, 12);
  assert.match(lines[11]!, /^suppressed 9989 similar refusals from many peers/);
  assert.equal(log.reported, 10_000);
});
