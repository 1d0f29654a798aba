import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyPatch, newTwin } from "./twin-document.js";
import { TwinStore, type TwinChange } from "./twin-store.js";

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), "myelin-twins-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const report = (device: string, state: Record<string, number>) => (cur: ReturnType<TwinStore["get"]>) => ({
  twin: applyPatch(cur ?? newTwin(device, 1), "reported", state, { now: 2, maxStateBytes: 1000 }),
  kind: "reported" as const,
});

test("twins are kept on disk and read back; changes are published after the write", async () => {
  using d = tempDir();
  const s = await TwinStore.open({ dir: d.dir, maxTwins: 10 });
  const changes: TwinChange[] = [];
  s.onChange((c) => changes.push(c));
  await s.update("pump-1", report("pump-1", { a: 1 }));
  await s.update("pump-1", report("pump-1", { b: 2 }));
  await s.update("pump-2", report("pump-2", { c: 3 }));
  assert.deepEqual(
    changes.map((c) => `${c.kind} ${c.twin.device} v${c.twin.version}`),
    ["created pump-1 v1", "reported pump-1 v2", "created pump-2 v1"],
  );
  await s.close();
  const again = await TwinStore.open({ dir: d.dir, maxTwins: 10 });
  assert.deepEqual(again.get("pump-1")?.reported, { a: 1, b: 2 });
  assert.deepEqual(
    again.list().map((t) => t.device),
    ["pump-1", "pump-2"],
  );
  await again.update("pump-2", () => ({ twin: again.get("pump-2")!, kind: "deleted" }));
  assert.deepEqual(readdirSync(d.dir), ["pump-1.json"]);
  await again.close();
});

test("updates of one device run in turn, so none is lost", async () => {
  const s = await TwinStore.open({ maxTwins: 10 });
  await Promise.all(Array.from({ length: 50 }, (_, i) => s.update("m", report("m", { [`k${i}`]: i }))));
  assert.equal(Object.keys(s.get("m")!.reported).length, 50);
  assert.equal(s.get("m")!.reportedVersion, 50);
  await s.close();
});

test("a refused update changes nothing; a damaged file is set aside and logged; maxTwins holds", async () => {
  using d = tempDir();
  writeFileSync(join(d.dir, "bad.json"), "{not json");
  writeFileSync(join(d.dir, ".x.json.1234.tmp"), "partial");
  const logs: string[] = [];
  const s = await TwinStore.open({ dir: d.dir, maxTwins: 1, log: (l) => logs.push(l) });
  assert.equal(s.size, 0);
  assert.match(logs.join("\n"), /twin file .*bad\.json cannot be read .*kept as .*bad\.json\.damaged-\d+/);
  const names = readdirSync(d.dir);
  assert.ok(names.some((n) => n.startsWith("bad.json.damaged-")));
  assert.ok(!names.some((n) => n.endsWith(".tmp")), "leftover temp files are removed");
  await s.update("a", report("a", { x: 1 }));
  await assert.rejects(
    s.update("a", () => {
      throw new Error("refused");
    }),
    /refused/,
  );
  assert.deepEqual(s.get("a")?.reported, { x: 1 });
  await assert.rejects(s.update("b", report("b", { y: 1 })), /holds 1 twins, its limit \(twins\.maxTwins\)/);
  assert.equal(s.get("b"), undefined);
  await s.close();
  await assert.rejects(
    s.update("a", report("a", { z: 1 })),
    (e: Error & { code?: string }) => e.code === "ERR_CLOSED",
  );
});

test("a twin that cannot be written is refused with ERR_STORAGE and stays as it was", async () => {
  using d = tempDir();
  const s = await TwinStore.open({ dir: d.dir, maxTwins: 10 });
  await s.update("a", report("a", { x: 1 }));
  // Where the file goes is now a directory: the rename over it fails, as a full disk would fail the write.
  rmSync(join(d.dir, "a.json"));
  mkdirSync(join(d.dir, "a.json"));
  const changes: TwinChange[] = [];
  s.onChange((c) => changes.push(c));
  await assert.rejects(
    s.update("a", report("a", { x: 2 })),
    (e: Error & { code?: string }) => e.code === "ERR_STORAGE" && /cannot write .*a\.json/.test(e.message),
  );
  assert.deepEqual(s.get("a")?.reported, { x: 1 });
  assert.equal(s.get("a")?.reportedVersion, 1);
  assert.deepEqual(changes, [], "nothing is published for a change that was not written");
  await s.close();
});
