/**
 * The supervisor's control loop without its I/O, for unit tests: a table of real ProcessLifecycles
 * on a manual clock, reconciled by the real `reconcile` (src/orchestrator/reconcile.ts), where
 * starting a process hands out a pid and stopping one records the signal. The test plays the
 * processes: it says when their nodes show up on the graph and when they exit.
 */
import { replicaNodeName } from "../src/node/index.js";
import { ProcessLifecycle } from "../src/orchestrator/process-lifecycle.js";
import { isExtra, reconcile, type GraphView, type ReconcileTable } from "../src/orchestrator/reconcile.js";
import type { LaunchSpec, UnitSpec } from "../src/orchestrator/spec.js";
import { ManualClock } from "./manual-clock.js";

/** A supervisor's loop over `spec` on a host with `labels`. */
export class ReconcileWorld {
  readonly clock = new ManualClock();
  readonly instances = new Map<string, ProcessLifecycle>();
  /** `<process>#<replica>` of every start, in order. */
  readonly started: string[] = [];
  /** `<process>#<replica>: why` of every stop of an extra replica, in order. */
  readonly stoppedExtra: string[] = [];
  /** Signals sent, as `<pid> <signal>`. */
  readonly signals: string[] = [];
  graph: GraphView | undefined;
  #nextPid = 100;

  readonly table: ReconcileTable<ProcessLifecycle> = {
    get: (key) => this.instances.get(key),
    all: () => this.instances.values(),
    create: (u, r) => {
      const inst = this.lifecycle(u, r);
      this.instances.set(inst.name, inst);
      return inst;
    },
    start: (inst) => {
      this.started.push(inst.name);
      inst.spawned(this.#nextPid++);
      inst.afterStart(undefined);
    },
    stopExtra: (inst, why) => {
      this.stoppedExtra.push(`${inst.name}: ${why}`);
      void inst.stop(why).then(() => {
        if (this.instances.get(inst.name) === inst && isExtra(inst.unit, inst.replica))
          this.instances.delete(inst.name);
        this.reconcile();
      });
    },
  };

  constructor(
    readonly spec: LaunchSpec,
    readonly labels: string[] = ["edge"],
  ) {}

  /** A lifecycle on this world's clock, reconciling the world when it turns ready or its backoff ends. */
  lifecycle(unit: UnitSpec, replica: number): ProcessLifecycle {
    return new ProcessLifecycle(unit, replica, {
      clock: this.clock,
      random: () => 0.5,
      effects: {
        signal: (pid, sig) => void this.signals.push(`${pid} ${sig}`),
        isRunning: () => true,
        note: () => undefined,
        say: () => undefined,
        changed: () => undefined,
        save: () => undefined,
        reconcile: () => this.reconcile(),
        stopProbe: () => undefined,
      },
    });
  }

  /** One pass of the loop. */
  reconcile(): void {
    reconcile(this.spec, this.labels, this.graph, this.table);
  }

  /** The process `key` (`<process>#<replica>`); throws if there is none. */
  get(key: string): ProcessLifecycle {
    const inst = this.instances.get(key);
    if (inst === undefined)
      throw new Error(`no process ${key}; there are: ${[...this.instances.keys()].join(", ")}`);
    return inst;
  }

  /** The nodes of process `key` show up on the graph, ready. */
  ready(key: string): void {
    const inst = this.get(key);
    inst.registration({
      settled: true,
      records: inst.unit.nodes.map((n) => ({ name: replicaNodeName(n, inst.replica) })),
    });
  }

  /** Process `key` exits. */
  exit(key: string, code: number | null, signal: NodeJS.Signals | null = null): void {
    this.get(key).exited(code, signal);
  }

  /** The state of every process, `<process>#<replica> <state>`, sorted. */
  states(): string[] {
    return [...this.instances.values()].map((i) => `${i.name} ${i.state}`).sort();
  }
}
