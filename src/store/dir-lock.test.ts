import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import { DirLock, LOCK_FILE } from "./dir-lock.js";
import { procStartTime } from "./proc-stat.js";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-lock-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(r.stdout.toString());
}

test("a second lock on a directory is refused, naming the holder; released, it can be taken again", () => {
  using t = tempDir();
  const a = DirLock.acquire(t.dir, { what: "store A" });
  assert.throws(
    () => DirLock.acquire(t.dir, { what: "store B" }),
    (e: unknown) =>
      e instanceof MyelinError &&
      e.code === "ERR_LOCKED" &&
      e.message.includes(`store A, pid ${process.pid}`) &&
      e.message.includes("--data-dir"),
  );
  assert.equal(DirLock.holder(t.dir)?.what, "store A");
  a.release();
  a.release();
  assert.equal(existsSync(join(t.dir, LOCK_FILE)), false);
  const b = DirLock.acquire(t.dir, { what: "store B" });
  b.release();
  assert.deepEqual(readdirSync(t.dir), [], "no private or stale files are left behind");
});

test("a lock of a process that is gone is taken over, and the takeover is logged", () => {
  using t = tempDir();
  const pid = deadPid();
  writeFileSync(
    join(t.dir, LOCK_FILE),
    JSON.stringify({ pid, host: "h1", what: "old hub", since: 1 }) + "\n",
  );
  const lines: string[] = [];
  const l = DirLock.acquire(t.dir, { what: "new hub", host: "h1", log: (s) => lines.push(s) });
  assert.equal(DirLock.holder(t.dir)?.pid, process.pid);
  assert.match(lines.join("\n"), new RegExp(`took over the lock of old hub, pid ${pid}`));
  l.release();
});

test("a pid that now belongs to a later process does not hold the lock (start time differs)", () => {
  using t = tempDir();
  const start = procStartTime(process.pid);
  if (start === undefined) return; // no /proc: start times unknown
  const lock = { pid: process.pid, start: String(Number(start) - 1), host: "h1", what: "old hub", since: 1 };
  writeFileSync(join(t.dir, LOCK_FILE), JSON.stringify(lock));
  const l = DirLock.acquire(t.dir, { what: "new hub", host: "h1" });
  assert.equal(DirLock.holder(t.dir)?.what, "new hub");
  l.release();
});

test("an unreadable lock file is stale; a lock held from another host is never taken over", () => {
  using t = tempDir();
  writeFileSync(join(t.dir, LOCK_FILE), "\u0000\u0000garbage");
  DirLock.acquire(t.dir, { what: "hub", host: "h1" }).release();
  writeFileSync(
    join(t.dir, LOCK_FILE),
    JSON.stringify({ pid: deadPid(), host: "other-host", what: "hub there", since: 1 }),
  );
  assert.throws(
    () => DirLock.acquire(t.dir, { what: "hub", host: "h1" }),
    (e: unknown) =>
      e instanceof MyelinError &&
      e.code === "ERR_LOCKED" &&
      /on host other-host/.test(e.message) &&
      /cannot be checked from host h1/.test(e.message) &&
      e.message.includes(join(t.dir, LOCK_FILE)),
  );
});

test("a directory that cannot be written gives ERR_STORAGE naming it", () => {
  using t = tempDir();
  const file = join(t.dir, "not-a-dir");
  writeFileSync(file, "x");
  assert.throws(
    () => DirLock.acquire(join(file, "sub"), { what: "hub" }),
    (e: unknown) => e instanceof MyelinError && e.code === "ERR_STORAGE" && e.message.includes(file),
  );
});
