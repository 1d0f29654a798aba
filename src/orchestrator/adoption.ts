/**
 * Adoption after a hub restart, sans-IO: what the supervisor keeps in
 * `<runtimeDir>/supervisor/state.json` (the spec, and each process's pid and start time), and
 * which of the processes it lists a new supervisor takes over rather than starting them twice.
 * A pid alone is not enough (pids are reused): the process's start time must match too, which the
 * caller checks (`sameProcess` of proc-stat.ts in the hub).
 */
import type { LaunchSpec, UnitSpec } from "./spec.js";

/** One process as kept in the state file. */
export interface SavedInstance {
  unit: string;
  replica: number;
  /** Its `MYELIN_INSTANCE`, by which its nodes are matched on the graph. */
  id: string;
  pid: number;
  /** The process's start time as the OS reports it (proc-stat.ts), to tell it from a reused pid. */
  startTime: string | undefined;
  /** In ms since the epoch. */
  startedAt: number;
  restarts: number;
}

/** The supervisor's state file. */
export interface SavedState {
  spec: LaunchSpec | undefined;
  instances: SavedInstance[];
  /** Site-wide version of the spec, or of the `down` that cleared it (0 or absent: none). */
  version?: number;
}

/** What the state file records of one process (a ProcessLifecycle plus the supervisor's handles). */
export interface SavableInstance {
  readonly unit: UnitSpec;
  readonly replica: number;
  readonly id: string;
  readonly pid: number;
  readonly startTime: string | undefined;
  readonly startedAt: number;
  readonly restarts: number;
}

/** The state file's contents for `spec` and the processes of the table. */
export function savedState(
  spec: LaunchSpec | undefined,
  instances: Iterable<SavableInstance>,
  version = 0,
): SavedState {
  return {
    spec,
    version,
    instances: [...instances].map((i) => ({
      unit: i.unit.name,
      replica: i.replica,
      id: i.id,
      pid: i.pid,
      startTime: i.startTime,
      startedAt: i.startedAt,
      restarts: i.restarts,
    })),
  };
}

/** One process of the state file that a new supervisor takes into its table. */
export interface AdoptionEntry {
  /** Its unit in the saved spec. */
  unit: UnitSpec;
  saved: SavedInstance;
  /** Still running (same pid and start time): adopted. Otherwise it starts afresh. */
  alive: boolean;
}

/**
 * Which processes of `saved` a new supervisor takes: every one of a unit still in the saved spec
 * that had a process, in the file's order, `alive` if `sameProcess(pid, startTime)` says it still
 * runs. Processes with no pid (never started, or stopped) and of unknown units are left out.
 */
export function planAdoption(
  saved: SavedState,
  sameProcess: (pid: number, startTime: string | undefined) => boolean,
): AdoptionEntry[] {
  if (saved.spec === undefined) return [];
  const units = new Map(saved.spec.units.map((u) => [u.name, u]));
  const out: AdoptionEntry[] = [];
  for (const s of saved.instances) {
    const unit = units.get(s.unit);
    if (unit === undefined || s.pid <= 0) continue;
    out.push({ unit, saved: s, alive: sameProcess(s.pid, s.startTime) });
  }
  return out;
}
