/** The MQTT gateway, the bridges and the uplink to the cloud as hub plugins. */
import { readFile } from "node:fs/promises";
import { MyelinError } from "../errors.js";
import type { HubPlugin, RunningHubPlugin } from "../hub/index.js";
import { BridgeHost, type BridgeHostOptions } from "./bridge-host.js";
import { MqttGateway, type MqttGatewayOptions } from "./mqtt-gateway.js";
import { Uplink, type UplinkOptions } from "./uplink.js";
import { parseUplinkConfigText } from "./uplink-config.js";

/** The running gateway plugin. */
export interface RunningGatewayPlugin extends RunningHubPlugin {
  readonly gateway: MqttGateway;
}

/** The running bridges plugin. */
export interface RunningBridgesPlugin extends RunningHubPlugin {
  readonly bridges: BridgeHost;
}

/**
 * The embedded MQTT gateway (named `gateway`), on the hub's runtime directory and log unless
 * `opts` gives its own.
 */
export function mqttGatewayPlugin(opts: MqttGatewayOptions): HubPlugin {
  return {
    name: "gateway",
    async start(ctx): Promise<RunningGatewayPlugin> {
      const full: MqttGatewayOptions = { ...opts, log: opts.log ?? ctx.log };
      const runtimeDir = opts.runtimeDir ?? ctx.runtimeDir;
      if (runtimeDir !== undefined) full.runtimeDir = runtimeDir;
      const gateway = await MqttGateway.start(full);
      ctx.log(
        `MQTT gateway: ${(opts.mapping ?? []).length} mapping rules${opts.dataDir !== undefined ? `, sessions in ${opts.dataDir}` : ""}`,
      );
      return { gateway, close: () => gateway.close() };
    },
  };
}

/**
 * The bridges to external brokers (named `bridges`), on the hub's runtime directory and log
 * unless `opts` gives its own.
 * @throws MyelinError ERR_BAD_CONFIG on start, naming the file, entry and field of a bad configuration
 */
export function bridgesPlugin(opts: BridgeHostOptions): HubPlugin {
  return {
    name: "bridges",
    async start(ctx): Promise<RunningBridgesPlugin> {
      const full: BridgeHostOptions = { ...opts, log: opts.log ?? ctx.log };
      const runtimeDir = opts.runtimeDir ?? ctx.runtimeDir;
      if (runtimeDir !== undefined) full.runtimeDir = runtimeDir;
      const bridges = await BridgeHost.start(full);
      ctx.log(
        `bridges: ${bridges.bridges.map((b) => `${b.name} (${b.kind})`).join(", ")}${opts.dataDir !== undefined ? `; offline queues in ${opts.dataDir}/bridges` : ""}`,
      );
      return { bridges, close: () => bridges.close() };
    },
  };
}

/** The running uplink plugin. */
export interface RunningUplinkPlugin extends RunningHubPlugin {
  readonly uplink: Uplink;
}

/** Options of {@link uplinkPlugin}. */
export interface UplinkPluginOptions {
  /** The uplink configuration file (YAML), read when the plugin starts. */
  file: string;
  /** The store's data directory; by default the running `store` plugin's. */
  dataDir?: string;
}

/**
 * The uplink to the cloud (named `uplink`, docs/edge-to-cloud.md), started after the store
 * plugin, whose data directory it reads the durable topics from.
 * @throws MyelinError ERR_BAD_CONFIG on start, naming the file and field of a bad configuration,
 *   or when no store runs
 */
export function uplinkPlugin(opts: UplinkPluginOptions): HubPlugin {
  return {
    name: "uplink",
    async start(ctx): Promise<RunningUplinkPlugin> {
      let text: string;
      try {
        text = await readFile(opts.file, "utf8");
      } catch (err) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `cannot read the uplink configuration ${opts.file}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      const config = parseUplinkConfigText(text, opts.file);
      const storeStatus = ctx.plugin("store")?.status?.();
      const dataDir =
        opts.dataDir ?? (typeof storeStatus?.["dataDir"] === "string" ? storeStatus["dataDir"] : undefined);
      if (dataDir === undefined) {
        throw new MyelinError(
          "ERR_BAD_CONFIG",
          `uplink ${opts.file}: the uplink forwards durable topics and needs the store; start the hub with a data directory (not --no-store)`,
        );
      }
      const uo: UplinkOptions = { config, dataDir, log: ctx.log };
      if (ctx.runtimeDir !== undefined) uo.runtimeDir = ctx.runtimeDir;
      const uplink = await Uplink.start(uo);
      ctx.log(
        `uplink: ${config.role} ${config.site} to ${config.nats.servers.join(", ")}` +
          (config.role === "site"
            ? ` (durable ${config.exportDurable.join(" ") || "-"}, volatile ${config.exportVolatile.map((v) => v.topic).join(" ") || "-"}, import ${config.import.join(" ") || "-"})`
            : ` (sites ${config.sites.join(", ")})`),
      );
      return { uplink, close: () => uplink.close(), status: () => ({ ...uplink.status() }) };
    },
  };
}
