/**
 * `myelin up`, `down`, `ps`, `logs`, `scale`, `restart`: running a system from a launch spec
 * (`myelin.yaml`) through the supervisor inside the hub (its protocol: `SUPERVISOR_PROTOCOL`).
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MyelinError, ServiceError, SpecError, TimeoutError } from "../errors.js";
import { rcl_interfaces } from "../msgs/index.js";
import { createNode, hubEndpoint, runtimeDir, StoreClient, type Node } from "../node/index.js";
import { ensureRuntimeDir } from "../node/config.js";
import {
  loadSpec,
  LOG_TOPIC,
  processRunning,
  supervisorClient,
  type ProcessRow,
} from "../orchestrator/index.js";
import {
  aborted,
  boolOpt,
  hubTimeoutMs,
  numOpt,
  strOpt,
  unlessInterrupted,
  UsageError,
  withNode,
  type CommandSpec,
  type Context,
  connectOpts,
  type Invocation,
} from "./common.js";
import { table } from "./format.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bin", "myelin");

/** Waits until the supervisor's services are on the graph. */
async function supervisorReady(ctx: Context, node: Node, timeoutMs: number): Promise<void> {
  const ok = await unlessInterrupted(supervisorClient(node).waitForServer("apply", timeoutMs), ctx.signal);
  if (!ok) {
    throw new ServiceError(
      "ERR_NO_SERVER",
      "the hub runs without a supervisor (started with --no-supervisor?); restart it with `myelin hub`",
    );
  }
}

/** Runs `fn` with a tool node once the supervisor answers. */
function withSupervisor<R>(
  ctx: Context,
  inv: Invocation,
  command: string,
  fn: (node: Node) => Promise<R>,
): Promise<R> {
  return withNode(ctx, inv, command, async (node) => {
    await supervisorReady(ctx, node, hubTimeoutMs(inv));
    return fn(node);
  });
}

/** Removes the node sockets (`*.sock`) in `dir` that nobody listens on; returns how many. */
async function removeStaleSockets(dir: string): Promise<number> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".sock"));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    const path = join(dir, n);
    const listening = await new Promise<boolean>((resolve) => {
      const s = netConnect(path);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", (e: NodeJS.ErrnoException) =>
        resolve(e.code !== "ECONNREFUSED" && e.code !== "ENOENT"),
      );
    });
    if (!listening) {
      rmSync(path, { force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * Removes `<dir>/supervisor` (state and logs) when no process its state names is alive: what a hub
 * that was killed, or stopped with its system, leaves behind. Returns true if it removed it.
 */
function removeStoppedSupervisorState(dir: string): boolean {
  const sup = join(dir, "supervisor");
  if (!existsSync(sup)) return false;
  try {
    const file = join(sup, "state.json");
    if (existsSync(file)) {
      const state = JSON.parse(readFileSync(file, "utf8")) as { instances?: { pid?: unknown }[] };
      for (const i of state.instances ?? [])
        if (typeof i.pid === "number" && i.pid > 0 && processRunning(i.pid)) return false;
    }
  } catch {
    return false; // unreadable: leave it for a person to look at
  }
  rmSync(sup, { recursive: true, force: true });
  return true;
}

function age(ms: number): string {
  if (ms <= 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** Prints the process table (or JSON). */
function printRows(ctx: Context, rows: ProcessRow[], json: boolean): void {
  if (json) {
    ctx.out(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    ctx.err("no supervised processes (start some with `myelin up`)");
    return;
  }
  const body = rows.map((r) => [
    r.nodes.length > 1 || r.nodes[0] !== r.process ? `${r.process} (${r.nodes.join(",")})` : r.process,
    String(r.replica),
    r.state + (r.adopted ? "*" : ""),
    r.pid > 0 ? String(r.pid) : "-",
    String(r.restarts),
    age(r.uptimeMs),
    r.cpuPercent < 0 ? "-" : `${r.cpuPercent.toFixed(1)}%`,
    r.rssBytes < 0 ? "-" : `${(r.rssBytes / 1048576).toFixed(1)} MiB`,
    r.health,
    r.detail,
  ]);
  for (const l of table(
    ["NODE", "REPLICA", "STATE", "PID", "RESTARTS", "UPTIME", "CPU", "MEM", "HEALTH", "DETAIL"],
    body,
  ))
    ctx.out(l.trimEnd());
}

const WAIT_OPTION = {
  type: "string",
  arg: "MS",
  help: "wait up to MS for the processes to be ready (default 60000; 0: do not wait)",
} as const;

// ---- up ------------------------------------------------------------------------------------------

export const upCommand: CommandSpec = {
  path: ["up"],
  summary: "start the system of a launch spec (and the hub, if none runs), in dependency order",
  args: [{ name: "SPEC", help: "the launch spec (default: ./myelin.yaml)", optional: true }],
  options: {
    env: {
      type: "string",
      arg: "NAME",
      help: "apply the overrides of environment NAME (default: $MYELIN_ENV, else none)",
    },
    "wait-ms": WAIT_OPTION,
    label: {
      type: "string",
      multiple: true,
      arg: "LABEL",
      help: "placement label of this host for a hub started here, e.g. edge (repeatable; the host name is always one)",
    },
    check: { type: "boolean", help: "only read and validate the spec; start nothing" },
    json: { type: "boolean", help: "print the process table as JSON" },
  },
  details: [
    "Reads and validates the whole spec first (includes, environment overrides, modules and commands exist,",
    "no dependency cycle): a bad spec is refused with file:line:col and field, and nothing starts.",
    "If no hub answers, starts one in the background (its output goes to <runtime dir>/hub.log); `myelin down`",
    "stops it again. Applying a spec to a running system starts what is new, stops what is gone and",
    "restarts what changed. Exit code 1 if a process failed or was not ready in time.",
  ],
  examples: [
    "myelin up                                 # ./myelin.yaml",
    "myelin up examples/system/myelin.yaml --env dev",
    "myelin up robot.yaml --check              # validate only",
    "myelin up --label edge --wait-ms 120000",
  ],
  connects: true,
  async run(ctx, inv) {
    const file = resolve(inv.positionals[0] ?? "myelin.yaml");
    if (!existsSync(file)) {
      const message = `no launch spec at ${file}; give its path (\`myelin up path/to/myelin.yaml\`) or create one (see docs/orchestration.md)`;
      throw new SpecError([{ file, line: 1, col: 1, field: "(file)", message }], { message });
    }
    const environment = strOpt(inv, "env") ?? process.env["MYELIN_ENV"];
    const spec = loadSpec(file, { environment });
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "up" }) ?? 60000;
    if (boolOpt(inv, "check")) {
      const n = spec.units.reduce((a, u) => a + u.replicas, 0);
      ctx.out(
        `${file}: valid; ${spec.units.length} process definition${spec.units.length === 1 ? "" : "s"}, ${n} process${n === 1 ? "" : "es"} in this order: ${spec.units.map((u) => u.name).join(", ")}`,
      );
      return 0;
    }
    const copts = connectOpts(inv);
    const node = await createNode({ name: `_myelin_up_${process.pid}`, ...copts });
    try {
      // A local hub leaves its pid in the runtime directory: no live pid, no hub (no need to ask).
      const pidFile = join(runtimeDir(copts.runtimeDir), "hub.pid");
      const local = hubEndpoint(copts).startsWith("ipc://");
      let hubUp =
        !local || processRunning(existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0);
      if (hubUp) {
        try {
          await unlessInterrupted(node.queryGraph(1000), ctx.signal);
        } catch (err) {
          if (!(err instanceof MyelinError && err.code === "ERR_HUB_UNREACHABLE")) throw err;
          hubUp = false;
        }
      }
      if (!hubUp) {
        const ep = hubEndpoint(copts);
        if (!ep.startsWith("ipc://")) {
          throw new TimeoutError(
            "ERR_HUB_UNREACHABLE",
            `no hub answered at ${ep}; \`myelin up\` starts a hub only on this host (drop --hub / MYELIN_HUB)`,
          );
        }
        const dir = ensureRuntimeDir(runtimeDir(copts.runtimeDir));
        const logFile = join(dir, "hub.log");
        const args = [BIN, "hub", "--stop-on-down"];
        if (copts.runtimeDir !== undefined) args.push("--runtime-dir", copts.runtimeDir);
        for (const l of inv.values["label"] === undefined ? [] : [inv.values["label"]].flat())
          args.push("--label", String(l));
        const fd = openSync(logFile, "a", 0o600);
        const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd] });
        closeSync(fd);
        child.unref();
        ctx.err(`started the hub in the background (pid ${child.pid ?? "?"}; log ${logFile})`);
      }
      await supervisorReady(ctx, node, hubUp ? hubTimeoutMs(inv) : 15000);
      if (spec.topics.length > 0) {
        // Durable-topic settings go to the store first, so the nodes' topics start with them.
        const store = new StoreClient(node, { timeoutMs: 10000 });
        if (!(await unlessInterrupted(store.waitForServer("configure", 5000), ctx.signal))) {
          throw new ServiceError(
            "ERR_NO_SERVER",
            `${file}: topics: the hub runs no store for durable topics; start it without --no-store`,
          );
        }
        // Last first: the store puts each new rule in front, so the spec's first pattern ends first.
        for (const r of [...spec.topics].reverse()) {
          await store.configure({
            topic: r.pattern,
            type: "",
            config_json: JSON.stringify(r.config),
            rule: true,
          });
        }
      }
      const r = await unlessInterrupted(
        supervisorClient(node).apply(
          { spec_json: JSON.stringify(spec), wait_ms: waitMs },
          { timeoutMs: waitMs + 15000 },
        ),
        ctx.signal,
      );
      printRows(ctx, JSON.parse(r.processes_json) as ProcessRow[], boolOpt(inv, "json"));
      if (!r.ok) {
        throw new MyelinError(
          "ERR_PROCESS_FAILED",
          `${r.message}; see \`myelin logs NODE\` (the system keeps running: fix and \`myelin restart NODE\`, or \`myelin down\`)`,
        );
      }
      ctx.err(r.message);
      return 0;
    } finally {
      await node.close();
    }
  },
};

// ---- down ----------------------------------------------------------------------------------------

export const downCommand: CommandSpec = {
  path: ["down"],
  summary: "stop the system in reverse dependency order (SIGTERM, grace period, SIGKILL)",
  args: [],
  options: {
    "keep-hub": { type: "boolean", help: "leave the hub running even if `myelin up` started it" },
    "wait-ms": { type: "string", arg: "MS", help: "wait up to MS for everything to stop (default 60000)" },
  },
  details: [
    "Stops the hub too when `myelin up` started it (unless --keep-hub); a hub started by hand keeps running.",
  ],
  examples: ["myelin down", "myelin down --keep-hub"],
  connects: true,
  async run(ctx, inv) {
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "down" }) ?? 60000;
    const dir = runtimeDir(strOpt(inv, "runtime-dir"));
    const pidFile = join(dir, "hub.pid");
    const remote = (strOpt(inv, "hub") ?? process.env["MYELIN_HUB"] ?? "") !== "";
    if (!remote) {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
      if (!(pid > 0 && processRunning(pid))) {
        // Nothing runs here: like `docker compose down` on a stopped project, that is not an error.
        // A hub killed hard leaves its pid file and socket behind: remove them.
        for (const f of ["hub.pid", "hub.sock"]) rmSync(join(dir, f), { force: true });
        const stale = await removeStaleSockets(dir);
        const state = removeStoppedSupervisorState(dir);
        const removed = [
          stale > 0 ? `${stale} socket${stale === 1 ? "" : "s"} of nodes that are gone` : "",
          state ? "the state and logs of a system whose processes are all gone" : "",
        ].filter((x) => x !== "");
        ctx.err(
          `nothing to stop: no hub runs in ${dir}${removed.length > 0 ? ` (removed ${removed.join(" and ")})` : ""}`,
        );
        return 0;
      }
    }
    return withSupervisor(ctx, inv, "down", async (node) => {
      const hubPid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
      const r = await unlessInterrupted(
        supervisorClient(node).down(
          { stop_hub: !boolOpt(inv, "keep-hub"), wait_ms: waitMs },
          { timeoutMs: waitMs + 5000 },
        ),
        ctx.signal,
      );
      ctx.err(r.message);
      if (!boolOpt(inv, "keep-hub") && hubPid > 0) {
        // The hub exits by itself if `myelin up` started it: wait for that (bounded).
        const end = Date.now() + 10000;
        const alive = (): boolean => processRunning(hubPid) && existsSync(pidFile);
        while (alive() && Date.now() < end && !ctx.signal.aborted)
          await new Promise((res) => setTimeout(res, 50));
        if (!alive()) ctx.err("hub stopped");
      }
      return 0;
    });
  },
};

// ---- ps ------------------------------------------------------------------------------------------

export const psCommand: CommandSpec = {
  path: ["ps"],
  summary: "show every supervised process: state, pid, restarts, uptime, CPU, memory, health",
  args: [],
  options: {
    json: { type: "boolean", help: "print the rows as JSON (ProcessRow[], see docs/orchestration.md)" },
  },
  details: [
    "States: waiting (for dependencies), starting, ready, unhealthy, backoff (restart scheduled), stopping, stopped,",
    "exited (not restarted, per policy), failed (crash loop or cannot start). A * marks a process adopted after a hub restart.",
    "CPU is the share of one core since the previous `myelin ps` (or since start).",
  ],
  examples: ["myelin ps", "myelin ps --json"],
  connects: true,
  async run(ctx, inv) {
    return withSupervisor(ctx, inv, "ps", async (node) => {
      const r = await supervisorClient(node).ps({});
      if (!boolOpt(inv, "json") && r.spec_file !== "")
        ctx.err(`${r.spec_file}${r.environment !== "" ? ` (environment ${r.environment})` : ""}`);
      printRows(ctx, JSON.parse(r.processes_json) as ProcessRow[], boolOpt(inv, "json"));
      return 0;
    });
  },
};

// ---- logs ----------------------------------------------------------------------------------------

export const logsCommand: CommandSpec = {
  path: ["logs"],
  summary: "print the captured output of supervised processes (and follow it with -f)",
  args: [{ name: "NODE", help: "a node of the spec (default: every process)", optional: true }],
  options: {
    follow: { type: "boolean", short: "f", help: "keep printing new lines until Ctrl-C" },
    lines: { type: "string", short: "n", arg: "N", help: "how many past lines per process (default 50)" },
    replica: { type: "string", arg: "N", help: "only replica N" },
  },
  details: [
    `Each line is tagged [process#replica]. Output is kept on disk in a bounded ring per process; new lines are also published on ${LOG_TOPIC} (rcl_interfaces/Log).`,
  ],
  examples: ["myelin logs detector", "myelin logs camera -f", "myelin logs -n 200 --replica 1 worker"],
  connects: true,
  async run(ctx, inv) {
    const node0 = inv.positionals[0] ?? "";
    const lines = numOpt(inv, "lines", { min: 0, integer: true, command: "logs" }) ?? 50;
    const replica = numOpt(inv, "replica", { min: 0, integer: true, command: "logs" }) ?? -1;
    return withSupervisor(ctx, inv, "logs", async (node) => {
      const r = await supervisorClient(node).logs({ node: node0, replica, lines });
      r.lines.forEach((l, i) => ctx.out(`[${r.sources[i]}] ${l}`));
      if (!boolOpt(inv, "follow")) return 0;
      await node.createSubscription(
        LOG_TOPIC,
        rcl_interfaces.Log,
        (m) => {
          const [proc, rep] = m.name.split("#");
          if (r.process !== "" && proc !== r.process) return;
          if (replica >= 0 && rep !== String(replica)) return;
          ctx.out(`[${m.name}] ${m.msg}`);
        },
        { qos: { reliability: "best-effort", depth: 100 } },
      );
      await aborted(ctx.signal);
      return 0;
    });
  },
};

// ---- scale, restart ------------------------------------------------------------------------------

export const scaleCommand: CommandSpec = {
  path: ["scale"],
  summary: "set the number of replicas of a node at runtime",
  args: [{ name: "NODE=N", help: "node and replica count, e.g. worker=3" }],
  options: { "wait-ms": WAIT_OPTION, json: { type: "boolean", help: "print the process table as JSON" } },
  details: [
    "New replicas start when ready to (dependencies); extra ones stop, highest index first. Not saved to the spec file.",
  ],
  examples: ["myelin scale worker=3", "myelin scale detector=0   # stop it, keep it in the spec"],
  connects: true,
  async run(ctx, inv) {
    const m = /^([A-Za-z][A-Za-z0-9_.-]*)=(\d+)$/.exec(inv.positionals[0]!);
    if (m === null)
      throw new UsageError(`scale: expected NODE=N, e.g. worker=3, got '${inv.positionals[0]}'`, "scale");
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "scale" }) ?? 60000;
    return withSupervisor(ctx, inv, "scale", async (node) => {
      const r = await unlessInterrupted(
        supervisorClient(node).scale(
          { node: m[1]!, replicas: Number(m[2]), wait_ms: waitMs },
          { timeoutMs: waitMs + 10000 },
        ),
        ctx.signal,
      );
      printRows(ctx, JSON.parse(r.processes_json) as ProcessRow[], boolOpt(inv, "json"));
      if (!r.ok) throw new MyelinError("ERR_PROCESS_FAILED", r.message);
      ctx.err(r.message);
      return 0;
    });
  },
};

export const restartCommand: CommandSpec = {
  path: ["restart"],
  summary: "restart a node's processes one replica at a time, each after the previous is ready",
  args: [{ name: "NODE", help: "a node of the running spec" }],
  options: {
    "wait-ms": {
      type: "string",
      arg: "MS",
      help: "wait up to MS for each replica to be ready (default 60000)",
    },
    json: { type: "boolean", help: "print the process table as JSON" },
  },
  details: [
    "A replicated service keeps answering: only one replica is down at a time. A failed process starts afresh.",
  ],
  examples: ["myelin restart detector"],
  connects: true,
  async run(ctx, inv) {
    const waitMs = numOpt(inv, "wait-ms", { min: 1, integer: true, command: "restart" }) ?? 60000;
    return withSupervisor(ctx, inv, "restart", async (node) => {
      const r = await unlessInterrupted(
        supervisorClient(node).restart(
          { node: inv.positionals[0]!, replicas: 0, wait_ms: waitMs },
          { timeoutMs: 64 * waitMs + 10000 },
        ),
        ctx.signal,
      );
      printRows(ctx, JSON.parse(r.processes_json) as ProcessRow[], boolOpt(inv, "json"));
      if (!r.ok) throw new MyelinError("ERR_PROCESS_FAILED", r.message);
      ctx.err(r.message);
      return 0;
    });
  },
};
