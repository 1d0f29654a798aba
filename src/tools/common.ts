/**
 * What every CLI command shares: the command description format, option parsing helpers, the
 * tool node, hub checks, type lookup and DATA parsing.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MyelinError, TimeoutError } from "../errors.js";
import {
  listServices,
  listTypes,
  lookupService,
  lookupType,
  type MessageType,
  type ServiceType,
} from "../msgs/index.js";
import { fromJson, parseData } from "../codec/index.js";
import {
  createNode,
  hubEndpoint,
  runtimeDir,
  type GraphSnapshot,
  type Node,
  type TopicDecl,
} from "../node/index.js";
import { didYouMean } from "./format.js";

/** A usage mistake (unknown command or option, missing argument): exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help to point at, e.g. `topic echo`. */
    readonly command = "",
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** The user pressed Ctrl-C (or the process got SIGTERM) while waiting: exit code 130. */
export class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}

/** One option of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder of the value in help, e.g. `N`, `ADDR`. */
  arg?: string;
  /** One line of help; mention the default and its unit. */
  help: string;
}

/** A positional argument, for help and arity checks. */
export interface ArgSpec {
  name: string;
  help: string;
  optional?: boolean;
  /** The last argument only: it may be given any number of times (`TOPIC...`). */
  variadic?: boolean;
}

/** Parsed command line of one command. */
export interface Invocation {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

/** What a command runs with. */
export interface Context {
  /** Aborted on SIGINT/SIGTERM (and when stdout is closed). */
  signal: AbortSignal;
  /** Writes one line to stdout. */
  out(line: string): void;
  /** Writes one line to stderr. */
  err(line: string): void;
}

/** A command: its help and what it does. */
export interface CommandSpec {
  /** Words after `myelin`, e.g. `["topic", "echo"]`. */
  path: string[];
  /** One line: what the command does. */
  summary: string;
  args: ArgSpec[];
  options: Record<string, OptionSpec>;
  /** Further paragraphs of help. */
  details?: string[];
  /** At least one example command line, each optionally followed by `  # comment`. */
  examples: string[];
  /** Commands that talk to the hub get the global `--hub`, `--runtime-dir`, `--import`. */
  connects: boolean;
  run(ctx: Context, inv: Invocation): Promise<number>;
}

/** Options every command accepts. */
export const HELP_OPTION: Record<string, OptionSpec> = {
  help: { type: "boolean", short: "h", help: "show this help" },
};

/** Options of every command that talks to the hub. */
export const CONNECT_OPTIONS: Record<string, OptionSpec> = {
  hub: {
    type: "string",
    arg: "ADDR",
    help: "hub address, e.g. tcp://10.0.0.5:7447 (default: $MYELIN_HUB, else the runtime directory's socket)",
  },
  "runtime-dir": {
    type: "string",
    arg: "DIR",
    help: "runtime directory (default: $MYELIN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/myelin, else /tmp/myelin-<uid>)",
  },
  import: {
    type: "string",
    multiple: true,
    arg: "MODULE",
    help: "import a module that registers your message types (repeatable)",
  },
};

/** The package version, read from the package.json above this file ("unknown" if not found). */
export function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "myelin" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not here; look further up
    }
    dir = dirname(dir);
  }
  return "unknown";
}

// ---- option values ---------------------------------------------------------------------------

/** A string option, or undefined. */
export function strOpt(inv: Invocation, name: string): string | undefined {
  const v = inv.values[name];
  return typeof v === "string" ? v : undefined;
}

/** A boolean option (false when absent). */
export function boolOpt(inv: Invocation, name: string): boolean {
  return inv.values[name] === true;
}

/** A repeatable string option. */
export function listOpt(inv: Invocation, name: string): string[] {
  const v = inv.values[name];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return typeof v === "string" ? [v] : [];
}

/**
 * A numeric option, checked against `min`/`max` (and `integer`).
 * @throws UsageError naming the option when the value is not a number in range
 */
export function numOpt(
  inv: Invocation,
  name: string,
  spec: { min?: number; max?: number; integer?: boolean; command: string },
): number | undefined {
  const raw = strOpt(inv, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const min = spec.min ?? -Infinity;
  const max = spec.max ?? Infinity;
  if (
    raw.trim() === "" ||
    !Number.isFinite(n) ||
    (spec.integer === true && !Number.isInteger(n)) ||
    n < min ||
    n > max
  ) {
    const range = [
      spec.integer === true ? "an integer" : "a number",
      Number.isFinite(min) ? `>= ${min}` : "",
      Number.isFinite(max) ? `<= ${max}` : "",
    ]
      .filter((x) => x !== "")
      .join(" ");
    throw new UsageError(`--${name} must be ${range}, got '${raw}'`, spec.command);
  }
  return n;
}

/** Topic or service name with a leading `/`, as the node layer resolves it. */
export function absName(name: string): string {
  return name.startsWith("/") ? name : `/${name}`;
}

// ---- signals and waiting ---------------------------------------------------------------------

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** Resolves `p`, or rejects with Interrupted when `signal` aborts first. */
export function unlessInterrupted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Interrupted());
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Waits `ms` (a rate tick or a linger, never a stand-in for an event); returns false if aborted first. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

// ---- the tool node ---------------------------------------------------------------------------

/** How long a tool waits for the hub to answer when no hub seems to run here, in ms. */
export const HUB_TIMEOUT_MS = 2000;
/** How long a tool waits for a hub whose pid file names a live process (a busy host), in ms. */
export const BUSY_HUB_TIMEOUT_MS = 10000;

/**
 * How long a tool waits for the hub: `MYELIN_HUB_TIMEOUT_MS` when set; otherwise longer when
 * this host's hub is running (its pid file names a live process), so a loaded machine's slow
 * answer is not mistaken for no hub, and short when nothing runs, so a typo fails fast.
 * @throws MyelinError ERR_INVALID_ARGUMENT for a MYELIN_HUB_TIMEOUT_MS that is not a positive integer
 */
export function hubTimeoutMs(inv: Invocation): number {
  const env = process.env["MYELIN_HUB_TIMEOUT_MS"];
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n <= 0) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `MYELIN_HUB_TIMEOUT_MS=${env} is not a positive whole number of milliseconds; e.g. MYELIN_HUB_TIMEOUT_MS=5000`,
      );
    }
    return n;
  }
  const opts = connectOpts(inv);
  if (!hubEndpoint(opts).startsWith("ipc://")) return HUB_TIMEOUT_MS;
  try {
    const pid = Number(readFileSync(join(runtimeDir(opts.runtimeDir), "hub.pid"), "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return HUB_TIMEOUT_MS;
    process.kill(pid, 0);
    return BUSY_HUB_TIMEOUT_MS;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM" ? BUSY_HUB_TIMEOUT_MS : HUB_TIMEOUT_MS;
  }
}

/** Imports the `--import` modules (type registrations). */
export async function importModules(inv: Invocation): Promise<void> {
  for (const m of listOpt(inv, "import")) {
    const spec = m.startsWith(".") || m.startsWith("/") ? pathToFileURL(resolve(m)).href : m;
    try {
      await import(spec);
    } catch (err) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `--import ${m} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}

/** The hub address and runtime directory given with --hub / --runtime-dir, for createNode. */
export function connectOpts(inv: Invocation): { hub?: string; runtimeDir?: string } {
  const o: { hub?: string; runtimeDir?: string } = {};
  const hub = strOpt(inv, "hub");
  const dir = strOpt(inv, "runtime-dir");
  if (hub !== undefined) o.hub = hub;
  if (dir !== undefined) o.runtimeDir = dir;
  return o;
}

/**
 * Runs `fn` with a hidden tool node `_myelin_<command>_<pid>` after checking that a hub answers, and
 * closes the node afterwards.
 * @throws MyelinError ERR_HUB_UNREACHABLE when no hub answers within {@link hubTimeoutMs}
 */
export async function withNode<R>(
  ctx: Context,
  inv: Invocation,
  command: string,
  fn: (node: Node, graph: GraphSnapshot) => Promise<R>,
): Promise<R> {
  const opts = connectOpts(inv);
  const node = await createNode({ name: `_myelin_${command.replace(/\W+/g, "_")}_${process.pid}`, ...opts });
  try {
    let graph: GraphSnapshot;
    try {
      graph = await unlessInterrupted(node.queryGraph(hubTimeoutMs(inv)), ctx.signal);
    } catch (err) {
      if (err instanceof MyelinError && err.code === "ERR_HUB_UNREACHABLE") {
        throw new TimeoutError(
          "ERR_HUB_UNREACHABLE",
          `no hub answered at ${hubEndpoint(opts)}; start one with \`myelin hub\` (or point --hub / MYELIN_HUB at a running one)`,
          { cause: err },
        );
      }
      throw err;
    }
    return await fn(node, graph);
  } finally {
    await node.close();
  }
}

// ---- graph views -----------------------------------------------------------------------------

/** A node's declaration of a topic, with the node. */
export interface Endpoint {
  node: string;
  id: string;
  pid: number;
  host: string;
  process: string;
  decl: TopicDecl;
}

/** A topic as the graph shows it. */
export interface TopicView {
  topic: string;
  /** The publishers' type (else the subscribers'). */
  type: string;
  publishers: Endpoint[];
  subscribers: Endpoint[];
}

/** Every topic of the graph (union of publications and subscriptions), sorted by name. */
export function topicsOf(g: GraphSnapshot): TopicView[] {
  const m = new Map<string, TopicView>();
  const get = (topic: string, type: string): TopicView => {
    let v = m.get(topic);
    if (v === undefined) m.set(topic, (v = { topic, type, publishers: [], subscribers: [] }));
    return v;
  };
  for (const n of g.nodes) {
    const ep = (decl: TopicDecl): Endpoint => ({
      node: n.name,
      id: n.id,
      pid: n.pid,
      host: n.host,
      process: n.process,
      decl,
    });
    for (const d of n.pubs) {
      const v = get(d.topic, d.type);
      if (v.publishers.length === 0) v.type = d.type;
      v.publishers.push(ep(d));
    }
    for (const d of n.subs) get(d.topic, d.type).subscribers.push(ep(d));
  }
  return [...m.values()].sort((a, b) => a.topic.localeCompare(b.topic));
}

/** The error for a topic no node declares, listing the topics there are. */
export function unknownTopic(topic: string, g: GraphSnapshot | undefined, waitedMs?: number): MyelinError {
  const names = g === undefined ? [] : topicsOf(g).map((t) => t.topic);
  const waited = waitedMs === undefined ? "" : ` (waited ${waitedMs} ms)`;
  return new MyelinError(
    "ERR_UNKNOWN_TOPIC",
    `no node publishes or subscribes ${topic}${waited}${didYouMean(topic, names)}; topics now: ${names.join(", ") || "none"}`,
  );
}

/**
 * The topic's view, waiting up to `waitMs` for a node to declare it.
 * @throws MyelinError ERR_UNKNOWN_TOPIC (listing the topics) when none does in time
 * @throws Interrupted on Ctrl-C
 */
export async function waitForTopic(
  ctx: Context,
  node: Node,
  graph: GraphSnapshot,
  topic: string,
  waitMs: number,
): Promise<TopicView> {
  const find = (g: GraphSnapshot): TopicView | undefined => topicsOf(g).find((t) => t.topic === topic);
  const now = find(graph);
  if (now !== undefined) return now;
  if (waitMs > 0) {
    ctx.err(`waiting up to ${waitMs} ms for topic ${topic} to appear…`);
    try {
      const g = await unlessInterrupted(
        node.waitForGraph((x) => find(x) !== undefined, waitMs),
        ctx.signal,
      );
      return find(g)!;
    } catch (err) {
      if (!(err instanceof MyelinError && err.code === "ERR_TIMEOUT")) throw err;
    }
  }
  throw unknownTopic(topic, node.graph() ?? graph, waitMs);
}

export { parseData };

// ---- types and data --------------------------------------------------------------------------

/**
 * The spellings a type name may stand for: the name itself, then its `pkg/Name` form when given as
 * `pkg/msg/Name`, `pkg/srv/Name` or `pkg.Name` (so the last one is the canonical spelling).
 */
export function typeSpellings(name: string): string[] {
  const out = [name];
  const ros = /^([a-z][a-z0-9_]*)\/(?:msg|srv|action)\/([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  if (ros !== null) out.push(`${ros[1]}/${ros[2]}`);
  const dotted = /^([a-z][a-z0-9_]*)\.(?:msg\.|srv\.)?([A-Za-z][A-Za-z0-9_]*)$/.exec(name);
  if (dotted !== null) out.push(`${dotted[1]}/${dotted[2]}`);
  return out;
}

/**
 * The registered message type `name` (also spelt `pkg/msg/Name` or `pkg.Name`).
 * @throws MyelinError ERR_UNKNOWN_TYPE naming close matches
 */
export function resolveMessageType(name: string): MessageType<unknown> {
  for (const n of typeSpellings(name)) {
    const t = lookupType(n);
    if (t !== undefined) return t;
  }
  throw new MyelinError(
    "ERR_UNKNOWN_TYPE",
    `message type '${name}' is not known${didYouMean(name, listTypes())}; ` +
      `list types with \`myelin interface list\`, or load yours with --import MODULE`,
  );
}

/**
 * The registered service type `name` (also spelt `pkg/srv/Name` or `pkg.Name`).
 * @throws MyelinError ERR_UNKNOWN_TYPE naming close matches
 */
export function resolveServiceType(name: string): ServiceType<unknown, unknown> {
  for (const n of typeSpellings(name)) {
    const t = lookupService(n);
    if (t !== undefined) return t;
  }
  throw new MyelinError(
    "ERR_UNKNOWN_TYPE",
    `service type '${name}' is not known${didYouMean(name, listServices())}; ` +
      `list types with \`myelin interface list\`, or load yours with --import MODULE`,
  );
}

/**
 * A `type` message from DATA text: parsed (JSON or YAML), then converted by `fromJson`, which fills
 * missing fields with their defaults and validates.
 * @throws MyelinError ERR_INVALID_ARGUMENT for text that does not parse
 * @throws ValidationError ERR_VALIDATION naming the bad field
 */
export function messageFromData(type: MessageType<unknown>, text: string, where: string): unknown {
  return fromJson(type, parseData(text, where), where);
}
