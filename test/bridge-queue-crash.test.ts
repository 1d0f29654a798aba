/**
 * The bridges' offline queue under `kill -9`: a writer process appends and acknowledges while it
 * is killed; reopened, the queue holds every message whose append had resolved and was not
 * acknowledged, each once. (Its stdout is written asynchronously, so lines printed just before the
 * kill may be lost: the checks only rely on lines that were read.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { OfflineQueue } from "../src/gateway/offline-queue.js";
import { spawnFixture } from "./helpers.js";
import { tempDir } from "./bridge-peers.js";

test(
  "offline queue: kill -9 while appending and acknowledging loses no stored message",
  { timeout: 30000 },
  async () => {
    using t = tempDir("myelin-oq-crash-");
    await using proc = spawnFixture("bridge-queue-writer", { dir: t.dir, count: 100000 }, {});
    await proc.waitForCount((l) => l.event === "stored", 600, 20000, "stored messages");
    const stdoutClosed = new Promise((resolve) => proc.child.stdout!.once("close", resolve));
    proc.kill("SIGKILL");
    await proc.exit(10000);
    await stdoutClosed; // every line that left the process has been read
    const stored = new Set(proc.lines.filter((l) => l.event === "stored").map((l) => l["i"] as number));
    const acked = new Set(proc.lines.filter((l) => l.event === "acked").map((l) => l["i"] as number));

    const q = await OfflineQueue.open({ dir: t.dir, generationBytes: 4096 });
    try {
      const found: number[] = [];
      for (;;) {
        const batch = await q.take(500);
        if (batch.length === 0) break;
        for (const m of batch)
          found.push(Number(new TextDecoder().decode(m.payload).replace(/\.+$/, "").slice(1)));
      }
      assert.equal(new Set(found).size, found.length, "no message twice");
      assert.equal(q.stats().recovered, found.length);
      // Odd messages are never acknowledged: every one whose append resolved must be there.
      // (Even ones are acknowledged as they come; their acks may or may not have reached the disk.)
      const foundSet = new Set(found);
      for (const i of stored) {
        if (i % 2 === 1) assert.ok(foundSet.has(i), `stored, unacknowledged q${i} is in the queue`);
      }
      // Most even ones were acknowledged before the kill and do not come back.
      assert.ok(
        acked.size > 0 && found.filter((i) => i % 2 === 0).length < acked.size,
        "acknowledged messages stay gone",
      );
    } finally {
      await q.close();
    }
  },
);
