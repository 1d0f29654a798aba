/** `myelin site status`: the site as this host's hub sees it (peers, their state, lag, versions). */
import { fetchUplinkStatus, UPLINK_PROTOCOL, type UplinkStatus } from "../gateway/index.js";
import { graphServes } from "../node/index.js";
import { boolOpt, unlessInterrupted, withNode, type CommandSpec } from "./common.js";
import { table } from "./format.js";
import { parseSiteStatus } from "./site-supervisors.js";

/** One line on the uplink: state, and what it holds back (messages, bytes, age of the oldest). */
function uplinkLine(u: UplinkStatus | { error: string }): string {
  if ("error" in u) return `uplink: no answer (${u.error})`;
  let msgs = 0;
  let bytes = 0;
  let age = 0;
  for (const f of u.forwarders) {
    msgs += f.lagMessages;
    bytes += f.lagBytes;
    age = Math.max(age, f.lagAgeMs);
  }
  return (
    `uplink (${u.role} ${u.site}): ${u.state}, ${u.forwarders.length} topic(s) forwarded, ` +
    `not yet forwarded ${msgs} message(s), ${bytes} bytes, oldest ${Math.round(age / 1000)} s` +
    (u.alarm ? "; ALARM: a backlog is near its topic's retention" : "")
  );
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
    "FOUND: static (--peer), scouted (heard by multicast, --scout), incoming (it connected to this hub), revoked (its key was revoked: the link is closed until it is trusted again).",
    "The refused line counts, exactly, what the hub refused since it started; its log writes one line per peer and kind of refusal per 10 s and summarizes the rest.",
    "VERSION: the version of the peer's records held here; LAG: versions the peer announced and not yet applied; SILENT: time since it was last heard.",
    "With an uplink to the cloud (--uplink-config), one line sums its state and what it has not forwarded yet (details: myelin uplink status).",
  ],
  examples: ["myelin site status", "myelin site status --json"],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "site_status", async (node, graph) => {
      const s = parseSiteStatus(await unlessInterrupted(node.querySiteStatus(3000), ctx.signal));
      // The uplink to the cloud, when this hub runs one: its lag belongs to the site's picture.
      let uplink: UplinkStatus | { error: string } | undefined;
      if (graphServes(graph, UPLINK_PROTOCOL.status)) {
        uplink = await unlessInterrupted(
          fetchUplinkStatus(node, { timeoutMs: 3000 }).catch((err: Error) => ({ error: err.message })),
          ctx.signal,
        );
      }
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(uplink === undefined ? s : { ...s, uplink }, null, 2));
        return 0;
      }
      ctx.out(
        `hub ${s.hub} on host ${s.host}: ${s.nodes} node(s), version ${s.version}, graph version ${s.graphVersion}, lease ${s.leaseMs} ms, links ${s.security === "none" ? "plain text" : s.security}`,
      );
      if (uplink !== undefined) ctx.out(uplinkLine(uplink));
      if (s.scout !== undefined) {
        const c = s.scout;
        ctx.out(
          `scouting on ${c.address} for site ${c.site} every ${c.intervalMs} ms: ${c.known} hub(s) heard, ${c.untrusted} announcement(s) with an untrusted key, ${c.malformed} malformed and ${c.otherSite} of other sites dropped`,
        );
      }
      if (s.refusals !== undefined) {
        const r = s.refusals;
        ctx.out(
          `refused: ${r.handshakes} handshake(s), ${r.ownership} ownership, ${r.declarations} declaration(s), ${r.malformed} malformed, ${r.peerMessages} hub-to-hub; ${r.logLinesSuppressed} refusal log line(s) suppressed`,
        );
      }
      if (s.peers.length === 0) {
        ctx.out(
          "no peers: this hub is alone (start hubs with --peer tcp://HOST:PORT, or --scout on a LAN, to make a site)",
        );
        return 0;
      }
      const rows = s.peers.map((p) => [
        p.host || "?",
        p.endpoint ?? "(connected to us)",
        p.revoked === true ? "revoked" : (p.found ?? "?"),
        p.state,
        String(p.nodes),
        String(p.version),
        String(p.lagVersions),
        p.silentMs < 0 ? "never" : `${p.silentMs} ms`,
        p.hub || "-",
      ]);
      for (const l of table(
        ["HOST", "ENDPOINT", "FOUND", "STATE", "NODES", "VERSION", "LAG", "SILENT", "HUB"],
        rows,
      ))
        ctx.out(l);
      return s.peers.some((p) => p.state !== "up") ? 2 : 0;
    });
  },
};
