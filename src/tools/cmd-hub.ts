/** `myelin hub`: runs the hub of this host in the foreground. */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_SCOUT_ADDRESS,
  parseScoutAddress,
  SITE_NAME,
  hubInfoPlugin,
  loadPolicyFile,
  parsePortRange,
  startHubProcess,
  type HubOptions,
  type HubPlugin,
} from "../hub/index.js";
import { runtimeDir } from "../node/index.js";
import { systemdNotifyPlugin } from "../orchestrator/index.js";
import { parseStoreConfigText, storePlugin, type StoreServiceOptions } from "../store/index.js";
import {
  boolOpt,
  listOpt,
  numOpt,
  strOpt,
  UsageError,
  version,
  type CommandSpec,
  type Invocation,
} from "./common.js";
import { clock } from "./format.js";
import { HUB_SUPERVISOR_OPTIONS, hubSpec, hubSupervisorPlugin, hubSystemdUnit } from "./hub-supervisor.js";
import {
  HUB_BRIDGE_OPTIONS,
  HUB_DASHBOARD_OPTIONS,
  HUB_FOXGLOVE_OPTIONS,
  HUB_GATEWAY_OPTIONS,
  HUB_UPLINK_OPTIONS,
  hubBridgesPlugin,
  hubDashboardPlugin,
  hubFoxglovePlugin,
  hubGatewayPlugin,
  hubUplinkPlugin,
} from "./hub-extras.js";
import { HUB_METRICS_OPTIONS, hubMetricsPlugin } from "./cmd-metrics.js";
import { releaseWhenBusy } from "../orchestrator/idle-costs.js";

export const hubCommand: CommandSpec = {
  path: ["hub"],
  summary: "run the hub of this host in the foreground (registry and discovery)",
  args: [],
  options: {
    listen: {
      type: "string",
      multiple: true,
      arg: "ADDR",
      help: "also listen on ADDR, e.g. tcp://0.0.0.0:7447 for nodes on other hosts (repeatable; the ipc socket is always on); tcp uses CURVE with this host's keys (myelin keys init) and admits only trusted keys",
    },
    insecure: {
      type: "boolean",
      help: "plain text on tcp endpoints, no keys: anyone who reaches the port is admitted (a warning is printed; the hub's nodes and processes also go plain text)",
    },
    "runtime-dir": {
      type: "string",
      arg: "DIR",
      help: "where the ipc socket and pid file go (default: $MYELIN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/myelin, else /tmp/myelin-<uid>)",
    },
    "node-timeout-ms": {
      type: "string",
      arg: "N",
      help: "remove a node silent for N ms (default 3000)",
    },
    policy: {
      type: "string",
      arg: "FILE",
      help: "permission policy (YAML): identities, admins, publish/subscribe/serve/call grants (default: $MYELIN_POLICY, else local is admin; see docs/security.md); read again on SIGHUP and `myelin policy reload`",
    },
    "data-dir": {
      type: "string",
      arg: "DIR",
      help: "where durable topics are stored (default: $MYELIN_DATA_DIR, else $XDG_DATA_HOME/myelin, else ~/.local/share/myelin)",
    },
    "no-store": { type: "boolean", help: "do not serve durable topics" },
    "store-config": {
      type: "string",
      arg: "FILE",
      help: "durable-topic settings (YAML): defaults and per-topic patterns of retention, mode, fsync, dedup window",
    },
    fsync: {
      type: "string",
      arg: "POLICY",
      help: "when a persistent publish is confirmed: always (default: fsync, shared by concurrent publishes), batch (within 5 ms), never",
    },
    import: {
      type: "string",
      multiple: true,
      arg: "MODULE",
      help: "import a module that registers your message types, so the dashboard can publish and call them (repeatable)",
    },
    peer: {
      type: "string",
      multiple: true,
      arg: "ADDR",
      help: "a peer hub of the site, e.g. tcp://10.0.0.2:7447 (repeatable; default $MYELIN_PEERS, comma-separated): each hub shares its nodes with its peers",
    },
    scout: {
      type: "boolean",
      help: `find the site's other hubs by UDP multicast on ${DEFAULT_SCOUT_ADDRESS} (default $MYELIN_SCOUT: 1, or GROUP:PORT) and peer with those of the same --site whose key is trusted; needs a tcp --listen`,
    },
    "scout-address": {
      type: "string",
      arg: "GROUP:PORT",
      help: `scout on this multicast group and UDP port (implies --scout; default ${DEFAULT_SCOUT_ADDRESS})`,
    },
    "scout-interface": {
      type: "string",
      arg: "ADDR",
      help: "the address of the interface to scout on (default: the system's choice, by the multicast route)",
    },
    "scout-interval-ms": {
      type: "string",
      arg: "N",
      help: "announce this hub every N ms (default 1000); a hub unheard for 3.5 of its intervals is forgotten",
    },
    site: {
      type: "string",
      arg: "NAME",
      help: "the site's name: scouting peers only with hubs of the same site (default $MYELIN_SITE, else 'default')",
    },
    host: {
      type: "string",
      arg: "NAME",
      help: "this host's name in the site (default $MYELIN_HOST, else the system's host name); nodes and the CLI that reach this hub over ipc take it",
    },
    "advertise-address": {
      type: "string",
      arg: "ADDR",
      help: "the address nodes of other hosts reach this host's nodes on (default $MYELIN_ADVERTISE_ADDRESS, else the --listen address, else the first non-loopback IPv4)",
    },
    "data-ports": {
      type: "string",
      arg: "LOW-HIGH",
      help: "tcp ports this host's nodes bind for other hosts, e.g. 7500-7599 (default: any free port)",
    },
    "peer-lease-ms": {
      type: "string",
      arg: "N",
      help: "a peer hub silent for N ms is unreachable and its nodes leave the graph (default 3000)",
    },
    verbose: {
      type: "boolean",
      short: "v",
      help: "also log the comings and goings of tools (hidden nodes, names starting with _)",
    },
    ...HUB_SUPERVISOR_OPTIONS,
    ...HUB_GATEWAY_OPTIONS,
    ...HUB_BRIDGE_OPTIONS,
    ...HUB_UPLINK_OPTIONS,
    ...HUB_DASHBOARD_OPTIONS,
    ...HUB_FOXGLOVE_OPTIONS,
    ...HUB_METRICS_OPTIONS,
  },
  details: [
    "Prints the endpoints it listens on, then one line per event: node joined, left, timed out, declaration refused.",
    "SIGHUP reads the trust lists (myelin keys trust/revoke, site files) and the --policy file again. The trust lists are also watched: a revoked key is cut within about a second without it. For the policy: a valid one is put in force and handed to every node, a bad one is refused (logged) and the old policy stays; `myelin policy reload` does the same and prints the outcome.",
    "Stops on Ctrl-C or SIGTERM (exit code 0). One hub runs per runtime directory, and one per data directory: a second hub on the same data directory refuses to start (ERR_LOCKED) and names the first one's pid.",
  ],
  examples: [
    "myelin hub",
    "myelin hub --listen tcp://0.0.0.0:7447   # CURVE; nodes elsewhere set MYELIN_HUB=tcp://<this host>:7447 and MYELIN_HUB_KEY (docs/security.md)",
    "myelin hub --listen tcp://10.0.0.5:7447 --insecure   # plain text, only on a network you fully trust",
    "myelin hub --listen tcp://0.0.0.0:7447 --scout --site plant-1   # find the site's other hubs on the LAN; peers only with trusted keys (docs/site.md)",
    "myelin hub --listen tcp://0.0.0.0:7447 --scout-address 239.255.10.1:7446 --scout-interface 10.0.0.1   # another group, on one interface",
    "myelin hub --listen tcp://10.0.0.1:7447 --peer tcp://10.0.0.2:7447#host2 --peer tcp://10.0.0.3:7447#host3   # a site of three hosts; host2, host3: names of trusted keys (docs/site.md)",
    "MYELIN_RUNTIME_DIR=/tmp/sim MYELIN_DATA_DIR=/tmp/sim/data myelin hub   # a separate world, e.g. for a simulation",
    "myelin hub --data-dir /var/lib/myelin --fsync batch",
    "myelin hub --mqtt-port 1883 --gateway-config gateway.yaml   # MQTT devices in (docs/mqtt-gateway.md)",
    "myelin hub --bridge-config bridges.yaml   # bridges to the site's MQTT, NATS or AMQP broker (docs/bridges.md)",
    "myelin hub --uplink-config uplink.yaml   # connect this site to the cloud over NATS/JetStream (docs/edge-to-cloud.md)",
    "myelin hub --http-port 8080   # the web dashboard on http://127.0.0.1:8080 (the address with its token is printed)",
    "myelin hub --foxglove-port 8765   # see the live system in Foxglove or Lichtblick (docs/foxglove.md)",
    "myelin hub --metrics 9464   # Prometheus metrics on http://127.0.0.1:9464/metrics; --metrics 0.0.0.0:9464 for other hosts (docs/metrics.md)",
    "myelin hub --spec myelin.yaml --label edge   # run a launch spec (see also `myelin up`)",
    "myelin hub --systemd-unit > ~/.config/systemd/user/myelin-hub.service",
    "myelin hub --listen tcp://0.0.0.0:7447 --policy policy.yaml   # who may publish, subscribe, serve, call (docs/security.md)",
  ],
  connects: false,
  async run(ctx, inv) {
    if (boolOpt(inv, "systemd-unit")) {
      ctx.out(hubSystemdUnit(inv));
      return 0;
    }
    const spec = hubSpec(inv);
    const opts: Partial<HubOptions> = { listen: listOpt(inv, "listen") };
    if (boolOpt(inv, "insecure")) {
      opts.insecure = true;
      // The hub's own nodes and the processes it supervises follow its choice.
      process.env["MYELIN_INSECURE"] = "1";
    }
    const dir = strOpt(inv, "runtime-dir");
    if (dir !== undefined) opts.runtimeDir = dir;
    const timeout = numOpt(inv, "node-timeout-ms", { min: 100, integer: true, command: "hub" });
    if (timeout !== undefined) opts.nodeTimeoutMs = timeout;
    const policyFile = strOpt(inv, "policy") ?? (process.env["MYELIN_POLICY"] || undefined);
    if (policyFile !== undefined) {
      opts.policy = loadPolicyFile(policyFile);
      opts.policyFile = policyFile;
    }
    const peers = listOpt(inv, "peer");
    const envPeers = process.env["MYELIN_PEERS"];
    opts.peers =
      peers.length > 0 || envPeers === undefined
        ? peers
        : envPeers
            .split(",")
            .map((p) => p.trim())
            .filter((p) => p !== "");
    const host = strOpt(inv, "host");
    if (host !== undefined) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(host))
        throw new UsageError(`hub: --host '${host}' is not a host name: use letters, digits, '.', '-', '_'`);
      opts.host = host;
      // The hub's own nodes (store, supervisor…) carry the same host name.
      process.env["MYELIN_HOST"] = host;
    }
    const advertise = strOpt(inv, "advertise-address");
    if (advertise !== undefined) opts.advertiseAddress = advertise;
    const ports = strOpt(inv, "data-ports");
    if (ports !== undefined) {
      try {
        opts.dataPorts = parsePortRange(ports);
      } catch (err) {
        throw new UsageError(`hub: --data-ports: ${(err as Error).message}`);
      }
    }
    const scoutEnv = process.env["MYELIN_SCOUT"] ?? "";
    const scoutAddress =
      strOpt(inv, "scout-address") ??
      (boolOpt(inv, "scout") || /^(1|true|yes)$/i.test(scoutEnv)
        ? DEFAULT_SCOUT_ADDRESS
        : scoutEnv !== "" && !/^(0|false|no)$/i.test(scoutEnv)
          ? scoutEnv
          : undefined);
    if (scoutAddress !== undefined) {
      let parsed: { group: string; port: number };
      try {
        parsed = parseScoutAddress(scoutAddress);
      } catch (err) {
        throw new UsageError(`hub: --scout-address: ${(err as Error).message}`);
      }
      const iface = strOpt(inv, "scout-interface");
      const interval = numOpt(inv, "scout-interval-ms", { min: 100, integer: true, command: "hub" });
      opts.scout = {
        ...parsed,
        ...(iface !== undefined ? { interfaceAddress: iface } : {}),
        ...(interval !== undefined ? { intervalMs: interval } : {}),
      };
    }
    const site = strOpt(inv, "site");
    if (site !== undefined) {
      if (!SITE_NAME.test(site))
        throw new UsageError(
          `hub: --site '${site}' is not a site name: use 1-64 letters, digits, '_', '.', '-'`,
        );
      opts.site = site;
    }
    const lease = numOpt(inv, "peer-lease-ms", { min: 100, integer: true, command: "hub" });
    if (lease !== undefined) opts.peerLeaseMs = lease;
    const verbose = boolOpt(inv, "verbose");
    opts.log = (line) => {
      if (!verbose && /^node _/.test(line)) return;
      ctx.out(`${clock()} ${line}`);
    };
    const dataDir = strOpt(inv, "data-dir") ?? defaultDataDir();
    const metrics = await hubMetricsPlugin(inv);
    // Every option is checked before anything starts; the plugins start in this order and stop
    // in the reverse one.
    const plugins: HubPlugin[] = [];
    if (!boolOpt(inv, "no-store")) plugins.push(await hubStorePlugin(inv, dataDir, spec?.topics ?? []));
    plugins.push(hubInfoPlugin({ version: version() }));
    for (const p of [
      await hubGatewayPlugin(inv, dataDir),
      await hubBridgesPlugin(inv, dataDir),
      await hubUplinkPlugin(inv),
      await hubFoxglovePlugin(inv),
      hubSupervisorPlugin(inv, spec),
      await hubDashboardPlugin(inv),
      // Last: it reads the others at each scrape, and is the first to stop.
      metrics,
    ]) {
      if (p !== undefined) plugins.push(p);
    }
    plugins.push(systemdNotifyPlugin());
    // A hub started by a parent over an IPC channel (the demo) stops when that parent is gone, even
    // after kill -9, stopping its supervised processes instead of leaving them behind.
    const orphaned = new AbortController();
    if (process.send !== undefined) {
      process.once("disconnect", () => orphaned.abort());
      process.channel?.unref(); // the channel alone does not keep the hub running once it stopped
    }
    const proc = await startHubProcess({
      hub: opts,
      plugins,
      log: (line) => ctx.out(`${clock()} ${line}`),
      signal: AbortSignal.any([ctx.signal, orphaned.signal]),
    });
    // SIGHUP: read the trust lists and the policy file again (a bad policy is refused and logged,
    // the old one stays).
    const onHup = (): void => {
      proc.hub.checkTrust();
      try {
        proc.hub.reloadPolicy();
      } catch (err) {
        if (policyFile === undefined) ctx.out(`${clock()} SIGHUP: ${(err as Error).message}`);
      }
    };
    process.on("SIGHUP", onHup);
    try {
      ctx.out(
        `${clock()} myelin hub ${proc.hub.id} started (pid ${process.pid}, runtime dir ${runtimeDir(opts.runtimeDir)})`,
      );
      for (const ep of proc.hub.endpoints) ctx.out(`${clock()} listening on ${ep}`);
      releaseWhenBusy();
      if (opts.peers.length > 0) ctx.out(`${clock()} host ${proc.hub.host}, peers: ${opts.peers.join(", ")}`);
      await proc.stopped;
    } finally {
      process.off("SIGHUP", onHup);
      await proc.close();
    }
    ctx.out(`${clock()} hub stopped`);
    return 0;
  },
};

/** The store plugin as `--data-dir`, `--store-config` and `--fsync` say, after the spec's topic settings. */
async function hubStorePlugin(
  inv: Invocation,
  dataDir: string,
  specTopics: NonNullable<StoreServiceOptions["topics"]>,
): Promise<HubPlugin> {
  const fsyncOpt = strOpt(inv, "fsync");
  if (fsyncOpt !== undefined && fsyncOpt !== "always" && fsyncOpt !== "batch" && fsyncOpt !== "never") {
    throw new UsageError(`hub: --fsync must be always, batch or never, got '${fsyncOpt}'`);
  }
  const storeConfigPath = strOpt(inv, "store-config");
  const storeConfig =
    storeConfigPath === undefined
      ? { defaults: {}, rules: [] }
      : parseStoreConfigText(await readFile(storeConfigPath, "utf8"), storeConfigPath);
  const storeOpts: StoreServiceOptions = {
    dataDir,
    defaults: fsyncOpt !== undefined ? { ...storeConfig.defaults, fsync: fsyncOpt } : storeConfig.defaults,
    // The launch spec's topic settings come before the store config's (the first match applies).
    topics: [...specTopics, ...storeConfig.rules],
  };
  return storePlugin(storeOpts);
}

/** Where durable topics go by default: $MYELIN_DATA_DIR, $XDG_DATA_HOME/myelin, ~/.local/share/myelin. */
export function defaultDataDir(): string {
  const env = process.env["MYELIN_DATA_DIR"];
  if (env !== undefined && env !== "") return env;
  const xdg = process.env["XDG_DATA_HOME"];
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".local", "share"), "myelin");
}
