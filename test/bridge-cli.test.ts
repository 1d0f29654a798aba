/**
 * Bridges run by `myelin hub --bridge-config FILE` (a real hub process, a real Mosquitto), seen
 * through `myelin bridge status`, and a bad configuration refused before anything starts, with
 * an error naming the file, the entry and the field.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { Mosquitto, tempDir } from "./bridge-peers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

function env(dir: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    MYELIN_RUNTIME_DIR: dir,
    MYELIN_DATA_DIR: join(dir, "data"),
  };
  delete e["MYELIN_HUB"];
  return e;
}

function run(args: string[], dir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: env(dir), timeout: 20000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

test(
  "myelin hub --bridge-config runs the bridges; myelin bridge status shows them",
  { timeout: 40000 },
  async () => {
    using t = tempDir("myelin-bridge-cli-");
    await using broker = await Mosquitto.start();
    const file = join(t.dir, "bridges.yaml");
    writeFileSync(
      file,
      [
        "bridges:",
        "  - name: plant",
        "    kind: mqtt",
        `    url: ${broker.url}`,
        "    mapping:",
        "      - { myelin: /plant/+/temp, external: plant/+/temp, type: std_msgs/Float64, direction: in }",
        "      - { myelin: /plant/alarm, external: plant/alarm, type: std_msgs/String, direction: out, qos: 1 }",
        "",
      ].join("\n"),
    );
    const hub = spawn(process.execPath, [CLI, "hub", "--bridge-config", file], {
      env: env(t.dir),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: string[] = [];
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`hub did not report the bridge connected: ${lines.join("\n")}`)),
        20000,
      );
      createInterface({ input: hub.stdout }).on("line", (l) => {
        lines.push(l);
        if (/bridge plant: connected/.test(l)) {
          clearTimeout(timer);
          resolve();
        }
      });
      createInterface({ input: hub.stderr }).on("line", (l) => lines.push(l));
      hub.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`hub exited (${code}): ${lines.join("\n")}`));
      });
    });
    try {
      await connected;
      const dev = await mqtt.connectAsync(broker.url);
      await dev.publishAsync("plant/boiler/temp", `{"data": 81.5}`, { qos: 1 });
      await dev.publishAsync("plant/boiler/temp", `{"data": "hot"}`, { qos: 1 });
      await dev.endAsync();

      // The bridge reports what it did (wait on its counters, bounded).
      let status: {
        name: string;
        state: string;
        in: number;
        rejected: number;
        queue?: { messages: number };
      }[] = [];
      const end = Date.now() + 15000;
      for (;;) {
        const r = await run(["bridge", "status", "--json"], t.dir);
        assert.equal(r.code, 0, r.stderr);
        status = JSON.parse(r.stdout) as typeof status;
        if (status[0] !== undefined && status[0].in + status[0].rejected >= 2) break;
        assert.ok(Date.now() < end, `bridge counters did not move: ${r.stdout}`);
      }
      assert.equal(status.length, 1);
      const [plant] = status;
      assert.ok(plant !== undefined);
      assert.equal(plant.name, "plant");
      assert.equal(plant.state, "connected");
      assert.equal(plant.in, 1);
      assert.equal(plant.rejected, 1);
      assert.equal(plant.queue?.messages, 0);

      const table = await run(["bridge", "status"], t.dir);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /BRIDGE\s+KIND\s+STATE/);
      assert.match(table.stdout, /plant\s+mqtt\s+connected/);
      assert.match(table.stdout, /last reject: .*std_msgs\/Float64/);
    } finally {
      hub.kill("SIGTERM");
      await new Promise((resolve) =>
        hub.exitCode !== null ? resolve(undefined) : hub.once("exit", resolve),
      );
    }
  },
);

test(
  "myelin hub --bridge-config refuses a bad file naming the entry and field",
  { timeout: 20000 },
  async () => {
    using t = tempDir("myelin-bridge-cli-");
    const file = join(t.dir, "bad.yaml");
    writeFileSync(
      file,
      [
        "bridges:",
        "  - name: plant",
        "    kind: mqtt",
        "    url: mqtt://127.0.0.1:1",
        "    mapping:",
        "      - { myelin: /a/+, external: a/#, type: std_msgs/String }",
        "",
      ].join("\n"),
    );
    const r = await run(["hub", "--bridge-config", file, "--no-store"], t.dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_BAD_CONFIG/);
    assert.ok(r.stderr.includes(`${file}: bridges[0].mapping[0].external`), r.stderr);

    const none = await run(["bridge", "status"], t.dir);
    assert.notEqual(none.code, 0);
  },
);
