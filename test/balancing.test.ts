/**
 * Service replicas across real processes: calls spread across replicas, a replica killed with
 * kill -9 under a steady stream of idempotent calls (no call fails), a hung replica skipped after
 * one timeout, a circuit breaker that opens and recovers, and queue groups that share a topic
 * evenly and lose nothing when a member dies.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode, type BreakerEvent, type Node } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { spawnFixture, tempRuntime, until, type Proc } from "./helpers.js";
import { Ctl, Who } from "./fixtures/replica-types.js";

function replica(rt: string, name: string, extra: Record<string, unknown> = {}): Proc {
  return spawnFixture("replica-proc", { role: "replica", name, ...extra }, { MYELIN_RUNTIME_DIR: rt });
}

async function waitForReplicas(node: Node, service: string, n: number): Promise<void> {
  await node.waitForGraph(
    (g) => g.nodes.filter((x) => x.services.some((s) => s.service === service)).length === n,
    15000,
  );
}

const codeOf = (e: unknown): string => (e as { code?: string }).code ?? String(e);

test(
  "kill -9 of one of 3 idempotent replicas under a steady stream of calls: no call fails",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
    await using a = replica(rt.dir, "rep-a", { idempotent: true });
    await using b = replica(rt.dir, "rep-b", { idempotent: true });
    await using c = replica(rt.dir, "rep-c", { idempotent: true });
    await Promise.all([a, b, c].map((p) => p.waitFor((l) => l.event === "ready", 15000)));
    await using node = await createNode({ name: "caller", runtimeDir: rt.dir });
    await waitForReplicas(node, "/who", 3);
    const client = node.createClient("/who", Who, { timeoutMs: 10000 });

    const byNode = new Map<string, number>();
    const failures: string[] = [];
    let ok = 0;
    let stop = false;
    let n = 0;
    const worker = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await client.call({ n: ++n });
          ok++;
          byNode.set(r.node, (byNode.get(r.node) ?? 0) + 1);
        } catch (e) {
          failures.push(`${codeOf(e)}: ${(e as Error).message}`);
        }
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    try {
      await until(() => ok >= 300 && byNode.size === 3, 20000, "300 calls served by all 3 replicas");
      c.kill("SIGKILL");
      await c.exit(5000);
      const atKill = ok;
      const cAtKill = byNode.get("rep-c") ?? 0;
      await until(() => ok >= atKill + 600, 30000, "600 more calls after the kill");
      assert.equal(byNode.get("rep-c") ?? 0, cAtKill, "no call answered by the dead replica");
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    assert.deepEqual(failures, [], "no call failed");
    const stats = client.replicas();
    const dead = stats.find((s) => s.name === "rep-c");
    console.log(
      `# calls ${ok}, by replica ${JSON.stringify(Object.fromEntries(byNode))}; rep-c failures ${dead?.failures ?? 0}, retries refused ${client.retriesRefused}`,
    );
  },
);

test(
  "a replica that hangs is passed over after one timeout; idempotent calls retry on another",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
    await using a = replica(rt.dir, "ok-a", { idempotent: true });
    await using b = replica(rt.dir, "ok-b", { idempotent: true });
    await using h = replica(rt.dir, "hung", { idempotent: true, hang: true });
    await Promise.all([a, b, h].map((p) => p.waitFor((l) => l.event === "ready", 15000)));
    await using node = await createNode({ name: "caller", runtimeDir: rt.dir });
    await waitForReplicas(node, "/who", 3);
    const client = node.createClient("/who", Who, {
      timeoutMs: 10000,
      attemptTimeoutMs: 400,
      breaker: { openMs: 60000 },
    });
    const served = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await client.call({ n: i });
      served.set(r.node, (served.get(r.node) ?? 0) + 1);
    }
    assert.equal(served.get("hung"), undefined);
    assert.equal(
      h.lines.filter((l) => l.event === "request").length,
      1,
      "the hung replica got one call only",
    );
    const hs = client.replicas().find((s) => s.name === "hung")!;
    assert.equal(hs.suspect, true);
    assert.equal(hs.failures, 1);

    // Not idempotent: the timeout is the caller's answer, no retry.
    const strict = node.createClient("/who", Who, {
      timeoutMs: 10000,
      attemptTimeoutMs: 300,
      idempotent: false,
    });
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) await strict.call({ n: i }).catch((e: unknown) => codes.push(codeOf(e)));
    assert.deepEqual(
      codes,
      ["ERR_TIMEOUT"],
      "one of three calls in turn reached the hung replica and timed out",
    );
  },
);

test(
  "circuit breaker: opens after repeated failures, fails fast, half-opens after openMs, closes on success",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
    await using r = replica(rt.dir, "flaky");
    await r.waitFor((l) => l.event === "ready", 15000);
    await using node = await createNode({ name: "caller", runtimeDir: rt.dir });
    await waitForReplicas(node, "/who", 1);
    const ctl = node.createClient("/flaky/ctl", Ctl);
    const client = node.createClient("/who", Who, {
      timeoutMs: 5000,
      breaker: { failureThreshold: 3, openMs: 400 },
    });
    const events: BreakerEvent["state"][] = [];
    client.on("breaker", (e) => {
      assert.equal(e.name, "flaky");
      events.push(e.state);
    });
    assert.deepEqual(await client.call({ n: 1 }), { node: "flaky", n: 1 });

    await ctl.call({ fail: true });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(client.call({ n: 2 }), (e) => codeOf(e) === "ERR_SERVICE_FAILED");
    }
    assert.deepEqual(events, ["open"]);
    await assert.rejects(client.call({ n: 3 }), (e: Error) => {
      assert.equal(codeOf(e), "ERR_UNAVAILABLE");
      assert.match(e.message, /circuit breakers are open; the next try goes through in \d+ ms/);
      return true;
    });

    // Past openMs one probe goes through; the replica still fails, so the breaker opens again.
    const probe = async (): Promise<string> => {
      for (const end = Date.now() + 10000; Date.now() < end;) {
        try {
          await client.call({ n: 4 });
          return "ok";
        } catch (e) {
          if (codeOf(e) !== "ERR_UNAVAILABLE") return codeOf(e);
          await new Promise((res) => setTimeout(res, 50));
        }
      }
      throw new Error("the breaker never let a probe through");
    };
    assert.equal(await probe(), "ERR_SERVICE_FAILED");
    assert.deepEqual(events, ["open", "half-open", "open"]);

    await ctl.call({ fail: false });
    assert.equal(await probe(), "ok");
    assert.deepEqual(events, ["open", "half-open", "open", "half-open", "closed"]);
    assert.deepEqual(await client.call({ n: 5 }), { node: "flaky", n: 5 });
  },
);

test(
  "queue group: members share a topic evenly; a member that dies loses nothing",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
    const member = (name: string, group?: string): Proc =>
      spawnFixture(
        "replica-proc",
        { role: "member", name, topic: "/jobs", ...(group ? { group } : {}) },
        { MYELIN_RUNTIME_DIR: rt.dir },
      );
    await using a = member("w-a", "workers");
    await using b = member("w-b", "workers");
    await using c = member("w-c", "workers");
    await using all = member("audit");
    const members = [a, b, c];
    await Promise.all([...members, all].map((p) => p.waitFor((l) => l.event === "ready", 15000)));
    await using node = await createNode({ name: "dispatcher", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/jobs", std_msgs.String);
    await pub.waitForSubscribers(4, 15000);

    const got = (p: Proc): string[] => p.lines.filter((l) => l.event === "msg").map((l) => String(l.data));
    const N = 1500;
    for (let i = 1; i <= N; i++) await pub.publish({ data: String(i) });
    await until(
      () => members.reduce((s, p) => s + got(p).length, 0) >= N,
      20000,
      "the first batch at the members",
    );
    const counts = members.map((p) => got(p).length);
    assert.equal(
      counts.reduce((x, y) => x + y, 0),
      N,
      "each message went to exactly one member",
    );
    for (const n of counts)
      assert.ok(Math.abs(n - N / 3) <= N / 30, `even spread within 10 %: ${counts.join(", ")}`);

    // Freeze one member so what it was sent stays unconsumed, keep publishing, then kill it: the
    // publisher must hand its unconsumed messages to the other members.
    c.kill("SIGSTOP");
    for (let i = N + 1; i <= 2 * N; i++) await pub.publish({ data: String(i) });
    c.kill("SIGKILL");
    await c.exit(5000);
    const want = Array.from({ length: 2 * N }, (_, i) => String(i + 1));
    const seen = (): Set<string> => new Set(members.flatMap(got));
    await until(() => seen().size >= 2 * N, 30000, "every message handled by some member");
    assert.deepEqual([...seen()].sort(), [...want].sort());
    await until(() => got(all).length >= 2 * N, 20000, "every message at the plain subscriber");
    assert.deepEqual(got(all), want, "a subscriber outside the group still gets every message in order");
    const total = members.reduce((s, p) => s + got(p).length, 0);
    const stats = pub.stats();
    assert.ok(stats.redelivered > 0, "the dead member's share was sent again");
    console.log(
      `# group: first batch ${counts.join("/")}; redelivered ${stats.redelivered}, duplicates ${total - 2 * N}`,
    );
  },
);

test(
  "queue group in one process: members share messages, a plain subscription gets all",
  { timeout: 20000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "local", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/local/jobs", std_msgs.String);
    const a: string[] = [];
    const b: string[] = [];
    const all: string[] = [];
    await node.createSubscription("/local/jobs", std_msgs.String, (m) => void a.push(m.data), { group: "g" });
    const sb = await node.createSubscription("/local/jobs", std_msgs.String, (m) => void b.push(m.data), {
      group: "g",
    });
    await node.createSubscription("/local/jobs", std_msgs.String, (m) => void all.push(m.data));
    for (let i = 0; i < 100; i++) await pub.publish({ data: String(i) });
    assert.equal(a.length, 50);
    assert.equal(b.length, 50);
    assert.equal(all.length, 100);
    sb.close();
    for (let i = 100; i < 110; i++) await pub.publish({ data: String(i) });
    assert.equal(a.length, 60, "the remaining member gets everything");
    await assert.rejects(
      node.createSubscription("/local/jobs", std_msgs.String, () => {}, { group: "bad group" }),
      /group "bad group" is not valid/,
    );
  },
);
