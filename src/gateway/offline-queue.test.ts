import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import { OfflineQueue, type QueuedMessage } from "./offline-queue.js";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-oq-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

async function drain(q: OfflineQueue, ack: boolean): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const batch = await q.take(7);
    if (batch.length === 0) return out;
    for (const m of batch) {
      out.push(text(m.payload));
      if (ack) q.ack(m);
    }
  }
}

test("offline queue: append, take in order, ack; unacknowledged messages survive a reopen", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir });
  for (let i = 0; i < 20; i++) await q.append(`a/${i}`, 1, bytes(`m${i}`));
  const first = await q.take(5);
  assert.deepEqual(
    first.map((m) => [m.topic, m.qos, text(m.payload), m.attempts]),
    [0, 1, 2, 3, 4].map((i) => [`a/${i}`, 1, `m${i}`, 1]),
  );
  // Acks out of order: 0, 1, 3 acked; 2 and 4 not.
  q.ack(first[0]!);
  q.ack(first[1]!);
  q.ack(first[3]!);
  q.ack(first[3]!); // twice: no effect
  assert.equal(q.stats().messages, 17);
  assert.equal(q.stats().inFlight, 2);
  await q.close();

  const q2 = await OfflineQueue.open({ dir: t.dir });
  assert.equal(q2.stats().recovered, 17);
  const rest = await drain(q2, true);
  assert.deepEqual(rest, ["m2", "m4", ...Array.from({ length: 15 }, (_, i) => `m${i + 5}`)]);
  assert.equal(q2.stats().messages, 0);
  await q2.close();
  const q3 = await OfflineQueue.open({ dir: t.dir });
  assert.equal(q3.stats().recovered, 0);
  assert.deepEqual(await q3.take(10), []);
  await q3.close();
});

test("offline queue: bounded by messages and bytes; a full queue refuses with ERR_QUEUE_FULL and counts", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir, maxMessages: 3, maxBytes: 1000 });
  await q.append("t", 1, bytes("1"));
  await q.append("t", 1, bytes("2"));
  await q.append("t", 1, bytes("3"));
  await assert.rejects(q.append("t", 1, bytes("4")), (e: unknown) => {
    assert.ok(e instanceof MyelinError);
    assert.equal(e.code, "ERR_QUEUE_FULL");
    assert.match(e.message, /maxMessages/);
    return true;
  });
  assert.equal(q.stats().refused, 1);
  // Space comes back when the broker acknowledges.
  const space = q.waitForSpace(1);
  const [m] = await q.take(1);
  q.ack(m!);
  await space;
  await q.append("t", 1, bytes("4"));
  // Bytes bound: 900 more bytes do not fit next to what waits.
  await assert.rejects(q.append("t", 1, new Uint8Array(999)), { code: "ERR_QUEUE_FULL" });
  // A bounded wait times out.
  await assert.rejects(q.waitForSpace(1, 20), { code: "ERR_TIMEOUT" });
  assert.deepEqual(await drain(q, true), ["2", "3", "4"]);
  assert.equal(q.stats().refused, 2);
  // Concurrent appends cannot overshoot the bound.
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) => q.append("t", 1, bytes(`c${i}`))),
  );
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 3);
  await q.close();
});

test("offline queue: release and releaseAll send again, oldest first", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir });
  for (let i = 0; i < 6; i++) await q.append("t", 1, bytes(`m${i}`));
  const a = await q.take(4);
  q.ack(a[0]!);
  q.release(a[2]!);
  const b = await q.take(2);
  assert.deepEqual(
    b.map((m) => [text(m.payload), m.attempts]),
    [
      ["m2", 2],
      ["m4", 1],
    ],
  );
  q.releaseAll();
  assert.equal(q.stats().inFlight, 0);
  const c = await q.take(10);
  assert.deepEqual(
    c.map((m) => text(m.payload)),
    ["m1", "m2", "m3", "m4", "m5"],
  );
  const ready = q.waitForReady();
  await q.append("t", 0, bytes("late"));
  await ready;
  await q.close();
});

test("offline queue: generations roll and acknowledged ones are deleted", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir, generationBytes: 2000 });
  const payload = new Uint8Array(300);
  const taken: QueuedMessage[] = [];
  for (let i = 0; i < 40; i++) {
    await q.append("t", 1, payload);
    taken.push(...(await q.take(100)));
  }
  assert.equal(taken.length, 40);
  assert.ok(q.stats().generations > 3, `generations: ${q.stats().generations}`);
  for (const m of taken) q.ack(m);
  await q.close();
  const q2 = await OfflineQueue.open({ dir: t.dir, generationBytes: 2000 });
  assert.equal(q2.stats().recovered, 0);
  assert.equal(q2.stats().generations, 1);
  assert.deepEqual(
    readdirSync(t.dir).filter((n) => n.startsWith("g")),
    [
      readdirSync(t.dir)
        .filter((n) => n.startsWith("g"))
        .sort()
        .at(-1),
    ],
  );
  await q2.close();
});

test("offline queue: a half-acknowledged run across generations resumes exactly after the reopen", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir, generationBytes: 1000 });
  for (let i = 0; i < 50; i++) await q.append("t", 1, bytes(`m${i}`.padEnd(100, ".")));
  const all = await q.take(50);
  for (const m of all.filter((_, i) => i % 3 === 0)) q.ack(m);
  await q.close();
  const q2 = await OfflineQueue.open({ dir: t.dir, generationBytes: 1000 });
  const rest = (await drain(q2, true)).map((s) => s.replace(/\.+$/, ""));
  assert.deepEqual(
    rest,
    Array.from({ length: 50 }, (_, i) => i)
      .filter((i) => i % 3 !== 0)
      .map((i) => `m${i}`),
  );
  await q2.close();
});

test("offline queue: a second open of the same directory is refused while the first is open", async () => {
  using t = tempDir();
  const q = await OfflineQueue.open({ dir: t.dir });
  await assert.rejects(
    OfflineQueue.open({ dir: t.dir }),
    (e: unknown) =>
      e instanceof MyelinError && e.code === "ERR_LOCKED" && e.message.includes(`pid ${process.pid}`),
  );
  await q.append("a/1", 1, bytes("kept"));
  await q.close();
  const again = await OfflineQueue.open({ dir: t.dir });
  assert.equal(again.stats().messages, 1);
  await again.close();
});
