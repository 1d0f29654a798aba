/**
 * The README's main job: the demo system runs and the monitor sees frames and detections; it prints
 * the dashboard's address first; under --chaos (a detector killed every few seconds) no detector
 * call fails and the killed replicas come back; kill -9 of the demo, or a Ctrl-C to its process
 * group, leaves no process behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Proc, tempRuntime, until } from "./helpers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

test(
  "the demo starts a hub, a camera, a detector and a monitor that sees both streams",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    using data = tempRuntime(); // the demo's durable topics, kept apart from the runtime directory
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    await using demo = new Proc(script, ["--duration-ms", "15000", "--http-port", "0"], {
      MYELIN_RUNTIME_DIR: rt.dir,
      MYELIN_DATA_DIR: data.dir,
    });
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
    using data = tempRuntime(); // the demo's durable topics, kept apart from the runtime directory
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    const demo = new Proc(script, ["--http-port", "0"], {
      MYELIN_RUNTIME_DIR: rt.dir,
      MYELIN_DATA_DIR: data.dir,
    });
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
      // The hub runs in a child process of the demo: it must stop too.
      const hubLine = await demo.waitFor(
        (x) => /\[hub\] myelin hub \S+ started \(pid \d+/.test(String(x["text"])),
        5000,
        "the hub's pid",
      );
      pids.push(Number(/pid (\d+)/.exec(String(hubLine["text"]))![1]));
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
      await until(
        () => pids.every((p) => !alive(p)),
        30000,
        "the demo's hub and nodes to stop after it was killed",
      );
      // The killed hub left its socket and pid file; `myelin down` says nothing runs and removes them.
      const down = spawnSync(process.execPath, [CLI, "down"], {
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

/** Every process whose command line mentions `dir` (the demo's runtime directory is in their environment, not their arguments, so look there). */
function processesOf(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/environ`, "utf8").includes(`MYELIN_RUNTIME_DIR=${dir}`))
        out.push(Number(p));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

test(
  "the demo prints the dashboard first, survives --chaos for a minute with no failed detector call, and stops cleanly",
  { timeout: 150000 },
  async () => {
    using rt = tempRuntime();
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    await using demo = new Proc(script, ["--http-port", "0", "--chaos", "--chaos-interval-ms", "4000"], {
      MYELIN_RUNTIME_DIR: rt.dir,
      MYELIN_DATA_DIR: `${rt.dir}/data`,
    });
    const first = await demo.waitFor(() => true, 30000, "a first line");
    assert.match(String(first["text"]), /^\[demo\] dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=\S{43}$/);
    // Data flows within seconds.
    await demo.waitFor(
      (l) => /\[monitor\] camera [1-9][\d.]* Hz .* detections [1-9][\d.]* Hz/.test(String(l["text"])),
      30000,
      "frames and detections at the monitor",
    );
    const t0 = Date.now();
    await demo.waitForCount(
      (l) => /^\[chaos\] killed detector/.test(String(l["text"])),
      10,
      70000,
      "chaos kills",
    );
    // A minute of chaos, then the tracker's count of calls: none failed, both replicas answered.
    const rest = 60000 - (Date.now() - t0);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    const stats = spawnSync(
      process.execPath,
      [CLI, "service", "call", "/tracker/stats", "std_srvs/Trigger", "{}", "--json"],
      {
        env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir },
        encoding: "utf8",
      },
    );
    assert.equal(stats.status, 0, stats.stderr);
    const message = (JSON.parse(stats.stdout) as { message: string }).message;
    const calls = Number(/calls=(\d+)/.exec(message)?.[1]);
    assert.ok(calls > 300, `too few detector calls in a minute: ${message}`);
    assert.match(message, /failed=0 /, message);
    assert.match(message, /detector:\d+/, message);
    assert.match(message, /detector\.1:\d+/, message);
    // The killed replicas came back: every kill was followed by the replica turning ready again.
    const kills = demo.lines.filter((l) => /^\[chaos\] killed detector/.test(String(l["text"]))).length;
    const readies = demo.lines.filter((l) => /^\[hub\] detector#\d ready/.test(String(l["text"]))).length;
    assert.ok(readies >= kills, `${kills} kills but only ${readies} detector starts reached ready`);
    const running = processesOf(rt.dir);
    assert.ok(running.length >= 9, `expected the demo's processes, found ${running.length}`);
    demo.kill("SIGINT");
    await demo.exit(30000);
    assert.equal(demo.exitCode, 0, demo.stderr.join("\n"));
    await until(() => processesOf(rt.dir).length === 0, 10000, "every process of the demo to be gone");
  },
);

test(
  "Ctrl-C in a terminal (SIGINT to the demo's whole process group) stops the hub and every process it supervises",
  { timeout: 60000 },
  async (t) => {
    using rt = tempRuntime();
    const script = fileURLToPath(new URL("../examples/demo.js", import.meta.url));
    // Its own process group, as a shell gives a foreground job.
    const demo = spawn(process.execPath, [script, "--http-port", "0"], {
      env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: `${rt.dir}/data` },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    t.after(() => {
      for (const pid of processesOf(rt.dir)) process.kill(pid, "SIGKILL");
    });
    const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
    let out = "";
    const flowing = new Promise<void>((resolve) => {
      demo.stdout.setEncoding("utf8").on("data", (s: string) => {
        out += s;
        if (/\[monitor\] camera [1-9][\d.]* Hz .* detections [1-9][\d.]* Hz/.test(out)) resolve();
      });
    });
    demo.stderr.resume();
    await Promise.race([
      flowing,
      exited.then(() => assert.fail(`the demo exited early: ${out}`)),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no monitor line in 30 s: ${out}`)), 30000),
      ),
    ]);
    assert.ok(processesOf(rt.dir).length >= 9, "the demo's processes");
    process.kill(-demo.pid!, "SIGINT");
    assert.equal(await exited, 0, out);
    assert.match(out, /\[hub\] down: stopped \d+ process/);
    await until(() => processesOf(rt.dir).length === 0, 15000, "every process of the demo to be gone");
  },
);
