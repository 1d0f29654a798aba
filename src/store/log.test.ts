/**
 * DurableLog against real files in temp directories: round trip, rolling, retention, reads by
 * seq and time, torn tails at every byte offset, injected ENOSPC/EIO, and group commit.
 */
import assert from "node:assert/strict";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MyelinError } from "../errors.js";
import { DurableLog, type DurableLogOptions, type LogRecord } from "./log.js";
import { SegmentReader, encodeRecord, type SegmentRecord } from "./segment-format.js";
import { faultyFs } from "../../test/fixtures/store-fs.js";
import { nodeStoreFs } from "./fs.js";

const te = new TextEncoder();
const td = new TextDecoder();

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-store-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const hdr = (i: number) => te.encode(`h${i}`);
const pay = (i: number) => te.encode(`payload-${i}-${"x".repeat(i % 7)}`);

async function appendN(log: DurableLog, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const r = await log.append(hdr(i), pay(i));
    assert.equal(r.seq, i);
  }
}

function assertRecords(records: LogRecord[], from: number, to: number): void {
  assert.deepEqual(
    records.map((r) => r.seq),
    Array.from({ length: to - from + 1 }, (_, k) => from + k),
  );
  for (const r of records) {
    assert.equal(td.decode(r.header), `h${r.seq}`);
    assert.equal(td.decode(r.payload), td.decode(pay(r.seq)));
  }
}

async function all(log: DurableLog, from: Parameters<DurableLog["records"]>[0] = {}): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of log.records(from)) out.push(r);
  return out;
}

function segFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".seg"))
    .sort();
}

function scan(path: string): SegmentRecord[] {
  const reader = new SegmentReader();
  reader.push(readFileSync(path));
  reader.end();
  const out: SegmentRecord[] = [];
  for (let r = reader.next(); r && !r.torn; r = reader.next()) out.push(r);
  return out;
}

test("round trip, reopen, and seq continues", async () => {
  using tmp = tempDir();
  const opts: DurableLogOptions = { dir: tmp.dir, fsync: "always" };
  {
    await using log = await DurableLog.open(opts);
    assert.deepEqual([log.first, log.last, log.count], [1, 0, 0]);
    assert.deepEqual(await log.read(1, 10), []);
    await appendN(log, 1, 20);
    assert.deepEqual([log.first, log.last, log.count], [1, 20, 20]);
    assertRecords(await log.read(1, 100), 1, 20);
    assertRecords(await log.read(5, 3), 5, 7);
    assertRecords(await log.read(0, 100), 1, 20);
    assert.deepEqual(await log.read(21, 10), []);
    assertRecords(await all(log), 1, 20);
    assertRecords(await all(log, { seq: 18 }), 18, 20);
    assert.equal(log.bytes, statSync(join(tmp.dir, segFiles(tmp.dir)[0]!)).size);
  }
  await using log = await DurableLog.open(opts);
  assert.deepEqual([log.first, log.last], [1, 20]);
  assertRecords(await log.read(1, 100), 1, 20);
  await appendN(log, 21, 5);
  assertRecords(await log.read(1, 100), 1, 25);
  await log.close();
  await assert.rejects(log.append(hdr(0), pay(0)), { code: "ERR_CLOSED" });
});

test("segments roll at segmentBytes; reads span them; reopen trusts older segments", async () => {
  using tmp = tempDir();
  const opts: DurableLogOptions = { dir: tmp.dir, fsync: "never", segmentBytes: 400 };
  {
    await using log = await DurableLog.open(opts);
    await appendN(log, 1, 100);
    assert.ok(log.segmentCount > 5, `${log.segmentCount} segments`);
    for (const f of segFiles(tmp.dir)) assert.ok(statSync(join(tmp.dir, f)).size <= 400);
    assertRecords(await log.read(1, 1000), 1, 100);
    assertRecords(await log.read(37, 20), 37, 56);
  }
  const files = segFiles(tmp.dir);
  assert.equal(files[0], "00000000000000000001.seg");
  // each file's name is the seq of its first record
  for (const f of files) assert.equal(scan(join(tmp.dir, f))[0]?.seq, Number(f.slice(0, 20)));
  await using log = await DurableLog.open(opts);
  assert.deepEqual([log.first, log.last, log.segmentCount], [1, 100, files.length]);
  assertRecords(await all(log, { seq: 60 }), 60, 100);
  await appendN(log, 101, 10);
  assertRecords(await log.read(95, 100), 95, 110);
});

test("sparse index: reads from the middle of a large segment", async () => {
  using tmp = tempDir();
  const big = new Uint8Array(10_000).fill(7);
  {
    await using log = await DurableLog.open({ dir: tmp.dir, fsync: "never" });
    for (let i = 1; i <= 300; i++) await log.append(hdr(i), big);
    const r = await log.read(250, 2);
    assert.deepEqual(
      r.map((x) => x.seq),
      [250, 251],
    );
  }
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "never" });
  assert.deepEqual(
    (await log.read(299, 5)).map((x) => [x.seq, x.payload.length]),
    [
      [299, 10_000],
      [300, 10_000],
    ],
  );
});

test("retention by count keeps at least maxMessages and deletes whole old segments", async () => {
  using tmp = tempDir();
  await using log = await DurableLog.open({
    dir: tmp.dir,
    fsync: "never",
    segmentBytes: 400,
    retention: { maxMessages: 25 },
  });
  await appendN(log, 1, 100);
  await log.enforceRetention();
  assert.equal(log.last, 100);
  assert.ok(log.count >= 25, `count ${log.count}`);
  assert.ok(log.first > 1);
  // the oldest remaining segment is needed: without it fewer than 25 would remain
  const files = segFiles(tmp.dir);
  assert.equal(files.length, log.segmentCount);
  assert.ok(100 - Number(files[1]!.slice(0, 20)) + 1 < 25);
  assertRecords(await log.read(1, 1000), log.first, 100);
});

test("retention by bytes", async () => {
  using tmp = tempDir();
  await using log = await DurableLog.open({
    dir: tmp.dir,
    fsync: "never",
    segmentBytes: 400,
    retention: { maxBytes: 1500 },
  });
  await appendN(log, 1, 100);
  await log.enforceRetention();
  const sizes = segFiles(tmp.dir).map((f) => statSync(join(tmp.dir, f)).size);
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.equal(total, log.bytes);
  assert.ok(total >= 1500, `total ${total}`);
  assert.ok(total - sizes[0]! < 1500);
  assertRecords(await log.read(1, 1000), log.first, 100);
});

test("retention by age, with a test clock", async () => {
  using tmp = tempDir();
  let now = 1_000_000;
  await using log = await DurableLog.open({
    dir: tmp.dir,
    fsync: "never",
    segmentBytes: 400,
    retention: { maxAgeMs: 10_000 },
    clock: () => now,
  });
  await appendN(log, 1, 30); // old
  now += 20_000;
  await appendN(log, 31, 30); // new
  await log.enforceRetention();
  assert.ok(log.first > 1 && log.first <= 31, `first ${log.first}`);
  now += 20_000;
  await log.enforceRetention();
  // never the active segment
  assert.equal(log.segmentCount, 1);
  assert.ok(log.count >= 1);
  assertRecords(await log.read(1, 1000), log.first, 60);
});

test("read from a time, across segments; timestamps never decrease", async () => {
  using tmp = tempDir();
  let now = 5_000;
  await using log = await DurableLog.open({
    dir: tmp.dir,
    fsync: "never",
    segmentBytes: 300,
    clock: () => now,
  });
  for (let i = 1; i <= 40; i++) {
    now = 10_000 + i * 100;
    const r = await log.append(hdr(i), pay(i));
    assert.equal(r.ts, now);
  }
  const r = await log.append(hdr(41), pay(41), { ts: 1 }); // earlier than the last: raised
  assert.equal(r.ts, 14_000);
  assert.ok(log.segmentCount > 3);
  assert.equal(await log.seqAtTime(0), 1);
  assert.equal(await log.seqAtTime(12_050), 21);
  assert.equal(await log.seqAtTime(12_100), 21);
  assert.equal(await log.seqAtTime(99_999), 42);
  assertRecords(await all(log, { timeMs: 13_650 }), 37, 41);
});

test("torn tail at every byte offset of the last record, and every flipped byte", async () => {
  using tmp = tempDir();
  const src = join(tmp.dir, "src");
  {
    await using log = await DurableLog.open({ dir: src, fsync: "never" });
    await appendN(log, 1, 5);
  }
  const name = segFiles(src)[0]!;
  const bytes = readFileSync(join(src, name));
  const recs = scan(join(src, name));
  const lastRec = recs[4]!;
  assert.equal(lastRec.offset + lastRec.size, bytes.length);

  async function check(variant: Buffer, label: string): Promise<void> {
    const dir = join(tmp.dir, "case");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, name), variant);
    await using log = await DurableLog.open({ dir, fsync: "always" });
    assert.equal(log.last, 4, label);
    assertRecords(await log.read(1, 100), 1, 4);
    assert.equal(statSync(join(dir, name)).size, lastRec.offset, `${label}: torn tail truncated`);
    const r = await log.append(hdr(5), pay(5));
    assert.equal(r.seq, 5, label);
    assertRecords(await log.read(1, 100), 1, 5);
  }
  for (let cut = lastRec.offset; cut < bytes.length; cut++) {
    await check(bytes.subarray(0, cut), `cut at ${cut}`);
  }
  for (let at = lastRec.offset; at < bytes.length; at++) {
    const flipped = Buffer.from(bytes);
    flipped.writeUInt8(flipped.readUInt8(at) ^ 0x10, at);
    await check(flipped, `flip at ${at}`);
  }
});

test("torn last segment at every offset, header included (crash while rolling)", async () => {
  using tmp = tempDir();
  const src = join(tmp.dir, "src");
  {
    await using log = await DurableLog.open({ dir: src, fsync: "never", segmentBytes: 200 });
    await appendN(log, 1, 10);
  }
  const files = segFiles(src);
  assert.ok(files.length >= 2);
  const lastName = files[files.length - 1]!;
  const lastBytes = readFileSync(join(src, lastName));
  const lastRecs = scan(join(src, lastName));
  const before = Number(lastName.slice(0, 20)) - 1;
  for (let cut = 0; cut < lastBytes.length; cut++) {
    const dir = join(tmp.dir, `c`);
    rmSync(dir, { recursive: true, force: true });
    cpSync(src, dir, { recursive: true });
    writeFileSync(join(dir, lastName), lastBytes.subarray(0, cut));
    await using log = await DurableLog.open({ dir, fsync: "always", segmentBytes: 200 });
    const complete = lastRecs.filter((r) => r.offset + r.size <= cut).length;
    assert.equal(log.last, before + complete, `cut at ${cut}`);
    assertRecords(await log.read(1, 100), 1, before + complete);
    const r = await log.append(hdr(before + complete + 1), pay(before + complete + 1));
    assert.equal(r.seq, before + complete + 1);
  }
});

test("ENOSPC refuses the append with ERR_STORAGE; reads go on; appends resume without gap or duplicate", async () => {
  using tmp = tempDir();
  const { fs, faults } = faultyFs();
  const opts: DurableLogOptions = { dir: tmp.dir, fsync: "always", fs };
  {
    await using log = await DurableLog.open(opts);
    await appendN(log, 1, 5);

    faults.write = "ENOSPC";
    const refused = await Promise.allSettled([1, 2, 3].map((i) => log.append(hdr(100 + i), pay(100 + i))));
    for (const r of refused) {
      assert.equal(r.status, "rejected");
      const err = r.reason as MyelinError;
      assert.ok(err instanceof MyelinError);
      assert.equal(err.code, "ERR_STORAGE");
      assert.match(err.message, /disk is full/);
      assert.equal((err.cause as { code?: string }).code, "ENOSPC");
    }
    assert.equal(log.last, 5);
    assertRecords(await log.read(1, 100), 1, 5);

    // a fault in the repair path too: still refused, still readable
    faults.truncate = "EIO";
    await assert.rejects(log.append(hdr(0), pay(0)), { code: "ERR_STORAGE" });
    assertRecords(await log.read(1, 100), 1, 5);

    // fsync failure: refused as well, and the written bytes are cut back
    faults.write = undefined;
    faults.truncate = undefined;
    faults.datasync = "EIO";
    await assert.rejects(log.append(hdr(0), pay(0)), { code: "ERR_STORAGE" });
    faults.datasync = undefined;

    await appendN(log, 6, 5);
    assertRecords(await log.read(1, 100), 1, 10);

    // fdatasync fails after a good write (and again during the repair): refused, then recovered
    faults.datasync = "EIO";
    await assert.rejects(log.append(hdr(0), pay(0)), { code: "ERR_STORAGE" });
    assert.equal(log.last, 10);
    faults.datasync = undefined;
    await appendN(log, 11, 5);
  }
  // nothing refused was stored, not even in the file's tail
  await using log = await DurableLog.open({ dir: tmp.dir });
  assertRecords(await log.read(1, 100), 1, 15);
  const name = segFiles(tmp.dir)[0]!;
  const recs = scan(join(tmp.dir, name));
  assert.equal(recs.length, 15);
  assert.equal(statSync(join(tmp.dir, name)).size, recs[14]!.offset + recs[14]!.size);
});

test("ENOSPC while rolling a segment is refused cleanly too", async () => {
  using tmp = tempDir();
  const { fs, faults } = faultyFs();
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "always", fs, segmentBytes: 300 });
  await appendN(log, 1, 6);
  faults.write = "ENOSPC";
  for (let i = 0; i < 5; i++) await assert.rejects(log.append(hdr(7), pay(7)), { code: "ERR_STORAGE" });
  faults.write = undefined;
  await appendN(log, 7, 20);
  assertRecords(await log.read(1, 100), 1, 26);
});

test("group commit: 200 concurrent appends with fsync always share few fdatasyncs", async () => {
  using tmp = tempDir();
  const { fs, counts } = faultyFs();
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "always", fs });
  const before = counts.datasyncs;
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => log.append(hdr(i + 1), pay(i + 1))),
  );
  assert.deepEqual(
    results.map((r) => r.seq),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  const syncs = counts.datasyncs - before;
  assert.ok(syncs >= 1 && syncs <= 10, `${syncs} fdatasyncs for 200 appends`);
  assertRecords(await log.read(1, 1000), 1, 200);
});

test("group commit: appends arriving during an fdatasync are written together, confirmed by the next one, never before it", async () => {
  using tmp = tempDir();
  // Every fdatasync of a segment waits until the test lets it go.
  const gates: (() => void)[] = [];
  let armed = false;
  let writes = 0;
  const fs: typeof nodeStoreFs = {
    ...nodeStoreFs,
    async open(path, flags) {
      const f = await nodeStoreFs.open(path, flags);
      return {
        ...f,
        read: (b, o, l, p) => f.read(b, o, l, p),
        write: (b, o, l, p) => (writes++, f.write(b, o, l, p)),
        truncate: (l) => f.truncate(l),
        size: () => f.size(),
        close: () => f.close(),
        datasync: () =>
          armed ? new Promise<void>((r) => gates.push(r)).then(() => f.datasync()) : f.datasync(),
      };
    },
  };
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "always", fs });
  armed = true;
  const settled = new Set<string>();
  const track = <T>(name: string, p: Promise<T>): Promise<T> => {
    void p.then(() => settled.add(name));
    return p;
  };
  const until = async (what: string, cond: () => boolean): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setImmediate(r));
    }
  };
  const first = track("first", log.append(hdr(1), pay(1)));
  await until("the first fdatasync", () => gates.length === 1);
  const writesBefore = writes;
  // Arriving while that fdatasync runs: 100 single appends and a batch of 50.
  const singles = Array.from({ length: 100 }, (_, i) => track(`s${i}`, log.append(hdr(i + 2), pay(i + 2))));
  const batch = track(
    "batch",
    log.appendBatch(
      Array.from({ length: 50 }, (_, i) => hdr(i + 102)),
      Array.from({ length: 50 }, (_, i) => pay(i + 102)),
    ),
  );
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(settled.size, 0, "nothing is confirmed before its fdatasync returns");
  assert.equal(log.last, 0, "readers see nothing before the fdatasync returns");
  gates.shift()!();
  assert.equal((await first).seq, 1);
  await until("the second fdatasync", () => gates.length === 1);
  assert.equal(writes - writesBefore, 1, "the 150 waiting records go out in one write");
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual([...settled], ["first"], "the group waits for its own fdatasync");
  assert.equal(log.last, 1);
  gates.shift()!();
  const seqs = (await Promise.all(singles)).map((r) => r.seq);
  assert.deepEqual(
    seqs,
    Array.from({ length: 100 }, (_, i) => i + 2),
  );
  assert.deepEqual({ ...(await batch), ts: 0 }, { firstSeq: 102, count: 50, ts: 0 });
  assert.equal(gates.length, 0, "one fdatasync for the whole group");
  assertRecords(await log.read(1, 1000), 1, 151);
  await assert.rejects(log.appendBatch([hdr(1)], [pay(1), pay(2)]), { code: "ERR_INVALID_ARGUMENT" });
  assert.deepEqual(await log.appendBatch([], []), { firstSeq: 152, count: 0, ts: (await batch).ts });
});

test("fsync batch acknowledges after a shared fdatasync", async () => {
  using tmp = tempDir();
  const { fs, counts } = faultyFs();
  {
    await using log = await DurableLog.open({ dir: tmp.dir, fsync: "batch", batchMs: 2, fs });
    const before = counts.datasyncs;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => log.append(hdr(i + 1), pay(i + 1))),
    );
    assert.equal(results[99]!.seq, 100);
    const syncs = counts.datasyncs - before;
    assert.ok(syncs >= 1 && syncs <= 5, `${syncs} fdatasyncs`);
    await appendN(log, 101, 3);
  }
  await using log = await DurableLog.open({ dir: tmp.dir });
  assertRecords(await log.read(1, 1000), 1, 103);
});

test("bad options and too-large records are refused with clear codes", async () => {
  using tmp = tempDir();
  await assert.rejects(DurableLog.open({ dir: tmp.dir, segmentBytes: 10 }), { code: "ERR_INVALID_ARGUMENT" });
  await assert.rejects(DurableLog.open({ dir: tmp.dir, fsync: "sometimes" as "always" }), {
    code: "ERR_INVALID_ARGUMENT",
  });
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "never" });
  await assert.rejects(log.append(new Uint8Array(70_000), new Uint8Array(0)), {
    code: "ERR_PAYLOAD_TOO_LARGE",
  });
  await assert.rejects(log.append(new Uint8Array(0), new Uint8Array(0), { ts: NaN }), {
    code: "ERR_INVALID_ARGUMENT",
  });
  assert.equal((await log.append(new Uint8Array(0), new Uint8Array(0))).seq, 1);
});

test("a damaged older segment header is reported, not skipped", async () => {
  using tmp = tempDir();
  {
    await using log = await DurableLog.open({ dir: tmp.dir, fsync: "never", segmentBytes: 200 });
    await appendN(log, 1, 10);
  }
  const first = join(tmp.dir, segFiles(tmp.dir)[0]!);
  const b = readFileSync(first);
  b.writeUInt8(b.readUInt8(20) ^ 1, 20);
  writeFileSync(first, b);
  await assert.rejects(DurableLog.open({ dir: tmp.dir }), { code: "ERR_STORAGE" });
});

test("appends beyond maxPendingBytes are refused with ERR_BACKPRESSURE, the others stored", async () => {
  using tmp = tempDir();
  await using log = await DurableLog.open({ dir: tmp.dir, fsync: "always", maxPendingBytes: 1000 });
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) => log.append(hdr(i), new Uint8Array(100))),
  );
  const ok = results.filter((r) => r.status === "fulfilled").length;
  const refused = results.filter((r) => r.status === "rejected");
  assert.ok(ok >= 1 && refused.length >= 1, `${ok} stored, ${refused.length} refused`);
  for (const r of refused) assert.equal((r.reason as MyelinError).code, "ERR_BACKPRESSURE");
  assert.equal(log.last, ok);
});

test("recovery logs what it cuts: a torn tail briefly; damage before more records loudly, with the bytes saved aside", async () => {
  using tmp = tempDir();
  const src = join(tmp.dir, "src");
  {
    await using log = await DurableLog.open({ dir: src, fsync: "never" });
    await appendN(log, 1, 10);
  }
  const name = segFiles(src)[0]!;
  const bytes = readFileSync(join(src, name));
  const recs = scan(join(src, name));

  // A torn tail: the last record is cut short.
  const torn = join(tmp.dir, "torn");
  mkdirSync(torn);
  writeFileSync(join(torn, name), bytes.subarray(0, bytes.length - 3));
  const tornLines: string[] = [];
  {
    await using log = await DurableLog.open({ dir: torn, log: (l) => tornLines.push(l) });
    assert.equal(log.last, 9);
  }
  assert.equal(tornLines.length, 1);
  assert.match(tornLines[0]!, /cut a torn tail of \d+ bytes .*never acknowledged; the log ends at seq 9/);
  assert.deepEqual(segFiles(torn), [name]);
  assert.equal(readdirSync(torn).length, 1, "nothing saved aside for a torn tail");

  // Damage in the middle (as when a second writer appended at the same offsets): records 5..10 are
  // cut, saved byte for byte, and the cut is logged with where and why.
  const damaged = join(tmp.dir, "damaged");
  mkdirSync(damaged);
  const bad = Buffer.from(bytes);
  const at = recs[4]!.offset;
  bad.writeUInt8(bad.readUInt8(at + recs[4]!.size - 1) ^ 0xff, at + recs[4]!.size - 1);
  writeFileSync(join(damaged, name), bad);
  const lines: string[] = [];
  {
    await using log = await DurableLog.open({ dir: damaged, log: (l) => lines.push(l) });
    assert.equal(log.last, 4);
    assertRecords(await log.read(1, 100), 1, 4);
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, new RegExp(`DAMAGED at byte ${at} \\(record checksum mismatch\\)`));
  assert.match(lines[0]!, /keeping seqs up to 4/);
  const saved = join(damaged, `${name}.damaged-${at}`);
  assert.deepEqual(readFileSync(saved), bad.subarray(at));
  assert.equal(statSync(join(damaged, name)).size, at);
});

test("readRaw hands out the records as stored, from the cache and from the files; a small cache evicts part of a write", async () => {
  using d = tempDir();
  // About three records fit in this cache: most reads go to the files, some to a partly evicted write.
  const log = await DurableLog.open({ dir: d.dir, fsync: "never", cacheBytes: 150, segmentBytes: 1024 });
  const stored: LogRecord[] = [];
  for (let i = 1; i <= 40; i += 8) {
    const n = Math.min(8, 41 - i);
    const headers = Array.from({ length: n }, (_, k) => (k % 3 === 0 ? hdr(i + k) : new Uint8Array(0)));
    const payloads = Array.from({ length: n }, (_, k) => pay(i + k));
    const r = await log.appendBatch(headers, payloads);
    assert.equal(r.firstSeq, i);
  }
  stored.push(...(await log.read(1, 100)));
  assert.deepEqual(
    stored.map((r) => r.seq),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
  const expected = (from: number, n: number): Buffer =>
    Buffer.concat(
      stored.slice(from - 1, from - 1 + n).map((r) => encodeRecord(r.seq, r.ts, r.header, r.payload)),
    );
  for (const [from, n] of [
    [1, 40],
    [5, 3],
    [17, 100],
    [38, 3],
    [40, 1],
  ] as const) {
    const raw = await log.readRaw(from, n);
    const count = Math.min(n, 41 - from);
    assert.deepEqual([raw.firstSeq, raw.count], [from, count], `readRaw(${from}, ${n})`);
    assert.deepEqual(
      Buffer.from(raw.bytes),
      expected(from, count),
      `readRaw(${from}, ${n}): the stored bytes`,
    );
    // read() over the same records, cached or not, gives the same records.
    assert.deepEqual(
      (await log.read(from, n)).map((r) => [r.seq, r.ts, [...r.header], [...r.payload]]),
      stored.slice(from - 1, from - 1 + count).map((r) => [r.seq, r.ts, [...r.header], [...r.payload]]),
    );
  }
  const end = await log.readRaw(41, 5);
  assert.deepEqual([end.firstSeq, end.count, end.bytes.length], [41, 0, 0], "past the end: nothing");
  await log.close();

  // With the default cache every record is served from memory: the same bytes.
  using d2 = tempDir();
  const cached = await DurableLog.open({ dir: d2.dir, fsync: "never" });
  await cached.appendBatch(
    stored.map((r) => r.header),
    stored.map((r) => r.payload),
  );
  const all = await cached.readRaw(1, 100);
  const reparsed: [number, number[], number[]][] = [];
  const reader = new SegmentReader({ resume: { offset: 0, seq: 1 } });
  reader.push(all.bytes);
  reader.end();
  for (let r = reader.next(); r !== undefined && !r.torn; r = reader.next())
    reparsed.push([r.seq, [...r.header], [...r.payload]]);
  assert.deepEqual(
    reparsed,
    stored.map((r) => [r.seq, [...r.header], [...r.payload]]),
    "the records parse, checksums included",
  );
  assert.deepEqual([all.firstSeq, all.count], [1, 40]);
  await cached.close();
});
