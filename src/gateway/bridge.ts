/**
 * Bridges from Myelin to the brokers sites already run (MQTT, NATS, AMQP 0-9-1). A backend is one
 * small `BrokerLink` (connect once, publish with the broker's acknowledgement, hand inbound
 * messages over and acknowledge them when told); everything else is shared here, in
 * `BridgeEngine`:
 *
 * - the Myelin side, a {@link MyelinPort} (mapping, decoding, validation, reject reports);
 * - reconnection with exponential backoff and jitter, forever, until `close()`;
 * - outbound QoS 1/2 messages go through an on-disk {@link OfflineQueue} (bounded; full means
 *   backpressure on the Myelin publishers, or refusal when configured), and leave it only once the
 *   broker acknowledged them; at most `maxInFlight` wait for an acknowledgement at once;
 * - outbound QoS 0 messages are sent if connected, else dropped and counted;
 * - inbound messages are acknowledged to the broker only after the Myelin publish resolved;
 * - counters and a status snapshot for `myelin bridge status`.
 */
import { join } from "node:path";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import type { Node } from "../node/index.js";
import type { FsyncPolicy } from "../store/log.js";
import { redactUrl, SYNTAX_OF, type BridgeConfig, type BridgeKind } from "./bridge-config.js";
import { TopicMap, type ResolvedMapping } from "./mapping.js";
import { MyelinPort, type PortReject } from "./myelin-port.js";
import { OfflineQueue, type OfflineQueueStats, type QueuedMessage } from "./offline-queue.js";

/** Connection state of a bridge. */
export type BridgeState = "connecting" | "connected" | "reconnecting" | "closed";

/** A snapshot of a bridge, as `myelin bridge status` shows it. Times are ms since the Unix epoch. */
export interface BridgeStatus {
  name: string;
  kind: BridgeKind;
  /** The broker URL, password removed. */
  url: string;
  state: BridgeState;
  /** When the current state began. */
  since: number;
  /** Successful connections since start. */
  connects: number;
  /** Connections lost since start. */
  disconnects: number;
  /** The last connection or publish error, if any. */
  lastError?: string;
  /** External messages published into Myelin. */
  in: number;
  /** Myelin messages handed to the bridge for the broker. */
  out: number;
  /** Outbound messages the broker acknowledged (QoS 1/2) or that were written to it (QoS 0). */
  sent: number;
  /** Outbound QoS 0 messages dropped because the broker was unreachable. */
  dropped: number;
  /** Inbound messages refused (no rule, bad payload); reported on the error topic. */
  rejected: number;
  lastReject?: string;
  /** Outbound messages that could not be forwarded (encoding failed, queue full with `reject`). */
  outFailed: number;
  /** The offline queue of QoS 1/2 messages, if the bridge has one. */
  queue?: OfflineQueueStats;
  /** Myelin topics forwarded out, and published in, right now. */
  outTopics: string[];
  inTopics: string[];
}

/** A running bridge. Every backend gives one; start with `startBridge()` (bridge-host.ts). */
export interface Bridge {
  readonly name: string;
  readonly kind: BridgeKind;
  /** A snapshot of the state and counters. */
  status(): BridgeStatus;
  /**
   * Resolves once the bridge is connected (at once if it is), or rejects with ERR_TIMEOUT after
   * `timeoutMs` naming the last connection error.
   */
  waitConnected(timeoutMs: number): Promise<void>;
  /** Stops: leaves the broker, closes the port and the queue (unacknowledged messages stay on disk). */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** What a link reports to the engine. */
export interface LinkHandlers {
  /**
   * A message from the broker. The link acknowledges it to the broker when the returned promise
   * resolves (`ok: false`: refused for good — acknowledge or drop it, never redeliver).
   */
  inbound(externalTopic: string, payload: Uint8Array): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** The connection that `connect` opened is gone. Called at most once per connection. */
  disconnected(err?: Error): void;
}

/** One outgoing message. */
export interface OutgoingMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  /** Stable id for deduplication by the broker (QoS 1/2 messages from the offline queue only). */
  id?: string;
}

/** The broker-specific part of a bridge: one connection at a time. */
export interface BrokerLink {
  /**
   * Opens a connection and sets up the inbound subscriptions of `map`; resolves when both are
   * done. Rejects (with the broker's answer) if it failed; the engine retries with backoff.
   */
  connect(handlers: LinkHandlers, timeoutMs: number): Promise<void>;
  /**
   * Publishes on the open connection: resolves when the broker acknowledged it (QoS 1/2) or it
   * was written (QoS 0); rejects if it was not, e.g. because the connection dropped (every
   * publish pending when a connection drops must settle).
   */
  publish(m: OutgoingMessage): Promise<void>;
  /** Closes the connection, if any (no `disconnected` call follows). */
  close(): Promise<void>;
}

/** Options of a bridge engine. */
export interface BridgeEngineOptions {
  config: BridgeConfig;
  /** The node the bridge publishes and subscribes with (the caller closes it). */
  node: Node;
  link: BrokerLink;
  /** Directory of the offline queue; required when a rule sends QoS 1/2 messages out. */
  queueDir?: string;
  /** Human-readable events (connected, lost, warnings). */
  log?: (line: string) => void;
}

/** Defaults of a bridge's settings. */
export const BRIDGE_DEFAULTS = {
  maxInFlight: 64,
  reconnect: { initialMs: 200, maxMs: 10000, factor: 2, connectTimeoutMs: 10000 },
  whenFull: "block" as "block" | "reject",
  fsync: "always" as FsyncPolicy,
} as const;

/**
 * Delay before reconnection attempt `attempt` (1, 2, …), in ms: `initialMs * factor^(attempt-1)`,
 * capped at `maxMs`, with ±20% jitter so that many bridges do not return at once.
 */
export function backoffDelay(
  attempt: number,
  p: { initialMs: number; maxMs: number; factor: number },
  random: () => number = Math.random,
): number {
  const base = Math.min(p.maxMs, p.initialMs * Math.pow(p.factor, Math.max(0, attempt - 1)));
  return Math.max(0, Math.round(base * (0.8 + 0.4 * random())));
}

/** The shared engine of every bridge: see the module comment. */
export class BridgeEngine implements Bridge {
  readonly name: string;
  readonly kind: BridgeKind;
  readonly #cfg: BridgeConfig;
  readonly #node: Node;
  readonly #link: BrokerLink;
  readonly #map: TopicMap;
  readonly #log: (line: string) => void;
  readonly #maxInFlight: number;
  readonly #reconnect: { initialMs: number; maxMs: number; factor: number; connectTimeoutMs: number };
  readonly #whenFull: "block" | "reject";
  #queue: OfflineQueue | undefined;
  #port!: MyelinPort;
  #state: BridgeState = "connecting";
  #since = Date.now();
  #connects = 0;
  #disconnects = 0;
  #lastError: string | undefined;
  #sent = 0;
  #dropped = 0;
  #inFlight = 0;
  /** Bumped on every connection; acknowledgements of older ones do not release messages. */
  #conn = 0;
  #kick: (() => void) | undefined;
  #stateWaiters = new Set<() => void>();
  #onDisconnect: (() => void) | undefined;
  #wakeBackoff: (() => void) | undefined;
  #loops: Promise<void>[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(opts: BridgeEngineOptions, map: TopicMap) {
    const cfg = opts.config;
    this.#cfg = cfg;
    this.name = cfg.name;
    this.kind = cfg.kind;
    this.#node = opts.node;
    this.#link = opts.link;
    this.#map = map;
    this.#log = opts.log ?? (() => undefined);
    this.#maxInFlight = cfg.maxInFlight ?? BRIDGE_DEFAULTS.maxInFlight;
    this.#reconnect = { ...BRIDGE_DEFAULTS.reconnect, ...cfg.reconnect };
    this.#whenFull = cfg.queue?.whenFull ?? BRIDGE_DEFAULTS.whenFull;
  }

  /** The compiled mapping of a bridge configuration. @throws MyelinError ERR_BAD_CONFIG */
  static topicMap(cfg: BridgeConfig): TopicMap {
    const opts: { syntax: (typeof SYNTAX_OF)[BridgeKind]; sitePrefix?: string } = {
      syntax: SYNTAX_OF[cfg.kind],
    };
    if (cfg.sitePrefix !== undefined) opts.sitePrefix = cfg.sitePrefix;
    return new TopicMap(cfg.mapping, opts);
  }

  /**
   * Starts a bridge: opens its offline queue, starts the Myelin port and begins connecting in
   * the background (an unreachable broker does not fail the start; see `status()` and
   * `waitConnected()`).
   * @throws MyelinError ERR_BAD_CONFIG for a bad mapping, or a QoS 1/2 out rule without `queueDir`;
   * ERR_STORAGE if the queue cannot be opened.
   */
  static async start(opts: BridgeEngineOptions): Promise<BridgeEngine> {
    const map = BridgeEngine.topicMap(opts.config);
    const e = new BridgeEngine(opts, map);
    const needsQueue = map.rules.some((r) => r.direction !== "in" && r.qos > 0);
    if (needsQueue) {
      if (opts.queueDir === undefined) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `bridge ${e.name}: rules that send QoS 1/2 messages out need a data directory for the offline queue (start the hub with --data-dir, or pass queueDir)`,
        );
      }
      const q = opts.config.queue ?? {};
      const qo: Parameters<typeof OfflineQueue.open>[0] = {
        dir: opts.queueDir,
        fsync: q.fsync ?? BRIDGE_DEFAULTS.fsync,
      };
      if (q.maxMessages !== undefined) qo.maxMessages = q.maxMessages;
      if (q.maxBytes !== undefined) qo.maxBytes = q.maxBytes;
      qo.log = (line) => e.#log(`bridge ${e.name}: ${line}`);
      e.#queue = await OfflineQueue.open(qo);
      const rec = e.#queue.stats().recovered;
      if (rec > 0) e.#log(`bridge ${e.name}: ${rec} queued messages from before the restart will be sent`);
    }
    const portOpts: Parameters<typeof MyelinPort.start>[0] = {
      node: opts.node,
      map,
      source: `bridge ${e.name}`,
      onOutbound: (topic, payload, rule) => e.#outbound(topic, payload, rule),
      onReject: (r: PortReject) => e.#log(`bridge ${e.name}: refused ${r.externalTopic}: ${r.reason}`),
      onWarning: (err) => e.#log(`bridge ${e.name}: ${err.message}`),
    };
    if (opts.config.errorTopic !== undefined) portOpts.errorTopic = opts.config.errorTopic;
    try {
      e.#port = await MyelinPort.start(portOpts);
    } catch (err) {
      await e.#queue?.close();
      throw err;
    }
    e.#loops.push(e.#connectLoop(), e.#sendLoop());
    return e;
  }

  /** The compiled mapping. */
  get map(): TopicMap {
    return this.#map;
  }

  status(): BridgeStatus {
    const p = this.#port.stats();
    const s: BridgeStatus = {
      name: this.name,
      kind: this.kind,
      url: redactUrl(this.#cfg.url),
      state: this.#state,
      since: this.#since,
      connects: this.#connects,
      disconnects: this.#disconnects,
      in: p.in,
      out: p.out,
      sent: this.#sent,
      dropped: this.#dropped,
      rejected: p.rejected,
      outFailed: p.outFailed,
      outTopics: p.outTopics,
      inTopics: p.inTopics,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    if (p.lastReject !== undefined) s.lastReject = p.lastReject;
    if (this.#queue !== undefined) s.queue = this.#queue.stats();
    return s;
  }

  waitConnected(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.#state === "connected") {
          done();
          resolve();
        } else if (this.#state === "closed") {
          done();
          reject(new ClosedError("ERR_CLOSED", `bridge ${this.name} is closed`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new TimeoutError(
            "ERR_TIMEOUT",
            `bridge ${this.name} did not connect to ${redactUrl(this.#cfg.url)} within ${timeoutMs} ms` +
              (this.#lastError !== undefined ? ` (last error: ${this.#lastError})` : ""),
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#stateWaiters.delete(check);
      };
      this.#stateWaiters.add(check);
      check();
    });
  }

  #setState(s: BridgeState): void {
    if (this.#state === "closed") return;
    this.#state = s;
    this.#since = Date.now();
    for (const w of [...this.#stateWaiters]) w();
    this.#wake();
  }

  #wake(): void {
    const k = this.#kick;
    this.#kick = undefined;
    k?.();
  }

  /** Resolves at the next state change, acknowledgement or append. */
  #changed(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.#kick;
      this.#kick = () => {
        prev?.();
        resolve();
      };
    });
  }

  // ---- outbound -----------------------------------------------------------------------------

  async #outbound(topic: string, payload: Uint8Array, rule: ResolvedMapping): Promise<void> {
    if (this.#closed) throw new ClosedError("ERR_CLOSED", `bridge ${this.name} is closed`);
    if (rule.qos === 0 || this.#queue === undefined) {
      if (this.#state !== "connected") {
        this.#dropped++;
        return;
      }
      try {
        await this.#link.publish({ topic, payload, qos: 0 });
        this.#sent++;
      } catch {
        this.#dropped++;
      }
      return;
    }
    const q = this.#queue;
    // `append` checks and reserves room synchronously, so nothing can take it between the two.
    while (this.#whenFull === "block" && q.isFull(payload.length)) await q.waitForSpace(payload.length);
    await q.append(topic, rule.qos, payload);
    this.#wake();
  }

  async #sendLoop(): Promise<void> {
    const q = this.#queue;
    if (q === undefined) return;
    while (!this.#closed) {
      const room = this.#maxInFlight - this.#inFlight;
      if (this.#state !== "connected" || room <= 0 || q.ready === 0) {
        await this.#changed();
        continue;
      }
      let batch: QueuedMessage[];
      try {
        batch = await q.take(room);
      } catch (err) {
        this.#lastError = `reading the offline queue: ${(err as Error).message}`;
        this.#log(`bridge ${this.name}: ${this.#lastError}`);
        await this.#changed();
        continue;
      }
      if (batch.length === 0) {
        await this.#changed();
        continue;
      }
      for (const m of batch) this.#send(m);
    }
  }

  #send(m: QueuedMessage): void {
    const q = this.#queue!;
    const conn = this.#conn;
    this.#inFlight++;
    this.#link
      .publish({ topic: m.topic, payload: m.payload, qos: m.qos, id: m.id })
      .then(
        () => {
          this.#sent++;
          q.ack(m);
        },
        (err: unknown) => {
          if (conn === this.#conn && this.#state === "connected") {
            this.#lastError = `publishing to ${m.topic}: ${(err as Error).message}`;
          }
          if (conn === this.#conn) q.release(m);
        },
      )
      .finally(() => {
        this.#inFlight--;
        this.#wake();
      });
  }

  // ---- connection ---------------------------------------------------------------------------

  async #connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      const lost = new Promise<void>((resolve) => {
        this.#onDisconnect = resolve;
      });
      let down = false;
      const conn = ++this.#conn;
      try {
        await this.#link.connect(
          {
            inbound: (topic, payload) =>
              this.#port.inbound(topic, payload).then((r) => (r.ok ? { ok: true as const } : r)),
            disconnected: (err) => {
              if (conn !== this.#conn || down) return;
              down = true;
              if (err !== undefined) this.#lastError = err.message;
              this.#onDisconnect?.();
            },
          },
          this.#reconnect.connectTimeoutMs,
        );
      } catch (err) {
        down = true;
        await this.#link.close().catch(() => undefined);
        if (this.#closed) break;
        failures++;
        this.#lastError = (err as Error).message;
        if (failures === 1 || failures % 10 === 0) {
          this.#log(
            `bridge ${this.name}: cannot connect to ${redactUrl(this.#cfg.url)}: ${this.#lastError} (retrying)`,
          );
        }
        this.#setState(this.#connects === 0 ? "connecting" : "reconnecting");
        await this.#pause(backoffDelay(failures, this.#reconnect));
        continue;
      }
      if (this.#closed) break;
      if (!down) {
        failures = 0;
        this.#connects++;
        this.#log(`bridge ${this.name}: connected to ${redactUrl(this.#cfg.url)}`);
        this.#setState("connected");
        await lost;
      }
      if (this.#closed) break;
      // The connection dropped: what was in flight is sent again on the next one.
      this.#conn++;
      this.#disconnects++;
      this.#queue?.releaseAll();
      this.#setState("reconnecting");
      this.#log(
        `bridge ${this.name}: connection lost${this.#lastError !== undefined ? ` (${this.#lastError})` : ""}; reconnecting`,
      );
      await this.#link.close().catch(() => undefined);
      failures = 1;
      await this.#pause(backoffDelay(1, this.#reconnect));
    }
  }

  #pause(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeBackoff = done;
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await this.#port.close();
      this.#setState("closed");
      this.#state = "closed";
      for (const w of [...this.#stateWaiters]) w();
      this.#wakeBackoff?.();
      this.#onDisconnect?.();
      this.#wake();
      await this.#link.close().catch(() => undefined);
      await Promise.all(this.#loops);
      await this.#queue?.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Where a bridge's offline queue lives under a data directory. */
export function bridgeQueueDir(dataDir: string, bridgeName: string): string {
  return join(dataDir, "bridges", bridgeName, "queue");
}
