/**
 * The CLI commands a ROS 2 user reaches for: `topic bw|delay|find`, `service type|find`,
 * `param describe|dump|load` (and ranges in `param list`), `doctor` and `completion`, against real
 * processes: a hub and each CLI command are spawned through bin/myelin, nodes run in this test
 * process. Every test has its own runtime directory; every spawned process is killed in an after
 * hook; waits are on output, exits or graph changes, with timeouts (generous: several CLI processes start at once, which takes seconds on a loaded machine).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { CLI, CliProc, runCli, startCliHub, world as cliWorld, type World } from "./cli-world.js";
import { parse as parseYaml } from "yaml";
import { encodeFrames } from "../src/codec/index.js";
import { example_interfaces, myelin_msgs, sensor_msgs, std_msgs, std_srvs } from "../src/msgs/index.js";
import { createNode, type GraphSnapshot, type Node } from "../src/node/index.js";
import { COMMANDS, main } from "../src/tools/cli.js";
import { paramsForNode } from "../src/tools/cmd-param.js";
import { bandwidthOf, delayOf, formatBytes, headerStampMs } from "../src/tools/cmd-topic-stats.js";

const world = (t: TestContext): Promise<World> => cliWorld(t, "myelin-cli-tools-");
const run = (t: TestContext, w: World, args: string[], timeoutMs = 30000) => runCli(t, w, args, timeoutMs);
const startHub = (t: TestContext, w: World, args: string[] = []): Promise<CliProc> => startCliHub(t, w, args);

/** A node of this process in the world, closed after the test. */
async function testNode(t: TestContext, w: World, name: string): Promise<Node> {
  const node = await createNode({ name, runtimeDir: w.dir });
  t.after(() => node.close());
  return node;
}

/** Waits until the hub's graph shows `node` serving `service`. */
async function waitForService(node: Node, service: string): Promise<GraphSnapshot> {
  return node.waitForGraph((g) => g.nodes.some((n) => n.services.some((s) => s.service === service)), 10000);
}

/** JSON lines of a command's stdout. */
function jsonLines<T>(stdout: string): T[] {
  return stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T);
}

// ---- pure helpers ----------------------------------------------------------------------------

test("bandwidth and delay statistics, stamps and parameter files (pure)", () => {
  const bw = bandwidthOf("/x", [0, 500, 1000], [100, 200, 300], 2000, 7)!;
  assert.deepEqual(bw, {
    topic: "/x",
    bytesPerSec: 300,
    mean: 200,
    min: 100,
    max: 300,
    window: 3,
    received: 7,
  });
  assert.equal(bandwidthOf("/x", [], [], 10, 0), undefined);
  const d = delayOf("/x", [0.1, 0.3], 2, "header")!;
  assert.equal(d.mean, 0.2);
  assert.ok(Math.abs(d.stdDev - 0.1) < 1e-12);
  assert.deepEqual([d.min, d.max, d.window, d.stamp], [0.1, 0.3, 2, "header"]);
  assert.deepEqual(
    [formatBytes(930), formatBytes(1270), formatBytes(3.45e6)],
    ["930 B", "1.27 KB", "3.45 MB"],
  );
  assert.equal(headerStampMs({ header: { stamp: { sec: 2, nanosec: 5e8 }, frame_id: "" } }), 2500);
  assert.equal(
    headerStampMs({ header: { stamp: { sec: 0, nanosec: 0 } } }),
    undefined,
    "a zero stamp is unset",
  );
  assert.equal(headerStampMs({ data: "x" }), undefined);

  assert.deepEqual(paramsForNode({ cam: { fps: 30 } }, "cam", "f"), { fps: 30 });
  assert.deepEqual(paramsForNode({ "/cam": { ros__parameters: { fps: 30 } } }, "cam", "f"), { fps: 30 });
  assert.deepEqual(paramsForNode({ fps: 30, mode: "day" }, "cam", "f"), { fps: 30, mode: "day" });
  assert.throws(
    () => paramsForNode({ other: { fps: 1 } }, "cam", "f.yaml"),
    /f\.yaml has parameters for other, not for node cam/,
  );
  assert.throws(() => paramsForNode([1, 2], "cam", "f.yaml"), /ERR_INVALID_ARGUMENT|not a mapping/);
});

test("--help of the new commands has an example; a bad --stamp or SHELL is a usage error", async () => {
  const added = [
    ["topic", "bw"],
    ["topic", "delay"],
    ["topic", "find"],
    ["service", "type"],
    ["service", "find"],
    ["param", "describe"],
    ["param", "dump"],
    ["param", "load"],
    ["doctor"],
    ["completion"],
  ];
  for (const p of added) {
    assert.ok(
      COMMANDS.some((c) => c.path.join(" ") === p.join(" ")),
      `${p.join(" ")} is in COMMANDS`,
    );
    const out: string[] = [];
    const code = await main([...p, "--help"], { out: (l) => out.push(l), err: () => {} });
    assert.equal(code, 0);
    assert.match(out.join("\n"), /Examples?:\n {2}myelin /, p.join(" "));
  }
  const err: string[] = [];
  const sink = { out: () => {}, err: (l: string) => err.push(l) };
  assert.equal(await main(["topic", "delay", "/x", "--stamp", "later"], sink), 2);
  assert.match(err.join("\n"), /--stamp must be auto, header or publish, got 'later'/);
  assert.equal(await main(["completion", "fish"], sink), 2);
  assert.match(err.join("\n"), /SHELL must be bash or zsh, got 'fish'/);
  assert.match(
    await (async () => {
      const o: string[] = [];
      await main(["completion", "--help"], { out: (l) => o.push(l), err: () => {} });
      return o.join("\n");
    })(),
    /bash-completion\/completions\/myelin/,
    "the help says how to install the script",
  );
});

// ---- topics ----------------------------------------------------------------------------------

test("topic bw, delay and find against a publishing node", { timeout: 90000 }, async (t) => {
  const w = await world(t);
  await startHub(t, w);
  const node = await testNode(t, w, "cli_tools_cam");
  const images = await node.createPublisher("/cli_tools/image", sensor_msgs.Image);
  const chatter = await node.createPublisher("/cli_tools/chatter", std_msgs.String);
  // Header stamps 3 s in the past: `delay` from the header reads about 3 s, from the publish time about 0.
  const LAG_MS = 3000;
  const image = (): ReturnType<typeof sensor_msgs.Image.create> => {
    const at = Date.now() - LAG_MS;
    return sensor_msgs.Image.create({
      header: { stamp: { sec: Math.floor(at / 1000), nanosec: (at % 1000) * 1e6 }, frame_id: "cam" },
      height: 10,
      width: 100,
      encoding: "mono8",
      step: 100,
      data: new Uint8Array(1000).fill(7),
    });
  };
  // The size changes only with the stamp's encoding (a few bytes); the data dominates.
  const size = encodeFrames(image()).reduce((n, f) => n + f.byteLength, 0);
  const timer = setInterval(() => {
    images.publish(image()).catch(() => {});
    chatter.publish({ data: "hello" }).catch(() => {});
  }, 50);
  t.after(() => clearInterval(timer));
  await node.waitForGraph(
    (g) => g.nodes.some((n) => n.pubs.some((p) => p.topic === "/cli_tools/chatter")),
    10000,
  );

  const [bw, bwHuman, delay, fromPublish, plain, noHeader, found, count, none] = await Promise.all([
    run(t, w, ["topic", "bw", "/cli_tools/image", "--count-reports", "2", "--window", "10", "--json"]),
    run(t, w, ["topic", "bw", "/cli_tools/image", "--count-reports", "2"]),
    run(t, w, ["topic", "delay", "/cli_tools/image", "--count-reports", "2", "--json"]),
    run(t, w, ["topic", "delay", "/cli_tools/image", "--count-reports", "2", "--json", "--stamp", "publish"]),
    run(t, w, ["topic", "delay", "/cli_tools/chatter", "--count-reports", "2"]),
    run(t, w, ["topic", "delay", "/cli_tools/chatter", "--stamp", "header"]),
    run(t, w, ["topic", "find", "sensor_msgs/msg/Image"]),
    run(t, w, ["topic", "find", "std_msgs/String", "-c"]),
    run(t, w, ["topic", "find", "sensor_msgs/Imag"]),
  ]);

  assert.equal(bw.code, 0, bw.stderr);
  const reports = jsonLines<{
    bytesPerSec: number;
    mean: number;
    min: number;
    max: number;
    window?: number;
    received: number;
  }>(bw.stdout);
  assert.equal(reports.length, 2, bw.stdout);
  // The last report with messages (a stalled machine may leave the second without new ones).
  const last = reports.filter((r) => r.window !== undefined).at(-1);
  assert.ok(last !== undefined, bw.stdout);
  assert.equal(last.window, Math.min(10, last.received), "the window holds the last 10 messages");
  for (const s of [last.min, last.max, last.mean]) assert.ok(Math.abs(s - size) <= 8, `size ${s} ≈ ${size}`);
  // 20 messages a second nominally; a loaded machine may publish fewer.
  assert.ok(last.bytesPerSec > size && last.bytesPerSec < size * 100, `${last.bytesPerSec} B/s`);
  assert.equal(bwHuman.code, 0, bwHuman.stderr);
  assert.match(
    bwHuman.stdout,
    /^\d+\.\d\d KB\/s from \d+ messages\n\tMessage size mean: 1\.\d\d KB min: 1\.\d\d KB max: 1\.\d\d KB$/m,
  );

  assert.equal(delay.code, 0, delay.stderr);
  const d = jsonLines<{ mean: number; min: number; max: number; stamp: string }>(delay.stdout).at(-1)!;
  assert.equal(d.stamp, "header");
  assert.ok(d.min > 2.9 && d.mean < 5, `delay from the header stamp ${d.mean} s ≈ 3 s`);
  assert.equal(fromPublish.code, 0, fromPublish.stderr);
  const p = jsonLines<{ mean: number; stamp: string }>(fromPublish.stdout).at(-1)!;
  assert.equal(p.stamp, "publish");
  assert.ok(p.mean > -0.05 && p.mean < 2, `delay from the publish time ${p.mean} s ≈ 0`);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(
    plain.stdout,
    /^average delay: -?\d+\.\d{3} \(from publish time\)\n\tmin: .*s max: .*s std dev: .*s window: \d+$/m,
  );
  assert.equal(noHeader.code, 1);
  assert.match(noHeader.stderr, /have no header\.stamp.*--stamp publish \[ERR_INVALID_ARGUMENT\]/);

  assert.equal(found.code, 0, found.stderr);
  assert.equal(found.stdout, "/cli_tools/image\n");
  assert.equal(count.stdout, "1\n");
  assert.equal(none.code, 0);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /no topic carries sensor_msgs\/Imag \(did you mean 'sensor_msgs\/Image'\?\)/);
});

// ---- services --------------------------------------------------------------------------------

test("service type and service find read the graph", { timeout: 60000 }, async (t) => {
  const w = await world(t);
  await startHub(t, w);
  const node = await testNode(t, w, "cli_tools_server");
  await node.createService("/cli_tools/add", example_interfaces.AddTwoInts, (r) => ({ sum: r.a + r.b }));
  await node.createService("/cli_tools/reset", std_srvs.Trigger, () => ({ success: true, message: "" }));
  await node.createService("/cli_tools/home", std_srvs.Trigger, () => ({ success: true, message: "" }));
  await waitForService(node, "/cli_tools/home");

  const [type, json, typo, found, count, foundJson, none] = await Promise.all([
    run(t, w, ["service", "type", "/cli_tools/add"]),
    run(t, w, ["service", "type", "cli_tools/add", "--json"]),
    run(t, w, ["service", "type", "/cli_tools/ad"]),
    run(t, w, ["service", "find", "std_srvs/srv/Trigger"]),
    run(t, w, ["service", "find", "std_srvs/Trigger", "--count-services"]),
    run(t, w, ["service", "find", "example_interfaces/AddTwoInts", "--json"]),
    run(t, w, ["service", "find", "std_srvs/SetBool"]),
  ]);
  assert.equal(type.code, 0, type.stderr);
  assert.equal(type.stdout, "example_interfaces/AddTwoInts\n");
  assert.equal(json.code, 0, json.stderr);
  const view = JSON.parse(json.stdout) as {
    service: string;
    type: string;
    servers: { node: string; pid: number }[];
  };
  assert.deepEqual(
    [view.service, view.type, view.servers[0]?.node, view.servers[0]?.pid],
    ["/cli_tools/add", "example_interfaces/AddTwoInts", "cli_tools_server", process.pid],
  );
  assert.equal(typo.code, 1);
  assert.match(
    typo.stderr,
    /no node serves \/cli_tools\/ad \(did you mean '\/cli_tools\/add'.*\[ERR_NO_SERVER\]/,
  );
  assert.equal(found.code, 0, found.stderr);
  assert.equal(found.stdout, "/cli_tools/home\n/cli_tools/reset\n");
  assert.equal(count.stdout, "2\n");
  assert.deepEqual(
    (JSON.parse(foundJson.stdout) as { service: string }[]).map((s) => s.service),
    ["/cli_tools/add"],
  );
  assert.equal(none.code, 0);
  assert.equal(none.stdout, "");
  assert.match(none.stderr, /no service has type std_srvs\/SetBool; types in use: .*std_srvs\/Trigger/);
  assert.doesNotMatch(none.stderr, /myelin_msgs\/Store/, "the hub's own services are left out");
});

// ---- parameters ------------------------------------------------------------------------------

test(
  "param describe, ranges in param list, dump and load (with failures reported)",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t);
    await startHub(t, w);
    const node = await testNode(t, w, "cli_tools_cam");
    const fps = node.declareParameter("fps", {
      type: "double",
      default: 15,
      min: 1,
      max: 120,
      description: "frame rate",
    });
    node.declareParameter("serial", { type: "string", default: "X1", readOnly: true });
    const mode = node.declareParameter("mode", { type: "string", default: "day" });
    node.declareParameter("gains", { type: "int[]", default: [1, 2], min: 0 });
    // A node from before descriptors: list_parameters without them.
    const old = await testNode(t, w, "cli_tools_old");
    await old.createService("/cli_tools_old/list_parameters", myelin_msgs.ListParameters, () => ({
      names: ["gain"],
      kinds: ["int"],
      values_json: ["3"],
      descriptions: ["amplifier gain"],
    }));
    await waitForService(node, "/cli_tools_cam/set_parameter");
    await waitForService(node, "/cli_tools_old/list_parameters");

    const [list, describe, describeJson, describeOld, listOld, dump, missing] = await Promise.all([
      run(t, w, ["param", "list", "cli_tools_cam"]),
      run(t, w, ["param", "describe", "cli_tools_cam", "fps"]),
      run(t, w, ["param", "describe", "cli_tools_cam", "serial", "--json"]),
      run(t, w, ["param", "describe", "cli_tools_old", "gain"]),
      run(t, w, ["param", "list", "cli_tools_old", "--json"]),
      run(t, w, ["param", "dump", "cli_tools_cam"]),
      run(t, w, ["param", "describe", "cli_tools_cam", "fsp"]),
    ]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+KIND\s+VALUE\s+RANGE\s+DESCRIPTION$/m);
    assert.match(list.stdout, /^fps\s+double\s+15\s+\[1, 120\]\s+frame rate$/m);
    assert.match(list.stdout, /^serial\s+string\s+"X1" \(read-only\)$/m);
    assert.match(list.stdout, /^gains\s+int\[\]\s+\[1,2\]\s+>= 0$/m);
    assert.equal(describe.code, 0, describe.stderr);
    assert.match(
      describe.stdout,
      /Parameter name: fps\n {2}Kind: double\n {2}Description: frame rate\n {2}Value: 15\n {2}Default: 15\n {2}Read only: no\n {2}Constraints: \[1, 120\]/,
    );
    assert.deepEqual(JSON.parse(describeJson.stdout), {
      name: "serial",
      kind: "string",
      value: "X1",
      description: "",
      readOnly: true,
      default: "X1",
    });
    assert.equal(describeOld.code, 0, describeOld.stderr);
    assert.match(
      describeOld.stdout,
      /Kind: int\n {2}Description: amplifier gain\n {2}Value: 3\n {2}Constraints, read-only, default: not reported/,
    );
    assert.deepEqual(JSON.parse(listOld.stdout), [
      { name: "gain", kind: "int", value: 3, description: "amplifier gain" },
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /has no parameter fsp \(did you mean 'fps'\?\); it has: fps, serial, mode, gains \[ERR_PARAMETER\]/,
    );

    // dump → edit → load: the node sees each change; unchanged values (the read-only one) are left alone.
    assert.equal(dump.code, 0, dump.stderr);
    const doc = parseYaml(dump.stdout) as Record<string, Record<string, unknown>>;
    assert.deepEqual(doc, { cli_tools_cam: { fps: 15, serial: "X1", mode: "day", gains: [1, 2] } });
    doc["cli_tools_cam"]["fps"] = 30;
    doc["cli_tools_cam"]["gains"] = [4, 5, 6];
    const file = join(w.dir, "cam.yaml");
    await writeFile(file, JSON.stringify(doc));
    const fpsChanged = once(fps, "change");
    const loaded = await run(t, w, ["param", "load", "cli_tools_cam", file]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.deepEqual(await fpsChanged, [30, 15]);
    assert.deepEqual(node.parameters(), { fps: 30, serial: "X1", mode: "day", gains: [4, 5, 6] });
    assert.match(loaded.stdout, /^serial = "X1" \(unchanged\)$/m);
    assert.match(loaded.stdout, /^fps = 30$/m);

    // A file with refused values: each failure is named, the good value is still set, exit 1.
    const bad = join(w.dir, "bad.yaml");
    await writeFile(
      bad,
      [
        "/cli_tools_cam:",
        "  ros__parameters:",
        "    fps: 500",
        "    serial: X2",
        "    zoom: 2",
        "    mode: night",
      ].join("\n"),
    );
    const modeChanged = once(mode, "change");
    const refused = await run(t, w, ["param", "load", "cli_tools_cam", bad]);
    assert.equal(refused.code, 1);
    assert.deepEqual(await modeChanged, ["night", "day"]);
    assert.match(refused.stdout, /^mode = "night"$/m);
    assert.match(refused.stderr, /^myelin: fps: not set: .*within \[1, 120\], got 500$/m);
    assert.match(refused.stderr, /^myelin: serial: not set: parameter serial is read-only$/m);
    assert.match(refused.stderr, /^myelin: zoom: not set: node cli_tools_cam has no parameter zoom$/m);
    assert.match(
      refused.stderr,
      /3 of 4 parameters of node cli_tools_cam were not set \(fps, serial, zoom\); fix them in .*bad\.yaml.*\[ERR_PARAMETER\]/,
    );
    assert.equal(fps.value, 30, "refused values change nothing");

    const other = join(w.dir, "other.yaml");
    await writeFile(other, "lidar:\n  rate: 10\n");
    const wrongNode = await run(t, w, ["param", "load", "cli_tools_cam", other]);
    assert.equal(wrongNode.code, 1);
    assert.match(
      wrongNode.stderr,
      /has parameters for lidar, not for node cli_tools_cam.*\[ERR_INVALID_ARGUMENT\]/,
    );
  },
);

// ---- doctor ----------------------------------------------------------------------------------

interface DoctorReport {
  ok: boolean;
  checks: { check: string; status: string; detail: string; fix?: string }[];
}

/** Spawns a process that binds a Unix socket at `path` and kills itself: the file stays, nobody listens. */
async function staleSocket(t: TestContext, w: World, path: string): Promise<number> {
  const code = `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`;
  const p = new CliProc(process.execPath, ["-e", code], w);
  t.after(() => p.kill());
  await p.exit();
  return p.child.pid!;
}

test(
  "doctor: a healthy hub with an MQTT listener, then stale sockets, a stale lock and a loose mode",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t);
    const hub = await startHub(t, w, ["--mqtt-port", "0"]);
    await hub.waitFor(/MQTT gateway: /);
    const healthy = await run(t, w, ["doctor", "--json"]);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    const r = JSON.parse(healthy.stdout) as DoctorReport;
    const by = (rep: DoctorReport, name: string) => rep.checks.find((c) => c.check === name);
    assert.equal(r.ok, true);
    assert.equal(by(r, "hub")?.status, "OK");
    assert.match(
      by(r, "hub")!.detail,
      new RegExp(`myelin \\d+\\.\\d+\\.\\d+, pid ${hub.child.pid} on .*runtime dir ${w.dir}`),
    );
    assert.equal(by(r, "runtime dir")?.status, "OK");
    assert.equal(by(r, "sockets")?.status, "OK", by(r, "sockets")?.detail);
    assert.equal(by(r, "clock")?.status, "OK");
    assert.equal(by(r, "data dir")?.status, "OK");
    assert.match(by(r, "data dir")!.detail, /writable, .* free/);
    assert.match(by(r, "locks")!.detail, new RegExp(`data/LOCK: held by the hub \\(pid ${hub.child.pid}\\)`));
    assert.equal(by(r, "mqtt")?.status, "OK");
    assert.match(by(r, "mqtt")!.detail, /^mqtt:\/\/.*:\d+ accepts connections/);

    // A node socket left by a killed process, a data dir whose LOCK names a dead process, mode 0755.
    const deadPid = await staleSocket(t, w, join(w.dir, "n-ghost-0badf00d.sock"));
    const other = join(w.dir, "other-data");
    await mkdir(other);
    await writeFile(
      join(other, "LOCK"),
      JSON.stringify({ pid: deadPid, host: hostname(), what: "a myelin hub", since: 1 }) + "\n",
    );
    await chmod(w.dir, 0o755);
    const sick = await run(t, w, ["doctor", "--data-dir", other]);
    assert.equal(sick.code, 0, "warnings do not fail the run");
    assert.match(sick.stdout, /^STATUS\s+CHECK\s+DETAIL$/m);
    assert.match(sick.stdout, /^WARN\s+runtime dir\s+.* has mode 755/m);
    assert.match(
      sick.stdout,
      /^WARN\s+sockets\s+1 of \d+ sockets have nobody listening .*: n-ghost-0badf00d\.sock$/m,
    );
    assert.match(
      sick.stdout,
      new RegExp(
        `^WARN\\s+locks\\s+.*other-data/LOCK: stale \\(a myelin hub, pid ${deadPid} on .* is gone\\)`,
        "m",
      ),
    );
    assert.match(sick.stdout, /^What to do:$/m);
    assert.match(sick.stdout, new RegExp(`WARN runtime dir: chmod 700 ${w.dir}`));
    assert.match(sick.stdout, /WARN sockets: .*rm .*n-ghost-0badf00d\.sock/);
    assert.match(sick.stdout, /\d+ checks: \d+ OK, \d+ WARN, 0 FAIL, \d+ skipped/);
    // A directory Myelin did not create keeps its mode (only one it creates is made 0700, and one
    // other users can write to is refused): the warning and its fix are the user's to apply.
    assert.equal((await stat(w.dir)).mode & 0o777, 0o755);
  },
);

test("doctor without a hub: FAIL with what to do, exit 1", { timeout: 40000 }, async (t) => {
  const w = await world(t);
  const r = await run(t, w, ["doctor", "--timeout-ms", "300"]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^FAIL\\s+hub\\s+no hub answered at ipc://${w.dir}/hub\\.sock within 300 ms`, "m"),
  );
  assert.match(r.stdout, /FAIL hub: start one with `myelin hub`/);
  assert.match(r.stdout, /^SKIP\s+clock\s+not checked: no hub answered$/m);
  const json = await run(t, w, ["doctor", "--timeout-ms", "300", "--json"]);
  assert.equal(json.code, 1);
  const rep = JSON.parse(json.stdout) as DoctorReport;
  assert.equal(rep.ok, false);
  assert.equal(rep.checks.find((c) => c.check === "hub")?.status, "FAIL");
});

// ---- completion ------------------------------------------------------------------------------

/** Runs `script` with `shell -c`; its stdout. */
async function shell(t: TestContext, w: World, sh: string, script: string): Promise<string> {
  const p = new CliProc(sh, ["-c", script], w);
  t.after(() => p.kill());
  const code = await p.exit(20000);
  assert.equal(code, 0, `${sh}: ${p.stderr}`);
  return p.stdout;
}

/** Whether `cmd` can be run here. */
async function have(cmd: string): Promise<boolean> {
  const p = spawn(cmd, ["-c", "true"], { stdio: "ignore" });
  const [code] = (await Promise.race([once(p, "exit"), once(p, "error").then(() => [1])])) as [number | null];
  return code === 0;
}

test(
  "completion: bash completes commands, options and live names; zsh shares the logic",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t);
    await startHub(t, w);
    const node = await testNode(t, w, "cli_tools_talker");
    await node.createPublisher("/cli_tools/chatter", std_msgs.String);
    node.declareParameter("rate", { type: "double", default: 1 });
    await waitForService(node, "/cli_tools_talker/list_parameters");

    const bashScript = join(w.dir, "myelin.bash");
    const gen = await run(t, w, ["completion", "bash"]);
    assert.equal(gen.code, 0, gen.stderr);
    await writeFile(bashScript, gen.stdout);
    // Each line is completed as bash would: COMP_LINE up to the cursor, then _myelin fills COMPREPLY.
    const lines = [
      "myelin to",
      "myelin topic ",
      "myelin topic bw --co",
      "myelin topic echo /cli_t",
      "myelin topic echo /cli_tools/chatter std_msgs/Str",
      "myelin --runtime-dir " + w.dir + " node info cli_",
      "myelin param describe cli_tools_talker ",
      "myelin completion ",
      "myelin param load cli_tools_talker " + join(w.dir, "myelin.b"),
    ];
    const probe = lines
      .map((l) => {
        const line = l.replace(/^myelin/, CLI);
        return `COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}; COMPREPLY=(); _myelin; echo "\${COMPREPLY[*]}"`;
      })
      .join("\n");
    const out = (await shell(t, w, "bash", `source ${bashScript}\n${probe}`)).split("\n");
    const topicSubs = COMMANDS.filter((c) => c.path[0] === "topic")
      .map((c) => c.path[1])
      .join(" ");
    assert.deepEqual(out.slice(0, lines.length), [
      "topic",
      topicSubs,
      "--count-reports",
      "/cli_tools/chatter",
      "std_msgs/String",
      "cli_tools_talker",
      "rate",
      "bash zsh",
      bashScript,
    ]);

    const zshScript = join(w.dir, "_myelin");
    const genZ = await run(t, w, ["completion", "zsh"]);
    assert.equal(genZ.code, 0, genZ.stderr);
    assert.match(genZ.stdout, /^#compdef myelin\n/);
    await writeFile(zshScript, genZ.stdout);
    if (!(await have("zsh"))) {
      t.diagnostic("zsh is not installed: its script was generated but not run");
      return;
    }
    // The shared candidate function, run by zsh (the completion widget itself needs a terminal).
    const zout = await shell(
      t,
      w,
      "zsh",
      [
        `source <(sed -n '/^_myelin_run()/,/^_myelin() {/p' ${zshScript} | sed '$d')`,
        `_myelin_candidates ${CLI} topic echo ''`,
        `_myelin_candidates ${CLI} param get cli_tools_talker ''`,
        `_myelin_candidates ${CLI} topic ec`,
      ].join("\n"),
    );
    assert.match(zout, /^words\n(.*\n)*\/cli_tools\/chatter\n/m);
    assert.match(zout, /^words\nrate\n/m);
    assert.match(zout, /^described\n(.*\n)*echo:print the messages of a topic\n/m);
  },
);
