/**
 * The Kafka bridge against librdkafka's mock cluster (kafka-peer.ts; no Kafka broker is installed
 * here): typed messages both ways with committed offsets, refused payloads, configuration errors,
 * `kill -9` of the bridge between produce and commit in both directions (nothing lost; duplicates
 * only within what at-least-once allows), and a cluster that is down when the bridge starts.
 * Skipped, saying why, when gcc or librdkafka-dev is missing.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import kafkajs from "kafkajs";
import type { Consumer, Kafka } from "kafkajs";
import { MyelinError } from "../src/errors.js";
import { Hub } from "../src/hub/index.js";
import { createNode, type Node } from "../src/node/index.js";
import { myelin_msgs, std_msgs } from "../src/msgs/index.js";
import { validateBridgeConfig, type KafkaBridgeConfig } from "../src/gateway/bridge-config.js";
import { startBridge } from "../src/gateway/bridge-host.js";
import {
  KAFKA_ID_HEADER,
  KAFKA_ORIGIN_HEADER,
  kafkaBrokers,
  kafkaSubscription,
} from "../src/gateway/bridge-kafka.js";
import { TopicMap, type MappingSpec } from "../src/gateway/mapping.js";
import { KafkaMock, kafkaMockUnavailable } from "./kafka-peer.js";
import { spawnFixture, tempRuntime, until, type Proc } from "./helpers.js";

const { Kafka: KafkaClient, logLevel } = kafkajs;
const skip = kafkaMockUnavailable();

let seq = 0;

interface Received {
  topic: string;
  partition: number;
  offset: string;
  text: string;
  headers: Record<string, string>;
}

/** An application outside Myelin: a kafkajs client of the mock cluster. */
class External {
  readonly kafka: Kafka;
  readonly #consumers: Consumer[] = [];
  readonly #producer;
  constructor(bootstrap: string) {
    this.kafka = new KafkaClient({
      clientId: `ext-${process.pid}`,
      brokers: bootstrap.split(","),
      logLevel: logLevel.NOTHING,
      retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    this.#producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  }
  async connect(): Promise<void> {
    await this.#producer.connect();
  }
  async produce(topic: string, values: string[]): Promise<void> {
    await this.#producer.send({ topic, acks: -1, messages: values.map((v) => ({ key: topic, value: v })) });
  }
  /** Reads `topics` from the beginning into a list. */
  async collect(topics: string[]): Promise<Received[]> {
    const got: Received[] = [];
    const c = this.kafka.consumer({ groupId: `ext-${process.pid}-${++seq}`, maxWaitTimeInMs: 200 });
    this.#consumers.push(c);
    await c.connect();
    await c.subscribe({ topics, fromBeginning: true });
    await c.run({
      eachMessage: ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        got.push({
          topic,
          partition,
          offset: message.offset,
          text: message.value?.toString() ?? "",
          headers,
        });
        return Promise.resolve();
      },
    });
    return got;
  }
  /** The committed offsets of a group on a topic, summed over partitions. */
  async committed(groupId: string, topic: string): Promise<number> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const r = await admin.fetchOffsets({ groupId, topics: [topic] });
      return r.flatMap((t) => t.partitions).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
    } finally {
      await admin.disconnect();
    }
  }
  async close(): Promise<void> {
    await Promise.all(this.#consumers.map((c) => c.disconnect().catch(() => undefined)));
    await this.#producer.disconnect().catch(() => undefined);
  }
}

interface World {
  dir: string;
  app: Node;
  [Symbol.asyncDispose](): Promise<void>;
}

async function world(): Promise<World> {
  const rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  const app = await createNode({ name: "app", runtimeDir: rt.dir });
  return {
    dir: rt.dir,
    app,
    async [Symbol.asyncDispose]() {
      await app.close();
      hub.close();
      rt[Symbol.dispose]();
    },
  };
}

function kafkaConfig(
  name: string,
  bootstrap: string,
  mapping: MappingSpec[],
  more: Partial<KafkaBridgeConfig> = {},
): KafkaBridgeConfig {
  return {
    name,
    kind: "kafka",
    url: `kafka://${bootstrap}`,
    mapping,
    fromBeginning: true,
    reconnect: { initialMs: 100, maxMs: 1000, connectTimeoutMs: 10000 },
    ...more,
  };
}

function badConfig(value: unknown, ...parts: string[]): void {
  assert.throws(
    () => validateBridgeConfig(value, "bridges.yaml: bridges[0]."),
    (err: unknown) => {
      assert.ok(err instanceof MyelinError && err.code === "ERR_BAD_CONFIG", String(err));
      for (const p of parts) assert.ok(err.message.includes(p), `"${err.message}" lacks "${p}"`);
      return true;
    },
  );
}

test("Kafka bridge: configuration and mapping errors name the field and the fix", () => {
  const rule = { myelin: "/a/+", external: "a.*", type: "std_msgs/String" };
  const ok = { name: "k", kind: "kafka", url: "kafka://h1:9092,h2:9092", mapping: [rule] };
  assert.equal(validateBridgeConfig(ok).kind, "kafka");
  assert.equal(validateBridgeConfig(ok).mapping[0]!.qos, 1, "Kafka rules are at least once");
  badConfig({ ...ok, url: "http://h:9092" }, "bridges[0].url", "kafka://broker1:9092,broker2:9092");
  badConfig({ ...ok, mapping: [{ ...rule, qos: 0 }] }, "mapping[0].qos", "at least once");
  badConfig({ ...ok, sasl: { mechanism: "plain", username: "u" } }, "sasl.password", "passwordEnv");
  badConfig({ ...ok, sasl: { mechanism: "md5", username: "u", password: "p" } }, "sasl.mechanism");
  badConfig({ ...ok, groupId: "a group" }, "groupId");
  badConfig({ ...ok, sessionTimeoutMs: 10 }, "sessionTimeoutMs");
  badConfig({ ...ok, partitions: 3 }, "partitions", "unknown setting");
  badConfig({ ...ok, mapping: [{ ...rule, external: "a.b c" }] }, "mapping[0].external", "Kafka topic name");
  badConfig({ ...ok, mapping: [{ ...rule, external: "a.x*" }] }, "mapping[0].external", "wildcard");
  badConfig({ ...ok, mapping: [{ ...rule, external: "a.b" }] }, "mapping[0].external", "same wildcards");

  assert.deepEqual(kafkaBrokers("kafkas://a:1,b:2"), { brokers: ["a:1", "b:2"], tls: true });
  assert.deepEqual(kafkaBrokers("a:1"), { brokers: ["a:1"], tls: false });
  assert.equal(kafkaSubscription("plant.temp"), "plant.temp");
  const re = kafkaSubscription("site-a.plant.*.temp") as RegExp;
  assert.ok(
    re.test("site-a.plant.r1.temp") && !re.test("site-a.plant.r1.x.temp") && !re.test("site-aXplant.r1.temp"),
  );
  const rest = kafkaSubscription("alerts.#") as RegExp;
  assert.ok(rest.test("alerts.a.b") && rest.test("alerts") && !rest.test("alertsx"));

  // A Myelin level Kafka cannot carry ('~') or a name over 249 characters is not forwarded.
  const map = new TopicMap([{ ...rule, direction: "out" }], { syntax: "kafka" });
  assert.equal(map.outbound("/a/b")?.externalTopic, "a.b");
  assert.equal(map.outbound("/a/b~c"), undefined);
  assert.equal(map.outbound(`/a/${"x".repeat(250)}`), undefined);
});

describe("Kafka bridge against librdkafka's mock cluster", { skip, timeout: 120000 }, () => {
  test(
    "typed messages both ways; offsets committed after the Myelin publish; refused payloads reported",
    { timeout: 60000 },
    async () => {
      await using w = await world();
      await using mock = await KafkaMock.start({
        brokers: 3,
        topics: { "plant.out.a": 1, "plant.in.r1": 2, "plant.in.r2": 1, "plant.temp": 1 },
      });
      const ext = new External(mock.bootstrap);
      const node = await createNode({ name: "_bridge_kafka", runtimeDir: w.dir });
      try {
        await ext.connect();
        const cfg = kafkaConfig("kafka", mock.bootstrap, [
          { myelin: "/plant/out/+", external: "plant.out.*", type: "std_msgs/String", direction: "out" },
          { myelin: "/plant/in/+", external: "plant.in.*", type: "std_msgs/String", direction: "in" },
          { myelin: "/plant/temp", external: "plant.temp", type: "std_msgs/Float64", direction: "in" },
        ]);
        await using bridge = await startBridge(cfg, { node, dataDir: join(w.dir, "data") });
        await bridge.waitConnected(30000);

        // Out: Myelin → Kafka, in order, with the queue's id and the bridge's name as headers.
        const out = await ext.collect(["plant.out.a"]);
        const pub = await w.app.createPublisher("/plant/out/a", std_msgs.String);
        await until(
          () => bridge.status().outTopics.includes("/plant/out/a"),
          10000,
          "the bridge subscribing",
        );
        for (let i = 0; i < 30; i++) await pub.publish({ data: `m${i}` });
        await until(() => out.length >= 30, 30000, "30 messages in Kafka");
        assert.deepEqual(
          out.map((m) => (JSON.parse(m.text) as { data: string }).data),
          Array.from({ length: 30 }, (_, i) => `m${i}`),
        );
        assert.ok(
          out.every((m) => m.headers[KAFKA_ORIGIN_HEADER] === "kafka" && m.headers[KAFKA_ID_HEADER] !== ""),
        );
        assert.equal(new Set(out.map((m) => m.headers[KAFKA_ID_HEADER])).size, 30);
        await until(() => bridge.status().queue?.messages === 0, 10000, "the offline queue to drain");

        // In: Kafka → Myelin, typed; offsets committed once published.
        const got: string[] = [];
        await w.app.createSubscription("/plant/in/r1", std_msgs.String, (m) => void got.push(`r1:${m.data}`));
        await w.app.createSubscription("/plant/in/r2", std_msgs.String, (m) => void got.push(`r2:${m.data}`));
        const rejects: string[] = [];
        await w.app.createSubscription(
          "/_gateway/errors",
          myelin_msgs.GatewayReject,
          (r) => void rejects.push(r.external_topic),
        );
        const temps: number[] = [];
        await w.app.createSubscription("/plant/temp", std_msgs.Float64, (m) => void temps.push(m.data));
        await ext.produce(
          "plant.in.r1",
          Array.from({ length: 10 }, (_, i) => JSON.stringify({ data: `a${i}` })),
        );
        await ext.produce(
          "plant.in.r2",
          Array.from({ length: 5 }, (_, i) => JSON.stringify({ data: `b${i}` })),
        );
        await ext.produce("plant.temp", [`{"data":"hot"}`, "not json", `{"data":21.5}`]);
        await until(
          () => got.length >= 15 && temps.length >= 1 && bridge.status().rejected >= 2,
          30000,
          "15 messages, a temperature, 2 rejects",
        );
        assert.deepEqual(
          got.filter((g) => g.startsWith("r1:")),
          Array.from({ length: 10 }, (_, i) => `r1:a${i}`),
        );
        assert.deepEqual(
          got.filter((g) => g.startsWith("r2:")),
          Array.from({ length: 5 }, (_, i) => `r2:b${i}`),
        );
        assert.deepEqual(temps, [21.5]);
        const s = bridge.status();
        assert.equal(s.in, 16);
        assert.equal(s.rejected, 2);
        assert.match(s.lastReject ?? "", /std_msgs\/Float64/);
        await until(() => rejects.length >= 2, 10000, "the rejects on /_gateway/errors");
        // Every message (refused ones too, once reported) is committed, so a new bridge starts after them.
        const groupId = "myelin-kafka";
        const committed = async (): Promise<number[]> =>
          Promise.all(["plant.in.r1", "plant.in.r2", "plant.temp"].map((t) => ext.committed(groupId, t)));
        const end = Date.now() + 15000;
        let c = await committed();
        while (c.join() !== "10,5,3" && Date.now() < end) c = await committed();
        assert.deepEqual(c, [10, 5, 3]);
      } finally {
        await ext.close();
        await node.close();
      }
    },
  );

  test(
    "kill -9 of the bridge between produce and commit, both ways: nothing lost, duplicates only the uncommitted",
    { timeout: 90000 },
    async () => {
      await using w = await world();
      await using mock = await KafkaMock.start({ brokers: 1, topics: { "cell.up": 1, "cell.down": 2 } });
      const ext = new External(mock.bootstrap);
      const N = 600;
      const procs: Proc[] = [];
      const startProc = (): Proc => {
        const p = spawnFixture(
          "kafka-bridge-proc",
          {
            config: kafkaConfig(
              "crash",
              mock.bootstrap,
              [
                { myelin: "/cell/up", external: "cell.up", type: "std_msgs/String", direction: "out" },
                { myelin: "/cell/down", external: "cell.down", type: "std_msgs/String", direction: "in" },
              ],
              { sessionTimeoutMs: 6000 },
            ),
            runtimeDir: w.dir,
            dataDir: join(w.dir, "data"),
          },
          { MYELIN_RUNTIME_DIR: w.dir },
        );
        procs.push(p);
        return p;
      };
      try {
        await ext.connect();
        const up = await ext.collect(["cell.up"]);
        const down: string[] = [];
        await w.app.createSubscription("/cell/down", std_msgs.String, (m) => void down.push(m.data));
        const pub = await w.app.createPublisher("/cell/up", std_msgs.String);

        const b1 = startProc();
        await b1.waitFor((l) => l.event === "connected", 30000, "the bridge connecting");
        // Out: all N messages go into the bridge's offline queue while the broker is away…
        await until(
          () =>
            w.app
              .graph()
              ?.nodes.some(
                (n) => n.name === "_bridge_crash" && n.subs.some((s) => s.topic === "/cell/up"),
              ) === true,
          15000,
          "the bridge subscribing",
        );
        await mock.brokerDown(1);
        for (let i = 0; i < N; i++) await pub.publish({ data: `u${i}` });
        // In: N messages wait in Kafka.
        const downValues = Array.from({ length: N }, (_, i) => JSON.stringify({ data: `d${i}` }));
        await mock.brokerUp(1);
        for (let i = 0; i < N; i += 100) await ext.produce("cell.down", downValues.slice(i, i + 100));
        // …and the bridge is killed while it sends them and publishes Kafka's messages into Myelin.
        const upBefore = new Promise<void>((resolve) => {
          const t = setInterval(() => {
            if (up.length >= N / 4 || down.length >= N / 4) {
              clearInterval(t);
              resolve();
            }
          }, 5);
        });
        await upBefore;
        b1.kill("SIGKILL");
        await b1.exit(10000);
        const upAtKill = up.length;
        const downAtKill = down.length;

        const b2 = startProc();
        const started = await b2.waitFor((l) => l.event === "started", 30000, "the second bridge starting");

        await until(
          () => new Set(up.map((m) => m.text)).size >= N && new Set(down).size >= N,
          60000,
          `all ${N} each way (up ${up.length}, down ${down.length})`,
        );

        // Out: every message once or more; a resent one has the id it had the first time, so a
        // consumer can drop it.
        const upTexts = up.map((m) => (JSON.parse(m.text) as { data: string }).data);
        assert.deepEqual([...new Set(upTexts)].sort(), Array.from({ length: N }, (_, i) => `u${i}`).sort());
        const ids = new Map<string, string>();
        for (const m of up) {
          const prev = ids.get(m.text);
          if (prev !== undefined)
            assert.equal(m.headers[KAFKA_ID_HEADER], prev, "a resent message keeps its id");
          ids.set(m.text, m.headers[KAFKA_ID_HEADER]!);
        }
        // Resent are only messages the queue still held at the kill (acknowledged by Kafka after
        // its last saved acknowledgement record, or in flight), each once.
        const recovered = started["recovered"] as number;
        const counts = new Map<string, number>();
        for (const t of upTexts) counts.set(t, (counts.get(t) ?? 0) + 1);
        assert.ok(
          up.length - N <= recovered && [...counts.values()].every((n) => n <= 2),
          `duplicates out ${up.length - N} (${upAtKill} in Kafka at the kill, ${recovered} recovered from the queue)`,
        );
        // In: every message once or more, in order per partition; only the messages published but
        // not committed at the kill repeat: at most one per partition (one message at a time each).
        assert.deepEqual([...new Set(down)].sort(), Array.from({ length: N }, (_, i) => `d${i}`).sort());
        assert.ok(
          down.length - N <= 2,
          `at most one duplicate per partition in, got ${down.length - N} (${downAtKill} before the kill)`,
        );
      } finally {
        for (const p of procs) await p[Symbol.asyncDispose]();
        await ext.close();
      }
    },
  );

  test(
    "the cluster is down when the bridge starts: it keeps trying, queues, and delivers once the cluster is back",
    { timeout: 60000 },
    async () => {
      await using w = await world();
      await using mock = await KafkaMock.start({ brokers: 1, topics: { "late.out": 1, "late.in": 1 } });
      await mock.brokerDown(1);
      const node = await createNode({ name: "_bridge_late", runtimeDir: w.dir });
      const ext = new External(mock.bootstrap);
      try {
        const cfg = kafkaConfig("late", mock.bootstrap, [
          { myelin: "/late/out", external: "late.out", type: "std_msgs/String", direction: "out" },
          { myelin: "/late/in", external: "late.in", type: "std_msgs/String", direction: "in" },
        ]);
        await using bridge = await startBridge(cfg, { node, dataDir: join(w.dir, "data") });
        await assert.rejects(
          bridge.waitConnected(1500),
          (err: unknown) => err instanceof MyelinError && err.code === "ERR_TIMEOUT",
        );
        await until(() => bridge.status().lastError !== undefined, 15000, "a connection error in the status");
        assert.notEqual(bridge.status().state, "connected");
        assert.match(bridge.status().lastError ?? "", /Kafka/);
        const pub = await w.app.createPublisher("/late/out", std_msgs.String);
        await until(() => bridge.status().outTopics.includes("/late/out"), 10000, "the bridge subscribing");
        for (let i = 0; i < 10; i++) await pub.publish({ data: `l${i}` });
        await until(() => bridge.status().queue?.messages === 10, 10000, "10 messages waiting on disk");

        await mock.brokerUp(1);
        await bridge.waitConnected(30000);
        await ext.connect();
        const out = await ext.collect(["late.out"]);
        await until(() => out.length >= 10, 30000, "the 10 queued messages");
        assert.deepEqual(
          out.map((m) => (JSON.parse(m.text) as { data: string }).data),
          Array.from({ length: 10 }, (_, i) => `l${i}`),
        );
        const got: string[] = [];
        await w.app.createSubscription("/late/in", std_msgs.String, (m) => void got.push(m.data));
        await ext.produce("late.in", [JSON.stringify({ data: "hello" })]);
        await until(() => got.length >= 1, 30000, "a message in");
        assert.deepEqual(got, ["hello"]);
        assert.ok(bridge.status().connects >= 1);
      } finally {
        await ext.close();
        await node.close();
      }
    },
  );
});
