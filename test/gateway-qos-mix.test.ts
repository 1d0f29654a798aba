/**
 * QoS 0, 1 and 2 publishes mixed on one topic that a client's overlapping subscriptions (QoS 1,
 * 0 and 2) all match, under load, through the hub's MQTT gateway: every QoS 1 and QoS 2 message
 * the gateway acknowledged reaches a clean and a persistent subscriber, once, at the highest QoS
 * of the matching subscriptions; after kill -9 of the hub mid-stream, the persistent session gets
 * every acknowledged message it had not received; after the restart both sessions are whole again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Store, type MqttClient } from "mqtt";
import { freePort } from "./bridge-peers.js";
import { tempRuntime, until, type Proc } from "./helpers.js";
import { connectMqtt, startGatewayHub } from "./mqtt-hub.js";

const SUBSCRIPTIONS = {
  "mix/#": { qos: 1 as const },
  "mix/a/+": { qos: 0 as const },
  "mix/+/b": { qos: 2 as const },
};
const TOPIC = "mix/a/b";

/** What one subscriber received: message labels (`q1-3-17`), how often, and at which QoS. */
class Received {
  readonly count = new Map<string, number>();
  readonly wrongQos: string[] = [];

  attach(client: MqttClient): void {
    client.on("message", (_t, payload, packet) => {
      const label = payload.toString();
      this.count.set(label, (this.count.get(label) ?? 0) + 1);
      const published = Number(label[1]);
      // Highest matching subscription is QoS 2: each message keeps the QoS it was published with.
      if (packet.qos !== published) this.wrongQos.push(`${label} at QoS ${packet.qos}`);
    });
  }

  missing(labels: Iterable<string>): string[] {
    return [...labels].filter((l) => !this.count.has(l));
  }
}

/** Publishes `n1` QoS 1 and `n2` QoS 2 messages while another client sends paced QoS 0 ones. */
async function publishMix(
  port: number,
  run: number,
  n1: number,
  n2: number,
  onAck: (label: string) => void,
): Promise<{ done: Promise<void>; clients: MqttClient[] }> {
  const p1 = (await connectMqtt(port, { clientId: `pub1-${run}` })).client;
  const p2 = (await connectMqtt(port, { clientId: `pub2-${run}` })).client;
  const p0 = (await connectMqtt(port, { clientId: `pub0-${run}` })).client;
  const acks: Promise<void>[] = [];
  for (let i = 0; i < n1; i++) {
    const label = `q1-${run}-${i}`;
    acks.push(p1.publishAsync(TOPIC, label, { qos: 1 }).then(() => onAck(label)));
  }
  // QoS 2 in windows of 50, as a device with a small in-flight window sends them.
  acks.push(
    (async () => {
      for (let i = 0; i < n2; i += 50) {
        const window: Promise<void>[] = [];
        for (let j = i; j < Math.min(n2, i + 50); j++) {
          const label = `q2-${run}-${j}`;
          window.push(p2.publishAsync(TOPIC, label, { qos: 2 }).then(() => onAck(label)));
        }
        await Promise.all(window);
      }
    })(),
  );
  let stop = false;
  const zeros = (async () => {
    for (let i = 0; !stop && p0.connected; i++) {
      p0.publish(TOPIC, `q0-${run}-${i}`, { qos: 0 });
      if (i % 10 === 9) await new Promise((r) => setImmediate(r));
    }
  })();
  const done = Promise.allSettled(acks).then(async () => {
    stop = true;
    await zeros;
  });
  return { done, clients: [p0, p1, p2] };
}

test(
  "mixed QoS on overlapping subscriptions under load: nothing acknowledged is lost, clean and persistent, across kill -9 of the hub",
  { timeout: 150000 },
  async () => {
    using rt = tempRuntime();
    const env = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_DATA_DIR: join(rt.dir, "data") };
    const port = await freePort();
    const clients: MqttClient[] = [];
    let hub: Proc = await startGatewayHub(port, env);
    try {
      const clean = new Received();
      const persistent = new Received();
      // The persistent subscriber's inbound QoS 2 state outlives its connection, as a device's
      // session state does: MQTT.js emits a QoS 2 message at PUBREL, so one the hub had PUBREL'd
      // when it was killed completes from this store after the restart.
      const persistentStore = new Store({ clean: false });
      const subscribe = async (id: string, isClean: boolean, into: Received): Promise<boolean> => {
        const opts = isClean
          ? { clientId: id, clean: true }
          : { clientId: id, clean: false, incomingStore: persistentStore };
        // Counting starts before the CONNACK: a resumed session's queued messages can come in the
        // same read as the CONNACK, and MQTT.js emits them before the connection's promise resolves.
        const c = await connectMqtt(port, opts, (client) => into.attach(client));
        clients.push(c.client);
        if (!c.sessionPresent) await c.client.subscribeAsync(SUBSCRIPTIONS);
        return c.sessionPresent;
      };
      assert.equal(await subscribe("sub-clean", true, clean), false);
      assert.equal(await subscribe("sub-persistent", false, persistent), false);

      // 1. Live: 3,000 QoS 1 and 300 QoS 2 messages among paced QoS 0 ones.
      const acked1 = new Set<string>();
      const run1 = await publishMix(port, 1, 3000, 300, (l) => acked1.add(l));
      clients.push(...run1.clients);
      await run1.done;
      assert.equal(acked1.size, 3300, "every publish was acknowledged");
      for (const [name, r] of [
        ["clean", clean],
        ["persistent", persistent],
      ] as const) {
        await until(() => r.missing(acked1).length === 0, 30000, `the ${name} session's messages`).catch(
          (err: Error) => {
            throw new Error(
              `${err.message}: ${r.missing(acked1).length} of 3300 missing, e.g. ${r.missing(acked1).slice(0, 5).join(", ")}`,
            );
          },
        );
      }
      for (const r of [clean, persistent]) {
        assert.deepEqual(r.wrongQos.slice(0, 5), []);
        const twice = [...acked1].filter((l) => r.count.get(l) !== 1);
        assert.deepEqual(
          twice.slice(0, 5),
          [],
          "each message once, whatever overlapping subscriptions match it",
        );
      }

      // 2. kill -9 of the hub while 3,000 QoS 1 and 200 QoS 2 messages stream in.
      const acked2 = new Set<string>();
      let killed = false;
      const run2 = await publishMix(port, 2, 3000, 200, (l) => {
        acked2.add(l);
        if (acked2.size >= 1000 && !killed) {
          killed = true;
          hub.kill("SIGKILL");
        }
      });
      clients.push(...run2.clients);
      await hub.exit(20000);
      assert.ok(killed, "the hub was killed mid-stream");
      for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
      void run2.done;
      hub = await startGatewayHub(port, env);
      assert.equal(await subscribe("sub-persistent", false, persistent), true, "the session survived");
      assert.equal(await subscribe("sub-clean", true, clean), false);
      await until(() => persistent.missing(acked2).length === 0, 30000, "the acknowledged messages").catch(
        (err: Error) => {
          throw new Error(
            `${err.message}: ${persistent.missing(acked2).length} of ${acked2.size} missing, e.g. ${persistent.missing(acked2).slice(0, 5).join(", ")}`,
          );
        },
      );

      // 3. After the restart, both sessions get everything again.
      const acked3 = new Set<string>();
      const run3 = await publishMix(port, 3, 1000, 100, (l) => acked3.add(l));
      clients.push(...run3.clients);
      await run3.done;
      assert.equal(acked3.size, 1100);
      for (const r of [clean, persistent]) {
        await until(() => r.missing(acked3).length === 0, 30000, "messages after the restart");
        assert.deepEqual(r.wrongQos.slice(0, 5), []);
      }
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      hub.kill("SIGTERM");
      await hub.exit(10000).catch(() => hub.kill("SIGKILL"));
    }
  },
);
