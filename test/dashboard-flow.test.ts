/**
 * The flow alarms end to end, with a real hub, real nodes in this process and a slow subscriber in
 * another: each node serves its status (`/_status/<node>`), the dashboard's live feed reads it and
 * raises missed-deadline, slow- and dropping-subscriber alarms, and clears them when data flows.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Hub } from "../src/hub/index.js";
import { createNode, fetchNodeStatus, statusProtocol } from "../src/node/index.js";
import { defineMessage, std_msgs, t } from "../src/msgs/index.js";
import { LiveFeed, type FeedClient } from "../src/web/index.js";
import type { Alarm } from "../src/web/alarms.js";
import { spawnFixture, tempRuntime } from "./helpers.js";
import { runCli, world } from "./cli-world.js";

const Blob = defineMessage("myelin_test/Blob", { n: t.u32(), data: t.bytes() });

/** A page as the feed sees it: keeps the last alarms and flow, and wakes waiters. */
class Sink implements FeedClient {
  watch = new Set<string>();
  sample: string | undefined = undefined;
  active: Alarm[] = [];
  history: Alarm[] = [];
  flow: Record<string, unknown> = {};
  readonly #waiters = new Set<() => void>();
  send(msg: Record<string, unknown>): void {
    if (msg["t"] === "alarms") {
      this.active = msg["active"] as Alarm[];
      this.history = msg["history"] as Alarm[];
    } else if (msg["t"] === "flow") {
      this.flow = msg["topics"] as Record<string, unknown>;
    } else return;
    for (const w of [...this.#waiters]) w();
  }
  /** Resolves when `pred()` holds after a message; rejects after `ms`. */
  until(pred: () => boolean, ms: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`timed out after ${ms} ms waiting for ${what}; active: ${JSON.stringify(this.active)}`),
        );
      }, ms);
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }
}

test("a node serves its flow status; a name no node can have is refused", { timeout: 20000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using watcher = await createNode({ name: "watcher", runtimeDir: rt.dir });
  await using asker = await createNode({ name: "asker", runtimeDir: rt.dir, statusService: false });
  const sub = await watcher.createSubscription("/beat", std_msgs.Bool, () => {}, {
    qos: { deadlineMs: 100 },
  });
  await once(sub, "deadline");
  await asker.waitForGraph(
    (g) => g.nodes.some((n) => n.services.some((s) => s.service === "/_status/watcher")),
    5000,
  );
  const st = await fetchNodeStatus(asker, "watcher", { timeoutMs: 3000 });
  assert.equal(st.node, "watcher");
  const s = st.subscriptions.find((x) => x.topic === "/beat")!;
  assert.equal(s.deadlineMs, 100);
  assert.ok(s.deadlinesMissed >= 1, JSON.stringify(s));
  assert.ok(s.silentMs > 100, JSON.stringify(s));
  // statusService: false serves nothing; a bad name is a clear error before any call
  assert.equal(asker.graph()!.nodes.find((n) => n.name === "asker")!.services.length, 0);
  assert.throws(() => statusProtocol("no/such"), {
    code: "ERR_INVALID_ARGUMENT",
    message: /node name "no\/such" is not valid/,
  });
  await assert.rejects(
    fetchNodeStatus(asker, "nobody", { timeoutMs: 300 }),
    (err: Error & { code?: string }) => ["ERR_NO_SERVER", "ERR_TIMEOUT"].includes(err.code ?? ""),
  );
});

test(
  "the live feed raises missed-deadline, slow- and dropping-subscriber alarms and clears them",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const feed = await LiveFeed.start({ runtimeDir: rt.dir, flowMs: 300, slowBacklog: 50 });
    const page = new Sink();
    try {
      await using talker = await createNode({ name: "talker", runtimeDir: rt.dir });
      await using listener = await createNode({ name: "listener", runtimeDir: rt.dir });
      // ---- missed deadline, then data flows again
      const beat = await talker.createPublisher("/beat", std_msgs.Bool);
      await listener.createSubscription("/beat", std_msgs.Bool, () => {}, { qos: { deadlineMs: 200 } });
      feed.addClient(page);
      const lateId = "flow:deadline-missed:/beat → listener";
      await page.until(() => page.active.some((a) => a.id === lateId), 15000, "the missed-deadline alarm");
      assert.match(
        page.active.find((a) => a.id === lateId)!.message,
        /listener has had nothing on \/beat for/,
      );
      const flowing = setInterval(() => void beat.publish({ data: true }), 50);
      try {
        await page.until(
          () => !page.active.some((a) => a.id === lateId) && page.history.some((a) => a.id === lateId),
          15000,
          "the missed-deadline alarm to clear into the history",
        );
      } finally {
        clearInterval(flowing);
      }

      // ---- a reliable subscriber in another process that reads one message every 50 ms
      const frames = await talker.createPublisher("/frames", Blob, { maxPending: 200 });
      await using slow = spawnFixture(
        "node-proc",
        {
          role: "sub",
          name: "slow_reader",
          topic: "/frames",
          type: "blob",
          delayMs: 50,
          qos: { reliability: "reliable" },
        },
        { MYELIN_RUNTIME_DIR: rt.dir },
      );
      await slow.waitFor((l) => l.event === "ready", 15000, "the slow reader");
      await frames.waitForSubscribers(1, 10000);
      const slowId = "flow:slow-subscriber:/frames talker#2 → slow_reader";
      const payload = new Uint8Array(64);
      let n = 0;
      let stop = false;
      const pumping = (async () => {
        while (!stop) await frames.publish({ n: ++n, data: payload });
      })();
      try {
        await page.until(() => page.active.some((a) => a.id === slowId), 20000, "the slow-subscriber alarm");
      } finally {
        stop = true;
        await pumping;
      }
      const msg = page.active.find((a) => a.id === slowId)!.message;
      assert.match(
        msg,
        /slow_reader is slow on \/frames: \d+ messages .* wait for its credit at publisher talker#2/,
      );
      const rows = (
        page.flow["/frames"] as { publishers: { subscribers: { subscriber: string; state: string }[] }[] }
      ).publishers[0]!.subscribers;
      assert.ok(
        rows.some((r) => r.subscriber === "slow_reader"),
        JSON.stringify(rows),
      );

      // ---- a best-effort subscriber that cannot keep up loses messages, counted: dropping
      const burst = await talker.createPublisher("/burst", Blob, { qos: { reliability: "best-effort" } });
      await using dropper = spawnFixture(
        "node-proc",
        {
          role: "sub",
          name: "lossy_reader",
          topic: "/burst",
          type: "blob",
          delayMs: 5,
          qos: { reliability: "best-effort", depth: 5 },
        },
        { MYELIN_RUNTIME_DIR: rt.dir },
      );
      await dropper.waitFor((l) => l.event === "ready", 15000, "the lossy reader");
      await burst.waitForSubscribers(1, 10000);
      // the feed sees the reader before it loses anything, so the loss is news
      await page.until(() => page.flow["/burst"] !== undefined, 10000, "the feed to see /burst");
      const dropping = (a: Alarm): boolean =>
        a.kind === "dropping-subscriber" && a.subject.startsWith("/burst ");
      let k = 0;
      stop = false;
      const bursting = (async () => {
        while (!stop) {
          for (let i = 0; i < 200; i++) await burst.publish({ n: ++k, data: payload });
          await new Promise((r) => setImmediate(r));
        }
      })();
      try {
        await page.until(() => page.active.some(dropping), 20000, "the dropping-subscriber alarm");
      } finally {
        stop = true;
        await bursting;
      }
      assert.match(page.active.find(dropping)!.message, /lossy_reader|dropped/);
    } finally {
      feed.removeClient(page);
      await feed.close();
    }
  },
);

test(
  "`myelin topic info` shows each subscription's deadline and each subscriber's backlog",
  { timeout: 30000 },
  async (t) => {
    const w = await world(t);
    await using _hub = await Hub.start({ runtimeDir: w.dir });
    await using talker = await createNode({ name: "talker", runtimeDir: w.dir });
    await using listener = await createNode({ name: "listener", runtimeDir: w.dir });
    const sub = await listener.createSubscription("/beat", std_msgs.Bool, () => {}, {
      qos: { deadlineMs: 100 },
    });
    const pub = await talker.createPublisher("/beat", std_msgs.Bool);
    await pub.waitForSubscribers(1, 10000);
    await once(sub, "deadline");
    const r = await runCli(t, w, ["topic", "info", "/beat"], 20000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Flow \(from the nodes' status\):/);
    assert.match(
      r.stdout,
      /listener receives: deadline 100 ms, [1-9]\d* missed, silent \d+\.\d s \(LATE\); 0 received/,
    );
    const j = await runCli(t, w, ["topic", "info", "/beat", "--json"], 20000);
    const flow = (JSON.parse(j.stdout) as { flow: { kind: string; node: string; deadlineMs?: number }[] })
      .flow;
    assert.ok(
      flow.some((f) => f.kind === "subscription" && f.node === "listener" && f.deadlineMs === 100),
      j.stdout,
    );
  },
);
