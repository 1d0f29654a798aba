/**
 * The NATS bridge against a real nats-server started by the test (`-js -sd <tmp>`, stopped and
 * restarted on the same port and store directory for the outage case): the conformance suite on
 * JetStream (QoS 1 rules), and core NATS (QoS 0 rules) both ways.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AckPolicy, connect, DeliverPolicy, type NatsConnection } from "nats";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import type { NatsBridgeConfig } from "../src/gateway/bridge-config.js";
import { startBridge } from "../src/gateway/bridge-host.js";
import { bridgeConformance, Collected, type ExternalClient } from "./bridge-conformance.js";
import { NatsServer } from "./bridge-peers.js";
import { tempRuntime, until } from "./helpers.js";

const STREAM = "MYELIN_CONF";
let collectors = 0;

async function natsExternal(url: string): Promise<ExternalClient> {
  const nc: NatsConnection = await connect({
    servers: url,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 50,
  });
  const js = nc.jetstream({ timeout: 2000 });
  const stops: (() => void)[] = [];
  return {
    async publish(topic, payload) {
      // An at-least-once publisher: retry until the stream acknowledges (bounded).
      const end = Date.now() + 30000;
      for (;;) {
        try {
          await js.publish(topic, payload);
          return;
        } catch (err) {
          if (Date.now() > end) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async collect(pattern) {
      const got = new Collected();
      // A durable consumer (it survives a restart of the server with its store directory).
      const jsm = await nc.jetstreamManager();
      const name = `coll-${process.pid}-${++collectors}`;
      await jsm.consumers.add(STREAM, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: pattern,
      });
      const msgs = await (await js.consumers.get(STREAM, name)).consume();
      stops.push(() => msgs.stop());
      void (async () => {
        for await (const m of msgs) {
          got.push(m.subject, m.data);
          m.ack();
        }
      })().catch(() => undefined);
      return got;
    },
    async close() {
      for (const s of stops) s();
      await nc.close();
    },
  };
}

bridgeConformance("NATS JetStream (nats-server)", async () => {
  const server = await NatsServer.start();
  return {
    kind: "nats",
    topic: (...levels) => ["conf", ...levels].join("."),
    one: "*",
    bridgeConfig: (name, mapping): NatsBridgeConfig => ({
      name,
      kind: "nats",
      url: server.url,
      mapping,
      jetstream: { stream: STREAM, create: true, subjects: ["conf.>"] },
      reconnect: { initialMs: 50, maxMs: 500 },
    }),
    external: () => natsExternal(server.url),
    outage: () => server.stop(),
    recover: () => server.restart(),
    close: () => server[Symbol.asyncDispose](),
  };
});

test("NATS bridge: core NATS (QoS 0) both ways", { timeout: 30000 }, async () => {
  using rt = tempRuntime();
  await using server = await NatsServer.start();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  const app = await createNode({ name: "app", runtimeDir: rt.dir });
  const bnode = await createNode({ name: "_bridge_core", runtimeDir: rt.dir });
  const ext = await connect({ servers: server.url });
  try {
    const cfg: NatsBridgeConfig = {
      name: "core",
      kind: "nats",
      url: server.url,
      sitePrefix: "site-a",
      mapping: [
        { myelin: "/fleet/+/status", external: "fleet.*.status", type: "std_msgs/String", direction: "out" },
        { myelin: "/fleet/+/cmd", external: "fleet.*.cmd", type: "std_msgs/String", direction: "in" },
      ],
    };
    const bridge = await startBridge(cfg, { node: bnode, dataDir: join(rt.dir, "data") });
    try {
      await bridge.waitConnected(10000);
      assert.equal(bridge.status().queue, undefined, "QoS 0 rules need no offline queue");
      const out = new Collected();
      const sub = ext.subscribe("site-a.fleet.*.status");
      void (async () => {
        for await (const m of sub) out.push(m.subject, m.data);
      })();
      await ext.flush();
      const pub = await app.createPublisher("/fleet/r2/status", std_msgs.String);
      await until(
        () => bridge.status().outTopics.includes("/fleet/r2/status"),
        10000,
        "the bridge subscribing",
      );
      for (let i = 0; i < 10; i++) await pub.publish({ data: `s${i}` });
      await out.until(() => out.messages.length >= 10, 10000, "10 status messages");
      assert.ok(out.messages.every((m) => m.topic === "site-a.fleet.r2.status"));
      assert.deepEqual(
        out.messages.map((m) => (JSON.parse(m.text) as { data: string }).data),
        Array.from({ length: 10 }, (_, i) => `s${i}`),
      );

      const cmds: string[] = [];
      await app.createSubscription("/fleet/r7/cmd", std_msgs.String, (m) => {
        cmds.push(m.data);
      });
      for (let i = 0; i < 10; i++)
        ext.publish("site-a.fleet.r7.cmd", new TextEncoder().encode(JSON.stringify({ data: `c${i}` })));
      ext.publish("other.fleet.r7.cmd", new TextEncoder().encode(`{"data":"not mapped"}`));
      await ext.flush();
      await until(() => cmds.length >= 10, 10000, "10 commands in");
      assert.deepEqual(
        cmds,
        Array.from({ length: 10 }, (_, i) => `c${i}`),
      );
      assert.equal(bridge.status().in, 10);
    } finally {
      await bridge.close();
    }
  } finally {
    await ext.close();
    await bnode.close();
    await app.close();
    hub.close();
  }
});
