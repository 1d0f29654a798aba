/**
 * The embedded MQTT gateway against real peers: mosquitto_pub / mosquitto_sub and MQTT.js
 * clients, Myelin nodes in other processes. Every test starts its own hub and gateway on free
 * ports and stops everything it started; waits are on events with bounded timeouts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { createNode, type Node } from "../src/node/index.js";
import { myelin_msgs } from "../src/msgs/index.js";
import { MqttGateway, type MqttGatewayOptions } from "../src/gateway/mqtt-gateway.js";
import type { MappingSpec } from "../src/gateway/mapping.js";
import { spawnFixture, tempRuntime, until } from "./helpers.js";

const MAPPING: MappingSpec[] = [
  {
    myelin: "/sensors/+/temperature",
    external: "sensors/+/temperature",
    type: "sensor_msgs/Temperature",
    direction: "in",
  },
  { myelin: "/cmd/+", external: "cmd/+", type: "std_msgs/String", direction: "out", qos: 1 },
];

interface World {
  dir: string;
  hub: Hub;
  gw: MqttGateway;
  port: number;
  env: Record<string, string>;
  clients: MqttClient[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function world(
  opts: Partial<MqttGatewayOptions> = {},
): Promise<World & { rt: { dir: string; [Symbol.dispose](): void } }> {
  const rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
  const gw = await MqttGateway.start({
    listeners: { tcp: { port: 0, host: "127.0.0.1" } },
    mapping: MAPPING,
    runtimeDir: rt.dir,
    ...opts,
  });
  const clients: MqttClient[] = [];
  return {
    rt,
    dir: rt.dir,
    hub,
    gw,
    port: gw.port("tcp")!,
    env: { MYELIN_RUNTIME_DIR: rt.dir },
    clients,
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await gw.close();
      hub.close();
      rt[Symbol.dispose]();
    },
  };
}

/** An MQTT.js client connected to the world's gateway (closed with the world). */
async function connect(w: World, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect({
    host: "127.0.0.1",
    port: w.port,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    ...opts,
  });
  w.clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
    c.once("close", () => reject(new Error("closed before CONNACK")));
  });
  return c;
}

/** Messages an MQTT.js client receives, with a wait for a count. */
function collect(c: MqttClient): {
  got: { topic: string; text: string; retain: boolean; qos: number }[];
  wait(n: number, ms?: number): Promise<void>;
} {
  const got: { topic: string; text: string; retain: boolean; qos: number }[] = [];
  const waiters = new Set<() => void>();
  c.on("message", (topic, payload, packet) => {
    got.push({ topic, text: payload.toString(), retain: packet.retain, qos: packet.qos });
    for (const w of [...waiters]) w();
  });
  return {
    got,
    wait(n, ms = 10000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (got.length >= n) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${n} MQTT messages; got ${JSON.stringify(got)}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

function run(
  cmd: string,
  args: string[],
  timeoutMs = 10000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : null;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitGraph(
  node: Node,
  pred: (n: { name: string; subs: { topic: string }[]; pubs: { topic: string }[] }) => boolean,
): Promise<void> {
  await node.waitForGraph((g) => g.nodes.some(pred), 10000);
}

test(
  "devices reach a typed Myelin subscriber in another process; Myelin publications reach MQTT subscribers",
  { timeout: 40000 },
  async () => {
    await using w = await world();
    await using sub = spawnFixture(
      "gateway-proc",
      { role: "sub", topic: "/sensors/k1/temperature", type: "sensor_msgs/Temperature" },
      w.env,
    );
    await sub.waitFor((l) => l.event === "ready");
    const probe = await createNode({ name: "probe", runtimeDir: w.dir });
    try {
      await waitGraph(probe, (n) => n.name === "gw_sub");
      // mosquitto_pub, QoS 1
      const r = await run("/usr/bin/mosquitto_pub", [
        "-h",
        "127.0.0.1",
        "-p",
        String(w.port),
        "-q",
        "1",
        "-t",
        "sensors/k1/temperature",
        "-m",
        '{"temperature": 21.5, "variance": 0.25}',
      ]);
      assert.equal(r.code, 0, r.stderr);
      // MQTT.js, QoS 0, 1, 2
      const dev = await connect(w, { clientId: "dev-k1" });
      for (const qos of [0, 1, 2] as const) {
        await dev.publishAsync("sensors/k1/temperature", JSON.stringify({ temperature: 22 + qos }), { qos });
      }
      const msgs = await sub.waitForCount((l) => l.event === "msg", 4, 15000, "temperatures");
      const temps = msgs.map((l) => (l["msg"] as { temperature: number }).temperature).sort();
      assert.deepEqual(temps, [21.5, 22, 23, 24]);
      assert.equal((msgs[0]!["msg"] as { variance: number }).variance, 0.25);

      // Myelin → MQTT: mosquitto_sub and an MQTT.js subscriber get a Myelin publication as JSON.
      const app = await connect(w, { clientId: "app" });
      const appGot = collect(app);
      await app.subscribeAsync("cmd/#", { qos: 1 });
      const msub = spawn(
        "/usr/bin/mosquitto_sub",
        ["-h", "127.0.0.1", "-p", String(w.port), "-t", "cmd/+", "-C", "1", "-v", "-q", "1"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let msubOut = "";
      msub.stdout.setEncoding("utf8").on("data", (s: string) => (msubOut += s));
      try {
        await until(
          () => w.gw.status().clients.some((c) => c.subscriptions.includes("cmd/+")),
          10000,
          "mosquitto_sub subscribed",
        );
        await using pub = spawnFixture(
          "gateway-proc",
          { role: "pub", topic: "/cmd/dev1", type: "std_msgs/String", messages: [{ data: "go" }] },
          w.env,
        );
        await pub.waitFor((l) => l.event === "published", 15000);
        await appGot.wait(1);
        assert.deepEqual(appGot.got[0], { topic: "cmd/dev1", text: '{"data":"go"}', retain: false, qos: 1 });
        const [code] = (await Promise.race([
          once(msub, "exit"),
          new Promise((_, rej) =>
            setTimeout(() => rej(new Error(`mosquitto_sub got nothing: ${msubOut}`)), 10000),
          ),
        ])) as [number];
        assert.equal(code, 0);
        assert.equal(msubOut.trim(), 'cmd/dev1 {"data":"go"}');
      } finally {
        msub.kill();
      }
      const st = w.gw.status();
      assert.equal(st.to_myelin, 4);
      assert.ok(st.from_myelin >= 1);
    } finally {
      await probe.close();
    }
  },
);

test(
  'large {"data":"<base64>"} payloads reach a Myelin subscriber in another process intact; a bad one is refused',
  { timeout: 40000 },
  async () => {
    // From 64 KiB the gateway decodes the base64 into its publisher's shared memory (a loan).
    await using w = await world({
      mapping: [
        ...MAPPING,
        { myelin: "/blobs/+", external: "blobs/+", type: "myelin_msgs/RawPayload", direction: "in" },
      ],
    });
    await using sub = spawnFixture(
      "gateway-proc",
      { role: "sub", topic: "/blobs/cam", type: "myelin_msgs/RawPayload" },
      w.env,
    );
    await sub.waitFor((l) => l.event === "ready");
    const probe = await createNode({ name: "probe", runtimeDir: w.dir });
    try {
      await waitGraph(probe, (n) => n.name === "gw_sub");
      const dev = await connect(w, { clientId: "dev-cam" });
      const blobs = [1, 2, 3, 4].map((k) =>
        Buffer.from(Array.from({ length: 150 * 1024 + k }, (_, i) => (i * k + (i >> 10)) & 0xff)),
      );
      const bad = `{"data":"${blobs[0]!.toString("base64").slice(0, 100_000)}$${blobs[0]!.toString("base64").slice(100_001)}"}`;
      await dev.publishAsync("blobs/cam", `{"data":"${blobs[0]!.toString("base64")}"}`, { qos: 1 });
      await dev.publishAsync("blobs/cam", bad, { qos: 1 });
      for (const b of blobs.slice(1))
        await dev.publishAsync("blobs/cam", `{"data":"${b.toString("base64")}"}`, { qos: 1 });
      const msgs = await sub.waitForCount((l) => l.event === "msg", 4, 15000, "blobs");
      assert.deepEqual(
        msgs.map((l) => (l["msg"] as { data: string }).data),
        blobs.map((b) => b.toString("base64")),
      );
      const st = w.gw.status();
      assert.equal(st.to_myelin, 4);
      assert.equal(st.rejected, 1);
    } finally {
      await probe.close();
    }
  },
);

test(
  "QoS 0/1/2, retained messages, wills and shared subscriptions between MQTT clients",
  { timeout: 30000 },
  async () => {
    await using w = await world();
    const a = await connect(w, { clientId: "a" });
    const b = await connect(w, { clientId: "b" });
    const bGot = collect(b);
    await b.subscribeAsync("chat/#", { qos: 2 });
    for (const qos of [0, 1, 2] as const) await a.publishAsync(`chat/q${qos}`, `m${qos}`, { qos });
    await bGot.wait(3);
    assert.deepEqual(bGot.got.map((m) => [m.topic, m.text, m.qos]).sort(), [
      ["chat/q0", "m0", 0],
      ["chat/q1", "m1", 1],
      ["chat/q2", "m2", 2],
    ]);

    // Retained: a later mosquitto_sub gets it at once, flagged retained.
    await a.publishAsync("status/plant", "running", { qos: 1, retain: true });
    const r = await run("/usr/bin/mosquitto_sub", [
      "-h",
      "127.0.0.1",
      "-p",
      String(w.port),
      "-t",
      "status/#",
      "-C",
      "1",
      "-v",
      "--retained-only",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "status/plant running");
    assert.equal(w.gw.status().retained, 1);

    // Will: a client that vanishes without DISCONNECT has its will published.
    const willGot = collect(b);
    await b.subscribeAsync("status/devices/#", { qos: 1 });
    const dying = await connect(w, {
      clientId: "dying",
      will: { topic: "status/devices/dying", payload: Buffer.from("offline"), qos: 1, retain: false },
    });
    dying.stream.destroy();
    await until(() => willGot.got.some((m) => m.topic === "status/devices/dying"), 10000, "the will");
    assert.equal(willGot.got.find((m) => m.topic === "status/devices/dying")?.text, "offline");

    // Shared subscription: each message to one member of the group, round robin.
    const s1 = await connect(w, { clientId: "s1" });
    const s2 = await connect(w, { clientId: "s2" });
    const g1 = collect(s1);
    const g2 = collect(s2);
    await s1.subscribeAsync("$share/workers/jobs/#", { qos: 1 });
    await s2.subscribeAsync("$share/workers/jobs/#", { qos: 1 });
    for (let i = 0; i < 10; i++) await a.publishAsync(`jobs/${i}`, `job ${i}`, { qos: 1 });
    await until(() => g1.got.length + g2.got.length === 10, 10000, "10 shared deliveries");
    assert.equal(g1.got.length, 5);
    assert.equal(g2.got.length, 5);
    assert.deepEqual(
      [...g1.got, ...g2.got].map((m) => m.text).sort(),
      Array.from({ length: 10 }, (_, i) => `job ${i}`).sort(),
    );
  },
);

test(
  "bad JSON and schema failures go to the error topic and are counted, never forwarded",
  { timeout: 30000 },
  async () => {
    await using w = await world();
    const watcher = await createNode({ name: "watcher", runtimeDir: w.dir });
    try {
      const rejects: { reason: string; external_topic: string; rule: number; source: string }[] = [];
      const errSub = await watcher.createSubscription(
        "/_gateway/errors",
        myelin_msgs.GatewayReject,
        (m) => void rejects.push(m),
      );
      void errSub;
      await waitGraph(watcher, (n) => n.name === "_gateway" && n.pubs.length >= 0);
      const mqttSub = await connect(w, { clientId: "observer" });
      const seen = collect(mqttSub);
      await mqttSub.subscribeAsync("sensors/#", { qos: 1 });
      const dev = await connect(w, { clientId: "dev-bad" });
      // The error topic's publisher appears with the first reject; publish one and wait for the link.
      await dev.publishAsync("sensors/k1/temperature", "{not json", { qos: 1 });
      await until(() => w.gw.status().rejected === 1, 10000, "first reject counted");
      await watcher.waitForGraph(
        (g) => g.nodes.some((n) => n.pubs.some((p) => p.topic === "/_gateway/errors")),
        10000,
      );
      await until(() => errSub.stats().received >= 0, 100);
      await dev.publishAsync("sensors/k1/temperature", JSON.stringify({ temperature: "warm" }), { qos: 1 });
      await dev.publishAsync("sensors/k1/temperature", JSON.stringify({ temperature: 19 }), { qos: 1 });
      await seen.wait(1);
      await until(() => rejects.length >= 1, 10000, "a reject on the error topic");
      assert.deepEqual(
        seen.got.map((m) => m.text),
        ['{"temperature":19}'],
        "only the valid message is forwarded to MQTT subscribers",
      );
      const st = w.gw.status();
      assert.equal(st.rejected, 2);
      assert.equal(st.to_myelin, 1);
      assert.match(st.last_reject, /dev-bad on sensors\/k1\/temperature: .*temperature/);
      assert.deepEqual([...st.reject_reasons].sort(), [
        "payload does not fit the schema",
        "payload is not JSON",
      ]);
      const schemaReject = rejects.find((r) => /temperature/.test(r.reason) && !/JSON/.test(r.reason));
      assert.ok(schemaReject, JSON.stringify(rejects));
      assert.equal(schemaReject.external_topic, "sensors/k1/temperature");
      assert.equal(schemaReject.rule, 0);
      assert.equal(schemaReject.source, "dev-bad");
    } finally {
      await watcher.close();
    }
  },
);
