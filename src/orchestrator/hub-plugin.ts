/** The supervisor and systemd's notifications as hub plugins. */
import type { HubPlugin, RunningHubPlugin } from "../hub/index.js";
import type { LaunchSpec } from "./spec.js";
import { Supervisor } from "./supervisor.js";
import { startSystemdNotify } from "./systemd.js";

/** Options of {@link supervisorPlugin}. */
export interface SupervisorPluginOptions {
  /** Placement labels of this host (the host name among them). */
  labels: readonly string[];
  /** A launch spec to apply once the supervisor runs. */
  spec?: LaunchSpec;
  /** Stop the hub process after `myelin down` stopped the system (as `myelin up` asks). */
  stopOnDown?: boolean;
  /** On close, leave the supervised processes running for the next hub to adopt. */
  leaveRunning?: boolean;
}

/** The running supervisor plugin. */
export interface RunningSupervisorPlugin extends RunningHubPlugin {
  readonly supervisor: Supervisor;
}

/**
 * The supervisor plugin (named `supervisor`): serves the supervisor's protocol on a hidden node, adopts or
 * starts the processes of the applied spec, and stops them on close (unless `leaveRunning`).
 */
export function supervisorPlugin(opts: SupervisorPluginOptions): HubPlugin {
  return {
    name: "supervisor",
    async start(ctx): Promise<RunningSupervisorPlugin> {
      const sup = await Supervisor.start({
        ...(ctx.runtimeDir !== undefined ? { runtimeDir: ctx.runtimeDir } : {}),
        labels: [...opts.labels],
        log: ctx.log,
        ...(opts.stopOnDown === true ? { onStopHub: () => ctx.requestStop("myelin down") } : {}),
      });
      ctx.log(`supervisor ready (labels: ${opts.labels.join(", ")})`);
      if (opts.spec !== undefined) void sup.apply(opts.spec, 0);
      return {
        supervisor: sup,
        close: () => sup.close({ stopProcesses: opts.leaveRunning !== true }),
      };
    },
  };
}

/**
 * Tells systemd the hub is ready and keeps its watchdog fed (when run as a `Type=notify` unit with
 * `WatchdogSec`); a no-op elsewhere. Put it last: the hub is ready once every plugin before it runs.
 */
export function systemdNotifyPlugin(): HubPlugin {
  return {
    name: "systemd",
    start(ctx) {
      const stop = startSystemdNotify(ctx.log);
      return Promise.resolve({ close: () => Promise.resolve(stop()) });
    },
  };
}
