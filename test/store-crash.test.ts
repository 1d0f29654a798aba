/**
 * kill -9 crash test: a child process appends with fsync "always" and prints every confirmed seq;
 * the test kills it with SIGKILL mid-stream, reopens the log and checks that every confirmed
 * record is there with its payload, in a contiguous sequence, and that appending continues.
 * Three rounds on the same directory, so recovery also runs on logs a crash left behind. Once with
 * 8 single appends in flight, once with 1,000 records in flight (group commits of batches and
 * single appends).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DurableLog } from "../src/store/log.js";

const WRITER = fileURLToPath(new URL("./fixtures/store-writer.js", import.meta.url));
const td = new TextDecoder();

/** Runs the writer until `confirms` appends are confirmed, then SIGKILLs it; returns seq → id. */
async function runAndKill(
  dir: string,
  tag: string,
  confirms: number,
  mode = "single",
): Promise<Map<number, string>> {
  const child = spawn(process.execPath, [WRITER, dir, tag, mode], { stdio: ["ignore", "pipe", "pipe"] });
  const confirmed = new Map<number, string>();
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_c, sig) => resolve(sig)));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on("line", (line) => {
        const m = /^(\d+) (\S+)$/.exec(line);
        if (!m) return;
        confirmed.set(Number(m[1]), m[2]!);
        if (confirmed.size >= confirms && !child.killed) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      void exited.then(() => {
        if (confirmed.size < confirms && !child.killed)
          reject(new Error(`writer exited early after ${confirmed.size}: ${stderr}`));
      });
    });
    assert.equal(await exited, "SIGKILL");
  } finally {
    clearTimeout(timer);
  }
  return confirmed;
}

async function crashRounds(mode: string, confirms: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "myelin-store-crash-"));
  try {
    const all = new Map<number, string>();
    for (let round = 0; round < 3; round++) {
      const confirmed = await runAndKill(dir, `r${round}`, confirms + round * 50, mode);
      for (const [seq, id] of confirmed) {
        assert.ok(!all.has(seq), `seq ${seq} confirmed twice`);
        all.set(seq, id);
      }
      await using log = await DurableLog.open({ dir, fsync: "always" });
      const maxConfirmed = Math.max(...all.keys());
      assert.ok(log.last >= maxConfirmed, `last ${log.last} < confirmed ${maxConfirmed}`);
      const records = await log.read(1, 1_000_000);
      assert.deepEqual(
        records.map((r) => r.seq),
        Array.from({ length: log.last }, (_, i) => i + 1),
      );
      for (const [seq, id] of all) {
        const r = records[seq - 1]!;
        assert.equal(td.decode(r.header), id, `seq ${seq}`);
        assert.match(td.decode(r.payload), new RegExp(`^payload ${id} z*$`));
      }
      const next = await log.append(new Uint8Array(0), new TextEncoder().encode("after crash"));
      assert.equal(next.seq, records.length + 1);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("kill -9 while appending with fsync always loses no confirmed record", () => crashRounds("single", 300));

test("kill -9 during group commits (1,000 in flight: batches and single appends) loses no confirmed record", () =>
  crashRounds("group", 3000));
