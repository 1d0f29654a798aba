/**
 * Split recordings (`splitBytes`, `splitMs`) with the recording thread: every message lands in exactly
 * one file, each file is closed, indexed and carries its `myelin.recording` metadata. And a full queue:
 * every message is recorded or counted as dropped, exactly once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { createNode } from "../src/node/index.js";
import { openBag } from "../src/record/bag-reader.js";
import { channelEncodingOf } from "../src/record/channel-encoding.js";
import { Recorder, splitName } from "../src/record/recorder.js";
import { tempRuntime, until } from "./helpers.js";

for (const mode of ["bytes", "time"] as const) {
  test(
    `split by ${mode}: every message in exactly one closed, indexed file`,
    { timeout: 60000 },
    async () => {
      using rt = tempRuntime();
      await using _hub = await Hub.start({ runtimeDir: rt.dir });
      await using node = await createNode({ name: "split", runtimeDir: rt.dir });
      const output = join(rt.dir, "run.mcap");
      const rec = new Recorder(node, {
        output,
        topics: ["/split/chatter"],
        chunkMs: 20,
        ...(mode === "bytes" ? { splitBytes: 16 * 1024 } : { splitMs: 150 }),
      });
      const pub = await node.createPublisher("/split/chatter", std_msgs.String);
      const started = new Promise<void>((resolve) => rec.once("topic", () => resolve()));
      await rec.start();
      await started;
      await pub.waitForSubscribers(1, 10000);
      const N = 200;
      const text = (i: number): string => `${i} `.padEnd(2000, "x");
      const recorded = (): number => rec.stats().topics[0]?.messages ?? 0;
      for (let i = 1; i <= N; i++) {
        await pub.publish({ data: text(i) });
        if (i % 20 === 0) {
          await until(() => recorded() === i, 20000, `${i} messages recorded`);
          if (mode === "time") await until(() => rec.stats().files.length >= i / 40, 20000, "a split");
        }
      }
      const s = await rec.stop();
      assert.equal(s.topics[0]!.messages, N);
      assert.ok(s.files.length >= 3, `split into several files (${s.files.length})`);
      assert.deepEqual(
        s.files,
        s.files.map((_, i) => splitName(output, i)),
      );
      assert.ok(!existsSync(splitName(output, s.files.length)), "the file opened in advance is removed");
      const enc = channelEncodingOf(std_msgs.String);
      const seen = new Map<number, string>();
      for (const [k, f] of s.files.entries()) {
        const bag = await openBag(f);
        try {
          for await (const m of bag.reader.readMessages({ validateCrcs: true })) {
            assert.ok(!seen.has(m.sequence), `#${m.sequence} in one file only`);
            seen.set(m.sequence, enc.decode(m.data).data);
          }
          let meta: Map<string, string> | undefined;
          for await (const md of bag.reader.readMetadata())
            if (md.name === "myelin.recording") meta = md.metadata;
          assert.equal(meta?.get("file_index"), String(k), `${f}: its metadata`);
        } finally {
          await bag.close();
        }
      }
      assert.equal(seen.size, N);
      for (let i = 1; i <= N; i++) assert.equal(seen.get(i), text(i));
    },
  );
}

test("a full queue drops messages, each counted exactly once per topic, in the stats and the file", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "queue", runtimeDir: rt.dir });
  const output = join(rt.dir, "full.mcap");
  const rec = new Recorder(node, { output, topics: ["/queue/chatter"], maxQueueBytes: 64 * 1024 });
  const pub = await node.createPublisher("/queue/chatter", std_msgs.String);
  const started = new Promise<void>((resolve) => rec.once("topic", () => resolve()));
  await rec.start();
  await started;
  await pub.waitForSubscribers(1, 10000);
  // 500 messages of 2 KB within one event-loop turn: the batch cannot be handed over meanwhile, so
  // the queue fills after about 32 of them and the rest are dropped.
  const N = 500;
  const sends: Promise<void>[] = [];
  for (let i = 1; i <= N; i++) sends.push(pub.publish({ data: `${i} `.padEnd(2000, "x") }));
  await Promise.all(sends);
  const s = await rec.stop();
  const t = s.topics[0]!;
  assert.ok(t.dropped > 0 && t.messages > 0, `some kept (${t.messages}), some dropped (${t.dropped})`);
  assert.equal(t.messages + t.dropped, N, "every message recorded or counted as dropped");
  const bag = await openBag(output);
  try {
    let n = 0;
    for await (const m of bag.reader.readMessages()) {
      n++;
      assert.equal(m.sequence, n, "the first ones are kept, in order");
    }
    assert.equal(n, t.messages);
    let meta: Map<string, string> | undefined;
    for await (const md of bag.reader.readMetadata()) if (md.name === "myelin.recording") meta = md.metadata;
    assert.deepEqual(JSON.parse(meta!.get("dropped")!), { "/queue/chatter": t.dropped });
  } finally {
    await bag.close();
  }
});
