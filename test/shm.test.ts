/**
 * Shared memory for large frames between real processes on one host: 8 MiB frames pass as
 * descriptors (the bytes never cross the socket), loaned buffers too, and with MYELIN_SHM=off (or
 * for a subscriber without the addon) the same frames go over the socket.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { Hub } from "../src/index.js";
import { spawnFixture, tempRuntime } from "./helpers.js";
import { MiB, assertShmAfterAccept, lastStats, poolsOf, start } from "./shm-helpers.js";

test("8 MiB frames go through shared memory between two processes, intact, and the pools go with the publisher", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const { pub, sub } = await start(env, { size: 8 * MiB, count: 20 }, { size: 8 * MiB });
  await using _p = pub;
  await using _s = sub;
  const msgs = await sub.waitForCount((l) => l.event === "msg", 20, 30000, "messages");
  assert.deepEqual(
    msgs.map((m) => m.seq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.ok(
    msgs.every((m) => m.ok === true),
    "every byte as published",
  );
  // 32 MiB of credit: at most 4 frames of 8 MiB leave before the ACCEPT arrives.
  assertShmAfterAccept(msgs, 4);
  await pub.waitFor((l) => l.event === "done", 20000, "publisher done");
  assert.ok(lastStats(pub).writer!.descriptorsSent >= 16);
  const pid = pub.child.pid;
  await pub.exit();
  assert.deepEqual(poolsOf(pid), [], "the publisher unlinked its pools on exit");
});

test("with MYELIN_SHM=off the same frames go over the socket, and no pool is created", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_SHM: "off" };
  const { pub, sub } = await start(env, { size: 8 * MiB, count: 5, loan: true }, { size: 8 * MiB });
  await using _p = pub;
  await using _s = sub;
  const msgs = await sub.waitForCount((l) => l.event === "msg", 5, 30000, "messages");
  assert.ok(msgs.every((m) => m.ok === true));
  assert.equal(msgs.at(-1)!.descriptors, 0);
  await pub.waitFor((l) => l.event === "done", 20000, "publisher done");
  const st = lastStats(pub);
  assert.equal(st.available, false);
  assert.match(String(st.detail), /MYELIN_SHM=off/);
  assert.deepEqual(poolsOf(pub.child.pid), []);
});

test("loaned buffers are written in place and reach a subscriber as descriptors", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const { pub, sub } = await start(env, { size: 1 * MiB, count: 100, loan: true }, { size: 1 * MiB });
  await using _p = pub;
  await using _s = sub;
  const msgs = await sub.waitForCount((l) => l.event === "msg", 100, 30000, "messages");
  assert.ok(
    msgs.every((m) => m.ok === true),
    "every byte as written into the loan",
  );
  assertShmAfterAccept(msgs, 32);
  await pub.waitFor((l) => l.event === "done", 20000, "publisher done");
  const pid = pub.child.pid;
  await pub.exit();
  assert.deepEqual(poolsOf(pid), [], "the publisher unlinked its pools on exit");
});

test("one publisher, two subscribers: one reads through shared memory, one without the addon gets the bytes over the socket", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const env = { MYELIN_RUNTIME_DIR: rt.dir };
  const withShm = spawnFixture("shm-proc", { role: "sub", topic: "/frames", size: 2 * MiB }, env);
  await using _a = withShm;
  const without = spawnFixture(
    "shm-proc",
    { role: "sub", topic: "/frames", size: 2 * MiB },
    { ...env, MYELIN_SHM: "off" },
  );
  await using _b = without;
  await withShm.waitFor((l) => l.event === "ready", 20000, "subscriber ready");
  await without.waitFor((l) => l.event === "ready", 20000, "subscriber ready");
  const pub = spawnFixture(
    "shm-proc",
    { role: "pub", topic: "/frames", size: 2 * MiB, count: 40, waitFor: 2 },
    env,
  );
  await using _p = pub;
  const a = await withShm.waitForCount((l) => l.event === "msg", 40, 30000, "messages");
  const b = await without.waitForCount((l) => l.event === "msg", 40, 30000, "messages");
  assert.ok(
    a.every((m) => m.ok === true) && b.every((m) => m.ok === true),
    "every byte as published, both ways",
  );
  assertShmAfterAccept(a, 16);
  assert.equal(b.at(-1)!.descriptors, 0, "no descriptor to the subscriber that cannot map");
  await pub.waitFor((l) => l.event === "done", 20000, "publisher done");
  const pid = pub.child.pid;
  await pub.exit();
  assert.deepEqual(poolsOf(pid), [], "the publisher unlinked its pools on exit");
});
