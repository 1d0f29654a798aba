/**
 * Files on disk: the store's data directory and everything in it are private to the owner (0700
 * directories, 0600 files: segments, topic metadata, consumer state, the lock); the hub makes
 * private only the runtime directories it creates, and refuses one that other users can write to
 * (a shared 1777 directory) without changing its mode.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { StoreService } from "../src/store/index.js";
import { tempRuntime } from "./helpers.js";

/** Every path under `dir` (itself included) with its permission bits. */
function modes(dir: string): { path: string; dir: boolean; mode: number }[] {
  const st = statSync(dir);
  const out = [{ path: dir, dir: true, mode: st.mode & 0o7777 }];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...modes(p));
    else out.push({ path: p, dir: false, mode: statSync(p).mode & 0o7777 });
  }
  return out;
}

test("the store's data directory is 0700 and its files (segments, metadata, consumer state, lock) 0600", async () => {
  using rt = tempRuntime();
  const dataDir = join(rt.dir, "data");
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using _store = await StoreService.start({ dataDir, runtimeDir: rt.dir });
  await using node = await createNode({ name: "writer", runtimeDir: rt.dir });
  const pub = await node.createPublisher("/orders", std_msgs.String, { qos: { durability: "persistent" } });
  for (let i = 0; i < 10; i++) await pub.publish({ data: `order ${i}` });
  const c = node.createDurableConsumer("/orders", std_msgs.String, { name: "billing" });
  let n = 0;
  for await (const m of c) {
    await m.ack();
    if (++n === 10) break;
  }
  await c.close();
  const all = modes(dataDir);
  assert.ok(
    all.some((e) => !e.dir && /\/log\//.test(e.path)),
    "no segment file was written",
  );
  assert.ok(
    all.some((e) => !e.dir && /\/consumers\//.test(e.path)),
    "no consumer state was written",
  );
  for (const e of all) {
    assert.equal(e.mode, e.dir ? 0o700 : 0o600, `${e.path} has mode ${e.mode.toString(8)}`);
  }
});

test("the hub refuses a runtime directory other users can write to, and leaves its mode alone", async () => {
  using rt = tempRuntime();
  const shared = join(rt.dir, "shared");
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  await assert.rejects(Hub.start({ runtimeDir: shared }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "ERR_INVALID_ARGUMENT");
    assert.match(e.message, /runtime directory .*shared \(mode 1777/);
    assert.match(e.message, /MYELIN_RUNTIME_DIR=/); // the fix
    return true;
  });
  assert.equal(statSync(shared).mode & 0o7777, 0o1777);
  // A node is refused the same way (it would put its socket there).
  await assert.rejects(createNode({ name: "n", runtimeDir: shared }), /can be written by other users/);
});

test("the hub makes a runtime directory it creates 0700, and keeps the mode of an existing private one", async () => {
  using rt = tempRuntime();
  const fresh = join(rt.dir, "a", "b");
  {
    await using _hub = await Hub.start({ runtimeDir: fresh });
    assert.equal(statSync(fresh).mode & 0o777, 0o700);
  }
  const own = join(rt.dir, "own");
  mkdirSync(own);
  chmodSync(own, 0o750);
  {
    await using _hub = await Hub.start({ runtimeDir: own });
    assert.equal(statSync(own).mode & 0o777, 0o750);
  }
});
