/**
 * The supervisor's reconcile loop, sans-IO: which processes of the spec run on this host, which
 * replica numbers each unit has, which may start now (their dependencies are started or ready,
 * here or, for units placed on other hosts, on the graph), which are extra after a scale-down, and
 * the order of a full stop. The supervisor keeps the table of processes and does the starting and
 * stopping; these functions only decide, so they are tested without processes.
 */
import { replicaNodeName, type NodeRecord } from "../node/index.js";
import { instanceKey, type ProcState } from "./process-lifecycle.js";
import type { LaunchSpec, UnitSpec } from "./spec.js";

/** What reconcile reads of one supervised process. */
export interface InstanceView {
  readonly unit: UnitSpec;
  readonly replica: number;
  readonly state: ProcState;
}

/** The part of the graph reconcile reads: which nodes are there, and ready. */
export interface GraphView {
  readonly nodes: readonly Pick<NodeRecord, "name" | "ready">[];
}

/**
 * The supervisor's table of processes, keyed by `instanceKey(unit, replica)`, and what reconcile
 * asks it to do.
 */
export interface ReconcileTable<I extends InstanceView> {
  get(key: string): I | undefined;
  all(): Iterable<I>;
  /** Adds a `waiting` process for replica `replica` of `unit` and returns it. */
  create(unit: UnitSpec, replica: number): I;
  /** Starts a `waiting` process (its state is `starting` afterwards, or `failed`/`backoff`). */
  start(inst: I): void;
  /** Stops a process beyond the unit's replicas and removes it once stopped. */
  stopExtra(inst: I, why: string): void;
}

/** The replica numbers a unit runs (a scaled-out unit continues the numbering of its process). */
export function replicaRange(u: UnitSpec): number[] {
  return Array.from({ length: u.replicas }, (_, i) => (u.firstReplica ?? 0) + i);
}

/** True if `replica` is beyond what the unit should run now (the highest numbers go first). */
export function isExtra(u: UnitSpec, replica: number): boolean {
  return replica >= (u.firstReplica ?? 0) + u.replicas;
}

/** True if a host with `labels` runs `u` (no placement: every host). */
export function placedOn(u: UnitSpec, labels: readonly string[]): boolean {
  return u.placement.length === 0 || u.placement.some((l) => labels.includes(l));
}

/**
 * True if every dependency of `u` allows it to start: each replica of a unit it depends on is
 * `starting` or `ready` (`condition: started`) or `ready`. A unit placed on another host counts
 * through the graph: its nodes are there (and ready, unless `started` is enough).
 */
export function dependenciesMet(
  spec: LaunchSpec,
  u: UnitSpec,
  labels: readonly string[],
  graph: GraphView | undefined,
  get: (key: string) => InstanceView | undefined,
): boolean {
  for (const d of u.dependsOn) {
    const du = spec.units.find((x) => x.name === d.unit);
    if (du === undefined) continue;
    if (!placedOn(du, labels)) {
      // Placed on another host: satisfied when its nodes are on the graph (and ready).
      const names = new Set(du.nodes.flatMap((n) => replicaRange(du).map((r) => replicaNodeName(n, r))));
      const recs = (graph?.nodes ?? []).filter((n) => names.has(n.name));
      if (recs.length === 0 || (d.condition === "ready" && recs.some((n) => n.ready === false))) return false;
      continue;
    }
    for (const r of replicaRange(du)) {
      const i = get(instanceKey(du.name, r));
      if (i === undefined) return false;
      const ok =
        d.condition === "started" ? i.state === "starting" || i.state === "ready" : i.state === "ready";
      if (!ok) return false;
    }
  }
  return true;
}

/**
 * One pass of the loop, unit by unit in the spec's (dependency) order: creates the processes the
 * spec asks for on this host, starts those waiting whose dependencies are met (so a unit that
 * only needs another `started` starts in the same pass), and stops the replicas beyond a unit's
 * count. Processes already stopping are left alone.
 */
export function reconcile<I extends InstanceView>(
  spec: LaunchSpec,
  labels: readonly string[],
  graph: GraphView | undefined,
  table: ReconcileTable<I>,
): void {
  const get = (key: string): I | undefined => table.get(key);
  for (const u of spec.units) {
    if (!placedOn(u, labels)) continue;
    for (const r of replicaRange(u)) {
      const inst = table.get(instanceKey(u.name, r)) ?? table.create(u, r);
      if (inst.state === "waiting" && dependenciesMet(spec, u, labels, graph, get)) table.start(inst);
    }
    for (const inst of [...table.all()]) {
      if (inst.unit.name !== u.name || !isExtra(u, inst.replica) || inst.state === "stopping") continue;
      table.stopExtra(inst, `scaled to ${u.replicas}`);
    }
  }
}

/**
 * The units to stop, in order, for `myelin down`: the spec's units in reverse (dependency) order,
 * so a process stops before what it depends on, then the units of processes no longer in the spec.
 */
export function stopOrder(spec: LaunchSpec | undefined, instances: Iterable<InstanceView>): string[] {
  const units = [...(spec?.units ?? [])].reverse().map((u) => u.name);
  return [...new Set([...units, ...[...instances].map((i) => i.unit.name)])];
}

/** How far the processes this host should run have come (for `myelin up --wait` and `scale`). */
export interface Settlement<I extends InstanceView> {
  /** The processes the spec asks for on this host, in spec order. */
  desired: I[];
  /** Those that failed or exited: they will not turn ready by themselves. */
  bad: I[];
  /** Every desired process is ready and no extra one is left. */
  allReady: boolean;
}

/** Where the processes of `spec` on this host stand. */
export function settlement<I extends InstanceView>(
  spec: LaunchSpec | undefined,
  labels: readonly string[],
  table: Pick<ReconcileTable<I>, "get" | "all">,
): Settlement<I> {
  const desired: I[] = [];
  for (const u of spec?.units ?? []) {
    if (!placedOn(u, labels)) continue;
    for (const r of replicaRange(u)) {
      const i = table.get(instanceKey(u.name, r));
      if (i !== undefined) desired.push(i);
    }
  }
  const bad = desired.filter((i) => i.state === "failed" || i.state === "exited");
  const extras = [...table.all()].some((i) => isExtra(i.unit, i.replica));
  return { desired, bad, allReady: desired.every((i) => i.state === "ready") && !extras };
}
