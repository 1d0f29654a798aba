/**
 * Shared memory when a process dies mid-stream: a subscriber killed holding slots leaks none, a
 * publisher killed leaves no /dev/shm entry, and a frame a subscriber holds stays intact.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { Hub } from "../src/index.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";
import { MiB, assertShmAfterAccept, poolsOf, start, statsAfter } from "./shm-helpers.js";

test("a subscriber killed mid-stream: its slots come back, a new subscriber reads correct frames, nothing leaks", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1000 });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  // The subscriber holds every message 2 s: it dies holding slots.
  const { pub, sub } = await start(
    env,
    { size: 8 * MiB, count: 0, intervalMs: 20 },
    { size: 8 * MiB, holdMs: 2000 },
  );
  await using _p = pub;
  await using _s = sub;
  await sub.waitForCount((l) => l.event === "msg", 2, 30000, "messages");
  await statsAfter(pub, 0, (st) => (st.writer?.slotsInUse ?? 0) > 0, "slots held");
  sub.kill("SIGKILL");
  await sub.exit();
  // Its connection is dropped (the data server's peer timeout): every slot it held comes back.
  await statsAfter(
    pub,
    pub.lines.length,
    (st) => st.writer?.slotsInUse === 0,
    "slots released after the subscriber died",
  );
  const sub2 = spawnFixture("shm-proc", { role: "sub", topic: "/frames", size: 8 * MiB }, env);
  await using _s2 = sub2;
  const msgs = await sub2.waitForCount((l) => l.event === "msg", 10, 30000, "messages to the new subscriber");
  assert.ok(
    msgs.every((m) => m.ok === true),
    "no frame of the new subscriber is corrupt",
  );
  assertShmAfterAccept(msgs, 4);
  const pid = pub.child.pid;
  pub.kill("SIGTERM");
  await pub.exit();
  await until(() => poolsOf(pid).length === 0, 10000, "pools of the publisher unlinked");
});

test("a publisher killed mid-stream: a held frame stays readable, and its pools leave /dev/shm", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const { pub, sub } = await start(
    env,
    { size: 8 * MiB, count: 0, intervalMs: 20 },
    { size: 8 * MiB, holdMs: 1500 },
  );
  await using _p = pub;
  await using _s = sub;
  const first = await sub.waitFor(
    (l) => l.event === "msg" && (l.descriptors as number) > 0,
    30000,
    "a frame by descriptor",
  );
  const pid = pub.child.pid;
  assert.ok(poolsOf(pid).length > 0, "the publisher has a pool");
  pub.kill("SIGKILL");
  await pub.exit();
  // The subscriber sees its link drop, finds the publisher dead and unlinks its pools.
  await until(() => poolsOf(pid).length === 0, 10000, "pools of the dead publisher unlinked");
  const held = await sub.waitFor(
    (l) => l.event === "held-ok" && l.seq === first.seq,
    10000,
    "the held frame checked",
  );
  assert.equal(held.ok, true, "the mapping stays valid and unchanged after the publisher died");
});
