/**
 * What a new user meets in the first hour: a message's header stamp is filled when left out or
 * zero; a type mismatch names the CLI, not its hidden node; a hub that cannot listen names the
 * address; `myelin down` with nothing running is not an error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { sensor_msgs, std_msgs } from "../src/msgs/index.js";
import { MyelinError } from "../src/errors.js";
import { tempRuntime, until } from "./helpers.js";

const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

test(
  "a header left out or with a zero stamp gets the publish time; a given stamp is kept",
  { timeout: 20000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "stamper", runtimeDir: rt.dir });
    const got: { sec: number; nanosec: number; frame: string }[] = [];
    await node.createSubscription("/temp", sensor_msgs.Temperature, (m) => {
      got.push({ sec: m.header.stamp.sec, nanosec: m.header.stamp.nanosec, frame: m.header.frame_id });
    });
    const pub = await node.createPublisher("/temp", sensor_msgs.Temperature);
    const before = Math.floor(Date.now() / 1000);
    await pub.publish({ temperature: 21.5, variance: 0 });
    await pub.publish({ header: { frame_id: "probe" }, temperature: 21.6, variance: 0 });
    const given = {
      header: { stamp: { sec: 1000, nanosec: 5 }, frame_id: "x" },
      temperature: 1,
      variance: 0,
    };
    await pub.publish(given);
    await until(() => got.length === 3, 5000, "three messages");
    assert.ok(got[0]!.sec >= before && got[0]!.sec <= before + 5, JSON.stringify(got[0]));
    assert.equal(got[1]!.frame, "probe");
    assert.ok(got[1]!.sec >= before);
    assert.deepEqual(got[2], { sec: 1000, nanosec: 5, frame: "x" });
    assert.deepEqual(given.header.stamp, { sec: 1000, nanosec: 5 }, "the caller's object is not changed");
  },
);

test(
  "a type mismatch caused by the CLI says 'the CLI', not the name of its hidden node",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "talker", runtimeDir: rt.dir });
    await node.createPublisher("/chatter", std_msgs.String);
    // Not spawnSync: the hub runs in this process and must keep answering.
    const r = await new Promise<{ status: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [CLI, "topic", "pub", "/chatter", "std_msgs/Int32", "{data: 1}"],
        { env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir }, timeout: 20000 },
        (err, _out, stderr) => resolve({ status: (err as { code?: number } | null)?.code ?? 0, stderr }),
      ),
    );
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /topic \/chatter has type std_msgs\/String \(from node talker\); the CLI \(myelin topic pub, pid \d+\) used std_msgs\/Int32/,
    );
    assert.doesNotMatch(r.stderr, /_myelin_/);
  },
);

test("a hub that cannot listen names the address and what to do", { timeout: 20000 }, async () => {
  using rt = tempRuntime();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
  const port = (blocker.address() as { port: number }).port;
  try {
    await assert.rejects(
      Hub.start({ runtimeDir: rt.dir, listen: [`tcp://127.0.0.1:${port}`], insecure: true }),
      (e: unknown) => {
        assert.ok(e instanceof MyelinError);
        assert.match(e.message, new RegExp(`cannot listen on tcp://127\\.0\\.0\\.1:${port}`));
        assert.match(e.message, /another process holds that address/);
        return true;
      },
    );
  } finally {
    blocker.close();
  }
});

test("`myelin down` with nothing running says so and exits 0", { timeout: 20000 }, () => {
  using rt = tempRuntime();
  const r = spawnSync(process.execPath, [CLI, "down"], {
    env: { ...process.env, MYELIN_RUNTIME_DIR: rt.dir },
    encoding: "utf8",
    timeout: 15000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /nothing to stop: no hub runs in/);
});
