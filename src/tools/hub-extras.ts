/**
 * The hub's optional plugins in the CLI: the options `myelin hub` takes for the MQTT gateway, the
 * bridges, the uplink, the Foxglove server and the dashboard, and the plugin each asks for. A
 * plugin's modules (and the libraries behind them) are imported only when its options are given, so
 * a hub that runs none of them does not hold them in memory. Each factory checks its options and
 * reads its file before the hub starts anything.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MyelinError } from "../errors.js";
import type { GatewayConfig } from "../gateway/index.js";
import type { FoxgloveSettings } from "../foxglove/index.js";
import type { HubPlugin } from "../hub/index.js";
import type { DashboardOptions } from "../web/index.js";
import { numOpt, strOpt, UsageError, type Invocation, type OptionSpec } from "./common.js";

/** Options `myelin hub` takes for the embedded MQTT gateway. */
export const HUB_GATEWAY_OPTIONS: Record<string, OptionSpec> = {
  "mqtt-port": {
    type: "string",
    arg: "N",
    help: "run the MQTT gateway with a TCP listener on port N (e.g. 1883; overrides listeners.tcp.port of --gateway-config; default: no gateway)",
  },
  "gateway-config": {
    type: "string",
    arg: "FILE",
    help: "run the MQTT gateway as FILE (YAML) says: listeners, topic mapping, users and ACLs, limits (see docs/mqtt-gateway.md)",
  },
};

/**
 * The MQTT gateway plugin of the hub when `--mqtt-port` or `--gateway-config` is given (sessions
 * and retained messages go to `<dataDir>/mqtt`); undefined when not configured.
 * @throws MyelinError ERR_BAD_CONFIG for a bad file or no listener
 */
export async function hubGatewayPlugin(inv: Invocation, dataDir: string): Promise<HubPlugin | undefined> {
  const file = strOpt(inv, "gateway-config");
  const mqttPort = numOpt(inv, "mqtt-port", { min: 0, max: 65535, integer: true, command: "hub" });
  if (file === undefined && mqttPort === undefined) return undefined;
  const { loadGatewayConfig, mqttGatewayPlugin } = await import("../gateway/index.js");
  const cfg: GatewayConfig = file !== undefined ? loadGatewayConfig(file) : { listeners: {} };
  const listeners = { ...cfg.listeners };
  if (mqttPort !== undefined) listeners.tcp = { ...(listeners.tcp ?? {}), port: mqttPort };
  if (listeners.tcp === undefined && listeners.tls === undefined && listeners.ws === undefined) {
    throw new MyelinError(
      "ERR_BAD_CONFIG",
      `${file}: no listener: add listeners.tcp (e.g. { port: 1883 }), tls or ws, or pass --mqtt-port`,
    );
  }
  return mqttGatewayPlugin({ ...cfg, listeners, dataDir: join(dataDir, "mqtt") });
}

/** Options `myelin hub` takes for the bridges. */
export const HUB_BRIDGE_OPTIONS: Record<string, OptionSpec> = {
  "bridge-config": {
    type: "string",
    arg: "FILE",
    help: "run the bridges to external MQTT, NATS or AMQP brokers FILE (YAML) describes (see docs/bridges.md)",
  },
};

/**
 * The bridges plugin of the hub when `--bridge-config` is given (offline queues go to
 * `<dataDir>/bridges/<name>/queue`); undefined when not configured. The file is read when the
 * plugin starts; a bad one stops the hub with ERR_BAD_CONFIG naming the file, entry and field.
 */
export async function hubBridgesPlugin(inv: Invocation, dataDir: string): Promise<HubPlugin | undefined> {
  const file = strOpt(inv, "bridge-config");
  if (file === undefined) return undefined;
  const { bridgesPlugin } = await import("../gateway/index.js");
  return bridgesPlugin({ file, dataDir });
}

/** Options `myelin hub` takes for the uplink. */
export const HUB_UPLINK_OPTIONS: Record<string, OptionSpec> = {
  "uplink-config": {
    type: "string",
    arg: "FILE",
    help: "link this hub to the cloud as FILE (YAML) says: a site exporting topics, or a cloud consuming sites (see docs/edge-to-cloud.md)",
  },
};

/** The uplink plugin when `--uplink-config` is given; undefined otherwise. */
export async function hubUplinkPlugin(inv: Invocation): Promise<HubPlugin | undefined> {
  const file = strOpt(inv, "uplink-config");
  if (file === undefined) return undefined;
  const { uplinkPlugin } = await import("../gateway/index.js");
  return uplinkPlugin({ file });
}

/** Options `myelin hub` takes for the Foxglove server. */
export const HUB_FOXGLOVE_OPTIONS: Record<string, OptionSpec> = {
  "foxglove-port": {
    type: "string",
    arg: "N",
    help: "serve Foxglove and Lichtblick on port N (e.g. 8765; 0 picks a free one; overrides port of --foxglove-config)",
  },
  "foxglove-host": {
    type: "string",
    arg: "ADDR",
    help: "the address the Foxglove server listens on (default 127.0.0.1, this host only; 0.0.0.0 for every interface)",
  },
  "foxglove-token": {
    type: "string",
    arg: "TOKEN",
    help: "the token Foxglove clients must give (default: $MYELIN_FOXGLOVE_TOKEN, else one made at start and printed); other users see command lines with ps: prefer the variable or tokenFile in --foxglove-config",
  },
  "foxglove-config": {
    type: "string",
    arg: "FILE",
    help: "run the Foxglove server as FILE (YAML) says: address, token, TLS, topic allow-lists, send budget, rate caps (see docs/foxglove.md)",
  },
};

/**
 * The Foxglove plugin as `--foxglove-port`, `--foxglove-host`, `--foxglove-token` and
 * `--foxglove-config` say (the options win over the file), or undefined when none is given.
 * @throws MyelinError ERR_BAD_CONFIG for a bad file or token
 */
export async function hubFoxglovePlugin(inv: Invocation): Promise<HubPlugin | undefined> {
  const file = strOpt(inv, "foxglove-config");
  const port = numOpt(inv, "foxglove-port", { min: 0, max: 65535, integer: true, command: "hub" });
  if (file === undefined && port === undefined) {
    for (const o of ["foxglove-host", "foxglove-token"]) {
      if (strOpt(inv, o) !== undefined)
        throw new UsageError(
          `hub: --${o} needs --foxglove-port or --foxglove-config (the server is off without them)`,
        );
    }
    return undefined;
  }
  const { checkToken, foxglovePlugin, loadFoxgloveConfig } = await import("../foxglove/index.js");
  const settings: Partial<FoxgloveSettings> = file !== undefined ? loadFoxgloveConfig(file) : {};
  if (port !== undefined) settings.port = port;
  const host = strOpt(inv, "foxglove-host");
  if (host !== undefined) settings.host = host;
  const envToken = process.env["MYELIN_FOXGLOVE_TOKEN"];
  const token =
    strOpt(inv, "foxglove-token") ?? (envToken !== undefined && envToken !== "" ? envToken : undefined);
  if (token !== undefined) {
    settings.token = checkToken(
      token,
      strOpt(inv, "foxglove-token") !== undefined ? "--foxglove-token" : "MYELIN_FOXGLOVE_TOKEN",
    );
  }
  return foxglovePlugin(settings);
}

/** Options `myelin hub` takes for the dashboard. */
export const HUB_DASHBOARD_OPTIONS: Record<string, OptionSpec> = {
  "http-port": {
    type: "string",
    arg: "N",
    help: "serve the web dashboard on port N (0: any free port; default: no dashboard); see docs/dashboard.md",
  },
  "http-host": {
    type: "string",
    arg: "ADDR",
    help: "address the dashboard listens on (default 127.0.0.1; another one wants --http-tls-cert/--http-tls-key)",
  },
  "http-token-file": {
    type: "string",
    arg: "FILE",
    help: "read the dashboard's token from FILE (default: $MYELIN_DASHBOARD_TOKEN, else a new random one each start)",
  },
  "http-tls-cert": {
    type: "string",
    arg: "FILE",
    help: "serve the dashboard over HTTPS with this PEM certificate",
  },
  "http-tls-key": { type: "string", arg: "FILE", help: "the PEM key of --http-tls-cert" },
};

/**
 * The dashboard plugin `inv` asks for, or undefined without `--http-port`.
 * @throws UsageError for a bad port, half a TLS pair or an unreadable token file
 */
export async function hubDashboardPlugin(inv: Invocation): Promise<HubPlugin | undefined> {
  const port = numOpt(inv, "http-port", { min: 0, max: 65535, integer: true, command: "hub" });
  if (port === undefined) {
    for (const o of ["http-host", "http-token-file", "http-tls-cert", "http-tls-key"]) {
      if (strOpt(inv, o) !== undefined) throw new UsageError(`hub: --${o} needs --http-port`, "hub");
    }
    return undefined;
  }
  const opts: DashboardOptions = { port };
  const host = strOpt(inv, "http-host");
  if (host !== undefined) opts.host = host;
  const cert = strOpt(inv, "http-tls-cert");
  const key = strOpt(inv, "http-tls-key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("hub: give both --http-tls-cert and --http-tls-key, or neither", "hub");
  }
  if (cert !== undefined && key !== undefined) opts.tls = { certFile: cert, keyFile: key };
  const tokenFile = strOpt(inv, "http-token-file");
  if (tokenFile !== undefined) {
    try {
      opts.token = readFileSync(tokenFile, "utf8").trim();
    } catch (err) {
      throw new UsageError(
        `hub: cannot read --http-token-file ${tokenFile}: ${(err as Error).message}`,
        "hub",
      );
    }
  } else {
    const env = process.env["MYELIN_DASHBOARD_TOKEN"];
    if (env !== undefined && env !== "") opts.token = env;
  }
  const { dashboardPlugin } = await import("../web/index.js");
  return dashboardPlugin(opts);
}
