/**
 * V8 settings of the processes Myelin starts itself while they are idle: `myelin hub` (held by
 * `bin/myelin` before it loads the command) and the supervisor's module runner (runner.ts, held
 * before it loads the node and the user's modules). They are given back to V8's defaults as soon
 * as the process has work. Library code never calls this: it changes the flags of the whole
 * process, and a program that imports the package chooses its own.
 *
 * Starting a hub loads some 130 modules, a node some 80 (plus the user's), and an idle one then
 * runs only its periodic timers (heartbeats, liveliness, the supervisor's tick; under 1 % of a
 * core). With V8's defaults both leave costs behind for as long as the process runs: Node's module
 * loader, and after half a minute its timer functions, get hot enough for the optimizing compiler
 * (TurboFan), whose code pages in the `node` binary then stay resident (about 3.5 MiB), the
 * baseline compiler (Sparkplug) compiles the functions that ran a few times, which pages in its
 * own code and keeps the code it made (about 0.9 MiB), and the young generation grows to several
 * MiB while modules load. Held back, none of it happens. Once the
 * process uses more than {@link BUSY_CPU_MS} ms of CPU in a second (durable appends, many nodes, a
 * gateway's clients, a node's own work), both are V8's defaults again for good, so a busy process
 * is optimized and sized as before, from its first busy second on. The store opens its topics (and
 * recovers their logs) on first use, which counts as work.
 */
import { setFlagsFromString } from "node:v8";

/** V8's defaults for what {@link holdIdleCosts} changes (Node 20, V8 11.3). */
const RELEASED = ["--turbofan", "--semi-space-growth-factor=2", "--sparkplug"];
/** While the process is idle: no optimizing or baseline compiler, no growth of the young generation. */
const HELD = ["--no-turbofan", "--semi-space-growth-factor=1", "--no-sparkplug"];
/**
 * CPU time in one second (user + system, all threads, in ms) from which the process counts as busy:
 * an idle hub uses 2-5 ms a second, with one spike of about 40 ms some 8 s after it starts (V8's
 * memory reducer); a hub taking durable appends uses hundreds.
 */
export const BUSY_CPU_MS = 100;
/** How often the CPU time is looked at, in ms. */
const CHECK_MS = 1000;

let held = false;
let timer: NodeJS.Timeout | undefined;

/**
 * Holds back the optimizing compiler and the young generation's growth; call before loading the
 * hub or the node. Does nothing when `env[offSwitch]` is `off` (`MYELIN_HUB_IDLE_V8` for the hub,
 * `MYELIN_NODE_IDLE_V8` for the module runner), or when the process was started with V8 flags of
 * its own about either (in `NODE_OPTIONS` or on the command line): those are the user's choice.
 */
export function holdIdleCosts(env: NodeJS.ProcessEnv = process.env, offSwitch = "MYELIN_HUB_IDLE_V8"): void {
  if (env[offSwitch] === "off") return;
  const given = [...process.execArgv, ...(env["NODE_OPTIONS"] ?? "").split(/\s+/)];
  if (given.some((f) => /^--(no-)?(turbofan|opt|sparkplug|semi-space|max-semi-space|min-semi-space)/.test(f)))
    return;
  for (const f of HELD) setFlagsFromString(f);
  held = true;
}

/**
 * From now on (the hub or the node has started), gives V8 its defaults back in the first second the process
 * uses {@link BUSY_CPU_MS} ms of CPU or more. Does nothing unless {@link holdIdleCosts} held them.
 */
export function releaseWhenBusy(): void {
  if (!held || timer !== undefined) return;
  let last = process.cpuUsage();
  timer = setInterval(() => {
    const now = process.cpuUsage();
    const ms = (now.user - last.user + now.system - last.system) / 1000;
    last = now;
    if (ms >= BUSY_CPU_MS) releaseIdleCosts();
  }, CHECK_MS);
  timer.unref();
}

/** Gives V8 its defaults back now, if {@link holdIdleCosts} held them; idempotent. */
export function releaseIdleCosts(): void {
  clearInterval(timer);
  if (!held) return;
  held = false;
  for (const f of RELEASED) setFlagsFromString(f);
}

/** True while the idle settings are held (for the tests and status). */
export function idleCostsHeld(): boolean {
  return held;
}
