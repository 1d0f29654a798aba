/**
 * The AMQP 0-9-1 backend of the bridges (amqplib; RabbitMQ). Topics are routing keys on a topic
 * exchange (default `amq.topic`, which is also where RabbitMQ's MQTT plugin publishes).
 *
 * - Outbound: published on a ConfirmChannel; `publish` resolves when the broker confirmed it
 *   (QoS 1/2 messages are persistent and carry the offline queue's stable id as `messageId`).
 * - Inbound: a durable queue (default `myelin.<name>`) bound with the inbound patterns; manual
 *   acks, prefetch bounded; a delivery is acked after its Myelin publish resolved, rejected
 *   without requeue (to the queue's dead-letter exchange, if it has one) when it is refused, and
 *   redelivered by the broker if the connection drops first.
 *
 * Messages the bridge published carry `appId: myelin-bridge-<name>` and are skipped inbound, so
 * `both` rules do not loop. One connection at a time; the engine reconnects with backoff.
 */
import type amqp from "amqplib";
import { amqpLib } from "./libs.js";
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";
import { ClosedError, MyelinError } from "../errors.js";
import type { AmqpBridgeConfig } from "./bridge-config.js";
import type { BrokerLink, LinkHandlers, OutgoingMessage } from "./bridge.js";
import type { TopicMap } from "./mapping.js";

/** The AMQP link of a bridge (used by `startBridge`; exported for tests and custom hosts). */
export class AmqpLink implements BrokerLink {
  readonly #cfg: AmqpBridgeConfig;
  readonly #map: TopicMap;
  #conn: ChannelModel | undefined;
  #pub: ConfirmChannel | undefined;
  readonly #pending = new Set<(err: Error) => void>();

  constructor(cfg: AmqpBridgeConfig, map: TopicMap) {
    this.#cfg = cfg;
    this.#map = map;
  }

  /** The exchange messages go to and come from. */
  get exchange(): string {
    return this.#cfg.exchange ?? "amq.topic";
  }

  /** The queue inbound patterns are bound to. */
  get inboundQueue(): string {
    return this.#cfg.inboundQueue ?? `myelin.${this.#cfg.name}`;
  }

  get #appId(): string {
    return `myelin-bridge-${this.#cfg.name}`;
  }

  async connect(h: LinkHandlers, timeoutMs: number): Promise<void> {
    const c = this.#cfg;
    let conn: ChannelModel;
    try {
      const url = /[?&]heartbeat=/.test(c.url)
        ? c.url
        : `${c.url}${c.url.includes("?") ? "&" : "?"}heartbeat=${c.heartbeatSec ?? 15}`;
      conn = await amqpLib().connect(url, { timeout: timeoutMs });
    } catch (err) {
      throw new MyelinError("ERR_BROKER", `cannot connect to the AMQP broker: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.#conn = conn;
    let down = false;
    const lost = (err?: Error): void => {
      if (down || this.#conn !== conn) return;
      down = true;
      this.#failPending(new MyelinError("ERR_BROKER", "connection to the AMQP broker closed"));
      h.disconnected(err);
    };
    conn.on("error", () => undefined); // "close" follows
    conn.on("close", (err?: Error) => lost(err));
    try {
      const pub = await conn.createConfirmChannel();
      this.#pub = pub;
      pub.on("error", () => undefined);
      pub.on("close", () => lost(new Error("the publishing channel closed")));
      const declare = c.declareExchange ?? !this.exchange.startsWith("amq.");
      if (declare) await pub.assertExchange(this.exchange, "topic", { durable: true });
      else await pub.checkExchange(this.exchange);
      const subs = this.#map.externalSubscriptions();
      if (subs.length > 0) {
        const ch: Channel = await conn.createChannel();
        ch.on("error", () => undefined);
        ch.on("close", () => lost(new Error("the consuming channel closed")));
        await ch.assertQueue(this.inboundQueue, { durable: true });
        for (const s of subs) await ch.bindQueue(this.inboundQueue, this.exchange, s.pattern);
        await ch.prefetch(c.prefetch ?? 64);
        // Deliveries are handled one after the other, in order; each is acked when handled.
        let chain = Promise.resolve();
        const handle = async (msg: ConsumeMessage): Promise<void> => {
          if (msg.properties.appId === this.#appId) {
            ch.ack(msg);
            return;
          }
          const r = await h.inbound(msg.fields.routingKey, msg.content);
          if (down) return; // the broker redelivers it
          if (r.ok) ch.ack(msg);
          else ch.reject(msg, false);
        };
        await ch.consume(
          this.inboundQueue,
          (msg) => {
            if (msg === null) {
              lost(new Error(`the broker cancelled the consumer of ${this.inboundQueue}`));
              return;
            }
            chain = chain.then(() => handle(msg)).catch(() => undefined);
          },
          { noAck: false },
        );
      }
    } catch (err) {
      throw new MyelinError("ERR_BROKER", `setting up on the AMQP broker failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  #failPending(err: Error): void {
    const list = [...this.#pending];
    this.#pending.clear();
    for (const f of list) f(err);
  }

  publish(m: OutgoingMessage): Promise<void> {
    const pub = this.#pub;
    if (pub === undefined)
      return Promise.reject(new MyelinError("ERR_BROKER", "not connected to the AMQP broker"));
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const fail = (err: Error): void => {
        if (done) return;
        done = true;
        this.#pending.delete(fail);
        reject(err);
      };
      this.#pending.add(fail);
      const opts: amqp.Options.Publish = {
        persistent: m.qos > 0,
        appId: this.#appId,
        contentType: "application/octet-stream",
      };
      if (m.id !== undefined) opts.messageId = m.id;
      try {
        pub.publish(
          this.exchange,
          m.topic,
          Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
          opts,
          (err: unknown) => {
            if (done) return;
            done = true;
            this.#pending.delete(fail);
            if (err !== null && err !== undefined)
              reject(new MyelinError("ERR_BROKER", `the broker refused the message (nack)`));
            else resolve();
          },
        );
      } catch (err) {
        fail(new MyelinError("ERR_BROKER", `publishing failed: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    this.#pub = undefined;
    this.#failPending(new ClosedError("ERR_CLOSED", "the bridge closed the connection"));
    if (conn !== undefined) await conn.close().catch(() => undefined);
  }
}
