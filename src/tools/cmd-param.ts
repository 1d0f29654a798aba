/**
 * `myelin param list|get|set|describe|dump|load`: a running node's parameters, through its parameter
 * services.
 */
import { readFile } from "node:fs/promises";
import { yaml } from "../codec/yaml.js";
import { MyelinError, ServiceError } from "../errors.js";
import { parameterClient, type Node } from "../node/index.js";
import {
  boolOpt,
  numOpt,
  parseData,
  unlessInterrupted,
  withNode,
  type CommandSpec,
  type Context,
} from "./common.js";
import { didYouMean, table } from "./format.js";

/** A parameter as a node reports it; the descriptor fields are absent from nodes that predate them. */
interface ParamView {
  name: string;
  kind: string;
  value: unknown;
  description: string;
  /** Inclusive bounds of a number parameter. */
  min?: number;
  max?: number;
  readOnly?: boolean;
  default?: unknown;
}

/** JSON text to a value; text that is not JSON is kept as a string. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * A node's parameters, through its parameter services (the `list` method).
 * @throws MyelinError ERR_NO_SERVER naming the fix when the node serves no parameters
 */
async function listOf(ctx: Context, node: Node, target: string, timeoutMs: number): Promise<ParamView[]> {
  const client = parameterClient(node, target, { timeoutMs });
  let r;
  try {
    r = await unlessInterrupted(client.list({}), ctx.signal);
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_NO_SERVER") {
      throw new ServiceError(
        "ERR_NO_SERVER",
        `node ${target} serves no parameters (it is not running, or declared none); see \`myelin node list\``,
        { cause: err },
      );
    }
    throw err;
  } finally {
    client.close();
  }
  return r.names.map((name, i) => {
    const p: ParamView = {
      name,
      kind: r.kinds[i] ?? "",
      value: JSON.parse(r.values_json[i] ?? "null") as unknown,
      description: r.descriptions[i] ?? "",
    };
    const d = r.descriptors?.[i];
    if (d !== undefined && d.name === name) {
      if (d.min !== undefined) p.min = d.min;
      if (d.max !== undefined) p.max = d.max;
      p.readOnly = d.read_only;
      p.default = parseJson(d.default_json);
    }
    return p;
  });
}

/** `[1, 120]`, `>= 0`, `<= 5`, or "" when unbounded. */
function rangeText(p: ParamView): string {
  if (p.min !== undefined && p.max !== undefined) return `[${p.min}, ${p.max}]`;
  if (p.min !== undefined) return `>= ${p.min}`;
  if (p.max !== undefined) return `<= ${p.max}`;
  return "";
}

/**
 * The parameter `name` of `ps`.
 * @throws MyelinError ERR_PARAMETER naming the parameters there are
 */
function find(ps: ParamView[], target: string, name: string): ParamView {
  const p = ps.find((x) => x.name === name);
  if (p === undefined) {
    const names = ps.map((x) => x.name);
    throw new MyelinError(
      "ERR_PARAMETER",
      `node ${target} has no parameter ${name}${didYouMean(name, names)}; it has: ${names.join(", ") || "none"}`,
    );
  }
  return p;
}

/**
 * Sets one parameter through the node's parameter services; the node's answer (refusals included).
 * @throws MyelinError ERR_NO_SERVER naming the fix when the node serves no parameters
 */
async function setOne(
  ctx: Context,
  node: Node,
  target: string,
  name: string,
  value: unknown,
  timeoutMs: number,
): Promise<{ success: boolean; reason: string; value_json: string }> {
  const client = parameterClient(node, target, { timeoutMs });
  try {
    return await unlessInterrupted(client.set({ name, value_json: JSON.stringify(value) }), ctx.signal);
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_NO_SERVER") {
      throw new ServiceError(
        "ERR_NO_SERVER",
        `node ${target} serves no parameters; see \`myelin node list\``,
        {
          cause: err,
        },
      );
    }
    throw err;
  } finally {
    client.close();
  }
}

const TIMEOUT = {
  "timeout-ms": {
    type: "string",
    arg: "N",
    help: "give up when the node did not answer within N ms (default 2000)",
  },
} as const;

export const paramListCommand: CommandSpec = {
  path: ["param", "list"],
  summary: "list a node's parameters with their kinds and values",
  args: [{ name: "NODE", help: "node name, e.g. camera" }],
  options: {
    ...TIMEOUT,
    json: {
      type: "boolean",
      help: "print a JSON array: name, kind, value, description, and min, max, readOnly, default when the node reports them",
    },
  },
  details: [
    "RANGE shows the inclusive bounds of a number parameter; a read-only parameter is marked (read-only) after its value.",
  ],
  examples: ["myelin param list camera", "myelin param list detector --json"],
  connects: true,
  async run(ctx, inv) {
    const target = inv.positionals[0]!;
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param list" }) ?? 2000;
    return withNode(ctx, inv, "param_list", async (node) => {
      const ps = await listOf(ctx, node, target, timeoutMs);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(ps, null, 2));
        return 0;
      }
      if (ps.length === 0) {
        ctx.err(`node ${target} declares no parameters`);
        return 0;
      }
      const ranges = ps.some((p) => rangeText(p) !== "");
      const header = ["NAME", "KIND", "VALUE", ...(ranges ? ["RANGE"] : []), "DESCRIPTION"];
      const rows = ps.map((p) => [
        p.name,
        p.kind,
        JSON.stringify(p.value) + (p.readOnly === true ? " (read-only)" : ""),
        ...(ranges ? [rangeText(p)] : []),
        p.description,
      ]);
      for (const l of table(header, rows)) ctx.out(l);
      return 0;
    });
  },
};

export const paramGetCommand: CommandSpec = {
  path: ["param", "get"],
  summary: "print the value of one parameter of a node",
  args: [
    { name: "NODE", help: "node name" },
    { name: "NAME", help: "parameter name" },
  ],
  options: { ...TIMEOUT },
  examples: ["myelin param get camera fps"],
  connects: true,
  async run(ctx, inv) {
    const [target, name] = [inv.positionals[0]!, inv.positionals[1]!];
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param get" }) ?? 2000;
    return withNode(ctx, inv, "param_get", async (node) => {
      const p = find(await listOf(ctx, node, target, timeoutMs), target, name);
      ctx.out(JSON.stringify(p.value));
      return 0;
    });
  },
};

export const paramSetCommand: CommandSpec = {
  path: ["param", "set"],
  summary: "set one parameter of a running node (it sees a change event)",
  args: [
    { name: "NODE", help: "node name" },
    { name: "NAME", help: "parameter name" },
    { name: "VALUE", help: "the new value as JSON or YAML: 30, 2.5, true, hello, '[1, 2]'" },
  ],
  options: { ...TIMEOUT },
  details: [
    "Exit code 1 with ERR_PARAMETER when the node refuses the value (wrong kind, out of bounds, read-only).",
  ],
  examples: ["myelin param set camera fps 30", "myelin param set detector threshold 180"],
  connects: true,
  async run(ctx, inv) {
    const [target, name, text] = [inv.positionals[0]!, inv.positionals[1]!, inv.positionals[2]!];
    if (text.trim() === "")
      throw new MyelinError("ERR_INVALID_ARGUMENT", "VALUE is empty; give e.g. 30, true or hello");
    const value = parseData(text, "VALUE");
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param set" }) ?? 2000;
    return withNode(ctx, inv, "param_set", async (node) => {
      const r = await setOne(ctx, node, target, name, value, timeoutMs);
      if (!r.success) throw new MyelinError("ERR_PARAMETER", `node ${target} refused: ${r.reason}`);
      ctx.out(`${name} = ${r.value_json}`);
      return 0;
    });
  },
};

/** `myelin param describe NODE NAME`: how a parameter was declared. */
export const paramDescribeCommand: CommandSpec = {
  path: ["param", "describe"],
  summary: "show how a parameter was declared: kind, description, range, read-only, default",
  args: [
    { name: "NODE", help: "node name" },
    { name: "NAME", help: "parameter name" },
  ],
  options: {
    ...TIMEOUT,
    json: {
      type: "boolean",
      help: "print one JSON object: name, kind, value, description, and min, max, readOnly, default when reported",
    },
  },
  details: [
    "A node built before parameter descriptors existed reports only kind and description; the rest shows as not reported.",
  ],
  examples: ["myelin param describe camera fps", "myelin param describe detector threshold --json"],
  connects: true,
  async run(ctx, inv) {
    const [target, name] = [inv.positionals[0]!, inv.positionals[1]!];
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param describe" }) ?? 2000;
    return withNode(ctx, inv, "param_describe", async (node) => {
      const p = find(await listOf(ctx, node, target, timeoutMs), target, name);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(p, null, 2));
        return 0;
      }
      const described = p.readOnly !== undefined;
      ctx.out(`Parameter name: ${p.name}`);
      ctx.out(`  Kind: ${p.kind}`);
      ctx.out(`  Description: ${p.description === "" ? "(none)" : p.description}`);
      ctx.out(`  Value: ${JSON.stringify(p.value)}`);
      if (!described) {
        ctx.out(
          "  Constraints, read-only, default: not reported by this node (it predates parameter descriptors)",
        );
        return 0;
      }
      ctx.out(`  Default: ${JSON.stringify(p.default)}`);
      ctx.out(`  Read only: ${p.readOnly === true ? "yes" : "no"}`);
      const range = rangeText(p);
      ctx.out(
        `  Constraints: ${range === "" ? "none" : `${p.kind.endsWith("[]") ? "each element " : ""}${range}`}`,
      );
      return 0;
    });
  },
};

/** `myelin param dump NODE`: every parameter of a node as YAML. */
export const paramDumpCommand: CommandSpec = {
  path: ["param", "dump"],
  summary: "print every parameter of a node as YAML (for `param load` or a launch spec)",
  args: [{ name: "NODE", help: "node name" }],
  options: {
    ...TIMEOUT,
    json: { type: "boolean", help: "print one JSON object {NODE: {name: value, …}} instead of YAML" },
  },
  details: [
    "The output is a mapping from the node's name to its parameters' values, e.g.",
    "  camera:",
    "    fps: 30",
    "`myelin param load camera FILE` reads it back; the inner mapping also fits `parameters:` of a node in myelin.yaml.",
  ],
  examples: ["myelin param dump camera > camera.yaml", "myelin param dump camera --json | jq .camera.fps"],
  connects: true,
  async run(ctx, inv) {
    const target = inv.positionals[0]!;
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param dump" }) ?? 2000;
    return withNode(ctx, inv, "param_dump", async (node) => {
      const ps = await listOf(ctx, node, target, timeoutMs);
      const doc = { [target]: Object.fromEntries(ps.map((p) => [p.name, p.value])) };
      if (boolOpt(inv, "json")) ctx.out(JSON.stringify(doc, null, 2));
      else for (const l of yaml().stringify(doc).trimEnd().split("\n")) ctx.out(l);
      return 0;
    });
  },
};

/**
 * The parameter values for `target` in a parsed parameter file: its section `target:` (or `/target:`,
 * optionally under `parameters:` or ROS 2's `ros__parameters:`), or the whole file when it is a plain
 * mapping of parameter names to values.
 * @throws MyelinError ERR_INVALID_ARGUMENT naming what the file holds instead
 */
export function paramsForNode(doc: unknown, target: string, file: string): Record<string, unknown> {
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isMap(doc)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${file} is not a mapping; write \`${target}: {name: value, …}\` (what \`myelin param dump ${target}\` prints)`,
    );
  }
  let section: unknown = doc[target] ?? doc[`/${target}`];
  if (section === undefined) {
    const nested = Object.entries(doc).filter(([, v]) => isMap(v));
    if (nested.length > 0 && nested.length === Object.keys(doc).length) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${file} has parameters for ${nested.map(([k]) => k).join(", ")}, not for node ${target}; load it into one of those, or rename its section to ${target}:`,
      );
    }
    section = doc;
  }
  if (!isMap(section)) {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${file}: ${target} must be a mapping of parameter names to values`,
    );
  }
  let values: Record<string, unknown> = section;
  for (const key of ["ros__parameters", "parameters"]) {
    const inner = values[key];
    if (Object.keys(values).length === 1 && isMap(inner)) values = inner;
  }
  return values;
}

/** `myelin param load NODE FILE`: sets parameters from a file, reporting each refusal. */
export const paramLoadCommand: CommandSpec = {
  path: ["param", "load"],
  summary: "set a node's parameters from a YAML or JSON file (as `param dump` writes it)",
  args: [
    { name: "NODE", help: "node name" },
    { name: "FILE", help: "YAML or JSON: `NODE: {name: value, …}`, or a plain mapping of names to values" },
  ],
  options: {
    ...TIMEOUT,
    json: { type: "boolean", help: "print a JSON array of results: name, ok, value or reason" },
  },
  details: [
    "Sets each parameter in turn (the node sees a change event for each). A value equal to the current one is",
    "left alone (so a dump of read-only parameters loads back). Every parameter the node refuses is reported",
    "on stderr with the reason; the command then exits 1 (ERR_PARAMETER) after trying all of them.",
    "ROS 2 parameter files (`/node: {ros__parameters: {…}}`) are read too.",
  ],
  examples: [
    "myelin param load camera camera.yaml",
    "myelin param dump camera > saved.yaml && myelin param load camera saved.yaml",
  ],
  connects: true,
  async run(ctx, inv) {
    const [target, file] = [inv.positionals[0]!, inv.positionals[1]!];
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param load" }) ?? 2000;
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      throw new MyelinError("ERR_INVALID_ARGUMENT", `cannot read ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const wanted = paramsForNode(parseData(text, file), target, file);
    const names = Object.keys(wanted);
    if (names.length === 0)
      throw new MyelinError("ERR_INVALID_ARGUMENT", `${file} sets no parameters of ${target}`);
    const json = boolOpt(inv, "json");
    return withNode(ctx, inv, "param_load", async (node) => {
      const current = new Map((await listOf(ctx, node, target, timeoutMs)).map((p) => [p.name, p]));
      const results: { name: string; ok: boolean; value?: unknown; reason?: string; unchanged?: boolean }[] =
        [];
      for (const name of names) {
        const value = wanted[name];
        const p = current.get(name);
        if (p === undefined) {
          results.push({
            name,
            ok: false,
            reason: `node ${target} has no parameter ${name}${didYouMean(name, current.keys())}`,
          });
        } else if (typeof value === "object" && value !== null && !Array.isArray(value)) {
          results.push({
            name,
            ok: false,
            reason: `the value in ${file} is a mapping; a parameter takes a ${p.kind}`,
          });
        } else if (JSON.stringify(value) === JSON.stringify(p.value)) {
          results.push({ name, ok: true, value: p.value, unchanged: true });
        } else {
          const r = await setOne(ctx, node, target, name, value, timeoutMs);
          results.push(
            r.success
              ? { name, ok: true, value: parseJson(r.value_json) }
              : { name, ok: false, reason: r.reason },
          );
        }
      }
      const failed = results.filter((r) => !r.ok);
      if (json) ctx.out(JSON.stringify(results, null, 2));
      else {
        for (const r of results) {
          if (r.ok)
            ctx.out(`${r.name} = ${JSON.stringify(r.value)}${r.unchanged === true ? " (unchanged)" : ""}`);
          else ctx.err(`myelin: ${r.name}: not set: ${r.reason}`);
        }
      }
      if (failed.length > 0) {
        throw new MyelinError(
          "ERR_PARAMETER",
          `${failed.length} of ${results.length} parameters of node ${target} were not set (${failed.map((r) => r.name).join(", ")}); fix them in ${file} (see \`myelin param describe ${target} NAME\`) and load again`,
        );
      }
      return 0;
    });
  },
};
