/** QoS behaviour not covered elsewhere: deadlines, best-effort drops counted, queue overflow policies. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, std_msgs, t } from "../src/msgs/index.js";
import { spawnFixture, tempRuntime } from "./helpers.js";

const Blob = defineMessage("myelin_test/Blob", { n: t.u32(), data: t.bytes() });

test("a subscription reports a missed deadline as an event", { timeout: 10000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "watch", runtimeDir: rt.dir });
  const sub = await node.createSubscription("/heartbeat", std_msgs.Bool, () => {}, {
    qos: { deadlineMs: 100 },
  });
  const pub = await node.createPublisher("/heartbeat", std_msgs.Bool);
  await pub.publish({ data: true });
  const [ev] = (await once(sub, "deadline")) as [{ missed: number }];
  assert.equal(ev.missed, 1);
  assert.equal(sub.stats().deadlinesMissed, 1);
});

test(
  "a slow best-effort subscriber drops and counts instead of slowing the publisher",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "fast", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/frames", Blob, { qos: { reliability: "best-effort" } });
    await using sub = spawnFixture(
      "node-proc",
      {
        role: "sub",
        topic: "/frames",
        type: "blob",
        delayMs: 2,
        count: 50,
        qos: { reliability: "best-effort", depth: 5 },
      },
      { MYELIN_RUNTIME_DIR: rt.dir },
    );
    await pub.waitForSubscribers(1, 10000);
    const n = 20000;
    const payload = new Uint8Array(256);
    const started = Date.now();
    for (let i = 1; i <= n; i++) await pub.publish({ n: i, data: payload });
    const elapsed = Date.now() - started;
    const done = await sub.waitFor((l) => l.event === "done", 20000, "the subscriber to read 50");
    const stats = done["stats"] as { received: number; dropped: number; pending: number };
    // It reads at ~2 ms a message while 20000 go by: its queue (100) keeps the newest, the rest are
    // dropped (by the queue or, past its credit, by the publisher: a gap), counted, and the publisher
    // never waited for it.
    assert.ok(stats.dropped > 0, JSON.stringify(stats));
    assert.ok(stats.received <= n, JSON.stringify(stats));
    assert.ok(
      elapsed < n * 2,
      `publishing took ${elapsed} ms; a best-effort publisher must not wait for the reader`,
    );
  },
);

test(
  "in-process iterator subscriptions apply their overflow policy and count drops",
  { timeout: 10000 },
  async () => {
    using rt = tempRuntime();
    await using node = await createNode({ name: "local", runtimeDir: rt.dir });
    const oldest = await node.createSubscription("/n", std_msgs.UInt32, undefined, {
      queueSize: 3,
      overflow: "drop-oldest",
    });
    const newest = await node.createSubscription("/n", std_msgs.UInt32, undefined, {
      queueSize: 3,
      overflow: "drop-newest",
    });
    const pub = await node.createPublisher("/n", std_msgs.UInt32);
    for (let i = 1; i <= 10; i++) await pub.publish({ data: i });
    const read = async (s: typeof oldest): Promise<number[]> => {
      const out: number[] = [];
      for await (const { msg } of s) {
        out.push(msg.data);
        if (out.length === 3) break;
      }
      return out;
    };
    assert.deepEqual(await read(oldest), [8, 9, 10]);
    assert.deepEqual(await read(newest), [1, 2, 3]);
    assert.equal(oldest.stats().dropped, 7);
    assert.equal(newest.stats().dropped, 7);
  },
);
