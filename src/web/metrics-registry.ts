/**
 * The hub's metrics (docs/metrics.md) as prom-client registries: every value is read at scrape
 * time from the components' own status functions — the registry, the federation, the store, the
 * uplink, the MQTT gateway, the bridges, the Foxglove server, shared memory — through
 * {@link MetricsSources}, once per scrape (a snapshot), then written in the Prometheus text format
 * (0.0.4) or OpenMetrics 1.0. Only the store's fsync histogram is observed as it happens.
 *
 * Labels are bounded: topics, consumers, streams, bridges and peer hosts are named (there are as
 * many as the configuration and the store make), messages and clients never are.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type PrometheusContentType,
  type OpenMetricsContentType,
} from "prom-client";
import type { HubStats, SiteStatus } from "../hub/index.js";
import type { StoreTopicMetrics } from "../store/index.js";
import type { BridgeStatus, GatewayStatus, UplinkStatus } from "../gateway/index.js";
import type { FoxgloveStatus } from "../foxglove/index.js";
import type { ShmStats } from "../transport/shm/shm-stats.js";

/** What the Foxglove server says about itself, for the metrics. */
export interface FoxgloveMetricsSource {
  status: FoxgloveStatus;
  totals: { clientsConnected: number; dropped: number; droppedBytes: number };
}

/**
 * Where the metrics come from. Each function is called once per scrape and returns undefined when
 * its component does not run in this hub (its metrics are then left out).
 */
export interface MetricsSources {
  /** The hub's version and host name, for `myelin_hub_info`. */
  info: { version: string; host: string };
  hub: () => HubStats | undefined;
  site: () => SiteStatus | undefined;
  store: () =>
    | {
        topics: StoreTopicMetrics[];
        freeBytes: number | undefined;
        diskFull: boolean;
      }
    | undefined;
  uplink: () => UplinkStatus | undefined;
  gateway: () => GatewayStatus | undefined;
  bridges: () => BridgeStatus[] | undefined;
  foxglove: () => FoxgloveMetricsSource | undefined;
  shm: () => ShmStats | undefined;
}

/** One scrape's reading of every source. */
interface Snapshot {
  hub: HubStats | undefined;
  site: SiteStatus | undefined;
  store: ReturnType<MetricsSources["store"]>;
  uplink: UplinkStatus | undefined;
  gateway: GatewayStatus | undefined;
  bridges: BridgeStatus[] | undefined;
  foxglove: FoxgloveMetricsSource | undefined;
  shm: ShmStats | undefined;
}

/** Buckets of the fsync histogram, in seconds: 0.1 ms to 2.5 s. */
export const FSYNC_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

type Labels = Record<string, string>;
type Put = (labels: Labels, value: number) => void;

/** The content types a scrape can ask for. */
export type MetricsFormat = "prometheus" | "openmetrics";

/**
 * The metrics of one hub, in both formats. Create once per hub process; `scrape` reads the
 * sources and renders them.
 */
export class HubMetrics {
  readonly #sources: MetricsSources;
  readonly #registries: {
    prometheus: Registry<PrometheusContentType>;
    openmetrics: Registry<OpenMetricsContentType>;
  };
  readonly #fsync: Histogram[] = [];
  #snap: Snapshot | undefined;
  #scrapes = 0;
  #lastScrapeSeconds = 0;

  /** @param opts.processMetrics add prom-client's default process and Node.js metrics (default true) */
  constructor(sources: MetricsSources, opts: { processMetrics?: boolean } = {}) {
    this.#sources = sources;
    const prometheus = new Registry<PrometheusContentType>();
    const openmetrics = new Registry<OpenMetricsContentType>();
    openmetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    this.#registries = { prometheus, openmetrics };
    for (const reg of [prometheus, openmetrics] as Registry<
      PrometheusContentType | OpenMetricsContentType
    >[]) {
      this.#define(reg);
      if (opts.processMetrics !== false) collectDefaultMetrics({ register: reg });
    }
  }

  /** Records one fsync of the store, in seconds (the store calls this after each one). */
  observeFsync(seconds: number): void {
    for (const h of this.#fsync) h.observe(seconds);
  }

  /** Every Myelin metric (not the process ones): name, type, help and label names, for docs and tests. */
  describe(): { name: string; type: string; help: string; labels: string[] }[] {
    return this.#registries.prometheus
      .getMetricsAsArray()
      .filter((m) => m.name.startsWith("myelin_"))
      .map((m) => {
        const x = m as unknown as { name: string; help: string; type: string; labelNames?: string[] };
        return { name: x.name, type: x.type, help: x.help, labels: [...(x.labelNames ?? [])] };
      });
  }

  /** Scrapes taken so far. */
  get scrapes(): number {
    return this.#scrapes;
  }

  /**
   * Reads every source once and renders the metrics.
   * @returns the body and its content type
   */
  async scrape(format: MetricsFormat = "prometheus"): Promise<{ contentType: string; body: string }> {
    const t0 = process.hrtime.bigint();
    const s = this.#sources;
    this.#snap = {
      hub: s.hub(),
      site: s.site(),
      store: s.store(),
      uplink: s.uplink(),
      gateway: s.gateway(),
      bridges: s.bridges(),
      foxglove: s.foxglove(),
      shm: s.shm(),
    };
    const reg = this.#registries[format];
    // Every metric's collect() runs synchronously at the start of metrics(), on this snapshot.
    const rendering = reg.metrics();
    this.#snap = undefined;
    // prom-client writes NaN as `Nan`: Prometheus reads it, OpenMetrics wants `NaN`.
    const body = (await rendering).replace(/ Nan$/gm, " NaN");
    this.#scrapes++;
    this.#lastScrapeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { contentType: reg.contentType, body };
  }

  #define(reg: Registry<PrometheusContentType | OpenMetricsContentType>): void {
    const snap = (): Snapshot | undefined => this.#snap;
    const gauge = (
      name: string,
      help: string,
      labelNames: string[],
      fill: (s: Snapshot, put: Put) => void,
    ): void => {
      const cfg: GaugeConfiguration<string> = {
        name,
        help,
        labelNames,
        registers: [reg],
        collect(this: Gauge) {
          this.reset();
          const s = snap();
          if (s !== undefined) fill(s, (l, v) => this.set(l, v));
        },
      };
      new Gauge(cfg);
    };
    const counter = (
      name: string,
      help: string,
      labelNames: string[],
      fill: (s: Snapshot, put: Put) => void,
    ): void => {
      const cfg: CounterConfiguration<string> = {
        name,
        help,
        labelNames,
        registers: [reg],
        collect(this: Counter) {
          this.reset();
          const s = snap();
          if (s !== undefined) fill(s, (l, v) => this.inc(l, Math.max(0, v)));
        },
      };
      new Counter(cfg);
    };
    const scalar =
      <T>(pick: (s: Snapshot) => T | undefined, value: (x: T) => number) =>
      (s: Snapshot, put: Put): void => {
        const x = pick(s);
        if (x !== undefined) put({}, value(x));
      };

    // ---- the metrics themselves ----
    gauge(
      "myelin_hub_info",
      "The hub: its version and host name (always 1).",
      ["version", "host"],
      (_s, put) => put({ version: this.#sources.info.version, host: this.#sources.info.host }, 1),
    );
    gauge(
      "myelin_metrics_last_scrape_seconds",
      "How long the previous scrape took to read the sources and render, in seconds.",
      [],
      (_s, put) => put({}, this.#lastScrapeSeconds),
    );

    // The registry.
    gauge(
      "myelin_hub_nodes",
      "Nodes in the graph: of this host (local) and of peer hosts (peer).",
      ["origin"],
      (s, put) => {
        if (s.hub === undefined) return;
        put({ origin: "local" }, s.hub.localNodes);
        put({ origin: "peer" }, s.hub.peerNodes);
      },
    );
    gauge(
      "myelin_hub_topics",
      "Distinct topics published or subscribed in the graph (hidden /_… left out).",
      [],
      scalar(
        (s) => s.hub,
        (h) => h.topics,
      ),
    );
    gauge(
      "myelin_hub_services",
      "Distinct services served in the graph (hidden /_… left out).",
      [],
      scalar(
        (s) => s.hub,
        (h) => h.services,
      ),
    );
    gauge(
      "myelin_hub_graph_version",
      "Version of the merged graph (grows with every change).",
      [],
      scalar(
        (s) => s.hub,
        (h) => h.graphVersion,
      ),
    );
    counter(
      "myelin_hub_declarations_refused_total",
      "Declarations of registering nodes refused: by the permission policy (policy), for another type than the graph's (type_conflict), for a node id owned by another connection (ownership).",
      ["reason"],
      (s, put) => {
        if (s.hub === undefined) return;
        put({ reason: "policy" }, s.hub.refusedPolicy);
        put({ reason: "type_conflict" }, s.hub.refusedConflicts);
        put({ reason: "ownership" }, s.hub.refusedOwnership);
      },
    );
    counter(
      "myelin_hub_handshakes_refused_total",
      "Handshakes and connections refused on CURVE tcp endpoints (untrusted key, plain text, bad proof: the ZAP handler's refusals).",
      [],
      scalar(
        (s) => s.hub,
        (h) => h.refusedHandshakes,
      ),
    );
    counter(
      "myelin_hub_bad_messages_total",
      "Control messages dropped because they were malformed.",
      [],
      scalar(
        (s) => s.hub,
        (h) => h.badMessages,
      ),
    );

    // The federation.
    const peerName = (p: SiteStatus["peers"][number]): string =>
      p.host !== "" ? p.host : (p.endpoint ?? p.hub);
    gauge(
      "myelin_site_peer_state",
      "State of each peer hub (1 for its current state): up, syncing, unreachable, connecting.",
      ["peer", "state"],
      (s, put) => {
        for (const p of s.site?.peers ?? [])
          for (const st of ["up", "syncing", "unreachable", "connecting"])
            put({ peer: peerName(p), state: st }, p.state === st ? 1 : 0);
      },
    );
    gauge(
      "myelin_site_peer_lag_versions",
      "Graph versions a peer announced that this hub has not applied yet.",
      ["peer"],
      (s, put) => {
        for (const p of s.site?.peers ?? []) put({ peer: peerName(p) }, p.lagVersions);
      },
    );
    gauge(
      "myelin_site_peer_last_heard_seconds",
      "Time since a peer hub was last heard, in seconds (left out until first heard).",
      ["peer"],
      (s, put) => {
        for (const p of s.site?.peers ?? [])
          if (p.silentMs >= 0) put({ peer: peerName(p) }, p.silentMs / 1000);
      },
    );
    gauge("myelin_site_peer_nodes", "Nodes of each peer hub in this hub's graph.", ["peer"], (s, put) => {
      for (const p of s.site?.peers ?? []) put({ peer: peerName(p) }, p.nodes);
    });

    // The store.
    const topics = (s: Snapshot): StoreTopicMetrics[] => s.store?.topics ?? [];
    gauge(
      "myelin_store_topics",
      "Durable topics the store has open (opened since the hub started).",
      [],
      scalar(
        (s) => s.store,
        (st) => st.topics.length,
      ),
    );
    gauge(
      "myelin_store_free_bytes",
      "Bytes free for the hub's user on the store's file system.",
      [],
      (s, put) => {
        if (s.store?.freeBytes !== undefined) put({}, s.store.freeBytes);
      },
    );
    gauge(
      "myelin_store_disk_full",
      "1 while appends are refused because the store's disk is full.",
      [],
      scalar(
        (s) => s.store,
        (st) => (st.diskFull ? 1 : 0),
      ),
    );
    gauge(
      "myelin_store_topic_messages",
      "Messages retained by a durable topic (a work queue: from the oldest one a consumer still needs).",
      ["topic"],
      (s, put) => {
        for (const t of topics(s)) put({ topic: t.topic }, t.messages);
      },
    );
    gauge("myelin_store_topic_bytes", "Bytes of a durable topic's segment files.", ["topic"], (s, put) => {
      for (const t of topics(s)) put({ topic: t.topic }, t.bytes);
    });
    gauge(
      "myelin_store_topic_first_seq",
      "Sequence number of a durable topic's oldest retained message.",
      ["topic"],
      (s, put) => {
        for (const t of topics(s)) put({ topic: t.topic }, t.firstSeq);
      },
    );
    gauge(
      "myelin_store_topic_last_seq",
      "Sequence number of a durable topic's newest message (0: none yet).",
      ["topic"],
      (s, put) => {
        for (const t of topics(s)) put({ topic: t.topic }, t.lastSeq);
      },
    );
    counter(
      "myelin_store_topic_appends_total",
      "Messages appended to a durable topic since the hub opened it.",
      ["topic"],
      (s, put) => {
        for (const t of topics(s)) put({ topic: t.topic }, t.appended);
      },
    );
    gauge(
      "myelin_store_consumer_lag_messages",
      "Messages of a durable topic a named consumer has not acknowledged yet.",
      ["topic", "consumer"],
      (s, put) => {
        for (const t of topics(s))
          for (const c of t.consumers) put({ topic: t.topic, consumer: c.name }, c.lagMessages);
      },
    );
    gauge(
      "myelin_store_consumer_pending_messages",
      "Messages delivered to a named consumer and waiting for their acknowledgement.",
      ["topic", "consumer"],
      (s, put) => {
        for (const t of topics(s))
          for (const c of t.consumers) put({ topic: t.topic, consumer: c.name }, c.pending);
      },
    );
    counter(
      "myelin_store_consumer_dead_lettered_total",
      "Messages a named consumer sent to the dead-letter topic.",
      ["topic", "consumer"],
      (s, put) => {
        for (const t of topics(s))
          for (const c of t.consumers) put({ topic: t.topic, consumer: c.name }, c.deadLettered);
      },
    );
    this.#fsync.push(
      new Histogram({
        name: "myelin_store_fsync_seconds",
        help: "Time one fsync of a durable topic's group commit took, in seconds (every topic together).",
        buckets: FSYNC_BUCKETS_SECONDS,
        registers: [reg],
      }),
    );

    // The uplink.
    const fwd = (s: Snapshot): UplinkStatus["forwarders"] => s.uplink?.forwarders ?? [];
    const ing = (s: Snapshot): UplinkStatus["ingests"] => s.uplink?.ingests ?? [];
    gauge(
      "myelin_uplink_info",
      "The uplink: its role (site or cloud) and site name (always 1).",
      ["role", "site"],
      (s, put) => {
        if (s.uplink !== undefined) put({ role: s.uplink.role, site: s.uplink.site }, 1);
      },
    );
    gauge(
      "myelin_uplink_connected",
      "1 while the uplink is connected to NATS and its streams are ready.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => (u.state === "connected" ? 1 : 0),
      ),
    );
    gauge(
      "myelin_uplink_state_since_seconds",
      "Time since the uplink entered its current state, in seconds.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => Math.max(0, (Date.now() - u.since) / 1000),
      ),
    );
    counter(
      "myelin_uplink_connects_total",
      "Connections (and reconnections) of the uplink to NATS.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => u.connects,
      ),
    );
    counter(
      "myelin_uplink_disconnects_total",
      "Connections of the uplink lost.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => u.disconnects,
      ),
    );
    counter(
      "myelin_uplink_volatile_sent_total",
      "Volatile messages published on core NATS.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => u.volatileSent,
      ),
    );
    counter(
      "myelin_uplink_volatile_dropped_total",
      "Volatile messages dropped because NATS was unreachable.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => u.volatileDropped,
      ),
    );
    gauge(
      "myelin_uplink_alarm",
      "1 while some forwarder's backlog is at 80 % of its topic's retention or more, or an exported topic is refused.",
      [],
      scalar(
        (s) => s.uplink,
        (u) => (u.alarm ? 1 : 0),
      ),
    );
    gauge(
      "myelin_uplink_topic_refused",
      "1 for an exported durable topic the uplink refuses to forward (a work queue: its acks may remove messages before they are forwarded).",
      ["topic"],
      (s, put) => {
        for (const r of s.uplink?.refused ?? []) put({ topic: r.topic }, 1);
      },
    );
    gauge(
      "myelin_uplink_forwarder_lag_messages",
      "Messages of an exported durable topic not yet acknowledged by JetStream.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.lagMessages);
      },
    );
    gauge(
      "myelin_uplink_forwarder_lag_bytes",
      "Size on disk of those messages, estimated from the log's average record, in bytes.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.lagBytes);
      },
    );
    gauge(
      "myelin_uplink_forwarder_lag_age_seconds",
      "Age of the oldest message not yet forwarded, in seconds (0 when none).",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.lagAgeMs / 1000);
      },
    );
    gauge(
      "myelin_uplink_forwarder_forwarded_seq",
      "Every message of the topic up to this sequence number is in the cloud stream.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.forwarded);
      },
    );
    gauge(
      "myelin_uplink_forwarder_in_flight_messages",
      "Messages published to JetStream and waiting for their acknowledgement.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.inFlight);
      },
    );
    counter(
      "myelin_uplink_forwarder_forwarded_total",
      "Messages published and acknowledged by JetStream since the hub started.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.published);
      },
    );
    counter(
      "myelin_uplink_forwarder_duplicates_total",
      "Of those, acknowledged as duplicates (sent again after a cut or restart, stored once).",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.duplicates);
      },
    );
    counter(
      "myelin_uplink_forwarder_lost_total",
      "Messages retention removed before they were forwarded: they never reach the cloud.",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.lostToRetention);
      },
    );
    gauge(
      "myelin_uplink_forwarder_retention_pressure_ratio",
      "The unforwarded backlog against the topic's retention limits (1: the next message is lost).",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.retentionPressure);
      },
    );
    gauge(
      "myelin_uplink_forwarder_retention_alarm",
      "1 while the retention pressure is 0.8 or more (until it falls under 0.7).",
      ["topic"],
      (s, put) => {
        for (const f of fwd(s)) put({ topic: f.topic }, f.alarm ? 1 : 0);
      },
    );
    gauge(
      "myelin_uplink_ingest_running",
      "1 while the uplink consumes a JetStream stream into local durable topics.",
      ["stream"],
      (s, put) => {
        for (const i of ing(s)) put({ stream: i.stream }, i.running ? 1 : 0);
      },
    );
    counter(
      "myelin_uplink_ingest_stored_total",
      "Messages of a consumed stream stored in local durable topics.",
      ["stream"],
      (s, put) => {
        for (const i of ing(s)) put({ stream: i.stream }, i.stored);
      },
    );
    counter(
      "myelin_uplink_ingest_duplicates_total",
      "Messages of a consumed stream already stored (sent twice), dropped.",
      ["stream"],
      (s, put) => {
        for (const i of ing(s)) put({ stream: i.stream }, i.duplicates);
      },
    );
    counter(
      "myelin_uplink_ingest_out_of_order_total",
      "Messages of a consumed stream that came before one they follow (redelivered later).",
      ["stream"],
      (s, put) => {
        for (const i of ing(s)) put({ stream: i.stream }, i.outOfOrder);
      },
    );
    counter(
      "myelin_uplink_ingest_refused_total",
      "Messages of a consumed stream refused for good.",
      ["stream"],
      (s, put) => {
        for (const i of ing(s)) put({ stream: i.stream }, i.refused);
      },
    );

    // The MQTT gateway.
    const gw = (f: (g: GatewayStatus) => number) => scalar((s) => s.gateway, f);
    gauge(
      "myelin_gateway_clients",
      "MQTT clients connected.",
      [],
      gw((g) => g.clients.length),
    );
    gauge(
      "myelin_gateway_persistent_sessions",
      "Connected MQTT clients with a persistent session (clean = false).",
      [],
      gw((g) => g.persistent_sessions),
    );
    gauge(
      "myelin_gateway_retained_messages",
      "Retained MQTT messages held.",
      [],
      gw((g) => g.retained),
    );
    counter(
      "myelin_gateway_messages_received_total",
      "MQTT PUBLISH packets received from clients.",
      [],
      gw((g) => g.msgs_in),
    );
    counter(
      "myelin_gateway_messages_sent_total",
      "MQTT PUBLISH packets sent to clients.",
      [],
      gw((g) => g.msgs_out),
    );
    counter(
      "myelin_gateway_to_myelin_total",
      "MQTT messages published into Myelin.",
      [],
      gw((g) => g.to_myelin),
    );
    counter(
      "myelin_gateway_from_myelin_total",
      "Myelin messages handed to MQTT.",
      [],
      gw((g) => g.from_myelin),
    );
    counter(
      "myelin_gateway_rejected_total",
      "MQTT messages and subscriptions refused or dropped, by reason (ACL, size, payload, mapping…).",
      ["reason"],
      (s, put) => {
        const g = s.gateway;
        if (g === undefined) return;
        g.reject_reasons.forEach((r, i) => put({ reason: r }, g.reject_counts[i] ?? 0));
      },
    );
    counter(
      "myelin_gateway_connections_refused_total",
      "MQTT connections refused (bad credentials, limits).",
      [],
      gw((g) => g.refused_connections),
    );

    // The bridges.
    const br = (s: Snapshot): BridgeStatus[] => s.bridges ?? [];
    const bridgeCounter = (name: string, help: string, pick: (b: BridgeStatus) => number): void =>
      counter(name, help, ["bridge", "kind"], (s, put) => {
        for (const b of br(s)) put({ bridge: b.name, kind: b.kind }, pick(b));
      });
    gauge(
      "myelin_bridge_connected",
      "1 while a bridge is connected to its broker.",
      ["bridge", "kind"],
      (s, put) => {
        for (const b of br(s)) put({ bridge: b.name, kind: b.kind }, b.state === "connected" ? 1 : 0);
      },
    );
    bridgeCounter("myelin_bridge_messages_in_total", "Broker messages published into Myelin.", (b) => b.in);
    bridgeCounter(
      "myelin_bridge_messages_out_total",
      "Myelin messages handed to the bridge for the broker.",
      (b) => b.out,
    );
    bridgeCounter(
      "myelin_bridge_messages_forwarded_total",
      "Outbound messages the broker acknowledged (QoS 1/2) or that were written to it (QoS 0).",
      (b) => b.sent,
    );
    bridgeCounter(
      "myelin_bridge_messages_dropped_total",
      "Outbound QoS 0 messages dropped while the broker was unreachable.",
      (b) => b.dropped,
    );
    bridgeCounter(
      "myelin_bridge_messages_rejected_total",
      "Inbound messages refused (no rule, bad payload).",
      (b) => b.rejected,
    );
    bridgeCounter(
      "myelin_bridge_errors_total",
      "Outbound messages that could not be forwarded (encoding failed, queue full with reject).",
      (b) => b.outFailed,
    );
    bridgeCounter("myelin_bridge_disconnects_total", "Connections to the broker lost.", (b) => b.disconnects);
    gauge(
      "myelin_bridge_queue_messages",
      "Messages in a bridge's offline queue (in flight included).",
      ["bridge", "kind"],
      (s, put) => {
        for (const b of br(s))
          if (b.queue !== undefined) put({ bridge: b.name, kind: b.kind }, b.queue.messages);
      },
    );
    gauge(
      "myelin_bridge_queue_bytes",
      "Payload bytes in a bridge's offline queue.",
      ["bridge", "kind"],
      (s, put) => {
        for (const b of br(s))
          if (b.queue !== undefined) put({ bridge: b.name, kind: b.kind }, b.queue.bytes);
      },
    );
    counter(
      "myelin_bridge_queue_refused_total",
      "Appends a bridge's full offline queue refused.",
      ["bridge", "kind"],
      (s, put) => {
        for (const b of br(s))
          if (b.queue !== undefined) put({ bridge: b.name, kind: b.kind }, b.queue.refused);
      },
    );

    // The Foxglove server.
    const fx = (f: (x: FoxgloveMetricsSource) => number) => scalar((s) => s.foxglove, f);
    gauge(
      "myelin_foxglove_clients",
      "Foxglove clients connected.",
      [],
      fx((x) => x.status.clients.length),
    );
    gauge(
      "myelin_foxglove_channels",
      "Channels (topics) the Foxglove server advertises.",
      [],
      fx((x) => x.status.channels),
    );
    gauge(
      "myelin_foxglove_queued_bytes",
      "Bytes queued to Foxglove clients, every client together.",
      [],
      fx((x) => x.status.clients.reduce((a, c) => a + c.queuedBytes, 0)),
    );
    counter(
      "myelin_foxglove_clients_connected_total",
      "Foxglove clients that connected since start.",
      [],
      fx((x) => x.totals.clientsConnected),
    );
    counter(
      "myelin_foxglove_dropped_messages_total",
      "Messages dropped for slow Foxglove clients (their budget was full).",
      [],
      fx((x) => x.totals.dropped),
    );
    counter(
      "myelin_foxglove_dropped_bytes_total",
      "Bytes of those messages.",
      [],
      fx((x) => x.totals.droppedBytes),
    );
    counter(
      "myelin_foxglove_connections_refused_total",
      "Foxglove connections refused: no_token, bad_token, bad_request, too_many.",
      ["reason"],
      (s, put) => {
        const r = s.foxglove?.status.refused;
        if (r === undefined) return;
        put({ reason: "no_token" }, r.noToken);
        put({ reason: "bad_token" }, r.badToken);
        put({ reason: "bad_request" }, r.badRequest);
        put({ reason: "too_many" }, r.tooMany);
      },
    );

    // Shared memory (of the hub process: its hidden nodes, the Foxglove server, the recorder).
    gauge(
      "myelin_shm_available",
      "1 when shared memory for large frames is usable in the hub process.",
      [],
      scalar(
        (s) => s.shm,
        (m) => (m.available ? 1 : 0),
      ),
    );
    gauge("myelin_shm_pools", "Shared-memory pools the hub process writes.", [], (s, put) => {
      if (s.shm?.writer) put({}, s.shm.writer.pools);
    });
    gauge("myelin_shm_slots_in_use", "Slots of those pools holding a message or loaned.", [], (s, put) => {
      if (s.shm?.writer) put({}, s.shm.writer.slotsInUse);
    });
    counter(
      "myelin_shm_descriptors_sent_total",
      "Messages the hub process sent as shared-memory descriptors.",
      [],
      (s, put) => {
        if (s.shm?.writer) put({}, s.shm.writer.descriptorsSent);
      },
    );
    counter(
      "myelin_shm_exhausted_total",
      "Large frames sent over the socket because no shared-memory slot was free.",
      [],
      (s, put) => {
        if (s.shm?.writer) put({}, s.shm.writer.exhausted);
      },
    );
    counter(
      "myelin_shm_descriptors_received_total",
      "Messages the hub process received as shared-memory descriptors.",
      [],
      scalar(
        (s) => s.shm,
        (m) => m.reader.descriptorsReceived,
      ),
    );
    counter(
      "myelin_shm_descriptors_refused_total",
      "Descriptors the hub process refused, by reason (pool, slot, range, generation).",
      ["reason"],
      (s, put) => {
        const r = s.shm?.reader;
        if (r === undefined) return;
        put({ reason: "pool" }, r.refusedPool);
        put({ reason: "slot" }, r.refusedSlot);
        put({ reason: "range" }, r.refusedRange);
        put({ reason: "generation" }, r.refusedGeneration);
      },
    );
  }
}
