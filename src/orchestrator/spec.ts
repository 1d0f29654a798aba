/**
 * The launch spec (`myelin.yaml`): reading, includes, per-environment overrides, validation and
 * resolution into the processes to run. Every problem names its file, line, column and field, and
 * a spec with any problem is refused as a whole (SpecError), so nothing starts from a bad spec.
 *
 * Reading order: a file's `include`s first (depth first, relative to the file), then the file
 * itself; a later definition of a node deep-merges over an earlier one (maps merge, lists and
 * values replace). Then `environments.<env>.nodes` of the chosen environment merge over `nodes`.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { yaml } from "../codec/yaml.js";
import type { Node as YamlNode } from "yaml";
import { formatProblems, SpecError } from "../errors.js";
import { parseTopicConfig, type TopicConfigRule } from "../store/topic-config.js";
import { dependencyOrder } from "./order.js";
import {
  childPath,
  posOf,
  suggest,
  validateAgainstSchema,
  type SourceDoc,
  type SourcePos,
  type SpecProblem,
} from "./spec-schema.js";

export type { SourcePos, SpecProblem } from "./spec-schema.js";
export { formatProblems, SpecError };

/** Restart policy of a process. Times in ms. */
export interface RestartSpec {
  policy: "always" | "on-failure" | "never";
  backoffMs: number;
  maxBackoffMs: number;
  /** ± fraction of each delay, 0..1. */
  jitter: number;
  resetAfterMs: number;
  /** This many restarts within `crashLoopWindowMs` → `failed`. */
  crashLoopRestarts: number;
  crashLoopWindowMs: number;
}

/** A custom health probe. Times in ms. */
export interface ProbeSpec {
  kind: "command" | "http" | "service";
  /** argv for `command`, the URL for `http`, the service name for `service`. */
  target: string[];
  intervalMs: number;
  timeoutMs: number;
  failureThreshold: number;
  initialDelayMs: number;
}

/** Health settings of a process. */
export interface HealthSpec {
  /** Restart a live process whose nodes stopped heartbeating. */
  heartbeat: boolean;
  readyTimeoutMs: number;
  probe?: ProbeSpec;
}

/** Resource limits (what the OS allows; see docs/orchestration.md). */
export interface LimitsSpec {
  memoryMb?: number;
  openFiles?: number;
  nice?: number;
}

/** A module run by the runner: a node of a module unit. */
export interface ModuleEntry {
  node: string;
  /** Absolute path of the .js file. */
  path: string;
  export: string;
  parameters: Record<string, unknown>;
  args: string[];
}

/** A dependency of a unit on another unit. */
export interface UnitDependency {
  unit: string;
  condition: "ready" | "started";
}

/**
 * A supervised process (times `replicas`): one command node, one module node, or several module
 * nodes composed into one process. Process settings come from its first node.
 */
export interface UnitSpec {
  /** The node name, or the `process` name of a composed group. */
  name: string;
  /** Node names run by this process. */
  nodes: string[];
  kind: "module" | "command";
  /** command: argv (argv[0] `node` means this Node.js). */
  command: string[];
  /** module: what the runner loads. */
  modules: ModuleEntry[];
  env: Record<string, string>;
  /** Absolute working directory. */
  cwd: string;
  replicas: number;
  /**
   * The number of its first replica (default 0). A node scaled out of a composed process at
   * runtime runs its extra replicas as a unit of its own, numbered after the composed ones.
   */
  firstReplica?: number;
  /** For such a unit: the composed process it was scaled out of. */
  scaledOutOf?: string;
  placement: string[];
  dependsOn: UnitDependency[];
  readiness: "node" | "process" | "probe";
  restart: RestartSpec;
  health: HealthSpec;
  limits: LimitsSpec;
  stopGraceMs: number;
}

/** A resolved, valid spec: the processes to run, in dependency order. */
export interface LaunchSpec {
  /** Absolute path of the main file. */
  file: string;
  /** Every file read (main and includes). */
  files: string[];
  environment: string | undefined;
  /** Units in start order (each after what it depends on). */
  units: UnitSpec[];
  /** Settings of durable topics by pattern, in the order given (the first match applies). */
  topics: TopicConfigRule[];
}

/** Options of loadSpec. */
export interface LoadSpecOptions {
  /** Environment whose overrides apply (default: none). */
  environment?: string | undefined;
  /** Check that modules, commands and directories exist (default true). */
  checkFiles?: boolean;
}

/** Defaults of the restart policy, probes and health. */
export const SPEC_DEFAULTS = {
  restart: {
    policy: "on-failure",
    backoffMs: 100,
    maxBackoffMs: 10000,
    jitter: 0.2,
    resetAfterMs: 10000,
    crashLoopRestarts: 5,
    crashLoopWindowMs: 60000,
  } satisfies RestartSpec,
  probe: { intervalMs: 5000, timeoutMs: 2000, failureThreshold: 3, initialDelayMs: 0 },
  readyTimeoutMs: 30000,
  stopGraceMs: 5000,
} as const;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Sets an own property, whatever the key: a spec may have a key named `__proto__`, and a plain
 * assignment would replace the target's prototype (or, when merging into it, pollute
 * `Object.prototype`) instead of storing a field that validation then reports.
 */
function setOwn(o: Obj, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** `o[k]` if `o` has it as its own property (not `toString`, `constructor` or `__proto__` inherited). */
function own(o: Obj, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

/** Parses YAML text into a SourceDoc with the position of every field; syntax errors as problems. */
export function parseSpecText(text: string, file: string): { doc: SourceDoc; problems: SpecProblem[] } {
  const lc = new (yaml().LineCounter)();
  const ydoc = yaml().parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number): SourcePos => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  const problems: SpecProblem[] = [];
  for (const e of [...ydoc.errors, ...ydoc.warnings]) {
    const p = at(e.pos[0]);
    problems.push({
      ...p,
      field: "(yaml)",
      message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
    });
  }
  const pos = new Map<string, SourcePos>();
  // An alias to a node that contains it (`a: &x { b: *x }`) makes a value that contains itself:
  // merging it would recurse for ever, and no process can be given it. Found while walking: the
  // nodes being walked, and the latest node of each anchor name.
  const open = new Set<unknown>();
  const anchors = new Map<string, unknown>();
  const walk = (n: unknown, path: string): void => {
    if (yaml().isAlias(n)) {
      const target = anchors.get(n.source);
      if (target !== undefined && open.has(target)) {
        problems.push({
          ...at(n.range?.[0] ?? 0),
          field: path === "" ? "(document)" : path,
          message: `alias *${n.source} refers to a node that contains it; a spec cannot contain itself`,
        });
      }
      return;
    }
    const anchor = (n as { anchor?: unknown } | null)?.anchor;
    if (typeof anchor === "string") anchors.set(anchor, n);
    open.add(n);
    if (yaml().isMap(n)) {
      for (const item of n.items) {
        if (!yaml().isPair(item)) continue;
        const key = yaml().isScalar(item.key) ? String(item.key.value) : String(item.key);
        const kp = childPath(path, key);
        const kn = item.key as YamlNode | null;
        if (kn?.range) pos.set(kp, at(kn.range[0]));
        const vn = item.value as YamlNode | null;
        if (vn?.range) pos.set(`${kp}#v`, at(vn.range[0]));
        walk(item.value, kp);
      }
    } else if (yaml().isSeq(n)) {
      n.items.forEach((x, i) => {
        const ip = childPath(path, i);
        const xn = x as YamlNode | null;
        if (xn?.range) pos.set(ip, at(xn.range[0]));
        walk(x, ip);
      });
    }
    open.delete(n);
  };
  if (ydoc.contents?.range) pos.set("", at(ydoc.contents.range[0]));
  walk(ydoc.contents, "");
  let value: unknown = {};
  if (problems.length === 0) {
    try {
      value = ydoc.toJS({ maxAliasCount: 100 }) ?? {};
    } catch (err) {
      problems.push({ file, line: 1, col: 1, field: "(yaml)", message: (err as Error).message });
    }
  }
  return { doc: { file, value, pos }, problems };
}

interface Merged {
  value: Obj;
  pos: Map<string, SourcePos>;
}

/** Deep-merges `src` (from `srcPath` in `from`) into `dst` at `dstPath`, copying positions. */
function mergeInto(
  dst: Obj,
  src: Obj,
  merged: Merged,
  from: { pos: Map<string, SourcePos> },
  srcPath: string,
  dstPath: string,
): void {
  for (const [k, v] of Object.entries(src)) {
    const sp = childPath(srcPath, k);
    const dp = childPath(dstPath, k);
    copyPositions(from.pos, sp, merged.pos, dp);
    const have = own(dst, k);
    if (isObj(v) && isObj(have)) mergeInto(have, v, merged, from, sp, dp);
    else setOwn(dst, k, isObj(v) ? structuredClone(v) : v);
  }
}

function copyPositions(
  src: Map<string, SourcePos>,
  sp: string,
  dst: Map<string, SourcePos>,
  dp: string,
): void {
  for (const [p, pos] of src) {
    if (p === sp || p.startsWith(`${sp}.`) || p.startsWith(`${sp}[`) || p.startsWith(`${sp}#`))
      dst.set(dp + p.slice(sp.length), pos);
  }
}

/** Reads `file` and its includes into `merged` (nodes and environments); collects problems. */
function readInto(
  file: string,
  merged: Merged,
  problems: SpecProblem[],
  files: string[],
  stack: string[],
  includedAt?: SourcePos,
): void {
  if (stack.includes(file)) {
    const where = includedAt ?? { file, line: 1, col: 1 };
    problems.push({
      ...where,
      field: "include",
      message: `include cycle: ${[...stack, file].join(" → ")}; remove one of the includes`,
    });
    return;
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const where = includedAt ?? { file, line: 1, col: 1 };
    problems.push({
      ...where,
      field: includedAt === undefined ? "(file)" : "include",
      message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    });
    return;
  }
  if (!files.includes(file)) files.push(file);
  const parsed = parseSpecText(text, file);
  problems.push(...parsed.problems);
  if (parsed.problems.length > 0) return;
  const doc = parsed.doc;
  const shape = validateAgainstSchema(doc);
  problems.push(...shape);
  if (shape.length > 0 || !isObj(doc.value)) return;
  const v = doc.value;
  for (const [i, inc] of ((v["include"] as string[] | undefined) ?? []).entries()) {
    const target = isAbsolute(inc) ? inc : resolve(dirname(file), inc);
    readInto(target, merged, problems, files, [...stack, file], posOf(doc, `include[${i}]`));
  }
  for (const section of ["nodes", "environments"] as const) {
    const src = v[section];
    if (!isObj(src)) continue;
    if (!merged.pos.has(section)) merged.pos.set(section, posOf(doc, section));
    const dst = (merged.value[section] ??= {}) as Obj;
    // Relative paths are relative to the file that wrote them: make them absolute now.
    const abs = structuredClone(src);
    absolutize(abs, section, dirname(file));
    mergeInto(dst, abs, merged, doc, section, section);
  }
  // Durable-topic settings: an including file's pattern replaces an included one's, whole.
  const topics = v["topics"];
  if (isObj(topics)) {
    if (!merged.pos.has("topics")) merged.pos.set("topics", posOf(doc, "topics"));
    const dst = (merged.value["topics"] ??= {}) as Obj;
    for (const [pattern, cfg] of Object.entries(topics)) {
      setOwn(dst, pattern, structuredClone(cfg));
      merged.pos.set(`topics.${pattern}`, posOf(doc, `topics.${pattern}`));
    }
  }
}

/** Makes `module` and `cwd` of every node in a nodes (or environments) section absolute. */
function absolutize(section: Obj, kind: "nodes" | "environments", dir: string): void {
  const fix = (nodes: unknown): void => {
    if (!isObj(nodes)) return;
    for (const n of Object.values(nodes)) {
      if (!isObj(n)) continue;
      for (const k of ["module", "cwd"]) {
        const p = n[k];
        if (typeof p === "string" && !isAbsolute(p)) n[k] = resolve(dir, p);
      }
      if (n["cwd"] === undefined && kind === "nodes") n["__dir"] = dir;
    }
  };
  if (kind === "nodes") fix(section);
  else for (const e of Object.values(section)) if (isObj(e)) fix(e["nodes"]);
}

function splitCommand(c: unknown): string[] {
  if (Array.isArray(c)) return c.map(String);
  return String(c)
    .trim()
    .split(/\s+/)
    .filter((x) => x !== "");
}

/** Where `program` is found: a path (relative to cwd) or a name on PATH; undefined if nowhere. */
export function findExecutable(
  program: string,
  cwd: string,
  path = process.env["PATH"] ?? "",
): string | undefined {
  const ok = (p: string): boolean => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes("/")) {
    const p = resolve(cwd, program);
    return ok(p) ? p : undefined;
  }
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, program);
    if (ok(p)) return p;
  }
  return undefined;
}

/**
 * Reads, merges, validates and resolves the spec in `file`.
 * @throws SpecError ERR_SPEC listing every problem (file, line, column, field)
 */
export function loadSpec(file: string, opts: LoadSpecOptions = {}): LaunchSpec {
  const main = resolve(file);
  const problems: SpecProblem[] = [];
  const merged: Merged = { value: {}, pos: new Map() };
  const files: string[] = [];
  readInto(main, merged, problems, files, []);
  if (problems.length > 0) throw new SpecError(problems);
  const doc = { file: main, pos: merged.pos };
  /** A problem at a field: at its value (`#v`) when known, else at its key. */
  const report = (field: string, message: string): void => {
    problems.push({ ...(merged.pos.get(`${field}#v`) ?? posOf(doc, field)), field, message });
  };
  /** A problem with a whole entry (a node, a section): at its key. */
  const reportKey = (field: string, message: string): void => {
    problems.push({ ...posOf(doc, field), field, message });
  };

  const nodes = (merged.value["nodes"] ?? {}) as Record<string, Obj>;
  const envs = (merged.value["environments"] ?? {}) as Record<string, Obj>;
  const env = opts.environment;
  if (env !== undefined && env !== "") {
    const e = own(envs, env) as Obj | undefined;
    if (e === undefined) {
      const known = Object.keys(envs);
      reportKey(
        "environments",
        `environment '${env}' is not defined${suggest(env, known)}; defined: ${known.join(", ") || "none"}`,
      );
    } else {
      for (const [name, override] of Object.entries((e["nodes"] ?? {}) as Record<string, Obj>)) {
        const target = own(nodes, name) as Obj | undefined;
        const from = `environments.${env}.nodes.${name}`;
        if (target === undefined) {
          problems.push({
            ...posOf(doc, from),
            field: from,
            message: `overrides node '${name}', which no file defines${suggest(name, Object.keys(nodes))}`,
          });
          continue;
        }
        delete override["__dir"];
        mergeInto(target, override, merged, doc, from, `nodes.${name}`);
      }
    }
  }
  if (Object.keys(nodes).length === 0)
    reportKey("nodes", "the spec defines no nodes; add some under `nodes:`");

  const checkFiles = opts.checkFiles ?? true;
  const names = Object.keys(nodes);
  for (const name of names) {
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name))
      reportKey(
        `nodes.${name}`,
        `node name '${name}' is not valid: use letters, digits, '_', '-', '.', starting with a letter`,
      );
  }

  // ---- per node ----
  interface Resolved {
    name: string;
    raw: Obj;
    cwd: string;
  }
  const resolved: Resolved[] = [];
  for (const name of names) {
    const n = nodes[name]!;
    const p = `nodes.${name}`;
    const cwd =
      typeof n["cwd"] === "string" ? n["cwd"] : typeof n["__dir"] === "string" ? n["__dir"] : dirname(main);
    const hasModule = n["module"] !== undefined;
    const hasCommand = n["command"] !== undefined;
    if (hasModule === hasCommand) {
      reportKey(
        p,
        hasModule
          ? "give either module or command, not both"
          : "says neither what to run: add `module: path/to/file.js` or `command: [program, args…]`",
      );
      continue;
    }
    if (checkFiles && typeof n["cwd"] === "string" && !(existsSync(cwd) && statSync(cwd).isDirectory())) {
      report(`${p}.cwd`, `working directory ${cwd} does not exist`);
    }
    if (hasModule) {
      const m = String(n["module"]);
      if (/\.(c|m)?tsx?$/.test(m)) {
        report(`${p}.module`, `${m} is TypeScript: compile it (tsc) and point at the .js file it produces`);
      } else if (checkFiles && !existsSync(m)) {
        report(
          `${p}.module`,
          `module ${m} does not exist (relative paths are from the spec file's folder); build it or fix the path`,
        );
      }
    } else {
      const argv = splitCommand(n["command"]);
      const prog = argv[0];
      if (prog === undefined) report(`${p}.command`, "is empty; give the program to run");
      else if (checkFiles && prog !== "node") {
        const envPath =
          isObj(n["env"]) && typeof n["env"]["PATH"] === "string" ? n["env"]["PATH"] : undefined;
        if (findExecutable(prog, cwd, envPath) === undefined) {
          report(
            `${p}.command`,
            prog.includes("/")
              ? `program ${resolve(cwd, prog)} does not exist or is not executable`
              : `program '${prog}' is not found on PATH; install it or give its full path`,
          );
        }
      }
      if (n["process"] !== undefined)
        report(`${p}.process`, "only module nodes can share a process; remove `process` or use `module`");
    }
    const probe = (n["health"] as Obj | undefined)?.["probe"] as Obj | undefined;
    if (probe !== undefined) {
      const kinds = ["command", "http", "service"].filter((k) => probe[k] !== undefined);
      if (kinds.length !== 1)
        report(
          `${p}.health.probe`,
          `give exactly one of command, http or service (got ${kinds.join(", ") || "none"})`,
        );
    }
    if (n["readiness"] === "probe" && probe === undefined)
      report(`${p}.readiness`, "is probe but the node has no health.probe; add one or use readiness: node");
    resolved.push({ name, raw: n, cwd });
  }

  // ---- dependencies (by node) ----
  const depsOf = (n: Obj): { node: string; condition: "ready" | "started"; field: string }[] => {
    const d = n["dependsOn"];
    if (Array.isArray(d))
      return d.map((x, i) => ({ node: String(x), condition: "ready" as const, field: `[${i}]` }));
    if (isObj(d))
      return Object.entries(d).map(([k, c]) => ({
        node: k,
        condition: c === "started" ? ("started" as const) : ("ready" as const),
        field: `.${k}`,
      }));
    return [];
  };
  for (const r of resolved) {
    for (const d of depsOf(r.raw)) {
      if (own(nodes, d.node) === undefined) {
        reportKey(
          `nodes.${r.name}.dependsOn${d.field}`,
          `depends on '${d.node}', which is not defined${suggest(d.node, names)}`,
        );
      }
    }
  }

  // ---- units (composition) ----
  const unitOf = new Map<string, string>();
  for (const r of resolved)
    unitOf.set(r.name, typeof r.raw["process"] === "string" ? r.raw["process"] : r.name);
  const unitNames = [...new Set(unitOf.values())];
  for (const u of unitNames) {
    if (own(nodes, u) !== undefined && unitOf.get(u) !== u) {
      reportKey(`nodes.${u}`, `the name '${u}' is used both by a node and as a process name; rename one`);
    }
  }
  const members = (u: string): Resolved[] => resolved.filter((r) => unitOf.get(r.name) === u);
  for (const u of unitNames) {
    const ms = members(u);
    const first = ms[0]!;
    const reps = typeof first.raw["replicas"] === "number" ? first.raw["replicas"] : 1;
    for (const m of ms.slice(1)) {
      if ((m.raw["replicas"] ?? 1) !== reps)
        report(
          `nodes.${m.name}.replicas`,
          `nodes sharing process '${u}' must have the same replicas (${first.name} has ${String(reps)})`,
        );
    }
  }

  // ---- cycles (by unit, which includes node-level cycles) ----
  const unitDeps = (u: string): string[] =>
    members(u)
      .flatMap((m) => depsOf(m.raw).map((d) => unitOf.get(d.node)))
      .filter((x): x is string => x !== undefined && x !== u);
  for (const r of resolved) {
    for (const d of depsOf(r.raw)) {
      if (d.node === r.name)
        reportKey(`nodes.${r.name}.dependsOn${d.field}`, `node '${r.name}' depends on itself; remove it`);
    }
  }
  const ord = dependencyOrder(unitNames, unitDeps);
  if ("cycle" in ord) {
    const c = ord.cycle;
    const firstUnit = c[0]!;
    const via = members(firstUnit).find((m) => depsOf(m.raw).some((d) => unitOf.get(d.node) === c[1]));
    const dep = via === undefined ? undefined : depsOf(via.raw).find((d) => unitOf.get(d.node) === c[1]);
    const field =
      via === undefined ? `nodes.${firstUnit}.dependsOn` : `nodes.${via.name}.dependsOn${dep?.field ?? ""}`;
    reportKey(field, `dependency cycle: ${c.join(" → ")}; remove one of these dependsOn entries`);
  }

  if (problems.length > 0) throw new SpecError(dedupe(problems));
  const order = (ord as { order: string[] }).order;

  const units: UnitSpec[] = order.map((u) => {
    const ms = members(u);
    // Process settings of a composed process: from the first of its nodes that gives each one.
    const pick = (k: string): unknown => ms.find((m) => m.raw[k] !== undefined)?.raw[k];
    const first: Obj = {
      ...ms[0]!.raw,
      ...Object.fromEntries(
        ["restart", "health", "limits", "stopGraceMs", "readiness", "placement"].map((k) => [k, pick(k)]),
      ),
    };
    const kind = first["module"] !== undefined ? "module" : "command";
    const deps = new Map<string, UnitDependency>();
    for (const m of ms) {
      for (const d of depsOf(m.raw)) {
        const du = unitOf.get(d.node)!;
        if (du === u) continue;
        const have = deps.get(du);
        if (have === undefined || d.condition === "ready") deps.set(du, { unit: du, condition: d.condition });
      }
    }
    const env: Record<string, string> = {};
    for (const m of ms)
      for (const [k, v] of Object.entries((m.raw["env"] ?? {}) as Obj)) setOwn(env, k, String(v));
    return {
      name: u,
      nodes: ms.map((m) => m.name),
      kind,
      command:
        kind === "command" ? [...splitCommand(first["command"]), ...((first["args"] as string[]) ?? [])] : [],
      modules:
        kind === "module"
          ? ms.map((m) => ({
              node: m.name,
              path: String(m.raw["module"]),
              export: typeof m.raw["export"] === "string" ? m.raw["export"] : "default",
              parameters: (m.raw["parameters"] ?? {}) as Record<string, unknown>,
              args: (m.raw["args"] as string[] | undefined) ?? [],
            }))
          : [],
      env,
      cwd: ms[0]!.cwd,
      replicas: typeof first["replicas"] === "number" ? first["replicas"] : 1,
      placement:
        typeof first["placement"] === "string"
          ? [first["placement"]]
          : ((first["placement"] as string[] | undefined) ?? []),
      dependsOn: [...deps.values()],
      readiness: (first["readiness"] as UnitSpec["readiness"] | undefined) ?? "node",
      restart: resolveRestart(first["restart"]),
      health: resolveHealth(first["health"] as Obj | undefined),
      limits: { ...((first["limits"] ?? {}) as LimitsSpec) },
      stopGraceMs:
        typeof first["stopGraceMs"] === "number" ? first["stopGraceMs"] : SPEC_DEFAULTS.stopGraceMs,
    };
  });
  const topics: TopicConfigRule[] = [];
  for (const [pattern, cfg] of Object.entries((merged.value["topics"] ?? {}) as Record<string, unknown>)) {
    if (!pattern.startsWith("/")) {
      reportKey(`topics.${pattern}`, `a topic pattern starts with '/', e.g. /${pattern}`);
      continue;
    }
    try {
      topics.push({ pattern, config: parseTopicConfig(cfg, `topics.${pattern}`) });
    } catch (err) {
      report(`topics.${pattern}`, (err as Error).message);
    }
  }
  if (problems.length > 0) throw new SpecError(problems);
  return { file: main, files, environment: env === "" ? undefined : env, units, topics };
}

function dedupe(ps: SpecProblem[]): SpecProblem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = `${p.file}:${p.line}:${p.col}:${p.field}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function resolveRestart(r: unknown): RestartSpec {
  const d = SPEC_DEFAULTS.restart;
  if (typeof r === "string") return { ...d, policy: r as RestartSpec["policy"] };
  if (!isObj(r)) return { ...d };
  const cl = (r["crashLoop"] ?? {}) as Obj;
  const num = (v: unknown, dflt: number): number => (typeof v === "number" ? v : dflt);
  return {
    policy: (r["policy"] as RestartSpec["policy"] | undefined) ?? d.policy,
    backoffMs: num(r["backoffMs"], d.backoffMs),
    maxBackoffMs: num(r["maxBackoffMs"], d.maxBackoffMs),
    jitter: num(r["jitter"], d.jitter),
    resetAfterMs: num(r["resetAfterMs"], d.resetAfterMs),
    crashLoopRestarts: num(cl["restarts"], d.crashLoopRestarts),
    crashLoopWindowMs: num(cl["windowMs"], d.crashLoopWindowMs),
  };
}

function resolveHealth(h: Obj | undefined): HealthSpec {
  const out: HealthSpec = {
    heartbeat: h?.["heartbeat"] !== false,
    readyTimeoutMs:
      typeof h?.["readyTimeoutMs"] === "number" ? h["readyTimeoutMs"] : SPEC_DEFAULTS.readyTimeoutMs,
  };
  const p = h?.["probe"] as Obj | undefined;
  if (p !== undefined) {
    const d = SPEC_DEFAULTS.probe;
    const kind = p["command"] !== undefined ? "command" : p["http"] !== undefined ? "http" : "service";
    const num = (v: unknown, dflt: number): number => (typeof v === "number" ? v : dflt);
    out.probe = {
      kind,
      target: kind === "command" ? splitCommand(p["command"]) : [String(p[kind])],
      intervalMs: num(p["intervalMs"], d.intervalMs),
      timeoutMs: num(p["timeoutMs"], d.timeoutMs),
      failureThreshold: num(p["failureThreshold"], d.failureThreshold),
      initialDelayMs: num(p["initialDelayMs"], d.initialDelayMs),
    };
  }
  return out;
}
