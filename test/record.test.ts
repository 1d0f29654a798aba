/**
 * `myelin record`, `play` and `bag` against a real hub and real processes: a test system recorded and
 * read back with @mcap/core's indexed reader (every message equal to what was published, by sequence
 * number); a recorder killed with kill -9 and its file repaired; a file played into a live subscriber
 * with its timing at --rate 1 and --rate 2; and bad files refused with clear errors.
 */
import assert from "node:assert/strict";
import { watch, existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { createNode, type Node } from "../src/node/index.js";
import { sensor_msgs, std_msgs, type MessageType } from "../src/msgs/index.js";
import { openBag, scanBag } from "../src/record/bag-reader.js";
import { channelEncodingForSchema, channelEncodingOf } from "../src/record/channel-encoding.js";
import { McapFileWriter } from "../src/record/mcap-file-writer.js";
import { runCli, spawnCli, startCliHub, world, type CliProc, type World } from "./cli-world.js";

/** Resolves when the process's stderr matches `re`; rejects on exit or after `timeoutMs`. */
function waitStderr(p: CliProc, re: RegExp, timeoutMs = 10000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!re.test(p.stderr)) return;
      done();
      resolve();
    };
    const onExit = (): void => {
      done();
      reject(new Error(`exited before stderr matched ${re}; stderr:\n${p.stderr}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`stderr did not match ${re} within ${timeoutMs} ms; stderr:\n${p.stderr}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      p.child.stderr!.off("data", check);
      p.child.off("close", onExit);
    };
    p.child.stderr!.on("data", check);
    p.child.on("close", onExit);
    check();
  });
}

/** Messages in the complete chunks of a file that may still be open. */
async function countMessages(path: string): Promise<number> {
  if (!existsSync(path)) return 0;
  let n = 0;
  await scanBag(path, (r) => {
    if (r.type === "Message") n++;
  });
  return n;
}

/** Resolves once the (growing) file holds at least `n` messages in complete chunks; watches the file. */
async function waitForMessages(path: string, n: number, timeoutMs = 15000): Promise<number> {
  const end = Date.now() + timeoutMs;
  const dir = join(path, "..");
  for (;;) {
    const got = await countMessages(path);
    if (got >= n) return got;
    if (Date.now() > end) throw new Error(`${path} holds ${got} of ${n} messages after ${timeoutMs} ms`);
    // Wait for the next write to the directory (a chunk is written at least every second).
    await new Promise<void>((resolve) => {
      const w = watch(dir, () => {
        w.close();
        clearTimeout(t);
        resolve();
      });
      const t = setTimeout(() => {
        w.close();
        resolve();
      }, 2000);
    });
  }
}

/** Plain values (Uint8Array as arrays), for deepEqual. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

async function testNode(t: TestContext, w: World, name: string): Promise<Node> {
  const node = await createNode({ name, runtimeDir: w.dir });
  t.after(() => node.close());
  return node;
}

/** Reads every message of a closed file: topic → (sequence → decoded message), and the channel schemas. */
async function readBack(path: string) {
  const bag = await openBag(path);
  try {
    const r = bag.reader;
    const byTopic = new Map<string, Map<number, unknown>>();
    const schemas = new Map<string, string>();
    for (const ch of r.channelsById.values()) {
      const s = r.schemasById.get(ch.schemaId);
      assert.ok(s !== undefined, `channel ${ch.topic} has a schema`);
      assert.ok(s.data.byteLength > 0, `schema of ${ch.topic} is not empty`);
      schemas.set(ch.topic, `${s.name} ${s.encoding}/${ch.messageEncoding}`);
    }
    for await (const m of r.readMessages({ validateCrcs: true })) {
      const ch = r.channelsById.get(m.channelId)!;
      const s = r.schemasById.get(ch.schemaId)!;
      const enc = channelEncodingForSchema({
        schemaName: s.name,
        schemaEncoding: s.encoding,
        messageEncoding: ch.messageEncoding,
      });
      let msgs = byTopic.get(ch.topic);
      if (msgs === undefined) byTopic.set(ch.topic, (msgs = new Map()));
      assert.ok(!msgs.has(m.sequence), `${ch.topic} #${m.sequence} recorded once`);
      assert.ok(m.publishTime > 0n && m.logTime > 0n, "times are set");
      msgs.set(m.sequence, enc.decode(m.data));
    }
    const meta = new Map<string, Map<string, string>>();
    for await (const md of r.readMetadata()) meta.set(md.name, md.metadata);
    return { byTopic, schemas, meta };
  } finally {
    await bag.close();
  }
}

function image(i: number) {
  return sensor_msgs.Image.create({
    header: { stamp: { sec: 1_700_000_000 + i, nanosec: i }, frame_id: "camera" },
    height: 48,
    width: 64,
    encoding: "rgb8",
    step: 64 * 3,
    data: Uint8Array.from({ length: 64 * 48 * 3 }, (_, k) => (k + i) & 0xff),
  });
}

test(
  "record a test system: every message of every selected topic, decodable and equal to what was published",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-record-");
    await startCliHub(t, w);
    const node = await testNode(t, w, "system");
    const N = 60;
    const made: Record<string, (i: number) => unknown> = {
      "/chatter": (i) => ({ data: `hello ${i} ✓` }),
      "/counter": (i) => ({ data: 2n ** 60n + BigInt(i) }),
      "/camera/image": image,
      "/camera/compressed": (i) =>
        sensor_msgs.CompressedImage.create({
          header: { stamp: { sec: 1_700_000_000, nanosec: i }, frame_id: "camera" },
          format: "jpeg",
          data: Uint8Array.from([0xff, 0xd8, i & 0xff, 0xff, 0xd9]),
        }),
      "/points": (i) => {
        const data = new Uint8Array(12 * 4);
        new Float32Array(data.buffer).fill(i);
        return sensor_msgs.PointCloud2.create({
          header: { frame_id: "lidar", stamp: { sec: 1_700_000_000, nanosec: i } },
          height: 1,
          width: 4,
          fields: ["x", "y", "z"].map((name, k) => ({ name, offset: 4 * k, datatype: 7, count: 1 })),
          point_step: 12,
          row_step: 48,
          data,
          is_dense: true,
        });
      },
      "/debug/noise": (i) => ({ data: `excluded ${i}` }),
      "/_private/state": (i) => ({ data: `hidden ${i}` }),
    };
    const types: Record<string, MessageType<unknown>> = {
      "/chatter": std_msgs.String,
      "/counter": std_msgs.UInt64,
      "/camera/image": sensor_msgs.Image,
      "/camera/compressed": sensor_msgs.CompressedImage,
      "/points": sensor_msgs.PointCloud2,
      "/debug/noise": std_msgs.String,
      "/_private/state": std_msgs.String,
    };
    const pubs = new Map<string, Awaited<ReturnType<Node["createPublisher"]>>>();
    for (const [topic, type] of Object.entries(types))
      pubs.set(topic, await node.createPublisher(topic, type));
    // A latched topic, published before the recorder starts: its history is recorded too.
    const latched = await node.createPublisher("/robot_description", std_msgs.String, {
      qos: { durability: "transient-local", depth: 1 },
    });
    await latched.publish({ data: "<robot name='r2'/>" });

    const file = join(w.dir, "system.mcap");
    const rec = spawnCli(t, w, ["record", "-a", "-x", "^/debug/", "-x", "^/myelin/", "-o", file]);
    for (const topic of [
      "/chatter",
      "/counter",
      "/camera/image",
      "/camera/compressed",
      "/points",
      "/robot_description",
    ]) {
      await waitStderr(rec, new RegExp(`recording ${topic} `));
    }
    for (const topic of ["/chatter", "/counter", "/camera/image", "/camera/compressed", "/points"]) {
      await pubs.get(topic)!.waitForSubscribers(1, 10000);
    }
    const recorded = ["/chatter", "/counter", "/camera/image", "/camera/compressed", "/points"];
    for (let i = 0; i < N; i++) {
      for (const [topic, pub] of pubs) await pub.publish(made[topic]!(i));
    }
    await waitForMessages(file, recorded.length * N + 1);
    rec.child.kill("SIGTERM");
    assert.equal(await rec.exit(20000), 0, rec.stderr);
    assert.match(rec.stderr, new RegExp(`recorded ${recorded.length * N + 1} messages on 6 topics`));

    const { byTopic, schemas, meta } = await readBack(file);
    assert.deepEqual(
      [...byTopic.keys()].sort(),
      [...recorded, "/robot_description"].sort(),
      "hidden and excluded topics are not recorded",
    );
    assert.equal(schemas.get("/camera/image"), "sensor_msgs/msg/Image ros2msg/cdr");
    assert.equal(schemas.get("/camera/compressed"), "sensor_msgs/msg/CompressedImage ros2msg/cdr");
    assert.equal(schemas.get("/points"), "sensor_msgs/msg/PointCloud2 ros2msg/cdr");
    assert.equal(schemas.get("/chatter"), "std_msgs/String jsonschema/json");
    assert.equal(schemas.get("/counter"), "std_msgs/UInt64 jsonschema/json");
    for (const topic of recorded) {
      const got = byTopic.get(topic)!;
      assert.equal(got.size, N, `${topic}: ${N} messages`);
      for (let i = 0; i < N; i++) {
        const expected = made[topic]!(i);
        const actual = got.get(i + 1);
        // A header stamped by the publisher (zero stamp) is compared without it.
        assert.deepEqual(plain(actual), plain(expected), `${topic} #${i + 1}`);
      }
    }
    assert.deepEqual(plain(byTopic.get("/robot_description")!.get(1)), { data: "<robot name='r2'/>" });
    const rm = meta.get("myelin.recording");
    assert.ok(rm !== undefined, "the recording's metadata is in the file");
    const dropped = JSON.parse(rm.get("dropped")!) as Record<string, number>;
    const lost = JSON.parse(rm.get("lost")!) as Record<string, number>;
    for (const topic of recorded)
      assert.equal((dropped[topic] ?? 0) + (lost[topic] ?? 0), 0, `${topic}: no drops`);

    const info = await runCli(t, w, ["bag", "info", file, "--json"]);
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as {
      indexed: boolean;
      messages: number;
      topics: { topic: string; messages: number }[];
    };
    assert.equal(parsed.indexed, true);
    assert.equal(parsed.messages, recorded.length * N + 1);
    assert.equal(parsed.topics.find((x) => x.topic === "/points")?.messages, N);
    const human = await runCli(t, w, ["bag", "info", file]);
    assert.match(human.stdout, /Compression: +zstd/);
    assert.match(human.stdout, /\/camera\/image +sensor_msgs\/msg\/Image +ros2msg\/cdr +60/);
  },
);

test(
  "kill -9 of the recorder mid-write: the file holds every complete chunk, and bag repair makes it valid",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-record-");
    await startCliHub(t, w);
    const node = await testNode(t, w, "talker");
    const pub = await node.createPublisher("/chatter", std_msgs.String);
    const file = join(w.dir, "cut.mcap");
    const rec = spawnCli(t, w, ["record", "/chatter", "-o", file]);
    await waitStderr(rec, /recording \/chatter /);
    await pub.waitForSubscribers(1, 10000);
    let published = 0;
    let stop = false;
    const publishing = (async () => {
      while (!stop) {
        published++;
        await pub.publish({ data: `message ${published}` });
        // About 5000 messages/s: a steady stream the recorder keeps up with on a busy machine.
        if (published % 10 === 0) await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const seen = await waitForMessages(file, 200);
    rec.child.kill("SIGKILL");
    await rec.exit();
    stop = true;
    await publishing;

    // Unclosed: the indexed reader refuses with a pointer to repair; bag info scans it and says so.
    await assert.rejects(
      openBag(file),
      (err: Error & { code?: string }) => err.code === "ERR_DECODE" && /bag repair/.test(err.message),
    );
    const info = await runCli(t, w, ["bag", "info", file], 30000);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /NOT CLOSED/);

    const repaired = await runCli(t, w, ["bag", "repair", file], 30000);
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.match(repaired.stderr, /recovered \d+ messages/);
    const out = join(w.dir, "cut-repaired.mcap");
    const { byTopic, meta } = await readBack(out);
    const got = byTopic.get("/chatter")!;
    assert.ok(
      got.size >= seen,
      `the repaired file holds at least the ${seen} messages seen before the kill (${got.size})`,
    );
    const seqs = [...got.keys()].sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      "a gapless prefix from #1",
    );
    for (const [seq, msg] of got) assert.deepEqual(msg, { data: `message ${seq}` });
    assert.ok(meta.has("myelin.repair"));
  },
);

/** Writes a file of `n` strings on `topic`, `gapMs` apart by log time. */
async function stringsFile(path: string, topic: string, n: number, gapMs: number): Promise<void> {
  const wr = await McapFileWriter.create(path);
  const enc = channelEncodingOf(std_msgs.String);
  const ch = wr.addChannel(
    wr.addSchema(enc.schemaName, enc.schemaEncoding, enc.schemaData),
    topic,
    enc.messageEncoding,
  );
  const t0 = 1_700_000_000_000_000_000n;
  for (let i = 0; i < n; i++) {
    const at = t0 + BigInt(i * gapMs) * 1_000_000n;
    wr.addMessage(ch, i + 1, at, at, enc.encode({ data: `m${i}` }));
  }
  await wr.close();
}

test(
  "play into a live system: exactly the recorded messages, in order, with their timing at --rate 1 and 2",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-play-");
    await startCliHub(t, w);
    const N = 30;
    const GAP = 40;
    const file = join(w.dir, "strings.mcap");
    await stringsFile(file, "/replay/in", N, GAP);
    const node = await testNode(t, w, "listener");
    const spans: Record<string, number> = {};
    for (const rate of ["1", "2"]) {
      const got: { data: string; at: number }[] = [];
      const sub = await node.createSubscription("/replay/out", std_msgs.String, (m) => {
        got.push({ data: m.data, at: performance.now() });
      });
      const play = await runCli(
        t,
        w,
        ["play", file, "--rate", rate, "--remap", "/replay/in:=/replay/out"],
        30000,
      );
      sub.close();
      assert.equal(play.code, 0, play.stderr);
      assert.match(play.stderr, new RegExp(`published ${N} messages`));
      assert.deepEqual(
        got.map((g) => g.data),
        Array.from({ length: N }, (_, i) => `m${i}`),
        `rate ${rate}: every message once, in order`,
      );
      const span = got.at(-1)!.at - got[0]!.at;
      const ideal = ((N - 1) * GAP) / Number(rate);
      // Never early (a little slack for the clocks), late only within a generous bound on a busy machine.
      assert.ok(span >= ideal * 0.9, `rate ${rate}: ${span.toFixed(0)} ms for an ideal ${ideal} ms`);
      assert.ok(span <= ideal * 1.5 + 300, `rate ${rate}: ${span.toFixed(0)} ms for an ideal ${ideal} ms`);
      spans[rate] = span;
    }
    const ratio = spans["1"]! / spans["2"]!;
    assert.ok(ratio > 1.4 && ratio < 2.8, `--rate 2 plays about twice as fast (ratio ${ratio.toFixed(2)})`);
  },
);

test("bad files get clear errors, never a crash", { timeout: 60000 }, async (t) => {
  const w = await world(t, "myelin-bag-");
  const notMcap = join(w.dir, "notes.txt");
  await writeFile(notMcap, "just some text, not a recording\n");
  const empty = join(w.dir, "empty.mcap");
  await writeFile(empty, "");
  const good = join(w.dir, "good.mcap");
  await stringsFile(good, "/x", 500, 1);
  const { readFile } = await import("node:fs/promises");
  const bytes = await readFile(good);
  const truncated = join(w.dir, "truncated.mcap");
  await writeFile(truncated, bytes.subarray(0, 40));
  const corrupt = join(w.dir, "corrupt.mcap");
  const flipped = Buffer.from(bytes);
  for (let i = 200; i < 260; i++) flipped[i] = flipped[i]! ^ 0x5a;
  await writeFile(corrupt, flipped);

  for (const [args, re] of [
    [["bag", "info", notMcap], /not an MCAP file.*ERR_DECODE/s],
    [["bag", "info", empty], /is empty: not an MCAP file/],
    [["bag", "info", join(w.dir, "missing.mcap")], /cannot open .*missing\.mcap: no such file/],
    [["play", truncated], /no valid index.*bag repair/s],
    [["play", notMcap], /not an MCAP file/],
    [["bag", "repair", notMcap], /not an MCAP file/],
  ] as const) {
    const r = await runCli(t, w, [...args]);
    assert.equal(r.code, 1, `${args.join(" ")}: exit 1\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(" "));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, `${args.join(" ")}: no stack trace`);
  }
  assert.ok(!existsSync(join(w.dir, "notes-repaired.txt")), "a failed repair leaves no output");

  // A damaged chunk: info reports where reading stopped, repair keeps what is intact.
  const info = await runCli(t, w, ["bag", "info", corrupt]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /State: +DAMAGED: .*bag repair/);
  const repaired = await runCli(t, w, ["bag", "repair", corrupt, "-o", join(w.dir, "fixed.mcap")]);
  assert.equal(repaired.code, 0, repaired.stderr);
  const again = await runCli(t, w, ["bag", "info", join(w.dir, "fixed.mcap"), "--json"]);
  assert.equal((JSON.parse(again.stdout) as { indexed: boolean }).indexed, true);
});

test(
  "a durable topic recorded from a sequence number: its history, then what is stored while recording",
  { timeout: 90000 },
  async (t) => {
    const w = await world(t, "myelin-record-");
    await startCliHub(t, w);
    const node = await testNode(t, w, "orders");
    const first = await node.createPublisher("/orders", std_msgs.String, {
      qos: { durability: "persistent" },
    });
    for (let i = 1; i <= 20; i++) await first.publish({ data: `order ${i}` });
    first.close(); // the topic now lives only in the store: no node declares it

    const file = join(w.dir, "orders.mcap");
    const rec = spawnCli(t, w, ["record", "/orders", "--from", "5", "-o", file]);
    await waitStderr(rec, /recording \/orders \(std_msgs\/String, from the store\)/);
    const second = await node.createPublisher("/orders", std_msgs.String, {
      qos: { durability: "persistent" },
    });
    for (let i = 21; i <= 25; i++) await second.publish({ data: `order ${i}` });
    await waitForMessages(file, 21);
    rec.child.kill("SIGTERM");
    assert.equal(await rec.exit(20000), 0, rec.stderr);

    const { byTopic } = await readBack(file);
    const got = byTopic.get("/orders")!;
    assert.deepEqual(
      [...got.keys()].sort((a, b) => a - b),
      Array.from({ length: 21 }, (_, i) => i + 5),
      "store sequence numbers 5..25",
    );
    for (const [seq, msg] of got) assert.deepEqual(msg, { data: `order ${seq}` });
  },
);
