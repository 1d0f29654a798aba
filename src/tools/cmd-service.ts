/** `myelin service list|type|find|call`: services and calling them. */
import { toJson } from "../codec/index.js";
import { ServiceError } from "../errors.js";
import type { GraphSnapshot } from "../node/index.js";
import {
  absName,
  boolOpt,
  messageFromData,
  numOpt,
  resolveServiceType,
  typeSpellings,
  unlessInterrupted,
  withNode,
  type CommandSpec,
} from "./common.js";
import { didYouMean, renderMessage, table } from "./format.js";

interface ServiceView {
  service: string;
  type: string;
  servers: { node: string; id: string; pid: number; host: string }[];
}

/** The services of the graph; internal ones (names starting with `/_`) only with `all`. */
function servicesOf(g: GraphSnapshot, all = true): ServiceView[] {
  const m = new Map<string, ServiceView>();
  for (const n of g.nodes) {
    for (const s of n.services) {
      if (!all && s.service.startsWith("/_")) continue;
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
    all: {
      type: "boolean",
      help: "also list the internal services (names starting with /_: the store, the supervisor, node status)",
    },
  },
  examples: ["myelin service list", "myelin service list -t", "myelin service list --all"],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "service_list", async (_node, graph) => {
      const services = servicesOf(graph, boolOpt(inv, "all"));
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

/** `myelin service type NAME`: the type of a service. */
export const serviceTypeCommand: CommandSpec = {
  path: ["service", "type"],
  summary: "print the type of a service",
  args: [{ name: "NAME", help: "service name, e.g. /add_two_ints" }],
  options: {
    json: { type: "boolean", help: "print one JSON object: service, type, servers (node, id, pid, host)" },
  },
  details: ["Exit code 1 with ERR_NO_SERVER, naming the services there are, when no node serves NAME."],
  examples: [
    "myelin service type /add_two_ints",
    "myelin interface show $(myelin service type /add_two_ints)   # its request and response",
  ],
  connects: true,
  async run(ctx, inv) {
    const name = absName(inv.positionals[0]!);
    return withNode(ctx, inv, "service_type", async (_node, graph) => {
      const all = servicesOf(graph);
      const s = all.find((x) => x.service === name);
      if (s === undefined) {
        const names = all.filter((x) => !x.service.startsWith("/_")).map((x) => x.service);
        throw new ServiceError(
          "ERR_NO_SERVER",
          `no node serves ${name}${didYouMean(name, names)}; services now: ${names.join(", ") || "none"} (see \`myelin service list\`)`,
        );
      }
      if (boolOpt(inv, "json")) ctx.out(JSON.stringify(s, null, 2));
      else ctx.out(s.type);
      return 0;
    });
  },
};

/** `myelin service find TYPE`: the services of a service type. */
export const serviceFindCommand: CommandSpec = {
  path: ["service", "find"],
  summary: "list the services of a service type",
  args: [{ name: "TYPE", help: "service type, e.g. std_srvs/Trigger (also std_srvs/srv/Trigger)" }],
  options: {
    "count-services": { type: "boolean", short: "c", help: "print only the number of services found" },
    json: { type: "boolean", help: "print a JSON array: service, type, servers (node, id, pid, host)" },
    all: { type: "boolean", help: "also find the internal services (names starting with /_)" },
  },
  details: [
    "Looks in the hub's graph; the type need not be known here. Finding nothing is not an error:",
    "the command prints nothing (and says so on stderr) and exits 0.",
  ],
  examples: [
    "myelin service find std_srvs/Trigger",
    "myelin service find example_interfaces/srv/AddTwoInts -c",
  ],
  connects: true,
  async run(ctx, inv) {
    const typeArg = inv.positionals[0]!;
    const names = typeSpellings(typeArg);
    return withNode(ctx, inv, "service_find", async (_node, graph) => {
      const all = servicesOf(graph);
      // Internal services are found only by --all (as in `service list`).
      const found = all.filter(
        (s) => names.includes(s.type) && (boolOpt(inv, "all") || !s.service.startsWith("/_")),
      );
      if (boolOpt(inv, "json")) ctx.out(JSON.stringify(found, null, 2));
      else if (boolOpt(inv, "count-services")) ctx.out(String(found.length));
      else for (const s of found) ctx.out(s.service);
      if (found.length === 0 && !boolOpt(inv, "json")) {
        const types = [...new Set(all.filter((s) => !s.service.startsWith("/_")).map((s) => s.type))].sort();
        ctx.err(
          `no service has type ${typeArg}${didYouMean(names.at(-1)!, types)}; types in use: ${types.join(", ") || "none"}`,
        );
      }
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
