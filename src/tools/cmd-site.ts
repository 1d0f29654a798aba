/** `myelin site status`: the site as this host's hub sees it (peers, their state, lag, versions). */
import { DecodeError } from "../errors.js";
import type { SiteStatus } from "../hub/index.js";
import { boolOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { table } from "./format.js";

/** Reads the hub's answer, checking the fields the table shows. */
function parseSiteStatus(json: string): SiteStatus {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new DecodeError("ERR_DECODE", `the hub's site status is not JSON: ${(err as Error).message}`);
  }
  const o = v as Partial<SiteStatus> | null;
  if (
    typeof o !== "object" ||
    o === null ||
    typeof o.hub !== "string" ||
    typeof o.host !== "string" ||
    typeof o.version !== "number" ||
    !Array.isArray(o.peers)
  ) {
    throw new DecodeError(
      "ERR_DECODE",
      "the hub's site status lacks hub, host, version or peers: run the same Myelin version everywhere",
    );
  }
  return o as SiteStatus;
}

export const siteStatusCommand: CommandSpec = {
  path: ["site", "status"],
  summary: "show the site: this hub, its peer hubs, their state, lag and versions",
  args: [],
  options: {
    json: { type: "boolean", help: "print the hub's site status as one JSON object" },
  },
  details: [
    "STATE: up (records held and current), syncing (heard again, snapshot asked), unreachable (silent past the lease: its nodes left the graph), connecting (a configured peer never heard).",
    "VERSION: the version of the peer's records held here; LAG: versions the peer announced and not yet applied; SILENT: time since it was last heard.",
  ],
  examples: ["myelin site status", "myelin site status --json"],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "site_status", async (node) => {
      const s = parseSiteStatus(await unlessInterrupted(node.querySiteStatus(3000), ctx.signal));
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(s, null, 2));
        return 0;
      }
      ctx.out(
        `hub ${s.hub} on host ${s.host}: ${s.nodes} node(s), version ${s.version}, graph version ${s.graphVersion}, lease ${s.leaseMs} ms, links ${s.security === "none" ? "plain text" : s.security}`,
      );
      if (s.peers.length === 0) {
        ctx.out("no peers: this hub is alone (start hubs with --peer tcp://HOST:PORT to make a site)");
        return 0;
      }
      const rows = s.peers.map((p) => [
        p.host || "?",
        p.endpoint ?? "(connected to us)",
        p.state,
        String(p.nodes),
        String(p.version),
        String(p.lagVersions),
        p.silentMs < 0 ? "never" : `${p.silentMs} ms`,
        p.hub || "-",
      ]);
      for (const l of table(["HOST", "ENDPOINT", "STATE", "NODES", "VERSION", "LAG", "SILENT", "HUB"], rows))
        ctx.out(l);
      return s.peers.some((p) => p.state !== "up") ? 2 : 0;
    });
  },
};
