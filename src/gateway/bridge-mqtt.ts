/**
 * The MQTT backend of the bridges (MQTT.js; MQTT 3.1.1 or 5 — a bridge to an MQTT 5 broker is how
 * MQTT 5 devices are served). One MQTT.js client per connection, with MQTT.js's own reconnect
 * off: the bridge engine reconnects with backoff, and the offline queue, not MQTT.js's in-memory
 * store, keeps what waits for the broker.
 *
 * - Outbound QoS 1/2: `publish` resolves on PUBACK / PUBCOMP.
 * - Inbound: MQTT.js hands messages over one at a time; the PUBACK (QoS 1) or PUBCOMP (QoS 2) is
 *   sent only after the Myelin publish resolved.
 * - The session is persistent by default (`cleanSession: false`, a stable client id), so the
 *   broker keeps the bridge's subscriptions and queues QoS 1 messages while it is away.
 * - With MQTT 5, subscriptions use No Local, so a `both` rule does not echo the bridge's own
 *   messages back into Myelin (MQTT 3.1.1 has no such option: prefer separate in and out rules).
 */
import { mqttLib } from "./libs.js";
import type { IClientOptions, MqttClient } from "mqtt";
import { ClosedError, MyelinError } from "../errors.js";
import type { MqttBridgeConfig } from "./bridge-config.js";
import type { BrokerLink, LinkHandlers, OutgoingMessage } from "./bridge.js";
import type { TopicMap } from "./mapping.js";

/** The MQTT link of a bridge (used by `startBridge`; exported for tests and custom hosts). */
export class MqttLink implements BrokerLink {
  readonly #cfg: MqttBridgeConfig;
  readonly #map: TopicMap;
  #client: MqttClient | undefined;
  readonly #pending = new Set<(err: Error) => void>();

  constructor(cfg: MqttBridgeConfig, map: TopicMap) {
    this.#cfg = cfg;
    this.#map = map;
  }

  #options(timeoutMs: number): IClientOptions {
    const c = this.#cfg;
    const o: IClientOptions = {
      clientId: c.clientId ?? `myelin-${c.name}`,
      clean: c.cleanSession ?? false,
      protocolVersion: c.protocolVersion ?? 4,
      keepalive: c.keepaliveSec ?? 30,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      resubscribe: false,
      queueQoSZero: false,
    };
    if (c.username !== undefined) o.username = c.username;
    const password = c.password ?? (c.passwordEnv !== undefined ? process.env[c.passwordEnv] : undefined);
    if (password !== undefined) o.password = password;
    if (o.protocolVersion === 5 && o.clean === false) {
      // MQTT 5: a session ends when the connection does unless it has an expiry; keep it a day.
      o.properties = { sessionExpiryInterval: 86400 };
    }
    return o;
  }

  connect(h: LinkHandlers, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const client = mqttLib().connect(this.#cfg.url, this.#options(timeoutMs));
      this.#client = client;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new MyelinError("ERR_BROKER", `no CONNACK from ${this.#cfg.url} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      client.handleMessage = (packet, done) => {
        const topic = packet.topic;
        const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
        h.inbound(topic, payload).then(
          () => done(),
          (err: unknown) => done(err as Error),
        );
      };
      client.on("error", (err) => {
        const code = (err as { code?: unknown }).code;
        const msg =
          typeof code === "number"
            ? `the broker refused the connection: ${err.message} (reason ${code})`
            : err.message;
        if (!settled) fail(new MyelinError("ERR_BROKER", msg, { cause: err }));
      });
      client.on("close", () => {
        this.#failPending(new MyelinError("ERR_BROKER", "connection to the broker closed"));
        if (!settled)
          fail(new MyelinError("ERR_BROKER", `connection to ${this.#cfg.url} closed before CONNACK`));
        else h.disconnected(new Error("connection to the broker closed"));
      });
      client.once("connect", () => {
        const subs = this.#map.externalSubscriptions();
        if (subs.length === 0) {
          settled = true;
          clearTimeout(timer);
          resolve();
          return;
        }
        const map: Record<string, { qos: 0 | 1 | 2; nl?: boolean }> = {};
        for (const s of subs)
          map[s.pattern] = this.#cfg.protocolVersion === 5 ? { qos: s.qos, nl: true } : { qos: s.qos };
        client.subscribe(map, (err, granted) => {
          if (settled) return;
          const refused = (granted ?? []).filter((g) => g.qos === 128 || g.qos > 2);
          if (err) fail(new MyelinError("ERR_BROKER", `subscribing failed: ${err.message}`, { cause: err }));
          else if (refused.length > 0) {
            fail(
              new MyelinError(
                "ERR_BROKER",
                `the broker refused the subscription to ${refused.map((g) => g.topic).join(", ")}; check its ACLs`,
              ),
            );
          } else {
            settled = true;
            clearTimeout(timer);
            resolve();
          }
        });
      });
    });
  }

  #failPending(err: Error): void {
    const list = [...this.#pending];
    this.#pending.clear();
    for (const f of list) f(err);
  }

  publish(m: OutgoingMessage): Promise<void> {
    const client = this.#client;
    if (client === undefined || !client.connected) {
      return Promise.reject(new MyelinError("ERR_BROKER", "not connected to the broker"));
    }
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const fail = (err: Error): void => {
        if (done) return;
        done = true;
        this.#pending.delete(fail);
        reject(err);
      };
      this.#pending.add(fail);
      client.publish(
        m.topic,
        Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
        { qos: m.qos },
        (err, packet) => {
          if (done) return;
          done = true;
          this.#pending.delete(fail);
          const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode;
          if (err) reject(err);
          else if (rc !== undefined && rc >= 0x80)
            reject(new MyelinError("ERR_BROKER", `the broker refused the message (reason ${rc})`));
          else resolve();
        },
      );
    });
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    client.removeAllListeners("close");
    this.#failPending(new ClosedError("ERR_CLOSED", "the bridge closed the connection"));
    client.on("error", () => undefined);
    await new Promise<void>((resolve) => {
      client.end(true, {}, () => resolve());
    });
  }
}
