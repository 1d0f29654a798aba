/**
 * Raw subscriptions (`raw: true`): messages handed over still encoded, with their header fields,
 * neither decoded nor validated; and the recorder built on them, which decodes and validates on its
 * recording thread (counting invalid payloads per topic) with a type the thread has to rebuild.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { decodeFrames } from "../src/codec/index.js";
import { defineMessage, registerType, std_msgs, t } from "../src/msgs/index.js";
import { createNode, type MessageInfo, type RawMessage } from "../src/node/index.js";
import { openBag } from "../src/record/bag-reader.js";
import { channelEncodingForSchema } from "../src/record/channel-encoding.js";
import { Recorder } from "../src/record/recorder.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";

/** The fixture's test type (test/fixtures/node-proc.ts), registered here only. */
const Blob = defineMessage("myelin_test/Blob", { n: t.u32(), data: t.bytes() });
registerType(Blob);

test(
  "raw subscription across processes: the encoded frames with seq, publish time and publisher, not validated",
  { timeout: 60000 },
  async () => {
    using rt = tempRuntime();
    await using _hub = await Hub.start({ runtimeDir: rt.dir });
    const env = { MYELIN_RUNTIME_DIR: rt.dir };
    await using node = await createNode({ name: "raw-reader", runtimeDir: rt.dir });
    const got = new Map<string, { msg: RawMessage; info: MessageInfo }[]>();
    const raw = async (topic: string): Promise<void> => {
      got.set(topic, []);
      await node.createSubscription(topic, Blob, (msg, info) => void got.get(topic)!.push({ msg, info }), {
        raw: true,
      });
    };
    await raw("/raw/small");
    await raw("/raw/large");
    await raw("/raw/bad");
    // A decoding subscription on the bad topic next to the raw one: it rejects what the raw one gets.
    const decoded: unknown[] = [];
    const checked = await node.createSubscription("/raw/bad", Blob, (m) => void decoded.push(m));
    const invalid: Error[] = [];
    checked.on("invalid", (e) => invalid.push(e));

    const pubs = [
      spawnFixture(
        "node-proc",
        { role: "pub", topic: "/raw/small", type: "blob", payloadBytes: 32, count: 20, waitSubscribers: 1 },
        env,
      ),
      spawnFixture(
        "node-proc",
        {
          role: "pub",
          topic: "/raw/large",
          type: "blob",
          payloadBytes: 64 * 1024,
          count: 5,
          waitSubscribers: 1,
        },
        env,
      ),
      spawnFixture(
        "node-proc",
        { role: "pub", topic: "/raw/bad", type: "badblob", payloadBytes: 8, count: 3, waitSubscribers: 2 },
        env,
      ),
    ];
    try {
      await until(
        () =>
          got.get("/raw/small")!.length === 20 &&
          got.get("/raw/large")!.length === 5 &&
          got.get("/raw/bad")!.length === 3 &&
          invalid.length === 3,
        30000,
        "every message on the raw subscriptions",
      );
      for (const [topic, size, frames] of [
        ["/raw/small", 32, 1],
        ["/raw/large", 64 * 1024, 2],
      ] as const) {
        const list = got.get(topic)!;
        list.forEach(({ msg, info }, i) => {
          assert.equal(info.seq, i + 1, `${topic}: seq`);
          assert.match(info.publisher, /^pub#\d+$/);
          assert.ok(info.sourceTime.sec > 1_700_000_000, `${topic}: publish time`);
          assert.equal(msg.frames.length, frames, `${topic}: frames`);
          assert.equal(
            msg.bytes,
            msg.frames.reduce((n, f) => n + f.byteLength, 0),
          );
          const value = decodeFrames(msg.frames) as { n: number; data: Uint8Array };
          assert.ok(Blob.validate(value).ok);
          assert.equal(value.n, i + 1);
          assert.equal(value.data.byteLength, size);
        });
      }
      // Not validated: the raw subscription gets what the decoding one refuses.
      const bad = got.get("/raw/bad")!.map(({ msg }) => decodeFrames(msg.frames) as { n: unknown });
      assert.deepEqual(
        bad.map((b) => b.n),
        ["#1", "#2", "#3"],
      );
      assert.equal(decoded.length, 0);
      assert.equal(checked.stats().invalid, 3);
    } finally {
      for (const p of pubs) await p.exit().catch(() => undefined);
    }
  },
);

test("raw subscription to a publisher in the same process: the message encoded for it", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "local", runtimeDir: rt.dir });
  const got: { msg: RawMessage; info: MessageInfo }[] = [];
  await node.createSubscription(
    "/local/chatter",
    std_msgs.String,
    (msg, info) => void got.push({ msg, info }),
    {
      raw: true,
    },
  );
  const queue = await node.createSubscription("/local/chatter", std_msgs.String, undefined, { raw: true });
  const pub = await node.createPublisher("/local/chatter", std_msgs.String);
  for (let i = 1; i <= 3; i++) await pub.publish({ data: `hello ${i}` });
  assert.deepEqual(
    got.map(({ msg, info }) => [info.seq, decodeFrames(msg.frames)]),
    [1, 2, 3].map((i) => [i, { data: `hello ${i}` }]),
  );
  const it = queue[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.done, false);
  assert.deepEqual(decodeFrames(first.value.msg.frames), { data: "hello 1" });
  queue.close();
});

for (const writerThread of [true, false]) {
  test(
    `recorder (${writerThread ? "recording thread" : "inline"}): invalid payloads counted per topic, the rest recorded and equal`,
    { timeout: 60000 },
    async () => {
      using rt = tempRuntime();
      await using _hub = await Hub.start({ runtimeDir: rt.dir });
      const env = { MYELIN_RUNTIME_DIR: rt.dir };
      await using node = await createNode({ name: "recorder", runtimeDir: rt.dir });
      const file = join(rt.dir, "raw.mcap");
      const rec = new Recorder(node, { output: file, regex: [/^\/rec\//], writerThread, chunkMs: 50 });
      const recording = new Set<string>();
      rec.on("topic", (s) => recording.add(s.topic));
      await rec.start();
      const pubs = [
        spawnFixture(
          "node-proc",
          {
            role: "pub",
            topic: "/rec/blob",
            type: "blob",
            payloadBytes: 40 * 1024,
            count: 10,
            waitSubscribers: 1,
          },
          env,
        ),
        spawnFixture(
          "node-proc",
          { role: "pub", topic: "/rec/bad", type: "badblob", payloadBytes: 8, count: 3, waitSubscribers: 1 },
          env,
        ),
      ];
      try {
        const counted = (topic: string): number => {
          const s = rec.stats().topics.find((x) => x.topic === topic);
          return s === undefined ? 0 : s.messages + s.invalid;
        };
        await until(() => counted("/rec/blob") === 10 && counted("/rec/bad") === 3, 30000, "13 messages");
        const s = await rec.stop();
        const blob = s.topics.find((x) => x.topic === "/rec/blob")!;
        const bad = s.topics.find((x) => x.topic === "/rec/bad")!;
        assert.deepEqual([blob.messages, blob.invalid, blob.dropped], [10, 0, 0]);
        assert.deepEqual([bad.messages, bad.invalid, bad.dropped], [0, 3, 0]);
        assert.deepEqual(s.files, [file]);

        const bag = await openBag(file);
        try {
          const r = bag.reader;
          const seqs: number[] = [];
          for await (const m of r.readMessages({ validateCrcs: true })) {
            const ch = r.channelsById.get(m.channelId)!;
            const sc = r.schemasById.get(ch.schemaId)!;
            assert.equal(ch.topic, "/rec/blob");
            const enc = channelEncodingForSchema({
              schemaName: sc.name,
              schemaEncoding: sc.encoding,
              messageEncoding: ch.messageEncoding,
            });
            const v = enc.decode(m.data) as { n: number; data: Uint8Array };
            assert.equal(v.n, m.sequence);
            assert.deepEqual(v.data, new Uint8Array(40 * 1024));
            seqs.push(m.sequence);
          }
          assert.deepEqual(
            seqs,
            Array.from({ length: 10 }, (_, i) => i + 1),
          );
          let meta: Map<string, string> | undefined;
          for await (const md of r.readMetadata()) if (md.name === "myelin.recording") meta = md.metadata;
          assert.deepEqual(JSON.parse(meta!.get("invalid")!), { "/rec/bad": 3, "/rec/blob": 0 });
        } finally {
          await bag.close();
        }
      } finally {
        await rec.stop().catch(() => undefined);
        for (const p of pubs) await p.exit().catch(() => undefined);
      }
    },
  );
}
