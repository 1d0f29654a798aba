/**
 * The life of one supervised process, sans-IO: its states, the restart policy (exponential backoff
 * with jitter, reset after a stable run, crash-loop detection), readiness, health (probe results
 * and missing heartbeats), and graceful stops with a grace period.
 *
 * Time comes from an injected Clock, the jitter from an injected random function, and everything
 * that touches the world (signals, log lines, the supervisor's reconcile and state file) goes out
 * through LifecycleEffects; the supervisor spawns the process and feeds the lifecycle what happens
 * to it (spawned, exited, probe results, what the graph shows). So the whole machine runs in unit
 * tests without processes or sleeps.
 *
 *   waiting ──spawned──► starting ──nodes ready──► ready ◄──probe ok──► unhealthy (policy never)
 *      ▲                    │  ▲──── not ready ─────┘ │
 *      │                    └──── exited ◄────────────┴── killed: hung, unhealthy, not ready in time
 *      │                              │
 *      └──── backoff ◄── restart ─────┤── crash loop or cannot start ──► failed
 *                                     └── policy says no ──► exited
 *   any live state ──stop──► stopping ──exited──► stopped
 */
import { replicaNodeName, type NodeRecord } from "../node/index.js";
import { formatMs, type Clock, type ClockTimer } from "./clock.js";
import type { RestartSpec, UnitSpec } from "./spec.js";

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

/** What a lifecycle asks of the world. */
export interface LifecycleEffects {
  /** Sends `signal` to process `pid` and what it started (its process group). */
  signal(pid: number, signal: NodeJS.Signals): void;
  /** True if process `pid` still runs. */
  isRunning(pid: number): boolean;
  /** A line for the process's own log (`[myelin] …`). */
  note(line: string): void;
  /** A line for the supervisor's log. */
  say(line: string): void;
  /** Something `myelin ps` shows changed. */
  changed(): void;
  /** What is kept across a hub restart (pid, start, restarts) changed. */
  save(): void;
  /** It turned ready (its dependents may start) or its backoff ended (it may start again). */
  reconcile(): void;
  /** Stops its health probe, if one runs. */
  stopProbe(): void;
}

/** What a lifecycle runs on. */
export interface LifecycleOptions {
  clock: Clock;
  effects: LifecycleEffects;
  /** Random numbers in [0, 1) for the backoff's jitter (default Math.random). */
  random?: () => number;
}

/** The nodes of the graph that belong to one process, as the supervisor matched them. */
export interface RegistrationView {
  /** The hub has run long enough that a node missing from the graph is gone (GraphSnapshot.settled). */
  settled: boolean;
  records: readonly Pick<NodeRecord, "name" | "ready">[];
}

/** How long the nodes of a live process may be missing from a settled graph before it counts as hung, in ms. */
export const HUNG_AFTER_MS = 1000;

/** `<process>#<replica>`: how logs, `ps` and the state file name one process. */
export const instanceKey = (unit: string, replica: number): string => `${unit}#${replica}`;

/**
 * The delay before restart number `quickFailures + 1` of a run of quick failures, in ms:
 * `backoffMs · 2^quickFailures`, capped at `maxBackoffMs`, then ± `jitter` of it (`random` in [0, 1)).
 */
export function backoffDelay(policy: RestartSpec, quickFailures: number, random: number): number {
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** quickFailures);
  return Math.max(0, Math.round(base * (1 + policy.jitter * (2 * random - 1))));
}

/** States in which the process runs and is followed (registration, probes). */
const following = (s: ProcState): boolean => s === "starting" || s === "ready" || s === "unhealthy";

/** The lifecycle of one replica of one unit of the spec. */
export class ProcessLifecycle {
  /** Its unit; replaced when the spec is applied again with the same definition. */
  unit: UnitSpec;
  readonly replica: number;
  readonly #clock: Clock;
  readonly #fx: LifecycleEffects;
  readonly #random: () => number;
  #state: ProcState = "waiting";
  #pid = 0;
  #startedAt = 0;
  #adopted = false;
  #restarts = 0;
  /** When each restart within the crash-loop window was decided, in ms. */
  #restartTimes: number[] = [];
  /** Failures in a row, each after a run shorter than resetAfterMs: the backoff's exponent. */
  #quickFailures = 0;
  #detail = "";
  /** Why the supervisor killed the current process (it then counts as failed). */
  #killReason: string | undefined;
  #health = "unknown";
  #everRegistered = false;
  #registered = false;
  #probeOkOnce = false;
  #backoffTimer: ClockTimer | undefined;
  #readyTimer: ClockTimer | undefined;
  #hungTimer: ClockTimer | undefined;
  #exitWaiters: (() => void)[] = [];

  constructor(unit: UnitSpec, replica: number, opts: LifecycleOptions) {
    this.unit = unit;
    this.replica = replica;
    this.#clock = opts.clock;
    this.#fx = opts.effects;
    this.#random = opts.random ?? Math.random;
  }

  /** `<process>#<replica>`. */
  get name(): string {
    return instanceKey(this.unit.name, this.replica);
  }
  get state(): ProcState {
    return this.#state;
  }
  /** The pid of the current process; 0 if none runs. */
  get pid(): number {
    return this.#pid;
  }
  /** When the current (or last) process started, in ms since the epoch; 0 if never. */
  get startedAt(): number {
    return this.#startedAt;
  }
  /** The process was started by a previous supervisor and adopted after a hub restart. */
  get adopted(): boolean {
    return this.#adopted;
  }
  /** Restarts so far (by policy, or `myelin restart`). */
  get restarts(): number {
    return this.#restarts;
  }
  /** Why it is in this state (last exit, probe failure, …). */
  get detail(): string {
    return this.#detail;
  }
  /** healthy, unhealthy, hung or unknown. */
  get health(): string {
    return this.#health;
  }
  /** Its nodes were on the last graph seen. */
  get registered(): boolean {
    return this.#registered;
  }

  /** The supervisor spawned a process for it (`pid` undefined: a spawn error follows). */
  spawned(pid: number | undefined): void {
    this.#adopted = false;
    this.#state = "starting";
    this.#startedAt = this.#clock.now();
    this.#everRegistered = false;
    this.#registered = false;
    this.#health = "unknown";
    this.#probeOkOnce = false;
    if (pid !== undefined) this.#pid = pid;
  }

  /**
   * Takes over a process a previous supervisor started (alive, same start time): `starting` until
   * its nodes are seen again, which they were before the hub restarted.
   */
  adopt(saved: { pid: number; startedAt: number; restarts: number }): void {
    this.#restarts = saved.restarts;
    this.#pid = saved.pid;
    this.#startedAt = saved.startedAt;
    this.#adopted = true;
    this.#state = "starting";
    this.#everRegistered = true;
  }

  /** A process a previous supervisor started was gone when this one started: it starts afresh. */
  lostInHubRestart(restarts: number): void {
    this.#restarts = restarts;
    this.#detail = "was gone when the hub restarted";
  }

  /**
   * An adopted process is gone. It is not the supervisor's child, so no exit status comes: the
   * supervisor looks for it, and this counts as a failure (or ends a stop).
   */
  adoptedProcessGone(): void {
    if (!following(this.#state) && this.#state !== "stopping") return;
    this.#adopted = false;
    this.exited(null, null, "exited (adopted: exit status unknown)");
  }

  /**
   * Follows a process that just started or was adopted: ready at once (`readiness: process`) or
   * once its nodes are (`view`: what the graph shows now, undefined if no graph yet); killed if
   * not ready within `health.readyTimeoutMs`.
   */
  afterStart(view: RegistrationView | undefined): void {
    const u = this.unit;
    if (u.readiness === "process") this.#setReady(true);
    else this.registration(view);
    if (this.#state !== "ready" && u.health.readyTimeoutMs > 0) {
      this.#readyTimer = this.#clock.setTimer(u.health.readyTimeoutMs, () => {
        this.#readyTimer = undefined;
        if (this.#state !== "starting") return;
        this.#kill(`not ready within ${formatMs(u.health.readyTimeoutMs)}`);
      });
    }
  }

  /**
   * What the graph shows of its nodes. With `readiness: node` it is ready when every node of the
   * process is there and says so. Nodes that were there and are gone from a settled graph while
   * the process runs mean it hangs: after HUNG_AFTER_MS it is killed (SIGKILL) and restarted, if
   * `health.heartbeat` is on.
   */
  registration(view: RegistrationView | undefined): void {
    if (view === undefined || this.#pid <= 0 || !following(this.#state)) return;
    const recs = view.records;
    this.#registered = recs.length > 0;
    if (recs.length > 0) {
      this.#everRegistered = true;
      if (this.#hungTimer) {
        this.#hungTimer.cancel();
        this.#hungTimer = undefined;
        if (this.#health === "hung") this.#health = this.unit.health.probe ? "unknown" : "healthy";
      }
      if (this.unit.readiness === "node") {
        const names = new Set(recs.map((r) => r.name));
        const all =
          this.unit.kind === "module"
            ? this.unit.nodes.every((n) => names.has(replicaNodeName(n, this.replica)))
            : recs.length > 0;
        this.#setReady(all && recs.every((r) => r.ready !== false));
      }
      return;
    }
    // Registered before, gone now, process still there: it stopped heartbeating (hung) or left.
    if (this.#everRegistered && view.settled && this.unit.health.heartbeat && this.#hungTimer === undefined) {
      this.#hungTimer = this.#clock.setTimer(HUNG_AFTER_MS, () => {
        this.#hungTimer = undefined;
        if (this.#registered || !following(this.#state)) return;
        if (!this.#fx.isRunning(this.#pid)) return;
        this.#health = "hung";
        this.#kill("hung: its nodes stopped heartbeating while the process is alive", "SIGKILL");
      });
    }
  }

  /**
   * A transition of its health probe (ProbeLoop reports changes only). Healthy: `ready` again, or
   * ready for the first time with `readiness: probe`. Unhealthy: killed and restarted, except with
   * `restart: never`, which leaves it running as `unhealthy`.
   */
  probeResult(healthy: boolean, detail: string): void {
    const name = this.name;
    if (healthy) {
      this.#health = "healthy";
      if (this.#state === "unhealthy") this.#state = "ready";
      if (this.unit.readiness === "probe" && !this.#probeOkOnce) {
        this.#probeOkOnce = true;
        this.#setReady(true);
      }
      this.#fx.changed();
      return;
    }
    this.#health = "unhealthy";
    this.#detail = `probe: ${detail}`;
    this.#fx.note(`[myelin] ${name} unhealthy: ${detail}`);
    this.#fx.say(`${name} unhealthy: ${detail}`);
    if (this.unit.restart.policy === "never") {
      if (this.#state === "ready") this.#state = "unhealthy";
      this.#fx.changed();
      return;
    }
    this.#kill(`unhealthy: ${detail}`);
  }

  /**
   * The process ended: by `code` or `signal`, or `error` if it could not start. After a stop it is
   * `stopped`; otherwise the restart policy decides: `backoff` (a restart scheduled on the clock),
   * `failed` (a crash loop: `crashLoopRestarts` restarts within `crashLoopWindowMs`; or it could
   * not start and is not restarted) or `exited`. A process the supervisor killed counts as a
   * failure whatever its exit code.
   */
  exited(code: number | null, signal: NodeJS.Signals | null, error?: string): void {
    const name = this.name;
    const upMs = this.#startedAt > 0 ? this.#clock.now() - this.#startedAt : 0;
    this.clearTimers();
    const how =
      error ??
      (code !== null ? `exited with code ${code}` : signal !== null ? `killed by ${signal}` : "exited");
    const waiters = this.#exitWaiters;
    this.#exitWaiters = [];
    if (this.#state === "stopping") {
      this.#state = "stopped";
      this.#pid = 0;
      this.#killReason = undefined;
      this.#fx.note(`[myelin] ${name} stopped (${how})`);
      for (const w of waiters) w();
      this.#fx.changed();
      this.#fx.save();
      return;
    }
    this.#pid = 0;
    const failure = error !== undefined || code !== 0 || this.#killReason !== undefined;
    this.#detail = this.#killReason !== undefined ? `${this.#killReason} (${how})` : how;
    this.#killReason = undefined;
    for (const w of waiters) w();
    const policy = this.unit.restart;
    const restart = policy.policy === "always" || (policy.policy === "on-failure" && failure);
    if (!restart) {
      this.#state = failure && error !== undefined ? "failed" : "exited";
      this.#fx.note(`[myelin] ${name} ${how}; not restarted (restart: ${policy.policy})`);
      this.#fx.say(`${name} ${how}; not restarted (restart: ${policy.policy})`);
      this.#fx.changed();
      this.#fx.save();
      return;
    }
    const now = this.#clock.now();
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < policy.crashLoopWindowMs);
    if (this.#restartTimes.length >= policy.crashLoopRestarts) {
      this.#state = "failed";
      this.#detail = `crash loop: ${this.#restartTimes.length} restarts within ${formatMs(policy.crashLoopWindowMs)}, last ${how}; fix it and run \`myelin restart ${this.unit.nodes[0]}\``;
      this.#fx.note(`[myelin] ${name} failed: ${this.#detail}`);
      this.#fx.say(`${name} failed: ${this.#detail}`);
      this.#fx.changed();
      this.#fx.save();
      return;
    }
    if (upMs >= policy.resetAfterMs) this.#quickFailures = 0;
    const delay = backoffDelay(policy, this.#quickFailures, this.#random());
    this.#quickFailures++;
    this.#restartTimes.push(now);
    this.#state = "backoff";
    this.#fx.note(`[myelin] ${name} ${how}; restarting in ${formatMs(delay)}`);
    this.#fx.say(`${name} ${how}; restarting in ${formatMs(delay)}`);
    this.#backoffTimer = this.#clock.setTimer(delay, () => {
      this.#backoffTimer = undefined;
      if (this.#state !== "backoff") return;
      this.#restarts++;
      this.#state = "waiting";
      this.#fx.reconcile();
    });
    this.#fx.changed();
    this.#fx.save();
  }

  /**
   * Stops the process gracefully: SIGTERM to its group, SIGKILL if it still runs after
   * `stopGraceMs`. Resolves once it exited (`exited` was called); at once if none runs.
   */
  async stop(why: string): Promise<void> {
    this.clearTimers();
    const live = this.#pid > 0 && (following(this.#state) || this.#state === "stopping");
    if (!live) {
      this.#state = "stopped";
      this.#pid = 0;
      this.#fx.changed();
      return;
    }
    const name = this.name;
    const done = new Promise<void>((resolve) => this.#exitWaiters.push(resolve));
    if (this.#state !== "stopping") {
      this.#state = "stopping";
      this.#detail = why;
      this.#fx.note(`[myelin] ${name} stopping (${why})`);
      this.#signal("SIGTERM");
      const pid = this.#pid;
      const grace = this.unit.stopGraceMs;
      const kill = this.#clock.setTimer(grace, () => {
        if (this.#pid === pid && this.#state === "stopping") {
          this.#fx.note(`[myelin] ${name} did not stop within ${formatMs(grace)}; SIGKILL`);
          this.#signal("SIGKILL");
        }
      });
      void done.then(() => kill.cancel());
      this.#fx.changed();
    }
    await done;
  }

  /**
   * Makes a stopped process start afresh (`myelin restart`): counts a restart and forgets its
   * crash history, so backoff and crash-loop counting begin anew.
   */
  restartAfresh(): void {
    this.#state = "waiting";
    this.#restartTimes = [];
    this.#quickFailures = 0;
    this.#restarts++;
  }

  /** Cancels its timers (backoff, readiness, hung) and stops its probe. */
  clearTimers(): void {
    for (const t of [this.#backoffTimer, this.#readyTimer, this.#hungTimer]) t?.cancel();
    this.#backoffTimer = this.#readyTimer = this.#hungTimer = undefined;
    this.#fx.stopProbe();
  }

  #setReady(ready: boolean): void {
    if (ready && this.#state === "starting") {
      this.#state = "ready";
      this.#readyTimer?.cancel();
      this.#readyTimer = undefined;
      if (this.#health === "unknown" && this.unit.health.probe === undefined) this.#health = "healthy";
      this.#fx.say(`${this.name} ready (${formatMs(this.#clock.now() - this.#startedAt)} after start)`);
      this.#fx.reconcile();
    } else if (!ready && this.#state === "ready") {
      this.#state = "starting";
      this.#fx.changed();
    }
  }

  /** Kills a live process that must be restarted (hung, unhealthy, not ready in time). */
  #kill(why: string, signal: NodeJS.Signals = "SIGTERM"): void {
    const name = this.name;
    this.#detail = why;
    this.#killReason = why;
    this.#fx.note(`[myelin] ${name}: ${why}; killing it (${signal})`);
    this.#fx.say(`${name}: ${why}; killing it`);
    this.#signal(signal);
    if (signal !== "SIGKILL") {
      const pid = this.#pid;
      this.#clock.setTimer(
        this.unit.stopGraceMs,
        () => {
          if (this.#pid === pid && this.#fx.isRunning(pid)) this.#signal("SIGKILL");
        },
        { unref: true },
      );
    }
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#pid > 0) this.#fx.signal(this.#pid, signal);
  }
}
