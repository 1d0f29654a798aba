/**
 * `myelin up`, `down`, `ps`, `logs`, `scale`, `restart`: running a system from a launch spec
 * (`myelin.yaml`) through the supervisor inside the hub (its protocol: `SUPERVISOR_PROTOCOL`).
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  myelinError,
  MyelinError,
  ServiceError,
  SpecError,
  TimeoutError,
  type ErrorCode,
} from "../errors.js";
import { rcl_interfaces } from "../msgs/index.js";
import { createNode, hubEndpoint, runtimeDir, StoreClient, type Node } from "../node/index.js";
import { ensureRuntimeDir } from "../node/config.js";
import {
  loadSpec,
  LOG_TOPIC,
  processRunning,
  supervisorClient,
  type LaunchSpec,
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
import {
  eachSupervisor,
  parseSiteStatus,
  restrictHosts,
  rowsOf,
  siteHosts,
  unplaceable,
  type HostResult,
  type SiteHost,
  type UnitSummary,
} from "./site-supervisors.js";

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

/** The hosts of the site the hub of `node` belongs to (just this one when it has no peers). */
async function siteOf(ctx: Context, node: Node, inv: Invocation): Promise<SiteHost[]> {
  const status = parseSiteStatus(
    await unlessInterrupted(node.querySiteStatus(hubTimeoutMs(inv)), ctx.signal),
  );
  const graph = await unlessInterrupted(node.queryGraph(hubTimeoutMs(inv)), ctx.signal);
  return siteHosts(status, graph);
}

/** Runs `fn` with a tool node once the supervisor answers, and the hosts of the site. */
function withSupervisor<R>(
  ctx: Context,
  inv: Invocation,
  command: string,
  fn: (node: Node, hosts: SiteHost[]) => Promise<R>,
): Promise<R> {
  return withNode(ctx, inv, command, async (node) => {
    await supervisorReady(ctx, node, hubTimeoutMs(inv));
    return fn(node, await siteOf(ctx, node, inv));
  });
}

/** A version newer than every one the answering supervisors hold (ms since the epoch, or above). */
function nextVersion(held: HostResult<{ version: number }>[]): number {
  let v = Date.now();
  for (const r of held) if (r.ok) v = Math.max(v, r.value.version + 1);
  return v;
}

/** A problem on one host, for the summary of a site-wide command. */
interface HostProblem {
  code: ErrorCode;
  text: string;
}

/** Says each problem on stderr and throws one error naming them all (the first one's code). */
function failWith(ctx: Context, problems: HostProblem[]): void {
  if (problems.length === 0) return;
  if (problems.length > 1) for (const p of problems) ctx.err(p.text);
  throw myelinError(
    problems[0]!.code,
    problems.length === 1 ? problems[0]!.text : `${problems.length} problems across the site (above)`,
  );
}

/** The problem of a call that failed on a host. */
function callProblem(r: { host: string; error: Error; unreachable: boolean }, after: string): HostProblem {
  const code = r.error instanceof MyelinError ? r.error.code : "ERR_SERVICE_FAILED";
  return {
    code: r.unreachable ? "ERR_PEER_UNREACHABLE" : code,
    text: `host ${r.host}: ${r.unreachable ? `not reached: ${r.error.message}` : r.error.message}${r.unreachable ? after : ""}`,
  };
}

/** The `--host` option of the site-wide commands. */
const HOST_OPTION = {
  type: "string",
  arg: "HOST",
  help: "only the hub of this host of the site (default: every host; names as `myelin site status` shows them)",
} as const;

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

/** Prints the process table (or JSON); with `multiHost`, a HOST column first. */
function printRows(ctx: Context, rows: ProcessRow[], json: boolean, multiHost = false): void {
  if (json) {
    ctx.out(JSON.stringify(rows, null, 2));
    return;
  }
  if (rows.length === 0) {
    ctx.err("no supervised processes (start some with `myelin up`)");
    return;
  }
  const body = rows.map((r) => [
    ...(multiHost ? [r.host] : []),
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
    [
      ...(multiHost ? ["HOST"] : []),
      "NODE",
      "REPLICA",
      "STATE",
      "PID",
      "RESTARTS",
      "UPTIME",
      "CPU",
      "MEM",
      "HEALTH",
      "DETAIL",
    ],
    body,
  ))
    ctx.out(l.trimEnd());
}

/** The units of a spec as the placement check reads them. */
function summaries(units: readonly UnitSummary[]): UnitSummary[] {
  return units.map((u) => ({ name: u.name, nodes: u.nodes, placement: u.placement, replicas: u.replicas }));
}

/**
 * The problem of the units no host can run: the labels of each answering hub, and the name of
 * each host that did not answer (its name is one of its labels; the rest are unknown).
 */
function placementProblem(
  units: readonly UnitSummary[],
  labels: ReadonlyMap<string, readonly string[]>,
  silent: readonly string[],
): HostProblem | undefined {
  const all = new Map(labels);
  for (const h of silent) if (!all.has(h)) all.set(h, [h]);
  const none = unplaceable(units, all);
  if (none.length === 0) return undefined;
  const names = none.map((u) => `${u.name} (placement: ${u.placement.join(", ")})`).join("; ");
  const have = [...labels].map(([h, ls]) => `${h} [${ls.join(", ")}]`).join(", ");
  // A host that did not answer may carry the label: then the node is not known to be unplaceable.
  return {
    code: "ERR_UNPLACEABLE",
    text:
      silent.length > 0
        ? `placed on no hub that answered: ${names}; labels: ${have}; not answering (their labels are unknown): ${silent.join(", ")}`
        : `unplaceable: ${names} matches the labels of no hub of the site; labels: ${have}; fix the placement, or give a hub the label (myelin hub --label L)`,
  };
}

const WAIT_OPTION = {
  type: "string",
  arg: "MS",
  help: "wait up to MS for the processes to be ready (default 60000; 0: do not wait)",
} as const;

// ---- up ------------------------------------------------------------------------------------------

export const upCommand: CommandSpec = {
  path: ["up"],
  summary:
    "start the system of a launch spec on every host of the site (and the hub, if none runs), in dependency order",
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
    "restarts what changed.",
    "In a site (hubs with --peer), the spec goes to the supervisor of every host, with a new version; each",
    "runs the nodes whose placement matches its labels. A node no hub's labels match is reported unplaceable.",
    "A host that does not answer is reported, and gets the spec from the other hubs when it is back.",
    "Exit code 1 if a process failed or was not ready in time, a node is unplaceable or a host was not reached.",
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
      const hosts = await siteOf(ctx, node, inv);
      const multi = hosts.length > 1;
      // What each hub holds: its labels (for placement) and its version (the new one is newer).
      const held = await unlessInterrupted(
        eachSupervisor(node, hosts, hubTimeoutMs(inv) + 3000, (c) => c.ps({})),
        ctx.signal,
      );
      const version = nextVersion(held);
      const answering = hosts.filter((h) => held.some((r) => r.host === h.host && r.ok));
      const problems: HostProblem[] = [];
      const after = `; it gets version ${version} of the spec from the other hubs when it is back`;
      if (spec.topics.length > 0) {
        // Durable-topic settings go to each host's store first, so the nodes' topics start with them.
        for (const h of answering) {
          const p = await configureTopics(ctx, node, h, file, spec.topics);
          if (p !== undefined) problems.push(p);
        }
      }
      const results = await unlessInterrupted(
        eachSupervisor(node, answering, waitMs + 15000, (c) =>
          c.apply(
            { spec_json: JSON.stringify(spec), wait_ms: waitMs, version },
            { timeoutMs: waitMs + 15000 },
          ),
        ),
        ctx.signal,
      );
      const rows: ProcessRow[] = [];
      for (const r of results) if (r.ok) rows.push(...rowsOf(r.value.processes_json, r.host));
      printRows(ctx, rows, boolOpt(inv, "json"), multi);
      for (const r of [...held.filter((x) => !x.ok), ...results])
        if (!r.ok) problems.push(callProblem(r, after));
      for (const r of results) {
        if (!r.ok) continue;
        if (r.value.ok) ctx.err(multi ? `host ${r.host}: ${r.value.message}` : r.value.message);
        else
          problems.push({
            code: "ERR_PROCESS_FAILED",
            text: `${multi ? `host ${r.host}: ` : ""}${r.value.message}; see \`myelin logs NODE\` (the system keeps running: fix and \`myelin restart NODE\`, or \`myelin down\`)`,
          });
      }
      const labels = new Map<string, readonly string[]>();
      for (const r of held) if (r.ok) labels.set(r.host, r.value.labels);
      const placement = placementProblem(
        summaries(spec.units),
        labels,
        hosts.filter((h) => !labels.has(h.host) && h.state === "unreachable").map((h) => h.host),
      );
      if (placement !== undefined) problems.push(placement);
      failWith(ctx, problems);
      return 0;
    } finally {
      await node.close();
    }
  },
};

/**
 * Gives the durable-topic settings of a spec to the store of `host`. A missing store is an error
 * on this host and a problem on another.
 */
async function configureTopics(
  ctx: Context,
  node: Node,
  host: SiteHost,
  file: string,
  topics: LaunchSpec["topics"],
): Promise<HostProblem | undefined> {
  const store = new StoreClient(node, { timeoutMs: 10000, host: host.host });
  try {
    if (!(await unlessInterrupted(store.waitForServer("configure", host.local ? 5000 : 2000), ctx.signal))) {
      const text = `${file}: topics: the hub${host.local ? "" : ` of host ${host.host}`} runs no store for durable topics; start it without --no-store`;
      if (host.local) throw new ServiceError("ERR_NO_SERVER", text);
      return { code: "ERR_NO_SERVER", text };
    }
    // Last first: the store puts each new rule in front, so the spec's first pattern ends first.
    for (const r of [...topics].reverse()) {
      await store.configure({
        topic: r.pattern,
        type: "",
        config_json: JSON.stringify(r.config),
        rule: true,
      });
    }
    return undefined;
  } finally {
    store.close();
  }
}

// ---- down ----------------------------------------------------------------------------------------

export const downCommand: CommandSpec = {
  path: ["down"],
  summary:
    "stop the system on every host of the site, in reverse dependency order (SIGTERM, grace period, SIGKILL)",
  args: [],
  options: {
    "keep-hub": { type: "boolean", help: "leave the hub running even if `myelin up` started it" },
    "wait-ms": { type: "string", arg: "MS", help: "wait up to MS for everything to stop (default 60000)" },
    host: HOST_OPTION,
  },
  details: [
    "Stops the hub too when `myelin up` started it (unless --keep-hub); a hub started by hand keeps running.",
    "In a site, every host's supervisor stops its processes; a host that does not answer is reported, and stops",
    "when it is back (the other hubs send it this down). With --host H only H stops, until the next `myelin up`.",
  ],
  examples: [
    "myelin down",
    "myelin down --keep-hub",
    "myelin down --host edge1   # only the processes of host edge1",
  ],
  connects: true,
  async run(ctx, inv) {
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "down" }) ?? 60000;
    const only = strOpt(inv, "host");
    const dir = runtimeDir(strOpt(inv, "runtime-dir"));
    const pidFile = join(dir, "hub.pid");
    const remote = (strOpt(inv, "hub") ?? process.env["MYELIN_HUB"] ?? "") !== "";
    if (!remote && only === undefined) {
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
    return withSupervisor(ctx, inv, "down", async (node, hosts) => {
      const targets = restrictHosts(hosts, only, "down");
      const multi = hosts.length > 1;
      const hubPid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
      const keepHub = boolOpt(inv, "keep-hub");
      // Site-wide, the down is versioned so a host that misses it stops when it is back; one host only: not.
      const version =
        only === undefined
          ? nextVersion(
              await unlessInterrupted(
                eachSupervisor(node, hosts, hubTimeoutMs(inv) + 3000, (c) => c.ps({})),
                ctx.signal,
              ),
            )
          : 0;
      const results = await unlessInterrupted(
        eachSupervisor(node, targets, waitMs + 5000, (c, h) =>
          c.down({ stop_hub: h.local && !keepHub, wait_ms: waitMs, version }, { timeoutMs: waitMs + 5000 }),
        ),
        ctx.signal,
      );
      const problems: HostProblem[] = [];
      for (const r of results) {
        if (!r.ok)
          problems.push(
            callProblem(
              r,
              version > 0
                ? "; it stops its processes when it is back (the other hubs send it this down)"
                : "",
            ),
          );
        else if (!r.value.ok)
          problems.push({ code: "ERR_VERSION_CONFLICT", text: `host ${r.host}: ${r.value.message}` });
        else ctx.err(multi ? `host ${r.host}: ${r.value.message}` : r.value.message);
      }
      const hubStops = results.some(
        (r) => r.ok && r.value.hub_stops && targets.find((h) => h.host === r.host)?.local === true,
      );
      if (hubStops && !keepHub && hubPid > 0 && !remote) {
        // The hub said it exits (`myelin up` started it with --stop-on-down): wait for that (bounded).
        // A hub started by hand keeps running, and nothing is waited for.
        const end = Date.now() + 10000;
        const alive = (): boolean => processRunning(hubPid) && existsSync(pidFile);
        while (alive() && Date.now() < end && !ctx.signal.aborted)
          await new Promise((res) => setTimeout(res, 50));
        if (!alive()) ctx.err("hub stopped");
      }
      failWith(ctx, problems);
      return 0;
    });
  },
};

// ---- ps ------------------------------------------------------------------------------------------

export const psCommand: CommandSpec = {
  path: ["ps"],
  summary:
    "show every supervised process of the site: host, state, pid, restarts, uptime, CPU, memory, health",
  args: [],
  options: {
    json: { type: "boolean", help: "print the rows as JSON (ProcessRow[], see docs/orchestration.md)" },
    host: HOST_OPTION,
  },
  details: [
    "States: waiting (for dependencies), starting, ready, unhealthy, backoff (restart scheduled), stopping, stopped,",
    "exited (not restarted, per policy), failed (crash loop or cannot start). A * marks a process adopted after a hub restart.",
    "CPU is the share of one core since the previous `myelin ps` (or since start).",
    "In a site, every host's supervisor answers (a HOST column comes first); a host that does not is named on",
    "stderr and the exit code is 2. Nodes whose placement no hub matches are named as unplaceable.",
  ],
  examples: ["myelin ps", "myelin ps --json", "myelin ps --host edge1"],
  connects: true,
  async run(ctx, inv) {
    return withSupervisor(ctx, inv, "ps", async (node, hosts) => {
      const targets = restrictHosts(hosts, strOpt(inv, "host"), "ps");
      const res = await unlessInterrupted(
        eachSupervisor(node, targets, hubTimeoutMs(inv) + 3000, (c) => c.ps({})),
        ctx.signal,
      );
      const json = boolOpt(inv, "json");
      const first = res.find((r) => r.ok && r.value.spec_file !== "");
      if (!json && first?.ok === true)
        ctx.err(
          `${first.value.spec_file}${first.value.environment !== "" ? ` (environment ${first.value.environment})` : ""}`,
        );
      const rows: ProcessRow[] = [];
      for (const r of res) if (r.ok) rows.push(...rowsOf(r.value.processes_json, r.host));
      printRows(ctx, rows, json, hosts.length > 1);
      let code = 0;
      for (const r of res) {
        if (r.ok) continue;
        ctx.err(callProblem(r, "").text);
        code = 2;
      }
      if (strOpt(inv, "host") === undefined && first?.ok === true) {
        const labels = new Map<string, readonly string[]>();
        for (const r of res) if (r.ok) labels.set(r.host, r.value.labels);
        const units = JSON.parse(first.value.units_json) as UnitSummary[];
        const p = placementProblem(
          units,
          labels,
          hosts.filter((h) => !labels.has(h.host) && h.state === "unreachable").map((h) => h.host),
        );
        if (p !== undefined) {
          ctx.err(p.text);
          code = Math.max(code, 1);
        }
      }
      return code;
    });
  },
};

// ---- logs ----------------------------------------------------------------------------------------

export const logsCommand: CommandSpec = {
  path: ["logs"],
  summary:
    "print the captured output of supervised processes, from whichever host runs them (and follow it with -f)",
  args: [{ name: "NODE", help: "a node of the spec (default: every process)", optional: true }],
  options: {
    follow: { type: "boolean", short: "f", help: "keep printing new lines until Ctrl-C" },
    lines: { type: "string", short: "n", arg: "N", help: "how many past lines per process (default 50)" },
    replica: { type: "string", arg: "N", help: "only replica N" },
    host: HOST_OPTION,
  },
  details: [
    `Each line is tagged [process#replica] (in a site, [process#replica@host]). Output is kept on disk in a bounded ring per process; new lines are also published on ${LOG_TOPIC} (rcl_interfaces/Log, with the host in 'file').`,
  ],
  examples: [
    "myelin logs detector",
    "myelin logs camera -f",
    "myelin logs -n 200 --replica 1 worker",
    "myelin logs worker --host edge1",
  ],
  connects: true,
  async run(ctx, inv) {
    const node0 = inv.positionals[0] ?? "";
    const lines = numOpt(inv, "lines", { min: 0, integer: true, command: "logs" }) ?? 50;
    const replica = numOpt(inv, "replica", { min: 0, integer: true, command: "logs" }) ?? -1;
    const only = strOpt(inv, "host");
    return withSupervisor(ctx, inv, "logs", async (node, hosts) => {
      const multi = hosts.length > 1;
      const targets = restrictHosts(hosts, only, "logs");
      const res = await unlessInterrupted(
        eachSupervisor(node, targets, hubTimeoutMs(inv) + 3000, (c) =>
          c.logs({ node: node0, replica, lines }),
        ),
        ctx.signal,
      );
      const answered = res.filter((r) => r.ok);
      if (answered.length === 0) {
        const failed = res.find((r) => !r.ok);
        // Every host said why (an unknown node): the first reason is the answer.
        if (failed !== undefined && !failed.ok) throw failed.error;
      }
      let proc = "";
      for (const r of answered) {
        proc ||= r.value.process;
        const tag = (src: string | undefined): string => (multi ? `${src}@${r.host}` : String(src));
        r.value.lines.forEach((l, i) => ctx.out(`[${tag(r.value.sources[i])}] ${l}`));
      }
      // A host whose spec lacks the node has nothing to show; any other failure is said.
      for (const r of res) {
        if (r.ok) continue;
        const unknown = r.error instanceof MyelinError && r.error.code === "ERR_UNKNOWN_NODE";
        if (!unknown || answered.length === 0) ctx.err(callProblem(r, "").text);
      }
      if (!boolOpt(inv, "follow")) return 0;
      await node.createSubscription(
        LOG_TOPIC,
        rcl_interfaces.Log,
        (m) => {
          const [p, rep] = m.name.split("#");
          if (proc !== "" && p !== proc) return;
          if (replica >= 0 && rep !== String(replica)) return;
          if (only !== undefined && m.file !== only) return;
          ctx.out(`[${multi && m.file !== "" ? `${m.name}@${m.file}` : m.name}] ${m.msg}`);
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
  summary: "set the number of replicas of a node at runtime, on every host it is placed on",
  args: [{ name: "NODE=N", help: "node and replica count, e.g. worker=3" }],
  options: {
    "wait-ms": WAIT_OPTION,
    json: { type: "boolean", help: "print the process table as JSON" },
    host: HOST_OPTION,
  },
  details: [
    "New replicas start when ready to (dependencies); extra ones stop, highest index first. Not saved to the spec file.",
    "N is per host: in a site, every host the node is placed on runs N (with --host H, only H changes);",
    "a host that does not answer is reported, and gets the scaled spec from the other hubs when it is back.",
  ],
  examples: [
    "myelin scale worker=3",
    "myelin scale detector=0   # stop it, keep it in the spec",
    "myelin scale worker=1 --host edge1",
  ],
  connects: true,
  async run(ctx, inv) {
    const m = /^([A-Za-z][A-Za-z0-9_.-]*)=(\d+)$/.exec(inv.positionals[0]!);
    if (m === null)
      throw new UsageError(`scale: expected NODE=N, e.g. worker=3, got '${inv.positionals[0]}'`, "scale");
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "scale" }) ?? 60000;
    return withSupervisor(ctx, inv, "scale", async (node, hosts) => {
      const multi = hosts.length > 1;
      const targets = restrictHosts(hosts, strOpt(inv, "host"), "scale");
      // Site-wide, the scale is versioned so a host that misses it gets the scaled spec when it is
      // back; on one host only (--host), not.
      const version =
        strOpt(inv, "host") === undefined
          ? nextVersion(
              await unlessInterrupted(
                eachSupervisor(node, hosts, hubTimeoutMs(inv) + 3000, (c) => c.ps({})),
                ctx.signal,
              ),
            )
          : 0;
      // Every host holds the whole spec, so each takes the count (those the node is not placed on run none).
      const res = await unlessInterrupted(
        eachSupervisor(node, targets, waitMs + 10000, (c) =>
          c.scale(
            { node: m[1]!, replicas: Number(m[2]), wait_ms: waitMs, version },
            { timeoutMs: waitMs + 10000 },
          ),
        ),
        ctx.signal,
      );
      const rows: ProcessRow[] = [];
      for (const r of res) if (r.ok) rows.push(...rowsOf(r.value.processes_json, r.host));
      printRows(ctx, rows, boolOpt(inv, "json"), multi);
      const problems: HostProblem[] = [];
      for (const r of res) {
        const prefix = multi ? `host ${r.host}: ` : "";
        if (!r.ok) {
          if (!multi && !r.unreachable) throw r.error;
          problems.push(
            callProblem(
              r,
              version > 0 ? "; it gets the scaled spec from the other hubs when it is back" : "",
            ),
          );
        } else if (!r.value.ok)
          problems.push({ code: "ERR_PROCESS_FAILED", text: `${prefix}${r.value.message}` });
        else ctx.err(`${prefix}${r.value.message}`);
      }
      failWith(ctx, problems);
      return 0;
    });
  },
};

export const restartCommand: CommandSpec = {
  path: ["restart"],
  summary:
    "restart a node's processes one replica at a time, each after the previous is ready, host after host",
  args: [{ name: "NODE", help: "a node of the running spec" }],
  options: {
    "wait-ms": {
      type: "string",
      arg: "MS",
      help: "wait up to MS for each replica to be ready (default 60000)",
    },
    json: { type: "boolean", help: "print the process table as JSON" },
    host: HOST_OPTION,
  },
  details: [
    "A replicated service keeps answering: only one replica is down at a time, in a site too (the hosts",
    "that run the node go one after the other). A failed process starts afresh.",
  ],
  examples: ["myelin restart detector", "myelin restart detector --host edge1"],
  connects: true,
  async run(ctx, inv) {
    const waitMs = numOpt(inv, "wait-ms", { min: 1, integer: true, command: "restart" }) ?? 60000;
    const name = inv.positionals[0]!;
    return withSupervisor(ctx, inv, "restart", async (node, hosts) => {
      const multi = hosts.length > 1;
      const targets = restrictHosts(hosts, strOpt(inv, "host"), "restart");
      const held = await unlessInterrupted(
        eachSupervisor(node, targets, hubTimeoutMs(inv) + 3000, (c) => c.ps({})),
        ctx.signal,
      );
      // The hosts that run the node (rows of its process, or of a process it is composed into).
      const runs = held.filter(
        (r) =>
          r.ok &&
          rowsOf(r.value.processes_json, r.host).some((x) => x.process === name || x.nodes.includes(name)),
      );
      const problems: HostProblem[] = [];
      for (const r of held) if (!r.ok) problems.push(callProblem(r, "; restart it there when it is back"));
      // No host runs it: the local supervisor says why (unknown node, not placed here).
      const order = runs.length > 0 ? runs.map((r) => r.host) : [targets[0]!.host];
      const rows: ProcessRow[] = [];
      for (const host of order) {
        const [r] = await unlessInterrupted(
          eachSupervisor(
            node,
            targets.filter((h) => h.host === host),
            64 * waitMs + 10000,
            (c) =>
              c.restart(
                { node: name, replicas: 0, wait_ms: waitMs, version: 0 },
                { timeoutMs: 64 * waitMs + 10000 },
              ),
          ),
          ctx.signal,
        );
        if (r === undefined) continue;
        if (!r.ok) {
          if (runs.length === 0 && !r.unreachable) throw r.error;
          problems.push(callProblem(r, ""));
          break;
        }
        rows.push(...rowsOf(r.value.processes_json, r.host));
        if (!r.value.ok) {
          problems.push({
            code: "ERR_PROCESS_FAILED",
            text: `${multi ? `host ${host}: ` : ""}${r.value.message}`,
          });
          break; // rolling: the next host waits for this one to be healthy
        }
        ctx.err(multi ? `host ${host}: ${r.value.message}` : r.value.message);
      }
      printRows(ctx, rows, boolOpt(inv, "json"), multi);
      failWith(ctx, problems);
      return 0;
    });
  },
};
