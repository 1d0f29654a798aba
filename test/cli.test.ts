/**
 * The `myelin` CLI against real processes: a hub and CLI commands are spawned through bin/myelin
 * (which runs the compiled dist/src/tools/cli.js), nodes are created in this test process. Every
 * test has its own runtime directory, so tests share nothing; every spawned process is killed in an
 * after hook; waits are on output lines or exits, with timeouts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import {
  type CliProc,
  runCli,
  spawnCli as spawnCliProc,
  startCliHub,
  world as cliWorld,
  type World,
} from "./cli-world.js";
import { createNode } from "../src/node/index.js";
import { example_interfaces, sensor_msgs, std_msgs } from "../src/msgs/index.js";
import { COMMANDS, main } from "../src/tools/cli.js";
import { closeMatches, renderMessage } from "../src/tools/format.js";

const world = (t: TestContext): Promise<World> => cliWorld(t, "myelin-cli-");
const spawnCli = (t: TestContext, w: World, args: string[]): CliProc => spawnCliProc(t, w, args);
const run = (t: TestContext, w: World, args: string[], timeoutMs = 10000) => runCli(t, w, args, timeoutMs);
const startHub = (t: TestContext, w: World, args: string[] = []): Promise<CliProc> => startCliHub(t, w, args);

test(
  "hub starts, node list shows a node of this process, SIGTERM stops the hub",
  { timeout: 20000 },
  async (t) => {
    const w = await world(t);
    const hub = await startHub(t, w);
    const node = await createNode({ name: "cli_test_talker", runtimeDir: w.dir });
    t.after(() => node.close());
    await node.createPublisher("/cli_test/chatter", std_msgs.String);
    await hub.waitFor(/node cli_test_talker joined/);

    const list = await run(t, w, ["node", "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const nodes = JSON.parse(list.stdout) as {
      name: string;
      pid: number;
      pubs: { topic: string; type: string }[];
    }[];
    const mine = nodes.find((n) => n.name === "cli_test_talker");
    assert.ok(mine, `cli_test_talker missing from ${list.stdout}`);
    assert.equal(mine.pid, process.pid);
    assert.deepEqual(
      mine.pubs.map((p) => [p.topic, p.type]),
      [["/cli_test/chatter", "std_msgs/String"]],
    );
    assert.ok(!nodes.some((n) => n.name.startsWith("_")), "tool nodes are hidden without --all");

    const all = await run(t, w, ["node", "list", "--all", "--json"]);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(
      (JSON.parse(all.stdout) as { name: string }[]).some((n) => n.name.startsWith("_myelin_node_list_")),
    );

    const topics = await run(t, w, ["topic", "list", "-t"]);
    assert.equal(topics.code, 0, topics.stderr);
    assert.match(topics.stdout, /\/cli_test\/chatter\s+std_msgs\/String\s+1\s+0/);

    hub.child.kill("SIGTERM");
    assert.equal(await hub.exit(), 0);
    assert.match(hub.stdout, /hub stopped/);
  },
);

test("topic pub in one process reaches topic echo --json in another", { timeout: 20000 }, async (t) => {
  const w = await world(t);
  await startHub(t, w);
  const echo = spawnCli(t, w, [
    "topic",
    "echo",
    "/cli_test/greeting",
    "--count",
    "2",
    "--json",
    "--wait-ms",
    "10000",
  ]);
  const pub = await run(t, w, [
    "topic",
    "pub",
    "/cli_test/greeting",
    "std_msgs/String",
    "{data: hello}",
    "--count",
    "2",
    "--wait-ms",
    "10000",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.match(pub.stdout, /publishing #2 to \/cli_test\/greeting: \{"data":"hello"\}/);
  assert.equal(await echo.exit(), 0, echo.stderr);
  const lines = echo.stdout
    .trim()
    .split("\n")
    .map(
      (l) => JSON.parse(l) as { topic: string; seq: number; publisher: string; stamp: unknown; msg: unknown },
    );
  assert.equal(lines.length, 2);
  assert.deepEqual(
    lines.map((l) => [l.topic, l.seq, l.msg]),
    [
      ["/cli_test/greeting", 1, { data: "hello" }],
      ["/cli_test/greeting", 2, { data: "hello" }],
    ],
  );
  assert.match(lines[0]!.publisher, /^_myelin_topic_pub_\d+#1$/);
});

test(
  "service call gets the result from a server in this process; no server is ERR_NO_SERVER",
  { timeout: 20000 },
  async (t) => {
    const w = await world(t);
    await startHub(t, w);
    const node = await createNode({ name: "cli_test_adder", runtimeDir: w.dir });
    t.after(() => node.close());
    await node.createService("/cli_test/add", example_interfaces.AddTwoInts, (req) => ({
      sum: req.a + req.b,
    }));

    const json = await run(t, w, [
      "service",
      "call",
      "/cli_test/add",
      "example_interfaces/AddTwoInts",
      "{a: 2, b: 40}",
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { sum: "42" });

    const human = await run(t, w, [
      "service",
      "call",
      "cli_test/add",
      "example_interfaces/srv/AddTwoInts",
      '{"a": 1}',
    ]);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout.trim(), "sum: 1");

    const none = await run(t, w, ["service", "call", "/cli_test/nobody", "std_srvs/Trigger"]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^myelin: no node serves \/cli_test\/nobody.*\[ERR_NO_SERVER\]$/m);
    assert.doesNotMatch(none.stderr, /\n\s+at /, "no stack trace without MYELIN_DEBUG");
  },
);

test(
  "bad DATA names the field, bad syntax and unknown types fail with exit 1",
  { timeout: 20000 },
  async (t) => {
    // These are checked before the CLI looks for a hub, so no hub is needed.
    const w = await world(t);
    const [field, syntax, type, service] = await Promise.all([
      run(t, w, ["topic", "pub", "/x", "geometry_msgs/Twist", "{linear: {x: fast}}"]),
      run(t, w, ["topic", "pub", "/x", "std_msgs/String", "{data: "]),
      run(t, w, ["topic", "pub", "/x", "std_msgs/Strng", "{}"]),
      run(t, w, ["service", "call", "/add", "example_interfaces/AddTwoInts", '{"a": "two"}']),
    ]);
    assert.equal(field.code, 1);
    assert.match(field.stderr, /linear\.x: expected f64.*"fast".*\[ERR_VALIDATION\]/);
    assert.equal(syntax.code, 1);
    assert.match(syntax.stderr, /not valid JSON or YAML.*\[ERR_INVALID_ARGUMENT\]/);
    assert.equal(type.code, 1);
    assert.match(
      type.stderr,
      /message type 'std_msgs\/Strng' is not known \(did you mean 'std_msgs\/String'.*\[ERR_UNKNOWN_TYPE\]/,
    );
    assert.equal(service.code, 1);
    assert.match(service.stderr, /request to \/add.*a: .*\[ERR_VALIDATION\]/);
  },
);

test("topic echo with a TYPE subscribes before any publisher exists", { timeout: 20000 }, async (t) => {
  const w = await world(t);
  await startHub(t, w);
  const echo = spawnCli(t, w, [
    "topic",
    "echo",
    "/cli_test/early",
    "std_msgs/String",
    "--count",
    "1",
    "--json",
  ]);
  const pub = await run(t, w, [
    "topic",
    "pub",
    "/cli_test/early",
    "std_msgs/String",
    "{data: first}",
    "--count",
    "1",
    "--wait-ms",
    "10000",
  ]);
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal(await echo.exit(), 0, echo.stderr);
  assert.deepEqual((JSON.parse(echo.stdout.trim()) as { msg: unknown }).msg, { data: "first" });
  // With a publisher in the graph, a TYPE that is not the topic's is refused.
  const steady = spawnCli(t, w, [
    "topic",
    "pub",
    "/cli_test/early",
    "std_msgs/String",
    "{data: x}",
    "--rate",
    "20",
  ]);
  await steady.waitFor(/publishing #1/);
  const wrong = await run(t, w, ["topic", "echo", "/cli_test/early", "std_msgs/Int32", "--count", "1"]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /has type std_msgs\/String, not std_msgs\/Int32/);
});

test("without a hub a command says how to start one", { timeout: 20000 }, async (t) => {
  const w = await world(t);
  const r = await run(t, w, ["topic", "list"]);
  assert.equal(r.code, 1);
  assert.ok(
    r.stderr.includes(`no hub answered at ipc://${join(w.dir, "hub.sock")}; start one with \`myelin hub\``),
    r.stderr,
  );
});

test(
  "--help of every command exits 0 with an example; usage mistakes exit 2",
  // Five CLI processes start at once: on a loaded 2-core machine each can take seconds to load.
  { timeout: 60000 },
  async (t) => {
    // Every help text, through main() in this process (spawning one process per command is slow) ...
    const paths = [[], ["node"], ["topic"], ["service"], ["interface"], ...COMMANDS.map((c) => c.path)];
    for (const p of paths) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main([...p, "--help"], { out: (l) => out.push(l), err: (l) => err.push(l) });
      const what = `myelin ${p.join(" ")} --help`;
      assert.equal(code, 0, `${what}: ${err.join("\n")}`);
      assert.match(out.join("\n"), /Usage: myelin/, what);
      assert.match(out.join("\n"), /Example/, what);
    }
    // ... and the real thing for a few.
    const w = await world(t);
    const [help, unknown, unknownSub, missing, version] = await Promise.all([
      run(t, w, ["topic", "pub", "-h"], 30000),
      run(t, w, ["tpoic", "list"], 30000),
      run(t, w, ["topic", "ech", "/x"], 30000),
      run(t, w, ["topic", "echo"], 30000),
      run(t, w, ["--version"], 30000),
    ]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Examples:\n  myelin topic pub /);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'tpoic' \(did you mean 'topic'\?\)/);
    assert.equal(unknownSub.code, 2);
    assert.match(unknownSub.stderr, /did you mean 'echo'/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing TOPIC/);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^myelin \d+\.\d+\.\d+/);
  },
);

test("human rendering: bytes as size and hex, long arrays cut, floats as floats", () => {
  const img = sensor_msgs.Image.create({
    width: 2,
    height: 1,
    encoding: "rgb8",
    data: new Uint8Array(1000).fill(7),
  });
  const lines = renderMessage(img, sensor_msgs.Image);
  assert.ok(
    lines.includes("data: <1000 bytes> 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 …"),
    lines.join("\n"),
  );
  assert.ok(lines.includes('  frame_id: ""'));
  const arr = renderMessage({ data: Array.from({ length: 100 }, (_, i) => i) }, undefined, { maxArray: 3 });
  assert.deepEqual(arr, ["data: [0, 1, 2, …]  # 100 items, first 3 shown"]);
  assert.deepEqual(renderMessage(std_msgs.Float64.create({ data: 2 }), std_msgs.Float64), ["data: 2.0"]);
  assert.deepEqual(closeMatches("std_msgs/Strng", ["std_msgs/String", "geometry_msgs/Twist"]), [
    "std_msgs/String",
  ]);
});
