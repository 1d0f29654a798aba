/** Orchestration: the launch spec, the supervisor, health probes, logs and systemd integration. */
export {
  formatProblems,
  loadSpec,
  SpecError,
  SPEC_DEFAULTS,
  type HealthSpec,
  type LaunchSpec,
  type LimitsSpec,
  type LoadSpecOptions,
  type ModuleEntry,
  type ProbeSpec,
  type RestartSpec,
  type SourcePos,
  type SpecProblem,
  type UnitDependency,
  type UnitSpec,
} from "./spec.js";
export { LAUNCH_SPEC_SCHEMA, type Schema } from "./spec-schema.js";
export { dependencyOrder } from "./order.js";
export {
  pidAlive,
  processRunning,
  procStartTime,
  procUsage,
  sameProcess,
  type ProcUsage,
} from "../store/proc-stat.js";
export type { ProcState } from "./process-lifecycle.js";
export { LogRing, type LogRingOptions } from "./log-ring.js";
export { runProbe, ProbeLoop, type ProbeEnv, type ProbeResult } from "./health.js";
export {
  LOG_TOPIC,
  Supervisor,
  type ProcessRow,
  type SupervisorEvents,
  type SupervisorOptions,
} from "./supervisor.js";
export type { LaunchContext, NodeMain } from "./runner.js";
export { systemdUnit, startSystemdNotify, type SystemdUnitOptions } from "./systemd.js";
export { supervisorPlugin, systemdNotifyPlugin } from "./hub-plugin.js";
export type { SupervisorPluginOptions, RunningSupervisorPlugin } from "./hub-plugin.js";
export { SUPERVISOR_PROTOCOL, supervisorClient } from "./supervisor-protocol.js";
export type { SupervisorClient, SupervisorProtocol } from "./supervisor-protocol.js";
