/**
 * The uplink of a hub to the cloud over NATS and JetStream (docs/edge-to-cloud.md). It owns one
 * NATS connection (reconnecting for ever, with short pings so a dead link is noticed in seconds)
 * and, depending on the role:
 *
 * - site: a {@link Forwarder} per durable topic matching `export.durable` (found in the store's
 *   data directory, looked for every second), volatile exports on core NATS through a
 *   {@link MyelinPort} (dropped and counted while the link is down), and an {@link Ingest} of the
 *   site's command stream into the local durable topics matching `import`;
 * - cloud: an {@link Ingest} per listed site (its stream into `/sites/<site>/…`) and a forwarder
 *   per durable topic `/to_site/<site>/…` into that site's command stream.
 *
 * The streams are created when missing (file storage, `stream.replicas`, `stream.duplicateWindowMs`).
 */
import { readdir, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { ConnectionOptions, JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import { natsLib } from "./libs.js";
import { ClosedError, MyelinError, myelinError, TimeoutError } from "../errors.js";
import { createNode, StoreClient, type Node, type ProtocolServer } from "../node/index.js";
import { topicMatches } from "../store/topic-config.js";
import { TopicMap } from "./mapping.js";
import { MyelinPort } from "./myelin-port.js";
import { explainNatsConnectError, natsLoginOptions, type NatsField } from "./nats-login.js";
import { volatileRules, type UplinkConfig } from "./uplink-config.js";
import { Forwarder } from "./uplink-forwarder.js";
import { Ingest } from "./uplink-ingest.js";
import { serveUplinkStatus, type UplinkStatus } from "./uplink-protocol.js";
import { RateLimiter } from "./uplink-rate.js";
import {
  commandStream,
  commandSubject,
  siteStream,
  siteSubject,
  SITES_PREFIX,
  splitToSiteTopic,
} from "./uplink-subjects.js";

/** How the uplink's errors name its login settings: as they are written in its file. */
const UPLINK_FIELD: NatsField = (k) => `nats.${k}`;

/** Options of {@link Uplink.start}. */
export interface UplinkOptions {
  config: UplinkConfig;
  /** The store's data directory: topics are found in `<dataDir>/topics`, the uplink's files go to `<dataDir>/uplink`. */
  dataDir: string;
  /** Hub address and runtime directory (defaults as for any node). */
  hub?: string;
  runtimeDir?: string;
  log?: (line: string) => void;
  /** How often new durable topics are looked for, in ms (default 1000). */
  scanMs?: number;
}

/** A running uplink. */
export class Uplink {
  readonly #o: UplinkOptions;
  readonly #cfg: UplinkConfig;
  readonly #node: Node;
  readonly #store: StoreClient;
  readonly #rate: RateLimiter;
  readonly #log: (line: string) => void;
  readonly #forwarders = new Map<string, Promise<Forwarder | undefined>>();
  readonly #ingests: Ingest[] = [];
  #port: MyelinPort | undefined;
  #server: ProtocolServer | undefined;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #state: UplinkStatus["state"] = "connecting";
  #since = Date.now();
  #connects = 0;
  #disconnects = 0;
  #volatileSent = 0;
  #volatileDropped = 0;
  #lastError: string | undefined;
  #waiters: (() => void)[] = [];
  #closed = false;
  #loops: Promise<void>[] = [];
  #scanTimer: NodeJS.Timeout | undefined;

  private constructor(o: UplinkOptions, node: Node) {
    this.#o = o;
    this.#cfg = o.config;
    this.#node = node;
    this.#store = new StoreClient(node, { timeoutMs: 10_000 });
    this.#rate = new RateLimiter(o.config.catchUp);
    this.#log = o.log ?? (() => {});
  }

  /**
   * Starts the uplink: its hidden node `_uplink`, its status service, the volatile exports and the
   * connection loop (an unreachable NATS does not fail the start: see `status()` and `waitConnected()`).
   * @throws MyelinError ERR_BAD_CONFIG for a bad volatile export rule; ERR_STORAGE when `<dataDir>/uplink` cannot be made
   */
  static async start(o: UplinkOptions): Promise<Uplink> {
    await mkdir(join(o.dataDir, "uplink", "positions"), { recursive: true, mode: 0o700 });
    const rules = volatileRules(o.config);
    const map =
      rules.length > 0
        ? new TopicMap(rules, { syntax: "nats", sitePrefix: `live.${o.config.site}` })
        : undefined;
    const nodeOpts: Parameters<typeof createNode>[0] = { name: "_uplink" };
    if (o.hub !== undefined) nodeOpts.hub = o.hub;
    if (o.runtimeDir !== undefined) nodeOpts.runtimeDir = o.runtimeDir;
    const node = await createNode(nodeOpts);
    const u = new Uplink(o, node);
    try {
      if (map !== undefined) {
        u.#port = await MyelinPort.start({
          node,
          map,
          source: "uplink",
          onOutbound: (subject, payload) => u.#volatile(subject, payload),
          onWarning: (err) => u.#log(`uplink: ${err.message}`),
        });
      }
      u.#server = await serveUplinkStatus(node, () => u.status());
    } catch (err) {
      await u.#port?.close();
      await node.close();
      throw err;
    }
    u.#loops.push(u.#connectLoop());
    // Forwarders start with the hub, link or not: their lag and alarms are known during a cut.
    u.#scan();
    return u;
  }

  #volatile(subject: string, payload: Uint8Array): void {
    const nc = this.#nc;
    if (nc === undefined || this.#state !== "connected") {
      this.#volatileDropped++;
      return;
    }
    nc.publish(subject, payload);
    this.#volatileSent++;
  }

  /** The status (also served on `/_uplink/status`). */
  status(): UplinkStatus {
    const forwarders = [...this.#forwardersNow()].map((f) => f.status());
    const s: UplinkStatus = {
      role: this.#cfg.role,
      site: this.#cfg.site,
      servers: this.#cfg.nats.servers.map((u) => u.replace(/\/\/[^@/]*@/, "//")),
      state: this.#state,
      since: this.#since,
      connects: this.#connects,
      disconnects: this.#disconnects,
      volatileSent: this.#volatileSent,
      volatileDropped: this.#volatileDropped,
      forwarders,
      ingests: this.#ingests.map((i) => i.status()),
      refused: [...this.#refused].map(([topic, reason]) => ({ topic, reason })),
      alarm: forwarders.some((f) => f.alarm) || this.#refused.size > 0,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    return s;
  }

  #settled = new Map<string, Forwarder>();

  *#forwardersNow(): Iterable<Forwarder> {
    yield* this.#settled.values();
  }

  /** Resolves once connected. @throws MyelinError ERR_TIMEOUT after `timeoutMs` */
  async waitConnected(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.#state !== "connected") {
      if (this.#closed) throw new ClosedError("ERR_CLOSED", "uplink is closed");
      if (Date.now() >= until) {
        throw new TimeoutError(
          "ERR_TIMEOUT",
          `uplink did not connect to ${this.#cfg.nats.servers.join(", ")} within ${timeoutMs} ms${this.#lastError !== undefined ? ` (last error: ${this.#lastError})` : ""}`,
        );
      }
      await this.#connected(Math.min(100, until - Date.now()));
    }
  }

  #connected(maxMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve();
      };
      const t = setTimeout(done, maxMs);
      this.#waiters.push(done);
    });
  }

  #setState(s: UplinkStatus["state"]): void {
    if (this.#state === s) return;
    if (this.#state === "connected" && s === "disconnected") {
      this.#log(
        `uplink ${this.#cfg.site}: disconnected from NATS; durable topics keep being stored and are sent on return`,
      );
    }
    this.#state = s;
    this.#since = Date.now();
    if (s === "connected") {
      for (const w of [...this.#waiters]) w();
    }
  }

  /** Options of the JetStream client and manager (the cloud's domain, through a leaf node). */
  #jsOpts(): { timeout: number; domain?: string } {
    const d = this.#cfg.nats.jetStreamDomain;
    return d === undefined ? { timeout: 5000 } : { timeout: 5000, domain: d };
  }

  async #connectOptions(): Promise<ConnectionOptions> {
    const c = this.#cfg.nats;
    const opts: ConnectionOptions = {
      servers: c.servers,
      name: `myelin-uplink-${this.#cfg.role}-${this.#cfg.site}`,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 200,
      pingInterval: 2000,
      maxPingOut: 2,
      timeout: c.connectTimeoutMs ?? 5000,
      noEcho: true,
      // Only the configured servers: a site behind NAT cannot reach the cluster's inner addresses.
      ignoreClusterUpdates: true,
    };
    try {
      Object.assign(opts, await natsLoginOptions(c, UPLINK_FIELD));
    } catch (err) {
      throw err instanceof MyelinError
        ? myelinError(err.code, `uplink: ${err.message}`, { cause: err.cause })
        : err;
    }
    return opts;
  }

  async #connectLoop(): Promise<void> {
    let backoff = 250;
    while (!this.#closed) {
      let nc: NatsConnection;
      try {
        nc = await natsLib().connect(await this.#connectOptions());
      } catch (e) {
        const err = await this.#diagnose(e);
        const why =
          err instanceof MyelinError
            ? err.message
            : `uplink ${this.#cfg.site}: cannot connect to NATS: ${explainNatsConnectError(err, this.#cfg.nats, UPLINK_FIELD, this.#cfg.nats.servers.join(", "))}`;
        // Logged once per reason, not on every attempt; the status carries it meanwhile.
        if (why !== this.#lastError) this.#log(`${why}; trying again`);
        this.#lastError = why;
        this.#setState("disconnected");
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      backoff = 250;
      if (this.#closed) {
        await nc.close().catch(() => undefined);
        return;
      }
      this.#nc = nc;
      this.#connects++;
      let ready = false;
      try {
        await this.#onConnected(nc);
        ready = true;
        this.#log(`uplink ${this.#cfg.site}: connected to ${nc.getServer()}, streams ready`);
      } catch (err) {
        this.#lastError = (err as Error).message;
        this.#log(
          `uplink ${this.#cfg.site}: setting up JetStream failed: ${(err as Error).message}; trying again`,
        );
      }
      if (!ready) {
        await this.#dropConnection(nc);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const closed = nc.closed();
      const statuses = nc.status();
      const watch = (async () => {
        for await (const s of statuses) {
          if (s.type === natsLib().Events.Disconnect) {
            this.#disconnects++;
            this.#js = undefined;
            this.#setState("disconnected");
          } else if (s.type === natsLib().Events.Reconnect) {
            this.#connects++;
            this.#log(`uplink ${this.#cfg.site}: reconnected to ${nc.getServer()}`);
            await this.#restartIngests(nc).catch((err: unknown) => {
              this.#lastError = (err as Error).message;
            });
            this.#js = nc.jetstream(this.#jsOpts());
            this.#setState("connected");
          }
        }
      })();
      await closed;
      // The status iterator does not end by itself when the connection closes.
      (statuses as { stop?: () => void }).stop?.();
      await watch.catch(() => undefined);
      await this.#dropConnection(nc);
    }
  }

  /**
   * With reconnects on, nats.js reports a first connection that keeps failing as a bare TIMEOUT,
   * hiding why (a server that refuses this client's TLS certificate closes the connection after
   * the handshake). With TLS configured, one attempt with reconnects off tells; the original error
   * stands otherwise.
   */
  async #diagnose(err: unknown): Promise<unknown> {
    const tls =
      this.#cfg.nats.tls !== undefined || this.#cfg.nats.servers.some((u) => u.startsWith("tls://"));
    // Only with TLS: an unreachable server times out the same way, and a second wait would only delay the retry.
    if (!tls || (err as { code?: unknown }).code !== "TIMEOUT" || this.#closed) return err;
    try {
      const probe = await natsLib().connect({
        ...(await this.#connectOptions()),
        reconnect: false,
        maxReconnectAttempts: 0,
      });
      await probe.close().catch(() => undefined);
      return err;
    } catch (e) {
      return (e as { code?: unknown }).code === "TIMEOUT" ? err : e;
    }
  }

  async #dropConnection(nc: NatsConnection): Promise<void> {
    this.#js = undefined;
    if (!this.#closed) this.#setState("disconnected");
    for (const i of this.#ingests) await i.stop();
    if (this.#nc === nc) this.#nc = undefined;
    if (!nc.isClosed()) await nc.close().catch(() => undefined);
  }

  async #onConnected(nc: NatsConnection): Promise<void> {
    const jsm = await nc.jetstreamManager(this.#jsOpts());
    const js = nc.jetstream(this.#jsOpts());
    const c = this.#cfg;
    if (c.role === "site") {
      if (c.exportDurable.length > 0) await this.#ensureStream(jsm, siteStream(c.site), `sites.${c.site}.>`);
      if (c.import.length > 0) await this.#ensureStream(jsm, commandStream(c.site), `cmd.${c.site}.>`);
    } else {
      for (const s of c.sites) {
        await this.#ensureStream(jsm, siteStream(s), `sites.${s}.>`);
        await this.#ensureStream(jsm, commandStream(s), `cmd.${s}.>`);
      }
    }
    if (this.#ingests.length === 0) await this.#makeIngests();
    for (const i of this.#ingests) await i.start(js, jsm);
    this.#js = js;
    this.#setState("connected");
  }

  async #restartIngests(nc: NatsConnection): Promise<void> {
    const jsm = await nc.jetstreamManager(this.#jsOpts());
    const js = nc.jetstream(this.#jsOpts());
    for (const i of this.#ingests) {
      await i.stop();
      await i.start(js, jsm);
    }
  }

  async #makeIngests(): Promise<void> {
    const c = this.#cfg;
    const dir = join(this.#o.dataDir, "uplink");
    const log = this.#log;
    if (c.role === "site") {
      if (c.import.length === 0) return;
      this.#ingests.push(
        await Ingest.open({
          stream: commandStream(c.site),
          durable: `myelin-site-${c.site}`,
          kind: "cmd",
          site: c.site,
          target: (topic) => (c.import.some((p) => topicMatches(p, topic)) ? topic : undefined),
          store: this.#store,
          statePath: join(dir, `ingest-${commandStream(c.site)}.json`),
          log,
        }),
      );
    } else {
      for (const s of c.sites) {
        this.#ingests.push(
          await Ingest.open({
            stream: siteStream(s),
            durable: `myelin-cloud-${c.site}`,
            kind: "sites",
            site: s,
            target: (topic) => `${SITES_PREFIX}${s}${topic}`,
            store: this.#store,
            statePath: join(dir, `ingest-${siteStream(s)}.json`),
            log,
          }),
        );
      }
    }
  }

  async #ensureStream(jsm: JetStreamManager, name: string, subject: string): Promise<void> {
    try {
      const info = await jsm.streams.info(name);
      const dw = info.config.duplicate_window / 1e6;
      if (dw < this.#cfg.stream.duplicateWindowMs) {
        this.#log(
          `uplink: stream ${name} has a duplicate window of ${dw} ms, shorter than stream.duplicateWindowMs (${this.#cfg.stream.duplicateWindowMs} ms); a resend after a longer outage of the hub may be stored twice in the stream (the consuming hub still stores it once)`,
        );
      }
      return;
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
    }
    const s = this.#cfg.stream;
    await jsm.streams.add({
      name,
      subjects: [subject],
      storage: natsLib().StorageType.File,
      retention: natsLib().RetentionPolicy.Limits,
      discard: natsLib().DiscardPolicy.Old,
      num_replicas: s.replicas,
      duplicate_window: natsLib().nanos(s.duplicateWindowMs),
      max_age: s.maxAgeMs > 0 ? natsLib().nanos(s.maxAgeMs) : 0,
    });
    this.#log(
      `uplink: stream ${name} created (${subject}, R${s.replicas}, duplicate window ${s.duplicateWindowMs} ms)`,
    );
  }

  /** Where a local durable topic goes, or undefined when it is not exported. */
  #route(topic: string): { subject: string } | undefined {
    const c = this.#cfg;
    if (topic.endsWith("/dead_letter")) return undefined;
    if (c.role === "site") {
      return c.exportDurable.some((p) => topicMatches(p, topic))
        ? { subject: siteSubject(c.site, topic) }
        : undefined;
    }
    const t = splitToSiteTopic(topic);
    if (t === undefined || !c.sites.includes(t.site)) return undefined;
    return { subject: commandSubject(t.site, t.topic) };
  }

  /** Exported topics not forwarded, with why (a work queue), by topic. */
  readonly #refused = new Map<string, string>();

  /**
   * True when `topic` is a work queue: its consumers' acknowledgements remove messages whether or
   * not they reached the cloud, so the uplink refuses to forward it (logged once; looked at again
   * on every scan, so a topic switched to `limits` mode is forwarded from then on).
   */
  async #refusedAsWorkQueue(topic: string): Promise<boolean> {
    const info = await this.#store.info({ topic });
    let mode: unknown;
    try {
      mode = (JSON.parse(info.config_json || "{}") as { mode?: unknown }).mode;
    } catch {
      mode = undefined;
    }
    if (mode !== "work-queue") {
      if (this.#refused.delete(topic)) this.#log(`uplink: ${topic} is no longer a work queue; forwarding it`);
      return false;
    }
    if (!this.#refused.has(topic)) {
      const why =
        `${topic} is a work-queue durable topic: its consumers' acknowledgements remove messages whether or not they reached the cloud, ` +
        `so the uplink does not forward it. Export a topic in limits mode (\`myelin topic config ${topic} --mode limits\`, or mode: limits in the store config), ` +
        `or have the producers also publish to a limits topic that is exported`;
      this.#refused.set(topic, why);
      this.#log(`uplink: NOT FORWARDED: ${why}`);
    }
    return true;
  }

  /** Looks for new durable topics to forward, now and then every `scanMs`. */
  #scan(): void {
    if (this.#closed) return;
    clearTimeout(this.#scanTimer);
    void this.#scanOnce()
      .catch((err: unknown) => {
        this.#lastError = (err as Error).message;
      })
      .finally(() => {
        if (!this.#closed) this.#scanTimer = setTimeout(() => this.#scan(), this.#o.scanMs ?? 1000);
      });
  }

  async #scanOnce(): Promise<void> {
    const names = await readdir(join(this.#o.dataDir, "topics")).catch(() => [] as string[]);
    for (const n of names) {
      let topic: string;
      try {
        topic = decodeURIComponent(n);
      } catch {
        continue;
      }
      if (this.#forwarders.has(topic)) continue;
      const r = this.#route(topic);
      if (r === undefined) continue;
      if (await this.#refusedAsWorkQueue(topic)) continue;
      const t = splitToSiteTopic(topic);
      const stream = this.#cfg.role === "site" ? siteStream(this.#cfg.site) : commandStream(t!.site);
      const p = Forwarder.start({
        topic,
        subject: r.subject,
        origin: this.#cfg.site,
        store: this.#store,
        js: () => (this.#state === "connected" ? this.#js : undefined),
        connected: () => this.#connected(),
        positionPath: join(this.#o.dataDir, "uplink", "positions", `${encodeURIComponent(topic)}.json`),
        maxInFlight: this.#cfg.catchUp.maxInFlight,
        rate: this.#rate,
        log: this.#log,
      }).then(
        (f) => {
          this.#settled.set(topic, f);
          this.#log(`uplink: forwarding ${topic} → ${r.subject} (stream ${stream}) from #${f.forwarded + 1}`);
          return f;
        },
        (err: unknown) => {
          this.#lastError = (err as Error).message;
          this.#log(`uplink: cannot forward ${topic}: ${(err as Error).message}`);
          this.#forwarders.delete(topic);
          return undefined;
        },
      );
      this.#forwarders.set(topic, p);
    }
  }

  /** Stops forwarding and consuming (positions saved), closes the connection and the node. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#scanTimer);
    for (const w of [...this.#waiters]) w();
    for (const p of this.#forwarders.values()) await (await p)?.close();
    for (const i of this.#ingests) await i.stop();
    const nc = this.#nc;
    this.#nc = undefined;
    this.#js = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => undefined);
    this.#setState("closed");
    await Promise.allSettled(this.#loops);
    await this.#port?.close();
    this.#server?.close();
    this.#store.close();
    await this.#node.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
