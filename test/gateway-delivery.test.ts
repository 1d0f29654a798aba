/**
 * The gateway's coalesced delivery path (mqtt-publish-writer) against a subscriber that stops
 * reading: the gateway's writes back up past the kernel's buffers, deliveries wait for the
 * connection to drain, and once the subscriber reads again it gets every message once, in order,
 * at the QoS of its subscription, large payloads (written as their own chunk) and small ones alike.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import mqtt, { type MqttClient } from "mqtt";
import { Hub } from "../src/hub/index.js";
import { MqttGateway } from "../src/gateway/mqtt-gateway.js";
import { tempRuntime, until } from "./helpers.js";

/** A TCP proxy in front of the gateway whose gateway-to-client direction can be stopped. */
async function valveProxy(target: number): Promise<{
  port: number;
  stop(): void;
  open(): void;
  close(): Promise<void>;
}> {
  const ups: net.Socket[] = [];
  const downs: net.Socket[] = [];
  let stopped = false;
  const server = net.createServer((down) => {
    const up = net.connect(target, "127.0.0.1");
    ups.push(up);
    downs.push(down);
    down.pipe(up);
    if (!stopped) up.pipe(down);
    else up.pause();
    const end = (): void => {
      up.destroy();
      down.destroy();
    };
    up.on("error", end).on("close", end);
    down.on("error", end).on("close", end);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    stop() {
      stopped = true;
      ups.forEach((up, i) => {
        up.unpipe(downs[i]);
        up.pause();
      });
    },
    open() {
      stopped = false;
      ups.forEach((up, i) => up.pipe(downs[i]!));
    },
    async close() {
      for (const s of [...ups, ...downs]) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect({
    host: "127.0.0.1",
    port,
    protocolVersion: 4,
    clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10000,
  });
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
  });
  return c;
}

test("a subscriber that stops reading gets every message once, in order, when it reads again", async () => {
  const rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir, nodeTimeoutMs: 1500 });
  const gw = await MqttGateway.start({
    listeners: { tcp: { port: 0, host: "127.0.0.1" } },
    runtimeDir: rt.dir,
    limits: { maxMessageBytes: 1024 * 1024 },
  });
  const proxy = await valveProxy(gw.port("tcp")!);
  const clients: MqttClient[] = [];
  try {
    const sub = await connect(proxy.port, "slow-sub");
    clients.push(sub);
    const got: { topic: string; label: number; qos: number; bytes: number; ok: boolean }[] = [];
    sub.on("message", (topic, payload, packet) => {
      const label = payload.readUInt32BE(0);
      // Every byte after the label is the label's low byte: a torn or mixed-up payload shows.
      const ok = payload.subarray(4).every((b) => b === (label & 0xff));
      got.push({ topic, label, qos: packet.qos, bytes: payload.length, ok });
    });
    await sub.subscribeAsync({ "stall/big": { qos: 1 }, "stall/small": { qos: 0 } });

    proxy.stop();
    const pub = await connect(gw.port("tcp")!, "fast-pub");
    clients.push(pub);
    // 12 MB of large payloads: more than loopback TCP buffers hold while the subscriber reads nothing.
    const N = 60;
    const BIG = 200 * 1024;
    const acks: Promise<unknown>[] = [];
    const body = (label: number, size: number): Buffer => {
      const b = Buffer.alloc(size, label & 0xff);
      b.writeUInt32BE(label, 0);
      return b;
    };
    for (let i = 0; i < N; i++) {
      acks.push(pub.publishAsync("stall/big", body(i, BIG), { qos: 1 }));
      acks.push(pub.publishAsync("stall/small", body(i, 48), { qos: 1 }));
    }
    // Deliveries were written while the subscriber was not reading.
    await until(() => gw.status().msgs_out >= 10, 20000, "deliveries to the stopped subscriber");
    proxy.open();
    await until(() => got.length >= 2 * N, 30000, `${2 * N} messages at the subscriber`);
    await Promise.all(acks);

    const big = got.filter((m) => m.topic === "stall/big");
    const small = got.filter((m) => m.topic === "stall/small");
    assert.deepEqual(
      big.map((m) => m.label),
      [...Array(N).keys()],
      "large payloads once each, in order",
    );
    assert.deepEqual(
      small.map((m) => m.label),
      [...Array(N).keys()],
      "small payloads once each, in order",
    );
    assert.ok(
      big.every((m) => m.qos === 1 && m.bytes === BIG && m.ok),
      "large payloads whole, at QoS 1",
    );
    assert.ok(
      small.every((m) => m.qos === 0 && m.bytes === 48 && m.ok),
      "small payloads whole, at the subscription's QoS 0",
    );
    assert.equal(got.length, 2 * N, "no message twice");
    assert.ok(sub.connected, "the subscriber was not disconnected");
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await proxy.close();
    await gw.close();
    hub.close();
    rt[Symbol.dispose]();
  }
});
