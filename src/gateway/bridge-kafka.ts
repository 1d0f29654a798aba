/**
 * The Apache Kafka backend of the bridges (kafkajs, pure JavaScript). Topic names are the
 * external topics; their `.`-separated parts are the levels the mapping matches.
 *
 * - Outbound: an idempotent producer (one producer id per connection, sequence numbers per
 *   partition) sending with `acks: all`; `publish` resolves when every in-sync replica has the
 *   message, and the engine then removes it from the offline queue. The message key is the topic
 *   (one partition per topic, so order is kept per topic); headers carry `myelin-id` (the offline
 *   queue's stable id, for consumers that deduplicate after a resend) and `myelin-bridge`.
 * - Inbound: a consumer group (default `myelin-<name>`) subscribed to the inbound topics
 *   (wildcard patterns as regular expressions, matched against the topics that exist when the
 *   bridge connects). Auto-commit is off: a message's offset is committed only after its Myelin
 *   publish resolved (refused messages are committed too, after being reported), one message at
 *   a time per partition, in order. A bridge that dies between the publish and the commit gets
 *   the message again (at least once).
 * - Messages the bridge produced itself (header `myelin-bridge` = its name) are skipped inbound,
 *   so `both` rules do not loop.
 *
 * One connection (producer and consumer) at a time; kafkajs retries a little, then the engine
 * reconnects with backoff. The bridge counts as connected once the producer is connected and the
 * consumer runs; the consumer joins its group in the background (after a bridge was killed, the
 * group waits up to `sessionTimeoutMs` for the dead member before it hands its partitions over),
 * so outbound messages flow meanwhile.
 */
import type { Consumer, Kafka, KafkaConfig, Message, Producer, SASLOptions } from "kafkajs";
import { MyelinError } from "../errors.js";
import type { KafkaBridgeConfig } from "./bridge-config.js";
import type { BrokerLink, LinkHandlers, OutgoingMessage } from "./bridge.js";
import type { TopicMap } from "./mapping.js";

/** kafkajs, loaded on the first connection (so processes without a Kafka bridge never load it). */
async function loadKafkajs(): Promise<typeof import("kafkajs")> {
  return (await import("kafkajs")).default;
}

/** Header naming the bridge that produced a message. */
export const KAFKA_ORIGIN_HEADER = "myelin-bridge";
/** Most messages in one produce request. */
const KAFKA_BATCH_MAX = 500;

/** Header carrying the offline queue's stable message id. */
export const KAFKA_ID_HEADER = "myelin-id";

/** The broker list of a Kafka bridge URL: `kafka://h1:9092,h2:9092`, `kafkas://…` or `h1:9092,h2:9092`. */
export function kafkaBrokers(url: string): { brokers: string[]; tls: boolean } {
  const m = /^(kafkas?):\/\//.exec(url);
  const rest = m === null ? url : url.slice(m[0].length);
  return { brokers: rest.split(",").filter((b) => b !== ""), tls: m?.[1] === "kafkas" };
}

/**
 * What a consumer subscribes to for an external pattern: the topic itself, or a regular
 * expression for a pattern with wildcards (`*` one level, `#` the rest).
 */
export function kafkaSubscription(pattern: string): string | RegExp {
  const levels = pattern.split(".");
  if (!levels.some((l) => l === "*" || l === "#")) return pattern;
  const re = levels
    .map((l, i) => {
      const sep = i === 0 ? "" : "\\.";
      if (l === "*") return `${sep}[A-Za-z0-9_-]+`;
      if (l === "#") return i === 0 ? ".*" : "(\\..*)?";
      return sep + l.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
    })
    .join("");
  return new RegExp(`^${re}$`);
}

/** The Kafka link of a bridge (used by `startBridge`; exported for tests and custom hosts). */
export class KafkaLink implements BrokerLink {
  readonly #cfg: KafkaBridgeConfig;
  readonly #map: TopicMap;
  #producer: Producer | undefined;
  #consumer: Consumer | undefined;
  /** Bumped on every connection, so a stale connection's failure is not reported. */
  #conn = 0;

  constructor(cfg: KafkaBridgeConfig, map: TopicMap) {
    this.#cfg = cfg;
    this.#map = map;
  }

  /** The consumer group of the inbound rules. */
  get groupId(): string {
    return this.#cfg.groupId ?? `myelin-${this.#cfg.name}`;
  }

  #client(kafkajs: typeof import("kafkajs"), timeoutMs: number): Kafka {
    const { Kafka: KafkaClient, logLevel } = kafkajs;
    const c = this.#cfg;
    const { brokers, tls } = kafkaBrokers(c.url);
    const opts: KafkaConfig = {
      clientId: c.clientId ?? `myelin-${c.name}`,
      brokers,
      connectionTimeout: Math.min(timeoutMs, 10000),
      requestTimeout: Math.max(timeoutMs, 5000),
      logLevel: logLevel.NOTHING,
      // A few quick retries inside kafkajs; beyond that the engine reconnects with its backoff.
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    };
    if (c.tls === true || tls) opts.ssl = true;
    if (c.sasl !== undefined) {
      const password =
        c.sasl.password ?? (c.sasl.passwordEnv !== undefined ? process.env[c.sasl.passwordEnv] : undefined);
      if (password === undefined) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `bridge ${c.name}: sasl.passwordEnv names ${c.sasl.passwordEnv ?? ""}, which is not set in the environment`,
        );
      }
      opts.sasl = { mechanism: c.sasl.mechanism, username: c.sasl.username, password } as SASLOptions;
    }
    return new KafkaClient(opts);
  }

  async connect(h: LinkHandlers, timeoutMs: number): Promise<void> {
    const c = this.#cfg;
    const conn = ++this.#conn;
    let down = false;
    const lost = (err: Error): void => {
      if (down || conn !== this.#conn) return;
      down = true;
      h.disconnected(err);
    };
    this.#lost = lost;
    const kafkajs = await loadKafkajs();
    const kafka = this.#client(kafkajs, timeoutMs);
    const needsProducer = this.#map.rules.some((r) => r.direction !== "in");
    const subs = this.#map.externalSubscriptions();
    try {
      if (needsProducer) {
        const producer = kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
          retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
        });
        this.#producer = producer;
        await producer.connect();
      }
      if (subs.length > 0) {
        const consumer = kafka.consumer({
          groupId: this.groupId,
          sessionTimeout: c.sessionTimeoutMs ?? 30000,
          allowAutoTopicCreation: false,
          maxWaitTimeInMs: 500,
          retry: {
            retries: 3,
            initialRetryTime: 100,
            maxRetryTime: 1000,
            restartOnFailure: () => Promise.resolve(false),
          },
        });
        this.#consumer = consumer;
        consumer.on(consumer.events.CRASH, (e) => lost(e.payload.error));
        await consumer.connect();
        await consumer.subscribe({
          topics: subs.map((s) => kafkaSubscription(s.pattern)),
          fromBeginning: c.fromBeginning ?? false,
        });
        await consumer.run({
          autoCommit: false,
          partitionsConsumedConcurrently: 1,
          eachMessage: async ({ topic, partition, message }) => {
            const origin = message.headers?.[KAFKA_ORIGIN_HEADER];
            if (origin === undefined || origin.toString() !== c.name) {
              const value = message.value ?? Buffer.alloc(0);
              const payload = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
              await h.inbound(topic, payload); // never rejects; refused messages are reported
            }
            // In Myelin (or refused and reported): only now is the offset committed.
            await consumer.commitOffsets([
              { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
            ]);
          },
        });
      }
    } catch (err) {
      await this.close();
      throw new MyelinError(
        "ERR_BROKER",
        `cannot connect to Kafka at ${kafkaBrokers(c.url).brokers.join(",")}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  #lost: (err: Error) => void = () => undefined;

  /**
   * Sends `m` with the messages waiting before it: one request at a time, each carrying every
   * message queued meanwhile (grouped by topic, in order), so the order of `publish` calls is the
   * order in each topic.
   */
  publish(m: OutgoingMessage): Promise<void> {
    if (this.#producer === undefined)
      return Promise.reject(new MyelinError("ERR_BROKER", "not connected to Kafka"));
    return new Promise<void>((resolve, reject) => {
      this.#outbox.push({ m, resolve, reject });
      if (!this.#sending) void this.#flush();
    });
  }

  readonly #outbox: { m: OutgoingMessage; resolve: () => void; reject: (err: Error) => void }[] = [];
  #sending = false;

  async #flush(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#outbox.length > 0) {
        const batch = this.#outbox.splice(0, KAFKA_BATCH_MAX);
        const p = this.#producer;
        if (p === undefined) {
          const err = new MyelinError("ERR_BROKER", "not connected to Kafka");
          for (const b of batch) b.reject(err);
          continue;
        }
        const byTopic = new Map<string, Message[]>();
        for (const { m } of batch) {
          const headers: Record<string, string> = { [KAFKA_ORIGIN_HEADER]: this.#cfg.name };
          if (m.id !== undefined) headers[KAFKA_ID_HEADER] = m.id;
          let list = byTopic.get(m.topic);
          if (list === undefined) byTopic.set(m.topic, (list = []));
          list.push({
            key: m.topic,
            value: Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
            headers,
          });
        }
        try {
          await p.sendBatch({
            acks: -1,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
          });
          for (const b of batch) b.resolve();
        } catch (err) {
          // kafkajs already retried: the connection (or a topic) is not usable; reconnect with backoff.
          const e = new MyelinError(
            "ERR_BROKER",
            `Kafka did not acknowledge ${[...byTopic.keys()].join(", ")}: ${(err as Error).message}`,
            { cause: err },
          );
          for (const b of batch) b.reject(e);
          if (p === this.#producer) this.#lost(e);
        }
      }
    } finally {
      this.#sending = false;
    }
  }

  async close(): Promise<void> {
    this.#conn++;
    const p = this.#producer;
    const c = this.#consumer;
    this.#producer = undefined;
    this.#consumer = undefined;
    await Promise.all([c?.disconnect().catch(() => undefined), p?.disconnect().catch(() => undefined)]);
  }
}
