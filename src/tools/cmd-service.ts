/** `myelin service list|call`: services and calling them. */
import { toJson } from "../codec/index.js";
import type { GraphSnapshot } from "../node/index.js";
import {
  absName,
  boolOpt,
  messageFromData,
  numOpt,
  resolveServiceType,
  unlessInterrupted,
  withNode,
  type CommandSpec,
} from "./common.js";
import { renderMessage, table } from "./format.js";

interface ServiceView {
  service: string;
  type: string;
  servers: { node: string; id: string; pid: number; host: string }[];
}

function servicesOf(g: GraphSnapshot): ServiceView[] {
  const m = new Map<string, ServiceView>();
  for (const n of g.nodes) {
    for (const s of n.services) {
      let v = m.get(s.service);
      if (v === undefined) m.set(s.service, (v = { service: s.service, type: s.type, servers: [] }));
      v.servers.push({ node: n.name, id: n.id, pid: n.pid, host: n.host });
    }
  }
  return [...m.values()].sort((a, b) => a.service.localeCompare(b.service));
}

export const serviceListCommand: CommandSpec = {
  path: ["service", "list"],
  summary: "list the services nodes serve",
  args: [],
  options: {
    "show-types": {
      type: "boolean",
      short: "t",
      help: "show a table with each service's type and number of servers",
    },
    json: { type: "boolean", help: "print a JSON array: service, type, servers (node, id, pid, host)" },
  },
  examples: ["myelin service list", "myelin service list -t"],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "service_list", async (_node, graph) => {
      const services = servicesOf(graph);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(services, null, 2));
        return 0;
      }
      if (services.length === 0) {
        ctx.err("no services: no node serves anything");
        return 0;
      }
      if (!boolOpt(inv, "show-types")) {
        for (const s of services) ctx.out(s.service);
        return 0;
      }
      const rows = services.map((s) => [s.service, s.type, String(s.servers.length)]);
      for (const l of table(["SERVICE", "TYPE", "SERVERS"], rows)) ctx.out(l);
      return 0;
    });
  },
};

export const serviceCallCommand: CommandSpec = {
  path: ["service", "call"],
  summary: "call a service once and print the response",
  args: [
    { name: "NAME", help: "service name, e.g. /add_two_ints" },
    { name: "TYPE", help: "service type, e.g. example_interfaces/AddTwoInts (also pkg/srv/Name)" },
    {
      name: "DATA",
      optional: true,
      help: "the request as JSON or YAML, e.g. '{a: 2, b: 3}'; missing fields get their defaults (default {})",
    },
  ],
  options: {
    "timeout-ms": {
      type: "string",
      arg: "N",
      help: "give up when no response came within N ms (default 5000)",
    },
    "wait-ms": {
      type: "string",
      arg: "N",
      help: "if no node serves NAME yet, wait up to N ms for one (default 0: fail at once with ERR_NO_SERVER)",
    },
    json: { type: "boolean", help: "print the response as one JSON line (the codec's JSON form)" },
  },
  details: [
    "Exit code 1 with ERR_NO_SERVER when no node serves NAME, ERR_TIMEOUT when the server did not answer in time,",
    "ERR_SERVICE_FAILED when its handler threw, ERR_VALIDATION when DATA does not fit the request type.",
  ],
  examples: [
    "myelin service call /add_two_ints example_interfaces/AddTwoInts '{a: 2, b: 3}'",
    "myelin service call /arm/home std_srvs/Trigger --timeout-ms 30000 --json",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "service call";
    const name = absName(inv.positionals[0]!);
    const type = resolveServiceType(inv.positionals[1]!);
    const req = messageFromData(type.request, inv.positionals[2] ?? "{}", `request to ${name}`);
    const timeoutMs = numOpt(inv, "timeout-ms", { min: 1, integer: true, command: cmd }) ?? 5000;
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: cmd }) ?? 0;
    const json = boolOpt(inv, "json");
    return withNode(ctx, inv, "service_call", async (node) => {
      const client = node.createClient(name, type, { timeoutMs });
      try {
        if (waitMs > 0) await unlessInterrupted(client.waitForService(waitMs), ctx.signal);
        const res = await unlessInterrupted(client.call(req), ctx.signal);
        if (json) ctx.out(JSON.stringify(toJson(type.response, res)));
        else for (const l of renderMessage(res, type.response)) ctx.out(l);
        return 0;
      } finally {
        client.close();
      }
    });
  },
};
