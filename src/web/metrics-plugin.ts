/**
 * The metrics endpoint as a hub plugin (named `metrics`, docs/metrics.md): it reads the registry
 * and the other plugins of the hub process — the store, the uplink, the MQTT gateway, the bridges,
 * the Foxglove server — at each scrape, through their status functions, so a plugin started after
 * it is seen too.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureRuntimeDir, runtimeDir as resolveRuntimeDir } from "../node/config.js";
import type { HubPlugin, HubPluginContext, RunningHubPlugin } from "../hub/index.js";
import type { RunningStorePlugin } from "../store/index.js";
import type { RunningBridgesPlugin, RunningGatewayPlugin, RunningUplinkPlugin } from "../gateway/index.js";
import type { RunningFoxglovePlugin } from "../foxglove/index.js";
import { shmStats } from "../transport/shm/shm-stats.js";
import { isLoopbackHost, type MetricsAddress } from "./metrics-address.js";
import { HubMetrics, type MetricsSources } from "./metrics-registry.js";
import { fmtHostPort, MetricsServer } from "./metrics-server.js";

/** Options of {@link metricsPlugin}. */
export interface MetricsPluginOptions {
  /** Where to listen (port 0: any free port). */
  address: MetricsAddress;
  /** The hub's version, for `myelin_hub_info`. */
  version: string;
  /** How the user gave the address, named in errors (default `--metrics`). */
  where?: string;
  /** prom-client's process and Node.js metrics (default true). */
  processMetrics?: boolean;
}

/** The running metrics plugin. */
export interface RunningMetricsPlugin extends RunningHubPlugin {
  readonly metrics: HubMetrics;
  readonly server: MetricsServer;
  /** The address scrapers use, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
}

/** What `<runtime dir>/metrics.json` holds while a hub serves metrics (for `myelin doctor`). */
export interface MetricsFile {
  /** The address scrapers use. */
  url: string;
  /** The hub process's pid. */
  pid: number;
}

/** Where a hub with runtime directory `runtimeDir` writes its {@link MetricsFile}. */
export function metricsFile(runtimeDir: string | undefined): string {
  return join(resolveRuntimeDir(runtimeDir), "metrics.json");
}

/** A running plugin of `ctx` by name, if it has the member `key` (how its kind is told apart). */
function pluginWith<T extends RunningHubPlugin>(
  ctx: HubPluginContext,
  name: string,
  key: keyof T,
): T | undefined {
  const p = ctx.plugin(name);
  return p !== undefined && key in p ? (p as T) : undefined;
}

/** The sources of a hub process's metrics. */
function sourcesOf(ctx: HubPluginContext, version: string): MetricsSources {
  return {
    info: { version, host: ctx.host },
    hub: () => ctx.stats(),
    site: () => ctx.site(),
    store: () => {
      const s = pluginWith<RunningStorePlugin>(ctx, "store", "store")?.store;
      if (s === undefined) return undefined;
      const h = s.health();
      return { topics: s.metrics(), freeBytes: h.freeBytes, diskFull: h.diskFull !== undefined };
    },
    uplink: () => pluginWith<RunningUplinkPlugin>(ctx, "uplink", "uplink")?.uplink.status(),
    gateway: () => pluginWith<RunningGatewayPlugin>(ctx, "gateway", "gateway")?.gateway.status(),
    bridges: () => pluginWith<RunningBridgesPlugin>(ctx, "bridges", "bridges")?.bridges.status(),
    foxglove: () => {
      const f = pluginWith<RunningFoxglovePlugin>(ctx, "foxglove", "server")?.server;
      return f === undefined ? undefined : { status: f.status(), totals: f.totals() };
    },
    shm: () => shmStats(),
  };
}

/**
 * The metrics plugin: serves `GET /metrics` on `opts.address`. Put it after the store, so the
 * store's fsync times are observed from the start.
 * @throws MyelinError ERR_INVALID_ARGUMENT on start when the address cannot be listened on
 */
export function metricsPlugin(opts: MetricsPluginOptions): HubPlugin {
  return {
    name: "metrics",
    async start(ctx): Promise<RunningMetricsPlugin> {
      const metrics = new HubMetrics(sourcesOf(ctx, opts.version), {
        ...(opts.processMetrics !== undefined ? { processMetrics: opts.processMetrics } : {}),
      });
      const store = pluginWith<RunningStorePlugin>(ctx, "store", "store")?.store;
      store?.observeFsync((s) => metrics.observeFsync(s));
      let server: MetricsServer;
      try {
        server = await MetricsServer.start(opts.address, metrics, {
          log: ctx.log,
          ...(opts.where !== undefined ? { where: opts.where } : {}),
        });
      } catch (err) {
        store?.observeFsync(undefined);
        throw err;
      }
      const url = `http://${fmtHostPort(opts.address.host, server.port)}/metrics`;
      const file = metricsFile(ctx.runtimeDir);
      ensureRuntimeDir(resolveRuntimeDir(ctx.runtimeDir));
      const saved: MetricsFile = { url, pid: process.pid };
      writeFileSync(file, JSON.stringify(saved) + "\n", { mode: 0o644 });
      ctx.log(
        `metrics: Prometheus endpoint ${url}` +
          (isLoopbackHost(opts.address.host) ? "" : " (reachable from other hosts, without authentication)"),
      );
      return {
        metrics,
        server,
        url,
        status: () => ({ url, scrapes: metrics.scrapes }),
        close: async () => {
          store?.observeFsync(undefined);
          try {
            const now = JSON.parse(readFileSync(file, "utf8")) as MetricsFile;
            if (now.pid === process.pid) rmSync(file, { force: true });
          } catch {
            // gone already
          }
          await server.close();
        },
      };
    },
  };
}
