/**
 * The supervisor: runs the processes of a launch spec on this host, inside the hub process, and is
 * driven over hidden services (`SUPERVISOR_PROTOCOL`, in supervisor-protocol.ts) by `myelin up`,
 * `ps`, `scale`, `restart`, `logs` and `down`.
 *
 * - Starts processes in dependency order: a process starts once every process it depends on is
 *   ready (or started, for `condition: started`); stops them in reverse order (SIGTERM to the
 *   process group, SIGKILL after the grace period).
 * - Readiness: by default a process is ready when its Myelin nodes are on the graph and say they
 *   are ready (`node.setReady()`); nodes are matched to the process by `MYELIN_INSTANCE` or pid.
 * - Restarts per policy (`always`, `on-failure`, `never`) with exponential backoff, jitter and a
 *   cap; N restarts within a window mark the process `failed` (reported, not retried).
 * - Liveness: process exit, plus hung detection (its nodes stopped heartbeating, the process is
 *   still there: killed and restarted), plus optional custom probes.
 * - Logs: each process writes stdout/stderr to a bounded file (LogRing); new lines go out on
 *   `/myelin/logs` (rcl_interfaces/Log, name `<process>#<replica>`).
 * - Adoption: pids, start times and the spec are kept in `<runtimeDir>/supervisor/state.json`;
 *   a new supervisor (after a hub restart) adopts processes still alive rather than starting them
 *   twice.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { closeSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname, setPriority } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import { rcl_interfaces, std_srvs, timeNow } from "../msgs/index.js";
import {
  createNode,
  replicaNodeName,
  serveProtocol,
  type GraphSnapshot,
  type Node,
  type NodeRecord,
  type Publisher,
} from "../node/index.js";
import { runtimeDir as defaultRuntimeDir } from "../node/config.js";
import { ProbeLoop } from "./health.js";
import { LogRing } from "./log-ring.js";
import { SUPERVISOR_PROTOCOL } from "./supervisor-protocol.js";
import { processRunning, procStartTime, procUsage, sameProcess } from "../store/proc-stat.js";
import { findExecutable, type LaunchSpec, type UnitSpec } from "./spec.js";

/** Topic where the output of supervised processes is published. */
export const LOG_TOPIC = "/myelin/logs";

/** Options of the supervisor. */
export interface SupervisorOptions {
  /** Runtime directory of the hub (state, logs); default as for any node. */
  runtimeDir?: string;
  /** Hub address for the supervisor's node and the processes (default: the runtime dir's socket). */
  hub?: string;
  /** Placement labels of this host (default: the host name and `$MYELIN_LABELS`, comma-separated). */
  labels?: string[];
  /** Each process's log file is rotated at this size, in bytes (default 1 MiB; about twice is kept). */
  logMaxBytes?: number;
  /** How often logs are read and published and adopted processes checked, in ms (default 200). */
  pollMs?: number;
  /** Human-readable events (started, ready, exited, restarting, failed). */
  log?: (line: string) => void;
  /** Called after `down` with `stop_hub` replied: the hub should exit. */
  onStopHub?: () => void;
}

/** State of one supervised process. */
export type ProcState =
  | "waiting" // for its dependencies
  | "starting" // spawned, not ready yet
  | "ready"
  | "unhealthy" // alive, probe failing (policy never: left running)
  | "backoff" // exited, restart scheduled
  | "stopping"
  | "stopped"
  | "exited" // exited, not restarted (policy)
  | "failed"; // crash loop, or cannot start

/** One row of `myelin ps`. */
export interface ProcessRow {
  process: string;
  nodes: string[];
  replica: number;
  state: ProcState;
  pid: number;
  restarts: number;
  /** Since the current process started, in ms (0 if none runs). */
  uptimeMs: number;
  /** CPU use since the previous sample, in % of one core; -1 if unknown. */
  cpuPercent: number;
  /** Resident memory in bytes; -1 if unknown. */
  rssBytes: number;
  /** healthy, unhealthy, hung, unknown or - (no process). */
  health: string;
  /** Why it is in this state (last exit, probe failure, …). */
  detail: string;
  adopted: boolean;
}

interface Instance {
  unit: UnitSpec;
  replica: number;
  id: string;
  state: ProcState;
  pid: number;
  startTime: string | undefined;
  startedAt: number;
  child: ChildProcess | undefined;
  adopted: boolean;
  restarts: number;
  restartTimes: number[];
  quickFailures: number;
  detail: string;
  /** Why the supervisor killed the current process (it then counts as failed). */
  killReason: string | undefined;
  health: string;
  everRegistered: boolean;
  registered: boolean;
  log: LogRing;
  timer: NodeJS.Timeout | undefined;
  readyTimer: NodeJS.Timeout | undefined;
  hungTimer: NodeJS.Timeout | undefined;
  probe: ProbeLoop | undefined;
  probeOkOnce: boolean;
  exitWaiters: (() => void)[];
  lastCpu: { cpuMs: number; at: number } | undefined;
}

interface SavedInstance {
  unit: string;
  replica: number;
  id: string;
  pid: number;
  startTime: string | undefined;
  startedAt: number;
  restarts: number;
}

interface SavedState {
  spec: LaunchSpec | undefined;
  instances: SavedInstance[];
}

const RUNNER = fileURLToPath(new URL("./runner.js", import.meta.url));
const keyOf = (unit: string, replica: number): string => `${unit}#${replica}`;
/** The replica numbers a unit runs (a scaled-out unit continues the numbering of its process). */
const replicaRange = (u: UnitSpec): number[] =>
  Array.from({ length: u.replicas }, (_, i) => (u.firstReplica ?? 0) + i);
/** True if `replica` is beyond what the unit should run now. */
const isExtra = (u: UnitSpec, replica: number): boolean => replica >= (u.firstReplica ?? 0) + u.replicas;
const fmtMs = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

let prlimitPath: string | null | undefined;
function prlimit(): string | undefined {
  if (prlimitPath === undefined) prlimitPath = findExecutable("prlimit", "/") ?? null;
  return prlimitPath ?? undefined;
}

/** Events of the supervisor. */
export interface SupervisorEvents {
  /** Some process changed state (see `ps()`). */
  change: [];
}

/** The hub's process manager. Start with `Supervisor.start()`, stop with `close()`. */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #opts: SupervisorOptions;
  readonly #dir: string;
  readonly #stateFile: string;
  readonly #logDir: string;
  readonly #labels: string[];
  readonly #node: Node;
  #pub: Publisher<unknown> | undefined;
  #spec: LaunchSpec | undefined;
  readonly #instances = new Map<string, Instance>();
  #graph: GraphSnapshot | undefined;
  readonly #waiters = new Set<() => void>();
  #poll: NodeJS.Timeout | undefined;
  #saveScheduled = false;
  #closed = false;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(opts: SupervisorOptions, node: Node, runtimeDir: string) {
    super();
    this.#opts = opts;
    this.#node = node;
    this.#dir = join(runtimeDir, "supervisor");
    this.#stateFile = join(this.#dir, "state.json");
    this.#logDir = join(this.#dir, "logs");
    mkdirSync(this.#logDir, { recursive: true, mode: 0o700 });
    const env = process.env["MYELIN_LABELS"];
    this.#labels = opts.labels ?? [
      hostname(),
      ...(env ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== ""),
    ];
  }

  /**
   * Starts the supervisor: adopts the processes a previous supervisor left running (same pid and
   * start time), resumes its spec, and serves the supervisor's protocol.
   */
  static async start(opts: SupervisorOptions = {}): Promise<Supervisor> {
    const dir = defaultRuntimeDir(opts.runtimeDir);
    const nodeOpts: Parameters<typeof createNode>[0] = { name: "_supervisor" };
    if (opts.hub !== undefined) nodeOpts.hub = opts.hub;
    if (opts.runtimeDir !== undefined) nodeOpts.runtimeDir = opts.runtimeDir;
    const node = await createNode(nodeOpts);
    const sup = new Supervisor(opts, node, dir);
    node.on("graph", (g) => sup.#onGraph(g));
    sup.#pub = (await node.createPublisher(LOG_TOPIC, rcl_interfaces.Log, {
      qos: { reliability: "best-effort", depth: 100 },
    })) as Publisher<unknown>;
    sup.#adopt();
    sup.#poll = setInterval(() => sup.#pollAll(), opts.pollMs ?? 200);
    await serveProtocol(node, SUPERVISOR_PROTOCOL, {
      apply: (req) => sup.#serial(() => sup.#applyJson(req.spec_json, req.wait_ms)),
      ps: () => ({
        processes_json: JSON.stringify(sup.ps()),
        spec_file: sup.#spec?.file ?? "",
        environment: sup.#spec?.environment ?? "",
      }),
      scale: (req) => sup.#serial(() => sup.#result(sup.scale(req.node, req.replicas, req.wait_ms))),
      restart: (req) => sup.#serial(() => sup.#result(sup.restart(req.node, req.wait_ms))),
      down: (req) =>
        sup.#serial(async () => {
          const n = await sup.down(req.wait_ms);
          if (req.stop_hub && sup.#opts.onStopHub !== undefined) {
            const stop = sup.#opts.onStopHub;
            setTimeout(stop, 100); // after the reply is on its way
          }
          return { ok: true, message: `stopped ${n} process${n === 1 ? "" : "es"}` };
        }),
      logs: (req) => sup.logs(req.node, req.replica, req.lines),
    });
    sup.#reconcile();
    return sup;
  }

  /** The spec being run, if any. */
  get spec(): LaunchSpec | undefined {
    return this.#spec;
  }

  /** Placement labels of this host. */
  get labels(): readonly string[] {
    return this.#labels;
  }

  /**
   * Runs `spec`: starts what is new, stops what is gone, restarts what changed, and waits up to
   * `waitMs` for every process to be ready. Resolves with whether all are ready and why not.
   */
  async apply(spec: LaunchSpec, waitMs = 0): Promise<{ ok: boolean; message: string }> {
    const old = this.#spec;
    this.#spec = spec;
    const keep = new Map(spec.units.map((u) => [u.name, u]));
    for (const inst of [...this.#instances.values()]) {
      const u = keep.get(inst.unit.name);
      if (u === undefined || !sameDefinition(u, inst.unit)) {
        await this.#stopInstance(inst, u === undefined ? "removed from the spec" : "its definition changed");
        this.#instances.delete(keyOf(inst.unit.name, inst.replica));
      } else {
        inst.unit = u;
      }
    }
    if (old === undefined || old.file !== spec.file)
      this.#say(`running ${spec.file}${spec.environment ? ` (environment ${spec.environment})` : ""}`);
    this.#reconcile();
    this.#save();
    return this.#waitSettled(waitMs);
  }

  /**
   * Sets the number of replicas of the process running `node`; waits up to `waitMs` for new ones
   * to be ready and extra ones to stop.
   * @throws MyelinError ERR_UNKNOWN_NODE if the running spec has no such node
   */
  async scale(node: string, replicas: number, waitMs = 0): Promise<{ ok: boolean; message: string }> {
    const composed = this.#spec?.units.find((u) => u.nodes.length > 1 && u.nodes.includes(node));
    if (composed !== undefined && node !== composed.name)
      return this.#scaleOut(composed, node, replicas, waitMs);
    const unit = this.#unitOf(node);
    const out = this.#spec?.units.find((u) => u.scaledOutOf === unit.name && u.replicas > 0);
    if (out !== undefined && replicas > (out.firstReplica ?? 0)) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${out.name} was scaled out of process '${unit.name}' and runs replicas from ${out.firstReplica ?? 0}: ` +
          `scale it back first (myelin scale ${out.name}=${out.firstReplica ?? 0}), then scale ${unit.name}`,
      );
    }
    unit.replicas = replicas;
    this.#save();
    this.#reconcile();
    const r = await this.#waitSettled(waitMs);
    return { ok: r.ok, message: r.ok ? `${unit.name} scaled to ${replicas}` : r.message };
  }

  /**
   * Scales one node of a composed process without the others: its replicas inside the process
   * stay, the extra ones run as processes of their own (only that node), numbered after them.
   */
  async #scaleOut(
    composed: UnitSpec,
    node: string,
    replicas: number,
    waitMs: number,
  ): Promise<{ ok: boolean; message: string }> {
    const entry = composed.modules.find((m) => m.node === node);
    if (composed.kind !== "module" || entry === undefined) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `node ${node} is part of the command of process '${composed.name}'; scale the process (myelin scale ${composed.name}=N)`,
      );
    }
    if (replicas < composed.replicas) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `node ${node} runs inside each of the ${composed.replicas} '${composed.name}' processes, so it cannot have fewer than ${composed.replicas} replicas; ` +
          `scale the process instead (myelin scale ${composed.name}=N)`,
      );
    }
    const units = this.#spec!.units;
    let own = units.find((u) => u.scaledOutOf === composed.name && u.nodes[0] === node);
    if (own === undefined) {
      // A health probe of the process is kept only if it is this node's.
      const probe = composed.health.probe;
      const mine =
        probe !== undefined && probe.target.some((t) => t.includes(`/${node}/`) || t.includes("{node}"));
      const health: UnitSpec["health"] = {
        heartbeat: composed.health.heartbeat,
        readyTimeoutMs: composed.health.readyTimeoutMs,
      };
      if (mine) health.probe = probe;
      own = {
        ...composed,
        name: `${node}+`,
        nodes: [node],
        modules: [entry],
        health,
        firstReplica: composed.replicas,
        scaledOutOf: composed.name,
        replicas: 0,
      };
      units.splice(units.indexOf(composed) + 1, 0, own);
    }
    const scaled = own;
    scaled.replicas = replicas - composed.replicas;
    this.#save();
    this.#reconcile();
    const r = await this.#waitSettled(waitMs);
    return {
      ok: r.ok,
      message: r.ok
        ? `${node} scaled to ${replicas}: ${composed.replicas} in process ${composed.name}, ${scaled.replicas} in ${scaled.replicas === 1 ? "a process" : "processes"} of its own (${scaled.name})`
        : r.message,
    };
  }

  /**
   * Restarts the processes of `node` one replica at a time, waiting up to `waitMs` for each to be
   * ready before the next (so a replicated service keeps answering). Failed replicas start afresh.
   * @throws MyelinError ERR_UNKNOWN_NODE if the running spec has no such node
   */
  async restart(node: string, waitMs = 30000): Promise<{ ok: boolean; message: string }> {
    const unit = this.#unitOf(node);
    for (const r of replicaRange(unit)) {
      const inst = this.#instances.get(keyOf(unit.name, r));
      if (inst !== undefined) {
        await this.#stopInstance(inst, "rolling restart");
        inst.state = "waiting";
        inst.restartTimes = [];
        inst.quickFailures = 0;
        inst.restarts++;
      }
      this.#reconcile();
      const cur = this.#instances.get(keyOf(unit.name, r))!;
      try {
        await this.#waitFor(
          () => cur.state === "ready" || cur.state === "failed" || cur.state === "exited",
          waitMs,
        );
      } catch {
        return {
          ok: false,
          message: `${keyOf(unit.name, r)} was not ready within ${fmtMs(waitMs)} (${cur.state}); the restart stopped there`,
        };
      }
      if (cur.state !== "ready")
        return { ok: false, message: `${keyOf(unit.name, r)} ${cur.state} after restart: ${cur.detail}` };
    }
    return {
      ok: true,
      message: `${unit.name}: ${unit.replicas} replica${unit.replicas === 1 ? "" : "s"} restarted one at a time`,
    };
  }

  /** Stops every process in reverse dependency order and forgets the spec; resolves with how many stopped. */
  async down(_waitMs = 0): Promise<number> {
    const units = [...(this.#spec?.units ?? [])].reverse();
    this.#spec = undefined;
    let n = 0;
    const order = [
      ...units.map((u) => u.name),
      ...new Set([...this.#instances.values()].map((i) => i.unit.name)),
    ];
    for (const name of new Set(order)) {
      const insts = [...this.#instances.values()].filter((i) => i.unit.name === name);
      n += insts.filter((i) => i.pid > 0 && i.state !== "stopped").length;
      await Promise.all(insts.map((i) => this.#stopInstance(i, "down")));
      for (const i of insts) this.#instances.delete(keyOf(i.unit.name, i.replica));
    }
    this.#save();
    if (units.length > 0 || n > 0) this.#say(`down: stopped ${n} process${n === 1 ? "" : "es"}`);
    return n;
  }

  /** The `myelin ps` rows. */
  ps(): ProcessRow[] {
    const now = Date.now();
    const rows: ProcessRow[] = [];
    for (const inst of this.#ordered()) {
      const alive =
        inst.pid > 0 &&
        inst.state !== "stopped" &&
        inst.state !== "exited" &&
        inst.state !== "failed" &&
        inst.state !== "backoff";
      let cpu = -1;
      let rss = -1;
      if (alive) {
        const u = procUsage(inst.pid);
        if (u !== undefined) {
          const prev = inst.lastCpu ?? { cpuMs: 0, at: inst.startedAt };
          const dt = now - prev.at;
          cpu = dt > 0 ? Math.max(0, ((u.cpuMs - prev.cpuMs) / dt) * 100) : 0;
          rss = u.rssBytes;
          inst.lastCpu = { cpuMs: u.cpuMs, at: now };
        }
      }
      rows.push({
        process: inst.unit.name,
        nodes: inst.unit.nodes,
        replica: inst.replica,
        state: inst.state,
        pid: alive ? inst.pid : 0,
        restarts: inst.restarts,
        uptimeMs: alive ? now - inst.startedAt : 0,
        cpuPercent: cpu,
        rssBytes: rss,
        health: alive ? inst.health : "-",
        detail: inst.detail,
        adopted: inst.adopted,
      });
    }
    return rows;
  }

  /**
   * The last `lines` log lines of `node`'s processes (replica -1: all).
   * @throws MyelinError ERR_UNKNOWN_NODE if the running spec has no such node
   */
  logs(
    node: string,
    replica: number,
    lines: number,
  ): { process: string; sources: string[]; lines: string[] } {
    const unit = node === "" ? undefined : this.#unitOf(node);
    const out = { process: unit?.name ?? "", sources: [] as string[], lines: [] as string[] };
    for (const inst of this.#ordered()) {
      if (unit !== undefined && inst.unit.name !== unit.name) continue;
      if (replica >= 0 && inst.replica !== replica) continue;
      for (const l of inst.log.last(lines)) {
        out.sources.push(keyOf(inst.unit.name, inst.replica));
        out.lines.push(l);
      }
    }
    return out;
  }

  /**
   * Stops serving. With `stopProcesses` (default true) stops every process first (reverse order)
   * and forgets the state; without, leaves them running for the next supervisor to adopt.
   */
  async close(opts: { stopProcesses?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    if (opts.stopProcesses ?? true) await this.down();
    else this.#writeState();
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    for (const inst of this.#instances.values()) this.#clearTimers(inst);
    for (const w of this.#waiters) w();
    await this.#node.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- requests ------------------------------------------------------------------------------

  /** Runs control requests one at a time (apply, scale, restart, down). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#busy.then(fn, fn);
    this.#busy = p.catch(() => undefined);
    return p;
  }

  async #applyJson(
    json: string,
    waitMs: number,
  ): Promise<{ ok: boolean; message: string; processes_json: string }> {
    let spec: LaunchSpec;
    try {
      spec = JSON.parse(json) as LaunchSpec;
      if (!Array.isArray(spec.units)) throw new Error("units missing");
    } catch (err) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `apply: spec_json is not a resolved launch spec: ${(err as Error).message}`,
      );
    }
    return this.#result(this.apply(spec, waitMs));
  }

  async #result(
    p: Promise<{ ok: boolean; message: string }>,
  ): Promise<{ ok: boolean; message: string; processes_json: string }> {
    const r = await p;
    return { ...r, processes_json: JSON.stringify(this.ps()) };
  }

  #unitOf(node: string): UnitSpec {
    const units = this.#spec?.units ?? [];
    const u = units.find((x) => x.name === node) ?? units.find((x) => x.nodes.includes(node));
    if (u === undefined) {
      throw new MyelinError(
        "ERR_UNKNOWN_NODE",
        this.#spec === undefined
          ? `no spec is running, so there is no node ${node}; start one with \`myelin up\``
          : `the running spec has no node ${node}; nodes: ${units.flatMap((x) => x.nodes).join(", ")}`,
      );
    }
    return u;
  }

  // ---- the control loop ----------------------------------------------------------------------

  #placedHere(u: UnitSpec): boolean {
    return u.placement.length === 0 || u.placement.some((l) => this.#labels.includes(l));
  }

  #ordered(): Instance[] {
    const order = new Map((this.#spec?.units ?? []).map((u, i) => [u.name, i]));
    return [...this.#instances.values()].sort(
      (a, b) => (order.get(a.unit.name) ?? 1e9) - (order.get(b.unit.name) ?? 1e9) || a.replica - b.replica,
    );
  }

  /** Brings the instances in line with the spec: creates, starts when dependencies allow, stops extras. */
  #reconcile(): void {
    if (this.#closed) return;
    const spec = this.#spec;
    if (spec === undefined) return;
    for (const u of spec.units) {
      if (!this.#placedHere(u)) continue;
      for (const r of replicaRange(u)) {
        const key = keyOf(u.name, r);
        let inst = this.#instances.get(key);
        if (inst === undefined) {
          inst = this.#newInstance(u, r);
          this.#instances.set(key, inst);
        }
        if (inst.state === "waiting" && this.#depsSatisfied(u)) this.#spawn(inst);
      }
      for (const inst of [...this.#instances.values()]) {
        if (inst.unit.name !== u.name || !isExtra(u, inst.replica) || inst.state === "stopping") continue;
        void this.#stopInstance(inst, `scaled to ${u.replicas}`).then(() => {
          const key = keyOf(u.name, inst.replica);
          if (this.#instances.get(key) === inst && isExtra(inst.unit, inst.replica))
            this.#instances.delete(key);
          this.#reconcile();
        });
      }
    }
    this.#changed();
  }

  #depsSatisfied(u: UnitSpec): boolean {
    for (const d of u.dependsOn) {
      const du = this.#spec?.units.find((x) => x.name === d.unit);
      if (du === undefined) continue;
      if (!this.#placedHere(du)) {
        // Placed on another host: satisfied when its nodes are on the graph (and ready).
        const names = new Set(du.nodes.flatMap((n) => replicaRange(du).map((r) => replicaNodeName(n, r))));
        const recs = (this.#graph?.nodes ?? []).filter((n) => names.has(n.name));
        if (recs.length === 0 || (d.condition === "ready" && recs.some((n) => n.ready === false)))
          return false;
        continue;
      }
      for (const r of replicaRange(du)) {
        const i = this.#instances.get(keyOf(du.name, r));
        if (i === undefined) return false;
        const ok =
          d.condition === "started" ? i.state === "starting" || i.state === "ready" : i.state === "ready";
        if (!ok) return false;
      }
    }
    return true;
  }

  #newInstance(u: UnitSpec, replica: number): Instance {
    const log = new LogRing({
      path: join(this.#logDir, `${u.name}.${replica}.log`),
      maxBytes: this.#opts.logMaxBytes ?? 1024 * 1024,
    });
    log.skipToEnd();
    return {
      unit: u,
      replica,
      id: "",
      state: "waiting",
      pid: 0,
      startTime: undefined,
      startedAt: 0,
      child: undefined,
      adopted: false,
      restarts: 0,
      restartTimes: [],
      quickFailures: 0,
      detail: "",
      killReason: undefined,
      health: "unknown",
      everRegistered: false,
      registered: false,
      log,
      timer: undefined,
      readyTimer: undefined,
      hungTimer: undefined,
      probe: undefined,
      probeOkOnce: false,
      exitWaiters: [],
      lastCpu: undefined,
    };
  }

  #spawn(inst: Instance): void {
    const u = inst.unit;
    const name = keyOf(u.name, inst.replica);
    inst.id = `${u.name}.${inst.replica}.${randomBytes(4).toString("hex")}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...u.env,
      MYELIN_NODE_NAME: u.nodes.join(","),
      MYELIN_REPLICA: String(inst.replica),
      MYELIN_INSTANCE: inst.id,
      MYELIN_RUNTIME_DIR: defaultRuntimeDir(this.#opts.runtimeDir),
    };
    if (this.#opts.hub !== undefined) env["MYELIN_HUB"] = this.#opts.hub;
    let argv: string[];
    const heap = u.limits.memoryMb !== undefined ? [`--max-old-space-size=${u.limits.memoryMb}`] : [];
    if (u.kind === "module") {
      argv = [process.execPath, ...heap, RUNNER];
      env["MYELIN_LAUNCH"] = JSON.stringify({ modules: u.modules, replica: inst.replica });
    } else {
      const [prog, ...rest] = u.command;
      argv = prog === "node" ? [process.execPath, ...heap, ...rest] : [...u.command];
    }
    const rl: string[] = [];
    if (u.limits.memoryMb !== undefined && argv[0] !== process.execPath)
      rl.push(`--as=${u.limits.memoryMb * 1024 * 1024}`);
    if (u.limits.openFiles !== undefined) rl.push(`--nofile=${u.limits.openFiles}:${u.limits.openFiles}`);
    const pl = prlimit();
    if (rl.length > 0 && pl !== undefined) argv = [pl, ...rl, "--", ...argv];
    let fd: number | undefined;
    let child: ChildProcess;
    try {
      fd = inst.log.openForChild();
      child = spawn(argv[0]!, argv.slice(1), { cwd: u.cwd, env, stdio: ["ignore", fd, fd], detached: true });
    } catch (err) {
      this.#onExit(inst, null, null, `cannot start: ${(err as Error).message}`);
      return;
    } finally {
      if (fd !== undefined) closeSync(fd); // the child has its own copy
    }
    child.unref();
    inst.child = child;
    inst.adopted = false;
    inst.state = "starting";
    inst.startedAt = Date.now();
    inst.everRegistered = false;
    inst.registered = false;
    inst.health = "unknown";
    inst.probeOkOnce = false;
    inst.lastCpu = undefined;
    child.once("error", (err) => {
      if (inst.child === child) this.#onExit(inst, null, null, `cannot start ${argv[0]}: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      if (inst.child === child) this.#onExit(inst, code, signal);
    });
    if (child.pid === undefined) return; // 'error' follows
    inst.pid = child.pid;
    inst.startTime = procStartTime(child.pid);
    if (u.limits.nice !== undefined) {
      try {
        setPriority(child.pid, u.limits.nice);
      } catch (err) {
        inst.log.note(`[myelin] cannot set nice ${u.limits.nice}: ${(err as Error).message}`);
      }
    }
    inst.log.note(`[myelin] ${name} started (pid ${child.pid}): ${argv.join(" ")}`);
    this.#say(`${name} started (pid ${child.pid})`);
    this.#afterStart(inst);
  }

  /** Readiness timer and probes of a process that just started or was adopted. */
  #afterStart(inst: Instance): void {
    const u = inst.unit;
    if (u.readiness === "process") this.#setReady(inst, true);
    else this.#checkRegistration(inst);
    if (inst.state !== "ready" && u.health.readyTimeoutMs > 0) {
      inst.readyTimer = setTimeout(() => {
        inst.readyTimer = undefined;
        if (inst.state !== "starting") return;
        this.#kill(inst, `not ready within ${fmtMs(u.health.readyTimeoutMs)}`);
      }, u.health.readyTimeoutMs);
    }
    const p = u.health.probe;
    if (p !== undefined) {
      inst.probe = new ProbeLoop(
        p,
        {
          node: u.nodes[0]!,
          replica: inst.replica,
          cwd: u.cwd,
          env: { ...process.env, ...u.env },
          trigger: (service, timeoutMs) =>
            this.#node.createClient(service, std_srvs.Trigger, { timeoutMs }).call({}),
        },
        (healthy, detail) => this.#onProbe(inst, healthy, detail),
      );
    }
    this.#save();
  }

  #onProbe(inst: Instance, healthy: boolean, detail: string): void {
    const name = keyOf(inst.unit.name, inst.replica);
    if (healthy) {
      inst.health = "healthy";
      if (inst.state === "unhealthy") inst.state = "ready";
      if (inst.unit.readiness === "probe" && !inst.probeOkOnce) {
        inst.probeOkOnce = true;
        this.#setReady(inst, true);
      }
      this.#changed();
      return;
    }
    inst.health = "unhealthy";
    inst.detail = `probe: ${detail}`;
    inst.log.note(`[myelin] ${name} unhealthy: ${detail}`);
    this.#say(`${name} unhealthy: ${detail}`);
    if (inst.unit.restart.policy === "never") {
      if (inst.state === "ready") inst.state = "unhealthy";
      this.#changed();
      return;
    }
    this.#kill(inst, `unhealthy: ${detail}`);
  }

  #setReady(inst: Instance, ready: boolean): void {
    if (ready && inst.state === "starting") {
      inst.state = "ready";
      if (inst.readyTimer) clearTimeout(inst.readyTimer);
      inst.readyTimer = undefined;
      if (inst.health === "unknown" && inst.unit.health.probe === undefined) inst.health = "healthy";
      const name = keyOf(inst.unit.name, inst.replica);
      this.#say(`${name} ready (${fmtMs(Date.now() - inst.startedAt)} after start)`);
      this.#reconcile();
    } else if (!ready && inst.state === "ready") {
      inst.state = "starting";
      this.#changed();
    }
  }

  /** Nodes on the graph that belong to `inst`. */
  #recordsOf(inst: Instance, g: GraphSnapshot): NodeRecord[] {
    return g.nodes.filter((n) => (n.instance !== undefined ? n.instance === inst.id : n.pid === inst.pid));
  }

  #onGraph(g: GraphSnapshot): void {
    this.#graph = g;
    for (const inst of this.#instances.values()) this.#checkRegistration(inst);
    this.#reconcile();
  }

  #checkRegistration(inst: Instance): void {
    const g = this.#graph;
    if (g === undefined || inst.pid <= 0) return;
    if (inst.state !== "starting" && inst.state !== "ready" && inst.state !== "unhealthy") return;
    const recs = this.#recordsOf(inst, g);
    inst.registered = recs.length > 0;
    if (recs.length > 0) {
      inst.everRegistered = true;
      if (inst.hungTimer) {
        clearTimeout(inst.hungTimer);
        inst.hungTimer = undefined;
        if (inst.health === "hung") inst.health = inst.unit.health.probe ? "unknown" : "healthy";
      }
      if (inst.unit.readiness === "node") {
        const names = new Set(recs.map((r) => r.name));
        const all =
          inst.unit.kind === "module"
            ? inst.unit.nodes.every((n) => names.has(replicaNodeName(n, inst.replica)))
            : recs.length > 0;
        this.#setReady(inst, all && recs.every((r) => r.ready !== false));
      }
      return;
    }
    // Registered before, gone now, process still there: it stopped heartbeating (hung) or left.
    if (inst.everRegistered && g.settled && inst.unit.health.heartbeat && inst.hungTimer === undefined) {
      inst.hungTimer = setTimeout(() => {
        inst.hungTimer = undefined;
        const cur = this.#graph;
        if (cur === undefined || this.#recordsOf(inst, cur).length > 0) return;
        if (inst.state !== "starting" && inst.state !== "ready" && inst.state !== "unhealthy") return;
        if (!processRunning(inst.pid)) return;
        inst.health = "hung";
        this.#kill(inst, "hung: its nodes stopped heartbeating while the process is alive", "SIGKILL");
      }, 1000);
    }
  }

  /** Kills a live process that must be restarted (hung, unhealthy, not ready in time). */
  #kill(inst: Instance, why: string, signal: NodeJS.Signals = "SIGTERM"): void {
    const name = keyOf(inst.unit.name, inst.replica);
    inst.detail = why;
    inst.killReason = why;
    inst.log.note(`[myelin] ${name}: ${why}; killing it (${signal})`);
    this.#say(`${name}: ${why}; killing it`);
    this.#signal(inst, signal);
    if (signal !== "SIGKILL") {
      const pid = inst.pid;
      setTimeout(() => {
        if (inst.pid === pid && processRunning(pid)) this.#signal(inst, "SIGKILL");
      }, inst.unit.stopGraceMs).unref();
    }
  }

  #signal(inst: Instance, signal: NodeJS.Signals): void {
    if (inst.pid <= 0) return;
    try {
      process.kill(-inst.pid, signal); // the process group: the process and what it started
    } catch {
      try {
        process.kill(inst.pid, signal);
      } catch {
        // gone already
      }
    }
  }

  #clearTimers(inst: Instance): void {
    for (const t of [inst.timer, inst.readyTimer, inst.hungTimer]) if (t) clearTimeout(t);
    inst.timer = inst.readyTimer = inst.hungTimer = undefined;
    inst.probe?.stop();
    inst.probe = undefined;
  }

  #onExit(inst: Instance, code: number | null, signal: NodeJS.Signals | null, error?: string): void {
    const name = keyOf(inst.unit.name, inst.replica);
    const upMs = inst.startedAt > 0 ? Date.now() - inst.startedAt : 0;
    this.#clearTimers(inst);
    inst.child = undefined;
    const how =
      error ??
      (code !== null ? `exited with code ${code}` : signal !== null ? `killed by ${signal}` : "exited");
    const waiters = inst.exitWaiters;
    inst.exitWaiters = [];
    if (inst.state === "stopping") {
      inst.state = "stopped";
      inst.pid = 0;
      inst.killReason = undefined;
      inst.log.note(`[myelin] ${name} stopped (${how})`);
      for (const w of waiters) w();
      this.#changed();
      this.#save();
      return;
    }
    inst.pid = 0;
    // Killed by us (hung, unhealthy, not ready in time) counts as a failure whatever the exit code.
    const failure = error !== undefined || code !== 0 || inst.killReason !== undefined;
    inst.detail = inst.killReason !== undefined ? `${inst.killReason} (${how})` : how;
    inst.killReason = undefined;
    for (const w of waiters) w();
    const policy = inst.unit.restart;
    const restart = policy.policy === "always" || (policy.policy === "on-failure" && failure);
    if (!restart) {
      inst.state = failure && error !== undefined ? "failed" : "exited";
      inst.log.note(`[myelin] ${name} ${how}; not restarted (restart: ${policy.policy})`);
      this.#say(`${name} ${how}; not restarted (restart: ${policy.policy})`);
      this.#changed();
      this.#save();
      return;
    }
    const now = Date.now();
    inst.restartTimes = inst.restartTimes.filter((t) => now - t < policy.crashLoopWindowMs);
    if (inst.restartTimes.length >= policy.crashLoopRestarts) {
      inst.state = "failed";
      inst.detail = `crash loop: ${inst.restartTimes.length} restarts within ${fmtMs(policy.crashLoopWindowMs)}, last ${how}; fix it and run \`myelin restart ${inst.unit.nodes[0]}\``;
      inst.log.note(`[myelin] ${name} failed: ${inst.detail}`);
      this.#say(`${name} failed: ${inst.detail}`);
      this.#changed();
      this.#save();
      return;
    }
    if (upMs >= policy.resetAfterMs) inst.quickFailures = 0;
    const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** inst.quickFailures);
    const delay = Math.max(0, Math.round(base * (1 + policy.jitter * (2 * Math.random() - 1))));
    inst.quickFailures++;
    inst.restartTimes.push(now);
    inst.state = "backoff";
    inst.log.note(`[myelin] ${name} ${how}; restarting in ${fmtMs(delay)}`);
    this.#say(`${name} ${how}; restarting in ${fmtMs(delay)}`);
    inst.timer = setTimeout(() => {
      inst.timer = undefined;
      if (inst.state !== "backoff" || this.#closed) return;
      inst.restarts++;
      inst.state = "waiting";
      this.#reconcile();
    }, delay);
    this.#changed();
    this.#save();
  }

  /** Stops one process gracefully: SIGTERM to its group, SIGKILL after the grace period. */
  async #stopInstance(inst: Instance, why: string): Promise<void> {
    this.#clearTimers(inst);
    const live =
      inst.pid > 0 &&
      (inst.state === "starting" ||
        inst.state === "ready" ||
        inst.state === "unhealthy" ||
        inst.state === "stopping");
    if (!live) {
      inst.state = "stopped";
      inst.pid = 0;
      this.#changed();
      return;
    }
    const name = keyOf(inst.unit.name, inst.replica);
    const done = new Promise<void>((resolve) => inst.exitWaiters.push(resolve));
    if (inst.state !== "stopping") {
      inst.state = "stopping";
      inst.detail = why;
      inst.log.note(`[myelin] ${name} stopping (${why})`);
      this.#signal(inst, "SIGTERM");
      const pid = inst.pid;
      const kill = setTimeout(() => {
        if (inst.pid === pid && inst.state === "stopping") {
          inst.log.note(`[myelin] ${name} did not stop within ${fmtMs(inst.unit.stopGraceMs)}; SIGKILL`);
          this.#signal(inst, "SIGKILL");
        }
      }, inst.unit.stopGraceMs);
      void done.then(() => clearTimeout(kill));
      this.#changed();
    }
    await done;
  }

  // ---- adoption and polling ------------------------------------------------------------------

  #adopt(): void {
    let saved: SavedState;
    try {
      saved = JSON.parse(readFileSync(this.#stateFile, "utf8")) as SavedState;
    } catch {
      return;
    }
    this.#spec = saved.spec;
    if (saved.spec === undefined) return;
    const units = new Map(saved.spec.units.map((u) => [u.name, u]));
    // Every saved instance is in the table before any is followed up: an adopted process turning
    // ready makes the supervisor reconcile, which must not start a second copy of one not yet adopted.
    const adopted: Instance[] = [];
    for (const s of saved.instances) {
      const u = units.get(s.unit);
      if (u === undefined || s.pid <= 0) continue;
      const inst = this.#newInstance(u, s.replica);
      inst.restarts = s.restarts;
      if (sameProcess(s.pid, s.startTime)) {
        inst.id = s.id;
        inst.pid = s.pid;
        inst.startTime = s.startTime;
        inst.startedAt = s.startedAt;
        inst.adopted = true;
        inst.state = "starting";
        inst.everRegistered = true; // it did before the hub restarted; it will again
        inst.log.note(`[myelin] ${keyOf(u.name, s.replica)} adopted (pid ${s.pid}) after a hub restart`);
        this.#say(`${keyOf(u.name, s.replica)} adopted (pid ${s.pid})`);
        this.#instances.set(keyOf(u.name, s.replica), inst);
        adopted.push(inst);
      } else {
        inst.detail = "was gone when the hub restarted";
        this.#instances.set(keyOf(u.name, s.replica), inst);
      }
    }
    for (const inst of adopted) this.#afterStart(inst);
    this.#say(
      `resumed ${saved.spec.file}: ${[...this.#instances.values()].filter((i) => i.adopted).length} process(es) adopted`,
    );
  }

  #pollAll(): void {
    for (const inst of this.#instances.values()) {
      for (const line of inst.log.poll()) this.#publishLine(inst, line);
      // Adopted processes are not our children: no exit event, so look.
      if (
        inst.adopted &&
        inst.pid > 0 &&
        inst.child === undefined &&
        !sameProcess(inst.pid, inst.startTime)
      ) {
        const st = inst.state;
        if (st === "starting" || st === "ready" || st === "unhealthy" || st === "stopping") {
          inst.adopted = false;
          this.#onExit(inst, null, null, "exited (adopted: exit status unknown)");
        }
      }
    }
  }

  #publishLine(inst: Instance, line: string): void {
    const pub = this.#pub;
    if (pub === undefined || this.#closed) return;
    const level = line.startsWith("[myelin]") ? 30 : 20;
    pub
      .publish({
        stamp: timeNow(),
        level,
        name: keyOf(inst.unit.name, inst.replica),
        msg: line,
        file: "",
        function: "",
        line: 0,
      })
      .catch(() => undefined);
  }

  // ---- waiting and state ---------------------------------------------------------------------

  #changed(): void {
    for (const w of [...this.#waiters]) w();
    this.emit("change");
  }

  #waitFor(pred: () => boolean, timeoutMs: number): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.#closed) {
          cleanup();
          reject(new ClosedError("ERR_CLOSED", "the supervisor stopped"));
        } else if (pred()) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new TimeoutError("ERR_TIMEOUT", `not settled within ${fmtMs(timeoutMs)}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  /** Waits until every placed process is ready, or one failed/exited, or `waitMs` passed. */
  async #waitSettled(waitMs: number): Promise<{ ok: boolean; message: string }> {
    const desired = (): Instance[] => {
      const out: Instance[] = [];
      for (const u of this.#spec?.units ?? []) {
        if (!this.#placedHere(u)) continue;
        for (const r of replicaRange(u)) {
          const i = this.#instances.get(keyOf(u.name, r));
          if (i !== undefined) out.push(i);
        }
      }
      return out;
    };
    const bad = (): Instance[] => desired().filter((i) => i.state === "failed" || i.state === "exited");
    const extras = (): boolean => [...this.#instances.values()].some((i) => isExtra(i.unit, i.replica));
    const allReady = (): boolean => desired().every((i) => i.state === "ready") && !extras();
    if (waitMs > 0) {
      try {
        await this.#waitFor(() => allReady() || bad().length > 0, waitMs);
      } catch {
        // reported below
      }
    }
    const b = bad();
    if (b.length > 0) {
      return {
        ok: false,
        message: b.map((i) => `${keyOf(i.unit.name, i.replica)} ${i.state}: ${i.detail}`).join("; "),
      };
    }
    if (waitMs > 0 && !allReady()) {
      const waiting = desired().filter((i) => i.state !== "ready");
      return {
        ok: false,
        message: `not ready within ${fmtMs(waitMs)}: ${waiting.map((i) => `${keyOf(i.unit.name, i.replica)} ${i.state}${i.detail ? ` (${i.detail})` : ""}`).join(", ")}`,
      };
    }
    const n = desired().length;
    const skipped = (this.#spec?.units ?? []).filter((u) => !this.#placedHere(u)).map((u) => u.name);
    return {
      ok: true,
      message: `${n} process${n === 1 ? "" : "es"} ${waitMs > 0 ? "ready" : "started"}${skipped.length > 0 ? `; placed on other hosts: ${skipped.join(", ")} (this host's labels: ${this.#labels.join(", ")})` : ""}`,
    };
  }

  #say(line: string): void {
    this.#opts.log?.(line);
  }

  #save(): void {
    if (this.#saveScheduled || this.#closed) return;
    this.#saveScheduled = true;
    setImmediate(() => {
      this.#saveScheduled = false;
      if (!this.#closed) this.#writeState();
    });
  }

  #writeState(): void {
    if (this.#spec === undefined && this.#instances.size === 0) {
      rmSync(this.#stateFile, { force: true });
      return;
    }
    const state: SavedState = {
      spec: this.#spec,
      instances: [...this.#instances.values()].map((i) => ({
        unit: i.unit.name,
        replica: i.replica,
        id: i.id,
        pid: i.pid,
        startTime: i.startTime,
        startedAt: i.startedAt,
        restarts: i.restarts,
      })),
    };
    const tmp = `${this.#stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, this.#stateFile);
  }
}

/** True if two units run the same thing the same way (replicas aside). */
function sameDefinition(a: UnitSpec, b: UnitSpec): boolean {
  return JSON.stringify({ ...a, replicas: 0 }) === JSON.stringify({ ...b, replicas: 0 });
}
