/** The README's API examples run as written (examples/readme-snippets.ts mirrors them). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { StoreService } from "../src/store/index.js";
import { runReadmeSnippets } from "../examples/readme-snippets.js";
import { tempRuntime } from "./helpers.js";

test("the README's node, message, service and parameter examples work", { timeout: 20000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using _store = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
  const r = await runReadmeSnippets(rt.dir);
  assert.equal(r.sum, 42n);
  assert.deepEqual(r.status, ["driver#2 #1: ready", "stored: order 42"]);
  assert.equal(r.fps, 30);
});
