/**
 * Durable topics end to end: persistent publish with confirm through the hub's store, durable
 * consumers that resume by name, redelivery after the ack timeout, dead letters after maxDeliver,
 * and kill -9 of the hub process while a publisher streams.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { createNode, type DurableConsumer, type Node } from "../src/node/index.js";
import { myelin_msgs, std_msgs } from "../src/msgs/index.js";
import { StoreService } from "../src/store/index.js";
import { spawnFixture, tempRuntime } from "./helpers.js";

async function take<T>(
  c: DurableConsumer<T>,
  n: number,
  ack = true,
): Promise<{ msg: T; seq: number; deliveries: number }[]> {
  const got: { msg: T; seq: number; deliveries: number }[] = [];
  if (n === 0) return got;
  for await (const m of c) {
    got.push({ msg: m.msg, seq: m.seq, deliveries: m.deliveries });
    if (ack) await m.ack();
    if (got.length === n) break;
  }
  return got;
}

/** Resolves once `node` sees the store's services in the graph. */
async function untilStore(node: Node): Promise<void> {
  await node.waitForGraph(
    (g) => g.nodes.some((n) => n.services.some((s) => s.service === "/_store/append")),
    5000,
  );
}

/** A hub with its store in this process and a node that sees the store; all closed on dispose. */
async function storeWorld(dir: string): Promise<{ node: Node; [Symbol.asyncDispose](): Promise<void> }> {
  const hub = await Hub.start({ runtimeDir: dir });
  const store = await StoreService.start({ dataDir: join(dir, "data"), runtimeDir: dir });
  const node = await createNode({ name: "app", runtimeDir: dir });
  await untilStore(node);
  return {
    node,
    async [Symbol.asyncDispose]() {
      await node.close();
      await store.close();
      hub.close();
    },
  };
}

test(
  "a durable consumer with a small window reads a topic that grows meanwhile in order, each message once",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using w = await storeWorld(rt.dir);
    const node = w.node;
    const pub = await node.createPublisher("/stream", std_msgs.UInt32, { qos: { durability: "persistent" } });
    const publish = (from: number, n: number): Promise<unknown> =>
      Promise.all(Array.from({ length: n }, (_, i) => pub.publish({ data: from + i })));
    await publish(1, 1500);
    // 64 in flight: many credit grants per second, each answered in order.
    const c = node.createDurableConsumer("/stream", std_msgs.UInt32, { name: "tail", maxInFlight: 64 });
    const seen: number[] = [];
    const acks: Promise<void>[] = [];
    const more = (async () => {
      // The rest arrives in bursts while the consumer reads (and sometimes waits for messages).
      for (let from = 1501; from <= 3000; from += 250) {
        await publish(from, 250);
        await new Promise((r) => setImmediate(r));
      }
    })();
    for await (const m of c) {
      assert.equal(m.msg.data, m.seq, `seq ${m.seq} carries its message`);
      seen.push(m.seq);
      acks.push(m.ack());
      if (seen.length === 3000) break;
    }
    await more;
    await Promise.all(acks);
    assert.deepEqual(
      seen,
      Array.from({ length: 3000 }, (_, i) => i + 1),
      "in order, none twice",
    );
    assert.deepEqual(c.stats(), { received: 3000, acked: 3000, nacked: 0, invalid: 0, inFlight: 0 });
    await c.close();
    const info = await node.createClient("/_store/info", myelin_msgs.StoreInfo).call({ topic: "/stream" });
    assert.deepEqual([info.consumers, info.lags, info.pending], [["tail"], [0], [0]]);
  },
);

test(
  "persistent publish is confirmed from disk; a durable consumer reads, acks and resumes by name",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using w = await storeWorld(rt.dir);
    const node = w.node;
    const pub = await node.createPublisher("/orders", std_msgs.String, { qos: { durability: "persistent" } });
    await Promise.all(Array.from({ length: 100 }, (_, i) => pub.publish({ data: `order ${i}` })));

    const c1 = node.createDurableConsumer("/orders", std_msgs.String, { name: "billing" });
    const first = await take(c1, 100);
    assert.deepEqual(
      first.map((m) => m.msg.data),
      Array.from({ length: 100 }, (_, i) => `order ${i}`),
    );
    assert.deepEqual(
      first.map((m) => m.seq),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    await c1.close();

    // Same name again: nothing old comes back; new messages do.
    await pub.publish({ data: "late 1" });
    await pub.publish({ data: "late 2" });
    const c2 = node.createDurableConsumer("/orders", std_msgs.String, { name: "billing" });
    assert.deepEqual(
      (await take(c2, 2)).map((m) => m.msg.data),
      ["late 1", "late 2"],
    );
    await c2.close();

    // Another name starts from the first message.
    const audit = node.createDurableConsumer("/orders", std_msgs.String, {
      name: "audit",
      startAt: { seq: 100 },
    });
    assert.deepEqual(
      (await take(audit, 1)).map((m) => m.seq),
      [100],
    );
    await audit.close();

    const info = await node.createClient("/_store/info", myelin_msgs.StoreInfo).call({ topic: "/orders" });
    assert.equal(info.last_seq, 102);
    assert.equal(info.type, "std_msgs/String");
    assert.deepEqual(info.consumers, ["audit", "billing"]);
    assert.equal(info.lags[info.consumers.indexOf("billing")], 0);
  },
);

test(
  "an unacknowledged message comes back after the ack timeout; after maxDeliver it is dead-lettered",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using w = await storeWorld(rt.dir);
    const node = w.node;
    const pub = await node.createPublisher("/jobs", std_msgs.String, { qos: { durability: "persistent" } });
    await pub.publish({ data: "poison" });

    const c = node.createDurableConsumer("/jobs", std_msgs.String, {
      name: "worker",
      ackTimeoutMs: 300,
      maxDeliver: 3,
    });
    const seen: number[] = [];
    for await (const m of c) {
      seen.push(m.deliveries);
      if (m.deliveries === 1) continue; // never acked: must come back after 300 ms
      await m.nack(); // refused: back at once, until maxDeliver
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, [1, 2, 3]);

    const dlq = node.createDurableConsumer("/jobs/dead_letter", std_msgs.String, { name: "ops" });
    const [dead] = await take(dlq, 1);
    assert.equal(dead!.msg.data, "poison");
    await dlq.close();

    await assert.rejects(
      node
        .createClient("/_store/append", myelin_msgs.StoreAppend)
        .call({ topic: "/jobs/dead_letter", type: "std_msgs/String", payloads: [], msg_ids: [] }),
      /dead-letter topic/,
    );
  },
);

test(
  "a persistent publish without a store fails with ERR_NO_SERVER and says how to start one",
  { timeout: 20000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "app", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/nowhere", std_msgs.String, {
      qos: { durability: "persistent" },
    });
    await assert.rejects(pub.publish({ data: "x" }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_NO_SERVER");
      assert.match(e.message, /myelin hub --data-dir/);
      return true;
    });
  },
);

test(
  "kill -9 of the hub while a publisher streams: every confirmed message is there after restart, once",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    const dataDir = join(rt.dir, "data");
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    const hub1 = spawnFixture("durable-proc", { role: "hub", dataDir }, env);
    await hub1.waitFor((l) => l.event === "ready");
    await using pub = spawnFixture("durable-proc", { role: "pub", topic: "/telemetry", count: 100000 }, env);
    await pub.waitForCount((l) => l.event === "confirmed", 300, 20000, "confirmed publishes");
    hub1.kill("SIGKILL");
    await hub1.exit();
    pub.kill("SIGKILL");
    await pub.exit();
    const confirmed = new Set(pub.lines.filter((l) => l.event === "confirmed").map((l) => l["i"] as number));

    await using hub2 = spawnFixture("durable-proc", { role: "hub", dataDir }, env);
    await hub2.waitFor((l) => l.event === "ready");
    await using node = await createNode({ name: "reader", runtimeDir: rt.dir });
    await untilStore(node);
    const info = await node.createClient("/_store/info", myelin_msgs.StoreInfo).call({ topic: "/telemetry" });
    assert.ok(info.last_seq >= confirmed.size, `${info.last_seq} stored, ${confirmed.size} confirmed`);
    const c = node.createDurableConsumer("/telemetry", std_msgs.String, { name: "fresh", maxInFlight: 1000 });
    const got = await take(c, info.last_seq);
    await c.close();
    const indexes = got.map((m) => Number(m.msg.data.slice(1)));
    assert.equal(new Set(indexes).size, indexes.length, "no message twice");
    for (const i of confirmed) assert.ok(indexes.includes(i), `confirmed message ${i} is missing`);
    hub2.kill("SIGTERM");
    await hub2.exit();
  },
);

test(
  "the CLI publishes persistently, shows a durable topic's range and consumers, and reads it back",
  // Eight CLI processes one after the other: each can take seconds to start on a loaded machine.
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using _store = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
    const cli = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(
          process.execPath,
          [fileURLToPath(new URL("../../bin/myelin", import.meta.url)), ...args],
          { env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir }, timeout: 30000 },
          (err, stdout, stderr) =>
            resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr }),
        );
      });
    const pub = await cli([
      "topic",
      "pub",
      "/alerts",
      "std_msgs/String",
      "{data: fire}",
      "--persistent",
      "--count",
      "3",
      "--rate",
      "100",
    ]);
    assert.equal(pub.code, 0, pub.stderr);
    const info = await cli(["topic", "info", "/alerts"]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /Durable: sequence 1\.\.3, 3 messages/);
    const read = await cli(["topic", "read", "/alerts", "--from", "2", "--json"]);
    assert.equal(read.code, 0, read.stderr);
    const lines = read.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; msg: { data: string } });
    assert.deepEqual(
      lines.map((l) => [l.seq, l.msg.data]),
      [
        [2, "fire"],
        [3, "fire"],
      ],
    );
    const missing = await cli(["topic", "read", "/nothing"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no durable topic \/nothing/);

    const cfg = await cli([
      "topic",
      "config",
      "/alerts",
      "--max-age",
      "7d",
      "--mode",
      "work-queue",
      "--json",
    ]);
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.deepEqual(JSON.parse(cfg.stdout), {
      mode: "work-queue",
      retention: { maxAgeMs: 7 * 86_400_000 },
      fsync: "always",
      batchMs: 5,
      dedupWindowMs: 120000,
    });
    const shown = await cli(["topic", "info", "/alerts"]);
    assert.match(
      shown.stdout,
      /Durable settings: work queue \(acknowledged messages removed\); retention 7d old/,
    );
    const badAge = await cli(["topic", "config", "/alerts", "--max-age", "soon"]);
    assert.equal(badAge.code, 2);
    assert.match(badAge.stderr, /--max-age 'soon' is not a duration like 500ms/);
  },
);
