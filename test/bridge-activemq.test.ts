/**
 * The MQTT bridge's conformance suite against Apache ActiveMQ 5.17 (Debian's `activemq`), which
 * speaks MQTT 3.1.1 (not 5) through its MQTT connector: typed messages both ways, refused
 * payloads, and a broker outage mid-stream (ActiveMQ stopped and started again on the same port
 * and KahaDB store). Skipped, saying why, when the package or Java is missing.
 */
import { test } from "node:test";
import type { MqttBridgeConfig } from "../src/gateway/bridge-config.js";
import { ActiveMq, activeMqUnavailable } from "./activemq-peer.js";
import { bridgeConformance } from "./bridge-conformance.js";
import { mqttExternal } from "./mqtt-external.js";

const missing = activeMqUnavailable();
if (missing !== undefined) {
  test("bridge conformance: MQTT 3.1.1 (ActiveMQ 5.17)", { skip: missing }, () => undefined);
} else {
  bridgeConformance("MQTT 3.1.1 (ActiveMQ 5.17)", async () => {
    const broker = await ActiveMq.start();
    return {
      kind: "mqtt",
      topic: (...levels) => levels.join("/"),
      one: "+",
      bridgeConfig: (name, mapping): MqttBridgeConfig => ({
        name,
        kind: "mqtt",
        url: broker.url,
        protocolVersion: 4,
        mapping,
        reconnect: { initialMs: 50, maxMs: 500 },
      }),
      external: () => mqttExternal(broker.url, 4),
      outage: () => broker.stop(),
      recover: () => broker.restart(),
      close: () => broker[Symbol.asyncDispose](),
    };
  });
}
