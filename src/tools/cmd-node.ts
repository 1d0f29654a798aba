/** `myelin node list|info`: the nodes the hub knows. */
import { MyelinError } from "../errors.js";
import type { NodeRecord } from "../node/index.js";
import { boolOpt, withNode, type CommandSpec } from "./common.js";
import { describeQos, didYouMean, table } from "./format.js";

const hidden = (n: NodeRecord): boolean => n.name.startsWith("_");
/** A node's services without the runtime's own (`/_status/<node>`, `/_store/…`), as `service list` shows them. */
const ownServices = (n: NodeRecord): NodeRecord["services"] =>
  n.services.filter((s) => !s.service.startsWith("/_"));

export const nodeListCommand: CommandSpec = {
  path: ["node", "list"],
  summary: "list the running nodes",
  args: [],
  options: {
    all: {
      type: "boolean",
      short: "a",
      help: "also show hidden nodes (names starting with _, such as running tools)",
    },
    json: {
      type: "boolean",
      help: "print a JSON array of node records (name, id, pid, host, endpoint, pubs, subs, services)",
    },
  },
  examples: ["myelin node list", "myelin node list --all --json"],
  connects: true,
  async run(ctx, inv) {
    const all = boolOpt(inv, "all");
    return withNode(ctx, inv, "node_list", async (_node, graph) => {
      const nodes = graph.nodes.filter((n) => all || !hidden(n)).sort((a, b) => a.name.localeCompare(b.name));
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(nodes, null, 2));
        return 0;
      }
      if (nodes.length === 0) {
        ctx.err("no nodes are running");
        return 0;
      }
      const rows = nodes.map((n) => [
        n.name,
        String(n.pid),
        n.host,
        String(n.pubs.length),
        String(n.subs.length),
        String(ownServices(n).length),
        n.remoteEndpoint !== undefined ? `${n.endpoint} ${n.remoteEndpoint}` : n.endpoint,
      ]);
      for (const l of table(["NAME", "PID", "HOST", "PUBS", "SUBS", "SRVS", "ENDPOINT"], rows)) ctx.out(l);
      return 0;
    });
  },
};

export const nodeInfoCommand: CommandSpec = {
  path: ["node", "info"],
  summary: "show a node's publications, subscriptions and services",
  args: [{ name: "NAME", help: "node name (every instance of that name is shown)" }],
  options: {
    json: { type: "boolean", help: "print a JSON array of the matching node records" },
  },
  examples: ["myelin node info talker", "myelin node info camera_driver --json"],
  connects: true,
  async run(ctx, inv) {
    const name = inv.positionals[0]!;
    return withNode(ctx, inv, "node_info", async (_node, graph) => {
      const nodes = graph.nodes.filter((n) => n.name === name || n.id === name);
      if (nodes.length === 0) {
        const names = [...new Set(graph.nodes.filter((n) => !hidden(n)).map((n) => n.name))].sort();
        throw new MyelinError(
          "ERR_INVALID_ARGUMENT",
          `no node named ${name} is running${didYouMean(name, names)}; nodes now: ${names.join(", ") || "none"}`,
        );
      }
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(nodes, null, 2));
        return 0;
      }
      nodes.forEach((n, i) => {
        if (i > 0) ctx.out("");
        ctx.out(`${n.name}`);
        ctx.out(`  id: ${n.id}`);
        ctx.out(`  pid: ${n.pid} on ${n.host}`);
        ctx.out(`  endpoint: ${n.endpoint}`);
        ctx.out(`  started: ${new Date(n.startedAt).toISOString()}`);
        ctx.out(`  Publications: ${n.pubs.length === 0 ? "none" : ""}`.trimEnd());
        for (const p of n.pubs) ctx.out(`    ${p.topic}: ${p.type} (${describeQos(p.qos)})`);
        ctx.out(`  Subscriptions: ${n.subs.length === 0 ? "none" : ""}`.trimEnd());
        for (const s of n.subs) {
          ctx.out(
            `    ${s.topic}: ${s.type} (${describeQos(s.qos)}${s.group !== undefined ? `, group ${s.group}` : ""})`,
          );
        }
        const services = ownServices(n);
        ctx.out(`  Services: ${services.length === 0 ? "none" : ""}`.trimEnd());
        for (const s of services) ctx.out(`    ${s.service}: ${s.type}`);
      });
      return 0;
    });
  },
};
