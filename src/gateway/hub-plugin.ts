/** The MQTT gateway and the bridges as hub plugins. */
import type { HubPlugin, RunningHubPlugin } from "../hub/index.js";
import { BridgeHost, type BridgeHostOptions } from "./bridge-host.js";
import { MqttGateway, type MqttGatewayOptions } from "./mqtt-gateway.js";

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
