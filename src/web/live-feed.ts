/**
 * The dashboard's live feed: one hidden node (`_dashboard`) in the hub process watches the graph,
 * the topics the pages are looking at, the supervisor, the store, the gateway, the bridges and the
 * twins, keeps the alarms, and pushes what changed to every connected page. Nothing is polled or
 * subscribed while no page is open, and a topic is measured only while a page shows it.
 */
import { rcl_interfaces } from "../msgs/index.js";
import {
  createNode,
  fetchNodeStatus,
  statusProtocol,
  STORE_PROTOCOL,
  type GraphSnapshot,
  type Node,
  type NodeStatus,
} from "../node/index.js";
import { LOG_TOPIC, SUPERVISOR_PROTOCOL, type ProcessRow } from "../orchestrator/index.js";
import { BRIDGE_PROTOCOL, GATEWAY_PROTOCOL, TWIN_PROTOCOL } from "../gateway/index.js";
import { HUB_INFO_PROTOCOL } from "../hub/index.js";
import { AlarmBook, type AlarmCondition } from "./alarms.js";
import { flowAlarms, type FlowAlarmOptions, type FlowMemory } from "./flow-alarms.js";
import { messageView } from "./message-view.js";
import { ServiceCaller } from "./service-caller.js";
import { TopicWatch, type TopicStats } from "./topic-watch.js";

/** A connected page, as the feed sees it. */
export interface FeedClient {
  /** Sends one message; `droppable` ones (figures, samples) may be skipped when the page is behind. */
  send(msg: Record<string, unknown>, droppable: boolean): void;
  /** The topics the page shows figures for. */
  watch: ReadonlySet<string>;
  /** The topic whose messages the page shows, if any. */
  sample: string | undefined;
}

/** One line of a supervised process's output. */
export interface LogEntry {
  /** When it was published, ms since the epoch. */
  at: number;
  /** rcl_interfaces/Log level: 10 debug, 20 info, 30 warn, 40 error, 50 fatal. */
  level: number;
  /** `<process>#<replica>`. */
  name: string;
  msg: string;
}

/** Options of the feed. */
export interface LiveFeedOptions {
  runtimeDir?: string | undefined;
  /** How many topics are measured at once at most (default 200); more watched topics get no figures. */
  maxWatched?: number;
  /** How many log lines are kept for a page that opens (default 2000). */
  logLines?: number;
  /** Free bytes of the store's disk under which the store-full alarm is raised (default 512 MiB). */
  storeLowBytes?: number;
  /** A durable consumer this many messages behind raises an alarm (default 10000). */
  maxLag?: number;
  /** A reliable subscriber with this many messages parked for its credit is slow (default 100). */
  slowBacklog?: number;
  /** How often the nodes' flow status is read while a page is open, in ms (default 2000). */
  flowMs?: number;
  log?: (line: string) => void;
}

/** Intervals of the feed, in ms. */
const PS_MS = 500;
const STATS_MS = 1000;
const SAMPLE_MS = 150;
const SLOW_MS = 2000;
const GRAPH_MIN_MS = 300;
/** A topic's drop alarm lasts this long after its last loss, in ms. */
const DROPS_HOLD_MS = 10000;
/** Node status calls in flight at once, and how long each may take, in ms. */
const FLOW_PARALLEL = 8;
const FLOW_TIMEOUT_MS = 1500;

/** The level of a log line: the publisher's, raised when the text says error or warning. */
export function logLevel(level: number, msg: string): number {
  if (/\b(fatal|panic)\b/i.test(msg)) return Math.max(level, 50);
  if (/\b(error|err!|exception|uncaught)\b/i.test(msg)) return Math.max(level, 40);
  if (/\b(warn(ing)?)\b/i.test(msg)) return Math.max(level, 30);
  return level;
}

/** See the module comment. Start with {@link LiveFeed.start}. */
export class LiveFeed {
  readonly node: Node;
  readonly services: ServiceCaller;
  readonly alarms = new AlarmBook();
  readonly #opts: Required<Omit<LiveFeedOptions, "runtimeDir" | "log">> & { log: (l: string) => void };
  readonly #clients = new Set<FeedClient>();
  readonly #watches = new Map<string, TopicWatch | Promise<TopicWatch | undefined>>();
  readonly #logs: LogEntry[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #busy = new Set<string>();
  #graphTimer: NodeJS.Timeout | undefined;
  #graphSentAt = 0;
  #logSub: { close(): void } | undefined;
  #pendingLogs: LogEntry[] = [];
  #closed = false;
  /** Last state seen per source, for late-joining pages. */
  readonly #last = new Map<string, Record<string, unknown>>();
  /** Per watched topic: its drops when last seen, and when they last rose (ms; 0: not since the watch began). */
  readonly #dropsSeen = new Map<string, { drops: number; at: number }>();
  /** The flow alarms' counters between two polls of the nodes' status. */
  readonly #flowMem: FlowMemory = new Map();
  /** Per process key: last pid and restart count, and when it last restarted (ms). */
  readonly #procSeen = new Map<string, { pid: number; restarts: number; restartedAt: number }>();

  private constructor(node: Node, opts: LiveFeedOptions) {
    this.node = node;
    this.services = new ServiceCaller(node);
    this.#opts = {
      maxWatched: opts.maxWatched ?? 200,
      logLines: opts.logLines ?? 2000,
      storeLowBytes: opts.storeLowBytes ?? 512 * 1024 * 1024,
      maxLag: opts.maxLag ?? 10000,
      slowBacklog: opts.slowBacklog ?? 100,
      flowMs: opts.flowMs ?? 2000,
      log: opts.log ?? (() => {}),
    };
  }

  /** Starts the feed's node; it does nothing more until a page connects. */
  static async start(opts: LiveFeedOptions = {}): Promise<LiveFeed> {
    const node = await createNode({
      name: "_dashboard",
      ...(opts.runtimeDir !== undefined ? { runtimeDir: opts.runtimeDir } : {}),
    });
    const feed = new LiveFeed(node, opts);
    node.on("graph", () => feed.#graphChanged());
    return feed;
  }

  /** The graph now (undefined before the hub first answered). */
  graph(): GraphSnapshot | undefined {
    return this.node.graph();
  }

  /** How many pages are connected. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Adds a page: it gets everything known now, then the changes. */
  addClient(c: FeedClient): void {
    this.#clients.add(c);
    c.send({ t: "hello", host: this.node.host, pid: process.pid, now: Date.now() }, false);
    const g = this.graph();
    if (g !== undefined) c.send({ t: "graph", graph: g }, false);
    for (const m of this.#last.values()) c.send(m, false);
    c.send({ t: "logs", lines: this.#logs, reset: true }, false);
    this.#sendAlarms(c);
    if (this.#clients.size === 1) this.#startLoops();
    this.watchChanged();
  }

  /** Removes a page. */
  removeClient(c: FeedClient): void {
    this.#clients.delete(c);
    if (this.#clients.size === 0) this.#stopLoops();
    this.watchChanged();
  }

  /** Call when a page changed what it watches: subscribes to what is new, drops what nobody shows. */
  watchChanged(): void {
    if (this.#closed) return;
    const want = new Set<string>();
    for (const c of this.#clients) {
      if (c.sample !== undefined) want.add(c.sample);
      for (const t of c.watch) {
        if (want.size >= this.#opts.maxWatched) break;
        want.add(t);
      }
    }
    for (const [topic, w] of this.#watches) {
      if (want.has(topic)) continue;
      this.#watches.delete(topic);
      void Promise.resolve(w).then((x) => x?.close());
    }
    const types = new Map<string, string>();
    for (const n of this.graph()?.nodes ?? []) {
      for (const d of n.pubs) types.set(d.topic, d.type);
      for (const d of n.subs) if (!types.has(d.topic)) types.set(d.topic, d.type);
    }
    for (const topic of want) {
      const type = types.get(topic);
      if (this.#watches.has(topic) || type === undefined) continue;
      const p = TopicWatch.start(this.node, topic, type).then(
        (w) => {
          if (this.#watches.get(topic) !== p) {
            w.close();
            return undefined;
          }
          this.#watches.set(topic, w);
          return w;
        },
        (err: unknown) => {
          this.#opts.log(`dashboard: cannot watch ${topic}: ${(err as Error).message}`);
          this.#watches.delete(topic);
          return undefined;
        },
      );
      this.#watches.set(topic, p);
    }
  }

  // ---- loops ----------------------------------------------------------------------------------

  #startLoops(): void {
    const every = (ms: number, fn: () => Promise<void> | void, name: string): void => {
      const run = (): void => {
        if (this.#busy.has(name) || this.#closed) return;
        this.#busy.add(name);
        void Promise.resolve()
          .then(fn)
          .catch((err: unknown) => this.#opts.log(`dashboard: ${name}: ${(err as Error).message}`))
          .finally(() => this.#busy.delete(name));
      };
      run();
      this.#timers.push(setInterval(run, ms));
    };
    every(PS_MS, () => this.#pollProcesses(), "processes");
    every(STATS_MS, () => this.#sendStats(), "stats");
    every(SAMPLE_MS, () => this.#sendSamples(), "samples");
    every(SLOW_MS, () => this.#pollSlow(), "status");
    every(this.#opts.flowMs, () => this.#pollFlow(), "flow");
    every(250, () => this.#flushLogs(), "logs");
    if (this.#logSub === undefined) {
      void this.node
        .createSubscription(
          LOG_TOPIC,
          rcl_interfaces.Log,
          (m) => {
            const e: LogEntry = {
              at: m.stamp.sec * 1000 + Math.floor(m.stamp.nanosec / 1e6),
              level: logLevel(m.level, m.msg),
              name: m.name,
              msg: m.msg,
            };
            this.#logs.push(e);
            if (this.#logs.length > this.#opts.logLines)
              this.#logs.splice(0, this.#logs.length - this.#opts.logLines);
            this.#pendingLogs.push(e);
          },
          { qos: { reliability: "best-effort", depth: 100 } },
        )
        .then((s) => {
          if (this.#closed) s.close();
          else this.#logSub = s;
        })
        .catch((err: unknown) =>
          this.#opts.log(`dashboard: cannot follow ${LOG_TOPIC}: ${(err as Error).message}`),
        );
    }
  }

  #stopLoops(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.length = 0;
  }

  #broadcast(msg: Record<string, unknown>, droppable: boolean, keep?: string): void {
    if (keep !== undefined) this.#last.set(keep, msg);
    for (const c of this.#clients) c.send(msg, droppable);
  }

  #graphChanged(): void {
    if (this.#clients.size === 0 || this.#graphTimer !== undefined) return;
    const wait = Math.max(0, this.#graphSentAt + GRAPH_MIN_MS - Date.now());
    this.#graphTimer = setTimeout(() => {
      this.#graphTimer = undefined;
      this.#graphSentAt = Date.now();
      const g = this.graph();
      if (g !== undefined) this.#broadcast({ t: "graph", graph: g }, false);
      this.watchChanged();
    }, wait);
  }

  #has(service: string): boolean {
    return ServiceCaller.typeOf(this.graph(), service) !== undefined;
  }

  #sendStats(): void {
    const now = Date.now();
    const topics: Record<string, TopicStats> = {};
    const conditions: AlarmCondition[] = [];
    for (const t of this.#dropsSeen.keys()) if (!this.#watches.has(t)) this.#dropsSeen.delete(t);
    for (const [topic, w] of this.#watches) {
      if (w instanceof Promise) continue;
      const s = w.stats(now);
      topics[topic] = s;
      const seen = this.#dropsSeen.get(topic);
      if (seen === undefined || s.drops > seen.drops)
        this.#dropsSeen.set(topic, { drops: s.drops, at: seen === undefined ? 0 : now });
      const lostAt = this.#dropsSeen.get(topic)!.at;
      if (lostAt > 0 && now - lostAt < DROPS_HOLD_MS) {
        conditions.push({
          kind: "topic-drops",
          subject: topic,
          severity: "warning",
          message: `${topic}: ${s.drops} message${s.drops === 1 ? "" : "s"} lost on the way to the dashboard (of ${s.received + s.drops}) since it was opened`,
        });
      }
    }
    this.#broadcast({ t: "stats", at: now, topics }, true);
    this.#alarm("topics", conditions);
  }

  #sendSamples(): void {
    const wanted = new Set<string>();
    for (const c of this.#clients) if (c.sample !== undefined) wanted.add(c.sample);
    for (const topic of wanted) {
      const w = this.#watches.get(topic);
      if (w === undefined || w instanceof Promise) continue;
      const latest = w.takeLatest();
      if (latest === undefined) continue;
      const view = messageView(w.typeName, latest.msg);
      const msg = { t: "sample", topic, type: w.typeName, at: latest.at, ...view };
      for (const c of this.#clients) if (c.sample === topic) c.send(msg, true);
    }
  }

  #flushLogs(): void {
    if (this.#pendingLogs.length === 0) return;
    const lines = this.#pendingLogs;
    this.#pendingLogs = [];
    this.#broadcast({ t: "logs", lines }, false);
  }

  #alarm(source: string, conditions: AlarmCondition[]): void {
    if (this.alarms.update(source, conditions, Date.now())) {
      for (const c of this.#clients) this.#sendAlarms(c);
    }
  }

  #sendAlarms(c: FeedClient): void {
    c.send({ t: "alarms", active: this.alarms.active(), history: this.alarms.history() }, false);
  }

  async #pollProcesses(): Promise<void> {
    if (!this.#has(SUPERVISOR_PROTOCOL.ps.service)) {
      this.#broadcast({ t: "processes", available: false, rows: [] }, false, "processes");
      this.#alarm("processes", []);
      return;
    }
    const r = await this.services.call(SUPERVISOR_PROTOCOL.ps.service, SUPERVISOR_PROTOCOL.ps.type, {}, 3000);
    const rows = JSON.parse(r.processes_json) as ProcessRow[];
    this.#broadcast(
      { t: "processes", available: true, rows, spec: r.spec_file, environment: r.environment },
      false,
      "processes",
    );
    this.#alarm("processes", this.#processConditions(rows, Date.now()));
  }

  /** Alarms of the supervised processes: down (shown at least 3 s after a restart), crash loop. */
  #processConditions(rows: ProcessRow[], now: number): AlarmCondition[] {
    const out: AlarmCondition[] = [];
    const keys = new Set<string>();
    for (const r of rows) {
      const key = `${r.process}#${r.replica}`;
      keys.add(key);
      const seen = this.#procSeen.get(key);
      const restarted =
        seen !== undefined &&
        ((r.pid > 0 && seen.pid > 0 && r.pid !== seen.pid) || r.restarts > seen.restarts);
      const restartedAt = restarted ? now : (seen?.restartedAt ?? 0);
      this.#procSeen.set(key, {
        pid: r.pid > 0 ? r.pid : (seen?.pid ?? 0),
        restarts: r.restarts,
        restartedAt,
      });
      if (r.state === "failed") {
        out.push({
          kind: "crash-loop",
          subject: key,
          severity: "error",
          message: `${key} failed and is not restarted any more (${r.restarts} restarts): ${r.detail}`,
        });
      } else if (r.state === "stopped" || r.state === "exited") {
        continue; // stopped on purpose, or per its restart policy
      } else if (r.state !== "ready" && r.state !== "waiting") {
        out.push({
          kind: "process-down",
          subject: key,
          severity: r.state === "unhealthy" ? "warning" : "error",
          message: `${key} is ${r.state}${r.detail !== "" ? `: ${r.detail}` : ""}`,
        });
      } else if (now - restartedAt < 3000) {
        out.push({
          kind: "process-down",
          subject: key,
          severity: "warning",
          message: `${key} restarted (pid ${r.pid}, ${r.restarts} restart${r.restarts === 1 ? "" : "s"} so far)`,
        });
      }
    }
    for (const k of this.#procSeen.keys()) if (!keys.has(k)) this.#procSeen.delete(k);
    return out;
  }

  async #pollSlow(): Promise<void> {
    const g = this.graph();
    await Promise.all([
      this.#pollStore(g).catch((err: unknown) =>
        this.#opts.log(`dashboard: store: ${(err as Error).message}`),
      ),
      this.#pollGateway().catch((err: unknown) =>
        this.#opts.log(`dashboard: gateway: ${(err as Error).message}`),
      ),
      this.#pollBridges().catch((err: unknown) =>
        this.#opts.log(`dashboard: bridges: ${(err as Error).message}`),
      ),
      this.#pollTwins(g).catch((err: unknown) =>
        this.#broadcast(
          { t: "twins", available: true, error: (err as Error).message, twins: [] },
          false,
          "twins",
        ),
      ),
    ]);
  }

  /**
   * Reads the flow status of every node that serves one (`/_status/<node>`), a few at a time, and
   * raises the missed-deadline, slow- and dropping-subscriber alarms (flow-alarms.ts). A node that
   * does not answer in time is skipped this round.
   */
  async #pollFlow(): Promise<void> {
    const g = this.graph();
    if (g === undefined) return;
    const names = new Map<string, string>();
    const serving = new Set<string>();
    for (const n of g.nodes) {
      names.set(n.id, n.name);
      if (n.name === this.node.name) continue;
      const service = statusProtocol(n.name).status.service;
      if (n.services.some((s) => s.service === service)) serving.add(n.name);
    }
    const todo = [...serving];
    const statuses: NodeStatus[] = [];
    const worker = async (): Promise<void> => {
      for (let name = todo.shift(); name !== undefined; name = todo.shift()) {
        try {
          statuses.push(await fetchNodeStatus(this.node, name, { timeoutMs: FLOW_TIMEOUT_MS }));
        } catch (err) {
          this.#opts.log(`dashboard: status of ${name}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FLOW_PARALLEL, todo.length) }, worker));
    if (this.#closed) return;
    const opts: Partial<FlowAlarmOptions> = { slowBacklog: this.#opts.slowBacklog, holdMs: DROPS_HOLD_MS };
    const { conditions, topics } = flowAlarms(
      statuses,
      (id) => names.get(id),
      this.#flowMem,
      Date.now(),
      opts,
      (n) => n === this.node.name,
    );
    this.#broadcast({ t: "flow", at: Date.now(), topics }, false, "flow");
    this.#alarm("flow", conditions);
  }

  async #pollStore(g: GraphSnapshot | undefined): Promise<void> {
    const conditions: AlarmCondition[] = [];
    if (this.#has(HUB_INFO_PROTOCOL.info.service)) {
      const info = await this.services.call(
        HUB_INFO_PROTOCOL.info.service,
        HUB_INFO_PROTOCOL.info.type,
        {},
        3000,
      );
      this.#broadcast({ t: "hub", info }, false, "hub");
      if (info.store_disk_full_since > 0) {
        conditions.push({
          kind: "store-full",
          subject: info.data_dir,
          severity: "error",
          message: `the store's disk is full since ${new Date(info.store_disk_full_since).toISOString()}: persistent publishes are refused; free space under ${info.data_dir}`,
        });
      } else if (
        info.data_dir !== "" &&
        info.store_free_bytes >= 0 &&
        info.store_free_bytes < this.#opts.storeLowBytes
      ) {
        conditions.push({
          kind: "store-full",
          subject: info.data_dir,
          severity: "warning",
          message: `the store's disk is nearly full: ${(info.store_free_bytes / 1048576).toFixed(0)} MiB free under ${info.data_dir}`,
        });
      }
    }
    if (!this.#has(STORE_PROTOCOL.info.service)) {
      this.#broadcast({ t: "durable", available: false, topics: [] }, false, "durable");
      this.#alarm("store", conditions);
      return;
    }
    const durable = new Set<string>();
    for (const n of g?.nodes ?? []) {
      for (const d of [...n.pubs, ...n.subs]) if (d.qos.durability === "persistent") durable.add(d.topic);
    }
    const topics = [];
    for (const topic of [...durable].sort().slice(0, 100)) {
      const i = await this.services.call(
        STORE_PROTOCOL.info.service,
        STORE_PROTOCOL.info.type,
        { topic },
        3000,
      );
      if (!i.exists) continue;
      topics.push({ topic, ...i });
      i.consumers.forEach((c, k) => {
        const lag = i.lags[k] ?? 0;
        if (lag > this.#opts.maxLag) {
          conditions.push({
            kind: "consumer-lag",
            subject: `${topic} ${c}`,
            severity: "warning",
            message: `durable consumer ${c} of ${topic} is ${lag} messages behind`,
          });
        }
      });
    }
    this.#broadcast({ t: "durable", available: true, topics }, false, "durable");
    this.#alarm("store", conditions);
  }

  async #pollGateway(): Promise<void> {
    if (!this.#has(GATEWAY_PROTOCOL.status.service)) {
      this.#broadcast({ t: "gateway", available: false }, false, "gateway");
      return;
    }
    const status = await this.services.call(
      GATEWAY_PROTOCOL.status.service,
      GATEWAY_PROTOCOL.status.type,
      {},
      3000,
    );
    this.#broadcast({ t: "gateway", available: true, status }, false, "gateway");
  }

  async #pollBridges(): Promise<void> {
    if (!this.#has(BRIDGE_PROTOCOL.status.service)) {
      this.#broadcast({ t: "bridges", available: false, bridges: [] }, false, "bridges");
      this.#alarm("bridges", []);
      return;
    }
    const r = await this.services.call(BRIDGE_PROTOCOL.status.service, BRIDGE_PROTOCOL.status.type, {}, 3000);
    const bridges = JSON.parse(r.message) as { name: string; state: string; lastError?: string }[];
    this.#broadcast({ t: "bridges", available: true, bridges }, false, "bridges");
    this.#alarm(
      "bridges",
      bridges
        .filter((b) => b.state !== "connected")
        .map((b) => ({
          kind: "bridge-down",
          subject: b.name,
          severity: "error" as const,
          message: `bridge ${b.name} is ${b.state}${b.lastError !== undefined && b.lastError !== "" ? `: ${b.lastError}` : ""}`,
        })),
    );
  }

  async #pollTwins(g: GraphSnapshot | undefined): Promise<void> {
    if (ServiceCaller.typeOf(g, TWIN_PROTOCOL.list.service) === undefined) {
      this.#broadcast({ t: "twins", available: false, twins: [] }, false, "twins");
      return;
    }
    const res = await this.services.call(
      TWIN_PROTOCOL.list.service,
      TWIN_PROTOCOL.list.type,
      { pattern: "", after: "", max: 1000 },
      3000,
    );
    this.#broadcast({ t: "twins", available: true, list: res }, false, "twins");
  }

  /** Stops everything and closes the node. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopLoops();
    if (this.#graphTimer !== undefined) clearTimeout(this.#graphTimer);
    this.#logSub?.close();
    for (const w of this.#watches.values()) void Promise.resolve(w).then((x) => x?.close());
    this.#watches.clear();
    this.services.close();
    await this.node.close();
  }
}
