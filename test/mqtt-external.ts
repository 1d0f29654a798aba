/**
 * An MQTT client outside Myelin for the bridge conformance suite (bridge-conformance.ts): a
 * persistent-session publisher with QoS 1, and collectors each on their own persistent session, so
 * what they subscribed to survives a broker restart. Used against Mosquitto and ActiveMQ.
 */
import mqtt from "mqtt";
import { Collected, type ExternalClient } from "./bridge-conformance.js";

let clients = 0;

/** An external MQTT client of the broker at `url`. */
export async function mqttExternal(url: string, protocolVersion: 4 | 5 = 4): Promise<ExternalClient> {
  const opened: mqtt.MqttClient[] = [];
  const open = async (): Promise<mqtt.MqttClient> => {
    const c = await mqtt.connectAsync(url, {
      clientId: `ext-${process.pid}-${++clients}`,
      clean: false,
      protocolVersion,
      reconnectPeriod: 100,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    });
    c.on("error", () => undefined);
    opened.push(c);
    return c;
  };
  const publisher = await open();
  return {
    async publish(topic, payload) {
      await publisher.publishAsync(topic, Buffer.from(payload), { qos: 1 });
    },
    async collect(pattern) {
      const c = await open();
      const got = new Collected();
      c.on("message", (topic, payload) => got.push(topic, payload));
      await c.subscribeAsync(pattern, { qos: 1 });
      return got;
    },
    async close() {
      await Promise.all(opened.map((c) => c.endAsync(true)));
    },
  };
}
