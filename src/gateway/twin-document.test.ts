import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyPatch,
  checkState,
  computeDelta,
  deviceNameProblem,
  devicePattern,
  mergePatch,
  newTwin,
  resolveTwinOptions,
  twinFromFile,
  twinToFile,
} from "./twin-document.js";

test("merge patch (RFC 7386): keys replace, objects merge, null removes; the target is not changed", () => {
  const target = { a: 1, b: { c: 2, d: 3 }, e: [1, 2] };
  const out = mergePatch(target, { a: null, b: { c: 5, d: null, f: 6 }, e: [3], g: { h: null } });
  assert.deepEqual(out, { b: { c: 5, f: 6 }, e: [3], g: {} });
  assert.deepEqual(target, { a: 1, b: { c: 2, d: 3 }, e: [1, 2] });
});

test("the delta holds desired values not reported, recursively through objects", () => {
  assert.deepEqual(computeDelta({}, { a: 1 }), {});
  assert.deepEqual(computeDelta({ a: 1, b: "x" }, { a: 1, b: "y" }), { b: "x" });
  assert.deepEqual(
    computeDelta(
      { light: { on: true, level: 5 }, list: [1, 2] },
      { light: { on: true, level: 3 }, list: [1, 2] },
    ),
    { light: { level: 5 } },
  );
  assert.deepEqual(
    computeDelta({ list: [1, 2] }, { list: [2, 1] }),
    { list: [1, 2] },
    "arrays compare whole",
  );
  assert.deepEqual(computeDelta({ o: { k: 1 } }, { o: 7 }), { o: { k: 1 } });
  assert.deepEqual(
    computeDelta({ a: { b: 1 } }, { a: { b: 1, extra: 2 } }),
    {},
    "extra reported keys are no delta",
  );
});

test("applyPatch counts versions, refuses a stale version naming both, and a state over the size limit", () => {
  const t0 = newTwin("pump-1", 1000);
  const t1 = applyPatch(t0, "desired", { speed: 5 }, { now: 2000, maxStateBytes: 1000, expectedVersion: 0 });
  assert.equal(t1.version, 1);
  assert.equal(t1.desiredVersion, 1);
  assert.equal(t1.reportedVersion, 0);
  assert.equal(t1.desiredUpdatedAt, 2000);
  const t2 = applyPatch(t1, "reported", { speed: 5 }, { now: 3000, maxStateBytes: 1000 });
  assert.equal(t2.version, 2);
  assert.equal(t2.reportedVersion, 1);
  assert.equal(
    applyPatch(t2, "reported", { speed: 5 }, { now: 4000, maxStateBytes: 1000 }),
    t2,
    "no change, no version",
  );
  assert.throws(
    () => applyPatch(t2, "desired", { speed: 6 }, { now: 5000, maxStateBytes: 1000, expectedVersion: 0 }),
    (err: Error & { code?: string }) =>
      err.code === "ERR_VERSION_CONFLICT" &&
      /desired is at version 1, the update expected version 0/.test(err.message),
  );
  assert.throws(
    () => applyPatch(t2, "desired", { blob: "x".repeat(2000) }, { now: 5000, maxStateBytes: 1000 }),
    (err: Error & { code?: string }) =>
      err.code === "ERR_PAYLOAD_TOO_LARGE" && /over twins.maxStateBytes \(1000\)/.test(err.message),
  );
  const replaced = applyPatch(
    t2,
    "desired",
    { mode: "eco" },
    { now: 6000, maxStateBytes: 1000, replace: true },
  );
  assert.deepEqual(replaced.desired, { mode: "eco" });
});

test("checkState refuses what is not an object, too deep, or not finite", () => {
  assert.throws(() => checkState(5, "state", 8), /state must be a JSON object, got a number/);
  assert.throws(() => checkState(null, "state", 8), /got null/);
  assert.throws(() => checkState([1], "state", 8), /got an array/);
  assert.throws(
    () => checkState({ a: { b: { c: 1 } } }, "state", 2),
    /state at a\.b is nested deeper than 2 levels/,
  );
  checkState({ a: { b: 1 } }, "state", 2);
  assert.throws(() => checkState({ a: [1, { b: [Infinity] }] }, "state", 8), /numbers must be finite/);
});

test("device names: letters, digits, _ - . : up to 128, not starting with a dot", () => {
  for (const ok of ["pump-7", "a", "site:a.unit_3", "x".repeat(128)])
    assert.equal(deviceNameProblem(ok), undefined, ok);
  for (const bad of ["", ".hidden", "a/b", "a b", "é", "+", "#", "x".repeat(129)])
    assert.notEqual(deviceNameProblem(bad), undefined, bad);
});

test("twin options are checked, naming the field", () => {
  assert.deepEqual(resolveTwinOptions(undefined).topicPrefix, "twins");
  assert.throws(
    () => resolveTwinOptions({ identity: "ip" as never }),
    /twins\.identity: must be username or client-id/,
  );
  assert.throws(
    () => resolveTwinOptions({ maxStateBytes: 10 }),
    /twins\.maxStateBytes: must be an integer from 64/,
  );
  assert.throws(() => resolveTwinOptions({ topicPrefix: "$twins" }), /twins\.topicPrefix/);
  assert.throws(() => resolveTwinOptions({ topicPrefix: "a/+/b" }), /twins\.topicPrefix/);
  assert.throws(() => resolveTwinOptions({ colour: 1 } as never), /twins\.colour: not a known field/);
});

test("a twin file reads back as the twin, offline; a file for another device is refused", () => {
  const t = {
    ...applyPatch(newTwin("m-1", 1), "reported", { a: 1 }, { now: 2, maxStateBytes: 100 }),
    connected: true,
  };
  const back = twinFromFile(twinToFile(t), "m-1");
  assert.deepEqual(back, { ...t, connected: false });
  assert.throws(() => twinFromFile(twinToFile(t), "m-2"), /names device "m-1", not m-2/);
  assert.throws(() => twinFromFile('{"format": 9}', "m-1"), /unknown format 9/);
});

test("device patterns are globs", () => {
  assert.equal(devicePattern("pump-*").test("pump-12"), true);
  assert.equal(devicePattern("pump-?").test("pump-12"), false);
  assert.equal(devicePattern("a.b").test("aXb"), false);
  assert.equal(devicePattern("").test("anything"), true);
});
