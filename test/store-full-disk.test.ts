/**
 * A real full disk (a 2 MiB tmpfs, so this needs root; skipped otherwise): the first publish of a
 * new durable topic is refused with ERR_STORAGE and leaves no empty topic.json behind; the hub
 * logs the episode; once space is back the topic works, also after a restart of the store.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { myelin_msgs, std_msgs } from "../src/msgs/index.js";
import { StoreService } from "../src/store/index.js";
import { MyelinError } from "../src/errors.js";
import { tempRuntime } from "./helpers.js";

function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Fills the file system of `dir` with a file until ENOSPC. */
function fill(path: string): void {
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (let i = 0; i < 1000; i++) writeFileSync(path, chunk, { flag: "a" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  }
}

test(
  "a real full disk: a new topic is refused with ERR_STORAGE and not left broken; it works once space is back",
  { timeout: 60000 },
  async (t) => {
    using rt = tempRuntime();
    const data = join(rt.dir, "data");
    if (!mountTmpfs(data, "2m")) {
      t.skip("mounting a tmpfs needs root");
      return;
    }
    try {
      const logged: string[] = [];
      const hub = await Hub.start({ runtimeDir: rt.dir });
      let store = await StoreService.start({ dataDir: data, runtimeDir: rt.dir, log: (l) => logged.push(l) });
      const node = await createNode({ name: "app", runtimeDir: rt.dir });
      try {
        const warm = await node.createPublisher("/warm", std_msgs.String, {
          qos: { durability: "persistent" },
        });
        await warm.publish({ data: "a store that answered" });
        const filler = join(data, "filler");
        fill(filler);

        const pub = await node.createPublisher("/new/topic", std_msgs.String, {
          qos: { durability: "persistent" },
        });
        await assert.rejects(pub.publish({ data: "first" }), (e: unknown) => {
          assert.ok(e instanceof MyelinError);
          assert.equal(e.code, "ERR_STORAGE", e.message);
          assert.match(e.message, /ENOSPC|disk is full/);
          return true;
        });
        const meta = join(data, "topics", encodeURIComponent("/new/topic"), "topic.json");
        assert.ok(!existsSync(meta) || readFileSync(meta, "utf8").length > 0, "no empty topic.json");
        assert.match(logged.join("\n"), /DISK FULL on .*appends to \/new\/topic refused/);

        rmSync(filler);
        await pub.publish({ data: "second" });
        assert.match(logged.join("\n"), /disk has space again/);

        await store.close();
        store = await StoreService.start({ dataDir: data, runtimeDir: rt.dir });
        await pub.publish({ data: "third" });
        const read = await node
          .createClient("/_store/read", myelin_msgs.StoreRead)
          .call({ topic: "/new/topic", from_seq: 1, from_time_ms: 0, max: 10 });
        assert.equal(read.seqs.length, 2);
      } finally {
        await node.close();
        await store.close();
        hub.close();
      }
    } finally {
      execFileSync("umount", ["-l", data], { stdio: "ignore" });
    }
  },
);

test(
  "a topic.json left empty by an earlier version is written again, and the topic works",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const data = join(rt.dir, "data");
    const dir = join(data, "topics", encodeURIComponent("/broken"));
    mkdirSync(join(dir, "log"), { recursive: true });
    writeFileSync(join(dir, "topic.json"), "");
    const logged: string[] = [];
    const hub = await Hub.start({ runtimeDir: rt.dir });
    const store = await StoreService.start({ dataDir: data, runtimeDir: rt.dir, log: (l) => logged.push(l) });
    const node = await createNode({ name: "app", runtimeDir: rt.dir });
    try {
      const pub = await node.createPublisher("/broken", std_msgs.String, {
        qos: { durability: "persistent" },
      });
      await pub.publish({ data: "works" });
      assert.deepEqual(JSON.parse(readFileSync(join(dir, "topic.json"), "utf8")), {
        topic: "/broken",
        type: "std_msgs/String",
      });
      assert.match(
        logged.join("\n"),
        /topic\.json was empty or unreadable; written again with type std_msgs\/String/,
      );
    } finally {
      await node.close();
      await store.close();
      hub.close();
    }
  },
);
