/**
 * Consumer state files under kill -9 (src/store/consumer-state-file.ts): a child process acks and
 * saves, is killed at a random point, and the reloaded state keeps every persisted ack and invents
 * none. The file format's unit tests are in src/store/consumer-state-file.test.ts.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConsumerStateFile } from "../src/store/consumer-state-file.js";

const ACKER = fileURLToPath(new URL("./fixtures/store-consumer-acker.js", import.meta.url));

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "myelin-consumer-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the acker until it reported `persisted` saves, SIGKILLs it, and returns every line it wrote. */
async function runAndKill(path: string, seed: number, persisted: number): Promise<string[]> {
  const child = spawn(process.execPath, [ACKER, path, String(seed)], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    let p = 0;
    const rl = createInterface({ input: child.stdout });
    rl.on("line", (line) => {
      lines.push(line);
      if (line.startsWith("P ") && ++p === persisted) child.kill("SIGKILL");
    });
    const [, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on("close", (code, sig) => resolve([code, sig])),
    );
    assert.equal(signal, "SIGKILL", `acker exited by itself: ${stderr}`);
  } finally {
    clearTimeout(timer);
  }
  return lines;
}

test("kill -9 while acking: the reloaded state keeps every persisted ack and invents none", async (t) => {
  const path = join(tempDir(t), "c.state");
  const everAcked = new Set<number>();
  const persisted = new Set<number>();
  for (let round = 0; round < 4; round++) {
    const lines = await runAndKill(path, 1000 + round, 40 + 30 * round);
    assert.match(lines[0] ?? "", /^ready \d+ (none|current|previous)$/);
    for (const line of lines.slice(1)) {
      const [kind, ...rest] = line.split(" ");
      const nums = rest.map(Number);
      if (kind === "A") for (const s of nums) everAcked.add(s);
      else if (kind === "P") for (const s of nums) persisted.add(s);
    }
    const loaded = await new ConsumerStateFile({ path }).load();
    assert.deepEqual(loaded.problems, []);
    const snap = loaded.snapshot!;
    const handled = new Set(snap.handled);
    const isHandled = (s: number): boolean => s <= snap.floor || handled.has(s);
    for (const s of persisted) assert.ok(isHandled(s), `round ${round}: persisted ack ${s} lost`);
    for (let s = 1; s <= snap.floor; s++) assert.ok(everAcked.has(s), `round ${round}: ack of ${s} invented`);
    for (const s of handled) assert.ok(everAcked.has(s), `round ${round}: ack of ${s} invented`);
    for (const [s] of snap.outstanding) assert.ok(!isHandled(s));
    assert.ok(persisted.size > 0);
  }
});
