/**
 * The NATS backend of the bridges (nats.js). QoS 0 rules ride core NATS: fire and forget out,
 * a plain subscription in. QoS 1 rules ride JetStream:
 *
 * - Outbound: `js.publish` through the offline queue, acknowledged by the stream's PubAck, with
 *   the queue's stable message id as `Nats-Msg-Id`, so a message sent twice (after a reconnect
 *   or a restart of the bridge) is stored once within the stream's duplicate window.
 * - Inbound: one durable pull consumer per inbound pattern (`<durablePrefix>-<hash>`, explicit
 *   acks, deliver-new on creation); a message is acked after its Myelin publish resolved, and
 *   terminated (never redelivered) when it is refused.
 * - The stream can be created by the bridge (`jetstream.create: true`, file storage).
 *
 * One connection at a time with nats.js's reconnect off: the engine reconnects with backoff.
 * Core subscriptions use `noEcho`, and JetStream messages the bridge published itself carry a
 * `Myelin-Bridge` header and are skipped inbound, so `both` rules do not loop.
 */
import { createHash } from "node:crypto";
import type { ConnectionOptions, ConsumerMessages, JetStreamClient, NatsConnection } from "nats";
import { natsLib } from "./libs.js";
import { MyelinError } from "../errors.js";
import type { NatsBridgeConfig } from "./bridge-config.js";
import type { BrokerLink, LinkHandlers, OutgoingMessage } from "./bridge.js";
import type { TopicMap } from "./mapping.js";
import { explainNatsConnectError, natsLoginOptions, type NatsField } from "./nats-login.js";

const ORIGIN_HEADER = "Myelin-Bridge";

/** The NATS link of a bridge (used by `startBridge`; exported for tests and custom hosts). */
export class NatsLink implements BrokerLink {
  readonly #cfg: NatsBridgeConfig;
  readonly #map: TopicMap;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #consumers: ConsumerMessages[] = [];

  constructor(cfg: NatsBridgeConfig, map: TopicMap) {
    this.#cfg = cfg;
    this.#map = map;
  }

  /** Durable consumer name of an inbound pattern. */
  durableName(pattern: string): string {
    const prefix = this.#cfg.jetstream?.durablePrefix ?? `myelin-${this.#cfg.name}`;
    return `${prefix}-${createHash("sha256").update(pattern).digest("hex").slice(0, 10)}`;
  }

  /** The stream's subjects when the bridge creates it: the QoS 1 patterns of both directions. */
  streamSubjects(): string[] {
    const js = this.#cfg.jetstream;
    if (js?.subjects !== undefined) return js.subjects;
    const prefix = this.#map.sitePrefix === "" ? "" : `${this.#map.sitePrefix}.`;
    const s = new Set<string>();
    for (const r of this.#map.rules) if (r.qos > 0) s.add(prefix + r.external);
    return [...s];
  }

  async connect(h: LinkHandlers, timeoutMs: number): Promise<void> {
    const c = this.#cfg;
    const opts: ConnectionOptions = {
      servers: c.url,
      name: `myelin-bridge-${c.name}`,
      reconnect: false,
      timeout: timeoutMs,
      noEcho: true,
    };
    const field: NatsField = (k) => `${k} of bridge ${c.name}`;
    Object.assign(opts, await natsLoginOptions(c, field));
    let nc: NatsConnection;
    try {
      nc = await natsLib().connect(opts);
    } catch (err) {
      throw new MyelinError(
        "ERR_BROKER",
        `cannot connect to ${c.url}: ${explainNatsConnectError(err, c, field, c.url)}`,
        { cause: err },
      );
    }
    this.#nc = nc;
    try {
      const subs = this.#map.externalSubscriptions();
      const jsCfg = c.jetstream;
      if (jsCfg !== undefined) {
        this.#js = nc.jetstream({ timeout: Math.min(timeoutMs, 5000) });
        const jsm = await nc.jetstreamManager({ timeout: Math.min(timeoutMs, 5000) });
        try {
          await jsm.streams.info(jsCfg.stream);
        } catch (err) {
          if (jsCfg.create !== true) {
            throw new MyelinError(
              "ERR_BROKER",
              `JetStream stream ${jsCfg.stream} is not there (${(err as Error).message}); create it, or set jetstream.create: true`,
              { cause: err },
            );
          }
          await jsm.streams.add({
            name: jsCfg.stream,
            subjects: this.streamSubjects(),
            storage: natsLib().StorageType.File,
          });
        }
        for (const s of subs.filter((x) => x.qos > 0)) {
          const durable = this.durableName(s.pattern);
          try {
            await jsm.consumers.info(jsCfg.stream, durable);
          } catch {
            await jsm.consumers.add(jsCfg.stream, {
              durable_name: durable,
              ack_policy: natsLib().AckPolicy.Explicit,
              deliver_policy: natsLib().DeliverPolicy.New,
              filter_subject: s.pattern,
              max_ack_pending: jsCfg.maxAckPending ?? 256,
            });
          }
          const consumer = await this.#js.consumers.get(jsCfg.stream, durable);
          const msgs = await consumer.consume({ max_messages: Math.min(jsCfg.maxAckPending ?? 256, 256) });
          this.#consumers.push(msgs);
          void (async () => {
            for await (const m of msgs) {
              if (m.headers?.get(ORIGIN_HEADER) === c.name) {
                m.ack();
                continue;
              }
              const r = await h.inbound(m.subject, m.data);
              if (r.ok) m.ack();
              else m.term();
            }
          })().catch(() => undefined);
        }
      }
      for (const s of subs.filter((x) => x.qos === 0)) {
        const sub = nc.subscribe(s.pattern);
        void (async () => {
          for await (const m of sub) await h.inbound(m.subject, m.data);
        })().catch(() => undefined);
      }
      await nc.flush();
    } catch (err) {
      throw err instanceof MyelinError
        ? err
        : new MyelinError("ERR_BROKER", `setting up on ${c.url} failed: ${(err as Error).message}`, {
            cause: err,
          });
    }
    void nc.closed().then((err) => {
      if (this.#nc === nc)
        h.disconnected(err instanceof Error ? err : new Error("connection to NATS closed"));
    });
  }

  async publish(m: OutgoingMessage): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) throw new MyelinError("ERR_BROKER", "not connected to NATS");
    if (m.qos === 0 || this.#js === undefined) {
      nc.publish(m.topic, m.payload);
      return;
    }
    const h = natsLib().headers();
    h.set(ORIGIN_HEADER, this.#cfg.name);
    const opts: { headers: typeof h; msgID?: string } = { headers: h };
    if (m.id !== undefined) opts.msgID = m.id;
    await this.#js.publish(m.topic, m.payload, opts);
  }

  async close(): Promise<void> {
    const nc = this.#nc;
    this.#nc = undefined;
    this.#js = undefined;
    for (const c of this.#consumers.splice(0)) c.stop();
    if (nc !== undefined && !nc.isClosed()) await nc.close().catch(() => undefined);
  }
}
