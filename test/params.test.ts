/** Parameters of a running node, read and set from another process with `myelin param`. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { tempRuntime } from "./helpers.js";

const BIN = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

function myelin(dir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, MYELIN_RUNTIME_DIR: dir }, timeout: 15000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test(
  "myelin param list/get/set reach a running node, which sees the change",
  { timeout: 60000 }, // seven CLI processes in turn
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "cam", runtimeDir: rt.dir, parameters: { fps: 20 } });
    const fps = node.declareParameter("fps", {
      type: "double",
      default: 15,
      min: 1,
      max: 120,
      description: "frame rate",
    });
    node.declareParameter("mode", { type: "string", default: "day" });
    await node.waitForGraph(
      (g) => g.nodes.some((n) => n.services.some((s) => s.service === "/cam/set_parameter")),
      5000,
    );

    const list = await myelin(rt.dir, ["param", "list", "cam", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), [
      {
        name: "fps",
        kind: "double",
        value: 20,
        description: "frame rate",
        min: 1,
        max: 120,
        readOnly: false,
        default: 15,
      },
      { name: "mode", kind: "string", value: "day", description: "", readOnly: false, default: "day" },
    ]);

    const changed = once(fps, "change");
    const set = await myelin(rt.dir, ["param", "set", "cam", "fps", "30"]);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(await changed, [30, 20]);
    assert.equal(fps.value, 30);

    const get = await myelin(rt.dir, ["param", "get", "cam", "fps"]);
    assert.equal(get.stdout.trim(), "30");

    const bad = await myelin(rt.dir, ["param", "set", "cam", "fps", "500"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /within \[1, 120\], got 500 \[ERR_PARAMETER\]/);
    const wrongKind = await myelin(rt.dir, ["param", "set", "cam", "fps", "fast"]);
    assert.equal(wrongKind.code, 1);
    assert.match(wrongKind.stderr, /must be double, got "fast"/);
    const unknown = await myelin(rt.dir, ["param", "set", "cam", "zoom", "2"]);
    assert.match(unknown.stderr, /has no parameter zoom/);
    const ghost = await myelin(rt.dir, ["param", "list", "ghost"]);
    assert.equal(ghost.code, 1);
    assert.match(ghost.stderr, /node ghost serves no parameters/);
    assert.equal(fps.value, 30, "refused values change nothing");
  },
);
