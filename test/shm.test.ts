/**
 * Shared memory for large frames between real processes on one host: 8 MiB frames pass as
 * descriptors (the bytes never cross the socket), a subscriber or publisher killed mid-stream
 * leaks no slot and no /dev/shm entry, and with MYELIN_SHM=off the same frames go over the socket.
 */
import { strict as assert } from "node:assert";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { Hub } from "../src/index.js";
import { spawnFixture, tempRuntime, until, type Line, type Proc } from "./helpers.js";

const MiB = 1024 * 1024;

/** Pools in /dev/shm created by process `pid`. */
function poolsOf(pid: number | undefined): string[] {
  return readdirSync("/dev/shm").filter((n) => n.startsWith(`myelin-shm-${pid}-`));
}

interface StatsLine {
  available: boolean;
  detail: string;
  writer: { slotsInUse: number; descriptorsSent: number } | null;
  reader: { descriptorsReceived: number };
}

/** The last stats line a process printed. */
function lastStats(p: Proc): StatsLine {
  const s = [...p.lines].reverse().find((l) => l.event === "stats");
  assert.ok(s !== undefined, "no stats line yet");
  return s as unknown as StatsLine;
}

/** Resolves with the first stats line after line `from` that satisfies `pred`. */
async function statsAfter(
  p: Proc,
  from: number,
  pred: (s: StatsLine) => boolean,
  what: string,
): Promise<StatsLine> {
  const l = await p.waitFor(
    (l) => l.event === "stats" && p.lines.indexOf(l) >= from && pred(l as unknown as StatsLine),
    15000,
    what,
  );
  return l as unknown as StatsLine;
}

/**
 * Every message after the first that came by descriptor came by descriptor too, and at most
 * `window` came over the socket before: those the publisher sent before the subscriber's ACCEPT of
 * the pool reached it (the credit window bounds them, since credit follows the ACCEPT on the link).
 */
function assertShmAfterAccept(msgs: Line[], window: number): void {
  const first = msgs.findIndex((m) => (m.descriptors as number) > 0);
  assert.ok(first >= 0, "no message came by descriptor");
  assert.ok(first <= window, `${first} messages came over the socket before the first descriptor`);
  for (let i = first + 1; i < msgs.length; i++) {
    assert.equal(
      msgs[i]!.descriptors,
      (msgs[i - 1]!.descriptors as number) + 1,
      `message ${i} came over the socket`,
    );
  }
}

async function start(
  env: Record<string, string>,
  pubArgs: object,
  subArgs: object,
): Promise<{ pub: Proc; sub: Proc }> {
  const sub = spawnFixture("shm-proc", { role: "sub", topic: "/frames", ...subArgs }, env);
  await sub.waitFor((l) => l.event === "ready", 20000, "subscriber ready");
  const pub = spawnFixture("shm-proc", { role: "pub", topic: "/frames", ...pubArgs }, env);
  return { pub, sub };
}

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
});

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
