/**
 * The metrics of the hub's other parts, each real: the MQTT gateway (an MQTT client connects and
 * publishes), a NATS bridge to a nats-server the test starts (a topic forwarded out), the Foxglove
 * server (listening), and shared memory; scraped over HTTP and read with the strict parser.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import mqtt from "mqtt";
import { startHubProcess } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { std_msgs } from "../src/msgs/index.js";
import { bridgesPlugin, mqttGatewayPlugin, type RunningGatewayPlugin } from "../src/gateway/index.js";
import { foxglovePlugin } from "../src/foxglove/index.js";
import { metricsPlugin, type RunningMetricsPlugin } from "../src/web/index.js";
import { NatsServer, tempDir } from "./bridge-peers.js";
import { parseExposition, sample, type Exposition } from "./prom-text.js";

async function scrapeUntil(url: string, what: string, pred: (e: Exposition) => boolean): Promise<Exposition> {
  const end = Date.now() + 20000;
  for (;;) {
    const e = parseExposition(await (await fetch(url)).text());
    if (pred(e)) return e;
    if (Date.now() > end) {
      const seen = [...e.samples].filter(([k]) => /^myelin_(gateway|bridge|foxglove|shm)_/.test(k));
      throw new Error(`timed out waiting for ${what}:\n${seen.map(([k, v]) => `${k} ${v}`).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(
  "MQTT gateway, NATS bridge, Foxglove server and shared memory in the metrics",
  { timeout: 60_000 },
  async () => {
    using tmp = tempDir("wt-metrics-parts-");
    await using nats = await NatsServer.start();
    const hub = await startHubProcess({
      hub: { runtimeDir: join(tmp.dir, "run") },
      plugins: [
        mqttGatewayPlugin({
          listeners: { tcp: { port: 0, host: "127.0.0.1" } },
          mapping: [
            { myelin: "/plant/+/temp", external: "plant/+/temp", type: "std_msgs/Float64", direction: "in" },
          ],
        }),
        bridgesPlugin({
          bridges: [
            {
              name: "cloud",
              kind: "nats",
              url: nats.url,
              mapping: [{ myelin: "/alarm", external: "alarm", type: "std_msgs/String", direction: "out" }],
            },
          ],
        }),
        foxglovePlugin({ port: 0, token: "t0ken" }),
        metricsPlugin({ address: { host: "127.0.0.1", port: 0 }, version: "test", processMetrics: false }),
      ],
    });
    const url = (hub.plugins.get("metrics") as RunningMetricsPlugin).url;
    const port = (hub.plugins.get("gateway") as RunningGatewayPlugin).gateway.port("tcp")!;
    const node = await createNode({ name: "parts", runtimeDir: join(tmp.dir, "run") });
    const client = mqtt.connect({ host: "127.0.0.1", port, clientId: "wtm-dev", reconnectPeriod: 0 });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once("connect", () => resolve());
        client.once("error", reject);
      });
      await client.publishAsync("plant/p1/temp", JSON.stringify({ data: 21.5 }), { qos: 1 });
      const alarm = await node.createPublisher("/alarm", std_msgs.String);
      const B = { bridge: "cloud", kind: "nats" };
      const e = await scrapeUntil(url, "the gateway's client and message, the bridge forwarding", (x) => {
        if ((sample(x, "myelin_bridge_messages_forwarded_total", B) ?? 0) < 1)
          void alarm.publish({ data: "fire" });
        return (
          sample(x, "myelin_gateway_clients") === 1 &&
          (sample(x, "myelin_gateway_messages_received_total") ?? 0) >= 1 &&
          (sample(x, "myelin_gateway_to_myelin_total") ?? 0) >= 1 &&
          sample(x, "myelin_bridge_connected", B) === 1 &&
          (sample(x, "myelin_bridge_messages_forwarded_total", B) ?? 0) >= 1
        );
      });
      assert.equal(sample(e, "myelin_bridge_disconnects_total", B), 0);
      assert.equal(sample(e, "myelin_bridge_errors_total", B), 0);
      assert.equal(sample(e, "myelin_foxglove_clients"), 0);
      assert.equal(sample(e, "myelin_foxglove_connections_refused_total", { reason: "bad_token" }), 0);
      assert.ok((sample(e, "myelin_foxglove_channels") ?? -1) >= 0);
      assert.ok(sample(e, "myelin_shm_available") === 0 || sample(e, "myelin_shm_available") === 1);
      assert.equal(e.types.get("myelin_shm_descriptors_refused_total"), "counter");
      // The client leaves: the gauge follows, the counters stay.
      await client.endAsync();
      await scrapeUntil(
        url,
        "the client gone",
        (x) =>
          sample(x, "myelin_gateway_clients") === 0 &&
          (sample(x, "myelin_gateway_messages_received_total") ?? 0) >= 1,
      );
    } finally {
      client.end(true);
      await node.close();
      await hub.close();
    }
  },
);
