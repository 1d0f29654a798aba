/**
 * The receiving end of store-and-forward: a durable JetStream pull consumer on one stream (a
 * site's exports in the cloud, the commands of a site at the site) that appends each message to
 * a local durable topic and acknowledges it only once the store confirmed the append.
 *
 * Order and duplicates are enforced per subject with the sender's headers: a message is stored
 * when `prev <= last < seq` (`last`: the newest sequence number stored for the subject); a message
 * with `seq <= last` is a duplicate (acked, not stored); a message whose `prev` is ahead of `last`
 * came before one it follows (a gap left by a failed publish, filled by the resend) and is
 * refused with a delay (nak) until the missing one is stored. `last` per subject is kept in a
 * state file written atomically after the appends and before the acks; a crash between the two
 * redelivers messages the store already holds, which the store's deduplication window (by the
 * message's `Nats-Msg-Id`) stores once.
 */
import { readFile } from "node:fs/promises";
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "nats";
import { natsLib } from "./libs.js";
import type { StoreClient } from "../node/index.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { intHeader, topicOfSubject, UPLINK_HEADERS } from "./uplink-subjects.js";

/** Options of an {@link Ingest}. */
export interface IngestOptions {
  stream: string;
  /** The durable consumer's name. */
  durable: string;
  /** What the subjects look like: `sites.<site>.…` or `cmd.<site>.…`. */
  kind: "sites" | "cmd";
  site: string;
  /** The local topic of a remote topic; undefined refuses the message (terminated, counted). */
  target(topic: string): string | undefined;
  store: StoreClient;
  /** The file of the per-subject positions. */
  statePath: string;
  log(line: string): void;
  /** Messages waiting for their ack at most (default 1024). */
  maxAckPending?: number;
  /** How long JetStream waits for an ack before redelivering, in ms (default 10000). */
  ackWaitMs?: number;
}

/** What an ingest reports. */
export interface IngestStatus {
  stream: string;
  durable: string;
  /** Messages stored locally (since start). */
  stored: number;
  /** Messages already stored (sent twice), acked and dropped. */
  duplicates: number;
  /** Messages that came before one they follow, refused with a delay until it came. */
  outOfOrder: number;
  /** Messages refused for good (not an imported topic, not from an uplink, refused by the store). */
  refused: number;
  /** The newest sequence number stored, per subject. */
  subjects: Record<string, number>;
  running: boolean;
  lastError?: string;
}

interface Pending {
  m: JsMsg;
  subject: string;
  seq: number;
  before: number;
  target: string;
  type: string;
  msgId: string;
  ok?: boolean;
}

/** Consumes one stream into local durable topics. */
export class Ingest {
  readonly #o: IngestOptions;
  /** Newest seq accepted per subject (appends may still be on their way). */
  readonly #accepted = new Map<string, number>();
  /** Newest seq whose append the store confirmed, per subject (what the state file holds). */
  readonly #durable = new Map<string, number>();
  #pending: Pending[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #msgs: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #stored = 0;
  #duplicates = 0;
  #outOfOrder = 0;
  #refused = 0;
  #lastError: string | undefined;

  private constructor(o: IngestOptions) {
    this.#o = o;
  }

  /** Loads the state file. @throws MyelinError ERR_STORAGE when it cannot be read */
  static async open(o: IngestOptions): Promise<Ingest> {
    const i = new Ingest(o);
    let text: string | undefined;
    try {
      text = await readFile(o.statePath, "utf8");
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        const v = JSON.parse(text) as Record<string, unknown>;
        for (const [k, n] of Object.entries(v)) {
          if (typeof n === "number" && Number.isSafeInteger(n)) {
            i.#accepted.set(k, n);
            i.#durable.set(k, n);
          }
        }
      } catch {
        o.log(
          `uplink ${o.stream}: ${o.statePath} is damaged; starting over (messages already stored are dropped by the store's deduplication window)`,
        );
      }
    }
    return i;
  }

  status(): IngestStatus {
    const s: IngestStatus = {
      stream: this.#o.stream,
      durable: this.#o.durable,
      stored: this.#stored,
      duplicates: this.#duplicates,
      outOfOrder: this.#outOfOrder,
      refused: this.#refused,
      subjects: Object.fromEntries(this.#durable),
      running: this.#msgs !== undefined,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    return s;
  }

  /**
   * Creates the durable consumer if missing and consumes until `stop()` or until the connection
   * is gone. Resolves once consuming started.
   */
  async start(js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    const o = this.#o;
    try {
      await jsm.consumers.info(o.stream, o.durable);
    } catch {
      await jsm.consumers.add(o.stream, {
        durable_name: o.durable,
        ack_policy: natsLib().AckPolicy.Explicit,
        deliver_policy: natsLib().DeliverPolicy.All,
        ack_wait: natsLib().nanos(o.ackWaitMs ?? 10_000),
        max_ack_pending: o.maxAckPending ?? 1024,
        max_deliver: -1,
      });
    }
    const consumer = await js.consumers.get(o.stream, o.durable);
    const msgs = await consumer.consume({ max_messages: Math.min(o.maxAckPending ?? 1024, 512) });
    this.#msgs = msgs;
    this.#loop = (async () => {
      for await (const m of msgs) this.#onMessage(m);
    })()
      .catch((err: unknown) => {
        this.#lastError = (err as Error).message;
      })
      .finally(() => {
        if (this.#msgs === msgs) this.#msgs = undefined;
      });
  }

  #onMessage(m: JsMsg): void {
    const o = this.#o;
    const topic = topicOfSubject(o.kind, o.site, m.subject);
    const target = topic === undefined ? undefined : o.target(topic);
    let seq: number;
    let prev: number;
    const type = m.headers?.get(UPLINK_HEADERS.type) ?? "";
    try {
      seq = intHeader(m.headers?.get(UPLINK_HEADERS.seq), UPLINK_HEADERS.seq, m.subject);
      prev = intHeader(m.headers?.get(UPLINK_HEADERS.prev), UPLINK_HEADERS.prev, m.subject);
      if (type === "") throw new Error(`message on ${m.subject} has no ${UPLINK_HEADERS.type} header`);
    } catch (err) {
      this.#refuse(m, (err as Error).message);
      return;
    }
    if (target === undefined) {
      this.#refuse(m, `${m.subject} is not a topic this hub takes from ${o.stream}`);
      return;
    }
    const last = this.#accepted.get(m.subject) ?? 0;
    if (seq <= last) {
      this.#duplicates++;
      m.ack();
      return;
    }
    if (prev > last) {
      this.#outOfOrder++;
      m.nak(200);
      return;
    }
    this.#accepted.set(m.subject, seq);
    const msgId = m.headers?.get("Nats-Msg-Id") ?? "";
    this.#pending.push({ m, subject: m.subject, seq, before: last, target, type, msgId });
    if (this.#pending.length >= 256) this.#flush();
    else this.#flushTimer ??= setTimeout(() => this.#flush(), 2);
  }

  #refuse(m: JsMsg, why: string): void {
    this.#refused++;
    this.#lastError = why;
    this.#o.log(`uplink ${this.#o.stream}: refused: ${why}`);
    m.term();
  }

  /** Appends the batch, waits for the store, saves the positions, then acks (or naks what failed). */
  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    this.#flushing = this.#flushing.then(async () => {
      // One append request at a time, all of the batch in one event-loop turn (one request per
      // topic, in order): concurrent requests to the store are not ordered among themselves.
      const done = batch.map((p) =>
        this.#o.store.append(p.target, p.type, p.m.data, p.msgId === "" ? undefined : p.msgId).then(
          () => (p.ok = true),
          (err: unknown) => {
            p.ok = false;
            this.#lastError = (err as Error).message;
          },
        ),
      );
      await Promise.all(done);
      for (const p of batch) {
        if (p.ok === true) {
          if ((this.#durable.get(p.subject) ?? 0) < p.seq) this.#durable.set(p.subject, p.seq);
        } else {
          // Not stored: take the subject back to before it, so the redelivery is accepted.
          const a = this.#accepted.get(p.subject) ?? 0;
          this.#accepted.set(p.subject, Math.min(a, p.before));
        }
      }
      try {
        await writeFileAtomic(this.#o.statePath, JSON.stringify(Object.fromEntries(this.#durable)) + "\n");
      } catch (err) {
        this.#lastError = (err as Error).message;
        this.#o.log(`uplink ${this.#o.stream}: ${(err as Error).message}; messages will be redelivered`);
        for (const p of batch) p.m.nak(1000);
        return;
      }
      for (const p of batch) {
        if (p.ok === true) {
          this.#stored++;
          p.m.ack();
        } else p.m.nak(1000);
      }
    });
  }

  /** Stops consuming; waits for the appends under way and acks them. */
  async stop(): Promise<void> {
    const msgs = this.#msgs;
    this.#msgs = undefined;
    msgs?.stop();
    await this.#loop;
    this.#flush();
    await this.#flushing;
  }
}
