/**
 * The MQTT bridge against a real Mosquitto started by the test (stopped and restarted on the same
 * port for the outage case, with persistence so its sessions survive), through the conformance
 * suite, plus MQTT-specific cases: MQTT 5, and the offline queue surviving a restart of the
 * bridge while the broker is away.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import type { MqttBridgeConfig } from "../src/gateway/bridge-config.js";
import { startBridge } from "../src/gateway/bridge-host.js";
import { bridgeConformance, type PeerUnderTest } from "./bridge-conformance.js";
import { Mosquitto } from "./bridge-peers.js";
import { mqttExternal } from "./mqtt-external.js";
import { tempRuntime, until } from "./helpers.js";

function mqttPeer(protocolVersion: 4 | 5): () => Promise<PeerUnderTest> {
  return async () => {
    const broker = await Mosquitto.start();
    return {
      kind: "mqtt",
      topic: (...levels) => levels.join("/"),
      one: "+",
      bridgeConfig: (name, mapping): MqttBridgeConfig => ({
        name,
        kind: "mqtt",
        url: broker.url,
        protocolVersion,
        mapping,
        reconnect: { initialMs: 50, maxMs: 500 },
      }),
      external: () => mqttExternal(broker.url, protocolVersion),
      outage: () => broker.stop(),
      recover: () => broker.restart(),
      close: () => broker[Symbol.asyncDispose](),
    };
  };
}

bridgeConformance("MQTT 3.1.1 (Mosquitto)", mqttPeer(4));
bridgeConformance("MQTT 5 (Mosquitto)", mqttPeer(5));

test(
  "MQTT bridge: messages queued while the broker is down survive a restart of the bridge",
  { timeout: 40000 },
  async () => {
    using rt = tempRuntime();
    await using broker = await Mosquitto.start();
    const hub = await Hub.start({ runtimeDir: rt.dir });
    const app = await createNode({ name: "app", runtimeDir: rt.dir });
    const dataDir = join(rt.dir, "data");
    const cfg: MqttBridgeConfig = {
      name: "restartable",
      kind: "mqtt",
      url: broker.url,
      mapping: [
        { myelin: "/plant/cmd", external: "plant/cmd", type: "std_msgs/String", direction: "out", qos: 1 },
      ],
      reconnect: { initialMs: 50, maxMs: 300 },
    };
    const ext = await mqttExternal(broker.url);
    try {
      const got = await ext.collect("plant/cmd");
      const pub = await app.createPublisher("/plant/cmd", std_msgs.String);

      // First life of the bridge: the broker goes away, messages wait on disk, the bridge stops.
      const node1 = await createNode({ name: "_bridge_restartable", runtimeDir: rt.dir });
      const b1 = await startBridge(cfg, { node: node1, dataDir });
      await b1.waitConnected(10000);
      await until(() => b1.status().outTopics.includes("/plant/cmd"), 10000, "the bridge subscribing");
      await broker.stop();
      await until(() => b1.status().state !== "connected", 10000, "the bridge noticing");
      for (let i = 0; i < 25; i++) await pub.publish({ data: `c${i}` });
      await until(() => b1.status().queue?.messages === 25, 10000, "25 queued messages");
      await b1.close();
      await node1.close();

      // Second life: the queue is read back and delivered once the broker returns.
      await broker.restart();
      const node2 = await createNode({ name: "_bridge_restartable", runtimeDir: rt.dir });
      const b2 = await startBridge(cfg, { node: node2, dataDir });
      try {
        assert.equal(b2.status().queue?.recovered, 25);
        await got.until(() => got.texts().size >= 25, 20000, "the 25 queued messages");
        assert.deepEqual(
          [...got.texts()].map((t) => (JSON.parse(t) as { data: string }).data),
          Array.from({ length: 25 }, (_, i) => `c${i}`),
        );
        await until(() => b2.status().queue?.messages === 0, 10000, "the queue to drain");
      } finally {
        await b2.close();
        await node2.close();
      }
    } finally {
      await ext.close();
      await app.close();
      hub.close();
    }
  },
);
