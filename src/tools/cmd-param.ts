/** `myelin param list|get|set`: a running node's parameters, through its parameter services. */
import { MyelinError } from "../errors.js";
import { myelin_msgs } from "../msgs/index.js";
import type { Node } from "../node/index.js";
import {
  boolOpt,
  numOpt,
  parseData,
  unlessInterrupted,
  withNode,
  type CommandSpec,
  type Context,
} from "./common.js";
import { table } from "./format.js";

interface ParamView {
  name: string;
  kind: string;
  value: unknown;
  description: string;
}

async function listOf(ctx: Context, node: Node, target: string, timeoutMs: number): Promise<ParamView[]> {
  const client = node.createClient(`/${target}/list_parameters`, myelin_msgs.ListParameters, { timeoutMs });
  let r;
  try {
    r = await unlessInterrupted(client.call({}), ctx.signal);
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_NO_SERVER") {
      throw new MyelinError(
        "ERR_NO_SERVER",
        `node ${target} serves no parameters (it is not running, or declared none); see \`myelin node list\``,
        { cause: err },
      );
    }
    throw err;
  }
  return r.names.map((name, i) => ({
    name,
    kind: r.kinds[i] ?? "",
    value: JSON.parse(r.values_json[i] ?? "null") as unknown,
    description: r.descriptions[i] ?? "",
  }));
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
    json: { type: "boolean", help: "print a JSON array: name, kind, value, description" },
  },
  examples: ["myelin param list camera", "myelin param list detector --json"],
  connects: true,
  async run(ctx, inv) {
    const target = inv.positionals[0]!;
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: "param list" }) ?? 2000;
    return withNode(ctx, inv, "param_list", async (node) => {
      const ps = await listOf(ctx, node, target, timeoutMs);
      if (boolOpt(inv, "json")) ctx.out(JSON.stringify(ps, null, 2));
      else
        for (const l of table(
          ["NAME", "KIND", "VALUE", "DESCRIPTION"],
          ps.map((p) => [p.name, p.kind, JSON.stringify(p.value), p.description]),
        ))
          ctx.out(l);
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
      const ps = await listOf(ctx, node, target, timeoutMs);
      const p = ps.find((x) => x.name === name);
      if (p === undefined) {
        throw new MyelinError(
          "ERR_PARAMETER",
          `node ${target} has no parameter ${name}; it has: ${ps.map((x) => x.name).join(", ") || "none"}`,
        );
      }
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
      const client = node.createClient(`/${target}/set_parameter`, myelin_msgs.SetParameter, { timeoutMs });
      let r;
      try {
        r = await unlessInterrupted(client.call({ name, value_json: JSON.stringify(value) }), ctx.signal);
      } catch (err) {
        if (err instanceof MyelinError && err.code === "ERR_NO_SERVER") {
          throw new MyelinError(
            "ERR_NO_SERVER",
            `node ${target} serves no parameters; see \`myelin node list\``,
            {
              cause: err,
            },
          );
        }
        throw err;
      }
      if (!r.success) throw new MyelinError("ERR_PARAMETER", `node ${target} refused: ${r.reason}`);
      ctx.out(`${name} = ${r.value_json}`);
      return 0;
    });
  },
};
