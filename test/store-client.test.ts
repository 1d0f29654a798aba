/** StoreClient: batching of appends, the errors without a store, close(), and the real store behind it. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import {
  createNode,
  graphServes,
  serveProtocol,
  STORE_PROTOCOL,
  StoreClient,
  type StoreRequest,
  type StoreResponse,
} from "../src/node/index.js";
import { forEachStoredRecord } from "../src/node/stored-records.js";
import { defineMessage, defineService, myelin_msgs, t } from "../src/msgs/index.js";
import { StoreService } from "../src/store/index.js";
import { tempRuntime } from "./helpers.js";

/** Resolves once `check` holds, polling every 10 ms (the test's own timeout bounds it). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 10));
}

/** The payloads of an append request: `packed` (u32 LE length, bytes, ...) or the array. */
function payloadsOf(r: StoreRequest<"append">): Uint8Array[] {
  if (r.packed === undefined) return r.payloads;
  assert.equal(r.payloads.length, 0, "payloads go in packed or in the array, not both");
  const out: Uint8Array[] = [];
  const b = Buffer.from(r.packed.buffer, r.packed.byteOffset, r.packed.byteLength);
  for (let at = 0; at < b.length;) {
    const n = b.readUInt32LE(at);
    out.push(b.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

test("appends of one event-loop turn go in one request per topic, with message ids lined up", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using storeNode = await createNode({ name: "_store", runtimeDir: rt.dir });
  // A store that records each append request and numbers what it is given.
  const appends: StoreRequest<"append">[] = [];
  let seq = 0;
  const unused = (): never => {
    throw new Error("not used by this test");
  };
  await serveProtocol(storeNode, STORE_PROTOCOL, {
    append: (req) => {
      appends.push(req);
      const first = seq + 1;
      const n = payloadsOf(req).length;
      seq += n;
      return { first_seq: first, count: n, seqs: [], duplicates: 0 };
    },
    fetch: unused,
    ack: unused,
    info: unused,
    read: unused,
    configure: unused,
  });
  await using node = await createNode({ name: "app", runtimeDir: rt.dir });
  await node.waitForGraph((g) => graphServes(g, STORE_PROTOCOL.append), 5000);
  const store = new StoreClient(node, { breaker: false });

  const p = new Uint8Array([1]);
  await Promise.all([
    store.append("/a", "std_msgs/String", p),
    store.append("/a", "std_msgs/String", new Uint8Array([2, 3]), "id-2"),
    store.append("/b", "std_msgs/Int32", p),
    store.append("/a", "std_msgs/String", new Uint8Array(0)),
  ]);
  assert.deepEqual(
    appends.map((r) => [r.topic, r.type, payloadsOf(r).map((x) => [...x]), r.msg_ids]),
    [
      ["/a", "std_msgs/String", [[1], [2, 3], []], ["", "id-2", ""]],
      ["/b", "std_msgs/Int32", [[1]], []],
    ],
  );
  // The payloads of a request travel packed in one buffer.
  assert.ok(appends.every((r) => r.packed !== undefined && r.payloads.length === 0));

  // The next turn makes a new request.
  await store.append("/a", "std_msgs/String", p);
  assert.equal(appends.length, 3);

  // Closed: new appends and calls are refused; nothing is sent.
  store.close();
  await assert.rejects(store.append("/a", "std_msgs/String", p), { code: "ERR_CLOSED" });
  await assert.rejects(store.info({ topic: "/a" }), { code: "ERR_CLOSED" });
  assert.equal(appends.length, 3);
});

test("without a store, an append fails with ERR_NO_SERVER saying how to start one", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using node = await createNode({ name: "app", runtimeDir: rt.dir });
  const store = new StoreClient(node);
  await assert.rejects(store.append("/orders", "std_msgs/String", new Uint8Array([1])), {
    code: "ERR_NO_SERVER",
    message: /persistent topic \/orders: no store runs; start the hub with a data directory/,
  });
  assert.equal(await store.waitForServer("info", 50), false);
  assert.throws(() => new StoreClient(node, { retries: -1 }), { code: "ERR_INVALID_ARGUMENT" });
});

test("the real store answers the typed client: append, info, read, configure", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const service = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
  try {
    await using node = await createNode({ name: "app", runtimeDir: rt.dir });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    assert.equal(await store.waitForServer("append", 5000), true);
    const payloads = [new Uint8Array([0xa1, 0x61]), new Uint8Array([0xa1, 0x62])]; // "a", "b"
    await Promise.all(payloads.map((pl) => store.append("/log", "std_msgs/String", pl)));
    const info = await store.info({ topic: "/log" });
    assert.deepEqual(
      [info.exists, info.type, info.first_seq, info.last_seq],
      [true, "std_msgs/String", 1, 2],
    );
    const r = await store.read({ topic: "/log", from_seq: 2, from_time_ms: 0, max: 10 });
    assert.deepEqual(r.seqs, [2]);
    assert.deepEqual([...r.payloads[0]!], [0xa1, 0x62]);
    const c = await store.configure({
      topic: "/log",
      type: "",
      config_json: JSON.stringify({ retention: { maxMessages: 5 } }),
      rule: false,
    });
    assert.equal(
      (JSON.parse(c.config_json) as { retention: { maxMessages: number } }).retention.maxMessages,
      5,
    );
  } finally {
    await service.close();
  }
});

test("appends sent one after another are stored in that order, also when the first message id of a topic is written", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const service = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
  try {
    await using node = await createNode({ name: "app", runtimeDir: rt.dir });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    assert.equal(await store.waitForServer("append", 5000), true);
    const append = (topic: string, n: number, id?: string): Promise<unknown> =>
      store.append(topic, "std_msgs/UInt8", Uint8Array.of(n), id);
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    // Each append in its own event-loop turn is its own request, sent without waiting for the
    // previous one: the first one with an id makes the store record that the topic uses ids.
    for (const topic of ["/ordered/a", "/ordered/b", "/ordered/c"]) {
      const sent: Promise<unknown>[] = [];
      sent.push(append(topic, 1, "id-1"));
      await turn();
      sent.push(append(topic, 2));
      await turn();
      sent.push(append(topic, 3, "id-3"));
      await turn();
      sent.push(append(topic, 4));
      await Promise.all(sent);
      const r = await store.read({ topic, from_seq: 1, from_time_ms: 0, max: 10 });
      assert.deepEqual(
        r.payloads.map((p) => p[0]),
        [1, 2, 3, 4],
        `${topic}: stored in the order sent`,
      );
    }
  } finally {
    await service.close();
  }
});

test("a client's fetches are credit grants answered in order; only the last one waits; acks as runs", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const service = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
  try {
    await using node = await createNode({ name: "app", runtimeDir: rt.dir });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    assert.equal(await store.waitForServer("append", 5000), true);
    const topic = "/grants";
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.append(topic, "std_msgs/UInt8", Uint8Array.of(i))),
    );
    const fetch = (max: number, waitMs: number): Promise<StoreResponse<"fetch">> =>
      store.fetch(
        {
          topic,
          type: "std_msgs/UInt8",
          consumer: "c",
          client: "one",
          max,
          wait_ms: waitMs,
          start_at: "first",
          ack_timeout_ms: 60000,
          max_deliver: 0,
          max_in_flight: 100,
        },
        { timeoutMs: 10000 },
      );
    // Three grants at once: answered in the order sent, each with the next messages.
    const answers = await Promise.all([fetch(4, 1000), fetch(4, 1000), fetch(4, 1000)]);
    assert.deepEqual(
      answers.map((a) => a.seqs),
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10],
      ],
    );
    // Nothing left: with a later grant queued, the first answers at once; the last one waits and
    // gets the message published while it waits.
    const t0 = Date.now();
    const early = fetch(4, 5000);
    const late = fetch(4, 5000);
    assert.deepEqual((await early).seqs, []);
    assert.ok(Date.now() - t0 < 2500, `the earlier grant answered after ${Date.now() - t0} ms`);
    await store.append(topic, "std_msgs/UInt8", Uint8Array.of(10));
    assert.deepEqual((await late).seqs, [11]);

    // Acks as runs [start, count]: 1-5 and 7-11 (6 stays pending).
    const ack = (runs: number[]): Promise<StoreResponse<"ack">> =>
      store.ack({ topic, consumer: "c", acks: [], ack_runs: runs, nacks: [], nack_delay_ms: 0 });
    assert.equal((await ack([1, 5, 7, 5])).acked, 10);
    assert.equal((await ack([1, 5])).acked, 0, "acked before: nothing changes");
    const info = await store.info({ topic });
    assert.deepEqual([info.consumers, info.pending, info.lags], [["c"], [1], [1]]);
    for (const [runs, why] of [
      [[6], /\[start, count\] pairs/],
      [[0, 1], /run \[0, 1\]/],
      [[6, 0], /run \[6, 0\]/],
      [[6, 2_000_000], /over 1000000/],
    ] as const) {
      await assert.rejects(ack([...runs]), { code: "ERR_INVALID_ARGUMENT", message: why });
    }
    assert.deepEqual((await store.info({ topic })).pending, [1], "a refused request changes nothing");
  } finally {
    await service.close();
  }
});

test("appends travel packed and fetches raw: the log's records as stored; bad packed bytes are refused", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  const service = await StoreService.start({ dataDir: join(rt.dir, "data"), runtimeDir: rt.dir });
  try {
    await using node = await createNode({ name: "app", runtimeDir: rt.dir });
    const store = new StoreClient(node, { timeoutMs: 10000 });
    assert.equal(await store.waitForServer("append", 5000), true);
    const topic = "/raw";
    const sent = Array.from({ length: 5 }, (_, i) => Uint8Array.from({ length: i * 3 }, (_, k) => k + i));
    await Promise.all(sent.map((p) => store.append(topic, "std_msgs/UInt8", p)));
    const fetch = (max: number): Promise<StoreResponse<"fetch">> =>
      store.fetch(
        {
          topic,
          type: "std_msgs/UInt8",
          consumer: "c",
          client: "one",
          max,
          wait_ms: 100,
          start_at: "first",
          ack_timeout_ms: 60000,
          max_deliver: 0,
          max_in_flight: 100,
          raw: true,
        },
        { timeoutMs: 10000 },
      );
    const records = (r: StoreResponse<"fetch">): [number, number, number[]][] => {
      assert.deepEqual([r.seqs, r.timestamps, r.payloads], [[], [], []], "a raw answer has no arrays");
      const out: [number, number, number[]][] = [];
      forEachStoredRecord(r.records ?? new Uint8Array(0), (_i, seq, ts, payload) =>
        out.push([seq, ts, [...payload]]),
      );
      return out;
    };
    const stored = await store.read({ topic, from_seq: 1, from_time_ms: 0, max: 10 });
    const first = await fetch(3);
    assert.deepEqual(
      records(first),
      [0, 1, 2].map((i) => [i + 1, stored.timestamps[i], [...sent[i]!]]),
    );
    assert.deepEqual(first.deliveries, [1, 1, 1]);
    // A redelivery and new messages in one answer: in seq order, each with its delivery count.
    await store.ack({ topic, consumer: "c", acks: [], ack_runs: [1, 1, 3, 1], nacks: [2], nack_delay_ms: 0 });
    const second = await fetch(10);
    assert.deepEqual(
      records(second).map(([seq, , payload]) => [seq, payload]),
      [2, 4, 5].map((seq) => [seq, [...sent[seq - 1]!]]),
    );
    assert.deepEqual(second.deliveries, [2, 1, 1]);

    // The append reply: first seq and count (seqs are listed only for messages with ids).
    const append = node.createClient("/_store/append", myelin_msgs.StoreAppend);
    const packed = Buffer.from([2, 0, 0, 0, 7, 8, 0, 0, 0, 0]);
    assert.deepEqual(
      await append.call({ topic, type: "std_msgs/UInt8", payloads: [], msg_ids: [], packed }),
      { first_seq: 6, count: 2, seqs: [], duplicates: 0 },
    );
    for (const [req, why] of [
      [{ payloads: [], packed: Buffer.from([5, 0, 0, 0, 1]) }, /says 5 bytes, but only 1 follow/],
      [{ payloads: [], packed: Buffer.from([1, 0, 0, 0, 1, 0]) }, /end inside a length at byte 5/],
      [{ payloads: [Uint8Array.of(1)], packed: Buffer.from([0, 0, 0, 0]) }, /not both/],
    ] as [{ payloads: Uint8Array[]; packed: Uint8Array }, RegExp][]) {
      await assert.rejects(append.call({ topic, type: "std_msgs/UInt8", msg_ids: [], ...req }), {
        code: "ERR_INVALID_ARGUMENT",
        message: why,
      });
    }
    assert.equal((await store.info({ topic })).last_seq, 7, "a refused request stores nothing");

    // A closing consumer withdraws its grants: the one waiting is answered at once, before the
    // cancel's own (empty) answer, and a message stored afterwards is delivered to nobody.
    const grant = (cancel: boolean): Promise<StoreResponse<"fetch">> =>
      store.fetch(
        {
          topic,
          type: "std_msgs/UInt8",
          consumer: "k",
          client: "closing",
          max: cancel ? 0 : 10,
          wait_ms: cancel ? 0 : 60000,
          start_at: "seq:8", // after everything stored so far
          ack_timeout_ms: 60000,
          max_deliver: 0,
          max_in_flight: 100,
          raw: true,
          ...(cancel ? { cancel: true } : {}),
        },
        { timeoutMs: 60000 },
      );
    const waiting = grant(false);
    let answered = false;
    void waiting.then(() => (answered = true));
    await until(async () => (await store.info({ topic })).consumers.includes("k"));
    const cancelled = await grant(true);
    assert.ok(answered, "the waiting grant was answered before the cancel");
    assert.deepEqual((await waiting).deliveries, []);
    assert.deepEqual([cancelled.deliveries, cancelled.records], [[], undefined]);
    await store.append(topic, "std_msgs/UInt8", Uint8Array.of(9));
    const k = await store.info({ topic });
    assert.equal(k.pending[k.consumers.indexOf("k")], 0, "nothing delivered to withdrawn grants");
    // A cancel delivers nothing itself, even with a message there to deliver.
    assert.deepEqual((await grant(true)).deliveries, []);
    const k2 = await store.info({ topic });
    assert.equal(k2.pending[k2.consumers.indexOf("k")], 0);
  } finally {
    await service.close();
  }
});

test("a store older than packed appends and raw fetches refuses the fields: the client sends arrays", async () => {
  using rt = tempRuntime();
  await using _hub = await Hub.start({ runtimeDir: rt.dir });
  await using storeNode = await createNode({ name: "_store", runtimeDir: rt.dir });
  // The store's services as they were before `packed` and `raw`. In this process they are called
  // directly: the handler sees the new fields and ignores them, as an old store's code would (over
  // the wire, its request check refuses them, with the same outcome).
  const OldAppend = defineService(
    "myelin_msgs/StoreAppend",
    { topic: t.string(), type: t.string(), payloads: t.array(t.bytes()), msg_ids: t.array(t.string()) },
    { first_seq: t.f64(), count: t.u32(), seqs: t.array(t.f64()), duplicates: t.u32() },
  );
  const OldFetch = defineService(
    "myelin_msgs/StoreFetch",
    {
      topic: t.string(),
      type: t.string(),
      consumer: t.string(),
      client: t.string(),
      max: t.u32(),
      wait_ms: t.u32(),
      start_at: t.string(),
      ack_timeout_ms: t.u32(),
      max_deliver: t.u32(),
      max_in_flight: t.u32(),
    },
    {
      seqs: t.array(t.f64()),
      timestamps: t.array(t.f64()),
      deliveries: t.array(t.u32()),
      payloads: t.array(t.bytes()),
    },
  );
  const appended: Uint8Array[] = [];
  await storeNode.createService("/_store/append", OldAppend, (req) => {
    appended.push(...req.payloads);
    return {
      first_seq: 1,
      count: req.payloads.length,
      seqs: req.payloads.map((_, i) => i + 1),
      duplicates: 0,
    };
  });
  let fetches = 0;
  await storeNode.createService("/_store/fetch", OldFetch, async (req) => {
    if (fetches++ === 0)
      return {
        seqs: [1],
        timestamps: [1000],
        deliveries: [1],
        payloads: [Uint8Array.of(0x81, 0xa4, 0x64, 0x61, 0x74, 0x61, 0x07)],
      };
    await new Promise((r) => setTimeout(r, Math.min(req.wait_ms, 100)));
    return { seqs: [], timestamps: [], deliveries: [], payloads: [] };
  });
  await storeNode.createService("/_store/ack", myelin_msgs.StoreAck, (req) => ({
    acked: (req.ack_runs ?? []).length / 2,
  }));
  await using node = await createNode({ name: "app", runtimeDir: rt.dir });
  await node.waitForGraph((g) => graphServes(g, STORE_PROTOCOL.fetch), 5000);
  const store = new StoreClient(node, { breaker: false });
  await store.append("/old", "std_msgs/UInt8", Uint8Array.of(1, 2));
  await store.append("/old", "std_msgs/UInt8", Uint8Array.of(3));
  assert.deepEqual(
    appended.map((p) => [...p]),
    [[1, 2], [3]],
  );

  const UInt8 = defineMessage("std_msgs/UInt8", { data: t.u8() });
  const c = node.createDurableConsumer("/old", UInt8, { name: "c" });
  try {
    for await (const m of c) {
      assert.deepEqual([m.seq, m.timestamp, m.msg.data], [1, 1000, 7]);
      await m.ack();
      break;
    }
  } finally {
    await c.close();
  }
});
