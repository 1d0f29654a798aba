/**
 * The shared-memory addon: maps one region in two real processes (a write in one is read in the
 * other, no copy), its atomics, and clear errors for bad input.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { shmAddon, shmStatus } from "./shm-addon.js";

const addon = shmAddon();
const skip = addon === null ? `shared memory is off: ${shmStatus().detail}` : false;

function uniqueName(): string {
  return `/myelin-test-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Runs `code` in a child Node.js process with `addon` bound to the addon; resolves with its stdout. */
function child(code: string): Promise<string> {
  const path = shmStatus().detail;
  const script = `const addon = require(${JSON.stringify(path)});\n${code}`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 20000);
    p.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`child exited ${code}: ${err}`));
    });
  });
}

test(
  "a region created here is mapped by another process: its writes are seen here, in place",
  { skip },
  async () => {
    const a = addon!;
    const name = uniqueName();
    const mine = a.create(name, 8 * 1024 * 1024);
    try {
      assert.equal(mine.length, 8 * 1024 * 1024);
      assert.ok(existsSync(`/dev/shm${name}`));
      mine.fill(7);
      const out = await child(`
      const b = addon.open(${JSON.stringify(name)});
      let sum = 0; for (let i = 0; i < b.length; i += 4096) sum += b[i];
      b.fill(42, 4096);
      addon.atomicAdd(b, 0, 5);
      console.log(JSON.stringify({ len: b.length, sum }));
    `);
      const r = JSON.parse(out) as { len: number; sum: number };
      assert.equal(r.len, 8 * 1024 * 1024);
      assert.equal(r.sum, 7 * 2048, "the child read what this process wrote");
      assert.equal(mine[4096], 42, "this process reads what the child wrote, through the same mapping");
      assert.equal(mine[mine.length - 1], 42);
      assert.equal(a.atomicLoad(mine, 0), 0x07070707 + 5);
    } finally {
      assert.equal(a.unlink(name), true);
    }
    assert.equal(a.unlink(name), false, "unlinking again says it was gone");
    assert.equal(mine[4096], 42, "the mapping outlives the name");
  },
);

test("atomics: add, load, store, compare-and-swap", { skip }, () => {
  const a = addon!;
  const name = uniqueName();
  const b = a.create(name, 4096);
  a.unlink(name);
  a.atomicStore(b, 8, 10);
  assert.equal(a.atomicAdd(b, 8, 3), 10);
  assert.equal(a.atomicLoad(b, 8), 13);
  assert.equal(a.atomicCas(b, 8, 13, 20), 13, "swapped");
  assert.equal(a.atomicCas(b, 8, 13, 30), 20, "not swapped: returns what it found");
  assert.equal(a.atomicLoad(b, 8), 20);
});

test("bad input is refused with an error naming it, never a crash", { skip }, () => {
  const a = addon!;
  assert.throws(() => a.create("no-slash", 4096), /must be a string '\/name'/);
  assert.throws(() => a.create("/a/b", 4096), /without other slashes/);
  assert.throws(() => a.create(uniqueName(), 0), /integer number of bytes >= 1/);
  assert.throws(() => a.create(uniqueName(), 1.5), /integer number of bytes/);
  assert.throws(
    () => a.open(uniqueName()),
    (e: Error & { code?: string }) => e.code === "ENOENT",
  );
  const name = uniqueName();
  const b = a.create(name, 4096);
  try {
    assert.throws(
      () => a.create(name, 4096),
      (e: Error & { code?: string }) => e.code === "EEXIST",
    );
    assert.throws(() => a.atomicLoad(b, 4094), /out of range/);
    assert.throws(() => a.atomicLoad(b, -4), /out of range/);
    assert.throws(() => a.atomicLoad(b, 2), /not 4-byte aligned/);
    assert.throws(() => a.atomicLoad({} as Buffer, 0), /expected a Buffer/);
  } finally {
    a.unlink(name);
  }
});

test("MYELIN_SHM=off: the addon is not loaded and the status says why", async () => {
  const url = new URL("./shm-addon.js", import.meta.url).href;
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(url)}); console.log(JSON.stringify({ addon: m.shmAddon(), status: m.shmStatus() }));`,
      ],
      { env: { ...process.env, MYELIN_SHM: "off" }, stdio: ["ignore", "pipe", "inherit"] },
    );
    let s = "";
    p.stdout.on("data", (d: Buffer) => (s += d.toString()));
    p.on("close", (code) => (code === 0 ? resolve(s) : reject(new Error(`exit ${code}`))));
  });
  const r = JSON.parse(out) as { addon: unknown; status: { available: boolean; detail: string } };
  assert.equal(r.addon, null);
  assert.deepEqual(r.status, { available: false, detail: "disabled by MYELIN_SHM=off" });
});
