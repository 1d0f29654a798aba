/**
 * Publishing without a promise per message: `tryPublish()` (false instead of waiting, nothing
 * sent), `ready()`, and `publishBatch()` (one promise for many), against a slow reliable
 * subscriber in another process, and their errors.
 */
import { createHash } from "node:crypto";
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { MyelinError } from "../src/errors.js";
import { defineMessage, std_msgs, t } from "../src/msgs/index.js";
import { spawnFixture, tempRuntime, type Line } from "./helpers.js";

/** The fixture's blob type (same name and schema). */
const Blob = defineMessage("myelin_test/Blob", { n: t.u32(), data: t.bytes() });
const isMsg = (l: Line): boolean => l.event === "msg";
const payload = new Uint8Array(32);

test(
  "tryPublish pushes back with false against a slow reliable subscriber, loses nothing",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const maxPending = 16;
    await using node = await createNode({ name: "fastpub", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/nowait", Blob, { maxPending });
    const count = 400;
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/nowait", type: "blob", delayMs: 1, count, printEach: true },
      { MYELIN_RUNTIME_DIR: rt.dir },
    );
    await pub.waitForSubscribers(1, 15000);
    let refused = 0;
    for (let n = 1; n <= count;) {
      if (pub.tryPublish({ n, data: payload })) n++;
      else {
        refused++;
        await pub.ready();
      }
    }
    assert.ok(refused > 0, "a subscriber reading one message per ms must push back");
    assert.equal(pub.stats().published, count, "a refused tryPublish sends nothing");
    await sub.waitFor((l) => l.event === "done", 30000, "the subscriber to read every message");
    assert.deepEqual(
      sub.lines.filter(isMsg).map((l) => l["data"]),
      Array.from({ length: count }, (_, i) => i + 1),
    );
  },
);

test("publishBatch sends every message in order with one promise", { timeout: 40000 }, async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "batchpub", runtimeDir: rt.dir });
  const pub = await node.createPublisher("/batch", Blob, { maxPending: 16 });
  const count = 300;
  await using sub = spawnFixture(
    "node-proc",
    { role: "sub", topic: "/batch", type: "blob", delayMs: 1, count, printEach: true },
    { MYELIN_RUNTIME_DIR: rt.dir },
  );
  await pub.waitForSubscribers(1, 15000);
  // Far more than maxPending in one call: the batch waits for the subscriber inside.
  await pub.publishBatch(Array.from({ length: count }, (_, i) => ({ n: i + 1, data: payload })));
  assert.equal(pub.stats().published, count);
  await sub.waitFor((l) => l.event === "done", 30000, "the subscriber to read every message");
  assert.deepEqual(
    sub.lines.filter(isMsg).map((l) => l["data"]),
    Array.from({ length: count }, (_, i) => i + 1),
  );
});

test("tryPublish and publishBatch refuse bad input and closed publishers clearly", async () => {
  using rt = tempRuntime();
  await using node = await createNode({ name: "errpub", runtimeDir: rt.dir });
  const pub = await node.createPublisher("/errs", Blob);
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      return (e as MyelinError).code;
    }
    return undefined;
  };
  assert.equal(
    code(() => pub.tryPublish({ n: -1, data: payload })),
    "ERR_VALIDATION",
  );
  // One bad message: the batch is refused whole, naming it; nothing is sent.
  const batch = [
    { n: 1, data: payload },
    { n: 2, data: payload },
    { n: "3" as unknown as number, data: payload },
  ];
  await assert.rejects(pub.publishBatch(batch), (e: MyelinError) => {
    assert.equal(e.code, "ERR_VALIDATION");
    assert.match(e.message, /message 2 of 3; none was sent/);
    return true;
  });
  assert.equal(pub.stats().published, 0);
  await assert.rejects(
    pub.publishBatch({ n: 1, data: payload } as unknown as []),
    (e: MyelinError) => e.code === "ERR_INVALID_ARGUMENT" && /takes an array/.test(e.message),
  );
  await assert.doesNotReject(pub.ready());
  assert.equal(pub.tryPublish({ n: 1, data: payload }), true);
  const persistent = await node.createPublisher("/errs/kept", Blob, { qos: { durability: "persistent" } });
  assert.equal(
    code(() => persistent.tryPublish({ n: 1, data: payload })),
    "ERR_INVALID_ARGUMENT",
  );
  pub.close();
  assert.equal(
    code(() => pub.tryPublish({ n: 1, data: payload })),
    "ERR_CLOSED",
  );
  await assert.rejects(pub.publishBatch([]), (e: MyelinError) => e.code === "ERR_CLOSED");
});

test(
  "messages written straight into the batch frame arrive whole, whatever their size, in order",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    await using node = await createNode({ name: "sizespub", runtimeDir: rt.dir });
    const pub = await node.createPublisher("/sizes", std_msgs.String);
    // From empty to past the batch frame's 64 KiB (the frame grows under the writer), in one turn.
    const sizes = [0, 1, 7, 64, 300, 4096, 70_000, 5, 65_000, 2];
    const sent = Array.from({ length: 60 }, (_, i) => `${i}:${"x".repeat(sizes[i % sizes.length]!)}`);
    await using sub = spawnFixture(
      "node-proc",
      { role: "sub", topic: "/sizes", type: "string", count: sent.length, printEach: true },
      { MYELIN_RUNTIME_DIR: rt.dir },
    );
    await pub.waitForSubscribers(1, 15000);
    for (const data of sent) assert.ok(pub.tryPublish({ data }), "a fresh subscriber has credit");
    await sub.waitFor((l) => l.event === "done", 30000, "the subscriber to read every message");
    const got = sub.lines.filter(isMsg);
    // The fixture prints a long string as its length and SHA-256.
    const printed = (s: string): string =>
      s.length <= 200 ? s : `${s.length}:${createHash("sha256").update(s).digest("hex")}`;
    assert.deepEqual(
      got.map((l) => l["data"]),
      sent.map(printed),
    );
    assert.deepEqual(
      got.map((l) => l["seq"]),
      sent.map((_, i) => i + 1),
    );
  },
);
