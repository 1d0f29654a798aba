/**
 * Store-and-forward of one durable topic to a JetStream stream. The topic's durable log is the
 * source of truth: the forwarder reads it from its forwarded position on, publishes each message
 * with `Nats-Msg-Id` = `<origin><topic>/<seq>` and the headers of {@link UPLINK_HEADERS}, keeps
 * at most `maxInFlight` publishes waiting for their PubAck, and moves its position (on disk,
 * fsync'd) only over messages JetStream acknowledged, in order. A failed publish (link cut, no
 * stream leader, timeout) stops sending; once every publish in flight has settled it goes back
 * to the first unacknowledged message and sends again from there. Messages sent twice are
 * stored once within the stream's duplicate window, and the consumer on the other side drops
 * what it already holds (by sequence number), so the far end sees each message once, in order.
 *
 * While NATS is unreachable the forwarder waits; the store keeps accepting messages. Messages
 * that retention removed before they were forwarded are counted (`lostToRetention`) and logged.
 */
import type { JetStreamClient, PubAck } from "nats";
import { natsLib } from "./libs.js";
import { MyelinError } from "../errors.js";
import type { StoreClient } from "../node/index.js";
import { loadPosition, savePosition } from "./uplink-position.js";
import type { RateLimiter } from "./uplink-rate.js";
import { forwardMsgId, UPLINK_HEADERS } from "./uplink-subjects.js";

/** Options of a {@link Forwarder}. */
export interface ForwarderOptions {
  /** The local durable topic. */
  topic: string;
  /** The subject it is published on. */
  subject: string;
  /** The first part of each `Nats-Msg-Id` (the site's name). */
  origin: string;
  store: StoreClient;
  /** The current JetStream client, or undefined while NATS is unreachable. */
  js(): JetStreamClient | undefined;
  /** Resolves when NATS may be reachable again (or on close). */
  connected(): Promise<void>;
  /** The file holding the forwarded position. */
  positionPath: string;
  maxInFlight: number;
  rate: RateLimiter;
  log(line: string): void;
  /** How long one publish waits for its PubAck, in ms (default 5000). */
  publishTimeoutMs?: number;
  /** Idle poll of the log when everything is forwarded, in ms (default 20). */
  pollMs?: number;
}

/** What a forwarder reports (`myelin uplink status`). */
export interface ForwarderStatus {
  topic: string;
  subject: string;
  /** Every message up to this sequence number is in the stream. */
  forwarded: number;
  /** The last sequence number of the local log (as of the last look). */
  last: number;
  /** Messages not yet acknowledged by JetStream. */
  lagMessages: number;
  /** Their size on disk, estimated from the log's average record, in bytes. */
  lagBytes: number;
  /** Age of the oldest unforwarded message, in ms (0 when none). */
  lagAgeMs: number;
  /** Messages published and acknowledged (since start). */
  published: number;
  /** Of those, acknowledged as duplicates (sent again after a cut or a restart). */
  duplicates: number;
  inFlight: number;
  /** Messages retention removed before they were forwarded (since start). */
  lostToRetention: number;
  /** How close the backlog is to the topic's retention limits (1 = the next message is lost). */
  retentionPressure: number;
  /** True while the pressure is 0.8 or more. */
  alarm: boolean;
  lastError?: string;
}

type Retention = { maxMessages?: number; maxBytes?: number; maxAgeMs?: number };

interface InFlight {
  seq: number;
  ts: number;
  state: "pending" | "ok" | "failed";
}

/** Forwards one durable topic. Start with {@link Forwarder.start}; stop with `close()`. */
export class Forwarder {
  readonly #o: ForwarderOptions;
  #start = 0;
  #forwarded = 0;
  #saved = 0;
  #saving: Promise<void> | undefined;
  #cursor = 0;
  #prevSent = 0;
  #inflight: InFlight[] = [];
  #failed: Error | undefined;
  #wakeHead: (() => void) | undefined;
  #closed = false;
  #loop: Promise<void> = Promise.resolve();
  #published = 0;
  #duplicates = 0;
  #lost = 0;
  #last = 0;
  #bytes = 0;
  #count = 0;
  #retention: Retention = {};
  #oldestTs = 0;
  #alarm = false;
  #lastError: string | undefined;
  #lastInfo = 0;

  private constructor(o: ForwarderOptions) {
    this.#o = o;
  }

  /**
   * Loads (or creates, at the topic's current first message) the forwarded position and starts
   * forwarding in the background.
   * @throws MyelinError ERR_STATE_CORRUPT for a damaged position file, ERR_STORAGE when it cannot be written
   */
  static async start(o: ForwarderOptions): Promise<Forwarder> {
    const f = new Forwarder(o);
    const p = await loadPosition(o.positionPath);
    if (p !== undefined) {
      f.#start = p.start;
      f.#forwarded = p.forwarded;
    } else {
      const info = await o.store.info({ topic: o.topic });
      f.#start = info.exists ? Math.max(0, info.first_seq - 1) : 0;
      f.#forwarded = f.#start;
      await savePosition(o.positionPath, { start: f.#start, forwarded: f.#forwarded });
    }
    f.#saved = f.#forwarded;
    f.#cursor = f.#forwarded;
    f.#prevSent = f.#forwarded;
    f.#loop = f.#run();
    return f;
  }

  get topic(): string {
    return this.#o.topic;
  }

  /** Everything up to this sequence number is acknowledged by JetStream. */
  get forwarded(): number {
    return this.#forwarded;
  }

  status(): ForwarderStatus {
    const lag = Math.max(0, this.#last - this.#forwarded);
    const lagBytes = this.#count > 0 ? Math.round((this.#bytes / this.#count) * lag) : 0;
    const lagAgeMs = lag > 0 && this.#oldestTs > 0 ? Math.max(0, Date.now() - this.#oldestTs) : 0;
    const s: ForwarderStatus = {
      topic: this.#o.topic,
      subject: this.#o.subject,
      forwarded: this.#forwarded,
      last: this.#last,
      lagMessages: lag,
      lagBytes,
      lagAgeMs,
      published: this.#published,
      duplicates: this.#duplicates,
      inFlight: this.#inflight.length,
      lostToRetention: this.#lost,
      retentionPressure: this.#pressure(lag, lagBytes, lagAgeMs),
      alarm: this.#alarm,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    return s;
  }

  #pressure(lag: number, lagBytes: number, ageMs: number): number {
    const r = this.#retention;
    let p = 0;
    if (r.maxMessages !== undefined && r.maxMessages > 0) p = Math.max(p, lag / r.maxMessages);
    if (r.maxBytes !== undefined && r.maxBytes > 0) p = Math.max(p, lagBytes / r.maxBytes);
    if (r.maxAgeMs !== undefined && r.maxAgeMs > 0) p = Math.max(p, ageMs / r.maxAgeMs);
    return Math.round(p * 1000) / 1000;
  }

  /** Refreshes what the log says (last seq, size, retention) and the alarm; at most once a second. */
  async #refreshInfo(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lastInfo < 1000) return;
    this.#lastInfo = now;
    const info = await this.#o.store.info({ topic: this.#o.topic });
    if (!info.exists) return;
    this.#last = Math.max(this.#last, info.last_seq);
    this.#bytes = info.bytes;
    this.#count = info.count;
    try {
      const cfg = JSON.parse(info.config_json) as { retention?: Retention };
      this.#retention = cfg.retention ?? {};
    } catch {
      this.#retention = {};
    }
    if (this.#inflight.length > 0) this.#oldestTs = this.#inflight[0]!.ts;
    else if (this.#last > this.#forwarded) {
      const r = await this.#o.store.read({
        topic: this.#o.topic,
        from_seq: this.#forwarded + 1,
        from_time_ms: 0,
        max: 1,
      });
      this.#oldestTs = r.timestamps[0] ?? 0;
    }
    const s = this.status();
    if (!this.#alarm && s.retentionPressure >= 0.8) {
      this.#alarm = true;
      this.#o.log(
        `ALARM: ${this.#o.topic}: ${s.lagMessages} unforwarded messages (${s.lagBytes} B, oldest ${Math.round(s.lagAgeMs / 1000)} s) are at ${Math.round(s.retentionPressure * 100)} % of the topic's retention; retention will drop them before they reach the cloud. Restore the link, or raise the retention (docs/edge-to-cloud.md: sizing)`,
      );
    } else if (this.#alarm && s.retentionPressure < 0.7) {
      this.#alarm = false;
      this.#o.log(`${this.#o.topic}: retention pressure back to ${Math.round(s.retentionPressure * 100)} %`);
    }
  }

  async #run(): Promise<void> {
    const pollMs = this.#o.pollMs ?? 20;
    while (!this.#closed) {
      try {
        await this.#refreshInfo();
        const js = this.#o.js();
        if (js === undefined) {
          await this.#o.connected();
          continue;
        }
        if (this.#failed !== undefined) {
          await this.#recover();
          continue;
        }
        const room = this.#o.maxInFlight - this.#inflight.length;
        if (room <= 0) {
          await this.#headSettled();
          continue;
        }
        const r = await this.#o.store.read({
          topic: this.#o.topic,
          from_seq: this.#cursor + 1,
          from_time_ms: 0,
          max: Math.min(1000, Math.max(room, 64)),
        });
        if (r.seqs.length === 0) {
          await this.#sleep(pollMs);
          continue;
        }
        const first = r.seqs[0]!;
        if (first > this.#cursor + 1) {
          const lost = first - this.#cursor - 1;
          this.#lost += lost;
          this.#o.log(
            `ALARM: ${this.#o.topic}: messages ${this.#cursor + 1}..${first - 1} (${lost}) were removed by retention before they were forwarded; they will never reach the cloud`,
          );
        }
        this.#last = Math.max(this.#last, r.seqs[r.seqs.length - 1]!);
        for (let i = 0; i < r.seqs.length && !this.#closed; i++) {
          if (this.#failed !== undefined || this.#o.js() !== js) break;
          while (this.#inflight.length >= this.#o.maxInFlight && this.#failed === undefined)
            await this.#headSettled();
          if (this.#failed !== undefined) break;
          const payload = r.payloads[i]!;
          await this.#o.rate.acquire(payload.length);
          this.#send(js, r.type, r.seqs[i]!, r.timestamps[i]!, payload);
        }
      } catch (err) {
        if (this.#closed) break;
        const e = err as Error;
        this.#lastError = e.message;
        if (!(err instanceof MyelinError && err.code === "ERR_UNKNOWN_TOPIC")) {
          this.#o.log(`uplink ${this.#o.topic}: ${e.message}; trying again in 1 s`);
        }
        await this.#sleep(1000);
      }
    }
  }

  #send(js: JetStreamClient, type: string, seq: number, ts: number, payload: Uint8Array): void {
    const h = natsLib().headers();
    h.set(UPLINK_HEADERS.type, type);
    h.set(UPLINK_HEADERS.seq, String(seq));
    h.set(UPLINK_HEADERS.prev, String(this.#prevSent === this.#start ? 0 : this.#prevSent));
    h.set(UPLINK_HEADERS.time, String(ts));
    const e: InFlight = { seq, ts, state: "pending" };
    this.#inflight.push(e);
    this.#prevSent = seq;
    this.#cursor = seq;
    js.publish(this.#o.subject, payload, {
      msgID: forwardMsgId(this.#o.origin, this.#o.topic, seq),
      headers: h,
      timeout: this.#o.publishTimeoutMs ?? 5000,
    }).then(
      (ack: PubAck) => {
        e.state = "ok";
        this.#published++;
        if (ack.duplicate) this.#duplicates++;
        this.#advance();
      },
      (err: unknown) => {
        e.state = "failed";
        if (this.#failed === undefined) {
          this.#failed = err instanceof Error ? err : new Error(String(err));
          this.#lastError = this.#failed.message;
        }
        this.#advance();
      },
    );
  }

  /** Moves the position over the acknowledged head of the in-flight list. */
  #advance(): void {
    while (this.#inflight.length > 0 && this.#inflight[0]!.state === "ok") {
      this.#forwarded = this.#inflight.shift()!.seq;
    }
    if (this.#inflight.length > 0) this.#oldestTs = this.#inflight[0]!.ts;
    this.#wakeHead?.();
    this.#wakeHead = undefined;
    this.#save();
  }

  /** Writes the position when it moved, one write at a time (the latest position wins). */
  #save(): void {
    if (this.#saving !== undefined || this.#forwarded === this.#saved) return;
    const p = { start: this.#start, forwarded: this.#forwarded };
    this.#saving = savePosition(this.#o.positionPath, p)
      .then(
        () => {
          this.#saved = p.forwarded;
        },
        (err: unknown) => {
          this.#lastError = (err as Error).message;
          this.#o.log(
            `uplink ${this.#o.topic}: cannot save the forwarded position: ${(err as Error).message}`,
          );
        },
      )
      .finally(() => {
        this.#saving = undefined;
        if (!this.#closed) this.#save();
      });
  }

  #headSettled(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#inflight.length === 0 || this.#closed) {
        resolve();
        return;
      }
      const prev = this.#wakeHead;
      this.#wakeHead = () => {
        prev?.();
        resolve();
      };
    });
  }

  /** After a failed publish: waits for every publish in flight, then resends from the first unacknowledged. */
  async #recover(): Promise<void> {
    while (this.#inflight.some((e) => e.state === "pending") && !this.#closed) await this.#headSettledAny();
    const err = this.#failed;
    this.#inflight = [];
    this.#cursor = this.#forwarded;
    this.#prevSent = this.#forwarded;
    this.#failed = undefined;
    if (err !== undefined) {
      this.#o.log(
        `uplink ${this.#o.topic}: publish failed (${err.message}); sending again from #${this.#forwarded + 1}`,
      );
    }
    await this.#sleep(250);
  }

  #headSettledAny(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.#wakeHead;
      this.#wakeHead = () => {
        prev?.();
        resolve();
      };
      setTimeout(resolve, 100);
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  /** Stops forwarding and writes the position once more. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeHead?.();
    await this.#loop;
    await this.#saving;
    if (this.#forwarded !== this.#saved) {
      await savePosition(this.#o.positionPath, { start: this.#start, forwarded: this.#forwarded }).catch(
        () => undefined,
      );
    }
  }
}
