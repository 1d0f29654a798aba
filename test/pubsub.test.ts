/**
 * Pub/sub across real processes: ipc and tcp, transient-local late joiners, a reliable topic
 * with a slow subscriber, liveliness after kill -9, and a hub restart while data flows.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { spawnFixture, tempRuntime, type Line } from "./helpers.js";

const isMsg = (l: Line): boolean => l.event === "msg";

for (const transport of ["ipc", "tcp"] as const) {
  test(
    `pub/sub across processes over ${transport}: every message, in order`,
    { timeout: 30000 },
    async () => {
      using rt = tempRuntime();
      await using _hub = await Hub.start({ runtimeDir: rt.dir });
      const env: Record<string, string> = { MYELIN_RUNTIME_DIR: rt.dir };
      if (transport === "tcp") {
        // Plain text on purpose: CURVE across hosts is covered by test/curve-hosts.test.ts.
        env["MYELIN_DATA_ENDPOINT"] = "tcp://127.0.0.1:0";
        env["MYELIN_INSECURE"] = "1";
      }
      await using sub = spawnFixture(
        "node-proc",
        { role: "sub", topic: "/chatter", count: 200, printEach: true },
        env,
      );
      await sub.waitFor((l) => l.event === "ready");
      await using pub = spawnFixture(
        "node-proc",
        { role: "pub", topic: "/chatter", count: 200, waitSubscribers: 1 },
        env,
      );
      const done = await sub.waitFor((l) => l.event === "done", 20000, "the subscriber to finish");
      const seqs = sub.lines.filter(isMsg).map((l) => l["seq"]);
      assert.deepEqual(
        seqs,
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.equal((done["stats"] as { dropped: number }).dropped, 0);
      if (transport === "tcp") {
        const ready = pub.lines.find((l) => l.event === "ready");
        assert.ok(ready);
      }
      await pub.exit();
    },
  );
}

test(
  "a late subscriber to a transient-local topic first gets the last depth messages",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    const qos = { durability: "transient-local", depth: 5 };
    // Publishes 20 then stays up at a slow rate, so the late joiner sees history, then live data.
    await using pub = spawnFixture("node-proc", { role: "pub", topic: "/latched", qos, rate: 2 }, env);
    await pub.waitFor((l) => l.event === "ready");
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/latched", qos, count: 3, printEach: true },
      env,
    );
    await sub.waitFor((l) => l.event === "done", 20000, "three messages");
    // The first three (a fourth may arrive before the subscriber exits).
    const seqs = sub.lines
      .filter(isMsg)
      .slice(0, 3)
      .map((l) => l["seq"] as number);
    // The first message arrives from history; what follows is consecutive.
    assert.ok(seqs[0]! >= 1);
    assert.deepEqual(seqs, [seqs[0], seqs[0]! + 1, seqs[0]! + 2]);
  },
);

test("transient-local replays exactly the last depth messages", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const qos = { durability: "transient-local", depth: 5 };
  await using pub = spawnFixture(
    "node-proc",
    { role: "pub", topic: "/hist", qos, count: 20, linger: true },
    env,
  );
  await pub.waitFor((l) => l.event === "done");
  await using sub = spawnFixture(
    "node-proc",
    { role: "sub", topic: "/hist", qos, count: 5, printEach: true },
    env,
  );
  await sub.waitFor((l) => l.event === "done", 20000, "five messages");
  assert.deepEqual(
    sub.lines.filter(isMsg).map((l) => l["seq"]),
    [16, 17, 18, 19, 20],
  );
});

test(
  "reliable topic with a slow subscriber: nothing lost, memory bounded on both sides",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    const n = 1500;
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/work", type: "blob", count: n, delayMs: 1, qos: { reliability: "reliable" } },
      env,
    );
    await sub.waitFor((l) => l.event === "ready");
    // 64 KiB messages as fast as publish() lets: 96 MiB in total, far more than either side may buffer.
    await using pub = spawnFixture(
      "node-proc",
      { role: "pub", topic: "/work", type: "blob", count: n, payloadBytes: 65536, waitSubscribers: 1 },
      env,
    );
    const done = await sub.waitFor((l) => l.event === "done", 50000, "the slow subscriber to finish");
    assert.equal(done["received"], n);
    assert.equal((done["stats"] as { dropped: number }).dropped, 0);
    const pubDone = await pub.waitFor((l) => l.event === "done");
    assert.equal((pubDone["stats"] as { dropped: number }).dropped, 0);
    const maxPubRss = Math.max(
      ...pub.lines.filter((l) => l.event === "published").map((l) => l["rss"] as number),
    );
    assert.ok(maxPubRss < 250 * 1024 * 1024, `publisher RSS ${maxPubRss} bytes`);
    assert.ok((done["rss"] as number) < 250 * 1024 * 1024, `subscriber RSS ${String(done["rss"])} bytes`);
  },
);

test("kill -9 of a publisher is reported through liveliness", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1000 });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const qos = { livelinessLeaseMs: 1000 };
  await using sub = spawnFixture("node-proc", { role: "sub", topic: "/beat", qos, printEach: true }, env);
  await sub.waitFor((l) => l.event === "ready");
  await using pub = spawnFixture("node-proc", { role: "pub", topic: "/beat", qos, rate: 50 }, env);
  await sub.waitFor(isMsg, 10000, "data");
  pub.kill("SIGKILL");
  const gone = await sub.waitFor(
    (l) => l.event === "liveliness" && l["alive"] === false,
    10000,
    "liveliness lost",
  );
  assert.equal(gone["publisher"], "pub");
});

test(
  "hub killed and restarted while data flows: data keeps flowing, nodes re-register",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    await using hub1 = spawnFixture("node-proc", { role: "hub", nodeTimeoutMs: 1000 }, env);
    await hub1.waitFor((l) => l.event === "ready");
    await using sub = spawnFixture("node-proc", { role: "sub", topic: "/flow", printEach: true }, env);
    await sub.waitFor((l) => l.event === "ready");
    await using _pub = spawnFixture("node-proc", { role: "pub", topic: "/flow", rate: 200 }, env);
    await sub.waitForCount(isMsg, 50, 15000, "messages before the hub dies");
    hub1.kill("SIGKILL");
    await hub1.exit();
    const before = sub.lines.filter(isMsg).length;
    await sub.waitForCount(isMsg, before + 200, 15000, "messages while no hub runs");
    await using hub2 = spawnFixture("node-proc", { role: "hub", nodeTimeoutMs: 1000 }, env);
    await hub2.waitForCount(
      (l) => l.event === "log" && /joined/.test(String(l["line"])),
      2,
      10000,
      "both nodes re-registered",
    );
    const after = sub.lines.filter(isMsg).length;
    await sub.waitForCount(isMsg, after + 50, 15000, "messages after the new hub came");
    const seqs = sub.lines.filter(isMsg).map((l) => l["seq"] as number);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1, `gap after ${seqs[i - 1]}`);
  },
);

test("nodes started before the hub connect when it comes up", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  await using sub = spawnFixture(
    "node-proc",
    { role: "sub", topic: "/early", count: 5, printEach: true },
    env,
  );
  await using pub = spawnFixture("node-proc", { role: "pub", topic: "/early", rate: 50 }, env);
  await sub.waitFor((l) => l.event === "ready");
  await pub.waitFor((l) => l.event === "ready");
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await sub.waitFor((l) => l.event === "done", 20000, "messages once the hub runs");
});

test(
  "nodes reach a hub over tcp (as from another host) and exchange data over tcp",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    using rtA = tempRuntime();
    using rtB = tempRuntime();
    // Plain text (--insecure) on purpose: the same with CURVE is in test/curve-hosts.test.ts.
    await using hub = await Hub.start({ runtimeDir: rt.dir, listen: ["tcp://127.0.0.1:0"], insecure: true });
    const tcp = hub.endpoints.find((e) => e.startsWith("tcp://"))!;
    assert.match(tcp, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    // Each "host" has its own runtime directory: nothing is shared but the network.
    const base = { MYELIN_HUB: tcp, MYELIN_DATA_ENDPOINT: "tcp://127.0.0.1:0", MYELIN_INSECURE: "1" };
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/remote", count: 20, printEach: true },
      { ...base, MYELIN_RUNTIME_DIR: rtA.dir },
    );
    await sub.waitFor((l) => l.event === "ready");
    await using _pub = spawnFixture(
      "node-proc",
      { role: "pub", topic: "/remote", count: 20, waitSubscribers: 1 },
      { ...base, MYELIN_RUNTIME_DIR: rtB.dir },
    );
    await sub.waitFor((l) => l.event === "done", 20000, "20 messages over tcp");
    assert.deepEqual(
      sub.lines.filter(isMsg).map((l) => l["seq"]),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  },
);

test(
  "a publisher created after another of its topic closed reaches the subscribers already connected, and is not taken for the old one",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/again", count: 6, printEach: true },
      env,
    );
    await sub.waitFor((l) => l.event === "ready");
    await using node = await createNode({ name: "twice", runtimeDir: rt.dir });
    for (const round of [1, 2]) {
      const pub = await node.createPublisher("/again", std_msgs.String, { qos: { reliability: "reliable" } });
      await pub.waitForSubscribers(1, 10000).catch((e: unknown) => {
        throw new Error(`round ${round}: ${String(e)}`);
      });
      for (let i = 1; i <= 3; i++) await pub.publish({ data: `round ${round} #${i}` });
      await sub.waitForCount(isMsg, round * 3, 10000, `round ${round}'s messages`);
      pub.close();
    }
    const data = sub.lines.filter(isMsg).map((l) => l["data"]);
    assert.deepEqual(data, [
      "round 1 #1",
      "round 1 #2",
      "round 1 #3",
      "round 2 #1",
      "round 2 #2",
      "round 2 #3",
    ]);
  },
);
