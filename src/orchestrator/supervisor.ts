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
 * - Site: every hub of a site runs the same spec, each the units placed on its labels. A spec
 *   applied with a site-wide version (`myelin up`, `myelin down`) replaces an older one; each
 *   supervisor watches the graph for the other hosts' supervisors, asks each for the version it
 *   holds, and pushes its spec (or its `down`) to those holding an older one — so a host that was
 *   unreachable converges when it is back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { closeSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClosedError, MyelinError, TimeoutError } from "../errors.js";
import { rcl_interfaces, std_srvs, timeNow } from "../msgs/index.js";
import {
  createNode,
  serveProtocol,
  type GraphSnapshot,
  type Node,
  type NodeRecord,
  type Publisher,
} from "../node/index.js";
import { runtimeDir as defaultRuntimeDir } from "../node/config.js";
import { planAdoption, savedState, type SavedState } from "./adoption.js";
import { formatMs, systemClock, type Clock } from "./clock.js";
import { ProbeLoop } from "./health.js";
import { LogRing } from "./log-ring.js";
import { SUPERVISOR_PROTOCOL, supervisorClient } from "./supervisor-protocol.js";
import { processRunning, procStartTime, procUsage, sameProcess } from "../store/proc-stat.js";
import { findExecutable, type LaunchSpec, type UnitSpec } from "./spec.js";
import {
  instanceKey,
  ProcessLifecycle,
  type LifecycleOptions,
  type ProcState,
  type RegistrationView,
} from "./process-lifecycle.js";
import {
  isExtra,
  placedOn,
  reconcile,
  replicaRange,
  settlement,
  stopOrder,
  type ReconcileTable,
  type Settlement,
} from "./reconcile.js";

/** Topic where the output of supervised processes is published. */
export const LOG_TOPIC = "/myelin/logs";

/** Options of the supervisor. */
export interface SupervisorOptions {
  /** Runtime directory of the hub (state, logs); default as for any node. */
  runtimeDir?: string;
  /** Hub address for the supervisor's node and the processes (default: the runtime dir's socket). */
  hub?: string;
  /**
   * Placement labels of this host (default: the host's name in the site — `$MYELIN_HOST`, else the
   * system's — and `$MYELIN_LABELS`, comma-separated).
   */
  labels?: string[];
  /** How often the supervisors of other hosts are checked for an older spec when one is behind, in ms (default 2000). */
  syncMs?: number;
  /** Each process's log file is rotated at this size, in bytes (default 1 MiB; about twice is kept). */
  logMaxBytes?: number;
  /** How often logs are read and published and adopted processes checked, in ms (default 200). */
  pollMs?: number;
  /** Human-readable events (started, ready, exited, restarting, failed). */
  log?: (line: string) => void;
  /** Called after `down` with `stop_hub` replied: the hub should exit. */
  onStopHub?: () => void;
}

/** One row of `myelin ps`. */
export interface ProcessRow {
  /** The host the process runs on (the supervisor's host name in the site). */
  host: string;
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

/** A supervised process: its lifecycle, and the handles the supervisor does I/O with. */
class Instance extends ProcessLifecycle {
  /** Its `MYELIN_INSTANCE`: how its nodes are found on the graph. */
  id = "";
  /** The OS's start time of the current process, to tell it from a reused pid. */
  startTime: string | undefined;
  child: ChildProcess | undefined;
  probe: ProbeLoop | undefined;
  lastCpu: { cpuMs: number; at: number } | undefined;
  readonly log: LogRing;

  constructor(unit: UnitSpec, replica: number, log: LogRing, opts: LifecycleOptions) {
    super(unit, replica, opts);
    this.log = log;
  }
}

const RUNNER = fileURLToPath(new URL("./runner.js", import.meta.url));

let prlimitPath: string | null | undefined;
function prlimit(): string | undefined {
  if (prlimitPath === undefined) prlimitPath = findExecutable("prlimit", "/") ?? null;
  return prlimitPath ?? undefined;
}

/** What one supervisor knows of the supervisor of another host of the site. */
interface PeerSupervisor {
  /** Node id of its `_supervisor` node (a new one: its hub restarted; ask again). */
  node: string;
  /** The version this supervisor held when it last found the peer up to date (or brought it there); -1: never. */
  syncedAt: number;
  busy: boolean;
  /** The last failure reported in the log, so it is said once. */
  lastError: string;
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
  /** Site-wide version of the spec, or of the `down` that cleared it; 0: none. */
  #version = 0;
  /** The last site-wide down (its version) and how many processes it stopped here. */
  #lastDown: { version: number; stopped: number } | undefined;
  /** The supervisors of the other hosts, by host name. */
  readonly #peers = new Map<string, PeerSupervisor>();
  #syncTimer: NodeJS.Timeout | undefined;
  #pub: Publisher<unknown> | undefined;
  #spec: LaunchSpec | undefined;
  readonly #instances = new Map<string, Instance>();
  #graph: GraphSnapshot | undefined;
  readonly #waiters = new Set<() => void>();
  #poll: NodeJS.Timeout | undefined;
  #saveScheduled = false;
  #closed = false;
  #busy: Promise<unknown> = Promise.resolve();
  readonly #clock: Clock = systemClock;
  /** The instance table as the reconcile loop sees it. */
  readonly #table: ReconcileTable<Instance> = {
    get: (key) => this.#instances.get(key),
    all: () => this.#instances.values(),
    create: (u, r) => {
      const inst = this.#newInstance(u, r);
      this.#instances.set(instanceKey(u.name, r), inst);
      return inst;
    },
    start: (inst) => this.#spawn(inst),
    stopExtra: (inst, why) => {
      void inst.stop(why).then(() => {
        const key = instanceKey(inst.unit.name, inst.replica);
        if (this.#instances.get(key) === inst && isExtra(inst.unit, inst.replica))
          this.#instances.delete(key);
        this.#reconcile();
      });
    },
  };

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
      node.host,
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
    sup.#syncTimer = setInterval(() => sup.#syncPeers(), opts.syncMs ?? 2000);
    sup.#syncTimer.unref();
    await serveProtocol(node, SUPERVISOR_PROTOCOL, {
      apply: (req, ctx) => {
        // The data server already refused non-admins; this handler starts commands, so it checks
        // the caller's identity itself too.
        node.requireAdmin(ctx.identity, SUPERVISOR_PROTOCOL.apply.service);
        return sup.#serial(() => sup.#applyJson(req.spec_json, req.wait_ms, req.version));
      },
      ps: () => ({
        processes_json: JSON.stringify(sup.ps()),
        spec_file: sup.#spec?.file ?? "",
        environment: sup.#spec?.environment ?? "",
        host: sup.#node.host,
        labels: [...sup.#labels],
        version: sup.#version,
        units_json: JSON.stringify(
          (sup.#spec?.units ?? []).map((u) => ({
            name: u.name,
            nodes: u.nodes,
            placement: u.placement,
            replicas: u.replicas,
          })),
        ),
      }),
      scale: (req) =>
        sup.#serial(() =>
          req.version > 0 && req.version < sup.#version
            ? Promise.resolve(sup.#stale("scale", req.version))
            : sup.#result(sup.scale(req.node, req.replicas, req.wait_ms, req.version)),
        ),
      restart: (req) => sup.#serial(() => sup.#result(sup.restart(req.node, req.wait_ms))),
      down: (req) =>
        sup.#serial(async () => {
          if (req.version > 0 && req.version < sup.#version) {
            const { ok, message } = sup.#stale("down", req.version);
            return { ok, message, hub_stops: false };
          }
          const n = await sup.down(req.wait_ms, req.version);
          const stop = req.stop_hub ? sup.#opts.onStopHub : undefined;
          // The reply is handed to the data socket when this promise settles (a microtask); the stop
          // runs after it, and the hub's close lingers until its sockets have written it.
          if (stop !== undefined) setImmediate(stop);
          return {
            ok: true,
            message: `stopped ${n} process${n === 1 ? "" : "es"}`,
            hub_stops: stop !== undefined,
          };
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

  /** Site-wide version of the spec being run (or of the `down` that stopped it); 0: none. */
  get version(): number {
    return this.#version;
  }

  /**
   * Runs `spec`: starts what is new, stops what is gone, restarts what changed, and waits up to
   * `waitMs` for every process to be ready. Resolves with whether all are ready and why not.
   *
   * `version` is the spec's site-wide version (0: this hub only; the version held stays). An
   * older version than the one held is refused (`ok` false); the version held again is taken as
   * the spec already running (nothing changes; a scale since is kept). A newer one is run and
   * then pushed to the other hosts' supervisors that hold an older one.
   */
  async apply(spec: LaunchSpec, waitMs = 0, version = 0): Promise<{ ok: boolean; message: string }> {
    if (version > 0 && version < this.#version) return this.#stale("apply", version);
    if (version > 0 && version === this.#version) return this.#waitSettled(waitMs);
    if (version > 0) this.#setVersion(version);
    const old = this.#spec;
    this.#spec = spec;
    const keep = new Map(spec.units.map((u) => [u.name, u]));
    for (const inst of [...this.#instances.values()]) {
      const u = keep.get(inst.unit.name);
      if (u === undefined || !sameDefinition(u, inst.unit)) {
        await inst.stop(u === undefined ? "removed from the spec" : "its definition changed");
        this.#instances.delete(instanceKey(inst.unit.name, inst.replica));
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
   * to be ready and extra ones to stop. With a site-wide `version` newer than the one held, the
   * scaled spec takes that version (and is pushed to the hosts holding an older one).
   * @throws MyelinError ERR_UNKNOWN_NODE if the running spec has no such node
   */
  async scale(
    node: string,
    replicas: number,
    waitMs = 0,
    version = 0,
  ): Promise<{ ok: boolean; message: string }> {
    const r = await this.#scale(node, replicas, waitMs, () => {
      if (version > this.#version) this.#setVersion(version);
    });
    return r;
  }

  async #scale(
    node: string,
    replicas: number,
    waitMs: number,
    changed: () => void,
  ): Promise<{ ok: boolean; message: string }> {
    const composed = this.#spec?.units.find((u) => u.nodes.length > 1 && u.nodes.includes(node));
    if (composed !== undefined && node !== composed.name)
      return this.#scaleOut(composed, node, replicas, waitMs, changed);
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
    changed();
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
    changed: () => void,
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
    changed();
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
   * @throws MyelinError ERR_UNKNOWN_NODE if the running spec has no such node, or it is not placed here
   */
  async restart(node: string, waitMs = 30000): Promise<{ ok: boolean; message: string }> {
    const unit = this.#unitOf(node);
    if (!this.#placedHere(unit)) {
      throw new MyelinError(
        "ERR_UNKNOWN_NODE",
        `node ${node} does not run on host ${this.#node.host}: its placement (${unit.placement.join(", ")}) matches none of this host's labels (${this.#labels.join(", ")})`,
      );
    }
    for (const r of replicaRange(unit)) {
      const inst = this.#instances.get(instanceKey(unit.name, r));
      if (inst !== undefined) {
        await inst.stop("rolling restart");
        inst.restartAfresh();
      }
      this.#reconcile();
      const cur = this.#instances.get(instanceKey(unit.name, r))!;
      try {
        await this.#waitFor(
          () => cur.state === "ready" || cur.state === "failed" || cur.state === "exited",
          waitMs,
        );
      } catch {
        return {
          ok: false,
          message: `${instanceKey(unit.name, r)} was not ready within ${formatMs(waitMs)} (${cur.state}); the restart stopped there`,
        };
      }
      if (cur.state !== "ready")
        return {
          ok: false,
          message: `${instanceKey(unit.name, r)} ${cur.state} after restart: ${cur.detail}`,
        };
    }
    return {
      ok: true,
      message: `${unit.name}: ${unit.replicas} replica${unit.replicas === 1 ? "" : "s"} restarted one at a time`,
    };
  }

  /**
   * Stops every process in reverse dependency order and forgets the spec; resolves with how many
   * stopped. With a site-wide `version` (newer than the one held), the stop is what the other
   * hosts' supervisors get pushed; with 0, it concerns this hub only.
   */
  async down(_waitMs = 0, version = 0): Promise<number> {
    if (version > this.#version) this.#setVersion(version);
    const hadSpec = (this.#spec?.units.length ?? 0) > 0;
    const order = stopOrder(this.#spec, this.#instances.values());
    this.#spec = undefined;
    let n = 0;
    for (const name of order) {
      const insts = [...this.#instances.values()].filter((i) => i.unit.name === name);
      n += insts.filter((i) => i.pid > 0 && i.state !== "stopped").length;
      await Promise.all(insts.map((i) => i.stop("down")));
      for (const i of insts) this.#instances.delete(instanceKey(i.unit.name, i.replica));
    }
    // Written now, not on the next turn: a close() right after down() would skip a scheduled
    // save and leave state.json naming processes that are gone.
    if (!this.#closed) this.#writeState();
    if (hadSpec || n > 0) this.#say(`down: stopped ${n} process${n === 1 ? "" : "es"}`);
    if (version > 0) {
      // One site-wide down reaches a host twice when another host's supervisor pushes it before
      // the CLI's own request arrives: both answers count what that down stopped.
      if (this.#lastDown?.version === version) n += this.#lastDown.stopped;
      this.#lastDown = { version, stopped: n };
    }
    return n;
  }

  /** The `myelin ps` rows. */
  ps(): ProcessRow[] {
    const now = this.#clock.now();
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
        host: this.#node.host,
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
        out.sources.push(instanceKey(inst.unit.name, inst.replica));
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
    if (this.#syncTimer) clearInterval(this.#syncTimer);
    for (const inst of this.#instances.values()) inst.clearTimers();
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
    version: number,
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
    return this.#result(this.apply(spec, waitMs, version));
  }

  /** The answer to an apply or down older than the version held. */
  #stale(what: string, version: number): { ok: false; message: string; processes_json: string } {
    return {
      ok: false,
      message: `${what} of version ${version} refused: host ${this.#node.host} holds the newer version ${this.#version} (a later \`myelin up\` or \`down\`)`,
      processes_json: JSON.stringify(this.ps()),
    };
  }

  // ---- the site ------------------------------------------------------------------------------

  #setVersion(version: number): void {
    this.#version = version;
    this.#save();
    // Every other host may be behind now.
    queueMicrotask(() => this.#syncPeers());
  }

  /** Follows the supervisors of the other hosts on the graph. */
  #trackPeers(g: GraphSnapshot): void {
    const seen = new Map<string, string>();
    for (const n of g.nodes) {
      if (n.name !== "_supervisor" || n.host === this.#node.host) continue;
      if (n.services.some((x) => x.service === SUPERVISOR_PROTOCOL.apply.service)) seen.set(n.host, n.id);
    }
    for (const host of [...this.#peers.keys()]) if (!seen.has(host)) this.#peers.delete(host);
    let fresh = false;
    for (const [host, node] of seen) {
      const p = this.#peers.get(host);
      if (p !== undefined && p.node === node) continue;
      this.#peers.set(host, { node, syncedAt: -1, busy: false, lastError: "" });
      fresh = true;
    }
    if (fresh) this.#syncPeers();
  }

  /** Asks each supervisor not known to hold this version for its own, and pushes ours if it is older. */
  #syncPeers(): void {
    if (this.#closed || this.#version === 0) return;
    for (const [host, p] of this.#peers)
      if (!p.busy && p.syncedAt !== this.#version) void this.#syncPeer(host, p);
  }

  async #syncPeer(host: string, p: PeerSupervisor): Promise<void> {
    p.busy = true;
    const version = this.#version;
    const client = supervisorClient(this.#node, { host, timeoutMs: 15000, breaker: false, retries: 0 });
    try {
      const theirs = await client.ps({});
      if (theirs.version < version && this.#version === version && !this.#closed) {
        const spec = this.#spec;
        const r =
          spec !== undefined
            ? await client.apply({ spec_json: JSON.stringify(spec), wait_ms: 0, version })
            : await client.down({ stop_hub: false, wait_ms: 0, version });
        if (!r.ok) throw new MyelinError("ERR_PROCESS_FAILED", r.message);
        this.#say(
          `host ${host} held version ${theirs.version}: sent it ${spec !== undefined ? `the spec of version ${version}` : `the down of version ${version}`}`,
        );
      }
      p.syncedAt = version;
      p.lastError = "";
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== p.lastError && !this.#closed)
        this.#say(`cannot bring host ${host} to version ${version} yet (retrying): ${msg}`);
      p.lastError = msg;
    } finally {
      p.busy = false;
      client.close();
    }
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
    return placedOn(u, this.#labels);
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
    reconcile(spec, this.#labels, this.#graph, this.#table);
    this.#changed();
  }

  #newInstance(u: UnitSpec, replica: number): Instance {
    const log = new LogRing({
      path: join(this.#logDir, `${u.name}.${replica}.log`),
      maxBytes: this.#opts.logMaxBytes ?? 1024 * 1024,
    });
    log.skipToEnd();
    const inst: Instance = new Instance(u, replica, log, {
      clock: this.#clock,
      effects: {
        signal: signalGroup,
        isRunning: processRunning,
        note: (line) => log.note(line),
        say: (line) => this.#say(line),
        changed: () => this.#changed(),
        save: () => this.#save(),
        reconcile: () => this.#reconcile(),
        stopProbe: () => {
          inst.probe?.stop();
          inst.probe = undefined;
        },
      },
    });
    return inst;
  }

  #spawn(inst: Instance): void {
    const u = inst.unit;
    const name = instanceKey(u.name, inst.replica);
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
    inst.spawned(child.pid);
    inst.lastCpu = undefined;
    child.once("error", (err) => {
      if (inst.child === child) this.#onExit(inst, null, null, `cannot start ${argv[0]}: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      if (inst.child === child) this.#onExit(inst, code, signal);
    });
    if (child.pid === undefined) return; // 'error' follows
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
    inst.afterStart(this.#registrationOf(inst));
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
        (healthy, detail) => inst.probeResult(healthy, detail),
      );
    }
    this.#save();
  }

  /** What the graph shows of `inst`'s nodes (matched by its instance id, or its pid); undefined before the first graph. */
  #registrationOf(inst: Instance): RegistrationView | undefined {
    const g = this.#graph;
    if (g === undefined) return undefined;
    const records: NodeRecord[] = g.nodes.filter((n) =>
      n.instance !== undefined ? n.instance === inst.id : n.pid === inst.pid,
    );
    return { settled: g.settled, records };
  }

  #onGraph(g: GraphSnapshot): void {
    this.#graph = g;
    this.#trackPeers(g);
    for (const inst of this.#instances.values()) inst.registration(this.#registrationOf(inst));
    this.#reconcile();
  }

  #onExit(inst: Instance, code: number | null, signal: NodeJS.Signals | null, error?: string): void {
    inst.child = undefined;
    inst.exited(code, signal, error);
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
    this.#version = typeof saved.version === "number" ? saved.version : 0;
    if (saved.spec === undefined) return;
    // Every saved instance is in the table before any is followed up: an adopted process turning
    // ready makes the supervisor reconcile, which must not start a second copy of one not yet adopted.
    const adopted: Instance[] = [];
    for (const { unit: u, saved: s, alive } of planAdoption(saved, sameProcess)) {
      const inst = this.#newInstance(u, s.replica);
      if (alive) {
        inst.id = s.id;
        inst.startTime = s.startTime;
        inst.adopt(s); // it registered before the hub restarted; it will again
        inst.log.note(
          `[myelin] ${instanceKey(u.name, s.replica)} adopted (pid ${s.pid}) after a hub restart`,
        );
        this.#say(`${instanceKey(u.name, s.replica)} adopted (pid ${s.pid})`);
        adopted.push(inst);
      } else {
        inst.lostInHubRestart(s.restarts);
      }
      this.#instances.set(instanceKey(u.name, s.replica), inst);
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
      if (inst.adopted && inst.pid > 0 && inst.child === undefined && !sameProcess(inst.pid, inst.startTime))
        inst.adoptedProcessGone();
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
        name: instanceKey(inst.unit.name, inst.replica),
        msg: line,
        file: this.#node.host, // the host it runs on: `myelin logs -f` tells the hosts of a site apart
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
        reject(new TimeoutError("ERR_TIMEOUT", `not settled within ${formatMs(timeoutMs)}`));
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
    const now = (): Settlement<Instance> => settlement(this.#spec, this.#labels, this.#table);
    const desired = (): Instance[] => now().desired;
    const bad = (): Instance[] => now().bad;
    const allReady = (): boolean => now().allReady;
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
        message: b.map((i) => `${instanceKey(i.unit.name, i.replica)} ${i.state}: ${i.detail}`).join("; "),
      };
    }
    if (waitMs > 0 && !allReady()) {
      const waiting = desired().filter((i) => i.state !== "ready");
      return {
        ok: false,
        message: `not ready within ${formatMs(waitMs)}: ${waiting.map((i) => `${instanceKey(i.unit.name, i.replica)} ${i.state}${i.detail ? ` (${i.detail})` : ""}`).join(", ")}`,
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
    if (this.#spec === undefined && this.#instances.size === 0 && this.#version === 0) {
      rmSync(this.#stateFile, { force: true });
      return;
    }
    const state = savedState(this.#spec, this.#instances.values(), this.#version);
    const tmp = `${this.#stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, this.#stateFile);
  }
}

/** True if two units run the same thing the same way (replicas aside). */
function sameDefinition(a: UnitSpec, b: UnitSpec): boolean {
  return JSON.stringify({ ...a, replicas: 0 }) === JSON.stringify({ ...b, replicas: 0 });
}

/** Sends `signal` to the process group of `pid` (the process and what it started), or to the process alone. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}
