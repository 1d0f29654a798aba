/** The README's main job: the demo system runs and the monitor sees frames and detections. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Proc, tempRuntime, until } from "./helpers.js";

test(
  "the demo starts a hub, a camera, a detector and a monitor that sees both streams",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    await using demo = new Proc(script, ["--duration-ms", "15000"], { MYELIN_RUNTIME_DIR: rt.dir });
    const line = await demo.waitFor(
      (l) =>
        l.event === "text" &&
        /\[monitor\] camera [1-9][\d.]* Hz .* detections [1-9][\d.]* Hz/.test(String(l["text"])),
      20000,
      "a monitor line with frames and detections",
    );
    assert.match(String(line["text"]), /last: square track-1/);
    demo.kill("SIGTERM");
    await demo.exit();
    assert.equal(demo.exitCode, 0);
  },
);

test(
  "kill -9 of the demo stops its nodes too, and leaves no socket that `myelin down` does not clean",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    const demo = new Proc(script, [], { MYELIN_RUNTIME_DIR: rt.dir });
    try {
      const pids: number[] = [];
      for (const name of ["camera", "detector", "monitor"]) {
        const l = await demo.waitFor(
          (x) =>
            x.event === "text" &&
            new RegExp(`\\[hub\\] node ${name} joined \\(pid (\\d+)`).test(String(x["text"])),
          20000,
          `${name} to join`,
        );
        pids.push(Number(/pid (\d+)/.exec(String(l["text"]))![1]));
      }
      demo.kill("SIGKILL");
      await demo.exit();
      const alive = (pid: number): boolean => {
        try {
          process.kill(pid, 0);
          return !/^[ZX]/.test(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "");
        } catch {
          return false;
        }
      };
      await until(() => pids.every((p) => !alive(p)), 30000, "the demo's nodes to stop after it was killed");
      // The killed hub left its socket and pid file; `myelin down` says nothing runs and removes them.
      const cli = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
      const down = spawnSync(process.execPath, [cli, "down"], {
        env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir },
        encoding: "utf8",
      });
      assert.equal(down.status, 0, down.stderr);
      assert.match(down.stderr, /nothing to stop: no hub runs in/);
      assert.deepEqual(readdirSync(rt.dir), []);
    } finally {
      demo.kill("SIGKILL");
    }
  },
);
