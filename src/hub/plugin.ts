/**
 * The hub process: the registry (`Hub`) and the plugins that run next to it — the store, the
 * supervisor, the MQTT gateway, the bridges, `/_hub/info`, the dashboard, the Foxglove server.
 *
 * A plugin lives in its own layer and implements {@link HubPlugin}; the hub layer knows only the
 * interface. `startHubProcess` starts the registry, then the plugins in the order given (a later
 * plugin may read an earlier one's status through `ctx.plugin(name)`), and closes them in the
 * reverse order.
 */
import { MyelinError } from "../errors.js";
import type { SiteStatus } from "./federation.js";
import { Hub, type HubOptions, type HubSecurityStatus, type HubStats, type PolicyReload } from "./hub.js";
import type { RefusalCounts } from "./refusal-log.js";

/** What a plugin is given when it starts. */
export interface HubPluginContext {
  /** The hub's id (a UUID, new on each start). */
  readonly hubId: string;
  /** The hub's host name in the site (`--host`, else `$MYELIN_HOST`, else the system's). */
  readonly host: string;
  /** The endpoints the hub listens on (the ipc socket first). */
  readonly endpoints: readonly string[];
  /** The runtime directory given to the hub, or undefined for the default. */
  readonly runtimeDir: string | undefined;
  /** The hub's node timeout, in ms. */
  readonly nodeTimeoutMs: number;
  /** How the hub's network endpoints are secured, now. */
  readonly security: () => HubSecurityStatus;
  /** What the hub refused since it started, by kind. */
  readonly refusals: () => RefusalCounts;
  /**
   * Reads the hub's policy file again and puts it in force (see `Hub.reloadPolicy`).
   * @throws MyelinError ERR_BAD_CONFIG (the old policy stays), ERR_INVALID_ARGUMENT (no file)
   */
  readonly reloadPolicy: () => PolicyReload;
  /** The graph's size and what the hub refused, now (for the metrics). */
  readonly stats: () => HubStats;
  /** The site as this hub sees it, now: its peers, their state and lag. */
  readonly site: () => SiteStatus;
  /** Writes one human-readable line to the hub's log (the hub adds the time). */
  readonly log: (line: string) => void;
  /** A plugin started before this one, by name; undefined when it is not running. */
  readonly plugin: (name: string) => RunningHubPlugin | undefined;
  /** Asks the hub process to stop (e.g. the supervisor after `myelin down --stop-hub`). */
  readonly requestStop: (reason: string) => void;
  /** Aborted when the hub process is stopping. */
  readonly signal: AbortSignal;
}

/** A running plugin. */
export interface RunningHubPlugin {
  /** Stops the plugin; called once, in the reverse order of start. Must not throw. */
  close(): Promise<void>;
  /** What the plugin says about itself now (for `/_hub/info`, the dashboard, `myelin doctor`). */
  status?(): Record<string, unknown>;
}

/** Something the hub process runs next to the registry. */
export interface HubPlugin {
  /** A short name, unique in the process, e.g. `store`, `gateway`, `dashboard`. */
  readonly name: string;
  /**
   * When true, a failure to start is logged and the hub runs without the plugin; otherwise the hub
   * process does not start (and says why).
   */
  readonly optional?: boolean;
  /** Starts the plugin. */
  start(ctx: HubPluginContext): Promise<RunningHubPlugin>;
}

/** Options of {@link startHubProcess}. */
export interface HubProcessOptions {
  /** Options of the registry. */
  hub?: Partial<HubOptions>;
  /** The plugins, in start order. */
  plugins?: readonly HubPlugin[];
  /** Where the process's lines go (the registry's events too, unless `hub.log` is given). */
  log?: (line: string) => void;
  /** Stops the process when aborted (e.g. on Ctrl-C). */
  signal?: AbortSignal;
}

/** A running hub process. */
export interface HubProcess {
  readonly hub: Hub;
  /** The running plugins, by name. */
  readonly plugins: ReadonlyMap<string, RunningHubPlugin>;
  /** Resolves with the reason once the process is asked to stop (by `signal`, a plugin or `close`). */
  readonly stopped: Promise<string>;
  /** Closes the plugins in reverse order, then the registry. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the registry and the plugins, in order. If a plugin that is not optional fails, the ones
 * already started are closed and the error is thrown.
 */
export async function startHubProcess(opts: HubProcessOptions = {}): Promise<HubProcess> {
  const log = opts.log ?? (() => {});
  const hubOpts: Partial<HubOptions> = { log, ...opts.hub };
  const hub = await Hub.start(hubOpts);
  const running = new Map<string, RunningHubPlugin>();
  const order: RunningHubPlugin[] = [];
  const stop = new AbortController();
  let resolveStopped: (reason: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (resolveStopped = resolve));
  const requestStop = (reason: string): void => {
    if (stop.signal.aborted) return;
    stop.abort(reason);
    resolveStopped(reason);
  };
  if (opts.signal !== undefined) {
    if (opts.signal.aborted) requestStop("signal");
    else opts.signal.addEventListener("abort", () => requestStop("signal"), { once: true });
  }
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      requestStop("closed");
      for (const p of order.reverse()) {
        await p.close().catch((err: unknown) => log(`error while stopping a plugin: ${String(err)}`));
      }
      hub.close();
    })());
  const ctx: HubPluginContext = {
    hubId: hub.id,
    host: hub.host,
    endpoints: hub.endpoints,
    runtimeDir: hubOpts.runtimeDir,
    nodeTimeoutMs: hub.nodeTimeoutMs,
    security: () => hub.security(),
    refusals: () => hub.refusalCounts(),
    reloadPolicy: () => hub.reloadPolicy(),
    stats: () => hub.stats(),
    site: () => hub.siteStatus(),
    log,
    plugin: (name) => running.get(name),
    requestStop,
    signal: stop.signal,
  };
  for (const plugin of opts.plugins ?? []) {
    if (running.has(plugin.name)) {
      await close();
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `hub plugin '${plugin.name}' is given twice; give each plugin once`,
      );
    }
    try {
      const p = await plugin.start(ctx);
      running.set(plugin.name, p);
      order.push(p);
    } catch (err) {
      if (plugin.optional === true) {
        log(`${plugin.name}: not started, the hub runs without it: ${(err as Error).message}`);
        continue;
      }
      await close();
      throw err;
    }
  }
  return { hub, plugins: running, stopped, close };
}
