/**
 * Consumer state files (consumer-state-file.ts): round trip, golden file, coalescing, damage
 * detection with fallback, and I/O faults. The kill -9 test with a child process that acks is in
 * test/store-consumer-state-crash.test.ts.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { MyelinError } from "../errors.js";
import { ConsumerState, type ConsumerSnapshot } from "./consumer.js";
import {
  ConsumerStateFile,
  decodeConsumerState,
  encodeConsumerState,
  readConsumerStateFile,
  type ConsumerStateFs,
} from "./consumer-state-file.js";
import { faultyFs } from "../../test/fixtures/store-fs.js";

const GOLDEN = fileURLToPath(new URL("../../../conformance/store/consumer-state-v1.bin", import.meta.url));

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "myelin-consumer-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const isCorrupt = (e: unknown): boolean => e instanceof MyelinError && e.code === "ERR_STATE_CORRUPT";

const sample: ConsumerSnapshot = {
  floor: 41,
  handled: [43, 44, 45, 47, 4294967303],
  outstanding: [
    [42, 3],
    [46, 1],
  ],
};

test("encode/decode round trip, and the golden file pins the format", () => {
  const bytes = encodeConsumerState(sample);
  assert.deepEqual(decodeConsumerState(bytes), sample);
  if (process.env["MYELIN_UPDATE_GOLDEN"]) writeFileSync(GOLDEN, bytes);
  assert.deepEqual(new Uint8Array(readFileSync(GOLDEN)), bytes);
  assert.equal(
    new TextDecoder().decode(bytes.subarray(16)),
    '{"floor":41,"handled":[[43,3],[47,1],[4294967303,1]],"outstanding":[[42,3],[46,1]]}',
  );
});

test("damage is detected: truncation at every length, every flipped bit, bad contents", () => {
  const bytes = encodeConsumerState(sample);
  for (let n = 0; n < bytes.length; n++)
    assert.throws(() => decodeConsumerState(bytes.subarray(0, n)), isCorrupt, `truncated to ${n}`);
  for (let i = 0; i < bytes.length; i++)
    for (let bit = 0; bit < 8; bit++) {
      const b = bytes.slice();
      b[i]! ^= 1 << bit;
      assert.throws(() => decodeConsumerState(b), isCorrupt, `byte ${i} bit ${bit}`);
    }
  const extra = new Uint8Array(bytes.length + 1);
  extra.set(bytes);
  assert.throws(() => decodeConsumerState(extra), isCorrupt);
  // Well-checksummed but inconsistent contents are refused too.
  for (const bad of [
    { floor: -1, handled: [], outstanding: [] },
    { floor: 5, handled: [5], outstanding: [] },
    { floor: 0, handled: [3], outstanding: [[3, 1]] },
    { floor: 0, handled: [], outstanding: [[2, 0]] },
    {
      floor: 0,
      handled: [],
      outstanding: [
        [3, 1],
        [2, 1],
      ],
    },
  ] as ConsumerSnapshot[])
    assert.throws(() => decodeConsumerState(encodeConsumerState(bad)), isCorrupt, JSON.stringify(bad));
});

test("save then load resumes after the last acknowledged message", async (t) => {
  const path = join(tempDir(t), "sub", "alerts.worker.state");
  const f = new ConsumerStateFile({ path });
  assert.deepEqual(await f.load(), { snapshot: undefined, from: "none", problems: [] });
  const c = new ConsumerState({ maxDeliver: 5 }, { startSeq: 1 });
  c.nextToDeliver(0, 10, 10);
  for (const s of [1, 2, 3, 5, 9]) c.ack(s);
  c.nextToDeliver(60_000, 10, 1); // seq 4 redelivered once
  await f.save(c.snapshot());
  await f.close();
  await assert.rejects(f.save(c.snapshot()), { code: "ERR_CLOSED" });

  const loaded = await new ConsumerStateFile({ path }).load();
  assert.equal(loaded.from, "current");
  const r = new ConsumerState({ maxDeliver: 5 }, { snapshot: loaded.snapshot! });
  assert.equal(r.floor, 3);
  const b = r.nextToDeliver(0, 11, 20);
  assert.deepEqual(
    b.deliveries.map((d) => [d.seq, d.deliveries]),
    [
      [4, 3],
      [6, 2],
      [7, 2],
      [8, 2],
      [10, 2],
      [11, 1],
    ],
  );
});

test("frequent saves coalesce: one write in flight, the latest state wins, every save resolves", async (t) => {
  const path = join(tempDir(t), "c.state");
  const { fs: base, counts } = faultyFs();
  let inFlight = 0;
  let maxInFlight = 0;
  // A write runs from creating the temp file to syncing the directory.
  const fs: ConsumerStateFs = {
    ...base,
    rename,
    open(p, flags) {
      if (flags === "wx") maxInFlight = Math.max(maxInFlight, ++inFlight);
      return base.open(p, flags);
    },
    async syncDir(d) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      await base.syncDir(d);
      inFlight--;
    },
  };
  const f = new ConsumerStateFile({ path, fs });
  const c = new ConsumerState({}, { startSeq: 1 });
  c.nextToDeliver(0, 500, 500);
  const saves: Array<Promise<void>> = [];
  for (let s = 1; s <= 500; s++) {
    c.ack(s);
    saves.push(f.save(c.snapshot()));
  }
  await Promise.all(saves);
  const st = f.stats();
  assert.equal(st.saves, 500);
  assert.ok(st.writes <= 3, `${st.writes} writes for 500 saves`);
  assert.equal(counts.datasyncs, st.writes);
  assert.equal(maxInFlight, 1);
  assert.deepEqual(await readConsumerStateFile(path), { floor: 500, handled: [], outstanding: [] });
});

test("a damaged state file is reported and the previous good copy is used; no good copy throws", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "c.state");
  const f = new ConsumerStateFile({ path });
  await f.save({ floor: 10, handled: [], outstanding: [] });
  await f.save({ floor: 20, handled: [22], outstanding: [[21, 2]] });
  assert.ok(existsSync(f.prevPath));

  truncateSync(path, 20); // damage the current copy
  const r = await f.load();
  assert.equal(r.from, "previous");
  assert.deepEqual(r.snapshot, { floor: 10, handled: [], outstanding: [] });
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]!.code, "ERR_STATE_CORRUPT");
  assert.match(r.problems[0]!.message, /c\.state is damaged: .*announces/);

  // A crash between the two renames of a save leaves only the previous copy: used silently.
  rmSync(path);
  assert.deepEqual((await f.load()).from, "previous");

  // Both damaged: the caller decides. Here: warn and restart from startAt (floor 0), redelivering.
  writeFileSync(path, "garbage");
  writeFileSync(f.prevPath, new Uint8Array(0));
  let start: ConsumerState;
  try {
    await f.load();
    assert.fail("load should throw");
  } catch (e) {
    assert.ok(isCorrupt(e));
    assert.match((e as Error).message, /no intact consumer state/);
    start = new ConsumerState({}, { startSeq: 1 });
  }
  assert.equal(start.floor, 0);
  // And the next save replaces the damage.
  await f.save(start.snapshot());
  assert.equal((await f.load()).from, "current");
});

test("an I/O error during save rejects with ERR_STORAGE, keeps the old file, and a later save succeeds", async (t) => {
  const path = join(tempDir(t), "c.state");
  const { fs: base, faults } = faultyFs();
  const fs: ConsumerStateFs = { ...base, rename };
  const f = new ConsumerStateFile({ path, fs });
  await f.save({ floor: 1, handled: [], outstanding: [] });
  faults.write = "ENOSPC";
  await assert.rejects(f.save({ floor: 2, handled: [], outstanding: [] }), (e: unknown) => {
    assert.ok(e instanceof MyelinError && e.code === "ERR_STORAGE");
    assert.match(e.message, /disk is full/);
    return true;
  });
  faults.write = undefined;
  faults.datasync = "EIO";
  await assert.rejects(f.save({ floor: 3, handled: [], outstanding: [] }), { code: "ERR_STORAGE" });
  assert.deepEqual(await f.load(), {
    snapshot: { floor: 1, handled: [], outstanding: [] },
    from: "current",
    problems: [],
  });
  faults.datasync = undefined;
  await f.save({ floor: 4, handled: [], outstanding: [] });
  assert.equal((await f.load()).snapshot!.floor, 4);
  assert.equal(f.stats().failures, 2);
});
