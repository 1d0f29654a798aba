/**
 * The AMQP bridge against the machine's RabbitMQ (127.0.0.1:5672, guest/guest), through the
 * conformance suite. Exchange and queue names are unique to this run and deleted afterwards. The
 * outage is a TCP proxy between the bridge and RabbitMQ cutting every connection: the broker
 * itself is shared, so it is not restarted.
 */
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import type { AmqpBridgeConfig } from "../src/gateway/bridge-config.js";
import { bridgeConformance, Collected, type ExternalClient } from "./bridge-conformance.js";
import { rabbitUrl, TcpProxy } from "./bridge-peers.js";

async function amqpExternal(url: string, exchange: string): Promise<ExternalClient> {
  const conn = await amqp.connect(url);
  const pub = await conn.createConfirmChannel();
  const sub = await conn.createChannel();
  return {
    async publish(topic, payload) {
      await new Promise<void>((resolve, reject) => {
        pub.publish(exchange, topic, Buffer.from(payload), { persistent: true }, (err: unknown) =>
          err ? reject(new Error("nack")) : resolve(),
        );
      });
    },
    async collect(pattern) {
      const got = new Collected();
      const q = await sub.assertQueue("", { exclusive: true, autoDelete: true });
      await sub.bindQueue(q.queue, exchange, pattern);
      await sub.consume(
        q.queue,
        (m) => {
          if (m === null) return;
          got.push(m.fields.routingKey, m.content);
          sub.ack(m);
        },
        { noAck: false },
      );
      return got;
    },
    async close() {
      await conn.close();
    },
  };
}

bridgeConformance("AMQP 0-9-1 (RabbitMQ)", async () => {
  const url = await rabbitUrl();
  const run = `myelin-test-${process.pid}-${randomBytes(3).toString("hex")}`;
  const exchange = `${run}.x`;
  const queues: string[] = [];
  const admin = await amqp.connect(url);
  const ch = await admin.createChannel();
  await ch.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
  const proxy = await TcpProxy.start(5672);
  return {
    kind: "amqp",
    topic: (...levels) => levels.join("."),
    one: "*",
    bridgeConfig: (name, mapping): AmqpBridgeConfig => {
      const inboundQueue = `${run}.${name}`;
      queues.push(inboundQueue);
      return {
        name,
        kind: "amqp",
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}`,
        exchange,
        declareExchange: false,
        inboundQueue,
        mapping,
        reconnect: { initialMs: 50, maxMs: 500 },
      };
    },
    external: () => amqpExternal(url, exchange),
    outage: () => {
      proxy.cut();
      return Promise.resolve();
    },
    recover: () => {
      proxy.restore();
      return Promise.resolve();
    },
    async close() {
      for (const q of queues) await ch.deleteQueue(q);
      await ch.deleteExchange(exchange);
      await admin.close();
      await proxy[Symbol.asyncDispose]();
    },
  };
});
