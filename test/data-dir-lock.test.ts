/**
 * One hub per data directory: a second hub on the same data directory (another runtime dir, as
 * for "a separate world") refuses to start and names the first hub's pid, for the durable-topic
 * store and for the MQTT gateway's sessions; after kill -9 of the first hub, its stale lock is
 * taken over and the takeover is logged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort } from "./bridge-peers.js";
import { Proc, tempRuntime } from "./helpers.js";
import { CLI, startGatewayHub, execCli } from "./mqtt-hub.js";

test(
  "a second hub on the same data directory refuses to start and names the first; a dead hub's lock is taken over",
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    const data = join(rt.dir, "data");
    const port = await freePort();
    const first = await startGatewayHub(port, {
      MYELIN_RUNTIME_DIR: join(rt.dir, "a"),
      MYELIN_DATA_DIR: data,
    });
    let storeHub: Proc | undefined;
    try {
      const pid = first.child.pid!;
      // The gateway's sessions are locked: a second gateway on them is refused.
      const second = await execCli(["hub", "--no-store", "--mqtt-port", String(await freePort())], {
        MYELIN_RUNTIME_DIR: join(rt.dir, "b"),
        MYELIN_DATA_DIR: data,
      });
      assert.equal(second.code, 1, second.stdout);
      assert.match(second.stderr, new RegExp(`${data}/mqtt is in use by .*pid ${pid}`));
      assert.match(second.stderr, /ERR_LOCKED/);

      // The store: a hub with a store runs, a second one on the same directory is refused.
      storeHub = new Proc(CLI, ["hub"], { MYELIN_RUNTIME_DIR: join(rt.dir, "c"), MYELIN_DATA_DIR: data });
      await storeHub.waitFor(
        (l) => l.event === "text" && /durable topics stored in/.test(String(l["text"])),
        20000,
        "the store",
      );
      const third = await execCli(["hub"], { MYELIN_RUNTIME_DIR: join(rt.dir, "d"), MYELIN_DATA_DIR: data });
      assert.equal(third.code, 1, third.stdout);
      assert.match(
        third.stderr,
        new RegExp(`${data} is in use by the durable-topic store .*pid ${storeHub.child.pid}`),
      );
      assert.match(third.stderr, /give this one its own data directory \(--data-dir or MYELIN_DATA_DIR\)/);

      // kill -9 of both: their locks are stale and a new hub takes them over, saying so.
      first.kill("SIGKILL");
      storeHub.kill("SIGKILL");
      await first.exit(10000);
      await storeHub.exit(10000);
      const next = await startGatewayHub(port, {
        MYELIN_RUNTIME_DIR: join(rt.dir, "e"),
        MYELIN_DATA_DIR: data,
      });
      try {
        const text = next.lines.map((l) => (typeof l["text"] === "string" ? l["text"] : "")).join("\n");
        assert.match(text, new RegExp(`took over the lock of .*pid ${pid} .*no longer running`));
      } finally {
        next.kill("SIGTERM");
        await next.exit(10000).catch(() => next.kill("SIGKILL"));
      }
    } finally {
      first.kill("SIGKILL");
      storeHub?.kill("SIGKILL");
      await first.exit(10000).catch(() => undefined);
    }
  },
);
